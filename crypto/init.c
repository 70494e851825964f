/* Starts libsodium and hands out random bytes, with a test hook for deterministic runs. */
#include <errno.h>

#include "crypto/internal.h"
#include "crypto/testing.h"

int tern_crypto_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

void tern_random(void *buf, size_t len)
{
	if (len)
		randombytes_buf(buf, len);
}

void tern_wipe(void *buf, size_t len)
{
	sodium_memzero(buf, len);
}

/*
 * The test generator is installed as libsodium's randombytes implementation rather
 * than only behind tern_random, so that draws inside libsodium (the secretstream
 * header of crypto_secretstream_xchacha20poly1305_init_push) are reproducible too.
 */
static tern_test_rng_fn test_fn;
static void *test_ctx;

static const char *test_rng_name(void)
{
	return "tern-test";
}

static void test_rng_buf(void *const buf, const size_t size)
{
	test_fn(test_ctx, buf, size);
}

static uint32_t test_rng_random(void)
{
	uint8_t b[4];

	test_fn(test_ctx, b, sizeof(b));
	return get_be32(b);
}

static struct randombytes_implementation test_rng = {
    .implementation_name = test_rng_name,
    .random = test_rng_random,
    .buf = test_rng_buf,
};

void tern_crypto_test_set_rng(tern_test_rng_fn fn, void *ctx)
{
	/* Whichever system generator libsodium chose, it gets it back. */
	static struct randombytes_implementation *system;

	if (!system)
		system = strcmp(randombytes_implementation_name(), "sysrandom") == 0
			     ? &randombytes_sysrandom_implementation
			     : &randombytes_internal_implementation;
	test_fn = fn;
	test_ctx = ctx;
	randombytes_set_implementation(fn ? &test_rng : system);
}
