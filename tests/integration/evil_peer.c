/* A hostile but configured peer for the daemon tests: it holds a real identity, completes the
 * handshake, then misbehaves as told, and prints what the daemon did about it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "relay/bundle.h"
#include "relay/link_msg.h"
#include "transports/tcp.h"

/*
 * usage: evil_peer KEYFILE PEER-IDSTRING PORT MODE
 *   garbage-record  HELLO, then a record that is no link message: expect BYE protocol
 *   garbage-frame   HELLO, then bytes that are no Noise message: expect a silent close
 *   replay          a whole session's first bytes sent again on a new connection:
 *                   expect the handshake answer and then nothing but the close
 * Prints one line: "bye N", "closed after N bytes", "error ...".
 *
 * usage: evil_peer KEYFILE PEER-IDSTRING PORT offer BUNDLE-FILE [SIZE|- [EXPIRES-MS]]
 *   HELLO, then an OFFER of the bundle in the file (its id; the payload size it has, or
 *   SIZE; EXPIRES-MS of lifetime left, 3600000 unless told), and the transfer of it if it
 *   is wanted: HEAD, DATA, END, as a real sender would, whatever the bytes are. Prints a
 *   line for each answer to it: "want OFFSET", "refuse REASON RETRY-S", "ack", then
 *   "bye N" or "closed" if the daemon ended the session, or "timeout" after 30 s of
 *   nothing more about the bundle; ends its session with BYE done after an ACK or REFUSE.
 */

static int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static void flush(int fd, struct tcp *t, uint8_t *log, size_t *loglen)
{
	const uint8_t *p;
	size_t n;
	while ((n = tcp_output(t, &p)) > 0) {
		if (log) {
			memcpy(log + *loglen, p, n);
			*loglen += n;
		}
		if (write(fd, p, n) != (ssize_t)n)
			exit(1);
		tcp_consumed(t, n);
	}
}

static int bye_reason = -1;

static int on_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct link_msg m;
	(void)ctx;
	if (link_parse(rec, len, &m, NULL) == 0 && m.type == LINK_BYE)
		bye_reason = m.bye_reason;
	return 0;
}

/* Reads until EOF (or 10 s of silence); the records go through t if given. */
static size_t drain(int fd, struct tcp *t)
{
	uint8_t buf[65536];
	size_t total = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (poll(&p, 1, 10000) > 0) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		total += (size_t)r;
		if (t && tcp_input(t, buf, (size_t)r, on_record, NULL) < 0)
			t = NULL;
	}
	return total;
}

/* Handshakes on fd; the bytes written are logged if log is given. */
static void handshake(int fd, struct tcp *t, uint8_t *log, size_t *loglen)
{
	uint8_t buf[4096];
	flush(fd, t, log, loglen);
	while (!tcp_established(t)) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0 || tcp_input(t, buf, (size_t)r, on_record, NULL) < 0) {
			printf("error: no handshake\n");
			exit(1);
		}
	}
}

static void send_hello(int fd, struct tcp *t, const struct identity_public *me, uint8_t *log,
		       size_t *loglen)
{
	uint8_t rec[64];
	struct link_hello h = {.version = LINK_VERSION,
			       .node = identity_node_number(me->sign_pk),
			       .max_record = LINK_RECORD_MAX,
			       .keepalive_s = 30};
	int n = link_encode_hello(rec, sizeof(rec), &h);
	if (n < 0 || tcp_send(t, rec, (size_t)n) < 0)
		exit(1);
	flush(fd, t, log, loglen);
}

/* ---- offer: a transfer of a given bundle's bytes ------------------------------------ */

struct offer {
	int fd;
	struct tcp *t;
	const uint8_t *buf;
	size_t len, payload_at, tail_at;
	uint64_t payload_len;
	uint8_t id[32];
	bool seen, done;
	size_t fed;
};

static int found_payload(void *ctx, const uint8_t *buf, size_t len)
{
	struct offer *o = ctx;
	(void)buf;
	(void)len;
	if (!o->seen)
		o->payload_at = o->fed;
	o->seen = true;
	return 0;
}

static int found_header(void *ctx, const struct bundle_header *h)
{
	((struct offer *)ctx)->payload_len = h->payload_len;
	return 0;
}

/* Where the payload starts and ends, and the bundle's id; false if it does not parse. */
static bool locate(struct offer *o)
{
	static const struct bundle_parser_cb cb = {.on_header = found_header,
						   .on_payload = found_payload};
	struct bundle_limits lim = {.max_payload = UINT64_MAX};
	struct bundle_parser *p;
	bool ok = bundle_parser_new(&lim, &cb, o, &p) == 0;
	for (o->fed = 0; ok && o->fed < o->len; o->fed++)
		ok = bundle_parser_feed(p, o->buf + o->fed, 1) == 0;
	ok = ok && bundle_parser_finish(p) == 0;
	if (ok) {
		bundle_parser_id(p, o->id);
		if (!o->seen)
			o->payload_at = o->len - 1; /* an empty payload: the tail is the break */
		o->tail_at = o->payload_at + o->payload_len;
	}
	bundle_parser_free(p);
	return ok && o->tail_at < o->len;
}

static void send_rec(struct offer *o, const uint8_t *rec, int n)
{
	if (n < 0 || tcp_send(o->t, rec, (size_t)n) < 0) {
		printf("error: record\n");
		exit(1);
	}
	flush(o->fd, o->t, NULL, NULL);
}

static void transfer(struct offer *o, uint64_t from)
{
	static uint8_t rec[LINK_RECORD_MAX];
	send_rec(o, rec,
		 link_encode_head(rec, sizeof(rec), o->id, o->payload_len, o->buf, o->payload_at));
	for (uint64_t off = from; off < o->payload_len;) {
		size_t k = o->payload_len - off < 16384 ? (size_t)(o->payload_len - off) : 16384;
		send_rec(o, rec,
			 link_encode_data(rec, sizeof(rec), o->id, off,
					  o->buf + o->payload_at + off, k));
		off += k;
	}
	send_rec(
	    o, rec,
	    link_encode_end(rec, sizeof(rec), o->id, o->buf + o->tail_at, o->len - o->tail_at));
}

static int on_offer_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct offer *o = ctx;
	struct link_msg m;
	uint8_t out[64];
	if (link_parse(rec, len, &m, NULL) < 0)
		return 0;
	for (size_t i = 0; m.type == LINK_WANT && i < m.count; i++) {
		struct link_want w;
		link_want_at(&m, i, &w);
		if (memcmp(w.id, o->id, 32) == 0) {
			printf("want %llu\n", (unsigned long long)w.offset);
			transfer(o, w.offset);
		}
	}
	for (size_t i = 0; m.type == LINK_REFUSE && i < m.count; i++) {
		struct link_refuse r;
		link_refuse_at(&m, i, &r);
		if (memcmp(r.id, o->id, 32) == 0) {
			printf("refuse %u %u\n", r.reason, r.retry_after_s);
			o->done = true;
		}
	}
	for (size_t i = 0; m.type == LINK_ACK && i < m.count; i++) {
		if (memcmp(link_ack_at(&m, i), o->id, 32) == 0) {
			printf("ack\n");
			o->done = true;
		}
	}
	if (m.type == LINK_PING)
		send_rec(o, out, link_encode_ping(out, sizeof(out), LINK_PONG, m.token));
	if (m.type == LINK_BYE) {
		printf("bye %d\n", m.bye_reason);
		o->done = true;
	}
	return 0;
}

static int offer(int fd, struct tcp *t, int argc, char **argv)
{
	static uint8_t rec[256];
	struct offer o = {.fd = fd, .t = t};
	FILE *f = fopen(argv[0], "rb");
	static uint8_t buf[8 << 20];
	o.buf = buf;
	o.len = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	if (!locate(&o)) {
		printf("error: %s is no bundle\n", argv[0]);
		return 1;
	}
	struct link_offer e = {.size = o.payload_len, .priority = 1, .expires_in_ms = 3600000};
	memcpy(e.id, o.id, 32);
	if (argc > 1 && strcmp(argv[1], "-") != 0)
		e.size = strtoull(argv[1], NULL, 10);
	if (argc > 2)
		e.expires_in_ms = strtoull(argv[2], NULL, 10);
	send_rec(&o, rec, link_encode_offer(rec, sizeof(rec), &e, 1));
	uint8_t in[65536];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (!o.done) {
		if (poll(&p, 1, 30000) <= 0) {
			printf("timeout\n");
			return 0;
		}
		ssize_t r = read(fd, in, sizeof(in));
		if (r <= 0) {
			printf("closed\n");
			return 0;
		}
		if (tcp_input(t, in, (size_t)r, on_offer_record, &o) < 0) {
			printf("error: the session failed\n");
			return 1;
		}
	}
	send_rec(&o, rec, link_encode_bye(rec, sizeof(rec), LINK_BYE_DONE, ""));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5 || tern_crypto_init() < 0)
		return 2;
	FILE *f = fopen(argv[1], "rb");
	uint8_t key[4096];
	size_t klen = f ? fread(key, 1, sizeof(key), f) : 0;
	struct identity *id;
	struct identity_public me, peer;
	const char *why;
	if (!f || keyfile_decode(key, klen, NULL, &id) < 0 ||
	    identity_public_decode(argv[2], &peer, &why) < 0) {
		printf("error: bad key file or identity string\n");
		return 1;
	}
	fclose(f);
	identity_get_public(id, &me);
	int port = atoi(argv[3]);
	const char *mode = argv[4];
	struct tcp *t;
	int fd = dial(port);
	static uint8_t log[1 << 16];
	size_t loglen = 0;
	tcp_new_initiator(id, &peer, &t);
	handshake(fd, t, log, &loglen);
	send_hello(fd, t, &me, log, &loglen);
	if (strcmp(mode, "garbage-record") == 0) {
		static const uint8_t junk[] = {0x63, 0xff, 0x00, 0x13, 0x37};
		tcp_send(t, junk, sizeof(junk));
		flush(fd, t, NULL, NULL);
		drain(fd, t);
		printf("bye %d\n", bye_reason);
	} else if (strcmp(mode, "garbage-frame") == 0) {
		static const uint8_t junk[] = {0x00, 0x20, 'n', 'o', 't', ' ', 'n', 'o', 'i',
					       's',  'e',  ' ', 'a', 't', ' ', 'a', 'l', 'l',
					       '.',  '.',  '.', '.', '.', '.', '.', '.', '.',
					       '.',  '.',  '.', '.', '.', '.', '.'};
		if (write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
			return 1;
		drain(fd, t);
		printf("bye %d\n", bye_reason);
	} else if (strcmp(mode, "offer") == 0 && argc > 5) {
		int ret = offer(fd, t, argc - 5, argv + 5);
		tcp_free(t);
		identity_free(id);
		close(fd);
		return ret;
	} else if (strcmp(mode, "replay") == 0) {
		close(fd);
		fd = dial(port);
		if (write(fd, log, loglen) != (ssize_t)loglen)
			return 1;
		printf("closed after %zu bytes\n", drain(fd, NULL));
	} else {
		printf("error: unknown mode\n");
		return 2;
	}
	tcp_free(t);
	identity_free(id);
	close(fd);
	return 0;
}
