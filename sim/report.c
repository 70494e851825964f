/* tern-sim's report: report.json, flows.csv, links.csv and queue.csv, the same bytes every run. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim/sim.h"

/* Nothing here prints a wall time, an address or a path: a report depends on the run alone. */

#define US_PER_S 1e6
#define MIB	 (1024.0 * 1024.0)

struct latency {
	size_t n;
	double p50, p90, p99, max; /* seconds */
};

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return a < b ? -1 : a > b;
}

/* Nearest rank: the smallest latency with at least p of the deliveries at or below it. */
static double rank(const int64_t *v, size_t n, double p)
{
	size_t k = (size_t)(p * (double)n + 0.999999);
	if (k == 0)
		k = 1;
	return (double)v[k - 1] / US_PER_S;
}

/* Over the messages of flow f, or of every flow if f is SIZE_MAX; v has room for all. */
static void latency_of(const struct sim_world *w, size_t f, int64_t *v, struct latency *out)
{
	size_t n = 0;
	for (size_t i = 0; i < w->n_msgs; i++) {
		const struct sim_msg *m = &w->msgs[i];
		if (m->fate == FATE_DELIVERED && (f == SIZE_MAX || m->flow == f))
			v[n++] = m->delivered_at - m->sent_at;
	}
	memset(out, 0, sizeof(*out));
	out->n = n;
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_i64);
	out->p50 = rank(v, n, 0.50);
	out->p90 = rank(v, n, 0.90);
	out->p99 = rank(v, n, 0.99);
	out->max = (double)v[n - 1] / US_PER_S;
}

struct fates {
	uint64_t submitted, delivered, duplicates, in_transit, expired, lost;
};

static void fates_of(const struct sim_world *w, size_t f, struct fates *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < w->n_msgs; i++) {
		const struct sim_msg *m = &w->msgs[i];
		if (f != SIZE_MAX && m->flow != f)
			continue;
		out->submitted++;
		if (m->deliveries > 1)
			out->duplicates += m->deliveries - 1;
		out->delivered += m->fate == FATE_DELIVERED;
		out->in_transit += m->fate == FATE_IN_TRANSIT;
		out->expired += m->fate == FATE_EXPIRED;
		out->lost += m->fate == FATE_LOST;
	}
}

static double ratio(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : 0.0;
}

void sim_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_fates(FILE *f, const struct fates *x)
{
	fprintf(f,
		"\"submitted\": %" PRIu64 ", \"delivered\": %" PRIu64 ", \"duplicates\": %" PRIu64
		", \"in_transit\": %" PRIu64 ", \"expired\": %" PRIu64 ", \"lost\": %" PRIu64
		", \"delivery_ratio\": %.4f",
		x->submitted, x->delivered, x->duplicates, x->in_transit, x->expired, x->lost,
		ratio(x->delivered, x->submitted));
}

static void json_latency(FILE *f, const struct latency *x)
{
	fprintf(f, "{\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}", x->p50, x->p90,
		x->p99, x->max);
}

static double link_cost(const struct sim_link *l)
{
	return (double)(l->bytes[0] + l->bytes[1]) / MIB * l->sl->cost_per_mib;
}

static const char *name_of(const struct sim_world *w, size_t node)
{
	return w->sc->nodes[node].name;
}

static uint64_t courier_sum(const struct sim_courier *c, bool bytes)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < c->sc->n_stops; i++)
		sum += bytes ? c->stops[i].bytes_out : c->stops[i].bundles_out;
	return sum;
}

/* The "couriers" array, only in the report of a scenario that has any; returns their cost. */
static double json_couriers(FILE *f, const struct sim_world *w)
{
	double cost = 0;
	fprintf(f, "  \"couriers\": [");
	for (size_t i = 0; i < w->sc->n_couriers; i++) {
		const struct sim_courier *c = &w->couriers[i];
		cost += sim_courier_cost(c);
		fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
		sim_json_string(f, c->sc->name);
		fprintf(f,
			", \"capacity\": %" PRIu64 ", \"trips\": %" PRIu64 ", \"bundles\": %" PRIu64
			", \"bytes\": %" PRIu64 ", \"used_max\": %" PRIu64
			", \"full_visits\": %" PRIu64 ", \"did_not_fit\": %" PRIu64
			", \"rejected\": %" PRIu64 ", \"problems\": %" PRIu64
			", \"cost\": %.3f, \"stops\": [",
			c->sc->capacity, c->trips, courier_sum(c, false), courier_sum(c, true),
			c->used_max, c->full_visits, c->did_not_fit, c->rejected, c->problems,
			sim_courier_cost(c));
		for (size_t j = 0; j < c->sc->n_stops; j++) {
			const struct sim_stop *st = &c->stops[j];
			fprintf(f, "%s\n      {\"node\": ", j ? "," : "");
			sim_json_string(f, name_of(w, c->sc->stops[j]));
			fprintf(
			    f,
			    ", \"visits\": %" PRIu64 ", \"missed\": %" PRIu64
			    ", \"bundles_out\": %" PRIu64 ", \"bytes_out\": %" PRIu64
			    ", \"taken_in\": %" PRIu64 ", \"visits_in\": %" PRIu64
			    ", \"first_in_s\": %.3f, \"last_in_s\": %.3f, \"released\": %" PRIu64
			    ", \"receipted\": %" PRIu64 "}",
			    st->visits, st->missed, st->bundles_out, st->bytes_out, st->taken_in,
			    st->visits_in, st->visits_in ? (double)st->first_in / US_PER_S : -1.0,
			    st->visits_in ? (double)st->last_in / US_PER_S : -1.0, st->released,
			    st->receipted);
		}
		fprintf(f, "\n    ]}");
	}
	fprintf(f, "\n  ],\n");
	return cost;
}

static void write_json(FILE *f, const struct sim_world *w, const char *scenario, int64_t *v)
{
	const struct scenario *sc = w->sc;
	struct fates all;
	struct latency lat;
	fates_of(w, SIZE_MAX, &all);
	latency_of(w, SIZE_MAX, v, &lat);
	fprintf(f, "{\n  \"scenario\": ");
	sim_json_string(f, scenario);
	fprintf(f, ",\n  \"routing\": \"%s\"", scenario_routing_name(sc->routing));
	fprintf(f, ",\n  \"seed\": %" PRIu64 ",\n  \"duration_s\": %.3f,\n", w->seed,
		(double)sc->duration_us / US_PER_S);
	fprintf(f, "  \"events\": %" PRIu64 ",\n  \"messages\": {", w->events);
	json_fates(f, &all);
	fprintf(f, ", \"sender_down\": %" PRIu64 ", \"misdelivered\": %" PRIu64 "},\n",
		w->sender_down, w->misdelivered);
	if (sc->n_couriers)
		fprintf(f,
			"  \"sent\": {\"queued\": %" PRIu64 ", \"handed_over\": %" PRIu64
			", \"delivered\": %" PRIu64 "},\n",
			w->sent_state[STORE_SENT_QUEUED], w->sent_state[STORE_SENT_HANDED_OVER],
			w->sent_state[STORE_SENT_DELIVERED]);
	fprintf(f, "  \"latency_s\": ");
	json_latency(f, &lat);
	fprintf(f, ",\n  \"receipts_delivered\": %" PRIu64 ",\n  \"hop_limited\": %" PRIu64 ",\n",
		w->unknown_deliveries, w->hop_limited);
	fprintf(f, "  \"flows\": [");
	for (size_t i = 0; i < sc->n_flows; i++) {
		struct fates x;
		fates_of(w, i, &x);
		latency_of(w, i, v, &lat);
		fprintf(f, "%s\n    {\"from\": ", i ? "," : "");
		sim_json_string(f, name_of(w, sc->flows[i].from));
		fprintf(f, ", \"to\": ");
		sim_json_string(f, name_of(w, sc->flows[i].to));
		fprintf(f, ", ");
		json_fates(f, &x);
		fprintf(f, ", \"latency_s\": ");
		json_latency(f, &lat);
		fprintf(f, "}");
	}
	fprintf(f, "\n  ],\n  \"links\": [");
	double cost = 0;
	for (size_t i = 0; i < sc->n_links; i++) {
		const struct sim_link *l = &w->links[i];
		cost += link_cost(l);
		fprintf(f, "%s\n    {\"a\": ", i ? "," : "");
		sim_json_string(f, name_of(w, l->sl->a));
		fprintf(f, ", \"b\": ");
		sim_json_string(f, name_of(w, l->sl->b));
		fprintf(f,
			", \"bytes_ab\": %" PRIu64 ", \"bytes_ba\": %" PRIu64
			", \"up_s\": %.3f, \"sessions\": %" PRIu64 ", \"session_errors\": %" PRIu64
			", \"cost\": %.3f, \"last_error\": ",
			l->bytes[0], l->bytes[1], (double)l->up_total / US_PER_S, l->sessions,
			l->session_errors, link_cost(l));
		sim_json_string(f, l->last_error);
		if (l->sl->kind == SCENARIO_LINK_SERIAL)
			fprintf(f,
				", \"serial\": {\"ber\": %g, \"frames_out\": %" PRIu64
				", \"frames_resent\": %" PRIu64 ", \"frames_in\": %" PRIu64
				", \"frames_bad\": %" PRIu64 ", \"bits_flipped\": %" PRIu64 "}",
				l->sl->ber, l->frames_out, l->frames_resent, l->frames_in,
				l->frames_bad, l->bits_flipped);
		fprintf(f, "}");
	}
	fprintf(f, "\n  ],\n");
	if (sc->n_couriers)
		cost += json_couriers(f, w);
	fprintf(f, "  \"cost\": %.3f,\n  \"nodes\": [", cost);
	for (size_t i = 0; i < sc->n_nodes; i++) {
		const struct sim_node *nd = &w->nodes[i];
		fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
		sim_json_string(f, name_of(w, i));
		fprintf(f,
			", \"crashes\": %u, \"queued_max\": %" PRIu64 ", \"queued_end\": %" PRIu64
			", \"expired_dropped\": %" PRIu64 "}",
			nd->crashes, nd->queued_max, nd->queued_end, nd->expired);
	}
	fprintf(f, "\n  ]\n}\n");
}

static void write_flows_csv(FILE *f, const struct sim_world *w, int64_t *v)
{
	fprintf(f, "from,to,submitted,delivered,duplicates,in_transit,expired,lost,"
		   "p50_s,p90_s,p99_s,max_s\n");
	for (size_t i = 0; i < w->sc->n_flows; i++) {
		struct fates x;
		struct latency lat;
		fates_of(w, i, &x);
		latency_of(w, i, v, &lat);
		fprintf(f,
			"%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
			",%.3f,%.3f,%.3f,%.3f\n",
			name_of(w, w->sc->flows[i].from), name_of(w, w->sc->flows[i].to),
			x.submitted, x.delivered, x.duplicates, x.in_transit, x.expired, x.lost,
			lat.p50, lat.p90, lat.p99, lat.max);
	}
}

/* A scenario with serial links gets their columns too (empty on the other links). */
static void write_links_csv(FILE *f, const struct sim_world *w)
{
	bool serial = false;
	for (size_t i = 0; i < w->sc->n_links; i++)
		serial |= w->sc->links[i].kind == SCENARIO_LINK_SERIAL;
	fprintf(f, "a,b,bytes_ab,bytes_ba,up_s,sessions,session_errors,cost%s\n",
		serial ? ",kind,frames_out,frames_resent,frames_in,frames_bad,bits_flipped" : "");
	for (size_t i = 0; i < w->sc->n_links; i++) {
		const struct sim_link *l = &w->links[i];
		fprintf(f, "%s,%s,%" PRIu64 ",%" PRIu64 ",%.3f,%" PRIu64 ",%" PRIu64 ",%.3f",
			name_of(w, l->sl->a), name_of(w, l->sl->b), l->bytes[0], l->bytes[1],
			(double)l->up_total / US_PER_S, l->sessions, l->session_errors,
			link_cost(l));
		if (serial && l->sl->kind == SCENARIO_LINK_SERIAL)
			fprintf(f,
				",serial,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64,
				l->frames_out, l->frames_resent, l->frames_in, l->frames_bad,
				l->bits_flipped);
		else if (serial)
			fprintf(f, ",tcp,,,,,");
		fputc('\n', f);
	}
}

/* One row per stop of each courier; written only when the scenario has couriers. */
static void write_couriers_csv(FILE *f, const struct sim_world *w)
{
	fprintf(f, "courier,stop,visits,missed,bundles_out,bytes_out,taken_in,released,"
		   "receipted\n");
	for (size_t i = 0; i < w->sc->n_couriers; i++) {
		const struct sim_courier *c = &w->couriers[i];
		for (size_t j = 0; j < c->sc->n_stops; j++) {
			const struct sim_stop *st = &c->stops[j];
			fprintf(f,
				"%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%" PRIu64 ",%" PRIu64 "\n",
				c->sc->name, name_of(w, c->sc->stops[j]), st->visits, st->missed,
				st->bundles_out, st->bytes_out, st->taken_in, st->released,
				st->receipted);
		}
	}
}

static void write_queue_csv(FILE *f, const struct sim_world *w)
{
	fprintf(f, "t_s");
	for (size_t i = 0; i < w->sc->n_nodes; i++)
		fprintf(f, ",%s", name_of(w, i));
	fputc('\n', f);
	for (size_t s = 0; s < w->n_samples; s++) {
		fprintf(f, "%.3f", (double)w->samples[s].at / US_PER_S);
		for (size_t i = 0; i < w->sc->n_nodes; i++)
			fprintf(f, ",%" PRIu64, w->samples[s].queued[i]);
		fputc('\n', f);
	}
}

int sim_report_summary(const struct sim_world *w, struct sim_summary *out)
{
	int64_t *v = malloc((w->n_msgs ? w->n_msgs : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	struct fates all;
	struct latency lat;
	fates_of(w, SIZE_MAX, &all);
	latency_of(w, SIZE_MAX, v, &lat);
	free(v);
	*out = (struct sim_summary){
	    .routing = w->sc->routing,
	    .submitted = all.submitted,
	    .delivered = all.delivered,
	    .duplicates = all.duplicates,
	    .in_transit = all.in_transit,
	    .expired = all.expired,
	    .lost = all.lost,
	    .p50 = lat.p50,
	    .p90 = lat.p90,
	    .p99 = lat.p99,
	    .max = lat.max,
	    .events = w->events,
	};
	for (size_t i = 0; i < w->sc->n_links; i++) {
		out->bytes += w->links[i].bytes[0] + w->links[i].bytes[1];
		out->cost += link_cost(&w->links[i]);
	}
	for (size_t i = 0; i < w->sc->n_couriers; i++) {
		out->bytes += courier_sum(&w->couriers[i], true);
		out->cost += sim_courier_cost(&w->couriers[i]);
	}
	for (size_t i = 0; i < w->sc->n_nodes; i++)
		if (w->nodes[i].queued_max > out->queued_max)
			out->queued_max = w->nodes[i].queued_max;
	return 0;
}

enum report_file { R_JSON, R_FLOWS, R_LINKS, R_QUEUE, R_SVG, R_COURIERS, R_COUNT };

static const char *const report_names[R_COUNT] = {"report.json", "flows.csv",  "links.csv",
						  "queue.csv",	 "report.svg", "couriers.csv"};

int sim_report_write(const struct sim_world *w, const char *dir, const char *scenario)
{
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		return -errno;
	int64_t *v = malloc((w->n_msgs ? w->n_msgs : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	int ret = 0;
	for (int r = 0; r < R_COUNT && ret == 0; r++) {
		char path[4096];
		if (r == R_COURIERS && !w->sc->n_couriers)
			break;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, report_names[r]) >=
		    sizeof(path)) {
			ret = -ENAMETOOLONG;
			break;
		}
		FILE *f = fopen(path, "w");
		if (!f) {
			ret = -errno;
			break;
		}
		switch (r) {
		case R_JSON:
			write_json(f, w, scenario, v);
			break;
		case R_FLOWS:
			write_flows_csv(f, w, v);
			break;
		case R_LINKS:
			write_links_csv(f, w);
			break;
		case R_QUEUE:
			write_queue_csv(f, w);
			break;
		case R_SVG:
			sim_report_svg(f, w, v);
			break;
		case R_COURIERS:
			write_couriers_csv(f, w);
			break;
		}
		if (ferror(f))
			ret = -EIO;
		if (fclose(f) != 0 && ret == 0)
			ret = -errno;
	}
	free(v);
	return ret;
}
