/* A Hayes (V.250) modem's command side: init, dial, answer, hang up, result codes; sans I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * docs/serial.md, "Modems". A modem on a serial port is in command mode (AT commands,
 * result codes in lines) until a call connects; then it is online and every byte is the
 * far end's, until the carrier goes (the modem says NO CARRIER and is back in command
 * mode) or this side escapes (a guard time of silence, "+++", the guard time again: OK)
 * and hangs up (ATH).
 *
 * This layer drives that dialogue: the init strings, one at a time, each waiting for its
 * OK; ATD with the number; ATA on RING; the escape and ATH; the result codes of each.
 * Online, the bytes read go to the caller's data function, and a NO CARRIER among them
 * ends the call. The caller owns the port and the clock, as with the ARQ
 * (transports/serial.h): it passes now_ms, writes what hayes_output gives while the
 * modem is not online, and calls hayes_poll when hayes_deadline comes.
 */

#define HAYES_INIT_MAX 8  /* init strings */
#define HAYES_CMD_MAX  60 /* one init string, "AT..." without its CR */
#define HAYES_DIAL_MAX 40 /* the number: digits and the dial modifiers */

struct hayes_params {
	/* Sent in order once the port opens, each waiting for OK. None: HAYES_INIT_DEFAULT. */
	char init[HAYES_INIT_MAX][HAYES_CMD_MAX + 1];
	size_t n_init;
	char dial[HAYES_DIAL_MAX + 1]; /* "": this side never calls */
	bool answer;		       /* answer a RING with ATA */
	uint32_t idle_ms;   /* a call that carried nothing this long is hung up (the caller's) */
	uint32_t redial_ms; /* the first wait after a failed call (the caller's backoff) */
};

/* Factory settings, then no echo, words for results, DCD = carrier, DTR drop = hang up. */
#define HAYES_INIT_DEFAULT_1	"ATZ"
#define HAYES_INIT_DEFAULT_2	"ATE0V1Q0X4&C1&D2S0=0"
#define HAYES_IDLE_DEFAULT_MS	60000
#define HAYES_REDIAL_DEFAULT_MS 60000

/* The parameters' defaults: the two init strings above, no number, no answering. */
void hayes_params_default(struct hayes_params *p);
/* Checks one init string (AT, then printable ASCII, no "+++"): true, or false with *why. */
bool hayes_check_init(const char *s, const char **why);
/* Checks a number (digits, + * # , and the modifiers T P W; spaces): true, or false. */
bool hayes_check_dial(const char *s, const char **why);

enum hayes_state {
	HAYES_INIT,	  /* sending the init strings */
	HAYES_IDLE,	  /* on hook, command mode: ready to dial or answer */
	HAYES_DIALING,	  /* ATD sent: waiting for CONNECT or why not */
	HAYES_ANSWERING,  /* ATA sent */
	HAYES_ONLINE,	  /* a call: bytes are the far end's */
	HAYES_HANGING_UP, /* the escape and ATH */
	HAYES_FAILED,	  /* the modem did not answer or refused an init string: retried */
};

enum hayes_event {
	HAYES_EV_READY,	       /* init done: on hook */
	HAYES_EV_RING,	       /* a call comes in */
	HAYES_EV_CONNECT,      /* online; detail: the CONNECT line */
	HAYES_EV_CALL_FAILED,  /* detail: BUSY, NO CARRIER, NO ANSWER, NO DIALTONE, ERROR... */
	HAYES_EV_CARRIER_LOST, /* online, then on hook without hayes_hangup */
	HAYES_EV_HUNG_UP,      /* after hayes_hangup */
	HAYES_EV_MODEM_FAILED, /* detail: which command, and what came back or that nothing did */
};

/* detail is a short line for the log (valid during the call). */
typedef void (*hayes_event_fn)(void *ctx, enum hayes_event ev, const char *detail);
/* Bytes of the far end, while online. */
typedef void (*hayes_data_fn)(void *ctx, const uint8_t *buf, size_t len);

struct hayes;

/* A modem driven as p says, telling fn(ctx) of its events. 0, -EINVAL, -ENOMEM. */
int hayes_new(const struct hayes_params *p, hayes_event_fn fn, void *ctx, struct hayes **out);
void hayes_free(struct hayes *h); /* hayes_free(NULL) is a no-op */

/* The port was (re)opened: the modem is set up from the start. */
void hayes_start(struct hayes *h, uint64_t now_ms);
/* Calls p->dial. 0, -EBUSY (not on hook), -EINVAL (no number). */
int hayes_dial(struct hayes *h, uint64_t now_ms);
/* Whether a RING is answered (ATA) from now on: p->answer, while a contact window is open. */
void hayes_set_answer(struct hayes *h, bool on);
/* Ends the call (online, dialing or answering): the escape, ATH, back on hook. */
void hayes_hangup(struct hayes *h, uint64_t now_ms);

/* Bytes read from the port: result lines, or online the far end's bytes for data(ctx). */
void hayes_input(struct hayes *h, const uint8_t *buf, size_t len, uint64_t now_ms,
		 hayes_data_fn data, void *ctx);
/* Command bytes for the port (never while online): *buf and the count, 0 for none now. */
size_t hayes_output(struct hayes *h, uint64_t now_ms, const uint8_t **buf);
void hayes_consumed(struct hayes *h, size_t n);
/* Online bytes went to the port at now_ms: the escape's guard time counts from the last. */
void hayes_data_sent(struct hayes *h, uint64_t now_ms);

/* When hayes_poll is next due (now_ms or later; UINT64_MAX: not until an input or call). */
uint64_t hayes_deadline(const struct hayes *h, uint64_t now_ms);
/* Runs what is due at now_ms: timeouts, the escape's guard times, a retry of the init. */
void hayes_poll(struct hayes *h, uint64_t now_ms);

enum hayes_state hayes_state(const struct hayes *h);
const char *hayes_state_name(enum hayes_state s);
/* The rate of the last CONNECT line ("CONNECT 9600": 9600), or 0 if it gave none. */
uint32_t hayes_connect_rate(const struct hayes *h);
