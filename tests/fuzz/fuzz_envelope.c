/* Fuzz target: opens arbitrary bytes as an envelope for a fixed identity; must never crash or
 * over-read. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The identity is recipient 0 of the known-answer vectors and the one candidate
 * sender is their sender, so the seed corpus (vectors and damaged copies of them)
 * reaches past the stanzas into the stream, the inner header and the signature.
 */
static const uint8_t me_secrets[64] = {
    0x4f, 0xdc, 0x1e, 0x78, 0xb1, 0x27, 0xa9, 0x6f, 0xdf, 0xcb, 0xdc, 0x0b, 0xde, 0xf6, 0xa7, 0x4d,
    0x16, 0xf3, 0x2c, 0xdc, 0x89, 0xc3, 0x30, 0xd6, 0xc3, 0x4e, 0xfb, 0x0b, 0xe0, 0xfa, 0x0b, 0xc8,
    0xdb, 0x08, 0xa1, 0x4a, 0x15, 0xa3, 0x98, 0x32, 0xd9, 0x0a, 0x43, 0x6e, 0x60, 0x1f, 0x59, 0xd3,
    0x20, 0x63, 0x64, 0xa5, 0xb3, 0x9e, 0xbc, 0x5c, 0x96, 0xd2, 0x61, 0xc5, 0x74, 0x87, 0x80, 0xb4,
};
static const uint8_t sender_secrets[64] = {
    0xd8, 0x94, 0x32, 0xda, 0xb5, 0x9c, 0x54, 0xfe, 0x00, 0x22, 0x84, 0x83, 0xbb, 0xe1, 0xee, 0xb8,
    0x30, 0xaf, 0x2e, 0x6d, 0x54, 0x54, 0x92, 0x7b, 0x07, 0x84, 0x74, 0xe5, 0x44, 0x65, 0x47, 0xd8,
    0xfc, 0x5f, 0x42, 0x78, 0x19, 0x6a, 0x88, 0x67, 0x7b, 0xe1, 0x18, 0xc8, 0xdc, 0xd4, 0x52, 0xd3,
    0x69, 0xac, 0xd9, 0x69, 0x46, 0xfc, 0x6f, 0x2f, 0xed, 0xac, 0xe5, 0x01, 0x32, 0x2e, 0x48, 0xda,
};

struct tape {
	const uint8_t *p;
	size_t left;
};

static void tape_rng(void *ctx, void *buf, size_t len)
{
	struct tape *t = ctx;

	if (len > t->left)
		abort();
	memcpy(buf, t->p, len);
	t->p += len;
	t->left -= len;
}

static struct identity *fixed_identity(const uint8_t secrets[64])
{
	struct identity *id = NULL;
	struct tape t = {secrets, 64};

	tern_crypto_test_set_rng(tape_rng, &t);
	if (identity_generate(&id) != 0)
		abort();
	tern_crypto_test_set_rng(NULL, NULL);
	return id;
}

static struct identity *me;
static struct identity_public sender;

static void candidates(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]),
		       void *fctx)
{
	(void)ctx;
	(void)hint;
	fn(fctx, sender.sign_pk);
}

/* Counts what it is given, so a sink bug (length past the buffer) shows under ASan. */
static int sink(void *ctx, const uint8_t *buf, size_t len)
{
	uint64_t *total = ctx;
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc ^= buf[i];
	*total += len + acc - acc;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope_opener *o = NULL;
	struct envelope_meta meta;
	uint64_t total = 0;
	int ret = 0;

	if (!me) {
		struct identity *s;

		if (tern_crypto_init() != 0)
			abort();
		me = fixed_identity(me_secrets);
		s = fixed_identity(sender_secrets);
		identity_get_public(s, &sender);
		identity_free(s);
	}
	if (envelope_open_new(me, &o) != 0)
		abort();
	/* Pieces of a size that depends on the input, to walk the buffering paths. */
	size_t step = size % 3 == 0 ? (size ? size : 1) : 1 + size % 251;
	for (size_t off = 0; off < size && ret == 0; off += step) {
		size_t n = size - off < step ? size - off : step;
		ret = envelope_open_update(o, data + off, n, sink, &total);
	}
	if (ret == 0 && envelope_open_final(o, candidates, NULL, &meta) == 0) {
		/* Whatever opens must be self-consistent. */
		if (total != meta.size || meta.n_recipients < 1 ||
		    meta.n_recipients > ENVELOPE_MAX_RECIPIENTS ||
		    memchr(meta.name, '\0', sizeof(meta.name)) == NULL)
			abort();
	}
	envelope_opener_free(o);
	return 0;
}
