/* Tests CRC-16/X.25 and CRC-32C against their check values and in pieces. */
#include <stdint.h>

#include "crypto/crypto.h"
#include "test.h"

static void test_check_values(void)
{
	static const char check[] = "123456789";

	CHECK_EQ(crc16_x25(0, check, 9), 0x906E);
	CHECK_EQ(crc32c(0, check, 9), 0xE3069283u);
	/* Nothing fed: the CRC of the empty string is 0 for both. */
	CHECK_EQ(crc16_x25(0, check, 0), 0);
	CHECK_EQ(crc32c(0, check, 0), 0);
}

static void test_known_vectors(void)
{
	/* RFC 3720 B.4 (iSCSI) CRC-32C vectors: 32 zero bytes, 32 0xff bytes, 0..31. */
	uint8_t buf[32];

	memset(buf, 0, sizeof(buf));
	CHECK_EQ(crc32c(0, buf, sizeof(buf)), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ(crc32c(0, buf, sizeof(buf)), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	CHECK_EQ(crc32c(0, buf, sizeof(buf)), 0x46DD794Eu);
}

static void test_chaining(void)
{
	uint8_t buf[257];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint16_t c16 = crc16_x25(0, buf, sizeof(buf));
	uint32_t c32 = crc32c(0, buf, sizeof(buf));

	for (size_t cut = 0; cut <= sizeof(buf); cut++) {
		CHECK_EQ(crc16_x25(crc16_x25(0, buf, cut), buf + cut, sizeof(buf) - cut), c16);
		CHECK_EQ(crc32c(crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut), c32);
	}
}

/* The bp7-rs encoding samples (tests/vectors/bundles/README.md): a primary block's CRCs. */
static void test_bp7rs_primary(void)
{
	/* [7,0,1,[1,"n2/inbox"],[1,"n1"],[1,"n1"],[2342,2],60000000, h'0000'] */
	uint8_t b16[] = {0x89, 0x07, 0x00, 0x01, 0x82, 0x01, 0x68, 0x6e, 0x32, 0x2f,
			 0x69, 0x6e, 0x62, 0x6f, 0x78, 0x82, 0x01, 0x62, 0x6e, 0x31,
			 0x82, 0x01, 0x62, 0x6e, 0x31, 0x82, 0x19, 0x09, 0x26, 0x02,
			 0x1a, 0x03, 0x93, 0x87, 0x00, 0x42, 0,	   0};
	uint8_t b32[] = {0x89, 0x07, 0x00, 0x02, 0x82, 0x01, 0x68, 0x6e, 0x32, 0x2f,
			 0x69, 0x6e, 0x62, 0x6f, 0x78, 0x82, 0x01, 0x62, 0x6e, 0x31,
			 0x82, 0x01, 0x62, 0x6e, 0x31, 0x82, 0x19, 0x09, 0x26, 0x02,
			 0x1a, 0x03, 0x93, 0x87, 0x00, 0x44, 0,	   0,	 0,    0};

	CHECK_EQ(crc16_x25(0, b16, sizeof(b16)), 0xE7CA);
	CHECK_EQ(crc32c(0, b32, sizeof(b32)), 0xCA4FC368u);
}

int main(void)
{
	test_check_values();
	test_known_vectors();
	test_chaining();
	test_bp7rs_primary();
	TEST_MAIN_END();
}
