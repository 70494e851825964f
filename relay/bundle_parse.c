/* The BPv7 push decoder: any split of the input, bounded memory, CRCs checked, precise reasons. */
#include "relay/bundle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/cbor.h"
#include "crypto/crypto.h"

/*
 * The primary block and the data of the extension blocks we understand are buffered
 * (bounded below); unknown blocks go straight into h->extra or are skipped; the
 * payload is handed on as it arrives. So memory is fixed whatever the input claims.
 */

/* Largest primary block: three 255-byte dtn EIDs and every number at 9 bytes fit. */
#define PRIMARY_MAX 1024
/* Largest data of a block we parse: a Previous Node block with a 255-byte dtn EID. */
#define KNOWN_MAX 300
/* A block's array head, its four numbers and the head of its data. */
#define PREFIX_MAX (6 * CBOR_HEAD_MAX)
#define REASON_MAX 128

enum state {
	S_START,     /* expect 0x9f */
	S_PRIMARY,   /* primary block bytes */
	S_BLOCK,     /* a block's array head, or the break */
	S_FIELDS,    /* type, number, flags, CRC type */
	S_DATA_HEAD, /* head of the block-type-specific data */
	S_DATA,	     /* the data */
	S_CRC_HEAD,  /* head of the CRC byte string */
	S_CRC,	     /* CRC value bytes */
	S_END,	     /* after the payload block: the break */
	S_DONE,
	S_ERROR,
};

enum data_kind {
	D_PAYLOAD, /* streamed to on_payload */
	D_KNOWN,   /* buffered and parsed: previous node, age, hop count, priority */
	D_KEEP,	   /* unknown, copied into h->extra */
	D_SKIP,	   /* unknown with discard-if-unprocessed: dropped */
};

enum { F_TYPE, F_NUMBER, F_FLAGS, F_CRC };

struct bundle_parser {
	struct bundle_limits lim;
	struct bundle_parser_cb cb;
	void *ctx;
	enum state st;
	int err;
	char reason[REASON_MAX];
	uint64_t fed;
	struct bundle_header h;

	/* primary block */
	struct cbor_scan scan;
	size_t plen;
	uint8_t pbuf[PRIMARY_MAX];

	/* the block being read */
	struct cbor_head_dec hd;
	uint8_t prefix[PREFIX_MAX];
	size_t prefix_len;
	uint64_t items;
	uint64_t field[4];
	unsigned nfield;
	enum data_kind kind;
	uint64_t data_len, data_left;
	uint8_t kbuf[KNOWN_MAX];
	size_t klen;
	size_t keep_start; /* where this block starts in h->extra when kept */
	size_t keep_len;
	uint32_t crc;
	size_t crc_len, crc_have;
	uint8_t crc_val[4];
	bool after_payload; /* a block started after the payload block */

	/* the bundle so far */
	uint64_t numbers[BUNDLE_BLOCKS_MAX];
	size_t nblocks, nkept;
	bool seen_prev, seen_age, seen_hop, seen_prio;

	struct bundle_id_state *id;
	uint8_t idv[32];
};

__attribute__((format(printf, 3, 4))) static int fail(struct bundle_parser *p, int err,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
	p->st = S_ERROR;
	p->err = err;
	return err;
}

static size_t crc_size(uint64_t t)
{
	return t == BUNDLE_CRC16 ? 2 : t == BUNDLE_CRC32C ? 4 : 0;
}

static uint32_t crc_update(uint64_t type, uint32_t crc, const void *buf, size_t len)
{
	if (type == BUNDLE_CRC16)
		return crc16_x25((uint16_t)crc, buf, len);
	if (type == BUNDLE_CRC32C)
		return crc32c(crc, buf, len);
	return 0;
}

static bool crc_matches(uint64_t type, uint32_t crc, const uint8_t *v)
{
	size_t n = crc_size(type);

	for (size_t i = 0; i < n; i++)
		if (v[i] != (uint8_t)(crc >> (8 * (n - 1 - i))))
			return false;
	return true;
}

static const char *block_name(uint64_t type)
{
	switch (type) {
	case BLOCK_TYPE_PAYLOAD:
		return "payload";
	case BLOCK_TYPE_PREVIOUS_NODE:
		return "previous node";
	case BLOCK_TYPE_BUNDLE_AGE:
		return "bundle age";
	case BLOCK_TYPE_HOP_COUNT:
		return "hop count";
	case BLOCK_TYPE_TERN_PRIORITY:
		return "priority";
	default:
		return NULL;
	}
}

/* ---- buffered parts: EIDs, the primary block, known extension blocks ---------------- */

/* Parses an EID. Returns NULL, or what is wrong with it. */
static const char *parse_eid(struct cbor_reader *r, struct bundle_eid *e)
{
	struct cbor_head hd;
	uint64_t n, scheme, a, b, c;

	memset(e, 0, sizeof(*e));
	if (cbor_read_array(r, &n) < 0 || n != 2)
		return "not a 2-item array";
	if (cbor_read_uint(r, &scheme) < 0)
		return "scheme is not an unsigned integer";
	switch (scheme) {
	case BUNDLE_SCHEME_DTN:
		e->scheme = BUNDLE_SCHEME_DTN;
		if (cbor_read_head(r, &hd) < 0)
			return "malformed dtn SSP";
		if (hd.major == CBOR_UINT) {
			if (hd.arg != 0)
				return "dtn SSP is an integer other than 0";
			e->none = true;
			return NULL;
		}
		if (hd.major != CBOR_TEXT || hd.indef)
			return "dtn SSP is not a text string";
		if (hd.arg > r->len - r->pos)
			return "dtn SSP truncated";
		if (hd.arg == 0)
			return "empty dtn SSP";
		if (hd.arg > BUNDLE_DTN_URI_MAX)
			return "dtn URI longer than 255 bytes";
		if (memchr(r->buf + r->pos, 0, (size_t)hd.arg))
			return "dtn URI contains a control character or NUL";
		memcpy(e->dtn, r->buf + r->pos, (size_t)hd.arg);
		e->dtn[hd.arg] = '\0';
		r->pos += (size_t)hd.arg;
		/* Some nodes spell the null endpoint as text. */
		if (strcmp(e->dtn, "none") == 0) {
			e->none = true;
			e->dtn[0] = '\0';
			return NULL;
		}
		if (!bundle_eid_valid(e))
			return "dtn URI contains a control character or NUL";
		return NULL;
	case BUNDLE_SCHEME_IPN:
		e->scheme = BUNDLE_SCHEME_IPN;
		if (cbor_read_array(r, &n) < 0 || (n != 2 && n != 3))
			return "ipn SSP is not an array of 2 or 3 numbers";
		if (cbor_read_uint(r, &a) < 0 || cbor_read_uint(r, &b) < 0)
			return "ipn node or service number is not an unsigned 64-bit integer";
		if (n == 2) {
			e->node = a;
			e->service = b;
			return NULL;
		}
		/* RFC 9758: [allocator, node, service], both of the first two 32 bits. */
		if (cbor_read_uint(r, &c) < 0)
			return "ipn service number is not an unsigned 64-bit integer";
		if (a > UINT32_MAX || b > UINT32_MAX)
			return "ipn allocator or node number out of range";
		e->node = a << 32 | b;
		e->service = c;
		return NULL;
	default:
		return "unknown scheme";
	}
}

static int parse_primary(struct bundle_parser *p)
{
	struct bundle_header *h = &p->h;
	struct cbor_reader r;
	uint64_t n, version, crc, expect;
	const char *why;
	const uint8_t *v;
	size_t vlen;

	cbor_reader_init(&r, p->pbuf, p->plen);
	if (cbor_read_array(&r, &n) < 0)
		return fail(p, -EBADMSG, "primary block is not an array");
	if (n < 8 || n > 11)
		return fail(p, -EBADMSG, "primary block has %llu items, not 8 to 11",
			    (unsigned long long)n);
	if (cbor_read_uint(&r, &version) < 0)
		return fail(p, -EBADMSG, "bundle protocol version is not an unsigned integer");
	if (version != 7)
		return fail(p, -EBADMSG, "bundle protocol version %llu, not 7",
			    (unsigned long long)version);
	if (cbor_read_uint(&r, &h->flags) < 0)
		return fail(p, -EBADMSG, "bundle flags are not an unsigned integer");
	if (cbor_read_uint(&r, &crc) < 0 || crc > BUNDLE_CRC32C)
		return fail(p, -EBADMSG, "unknown CRC type in the primary block");
	h->crc_type = (enum bundle_crc)crc;
	if (crc != BUNDLE_CRC_NONE) {
		/*
		 * Check the CRC before believing any other field. It is the block's last
		 * item, so its value is the buffer's last bytes; the CRC covers the block
		 * with that value zeroed (pbuf is ours to edit). Its shape is checked below.
		 */
		size_t cn = crc_size(crc);
		uint8_t got[4];

		if (p->plen < cn + 1)
			return fail(p, -EBADMSG, "primary block CRC field malformed");
		memcpy(got, p->pbuf + p->plen - cn, cn);
		memset(p->pbuf + p->plen - cn, 0, cn);
		if (!crc_matches(crc, crc_update(crc, 0, p->pbuf, p->plen), got))
			return fail(p, -EBADMSG, "primary block CRC mismatch");
	}
	expect = 8 + (crc != BUNDLE_CRC_NONE) + ((h->flags & BUNDLE_F_FRAGMENT) ? 2 : 0);
	if (n != expect)
		return fail(p, -EBADMSG,
			    "primary block has %llu items but its fragment flag and CRC type "
			    "call for %llu",
			    (unsigned long long)n, (unsigned long long)expect);
	if ((why = parse_eid(&r, &h->dest)))
		return fail(p, -EBADMSG, "destination EID malformed: %s", why);
	if ((why = parse_eid(&r, &h->source)))
		return fail(p, -EBADMSG, "source EID malformed: %s", why);
	if ((why = parse_eid(&r, &h->report_to)))
		return fail(p, -EBADMSG, "report-to EID malformed: %s", why);
	if (cbor_read_array(&r, &n) < 0 || n != 2 || cbor_read_uint(&r, &h->created_ms) < 0 ||
	    cbor_read_uint(&r, &h->seq) < 0)
		return fail(p, -EBADMSG, "creation timestamp is not [time, sequence number]");
	if (cbor_read_uint(&r, &h->lifetime_ms) < 0)
		return fail(p, -EBADMSG, "lifetime is not an unsigned integer");
	if (h->flags & BUNDLE_F_FRAGMENT) {
		if (cbor_read_uint(&r, &h->frag_offset) < 0 ||
		    cbor_read_uint(&r, &h->adu_length) < 0)
			return fail(p, -EBADMSG, "fragment offset or total ADU length malformed");
		if (h->frag_offset >= h->adu_length)
			return fail(
			    p, -EBADMSG, "fragment offset %llu not below total ADU length %llu",
			    (unsigned long long)h->frag_offset, (unsigned long long)h->adu_length);
	}
	if (crc != BUNDLE_CRC_NONE && (cbor_read_bytes(&r, &v, &vlen) < 0 || vlen != crc_size(crc)))
		return fail(p, -EBADMSG, "primary block CRC field malformed");
	if (!cbor_reader_done(&r))
		return fail(p, -EBADMSG, "primary block has trailing items");
	return 0;
}

/* Parses the data of a block we understand (p->kbuf) once the block's CRC is checked. */
static int parse_known(struct bundle_parser *p)
{
	struct bundle_header *h = &p->h;
	struct cbor_reader r;
	uint64_t type = p->field[F_TYPE], n, v;
	const char *why;

	cbor_reader_init(&r, p->kbuf, p->klen);
	switch (type) {
	case BLOCK_TYPE_PREVIOUS_NODE:
		why = parse_eid(&r, &h->prev_node);
		if (why)
			return fail(p, -EBADMSG, "previous node EID malformed: %s", why);
		h->has_prev_node = true;
		break;
	case BLOCK_TYPE_BUNDLE_AGE:
		if (cbor_read_uint(&r, &h->age_ms) < 0)
			return fail(p, -EBADMSG, "bundle age is not an unsigned integer");
		h->has_age = true;
		break;
	case BLOCK_TYPE_HOP_COUNT:
		if (cbor_read_array(&r, &n) < 0 || n != 2 ||
		    cbor_read_uint(&r, &h->hop_limit) < 0 || cbor_read_uint(&r, &h->hop_count) < 0)
			return fail(p, -EBADMSG, "hop count block is not [limit, count]");
		if (h->hop_limit < 1 || h->hop_limit > 255)
			return fail(p, -EBADMSG, "hop limit %llu outside 1..255",
				    (unsigned long long)h->hop_limit);
		h->has_hop_count = true;
		break;
	default: /* BLOCK_TYPE_TERN_PRIORITY */
		if (cbor_read_uint(&r, &v) < 0 || v > BUNDLE_PRIO_URGENT)
			return fail(p, -EBADMSG, "priority block is not 0, 1 or 2");
		h->priority = (uint8_t)v;
		break;
	}
	if (!cbor_reader_done(&r))
		return fail(p, -EBADMSG, "%s block has bytes after its value", block_name(type));
	return 0;
}

/* ---- canonical blocks, streamed ------------------------------------------------------ */

static int check_fields(struct bundle_parser *p)
{
	uint64_t type = p->field[F_TYPE], num = p->field[F_NUMBER], crc = p->field[F_CRC];

	if (p->after_payload)
		return fail(p, -EBADMSG,
			    type == BLOCK_TYPE_PAYLOAD ? "two payload blocks"
						       : "payload block is not the last block");
	if (crc > BUNDLE_CRC32C)
		return fail(p, -EBADMSG, "block %llu: unknown CRC type %llu",
			    (unsigned long long)num, (unsigned long long)crc);
	if ((p->items == 6) != (crc != BUNDLE_CRC_NONE))
		return fail(p, -EBADMSG, "block %llu: %llu items do not match CRC type %llu",
			    (unsigned long long)num, (unsigned long long)p->items,
			    (unsigned long long)crc);
	if (num == 0)
		return fail(p, -EBADMSG, "block number 0 on a non-primary block");
	if (type == BLOCK_TYPE_PAYLOAD && num != 1)
		return fail(p, -EBADMSG, "payload block has number %llu, not 1",
			    (unsigned long long)num);
	if (type != BLOCK_TYPE_PAYLOAD && num == 1)
		return fail(p, -EBADMSG,
			    "block number 1 on a block of type %llu (1 is the payload's)",
			    (unsigned long long)type);
	for (size_t i = 0; i < p->nblocks; i++)
		if (p->numbers[i] == num)
			return fail(p, -EBADMSG, "duplicate block number %llu",
				    (unsigned long long)num);
	if (p->nblocks >= BUNDLE_BLOCKS_MAX - 1)
		return fail(p, -EFBIG, "more than %d blocks", BUNDLE_BLOCKS_MAX);
	p->numbers[p->nblocks++] = num;
	return 0;
}

/* The data's length is known: decide what to do with the block's data. */
static int start_data(struct bundle_parser *p)
{
	struct bundle_header *h = &p->h;
	uint64_t type = p->field[F_TYPE], num = p->field[F_NUMBER], flags = p->field[F_FLAGS];
	uint64_t len = p->data_len;
	bool *seen = NULL;
	int ret;

	p->crc = crc_update(p->field[F_CRC], 0, p->prefix, p->prefix_len);
	switch (type) {
	case BLOCK_TYPE_PAYLOAD:
		if (len > p->lim.max_payload)
			return fail(p, -EFBIG, "payload of %llu bytes is over the limit of %llu",
				    (unsigned long long)len,
				    (unsigned long long)p->lim.max_payload);
		if ((h->flags & BUNDLE_F_FRAGMENT) && len > h->adu_length - h->frag_offset)
			return fail(p, -EBADMSG,
				    "fragment at offset %llu with %llu bytes overruns total ADU "
				    "length %llu",
				    (unsigned long long)h->frag_offset, (unsigned long long)len,
				    (unsigned long long)h->adu_length);
		h->payload_flags = flags;
		h->payload_crc_type = (enum bundle_crc)p->field[F_CRC];
		h->payload_len = len;
		p->id = bundle_id_new(h);
		if (!p->id)
			return fail(p, -ENOMEM, "out of memory");
		p->kind = D_PAYLOAD;
		if (p->cb.on_header) {
			ret = p->cb.on_header(p->ctx, h);
			if (ret < 0)
				return fail(p, ret, "bundle header refused by the caller");
		}
		return 0;
	case BLOCK_TYPE_PREVIOUS_NODE:
		seen = &p->seen_prev;
		break;
	case BLOCK_TYPE_BUNDLE_AGE:
		seen = &p->seen_age;
		break;
	case BLOCK_TYPE_HOP_COUNT:
		seen = &p->seen_hop;
		break;
	case BLOCK_TYPE_TERN_PRIORITY:
		seen = &p->seen_prio;
		break;
	default:
		break;
	}
	if (seen) {
		if (*seen)
			return fail(p, -EBADMSG, "two %s blocks", block_name(type));
		*seen = true;
		if (len > KNOWN_MAX)
			return fail(p, -EBADMSG, "%s block of %llu bytes is too large",
				    block_name(type), (unsigned long long)len);
		p->kind = D_KNOWN;
		p->klen = 0;
		return 0;
	}
	if (flags & BLOCK_F_DELETE_IF_UNPROCESSED)
		return fail(p, -ENOTSUP, "unknown block type %llu (block %llu) asks for deletion",
			    (unsigned long long)type, (unsigned long long)num);
	if (flags & BLOCK_F_DISCARD_IF_UNPROCESSED) {
		p->kind = D_SKIP;
		return 0;
	}
	if (p->nkept >= BUNDLE_EXTRA_BLOCKS_MAX)
		return fail(p, -EFBIG, "more than %d unknown extension blocks",
			    BUNDLE_EXTRA_BLOCKS_MAX);
	/* The CRC's bytes are counted as they come (keep_bytes): its head may be long. */
	if (len > BUNDLE_EXTRA_MAX || p->prefix_len + len > BUNDLE_EXTRA_MAX - h->extra_len)
		return fail(p, -EFBIG, "unknown extension blocks over %d bytes", BUNDLE_EXTRA_MAX);
	p->kind = D_KEEP;
	p->keep_start = h->extra_len;
	memcpy(h->extra + h->extra_len, p->prefix, p->prefix_len);
	p->keep_len = p->prefix_len;
	return 0;
}

static void start_block(struct bundle_parser *p)
{
	memset(&p->hd, 0, sizeof(p->hd));
	p->prefix_len = 0;
	p->nfield = 0;
	p->klen = 0;
	p->keep_len = 0;
}

/* Appends bytes of a kept block to h->extra. 0 or -EFBIG. */
static int keep_bytes(struct bundle_parser *p, const uint8_t *buf, size_t n)
{
	if (p->kind != D_KEEP)
		return 0;
	if (n > BUNDLE_EXTRA_MAX - p->keep_start - p->keep_len)
		return fail(p, -EFBIG, "unknown extension blocks over %d bytes", BUNDLE_EXTRA_MAX);
	memcpy(p->h.extra + p->keep_start + p->keep_len, buf, n);
	p->keep_len += n;
	return 0;
}

static int end_block(struct bundle_parser *p)
{
	int ret;

	switch (p->kind) {
	case D_PAYLOAD:
		bundle_id_final(p->id, p->idv);
		p->id = NULL;
		p->st = S_END;
		return 0;
	case D_KNOWN:
		ret = parse_known(p);
		if (ret < 0)
			return ret;
		break;
	case D_KEEP:
		p->h.extra_len += p->keep_len;
		p->nkept++;
		break;
	case D_SKIP:
		break;
	}
	p->st = S_BLOCK;
	start_block(p);
	return 0;
}

static int after_data(struct bundle_parser *p)
{
	if (p->field[F_CRC] == BUNDLE_CRC_NONE)
		return end_block(p);
	p->st = S_CRC_HEAD;
	return 0;
}

/* Feeds one byte of a head in the block prefix; 1 when the head is complete. */
static int prefix_head(struct bundle_parser *p, uint8_t byte, struct cbor_head *hd)
{
	int ret = cbor_head_feed(&p->hd, byte, hd);

	if (ret < 0)
		return fail(p, -EBADMSG, "malformed CBOR in a block header");
	p->prefix[p->prefix_len++] = byte;
	return ret;
}

static const char *scan_reason(enum cbor_scan_err e)
{
	switch (e) {
	case CBOR_SCAN_INDEF:
		return "indefinite-length item inside the primary block";
	case CBOR_SCAN_TAG:
		return "CBOR tag inside the primary block (bignums are not accepted)";
	case CBOR_SCAN_DEEP:
		return "primary block nested too deep";
	default:
		return "malformed CBOR in the primary block";
	}
}

/* Handles bytes from buf[0..len) in the current state; returns how many it used, or < 0. */
static long step(struct bundle_parser *p, const uint8_t *buf, size_t len)
{
	struct cbor_head hd;
	uint8_t byte = buf[0];
	size_t n;
	int ret;

	switch (p->st) {
	case S_START:
		if (byte != CBOR_INDEF_ARRAY)
			return fail(
			    p, -EBADMSG,
			    (byte & 0xe0) == 0x80
				? "bundle is a definite-length array, not indefinite (0x9f)"
				: "not a bundle: no indefinite-length array (0x9f) at the start");
		p->st = S_PRIMARY;
		return 1;
	case S_PRIMARY: {
		enum cbor_scan_err why;
		bool done;

		if (p->plen == 0 && byte == CBOR_BREAK)
			return fail(p, -EBADMSG, "bundle has no blocks");
		n = len < PRIMARY_MAX - p->plen ? len : PRIMARY_MAX - p->plen;
		ret = cbor_scan_feed(&p->scan, buf, n, &n, &done, &why);
		if (ret < 0)
			return fail(p, -EBADMSG, "%s", scan_reason(why));
		memcpy(p->pbuf + p->plen, buf, n);
		p->plen += n;
		if (done) {
			ret = parse_primary(p);
			if (ret < 0)
				return ret;
			p->st = S_BLOCK;
			start_block(p);
		} else if (p->plen == PRIMARY_MAX) {
			return fail(p, -EBADMSG, "primary block longer than %d bytes", PRIMARY_MAX);
		}
		return (long)n;
	}
	case S_BLOCK:
		if (p->prefix_len == 0 && byte == CBOR_BREAK)
			return fail(p, -EBADMSG, "no payload block");
		ret = prefix_head(p, byte, &hd);
		if (ret <= 0)
			return ret < 0 ? ret : 1;
		if (hd.major != CBOR_ARRAY || hd.indef)
			return fail(p, -EBADMSG,
				    hd.major == CBOR_ARRAY ? "indefinite-length block"
							   : "block is not an array");
		if (hd.arg != 5 && hd.arg != 6)
			return fail(p, -EBADMSG, "block array has %llu items, not 5 or 6",
				    (unsigned long long)hd.arg);
		p->items = hd.arg;
		p->st = S_FIELDS;
		return 1;
	case S_FIELDS:
		ret = prefix_head(p, byte, &hd);
		if (ret <= 0)
			return ret < 0 ? ret : 1;
		if (hd.major != CBOR_UINT) {
			static const char *const names[] = {"type", "number", "flags", "CRC type"};

			return fail(p, -EBADMSG, "block %s is not an unsigned integer",
				    names[p->nfield]);
		}
		p->field[p->nfield++] = hd.arg;
		if (p->nfield == 4) {
			ret = check_fields(p);
			if (ret < 0)
				return ret;
			p->st = S_DATA_HEAD;
		}
		return 1;
	case S_DATA_HEAD:
		ret = prefix_head(p, byte, &hd);
		if (ret <= 0)
			return ret < 0 ? ret : 1;
		if (hd.major != CBOR_BYTES || hd.indef)
			return fail(p, -EBADMSG,
				    "block %llu: data is not a definite-length byte string",
				    (unsigned long long)p->field[F_NUMBER]);
		p->data_len = p->data_left = hd.arg;
		ret = start_data(p);
		if (ret < 0)
			return ret;
		if (p->data_left == 0) {
			ret = after_data(p);
			return ret < 0 ? ret : 1;
		}
		p->st = S_DATA;
		return 1;
	case S_DATA:
		n = len < p->data_left ? len : (size_t)p->data_left;
		p->crc = crc_update(p->field[F_CRC], p->crc, buf, n);
		switch (p->kind) {
		case D_PAYLOAD:
			bundle_id_update(p->id, buf, n);
			if (p->cb.on_payload) {
				ret = p->cb.on_payload(p->ctx, buf, n);
				if (ret < 0)
					return fail(p, ret, "payload refused by the caller");
			}
			break;
		case D_KNOWN:
			memcpy(p->kbuf + p->klen, buf, n);
			p->klen += n;
			break;
		case D_KEEP:
			ret = keep_bytes(p, buf, n);
			if (ret < 0)
				return ret;
			break;
		case D_SKIP:
			break;
		}
		p->data_left -= n;
		if (p->data_left == 0) {
			ret = after_data(p);
			if (ret < 0)
				return ret;
		}
		return (long)n;
	case S_CRC_HEAD:
		ret = cbor_head_feed(&p->hd, byte, &hd);
		if (ret < 0)
			return fail(p, -EBADMSG, "malformed CBOR in a block CRC");
		p->crc = crc_update(p->field[F_CRC], p->crc, &byte, 1);
		if (keep_bytes(p, &byte, 1) < 0)
			return p->err;
		if (ret == 0)
			return 1;
		p->crc_len = crc_size(p->field[F_CRC]);
		if (hd.major != CBOR_BYTES || hd.indef || hd.arg != p->crc_len)
			return fail(p, -EBADMSG, "block %llu: CRC is not a %zu-byte string",
				    (unsigned long long)p->field[F_NUMBER], p->crc_len);
		p->crc_have = 0;
		p->st = S_CRC;
		return 1;
	case S_CRC: {
		static const uint8_t zero;

		p->crc_val[p->crc_have++] = byte;
		p->crc = crc_update(p->field[F_CRC], p->crc, &zero, 1);
		if (keep_bytes(p, &byte, 1) < 0)
			return p->err;
		if (p->crc_have < p->crc_len)
			return 1;
		if (!crc_matches(p->field[F_CRC], p->crc, p->crc_val)) {
			const char *name = block_name(p->field[F_TYPE]);

			if (name)
				return fail(p, -EBADMSG, "%s block CRC mismatch", name);
			return fail(p, -EBADMSG, "CRC mismatch in block %llu (type %llu)",
				    (unsigned long long)p->field[F_NUMBER],
				    (unsigned long long)p->field[F_TYPE]);
		}
		ret = end_block(p);
		return ret < 0 ? ret : 1;
	}
	case S_END:
		if (byte == CBOR_BREAK) {
			p->st = S_DONE;
			return 1;
		}
		if ((byte & 0xe0) == 0x80) {
			/* Read on far enough to say which rule the next block breaks. */
			p->after_payload = true;
			p->st = S_BLOCK;
			start_block(p);
			return 0;
		}
		return fail(p, -EBADMSG, "expected the final break (0xff) after the payload block");
	case S_DONE:
		/* No count: how many arrive in this call depends on how the input was cut. */
		return fail(p, -E2BIG, "bytes after the end of the bundle");
	default:
		return p->err;
	}
}

int bundle_parser_new(const struct bundle_limits *lim, const struct bundle_parser_cb *cb, void *ctx,
		      struct bundle_parser **out)
{
	struct bundle_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->lim.max_payload = lim ? lim->max_payload : UINT64_MAX;
	if (cb)
		p->cb = *cb;
	p->ctx = ctx;
	p->st = S_START;
	p->h.priority = BUNDLE_PRIO_NORMAL;
	*out = p;
	return 0;
}

void bundle_parser_free(struct bundle_parser *p)
{
	if (!p)
		return;
	bundle_id_free(p->id);
	free(p);
}

int bundle_parser_feed(struct bundle_parser *p, const uint8_t *buf, size_t len)
{
	size_t i = 0;

	if (p->st == S_ERROR)
		return p->err;
	p->fed += len;
	while (i < len) {
		long n = step(p, buf + i, len - i);

		if (n < 0)
			return (int)n;
		i += (size_t)n;
	}
	return 0;
}

int bundle_parser_finish(struct bundle_parser *p)
{
	switch (p->st) {
	case S_DONE:
		return 0;
	case S_ERROR:
		return p->err;
	case S_START:
		return fail(p, -EBADMSG, p->fed ? "truncated" : "empty input");
	case S_PRIMARY:
		return fail(p, -EBADMSG, "truncated in the primary block");
	case S_END:
		return fail(p, -EBADMSG, "truncated: the final break (0xff) is missing");
	default:
		break;
	}
	if (p->after_payload)
		return fail(p, -EBADMSG, "payload block is not the last block");
	if (p->st == S_BLOCK && p->prefix_len == 0)
		return fail(p, -EBADMSG, "truncated: no payload block");
	if (p->kind == D_PAYLOAD && p->st == S_DATA)
		return fail(p, -EBADMSG, "truncated in the payload: %llu of %llu bytes missing",
			    (unsigned long long)p->data_left, (unsigned long long)p->data_len);
	if (p->st == S_BLOCK || p->st == S_FIELDS)
		return fail(p, -EBADMSG, "truncated in a block header");
	return fail(p, -EBADMSG, "truncated in block %llu", (unsigned long long)p->field[F_NUMBER]);
}

const char *bundle_parser_error(const struct bundle_parser *p)
{
	return p->st == S_ERROR ? p->reason : "";
}

const struct bundle_header *bundle_parser_header(const struct bundle_parser *p)
{
	return &p->h;
}

void bundle_parser_id(const struct bundle_parser *p, uint8_t id[static 32])
{
	memcpy(id, p->idv, 32);
}
