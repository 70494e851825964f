/* The API's request line: "VERB key=value ..." with percent-encoded values, parsed in place. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "relay/api.h"

static void say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static bool is_sep(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A word of the protocol (verb or key): 1 to API_KEY_MAX of [a-z_]. */
static bool word_valid(const char *s, size_t len)
{
	if (len == 0 || len > API_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return false;
	return true;
}

/* A client's bytes quoted in an error reply: printable ASCII, cut short. */
static void quote(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0, i = 0;
	for (; i < len && o + 4 < cap; i++)
		out[o++] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* length= is the framing: plain digits only, so that no decoding can disagree on it. */
static int parse_length(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 19)
		return -EPROTO;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Decodes %XX in place from s[0..len) and NUL-terminates; -EINVAL on a bad escape or a NUL. */
static int decode(char *s, size_t len, size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
			if (lo < 0)
				return -EINVAL;
			ch = (char)(hi << 4 | lo);
			if (ch == '\0')
				return -EINVAL;
			i += 2;
		}
		s[o++] = ch;
	}
	s[o] = '\0';
	*outlen = o;
	return 0;
}

struct token {
	char *p;
	size_t len;
};

int api_request_parse(char *line, size_t len, struct api_request *req, char *why, size_t whylen)
{
	struct token tok[API_MAX_ARGS + 3]; /* verb, tag, length and the arguments */
	size_t n_tok = 0, n_all = 0;
	bool control = false;
	int ret;

	memset(req, 0, sizeof(*req));
	why[0] = '\0';
	if (len && line[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len;) {
		while (i < len && is_sep(line[i]))
			i++;
		if (i == len)
			break;
		struct token t = {line + i, 0};
		while (i < len && !is_sep(line[i])) {
			unsigned char ch = (unsigned char)line[i++];
			control |= ch < 0x20 || ch == 0x7f;
		}
		t.len = (size_t)(line + i - t.p);
		/* The framing first: whatever else is wrong, the body must be skipped exactly. */
		if (n_all++ && t.len >= 7 && memcmp(t.p, "length=", 7) == 0) {
			if (req->has_length) {
				say(why, whylen, "length= given twice");
				return -EPROTO;
			}
			if (parse_length(t.p + 7, t.len - 7, &req->length) < 0) {
				char q[40];
				quote(t.p + 7, t.len - 7, q, sizeof(q));
				say(why, whylen, "length=%s is not a number of bytes", q);
				return -EPROTO;
			}
			req->has_length = true;
			continue;
		}
		if (n_tok < sizeof(tok) / sizeof(tok[0]))
			tok[n_tok++] = t;
	}
	if (n_all == 0)
		return 1;

	/* Then the first tag, so that an error reply can carry it. */
	for (size_t t = 1; t < n_tok; t++) {
		size_t vlen;
		if (tok[t].len < 4 || memcmp(tok[t].p, "tag=", 4) != 0)
			continue;
		if (decode(tok[t].p + 4, tok[t].len - 4, &vlen) == 0)
			req->tag = tok[t].p + 4;
		break;
	}

	ret = -EINVAL;
	if (control) {
		say(why, whylen, "a control character in the request (percent-encode it)");
		goto out;
	}
	if (n_tok == sizeof(tok) / sizeof(tok[0])) {
		say(why, whylen, "more than %d arguments", API_MAX_ARGS);
		goto out;
	}
	if (n_tok == 0 || !word_valid(tok[0].p, tok[0].len)) {
		char q[40];
		quote(tok[0].p, n_tok ? tok[0].len : 0, q, sizeof(q));
		say(why, whylen, "'%s' is not a request (a verb is lowercase letters)", q);
		goto out;
	}
	memcpy(req->verb, tok[0].p, tok[0].len);
	req->verb[tok[0].len] = '\0';

	bool tag_seen = false;
	for (size_t t = 1; t < n_tok; t++) {
		char *eq = memchr(tok[t].p, '=', tok[t].len);
		size_t klen = eq ? (size_t)(eq - tok[t].p) : 0;
		if (!eq || !word_valid(tok[t].p, klen)) {
			char q[40];
			quote(tok[t].p, tok[t].len, q, sizeof(q));
			say(why, whylen, "'%s' is not key=value (a key is lowercase letters)", q);
			goto out;
		}
		if (klen == 3 && memcmp(tok[t].p, "tag", 3) == 0) {
			if (tag_seen || !req->tag) {
				say(why, whylen, "%s",
				    tag_seen ? "tag= given twice"
					     : "tag=: a bad percent-escape (%XX, not %00)");
				goto out;
			}
			tag_seen = true;
			continue;
		}
		if (req->n_arg == API_MAX_ARGS) {
			say(why, whylen, "more than %d arguments", API_MAX_ARGS);
			goto out;
		}
		struct api_arg *a = &req->arg[req->n_arg];
		memcpy(a->key, tok[t].p, klen);
		a->key[klen] = '\0';
		if (api_request_get(req, a->key)) {
			say(why, whylen, "%s= given twice", a->key);
			goto out;
		}
		if (decode(eq + 1, tok[t].len - klen - 1, &a->len) < 0) {
			say(why, whylen, "%s=: a bad percent-escape (%%XX, not %%00)", a->key);
			goto out;
		}
		a->val = eq + 1;
		req->n_arg++;
	}
	ret = 0;
out:
	return ret;
}

const char *api_request_get(const struct api_request *req, const char *key)
{
	for (size_t i = 0; i < req->n_arg; i++)
		if (strcmp(req->arg[i].key, key) == 0)
			return req->arg[i].val;
	return NULL;
}
