/* A byte stream sealed with a passphrase: Argon2id, then secretstream chunks (node backups). */
#include <errno.h>
#include <stdlib.h>

#include "crypto/internal.h"
#include "crypto/testing.h"

#define PWS_MAGIC     "TERNBKP"
#define PWS_MAGIC_LEN 7
#define PWS_VERSION   1
#define PWS_SALT_OFF  (PWS_MAGIC_LEN + 1 + 8 + 8)
#define PWS_CHECK_OFF (PWS_SALT_OFF + crypto_pwhash_argon2id_SALTBYTES)
#define PWS_SS_OFF    (PWS_CHECK_OFF + PWS_CHECK_LEN)
#define PWS_CHECK_LEN 16

/*
 * The limits a header may ask for: a hostile file must not make restore spend minutes or
 * gigabytes before the passphrase is even checked.
 */
#define PWS_OPSLIMIT_MAX 16
#define PWS_MEMLIMIT_MAX (UINT64_C(1) << 30)

#define PERSONAL_PWS_CHECK  "tern.bkp.check1"
#define PERSONAL_PWS_STREAM "tern.bkp.strm.v1"

_Static_assert(PWS_SS_OFF + crypto_secretstream_xchacha20poly1305_HEADERBYTES ==
		   PWSTREAM_HEADER_LEN,
	       "header layout");
_Static_assert(crypto_secretstream_xchacha20poly1305_ABYTES == PWSTREAM_ABYTES, "tag size");

static uint64_t test_opslimit, test_memlimit;

void pwstream_test_set_pwhash_limits(uint64_t opslimit, size_t memlimit)
{
	test_opslimit = opslimit;
	test_memlimit = memlimit;
}

struct pwstream {
	crypto_secretstream_xchacha20poly1305_state st;
	/* The header is the first chunk's additional data, so no field of it can be changed. */
	uint8_t header[PWSTREAM_HEADER_LEN];
	bool first;
	bool done;
};

/*
 * From the passphrase, two keys: one whose hash is stored (a wrong passphrase is told from
 * a damaged file before anything is opened) and one for the stream.
 */
static int derive_keys(const char *passphrase, const uint8_t *header, uint64_t ops, uint64_t mem,
		       uint8_t check[static PWS_CHECK_LEN],
		       uint8_t key[static crypto_secretstream_xchacha20poly1305_KEYBYTES])
{
	uint8_t *master = sodium_malloc(32);
	int ret = -ENOMEM;
	if (!master)
		return ret;
	if (crypto_pwhash(master, 32, passphrase, strlen(passphrase), header + PWS_SALT_OFF, ops,
			  (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
		goto out;
	blake2b_personal(check, PWS_CHECK_LEN, master, 32, PERSONAL_PWS_CHECK, header,
			 PWS_CHECK_OFF, NULL, 0, NULL, 0);
	blake2b_personal(key, crypto_secretstream_xchacha20poly1305_KEYBYTES, master, 32,
			 PERSONAL_PWS_STREAM, header, PWS_CHECK_OFF, NULL, 0, NULL, 0);
	ret = 0;
out:
	sodium_free(master);
	return ret;
}

static struct pwstream *pwstream_alloc(void)
{
	struct pwstream *p = sodium_malloc(sizeof(*p));
	if (p) {
		memset(p, 0, sizeof(*p));
		p->first = true;
	}
	return p;
}

bool pwstream_is_header(const uint8_t *header, size_t len)
{
	return len >= PWS_MAGIC_LEN && memcmp(header, PWS_MAGIC, PWS_MAGIC_LEN) == 0;
}

int pwstream_seal_new(const char *passphrase, uint8_t header[static PWSTREAM_HEADER_LEN],
		      struct pwstream **out)
{
	/*
	 * MODERATE's passes with INTERACTIVE's memory: a restore runs on a Pi with 512 MiB beside
	 * its daemon, where MODERATE's 256 MiB may not be had (docs/backup.md).
	 */
	uint64_t ops = test_opslimit ? test_opslimit : crypto_pwhash_argon2id_OPSLIMIT_MODERATE;
	uint64_t mem = test_memlimit ? test_memlimit : crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
	uint8_t *key = NULL;
	struct pwstream *p = NULL;
	int ret = -EINVAL;

	*out = NULL;
	if (!passphrase || !passphrase[0])
		goto out;
	ret = -ENOMEM;
	key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
	p = pwstream_alloc();
	if (!key || !p)
		goto out;
	memcpy(header, PWS_MAGIC, PWS_MAGIC_LEN);
	header[PWS_MAGIC_LEN] = PWS_VERSION;
	put_be64(header + PWS_MAGIC_LEN + 1, ops);
	put_be64(header + PWS_MAGIC_LEN + 9, mem);
	tern_random(header + PWS_SALT_OFF, crypto_pwhash_argon2id_SALTBYTES);
	ret = derive_keys(passphrase, header, ops, mem, header + PWS_CHECK_OFF, key);
	if (ret)
		goto out;
	crypto_secretstream_xchacha20poly1305_init_push(&p->st, header + PWS_SS_OFF, key);
	memcpy(p->header, header, PWSTREAM_HEADER_LEN);
	*out = p;
	p = NULL;
out:
	sodium_free(key);
	pwstream_free(p);
	return ret;
}

int pwstream_open_new(const char *passphrase, const uint8_t header[static PWSTREAM_HEADER_LEN],
		      struct pwstream **out)
{
	uint8_t check[PWS_CHECK_LEN];
	uint8_t *key = NULL;
	struct pwstream *p = NULL;
	int ret = -EINVAL;

	*out = NULL;
	if (memcmp(header, PWS_MAGIC, PWS_MAGIC_LEN) != 0 || header[PWS_MAGIC_LEN] != PWS_VERSION)
		goto out;
	uint64_t ops = get_be64(header + PWS_MAGIC_LEN + 1);
	uint64_t mem = get_be64(header + PWS_MAGIC_LEN + 9);
	ret = -E2BIG;
	if (ops < crypto_pwhash_argon2id_OPSLIMIT_MIN || ops > PWS_OPSLIMIT_MAX ||
	    mem < crypto_pwhash_argon2id_MEMLIMIT_MIN || mem > PWS_MEMLIMIT_MAX)
		goto out;
	ret = -EINVAL;
	if (!passphrase || !passphrase[0])
		goto out;
	ret = -ENOMEM;
	key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
	p = pwstream_alloc();
	if (!key || !p)
		goto out;
	ret = derive_keys(passphrase, header, ops, mem, check, key);
	if (ret)
		goto out;
	ret = -EACCES;
	if (sodium_memcmp(check, header + PWS_CHECK_OFF, PWS_CHECK_LEN) != 0)
		goto out;
	ret = -EBADMSG;
	if (crypto_secretstream_xchacha20poly1305_init_pull(&p->st, header + PWS_SS_OFF, key) != 0)
		goto out;
	memcpy(p->header, header, PWSTREAM_HEADER_LEN);
	*out = p;
	p = NULL;
	ret = 0;
out:
	sodium_free(key);
	pwstream_free(p);
	return ret;
}

int pwstream_seal(struct pwstream *p, const uint8_t *in, size_t len, bool final, uint8_t *out)
{
	if (p->done || len > PWSTREAM_CHUNK_MAX)
		return -EINVAL;
	crypto_secretstream_xchacha20poly1305_push(
	    &p->st, out, NULL, in, len, p->first ? p->header : NULL,
	    p->first ? PWSTREAM_HEADER_LEN : 0,
	    final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
	p->first = false;
	p->done = final;
	return 0;
}

int pwstream_open(struct pwstream *p, const uint8_t *in, size_t len, uint8_t *out, bool *final)
{
	unsigned char tag;
	if (p->done || len < PWSTREAM_ABYTES || len > PWSTREAM_CHUNK_MAX + PWSTREAM_ABYTES)
		return -EBADMSG;
	if (crypto_secretstream_xchacha20poly1305_pull(&p->st, out, NULL, &tag, in, len,
						       p->first ? p->header : NULL,
						       p->first ? PWSTREAM_HEADER_LEN : 0) != 0)
		return -EBADMSG;
	if (tag != 0 && tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL)
		return -EBADMSG;
	p->first = false;
	p->done = *final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
	return 0;
}

void pwstream_free(struct pwstream *p)
{
	sodium_free(p); /* sodium_free wipes */
}
