/*
 * What the sim/ programs share: a clock, option numbers, ttys that come and go, signals, the
 * stats file.
 */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The exit codes of every tern program (STYLE.md). */
enum tool_exit {
	TOOL_EXIT_OK = 0,
	TOOL_EXIT_FAIL = 1,
	TOOL_EXIT_USAGE = 2,
};

/* A time that never comes, as the models' next_us functions say "no timer". */
#define TOOL_NEVER UINT64_MAX

/* Seconds an option may give at most: about 31 years, anything beyond is a typo. */
#define TOOL_SECONDS_MAX 1e9

/* Bytes waiting to be written to one tty. */
#define TOOL_TTY_OUT 4096

/* Names the program in the messages the tool_ functions write ("tern-line: ..."): call first. */
void tool_init(const char *name);

/* The monotonic clock in microseconds: what every model takes as now. */
uint64_t tool_now_us(void);
/* Microseconds as seconds, for messages and the stats. */
double tool_seconds(uint64_t us);

/* A decimal whole number in [min, max], no sign; false if s is anything else. */
bool tool_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A finite decimal in [min, max) ("%g" forms allowed); false if s is anything else. */
bool tool_parse_double(const char *s, double min, double max, double *out);
/* Decimal seconds in [0, TOOL_SECONDS_MAX); false if s is anything else. */
bool tool_parse_seconds(const char *s, double *out);
/* Seconds from tool_parse_seconds, rounded to microseconds. */
uint64_t tool_seconds_to_us(double s);
/* Says on stderr that --opt val is bad and what to give instead: "name: --opt val: want". */
void tool_bad_value(const char *opt, const char *val, const char *want);
/*
 * Says on stderr what is wrong with arg, the option getopt_long (with ":" leading its short
 * options) returned c for: ':' a missing value, else an unknown option, then the usage.
 * Returns TOOL_EXIT_USAGE, for main to return.
 */
int tool_bad_option(int c, const char *arg, const char *usage);

/*
 * Catches SIGTERM and SIGINT (see tool_stopping), and SIGUSR1 too if usr1 (see tool_take_usr1;
 * else it keeps its default, which ends the program), and ignores SIGPIPE. They stay blocked
 * except inside tool_wait: one can never slip in between a check and the wait.
 */
void tool_signals_catch(bool usr1);
/* True once SIGTERM or SIGINT came: the loop ends. */
bool tool_stopping(void);
/* True once for each time (or burst of times) SIGUSR1 came. */
bool tool_take_usr1(void);
/*
 * Waits in ppoll for the n fds, a caught signal or the time wake (TOOL_NEVER: no time), in whole
 * milliseconds. 0, or -errno after saying on stderr why the poll failed.
 */
int tool_wait(struct pollfd *pfd, nfds_t n, uint64_t wake, uint64_t now);

/*
 * A tty at a path (the far end of a pty pair that socat, say, made), opened raw and non-blocking.
 * When its far end goes away it is closed and opened again every 200 ms, as a cable pulled out
 * and put back: what was on its way to it is lost, and counted.
 */
struct tool_tty {
	const char *path;
	int fd;			   /* -1 while closed */
	uint64_t reopen_us;	   /* while closed: when to try again */
	uint8_t out[TOOL_TTY_OUT]; /* out_off..out_len waits to be written */
	size_t out_off, out_len;
	uint64_t closed_lost; /* bytes for the tty dropped as it closed, or while it was closed */
};

/* A closed tty at path, not yet opened; does not copy path. */
void tool_tty_init(struct tool_tty *t, const char *path);
/* Opens t at the program's start: 0, or -errno after saying on stderr why it cannot. */
int tool_tty_open(struct tool_tty *t);
/* Tries to open t again if it is closed and its time has come; true if it just did. */
bool tool_tty_reopen(struct tool_tty *t, uint64_t now);
/* Closes t, saying why on stderr, for tool_tty_reopen to try again; its output is dropped. */
void tool_tty_close(struct tool_tty *t, const char *why, uint64_t now);
/* Closes t for good, if open. */
void tool_tty_free(struct tool_tty *t);
/*
 * Reads up to cap bytes into buf: how many, 0 if none (none waiting, cap 0, or t closed: by
 * now or by this read, which said why on stderr).
 */
size_t tool_tty_read(struct tool_tty *t, uint8_t *buf, size_t cap, uint64_t now);
/*
 * Moves what waits in t->out to its start and gives the free end of it, *room bytes: put bytes
 * there and add them to t->out_len.
 */
uint8_t *tool_tty_out_tail(struct tool_tty *t, size_t *room);
/*
 * Writes what waits in t->out as far as the tty takes it; all written, the buffer is empty again.
 * 0, or -errno (-EIO: the tty took nothing) after closing t.
 */
int tool_tty_flush(struct tool_tty *t, uint64_t now);
/*
 * Sets pfd for t: POLLOUT if output waits, no events else. While t is closed, brings *wake
 * forward to its reopen time and returns false; true if open, for the caller to add POLLIN.
 */
bool tool_tty_poll(const struct tool_tty *t, struct pollfd *pfd, uint64_t *wake);
/* After tool_wait: closes t if pfd says its far end hung up with nothing left to read. */
void tool_tty_polled(struct tool_tty *t, const struct pollfd *pfd);

/*
 * Writes the stats file at path through path.tmp and a rename, so a reader never sees half of
 * it; put writes the JSON of ctx on f. 0, or -errno after saying on stderr why it cannot.
 */
int tool_write_stats(const char *path, void (*put)(FILE *f, const void *ctx), const void *ctx);
