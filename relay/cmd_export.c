/* tern export: the bundles that travel by stick, written onto it with a manifest sealed to their next hops. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/cli.h"
#include "transports/stick.h"

/* Small bundles are made durable in groups: one flush of the stick per group. */
#define GROUP_BUNDLES 256
#define GROUP_BYTES (64u << 20)
/* Against free space, each file costs a directory entry and a partly used cluster. */
#define FILE_OVERHEAD 4096
/* Kept free for the manifest and for receipts the next office writes. */
#define SPACE_RESERVE (256u * 1024)
/* A re-encoded head grows by a few bytes (Bundle Age and Hop Count get longer). */
#define HEAD_SLACK 32
#define MAX_TARGETS (ENVELOPE_MAX_RECIPIENTS - 1)

struct planned {
	uint8_t id[32];
	uint64_t est;
};

struct export {
	struct node *n;
	struct stick *stick;
	const char *dir;
	bool json;
	struct store_peer to[MAX_TARGETS];
	size_t n_to;
	enum store_priority min_prio;
	uint64_t max_left, space_left; /* --max-bytes and the free space still unplanned */

	struct planned *plan;
	size_t n_plan, cap_plan;
	uint64_t plan_bytes;
	struct stick_manifest_entry *done; /* written and durable: the manifest */
	size_t n_done;
	uint64_t bytes;
	struct stick_manifest_entry *pend; /* committed, waiting for stick_sync */
	size_t n_pend, next_placed;
	uint64_t pend_bytes;

	unsigned on_stick, no_fit, low_prio, no_route, failed, dropped, temp_removed;
	bool full;
	char manifest[STICK_NAME_MAX + 1];
	struct progress prog;
};

static bool is_target(const struct export *x, uint64_t node)
{
	for (size_t i = 0; i < x->n_to; i++)
		if (x->to[i].node == node)
			return true;
	return false;
}

static int add_target(struct export *x, const struct store_peer *p)
{
	if (is_target(x, p->node))
		return 0;
	if (x->n_to == MAX_TARGETS)
		return cli_fail(x->dir, "more than %d peers for one stick: choose some with --for",
				MAX_TARGETS);
	x->to[x->n_to++] = *p;
	return EXIT_OK;
}

static int add_sneakernet_peer(void *ctx, const struct store_peer *p)
{
	return p->links & STORE_LINK_SNEAKERNET ? add_target(ctx, p) : 0;
}

/* --for NAME[,NAME...], or every peer marked --sneakernet. */
static int choose_targets(struct export *x, char *names)
{
	if (!names) {
		int ret = store_peer_foreach(x->n->store, add_sneakernet_peer, x);
		if (ret != 0)
			return EXIT_FAIL;
		if (x->n_to == 0)
			return cli_fail(x->dir, "no peer travels by stick: mark one with `tern peer add "
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

/* Priority, then age, is the order store_bundle_foreach visits in: the first to fit go. */
static int plan_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct export *x = ctx;
	struct store_peer via;
	(void)head;
	if (b->priority < x->min_prio) {
		x->low_prio++;
		return 0;
	}
	int ret = node_next_hop(x->n, b->dest_node, &via);
	if (ret < 0) {
		x->no_route++;
		return 0;
	}
	if (!is_target(x, via.node))
		return 0;
	if (stick_has_bundle(x->stick, b->id)) {
		x->on_stick++;
		return 0;
	}
	uint64_t est = headlen + HEAD_SLACK + b->payload_len;
	uint64_t cost = est + FILE_OVERHEAD + STICK_MANIFEST_ENTRY;
	if (est > x->max_left || cost > x->space_left) {
		x->no_fit++;
		return 0;
	}
	if (x->n_plan == x->cap_plan) {
		size_t cap = x->cap_plan ? 2 * x->cap_plan : 256;
		struct planned *p = realloc(x->plan, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		x->plan = p;
		x->cap_plan = cap;
	}
	memcpy(x->plan[x->n_plan].id, b->id, 32);
	x->plan[x->n_plan++].est = est;
	x->max_left -= est;
	x->space_left -= cost;
	x->plan_bytes += est;
	return 0;
}

struct to_stick {
	struct stick_writer *w;
	struct progress *prog;
};

static int write_to_stick(void *ctx, const uint8_t *buf, size_t len)
{
	struct to_stick *t = ctx;
	int ret = stick_bundle_write(t->w, buf, len);
	if (ret == 0)
		progress_add(t->prog, len);
	return ret;
}

static int write_bundle(struct export *x, const struct store_bundle *b, const uint8_t *head,
			size_t headlen, uint64_t est, struct stick_manifest_entry *e)
{
	struct to_stick t = {.prog = &x->prog};
	int ret = stick_bundle_begin(x->stick, b->id, est, &t.w);
	if (ret < 0)
		return ret;
	ret = node_emit(x->n, b, head, headlen, write_to_stick, &t, NULL);
	if (ret < 0) {
		stick_bundle_abort(t.w);
		return ret;
	}
	memcpy(e->id, b->id, 32);
	return stick_bundle_commit(t.w, e->hash, &e->size);
}

static void on_placed(void *ctx, const uint8_t id[32], int result)
{
	struct export *x = ctx;
	const struct stick_manifest_entry *e = &x->pend[x->next_placed++];
	char hex[65];
	(void)id; /* commit order: e is its entry */
	if (result == 0) {
		x->done[x->n_done++] = *e;
		x->bytes += e->size;
		return;
	}
	hex_encode(e->id, 32, hex);
	if (result == -EEXIST) {
		x->on_stick++;
	} else if (result == -ENOSPC) {
		x->full = true;
		x->no_fit++;
	} else {
		x->failed++;
		cli_fail(hex, "not exported: %s", strerror(-result));
	}
}

/* Makes the bundles committed since the last group durable; only those go in the manifest. */
static int sync_group(struct export *x)
{
	int ret = stick_sync(x->stick, on_placed, x);
	x->pend_bytes = 0;
	if (ret < 0)
		cli_fail(x->dir, "%s", stick_error(x->stick));
	return ret == -ENOSPC ? 0 : ret;
}

/* One planned bundle: 0 to go on (what happened is counted), or an error that stops the export. */
static int export_one(struct export *x, const struct planned *p, uint8_t *head)
{
	struct store_bundle b;
	size_t headlen;
	char hex[65];
	hex_encode(p->id, 32, hex);
	int ret = store_bundle_get(x->n->store, p->id, &x->n->now, &b, head, BUNDLE_HEAD_MAX, &headlen);
	if (ret == -ENOENT)
		return 0; /* released meanwhile (a receipt came in over another link) */
	if (ret < 0) {
		x->failed++;
		cli_fail(hex, "not exported: %s", store_errmsg(x->n->store));
		return ret == -EBADMSG ? 0 : ret;
	}
	ret = write_bundle(x, &b, head, headlen, p->est, &x->pend[x->n_pend]);
	switch (ret) {
	case 0:
		x->pend_bytes += x->pend[x->n_pend++].size;
		if (x->n_pend - x->next_placed < GROUP_BUNDLES && x->pend_bytes < GROUP_BYTES)
			return 0;
		return sync_group(x);
	case -EEXIST:
		x->on_stick++;
		return 0;
	case -ENOSPC:
		/* Said once, in the stick's words: out of space, or a full FAT32 directory. */
		cli_fail(x->dir, "%s", stick_error(x->stick));
		x->full = true;
		x->no_fit++;
		return 0;
	case -ELOOP:
		/* Its hop limit is spent: nobody will take it, so it leaves the queue. */
		store_bundle_delete(x->n->store, b.id);
		x->dropped++;
		cli_fail(hex, "dropped: one more hop would pass its hop limit");
		return 0;
	case -EBADMSG:
		x->failed++;
		cli_fail(hex, "not exported: its stored copy is damaged (quarantined)");
		return 0;
	case -EFBIG:
		x->failed++;
		cli_fail(hex, "not exported: %s", stick_error(x->stick));
		return 0;
	default:
		x->failed++;
		cli_fail(x->dir, "%s", stick_error(x->stick));
		return ret;
	}
}

static int seal_and_put(struct export *x, const struct stick_manifest_entry *e, size_t count)
{
	struct envelope_recipient rcpt[MAX_TARGETS];
	struct stick_manifest m = {
		.node = x->n->node_num,
		.created_ms = x->n->clock_trusted ? x->n->now.unix_ms : 0,
	};
	uint8_t *body = NULL, *sealed = NULL;
	size_t bodylen, sealedlen;
	for (size_t i = 0; i < x->n_to; i++) {
		memcpy(rcpt[i].sign_pk, x->to[i].sign_pk, 32);
		memcpy(rcpt[i].box_pk, x->to[i].box_pk, 32);
	}
	int ret = stick_manifest_encode(&m, e, count, &body, &bodylen);
	if (ret == 0)
		ret = node_seal_record(x->n, rcpt, x->n_to, body, bodylen, &sealed, &sealedlen);
	if (ret == 0)
		ret = stick_put(x->stick, STICK_MANIFESTS, sealed, sealedlen, x->manifest);
	free(body);
	free(sealed);
	return ret;
}

/*
 * One manifest per STICK_LIST_MAX bundles. When the stick has no room left for it, the
 * last bundles written make room: a bundle the next hop cannot check is worth less
 * than the space.
 */
static int write_manifests(struct export *x)
{
	size_t start = 0;
	while (start < x->n_done) {
		size_t count = x->n_done - start;
		if (count > STICK_LIST_MAX)
			count = STICK_LIST_MAX;
		int ret = seal_and_put(x, x->done + start, count);
		if (ret == -ENOSPC && x->n_done > start + 1) {
			struct stick_manifest_entry *last = &x->done[--x->n_done];
			stick_bundle_remove(x->stick, last->id);
			x->bytes -= last->size;
			x->no_fit++;
			x->full = true;
			continue;
		}
		if (ret < 0)
			return cli_fail(x->dir, "no manifest written: %s",
					ret == -ENOMEM ? "out of memory" : stick_error(x->stick));
		start += count;
	}
	return EXIT_OK;
}

/* Custody stays here until receipts come back; the marks only say where copies went. */
static int mark_exported(struct export *x)
{
	int ret = store_batch_begin(x->n->store);
	for (size_t i = 0; ret == 0 && i < x->n_done; i++) {
		ret = store_bundle_mark_exported(x->n->store, x->done[i].id, x->n->now.unix_ms);
		if (ret == -ENOENT)
			ret = 0;
	}
	if (ret == 0)
		ret = store_batch_commit(x->n->store);
	else
		store_batch_abort(x->n->store);
	if (ret < 0)
		return cli_fail("export", "the bundles are on the stick, but the store could not "
					  "record it: %s",
				store_errmsg(x->n->store));
	return EXIT_OK;
}

static void print_summary(struct export *x, uint64_t ms)
{
	char size[32], rate[32];
	format_size(x->bytes, size, sizeof(size));
	format_size(ms ? x->bytes * 1000 / ms : x->bytes, rate, sizeof(rate));
	if (x->json) {
		printf("{\"dir\": ");
		json_string(stdout, x->dir);
		printf(", \"for\": [");
		for (size_t i = 0; i < x->n_to; i++) {
			printf("%s", i ? ", " : "");
			json_string(stdout, x->to[i].name);
		}
		printf("], \"exported\": %zu, \"bytes\": %" PRIu64 ", \"milliseconds\": %" PRIu64
		       ", \"already_on_stick\": %u, \"did_not_fit\": %u, \"below_priority\": %u"
		       ", \"failed\": %u, \"dropped\": %u, \"stick_full\": %s, \"manifest\": ",
		       x->n_done, x->bytes, ms, x->on_stick, x->no_fit, x->low_prio, x->failed,
		       x->dropped, x->full ? "true" : "false");
		if (x->manifest[0])
			printf("\"%s\"", x->manifest);
		else
			printf("null");
		printf(", \"temporary_files_removed\": %u}\n", x->temp_removed);
		return;
	}
	printf("exported %zu bundle%s (%s) for ", x->n_done, x->n_done == 1 ? "" : "s", size);
	for (size_t i = 0; i < x->n_to; i++)
		printf("%s%s", i ? "," : "", x->to[i].name);
	printf(" in %" PRIu64 ".%01" PRIu64 " s (%s/s)", ms / 1000, ms / 100 % 10, rate);
	if (x->on_stick)
		printf("; %u already on the stick", x->on_stick);
	if (x->full)
		printf("; the stick is full");
	if (x->no_fit)
		printf("; %u did not fit", x->no_fit);
	if (x->low_prio)
		printf("; %u below the minimum priority", x->low_prio);
	if (x->failed)
		printf("; %u failed", x->failed);
	if (x->dropped)
		printf("; %u dropped at their hop limit", x->dropped);
	printf("\n");
}

static int run_export(struct export *x)
{
	uint64_t purged = 0, free_bytes = STICK_FREE_UNKNOWN;
	if (store_purge_expired(x->n->store, &x->n->now, &purged) < 0)
		return cli_fail("export", "%s", store_errmsg(x->n->store));
	if (stick_clean_temp(x->stick, &x->temp_removed) < 0 ||
	    stick_free_bytes(x->stick, &free_bytes) < 0)
		return cli_fail(x->dir, "%s", stick_error(x->stick));
	if (x->temp_removed)
		fprintf(stderr, "tern: %s: removed %u temporary file%s of an interrupted export\n",
			x->dir, x->temp_removed, x->temp_removed == 1 ? "" : "s");
	x->space_left = free_bytes == STICK_FREE_UNKNOWN ? UINT64_MAX
			: free_bytes > SPACE_RESERVE	     ? free_bytes - SPACE_RESERVE
							     : 0;
	int ret = store_bundle_foreach(x->n->store, STORE_QUEUED, &x->n->now, plan_one, x);
	if (ret < 0 && ret != -EBADMSG)
		return cli_fail("export", "cannot read the queue: %s",
				ret == -ENOMEM ? "out of memory" : store_errmsg(x->n->store));
	x->done = calloc(x->n_plan ? x->n_plan : 1, sizeof(*x->done));
	x->pend = calloc(x->n_plan ? x->n_plan : 1, sizeof(*x->pend));
	uint8_t *head = malloc(BUNDLE_HEAD_MAX);
	if (!x->done || !x->pend || !head) {
		free(head);
		return cli_fail("export", "out of memory");
	}
	stick_defer_sync(x->stick);
	progress_start(&x->prog, "export", x->plan_bytes);
	ret = 0;
	size_t i = 0;
	for (; ret == 0 && !x->full && i < x->n_plan; i++)
		ret = export_one(x, &x->plan[i], head);
	progress_end(&x->prog);
	free(head);
	int synced = sync_group(x);
	if (ret == 0)
		ret = synced;
	if (x->full) /* those not tried once the stick was full */
		x->no_fit += (unsigned)(x->n_plan - i);
	int status = write_manifests(x);
	if (mark_exported(x) != EXIT_OK)
		status = EXIT_FAIL;
	print_summary(x, progress_elapsed_ms(&x->prog));
	return ret < 0 || x->failed ? EXIT_FAIL : status;
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
	struct export x = {.max_left = UINT64_MAX, .min_prio = STORE_BULK};
	char *names = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'f') {
			names = optarg;
		} else if (c == 'b') {
			if (parse_size(optarg, &x.max_left) < 0 || x.max_left == 0)
				return cli_usage("export", "--max-bytes %s: give a size such as "
							   "500M or 2G",
						 optarg);
		} else if (c == 'p') {
			if (parse_priority(optarg, &x.min_prio) < 0)
				return cli_usage("export", "--min-priority %s: give bulk, normal "
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
	int status = choose_targets(&x, names);
	if (status == EXIT_OK && stick_open(x.dir, true, &x.stick, why, sizeof(why)) < 0)
		status = cli_fail("export", "%s", why);
	if (status == EXIT_OK)
		status = run_export(&x);
	stick_close(x.stick);
	free(x.plan);
	free(x.done);
	free(x.pend);
	node_close(&n);
	return status;
}
