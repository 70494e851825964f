/* Shared between the stick_*.c files only: the struct, names, listings and safe file helpers. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "transports/stick.h"

/* Read and write buffer: large enough for FAT's clusters and USB's transfers. */
#define STICK_IO_BUF (256u * 1024)
/* A temporary name: 32 random hex digits and ".part". */
#define STICK_TEMP_LEN 37
/* bundles/ holds one subdirectory per first hex digit of the id: 0 ... 9, a ... f. */
#define STICK_FANOUT 16

/* A commit in deferred mode: placed already (temp[0] == 0) or waiting for stick_sync. */
struct stick_pending {
	uint8_t id[32];
	char temp[STICK_NAME_MAX + 1];
	int result;
};

struct stick {
	char *dir; /* as given, for messages only: nothing is opened by path below it */
	bool writable;
	int root_fd, tern_fd;
	int fd[3]; /* bundles/, manifests/, receipts/; -1 if absent on a read-only stick */
	int sub[STICK_FANOUT]; /* bundles/0/ ... bundles/f/, opened on first use; -1 until then */
	uint64_t piece_max;
	bool defer_sync; /* stick_defer_sync: commits are made durable by stick_sync */
	uint16_t dirty;	 /* bit h: a rename in bundles/<h>/ awaits that fsync */
	struct stick_pending *pending; /* commits since stick_sync, in order */
	size_t n_pending, cap_pending;
	uint8_t *iobuf;		    /* STICK_IO_BUF bytes, allocated on first read */
	uint64_t capacity, cluster; /* stick_set_capacity; 0: the file system's */
	char err[512];
};

/* One directory entry as listed: a tern name parsed into id (+ piece), or kept for show. */
enum stick_type {
	STICK_T_REG,
	STICK_T_LNK,
	STICK_T_DIR,
	STICK_T_FIFO,
	STICK_T_DEV,
	STICK_T_SOCK,
	STICK_T_OTHER,
	STICK_T_ERR
};

struct stick_rec {
	uint64_t size;
	char *show;	/* malloc'd escaped name when the name is not one tern writes, else NULL */
	uint8_t id[32]; /* bundle id, or the 16 random bytes of a manifest or receipt name */
	int16_t piece;	/* bundles: -1 for <id>.bpv, else the piece number */
	uint8_t type;	/* enum stick_type */
	bool taken;	/* already reported as part of a set of pieces */
	int err;	/* -errno of fstatat when type is STICK_T_ERR */
};

struct stick_list {
	struct stick_rec *recs;
	size_t n, cap;
};

/* Formats "DIR/tern/<sub>/<name>: <message>" into s->err and returns err (negative). */
int stick_fail(struct stick *s, int err, int which, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int stick_vfail(struct stick *s, int err, int which, const char *name, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
/* The subdirectory's name ("bundles", ...) */
const char *stick_dir_name(int which);

/* True if name is 1..STICK_NAME_MAX characters of [0-9a-z._-], not starting with '.'. */
bool stick_name_ok(const char *name);
/*
 * Writes name printable: bytes outside 0x21..0x7e and '\' become \xNN; cut with "..." to
 * at most max (<= STICK_SHOW_MAX) characters.
 */
void stick_show_name(const char *name, size_t max, char out[static STICK_SHOW_MAX + 1]);
/* The subdirectory of bundles/ for a name: 0..15 if it is exactly one of "0".."f", else -1. */
int stick_fanout_index(const char *name);
/* The name of subdirectory h of bundles/: "0" ... "f". */
char stick_fanout_name(unsigned h);
/* "<64 hex>.bpv" (piece < 0) or "<64 hex>.bpv.NNN". */
void stick_bundle_name(const uint8_t id[static 32], int piece, char out[static STICK_NAME_MAX + 1]);
/* Parses a bundle name; false if it is not exactly one tern writes. */
bool stick_parse_bundle_name(const char *name, uint8_t id[static 32], int *piece);
/* Fills out with a fresh random temporary name. */
void stick_temp_name(char out[static STICK_TEMP_LEN + 1]);
/* True if name ends in ".part". */
bool stick_is_temp(const char *name);

/* fsync of a directory; file systems that cannot (some FUSE ones) are not an error. */
int stick_fsync_dir(int dfd);
/* renameat that never replaces: -EEXIST if to exists. */
int stick_rename_noreplace(int dfd, const char *from, const char *to);
/* Type of a struct stat's mode as enum stick_type. */
uint8_t stick_type_of(unsigned mode);
/* Reason for a non-regular type, and its problem code. */
const char *stick_type_problem(uint8_t type, enum stick_problem *code);
/* write() all of it; -errno. */
int stick_write_all(int fd, const uint8_t *buf, size_t len);
/* A reason for an errno met while writing to a stick (full, FAT limits, read-only). */
const char *stick_write_reason(struct stick *s, int err);

/*
 * Opens bundles/<h>/ (h < STICK_FANOUT), creating it (and fsyncing bundles/) when create
 * is set on a writable stick; never through a link. The descriptor stays cached in s and
 * must not be closed. 0, -ENOENT (absent and not created), -ELOOP (a symbolic link),
 * -ENOTDIR (a file, FIFO, ...), or another -errno; each with s->err naming bundles/<h>.
 */
int stick_bundle_dir(struct stick *s, unsigned h, bool create, int *out);

/*
 * Lists directory dfd (-1: an absent directory, listed empty) into l, sorted by name.
 * which and sub say what it is: manifests/ or receipts/ (sub -1), bundles/<sub>/ (a
 * bundle name there must start with that hex digit), or bundles/ itself (sub -1: no name
 * is parsed, every entry kept for show, *.part included).
 */
int stick_list_dir(struct stick *s, int which, int sub, int dfd, struct stick_list *l);
void stick_list_free(struct stick_list *l);
/* The name of a listed record: its show name, or the tern name rebuilt from id. */
void stick_rec_name(int which, const struct stick_rec *r, char out[static STICK_SHOW_MAX + 1]);

/* Removes the temporaries of commits not yet synced (stick_close of an export that stopped). */
void stick_drop_pending(struct stick *s);
