/* Fuzz target: parses arbitrary text as an identity string; anything accepted must be the canonical
 * spelling. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct identity_public pub, again;
	char enc[IDENTITY_STRING_MAX + 1];
	const char *why = NULL;
	char *s;

	if (!ready) {
		if (tern_crypto_init() != 0)
			abort();
		ready = true;
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int ret = identity_public_decode(s, &pub, &why);
	if (ret != 0 &&
	    (why == NULL || (ret != -EINVAL && ret != -EBADMSG && ret != -EKEYREJECTED)))
		abort();
	if (ret == 0) {
		/*
		 * Only case and surrounding whitespace are forgiven: the rest must be exactly
		 * what the encoder writes, or one identity would have several strings.
		 */
		char *b = s, *e = s + strlen(s);
		while (*b && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		for (char *c = b; c < e; c++)
			*c = (char)tolower((unsigned char)*c);
		identity_public_encode(&pub, enc, sizeof(enc));
		if ((size_t)(e - b) != strlen(enc) || memcmp(b, enc, strlen(enc)) != 0)
			abort();
		if (identity_public_decode(enc, &again, &why) != 0 ||
		    memcmp(&pub, &again, sizeof(pub)))
			abort();
	}
	free(s);
	return 0;
}
