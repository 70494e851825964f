/* Sneakernet export: plans what fits, writes it in durable groups, seals a manifest per hop. */
#include "relay/stick_export.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small bundles are made durable in groups: one flush of the stick per group. */
#define GROUP_BUNDLES 256
#define GROUP_BYTES   (64u << 20)
/* Against free space, each file also costs its directory entry (a long name: 7 slots of 32). */
#define NAME_OVERHEAD 256
/* Kept free for the manifests and for receipts the next office writes. */
#define SPACE_RESERVE (256u * 1024)
/* A re-encoded head grows by a few bytes (Bundle Age and Hop Count get longer). */
#define HEAD_SLACK 32

struct planned {
	uint8_t id[32];
	uint64_t est;
	uint64_t via;  /* the target peer it goes to: its manifest lists it */
	bool on_stick; /* a copy is there already (another office's): listed, not written */
};

/* A bundle on the stick for one target: an entry of that target's manifest. */
struct listed {
	struct stick_manifest_entry e;
	uint64_t via;
	bool written; /* by this export (else a copy found there) */
};

struct exporter {
	struct node *n;
	struct stick *stick;
	const char *dir;
	const struct stick_export_opts *o;
	const struct stick_export_hooks *h;
	struct stick_export_result *r;
	uint64_t max_left, space_left; /* max_bytes and the free space still unplanned */
	uint64_t cluster;

	struct planned *plan;
	size_t n_plan, cap_plan;
	uint64_t plan_bytes;
	struct listed *done; /* on the stick and durable: what the manifests list */
	size_t n_done;
	struct listed *pend; /* committed, waiting for stick_sync */
	size_t n_pend, next_placed;
	uint64_t pend_bytes;
};

static void say(struct exporter *x, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(struct exporter *x, const char *what, const char *fmt, ...)
{
	char why[700];
	va_list ap;
	if (!x->h->problem)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	x->h->problem(x->h->ctx, what, why);
}

static void progress(struct exporter *x, uint64_t bytes)
{
	if (x->h->progress)
		x->h->progress(x->h->ctx, bytes);
}

static bool is_target(const struct exporter *x, uint64_t node)
{
	for (size_t i = 0; i < x->o->n_to; i++)
		if (x->o->to[i].node == node)
			return true;
	return false;
}

static uint64_t round_up(uint64_t v, uint64_t unit)
{
	return v > UINT64_MAX - unit ? UINT64_MAX : (v + unit - 1) / unit * unit;
}

/* Priority, then age, is the order store_bundle_foreach visits in: the first to fit go. */
static int plan_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct exporter *x = ctx;
	struct store_peer via;
	(void)head;
	if (node_next_hop(x->n, b->dest_node, &via) < 0) {
		x->r->no_route++;
		return 0;
	}
	if (!is_target(x, via.node))
		return 0; /* another link's */
	if (b->priority < x->o->min_prio) {
		x->r->low_prio++;
		return 0;
	}
	/*
	 * A copy already there (another office's export passing through) is listed in this
	 * export's manifest too: the next hop then owes us a receipt for it, as for our own.
	 */
	bool there = stick_has_bundle(x->stick, b->id);
	uint64_t est = headlen + HEAD_SLACK + b->payload_len;
	uint64_t cost = round_up(est, x->cluster) + NAME_OVERHEAD + STICK_MANIFEST_ENTRY;
	if (!there && (est > x->max_left || cost > x->space_left)) {
		x->r->no_fit++;
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
	struct planned *p = &x->plan[x->n_plan++];
	memcpy(p->id, b->id, 32);
	p->est = est;
	p->via = via.node;
	p->on_stick = there;
	if (!there) {
		x->max_left -= est;
		x->space_left -= cost;
		x->plan_bytes += est;
	}
	return 0;
}

struct to_stick {
	struct stick_writer *w;
	struct exporter *x;
};

static int write_to_stick(void *ctx, const uint8_t *buf, size_t len)
{
	struct to_stick *t = ctx;
	int ret = stick_bundle_write(t->w, buf, len);
	if (ret == 0)
		progress(t->x, len);
	return ret;
}

static int write_bundle(struct exporter *x, const struct store_bundle *b, const uint8_t *head,
			size_t headlen, uint64_t est, struct stick_manifest_entry *e)
{
	struct to_stick t = {.x = x};
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
	struct exporter *x = ctx;
	const struct listed *l = &x->pend[x->next_placed++];
	char hex[65];
	if (memcmp(id, l->e.id, 32) != 0)
		result = -EPROTO; /* not the commit we wrote down: list nothing we are unsure of */
	if (result == 0) {
		x->done[x->n_done++] = *l;
		x->r->bytes += l->e.size;
		return;
	}
	hex_encode(l->e.id, 32, hex);
	if (result == -EEXIST) {
		x->r->on_stick++;
	} else if (result == -ENOSPC) {
		x->r->full = true;
		x->r->no_fit++;
	} else {
		x->r->failed++;
		say(x, hex, "not exported: %s", strerror(-result));
	}
}

/* Makes the bundles committed since the last group durable; only those go in the manifests. */
static int sync_group(struct exporter *x)
{
	int ret = stick_sync(x->stick, on_placed, x);
	x->pend_bytes = 0;
	if (ret < 0)
		say(x, x->dir, "%s", stick_error(x->stick));
	return ret == -ENOSPC ? 0 : ret;
}

static int count_only(void *ctx, const uint8_t *buf, size_t len)
{
	(void)buf;
	progress(ctx, len);
	return 0;
}

/* A copy some other office left on the stick: hashed as it is, for this export's manifest. */
static int adopt_copy(struct exporter *x, const struct planned *p)
{
	struct stick_entry e;
	struct listed *l = &x->done[x->n_done];
	char hex[65];
	int ret = stick_bundle_find(x->stick, p->id, &e);
	if (ret == 0)
		ret = stick_bundle_read(x->stick, &e, count_only, x, l->e.hash);
	if (ret < 0) {
		/* Gone or unreadable since the plan: it is not listed (the next trip writes it). */
		hex_encode(p->id, 32, hex);
		x->r->failed++;
		say(x, hex, "the copy on the stick cannot be read: %s",
		    ret == -ENOENT ? "gone" : stick_error(x->stick));
		return ret == -ENOENT || ret == -ESTALE || ret == -EIO ? 0 : ret;
	}
	memcpy(l->e.id, p->id, 32);
	l->e.size = e.size;
	l->via = p->via;
	l->written = false;
	x->n_done++;
	x->r->adopted++;
	return 0;
}

/* One planned bundle: 0 to go on (what happened is counted), or an error that stops the export. */
static int export_one(struct exporter *x, const struct planned *p, uint8_t *head)
{
	struct store_bundle b;
	size_t headlen;
	char hex[65];
	if (p->on_stick)
		return adopt_copy(x, p);
	hex_encode(p->id, 32, hex);
	int ret =
	    store_bundle_get(x->n->store, p->id, &x->n->now, &b, head, BUNDLE_HEAD_MAX, &headlen);
	if (ret == -ENOENT)
		return 0; /* released meanwhile (a receipt came in over another link) */
	if (ret < 0) {
		x->r->failed++;
		say(x, hex, "%s", store_errmsg(x->n->store));
		return ret == -EBADMSG ? 0 : ret;
	}
	struct listed *l = &x->pend[x->n_pend];
	ret = write_bundle(x, &b, head, headlen, p->est, &l->e);
	switch (ret) {
	case 0:
		l->via = p->via;
		l->written = true;
		x->pend_bytes += x->pend[x->n_pend++].e.size;
		if (x->n_pend - x->next_placed < GROUP_BUNDLES && x->pend_bytes < GROUP_BYTES)
			return 0;
		return sync_group(x);
	case -EEXIST:
		if (stick_has_bundle(x->stick, p->id)) {
			x->r->on_stick++; /* written meanwhile by another process */
			return 0;
		}
		x->r->failed++; /* something that is not a bundle file is in its way */
		say(x, hex, "%s", stick_error(x->stick));
		return 0;
	case -ENOSPC:
		/* Said once, in the stick's words: out of space, or a full FAT32 directory. */
		say(x, x->dir, "%s", stick_error(x->stick));
		x->r->full = true;
		x->r->no_fit++;
		return 0;
	case -ELOOP:
		/* Its hop limit is spent: nobody will take it, so it leaves the queue. */
		store_bundle_delete(x->n->store, b.id);
		x->r->dropped++;
		say(x, hex, "dropped: one more hop would pass its hop limit");
		return 0;
	case -EBADMSG:
		x->r->failed++;
		say(x, hex, "not exported: its stored copy is damaged (quarantined)");
		return 0;
	case -EFBIG:
	case -ENOTDIR: /* its subdirectory bundles/<h> is a link or a file: the other 15 may do */
		x->r->failed++;
		say(x, hex, "%s", stick_error(x->stick));
		return 0;
	default:
		x->r->failed++;
		say(x, x->dir, "%s", stick_error(x->stick));
		return ret;
	}
}

/* Seals one manifest body to one peer (and ourselves) and puts it on the stick. */
static int seal_and_put(struct exporter *x, const struct store_peer *to,
			const struct stick_manifest_entry *e, size_t count, size_t *sealedlen)
{
	struct envelope_recipient rcpt;
	struct stick_manifest m = {
	    .node = x->n->node_num,
	    .created_ms = x->n->clock_trusted ? x->n->now.unix_ms : 0,
	};
	uint8_t *body = NULL, *sealed = NULL;
	size_t bodylen;
	char name[STICK_NAME_MAX + 1];
	memcpy(rcpt.sign_pk, to->sign_pk, 32);
	memcpy(rcpt.box_pk, to->box_pk, 32);
	*sealedlen = 0;
	int ret = stick_manifest_encode(&m, e, count, &body, &bodylen);
	if (ret == 0)
		ret = node_seal_record(x->n, &rcpt, 1, body, bodylen, &sealed, sealedlen);
	if (ret == 0)
		ret = stick_put(x->stick, STICK_MANIFESTS, sealed, *sealedlen, name);
	if (ret == 0)
		x->r->manifests++;
	free(body);
	free(sealed);
	return ret;
}

/*
 * Takes back bundles this export wrote for one peer, last first, until at least need
 * bytes are free: a bundle its next hop cannot check is worth less than the space.
 */
static void make_room(struct exporter *x, uint64_t via, uint64_t need)
{
	uint64_t freed = 0;
	for (size_t i = x->n_done; i-- > 0 && freed < need;) {
		struct listed *l = &x->done[i];
		if (l->via != via || !l->written || stick_bundle_remove(x->stick, l->e.id) < 0)
			continue;
		freed += round_up(l->e.size, x->cluster);
		x->r->bytes -= l->e.size;
		x->r->no_fit++;
		memmove(l, l + 1, (x->n_done - i - 1) * sizeof(*l));
		x->n_done--;
	}
	x->r->full = true;
}

/*
 * One manifest per next hop, listing only the bundles meant for it, so that no other
 * office takes them as its own cargo or owes a receipt for them; STICK_LIST_MAX
 * entries at most each. 0 or -errno (said).
 */
static int manifest_for(struct exporter *x, const struct store_peer *to, bool retry)
{
	size_t n = 0;
	struct stick_manifest_entry *e = malloc((x->n_done ? x->n_done : 1) * sizeof(*e));
	if (!e) {
		say(x, "export", "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < x->n_done; i++)
		if (x->done[i].via == to->node)
			e[n++] = x->done[i].e;
	int status = 0;
	for (size_t start = 0; start < n && status == 0;) {
		size_t count = n - start < STICK_LIST_MAX ? n - start : STICK_LIST_MAX;
		size_t sealedlen;
		uint64_t free_bytes = 0;
		int ret = seal_and_put(x, to, e + start, count, &sealedlen);
		/* No room for it, where room can be made (not a full FAT32 directory): once. */
		if (ret == -ENOSPC && retry && stick_free_bytes(x->stick, &free_bytes) == 0 &&
		    (free_bytes == STICK_FREE_UNKNOWN || free_bytes < sealedlen + x->cluster)) {
			make_room(x, to->node, sealedlen + 2 * x->cluster);
			free(e);
			return manifest_for(x, to, false);
		}
		if (ret < 0) {
			say(x, x->dir, "no manifest for %s: %s", to->name,
			    ret == -ENOMEM ? "out of memory" : stick_error(x->stick));
			status = ret;
		}
		start += count;
	}
	free(e);
	return status;
}

static int write_manifests(struct exporter *x)
{
	int status = 0;
	for (size_t i = 0; i < x->o->n_to; i++) {
		int ret = manifest_for(x, &x->o->to[i], true);
		if (ret < 0)
			status = ret;
	}
	return status;
}

/* Custody stays here until a receipt comes back from the peer each bundle went to. */
static int mark_exported(struct exporter *x)
{
	int ret = store_batch_begin(x->n->store);
	for (size_t i = 0; ret == 0 && i < x->n_done; i++) {
		ret = store_bundle_mark_exported(x->n->store, x->done[i].e.id, x->done[i].via,
						 x->n->now.unix_ms);
		if (ret == -ENOENT)
			ret = 0;
	}
	if (ret == 0)
		ret = store_batch_commit(x->n->store);
	else
		store_batch_abort(x->n->store);
	if (ret < 0)
		say(x, "export",
		    "the bundles are on the stick, but the store could not record it: %s",
		    store_errmsg(x->n->store));
	return ret;
}

static int run_export(struct exporter *x)
{
	uint64_t purged = 0, free_bytes = STICK_FREE_UNKNOWN;
	int ret;
	if ((ret = store_purge_expired(x->n->store, &x->n->now, &purged)) < 0) {
		say(x, "export", "%s", store_errmsg(x->n->store));
		return ret;
	}
	if ((ret = stick_clean_temp(x->stick, &x->r->temp_removed)) < 0 ||
	    (ret = stick_free_bytes(x->stick, &free_bytes)) < 0) {
		say(x, x->dir, "%s", stick_error(x->stick));
		return ret;
	}
	if (x->r->temp_removed)
		say(x, x->dir, "removed %u temporary file%s of an interrupted export",
		    x->r->temp_removed, x->r->temp_removed == 1 ? "" : "s");
	x->cluster = stick_cluster_size(x->stick);
	x->space_left = free_bytes == STICK_FREE_UNKNOWN ? UINT64_MAX
			: free_bytes > SPACE_RESERVE	 ? free_bytes - SPACE_RESERVE
							 : 0;
	ret = store_bundle_foreach(x->n->store, STORE_QUEUED, &x->n->now, plan_one, x);
	if (ret == -EBADMSG)
		say(x, "export",
		    "some stored bundles failed their checksums and were "
		    "quarantined; `tern queue` no longer lists them");
	if (ret < 0 && ret != -EBADMSG) {
		say(x, "export", "cannot read the queue: %s",
		    ret == -ENOMEM ? "out of memory" : store_errmsg(x->n->store));
		return ret;
	}
	x->done = calloc(x->n_plan ? x->n_plan : 1, sizeof(*x->done));
	x->pend = calloc(x->n_plan ? x->n_plan : 1, sizeof(*x->pend));
	uint8_t *head = malloc(BUNDLE_HEAD_MAX);
	if (!x->done || !x->pend || !head) {
		free(head);
		say(x, "export", "out of memory");
		return -ENOMEM;
	}
	stick_defer_sync(x->stick);
	if (x->h->start)
		x->h->start(x->h->ctx, x->plan_bytes);
	ret = 0;
	size_t i = 0;
	for (; ret == 0 && !x->r->full && i < x->n_plan; i++)
		ret = export_one(x, &x->plan[i], head);
	if (x->h->end)
		x->h->end(x->h->ctx);
	free(head);
	int synced = sync_group(x);
	if (ret == 0)
		ret = synced;
	if (x->r->full) /* those not tried once the stick was full */
		x->r->no_fit += (unsigned)(x->n_plan - i);
	int status = write_manifests(x);
	if (mark_exported(x) < 0)
		status = -EIO;
	x->r->exported = x->n_done - x->r->adopted;
	x->r->ok = ret == 0 && !x->r->failed && status == 0;
	return 0;
}

int stick_export(struct node *n, struct stick *stick, const char *dir,
		 const struct stick_export_opts *opts, const struct stick_export_hooks *hooks,
		 struct stick_export_result *res)
{
	static const struct stick_export_hooks none;
	struct exporter x = {
	    .n = n,
	    .stick = stick,
	    .dir = dir,
	    .o = opts,
	    .h = hooks ? hooks : &none,
	    .r = res,
	    .max_left = opts->max_bytes,
	};
	memset(res, 0, sizeof(*res));
	if (opts->n_to == 0 || opts->n_to > STICK_EXPORT_TARGETS_MAX)
		return -EINVAL;
	int ret = run_export(&x);
	free(x.plan);
	free(x.done);
	free(x.pend);
	return ret;
}
