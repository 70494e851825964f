/* Fuzz target for the stick receipt parser: what parses re-encodes to the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transports/stick_format.h"

/*
 * Properties checked on every input:
 * 1. The verdict is 0 or one of the documented errors, with a reason on every error,
 *    and no id reaches the callback of a body that is refused.
 * 2. Ids come with the length of the kind, as many as the count says, and a body that
 *    parses re-encodes from its fields to exactly the same bytes.
 * A violated property aborts, which the fuzzer reports as a crash.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct got {
	uint8_t *ids;
	size_t n, cap, idlen;
};

static int keep(void *ctx, const uint8_t *id, size_t idlen)
{
	struct got *g = ctx;

	if (g->n == g->cap || (g->idlen && idlen != g->idlen))
		abort();
	g->idlen = idlen;
	memcpy(g->ids + g->n * 32, id, idlen);
	g->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stick_receipt r;
	const char *why = NULL;
	struct got g = {.cap = size / 16 + 1};

	g.ids = malloc(g.cap * 32);
	if (!g.ids)
		return 0;
	int ret = stick_receipt_parse(data, size, &r, keep, &g, &why);
	if (ret != 0) {
		if ((ret != -EBADMSG && ret != -ENOTSUP && ret != -EFBIG) || !why || g.n != 0)
			abort();
		free(g.ids);
		return 0;
	}
	size_t idlen = stick_receipt_id_len(r.kind);
	if (g.n != r.count || idlen == 0 || (g.n && g.idlen != idlen) ||
	    r.version != STICK_FORMAT_VERSION)
		abort();

	/* Packed for the encoder. */
	for (size_t i = 1; i < g.n; i++)
		memmove(g.ids + i * idlen, g.ids + i * 32, idlen);
	uint8_t *out = NULL;
	size_t outlen = 0;
	if (stick_receipt_encode(&r, g.ids, g.n, &out, &outlen) != 0)
		abort();
	if (outlen != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	free(g.ids);
	return 0;
}
