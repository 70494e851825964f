/* CRC-32C (Castagnoli), slicing-by-8 in portable C, for the store's per-chunk checksums. */
#include <pthread.h>

#include "store/crc32c.h"

/*
 * The store needs a checksum it computes itself (store/ depends on no other tern
 * module and not on libsodium). CRC-32C detects every burst error up to 32 bits and
 * all the bit rot an SD card produces in a 64 KiB chunk with probability 1 - 2^-32;
 * it is not a defence against an attacker with write access to the file, who could
 * rewrite the CRC too (the envelope's signature is that defence). Slicing-by-8 runs
 * at a few bytes per cycle, well above what an SD card reads.
 */

#define POLY 0x82f63b78u /* 0x1edc6f41 reflected */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	while (len >= 8) {
		/* Bytes assembled explicitly: same result on either endianness. */
		uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				    (uint32_t)p[3] << 24);

		crc = table[7][a & 0xff] ^ table[6][(a >> 8) & 0xff] ^ table[5][(a >> 16) & 0xff] ^
		      table[4][a >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^
		      table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}
