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
#include "relay/link_msg.h"
#include "transports/tcp.h"

/*
 * usage: evil_peer KEYFILE PEER-IDSTRING PORT MODE
 *   garbage-record  HELLO, then a record that is no link message: expect BYE protocol
 *   garbage-frame   HELLO, then bytes that are no Noise message: expect a silent close
 *   replay          a whole session's first bytes sent again on a new connection:
 *                   expect the handshake answer and then nothing but the close
 * Prints one line: "bye N", "closed after N bytes", "error ...".
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

int main(int argc, char **argv)
{
	if (argc != 5 || tern_crypto_init() < 0)
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
