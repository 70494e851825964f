/* Fuzz target for the stick manifest parser: what parses re-encodes to itself and looks up. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transports/stick_format.h"

/*
 * Properties checked on every input:
 * 1. The verdict is 0 or one of the documented errors, with a reason on every error,
 *    and no entry reaches the callback of a body that is refused.
 * 2. A body that parses re-encodes from its fields to exactly the same bytes (the
 *    encoding is canonical), and every entry is found again by stick_manifest_lookup.
 * A violated property aborts, which the fuzzer reports as a crash.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct got {
	struct stick_manifest_entry *e;
	size_t n, cap;
};

static int keep(void *ctx, const struct stick_manifest_entry *e)
{
	struct got *g = ctx;

	if (g->n == g->cap)
		abort(); /* more callbacks than the count said */
	g->e[g->n++] = *e;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stick_manifest m;
	const char *why = NULL;
	/* An upper bound on the entries this input could hold, so the callback never overruns. */
	struct got g = {.cap = size / STICK_MANIFEST_ENTRY + 1};

	g.e = malloc(g.cap * sizeof(*g.e));
	if (!g.e)
		return 0;
	int ret = stick_manifest_parse(data, size, &m, keep, &g, &why);
	if (ret != 0) {
		if ((ret != -EBADMSG && ret != -ENOTSUP && ret != -EFBIG) || !why || g.n != 0)
			abort();
		free(g.e);
		return 0;
	}
	if (g.n != m.count || m.version != STICK_FORMAT_VERSION)
		abort();

	uint8_t *out = NULL;
	size_t outlen = 0;
	if (stick_manifest_encode(&m, g.e, g.n, &out, &outlen) != 0)
		abort();
	if (outlen != size || memcmp(out, data, size) != 0)
		abort();
	for (size_t i = 0; i < g.n; i++) {
		struct stick_manifest_entry f;
		if (stick_manifest_lookup(data, size, g.e[i].id, &f) != 0 ||
		    memcmp(&f, &g.e[i], sizeof(f)) != 0)
			abort();
	}
	free(out);
	free(g.e);
	return 0;
}
