/* Fuzz target: parses arbitrary bytes as a key file; a plain file that parses must re-encode to
 * itself. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct identity *id = NULL;
	uint8_t *out = NULL;
	size_t outlen = 0;
	bool sealed;

	if (!ready) {
		if (tern_crypto_init() != 0)
			abort();
		ready = true;
	}
	sealed = keyfile_is_encrypted(data, size);
	int ret = keyfile_decode(data, size, NULL, &id);
	if (ret != 0 && ret != -EINVAL && ret != -EACCES)
		abort();
	if (ret == 0) {
		if (sealed)
			abort(); /* a protected file never opens without the passphrase */
		if (keyfile_encode(id, NULL, &out, &outlen) != 0)
			abort();
		if (outlen != size || memcmp(out, data, size) != 0)
			abort();
		keyfile_buf_free(out, outlen);
		identity_free(id);
		id = NULL;
	}
	/*
	 * Past the passphrase too, but only where the file asks for cheap Argon2 (the
	 * seeds use 1 pass over 8 KiB), so the fuzzer spends its time on parsing.
	 */
	if (sealed && size >= 26 && be64(data + 10) <= 2 && be64(data + 18) <= 65536) {
		ret = keyfile_decode(data, size, "fuzz", &id);
		if (ret != 0 && ret != -EINVAL && ret != -EACCES)
			abort();
		identity_free(id);
	}
	return 0;
}
