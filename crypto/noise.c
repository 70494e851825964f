/* Sans-I/O Noise (revision 34) over 25519 / ChaChaPoly / BLAKE2b, from libsodium primitives: the
 * link handshake and its transport ciphers. */
#include <errno.h>
#include <stdio.h>

#include "crypto/internal.h"

#define DHLEN	   crypto_scalarmult_curve25519_BYTES
#define KEYLEN	   crypto_aead_chacha20poly1305_ietf_KEYBYTES
#define TAGLEN	   crypto_aead_chacha20poly1305_ietf_ABYTES
#define NONCELEN   crypto_aead_chacha20poly1305_ietf_NPUBBYTES
#define HASHLEN	   crypto_generichash_blake2b_BYTES_MAX
#define BLOCKLEN   128 /* BLAKE2b's block: what HMAC pads its key to */
#define MAX_TOKENS 6

_Static_assert(DHLEN == NOISE_KEY_LEN && KEYLEN == NOISE_KEY_LEN, "key sizes");
_Static_assert(TAGLEN == NOISE_TAG_LEN && HASHLEN == NOISE_HASH_LEN, "tag and hash sizes");

enum token { T_END = 0, T_E, T_S, T_EE, T_ES, T_SE, T_SS, T_PSK };

/*
 * A handshake pattern (Noise §7): which static keys are known beforehand (pre-messages
 * "-> s" and "<- s"; no supported pattern pre-sends "e"), then the tokens of each message,
 * initiator first and alternating.
 */
struct pattern {
	const char *name;
	bool pre_init_s, pre_resp_s;
	bool one_way, psk;
	unsigned n_msgs;
	uint8_t msgs[3][MAX_TOKENS];
};

/* clang-format off */
static const struct pattern patterns[] = {
    [NOISE_N] = {"N", false, true, true, false, 1, {{T_E, T_ES}}},
    [NOISE_K] = {"K", true, true, true, false, 1, {{T_E, T_ES, T_SS}}},
    [NOISE_X] = {"X", false, true, true, false, 1, {{T_E, T_ES, T_S, T_SS}}},
    [NOISE_NK] = {"NK", false, true, false, false, 2, {{T_E, T_ES}, {T_E, T_EE}}},
    [NOISE_KK] = {"KK", true, true, false, false, 2, {{T_E, T_ES, T_SS}, {T_E, T_EE, T_SE}}},
    [NOISE_IK] = {"IK", false, true, false, false, 2,
		  {{T_E, T_ES, T_S, T_SS}, {T_E, T_EE, T_SE}}},
    [NOISE_XX] = {"XX", false, false, false, false, 3,
		  {{T_E}, {T_E, T_EE, T_S, T_ES}, {T_S, T_SE}}},
    [NOISE_IKPSK2] = {"IKpsk2", false, true, false, true, 2,
		      {{T_E, T_ES, T_S, T_SS}, {T_E, T_EE, T_SE, T_PSK}}},
    [NOISE_XXPSK3] = {"XXpsk3", false, false, false, true, 3,
		      {{T_E}, {T_E, T_EE, T_S, T_ES}, {T_S, T_SE, T_PSK}}},
};
/* clang-format on */

#define N_PATTERNS (sizeof(patterns) / sizeof(patterns[0]))

/* Noise §5.1 CipherState; also the transport cipher handed out by noise_split. */
struct noise_cipher {
	uint8_t k[KEYLEN];
	uint64_t n;
	bool has_key;
	bool dead;
};

/* Working memory for HMAC/HKDF and DH: key-dependent, so it lives in the guarded state too. */
struct scratch {
	crypto_generichash_blake2b_state hs;
	uint8_t block[BLOCKLEN];
	uint8_t inner[HASHLEN];
	uint8_t prk[HASHLEN];
	uint8_t out[3][HASHLEN];
	uint8_t dh[DHLEN];
};

enum phase { PH_RUNNING, PH_DONE, PH_SPLIT, PH_FAILED };

/* Noise §5.3 HandshakeState, holding §5.2's SymmetricState (ck, h, cs). */
struct noise {
	struct scratch x;
	uint8_t ck[HASHLEN];
	uint8_t h[HASHLEN];
	struct noise_cipher cs;
	uint8_t s_sk[DHLEN], s_pk[DHLEN];
	uint8_t e_sk[DHLEN], e_pk[DHLEN];
	uint8_t rs[DHLEN], re[DHLEN];
	uint8_t psk[KEYLEN];
	bool has_s, has_e, has_rs, has_re, has_psk;
	bool initiator;
	enum phase phase;
	unsigned msg; /* index of the next message of the pattern */
	const struct pattern *pat;
};

/* sodium_malloc aligns the end of a block, not its start: keep the size a multiple of 64. */
_Static_assert(sizeof(struct noise) % 64 == 0, "noise state alignment");

/* ---- HASH, HMAC, HKDF (Noise §4.3) ---------------------------------------------------- */

static void hash_two(struct noise *st, uint8_t out[static HASHLEN], const uint8_t *a, size_t alen,
		     const uint8_t *b, size_t blen)
{
	crypto_generichash_blake2b_init(&st->x.hs, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st->x.hs, a, alen);
	if (blen)
		crypto_generichash_blake2b_update(&st->x.hs, b, blen);
	crypto_generichash_blake2b_final(&st->x.hs, out, HASHLEN);
}

/*
 * HMAC-BLAKE2b (RFC 2104 with B = 128, L = 64) over a || b. libsodium's keyed BLAKE2b is
 * a different function, so HMAC is built here as Noise defines it. Keys are at most
 * HASHLEN bytes, so they never need hashing down. out may alias key or a.
 */
static void hmac(struct noise *st, uint8_t out[static HASHLEN], const uint8_t *key, size_t keylen,
		 const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct scratch *x = &st->x;

	memset(x->block, 0, BLOCKLEN);
	memcpy(x->block, key, keylen);
	for (size_t i = 0; i < BLOCKLEN; i++)
		x->block[i] ^= 0x36;
	crypto_generichash_blake2b_init(&x->hs, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&x->hs, x->block, BLOCKLEN);
	if (alen)
		crypto_generichash_blake2b_update(&x->hs, a, alen);
	if (blen)
		crypto_generichash_blake2b_update(&x->hs, b, blen);
	crypto_generichash_blake2b_final(&x->hs, x->inner, HASHLEN);
	for (size_t i = 0; i < BLOCKLEN; i++)
		x->block[i] ^= 0x36 ^ 0x5c;
	crypto_generichash_blake2b_init(&x->hs, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&x->hs, x->block, BLOCKLEN);
	crypto_generichash_blake2b_update(&x->hs, x->inner, HASHLEN);
	crypto_generichash_blake2b_final(&x->hs, out, HASHLEN);
	sodium_memzero(x->block, BLOCKLEN);
	sodium_memzero(x->inner, HASHLEN);
}

/* HKDF(ck, ikm, n) into st->x.out[0..n-1]. */
static void hkdf(struct noise *st, const uint8_t ck[static HASHLEN], const uint8_t *ikm,
		 size_t ikmlen, unsigned n)
{
	uint8_t ctr;

	hmac(st, st->x.prk, ck, HASHLEN, ikm, ikmlen, NULL, 0);
	ctr = 1;
	hmac(st, st->x.out[0], st->x.prk, HASHLEN, &ctr, 1, NULL, 0);
	for (unsigned i = 1; i < n; i++) {
		ctr = (uint8_t)(i + 1);
		hmac(st, st->x.out[i], st->x.prk, HASHLEN, st->x.out[i - 1], HASHLEN, &ctr, 1);
	}
	sodium_memzero(st->x.prk, HASHLEN);
}

/* ---- CipherState (Noise §5.1) ------------------------------------------------------- */

/* ChaChaPoly's nonce: 32 zero bits, then the counter as 64-bit little-endian. */
static void nonce_bytes(uint8_t out[static NONCELEN], uint64_t n)
{
	memset(out, 0, 4);
	for (int i = 0; i < 8; i++)
		out[4 + i] = (uint8_t)(n >> (8 * i));
}

static void cipher_init(struct noise_cipher *c, const uint8_t *k)
{
	memcpy(c->k, k, KEYLEN);
	c->n = 0;
	c->has_key = true;
	c->dead = false;
}

/* ENCRYPT with ad; out gets len + TAGLEN bytes. The caller checked the nonce. */
static void cipher_encrypt(struct noise_cipher *c, const uint8_t *ad, size_t adlen,
			   const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[NONCELEN];

	nonce_bytes(nonce, c->n);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, adlen, NULL, nonce, c->k);
	c->n++;
}

/* DECRYPT with ad; out gets len - TAGLEN bytes, all zero if the tag fails. 0 or -EBADMSG. */
static int cipher_decrypt(struct noise_cipher *c, const uint8_t *ad, size_t adlen,
			  const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[NONCELEN];

	if (len < TAGLEN || c->n == UINT64_MAX)
		return -EBADMSG;
	nonce_bytes(nonce, c->n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, adlen, nonce,
						      c->k) != 0)
		return -EBADMSG;
	c->n++;
	return 0;
}

/* ---- SymmetricState (Noise §5.2) ---------------------------------------------------- */

static void mix_hash(struct noise *st, const uint8_t *data, size_t len)
{
	hash_two(st, st->h, st->h, HASHLEN, data, len);
}

static void mix_key(struct noise *st, const uint8_t *ikm, size_t len)
{
	hkdf(st, st->ck, ikm, len, 2);
	memcpy(st->ck, st->x.out[0], HASHLEN);
	/* HASHLEN is 64: the cipher key is the first 32 bytes of the second output. */
	cipher_init(&st->cs, st->x.out[1]);
	sodium_memzero(st->x.out, sizeof(st->x.out));
}

static void mix_key_and_hash(struct noise *st, const uint8_t *ikm, size_t len)
{
	hkdf(st, st->ck, ikm, len, 3);
	memcpy(st->ck, st->x.out[0], HASHLEN);
	mix_hash(st, st->x.out[1], HASHLEN);
	cipher_init(&st->cs, st->x.out[2]);
	sodium_memzero(st->x.out, sizeof(st->x.out));
}

/* EncryptAndHash: out gets len (+ TAGLEN once a key is set) bytes. */
static size_t encrypt_and_hash(struct noise *st, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t n = len;

	if (st->cs.has_key) {
		cipher_encrypt(&st->cs, st->h, HASHLEN, in, len, out);
		n += TAGLEN;
	} else if (len) {
		memmove(out, in, len);
	}
	mix_hash(st, out, n);
	return n;
}

/* DecryptAndHash of (in, len) into out; the hash is mixed only if the tag verified. */
static int decrypt_and_hash(struct noise *st, const uint8_t *in, size_t len, uint8_t *out)
{
	if (st->cs.has_key) {
		if (cipher_decrypt(&st->cs, st->h, HASHLEN, in, len, out) != 0)
			return -EBADMSG;
	} else if (len) {
		memmove(out, in, len);
	}
	mix_hash(st, in, len);
	return 0;
}

/* ---- HandshakeState (Noise §5.3) ---------------------------------------------------- */

/* DH into st->x.dh, refusing the all-zero output of a low-order point (Noise §12.1). */
static int dh(struct noise *st, const uint8_t sk[static DHLEN], const uint8_t pk[static DHLEN])
{
	/* libsodium returns -1 for an all-zero result; the second check keeps that explicit. */
	if (crypto_scalarmult_curve25519(st->x.dh, sk, pk) != 0 || sodium_is_zero(st->x.dh, DHLEN))
		return -EBADMSG;
	return 0;
}

/* Which side writes message i: the initiator writes the even ones. */
static bool our_turn(const struct noise *st)
{
	return (st->msg % 2 == 0) == st->initiator;
}

/* True if this side of the pattern ever sends or pre-sends a static key. */
static bool side_has_static(const struct pattern *p, bool initiator)
{
	if (initiator ? p->pre_init_s : p->pre_resp_s)
		return true;
	for (unsigned m = initiator ? 0 : 1; m < p->n_msgs; m += 2) {
		for (unsigned t = 0; t < MAX_TOKENS; t++)
			if (p->msgs[m][t] == T_S)
				return true;
	}
	return false;
}

/* Wipes every secret and leaves a state on which everything but noise_free fails. */
static void fail(struct noise *st)
{
	const struct pattern *pat = st->pat;
	bool initiator = st->initiator;

	sodium_memzero(st, sizeof(*st));
	st->pat = pat;
	st->initiator = initiator;
	st->phase = PH_FAILED;
}

int noise_new(enum noise_pattern pattern, bool initiator, const uint8_t *prologue,
	      size_t prologue_len, const struct identity *local,
	      const uint8_t remote_static[NOISE_KEY_LEN], struct noise **out)
{
	const struct pattern *pat;
	struct noise *st = NULL;
	char name[64];
	int n, ret = -EINVAL;
	bool need_s, need_rs;

	*out = NULL;
	if ((unsigned)pattern >= N_PATTERNS || !patterns[pattern].name ||
	    (prologue_len && !prologue))
		goto out;
	pat = &patterns[pattern];
	need_s = side_has_static(pat, initiator);
	need_rs = initiator ? pat->pre_resp_s : pat->pre_init_s;
	if ((need_s && !local) || need_rs != (remote_static != NULL))
		goto out;
	ret = -ENOMEM;
	st = sodium_malloc(sizeof(*st));
	if (!st)
		goto out;
	memset(st, 0, sizeof(*st));
	st->pat = pat;
	st->initiator = initiator;
	st->phase = PH_RUNNING;
	if (need_s) {
		const struct identity_box_key *cur = &local->box[local->n_box - 1];

		memcpy(st->s_sk, cur->sk, DHLEN);
		memcpy(st->s_pk, cur->pk, DHLEN);
		st->has_s = true;
	}
	if (need_rs) {
		memcpy(st->rs, remote_static, DHLEN);
		st->has_rs = true;
	}

	/* InitializeSymmetric: a name of at most HASHLEN bytes is h itself, zero padded. */
	n = snprintf(name, sizeof(name), "Noise_%s_25519_ChaChaPoly_BLAKE2b", pat->name);
	if (n < 0 || (size_t)n >= sizeof(name))
		goto out; /* no supported name is that long */
	memcpy(st->h, name, (size_t)n);
	memcpy(st->ck, st->h, HASHLEN);
	mix_hash(st, prologue, prologue_len);
	/* Pre-messages, the initiator's first, each hashed by both sides. */
	if (pat->pre_init_s)
		mix_hash(st, initiator ? st->s_pk : st->rs, DHLEN);
	if (pat->pre_resp_s)
		mix_hash(st, initiator ? st->rs : st->s_pk, DHLEN);
	*out = st;
	st = NULL;
	ret = 0;
out:
	noise_free(st);
	return ret;
}

int noise_set_psk(struct noise *st, const uint8_t psk[static NOISE_KEY_LEN])
{
	if (!st->pat->psk || st->phase != PH_RUNNING || st->msg != 0)
		return -EINVAL;
	memcpy(st->psk, psk, KEYLEN);
	st->has_psk = true;
	return 0;
}

void noise_free(struct noise *st)
{
	/* sodium_free wipes the block before unmapping it. */
	if (st)
		sodium_free(st);
}

enum noise_next noise_next(const struct noise *st)
{
	switch (st->phase) {
	case PH_RUNNING:
		return our_turn(st) ? NOISE_NEXT_WRITE : NOISE_NEXT_READ;
	case PH_DONE:
		return NOISE_NEXT_SPLIT;
	default:
		return NOISE_NEXT_FAILED;
	}
}

/*
 * Length of the current message's tokens for the sender and whether the payload will be
 * encrypted, computed before anything changes so that a short buffer leaves the state intact.
 */
static size_t tokens_len(const struct noise *st, bool *payload_keyed)
{
	const uint8_t *tok = st->pat->msgs[st->msg];
	bool keyed = st->cs.has_key;
	size_t n = 0;

	for (unsigned t = 0; t < MAX_TOKENS && tok[t] != T_END; t++) {
		switch (tok[t]) {
		case T_E:
			n += DHLEN;
			if (st->pat->psk)
				keyed = true;
			break;
		case T_S:
			n += DHLEN + (keyed ? TAGLEN : 0);
			break;
		default: /* the DH tokens and psk all call MixKey */
			keyed = true;
			break;
		}
	}
	*payload_keyed = keyed;
	return n;
}

/* The keys a DH token names, from this side's point of view. */
static int dh_token(struct noise *st, uint8_t tok)
{
	bool i = st->initiator;
	int ret = -EBADMSG;

	switch (tok) {
	case T_EE:
		if (st->has_e && st->has_re)
			ret = dh(st, st->e_sk, st->re);
		break;
	case T_ES:
		if (i ? st->has_e && st->has_rs : st->has_s && st->has_re)
			ret = i ? dh(st, st->e_sk, st->rs) : dh(st, st->s_sk, st->re);
		break;
	case T_SE:
		if (i ? st->has_s && st->has_re : st->has_e && st->has_rs)
			ret = i ? dh(st, st->s_sk, st->re) : dh(st, st->e_sk, st->rs);
		break;
	case T_SS:
		if (st->has_s && st->has_rs)
			ret = dh(st, st->s_sk, st->rs);
		break;
	}
	if (ret == 0)
		mix_key(st, st->x.dh, DHLEN);
	sodium_memzero(st->x.dh, DHLEN);
	return ret;
}

/* After the last message the handshake is complete; the ephemeral secret is not needed. */
static void message_done(struct noise *st)
{
	st->msg++;
	if (st->msg == st->pat->n_msgs) {
		st->phase = PH_DONE;
		sodium_memzero(st->e_sk, DHLEN);
	}
}

int noise_write_message(struct noise *st, const uint8_t *payload, size_t len, uint8_t *out,
			size_t cap, size_t *outlen)
{
	const uint8_t *tok;
	bool keyed;
	size_t need, off = 0;
	int ret = -EINVAL;

	*outlen = 0;
	if (st->phase == PH_FAILED)
		return -EBADMSG;
	if (st->phase != PH_RUNNING || !our_turn(st) || (len && !payload) ||
	    (st->pat->psk && !st->has_psk))
		return -EINVAL;
	need = tokens_len(st, &keyed);
	if (len > NOISE_MSG_MAX || need + len + (keyed ? TAGLEN : 0) > NOISE_MSG_MAX)
		return -EINVAL;
	need += len + (keyed ? TAGLEN : 0);
	if (cap < need)
		return -ENOSPC;
	tok = st->pat->msgs[st->msg];
	for (unsigned t = 0; t < MAX_TOKENS && tok[t] != T_END; t++) {
		switch (tok[t]) {
		case T_E:
			tern_random(st->e_sk, DHLEN);
			crypto_scalarmult_curve25519_base(st->e_pk, st->e_sk);
			st->has_e = true;
			memcpy(out + off, st->e_pk, DHLEN);
			off += DHLEN;
			mix_hash(st, st->e_pk, DHLEN);
			if (st->pat->psk)
				mix_key(st, st->e_pk, DHLEN);
			break;
		case T_S:
			off += encrypt_and_hash(st, st->s_pk, DHLEN, out + off);
			break;
		case T_PSK:
			mix_key_and_hash(st, st->psk, KEYLEN);
			break;
		default:
			ret = dh_token(st, tok[t]);
			if (ret != 0) {
				fail(st);
				return ret;
			}
			break;
		}
	}
	off += encrypt_and_hash(st, payload, len, out + off);
	*outlen = off;
	message_done(st);
	return 0;
}

int noise_read_message(struct noise *st, const uint8_t *in, size_t len, uint8_t *payload,
		       size_t cap, size_t *plen)
{
	const uint8_t *tok;
	bool keyed;
	size_t fixed, body, off = 0;
	int ret = -EBADMSG;

	*plen = 0;
	if (st->phase == PH_FAILED)
		return -EBADMSG;
	if (st->phase != PH_RUNNING || our_turn(st) || (st->pat->psk && !st->has_psk))
		return -EINVAL;
	fixed = tokens_len(st, &keyed);
	if (len > NOISE_MSG_MAX || len < fixed + (keyed ? TAGLEN : 0))
		goto fail;
	body = len - fixed - (keyed ? TAGLEN : 0);
	if (cap < body)
		return -ENOSPC;
	if (body && !payload)
		return -EINVAL;
	tok = st->pat->msgs[st->msg];
	for (unsigned t = 0; t < MAX_TOKENS && tok[t] != T_END; t++) {
		switch (tok[t]) {
		case T_E:
			memcpy(st->re, in + off, DHLEN);
			st->has_re = true;
			off += DHLEN;
			mix_hash(st, st->re, DHLEN);
			if (st->pat->psk)
				mix_key(st, st->re, DHLEN);
			break;
		case T_S: {
			size_t n = DHLEN + (st->cs.has_key ? TAGLEN : 0);

			if (decrypt_and_hash(st, in + off, n, st->rs) != 0)
				goto fail;
			st->has_rs = true;
			off += n;
			break;
		}
		case T_PSK:
			mix_key_and_hash(st, st->psk, KEYLEN);
			break;
		default:
			if (dh_token(st, tok[t]) != 0)
				goto fail;
			break;
		}
	}
	if (decrypt_and_hash(st, in + off, len - off, payload) != 0)
		goto fail;
	*plen = body;
	message_done(st);
	return 0;
fail:
	/* A failed tag leaves zeros in payload (libsodium clears it); the state is wiped. */
	fail(st);
	return ret;
}

int noise_remote_static(const struct noise *st, uint8_t pk[static NOISE_KEY_LEN])
{
	if (!st->has_rs || st->phase == PH_FAILED)
		return -ENOKEY;
	memcpy(pk, st->rs, DHLEN);
	return 0;
}

bool noise_remote_is(const struct noise *st, const struct identity_public *peer)
{
	if (!st->has_rs || st->phase == PH_FAILED)
		return false;
	if (sodium_memcmp(st->rs, peer->box_pk, DHLEN) != 0)
		return false;
	return identity_public_verify(peer);
}

int noise_handshake_hash(const struct noise *st, uint8_t h[static NOISE_HASH_LEN])
{
	if (st->phase != PH_DONE && st->phase != PH_SPLIT)
		return -EINVAL;
	memcpy(h, st->h, HASHLEN);
	return 0;
}

static struct noise_cipher *cipher_new(const uint8_t k[static KEYLEN])
{
	struct noise_cipher *c = sodium_malloc(sizeof(*c));

	if (c) {
		memset(c, 0, sizeof(*c));
		cipher_init(c, k);
	}
	return c;
}

int noise_split(struct noise *st, struct noise_cipher **send, struct noise_cipher **recv)
{
	struct noise_cipher *c1 = NULL, *c2 = NULL;
	int ret = -EINVAL;

	*send = *recv = NULL;
	if (st->phase != PH_DONE)
		goto out;
	hkdf(st, st->ck, NULL, 0, 2);
	ret = -ENOMEM;
	c1 = cipher_new(st->x.out[0]);
	/* One-way patterns: the responder never sends, so there is no second cipher. */
	c2 = st->pat->one_way ? NULL : cipher_new(st->x.out[1]);
	if (!c1 || (!st->pat->one_way && !c2))
		goto out;
	if (st->initiator) {
		*send = c1;
		*recv = c2;
	} else {
		*send = c2;
		*recv = c1;
	}
	c1 = c2 = NULL;
	/* Keep only what the caller may still ask for: the handshake hash and the peer's key. */
	sodium_memzero(&st->x, sizeof(st->x));
	sodium_memzero(st->ck, sizeof(st->ck));
	sodium_memzero(&st->cs, sizeof(st->cs));
	sodium_memzero(st->s_sk, sizeof(st->s_sk));
	sodium_memzero(st->e_sk, sizeof(st->e_sk));
	sodium_memzero(st->psk, sizeof(st->psk));
	st->phase = PH_SPLIT;
	ret = 0;
out:
	if (st->phase == PH_DONE)
		sodium_memzero(st->x.out, sizeof(st->x.out));
	noise_cipher_free(c1);
	noise_cipher_free(c2);
	return ret;
}

int noise_encrypt(struct noise_cipher *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		  size_t *outlen)
{
	*outlen = 0;
	if (c->dead)
		return -EBADMSG;
	if (len > NOISE_MSG_MAX - TAGLEN || (len && !in))
		return -EINVAL;
	if (cap < len + TAGLEN)
		return -ENOSPC;
	/* 2^64 - 1 is reserved (Noise §5.1): a wrapped counter would reuse a nonce. */
	if (c->n == UINT64_MAX)
		return -EOVERFLOW;
	cipher_encrypt(c, NULL, 0, in, len, out);
	*outlen = len + TAGLEN;
	return 0;
}

int noise_decrypt(struct noise_cipher *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		  size_t *outlen)
{
	*outlen = 0;
	if (c->dead)
		return -EBADMSG;
	if (len >= TAGLEN && len <= NOISE_MSG_MAX && cap < len - TAGLEN)
		return -ENOSPC;
	if (len > NOISE_MSG_MAX || cipher_decrypt(c, NULL, 0, in, len, out) != 0) {
		sodium_memzero(c->k, sizeof(c->k));
		c->has_key = false;
		c->dead = true;
		return -EBADMSG;
	}
	*outlen = len - TAGLEN;
	return 0;
}

void noise_cipher_set_nonce(struct noise_cipher *c, uint64_t n)
{
	c->n = n;
}

void noise_cipher_free(struct noise_cipher *c)
{
	if (c)
		sodium_free(c);
}
