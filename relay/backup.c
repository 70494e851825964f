/* The records inside a node backup: heads encoded, and a push-style reader that checks them. */
#include <errno.h>
#include <string.h>

#include "relay/backup.h"

static bool plain_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

bool backup_name_ok(const char *name)
{
	static const char *const top[] = {"identity.key", "tern.conf", "store.db"};
	static const char *const dirs[] = {"store.db-payloads/", "sbd/", "sbd-out/"};
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		if (strcmp(name, top[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		size_t n = strlen(dirs[i]);
		if (strncmp(name, dirs[i], n) == 0)
			return plain_name(name + n);
	}
	return false;
}

size_t backup_head(uint8_t *out, char type, const char *name, uint64_t size)
{
	size_t n = strlen(name);
	out[0] = (uint8_t)type;
	out[1] = (uint8_t)(n >> 8);
	out[2] = (uint8_t)n;
	for (int i = 0; i < 8; i++)
		out[3 + i] = (uint8_t)(size >> (56 - 8 * i));
	memcpy(out + BACKUP_HEAD_LEN, name, n);
	return BACKUP_HEAD_LEN + n;
}

void backup_reader_init(struct backup_reader *r)
{
	memset(r, 0, sizeof(*r));
}

static int refuse(struct backup_reader *r, const char *why)
{
	r->err = why;
	return -EBADMSG;
}

/* A whole head is in r->head: start the file, or take the end. */
static int take_head(struct backup_reader *r, const struct backup_reader_ops *ops, void *ctx)
{
	size_t n = (size_t)r->head[1] << 8 | r->head[2];
	uint64_t size = 0;
	for (int i = 0; i < 8; i++)
		size = size << 8 | r->head[3 + i];
	r->have = 0;
	if (r->head[0] == BACKUP_REC_END) {
		if (n != 0 || size != r->files)
			return refuse(r, "the end record does not match the files before it");
		r->ended = true;
		return 0;
	}
	char name[BACKUP_NAME_MAX + 1];
	memcpy(name, r->head + BACKUP_HEAD_LEN, n);
	name[n] = '\0';
	if (strlen(name) != n || !backup_name_ok(name))
		return refuse(r, "a file name that is no part of a node home");
	if (size > BACKUP_FILE_MAX)
		return refuse(r, "a file record too large to be real");
	int ret = ops->file_begin(ctx, name, size);
	if (ret)
		return ret;
	r->files++;
	r->left = size;
	r->in_file = true;
	if (size == 0) {
		r->in_file = false;
		return ops->file_end(ctx);
	}
	return 0;
}

int backup_reader_push(struct backup_reader *r, const uint8_t *buf, size_t len,
		       const struct backup_reader_ops *ops, void *ctx)
{
	while (len) {
		int ret;
		if (r->ended)
			return refuse(r, "bytes after the end record");
		if (r->in_file) {
			size_t n = r->left < len ? (size_t)r->left : len;
			if ((ret = ops->file_data(ctx, buf, n)) != 0)
				return ret;
			buf += n;
			len -= n;
			r->left -= n;
			if (r->left == 0) {
				r->in_file = false;
				if ((ret = ops->file_end(ctx)) != 0)
					return ret;
			}
			continue;
		}
		/* The head's fixed part, then its name. */
		size_t want = BACKUP_HEAD_LEN;
		if (r->have >= BACKUP_HEAD_LEN) {
			if (r->head[0] != BACKUP_REC_FILE && r->head[0] != BACKUP_REC_END)
				return refuse(r, "an unknown record type");
			size_t n = (size_t)r->head[1] << 8 | r->head[2];
			if (n > BACKUP_NAME_MAX)
				return refuse(r, "a file name longer than any in a node home");
			want += n;
		}
		size_t n = want - r->have < len ? want - r->have : len;
		memcpy(r->head + r->have, buf, n);
		r->have += n;
		buf += n;
		len -= n;
		if (r->have == want && want > BACKUP_HEAD_LEN) {
			if ((ret = take_head(r, ops, ctx)) != 0)
				return ret;
		} else if (r->have == BACKUP_HEAD_LEN && r->head[1] == 0 && r->head[2] == 0) {
			/* No name: the head is whole already. */
			if ((ret = take_head(r, ops, ctx)) != 0)
				return ret;
		}
	}
	return 0;
}

int backup_reader_finish(struct backup_reader *r)
{
	if (!r->ended)
		return refuse(r, "it ends before its end record (cut short)");
	return 0;
}
