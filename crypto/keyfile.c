/* Secret keys at rest: serialisation, optionally sealed under an Argon2id passphrase key. */
#include <errno.h>
#include <stdlib.h>

#include "crypto/internal.h"
#include "crypto/testing.h"

#define KF_MAGIC     "tern-key"
#define KF_MAGIC_LEN 8
#define KF_VERSION   1
#define KF_PLAIN     0
/* Argon2id v1.3 for the key, XChaCha20-Poly1305 for the body. */
#define KF_SEALED  1
#define KF_HDR_LEN (KF_MAGIC_LEN + 2)
/* header || opslimit || memlimit || salt || nonce */
#define KF_SEALED_HDR_LEN                                                                          \
	(KF_HDR_LEN + 8 + 8 + crypto_pwhash_argon2id_SALTBYTES +                                   \
	 crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
#define KF_CHECK_LEN 16
/* sign_seed || n || n * (epoch || box_sk) */
#define KF_BODY_LEN(n) (32 + 1 + (size_t)(n)*36)

/*
 * Upper bounds accepted when reading, so a damaged or hostile file cannot ask for
 * hours of work or terabytes; they leave room to raise the limits (SENSITIVE is
 * 4 passes over 1 GiB).
 */
#define KF_OPSLIMIT_MAX 32
#define KF_MEMLIMIT_MAX (UINT64_C(4) << 30)

static uint64_t test_opslimit;
static size_t test_memlimit;

void keyfile_test_set_pwhash_limits(uint64_t opslimit, size_t memlimit)
{
	test_opslimit = opslimit;
	test_memlimit = memlimit;
}

static void encode_body(const struct identity *id, uint8_t *body)
{
	uint8_t *p = body;

	/* The Ed25519 secret key is seed || pk; the seed alone rebuilds it. */
	memcpy(p, id->sign_sk, 32);
	p += 32;
	*p++ = (uint8_t)id->n_box;
	for (size_t i = 0; i < id->n_box; i++) {
		put_be32(p, id->box[i].epoch);
		memcpy(p + 4, id->box[i].sk, 32);
		p += 36;
	}
}

static int derive_key(uint8_t key[static 32], const char *passphrase, const uint8_t *salt,
		      uint64_t ops, uint64_t mem)
{
	if (crypto_pwhash(key, 32, passphrase, strlen(passphrase), salt, ops, (size_t)mem,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;
	return 0;
}

int keyfile_encode(const struct identity *id, const char *passphrase, uint8_t **out, size_t *outlen)
{
	size_t body_len = KF_BODY_LEN(id->n_box);
	uint64_t ops = test_opslimit ? test_opslimit : crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
	uint64_t mem = test_memlimit ? test_memlimit : crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
	uint8_t *body = NULL, *key = NULL, *buf = NULL;
	size_t len;
	int ret = -EINVAL;

	*out = NULL;
	*outlen = 0;
	/* An empty passphrase would look protected and protect nothing. */
	if (passphrase && !passphrase[0])
		goto out;
	ret = -ENOMEM;
	body = sodium_malloc(body_len);
	key = sodium_malloc(32);
	len = passphrase ? KF_SEALED_HDR_LEN + body_len + crypto_aead_xchacha20poly1305_ietf_ABYTES
			 : KF_HDR_LEN + body_len + KF_CHECK_LEN;
	buf = malloc(len);
	if (!body || !key || !buf)
		goto out;
	encode_body(id, body);
	memcpy(buf, KF_MAGIC, KF_MAGIC_LEN);
	buf[KF_MAGIC_LEN] = KF_VERSION;
	if (!passphrase) {
		buf[KF_MAGIC_LEN + 1] = KF_PLAIN;
		memcpy(buf + KF_HDR_LEN, body, body_len);
		/* No AEAD to notice a flipped bit on an SD card, so a checksum does. */
		blake2b_personal(buf + KF_HDR_LEN + body_len, KF_CHECK_LEN, NULL, 0,
				 PERSONAL_KEYFILE_SUM, buf, KF_HDR_LEN + body_len, NULL, 0, NULL,
				 0);
	} else {
		uint8_t *p = buf + KF_HDR_LEN;
		uint8_t *salt, *nonce;

		buf[KF_MAGIC_LEN + 1] = KF_SEALED;
		put_be64(p, ops);
		put_be64(p + 8, mem);
		salt = p + 16;
		nonce = salt + crypto_pwhash_argon2id_SALTBYTES;
		tern_random(salt, crypto_pwhash_argon2id_SALTBYTES);
		tern_random(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
		ret = derive_key(key, passphrase, salt, ops, mem);
		if (ret)
			goto out;
		crypto_aead_xchacha20poly1305_ietf_encrypt(buf + KF_SEALED_HDR_LEN, NULL, body,
							   body_len, buf, KF_SEALED_HDR_LEN, NULL,
							   nonce, key);
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	ret = 0;
out:
	sodium_free(body);
	sodium_free(key);
	free(buf);
	return ret;
}

void keyfile_buf_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

static bool header_ok(const uint8_t *buf, size_t len)
{
	return len >= KF_HDR_LEN && memcmp(buf, KF_MAGIC, KF_MAGIC_LEN) == 0 &&
	       buf[KF_MAGIC_LEN] == KF_VERSION;
}

bool keyfile_is_encrypted(const uint8_t *buf, size_t len)
{
	return header_ok(buf, len) && buf[KF_MAGIC_LEN + 1] == KF_SEALED;
}

static int decode_body(const uint8_t *body, size_t len, struct identity **out)
{
	uint32_t epochs[IDENTITY_BOX_KEYS_MAX];
	uint8_t(*box_sk)[32] = NULL;
	size_t n;
	int ret = -EINVAL;

	if (len < KF_BODY_LEN(1))
		goto out;
	n = body[32];
	if (n < 1 || n > IDENTITY_BOX_KEYS_MAX || len != KF_BODY_LEN(n))
		goto out;
	ret = -ENOMEM;
	box_sk = sodium_malloc(n * 32);
	if (!box_sk)
		goto out;
	for (size_t i = 0; i < n; i++) {
		epochs[i] = get_be32(body + 33 + i * 36);
		memcpy(box_sk[i], body + 33 + i * 36 + 4, 32);
	}
	/* Rejects epochs that are zero or out of order. */
	ret = identity_from_secrets(body, epochs, (const uint8_t(*)[32])box_sk, n, out);
out:
	sodium_free(box_sk);
	return ret;
}

int keyfile_decode(const uint8_t *buf, size_t len, const char *passphrase, struct identity **out)
{
	const size_t abytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *body = NULL, *key = NULL;
	uint8_t check[KF_CHECK_LEN];
	uint64_t ops, mem;
	size_t body_len;
	int ret = -EINVAL;

	*out = NULL;
	if (!buf || !header_ok(buf, len))
		goto out;
	if (buf[KF_MAGIC_LEN + 1] == KF_PLAIN) {
		if (len < KF_HDR_LEN + KF_CHECK_LEN)
			goto out;
		body_len = len - KF_HDR_LEN - KF_CHECK_LEN;
		blake2b_personal(check, sizeof(check), NULL, 0, PERSONAL_KEYFILE_SUM, buf,
				 KF_HDR_LEN + body_len, NULL, 0, NULL, 0);
		if (sodium_memcmp(check, buf + KF_HDR_LEN + body_len, KF_CHECK_LEN) != 0)
			goto out;
		ret = decode_body(buf + KF_HDR_LEN, body_len, out);
		goto out;
	}
	if (buf[KF_MAGIC_LEN + 1] != KF_SEALED || len < KF_SEALED_HDR_LEN + abytes)
		goto out;
	ops = get_be64(buf + KF_HDR_LEN);
	mem = get_be64(buf + KF_HDR_LEN + 8);
	if (ops < crypto_pwhash_argon2id_OPSLIMIT_MIN || ops > KF_OPSLIMIT_MAX ||
	    mem < crypto_pwhash_argon2id_MEMLIMIT_MIN || mem > KF_MEMLIMIT_MAX || mem > SIZE_MAX)
		goto out;
	body_len = len - KF_SEALED_HDR_LEN - abytes;
	ret = -EACCES;
	if (!passphrase)
		goto out;
	ret = -ENOMEM;
	key = sodium_malloc(32);
	body = sodium_malloc(body_len ? body_len : 1);
	if (!key || !body)
		goto out;
	ret = derive_key(key, passphrase, buf + KF_HDR_LEN + 16, ops, mem);
	if (ret)
		goto out;
	/* The AEAD cannot tell a wrong passphrase from a damaged file; the former is likelier. */
	ret = -EACCES;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		body, NULL, NULL, buf + KF_SEALED_HDR_LEN, body_len + abytes, buf,
		KF_SEALED_HDR_LEN, buf + KF_HDR_LEN + 16 + crypto_pwhash_argon2id_SALTBYTES,
		key) != 0)
		goto out;
	ret = decode_body(body, body_len, out);
out:
	sodium_free(key);
	sodium_free(body);
	return ret;
}
