/* The link session engine: offers, wants, transfers and custody over one peer session. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/link.h"

#define DATA_OVERHEAD	41    /* type, id, offset */
#define SEGMENT_MIN	512   /* a DATA segment shorter than this waits for more budget */
#define READ_AHEAD	65536 /* one store chunk: each is read and checked once */
#define PINGS_MAX	3     /* unanswered, then BYE idle */
#define RETRY_LATER_S	60    /* retry_after_s of a `later` refusal */
#define RETRY_BUSY_S	1     /* ... when the cause clears within a read burst */
#define RETRY_DAMAGED_S 3600  /* a damaged copy is quarantined here: an operator must act */
#define RETRY_QUOTA_S	600   /* this peer's stages are at their cap */
#define RETRY_DISK_S	600   /* the disk, or the stages of all peers, at their limit */
#define RETRY_MAX_S	3600  /* a peer's retry_after_s is honoured up to this */
#define RETRY_UNKNOWN_S 3600  /* from no contact: an operator must add one (or a new session) */
#define DRAIN_MAX	64    /* refused transfers whose late records are still taken */
#define COMPACT_MIN	64    /* finished offers kept before the table is compacted */
#define HEAD_SLACK	256   /* a head re-encoded for the next hop, over the stored one */
#define END_MAX		(1 + 32 + LINK_TAIL_MAX)
#define RESCAN_WHOLE	30 /* periodic rescans: one in this many walks the whole queue */

/*
 * Our offers. An entry lives while the offer is outstanding (OFFERED, WANTED, SENDING),
 * then while the peer's refusal holds (REFUSED: not offered again before retry_at), and
 * goes at the next compaction once DONE (ACKed, or its transfer could not start).
 */
enum out_state { OUT_OFFERED = 1, OUT_WANTED, OUT_SENDING, OUT_REFUSED, OUT_DONE };

struct out_entry {
	uint8_t id[32];
	int64_t rowid;
	uint64_t size;
	uint8_t prio;
	enum out_state state;
	bool marked;	   /* store_bundle_mark_exported queued or done */
	bool keep;	   /* node_keeps_copy: its ACK records a holder, releases nothing */
	bool end_sent;	   /* END went out: waits for ACK or REFUSE */
	uint64_t offset;   /* next payload byte to send */
	uint64_t order;	   /* when it was wanted: transfers of one priority go in this order */
	uint64_t retry_at; /* OUT_REFUSED: offered again from then on; UINT64_MAX never */
	uint64_t cost;	   /* what its transfer may still produce: held from the budget */
	struct bundle_tail tail;
	uint8_t *head; /* the re-encoded head, from the start of the transfer until sent */
	size_t headlen;
};

/*
 * The peer's offers that are under way here: wanted, or being received. A transfer
 * refused before its END leaves the table; its id goes to the drain ring, whose late
 * records (sent before our REFUSE arrived) are read and dropped.
 */
enum in_state { IN_WANTED = 1, IN_RECV };

struct in_entry {
	uint8_t id[32];
	uint8_t prio;	/* as offered */
	uint64_t order; /* when it was wanted */
	uint64_t size;
	uint64_t life_ms; /* the lifetime it had left when offered: its stage's */
	enum in_state state;
	uint64_t from;	 /* the WANT offset: the stage's durable count then */
	uint64_t got;	 /* the next payload offset expected */
	uint64_t synced; /* got at the stage's last sync */
	struct store_stage *stage;
	uint8_t *mem;  /* a small transfer's payload, held here instead of a stage */
	uint8_t *head; /* the HEAD's bytes, until the END */
	size_t headlen;
};

enum op_kind { OP_MARK = 1, OP_RELEASE, OP_HOLDER };

struct op {
	uint8_t id[32];
	enum op_kind kind;
};

struct link_session {
	struct node *n;
	struct store_peer peer;
	struct link_limits lim;
	link_send_fn send;
	void *ctx;

	int err; /* the session is over: every call returns it */
	char why[240];
	bool started, hello_in;
	uint32_t peer_max; /* the peer's max_record: LINK_RECORD_MIN until its HELLO */
	uint64_t now_ms;   /* as of the latest call */

	/* our offers, with an index by id */
	struct out_entry *out;
	size_t n_out, cap_out;
	uint32_t *idx; /* index + 1, 0 empty; open addressing */
	size_t idx_cap;
	size_t outstanding, n_refused, n_done;
	bool scan_more;	   /* the last scan stopped at max_offers */
	bool rescan_due;   /* link_session_rescan, a budget, a retry: scan at the next call */
	bool scan_new_due; /* link_session_scan_new, receipts queued: scan what is new */
	bool batch_mine;   /* group commit: this session opened the store's batch */
	uint8_t *held;	   /* ids committed in the open batch: ACKed after it commits */
	size_t n_held, cap_held;
	int64_t seen_max;    /* every queued rowid up to this was looked at by a whole scan */
	int64_t visit_max;   /* the highest rowid the running scan looked at */
	uint64_t next_retry; /* the earliest retry_at of a refused offer; UINT64_MAX none */
	uint64_t order;
	uint64_t budget;    /* transfer bytes left to produce; UINT64_MAX unlimited */
	uint64_t committed; /* of it, what outstanding offers may still produce */

	/* the peer's offers under way */
	struct in_entry *in;
	size_t n_in, cap_in;
	uint64_t in_order;
	uint8_t (*drained)[32]; /* ring of DRAIN_MAX ids */
	size_t n_drained, drain_next;

	/* answers gathered while a record is handled, sent together */
	struct link_offer *offers;
	size_t n_offers;
	struct link_want *wants;
	size_t n_wants, cap_wants;
	struct link_refuse *refuses;
	size_t n_refuses, cap_refuses;
	uint8_t *acks;
	size_t n_acks, cap_acks;

	/* custody marks and releases, in order, written between records */
	struct op *ops;
	size_t n_ops, cap_ops;
	struct receipt_batch receipts;
	bool receipts_due;

	/* keepalive and rescans */
	uint64_t next_ping, next_rescan, ping_token;
	unsigned unanswered;
	unsigned rescans; /* periodic rescans since the last whole one */

	/* read-ahead of the payload being sent */
	uint8_t *ra;
	size_t ra_len;
	uint64_t ra_off;
	size_t ra_owner; /* out index + 1, 0 none */

	link_event_fn on_event;
	void *event_ctx;

	struct link_stats stats;
	uint8_t *rec;  /* a record being encoded */
	uint8_t *data; /* payload of a DATA record */
};

void link_limits_default(struct link_limits *lim)
{
	*lim = (struct link_limits){
	    .max_record = LINK_RECORD_MAX,
	    .keepalive_s = 30,
	    .max_payload = NODE_MAX_PAYLOAD,
	    .min_life_ms = 1000,
	    .max_offers = 1000,
	    .rescan_s = 10,
	    .max_stages = 8,
	    .stage_peer_max = 8ull << 30,
	    .stage_total_max = 16ull << 30,
	    .disk_reserve = 256ull << 20,
	    .disk_reserve_pct = 5,
	    .stage_life_max_ms = STORE_STAGE_LIFE_MAX_MS,
	    .min_priority = STORE_BULK,
	    .budget_bytes = UINT64_MAX,
	    .stage_sync_bytes = 4u << 20,
	    .small_max = 64u << 10,
	};
}

static void stage_limits(const struct link_session *s, struct store_stage_limits *sl)
{
	*sl = (struct store_stage_limits){
	    .peer_max = s->lim.stage_peer_max,
	    .total_max = s->lim.stage_total_max,
	    .reserve = s->lim.disk_reserve,
	    .reserve_pct = s->lim.disk_reserve_pct,
	    .life_max_ms = s->lim.stage_life_max_ms,
	    /* What is made durable each time can be resumed (a slow line's wish). */
	    .file_min = s->lim.stage_sync_bytes,
	};
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t cap2 = *cap ? *cap * 2 : 16;
	while (cap2 < need)
		cap2 *= 2;
	void *q = realloc(p, cap2 * size);
	if (q)
		*cap = cap2;
	return q;
}

static void hex8(const uint8_t id[32], char out[17])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 8; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[16] = 0;
}

/* ---- the end of a session -------------------------------------------------------- */

static int apply_ops(struct link_session *s);

/* Ends the session with err; bye >= 0 sends BYE with that reason and the text first. */
static int fail(struct link_session *s, int err, int bye, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct link_session *s, int err, int bye, const char *fmt, ...)
{
	if (s->err)
		return s->err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->err = err;
	if (bye >= 0) {
		char text[LINK_BYE_TEXT_MAX + 1];
		size_t k = strnlen(s->why, LINK_BYE_TEXT_MAX);
		memcpy(text, s->why, k);
		text[k] = 0;
		int len = link_encode_bye(s->rec, s->peer_max, (uint8_t)bye, text);
		if (len < 0)
			len = link_encode_bye(s->rec, s->peer_max, (uint8_t)bye, NULL);
		if (len > 0)
			s->send(s->ctx, s->rec,
				(size_t)len); /* the session ends whatever it says */
	}
	apply_ops(s);
	return err;
}

static int protocol(struct link_session *s, const char *what)
{
	return fail(s, -EPROTO, LINK_BYE_PROTOCOL, "protocol: %s", what);
}

static int store_failed(struct link_session *s, int err, const char *what)
{
	if (err == -ENOMEM)
		return fail(s, err, LINK_BYE_DONE, "out of memory");
	return fail(s, err, LINK_BYE_DONE, "store: %s: %s", what, store_errmsg(s->n->store));
}

static int send_rec(struct link_session *s, int len)
{
	if (len < 0)
		return fail(s, len, -1, "cannot encode a record (%s)", strerror(-len));
	int ret = s->send(s->ctx, s->rec, (size_t)len);
	if (ret < 0)
		return fail(s, ret, -1, "send: %s", strerror(-ret));
	return 0;
}

/* ---- our offers --------------------------------------------------------------------- */

static size_t id_hash(const uint8_t id[32], size_t cap)
{
	uint64_t h;
	memcpy(&h, id, sizeof(h)); /* ids are BLAKE2b outputs, and these ones are ours */
	return (size_t)(h & (cap - 1));
}

static long find_out(const struct link_session *s, const uint8_t id[32])
{
	if (!s->idx_cap)
		return -1;
	for (size_t i = id_hash(id, s->idx_cap);; i = (i + 1) & (s->idx_cap - 1)) {
		uint32_t k = s->idx[i];
		if (!k)
			return -1;
		if (memcmp(s->out[k - 1].id, id, 32) == 0)
			return (long)k - 1;
	}
}

/* Rebuilds the index for the entries there are, with room for at least need. */
static int reindex(struct link_session *s, size_t need)
{
	size_t cap = 256;
	while (cap < need * 2)
		cap *= 2;
	uint32_t *idx = calloc(cap, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t k = 0; k < s->n_out; k++) {
		size_t i = id_hash(s->out[k].id, cap);
		while (idx[i])
			i = (i + 1) & (cap - 1);
		idx[i] = (uint32_t)(k + 1);
	}
	free(s->idx);
	s->idx = idx;
	s->idx_cap = cap;
	return 0;
}

static int add_out(struct link_session *s, const struct out_entry *e)
{
	if ((s->n_out + 1) * 2 > s->idx_cap && reindex(s, 2 * (s->n_out + 1)) < 0)
		return -ENOMEM;
	struct out_entry *out = grow(s->out, &s->cap_out, s->n_out + 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	s->out = out;
	out[s->n_out] = *e;
	size_t i = id_hash(e->id, s->idx_cap);
	while (s->idx[i])
		i = (i + 1) & (s->idx_cap - 1);
	s->idx[i] = (uint32_t)(s->n_out + 1);
	s->n_out++;
	return 0;
}

/*
 * Forgets the finished offers (DONE), and the refusals over max_offers, those to be
 * offered again soonest first (nothing is lost: they are offered again early): the
 * table holds at most max_offers outstanding and max_offers refused, whatever the
 * session's length. Between records only (indexes move).
 */
static int compact(struct link_session *s)
{
	while (s->n_refused > s->lim.max_offers) {
		struct out_entry *soonest = NULL;
		for (size_t k = 0; k < s->n_out; k++)
			if (s->out[k].state == OUT_REFUSED &&
			    (!soonest || s->out[k].retry_at < soonest->retry_at))
				soonest = &s->out[k];
		soonest->state = OUT_DONE;
		s->n_refused--;
		s->n_done++;
	}
	if (!s->n_done)
		return 0;
	size_t j = 0;
	for (size_t k = 0; k < s->n_out; k++)
		if (s->out[k].state != OUT_DONE)
			s->out[j++] = s->out[k];
	s->n_out = j;
	s->n_done = 0;
	s->ra_owner = 0; /* a cache of an index that moved */
	if (s->cap_out > 64 && s->n_out < s->cap_out / 4) {
		struct out_entry *out = realloc(s->out, s->cap_out / 2 * sizeof(*out));
		if (out) {
			s->out = out;
			s->cap_out /= 2;
		}
	}
	return reindex(s, s->n_out + 1);
}

/*
 * What the transfer of a bundle may produce at most: HEAD, DATA, END. pump cuts no DATA
 * shorter than SEGMENT_MIN but the last, whatever its budget: at most 8 % over the
 * payload. What the transfer does not use of it goes back at its END.
 */
static uint64_t transfer_cost(uint64_t size, size_t headlen)
{
	uint64_t records = size / SEGMENT_MIN + 1;
	return DATA_OVERHEAD + headlen + HEAD_SLACK + size + records * DATA_OVERHEAD + END_MAX;
}

/* Bytes of e's transfer produced: taken from the budget's hold on it. */
static void spend(struct link_session *s, struct out_entry *e, uint64_t len)
{
	uint64_t k = len < e->cost ? len : e->cost;
	e->cost -= k;
	s->committed -= k;
}

/* Our offer e is over (ACKed, refused, or not to be sent): it holds nothing more. */
static void out_finish(struct link_session *s, struct out_entry *e, enum out_state state)
{
	free(e->head);
	e->head = NULL;
	if (s->ra_owner && &s->out[s->ra_owner - 1] == e)
		s->ra_owner = 0;
	spend(s, e, e->cost);
	e->state = state;
	s->outstanding--;
	if (state == OUT_DONE)
		s->n_done++;
	else
		s->n_refused++;
}

static int flush_offers(struct link_session *s)
{
	int ret = 0;
	if (s->n_offers)
		ret = send_rec(s, link_encode_offer(s->rec, s->peer_max, s->offers, s->n_offers));
	s->n_offers = 0;
	return ret;
}

static int scan_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct link_session *s = ctx;
	(void)head;
	if (s->outstanding >= s->lim.max_offers) {
		s->scan_more = true;
		return 1;
	}
	if (b->rowid > s->visit_max)
		s->visit_max = b->rowid;
	uint8_t prio = b->priority <= STORE_URGENT ? (uint8_t)b->priority : STORE_NORMAL;
	if (prio < s->lim.min_priority || find_out(s, b->id) >= 0 ||
	    !node_routes_to(s->n, b, s->peer.node) || b->age_now_ms >= b->lifetime_ms)
		return 0;
	uint64_t cost = 0;
	if (s->budget != UINT64_MAX) {
		/* Offered only if it can be sent whole: there is no record to stop half-way. */
		cost = transfer_cost(b->payload_len, headlen);
		if (s->committed > s->budget || cost > s->budget - s->committed)
			return 0;
	}
	struct out_entry e = {
	    .rowid = b->rowid,
	    .size = b->payload_len,
	    .prio = prio,
	    .state = OUT_OFFERED,
	    .keep = node_keeps_copy(s->n, b, s->peer.node),
	    .cost = cost,
	};
	memcpy(e.id, b->id, 32);
	if (add_out(s, &e) < 0)
		return -ENOMEM;
	struct link_offer *o = &s->offers[s->n_offers++];
	memcpy(o->id, b->id, 32);
	o->size = b->payload_len;
	o->priority = e.prio;
	o->expires_in_ms = b->lifetime_ms - b->age_now_ms;
	s->outstanding++;
	s->committed += cost;
	s->stats.offered++;
	if (s->n_offers == link_list_fit(LINK_OFFER, s->peer_max))
		return flush_offers(s);
	return 0;
}

/*
 * Offers what is queued for this peer and not offered yet this session, up to max_offers:
 * the whole queue (full), or only the bundles stored since the last scan that finished.
 * A bundle queued by a local process or received from a peer is new, so the frequent
 * case costs what is new, not the length of the queue; what a whole scan is for (a
 * route, a budget or a floor changed; a retry; offers freed) asks for a full one.
 */
static int scan(struct link_session *s, bool full)
{
	if (s->err)
		return s->err;
	s->scan_more = false;
	s->scan_new_due = false;
	if (full)
		s->rescan_due = false;
	int ret = compact(s);
	if (ret < 0)
		return fail(s, ret, LINK_BYE_DONE, "out of memory");
	s->visit_max = 0;
	ret = store_bundle_foreach_after(s->n->store, STORE_QUEUED, full ? 0 : s->seen_max,
					 &s->n->now, scan_one, s);
	/* Cut short (max_offers, an error): the full scan that follows sees the rest. */
	if (!s->scan_more && ret >= 0 && s->visit_max > s->seen_max)
		s->seen_max = s->visit_max;
	if (s->err)
		return s->err;
	if (ret == -ENOMEM)
		return fail(s, ret, LINK_BYE_DONE, "out of memory");
	if (ret < 0 && ret != -EBADMSG)
		s->scan_more = true; /* a read failed: the next tick tries again */
	return flush_offers(s);
}

/* ---- custody: marks and releases, in order ------------------------------------------ */

static int queue_op(struct link_session *s, const uint8_t id[32], enum op_kind kind)
{
	struct op *ops = grow(s->ops, &s->cap_ops, s->n_ops + 1, sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	s->ops = ops;
	memcpy(ops[s->n_ops].id, id, 32);
	ops[s->n_ops++].kind = kind;
	return 0;
}

/* Writes the queued marks and releases; 0 or a store error. */
static int apply_ops(struct link_session *s)
{
	size_t i = 0;
	int ret = 0;
	bool own = false;
	if (!s->n->store)
		return 0; /* closed (node_close): not released, so sent again; never lost */
	/* One commit for all: an ACK of a thousand ids is one fsync, not a thousand. */
	if (s->n_ops > 1 && !store_batch_is_open(s->n->store) &&
	    store_batch_begin(s->n->store) == 0)
		own = true;
	for (; i < s->n_ops; i++) {
		struct op *o = &s->ops[i];
		uint64_t released = 0;
		if (o->kind == OP_MARK)
			ret = store_bundle_mark_exported(s->n->store, o->id, s->peer.node,
							 s->n->now.unix_ms);
		else if (o->kind == OP_HOLDER)
			ret = store_bundle_add_holder(s->n->store, o->id, s->peer.node);
		else
			ret = store_bundle_release(s->n->store, o->id, s->peer.node, &released);
		if (ret == -ENOENT)
			ret = 0; /* gone meanwhile (expired, or released by an earlier session) */
		if (ret == -EBUSY) {
			ret = 0; /* another process writes: later */
			break;
		}
		if (ret < 0)
			break;
		s->stats.released += released;
	}
	if (own && (ret < 0 || store_batch_commit(s->n->store) < 0)) {
		store_batch_abort(s->n->store); /* nothing of it happened: all of it again */
		i = 0;
		if (ret == 0)
			ret = -EIO;
	}
	if (i) {
		memmove(s->ops, s->ops + i, (s->n_ops - i) * sizeof(*s->ops));
		s->n_ops -= i;
	}
	return ret;
}

/* ---- answers to the peer's offers ------------------------------------------------- */

static void event(struct link_session *s, enum link_event_kind kind, const uint8_t id[32],
		  uint64_t size, uint8_t reason, uint32_t retry_s)
{
	if (s->on_event)
		s->on_event(s->event_ctx,
			    &(struct link_event){kind, id, size, reason, retry_s, NULL});
}

void link_session_on_event(struct link_session *s, link_event_fn fn, void *ctx)
{
	s->on_event = fn;
	s->event_ctx = ctx;
}

static int answer_ack(struct link_session *s, const uint8_t id[32])
{
	uint8_t *a = grow(s->acks, &s->cap_acks, s->n_acks + 1, 32);
	if (!a)
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	s->acks = a;
	memcpy(a + 32 * s->n_acks++, id, 32);
	s->stats.acked_in++;
	event(s, LINK_EVENT_ACKED_IN, id, 0, 0, 0);
	return 0;
}

static int answer_refuse(struct link_session *s, const uint8_t id[32], uint8_t reason,
			 uint32_t retry_s)
{
	struct link_refuse *r = grow(s->refuses, &s->cap_refuses, s->n_refuses + 1, sizeof(*r));
	if (!r)
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	s->refuses = r;
	memcpy(r[s->n_refuses].id, id, 32);
	r[s->n_refuses].reason = reason;
	r[s->n_refuses++].retry_after_s = retry_s;
	s->stats.refused_in++;
	event(s, LINK_EVENT_REFUSED_IN, id, 0, reason, retry_s);
	return 0;
}

static int flush_answers(struct link_session *s)
{
	size_t fit;
	int ret = 0;
	fit = link_list_fit(LINK_ACK, s->peer_max);
	for (size_t i = 0; ret == 0 && i < s->n_acks; i += fit) {
		size_t k = s->n_acks - i < fit ? s->n_acks - i : fit;
		ret = send_rec(s, link_encode_ack(s->rec, s->peer_max, s->acks + 32 * i, k));
	}
	fit = link_list_fit(LINK_REFUSE, s->peer_max);
	for (size_t i = 0; ret == 0 && i < s->n_refuses; i += fit) {
		size_t k = s->n_refuses - i < fit ? s->n_refuses - i : fit;
		ret = send_rec(s, link_encode_refuse(s->rec, s->peer_max, s->refuses + i, k));
	}
	fit = link_list_fit(LINK_WANT, s->peer_max);
	for (size_t i = 0; ret == 0 && i < s->n_wants; i += fit) {
		size_t k = s->n_wants - i < fit ? s->n_wants - i : fit;
		ret = send_rec(s, link_encode_want(s->rec, s->peer_max, s->wants + i, k));
	}
	s->n_acks = s->n_refuses = s->n_wants = 0;
	return ret;
}

static struct in_entry *find_in(struct link_session *s, const uint8_t id[32])
{
	for (size_t i = 0; i < s->n_in; i++)
		if (memcmp(s->in[i].id, id, 32) == 0)
			return &s->in[i];
	return NULL;
}

/* Forgets a transfer of the peer's; its stage, if still open, keeps what is durable. */
static void drop_in(struct link_session *s, struct in_entry *e)
{
	store_stage_close(e->stage);
	free(e->mem);
	free(e->head);
	*e = s->in[--s->n_in];
}

static long find_drained(const struct link_session *s, const uint8_t id[32])
{
	for (size_t i = 0; i < s->n_drained; i++)
		if (memcmp(s->drained[i], id, 32) == 0)
			return (long)i;
	return -1;
}

/*
 * Records of id that may still come are read and dropped: the peer sent them before
 * our REFUSE reached it. The oldest of DRAIN_MAX is forgotten (its late records would
 * then end the session: DRAIN_MAX refusals in one round trip).
 */
static void drain(struct link_session *s, const uint8_t id[32])
{
	if (find_drained(s, id) >= 0)
		return;
	if (s->n_drained < DRAIN_MAX) {
		memcpy(s->drained[s->n_drained++], id, 32);
		return;
	}
	memcpy(s->drained[s->drain_next], id, 32);
	s->drain_next = (s->drain_next + 1) % DRAIN_MAX;
}

static void undrain(struct link_session *s, const uint8_t id[32])
{
	long i = find_drained(s, id);
	if (i < 0)
		return;
	memcpy(s->drained[i], s->drained[--s->n_drained], 32);
	if (s->drain_next >= s->n_drained)
		s->drain_next = 0;
}

static int take_offer(struct link_session *s, const struct link_offer *o)
{
	struct store_bundle b;
	struct store_stage_limits sl;
	uint64_t have = 0;
	struct in_entry *e = find_in(s, o->id);
	if (e && e->state == IN_RECV)
		return 0; /* offered again while under way: the transfer answers it */
	if (e)
		drop_in(s, e); /* the peer gave up our WANT (it offers afresh): answered afresh */
	undrain(s, o->id);
	/*
	 * Anything written now would join the batch: no ACK may rest on it (store.h). The
	 * batch, like max_offers transfers under way below, clears within the read burst, so
	 * the retry is short: told to wait a minute, a sender with nothing else to offer sat
	 * idle (bench/daemon.py, 3,000 texts: the last 1,000 arrived 60 s late).
	 */
	if (store_batch_is_open(s->n->store))
		return answer_refuse(s, o->id, LINK_REFUSE_LATER, RETRY_BUSY_S);
	if (o->size > s->lim.max_payload || o->size > NODE_MAX_PAYLOAD)
		return answer_refuse(s, o->id, LINK_REFUSE_TOO_BIG, 0);
	if (o->expires_in_ms < s->lim.min_life_ms)
		return answer_refuse(s, o->id, LINK_REFUSE_EXPIRED, 0);
	int ret = store_bundle_get(s->n->store, o->id, NULL, &b, NULL, 0, NULL);
	if (ret == 0 && b.state != STORE_QUARANTINED) {
		/* Both have it: flooding offers it back to them no more. */
		if (s->n->routing == NODE_ROUTING_EPIDEMIC && queue_op(s, o->id, OP_HOLDER) < 0)
			return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
		return answer_ack(s, o->id); /* durably here already: custody passes */
	}
	if (ret == 0 || ret == -EBADMSG)
		return answer_refuse(s, o->id, LINK_REFUSE_LATER, RETRY_DAMAGED_S);
	if (ret != -ENOENT)
		return answer_refuse(s, o->id, LINK_REFUSE_LATER, RETRY_LATER_S);
	if (s->n_in >= s->lim.max_offers)
		return answer_refuse(s, o->id, LINK_REFUSE_LATER, RETRY_BUSY_S);
	/* What a cut transfer of it left here: the WANT asks from there. */
	if (store_stage_have(s->n->store, s->peer.node, o->id, o->size, &have, NULL) < 0)
		have = 0; /* unreadable: from the start, and the stage's open will say */
	stage_limits(s, &sl);
	ret = store_stage_admit(s->n->store, s->peer.node, o->id, o->size, have, &sl);
	if (ret == -EDQUOT)
		return answer_refuse(s, o->id, LINK_REFUSE_QUOTA, RETRY_QUOTA_S);
	if (ret == -ENOSPC)
		return answer_refuse(s, o->id, LINK_REFUSE_DISK_FULL, RETRY_DISK_S);
	if (ret < 0)
		return answer_refuse(s, o->id, LINK_REFUSE_LATER, RETRY_LATER_S);
	struct in_entry *in = grow(s->in, &s->cap_in, s->n_in + 1, sizeof(*in));
	struct link_want *w = grow(s->wants, &s->cap_wants, s->n_wants + 1, sizeof(*w));
	if (in)
		s->in = in;
	if (w)
		s->wants = w;
	if (!in || !w)
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	in[s->n_in++] = (struct in_entry){.prio = o->priority,
					  .order = ++s->in_order,
					  .size = o->size,
					  .life_ms = o->expires_in_ms,
					  .state = IN_WANTED,
					  .from = have};
	memcpy(in[s->n_in - 1].id, o->id, 32);
	memcpy(w[s->n_wants].id, o->id, 32);
	w[s->n_wants++].offset = have;
	return 0;
}

/* ---- storing the peer's transfers --------------------------------------------------- */

/*
 * Transfer e is refused before it is committed, and forgotten. keep: its stage stays for
 * a resume (synced), else it goes. more: records of it may still come (it was refused
 * before its END): they are drained.
 */
static int refuse_in(struct link_session *s, struct in_entry *e, uint8_t reason, uint32_t retry_s,
		     bool keep, bool more)
{
	uint8_t id[32];
	memcpy(id, e->id, 32);
	if (keep && e->stage && store_stage_sync(e->stage) < 0)
		keep = false; /* poisoned, or purged: nothing to resume from */
	if (keep)
		store_stage_close(e->stage);
	else
		store_stage_drop(e->stage); /* if the row stays, its bytes are voided */
	e->stage = NULL;
	drop_in(s, e);
	if (more)
		drain(s, id);
	return answer_refuse(s, id, reason, retry_s);
}

/* A stage error, answered: the session goes on unless memory ran out. */
static int stage_failed(struct link_session *s, struct in_entry *e, int err, bool more)
{
	if (err == -ENOMEM)
		return fail(s, err, LINK_BYE_DONE, "out of memory");
	if (err == -EDQUOT)
		return refuse_in(s, e, LINK_REFUSE_QUOTA, RETRY_QUOTA_S, false, more);
	if (err == -ENOSPC)
		return refuse_in(s, e, LINK_REFUSE_DISK_FULL, RETRY_DISK_S, false, more);
	/*
	 * Busy (another session stages it, a batch is open): kept. Stale, purged, a failed
	 * write or sync (the stage is poisoned): dropped, from 0 another time.
	 */
	return refuse_in(s, e, LINK_REFUSE_LATER, RETRY_LATER_S, err == -EBUSY, more);
}

/* A copy of id here is quarantined (or its head damaged): an operator must act first. */
static bool quarantined(struct link_session *s, const uint8_t id[32])
{
	struct store_bundle b;
	int ret = store_bundle_get(s->n->store, id, NULL, &b, NULL, 0, NULL);
	return ret == -EBADMSG || (ret == 0 && b.state == STORE_QUARANTINED);
}

/*
 * Transfer e is whole: head, staged bytes and tail go through ingest in one local pass,
 * the store's writer open only for it. ACK once the commit returned.
 */
static void abort_batch(struct link_session *s);
static int settle(struct link_session *s);
static int hold_ack(struct link_session *s, const uint8_t id[32]);

static int commit_in(struct link_session *s, struct in_entry *e, const uint8_t *tail, size_t tlen)
{
	struct ingest *in = NULL;
	struct ingest_result *res = NULL;
	char hex[17];
	int ret;
	hex8(e->id, hex);
	/* Another's batch (a local command's): our ACK would rest on what may be rolled back. */
	if (store_batch_is_open(s->n->store) && !s->batch_mine)
		return refuse_in(s, e, LINK_REFUSE_LATER, RETRY_LATER_S, true, false);
	/* Group commit: the bundles of one read burst share a commit; ACKs wait for it. */
	if (s->lim.group_commit && !s->batch_mine && store_batch_begin(s->n->store) == 0)
		s->batch_mine = true;
	res = malloc(sizeof(*res));
	ret = res ? ingest_new(s->n, &in) : -ENOMEM;
	if (ret < 0) {
		free(res);
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	}
	ingest_expect_id(in, e->id);
	bool decided = ingest_feed(in, e->head, e->headlen) != 0;
	/* The read-ahead buffer carries the staged bytes: it is only a cache of our sending. */
	s->ra_owner = 0;
	if (e->mem && !decided)
		decided = ingest_feed(in, e->mem, e->size) != 0;
	for (uint64_t off = 0; !e->mem && !decided && off < e->size;) {
		ssize_t n = store_stage_read(e->stage, off, s->ra, READ_AHEAD);
		if (n <= 0) {
			ingest_free(in);
			free(res);
			return stage_failed(s, e, n < 0 ? (int)n : -EIO, false);
		}
		decided = ingest_feed(in, s->ra, (size_t)n) != 0;
		off += (uint64_t)n;
	}
	if (!decided)
		ingest_feed(in, tail, tlen);
	ret = ingest_finish(in, res);
	if (ret < 0 && s->batch_mine) {
		/* The batch may hold part of it: all of it goes back, and what it held is refused.
		 */
		abort_batch(s);
		if (s->err)
			ret = s->err;
	}
	if (ret == -ENOSPC) {
		free(res);
		return refuse_in(s, e, LINK_REFUSE_DISK_FULL, RETRY_DISK_S, true, false);
	}
	if (ret == -EBUSY) {
		/* Kept whole: the next WANT asks from its end, and only HEAD and END come. */
		free(res);
		return refuse_in(s, e, LINK_REFUSE_LATER, RETRY_LATER_S, true, false);
	}
	if (ret < 0) {
		ret = store_failed(s, ret, hex); /* the stage stays (link_session_free syncs it) */
	} else {
		switch (res->verdict) {
		case INGEST_DELIVERED:
			receipt_batch_add(&s->receipts, res->inbox.sender_pk, res->inbox.msg_id);
			s->receipts_due = true;
			/* fall through */
		case INGEST_QUEUED:
			/* Kept to flood: not offered back to where it came from. */
			if (s->n->routing == NODE_ROUTING_EPIDEMIC &&
			    queue_op(s, e->id, OP_HOLDER) < 0) {
				ret = fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
				break;
			}
			/* fall through */
		case INGEST_DUPLICATE:
		case INGEST_RECEIPT:
			s->stats.received++;
			/* Custody is ours once the commit returned: now, or at the batch's. */
			ret = s->batch_mine ? hold_ack(s, e->id) : answer_ack(s, e->id);
			break;
		case INGEST_REJECTED:
			if (s->on_event)
				s->on_event(s->event_ctx,
					    &(struct link_event){.kind = LINK_EVENT_REJECTED_IN,
								 .id = e->id,
								 .why = res->reason});
			/* As at the offer: a rotten copy here, not this one, is what is wrong. */
			if (quarantined(s, e->id))
				ret = answer_refuse(s, e->id, LINK_REFUSE_LATER, RETRY_DAMAGED_S);
			/* Resumed: the bytes kept here may be what is wrong; whole next time. */
			else if (e->from > 0)
				ret = answer_refuse(s, e->id, LINK_REFUSE_LATER, RETRY_LATER_S);
			/* Sound, but from no contact of ours: it opens once the operator adds one.
			 */
			else if (res->sender_unknown)
				ret = answer_refuse(s, e->id, LINK_REFUSE_LATER, RETRY_UNKNOWN_S);
			/* Whole and sound, but out of time: the sender may drop it, not distrust
			 * it. */
			else if (res->expired)
				ret = answer_refuse(s, e->id, LINK_REFUSE_EXPIRED, 0);
			else
				ret = answer_refuse(s, e->id, LINK_REFUSE_BAD, 0);
			break;
		case INGEST_PASSED:
			ret = answer_refuse(s, e->id, LINK_REFUSE_POLICY, 0);
			break;
		}
		if (!s->err) {
			/* The bundle is in (or refused): the stage is done with. */
			store_stage_drop(e->stage);
			e->stage = NULL;
		}
	}
	if (!s->err)
		drop_in(s, e); /* answered at its END: nothing more of it comes */
	free(res);
	return ret;
}

static int hold_ack(struct link_session *s, const uint8_t id[32])
{
	uint8_t *a = grow(s->held, &s->cap_held, s->n_held + 1, 32);
	if (!a)
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	s->held = a;
	memcpy(a + 32 * s->n_held++, id, 32);
	return 0;
}

/* The batch failed: nothing of it is here; what it held is refused, to be sent again. */
static void abort_batch(struct link_session *s)
{
	store_batch_abort(s->n->store);
	s->batch_mine = false;
	for (size_t i = 0; i < s->n_held && !s->err; i++)
		answer_refuse(s, s->held + 32 * i, LINK_REFUSE_LATER, RETRY_LATER_S);
	s->n_held = 0;
	receipt_batch_free(&s->receipts); /* their deliveries went back too */
	s->receipts = (struct receipt_batch){0};
	s->receipts_due = false;
}

int link_session_flush(struct link_session *s)
{
	if (!s->batch_mine)
		return s->err;
	if (s->receipts_due) {
		unsigned queued = 0;
		/* In the same commit: a receipt is one more bundle of the batch. */
		receipt_batch_flush(s->n, &s->receipts, &queued);
		s->receipts_due = false;
		s->scan_new_due |= queued > 0;
	}
	int ret = store_batch_commit(s->n->store);
	s->batch_mine = false;
	if (ret < 0) {
		s->n_held = 0;
		return store_failed(s, ret, "group commit"); /* nothing acknowledged */
	}
	for (size_t i = 0; i < s->n_held && ret == 0; i++)
		ret = answer_ack(s, s->held + 32 * i);
	s->n_held = 0;
	if (ret == 0)
		ret = settle(s);
	return ret < 0 ? ret : flush_answers(s);
}

static size_t receiving(const struct link_session *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n_in; i++)
		k += s->in[i].state == IN_RECV;
	return k;
}

/*
 * The sender goes on with the transfer of the highest priority, the earliest wanted
 * within it (docs/link.md, "The engine"): a HEAD of y means that the WANTs sent before
 * y's of no lower priority will not be answered (the sender found the bundle gone or
 * damaged). They are forgotten, and drained should their HEAD come after all.
 */
static void skipped(struct link_session *s, uint64_t order, uint8_t prio)
{
	for (size_t i = 0; i < s->n_in;) {
		struct in_entry *x = &s->in[i];
		if (x->state == IN_WANTED && x->order < order && x->prio >= prio) {
			drain(s, x->id);
			drop_in(s, x); /* the last entry moved here: look at it again */
			continue;
		}
		i++;
	}
}

static int on_head(struct link_session *s, const struct link_msg *m)
{
	struct in_entry *e = find_in(s, m->id);
	if (!e && find_drained(s, m->id) >= 0)
		/* A WANT taken for skipped was answered after all: not now. */
		return answer_refuse(s, m->id, LINK_REFUSE_LATER, RETRY_LATER_S);
	if (!e || e->state != IN_WANTED)
		return protocol(s, "HEAD for a bundle not wanted");
	if (m->payload_len != e->size)
		return protocol(s, "HEAD with another payload size than offered");
	e->got = e->from;
	e->state = IN_RECV;
	skipped(s, e->order, e->prio);
	e = find_in(s, m->id); /* the table moved */
	if (receiving(s) > s->lim.max_stages)
		return refuse_in(s, e, LINK_REFUSE_LATER, RETRY_LATER_S, false, true);
	e->synced = e->from;
	e->head = malloc(m->len ? m->len : 1);
	if (!e->head)
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	memcpy(e->head, m->bytes, m->len);
	e->headlen = m->len;
	if (e->size <= s->lim.small_max && e->from == 0) {
		/*
		 * Small: a stage file and its rows would cost two commits for bytes that
		 * come in one or two records, and a resume would save nothing.
		 */
		e->mem = malloc(e->size ? e->size : 1);
		return e->mem ? 0 : fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	}
	if (s->batch_mine) {
		/*
		 * A stage cannot join the group commit (store_stage_open says -EBUSY): the
		 * bundles received before this HEAD in the same burst are committed and ACKed
		 * first. Refused instead, the transfer came again only after RETRY_LATER_S.
		 */
		uint8_t id[32];
		memcpy(id, m->id, 32);
		int ret = link_session_flush(s);
		if (ret < 0)
			return ret;
		e = find_in(s, id);
		if (!e || e->state != IN_RECV)
			return 0;
	}
	struct store_stage_limits sl;
	stage_limits(s, &sl);
	int ret = store_stage_open(s->n->store, s->peer.node, e->id, e->size, e->from, e->life_ms,
				   &sl, &s->n->now, &e->stage);
	return ret < 0 ? stage_failed(s, e, ret, true) : 0;
}

static int on_data(struct link_session *s, const struct link_msg *m)
{
	struct in_entry *e = find_in(s, m->id);
	if (!e && find_drained(s, m->id) >= 0)
		return 0; /* sent before our REFUSE arrived */
	if (!e || e->state == IN_WANTED)
		return protocol(s, "DATA for a transfer not started");
	if (m->offset != e->got || m->len > e->size - e->got)
		return protocol(s, "DATA not at the next offset, or past the payload");
	e->got += m->len;
	if (e->mem) {
		memcpy(e->mem + (e->got - m->len), m->bytes, m->len);
		return 0;
	}
	int ret = store_stage_append(e->stage, m->bytes, m->len);
	if (ret < 0)
		return stage_failed(s, e, ret, true);
	/* Durable every few MiB: what a cut leaves for the next session's WANT. */
	if (e->got - e->synced >= s->lim.stage_sync_bytes) {
		ret = store_stage_sync(e->stage);
		/* Busy: the resume point only stays back. Else the stage is not to be trusted. */
		if (ret < 0 && ret != -EBUSY)
			return stage_failed(s, e, ret, true);
		e->synced = e->got;
	}
	return 0;
}

static int on_end(struct link_session *s, const struct link_msg *m)
{
	struct in_entry *e = find_in(s, m->id);
	if (!e && find_drained(s, m->id) >= 0) {
		undrain(s, m->id); /* nothing more of it comes */
		return 0;
	}
	if (!e || e->state == IN_WANTED)
		return protocol(s, "END for a transfer not started");
	if (e->got != e->size)
		return protocol(s, "END before the whole payload");
	return commit_in(s, e, m->bytes, m->len);
}

/* ---- the peer's answers to our offers --------------------------------------------- */

static int on_want(struct link_session *s, const struct link_msg *m)
{
	for (size_t i = 0; i < m->count; i++) {
		struct link_want w;
		link_want_at(m, i, &w);
		long k = find_out(s, w.id);
		if (k < 0 || s->out[k].state != OUT_OFFERED)
			return protocol(s, "WANT for a bundle not offered");
		if (w.offset > s->out[k].size)
			return protocol(s, "WANT from past the payload's end");
		s->out[k].state = OUT_WANTED;
		s->out[k].offset = w.offset;
		s->out[k].order = ++s->order;
	}
	return 0;
}

static int on_refuse(struct link_session *s, const struct link_msg *m)
{
	for (size_t i = 0; i < m->count; i++) {
		struct link_refuse r;
		link_refuse_at(m, i, &r);
		long k = find_out(s, r.id);
		if (k < 0)
			return protocol(s, "REFUSE for a bundle not offered");
		struct out_entry *e = &s->out[k];
		if (e->state == OUT_DONE || e->state == OUT_REFUSED)
			continue;
		/* Offered again after retry_after_s (at most RETRY_MAX_S); 0: not this session. */
		bool never = r.reason == LINK_REFUSE_TOO_BIG || r.reason == LINK_REFUSE_BAD ||
			     r.retry_after_s == 0;
		uint32_t retry = r.retry_after_s < RETRY_MAX_S ? r.retry_after_s : RETRY_MAX_S;
		out_finish(s, e, OUT_REFUSED);
		event(s, LINK_EVENT_REFUSED_OUT, e->id, 0, r.reason, r.retry_after_s);
		e->retry_at = never ? UINT64_MAX : s->now_ms + 1000ull * retry;
		if (e->retry_at < s->next_retry)
			s->next_retry = e->retry_at;
		s->stats.refused_out++;
	}
	return 0;
}

static int on_ack(struct link_session *s, const struct link_msg *m)
{
	for (size_t i = 0; i < m->count; i++) {
		const uint8_t *id = link_ack_at(m, i);
		long k = find_out(s, id);
		if (k < 0)
			return protocol(s, "ACK for a bundle not offered");
		struct out_entry *e = &s->out[k];
		if (e->state == OUT_DONE || e->state == OUT_REFUSED)
			continue;
		/* Stored there already (an ACK to the offer): it was handed over all the same. */
		int ret = e->marked ? 0 : queue_op(s, id, OP_MARK);
		if (ret == 0)
			ret = queue_op(s, id, e->keep ? OP_HOLDER : OP_RELEASE);
		if (ret < 0)
			return fail(s, ret, LINK_BYE_DONE, "out of memory");
		e->marked = true;
		out_finish(s, e, OUT_DONE);
		s->stats.acked_out++;
		event(s, LINK_EVENT_ACKED_OUT, e->id, e->size, 0, 0);
	}
	return 0;
}

static int on_hello(struct link_session *s, const struct link_msg *m)
{
	if (s->hello_in)
		return protocol(s, "a second HELLO");
	if (m->hello.version < LINK_VERSION)
		return fail(s, -EPROTONOSUPPORT, LINK_BYE_VERSION,
			    "version: the peer speaks %u, we speak %u", m->hello.version,
			    LINK_VERSION);
	if (m->hello.node != s->peer.node)
		return fail(s, -EPROTO, LINK_BYE_PROTOCOL,
			    "protocol: HELLO from node %" PRIu64 ", but the key is node %" PRIu64,
			    m->hello.node, s->peer.node);
	s->hello_in = true;
	s->peer_max = m->hello.max_record;
	return 0;
}

/* ---- between records: custody, receipts, more offers ------------------------------ */

/* Refusals whose retry_after_s has passed: forgotten, so that the next scan offers again. */
static void retry_due(struct link_session *s)
{
	if (s->now_ms < s->next_retry)
		return;
	s->next_retry = UINT64_MAX;
	for (size_t k = 0; k < s->n_out; k++) {
		struct out_entry *e = &s->out[k];
		if (e->state != OUT_REFUSED)
			continue;
		if (e->retry_at <= s->now_ms) {
			e->state = OUT_DONE;
			s->n_refused--;
			s->n_done++;
			s->rescan_due = true;
		} else if (e->retry_at < s->next_retry) {
			s->next_retry = e->retry_at;
		}
	}
}

static int settle(struct link_session *s)
{
	if (s->err)
		return s->err;
	int ret = apply_ops(s);
	if (ret < 0)
		return store_failed(s, ret, "custody");
	retry_due(s);
	bool rescan = s->rescan_due || (s->scan_more && s->outstanding <= s->lim.max_offers / 2);
	/*
	 * Inside our open batch nothing is offered: a receipt or a forwarded bundle sent
	 * before the commit could outlive a rollback (a receipt home makes the sender drop
	 * its copies). link_session_flush queues the receipts and scans after the commit.
	 */
	if (s->batch_mine)
		return 0;
	if (s->receipts_due) {
		unsigned queued = 0;
		/* A receipt is a courtesy: one that cannot be queued loses no message. */
		receipt_batch_flush(s->n, &s->receipts, &queued);
		s->receipts_due = false;
		s->scan_new_due |= queued > 0;
	}
	if (rescan || s->scan_new_due)
		return scan(s, rescan);
	/* Many offers finished between scans (a long session): memory stays bounded. */
	if (s->n_done >= COMPACT_MIN && s->n_done * 2 >= s->n_out && compact(s) < 0)
		return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
	return 0;
}

/* ---- public ----------------------------------------------------------------------- */

int link_session_new(struct node *n, const struct store_peer *peer, const struct link_limits *lim,
		     link_send_fn send, void *ctx, struct link_session **out)
{
	struct link_limits def;
	if (!lim) {
		link_limits_default(&def);
		lim = &def;
	}
	if (!n || !peer || !send || !out || lim->max_record < LINK_RECORD_MIN ||
	    lim->max_record > LINK_RECORD_MAX || lim->max_offers == 0 || lim->max_stages == 0 ||
	    lim->max_offers > UINT16_MAX * 16u || lim->disk_reserve_pct > 100 ||
	    lim->min_priority > STORE_URGENT || lim->stage_sync_bytes == 0 ||
	    lim->small_max > (64u << 10))
		return -EINVAL;
	struct link_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n = n;
	s->peer = *peer;
	s->lim = *lim;
	s->send = send;
	s->ctx = ctx;
	s->peer_max = LINK_RECORD_MIN;
	s->next_retry = UINT64_MAX;
	s->budget = lim->budget_bytes;
	s->drained = malloc(DRAIN_MAX * sizeof(*s->drained));
	s->rec = malloc(LINK_RECORD_MAX);
	s->data = malloc(LINK_RECORD_MAX);
	s->ra = malloc(READ_AHEAD);
	s->offers = malloc(link_list_fit(LINK_OFFER, LINK_RECORD_MAX) * sizeof(*s->offers));
	if (!s->rec || !s->data || !s->ra || !s->offers || !s->drained) {
		link_session_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void link_session_free(struct link_session *s)
{
	if (!s)
		return;
	if (s->batch_mine && s->n->store) {
		/* Good bundles: kept. Their ACKs are lost with the link; the next offer gets one.
		 */
		if (s->receipts_due) {
			unsigned queued;
			receipt_batch_flush(s->n, &s->receipts, &queued);
			s->receipts_due = false;
		}
		if (store_batch_commit(s->n->store) < 0)
			store_batch_abort(s->n->store);
	}
	free(s->held);
	apply_ops(s);
	if (s->receipts_due && s->n->store) {
		unsigned queued;
		receipt_batch_flush(s->n, &s->receipts, &queued);
	}
	receipt_batch_free(&s->receipts);
	for (size_t i = 0; i < s->n_out; i++)
		free(s->out[i].head);
	for (size_t i = 0; i < s->n_in; i++) {
		/*
		 * Cut: what was received is made durable, for the next session's WANT. A stage
		 * whose sync failed is poisoned (dropped); one the store orphaned (the store was
		 * closed first: it made it durable then) only goes.
		 */
		int ret = s->in[i].stage ? store_stage_sync(s->in[i].stage) : 0;
		if (ret < 0 && ret != -EBUSY && ret != -EBADF)
			store_stage_drop(s->in[i].stage);
		else
			store_stage_close(s->in[i].stage);
		free(s->in[i].mem);
		free(s->in[i].head);
	}
	free(s->drained);
	free(s->out);
	free(s->idx);
	free(s->in);
	free(s->offers);
	free(s->wants);
	free(s->refuses);
	free(s->acks);
	free(s->ops);
	free(s->ra);
	free(s->rec);
	free(s->data);
	free(s);
}

int link_session_start(struct link_session *s, uint64_t now_ms)
{
	if (s->err)
		return s->err;
	if (s->started)
		return -EINVAL;
	s->started = true;
	s->now_ms = now_ms;
	struct link_hello h = {
	    .version = LINK_VERSION,
	    .node = s->n->node_num,
	    .max_record = s->lim.max_record,
	    .keepalive_s = s->lim.keepalive_s,
	};
	s->next_ping = now_ms + 1000ull * s->lim.keepalive_s;
	s->next_rescan = now_ms + 1000ull * s->lim.rescan_s;
	int ret = send_rec(s, link_encode_hello(s->rec, s->peer_max, &h));
	return ret < 0 ? ret : scan(s, true);
}

static int handle(struct link_session *s, const struct link_msg *m)
{
	if (!s->hello_in && m->type != LINK_HELLO)
		return protocol(s, "a record before HELLO");
	switch (m->type) {
	case LINK_HELLO:
		return on_hello(s, m);
	case LINK_OFFER:
		for (size_t i = 0; i < m->count && !s->err; i++) {
			struct link_offer o;
			link_offer_at(m, i, &o);
			take_offer(s, &o);
		}
		return s->err;
	case LINK_WANT:
		return on_want(s, m);
	case LINK_REFUSE:
		return on_refuse(s, m);
	case LINK_HEAD:
		return on_head(s, m);
	case LINK_DATA:
		return on_data(s, m);
	case LINK_END:
		return on_end(s, m);
	case LINK_ACK:
		return on_ack(s, m);
	case LINK_PING: {
		int len = link_encode_ping(s->rec, s->peer_max, LINK_PONG, m->token);
		return send_rec(s, len);
	}
	case LINK_PONG:
		return 0; /* any record counts as an answer */
	case LINK_BYE:
		return fail(s, -ESHUTDOWN, -1, "the peer said BYE (%u)%s%s", m->bye_reason,
			    m->bye_text[0] ? ": " : "", m->bye_text);
	}
	return protocol(s, "unknown record");
}

int link_session_input(struct link_session *s, const uint8_t *rec, size_t len, uint64_t now_ms)
{
	struct link_msg m;
	const char *why = NULL;
	char what[96];
	if (s->err)
		return s->err;
	if (!s->started)
		return -EINVAL;
	if (len > s->lim.max_record)
		return protocol(s, "a record over our max_record");
	if (link_parse(rec, len, &m, &why) < 0) {
		snprintf(what, sizeof(what), "malformed record: %s", why ? why : "?");
		return protocol(s, what);
	}
	s->unanswered = 0;
	s->now_ms = now_ms;
	s->next_ping = now_ms + 1000ull * s->lim.keepalive_s;
	handle(s, &m);
	if (!s->err)
		flush_answers(s);
	if (!s->err)
		settle(s);
	return s->err;
}

/* ---- sending transfers ------------------------------------------------------------ */

static int capture_head(void *ctx, const uint8_t *buf, size_t len)
{
	struct out_entry *e = ctx;
	e->head = malloc(len);
	if (!e->head)
		return -ENOMEM;
	memcpy(e->head, buf, len);
	e->headlen = len;
	return -ECANCELED; /* the head is all we take from node_emit: payload goes by pread */
}

/* Payload bytes of e at off into buf, through the read-ahead (one chunk read at a time). */
static int read_payload(struct link_session *s, size_t k, uint64_t off, uint8_t *buf, size_t len)
{
	struct out_entry *e = &s->out[k];
	while (len) {
		if (s->ra_owner != k + 1 || off < s->ra_off || off >= s->ra_off + s->ra_len) {
			ssize_t got =
			    store_payload_pread(s->n->store, e->rowid, off, s->ra, READ_AHEAD);
			if (got == 0)
				got = -EBADMSG; /* shorter than its length says */
			if (got < 0)
				return (int)got;
			s->ra_owner = k + 1;
			s->ra_off = off;
			s->ra_len = (size_t)got;
		}
		size_t skip = (size_t)(off - s->ra_off);
		size_t n = s->ra_len - skip < len ? s->ra_len - skip : len;
		memcpy(buf, s->ra + skip, n);
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * Readies transfer k: its head re-encoded for the next hop now, the CRC state of its
 * payload (through the wanted offset). 0; -ENOENT gone, -ELOOP hop limit, -EBADMSG
 * damaged (each: the transfer is dropped); -ENOMEM.
 */
static int prepare(struct link_session *s, size_t k)
{
	struct out_entry *e = &s->out[k];
	struct store_bundle b;
	struct bundle_header *h = malloc(sizeof(*h));
	uint8_t *stored = malloc(BUNDLE_HEAD_MAX);
	size_t storedlen = 0;
	int ret = -ENOMEM;
	if (!h || !stored)
		goto out;
	ret = store_bundle_get(s->n->store, e->id, &s->n->now, &b, stored, BUNDLE_HEAD_MAX,
			       &storedlen);
	if (ret == -ENOSPC)
		ret = -EBADMSG;
	if (ret == 0 && (b.state != STORE_QUEUED || b.payload_len != e->size))
		ret = -ENOENT;
	if (ret < 0)
		goto out;
	e->rowid = b.rowid;
	ret = node_emit(s->n, &b, stored, storedlen, capture_head, e, NULL);
	if (ret == -ELOOP) {
		store_bundle_delete(s->n->store, e->id); /* nobody will take it: it goes */
		s->stats.hop_limited++;
		goto out;
	}
	if (ret != -ECANCELED || !e->head) {
		ret = ret == -ENOMEM ? ret : -EBADMSG;
		goto out;
	}
	ret = node_decode_head(e->head, e->headlen, h);
	if (ret < 0) {
		ret = -EBADMSG;
		goto out;
	}
	bundle_tail_init(&e->tail, h);
	/* A resumed transfer: the payload CRC still covers the bytes not sent again. */
	for (uint64_t off = 0; h->payload_crc_type != BUNDLE_CRC_NONE && off < e->offset;) {
		size_t n =
		    e->offset - off < LINK_RECORD_MAX ? (size_t)(e->offset - off) : LINK_RECORD_MAX;
		ret = read_payload(s, k, off, s->data, n);
		if (ret < 0)
			goto out;
		bundle_tail_update(&e->tail, s->data, n);
		off += n;
	}
	ret = 0;
out:
	if (ret < 0) {
		free(e->head);
		e->head = NULL;
	}
	free(stored);
	free(h);
	return ret;
}

/* The transfer to go on with: the highest priority, the earliest wanted within it. */
static long pick(const struct link_session *s)
{
	long best = -1;
	for (size_t k = 0; k < s->n_out; k++) {
		const struct out_entry *e = &s->out[k];
		if ((e->state != OUT_WANTED && e->state != OUT_SENDING) || e->end_sent)
			continue;
		if (best < 0 || e->prio > s->out[best].prio ||
		    (e->prio == s->out[best].prio && e->order < s->out[best].order))
			best = (long)k;
	}
	return best;
}

bool link_session_wants_pump(const struct link_session *s)
{
	return !s->err && pick(s) >= 0;
}

/* One record of transfer k if it fits room: its length, 0 if it does not fit, or -errno. */
static int step(struct link_session *s, size_t k, size_t room)
{
	struct out_entry *e = &s->out[k];
	char hex[17];
	int len, ret;
	hex8(e->id, hex);
	if (e->state == OUT_WANTED) {
		if (!e->head) {
			ret = prepare(s, k);
			if (ret == -ENOMEM)
				return fail(s, ret, LINK_BYE_DONE, "out of memory");
			if (ret < 0) {
				/* Never started there: the peer's WANT just goes unanswered. */
				out_finish(s, e, OUT_DONE);
				return 0;
			}
		}
		len = link_encode_head(s->rec, s->peer_max, e->id, e->size, e->head, e->headlen);
		if (len < 0)
			return fail(s, len, LINK_BYE_DONE, "bundle %s: head too big to send", hex);
		if ((size_t)len > room)
			return 0;
		/* Exported to this peer before the first byte: its ACK can then release it. */
		if (!e->marked && queue_op(s, e->id, OP_MARK) < 0)
			return fail(s, -ENOMEM, LINK_BYE_DONE, "out of memory");
		e->marked = true;
		ret = apply_ops(s);
		if (ret < 0)
			return store_failed(s, ret, "custody");
		ret = send_rec(s, len);
		if (ret < 0)
			return ret;
		free(e->head);
		e->head = NULL;
		e->state = OUT_SENDING;
		spend(s, e, (uint64_t)len);
		return len;
	}
	if (e->offset < e->size) {
		uint64_t left = e->size - e->offset;
		size_t n = s->peer_max - DATA_OVERHEAD;
		if (room <= DATA_OVERHEAD)
			return 0;
		if (n > room - DATA_OVERHEAD)
			n = room - DATA_OVERHEAD;
		if (n > left)
			n = (size_t)left;
		if (n < left && n < SEGMENT_MIN)
			return 0;
		ret = read_payload(s, k, e->offset, s->data, n);
		if (ret < 0)
			/* Started there: only the end of the session frees the peer's writer. */
			return fail(s, ret, LINK_BYE_DONE, "bundle %s: %s here while sent", hex,
				    ret == -ENOENT ? "deleted" : "damaged");
		len = link_encode_data(s->rec, s->peer_max, e->id, e->offset, s->data, n);
		if (len < 0 || (size_t)len > room)
			return len < 0 ? fail(s, len, LINK_BYE_DONE, "cannot encode DATA") : 0;
		ret = send_rec(s, len);
		if (ret < 0)
			return ret;
		bundle_tail_update(&e->tail, s->data, n);
		e->offset += n;
		spend(s, e, (uint64_t)len);
		return len;
	}
	uint8_t tail[LINK_TAIL_MAX];
	int tlen = bundle_encode_tail(&e->tail, tail, sizeof(tail));
	if (tlen < 0)
		return fail(s, tlen, LINK_BYE_DONE, "bundle %s: cannot encode its end", hex);
	len = link_encode_end(s->rec, s->peer_max, e->id, tail, (size_t)tlen);
	if (len < 0 || (size_t)len > room)
		return len < 0 ? fail(s, len, LINK_BYE_DONE, "cannot encode END") : 0;
	ret = send_rec(s, len);
	if (ret < 0)
		return ret;
	e->end_sent = true; /* waits for the ACK, or a REFUSE */
	if (s->ra_owner == k + 1)
		s->ra_owner = 0;
	spend(s, e, e->cost); /* all of it produced: what the estimate held over goes back */
	return len;
}

int link_session_pump(struct link_session *s, uint64_t now_ms, size_t budget, size_t *produced)
{
	size_t done = 0;
	if (produced)
		*produced = 0;
	if (s->err)
		return s->err;
	s->now_ms = now_ms;
	while (s->hello_in) {
		long k = pick(s);
		if (k < 0)
			break;
		int len = step(s, (size_t)k, budget - done);
		if (len < 0)
			return len;
		if (len == 0 && s->out[k].state != OUT_DONE)
			break; /* the next record does not fit: the caller calls again */
		done += (size_t)len;
	}
	s->stats.bytes_out += done;
	if (s->budget != UINT64_MAX)
		s->budget -= done < s->budget ? done : s->budget;
	if (produced)
		*produced = done;
	return settle(s);
}

int link_session_tick(struct link_session *s, uint64_t now_ms)
{
	if (s->err)
		return s->err;
	if (!s->started)
		return -EINVAL;
	s->now_ms = now_ms;
	if (s->lim.keepalive_s && now_ms >= s->next_ping) {
		if (s->unanswered >= PINGS_MAX)
			return fail(s, -ETIMEDOUT, LINK_BYE_IDLE, "idle: %u keepalives unanswered",
				    s->unanswered);
		int ret =
		    send_rec(s, link_encode_ping(s->rec, s->peer_max, LINK_PING, ++s->ping_token));
		if (ret < 0)
			return ret;
		s->unanswered++;
		s->next_ping = now_ms + 1000ull * s->lim.keepalive_s;
	}
	/*
	 * What another process stored is new, so most rescans look at what is new only:
	 * a whole scan walks the queue, which at a hub or under flooding is long. Changes
	 * the daemon is told of (routes, peers, budgets) ask for a whole one anyway.
	 */
	if (s->lim.rescan_s && now_ms >= s->next_rescan) {
		s->next_rescan = now_ms + 1000ull * s->lim.rescan_s;
		if (++s->rescans >= RESCAN_WHOLE) {
			s->rescans = 0;
			s->scan_more = true;
		} else {
			s->scan_new_due = true;
		}
	}
	return settle(s);
}

uint64_t link_session_deadline(const struct link_session *s)
{
	uint64_t t = UINT64_MAX;
	if (s->err || !s->started)
		return t;
	if (s->lim.keepalive_s)
		t = s->next_ping;
	if (s->lim.rescan_s && s->next_rescan < t)
		t = s->next_rescan;
	if (s->next_retry < t)
		t = s->next_retry;
	return s->rescan_due || s->scan_new_due ? 0 : t;
}

void link_session_rescan(struct link_session *s)
{
	s->rescan_due = true;
}

void link_session_scan_new(struct link_session *s)
{
	s->scan_new_due = true;
}

void link_session_set_min_priority(struct link_session *s, enum store_priority p)
{
	if (p > STORE_URGENT)
		return;
	s->lim.min_priority = p;
	s->rescan_due = true; /* a lower floor lets waiting bundles go */
}

void link_session_set_budget(struct link_session *s, uint64_t bytes)
{
	s->budget = bytes;
	s->rescan_due = true; /* what did not fit may fit now */
}

bool link_session_idle(const struct link_session *s)
{
	return !s->err && s->started && s->outstanding == 0 && s->n_in == 0 && s->n_ops == 0 &&
	       !s->rescan_due && !s->scan_new_due && !s->receipts_due &&
	       !(s->scan_more && s->outstanding == 0);
}

int link_session_close(struct link_session *s)
{
	return fail(s, -ESHUTDOWN, LINK_BYE_DONE, "closed here");
}

const char *link_session_why(const struct link_session *s)
{
	return s->why;
}

void link_session_stats(const struct link_session *s, struct link_stats *out)
{
	*out = s->stats;
	out->offers_held = s->n_out;
	out->transfers_held = s->n_in; /* and the drain ring, DRAIN_MAX ids allocated once */
}
