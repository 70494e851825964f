/* The Hayes dialogue: init, dial and every result code, answer, escape and hang-up, carrier loss.
 */
#include <stdint.h>

#include "test.h"
#include "transports/hayes.h"

struct seen {
	enum hayes_event ev[32];
	char detail[32][64];
	size_t n;
	uint8_t data[256];
	size_t data_len;
};

static void on_event(void *ctx, enum hayes_event ev, const char *detail)
{
	struct seen *s = ctx;
	if (s->n < 32) {
		s->ev[s->n] = ev;
		snprintf(s->detail[s->n], sizeof(s->detail[0]), "%s", detail);
		s->n++;
	}
}

static void on_data(void *ctx, const uint8_t *buf, size_t len)
{
	struct seen *s = ctx;
	for (size_t i = 0; i < len && s->data_len < sizeof(s->data); i++)
		s->data[s->data_len++] = buf[i];
}

/* What the modem would read: all of hayes_output, as a string. */
static const char *sent(struct hayes *h, uint64_t now)
{
	static char buf[256];
	size_t len = 0;
	const uint8_t *out;
	size_t n;
	while ((n = hayes_output(h, now, &out)) > 0 && len + n < sizeof(buf)) {
		memcpy(buf + len, out, n);
		len += n;
		hayes_consumed(h, n);
	}
	buf[len] = 0;
	return buf;
}

static void say(struct hayes *h, struct seen *s, const char *text, uint64_t now)
{
	hayes_input(h, (const uint8_t *)text, strlen(text), now, on_data, s);
}

static struct hayes *ready_modem(struct seen *s, const char *dial, bool answer)
{
	struct hayes_params p;
	hayes_params_default(&p);
	snprintf(p.dial, sizeof(p.dial), "%s", dial);
	p.answer = answer;
	struct hayes *h = NULL;
	CHECK_EQ(hayes_new(&p, on_event, s, &h), 0);
	hayes_start(h, 0);
	CHECK(!strcmp(sent(h, 0), "ATZ\r"));
	/* The echo of the command comes first, while E1 still holds: it is not a result. */
	say(h, s, "ATZ\r\r\nOK\r\n", 10);
	CHECK(!strcmp(sent(h, 10), HAYES_INIT_DEFAULT_2 "\r"));
	CHECK_EQ(hayes_state(h), HAYES_INIT);
	say(h, s, "\r\nOK\r\n", 20);
	CHECK_EQ(hayes_state(h), HAYES_IDLE);
	CHECK_EQ(s->n, 1);
	CHECK_EQ(s->ev[0], HAYES_EV_READY);
	s->n = 0;
	return h;
}

static void test_init_strings(void)
{
	struct seen s = {0};
	struct hayes_params p;
	hayes_params_default(&p);
	snprintf(p.init[0], sizeof(p.init[0]), "AT&F");
	snprintf(p.init[1], sizeof(p.init[1]), "ATS7=30");
	snprintf(p.init[2], sizeof(p.init[2]), "AT+MS=V32");
	p.n_init = 3;
	struct hayes *h;
	CHECK_EQ(hayes_new(&p, on_event, &s, &h), 0);
	hayes_start(h, 0);
	CHECK(!strcmp(sent(h, 0), "AT&F\r"));
	say(h, &s, "\r\nOK\r\n", 1);
	CHECK(!strcmp(sent(h, 1), "ATS7=30\r"));
	say(h, &s, "\r\nOK\r\n", 2);
	CHECK(!strcmp(sent(h, 2), "AT+MS=V32\r"));
	/* A modem that refuses one: the init fails, naming it, and is tried again later. */
	say(h, &s, "\r\nERROR\r\n", 3);
	CHECK_EQ(hayes_state(h), HAYES_FAILED);
	CHECK_EQ(s.n, 1);
	CHECK_EQ(s.ev[0], HAYES_EV_MODEM_FAILED);
	CHECK(strstr(s.detail[0], "AT+MS=V32") && strstr(s.detail[0], "ERROR"));
	CHECK(!strcmp(sent(h, 4), ""));
	uint64_t again = hayes_deadline(h, 4);
	CHECK(again > 10000 && again < 120000);
	hayes_poll(h, again);
	CHECK_EQ(hayes_state(h), HAYES_INIT);
	CHECK(!strcmp(sent(h, again), "AT&F\r"));
	/* No answer at all (the modem is off): a failure after a few seconds. */
	hayes_poll(h, again + 1000);
	CHECK_EQ(hayes_state(h), HAYES_INIT);
	hayes_poll(h, hayes_deadline(h, again));
	CHECK_EQ(hayes_state(h), HAYES_FAILED);
	CHECK(strstr(s.detail[1], "no answer"));
	hayes_free(h);
}

static void test_checks(void)
{
	const char *why;
	CHECK(hayes_check_init("AT&F1 E0", &why));
	CHECK(hayes_check_init("at+ms=v34", &why));
	CHECK(!hayes_check_init("&F", &why));
	CHECK(!hayes_check_init("AT\r", &why));
	CHECK(!hayes_check_init("AT+++", &why));
	CHECK(!hayes_check_init("AT012345678901234567890123456789012345678901234567890123456789",
				&why));
	CHECK(hayes_check_dial("T0,555 1234", &why));
	CHECK(hayes_check_dial("+8816*123#", &why));
	CHECK(!hayes_check_dial("555;", &why));
	CHECK(!hayes_check_dial("TPW", &why));
	CHECK(!hayes_check_dial("5551234\rATH", &why));
	struct hayes_params p;
	hayes_params_default(&p);
	snprintf(p.dial, sizeof(p.dial), "555;ATH");
	struct hayes *h = NULL;
	CHECK_EQ(hayes_new(&p, NULL, NULL, &h), -22);
}

static void test_failed_calls(void)
{
	static const char *const results[] = {"BUSY", "NO CARRIER", "NO ANSWER", "NO DIALTONE",
					      "ERROR"};
	struct seen s = {0};
	struct hayes *h = ready_modem(&s, "5551234", false);
	uint64_t t = 100;
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++, t += 100) {
		CHECK_EQ(hayes_dial(h, t), 0);
		CHECK_EQ(hayes_dial(h, t), -16); /* -EBUSY: a call is being made */
		CHECK(!strcmp(sent(h, t), "ATD5551234\r"));
		CHECK_EQ(hayes_state(h), HAYES_DIALING);
		/* Lines that are not results change nothing. */
		say(h, &s, "\r\nDIALING\r\n", t + 10);
		CHECK_EQ(hayes_state(h), HAYES_DIALING);
		char line[40];
		snprintf(line, sizeof(line), "\r\n%s\r\n", results[i]);
		say(h, &s, line, t + 50);
		CHECK_EQ(hayes_state(h), HAYES_IDLE);
		CHECK_EQ(s.n, i + 1);
		CHECK_EQ(s.ev[i], HAYES_EV_CALL_FAILED);
		CHECK(!strcmp(s.detail[i], results[i]));
	}
	/* A modem that never says anything to ATD: given up, and the modem reset. */
	CHECK_EQ(hayes_dial(h, t), 0);
	sent(h, t);
	hayes_poll(h, t + 1000);
	CHECK_EQ(hayes_state(h), HAYES_DIALING);
	hayes_poll(h, hayes_deadline(h, t));
	CHECK_EQ(s.ev[s.n - 1], HAYES_EV_CALL_FAILED);
	CHECK_EQ(hayes_state(h), HAYES_INIT);
	CHECK(!strcmp(sent(h, t), "ATZ\r"));
	hayes_free(h);
}

static void test_call_and_hangup(void)
{
	struct seen s = {0};
	struct hayes *h = ready_modem(&s, "5551234", false);
	CHECK_EQ(hayes_dial(h, 1000), 0);
	sent(h, 1000);
	say(h, &s, "\r\nCONNECT 9600/ARQ\r\n", 5000);
	CHECK_EQ(hayes_state(h), HAYES_ONLINE);
	CHECK_EQ(hayes_connect_rate(h), 9600);
	CHECK_EQ(s.ev[0], HAYES_EV_CONNECT);
	/* Online, every byte is data, result words and "+++" too. */
	say(h, &s, "\r\nOK\r\n+++ATH\r", 5100);
	CHECK_EQ(s.data_len, 13); /* and not the LF that ended the CONNECT line */
	CHECK_MEM(s.data, "\r\nOK\r\n+++ATH\r", 13);
	CHECK_EQ(hayes_state(h), HAYES_ONLINE);
	const uint8_t *out;
	CHECK_EQ(hayes_output(h, 5100, &out), 0);
	/* The escape: guard time since the last data out, "+++", OK, ATH, OK. */
	hayes_data_sent(h, 6000);
	hayes_hangup(h, 6200);
	CHECK_EQ(hayes_state(h), HAYES_HANGING_UP);
	CHECK(hayes_deadline(h, 6200) >= 7000);
	CHECK(!strcmp(sent(h, 6300), ""));
	hayes_poll(h, 6500);
	CHECK(!strcmp(sent(h, 6500), ""));
	hayes_poll(h, hayes_deadline(h, 6500));
	CHECK(!strcmp(sent(h, 7100), "+++"));
	/* Bytes of the far end still coming in are not OK. */
	say(h, &s, "\x01\x02zz", 7200);
	CHECK_EQ(hayes_state(h), HAYES_HANGING_UP);
	say(h, &s, "\r\nOK\r\n", 8200);
	CHECK(!strcmp(sent(h, 8200), "ATH\r"));
	say(h, &s, "\r\nOK\r\n", 8300);
	CHECK_EQ(hayes_state(h), HAYES_IDLE);
	CHECK_EQ(s.ev[s.n - 1], HAYES_EV_HUNG_UP);
	hayes_free(h);
}

static void test_carrier_lost(void)
{
	struct seen s = {0};
	struct hayes *h = ready_modem(&s, "5551234", false);
	CHECK_EQ(hayes_dial(h, 0), 0);
	sent(h, 0);
	say(h, &s, "\r\nCONNECT\r\n", 100);
	CHECK_EQ(hayes_connect_rate(h), 0);
	/* NO CARRIER split across two reads, after data: the data goes, then the call ends. */
	say(h, &s, "abc\r\nNO CARR", 200);
	CHECK_EQ(hayes_state(h), HAYES_ONLINE);
	say(h, &s, "IER\r\n\r\nRING\r\n", 300);
	CHECK_EQ(hayes_state(h), HAYES_IDLE);
	CHECK_EQ(s.ev[1], HAYES_EV_CARRIER_LOST);
	CHECK_EQ(s.ev[2], HAYES_EV_RING); /* after it, lines are results again */
	CHECK_EQ(s.n, 3);
	/* The far end hangs up while this side waits for its guard time. */
	CHECK_EQ(hayes_dial(h, 1000), 0);
	sent(h, 1000);
	say(h, &s, "\r\nCONNECT 2400\r\n", 2000);
	hayes_hangup(h, 2100);
	say(h, &s, "\r\nNO CARRIER\r\n", 2200);
	CHECK_EQ(hayes_state(h), HAYES_IDLE);
	CHECK_EQ(s.ev[s.n - 1], HAYES_EV_HUNG_UP);
	CHECK(!strcmp(sent(h, 5000), ""));
	hayes_free(h);
}

static void test_answer(void)
{
	struct seen s = {0};
	struct hayes *h = ready_modem(&s, "", true);
	CHECK_EQ(hayes_dial(h, 0), -22); /* no number: it never calls */
	hayes_set_answer(h, false);
	say(h, &s, "\r\nRING\r\n", 100);
	CHECK_EQ(s.ev[0], HAYES_EV_RING);
	CHECK(!strcmp(sent(h, 100), ""));
	CHECK_EQ(hayes_state(h), HAYES_IDLE);
	hayes_set_answer(h, true);
	say(h, &s, "\r\nRING\r\n", 2100);
	CHECK(!strcmp(sent(h, 2100), "ATA\r"));
	CHECK_EQ(hayes_state(h), HAYES_ANSWERING);
	say(h, &s, "\r\nCONNECT 19200\r\n", 4000);
	CHECK_EQ(hayes_state(h), HAYES_ONLINE);
	CHECK_EQ(hayes_connect_rate(h), 19200);
	/* Hanging up while the answer is still training: ATH at once. */
	struct seen s2 = {0};
	struct hayes *h2 = ready_modem(&s2, "", true);
	say(h2, &s2, "\r\nRING\r\n", 0);
	sent(h2, 0);
	hayes_hangup(h2, 100);
	CHECK(!strcmp(sent(h2, 100), "ATH\r"));
	say(h2, &s2, "\r\nOK\r\n", 200);
	CHECK_EQ(hayes_state(h2), HAYES_IDLE);
	hayes_free(h2);
	hayes_free(h);
}

int main(void)
{
	test_checks();
	test_init_strings();
	test_failed_calls();
	test_call_and_hangup();
	test_carrier_lost();
	test_answer();
	TEST_MAIN_END();
}
