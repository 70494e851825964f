/* Routing: which peer a bundle for a destination node goes to next. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/node.h"

int node_next_hop(struct node *n, uint64_t dest, struct store_peer *via)
{
	uint64_t hop;
	if (store_peer_by_node(n->store, dest, via) == 0)
		return 0;
	if (store_route_get(n->store, dest, &hop) == 0 || store_route_get(n->store, 0, &hop) == 0)
		return store_peer_by_node(n->store, hop, via) == 0 ? 0 : -EHOSTUNREACH;
	return -ENOENT;
}

bool node_routes_to(struct node *n, const struct store_bundle *b, uint64_t peer)
{
	struct store_peer via;
	if (n->routing == NODE_ROUTING_EPIDEMIC)
		return b->dest_node != n->node_num &&
		       !store_bundle_held_by(n->store, b->rowid, peer);
	return node_next_hop(n, b->dest_node, &via) == 0 && via.node == peer;
}

bool node_keeps_copy(const struct node *n, const struct store_bundle *b, uint64_t peer)
{
	/* The destination has it: flooding it on would only cost bytes. */
	return n->routing == NODE_ROUTING_EPIDEMIC && b->dest_node != peer;
}

int node_parse_dest(struct node *n, const char *s, uint64_t *dest)
{
	struct store_contact c;
	struct store_peer p;
	if (strcmp(s, "default") == 0) {
		*dest = STORE_ROUTE_DEFAULT;
		return 0;
	}
	if (strncmp(s, "ipn:", 4) == 0) {
		char *end;
		unsigned long long v = strtoull(s + 4, &end, 10);
		if (end == s + 4 || (*end && *end != '.') || v == 0)
			return -EINVAL;
		*dest = v;
		return 0;
	}
	if (store_peer_get(n->store, s, &p) == 0) {
		*dest = p.node;
		return 0;
	}
	if (store_contact_get(n->store, s, &c) == 0) {
		*dest = c.node;
		return 0;
	}
	return -ENOENT;
}
