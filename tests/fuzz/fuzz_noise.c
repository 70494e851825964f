/* Fuzz target: the responder's side of the link handshake (XX and IK) and of the session after
 * it, fed arbitrary messages; must only ever return errors, never crash or over-read. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The responder is the one of the published Noise vectors for XX and IK (same static and
 * ephemeral key, prologue "John Galt", message-2 payload "Murray Rothbard"), so the
 * vectors' messages are valid inputs and the seed corpus reaches past every tag check
 * into the transport phase.
 *
 * Input: byte 0 picks the pattern (even: XX, odd: IK); then records, each a 16-bit
 * big-endian length and that many bytes (cut short at the end of the input). For XX the
 * first record is message 1 and the second message 3; for IK the first is message 1. Every
 * further record is a transport message from the initiator.
 */
static const uint8_t resp_static[32] = {
    0x4a, 0x3a, 0xcb, 0xfd, 0xb1, 0x63, 0xde, 0xc6, 0x51, 0xdf, 0xa3, 0x19, 0x4d, 0xec, 0xe6, 0x76,
    0xd4, 0x37, 0x02, 0x9c, 0x62, 0xa4, 0x08, 0xb4, 0xc5, 0xea, 0x91, 0x14, 0x24, 0x6e, 0x48, 0x93,
};
static const uint8_t resp_ephemeral[32] = {
    0xbb, 0xdb, 0x4c, 0xdb, 0xd3, 0x09, 0xf1, 0xa1, 0xf2, 0xe1, 0x45, 0x69, 0x67, 0xfe, 0x28, 0x8c,
    0xad, 0xd6, 0xf7, 0x12, 0xd6, 0x5d, 0xc7, 0xb7, 0x79, 0x3d, 0x5e, 0x63, 0xda, 0x6b, 0x37, 0x5b,
};
static const uint8_t prologue[] = "John Galt";
static const uint8_t reply[] = "Murray Rothbard";

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

static struct identity *me;

static void setup(void)
{
	uint8_t secrets[64];
	struct tape t = {secrets, sizeof(secrets)};

	if (tern_crypto_init() != 0)
		abort();
	/* identity_generate draws the signing seed, then the box key: ours is the vectors'. */
	memset(secrets, 0x5a, 32);
	memcpy(secrets + 32, resp_static, 32);
	tern_crypto_test_set_rng(tape_rng, &t);
	if (identity_generate(&me) != 0)
		abort();
	tern_crypto_test_set_rng(NULL, NULL);
}

/* The next record of the input, or false at its end. */
static bool next_record(const uint8_t **p, size_t *left, const uint8_t **rec, size_t *len)
{
	size_t n;

	if (*left < 2)
		return false;
	n = (size_t)(*p)[0] << 8 | (*p)[1];
	*p += 2;
	*left -= 2;
	if (n > *left)
		n = *left;
	*rec = *p;
	*len = n;
	*p += n;
	*left -= n;
	return true;
}

/* A read that fails must leave a dead state; one that succeeds, a sane length. */
static int read_checked(struct noise *st, const uint8_t *in, size_t len, uint8_t *pl, size_t cap)
{
	size_t n = 0;
	int ret = noise_read_message(st, in, len, pl, cap, &n);

	if (ret == 0 && (n > len || n > cap))
		abort();
	if (ret != 0 && (ret != -EBADMSG || noise_next(st) != NOISE_NEXT_FAILED || n != 0))
		abort();
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct noise *st = NULL;
	struct noise_cipher *send = NULL, *recv = NULL;
	/* Exact-size heap copies of each record, so ASan sees a read past any of them. */
	uint8_t *rec = NULL;
	static uint8_t out[NOISE_MSG_MAX], pl[NOISE_MSG_MAX];
	const uint8_t *p, *r;
	size_t left, rlen, olen, plen;
	bool xx;
	uint8_t pk[NOISE_KEY_LEN];

	if (!me)
		setup();
	if (size < 1)
		return 0;
	xx = data[0] % 2 == 0;
	p = data + 1;
	left = size - 1;
	if (noise_new(xx ? NOISE_XX : NOISE_IK, false, prologue, sizeof(prologue) - 1, me, NULL,
		      &st) != 0)
		abort();

	/* Message 1. */
	if (!next_record(&p, &left, &r, &rlen))
		goto out;
	rec = malloc(rlen ? rlen : 1);
	if (!rec)
		abort();
	memcpy(rec, r, rlen);
	if (read_checked(st, rec, rlen, pl, sizeof(pl)) != 0)
		goto out;
	free(rec);
	rec = NULL;
	/* IK has revealed the initiator here; XX not yet. */
	if ((noise_remote_static(st, pk) == 0) != !xx)
		abort();

	/* Message 2, as the vectors' responder writes it. */
	{
		struct tape t = {resp_ephemeral, sizeof(resp_ephemeral)};
		int ret;

		tern_crypto_test_set_rng(tape_rng, &t);
		ret = noise_write_message(st, reply, sizeof(reply) - 1, out, sizeof(out), &olen);
		tern_crypto_test_set_rng(NULL, NULL);
		/* A low-order ephemeral in message 1 is caught here, at the first DH. */
		if (ret != 0) {
			if (ret != -EBADMSG || noise_next(st) != NOISE_NEXT_FAILED)
				abort();
			goto out;
		}
	}

	/* Message 3 (XX). */
	if (xx) {
		if (!next_record(&p, &left, &r, &rlen))
			goto out;
		rec = malloc(rlen ? rlen : 1);
		if (!rec)
			abort();
		memcpy(rec, r, rlen);
		if (read_checked(st, rec, rlen, pl, sizeof(pl)) != 0)
			goto out;
		free(rec);
		rec = NULL;
		if (noise_remote_static(st, pk) != 0)
			abort();
	}
	if (noise_next(st) != NOISE_NEXT_SPLIT || noise_split(st, &send, &recv) != 0)
		abort();

	/* Transport messages until the first failure, which must end the session. */
	while (next_record(&p, &left, &r, &rlen)) {
		int ret;

		rec = malloc(rlen ? rlen : 1);
		if (!rec)
			abort();
		memcpy(rec, r, rlen);
		ret = noise_decrypt(recv, rec, rlen, pl, sizeof(pl), &plen);
		free(rec);
		rec = NULL;
		if (ret == 0 && plen + NOISE_TRANSPORT_OVERHEAD != rlen)
			abort();
		if (ret != 0) {
			if (ret != -EBADMSG ||
			    noise_decrypt(recv, data, size, pl, sizeof(pl), &plen) != -EBADMSG)
				abort();
			break;
		}
	}
out:
	free(rec);
	noise_cipher_free(send);
	noise_cipher_free(recv);
	noise_free(st);
	return 0;
}
