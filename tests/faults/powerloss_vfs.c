/* A test-only SQLite VFS whose files sit in memory behind a volatile cache that a cut discards. */
#include "tests/faults/powerloss_vfs.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTOR 512

/*
 * One file of the disk. cur is what reads see, dur what the last sync made durable.
 * dirty[i] marks sector i as written since that sync (both images may differ there);
 * whole means the file was deleted or created since, so that the images have nothing
 * in common. Bytes of cur past dur_len are always dirty.
 */
struct node {
	char *name;
	bool exists, dur_exists, whole;
	uint8_t *cur, *dur, *dirty;
	size_t cur_len, dur_len, cur_cap, dur_cap, dirty_cap;
	size_t dirty_lo, dirty_hi; /* sectors [lo, hi) hold every dirty one */
	void **shm;		   /* the WAL index: memory, not disk */
	int n_shm, shm_size;
	int refs;
	struct node *next;
};

struct pl_file {
	sqlite3_file base;
	struct node *node;
	uint64_t epoch; /* the power-on period it was opened in */
	int flags;
};

static struct {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	char root[PATH_MAX];
	size_t root_len;
	struct node *nodes;
	uint64_t epoch;
	bool off;
	uint64_t armed; /* operations left before the cut; 0: none armed */
	enum powerloss_mode mode;
	uint64_t seed;
	bool strict_dirs;
	struct powerloss_stats st;
} pl;

/* ---- the images -------------------------------------------------------------------- */

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (pl.seed += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	uint8_t *p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	memset(p + *cap, 0, n - *cap);
	*buf = p;
	*cap = n;
	return 0;
}

static void mark_dirty(struct node *n, size_t from, size_t to)
{
	if (from >= to)
		return;
	size_t lo = from / SECTOR, hi = (to + SECTOR - 1) / SECTOR;
	memset(n->dirty + lo, 1, hi - lo);
	if (n->dirty_lo >= n->dirty_hi) {
		n->dirty_lo = lo;
		n->dirty_hi = hi;
	} else {
		n->dirty_lo = lo < n->dirty_lo ? lo : n->dirty_lo;
		n->dirty_hi = hi > n->dirty_hi ? hi : n->dirty_hi;
	}
}

static void clear_dirty(struct node *n)
{
	if (n->dirty_lo < n->dirty_hi)
		memset(n->dirty + n->dirty_lo, 0, n->dirty_hi - n->dirty_lo);
	n->dirty_lo = n->dirty_hi = 0;
	n->whole = false;
}

static void count_size(void)
{
	uint64_t total = 0;
	for (struct node *n = pl.nodes; n; n = n->next)
		total += n->cur_len;
	if (total > pl.st.bytes_max)
		pl.st.bytes_max = total;
}

/* Sets the current length to len (zeros past the old one), marking what changed. */
static int set_len(struct node *n, size_t len)
{
	size_t sectors = (len + SECTOR - 1) / SECTOR + 1;
	if (grow(&n->cur, &n->cur_cap, len) || grow(&n->dirty, &n->dirty_cap, sectors))
		return -ENOMEM;
	if (len > n->cur_len) {
		memset(n->cur + n->cur_len, 0, len - n->cur_len);
		mark_dirty(n, n->cur_len, len);
	} else if (len < n->cur_len) {
		/* The sector that now ends the file changed too (its tail is gone). */
		mark_dirty(n, len, n->cur_len);
	}
	n->cur_len = len;
	return 0;
}

static int node_write(struct node *n, const void *buf, size_t len, size_t off)
{
	if (off + len > n->cur_len && set_len(n, off + len))
		return -ENOMEM;
	memcpy(n->cur + off, buf, len);
	mark_dirty(n, off, off + len);
	count_size();
	return 0;
}

/* What a flush of the cache does: the current image becomes the durable one. */
static int node_sync(struct node *n)
{
	if (grow(&n->dur, &n->dur_cap, n->cur_len))
		return -ENOMEM;
	if (n->whole) {
		memcpy(n->dur, n->cur, n->cur_len);
	} else {
		for (size_t i = n->dirty_lo; i < n->dirty_hi; i++) {
			size_t a = i * SECTOR, b = a + SECTOR;
			if (!n->dirty[i] || a >= n->cur_len)
				continue;
			b = b < n->cur_len ? b : n->cur_len;
			memcpy(n->dur + a, n->cur + a, b - a);
		}
	}
	n->dur_len = n->cur_len;
	n->dur_exists = n->exists;
	clear_dirty(n);
	return 0;
}

/* Back to the durable image; the bytes that differed are counted as dropped. */
static void node_revert(struct node *n)
{
	if (n->whole)
		pl.st.bytes_dropped += n->cur_len;
	for (size_t i = n->dirty_lo; !n->whole && i < n->dirty_hi; i++)
		if (n->dirty[i] && i * SECTOR < n->cur_len)
			pl.st.bytes_dropped += SECTOR;
	n->exists = n->dur_exists;
	n->cur_len = n->exists ? n->dur_len : 0;
	if (n->cur_len) /* cur_cap >= dur_len: a file is only synced at the length it had */
		memcpy(n->cur, n->dur, n->cur_len);
	n->dur_len = n->cur_len;
	clear_dirty(n);
}

/* POWERLOSS_TORN: each change since the sync reached the platter or did not, at random. */
static void node_tear(struct node *n)
{
	if (n->whole || n->exists != n->dur_exists) {
		if (rnd() & 1)
			node_sync(n); /* all of it was written back */
		else
			node_revert(n);
		return;
	}
	size_t old_len = n->cur_len;
	size_t len = n->cur_len != n->dur_len && (rnd() & 1) ? n->dur_len : n->cur_len;
	if (grow(&n->dur, &n->dur_cap, len) || grow(&n->cur, &n->cur_cap, len)) {
		node_revert(n);
		return;
	}
	/* Every byte where the images differ, or past either length, is in a dirty sector. */
	for (size_t i = n->dirty_lo; i < n->dirty_hi; i++) {
		size_t a = i * SECTOR, b = a + SECTOR;
		if (!n->dirty[i] || a >= len)
			continue;
		b = b < len ? b : len;
		bool keep = rnd() & 1;
		for (size_t k = a; k < b; k++) {
			uint8_t was = k < n->dur_len ? n->dur[k] : 0;
			/* Past a truncation that did not reach the disk, the old bytes are there.
			 */
			uint8_t now = k < old_len ? n->cur[k] : was;
			n->cur[k] = n->dur[k] = keep ? now : was;
		}
		if (!keep)
			pl.st.bytes_dropped += b - a;
	}
	n->cur_len = n->dur_len = len;
	clear_dirty(n);
}

/*
 * Shared memory of a connection the cut killed: SQLite reads and writes it through its own
 * pointers, not the VFS, until that connection is closed; so it is set aside, away from
 * the next connection, and freed when the last dead handle closes.
 */
static struct {
	void **regions;
	size_t n, cap;
	int dead_refs;
} grave;

static void grave_free(void)
{
	for (size_t i = 0; i < grave.n; i++)
		free(grave.regions[i]);
	free(grave.regions);
	grave.regions = NULL;
	grave.n = grave.cap = 0;
}

static void shm_bury(struct node *n)
{
	for (int i = 0; i < n->n_shm; i++) {
		if (grave.n == grave.cap) {
			size_t cap = grave.cap ? 2 * grave.cap : 16;
			void **p = realloc(grave.regions, cap * sizeof(*p));
			if (!p)
				abort(); /* a test helper: out of memory is the end of the test */
			grave.regions = p;
			grave.cap = cap;
		}
		grave.regions[grave.n++] = n->shm[i];
	}
	free(n->shm);
	n->shm = NULL;
	n->n_shm = 0;
}

static void shm_free(struct node *n)
{
	for (int i = 0; i < n->n_shm; i++)
		free(n->shm[i]);
	free(n->shm);
	n->shm = NULL;
	n->n_shm = 0;
}

static void do_cut(enum powerloss_mode mode, uint64_t seed)
{
	pl.seed = seed;
	for (struct node *n = pl.nodes; n; n = n->next) {
		if (mode == POWERLOSS_TORN)
			node_tear(n);
		else
			node_revert(n);
		shm_bury(n);
		grave.dead_refs += n->refs;
	}
	pl.epoch++;
	pl.off = true;
	pl.armed = 0;
	pl.st.cuts++;
}

/* Counts one operation on the disk; true if the power went off at it (it must fail). */
static bool op(void)
{
	pl.st.ops++;
	if (pl.armed && --pl.armed == 0)
		do_cut(pl.mode, pl.seed);
	return pl.off;
}

static struct node *find(const char *name)
{
	for (struct node *n = pl.nodes; n; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static bool on_disk(const char *name)
{
	return name && strncmp(name, pl.root, pl.root_len) == 0 && name[pl.root_len] == '/';
}

/* ---- the file methods ------------------------------------------------------------ */

static bool dead(const struct pl_file *f)
{
	return pl.off || f->epoch != pl.epoch;
}

static int pl_close(sqlite3_file *file)
{
	struct pl_file *f = (struct pl_file *)file;
	f->node->refs--;
	if (f->epoch != pl.epoch) {
		if (--grave.dead_refs == 0)
			grave_free();
	} else if (!pl.off && (f->flags & SQLITE_OPEN_DELETEONCLOSE)) {
		f->node->exists = false;
		f->node->whole = true;
		f->node->cur_len = 0;
	}
	return SQLITE_OK;
}

static int pl_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct pl_file *f = (struct pl_file *)file;
	struct node *n = f->node;
	size_t have;
	if (dead(f))
		return SQLITE_IOERR_READ;
	have = (size_t)off < n->cur_len ? n->cur_len - (size_t)off : 0;
	have = have < (size_t)amt ? have : (size_t)amt;
	if (have)
		memcpy(buf, n->cur + off, have);
	if (have < (size_t)amt) {
		memset((uint8_t *)buf + have, 0, (size_t)amt - have);
		return SQLITE_IOERR_SHORT_READ;
	}
	return SQLITE_OK;
}

static int pl_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct pl_file *f = (struct pl_file *)file;
	if (dead(f) || op())
		return SQLITE_IOERR_WRITE;
	return node_write(f->node, buf, (size_t)amt, (size_t)off) ? SQLITE_IOERR_NOMEM : SQLITE_OK;
}

static int pl_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct pl_file *f = (struct pl_file *)file;
	if (dead(f) || op())
		return SQLITE_IOERR_TRUNCATE;
	return set_len(f->node, (size_t)size) ? SQLITE_IOERR_NOMEM : SQLITE_OK;
}

/*
 * A journaling file system (ext4, XFS) commits its metadata in order: an fsync of one file
 * makes every earlier create and delete on the disk durable too (not their data).
 */
static void commit_dirs(void)
{
	for (struct node *n = pl.nodes; n; n = n->next) {
		if (!n->whole || n->exists == n->dur_exists)
			continue;
		n->dur_exists = n->exists;
		n->dur_len = 0; /* a deleted file, or a new one whose bytes are not synced */
		if (!n->exists)
			clear_dirty(n);
	}
}

static int pl_sync(sqlite3_file *file, int flags)
{
	struct pl_file *f = (struct pl_file *)file;
	(void)flags;
	if (dead(f) || op())
		return SQLITE_IOERR_FSYNC;
	pl.st.syncs++;
	if (!pl.strict_dirs)
		commit_dirs();
	return node_sync(f->node) ? SQLITE_IOERR_NOMEM : SQLITE_OK;
}

static int pl_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct pl_file *f = (struct pl_file *)file;
	if (dead(f))
		return SQLITE_IOERR_FSTAT;
	*size = (sqlite3_int64)f->node->cur_len;
	return SQLITE_OK;
}

static int pl_lock(sqlite3_file *file, int level)
{
	(void)level;
	return dead((struct pl_file *)file) ? SQLITE_IOERR_LOCK : SQLITE_OK;
}

/* Unlocking reaches no disk: it succeeds on a dead handle too, so closes finish. */
static int pl_unlock(sqlite3_file *file, int level)
{
	(void)file;
	(void)level;
	return SQLITE_OK;
}

static int pl_check_reserved(sqlite3_file *file, int *out)
{
	*out = 0;
	return dead((struct pl_file *)file) ? SQLITE_IOERR_CHECKRESERVEDLOCK : SQLITE_OK;
}

static int pl_file_control(sqlite3_file *file, int op_code, void *arg)
{
	(void)file;
	(void)op_code;
	(void)arg;
	return SQLITE_NOTFOUND;
}

static int pl_sector_size(sqlite3_file *file)
{
	(void)file;
	return SECTOR;
}

/* As the unix VFS says by default: a sector write disturbs no other sector. */
static int pl_device(sqlite3_file *file)
{
	(void)file;
	return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int pl_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **pp)
{
	struct pl_file *f = (struct pl_file *)file;
	struct node *n = f->node;
	*pp = NULL;
	if (dead(f))
		return SQLITE_IOERR_SHMMAP;
	if (region >= n->n_shm) {
		if (!extend)
			return SQLITE_OK;
		void **p = realloc(n->shm, (size_t)(region + 1) * sizeof(*p));
		if (!p)
			return SQLITE_IOERR_NOMEM;
		n->shm = p;
		for (; n->n_shm <= region; n->n_shm++) {
			n->shm[n->n_shm] = calloc(1, (size_t)size);
			if (!n->shm[n->n_shm])
				return SQLITE_IOERR_NOMEM;
		}
		n->shm_size = size;
	}
	*pp = n->shm[region];
	return SQLITE_OK;
}

static int pl_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	(void)offset;
	(void)n;
	(void)flags;
	return dead((struct pl_file *)file) ? SQLITE_IOERR_SHMLOCK : SQLITE_OK;
}

static void pl_shm_barrier(sqlite3_file *file)
{
	(void)file;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static int pl_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct pl_file *f = (struct pl_file *)file;
	if (!dead(f) && delete_flag)
		shm_free(f->node);
	return SQLITE_OK;
}

static const sqlite3_io_methods pl_io = {
    .iVersion = 2,
    .xClose = pl_close,
    .xRead = pl_read,
    .xWrite = pl_write,
    .xTruncate = pl_truncate,
    .xSync = pl_sync,
    .xFileSize = pl_file_size,
    .xLock = pl_lock,
    .xUnlock = pl_unlock,
    .xCheckReservedLock = pl_check_reserved,
    .xFileControl = pl_file_control,
    .xSectorSize = pl_sector_size,
    .xDeviceCharacteristics = pl_device,
    .xShmMap = pl_shm_map,
    .xShmLock = pl_shm_lock,
    .xShmBarrier = pl_shm_barrier,
    .xShmUnmap = pl_shm_unmap,
};

/* ---- the VFS --------------------------------------------------------------------- */

static struct node *node_new(const char *name)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)) || grow(&n->dirty, &n->dirty_cap, 1)) {
		if (n)
			free(n->name);
		free(n);
		return NULL;
	}
	n->next = pl.nodes;
	pl.nodes = n;
	return n;
}

static int pl_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
		   int *out_flags)
{
	struct pl_file *f = (struct pl_file *)file;
	struct node *n;
	(void)vfs;
	if (!on_disk(name))
		return pl.real->xOpen(pl.real, name, file, flags, out_flags);
	file->pMethods = NULL;
	if (pl.off)
		return SQLITE_CANTOPEN;
	n = find(name);
	if (n && n->exists && (flags & SQLITE_OPEN_EXCLUSIVE))
		return SQLITE_CANTOPEN;
	if (!n && !(flags & SQLITE_OPEN_CREATE) && access(name, F_OK) == 0) {
		/*
		 * store_open makes the database file itself (open(2), 0600) before SQLite
		 * sees it: an empty file, taken as durable (it holds nothing to lose).
		 */
		n = node_new(name);
		if (!n)
			return SQLITE_NOMEM;
		n->exists = n->dur_exists = true;
	}
	if (!n || !n->exists) {
		if (!(flags & SQLITE_OPEN_CREATE))
			return SQLITE_CANTOPEN;
		if (!n && !(n = node_new(name)))
			return SQLITE_NOMEM;
		/* A new directory entry, durable at the file's first sync. */
		n->exists = true;
		n->cur_len = 0;
		n->whole = true;
	}
	n->refs++;
	f->node = n;
	f->epoch = pl.epoch;
	f->flags = flags;
	file->pMethods = &pl_io;
	if (out_flags)
		*out_flags = flags;
	return SQLITE_OK;
}

static int pl_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	struct node *n;
	(void)vfs;
	if (!on_disk(name))
		return pl.real->xDelete(pl.real, name, sync_dir);
	if (pl.off || op())
		return SQLITE_IOERR_DELETE;
	n = find(name);
	if (!n || !n->exists)
		return SQLITE_IOERR_DELETE_NOENT;
	n->exists = false;
	n->cur_len = 0;
	n->whole = true;
	if (sync_dir) {
		n->dur_exists = false;
		n->dur_len = 0;
		clear_dirty(n);
	}
	return SQLITE_OK;
}

static int pl_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	struct node *n;
	(void)vfs;
	if (!on_disk(name))
		return pl.real->xAccess(pl.real, name, flags, out);
	if (pl.off)
		return SQLITE_IOERR_ACCESS;
	n = find(name);
	*out = n && n->exists;
	return SQLITE_OK;
}

static int pl_full_pathname(sqlite3_vfs *vfs, const char *name, int n_out, char *out)
{
	(void)vfs;
	return pl.real->xFullPathname(pl.real, name, n_out, out);
}

static void *pl_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return pl.real->xDlOpen(pl.real, name);
}

static void pl_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	pl.real->xDlError(pl.real, n, msg);
}

static void (*pl_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return pl.real->xDlSym(pl.real, h, sym);
}

static void pl_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	pl.real->xDlClose(pl.real, h);
}

static int pl_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return pl.real->xRandomness(pl.real, n, out);
}

static int pl_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return pl.real->xSleep(pl.real, us);
}

static int pl_current_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return pl.real->xCurrentTime(pl.real, t);
}

static int pl_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	return pl.real->xGetLastError ? pl.real->xGetLastError(pl.real, n, msg) : 0;
}

static int pl_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	double d;
	int rc;
	(void)vfs;
	if (pl.real->iVersion >= 2 && pl.real->xCurrentTimeInt64)
		return pl.real->xCurrentTimeInt64(pl.real, t);
	rc = pl.real->xCurrentTime(pl.real, &d);
	*t = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

int powerloss_vfs_register(const char *root)
{
	if (pl.real)
		return -EALREADY;
	if (!realpath(root, pl.root))
		return -errno;
	pl.root_len = strlen(pl.root);
	if (sqlite3_initialize() != SQLITE_OK || !(pl.real = sqlite3_vfs_find(NULL)))
		return -EIO;
	pl.vfs = (sqlite3_vfs){
	    .iVersion = 2,
	    .szOsFile = pl.real->szOsFile > (int)sizeof(struct pl_file)
			    ? pl.real->szOsFile
			    : (int)sizeof(struct pl_file),
	    .mxPathname = pl.real->mxPathname,
	    .zName = "powerloss",
	    .xOpen = pl_open,
	    .xDelete = pl_delete,
	    .xAccess = pl_access,
	    .xFullPathname = pl_full_pathname,
	    .xDlOpen = pl_dl_open,
	    .xDlError = pl_dl_error,
	    .xDlSym = pl_dl_sym,
	    .xDlClose = pl_dl_close,
	    .xRandomness = pl_randomness,
	    .xSleep = pl_sleep,
	    .xCurrentTime = pl_current_time,
	    .xGetLastError = pl_last_error,
	    .xCurrentTimeInt64 = pl_current_time64,
	};
	if (sqlite3_vfs_register(&pl.vfs, 1) != SQLITE_OK) {
		pl.real = NULL;
		return -EIO;
	}
	return 0;
}

void powerloss_vfs_arm(uint64_t ops, enum powerloss_mode mode, uint64_t seed)
{
	pl.armed = ops;
	pl.mode = mode;
	pl.seed = seed;
}

void powerloss_vfs_cut(enum powerloss_mode mode, uint64_t seed)
{
	do_cut(mode, seed);
}

void powerloss_vfs_strict_dirs(bool on)
{
	pl.strict_dirs = on;
}

bool powerloss_vfs_is_off(void)
{
	return pl.off;
}

void powerloss_vfs_restore(void)
{
	pl.off = false;
}

int powerloss_vfs_forget(void)
{
	for (struct node *n = pl.nodes; n; n = n->next)
		if (n->refs)
			return -EBUSY;
	grave_free();
	grave.dead_refs = 0;
	while (pl.nodes) {
		struct node *n = pl.nodes;
		pl.nodes = n->next;
		shm_free(n);
		free(n->name);
		free(n->cur);
		free(n->dur);
		free(n->dirty);
		free(n);
	}
	return 0;
}

void powerloss_vfs_stats(struct powerloss_stats *out)
{
	*out = pl.st;
}
