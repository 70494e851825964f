/*
 * The link handshake: reproduces every published Noise vector for 25519/ChaChaPoly/BLAKE2b
 * (tests/vectors/noise-25519-chachapoly-blake2b.json) on both sides, then the failures
 * issue 4 names: tampering, replay, a wrong static, transport damage, nonce exhaustion.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"
#include "test.h"

/* ---- the vectors file ----------------------------------------------------------------
 *
 * Read as JSON, unchanged from upstream, so the file in the tree stays the published one and
 * a diff against cacophony proves it. The format is fixed (objects, arrays, lowercase hex
 * strings), so a 100-line recursive scanner is enough: it understands objects, arrays and
 * strings without escapes, and skips numbers and literals it does not need. A converter
 * script would have been a second copy of the vectors to keep in sync.
 */

#define HEX_MAX	 256
#define MSGS_MAX 8
#define VEC_MAX	 16

struct hexbuf {
	uint8_t b[HEX_MAX];
	size_t len;
	bool set;
};

struct vmsg {
	struct hexbuf payload, ciphertext;
};

struct vec {
	char name[64];
	struct hexbuf init_prologue, init_static, init_ephemeral, init_remote_static, init_psk;
	struct hexbuf resp_prologue, resp_static, resp_ephemeral, resp_remote_static, resp_psk;
	struct hexbuf handshake_hash;
	struct vmsg msgs[MSGS_MAX];
	size_t n_msgs;
};

enum ctx { CTX_TOP, CTX_VECTOR, CTX_MESSAGE, CTX_OTHER };

struct scanner {
	const char *p, *end;
	struct vec *vecs;
	size_t n_vecs;
	bool bad;
};

static void skip_ws(struct scanner *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r'))
		s->p++;
}

static bool expect(struct scanner *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	s->bad = true;
	return false;
}

/* A string without escapes: (start, len) into the buffer. */
static bool scan_string(struct scanner *s, const char **str, size_t *len)
{
	if (!expect(s, '"'))
		return false;
	*str = s->p;
	while (s->p < s->end && *s->p != '"') {
		if (*s->p == '\\') {
			s->bad = true;
			return false;
		}
		s->p++;
	}
	*len = (size_t)(s->p - *str);
	return expect(s, '"');
}

static bool hex_decode(struct hexbuf *h, const char *str, size_t len)
{
	if (len % 2 || len / 2 > HEX_MAX)
		return false;
	for (size_t i = 0; i < len; i += 2) {
		char two[3] = {str[i], str[i + 1], 0};
		char *e;
		unsigned long v = strtoul(two, &e, 16);

		if (*e)
			return false;
		h->b[i / 2] = (uint8_t)v;
	}
	h->len = len / 2;
	h->set = true;
	return true;
}

/* Where a string value with this key goes, in this context; NULL if nowhere. */
static struct hexbuf *field(struct scanner *s, enum ctx ctx, const char *key, size_t klen)
{
	struct vec *v = s->n_vecs ? &s->vecs[s->n_vecs - 1] : NULL;
#define IS(k) (klen == strlen(k) && memcmp(key, k, klen) == 0)
	if (ctx == CTX_MESSAGE && v && v->n_msgs) {
		struct vmsg *m = &v->msgs[v->n_msgs - 1];
		if (IS("payload"))
			return &m->payload;
		if (IS("ciphertext"))
			return &m->ciphertext;
	}
	if (ctx != CTX_VECTOR || !v)
		return NULL;
	if (IS("init_prologue"))
		return &v->init_prologue;
	if (IS("init_static"))
		return &v->init_static;
	if (IS("init_ephemeral"))
		return &v->init_ephemeral;
	if (IS("init_remote_static"))
		return &v->init_remote_static;
	if (IS("init_psks"))
		return &v->init_psk;
	if (IS("resp_prologue"))
		return &v->resp_prologue;
	if (IS("resp_static"))
		return &v->resp_static;
	if (IS("resp_ephemeral"))
		return &v->resp_ephemeral;
	if (IS("resp_remote_static"))
		return &v->resp_remote_static;
	if (IS("resp_psks"))
		return &v->resp_psk;
	if (IS("handshake_hash"))
		return &v->handshake_hash;
#undef IS
	return NULL;
}

static void scan_value(struct scanner *s, enum ctx ctx, const char *key, size_t klen);

static void scan_object(struct scanner *s, enum ctx ctx)
{
	if (!expect(s, '{'))
		return;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return;
	}
	while (!s->bad) {
		const char *key;
		size_t klen;

		if (!scan_string(s, &key, &klen) || !expect(s, ':'))
			return;
		scan_value(s, ctx, key, klen);
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		expect(s, '}');
		return;
	}
}

static void scan_value(struct scanner *s, enum ctx ctx, const char *key, size_t klen)
{
	skip_ws(s);
	if (s->p >= s->end) {
		s->bad = true;
		return;
	}
	if (*s->p == '"') {
		const char *str;
		size_t len;
		struct hexbuf *h;

		if (!scan_string(s, &str, &len))
			return;
		h = field(s, ctx, key, klen);
		if (ctx == CTX_VECTOR && klen == 13 && !memcmp(key, "protocol_name", 13)) {
			struct vec *v = &s->vecs[s->n_vecs - 1];
			if (len >= sizeof(v->name))
				s->bad = true;
			else
				memcpy(v->name, str, len);
		} else if (h && !hex_decode(h, str, len)) {
			s->bad = true;
		}
	} else if (*s->p == '{') {
		enum ctx inner = CTX_OTHER;

		if (ctx == CTX_TOP && klen == 7 && !memcmp(key, "vectors", 7)) {
			if (s->n_vecs == VEC_MAX) {
				s->bad = true;
				return;
			}
			memset(&s->vecs[s->n_vecs++], 0, sizeof(s->vecs[0]));
			inner = CTX_VECTOR;
		} else if (ctx == CTX_VECTOR && klen == 8 && !memcmp(key, "messages", 8)) {
			struct vec *v = &s->vecs[s->n_vecs - 1];
			if (v->n_msgs == MSGS_MAX) {
				s->bad = true;
				return;
			}
			v->n_msgs++;
			inner = CTX_MESSAGE;
		} else if (ctx == CTX_OTHER && klen == 0) {
			inner = CTX_TOP; /* the document itself */
		}
		scan_object(s, inner);
	} else if (*s->p == '[') {
		/* Elements of an array inherit its key: "vectors", "messages", "init_psks". */
		s->p++;
		skip_ws(s);
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return;
		}
		while (!s->bad) {
			scan_value(s, ctx, key, klen);
			skip_ws(s);
			if (s->p < s->end && *s->p == ',') {
				s->p++;
				continue;
			}
			expect(s, ']');
			return;
		}
	} else {
		/* A number or a literal: not in this file, but harmless to skip. */
		while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']')
			s->p++;
	}
}

static size_t load_vectors(const char *path, struct vec *vecs)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;
	struct scanner s = {0};

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 0;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    !(buf = malloc((size_t)n)) || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "%s: cannot read\n", path);
		fclose(f);
		free(buf);
		return 0;
	}
	fclose(f);
	s.p = buf;
	s.end = buf + n;
	s.vecs = vecs;
	scan_value(&s, CTX_OTHER, "", 0);
	skip_ws(&s);
	free(buf);
	if (s.bad || s.p != s.end) {
		fprintf(stderr, "%s: not the expected JSON\n", path);
		return 0;
	}
	return s.n_vecs;
}

/* ---- helpers ---------------------------------------------------------------------------- */

struct tape {
	const uint8_t *p;
	size_t left;
};

static void tape_rng(void *ctx, void *buf, size_t len)
{
	struct tape *t = ctx;

	if (len > t->left)
		abort();
	memcpy(buf, t->p, len);
	t->p += len;
	t->left -= len;
}

/* An identity whose current box secret key is box_sk (identity_generate draws seed, then key). */
static struct identity *identity_with_box_sk(const uint8_t box_sk[32])
{
	uint8_t secrets[64];
	struct identity *id = NULL;
	struct tape t = {secrets, sizeof(secrets)};

	memset(secrets, 0x5a, 32);
	memcpy(secrets + 32, box_sk, 32);
	tern_crypto_test_set_rng(tape_rng, &t);
	if (identity_generate(&id) != 0)
		abort();
	tern_crypto_test_set_rng(NULL, NULL);
	return id;
}

/* Writes a handshake message with the next ephemeral key taken from eph (if any is drawn). */
static int write_with_eph(struct noise *st, const uint8_t *eph, size_t ephlen,
			  const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
			  size_t *outlen)
{
	struct tape t = {eph, ephlen};
	int ret;

	tern_crypto_test_set_rng(tape_rng, &t);
	ret = noise_write_message(st, payload, len, out, cap, outlen);
	tern_crypto_test_set_rng(NULL, NULL);
	return ret;
}

static const struct {
	const char *name;
	enum noise_pattern pattern;
	size_t n_msgs;
	bool one_way;
} pattern_names[] = {
    {"N", NOISE_N, 1, true},
    {"K", NOISE_K, 1, true},
    {"X", NOISE_X, 1, true},
    {"NK", NOISE_NK, 2, false},
    {"KK", NOISE_KK, 2, false},
    {"IK", NOISE_IK, 2, false},
    {"XX", NOISE_XX, 3, false},
    {"IKpsk2", NOISE_IKPSK2, 2, false},
    {"XXpsk3", NOISE_XXPSK3, 3, false},
};

static int lookup_pattern(const char *protocol, size_t *idx)
{
	const char *suffix = "_25519_ChaChaPoly_BLAKE2b";
	size_t n = strlen(protocol), sl = strlen(suffix);

	if (n < 6 + sl || strncmp(protocol, "Noise_", 6) || strcmp(protocol + n - sl, suffix))
		return -1;
	for (size_t i = 0; i < sizeof(pattern_names) / sizeof(pattern_names[0]); i++) {
		if (strlen(pattern_names[i].name) == n - 6 - sl &&
		    !strncmp(protocol + 6, pattern_names[i].name, n - 6 - sl)) {
			*idx = i;
			return 0;
		}
	}
	return -1;
}

/* ---- the vectors ------------------------------------------------------------------------- */

static unsigned run_vector(const struct vec *v)
{
	struct identity *iid = NULL, *rid = NULL;
	struct noise *ini = NULL, *rsp = NULL;
	struct noise_cipher *is = NULL, *ir = NULL, *rs = NULL, *rr = NULL;
	uint8_t out[1024], pl[1024], h[NOISE_HASH_LEN];
	size_t idx, outlen, plen;
	unsigned checked = 0;
	int failures = test_failures;

	if (lookup_pattern(v->name, &idx) != 0) {
		fprintf(stderr, "%s: unknown pattern\n", v->name);
		test_failures++;
		return 0;
	}
	if (v->init_static.set)
		iid = identity_with_box_sk(v->init_static.b);
	if (v->resp_static.set)
		rid = identity_with_box_sk(v->resp_static.b);
	CHECK_EQ(noise_new(pattern_names[idx].pattern, true, v->init_prologue.b,
			   v->init_prologue.len, iid,
			   v->init_remote_static.set ? v->init_remote_static.b : NULL, &ini),
		 0);
	CHECK_EQ(noise_new(pattern_names[idx].pattern, false, v->resp_prologue.b,
			   v->resp_prologue.len, rid,
			   v->resp_remote_static.set ? v->resp_remote_static.b : NULL, &rsp),
		 0);
	if (!ini || !rsp)
		goto out;
	if (v->init_psk.set)
		CHECK_EQ(noise_set_psk(ini, v->init_psk.b), 0);
	if (v->resp_psk.set)
		CHECK_EQ(noise_set_psk(rsp, v->resp_psk.b), 0);
	CHECK(v->n_msgs > pattern_names[idx].n_msgs);

	for (size_t i = 0; i < v->n_msgs; i++) {
		const struct vmsg *m = &v->msgs[i];
		bool from_init = pattern_names[idx].one_way || i % 2 == 0;

		if (i < pattern_names[idx].n_msgs) {
			struct noise *w = from_init ? ini : rsp, *r = from_init ? rsp : ini;

			CHECK_EQ(noise_next(w), NOISE_NEXT_WRITE);
			CHECK_EQ(noise_next(r), NOISE_NEXT_READ);
			const struct hexbuf *e =
			    from_init ? &v->init_ephemeral : &v->resp_ephemeral;

			CHECK_EQ(write_with_eph(w, e->b, e->set ? e->len : 0, m->payload.b,
						m->payload.len, out, sizeof(out), &outlen),
				 0);
			CHECK_EQ(outlen, m->ciphertext.len);
			CHECK_MEM(out, m->ciphertext.b, m->ciphertext.len);
			CHECK_EQ(noise_read_message(r, m->ciphertext.b, m->ciphertext.len, pl,
						    sizeof(pl), &plen),
				 0);
		} else {
			struct noise_cipher *w = from_init ? is : rs, *r = from_init ? rr : ir;

			if (i == pattern_names[idx].n_msgs) {
				/* The handshake is over: both sides agree on h, then split. */
				CHECK_EQ(noise_next(ini), NOISE_NEXT_SPLIT);
				CHECK_EQ(noise_next(rsp), NOISE_NEXT_SPLIT);
				CHECK_EQ(noise_handshake_hash(ini, h), 0);
				CHECK_MEM(h, v->handshake_hash.b, NOISE_HASH_LEN);
				CHECK_EQ(noise_handshake_hash(rsp, h), 0);
				CHECK_MEM(h, v->handshake_hash.b, NOISE_HASH_LEN);
				CHECK_EQ(v->handshake_hash.len, NOISE_HASH_LEN);
				CHECK_EQ(noise_split(ini, &is, &ir), 0);
				CHECK_EQ(noise_split(rsp, &rs, &rr), 0);
				CHECK(is && rr);
				CHECK(pattern_names[idx].one_way ? !ir && !rs : ir && rs);
				/* h outlives the split, for channel binding. */
				CHECK_EQ(noise_handshake_hash(ini, h), 0);
				CHECK_MEM(h, v->handshake_hash.b, NOISE_HASH_LEN);
				w = from_init ? is : rs;
				r = from_init ? rr : ir;
			}
			if (!w || !r)
				goto out;
			CHECK_EQ(noise_encrypt(w, m->payload.b, m->payload.len, out, sizeof(out),
					       &outlen),
				 0);
			CHECK_EQ(outlen, m->ciphertext.len);
			CHECK_MEM(out, m->ciphertext.b, m->ciphertext.len);
			CHECK_EQ(noise_decrypt(r, m->ciphertext.b, m->ciphertext.len, pl,
					       sizeof(pl), &plen),
				 0);
		}
		CHECK_EQ(plen, m->payload.len);
		CHECK_MEM(pl, m->payload.b, m->payload.len);
		checked++;
	}
out:
	if (test_failures != failures)
		fprintf(stderr, "  in vector %s\n", v->name);
	noise_cipher_free(is);
	noise_cipher_free(ir);
	noise_cipher_free(rs);
	noise_cipher_free(rr);
	noise_free(ini);
	noise_free(rsp);
	identity_free(iid);
	identity_free(rid);
	return checked;
}

static void test_vectors(void)
{
	const char *root = getenv("TERN_VECTORS");
	char path[4096];
	static struct vec vecs[VEC_MAX];
	size_t n;
	bool seen[sizeof(pattern_names) / sizeof(pattern_names[0])] = {false};

	snprintf(path, sizeof(path), "%s/noise-25519-chachapoly-blake2b.json",
		 root ? root : "../vectors");
	n = load_vectors(path, vecs);
	CHECK_EQ(n, 9);
	for (size_t i = 0; i < n; i++) {
		size_t idx;
		unsigned m = run_vector(&vecs[i]);

		CHECK_EQ(m, vecs[i].n_msgs);
		if (lookup_pattern(vecs[i].name, &idx) == 0)
			seen[idx] = true;
		printf("%-40s %u messages\n", vecs[i].name, m);
	}
	/* Every supported pattern, IK and XX above all, was checked against a vector. */
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		CHECK(seen[i]);
}

/* ---- behaviour beyond the vectors --------------------------------------------------------- */

struct pair {
	struct identity *iid, *rid;
	struct identity_public ipub, rpub;
	struct noise *ini, *rsp;
	uint8_t m[3][256];
	size_t mlen[3];
};

static void pair_free(struct pair *p)
{
	noise_free(p->ini);
	noise_free(p->rsp);
	identity_free(p->iid);
	identity_free(p->rid);
	memset(p, 0, sizeof(*p));
}

static const uint8_t prologue[] = "tern link test";

/* Two fresh identities and the states of a handshake between them (rs: what IK assumes). */
static void pair_new(struct pair *p, enum noise_pattern pat, const uint8_t *rs)
{
	memset(p, 0, sizeof(*p));
	CHECK_EQ(identity_generate(&p->iid), 0);
	CHECK_EQ(identity_generate(&p->rid), 0);
	identity_get_public(p->iid, &p->ipub);
	identity_get_public(p->rid, &p->rpub);
	CHECK_EQ(noise_new(pat, true, prologue, sizeof(prologue), p->iid,
			   pat == NOISE_IK ? (rs ? rs : p->rpub.box_pk) : NULL, &p->ini),
		 0);
	CHECK_EQ(noise_new(pat, false, prologue, sizeof(prologue), p->rid, NULL, &p->rsp), 0);
}

/* Everything on a failed state fails, and nothing about the session can be read from it. */
static void check_dead(struct noise *st)
{
	uint8_t buf[256], h[NOISE_HASH_LEN], pk[32];
	size_t n;
	struct noise_cipher *a, *b;

	CHECK_EQ(noise_next(st), NOISE_NEXT_FAILED);
	CHECK_EQ(noise_write_message(st, NULL, 0, buf, sizeof(buf), &n), -EBADMSG);
	CHECK_EQ(noise_read_message(st, buf, 96, buf, sizeof(buf), &n), -EBADMSG);
	CHECK_EQ(noise_handshake_hash(st, h), -EINVAL);
	CHECK_EQ(noise_remote_static(st, pk), -ENOKEY);
	CHECK_EQ(noise_split(st, &a, &b), -EINVAL);
	CHECK(!a && !b);
}

static void test_ik_authenticates(void)
{
	struct pair p;
	uint8_t pl[64], pk[32];
	size_t n;
	struct identity_public other;
	struct identity *oid;

	pair_new(&p, NOISE_IK, NULL);
	CHECK_EQ(noise_write_message(p.ini, (const uint8_t *)"hi", 2, p.m[0], sizeof(p.m[0]),
				     &p.mlen[0]),
		 0);
	CHECK_EQ(p.mlen[0], 2 + NOISE_HANDSHAKE_OVERHEAD_MAX);
	/* The responder knows nothing of the initiator before the first message. */
	CHECK_EQ(noise_remote_static(p.rsp, pk), -ENOKEY);
	CHECK(!noise_remote_is(p.rsp, &p.ipub));
	CHECK_EQ(noise_read_message(p.rsp, p.m[0], p.mlen[0], pl, sizeof(pl), &n), 0);
	CHECK_EQ(n, 2);
	/* ...and everything after it, before writing a byte back. */
	CHECK_EQ(noise_remote_static(p.rsp, pk), 0);
	CHECK_MEM(pk, p.ipub.box_pk, 32);
	CHECK(noise_remote_is(p.rsp, &p.ipub));
	CHECK(!noise_remote_is(p.rsp, &p.rpub));
	/* The key must be certified by the identity that claims it. */
	CHECK_EQ(identity_generate(&oid), 0);
	identity_get_public(oid, &other);
	memcpy(other.box_pk, p.ipub.box_pk, 32);
	CHECK(!noise_remote_is(p.rsp, &other));
	identity_free(oid);
	p.ipub.cert[0] ^= 1;
	CHECK(!noise_remote_is(p.rsp, &p.ipub));
	CHECK(noise_remote_is(p.ini, &p.rpub));
	pair_free(&p);
}

static void test_xx_reveals_statics(void)
{
	struct pair p;
	uint8_t pl[64], pk[32];
	size_t n;

	pair_new(&p, NOISE_XX, NULL);
	CHECK_EQ(noise_remote_static(p.ini, pk), -ENOKEY);
	CHECK_EQ(noise_write_message(p.ini, NULL, 0, p.m[0], sizeof(p.m[0]), &p.mlen[0]), 0);
	CHECK_EQ(p.mlen[0], 32);
	CHECK_EQ(noise_read_message(p.rsp, p.m[0], p.mlen[0], pl, sizeof(pl), &n), 0);
	CHECK_EQ(noise_remote_static(p.rsp, pk), -ENOKEY);
	CHECK_EQ(noise_write_message(p.rsp, NULL, 0, p.m[1], sizeof(p.m[1]), &p.mlen[1]), 0);
	CHECK_EQ(p.mlen[1], NOISE_HANDSHAKE_OVERHEAD_MAX);
	CHECK_EQ(noise_read_message(p.ini, p.m[1], p.mlen[1], pl, sizeof(pl), &n), 0);
	CHECK(noise_remote_is(p.ini, &p.rpub));
	CHECK_EQ(noise_write_message(p.ini, NULL, 0, p.m[2], sizeof(p.m[2]), &p.mlen[2]), 0);
	CHECK_EQ(noise_read_message(p.rsp, p.m[2], p.mlen[2], pl, sizeof(pl), &n), 0);
	CHECK(noise_remote_is(p.rsp, &p.ipub));
	CHECK_EQ(noise_next(p.rsp), NOISE_NEXT_SPLIT);
	CHECK_EQ(noise_next(p.ini), NOISE_NEXT_SPLIT);
	pair_free(&p);
}

/* Fixed ephemeral keys, so that a state can be rebuilt exactly for each damaged copy. */
static const uint8_t eph_i[32] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
				  0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x01, 0x12, 0x23, 0x34, 0x45,
				  0x56, 0x67, 0x78, 0x89, 0x9a, 0xab, 0xbc, 0xcd, 0xde, 0xef};
static const uint8_t eph_r[32] = {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a,
				  0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90, 0x01, 0x02, 0x03, 0x04};

/* Initiator of XX that has written message 1 (always the same bytes: fixed ephemeral). */
static struct noise *xx_initiator(const struct identity *id, uint8_t *m1, size_t *m1len)
{
	struct noise *st = NULL;

	CHECK_EQ(noise_new(NOISE_XX, true, prologue, sizeof(prologue), id, NULL, &st), 0);
	CHECK_EQ(write_with_eph(st, eph_i, 32, NULL, 0, m1, 256, m1len), 0);
	return st;
}

/* Responder of XX that has read m1 and written message 2 (fixed ephemeral) to m2. */
static struct noise *xx_responder(const struct identity *id, const uint8_t *m1, size_t m1len,
				  uint8_t *m2, size_t *m2len)
{
	struct noise *st = NULL;
	uint8_t pl[64];
	size_t n;

	CHECK_EQ(noise_new(NOISE_XX, false, prologue, sizeof(prologue), id, NULL, &st), 0);
	CHECK_EQ(noise_read_message(st, m1, m1len, pl, sizeof(pl), &n), 0);
	CHECK_EQ(write_with_eph(st, eph_r, 32, (const uint8_t *)"r", 1, m2, 256, m2len), 0);
	return st;
}

/* A flipped bit anywhere in a handshake message, or a wrong length, kills the reader. */
static void test_tampered_handshake(void)
{
	struct identity *iid, *rid;
	struct identity_public rpub;
	struct noise *ini, *rsp;
	uint8_t m1[256], m2[256], m3[256], m[300], pl[64];
	size_t l1, l2, l3, n;

	CHECK_EQ(identity_generate(&iid), 0);
	CHECK_EQ(identity_generate(&rid), 0);
	identity_get_public(rid, &rpub);

	/* IK message 1: everything after "e" depends on it, so every bit counts. */
	CHECK_EQ(noise_new(NOISE_IK, true, prologue, sizeof(prologue), iid, rpub.box_pk, &ini), 0);
	CHECK_EQ(noise_write_message(ini, (const uint8_t *)"0rtt", 4, m1, sizeof(m1), &l1), 0);
	for (size_t i = 0; i < l1 * 8; i++) {
		memcpy(m, m1, l1);
		m[i / 8] ^= (uint8_t)(1u << (i % 8));
		CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue), rid, NULL, &rsp),
			 0);
		memset(pl, 0xaa, sizeof(pl));
		CHECK_EQ(noise_read_message(rsp, m, l1, pl, sizeof(pl), &n), -EBADMSG);
		CHECK_EQ(n, 0);
		/* The payload never shows (a failed tag leaves zeros, an earlier failure 0xaa). */
		CHECK(memcmp(pl, "0rtt", 4) != 0);
		check_dead(rsp);
		noise_free(rsp);
	}
	for (size_t len = 0; len <= l1 + 1; len++) {
		if (len == l1)
			continue;
		memset(m, 0, sizeof(m));
		memcpy(m, m1, len < l1 ? len : l1);
		CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue), rid, NULL, &rsp),
			 0);
		CHECK_EQ(noise_read_message(rsp, m, len, pl, sizeof(pl), &n), -EBADMSG);
		check_dead(rsp);
		noise_free(rsp);
	}
	/* A different prologue is a different handshake. */
	CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue) - 1, rid, NULL, &rsp), 0);
	CHECK_EQ(noise_read_message(rsp, m1, l1, pl, sizeof(pl), &n), -EBADMSG);
	noise_free(rsp);
	noise_free(ini);

	/* XX message 1 is clear and unauthenticated: damage shows when message 2 is read. */
	ini = xx_initiator(iid, m1, &l1);
	memcpy(m, m1, l1);
	m[5] ^= 0x10;
	rsp = xx_responder(rid, m, l1, m2, &l2);
	CHECK_EQ(noise_read_message(ini, m2, l2, pl, sizeof(pl), &n), -EBADMSG);
	check_dead(ini);
	noise_free(ini);
	noise_free(rsp);

	/* XX message 2 and message 3, every bit, each time on an identical fresh state. */
	ini = xx_initiator(iid, m1, &l1);
	rsp = xx_responder(rid, m1, l1, m2, &l2);
	CHECK_EQ(noise_read_message(ini, m2, l2, pl, sizeof(pl), &n), 0);
	CHECK_EQ(noise_write_message(ini, (const uint8_t *)"i", 1, m3, sizeof(m3), &l3), 0);
	noise_free(ini);
	noise_free(rsp);
	for (size_t i = 0; i < l2 * 8; i++) {
		memcpy(m, m2, l2);
		m[i / 8] ^= (uint8_t)(1u << (i % 8));
		ini = xx_initiator(iid, m1, &l1);
		CHECK_EQ(noise_read_message(ini, m, l2, pl, sizeof(pl), &n), -EBADMSG);
		check_dead(ini);
		noise_free(ini);
	}
	for (size_t i = 0; i < l3 * 8; i++) {
		memcpy(m, m3, l3);
		m[i / 8] ^= (uint8_t)(1u << (i % 8));
		rsp = xx_responder(rid, m1, l1, m2, &l2);
		CHECK_EQ(noise_read_message(rsp, m, l3, pl, sizeof(pl), &n), -EBADMSG);
		check_dead(rsp);
		noise_free(rsp);
	}
	/* The untouched message 3 still completes the same rebuilt handshake. */
	rsp = xx_responder(rid, m1, l1, m2, &l2);
	CHECK_EQ(noise_read_message(rsp, m3, l3, pl, sizeof(pl), &n), 0);
	CHECK_EQ(noise_next(rsp), NOISE_NEXT_SPLIT);
	noise_free(rsp);
	identity_free(iid);
	identity_free(rid);
}

/* Runs a whole handshake, both sides, and splits; payloads empty. */
static void handshake(struct noise *ini, struct noise *rsp, struct noise_cipher *ic[2],
		      struct noise_cipher *rc[2])
{
	uint8_t m[256], pl[64];
	size_t l, n;

	while (noise_next(ini) != NOISE_NEXT_SPLIT && noise_next(ini) != NOISE_NEXT_FAILED) {
		struct noise *w = noise_next(ini) == NOISE_NEXT_WRITE ? ini : rsp;
		struct noise *r = w == ini ? rsp : ini;

		CHECK_EQ(noise_write_message(w, NULL, 0, m, sizeof(m), &l), 0);
		CHECK_EQ(noise_read_message(r, m, l, pl, sizeof(pl), &n), 0);
	}
	CHECK_EQ(noise_split(ini, &ic[0], &ic[1]), 0);
	CHECK_EQ(noise_split(rsp, &rc[0], &rc[1]), 0);
}

/* A replayed IK message 1 gets a fresh responder ephemeral, so a session the replayer cannot
 * use; and an initiator with the wrong responder key gets nothing. */
static void test_replay_and_wrong_static(void)
{
	struct identity *iid, *rid, *oid;
	struct identity_public rpub, opub;
	struct noise *ini, *ra, *rb;
	struct noise_cipher *ic[2], *ac[2], *bc[2];
	uint8_t m1[256], ma[256], mb[256], pl[64], ha[NOISE_HASH_LEN], hb[NOISE_HASH_LEN];
	uint8_t c[64];
	size_t l1, la, lb, n, cl;

	CHECK_EQ(identity_generate(&iid), 0);
	CHECK_EQ(identity_generate(&rid), 0);
	CHECK_EQ(identity_generate(&oid), 0);
	identity_get_public(rid, &rpub);
	identity_get_public(oid, &opub);

	CHECK_EQ(noise_new(NOISE_IK, true, prologue, sizeof(prologue), iid, rpub.box_pk, &ini), 0);
	CHECK_EQ(noise_write_message(ini, NULL, 0, m1, sizeof(m1), &l1), 0);
	CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue), rid, NULL, &ra), 0);
	CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue), rid, NULL, &rb), 0);
	CHECK_EQ(noise_read_message(ra, m1, l1, pl, sizeof(pl), &n), 0);
	CHECK_EQ(noise_read_message(rb, m1, l1, pl, sizeof(pl), &n), 0);
	CHECK_EQ(noise_write_message(ra, NULL, 0, ma, sizeof(ma), &la), 0);
	CHECK_EQ(noise_write_message(rb, NULL, 0, mb, sizeof(mb), &lb), 0);
	CHECK_EQ(la, lb);
	CHECK(memcmp(ma, mb, 32) != 0);
	CHECK(memcmp(ma, mb, la) != 0);
	CHECK_EQ(noise_read_message(ini, ma, la, pl, sizeof(pl), &n), 0);
	CHECK_EQ(noise_handshake_hash(ra, ha), 0);
	CHECK_EQ(noise_handshake_hash(rb, hb), 0);
	CHECK(memcmp(ha, hb, sizeof(ha)) != 0);
	CHECK_EQ(noise_split(ini, &ic[0], &ic[1]), 0);
	CHECK_EQ(noise_split(ra, &ac[0], &ac[1]), 0);
	CHECK_EQ(noise_split(rb, &bc[0], &bc[1]), 0);
	CHECK_EQ(noise_encrypt(ic[0], (const uint8_t *)"data", 4, c, sizeof(c), &cl), 0);
	CHECK_EQ(noise_decrypt(bc[1], c, cl, pl, sizeof(pl), &n), -EBADMSG);
	CHECK_EQ(noise_decrypt(ac[1], c, cl, pl, sizeof(pl), &n), 0);
	CHECK_EQ(n, 4);
	CHECK_MEM(pl, "data", 4);
	/* And what the replayed responder sends, the real initiator refuses. */
	CHECK_EQ(noise_encrypt(bc[0], (const uint8_t *)"evil", 4, c, sizeof(c), &cl), 0);
	CHECK_EQ(noise_decrypt(ic[1], c, cl, pl, sizeof(pl), &n), -EBADMSG);
	for (int i = 0; i < 2; i++) {
		noise_cipher_free(ic[i]);
		noise_cipher_free(ac[i]);
		noise_cipher_free(bc[i]);
	}
	noise_free(ini);
	noise_free(ra);
	noise_free(rb);

	/* IK to a key the responder does not hold: its read fails, so it sends nothing. */
	CHECK_EQ(noise_new(NOISE_IK, true, prologue, sizeof(prologue), iid, opub.box_pk, &ini), 0);
	CHECK_EQ(noise_write_message(ini, NULL, 0, m1, sizeof(m1), &l1), 0);
	CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue), rid, NULL, &ra), 0);
	CHECK_EQ(noise_read_message(ra, m1, l1, pl, sizeof(pl), &n), -EBADMSG);
	check_dead(ra);
	noise_free(ra);
	noise_free(ini);
	identity_free(iid);
	identity_free(rid);
	identity_free(oid);
}

static void test_transport(void)
{
	struct identity *iid, *rid;
	struct noise *ini, *rsp;
	struct noise_cipher *ic[2], *rc[2];
	uint8_t c0[64], c1[64], c[64], pl[64];
	size_t l0, l1, l, n;

	CHECK_EQ(identity_generate(&iid), 0);
	CHECK_EQ(identity_generate(&rid), 0);
	CHECK_EQ(noise_new(NOISE_XX, true, prologue, sizeof(prologue), iid, NULL, &ini), 0);
	CHECK_EQ(noise_new(NOISE_XX, false, prologue, sizeof(prologue), rid, NULL, &rsp), 0);
	handshake(ini, rsp, ic, rc);
	/* The split wiped the handshake; only h and the peer's key remain. */
	CHECK_EQ(noise_next(ini), NOISE_NEXT_FAILED);
	{
		struct noise_cipher *a, *b;
		uint8_t h[NOISE_HASH_LEN], pk[32];

		CHECK_EQ(noise_split(ini, &a, &b), -EINVAL);
		CHECK(!a && !b);
		CHECK_EQ(noise_handshake_hash(ini, h), 0);
		CHECK_EQ(noise_remote_static(ini, pk), 0);
	}

	CHECK_EQ(noise_encrypt(ic[0], (const uint8_t *)"zero", 4, c0, sizeof(c0), &l0), 0);
	CHECK_EQ(noise_encrypt(ic[0], (const uint8_t *)"one", 3, c1, sizeof(c1), &l1), 0);
	CHECK_EQ(l0, 4 + NOISE_TRANSPORT_OVERHEAD);
	/* Too small a buffer changes nothing. */
	CHECK_EQ(noise_decrypt(rc[1], c0, l0, pl, 3, &n), -ENOSPC);
	CHECK_EQ(noise_decrypt(rc[1], c0, l0, pl, sizeof(pl), &n), 0);
	CHECK_MEM(pl, "zero", 4);
	/* A replay of message 0 where message 1 is due fails and ends the session... */
	CHECK_EQ(noise_decrypt(rc[1], c0, l0, pl, sizeof(pl), &n), -EBADMSG);
	/* ...so even the genuine message 1 is refused afterwards. */
	CHECK_EQ(noise_decrypt(rc[1], c1, l1, pl, sizeof(pl), &n), -EBADMSG);

	/* The other direction: reordering, then tampering, each fatal. */
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"a", 1, c0, sizeof(c0), &l0), 0);
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"b", 1, c1, sizeof(c1), &l1), 0);
	CHECK_EQ(noise_decrypt(ic[1], c1, l1, pl, sizeof(pl), &n), -EBADMSG);
	CHECK_EQ(noise_decrypt(ic[1], c0, l0, pl, sizeof(pl), &n), -EBADMSG);
	for (int i = 0; i < 2; i++) {
		noise_cipher_free(ic[i]);
		noise_cipher_free(rc[i]);
	}
	noise_free(ini);
	noise_free(rsp);

	/* Every flipped bit, on fresh sessions; then short and over-long messages. */
	CHECK_EQ(noise_new(NOISE_XX, true, prologue, sizeof(prologue), iid, NULL, &ini), 0);
	CHECK_EQ(noise_new(NOISE_XX, false, prologue, sizeof(prologue), rid, NULL, &rsp), 0);
	handshake(ini, rsp, ic, rc);
	CHECK_EQ(noise_encrypt(ic[0], (const uint8_t *)"payload", 7, c0, sizeof(c0), &l0), 0);
	for (size_t i = 0; i < l0 * 8; i++) {
		memcpy(c, c0, l0);
		c[i / 8] ^= (uint8_t)(1u << (i % 8));
		noise_cipher_set_nonce(rc[1], 0);
		CHECK_EQ(noise_decrypt(rc[1], c, l0, pl, sizeof(pl), &n), -EBADMSG);
		/* Dead: setting the nonce back does not revive it. */
		noise_cipher_set_nonce(rc[1], 0);
		CHECK_EQ(noise_decrypt(rc[1], c0, l0, pl, sizeof(pl), &n), -EBADMSG);
		noise_cipher_free(rc[1]);
		noise_cipher_free(rc[0]);
		noise_cipher_free(ic[0]);
		noise_cipher_free(ic[1]);
		noise_free(ini);
		noise_free(rsp);
		CHECK_EQ(noise_new(NOISE_XX, true, prologue, sizeof(prologue), iid, NULL, &ini), 0);
		CHECK_EQ(noise_new(NOISE_XX, false, prologue, sizeof(prologue), rid, NULL, &rsp),
			 0);
		handshake(ini, rsp, ic, rc);
		CHECK_EQ(noise_encrypt(ic[0], (const uint8_t *)"payload", 7, c0, sizeof(c0), &l0),
			 0);
	}
	CHECK_EQ(noise_decrypt(rc[1], c0, NOISE_TRANSPORT_OVERHEAD - 1, pl, sizeof(pl), &n),
		 -EBADMSG);
	CHECK_EQ(noise_decrypt(rc[1], c0, l0, pl, sizeof(pl), &n), -EBADMSG);
	/* A dead cipher encrypts nothing either; a short buffer on a live one changes nothing. */
	CHECK_EQ(noise_encrypt(rc[1], (const uint8_t *)"x", 1, c, sizeof(c), &l), -EBADMSG);
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"x", 1, c, NOISE_TRANSPORT_OVERHEAD, &l),
		 -ENOSPC);
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"x", 1, c, sizeof(c), &l), 0);
	CHECK_EQ(noise_decrypt(ic[1], c, l, pl, sizeof(pl), &n), 0);
	CHECK_EQ(n, 1);

	/* Nonce exhaustion: the last usable nonce is 2^64 - 2; 2^64 - 1 is never used. */
	CHECK_EQ(
	    noise_encrypt(ic[0], pl, NOISE_MSG_MAX - NOISE_TRANSPORT_OVERHEAD + 1, c, 1 << 17, &l),
	    -EINVAL);
	noise_cipher_set_nonce(rc[0], UINT64_MAX - 1);
	noise_cipher_set_nonce(ic[1], UINT64_MAX - 1);
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"last", 4, c0, sizeof(c0), &l0), 0);
	CHECK_EQ(noise_decrypt(ic[1], c0, l0, pl, sizeof(pl), &n), 0);
	CHECK_MEM(pl, "last", 4);
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"more", 4, c1, sizeof(c1), &l1), -EOVERFLOW);
	CHECK_EQ(l1, 0);
	CHECK_EQ(noise_encrypt(rc[0], (const uint8_t *)"more", 4, c1, sizeof(c1), &l1), -EOVERFLOW);
	/* A receiver at the reserved nonce refuses whatever comes (here a replay). */
	CHECK_EQ(noise_decrypt(ic[1], c0, l0, pl, sizeof(pl), &n), -EBADMSG);

	for (int i = 0; i < 2; i++) {
		noise_cipher_free(ic[i]);
		noise_cipher_free(rc[i]);
	}
	noise_free(ini);
	noise_free(rsp);
	identity_free(iid);
	identity_free(rid);
}

/* Low-order keys: the all-zero DH output is refused on both sides (Noise §12.1). */
static void test_low_order(void)
{
	static const uint8_t low[][32] = {
	    {0},
	    {1},
	    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
	     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
	     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	};
	struct identity *iid, *rid;
	struct noise *ini, *rsp;
	uint8_t m[256], pl[64];
	size_t l, n;

	CHECK_EQ(identity_generate(&iid), 0);
	CHECK_EQ(identity_generate(&rid), 0);
	for (size_t i = 0; i < sizeof(low) / sizeof(low[0]); i++) {
		/* A configured peer key of low order: the initiator writes nothing. */
		CHECK_EQ(noise_new(NOISE_IK, true, prologue, sizeof(prologue), iid, low[i], &ini),
			 0);
		CHECK_EQ(noise_write_message(ini, NULL, 0, m, sizeof(m), &l), -EBADMSG);
		CHECK_EQ(l, 0);
		check_dead(ini);
		noise_free(ini);
		/* A low-order ephemeral in IK message 1. */
		memset(m, 0x42, sizeof(m));
		memcpy(m, low[i], 32);
		CHECK_EQ(noise_new(NOISE_IK, false, prologue, sizeof(prologue), rid, NULL, &rsp),
			 0);
		CHECK_EQ(noise_read_message(rsp, m, 96, pl, sizeof(pl), &n), -EBADMSG);
		check_dead(rsp);
		noise_free(rsp);
		/* ...and in XX message 1, caught when the responder computes ee. */
		CHECK_EQ(noise_new(NOISE_XX, false, prologue, sizeof(prologue), rid, NULL, &rsp),
			 0);
		CHECK_EQ(noise_read_message(rsp, m, 32, pl, sizeof(pl), &n), 0);
		CHECK_EQ(noise_write_message(rsp, NULL, 0, m, sizeof(m), &l), -EBADMSG);
		check_dead(rsp);
		noise_free(rsp);
	}
	identity_free(iid);
	identity_free(rid);
}

static void test_misuse(void)
{
	struct identity *iid, *rid;
	struct identity_public rpub;
	struct noise *ini, *again, *rsp;
	uint8_t m[256], m2[256], pl[8];
	static uint8_t big[NOISE_MSG_MAX + 1];
	uint8_t psk[32] = {7};
	size_t l, l2, n;

	CHECK_EQ(identity_generate(&iid), 0);
	CHECK_EQ(identity_generate(&rid), 0);
	identity_get_public(rid, &rpub);
	/* Keys missing or superfluous for the pattern and side. */
	CHECK_EQ(noise_new(NOISE_IK, true, NULL, 0, iid, NULL, &ini), -EINVAL);
	CHECK(ini == NULL);
	CHECK_EQ(noise_new(NOISE_IK, false, NULL, 0, rid, rpub.box_pk, &ini), -EINVAL);
	CHECK_EQ(noise_new(NOISE_XX, true, NULL, 0, iid, rpub.box_pk, &ini), -EINVAL);
	CHECK_EQ(noise_new(NOISE_XX, true, NULL, 0, NULL, NULL, &ini), -EINVAL);
	CHECK_EQ(noise_new(NOISE_IK, true, NULL, 0, NULL, rpub.box_pk, &ini), -EINVAL);
	CHECK_EQ(noise_new((enum noise_pattern)0, true, NULL, 0, iid, NULL, &ini), -EINVAL);
	CHECK_EQ(noise_new((enum noise_pattern)99, true, NULL, 0, iid, NULL, &ini), -EINVAL);
	CHECK_EQ(noise_new(NOISE_XX, true, NULL, 5, iid, NULL, &ini), -EINVAL);

	/* Out of turn; a short buffer changes nothing (same bytes after, fixed ephemeral). */
	CHECK_EQ(noise_new(NOISE_XX, true, prologue, sizeof(prologue), iid, NULL, &ini), 0);
	CHECK_EQ(noise_new(NOISE_XX, true, prologue, sizeof(prologue), iid, NULL, &again), 0);
	CHECK_EQ(noise_set_psk(ini, psk), -EINVAL);
	CHECK_EQ(noise_read_message(ini, m, 32, pl, sizeof(pl), &n), -EINVAL);
	CHECK_EQ(write_with_eph(ini, eph_i, 32, (const uint8_t *)"abc", 3, m, 34, &l), -ENOSPC);
	CHECK_EQ(noise_next(ini), NOISE_NEXT_WRITE);
	CHECK_EQ(noise_write_message(ini, big, sizeof(big), m, sizeof(m), &l), -EINVAL);
	CHECK_EQ(noise_write_message(ini, big, NOISE_MSG_MAX - 31, m, sizeof(m), &l), -EINVAL);
	CHECK_EQ(write_with_eph(ini, eph_i, 32, (const uint8_t *)"abc", 3, m, 35, &l), 0);
	CHECK_EQ(write_with_eph(again, eph_i, 32, (const uint8_t *)"abc", 3, m2, sizeof(m2), &l2),
		 0);
	CHECK_EQ(l, 35);
	CHECK_EQ(l2, 35);
	CHECK_MEM(m, m2, 35);
	CHECK_EQ(noise_write_message(ini, NULL, 0, m, sizeof(m), &l), -EINVAL);
	CHECK_EQ(noise_next(ini), NOISE_NEXT_READ);
	/* A payload longer than the reader's buffer: -ENOSPC, and the state can still read. */
	CHECK_EQ(noise_new(NOISE_XX, false, prologue, sizeof(prologue), rid, NULL, &rsp), 0);
	CHECK_EQ(noise_read_message(rsp, m2, l2, pl, 2, &n), -ENOSPC);
	CHECK_EQ(noise_read_message(rsp, m2, l2, NULL, 0, &n), -ENOSPC);
	CHECK_EQ(noise_read_message(rsp, m2, l2, NULL, 3, &n), -EINVAL);
	CHECK_EQ(noise_next(rsp), NOISE_NEXT_READ);
	CHECK_EQ(noise_read_message(rsp, m2, l2, pl, 3, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_MEM(pl, "abc", 3);
	CHECK_EQ(noise_handshake_hash(rsp, m), -EINVAL);
	noise_free(rsp);
	noise_free(ini);
	noise_free(again);

	/* psk patterns need the psk before the first message, and only then. */
	CHECK_EQ(noise_new(NOISE_XXPSK3, true, NULL, 0, iid, NULL, &ini), 0);
	CHECK_EQ(noise_write_message(ini, NULL, 0, m, sizeof(m), &l), -EINVAL);
	CHECK_EQ(noise_set_psk(ini, psk), 0);
	CHECK_EQ(noise_write_message(ini, NULL, 0, m, sizeof(m), &l), 0);
	CHECK_EQ(noise_set_psk(ini, psk), -EINVAL);
	noise_free(ini);
	noise_free(NULL);
	noise_cipher_free(NULL);
	identity_free(iid);
	identity_free(rid);
}

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	test_vectors();
	test_ik_authenticates();
	test_xx_reveals_statics();
	test_tampered_handshake();
	test_replay_and_wrong_static();
	test_transport();
	test_low_order();
	test_misuse();
	TEST_MAIN_END();
}
