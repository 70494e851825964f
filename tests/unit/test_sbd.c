/* The SBD dialogue: init, SBDWB and its failures, SBDIX, retry, check, SBDRB, SBDRING, timeouts. */
#include <errno.h>
#include <stdint.h>

#include "test.h"
#include "transports/sbd.h"

#define EV_MAX 64

struct seen {
	struct sbd *s;
	enum sbd_event ev[EV_MAX];
	enum sbd_state state[EV_MAX]; /* the state while the event was told */
	struct sbd_result r[EV_MAX];
	char detail[EV_MAX][160];
	uint8_t mt[SBD_MT_MAX];
	size_t mt_len;
	size_t n;
};

static void on_event(void *ctx, enum sbd_event ev, const struct sbd_result *r, const uint8_t *mt,
		     size_t mt_len, const char *detail)
{
	struct seen *w = ctx;
	CHECK(r != NULL);
	CHECK(detail != NULL);
	CHECK((ev == SBD_EV_MT) == (mt != NULL));
	if (w->n >= EV_MAX)
		return;
	w->ev[w->n] = ev;
	w->state[w->n] = sbd_state(w->s);
	w->r[w->n] = *r;
	snprintf(w->detail[w->n], sizeof(w->detail[0]), "%s", detail);
	if (mt) {
		CHECK(mt_len >= 1 && mt_len <= SBD_MT_MAX);
		memcpy(w->mt, mt, mt_len);
		w->mt_len = mt_len;
	}
	w->n++;
}

/* What the modem would read: all of sbd_output. */
static uint8_t wire[1024];
static size_t wire_len;

static const char *sent(struct sbd *s, uint64_t now)
{
	const uint8_t *out;
	size_t n;
	wire_len = 0;
	while ((n = sbd_output(s, now, &out)) > 0 && wire_len + n < sizeof(wire)) {
		memcpy(wire + wire_len, out, n);
		wire_len += n;
		sbd_consumed(s, n);
	}
	wire[wire_len] = 0;
	return (const char *)wire;
}

static void say(struct sbd *s, const char *text, uint64_t now)
{
	sbd_input(s, (const uint8_t *)text, strlen(text), now);
}

/* The modem's text, one byte per sbd_input. */
static void say_bytewise(struct sbd *s, const char *text, uint64_t now)
{
	for (size_t i = 0; text[i]; i++)
		sbd_input(s, (const uint8_t *)text + i, 1, now);
}

static uint16_t sum16(const uint8_t *b, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += b[i];
	return (uint16_t)sum;
}

static struct sbd *ready_modem(struct seen *w)
{
	struct sbd *s = NULL;
	CHECK_EQ(sbd_new(on_event, w, &s), 0);
	w->s = s;
	CHECK_EQ(sbd_state(s), SBD_FAILED);
	CHECK_EQ(sbd_deadline(s, 0), UINT64_MAX);
	sbd_start(s, 0);
	CHECK_EQ(sbd_state(s), SBD_INIT);
	CHECK_EQ(sbd_deadline(s, 0), 0); /* output waits */
	CHECK(!strcmp(sent(s, 0), "AT\r"));
	/* Echo is on until ATE0: "AT<CR>" comes back before the result, and is no result. */
	say(s, "AT\r", 1);
	CHECK(!strcmp(sent(s, 1), ""));
	say(s, "\r\nOK\r\n", 2);
	CHECK(!strcmp(sent(s, 2), "ATE0\r"));
	say(s, "ATE0\r\r\nOK\r\n", 3);
	CHECK(!strcmp(sent(s, 3), "AT&K0\r"));
	say(s, "\r\nOK\r\n", 4);
	CHECK(!strcmp(sent(s, 4), "AT+SBDMTA=1\r"));
	say(s, "\r\nOK\r\n", 5);
	CHECK(!strcmp(sent(s, 5), "AT+SBDD0\r"));
	CHECK_EQ(sbd_state(s), SBD_INIT);
	CHECK_EQ(w->n, 0);
	say(s, "\r\n0\r\n\r\nOK\r\n", 6);
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	CHECK_EQ(w->n, 1);
	CHECK_EQ(w->ev[0], SBD_EV_READY);
	CHECK_EQ(w->r[0].mo_status, -1);
	CHECK_EQ(sbd_deadline(s, 6), UINT64_MAX);
	CHECK(!sbd_mo_loaded(s));
	w->n = 0;
	return s;
}

/* sbd_send of msg, READY, and the bytes on the wire checked: the modem now has them. */
static void write_msg(struct sbd *s, const uint8_t *msg, size_t len, uint64_t t)
{
	char cmd[32];
	CHECK_EQ(sbd_send(s, msg, len, t), 0);
	CHECK_EQ(sbd_state(s), SBD_WRITING);
	snprintf(cmd, sizeof(cmd), "AT+SBDWB=%zu\r", len);
	CHECK(!strcmp(sent(s, t), cmd));
	/* The manual gives READY's bytes: 52 45 41 44 59 0D 0A. */
	say(s, "READY\r\n", t + 10);
	sent(s, t + 10);
	CHECK_EQ(wire_len, len + 2);
	CHECK_MEM(wire, msg, len);
	uint16_t sum = sum16(msg, len);
	CHECK_EQ(wire[len], sum >> 8);
	CHECK_EQ(wire[len + 1], sum & 0xff);
}

/* A send up to AT+SBDIX on the wire. */
static void send_to_session(struct sbd *s, const uint8_t *msg, size_t len, uint64_t t)
{
	write_msg(s, msg, len, t);
	say(s, "\r\n0\r\n\r\nOK\r\n", t + 20);
	CHECK(sbd_mo_loaded(s));
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	CHECK(!strcmp(sent(s, t + 20), "AT+SBDIX\r"));
}

static void test_init_failures(void)
{
	struct seen w = {0};
	struct sbd *s;
	CHECK_EQ(sbd_new(on_event, &w, &s), 0);
	w.s = s;
	uint8_t m = 'x';
	CHECK_EQ(sbd_send(s, &m, 1, 0), -EBUSY); /* not started */
	sbd_start(s, 0);
	CHECK_EQ(sbd_send(s, &m, 1, 0), -EBUSY);
	CHECK_EQ(sbd_check(s, 0), -EBUSY);
	CHECK_EQ(sbd_retry(s, 0), -EBUSY);
	sent(s, 0);
	say(s, "\r\nOK\r\n", 1);
	sent(s, 1);
	say(s, "\r\nOK\r\n", 2);
	CHECK(!strcmp(sent(s, 2), "AT&K0\r"));
	/* A modem that refuses one: the init fails, naming it, and is tried again later. */
	say(s, "\r\nERROR\r\n", 3);
	CHECK_EQ(sbd_state(s), SBD_FAILED);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(w.ev[0], SBD_EV_MODEM_FAILED);
	CHECK(strstr(w.detail[0], "AT&K0") && strstr(w.detail[0], "ERROR"));
	CHECK(!strcmp(sent(s, 4), ""));
	uint64_t again = sbd_deadline(s, 4);
	CHECK_EQ(again, 3 + 30000);
	sbd_poll(s, again - 1);
	CHECK_EQ(sbd_state(s), SBD_FAILED);
	sbd_poll(s, again);
	CHECK_EQ(sbd_state(s), SBD_INIT);
	CHECK(!strcmp(sent(s, again), "AT\r"));
	/* No answer at all (the modem is off): a failure after a few seconds. */
	sbd_poll(s, again + 1000);
	CHECK_EQ(sbd_state(s), SBD_INIT);
	uint64_t t = sbd_deadline(s, again + 1000);
	CHECK(t > again + 1000 && t <= again + 10000);
	sbd_poll(s, t);
	CHECK_EQ(sbd_state(s), SBD_FAILED);
	CHECK_EQ(w.ev[1], SBD_EV_MODEM_FAILED);
	CHECK(strstr(w.detail[1], "AT:") && strstr(w.detail[1], "no answer"));
	/* AT+SBDD0 answered 1: it could not clear the buffer. */
	sbd_start(s, t);
	for (int i = 0; i < 4; i++) {
		sent(s, t);
		say(s, "\r\nOK\r\n", t);
	}
	CHECK(!strcmp(sent(s, t), "AT+SBDD0\r"));
	say(s, "\r\n1\r\n\r\nOK\r\n", t);
	CHECK_EQ(sbd_state(s), SBD_FAILED);
	CHECK_EQ(w.ev[2], SBD_EV_MODEM_FAILED);
	CHECK(strstr(w.detail[2], "AT+SBDD0"));
	CHECK_EQ(w.n, 3);
	sbd_free(s);
	sbd_free(NULL);
}

static void test_send(void)
{
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	uint8_t big[SBD_MO_MAX + 1] = {0};
	CHECK_EQ(sbd_send(s, big, 0, 10), -EINVAL);
	CHECK_EQ(sbd_send(s, big, SBD_MO_MAX + 1, 10), -EINVAL);
	CHECK_EQ(sbd_retry(s, 10), -ENOMSG); /* nothing in the MO buffer */
	/* The manual's example: "hello" is 68 65 6c 6c 6f and the checksum 02 14. */
	CHECK_EQ(sbd_send(s, (const uint8_t *)"hello", 5, 100), 0);
	CHECK_EQ(sbd_send(s, (const uint8_t *)"hello", 5, 100), -EBUSY);
	CHECK_EQ(sbd_check(s, 100), -EBUSY);
	CHECK(!strcmp(sent(s, 100), "AT+SBDWB=5\r"));
	/* Before READY nothing more goes out. */
	say(s, "\r\nOK\r\n", 105);
	CHECK(!strcmp(sent(s, 105), ""));
	say(s, "READY\r\n", 110);
	sent(s, 110);
	CHECK_EQ(wire_len, 7);
	CHECK_MEM(wire, "\x68\x65\x6c\x6c\x6f\x02\x14", 7);
	CHECK_EQ(sbd_state(s), SBD_WRITING);
	say_bytewise(s, "\r\n0\r\n\r\nOK\r\n", 120);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	CHECK(!strcmp(sent(s, 120), "AT+SBDIX\r"));
	CHECK_EQ(sbd_send(s, big, 1, 121), -EBUSY);
	/* A minute on the air, then the result, one byte at a time. */
	sbd_poll(s, 60120);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	say_bytewise(s, "\r\n+SBDIX: 0, 12, 0, 0, 0, 0\r\n", 61000);
	CHECK_EQ(w.n, 0); /* its OK first */
	say(s, "\r\nOK\r\n", 61001);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(w.ev[0], SBD_EV_SENT);
	CHECK_EQ(w.state[0], SBD_IDLE);
	CHECK_EQ(w.r[0].mo_status, 0);
	CHECK_EQ(w.r[0].momsn, 12);
	CHECK_EQ(w.r[0].mt_status, 0);
	CHECK_EQ(w.r[0].mt_queued, 0);
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	CHECK(!sbd_mo_loaded(s));
	CHECK_EQ(sbd_deadline(s, 61001), UINT64_MAX);
	CHECK(!strcmp(sent(s, 61001), ""));
	/* The largest message, the fields of +SBDIX without spaces, another success code. */
	for (size_t i = 0; i < SBD_MO_MAX; i++)
		big[i] = (uint8_t)(0xff - i);
	send_to_session(s, big, SBD_MO_MAX, 70000);
	CHECK(!strcmp((const char *)wire, "AT+SBDIX\r"));
	say(s, "\r\n+SBDIX:2,13,0,0,0,3\r\n\r\nOK\r\n", 80000);
	CHECK_EQ(w.n, 2);
	CHECK_EQ(w.ev[1], SBD_EV_SENT);
	CHECK_EQ(w.r[1].mo_status, 2);
	CHECK_EQ(w.r[1].momsn, 13);
	CHECK_EQ(w.r[1].mt_queued, 3);
	sbd_free(s);
}

static void test_write_failures(void)
{
	static const char *const answers[] = {"\r\n1\r\n", "\r\n2\r\n\r\nOK\r\n",
					      "\r\n3\r\n\r\nOK\r\n"};
	static const char *const names[] = {"timeout", "checksum", "size"};
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	uint64_t t = 1000;
	for (size_t i = 0; i < 3; i++, t += 1000) {
		write_msg(s, (const uint8_t *)"abc", 3, t);
		say(s, answers[i], t + 100);
		CHECK_EQ(w.n, i + 1);
		CHECK_EQ(w.ev[i], SBD_EV_SESSION_FAILED);
		CHECK_EQ(w.state[i], SBD_IDLE);
		CHECK_EQ(w.r[i].mo_status, -1);
		CHECK(strstr(w.detail[i], "AT+SBDWB=3") && strstr(w.detail[i], names[i]));
		CHECK_EQ(sbd_state(s), SBD_IDLE);
		CHECK(!sbd_mo_loaded(s));
		CHECK_EQ(sbd_retry(s, t + 100), -ENOMSG); /* sbd_send it again */
		CHECK(!strcmp(sent(s, t + 100), ""));
	}
	/* A size refused at once: 3 and OK, no READY. */
	CHECK_EQ(sbd_send(s, (const uint8_t *)"abc", 3, t), 0);
	sent(s, t);
	say(s, "\r\n3\r\n\r\nOK\r\n", t + 10);
	CHECK_EQ(w.ev[3], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[3], "size"));
	CHECK(!strcmp(sent(s, t + 10), ""));
	/* ERROR to the command. */
	CHECK_EQ(sbd_send(s, (const uint8_t *)"abc", 3, t), 0);
	sent(s, t);
	say(s, "\r\nERROR\r\n", t + 10);
	CHECK_EQ(w.ev[4], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[4], "ERROR"));
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	/* And the next send goes through. */
	send_to_session(s, (const uint8_t *)"abc", 3, t + 100);
	say(s, "\r\n+SBDIX: 0, 1, 0, 0, 0, 0\r\n\r\nOK\r\n", t + 5000);
	CHECK_EQ(w.ev[5], SBD_EV_SENT);
	CHECK_EQ(w.n, 6);
	sbd_free(s);
}

static void test_failed_session_retry(void)
{
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	send_to_session(s, (const uint8_t *)"ping", 4, 100);
	say(s, "\r\n+SBDIX: 32, 12, 2, 0, 0, 0\r\n\r\nOK\r\n", 9000);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(w.ev[0], SBD_EV_SESSION_FAILED);
	CHECK_EQ(w.state[0], SBD_IDLE);
	CHECK_EQ(w.r[0].mo_status, 32);
	CHECK_EQ(w.r[0].mt_status, 2);
	CHECK(strstr(w.detail[0], "32") && strstr(w.detail[0], "no network service"));
	/* The message is still in the modem: a session again, without writing it again. */
	CHECK(sbd_mo_loaded(s));
	CHECK_EQ(sbd_retry(s, 40000), 0);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	CHECK(!strcmp(sent(s, 40000), "AT+SBDIX\r"));
	CHECK_EQ(sbd_retry(s, 40000), -EBUSY);
	/* ERROR to it (the modem is busy, say): a failure, the message still kept. */
	say(s, "\r\nERROR\r\n", 40010);
	CHECK_EQ(w.n, 2);
	CHECK_EQ(w.ev[1], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[1], "ERROR"));
	CHECK(sbd_mo_loaded(s));
	CHECK_EQ(sbd_retry(s, 41000), 0);
	CHECK(!strcmp(sent(s, 41000), "AT+SBDIX\r"));
	/* Spaces on both sides of the commas. */
	say(s, "\r\n+SBDIX: 0 , 12 , 0 , 0 , 0 , 0 \r\n\r\nOK\r\n", 52000);
	CHECK_EQ(w.n, 3);
	CHECK_EQ(w.ev[2], SBD_EV_SENT);
	CHECK_EQ(w.r[2].momsn, 12);
	CHECK(!sbd_mo_loaded(s));
	CHECK_EQ(sbd_retry(s, 52000), -ENOMSG);
	sbd_free(s);
}

/* The SBDRB reply: length, message, checksum (good or not), OK. Its length in *n. */
static size_t rb_reply(uint8_t *buf, const uint8_t *msg, size_t len, bool bad_sum)
{
	uint16_t sum = (uint16_t)(sum16(msg, len) + (bad_sum ? 1 : 0));
	buf[0] = (uint8_t)(len >> 8);
	buf[1] = (uint8_t)len;
	memcpy(buf + 2, msg, len);
	buf[len + 2] = (uint8_t)(sum >> 8);
	buf[len + 3] = (uint8_t)sum;
	memcpy(buf + len + 4, "\r\nOK\r\n", 6);
	return len + 10;
}

/* A send whose session says an MT message came: SENT, then AT+SBDRB on the wire. */
static void session_with_mt(struct sbd *s, struct seen *w, size_t mt_len, uint64_t t)
{
	char line[80];
	size_t n = w->n;
	send_to_session(s, (const uint8_t *)"q", 1, t);
	snprintf(line, sizeof(line), "\r\n+SBDIX: 0, 20, 1, 7, %zu, 2\r\n\r\nOK\r", mt_len);
	/* The LF after OK comes later, once AT+SBDRB is out: it is not the length. */
	say(s, line, t + 5000);
	CHECK_EQ(w->n, n + 1);
	CHECK_EQ(w->ev[n], SBD_EV_SENT);
	CHECK_EQ(w->state[n], SBD_READING);
	CHECK_EQ(w->r[n].mt_status, 1);
	CHECK_EQ(sbd_state(s), SBD_READING);
	CHECK_EQ(sbd_send(s, (const uint8_t *)"q", 1, t + 5000), -EBUSY);
	CHECK(!strcmp(sent(s, t + 5000), "AT+SBDRB\r"));
	say(s, "\n", t + 5001);
}

static void test_mt(void)
{
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	uint8_t msg[SBD_MT_MAX + 40], reply[SBD_MT_MAX + 60];
	/* A message that holds CR LF OK CR LF and SBDRING: binary, not lines. */
	static const char body[] = "hi\r\nOK\r\nSBDRING\r\n+SBDIX: 5, 5, 5, 5, 5, 5\r\n";
	size_t len = sizeof(body) - 1;
	memcpy(msg, body, len);
	session_with_mt(s, &w, len, 1000);
	size_t n = rb_reply(reply, msg, len, false);
	/* Over several sbd_input calls: 1, 2, 3, ... bytes. */
	for (size_t off = 0, k = 1; off < n; off += k, k++)
		sbd_input(s, reply + off, off + k <= n ? k : n - off, 6100);
	CHECK_EQ(w.n, 2);
	CHECK_EQ(w.ev[1], SBD_EV_MT);
	CHECK_EQ(w.state[1], SBD_IDLE);
	CHECK_EQ(w.mt_len, len);
	CHECK_MEM(w.mt, body, len);
	CHECK_EQ(w.r[1].mtmsn, 7);
	CHECK_EQ(w.r[1].mt_queued, 2);
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	CHECK_EQ(sbd_deadline(s, 6100), UINT64_MAX);

	/* The largest, 270 bytes (length 01 0e), byte by byte. */
	for (size_t i = 0; i < SBD_MT_MAX; i++)
		msg[i] = (uint8_t)(i * 7);
	session_with_mt(s, &w, SBD_MT_MAX, 10000);
	n = rb_reply(reply, msg, SBD_MT_MAX, false);
	for (size_t i = 0; i < n; i++)
		sbd_input(s, reply + i, 1, 15100);
	CHECK_EQ(w.n, 4);
	CHECK_EQ(w.ev[3], SBD_EV_MT);
	CHECK_EQ(w.mt_len, SBD_MT_MAX);
	CHECK_MEM(w.mt, msg, SBD_MT_MAX);

	/* A bad checksum: reported and dropped. */
	w.mt_len = 0;
	session_with_mt(s, &w, 5, 20000);
	n = rb_reply(reply, (const uint8_t *)"hello", 5, true);
	sbd_input(s, reply, n, 25100);
	CHECK_EQ(w.n, 6);
	CHECK_EQ(w.ev[5], SBD_EV_MT_FAILED);
	CHECK_EQ(w.state[5], SBD_IDLE);
	CHECK(strstr(w.detail[5], "checksum"));
	CHECK_EQ(w.mt_len, 0);
	CHECK_EQ(sbd_state(s), SBD_IDLE);

	/* A length over 270 (300: 01 2c): reported, and its bytes skipped until the OK. */
	for (size_t i = 0; i < 300; i++)
		msg[i] = (uint8_t)('a' + i % 26);
	uint8_t over[320];
	session_with_mt(s, &w, 300, 30000);
	n = rb_reply(over, msg, 300, false);
	sbd_input(s, over, 100, 35100);
	sbd_input(s, over + 100, n - 100, 35101);
	CHECK_EQ(w.n, 8);
	CHECK_EQ(w.ev[7], SBD_EV_MT_FAILED);
	CHECK(strstr(w.detail[7], "300"));
	CHECK_EQ(w.mt_len, 0);
	CHECK_EQ(sbd_state(s), SBD_IDLE);

	/* An empty MT buffer, though +SBDIX said 1: 00 00 00 00. */
	session_with_mt(s, &w, 3, 40000);
	n = rb_reply(reply, msg, 0, false);
	sbd_input(s, reply, n, 45100);
	CHECK_EQ(w.n, 10);
	CHECK_EQ(w.ev[9], SBD_EV_MT_FAILED);
	CHECK(strstr(w.detail[9], "empty"));

	/* An echo of AT+SBDRB, and SBDRING, in front of the reply; ERROR to it. */
	session_with_mt(s, &w, 5, 50000);
	say(s, "AT+SBDRB\r\r\nSBDRING\r\n", 55100);
	n = rb_reply(reply, (const uint8_t *)"hello", 5, false);
	sbd_input(s, reply, n, 55100);
	CHECK_EQ(w.n, 13);
	CHECK_EQ(w.ev[11], SBD_EV_RING);
	CHECK_EQ(w.ev[12], SBD_EV_MT);
	CHECK_MEM(w.mt, "hello", 5);
	session_with_mt(s, &w, 5, 60000);
	say(s, "\r\nERROR\r\n", 65100);
	CHECK_EQ(w.n, 15);
	CHECK_EQ(w.ev[14], SBD_EV_MT_FAILED);
	CHECK(strstr(w.detail[14], "ERROR"));
	CHECK_EQ(sbd_state(s), SBD_IDLE);

	/* A failed session that still got an MT message reads it too. */
	send_to_session(s, (const uint8_t *)"q", 1, 70000);
	say(s, "\r\n+SBDIX: 18, 21, 1, 8, 5, 0\r\n\r\nOK\r\n", 75000);
	CHECK_EQ(w.ev[15], SBD_EV_SESSION_FAILED);
	CHECK_EQ(w.state[15], SBD_READING);
	CHECK(sbd_mo_loaded(s));
	CHECK(!strcmp(sent(s, 75000), "AT+SBDRB\r"));
	sbd_input(s, reply, n, 75100);
	CHECK_EQ(w.ev[16], SBD_EV_MT);
	CHECK_EQ(w.r[16].mtmsn, 8);
	CHECK_EQ(w.n, 17);
	sbd_free(s);
}

static void test_check_and_ring(void)
{
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	say(s, "\r\nSBDRING\r\n", 100);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(w.ev[0], SBD_EV_RING);
	CHECK_EQ(w.r[0].mo_status, -1);
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	CHECK(!strcmp(sent(s, 100), ""));
	/* The mailbox check: the MO buffer cleared, a session, CHECKED, then the message read. */
	CHECK_EQ(sbd_check(s, 200), 0);
	CHECK_EQ(sbd_state(s), SBD_WRITING);
	CHECK(!strcmp(sent(s, 200), "AT+SBDD0\r"));
	say(s, "\r\n0\r\n\r\nOK\r\n", 210);
	CHECK(!strcmp(sent(s, 210), "AT+SBDIX\r"));
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	say(s, "\r\n+SBDIX: 0, 30, 1, 9, 3, 0\r\n\r\nOK\r\n", 20000);
	CHECK_EQ(w.n, 2);
	CHECK_EQ(w.ev[1], SBD_EV_CHECKED);
	CHECK_EQ(w.r[1].mt_status, 1);
	CHECK(!strcmp(sent(s, 20000), "AT+SBDRB\r"));
	uint8_t reply[16];
	size_t n = rb_reply(reply, (const uint8_t *)"abc", 3, false);
	sbd_input(s, reply, n, 20100);
	CHECK_EQ(w.n, 3);
	CHECK_EQ(w.ev[2], SBD_EV_MT);
	CHECK_MEM(w.mt, "abc", 3);
	CHECK_EQ(w.r[2].mt_queued, 0);
	/* A check after a failed session drops the message from the modem. */
	send_to_session(s, (const uint8_t *)"keep", 4, 30000);
	say(s, "\r\n+SBDIX: 17, 31, 2, 0, 0, 0\r\n\r\nOK\r\n", 40000);
	CHECK_EQ(w.ev[3], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[3], "gateway"));
	CHECK(sbd_mo_loaded(s));
	CHECK_EQ(sbd_check(s, 41000), 0);
	CHECK(!sbd_mo_loaded(s));
	sent(s, 41000);
	say(s, "\r\n1\r\n\r\nOK\r\n", 41010); /* it could not clear it */
	CHECK_EQ(w.ev[4], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[4], "AT+SBDD0"));
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	/* A check with nothing waiting, and SBDRING during it. */
	CHECK_EQ(sbd_check(s, 42000), 0);
	sent(s, 42000);
	say(s, "\r\n0\r\n\r\nOK\r\n", 42010);
	sent(s, 42010);
	say(s, "\r\nSBDRING\r\n", 43000);
	CHECK_EQ(w.ev[5], SBD_EV_RING);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	say(s, "\r\n+SBDIX: 0, 32, 0, 0, 0, 0\r\n\r\nOK\r\n", 50000);
	CHECK_EQ(w.ev[6], SBD_EV_CHECKED);
	CHECK_EQ(w.state[6], SBD_IDLE);
	CHECK_EQ(w.n, 7);
	CHECK(!strcmp(sent(s, 50000), ""));
	sbd_free(s);
}

/* Polls at each deadline until the state leaves st; returns the time it did. */
static uint64_t run_until_not(struct sbd *s, enum sbd_state st, uint64_t t)
{
	for (int i = 0; i < 10 && sbd_state(s) == st; i++) {
		uint64_t d = sbd_deadline(s, t);
		CHECK(d != UINT64_MAX);
		if (d == UINT64_MAX)
			break;
		t = d > t ? d : t;
		sbd_poll(s, t);
	}
	return t;
}

static void test_timeouts(void)
{
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	uint64_t t = 1000, end;

	/* No READY. */
	CHECK_EQ(sbd_send(s, (const uint8_t *)"x", 1, t), 0);
	sent(s, t);
	sbd_poll(s, t + 1000);
	CHECK_EQ(sbd_state(s), SBD_WRITING);
	end = run_until_not(s, SBD_WRITING, t);
	CHECK(end > t + 1000 && end <= t + 10000);
	CHECK_EQ(w.ev[0], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[0], "READY"));
	CHECK_EQ(sbd_state(s), SBD_IDLE);

	/* No result after the message. */
	t = 20000;
	write_msg(s, (const uint8_t *)"x", 1, t);
	end = run_until_not(s, SBD_WRITING, t);
	CHECK(end <= t + 20000);
	CHECK_EQ(w.ev[1], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[1], "no result"));

	/* 0 and no OK: the answer stands, the session starts. */
	t = 40000;
	write_msg(s, (const uint8_t *)"x", 1, t);
	say(s, "\r\n0\r\n", t + 20);
	CHECK_EQ(sbd_state(s), SBD_WRITING);
	run_until_not(s, SBD_WRITING, t + 20);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	CHECK(sbd_mo_loaded(s));
	CHECK_EQ(w.n, 2);

	/* No answer to AT+SBDIX: given up after two minutes, the message kept for a retry. */
	t = 50000;
	CHECK(!strcmp(sent(s, t), "AT+SBDIX\r"));
	sbd_poll(s, t + 90000);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	end = run_until_not(s, SBD_SESSION, t + 90000);
	CHECK(end >= t + 100000 && end <= t + 200000);
	CHECK_EQ(w.ev[2], SBD_EV_SESSION_FAILED);
	CHECK_EQ(w.r[2].mo_status, -1);
	CHECK(strstr(w.detail[2], "AT+SBDIX") && strstr(w.detail[2], "no answer"));
	CHECK(sbd_mo_loaded(s));

	/* +SBDIX and no OK: the result stands. */
	t = 300000;
	CHECK_EQ(sbd_retry(s, t), 0);
	sent(s, t);
	say(s, "\r\n+SBDIX: 1, 40, 2, 0, 0, 0\r\n", t + 30000);
	CHECK_EQ(w.n, 3);
	end = run_until_not(s, SBD_SESSION, t + 30000);
	CHECK(end <= t + 40000);
	CHECK_EQ(w.ev[3], SBD_EV_SENT);
	CHECK_EQ(w.r[3].mo_status, 1);

	/* 2 and no OK: the failure stands. */
	t = 400000;
	write_msg(s, (const uint8_t *)"x", 1, t);
	say(s, "\r\n2\r\n", t + 20);
	run_until_not(s, SBD_WRITING, t + 20);
	CHECK_EQ(w.ev[4], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[4], "checksum"));

	/* No answer to sbd_check's AT+SBDD0. */
	t = 500000;
	CHECK_EQ(sbd_check(s, t), 0);
	sent(s, t);
	end = run_until_not(s, SBD_WRITING, t);
	CHECK(end <= t + 10000);
	CHECK_EQ(w.ev[5], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[5], "AT+SBDD0"));

	/* No answer to AT+SBDRB; a reply that stops short; one without OK. */
	uint8_t reply[16];
	size_t n = rb_reply(reply, (const uint8_t *)"abcd", 4, false);
	t = 600000;
	session_with_mt(s, &w, 4, t);
	end = run_until_not(s, SBD_READING, t + 5001);
	CHECK(end <= t + 20000);
	CHECK_EQ(w.ev[7], SBD_EV_MT_FAILED);
	CHECK(strstr(w.detail[7], "no answer"));
	t = 700000;
	session_with_mt(s, &w, 4, t);
	sbd_input(s, reply, 4, t + 5100);
	run_until_not(s, SBD_READING, t + 5100);
	CHECK_EQ(w.ev[9], SBD_EV_MT_FAILED);
	CHECK(strstr(w.detail[9], "short"));
	t = 800000;
	session_with_mt(s, &w, 4, t);
	sbd_input(s, reply, n - 6, t + 5100); /* all but the OK */
	CHECK_EQ(sbd_state(s), SBD_READING);
	run_until_not(s, SBD_READING, t + 5100);
	CHECK_EQ(w.ev[11], SBD_EV_MT);
	CHECK_MEM(w.mt, "abcd", 4);
	CHECK_EQ(w.n, 12);
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	sbd_free(s);
}

static void test_garbage(void)
{
	struct seen w = {0};
	struct sbd *s = ready_modem(&w);
	/* Lines that are no answer, in idle and during a session; then the real result. */
	static const char *const junk[] = {
	    "\r\nREADY\r\n",
	    "\r\n0\r\n",
	    "\r\nOKAY\r\n",
	    "\r\n+SBDIX: 0, 1\r\n",
	    "\r\n+SBDIX: 0, 1, 3, 0, 0, 0\r\n", /* no MT status 3 */
	    "\r\n+SBDIX: 0, 1, 0, 0, 0, 0, 0\r\n",
	    "\r\n+SBDIX: -1, 1, 0, 0, 0, 0\r\n",
	    "\r\n+SBDIX: 0, 99999, 0, 0, 0, 0\r\n",
	    "\r\n+SBDIX: 0, 1, 0, 0, 0, 99999999999\r\n",
	    "\r\n+SBDIX: ,,,,,\r\n",
	    "\r\n\x01\x02\xff\xfe\r\n",
	    "\r\nSBDRING SBDRING\r\n",
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		say(s, junk[i], 100);
	/* A line longer than the buffer, that ends in OK, is no OK. */
	char longline[300];
	memset(longline, 'z', sizeof(longline));
	memcpy(longline + sizeof(longline) - 5, "OK\r\n", 5);
	say(s, longline, 100);
	CHECK_EQ(w.n, 0);
	CHECK_EQ(sbd_state(s), SBD_IDLE);
	CHECK(!strcmp(sent(s, 100), ""));
	/* A stray OK in idle is nothing; during a session it ends it, as no +SBDIX came. */
	say(s, "\r\nOK\r\n", 100);
	CHECK_EQ(w.n, 0);
	send_to_session(s, (const uint8_t *)"x", 1, 150);
	say(s, "\r\nOK\r\n", 160);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(w.ev[0], SBD_EV_SESSION_FAILED);
	CHECK(strstr(w.detail[0], "without +SBDIX"));
	w.n = 0;
	send_to_session(s, (const uint8_t *)"x", 1, 200);
	/* An answer that comes before its command went out is someone else's. */
	CHECK_EQ(sbd_send(s, (const uint8_t *)"y", 1, 200), -EBUSY);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		say(s, junk[i], 300);
	say(s, longline, 300);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	CHECK_EQ(w.n, 0);
	say(s, "\r\n+SBDIX: 0, 2, 0, 0, 0, 0\r\n\r\nOK\r\n", 400);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(w.ev[0], SBD_EV_SENT);
	CHECK_EQ(w.r[0].momsn, 2);
	/* A stale OK before the command is out is not taken as its answer. */
	CHECK_EQ(sbd_check(s, 500), 0);
	say(s, "\r\n0\r\n\r\nOK\r\n", 501);
	CHECK_EQ(sbd_state(s), SBD_WRITING);
	CHECK(!strcmp(sent(s, 502), "AT+SBDD0\r"));
	say(s, "\r\n0\r\n\r\nOK\r\n", 503);
	CHECK_EQ(sbd_state(s), SBD_SESSION);
	CHECK(!strcmp(sent(s, 503), "AT+SBDIX\r"));
	run_until_not(s, SBD_SESSION, 503);

	/*
	 * Random bytes in every state: nothing crashes, nothing waits forever. Each round starts
	 * an operation, answers part of it properly, throws noise at it, then lets the timers
	 * run; the machine is idle again each time.
	 */
	uint32_t x = 12345;
	uint64_t t = 1000000;
	uint8_t noise[512];
	for (int round = 0; round < 400; round++, t += 1000000) {
		for (size_t i = 0; i < sizeof(noise); i++) {
			x = x * 1103515245u + 12345u;
			noise[i] = (uint8_t)(x >> 16);
			/* Now and then a real word in the noise. */
			if (i % 97 == 5 && (x >> 8) % 3 == 0) {
				static const char *const words[] = {"\r\nOK\r\n", "READY\r\n",
								    "\r\n0\r\n", "\r\nSBDRING\r\n"};
				const char *wd = words[(x >> 4) % 4];
				size_t k = strlen(wd);
				if (i + k < sizeof(noise)) {
					memcpy(noise + i, wd, k);
					i += k - 1;
				}
			}
		}
		size_t n = 1 + x % sizeof(noise);
		switch (round % 5) {
		case 0:
			sbd_send(s, (const uint8_t *)"noise", 5, t);
			break;
		case 1:
			write_msg(s, (const uint8_t *)"noise", 5, t);
			break;
		case 2:
			send_to_session(s, (const uint8_t *)"noise", 5, t);
			break;
		case 3:
			session_with_mt(s, &w, 5, t);
			break;
		default:
			sbd_check(s, t);
			break;
		}
		uint64_t now = t + 6000;
		sent(s, now);
		sbd_input(s, noise, n, now);
		for (int i = 0; i < 20 && sbd_state(s) != SBD_IDLE; i++) {
			uint64_t d = sbd_deadline(s, now);
			CHECK(d != UINT64_MAX);
			if (d == UINT64_MAX)
				break;
			now = d > now ? d : now;
			sent(s, now);
			sbd_poll(s, now);
		}
		CHECK(now < t + 1000000);
		CHECK_EQ(sbd_state(s), SBD_IDLE);
		if (sbd_state(s) != SBD_IDLE)
			break;
		w.n = 0;
	}
	/* And it still works. */
	send_to_session(s, (const uint8_t *)"x", 1, t);
	say(s, "\r\n+SBDIX: 0, 3, 0, 0, 0, 0\r\n\r\nOK\r\n", t + 100);
	CHECK_EQ(w.ev[w.n - 1], SBD_EV_SENT);
	CHECK_EQ(w.r[w.n - 1].momsn, 3);
	sbd_free(s);
}

static void test_names(void)
{
	CHECK(!strcmp(sbd_state_name(SBD_INIT), "init"));
	CHECK(!strcmp(sbd_state_name(SBD_READING), "reading"));
	CHECK(!strcmp(sbd_state_name(SBD_FAILED), "failed"));
	CHECK(!strcmp(sbd_state_name((enum sbd_state)99), "?"));
}

int main(void)
{
	test_init_failures();
	test_send();
	test_write_failures();
	test_failed_session_retry();
	test_mt();
	test_check_and_ring();
	test_timeouts();
	test_garbage();
	test_names();
	TEST_MAIN_END();
}
