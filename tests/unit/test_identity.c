/* Identities: certificates, rotation, node numbers, fingerprints and the typo-proof identity
 * string. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "test.h"

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static void test_cert_and_rotate(void)
{
	struct identity *id = NULL;
	struct identity_public a, b, t;

	CHECK_EQ(identity_generate(&id), 0);
	identity_get_public(id, &a);
	CHECK_EQ(a.epoch, 1);
	CHECK(identity_public_verify(&a));

	/* Any change to the certified fields breaks the certificate. */
	t = a;
	t.epoch = 2;
	CHECK(!identity_public_verify(&t));
	t = a;
	t.box_pk[7] ^= 1;
	CHECK(!identity_public_verify(&t));
	t = a;
	t.cert[63] ^= 0x10;
	CHECK(!identity_public_verify(&t));
	t = a;
	t.sign_pk[0] ^= 1;
	CHECK(!identity_public_verify(&t));
	t = a;
	t.epoch = 0;
	CHECK(!identity_public_verify(&t));

	CHECK_EQ(identity_rotate(id), 0);
	identity_get_public(id, &b);
	CHECK_EQ(b.epoch, 2);
	CHECK_MEM(a.sign_pk, b.sign_pk, 32);
	CHECK(memcmp(a.box_pk, b.box_pk, 32) != 0);
	CHECK(identity_public_verify(&b));
	/* The old certificate is still genuine: it just names an older epoch. */
	CHECK(identity_public_verify(&a));

	/* Many rotations: the epoch keeps counting past the number of kept keys. */
	for (int i = 0; i < 40; i++)
		CHECK_EQ(identity_rotate(id), 0);
	identity_get_public(id, &b);
	CHECK_EQ(b.epoch, 42);
	CHECK(identity_public_verify(&b));
	identity_free(id);
	identity_free(NULL);
}

static void test_node_number_and_fingerprint(void)
{
	struct identity *id;
	struct identity_public p;
	char fp[IDENTITY_FINGERPRINT_LEN], fp2[IDENTITY_FINGERPRINT_LEN];
	uint8_t pk[32];

	CHECK_EQ(identity_generate(&id), 0);
	identity_get_public(id, &p);
	identity_free(id);

	CHECK_EQ(identity_node_number(p.sign_pk), identity_node_number(p.sign_pk));
	for (int i = 0; i < 20000; i++) {
		tern_random(pk, sizeof(pk));
		uint32_t n = identity_node_number(pk);
		CHECK(n >= (UINT32_C(1) << 24));
		CHECK(n <= UINT32_MAX - 1);
	}
	memset(pk, 0, sizeof(pk));
	CHECK(identity_node_number(pk) != identity_node_number(p.sign_pk));

	identity_fingerprint(p.sign_pk, fp);
	identity_fingerprint(p.sign_pk, fp2);
	CHECK_EQ(strlen(fp), IDENTITY_FINGERPRINT_LEN - 1);
	CHECK(strcmp(fp, fp2) == 0);
	for (int i = 0; i < IDENTITY_FINGERPRINT_LEN - 1; i++) {
		if (i % 6 == 5)
			CHECK(fp[i] == ' ');
		else
			CHECK(isdigit((unsigned char)fp[i]));
	}
	p.sign_pk[31] ^= 1;
	identity_fingerprint(p.sign_pk, fp2);
	CHECK(strcmp(fp, fp2) != 0);
}

/* Every way of getting one character wrong must fail, never decode to another key. */
static void test_idstring_typos(const char *s, const struct identity_public *want)
{
	size_t len = strlen(s);
	char buf[IDENTITY_STRING_MAX + 8];
	struct identity_public got;
	const char *why;
	int ret, accepted = 0, subs = 0, badmsg = 0;

	/* Substitutions by every other alphabet character (the prefix included). */
	for (size_t i = 0; i < len; i++) {
		for (const char *c = alphabet; *c; c++) {
			if (*c == s[i])
				continue;
			memcpy(buf, s, len + 1);
			buf[i] = *c;
			why = NULL;
			ret = identity_public_decode(buf, &got, &why);
			subs++;
			if (ret == 0)
				accepted++;
			if (i >= 5) {
				CHECK(ret == -EBADMSG || ret == -EKEYREJECTED);
				badmsg += ret == -EBADMSG;
			} else {
				CHECK_EQ(ret, -EINVAL);
			}
			CHECK(why != NULL);
		}
	}
	CHECK_EQ(accepted, 0);
	/* The prefix's '1' is outside the alphabet, so it has 32 substitutes. */
	CHECK_EQ(subs, (int)len * 31 + 1);
	CHECK(badmsg >= subs - 5 * 31 - 2); /* a 2^-32 checksum miss still fails the cert */

	/* Deletions and insertions. */
	for (size_t i = 0; i < len; i++) {
		memcpy(buf, s, i);
		memcpy(buf + i, s + i + 1, len - i);
		why = NULL;
		CHECK_EQ(identity_public_decode(buf, &got, &why), -EINVAL);
		CHECK(why != NULL);
	}
	for (size_t i = 0; i <= len; i++) {
		for (size_t k = 0; k < 32; k += 5) {
			memcpy(buf, s, i);
			buf[i] = alphabet[k];
			memcpy(buf + i + 1, s + i, len - i + 1);
			CHECK_EQ(identity_public_decode(buf, &got, &why), -EINVAL);
		}
	}
	/* Adjacent transpositions. */
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] == s[i + 1])
			continue;
		memcpy(buf, s, len + 1);
		buf[i] = s[i + 1];
		buf[i + 1] = s[i];
		ret = identity_public_decode(buf, &got, &why);
		CHECK(ret != 0);
	}
	(void)want;
}

static void test_idstring(void)
{
	struct identity *id;
	struct identity_public p, q;
	char s[IDENTITY_STRING_MAX + 1], buf[IDENTITY_STRING_MAX + 16];
	const char *why;

	CHECK_EQ(identity_generate(&id), 0);
	CHECK_EQ(identity_rotate(id), 0);
	identity_get_public(id, &p);
	identity_free(id);

	identity_public_encode(&p, s, sizeof(s));
	CHECK(strncmp(s, "tern1", 5) == 0);
	CHECK(strlen(s) <= IDENTITY_STRING_MAX);
	CHECK_EQ(strlen(s), 225);
	for (size_t i = 5; s[i]; i++)
		CHECK(strchr(alphabet, s[i]) != NULL);

	memset(&q, 0, sizeof(q));
	why = "unset";
	CHECK_EQ(identity_public_decode(s, &q, &why), 0);
	CHECK(memcmp(&p, &q, sizeof(p)) == 0);

	/* Surrounding whitespace and upper case are accepted. */
	snprintf(buf, sizeof(buf), " \t%s\r\n", s);
	CHECK_EQ(identity_public_decode(buf, &q, &why), 0);
	for (size_t i = 0; s[i]; i++)
		buf[i] = (char)toupper((unsigned char)s[i]);
	buf[strlen(s)] = '\0';
	CHECK_EQ(identity_public_decode(buf, &q, &why), 0);
	CHECK(memcmp(&p, &q, sizeof(p)) == 0);

	/* Clear reasons for the usual mistakes. */
	CHECK_EQ(identity_public_decode("", &q, &why), -EINVAL);
	CHECK(why != NULL);
	CHECK_EQ(identity_public_decode(NULL, &q, &why), -EINVAL);
	CHECK_EQ(identity_public_decode("tern2abc", &q, &why), -EINVAL);
	CHECK(strstr(why, "tern1") != NULL);
	memcpy(buf, s, strlen(s) + 1);
	buf[100] = ' ';
	CHECK_EQ(identity_public_decode(buf, &q, &why), -EINVAL);
	CHECK(strstr(why, "space") != NULL);
	memcpy(buf, s, strlen(s) + 1);
	buf[100] = '0';
	CHECK_EQ(identity_public_decode(buf, &q, &why), -EINVAL);
	CHECK(strstr(why, "invalid character") != NULL);
	memcpy(buf, s, strlen(s) + 1);
	buf[200] = '\0';
	CHECK_EQ(identity_public_decode(buf, &q, &why), -EINVAL);
	CHECK(strstr(why, "short") != NULL);
	snprintf(buf, sizeof(buf), "%sa", s);
	CHECK_EQ(identity_public_decode(buf, &q, &why), -EINVAL);
	CHECK(strstr(why, "long") != NULL);
	/* A NULL why is allowed. */
	CHECK_EQ(identity_public_decode("x", &q, NULL), -EINVAL);

	/* A well-formed string whose certificate was not made by its key. */
	q = p;
	q.epoch++;
	identity_public_encode(&q, buf, sizeof(buf));
	CHECK_EQ(identity_public_decode(buf, &q, &why), -EKEYREJECTED);
	CHECK(strstr(why, "certificate") != NULL);

	/* Too small an output buffer gets an empty string, not an overflow. */
	identity_public_encode(&p, buf, 10);
	CHECK_EQ(buf[0], '\0');

	test_idstring_typos(s, &p);
}

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	test_cert_and_rotate();
	test_node_number_and_fingerprint();
	test_idstring();
	TEST_MAIN_END();
}
