/* tern queue: the bundles waiting for a next hop, urgent first. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"

struct by_node {
	uint64_t node;
	char name[STORE_NAME_MAX + 1];
};

static int match_node(void *ctx, const struct store_contact *c)
{
	struct by_node *b = ctx;
	if (c->node != b->node)
		return 0;
	snprintf(b->name, sizeof(b->name), "%s", c->name);
	return 1;
}

/* The contact a bundle is for, or its node number when it is someone else's bundle. */
static void dest_label(struct node *n, uint64_t node, char *out, size_t len)
{
	struct by_node b = {.node = node};
	if (node && store_contact_foreach(n->store, match_node, &b) == 1)
		snprintf(out, len, "%s", b.name);
	else if (node)
		snprintf(out, len, "ipn:%" PRIu64, node);
	else
		snprintf(out, len, "dtn:");
}

struct queue_list {
	struct node *n;
	bool json;
	int count;
	uint64_t bytes;
};

static int print_bundle(void *ctx, const struct store_bundle *b, const uint8_t *head,
			size_t headlen)
{
	struct queue_list *l = ctx;
	char id[65], to[80], size[32];
	(void)head;
	(void)headlen;
	hex_encode(b->id, 32, id);
	dest_label(l->n, b->dest_node, to, sizeof(to));
	uint64_t left = b->lifetime_ms > b->age_now_ms ? b->lifetime_ms - b->age_now_ms : 0;
	if (l->json) {
		printf("%s\n  {\"id\": \"%s\", \"to\": ", l->count ? "," : "", id);
		json_string(stdout, to);
		printf(
		    ", \"dest\": \"ipn:%" PRIu64 ".%d\", \"size\": %" PRIu64
		    ", \"priority\": \"%s\", \"age_ms\": %" PRIu64 ", \"expires_in_ms\": %" PRIu64
		    ", \"origin\": \"%s\", \"exported\": %" PRIu64 "}",
		    b->dest_node, NODE_SERVICE_MESSAGES, b->payload_len, priority_name(b->priority),
		    b->age_now_ms, left, b->local ? "local" : "relayed", b->export_count);
	} else {
		format_size(b->payload_len, size, sizeof(size));
		printf("%.16s  %-20s %10s  %-6s  expires in %" PRIu64 "h%02" PRIu64 "m  %s", id, to,
		       size, priority_name(b->priority), left / 3600000, left / 60000 % 60,
		       b->local ? "local" : "relayed");
		/*
		 * Still here after being written to a stick or sent over a link: waiting for
		 * the next hop's custody (a receipt or an ACK).
		 */
		if (b->export_count)
			printf("  handed on %" PRIu64 " time%s, no custody yet", b->export_count,
			       b->export_count == 1 ? "" : "s");
		printf("\n");
	}
	l->count++;
	l->bytes += b->payload_len;
	return 0;
}

static const char *sent_state(enum store_sent_state st)
{
	switch (st) {
	case STORE_SENT_QUEUED:
		return "queued";
	case STORE_SENT_HANDED_OVER:
		return "forwarded";
	case STORE_SENT_DELIVERED:
		return "delivered";
	}
	return "unknown";
}

static int print_sent(void *ctx, const struct store_sent *e)
{
	struct queue_list *l = ctx;
	char id[33], to[80], when[32];
	hex_encode(e->msg_id, 16, id);
	dest_label(l->n, e->to_node, to, sizeof(to));
	format_time(e->changed_unix_ms, when, sizeof(when));
	if (l->json) {
		printf("%s\n  {\"id\": \"%s\", \"to\": ", l->count ? "," : "", id);
		json_string(stdout, to);
		printf(", \"state\": \"%s\", \"changed\": ", sent_state(e->state));
		printf(e->changed_unix_ms ? "\"%s\"}" : "null}", when);
	} else {
		if (l->count == 0)
			printf("\nsent messages:\n");
		printf("%.12s  %-20s %-11s  %s\n", id, to, sent_state(e->state), when);
	}
	l->count++;
	return 0;
}

int cmd_queue(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0}};
	struct queue_list l = {0};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage("queue", "unknown option %s", argv[optind - 1]);
		l.json = true;
	}
	if (optind != argc)
		return cli_usage("queue", "unexpected argument %s", argv[optind]);
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	l.n = &n;
	uint64_t purged = 0;
	int err = store_purge_expired(n.store, &n.now, &purged);
	if (err == 0 && purged)
		fprintf(stderr, "dropped %" PRIu64 " expired bundle%s\n", purged,
			purged == 1 ? "" : "s");
	if (l.json)
		printf("{\"bundles\": [");
	if (err == 0)
		err = store_bundle_foreach(n.store, STORE_QUEUED, &n.now, print_bundle, &l);
	int bundles = l.count;
	if (l.json)
		printf("%s], \"sent\": [", l.count ? "\n" : "");
	l.count = 0;
	if (err == 0)
		err = store_sent_foreach(n.store, print_sent, &l);
	if (l.json) {
		printf("%s]}\n", l.count ? "\n" : "");
	} else if (err == 0) {
		char total[32];
		format_size(l.bytes, total, sizeof(total));
		fflush(stdout);
		fprintf(stderr, "%d bundle%s queued, %s\n", bundles, bundles == 1 ? "" : "s",
			total);
	}
	int ret = err < 0 ? cli_fail("queue", "%s", store_errmsg(n.store)) : EXIT_OK;
	node_close(&n);
	return ret;
}
