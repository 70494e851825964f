/* Tests for transports/tcp.c: handshake, framing, strangers, tampering, byte-by-byte delivery. */
#include <errno.h>

#include "test.h"
#include "transports/tcp.h"

static struct identity *alice, *bob, *eve;
static struct identity_public alice_pub, bob_pub, eve_pub;

/* Bob's configured peers: Alice only. */
static int bob_lookup(void *ctx, const uint8_t pk[static 32], struct identity_public *peer)
{
	(void)ctx;
	if (memcmp(pk, alice_pub.box_pk, 32))
		return -ENOENT;
	*peer = alice_pub;
	return 0;
}

struct got {
	uint8_t buf[70000];
	size_t len;
	int n;
};

static int collect(void *ctx, const uint8_t *rec, size_t len)
{
	struct got *g = ctx;
	memcpy(g->buf, rec, len);
	g->len = len;
	g->n++;
	return 0;
}

/* Moves everything from's output into to, step bytes at a time. */
static int shuttle(struct tcp *from, struct tcp *to, struct got *g, size_t step)
{
	const uint8_t *p;
	size_t n = tcp_output(from, &p);
	uint8_t copy[140000];
	memcpy(copy, p, n);
	tcp_consumed(from, n);
	for (size_t off = 0; off < n; off += step) {
		int ret = tcp_input(to, copy + off, n - off < step ? n - off : step, collect, g);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void test_exchange(size_t step)
{
	struct tcp *a, *b;
	struct got ga = {0}, gb = {0};
	CHECK_EQ(tcp_new_initiator(alice, &bob_pub, &a), 0);
	CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
	CHECK(!tcp_established(a) && !tcp_established(b));
	CHECK_EQ(tcp_send(a, (const uint8_t *)"x", 1), -ENOTCONN);
	CHECK_EQ(shuttle(a, b, &gb, step), 0);
	CHECK(tcp_established(b));
	CHECK_MEM(tcp_peer(b)->sign_pk, alice_pub.sign_pk, 32);
	CHECK_EQ(shuttle(b, a, &ga, step), 0);
	CHECK(tcp_established(a));
	CHECK_MEM(tcp_peer(a)->sign_pk, bob_pub.sign_pk, 32);

	static uint8_t big[TCP_RECORD_MAX];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	CHECK_EQ(tcp_send(a, (const uint8_t *)"hello", 5), 0);
	CHECK_EQ(tcp_send(a, big, sizeof(big)), 0);
	CHECK_EQ(tcp_send(a, big, sizeof(big) + 1), -EINVAL);
	CHECK_EQ(tcp_send(a, big, 0), -EINVAL);
	CHECK_EQ(shuttle(a, b, &gb, step), 0);
	CHECK_EQ(gb.n, 2);
	CHECK_EQ(gb.len, sizeof(big));
	CHECK_MEM(gb.buf, big, sizeof(big));
	CHECK_EQ(tcp_send(b, (const uint8_t *)"back", 4), 0);
	CHECK_EQ(shuttle(b, a, &ga, step), 0);
	CHECK_EQ(ga.n, 1);
	CHECK_MEM(ga.buf, "back", 4);
	tcp_free(a);
	tcp_free(b);
}

/* A stranger's message 1, a bad preamble, garbage: closed, and not one byte in reply. */
static void test_silence(void)
{
	struct tcp *e, *b;
	struct got g = {0};
	const uint8_t *p;
	CHECK_EQ(tcp_new_initiator(eve, &bob_pub, &e), 0);
	CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
	CHECK_EQ(shuttle(e, b, &g, 1000), -EACCES);
	CHECK_EQ(tcp_output(b, &p), 0);
	CHECK(!tcp_established(b));
	tcp_free(e);
	tcp_free(b);

	CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
	CHECK_EQ(tcp_input(b, (const uint8_t *)"GET / HTTP/1.0\r\n", 16, collect, &g), -EBADMSG);
	CHECK_EQ(tcp_output(b, &p), 0);
	tcp_free(b);

	/* Alice's real message 1 with one bit flipped anywhere after the preamble. */
	struct tcp *a;
	CHECK_EQ(tcp_new_initiator(alice, &bob_pub, &a), 0);
	size_t n = tcp_output(a, &p);
	uint8_t msg[200];
	memcpy(msg, p, n);
	for (size_t i = 6; i < n; i++) {
		msg[i] ^= 0x10;
		CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
		int ret = tcp_input(b, msg, n, collect, &g);
		CHECK(i < 8 ? ret <= 0 : ret < 0); /* a longer length only waits for more */
		CHECK_EQ(tcp_output(b, &p), 0);
		tcp_free(b);
		msg[i] ^= 0x10;
	}
	/* An empty frame after the preamble. */
	CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
	CHECK_EQ(tcp_input(b, (const uint8_t *)"tern\001K\0\0", 8, collect, &g), -EBADMSG);
	tcp_free(b);
	tcp_free(a);
}

/* A tampered or replayed transport message ends the link, and nothing after it is read. */
static void test_tamper(void)
{
	struct tcp *a, *b;
	struct got g = {0};
	const uint8_t *p;
	CHECK_EQ(tcp_new_initiator(alice, &bob_pub, &a), 0);
	CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
	CHECK_EQ(shuttle(a, b, &g, 4096), 0);
	CHECK_EQ(shuttle(b, a, &g, 4096), 0);
	CHECK_EQ(tcp_send(a, (const uint8_t *)"one", 3), 0);
	size_t n = tcp_output(a, &p);
	uint8_t rec[64];
	memcpy(rec, p, n);
	tcp_consumed(a, n);
	CHECK_EQ(tcp_input(b, rec, n, collect, &g), 0);
	CHECK_EQ(g.n, 1);
	CHECK_EQ(tcp_input(b, rec, n, collect, &g), -EBADMSG); /* replayed */
	CHECK_EQ(g.n, 1);
	CHECK_EQ(tcp_send(a, (const uint8_t *)"two", 3), 0);
	CHECK_EQ(shuttle(a, b, &g, 4096), -EBADMSG); /* the link stays dead */
	CHECK_EQ(g.n, 1);
	tcp_free(a);
	tcp_free(b);

	/* A responder's message 2 sent again by an attacker to a second caller fails. */
	CHECK_EQ(tcp_new_initiator(alice, &bob_pub, &a), 0);
	CHECK_EQ(tcp_new_responder(bob, bob_lookup, NULL, &b), 0);
	CHECK_EQ(shuttle(a, b, &g, 4096), 0);
	n = tcp_output(b, &p);
	memcpy(rec, p, n);
	struct tcp *a2;
	CHECK_EQ(tcp_new_initiator(alice, &bob_pub, &a2), 0);
	CHECK_EQ(tcp_input(a2, rec, n, collect, &g), -EBADMSG);
	CHECK(!tcp_established(a2));
	tcp_free(a2);
	tcp_free(a);
	tcp_free(b);
}

int main(void)
{
	if (tern_crypto_init() < 0)
		return 1;
	identity_generate(&alice);
	identity_generate(&bob);
	identity_generate(&eve);
	identity_get_public(alice, &alice_pub);
	identity_get_public(bob, &bob_pub);
	identity_get_public(eve, &eve_pub);
	test_exchange(1);
	test_exchange(7);
	test_exchange(1 << 20);
	test_silence();
	test_tamper();
	identity_free(alice);
	identity_free(bob);
	identity_free(eve);
	TEST_MAIN_END();
}
