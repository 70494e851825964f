/* CRC-32C (Castagnoli) for the store's per-chunk checksums; internal to store/. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Continues a CRC-32C over buf: start with crc = 0, feed the result back in for the
 * next piece. store_crc32c(0, "123456789", 9) == 0xe3069283.
 */
uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len);
