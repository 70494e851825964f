/* tern contact: the address book that maps local names to identities. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"

struct collision {
	uint32_t node;
	const uint8_t *sign_pk;
	char name[STORE_NAME_MAX + 1];
};

static int find_node_collision(void *ctx, const struct store_contact *c)
{
	struct collision *col = ctx;
	if (c->node == col->node && memcmp(c->sign_pk, col->sign_pk, 32) != 0) {
		snprintf(col->name, sizeof(col->name), "%s", c->name);
		return 1;
	}
	return 0;
}

int cli_identity_arg(struct node *n, const char *name, const char *idstr,
		     struct identity_public *pub)
{
	const char *why = "";
	if (!contact_name_valid(name))
		return cli_fail(name, "not a valid name (1-64 letters, digits, '.', '_', '-'; "
				      "not starting with '-' or '.')");
	if (identity_public_decode(idstr, pub, &why) < 0)
		return cli_fail("identity string", "%s", why);
	if (memcmp(pub->sign_pk, n->pub.sign_pk, 32) == 0)
		return cli_fail(name, "that is this node's own identity");
	return EXIT_OK;
}

static int contact_add(struct node *n, const char *name, const char *idstr)
{
	struct identity_public pub;
	struct store_contact c = {0}, old;
	char fpr[IDENTITY_FINGERPRINT_LEN];

	if (cli_identity_arg(n, name, idstr, &pub) != EXIT_OK)
		return EXIT_FAIL;
	if (store_contact_get(n->store, name, &old) == 0 && memcmp(old.sign_pk, pub.sign_pk, 32)) {
		identity_fingerprint(old.sign_pk, fpr);
		return cli_fail(name, "the name is taken by another key (fingerprint %s)", fpr);
	}
	if (store_contact_by_key(n->store, pub.sign_pk, &old) == 0 && strcmp(old.name, name))
		return cli_fail(name, "this identity is already a contact named '%s'", old.name);
	struct collision col = {.node = identity_node_number(pub.sign_pk), .sign_pk = pub.sign_pk};
	if (store_contact_foreach(n->store, find_node_collision, &col) == 1)
		return cli_fail(name, "its node number ipn:%u is already used by '%s'", col.node,
				col.name);

	snprintf(c.name, sizeof(c.name), "%s", name);
	memcpy(c.sign_pk, pub.sign_pk, 32);
	memcpy(c.box_pk, pub.box_pk, 32);
	memcpy(c.cert, pub.cert, sizeof(c.cert));
	c.epoch = pub.epoch;
	c.node = col.node;
	c.added_unix_ms = n->now.unix_ms;
	int err = store_contact_add(n->store, &c);
	if (err < 0)
		return cli_fail(name, "cannot add the contact: %s", store_errmsg(n->store));
	identity_fingerprint(pub.sign_pk, fpr);
	printf("contact %s: fingerprint %s, node ipn:%u\n", name, fpr, c.node);
	return EXIT_OK;
}

struct list_ctx {
	bool json;
	int count;
};

static int print_contact(void *ctx, const struct store_contact *c)
{
	struct list_ctx *l = ctx;
	char fpr[IDENTITY_FINGERPRINT_LEN];
	identity_fingerprint(c->sign_pk, fpr);
	if (l->json) {
		printf("%s\n  {\"name\": ", l->count ? "," : "");
		json_string(stdout, c->name);
		printf(", \"fingerprint\": \"%s\", \"node\": \"ipn:%u.%d\", \"epoch\": %u}", fpr,
		       c->node, NODE_SERVICE_MESSAGES, c->epoch);
	} else {
		printf("%-20s %s  ipn:%u\n", c->name, fpr, c->node);
	}
	l->count++;
	return 0;
}

static int contact_list(struct node *n, bool json)
{
	struct list_ctx l = {.json = json};
	if (json)
		printf("[");
	int err = store_contact_foreach(n->store, print_contact, &l);
	if (json)
		printf("%s]\n", l.count ? "\n" : "");
	if (err < 0)
		return cli_fail("contact list", "%s", store_errmsg(n->store));
	return EXIT_OK;
}

int cmd_contact(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("contact", "needs add, list or remove");
	const char *sub = argv[1];
	bool json = false;
	int want;
	if (strcmp(sub, "add") == 0) {
		want = 4;
	} else if (strcmp(sub, "remove") == 0) {
		want = 3;
	} else if (strcmp(sub, "list") == 0) {
		want = 2;
		if (argc == 3 && strcmp(argv[2], "--json") == 0) {
			json = true;
			want = 3;
		}
	} else {
		return cli_usage("contact", "%s: unknown subcommand", sub);
	}
	if (argc != want)
		return cli_usage("contact", "%s: wrong number of arguments", sub);

	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	int ret;
	if (strcmp(sub, "add") == 0) {
		ret = contact_add(&n, argv[2], argv[3]);
	} else if (strcmp(sub, "list") == 0) {
		ret = contact_list(&n, json);
	} else {
		int err = store_contact_remove(n.store, argv[2]);
		if (err == -ENOENT)
			ret = cli_fail(argv[2], "no such contact");
		else if (err < 0)
			ret = cli_fail(argv[2], "cannot remove: %s", store_errmsg(n.store));
		else
			ret = EXIT_OK;
	}
	node_close(&n);
	return ret;
}
