/* Hayes modems on a small phone network: V.250 commands, call progress, escape, data phase. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/hayes_model.h"

#define US_PER_S    1000000ull
#define US_PER_TICK 20000ull /* S12 counts fiftieths of a second */
#define CMD_MAX	    255	     /* command line characters after AT; V.250 asks for 40 */
#define OUT_CAP	    4096
/* Command input stops while less than this is free, so a line's responses always fit. */
#define OUT_RESERVE 1024
#define EVENTS_CAP  64
#define NO_PEER	    SIZE_MAX
#define NEVER	    UINT64_MAX
#define SREG_COUNT  13
#define DIAL_DIGITS "0123456789ABCD*#+"
#define IDENT	    "tern-modem"

enum state {
	ST_IDLE,	 /* on hook, command state */
	ST_OFFHOOK,	 /* H1: off hook in command state, so callers get BUSY */
	ST_DIALING,	 /* going through the dial string (comma pauses) */
	ST_WAIT_CARRIER, /* dialed, and no carrier will come: NO CARRIER at S7 */
	ST_RINGING_OUT,	 /* the called line rings: NO ANSWER at S7 */
	ST_RINGING_IN,	 /* a call rings here; still command state, so ATA can answer */
	ST_ANSWERING,	 /* ATA with nothing ringing: off hook, NO CARRIER at S7 */
	ST_TRAINING,	 /* answered: CONNECT after train_us */
	ST_ONLINE,	 /* online data state */
	ST_ONLINE_CMD,	 /* online command state: the call stays up while the DTE talks AT */
};

/* What a line of commands does next. */
enum cmd {
	CMD_NEXT,  /* go on with the line */
	CMD_ERROR, /* stop, ERROR */
	CMD_DONE,  /* stop; the command gave its own result (or will, as D and A do) */
};

/* The settings that Z and &F restore. */
struct settings {
	bool echo, verbose, quiet;
	unsigned x, c, d, k;
	uint8_t s[SREG_COUNT];
};

struct modem {
	char number[HAYES_NUMBER_MAX + 1];
	struct settings set;
	enum state st;
	uint64_t timer;		    /* when the state's timer fires, or NEVER */
	size_t peer;		    /* the other end of the call or attempt, or NO_PEER */
	bool caller;		    /* this end dialed: it holds the call's training timer */
	enum hayes_outcome pending; /* ST_DIALING: what the network makes of the dial */
	const char *why;	    /* ST_WAIT_CARRIER, ST_RINGING_OUT: for the log at S7 */
	char dialed[HAYES_NUMBER_MAX + 1];
	/* The command line: after "AT" (in_line), up to CR. */
	bool got_a, in_line, overflow;
	char line[CMD_MAX + 1], last[CMD_MAX + 1];
	size_t len;
	/* Bytes for the DTE: echo and responses. */
	uint8_t out[OUT_CAP];
	size_t out_len;
	/* A connected call: this end's sending direction. */
	struct line_dir tx;
	bool tx_live;
	uint64_t online_since, carrier_until;
	uint64_t last_dte_us; /* last byte from the DTE in online data state */
	unsigned esc_count;   /* escape characters seen after a guard time */
	struct hayes_stats stats;
};

struct hayes_net {
	struct hayes_params p;
	enum hayes_outcome *calls;
	size_t next_call;
	uint64_t connections; /* calls connected so far: each gets a seed of its own */
	size_t n;
	struct modem *m;
	struct hayes_event ev[EVENTS_CAP];
	size_t ev_head, ev_count;
	uint64_t ev_lost;
};

/* S-register ranges and factory values; max 0 marks a register the modem does not have. */
static const struct {
	uint8_t def, min, max;
} sreg[SREG_COUNT] = {
    [0] = {0, 0, 255},	 /* rings before auto-answer, 0 off */
    [1] = {0, 0, 255},	 /* rings counted */
    [2] = {43, 0, 255},	 /* escape character '+'; above 127 no escape */
    [3] = {13, 0, 127},	 /* command line termination: CR */
    [4] = {10, 0, 127},	 /* response formatting: LF */
    [5] = {8, 0, 127},	 /* command line editing: BS */
    [6] = {2, 0, 255},	 /* seconds before blind dialing (kept, unused) */
    [7] = {50, 1, 255},	 /* seconds to wait for carrier */
    [8] = {2, 0, 255},	 /* seconds of a comma in a dial string */
    [10] = {14, 1, 255}, /* carrier loss delay, tenths (kept, unused) */
    [12] = {50, 0, 255}, /* escape guard time, fiftieths */
};

static const char *const result_names[] = {
    [HAYES_OK] = "OK",
    [HAYES_CONNECT] = "CONNECT",
    [HAYES_RING] = "RING",
    [HAYES_NO_CARRIER] = "NO CARRIER",
    [HAYES_ERROR] = "ERROR",
    [5] = NULL,
    [HAYES_NO_DIALTONE] = "NO DIALTONE",
    [HAYES_BUSY] = "BUSY",
    [HAYES_NO_ANSWER] = "NO ANSWER",
};

const char *hayes_result_name(enum hayes_result r)
{
	if ((size_t)r >= sizeof(result_names) / sizeof(result_names[0]) || !result_names[r])
		return "?";
	return result_names[r];
}

static void factory(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	s->echo = true;
	s->verbose = true;
	s->x = 4;
	s->c = 1;
	s->d = 2;
	s->k = 3;
	for (size_t i = 0; i < SREG_COUNT; i++)
		s->s[i] = sreg[i].def;
}

static struct modem *peer_of(struct hayes_net *net, const struct modem *m)
{
	return m->peer == NO_PEER ? NULL : &net->m[m->peer];
}

static size_t index_of(const struct hayes_net *net, const struct modem *m)
{
	return (size_t)(m - net->m);
}

static uint64_t after_s(uint64_t now, unsigned seconds)
{
	return now + seconds * US_PER_S;
}

static void event(struct hayes_net *net, enum hayes_event_kind kind, const struct modem *m,
		  const struct modem *peer, enum hayes_result r, const char *why, uint64_t now)
{
	if (net->ev_count == EVENTS_CAP) {
		net->ev_lost++;
		return;
	}
	struct hayes_event *e = &net->ev[(net->ev_head + net->ev_count++) % EVENTS_CAP];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->at_us = now;
	e->modem = index_of(net, m);
	e->peer = peer ? index_of(net, peer) : NO_PEER;
	e->result = r;
	e->why = why;
	if (kind == HAYES_EV_DIAL)
		memcpy(e->number, m->dialed, sizeof(e->number));
}

/* Output to the DTE. A full queue drops the excess; OUT_RESERVE keeps that from happening. */
static void out_bytes(struct modem *m, const void *p, size_t n)
{
	size_t room = OUT_CAP - m->out_len;
	if (n > room)
		n = room;
	memcpy(m->out + m->out_len, p, n);
	m->out_len += n;
}

static void out_crlf(struct modem *m)
{
	uint8_t crlf[2] = {m->set.s[3], m->set.s[4]};
	out_bytes(m, crlf, 2);
}

/* V.250 5.7.1: information text, framed by S3 S4 in V1, followed by them in V0. */
static void out_info(struct modem *m, const char *text)
{
	if (m->set.verbose)
		out_crlf(m);
	out_bytes(m, text, strlen(text));
	out_crlf(m);
}

/* V.250 5.7.2: a result code as "S3 S4 text S3 S4" (V1) or "number S3" (V0); none in Q1. */
static void out_result(struct modem *m, enum hayes_result r)
{
	char buf[32];
	if (m->set.quiet)
		return;
	if (!m->set.verbose) {
		int len = snprintf(buf, sizeof(buf), "%d%c", (int)r, m->set.s[3]);
		out_bytes(m, buf, (size_t)len);
		return;
	}
	out_crlf(m);
	out_bytes(m, hayes_result_name(r), strlen(hayes_result_name(r)));
	out_crlf(m);
}

/* CONNECT, with the rate from X1 up (Hayes); V0 has code 1 whatever the rate. */
static void out_connect(struct hayes_net *net, struct modem *m)
{
	char buf[32];
	if (m->set.quiet || !m->set.verbose || m->set.x == 0) {
		out_result(m, HAYES_CONNECT);
		return;
	}
	int len = snprintf(buf, sizeof(buf), "CONNECT %u", (unsigned)net->p.line.baud);
	out_crlf(m);
	out_bytes(m, buf, (size_t)len);
	out_crlf(m);
}

/*
 * The call progress results that the X level lets through (Hayes): X0 only the basic codes,
 * X1 adds NO ANSWER and the rate, X2 dial tone detection, X3 busy detection, X4 both. The
 * others show as NO CARRIER, as a modem that does not detect them would end up saying.
 */
static enum hayes_result x_filter(const struct modem *m, enum hayes_result r)
{
	switch (r) {
	case HAYES_NO_DIALTONE:
		return m->set.x == 2 || m->set.x == 4 ? r : HAYES_NO_CARRIER;
	case HAYES_BUSY:
		return m->set.x >= 3 ? r : HAYES_NO_CARRIER;
	case HAYES_NO_ANSWER:
		return m->set.x >= 1 ? r : HAYES_NO_CARRIER;
	default:
		return r;
	}
}

static void count_result(struct modem *m, enum hayes_result r)
{
	switch (r) {
	case HAYES_BUSY:
		m->stats.busy++;
		break;
	case HAYES_NO_ANSWER:
		m->stats.no_answer++;
		break;
	case HAYES_NO_DIALTONE:
		m->stats.no_dialtone++;
		break;
	case HAYES_NO_CARRIER:
		m->stats.no_carrier++;
		break;
	default:
		break;
	}
}

static void add_line_stats(struct line_stats *sum, const struct line_stats *s)
{
	sum->carried += s->carried;
	sum->flipped_bits += s->flipped_bits;
	sum->dropped += s->dropped;
	sum->cut_lost += s->cut_lost;
}

/* m leaves whatever call or attempt it is in, on hook; the peer is the caller's business. */
static void end_call(struct modem *m, uint64_t now)
{
	if (m->st == ST_ONLINE || m->st == ST_ONLINE_CMD)
		m->stats.online_us += now - m->online_since;
	if (m->tx_live) {
		struct line_stats s = line_dir_stats(&m->tx);
		add_line_stats(&m->stats.line, &s);
		line_dir_free(&m->tx);
		m->tx_live = false;
	}
	m->st = ST_IDLE;
	m->peer = NO_PEER;
	m->caller = false;
	m->timer = NEVER;
	m->carrier_until = NEVER;
	m->esc_count = 0;
}

/* An attempt of m's ends with result r (before X filtering); m goes on hook. */
static void fail(struct hayes_net *net, struct modem *m, enum hayes_result r, const char *why,
		 uint64_t now)
{
	count_result(m, r);
	out_result(m, x_filter(m, r));
	event(net, HAYES_EV_FAIL, m, peer_of(net, m), r, why, now);
	end_call(m, now);
}

/* Bytes that had arrived for m before the carrier went still reach its DTE, if they fit. */
static void flush_arrived(struct modem *m, struct modem *from, uint64_t now)
{
	if (m->st != ST_ONLINE || !from->tx_live)
		return;
	size_t n = line_dir_take(&from->tx, now, m->out + m->out_len, OUT_CAP - m->out_len);
	m->out_len += n;
	m->stats.bytes_from_line += n;
}

/* Carrier lost on a connected call: both ends get NO CARRIER. */
static void lose_carrier(struct hayes_net *net, struct modem *a, const char *why, uint64_t now)
{
	struct modem *b = peer_of(net, a);
	flush_arrived(a, b, now);
	flush_arrived(b, a, now);
	struct modem *ends[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		ends[i]->stats.no_carrier++;
		out_result(ends[i], HAYES_NO_CARRIER);
		event(net, HAYES_EV_CARRIER_LOST, ends[i], ends[1 - i], HAYES_NO_CARRIER, why, now);
	}
	end_call(a, now);
	end_call(b, now);
}

/* m's DTE hangs up (H, Z) in online command state: the far end loses carrier. */
static void hang_up(struct hayes_net *net, struct modem *m, uint64_t now)
{
	struct modem *b = peer_of(net, m);
	m->stats.hangups++;
	event(net, HAYES_EV_HANGUP, m, b, HAYES_OK, NULL, now);
	flush_arrived(b, m, now);
	b->stats.no_carrier++;
	out_result(b, HAYES_NO_CARRIER);
	event(net, HAYES_EV_CARRIER_LOST, b, m, HAYES_NO_CARRIER, "far end hung up", now);
	end_call(m, now);
	end_call(b, now);
}

/* V.250 6.3.1: a character from the DTE aborts a call attempt with NO CARRIER. */
static void abort_attempt(struct hayes_net *net, struct modem *m, uint64_t now)
{
	struct modem *b = peer_of(net, m);
	if (b && b->st == ST_RINGING_IN)
		end_call(b, now); /* the ringing just stops */
	else if (b && b->st == ST_TRAINING)
		fail(net, b, HAYES_NO_CARRIER, "far end aborted", now);
	fail(net, m, HAYES_NO_CARRIER, "aborted by the DTE", now);
}

static void go_online(struct hayes_net *net, struct modem *m, uint64_t now)
{
	m->st = ST_ONLINE;
	m->last_dte_us = now; /* the guard time before an escape counts from here */
	m->esc_count = 0;
	out_connect(net, m);
}

/* The training of a's call is done: a line each way, CONNECT at both ends. */
static void connect(struct hayes_net *net, struct modem *a, uint64_t now)
{
	struct modem *b = peer_of(net, a);
	struct line_params lp = net->p.line;
	lp.seed += net->connections;
	int r = line_dir_init(&a->tx, &lp, 0);
	if (r == 0) {
		a->tx_live = true;
		r = line_dir_init(&b->tx, &lp, 1);
	}
	if (r < 0) {
		line_dir_free(&a->tx);
		a->tx_live = false;
		fail(net, b, HAYES_NO_CARRIER, "no memory for the line", now);
		fail(net, a, HAYES_NO_CARRIER, "no memory for the line", now);
		return;
	}
	b->tx_live = true;
	net->connections++;
	struct modem *ends[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		struct modem *m = ends[i];
		m->timer = NEVER;
		m->online_since = now;
		m->carrier_until = net->p.carrier_us ? now + net->p.carrier_us : NEVER;
		m->stats.connects++;
		go_online(net, m, now);
	}
	event(net, HAYES_EV_CONNECT, a, b, HAYES_CONNECT, NULL, now);
}

/* b answers the call ringing there (ATA, or S0 rings): both ends train. */
static void answer(struct hayes_net *net, struct modem *b, uint64_t now)
{
	struct modem *a = peer_of(net, b);
	event(net, HAYES_EV_ANSWER, b, a, HAYES_OK, NULL, now);
	b->st = ST_TRAINING;
	b->timer = NEVER;
	a->st = ST_TRAINING;
	a->timer = now + net->p.train_us; /* the caller holds the call's timer */
}

static struct modem *find_number(struct hayes_net *net, const char *number)
{
	for (size_t i = 0; i < net->n; i++)
		if (strcmp(net->m[i].number, number) == 0)
			return &net->m[i];
	return NULL;
}

/* The dial string has gone out: the network decides what the caller hears. */
static void dial_done(struct hayes_net *net, struct modem *m, uint64_t now)
{
	struct modem *b;
	switch (m->pending) {
	case HAYES_CALL_BUSY:
		fail(net, m, HAYES_BUSY, "--calls", now);
		return;
	case HAYES_CALL_NO_ANSWER:
		m->st = ST_RINGING_OUT; /* rings nowhere */
		m->timer = after_s(now, m->set.s[7]);
		m->why = "--calls";
		return;
	case HAYES_CALL_NO_CARRIER:
		m->st = ST_WAIT_CARRIER;
		m->timer = after_s(now, m->set.s[7]);
		m->why = "--calls";
		return;
	default:
		break;
	}
	b = find_number(net, m->dialed);
	if (!b) {
		/* Like a number where no modem answers: silence until S7. */
		m->st = ST_WAIT_CARRIER;
		m->timer = after_s(now, m->set.s[7]);
		m->why = "number not on the network";
		return;
	}
	if (b == m || b->st != ST_IDLE) {
		fail(net, m, HAYES_BUSY, b == m ? "dialed itself" : "line in use", now);
		return;
	}
	m->st = ST_RINGING_OUT;
	m->peer = index_of(net, b);
	m->caller = true;
	m->timer = after_s(now, m->set.s[7]);
	m->why = "S7";
	b->st = ST_RINGING_IN;
	b->peer = index_of(net, m);
	b->set.s[1] = 0;
	b->timer = now; /* the first RING at once */
}

static void ring(struct hayes_net *net, struct modem *b, uint64_t now)
{
	out_result(b, HAYES_RING);
	b->stats.rings++;
	if (b->set.s[1] < 255)
		b->set.s[1]++;
	if (b->set.s[0] && b->set.s[1] >= b->set.s[0])
		answer(net, b, now);
	else
		b->timer += net->p.ring_us;
}

/* Hayes escape: guard, three escape characters each within the guard time, guard again. */
static void escape_scan(struct modem *m, uint8_t c, uint64_t now)
{
	uint64_t guard = m->set.s[12] * US_PER_TICK;
	bool quiet_before = now - m->last_dte_us >= guard;
	if (m->set.s[2] > 127 || c != m->set.s[2])
		m->esc_count = 0;
	else if (m->esc_count == 0 || m->esc_count == 3)
		m->esc_count = quiet_before ? 1 : 0;
	else
		m->esc_count = quiet_before ? 1 : m->esc_count + 1;
	m->last_dte_us = now;
}

/* One modem's timers; true if anything happened. */
static bool advance_modem(struct hayes_net *net, struct modem *m, uint64_t now)
{
	if (m->st == ST_ONLINE && m->esc_count == 3 &&
	    now - m->last_dte_us >= m->set.s[12] * US_PER_TICK) {
		m->esc_count = 0;
		m->st = ST_ONLINE_CMD;
		out_result(m, HAYES_OK);
		return true;
	}
	if ((m->st == ST_ONLINE || m->st == ST_ONLINE_CMD) && now >= m->carrier_until) {
		lose_carrier(net, m, "--carrier-s", now);
		return true;
	}
	if (m->st == ST_ONLINE_CMD) {
		/* Online command state: what comes over the line meanwhile is lost (no buffer). */
		uint8_t sink[256];
		struct modem *b = peer_of(net, m);
		size_t k;
		while ((k = line_dir_take(&b->tx, now, sink, sizeof(sink))) > 0)
			m->stats.discarded += k;
	}
	if (now < m->timer)
		return false;
	switch (m->st) {
	case ST_DIALING:
		dial_done(net, m, now);
		break;
	case ST_WAIT_CARRIER:
		fail(net, m, HAYES_NO_CARRIER, m->why, now);
		break;
	case ST_RINGING_OUT: {
		struct modem *b = peer_of(net, m);
		if (b)
			end_call(b, now); /* the ringing stops */
		fail(net, m, HAYES_NO_ANSWER, m->why, now);
		break;
	}
	case ST_RINGING_IN:
		ring(net, m, now);
		break;
	case ST_ANSWERING:
		fail(net, m, HAYES_NO_CARRIER, "S7", now);
		break;
	case ST_TRAINING:
		connect(net, m, now);
		break;
	default:
		m->timer = NEVER;
		return false;
	}
	return true;
}

void hayes_net_advance(struct hayes_net *net, uint64_t now_us)
{
	/* A timer may set another one already due (a late caller): go round until quiet. */
	for (int round = 0; round < 64; round++) {
		bool any = false;
		for (size_t i = 0; i < net->n; i++)
			any |= advance_modem(net, &net->m[i], now_us);
		if (!any)
			break;
	}
}

/* A decimal number after a command letter; none is 0 (V.250 5.3.1). false past 999. */
static bool parse_num(const char **p, unsigned *out)
{
	unsigned v = 0;
	int digits = 0;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		if (++digits > 3)
			return false;
	}
	*out = v;
	return true;
}

static enum cmd set_flag(const char **p, bool *flag)
{
	unsigned v;
	if (!parse_num(p, &v) || v > 1)
		return CMD_ERROR;
	*flag = v;
	return CMD_NEXT;
}

static enum cmd set_level(const char **p, unsigned max, unsigned *level)
{
	unsigned v;
	if (!parse_num(p, &v) || v > max)
		return CMD_ERROR;
	*level = v;
	return CMD_NEXT;
}

/* Sn=v sets, Sn? reads as three digits with leading zeros (V.250 5.3.2, S-parameters). */
static enum cmd cmd_s(struct modem *m, const char **p)
{
	unsigned n, v;
	char buf[8];
	if (!parse_num(p, &n) || n >= SREG_COUNT || sreg[n].max == 0)
		return CMD_ERROR;
	if (**p == '?') {
		(*p)++;
		snprintf(buf, sizeof(buf), "%03u", m->set.s[n]);
		out_info(m, buf);
		return CMD_NEXT;
	}
	if (**p != '=')
		return CMD_ERROR;
	(*p)++;
	if (!parse_num(p, &v) || v < sreg[n].min || v > sreg[n].max)
		return CMD_ERROR;
	m->set.s[n] = (uint8_t)v;
	return CMD_NEXT;
}

/*
 * D: the rest of the line is the dial string (V.250 6.3.1). Digits 0-9 A-D * # + make the
 * number, ',' pauses S8 seconds, T P W and anything else are ignored; ';' (stay in command
 * state) is not supported.
 */
static enum cmd cmd_dial(struct hayes_net *net, struct modem *m, const char *p, uint64_t now)
{
	char number[HAYES_NUMBER_MAX + 1];
	size_t len = 0;
	unsigned commas = 0;
	if (m->st != ST_IDLE && m->st != ST_OFFHOOK)
		return CMD_ERROR;
	for (; *p; p++) {
		char c = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		if (c == ';')
			return CMD_ERROR;
		if (c == ',')
			commas++;
		else if (strchr(DIAL_DIGITS, c)) {
			if (len == HAYES_NUMBER_MAX)
				return CMD_ERROR;
			number[len++] = c;
		}
	}
	number[len] = 0;
	memcpy(m->dialed, number, len + 1);
	m->stats.dials++;
	event(net, HAYES_EV_DIAL, m, NULL, HAYES_OK, NULL, now);
	m->pending =
	    net->next_call < net->p.ncalls ? net->calls[net->next_call++] : HAYES_CALL_CONNECT;
	if (m->pending == HAYES_CALL_NO_DIALTONE) {
		fail(net, m, HAYES_NO_DIALTONE, "--calls", now);
		return CMD_DONE;
	}
	if (m->pending == HAYES_CALL_ERROR) {
		fail(net, m, HAYES_ERROR, "--calls", now);
		return CMD_DONE;
	}
	m->st = ST_DIALING;
	m->timer = now + (uint64_t)commas * m->set.s[8] * US_PER_S;
	return CMD_DONE;
}

/* One command at *p; advances *p past it. */
static enum cmd one_command(struct hayes_net *net, struct modem *m, const char **p, uint64_t now)
{
	unsigned v;
	char c = **p;
	(*p)++;
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	switch (c) {
	case 'E':
		return set_flag(p, &m->set.echo);
	case 'Q':
		return set_flag(p, &m->set.quiet);
	case 'V':
		return set_flag(p, &m->set.verbose);
	case 'X':
		return set_level(p, 4, &m->set.x);
	case 'L': /* speaker volume and mode: there is no speaker */
	case 'M':
		return set_level(p, 3, &v);
	case 'T': /* tone or pulse by default: all the same here */
	case 'P':
		return CMD_NEXT;
	case 'S':
		return cmd_s(m, p);
	case 'I': {
		char id[64];
		if (!parse_num(p, &v) || v != 0)
			return CMD_ERROR;
		snprintf(id, sizeof(id), "%s %s", IDENT, m->number);
		out_info(m, id);
		return CMD_NEXT;
	}
	case 'H':
		if (!parse_num(p, &v) || v > 1)
			return CMD_ERROR;
		if (v == 0 && m->st == ST_ONLINE_CMD)
			hang_up(net, m, now);
		else if (v == 0 && m->st == ST_OFFHOOK)
			m->st = ST_IDLE;
		else if (v == 1 && m->st == ST_IDLE)
			m->st = ST_OFFHOOK;
		return CMD_NEXT;
	case 'Z':
		if (!parse_num(p, &v) || v > 1)
			return CMD_ERROR;
		if (m->st == ST_ONLINE_CMD)
			hang_up(net, m, now);
		else if (m->st == ST_OFFHOOK)
			m->st = ST_IDLE;
		factory(&m->set);
		out_result(m,
			   HAYES_OK); /* in the restored format; the rest of the line is ignored */
		return CMD_DONE;
	case 'O':
		if (!parse_num(p, &v) || v > 1)
			return CMD_ERROR;
		if (m->st != ST_ONLINE_CMD)
			out_result(m, HAYES_NO_CARRIER);
		else
			go_online(net, m, now);
		return CMD_DONE;
	case 'A':
		if (!parse_num(p, &v) || v != 0 || m->st == ST_ONLINE_CMD)
			return CMD_ERROR;
		if (m->st == ST_RINGING_IN) {
			answer(net, m, now);
		} else {
			m->st = ST_ANSWERING;
			m->timer = after_s(now, m->set.s[7]);
		}
		return CMD_DONE;
	case 'D':
		return cmd_dial(net, m, *p, now);
	case '&':
		c = **p;
		if (c)
			(*p)++;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		switch (c) {
		case 'F':
			if (!parse_num(p, &v) || v != 0)
				return CMD_ERROR;
			factory(&m->set);
			return CMD_NEXT;
		case 'C': /* DCD and DTR: a pty has neither, so accepted and kept */
			return set_level(p, 1, &m->set.c);
		case 'D':
			return set_level(p, 3, &m->set.d);
		case 'K': /* flow control: the line's back-pressure is all there is */
			return set_level(p, 6, &m->set.k);
		default:
			return CMD_ERROR;
		}
	default:
		return CMD_ERROR;
	}
}

/* A command line (without AT), as V.250 5.2 and 5.6 say: in order, stop at the first error. */
static void execute(struct hayes_net *net, struct modem *m, const char *line, uint64_t now)
{
	const char *p = line;
	while (*p) {
		enum cmd r = one_command(net, m, &p, now);
		if (r == CMD_DONE)
			return;
		if (r == CMD_ERROR) {
			out_result(m, HAYES_ERROR);
			return;
		}
	}
	out_result(m, HAYES_OK);
}

/* A character in command state: the AT prefix, the line up to S3, A/ (V.250 5.2). */
static void cmd_byte(struct hayes_net *net, struct modem *m, uint8_t c, uint64_t now)
{
	if (m->set.echo)
		out_bytes(m, &c, 1);
	if (!m->in_line) {
		bool a = m->got_a;
		m->got_a = c == 'A' || c == 'a';
		if (a && (c == 'T' || c == 't')) {
			m->in_line = true;
			m->len = 0;
			m->overflow = false;
		} else if (a && c == '/') {
			execute(net, m, m->last, now); /* A/ needs no S3 */
		}
		return;
	}
	if (c == m->set.s[3]) {
		m->in_line = false;
		m->line[m->len] = 0;
		if (m->overflow) {
			out_result(m, HAYES_ERROR);
			return;
		}
		memcpy(m->last, m->line, m->len + 1);
		execute(net, m, m->line, now);
		return;
	}
	if (c == m->set.s[5]) {
		if (m->len)
			m->len--;
		return;
	}
	/* S4 and other control characters, and spaces, are ignored on a command line. */
	if (c < 0x20 || c == 0x7f || c == ' ')
		return;
	if (m->len == CMD_MAX) {
		m->overflow = true;
		return;
	}
	m->line[m->len++] = (char)c;
}

static bool attempt_state(enum state st)
{
	return st == ST_DIALING || st == ST_WAIT_CARRIER || st == ST_RINGING_OUT ||
	       st == ST_ANSWERING || st == ST_TRAINING;
}

size_t hayes_net_room(const struct hayes_net *net, size_t m, uint64_t now_us)
{
	const struct modem *x = &net->m[m];
	if (x->st == ST_ONLINE)
		return line_dir_room(&x->tx, now_us);
	size_t free_out = OUT_CAP - x->out_len;
	return free_out > OUT_RESERVE ? free_out - OUT_RESERVE : 0;
}

size_t hayes_net_from_dte(struct hayes_net *net, size_t m, const uint8_t *buf, size_t n,
			  uint64_t now_us)
{
	struct modem *x = &net->m[m];
	size_t k = 0;
	hayes_net_advance(net, now_us);
	while (k < n) {
		if (x->st == ST_ONLINE) {
			size_t put = line_dir_put(&x->tx, buf + k, n - k, now_us);
			for (size_t i = 0; i < put; i++)
				escape_scan(x, buf[k + i], now_us);
			x->stats.bytes_to_line += put;
			k += put;
			break;
		}
		if (attempt_state(x->st)) {
			abort_attempt(net, x, now_us); /* the character itself is gone */
			k++;
			continue;
		}
		if (OUT_CAP - x->out_len <= OUT_RESERVE)
			break;
		cmd_byte(net, x, buf[k++], now_us);
	}
	/* A dial without pauses or a training of 0 is due now. */
	hayes_net_advance(net, now_us);
	return k;
}

size_t hayes_net_to_dte(struct hayes_net *net, size_t m, uint8_t *out, size_t cap, uint64_t now_us)
{
	struct modem *x = &net->m[m];
	hayes_net_advance(net, now_us);
	size_t n = x->out_len < cap ? x->out_len : cap;
	memcpy(out, x->out, n);
	memmove(x->out, x->out + n, x->out_len - n);
	x->out_len -= n;
	/* Line data only after the responses queued before it (CONNECT). */
	if (x->st == ST_ONLINE && x->out_len == 0 && n < cap) {
		size_t k = line_dir_take(&peer_of(net, x)->tx, now_us, out + n, cap - n);
		x->stats.bytes_from_line += k;
		n += k;
	}
	return n;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t hayes_net_next_us(const struct hayes_net *net, uint64_t now_us, const bool *dte_ready)
{
	uint64_t next = NEVER;
	for (size_t i = 0; i < net->n; i++) {
		const struct modem *m = &net->m[i];
		bool ready = !dte_ready || dte_ready[i];
		next = min_u64(next, m->timer);
		if (m->out_len && ready)
			next = now_us;
		if (m->st != ST_ONLINE && m->st != ST_ONLINE_CMD)
			continue;
		const struct modem *b = &net->m[m->peer];
		next = min_u64(next, m->carrier_until);
		if (m->st == ST_ONLINE && m->esc_count == 3)
			next = min_u64(next, m->last_dte_us + m->set.s[12] * US_PER_TICK);
		/* The direction b -> m: taken by m's DTE, or thrown away in command state. */
		if (m->st == ST_ONLINE_CMD || ready)
			next = min_u64(next, line_dir_next_us(&b->tx, now_us));
	}
	return next < now_us ? now_us : next;
}

void hayes_net_drop_carrier(struct hayes_net *net, uint64_t now_us)
{
	hayes_net_advance(net, now_us);
	for (size_t i = 0; i < net->n; i++) {
		struct modem *m = &net->m[i];
		if (m->st == ST_ONLINE || m->st == ST_ONLINE_CMD)
			lose_carrier(net, m, "carrier dropped", now_us);
	}
}

bool hayes_net_next_event(struct hayes_net *net, struct hayes_event *ev)
{
	if (!net->ev_count)
		return false;
	*ev = net->ev[net->ev_head];
	net->ev_head = (net->ev_head + 1) % EVENTS_CAP;
	net->ev_count--;
	return true;
}

uint64_t hayes_net_events_lost(const struct hayes_net *net)
{
	return net->ev_lost;
}

const char *hayes_net_number(const struct hayes_net *net, size_t m)
{
	return net->m[m].number;
}

struct hayes_stats hayes_net_stats(const struct hayes_net *net, size_t m, uint64_t now_us)
{
	const struct modem *x = &net->m[m];
	struct hayes_stats s = x->stats;
	if (x->st == ST_ONLINE || x->st == ST_ONLINE_CMD)
		s.online_us += now_us - x->online_since;
	if (x->tx_live) {
		struct line_stats l = line_dir_stats(&x->tx);
		add_line_stats(&s.line, &l);
	}
	return s;
}

static bool valid_number(const char *s)
{
	size_t len = strlen(s);
	return len > 0 && len <= HAYES_NUMBER_MAX && strspn(s, DIAL_DIGITS) == len;
}

int hayes_net_new(const struct hayes_params *p, const char *const *numbers, size_t n,
		  struct hayes_net **out)
{
	struct hayes_net *net = NULL;
	struct line_dir probe;
	int ret = -EINVAL;

	*out = NULL;
	if (n == 0 || n > HAYES_MODEMS_MAX || p->ring_us == 0 || p->ring_us > HAYES_TIME_MAX ||
	    p->train_us > HAYES_TIME_MAX || p->ncalls > HAYES_CALLS_MAX)
		goto out;
	for (size_t i = 0; i < p->ncalls; i++)
		if ((unsigned)p->calls[i] > HAYES_CALL_ERROR)
			goto out;
	for (size_t i = 0; i < n; i++) {
		if (!valid_number(numbers[i]))
			goto out;
		for (size_t j = 0; j < i; j++)
			if (strcmp(numbers[i], numbers[j]) == 0)
				goto out;
	}
	/* The line parameters are checked once here, so that a call can only fail for memory. */
	ret = line_dir_init(&probe, &p->line, 0);
	line_dir_free(&probe);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	net = calloc(1, sizeof(*net));
	if (!net)
		goto out;
	net->m = calloc(n, sizeof(*net->m));
	net->calls = calloc(p->ncalls ? p->ncalls : 1, sizeof(*net->calls));
	if (!net->m || !net->calls)
		goto out;
	if (p->ncalls)
		memcpy(net->calls, p->calls, p->ncalls * sizeof(*net->calls));
	net->p = *p;
	net->p.calls = net->calls;
	net->n = n;
	for (size_t i = 0; i < n; i++) {
		struct modem *m = &net->m[i];
		memcpy(m->number, numbers[i], strlen(numbers[i]) + 1);
		factory(&m->set);
		m->st = ST_IDLE;
		m->timer = NEVER;
		m->carrier_until = NEVER;
		m->peer = NO_PEER;
	}
	*out = net;
	net = NULL;
	ret = 0;
out:
	hayes_net_free(net);
	return ret;
}

void hayes_net_free(struct hayes_net *net)
{
	if (!net)
		return;
	for (size_t i = 0; net->m && i < net->n; i++)
		if (net->m[i].tx_live)
			line_dir_free(&net->m[i].tx);
	free(net->m);
	free(net->calls);
	free(net);
}
