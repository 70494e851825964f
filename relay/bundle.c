/* The BPv7 encoder: tern's default header, EIDs, and a strict, streamable bundle writer. */
#include "relay/bundle.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "relay/cbor.h"
#include "crypto/crypto.h"

/* ---- endpoint ids --------------------------------------------------------------- */

bool bundle_eid_valid(const struct bundle_eid *e)
{
	size_t len;

	switch (e->scheme) {
	case BUNDLE_SCHEME_IPN:
		return true;
	case BUNDLE_SCHEME_DTN:
		if (e->none)
			return true;
		len = strnlen(e->dtn, sizeof(e->dtn));
		if (len == 0 || len > BUNDLE_DTN_URI_MAX)
			return false;
		/* Control characters would end up in logs and terminals. */
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)e->dtn[i];

			if (c < 0x20 || c == 0x7f)
				return false;
		}
		return strcmp(e->dtn, "none") != 0;
	default:
		return false;
	}
}

int bundle_eid_format(const struct bundle_eid *e, char *out, size_t cap)
{
	int n;

	if (!bundle_eid_valid(e))
		return -EINVAL;
	if (e->scheme == BUNDLE_SCHEME_IPN)
		n = snprintf(out, cap, "ipn:%llu.%llu", (unsigned long long)e->node,
			     (unsigned long long)e->service);
	else if (e->none)
		n = snprintf(out, cap, "dtn:none");
	else
		n = snprintf(out, cap, "dtn:%s", e->dtn);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

/* Parses a decimal uint64 of s[0..len) without sign, spaces or overflow. */
static int parse_u64(const char *s, size_t len, uint64_t *v)
{
	uint64_t x = 0;

	if (len == 0 || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');

		if (x > (UINT64_MAX - d) / 10)
			return -EINVAL;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int bundle_eid_parse(const char *s, struct bundle_eid *e)
{
	struct bundle_eid tmp;

	memset(&tmp, 0, sizeof(tmp));
	if (strncmp(s, "ipn:", 4) == 0) {
		const char *dot = strchr(s + 4, '.');

		if (!dot)
			return -EINVAL;
		tmp.scheme = BUNDLE_SCHEME_IPN;
		if (parse_u64(s + 4, (size_t)(dot - s - 4), &tmp.node) < 0 ||
		    parse_u64(dot + 1, strlen(dot + 1), &tmp.service) < 0)
			return -EINVAL;
	} else if (strncmp(s, "dtn:", 4) == 0) {
		size_t len = strlen(s + 4);

		tmp.scheme = BUNDLE_SCHEME_DTN;
		if (strcmp(s + 4, "none") == 0) {
			tmp.none = true;
		} else {
			if (len > BUNDLE_DTN_URI_MAX)
				return -EINVAL;
			memcpy(tmp.dtn, s + 4, len + 1);
			if (!bundle_eid_valid(&tmp))
				return -EINVAL;
		}
	} else {
		return -EINVAL;
	}
	*e = tmp;
	return 0;
}

/* ---- defaults ------------------------------------------------------------------- */

void bundle_header_init(struct bundle_header *h, uint64_t dest_node, uint64_t dest_service)
{
	memset(h, 0, offsetof(struct bundle_header, extra));
	h->flags = BUNDLE_F_NO_FRAGMENT;
	h->crc_type = BUNDLE_CRC32C;
	h->dest.scheme = BUNDLE_SCHEME_IPN;
	h->dest.node = dest_node;
	h->dest.service = dest_service;
	h->source.scheme = BUNDLE_SCHEME_DTN;
	h->source.none = true;
	h->report_to = h->source;
	h->lifetime_ms = BUNDLE_LIFETIME_DEFAULT_MS;
	h->has_hop_count = true;
	h->hop_limit = BUNDLE_HOP_LIMIT_DEFAULT;
	h->has_age = true;
	h->priority = BUNDLE_PRIO_NORMAL;
	h->extra_len = 0;
	h->payload_flags = 0;
	h->payload_crc_type = BUNDLE_CRC_NONE;
	h->payload_len = 0;
}

/* ---- encoder -------------------------------------------------------------------- */

static size_t crc_size(enum bundle_crc t)
{
	return t == BUNDLE_CRC16 ? 2 : t == BUNDLE_CRC32C ? 4 : 0;
}

static void put_eid(struct cbor_writer *w, const struct bundle_eid *e)
{
	cbor_put_array(w, 2);
	if (e->scheme == BUNDLE_SCHEME_IPN) {
		cbor_put_uint(w, BUNDLE_SCHEME_IPN);
		cbor_put_array(w, 2);
		cbor_put_uint(w, e->node);
		cbor_put_uint(w, e->service);
	} else {
		cbor_put_uint(w, BUNDLE_SCHEME_DTN);
		if (e->none)
			cbor_put_uint(w, 0);
		else
			cbor_put_text(w, e->dtn, strlen(e->dtn));
	}
}

/*
 * Appends the CRC field of a block that started at w->buf[start]: the CRC is computed
 * over the whole block with its own value as zero bytes (RFC 9171 §4.2.1), then
 * written in network byte order.
 */
static void put_crc(struct cbor_writer *w, size_t start, enum bundle_crc type)
{
	static const uint8_t zero[4];
	size_t n = crc_size(type);
	uint8_t *v;

	cbor_put_head(w, CBOR_BYTES, n);
	cbor_put_raw(w, zero, n);
	if (w->overflow)
		return;
	v = w->buf + w->len - n;
	if (type == BUNDLE_CRC16) {
		uint16_t c = crc16_x25(0, w->buf + start, w->len - start);

		v[0] = (uint8_t)(c >> 8);
		v[1] = (uint8_t)c;
	} else {
		uint32_t c = crc32c(0, w->buf + start, w->len - start);

		v[0] = (uint8_t)(c >> 24);
		v[1] = (uint8_t)(c >> 16);
		v[2] = (uint8_t)(c >> 8);
		v[3] = (uint8_t)c;
	}
}

static void put_primary(struct cbor_writer *w, const struct bundle_header *h)
{
	size_t start = w->len;
	bool frag = h->flags & BUNDLE_F_FRAGMENT;

	cbor_put_array(w, 8 + (h->crc_type != BUNDLE_CRC_NONE) + (frag ? 2 : 0));
	cbor_put_uint(w, 7);
	cbor_put_uint(w, h->flags);
	cbor_put_uint(w, h->crc_type);
	put_eid(w, &h->dest);
	put_eid(w, &h->source);
	put_eid(w, &h->report_to);
	cbor_put_array(w, 2);
	cbor_put_uint(w, h->created_ms);
	cbor_put_uint(w, h->seq);
	cbor_put_uint(w, h->lifetime_ms);
	if (frag) {
		cbor_put_uint(w, h->frag_offset);
		cbor_put_uint(w, h->adu_length);
	}
	if (h->crc_type != BUNDLE_CRC_NONE)
		put_crc(w, start, h->crc_type);
}

/* An extension block of ours: no flags, no CRC (bytes matter on satellite links). */
static void put_ext_block(struct cbor_writer *w, uint64_t type, uint64_t number,
			  const struct cbor_writer *data)
{
	cbor_put_array(w, 5);
	cbor_put_uint(w, type);
	cbor_put_uint(w, number);
	cbor_put_uint(w, 0);
	cbor_put_uint(w, BUNDLE_CRC_NONE);
	cbor_put_bytes(w, data->buf, data->len);
}

/* The payload block up to and including the head of its data byte string. */
static void put_payload_prefix(struct cbor_writer *w, const struct bundle_header *h)
{
	cbor_put_array(w, h->payload_crc_type != BUNDLE_CRC_NONE ? 6 : 5);
	cbor_put_uint(w, BLOCK_TYPE_PAYLOAD);
	cbor_put_uint(w, 1);
	cbor_put_uint(w, h->payload_flags);
	cbor_put_uint(w, h->payload_crc_type);
	cbor_put_head(w, CBOR_BYTES, h->payload_len);
}

static bool known_block_type(uint64_t type)
{
	return type == BLOCK_TYPE_PAYLOAD || type == BLOCK_TYPE_PREVIOUS_NODE ||
	       type == BLOCK_TYPE_BUNDLE_AGE || type == BLOCK_TYPE_HOP_COUNT ||
	       type == BLOCK_TYPE_TERN_PRIORITY;
}

/*
 * Checks that h->extra is a sequence of whole extension blocks of types we do not
 * handle ourselves, with unique numbers above 1 and correct CRCs, and collects those
 * numbers. Returns how many, or -EINVAL.
 */
static int extra_numbers(const struct bundle_header *h, uint64_t *nums, size_t max)
{
	struct cbor_reader r;
	size_t count = 0;

	if (h->extra_len > sizeof(h->extra))
		return -EINVAL;
	cbor_reader_init(&r, h->extra, h->extra_len);
	while (!cbor_reader_done(&r)) {
		size_t start = r.pos, dlen;
		uint64_t n, type, number, flags, crc;
		const uint8_t *data;

		if (cbor_read_array(&r, &n) < 0 || (n != 5 && n != 6) ||
		    cbor_read_uint(&r, &type) < 0 || cbor_read_uint(&r, &number) < 0 ||
		    cbor_read_uint(&r, &flags) < 0 || cbor_read_uint(&r, &crc) < 0 ||
		    crc > BUNDLE_CRC32C || (crc != BUNDLE_CRC_NONE) != (n == 6) ||
		    cbor_read_bytes(&r, &data, &dlen) < 0)
			return -EINVAL;
		if (known_block_type(type) || number < 2 || count == max)
			return -EINVAL;
		for (size_t i = 0; i < count; i++)
			if (nums[i] == number)
				return -EINVAL;
		nums[count++] = number;
		if (crc != BUNDLE_CRC_NONE) {
			uint8_t tmp[4] = {0};
			size_t crclen;
			const uint8_t *v;
			bool ok;

			if (cbor_read_bytes(&r, &v, &crclen) < 0 ||
			    crclen != crc_size((enum bundle_crc)crc))
				return -EINVAL;
			/* CRC over the block with the value zeroed: prefix, then zeros. */
			if (crc == BUNDLE_CRC16) {
				uint16_t c = crc16_x25(0, h->extra + start, r.pos - start - crclen);

				c = crc16_x25(c, tmp, crclen);
				ok = v[0] == (uint8_t)(c >> 8) && v[1] == (uint8_t)c;
			} else {
				uint32_t c = crc32c(0, h->extra + start, r.pos - start - crclen);

				c = crc32c(c, tmp, crclen);
				ok = v[0] == (uint8_t)(c >> 24) && v[1] == (uint8_t)(c >> 16) &&
				     v[2] == (uint8_t)(c >> 8) && v[3] == (uint8_t)c;
			}
			if (!ok)
				return -EINVAL;
		}
	}
	return (int)count;
}

static uint64_t next_free_number(uint64_t from, const uint64_t *used, size_t n)
{
	for (;; from++) {
		size_t i;

		for (i = 0; i < n && used[i] != from; i++)
			;
		if (i == n)
			return from;
	}
}

static bool header_valid(const struct bundle_header *h)
{
	if (h->crc_type > BUNDLE_CRC32C || h->payload_crc_type > BUNDLE_CRC32C)
		return false;
	if (!bundle_eid_valid(&h->dest) || !bundle_eid_valid(&h->source) ||
	    !bundle_eid_valid(&h->report_to))
		return false;
	if (h->has_prev_node && !bundle_eid_valid(&h->prev_node))
		return false;
	if (h->has_hop_count && (h->hop_limit < 1 || h->hop_limit > 255))
		return false;
	if (h->priority > BUNDLE_PRIO_URGENT)
		return false;
	if ((h->flags & BUNDLE_F_FRAGMENT) &&
	    (h->frag_offset > h->adu_length || h->payload_len > h->adu_length - h->frag_offset))
		return false;
	return true;
}

int bundle_encode_head(const struct bundle_header *h, uint8_t *out, size_t cap)
{
	uint64_t used[BUNDLE_BLOCKS_MAX];
	uint8_t data[BUNDLE_DTN_URI_MAX + 32];
	struct cbor_writer w, d;
	uint64_t number = 1;
	int n_used;

	if (!header_valid(h))
		return -EINVAL;
	n_used = extra_numbers(h, used, BUNDLE_EXTRA_BLOCKS_MAX);
	if (n_used < 0)
		return n_used;

	cbor_writer_init(&w, out, cap);
	cbor_put_raw(&w, (const uint8_t[]){CBOR_INDEF_ARRAY}, 1);
	put_primary(&w, h);
	if (h->has_prev_node) {
		cbor_writer_init(&d, data, sizeof(data));
		put_eid(&d, &h->prev_node);
		number = next_free_number(number + 1, used, (size_t)n_used);
		put_ext_block(&w, BLOCK_TYPE_PREVIOUS_NODE, number, &d);
	}
	if (h->has_age) {
		cbor_writer_init(&d, data, sizeof(data));
		cbor_put_uint(&d, h->age_ms);
		number = next_free_number(number + 1, used, (size_t)n_used);
		put_ext_block(&w, BLOCK_TYPE_BUNDLE_AGE, number, &d);
	}
	if (h->has_hop_count) {
		cbor_writer_init(&d, data, sizeof(data));
		cbor_put_array(&d, 2);
		cbor_put_uint(&d, h->hop_limit);
		cbor_put_uint(&d, h->hop_count);
		number = next_free_number(number + 1, used, (size_t)n_used);
		put_ext_block(&w, BLOCK_TYPE_HOP_COUNT, number, &d);
	}
	if (h->priority != BUNDLE_PRIO_NORMAL) {
		cbor_writer_init(&d, data, sizeof(data));
		cbor_put_uint(&d, h->priority);
		number = next_free_number(number + 1, used, (size_t)n_used);
		put_ext_block(&w, BLOCK_TYPE_TERN_PRIORITY, number, &d);
	}
	cbor_put_raw(&w, h->extra, h->extra_len);
	put_payload_prefix(&w, h);
	if (w.overflow)
		return -ENOSPC;
	return (int)w.len;
}

void bundle_tail_init(struct bundle_tail *t, const struct bundle_header *h)
{
	uint8_t buf[32];
	struct cbor_writer w;

	t->type = h->payload_crc_type;
	t->crc = 0;
	if (t->type == BUNDLE_CRC_NONE)
		return;
	/* The payload CRC covers the block from its first byte; redo the prefix. */
	cbor_writer_init(&w, buf, sizeof(buf));
	put_payload_prefix(&w, h);
	bundle_tail_update(t, buf, w.len);
}

void bundle_tail_update(struct bundle_tail *t, const uint8_t *buf, size_t len)
{
	if (t->type == BUNDLE_CRC16)
		t->crc = crc16_x25((uint16_t)t->crc, buf, len);
	else if (t->type == BUNDLE_CRC32C)
		t->crc = crc32c(t->crc, buf, len);
}

int bundle_encode_tail(struct bundle_tail *t, uint8_t *out, size_t cap)
{
	size_t n = crc_size(t->type);
	size_t total = n ? 1 + n + 1 : 1;
	uint8_t field[5] = {0};

	if (cap < total)
		return -ENOSPC;
	if (n) {
		field[0] = (uint8_t)(0x40 | n); /* byte string head of length n */
		bundle_tail_update(t, field, 1 + n);
		out[0] = field[0];
		for (size_t i = 0; i < n; i++)
			out[1 + i] = (uint8_t)(t->crc >> (8 * (n - 1 - i)));
	}
	out[total - 1] = CBOR_BREAK;
	return (int)total;
}

int bundle_encode(const struct bundle_header *h, const uint8_t *payload, uint8_t *out, size_t cap)
{
	struct bundle_tail t;
	int head, tail;

	head = bundle_encode_head(h, out, cap);
	if (head < 0)
		return head;
	if (h->payload_len > cap - (size_t)head || h->payload_len > (uint64_t)INT_MAX - 16)
		return -ENOSPC;
	if (h->payload_len)
		memcpy(out + head, payload, (size_t)h->payload_len);
	bundle_tail_init(&t, h);
	bundle_tail_update(&t, payload, (size_t)h->payload_len);
	tail = bundle_encode_tail(&t, out + head + h->payload_len,
				  cap - (size_t)head - (size_t)h->payload_len);
	if (tail < 0)
		return tail;
	if ((uint64_t)head + h->payload_len + (uint64_t)tail > INT_MAX)
		return -ENOSPC;
	return head + (int)h->payload_len + tail;
}
