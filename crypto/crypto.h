/* Public interface of tern's crypto module: identities, hashing, the end-to-end envelope. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Only crypto/ includes sodium.h. Everything another module needs from libsodium
 * goes through this header. Function prefixes follow the file names:
 * tern_crypto_ (init.c), hash_ (hash.c), identity_ (identity.c, idstring.c),
 * keyfile_ (keyfile.c), envelope_ (envelope.c, envelope_compact.c); crc16_x25 and
 * crc32c (crc.c).
 */

/* Initialises libsodium. Returns 0, or -EIO if the library cannot start. Call once. */
int tern_crypto_init(void);

/* Fills buf with len random bytes. */
void tern_random(void *buf, size_t len);
/* Overwrites len bytes with zeros in a way the compiler keeps (plaintext left in a buffer). */
void tern_wipe(void *buf, size_t len);

/* ---- crc.c: checksums against accidents (bit errors), not against attackers ---- */

/*
 * The two block CRCs of RFC 9171 §4.2.1; CRC-32C also guards serial frames. Both
 * chain like zlib's crc32(): start with crc = 0, pass the previous
 * return value to continue, and the return value is the finished CRC of everything
 * fed so far. Check values: "123456789" gives 0x906E and 0xE3069283.
 */

/* CRC-16/X.25: poly 0x1021 reflected, init 0xFFFF, final xor 0xFFFF. */
uint16_t crc16_x25(uint16_t crc, const void *buf, size_t len);

/* CRC-32C (Castagnoli): poly 0x1EDC6F41 reflected, init and final xor 0xFFFFFFFF. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- hash.c: BLAKE2b for modules that must not include sodium.h ---------------- */

#define HASH_LEN 32

struct hash;

/*
 * Starts a BLAKE2b hash with an output of outlen bytes (16..64) and an optional
 * key (keylen 0..64). Returns NULL on allocation failure.
 */
struct hash *hash_new(size_t outlen, const uint8_t *key, size_t keylen);
void hash_update(struct hash *h, const void *buf, size_t len);
/* Writes the digest (outlen bytes) to out and frees h. */
void hash_final(struct hash *h, uint8_t *out);
/* Frees an unfinished hash; hash_free(NULL) is a no-op. */
void hash_free(struct hash *h);
/* One-shot 32-byte BLAKE2b of buf. */
void hash_buf(uint8_t out[static HASH_LEN], const void *buf, size_t len);

/* ---- identity.c, idstring.c: node identity ------------------------------------- */

#define IDENTITY_SIGN_PK_LEN 32
#define IDENTITY_BOX_PK_LEN  32
#define IDENTITY_CERT_LEN    64
/* Longest identity string, without the terminating NUL. */
#define IDENTITY_STRING_MAX 240
/* Fingerprint text: 8 groups of 5 digits separated by spaces, plus NUL. */
#define IDENTITY_FINGERPRINT_LEN 48

/*
 * What a node shares: its Ed25519 identity key and the X25519 encryption key of
 * the current epoch, certified by the identity key.
 */
struct identity_public {
	uint8_t sign_pk[IDENTITY_SIGN_PK_LEN];
	uint8_t box_pk[IDENTITY_BOX_PK_LEN];
	uint32_t epoch;
	uint8_t cert[IDENTITY_CERT_LEN];
};

/* A node's secret keys, kept in sodium_malloc'd memory. Opaque. */
struct identity;

/* Creates a new identity with a first encryption key (epoch 1). 0 or -ENOMEM. */
int identity_generate(struct identity **out);
/* Wipes and frees; identity_free(NULL) is a no-op. */
void identity_free(struct identity *id);
void identity_get_public(const struct identity *id, struct identity_public *out);
/* Replaces the encryption key by a new one (epoch + 1), keeping the old secret to open old mail. */
int identity_rotate(struct identity *id);

/* True if cert is a valid signature by sign_pk over (box_pk, epoch). */
bool identity_public_verify(const struct identity_public *pub);

/*
 * Writes the identity string ("tern1" + base32 of the public keys, certificate
 * and a checksum) to out (at least IDENTITY_STRING_MAX + 1 bytes).
 */
void identity_public_encode(const struct identity_public *pub, char *out, size_t outlen);
/*
 * Parses an identity string. Returns 0; -EINVAL if it is not an identity string
 * (wrong prefix, bad character, wrong length); -EBADMSG if the checksum fails (a
 * typo); -EKEYREJECTED if the certificate does not verify. *why gets a short
 * reason in every error case.
 */
int identity_public_decode(const char *s, struct identity_public *out, const char **why);

/* Human-comparable fingerprint of an identity key: "12345 67890 ..." (8 groups). */
void identity_fingerprint(const uint8_t sign_pk[static IDENTITY_SIGN_PK_LEN],
			  char out[static IDENTITY_FINGERPRINT_LEN]);

/*
 * The ipn node number of an identity: 32 bits of BLAKE2b over the key, in the
 * range [2^24, 2^32 - 2] so it never hits the well-known small numbers nor
 * LocalNode. See docs/identity.md.
 */
uint32_t identity_node_number(const uint8_t sign_pk[static IDENTITY_SIGN_PK_LEN]);

/* ---- keyfile.c: secret keys at rest --------------------------------------------- */

/*
 * Serialises the secret keys, sealed with a key from Argon2id (crypto_pwhash) when
 * passphrase is not NULL. *out is malloc'd; the caller writes it to a 0600 file and
 * frees it with keyfile_buf_free. 0, -EINVAL (empty passphrase) or -ENOMEM.
 */
int keyfile_encode(const struct identity *id, const char *passphrase, uint8_t **out,
		   size_t *outlen);
/* Wipes and frees a buffer from keyfile_encode (plain free() would leave keys in the heap). */
void keyfile_buf_free(uint8_t *buf, size_t len);
/* True if buf is a passphrase-protected key file. */
bool keyfile_is_encrypted(const uint8_t *buf, size_t len);
/*
 * Parses a key file. Returns 0; -EINVAL if malformed; -EACCES if the passphrase is
 * wrong or missing for a protected file; -ENOMEM.
 */
int keyfile_decode(const uint8_t *buf, size_t len, const char *passphrase, struct identity **out);

/* ---- pwstream.c: a byte stream sealed with a passphrase (node backups) ------------ */

/*
 * Layout (docs/backup.md): "TERNBKP", version 1, Argon2id opslimit and memlimit (big-endian
 * u64), salt, a 16-byte check of the derived key, the secretstream header. Then the caller
 * writes chunks of at most PWSTREAM_CHUNK_MAX bytes, each PWSTREAM_ABYTES longer sealed; the
 * last one is marked final, so a truncated stream is told from a whole one.
 */
#define PWSTREAM_HEADER_LEN 80
#define PWSTREAM_CHUNK_MAX  65536
#define PWSTREAM_ABYTES	    17
struct pwstream;
/* True if the header starts as one pwstream_seal_new writes (no passphrase needed to tell). */
bool pwstream_is_header(const uint8_t *header, size_t len);
/* Writes a new header (random salt) and returns a sealer. 0, -EINVAL (empty passphrase), -ENOMEM.
 */
int pwstream_seal_new(const char *passphrase, uint8_t header[static PWSTREAM_HEADER_LEN],
		      struct pwstream **out);
/*
 * Checks a header and the passphrase. 0; -EINVAL (not a backup, or an unknown version),
 * -E2BIG (it asks for more Argon2id work than a backup is ever made with), -EACCES (wrong
 * passphrase, or a damaged header), -ENOMEM.
 */
int pwstream_open_new(const char *passphrase, const uint8_t header[static PWSTREAM_HEADER_LEN],
		      struct pwstream **out);
/* Seals len <= PWSTREAM_CHUNK_MAX bytes into out (len + PWSTREAM_ABYTES). 0, or -EINVAL after the
 * final one. */
int pwstream_seal(struct pwstream *p, const uint8_t *in, size_t len, bool final, uint8_t *out);
/*
 * Opens the next chunk into out (len - PWSTREAM_ABYTES bytes); *final tells the last one.
 * 0, or -EBADMSG (damaged, reordered, or anything after the final chunk).
 */
int pwstream_open(struct pwstream *p, const uint8_t *in, size_t len, uint8_t *out, bool *final);
/* Wipes and frees; NULL is a no-op. */
void pwstream_free(struct pwstream *p);

/* ---- envelope.c: the end-to-end envelope (docs/envelope.md) ------------------- */

enum envelope_kind {
	ENVELOPE_TEXT = 1,
	ENVELOPE_FILE = 2,
	/*
	 * A record for the node, not for a person (full form only): a delivery receipt, a
	 * stick manifest or custody receipt. Its body says which; it never reaches the inbox.
	 */
	ENVELOPE_CONTROL = 3,
};

#define ENVELOPE_MSG_ID_LEN	16
#define ENVELOPE_NAME_MAX	255
#define ENVELOPE_MAX_RECIPIENTS 64
/* Text up to this many bytes for one recipient may use the compact form. */
#define ENVELOPE_COMPACT_MAX 1024
/* A compact envelope is exactly this many bytes longer than its text. */
#define ENVELOPE_COMPACT_OVERHEAD 114

struct envelope_recipient {
	uint8_t sign_pk[IDENTITY_SIGN_PK_LEN];
	uint8_t box_pk[IDENTITY_BOX_PK_LEN];
};

/* What the recipient learns besides the content; all of it travels encrypted. */
struct envelope_meta {
	uint8_t sender_sign_pk[IDENTITY_SIGN_PK_LEN];
	uint8_t msg_id[ENVELOPE_MSG_ID_LEN];
	enum envelope_kind kind;
	uint64_t created_ms;		  /* sender's clock, Unix ms; 0 if not trusted */
	uint64_t expires_ms;		  /* Unix ms; 0 if none */
	uint64_t size;			  /* plaintext bytes */
	char name[ENVELOPE_NAME_MAX + 1]; /* file base name; "" for text */
	bool compact;
	size_t n_recipients;
	uint8_t recipients[ENVELOPE_MAX_RECIPIENTS][IDENTITY_SIGN_PK_LEN];
};

/* Receives output bytes; returns 0 or a negative errno that aborts the operation. */
typedef int (*envelope_sink)(void *ctx, const uint8_t *buf, size_t len);

/*
 * Exact size of a full-form envelope for this many recipients and this meta
 * (kind, name, size); 0 if envelope_seal_new would refuse them.
 */
uint64_t envelope_sealed_size(size_t n_recipients, const struct envelope_meta *meta);

/* Streaming sealer for the full form. Opaque. */
struct envelope_sealer;

/*
 * Starts sealing for n recipients (1..ENVELOPE_MAX_RECIPIENTS, distinct sign_pk).
 * meta->kind, name, size, created_ms, expires_ms are read; msg_id, sender and
 * recipients are filled in by the sealer and meta is updated with them. A text has
 * an empty name; a file a base name of 1..255 bytes without '/' (not "." or "..").
 * The plaintext must be exactly meta->size bytes (at most 2^48). The header goes to
 * sink now. 0, -EINVAL (arguments, or a recipient box_pk of low order), -ENOMEM, or
 * the sink's error. The sink's errors also end update and final.
 */
int envelope_seal_new(const struct identity *sender, const struct envelope_recipient *rcpt,
		      size_t n, struct envelope_meta *meta, envelope_sink sink, void *ctx,
		      struct envelope_sealer **out);
int envelope_seal_update(struct envelope_sealer *s, const uint8_t *buf, size_t len);
/*
 * Writes the last chunk and the signature, then frees s (also on error). -EINVAL if
 * the plaintext was shorter than meta->size (update refuses more than that).
 */
int envelope_seal_final(struct envelope_sealer *s);
void envelope_sealer_free(struct envelope_sealer *s);

/*
 * Seals a short text for one recipient in the compact form into out (cap bytes);
 * *outlen = len + ENVELOPE_COMPACT_OVERHEAD. meta->kind must be ENVELOPE_TEXT with
 * an empty name; meta is then filled (msg_id, sender, recipient, size; created_ms
 * and expires_ms are not carried and come back 0). 0, -EINVAL (too long, not a
 * text, low-order box_pk), -ENOSPC (cap too small), -ENOMEM.
 */
int envelope_seal_compact(const struct identity *sender, const struct envelope_recipient *rcpt,
			  const uint8_t *text, size_t len, struct envelope_meta *meta, uint8_t *out,
			  size_t cap, size_t *outlen);

/* Streaming opener for both forms. Opaque. */
struct envelope_opener;

/*
 * Looks up the identity keys a compact envelope may come from (the address book).
 * Calls fn for each candidate; the opener tries them in turn. hint is the first byte
 * of the sender's identity key when the envelope names it, ENVELOPE_HINT_NONE when
 * not: only keys that start with it can verify, so a hub need not offer its whole
 * address book (the opener skips the others anyway).
 */
#define ENVELOPE_HINT_NONE (-1)
typedef void (*envelope_candidates)(void *ctx, int hint,
				    void (*fn)(void *fctx, const uint8_t pk[32]), void *fctx);

/* Starts opening as me, which must outlive the opener. 0, -EINVAL, -ENOMEM. */
int envelope_open_new(const struct identity *me, struct envelope_opener **out);
/*
 * Feeds sealed bytes. Full form: plaintext goes to sink (may be NULL) as it is
 * decrypted; it is NOT yet verified, and the caller must not release it before
 * envelope_open_final returns 0. Compact form: the text goes, verified, to the sink
 * of the last update call during envelope_open_final. Errors (sticky):
 * -ENOKEY (no stanza opens with our keys, or we are not among the signed
 * recipients: not for us), -EBADMSG (corrupt, tampered, reordered, unknown form),
 * -E2BIG (data after the end), or the sink's error.
 */
int envelope_open_update(struct envelope_opener *o, const uint8_t *buf, size_t len,
			 envelope_sink sink, void *ctx);
/*
 * Ends the stream and verifies it. Returns 0 and fills meta; -EBADMSG if truncated
 * or tampered; -EKEYREJECTED if the signature is not the named sender's; for a
 * compact envelope -ENOKEY if it does not open with our keys (damage looks the
 * same) and -ENOENT if its sender is none of the candidates (cand may be NULL for
 * the full form). An earlier update error is returned again. Frees nothing.
 */
int envelope_open_final(struct envelope_opener *o, envelope_candidates cand, void *cctx,
			struct envelope_meta *meta);
/*
 * Wipes o and makes it ready to open another envelope, as envelope_open_new would,
 * without the cost of a fresh guarded allocation (several system calls): for a node
 * opening thousands of short messages in a row.
 */
void envelope_open_reset(struct envelope_opener *o);
void envelope_opener_free(struct envelope_opener *o);

/* ---- noise.c: the link handshake, Noise over 25519/ChaChaPoly/BLAKE2b (docs/noise.md) ---- */

/*
 * Sans-I/O Noise (revision 34): the caller moves the bytes. tern's links use NOISE_IK when
 * the initiator knows the responder's current box key and NOISE_XX otherwise; the other
 * patterns exist so every published test vector can be checked. The static key of a node
 * is the X25519 key of its identity's current epoch (identity_public.box_pk).
 */
enum noise_pattern {
	NOISE_N = 1,
	NOISE_K,
	NOISE_X,
	NOISE_NK,
	NOISE_KK,
	NOISE_IK,
	NOISE_XX,
	NOISE_IKPSK2,
	NOISE_XXPSK3,
};

#define NOISE_KEY_LEN  32
#define NOISE_TAG_LEN  16
#define NOISE_HASH_LEN 64
/* Longest Noise message on the wire, handshake or transport. */
#define NOISE_MSG_MAX 65535
/* A handshake message of tern's patterns is at most this much longer than its payload. */
#define NOISE_HANDSHAKE_OVERHEAD_MAX 96
/* A transport message is exactly this much longer than its plaintext. */
#define NOISE_TRANSPORT_OVERHEAD NOISE_TAG_LEN

/* A handshake in progress; keys live in sodium_malloc'd memory. Opaque. */
struct noise;
/* One direction of an established session: a key and a nonce counter. Opaque. */
struct noise_cipher;

/* What the handshake expects next. */
enum noise_next {
	NOISE_NEXT_WRITE = 1, /* call noise_write_message */
	NOISE_NEXT_READ,      /* call noise_read_message */
	NOISE_NEXT_SPLIT,     /* the handshake is complete: call noise_split */
	NOISE_NEXT_FAILED,    /* a message failed or the state was split: only noise_free is left */
};

/*
 * Starts a handshake as initiator or responder. The prologue (may be NULL if len is 0)
 * must be the same on both sides or the handshake fails. local gives the static key (its
 * current box key) when the pattern has one for this side, and is otherwise ignored
 * (may be NULL); it is copied, not kept. remote_static is the peer's box_pk when the
 * pattern needs it in advance (IK/NK/N/X/K/KK initiator; K/KK responder), otherwise
 * NULL. Returns 0, -EINVAL (unknown pattern, a key missing or superfluous), -ENOMEM.
 * The ephemeral key is drawn from tern_random when the first "e" is written, so
 * tern_crypto_test_set_rng (crypto/testing.h) fixes it for known-answer tests.
 */
int noise_new(enum noise_pattern pattern, bool initiator, const uint8_t *prologue,
	      size_t prologue_len, const struct identity *local,
	      const uint8_t remote_static[NOISE_KEY_LEN], struct noise **out);
/*
 * Sets the pre-shared key of a psk pattern (NOISE_IKPSK2, NOISE_XXPSK3) before the first
 * message; tern's links use none today. 0, or -EINVAL (not a psk pattern, or too late).
 */
int noise_set_psk(struct noise *st, const uint8_t psk[static NOISE_KEY_LEN]);
/* Wipes and frees; noise_free(NULL) is a no-op. */
void noise_free(struct noise *st);

enum noise_next noise_next(const struct noise *st);

/*
 * Writes the next handshake message, carrying payload (len bytes, may be NULL if 0), to
 * out (cap bytes); *outlen gets its length (at most len + NOISE_HANDSHAKE_OVERHEAD_MAX).
 * payload and out must not overlap. Payloads of the first messages are weaker than
 * transport data (docs/noise.md): no secrets, nothing that must not be replayed. Returns 0; -EINVAL
 * if it is not our turn or the message would exceed NOISE_MSG_MAX; -ENOSPC if cap is too small
 * (nothing changes); -EBADMSG if a DH fails (low-order remote key): the state is then dead.
 */
int noise_write_message(struct noise *st, const uint8_t *payload, size_t len, uint8_t *out,
			size_t cap, size_t *outlen);
/*
 * Reads the peer's next handshake message (in, len) and writes its payload to payload
 * (cap bytes, may be NULL if 0; not overlapping in), its length to *plen. Returns 0; -EINVAL if it
 * is not the peer's turn; -ENOSPC if cap is too small (nothing changes); -EBADMSG for anything
 * wrong with the message (short, long, bad tag, low-order key): the state is wiped and
 * dead, and the caller drops the connection without a reply.
 */
int noise_read_message(struct noise *st, const uint8_t *in, size_t len, uint8_t *payload,
		       size_t cap, size_t *plen);

/*
 * Copies the peer's static key to pk once it is known (given to noise_new, or received in
 * a handshake message). 0, or -ENOKEY if not (yet) known. The caller checks it against its
 * configured peers right after the message that revealed it, before writing anything.
 */
int noise_remote_static(const struct noise *st, uint8_t pk[static NOISE_KEY_LEN]);
/*
 * True if the peer's static key is known and is peer->box_pk, and peer's certificate
 * verifies (so box_pk belongs to peer->sign_pk). Constant time in the key comparison.
 */
bool noise_remote_is(const struct noise *st, const struct identity_public *peer);
/*
 * The handshake hash h, for channel binding (e.g. signing it with the identity key). 0, or
 * -EINVAL before the handshake completed. Still available after noise_split.
 */
int noise_handshake_hash(const struct noise *st, uint8_t h[static NOISE_HASH_LEN]);
/*
 * Ends the handshake: derives the two transport ciphers and wipes every handshake secret
 * from st (the remote static and the handshake hash stay readable). For one-way patterns
 * (N, K, X) only the initiator's send and the responder's receive cipher exist; the other
 * comes back NULL. Returns 0, -EINVAL (handshake not complete) or -ENOMEM. Free each
 * cipher with noise_cipher_free.
 */
int noise_split(struct noise *st, struct noise_cipher **send, struct noise_cipher **recv);

/*
 * Encrypts one transport message: out gets len + NOISE_TRANSPORT_OVERHEAD bytes (out may
 * equal in). 0; -EINVAL if the message would exceed NOISE_MSG_MAX; -ENOSPC if cap is too
 * small; -EOVERFLOW when the nonce counter is exhausted (2^64 - 1 messages): handshake
 * again; -EBADMSG if the cipher is dead.
 */
int noise_encrypt(struct noise_cipher *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		  size_t *outlen);
/*
 * Decrypts the next transport message in order: out gets len - NOISE_TRANSPORT_OVERHEAD
 * bytes (out may equal in), released only when the tag verified. 0; -ENOSPC if cap is too
 * small (nothing changes); -EBADMSG on any failure (short, long, tampered, replayed,
 * reordered, nonce exhausted): the cipher's key is wiped and every later call fails too,
 * so a decryption failure ends the session.
 */
int noise_decrypt(struct noise_cipher *c, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		  size_t *outlen);
/*
 * Noise's SetNonce: the next message uses nonce n. For links whose frames carry their
 * own sequence number, and for tests of exhaustion; the caller must never reuse a nonce.
 */
void noise_cipher_set_nonce(struct noise_cipher *c, uint64_t n);
/* Wipes and frees; noise_cipher_free(NULL) is a no-op. */
void noise_cipher_free(struct noise_cipher *c);

/* ---- hop.c: sealing for one peer without a handshake (Iridium SBD) ---- */

#define HOP_NONCE_LEN 24
#define HOP_TAG_LEN   16

/*
 * Seals len bytes of pt for peer, with ad authenticated too: out gets len + HOP_TAG_LEN
 * bytes. The key is this direction's, from both nodes' long-term box keys; nonce must
 * never repeat for the pair (a random one of 24 bytes does not). 0, or -EINVAL (the peer's
 * key is a low-order point).
 */
int hop_seal(const struct identity *me, const struct identity_public *peer,
	     const uint8_t nonce[static HOP_NONCE_LEN], const uint8_t *ad, size_t adlen,
	     const uint8_t *pt, size_t len, uint8_t *out);
/* Opens what peer sealed for this node with hop_seal: out gets len - HOP_TAG_LEN bytes. 0 or
 * -EBADMSG. */
int hop_open(const struct identity *me, const struct identity_public *peer,
	     const uint8_t nonce[static HOP_NONCE_LEN], const uint8_t *ad, size_t adlen,
	     const uint8_t *ct, size_t len, uint8_t *out);
