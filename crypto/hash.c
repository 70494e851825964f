/* BLAKE2b for modules that must not include sodium.h, and the module's personalised hash helper. */
#include <errno.h>
#include <stdlib.h>

#include "crypto/internal.h"

struct hash {
	crypto_generichash_blake2b_state st;
	size_t outlen;
};

struct hash *hash_new(size_t outlen, const uint8_t *key, size_t keylen)
{
	struct hash *h = NULL;
	/* The state must be 64-byte aligned; aligned_alloc wants a multiple of 64. */
	size_t sz = (sizeof(*h) + 63) & ~(size_t)63;

	if (outlen < crypto_generichash_blake2b_BYTES_MIN ||
	    outlen > crypto_generichash_blake2b_BYTES_MAX ||
	    keylen > crypto_generichash_blake2b_KEYBYTES_MAX || (keylen && !key))
		return NULL;
	h = aligned_alloc(64, sz);
	if (!h)
		return NULL;
	if (crypto_generichash_blake2b_init(&h->st, keylen ? key : NULL, keylen, outlen) != 0) {
		free(h);
		return NULL;
	}
	h->outlen = outlen;
	return h;
}

void hash_update(struct hash *h, const void *buf, size_t len)
{
	if (len)
		crypto_generichash_blake2b_update(&h->st, buf, len);
}

void hash_final(struct hash *h, uint8_t *out)
{
	crypto_generichash_blake2b_final(&h->st, out, h->outlen);
	hash_free(h);
}

void hash_free(struct hash *h)
{
	if (!h)
		return;
	/* A keyed state holds the key. */
	sodium_memzero(h, sizeof(*h));
	free(h);
}

void hash_buf(uint8_t out[static HASH_LEN], const void *buf, size_t len)
{
	crypto_generichash_blake2b(out, HASH_LEN, buf, len, NULL, 0);
}

void blake2b_personal(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
		      const char *personal, const void *a, size_t alen, const void *b, size_t blen,
		      const void *c, size_t clen)
{
	crypto_generichash_blake2b_state st;
	uint8_t p[crypto_generichash_blake2b_PERSONALBYTES];

	personal16(p, personal);
	crypto_generichash_blake2b_init_salt_personal(&st, key, keylen, outlen, NULL, p);
	if (a && alen)
		crypto_generichash_blake2b_update(&st, a, alen);
	if (b && blen)
		crypto_generichash_blake2b_update(&st, b, blen);
	if (c && clen)
		crypto_generichash_blake2b_update(&st, c, clen);
	crypto_generichash_blake2b_final(&st, out, outlen);
	sodium_memzero(&st, sizeof(st));
}
