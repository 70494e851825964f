/* tern import: what a stick carries for this node (receipts, manifests, bundles), file by file. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/stick_import.h"

struct importer {
	const char *dir;
	bool json, writable;
	int files; /* JSON entries printed */
};

static void on_problem(void *ctx, const char *what, const char *why)
{
	(void)ctx;
	cli_fail(what, "%s", why);
}

/* One line per file (stderr for a rejection), or one object of the JSON "files" array. */
static void on_file(void *ctx, const char *sub, const char *name, const char *verdict,
		    const char *detail)
{
	struct importer *x = ctx;
	bool bad = strcmp(verdict, "rejected") == 0;
	if (x->json) {
		char path[STICK_SHOW_MAX + 32];
		snprintf(path, sizeof(path), "tern/%s/%s", sub, name);
		printf("%s\n  {\"file\": ", x->files++ ? "," : "");
		json_string(stdout, path);
		printf(", \"verdict\": \"%s\", \"detail\": ", verdict);
		json_string(stdout, detail);
		printf("}");
		return;
	}
	FILE *f = bad ? stderr : stdout;
	if (bad)
		fflush(stdout);
	fprintf(f, "%s%s/tern/%s/%s: %s%s%s\n", bad ? "tern: " : "", x->dir, sub, name, verdict,
		detail[0] ? ": " : "", detail);
}

static void print_summary(struct importer *x, const struct stick_import_result *r)
{
	unsigned acks = r->acks;
	if (x->json) {
		printf(
		    "%s],\n \"delivered\": %u, \"queued\": %u, \"duplicate\": %u, \"rejected\": %u"
		    ", \"delivery_receipts\": %u, \"released\": %u, \"custody_receipted\": %u"
		    ", \"receipts_queued\": %u, \"left\": %u, \"writable\": %s}\n",
		    x->files ? "\n" : "", r->delivered, r->queued, r->duplicate, r->rejected,
		    r->receipts, r->released, r->custody_written, acks, r->left,
		    x->writable ? "true" : "false");
		return;
	}
	printf("imported from %s: %u delivered, %u queued for other nodes, %u duplicate, "
	       "%u rejected",
	       x->dir, r->delivered, r->queued, r->duplicate, r->rejected);
	if (r->left)
		printf("; %u left for other offices", r->left);
	if (r->receipts)
		printf("; %u delivery receipt%s", r->receipts, r->receipts == 1 ? "" : "s");
	if (r->released)
		printf("; %u bundle%s released by custody receipts", r->released,
		       r->released == 1 ? "" : "s");
	if (r->custody_written)
		printf("; custody receipted for %u", r->custody_written);
	if (acks)
		printf("; %u delivery receipt%s queued for the senders", acks,
		       acks == 1 ? "" : "s");
	printf("\n");
}

static int run_import(struct importer *x, struct node *n, struct stick *stick)
{
	const struct stick_import_hooks hooks = {
	    .ctx = x,
	    .problem = on_problem,
	    .file = on_file,
	};
	struct stick_import_result r;
	if (x->json)
		printf("{\"files\": [");
	int ret = stick_import(n, stick, x->dir, x->writable, &hooks, &r);
	print_summary(x, &r);
	return r.rejected || ret < 0 ? EXIT_FAIL : EXIT_OK;
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {0},
	};
	struct importer x = {.writable = true};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage("import", "unknown option %s", argv[optind - 1]);
		x.json = true;
	}
	if (optind + 1 != argc)
		return cli_usage("import", "takes one directory (the stick's mount point)");
	x.dir = argv[optind];

	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	char why[300];
	struct stick *stick = NULL;
	int ret = stick_open(x.dir, true, &stick, why, sizeof(why));
	if (ret == -EROFS || ret == -EACCES || ret == -EPERM) {
		/* Import anyway; custody stays with the exporters until a writable trip. */
		fprintf(stderr, "tern: %s: %s: importing without writing custody receipts\n", x.dir,
			why);
		x.writable = false;
		ret = stick_open(x.dir, false, &stick, why, sizeof(why));
	}
	int status = ret < 0 ? cli_fail("import", "%s", why) : run_import(&x, &n, stick);
	stick_close(stick);
	node_close(&n);
	api_notify_queued(); /* forwarded cargo, receipts, deliveries: a running daemon acts now */
	return status;
}
