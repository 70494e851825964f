/* RFC 4648 base32 with the alphabet lowercased and no padding, strict on decode. */
#include <errno.h>

#include "crypto/internal.h"

static const char alphabet[32] = "abcdefghijklmnopqrstuvwxyz234567";

void base32_encode(const uint8_t *in, size_t len, char *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8 | in[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = alphabet[(acc >> bits) & 31];
		}
	}
	if (bits)
		out[o++] = alphabet[(acc << (5 - bits)) & 31];
}

static int value_of(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

ssize_t base32_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *bad)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	size_t nbytes = len * 5 / 8;

	/* Lengths that leave 5 or more trailing bits are never produced by an encoder. */
	if (len * 5 - nbytes * 8 >= 5 || nbytes > cap)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v = value_of(in[i]);

		if (v < 0) {
			if (bad)
				*bad = i;
			return -EINVAL;
		}
		acc = (acc << 5 | (uint32_t)v) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Non-zero padding bits would give one byte string two spellings. */
	if (acc & ((1u << bits) - 1))
		return -EINVAL;
	return (ssize_t)o;
}
