/* The simulators' random numbers: seeded, in independent streams, the same on every machine. */
#pragma once

#include <stdint.h>

/* xoshiro256**, seeded through splitmix64: small, fast, the same on every machine. */
struct sim_rng {
	uint64_t s[4];
};
void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
/* Exponential with this mean, at least 1. */
int64_t sim_rng_exp(struct sim_rng *r, int64_t mean);
