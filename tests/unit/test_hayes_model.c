/* Tests the Hayes modem model in virtual time: commands, results, calls, escape, data phase. */
#include <errno.h>
#include <stdint.h>

#include "sim/hayes_model.h"
#include "test.h"

#define MS 1000ull
#define S  1000000ull

static uint64_t now;

/* Prints a response with its control characters visible, for a failed check. */
static void show(const char *label, const char *s)
{
	fprintf(stderr, "  %s: \"", label);
	for (; *s; s++) {
		if (*s == '\r')
			fputs("\\r", stderr);
		else if (*s == '\n')
			fputs("\\n", stderr);
		else if ((unsigned char)*s < 0x20)
			fprintf(stderr, "\\x%02x", (unsigned char)*s);
		else
			fputc(*s, stderr);
	}
	fputs("\"\n", stderr);
}

static struct hayes_params params(void)
{
	struct hayes_params p = {
	    .line = {.baud = 9600, .bits_per_byte = 10, .seed = 1},
	    .ring_us = 2 * S,
	    .train_us = 300 * MS,
	};
	return p;
}

static struct hayes_net *make(const struct hayes_params *p, size_t n)
{
	static const char *const numbers[] = {"100", "200", "300"};
	struct hayes_net *net = NULL;
	CHECK_EQ(hayes_net_new(p, numbers, n, &net), 0);
	now = 0;
	return net;
}

static void send(struct hayes_net *net, size_t m, const char *s)
{
	size_t n = strlen(s);
	size_t k = hayes_net_from_dte(net, m, (const uint8_t *)s, n, now);
	CHECK_EQ(k, n);
}

/* What modem m has for its DTE now, as a string (the bytes stay binary-safe up to cap). */
static size_t recv_dte(struct hayes_net *net, size_t m, char *buf, size_t cap)
{
	size_t n = hayes_net_to_dte(net, m, (uint8_t *)buf, cap - 1, now);
	buf[n] = 0;
	return n;
}

#define EXPECT(net, m, want)                                                                       \
	do {                                                                                       \
		char _got[4096];                                                                   \
		recv_dte((net), (m), _got, sizeof(_got));                                          \
		if (strcmp(_got, (want)) != 0) {                                                   \
			fprintf(stderr, "%s:%d: modem %d said the wrong thing\n", __FILE__,        \
				__LINE__, (int)(m));                                               \
			show("got", _got);                                                         \
			show("want", (want));                                                      \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

/* Virtual time passes in 1 ms steps, the timers running as a real loop would run them. */
static void tick(struct hayes_net *net, uint64_t dt)
{
	uint64_t end = now + dt;
	while (now < end) {
		now += MS;
		hayes_net_advance(net, now);
	}
}

static bool next_event(struct hayes_net *net, enum hayes_event_kind kind, struct hayes_event *ev)
{
	while (hayes_net_next_event(net, ev))
		if (ev->kind == kind)
			return true;
	return false;
}

static void drain_events(struct hayes_net *net)
{
	struct hayes_event ev;
	while (hayes_net_next_event(net, &ev))
		;
}

static void echo_off(struct hayes_net *net, size_t m)
{
	send(net, m, "ATE0\r");
	EXPECT(net, m, "ATE0\r\r\nOK\r\n");
}

/* a dials b, b answers: both online. */
static void call(struct hayes_net *net, size_t a, size_t b)
{
	char dial[32];
	snprintf(dial, sizeof(dial), "ATD%s\r", hayes_net_number(net, b));
	send(net, a, dial);
	EXPECT(net, b, "\r\nRING\r\n");
	send(net, b, "ATA\r");
	tick(net, 300 * MS);
	EXPECT(net, a, "\r\nCONNECT 9600\r\n");
	EXPECT(net, b, "\r\nCONNECT 9600\r\n");
}

/* Guard time, +++, guard time: back in command state with the call up. */
static void escape(struct hayes_net *net, size_t m)
{
	tick(net, 1100 * MS);
	send(net, m, "+++");
	tick(net, 1100 * MS);
	EXPECT(net, m, "\r\nOK\r\n");
}

static void test_commands(void)
{
	struct hayes_params p = params();
	struct hayes_net *net = make(&p, 2);

	/* Echo on and verbose results by default; "at" as well as "AT". */
	send(net, 0, "AT\r");
	EXPECT(net, 0, "AT\r\r\nOK\r\n");
	send(net, 0, "at\r");
	EXPECT(net, 0, "at\r\r\nOK\r\n");
	echo_off(net, 0);
	send(net, 0, "AT\r");
	EXPECT(net, 0, "\r\nOK\r\n");

	/* V0: numeric codes followed by S3; Q1: no results at all. */
	send(net, 0, "ATV0\r");
	EXPECT(net, 0, "0\r");
	send(net, 0, "ATJ\r");
	EXPECT(net, 0, "4\r");
	send(net, 0, "ATS0=5V0S0?\r");
	EXPECT(net, 0, "005\r\n0\r");
	send(net, 0, "ATV1\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "ATQ1\r");
	EXPECT(net, 0, "");
	send(net, 0, "ATJ\r");
	EXPECT(net, 0, "");
	send(net, 0, "ATQ0\r");
	EXPECT(net, 0, "\r\nOK\r\n");

	/* Several commands on a line; S-registers read back as three digits. */
	send(net, 0, "ATE0V1S0=2\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "ATS0?\r");
	EXPECT(net, 0, "\r\n002\r\n\r\nOK\r\n");
	send(net, 0, "ATS3?S4?S5?S7?S12?\r");
	EXPECT(net, 0, "\r\n013\r\n\r\n010\r\n\r\n008\r\n\r\n050\r\n\r\n050\r\n\r\nOK\r\n");
	send(net, 0, "ATS99=1\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATS9?\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATS7=0\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATS0=256\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATS0\r");
	EXPECT(net, 0, "\r\nERROR\r\n");

	/* An error stops the line there: what came before it stays done. */
	send(net, 0, "ATS0=1JS0=3\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATS0?\r");
	EXPECT(net, 0, "\r\n001\r\n\r\nOK\r\n");

	/* Before AT anything goes; LF and spaces are ignored; S5 deletes. */
	send(net, 0, "xyz\nAT\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "AT X4 L1 M0\n\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "ATS0=9\b7\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "ATS0?\r");
	EXPECT(net, 0, "\r\n007\r\n\r\nOK\r\n");

	/* A/ repeats the last line at once, without S3. */
	send(net, 0, "A/");
	EXPECT(net, 0, "\r\n007\r\n\r\nOK\r\n");

	/* I, &C, &D, &K, X, H, T, P; out of range is ERROR. */
	send(net, 0, "ATI\r");
	EXPECT(net, 0, "\r\ntern-modem 100\r\n\r\nOK\r\n");
	send(net, 1, "ATI0\r");
	EXPECT(net, 1, "ATI0\r\r\ntern-modem 200\r\n\r\nOK\r\n");
	send(net, 0, "ATI9\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "AT&C1&D2&K3X3X0X4H0TP\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "AT&K7\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "AT&Q\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATX5\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATE2\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATO\r");
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");

	/* A line too long for the buffer is an error. */
	char longline[400] = "AT";
	memset(longline + 2, 'E', 300);
	strcpy(longline + 302, "\r");
	send(net, 0, longline);
	EXPECT(net, 0, "\r\nERROR\r\n");

	/* Z and &F restore the factory settings: echo on, V1, S0=0. */
	send(net, 0, "ATV0Z\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	send(net, 0, "ATS0?\r");
	EXPECT(net, 0, "ATS0?\r\r\n000\r\n\r\nOK\r\n");
	send(net, 0, "ATE0S0=3&F\r");
	EXPECT(net, 0, "ATE0S0=3&F\r\r\nOK\r\n");
	send(net, 0, "ATE0S0?\r");
	EXPECT(net, 0, "ATE0S0?\r\r\n000\r\n\r\nOK\r\n");

	/* S3 and S4 frame the responses (V.250 5.7.1). */
	send(net, 0, "ATS3=35\r");
	EXPECT(net, 0, "#\nOK#\n");
	send(net, 0, "ATS4=33#");
	EXPECT(net, 0, "#!OK#!");
	send(net, 0, "ATS3=13S4=10#");
	EXPECT(net, 0, "\r\nOK\r\n");
	hayes_net_free(net);
}

static void test_call_and_escape(void)
{
	struct hayes_params p = params();
	struct hayes_net *net = make(&p, 2);
	struct hayes_event ev;
	char got[4096];

	echo_off(net, 0);
	echo_off(net, 1);
	send(net, 0, "ATDT 200\r");
	CHECK(next_event(net, HAYES_EV_DIAL, &ev));
	CHECK(strcmp(ev.number, "200") == 0);
	EXPECT(net, 0, "");
	EXPECT(net, 1, "\r\nRING\r\n");
	tick(net, 1999 * MS);
	EXPECT(net, 1, "");
	tick(net, 1 * MS);
	EXPECT(net, 1, "\r\nRING\r\n");
	send(net, 1, "ATS1?\r");
	EXPECT(net, 1, "\r\n002\r\n\r\nOK\r\n");
	send(net, 1, "ATA\r");
	CHECK(next_event(net, HAYES_EV_ANSWER, &ev));
	CHECK_EQ(ev.modem, 1);
	tick(net, 299 * MS);
	EXPECT(net, 0, "");
	tick(net, 1 * MS);
	CHECK(next_event(net, HAYES_EV_CONNECT, &ev));
	CHECK_EQ(ev.modem, 0);
	CHECK_EQ(ev.peer, 1);
	EXPECT(net, 0, "\r\nCONNECT 9600\r\n");
	EXPECT(net, 1, "\r\nCONNECT 9600\r\n");

	/* Data both ways, through the line. */
	send(net, 0, "hello");
	send(net, 1, "world");
	tick(net, 10 * MS);
	EXPECT(net, 1, "hello");
	EXPECT(net, 0, "world");

	/* "+++" without the guard time before it is data. */
	send(net, 0, "x+++");
	tick(net, 2 * S);
	EXPECT(net, 0, "");
	EXPECT(net, 1, "x+++");
	/* Nor with a byte right after it. */
	tick(net, 1100 * MS);
	send(net, 0, "+++");
	tick(net, 500 * MS);
	send(net, 0, "y");
	tick(net, 2 * S);
	EXPECT(net, 0, "");
	EXPECT(net, 1, "+++y");
	/* Nor four. */
	tick(net, 1100 * MS);
	send(net, 0, "++++");
	tick(net, 2 * S);
	EXPECT(net, 0, "");
	EXPECT(net, 1, "++++");
	/* Nor with the three spread wider than the guard time. */
	tick(net, 1100 * MS);
	send(net, 0, "+");
	tick(net, 1100 * MS);
	send(net, 0, "++");
	tick(net, 2 * S);
	EXPECT(net, 0, "");
	EXPECT(net, 1, "+++");

	/* Guard, +++, guard: OK, command state, the call up; the +++ goes over, as on Hayes. */
	tick(net, 1100 * MS);
	send(net, 0, "+++");
	tick(net, 999 * MS);
	EXPECT(net, 0, "");
	tick(net, 1 * MS);
	EXPECT(net, 0, "\r\nOK\r\n");
	EXPECT(net, 1, "+++");
	send(net, 0, "ATS0?\r");
	EXPECT(net, 0, "\r\n000\r\n\r\nOK\r\n");
	send(net, 0, "ATD300\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	/* What comes over the line in command state is lost. */
	send(net, 1, "lost");
	tick(net, 20 * MS);
	send(net, 0, "ATO\r");
	EXPECT(net, 0, "\r\nCONNECT 9600\r\n");
	send(net, 1, "kept");
	tick(net, 20 * MS);
	EXPECT(net, 0, "kept");
	CHECK_EQ(hayes_net_stats(net, 0, now).discarded, 4);

	/* S12 sets the guard time, in fiftieths of a second. */
	escape(net, 0);
	EXPECT(net, 1, "+++");
	send(net, 0, "ATS12=10O\r");
	EXPECT(net, 0, "\r\nCONNECT 9600\r\n");
	tick(net, 210 * MS);
	send(net, 0, "+++");
	tick(net, 210 * MS);
	EXPECT(net, 0, "\r\nOK\r\n");
	EXPECT(net, 1, "+++");

	/* ATH: OK here, NO CARRIER there, both back in command state. */
	drain_events(net);
	send(net, 0, "ATH\r");
	EXPECT(net, 0, "\r\nOK\r\n");
	EXPECT(net, 1, "\r\nNO CARRIER\r\n");
	CHECK(hayes_net_next_event(net, &ev));
	CHECK(ev.kind == HAYES_EV_HANGUP && ev.modem == 0 && ev.peer == 1);
	CHECK(hayes_net_next_event(net, &ev));
	CHECK(ev.kind == HAYES_EV_CARRIER_LOST && ev.modem == 1);
	send(net, 1, "AT\r");
	EXPECT(net, 1, "\r\nOK\r\n");

	struct hayes_stats a = hayes_net_stats(net, 0, now), b = hayes_net_stats(net, 1, now);
	CHECK_EQ(a.dials, 1);
	CHECK_EQ(a.connects, 1);
	CHECK_EQ(a.hangups, 1);
	CHECK_EQ(a.no_carrier, 0);
	CHECK_EQ(b.connects, 1);
	CHECK_EQ(b.rings, 2);
	CHECK_EQ(b.no_carrier, 1);
	CHECK_EQ(b.hangups, 0);
	CHECK_EQ(a.bytes_to_line, 5 + 4 + 4 + 4 + 3 + 3 + 3 + 3);
	CHECK_EQ(a.discarded, 4);
	CHECK_EQ(b.bytes_from_line, a.bytes_to_line);
	CHECK_EQ(b.bytes_to_line, 5 + 4 + 4);
	CHECK_EQ(a.bytes_from_line, 5 + 4);
	CHECK_EQ(a.line.carried, a.bytes_to_line);
	/* The sum of the ticks since CONNECT: virtual time is exact. */
	CHECK_EQ(a.online_us, 17670 * MS);
	CHECK_EQ(b.online_us, a.online_us);
	/* The call is over: the counters stay. */
	tick(net, 5 * S);
	CHECK_EQ(hayes_net_stats(net, 0, now).online_us, a.online_us);
	recv_dte(net, 1, got, sizeof(got));
	CHECK(got[0] == 0);
	hayes_net_free(net);
}

static void test_rate(void)
{
	static uint8_t in[1920], out[sizeof(in)];
	struct hayes_params p = params();
	p.line.baud = 19200;
	p.line.latency_ms = 100;
	struct hayes_net *net = make(&p, 2);
	char dummy[64];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	echo_off(net, 0);
	echo_off(net, 1);
	send(net, 0, "ATD200\r");
	send(net, 1, "ATA\r");
	tick(net, 300 * MS);
	recv_dte(net, 0, dummy, sizeof(dummy));
	recv_dte(net, 1, dummy, sizeof(dummy));
	CHECK(strstr(dummy, "CONNECT 19200") != NULL);
	/* A greedy writer and a prompt reader: one second of bytes takes a second, plus latency. */
	size_t put = 0, got = 0;
	uint64_t start = now, first = 0;
	while (got < sizeof(in) && now - start < 5 * S) {
		if (put < sizeof(in)) {
			size_t room = hayes_net_room(net, 0, now);
			size_t n = room < sizeof(in) - put ? room : sizeof(in) - put;
			put += hayes_net_from_dte(net, 0, in + put, n, now);
		}
		size_t k = hayes_net_to_dte(net, 1, out + got, sizeof(out) - got, now);
		if (k && !got)
			first = now;
		got += k;
		now += MS;
	}
	CHECK_EQ(got, sizeof(in));
	CHECK_MEM(in, out, sizeof(in));
	double took = (double)(now - start) / 1e6;
	CHECK(took >= 1.09 && took < 1.2);
	CHECK(first - start >= 100 * MS);
	hayes_net_free(net);
}

static void test_auto_answer(void)
{
	struct hayes_params p = params();
	struct hayes_net *net = make(&p, 2);

	echo_off(net, 0);
	echo_off(net, 1);
	send(net, 1, "ATS0=2\r");
	EXPECT(net, 1, "\r\nOK\r\n");
	send(net, 0, "ATD200\r");
	EXPECT(net, 1, "\r\nRING\r\n");
	tick(net, 2 * S);
	EXPECT(net, 1, "\r\nRING\r\n");
	tick(net, 299 * MS);
	EXPECT(net, 0, "");
	tick(net, 1 * MS);
	EXPECT(net, 0, "\r\nCONNECT 9600\r\n");
	EXPECT(net, 1, "\r\nCONNECT 9600\r\n");
	CHECK_EQ(hayes_net_stats(net, 1, now).rings, 2);
	hayes_net_free(net);
}

static void test_busy(void)
{
	struct hayes_params p = params();
	struct hayes_net *net = make(&p, 3);

	for (size_t i = 0; i < 3; i++)
		echo_off(net, i);
	/* Off hook (H1): callers get BUSY. */
	send(net, 1, "ATH1\r");
	EXPECT(net, 1, "\r\nOK\r\n");
	send(net, 0, "ATD200\r");
	EXPECT(net, 0, "\r\nBUSY\r\n");
	EXPECT(net, 1, "");
	send(net, 1, "ATH0\r");
	EXPECT(net, 1, "\r\nOK\r\n");
	/* Dialing yourself. */
	send(net, 0, "ATD100\r");
	EXPECT(net, 0, "\r\nBUSY\r\n");
	/* In a call: BUSY, in the X level's words. */
	call(net, 0, 1);
	send(net, 2, "ATD200\r");
	EXPECT(net, 2, "\r\nBUSY\r\n");
	send(net, 2, "ATX0D100\r");
	EXPECT(net, 2, "\r\nNO CARRIER\r\n");
	send(net, 2, "ATX3V0D100\r");
	EXPECT(net, 2, "7\r");
	CHECK_EQ(hayes_net_stats(net, 2, now).busy, 3);
	CHECK_EQ(hayes_net_stats(net, 0, now).busy, 2);
	hayes_net_free(net);
}

static void test_no_answer(void)
{
	struct hayes_params p = params();
	struct hayes_net *net = make(&p, 2);
	struct hayes_event ev;

	echo_off(net, 0);
	echo_off(net, 1);
	send(net, 0, "ATS7=5D200\r");
	EXPECT(net, 1, "\r\nRING\r\n");
	tick(net, 4999 * MS);
	EXPECT(net, 0, "");
	EXPECT(net, 1, "\r\nRING\r\n\r\nRING\r\n");
	tick(net, 1 * MS);
	EXPECT(net, 0, "\r\nNO ANSWER\r\n");
	CHECK(next_event(net, HAYES_EV_FAIL, &ev));
	CHECK(ev.result == HAYES_NO_ANSWER);
	/* The ringing stops with it, and the line is free again. */
	tick(net, 10 * S);
	EXPECT(net, 1, "");
	send(net, 1, "ATA\r");
	tick(net, 10 * MS);
	EXPECT(net, 0, "");
	send(net, 1, "x"); /* ATA with nothing ringing waits for a carrier: abort it */
	EXPECT(net, 1, "\r\nNO CARRIER\r\n");
	/* X0 has no NO ANSWER. */
	send(net, 0, "ATX0S7=1D200\r");
	tick(net, 1 * S);
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	EXPECT(net, 1, "\r\nRING\r\n");
	CHECK_EQ(hayes_net_stats(net, 0, now).no_answer, 2);
	hayes_net_free(net);
}

static void test_unknown_and_abort(void)
{
	struct hayes_params p = params();
	struct hayes_net *net = make(&p, 2);
	struct hayes_event ev;

	echo_off(net, 0);
	echo_off(net, 1);
	/* A number nobody has: silence, then NO CARRIER at S7. */
	send(net, 0, "ATS7=3D999\r");
	tick(net, 2999 * MS);
	EXPECT(net, 0, "");
	tick(net, 1 * MS);
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	CHECK(next_event(net, HAYES_EV_FAIL, &ev));
	CHECK(ev.result == HAYES_NO_CARRIER && strcmp(ev.why, "number not on the network") == 0);

	/* Any character while the far end rings aborts: NO CARRIER, and the ringing stops. */
	send(net, 0, "ATD200\r");
	EXPECT(net, 1, "\r\nRING\r\n");
	send(net, 0, "\n");
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	tick(net, 5 * S);
	EXPECT(net, 1, "");

	/* And while the two train: both get NO CARRIER. */
	send(net, 0, "ATD200\r");
	EXPECT(net, 1, "\r\nRING\r\n");
	send(net, 1, "ATA\r");
	tick(net, 100 * MS);
	send(net, 1, "?");
	EXPECT(net, 1, "\r\nNO CARRIER\r\n");
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	tick(net, 1 * S);
	EXPECT(net, 0, "");

	/* Commas pause S8 seconds each; T, P, W, '-' and the like are ignored. */
	send(net, 0, "ATS8=1DT,,2-0W0\r");
	tick(net, 1999 * MS);
	EXPECT(net, 1, "");
	tick(net, 1 * MS);
	EXPECT(net, 1, "\r\nRING\r\n");
	send(net, 0, "x");
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	/* ';' is not supported; nor is dialing while a call rings here. */
	send(net, 0, "ATD200;\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 1, "ATD100\r");
	EXPECT(net, 0, "\r\nRING\r\n");
	send(net, 0, "ATD200\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	CHECK_EQ(hayes_net_stats(net, 0, now).no_carrier, 4);
	hayes_net_free(net);
}

static void test_scripted(void)
{
	static const enum hayes_outcome calls[] = {
	    HAYES_CALL_BUSY,	   HAYES_CALL_NO_ANSWER, HAYES_CALL_NO_DIALTONE,
	    HAYES_CALL_NO_CARRIER, HAYES_CALL_ERROR,	 HAYES_CALL_NO_DIALTONE,
	};
	struct hayes_params p = params();
	p.calls = calls;
	p.ncalls = sizeof(calls) / sizeof(calls[0]);
	struct hayes_net *net = make(&p, 2);

	echo_off(net, 0);
	echo_off(net, 1);
	send(net, 0, "ATS7=2D200\r");
	EXPECT(net, 0, "\r\nBUSY\r\n");
	send(net, 0, "ATD200\r");
	tick(net, 1999 * MS);
	EXPECT(net, 0, "");
	EXPECT(net, 1, ""); /* it rings nowhere */
	tick(net, 1 * MS);
	EXPECT(net, 0, "\r\nNO ANSWER\r\n");
	send(net, 0, "ATD200\r");
	EXPECT(net, 0, "\r\nNO DIALTONE\r\n");
	send(net, 0, "ATD200\r");
	tick(net, 1999 * MS);
	EXPECT(net, 0, "");
	tick(net, 1 * MS);
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	send(net, 0, "ATD200\r");
	EXPECT(net, 0, "\r\nERROR\r\n");
	send(net, 0, "ATX3D200\r"); /* X3 dials blind: no NO DIALTONE */
	EXPECT(net, 0, "\r\nNO CARRIER\r\n");
	/* After the list, calls connect as normal. */
	send(net, 0, "ATX4D200\r");
	EXPECT(net, 1, "\r\nRING\r\n");
	struct hayes_stats s = hayes_net_stats(net, 0, now);
	CHECK_EQ(s.dials, 7);
	CHECK_EQ(s.busy, 1);
	CHECK_EQ(s.no_answer, 1);
	CHECK_EQ(s.no_dialtone, 2);
	CHECK_EQ(s.no_carrier, 1);
	hayes_net_free(net);
}

static void test_carrier_loss(void)
{
	struct hayes_params p = params();
	p.carrier_us = 5 * S;
	struct hayes_net *net = make(&p, 3);
	struct hayes_event ev;

	for (size_t i = 0; i < 3; i++)
		echo_off(net, i);
	call(net, 0, 1);
	drain_events(net);
	tick(net, 4900 * MS);
	EXPECT(net, 0, "");
	send(net, 1, "last");
	tick(net, 99 * MS);
	CHECK_EQ(hayes_net_stats(net, 0, now).no_carrier, 0);
	tick(net, 1 * MS);
	/* Bytes that had arrived come before NO CARRIER. */
	EXPECT(net, 0, "last\r\nNO CARRIER\r\n");
	EXPECT(net, 1, "\r\nNO CARRIER\r\n");
	CHECK(next_event(net, HAYES_EV_CARRIER_LOST, &ev));
	CHECK(strcmp(ev.why, "--carrier-s") == 0);
	CHECK_EQ(hayes_net_stats(net, 0, now).online_us, 5 * S);
	send(net, 0, "AT\r");
	EXPECT(net, 0, "\r\nOK\r\n");

	/* hayes_net_drop_carrier (SIGUSR1) drops every connected call, in command state too. */
	call(net, 0, 1);
	escape(net, 1);
	hayes_net_drop_carrier(net, now);
	EXPECT(net, 0, "+++\r\nNO CARRIER\r\n");
	EXPECT(net, 1, "\r\nNO CARRIER\r\n");
	CHECK_EQ(hayes_net_stats(net, 0, now).no_carrier, 2);
	CHECK_EQ(hayes_net_stats(net, 2, now).no_carrier, 0);
	hayes_net_free(net);
}

static void test_line_damage(void)
{
	static uint8_t in[4000], out[sizeof(in)];
	struct hayes_params p = params();
	p.line.baud = 115200;
	p.line.ber = 1e-3;
	struct hayes_net *net = make(&p, 2);
	char dummy[64];

	echo_off(net, 0);
	echo_off(net, 1);
	send(net, 0, "ATD200\r");
	send(net, 1, "ATA\r");
	tick(net, 300 * MS);
	recv_dte(net, 0, dummy, sizeof(dummy));
	recv_dte(net, 1, dummy, sizeof(dummy));
	size_t put = 0, got = 0;
	while (got < sizeof(in) && now < 10 * S) {
		put += hayes_net_from_dte(net, 0, in + put, sizeof(in) - put, now);
		got += hayes_net_to_dte(net, 1, out + got, sizeof(out) - got, now);
		now += MS;
	}
	CHECK_EQ(got, sizeof(in));
	unsigned flips = 0;
	for (size_t i = 0; i < sizeof(in); i++)
		for (uint8_t x = in[i] ^ out[i]; x; x &= (uint8_t)(x - 1))
			flips++;
	struct hayes_stats s = hayes_net_stats(net, 0, now);
	CHECK_EQ(s.line.flipped_bits, flips);
	CHECK(flips >= 10 && flips <= 70); /* 32000 bits at 1e-3: 32 */
	hayes_net_free(net);
}

static void test_bad_params(void)
{
	static const char *const ok[] = {"100", "200"};
	static const char *const dup[] = {"100", "100"};
	static const char *const bad[] = {"100", "2x0"};
	static const char *const empty[] = {""};
	static const char *const digits[] = {"+1*2#3ABCD"};
	struct hayes_params p = params();
	struct hayes_net *net = NULL;

	CHECK_EQ(hayes_net_new(&p, ok, 0, &net), -EINVAL);
	CHECK_EQ(hayes_net_new(&p, dup, 2, &net), -EINVAL);
	CHECK_EQ(hayes_net_new(&p, bad, 2, &net), -EINVAL);
	CHECK_EQ(hayes_net_new(&p, empty, 1, &net), -EINVAL);
	CHECK(net == NULL);
	CHECK_EQ(hayes_net_new(&p, digits, 1, &net), 0);
	hayes_net_free(net);
	p.ring_us = 0;
	CHECK_EQ(hayes_net_new(&p, ok, 2, &net), -EINVAL);
	p = params();
	p.line.baud = 0;
	CHECK_EQ(hayes_net_new(&p, ok, 2, &net), -EINVAL);
	p = params();
	p.line.baud = LINE_BAUD_MAX;
	p.line.latency_ms = LINE_LATENCY_MS_MAX;
	CHECK_EQ(hayes_net_new(&p, ok, 2, &net), -EINVAL);
	hayes_net_free(NULL);
}

int main(void)
{
	test_commands();
	test_call_and_escape();
	test_rate();
	test_auto_answer();
	test_busy();
	test_no_answer();
	test_unknown_and_abort();
	test_scripted();
	test_carrier_loss();
	test_line_damage();
	test_bad_params();
	TEST_MAIN_END();
}
