/* A minimal CBOR writer, buffer reader and push scanner, strictly bounded, for the BPv7 codec. */
#include "relay/cbor.h"

#include <errno.h>
#include <string.h>

void cbor_writer_init(struct cbor_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

void cbor_put_raw(struct cbor_writer *w, const void *buf, size_t len)
{
	if (w->overflow || len > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (len)
		memcpy(w->buf + w->len, buf, len);
	w->len += len;
}

size_t cbor_head_size(uint64_t arg)
{
	if (arg < 24)
		return 1;
	if (arg <= UINT8_MAX)
		return 2;
	if (arg <= UINT16_MAX)
		return 3;
	if (arg <= UINT32_MAX)
		return 5;
	return 9;
}

size_t cbor_encode_head(uint8_t out[static CBOR_HEAD_MAX], enum cbor_major major, uint64_t arg)
{
	uint8_t mt = (uint8_t)(major << 5);
	size_t n = cbor_head_size(arg);

	switch (n) {
	case 1:
		out[0] = mt | (uint8_t)arg;
		return 1;
	case 2:
		out[0] = mt | 24;
		break;
	case 3:
		out[0] = mt | 25;
		break;
	case 5:
		out[0] = mt | 26;
		break;
	default:
		out[0] = mt | 27;
		break;
	}
	/* The argument follows in network byte order. */
	for (size_t i = n - 1; i >= 1; i--) {
		out[i] = (uint8_t)arg;
		arg >>= 8;
	}
	return n;
}

void cbor_put_head(struct cbor_writer *w, enum cbor_major major, uint64_t arg)
{
	uint8_t head[CBOR_HEAD_MAX];

	cbor_put_raw(w, head, cbor_encode_head(head, major, arg));
}

void cbor_put_uint(struct cbor_writer *w, uint64_t v)
{
	cbor_put_head(w, CBOR_UINT, v);
}

void cbor_put_array(struct cbor_writer *w, uint64_t n)
{
	cbor_put_head(w, CBOR_ARRAY, n);
}

void cbor_put_bytes(struct cbor_writer *w, const void *buf, size_t len)
{
	cbor_put_head(w, CBOR_BYTES, len);
	cbor_put_raw(w, buf, len);
}

void cbor_put_text(struct cbor_writer *w, const char *s, size_t len)
{
	cbor_put_head(w, CBOR_TEXT, len);
	cbor_put_raw(w, s, len);
}

/* ---- heads ---------------------------------------------------------------------- */

/* Size of a head from its initial byte, or 0 for reserved additional information. */
static uint8_t head_size(uint8_t initial)
{
	uint8_t ai = initial & 31;

	if (ai < 24 || ai == 31)
		return 1;
	switch (ai) {
	case 24:
		return 2;
	case 25:
		return 3;
	case 26:
		return 5;
	case 27:
		return 9;
	default:
		return 0;
	}
}

/* Decodes a complete head of n bytes (n == head_size(buf[0]) != 0). */
static int head_decode(const uint8_t *buf, uint8_t n, struct cbor_head *h)
{
	uint8_t ai = buf[0] & 31;

	h->major = (enum cbor_major)(buf[0] >> 5);
	h->size = n;
	h->indef = ai == 31;
	if (h->indef) {
		h->arg = 0;
		/* Only strings, arrays, maps (and the break, major 7) have an indefinite form. */
		if (h->major == CBOR_UINT || h->major == CBOR_NEGINT || h->major == CBOR_TAG)
			return -EBADMSG;
		return 0;
	}
	if (n == 1) {
		h->arg = ai;
		return 0;
	}
	h->arg = 0;
	for (uint8_t i = 1; i < n; i++)
		h->arg = h->arg << 8 | buf[i];
	return 0;
}

int cbor_head_feed(struct cbor_head_dec *d, uint8_t byte, struct cbor_head *h)
{
	int ret;

	if (d->have == 0) {
		d->need = head_size(byte);
		if (d->need == 0)
			return -EBADMSG;
	}
	d->buf[d->have++] = byte;
	if (d->have < d->need)
		return 0;
	ret = head_decode(d->buf, d->need, h);
	d->have = 0;
	d->need = 0;
	return ret < 0 ? ret : 1;
}

/* ---- reader --------------------------------------------------------------------- */

void cbor_reader_init(struct cbor_reader *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
}

int cbor_read_head(struct cbor_reader *r, struct cbor_head *h)
{
	uint8_t n;
	int ret;

	if (r->pos >= r->len)
		return -ENODATA;
	n = head_size(r->buf[r->pos]);
	if (n == 0)
		return -EBADMSG;
	if (n > r->len - r->pos)
		return -ENODATA;
	ret = head_decode(r->buf + r->pos, n, h);
	if (ret < 0)
		return ret;
	r->pos += n;
	return 0;
}

/* Reads a head and checks its major type; the reader does not move on a mismatch. */
static int read_typed(struct cbor_reader *r, enum cbor_major major, struct cbor_head *h)
{
	size_t pos = r->pos;
	int ret = cbor_read_head(r, h);

	if (ret < 0)
		return ret;
	if (h->major != major || h->indef) {
		r->pos = pos;
		return -EBADMSG;
	}
	return 0;
}

int cbor_read_uint(struct cbor_reader *r, uint64_t *v)
{
	struct cbor_head h;
	int ret = read_typed(r, CBOR_UINT, &h);

	if (ret == 0)
		*v = h.arg;
	return ret;
}

int cbor_read_array(struct cbor_reader *r, uint64_t *n)
{
	struct cbor_head h;
	int ret = read_typed(r, CBOR_ARRAY, &h);

	if (ret == 0)
		*n = h.arg;
	return ret;
}

static int read_string(struct cbor_reader *r, enum cbor_major major, const uint8_t **p, size_t *len)
{
	size_t pos = r->pos;
	struct cbor_head h;
	int ret = read_typed(r, major, &h);

	if (ret < 0)
		return ret;
	if (h.arg > r->len - r->pos) {
		r->pos = pos;
		return -ENODATA;
	}
	*p = r->buf + r->pos;
	*len = (size_t)h.arg;
	r->pos += (size_t)h.arg;
	return 0;
}

int cbor_read_bytes(struct cbor_reader *r, const uint8_t **p, size_t *len)
{
	return read_string(r, CBOR_BYTES, p, len);
}

int cbor_read_text(struct cbor_reader *r, const uint8_t **p, size_t *len)
{
	return read_string(r, CBOR_TEXT, p, len);
}

/* ---- scanner -------------------------------------------------------------------- */

/* One item at the current level is complete; closes every container it completes. */
static bool scan_item_done(struct cbor_scan *s)
{
	while (s->depth > 0) {
		if (--s->left[s->depth - 1] > 0)
			return false;
		s->depth--;
	}
	return true;
}

/* Handles a complete head. Returns 1 if the top-level item ended, 0 if not, or -EBADMSG. */
static int scan_head(struct cbor_scan *s, const struct cbor_head *h, enum cbor_scan_err *err)
{
	uint64_t items;

	switch (h->major) {
	case CBOR_UINT:
	case CBOR_NEGINT:
		return scan_item_done(s);
	case CBOR_SIMPLE:
		if (h->indef) {
			*err = CBOR_SCAN_INDEF; /* a break with nothing indefinite open */
			return -EBADMSG;
		}
		return scan_item_done(s);
	case CBOR_BYTES:
	case CBOR_TEXT:
		if (h->indef) {
			*err = CBOR_SCAN_INDEF;
			return -EBADMSG;
		}
		s->skip = h->arg;
		return s->skip ? 0 : scan_item_done(s);
	case CBOR_ARRAY:
	case CBOR_MAP:
		if (h->indef) {
			*err = CBOR_SCAN_INDEF;
			return -EBADMSG;
		}
		items = h->arg;
		if (h->major == CBOR_MAP)
			items = items > UINT64_MAX / 2 ? UINT64_MAX : items * 2;
		if (items == 0)
			return scan_item_done(s);
		if (s->depth == CBOR_SCAN_DEPTH) {
			*err = CBOR_SCAN_DEEP;
			return -EBADMSG;
		}
		s->left[s->depth++] = items;
		return 0;
	default:
		*err = CBOR_SCAN_TAG;
		return -EBADMSG;
	}
}

int cbor_scan_feed(struct cbor_scan *s, const uint8_t *buf, size_t len, size_t *used, bool *done,
		   enum cbor_scan_err *err)
{
	size_t i = 0;
	int ret = 0;

	*done = false;
	*err = CBOR_SCAN_OK;
	while (i < len) {
		if (s->skip) {
			size_t n = len - i;

			if (n > s->skip)
				n = (size_t)s->skip;
			s->skip -= n;
			i += n;
			if (s->skip == 0 && scan_item_done(s)) {
				*done = true;
				break;
			}
			continue;
		}
		struct cbor_head h;

		ret = cbor_head_feed(&s->head, buf[i++], &h);
		if (ret < 0) {
			*err = CBOR_SCAN_RESERVED;
			break;
		}
		if (ret == 0)
			continue;
		ret = scan_head(s, &h, err);
		if (ret < 0)
			break;
		if (ret == 1) {
			*done = true;
			ret = 0;
			break;
		}
	}
	*used = i;
	return ret;
}
