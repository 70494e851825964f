/* Fuzz target: the serial link's byte layer (transports/serial_*.c): a line's bytes, cut
 * into reads at arbitrary points, into an ARQ; the deframer's round trip; line specs. */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transports/serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: byte 0 is the read size (1 + byte % 64), byte 1 the milliseconds between reads;
 * the rest is what the line brought. A stream byte delivered twice, or out of the window,
 * would show as more bytes than the DATA frames in the input carried.
 */
struct seen {
	size_t stream, frames;
};

static int count_stream(void *ctx, const uint8_t *buf, size_t len)
{
	struct seen *s = ctx;
	assert(len >= 1 && len <= SERIAL_PAYLOAD_MAX);
	(void)buf;
	s->stream += len;
	return 0;
}

struct expect {
	const uint8_t *body;
	size_t len;
	int matched;
};

static int compare(void *ctx, const uint8_t *body, size_t len)
{
	struct expect *e = ctx;
	assert(len == e->len && !memcmp(body, e->body, len));
	e->matched++;
	return 0;
}

/* Every good frame wraps again into a frame the deframer gives back unchanged. */
static int round_trip(void *ctx, const uint8_t *body, size_t len)
{
	struct seen *s = ctx;
	uint8_t wire[SERIAL_WIRE_MAX], copy[SERIAL_BODY_MAX];
	assert(len >= 1 && len <= SERIAL_BODY_MAX);
	memcpy(copy, body, len);
	size_t n = serial_frame_wrap(copy, len, wire);
	assert(n <= SERIAL_WIRE_MAX && wire[n - 1] == 0 && !memchr(wire, 0, n - 1));
	struct serial_deframer d;
	struct expect e = {copy, len, 0};
	serial_deframer_init(&d);
	uint8_t z = 0;
	serial_deframe(&d, &z, 1, compare, &e);
	serial_deframe(&d, wire, n, compare, &e);
	assert(e.matched == 1);
	s->frames++;
	return 0;
}

static void specs(const uint8_t *data, size_t size)
{
	char text[SERIAL_SPEC_TEXT_MAX + 8], again[SERIAL_SPEC_TEXT_MAX + 8];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	struct serial_spec s, t;
	const char *why;
	if (!serial_spec_parse(text, &s, &why))
		return;
	/* One text form: what parses formats back to itself. */
	serial_spec_format(&s, again, sizeof(again));
	assert(serial_spec_parse(again, &t, &why));
	assert(!memcmp(&s, &t, sizeof(s)));
	assert(!strcmp(text, again));
	assert(serial_spec_rate(&s) >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	specs(data, size);
	size_t chunk = 1 + data[0] % 64;
	uint64_t step = data[1];
	data += 2;
	size -= 2;
	struct serial_arq *a;
	struct serial_arq_params p = {.rate_Bps = 960};
	if (serial_arq_new(&p, 0x1234, 0, &a))
		return 0;
	struct seen seen = {0};
	struct serial_deframer d;
	serial_deframer_init(&d);
	uint64_t now = 0;
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		serial_arq_input(a, data + off, n, now, count_stream, &seen);
		serial_deframe(&d, data + off, n, round_trip, &seen);
		const uint8_t *out;
		size_t k = serial_arq_output(a, now, &out);
		if (k)
			serial_arq_consumed(a, k);
		uint64_t due = serial_arq_deadline(a, now);
		assert(due >= now);
		now += step;
		if (seen.stream == 0 && serial_arq_established(a))
			serial_arq_write(a, (const uint8_t *)"x", 1);
	}
	/* At most the payloads of the frames that the input held. */
	assert(seen.stream <= seen.frames * SERIAL_PAYLOAD_MAX);
	serial_arq_free(a);
	return 0;
}
