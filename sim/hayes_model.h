/* A small phone network of Hayes modems as a sans-I/O model: AT commands, calls, data phase. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/line_model.h"

#define HAYES_MODEMS_MAX 16
#define HAYES_NUMBER_MAX 32	      /* dial digits in a modem's number */
#define HAYES_CALLS_MAX	 1024	      /* scripted outcomes (--calls) */
#define HAYES_TIME_MAX	 600000000ull /* ring and training times: ten minutes, in us */

/* The result codes, numbered as V.250 numbers them (V0). */
enum hayes_result {
	HAYES_OK = 0,
	HAYES_CONNECT = 1,
	HAYES_RING = 2,
	HAYES_NO_CARRIER = 3,
	HAYES_ERROR = 4,
	HAYES_NO_DIALTONE = 6,
	HAYES_BUSY = 7,
	HAYES_NO_ANSWER = 8,
};

/* What the network makes of one dial attempt, when a test scripts it (--calls). */
enum hayes_outcome {
	HAYES_CALL_CONNECT, /* as normal: ring the number if it is on the network and idle */
	HAYES_CALL_BUSY,
	HAYES_CALL_NO_ANSWER,
	HAYES_CALL_NO_DIALTONE,
	HAYES_CALL_NO_CARRIER,
	HAYES_CALL_ERROR,
};

struct hayes_params {
	struct line_params line; /* the data phase, each direction: rate, latency, damage, seed */
	uint64_t ring_us;	 /* between two RINGs: 1..HAYES_TIME_MAX */
	uint64_t train_us;	 /* from answer to CONNECT: 0..HAYES_TIME_MAX */
	uint64_t carrier_us;	 /* every connection loses carrier after so long online; 0: never */
	const enum hayes_outcome *calls; /* outcomes of the first ncalls dial attempts (copied) */
	size_t ncalls;			 /* 0..HAYES_CALLS_MAX; connect as normal after them */
};

/* Per modem, counted since hayes_net_new. Results are counted as X4 would report them. */
struct hayes_stats {
	uint64_t dials;	   /* D commands that dialed */
	uint64_t connects; /* calls connected (CONNECT after training, not after O) */
	uint64_t busy, no_answer, no_dialtone;
	uint64_t no_carrier;	  /* failed attempts, aborts and carrier lost */
	uint64_t hangups;	  /* connected calls that this modem's DTE ended (H or Z) */
	uint64_t rings;		  /* RINGs to the DTE */
	uint64_t bytes_to_line;	  /* data bytes from the DTE put onto the line */
	uint64_t bytes_from_line; /* data bytes from the line given to the DTE */
	uint64_t discarded;	  /* bytes that arrived in online command state: lost */
	uint64_t online_us;	  /* time in connected calls, the current one up to now */
	struct line_stats line;	  /* this modem's sending direction, summed over its calls */
};

enum hayes_event_kind {
	HAYES_EV_DIAL,	       /* modem dials number */
	HAYES_EV_ANSWER,       /* modem answers the call from peer */
	HAYES_EV_CONNECT,      /* modem (the caller) and peer are connected */
	HAYES_EV_FAIL,	       /* modem's attempt ended with result, for why */
	HAYES_EV_HANGUP,       /* modem's DTE hung up the call with peer */
	HAYES_EV_CARRIER_LOST, /* modem lost the carrier of the call with peer, for why */
};

/* One call event, for a log line. */
struct hayes_event {
	enum hayes_event_kind kind;
	uint64_t at_us;
	size_t modem;
	size_t peer;			   /* SIZE_MAX if none */
	enum hayes_result result;	   /* FAIL: the result as X4 reports it */
	const char *why;		   /* FAIL, CARRIER_LOST: a static string; else NULL */
	char number[HAYES_NUMBER_MAX + 1]; /* DIAL: the digits dialed */
};

struct hayes_net;

/*
 * Makes a network of n modems (1..HAYES_MODEMS_MAX), modem i on numbers[i]: 1 to
 * HAYES_NUMBER_MAX of 0-9 A-D * # +, all different. Each modem starts on hook with the
 * factory settings. Returns 0 and *out, -EINVAL if a parameter is out of its range (the line
 * parameters as line_dir_init takes them), or -ENOMEM. Free it with hayes_net_free.
 */
int hayes_net_new(const struct hayes_params *p, const char *const *numbers, size_t n,
		  struct hayes_net **out);

/* Frees the network; a no-op for NULL. */
void hayes_net_free(struct hayes_net *net);

/*
 * In all the calls below now_us is the caller's clock (real or virtual), in microseconds; it
 * must never decrease from one call to the next. m is a modem index, below n. Each call first
 * does what hayes_net_advance does, so they may come in any order.
 */

/* Runs every timer due by now_us: call progress, rings, escape guard times, carrier drops. */
void hayes_net_advance(struct hayes_net *net, uint64_t now_us);

/*
 * How many bytes modem m takes from its DTE now: in online data state the line's room
 * (line_dir_room, the line rate as back-pressure), else room for the echo and the responses.
 */
size_t hayes_net_room(const struct hayes_net *net, size_t m, uint64_t now_us);

/*
 * Bytes from modem m's DTE: command lines, data in online data state, any character aborts a
 * call attempt. Returns how many were taken, maybe fewer than n (as hayes_net_room says, and
 * a command can switch to data state mid-buffer): the caller keeps the rest for later.
 */
size_t hayes_net_from_dte(struct hayes_net *net, size_t m, const uint8_t *buf, size_t n,
			  uint64_t now_us);

/*
 * Copies into out (at most cap) what modem m has for its DTE: echo, responses, and in online
 * data state the bytes that have arrived over the line. Returns the count.
 */
size_t hayes_net_to_dte(struct hayes_net *net, size_t m, uint8_t *out, size_t cap, uint64_t now_us);

/*
 * When the caller next has something to do: a timer, or bytes for a DTE, or room on a line.
 * dte_ready[m] says whether the caller can take bytes for modem m's DTE now (NULL: all can),
 * so that a DTE that does not read does not make this now forever. Returns now_us at the
 * earliest, UINT64_MAX if only new input can change anything.
 */
uint64_t hayes_net_next_us(const struct hayes_net *net, uint64_t now_us, const bool *dte_ready);

/* Drops the carrier of every connected call now: both DTEs get NO CARRIER. */
void hayes_net_drop_carrier(struct hayes_net *net, uint64_t now_us);

/* Takes the oldest call event not yet taken into ev: true, or false if there is none. */
bool hayes_net_next_event(struct hayes_net *net, struct hayes_event *ev);

/* Events lost because nobody took them (the queue holds 64). */
uint64_t hayes_net_events_lost(const struct hayes_net *net);

/* Modem m's number. */
const char *hayes_net_number(const struct hayes_net *net, size_t m);

/* Modem m's counters up to now_us. */
struct hayes_stats hayes_net_stats(const struct hayes_net *net, size_t m, uint64_t now_us);

/* The result's text ("NO CARRIER"), as V1 shows it. */
const char *hayes_result_name(enum hayes_result r);
