/* The identity string: "tern1" + base32 of the public identity and a checksum that catches typos.
 */
#include <errno.h>
#include <strings.h>

#include "crypto/internal.h"

#define IDSTR_PREFIX	 "tern1"
#define IDSTR_PREFIX_LEN 5
#define IDSTR_VERSION	 1
#define IDSTR_CHECK_LEN	 4
/* version || sign_pk || box_pk || epoch || cert */
#define IDSTR_PAYLOAD_LEN (1 + 32 + 32 + 4 + 64)
#define IDSTR_RAW_LEN	  (IDSTR_PAYLOAD_LEN + IDSTR_CHECK_LEN)
#define IDSTR_BODY_CHARS  ((IDSTR_RAW_LEN * 8 + 4) / 5)
#define IDSTR_CHARS	  (IDSTR_PREFIX_LEN + IDSTR_BODY_CHARS)

_Static_assert(IDSTR_CHARS <= IDENTITY_STRING_MAX, "identity string too long");

/* The prefix is hashed too, so the checksum speaks for the whole string. */
static void checksum(uint8_t out[static IDSTR_CHECK_LEN],
		     const uint8_t payload[static IDSTR_PAYLOAD_LEN])
{
	uint8_t h[16];

	blake2b_personal(h, sizeof(h), NULL, 0, PERSONAL_IDSTR_CHECK, IDSTR_PREFIX,
			 IDSTR_PREFIX_LEN, payload, IDSTR_PAYLOAD_LEN, NULL, 0);
	memcpy(out, h, IDSTR_CHECK_LEN);
}

void identity_public_encode(const struct identity_public *pub, char *out, size_t outlen)
{
	uint8_t raw[IDSTR_RAW_LEN];
	uint8_t *p = raw;

	if (outlen < IDSTR_CHARS + 1) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	*p++ = IDSTR_VERSION;
	memcpy(p, pub->sign_pk, 32);
	p += 32;
	memcpy(p, pub->box_pk, 32);
	p += 32;
	put_be32(p, pub->epoch);
	p += 4;
	memcpy(p, pub->cert, 64);
	p += 64;
	checksum(p, raw);
	memcpy(out, IDSTR_PREFIX, IDSTR_PREFIX_LEN);
	base32_encode(raw, sizeof(raw), out + IDSTR_PREFIX_LEN);
	out[IDSTR_CHARS] = '\0';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int identity_public_decode(const char *s, struct identity_public *out, const char **why)
{
	struct identity_public pub;
	uint8_t raw[IDSTR_RAW_LEN];
	uint8_t check[IDSTR_CHECK_LEN];
	const char *dummy;
	const char *end;
	size_t len, bad = SIZE_MAX;
	int ret = -EINVAL;

	if (!why)
		why = &dummy;
	*why = "not an identity string";
	if (!s)
		goto out;
	while (is_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_space(end[-1]))
		end--;
	len = (size_t)(end - s);
	if (len < IDSTR_PREFIX_LEN || strncasecmp(s, IDSTR_PREFIX, IDSTR_PREFIX_LEN) != 0) {
		*why = "not an identity string: it must start with \"tern1\"";
		goto out;
	}
	for (const char *c = s; c < end; c++) {
		if (is_space(*c)) {
			*why = "the identity string contains a space or line break: remove it";
			goto out;
		}
	}
	if (len < IDSTR_CHARS) {
		*why = "the identity string is too short: a character is missing";
		goto out;
	}
	if (len > IDSTR_CHARS) {
		*why = "the identity string is too long: a character was added";
		goto out;
	}
	if (base32_decode(s + IDSTR_PREFIX_LEN, IDSTR_BODY_CHARS, raw, sizeof(raw), &bad) !=
	    IDSTR_RAW_LEN) {
		if (bad != SIZE_MAX) {
			*why = "the identity string has an invalid character (only a-z and 2-7 "
			       "follow \"tern1\")";
			goto out;
		}
		/* Only the last character carries padding bits: a substitution there. */
		ret = -EBADMSG;
		*why = "checksum mismatch: the identity string has a typo";
		goto out;
	}
	checksum(check, raw);
	if (memcmp(check, raw + IDSTR_PAYLOAD_LEN, IDSTR_CHECK_LEN) != 0) {
		ret = -EBADMSG;
		*why = "checksum mismatch: the identity string has a typo";
		goto out;
	}
	if (raw[0] != IDSTR_VERSION) {
		*why = "unsupported identity string version (made by a newer tern?)";
		goto out;
	}
	memcpy(pub.sign_pk, raw + 1, 32);
	memcpy(pub.box_pk, raw + 33, 32);
	pub.epoch = get_be32(raw + 65);
	memcpy(pub.cert, raw + 69, 64);
	if (!identity_public_verify(&pub)) {
		ret = -EKEYREJECTED;
		*why = "the identity's certificate does not verify: the string was altered";
		goto out;
	}
	*out = pub;
	*why = NULL;
	ret = 0;
out:
	return ret;
}
