/* The node's lifetime: what every tern process that holds a node must release. */
#include "relay/node.h"

void node_close(struct node *n)
{
	store_close(n->store);
	identity_free(n->id);
	n->store = NULL;
	n->id = NULL;
}
