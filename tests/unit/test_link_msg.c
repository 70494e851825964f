/* Link messages: pinned bytes, round trips of every type, and each refusal with its reason. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "relay/link_msg.h"
#include "test.h"

static uint8_t rec[LINK_RECORD_MAX];

static void fill_id(uint8_t id[LINK_ID_LEN], uint8_t v)
{
	memset(id, v, LINK_ID_LEN);
}

/* Parses and expects a refusal whose reason mentions what. */
static void refused(const uint8_t *buf, size_t len, const char *what)
{
	struct link_msg m;
	const char *why = NULL;
	CHECK_EQ(link_parse(buf, len, &m, &why), -EBADMSG);
	CHECK(why && strstr(why, what));
	if (!why || !strstr(why, what))
		fprintf(stderr, "  reason was %s, expected it to mention %s\n",
			why ? why : "(none)", what);
}

static void test_hello(void)
{
	static const uint8_t pinned[] = {0x01, 0x01, 0, 0, 0,	 0,    0x4b, 0x65,
					 0x72, 0x6e, 0, 0, 0xff, 0xef, 0x00, 0x3c};
	struct link_hello h = {
	    .version = 1, .node = 0x4b65726e, .max_record = 65519, .keepalive_s = 60};
	struct link_msg m;
	CHECK_EQ(link_encode_hello(rec, sizeof(rec), &h), (int)sizeof(pinned));
	CHECK_MEM(rec, pinned, sizeof(pinned));
	CHECK_EQ(link_parse(rec, sizeof(pinned), &m, NULL), 0);
	CHECK(m.type == LINK_HELLO && m.hello.version == 1 && m.hello.node == 0x4b65726e);
	CHECK(m.hello.max_record == 65519 && m.hello.keepalive_s == 60);

	uint8_t b[sizeof(pinned) + 1];
	memcpy(b, pinned, sizeof(pinned));
	refused(b, sizeof(pinned) - 1, "hello: wrong length");
	refused(b, sizeof(pinned) + 1, "hello: wrong length");
	b[12] = 0x1f; /* max_record 0x1fef = 8175 < 8192 */
	refused(b, sizeof(pinned), "max_record");
	memcpy(b, pinned, sizeof(pinned));
	memset(b + 2, 0, 8);
	refused(b, sizeof(pinned), "node 0");
	h.node = 0;
	CHECK_EQ(link_encode_hello(rec, sizeof(rec), &h), -EINVAL);
	h.node = 1;
	CHECK_EQ(link_encode_hello(rec, 15, &h), -ENOSPC);
}

static void test_lists(void)
{
	struct link_offer o[3], got;
	struct link_msg m;
	for (int i = 0; i < 3; i++) {
		fill_id(o[i].id, (uint8_t)(0xa0 + i));
		o[i].size = 1000u * (uint64_t)(i + 1) + (1ull << 40);
		o[i].priority = (uint8_t)(2 - i);
		o[i].expires_in_ms = 86400000ull * (uint64_t)(i + 1);
	}
	int n = link_encode_offer(rec, sizeof(rec), o, 3);
	CHECK_EQ(n, 3 + 3 * LINK_OFFER_ENTRY);
	CHECK(rec[0] == LINK_OFFER && rec[1] == 0 && rec[2] == 3);
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK_EQ(m.count, 3);
	for (size_t i = 0; i < 3 && m.count == 3; i++) {
		link_offer_at(&m, i, &got);
		CHECK(memcmp(&got.id, o[i].id, LINK_ID_LEN) == 0 && got.size == o[i].size);
		CHECK(got.priority == o[i].priority && got.expires_in_ms == o[i].expires_in_ms);
	}
	refused(rec, (size_t)n - 1, "does not match its count");
	rec[2] = 0;
	refused(rec, 3, "an empty list");
	rec[2] = 3;
	rec[3 + 40] = 3;
	refused(rec, (size_t)n, "priority");
	o[0].priority = 3;
	CHECK_EQ(link_encode_offer(rec, sizeof(rec), o, 1), -EINVAL);
	o[0].priority = 0;
	o[0].expires_in_ms = 0;
	CHECK_EQ(link_encode_offer(rec, sizeof(rec), o, 1), -EINVAL);
	CHECK_EQ(link_encode_offer(rec, sizeof(rec), o + 1, 0), -EINVAL);

	struct link_want w[2] = {{.offset = 0}, {.offset = 123456789}}, gw;
	fill_id(w[0].id, 1);
	fill_id(w[1].id, 2);
	n = link_encode_want(rec, sizeof(rec), w, 2);
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	link_want_at(&m, 1, &gw);
	CHECK(m.type == LINK_WANT && m.count == 2 && gw.offset == 123456789 && gw.id[0] == 2);

	struct link_refuse r = {.reason = LINK_REFUSE_DISK_FULL, .retry_after_s = 3600}, gr;
	fill_id(r.id, 9);
	n = link_encode_refuse(rec, sizeof(rec), &r, 1);
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	link_refuse_at(&m, 0, &gr);
	CHECK(gr.reason == LINK_REFUSE_DISK_FULL && gr.retry_after_s == 3600 && gr.id[31] == 9);
	rec[3 + 32] = 0;
	refused(rec, (size_t)n, "reason 0");

	uint8_t ids[2][LINK_ID_LEN];
	fill_id(ids[0], 5);
	fill_id(ids[1], 6);
	n = link_encode_ack(rec, sizeof(rec), ids[0], 2);
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK(m.count == 2 && link_ack_at(&m, 1)[0] == 6);

	/* The largest list that fits a record, and one more entry than fits. */
	size_t fit = link_list_fit(LINK_ACK, LINK_RECORD_MAX);
	CHECK_EQ(fit, (LINK_RECORD_MAX - 3) / LINK_ID_LEN);
	static uint8_t many[(LINK_RECORD_MAX / LINK_ID_LEN) + 1][LINK_ID_LEN];
	n = link_encode_ack(rec, sizeof(rec), many[0], fit);
	CHECK(n > 0 && (size_t)n <= LINK_RECORD_MAX);
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK_EQ(link_encode_ack(rec, sizeof(rec), many[0], fit + 1), -ENOSPC);
	CHECK_EQ(link_list_fit(LINK_HEAD, 1000), 0);
}

static void test_transfer(void)
{
	uint8_t id[LINK_ID_LEN], head[300], data[1000], tail[5] = {0x44, 1, 2, 3, 0xff};
	struct link_msg m;
	fill_id(id, 0x77);
	for (size_t i = 0; i < sizeof(head); i++)
		head[i] = (uint8_t)i;
	memset(data, 0x5a, sizeof(data));

	int n = link_encode_head(rec, sizeof(rec), id, 1ull << 33, head, sizeof(head));
	CHECK_EQ(n, 1 + 32 + 8 + (int)sizeof(head));
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK(m.type == LINK_HEAD && m.payload_len == 1ull << 33 && m.len == sizeof(head));
	CHECK(memcmp(m.id, id, LINK_ID_LEN) == 0 && memcmp(m.bytes, head, sizeof(head)) == 0);
	refused(rec, 41, "head: no bytes");
	CHECK_EQ(link_encode_head(rec, sizeof(rec), id, 0, head, 0), -EINVAL);

	n = link_encode_data(rec, sizeof(rec), id, 65536, data, sizeof(data));
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK(m.type == LINK_DATA && m.offset == 65536 && m.len == sizeof(data));
	CHECK_EQ(link_encode_data(rec, sizeof(rec), id, UINT64_MAX, data, 1), -EINVAL);
	CHECK_EQ(link_encode_data(rec, 100, id, 0, data, sizeof(data)), -ENOSPC);
	memset(rec + 33, 0xff, 8); /* offset 2^64 - 1 with 1000 bytes after it */
	refused(rec, (size_t)n, "past 2^64");
	CHECK_EQ(link_encode_data(rec, sizeof(rec), id, 0, data, LINK_RECORD_MAX), -EINVAL);

	n = link_encode_end(rec, sizeof(rec), id, tail, sizeof(tail));
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK(m.type == LINK_END && m.len == sizeof(tail) && m.bytes[4] == 0xff);
	refused(rec, 33, "end: tail");
	uint8_t long_tail[LINK_TAIL_MAX + 1] = {0};
	CHECK_EQ(link_encode_end(rec, sizeof(rec), id, long_tail, sizeof(long_tail)), -EINVAL);
	memset(rec + 33, 0, sizeof(long_tail));
	refused(rec, 33 + sizeof(long_tail), "end: tail");
}

static void test_small(void)
{
	struct link_msg m;
	int n = link_encode_ping(rec, sizeof(rec), LINK_PONG, 0x0102030405060708ull);
	CHECK_EQ(n, 9);
	CHECK_EQ(link_parse(rec, 9, &m, NULL), 0);
	CHECK(m.type == LINK_PONG && m.token == 0x0102030405060708ull);
	refused(rec, 8, "ping: wrong length");
	CHECK_EQ(link_encode_ping(rec, sizeof(rec), LINK_BYE, 1), -EINVAL);

	n = link_encode_bye(rec, sizeof(rec), LINK_BYE_IDLE, "keepalives unanswered: 3 × 60 s");
	CHECK(n > 0);
	CHECK_EQ(link_parse(rec, (size_t)n, &m, NULL), 0);
	CHECK(m.bye_reason == LINK_BYE_IDLE &&
	      strcmp(m.bye_text, "keepalives unanswered: 3 × 60 s") == 0);
	n = link_encode_bye(rec, sizeof(rec), LINK_BYE_DONE, NULL);
	CHECK_EQ(n, 2);
	CHECK(link_parse(rec, 2, &m, NULL) == 0 && m.bye_text[0] == '\0');

	/* What a hostile peer could put on an operator's terminal or in a log line. */
	static const char *const dirty[] = {"\x1b[2J",
					    "line\nforged",
					    "tab\there",
					    "\xc0\xaf",
					    "\xed\xa0\x80",
					    ("\xc2\x9b"
					     "31m"),
					    "\xf4\x90\x80\x80",
					    "cut \xe2\x82"};
	for (size_t i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++) {
		CHECK_EQ(link_encode_bye(rec, sizeof(rec), 0, dirty[i]), -EINVAL);
		rec[0] = LINK_BYE;
		rec[1] = 0;
		memcpy(rec + 2, dirty[i], strlen(dirty[i]));
		refused(rec, 2 + strlen(dirty[i]), "not clean UTF-8");
	}
	char long_text[LINK_BYE_TEXT_MAX + 2];
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	CHECK_EQ(link_encode_bye(rec, sizeof(rec), 0, long_text), -EINVAL);

	refused(rec, 0, "empty record");
	refused(rec, LINK_RECORD_MAX + 1, "too long");
	rec[0] = 0;
	refused(rec, 1, "unknown type");
	rec[0] = 12;
	refused(rec, 10, "unknown type");
}

int main(void)
{
	test_hello();
	test_lists();
	test_transfer();
	test_small();
	TEST_MAIN_END();
}
