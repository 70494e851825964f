/* tern-line [options] TTY_A TTY_B: a serial line between two ptys, at line rate and damaged. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "sim/line_model.h"
#include "sim/tool.h"

#define MAX_CUTS 16
#define READ_BUF 4096

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

struct line {
	struct tool_tty side[2]; /* A, B: side[i].closed_lost is what dir[1 - i] lost */
	struct line_dir dir[2];	 /* dir[i] carries side[i] to side[1 - i] */
	struct cut cuts[MAX_CUTS];
	size_t ncuts;
	uint64_t cut_len_us, manual_until_us;
	bool cut;
	uint64_t start;
};

static bool parse_cut(const char *s, struct cut *c)
{
	const char *colon = strchr(s, ':');
	char start[64];
	double a, len;
	if (!colon || (size_t)(colon - s) >= sizeof(start))
		return false;
	memcpy(start, s, (size_t)(colon - s));
	start[colon - s] = 0;
	if (!tool_parse_seconds(start, &a) || !tool_parse_seconds(colon + 1, &len) || len <= 0)
		return false;
	c->start_us = tool_seconds_to_us(a);
	c->end_us = tool_seconds_to_us(a + len);
	c->spec = s;
	return true;
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
			spec ? spec : "SIGUSR1", tool_seconds(t));
	else
		fprintf(stderr, "tern-line: cut end at %.3f s\n", tool_seconds(t));
}

/* When the cut state may next change: a window's edge or the end of a SIGUSR1 cut. */
static uint64_t next_cut_edge(const struct line *l, uint64_t now)
{
	uint64_t t = now - l->start, next = TOOL_NEVER;
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

/* Moves the arrived bytes of dir[i] to side 1 - i, and as many new ones as fit onto it. */
static void pump(struct line *l, int i, uint64_t now)
{
	struct line_dir *d = &l->dir[i];
	struct tool_tty *src = &l->side[i], *dst = &l->side[1 - i];
	uint8_t buf[READ_BUF];
	for (;;) {
		if (dst->fd < 0) {
			size_t n = line_dir_take(d, now, buf, sizeof(buf));
			dst->closed_lost += n;
			if (n == 0)
				break;
			continue;
		}
		size_t room;
		uint8_t *tail = tool_tty_out_tail(dst, &room);
		size_t n = line_dir_take(d, now, tail, room);
		dst->out_len += n;
		if (tool_tty_flush(dst, now) < 0)
			continue;
		if (n == 0 || dst->out_len == TOOL_TTY_OUT)
			break;
	}
	size_t room = line_dir_room(d, now);
	size_t n = tool_tty_read(src, buf, room < sizeof(buf) ? room : sizeof(buf), now);
	if (n > 0)
		line_dir_put(d, buf, n, now);
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

/* The stats file's JSON, for tool_write_stats. */
static void write_stats(FILE *f, const void *ctx)
{
	const struct line *l = ctx;
	struct line_stats ab = line_dir_stats(&l->dir[0]), ba = line_dir_stats(&l->dir[1]);
	fputs("{", f);
	write_stats_dir(f, "a_to_b", &ab, l->side[1].closed_lost);
	fputs(", ", f);
	write_stats_dir(f, "b_to_a", &ba, l->side[0].closed_lost);
	fputs("}\n", f);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int run(struct line *l)
{
	tool_signals_catch(true);
	fprintf(stderr, "tern-line: ready\n");
	l->start = tool_now_us();
	while (!tool_stopping()) {
		uint64_t now = tool_now_us();
		if (tool_take_usr1())
			l->manual_until_us = now + l->cut_len_us;
		update_cut(l, now);
		/* Whatever the other side wrote meanwhile went nowhere, as on a real line. */
		for (int i = 0; i < 2; i++)
			tool_tty_reopen(&l->side[i], now);
		for (int i = 0; i < 2; i++)
			pump(l, i, now);

		struct pollfd pfd[2];
		uint64_t wake = next_cut_edge(l, now);
		for (int i = 0; i < 2; i++) {
			const struct tool_tty *dst = &l->side[1 - i];
			if (!tool_tty_poll(&l->side[i], &pfd[i], &wake))
				continue;
			if (line_dir_room(&l->dir[i], now) > 0)
				pfd[i].events |= POLLIN;
			/* With dst's buffer full, only POLLOUT on dst can make progress. */
			if (dst->fd < 0 || dst->out_len < TOOL_TTY_OUT)
				wake = min_u64(wake, line_dir_next_us(&l->dir[i], now));
		}
		if (tool_wait(pfd, 2, wake, now) < 0)
			return TOOL_EXIT_FAIL;
		for (int i = 0; i < 2; i++)
			tool_tty_polled(&l->side[i], &pfd[i]);
	}
	return TOOL_EXIT_OK;
}

int main(int argc, char **argv)
{
	static struct line l;
	struct line_params p = {.baud = 9600, .bits_per_byte = 10, .seed = 1};
	const char *stats = NULL;
	uint64_t v;
	double x;
	int c;

	tool_init("tern-line");
	l.cut_len_us = 5 * 1000000u;
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
			p.baud = (uint32_t)v;
			break;
		case OPT_BITS:
			if (!tool_parse_u64(optarg, 7, 12, &v)) {
				tool_bad_value(name, optarg,
					       "give a whole number from 7 to 12 (10 for 8N1)");
				return TOOL_EXIT_USAGE;
			}
			p.bits_per_byte = (uint8_t)v;
			break;
		case OPT_LATENCY:
			if (!tool_parse_u64(optarg, 0, LINE_LATENCY_MS_MAX, &v)) {
				tool_bad_value(
				    name, optarg,
				    "give whole milliseconds from 0 to 600000 (ten minutes)");
				return TOOL_EXIT_USAGE;
			}
			p.latency_ms = (uint32_t)v;
			break;
		case OPT_BER:
		case OPT_DROP:
			if (!tool_parse_double(optarg, 0, 1, &x)) {
				tool_bad_value(name, optarg,
					       "give a probability from 0 up to, not including, 1");
				return TOOL_EXIT_USAGE;
			}
			*(c == OPT_BER ? &p.ber : &p.drop) = x;
			break;
		case OPT_CUT:
			if (l.ncuts == MAX_CUTS) {
				tool_bad_value(name, optarg, "at most 16 cuts");
				return TOOL_EXIT_USAGE;
			}
			if (!parse_cut(optarg, &l.cuts[l.ncuts])) {
				tool_bad_value(name, optarg,
					       "give START:LEN in seconds after start, LEN above 0 "
					       "(e.g. 2:1.5)");
				return TOOL_EXIT_USAGE;
			}
			l.ncuts++;
			break;
		case OPT_CUT_LEN:
			if (!tool_parse_seconds(optarg, &x) || x <= 0) {
				tool_bad_value(name, optarg, "give seconds above 0");
				return TOOL_EXIT_USAGE;
			}
			l.cut_len_us = tool_seconds_to_us(x);
			break;
		case OPT_SEED:
			if (!tool_parse_u64(optarg, 0, UINT64_MAX, &v)) {
				tool_bad_value(name, optarg,
					       "give a whole number from 0 to 2^64 - 1");
				return TOOL_EXIT_USAGE;
			}
			p.seed = v;
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
	if (argc - optind != 2) {
		fprintf(stderr, "tern-line: give two paths, TTY_A and TTY_B\n%s", usage);
		return TOOL_EXIT_USAGE;
	}
	for (unsigned i = 0; i < 2; i++) {
		int r = line_dir_init(&l.dir[i], &p, i);
		if (r == -EINVAL) {
			fprintf(stderr,
				"tern-line: --baud %" PRIu32 " with --latency-ms %" PRIu32
				" --bits %u: more than %u bytes in flight\n",
				p.baud, p.latency_ms, p.bits_per_byte, LINE_INFLIGHT_MAX);
			return TOOL_EXIT_USAGE;
		}
		if (r < 0) {
			fprintf(stderr, "tern-line: line: %s\n", strerror(-r));
			return TOOL_EXIT_FAIL;
		}
	}
	for (int i = 0; i < 2; i++) {
		tool_tty_init(&l.side[i], argv[optind + i]);
		if (tool_tty_open(&l.side[i]) < 0)
			return TOOL_EXIT_FAIL;
	}
	int ret = run(&l);
	if (stats && tool_write_stats(stats, write_stats, &l) < 0)
		ret = TOOL_EXIT_FAIL;
	for (int i = 0; i < 2; i++) {
		tool_tty_free(&l.side[i]);
		line_dir_free(&l.dir[i]);
	}
	return ret;
}
