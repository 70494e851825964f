/* tern peer: the nodes this one exchanges bundles with directly, and over which links. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/config.h"
#include "transports/serial.h"

static int peer_add(struct node *n, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"sneakernet", no_argument, NULL, 's'},    {"addr", required_argument, NULL, 'a'},
	    {"serial", required_argument, NULL, 'S'},  {"baud", required_argument, NULL, 'b'},
	    {"framing", required_argument, NULL, 'F'}, {"parity", required_argument, NULL, 'P'},
	    {"flow", required_argument, NULL, 'f'},    {0},
	};
	struct store_peer p = {0}, old;
	struct identity_public pub;
	struct serial_spec spec;
	serial_spec_default(&spec);
	bool serial = false, line_opts = false;
	const char *why;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "sa:", opts, NULL)) != -1) {
		if (c == 'S' || c == 'b' || c == 'F' || c == 'P' || c == 'f') {
			bool ok = c == 'S'   ? serial_spec_set_path(&spec, optarg, &why)
				  : c == 'b' ? serial_spec_set_baud(&spec, optarg, &why)
				  : c == 'F' ? serial_spec_set_framing(&spec, optarg, &why)
				  : c == 'P' ? serial_spec_set_parity(&spec, optarg, &why)
					     : serial_spec_set_flow(&spec, optarg, &why);
			if (!ok)
				return cli_usage("peer", "--%s %s: %s",
						 c == 'S'   ? "serial"
						 : c == 'b' ? "baud"
						 : c == 'F' ? "framing"
						 : c == 'P' ? "parity"
							    : "flow",
						 optarg, why);
			serial |= c == 'S';
			line_opts |= c != 'S';
		} else if (c == 's') {
			p.links |= STORE_LINK_SNEAKERNET;
		} else if (c == 'a') {
			/* The check of tern.conf's addr: one rule for an address, wherever given.
			 */
			struct config_addr a;
			if (config_addr_parse(optarg, &a, &why) < 0)
				return cli_usage("peer", "--addr %s: %s", optarg, why);
			snprintf(p.addr, sizeof(p.addr), "%s", a.text);
			p.links |= STORE_LINK_TCP;
		} else {
			return cli_usage("peer", "unknown option");
		}
	}
	if (argc - optind != 3)
		return cli_usage("peer", "add takes NAME IDSTRING");
	if (line_opts && !serial)
		return cli_usage("peer", "--baud, --framing, --parity and --flow set up a serial "
					 "line: give its device with --serial PATH");
	if (serial && (p.links & STORE_LINK_TCP))
		return cli_usage("peer", "a peer is reached over TCP (--addr) or a serial line "
					 "(--serial), not both");
	if (serial) {
		serial_spec_format(&spec, p.addr, sizeof(p.addr));
		p.links |= STORE_LINK_SERIAL;
	}
	const char *name = argv[optind + 1], *idstr = argv[optind + 2];
	if (cli_identity_arg(n, name, idstr, &pub) != EXIT_OK)
		return EXIT_FAIL;
	if (store_peer_get(n->store, name, &old) == 0 && memcmp(old.sign_pk, pub.sign_pk, 32))
		return cli_fail(name, "the name is taken by another peer's key");
	if (store_peer_by_key(n->store, pub.sign_pk, &old) == 0 && strcmp(old.name, name))
		return cli_fail(name, "this identity is already the peer '%s'", old.name);
	snprintf(p.name, sizeof(p.name), "%s", name);
	memcpy(p.sign_pk, pub.sign_pk, 32);
	memcpy(p.box_pk, pub.box_pk, 32);
	memcpy(p.cert, pub.cert, sizeof(p.cert));
	p.epoch = pub.epoch;
	p.node = identity_node_number(pub.sign_pk);
	p.added_unix_ms = n->now.unix_ms;
	if (store_peer_add(n->store, &p) < 0)
		return cli_fail(name, "cannot add the peer: %s", store_errmsg(n->store));
	printf("peer %s: node ipn:%llu%s%s%s\n", name, (unsigned long long)p.node,
	       p.links & STORE_LINK_SNEAKERNET ? ", sneakernet" : "",
	       p.links & STORE_LINK_SERIAL ? ", "
	       : p.addr[0]		   ? ", tcp "
					   : "",
	       p.addr);
	return EXIT_OK;
}

struct list_ctx {
	bool json;
	int count;
};

static int print_peer(void *ctx, const struct store_peer *p)
{
	struct list_ctx *l = ctx;
	char fpr[IDENTITY_FINGERPRINT_LEN];
	identity_fingerprint(p->sign_pk, fpr);
	if (l->json) {
		printf("%s\n  {\"name\": ", l->count ? "," : "");
		json_string(stdout, p->name);
		printf(", \"fingerprint\": \"%s\", \"node\": \"ipn:%llu\", \"sneakernet\": %s, "
		       "\"addr\": ",
		       fpr, (unsigned long long)p->node,
		       p->links & STORE_LINK_SNEAKERNET ? "true" : "false");
		json_string(stdout, p->addr);
		printf("}");
	} else {
		printf("%-20s ipn:%-10llu %s%s%s\n", p->name, (unsigned long long)p->node,
		       p->links & STORE_LINK_SNEAKERNET ? "sneakernet " : "",
		       p->links & STORE_LINK_SERIAL ? ""
		       : p->addr[0]		    ? "tcp "
						    : "",
		       p->addr);
	}
	l->count++;
	return 0;
}

int cmd_peer(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	struct node n;
	int ret;
	if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "remove"))
		return cli_usage("peer", "needs add, list or remove");
	if (strcmp(sub, "remove") == 0 && argc != 3)
		return cli_usage("peer", "remove takes NAME");
	bool json = strcmp(sub, "list") == 0 && argc == 3 && strcmp(argv[2], "--json") == 0;
	if (strcmp(sub, "list") == 0 && argc != 2 && !json)
		return cli_usage("peer", "list takes only --json");
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	if (strcmp(sub, "add") == 0) {
		ret = peer_add(&n, argc, argv);
	} else if (strcmp(sub, "list") == 0) {
		struct list_ctx l = {.json = json};
		if (json)
			printf("[");
		int err = store_peer_foreach(n.store, print_peer, &l);
		if (json)
			printf("%s]\n", l.count ? "\n" : "");
		ret = err < 0 ? cli_fail("peer list", "%s", store_errmsg(n.store)) : EXIT_OK;
	} else {
		int err = store_peer_remove(n.store, argv[2]);
		ret = err == -ENOENT ? cli_fail(argv[2], "no such peer")
		      : err < 0	     ? cli_fail(argv[2], "%s", store_errmsg(n.store))
				     : EXIT_OK;
	}
	node_close(&n);
	if (ret == EXIT_OK && strcmp(sub, "list"))
		api_notify_queued(); /* a running daemon reads the peers again and dials */
	return ret;
}
