/* Encodes and strictly parses the manifest and receipt bodies a stick carries (no I/O). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "transports/stick_format.h"

static const uint8_t manifest_magic[4] = {'T', 'M', 'A', 'N'};
static const uint8_t receipt_magic[4] = {'T', 'R', 'C', 'P'};

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int set_why(const char **why, const char *reason, int err)
{
	if (why)
		*why = reason;
	return err;
}

static int cmp_key(const void *a, const void *b, void *keylen)
{
	return memcmp(a, b, *(size_t *)keylen);
}

/* Sorts n records of stride bytes by their first keylen bytes; false if two share a key. */
static bool sort_unique(uint8_t *recs, size_t n, size_t stride, size_t keylen)
{
	if (n > 1)
		qsort_r(recs, n, stride, cmp_key, &keylen);
	for (size_t i = 1; i < n; i++)
		if (memcmp(recs + (i - 1) * stride, recs + i * stride, keylen) == 0)
			return false;
	return true;
}

/* Magic first, then the version: a newer body may have any layout after its first 5 bytes. */
static int check_magic(const uint8_t *buf, size_t len, const uint8_t magic[4], size_t head,
		       const char **why)
{
	if (len < 4)
		return set_why(why, "truncated", -EBADMSG);
	if (memcmp(buf, magic, 4) != 0)
		return set_why(why, "wrong magic (not this kind of body)", -EBADMSG);
	if (len < 5)
		return set_why(why, "truncated", -EBADMSG);
	if (buf[4] != STICK_FORMAT_VERSION)
		return set_why(why, "unknown version (written by a newer tern?)", -ENOTSUP);
	if (len < head)
		return set_why(why, "truncated head", -EBADMSG);
	return 0;
}

/* The count is bounded, and the length must be exactly head + count * stride. */
static long check_count(const uint8_t *buf, size_t len, size_t head, size_t count_at, size_t stride,
			const char **why)
{
	uint64_t count = get_be(buf + count_at, 4);

	if (count > STICK_LIST_MAX)
		return set_why(why, "too many entries", -EFBIG);
	uint64_t want = head + count * stride;
	if (len < want)
		return set_why(why, "truncated: shorter than its count says", -EBADMSG);
	if (len > want)
		return set_why(why, "trailing bytes after the last entry", -EBADMSG);
	return (long)count;
}

/* Strictly increasing keys: a duplicate is the same key twice in a row. */
static int check_order(const uint8_t *recs, size_t n, size_t stride, size_t keylen, const char *dup,
		       const char **why)
{
	for (size_t i = 1; i < n; i++) {
		int c = memcmp(recs + (i - 1) * stride, recs + i * stride, keylen);
		if (c == 0)
			return set_why(why, dup, -EBADMSG);
		if (c > 0)
			return set_why(why, "entries not in id order", -EBADMSG);
	}
	return 0;
}

int stick_manifest_encode(const struct stick_manifest *m, const struct stick_manifest_entry *e,
			  size_t n, uint8_t **out, size_t *outlen)
{
	if (n > STICK_LIST_MAX)
		return -EFBIG;
	if (n > 0 && !e)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (e[i].size == 0 || e[i].size > STICK_BUNDLE_MAX)
			return -EINVAL;

	size_t len = STICK_MANIFEST_HEAD + n * STICK_MANIFEST_ENTRY;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, manifest_magic, 4);
	buf[4] = STICK_FORMAT_VERSION;
	put_be(buf + 5, m->node, 8);
	put_be(buf + 13, m->created_ms, 8);
	put_be(buf + 21, n, 4);
	uint8_t *recs = buf + STICK_MANIFEST_HEAD;
	for (size_t i = 0; i < n; i++) {
		uint8_t *r = recs + i * STICK_MANIFEST_ENTRY;
		memcpy(r, e[i].id, 32);
		put_be(r + 32, e[i].size, 8);
		memcpy(r + 40, e[i].hash, 32);
	}
	if (!sort_unique(recs, n, STICK_MANIFEST_ENTRY, 32)) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static void manifest_entry_at(const uint8_t *r, struct stick_manifest_entry *e)
{
	memcpy(e->id, r, 32);
	e->size = get_be(r + 32, 8);
	memcpy(e->hash, r + 40, 32);
}

int stick_manifest_parse(const uint8_t *buf, size_t len, struct stick_manifest *m,
			 stick_manifest_fn fn, void *ctx, const char **why)
{
	int ret = check_magic(buf, len, manifest_magic, STICK_MANIFEST_HEAD, why);
	if (ret < 0)
		return ret;
	long n = check_count(buf, len, STICK_MANIFEST_HEAD, 21, STICK_MANIFEST_ENTRY, why);
	if (n < 0)
		return (int)n;
	const uint8_t *recs = buf + STICK_MANIFEST_HEAD;
	for (long i = 0; i < n; i++) {
		uint64_t size = get_be(recs + i * STICK_MANIFEST_ENTRY + 32, 8);
		if (size == 0)
			return set_why(why, "an entry of size 0", -EBADMSG);
		if (size > STICK_BUNDLE_MAX)
			return set_why(why, "an entry over the bundle size limit", -EBADMSG);
	}
	ret = check_order(recs, (size_t)n, STICK_MANIFEST_ENTRY, 32, "duplicate bundle id", why);
	if (ret < 0)
		return ret;

	m->version = buf[4];
	m->node = get_be(buf + 5, 8);
	m->created_ms = get_be(buf + 13, 8);
	m->count = (uint32_t)n;
	for (long i = 0; fn && i < n; i++) {
		struct stick_manifest_entry e;
		manifest_entry_at(recs + i * STICK_MANIFEST_ENTRY, &e);
		ret = fn(ctx, &e);
		if (ret != 0)
			return ret;
	}
	return 0;
}

int stick_manifest_lookup(const uint8_t *buf, size_t len, const uint8_t id[static 32],
			  struct stick_manifest_entry *out)
{
	if (len < STICK_MANIFEST_HEAD)
		return -ENOENT;
	const uint8_t *recs = buf + STICK_MANIFEST_HEAD;
	size_t lo = 0, hi = (len - STICK_MANIFEST_HEAD) / STICK_MANIFEST_ENTRY;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(recs + mid * STICK_MANIFEST_ENTRY, id, 32);
		if (c == 0) {
			manifest_entry_at(recs + mid * STICK_MANIFEST_ENTRY, out);
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

size_t stick_receipt_id_len(enum stick_receipt_kind kind)
{
	switch (kind) {
	case STICK_RECEIPT_CUSTODY:
		return 32;
	case STICK_RECEIPT_DELIVERY:
		return 16;
	}
	return 0;
}

int stick_receipt_encode(const struct stick_receipt *r, const uint8_t *ids, size_t n, uint8_t **out,
			 size_t *outlen)
{
	size_t idlen = stick_receipt_id_len(r->kind);

	if (idlen == 0)
		return -EINVAL;
	if (n > STICK_LIST_MAX)
		return -EFBIG;
	if (n > 0 && !ids)
		return -EINVAL;
	size_t len = STICK_RECEIPT_HEAD + n * idlen;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, receipt_magic, 4);
	buf[4] = STICK_FORMAT_VERSION;
	buf[5] = (uint8_t)r->kind;
	put_be(buf + 6, r->node, 8);
	put_be(buf + 14, r->created_ms, 8);
	put_be(buf + 22, n, 4);
	if (n > 0)
		memcpy(buf + STICK_RECEIPT_HEAD, ids, n * idlen);
	if (!sort_unique(buf + STICK_RECEIPT_HEAD, n, idlen, idlen)) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int stick_receipt_parse(const uint8_t *buf, size_t len, struct stick_receipt *r,
			stick_receipt_fn fn, void *ctx, const char **why)
{
	int ret = check_magic(buf, len, receipt_magic, STICK_RECEIPT_HEAD, why);
	if (ret < 0)
		return ret;
	/* The kind decides the stride, so it is checked before the length. */
	size_t idlen = stick_receipt_id_len(buf[5]);
	if (idlen == 0)
		return set_why(why, "unknown receipt kind", -EBADMSG);
	long n = check_count(buf, len, STICK_RECEIPT_HEAD, 22, idlen, why);
	if (n < 0)
		return (int)n;
	const uint8_t *ids = buf + STICK_RECEIPT_HEAD;
	ret = check_order(ids, (size_t)n, idlen, idlen, "duplicate id", why);
	if (ret < 0)
		return ret;

	r->version = buf[4];
	r->kind = (enum stick_receipt_kind)buf[5];
	r->node = get_be(buf + 6, 8);
	r->created_ms = get_be(buf + 14, 8);
	r->count = (uint32_t)n;
	for (long i = 0; fn && i < n; i++) {
		ret = fn(ctx, ids + (size_t)i * idlen, idlen);
		if (ret != 0)
			return ret;
	}
	return 0;
}
