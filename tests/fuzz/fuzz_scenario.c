/* Fuzz target: arbitrary bytes as a tern-sim scenario; a good one must hold together. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The plan's edges: up or down changes at next_change and at no point just before it. */
static void check_plan(const struct scenario_link *l, int64_t duration)
{
	for (int64_t k = 0; k < 6; k++) {
		int64_t t = duration / 6 * k;
		int64_t next = scenario_link_next_change(l, t);
		if (next == INT64_MAX)
			continue;
		bool up = scenario_link_planned_up(l, t);
		if (next <= t || scenario_link_planned_up(l, next) == up ||
		    scenario_link_planned_up(l, next - 1) != up)
			abort();
	}
}

static void check_good(const struct scenario *s)
{
	if (s->duration_us <= 0 || s->sample_us <= 0 || s->n_nodes == 0)
		abort();
	for (size_t i = 0; i < s->n_nodes; i++)
		if (!s->nodes[i].name[0] || !memchr(s->nodes[i].name, 0, sizeof(s->nodes[i].name)))
			abort();
	for (size_t i = 0; i < s->n_links; i++) {
		const struct scenario_link *l = &s->links[i];
		if (l->a >= s->n_nodes || l->b >= s->n_nodes || l->a == l->b || l->rate_bps == 0 ||
		    l->latency_us < 0 || l->n_windows > SCENARIO_WINDOWS_MAX)
			abort();
		for (size_t j = 0; j + 1 < l->n_contacts; j++)
			if (l->contacts[j].start > l->contacts[j + 1].start)
				abort();
		if (l->plan == PLAN_RANDOM && (l->mean_up_us <= 0 || l->mean_down_us <= 0))
			abort();
		/* A serial link fits the line model; a bit error rate only comes with one. */
		if (l->kind == SCENARIO_LINK_SERIAL
			? l->rate_bps < SCENARIO_SERIAL_RATE_MIN ||
			      l->rate_bps > SCENARIO_SERIAL_RATE_MAX || l->latency_us % 1000 ||
			      !(l->ber >= 0 && l->ber <= SCENARIO_SERIAL_BER_MAX)
			: l->kind != SCENARIO_LINK_TCP || l->ber != 0)
			abort();
		check_plan(l, s->duration_us);
	}
	for (size_t i = 0; i < s->n_routes; i++) {
		const struct scenario_route *r = &s->routes[i];
		if (r->node >= s->n_nodes || r->via >= s->n_nodes ||
		    (!r->is_default && r->dest >= s->n_nodes))
			abort();
	}
	for (size_t i = 0; i < s->n_flows; i++) {
		const struct scenario_flow *f = &s->flows[i];
		if (f->from >= s->n_nodes || f->to >= s->n_nodes || f->size_min > f->size_max ||
		    f->size_min == 0 || f->period_us <= 0 || f->lifetime_us <= 0)
			abort();
	}
	for (size_t i = 0; i < s->n_crashes; i++)
		if (s->crashes[i].node >= s->n_nodes || s->crashes[i].at_us >= s->duration_us ||
		    s->crashes[i].down_us <= 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scenario_reader *r;
	if (scenario_read_init(&r) < 0)
		return 0;
	int ret = 0;
	size_t off = 0;
	while (off < size && ret != -ENOMEM) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		ret = scenario_read_line(r, data + off, len);
		if (ret != 0 && ret != -EINVAL && ret != -ENOMEM)
			abort();
		off += len + (nl != NULL);
	}
	struct scenario *s = NULL;
	ret = ret == -ENOMEM ? ret : scenario_read_finish(r, &s);
	if (ret == 0) {
		check_good(s);
		scenario_free(s);
	} else if (ret == -EINVAL) {
		/* Refused: at least one error, in words. */
		const char *e = scenario_read_errors(r);
		if (!e[0] || e[strlen(e) - 1] != '\n')
			abort();
	} else if (ret != -ENOMEM) {
		abort();
	}
	scenario_read_free(r);
	return 0;
}
