/* Shared helpers of the multi-node tests; see testnode.h. */
#include <stdio.h>
#include <string.h>

#include "tests/testnode.h"

void testnode_clock(struct store_clock *c)
{
	memset(c, 0, sizeof(*c));
	c->unix_ms = 1800000000000ull;
	c->boot_ms = 1000;
	c->boot_id[0] = 1;
}

void testnode_as_contact(const struct node *n, const char *name, struct store_contact *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	memcpy(c->sign_pk, n->pub.sign_pk, 32);
	memcpy(c->box_pk, n->pub.box_pk, 32);
	memcpy(c->cert, n->pub.cert, 64);
	c->epoch = n->pub.epoch;
	c->node = n->node_num;
}

void testnode_as_peer(const struct node *n, const char *name, struct store_peer *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	memcpy(p->sign_pk, n->pub.sign_pk, 32);
	memcpy(p->box_pk, n->pub.box_pk, 32);
	memcpy(p->cert, n->pub.cert, 64);
	p->epoch = n->pub.epoch;
	p->node = n->node_num;
	p->links = STORE_LINK_TCP;
}
