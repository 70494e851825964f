/* Link messages: fixed big-endian layouts behind a type byte, checked whole before use. */
#include <errno.h>
#include <string.h>

#include "relay/link_msg.h"

#define HELLO_LEN 16 /* type, version, node u64, max_record u32, keepalive_s u16 */
#define LIST_HEAD 3  /* type, count u16 */
#define ID_HEAD	  (1 + LINK_ID_LEN)
#define U64_MSG	  9 /* PING, PONG: type, token u64 */

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static size_t entry_size(enum link_type type)
{
	switch (type) {
	case LINK_OFFER:
		return LINK_OFFER_ENTRY;
	case LINK_WANT:
		return LINK_WANT_ENTRY;
	case LINK_REFUSE:
		return LINK_REFUSE_ENTRY;
	case LINK_ACK:
		return LINK_ACK_ENTRY;
	default:
		return 0;
	}
}

size_t link_list_fit(enum link_type type, size_t cap)
{
	size_t e = entry_size(type);
	if (!e || cap < LIST_HEAD)
		return 0;
	size_t n = (cap - LIST_HEAD) / e;
	return n > UINT16_MAX ? UINT16_MAX : n;
}

/*
 * Text a peer sends for a log line: valid UTF-8 without control characters, so that a
 * hostile peer cannot put escape sequences on an operator's terminal or forge log lines.
 */
static bool clean_text(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = p[i];
		size_t n = c < 0x80		? 1
			   : (c & 0xe0) == 0xc0 ? 2
			   : (c & 0xf0) == 0xe0 ? 3
			   : (c & 0xf8) == 0xf0 ? 4
						: 0;
		if (n == 0 || n > len - i)
			return false;
		if (n == 1 && (c < 0x20 || c == 0x7f))
			return false;
		uint32_t cp = n == 1 ? c : c & (0x7f >> n);
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp < 0xa0))
			return false;
		i += n;
	}
	return true;
}

static int bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EBADMSG;
}

static int parse_list(const uint8_t *buf, size_t len, struct link_msg *m, const char **why)
{
	size_t e = entry_size(m->type);
	if (len < LIST_HEAD)
		return bad(why, "truncated list");
	m->count = (size_t)get_be(buf + 1, 2);
	m->list = buf + LIST_HEAD;
	if (m->count == 0)
		return bad(why, "an empty list");
	if (len != LIST_HEAD + m->count * e)
		return bad(why, "list length does not match its count");
	for (size_t i = 0; i < m->count; i++) {
		const uint8_t *p = m->list + i * e;
		if (m->type == LINK_OFFER && (p[40] > 2 || get_be(p + 41, 8) == 0))
			return bad(why, "offer: priority over 2 or no lifetime left");
		if (m->type == LINK_REFUSE && p[32] == 0)
			return bad(why, "refuse: reason 0");
	}
	return 0;
}

int link_parse(const uint8_t *buf, size_t len, struct link_msg *m, const char **why)
{
	memset(m, 0, sizeof(*m));
	if (len == 0 || len > LINK_RECORD_MAX)
		return bad(why, len ? "record too long" : "empty record");
	m->type = (enum link_type)buf[0];
	switch (m->type) {
	case LINK_HELLO:
		if (len != HELLO_LEN)
			return bad(why, "hello: wrong length");
		m->hello.version = buf[1];
		m->hello.node = get_be(buf + 2, 8);
		m->hello.max_record = (uint32_t)get_be(buf + 10, 4);
		m->hello.keepalive_s = (uint16_t)get_be(buf + 14, 2);
		if (m->hello.node == 0)
			return bad(why, "hello: node 0");
		if (m->hello.max_record < LINK_RECORD_MIN || m->hello.max_record > LINK_RECORD_MAX)
			return bad(why, "hello: max_record out of range");
		return 0;
	case LINK_OFFER:
	case LINK_WANT:
	case LINK_REFUSE:
	case LINK_ACK:
		return parse_list(buf, len, m, why);
	case LINK_HEAD:
	case LINK_DATA:
		if (len <= ID_HEAD + 8)
			return bad(why, m->type == LINK_HEAD ? "head: no bytes" : "data: no bytes");
		m->id = buf + 1;
		m->bytes = buf + ID_HEAD + 8;
		m->len = len - ID_HEAD - 8;
		if (m->type == LINK_HEAD) {
			m->payload_len = get_be(buf + ID_HEAD, 8);
			return 0;
		}
		m->offset = get_be(buf + ID_HEAD, 8);
		if (m->offset > UINT64_MAX - m->len)
			return bad(why, "data: offset past 2^64");
		return 0;
	case LINK_END:
		if (len <= ID_HEAD || len > ID_HEAD + LINK_TAIL_MAX)
			return bad(why, "end: tail of 0 or over 16 bytes");
		m->id = buf + 1;
		m->bytes = buf + ID_HEAD;
		m->len = len - ID_HEAD;
		return 0;
	case LINK_PING:
	case LINK_PONG:
		if (len != U64_MSG)
			return bad(why, "ping: wrong length");
		m->token = get_be(buf + 1, 8);
		return 0;
	case LINK_BYE:
		if (len < 2 || len > 2 + LINK_BYE_TEXT_MAX)
			return bad(why, "bye: wrong length");
		if (!clean_text(buf + 2, len - 2))
			return bad(why, "bye: text not clean UTF-8");
		m->bye_reason = buf[1];
		memcpy(m->bye_text, buf + 2, len - 2);
		m->bye_text[len - 2] = '\0';
		return 0;
	}
	return bad(why, "unknown type");
}

void link_offer_at(const struct link_msg *m, size_t i, struct link_offer *out)
{
	const uint8_t *p = m->list + i * LINK_OFFER_ENTRY;
	memcpy(out->id, p, LINK_ID_LEN);
	out->size = get_be(p + 32, 8);
	out->priority = p[40];
	out->expires_in_ms = get_be(p + 41, 8);
}

void link_want_at(const struct link_msg *m, size_t i, struct link_want *out)
{
	const uint8_t *p = m->list + i * LINK_WANT_ENTRY;
	memcpy(out->id, p, LINK_ID_LEN);
	out->offset = get_be(p + 32, 8);
}

void link_refuse_at(const struct link_msg *m, size_t i, struct link_refuse *out)
{
	const uint8_t *p = m->list + i * LINK_REFUSE_ENTRY;
	memcpy(out->id, p, LINK_ID_LEN);
	out->reason = p[32];
	out->retry_after_s = (uint32_t)get_be(p + 33, 4);
}

const uint8_t *link_ack_at(const struct link_msg *m, size_t i)
{
	return m->list + i * LINK_ACK_ENTRY;
}

/* ---- encoders ---------------------------------------------------------------------- */

int link_encode_hello(uint8_t *out, size_t cap, const struct link_hello *h)
{
	if (h->node == 0 || h->max_record < LINK_RECORD_MIN || h->max_record > LINK_RECORD_MAX)
		return -EINVAL;
	if (cap < HELLO_LEN)
		return -ENOSPC;
	out[0] = LINK_HELLO;
	out[1] = h->version;
	put_be(out + 2, h->node, 8);
	put_be(out + 10, h->max_record, 4);
	put_be(out + 14, h->keepalive_s, 2);
	return HELLO_LEN;
}

static int list_start(uint8_t *out, size_t cap, enum link_type type, size_t n)
{
	if (n == 0 || n > UINT16_MAX)
		return -EINVAL;
	if (n > link_list_fit(type, cap < LINK_RECORD_MAX ? cap : LINK_RECORD_MAX))
		return -ENOSPC;
	out[0] = (uint8_t)type;
	put_be(out + 1, n, 2);
	return 0;
}

int link_encode_offer(uint8_t *out, size_t cap, const struct link_offer *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].priority > 2 || e[i].expires_in_ms == 0)
			return -EINVAL;
	int ret = list_start(out, cap, LINK_OFFER, n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + LIST_HEAD + i * LINK_OFFER_ENTRY;
		memcpy(p, e[i].id, LINK_ID_LEN);
		put_be(p + 32, e[i].size, 8);
		p[40] = e[i].priority;
		put_be(p + 41, e[i].expires_in_ms, 8);
	}
	return (int)(LIST_HEAD + n * LINK_OFFER_ENTRY);
}

int link_encode_want(uint8_t *out, size_t cap, const struct link_want *e, size_t n)
{
	int ret = list_start(out, cap, LINK_WANT, n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + LIST_HEAD + i * LINK_WANT_ENTRY;
		memcpy(p, e[i].id, LINK_ID_LEN);
		put_be(p + 32, e[i].offset, 8);
	}
	return (int)(LIST_HEAD + n * LINK_WANT_ENTRY);
}

int link_encode_refuse(uint8_t *out, size_t cap, const struct link_refuse *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].reason == 0)
			return -EINVAL;
	int ret = list_start(out, cap, LINK_REFUSE, n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + LIST_HEAD + i * LINK_REFUSE_ENTRY;
		memcpy(p, e[i].id, LINK_ID_LEN);
		p[32] = e[i].reason;
		put_be(p + 33, e[i].retry_after_s, 4);
	}
	return (int)(LIST_HEAD + n * LINK_REFUSE_ENTRY);
}

int link_encode_ack(uint8_t *out, size_t cap, const uint8_t *ids, size_t n)
{
	int ret = list_start(out, cap, LINK_ACK, n);
	if (ret < 0)
		return ret;
	memcpy(out + LIST_HEAD, ids, n * LINK_ID_LEN);
	return (int)(LIST_HEAD + n * LINK_ACK_ENTRY);
}

static int id_record(uint8_t *out, size_t cap, enum link_type type, const uint8_t *id,
		     const uint8_t *u64, const uint8_t *bytes, size_t len)
{
	size_t head = ID_HEAD + (u64 ? 8 : 0);
	if (len > LINK_RECORD_MAX - head)
		return -EINVAL;
	if (cap < head + len)
		return -ENOSPC;
	out[0] = (uint8_t)type;
	memcpy(out + 1, id, LINK_ID_LEN);
	if (u64)
		memcpy(out + ID_HEAD, u64, 8);
	memcpy(out + head, bytes, len);
	return (int)(head + len);
}

int link_encode_head(uint8_t *out, size_t cap, const uint8_t id[static LINK_ID_LEN],
		     uint64_t payload_len, const uint8_t *head, size_t len)
{
	uint8_t n[8];
	if (len == 0)
		return -EINVAL;
	put_be(n, payload_len, 8);
	return id_record(out, cap, LINK_HEAD, id, n, head, len);
}

int link_encode_data(uint8_t *out, size_t cap, const uint8_t id[static LINK_ID_LEN],
		     uint64_t offset, const uint8_t *data, size_t len)
{
	uint8_t n[8];
	if (len == 0 || offset > UINT64_MAX - len)
		return -EINVAL;
	put_be(n, offset, 8);
	return id_record(out, cap, LINK_DATA, id, n, data, len);
}

int link_encode_end(uint8_t *out, size_t cap, const uint8_t id[static LINK_ID_LEN],
		    const uint8_t *tail, size_t len)
{
	if (len == 0 || len > LINK_TAIL_MAX)
		return -EINVAL;
	return id_record(out, cap, LINK_END, id, NULL, tail, len);
}

int link_encode_ping(uint8_t *out, size_t cap, enum link_type type, uint64_t token)
{
	if (type != LINK_PING && type != LINK_PONG)
		return -EINVAL;
	if (cap < U64_MSG)
		return -ENOSPC;
	out[0] = (uint8_t)type;
	put_be(out + 1, token, 8);
	return U64_MSG;
}

int link_encode_bye(uint8_t *out, size_t cap, uint8_t reason, const char *text)
{
	size_t len = text ? strlen(text) : 0;
	if (len > LINK_BYE_TEXT_MAX || !clean_text((const uint8_t *)text, len))
		return -EINVAL;
	if (cap < 2 + len)
		return -ENOSPC;
	out[0] = LINK_BYE;
	out[1] = reason;
	if (len)
		memcpy(out + 2, text, len);
	return (int)(2 + len);
}

const char *link_refuse_name(uint8_t r)
{
	static const char *const names[] = {
	    [LINK_REFUSE_TOO_BIG] = "too big",	   [LINK_REFUSE_QUOTA] = "over quota",
	    [LINK_REFUSE_DISK_FULL] = "disk full", [LINK_REFUSE_EXPIRED] = "expired",
	    [LINK_REFUSE_POLICY] = "policy",	   [LINK_REFUSE_BAD] = "failed its checks",
	    [LINK_REFUSE_LATER] = "busy",
	};
	return r < sizeof(names) / sizeof(names[0]) && names[r] ? names[r] : "not now";
}
