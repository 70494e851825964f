/* tern-line [options] TTY_A TTY_B: a serial line between two ptys, at line rate and damaged. */
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

#include "sim/line_model.h"

#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define MAX_CUTS     16
#define REOPEN_US    200000u
#define OUT_BUF	     4096
#define READ_BUF     4096
#define SECONDS_MAX  1e9 /* about 31 years: any --cut beyond is a typo */
#define US_PER_S     1000000.0
#define TIME_FOREVER UINT64_MAX

static const char usage[] =
    "usage: tern-line [options] TTY_A TTY_B\n"
    "\n"
    "Carries bytes between TTY_A and TTY_B (the far ends of two pty pairs, e.g. made by\n"
    "socat) as a serial line would: at the line rate, after the latency, with seeded bit\n"
    "errors, dropped bytes and cuts (docs/line.md).\n"
    "\n"
    "  --baud N          bits per second (default 9600)\n"
    "  --bits N          bits per byte on the wire, 7..12 (default 10: 8N1)\n"
    "  --latency-ms N    one-way latency in milliseconds (default 0)\n"
    "  --ber X           bit error rate in [0, 1) (default 0)\n"
    "  --drop X          probability that a byte is lost, in [0, 1) (default 0)\n"
    "  --cut START:LEN   both directions dead from START for LEN seconds after start\n"
    "                    (decimals allowed; repeatable, up to 16)\n"
    "  --cut-len S       how long SIGUSR1 cuts the line, in seconds (default 5)\n"
    "  --seed N          seed of the damage (default 1)\n"
    "  --stats FILE      on exit (SIGTERM, SIGINT) write the counters there as JSON\n";

enum opt {
	OPT_BAUD = 1,
	OPT_BITS,
	OPT_LATENCY,
	OPT_BER,
	OPT_DROP,
	OPT_CUT,
	OPT_CUT_LEN,
	OPT_SEED,
	OPT_STATS,
	OPT_HELP,
};

static const struct option options[] = {
    {"baud", required_argument, NULL, OPT_BAUD},
    {"bits", required_argument, NULL, OPT_BITS},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"ber", required_argument, NULL, OPT_BER},
    {"drop", required_argument, NULL, OPT_DROP},
    {"cut", required_argument, NULL, OPT_CUT},
    {"cut-len", required_argument, NULL, OPT_CUT_LEN},
    {"seed", required_argument, NULL, OPT_SEED},
    {"stats", required_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct cut {
	uint64_t start_us, end_us;
	const char *spec;
};

/* One end: the path, its fd (-1 while closed) and the bytes waiting to be written to it. */
struct side {
	const char *path;
	int fd;
	uint64_t reopen_us;
	uint8_t out[OUT_BUF];
	size_t out_off, out_len;
};

struct line {
	struct side side[2];	/* A, B */
	struct line_dir dir[2]; /* dir[i] carries side[i] to side[1 - i] */
	uint64_t closed_lost[2];
	struct cut cuts[MAX_CUTS];
	size_t ncuts;
	uint64_t cut_len_us, manual_until_us;
	bool cut;
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

static bool parse_cut(const char *s, struct cut *c)
{
	const char *colon = strchr(s, ':');
	char start[64];
	double a, len;
	if (!colon || (size_t)(colon - s) >= sizeof(start))
		return false;
	memcpy(start, s, (size_t)(colon - s));
	start[colon - s] = 0;
	if (!parse_double(start, 0, SECONDS_MAX, &a) ||
	    !parse_double(colon + 1, 0, SECONDS_MAX, &len) || len <= 0)
		return false;
	c->start_us = seconds_to_us(a);
	c->end_us = seconds_to_us(a + len);
	c->spec = s;
	return true;
}

static void bad_value(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "tern-line: --%s %s: %s\n", opt, val, want);
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
	return 0;
}

/* The far end went away (socat or the pty pair is gone): try again every REOPEN_US. */
static void close_side(struct line *l, int i, const char *why, uint64_t now)
{
	struct side *s = &l->side[i];
	close(s->fd);
	s->fd = -1;
	l->closed_lost[1 - i] += s->out_len - s->out_off;
	s->out_off = s->out_len = 0;
	s->reopen_us = now + REOPEN_US;
	fprintf(stderr, "tern-line: %s: closed (%s); reopening every %u ms\n", s->path, why,
		REOPEN_US / 1000);
}

static void reopen(struct line *l, int i, uint64_t now)
{
	struct side *s = &l->side[i];
	if (s->fd >= 0 || now < s->reopen_us)
		return;
	if (open_side(s) < 0) {
		s->reopen_us = now + REOPEN_US;
		return;
	}
	/* Whatever the other side wrote meanwhile went nowhere, as on a real line. */
	fprintf(stderr, "tern-line: %s: open again\n", s->path);
}

static void update_cut(struct line *l, uint64_t now)
{
	uint64_t t = now - l->start;
	const char *spec = NULL;
	for (size_t i = 0; i < l->ncuts && !spec; i++)
		if (t >= l->cuts[i].start_us && t < l->cuts[i].end_us)
			spec = l->cuts[i].spec;
	bool cut = spec || now < l->manual_until_us;
	if (cut == l->cut)
		return;
	l->cut = cut;
	for (int i = 0; i < 2; i++)
		line_dir_set_cut(&l->dir[i], cut);
	if (cut)
		fprintf(stderr, "tern-line: cut start (%s%s) at %.3f s\n", spec ? "--cut " : "",
			spec ? spec : "SIGUSR1", (double)t / US_PER_S);
	else
		fprintf(stderr, "tern-line: cut end at %.3f s\n", (double)t / US_PER_S);
}

/* When the cut state may next change: a window's edge or the end of a SIGUSR1 cut. */
static uint64_t next_cut_edge(const struct line *l, uint64_t now)
{
	uint64_t t = now - l->start, next = TIME_FOREVER;
	for (size_t i = 0; i < l->ncuts; i++) {
		if (l->cuts[i].start_us > t && l->start + l->cuts[i].start_us < next)
			next = l->start + l->cuts[i].start_us;
		if (l->cuts[i].end_us > t && l->start + l->cuts[i].end_us < next)
			next = l->start + l->cuts[i].end_us;
	}
	if (l->manual_until_us > now && l->manual_until_us < next)
		next = l->manual_until_us;
	return next;
}

/* Writes what side i has waiting; 0, or -1 if the side closed. */
static int flush(struct line *l, int i, uint64_t now)
{
	struct side *s = &l->side[i];
	while (s->fd >= 0 && s->out_off < s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close_side(l, i, n < 0 ? strerror(errno) : "wrote nothing", now);
			return -1;
		}
		s->out_off += (size_t)n;
	}
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	return 0;
}

/* Moves the arrived bytes of dir[i] to side 1 - i, and as many new ones as fit onto it. */
static void pump(struct line *l, int i, uint64_t now)
{
	struct line_dir *d = &l->dir[i];
	struct side *src = &l->side[i], *dst = &l->side[1 - i];
	uint8_t buf[READ_BUF];
	for (;;) {
		if (dst->fd < 0) {
			size_t n = line_dir_take(d, now, buf, sizeof(buf));
			l->closed_lost[i] += n;
			if (n == 0)
				break;
			continue;
		}
		if (dst->out_off) {
			memmove(dst->out, dst->out + dst->out_off, dst->out_len - dst->out_off);
			dst->out_len -= dst->out_off;
			dst->out_off = 0;
		}
		size_t n = line_dir_take(d, now, dst->out + dst->out_len, OUT_BUF - dst->out_len);
		dst->out_len += n;
		if (flush(l, 1 - i, now) < 0)
			continue;
		if (n == 0 || dst->out_len == OUT_BUF)
			break;
	}
	size_t room = line_dir_room(d, now);
	if (src->fd < 0 || room == 0)
		return;
	ssize_t n = read(src->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n > 0)
		line_dir_put(d, buf, (size_t)n, now);
	else if (n == 0)
		close_side(l, i, "end of file", now);
	else if (errno != EAGAIN && errno != EINTR)
		close_side(l, i, strerror(errno), now);
}

static void write_stats_dir(FILE *f, const char *name, const struct line_stats *s,
			    uint64_t closed_lost)
{
	fprintf(f,
		"\"%s\": {\"carried\": %" PRIu64 ", \"flipped_bits\": %" PRIu64
		", \"dropped\": %" PRIu64 ", \"cut_lost\": %" PRIu64 ", \"closed_lost\": %" PRIu64
		"}",
		name, s->carried, s->flipped_bits, s->dropped, s->cut_lost, closed_lost);
}

/* Temp file, then rename: a reader never sees half of it. 0, or -errno. */
static int write_stats(const struct line *l, const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	struct line_stats ab = line_dir_stats(&l->dir[0]), ba = line_dir_stats(&l->dir[1]);
	fputs("{", f);
	write_stats_dir(f, "a_to_b", &ab, l->closed_lost[0]);
	fputs(", ", f);
	write_stats_dir(f, "b_to_a", &ba, l->closed_lost[1]);
	fputs("}\n", f);
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

static int run(struct line *l)
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

	fprintf(stderr, "tern-line: ready\n");
	l->start = mono_us();
	while (!got_stop) {
		uint64_t now = mono_us();
		if (got_usr1) {
			got_usr1 = 0;
			l->manual_until_us = now + l->cut_len_us;
		}
		update_cut(l, now);
		for (int i = 0; i < 2; i++)
			reopen(l, i, now);
		for (int i = 0; i < 2; i++)
			pump(l, i, now);

		struct pollfd pfd[2];
		uint64_t wake = next_cut_edge(l, now);
		for (int i = 0; i < 2; i++) {
			struct side *s = &l->side[i], *dst = &l->side[1 - i];
			pfd[i].fd = s->fd;
			pfd[i].events = 0;
			pfd[i].revents = 0;
			if (s->fd < 0) {
				wake = min_u64(wake, s->reopen_us);
				continue;
			}
			if (line_dir_room(&l->dir[i], now) > 0)
				pfd[i].events |= POLLIN;
			if (s->out_len > s->out_off)
				pfd[i].events |= POLLOUT;
			/* With dst's buffer full, only POLLOUT on dst can make progress. */
			if (dst->fd < 0 || dst->out_len < OUT_BUF)
				wake = min_u64(wake, line_dir_next_us(&l->dir[i], now));
		}
		struct timespec ts, *tsp = NULL;
		if (wake != TIME_FOREVER) {
			/* Whole milliseconds: waking per byte at high rates would cost more than it
			 * shows. */
			uint64_t ms = wake > now ? (wake - now + 999) / 1000 : 0;
			ts.tv_sec = (time_t)(ms / 1000);
			ts.tv_nsec = (long)(ms % 1000) * 1000000L;
			tsp = &ts;
		}
		if (ppoll(pfd, 2, tsp, &empty) < 0 && errno != EINTR) {
			fprintf(stderr, "tern-line: poll: %s\n", strerror(errno));
			return EXIT_FAIL;
		}
		for (int i = 0; i < 2; i++)
			if (pfd[i].fd >= 0 && (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) &&
			    !(pfd[i].revents & POLLIN))
				close_side(l, i, "hung up", mono_us());
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static struct line l;
	struct line_params p = {.baud = 9600, .bits_per_byte = 10, .seed = 1};
	const char *stats = NULL;
	uint64_t v;
	double x;
	int c;

	l.cut_len_us = 5 * 1000000u;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		const char *name = c > 0 && c < OPT_HELP ? options[c - 1].name : NULL;
		switch (c) {
		case OPT_BAUD:
			if (!parse_u64(optarg, 1, LINE_BAUD_MAX, &v)) {
				bad_value(name, optarg, "give a whole number from 1 to 4000000");
				return EXIT_USAGE;
			}
			p.baud = (uint32_t)v;
			break;
		case OPT_BITS:
			if (!parse_u64(optarg, 7, 12, &v)) {
				bad_value(name, optarg,
					  "give a whole number from 7 to 12 (10 for 8N1)");
				return EXIT_USAGE;
			}
			p.bits_per_byte = (uint8_t)v;
			break;
		case OPT_LATENCY:
			if (!parse_u64(optarg, 0, LINE_LATENCY_MS_MAX, &v)) {
				bad_value(name, optarg,
					  "give whole milliseconds from 0 to 600000 (ten minutes)");
				return EXIT_USAGE;
			}
			p.latency_ms = (uint32_t)v;
			break;
		case OPT_BER:
		case OPT_DROP:
			if (!parse_double(optarg, 0, 1, &x)) {
				bad_value(name, optarg,
					  "give a probability from 0 up to, not including, 1");
				return EXIT_USAGE;
			}
			*(c == OPT_BER ? &p.ber : &p.drop) = x;
			break;
		case OPT_CUT:
			if (l.ncuts == MAX_CUTS) {
				bad_value(name, optarg, "at most 16 cuts");
				return EXIT_USAGE;
			}
			if (!parse_cut(optarg, &l.cuts[l.ncuts])) {
				bad_value(name, optarg,
					  "give START:LEN in seconds after start, LEN above 0 "
					  "(e.g. 2:1.5)");
				return EXIT_USAGE;
			}
			l.ncuts++;
			break;
		case OPT_CUT_LEN:
			if (!parse_double(optarg, 0, SECONDS_MAX, &x) || x <= 0) {
				bad_value(name, optarg, "give seconds above 0");
				return EXIT_USAGE;
			}
			l.cut_len_us = seconds_to_us(x);
			break;
		case OPT_SEED:
			if (!parse_u64(optarg, 0, UINT64_MAX, &v)) {
				bad_value(name, optarg, "give a whole number from 0 to 2^64 - 1");
				return EXIT_USAGE;
			}
			p.seed = v;
			break;
		case OPT_STATS:
			stats = optarg;
			break;
		case OPT_HELP:
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		case ':':
			fprintf(stderr, "tern-line: %s: needs a value\n", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "tern-line: %s: unknown option\n%s", argv[optind - 1],
				usage);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "tern-line: give two paths, TTY_A and TTY_B\n%s", usage);
		return EXIT_USAGE;
	}
	for (unsigned i = 0; i < 2; i++) {
		int r = line_dir_init(&l.dir[i], &p, i);
		if (r == -EINVAL) {
			fprintf(stderr,
				"tern-line: --baud %" PRIu32 " with --latency-ms %" PRIu32
				" --bits %u: more than %u bytes in flight\n",
				p.baud, p.latency_ms, p.bits_per_byte, LINE_INFLIGHT_MAX);
			return EXIT_USAGE;
		}
		if (r < 0) {
			fprintf(stderr, "tern-line: line: %s\n", strerror(-r));
			return EXIT_FAIL;
		}
	}
	for (int i = 0; i < 2; i++) {
		l.side[i].path = argv[optind + i];
		int r = open_side(&l.side[i]);
		if (r < 0) {
			fprintf(stderr, "tern-line: %s: cannot open: %s\n", l.side[i].path,
				strerror(-r));
			return EXIT_FAIL;
		}
	}
	int ret = run(&l);
	if (stats) {
		int r = write_stats(&l, stats);
		if (r < 0) {
			fprintf(stderr, "tern-line: %s: cannot write the stats: %s\n", stats,
				strerror(-r));
			ret = EXIT_FAIL;
		}
	}
	for (int i = 0; i < 2; i++) {
		if (l.side[i].fd >= 0)
			close(l.side[i].fd);
		line_dir_free(&l.dir[i]);
	}
	return ret;
}
