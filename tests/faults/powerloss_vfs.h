/* A test-only SQLite VFS: a disk with a volatile write cache, whose power can be cut. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * The model (tests/faults/powerloss_vfs.c has the details). Files whose full path lies
 * under the root directory live in memory, on "the disk": each has a current image
 * (what reads see) and a durable image (what its last xSync made durable). A write or a
 * truncate changes the current image only. xSync copies the current image to the
 * durable one and also makes the file's directory entry durable (as the unix VFS syncs
 * the directory at the first sync of a new journal or WAL). A deletion is durable with
 * xDelete's syncDir and, by default, at the next xSync of any file on the disk, as on a
 * journaling file system (ext4, XFS commit metadata in order), which also makes an
 * earlier creation durable (the file empty, if its bytes were not synced). With
 * powerloss_vfs_strict_dirs only the file's own sync and syncDir count (all that POSIX
 * promises). A cut reverts every file to its durable image (a file created and not yet
 * durable vanishes, one deleted and not yet durably comes back), drops the shared
 * memory (the WAL index, on the heap), and kills every open handle: from then on each of
 * their calls fails (SQLITE_IOERR_*) and reaches no image, and no file can be opened
 * until powerloss_vfs_restore. Every other path goes to the VFS that was the default.
 *
 * One connection per file at a time (locks are granted without looking at other handles).
 * Process-wide state; not thread-safe. Only tests include this.
 */

/* What a cut keeps of what was written since the last sync. */
enum powerloss_mode {
	POWERLOSS_DROP_ALL = 0, /* nothing: every file as at its last sync */
	/*
	 * Any subset, chosen at random: each 512-byte sector written since the file's last
	 * sync keeps its new bytes or its old ones, a changed size is kept or not, a file
	 * created, deleted or recreated since is as it was or as it is now. A cache that
	 * writes back in any order between two flushes.
	 */
	POWERLOSS_TORN,
};

struct powerloss_stats {
	uint64_t ops;		/* writes, truncates, syncs and deletes on the disk so far */
	uint64_t syncs;		/* of them, syncs */
	uint64_t cuts;		/* cuts so far */
	uint64_t bytes_dropped; /* bytes written but not synced that cuts took back */
	uint64_t bytes_max;	/* the largest current image of all files together */
};

/*
 * Registers the shim as SQLite VFS "powerloss", made the default, over the current
 * default (for every path not under root). root: an existing directory. 0, -EALREADY
 * (registered before), -ENOMEM, -errno of realpath, or -EIO (SQLite refused).
 */
int powerloss_vfs_register(const char *root);
/*
 * Arms a cut at the ops-th operation (write, truncate, sync or delete of a file on the
 * disk) from now, which fails instead of taking effect: 0 disarms. mode and seed choose
 * what the cut keeps (seed drives POWERLOSS_TORN's choices).
 */
void powerloss_vfs_arm(uint64_t ops, enum powerloss_mode mode, uint64_t seed);
/* Cuts the power now (between two operations), as an armed cut does. */
void powerloss_vfs_cut(enum powerloss_mode mode, uint64_t seed);
/* Directory entries durable only by the file's own sync or syncDir (above); off by default. */
void powerloss_vfs_strict_dirs(bool on);
/* True from a cut until powerloss_vfs_restore: the machine is off. */
bool powerloss_vfs_is_off(void);
/* Power is back: files may be opened again (handles opened before the cut stay dead). */
void powerloss_vfs_restore(void);
/* Forgets every file on the disk (a new, empty disk). -EBUSY if a handle is still open. */
int powerloss_vfs_forget(void);
void powerloss_vfs_stats(struct powerloss_stats *out);
