/* An Iridium SBD modem's DTE side (9602/9603, RockBLOCK): writes, sessions, MT reads; sans I/O. */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Followed: the Iridium "ISU AT Command Reference" (v2.45 as the Campbell 9522B copy gives it):
 * 8.12 +SBDWB, 8.13 +SBDRB, 8.17 +SBDD, 10.14 +SBDIX[A] (its MO status table: 0..4 success,
 * 5.. failure, 32 no network service), 10.16 +SBDMTA (SBDRING); Rock Seven's RockBLOCK AT
 * reference for +SBDWB (the 340/270 limits of the 9602/9603 and its note that "1" is the one
 * +SBDWB response no OK follows) and +SBDD; the 9602 developer's guide for the limits.
 *
 * The dialogue, one command at a time, each ended by CR:
 *   init      AT, ATE0, AT&K0, AT+SBDMTA=1, AT+SBDD0: each answered by OK (SBDD0: "0" first;
 *             "1" there, or ERROR to any, fails the init)
 *   sbd_send  AT+SBDWB=<len>  ->  READY;  <len bytes><sum hi><sum lo>  ->  0|1|2|3 (OK after
 *             all but 1); on 0: AT+SBDIX  ->  +SBDIX: <MO st>, <MOMSN>, <MT st>, <MTMSN>,
 *             <MT len>, <MT queued>  ->  OK
 *   sbd_check AT+SBDD0  ->  0, OK;  then AT+SBDIX as above
 *   MT        after a +SBDIX with MT status 1: AT+SBDRB  ->  <len hi><len lo><len bytes>
 *             <sum hi><sum lo>, then OK. Binary, not a line.
 *   SBDRING   unsolicited, a line of its own.
 * The checksum is the low 16 bits of the sum of the message's bytes, high byte first. Lines are
 * framed by CR or LF; empty ones, echoes of our commands and anything not expected now are
 * ignored, and so is an answer that comes before its command has gone out (sbd_consumed). The
 * OK after an answer (the digit of +SBDWB or +SBDD, the +SBDIX line, the +SBDRB bytes) is
 * waited for a few seconds; if it does not come, the answer stands.
 *
 * Unsure of, or chosen:
 * - Echo: ATE0 ends it; before that an echoed "AT...<CR>" is an ignored line, and in front of
 *   the binary reply of +SBDRB (it cannot start a length of at most 270: 'A' is 0x41) too.
 * - The manual has +SBDIXA answer a ring alert; sbd_check uses +SBDIX, as asked. Ring alerts
 *   need the modem registered (+SBDAREG or an SBDIX, which always registers); not set here.
 * - AT+SBDD0 in the init empties the MO buffer: after sbd_start nothing awaits sbd_retry.
 * - A +SBDRB length over SBD_MT_MAX is not trusted to frame the reply: its bytes are skipped
 *   as (ignored) lines until the OK. A good checksum is trusted over a length that differs from
 *   the +SBDIX one. A bad one is reported and the message dropped, though the modem still
 *   holds it until the next session (a second +SBDRB could have it).
 * - After a wait times out the modem may still be busy (in a session, or waiting 60 s for
 *   SBDWB bytes): a late answer is then ignored, or, for +SBDIX, taken by the next session.
 * - No ATV1/ATQ0: the 9602's verbose, non-quiet defaults are assumed.
 */

#define SBD_MO_MAX 340 /* bytes in one mobile-originated message */
#define SBD_MT_MAX 270 /* bytes in one mobile-terminated message */

/* The six fields of "+SBDIX:". mo_status is -1 where no +SBDIX applies (see sbd_event). */
struct sbd_result {
	int mo_status;	    /* 0..4 the session succeeded (MO sent, if any), 5.. it failed */
	uint32_t momsn;	    /* MO message sequence number, 0..65535 */
	int mt_status;	    /* 0 none waited, 1 one was received (SBDRB follows), 2 error */
	uint32_t mtmsn;	    /* MT message sequence number (with mt_status 1) */
	uint32_t mt_len;    /* the received MT message's length, as +SBDIX says */
	uint32_t mt_queued; /* MT messages still waiting at the gateway: another check is useful */
};

enum sbd_state {
	SBD_INIT,    /* sending the init commands */
	SBD_IDLE,    /* ready for sbd_send, sbd_retry or sbd_check */
	SBD_WRITING, /* AT+SBDWB and its bytes, or sbd_check's AT+SBDD0 */
	SBD_SESSION, /* AT+SBDIX: on the air, a minute or more */
	SBD_READING, /* AT+SBDRB: the MT message */
	SBD_FAILED,  /* not started, or the init failed: retried after a while */
};

/*
 * r is never NULL: for SENT, CHECKED, SESSION_FAILED, MT and MT_FAILED, the last session's
 * +SBDIX (mo_status and mt_status -1 when SESSION_FAILED had none: a write failure, or no
 * answer); for READY, RING and MODEM_FAILED, mo_status and mt_status -1 and the rest 0.
 * After SENT, CHECKED or SESSION_FAILED with mt_status 1 the state is SBD_READING, and MT or
 * MT_FAILED follows; after the other four the state is SBD_IDLE, and fn may call sbd_send,
 * sbd_retry or sbd_check from the event. fn must not call sbd_free.
 */
enum sbd_event {
	SBD_EV_READY, /* init done */
	SBD_EV_SENT,  /* the session delivered the MO message of sbd_send (mo_status 0..4) */
	SBD_EV_SESSION_FAILED, /* a write or session failed (detail why): see sbd_mo_loaded */
	SBD_EV_MT,	       /* an MT message was read: mt, mt_len (1..SBD_MT_MAX) */
	SBD_EV_RING,	       /* SBDRING: an MT message waits at the gateway (any state) */
	SBD_EV_MODEM_FAILED,   /* init refused or no answer (detail: the command): retried */
	SBD_EV_CHECKED,	       /* the session of sbd_check succeeded (mo_status 0..4) */
	SBD_EV_MT_FAILED,      /* an MT message could not be read (detail why): it is dropped */
};

/* mt and detail are valid during the call; detail is a short line for the log, never NULL. */
typedef void (*sbd_event_fn)(void *ctx, enum sbd_event ev, const struct sbd_result *r,
			     const uint8_t *mt, size_t mt_len, const char *detail);

struct sbd;

/* A modem telling fn(ctx) of its events, in SBD_FAILED until sbd_start. 0 or -ENOMEM. */
int sbd_new(sbd_event_fn fn, void *ctx, struct sbd **out);
void sbd_free(struct sbd *s); /* sbd_free(NULL) is a no-op */

/* The port was (re)opened: the init from the start; whatever was under way is forgotten. */
void sbd_start(struct sbd *s, uint64_t now_ms);

/*
 * Writes msg (copied) to the modem's MO buffer and starts a session: SENT or SESSION_FAILED
 * follows. 0, -EINVAL (len 0 or over SBD_MO_MAX), -EBUSY (not SBD_IDLE).
 */
int sbd_send(struct sbd *s, const uint8_t *msg, size_t len, uint64_t now_ms);
/*
 * A session again with the MO buffer as it is, after a SESSION_FAILED that left the message
 * there: SENT or SESSION_FAILED follows. 0, -EBUSY (not SBD_IDLE), -ENOMSG (!sbd_mo_loaded).
 */
int sbd_retry(struct sbd *s, uint64_t now_ms);
/*
 * A mailbox check: empties the MO buffer (a message awaiting sbd_retry is dropped from the
 * modem), then a session with nothing to send, which costs one: CHECKED or SESSION_FAILED.
 * 0, -EBUSY (not SBD_IDLE).
 */
int sbd_check(struct sbd *s, uint64_t now_ms);
/* Whether the modem's MO buffer holds the message of the last sbd_send, not yet delivered. */
bool sbd_mo_loaded(const struct sbd *s);

/* Bytes read from the port. */
void sbd_input(struct sbd *s, const uint8_t *buf, size_t len, uint64_t now_ms);
/* Bytes for the port: *buf and the count, 0 for none now. */
size_t sbd_output(struct sbd *s, uint64_t now_ms, const uint8_t **buf);
/* n bytes of sbd_output went to the port. */
void sbd_consumed(struct sbd *s, size_t n);

/* When sbd_poll is next due (now_ms while output waits; UINT64_MAX: not until an input or call). */
uint64_t sbd_deadline(const struct sbd *s, uint64_t now_ms);
/* Runs what is due at now_ms: the timeout of a wait, the retry of a failed init. */
void sbd_poll(struct sbd *s, uint64_t now_ms);

enum sbd_state sbd_state(const struct sbd *s);
const char *sbd_state_name(enum sbd_state st);
