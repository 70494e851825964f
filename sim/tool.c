/* The OS side the pty programs (tern-line, tern-modem, tern-sbd-modem) have in common. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim/tool.h"

#define REOPEN_US 200000u
#define US_PER_S  1000000.0

static const char *tool_name = "tern";
static volatile sig_atomic_t got_stop, got_usr1;

void tool_init(const char *name)
{
	tool_name = name;
}

uint64_t tool_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double tool_seconds(uint64_t us)
{
	return (double)us / US_PER_S;
}

bool tool_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	/* strtoull takes "-1" as 2^64 - 1: a sign is refused before it can. */
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool tool_parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v >= max)
		return false;
	*out = v;
	return true;
}

bool tool_parse_seconds(const char *s, double *out)
{
	return tool_parse_double(s, 0, TOOL_SECONDS_MAX, out);
}

uint64_t tool_seconds_to_us(double s)
{
	return (uint64_t)llround(s * US_PER_S);
}

void tool_bad_value(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "%s: --%s %s: %s\n", tool_name, opt, val, want);
}

int tool_bad_option(int c, const char *arg, const char *usage)
{
	if (c == ':')
		fprintf(stderr, "%s: %s: needs a value\n", tool_name, arg);
	else
		fprintf(stderr, "%s: %s: unknown option\n%s", tool_name, arg, usage);
	return TOOL_EXIT_USAGE;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_stop = 1;
}

void tool_signals_catch(bool usr1)
{
	sigset_t block;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&block);
	if (usr1)
		sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&sa.sa_mask);
	if (usr1)
		sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* A tty whose far end is gone fails the write instead, and is closed and reopened. */
	signal(SIGPIPE, SIG_IGN);
}

bool tool_stopping(void)
{
	return got_stop;
}

bool tool_take_usr1(void)
{
	/* Signals are blocked outside tool_wait: none can come between the test and the clear. */
	if (!got_usr1)
		return false;
	got_usr1 = 0;
	return true;
}

int tool_wait(struct pollfd *pfd, nfds_t n, uint64_t wake, uint64_t now)
{
	struct timespec ts, *tsp = NULL;
	sigset_t none;
	sigemptyset(&none);
	if (wake != TOOL_NEVER) {
		/* Whole milliseconds: waking per byte at high rates would cost more than it shows.
		 */
		uint64_t ms = wake > now ? (wake - now + 999) / 1000 : 0;
		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		tsp = &ts;
	}
	if (ppoll(pfd, n, tsp, &none) < 0 && errno != EINTR) {
		int ret = -errno;
		fprintf(stderr, "%s: poll: %s\n", tool_name, strerror(errno));
		return ret;
	}
	return 0;
}

void tool_tty_init(struct tool_tty *t, const char *path)
{
	memset(t, 0, sizeof(*t));
	t->path = path;
	t->fd = -1;
}

static void set_raw(int fd)
{
	struct termios tio;
	/* Not a tty (a FIFO, say) is fine: there is nothing to set. */
	if (tcgetattr(fd, &tio) < 0)
		return;
	cfmakeraw(&tio);
	tcsetattr(fd, TCSANOW, &tio);
}

static int open_raw(struct tool_tty *t)
{
	int fd = open(t->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	set_raw(fd);
	t->fd = fd;
	t->out_off = t->out_len = 0;
	return 0;
}

int tool_tty_open(struct tool_tty *t)
{
	int ret = open_raw(t);
	if (ret < 0)
		fprintf(stderr, "%s: %s: cannot open: %s\n", tool_name, t->path, strerror(-ret));
	return ret;
}

bool tool_tty_reopen(struct tool_tty *t, uint64_t now)
{
	if (t->fd >= 0 || now < t->reopen_us)
		return false;
	if (open_raw(t) < 0) {
		t->reopen_us = now + REOPEN_US;
		return false;
	}
	fprintf(stderr, "%s: %s: open again\n", tool_name, t->path);
	return true;
}

void tool_tty_close(struct tool_tty *t, const char *why, uint64_t now)
{
	close(t->fd);
	t->fd = -1;
	t->closed_lost += t->out_len - t->out_off;
	t->out_off = t->out_len = 0;
	t->reopen_us = now + REOPEN_US;
	fprintf(stderr, "%s: %s: closed (%s); reopening every %u ms\n", tool_name, t->path, why,
		REOPEN_US / 1000);
}

void tool_tty_free(struct tool_tty *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

size_t tool_tty_read(struct tool_tty *t, uint8_t *buf, size_t cap, uint64_t now)
{
	/* A read of 0 bytes would look like the end of file. */
	if (t->fd < 0 || cap == 0)
		return 0;
	ssize_t n = read(t->fd, buf, cap);
	if (n > 0)
		return (size_t)n;
	if (n == 0)
		tool_tty_close(t, "end of file", now);
	else if (errno != EAGAIN && errno != EINTR)
		tool_tty_close(t, strerror(errno), now);
	return 0;
}

uint8_t *tool_tty_out_tail(struct tool_tty *t, size_t *room)
{
	if (t->out_off) {
		memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
		t->out_len -= t->out_off;
		t->out_off = 0;
	}
	*room = sizeof(t->out) - t->out_len;
	return t->out + t->out_len;
}

int tool_tty_flush(struct tool_tty *t, uint64_t now)
{
	while (t->fd >= 0 && t->out_off < t->out_len) {
		ssize_t n = write(t->fd, t->out + t->out_off, t->out_len - t->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		/* The tty is full: the rest waits for POLLOUT. */
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			int ret = n < 0 ? -errno : -EIO;
			tool_tty_close(t, n < 0 ? strerror(errno) : "wrote nothing", now);
			return ret;
		}
		t->out_off += (size_t)n;
	}
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
	return 0;
}

bool tool_tty_poll(const struct tool_tty *t, struct pollfd *pfd, uint64_t *wake)
{
	pfd->fd = t->fd;
	pfd->events = 0;
	pfd->revents = 0;
	if (t->fd < 0) {
		if (t->reopen_us < *wake)
			*wake = t->reopen_us;
		return false;
	}
	if (t->out_len > t->out_off)
		pfd->events |= POLLOUT;
	return true;
}

void tool_tty_polled(struct tool_tty *t, const struct pollfd *pfd)
{
	/* With POLLIN as well, the read that follows takes what is left and sees the end. */
	if (pfd->fd >= 0 && (pfd->revents & (POLLHUP | POLLERR | POLLNVAL)) &&
	    !(pfd->revents & POLLIN))
		tool_tty_close(t, "hung up", tool_now_us());
}

int tool_write_stats(const char *path, void (*put)(FILE *f, const void *ctx), const void *ctx)
{
	char tmp[4096];
	int ret = 0;
	FILE *f = NULL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	f = fopen(tmp, "w");
	if (!f) {
		ret = -errno;
		goto out;
	}
	put(f, ctx);
	if (ferror(f))
		ret = -EIO;
	if (fclose(f) != 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
out:
	if (ret)
		fprintf(stderr, "%s: %s: cannot write the stats: %s\n", tool_name, path,
			strerror(-ret));
	return ret;
}
