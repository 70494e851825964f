/* tern-modem [options] NUMBER=TTY...: fake Hayes modems on a small phone network, between ptys. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "sim/hayes_model.h"
#include "sim/tool.h"

#define READ_BUF 4096

static const char usage[] =
    "usage: tern-modem [options] NUMBER=TTY NUMBER=TTY...\n"
    "\n"
    "Answers AT commands on each TTY (the far end of a pty pair, e.g. made by socat) as a\n"
    "Hayes modem on phone number NUMBER would, and connects the calls between them; the\n"
    "data phase runs at the line rate with the latency and damage of tern-line\n"
    "(docs/modem.md).\n"
    "\n"
    "  --baud N          bits per second in the data phase, also in CONNECT (default 9600)\n"
    "  --bits N          bits per byte on the wire, 7..12 (default 10: 8N1)\n"
    "  --latency-ms N    one-way latency in milliseconds (default 0)\n"
    "  --ber X           bit error rate in [0, 1) (default 0)\n"
    "  --drop X          probability that a byte is lost, in [0, 1) (default 0)\n"
    "  --seed N          seed of the damage (default 1); call k uses N + k\n"
    "  --ring-s S        seconds between RINGs (default 2)\n"
    "  --train-ms N      milliseconds from answer to CONNECT (default 300)\n"
    "  --calls LIST      outcomes of the first dial attempts, comma-separated: connect,\n"
    "                    busy, no-answer, no-dialtone, no-carrier, error (then connect)\n"
    "  --carrier-s S     every connection loses carrier after S seconds online\n"
    "  --stats FILE      on exit (SIGTERM, SIGINT) write the counters there as JSON\n"
    "\n"
    "SIGUSR1 drops the carrier of every connected call.\n";

enum opt {
	OPT_BAUD = 1,
	OPT_BITS,
	OPT_LATENCY,
	OPT_BER,
	OPT_DROP,
	OPT_SEED,
	OPT_RING,
	OPT_TRAIN,
	OPT_CALLS,
	OPT_CARRIER,
	OPT_STATS,
	OPT_HELP,
};

static const struct option options[] = {
    {"baud", required_argument, NULL, OPT_BAUD},
    {"bits", required_argument, NULL, OPT_BITS},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"ber", required_argument, NULL, OPT_BER},
    {"drop", required_argument, NULL, OPT_DROP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"ring-s", required_argument, NULL, OPT_RING},
    {"train-ms", required_argument, NULL, OPT_TRAIN},
    {"calls", required_argument, NULL, OPT_CALLS},
    {"carrier-s", required_argument, NULL, OPT_CARRIER},
    {"stats", required_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const outcome_names[] = {
    [HAYES_CALL_CONNECT] = "connect",	    [HAYES_CALL_BUSY] = "busy",
    [HAYES_CALL_NO_ANSWER] = "no-answer",   [HAYES_CALL_NO_DIALTONE] = "no-dialtone",
    [HAYES_CALL_NO_CARRIER] = "no-carrier", [HAYES_CALL_ERROR] = "error",
};

/*
 * One modem's DTE side: its tty, and what was read from it. While the tty is closed the modem
 * stays as it is, like a modem whose cable was pulled; what it says meanwhile is lost.
 */
struct side {
	struct tool_tty tty;
	uint8_t in[READ_BUF]; /* read from the tty, not yet taken by the modem */
	size_t in_off, in_len;
};

struct modems {
	struct hayes_net *net;
	uint32_t baud;
	size_t n;
	struct side side[HAYES_MODEMS_MAX];
	uint64_t start;
};

/* "busy,no-answer,connect" into out; false on an empty or unknown item, or too many. */
static bool parse_calls(const char *list, enum hayes_outcome *out, size_t *n)
{
	const char *p = list;
	*n = 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		size_t k = 0;
		while (k < sizeof(outcome_names) / sizeof(outcome_names[0]) &&
		       !(strlen(outcome_names[k]) == len && strncmp(outcome_names[k], p, len) == 0))
			k++;
		if (k == sizeof(outcome_names) / sizeof(outcome_names[0]) || *n == HAYES_CALLS_MAX)
			return false;
		out[(*n)++] = (enum hayes_outcome)k;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

/* Feeds modem i what its DTE wrote, reading more only as fast as the modem takes it. */
static void pump_in(struct modems *ms, size_t i, uint64_t now)
{
	struct side *s = &ms->side[i];
	while (s->tty.fd >= 0) {
		if (s->in_off == s->in_len) {
			size_t room = hayes_net_room(ms->net, i, now);
			s->in_off = s->in_len = 0;
			size_t n =
			    tool_tty_read(&s->tty, s->in, room < READ_BUF ? room : READ_BUF, now);
			if (n == 0)
				return;
			s->in_len = n;
		}
		size_t k =
		    hayes_net_from_dte(ms->net, i, s->in + s->in_off, s->in_len - s->in_off, now);
		s->in_off += k;
		if (k == 0)
			return;
	}
}

/* Moves what modem i has for its DTE to the tty, as far as the tty takes it. */
static void pump_out(struct modems *ms, size_t i, uint64_t now)
{
	struct tool_tty *t = &ms->side[i].tty;
	if (t->fd < 0) {
		uint8_t sink[READ_BUF];
		size_t n;
		while ((n = hayes_net_to_dte(ms->net, i, sink, sizeof(sink), now)) > 0)
			t->closed_lost += n;
		return;
	}
	for (;;) {
		if (tool_tty_flush(t, now) < 0)
			return;
		size_t room;
		uint8_t *tail = tool_tty_out_tail(t, &room);
		size_t n = hayes_net_to_dte(ms->net, i, tail, room, now);
		t->out_len += n;
		if (n == 0 || t->out_len == TOOL_TTY_OUT) {
			tool_tty_flush(t, now);
			return;
		}
	}
}

/* One stderr line per call event, with the time since start. */
static void log_events(struct modems *ms)
{
	struct hayes_event ev;
	while (hayes_net_next_event(ms->net, &ev)) {
		double t = tool_seconds(ev.at_us - ms->start);
		const char *me = hayes_net_number(ms->net, ev.modem);
		const char *peer = ev.peer == SIZE_MAX ? "" : hayes_net_number(ms->net, ev.peer);
		switch (ev.kind) {
		case HAYES_EV_DIAL:
			fprintf(stderr, "tern-modem: %.3f s: %s dials %s\n", t, me,
				ev.number[0] ? ev.number : "(no number)");
			break;
		case HAYES_EV_ANSWER:
			fprintf(stderr, "tern-modem: %.3f s: %s answers %s\n", t, me, peer);
			break;
		case HAYES_EV_CONNECT:
			fprintf(stderr,
				"tern-modem: %.3f s: %s connected to %s at %" PRIu32 " baud\n", t,
				me, peer, ms->baud);
			break;
		case HAYES_EV_FAIL:
			fprintf(stderr, "tern-modem: %.3f s: %s %s (%s)\n", t, me,
				hayes_result_name(ev.result), ev.why ? ev.why : "");
			break;
		case HAYES_EV_HANGUP:
			fprintf(stderr, "tern-modem: %.3f s: %s hangs up on %s\n", t, me, peer);
			break;
		case HAYES_EV_CARRIER_LOST:
			fprintf(stderr, "tern-modem: %.3f s: %s carrier lost (%s)\n", t, me,
				ev.why ? ev.why : "");
			break;
		}
	}
}

/* A JSON string: the path is the only text that is not ours. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void write_stats_modem(FILE *f, const struct modems *ms, size_t i, uint64_t now)
{
	struct hayes_stats s = hayes_net_stats(ms->net, i, now);
	fputs("{\"number\": ", f);
	json_string(f, hayes_net_number(ms->net, i));
	fputs(", \"tty\": ", f);
	json_string(f, ms->side[i].tty.path);
	fprintf(f,
		", \"dials\": %" PRIu64 ", \"connects\": %" PRIu64 ", \"busy\": %" PRIu64
		", \"no_answer\": %" PRIu64 ", \"no_dialtone\": %" PRIu64
		", \"no_carrier\": %" PRIu64 ", \"hangups\": %" PRIu64 ", \"rings\": %" PRIu64
		", \"bytes_to_line\": %" PRIu64 ", \"bytes_from_line\": %" PRIu64
		", \"discarded\": %" PRIu64 ", \"closed_lost\": %" PRIu64
		", \"seconds_online\": %.3f",
		s.dials, s.connects, s.busy, s.no_answer, s.no_dialtone, s.no_carrier, s.hangups,
		s.rings, s.bytes_to_line, s.bytes_from_line, s.discarded,
		ms->side[i].tty.closed_lost, tool_seconds(s.online_us));
	fprintf(f,
		", \"line\": {\"carried\": %" PRIu64 ", \"flipped_bits\": %" PRIu64
		", \"dropped\": %" PRIu64 ", \"cut_lost\": %" PRIu64 "}}",
		s.line.carried, s.line.flipped_bits, s.line.dropped, s.line.cut_lost);
}

/* The stats file's JSON, for tool_write_stats. */
static void write_stats(FILE *f, const void *ctx)
{
	const struct modems *ms = ctx;
	uint64_t now = tool_now_us();
	fputs("{\"modems\": [", f);
	for (size_t i = 0; i < ms->n; i++) {
		if (i)
			fputs(",\n  ", f);
		write_stats_modem(f, ms, i, now);
	}
	fprintf(f, "], \"events_lost\": %" PRIu64 "}\n", hayes_net_events_lost(ms->net));
}

static int run(struct modems *ms)
{
	tool_signals_catch(true);
	fprintf(stderr, "tern-modem: ready\n");
	ms->start = tool_now_us();
	while (!tool_stopping()) {
		uint64_t now = tool_now_us();
		if (tool_take_usr1())
			hayes_net_drop_carrier(ms->net, now);
		hayes_net_advance(ms->net, now);
		/* What the DTE wrote before its tty closed went nowhere. */
		for (size_t i = 0; i < ms->n; i++)
			if (tool_tty_reopen(&ms->side[i].tty, now))
				ms->side[i].in_off = ms->side[i].in_len = 0;
		for (size_t i = 0; i < ms->n; i++)
			pump_in(ms, i, now);
		for (size_t i = 0; i < ms->n; i++)
			pump_out(ms, i, now);
		log_events(ms);

		struct pollfd pfd[HAYES_MODEMS_MAX];
		bool ready[HAYES_MODEMS_MAX];
		for (size_t i = 0; i < ms->n; i++)
			ready[i] = ms->side[i].tty.fd < 0 || ms->side[i].tty.out_len < TOOL_TTY_OUT;
		uint64_t wake = hayes_net_next_us(ms->net, now, ready);
		for (size_t i = 0; i < ms->n; i++) {
			struct side *s = &ms->side[i];
			size_t room = hayes_net_room(ms->net, i, now);
			if (!tool_tty_poll(&s->tty, &pfd[i], &wake))
				continue;
			if (s->in_off == s->in_len && room > 0)
				pfd[i].events |= POLLIN;
			if (s->in_off < s->in_len && room > 0)
				wake =
				    now; /* what was read waits for the modem, which takes it now */
		}
		if (tool_wait(pfd, ms->n, wake, now) < 0)
			return TOOL_EXIT_FAIL;
		for (size_t i = 0; i < ms->n; i++)
			tool_tty_polled(&ms->side[i].tty, &pfd[i]);
	}
	log_events(ms);
	return TOOL_EXIT_OK;
}

/* NUMBER=TTY into the two; false with a message if it is not so made. */
static bool parse_modem(const char *arg, char *number, const char **path)
{
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : 0;
	if (!eq || !eq[1]) {
		fprintf(stderr, "tern-modem: %s: give NUMBER=TTY\n%s", arg, usage);
		return false;
	}
	if (len == 0 || len > HAYES_NUMBER_MAX || strspn(arg, "0123456789ABCD*#+") != len) {
		fprintf(stderr,
			"tern-modem: %s: a number is 1 to %d of the dial digits 0-9 A-D * # +\n",
			arg, HAYES_NUMBER_MAX);
		return false;
	}
	memcpy(number, arg, len);
	number[len] = 0;
	*path = eq + 1;
	return true;
}

int main(int argc, char **argv)
{
	static struct modems ms;
	static enum hayes_outcome calls[HAYES_CALLS_MAX];
	static char numbers[HAYES_MODEMS_MAX][HAYES_NUMBER_MAX + 1];
	const char *number_ptrs[HAYES_MODEMS_MAX];
	struct hayes_params p = {
	    .line = {.baud = 9600, .bits_per_byte = 10, .seed = 1},
	    .ring_us = 2000000,
	    .train_us = 300000,
	    .calls = calls,
	};
	const char *stats = NULL;
	uint64_t v;
	double x;
	int c;

	tool_init("tern-modem");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		const char *name = c > 0 && c < OPT_HELP ? options[c - 1].name : NULL;
		switch (c) {
		case OPT_BAUD:
			if (!tool_parse_u64(optarg, 1, LINE_BAUD_MAX, &v)) {
				tool_bad_value(name, optarg,
					       "give a whole number from 1 to 4000000");
				return TOOL_EXIT_USAGE;
			}
			p.line.baud = (uint32_t)v;
			break;
		case OPT_BITS:
			if (!tool_parse_u64(optarg, 7, 12, &v)) {
				tool_bad_value(name, optarg,
					       "give a whole number from 7 to 12 (10 for 8N1)");
				return TOOL_EXIT_USAGE;
			}
			p.line.bits_per_byte = (uint8_t)v;
			break;
		case OPT_LATENCY:
			if (!tool_parse_u64(optarg, 0, LINE_LATENCY_MS_MAX, &v)) {
				tool_bad_value(
				    name, optarg,
				    "give whole milliseconds from 0 to 600000 (ten minutes)");
				return TOOL_EXIT_USAGE;
			}
			p.line.latency_ms = (uint32_t)v;
			break;
		case OPT_BER:
		case OPT_DROP:
			if (!tool_parse_double(optarg, 0, 1, &x)) {
				tool_bad_value(name, optarg,
					       "give a probability from 0 up to, not including, 1");
				return TOOL_EXIT_USAGE;
			}
			*(c == OPT_BER ? &p.line.ber : &p.line.drop) = x;
			break;
		case OPT_SEED:
			if (!tool_parse_u64(optarg, 0, UINT64_MAX, &v)) {
				tool_bad_value(name, optarg,
					       "give a whole number from 0 to 2^64 - 1");
				return TOOL_EXIT_USAGE;
			}
			p.line.seed = v;
			break;
		case OPT_RING:
			if (!tool_parse_seconds(optarg, &x) || x > 600 ||
			    tool_seconds_to_us(x) == 0) {
				tool_bad_value(name, optarg, "give seconds above 0, up to 600");
				return TOOL_EXIT_USAGE;
			}
			p.ring_us = tool_seconds_to_us(x);
			break;
		case OPT_TRAIN:
			if (!tool_parse_u64(optarg, 0, HAYES_TIME_MAX / 1000, &v)) {
				tool_bad_value(name, optarg,
					       "give whole milliseconds from 0 to 600000");
				return TOOL_EXIT_USAGE;
			}
			p.train_us = v * 1000;
			break;
		case OPT_CALLS:
			if (!parse_calls(optarg, calls, &p.ncalls)) {
				tool_bad_value(name, optarg,
					       "give up to 1024 of connect, busy, no-answer, "
					       "no-dialtone, no-carrier, error, comma-separated");
				return TOOL_EXIT_USAGE;
			}
			break;
		case OPT_CARRIER:
			if (!tool_parse_seconds(optarg, &x) || tool_seconds_to_us(x) == 0) {
				tool_bad_value(name, optarg, "give seconds above 0");
				return TOOL_EXIT_USAGE;
			}
			p.carrier_us = tool_seconds_to_us(x);
			break;
		case OPT_STATS:
			stats = optarg;
			break;
		case OPT_HELP:
		case 'h':
			fputs(usage, stdout);
			return TOOL_EXIT_OK;
		default: /* ':' for a missing value, or an unknown option */
			return tool_bad_option(c, argv[optind - 1], usage);
		}
	}
	if (argc - optind < 1 || argc - optind > HAYES_MODEMS_MAX) {
		fprintf(stderr, "tern-modem: give 1 to %d modems as NUMBER=TTY\n%s",
			HAYES_MODEMS_MAX, usage);
		return TOOL_EXIT_USAGE;
	}
	ms.n = (size_t)(argc - optind);
	for (size_t i = 0; i < ms.n; i++) {
		const char *path;
		if (!parse_modem(argv[optind + (int)i], numbers[i], &path))
			return TOOL_EXIT_USAGE;
		number_ptrs[i] = numbers[i];
		tool_tty_init(&ms.side[i].tty, path);
		for (size_t j = 0; j < i; j++)
			if (strcmp(numbers[i], numbers[j]) == 0) {
				fprintf(stderr, "tern-modem: number %s given twice\n", numbers[i]);
				return TOOL_EXIT_USAGE;
			}
	}
	ms.baud = p.line.baud;
	int r = hayes_net_new(&p, number_ptrs, ms.n, &ms.net);
	if (r == -EINVAL) {
		/* Every value was checked above: only the line's bytes in flight are left. */
		fprintf(stderr,
			"tern-modem: --baud %" PRIu32 " with --latency-ms %" PRIu32
			" --bits %u: more than %u bytes in flight\n",
			p.line.baud, p.line.latency_ms, p.line.bits_per_byte, LINE_INFLIGHT_MAX);
		return TOOL_EXIT_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "tern-modem: %s\n", strerror(-r));
		return TOOL_EXIT_FAIL;
	}
	int ret = TOOL_EXIT_OK;
	for (size_t i = 0; i < ms.n && ret == TOOL_EXIT_OK; i++)
		if (tool_tty_open(&ms.side[i].tty) < 0)
			ret = TOOL_EXIT_FAIL;
	if (ret == TOOL_EXIT_OK)
		ret = run(&ms);
	if (ret == TOOL_EXIT_OK && stats && tool_write_stats(stats, write_stats, &ms) < 0)
		ret = TOOL_EXIT_FAIL;
	for (size_t i = 0; i < ms.n; i++)
		tool_tty_free(&ms.side[i].tty);
	hayes_net_free(ms.net);
	return ret;
}
