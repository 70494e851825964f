/* Hop keys for links without a handshake (Iridium SBD): static-static X25519 and an AEAD. */
#include <errno.h>

#include "crypto/internal.h"

/*
 * docs/serial.md, "Iridium SBD". A message through the Iridium gateway and its e-mail
 * cannot wait for a handshake's round trip, so each direction has a key of its own from
 * the two nodes' long-term box keys: BLAKE2b(DH(a, B); A_pk || B_pk), sender first. There
 * is no forward secrecy at this layer; the bundle inside is sealed end to end on its own.
 * What it hides from the gateway is the bundle's primary block: who it is for, and when.
 */
static int hop_key(const uint8_t my_sk[static 32], const uint8_t my_pk[static 32],
		   const uint8_t peer_pk[static 32], bool sending, uint8_t key[static 32])
{
	uint8_t shared[crypto_scalarmult_curve25519_BYTES];
	if (crypto_scalarmult_curve25519(shared, my_sk, peer_pk) != 0)
		return -EINVAL; /* a low-order point: no key */
	const uint8_t *first = sending ? my_pk : peer_pk, *second = sending ? peer_pk : my_pk;
	blake2b_personal(key, 32, shared, sizeof(shared), PERSONAL_HOP_KEY, first, 32, second, 32,
			 NULL, 0);
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

int hop_seal(const struct identity *me, const struct identity_public *peer,
	     const uint8_t nonce[static HOP_NONCE_LEN], const uint8_t *ad, size_t adlen,
	     const uint8_t *pt, size_t len, uint8_t *out)
{
	const struct identity_box_key *k = &me->box[me->n_box - 1];
	uint8_t key[32];
	int ret = hop_key(k->sk, k->pk, peer->box_pk, true, key);
	if (ret == 0)
		crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, pt, len, ad, adlen, NULL,
							   nonce, key);
	sodium_memzero(key, sizeof(key));
	return ret;
}

int hop_open(const struct identity *me, const struct identity_public *peer,
	     const uint8_t nonce[static HOP_NONCE_LEN], const uint8_t *ad, size_t adlen,
	     const uint8_t *ct, size_t len, uint8_t *out)
{
	if (len < HOP_TAG_LEN)
		return -EBADMSG;
	/* The sender sealed with the box key it knew of ours: the current one, or an older one. */
	for (size_t i = me->n_box; i-- > 0;) {
		uint8_t key[32];
		if (hop_key(me->box[i].sk, me->box[i].pk, peer->box_pk, false, key) < 0)
			continue;
		int ok = crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, ad,
								    adlen, nonce, key);
		sodium_memzero(key, sizeof(key));
		if (ok == 0)
			return 0;
	}
	return -EBADMSG;
}
