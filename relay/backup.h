/* What a node backup holds inside its sealed stream: file records, then an end record. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A record is a head (type, name length as a big-endian u16, size as a big-endian u64,
 * the name) and, for a file, size bytes of content. The end record has no name and
 * gives the number of files before it, so a stream cut at a record boundary is caught
 * even if its last chunk were somehow marked final. docs/backup.md has the layout.
 */
#define BACKUP_REC_FILE 'F'
#define BACKUP_REC_END	'E'
#define BACKUP_HEAD_LEN 11
#define BACKUP_NAME_MAX 200
/* A file larger than this is no file of a node home (a payload is at most a few GiB). */
#define BACKUP_FILE_MAX (UINT64_C(1) << 44)

/*
 * The names a backup may hold, which are the only paths restore writes: identity.key,
 * tern.conf, store.db, and plain file names (letters, digits, '.', '-', '_'; not starting
 * with '.') under store.db-payloads/, sbd/ or sbd-out/.
 */
bool backup_name_ok(const char *name);

/* Encodes a record head into out (BACKUP_HEAD_LEN + strlen(name) bytes, returned). */
size_t backup_head(uint8_t *out, char type, const char *name, uint64_t size);

struct backup_reader_ops {
	/* A file record starts. Non-zero stops the reader and is returned by push. */
	int (*file_begin)(void *ctx, const char *name, uint64_t size);
	int (*file_data)(void *ctx, const uint8_t *buf, size_t len);
	int (*file_end)(void *ctx);
};

/* Push-style: the caller owns the I/O and the decryption; a fuzzer drives it directly. */
struct backup_reader {
	uint8_t head[BACKUP_HEAD_LEN + BACKUP_NAME_MAX + 1];
	size_t have;   /* bytes of head gathered */
	uint64_t left; /* content bytes still due for the current file */
	bool in_file;
	bool ended;
	uint64_t files;
	const char *err; /* why the stream was refused, in words */
};

void backup_reader_init(struct backup_reader *r);
/*
 * Feeds decrypted bytes. 0; -EBADMSG with r->err set (a bad record, a name restore would
 * not write, bytes after the end record); or what an op returned.
 */
int backup_reader_push(struct backup_reader *r, const uint8_t *buf, size_t len,
		       const struct backup_reader_ops *ops, void *ctx);
/* At the end of the stream: 0 if the end record came, else -EBADMSG with r->err. */
int backup_reader_finish(struct backup_reader *r);
