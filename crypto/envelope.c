/* The full-form end-to-end envelope: multi-recipient, streamed, signed; and the opener of both
 * forms. */
#include <errno.h>
#include <stdlib.h>

#include "crypto/internal.h"
#include "crypto/testing.h"

/* Wrap keys and the compact key are single-use, so the AEAD nonce is constant. */
static const uint8_t zero_nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

bool envelope_name_ok(enum envelope_kind kind, const char *name, size_t len)
{
	if (kind == ENVELOPE_TEXT || kind == ENVELOPE_CONTROL)
		return len == 0;
	if (kind != ENVELOPE_FILE || len == 0 || len > ENVELOPE_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '/' || name[i] == '\0')
			return false;
	}
	return true;
}

/* Length of meta->name, or ENVELOPE_NAME_MAX + 1 if it is not terminated in time. */
static size_t name_len(const struct envelope_meta *meta)
{
	return strnlen(meta->name, sizeof(meta->name));
}

static bool meta_ok(const struct envelope_meta *meta)
{
	size_t nl = name_len(meta);

	return nl <= ENVELOPE_NAME_MAX && envelope_name_ok(meta->kind, meta->name, nl) &&
	       meta->size <= ENV_SIZE_MAX;
}

static uint64_t data_chunks(uint64_t size)
{
	return (size + ENV_CHUNK - 1) / ENV_CHUNK;
}

uint64_t envelope_sealed_size(size_t n_recipients, const struct envelope_meta *meta)
{
	uint64_t total;

	if (n_recipients < 1 || n_recipients > ENVELOPE_MAX_RECIPIENTS || !meta || !meta_ok(meta))
		return 0;
	total = ENV_OUTER_LEN(n_recipients);
	total += 4 + ENV_IH_LEN(name_len(meta), n_recipients) + ENV_ABYTES;
	total += data_chunks(meta->size) * (4 + ENV_ABYTES) + meta->size;
	total += 4 + ENV_SIG_LEN + ENV_ABYTES;
	return total;
}

/* K -> the secretstream key and the header MAC key, each under its own personalisation. */
static void derive_from_k(uint8_t out[static 32], const uint8_t k[static 32], const char *personal)
{
	blake2b_personal(out, 32, k, 32, personal, NULL, 0, NULL, 0, NULL, 0);
}

/* MAC over the outer header up to the MAC field; H over all of it. */
static void header_mac(uint8_t mac[static ENV_MAC_LEN], const uint8_t k[static 32],
		       const uint8_t *outer, size_t outer_len)
{
	uint8_t mac_key[32];

	derive_from_k(mac_key, k, PERSONAL_MAC_KEY);
	crypto_generichash_blake2b(mac, ENV_MAC_LEN, outer, outer_len - ENV_MAC_LEN, mac_key,
				   sizeof(mac_key));
	sodium_memzero(mac_key, sizeof(mac_key));
}

static void header_hash(uint8_t h[static 32], const uint8_t *outer, size_t outer_len)
{
	blake2b_personal(h, 32, NULL, 0, PERSONAL_HEADER_HASH, outer, outer_len, NULL, 0, NULL, 0);
}

/* The wrap key of one stanza: BLAKE2b(ss || eph_pk || recipient box_pk). */
static void wrap_key(uint8_t out[static 32], const uint8_t ss[static 32],
		     const uint8_t eph_pk[static 32], const uint8_t box_pk[static 32])
{
	blake2b_personal(out, 32, NULL, 0, PERSONAL_WRAP_KEY, ss, 32, eph_pk, 32, box_pk, 32);
}

/* ---- sealing ------------------------------------------------------------------ */

/*
 * The BLAKE2b state is 64-byte aligned, so the struct's size is a multiple of 64 and the end of
 * the page where sodium_malloc puts it leaves the start aligned too.
 */
struct envelope_sealer {
	crypto_secretstream_xchacha20poly1305_state ss;
	crypto_generichash_blake2b_state sigh;
	uint8_t sign_sk[crypto_sign_ed25519_SECRETKEYBYTES];
	envelope_sink sink;
	void *ctx;
	uint64_t size;
	uint64_t fed;
	size_t have;
	int err;
	uint8_t pt[ENV_CHUNK];
	/* Length prefix and ciphertext of one chunk; first the whole header. */
	uint8_t ct[4 + ENV_CHUNK + ENV_ABYTES];
};

_Static_assert(ENV_OUTER_MAX + 4 + ENV_IH_MAX + ENV_ABYTES <= 4 + ENV_CHUNK + ENV_ABYTES,
	       "the header fits the chunk buffer");
_Static_assert(sizeof(struct envelope_sealer) % 64 == 0,
	       "sodium_malloc returns it 64-byte aligned");

/* Encrypts one chunk into s->ct behind its length prefix and hands it to the sink. */
static int push_chunk(struct envelope_sealer *s, const uint8_t *m, size_t mlen, const uint8_t *ad,
		      size_t adlen, uint8_t tag, size_t at)
{
	put_be32(s->ct + at, (uint32_t)(mlen + ENV_ABYTES));
	crypto_secretstream_xchacha20poly1305_push(&s->ss, s->ct + at + 4, NULL, m, mlen, ad, adlen,
						   tag);
	return s->sink(s->ctx, s->ct, at + 4 + mlen + ENV_ABYTES);
}

static bool recipients_ok(const struct envelope_recipient *rcpt, size_t n)
{
	if (n < 1 || n > ENVELOPE_MAX_RECIPIENTS || !rcpt)
		return false;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (memcmp(rcpt[i].sign_pk, rcpt[j].sign_pk, 32) == 0)
				return false;
		}
	}
	return true;
}

/* Serialises the inner header; returns its length. */
static size_t inner_header(uint8_t *p, const struct envelope_meta *m)
{
	size_t nl = name_len(m);
	uint8_t *start = p;

	*p++ = ENV_IH_VERSION;
	memcpy(p, m->sender_sign_pk, 32);
	p += 32;
	memcpy(p, m->msg_id, ENVELOPE_MSG_ID_LEN);
	p += ENVELOPE_MSG_ID_LEN;
	*p++ = (uint8_t)m->kind;
	put_be64(p, m->created_ms);
	put_be64(p + 8, m->expires_ms);
	put_be64(p + 16, m->size);
	p += 24;
	*p++ = (uint8_t)nl;
	memcpy(p, m->name, nl);
	p += nl;
	*p++ = (uint8_t)m->n_recipients;
	for (size_t i = 0; i < m->n_recipients; i++) {
		memcpy(p, m->recipients[i], 32);
		p += 32;
	}
	return (size_t)(p - start);
}

/*
 * Starts the transcript hash: DOMAIN_ENV_SIG || H || u32be(|inner header|) || inner header, then
 * the plaintext as it streams. The plaintext may not fit in memory, so plain Ed25519 signs a
 * digest of it; BLAKE2b-512 rather than Ed25519ph's SHA-512 because sealer and opener each hash
 * every byte, and libsodium's BLAKE2b is about twice as fast (docs/envelope.md, "Performance").
 */
static void sign_start(crypto_generichash_blake2b_state *st, const uint8_t h[static 32],
		       const uint8_t *ih, size_t ih_len)
{
	uint8_t personal[crypto_generichash_blake2b_PERSONALBYTES];
	uint8_t len[4];

	personal16(personal, PERSONAL_SIG_HASH);
	put_be32(len, (uint32_t)ih_len);
	crypto_generichash_blake2b_init_salt_personal(st, NULL, 0, ENV_SIG_HASH_LEN, NULL,
						      personal);
	crypto_generichash_blake2b_update(st, (const uint8_t *)DOMAIN_ENV_SIG,
					  sizeof(DOMAIN_ENV_SIG));
	crypto_generichash_blake2b_update(st, h, 32);
	crypto_generichash_blake2b_update(st, len, sizeof(len));
	crypto_generichash_blake2b_update(st, ih, ih_len);
}

/*
 * The message Ed25519 signs: DOMAIN_ENV_SIG || digest. The domain keeps these 91 bytes apart
 * from the compact form's and the certificates' signed messages under the same identity key.
 */
static void sign_message(uint8_t msg[static ENV_SIG_MSG_LEN], crypto_generichash_blake2b_state *st)
{
	memcpy(msg, DOMAIN_ENV_SIG, sizeof(DOMAIN_ENV_SIG));
	crypto_generichash_blake2b_final(st, msg + sizeof(DOMAIN_ENV_SIG), ENV_SIG_HASH_LEN);
}

int envelope_seal_new(const struct identity *sender, const struct envelope_recipient *rcpt,
		      size_t n, struct envelope_meta *meta, envelope_sink sink, void *ctx,
		      struct envelope_sealer **out)
{
	struct envelope_sealer *s = NULL;
	struct envelope_meta m;
	uint8_t *k = NULL, *K, *stream_key, *eph_sk, *ss, *wk;
	uint8_t h[32];
	uint8_t *outer, *p;
	size_t outer_len = ENV_OUTER_LEN(n), ih_len;
	int ret = -EINVAL;

	*out = NULL;
	if (!sender || !meta || !sink || !recipients_ok(rcpt, n) || !meta_ok(meta))
		goto out;
	ret = -ENOMEM;
	s = sodium_malloc(sizeof(*s));
	k = sodium_malloc(5 * 32);
	if (!s || !k)
		goto out;
	K = k;
	stream_key = k + 32;
	eph_sk = k + 64;
	ss = k + 96;
	wk = k + 128;
	memset(s, 0, offsetof(struct envelope_sealer, pt));
	memcpy(s->sign_sk, sender->sign_sk, sizeof(s->sign_sk));
	s->sink = sink;
	s->ctx = ctx;
	s->size = meta->size;

	memset(&m, 0, sizeof(m));
	m.kind = meta->kind;
	m.created_ms = meta->created_ms;
	m.expires_ms = meta->expires_ms;
	m.size = meta->size;
	memcpy(m.name, meta->name, name_len(meta));
	memcpy(m.sender_sign_pk, sender->sign_pk, 32);
	m.n_recipients = n;
	for (size_t i = 0; i < n; i++)
		memcpy(m.recipients[i], rcpt[i].sign_pk, 32);

	/* Random draws, in this order (docs/envelope.md): K, msg_id, stream header, eph keys. */
	tern_random(K, 32);
	tern_random(m.msg_id, sizeof(m.msg_id));
	outer = s->ct;
	outer[0] = ENV_FORM_FULL;
	outer[1] = (uint8_t)n;
	derive_from_k(stream_key, K, PERSONAL_STREAM_KEY);
	crypto_secretstream_xchacha20poly1305_init_push(&s->ss, outer + 2, stream_key);
	p = outer + 2 + ENV_SS_HDR;
	for (size_t i = 0; i < n; i++) {
		tern_random(eph_sk, 32);
		crypto_scalarmult_curve25519_base(p, eph_sk);
		/* All-zero output: the recipient's key is a low-order point. */
		ret = crypto_scalarmult_curve25519(ss, eph_sk, rcpt[i].box_pk) == 0 ? 0 : -EINVAL;
		if (ret)
			goto out;
		wrap_key(wk, ss, p, rcpt[i].box_pk);
		crypto_aead_xchacha20poly1305_ietf_encrypt(p + 32, NULL, K, 32, NULL, 0, NULL,
							   zero_nonce, wk);
		p += ENV_STANZA_LEN;
	}
	header_mac(p, K, outer, outer_len);
	header_hash(h, outer, outer_len);

	ih_len = inner_header(s->pt, &m);
	sign_start(&s->sigh, h, s->pt, ih_len);
	/* The first chunk is bound to this outer header through its associated data. */
	ret = push_chunk(s, s->pt, ih_len, h, sizeof(h),
			 crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, outer_len);
	if (ret)
		goto out;
	*meta = m;
	*out = s;
	s = NULL;
out:
	sodium_free(k);
	envelope_sealer_free(s);
	return ret;
}

int envelope_seal_update(struct envelope_sealer *s, const uint8_t *buf, size_t len)
{
	const uint8_t msg = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;

	if (s->err)
		return s->err;
	if (len > s->size - s->fed) {
		s->err = -EINVAL;
		return s->err;
	}
	s->fed += len;
	if (len)
		crypto_generichash_blake2b_update(&s->sigh, buf, len);
	while (len && !s->err) {
		if (s->have == 0 && len >= ENV_CHUNK) {
			/* Whole chunks straight from the caller's buffer: no copy. */
			s->err = push_chunk(s, buf, ENV_CHUNK, NULL, 0, msg, 0);
			buf += ENV_CHUNK;
			len -= ENV_CHUNK;
			continue;
		}
		size_t take = ENV_CHUNK - s->have < len ? ENV_CHUNK - s->have : len;

		memcpy(s->pt + s->have, buf, take);
		s->have += take;
		buf += take;
		len -= take;
		if (s->have == ENV_CHUNK) {
			s->err = push_chunk(s, s->pt, ENV_CHUNK, NULL, 0, msg, 0);
			s->have = 0;
		}
	}
	return s->err;
}

int envelope_seal_final(struct envelope_sealer *s)
{
	uint8_t sig[ENV_SIG_LEN], msg[ENV_SIG_MSG_LEN];
	int ret = s->err;

	if (ret)
		goto out;
	ret = -EINVAL;
	if (s->fed != s->size)
		goto out;
	if (s->have) {
		ret = push_chunk(s, s->pt, s->have, NULL, 0,
				 crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, 0);
		if (ret)
			goto out;
	}
	sign_message(msg, &s->sigh);
	crypto_sign_ed25519_detached(sig, NULL, msg, sizeof(msg), s->sign_sk);
	/* The digest would let anyone holding it confirm a guess of the plaintext. */
	sodium_memzero(msg, sizeof(msg));
	ret = push_chunk(s, sig, sizeof(sig), NULL, 0,
			 crypto_secretstream_xchacha20poly1305_TAG_FINAL, 0);
out:
	envelope_sealer_free(s);
	return ret;
}

void envelope_sealer_free(struct envelope_sealer *s)
{
	if (s)
		sodium_free(s);
}

/* ---- opening ------------------------------------------------------------------ */

enum open_state {
	OPEN_FORM,    /* nothing read yet */
	OPEN_OUTER,   /* reading the outer header */
	OPEN_LEN,     /* reading a chunk's length prefix */
	OPEN_CHUNK,   /* reading a chunk */
	OPEN_DONE,    /* the final chunk was read; only open_final may follow */
	OPEN_COMPACT, /* buffering a compact envelope, opened by open_final */
};

/* 64-byte aligned for its BLAKE2b state, as the sealer is. */
struct envelope_opener {
	const struct identity *me;
	enum open_state state;
	int err;
	bool finished;
	size_t need; /* bytes of the current item (outer header or chunk) */
	size_t have; /* of them in buf */
	uint8_t lenbuf[4];
	size_t n; /* recipients in the outer header */
	uint8_t h[32];
	crypto_secretstream_xchacha20poly1305_state ss;
	crypto_generichash_blake2b_state sigh;
	uint64_t chunk_no; /* chunks read: the inner header is chunk 0 */
	uint64_t n_data;   /* data chunks the inner header announces */
	uint8_t sig[ENV_SIG_LEN];
	struct envelope_meta meta;
	envelope_sink sink;
	void *ctx;
	uint8_t buf[4 + ENV_CHUNK + ENV_ABYTES];
	uint8_t pt[ENV_CHUNK];
};

_Static_assert(ENV_OUTER_MAX <= sizeof(((struct envelope_opener *)0)->buf), "outer header fits");
_Static_assert(sizeof(struct envelope_opener) % 64 == 0,
	       "sodium_malloc returns it 64-byte aligned");
_Static_assert(ENVELOPE_COMPACT_OVERHEAD + ENVELOPE_COMPACT_MAX <= ENV_CHUNK, "compact fits");
_Static_assert(ENV_COMPACT_SCRATCH + ENVELOPE_COMPACT_MAX <= ENV_CHUNK, "compact opens in pt");

int envelope_open_new(const struct identity *me, struct envelope_opener **out)
{
	struct envelope_opener *o;

	*out = NULL;
	if (!me)
		return -EINVAL;
	o = sodium_malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	memset(o, 0, offsetof(struct envelope_opener, buf));
	o->me = me;
	o->state = OPEN_FORM;
	*out = o;
	return 0;
}

void envelope_open_reset(struct envelope_opener *o)
{
	const struct identity *me = o->me;
	/* Everything: keys, states and the plaintext of the last chunk. */
	sodium_memzero(o, sizeof(*o));
	o->me = me;
	o->state = OPEN_FORM;
}

void envelope_opener_free(struct envelope_opener *o)
{
	if (o)
		sodium_free(o);
}

/*
 * Trial-opens every stanza with every encryption key we hold: stanzas name no
 * recipient, so that relays cannot learn who a message is for.
 */
static bool find_k(const struct envelope_opener *o, const uint8_t *outer, uint8_t k[static 32])
{
	const struct identity *me = o->me;
	uint8_t ss[32], wk[32];
	bool found = false;

	for (size_t i = 0; i < o->n && !found; i++) {
		const uint8_t *st = outer + 2 + ENV_SS_HDR + i * ENV_STANZA_LEN;

		for (size_t j = 0; j < me->n_box && !found; j++) {
			/* A low-order ephemeral key gives all zeros: not a stanza for anyone. */
			if (crypto_scalarmult_curve25519(ss, me->box[j].sk, st) != 0)
				continue;
			wrap_key(wk, ss, st, me->box[j].pk);
			found = crypto_aead_xchacha20poly1305_ietf_decrypt(
				    k, NULL, NULL, st + 32,
				    32 + crypto_aead_xchacha20poly1305_ietf_ABYTES, NULL, 0,
				    zero_nonce, wk) == 0;
		}
	}
	sodium_memzero(ss, sizeof(ss));
	sodium_memzero(wk, sizeof(wk));
	return found;
}

static int open_outer(struct envelope_opener *o)
{
	uint8_t *k = NULL;
	uint8_t mac[ENV_MAC_LEN];
	size_t len = ENV_OUTER_LEN(o->n);
	int ret = -ENOMEM;

	k = sodium_malloc(2 * 32);
	if (!k)
		goto out;
	ret = -ENOKEY;
	if (!find_k(o, o->buf, k))
		goto out;
	/* The MAC commits to K: every recipient that gets this far holds the same K. */
	ret = -EBADMSG;
	header_mac(mac, k, o->buf, len);
	if (crypto_verify_32(mac, o->buf + len - ENV_MAC_LEN) != 0)
		goto out;
	header_hash(o->h, o->buf, len);
	derive_from_k(k + 32, k, PERSONAL_STREAM_KEY);
	crypto_secretstream_xchacha20poly1305_init_pull(&o->ss, o->buf + 2, k + 32);
	o->state = OPEN_LEN;
	o->chunk_no = 0;
	ret = 0;
out:
	sodium_free(k);
	return ret;
}

/* Parses and checks the inner header in o->pt. */
static int parse_inner(struct envelope_opener *o, size_t len)
{
	const uint8_t *p = o->pt;
	struct envelope_meta *m = &o->meta;
	size_t nl, n;
	bool listed = false;

	if (len < ENV_IH_LEN(0, 1) || p[0] != ENV_IH_VERSION)
		return -EBADMSG;
	nl = p[74];
	if (len < ENV_IH_LEN(nl, 0))
		return -EBADMSG;
	n = p[75 + nl];
	if (n != o->n || len != ENV_IH_LEN(nl, n))
		return -EBADMSG;
	memset(m, 0, sizeof(*m));
	memcpy(m->sender_sign_pk, p + 1, 32);
	memcpy(m->msg_id, p + 33, ENVELOPE_MSG_ID_LEN);
	m->kind = (enum envelope_kind)p[49];
	m->created_ms = get_be64(p + 50);
	m->expires_ms = get_be64(p + 58);
	m->size = get_be64(p + 66);
	memcpy(m->name, p + 75, nl);
	if ((m->kind != ENVELOPE_TEXT && m->kind != ENVELOPE_FILE && m->kind != ENVELOPE_CONTROL) ||
	    !envelope_name_ok(m->kind, m->name, nl) || m->size > ENV_SIZE_MAX)
		return -EBADMSG;
	m->n_recipients = n;
	for (size_t i = 0; i < n; i++) {
		memcpy(m->recipients[i], p + 76 + nl + 32 * i, 32);
		listed |= memcmp(m->recipients[i], o->me->sign_pk, 32) == 0;
	}
	/*
	 * A stanza opened with our key, but the sender addressed the message to others:
	 * someone re-wrapped K for us (unknown-key share). Not ours to accept.
	 */
	if (!listed)
		return -ENOKEY;
	o->n_data = data_chunks(m->size);
	return 0;
}

/* Ciphertext length the next chunk must have, given what has been read. */
static bool chunk_len_ok(const struct envelope_opener *o, size_t clen)
{
	if (o->chunk_no == 0)
		return clen >= ENV_IH_LEN(0, o->n) + ENV_ABYTES &&
		       clen <= ENV_IH_LEN(ENVELOPE_NAME_MAX, o->n) + ENV_ABYTES;
	if (o->chunk_no <= o->n_data) {
		uint64_t left = o->meta.size - (o->chunk_no - 1) * ENV_CHUNK;

		return clen == (left < ENV_CHUNK ? left : ENV_CHUNK) + ENV_ABYTES;
	}
	return clen == ENV_SIG_LEN + ENV_ABYTES;
}

static int open_chunk(struct envelope_opener *o, const uint8_t *c, size_t clen)
{
	const uint8_t msg = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
	const uint8_t fin = crypto_secretstream_xchacha20poly1305_TAG_FINAL;
	unsigned long long mlen;
	uint8_t tag;
	int ret;

	if (crypto_secretstream_xchacha20poly1305_pull(&o->ss, o->pt, &mlen, &tag, c, clen,
						       o->chunk_no == 0 ? o->h : NULL,
						       o->chunk_no == 0 ? sizeof(o->h) : 0) != 0)
		return -EBADMSG;
	if (o->chunk_no == 0) {
		if (tag != msg)
			return -EBADMSG;
		ret = parse_inner(o, (size_t)mlen);
		if (ret)
			return ret;
		sign_start(&o->sigh, o->h, o->pt, (size_t)mlen);
	} else if (o->chunk_no <= o->n_data) {
		if (tag != msg)
			return -EBADMSG;
		crypto_generichash_blake2b_update(&o->sigh, o->pt, mlen);
		if (o->sink) {
			ret = o->sink(o->ctx, o->pt, (size_t)mlen);
			if (ret)
				return ret;
		}
	} else {
		if (tag != fin)
			return -EBADMSG;
		memcpy(o->sig, o->pt, ENV_SIG_LEN);
		o->state = OPEN_DONE;
	}
	o->chunk_no++;
	return 0;
}

static int open_step(struct envelope_opener *o, const uint8_t **bufp, size_t *lenp)
{
	const uint8_t *buf = *bufp;
	size_t len = *lenp, take = 0;
	int ret = 0;

	switch (o->state) {
	case OPEN_FORM:
		o->buf[0] = buf[0];
		take = 1;
		o->have = 1;
		if (buf[0] == ENV_FORM_FULL) {
			o->state = OPEN_OUTER;
			o->need = 2;
		} else if (buf[0] == ENV_FORM_COMPACT || buf[0] == ENV_FORM_COMPACT2) {
			o->state = OPEN_COMPACT;
		} else {
			ret = -EBADMSG;
		}
		break;
	case OPEN_OUTER:
		take = o->need - o->have < len ? o->need - o->have : len;
		memcpy(o->buf + o->have, buf, take);
		o->have += take;
		if (o->have == 2) {
			o->n = o->buf[1];
			if (o->n < 1 || o->n > ENVELOPE_MAX_RECIPIENTS) {
				ret = -EBADMSG;
				break;
			}
			o->need = ENV_OUTER_LEN(o->n);
		} else if (o->have == o->need) {
			o->have = 0;
			ret = open_outer(o);
		}
		break;
	case OPEN_LEN:
		take = 4 - o->have < len ? 4 - o->have : len;
		memcpy(o->lenbuf + o->have, buf, take);
		o->have += take;
		if (o->have == 4) {
			o->need = get_be32(o->lenbuf);
			o->have = 0;
			o->state = OPEN_CHUNK;
			if (!chunk_len_ok(o, o->need))
				ret = -EBADMSG;
		}
		break;
	case OPEN_CHUNK: {
		const uint8_t *c = buf;

		if (o->have == 0 && len >= o->need) {
			/* The whole chunk is in the caller's buffer: no copy. */
			take = o->need;
		} else {
			take = o->need - o->have < len ? o->need - o->have : len;
			memcpy(o->buf + o->have, buf, take);
			o->have += take;
			if (o->have < o->need)
				break;
			c = o->buf;
		}
		o->have = 0;
		o->state = OPEN_LEN; /* open_chunk moves on to OPEN_DONE after the last */
		ret = open_chunk(o, c, o->need);
		break;
	}
	case OPEN_DONE:
		ret = -E2BIG;
		break;
	case OPEN_COMPACT:
		take = len;
		if (take > ENVELOPE_COMPACT_OVERHEAD + ENVELOPE_COMPACT_MAX - o->have) {
			ret = -E2BIG;
			break;
		}
		memcpy(o->buf + o->have, buf, take);
		o->have += take;
		break;
	}
	*bufp = buf + take;
	*lenp = len - take;
	return ret;
}

int envelope_open_update(struct envelope_opener *o, const uint8_t *buf, size_t len,
			 envelope_sink sink, void *ctx)
{
	if (o->finished)
		return o->err || !len ? o->err : -E2BIG;
	o->sink = sink;
	o->ctx = ctx;
	while (len && !o->err)
		o->err = open_step(o, &buf, &len);
	return o->err;
}

int envelope_open_final(struct envelope_opener *o, envelope_candidates cand, void *cctx,
			struct envelope_meta *meta)
{
	uint8_t msg[ENV_SIG_MSG_LEN];
	size_t text_len = 0;
	int ret = o->err;

	if (ret || o->finished)
		goto out;
	if (o->state == OPEN_COMPACT) {
		/* A compact envelope never reaches the chunk stage: pt is free for the text and
		 * the secrets. */
		uint8_t *text = o->pt + ENV_COMPACT_SCRATCH;

		ret = envelope_compact_open(o->me, o->buf, o->have, cand, cctx, &o->meta, text,
					    &text_len, o->pt);
		/* The compact text is verified before anyone sees it. */
		if (!ret && o->sink)
			ret = o->sink(o->ctx, text, text_len);
		sodium_memzero(text, ENVELOPE_COMPACT_MAX);
		goto out;
	}
	ret = -EBADMSG;
	if (o->state != OPEN_DONE)
		goto out;
	sign_message(msg, &o->sigh);
	ret = crypto_sign_ed25519_verify_detached(o->sig, msg, sizeof(msg),
						  o->meta.sender_sign_pk) == 0
		  ? 0
		  : -EKEYREJECTED;
	sodium_memzero(msg, sizeof(msg));
out:
	if (!o->finished) {
		o->finished = true;
		o->err = ret;
	}
	if (!ret && meta)
		*meta = o->meta;
	return ret;
}

/* ---- benchmark baselines (crypto/testing.h) ---------------------------------- */

/* One side's signature hashing in a baseline: none, Ed25519ph's SHA-512, or the envelope's. */
struct bench_hash {
	enum crypto_bench_hash which;
	crypto_sign_state sha;
	crypto_generichash_blake2b_state b2;
};

static void bench_hash_init(struct bench_hash *h, enum crypto_bench_hash which)
{
	h->which = which;
	if (which == CRYPTO_BENCH_SHA512)
		crypto_sign_init(&h->sha);
	else if (which == CRYPTO_BENCH_BLAKE2B512)
		crypto_generichash_blake2b_init(&h->b2, NULL, 0, ENV_SIG_HASH_LEN);
}

static void bench_hash_update(struct bench_hash *h, const uint8_t *buf, size_t len)
{
	if (h->which == CRYPTO_BENCH_SHA512)
		crypto_sign_update(&h->sha, buf, len);
	else if (h->which == CRYPTO_BENCH_BLAKE2B512)
		crypto_generichash_blake2b_update(&h->b2, buf, len);
}

/*
 * Signs with the sealer's state and verifies with the opener's, as an envelope does, so the
 * baseline pays for the same public-key operations. -EBADMSG if the two hashes differ.
 */
static int bench_hash_sign_verify(struct bench_hash *seal, struct bench_hash *open)
{
	uint8_t pk[32], sk[64], sig[64], ds[ENV_SIG_HASH_LEN], dopen[ENV_SIG_HASH_LEN];
	int ret = 0;

	crypto_sign_keypair(pk, sk);
	if (seal->which == CRYPTO_BENCH_SHA512) {
		crypto_sign_final_create(&seal->sha, sig, NULL, sk);
		ret = crypto_sign_final_verify(&open->sha, sig, pk);
	} else if (seal->which == CRYPTO_BENCH_BLAKE2B512) {
		crypto_generichash_blake2b_final(&seal->b2, ds, sizeof(ds));
		crypto_generichash_blake2b_final(&open->b2, dopen, sizeof(dopen));
		crypto_sign_ed25519_detached(sig, NULL, ds, sizeof(ds), sk);
		ret = crypto_sign_ed25519_verify_detached(sig, dopen, sizeof(dopen), pk);
	}
	return ret == 0 ? 0 : -EBADMSG;
}

int crypto_bench_secretstream(const uint8_t *buf, size_t buflen, uint64_t total, size_t chunk,
			      enum crypto_bench_hash hash)
{
	crypto_secretstream_xchacha20poly1305_state push, pull;
	struct bench_hash hs, ho;
	uint8_t key[32], hdr[ENV_SS_HDR], tag;
	uint8_t *c = malloc(chunk + ENV_ABYTES), *m = malloc(chunk);
	size_t off = 0;
	int ret = -ENOMEM;

	if (!c || !m || chunk == 0 || chunk > ENV_CHUNK || buflen % chunk)
		goto out;
	tern_random(key, sizeof(key));
	crypto_secretstream_xchacha20poly1305_init_push(&push, hdr, key);
	crypto_secretstream_xchacha20poly1305_init_pull(&pull, hdr, key);
	bench_hash_init(&hs, hash);
	bench_hash_init(&ho, hash);
	ret = 0;
	for (uint64_t done = 0; done < total && !ret; done += chunk) {
		size_t n = total - done < chunk ? (size_t)(total - done) : chunk;

		crypto_secretstream_xchacha20poly1305_push(&push, c, NULL, buf + off, n, NULL, 0,
							   0);
		bench_hash_update(&hs, buf + off, n);
		if (crypto_secretstream_xchacha20poly1305_pull(&pull, m, NULL, &tag, c,
							       n + ENV_ABYTES, NULL, 0) != 0)
			ret = -EBADMSG;
		bench_hash_update(&ho, m, n);
		off = (off + chunk) % buflen;
	}
	if (!ret)
		ret = bench_hash_sign_verify(&hs, &ho);
out:
	free(c);
	free(m);
	return ret;
}

int crypto_bench_hash(const uint8_t *buf, size_t buflen, uint64_t total, size_t chunk,
		      enum crypto_bench_hash hash)
{
	struct bench_hash h;
	uint8_t out[crypto_hash_sha512_BYTES];
	size_t off = 0;

	if (chunk == 0 || buflen % chunk || hash == CRYPTO_BENCH_NO_HASH)
		return -EINVAL;
	bench_hash_init(&h, hash);
	for (uint64_t done = 0; done < total; done += chunk) {
		size_t n = total - done < chunk ? (size_t)(total - done) : chunk;

		bench_hash_update(&h, buf + off, n);
		off = (off + chunk) % buflen;
	}
	/* The digest alone, without a signature: this is the hash's own speed. */
	if (hash == CRYPTO_BENCH_SHA512)
		crypto_hash_sha512_final(&h.sha.hs, out);
	else
		crypto_generichash_blake2b_final(&h.b2, out, sizeof(out));
	return 0;
}
