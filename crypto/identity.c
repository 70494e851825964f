/* Node identities: the Ed25519 key, its certified X25519 keys by epoch, fingerprints, node numbers.
 */
#include <errno.h>
#include <stdio.h>

#include "crypto/internal.h"
#include "crypto/testing.h"

void identity_cert_message(uint8_t out[static IDENTITY_CERT_MSG_LEN],
			   const uint8_t box_pk[static 32], uint32_t epoch)
{
	memcpy(out, DOMAIN_CERT, sizeof(DOMAIN_CERT));
	memcpy(out + sizeof(DOMAIN_CERT), box_pk, 32);
	put_be32(out + sizeof(DOMAIN_CERT) + 32, epoch);
}

static void certify_current(struct identity *id)
{
	uint8_t msg[IDENTITY_CERT_MSG_LEN];
	const struct identity_box_key *cur = &id->box[id->n_box - 1];

	identity_cert_message(msg, cur->pk, cur->epoch);
	crypto_sign_ed25519_detached(id->cert, NULL, msg, sizeof(msg), id->sign_sk);
}

int identity_from_secrets(const uint8_t sign_seed[static 32], const uint32_t *epochs,
			  const uint8_t (*box_sk)[32], size_t n, struct identity **out)
{
	struct identity *id = NULL;
	int ret = -EINVAL;

	*out = NULL;
	if (n < 1 || n > IDENTITY_BOX_KEYS_MAX)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (epochs[i] == 0 || (i > 0 && epochs[i] <= epochs[i - 1]))
			goto out;
	}
	ret = -ENOMEM;
	id = sodium_malloc(sizeof(*id));
	if (!id)
		goto out;
	memset(id, 0, sizeof(*id));
	crypto_sign_ed25519_seed_keypair(id->sign_pk, id->sign_sk, sign_seed);
	for (size_t i = 0; i < n; i++) {
		id->box[i].epoch = epochs[i];
		memcpy(id->box[i].sk, box_sk[i], 32);
		/* Clamping sets bit 254, so the public key is never the identity point. */
		crypto_scalarmult_curve25519_base(id->box[i].pk, id->box[i].sk);
	}
	id->n_box = n;
	certify_current(id);
	*out = id;
	id = NULL;
	ret = 0;
out:
	identity_free(id);
	return ret;
}

int identity_generate(struct identity **out)
{
	uint8_t *secrets = sodium_malloc(64);
	const uint32_t epoch = 1;
	int ret = -ENOMEM;

	*out = NULL;
	if (!secrets)
		goto out;
	/* Drawn in this order (signing seed, then box key): the test vectors depend on it. */
	tern_random(secrets, 64);
	ret = identity_from_secrets(secrets, &epoch, (const uint8_t(*)[32])(secrets + 32), 1, out);
out:
	sodium_free(secrets);
	return ret;
}

void identity_free(struct identity *id)
{
	/* sodium_free wipes the pages before unmapping them. */
	if (id)
		sodium_free(id);
}

void identity_get_public(const struct identity *id, struct identity_public *out)
{
	const struct identity_box_key *cur = &id->box[id->n_box - 1];

	memcpy(out->sign_pk, id->sign_pk, sizeof(out->sign_pk));
	memcpy(out->box_pk, cur->pk, sizeof(out->box_pk));
	out->epoch = cur->epoch;
	memcpy(out->cert, id->cert, sizeof(out->cert));
}

int identity_rotate(struct identity *id)
{
	struct identity_box_key *next;
	uint32_t epoch = id->box[id->n_box - 1].epoch;

	if (epoch == UINT32_MAX)
		return -EOVERFLOW;
	if (id->n_box == IDENTITY_BOX_KEYS_MAX) {
		sodium_memzero(&id->box[0], sizeof(id->box[0]));
		memmove(&id->box[0], &id->box[1], (IDENTITY_BOX_KEYS_MAX - 1) * sizeof(id->box[0]));
		id->n_box--;
	}
	next = &id->box[id->n_box];
	tern_random(next->sk, sizeof(next->sk));
	crypto_scalarmult_curve25519_base(next->pk, next->sk);
	next->epoch = epoch + 1;
	id->n_box++;
	certify_current(id);
	return 0;
}

bool identity_public_verify(const struct identity_public *pub)
{
	uint8_t msg[IDENTITY_CERT_MSG_LEN];

	if (pub->epoch == 0)
		return false;
	identity_cert_message(msg, pub->box_pk, pub->epoch);
	return crypto_sign_ed25519_verify_detached(pub->cert, msg, sizeof(msg), pub->sign_pk) == 0;
}

void identity_fingerprint(const uint8_t sign_pk[static IDENTITY_SIGN_PK_LEN],
			  char out[static IDENTITY_FINGERPRINT_LEN])
{
	uint8_t h[40];
	char *p = out;

	blake2b_personal(h, sizeof(h), NULL, 0, PERSONAL_FINGERPRINT, sign_pk, IDENTITY_SIGN_PK_LEN,
			 NULL, 0, NULL, 0);
	/* Each group is a 40-bit big-endian integer mod 10^5, as in Signal's safety numbers. */
	for (int g = 0; g < 8; g++) {
		uint64_t v = 0;

		for (int i = 0; i < 5; i++)
			v = v << 8 | h[g * 5 + i];
		p += snprintf(p, (size_t)(out + IDENTITY_FINGERPRINT_LEN - p), g ? " %05u" : "%05u",
			      (unsigned)(v % 100000));
	}
}

uint32_t identity_node_number(const uint8_t sign_pk[static IDENTITY_SIGN_PK_LEN])
{
	/* Numbers in [2^24, 2^32 - 2]: 2^32 - 2^24 - 1 of them. */
	const uint64_t base = UINT64_C(1) << 24;
	const uint64_t count = (UINT64_C(1) << 32) - base - 1;
	uint8_t h[16];

	/* libsodium documents 16 bytes as the shortest output; the first 8 are used. */
	blake2b_personal(h, sizeof(h), NULL, 0, PERSONAL_NODE_NUMBER, sign_pk, IDENTITY_SIGN_PK_LEN,
			 NULL, 0, NULL, 0);
	/* 64 bits reduced mod count: the bias is below 2^-32. */
	return (uint32_t)(base + get_be64(h) % count);
}

void identity_test_set_sign_pk(struct identity *id, const uint8_t sign_pk[32])
{
	memcpy(id->sign_pk, sign_pk, sizeof(id->sign_pk));
}
