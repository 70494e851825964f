/* Envelopes: round trips of both forms and every way an envelope can be damaged, misdirected or
 * forged. */
#include <errno.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"
#include "test.h"

#define KIB 1024
#define MIB (1024 * 1024)

struct membuf {
	uint8_t *p;
	size_t len, cap;
};

static int mem_sink(void *ctx, const uint8_t *buf, size_t len)
{
	struct membuf *m = ctx;

	if (len == 0)
		return 0;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2;
		uint8_t *p = realloc(m->p, cap);
		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

static void membuf_reset(struct membuf *m)
{
	free(m->p);
	memset(m, 0, sizeof(*m));
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 16) * 7 + 1);
}

/* An address book of a few identity keys. */
struct book {
	size_t n;
	const uint8_t *pk[4];
};

/* The hint the opener passed last: what lets a hub offer a few contacts instead of all. */
static int last_hint = -2;

static void book_candidates(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]),
			    void *fctx)
{
	last_hint = hint;
	const struct book *b = ctx;

	for (size_t i = 0; i < b->n; i++)
		fn(fctx, b->pk[i]);
}

static struct identity *people[20];
static struct identity_public pubs[20];
static struct envelope_recipient rcpts[20];

static void make_people(void)
{
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(identity_generate(&people[i]), 0);
		identity_get_public(people[i], &pubs[i]);
		memcpy(rcpts[i].sign_pk, pubs[i].sign_pk, 32);
		memcpy(rcpts[i].box_pk, pubs[i].box_pk, 32);
	}
}

/* Seals size pattern bytes from people[0] to rcpts[first..first+n), fed in pieces of step. */
static int seal(size_t first, size_t n, uint64_t size, size_t step, struct envelope_meta *meta,
		struct membuf *out)
{
	struct envelope_sealer *s;
	uint8_t *buf = malloc(step ? step : 1);
	int ret;

	meta->size = size;
	ret = envelope_seal_new(people[0], rcpts + first, n, meta, mem_sink, out, &s);
	for (uint64_t off = 0; !ret && off < size; off += step) {
		size_t k = size - off < step ? (size_t)(size - off) : step;
		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(off + i);
		ret = envelope_seal_update(s, buf, k);
	}
	if (!ret)
		ret = envelope_seal_final(s);
	else if (s)
		envelope_sealer_free(s);
	free(buf);
	return ret;
}

/* The address book open_env offers for compact envelopes; NULL for none. */
static const struct book *open_book;

/* Opens in pieces of step bytes as me; returns the first error of update or final. */
static int open_env(const struct identity *me, const uint8_t *buf, size_t len, size_t step,
		    struct envelope_meta *meta, struct membuf *plain)
{
	struct envelope_opener *o;
	int ret;

	ret = envelope_open_new(me, &o);
	if (ret)
		return ret;
	for (size_t off = 0; !ret && off < len; off += step) {
		size_t k = len - off < step ? len - off : step;
		ret = envelope_open_update(o, buf + off, k, plain ? mem_sink : NULL, plain);
	}
	if (!ret)
		ret = envelope_open_final(o, open_book ? book_candidates : NULL, (void *)open_book,
					  meta);
	envelope_opener_free(o);
	return ret;
}

static bool is_pattern(const struct membuf *m, uint64_t size)
{
	if (m->len != size)
		return false;
	for (size_t i = 0; i < m->len; i++) {
		if (m->p[i] != pattern(i))
			return false;
	}
	return true;
}

static void test_round_trips(void)
{
	static const uint64_t sizes[] = {0, 1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, MIB};
	static const size_t steps[] = {1, 1000, 64 * KIB, 200 * KIB};

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		uint64_t size = sizes[si];
		size_t step = steps[si % 4];
		struct envelope_meta meta = {.kind = ENVELOPE_FILE,
					     .created_ms = 1700000000123,
					     .expires_ms = 1800000000000};
		struct envelope_meta got;
		struct membuf env = {0}, plain = {0};

		strcpy(meta.name, "report.pdf");
		if (size > 100 * KIB && step == 1)
			step = 4097;
		CHECK_EQ(seal(1, 1, size, step, &meta, &env), 0);
		CHECK_EQ(env.len, envelope_sealed_size(1, &meta));
		CHECK_MEM(meta.sender_sign_pk, pubs[0].sign_pk, 32);
		CHECK_EQ(meta.n_recipients, 1);
		CHECK_MEM(meta.recipients[0], pubs[1].sign_pk, 32);

		/* Open in pieces of several sizes, byte by byte for the small ones. */
		static const size_t open_steps[] = {1, 17, 65553, 1 << 30};
		for (size_t oi = 0; oi < 4; oi++) {
			if (open_steps[oi] == 1 && env.len > 200 * KIB)
				continue;
			memset(&got, 0, sizeof(got));
			CHECK_EQ(open_env(people[1], env.p, env.len, open_steps[oi], &got, &plain),
				 0);
			CHECK(is_pattern(&plain, size));
			CHECK_MEM(got.sender_sign_pk, pubs[0].sign_pk, 32);
			CHECK_MEM(got.msg_id, meta.msg_id, ENVELOPE_MSG_ID_LEN);
			CHECK_EQ(got.kind, ENVELOPE_FILE);
			CHECK_EQ(got.size, size);
			CHECK_EQ(got.created_ms, 1700000000123);
			CHECK_EQ(got.expires_ms, 1800000000000);
			CHECK(strcmp(got.name, "report.pdf") == 0);
			CHECK(!got.compact);
			CHECK_EQ(got.n_recipients, 1);
			CHECK_MEM(got.recipients[0], pubs[1].sign_pk, 32);
			membuf_reset(&plain);
		}
		/* The sender is not a recipient here and cannot open it. */
		CHECK_EQ(open_env(people[0], env.p, env.len, 1 << 30, &got, NULL), -ENOKEY);
		membuf_reset(&env);
	}
}

static void test_many_recipients(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT}, got;
	struct membuf env = {0}, plain = {0};

	CHECK_EQ(seal(2, 16, 100 * KIB, 100 * KIB, &meta, &env), 0);
	CHECK_EQ(env.len, envelope_sealed_size(16, &meta));
	for (int i = 2; i < 18; i++) {
		CHECK_EQ(open_env(people[i], env.p, env.len, 1 << 30, &got, &plain), 0);
		CHECK(is_pattern(&plain, 100 * KIB));
		CHECK_EQ(got.n_recipients, 16);
		for (int j = 0; j < 16; j++)
			CHECK_MEM(got.recipients[j], pubs[2 + j].sign_pk, 32);
		membuf_reset(&plain);
	}
	CHECK_EQ(open_env(people[1], env.p, env.len, 1 << 30, &got, NULL), -ENOKEY);
	CHECK_EQ(open_env(people[18], env.p, env.len, 1000, &got, NULL), -ENOKEY);
	membuf_reset(&env);

	/* The size formula of docs/envelope.md, pinned: 1 MiB to one recipient, "report.pdf". */
	struct envelope_meta mib = {.kind = ENVELOPE_FILE, .size = MIB};
	strcpy(mib.name, "report.pdf");
	CHECK_EQ(envelope_sealed_size(1, &mib), 1049274);

	/* The limit itself. */
	struct envelope_recipient many[ENVELOPE_MAX_RECIPIENTS + 1];
	for (int i = 0; i <= ENVELOPE_MAX_RECIPIENTS; i++) {
		many[i] = rcpts[1];
		many[i].sign_pk[0] = (uint8_t)i;
	}
	struct envelope_sealer *s;
	meta.size = 0;
	CHECK_EQ(
	    envelope_seal_new(people[0], many, ENVELOPE_MAX_RECIPIENTS, &meta, mem_sink, &env, &s),
	    0);
	CHECK_EQ(envelope_seal_final(s), 0);
	CHECK_EQ(env.len, envelope_sealed_size(ENVELOPE_MAX_RECIPIENTS, &meta));
	membuf_reset(&env);
	CHECK_EQ(envelope_seal_new(people[0], many, ENVELOPE_MAX_RECIPIENTS + 1, &meta, mem_sink,
				   &env, &s),
		 -EINVAL);
	CHECK(s == NULL);
	CHECK_EQ(envelope_sealed_size(ENVELOPE_MAX_RECIPIENTS + 1, &meta), 0);
	CHECK_EQ(envelope_sealed_size(0, &meta), 0);
}

/* Splits a full-form envelope into its chunks: offsets of each length prefix. */
static size_t chunk_offsets(const struct membuf *env, size_t n_rcpt, size_t *off, size_t max)
{
	size_t pos = 2 + 24 + n_rcpt * 80 + 32, k = 0;

	while (pos + 4 <= env->len && k < max) {
		off[k++] = pos;
		pos += 4 + ((size_t)env->p[pos] << 24 | (size_t)env->p[pos + 1] << 16 |
			    (size_t)env->p[pos + 2] << 8 | env->p[pos + 3]);
	}
	return k;
}

static void test_stream_attacks(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT}, got;
	struct membuf env = {0}, bad = {0}, plain = {0};
	size_t off[16], n;
	int ret;

	/* header chunk, 3 data chunks, final chunk */
	CHECK_EQ(seal(1, 1, 3 * 64 * KIB - 5, 64 * KIB, &meta, &env), 0);
	n = chunk_offsets(&env, 1, off, 16);
	CHECK_EQ(n, 5);
	off[n] = env.len;

	/* Truncation at every chunk boundary and a little inside each chunk. */
	for (size_t i = 0; i <= n; i++) {
		for (size_t d = 0; d < 3; d++) {
			size_t cut = off[i] - (i ? d : 0);
			if (cut >= env.len)
				continue;
			ret = open_env(people[1], env.p, cut, 1 << 30, &got, NULL);
			CHECK_EQ(ret, -EBADMSG);
		}
	}

	/* Two data chunks swapped. */
	mem_sink(&bad, env.p, env.len);
	memcpy(bad.p + off[1], env.p + off[2], off[3] - off[2]);
	memcpy(bad.p + off[2], env.p + off[1], off[2] - off[1]);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, 1 << 30, &got, NULL), -EBADMSG);
	membuf_reset(&bad);

	/* A data chunk duplicated (replacing the next one) and dropped. */
	mem_sink(&bad, env.p, env.len);
	memcpy(bad.p + off[2], env.p + off[1], off[2] - off[1]);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, 1 << 30, &got, NULL), -EBADMSG);
	membuf_reset(&bad);
	mem_sink(&bad, env.p, off[1]);
	mem_sink(&bad, env.p + off[2], env.len - off[2]);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, 1 << 30, &got, NULL), -EBADMSG);
	membuf_reset(&bad);
	/* A data chunk inserted again before the final. */
	mem_sink(&bad, env.p, off[4]);
	mem_sink(&bad, env.p + off[3], off[4] - off[3]);
	mem_sink(&bad, env.p + off[4], env.len - off[4]);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, 1 << 30, &got, NULL), -EBADMSG);
	membuf_reset(&bad);

	/* The final chunk where the last data chunk should be (a lying size). */
	mem_sink(&bad, env.p, off[3]);
	mem_sink(&bad, env.p + off[4], env.len - off[4]);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, 1 << 30, &got, NULL), -EBADMSG);
	membuf_reset(&bad);

	/*
	 * The header MAC commits to the content key before any chunk is read: a
	 * header whose stanzas wrap different keys (here one spliced in from another
	 * envelope) fails as soon as the outer header is complete.
	 */
	struct membuf other = {0};
	size_t outer = 2 + 24 + 2 * 80 + 32;
	CHECK_EQ(seal(1, 2, 10, 10, &meta, &bad), 0);
	CHECK_EQ(seal(1, 2, 10, 10, &meta, &other), 0);
	memcpy(bad.p + 2 + 24 + 80, other.p + 2 + 24 + 80, 80);
	for (int r = 1; r <= 2; r++) {
		struct envelope_opener *o;
		CHECK_EQ(envelope_open_new(people[r], &o), 0);
		CHECK_EQ(envelope_open_update(o, other.p, outer, NULL, NULL), 0);
		envelope_opener_free(o);
		CHECK_EQ(envelope_open_new(people[r], &o), 0);
		CHECK_EQ(envelope_open_update(o, bad.p, outer, NULL, NULL), -EBADMSG);
		envelope_opener_free(o);
	}
	membuf_reset(&bad);
	membuf_reset(&other);

	/* Data after the end, in the same call and in a later one. */
	mem_sink(&bad, env.p, env.len);
	mem_sink(&bad, (const uint8_t *)"x", 1);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, 1 << 30, &got, NULL), -E2BIG);
	CHECK_EQ(open_env(people[1], bad.p, bad.len, env.len, &got, NULL), -E2BIG);
	membuf_reset(&bad);

	/* Plaintext reaches the sink before verification; a sink error stops the stream. */
	struct envelope_opener *o;
	CHECK_EQ(envelope_open_new(people[1], &o), 0);
	CHECK_EQ(envelope_open_update(o, env.p, off[2], mem_sink, &plain), 0);
	CHECK_EQ(plain.len, 64 * KIB);
	envelope_opener_free(o);
	membuf_reset(&plain);

	membuf_reset(&env);
}

static int failing_sink(void *ctx, const uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return -EIO;
}

static void test_sinks(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT};
	struct envelope_sealer *s = (struct envelope_sealer *)1;
	struct membuf env = {0};

	meta.size = 10;
	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, failing_sink, NULL, &s), -EIO);
	CHECK(s == NULL);

	CHECK_EQ(seal(1, 1, 10, 10, &meta, &env), 0);
	struct envelope_opener *o;
	CHECK_EQ(envelope_open_new(people[1], &o), 0);
	CHECK_EQ(envelope_open_update(o, env.p, env.len, failing_sink, NULL), -EIO);
	CHECK_EQ(envelope_open_update(o, env.p, 1, NULL, NULL), -EIO);
	CHECK_EQ(envelope_open_final(o, NULL, NULL, &meta), -EIO);
	envelope_opener_free(o);
	envelope_opener_free(NULL);
	envelope_sealer_free(NULL);
	membuf_reset(&env);
}

static void test_wrong_size(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT};
	struct envelope_sealer *s;
	struct membuf env = {0};
	uint8_t buf[100] = {0};

	meta.size = 100;
	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, mem_sink, &env, &s), 0);
	CHECK_EQ(envelope_seal_update(s, buf, 99), 0);
	CHECK_EQ(envelope_seal_final(s), -EINVAL);
	membuf_reset(&env);

	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, mem_sink, &env, &s), 0);
	CHECK_EQ(envelope_seal_update(s, buf, 100), 0);
	CHECK_EQ(envelope_seal_update(s, buf, 1), -EINVAL);
	CHECK_EQ(envelope_seal_update(s, buf, 0), -EINVAL);
	CHECK_EQ(envelope_seal_final(s), -EINVAL);
	membuf_reset(&env);
}

static void test_limits(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_FILE};
	struct envelope_sealer *s;
	struct membuf env = {0};
	struct envelope_recipient dup[2] = {rcpts[1], rcpts[1]};
	struct envelope_recipient low = rcpts[1];

	/* File names: a plain base name of 1..255 bytes. */
	memset(meta.name, 'a', 255);
	CHECK(envelope_sealed_size(1, &meta) > 0);
	CHECK_EQ(seal(1, 1, 0, 1, &meta, &env), 0);
	membuf_reset(&env);
	memset(meta.name, 'a', sizeof(meta.name)); /* 256 bytes, no NUL */
	CHECK_EQ(envelope_sealed_size(1, &meta), 0);
	CHECK_EQ(seal(1, 1, 0, 1, &meta, &env), -EINVAL);
	static const char *bad_names[] = {"", ".", "..", "a/b", "/etc/passwd"};
	for (size_t i = 0; i < 5; i++) {
		memset(meta.name, 0, sizeof(meta.name));
		strcpy(meta.name, bad_names[i]);
		CHECK_EQ(envelope_sealed_size(1, &meta), 0);
		CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, mem_sink, &env, &s),
			 -EINVAL);
	}
	/* A text carries no name; unknown kinds are refused. */
	meta.kind = ENVELOPE_TEXT;
	strcpy(meta.name, "x");
	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, mem_sink, &env, &s), -EINVAL);
	meta.name[0] = '\0';
	meta.kind = (enum envelope_kind)4;
	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, mem_sink, &env, &s), -EINVAL);
	/* A control record seals like a text: no name. */
	meta.kind = ENVELOPE_CONTROL;
	CHECK(envelope_sealed_size(1, &meta) > 0);
	strcpy(meta.name, "x");
	CHECK_EQ(envelope_sealed_size(1, &meta), 0);
	meta.name[0] = '\0';
	meta.kind = ENVELOPE_TEXT;
	meta.size = UINT64_MAX;
	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 1, &meta, mem_sink, &env, &s), -EINVAL);
	meta.size = 0;

	/* The same recipient twice; no recipients. */
	CHECK_EQ(envelope_seal_new(people[0], dup, 2, &meta, mem_sink, &env, &s), -EINVAL);
	CHECK_EQ(envelope_seal_new(people[0], rcpts + 1, 0, &meta, mem_sink, &env, &s), -EINVAL);

	/* Low-order encryption keys give an all-zero shared secret and are refused. */
	memset(low.box_pk, 0, 32);
	CHECK_EQ(envelope_seal_new(people[0], &low, 1, &meta, mem_sink, &env, &s), -EINVAL);
	low.box_pk[0] = 1;
	CHECK_EQ(envelope_seal_new(people[0], &low, 1, &meta, mem_sink, &env, &s), -EINVAL);
	uint8_t out[300];
	size_t outlen;
	CHECK_EQ(envelope_seal_compact(people[0], &low, (const uint8_t *)"x", 1, &meta, out,
				       sizeof(out), &outlen),
		 -EINVAL);
	CHECK_EQ(env.len, 0);
}

/* Every single-byte change of a small envelope fails; none yields a successful final. */
static void test_tamper_full(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_FILE}, got;
	struct membuf env = {0};
	int accepted = 0;

	strcpy(meta.name, "a.txt");
	CHECK_EQ(seal(1, 2, 40, 40, &meta, &env), 0);
	for (size_t i = 0; i < env.len; i++) {
		static const uint8_t flips[] = {0x01, 0x80, 0xff};
		for (size_t f = 0; f < 3; f++) {
			env.p[i] ^= flips[f];
			/* As the first and as the second recipient. */
			for (int r = 1; r <= 2; r++) {
				int ret = open_env(people[r], env.p, env.len, 1 << 30, &got, NULL);
				if (ret == 0)
					accepted++;
				CHECK(ret == -EBADMSG || ret == -ENOKEY || ret == -E2BIG ||
				      ret == -EKEYREJECTED);
			}
			env.p[i] ^= flips[f];
		}
	}
	CHECK_EQ(accepted, 0);
	/* Every shorter prefix too. */
	for (size_t n = 0; n < env.len; n++)
		CHECK(open_env(people[1], env.p, n, 7, &got, NULL) != 0);
	CHECK_EQ(open_env(people[2], env.p, env.len, 3, &got, NULL), 0);
	membuf_reset(&env);
}

/* Envelopes from an impersonator and envelopes re-addressed after sealing. */
static void test_forgery(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT}, got;
	struct envelope_sealer *s;
	struct membuf env = {0}, plain = {0};
	struct identity *eve;
	uint8_t buf[64] = "pay the bearer";

	/* Eve claims to be people[0] but can only sign with her own key. */
	CHECK_EQ(identity_generate(&eve), 0);
	identity_test_set_sign_pk(eve, pubs[0].sign_pk);
	meta.size = 14;
	CHECK_EQ(envelope_seal_new(eve, rcpts + 1, 1, &meta, mem_sink, &env, &s), 0);
	CHECK_EQ(envelope_seal_update(s, buf, 14), 0);
	CHECK_EQ(envelope_seal_final(s), 0);
	CHECK_EQ(open_env(people[1], env.p, env.len, 1 << 30, &got, &plain), -EKEYREJECTED);
	/* The unverified plaintext did reach the sink: the caller must wait for final. */
	CHECK_EQ(plain.len, 14);
	membuf_reset(&plain);
	membuf_reset(&env);

	/*
	 * A stanza that opens with people[3]'s key, in a message addressed (and signed)
	 * for people[1] only: people[3] must not accept it as addressed to them.
	 */
	struct envelope_recipient mixed = {0};
	memcpy(mixed.sign_pk, pubs[1].sign_pk, 32);
	memcpy(mixed.box_pk, pubs[3].box_pk, 32);
	CHECK_EQ(seal(0, 0, 0, 1, &meta, &env), -EINVAL);
	meta.size = 0;
	CHECK_EQ(envelope_seal_new(people[0], &mixed, 1, &meta, mem_sink, &env, &s), 0);
	CHECK_EQ(envelope_seal_final(s), 0);
	CHECK_EQ(open_env(people[3], env.p, env.len, 1 << 30, &got, NULL), -ENOKEY);
	CHECK_EQ(open_env(people[1], env.p, env.len, 1 << 30, &got, NULL), -ENOKEY);
	membuf_reset(&env);

	/* Compact: a signature by anyone not in the address book is "sender unknown". */
	uint8_t out[ENVELOPE_COMPACT_OVERHEAD + 64];
	size_t outlen;
	struct book book = {2, {pubs[0].sign_pk, pubs[5].sign_pk}};
	CHECK_EQ(envelope_seal_compact(eve, rcpts + 1, buf, 14, &meta, out, sizeof(out), &outlen),
		 0);
	open_book = &book;
	CHECK_EQ(open_env(people[1], out, outlen, 1 << 30, &got, NULL), -ENOENT);
	open_book = NULL;

	/* Compact: a recipient cannot pass a message on as if it were sent to someone else. */
	CHECK_EQ(
	    envelope_seal_compact(people[0], &mixed, buf, 14, &meta, out, sizeof(out), &outlen), 0);
	open_book = &book;
	CHECK_EQ(open_env(people[3], out, outlen, 1 << 30, &got, NULL), -ENOENT);
	open_book = NULL;
	identity_free(eve);
}

static void test_rotation(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT}, got;
	struct membuf env = {0}, plain = {0};
	struct identity_public cur;
	struct book book = {1, {pubs[0].sign_pk}};
	uint8_t out[200];
	size_t outlen;

	/* Mail sealed to epoch 1 still opens after two rotations. */
	CHECK_EQ(seal(4, 1, 5000, 5000, &meta, &env), 0);
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 4, (const uint8_t *)"old", 3, &meta, out,
				       sizeof(out), &outlen),
		 0);
	CHECK_EQ(identity_rotate(people[4]), 0);
	CHECK_EQ(identity_rotate(people[4]), 0);
	CHECK_EQ(open_env(people[4], env.p, env.len, 1 << 30, &got, &plain), 0);
	CHECK(is_pattern(&plain, 5000));
	membuf_reset(&plain);
	open_book = &book;
	CHECK_EQ(open_env(people[4], out, outlen, 1 << 30, &got, &plain), 0);
	CHECK(plain.len == 3 && memcmp(plain.p, "old", 3) == 0);
	membuf_reset(&plain);
	open_book = NULL;
	membuf_reset(&env);

	/* And mail to the new key opens too. */
	identity_get_public(people[4], &cur);
	memcpy(rcpts[4].box_pk, cur.box_pk, 32);
	CHECK_EQ(seal(4, 1, 10, 10, &meta, &env), 0);
	CHECK_EQ(open_env(people[4], env.p, env.len, 1 << 30, &got, &plain), 0);
	CHECK(is_pattern(&plain, 10));
	membuf_reset(&plain);
	membuf_reset(&env);
}

static void test_compact(void)
{
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT}, got;
	struct membuf plain = {0};
	struct book book = {3, {pubs[7].sign_pk, pubs[0].sign_pk, pubs[8].sign_pk}};
	uint8_t text[ENVELOPE_COMPACT_MAX + 1];
	uint8_t out[ENVELOPE_COMPACT_OVERHEAD + ENVELOPE_COMPACT_MAX + 1];
	size_t outlen;
	int accepted = 0;

	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)('a' + i % 26);

	/* The Iridium budget: a 160-byte text in at most 274 bytes. */
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 1, text, 160, &meta, out, sizeof(out),
				       &outlen),
		 0);
	CHECK(outlen <= 274);
	CHECK_EQ(outlen, 160 + ENVELOPE_COMPACT_OVERHEAD);
	CHECK(meta.compact);
	CHECK_MEM(meta.sender_sign_pk, pubs[0].sign_pk, 32);

	open_book = &book;
	last_hint = -2;
	CHECK_EQ(open_env(people[1], out, outlen, 1 << 30, &got, &plain), 0);
	CHECK(plain.len == 160 && memcmp(plain.p, text, 160) == 0);
	/* Version 2, which names the first byte of the sender's key to the recipient. */
	CHECK_EQ(out[0], 0x03);
	CHECK_EQ(last_hint, pubs[0].sign_pk[0]);
	CHECK(got.compact);
	CHECK_EQ(got.kind, ENVELOPE_TEXT);
	CHECK_EQ(got.size, 160);
	CHECK_MEM(got.sender_sign_pk, pubs[0].sign_pk, 32);
	CHECK_MEM(got.msg_id, meta.msg_id, ENVELOPE_MSG_ID_LEN);
	CHECK_EQ(got.n_recipients, 1);
	CHECK_MEM(got.recipients[0], pubs[1].sign_pk, 32);
	membuf_reset(&plain);
	/* Byte by byte. */
	CHECK_EQ(open_env(people[1], out, outlen, 1, &got, &plain), 0);
	CHECK(plain.len == 160 && memcmp(plain.p, text, 160) == 0);
	membuf_reset(&plain);

	/* Not for us; sender not in the address book; no address book at all. */
	CHECK_EQ(open_env(people[2], out, outlen, 1 << 30, &got, NULL), -ENOKEY);
	struct book strangers = {1, {pubs[9].sign_pk}};
	open_book = &strangers;
	CHECK_EQ(open_env(people[1], out, outlen, 1 << 30, &got, &plain), -ENOENT);
	CHECK_EQ(plain.len, 0); /* nothing unverified leaks from the compact form */
	open_book = NULL;
	CHECK_EQ(open_env(people[1], out, outlen, 1 << 30, &got, NULL), -ENOENT);
	open_book = &book;

	/* Two seals of the same text differ and have different message ids. */
	uint8_t out2[300];
	size_t outlen2;
	struct envelope_meta meta2 = {.kind = ENVELOPE_TEXT};
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 1, text, 160, &meta2, out2, sizeof(out2),
				       &outlen2),
		 0);
	CHECK(memcmp(out, out2, outlen) != 0);
	CHECK(memcmp(meta.msg_id, meta2.msg_id, ENVELOPE_MSG_ID_LEN) != 0);

	/* Every single-byte change and every truncation fails. */
	for (size_t i = 0; i < outlen; i++) {
		out[i] ^= 0x20;
		int ret = open_env(people[1], out, outlen, 1 << 30, &got, NULL);
		accepted += ret == 0;
		CHECK(ret == -EBADMSG || ret == -ENOKEY);
		out[i] ^= 0x20;
	}
	CHECK_EQ(accepted, 0);
	for (size_t n = 0; n < outlen; n++)
		CHECK(open_env(people[1], out, n, 1 << 30, &got, NULL) != 0);
	out[outlen] = 0;
	CHECK(open_env(people[1], out, outlen + 1, 1 << 30, &got, NULL) != 0);

	/* Empty and longest texts; too long; too small a buffer; not a text. */
	CHECK_EQ(
	    envelope_seal_compact(people[0], rcpts + 1, NULL, 0, &meta, out, sizeof(out), &outlen),
	    0);
	CHECK_EQ(outlen, ENVELOPE_COMPACT_OVERHEAD);
	CHECK_EQ(open_env(people[1], out, outlen, 1 << 30, &got, &plain), 0);
	CHECK_EQ(plain.len, 0);
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 1, text, ENVELOPE_COMPACT_MAX, &meta, out,
				       sizeof(out), &outlen),
		 0);
	CHECK_EQ(open_env(people[1], out, outlen, 100, &got, &plain), 0);
	CHECK(plain.len == ENVELOPE_COMPACT_MAX && memcmp(plain.p, text, plain.len) == 0);
	membuf_reset(&plain);
	/* Longer than any compact envelope can be. */
	out[outlen] = 0;
	CHECK_EQ(open_env(people[1], out, outlen + 1, 1 << 30, &got, NULL), -E2BIG);
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 1, text, ENVELOPE_COMPACT_MAX + 1, &meta,
				       out, sizeof(out), &outlen),
		 -EINVAL);
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 1, text, 160, &meta, out, 273, &outlen),
		 -ENOSPC);
	meta.kind = ENVELOPE_FILE;
	CHECK_EQ(
	    envelope_seal_compact(people[0], rcpts + 1, text, 10, &meta, out, sizeof(out), &outlen),
	    -EINVAL);
	open_book = NULL;
}

static void test_garbage(void)
{
	struct envelope_meta got;
	static const uint8_t junk[][8] = {{0}, {0x01, 0}, {0x01, 65}, {0x03}, {0xff, 1, 2}};
	static const size_t lens[] = {0, 2, 2, 1, 3};

	for (size_t i = 0; i < 5; i++)
		CHECK(open_env(people[1], junk[i], lens[i], 1, &got, NULL) != 0);
	/* An empty input is a truncated envelope. */
	CHECK_EQ(open_env(people[1], junk[0], 0, 1, &got, NULL), -EBADMSG);
	/* A full-form header whose stanzas open for nobody. */
	uint8_t hdr[2 + 24 + 80 + 32] = {0x01, 1};
	for (size_t i = 2; i < sizeof(hdr); i++)
		hdr[i] = (uint8_t)i;
	CHECK_EQ(open_env(people[1], hdr, sizeof(hdr), 1 << 30, &got, NULL), -ENOKEY);
}

/* A reset opener opens the next envelope as a fresh one would, whatever the last one left. */
static void test_reset(void)
{
	struct envelope_meta m1 = {.kind = ENVELOPE_FILE, .name = "a.bin"},
			     m2 = {.kind = ENVELOPE_TEXT};
	struct envelope_meta got;
	struct membuf full = {0}, plain = {0};
	uint8_t compact[ENVELOPE_COMPACT_OVERHEAD + 100], text[100];
	size_t clen;
	struct envelope_opener *o;
	struct book book = {1, {pubs[0].sign_pk}};

	memset(text, 'x', sizeof(text));
	CHECK_EQ(seal(1, 2, 200000, 4096, &m1, &full), 0);
	CHECK_EQ(envelope_seal_compact(people[0], rcpts + 1, text, sizeof(text), &m2, compact,
				       sizeof(compact), &clen),
		 0);
	CHECK_EQ(envelope_open_new(people[1], &o), 0);
	/* Left half-way through a full envelope (keys and stream state inside), then reset. */
	CHECK_EQ(envelope_open_update(o, full.p, full.len / 2, NULL, NULL), 0);
	envelope_open_reset(o);
	CHECK_EQ(envelope_open_update(o, compact, clen, mem_sink, &plain), 0);
	CHECK_EQ(envelope_open_final(o, book_candidates, &book, &got), 0);
	CHECK(got.compact && plain.len == sizeof(text) && memcmp(plain.p, text, sizeof(text)) == 0);
	CHECK_MEM(got.msg_id, m2.msg_id, ENVELOPE_MSG_ID_LEN);
	/* After a failure too: the error does not stick across a reset. */
	envelope_open_reset(o);
	CHECK_EQ(envelope_open_update(o, (const uint8_t *)"garbage!", 8, NULL, NULL), -EBADMSG);
	envelope_open_reset(o);
	membuf_reset(&plain);
	CHECK_EQ(envelope_open_update(o, full.p, full.len, mem_sink, &plain), 0);
	CHECK_EQ(envelope_open_final(o, NULL, NULL, &got), 0);
	CHECK(is_pattern(&plain, 200000));
	CHECK(strcmp(got.name, "a.bin") == 0 && !got.compact);
	envelope_opener_free(o);
	membuf_reset(&full);
	membuf_reset(&plain);
}

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	make_people();
	test_round_trips();
	test_many_recipients();
	test_stream_attacks();
	test_sinks();
	test_wrong_size();
	test_limits();
	test_tamper_full();
	test_forgery();
	test_rotation();
	test_compact();
	test_garbage();
	test_reset();
	for (int i = 0; i < 20; i++)
		identity_free(people[i]);
	TEST_MAIN_END();
}
