/* Tests the SBD modem model in virtual time: AT commands, SBDWB, sessions, buffers, failures. */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "sim/sbd_model.h"
#include "test.h"

#define S_US  1000000ull
#define MS_US 1000ull

static const char imei[] = "300234010999990";

static struct sbd_params params(void)
{
	struct sbd_params p = {.csq = 5, .session_ms = 1500, .wb_timeout_s = 60, .seed = 1};
	memcpy(p.imei, imei, sizeof(imei));
	return p;
}

static void init(struct sbd_model *m, const struct sbd_params *p)
{
	CHECK_EQ(sbd_model_init(m, p), 0);
}

/* Everything the model has queued for the DTE, as a string (binary safe up to got). */
static uint8_t got[SBD_OUT_MAX + 1];
static size_t got_len;

static size_t drain(struct sbd_model *m)
{
	got_len = sbd_model_output(m, got, SBD_OUT_MAX);
	got[got_len] = 0;
	return got_len;
}

static void send_bytes(struct sbd_model *m, const void *buf, size_t n, uint64_t now)
{
	CHECK_EQ(sbd_model_input(m, buf, n, now), n);
}

static void send(struct sbd_model *m, const char *s, uint64_t now)
{
	send_bytes(m, s, strlen(s), now);
}

/* Sends s and checks that exactly want came back. */
static void expect(struct sbd_model *m, const char *s, uint64_t now, const char *want)
{
	send(m, s, now);
	drain(m);
	if (got_len != strlen(want) || memcmp(got, want, got_len)) {
		fprintf(stderr, "sent \"%s\": got \"%s\", want \"%s\"\n", s, got, want);
		test_failures++;
	}
}

static void expect_out(struct sbd_model *m, const char *want)
{
	drain(m);
	if (got_len != strlen(want) || memcmp(got, want, got_len)) {
		fprintf(stderr, "got \"%s\", want \"%s\"\n", got, want);
		test_failures++;
	}
}

/* A gateway in memory: the last MO message, and one MT message to hand over. */
struct gateway {
	uint8_t mo[SBD_MO_MAX];
	size_t mo_len;
	int mo_count;
	uint16_t mo_momsn;
	const uint8_t *mt;
	size_t mt_len;
	uint32_t queued;
	bool fail;
	int reply_ret;
	struct sbd_event session;
	int sessions;
};

static void serve(struct sbd_model *m, struct gateway *g)
{
	struct sbd_event ev;
	while (sbd_model_next_event(m, &ev)) {
		if (ev.type == SBD_EV_MO) {
			memcpy(g->mo, ev.mo, ev.mo_len);
			g->mo_len = ev.mo_len;
			g->mo_momsn = ev.momsn;
			g->mo_count++;
		} else if (ev.type == SBD_EV_MT_WANTED) {
			struct sbd_gateway_reply r = {.failed = g->fail,
						      .mt = g->mt != NULL,
						      .mt_buf = g->mt,
						      .mt_len = g->mt_len,
						      .mt_queued = g->queued};
			g->reply_ret = sbd_model_gateway_reply(m, &r);
			g->mt = NULL;
		} else {
			g->session = ev;
			g->sessions++;
		}
	}
}

/* AT+SBDIX at now, then the session's end: returns the line for the DTE in got. */
static void session(struct sbd_model *m, struct gateway *g, uint64_t now)
{
	expect(m, "AT+SBDIX\r", now, m->echo ? "AT+SBDIX\r" : "");
	sbd_model_advance(m, now + m->p.session_ms * MS_US);
	serve(m, g);
	drain(m);
}

static void write_binary(struct sbd_model *m, const uint8_t *msg, size_t n, uint64_t now)
{
	char cmd[32];
	uint16_t sum = sbd_checksum(msg, n);
	uint8_t cs[2] = {(uint8_t)(sum >> 8), (uint8_t)sum};
	snprintf(cmd, sizeof(cmd), "AT+SBDWB=%zu\r", n);
	send(m, cmd, now);
	drain(m);
	CHECK(got_len >= 7 && !memcmp(got + got_len - 7, "READY\r\n", 7));
	send_bytes(m, msg, n, now);
	send_bytes(m, cs, 2, now);
	expect_out(m, "\r\n0\r\n\r\nOK\r\n");
}

static void test_commands(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	init(&m, &p);
	expect(&m, "AT\r", 0, "AT\r\r\nOK\r\n");
	expect(&m, "at\r", 0, "at\r\r\nOK\r\n");
	/* Before "AT" nothing counts; a line without it gets no answer. */
	expect(&m, "xyzAT\r", 0, "xyzAT\r\r\nOK\r\n");
	expect(&m, "hello\r", 0, "hello\r");
	expect(&m, "\r\n", 0, "\r\n");
	expect(&m, "AT+FOO\r", 0, "AT+FOO\r\r\nERROR\r\n");
	expect(&m, "ATX\r", 0, "ATX\r\r\nERROR\r\n");
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	expect(&m, "AT\r", 0, "\r\nOK\r\n");
	/* Echo follows the setting as each byte comes: E1 takes effect at the line's end. */
	expect(&m, "ATE1V1Q0&K0&K3&D2&W0&Y0\r", 0, "\r\nOK\r\n");
	expect(&m, "AT&K9\r", 0, "AT&K9\r\r\nERROR\r\n");
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	/* Backspace edits the line. */
	expect(&m, "ATX\bE0\r", 0, "\r\nOK\r\n");
	expect(&m, "AT+CGSN\r", 0, "\r\n300234010999990\r\n\r\nOK\r\n");
	expect(&m, "AT+CSQ\r", 0, "\r\n+CSQ:5\r\n\r\nOK\r\n");
	expect(&m, "AT+CSQF\r", 0, "\r\n+CSQF:5\r\n\r\nOK\r\n");
	expect(&m, "AT+CSQ=?\r", 0, "\r\n+CSQ:(0-5)\r\n\r\nOK\r\n");
	expect(&m, "AT+CSQ;+CGSN\r", 0, "\r\n+CSQ:5\r\n\r\n300234010999990\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDMTA=0\r", 0, "\r\nOK\r\n");
	expect(&m, "AT+SBDMTA?\r", 0, "\r\n+SBDMTA:0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDMTA=2\r", 0, "\r\nERROR\r\n");
	expect(&m, "AT+SBDAREG=1\r", 0, "\r\nOK\r\n");
	expect(&m, "AT+SBDAREG?\r", 0, "\r\n+SBDAREG:1\r\n\r\nOK\r\n");
	/* Numeric results (V.250 numbers OK 0, ERROR 4), then none at all. */
	expect(&m, "ATV0\r", 0, "0\r");
	expect(&m, "AT+CSQ\r", 0, "+CSQ:5\r\n0\r");
	expect(&m, "AT+FOO\r", 0, "4\r");
	expect(&m, "ATQ1\r", 0, "");
	expect(&m, "AT\r", 0, "");
	expect(&m, "AT+CSQ\r", 0, "+CSQ:5\r\n");
	/* ATZ and AT&F restore echo, verbose and results. */
	expect(&m, "ATZ\r", 0, "\r\nOK\r\n");
	expect(&m, "ATE0Q1V0\r", 0, "ATE0Q1V0\r");
	expect(&m, "AT&F0\r", 0, "\r\nOK\r\n");
	/* A line longer than the buffer is refused whole. */
	char big[SBD_LINE_MAX + 20];
	memset(big, 'A', sizeof(big));
	memcpy(big, "AT", 2);
	big[sizeof(big) - 2] = '\r';
	big[sizeof(big) - 1] = 0;
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	expect(&m, big, 0, "\r\nERROR\r\n");
	expect(&m, "AT\r", 0, "\r\nOK\r\n");
}

static void test_sbdwb(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	init(&m, &p);
	/* The manual's example: "hello" is 68 65 6c 6c 6f, checksum 02 14. */
	CHECK_EQ(sbd_checksum((const uint8_t *)"hello", 5), 0x0214);
	expect(&m, "AT+SBDWB=5\r", 0, "AT+SBDWB=5\rREADY\r\n");
	expect(&m, "hello\x02\x14", 0, "\r\n0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDS\r", 0, "AT+SBDS\r\r\n+SBDS: 1, 0, 0, -1\r\n\r\nOK\r\n");
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");

	/* The binary phase: no echo, CR and "AT" are data. */
	uint8_t msg[SBD_MO_MAX];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7);
	memcpy(msg + 10, "AT\r\nOK\r\n", 8);
	write_binary(&m, msg, sizeof(msg), 0);
	CHECK_EQ(m.mo_len, SBD_MO_MAX);
	CHECK_MEM(m.mo, msg, sizeof(msg));

	/* A wrong checksum: 2, and the buffer keeps what it held. */
	expect(&m, "AT+SBDWB=3\r", 0, "READY\r\n");
	send_bytes(&m, "abc\x00\x01", 5, 0);
	expect_out(&m, "\r\n2\r\n\r\nOK\r\n");
	CHECK_EQ(m.mo_len, SBD_MO_MAX);

	/* Sizes out of 1..340: 3, without READY. */
	expect(&m, "AT+SBDWB=0\r", 0, "\r\n3\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDWB=341\r", 0, "\r\n3\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDWB=99999999999\r", 0, "\r\n3\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDWB=abc\r", 0, "\r\nERROR\r\n");
	expect(&m, "AT+SBDWB\r", 0, "\r\nERROR\r\n");
	/* A phase must end its line: nothing is started. */
	expect(&m, "AT+SBDWB=5;+CSQ\r", 0, "\r\nERROR\r\n");
	CHECK_EQ(sbd_model_next_us(&m), UINT64_MAX);

	/* Timeout: not all bytes within the transfer period: 1, and no OK after it. */
	uint64_t t0 = 5 * S_US;
	expect(&m, "AT+SBDWB=10\r", t0, "READY\r\n");
	CHECK_EQ(sbd_model_next_us(&m), t0 + 60 * S_US);
	send(&m, "abc", t0 + S_US);
	sbd_model_advance(&m, t0 + 60 * S_US - 1);
	expect_out(&m, "");
	sbd_model_advance(&m, t0 + 60 * S_US);
	expect_out(&m, "\r\n1\r\n");
	CHECK_EQ(sbd_model_next_us(&m), UINT64_MAX);
	/* Back in command mode: the late bytes are a command line. */
	expect(&m, "AT\r", t0 + 61 * S_US, "\r\nOK\r\n");
	CHECK_EQ(m.mo_len, SBD_MO_MAX);

	/* Bytes that come after the period are commands, even in the same call. */
	expect(&m, "AT+SBDWB=2\r", t0 + 70 * S_US, "READY\r\n");
	expect(&m, "AT\r", t0 + 200 * S_US, "\r\n1\r\n\r\nOK\r\n");

	struct sbd_stats s = sbd_model_stats(&m);
	CHECK_EQ(s.wb_ok, 2);
	CHECK_EQ(s.wb_checksum, 1);
	CHECK_EQ(s.wb_size, 3);
	CHECK_EQ(s.wb_timeout, 2);

	/* A shorter --wb-timeout-s. */
	p.wb_timeout_s = 1;
	init(&m, &p);
	expect(&m, "AT+SBDWB=1\r", 0, "AT+SBDWB=1\rREADY\r\n");
	sbd_model_advance(&m, S_US);
	expect_out(&m, "\r\n1\r\n");
}

static void test_sbdwt(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	init(&m, &p);
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	expect(&m, "AT+SBDWT=hello; world\r", 0, "\r\nOK\r\n");
	CHECK_EQ(m.mo_len, 12);
	CHECK_MEM(m.mo, "hello; world", 12);
	char line[200];
	snprintf(line, sizeof(line), "AT+SBDWT=%0121d\r", 0);
	expect(&m, line, 0, "\r\nERROR\r\n");
	expect(&m, "AT+SBDWT=\r", 0, "\r\nERROR\r\n");
	CHECK_EQ(m.mo_len, 12);
	/* The text on a line of its own, up to 340 bytes. */
	expect(&m, "AT+SBDWT\r", 0, "READY\r\n");
	expect(&m, "a longer text\r", 0, "\r\n0\r\n\r\nOK\r\n");
	CHECK_EQ(m.mo_len, 13);
	CHECK_MEM(m.mo, "a longer text", 13);
	expect(&m, "AT+SBDWT\r", 0, "READY\r\n");
	sbd_model_advance(&m, 60 * S_US);
	expect_out(&m, "\r\n1\r\n");
	CHECK_EQ(m.mo_len, 13);
	/* SBDWT is not SBDWB: its counters stay. */
	CHECK_EQ(sbd_model_stats(&m).wb_timeout, 0);
}

static void test_session(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	struct gateway g = {0};
	init(&m, &p);
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	write_binary(&m, (const uint8_t *)"payload", 7, 0);

	/* The session takes session_ms; what the DTE sends meanwhile is ignored, unechoed. */
	expect(&m, "AT+SBDIX\r", S_US, "");
	CHECK_EQ(sbd_model_next_us(&m), S_US + 1500 * MS_US);
	expect(&m, "AT\rAT+CSQ\r", S_US + 100 * MS_US, "");
	sbd_model_advance(&m, S_US + 1499 * MS_US);
	serve(&m, &g);
	expect_out(&m, "");
	CHECK_EQ(g.sessions, 0);
	sbd_model_advance(&m, S_US + 1500 * MS_US);
	serve(&m, &g);
	expect_out(&m, "\r\n+SBDIX: 0, 0, 0, 0, 0, 0\r\n\r\nOK\r\n");
	CHECK_EQ(g.mo_count, 1);
	CHECK_EQ(g.mo_momsn, 0);
	CHECK_EQ(g.mo_len, 7);
	CHECK_MEM(g.mo, "payload", 7);
	CHECK_EQ(g.sessions, 1);
	CHECK_EQ(g.session.session, 1);
	CHECK_EQ(g.session.start_us, S_US);
	CHECK_EQ(g.session.end_us, S_US + 1500 * MS_US);
	CHECK_EQ(g.session.why, SBD_WHY_NONE);
	/* The MO buffer stays until SBDD0; MOMSN moved on. */
	expect(&m, "AT+SBDS\r", 3 * S_US, "\r\n+SBDS: 1, 1, 0, -1\r\n\r\nOK\r\n");

	/* The same buffer goes again, as message 1, and an MT message comes back. */
	const uint8_t mt[] = {'h', 'e', 'l', 'l', 'o'};
	g.mt = mt;
	g.mt_len = sizeof(mt);
	g.queued = 2;
	session(&m, &g, 4 * S_US);
	CHECK_EQ(g.reply_ret, 0);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 1, 1, 1, 5, 2\r\n\r\nOK\r\n"));
	CHECK_EQ(g.mo_count, 2);
	CHECK_EQ(g.mo_momsn, 1);
	send(&m, "AT+SBDRB\r", 6 * S_US);
	drain(&m);
	CHECK_EQ(got_len, 2 + 5 + 2 + 6);
	CHECK_MEM(got, "\x00\x05hello\x02\x14\r\nOK\r\n", got_len);
	/* Reading does not clear the buffer. */
	expect(&m, "AT+SBDRT\r", 6 * S_US, "\r\n+SBDRT:\r\nhello\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDS\r", 6 * S_US, "\r\n+SBDS: 1, 2, 1, 1\r\n\r\nOK\r\n");

	/* SBDD0: a mailbox check with an empty buffer sends nothing, but still counts. */
	expect(&m, "AT+SBDD0\r", 7 * S_US, "\r\n0\r\n\r\nOK\r\n");
	uint8_t mt270[SBD_MT_MAX];
	memset(mt270, 0xff, sizeof(mt270));
	g.mt = mt270;
	g.mt_len = sizeof(mt270);
	g.queued = 1;
	session(&m, &g, 8 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 2, 1, 2, 270, 1\r\n\r\nOK\r\n"));
	CHECK_EQ(g.mo_count, 2);
	send(&m, "AT+SBDRB\r", 10 * S_US);
	drain(&m);
	CHECK_EQ(got_len, 2 + 270 + 2 + 6);
	CHECK(got[0] == 0x01 && got[1] == 0x0e);
	CHECK(got[272] == (uint8_t)((270 * 255) >> 8) && got[273] == (uint8_t)(270 * 255));

	/* Too big: MO status 1, MT status 2, and the session cleared the old MT message. */
	uint8_t mt271[SBD_MT_MAX + 1] = {0};
	g.mt = mt271;
	g.mt_len = sizeof(mt271);
	g.queued = 0;
	session(&m, &g, 11 * S_US);
	CHECK_EQ(g.reply_ret, -EMSGSIZE);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 1, 3, 2, 0, 0, 0\r\n\r\nOK\r\n"));
	send(&m, "AT+SBDRB\r", 13 * S_US);
	drain(&m);
	CHECK_EQ(got_len, 4 + 6);
	CHECK_MEM(got, "\x00\x00\x00\x00\r\nOK\r\n", got_len);
	expect(&m, "AT+SBDS\r", 13 * S_US, "\r\n+SBDS: 0, 4, 0, -1\r\n\r\nOK\r\n");

	/* Nothing waiting: MT status 0. SBDD1 and SBDD2 clear MT (and MO). */
	session(&m, &g, 14 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 4, 0, 0, 0, 0\r\n\r\nOK\r\n"));
	g.mt = mt;
	g.mt_len = sizeof(mt);
	session(&m, &g, 16 * S_US);
	expect(&m, "AT+SBDD1\r", 18 * S_US, "\r\n0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDS\r", 18 * S_US, "\r\n+SBDS: 0, 6, 0, -1\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDWT=x\r", 18 * S_US, "\r\nOK\r\n");
	expect(&m, "AT+SBDD2\r", 18 * S_US, "\r\n0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDD3\r", 18 * S_US, "\r\nERROR\r\n");
	expect(&m, "AT+SBDS\r", 18 * S_US, "\r\n+SBDS: 0, 6, 0, -1\r\n\r\nOK\r\n");
	/* SBDC: MOMSN back to 0. */
	expect(&m, "AT+SBDC\r", 18 * S_US, "\r\n0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDS\r", 18 * S_US, "\r\n+SBDS: 0, 0, 0, -1\r\n\r\nOK\r\n");
	/* SBDIXA and SBDIX=<location> are sessions too. */
	expect(&m, "AT+SBDIXA\r", 19 * S_US, "");
	CHECK_EQ(sbd_model_next_us(&m), 19 * S_US + 1500 * MS_US);
	sbd_model_advance(&m, 21 * S_US);
	serve(&m, &g);
	expect_out(&m, "\r\n+SBDIX: 0, 0, 0, 0, 0, 0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDIX=5212.483,-00007.350\r", 22 * S_US, "");
	sbd_model_advance(&m, 24 * S_US);
	serve(&m, &g);
	expect_out(&m, "\r\n+SBDIX: 0, 1, 0, 0, 0, 0\r\n\r\nOK\r\n");
	expect(&m, "AT+SBDIX;+CSQ\r", 25 * S_US, "\r\nERROR\r\n");
	CHECK_EQ(sbd_model_next_us(&m), UINT64_MAX);

	struct sbd_stats s = sbd_model_stats(&m);
	CHECK_EQ(s.sessions, 8);
	CHECK_EQ(s.sessions_failed, 0);
	CHECK_EQ(s.mo_messages, 2);
	CHECK_EQ(s.mo_bytes, 14);
	CHECK_EQ(s.mt_messages, 3);
	CHECK_EQ(s.mt_bytes, 5 + 270 + 5);
	/* No reply is wanted outside a session. */
	struct sbd_gateway_reply none = {0};
	CHECK_EQ(sbd_model_gateway_reply(&m, &none), -EINVAL);
}

static void test_fail_script(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	struct sbd_fail fail[] = {{2, 35}, {3, 18}};
	struct gateway g = {0};
	p.fail = fail;
	p.nfail = 2;
	p.session_ms = 0;
	init(&m, &p);
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	write_binary(&m, (const uint8_t *)"x", 1, 0);
	session(&m, &g, S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 0, 0, 0, 0, 0\r\n\r\nOK\r\n"));
	/* A failed session: no MO for the gateway, MOMSN stays, the mailbox check failed too. */
	g.mt = (const uint8_t *)"m";
	g.mt_len = 1;
	session(&m, &g, 2 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 35, 1, 2, 0, 0, 0\r\n\r\nOK\r\n"));
	CHECK_EQ(g.session.why, SBD_WHY_SCRIPT);
	CHECK_EQ(g.mo_count, 1);
	CHECK(g.mt != NULL);
	session(&m, &g, 3 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 18, 1, 2, 0, 0, 0\r\n\r\nOK\r\n"));
	/* The retry succeeds with the same MOMSN. */
	session(&m, &g, 4 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 1, 1, 1, 1, 0\r\n\r\nOK\r\n"));
	CHECK_EQ(g.mo_count, 2);
	CHECK_EQ(g.mo_momsn, 1);
	/* The gateway could not take the message: 17, MOMSN stays. */
	g.fail = true;
	session(&m, &g, 5 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 17, 2, 2, 0, 0, 0\r\n\r\nOK\r\n"));
	CHECK_EQ(g.session.why, SBD_WHY_GATEWAY);
	struct sbd_stats s = sbd_model_stats(&m);
	CHECK_EQ(s.sessions, 5);
	CHECK_EQ(s.sessions_failed, 3);
	CHECK_EQ(s.mo_messages, 2);

	/* No signal: every session fails with 32. */
	p.nfail = 0;
	p.csq = 0;
	init(&m, &p);
	g = (struct gateway){0};
	expect(&m, "AT+CSQ\r", 0, "AT+CSQ\r\r\n+CSQ:0\r\n\r\nOK\r\n");
	session(&m, &g, S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 32, 0, 2, 0, 0, 0\r\n\r\nOK\r\n"));
	CHECK_EQ(g.session.why, SBD_WHY_NO_SIGNAL);

	/* MOMSN wraps at 65535. */
	p.csq = 5;
	p.momsn = 65535;
	init(&m, &p);
	session(&m, &g, S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 65535, 0, 0, 0, 0\r\n\r\nOK\r\n"));
	session(&m, &g, 2 * S_US);
	CHECK(!strcmp((char *)got, "\r\n+SBDIX: 0, 0, 0, 0, 0, 0\r\n\r\nOK\r\n"));
}

/* The outcomes of n sessions: 1 for a failure. */
static void outcomes(const struct sbd_params *p, char *out, size_t n)
{
	struct sbd_model m;
	struct gateway g = {0};
	init(&m, p);
	expect(&m, "ATE0\r", 0, "ATE0\r\r\nOK\r\n");
	for (size_t i = 0; i < n; i++) {
		session(&m, &g, i * S_US);
		out[i] = g.session.result.mo_status >= 5 ? '1' : '0';
		CHECK(g.session.result.mo_status == 0 || g.session.result.mo_status == 32 ||
		      g.session.why == SBD_WHY_SCRIPT);
	}
	out[n] = 0;
}

static void test_fail_rate(void)
{
	enum { N = 400 };
	static char a[N + 1], b[N + 1], c[N + 1];
	struct sbd_params p = params();
	p.session_ms = 0;
	p.fail_rate = 0.3;
	p.seed = 7;
	outcomes(&p, a, N);
	outcomes(&p, b, N);
	CHECK(!strcmp(a, b));
	size_t fails = 0;
	for (size_t i = 0; i < N; i++)
		fails += a[i] == '1';
	/* 120 expected, sd 9. */
	CHECK(fails > 80 && fails < 160);
	/* A scripted session takes no draw away from the others. */
	struct sbd_fail f = {5, 35};
	p.fail = &f;
	p.nfail = 1;
	outcomes(&p, c, N);
	for (size_t i = 0; i < N; i++)
		if (i != 4)
			CHECK(a[i] == c[i]);
	CHECK(c[4] == '1');
	/* Another seed, other failures. */
	p.nfail = 0;
	p.seed = 8;
	outcomes(&p, b, N);
	CHECK(strcmp(a, b) != 0);
	p.fail_rate = 1;
	outcomes(&p, b, 50);
	CHECK(strspn(b, "1") == 50);
	p.fail_rate = 0;
	outcomes(&p, b, 50);
	CHECK(strspn(b, "0") == 50);
}

static void test_backpressure(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	static uint8_t in[20000];
	init(&m, &p);
	for (size_t i = 0; i + 3 <= sizeof(in); i += 3)
		memcpy(in + i, "AT\r", 3);
	size_t took = sbd_model_input(&m, in, sizeof(in) / 3 * 3, 0);
	CHECK(took < sizeof(in));
	CHECK(sbd_model_output_len(&m) <= SBD_OUT_MAX);
	CHECK(SBD_OUT_MAX - sbd_model_output_len(&m) < SBD_RESPONSE_MAX);
	/* Whatever was taken was answered; the rest goes in once there is room. */
	CHECK_EQ(sbd_model_output_len(&m), took / 3 * 9 + took % 3);
	size_t total = 0, all = sizeof(in) / 3 * 3;
	while (took < all) {
		total += drain(&m);
		size_t n = sbd_model_input(&m, in + took, all - took, 0);
		CHECK(n > 0);
		if (n == 0)
			break;
		took += n;
	}
	total += drain(&m);
	CHECK_EQ(total, all / 3 * 9);
}

static void test_params(void)
{
	struct sbd_model m;
	struct sbd_params p = params();
	struct sbd_fail dup[] = {{2, 35}, {2, 32}}, low[] = {{1, 4}}, zero[] = {{0, 32}};
	CHECK_EQ(sbd_model_init(&m, &p), 0);
	p.imei[3] = 'x';
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p = params();
	p.imei[14] = 0;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p = params();
	p.csq = 6;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p = params();
	p.wb_timeout_s = 0;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p = params();
	p.session_ms = SBD_SESSION_MS_MAX + 1;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p = params();
	p.fail_rate = 1.5;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p.fail_rate = NAN;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p = params();
	p.fail = dup;
	p.nfail = 2;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p.fail = low;
	p.nfail = 1;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p.fail = zero;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
	p.nfail = SBD_FAIL_MAX + 1;
	CHECK_EQ(sbd_model_init(&m, &p), -EINVAL);
}

int main(void)
{
	test_commands();
	test_sbdwb();
	test_sbdwt();
	test_session();
	test_fail_script();
	test_fail_rate();
	test_backpressure();
	test_params();
	TEST_MAIN_END();
}
