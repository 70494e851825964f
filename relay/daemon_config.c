/* The daemon's tern.conf: loaded at start and on SIGHUP, applied to store, listeners, links. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/daemon_internal.h"
#include "relay/log.h"

#define DAY_MS (24ull * 3600 * 1000)

static void config_path(struct daemon *d, char *out, size_t len)
{
	if (d->opt->config_path)
		snprintf(out, len, "%s", d->opt->config_path);
	else if (home_path("tern.conf", out, len) < 0)
		out[0] = '\0';
}

static void apply_peers(struct daemon *d, const struct config *c, const char *path)
{
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct config_peer *cp = &c->peers[i];
		struct store_peer sp, old;
		if (!cp->has_id) {
			if (store_peer_get(d->n->store, cp->name, &old) < 0)
				log_warn(
				    "%s:%u: peer %s: no id = and not a peer in the store: ignored",
				    path, cp->line, cp->name);
			continue;
		}
		config_peer_to_store(cp, d->n->now.unix_ms, &sp);
		if (store_peer_get(d->n->store, cp->name, &old) == 0) {
			/* Keep what the CLI set and the file does not say. */
			if (!cp->sneakernet_set)
				sp.links = (sp.links & ~STORE_LINK_SNEAKERNET) |
					   (old.links & STORE_LINK_SNEAKERNET);
		}
		if (store_peer_add(d->n->store, &sp) < 0)
			log_error("%s:%u: peer %s: %s", path, cp->line, cp->name,
				  store_errmsg(d->n->store));
	}
}

static void apply_routes(struct daemon *d, const struct config *c, const char *path)
{
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct config_route *r = &c->routes[i];
		uint64_t dest = r->dest_node;
		struct store_peer via;
		if (r->kind != CONFIG_DEST_NODE && node_parse_dest(d->n, r->dest, &dest) < 0) {
			log_error("%s:%u: route %s: no such contact or peer", path, r->line,
				  r->dest);
			continue;
		}
		if (store_peer_get(d->n->store, r->via, &via) < 0) {
			log_error("%s:%u: route %s: via %s is not a peer", path, r->line, r->dest,
				  r->via);
			continue;
		}
		if (via.node != dest && store_route_set(d->n->store, dest, via.node) < 0)
			log_error("%s:%u: route %s: %s", path, r->line, r->dest,
				  store_errmsg(d->n->store));
	}
}

/* Opens the listeners asked for (command line and file) and closes the others. */
static int apply_listens(struct daemon *d, const struct config *c)
{
	const char *want[DAEMON_MAX_LISTEN * 2];
	size_t n = 0;
	for (size_t i = 0; i < d->opt->n_listen; i++)
		want[n++] = d->opt->listen[i];
	for (size_t i = 0; c && i < c->n_listens && n < DAEMON_MAX_LISTEN * 2; i++)
		want[n++] = c->listens[i].text;
	for (size_t i = 0; i < d->n_listen;) {
		bool keep = false;
		for (size_t k = 0; k < n; k++)
			keep |= strcmp(d->listeners[i].addr, want[k]) == 0;
		if (keep)
			i++;
		else
			daemon_unlisten(d, i);
	}
	int ret = 0;
	for (size_t k = 0; k < n; k++) {
		bool have = false;
		for (size_t i = 0; i < d->n_listen; i++)
			have |= strcmp(d->listeners[i].addr, want[k]) == 0;
		if (!have && daemon_listen(d, want[k]) < 0 && ret == 0)
			ret = -EADDRNOTAVAIL;
	}
	return ret;
}

static uint64_t budget_left(const struct dpeer *p);
static void load_counters(struct daemon *d, struct dpeer *p);

/* A reload changes the policy of links that are up, without dropping them. */
static void apply_policy(struct daemon *d)
{
	for (size_t i = 0; i < d->n_peers; i++) {
		struct dpeer *p = d->peers[i];
		if (!p->conn || !p->conn->ls)
			continue;
		if (!p->day)
			load_counters(d, p);
		link_session_set_min_priority(p->conn->ls,
					      p->cp ? p->cp->min_priority : STORE_BULK);
		link_session_set_budget(p->conn->ls, budget_left(p));
		p->budget_logged = false;
		conn_service(p->conn);
	}
}

int daemon_config_load(struct daemon *d, bool reload)
{
	char path[HOME_PATH_MAX];
	struct config *c = NULL;
	config_path(d, path, sizeof(path));
	int ret = path[0] ? config_load(path, &c) : -ENOENT;
	if (ret == -ENOENT && !d->opt->config_path) {
		ret = 0; /* no tern.conf: peers and routes from the store alone */
		c = NULL;
	} else if (ret < 0) {
		for (size_t i = 0; c && i < c->n_errors; i++)
			log_error("%s:%u: %s", path, c->errors[i].line, c->errors[i].msg);
		if (!c || c->n_errors == 0)
			log_error("%s: %s", path, strerror(-ret));
		log_error("%s: %s", path,
			  reload ? "not reloaded; the configuration in use stays"
				 : "fix it (tern config check) and start again");
		config_free(c);
		return reload ? 0 : ret;
	}
	if (c && !d->opt->log_level_set)
		log_init((enum log_level)c->log_level);
	if (c)
		d->lim.keepalive_s =
		    (uint16_t)(c->keepalive_ms / 1000 ? c->keepalive_ms / 1000 : 1);
	daemon_clock(d);
	if (c) {
		apply_peers(d, c, path);
		apply_routes(d, c, path);
	}
	ret = apply_listens(d, c);
	if (ret < 0 && !reload) {
		config_free(c);
		return ret;
	}
	config_free(d->cfg);
	d->cfg = c;
	for (size_t i = 0; i < d->n_peers; i++)
		d->peers[i]->cp = c ? config_peer_find(c, d->peers[i]->sp.name) : NULL;
	if (c)
		log_info("%s: %zu peers, %zu routes, %zu listen addresses", path, c->n_peers,
			 c->n_routes, c->n_listens);
	ret = daemon_peers_load(d);
	if (ret == 0 && reload)
		apply_policy(d);
	return ret;
}

void daemon_config_free(struct daemon *d)
{
	config_free(d->cfg);
	d->cfg = NULL;
}

bool daemon_window_open(struct daemon *d, struct dpeer *p)
{
	return !p->cp || config_window_open(p->cp, d->n->now.unix_ms);
}

static uint64_t today(struct daemon *d)
{
	return d->n->now.unix_ms / DAY_MS;
}

static void setting_key(const struct dpeer *p, char *key, size_t len)
{
	snprintf(key, len, "link.%" PRIu64 ".bytes_today", p->sp.node);
}

/* Reads the day's count back from the store, once, so a restart does not refill the budget. */
static void load_counters(struct daemon *d, struct dpeer *p)
{
	char key[64], val[64];
	unsigned long long day, used;
	setting_key(p, key, sizeof(key));
	if (store_setting_get(d->n->store, key, val, sizeof(val)) == 0 &&
	    sscanf(val, "%llu %llu", &day, &used) == 2 && day == today(d)) {
		p->day = day;
		p->used_today = used;
	} else {
		p->day = today(d);
		p->used_today = 0;
	}
}

/*
 * Wire bytes both ways over every run, for what a metered link cost (the store's
 * link.N.bytes_total: "out in").
 */
void daemon_load_totals(struct dpeer *p)
{
	char key[64], val[64];
	unsigned long long out, in;
	if (p->totals_loaded)
		return;
	p->totals_loaded = true;
	snprintf(key, sizeof(key), "link.%" PRIu64 ".bytes_total", p->sp.node);
	if (store_setting_get(p->d->n->store, key, val, sizeof(val)) == 0 &&
	    sscanf(val, "%llu %llu", &out, &in) == 2) {
		p->total_out_before = out;
		p->total_in_before = in;
	}
	p->total_saved = p->total_out_before + p->total_in_before;
}

static void save_totals(struct dpeer *p)
{
	char key[64], val[64];
	uint64_t out = p->total_out_before + p->bytes_out, in = p->total_in_before + p->bytes_in;
	if (!p->totals_loaded || out + in == p->total_saved)
		return;
	snprintf(key, sizeof(key), "link.%" PRIu64 ".bytes_total", p->sp.node);
	snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64, out, in);
	if (store_setting_set(p->d->n->store, key, val) == 0)
		p->total_saved = out + in;
}

void daemon_save_counters(struct dpeer *p)
{
	char key[64], val[64];
	save_totals(p);
	if (!p->counters_dirty)
		return;
	setting_key(p, key, sizeof(key));
	snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64, p->day, p->used_today);
	if (store_setting_set(p->d->n->store, key, val) == 0)
		p->counters_dirty = false;
}

static uint64_t budget_left(const struct dpeer *p)
{
	if (!p->cp || !p->cp->bytes_per_day)
		return UINT64_MAX;
	return p->used_today < p->cp->bytes_per_day ? p->cp->bytes_per_day - p->used_today : 0;
}

void daemon_session_limits(struct daemon *d, struct dpeer *p, struct link_limits *out)
{
	*out = d->lim;
	if (p->line) {
		/*
		 * Short records, so an urgent bundle overtakes within seconds; a stage made
		 * durable every ten seconds of the line and anything over 1 KiB staged, so a
		 * crash costs ten seconds of line at most.
		 */
		uint32_t rate = daemon_serial_rate(p->line);
		out->max_record = LINK_RECORD_MIN;
		out->stage_sync_bytes = rate * 10 > 8192 ? rate * 10 : 8192;
		out->small_max = 1024;
	}
	if (!p->cp)
		return;
	out->min_priority = p->cp->min_priority;
	if (!p->day)
		load_counters(d, p); /* once: later, the count in memory is the newer */
	out->budget_bytes = budget_left(p);
}

void daemon_count_bytes(struct conn *c)
{
	struct dpeer *p = c->peer;
	struct link_stats st;
	if (!c->ls || !p)
		return;
	link_session_stats(c->ls, &st);
	if (st.hop_limited != c->hop_limited_seen) {
		log_info("%s: %" PRIu64 " bundles dropped: one more hop would pass their hop limit",
			 p->sp.name, st.hop_limited - c->hop_limited_seen);
		c->d->hop_limited += st.hop_limited - c->hop_limited_seen;
		c->hop_limited_seen = st.hop_limited;
	}
	if (st.bytes_out == c->bytes_out_seen)
		return;
	p->used_today += st.bytes_out - c->bytes_out_seen;
	c->bytes_out_seen = st.bytes_out;
	p->counters_dirty = true;
	if (budget_left(p) == 0 && !p->budget_logged) {
		p->budget_logged = true;
		log_info("%s: today's %" PRIu64 " bytes are used; bundles wait for 00:00 UTC",
			 p->sp.name, p->cp->bytes_per_day);
	}
}

/* Every few seconds: a new day refills budgets; closed windows end sessions, open ones dial. */
void daemon_policy_tick(struct daemon *d)
{
	daemon_clock(d);
	for (size_t i = 0; i < d->n_peers; i++) {
		struct dpeer *p = d->peers[i];
		if (p->day && p->day != today(d)) {
			p->day = today(d);
			p->used_today = 0;
			p->budget_logged = false;
			p->counters_dirty = true;
			if (p->conn && p->conn->ls)
				link_session_set_budget(p->conn->ls, budget_left(p));
		}
		daemon_save_counters(p);
		bool open = daemon_window_open(d, p);
		if (!open && p->conn && p->conn->ls && !link_session_why(p->conn->ls)[0]) {
			log_info("%s: contact window closed", p->sp.name);
			link_session_close(p->conn->ls);
			conn_service(p->conn);
		} else if (open && !p->conn && !p->dialing && p->n_addrs &&
			   !ev_is_active(&p->dial_timer)) {
			dpeer_schedule_dial(p, false);
		}
		if (p->line)
			daemon_serial_kick(p->line);
		if (p->sbd)
			daemon_sbd_kick(p->sbd);
	}
}
