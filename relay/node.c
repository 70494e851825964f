/* The node's lifetime: what every tern process that holds a node must release. */
#include "relay/node.h"

void node_close(struct node *n)
{
	store_close(n->store);
	envelope_opener_free(n->spare); /* before the identity it points to */
	identity_free(n->id);
	n->spare = NULL;
	n->store = NULL;
	n->id = NULL;
}
