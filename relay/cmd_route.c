/* tern route: which peer carries bundles for a destination, and the default route. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"

static void dest_name(struct node *n, uint64_t dest, char *out, size_t len)
{
	struct store_peer p;
	if (dest == 0)
		snprintf(out, len, "default");
	else if (store_peer_by_node(n->store, dest, &p) == 0)
		snprintf(out, len, "%s (ipn:%" PRIu64 ")", p.name, dest);
	else
		snprintf(out, len, "ipn:%" PRIu64, dest);
}

static int print_route(void *ctx, const struct store_route *r)
{
	struct node *n = ctx;
	uint64_t dest = r->dest, via = r->via;
	char d[96], v[96];
	dest_name(n, dest, d, sizeof(d));
	dest_name(n, via, v, sizeof(v));
	struct store_peer p;
	printf("%-32s via %s%s\n", d, v,
	       store_peer_by_node(n->store, via, &p) == 0 ? "" : "  (no such peer!)");
	return 0;
}

int cmd_route(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	int want = strcmp(sub, "add") == 0 ? 4 : strcmp(sub, "remove") == 0 ? 3 : 2;
	if ((strcmp(sub, "add") && strcmp(sub, "remove") && strcmp(sub, "list")) || argc != want)
		return cli_usage("route", "add DEST VIA | list | remove DEST");
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	int ret = EXIT_OK;
	uint64_t dest;
	struct store_peer via;
	if (strcmp(sub, "list") == 0) {
		if (store_route_foreach(n.store, print_route, &n) < 0)
			ret = cli_fail("route list", "%s", store_errmsg(n.store));
	} else if (node_parse_dest(&n, argv[2], &dest) < 0) {
		ret = cli_fail(argv[2], "not a destination: give default, ipn:N or a contact or "
					"peer name");
	} else if (strcmp(sub, "remove") == 0) {
		int err = store_route_remove(n.store, dest);
		if (err == -ENOENT)
			ret = cli_fail(argv[2], "no such route");
		else if (err < 0)
			ret = cli_fail(argv[2], "%s", store_errmsg(n.store));
	} else if (store_peer_get(n.store, argv[3], &via) < 0) {
		ret = cli_fail(argv[3], "no such peer (see `tern peer list`)");
	} else if (via.node == dest) {
		ret = cli_fail(argv[2], "a peer is reached directly; it needs no route");
	} else if (store_route_set(n.store, dest, via.node) < 0) {
		ret = cli_fail("route add", "%s", store_errmsg(n.store));
	}
	node_close(&n);
	if (ret == EXIT_OK && strcmp(sub, "list"))
		api_notify_queued(); /* bundles that waited for a route are offered now */
	return ret;
}
