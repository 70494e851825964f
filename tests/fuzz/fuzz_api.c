/* Fuzz target for the API: the request-line parser, and a whole connection against a real node. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/api.h"

/*
 * Properties checked on every input:
 * 1. api_request_parse, on each line, returns 0, 1, -EINVAL or -EPROTO, with a reason on
 *    every refusal; what it accepts has a lowercase verb and keys, at most API_MAX_ARGS
 *    arguments, and values without a NUL inside.
 * 2. The same bytes fed to a connection of a node (a store in a temporary directory, one
 *    contact), cut in two where the first byte says, give 0 or a documented error, and
 *    output that is whole lines, each one JSON object, bounded by API_OUT_MAX plus a reply.
 * A violated property aborts, which the fuzzer reports as a crash. Inputs that name a
 * path= are only parsed: the daemon reads the files its user names, and a fuzzer must not.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_api: %s\n", what);
		abort();
	}
}

static bool word_ok(const char *w)
{
	size_t len = strlen(w);
	if (len == 0 || len > API_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((w[i] >= 'a' && w[i] <= 'z') || w[i] == '_'))
			return false;
	return true;
}

static void parse_lines(const uint8_t *data, size_t size)
{
	static char line[API_LINE_MAX + 1];
	while (size) {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t len = nl ? (size_t)(nl - data) : size;
		size_t take = len < API_LINE_MAX ? len : API_LINE_MAX;
		struct api_request req;
		char why[200];
		memcpy(line, data, take);
		int ret = api_request_parse(line, take, &req, why, sizeof(why));
		check(ret == 0 || ret == 1 || ret == -EINVAL || ret == -EPROTO, "parse: result");
		if (ret < 0)
			check(why[0] != '\0', "parse: a refusal without a reason");
		if (ret == 0) {
			check(word_ok(req.verb), "parse: verb");
			check(req.n_arg <= API_MAX_ARGS, "parse: too many arguments");
			for (size_t i = 0; i < req.n_arg; i++) {
				check(word_ok(req.arg[i].key), "parse: key");
				check(strlen(req.arg[i].val) == req.arg[i].len,
				      "parse: NUL in a value");
				check(strcmp(req.arg[i].key, "tag") &&
					  strcmp(req.arg[i].key, "length"),
				      "parse: tag or length among the arguments");
			}
		}
		data += len + (nl != NULL);
		size -= len + (nl != NULL);
	}
}

static struct node node;
static bool node_ready;
static char dir[] = "/tmp/tern-fuzz-api.XXXXXX";

static void node_teardown(void)
{
	char cmd[64];
	node_close(&node);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_api: could not remove %s\n", dir);
}

static bool node_setup(void)
{
	char path[64];
	struct identity *other = NULL;
	struct identity_public pub;
	struct store_contact bob = {.name = "bob"};
	const char *why;
	if (tern_crypto_init() < 0 || !mkdtemp(dir) || identity_generate(&node.id) < 0 ||
	    identity_generate(&other) < 0)
		return false;
	identity_get_public(node.id, &node.pub);
	node.node_num = identity_node_number(node.pub.sign_pk);
	node.now.unix_ms = 1800000000000ull;
	node.now.boot_ms = 1000;
	snprintf(path, sizeof(path), "%s/fuzz.db", dir);
	if (store_open(path, &node.now, &node.store, &why) < 0)
		return false;
	atexit(node_teardown);
	identity_get_public(other, &pub);
	memcpy(bob.sign_pk, pub.sign_pk, 32);
	memcpy(bob.box_pk, pub.box_pk, 32);
	memcpy(bob.cert, pub.cert, 64);
	bob.epoch = pub.epoch;
	bob.node = identity_node_number(pub.sign_pk);
	identity_free(other);
	/* The store stays for the process, as the daemon's does; node_teardown removes it. */
	return store_contact_add(node.store, &bob) == 0;
}

static void on_queued(void *ctx)
{
	++*(int *)ctx;
}

static int on_status(void *ctx, FILE *out)
{
	fputs("{\"links\":[]}", out);
	return 0;
}

/* Every pending byte is whole lines, each a JSON object. */
static void check_output(struct api_client *c)
{
	const uint8_t *p;
	size_t n;
	while ((n = api_client_output(c, &p)) > 0) {
		check(n <= API_OUT_MAX + 8 * API_READ_MAX, "output: unbounded");
		check(p[n - 1] == '\n', "output: not whole lines");
		for (size_t at = 0; at < n;) {
			const uint8_t *nl = memchr(p + at, '\n', n - at);
			check(p[at] == '{' && nl[-1] == '}', "output: a line that is no object");
			check(memcmp(p + at, "{\"ok\":", 6) == 0 ||
				  memcmp(p + at, "{\"event\":", 9) == 0,
			      "output: neither a reply nor an event");
			at = (size_t)(nl - p) + 1;
		}
		api_client_consumed(c, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_lines(data, size);
	if (memmem(data, size, "path", 4))
		return 0;
	if (!node_ready && !(node_ready = node_setup())) {
		fprintf(stderr, "fuzz_api: cannot set up a node\n");
		abort();
	}
	int queued = 0;
	struct api_hooks hooks = {&queued, on_queued, on_status};
	struct api_client *c;
	check(api_client_new(&node, &hooks, &c) == 0, "client_new");
	size_t cut = size ? data[0] % (size + 1) : 0;
	int ret = api_client_input(c, data, cut);
	check_output(c);
	if (ret == 0)
		ret = api_client_input(c, data + cut, size - cut);
	check(ret == 0 || ret == -EPROTO || ret == -ENOBUFS, "input: an undocumented error");
	api_client_notify(c);
	check_output(c);
	api_client_free(c);
	return 0;
}
