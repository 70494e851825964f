/* Parses tern.conf line by line (docs/config.md), keeping every error with its line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/config.h"

#define DAY_MS (24ull * 3600 * 1000)

enum section { SEC_TOP, SEC_PEER, SEC_ROUTE, SEC_SKIP };

enum top_key { TOP_LISTEN, TOP_KEEPALIVE, TOP_LOG_LEVEL, N_TOP_KEYS };
static const char *const top_keys[N_TOP_KEYS] = {"listen", "keepalive", "log-level"};

enum peer_key {
	PEER_ID,
	PEER_ADDR,
	PEER_SNEAKERNET,
	PEER_MIN_PRIORITY,
	PEER_BYTES_PER_DAY,
	PEER_WINDOW,
	PEER_SERIAL,
	PEER_BAUD,
	PEER_FRAMING,
	PEER_PARITY,
	PEER_FLOW,
	PEER_COST,
	PEER_DIAL,
	PEER_ANSWER,
	PEER_MODEM_INIT,
	PEER_IDLE_HANGUP,
	PEER_REDIAL,
	PEER_SBD,
	PEER_SBD_CHECK,
	PEER_SBD_RETRY,
	N_PEER_KEYS
};
static const char *const peer_keys[N_PEER_KEYS] = {
    "id",	   "addr",	   "sneakernet", "min-priority", "bytes-per-day",
    "window",	   "serial",	   "baud",	 "framing",	 "parity",
    "flow",	   "cost-per-mib", "dial",	 "answer",	 "modem-init",
    "idle-hangup", "redial",	   "sbd",	 "sbd-check",	 "sbd-retry",
};

struct config_reader {
	struct config *c;
	enum section sec;
	size_t peer; /* the current peer (SEC_PEER) */
	unsigned line;
	uint64_t bytes;
	bool too_big, nomem, routes_full;
	/* Line of each single-valued key's first appearance, to name it in a "twice" error. */
	unsigned top_seen[N_TOP_KEYS];
	unsigned peer_seen[N_PEER_KEYS];
	size_t cap_listens, cap_peers, cap_routes, cap_errors;
	char buf[CONFIG_LINE_MAX + 1];
};

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
static const char *const priority_names[] = {"bulk", "normal", "urgent"};

/* Grows *arr to hold one more than n elements; the caps are small enough never to overflow. */
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

__attribute__((format(printf, 3, 0))) static int vfail_at(struct config_reader *r, unsigned line,
							  const char *fmt, va_list ap)
{
	struct config *c = r->c;
	if (c->n_errors >= CONFIG_ERRORS_MAX) {
		c->n_errors_dropped++;
		return -EINVAL;
	}
	if (grow((void **)&c->errors, &r->cap_errors, c->n_errors, sizeof(*c->errors)) < 0) {
		r->nomem = true;
		return -ENOMEM;
	}
	struct config_error *e = &c->errors[c->n_errors++];
	e->line = line;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct config_reader *r, unsigned line,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = vfail_at(r, line, fmt, ap);
	va_end(ap);
	return ret;
}

/* Records an error on the current line; returns -EINVAL (or -ENOMEM). */
__attribute__((format(printf, 2, 3))) static int fail(struct config_reader *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = vfail_at(r, r->line, fmt, ap);
	va_end(ap);
	return ret;
}

/* A value for an error message: long ones (an identity string) are cut to keep it readable. */
static const char *shown(const char *s, char out[static 64])
{
	size_t len = strlen(s);
	if (len < 64)
		return s;
	memcpy(out, s, 56);
	memcpy(out + 56, "...", 4);
	return out;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char *trim(char *s)
{
	while (is_blank(*s))
		s++;
	size_t len = strlen(s);
	while (len && is_blank(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Same rule as contact_name_valid (relay/util.c), which lives in the tern binary only. */
static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > STORE_NAME_MAX || name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

#define NAME_RULE "1 to 64 of A-Z a-z 0-9 . _ -, not starting with - or ."

/* Parses 1 to 20 decimal digits and nothing else into a uint64_t. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* ---- values ------------------------------------------------------------------------------- */

static bool host_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

int config_addr_parse(const char *v, struct config_addr *a, const char **why)
{
	const char *colon;
	size_t hlen;
	bool v6 = false;
	if (strlen(v) > CONFIG_ADDR_MAX) {
		*why = "longer than 255 bytes";
		return -EINVAL;
	}
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (!close) {
			*why = "no ']' after the IPv6 address";
			return -EINVAL;
		}
		if (close[1] != ':') {
			*why = "no port: give [IPv6]:PORT";
			return -EINVAL;
		}
		colon = close + 1;
		hlen = (size_t)(close - v - 1);
		memcpy(a->host, v + 1, hlen);
		a->host[hlen] = '\0';
		v6 = true;
	} else {
		colon = strrchr(v, ':');
		if (!colon) {
			*why = "no port: give HOST:PORT";
			return -EINVAL;
		}
		hlen = (size_t)(colon - v);
		if (memchr(v, ':', hlen)) {
			*why = "an IPv6 address goes in brackets: [ADDRESS]:PORT";
			return -EINVAL;
		}
		if (hlen > CONFIG_HOST_MAX) {
			*why = "the host name is longer than 253 bytes";
			return -EINVAL;
		}
		memcpy(a->host, v, hlen);
		a->host[hlen] = '\0';
	}
	if (hlen == 0) {
		*why = "no host before the port";
		return -EINVAL;
	}
	if (v6) {
		/* A link-local address may carry its interface: [fe80::1%eth0]:4556. */
		char addr[CONFIG_HOST_MAX + 1];
		struct in6_addr in6;
		snprintf(addr, sizeof(addr), "%s", a->host);
		char *zone = strchr(addr, '%');
		if (zone) {
			*zone++ = '\0';
			bool ok = *zone != '\0';
			for (const char *z = zone; *z; z++)
				ok = ok && host_char(*z);
			if (!ok) {
				*why = "not an interface name after '%'";
				return -EINVAL;
			}
		}
		if (inet_pton(AF_INET6, addr, &in6) != 1) {
			*why = "not an IPv6 address inside the brackets";
			return -EINVAL;
		}
	} else {
		bool numeric = true;
		for (const char *h = a->host; *h; h++) {
			if (!host_char(*h)) {
				*why = "not a host name: give letters, digits, '.', '-' and '_', "
				       "or an "
				       "IP address";
				return -EINVAL;
			}
			numeric = numeric && ((*h >= '0' && *h <= '9') || *h == '.');
		}
		struct in_addr in4;
		if (a->host[0] == '-' || a->host[0] == '.' || strstr(a->host, "..")) {
			*why = "not a host name: a label is empty or starts with '-'";
			return -EINVAL;
		}
		/* "10.0.0.300" is neither an IPv4 address nor a name a resolver would take. */
		if (numeric && inet_pton(AF_INET, a->host, &in4) != 1) {
			*why = "not an IPv4 address";
			return -EINVAL;
		}
	}
	uint64_t port;
	if (!parse_u64(colon + 1, strlen(colon + 1), &port) || port == 0 || port > 65535) {
		*why = "the port is not a number from 1 to 65535";
		return -EINVAL;
	}
	a->port = (uint16_t)port;
	snprintf(a->text, sizeof(a->text), "%s", v);
	return 0;
}

/* A duration in whole seconds, 1s to 65535s (the link keeps it in 16 bits): 30, 30s, 5m, 1h. */
static int parse_duration(const char *v, uint64_t *ms, const char **why)
{
	size_t len = strlen(v);
	uint64_t n, unit = 1;
	if (len && (v[len - 1] < '0' || v[len - 1] > '9')) {
		switch (v[len - 1]) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		default:
			*why = "not a duration: give a number with s, m, h or d (30s, 5m)";
			return -EINVAL;
		}
		len--;
	}
	if (!parse_u64(v, len, &n)) {
		*why = "not a duration: give a number with s, m, h or d (30s, 5m)";
		return -EINVAL;
	}
	if (n == 0 || n > 65535 / unit) {
		*why = "out of range: from 1s to 65535s (about 18h)";
		return -ERANGE;
	}
	*ms = n * unit * 1000;
	return 0;
}

/* A byte count like parse_size (relay/util.c): digits and an optional K, M, G or T (1024s). */
static int parse_bytes(const char *v, uint64_t *out)
{
	static const char units[] = "KMGT";
	size_t len = strlen(v);
	unsigned shift = 0;
	uint64_t n;
	if (len && (v[len - 1] < '0' || v[len - 1] > '9')) {
		char u = v[len - 1] >= 'a' ? (char)(v[len - 1] - 'a' + 'A') : v[len - 1];
		const char *p = memchr(units, u, 4);
		if (!p)
			return -EINVAL;
		shift = 10 * (unsigned)(p - units + 1);
		len--;
	}
	if (!parse_u64(v, len, &n) || n > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = n << shift;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* H:MM or HH:MM, 00:00 to 23:59, or 24:00 when it ends a window. Minutes after midnight. */
static bool parse_clock(const char *s, size_t len, bool end, uint16_t *out)
{
	uint64_t h, m;
	const char *colon = memchr(s, ':', len);
	if (!colon || colon == s || colon - s > 2 || s + len - colon != 3)
		return false;
	if (!parse_u64(s, (size_t)(colon - s), &h) || !parse_u64(colon + 1, 2, &m) || m > 59)
		return false;
	if (h > 23 && !(end && h == 24 && m == 0))
		return false;
	*out = (uint16_t)(h * 60 + m);
	return true;
}

static int parse_window(const char *v, struct config_window *w, const char **why)
{
	const char *dash = strchr(v, '-');
	*why = "not a window: give HH:MM-HH:MM in UTC (23:00-01:30 wraps midnight)";
	if (!dash)
		return -EINVAL;
	const char *a = v, *a_end = dash, *b = dash + 1;
	while (a_end > a && is_blank(a_end[-1]))
		a_end--;
	while (is_blank(*b))
		b++;
	if (!parse_clock(a, (size_t)(a_end - a), false, &w->start_min) ||
	    !parse_clock(b, strlen(b), true, &w->end_min))
		return -EINVAL;
	if (w->start_min == w->end_min) {
		*why = "starts where it ends: leave out window for a link that is always open, or "
		       "give 00:00-24:00";
		return -EINVAL;
	}
	return 0;
}

/* default, ipn:N or ipn:N.S (N > 0), or a name; kind and dest_node are filled. */
static int parse_dest(const char *v, struct config_route *rt)
{
	size_t vlen = strlen(v);
	if (vlen >= CONFIG_DEST_MAX)
		return -EINVAL;
	memcpy(rt->dest, v, vlen + 1);
	rt->dest_node = 0;
	if (!strcmp(v, "default")) {
		rt->kind = CONFIG_DEST_DEFAULT;
		return 0;
	}
	if (!strncmp(v, "ipn:", 4)) {
		const char *num = v + 4, *dot = strchr(num, '.');
		uint64_t node, service;
		size_t len = dot ? (size_t)(dot - num) : strlen(num);
		if (!parse_u64(num, len, &node) || node == 0 ||
		    (dot && !parse_u64(dot + 1, strlen(dot + 1), &service)))
			return -EINVAL;
		rt->kind = CONFIG_DEST_NODE;
		rt->dest_node = node;
		return 0;
	}
	if (!name_valid(v))
		return -EINVAL;
	rt->kind = CONFIG_DEST_NAME;
	return 0;
}

/* ---- sections and keys -------------------------------------------------------------------- */

static void key_list(char *out, size_t len, const char *const *keys, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", keys[i]);
}

static int index_of(const char *key, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(key, keys[i]))
			return (int)i;
	return -1;
}

/* A key that may appear once: records its first line, or reports the second. */
static int once(struct config_reader *r, unsigned *seen, const char *key)
{
	if (*seen)
		return fail(r, "%s: given twice (first at line %u)", key, *seen);
	*seen = r->line;
	return 0;
}

static int section_header(struct config_reader *r, char *s)
{
	char cut[64];
	size_t len = strlen(s);
	if (s[len - 1] != ']') {
		r->sec = SEC_SKIP;
		return fail(r, "%s: a section header ends with ']'", shown(s, cut));
	}
	s[len - 1] = '\0';
	char *inner = trim(s + 1);
	if (!strcmp(inner, "route")) {
		r->sec = SEC_ROUTE;
		return 0;
	}
	if (strncmp(inner, "peer", 4) || (inner[4] && !is_blank(inner[4]))) {
		r->sec = SEC_SKIP;
		return fail(r, "[%s]: unknown section; the sections are [peer NAME] and [route]",
			    shown(inner, cut));
	}
	const char *name = trim(inner + 4);
	r->sec = SEC_SKIP; /* the keys of a bad header are not checked against the wrong peer */
	if (!*name)
		return fail(r, "[peer]: a peer section needs a name: [peer NAME]");
	if (!name_valid(name))
		return fail(r, "[peer %s]: not a peer name: " NAME_RULE, shown(name, cut));
	struct config *c = r->c;
	for (size_t i = 0; i < c->n_peers; i++)
		if (!strcmp(c->peers[i].name, name))
			return fail(r,
				    "[peer %s]: a second section for this peer (the first at "
				    "line %u)",
				    name, c->peers[i].line);
	if (c->n_peers >= CONFIG_PEERS_MAX)
		return fail(r, "[peer %s]: more than %d peers", name, CONFIG_PEERS_MAX);
	if (grow((void **)&c->peers, &r->cap_peers, c->n_peers, sizeof(*c->peers)) < 0) {
		r->nomem = true;
		return -ENOMEM;
	}
	struct config_peer *p = &c->peers[c->n_peers];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->line = r->line;
	p->min_priority = STORE_BULK;
	serial_spec_default(&p->spec);
	hayes_params_default(&p->modem);
	p->sbd_retry_ms = CONFIG_SBD_RETRY_DEFAULT_MS;
	r->peer = c->n_peers++;
	memset(r->peer_seen, 0, sizeof(r->peer_seen));
	r->sec = SEC_PEER;
	return 0;
}

static int top_key(struct config_reader *r, const char *key, const char *v)
{
	struct config *c = r->c;
	char keys[256], cut[64];
	const char *why;
	int k = index_of(key, top_keys, N_TOP_KEYS);
	if (k < 0) {
		if (index_of(key, peer_keys, N_PEER_KEYS) >= 0)
			return fail(r, "%s: a peer's key, outside any [peer NAME] section", key);
		key_list(keys, sizeof(keys), top_keys, N_TOP_KEYS);
		return fail(r,
			    "%s: unknown key at the top level; the keys are %s, then the "
			    "sections [peer NAME] and [route]",
			    shown(key, cut), keys);
	}
	if (k == TOP_LISTEN) {
		struct config_addr a;
		if (config_addr_parse(v, &a, &why) < 0)
			return fail(r, "listen: %s: %s", shown(v, cut), why);
		if (c->n_listens >= CONFIG_LISTEN_MAX)
			return fail(r, "listen: more than %d addresses", CONFIG_LISTEN_MAX);
		for (size_t i = 0; i < c->n_listens; i++)
			if (!strcmp(c->listens[i].host, a.host) && c->listens[i].port == a.port)
				return fail(r, "listen: %s given twice (first at line %u)", v,
					    c->listens[i].line);
		if (grow((void **)&c->listens, &r->cap_listens, c->n_listens, sizeof(*c->listens)) <
		    0) {
			r->nomem = true;
			return -ENOMEM;
		}
		a.line = r->line;
		c->listens[c->n_listens++] = a;
		return 0;
	}
	int ret = once(r, &r->top_seen[k], key);
	if (ret < 0)
		return ret;
	if (k == TOP_KEEPALIVE) {
		if (parse_duration(v, &c->keepalive_ms, &why) < 0)
			return fail(r, "keepalive: %s: %s", shown(v, cut), why);
		return 0;
	}
	int l = index_of(v, log_level_names, 4);
	if (l < 0)
		return fail(r, "log-level: %s: give error, warn, info or debug", shown(v, cut));
	c->log_level = (enum config_log_level)l;
	return 0;
}

/* The keys of a Hayes modem on the peer's serial line. */
static int modem_key(struct config_reader *r, struct config_peer *p, int k, const char *v)
{
	struct hayes_params *m = &p->modem;
	char cut[64];
	const char *why;
	uint64_t ms;
	if (!p->modem_line)
		p->modem_line = r->line;
	switch (k) {
	case PEER_DIAL:
		if (!hayes_check_dial(v, &why))
			return fail(r, "dial: %s: %s", shown(v, cut), why);
		snprintf(m->dial, sizeof(m->dial), "%s", v);
		return 0;
	case PEER_ANSWER:
		if (parse_bool(v, &m->answer) < 0)
			return fail(r, "answer: %s: give yes or no", shown(v, cut));
		return 0;
	case PEER_MODEM_INIT:
		if (!hayes_check_init(v, &why))
			return fail(r, "modem-init: %s: %s", shown(v, cut), why);
		if (m->n_init >= HAYES_INIT_MAX)
			return fail(r, "modem-init: more than %d init strings", HAYES_INIT_MAX);
		snprintf(m->init[m->n_init++], sizeof(m->init[0]), "%s", v);
		return 0;
	default:
		if (parse_duration(v, &ms, &why) < 0)
			return fail(r, "%s: %s: %s", k == PEER_REDIAL ? "redial" : "idle-hangup",
				    shown(v, cut), why);
		if (k == PEER_REDIAL)
			m->redial_ms = (uint32_t)ms;
		else
			m->idle_ms = (uint32_t)ms;
		return 0;
	}
}

static int peer_key(struct config_reader *r, const char *key, const char *v)
{
	struct config *c = r->c;
	struct config_peer *p = &c->peers[r->peer];
	char keys[256], cut[64];
	const char *why;
	int k = index_of(key, peer_keys, N_PEER_KEYS);
	if (k < 0) {
		if (index_of(key, top_keys, N_TOP_KEYS) >= 0)
			return fail(r,
				    "%s: not a key of [peer %s]; top-level settings go before the "
				    "first section",
				    key, p->name);
		key_list(keys, sizeof(keys), peer_keys, N_PEER_KEYS);
		return fail(r, "%s: unknown key in [peer %s]; the keys are %s", shown(key, cut),
			    p->name, keys);
	}
	if (k != PEER_ADDR && k != PEER_WINDOW && k != PEER_MODEM_INIT) {
		int ret = once(r, &r->peer_seen[k], key);
		if (ret < 0)
			return ret;
	}
	switch (k) {
	case PEER_ID: {
		struct identity_public pub;
		if (identity_public_decode(v, &pub, &why) < 0)
			return fail(r, "id: not a valid identity string: %s", why);
		for (size_t i = 0; i < c->n_peers; i++)
			if (i != r->peer && c->peers[i].has_id &&
			    !memcmp(c->peers[i].id.sign_pk, pub.sign_pk, sizeof(pub.sign_pk)))
				return fail(r, "id: the same identity as [peer %s] (line %u)",
					    c->peers[i].name, c->peers[i].id_line);
		p->id = pub;
		p->has_id = true;
		p->id_line = r->line;
		return 0;
	}
	case PEER_ADDR: {
		struct config_addr a;
		if (config_addr_parse(v, &a, &why) < 0)
			return fail(r, "addr: %s: %s", shown(v, cut), why);
		if (p->n_addrs >= CONFIG_ADDRS_MAX)
			return fail(r, "addr: more than %d addresses for one peer",
				    CONFIG_ADDRS_MAX);
		a.line = r->line;
		p->addrs[p->n_addrs++] = a;
		return 0;
	}
	case PEER_SNEAKERNET:
		if (parse_bool(v, &p->sneakernet) < 0)
			return fail(r, "sneakernet: %s: give yes or no", shown(v, cut));
		p->sneakernet_set = true;
		return 0;
	case PEER_MIN_PRIORITY: {
		int pr = index_of(v, priority_names, 3);
		if (pr < 0)
			return fail(r, "min-priority: %s: give bulk, normal or urgent",
				    shown(v, cut));
		p->min_priority = (enum store_priority)pr;
		return 0;
	}
	case PEER_BYTES_PER_DAY:
		if (parse_bytes(v, &p->bytes_per_day) < 0)
			return fail(r,
				    "bytes-per-day: %s: give a byte count with an optional K, M, "
				    "G or T (50M); 0 for no cap",
				    shown(v, cut));
		return 0;
	case PEER_COST: {
		/* Money is counted in millionths: exact for any price with up to 6 decimals. */
		uint64_t whole = 0, frac = 0, scale = 1000000;
		const char *q = v;
		unsigned digits = 0;
		for (; *q >= '0' && *q <= '9' && whole < 1000000000; digits++)
			whole = whole * 10 + (uint64_t)(*q++ - '0');
		if (*q == '.')
			for (q++; *q >= '0' && *q <= '9' && scale > 1; q++, digits++)
				frac += (uint64_t)(*q - '0') * (scale /= 10);
		if (!digits || *q || whole >= 1000000000)
			return fail(r,
				    "cost-per-mib: %s: give what a MiB on this link costs, as a "
				    "number with up to 6 decimals (0.75), in any currency",
				    shown(v, cut));
		p->cost_micro_per_mib = whole * 1000000 + frac;
		return 0;
	}
	case PEER_SERIAL:
	case PEER_BAUD:
	case PEER_FRAMING:
	case PEER_PARITY:
	case PEER_FLOW: {
		bool ok = k == PEER_SERIAL    ? serial_spec_set_path(&p->spec, v, &why)
			  : k == PEER_BAUD    ? serial_spec_set_baud(&p->spec, v, &why)
			  : k == PEER_FRAMING ? serial_spec_set_framing(&p->spec, v, &why)
			  : k == PEER_PARITY  ? serial_spec_set_parity(&p->spec, v, &why)
					      : serial_spec_set_flow(&p->spec, v, &why);
		if (!ok)
			return fail(r, "%s: %s: %s", key, shown(v, cut), why);
		if (k == PEER_SERIAL)
			p->serial_line = r->line;
		else if (!p->spec_line)
			p->spec_line = r->line;
		if (k == PEER_FRAMING)
			p->framing_line = r->line;
		else if (k == PEER_PARITY)
			p->parity_line = r->line;
		else if (k == PEER_FLOW)
			p->flow_line = r->line;
		return 0;
	}
	case PEER_SBD:
		if (!serial_spec_set_path(&p->spec, v, &why))
			return fail(r, "sbd: %s: %s", shown(v, cut), why);
		p->sbd_line = r->line;
		return 0;
	case PEER_SBD_CHECK:
	case PEER_SBD_RETRY: {
		uint64_t ms;
		if (parse_duration(v, &ms, &why) < 0)
			return fail(r, "%s: %s: %s", key, shown(v, cut), why);
		if (k == PEER_SBD_CHECK) {
			p->sbd_check_ms = (uint32_t)ms;
			p->sbd_check_line = r->line;
		} else {
			p->sbd_retry_ms = (uint32_t)ms;
			p->sbd_retry_line = r->line;
		}
		return 0;
	}
	case PEER_DIAL:
	case PEER_ANSWER:
	case PEER_MODEM_INIT:
	case PEER_IDLE_HANGUP:
	case PEER_REDIAL:
		return modem_key(r, p, k, v);
	default: {
		struct config_window w;
		if (parse_window(v, &w, &why) < 0)
			return fail(r, "window: %s: %s", shown(v, cut), why);
		if (p->n_windows >= CONFIG_WINDOWS_MAX)
			return fail(r, "window: more than %d windows for one peer",
				    CONFIG_WINDOWS_MAX);
		w.line = r->line;
		p->windows[p->n_windows++] = w;
		return 0;
	}
	}
}

static int route_key(struct config_reader *r, const char *key, const char *v)
{
	struct config *c = r->c;
	struct config_route rt = {0};
	char cut[64];
	if (parse_dest(key, &rt) < 0)
		return fail(r,
			    "%s: not a destination: give default, ipn:N or a contact or peer name",
			    shown(key, cut));
	if (!name_valid(v))
		return fail(r, "%s = %s: the next hop is not a peer name: " NAME_RULE, key,
			    shown(v, cut));
	if (rt.kind == CONFIG_DEST_NAME && !strcmp(rt.dest, v))
		return fail(r, "%s = %s: a peer is reached directly; it needs no route", key, v);
	if (c->n_routes >= CONFIG_ROUTES_MAX) {
		if (r->routes_full)
			return -EINVAL; /* one error says it; 10,000 more would hide the others */
		r->routes_full = true;
		return fail(r, "%s: more than %d routes; this one and the rest are not read", key,
			    CONFIG_ROUTES_MAX);
	}
	if (grow((void **)&c->routes, &r->cap_routes, c->n_routes, sizeof(*c->routes)) < 0) {
		r->nomem = true;
		return -ENOMEM;
	}
	snprintf(rt.via, sizeof(rt.via), "%s", v);
	rt.line = r->line;
	c->routes[c->n_routes++] = rt;
	return 0;
}

/* ---- the reader --------------------------------------------------------------------------- */

int config_read_init(struct config_reader **out)
{
	struct config_reader *r = calloc(1, sizeof(*r));
	struct config *c = calloc(1, sizeof(*c));
	if (!r || !c) {
		free(r);
		free(c);
		return -ENOMEM;
	}
	c->keepalive_ms = CONFIG_KEEPALIVE_DEFAULT_MS;
	c->log_level = CONFIG_LOG_INFO;
	r->c = c;
	r->sec = SEC_TOP;
	*out = r;
	return 0;
}

/* Counts a line's bytes against the file's limit. */
static int count_bytes(struct config_reader *r, uint64_t len)
{
	r->bytes += len;
	if (r->bytes <= CONFIG_FILE_MAX)
		return 0;
	r->too_big = true;
	fail(r, "the file is longer than %u MiB; the rest is not read", CONFIG_FILE_MAX >> 20);
	return r->nomem ? -ENOMEM : -EFBIG;
}

/*
 * A line longer than CONFIG_LINE_MAX, of which config_load keeps only the length: total
 * bytes with its newline, len without.
 */
static int read_long_line(struct config_reader *r, uint64_t total, uint64_t len)
{
	if (r->nomem)
		return -ENOMEM;
	if (r->too_big)
		return -EFBIG;
	r->line++;
	int ret = count_bytes(r, total);
	if (ret < 0)
		return ret;
	return fail(r, "the line is %" PRIu64 " bytes long; at most %d", len, CONFIG_LINE_MAX);
}

int config_read_line(struct config_reader *r, const char *line, size_t len)
{
	char cut[64];
	if (r->nomem)
		return -ENOMEM;
	if (r->too_big)
		return -EFBIG;
	r->line++;
	int ret = count_bytes(r, len);
	if (ret < 0)
		return ret;
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CONFIG_LINE_MAX)
		return fail(r, "the line is %zu bytes long; at most %d", len, CONFIG_LINE_MAX);
	/* Some editors start a UTF-8 file with a byte order mark. */
	if (r->line == 1 && len >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) {
		line += 3;
		len -= 3;
	}
	const char *hash = memchr(line, '#', len);
	if (hash)
		len = (size_t)(hash - line);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch >= 0x80)
			return fail(r,
				    "byte 0x%02x outside a comment: only ASCII means something "
				    "there",
				    ch);
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(r, "control character 0x%02x in the line", ch);
	}
	memcpy(r->buf, line, len);
	r->buf[len] = '\0';
	char *s = trim(r->buf);
	if (!*s)
		return 0;
	if (*s == '[')
		return section_header(r, s);
	char *eq = strchr(s, '=');
	if (!eq)
		return fail(r, "%s: no '=': write key = value", shown(s, cut));
	*eq = '\0';
	char *key = trim(s), *v = trim(eq + 1);
	if (!*key)
		return fail(r, "no key before '='");
	if (!*v)
		return fail(r, "%s: no value after '='", shown(key, cut));
	switch (r->sec) {
	case SEC_TOP:
		return top_key(r, key, v);
	case SEC_PEER:
		return peer_key(r, key, v);
	case SEC_ROUTE:
		return route_key(r, key, v);
	default:
		return 0; /* under a bad header, already reported */
	}
}

/* qsort has no context argument in C17; a parse runs on one thread, so these do. */
static const struct config_peer *sort_peers;

static int by_peer_name(const void *a, const void *b)
{
	return strcmp(sort_peers[*(const size_t *)a].name, sort_peers[*(const size_t *)b].name);
}

static const struct config_route *sort_routes;

static bool same_dest(const struct config_route *x, const struct config_route *y)
{
	return x->kind == y->kind && x->dest_node == y->dest_node &&
	       (x->kind != CONFIG_DEST_NAME || !strcmp(x->dest, y->dest));
}

/* Orders routes by destination, then by line, so that a duplicate follows its first. */
static int by_dest(const void *a, const void *b)
{
	const struct config_route *x = &sort_routes[*(const size_t *)a];
	const struct config_route *y = &sort_routes[*(const size_t *)b];
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->dest_node != y->dest_node)
		return x->dest_node < y->dest_node ? -1 : 1;
	int d = x->kind == CONFIG_DEST_NAME ? strcmp(x->dest, y->dest) : 0;
	if (d)
		return d;
	return x->line < y->line ? -1 : x->line > y->line;
}

static const struct config_error *sort_errors;

static int by_line(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	unsigned x = sort_errors[i].line, y = sort_errors[j].line;
	if (x != y)
		return x < y ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* Finds a peer by name in the sorted index. */
static const struct config_peer *find_sorted(const struct config *c, const size_t *idx,
					     const char *name, size_t *at)
{
	size_t lo = 0, hi = c->n_peers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(name, c->peers[idx[mid]].name);
		if (d == 0) {
			*at = idx[mid];
			return &c->peers[idx[mid]];
		}
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* The checks that need the whole file: each via is a [peer] here, no destination twice. */
static int check_routes(struct config_reader *r)
{
	struct config *c = r->c;
	size_t n = c->n_peers > c->n_routes ? c->n_peers : c->n_routes;
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_peers; i++)
		idx[i] = i;
	sort_peers = c->peers;
	qsort(idx, c->n_peers, sizeof(*idx), by_peer_name);
	for (size_t i = 0; i < c->n_routes; i++) {
		struct config_route *rt = &c->routes[i];
		const struct config_peer *via = find_sorted(c, idx, rt->via, &rt->via_peer), *dp;
		size_t at;
		if (!via) {
			fail_at(r, rt->line,
				"%s = %s: no [peer %s] in this file (for a peer added with `tern "
				"peer add`, an empty [peer %s] section will do)",
				rt->dest, rt->via, rt->via, rt->via);
			continue;
		}
		if (rt->kind == CONFIG_DEST_NAME && (dp = find_sorted(c, idx, rt->dest, &at)) &&
		    dp->has_id) {
			rt->kind = CONFIG_DEST_NODE;
			rt->dest_node = identity_node_number(dp->id.sign_pk);
		}
		if (rt->kind == CONFIG_DEST_NODE && via->has_id &&
		    rt->dest_node == identity_node_number(via->id.sign_pk))
			fail_at(r, rt->line,
				"%s = %s: that is the node of [peer %s] itself; a peer is reached "
				"directly and needs no route",
				rt->dest, rt->via, rt->via);
	}
	for (size_t i = 0; i < c->n_routes; i++)
		idx[i] = i;
	sort_routes = c->routes;
	qsort(idx, c->n_routes, sizeof(*idx), by_dest);
	/* Equal destinations sort together, earliest line first: name it in each later one. */
	const struct config_route *first = c->n_routes ? &c->routes[idx[0]] : NULL;
	for (size_t i = 1; i < c->n_routes; i++) {
		const struct config_route *b = &c->routes[idx[i]];
		if (!same_dest(first, b))
			first = b;
		else
			fail_at(r, b->line,
				"%s: a second route for this destination (the first, %s, at line "
				"%u)",
				b->dest, first->dest, first->line);
	}
	free(idx);
	return r->nomem ? -ENOMEM : 0;
}

/* Puts the errors in line order: those found at the end belong among the others. */
static int sort_errs(struct config *c)
{
	if (c->n_errors < 2)
		return 0;
	size_t *idx = malloc(c->n_errors * sizeof(*idx));
	struct config_error *e = malloc(c->n_errors * sizeof(*e));
	if (!idx || !e) {
		free(idx);
		free(e);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_errors; i++)
		idx[i] = i;
	sort_errors = c->errors;
	qsort(idx, c->n_errors, sizeof(*idx), by_line);
	for (size_t i = 0; i < c->n_errors; i++)
		e[i] = c->errors[idx[i]];
	free(c->errors);
	c->errors = e;
	free(idx);
	return 0;
}

/*
 * A line's settings without the line, or a line and addresses both: said, by line. So is
 * every key that would have no effect (and that config show would leave out): the file
 * says what the daemon does, or it does not check.
 */
static void check_serial(struct config_reader *r)
{
	struct config *c = r->c;
	for (size_t i = 0; i < c->n_peers; i++) {
		struct config_peer *p = &c->peers[i];
		if (p->sbd_line) {
			const char *other = p->serial_line  ? "a serial line (serial)"
					    : p->n_addrs    ? "TCP (addr)"
					    : p->modem_line ? "a Hayes modem (dial, answer...)"
							    : NULL;
			if (other) {
				fail_at(r, p->sbd_line,
					"[peer %s]: a peer is reached over an SBD modem or %s, not "
					"both",
					p->name, other);
				continue;
			}
			const unsigned lines[3] = {p->framing_line, p->parity_line, p->flow_line};
			static const char *const keys[3] = {"framing", "parity", "flow"};
			bool ok = true;
			for (size_t k = 0; k < 3; k++) {
				if (!lines[k])
					continue;
				fail_at(
				    r, lines[k],
				    "%s: an SBD modem's port (sbd = at line %u) takes only baud; "
				    "framing, parity and flow are for serial = lines",
				    keys[k], p->sbd_line);
				ok = false;
			}
			if (ok)
				serial_spec_format(&p->spec, p->sbd, sizeof(p->sbd));
			continue;
		}
		if (p->sbd_check_line)
			fail_at(r, p->sbd_check_line,
				"sbd-check: needs sbd = DEVICE in this [peer %s] section", p->name);
		if (p->sbd_retry_line)
			fail_at(r, p->sbd_retry_line,
				"sbd-retry: needs sbd = DEVICE in this [peer %s] section", p->name);
		if (!p->serial_line && p->modem_line)
			fail_at(
			    r, p->modem_line,
			    "[peer %s]: dial, answer, modem-init, idle-hangup and redial set up a "
			    "modem on a serial line: give its device with serial = PATH",
			    p->name);
		else if (p->modem_line && !p->modem.dial[0] && !p->modem.answer)
			fail_at(
			    r, p->modem_line,
			    "[peer %s]: a modem that neither dials nor answers carries nothing: "
			    "give dial = NUMBER, answer = yes, or both",
			    p->name);
		if (!p->serial_line && p->spec_line)
			fail_at(r, p->spec_line,
				"[peer %s]: baud, framing, parity and flow set up a serial line: "
				"give its device with serial = PATH",
				p->name);
		else if (p->serial_line && p->n_addrs)
			fail_at(
			    r, p->serial_line,
			    "[peer %s]: a peer is reached over TCP (addr) or a serial line, not "
			    "both",
			    p->name);
		else if (p->serial_line)
			serial_spec_format(&p->spec, p->serial, sizeof(p->serial));
	}
}

int config_read_finish(struct config_reader *r, struct config **out)
{
	struct config *c = r->c;
	if (!r->nomem)
		check_serial(r);
	int ret = r->nomem ? -ENOMEM : check_routes(r);
	if (ret == 0)
		ret = sort_errs(c);
	c->lines = r->line;
	free(r);
	if (ret < 0) {
		config_free(c);
		*out = NULL;
		return ret;
	}
	*out = c;
	if (c->n_errors == 0 && c->n_errors_dropped == 0)
		return 0;
	/* A config with errors carries only them: no half of a file for a daemon to run with. */
	free(c->listens);
	free(c->peers);
	free(c->routes);
	c->listens = NULL;
	c->peers = NULL;
	c->routes = NULL;
	c->n_listens = c->n_peers = c->n_routes = 0;
	return -EINVAL;
}

/* ---- files -------------------------------------------------------------------------------- */

int config_load(const char *path, struct config **out)
{
	struct config_reader *r;
	struct stat st;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		/* A fifo or a device could block or never end; tern.conf is a plain file. */
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	int ret = config_read_init(&r);
	if (ret < 0) {
		fclose(f);
		return ret;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fail_at(r, 0,
			"writable by group or others: whoever can write it can add peers "
			"(chmod go-w)");
	/* Lines are read into a fixed buffer: a 16 MiB line costs no more memory than a short one.
	 */
	static const size_t cap = CONFIG_LINE_MAX + 2; /* the line, "\r\n" */
	char *buf = malloc(cap);
	bool io_error = false;
	if (!buf) {
		r->nomem = true;
	} else {
		for (;;) {
			size_t n = 0;
			uint64_t total = 0;
			int ch = EOF;
			while ((ch = getc(f)) != EOF) {
				if (n < cap)
					buf[n++] = (char)ch;
				total++;
				if (ch == '\n')
					break;
			}
			if (total == 0)
				break;
			int err = total > n ? read_long_line(r, total, total - (ch == '\n'))
					    : config_read_line(r, buf, n);
			if (err == -EFBIG || err == -ENOMEM || ch == EOF)
				break;
		}
		io_error = ferror(f);
		if (io_error)
			fail_at(r, 0, "cannot read the file: %s", strerror(EIO));
	}
	free(buf);
	fclose(f);
	ret = config_read_finish(r, out);
	return io_error && ret != -ENOMEM ? -EIO : ret;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->listens);
	free(c->peers);
	free(c->routes);
	free(c->errors);
	free(c);
}

/* ---- output and helpers ------------------------------------------------------------------- */

const struct config_peer *config_peer_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_peers; i++)
		if (!strcmp(c->peers[i].name, name))
			return &c->peers[i];
	return NULL;
}

const char *config_log_level_name(enum config_log_level l)
{
	return (unsigned)l < 4 ? log_level_names[l] : "unknown";
}

void config_window_format(const struct config_window *w, char out[static 12])
{
	snprintf(out, 12, "%02u:%02u-%02u:%02u", (unsigned)(w->start_min / 60 % 100),
		 (unsigned)(w->start_min % 60), (unsigned)(w->end_min / 60 % 100),
		 (unsigned)(w->end_min % 60));
}

static void print_duration(FILE *f, uint64_t ms)
{
	uint64_t s = ms / 1000;
	if (s % 86400 == 0)
		fprintf(f, "%" PRIu64 "d", s / 86400);
	else if (s % 3600 == 0)
		fprintf(f, "%" PRIu64 "h", s / 3600);
	else if (s % 60 == 0)
		fprintf(f, "%" PRIu64 "m", s / 60);
	else
		fprintf(f, "%" PRIu64 "s", s);
}

static void print_bytes(FILE *f, uint64_t v)
{
	static const char units[] = "KMGT";
	int u = 0;
	while (u < 4 && v && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	fprintf(f, "%" PRIu64, v);
	if (u)
		fputc(units[u - 1], f);
}

void config_print(const struct config *c, FILE *f)
{
	char idstr[IDENTITY_STRING_MAX + 1], win[12];
	for (size_t i = 0; i < c->n_listens; i++)
		fprintf(f, "listen = %s\n", c->listens[i].text);
	fprintf(f, "keepalive = ");
	print_duration(f, c->keepalive_ms);
	fprintf(f, "\nlog-level = %s\n", config_log_level_name(c->log_level));
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct config_peer *p = &c->peers[i];
		fprintf(f, "\n[peer %s]\n", p->name);
		if (p->has_id) {
			identity_public_encode(&p->id, idstr, sizeof(idstr));
			fprintf(f, "id = %s\n", idstr);
		}
		for (size_t j = 0; j < p->n_addrs; j++)
			fprintf(f, "addr = %s\n", p->addrs[j].text);
		if (p->sneakernet_set)
			fprintf(f, "sneakernet = %s\n", p->sneakernet ? "yes" : "no");
		fprintf(f, "min-priority = %s\nbytes-per-day = ",
			(unsigned)p->min_priority < 3 ? priority_names[p->min_priority] : "bulk");
		print_bytes(f, p->bytes_per_day);
		fputc('\n', f);
		for (size_t j = 0; j < p->n_windows; j++) {
			config_window_format(&p->windows[j], win);
			fprintf(f, "window = %s\n", win);
		}
		if (p->cost_micro_per_mib)
			fprintf(f, "cost-per-mib = %" PRIu64 ".%06" PRIu64 "\n",
				p->cost_micro_per_mib / 1000000, p->cost_micro_per_mib % 1000000);
		if (p->serial[0])
			fprintf(f, "serial = %s\nbaud = %u\nframing = %u%c%u\nflow = %s\n",
				p->spec.path, (unsigned)p->spec.baud, (unsigned)p->spec.data_bits,
				p->spec.parity, (unsigned)p->spec.stop_bits,
				p->spec.flow == SERIAL_FLOW_RTSCTS   ? "rtscts"
				: p->spec.flow == SERIAL_FLOW_DTRDSR ? "dtrdsr"
								     : "none");
		if (p->sbd[0]) {
			fprintf(f, "sbd = %s\nbaud = %u\nsbd-retry = ", p->spec.path,
				(unsigned)p->spec.baud);
			print_duration(f, p->sbd_retry_ms);
			fputc('\n', f);
			if (p->sbd_check_ms) {
				fprintf(f, "sbd-check = ");
				print_duration(f, p->sbd_check_ms);
				fputc('\n', f);
			}
		}
		if (p->modem_line) {
			if (p->modem.dial[0])
				fprintf(f, "dial = %s\n", p->modem.dial);
			fprintf(f, "answer = %s\n", p->modem.answer ? "yes" : "no");
			for (size_t j = 0; j < p->modem.n_init; j++)
				fprintf(f, "modem-init = %s\n", p->modem.init[j]);
			fprintf(f, "idle-hangup = ");
			print_duration(f, p->modem.idle_ms);
			fprintf(f, "\nredial = ");
			print_duration(f, p->modem.redial_ms);
			fputc('\n', f);
		}
	}
	if (c->n_routes)
		fprintf(f, "\n[route]\n");
	for (size_t i = 0; i < c->n_routes; i++)
		fprintf(f, "%s = %s\n", c->routes[i].dest, c->routes[i].via);
}

/* ---- contact windows ---------------------------------------------------------------------- */

static bool window_has(const struct config_window *w, uint64_t t)
{
	uint64_t s = w->start_min * 60000ull, e = w->end_min * 60000ull;
	return s < e ? t >= s && t < e : t >= s || t < e;
}

bool config_window_open(const struct config_peer *p, uint64_t unix_ms)
{
	uint64_t t = unix_ms % DAY_MS;
	if (p->n_windows == 0)
		return true;
	for (size_t i = 0; i < p->n_windows; i++)
		if (window_has(&p->windows[i], t))
			return true;
	return false;
}

uint64_t config_window_next_open(const struct config_peer *p, uint64_t unix_ms)
{
	uint64_t t = unix_ms % DAY_MS, best = UINT64_MAX;
	if (config_window_open(p, unix_ms))
		return 0;
	for (size_t i = 0; i < p->n_windows; i++) {
		uint64_t s = p->windows[i].start_min * 60000ull;
		uint64_t wait = (s + DAY_MS - t) % DAY_MS;
		if (wait < best)
			best = wait;
	}
	return best;
}

uint64_t config_window_next_close(const struct config_peer *p, uint64_t unix_ms)
{
	uint64_t t = unix_ms % DAY_MS, elapsed = 0;
	if (p->n_windows == 0)
		return UINT64_MAX;
	/* Hop from the end of one open window to the next that holds that moment. */
	for (size_t hops = 0; hops <= 2 * CONFIG_WINDOWS_MAX + 1; hops++) {
		uint64_t step = 0;
		for (size_t i = 0; i < p->n_windows; i++) {
			const struct config_window *w = &p->windows[i];
			if (!window_has(w, t))
				continue;
			uint64_t e = w->end_min * 60000ull;
			uint64_t left = e > t ? e - t : DAY_MS - t + e;
			if (left > step)
				step = left;
		}
		if (step == 0)
			return elapsed;
		elapsed += step;
		if (elapsed >= DAY_MS)
			return UINT64_MAX;
		t = (t + step) % DAY_MS;
	}
	return UINT64_MAX;
}

void config_peer_to_store(const struct config_peer *p, uint64_t now_unix_ms, struct store_peer *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", p->name);
	memcpy(out->sign_pk, p->id.sign_pk, sizeof(out->sign_pk));
	memcpy(out->box_pk, p->id.box_pk, sizeof(out->box_pk));
	memcpy(out->cert, p->id.cert, sizeof(out->cert));
	out->epoch = p->id.epoch;
	out->node = identity_node_number(p->id.sign_pk);
	out->added_unix_ms = now_unix_ms;
	out->links = (p->n_addrs ? STORE_LINK_TCP : 0u) |
		     (p->sneakernet_set && p->sneakernet ? STORE_LINK_SNEAKERNET : 0u);
	if (p->n_addrs)
		snprintf(out->addr, sizeof(out->addr), "%s", p->addrs[0].text);
}
