/* Fuzz target for link messages: what parses re-encodes to itself, and nothing else crashes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/link_msg.h"

/*
 * Properties checked on every input:
 * 1. link_parse returns 0 or -EBADMSG, with a reason on every refusal.
 * 2. A record that parses re-encodes from its fields to exactly the same bytes: the
 *    format has one encoding per message, so a peer cannot smuggle meaning into slack.
 * A violated property aborts, which the fuzzer reports as a crash.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[LINK_RECORD_MAX];

static int reencode_list(const struct link_msg *m)
{
	static struct link_offer o[LINK_RECORD_MAX / LINK_OFFER_ENTRY];
	static struct link_want w[LINK_RECORD_MAX / LINK_WANT_ENTRY];
	static struct link_refuse r[LINK_RECORD_MAX / LINK_REFUSE_ENTRY];
	static uint8_t ids[LINK_RECORD_MAX];
	for (size_t i = 0; i < m->count; i++) {
		switch (m->type) {
		case LINK_OFFER:
			link_offer_at(m, i, &o[i]);
			break;
		case LINK_WANT:
			link_want_at(m, i, &w[i]);
			break;
		case LINK_REFUSE:
			link_refuse_at(m, i, &r[i]);
			break;
		default:
			memcpy(ids + i * LINK_ID_LEN, link_ack_at(m, i), LINK_ID_LEN);
		}
	}
	switch (m->type) {
	case LINK_OFFER:
		return link_encode_offer(out, sizeof(out), o, m->count);
	case LINK_WANT:
		return link_encode_want(out, sizeof(out), w, m->count);
	case LINK_REFUSE:
		return link_encode_refuse(out, sizeof(out), r, m->count);
	default:
		return link_encode_ack(out, sizeof(out), ids, m->count);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct link_msg m;
	const char *why = NULL;
	int ret = link_parse(data, size, &m, &why);
	if (ret != 0) {
		if (ret != -EBADMSG || !why)
			abort();
		return 0;
	}
	int n;
	switch (m.type) {
	case LINK_HELLO:
		n = link_encode_hello(out, sizeof(out), &m.hello);
		break;
	case LINK_OFFER:
	case LINK_WANT:
	case LINK_REFUSE:
	case LINK_ACK:
		n = reencode_list(&m);
		break;
	case LINK_HEAD:
		n = link_encode_head(out, sizeof(out), m.id, m.payload_len, m.bytes, m.len);
		break;
	case LINK_DATA:
		n = link_encode_data(out, sizeof(out), m.id, m.offset, m.bytes, m.len);
		break;
	case LINK_END:
		n = link_encode_end(out, sizeof(out), m.id, m.bytes, m.len);
		break;
	case LINK_PING:
	case LINK_PONG:
		n = link_encode_ping(out, sizeof(out), m.type, m.token);
		break;
	case LINK_BYE:
		n = link_encode_bye(out, sizeof(out), m.bye_reason, m.bye_text);
		break;
	default:
		abort(); /* parsed, yet of no known type */
	}
	if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
		abort();
	return 0;
}
