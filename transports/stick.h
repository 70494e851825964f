/* Sneakernet: a removable-media directory in tern's layout, read and written safely. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transports/stick_format.h"

/*
 * Layout (docs/sneakernet.md), version 1: DIR/tern/bundles/<h>/<64 hex id>.bpv (or .bpv.000,
 * .001, ... when bigger than the piece limit), where <h> is the first hex digit of the id
 * (16 subdirectories, 0 to 9 and a to f, each made when a bundle first goes into it: a
 * FAT32 directory holds only about 9,360 bundle names), DIR/tern/manifests/<32 hex>.man,
 * DIR/tern/receipts/<32 hex>.rcp, and temporary <32 hex>.part files in the directory of the
 * file they become. Every name is lowercase [0-9a-z._-], at most STICK_NAME_MAX
 * characters, so FAT32 and exFAT keep it as written.
 *
 * Everything is opened relative to directory descriptors with O_NOFOLLOW: nothing on
 * the stick is followed, nothing that is not a regular file is opened, and nothing
 * already on the stick is opened for writing (files are created under fresh random
 * temporary names, fsynced, renamed into place without replacing anything, and the
 * directory is fsynced).
 *
 * Functions return 0 or a negative errno; on failure stick_error() gives a human
 * reason that names the file ("DIR/tern/bundles/<name>: a symbolic link (not
 * followed)"). A struct stick is used by one thread at a time. tern_crypto_init() must
 * have been called (names are random, bundles are hashed).
 */

/* Longest name tern writes or accepts on a stick (a bundle piece name is 72). */
#define STICK_NAME_MAX 80
/* Entry names as shown ("<h>/<name>" in bundles/<h>/): hostile ones escaped (\xNN), cut to fit. */
#define STICK_SHOW_MAX 127
/* Default piece limit: the FAT32 file limit (4 GiB - 1) with a margin. */
#define STICK_PIECE_MAX_DEFAULT ((4ull << 30) - (1ull << 20))
/* Pieces are numbered .000 to .999. */
#define STICK_PIECES_MAX 1000u
/* Largest manifest or receipt file read or written. */
#define STICK_FILE_MAX (16u << 20)
/*
 * Most directory entries one listing takes (memory bound); more is -EFBIG. bundles/ and each
 * of its subdirectories are listings of their own, one subdirectory at a time.
 */
#define STICK_DIR_MAX 200000u

/* The environment variable that lowers the piece limit (tests); read by stick_open. */
#define STICK_PIECE_MAX_ENV "TERN_STICK_PIECE_MAX"

struct stick;
struct stick_entry;

enum stick_dir {
	STICK_BUNDLES = 0,
	STICK_MANIFESTS = 1,
	STICK_RECEIPTS = 2,
};

/*
 * Opens DIR, which must be an existing directory (the mount point of a stick) and not
 * a symbolic link. Writable: creates tern/ and its three subdirectories as needed and
 * takes an exclusive lock on tern/ (flock) so that two tern processes of this machine
 * do not write one stick at once. Read-only: missing subdirectories read as empty.
 * Returns 0; -ENOENT (DIR missing, or no tern/ to read), -ENOTDIR, -ELOOP (DIR,
 * tern/ or a subdirectory is a symbolic link), -EROFS (read-only medium), -EACCES or
 * -EPERM, -EBUSY (another process writes the stick), -EINVAL (a bad
 * TERN_STICK_PIECE_MAX), -ENOMEM, -EIO. why gets the reason on failure.
 */
int stick_open(const char *dir, bool writable, struct stick **out, char *why, size_t whylen);
/* Closes the stick and releases its lock; stick_close(NULL) is a no-op. */
void stick_close(struct stick *s);
/* The reason for the last failure of a function on s; "" if none yet. */
const char *stick_error(const struct stick *s);
/* The piece limit in force (STICK_PIECE_MAX_DEFAULT unless the environment lowered it). */
uint64_t stick_piece_max(const struct stick *s);

/*
 * Removes leftover *.part files (a pulled stick, a killed export) from bundles/0/ to
 * bundles/f/, manifests/ and receipts/: regular files only, links are removed never
 * followed, anything else (and a subdirectory of bundles/ that is not a directory) is left
 * for the listings to report. *removed (may be NULL) gets the count.
 * 0, -EROFS (opened read-only), or the error of a listing or removal.
 */
int stick_clean_temp(struct stick *s, unsigned *removed);

/* What stick_free_bytes says of a file system that reports no sizes (fusefat does so). */
#define STICK_FREE_UNKNOWN UINT64_MAX

/*
 * Bytes available to us on the stick's file system (fstatvfs), or STICK_FREE_UNKNOWN
 * if it does not say: then only a write's -ENOSPC tells that the stick is full.
 * 0 or -errno.
 */
int stick_free_bytes(struct stick *s, uint64_t *out);
/* The allocation unit of the stick's file system (a FAT cluster): every file takes a multiple. */
uint64_t stick_cluster_size(struct stick *s);
/*
 * Makes the stick hold at most bytes, in clusters of cluster bytes, whatever its file
 * system holds: a simulated stick (tern-sim's couriers). From then on stick_free_bytes
 * gives bytes less what the regular files in tern/'s directories take (each rounded up to
 * a cluster), stick_cluster_size gives cluster, and stick_bundle_begin and stick_put refuse
 * what does not fit with -ENOSPC, as on a full medium. 0, or -EINVAL if either is 0.
 */
int stick_set_capacity(struct stick *s, uint64_t bytes, uint64_t cluster);

/* ---- bundles --------------------------------------------------------------------- */

/*
 * True if a complete copy of the bundle is in its subdirectory bundles/<h>/: a regular
 * <id>.bpv of 1 byte to STICK_BUNDLE_MAX, or pieces .000 to .N without a gap, all of the
 * size of .000 but the last (1 byte to that size), nothing beyond, and not a single piece
 * alone. False if bundles/<h> is missing or not a real directory.
 */
bool stick_has_bundle(struct stick *s, const uint8_t id[static 32]);
/*
 * The entry of a complete copy of the bundle, as a listing would give it (for
 * stick_bundle_read), found by name alone as stick_has_bundle does. 0, or -ENOENT
 * if there is no complete copy.
 */
int stick_bundle_find(struct stick *s, const uint8_t id[static 32], struct stick_entry *e);

struct stick_writer;

/*
 * Starts writing bundle id, of about size bytes (the expected size: a re-encoded head
 * may differ by a few bytes; it is used to refuse early). Refuses -EEXIST if a complete
 * copy is already on the stick (stick_has_bundle) or a name it needs is taken by
 * something that is not a regular file; removes the remains of an incomplete copy (a
 * pulled stick); -EFBIG over STICK_BUNDLE_MAX or piece limit * STICK_PIECES_MAX;
 * -ENOSPC if size is more than the free space (when known); -EROFS if opened read-only;
 * -ENOTDIR if bundles/<h> is a symbolic link, a file, a FIFO... (never followed or
 * opened). Creates bundles/<h>/ if it is missing (and fsyncs bundles/).
 */
int stick_bundle_begin(struct stick *s, const uint8_t id[static 32], uint64_t size,
		       struct stick_writer **out);
/*
 * Appends bytes, in bounded memory (a 256 KiB buffer; pieces are switched as they
 * fill). -ENOSPC (stick full, or on FAT32 a full directory), -EFBIG (over the limits,
 * or the file system refuses a file this big), -EIO. Errors are sticky: commit fails
 * and abort cleans up.
 */
int stick_bundle_write(struct stick_writer *w, const void *buf, size_t len);
/*
 * Flushes and fsyncs every piece, renames them into place (pieces .001 and up first,
 * then a directory fsync, then .000 or the whole <id>.bpv, then a directory fsync, so a
 * pull at any moment leaves either the whole bundle or an incomplete set without .000)
 * and frees w, on success and on failure (after removing what it wrote). hash gets the
 * BLAKE2b-256 of the bytes, *size (may be NULL) their count: the manifest entry.
 * -EINVAL if nothing was written, -EEXIST if another copy appeared meanwhile, or an
 * earlier write error.
 */
int stick_bundle_commit(struct stick_writer *w, uint8_t hash[static 32], uint64_t *size);
/* Bundles up to this size are committed in groups in deferred mode. */
#define STICK_DEFER_MAX (16u << 20)

/*
 * For many bundles in a row, on a medium where every flush is slow (a USB stick flushes
 * its cache on each fsync): from now on stick_bundle_commit of a whole bundle up to
 * STICK_DEFER_MAX writes and closes its temporary file but neither fsyncs nor renames
 * it, and stick_sync makes the group durable with one syncfs, then renames each file
 * into place and fsyncs the directory once. Bigger bundles are committed as before,
 * but their directory fsync is left to stick_sync too. So a reader still sees a whole
 * bundle under its final name or nothing; until stick_sync returned, a pull may take
 * back any commit since the last one. Call stick_sync before writing anything that
 * lists these bundles (a manifest), and every few hundred bundles.
 */
void stick_defer_sync(struct stick *s);

/* The outcome of one commit, reported by stick_sync: 0 placed and durable, or -errno. */
typedef void (*stick_placed_fn)(void *ctx, const uint8_t id[32], int result);

/*
 * Makes every commit since the last stick_sync durable and reports each, in commit order,
 * to fn (may be NULL): 0, -EEXIST (another copy took the name meanwhile: ours is
 * removed), or the error that kept it from the stick (removed too). Returns 0, or the
 * error of the syncfs or directory fsync that every unplaced commit got.
 */
int stick_sync(struct stick *s, stick_placed_fn fn, void *ctx);

/* Removes the temporary files and frees w; stick_bundle_abort(NULL) is a no-op. */
void stick_bundle_abort(struct stick_writer *w);

/*
 * Removes every copy of a bundle (whole file and pieces; regular files only) and fsyncs
 * its directory: for a bundle whose receipt came home, or a copy that failed its
 * checks. 0, -ENOENT if there was none, -EROFS, -ELOOP or -ENOTDIR (bundles/<h> is not
 * a real directory: left alone), or the error.
 */
int stick_bundle_remove(struct stick *s, const uint8_t id[static 32]);

enum stick_problem {
	STICK_OK = 0,
	STICK_BAD_NAME,	     /* not a name tern writes (case, characters, pattern, length) */
	STICK_SYMLINK,	     /* a symbolic link: not followed */
	STICK_NOT_REGULAR,   /* a directory, FIFO, device or socket: not opened; or, for
				bundles/<h>, anything but a directory */
	STICK_EMPTY,	     /* 0 bytes: a pulled stick */
	STICK_TOO_BIG,	     /* over STICK_BUNDLE_MAX (bundles) or STICK_FILE_MAX (files) */
	STICK_PIECE_MISSING, /* a gap in .000, .001, ...; name is the first missing piece */
	STICK_PIECE_SIZE,    /* a piece not of the size of .000 (or a last piece larger) */
	STICK_UNREADABLE,    /* stat, open or read failed; error says how */
	STICK_CHANGED,	     /* not what was listed any more: type or size changed */
};

struct stick_entry {
	char name[STICK_SHOW_MAX + 1]; /* below bundles/: "<h>/<file>" (first piece, or the
					  piece at fault), or an entry of bundles/ itself */
	uint8_t id[32];		       /* zero when the name is not a bundle name */
	uint64_t size;		       /* bytes, all pieces together */
	uint64_t piece_size;	       /* bytes of each piece but the last (= size if whole) */
	unsigned pieces;	       /* 1 for <id>.bpv, else the count of .NNN pieces */
	enum stick_problem code;       /* STICK_OK if readable */
	const char *problem;	       /* NULL if readable, else a static reason to refuse it */
	int error;		       /* -errno behind STICK_UNREADABLE, else 0 */
};

/* Called per entry; returns 0 to go on, or a negative errno that stops the listing. */
typedef int (*stick_entry_fn)(void *ctx, const struct stick_entry *e);

/*
 * Lists bundles/ and its subdirectories in name order (of the names as shown): one entry
 * per whole bundle, one per set of pieces, one per name that is neither, including a
 * bundle in the wrong subdirectory (regular *.part files in the subdirectories are
 * skipped: they are temporaries). In bundles/ itself every entry but the 16
 * subdirectories is reported (a symbolic link, file or FIFO named like one too: never
 * followed or opened); a missing subdirectory is empty. fn may call stick_bundle_read on
 * the entry. Returns 0, fn's error, or the error of a directory itself (-EFBIG over
 * STICK_DIR_MAX entries, -EIO, -ENOMEM).
 */
int stick_bundle_foreach(struct stick *s, stick_entry_fn fn, void *ctx);

/* Receives bytes in order; returns 0 or a negative errno that stops the read. */
typedef int (*stick_sink)(void *ctx, const uint8_t *buf, size_t len);

/*
 * Streams an entry's bytes (all pieces in order) to sink in bounded memory and writes
 * the BLAKE2b-256 of them to hash. Each piece is checked before it is opened (a regular
 * file) and after (fstat: a regular file of the listed size), and must end where listed.
 * -EINVAL if the entry has a problem, -ESTALE if a piece changed since the listing
 * (STICK_CHANGED), -EIO on a read error, or the sink's error. The bytes a failed read
 * passed to the sink must be discarded.
 */
int stick_bundle_read(struct stick *s, const struct stick_entry *e, stick_sink sink, void *ctx,
		      uint8_t hash[static 32]);

/* ---- manifests and receipts ------------------------------------------------------ */

/*
 * Writes buf (1 byte to STICK_FILE_MAX) as a new file under a random name into
 * STICK_MANIFESTS (<32 hex>.man) or STICK_RECEIPTS (<32 hex>.rcp): temporary file,
 * fsync, rename without replacing, directory fsync. name_out gets the name. -EINVAL
 * (which, len), -EROFS, -ENOSPC, -EIO.
 */
int stick_put(struct stick *s, enum stick_dir which, const void *buf, size_t len,
	      char name_out[static STICK_NAME_MAX + 1]);

/*
 * Called per file in name order: a good file with its bytes (buf valid during the call)
 * and problem NULL; a hostile or broken one with buf NULL, len 0 and problem set
 * (a stick_entry reason), never read. Returns 0 to go on or a negative errno to stop.
 */
typedef int (*stick_file_fn)(void *ctx, const char *name, const uint8_t *buf, size_t len,
			     const char *problem);

/*
 * Reads each regular file of STICK_MANIFESTS or STICK_RECEIPTS with a tern name and 1
 * byte to STICK_FILE_MAX fully, and reports everything else (regular *.part files are
 * skipped). Returns 0, fn's error, -EINVAL (which), or the directory's error.
 */
int stick_foreach_file(struct stick *s, enum stick_dir which, stick_file_fn fn, void *ctx);

/*
 * Removes a manifest or receipt by name (a tern name of that directory; a regular
 * file) and fsyncs the directory. 0, -EINVAL (not such a name: "../x" is refused),
 * -ENOENT, -EPERM (not a regular file: left alone), -EROFS, -EIO.
 */
int stick_remove(struct stick *s, enum stick_dir which, const char *name);
