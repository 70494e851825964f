/*
 * Known-answer vectors for the envelope (the .txt files of tests/vectors/envelope, format in
 * docs/envelope.md): re-seals each from its fixed keys and "random" bytes, compares
 * byte for byte, then opens it as every recipient. TERN_VECTORS_WRITE=1 rewrites
 * the sealed bytes instead of comparing (only after a deliberate format change).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"
#include "test.h"

#define MAX_RCPT 8

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static int bytes_add(struct bytes *b, const uint8_t *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (b->len + len > b->cap) {
		size_t cap = (b->len + len) * 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

static int bytes_sink(void *ctx, const uint8_t *buf, size_t len)
{
	return bytes_add(ctx, buf, len);
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Appends the bytes of a hex string; false on odd length or a non-hex digit. */
static bool hex_add(struct bytes *b, const char *hex)
{
	size_t n = strlen(hex);

	if (n % 2)
		return false;
	for (size_t i = 0; i < n; i += 2) {
		unsigned v;
		char two[3] = {hex[i], hex[i + 1], 0};
		char *end;

		v = (unsigned)strtoul(two, &end, 16);
		if (*end)
			return false;
		uint8_t byte = (uint8_t)v;
		bytes_add(b, &byte, 1);
	}
	return true;
}

struct vector {
	char name[64];
	bool compact;
	bool open_only; /* a retired form: opened, no longer sealed */
	struct bytes sender;
	size_t n_rcpt;
	struct bytes rcpt[MAX_RCPT];
	enum envelope_kind kind;
	char filename[ENVELOPE_NAME_MAX + 1];
	uint64_t created_ms, expires_ms;
	struct bytes plaintext;
	struct bytes content_key, msg_id, stream_header;
	size_t n_eph;
	struct bytes eph_sk[MAX_RCPT];
	struct bytes sealed;
};

static void vector_free(struct vector *v)
{
	bytes_free(&v->sender);
	for (size_t i = 0; i < MAX_RCPT; i++) {
		bytes_free(&v->rcpt[i]);
		bytes_free(&v->eph_sk[i]);
	}
	bytes_free(&v->plaintext);
	bytes_free(&v->content_key);
	bytes_free(&v->msg_id);
	bytes_free(&v->stream_header);
	bytes_free(&v->sealed);
}

/* plaintext_pattern = N: byte i is i mod 251, so it never lines up with the chunk size. */
static void pattern(struct bytes *b, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(i % 251);
		bytes_add(b, &c, 1);
	}
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static bool parse(const char *path, struct vector *v)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	bool ok = f != NULL;
	int lineno = 0;

	memset(v, 0, sizeof(*v));
	v->kind = ENVELOPE_TEXT;
	while (ok && fgets(line, sizeof(line), f)) {
		char *key = trim(line), *eq, *val;

		lineno++;
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			ok = false;
			break;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		if (!strcmp(key, "vector"))
			snprintf(v->name, sizeof(v->name), "%s", val);
		else if (!strcmp(key, "form")) {
			v->compact = !strcmp(val, "compact") || !strcmp(val, "compact-v1");
			v->open_only = !strcmp(val, "compact-v1");
		} else if (!strcmp(key, "sender"))
			ok = hex_add(&v->sender, val);
		else if (!strcmp(key, "recipient") && v->n_rcpt < MAX_RCPT)
			ok = hex_add(&v->rcpt[v->n_rcpt++], val);
		else if (!strcmp(key, "kind"))
			v->kind = !strcmp(val, "file") ? ENVELOPE_FILE : ENVELOPE_TEXT;
		else if (!strcmp(key, "name"))
			snprintf(v->filename, sizeof(v->filename), "%s", val);
		else if (!strcmp(key, "created_ms"))
			v->created_ms = strtoull(val, NULL, 10);
		else if (!strcmp(key, "expires_ms"))
			v->expires_ms = strtoull(val, NULL, 10);
		else if (!strcmp(key, "plaintext"))
			ok = hex_add(&v->plaintext, val);
		else if (!strcmp(key, "plaintext_pattern"))
			pattern(&v->plaintext, strtoull(val, NULL, 10));
		else if (!strcmp(key, "content_key"))
			ok = hex_add(&v->content_key, val);
		else if (!strcmp(key, "msg_id"))
			ok = hex_add(&v->msg_id, val);
		else if (!strcmp(key, "stream_header"))
			ok = hex_add(&v->stream_header, val);
		else if (!strcmp(key, "eph_sk") && v->n_eph < MAX_RCPT)
			ok = hex_add(&v->eph_sk[v->n_eph++], val);
		else if (!strcmp(key, "sealed"))
			ok = hex_add(&v->sealed, val);
		else
			ok = false;
		if (!ok)
			fprintf(stderr, "%s:%d: bad line\n", path, lineno);
	}
	if (f)
		fclose(f);
	return ok && v->sender.len == 64 && v->n_rcpt >= 1;
}

/* The deterministic generator: hands out a tape of bytes in order; running dry is a failure. */
struct tape {
	struct bytes b;
	size_t pos;
	bool overrun;
};

static void tape_rng(void *ctx, void *buf, size_t len)
{
	struct tape *t = ctx;

	if (len > t->b.len - t->pos) {
		t->overrun = true;
		memset(buf, 0, len);
		return;
	}
	memcpy(buf, t->b.p + t->pos, len);
	t->pos += len;
}

static void tape_load(struct tape *t, const struct bytes *parts, size_t n)
{
	bytes_free(&t->b);
	t->pos = 0;
	t->overrun = false;
	for (size_t i = 0; i < n; i++)
		bytes_add(&t->b, parts[i].p, parts[i].len);
}

static bool tape_used_up(const struct tape *t)
{
	return !t->overrun && t->pos == t->b.len;
}

static struct identity *identity_from_tape(struct tape *t, const struct bytes *secrets)
{
	struct identity *id = NULL;

	tape_load(t, secrets, 1);
	CHECK_EQ(identity_generate(&id), 0);
	CHECK(tape_used_up(t));
	return id;
}

static const uint8_t *candidate_pk;

static void candidates(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]),
		       void *fctx)
{
	(void)ctx;
	(void)hint;
	fn(fctx, candidate_pk);
}

static void write_sealed(const char *path, const struct bytes *sealed)
{
	FILE *in = fopen(path, "r");
	struct bytes keep = {0};
	char line[1024];

	while (in && fgets(line, sizeof(line), in)) {
		char *k = trim(line);
		if (strncmp(k, "sealed", 6) == 0 && (k[6] == ' ' || k[6] == '='))
			continue;
		bytes_add(&keep, (const uint8_t *)k, strlen(k));
		bytes_add(&keep, (const uint8_t *)"\n", 1);
	}
	if (in)
		fclose(in);
	FILE *out = fopen(path, "w");
	if (!out) {
		CHECK(out != NULL);
		bytes_free(&keep);
		return;
	}
	fwrite(keep.p, 1, keep.len, out);
	for (size_t i = 0; i < sealed->len; i += 64) {
		fputs("sealed = ", out);
		for (size_t j = i; j < i + 64 && j < sealed->len; j++)
			fprintf(out, "%02x", sealed->p[j]);
		fputc('\n', out);
	}
	fclose(out);
	bytes_free(&keep);
}

static void run_vector(const char *path, bool write)
{
	struct vector v;
	struct tape t = {0};
	struct identity *sender = NULL, *rcpt[MAX_RCPT] = {0};
	struct envelope_recipient r[MAX_RCPT];
	struct envelope_meta meta = {0}, got;
	struct identity_public sp;
	struct bytes sealed = {0};

	if (!parse(path, &v)) {
		fprintf(stderr, "%s: cannot parse\n", path);
		CHECK(0);
		vector_free(&v);
		return;
	}
	fprintf(stderr, "vector %s (%zu bytes of plaintext)\n", v.name, v.plaintext.len);

	tern_crypto_test_set_rng(tape_rng, &t);
	sender = identity_from_tape(&t, &v.sender);
	identity_get_public(sender, &sp);
	for (size_t i = 0; i < v.n_rcpt; i++) {
		struct identity_public p;

		rcpt[i] = identity_from_tape(&t, &v.rcpt[i]);
		identity_get_public(rcpt[i], &p);
		memcpy(r[i].sign_pk, p.sign_pk, 32);
		memcpy(r[i].box_pk, p.box_pk, 32);
	}

	meta.kind = v.kind;
	memcpy(meta.name, v.filename, sizeof(meta.name));
	meta.created_ms = v.created_ms;
	meta.expires_ms = v.expires_ms;
	meta.size = v.plaintext.len;
	if (v.open_only) {
		bytes_add(&sealed, v.sealed.p, v.sealed.len);
		memcpy(meta.msg_id, v.msg_id.p, v.msg_id.len < 16 ? v.msg_id.len : 16);
	} else if (v.compact) {
		uint8_t out[ENVELOPE_COMPACT_OVERHEAD + ENVELOPE_COMPACT_MAX];
		size_t outlen = 0;

		CHECK_EQ(v.n_rcpt, 1);
		tape_load(&t, v.eph_sk, 1);
		CHECK_EQ(envelope_seal_compact(sender, &r[0], v.plaintext.p, v.plaintext.len, &meta,
					       out, sizeof(out), &outlen),
			 0);
		bytes_add(&sealed, out, outlen);
	} else {
		struct bytes parts[3 + MAX_RCPT] = {v.content_key, v.msg_id, v.stream_header};
		struct envelope_sealer *s = NULL;

		CHECK_EQ(v.n_eph, v.n_rcpt);
		for (size_t i = 0; i < v.n_eph; i++)
			parts[3 + i] = v.eph_sk[i];
		tape_load(&t, parts, 3 + v.n_eph);
		CHECK_EQ(envelope_seal_new(sender, r, v.n_rcpt, &meta, bytes_sink, &sealed, &s), 0);
		/* Fed in odd pieces: the bytes must not depend on how the caller splits them. */
		for (size_t off = 0; s && off < v.plaintext.len; off += 40000) {
			size_t n = v.plaintext.len - off < 40000 ? v.plaintext.len - off : 40000;
			CHECK_EQ(envelope_seal_update(s, v.plaintext.p + off, n), 0);
		}
		if (s)
			CHECK_EQ(envelope_seal_final(s), 0);
		CHECK_EQ(sealed.len, envelope_sealed_size(v.n_rcpt, &meta));
	}
	/* Exactly the documented random bytes were drawn, no more, no fewer. */
	CHECK(tape_used_up(&t));
	tern_crypto_test_set_rng(NULL, NULL);
	if (v.compact && v.msg_id.len)
		CHECK(v.msg_id.len == 16 && memcmp(meta.msg_id, v.msg_id.p, 16) == 0);
	else if (!v.compact)
		CHECK(v.msg_id.len == 16 && memcmp(meta.msg_id, v.msg_id.p, 16) == 0);

	if (write && !v.open_only) {
		write_sealed(path, &sealed);
	} else {
		CHECK_EQ(sealed.len, v.sealed.len);
		CHECK(sealed.len == v.sealed.len && memcmp(sealed.p, v.sealed.p, sealed.len) == 0);
	}

	/* The stored bytes open for every recipient and give back the plaintext. */
	const struct bytes *stored = write && !v.open_only ? &sealed : &v.sealed;
	for (size_t i = 0; i < v.n_rcpt; i++) {
		struct envelope_opener *o = NULL;
		struct bytes plain = {0};

		candidate_pk = sp.sign_pk;
		CHECK_EQ(envelope_open_new(rcpt[i], &o), 0);
		CHECK_EQ(envelope_open_update(o, stored->p, stored->len, bytes_sink, &plain), 0);
		CHECK_EQ(envelope_open_final(o, candidates, NULL, &got), 0);
		CHECK(plain.len == v.plaintext.len &&
		      (plain.len == 0 || memcmp(plain.p, v.plaintext.p, plain.len) == 0));
		CHECK_MEM(got.sender_sign_pk, sp.sign_pk, 32);
		CHECK_MEM(got.msg_id, meta.msg_id, 16);
		CHECK_EQ(got.kind, v.kind);
		CHECK_EQ(got.created_ms, v.created_ms);
		CHECK_EQ(got.expires_ms, v.expires_ms);
		CHECK(strcmp(got.name, v.filename) == 0);
		CHECK_EQ(got.compact, v.compact);
		CHECK_EQ(got.n_recipients, v.n_rcpt);
		envelope_opener_free(o);
		bytes_free(&plain);
	}

	identity_free(sender);
	for (size_t i = 0; i < v.n_rcpt; i++)
		identity_free(rcpt[i]);
	bytes_free(&sealed);
	bytes_free(&t.b);
	vector_free(&v);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	const char *root = getenv("TERN_VECTORS");
	const char *w = getenv("TERN_VECTORS_WRITE");
	bool write = w && *w && strcmp(w, "0") != 0;
	char dir[4096], path[8192];
	char *names[64];
	size_t n = 0;
	DIR *d;
	struct dirent *e;

	CHECK_EQ(tern_crypto_init(), 0);
	snprintf(dir, sizeof(dir), "%s/envelope", root ? root : "../vectors");
	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(d)) && n < 64) {
		size_t l = strlen(e->d_name);
		if (l > 4 && !strcmp(e->d_name + l - 4, ".txt"))
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	/* compact, full with 1 and 3 recipients, multi-chunk at least. */
	CHECK(n >= 4);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		run_vector(path, write);
		free(names[i]);
	}
	TEST_MAIN_END();
}
