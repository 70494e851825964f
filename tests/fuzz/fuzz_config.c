/* Fuzz target: arbitrary bytes as tern.conf; a good file must print and parse back to itself. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/config.h"

#define DAY_MS (24ull * 3600 * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse(const char *data, size_t size, struct config **out)
{
	struct config_reader *r;
	if (config_read_init(&r) < 0)
		abort();
	size_t off = 0;
	while (off < size) {
		const char *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) + 1 : size - off;
		int ret = config_read_line(r, data + off, len);
		if (ret != 0 && ret != -EINVAL && ret != -EFBIG && ret != -ENOMEM)
			abort();
		if (ret == -EFBIG || ret == -ENOMEM)
			break;
		off += len;
	}
	return config_read_finish(r, out);
}

/* The windows agree with each other at a few moments of the day. */
static void check_windows(const struct config_peer *p, uint64_t seed)
{
	for (uint64_t k = 0; k < 8; k++) {
		uint64_t t = 1700000000000ull + (seed * 7919 + k * 10799999) % DAY_MS;
		bool open = config_window_open(p, t);
		uint64_t wait = config_window_next_open(p, t);
		uint64_t left = config_window_next_close(p, t);
		if ((wait == 0) != open || wait >= DAY_MS)
			abort();
		if (!open && (left != 0 || !config_window_open(p, t + wait) ||
			      config_window_open(p, t + wait - 1)))
			abort();
		if (open && left != UINT64_MAX &&
		    (left == 0 || config_window_open(p, t + left) ||
		     !config_window_open(p, t + left - 1)))
			abort();
	}
}

static void check_good(const struct config *c)
{
	if (c->n_errors || c->n_errors_dropped || c->n_listens > CONFIG_LISTEN_MAX ||
	    c->n_peers > CONFIG_PEERS_MAX || c->n_routes > CONFIG_ROUTES_MAX)
		abort();
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct config_peer *p = &c->peers[i];
		if (!p->name[0] || p->n_addrs > CONFIG_ADDRS_MAX ||
		    p->n_windows > CONFIG_WINDOWS_MAX || config_peer_find(c, p->name) != p)
			abort();
		for (size_t j = 0; j < p->n_addrs; j++)
			if (p->addrs[j].port == 0 || !p->addrs[j].host[0])
				abort();
		for (size_t j = 0; j < p->n_windows; j++)
			if (p->windows[j].start_min >= 1440 || p->windows[j].end_min > 1440 ||
			    p->windows[j].start_min == p->windows[j].end_min)
				abort();
		check_windows(p, i);
	}
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct config_route *r = &c->routes[i];
		if (r->via_peer >= c->n_peers || strcmp(c->peers[r->via_peer].name, r->via) ||
		    (r->kind == CONFIG_DEST_NODE) != (r->dest_node != 0))
			abort();
	}
}

static bool same(const struct config *a, const struct config *b)
{
	if (a->n_listens != b->n_listens || a->n_peers != b->n_peers ||
	    a->n_routes != b->n_routes || a->keepalive_ms != b->keepalive_ms ||
	    a->log_level != b->log_level)
		return false;
	for (size_t i = 0; i < a->n_listens; i++)
		if (strcmp(a->listens[i].text, b->listens[i].text) ||
		    a->listens[i].port != b->listens[i].port)
			return false;
	for (size_t i = 0; i < a->n_peers; i++) {
		const struct config_peer *p = &a->peers[i], *q = &b->peers[i];
		if (strcmp(p->name, q->name) || p->has_id != q->has_id ||
		    (p->has_id && memcmp(&p->id, &q->id, sizeof(p->id))) ||
		    p->n_addrs != q->n_addrs || p->n_windows != q->n_windows ||
		    p->sneakernet_set != q->sneakernet_set || p->sneakernet != q->sneakernet ||
		    p->min_priority != q->min_priority || p->bytes_per_day != q->bytes_per_day)
			return false;
		for (size_t j = 0; j < p->n_addrs; j++)
			if (strcmp(p->addrs[j].host, q->addrs[j].host) ||
			    p->addrs[j].port != q->addrs[j].port)
				return false;
		for (size_t j = 0; j < p->n_windows; j++)
			if (p->windows[j].start_min != q->windows[j].start_min ||
			    p->windows[j].end_min != q->windows[j].end_min)
				return false;
	}
	for (size_t i = 0; i < a->n_routes; i++) {
		const struct config_route *r = &a->routes[i], *s = &b->routes[i];
		if (r->kind != s->kind || r->dest_node != s->dest_node ||
		    strcmp(r->dest, s->dest) || strcmp(r->via, s->via) ||
		    r->via_peer != s->via_peer)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct config *c, *again;
	if (!ready) {
		if (tern_crypto_init() != 0)
			abort();
		ready = true;
	}
	int ret = parse((const char *)data, size, &c);
	if (ret == -ENOMEM)
		return 0;
	if (!c || (ret != 0 && ret != -EINVAL))
		abort();
	if (ret == -EINVAL) {
		/* Errors only: each with a line of the file and a message, and no settings. */
		if (c->n_errors == 0 || c->n_peers || c->n_routes || c->n_listens)
			abort();
		for (size_t i = 0; i < c->n_errors; i++)
			if (c->errors[i].line == 0 || c->errors[i].line > c->lines ||
			    !c->errors[i].msg[0] || !memchr(c->errors[i].msg, 0, CONFIG_MSG_MAX) ||
			    (i && c->errors[i].line < c->errors[i - 1].line))
				abort();
		config_free(c);
		return 0;
	}
	check_good(c);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		abort();
	config_print(c, f);
	fclose(f);
	if (parse(out, len, &again) != 0 || !same(c, again))
		abort();
	config_free(again);
	free(out);
	config_free(c);
	return 0;
}
