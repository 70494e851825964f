/* tern-modem [options] NUMBER=TTY...: fake Hayes modems on a small phone network, between ptys. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim/hayes_model.h"

#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define REOPEN_US    200000u
#define OUT_BUF	     4096
#define READ_BUF     4096
#define SECONDS_MAX  1e9 /* about 31 years: any --carrier-s beyond is a typo */
#define US_PER_S     1000000.0
#define TIME_FOREVER UINT64_MAX

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

/* One modem's DTE side: the path, its fd (-1 while closed), bytes each way. */
struct side {
	const char *path;
	int fd;
	uint64_t reopen_us;
	uint8_t out[OUT_BUF]; /* for the tty */
	size_t out_off, out_len;
	uint8_t in[READ_BUF]; /* read from the tty, not yet taken by the modem */
	size_t in_off, in_len;
	uint64_t closed_lost; /* bytes for the DTE while the tty was closed */
};

struct modems {
	struct hayes_net *net;
	uint32_t baud;
	size_t n;
	struct side side[HAYES_MODEMS_MAX];
	uint64_t start;
};

static volatile sig_atomic_t got_stop, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_stop = 1;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* A finite decimal in [min, max) ("%g" forms allowed). */
static bool parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v >= max)
		return false;
	*out = v;
	return true;
}

static uint64_t seconds_to_us(double s)
{
	return (uint64_t)llround(s * US_PER_S);
}

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

static void bad_value(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "tern-modem: --%s %s: %s\n", opt, val, want);
}

static void set_raw(int fd)
{
	struct termios t;
	/* Not a tty (a FIFO, say) is fine: there is nothing to set. */
	if (tcgetattr(fd, &t) < 0)
		return;
	cfmakeraw(&t);
	tcsetattr(fd, TCSANOW, &t);
}

static int open_side(struct side *s)
{
	int fd = open(s->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	set_raw(fd);
	s->fd = fd;
	s->out_off = s->out_len = 0;
	s->in_off = s->in_len = 0;
	return 0;
}

/*
 * The far end went away (socat or the pty pair is gone): try again every REOPEN_US. The
 * modem stays as it is, like a modem whose cable was pulled; what it says meanwhile is lost.
 */
static void close_side(struct side *s, const char *why, uint64_t now)
{
	close(s->fd);
	s->fd = -1;
	s->closed_lost += s->out_len - s->out_off;
	s->out_off = s->out_len = 0;
	s->in_off = s->in_len = 0;
	s->reopen_us = now + REOPEN_US;
	fprintf(stderr, "tern-modem: %s: closed (%s); reopening every %u ms\n", s->path, why,
		REOPEN_US / 1000);
}

static void reopen(struct side *s, uint64_t now)
{
	if (s->fd >= 0 || now < s->reopen_us)
		return;
	if (open_side(s) < 0) {
		s->reopen_us = now + REOPEN_US;
		return;
	}
	fprintf(stderr, "tern-modem: %s: open again\n", s->path);
}

/* Writes what side s has waiting; 0, or -1 if the side closed. */
static int flush(struct side *s, uint64_t now)
{
	while (s->fd >= 0 && s->out_off < s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close_side(s, n < 0 ? strerror(errno) : "wrote nothing", now);
			return -1;
		}
		s->out_off += (size_t)n;
	}
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	return 0;
}

/* Feeds modem i what its DTE wrote, reading more only as fast as the modem takes it. */
static void pump_in(struct modems *ms, size_t i, uint64_t now)
{
	struct side *s = &ms->side[i];
	while (s->fd >= 0) {
		if (s->in_off == s->in_len) {
			size_t room = hayes_net_room(ms->net, i, now);
			s->in_off = s->in_len = 0;
			if (room == 0)
				return;
			ssize_t n = read(s->fd, s->in, room < READ_BUF ? room : READ_BUF);
			if (n == 0) {
				close_side(s, "end of file", now);
				return;
			}
			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR)
					close_side(s, strerror(errno), now);
				return;
			}
			s->in_len = (size_t)n;
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
	struct side *s = &ms->side[i];
	if (s->fd < 0) {
		uint8_t sink[READ_BUF];
		size_t n;
		while ((n = hayes_net_to_dte(ms->net, i, sink, sizeof(sink), now)) > 0)
			s->closed_lost += n;
		return;
	}
	for (;;) {
		if (flush(s, now) < 0)
			return;
		if (s->out_off) {
			memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
			s->out_len -= s->out_off;
			s->out_off = 0;
		}
		size_t n =
		    hayes_net_to_dte(ms->net, i, s->out + s->out_len, OUT_BUF - s->out_len, now);
		s->out_len += n;
		if (n == 0 || s->out_len == OUT_BUF) {
			flush(s, now);
			return;
		}
	}
}

/* One stderr line per call event, with the time since start. */
static void log_events(struct modems *ms)
{
	struct hayes_event ev;
	while (hayes_net_next_event(ms->net, &ev)) {
		double t = (double)(ev.at_us - ms->start) / US_PER_S;
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
	json_string(f, ms->side[i].path);
	fprintf(f,
		", \"dials\": %" PRIu64 ", \"connects\": %" PRIu64 ", \"busy\": %" PRIu64
		", \"no_answer\": %" PRIu64 ", \"no_dialtone\": %" PRIu64
		", \"no_carrier\": %" PRIu64 ", \"hangups\": %" PRIu64 ", \"rings\": %" PRIu64
		", \"bytes_to_line\": %" PRIu64 ", \"bytes_from_line\": %" PRIu64
		", \"discarded\": %" PRIu64 ", \"closed_lost\": %" PRIu64
		", \"seconds_online\": %.3f",
		s.dials, s.connects, s.busy, s.no_answer, s.no_dialtone, s.no_carrier, s.hangups,
		s.rings, s.bytes_to_line, s.bytes_from_line, s.discarded, ms->side[i].closed_lost,
		(double)s.online_us / US_PER_S);
	fprintf(f,
		", \"line\": {\"carried\": %" PRIu64 ", \"flipped_bits\": %" PRIu64
		", \"dropped\": %" PRIu64 ", \"cut_lost\": %" PRIu64 "}}",
		s.line.carried, s.line.flipped_bits, s.line.dropped, s.line.cut_lost);
}

/* Temp file, then rename: a reader never sees half of it. 0, or -errno. */
static int write_stats(const struct modems *ms, const char *path)
{
	char tmp[4096];
	uint64_t now = mono_us();
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fputs("{\"modems\": [", f);
	for (size_t i = 0; i < ms->n; i++) {
		if (i)
			fputs(",\n  ", f);
		write_stats_modem(f, ms, i, now);
	}
	fprintf(f, "], \"events_lost\": %" PRIu64 "}\n", hayes_net_events_lost(ms->net));
	int ret = 0;
	if (ferror(f))
		ret = -EIO;
	if (fclose(f) != 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int run(struct modems *ms)
{
	sigset_t block, empty;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigemptyset(&empty);
	/* Blocked except inside ppoll: a signal can never slip in just before the wait. */
	sigprocmask(SIG_BLOCK, &block, NULL);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	fprintf(stderr, "tern-modem: ready\n");
	ms->start = mono_us();
	while (!got_stop) {
		uint64_t now = mono_us();
		if (got_usr1) {
			got_usr1 = 0;
			hayes_net_drop_carrier(ms->net, now);
		}
		hayes_net_advance(ms->net, now);
		for (size_t i = 0; i < ms->n; i++)
			reopen(&ms->side[i], now);
		for (size_t i = 0; i < ms->n; i++)
			pump_in(ms, i, now);
		for (size_t i = 0; i < ms->n; i++)
			pump_out(ms, i, now);
		log_events(ms);

		struct pollfd pfd[HAYES_MODEMS_MAX];
		bool ready[HAYES_MODEMS_MAX];
		for (size_t i = 0; i < ms->n; i++)
			ready[i] = ms->side[i].fd < 0 || ms->side[i].out_len < OUT_BUF;
		uint64_t wake = hayes_net_next_us(ms->net, now, ready);
		for (size_t i = 0; i < ms->n; i++) {
			struct side *s = &ms->side[i];
			size_t room = hayes_net_room(ms->net, i, now);
			pfd[i].fd = s->fd;
			pfd[i].events = 0;
			pfd[i].revents = 0;
			if (s->fd < 0) {
				wake = min_u64(wake, s->reopen_us);
				continue;
			}
			if (s->in_off == s->in_len && room > 0)
				pfd[i].events |= POLLIN;
			if (s->in_off < s->in_len && room > 0)
				wake =
				    now; /* what was read waits for the modem, which takes it now */
			if (s->out_len > s->out_off)
				pfd[i].events |= POLLOUT;
		}
		struct timespec ts, *tsp = NULL;
		if (wake != TIME_FOREVER) {
			/* Whole milliseconds: waking per byte at high rates would cost more than it
			 * shows. */
			uint64_t ms_left = wake > now ? (wake - now + 999) / 1000 : 0;
			ts.tv_sec = (time_t)(ms_left / 1000);
			ts.tv_nsec = (long)(ms_left % 1000) * 1000000L;
			tsp = &ts;
		}
		if (ppoll(pfd, ms->n, tsp, &empty) < 0 && errno != EINTR) {
			fprintf(stderr, "tern-modem: poll: %s\n", strerror(errno));
			return EXIT_FAIL;
		}
		for (size_t i = 0; i < ms->n; i++)
			if (pfd[i].fd >= 0 && (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) &&
			    !(pfd[i].revents & POLLIN))
				close_side(&ms->side[i], "hung up", mono_us());
	}
	log_events(ms);
	return EXIT_OK;
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

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		const char *name = c > 0 && c < OPT_HELP ? options[c - 1].name : NULL;
		switch (c) {
		case OPT_BAUD:
			if (!parse_u64(optarg, 1, LINE_BAUD_MAX, &v)) {
				bad_value(name, optarg, "give a whole number from 1 to 4000000");
				return EXIT_USAGE;
			}
			p.line.baud = (uint32_t)v;
			break;
		case OPT_BITS:
			if (!parse_u64(optarg, 7, 12, &v)) {
				bad_value(name, optarg,
					  "give a whole number from 7 to 12 (10 for 8N1)");
				return EXIT_USAGE;
			}
			p.line.bits_per_byte = (uint8_t)v;
			break;
		case OPT_LATENCY:
			if (!parse_u64(optarg, 0, LINE_LATENCY_MS_MAX, &v)) {
				bad_value(name, optarg,
					  "give whole milliseconds from 0 to 600000 (ten minutes)");
				return EXIT_USAGE;
			}
			p.line.latency_ms = (uint32_t)v;
			break;
		case OPT_BER:
		case OPT_DROP:
			if (!parse_double(optarg, 0, 1, &x)) {
				bad_value(name, optarg,
					  "give a probability from 0 up to, not including, 1");
				return EXIT_USAGE;
			}
			*(c == OPT_BER ? &p.line.ber : &p.line.drop) = x;
			break;
		case OPT_SEED:
			if (!parse_u64(optarg, 0, UINT64_MAX, &v)) {
				bad_value(name, optarg, "give a whole number from 0 to 2^64 - 1");
				return EXIT_USAGE;
			}
			p.line.seed = v;
			break;
		case OPT_RING:
			if (!parse_double(optarg, 0, SECONDS_MAX, &x) || x > 600 ||
			    seconds_to_us(x) == 0) {
				bad_value(name, optarg, "give seconds above 0, up to 600");
				return EXIT_USAGE;
			}
			p.ring_us = seconds_to_us(x);
			break;
		case OPT_TRAIN:
			if (!parse_u64(optarg, 0, HAYES_TIME_MAX / 1000, &v)) {
				bad_value(name, optarg, "give whole milliseconds from 0 to 600000");
				return EXIT_USAGE;
			}
			p.train_us = v * 1000;
			break;
		case OPT_CALLS:
			if (!parse_calls(optarg, calls, &p.ncalls)) {
				bad_value(name, optarg,
					  "give up to 1024 of connect, busy, no-answer, "
					  "no-dialtone, no-carrier, error, comma-separated");
				return EXIT_USAGE;
			}
			break;
		case OPT_CARRIER:
			if (!parse_double(optarg, 0, SECONDS_MAX, &x) || seconds_to_us(x) == 0) {
				bad_value(name, optarg, "give seconds above 0");
				return EXIT_USAGE;
			}
			p.carrier_us = seconds_to_us(x);
			break;
		case OPT_STATS:
			stats = optarg;
			break;
		case OPT_HELP:
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		case ':':
			fprintf(stderr, "tern-modem: %s: needs a value\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "tern-modem: %s: unknown option\n%s", argv[optind - 1],
				usage);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 1 || argc - optind > HAYES_MODEMS_MAX) {
		fprintf(stderr, "tern-modem: give 1 to %d modems as NUMBER=TTY\n%s",
			HAYES_MODEMS_MAX, usage);
		return EXIT_USAGE;
	}
	ms.n = (size_t)(argc - optind);
	for (size_t i = 0; i < ms.n; i++) {
		if (!parse_modem(argv[optind + (int)i], numbers[i], &ms.side[i].path))
			return EXIT_USAGE;
		number_ptrs[i] = numbers[i];
		ms.side[i].fd = -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(numbers[i], numbers[j]) == 0) {
				fprintf(stderr, "tern-modem: number %s given twice\n", numbers[i]);
				return EXIT_USAGE;
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
		return EXIT_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "tern-modem: %s\n", strerror(-r));
		return EXIT_FAIL;
	}
	int ret = EXIT_OK;
	for (size_t i = 0; i < ms.n && ret == EXIT_OK; i++) {
		r = open_side(&ms.side[i]);
		if (r < 0) {
			fprintf(stderr, "tern-modem: %s: cannot open: %s\n", ms.side[i].path,
				strerror(-r));
			ret = EXIT_FAIL;
		}
	}
	if (ret == EXIT_OK)
		ret = run(&ms);
	if (ret == EXIT_OK && stats) {
		r = write_stats(&ms, stats);
		if (r < 0) {
			fprintf(stderr, "tern-modem: %s: cannot write the stats: %s\n", stats,
				strerror(-r));
			ret = EXIT_FAIL;
		}
	}
	for (size_t i = 0; i < ms.n; i++)
		if (ms.side[i].fd >= 0)
			close(ms.side[i].fd);
	hayes_net_free(ms.net);
	return ret;
}
