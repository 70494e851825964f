/* Hop sealing: a round trip, each direction its own key, and every kind of wrong input refused. */
#include <errno.h>

#include "crypto/crypto.h"
#include "test.h"

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	struct identity *a, *b, *c;
	CHECK_EQ(identity_generate(&a), 0);
	CHECK_EQ(identity_generate(&b), 0);
	CHECK_EQ(identity_generate(&c), 0);
	struct identity_public pa, pb, pc;
	identity_get_public(a, &pa);
	identity_get_public(b, &pb);
	identity_get_public(c, &pc);
	uint8_t nonce[HOP_NONCE_LEN], ad[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	tern_random(nonce, sizeof(nonce));
	const uint8_t pt[] = "a bundle for the hub";
	uint8_t ct[sizeof(pt) + HOP_TAG_LEN], out[sizeof(pt)];
	CHECK_EQ(hop_seal(a, &pb, nonce, ad, sizeof(ad), pt, sizeof(pt), ct), 0);
	CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct), out), 0);
	CHECK_MEM(out, pt, sizeof(pt));
	/* Not the other direction's key: a's own message does not open as one from b. */
	CHECK_EQ(hop_open(a, &pb, nonce, ad, sizeof(ad), ct, sizeof(ct), out), -EBADMSG);
	/* Another node, another sender, another ad, another nonce, a flipped bit, a cut. */
	CHECK_EQ(hop_open(c, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct), out), -EBADMSG);
	CHECK_EQ(hop_open(b, &pc, nonce, ad, sizeof(ad), ct, sizeof(ct), out), -EBADMSG);
	ad[0] ^= 1;
	CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct), out), -EBADMSG);
	ad[0] ^= 1;
	nonce[23] ^= 1;
	CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct), out), -EBADMSG);
	nonce[23] ^= 1;
	for (size_t i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 0x40;
		CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct), out), -EBADMSG);
		ct[i] ^= 0x40;
	}
	CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct) - 1, out), -EBADMSG);
	CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, 3, out), -EBADMSG);
	/* b rotates its box key: what a sealed to the old one still opens. */
	CHECK_EQ(identity_rotate(b), 0);
	CHECK_EQ(hop_open(b, &pa, nonce, ad, sizeof(ad), ct, sizeof(ct), out), 0);
	identity_free(a);
	identity_free(b);
	identity_free(c);
	TEST_MAIN_END();
}
