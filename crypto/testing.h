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
/* The same for pwstream_seal_new (backups), whose default is 3 passes over 64 MiB. */
void pwstream_test_set_pwhash_limits(uint64_t opslimit, size_t memlimit);

/* The signature hashing a baseline adds to every byte, on the sealer's and the opener's side. */
enum crypto_bench_hash {
	CRYPTO_BENCH_NO_HASH = 0,
	/* Ed25519ph (crypto_sign_init/update/final_create): the full form's former signature. */
	CRYPTO_BENCH_SHA512 = 1,
	/* BLAKE2b-512 and Ed25519 over the digest: what the full form signs with now. */
	CRYPTO_BENCH_BLAKE2B512 = 2,
};

/*
 * Benchmark baseline over total bytes taken from buf repeatedly, in chunks of chunk
 * bytes (chunk <= 65536, buflen a multiple of chunk): pushes every chunk through
 * crypto_secretstream_xchacha20poly1305_push and pulls it back, and feeds the plaintext
 * to two states of hash (one for the sealer, one for the opener), then signs with one
 * and verifies with the other. 0, or -EBADMSG if a pull or the verification fails, or
 * -ENOMEM.
 */
int crypto_bench_secretstream(const uint8_t *buf, size_t buflen, uint64_t total, size_t chunk,
			      enum crypto_bench_hash hash);
/* Hashes total bytes of buf (as above) once with hash, no signature. 0 or -EINVAL. */
int crypto_bench_hash(const uint8_t *buf, size_t buflen, uint64_t total, size_t chunk,
		      enum crypto_bench_hash hash);

struct identity;
/*
 * Makes id claim sign_pk as its identity key while still signing with its own
 * secret key: an impersonator, for tests that a signature by someone else is
 * rejected. The certificate is left as it was.
 */
void identity_test_set_sign_pk(struct identity *id, const uint8_t sign_pk[32]);
