/* Parses tern-sim scenario files (docs/sim.md) line by line, keeping every error with its line. */
#include "sim/scenario.h"

#include "sim/line_model.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_S   1000000ll
#define US_PER_DAY (86400ll * US_PER_S)
#define ERRORS_MAX 50
#define RANGE_MAX  100000
#define TOKENS_MAX 64

struct scenario_reader {
	struct scenario *s;
	unsigned line;
	size_t cap_nodes, cap_links, cap_routes, cap_flows, cap_crashes, cap_couriers;
	unsigned n_errors;
	bool nomem;
	char *errors;
	size_t errors_len;
};

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

__attribute__((format(printf, 2, 3))) static int fail(struct scenario_reader *r, const char *fmt,
						      ...)
{
	char msg[300];
	va_list ap;
	r->n_errors++;
	if (r->n_errors > ERRORS_MAX)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->n_errors == ERRORS_MAX)
		snprintf(msg, sizeof(msg), "more errors follow; fix these first");
	char line[340];
	/* Line 0: the whole file (a line that is missing, say). */
	int n = r->line ? snprintf(line, sizeof(line), "line %u: %s\n", r->line, msg)
			: snprintf(line, sizeof(line), "%s\n", msg);
	char *p = realloc(r->errors, r->errors_len + (size_t)n + 1);
	if (!p) {
		r->nomem = true;
		return -ENOMEM;
	}
	memcpy(p + r->errors_len, line, (size_t)n + 1);
	r->errors = p;
	r->errors_len += (size_t)n;
	return -EINVAL;
}

/* ---- values ----------------------------------------------------------------------- */

/* "90s", "15m", "2h", "3d", "500ms", "1d12h": a sum of number-unit pairs. */
static bool parse_duration(const char *t, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t us;
	} units[] = {{"ms", 1000},
		     {"s", US_PER_S},
		     {"m", 60 * US_PER_S},
		     {"h", 3600 * US_PER_S},
		     {"d", US_PER_DAY}};
	int64_t total = 0;
	if (!*t)
		return false;
	while (*t) {
		char *end;
		if (*t < '0' || *t > '9')
			return false;
		double v = strtod(t, &end);
		size_t i, ulen = 0;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			ulen = strlen(units[i].unit);
			if (strncmp(end, units[i].unit, ulen) == 0 &&
			    (end[ulen] == 0 || (end[ulen] >= '0' && end[ulen] <= '9')))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return false;
		double us = v * (double)units[i].us;
		if (!(us >= 0) || us > 1e17 - (double)total)
			return false;
		total += (int64_t)llround(us);
		t = end + ulen;
	}
	*out = total;
	return true;
}

/* "200", "1KiB", "16MiB", "1GiB": bytes. */
static bool parse_size(const char *t, uint64_t *out)
{
	char *end;
	if (*t < '0' || *t > '9')
		return false;
	unsigned long long v = strtoull(t, &end, 10);
	uint64_t mul = 1;
	if (strcmp(end, "KiB") == 0)
		mul = 1024;
	else if (strcmp(end, "MiB") == 0)
		mul = 1024 * 1024;
	else if (strcmp(end, "GiB") == 0)
		mul = 1024ull * 1024 * 1024;
	else if (*end)
		return false;
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

/* "9600bps", "64kbps", "2Mbps": bits per second, decimal prefixes as line rates are quoted. */
static bool parse_rate(const char *t, uint64_t *out)
{
	char *end;
	if (*t < '0' || *t > '9')
		return false;
	double v = strtod(t, &end);
	double mul;
	if (strcmp(end, "bps") == 0)
		mul = 1;
	else if (strcmp(end, "kbps") == 0)
		mul = 1e3;
	else if (strcmp(end, "Mbps") == 0)
		mul = 1e6;
	else if (strcmp(end, "Gbps") == 0)
		mul = 1e9;
	else
		return false;
	double bps = v * mul;
	if (!(bps >= 1) || bps > 1e12)
		return false;
	*out = (uint64_t)llround(bps);
	return true;
}

static bool parse_clock(const char *t, int64_t *out)
{
	unsigned h, m;
	char tail;
	if (sscanf(t, "%2u:%2u%c", &h, &m, &tail) != 2 || h > 24 || m > 59 || (h == 24 && m))
		return false;
	*out = ((int64_t)h * 60 + m) * 60 * US_PER_S;
	return true;
}

/* "06:00-06:15": a daily window; end < start wraps midnight. */
static bool parse_window(const char *t, struct scenario_span *w)
{
	char a[8], b[8];
	const char *dash = strchr(t, '-');
	if (!dash || dash - t >= (long)sizeof(a) || strlen(dash + 1) >= sizeof(b))
		return false;
	memcpy(a, t, (size_t)(dash - t));
	a[dash - t] = 0;
	snprintf(b, sizeof(b), "%s", dash + 1);
	return parse_clock(a, &w->start) && parse_clock(b, &w->end) && w->start != w->end;
}

static bool valid_name(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > SCENARIO_NAME_MAX)
		return false;
	for (const char *p = t; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static long find_node(const struct scenario *s, const char *name)
{
	for (size_t i = 0; i < s->n_nodes; i++)
		if (strcmp(s->nodes[i].name, name) == 0)
			return (long)i;
	return -1;
}

static bool node_arg(struct scenario_reader *r, const char *t, size_t *out)
{
	long i = find_node(r->s, t);
	if (i < 0) {
		fail(r, "no node named '%s' (declare it with a node line first)", t);
		return false;
	}
	*out = (size_t)i;
	return true;
}

static const char *const priority_names[] = {"bulk", "normal", "urgent"};

/* ---- statements ------------------------------------------------------------------- */

static int do_node(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	if (n < 2)
		return fail(r, "node: give one or more names");
	for (int i = 1; i < n; i++) {
		if (!valid_name(tok[i]))
			return fail(r, "node: '%s' is not a name (1 to %d of A-Z a-z 0-9 _ - .)",
				    tok[i], SCENARIO_NAME_MAX);
		if (find_node(s, tok[i]) >= 0)
			return fail(r, "node: '%s' is declared twice", tok[i]);
		if (grow((void **)&s->nodes, &r->cap_nodes, s->n_nodes, sizeof(*s->nodes)) < 0)
			return -ENOMEM;
		struct scenario_node *nd = &s->nodes[s->n_nodes++];
		memset(nd, 0, sizeof(*nd));
		snprintf(nd->name, sizeof(nd->name), "%s", tok[i]);
	}
	return 0;
}

static int add_contact(struct scenario_reader *r, struct scenario_link *l, int64_t at, int64_t len)
{
	struct scenario_span *c = realloc(l->contacts, (l->n_contacts + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	l->contacts = c;
	size_t i = l->n_contacts++;
	while (i > 0 && c[i - 1].start > at) {
		c[i] = c[i - 1];
		i--;
	}
	c[i] = (struct scenario_span){at, at + len};
	(void)r;
	return 0;
}

/*
 * A serial link is run over the line model (sim/line_model.h), whose bounds it takes: a rate of
 * 50 bit/s to 4 Mbit/s (9600 bit/s unless given), a latency in whole milliseconds up to ten
 * minutes, and no more than 16 MiB in flight. A bit error rate is for serial links only.
 */
static int check_serial(struct scenario_reader *r, struct scenario_link *l, bool have_rate,
			bool have_ber)
{
	if (l->kind != SCENARIO_LINK_SERIAL)
		return have_ber ? fail(r, "link: ber is for serial links (add 'serial')") : 0;
	if (!have_rate)
		l->rate_bps = 9600;
	if (l->rate_bps < SCENARIO_SERIAL_RATE_MIN || l->rate_bps > SCENARIO_SERIAL_RATE_MAX)
		return fail(r, "link: a serial line's rate is 50bps to 4Mbps");
	if (l->latency_us % 1000 || l->latency_us > (int64_t)LINE_LATENCY_MS_MAX * 1000)
		return fail(r, "link: a serial line's latency is whole milliseconds, up to 10m");
	/* Bytes on the line at once (8N1: 10 bits a byte), with room for the sender's burst. */
	double inflight = (double)l->rate_bps / 10 * ((double)l->latency_us / US_PER_S + 0.01);
	if (inflight + 1024 > LINE_INFLIGHT_MAX)
		return fail(r, "link: a serial line of this rate and latency holds more than "
			       "16 MiB in flight");
	return 0;
}

static int do_link(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	struct scenario_link l = {
	    .rate_bps = 1000000,
	    .latency_us = 50000,
	    .plan = PLAN_ALWAYS,
	};
	int ret = 0;
	bool have_rate = false, have_ber = false;
	if (n < 3)
		return fail(r, "link: give two node names");
	if (!node_arg(r, tok[1], &l.a) || !node_arg(r, tok[2], &l.b))
		return -EINVAL;
	if (l.a == l.b)
		return fail(r, "link: '%s' cannot link to itself", tok[1]);
	for (size_t i = 0; i < s->n_links; i++) {
		const struct scenario_link *o = &s->links[i];
		if ((o->a == l.a && o->b == l.b) || (o->a == l.b && o->b == l.a))
			return fail(r, "link: %s and %s are already linked", tok[1], tok[2]);
	}
	for (int i = 3; i < n; i++) {
		const char *k = tok[i];
		const char *v = i + 1 < n ? tok[i + 1] : NULL;
		int64_t d, d2;
		if (strcmp(k, "serial") == 0) {
			l.kind = SCENARIO_LINK_SERIAL;
		} else if (strcmp(k, "rate") == 0 && v) {
			if (!parse_rate(v, &l.rate_bps)) {
				ret = fail(r, "link: rate '%s' is not a rate like 9600bps or 2Mbps",
					   v);
				goto out;
			}
			have_rate = true;
			i++;
		} else if (strcmp(k, "ber") == 0 && v) {
			char *end;
			l.ber = strtod(v, &end);
			if (end == v || *end || !(l.ber >= 0) || l.ber > SCENARIO_SERIAL_BER_MAX) {
				ret = fail(r,
					   "link: ber '%s' is not a bit error rate from 0 to %g, "
					   "like 1e-5",
					   v, SCENARIO_SERIAL_BER_MAX);
				goto out;
			}
			have_ber = true;
			i++;
		} else if (strcmp(k, "latency") == 0 && v) {
			if (!parse_duration(v, &l.latency_us)) {
				ret = fail(r, "link: latency '%s' is not a duration like 600ms", v);
				goto out;
			}
			i++;
		} else if (strcmp(k, "cost") == 0 && v) {
			char *end;
			l.cost_per_mib = strtod(v, &end);
			if (*end || !(l.cost_per_mib >= 0) || l.cost_per_mib > 1e9) {
				ret =
				    fail(r, "link: cost '%s' is not a number of units per MiB", v);
				goto out;
			}
			i++;
		} else if (strcmp(k, "window") == 0 && v) {
			if (l.plan == PLAN_RANDOM || l.n_windows == SCENARIO_WINDOWS_MAX ||
			    !parse_window(v, &l.windows[l.n_windows])) {
				ret = fail(r,
					   "link: window '%s' is not HH:MM-HH:MM (at most %d, not "
					   "with random)",
					   v, SCENARIO_WINDOWS_MAX);
				goto out;
			}
			l.n_windows++;
			l.plan = PLAN_WINDOWS;
			i++;
		} else if (strcmp(k, "contact") == 0 && v && i + 2 < n) {
			if (l.plan == PLAN_RANDOM || !parse_duration(v, &d) ||
			    !parse_duration(tok[i + 2], &d2) || d2 == 0) {
				ret = fail(r, "link: contact wants a start and a length, like "
					      "'contact 3d6h 20m' (not with random)");
				goto out;
			}
			if ((ret = add_contact(r, &l, d, d2)) < 0)
				goto out;
			l.plan = PLAN_WINDOWS;
			i += 2;
		} else if (strcmp(k, "random") == 0 && v && i + 2 < n) {
			if (l.plan == PLAN_WINDOWS || !parse_duration(v, &l.mean_up_us) ||
			    !parse_duration(tok[i + 2], &l.mean_down_us) || !l.mean_up_us ||
			    !l.mean_down_us) {
				ret = fail(r, "link: random wants the mean up and down times, like "
					      "'random 2h 6h' (not with window or contact)");
				goto out;
			}
			l.plan = PLAN_RANDOM;
			i += 2;
		} else {
			ret = fail(r,
				   "link: '%s' is not serial, rate, latency, ber, cost, window, "
				   "contact or random, or its value is missing",
				   k);
			goto out;
		}
	}
	if ((ret = check_serial(r, &l, have_rate, have_ber)) < 0)
		goto out;
	if ((ret = grow((void **)&s->links, &r->cap_links, s->n_links, sizeof(*s->links))) < 0)
		goto out;
	s->links[s->n_links++] = l;
	return 0;
out:
	free(l.contacts);
	return ret;
}

static int do_route(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	struct scenario_route rt = {0};
	if (n != 4)
		return fail(r, "route: write 'route NODE DEST NEXT' (DEST a node or default)");
	if (!node_arg(r, tok[1], &rt.node))
		return -EINVAL;
	rt.is_default = strcmp(tok[2], "default") == 0;
	if (!rt.is_default && !node_arg(r, tok[2], &rt.dest))
		return -EINVAL;
	if (!node_arg(r, tok[3], &rt.via))
		return -EINVAL;
	if (grow((void **)&s->routes, &r->cap_routes, s->n_routes, sizeof(*s->routes)) < 0)
		return -ENOMEM;
	rt.line = r->line;
	s->routes[s->n_routes++] = rt;
	return 0;
}

static int do_traffic(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	struct scenario_flow f = {
	    .priority = 1,
	    .lifetime_us = 14 * US_PER_DAY,
	    .stop_us = INT64_MAX,
	};
	bool have_arrival = false, have_size = false;
	if (n < 3)
		return fail(r, "traffic: write 'traffic FROM TO every DUR size BYTES ...'");
	if (!node_arg(r, tok[1], &f.from) || !node_arg(r, tok[2], &f.to))
		return -EINVAL;
	if (f.from == f.to)
		return fail(r, "traffic: '%s' sending to itself crosses no link", tok[1]);
	for (int i = 3; i < n; i++) {
		const char *k = tok[i];
		const char *v = i + 1 < n ? tok[i + 1] : NULL;
		if (!v)
			return fail(r, "traffic: '%s' wants a value", k);
		i++;
		if (strcmp(k, "every") == 0 || strcmp(k, "poisson") == 0) {
			f.arrival = k[0] == 'e' ? ARRIVE_EVERY : ARRIVE_POISSON;
			if (!parse_duration(v, &f.period_us) || f.period_us < 1000)
				return fail(r, "traffic: %s '%s' is not a duration of 1ms or more",
					    k, v);
			have_arrival = true;
		} else if (strcmp(k, "size") == 0) {
			char lo[32];
			const char *dash = strchr(v, '-');
			size_t len = dash ? (size_t)(dash - v) : strlen(v);
			if (len >= sizeof(lo))
				return fail(r, "traffic: size '%s' is too long", v);
			memcpy(lo, v, len);
			lo[len] = 0;
			if (!parse_size(lo, &f.size_min) ||
			    (dash ? !parse_size(dash + 1, &f.size_max)
				  : (f.size_max = f.size_min, 0)) ||
			    f.size_min < 1 || f.size_max < f.size_min || f.size_max > (1ull << 32))
				return fail(r,
					    "traffic: size '%s' is not BYTES or MIN-MAX (1 byte to "
					    "4 GiB, like 200 or 1KiB-64KiB)",
					    v);
			have_size = true;
		} else if (strcmp(k, "priority") == 0) {
			f.priority = -1;
			for (int p = 0; p < 3; p++)
				if (strcmp(v, priority_names[p]) == 0)
					f.priority = p;
			if (f.priority < 0)
				return fail(
				    r, "traffic: priority '%s' is not bulk, normal or urgent", v);
		} else if (strcmp(k, "lifetime") == 0) {
			if (!parse_duration(v, &f.lifetime_us) || f.lifetime_us < US_PER_S)
				return fail(
				    r, "traffic: lifetime '%s' is not a duration of 1s or more", v);
		} else if (strcmp(k, "start") == 0 || strcmp(k, "stop") == 0) {
			int64_t *dst = k[2] == 'a' ? &f.start_us : &f.stop_us;
			if (!parse_duration(v, dst))
				return fail(r, "traffic: %s '%s' is not a duration", k, v);
		} else {
			return fail(r,
				    "traffic: '%s' is not every, poisson, size, priority, "
				    "lifetime, start or stop",
				    k);
		}
	}
	if (!have_arrival || !have_size)
		return fail(r, "traffic: give 'every DUR' or 'poisson DUR', and 'size BYTES'");
	if (f.stop_us <= f.start_us)
		return fail(r, "traffic: stop comes before start");
	if (grow((void **)&s->flows, &r->cap_flows, s->n_flows, sizeof(*s->flows)) < 0)
		return -ENOMEM;
	s->flows[s->n_flows++] = f;
	return 0;
}

static int do_crash(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	struct scenario_crash c;
	if (n != 6 || strcmp(tok[2], "at") != 0 || strcmp(tok[4], "for") != 0)
		return fail(r, "crash: write 'crash NODE at TIME for DURATION'");
	if (!node_arg(r, tok[1], &c.node))
		return -EINVAL;
	if (!parse_duration(tok[3], &c.at_us) || !parse_duration(tok[5], &c.down_us) ||
	    c.down_us == 0)
		return fail(r, "crash: '%s' or '%s' is not a duration (the second above 0)", tok[3],
			    tok[5]);
	if (grow((void **)&s->crashes, &r->cap_crashes, s->n_crashes, sizeof(*s->crashes)) < 0)
		return -ENOMEM;
	c.line = r->line;
	s->crashes[s->n_crashes++] = c;
	return 0;
}

static bool on_route(const struct scenario_courier *c, size_t node)
{
	for (size_t i = 0; i < c->n_stops; i++)
		if (c->stops[i] == node)
			return true;
	return false;
}

/* courier NAME route A B [C ...] every DUR [at DUR] travel DUR capacity SIZE [cost N] */
static int do_courier(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	struct scenario_courier c = {0};
	bool have_every = false, have_travel = false, have_capacity = false;
	if (n < 3 || strcmp(tok[2], "route") != 0)
		return fail(r, "courier: write 'courier NAME route A B ... every DUR travel DUR "
			       "capacity SIZE'");
	if (!valid_name(tok[1]))
		return fail(r, "courier: '%s' is not a name (1 to %d of A-Z a-z 0-9 _ - .)", tok[1],
			    SCENARIO_NAME_MAX);
	for (size_t i = 0; i < s->n_couriers; i++)
		if (strcmp(s->couriers[i].name, tok[1]) == 0)
			return fail(r, "courier: '%s' is declared twice", tok[1]);
	snprintf(c.name, sizeof(c.name), "%s", tok[1]);
	int i = 3;
	for (; i < n && find_node(s, tok[i]) >= 0; i++) {
		size_t node = (size_t)find_node(s, tok[i]);
		if (on_route(&c, node))
			return fail(r,
				    "courier: '%s' is on the route twice (the stick comes back "
				    "to the first stop by itself)",
				    tok[i]);
		if (c.n_stops == SCENARIO_STOPS_MAX)
			return fail(r, "courier: more than %d stops", SCENARIO_STOPS_MAX);
		c.stops[c.n_stops++] = node;
	}
	if (c.n_stops < 2)
		return i < n && strcmp(tok[i], "every") != 0
			   ? fail(r, "no node named '%s' (declare it with a node line first)",
				  tok[i])
			   : fail(r, "courier: a route has two stops or more");
	for (; i < n; i++) {
		const char *k = tok[i];
		const char *v = i + 1 < n ? tok[i + 1] : NULL;
		if (!v)
			return fail(r, "courier: '%s' wants a value", k);
		i++;
		if (strcmp(k, "every") == 0 || strcmp(k, "at") == 0 || strcmp(k, "travel") == 0) {
			int64_t *dst = k[0] == 'e'   ? &c.every_us
				       : k[0] == 'a' ? &c.at_us
						     : &c.travel_us;
			if (!parse_duration(v, dst) || (k[0] != 'a' && *dst < US_PER_S))
				return fail(r, "courier: %s '%s' is not a duration%s", k, v,
					    k[0] == 'a' ? "" : " of 1s or more");
			have_every |= k[0] == 'e';
			have_travel |= k[0] == 't';
		} else if (strcmp(k, "capacity") == 0) {
			if (!parse_size(v, &c.capacity) || c.capacity < SCENARIO_COURIER_MIN_SIZE)
				return fail(
				    r, "courier: capacity '%s' is not a size of 1MiB or more", v);
			have_capacity = true;
		} else if (strcmp(k, "cost") == 0) {
			char *end;
			c.cost_per_trip = strtod(v, &end);
			if (*end || !(c.cost_per_trip >= 0) || c.cost_per_trip > 1e9)
				return fail(
				    r, "courier: cost '%s' is not a number of units per trip", v);
		} else {
			return fail(r, "courier: '%s' is not every, at, travel, capacity or cost",
				    k);
		}
	}
	if (!have_every || !have_travel || !have_capacity)
		return fail(r, "courier: give 'every DUR', 'travel DUR' and 'capacity SIZE'");
	if ((double)c.travel_us * (double)c.n_stops > (double)c.every_us)
		return fail(r,
			    "courier: %zu legs of travel (to each stop and back to %s) take longer "
			    "than the time between two trips",
			    c.n_stops, s->nodes[c.stops[0]].name);
	if (grow((void **)&s->couriers, &r->cap_couriers, s->n_couriers, sizeof(*s->couriers)) < 0)
		return -ENOMEM;
	s->couriers[s->n_couriers++] = c;
	return 0;
}

int64_t scenario_courier_visit_at(const struct scenario_courier *c, uint64_t trip, size_t i)
{
	return c->at_us + (int64_t)trip * c->every_us + (int64_t)i * c->travel_us;
}

bool scenario_adjacent(const struct scenario *s, size_t a, size_t b)
{
	for (size_t j = 0; j < s->n_links; j++) {
		const struct scenario_link *l = &s->links[j];
		if ((l->a == a && l->b == b) || (l->b == a && l->a == b))
			return true;
	}
	for (size_t j = 0; j < s->n_couriers; j++)
		if (on_route(&s->couriers[j], a) && on_route(&s->couriers[j], b))
			return true;
	return false;
}

static const char *const routing_names[SCENARIO_ROUTING_COUNT] = {"static", "epidemic"};

const char *scenario_routing_name(enum scenario_routing r)
{
	return r < SCENARIO_ROUTING_COUNT ? routing_names[r] : NULL;
}

int scenario_routing_parse(const char *name, enum scenario_routing *out)
{
	for (int i = 0; i < SCENARIO_ROUTING_COUNT; i++) {
		if (strcmp(name, routing_names[i]) == 0) {
			*out = (enum scenario_routing)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int do_tokens(struct scenario_reader *r, char **tok, int n)
{
	struct scenario *s = r->s;
	int64_t d;
	if (strcmp(tok[0], "duration") == 0 || strcmp(tok[0], "sample") == 0) {
		if (n != 2 || !parse_duration(tok[1], &d) || d < US_PER_S)
			return fail(r, "%s: give one duration of 1s or more, like 30d", tok[0]);
		*(tok[0][0] == 'd' ? &s->duration_us : &s->sample_us) = d;
		return 0;
	}
	if (strcmp(tok[0], "routing") == 0) {
		if (n != 2 || scenario_routing_parse(tok[1], &s->routing) < 0)
			return fail(r, "routing: give static or epidemic");
		return 0;
	}
	if (strcmp(tok[0], "node") == 0)
		return do_node(r, tok, n);
	if (strcmp(tok[0], "link") == 0)
		return do_link(r, tok, n);
	if (strcmp(tok[0], "route") == 0)
		return do_route(r, tok, n);
	if (strcmp(tok[0], "traffic") == 0)
		return do_traffic(r, tok, n);
	if (strcmp(tok[0], "crash") == 0)
		return do_crash(r, tok, n);
	if (strcmp(tok[0], "courier") == 0)
		return do_courier(r, tok, n);
	return fail(r,
		    "'%s' is not duration, sample, routing, node, link, route, traffic, crash or "
		    "courier",
		    tok[0]);
}

/* ---- lines ------------------------------------------------------------------------ */

/* Finds "[A-B]" in text: its offsets and bounds. False if there is none. */
static bool find_range(const char *text, size_t *at, size_t *len, long *lo, long *hi)
{
	for (const char *p = strchr(text, '['); p; p = strchr(p + 1, '[')) {
		char *end;
		long a = strtol(p + 1, &end, 10);
		if (end == p + 1 || *end != '-')
			continue;
		const char *q = end + 1;
		long b = strtol(q, &end, 10);
		if (end == q || *end != ']')
			continue;
		*at = (size_t)(p - text);
		*len = (size_t)(end + 1 - p);
		*lo = a;
		*hi = b;
		return true;
	}
	return false;
}

static int do_text(struct scenario_reader *r, char *text)
{
	char *tok[TOKENS_MAX];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(text, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == TOKENS_MAX)
			return fail(r, "more than %d words", TOKENS_MAX);
		tok[n++] = t;
	}
	return n ? do_tokens(r, tok, n) : 0;
}

/*
 * A line with "name[1-20]" stands for 20 lines, the range replaced by 1 to 20 in each; a
 * range that appears twice (link pi[1-5] sat[1-5]) counts in step.
 */
static int do_line(struct scenario_reader *r, const char *text)
{
	size_t at, len;
	long lo, hi;
	if (!find_range(text, &at, &len, &lo, &hi)) {
		char copy[SCENARIO_LINE_MAX + 1];
		snprintf(copy, sizeof(copy), "%s", text);
		return do_text(r, copy);
	}
	char range[48];
	snprintf(range, sizeof(range), "%.*s", (int)len, text + at);
	if (lo < 0 || hi < lo || hi - lo >= RANGE_MAX)
		return fail(r, "range %s: write [FIRST-LAST], 0 <= FIRST <= LAST, at most %d",
			    range, RANGE_MAX);
	for (const char *p = strchr(text, '['); p; p = strchr(p + 1, '[')) {
		size_t a2, l2;
		long x, y;
		if (find_range(p, &a2, &l2, &x, &y) && (x != lo || y != hi))
			return fail(r, "two different ranges on one line (%s and %.*s)", range,
				    (int)l2, p + a2);
	}
	for (long i = lo; i <= hi; i++) {
		char out[SCENARIO_LINE_MAX + 1], num[24];
		size_t o = 0;
		snprintf(num, sizeof(num), "%ld", i);
		for (const char *p = text; *p;) {
			size_t step = strlen(num);
			const char *src = num;
			if (strncmp(p, range, len) != 0) {
				step = 1;
				src = p;
			}
			if (o + step > SCENARIO_LINE_MAX)
				return fail(r, "the line is too long once its range is expanded");
			memcpy(out + o, src, step);
			o += step;
			p += src == num ? len : 1;
		}
		out[o] = 0;
		int ret = do_text(r, out);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int scenario_read_line(struct scenario_reader *r, const uint8_t *line, size_t len)
{
	char text[SCENARIO_LINE_MAX + 1];
	r->line++;
	if (r->nomem)
		return -ENOMEM;
	if (len > SCENARIO_LINE_MAX)
		return fail(r, "longer than %d bytes", SCENARIO_LINE_MAX);
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '#') {
			len = i;
			break;
		}
		if (line[i] == '\r' && i + 1 == len) {
			len = i;
			break;
		}
		if (line[i] < 0x20 && line[i] != '\t')
			return fail(r, "a control byte (0x%02x) in column %zu", line[i], i + 1);
		if (line[i] >= 0x7f)
			return fail(r, "a byte that is not printable ASCII (0x%02x) in column %zu",
				    line[i], i + 1);
	}
	memcpy(text, line, len);
	text[len] = 0;
	int ret = do_line(r, text);
	if (ret == -ENOMEM)
		r->nomem = true;
	return ret;
}

int scenario_read_init(struct scenario_reader **out)
{
	struct scenario_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->s = calloc(1, sizeof(*r->s));
	if (!r->s) {
		free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

int scenario_read_finish(struct scenario_reader *r, struct scenario **out)
{
	struct scenario *s = r->s;
	if (r->nomem)
		return -ENOMEM;
	r->line = 0;
	if (!s->duration_us)
		fail(r, "no duration line (say how long the run lasts, like 'duration 7d')");
	if (!s->n_nodes)
		fail(r, "no node line");
	for (size_t i = 0; i < s->n_routes; i++) {
		const struct scenario_route *rt = &s->routes[i];
		r->line = rt->line;
		if (!scenario_adjacent(s, rt->node, rt->via))
			fail(r, "route of %s goes via %s, which has no link to it (nor a courier)",
			     s->nodes[rt->node].name, s->nodes[rt->via].name);
	}
	for (size_t i = 0; i < s->n_crashes; i++) {
		r->line = s->crashes[i].line;
		if (s->crashes[i].at_us >= s->duration_us)
			fail(r, "crash of %s comes after the end of the run",
			     s->nodes[s->crashes[i].node].name);
	}
	if (r->n_errors)
		return -EINVAL;
	if (!s->sample_us)
		s->sample_us = s->duration_us / 100 > US_PER_S ? s->duration_us / 100 : US_PER_S;
	*out = s;
	r->s = NULL;
	return 0;
}

const char *scenario_read_errors(const struct scenario_reader *r)
{
	return r->errors ? r->errors : "";
}

void scenario_read_free(struct scenario_reader *r)
{
	if (!r)
		return;
	scenario_free(r->s);
	free(r->errors);
	free(r);
}

void scenario_free(struct scenario *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_links; i++)
		free(s->links[i].contacts);
	free(s->nodes);
	free(s->links);
	free(s->routes);
	free(s->flows);
	free(s->crashes);
	free(s->couriers);
	free(s);
}

int scenario_load(const char *path, struct scenario **out, char *why, size_t whylen)
{
	struct scenario_reader *r = NULL;
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int ret = -errno;
	if (!f) {
		snprintf(why, whylen, "%s", strerror(-ret));
		return ret;
	}
	if ((ret = scenario_read_init(&r)) < 0)
		goto out;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n;
		if (len && line[len - 1] == '\n')
			len--;
		if (scenario_read_line(r, (const uint8_t *)line, len) == -ENOMEM) {
			ret = -ENOMEM;
			goto out;
		}
	}
	if (ferror(f)) {
		ret = -EIO;
		goto out;
	}
	ret = scenario_read_finish(r, out);
	if (ret == -EINVAL) {
		snprintf(why, whylen, "%s", scenario_read_errors(r));
		size_t wl = strlen(why);
		if (wl && why[wl - 1] == '\n')
			why[wl - 1] = 0;
	}
out:
	if (ret < 0 && ret != -EINVAL)
		snprintf(why, whylen, "%s", strerror(-ret));
	free(line);
	scenario_read_free(r);
	fclose(f);
	return ret;
}

/* ---- contact plans ---------------------------------------------------------------- */

static bool in_window(const struct scenario_span *w, int64_t tod)
{
	return w->start < w->end ? tod >= w->start && tod < w->end
				 : tod >= w->start || tod < w->end;
}

bool scenario_link_planned_up(const struct scenario_link *l, int64_t t)
{
	if (l->plan == PLAN_ALWAYS)
		return true;
	if (l->plan != PLAN_WINDOWS)
		return false;
	int64_t tod = t % US_PER_DAY;
	for (size_t i = 0; i < l->n_windows; i++)
		if (in_window(&l->windows[i], tod))
			return true;
	for (size_t i = 0; i < l->n_contacts; i++)
		if (t >= l->contacts[i].start && t < l->contacts[i].end)
			return true;
	return false;
}

int64_t scenario_link_next_change(const struct scenario_link *l, int64_t t)
{
	if (l->plan != PLAN_WINDOWS)
		return INT64_MAX;
	/* Candidate edges: every window edge today and tomorrow, every contact edge. */
	int64_t best = INT64_MAX;
	int64_t day = t - t % US_PER_DAY;
	bool now = scenario_link_planned_up(l, t);
	for (int d = 0; d < 2; d++) {
		for (size_t i = 0; i < l->n_windows; i++) {
			int64_t edges[2] = {day + d * US_PER_DAY + l->windows[i].start,
					    day + d * US_PER_DAY + l->windows[i].end};
			for (int e = 0; e < 2; e++)
				if (edges[e] > t && edges[e] < best &&
				    scenario_link_planned_up(l, edges[e]) != now)
					best = edges[e];
		}
	}
	for (size_t i = 0; i < l->n_contacts; i++) {
		int64_t edges[2] = {l->contacts[i].start, l->contacts[i].end};
		for (int e = 0; e < 2; e++)
			if (edges[e] > t && edges[e] < best &&
			    scenario_link_planned_up(l, edges[e]) != now)
				best = edges[e];
	}
	return best;
}
