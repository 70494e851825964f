/* An Iridium SBD modem's command dialogue: init, +SBDWB, +SBDIX, +SBDRB, SBDRING; sans I/O. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transports/sbd.h"

/* An init command, or the OK after an answer: the modem answers in well under a second. */
#define CMD_MS 5000
/* AT+SBDWB to READY. */
#define READY_MS 5000
/* The message's bytes to the modem's result: 342 bytes take 1.4 s even at 2400 baud. */
#define RESULT_MS 10000
/* AT+SBDIX: a session takes from some seconds to a minute or more; this is a wedged modem. */
#define SESSION_MS 120000
/* AT+SBDRB to the end of its bytes: 274 of them. */
#define READ_MS 10000
/* A modem that failed its init is tried again this often (it may be off, or still booting). */
#define RETRY_MS 30000

#define CMD_MAX 20 /* "AT+SBDWB=340" and the like */

static const char *const init_cmds[] = {"AT", "ATE0", "AT&K0", "AT+SBDMTA=1", "AT+SBDD0"};
#define N_INIT (sizeof(init_cmds) / sizeof(init_cmds[0]))

enum write_step {
	W_READY,  /* AT+SBDWB sent: waiting for READY */
	W_RESULT, /* the message sent: waiting for 0..3, then OK */
	W_CLEAR,  /* sbd_check's AT+SBDD0: waiting for 0 or 1, then OK */
};

enum read_step {
	RB_HEAD, /* the 2-byte length (text lines before it are taken as lines) */
	RB_BODY,
	RB_SUM,
	RB_DONE, /* the bytes are in (or skipped): waiting for OK, as lines */
};

struct sbd {
	sbd_event_fn fn;
	void *ctx;
	enum sbd_state state;
	int step;      /* INIT: the command awaited; WRITING: enum write_step; READING: read_step */
	int answer;    /* the digit answer of SBDWB or SBDD, -1 while none came */
	bool check;    /* the session is sbd_check's */
	bool have_res; /* SESSION: the +SBDIX line came; OK is awaited */
	bool mo_loaded;
	uint64_t due; /* the timer of the state; UINT64_MAX: none */
	struct sbd_result res;
	uint8_t mo[SBD_MO_MAX];
	size_t mo_len;
	uint8_t out[SBD_MO_MAX + 2];
	size_t out_len, out_off;
	char sent[CMD_MAX + 1]; /* the command awaiting its answer, for messages */
	char line[96];
	size_t line_len;
	bool line_over; /* the line is longer than line[]: not an answer */
	/* READING */
	bool rb_text; /* RB_HEAD: a text line came where the length was expected */
	size_t rb_got;
	uint8_t rb_head[2], rb_sum[2];
	size_t rb_len;
	uint8_t mt[SBD_MT_MAX];
	char rb_why[80]; /* why the message read cannot be given, once OK comes */
	char detail[160];
};

static const struct sbd_result no_result = {.mo_status = -1, .mt_status = -1};

static uint16_t checksum(const uint8_t *buf, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += buf[i];
	return (uint16_t)sum;
}

int sbd_new(sbd_event_fn fn, void *ctx, struct sbd **out)
{
	struct sbd *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->ctx = ctx;
	s->state = SBD_FAILED;
	s->due = UINT64_MAX;
	s->res = no_result;
	*out = s;
	return 0;
}

void sbd_free(struct sbd *s)
{
	free(s);
}

static void event(struct sbd *s, enum sbd_event ev, const struct sbd_result *r, const uint8_t *mt,
		  size_t mt_len, const char *detail)
{
	if (s->fn)
		s->fn(s->ctx, ev, r ? r : &no_result, mt, mt_len, detail ? detail : "");
}

/* Queues cmd and a CR; its answer is awaited until now_ms + ms. */
static void command(struct sbd *s, const char *cmd, uint64_t now_ms, uint32_t ms)
{
	snprintf(s->sent, sizeof(s->sent), "%s", cmd);
	s->out_len = (size_t)snprintf((char *)s->out, sizeof(s->out), "%s\r", cmd);
	s->out_off = 0;
	s->answer = -1;
	s->due = now_ms + ms;
}

static void idle(struct sbd *s)
{
	s->state = SBD_IDLE;
	s->due = UINT64_MAX;
	s->out_len = s->out_off = 0;
}

void sbd_start(struct sbd *s, uint64_t now_ms)
{
	s->state = SBD_INIT;
	s->step = 0;
	s->check = false;
	s->have_res = false;
	s->mo_loaded = false; /* and AT+SBDD0 makes it so */
	s->res = no_result;
	s->line_len = 0;
	s->line_over = false;
	command(s, init_cmds[0], now_ms, CMD_MS);
}

static void modem_failed(struct sbd *s, uint64_t now_ms, const char *what)
{
	snprintf(s->detail, sizeof(s->detail), "%s: %s", s->sent, what);
	s->state = SBD_FAILED;
	s->out_len = s->out_off = 0;
	s->due = now_ms + RETRY_MS;
	event(s, SBD_EV_MODEM_FAILED, NULL, NULL, 0, s->detail);
}

/* A write or a session failed: back to idle, and the caller told why. */
static void session_failed(struct sbd *s, const char *what)
{
	snprintf(s->detail, sizeof(s->detail), "%s: %s", s->sent, what);
	idle(s);
	event(s, SBD_EV_SESSION_FAILED, &s->res, NULL, 0, s->detail);
}

static void start_session(struct sbd *s, uint64_t now_ms)
{
	s->state = SBD_SESSION;
	s->have_res = false;
	s->res = no_result;
	command(s, "AT+SBDIX", now_ms, SESSION_MS);
}

int sbd_send(struct sbd *s, const uint8_t *msg, size_t len, uint64_t now_ms)
{
	if (len == 0 || len > SBD_MO_MAX)
		return -EINVAL;
	if (s->state != SBD_IDLE)
		return -EBUSY;
	char cmd[CMD_MAX + 1];
	memcpy(s->mo, msg, len);
	s->mo_len = len;
	/* The buffer is overwritten, or in doubt if the write fails. */
	s->mo_loaded = false;
	s->check = false;
	s->res = no_result;
	s->state = SBD_WRITING;
	s->step = W_READY;
	snprintf(cmd, sizeof(cmd), "AT+SBDWB=%zu", len);
	command(s, cmd, now_ms, READY_MS);
	return 0;
}

int sbd_retry(struct sbd *s, uint64_t now_ms)
{
	if (s->state != SBD_IDLE)
		return -EBUSY;
	if (!s->mo_loaded)
		return -ENOMSG;
	s->check = false;
	start_session(s, now_ms);
	return 0;
}

int sbd_check(struct sbd *s, uint64_t now_ms)
{
	if (s->state != SBD_IDLE)
		return -EBUSY;
	s->mo_loaded = false;
	s->check = true;
	s->res = no_result;
	s->state = SBD_WRITING;
	s->step = W_CLEAR;
	command(s, "AT+SBDD0", now_ms, CMD_MS);
	return 0;
}

bool sbd_mo_loaded(const struct sbd *s)
{
	return s->mo_loaded;
}

/* The message and its checksum, once READY came. */
static void write_message(struct sbd *s, uint64_t now_ms)
{
	uint16_t sum = checksum(s->mo, s->mo_len);
	memcpy(s->out, s->mo, s->mo_len);
	s->out[s->mo_len] = (uint8_t)(sum >> 8);
	s->out[s->mo_len + 1] = (uint8_t)sum;
	s->out_len = s->mo_len + 2;
	s->out_off = 0;
	s->step = W_RESULT;
	s->answer = -1;
	s->due = now_ms + RESULT_MS;
}

static void write_done(struct sbd *s, uint64_t now_ms)
{
	static const char *const why[] = {"0",
					  "1, timeout: the modem had too few bytes of the message",
					  "2, checksum: the modem's sum of the message differs",
					  "3, size: the modem refused the length"};
	if (s->answer == 0) {
		s->mo_loaded = true;
		start_session(s, now_ms);
		return;
	}
	session_failed(s, why[s->answer]);
}

static void clear_done(struct sbd *s, uint64_t now_ms)
{
	if (s->answer == 0) {
		start_session(s, now_ms);
		return;
	}
	session_failed(s, "1: the modem could not clear the MO buffer");
}

static const char *mo_status_name(int st)
{
	switch (st) {
	case 10:
		return "the call did not complete in the allowed time";
	case 11:
		return "the MO queue at the gateway is full";
	case 12:
		return "the MO message has too many segments";
	case 13:
		return "the session did not complete";
	case 14:
		return "invalid segment size";
	case 15:
		return "access is denied";
	case 16:
		return "the modem is locked";
	case 17:
		return "the gateway is not responding";
	case 18:
		return "the connection was lost (RF drop)";
	case 19:
		return "link failure";
	case 32:
		return "no network service";
	case 35:
		return "the modem is busy";
	default:
		return "a failure";
	}
}

static void start_read(struct sbd *s, uint64_t now_ms)
{
	s->state = SBD_READING;
	s->step = RB_HEAD;
	s->rb_text = false;
	s->rb_got = 0;
	s->rb_len = 0;
	s->rb_why[0] = 0;
	command(s, "AT+SBDRB", now_ms, READ_MS);
}

/* The +SBDIX line and its OK came (or the OK did not): the session is over. */
static void session_done(struct sbd *s, uint64_t now_ms)
{
	enum sbd_event ev;
	s->have_res = false;
	if (s->res.mo_status <= 4) {
		ev = s->check ? SBD_EV_CHECKED : SBD_EV_SENT;
		if (!s->check)
			s->mo_loaded = false;
		snprintf(s->detail, sizeof(s->detail), "MO status %d, MOMSN %u", s->res.mo_status,
			 (unsigned)s->res.momsn);
	} else {
		ev = SBD_EV_SESSION_FAILED;
		snprintf(s->detail, sizeof(s->detail), "AT+SBDIX: MO status %d: %s",
			 s->res.mo_status, mo_status_name(s->res.mo_status));
	}
	if (s->res.mt_status == 1)
		start_read(s, now_ms);
	else
		idle(s);
	event(s, ev, &s->res, NULL, 0, s->detail);
}

/* The bytes of +SBDRB and its OK came (or the OK did not). */
static void read_done(struct sbd *s)
{
	idle(s);
	if (s->rb_why[0]) {
		snprintf(s->detail, sizeof(s->detail), "AT+SBDRB: %s", s->rb_why);
		event(s, SBD_EV_MT_FAILED, &s->res, NULL, 0, s->detail);
		return;
	}
	event(s, SBD_EV_MT, &s->res, s->mt, s->rb_len, "");
}

static void read_failed(struct sbd *s, const char *what)
{
	snprintf(s->rb_why, sizeof(s->rb_why), "%s", what);
	read_done(s);
}

/* A field of +SBDIX: spaces, 1..10 digits, spaces; at most max. Advances *p. */
static bool parse_field(const char **p, uint64_t max, uint32_t *out)
{
	const char *q = *p;
	uint64_t v = 0;
	size_t digits = 0;
	while (*q == ' ')
		q++;
	for (; *q >= '0' && *q <= '9'; q++) {
		if (++digits > 10)
			return false;
		v = v * 10 + (uint64_t)(*q - '0');
	}
	if (!digits || v > max)
		return false;
	while (*q == ' ')
		q++;
	*p = q;
	*out = (uint32_t)v;
	return true;
}

/* "+SBDIX: <MO status>, <MOMSN>, <MT status>, <MTMSN>, <MT length>, <MT queued>" */
static bool parse_sbdix(const char *line, struct sbd_result *r)
{
	static const uint64_t max[6] = {255, 65535, 2, 65535, 65535, UINT32_MAX};
	uint32_t v[6];
	const char *p = line + 7;
	if (strncmp(line, "+SBDIX:", 7))
		return false;
	for (size_t i = 0; i < 6; i++) {
		if (!parse_field(&p, max[i], &v[i]))
			return false;
		if (i < 5 && *p++ != ',')
			return false;
	}
	if (*p)
		return false;
	r->mo_status = (int)v[0];
	r->momsn = v[1];
	r->mt_status = (int)v[2];
	r->mtmsn = v[3];
	r->mt_len = v[4];
	r->mt_queued = v[5];
	return true;
}

/* "0".."9": its value; anything else -1. */
static int digit_line(const char *line)
{
	return line[0] >= '0' && line[0] <= '9' && !line[1] ? line[0] - '0' : -1;
}

static void init_line(struct sbd *s, const char *line, int d, uint64_t now_ms)
{
	bool clear = !strcmp(s->sent, "AT+SBDD0");
	if (clear && d >= 0) {
		s->answer = d;
	} else if (!strcmp(line, "OK")) {
		if (clear && s->answer != 0) {
			modem_failed(s, now_ms,
				     s->answer < 0 ? "OK without an answer"
						   : "the modem could not clear the MO buffer");
			return;
		}
		if ((size_t)++s->step < N_INIT) {
			command(s, init_cmds[s->step], now_ms, CMD_MS);
			return;
		}
		idle(s);
		event(s, SBD_EV_READY, NULL, NULL, 0, "");
	} else if (!strcmp(line, "ERROR")) {
		modem_failed(s, now_ms, "the modem said ERROR");
	}
}

/* The digit answer of AT+SBDWB, and its OK. */
static void write_answer(struct sbd *s, int d, bool ok, uint64_t now_ms)
{
	if (s->answer < 0 && d >= 0 && d <= 3) {
		s->answer = d;
		/* "1" is the one answer no OK follows (RockBLOCK's AT reference). */
		if (d == 1)
			write_done(s, now_ms);
		else
			s->due = now_ms + CMD_MS;
	} else if (s->answer >= 0 && ok) {
		write_done(s, now_ms);
	}
}

static void writing_line(struct sbd *s, const char *line, int d, uint64_t now_ms)
{
	bool ok = !strcmp(line, "OK");
	if (!strcmp(line, "ERROR")) {
		session_failed(s, "the modem said ERROR");
		return;
	}
	switch (s->step) {
	case W_READY:
		if (!strcmp(line, "READY")) {
			write_message(s, now_ms);
		} else if (d >= 1 && d <= 3) {
			/* A size the modem refuses gets 3 at once, and no READY. */
			s->step = W_RESULT;
			write_answer(s, d, false, now_ms);
		}
		return;
	case W_RESULT:
		write_answer(s, d, ok, now_ms);
		return;
	case W_CLEAR:
		if (s->answer < 0 && (d == 0 || d == 1)) {
			s->answer = d;
			s->due = now_ms + CMD_MS;
		} else if (s->answer >= 0 && ok) {
			clear_done(s, now_ms);
		}
		return;
	default:
		return;
	}
}

static void session_line(struct sbd *s, const char *line, uint64_t now_ms)
{
	if (!s->have_res && parse_sbdix(line, &s->res)) {
		s->have_res = true;
		s->due = now_ms + CMD_MS;
	} else if (!strcmp(line, "OK")) {
		if (s->have_res)
			session_done(s, now_ms);
		else
			session_failed(s, "OK without +SBDIX");
	} else if (!strcmp(line, "ERROR")) {
		if (s->have_res)
			session_done(s, now_ms);
		else
			session_failed(s, "the modem said ERROR");
	}
}

static void reading_line(struct sbd *s, const char *line)
{
	bool ok = !strcmp(line, "OK"), error = !strcmp(line, "ERROR");
	if (s->step == RB_DONE && (ok || error))
		read_done(s);
	else if (s->step == RB_HEAD && error)
		read_failed(s, "the modem said ERROR");
	else if (s->step == RB_HEAD && ok)
		read_failed(s, "OK without the message");
}

static void on_line(struct sbd *s, const char *line, uint64_t now_ms)
{
	if (!strcmp(line, "SBDRING")) {
		event(s, SBD_EV_RING, NULL, NULL, 0, "");
		return;
	}
	/* An echo, before ATE0 took effect (or after the modem reset behind our back). */
	if ((line[0] == 'A' || line[0] == 'a') && (line[1] == 'T' || line[1] == 't'))
		return;
	/* An answer counts once its command is out; before, it belongs to something earlier. */
	if (s->out_off < s->out_len)
		return;
	int d = digit_line(line);
	switch (s->state) {
	case SBD_INIT:
		init_line(s, line, d, now_ms);
		return;
	case SBD_WRITING:
		writing_line(s, line, d, now_ms);
		return;
	case SBD_SESSION:
		session_line(s, line, now_ms);
		return;
	case SBD_READING:
		reading_line(s, line);
		return;
	default:
		return;
	}
}

static void line_byte(struct sbd *s, uint8_t c, uint64_t now_ms)
{
	if (c == '\r' || c == '\n') {
		s->line[s->line_len] = 0;
		bool whole = s->line_len && !s->line_over;
		s->line_len = 0;
		s->line_over = false;
		if (whole)
			on_line(s, s->line, now_ms);
	} else if (s->line_len + 1 >= sizeof(s->line)) {
		s->line_over = true;
	} else {
		s->line[s->line_len++] = (char)c;
	}
}

/* The length came: the message's bytes, or none to read if it cannot be one. */
static void read_length(struct sbd *s, uint64_t now_ms)
{
	s->rb_len = (size_t)s->rb_head[0] << 8 | s->rb_head[1];
	s->rb_got = 0;
	if (s->rb_len == 0) {
		snprintf(s->rb_why, sizeof(s->rb_why), "the MT buffer was empty");
		s->step = RB_SUM;
	} else if (s->rb_len > SBD_MT_MAX) {
		/* Not trusted to frame the reply: its bytes go by as lines until the OK. */
		snprintf(s->rb_why, sizeof(s->rb_why), "a length of %zu, over %d", s->rb_len,
			 SBD_MT_MAX);
		s->step = RB_DONE;
		s->line_len = 0;
		s->line_over = false;
		s->due = now_ms + CMD_MS;
	} else {
		s->step = RB_BODY;
	}
}

static void read_checksum(struct sbd *s, uint64_t now_ms)
{
	uint16_t want = (uint16_t)(s->rb_sum[0] << 8 | s->rb_sum[1]);
	uint16_t got = checksum(s->mt, s->rb_len);
	if (!s->rb_why[0] && want != got)
		snprintf(s->rb_why, sizeof(s->rb_why),
			 "checksum 0x%04x, but the %zu bytes sum to 0x%04x: dropped", want,
			 s->rb_len, got);
	s->step = RB_DONE;
	s->line_len = 0;
	s->line_over = false;
	s->due = now_ms + CMD_MS;
}

/* One byte of the +SBDRB reply, before its OK. */
static void read_byte(struct sbd *s, uint8_t c, uint64_t now_ms)
{
	switch (s->step) {
	case RB_HEAD:
		/*
		 * A length of at most 270 starts with 0 or 1: a CR, LF or printable byte here is
		 * the end of an earlier line, an echo of AT+SBDRB, or SBDRING, or ERROR.
		 */
		if (s->rb_text ||
		    (s->rb_got == 0 && (c == '\r' || c == '\n' || (c >= 0x20 && c < 0x7f)))) {
			s->rb_text = c != '\r' && c != '\n';
			line_byte(s, c, now_ms);
			return;
		}
		s->rb_head[s->rb_got++] = c;
		if (s->rb_got == 2)
			read_length(s, now_ms);
		return;
	case RB_BODY:
		s->mt[s->rb_got++] = c;
		if (s->rb_got == s->rb_len) {
			s->rb_got = 0;
			s->step = RB_SUM;
		}
		return;
	case RB_SUM:
		s->rb_sum[s->rb_got++] = c;
		if (s->rb_got == 2)
			read_checksum(s, now_ms);
		return;
	default:
		line_byte(s, c, now_ms);
		return;
	}
}

void sbd_input(struct sbd *s, const uint8_t *buf, size_t len, uint64_t now_ms)
{
	for (size_t i = 0; i < len; i++) {
		/* The state is looked at for each byte: an event's callback may have changed it. */
		if (s->state == SBD_READING && s->out_off >= s->out_len && s->step != RB_DONE)
			read_byte(s, buf[i], now_ms);
		else
			line_byte(s, buf[i], now_ms);
	}
}

size_t sbd_output(struct sbd *s, uint64_t now_ms, const uint8_t **buf)
{
	(void)now_ms;
	if (s->out_off >= s->out_len)
		return 0;
	*buf = s->out + s->out_off;
	return s->out_len - s->out_off;
}

void sbd_consumed(struct sbd *s, size_t n)
{
	s->out_off += n;
	if (s->out_off >= s->out_len) {
		s->out_off = s->out_len = 0;
		/* A line begun before the command went out is no answer to it (READY has no CR LF
		 * in front of it to end such a line). */
		s->line_len = 0;
		s->line_over = false;
	}
}

uint64_t sbd_deadline(const struct sbd *s, uint64_t now_ms)
{
	if (s->out_off < s->out_len)
		return now_ms;
	return s->due;
}

static void read_timeout(struct sbd *s)
{
	char why[80];
	if (s->step == RB_DONE) {
		read_done(s); /* what came stands, OK or not */
		return;
	}
	if (s->step == RB_HEAD && s->rb_got == 0)
		snprintf(why, sizeof(why), "no answer");
	else
		snprintf(why, sizeof(why), "the reply stopped short (%zu of %zu message bytes)",
			 s->step == RB_HEAD   ? 0
			 : s->step == RB_BODY ? s->rb_got
					      : s->rb_len,
			 s->rb_len);
	read_failed(s, why);
}

void sbd_poll(struct sbd *s, uint64_t now_ms)
{
	if (now_ms < s->due)
		return;
	switch (s->state) {
	case SBD_INIT:
		modem_failed(s, now_ms, "no answer from the modem");
		return;
	case SBD_FAILED:
		sbd_start(s, now_ms);
		return;
	case SBD_WRITING:
		if (s->answer >= 0 && s->step == W_CLEAR)
			clear_done(s, now_ms);
		else if (s->answer >= 0)
			write_done(s, now_ms);
		else if (s->step == W_READY)
			session_failed(s, "no READY");
		else if (s->step == W_RESULT)
			session_failed(s, "no result after the message");
		else
			session_failed(s, "no answer");
		return;
	case SBD_SESSION:
		if (s->have_res)
			session_done(s, now_ms);
		else
			session_failed(s, "no answer");
		return;
	case SBD_READING:
		read_timeout(s);
		return;
	default:
		s->due = UINT64_MAX;
		return;
	}
}

enum sbd_state sbd_state(const struct sbd *s)
{
	return s->state;
}

const char *sbd_state_name(enum sbd_state st)
{
	static const char *const names[] = {"init",    "idle",	  "writing",
					    "session", "reading", "failed"};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}
