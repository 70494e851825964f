/* The API for one connection: requests in, replies and subscription events out. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "relay/api.h"

#define QUEUE_LEN 16 /* inbox entries or sent changes taken from the store per scan */

enum in_state { IN_LINE, IN_BODY, IN_SKIP };

struct api_client {
	struct node *n;
	struct api_hooks hooks;
	int dead; /* the sticky error that ends the connection */

	enum in_state in;
	char line[API_LINE_MAX + 1];
	size_t line_len;
	struct api_request req; /* the request whose body is coming; points into line */
	const char *req_code;	/* its error's code, or NULL */
	char why[256];		/* and its text */
	uint8_t *body;
	uint64_t body_have, skip;

	uint8_t *out;
	size_t out_off, out_len, out_cap;
	size_t mark; /* where the line being written began */
	bool oom;

	bool subscribed, inbox_dirty, sent_dirty;
	int64_t inbox_seq; /* the last inbox entry an event was made for */
	struct store_inbox *inq;
	size_t inq_n, inq_i;
	uint64_t sent_seq; /* the last change of a sent row reported (store_sent.change_seq) */
};

/* ---- output --------------------------------------------------------------------------- */

static size_t pending(const struct api_client *c)
{
	return c->out_len - c->out_off;
}

static void out_put(struct api_client *c, const void *p, size_t len)
{
	if (c->oom || len == 0)
		return;
	if (c->out_cap - c->out_len < len && c->out_off) {
		memmove(c->out, c->out + c->out_off, pending(c));
		c->out_len -= c->out_off;
		c->mark -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_cap - c->out_len < len) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap - c->out_len < len)
			cap *= 2;
		uint8_t *grown = realloc(c->out, cap);
		if (!grown) {
			c->oom = true;
			return;
		}
		c->out = grown;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
}

static void out_str(struct api_client *c, const char *s)
{
	out_put(c, s, strlen(s));
}

static void out_printf(struct api_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct api_client *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Only numbers and short words come through here: longer is a bug, shown cut. */
	if (n > 0)
		out_put(c, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if there is none. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || n > avail)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	uint32_t cp = n == 2   ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3f)
		      : n == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3f)
			       : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 |
				     (p[3] & 0x3f);
	/* Overlong forms, surrogates and code points past U+10FFFF are not text. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string: JSON is UTF-8, so bytes that are not become U+FFFD. */
static void out_json(struct api_client *c, const void *buf, size_t len)
{
	const unsigned char *p = buf, *run = p;
	out_put(c, "\"", 1);
	while (len) {
		size_t n = utf8_len(p, len);
		char u[8];
		const char *esc = NULL;
		if (n == 0) {
			esc = "\\ufffd";
			n = 1;
		} else if (*p == '"') {
			esc = "\\\"";
		} else if (*p == '\\') {
			esc = "\\\\";
		} else if (*p == '\n') {
			esc = "\\n";
		} else if (*p == '\t') {
			esc = "\\t";
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(u, sizeof(u), "\\u%04x", *p);
			esc = u;
		}
		if (esc) {
			out_put(c, run, (size_t)(p - run));
			out_str(c, esc);
			run = p + n;
		}
		p += n;
		len -= n;
	}
	out_put(c, run, (size_t)(p - run));
	out_put(c, "\"", 1);
}

static void out_jstr(struct api_client *c, const char *s)
{
	out_json(c, s, strlen(s));
}

static void out_time(struct api_client *c, uint64_t unix_ms)
{
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	char buf[32];
	if (unix_ms == 0 || !gmtime_r(&t, &tm) ||
	    strftime(buf, sizeof(buf), "\"%Y-%m-%dT%H:%M:%SZ\"", &tm) == 0)
		out_str(c, "null");
	else
		out_str(c, buf);
}

static void out_hex(struct api_client *c, const uint8_t *buf, size_t len)
{
	char h[129];
	hex_encode(buf, len, h);
	out_put(c, "\"", 1);
	out_str(c, h);
	out_put(c, "\"", 1);
}

/* Every line is written whole or not at all: out of memory takes back its start. */
static void line_begin(struct api_client *c)
{
	c->mark = c->out_len;
}

static void line_abort(struct api_client *c)
{
	c->out_len = c->mark;
}

static void line_end(struct api_client *c)
{
	out_put(c, "\n", 1);
	if (c->oom) {
		c->out_len = c->mark;
		c->dead = -ENOMEM;
	}
}

static void reply_begin(struct api_client *c, const struct api_request *r)
{
	line_begin(c);
	out_str(c, "{\"ok\":true");
	if (r && r->tag) {
		out_str(c, ",\"tag\":");
		out_jstr(c, r->tag);
	}
}

static void reply_end(struct api_client *c)
{
	out_put(c, "}", 1);
	line_end(c);
}

/* Error codes (docs/api.md): what a program can act on without parsing the text. */
#define E_BAD	      "bad_request"
#define E_NOT_FOUND   "not_found"
#define E_AMBIGUOUS   "ambiguous"
#define E_TOO_LARGE   "too_large"
#define E_FAILED      "failed"
#define E_UNSUPPORTED "unsupported"
#define E_PROTOCOL    "protocol"
#define E_OVERLOADED  "overloaded"

static void reply_err(struct api_client *c, const struct api_request *r, const char *code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply_err(struct api_client *c, const struct api_request *r, const char *code,
		      const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	line_begin(c);
	out_str(c, "{\"ok\":false");
	if (r && r->tag) {
		out_str(c, ",\"tag\":");
		out_jstr(c, r->tag);
	}
	out_printf(c, ",\"code\":\"%s\",\"error\":", code);
	out_jstr(c, msg);
	out_put(c, "}", 1);
	line_end(c);
}

/* The last line of a connection: the stream cannot go on. */
static void fatal(struct api_client *c, int err, const char *code, const char *msg)
{
	reply_err(c, NULL, code, "%s (closing the connection)", msg);
	c->dead = err;
}

/* ---- arguments ---------------------------------------------------------------------- */

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t len = strlen(s);
	if (len == 0 || len > 19)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* As the CLI's --lifetime: digits and s, m, h, d or w; at most ten years. */
static int parse_lifetime(const char *s, uint64_t *out)
{
	static const struct {
		char unit;
		uint64_t ms;
	} units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}, {'w', 604800000}};
	char digits[24];
	size_t len = strlen(s);
	uint64_t unit = 1000, v;
	if (len == 0 || len >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, s, len + 1);
	if (digits[len - 1] < '0' || digits[len - 1] > '9') {
		unit = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (digits[len - 1] == units[i].unit)
				unit = units[i].ms;
		if (!unit)
			return -EINVAL;
		digits[len - 1] = '\0';
	}
	if (parse_uint(digits, 10ull * 366 * 86400000 / unit, &v) < 0 || v == 0)
		return -EINVAL;
	*out = v * unit;
	return 0;
}

static int parse_priority(const char *s, enum store_priority *out)
{
	static const char *const names[] = {"bulk", "normal", "urgent"};
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum store_priority)i;
			return 0;
		}
	return -EINVAL;
}

/* limit= for the listing verbs. */
static int list_limit(struct api_client *c, const struct api_request *r, uint64_t *limit)
{
	const char *s = api_request_get(r, "limit");
	*limit = API_LIST_DEFAULT;
	if (s && (parse_uint(s, API_LIST_MAX, limit) < 0 || *limit == 0)) {
		reply_err(c, r, E_BAD, "limit=%s: a number from 1 to %d", s, API_LIST_MAX);
		return -EINVAL;
	}
	return 0;
}

/* ---- what the store holds, as JSON ------------------------------------------------------- */

struct by_node {
	uint64_t node;
	char name[STORE_NAME_MAX + 1];
};

static int match_node(void *ctx, const struct store_contact *ct)
{
	struct by_node *b = ctx;
	if (ct->node != b->node)
		return 0;
	snprintf(b->name, sizeof(b->name), "%s", ct->name);
	return 1;
}

/* The contact's name, or null: names are local aliases, the key is the identity. */
static void out_contact_by_node(struct api_client *c, uint64_t node)
{
	struct by_node b = {.node = node};
	if (node && store_contact_foreach(c->n->store, match_node, &b) == 1)
		out_jstr(c, b.name);
	else
		out_str(c, "null");
}

static void out_inbox_fields(struct api_client *c, const struct store_inbox *e)
{
	struct store_contact ct;
	char fpr[IDENTITY_FINGERPRINT_LEN];
	out_printf(c, "\"seq\":%" PRId64 ",\"id\":", e->rowid);
	out_hex(c, e->msg_id, sizeof(e->msg_id));
	out_printf(c, ",\"kind\":\"%s\",\"size\":%" PRIu64,
		   e->kind == ENVELOPE_FILE ? "file" : "text", e->size);
	if (e->kind == ENVELOPE_FILE) {
		out_str(c, ",\"name\":");
		out_jstr(c, e->name);
	}
	out_str(c, ",\"from\":");
	if (store_contact_by_key(c->n->store, e->sender_pk, &ct) == 0)
		out_jstr(c, ct.name);
	else
		out_str(c, "null");
	identity_fingerprint(e->sender_pk, fpr);
	out_str(c, ",\"sender\":");
	out_jstr(c, fpr);
	out_str(c, ",\"sent\":");
	out_time(c, e->created_unix_ms);
	out_str(c, ",\"received\":");
	out_time(c, e->received_unix_ms);
	out_printf(c, ",\"read\":%s", e->read ? "true" : "false");
}

static const char *sent_state_name(int state)
{
	switch (state) {
	case STORE_SENT_QUEUED:
		return "queued";
	case STORE_SENT_HANDED_OVER:
		return "forwarded";
	case STORE_SENT_DELIVERED:
		return "delivered";
	}
	return "unknown";
}

static void out_sent_fields(struct api_client *c, const struct store_sent *e)
{
	out_str(c, "\"id\":");
	out_hex(c, e->msg_id, sizeof(e->msg_id));
	out_str(c, ",\"to\":");
	out_contact_by_node(c, e->to_node);
	out_printf(c, ",\"node\":%" PRIu64 ",\"bundle\":", e->to_node);
	out_hex(c, e->bundle_id, sizeof(e->bundle_id));
	out_printf(c, ",\"state\":\"%s\",\"created\":", sent_state_name(e->state));
	out_time(c, e->created_unix_ms);
	out_str(c, ",\"changed\":");
	out_time(c, e->changed_unix_ms);
}

/* Plaintext held until node_open_inbox has verified it, never more than cap bytes. */
struct mem_spool {
	uint8_t *buf;
	size_t len, cap;
};

static int spool_mem(void *ctx, const uint8_t *buf, size_t len)
{
	struct mem_spool *m = ctx;
	if (len > m->cap - m->len)
		return -EBADMSG; /* more than the entry's size: not what was stored */
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

/* Opens a text entry into m, a buffer of its size (the caller checked that it is small). */
static int open_text(struct api_client *c, const struct store_inbox *e, struct mem_spool *m)
{
	struct envelope_meta meta;
	m->cap = (size_t)e->size;
	m->len = 0;
	m->buf = malloc(m->cap ? m->cap : 1);
	if (!m->buf)
		return -ENOMEM;
	int ret = node_open_inbox(c->n, e, spool_mem, m, &meta);
	if (ret < 0) {
		explicit_bzero(m->buf, m->len);
		free(m->buf);
		m->buf = NULL;
	}
	return ret;
}

static void free_text(struct mem_spool *m)
{
	if (m->buf)
		explicit_bzero(m->buf, m->len);
	free(m->buf);
	m->buf = NULL;
}

static const char *open_error(int err)
{
	if (err == -EBADMSG || err == -EKEYREJECTED)
		return "the stored message no longer verifies (damaged store?)";
	if (err == -ENOENT)
		return "the stored message is gone";
	return strerror(-err);
}

/* store_inbox_find's errors as replies; 0 if found. */
static int find_entry(struct api_client *c, const struct api_request *r, struct store_inbox *e)
{
	const char *id = api_request_get(r, "id");
	if (!id) {
		reply_err(c, r, E_BAD, "%s needs id=HEXPREFIX (a message id, 4 to 32 hex digits)",
			  r->verb);
		return -EINVAL;
	}
	int err = store_inbox_find(c->n->store, id, e);
	if (err == -ENOENT)
		reply_err(c, r, E_NOT_FOUND, "no message %s in the inbox", id);
	else if (err == -EEXIST)
		reply_err(c, r, E_AMBIGUOUS,
			  "more than one message starts with %s: give more digits", id);
	else if (err == -EINVAL)
		reply_err(c, r, E_BAD, "id=%s: not a message id (4 to 32 hex digits)", id);
	else if (err < 0)
		reply_err(c, r, E_FAILED, "the inbox: %s", strerror(-err));
	return err;
}

/* ---- verbs ------------------------------------------------------------------------------ */

static void do_ping(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	reply_begin(c, r);
	out_printf(c, ",\"api\":%d", API_VERSION);
	reply_end(c);
}

static void do_queued(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	if (c->hooks.queued)
		c->hooks.queued(c->hooks.ctx);
	reply_begin(c, r);
	reply_end(c);
}

static void do_status(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	char *buf = NULL;
	size_t len = 0;
	if (!c->hooks.status) {
		reply_err(c, r, E_UNSUPPORTED, "no status here (not served by a running daemon)");
		return;
	}
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		reply_err(c, r, E_FAILED, "status: %s", strerror(errno));
		return;
	}
	int ret = c->hooks.status(c->hooks.ctx, f);
	if (fclose(f) != 0 && ret == 0)
		ret = -ENOMEM;
	size_t at = 0;
	while (ret == 0 && at < len && (buf[at] == ' ' || buf[at] == '\n'))
		at++;
	if (ret < 0) {
		reply_err(c, r, E_FAILED, "status: %s", strerror(-ret));
	} else if (at == len || buf[at] != '{') {
		reply_err(c, r, E_FAILED, "status: the daemon's status is not a JSON object");
	} else {
		/* Outside strings a newline is only white space; inside them JSON escapes it. */
		for (size_t i = at; i < len; i++)
			if (buf[i] == '\n' || buf[i] == '\r')
				buf[i] = ' ';
		reply_begin(c, r);
		out_str(c, ",\"status\":");
		out_put(c, buf + at, len - at);
		reply_end(c);
	}
	free(buf);
}

struct mem_reader {
	const uint8_t *buf;
	size_t len, off;
};

static long read_mem(void *ctx, uint8_t *buf, size_t cap)
{
	struct mem_reader *m = ctx;
	size_t n = m->len - m->off < cap ? m->len - m->off : cap;
	memcpy(buf, m->buf + m->off, n);
	m->off += n;
	return (long)n;
}

static long read_fd(void *ctx, uint8_t *buf, size_t cap)
{
	int fd = *(int *)ctx;
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n >= 0)
			return (long)n;
		if (errno != EINTR)
			return -errno;
	}
}

static bool base_name_valid(const char *name)
{
	size_t len = strlen(name);
	return len >= 1 && len <= ENVELOPE_NAME_MAX && !strchr(name, '/') &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Resolves to=NAME[,NAME...] into rcpt; 0 or an error already replied. */
static int resolve(struct api_client *c, const struct api_request *r, struct store_contact *rcpt,
		   size_t *n_rcpt)
{
	const char *to = api_request_get(r, "to");
	*n_rcpt = 0;
	if (!to || !*to) {
		reply_err(c, r, E_BAD, "send needs to=NAME[,NAME...] (contacts)");
		return -EINVAL;
	}
	for (const char *p = to;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char name[STORE_NAME_MAX + 1];
		if (len == 0 || len > STORE_NAME_MAX) {
			reply_err(c, r, E_BAD, "to=: an empty or too long contact name");
			return -EINVAL;
		}
		if (*n_rcpt == ENVELOPE_MAX_RECIPIENTS) {
			reply_err(c, r, E_BAD, "to=: at most %d recipients",
				  ENVELOPE_MAX_RECIPIENTS);
			return -EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		int err = store_contact_get(c->n->store, name, &rcpt[*n_rcpt]);
		if (err == -ENOENT) {
			reply_err(c, r, E_NOT_FOUND, "no such contact: %s", name);
			return err;
		}
		if (err < 0) {
			reply_err(c, r, E_FAILED, "contacts: %s", strerror(-err));
			return err;
		}
		++*n_rcpt;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

/* send: a text (the body) or a file (the body with name=, or path=), sealed and queued. */
static void do_send(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	const char *s, *name = api_request_get(r, "name"), *path = api_request_get(r, "path");
	struct submit_request req = {
	    .kind = name ? ENVELOPE_FILE : ENVELOPE_TEXT,
	    .name = name,
	    .priority = STORE_NORMAL,
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	struct store_contact *rcpt = NULL;
	struct submit_result *res = NULL;
	struct mem_reader mem = {body, (size_t)r->length, 0};
	size_t n_rcpt;
	int fd = -1;

	if ((s = api_request_get(r, "priority")) && parse_priority(s, &req.priority) < 0) {
		reply_err(c, r, E_BAD, "priority=%s: bulk, normal or urgent", s);
		goto out;
	}
	if ((s = api_request_get(r, "lifetime")) && parse_lifetime(s, &req.lifetime_ms) < 0) {
		reply_err(c, r, E_BAD, "lifetime=%s: like 90m, 12h, 7d (up to 10 years)", s);
		goto out;
	}
	if (path && r->has_length) {
		reply_err(c, r, E_BAD,
			  "give the content as a body (length=) or as path=, not both");
		goto out;
	}
	if (!path && !r->has_length) {
		reply_err(c, r, E_BAD, "send needs length=N and N bytes after the line, or path=");
		goto out;
	}
	if (path && path[0] != '/') {
		reply_err(c, r, E_BAD, "path=%s: an absolute path (the daemon has its own cwd)",
			  path);
		goto out;
	}
	if (name && !base_name_valid(name)) {
		reply_err(c, r, E_BAD, "name=: 1 to 255 bytes, no '/', not . or ..");
		goto out;
	}
	rcpt = calloc(ENVELOPE_MAX_RECIPIENTS, sizeof(*rcpt));
	res = malloc(sizeof(*res));
	if (!rcpt || !res) {
		reply_err(c, r, E_FAILED, "out of memory");
		goto out;
	}
	if (resolve(c, r, rcpt, &n_rcpt) < 0)
		goto out;
	if (path) {
		struct stat st;
		/* O_NONBLOCK: a FIFO must not hang the daemon before fstat refuses it. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			reply_err(c, r, errno == ENOENT ? E_NOT_FOUND : E_FAILED, "%s: %s", path,
				  strerror(errno));
			goto out;
		}
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			reply_err(c, r, E_BAD, "%s: not a regular file", path);
			goto out;
		}
		if (!name) {
			req.name = strrchr(path, '/') + 1;
			if (!base_name_valid(req.name)) {
				reply_err(c, r, E_BAD, "%s: no file name to send it under", path);
				goto out;
			}
		}
		req.kind = ENVELOPE_FILE;
		req.size = (uint64_t)st.st_size;
		req.read = read_fd;
		req.read_ctx = &fd;
	} else {
		req.size = r->length;
		req.read = read_mem;
		req.read_ctx = &mem;
	}

	const char *why = "";
	int err = node_submit(c->n, rcpt, n_rcpt, &req, res, &why);
	if (err < 0) {
		reply_err(c, r, err == -EINVAL ? E_BAD : E_FAILED, "send: %s%s%s", why ? why : "",
			  why && *why ? ": " : "", strerror(-err));
		goto out;
	}
	reply_begin(c, r);
	out_str(c, ",\"id\":");
	out_hex(c, res->msg_id, sizeof(res->msg_id));
	out_printf(c, ",\"compact\":%s,\"bundles\":[", res->compact ? "true" : "false");
	for (size_t i = 0; i < res->n_bundles; i++) {
		out_str(c, i ? ",{\"to\":" : "{\"to\":");
		out_jstr(c, rcpt[i].name);
		out_str(c, ",\"id\":");
		out_hex(c, res->bundle_id[i], 32);
		out_printf(c, ",\"size\":%" PRIu64 "}", res->bundle_len[i]);
	}
	out_put(c, "]", 1);
	reply_end(c);
	if (c->hooks.queued)
		c->hooks.queued(c->hooks.ctx);
out:
	if (fd >= 0)
		close(fd);
	free(rcpt);
	free(res);
}

struct inbox_list {
	struct api_client *c;
	int64_t after;
	uint64_t limit, count;
	bool more;
};

static int list_entry(void *ctx, const struct store_inbox *e)
{
	struct inbox_list *l = ctx;
	if (e->rowid <= l->after)
		return 0;
	if (l->count == l->limit) {
		l->more = true;
		return 1;
	}
	out_str(l->c, l->count++ ? ",{" : "{");
	out_inbox_fields(l->c, e);
	out_put(l->c, "}", 1);
	return 0;
}

static void do_inbox(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	struct inbox_list l = {.c = c};
	const char *s = api_request_get(r, "after");
	uint64_t after = 0;
	if (s && parse_uint(s, INT64_MAX, &after) < 0) {
		reply_err(c, r, E_BAD, "after=%s: a seq number from an earlier reply", s);
		return;
	}
	if (list_limit(c, r, &l.limit) < 0)
		return;
	l.after = (int64_t)after;
	reply_begin(c, r);
	out_str(c, ",\"messages\":[");
	int err = store_inbox_foreach(c->n->store, list_entry, &l);
	if (err < 0) {
		line_abort(c);
		reply_err(c, r, E_FAILED, "the inbox: %s", strerror(-err));
		return;
	}
	out_printf(c, "],\"more\":%s", l.more ? "true" : "false");
	reply_end(c);
}

static void do_read(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	struct store_inbox e;
	struct mem_spool m = {0};
	if (find_entry(c, r, &e) < 0)
		return;
	if (e.kind != ENVELOPE_TEXT) {
		reply_err(c, r, E_BAD, "%s is a file: use save", api_request_get(r, "id"));
		return;
	}
	if (e.size > API_READ_MAX) {
		reply_err(c, r, E_TOO_LARGE,
			  "a text of %" PRIu64 " bytes: read returns up to %u, "
			  "save writes any",
			  e.size, API_READ_MAX);
		return;
	}
	int err = open_text(c, &e, &m);
	if (err < 0) {
		reply_err(c, r, E_FAILED, "%s", open_error(err));
		return;
	}
	/* As `tern read`: handing the text to the program is reading it. */
	if (store_inbox_mark_read(c->n->store, e.rowid) == 0)
		e.read = true;
	reply_begin(c, r);
	out_put(c, ",", 1);
	out_inbox_fields(c, &e);
	out_str(c, ",\"text\":");
	out_json(c, m.buf, m.len);
	reply_end(c);
	free_text(&m);
}

struct fd_sink {
	int fd;
};

static int write_all(void *ctx, const uint8_t *buf, size_t len)
{
	struct fd_sink *f = ctx;
	while (len) {
		ssize_t n = write(f->fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A name from the envelope is the sender's word: keep only a harmless base name. */
static void safe_name(const char *name, const char *id, char *out, size_t len)
{
	const char *base = name;
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	snprintf(out, len, "%s", base);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
	if (out[0] == '.')
		out[0] = '_';
	if (!out[0] || strcmp(out, "_") == 0 || strcmp(out, "_.") == 0)
		snprintf(out, len, "received-%.12s", id);
}

/*
 * Gives the verified file its name, or "name (2)" and so on; never replaces a file.
 * With an unnamed O_TMPFILE (tmp == NULL) linkat names it; else tmp is renamed.
 */
static int place_file(int dfd, int fd, const char *tmp, const char *name, char *final, size_t len)
{
	const char *dot = strrchr(name, '.');
	size_t stem = dot && dot != name ? (size_t)(dot - name) : strlen(name);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int i = 1; i < 1000; i++) {
		if (i == 1)
			snprintf(final, len, "%s", name);
		else
			snprintf(final, len, "%.*s (%d)%s", (int)stem, name, i, name + stem);
		int ret = tmp ? renameat2(dfd, tmp, dfd, final, RENAME_NOREPLACE)
			      : linkat(AT_FDCWD, proc, dfd, final, AT_SYMLINK_FOLLOW);
		if (ret == 0)
			return 0;
		if (errno == EEXIST)
			continue;
		if (!tmp || (errno != EINVAL && errno != ENOSYS))
			return -errno;
		/* The filesystem cannot refuse to replace (FAT): look first. */
		if (faccessat(dfd, final, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		return renameat(dfd, tmp, dfd, final) == 0 ? 0 : -errno;
	}
	return -EEXIST;
}

/* Unverified plaintext goes to an unnamed file, or where there is none to a hidden random name. */
static int open_unverified(int dfd, char *tmp, size_t len, bool *named)
{
	int fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	*named = false;
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	uint8_t rnd[8];
	char h[17];
	tern_random(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), h);
	snprintf(tmp, len, ".tern-%s.part", h);
	*named = true;
	return openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* save: the verified content into a file of dir=, as `tern save` does. */
static void do_save(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	const char *dir = api_request_get(r, "dir");
	struct store_inbox e;
	struct envelope_meta meta;
	struct fd_sink sink = {-1};
	char name[ENVELOPE_NAME_MAX + 1], final[ENVELOPE_NAME_MAX + 16], tmp[64], id[33];
	bool named = false;
	int dfd = -1, err;

	if (!dir || dir[0] != '/') {
		reply_err(c, r, E_BAD, "save needs dir=/an/absolute/directory");
		return;
	}
	if (find_entry(c, r, &e) < 0)
		return;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		reply_err(c, r, errno == ENOENT ? E_NOT_FOUND : E_FAILED, "%s: %s", dir,
			  strerror(errno));
		return;
	}
	hex_encode(e.msg_id, 16, id);
	safe_name(e.kind == ENVELOPE_FILE ? e.name : "", id, name, sizeof(name));
	sink.fd = open_unverified(dfd, tmp, sizeof(tmp), &named);
	if (sink.fd < 0) {
		reply_err(c, r, E_FAILED, "%s: cannot write here: %s", dir, strerror(errno));
		goto out;
	}
	err = node_open_inbox(c->n, &e, write_all, &sink, &meta);
	if (err < 0) {
		reply_err(c, r, E_FAILED, "%s", open_error(err));
		goto out;
	}
	if (fsync(sink.fd) != 0) {
		reply_err(c, r, E_FAILED, "%s: cannot write the file: %s", dir, strerror(errno));
		goto out;
	}
	err = place_file(dfd, sink.fd, named ? tmp : NULL, name, final, sizeof(final));
	if (err < 0) {
		reply_err(c, r, E_FAILED, "%s: cannot place the file: %s", dir, strerror(-err));
		goto out;
	}
	named = false;
	if (fsync(dfd) != 0) {
		reply_err(c, r, E_FAILED, "%s: cannot make the file durable: %s", dir,
			  strerror(errno));
		goto out;
	}
	store_inbox_mark_read(c->n->store, e.rowid);
	reply_begin(c, r);
	out_str(c, ",\"path\":");
	char *full = malloc(strlen(dir) + strlen(final) + 2);
	if (full) {
		sprintf(full, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", final);
		out_jstr(c, full);
		free(full);
	} else {
		c->oom = true;
	}
	reply_end(c);
out:
	if (named)
		unlinkat(dfd, tmp, 0);
	if (sink.fd >= 0)
		close(sink.fd);
	close(dfd);
}

struct sent_list {
	struct api_client *c;
	char prefix[33];
	size_t prefix_len;
	uint64_t offset, limit, count;
	bool more;
};

static int list_sent(void *ctx, const struct store_sent *e)
{
	struct sent_list *l = ctx;
	char id[33];
	hex_encode(e->msg_id, 16, id);
	if (strncmp(id, l->prefix, l->prefix_len) != 0)
		return 0;
	if (l->offset) {
		l->offset--;
		return 0;
	}
	if (l->count == l->limit) {
		l->more = true;
		return 1;
	}
	out_str(l->c, l->count++ ? ",{" : "{");
	out_sent_fields(l->c, e);
	out_put(l->c, "}", 1);
	return 0;
}

static void do_sent(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	struct sent_list l = {.c = c};
	const char *id = api_request_get(r, "id"), *s = api_request_get(r, "offset");
	if (id) {
		size_t len = strlen(id);
		bool ok = len >= 1 && len <= 32;
		for (size_t i = 0; ok && i < len; i++) {
			char ch = id[i] >= 'A' && id[i] <= 'F' ? (char)(id[i] - 'A' + 'a') : id[i];
			ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
			l.prefix[i] = ch;
		}
		if (!ok) {
			reply_err(c, r, E_BAD, "id=%s: a message id or its start, in hex", id);
			return;
		}
		l.prefix_len = len;
	}
	if (s && parse_uint(s, UINT64_MAX, &l.offset) < 0) {
		reply_err(c, r, E_BAD, "offset=%s: a number of entries to skip", s);
		return;
	}
	if (list_limit(c, r, &l.limit) < 0)
		return;
	reply_begin(c, r);
	out_str(c, ",\"sent\":[");
	int err = store_sent_foreach(c->n->store, list_sent, &l);
	if (err < 0) {
		line_abort(c);
		reply_err(c, r, E_FAILED, "sent messages: %s", strerror(-err));
		return;
	}
	out_printf(c, "],\"more\":%s", l.more ? "true" : "false");
	reply_end(c);
}

/* ---- subscription ------------------------------------------------------------------------ */

static int last_seq(void *ctx, const struct store_inbox *e)
{
	*(int64_t *)ctx = e->rowid;
	return 0;
}

static void do_subscribe(struct api_client *c, const struct api_request *r, const uint8_t *body)
{
	const char *s = api_request_get(r, "after");
	uint64_t after = 0;
	int64_t last = 0;
	int err;
	if (c->subscribed) {
		reply_err(c, r, E_BAD, "already subscribed");
		return;
	}
	if (s && parse_uint(s, INT64_MAX, &after) < 0) {
		reply_err(c, r, E_BAD, "after=%s: a seq number (0 for the whole inbox)", s);
		return;
	}
	if (!c->inq && !(c->inq = malloc(QUEUE_LEN * sizeof(*c->inq)))) {
		reply_err(c, r, E_FAILED, "out of memory");
		return;
	}
	err = s ? 0 : store_inbox_foreach(c->n->store, last_seq, &last);
	if (err == 0)
		err = store_sent_last_change(c->n->store, &c->sent_seq);
	if (err < 0) {
		reply_err(c, r, E_FAILED, "subscribe: %s", strerror(-err));
		return;
	}
	c->subscribed = true;
	c->inbox_seq = s ? (int64_t)after : last;
	c->inbox_dirty = true;
	c->sent_dirty = false;
	reply_begin(c, r);
	out_printf(c, ",\"after\":%" PRId64, c->inbox_seq);
	reply_end(c);
}

static void event_error(struct api_client *c, const char *what, int err)
{
	line_begin(c);
	out_str(c, "{\"event\":\"error\",\"error\":");
	char msg[200];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-err));
	out_jstr(c, msg);
	out_put(c, "}", 1);
	line_end(c);
}

static void event_inbox(struct api_client *c, const struct store_inbox *e)
{
	struct mem_spool m = {0};
	int err = 0;
	if (e->kind == ENVELOPE_TEXT && e->size <= API_EVENT_TEXT_MAX)
		err = open_text(c, e, &m);
	line_begin(c);
	out_str(c, e->kind == ENVELOPE_FILE ? "{\"event\":\"file\"," : "{\"event\":\"message\",");
	out_inbox_fields(c, e);
	if (err < 0) {
		out_str(c, ",\"error\":");
		out_jstr(c, open_error(err));
	} else if (m.buf) {
		out_str(c, ",\"text\":");
		out_json(c, m.buf, m.len);
	}
	out_put(c, "}", 1);
	line_end(c);
	free_text(&m);
	c->inbox_seq = e->rowid;
}

static int take_inbox(void *ctx, const struct store_inbox *e)
{
	struct api_client *c = ctx;
	if (e->rowid <= c->inbox_seq)
		return 0;
	c->inq[c->inq_n++] = *e;
	return c->inq_n == QUEUE_LEN;
}

/* The next few entries after inbox_seq; clean once a scan reaches the end. */
static void fill_inbox(struct api_client *c)
{
	c->inq_n = c->inq_i = 0;
	int ret = store_inbox_foreach(c->n->store, take_inbox, c);
	if (ret <= 0)
		c->inbox_dirty = false;
	if (ret < 0)
		event_error(c, "the inbox", ret);
}

struct sent_scan {
	struct store_sent row[QUEUE_LEN];
	size_t n;
	bool more;
};

/* The next QUEUE_LEN changes after sent_seq, in the order they committed. */
static int take_sent(void *ctx, const struct store_sent *e)
{
	struct sent_scan *s = ctx;
	if (s->n == QUEUE_LEN) {
		s->more = true;
		return 1;
	}
	s->row[s->n++] = *e;
	return 0;
}

static void sent_events(struct api_client *c)
{
	struct sent_scan *s = calloc(1, sizeof(*s));
	if (!s) {
		c->dead = -ENOMEM;
		return;
	}
	int ret = store_sent_foreach_changed(c->n->store, c->sent_seq, take_sent, s);
	if (ret < 0) {
		c->sent_dirty = false;
		event_error(c, "sent messages", ret);
		goto out;
	}
	c->sent_dirty = s->more;
	for (size_t i = 0; i < s->n; i++) {
		const struct store_sent *e = &s->row[i];
		c->sent_seq = e->change_seq;
		line_begin(c);
		out_printf(c, "{\"event\":\"%s\",", sent_state_name(e->state));
		out_sent_fields(c, e);
		out_put(c, "}", 1);
		line_end(c);
	}
out:
	free(s);
}

static void make_events(struct api_client *c)
{
	while (c->subscribed && !c->dead && pending(c) < API_EVENT_ROOM) {
		if (c->inq_i < c->inq_n)
			event_inbox(c, &c->inq[c->inq_i++]);
		else if (c->inbox_dirty)
			fill_inbox(c);
		else if (c->sent_dirty)
			sent_events(c);
		else
			break;
	}
}

/* ---- requests ----------------------------------------------------------------------- */

struct verb {
	const char *name;
	const char *keys; /* the arguments it takes besides tag= and length=, each between spaces */
	bool body;
	void (*fn)(struct api_client *c, const struct api_request *r, const uint8_t *body);
};

static const struct verb verbs[] = {
    {"send", " to priority lifetime name path ", true, do_send},
    {"queued", " ", false, do_queued},
    {"subscribe", " after ", false, do_subscribe},
    {"inbox", " after limit ", false, do_inbox},
    {"read", " id ", false, do_read},
    {"save", " id dir ", false, do_save},
    {"sent", " id limit offset ", false, do_sent},
    {"status", " ", false, do_status},
    {"ping", " ", false, do_ping},
};

static const struct verb *find_verb(const char *name)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

static void execute(struct api_client *c, const uint8_t *body)
{
	const struct api_request *r = &c->req;
	const struct verb *v = find_verb(r->verb);
	if (c->req_code) {
		reply_err(c, r, c->req_code, "%s", c->why);
		return;
	}
	if (!v) {
		reply_err(c, r, E_BAD, "no such request: %s (see docs/api.md)", r->verb);
		return;
	}
	for (size_t i = 0; i < r->n_arg; i++) {
		char pat[API_KEY_MAX + 3];
		snprintf(pat, sizeof(pat), " %s ", r->arg[i].key);
		if (!strstr(v->keys, pat)) {
			reply_err(c, r, E_BAD, "%s takes no %s=", v->name, r->arg[i].key);
			return;
		}
	}
	if (r->has_length && !v->body) {
		reply_err(c, r, E_BAD, "%s takes no body (length=)", v->name);
		return;
	}
	v->fn(c, r, body);
}

/* The request is whole (line and body): reply to it, and get ready for the next line. */
static void finish_request(struct api_client *c)
{
	if (pending(c) > API_OUT_MAX)
		fatal(c, -ENOBUFS, E_OVERLOADED, "the replies are not being read");
	else
		execute(c, c->body);
	free(c->body);
	c->body = NULL;
	c->req_code = NULL;
	c->in = IN_LINE;
}

static void line_done(struct api_client *c)
{
	size_t len = c->line_len - 1; /* without its '\n', whose byte the parser may use */
	struct api_request *r = &c->req;
	c->line_len = 0;
	int ret = api_request_parse(c->line, len, r, c->why, sizeof(c->why));
	if (ret == 1)
		return;
	if (ret == -EPROTO) {
		fatal(c, -EPROTO, E_PROTOCOL, c->why);
		return;
	}
	c->req_code = ret < 0 ? E_BAD : NULL;
	if (!r->has_length || r->length == 0) {
		finish_request(c);
		return;
	}
	const struct verb *v = find_verb(r->verb);
	c->in = IN_SKIP;
	c->skip = r->length;
	if (c->req_code || !v || !v->body)
		return; /* execute says what is wrong once the body is past */
	if (r->length > API_BODY_MAX) {
		c->req_code = E_TOO_LARGE;
		snprintf(c->why, sizeof(c->why),
			 "a body of %" PRIu64 " bytes: at most %u in a request; "
			 "send larger files with path=",
			 r->length, API_BODY_MAX);
	} else if (!(c->body = malloc((size_t)r->length))) {
		c->req_code = E_FAILED;
		snprintf(c->why, sizeof(c->why), "out of memory for a body of %" PRIu64 " bytes",
			 r->length);
	} else {
		c->in = IN_BODY;
		c->body_have = 0;
	}
}

int api_client_input(struct api_client *c, const uint8_t *buf, size_t len)
{
	while (len && !c->dead) {
		size_t take;
		if (c->in == IN_LINE) {
			const uint8_t *nl = memchr(buf, '\n', len);
			take = nl ? (size_t)(nl - buf) + 1 : len;
			if (c->line_len + take > API_LINE_MAX) {
				char msg[80];
				snprintf(msg, sizeof(msg), "a line longer than %d bytes",
					 API_LINE_MAX);
				fatal(c, -EPROTO, E_PROTOCOL, msg);
				break;
			}
			memcpy(c->line + c->line_len, buf, take);
			c->line_len += take;
			if (nl)
				line_done(c);
		} else if (c->in == IN_BODY) {
			uint64_t need = c->req.length - c->body_have;
			take = need < len ? (size_t)need : len;
			memcpy(c->body + c->body_have, buf, take);
			c->body_have += take;
			if (c->body_have == c->req.length)
				finish_request(c);
		} else {
			take = c->skip < len ? (size_t)c->skip : len;
			c->skip -= take;
			if (c->skip == 0)
				finish_request(c);
		}
		buf += take;
		len -= take;
	}
	return c->dead;
}

/* ---- the connection ------------------------------------------------------------------ */

int api_client_new(struct node *n, const struct api_hooks *hooks, struct api_client **out)
{
	if (!n || !out)
		return -EINVAL;
	struct api_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->n = n;
	if (hooks)
		c->hooks = *hooks;
	*out = c;
	return 0;
}

void api_client_free(struct api_client *c)
{
	if (!c)
		return;
	free(c->body);
	free(c->out);
	free(c->inq);
	free(c);
}

size_t api_client_output(struct api_client *c, const uint8_t **buf)
{
	make_events(c);
	*buf = c->out ? c->out + c->out_off : (const uint8_t *)"";
	return pending(c);
}

void api_client_consumed(struct api_client *c, size_t n)
{
	c->out_off += n < pending(c) ? n : pending(c);
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

bool api_client_wants_input(const struct api_client *c)
{
	return !c->dead && pending(c) <= API_OUT_LOW;
}

void api_client_notify(struct api_client *c)
{
	if (c && c->subscribed)
		c->inbox_dirty = c->sent_dirty = true;
}
