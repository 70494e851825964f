/* tern-sim's world: the nodes with their real stores, the plan of events, and the run. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "crypto/testing.h"
#include "sim/sim.h"
#include "store/store_testing.h"

/* Virtual time 0 is 2026-01-01 00:00 UTC on every node's wall clock. */
#define EPOCH_UNIX_MS 1767225600000ull
#define US_PER_MS     1000ll
#define US_PER_S      1000000ll

/* The first fault stops the run: "what name: strerror". name may be NULL. */
static void fatal(struct sim_world *w, int err, const char *what, const char *name)
{
	if (w->fatal[0])
		return;
	snprintf(w->fatal, sizeof(w->fatal), "%s%s%.160s: %s", what, name ? " " : "",
		 name ? name : "", strerror(-err));
}

static int schedule(struct sim_world *w, int64_t at, enum sim_event_kind kind, size_t a)
{
	struct sim_event ev = {.at = at, .kind = kind, .a = a};
	int ret = sim_queue_push(&w->q, ev);
	if (ret < 0)
		fatal(w, ret, "event queue", NULL);
	return ret;
}

/* The engines' randomness: one seeded stream, so keys and nonces are the same every run. */
static void fill_random(void *ctx, void *buf, size_t len)
{
	struct sim_rng *r = ctx;
	uint8_t *p = buf;
	while (len > 0) {
		uint64_t v = sim_rng_next(r);
		size_t n = len < sizeof(v) ? len : sizeof(v);
		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
}

void sim_node_clock(struct sim_world *w, struct sim_node *nd)
{
	nd->n.now.unix_ms = EPOCH_UNIX_MS + (uint64_t)(w->now / US_PER_MS);
	nd->n.now.boot_ms = (uint64_t)((w->now - nd->boot_at) / US_PER_MS);
	/* A new boot id each start, as after a reboot: the store then goes by the wall clock. */
	memset(nd->n.now.boot_id, 0, sizeof(nd->n.now.boot_id));
	memcpy(nd->n.now.boot_id, &nd->index, sizeof(nd->index));
	memcpy(nd->n.now.boot_id + 8, &nd->boots, sizeof(nd->boots));
}

void sim_node_as_peer(const struct sim_node *nd, struct store_peer *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", nd->sn->name);
	memcpy(p->sign_pk, nd->pub.sign_pk, 32);
	memcpy(p->box_pk, nd->pub.box_pk, 32);
	memcpy(p->cert, nd->pub.cert, 64);
	p->epoch = nd->pub.epoch;
	p->node = nd->n.node_num;
	p->links = STORE_LINK_TCP;
}

static void as_contact(const struct sim_node *nd, struct store_contact *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", nd->sn->name);
	memcpy(c->sign_pk, nd->pub.sign_pk, 32);
	memcpy(c->box_pk, nd->pub.box_pk, 32);
	memcpy(c->cert, nd->pub.cert, 64);
	c->epoch = nd->pub.epoch;
	c->node = nd->n.node_num;
}

static int open_store(struct sim_world *w, struct sim_node *nd)
{
	const char *why = NULL;
	sim_node_clock(w, nd);
	int ret = store_open(nd->path, &nd->n.now, &nd->n.store, &why);
	if (ret < 0)
		fatal(w, ret, "cannot open the store", nd->path);
	return ret;
}

/* ---- setting the nodes up ------------------------------------------------------------ */

static int make_node(struct sim_world *w, size_t i)
{
	struct sim_node *nd = &w->nodes[i];
	nd->sn = &w->sc->nodes[i];
	nd->index = i;
	nd->up = true;
	int ret = identity_generate(&nd->n.id);
	if (ret < 0) {
		fatal(w, ret, "identity", NULL);
		return ret;
	}
	identity_get_public(nd->n.id, &nd->pub);
	nd->n.pub = nd->pub;
	nd->n.node_num = identity_node_number(nd->pub.sign_pk);
	nd->n.clock_trusted = true;
	_Static_assert((int)SCENARIO_ROUTING_EPIDEMIC == (int)NODE_ROUTING_EPIDEMIC,
		       "scenario and node name the strategies in the same order");
	nd->n.routing = (enum node_routing)w->sc->routing;
	for (size_t j = 0; j < i; j++) {
		if (w->nodes[j].n.node_num == nd->n.node_num) {
			fatal(w, -EEXIST, "same node number as another node:", nd->sn->name);
			return -EEXIST;
		}
	}
	if ((size_t)snprintf(nd->path, sizeof(nd->path), "%s/%s.db", w->run_dir, nd->sn->name) >=
	    sizeof(nd->path)) {
		fatal(w, -ENAMETOOLONG, "directory", w->run_dir);
		return -ENAMETOOLONG;
	}
	return open_store(w, nd);
}

static int add_peer(struct sim_world *w, struct sim_node *on, const struct sim_node *them)
{
	struct store_peer p;
	sim_node_as_peer(them, &p);
	int ret = store_peer_add(on->n.store, &p);
	if (ret < 0)
		fatal(w, ret, "peer", them->sn->name);
	return ret;
}

static int add_contact(struct sim_world *w, struct sim_node *on, const struct sim_node *them)
{
	struct store_contact c;
	as_contact(them, &c);
	int ret = store_contact_add(on->n.store, &c);
	if (ret < 0)
		fatal(w, ret, "contact", them->sn->name);
	return ret;
}

/* Peers from the links, routes as written, contacts for every pair that exchanges traffic. */
static int configure(struct sim_world *w)
{
	const struct scenario *sc = w->sc;
	int ret = 0;
	for (size_t i = 0; i < sc->n_links && ret == 0; i++) {
		struct sim_node *a = &w->nodes[sc->links[i].a], *b = &w->nodes[sc->links[i].b];
		ret = add_peer(w, a, b);
		if (ret == 0)
			ret = add_peer(w, b, a);
	}
	for (size_t i = 0; i < sc->n_routes && ret == 0; i++) {
		const struct scenario_route *r = &sc->routes[i];
		uint64_t dest = r->is_default ? STORE_ROUTE_DEFAULT : w->nodes[r->dest].n.node_num;
		ret = store_route_set(w->nodes[r->node].n.store, dest, w->nodes[r->via].n.node_num);
		if (ret < 0)
			fatal(w, ret, "route on", w->nodes[r->node].sn->name);
	}
	/* Both ways, so the delivery receipts can be sealed back to the sender. */
	for (size_t i = 0; i < sc->n_flows && ret == 0; i++) {
		struct sim_node *a = &w->nodes[sc->flows[i].from], *b = &w->nodes[sc->flows[i].to];
		ret = add_contact(w, a, b);
		if (ret == 0)
			ret = add_contact(w, b, a);
	}
	return ret;
}

/* When the plan of a random link changes next. */
static int64_t random_next(struct sim_link *l, int64_t now)
{
	int64_t mean = l->planned_up ? l->sl->mean_up_us : l->sl->mean_down_us;
	return now + sim_rng_exp(&l->rng, mean);
}

static int add_adjacent(struct sim_node *nd, size_t link)
{
	size_t *p = realloc(nd->links, (nd->n_links + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	p[nd->n_links++] = link;
	nd->links = p;
	return 0;
}

static int plan_links(struct sim_world *w)
{
	for (size_t i = 0; i < w->sc->n_links; i++) {
		struct sim_link *l = &w->links[i];
		l->sl = &w->sc->links[i];
		if (add_adjacent(&w->nodes[l->sl->a], i) < 0 ||
		    add_adjacent(&w->nodes[l->sl->b], i) < 0)
			return -ENOMEM;
		l->index = i;
		sim_rng_seed(&l->rng, w->seed, 0x1000 + i);
		sim_rng_seed(&l->line_rng, w->seed, (1ull << 40) + i); /* apart from the rest */
		l->line_at = INT64_MAX;
		for (int e = 0; e < 2; e++) {
			l->end[e].w = w;
			l->end[e].l = l;
			l->end[e].side = e;
		}
		if (l->sl->plan == PLAN_RANDOM) {
			double p_up = (double)l->sl->mean_up_us /
				      (double)(l->sl->mean_up_us + l->sl->mean_down_us);
			l->planned_up = sim_rng_unit(&l->rng) < p_up;
		} else {
			l->planned_up = scenario_link_planned_up(l->sl, 0);
		}
		if (schedule(w, 0, EV_LINK_CHANGE, i) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int first_message_at(struct sim_world *w, size_t f)
{
	const struct scenario_flow *fl = &w->sc->flows[f];
	int64_t at = fl->start_us;
	if (fl->arrival == ARRIVE_POISSON)
		at += sim_rng_exp(&w->flow_rng[f], fl->period_us);
	return at < fl->stop_us && at < w->sc->duration_us ? schedule(w, at, EV_TRAFFIC, f) : 0;
}

static int plan_events(struct sim_world *w)
{
	const struct scenario *sc = w->sc;
	if (plan_links(w) < 0)
		return -ENOMEM;
	for (size_t f = 0; f < sc->n_flows; f++) {
		sim_rng_seed(&w->flow_rng[f], w->seed, 0x100000 + f);
		if (first_message_at(w, f) < 0)
			return -ENOMEM;
	}
	for (size_t c = 0; c < sc->n_crashes; c++)
		if (schedule(w, sc->crashes[c].at_us, EV_CRASH, c) < 0)
			return -ENOMEM;
	if (schedule(w, 0, EV_SAMPLE, 0) < 0 || schedule(w, sc->duration_us, EV_END, 0) < 0)
		return -ENOMEM;
	return 0;
}

/* Each store holds a few descriptors: a thousand nodes need more than the usual 1,024. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int sim_world_init(struct sim_world *w, const struct scenario *sc, uint64_t seed,
		   const char *store_dir)
{
	const size_t nn = sc->n_nodes, nl = sc->n_links, nf = sc->n_flows;
	memset(w, 0, sizeof(*w));
	w->sc = sc;
	w->seed = seed;
	raise_fd_limit();
	sim_rng_seed(&w->key_rng, seed, 0);
	tern_crypto_test_set_rng(fill_random, &w->key_rng);
	store_testing_exclusive_locking(true);
	if ((size_t)snprintf(w->run_dir, sizeof(w->run_dir), "%s/tern-sim-XXXXXX", store_dir) >=
	    sizeof(w->run_dir)) {
		fatal(w, -ENAMETOOLONG, "directory", store_dir);
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(w->run_dir)) {
		int err = -errno;
		fatal(w, err, "cannot make a directory in", store_dir);
		w->run_dir[0] = '\0';
		return err;
	}
	w->nodes = calloc(nn, sizeof(*w->nodes));
	w->links = calloc(nl ? nl : 1, sizeof(*w->links));
	w->flow_rng = calloc(nf ? nf : 1, sizeof(*w->flow_rng));
	w->flow_seq = calloc(nf ? nf : 1, sizeof(*w->flow_seq));
	if (!w->nodes || !w->links || !w->flow_rng || !w->flow_seq) {
		fatal(w, -ENOMEM, "setting up", NULL);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nn; i++) {
		int ret = make_node(w, i);
		if (ret < 0)
			return ret;
	}
	int ret = configure(w);
	if (ret == 0)
		ret = plan_events(w);
	if (ret == 0)
		ret = sim_couriers_init(w);
	return ret;
}

/* ---- messages -------------------------------------------------------------------------- */

static size_t msg_slot(const struct sim_world *w, const uint8_t id[32])
{
	uint64_t h;
	memcpy(&h, id, sizeof(h)); /* bundle ids are hashes: their bytes are spread already */
	return (size_t)(h & (w->table_cap - 1));
}

static struct sim_msg *msg_find(struct sim_world *w, const uint8_t id[32])
{
	if (!w->table_cap)
		return NULL;
	for (size_t i = msg_slot(w, id);; i = (i + 1) & (w->table_cap - 1)) {
		size_t v = w->msg_table[i];
		if (v == 0)
			return NULL;
		if (memcmp(w->msgs[v - 1].bundle_id, id, 32) == 0)
			return &w->msgs[v - 1];
	}
}

static void table_put(struct sim_world *w, size_t index)
{
	size_t i = msg_slot(w, w->msgs[index].bundle_id);
	while (w->msg_table[i])
		i = (i + 1) & (w->table_cap - 1);
	w->msg_table[i] = index + 1;
}

static int msg_add(struct sim_world *w, const struct sim_msg *m)
{
	if (w->n_msgs == w->cap_msgs) {
		size_t cap = w->cap_msgs ? w->cap_msgs * 2 : 1024;
		struct sim_msg *p = realloc(w->msgs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->msgs = p;
		w->cap_msgs = cap;
	}
	if ((w->n_msgs + 1) * 2 > w->table_cap) {
		size_t cap = w->table_cap ? w->table_cap * 2 : 2048;
		size_t *t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		free(w->msg_table);
		w->msg_table = t;
		w->table_cap = cap;
		for (size_t i = 0; i < w->n_msgs; i++)
			table_put(w, i);
	}
	w->msgs[w->n_msgs] = *m;
	table_put(w, w->n_msgs++);
	return 0;
}

/* The plaintext of a message: bytes from its flow and number, nothing a run could vary. */
struct body {
	uint64_t left, pos, salt;
};

static long read_body(void *ctx, uint8_t *buf, size_t cap)
{
	struct body *b = ctx;
	size_t n = cap < b->left ? cap : (size_t)b->left;
	for (size_t i = 0; i < n; i++, b->pos++)
		buf[i] = (uint8_t)((b->pos * 131 + b->salt) >> 3);
	b->left -= n;
	return (long)n;
}

/* Bodies this big go as files, the way a field office sends a report or a photo. */
#define FILE_FROM 4096

static int make_message(struct sim_world *w, size_t f)
{
	const struct scenario_flow *fl = &w->sc->flows[f];
	struct sim_node *from = &w->nodes[fl->from];
	struct sim_rng *r = &w->flow_rng[f];
	uint64_t span = fl->size_max - fl->size_min;
	uint64_t size = fl->size_min + (span ? sim_rng_next(r) % (span + 1) : 0);
	uint64_t seq = w->flow_seq[f]++;
	if (!from->up) {
		w->sender_down++;
		return 0;
	}
	char name[48];
	snprintf(name, sizeof(name), "flow%zu-%" PRIu64 ".bin", f, seq);
	struct body body = {.left = size, .salt = f * 7919 + seq};
	struct submit_request req = {
	    .kind = size >= FILE_FROM ? ENVELOPE_FILE : ENVELOPE_TEXT,
	    .name = size >= FILE_FROM ? name : NULL,
	    .size = size,
	    .read = read_body,
	    .read_ctx = &body,
	    .priority = (enum store_priority)fl->priority,
	    .lifetime_ms = (uint64_t)(fl->lifetime_us / US_PER_MS),
	};
	struct store_contact rcpt;
	as_contact(&w->nodes[fl->to], &rcpt);
	struct submit_result res;
	const char *why = NULL;
	sim_node_clock(w, from);
	int ret = node_submit(&from->n, &rcpt, 1, &req, &res, &why);
	if (ret < 0) {
		/* A full disk would be a finding; the stores here are on a file system we chose. */
		w->submit_errors++;
		fatal(w, ret, "node_submit on", from->sn->name);
		return ret;
	}
	struct sim_msg m = {
	    .flow = f, .sent_at = w->now, .lifetime_us = fl->lifetime_us, .delivered_at = -1};
	memcpy(m.bundle_id, res.bundle_id[0], 32);
	ret = msg_add(w, &m);
	if (ret < 0) {
		fatal(w, ret, "messages", NULL);
		return ret;
	}
	return sim_node_kick(w, from);
}

static int on_traffic(struct sim_world *w, size_t f)
{
	const struct scenario_flow *fl = &w->sc->flows[f];
	int ret = make_message(w, f);
	if (ret < 0)
		return ret;
	int64_t gap = fl->arrival == ARRIVE_POISSON ? sim_rng_exp(&w->flow_rng[f], fl->period_us)
						    : fl->period_us;
	int64_t at = w->now + gap;
	return at < fl->stop_us && at < w->sc->duration_us ? schedule(w, at, EV_TRAFFIC, f) : 0;
}

struct delivered_scan {
	struct sim_world *w;
	struct sim_node *nd;
};

static int delivered_seen(void *ctx, const struct store_bundle *b, const uint8_t *head,
			  size_t headlen)
{
	struct delivered_scan *d = ctx;
	(void)head;
	(void)headlen;
	if (b->rowid > d->nd->delivered_seen)
		d->nd->delivered_seen = b->rowid;
	struct sim_msg *m = msg_find(d->w, b->id);
	if (!m) {
		d->w->unknown_deliveries++; /* a delivery receipt, say */
		return 0;
	}
	if (d->w->sc->flows[m->flow].to != d->nd->index) {
		d->w->misdelivered++;
		return 0;
	}
	if (m->deliveries++ == 0)
		m->delivered_at = d->w->now;
	return 0;
}

void sim_node_deliveries(struct sim_world *w, struct sim_node *nd)
{
	struct delivered_scan d = {w, nd};
	sim_node_clock(w, nd);
	int ret = store_bundle_foreach_after(nd->n.store, STORE_DELIVERED, nd->delivered_seen,
					     &nd->n.now, delivered_seen, &d);
	if (ret < 0)
		fatal(w, ret, "deliveries on", nd->sn->name);
}

/* ---- crashes, samples ------------------------------------------------------------------ */

static void links_of_node(struct sim_world *w, size_t node, bool drop)
{
	const struct sim_node *nd = &w->nodes[node];
	for (size_t i = 0; i < nd->n_links; i++) {
		struct sim_link *l = &w->links[nd->links[i]];
		if (drop)
			sim_link_drop(w, l);
		else
			sim_link_update(w, l);
	}
}

static int on_crash(struct sim_world *w, size_t c)
{
	const struct scenario_crash *cr = &w->sc->crashes[c];
	struct sim_node *nd = &w->nodes[cr->node];
	if (!nd->up)
		return 0;
	/* The sessions go without a word, as when the process is killed; the store closes. */
	links_of_node(w, cr->node, true);
	store_close(nd->n.store);
	nd->n.store = NULL;
	nd->up = false;
	nd->crashes++;
	return schedule(w, w->now + cr->down_us, EV_RESTART, cr->node);
}

static int on_restart(struct sim_world *w, size_t node)
{
	struct sim_node *nd = &w->nodes[node];
	if (nd->up)
		return 0;
	nd->boots++;
	nd->boot_at = w->now;
	int ret = open_store(w, nd);
	if (ret < 0)
		return ret;
	nd->up = true;
	links_of_node(w, node, false);
	return w->fatal[0] ? -EIO : 0;
}

static int count_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	(void)b;
	(void)head;
	(void)headlen;
	++*(uint64_t *)ctx;
	return 0;
}

static uint64_t queued(struct sim_world *w, struct sim_node *nd)
{
	uint64_t count = 0;
	sim_node_clock(w, nd);
	int ret = store_bundle_foreach(nd->n.store, STORE_QUEUED, &nd->n.now, count_one, &count);
	if (ret < 0)
		fatal(w, ret, "queue of", nd->sn->name);
	return count;
}

/* Records every node's queue and drops what expired, as the daemon's purge timer does. */
static int on_sample(struct sim_world *w)
{
	const size_t nn = w->sc->n_nodes;
	if (w->n_samples == w->cap_samples) {
		size_t cap = w->cap_samples ? w->cap_samples * 2 : 128;
		struct sim_sample *p = realloc(w->samples, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->samples = p;
		w->cap_samples = cap;
	}
	struct sim_sample *s = &w->samples[w->n_samples];
	s->at = w->now;
	s->queued = calloc(nn, sizeof(*s->queued));
	if (!s->queued)
		return -ENOMEM;
	w->n_samples++;
	for (size_t i = 0; i < nn; i++) {
		struct sim_node *nd = &w->nodes[i];
		if (!nd->up) {
			s->queued[i] = nd->queued_end;
			continue;
		}
		uint64_t purged = 0;
		if (store_purge_expired(nd->n.store, &nd->n.now, &purged) < 0)
			fatal(w, -EIO, "purge on", nd->sn->name);
		nd->expired += purged;
		s->queued[i] = nd->queued_end = queued(w, nd);
		if (nd->queued_end > nd->queued_max)
			nd->queued_max = nd->queued_end;
	}
	int64_t next = w->now + w->sc->sample_us;
	return next < w->sc->duration_us ? schedule(w, next, EV_SAMPLE, 0) : 0;
}

static int on_link_change(struct sim_world *w, size_t i)
{
	struct sim_link *l = &w->links[i];
	int64_t next;
	if (l->sl->plan == PLAN_RANDOM) {
		if (w->now > 0)
			l->planned_up = !l->planned_up;
		next = random_next(l, w->now);
	} else {
		l->planned_up = scenario_link_planned_up(l->sl, w->now);
		next = scenario_link_next_change(l->sl, w->now);
	}
	int ret = sim_link_update(w, l);
	if (ret == 0 && next < w->sc->duration_us)
		ret = schedule(w, next, EV_LINK_CHANGE, i);
	return ret;
}

static int dispatch(struct sim_world *w, struct sim_event *ev)
{
	switch (ev->kind) {
	case EV_SAMPLE:
		return on_sample(w);
	case EV_LINK_CHANGE:
		return on_link_change(w, ev->a);
	case EV_REDIAL:
		w->links[ev->a].redial_pending = false;
		return sim_link_update(w, &w->links[ev->a]);
	case EV_DATA:
		return sim_link_data(w, ev);
	case EV_TIMER:
		return sim_link_timer(w, ev);
	case EV_TRAFFIC:
		return on_traffic(w, ev->a);
	case EV_CRASH:
		return on_crash(w, ev->a);
	case EV_RESTART:
		return on_restart(w, ev->a);
	case EV_LINE:
		return sim_serial_event(w, ev);
	case EV_COURIER:
		return sim_courier_visit(w, ev->a);
	case EV_END:
		break;
	}
	return 0;
}

int sim_world_run(struct sim_world *w)
{
	struct sim_event ev;
	int ret = 0;
	while (!w->fatal[0] && sim_queue_pop(&w->q, &ev)) {
		w->now = ev.at;
		w->events++;
		if (ev.kind == EV_END) {
			free(ev.buf);
			break;
		}
		ret = dispatch(w, &ev);
		free(ev.buf);
		if (ret < 0 && !w->fatal[0])
			fatal(w, ret, "event", NULL);
	}
	/* Where the run ended, every link is cut: the report counts what was sent. */
	for (size_t i = 0; i < w->sc->n_links; i++)
		sim_link_drop(w, &w->links[i]);
	return w->fatal[0] ? -EIO : 0;
}

/* ---- the end ------------------------------------------------------------------------- */

/* Looks in every store, reopening those of nodes that are down at the end. */
static bool in_some_store(struct sim_world *w, const struct sim_msg *m)
{
	for (size_t i = 0; i < w->sc->n_nodes; i++) {
		struct sim_node *nd = &w->nodes[i];
		if (!nd->n.store && open_store(w, nd) < 0)
			continue;
		if (store_bundle_exists(nd->n.store, m->bundle_id))
			return true;
	}
	return false;
}

static int count_sent(void *ctx, const struct store_sent *e)
{
	uint64_t *by_state = ctx;
	if (e->state >= STORE_SENT_QUEUED && e->state <= STORE_SENT_DELIVERED)
		by_state[e->state]++;
	return 0;
}

void sim_world_finish(struct sim_world *w)
{
	for (size_t i = 0; i < w->n_msgs; i++) {
		struct sim_msg *m = &w->msgs[i];
		if (m->deliveries)
			m->fate = FATE_DELIVERED;
		else if (m->sent_at + m->lifetime_us <= w->now)
			m->fate = FATE_EXPIRED;
		else if (in_some_store(w, m))
			m->fate = FATE_IN_TRANSIT;
		else
			m->fate = FATE_LOST;
	}
	/* What each sender's store says became of its messages: custody, delivery receipts. */
	for (size_t i = 0; w->sc->n_couriers && i < w->sc->n_nodes; i++) {
		struct sim_node *nd = &w->nodes[i];
		if ((nd->n.store || open_store(w, nd) == 0) &&
		    store_sent_foreach(nd->n.store, count_sent, w->sent_state) < 0)
			fatal(w, -EIO, "sent messages of", nd->sn->name);
	}
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void sim_world_free(struct sim_world *w)
{
	for (size_t i = 0; w->links && i < w->sc->n_links; i++)
		sim_link_drop(w, &w->links[i]);
	for (size_t i = 0; w->nodes && i < w->sc->n_nodes; i++) {
		node_close(&w->nodes[i].n);
		free(w->nodes[i].links);
	}
	if (w->run_dir[0])
		nftw(w->run_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	tern_crypto_test_set_rng(NULL, NULL);
	store_testing_exclusive_locking(false);
	for (size_t i = 0; i < w->n_samples; i++)
		free(w->samples[i].queued);
	free(w->samples);
	free(w->msgs);
	free(w->msg_table);
	free(w->flow_rng);
	free(w->flow_seq);
	free(w->links);
	free(w->couriers);
	free(w->nodes);
	sim_queue_free(&w->q);
	memset(w, 0, sizeof(*w));
}
