/* tern-sbd-modem [options] TTY: a fake Iridium SBD modem on a pty, its gateway two directories. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/sbd_model.h"
#include "sim/tool.h"

#define IO_BUF	     4096
#define PATH_BUF     4096
#define DEFAULT_IMEI "300234010123450"

static const char usage[] =
    "usage: tern-sbd-modem [options] --mo-dir DIR TTY\n"
    "\n"
    "Acts as an Iridium 9602/9603 SBD modem (as in a RockBLOCK) on TTY, the far end of a pty\n"
    "pair (e.g. made by socat). The gateway is two directories: MO messages land in --mo-dir\n"
    "as IMEI_MOMSN.sbd, MT messages are taken from --mt-dir, oldest name first\n"
    "(docs/sbd-modem.md).\n"
    "\n"
    "  --mo-dir DIR       where MO messages are written (required)\n"
    "  --mt-dir DIR       where MT messages wait, one file each (default: none ever wait)\n"
    "  --imei N           the IMEI, 15 digits (default " DEFAULT_IMEI ")\n"
    "  --csq N            signal 0..5 for AT+CSQ; 0 fails every session (default 5)\n"
    "  --session-ms N     how long an SBDIX session takes, 0..600000 (default 1500)\n"
    "  --wb-timeout-s N   SBDWB/SBDWT transfer period, 1..3600 seconds (default 60)\n"
    "  --momsn N          MOMSN of the first session, 0..65535 (default 0)\n"
    "  --fail LIST        sessions that fail, counted from 1: N or N:STATUS (5..255,\n"
    "                     default 32), comma-separated, e.g. 2,5:35\n"
    "  --fail-rate X      each other session fails (32) with probability X in [0, 1]\n"
    "  --seed N           seed of --fail-rate (default 1)\n"
    "  --stats FILE       on exit (SIGTERM, SIGINT) write the counters there as JSON\n";

enum opt {
	OPT_MO_DIR = 1,
	OPT_MT_DIR,
	OPT_IMEI,
	OPT_CSQ,
	OPT_SESSION_MS,
	OPT_WB_TIMEOUT,
	OPT_MOMSN,
	OPT_FAIL,
	OPT_FAIL_RATE,
	OPT_SEED,
	OPT_STATS,
	OPT_HELP,
};

static const struct option options[] = {
    {"mo-dir", required_argument, NULL, OPT_MO_DIR},
    {"mt-dir", required_argument, NULL, OPT_MT_DIR},
    {"imei", required_argument, NULL, OPT_IMEI},
    {"csq", required_argument, NULL, OPT_CSQ},
    {"session-ms", required_argument, NULL, OPT_SESSION_MS},
    {"wb-timeout-s", required_argument, NULL, OPT_WB_TIMEOUT},
    {"momsn", required_argument, NULL, OPT_MOMSN},
    {"fail", required_argument, NULL, OPT_FAIL},
    {"fail-rate", required_argument, NULL, OPT_FAIL_RATE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"stats", required_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/*
 * The modem's tty, the gateway's directories, and the bytes from the DTE not yet taken. What was
 * on its way to the DTE when the tty closed is lost, as on a cable pulled out.
 */
struct modem {
	struct sbd_model model;
	const char *mo_dir, *mt_dir;
	struct tool_tty tty;
	uint64_t start_us;
	uint8_t in[IO_BUF];
	size_t in_len;
	bool mo_lost; /* this session's MO message could not be stored */
	uint64_t mo_bytes;
};

/* tool_parse_u64, and a leading space refused too, as this program always has. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return s[0] != ' ' && tool_parse_u64(s, min, max, out);
}

/* "2,5:35": each entry a session number and an optional MO status. */
static bool parse_fail(const char *s, struct sbd_fail *fail, size_t *nfail)
{
	char buf[1024], *save = NULL;
	size_t n = 0;
	if (strlen(s) >= sizeof(buf) || !*s || s[strlen(s) - 1] == ',')
		return false;
	strcpy(buf, s);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		uint64_t session, status = SBD_STATUS_NO_SVC;
		if (colon)
			*colon = 0;
		if (n == SBD_FAIL_MAX || !parse_u64(tok, 1, UINT32_MAX, &session) ||
		    (colon && !parse_u64(colon + 1, 5, 255, &status)))
			return false;
		for (size_t i = 0; i < n; i++)
			if (fail[i].session == session)
				return false;
		fail[n].session = (uint32_t)session;
		fail[n].status = (uint8_t)status;
		n++;
	}
	*nfail = n;
	return n > 0;
}

/* Writes buf to dir/name through a hidden temp file, fsync and rename. 0, or -errno. */
static int write_atomic(const char *dir, const char *name, const uint8_t *buf, size_t n)
{
	char tmp[PATH_BUF], path[PATH_BUF];
	int ret = 0, fd;
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < n && !ret;) {
		ssize_t w = write(fd, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			ret = -errno;
		else
			off += (size_t)w;
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

/* The gateway takes an MO message: IMEI_MOMSN.sbd, the raw payload, as its e-mail attaches it. */
static void store_mo(struct modem *md, const struct sbd_event *ev)
{
	char name[64], path[PATH_BUF];
	struct stat st;
	snprintf(name, sizeof(name), "%s_%06u.sbd", md->model.p.imei, ev->momsn);
	snprintf(path, sizeof(path), "%s/%s", md->mo_dir, name);
	/* After AT+SBDC or --momsn the numbers come round again: say so, the hub would see it. */
	if (stat(path, &st) == 0)
		fprintf(stderr,
			"tern-sbd-modem: %s: exists; replaced by MOMSN %u of session %" PRIu32 "\n",
			path, ev->momsn, ev->session);
	int r = write_atomic(md->mo_dir, name, ev->mo, ev->mo_len);
	if (r < 0) {
		fprintf(stderr, "tern-sbd-modem: %s: cannot write: %s; the session fails\n", path,
			strerror(-r));
		md->mo_lost = true;
	}
	md->mo_bytes = ev->mo_len;
}

/* An MT file is a finished message: hidden, temp and rejected files are not. */
static bool mt_candidate(const char *dir, const struct dirent *de)
{
	char path[PATH_BUF];
	struct stat st;
	size_t n = strlen(de->d_name);
	if (de->d_name[0] == '.' || (n >= 4 && !strcmp(de->d_name + n - 4, ".bad")) ||
	    (n >= 4 && !strcmp(de->d_name + n - 4, ".tmp")))
		return false;
	if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The oldest name waiting in dir into first (empty if none); how many wait, or -errno. */
static long mt_scan(const char *dir, char *first, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	long count = 0;
	first[0] = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!mt_candidate(dir, de) || strlen(de->d_name) >= cap)
			continue;
		count++;
		if (!first[0] || strcmp(de->d_name, first) < 0)
			strcpy(first, de->d_name);
	}
	closedir(d);
	return count;
}

/* Reads up to cap bytes of path into buf; the file's size (which may exceed cap), or -errno. */
static long read_file(const char *path, uint8_t *buf, size_t cap)
{
	struct stat st;
	long ret;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	while (got < cap && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	ret = st.st_size > (off_t)got ? (long)st.st_size : (long)got;
out:
	close(fd);
	return ret;
}

/* The gateway hands over the next MT message, if the session's MO went through. */
static void reply_mt(struct modem *md)
{
	uint8_t buf[SBD_MT_MAX + 1];
	char name[256], path[PATH_BUF], bad[PATH_BUF];
	struct sbd_gateway_reply r = {.failed = md->mo_lost};
	long n = 0, waiting = 0;

	if (!r.failed && md->mt_dir) {
		waiting = mt_scan(md->mt_dir, name, sizeof(name));
		if (waiting < 0)
			fprintf(stderr, "tern-sbd-modem: %s: cannot list: %s\n", md->mt_dir,
				strerror((int)-waiting));
	}
	if (waiting > 0 &&
	    (snprintf(path, sizeof(path), "%s/%s", md->mt_dir, name) >= (int)sizeof(path) ||
	     snprintf(bad, sizeof(bad), "%s/%s.bad", md->mt_dir, name) >= (int)sizeof(bad))) {
		fprintf(stderr, "tern-sbd-modem: %s/%s: name too long\n", md->mt_dir, name);
		waiting = 0;
	}
	if (waiting > 0) {
		n = read_file(path, buf, sizeof(buf));
		if (n < 0) {
			fprintf(stderr, "tern-sbd-modem: %s: cannot read: %s\n", path,
				strerror((int)-n));
			waiting = 0; /* left where it is, for the next session */
		}
	}
	if (waiting > 0) {
		r.mt = true;
		r.mt_buf = buf;
		r.mt_len = (size_t)n;
		r.mt_queued = (uint32_t)(waiting - 1);
		if (n == 0 || n > (long)SBD_MT_MAX) {
			fprintf(stderr,
				"tern-sbd-modem: %s: %ld bytes, not 1..%u: renamed %s.bad\n", path,
				n, SBD_MT_MAX, name);
			if (rename(path, bad) < 0)
				fprintf(stderr, "tern-sbd-modem: %s: cannot rename: %s\n", path,
					strerror(errno));
		} else if (unlink(path) < 0) {
			fprintf(stderr,
				"tern-sbd-modem: %s: cannot remove: %s; it will come again\n", path,
				strerror(errno));
		}
	}
	sbd_model_gateway_reply(&md->model, &r);
}

static const char *why_text(enum sbd_why why)
{
	switch (why) {
	case SBD_WHY_SCRIPT:
		return " (failed: --fail)";
	case SBD_WHY_RATE:
		return " (failed: --fail-rate)";
	case SBD_WHY_NO_SIGNAL:
		return " (failed: --csq 0)";
	case SBD_WHY_GATEWAY:
		return " (failed: --mo-dir)";
	default:
		return "";
	}
}

static void log_session(struct modem *md, const struct sbd_event *ev)
{
	const struct sbd_result *r = &ev->result;
	fprintf(stderr,
		"tern-sbd-modem: session %" PRIu32 " at %.3f s: +SBDIX: %u, %u, %u, %u, %u, %u%s, "
		"MO %" PRIu64 " bytes, took %.3f s\n",
		ev->session, tool_seconds(ev->start_us - md->start_us), r->mo_status, r->momsn,
		r->mt_status, r->mtmsn, r->mt_len, (unsigned)r->mt_queued, why_text(ev->why),
		r->mo_status < 5 ? md->mo_bytes : 0, tool_seconds(ev->end_us - ev->start_us));
}

/* The model's events: the gateway's part of a session, and its line on stderr. */
static void handle_events(struct modem *md)
{
	struct sbd_event ev;
	while (sbd_model_next_event(&md->model, &ev)) {
		switch (ev.type) {
		case SBD_EV_MO:
			store_mo(md, &ev);
			break;
		case SBD_EV_MT_WANTED:
			reply_mt(md);
			break;
		case SBD_EV_SESSION:
			log_session(md, &ev);
			md->mo_lost = false;
			md->mo_bytes = 0;
			break;
		}
	}
}

/* Writes what the model has for the DTE, a buffer at a time, as far as the tty takes it. */
static void flush(struct modem *md, uint64_t now)
{
	struct tool_tty *t = &md->tty;
	while (t->fd >= 0) {
		if (t->out_off == t->out_len) {
			t->out_off = 0;
			t->out_len = sbd_model_output(&md->model, t->out, sizeof(t->out));
		}
		/* Nothing more to say, the tty closed, or it is full (the rest waits for POLLOUT).
		 */
		if (t->out_off == t->out_len || tool_tty_flush(t, now) < 0 ||
		    t->out_off < t->out_len)
			return;
	}
}

/* Reads what the DTE sent and hands as much to the model as it takes. */
static void pump_in(struct modem *md, uint64_t now)
{
	md->in_len +=
	    tool_tty_read(&md->tty, md->in + md->in_len, sizeof(md->in) - md->in_len, now);
	size_t took = sbd_model_input(&md->model, md->in, md->in_len, now);
	memmove(md->in, md->in + took, md->in_len - took);
	md->in_len -= took;
}

static void write_stats_to(FILE *f, const struct sbd_stats *s)
{
	fprintf(f,
		"{\"sessions\": %" PRIu64 ", \"sessions_failed\": %" PRIu64
		", \"mo_messages\": %" PRIu64 ", \"mo_bytes\": %" PRIu64
		", \"mt_messages\": %" PRIu64 ", \"mt_bytes\": %" PRIu64 ", \"wb_ok\": %" PRIu64
		", \"wb_checksum\": %" PRIu64 ", \"wb_size\": %" PRIu64 ", \"wb_timeout\": %" PRIu64
		"}\n",
		s->sessions, s->sessions_failed, s->mo_messages, s->mo_bytes, s->mt_messages,
		s->mt_bytes, s->wb_ok, s->wb_checksum, s->wb_size, s->wb_timeout);
}

/* The stats file's JSON, for tool_write_stats. */
static void write_stats(FILE *f, const void *ctx)
{
	const struct modem *md = ctx;
	struct sbd_stats s = sbd_model_stats(&md->model);
	write_stats_to(f, &s);
}

static int run(struct modem *md)
{
	tool_signals_catch(false);
	fprintf(stderr, "tern-sbd-modem: ready\n");
	md->start_us = tool_now_us();
	while (!tool_stopping()) {
		uint64_t now = tool_now_us();
		tool_tty_reopen(&md->tty, now);
		sbd_model_advance(&md->model, now);
		handle_events(md);
		pump_in(md, now);
		handle_events(md);
		if (md->tty.fd < 0) {
			/* Nobody listens: the modem talks on, into the void. */
			uint8_t sink[IO_BUF];
			while (sbd_model_output(&md->model, sink, sizeof(sink)))
				;
		}
		flush(md, now);

		struct pollfd pfd;
		uint64_t wake = sbd_model_next_us(&md->model);
		if (tool_tty_poll(&md->tty, &pfd, &wake)) {
			if (md->in_len < sizeof(md->in))
				pfd.events |= POLLIN;
			if (sbd_model_output_len(&md->model))
				pfd.events |= POLLOUT;
		}
		if (md->in_len && md->tty.fd >= 0 && !(pfd.events & POLLOUT))
			wake = now; /* the model has room again: feed it the rest */
		if (tool_wait(&pfd, 1, wake, now) < 0)
			return TOOL_EXIT_FAIL;
		tool_tty_polled(&md->tty, &pfd);
	}
	return TOOL_EXIT_OK;
}

/* A directory the program needs at start: exit 1 if it cannot be read (or written). */
static bool check_dir(const char *opt, const char *dir, int mode)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "tern-sbd-modem: --%s %s: cannot open: %s\n", opt, dir,
			strerror(errno));
		return false;
	}
	closedir(d);
	if (access(dir, mode) < 0) {
		fprintf(stderr, "tern-sbd-modem: --%s %s: %s\n", opt, dir, strerror(errno));
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	static struct modem md;
	static struct sbd_fail fail[SBD_FAIL_MAX];
	struct sbd_params p = {.imei = DEFAULT_IMEI,
			       .csq = 5,
			       .session_ms = 1500,
			       .wb_timeout_s = 60,
			       .fail = fail,
			       .seed = 1};
	const char *stats = NULL;
	uint64_t v;
	int c;

	tool_init("tern-sbd-modem");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		const char *name = c > 0 && c < OPT_HELP ? options[c - 1].name : NULL;
		switch (c) {
		case OPT_MO_DIR:
			md.mo_dir = optarg;
			break;
		case OPT_MT_DIR:
			md.mt_dir = optarg;
			break;
		case OPT_IMEI:
			if (strlen(optarg) != SBD_IMEI_LEN ||
			    strspn(optarg, "0123456789") != SBD_IMEI_LEN) {
				tool_bad_value(name, optarg, "give exactly 15 digits");
				return TOOL_EXIT_USAGE;
			}
			memcpy(p.imei, optarg, SBD_IMEI_LEN + 1);
			break;
		case OPT_CSQ:
			if (!parse_u64(optarg, 0, SBD_CSQ_MAX, &v)) {
				tool_bad_value(name, optarg,
					       "give a whole number from 0 to 5 (bars)");
				return TOOL_EXIT_USAGE;
			}
			p.csq = (uint8_t)v;
			break;
		case OPT_SESSION_MS:
			if (!parse_u64(optarg, 0, SBD_SESSION_MS_MAX, &v)) {
				tool_bad_value(
				    name, optarg,
				    "give whole milliseconds from 0 to 600000 (ten minutes)");
				return TOOL_EXIT_USAGE;
			}
			p.session_ms = (uint32_t)v;
			break;
		case OPT_WB_TIMEOUT:
			if (!parse_u64(optarg, 1, SBD_WB_TIMEOUT_MAX, &v)) {
				tool_bad_value(name, optarg, "give whole seconds from 1 to 3600");
				return TOOL_EXIT_USAGE;
			}
			p.wb_timeout_s = (uint32_t)v;
			break;
		case OPT_MOMSN:
			if (!parse_u64(optarg, 0, UINT16_MAX, &v)) {
				tool_bad_value(name, optarg, "give a whole number from 0 to 65535");
				return TOOL_EXIT_USAGE;
			}
			p.momsn = (uint16_t)v;
			break;
		case OPT_FAIL:
			if (!parse_fail(optarg, fail, &p.nfail)) {
				tool_bad_value(
				    name, optarg,
				    "give session numbers from 1, each N or N:STATUS with "
				    "STATUS 5..255, comma-separated, each once, at most 64 "
				    "(e.g. 2,5:35)");
				return TOOL_EXIT_USAGE;
			}
			break;
		case OPT_FAIL_RATE:
			/* [0, 1], so any finite decimal below infinity, then 1 at most. */
			if (!tool_parse_double(optarg, 0, INFINITY, &p.fail_rate) ||
			    p.fail_rate > 1) {
				tool_bad_value(name, optarg, "give a probability from 0 to 1");
				return TOOL_EXIT_USAGE;
			}
			break;
		case OPT_SEED:
			if (!parse_u64(optarg, 0, UINT64_MAX, &v)) {
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
	if (argc - optind != 1) {
		fprintf(stderr, "tern-sbd-modem: give one path, TTY\n%s", usage);
		return TOOL_EXIT_USAGE;
	}
	if (!md.mo_dir) {
		fprintf(stderr, "tern-sbd-modem: --mo-dir: required: where MO messages go\n%s",
			usage);
		return TOOL_EXIT_USAGE;
	}
	if (sbd_model_init(&md.model, &p) < 0) {
		fprintf(stderr, "tern-sbd-modem: the options do not fit together\n");
		return TOOL_EXIT_USAGE;
	}
	if (!check_dir("mo-dir", md.mo_dir, W_OK | X_OK) ||
	    (md.mt_dir && !check_dir("mt-dir", md.mt_dir, R_OK | W_OK | X_OK)))
		return TOOL_EXIT_FAIL;
	tool_tty_init(&md.tty, argv[optind]);
	if (tool_tty_open(&md.tty) < 0)
		return TOOL_EXIT_FAIL;
	int ret = run(&md);
	if (stats && tool_write_stats(stats, write_stats, &md) < 0)
		ret = TOOL_EXIT_FAIL;
	tool_tty_free(&md.tty);
	return ret;
}
