/* Serial frames: body and CRC-32C, COBS-encoded, ended by 0x00; and the receiver's deframer. */
#include <errno.h>
#include <string.h>

#include "crypto/crypto.h"
#include "transports/serial.h"

size_t serial_frame_wrap(const uint8_t *body, size_t len, uint8_t wire[static SERIAL_WIRE_MAX])
{
	uint8_t raw[SERIAL_BODY_MAX + 4];
	memcpy(raw, body, len);
	uint32_t crc = crc32c(0, body, len);
	raw[len] = (uint8_t)(crc >> 24);
	raw[len + 1] = (uint8_t)(crc >> 16);
	raw[len + 2] = (uint8_t)(crc >> 8);
	raw[len + 3] = (uint8_t)crc;
	len += 4;
	/* COBS: each run of up to 254 non-zero bytes is led by its length plus one. */
	size_t out = 1, code_at = 0;
	uint8_t code = 1;
	for (size_t i = 0; i < len; i++) {
		if (raw[i] == 0) {
			wire[code_at] = code;
			code_at = out++;
			code = 1;
			continue;
		}
		wire[out++] = raw[i];
		if (++code == 0xff) {
			wire[code_at] = code;
			code_at = out++;
			code = 1;
		}
	}
	wire[code_at] = code;
	wire[out++] = 0;
	return out;
}

void serial_deframer_init(struct serial_deframer *d)
{
	memset(d, 0, sizeof(*d));
	/* Until the first delimiter, whatever arrives may be the tail of a frame. */
	d->overlong = true;
}

/* Decodes COBS in place: the decoded length, or 0 if the encoding is broken. */
static size_t cobs_decode(uint8_t *buf, size_t len)
{
	size_t in = 0, out = 0;
	while (in < len) {
		uint8_t code = buf[in++];
		if (code == 0 || in + code - 1 > len)
			return 0;
		for (uint8_t k = 1; k < code; k++)
			buf[out++] = buf[in++];
		if (code != 0xff && in < len)
			buf[out++] = 0;
	}
	return out;
}

static int frame_end(struct serial_deframer *d, serial_frame_fn fn, void *ctx)
{
	size_t len = d->len;
	d->len = 0;
	if (d->overlong) {
		d->overlong = false;
		if (len)
			d->bad++;
		return 0;
	}
	if (len == 0)
		return 0; /* two delimiters in a row: an idle line's resync */
	size_t n = cobs_decode(d->buf, len);
	if (n < 5) {
		d->bad++;
		return 0;
	}
	uint32_t want = crc32c(0, d->buf, n - 4);
	const uint8_t *c = d->buf + n - 4;
	uint32_t got = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
	if (want != got) {
		d->bad++;
		return 0;
	}
	d->good++;
	return fn(ctx, d->buf, n - 4);
}

int serial_deframe(struct serial_deframer *d, const uint8_t *buf, size_t len, serial_frame_fn fn,
		   void *ctx)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == 0) {
			int ret = frame_end(d, fn, ctx);
			if (ret < 0)
				return ret;
			continue;
		}
		if (d->overlong)
			continue;
		if (d->len == sizeof(d->buf)) {
			d->overlong = true;
			continue;
		}
		d->buf[d->len++] = buf[i];
	}
	return 0;
}
