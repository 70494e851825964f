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
