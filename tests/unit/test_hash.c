/* BLAKE2b wrapper: known answers, streaming equals one-shot, keyed hashing, argument checks. */
#include <stdint.h>

#include "crypto/crypto.h"
#include "test.h"

static void unhex(uint8_t *out, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

int main(void)
{
	uint8_t out[64], want[64], key[64], msg[1000];

	CHECK_EQ(tern_crypto_init(), 0);

	/* BLAKE2b-256 of "" and "abc", BLAKE2b-512 of "abc" (RFC 7693 appendix A). */
	hash_buf(out, "", 0);
	unhex(want, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
	CHECK_MEM(out, want, 32);
	hash_buf(out, "abc", 3);
	unhex(want, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
	CHECK_MEM(out, want, 32);
	struct hash *h = hash_new(64, NULL, 0);
	CHECK(h != NULL);
	hash_update(h, "a", 1);
	hash_update(h, "", 0);
	hash_update(h, "bc", 2);
	hash_final(h, out);
	unhex(want, "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
		    "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
	CHECK_MEM(out, want, 64);

	/* Keyed: the first entry of the reference blake2b-kat.txt (key 00..3f, empty input). */
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)i;
	h = hash_new(64, key, 64);
	CHECK(h != NULL);
	hash_final(h, out);
	unhex(want, "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786"
		    "b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568");
	CHECK_MEM(out, want, 64);

	/* Streaming in odd pieces equals one-shot. */
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	hash_buf(want, msg, sizeof(msg));
	h = hash_new(HASH_LEN, NULL, 0);
	for (size_t off = 0, step = 1; off < sizeof(msg); off += step, step = step * 2 + 1)
		hash_update(h, msg + off, off + step > sizeof(msg) ? sizeof(msg) - off : step);
	hash_final(h, out);
	CHECK_MEM(out, want, HASH_LEN);

	/* A key changes the digest; the output length is part of the hash. */
	h = hash_new(HASH_LEN, key, 16);
	hash_update(h, msg, sizeof(msg));
	hash_final(h, out);
	CHECK(memcmp(out, want, HASH_LEN) != 0);
	h = hash_new(16, NULL, 0);
	hash_update(h, msg, sizeof(msg));
	hash_final(h, out);
	CHECK(memcmp(out, want, 16) != 0);

	/* Out-of-range arguments. */
	CHECK(hash_new(15, NULL, 0) == NULL);
	CHECK(hash_new(65, NULL, 0) == NULL);
	CHECK(hash_new(32, key, 65) == NULL);
	CHECK(hash_new(32, NULL, 8) == NULL);
	hash_free(NULL);
	hash_free(hash_new(32, key, 32));

	TEST_MAIN_END();
}
