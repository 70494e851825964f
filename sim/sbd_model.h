/* An Iridium SBD modem (9602/9603, as in a RockBLOCK) as a sans-I/O model: AT commands in, bytes
 * and events out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/rng.h"

#define SBD_MO_MAX	    340u    /* bytes in a mobile-originated message (9602/9603) */
#define SBD_MT_MAX	    270u    /* bytes in a mobile-terminated message (9602/9603) */
#define SBD_IMEI_LEN	    15u	    /* digits */
#define SBD_CSQ_MAX	    5u	    /* bars */
#define SBD_SESSION_MS_MAX  600000u /* ten minutes */
#define SBD_WB_TIMEOUT_MAX  3600u   /* seconds */
#define SBD_FAIL_MAX	    64u	    /* entries in a failure script */
#define SBD_TEXT_LINE_MAX   120u  /* bytes of text in AT+SBDWT=<text> (the command line's limit) */
#define SBD_LINE_MAX	    512u  /* bytes in one command line; a longer one gets ERROR */
#define SBD_OUT_MAX	    4096u /* bytes of output the model holds for the DTE */
#define SBD_RESPONSE_MAX    512u  /* bytes one command line can produce at most */
#define SBD_EVENTS_MAX	    4u	  /* events pending at most: MO, MT_WANTED, SESSION */
#define SBD_STATUS_NO_SVC   32u	  /* MO status: no network service, unable to initiate call */
#define SBD_STATUS_GW_DOWN  17u	  /* MO status: gateway not responding (local session timeout) */
#define SBD_STATUS_MT_LARGE 1u	  /* MO status: MO sent, but the queued MT message was too big */

/* Session number (counted from 1) that fails, and the MO status it reports (5..255). */
struct sbd_fail {
	uint32_t session;
	uint8_t status;
};

struct sbd_params {
	char imei[SBD_IMEI_LEN + 1]; /* exactly 15 decimal digits, NUL-terminated */
	uint8_t csq;		     /* signal, 0..SBD_CSQ_MAX; with 0 every session fails (32) */
	uint32_t session_ms;	     /* how long an SBDIX session takes, 0..SBD_SESSION_MS_MAX */
	uint32_t wb_timeout_s;	     /* the SBDWB/SBDWT transfer period, 1..SBD_WB_TIMEOUT_MAX */
	uint16_t momsn;		     /* MOMSN of the first session */
	const struct sbd_fail *fail; /* nfail entries, copied; distinct sessions */
	size_t nfail;		     /* 0..SBD_FAIL_MAX */
	double fail_rate; /* each session not in the script fails (32) with this: [0, 1] */
	uint64_t seed;	  /* of fail_rate's draws: one per session, always drawn */
};

struct sbd_stats {
	uint64_t sessions;	  /* SBDIX sessions that ended */
	uint64_t sessions_failed; /* of which MO status >= 5 */
	uint64_t mo_messages; /* MO messages handed to the gateway (non-empty buffer, success) */
	uint64_t mo_bytes;
	uint64_t mt_messages; /* MT messages placed in the MT buffer (MT status 1) */
	uint64_t mt_bytes;
	uint64_t wb_ok, wb_checksum, wb_size, wb_timeout; /* SBDWB results 0, 2, 3, 1 */
};

/* What an SBDIX session reported: the six fields of "+SBDIX:". */
struct sbd_result {
	uint8_t mo_status; /* 0..4 success, 5.. failure */
	uint16_t momsn;
	uint8_t mt_status; /* 0 none, 1 received, 2 error */
	uint16_t mtmsn;
	uint16_t mt_len;
	uint32_t mt_queued;
};

/* Why a session failed. */
enum sbd_why {
	SBD_WHY_NONE,	   /* it did not */
	SBD_WHY_SCRIPT,	   /* sbd_params.fail */
	SBD_WHY_RATE,	   /* sbd_params.fail_rate */
	SBD_WHY_NO_SIGNAL, /* csq 0 */
	SBD_WHY_GATEWAY,   /* the caller's gateway reply said failed */
};

enum sbd_event_type {
	/*
	 * A session succeeded on the air and the MO buffer was not empty: the gateway should store
	 * mo/mo_len as message momsn. mo points into the model and stays valid until the reply.
	 */
	SBD_EV_MO,
	/* A session succeeded on the air: answer with sbd_model_gateway_reply, now. */
	SBD_EV_MT_WANTED,
	/* A session ended and its result was queued for the DTE: result, why, start_us, end_us. */
	SBD_EV_SESSION,
};

struct sbd_event {
	enum sbd_event_type type;
	uint32_t session; /* its number, counted from 1 */
	uint16_t momsn;
	const uint8_t *mo;
	size_t mo_len;
	struct sbd_result result;
	enum sbd_why why;
	uint64_t start_us, end_us;
};

/* The gateway's answer to SBD_EV_MT_WANTED. */
struct sbd_gateway_reply {
	bool failed;	       /* it could not take the MO message: the session fails with 17 */
	bool mt;	       /* an MT message was waiting and is handed over */
	const uint8_t *mt_buf; /* mt_len bytes; may be NULL when mt_len is 0 or > SBD_MT_MAX */
	size_t mt_len;	       /* 1..SBD_MT_MAX, else MT status 2 (and MO status 1) */
	uint32_t mt_queued;    /* MT messages still waiting after this one */
};

enum sbd_state {
	SBD_ST_COMMAND, /* reading AT command lines */
	SBD_ST_WB_DATA, /* SBDWB: reading the message and its checksum */
	SBD_ST_WT_TEXT, /* SBDWT without text: reading a line of text */
	SBD_ST_SESSION, /* SBDIX: on the air until session_end */
	SBD_ST_GATEWAY, /* SBDIX: waiting for sbd_model_gateway_reply */
};

/*
 * The modem. The fields are private (use the functions); the struct is in the header so that a
 * caller can hold one by value. Nothing is allocated: sbd_model_init is all the set-up.
 */
struct sbd_model {
	struct sbd_params p;
	struct sbd_fail fail[SBD_FAIL_MAX];
	struct sim_rng rng;
	enum sbd_state state;
	bool echo, verbose, quiet;
	uint8_t mta, areg;
	char line[SBD_LINE_MAX];
	size_t line_len;
	bool line_overflow;
	uint8_t mo[SBD_MO_MAX];
	size_t mo_len;
	uint8_t mt[SBD_MT_MAX];
	size_t mt_len;
	bool mt_full;
	uint16_t mt_msn;	      /* MTMSN of the message in the MT buffer */
	uint16_t momsn;		      /* the MOMSN the next session uses */
	uint16_t gateway_msn;	      /* MTMSN the gateway gave last */
	uint8_t xfer[SBD_MO_MAX + 2]; /* SBDWB/SBDWT bytes so far */
	size_t xfer_len, xfer_need;
	bool xfer_overflow;
	uint64_t deadline_us; /* end of the transfer period or of the session */
	uint32_t session;     /* number of the current or last session */
	uint64_t session_start_us;
	uint8_t planned_status;
	enum sbd_why planned_why;
	uint8_t out[SBD_OUT_MAX];
	size_t out_head, out_len;
	struct sbd_event ev[SBD_EVENTS_MAX];
	size_t ev_head, ev_count;
	struct sbd_stats stats;
};

/* The 2-byte SBD checksum of buf: the low 16 bits of the sum of its bytes. */
uint16_t sbd_checksum(const uint8_t *buf, size_t n);

/*
 * Powers m up with parameters p: echo on, verbose results, both buffers empty. Returns 0, or
 * -EINVAL if a parameter is outside the range its field gives.
 */
int sbd_model_init(struct sbd_model *m, const struct sbd_params *p);

/*
 * In the calls below now_us is the caller's clock (real or virtual), in microseconds; it must
 * never decrease from one call to the next.
 */

/*
 * Takes bytes from the DTE and returns how many it consumed: all of them, unless the output
 * for the DTE fills up (less than SBD_RESPONSE_MAX free), when it stops until
 * sbd_model_output makes room. Fires timers due at now_us first, as sbd_model_advance does.
 * Bytes that come during a session are consumed and ignored, as the modem ignores them.
 */
size_t sbd_model_input(struct sbd_model *m, const uint8_t *buf, size_t n, uint64_t now_us);

/* Fires what is due at now_us: the end of a transfer period, the end of a session. */
void sbd_model_advance(struct sbd_model *m, uint64_t now_us);

/* When the next timer fires, or UINT64_MAX if none is set: an event loop may sleep until then. */
uint64_t sbd_model_next_us(const struct sbd_model *m);

/* Moves up to cap bytes of output for the DTE into out and returns their count. */
size_t sbd_model_output(struct sbd_model *m, uint8_t *out, size_t cap);

/* Bytes of output waiting for sbd_model_output. */
size_t sbd_model_output_len(const struct sbd_model *m);

/* Takes the oldest event into ev: true, or false if there is none. */
bool sbd_model_next_event(struct sbd_model *m, struct sbd_event *ev);

/*
 * Answers SBD_EV_MT_WANTED and ends the session: queues "+SBDIX: ..." and OK for the DTE and
 * an SBD_EV_SESSION. Returns 0; -EMSGSIZE if the MT message was empty or longer than
 * SBD_MT_MAX (reported as MT status 2, MO status 1; the session still succeeded); -EINVAL if
 * no session waits for a reply (nothing changes then).
 */
int sbd_model_gateway_reply(struct sbd_model *m, const struct sbd_gateway_reply *r);

/* The counters so far. */
struct sbd_stats sbd_model_stats(const struct sbd_model *m);
