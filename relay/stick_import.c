/* Sneakernet import: receipts release custody, manifests vouch for bundles, bundles go in. */
#include "relay/stick_import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One durable commit per this many bundles or bytes: an fsync per bundle would dominate. */
#define BATCH_BUNDLES 1000
#define BATCH_BYTES   (256ull << 20)
/* Manifests kept in memory for the hash checks; past this, bundles are checked without. */
#define MANIFEST_MEMORY (64u << 20)

/* A manifest sealed to this node. */
struct manifest {
	char name[STICK_SHOW_MAX + 1];
	uint8_t *body;
	size_t len;
	bool own;    /* written by this node on an earlier export */
	int custody; /* index in import.custody of its exporter, or -1 (no peer to answer) */
};

/* The custody receipt this import writes to one peer: the bundles it took from it. */
struct custody {
	struct store_peer peer;
	uint8_t *ids; /* 32 bytes each */
	size_t n, cap;
	size_t committed; /* the first ones, durable here: only those may be receipted */
};

struct delivered {
	uint8_t sender[32];
	uint8_t msg_id[ENVELOPE_MSG_ID_LEN];
};

struct importer {
	struct node *n;
	struct stick *stick;
	const char *dir;
	bool writable;
	const struct stick_import_hooks *h;
	struct stick_import_result *r;

	struct manifest *man;
	size_t n_man;
	size_t man_bytes;
	uint8_t *acked; /* ids this node already receipted here (its own receipts), sorted */
	size_t n_acked, cap_acked;
	struct custody *custody;
	size_t n_custody;

	struct delivered *staged; /* delivered in the open batch: receipted once it commits */
	size_t n_staged, cap_staged;
	struct receipt_batch to_senders;
	unsigned in_batch;
	uint64_t batch_bytes;

	unsigned other_receipts, other_manifests; /* sealed to other nodes */
	bool reported; /* an error that stops the import was printed already */
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t cap2 = *cap ? *cap * 2 : 64;
	while (cap2 < need)
		cap2 *= 2;
	void *q = realloc(p, cap2 * size);
	if (q)
		*cap = cap2;
	return q;
}

static void say(struct importer *x, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(struct importer *x, const char *what, const char *fmt, ...)
{
	char why[700];
	va_list ap;
	x->reported = true;
	if (!x->h->problem)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	x->h->problem(x->h->ctx, what, why);
}

/* One file's verdict, counted and told. */
static void report(struct importer *x, const char *sub, const char *name, const char *verdict,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void report(struct importer *x, const char *sub, const char *name, const char *verdict,
		   const char *fmt, ...)
{
	char detail[400] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	if (strcmp(verdict, "rejected") == 0)
		x->r->rejected++;
	if (x->h->file)
		x->h->file(x->h->ctx, sub, name, verdict, detail);
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static bool already_acked(const struct importer *x, const uint8_t id[32])
{
	return x->n_acked && bsearch(id, x->acked, x->n_acked, 32, cmp_id);
}

static int custody_index(struct importer *x, const struct store_peer *p)
{
	for (size_t i = 0; i < x->n_custody; i++)
		if (x->custody[i].peer.node == p->node)
			return (int)i;
	struct custody *c = realloc(x->custody, (x->n_custody + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	x->custody = c;
	memset(&c[x->n_custody], 0, sizeof(*c));
	c[x->n_custody].peer = *p;
	return (int)x->n_custody++;
}

/* ---- receipts: custody coming home ------------------------------------------------ */

struct release {
	struct importer *x;
	uint64_t peer;
	uint8_t *ids; /* released here: their copies on the stick can go */
	size_t n, cap;
};

static int release_one(void *ctx, const uint8_t *id, size_t idlen)
{
	struct release *r = ctx;
	uint64_t released = 0;
	(void)idlen;
	int ret = store_bundle_release(r->x->n->store, id, r->peer, &released);
	if (ret == 0 && released) {
		uint8_t *ids = grow(r->ids, &r->cap, r->n + 1, 32);
		if (!ids)
			return -ENOMEM;
		r->ids = ids;
		memcpy(ids + 32 * r->n++, id, 32);
	}
	return ret;
}

static int remember_acked(void *ctx, const uint8_t *id, size_t idlen)
{
	struct importer *x = ctx;
	(void)idlen;
	uint8_t *a = grow(x->acked, &x->cap_acked, x->n_acked + 1, 32);
	if (!a)
		return -ENOMEM;
	x->acked = a;
	memcpy(a + 32 * x->n_acked++, id, 32);
	return 0;
}

/* A peer's custody receipt for bundles we exported: release them, here and on the stick. */
static int take_custody_receipt(struct importer *x, const char *name, const uint8_t *body,
				size_t len, const struct store_peer *peer)
{
	struct release r = {.x = x, .peer = peer->node};
	struct stick_receipt rc;
	int ret = store_batch_begin(x->n->store);
	if (ret == 0)
		ret = stick_receipt_parse(body, len, &rc, release_one, &r, NULL);
	if (ret == 0)
		ret = store_batch_commit(x->n->store);
	else
		store_batch_abort(x->n->store);
	if (ret < 0) {
		say(x, "import", "custody receipt %s not taken: %s", name,
		    ret == -ENOMEM ? "out of memory" : store_errmsg(x->n->store));
		free(r.ids);
		return ret;
	}
	x->r->released += (unsigned)r.n;
	report(x, "receipts", name, "custody receipt", "%s holds %u bundle%s; %zu released here",
	       peer->name, rc.count, rc.count == 1 ? "" : "s", r.n);
	/*
	 * Durable here: the copies of what was released, and the receipt, are no longer
	 * needed. Only those: a bundle this node did not hand to that peer stays on the stick.
	 */
	if (x->writable) {
		for (size_t i = 0; i < r.n; i++)
			stick_bundle_remove(x->stick, r.ids + 32 * i);
		stick_remove(x->stick, STICK_RECEIPTS, name);
	}
	free(r.ids);
	return 0;
}

/*
 * What anyone sees of a record without its keys (docs/envelope.md, "Wire format"): a
 * full-form envelope, 1 to 64 stanzas, then u32be-framed chunks: the inner header of a
 * control record (no name), full data chunks but the last, the signature.
 */
#define REC_FORM_FULL	 0x01
#define REC_FORM_COMPACT 0x02 /* and 0x03, its version 2 */
#define REC_TAG		 17u  /* secretstream overhead of each chunk */
#define REC_CHUNK	 65536u
#define REC_OUTER(n)	 (2u + 24u + 80u * (size_t)(n) + 32u)
#define REC_HEAD(n)	 (76u + 32u * (size_t)(n) + REC_TAG)
#define REC_SIG		 (64u + REC_TAG)

/*
 * True if buf has the shape of a sealed record, else false and *why says what it is
 * instead. Stanzas name no recipient, so a record that opens with none of our keys is
 * another office's only if it has this shape; anything else is damage, and without this
 * check garbage starting 0x02 or 0x03 (a compact envelope: one in 128) or 0x01 0x01..0x06 (a
 * whole outer header) would pass for another office's record and go unreported.
 */
static bool record_shaped(const uint8_t *buf, size_t len, const char **why)
{
	if (buf[0] != REC_FORM_FULL) {
		*why = buf[0] == REC_FORM_COMPACT || buf[0] == REC_FORM_COMPACT + 1
			   ? "a compact envelope, which never carries a record"
			   : "not a sealed tern record (unknown envelope form)";
		return false;
	}
	*why = "not a sealed tern record (a recipient count of 0 or over 64)";
	if (len < 2 || buf[1] < 1 || buf[1] > ENVELOPE_MAX_RECIPIENTS)
		return false;
	*why = "cut, extended or garbled (its chunk lengths do not frame a record)";
	size_t n = buf[1], pos = REC_OUTER(n);
	struct envelope_meta meta = {.kind = ENVELOPE_CONTROL};
	bool last_data = false; /* a data chunk shorter than REC_CHUNK ends the data */
	if (len < pos)
		return false;
	for (unsigned chunk = 0;; chunk++) {
		if (len - pos < 4)
			return false;
		size_t clen = (size_t)buf[pos] << 24 | (size_t)buf[pos + 1] << 16 |
			      (size_t)buf[pos + 2] << 8 | buf[pos + 3];
		pos += 4;
		if (clen > len - pos)
			return false;
		pos += clen;
		if (chunk == 0) {
			if (clen != REC_HEAD(n))
				return false;
		} else if (pos == len) {
			/* The signature, after at least one data chunk (a record has a body). */
			if (clen != REC_SIG || chunk < 2)
				return false;
			break;
		} else {
			if (last_data || clen <= REC_TAG || clen > REC_CHUNK + REC_TAG)
				return false;
			last_data = clen < REC_CHUNK + REC_TAG;
			meta.size += clen - REC_TAG;
		}
	}
	/* The crypto module's own arithmetic agrees, or the layout above is out of date. */
	return envelope_sealed_size(n, &meta) == len;
}

/*
 * Opens a record file of sub ("receipts" or "manifests"): 1 and the verified body (the
 * caller frees it) if it is sealed to this node; 0 if it was reported or is another
 * office's (*others counts those); -ENOMEM.
 */
static int open_record(struct importer *x, const char *sub, const char *name, const uint8_t *buf,
		       size_t len, const char *problem, unsigned *others, uint8_t **body,
		       size_t *bodylen, struct envelope_meta *meta)
{
	const char *why;
	if (problem) {
		report(x, sub, name, "rejected", "%s", problem);
		return 0;
	}
	if (!record_shaped(buf, len, &why)) {
		report(x, sub, name, "rejected", "damaged: %s", why);
		return 0;
	}
	int ret = node_open_record(x->n, buf, len, body, bodylen, meta);
	if (ret == -ENOKEY) {
		++*others; /* sealed to another office */
		return 0;
	}
	if (ret == -ENOMEM)
		return ret;
	if (ret < 0) {
		report(x, sub, name, "rejected", "%s",
		       ret == -EKEYREJECTED
			   ? "forged: its signature does not verify"
			   : "damaged: it does not decrypt and authenticate as a tern record");
		return 0;
	}
	return 1;
}

static int on_receipt_file(void *ctx, const char *name, const uint8_t *buf, size_t len,
			   const char *problem)
{
	struct importer *x = ctx;
	struct envelope_meta meta;
	struct stick_receipt rc;
	struct store_peer peer;
	uint8_t *body;
	size_t bodylen;
	const char *why;
	int ret = open_record(x, "receipts", name, buf, len, problem, &x->other_receipts, &body,
			      &bodylen, &meta);
	if (ret <= 0)
		return ret;
	bool own = memcmp(meta.sender_sign_pk, x->n->pub.sign_pk, 32) == 0;
	ret = stick_receipt_parse(body, bodylen, &rc, NULL, NULL, &why);
	if (ret < 0) {
		report(x, "receipts", name, "rejected", "malformed receipt: %s", why);
	} else if (rc.node != identity_node_number(meta.sender_sign_pk)) {
		report(x, "receipts", name, "rejected",
		       "signed by one node for another (ipn:%" PRIu64 ")", rc.node);
	} else if (rc.kind != STICK_RECEIPT_CUSTODY) {
		report(x, "receipts", name, "ignored",
		       "a delivery receipt file (this tern sends them as bundles)");
	} else if (own) {
		/* Written by an earlier import here, not carried home yet: not written again. */
		ret = stick_receipt_parse(body, bodylen, &rc, remember_acked, x, NULL);
	} else if (store_peer_by_key(x->n->store, meta.sender_sign_pk, &peer) < 0) {
		report(x, "receipts", name, "ignored", "from ipn:%" PRIu64 ", which is not a peer",
		       rc.node);
	} else {
		ret = take_custody_receipt(x, name, body, bodylen, &peer);
	}
	free(body);
	return ret == -ENOMEM || ret == -EIO || ret == -ENOSPC ? ret : 0;
}

/* ---- manifests: what the exporters say they wrote ---------------------------------- */

static int on_manifest_file(void *ctx, const char *name, const uint8_t *buf, size_t len,
			    const char *problem)
{
	struct importer *x = ctx;
	struct envelope_meta meta;
	struct stick_manifest m;
	struct store_peer peer;
	uint8_t *body;
	size_t bodylen;
	const char *why;
	int ret = open_record(x, "manifests", name, buf, len, problem, &x->other_manifests, &body,
			      &bodylen, &meta);
	if (ret <= 0)
		return ret;
	if (stick_manifest_parse(body, bodylen, &m, NULL, NULL, &why) < 0) {
		report(x, "manifests", name, "rejected", "malformed manifest: %s", why);
	} else if (m.node != identity_node_number(meta.sender_sign_pk)) {
		report(x, "manifests", name, "rejected",
		       "signed by one node for another (ipn:%" PRIu64 ")", m.node);
	} else if (memcmp(meta.sender_sign_pk, x->n->pub.sign_pk, 32) != 0 &&
		   store_peer_by_key(x->n->store, meta.sender_sign_pk, &peer) < 0) {
		/* Anyone who knows our key can seal to us: only a peer says what we are to carry.
		 */
		report(x, "manifests", name, "ignored", "from ipn:%" PRIu64 ", which is not a peer",
		       m.node);
	} else if (bodylen > MANIFEST_MEMORY - x->man_bytes) {
		report(
		    x, "manifests", name, "ignored",
		    "too many manifests to hold: the bundles only it lists are left on the stick");
	} else {
		struct manifest *mm = realloc(x->man, (x->n_man + 1) * sizeof(*mm));
		if (!mm) {
			free(body);
			return -ENOMEM;
		}
		x->man = mm;
		mm = &x->man[x->n_man++];
		snprintf(mm->name, sizeof(mm->name), "%s", name);
		mm->body = body;
		mm->len = bodylen;
		mm->own = memcmp(meta.sender_sign_pk, x->n->pub.sign_pk, 32) == 0;
		mm->custody = mm->own ? -1 : custody_index(x, &peer);
		x->man_bytes += bodylen;
		return mm->custody == -ENOMEM ? -ENOMEM : 0;
	}
	free(body);
	return 0;
}

static int any_on_stick(void *ctx, const struct stick_manifest_entry *e)
{
	return stick_has_bundle(ctx, e->id) ? 1 : 0;
}

/* Our own manifests whose bundles have all left the stick describe nothing any more. */
static void remove_stale_own_manifests(struct importer *x)
{
	for (size_t i = 0; x->writable && i < x->n_man; i++) {
		struct stick_manifest m;
		struct manifest *mm = &x->man[i];
		if (mm->own &&
		    stick_manifest_parse(mm->body, mm->len, &m, any_on_stick, x->stick, NULL) == 0)
			stick_remove(x->stick, STICK_MANIFESTS, mm->name);
	}
}

/* ---- bundles ------------------------------------------------------------------------ */

static int begin_batch(struct importer *x)
{
	int ret = store_batch_begin(x->n->store);
	if (ret < 0) {
		say(x, "import", "cannot write to the store: %s", store_errmsg(x->n->store));
	}
	return ret;
}

static int commit_batch(struct importer *x)
{
	int ret = store_batch_commit(x->n->store);
	if (ret < 0) {
		say(x, "import", "the store did not take the last %u bundles: %s", x->in_batch,
		    store_errmsg(x->n->store));
		return ret;
	}
	for (size_t i = 0; i < x->n_custody; i++)
		x->custody[i].committed = x->custody[i].n;
	for (size_t i = 0; i < x->n_staged; i++)
		receipt_batch_add(&x->to_senders, x->staged[i].sender, x->staged[i].msg_id);
	x->n_staged = 0;
	x->in_batch = 0;
	x->batch_bytes = 0;
	return 0;
}

struct feed {
	struct ingest *in;
	bool listed; /* a manifest lists this copy: read on to the end to check its hash */
};

static int feed_ingest(void *ctx, const uint8_t *buf, size_t len)
{
	struct feed *f = ctx;
	return ingest_feed(f->in, buf, len) && !f->listed ? -ECANCELED : 0;
}

/* A peer's manifest sealed to us lists it: this node is its next hop. */
static bool listed(const struct importer *x, const uint8_t id[32])
{
	struct stick_manifest_entry me;
	for (size_t i = 0; i < x->n_man; i++)
		if (!x->man[i].own &&
		    stick_manifest_lookup(x->man[i].body, x->man[i].len, id, &me) == 0)
			return true;
	return false;
}

/* What the manifests say of this copy: -ENOENT none lists it, 0 one matches, -EBADMSG none does. */
static int manifest_verdict(const struct importer *x, const struct stick_entry *e,
			    const uint8_t hash[32], const char **which)
{
	int verdict = -ENOENT;
	for (size_t i = 0; i < x->n_man; i++) {
		struct stick_manifest_entry me;
		if (stick_manifest_lookup(x->man[i].body, x->man[i].len, e->id, &me) < 0)
			continue;
		if (me.size == e->size && memcmp(me.hash, hash, 32) == 0)
			return 0;
		verdict = -EBADMSG;
		*which = x->man[i].name;
	}
	return verdict;
}

/* The exporters whose manifest lists this very copy get a custody receipt for it. */
static int owe_custody(struct importer *x, const struct stick_entry *e, const uint8_t hash[32])
{
	if (already_acked(x, e->id))
		return 0;
	for (size_t i = 0; i < x->n_man; i++) {
		struct stick_manifest_entry me;
		struct manifest *mm = &x->man[i];
		if (mm->custody < 0 || stick_manifest_lookup(mm->body, mm->len, e->id, &me) < 0 ||
		    me.size != e->size || memcmp(me.hash, hash, 32) != 0)
			continue;
		struct custody *c = &x->custody[mm->custody];
		uint8_t *ids = grow(c->ids, &c->cap, c->n + 1, 32);
		if (!ids)
			return -ENOMEM;
		c->ids = ids;
		memcpy(ids + 32 * c->n++, e->id, 32);
	}
	return 0;
}

static int stage_delivery(struct importer *x, const struct store_inbox *in)
{
	struct delivered *d = grow(x->staged, &x->cap_staged, x->n_staged + 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	x->staged = d;
	memcpy(d[x->n_staged].sender, in->sender_pk, 32);
	memcpy(d[x->n_staged++].msg_id, in->msg_id, ENVELOPE_MSG_ID_LEN);
	return 0;
}

/* Reads one copy into the store; 0 also for a rejected copy, an error only when the store fails. */
static int on_bundle(void *ctx, const struct stick_entry *e)
{
	struct importer *x = ctx;
	struct ingest *in;
	struct ingest_result res;
	uint8_t hash[32];
	const char *which = NULL;
	if (e->problem) {
		if (e->code == STICK_UNREADABLE)
			report(x, "bundles", e->name, "rejected", "%s: %s", e->problem,
			       strerror(-e->error));
		else
			report(x, "bundles", e->name, "rejected", "%s", e->problem);
		return 0;
	}
	int ret = ingest_new(x->n, &in);
	if (ret < 0)
		return ret;
	ingest_expect_id(in, e->id);
	/*
	 * An exporter lists what it means for us in a manifest sealed to us. A bundle that
	 * none of ours lists, on a stick with manifests for others, is their cargo: taking a
	 * copy would only send it twice (and over costly links). With no other manifests at
	 * all, a bundle for another node is taken to forward (a stick of raw bundles).
	 */
	struct feed feed = {.in = in, .listed = listed(x, e->id)};
	if (x->other_manifests && !feed.listed)
		ingest_no_relay(in);
	/*
	 * A copy its manifest lists is hashed to the end even when ingest gave up early: a
	 * damaged stick is then named as the cause, not the sender's envelope.
	 */
	ret = stick_bundle_read(x->stick, e, feed_ingest, &feed, hash);
	if (ret < 0 && ret != -ECANCELED) {
		ingest_free(in);
		report(x, "bundles", e->name, "rejected", "%s",
		       ret == -ESTALE ? "changed while it was read" : stick_error(x->stick));
		return 0;
	}
	if (ret == 0 && manifest_verdict(x, e, hash, &which) == -EBADMSG) {
		ingest_free(in);
		report(x, "bundles", e->name, "rejected",
		       "not the bytes its manifest %s lists: altered or damaged on the stick",
		       which);
		return 0;
	}
	ret = ingest_finish(in, &res);
	if (ret < 0) {
		say(x, "import", "%s: not stored: %s", e->name,
		    ret == -ENOMEM ? "out of memory" : store_errmsg(x->n->store));
		return ret;
	}
	char msg[33];
	switch (res.verdict) {
	case INGEST_DELIVERED:
		hex_encode(res.inbox.msg_id, 16, msg);
		report(x, "bundles", e->name, "delivered", "message %.12s (%s)", msg,
		       res.inbox.kind == ENVELOPE_FILE ? "file" : "text");
		x->r->delivered++;
		ret = stage_delivery(x, &res.inbox);
		break;
	case INGEST_RECEIPT:
		report(x, "bundles", e->name, "delivery receipt", "%u message%s delivered",
		       res.receipts, res.receipts == 1 ? "" : "s");
		x->r->receipts++;
		break;
	case INGEST_QUEUED:
		report(x, "bundles", e->name, "queued", "for ipn:%" PRIu64, res.dest_node);
		x->r->queued++;
		break;
	case INGEST_DUPLICATE:
		report(x, "bundles", e->name, "duplicate", NULL);
		x->r->duplicate++;
		break;
	case INGEST_PASSED:
		report(x, "bundles", e->name, "left",
		       "for ipn:%" PRIu64 ", another office's cargo (no manifest for this node "
		       "lists it)",
		       res.dest_node);
		x->r->left++;
		return 0;
	case INGEST_REJECTED:
		report(x, "bundles", e->name, "rejected", "%s", res.reason);
		return 0;
	}
	if (ret == 0)
		ret = owe_custody(x, e, hash);
	if (ret < 0)
		return ret;
	x->in_batch++;
	x->batch_bytes += e->size;
	if (x->in_batch < BATCH_BUNDLES && x->batch_bytes < BATCH_BYTES)
		return 0;
	ret = commit_batch(x);
	return ret < 0 ? ret : begin_batch(x);
}

static int import_bundles(struct importer *x)
{
	int ret = begin_batch(x);
	if (ret == 0)
		ret = stick_bundle_foreach(x->stick, on_bundle, x);
	if (ret == 0)
		return commit_batch(x);
	store_batch_abort(x->n->store);
	if (!x->reported) /* else on_bundle or the store said why; this is the stick's error */
		say(x, x->dir, "%s", ret == -ENOMEM ? "out of memory" : stick_error(x->stick));
	return ret;
}

/* ---- custody receipts out ------------------------------------------------------------ */

static int write_custody(struct importer *x, struct custody *c)
{
	struct stick_receipt r = {
	    .kind = STICK_RECEIPT_CUSTODY,
	    .node = x->n->node_num,
	    .created_ms = x->n->clock_trusted ? x->n->now.unix_ms : 0,
	};
	struct envelope_recipient to;
	memcpy(to.sign_pk, c->peer.sign_pk, 32);
	memcpy(to.box_pk, c->peer.box_pk, 32);
	/* One id may come from two of the peer's manifests: a receipt names it once. */
	if (c->committed > 1) {
		size_t n = 1;
		qsort(c->ids, c->committed, 32, cmp_id);
		for (size_t i = 1; i < c->committed; i++)
			if (memcmp(c->ids + 32 * i, c->ids + 32 * (n - 1), 32) != 0)
				memmove(c->ids + 32 * n++, c->ids + 32 * i, 32);
		c->committed = n;
	}
	for (size_t start = 0; start < c->committed;) {
		size_t count = c->committed - start;
		if (count > STICK_LIST_MAX)
			count = STICK_LIST_MAX;
		uint8_t *body = NULL, *sealed = NULL;
		size_t bodylen, sealedlen;
		char name[STICK_NAME_MAX + 1];
		int ret = stick_receipt_encode(&r, c->ids + 32 * start, count, &body, &bodylen);
		if (ret == 0)
			ret = node_seal_record(x->n, &to, 1, body, bodylen, &sealed, &sealedlen);
		if (ret == 0)
			ret = stick_put(x->stick, STICK_RECEIPTS, sealed, sealedlen, name);
		free(body);
		free(sealed);
		if (ret < 0) {
			say(x, x->dir,
			    "no custody receipt for %s's %zu bundles: %s (the next import writes "
			    "it)",
			    c->peer.name, c->committed - start,
			    ret == -ENOMEM ? "out of memory" : stick_error(x->stick));
			return ret;
		}
		x->r->custody_written += (unsigned)count;
		start += count;
	}
	return 0;
}

static void free_import(struct importer *x)
{
	for (size_t i = 0; i < x->n_man; i++)
		free(x->man[i].body);
	free(x->man);
	for (size_t i = 0; i < x->n_custody; i++)
		free(x->custody[i].ids);
	free(x->custody);
	free(x->acked);
	free(x->staged);
	receipt_batch_free(&x->to_senders);
}

int stick_import(struct node *n, struct stick *stick, const char *dir, bool writable,
		 const struct stick_import_hooks *hooks, struct stick_import_result *res)
{
	static const struct stick_import_hooks none;
	struct importer x = {
	    .n = n,
	    .stick = stick,
	    .dir = dir,
	    .writable = writable,
	    .h = hooks ? hooks : &none,
	    .r = res,
	};
	memset(res, 0, sizeof(*res));
	int ret = stick_foreach_file(stick, STICK_RECEIPTS, on_receipt_file, &x);
	if (ret == 0) {
		if (x.n_acked > 1)
			qsort(x.acked, x.n_acked, 32, cmp_id);
		ret = stick_foreach_file(stick, STICK_MANIFESTS, on_manifest_file, &x);
	}
	if (ret < 0 && !x.reported)
		say(&x, dir, "%s", ret == -ENOMEM ? "out of memory" : stick_error(stick));
	if (ret == 0) {
		remove_stale_own_manifests(&x);
		ret = import_bundles(&x);
	}
	for (size_t i = 0; writable && i < x.n_custody; i++) {
		int wret = write_custody(&x, &x.custody[i]);
		if (wret < 0 && ret == 0)
			ret = wret;
	}
	int fret = receipt_batch_flush(n, &x.to_senders, &res->acks);
	if (fret < 0) {
		say(&x, "import", "delivery receipts not queued: %s", store_errmsg(n->store));
		if (ret == 0)
			ret = fret;
	}
	free_import(&x);
	return ret;
}
