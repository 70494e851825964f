/* Key files: round trips with and without a passphrase, wrong passphrases, damage of every byte. */
#include <errno.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"
#include "test.h"

/* The address book of these tests: one known sender. */
static void one_candidate(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]),
			  void *fctx)
{
	(void)hint;
	fn(fctx, ctx);
}

/* Seals a short text to pub and checks that id opens it. */
static int opens(const struct identity *sender, const struct identity_public *pub,
		 const struct identity *id)
{
	struct envelope_recipient r;
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT};
	struct envelope_opener *o = NULL;
	struct identity_public sp;
	uint8_t buf[256];
	size_t len;
	int ret;

	identity_get_public(sender, &sp);
	memcpy(r.sign_pk, pub->sign_pk, 32);
	memcpy(r.box_pk, pub->box_pk, 32);
	ret = envelope_seal_compact(sender, &r, (const uint8_t *)"hi", 2, &meta, buf, sizeof(buf),
				    &len);
	if (ret)
		return ret;
	ret = envelope_open_new(id, &o);
	if (ret)
		return ret;
	ret = envelope_open_update(o, buf, len, NULL, NULL);
	if (!ret)
		ret = envelope_open_final(o, one_candidate, sp.sign_pk, &meta);
	envelope_opener_free(o);
	return ret;
}

static void same_identity(const struct identity *a, const struct identity *b)
{
	struct identity_public pa, pb;

	identity_get_public(a, &pa);
	identity_get_public(b, &pb);
	CHECK(memcmp(&pa, &pb, sizeof(pa)) == 0);
}

static void test_plain(struct identity *id)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct identity *back = NULL;

	CHECK_EQ(keyfile_encode(id, NULL, &buf, &len), 0);
	CHECK(buf != NULL);
	CHECK(!keyfile_is_encrypted(buf, len));
	CHECK_EQ(keyfile_decode(buf, len, NULL, &back), 0);
	same_identity(id, back);
	identity_free(back);
	/* A passphrase given for an unprotected file is not needed and not an error. */
	CHECK_EQ(keyfile_decode(buf, len, "unused", &back), 0);
	identity_free(back);

	/* Every flipped bit and every truncation is caught by the magic, lengths or checksum. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1u << bit);
			back = (struct identity *)1;
			CHECK_EQ(keyfile_decode(buf, len, NULL, &back), -EINVAL);
			CHECK(back == NULL);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	for (size_t n = 0; n < len; n++)
		CHECK_EQ(keyfile_decode(buf, n, NULL, &back), -EINVAL);
	keyfile_buf_free(buf, len);
}

static void test_sealed(struct identity *id)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct identity *back = NULL;
	int ret;

	CHECK_EQ(keyfile_encode(id, "correct horse", &buf, &len), 0);
	CHECK(keyfile_is_encrypted(buf, len));
	CHECK_EQ(keyfile_decode(buf, len, "correct horse", &back), 0);
	same_identity(id, back);
	identity_free(back);

	CHECK_EQ(keyfile_decode(buf, len, "correct horsf", &back), -EACCES);
	CHECK(back == NULL);
	CHECK_EQ(keyfile_decode(buf, len, "", &back), -EACCES);
	CHECK_EQ(keyfile_decode(buf, len, NULL, &back), -EACCES);

	/* Damage anywhere: never an identity; -EINVAL where visible, -EACCES under the AEAD. */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x04;
		ret = keyfile_decode(buf, len, "correct horse", &back);
		CHECK(ret == -EINVAL || ret == -EACCES);
		CHECK(back == NULL);
		buf[i] ^= 0x04;
	}
	for (size_t n = 0; n < len; n++) {
		ret = keyfile_decode(buf, n, "correct horse", &back);
		CHECK(ret == -EINVAL || ret == -EACCES);
	}
	keyfile_buf_free(buf, len);

	/* Two encodings of the same keys differ (fresh salt and nonce). */
	uint8_t *b1, *b2;
	size_t l1, l2;
	CHECK_EQ(keyfile_encode(id, "p", &b1, &l1), 0);
	CHECK_EQ(keyfile_encode(id, "p", &b2, &l2), 0);
	CHECK_EQ(l1, l2);
	CHECK(memcmp(b1, b2, l1) != 0);
	keyfile_buf_free(b1, l1);
	keyfile_buf_free(b2, l2);

	CHECK_EQ(keyfile_encode(id, "", &buf, &len), -EINVAL);
	CHECK(buf == NULL);
}

int main(void)
{
	struct identity *id, *sender, *back;
	struct identity_public old, cur;
	uint8_t *buf;
	size_t len;

	CHECK_EQ(tern_crypto_init(), 0);
	CHECK_EQ(identity_generate(&id), 0);
	CHECK_EQ(identity_generate(&sender), 0);
	identity_get_public(id, &old);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(identity_rotate(id), 0);
	identity_get_public(id, &cur);

	/* The real INTERACTIVE limits once, then cheap ones. */
	CHECK_EQ(keyfile_encode(id, "slow but real", &buf, &len), 0);
	CHECK_EQ(keyfile_decode(buf, len, "slow but real", &back), 0);
	same_identity(id, back);
	/* Old encryption keys survive the round trip: mail to epoch 1 still opens. */
	CHECK_EQ(opens(sender, &old, back), 0);
	CHECK_EQ(opens(sender, &cur, back), 0);
	identity_free(back);
	keyfile_buf_free(buf, len);
	keyfile_buf_free(NULL, 0);

	keyfile_test_set_pwhash_limits(1, 8192);
	test_plain(id);
	test_sealed(id);

	/* Garbage is malformed, not a wrong passphrase. */
	CHECK_EQ(keyfile_decode((const uint8_t *)"hello", 5, "x", &back), -EINVAL);
	CHECK_EQ(keyfile_decode(NULL, 0, NULL, &back), -EINVAL);
	CHECK(!keyfile_is_encrypted((const uint8_t *)"tern-key", 8));

	identity_free(id);
	identity_free(sender);
	TEST_MAIN_END();
}
