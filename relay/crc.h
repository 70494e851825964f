/* CRC-16/X.25 and CRC-32C as RFC 9171 §4.2.1 specifies them for bundle blocks. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Both functions chain like zlib's crc32(): start with crc = 0, pass the previous
 * return value to continue, and the return value is the finished CRC of everything
 * fed so far. Check values: "123456789" gives 0x906E and 0xE3069283.
 */

/* CRC-16/X.25: poly 0x1021 reflected, init 0xFFFF, final xor 0xFFFF. */
uint16_t crc16_x25(uint16_t crc, const void *buf, size_t len);

/* CRC-32C (Castagnoli): poly 0x1EDC6F41 reflected, init and final xor 0xFFFFFFFF. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
