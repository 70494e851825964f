/* Fuzz target: the TCP link's byte layer (transports/tcp.c) on the responder's side: preamble,
 * frames, IK message 1 and the records after it, cut into reads at arbitrary points. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"
#include "transports/tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Randomness is a counter-driven stream, restarted for every input: the identities, the
 * responder's ephemeral key and so the session keys are the same on every run, so a seed
 * made by the generator below (the caller's real preamble, message 1 and records) reaches
 * past the handshake into the record decryption, and a crash replays exactly.
 *
 * Input: byte 0 is the read size (1 + byte % 64, or everything at once for 0); the rest
 * is what the caller sends.
 */
static uint64_t counter;

static void stream_rng(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	uint8_t *p = buf;
	for (size_t i = 0; i < len; i++) {
		counter = counter * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(counter >> 56);
	}
}

static struct identity *caller, *me;
static struct identity_public caller_pub, me_pub;

static void setup(void)
{
	if (me)
		return;
	if (tern_crypto_init() != 0)
		abort();
	tern_crypto_test_set_rng(stream_rng, NULL);
	counter = 1;
	if (identity_generate(&caller) != 0 || identity_generate(&me) != 0)
		abort();
	identity_get_public(caller, &caller_pub);
	identity_get_public(me, &me_pub);
}

static int lookup(void *ctx, const uint8_t pk[static 32], struct identity_public *peer)
{
	(void)ctx;
	if (memcmp(pk, caller_pub.box_pk, 32))
		return -1;
	*peer = caller_pub;
	return 0;
}

static int on_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct tcp *t = ctx;
	/* Answer as the engine would, so output framing runs too. */
	return len && rec[0] == 9 ? tcp_send(t, rec, len) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size == 0)
		return 0;
	counter = 2;
	size_t step = data[0] ? 1 + (size_t)data[0] % 64 : size;
	struct tcp *t;
	if (tcp_new_responder(me, lookup, NULL, &t) != 0)
		abort();
	const uint8_t *p;
	for (size_t off = 1; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		int ret = tcp_input(t, data + off, n, on_record, t);
		if (ret < 0) {
			/* Before the handshake is over a failure leaves nothing written. */
			if (!tcp_peer(t) && tcp_output(t, &p) != 0)
				abort();
			break;
		}
	}
	tcp_free(t);
	return 0;
}

#ifdef FUZZ_TCP_MAKE_SEEDS
/* cc -DFUZZ_TCP_MAKE_SEEDS ...: writes a valid session (handshake and 3 records) to stdout. */
#include <stdio.h>
int main(void)
{
	setup();
	struct tcp *a, *b;
	const uint8_t *p;
	uint8_t wire[4096];
	size_t len = 0, n;
	counter = 99; /* the caller's ephemeral: any */
	if (tcp_new_initiator(caller, &me_pub, &a))
		return 1;
	n = tcp_output(a, &p);
	memcpy(wire + len, p, n);
	len += n;
	tcp_consumed(a, n);
	counter = 2; /* the responder's draws, as in the target */
	if (tcp_new_responder(me, lookup, NULL, &b) || tcp_input(b, wire, len, on_record, b))
		return 1;
	n = tcp_output(b, &p);
	if (tcp_input(a, p, n, on_record, a))
		return 1;
	static const uint8_t recs[][12] = {
	    {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, {9, 1, 2, 3}, {11, 4}};
	for (int i = 0; i < 3; i++)
		tcp_send(a, recs[i], sizeof(recs[i]));
	n = tcp_output(a, &p);
	memcpy(wire + len, p, n);
	len += n;
	putchar(0);
	fwrite(wire, 1, len, stdout);
	return 0;
}
#endif
