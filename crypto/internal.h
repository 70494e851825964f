/* Shared internals of the crypto module: identity layout, domain strings, helpers. */
#pragma once

#include <sodium.h>
#include <string.h>
#include <sys/types.h>

#include "crypto/crypto.h"

/*
 * Every hash and signature in tern is domain-separated. BLAKE2b uses 16-byte
 * personalisations (zero padded); signatures start with a NUL-terminated domain
 * string, and sizeof() includes the NUL so no domain is a prefix of another.
 */
#define PERSONAL_NODE_NUMBER "tern.nodenum.v1"
#define PERSONAL_FINGERPRINT "tern.fingerpr.v1"
#define PERSONAL_IDSTR_CHECK "tern.idstr.ck.v1"
#define PERSONAL_WRAP_KEY    "tern.env.wrap.v1"
#define PERSONAL_MAC_KEY     "tern.env.mack.v1"
#define PERSONAL_STREAM_KEY  "tern.env.strm.v1"
#define PERSONAL_HEADER_HASH "tern.env.hdrh.v1"
#define PERSONAL_SIG_HASH    "tern.env.sigh.v1"
#define PERSONAL_COMPACT_KEY "tern.cmp.key.v1"
#define PERSONAL_COMPACT_ID  "tern.cmp.msgid1"
#define PERSONAL_KEYFILE_SUM "tern.keyfile.v1"
#define PERSONAL_HOP_KEY     "tern.hop.key.v1"

#define DOMAIN_CERT	"tern identity cert v1"
#define DOMAIN_ENV_SIG	"tern envelope signature v1"
#define DOMAIN_CMP_SIG	"tern compact envelope signature v1"
#define DOMAIN_CMP2_SIG "tern compact envelope signature v2"

/* Copies a personalisation string into the 16 zero-padded bytes BLAKE2b takes. */
static inline void personal16(uint8_t out[static crypto_generichash_blake2b_PERSONALBYTES],
			      const char *s)
{
	size_t n = strlen(s);

	memset(out, 0, crypto_generichash_blake2b_PERSONALBYTES);
	memcpy(out, s,
	       n < crypto_generichash_blake2b_PERSONALBYTES
		   ? n
		   : crypto_generichash_blake2b_PERSONALBYTES);
}

/* One-shot personalised BLAKE2b of up to three buffers (NULL buffers are skipped). */
void blake2b_personal(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
		      const char *personal, const void *a, size_t alen, const void *b, size_t blen,
		      const void *c, size_t clen);

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* ---- identity ----------------------------------------------------------------- */

/*
 * Old encryption keys kept after rotation. When full, the oldest is dropped: mail
 * sealed to a key this many rotations old can no longer be opened (forward secrecy).
 */
#define IDENTITY_BOX_KEYS_MAX 16

struct identity_box_key {
	uint32_t epoch;
	uint8_t sk[crypto_scalarmult_curve25519_SCALARBYTES];
	uint8_t pk[crypto_scalarmult_curve25519_BYTES];
};

/* Lives in sodium_malloc'd memory; box[n_box - 1] is the current key. */
struct identity {
	uint8_t sign_sk[crypto_sign_ed25519_SECRETKEYBYTES];
	uint8_t sign_pk[crypto_sign_ed25519_PUBLICKEYBYTES];
	uint8_t cert[crypto_sign_ed25519_BYTES];
	size_t n_box;
	struct identity_box_key box[IDENTITY_BOX_KEYS_MAX];
};

/*
 * Builds an identity from a signing seed and box secret keys in ascending epoch
 * order (the last is current). Used by the key file. 0, -EINVAL or -ENOMEM.
 */
int identity_from_secrets(const uint8_t sign_seed[static 32], const uint32_t *epochs,
			  const uint8_t (*box_sk)[32], size_t n, struct identity **out);

/* The certificate message: DOMAIN_CERT || box_pk || epoch (big-endian). */
#define IDENTITY_CERT_MSG_LEN (sizeof(DOMAIN_CERT) + 32 + 4)
void identity_cert_message(uint8_t out[static IDENTITY_CERT_MSG_LEN],
			   const uint8_t box_pk[static 32], uint32_t epoch);

/* ---- base32.c: RFC 4648 alphabet, lowercase, no padding ---------------------- */

/* Characters needed for len bytes. */
static inline size_t base32_encoded_len(size_t len)
{
	return (len * 8 + 4) / 5;
}

/* Writes base32_encoded_len(len) characters to out (no NUL). */
void base32_encode(const uint8_t *in, size_t len, char *out);
/*
 * Decodes exactly len characters (either case) into out. Returns the number of
 * bytes, or -EINVAL on a character outside the alphabet, an impossible length or
 * non-zero trailing bits (so every byte string has exactly one encoding). *bad is
 * set to the offending index on a character error.
 */
ssize_t base32_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *bad);

/* ---- envelope.c, envelope_compact.c ---------------------------------------------- */

/* The first byte of an envelope names its form and version. */
#define ENV_FORM_FULL	 0x01
#define ENV_FORM_COMPACT 0x02
/* The compact form whose kind byte names the sender's key (docs/envelope.md). */
#define ENV_FORM_COMPACT2 0x03

/* Plaintext bytes per secretstream data chunk. */
#define ENV_CHUNK  65536
#define ENV_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define ENV_SS_HDR crypto_secretstream_xchacha20poly1305_HEADERBYTES
/* eph_pk || K encrypted under the wrap key (32 + 16 tag) */
#define ENV_STANZA_LEN (32 + 32 + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define ENV_MAC_LEN    32
/* form || n || secretstream header || n stanzas || MAC */
#define ENV_OUTER_LEN(n) (2 + ENV_SS_HDR + (size_t)(n)*ENV_STANZA_LEN + ENV_MAC_LEN)
#define ENV_OUTER_MAX	 ENV_OUTER_LEN(ENVELOPE_MAX_RECIPIENTS)
/* version sender msg_id kind created expires size name_len name n recipients */
#define ENV_IH_LEN(namelen, n) (76 + (size_t)(namelen) + 32 * (size_t)(n))
#define ENV_IH_MAX	       ENV_IH_LEN(ENVELOPE_NAME_MAX, ENVELOPE_MAX_RECIPIENTS)
#define ENV_IH_VERSION	       1
#define ENV_SIG_LEN	       crypto_sign_ed25519_BYTES
/*
 * The full form signs DOMAIN_ENV_SIG || BLAKE2b-512(transcript). 64 bytes, as the SHA-512 of
 * Ed25519ph had: a collision costs 2^256, so the hash is never the weak link beside Ed25519.
 */
#define ENV_SIG_HASH_LEN crypto_generichash_blake2b_BYTES_MAX
#define ENV_SIG_MSG_LEN	 (sizeof(DOMAIN_ENV_SIG) + ENV_SIG_HASH_LEN)
/* Largest plaintext the full form takes; keeps every size computation far from overflow. */
#define ENV_SIZE_MAX (UINT64_C(1) << 48)

/* form || eph_pk || AEAD(kind || signature || text) */
#define ENV_COMPACT_HDR		   (1 + 32)
#define ENV_COMPACT_PLAIN_OVERHEAD (1 + ENV_SIG_LEN)
_Static_assert(ENV_COMPACT_HDR + ENV_COMPACT_PLAIN_OVERHEAD +
		       crypto_aead_xchacha20poly1305_ietf_ABYTES ==
		   ENVELOPE_COMPACT_OVERHEAD,
	       "compact overhead");

/* True if name suits kind: empty for text; a plain base name for a file. */
bool envelope_name_ok(enum envelope_kind kind, const char *name, size_t len);

/* Scratch envelope_compact_open needs for its secrets and the plaintext. */
#define ENV_COMPACT_SCRATCH 4096

/*
 * Opens a whole compact envelope (in, len) for me: decrypts, finds the sender among
 * the candidates, fills meta and copies the verified text to text (capacity
 * ENVELOPE_COMPACT_MAX), its length to *text_len. 0, -EBADMSG, -ENOKEY, -ENOENT.
 * scratch (ENV_COMPACT_SCRATCH bytes, any alignment, in guarded memory such as the
 * opener's) holds the secrets and is wiped before return: opening thousands of short
 * messages a second then costs no guarded allocation each.
 */
int envelope_compact_open(const struct identity *me, const uint8_t *in, size_t len,
			  envelope_candidates cand, void *cctx, struct envelope_meta *meta,
			  uint8_t *text, size_t *text_len, void *scratch);
