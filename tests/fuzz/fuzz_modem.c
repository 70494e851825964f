/* Fuzz target: what a modem says back (transports/hayes.c, transports/sbd.c): result lines,
 * SBDIX fields, SBDRB's binary reply and noise, interleaved with the daemon's own calls. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transports/hayes.h"
#include "transports/sbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_hayes(void *ctx, enum hayes_event ev, const char *detail)
{
	(void)ctx;
	assert(ev <= HAYES_EV_MODEM_FAILED && detail);
}

static void on_data(void *ctx, const uint8_t *buf, size_t len)
{
	(void)ctx;
	assert(buf && len);
}

static void on_sbd(void *ctx, enum sbd_event ev, const struct sbd_result *r, const uint8_t *mt,
		   size_t mt_len, const char *detail)
{
	(void)ctx;
	assert(r && detail && ev <= SBD_EV_MT_FAILED);
	assert(ev != SBD_EV_MT || (mt && mt_len >= 1 && mt_len <= SBD_MT_MAX));
}

/*
 * Input: byte 0 picks the modem (even: Hayes, odd: SBD); then ops, each a byte: 0 the next
 * (1 + byte % 64) bytes are read from the port, 1 time passes (byte * 250 ms), 2 dial or
 * send, 3 hang up or check, 4 retry, anything else drains the output. Every wait must
 * keep a deadline, and nothing may be read outside its buffer.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool hayes = !(data[0] & 1);
	struct hayes *h = NULL;
	struct sbd *s = NULL;
	struct hayes_params p;
	hayes_params_default(&p);
	memcpy(p.dial, "5551234", 8);
	p.answer = true;
	if (hayes ? hayes_new(&p, on_hayes, NULL, &h) : sbd_new(on_sbd, NULL, &s))
		return 0;
	uint64_t now = 1000;
	hayes ? hayes_start(h, now) : sbd_start(s, now);
	static const uint8_t msg[SBD_MO_MAX] = {1, 2, 3};
	for (size_t i = 1; i < size;) {
		uint8_t op = data[i++] % 6, arg = i < size ? data[i] : 0;
		const uint8_t *out;
		size_t n;
		switch (op) {
		case 0: {
			size_t len = 1 + arg % 64;
			i++;
			if (len > size - (i < size ? i : size))
				len = size - (i < size ? i : size);
			if (hayes)
				hayes_input(h, data + i, len, now, on_data, NULL);
			else
				sbd_input(s, data + i, len, now);
			i += len;
			break;
		}
		case 1:
			i++;
			now += (uint64_t)arg * 250;
			hayes ? hayes_poll(h, now) : sbd_poll(s, now);
			break;
		case 2:
			if (hayes)
				hayes_dial(h, now);
			else
				sbd_send(s, msg, 1 + arg % SBD_MO_MAX, now);
			break;
		case 3:
			if (hayes)
				hayes_hangup(h, now);
			else
				sbd_check(s, now);
			break;
		case 4:
			if (!hayes)
				sbd_retry(s, now);
			break;
		default:
			while ((n = hayes ? hayes_output(h, now, &out) : sbd_output(s, now, &out)) >
			       0)
				hayes ? hayes_consumed(h, n) : sbd_consumed(s, n);
			break;
		}
		uint64_t due = hayes ? hayes_deadline(h, now) : sbd_deadline(s, now);
		assert(due >= now);
		/* Whatever it waits for, it has a timer: no state waits for ever on a modem. */
		enum hayes_state hs = hayes ? hayes_state(h) : HAYES_IDLE;
		enum sbd_state ss = hayes ? SBD_IDLE : sbd_state(s);
		if (hs != HAYES_IDLE && hs != HAYES_ONLINE)
			assert(due != UINT64_MAX);
		if (ss != SBD_IDLE && ss != SBD_FAILED)
			assert(due != UINT64_MAX);
	}
	hayes_free(h);
	sbd_free(s);
	return 0;
}
