/* The compact envelope: one recipient, one short text, 114 bytes of overhead, sender named only
 * inside the signature (and, from version 2, by the first byte of its key, inside the
 * encryption). */
#include <errno.h>

#include "crypto/internal.h"

static const uint8_t zero_nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

/*
 * The signed message: domain || eph_pk || recipient sign_pk || recipient box_pk || kind || text.
 * Version 1's kind byte is the kind (a text); version 2's is the hint, the first byte of the
 * sender's key, and its domain differs so that neither signature passes for the other.
 */
_Static_assert(sizeof(DOMAIN_CMP_SIG) == sizeof(DOMAIN_CMP2_SIG), "domains of one length");
#define CMP_SIG_PREFIX (sizeof(DOMAIN_CMP_SIG) + 32 + 32 + 32 + 1)
#define CMP_SIG_MAX    (CMP_SIG_PREFIX + ENVELOPE_COMPACT_MAX)

static size_t signed_message(uint8_t *out, uint8_t form, const uint8_t eph_pk[static 32],
			     const uint8_t rcpt_sign_pk[static 32],
			     const uint8_t rcpt_box_pk[static 32], uint8_t kind,
			     const uint8_t *text, size_t len)
{
	uint8_t *p = out;

	memcpy(p, form == ENV_FORM_COMPACT ? DOMAIN_CMP_SIG : DOMAIN_CMP2_SIG,
	       sizeof(DOMAIN_CMP_SIG));
	p += sizeof(DOMAIN_CMP_SIG);
	memcpy(p, eph_pk, 32);
	memcpy(p + 32, rcpt_sign_pk, 32);
	memcpy(p + 64, rcpt_box_pk, 32);
	p += 96;
	*p++ = kind;
	if (len)
		memcpy(p, text, len);
	return CMP_SIG_PREFIX + len;
}

/* The AEAD key: BLAKE2b(ss || eph_pk || recipient box_pk), personalised apart from the full form.
 */
static void compact_key(uint8_t out[static 32], const uint8_t ss[static 32],
			const uint8_t eph_pk[static 32], const uint8_t box_pk[static 32])
{
	blake2b_personal(out, 32, NULL, 0, PERSONAL_COMPACT_KEY, ss, 32, eph_pk, 32, box_pk, 32);
}

/* Unique per message because eph_pk is, and bound by the signature because eph_pk is signed. */
static void compact_msg_id(uint8_t out[static ENVELOPE_MSG_ID_LEN], const uint8_t eph_pk[static 32])
{
	blake2b_personal(out, ENVELOPE_MSG_ID_LEN, NULL, 0, PERSONAL_COMPACT_ID, eph_pk, 32, NULL,
			 0, NULL, 0);
}

/* Secrets and the plaintext in one sodium_malloc'd block, wiped on free. */
struct compact_work {
	uint8_t eph_sk[32];
	uint8_t ss[32];
	uint8_t key[32];
	uint8_t plain[ENV_COMPACT_PLAIN_OVERHEAD + ENVELOPE_COMPACT_MAX];
	uint8_t msg[CMP_SIG_MAX];
};

_Static_assert(sizeof(struct compact_work) <= ENV_COMPACT_SCRATCH, "compact scratch fits");

int envelope_seal_compact(const struct identity *sender, const struct envelope_recipient *rcpt,
			  const uint8_t *text, size_t len, struct envelope_meta *meta, uint8_t *out,
			  size_t cap, size_t *outlen)
{
	struct compact_work *w = NULL;
	uint8_t eph_pk[32];
	size_t msg_len;
	int ret = -EINVAL;

	if (!sender || !rcpt || !meta || !out || !outlen || (len && !text) ||
	    len > ENVELOPE_COMPACT_MAX || meta->kind != ENVELOPE_TEXT || meta->name[0])
		goto out;
	ret = -ENOSPC;
	if (cap < ENVELOPE_COMPACT_OVERHEAD + len)
		goto out;
	ret = -ENOMEM;
	w = sodium_malloc(sizeof(*w));
	if (!w)
		goto out;
	tern_random(w->eph_sk, sizeof(w->eph_sk));
	crypto_scalarmult_curve25519_base(eph_pk, w->eph_sk);
	ret = -EINVAL;
	/* All-zero output: the recipient's key is a low-order point. */
	if (crypto_scalarmult_curve25519(w->ss, w->eph_sk, rcpt->box_pk) != 0)
		goto out;
	compact_key(w->key, w->ss, eph_pk, rcpt->box_pk);

	/* The hint spares a hub one signature check per contact; only the recipient reads it. */
	w->plain[0] = sender->sign_pk[0];
	msg_len = signed_message(w->msg, ENV_FORM_COMPACT2, eph_pk, rcpt->sign_pk, rcpt->box_pk,
				 w->plain[0], text, len);
	crypto_sign_ed25519_detached(w->plain + 1, NULL, w->msg, msg_len, sender->sign_sk);
	if (len)
		memcpy(w->plain + ENV_COMPACT_PLAIN_OVERHEAD, text, len);

	out[0] = ENV_FORM_COMPACT2;
	memcpy(out + 1, eph_pk, 32);
	/* The key is fresh per message (fresh ephemeral DH), so the nonce can be constant. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + ENV_COMPACT_HDR, NULL, w->plain,
						   ENV_COMPACT_PLAIN_OVERHEAD + len, out,
						   ENV_COMPACT_HDR, NULL, zero_nonce, w->key);
	*outlen = ENVELOPE_COMPACT_OVERHEAD + len;

	memset(meta, 0, sizeof(*meta));
	memcpy(meta->sender_sign_pk, sender->sign_pk, 32);
	compact_msg_id(meta->msg_id, eph_pk);
	meta->kind = ENVELOPE_TEXT;
	meta->size = len;
	meta->compact = true;
	meta->n_recipients = 1;
	memcpy(meta->recipients[0], rcpt->sign_pk, 32);
	ret = 0;
out:
	if (w)
		sodium_free(w);
	return ret;
}

struct candidate_search {
	int hint;
	const uint8_t *sig;
	const uint8_t *msg;
	size_t msg_len;
	bool found;
	uint8_t pk[32];
};

static void try_candidate(void *fctx, const uint8_t pk[32])
{
	struct candidate_search *cs = fctx;

	if (cs->found || !pk || (cs->hint != ENVELOPE_HINT_NONE && pk[0] != cs->hint))
		return;
	if (crypto_sign_ed25519_verify_detached(cs->sig, cs->msg, cs->msg_len, pk) == 0) {
		cs->found = true;
		memcpy(cs->pk, pk, 32);
	}
}

int envelope_compact_open(const struct identity *me, const uint8_t *in, size_t len,
			  envelope_candidates cand, void *cctx, struct envelope_meta *meta,
			  uint8_t *text, size_t *text_len, void *scratch)
{
	struct compact_work *w = scratch;
	struct candidate_search cs = {0};
	const uint8_t *eph_pk = in + 1;
	const struct identity_box_key *opened = NULL;
	size_t plain_len, n;
	int ret = -EBADMSG;

	if (len < ENVELOPE_COMPACT_OVERHEAD ||
	    len > ENVELOPE_COMPACT_OVERHEAD + ENVELOPE_COMPACT_MAX ||
	    (in[0] != ENV_FORM_COMPACT && in[0] != ENV_FORM_COMPACT2))
		goto out;
	plain_len = len - ENV_COMPACT_HDR - crypto_aead_xchacha20poly1305_ietf_ABYTES;
	n = plain_len - ENV_COMPACT_PLAIN_OVERHEAD;
	/* The compact form names no recipient either: try each of our keys. */
	for (size_t j = 0; j < me->n_box && !opened; j++) {
		if (crypto_scalarmult_curve25519(w->ss, me->box[j].sk, eph_pk) != 0)
			continue;
		compact_key(w->key, w->ss, eph_pk, me->box[j].pk);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(
			w->plain, NULL, NULL, in + ENV_COMPACT_HDR, len - ENV_COMPACT_HDR, in,
			ENV_COMPACT_HDR, zero_nonce, w->key) == 0)
			opened = &me->box[j];
	}
	ret = -ENOKEY;
	if (!opened)
		goto out;
	ret = -EBADMSG;
	if (in[0] == ENV_FORM_COMPACT && w->plain[0] != ENVELOPE_TEXT)
		goto out;
	cs.hint = in[0] == ENV_FORM_COMPACT ? ENVELOPE_HINT_NONE : w->plain[0];
	/*
	 * The sender is not named, even inside: whoever's signature verifies wrote it.
	 * The signature covers our keys, so a message to someone else re-encrypted for
	 * us does not verify.
	 */
	cs.sig = w->plain + 1;
	cs.msg = w->msg;
	cs.msg_len = signed_message(w->msg, in[0], eph_pk, me->sign_pk, opened->pk, w->plain[0],
				    w->plain + ENV_COMPACT_PLAIN_OVERHEAD, n);
	if (cand)
		cand(cctx, cs.hint, try_candidate, &cs);
	ret = -ENOENT;
	if (!cs.found)
		goto out;

	memset(meta, 0, sizeof(*meta));
	memcpy(meta->sender_sign_pk, cs.pk, 32);
	compact_msg_id(meta->msg_id, eph_pk);
	meta->kind = ENVELOPE_TEXT;
	meta->size = n;
	meta->compact = true;
	meta->n_recipients = 1;
	memcpy(meta->recipients[0], me->sign_pk, 32);
	memcpy(text, w->plain + ENV_COMPACT_PLAIN_OVERHEAD, n);
	*text_len = n;
	ret = 0;
out:
	sodium_memzero(w, sizeof(*w));
	return ret;
}
