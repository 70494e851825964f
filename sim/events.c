/* The simulator's event queue (a binary heap on time, then order of scheduling) and its PRNG. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "sim/sim.h"

static bool before(const struct sim_event *x, const struct sim_event *y)
{
	return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

int sim_queue_push(struct sim_queue *q, struct sim_event ev)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 1024;
		struct sim_event *e = realloc(q->ev, cap * sizeof(*e));
		if (!e) {
			free(ev.buf);
			return -ENOMEM;
		}
		q->ev = e;
		q->cap = cap;
	}
	ev.seq = q->seq++;
	size_t i = q->n++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!before(&ev, &q->ev[up]))
			break;
		q->ev[i] = q->ev[up];
		i = up;
	}
	q->ev[i] = ev;
	return 0;
}

bool sim_queue_pop(struct sim_queue *q, struct sim_event *out)
{
	if (!q->n)
		return false;
	*out = q->ev[0];
	struct sim_event last = q->ev[--q->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->n)
			break;
		if (c + 1 < q->n && before(&q->ev[c + 1], &q->ev[c]))
			c++;
		if (!before(&q->ev[c], &last))
			break;
		q->ev[i] = q->ev[c];
		i = c;
	}
	if (q->n)
		q->ev[i] = last;
	return true;
}

void sim_queue_free(struct sim_queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->ev[i].buf);
	free(q->ev);
	*q = (struct sim_queue){0};
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Each stream (a link, a flow, the keys) has its own generator: adding one leaves the rest. */
void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double sim_rng_unit(struct sim_rng *r)
{
	return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

int64_t sim_rng_exp(struct sim_rng *r, int64_t mean)
{
	double v = -log(1.0 - sim_rng_unit(r)) * (double)mean;
	if (!(v >= 1))
		return 1;
	return v > 1e17 ? (int64_t)1e17 : (int64_t)v;
}
