/*
 * Test and benchmark hooks of the crypto module. tern itself never calls these;
 * they exist so known-answer vectors can be reproduced and baselines measured
 * without anything outside crypto/ including sodium.h.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Replaces every source of randomness in the process (tern_random and libsodium's
 * randombytes) by fn until called again with fn == NULL, which restores the
 * system generator. fn must fill buf completely. Not thread-safe.
 */
typedef void (*tern_test_rng_fn)(void *ctx, void *buf, size_t len);
void tern_crypto_test_set_rng(tern_test_rng_fn fn, void *ctx);

/*
 * Makes keyfile_encode use these Argon2id limits instead of the INTERACTIVE ones
 * (0, 0 restores them), so tests need not spend 64 MiB and a second per key file.
 * The limits are stored in the file, so keyfile_decode needs no hook.
 */
void keyfile_test_set_pwhash_limits(uint64_t opslimit, size_t memlimit);

/*
 * Benchmark baselines over total bytes taken from buf repeatedly, in chunks of
 * chunk bytes (chunk <= 65536, buflen a multiple of chunk). The first pushes every
 * chunk through crypto_secretstream_xchacha20poly1305_push and pulls it back; the
 * second also feeds the plaintext to two Ed25519ph (SHA-512) states, as a sealer
 * and an opener must. 0, or -EBADMSG if a pull fails, or -ENOMEM.
 */
int crypto_bench_secretstream(const uint8_t *buf, size_t buflen, uint64_t total, size_t chunk,
			      int with_prehash);

struct identity;
/*
 * Makes id claim sign_pk as its identity key while still signing with its own
 * secret key: an impersonator, for tests that a signature by someone else is
 * rejected. The certificate is left as it was.
 */
void identity_test_set_sign_pk(struct identity *id, const uint8_t sign_pk[32]);
