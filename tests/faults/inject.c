/* Fault injection for tests: a VFS shim, SQLite's allocator and --wrap'ed libc calls, counted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "tests/faults/inject.h"

static bool scope;
static uint64_t counts[INJECT_KINDS];
static enum inject_kind armed_kind;
static uint64_t armed_at;
static bool fired;
static const char *fired_what = "";
static bool full;    /* writes fail as on a full disk (ENOSPC, SQLITE_FULL), not EIO */
static bool persist; /* every call of the kind from the armed one on fails, not it alone */

void inject_persist(bool on)
{
	persist = on;
}

void inject_full(bool on)
{
	full = on;
}

const char *inject_kind_name(enum inject_kind k)
{
	static const char *names[INJECT_KINDS] = {"sqlite-io", "tern-io", "tern-alloc",
						  "sqlite-alloc"};
	return k < INJECT_KINDS ? names[k] : "?";
}

void inject_arm(enum inject_kind k, uint64_t fail_at)
{
	memset(counts, 0, sizeof(counts));
	armed_kind = k;
	armed_at = fail_at;
	fired = false;
	fired_what = "";
}

bool inject_scope(bool on)
{
	bool was = scope;
	scope = on;
	return was;
}

uint64_t inject_count(enum inject_kind k)
{
	return k < INJECT_KINDS ? counts[k] : 0;
}

bool inject_fired(void)
{
	return fired;
}

const char *inject_fired_what(void)
{
	return fired_what;
}

/* Counts one call of kind k; true if it is the one to fail. */
static bool hit(enum inject_kind k, const char *what)
{
	if (!scope)
		return false;
	counts[k]++;
	if (k != armed_kind || !armed_at || counts[k] < armed_at ||
	    (counts[k] > armed_at && !persist))
		return false;
	if (!fired)
		fired_what = what;
	fired = true;
	return true;
}

/* ---- tern's allocations: -Wl,--wrap=malloc,... ------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__real_sodium_malloc(size_t n);
void *__real_sodium_allocarray(size_t k, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
void *__wrap_sodium_malloc(size_t n);
void *__wrap_sodium_allocarray(size_t k, size_t n);

void *__wrap_malloc(size_t n)
{
	return hit(INJECT_TERN_ALLOC, "malloc") ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
	return hit(INJECT_TERN_ALLOC, "calloc") ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
	return hit(INJECT_TERN_ALLOC, "realloc") ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
	return hit(INJECT_TERN_ALLOC, "aligned_alloc") ? NULL : __real_aligned_alloc(align, n);
}

void *__wrap_sodium_malloc(size_t n)
{
	if (hit(INJECT_TERN_ALLOC, "sodium_malloc")) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_sodium_malloc(n);
}

void *__wrap_sodium_allocarray(size_t k, size_t n)
{
	if (hit(INJECT_TERN_ALLOC, "sodium_allocarray")) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_sodium_allocarray(k, n);
}

/* ---- tern's file calls: -Wl,--wrap=pwrite64,... (the build has _FILE_OFFSET_BITS=64) ------- */

#define FAIL_IO(name)                                                                              \
	do {                                                                                       \
		if (hit(INJECT_TERN_IO, name)) {                                                   \
			errno = EIO;                                                               \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)
/* A call that writes: EIO, or ENOSPC when the disk is to be full. */
#define FAIL_WRITE(name)                                                                           \
	do {                                                                                       \
		if (hit(INJECT_TERN_IO, name)) {                                                   \
			errno = full ? ENOSPC : EIO;                                               \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

int __real_open64(const char *path, int flags, ...);
int __real_openat64(int dfd, const char *path, int flags, ...);
ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t off);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
int __real_ftruncate64(int fd, off_t len);
int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __real_renameat(int a, const char *from, int b, const char *to);
int __real_renameat2(int a, const char *from, int b, const char *to, unsigned flags);
int __real_linkat(int a, const char *from, int b, const char *to, int flags);
int __real_unlinkat(int dfd, const char *path, int flags);
int __real_mkdir(const char *path, mode_t mode);
int __real_close(int fd);
int __real_flock(int fd, int op);
int __real_fstat64(int fd, struct stat *st);
int __real_fstatat64(int dfd, const char *path, struct stat *st, int flags);
int __real_stat64(const char *path, struct stat *st);
int __real_fstatvfs64(int fd, struct statvfs *st);
ssize_t __real_getrandom(void *buf, size_t n, unsigned flags);
DIR *__real_fdopendir(int fd);
int __real_faccessat(int dfd, const char *path, int mode, int flags);
int __real_chmod(const char *path, mode_t mode);

int __wrap_open64(const char *path, int flags, ...);
int __wrap_openat64(int dfd, const char *path, int flags, ...);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off);
int __wrap_fsync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_ftruncate64(int fd, off_t len);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_renameat(int a, const char *from, int b, const char *to);
int __wrap_renameat2(int a, const char *from, int b, const char *to, unsigned flags);
int __wrap_linkat(int a, const char *from, int b, const char *to, int flags);
int __wrap_unlinkat(int dfd, const char *path, int flags);
int __wrap_mkdir(const char *path, mode_t mode);
int __wrap_close(int fd);
int __wrap_flock(int fd, int op);
int __wrap_fstat64(int fd, struct stat *st);
int __wrap_fstatat64(int dfd, const char *path, struct stat *st, int flags);
int __wrap_stat64(const char *path, struct stat *st);
int __wrap_fstatvfs64(int fd, struct statvfs *st);
ssize_t __wrap_getrandom(void *buf, size_t n, unsigned flags);
DIR *__wrap_fdopendir(int fd);
int __wrap_faccessat(int dfd, const char *path, int mode, int flags);
int __wrap_chmod(const char *path, mode_t mode);

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int __wrap_open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	FAIL_IO("open");
	return __real_open64(path, flags, mode);
}

int __wrap_openat64(int dfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	FAIL_IO("openat");
	return __real_openat64(dfd, path, flags, mode);
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
	FAIL_IO("read");
	return __real_read(fd, buf, n);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
	FAIL_WRITE("write");
	return __real_write(fd, buf, n);
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
	FAIL_IO("pread");
	return __real_pread64(fd, buf, n, off);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	FAIL_WRITE("pwrite");
	return __real_pwrite64(fd, buf, n, off);
}

int __wrap_fsync(int fd)
{
	FAIL_IO("fsync");
	return __real_fsync(fd);
}

int __wrap_fdatasync(int fd)
{
	FAIL_IO("fdatasync");
	return __real_fdatasync(fd);
}

int __wrap_ftruncate64(int fd, off_t len)
{
	FAIL_IO("ftruncate");
	return __real_ftruncate64(fd, len);
}

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
	FAIL_WRITE("fallocate");
	return __real_fallocate64(fd, mode, off, len);
}

int __wrap_renameat(int a, const char *from, int b, const char *to)
{
	FAIL_IO("renameat");
	return __real_renameat(a, from, b, to);
}

int __wrap_renameat2(int a, const char *from, int b, const char *to, unsigned flags)
{
	FAIL_IO("renameat2");
	return __real_renameat2(a, from, b, to, flags);
}

int __wrap_linkat(int a, const char *from, int b, const char *to, int flags)
{
	FAIL_IO("linkat");
	return __real_linkat(a, from, b, to, flags);
}

int __wrap_unlinkat(int dfd, const char *path, int flags)
{
	FAIL_IO("unlinkat");
	return __real_unlinkat(dfd, path, flags);
}

int __wrap_mkdir(const char *path, mode_t mode)
{
	FAIL_IO("mkdir");
	return __real_mkdir(path, mode);
}

int __wrap_close(int fd)
{
	/* As Linux does: the descriptor is closed all the same. */
	int ret = __real_close(fd);
	FAIL_IO("close");
	return ret;
}

int __wrap_flock(int fd, int op)
{
	FAIL_IO("flock");
	return __real_flock(fd, op);
}

int __wrap_fstat64(int fd, struct stat *st)
{
	FAIL_IO("fstat");
	return __real_fstat64(fd, st);
}

int __wrap_fstatat64(int dfd, const char *path, struct stat *st, int flags)
{
	FAIL_IO("fstatat");
	return __real_fstatat64(dfd, path, st, flags);
}

int __wrap_stat64(const char *path, struct stat *st)
{
	FAIL_IO("stat");
	return __real_stat64(path, st);
}

int __wrap_fstatvfs64(int fd, struct statvfs *st)
{
	FAIL_IO("fstatvfs");
	return __real_fstatvfs64(fd, st);
}

ssize_t __wrap_getrandom(void *buf, size_t n, unsigned flags)
{
	FAIL_IO("getrandom");
	return __real_getrandom(buf, n, flags);
}

DIR *__wrap_fdopendir(int fd)
{
	if (hit(INJECT_TERN_IO, "fdopendir")) {
		errno = EIO;
		return NULL;
	}
	return __real_fdopendir(fd);
}

int __wrap_faccessat(int dfd, const char *path, int mode, int flags)
{
	FAIL_IO("faccessat");
	return __real_faccessat(dfd, path, mode, flags);
}

int __wrap_chmod(const char *path, mode_t mode)
{
	FAIL_IO("chmod");
	return __real_chmod(path, mode);
}

/* ---- SQLite's allocations: SQLITE_CONFIG_MALLOC over the default methods ------------------ */

static sqlite3_mem_methods mem_real;

static void *mem_malloc(int n)
{
	return hit(INJECT_SQLITE_ALLOC, "sqlite3 xMalloc") ? NULL : mem_real.xMalloc(n);
}

static void mem_free(void *p)
{
	mem_real.xFree(p);
}

static void *mem_realloc(void *p, int n)
{
	return hit(INJECT_SQLITE_ALLOC, "sqlite3 xRealloc") ? NULL : mem_real.xRealloc(p, n);
}

static int mem_size(void *p)
{
	return mem_real.xSize(p);
}

static int mem_roundup(int n)
{
	return mem_real.xRoundup(n);
}

static int mem_init(void *ctx)
{
	(void)ctx;
	return mem_real.xInit(mem_real.pAppData);
}

static void mem_shutdown(void *ctx)
{
	(void)ctx;
	mem_real.xShutdown(mem_real.pAppData);
}

static const sqlite3_mem_methods mem_shim = {
    mem_malloc, mem_free, mem_realloc, mem_size, mem_roundup, mem_init, mem_shutdown, NULL,
};

/* ---- SQLite's file calls: a VFS over "unix" ----------------------------------------------- */

struct shim_file {
	sqlite3_file base;
	sqlite3_file *real; /* follows this struct in the same allocation */
};

static sqlite3_vfs *vfs_real;
static sqlite3_io_methods io_shim;

#define REAL(f) (((struct shim_file *)(f))->real)
#define FAIL_SQL(name, rc)                                                                         \
	do {                                                                                       \
		if (hit(INJECT_SQLITE_IO, name))                                                   \
			return rc;                                                                 \
	} while (0)

static int f_close(sqlite3_file *f)
{
	sqlite3_file *r = REAL(f);
	int rc = r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
	FAIL_SQL("xClose", SQLITE_IOERR_CLOSE);
	return rc;
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	FAIL_SQL("xRead", SQLITE_IOERR_READ);
	return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	FAIL_SQL("xWrite", full ? SQLITE_FULL : SQLITE_IOERR_WRITE);
	return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	FAIL_SQL("xTruncate", SQLITE_IOERR_TRUNCATE);
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
	FAIL_SQL("xSync", SQLITE_IOERR_FSYNC);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	FAIL_SQL("xFileSize", SQLITE_IOERR_FSTAT);
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int level)
{
	FAIL_SQL("xLock", SQLITE_IOERR_LOCK);
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int f_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int f_check_reserved(sqlite3_file *f, int *out)
{
	FAIL_SQL("xCheckReservedLock", SQLITE_IOERR_CHECKRESERVEDLOCK);
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_device(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
	FAIL_SQL("xShmMap", SQLITE_IOERR_SHMMAP);
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
	struct shim_file *sf = (struct shim_file *)f;
	(void)v;
	sf->base.pMethods = NULL;
	sf->real = (sqlite3_file *)(sf + 1);
	if (hit(INJECT_SQLITE_IO, "xOpen"))
		return SQLITE_CANTOPEN;
	int rc = vfs_real->xOpen(vfs_real, name, sf->real, flags, out_flags);
	if (sf->real->pMethods)
		sf->base.pMethods = &io_shim;
	return rc;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
	(void)v;
	FAIL_SQL("xDelete", SQLITE_IOERR_DELETE);
	return vfs_real->xDelete(vfs_real, name, sync_dir);
}

static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	FAIL_SQL("xAccess", SQLITE_IOERR_ACCESS);
	return vfs_real->xAccess(vfs_real, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	return vfs_real->xFullPathname(vfs_real, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *v, const char *name)
{
	(void)v;
	return vfs_real->xDlOpen(vfs_real, name);
}

static void v_dlerror(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	vfs_real->xDlError(vfs_real, n, out);
}

static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	(void)v;
	return vfs_real->xDlSym(vfs_real, h, sym);
}

static void v_dlclose(sqlite3_vfs *v, void *h)
{
	(void)v;
	vfs_real->xDlClose(vfs_real, h);
}

static int v_randomness(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return vfs_real->xRandomness(vfs_real, n, out);
}

static int v_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return vfs_real->xSleep(vfs_real, us);
}

static int v_current_time(sqlite3_vfs *v, double *out)
{
	(void)v;
	return vfs_real->xCurrentTime(vfs_real, out);
}

static int v_last_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return vfs_real->xGetLastError(vfs_real, n, out);
}

static int v_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
	(void)v;
	return vfs_real->xCurrentTimeInt64(vfs_real, out);
}

static sqlite3_vfs vfs_shim;

int inject_init(void)
{
	/* The allocator first: SQLite takes it only before it initializes. */
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &mem_real) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem_shim) != SQLITE_OK)
		return -1;
	vfs_real = sqlite3_vfs_find("unix");
	if (!vfs_real || vfs_real->iVersion < 2)
		return -1;
	io_shim = (sqlite3_io_methods){
	    .iVersion = 3,
	    .xClose = f_close,
	    .xRead = f_read,
	    .xWrite = f_write,
	    .xTruncate = f_truncate,
	    .xSync = f_sync,
	    .xFileSize = f_file_size,
	    .xLock = f_lock,
	    .xUnlock = f_unlock,
	    .xCheckReservedLock = f_check_reserved,
	    .xFileControl = f_file_control,
	    .xSectorSize = f_sector_size,
	    .xDeviceCharacteristics = f_device,
	    .xShmMap = f_shm_map,
	    .xShmLock = f_shm_lock,
	    .xShmBarrier = f_shm_barrier,
	    .xShmUnmap = f_shm_unmap,
	    .xFetch = f_fetch,
	    .xUnfetch = f_unfetch,
	};
	vfs_shim = (sqlite3_vfs){
	    .iVersion = 2,
	    .szOsFile = (int)sizeof(struct shim_file) + vfs_real->szOsFile,
	    .mxPathname = vfs_real->mxPathname,
	    .zName = "inject",
	    .xOpen = v_open,
	    .xDelete = v_delete,
	    .xAccess = v_access,
	    .xFullPathname = v_full_pathname,
	    .xDlOpen = v_dlopen,
	    .xDlError = v_dlerror,
	    .xDlSym = v_dlsym,
	    .xDlClose = v_dlclose,
	    .xRandomness = v_randomness,
	    .xSleep = v_sleep,
	    .xCurrentTime = v_current_time,
	    .xGetLastError = v_last_error,
	    .xCurrentTimeInt64 = v_current_time64,
	};
	return sqlite3_vfs_register(&vfs_shim, 1) == SQLITE_OK ? 0 : -1;
}
