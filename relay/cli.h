/* What the tern command's files share: the command table, the node home, output helpers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relay/node.h"

/* Exit codes (STYLE.md): success, failure, usage error. */
#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

struct cli_command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;   /* arguments after the command name */
	const char *summary; /* one line for `tern --help` */
};

/* The table lives in main.c; each entry's fn in cmd_<name>.c. */
int cmd_init(int argc, char **argv);
int cmd_id(int argc, char **argv);
int cmd_contact(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_inbox(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_bundle(int argc, char **argv);

int cmd_peer(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_sbd(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/* ---- cmd_bundle.c: what taking bundles in prints, for bundle import and sbd ingest ---- */
struct import_tally {
	int delivered, queued, duplicate, rejected, receipts;
	struct receipt_batch to_senders; /* delivery receipts to seal back */
};
/* Prints one line for the bundle from path (stdout; stderr if rejected) and counts it. */
int cli_report_ingest(const char *path, const struct ingest_result *res, struct import_tally *t);
/* Queues the delivery receipts, closes n, tells the daemon, prints the tally on stderr. */
void cli_import_done(struct node *n, const char *what, struct import_tally *t);

/*
 * Checks a NAME IDSTRING pair given on the command line (cmd_contact.c): a valid
 * name, a well-formed identity string, not our own. Prints the error itself.
 */
int cli_identity_arg(struct node *n, const char *name, const char *idstr,
		     struct identity_public *pub);

/* ---- util.c ----------------------------------------------------------------- */

/* Prints "tern: what: why" to stderr and returns EXIT_FAIL. */
int cli_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "tern: what: why", a usage hint, and returns EXIT_USAGE. */
int cli_usage(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the usage and summary of one command from the table to f. */
void cli_print_help(const char *command, FILE *f);
/* True if the first argument after the command is -h or --help. */
bool cli_wants_help(int argc, char **argv);

/* Parses exactly len bytes of hex. -EINVAL otherwise. */
int hex_decode(const char *s, uint8_t *out, size_t len);
/* Writes s as a JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD. */
void json_string(FILE *f, const char *s);
/* Length of the valid UTF-8 sequence at p (1-4), or 0 if there is none. */
size_t utf8_valid_len(const unsigned char *p, size_t avail);
/* Copies in to out for a terminal: controls and invalid UTF-8 become '?'. */
void safe_text(const char *in, char *out, size_t outlen);
/* "2026-11-27T12:00:00Z", or "unknown" for 0. */
void format_time(uint64_t unix_ms, char *out, size_t len);
/* "12.3 MiB" */
void format_size(uint64_t bytes, char *out, size_t len);
/* "7d", "12h", "30m", "45s", or plain seconds. -EINVAL if malformed or out of range. */
int parse_duration_ms(const char *s, uint64_t *out);
int parse_priority(const char *s, enum store_priority *out);
const char *priority_name(enum store_priority p);
/* A contact name: 1-64 of [A-Za-z0-9._-], not starting with '-' or '.'. */
bool contact_name_valid(const char *name);

/* Parses a byte count: digits with an optional k, M, G or T (powers of 1024). -EINVAL. */
int parse_size(const char *s, uint64_t *out);

/* ---- api_call.c ------------------------------------------------------------- */

/*
 * Sends one request line (docs/api.md, without its newline) to the daemon running on this
 * node home and returns its reply line, malloc'd, without the newline, waiting at most
 * timeout_ms for it. 0; -ENOENT or -ECONNREFUSED when no daemon runs; -ETIMEDOUT,
 * -ECONNRESET, -EMSGSIZE, -errno.
 */
int api_call(const char *request, int timeout_ms, char **reply);
/*
 * Tells a daemon running on this home (<home>/api.sock) that bundles were just
 * committed, so that it offers them now. Silent when no daemon runs; a warning on
 * stderr if one does but did not answer within 2 s. Call after a durable commit.
 */
void api_notify_queued(void);

/* ---- progress.c: a progress bar on stderr when it is a terminal ------------------- */

struct progress {
	const char *verb;
	uint64_t total, done;
	uint64_t start_ms, last_ms;
	bool tty, drawn;
};

void progress_start(struct progress *p, const char *verb, uint64_t total);
/* Counts bytes done; redraws the bar (bytes, rate, time left) at most 5 times a second. */
void progress_add(struct progress *p, uint64_t bytes);
/* Clears the bar's line so that a message can be printed; the next progress_add redraws. */
void progress_interrupt(struct progress *p);
/* Draws the final state and ends the line, if a bar was drawn at all. */
void progress_end(struct progress *p);
uint64_t progress_elapsed_ms(const struct progress *p);

/* ---- home.c ----------------------------------------------------------------- */

/* --home as given on the command line, or NULL. */
extern const char *cli_home_opt;

#define HOME_PATH_MAX 4096

/* Resolves the home directory: --home, then TERN_HOME, then ~/.local/share/tern. */
int home_dir(char *out, size_t len);
/* Joins the home directory and a file name. */
int home_path(const char *name, char *out, size_t len);
/* Creates dir and its missing parents; the last component 0700. 0 or -errno (-ENOTDIR). */
int home_make(char *dir);
/* EXIT_OK if dir is this user's (or absent); else says whose it is, and EXIT_FAIL. */
int home_check_owner(const char *dir);
/*
 * Opens the node in the home: checks the key file's permissions, asks for the
 * passphrase if the key is protected, opens the store, reads the clocks.
 * Prints its own errors; returns EXIT_OK or EXIT_FAIL.
 */
int home_open(struct node *n);
/* Reads a passphrase from TERN_PASSPHRASE_FILE or the terminal. confirm asks twice. */
int home_passphrase(const char *prompt, bool confirm, char *out, size_t len);

/* ---- clock.c ---------------------------------------------------------------- */

/* Reads the wall clock, the boot clock and the boot id. */
void clock_now(struct store_clock *out);
/* Whether the wall clock can be trusted: an RTC is present or NTP has synchronised it. */
bool clock_looks_trusted(void);
