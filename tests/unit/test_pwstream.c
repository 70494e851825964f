/* Passphrase-sealed streams: round trip, wrong passphrase, and every damage told apart. */
#include <errno.h>

#include "crypto/crypto.h"
#include "crypto/testing.h"
#include "test.h"

#define N_CHUNKS 3

struct sealed {
	uint8_t header[PWSTREAM_HEADER_LEN];
	uint8_t ct[N_CHUNKS][100 + PWSTREAM_ABYTES];
	size_t len[N_CHUNKS];
};

static void seal(const char *pass, struct sealed *s)
{
	struct pwstream *p;
	CHECK_EQ(pwstream_seal_new(pass, s->header, &p), 0);
	for (int i = 0; i < N_CHUNKS; i++) {
		uint8_t pt[100];
		memset(pt, 'a' + i, sizeof(pt));
		s->len[i] = (size_t)(50 + 25 * i);
		CHECK_EQ(
		    pwstream_seal(p, pt, s->len[i] - PWSTREAM_ABYTES, i == N_CHUNKS - 1, s->ct[i]),
		    0);
	}
	uint8_t more[PWSTREAM_ABYTES];
	CHECK_EQ(pwstream_seal(p, NULL, 0, true, more), -EINVAL);
	pwstream_free(p);
}

/* Opens every chunk in order: how many opened, and whether the last said final. */
static int open_all(const char *pass, const struct sealed *s, bool *final)
{
	struct pwstream *p;
	int ret = pwstream_open_new(pass, s->header, &p);
	*final = false;
	if (ret)
		return ret;
	int n = 0;
	for (; n < N_CHUNKS; n++) {
		uint8_t pt[100];
		if (pwstream_open(p, s->ct[n], s->len[n], pt, final) != 0)
			break;
		CHECK(pt[0] == 'a' + n && pt[s->len[n] - PWSTREAM_ABYTES - 1] == 'a' + n);
	}
	pwstream_free(p);
	return n;
}

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	pwstream_test_set_pwhash_limits(1, 8192);
	struct sealed s, t;
	bool final;
	uint8_t junk[PWSTREAM_ABYTES];

	seal("correct horse", &s);
	CHECK_EQ(open_all("correct horse", &s, &final), N_CHUNKS);
	CHECK(final);
	CHECK_EQ(open_all("correct hors", &s, &final), -EACCES);
	CHECK_EQ(open_all("", &s, &final), -EINVAL);
	struct pwstream *p;
	CHECK_EQ(pwstream_seal_new("", s.header, &p), -EINVAL);

	/* Every header byte matters: magic and version say what it is, the rest is checked. */
	for (size_t i = 0; i < PWSTREAM_HEADER_LEN; i++) {
		t = s;
		t.header[i] ^= 0x01;
		int r = open_all("correct horse", &t, &final);
		if (i < 8)
			CHECK_EQ(r, -EINVAL);
		else if (i < 24)
			CHECK(r == -EACCES || r == -E2BIG);
		else if (i < 56)
			CHECK_EQ(r, -EACCES);
		else
			CHECK_EQ(r, 0); /* the secretstream header: the first chunk fails */
	}
	/* A header asking for 2^40 bytes of Argon2id memory is refused before any work. */
	t = s;
	t.header[16] = 0x01;
	CHECK_EQ(open_all("correct horse", &t, &final), -E2BIG);

	/* A flipped bit in any chunk stops there; a cut leaves no final; no reordering. */
	for (int c = 0; c < N_CHUNKS; c++) {
		t = s;
		t.ct[c][t.len[c] / 2] ^= 0x80;
		CHECK_EQ(open_all("correct horse", &t, &final), c);
		CHECK(!final);
	}
	CHECK_EQ(pwstream_open_new("correct horse", s.header, &p), 0);
	uint8_t pt[100];
	CHECK_EQ(pwstream_open(p, s.ct[1], s.len[1], pt, &final), -EBADMSG);
	CHECK_EQ(pwstream_open(p, s.ct[0], s.len[0], pt, &final), 0);
	CHECK(!final);
	CHECK_EQ(pwstream_open(p, s.ct[0], s.len[0], pt, &final), -EBADMSG);
	pwstream_free(p);

	/* The same passphrase twice gives another salt, so another stream. */
	seal("correct horse", &t);
	CHECK(memcmp(s.header, t.header, PWSTREAM_HEADER_LEN) != 0);
	CHECK(memcmp(s.ct[0], t.ct[0], s.len[0]) != 0);
	/* A chunk of another stream does not open in this one. */
	CHECK_EQ(pwstream_open_new("correct horse", s.header, &p), 0);
	CHECK_EQ(pwstream_open(p, t.ct[0], t.len[0], pt, &final), -EBADMSG);
	CHECK_EQ(pwstream_open(p, junk, 3, pt, &final), -EBADMSG);
	pwstream_free(p);
	pwstream_free(NULL);
	TEST_MAIN_END();
}
