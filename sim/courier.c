/* tern-sim's couriers: a stick carried on a schedule, through the real export and import. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "relay/stick_export.h"
#include "relay/stick_import.h"
#include "sim/sim.h"

/* The stick's allocation unit: a FAT32 stick of 8 to 16 GiB has 8 KiB clusters, exFAT 32 KiB. */
#define CLUSTER (8u * 1024)

static bool linked(const struct scenario *sc, size_t a, size_t b)
{
	for (size_t i = 0; i < sc->n_links; i++)
		if ((sc->links[i].a == a && sc->links[i].b == b) ||
		    (sc->links[i].a == b && sc->links[i].b == a))
			return true;
	return false;
}

/* Each stop has every other stop as a peer marked for sneakernet, as `peer add --sneakernet`. */
static int add_peers(struct sim_world *w, const struct scenario_courier *c)
{
	for (size_t i = 0; i < c->n_stops; i++) {
		struct sim_node *on = &w->nodes[c->stops[i]];
		for (size_t j = 0; j < c->n_stops; j++) {
			struct sim_node *them = &w->nodes[c->stops[j]];
			struct store_peer p;
			if (i == j)
				continue;
			sim_node_as_peer(them, &p);
			p.links = STORE_LINK_SNEAKERNET;
			if (linked(w->sc, on->index, them->index))
				p.links |= STORE_LINK_TCP;
			int ret = store_peer_add(on->n.store, &p);
			if (ret < 0) {
				snprintf(w->fatal, sizeof(w->fatal), "peer %s on %s: %s",
					 them->sn->name, on->sn->name, strerror(-ret));
				return ret;
			}
		}
	}
	return 0;
}

static int schedule_visit(struct sim_world *w, size_t i)
{
	const struct sim_courier *c = &w->couriers[i];
	int64_t at = scenario_courier_visit_at(c->sc, c->trip, c->stop);
	if (at >= w->sc->duration_us)
		return 0;
	struct sim_event ev = {.at = at, .kind = EV_COURIER, .a = i};
	int ret = sim_queue_push(&w->q, ev);
	if (ret < 0)
		snprintf(w->fatal, sizeof(w->fatal), "event queue: %s", strerror(-ret));
	return ret;
}

int sim_couriers_init(struct sim_world *w)
{
	const struct scenario *sc = w->sc;
	if (!sc->n_couriers)
		return 0;
	w->couriers = calloc(sc->n_couriers, sizeof(*w->couriers));
	if (!w->couriers)
		return -ENOMEM;
	for (size_t i = 0; i < sc->n_couriers; i++) {
		struct sim_courier *c = &w->couriers[i];
		c->sc = &sc->couriers[i];
		int err = 0;
		if ((size_t)snprintf(c->dir, sizeof(c->dir), "%s/stick-%s", w->run_dir,
				     c->sc->name) >= sizeof(c->dir))
			err = -ENAMETOOLONG;
		else if (mkdir(c->dir, 0700) < 0)
			err = -errno;
		if (err < 0) {
			snprintf(w->fatal, sizeof(w->fatal), "stick of courier %s: %s", c->sc->name,
				 strerror(-err));
			return err;
		}
		int ret = add_peers(w, c->sc);
		if (ret == 0)
			ret = schedule_visit(w, i);
		if (ret < 0)
			return ret;
	}
	return 0;
}

double sim_courier_cost(const struct sim_courier *c)
{
	return (double)c->trips * c->sc->cost_per_trip;
}

/* What the real export and import say goes to stderr, which holds what varies (paths). */
struct visit {
	struct sim_world *w;
	struct sim_courier *c;
	const char *node;
};

static void on_problem(void *ctx, const char *what, const char *why)
{
	struct visit *v = ctx;
	v->c->problems++;
	fprintf(stderr, "tern-sim: courier %s at %s: %s: %s\n", v->c->sc->name, v->node, what, why);
}

static void on_file(void *ctx, const char *sub, const char *name, const char *verdict,
		    const char *detail)
{
	struct visit *v = ctx;
	if (strcmp(verdict, "rejected") == 0)
		fprintf(stderr, "tern-sim: courier %s at %s: tern/%s/%s: rejected: %s\n",
			v->c->sc->name, v->node, sub, name, detail);
}

/* The other stops of the route, as this node's peers: the export is for all of them. */
static int targets(struct sim_node *nd, const struct scenario_courier *sc,
		   const struct sim_world *w, struct store_peer *to, size_t *n_to)
{
	*n_to = 0;
	for (size_t i = 0; i < sc->n_stops; i++) {
		if (sc->stops[i] == nd->index)
			continue;
		int ret = store_peer_get(nd->n.store, w->nodes[sc->stops[i]].sn->name, &to[*n_to]);
		if (ret < 0)
			return ret;
		++*n_to;
	}
	return 0;
}

/* Import, then export, at one stop, on the stick as it is. */
static int visit(struct sim_world *w, struct sim_courier *c, struct sim_node *nd,
		 struct sim_stop *st)
{
	struct visit v = {.w = w, .c = c, .node = nd->sn->name};
	const struct stick_import_hooks ih = {.ctx = &v, .problem = on_problem, .file = on_file};
	const struct stick_export_hooks eh = {.ctx = &v, .problem = on_problem};
	struct stick_import_result ir;
	struct stick_export_result er;
	struct store_peer to[SCENARIO_STOPS_MAX];
	struct stick_export_opts opts = {.to = to, .min_prio = STORE_BULK, .max_bytes = UINT64_MAX};
	struct stick *stick = NULL;
	char why[300];
	uint64_t left = 0;
	int ret = stick_open(c->dir, true, &stick, why, sizeof(why));
	if (ret < 0) {
		snprintf(w->fatal, sizeof(w->fatal), "stick of courier %s: %.200s", c->sc->name,
			 why);
		return ret;
	}
	stick_set_capacity(stick, c->sc->capacity, CLUSTER);
	sim_node_clock(w, nd);
	/* The stick's own failures are the run's findings; only the store failing stops it. */
	stick_import(&nd->n, stick, c->sc->name, true, &ih, &ir);
	uint64_t in = ir.delivered + ir.queued + ir.receipts;
	if (in) {
		if (!st->visits_in++)
			st->first_in = w->now;
		st->last_in = w->now;
	}
	st->taken_in += in;
	st->released += ir.released;
	st->receipted += ir.custody_written;
	c->rejected += ir.rejected;
	sim_node_deliveries(w, nd);
	ret = targets(nd, c->sc, w, to, &opts.n_to);
	if (ret == 0)
		ret = stick_export(&nd->n, stick, c->sc->name, &opts, &eh, &er);
	if (ret == 0) {
		st->bundles_out += er.exported;
		st->bytes_out += er.bytes;
		c->full_visits += er.full;
		c->did_not_fit += er.no_fit;
		w->hop_limited += er.dropped; /* as the engine's links count theirs */
		if (stick_free_bytes(stick, &left) == 0 && c->sc->capacity - left > c->used_max)
			c->used_max = c->sc->capacity - left;
	}
	stick_close(stick);
	if (ret < 0) {
		snprintf(w->fatal, sizeof(w->fatal), "courier %s at %s: %s", c->sc->name,
			 nd->sn->name, strerror(-ret));
		return ret;
	}
	/* What came in for other nodes goes on over the links now, as the daemon is told. */
	return sim_node_kick(w, nd);
}

int sim_courier_visit(struct sim_world *w, size_t i)
{
	struct sim_courier *c = &w->couriers[i];
	struct sim_node *nd = &w->nodes[c->sc->stops[c->stop]];
	struct sim_stop *st = &c->stops[c->stop];
	int ret = 0;
	if (c->stop == 0)
		c->trips++;
	if (nd->up) {
		st->visits++;
		ret = visit(w, c, nd, st);
	} else {
		st->missed++;
	}
	if (++c->stop == c->sc->n_stops) {
		c->stop = 0;
		c->trip++;
	}
	return ret < 0 ? ret : schedule_visit(w, i);
}
