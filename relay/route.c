/* Routing: which peer a bundle for a destination node goes to next. */
#include <errno.h>

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
