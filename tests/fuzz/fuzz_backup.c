/* Fuzz target for the records inside a node backup: the only paths restore would write. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/backup.h"

/*
 * Properties checked on every input:
 * 1. Every name given to file_begin is one backup_name_ok accepts: no ".." component, no
 *    absolute path, at most one directory, nothing outside the node home's own files.
 * 2. Data arrives only inside a file, and a file ends after exactly its announced size.
 * 3. The verdict does not depend on how the stream is cut into pushes: whole, or in
 *    pieces of a size taken from the first byte, gives the same events and result.
 * A violated property aborts, which the fuzzer reports as a crash.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct log {
	uint64_t hash; /* of every event, in order */
	uint64_t left;
	bool in_file;
};

static void mix(struct log *l, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		l->hash = (l->hash ^ b[i]) * 0x100000001b3ull;
}

static int begin(void *ctx, const char *name, uint64_t size)
{
	struct log *l = ctx;
	const char *slash = strchr(name, '/');
	/* One directory at most, and no component "." or ".." (or hidden). */
	if (l->in_file || !backup_name_ok(name) || name[0] == '/' || name[0] == '.' ||
	    (slash && (strchr(slash + 1, '/') || slash[1] == '.' || slash[1] == '\0')))
		abort();
	mix(l, "B", 1);
	mix(l, name, strlen(name));
	mix(l, &size, sizeof(size));
	l->left = size;
	l->in_file = true;
	return 0;
}

static int data_cb(void *ctx, const uint8_t *buf, size_t len)
{
	struct log *l = ctx;
	if (!l->in_file || len == 0 || len > l->left)
		abort();
	l->left -= len;
	mix(l, buf, len);
	return 0;
}

static int end(void *ctx)
{
	struct log *l = ctx;
	if (!l->in_file || l->left != 0)
		abort();
	l->in_file = false;
	mix(l, "E", 1);
	return 0;
}

static const struct backup_reader_ops ops = {begin, data_cb, end};

static int feed(const uint8_t *data, size_t size, size_t piece, struct log *l)
{
	struct backup_reader r;
	backup_reader_init(&r);
	int ret = 0;
	for (size_t off = 0; off < size && ret == 0; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		ret = backup_reader_push(&r, data + off, n, &ops, l);
	}
	if (ret == 0)
		ret = backup_reader_finish(&r);
	if (ret != 0 && (ret != -EBADMSG || !r.err))
		abort();
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] % 17 + 1;
	struct log whole = {0}, pieces = {0};
	int a = feed(data + 1, size - 1, size, &whole);
	int b = feed(data + 1, size - 1, piece, &pieces);
	if (a != b || whole.hash != pieces.hash)
		abort();
	return 0;
}
