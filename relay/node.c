/* The node's lifetime (what every tern process that holds a node must release), and hex. */
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

void hex_encode(const uint8_t *buf, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * len] = '\0';
}
