/* tern config: checks the daemon's configuration file and prints what it says. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/config.h"

/*
 * Loads FILE, or <home>/tern.conf, and prints its errors as "PATH:LINE: what: why" on
 * stderr, every one of them. Needs no key and no store: a check must work on a node
 * whose key is protected, or before `tern init`. Returns EXIT_OK with *out set, or
 * EXIT_FAIL after printing.
 */
static int load(const char *file, char *path, size_t len, struct config **out)
{
	bool deflt = file == NULL;
	*out = NULL;
	if (deflt && home_path("tern.conf", path, len) < 0)
		return cli_fail("config", "cannot find the node home (give --home DIR or FILE)");
	if (!deflt)
		snprintf(path, len, "%s", file);
	int ret = config_load(path, out);
	if (!*out) {
		if (ret == -ENOENT && deflt)
			return cli_fail(path, "no such file: without one the daemon runs on the "
					      "peers and routes of the store (docs/config.md)");
		if (ret == -EINVAL)
			return cli_fail(path, "not a regular file");
		return cli_fail(path, "%s", strerror(-ret));
	}
	if (ret == 0)
		return EXIT_OK;
	fflush(stdout);
	const struct config *c = *out;
	for (size_t i = 0; i < c->n_errors; i++) {
		if (c->errors[i].line)
			fprintf(stderr, "%s:%u: %s\n", path, c->errors[i].line, c->errors[i].msg);
		else
			fprintf(stderr, "%s: %s\n", path, c->errors[i].msg);
	}
	if (c->n_errors_dropped)
		fprintf(stderr, "%s: and %zu more errors\n", path, c->n_errors_dropped);
	size_t n = c->n_errors + c->n_errors_dropped;
	cli_fail("config", "%zu error%s in %s", n, n == 1 ? "" : "s", path);
	config_free(*out);
	*out = NULL;
	return EXIT_FAIL;
}

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void print_json(const struct config *c)
{
	char idstr[IDENTITY_STRING_MAX + 1], fpr[IDENTITY_FINGERPRINT_LEN], win[12];
	printf("{\"listen\": [");
	for (size_t i = 0; i < c->n_listens; i++) {
		const struct config_addr *a = &c->listens[i];
		printf("%s{\"addr\": ", i ? ", " : "");
		json_string(stdout, a->text);
		printf(", \"host\": ");
		json_string(stdout, a->host);
		printf(", \"port\": %u, \"line\": %u}", a->port, a->line);
	}
	printf("],\n \"keepalive_s\": %" PRIu64 ", \"log_level\": \"%s\",\n \"peers\": [",
	       c->keepalive_ms / 1000, config_log_level_name(c->log_level));
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct config_peer *p = &c->peers[i];
		printf("%s\n  {\"name\": ", i ? "," : "");
		json_string(stdout, p->name);
		printf(", \"line\": %u, ", p->line);
		if (p->has_id) {
			identity_public_encode(&p->id, idstr, sizeof(idstr));
			identity_fingerprint(p->id.sign_pk, fpr);
			printf("\"identity\": \"%s\", \"fingerprint\": \"%s\", \"node\": "
			       "\"ipn:%" PRIu32 "\",\n   ",
			       idstr, fpr, identity_node_number(p->id.sign_pk));
		} else {
			printf("\"identity\": null, \"fingerprint\": null, \"node\": null, ");
		}
		printf("\"addrs\": [");
		for (size_t j = 0; j < p->n_addrs; j++) {
			printf("%s", j ? ", " : "");
			json_string(stdout, p->addrs[j].text);
		}
		printf("], \"sneakernet\": %s, \"min_priority\": \"%s\", \"bytes_per_day\": "
		       "%" PRIu64 ", \"windows\": [",
		       !p->sneakernet_set ? "null"
		       : p->sneakernet	  ? "true"
					  : "false",
		       priority_name(p->min_priority), p->bytes_per_day);
		for (size_t j = 0; j < p->n_windows; j++) {
			config_window_format(&p->windows[j], win);
			printf("%s\"%s\"", j ? ", " : "", win);
		}
		printf("]}");
	}
	printf("%s],\n \"routes\": [", c->n_peers ? "\n " : "");
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct config_route *r = &c->routes[i];
		printf("%s\n  {\"dest\": ", i ? "," : "");
		json_string(stdout, r->dest);
		/* A contact or a store peer's name is for the daemon to look up. */
		if (r->kind == CONFIG_DEST_NODE)
			printf(", \"kind\": \"node\", \"node\": \"ipn:%" PRIu64 "\"", r->dest_node);
		else
			printf(", \"kind\": \"%s\", \"node\": null",
			       r->kind == CONFIG_DEST_DEFAULT ? "default" : "name");
		printf(", \"via\": ");
		json_string(stdout, r->via);
		printf(", \"line\": %u}", r->line);
	}
	printf("%s]}\n", c->n_routes ? "\n " : "");
}

int cmd_config(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	const char *file = NULL;
	bool json = false;
	char path[HOME_PATH_MAX];
	struct config *c;
	if (strcmp(sub, "check") && strcmp(sub, "show"))
		return cli_usage("config", "needs check or show");
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && strcmp(sub, "show") == 0)
			json = true;
		else if (argv[i][0] == '-' && argv[i][1])
			return cli_usage("config", "%s: unknown option", argv[i]);
		else if (file)
			return cli_usage("config", "one FILE at most");
		else
			file = argv[i];
	}
	if (load(file, path, sizeof(path), &c) != EXIT_OK)
		return EXIT_FAIL;
	if (strcmp(sub, "check") == 0) {
		printf("%s: %zu listen %s, %zu %s, %zu %s\n", path, c->n_listens,
		       plural(c->n_listens, "address", "addresses"), c->n_peers,
		       plural(c->n_peers, "peer", "peers"), c->n_routes,
		       plural(c->n_routes, "route", "routes"));
	} else if (json) {
		print_json(c);
	} else {
		config_print(c, stdout);
	}
	config_free(c);
	return EXIT_OK;
}
