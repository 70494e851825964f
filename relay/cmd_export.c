/* tern export: what travels by stick, written onto it with a manifest sealed to each next hop. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/stick_export.h"

struct exporter {
	struct node *n;
	const char *dir;
	bool json;
	struct store_peer to[STICK_EXPORT_TARGETS_MAX];
	size_t n_to;
	struct stick_export_opts opts;
	struct stick_export_result res;
	struct progress prog;
};

static bool is_target(const struct exporter *x, uint64_t node)
{
	for (size_t i = 0; i < x->n_to; i++)
		if (x->to[i].node == node)
			return true;
	return false;
}

static int add_target(struct exporter *x, const struct store_peer *p)
{
	if (is_target(x, p->node))
		return 0;
	if (x->n_to == STICK_EXPORT_TARGETS_MAX)
		return cli_fail(x->dir, "more than %d peers for one stick: choose some with --for",
				STICK_EXPORT_TARGETS_MAX);
	x->to[x->n_to++] = *p;
	return EXIT_OK;
}

static int add_sneakernet_peer(void *ctx, const struct store_peer *p)
{
	return p->links & STORE_LINK_SNEAKERNET ? add_target(ctx, p) : 0;
}

/* --for NAME[,NAME...], or every peer marked --sneakernet. */
static int choose_targets(struct exporter *x, char *names)
{
	if (!names) {
		int ret = store_peer_foreach(x->n->store, add_sneakernet_peer, x);
		if (ret != 0)
			return EXIT_FAIL;
		if (x->n_to == 0)
			return cli_fail(x->dir,
					"no peer travels by stick: mark one with `tern peer add "
					"NAME IDSTRING --sneakernet`, or name one with --for NAME");
		return EXIT_OK;
	}
	for (char *save = NULL, *name = strtok_r(names, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		struct store_peer p;
		if (store_peer_get(x->n->store, name, &p) < 0)
			return cli_fail(name, "not a peer (see `tern peer list`)");
		if (add_target(x, &p) != EXIT_OK)
			return EXIT_FAIL;
	}
	return x->n_to ? EXIT_OK : cli_usage("export", "--for needs at least one peer name");
}

/* An error while the bar may be drawn: on a line of its own. */
static void on_problem(void *ctx, const char *what, const char *why)
{
	struct exporter *x = ctx;
	progress_interrupt(&x->prog);
	cli_fail(what, "%s", why);
}

static void on_start(void *ctx, uint64_t total)
{
	struct exporter *x = ctx;
	progress_start(&x->prog, "export", total);
}

static void on_progress(void *ctx, uint64_t bytes)
{
	struct exporter *x = ctx;
	progress_add(&x->prog, bytes);
}

static void on_end(void *ctx)
{
	struct exporter *x = ctx;
	progress_end(&x->prog);
}

static void print_summary(struct exporter *x, uint64_t ms)
{
	char size[32], rate[32];
	const struct stick_export_result *r = &x->res;
	size_t written = r->exported;
	format_size(r->bytes, size, sizeof(size));
	format_size(ms ? r->bytes * 1000 / ms : r->bytes, rate, sizeof(rate));
	if (x->json) {
		printf("{\"dir\": ");
		json_string(stdout, x->dir);
		printf(", \"for\": [");
		for (size_t i = 0; i < x->n_to; i++) {
			printf("%s", i ? ", " : "");
			json_string(stdout, x->to[i].name);
		}
		printf(
		    "], \"exported\": %zu, \"bytes\": %" PRIu64 ", \"milliseconds\": %" PRIu64
		    ", \"listed_from_stick\": %u, \"already_on_stick\": %u, \"did_not_fit\": %u"
		    ", \"below_priority\": %u, \"no_route\": %u, \"failed\": %u, \"dropped\": %u"
		    ", \"stick_full\": %s, \"manifests\": %u, \"temporary_files_removed\": %u}\n",
		    written, r->bytes, ms, r->adopted, r->on_stick, r->no_fit, r->low_prio,
		    r->no_route, r->failed, r->dropped, r->full ? "true" : "false", r->manifests,
		    r->temp_removed);
		return;
	}
	printf("exported %zu bundle%s (%s) for ", written, written == 1 ? "" : "s", size);
	for (size_t i = 0; i < x->n_to; i++)
		printf("%s%s", i ? "," : "", x->to[i].name);
	printf(" in %" PRIu64 ".%01" PRIu64 " s (%s/s)", ms / 1000, ms / 100 % 10, rate);
	if (r->adopted)
		printf("; %u already on the stick, listed too", r->adopted);
	if (r->on_stick)
		printf("; %u already on the stick", r->on_stick);
	if (r->full)
		printf("; the stick is full");
	if (r->no_fit)
		printf("; %u did not fit", r->no_fit);
	if (r->low_prio)
		printf("; %u below the minimum priority", r->low_prio);
	if (r->no_route)
		printf("; %u queued without a route", r->no_route);
	if (r->failed)
		printf("; %u failed", r->failed);
	if (r->dropped)
		printf("; %u dropped at their hop limit", r->dropped);
	printf("\n");
}

static int run_export(struct exporter *x, struct stick *stick)
{
	const struct stick_export_hooks hooks = {
	    .ctx = x,
	    .problem = on_problem,
	    .start = on_start,
	    .progress = on_progress,
	    .end = on_end,
	};
	x->opts.to = x->to;
	x->opts.n_to = x->n_to;
	if (stick_export(x->n, stick, x->dir, &x->opts, &hooks, &x->res) < 0)
		return EXIT_FAIL;
	print_summary(x, progress_elapsed_ms(&x->prog));
	return x->res.ok ? EXIT_OK : EXIT_FAIL;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"for", required_argument, NULL, 'f'},
	    {"max-bytes", required_argument, NULL, 'b'},
	    {"min-priority", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {0},
	};
	struct exporter x = {.opts = {.max_bytes = UINT64_MAX, .min_prio = STORE_BULK}};
	char *names = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'f') {
			names = optarg;
		} else if (c == 'b') {
			if (parse_size(optarg, &x.opts.max_bytes) < 0 || x.opts.max_bytes == 0)
				return cli_usage("export",
						 "--max-bytes %s: give a size such as "
						 "500M or 2G",
						 optarg);
		} else if (c == 'p') {
			if (parse_priority(optarg, &x.opts.min_prio) < 0)
				return cli_usage("export",
						 "--min-priority %s: give bulk, normal "
						 "or urgent",
						 optarg);
		} else if (c == 'j') {
			x.json = true;
		} else {
			return cli_usage("export", "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("export", "takes one directory (the stick's mount point)");
	x.dir = argv[optind];

	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	x.n = &n;
	char why[300];
	struct stick *stick = NULL;
	int status = choose_targets(&x, names);
	if (status == EXIT_OK && stick_open(x.dir, true, &stick, why, sizeof(why)) < 0)
		status = cli_fail("export", "%s", why);
	if (status == EXIT_OK)
		status = run_export(&x, stick);
	stick_close(stick);
	node_close(&n);
	return status;
}
