/* A Hayes modem's command dialogue (V.250): init strings, ATD, ATA, +++ and ATH, results. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transports/hayes.h"

/* An init string or ATH: a modem answers in well under a second; ATZ may take one. */
#define CMD_MS 5000
/* ATD: the modem gives up by itself after S7 (50 s by default); this is a wedged modem. */
#define DIAL_MS	  90000
#define ANSWER_MS 60000
/* The escape's guard time: S12 is 1 s by default; a little more, as our clock is not the modem's.
 */
#define GUARD_MS 1100
/* After "+++": the guard time, then OK comes. */
#define ESCAPE_MS (GUARD_MS + 3000)
/* A modem that failed its init is tried again this often (it may be off, or still booting). */
#define RETRY_MS 30000

#define NO_CARRIER     "\r\nNO CARRIER\r\n"
#define NO_CARRIER_LEN (sizeof(NO_CARRIER) - 1)

enum hangup_step {
	HU_GUARD,  /* silence before "+++" */
	HU_ESCAPE, /* "+++" sent: waiting for OK */
	HU_ATH,	   /* ATH sent: waiting for OK */
};

struct hayes {
	struct hayes_params p;
	hayes_event_fn fn;
	void *ctx;
	enum hayes_state state;
	size_t step;  /* HAYES_INIT: the init string awaited; HANGING_UP: enum hangup_step */
	uint64_t due; /* the timer of the state; UINT64_MAX: none */
	uint64_t last_data_ms; /* online bytes last went to the port */
	char out[HAYES_CMD_MAX + 2];
	size_t out_len, out_off;
	char sent[HAYES_CMD_MAX + 1]; /* the command awaiting its result, for messages */
	char line[96];
	size_t line_len;
	bool line_over;		      /* the line is longer than line[]: not a result code */
	uint8_t tail[NO_CARRIER_LEN]; /* online: the last bytes read, for NO CARRIER */
	size_t tail_len;
	bool skip_lf; /* the CONNECT line ended at its CR: its LF is not the far end's */
	uint32_t rate;
	char detail[160];
};

void hayes_params_default(struct hayes_params *p)
{
	memset(p, 0, sizeof(*p));
	p->idle_ms = HAYES_IDLE_DEFAULT_MS;
	p->redial_ms = HAYES_REDIAL_DEFAULT_MS;
}

bool hayes_check_init(const char *s, const char **why)
{
	size_t n = strlen(s);
	if (n < 2 || (s[0] != 'A' && s[0] != 'a') || (s[1] != 'T' && s[1] != 't')) {
		*why = "an init string is an AT command: it starts with AT";
		return false;
	}
	if (n > HAYES_CMD_MAX) {
		*why = "longer than 60 characters";
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e) {
			*why = "holds a control character; the CR after it is sent by tern";
			return false;
		}
	if (strstr(s, "+++")) {
		*why = "holds +++, the escape, which tern sends itself when it hangs up";
		return false;
	}
	return true;
}

bool hayes_check_dial(const char *s, const char **why)
{
	size_t n = strlen(s), digits = 0;
	if (n > HAYES_DIAL_MAX) {
		*why = "longer than 40 characters";
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else if (!strchr("+*#,TtPpWw ", s[i])) {
			*why =
			    "a number holds digits, + * # , W (wait for a tone), T or P (tone or "
			    "pulse) and spaces only";
			return false;
		}
	}
	if (!digits) {
		*why = "no digit in it";
		return false;
	}
	return true;
}

int hayes_new(const struct hayes_params *p, hayes_event_fn fn, void *ctx, struct hayes **out)
{
	const char *why;
	if (p->n_init > HAYES_INIT_MAX || (p->dial[0] && !hayes_check_dial(p->dial, &why)))
		return -EINVAL;
	for (size_t i = 0; i < p->n_init; i++)
		if (!hayes_check_init(p->init[i], &why))
			return -EINVAL;
	struct hayes *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->p = *p;
	if (!h->p.n_init) {
		snprintf(h->p.init[0], sizeof(h->p.init[0]), "%s", HAYES_INIT_DEFAULT_1);
		snprintf(h->p.init[1], sizeof(h->p.init[1]), "%s", HAYES_INIT_DEFAULT_2);
		h->p.n_init = 2;
	}
	h->fn = fn;
	h->ctx = ctx;
	h->state = HAYES_FAILED;
	h->due = UINT64_MAX;
	*out = h;
	return 0;
}

void hayes_free(struct hayes *h)
{
	free(h);
}

static void event(struct hayes *h, enum hayes_event ev, const char *detail)
{
	if (h->fn)
		h->fn(h->ctx, ev, detail ? detail : "");
}

/* Queues cmd and a CR; its result is awaited until now_ms + ms. */
static void command(struct hayes *h, const char *cmd, uint64_t now_ms, uint32_t ms)
{
	snprintf(h->sent, sizeof(h->sent), "%s", cmd);
	h->out_len = (size_t)snprintf(h->out, sizeof(h->out), "%s\r", cmd);
	h->out_off = 0;
	h->due = now_ms + ms;
}

static void send_init(struct hayes *h, uint64_t now_ms)
{
	command(h, h->p.init[h->step], now_ms, CMD_MS);
}

void hayes_start(struct hayes *h, uint64_t now_ms)
{
	h->state = HAYES_INIT;
	h->step = 0;
	h->line_len = 0;
	h->line_over = false;
	h->tail_len = 0;
	send_init(h, now_ms);
}

static void failed(struct hayes *h, uint64_t now_ms, const char *what)
{
	snprintf(h->detail, sizeof(h->detail), "%s: %s", h->sent, what);
	h->state = HAYES_FAILED;
	h->out_len = h->out_off = 0;
	h->due = now_ms + RETRY_MS;
	event(h, HAYES_EV_MODEM_FAILED, h->detail);
}

static void on_hook(struct hayes *h)
{
	h->state = HAYES_IDLE;
	h->due = UINT64_MAX;
}

int hayes_dial(struct hayes *h, uint64_t now_ms)
{
	if (!h->p.dial[0])
		return -EINVAL;
	if (h->state != HAYES_IDLE)
		return -EBUSY;
	char cmd[HAYES_CMD_MAX + 1];
	snprintf(cmd, sizeof(cmd), "ATD%s", h->p.dial);
	command(h, cmd, now_ms, DIAL_MS);
	h->state = HAYES_DIALING;
	h->rate = 0;
	return 0;
}

void hayes_set_answer(struct hayes *h, bool on)
{
	h->p.answer = on;
}

void hayes_hangup(struct hayes *h, uint64_t now_ms)
{
	switch (h->state) {
	case HAYES_ONLINE: {
		uint64_t quiet = h->last_data_ms + GUARD_MS;
		h->state = HAYES_HANGING_UP;
		h->step = HU_GUARD;
		h->due = quiet > now_ms ? quiet : now_ms;
		h->line_len = 0;
		h->line_over = false;
		return;
	}
	case HAYES_DIALING:
	case HAYES_ANSWERING:
		/* Any character ends a dial (V.250 6.3.1); the ATH puts it back on hook if not. */
		h->state = HAYES_HANGING_UP;
		h->step = HU_ATH;
		command(h, "ATH", now_ms, CMD_MS);
		return;
	default:
		return;
	}
}

enum result {
	R_NONE, /* not a result code: an echo, an I line, noise */
	R_OK,
	R_CONNECT,
	R_RING,
	R_FAIL, /* the call did not happen, or ERROR: why is the line */
	R_NO_CARRIER,
};

static enum result classify(const char *line)
{
	static const char *const fails[] = {"BUSY",  "NO ANSWER", "NO DIALTONE", "NO DIAL TONE",
					    "ERROR", "DELAYED",	  "BLACKLISTED", "NO CARRIER"};
	if (!strcmp(line, "OK"))
		return R_OK;
	if (!strncmp(line, "CONNECT", 7) && (line[7] == 0 || line[7] == ' '))
		return R_CONNECT;
	if (!strcmp(line, "RING"))
		return R_RING;
	for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++)
		if (!strncmp(line, fails[i], strlen(fails[i])))
			return i == 7 ? R_NO_CARRIER : R_FAIL;
	return R_NONE;
}

static void call_failed(struct hayes *h, const char *why)
{
	snprintf(h->detail, sizeof(h->detail), "%s", why);
	on_hook(h);
	event(h, HAYES_EV_CALL_FAILED, h->detail);
}

static void on_line(struct hayes *h, const char *line, uint64_t now_ms)
{
	enum result r = classify(line);
	if (r == R_NONE)
		return;
	switch (h->state) {
	case HAYES_INIT:
		if (r == R_OK) {
			if (++h->step < h->p.n_init) {
				send_init(h, now_ms);
				return;
			}
			on_hook(h);
			event(h, HAYES_EV_READY, NULL);
		} else if (r == R_FAIL && !strcmp(line, "ERROR")) {
			failed(h, now_ms, "the modem said ERROR");
		}
		return;
	case HAYES_IDLE:
		if (r != R_RING)
			return;
		event(h, HAYES_EV_RING, NULL);
		if (h->p.answer && h->state == HAYES_IDLE) {
			command(h, "ATA", now_ms, ANSWER_MS);
			h->state = HAYES_ANSWERING;
			h->rate = 0;
		}
		return;
	case HAYES_DIALING:
	case HAYES_ANSWERING:
		if (r == R_CONNECT) {
			h->state = HAYES_ONLINE;
			h->due = UINT64_MAX;
			h->rate = (uint32_t)strtoul(line + 7, NULL, 10);
			h->tail_len = 0;
			h->skip_lf = true;
			h->last_data_ms = now_ms;
			snprintf(h->detail, sizeof(h->detail), "%s", line);
			event(h, HAYES_EV_CONNECT, h->detail);
		} else if (r == R_FAIL || r == R_NO_CARRIER) {
			call_failed(h, line);
		}
		return;
	case HAYES_HANGING_UP:
		if (h->step != HU_ATH && r == R_NO_CARRIER) {
			/* The far end hung up first: on hook already. */
			on_hook(h);
			event(h, HAYES_EV_HUNG_UP, "the far end hung up first");
		} else if (h->step == HU_ESCAPE && r == R_OK) {
			/* Command mode, the call still up: ATH puts it on hook. */
			h->step = HU_ATH;
			command(h, "ATH", now_ms, CMD_MS);
		} else if (h->step == HU_ATH && (r == R_OK || r == R_FAIL)) {
			on_hook(h);
			event(h, HAYES_EV_HUNG_UP, NULL);
		}
		return;
	default:
		return;
	}
}

/* Online bytes: to data, and watched for the modem's NO CARRIER, which ends the call. */
static size_t online_input(struct hayes *h, const uint8_t *buf, size_t len, hayes_data_fn data,
			   void *ctx)
{
	if (h->skip_lf && len) {
		h->skip_lf = false;
		if (buf[0] == '\n')
			return 1;
	}
	size_t i = 0;
	for (; i < len; i++) {
		if (h->tail_len == NO_CARRIER_LEN) {
			memmove(h->tail, h->tail + 1, NO_CARRIER_LEN - 1);
			h->tail_len--;
		}
		h->tail[h->tail_len++] = buf[i];
		if (h->tail_len == NO_CARRIER_LEN && !memcmp(h->tail, NO_CARRIER, NO_CARRIER_LEN)) {
			i++;
			break;
		}
	}
	if (data && i)
		data(ctx, buf, i);
	if (h->tail_len == NO_CARRIER_LEN && !memcmp(h->tail, NO_CARRIER, NO_CARRIER_LEN)) {
		h->tail_len = 0;
		on_hook(h);
		event(h, HAYES_EV_CARRIER_LOST, "NO CARRIER");
	}
	return i;
}

void hayes_input(struct hayes *h, const uint8_t *buf, size_t len, uint64_t now_ms,
		 hayes_data_fn data, void *ctx)
{
	size_t i = 0;
	while (i < len) {
		if (h->state == HAYES_ONLINE) {
			i += online_input(h, buf + i, len - i, data, ctx);
			continue;
		}
		uint8_t c = buf[i++];
		if (c == '\r' || c == '\n') {
			h->line[h->line_len] = 0;
			if (h->line_len && !h->line_over)
				on_line(h, h->line, now_ms);
			h->line_len = 0;
			h->line_over = false;
		} else if (h->line_len + 1 >= sizeof(h->line)) {
			h->line_over = true;
		} else {
			h->line[h->line_len++] = (char)c;
		}
	}
}

size_t hayes_output(struct hayes *h, uint64_t now_ms, const uint8_t **buf)
{
	(void)now_ms;
	if (h->state == HAYES_ONLINE || h->out_off >= h->out_len)
		return 0;
	*buf = (const uint8_t *)h->out + h->out_off;
	return h->out_len - h->out_off;
}

void hayes_consumed(struct hayes *h, size_t n)
{
	h->out_off += n;
	if (h->out_off >= h->out_len)
		h->out_off = h->out_len = 0;
}

void hayes_data_sent(struct hayes *h, uint64_t now_ms)
{
	h->last_data_ms = now_ms;
}

uint64_t hayes_deadline(const struct hayes *h, uint64_t now_ms)
{
	if (h->state != HAYES_ONLINE && h->out_off < h->out_len)
		return now_ms;
	return h->due;
}

void hayes_poll(struct hayes *h, uint64_t now_ms)
{
	if (now_ms < h->due)
		return;
	switch (h->state) {
	case HAYES_INIT:
		failed(h, now_ms, "no answer from the modem");
		return;
	case HAYES_FAILED:
		hayes_start(h, now_ms);
		return;
	case HAYES_DIALING:
	case HAYES_ANSWERING:
		/* A wedged modem: ATZ ends whatever it is doing. */
		call_failed(h, "no result from the modem");
		hayes_start(h, now_ms);
		return;
	case HAYES_HANGING_UP:
		if (h->step == HU_GUARD) {
			h->step = HU_ESCAPE;
			snprintf(h->sent, sizeof(h->sent), "+++");
			h->out_len = (size_t)snprintf(h->out, sizeof(h->out), "+++");
			h->out_off = 0;
			h->due = now_ms + ESCAPE_MS;
		} else if (h->step == HU_ESCAPE) {
			/* No OK to the escape: try ATH anyway, as the modem may have dropped
			 * already. */
			h->step = HU_ATH;
			command(h, "ATH", now_ms, CMD_MS);
		} else {
			/* No OK to ATH either: ATZ hangs up as well. */
			event(h, HAYES_EV_HUNG_UP, "no answer to ATH");
			hayes_start(h, now_ms);
		}
		return;
	default:
		h->due = UINT64_MAX;
		return;
	}
}

enum hayes_state hayes_state(const struct hayes *h)
{
	return h->state;
}

const char *hayes_state_name(enum hayes_state s)
{
	static const char *const names[] = {"init",   "idle",	    "dialing", "answering",
					    "online", "hanging-up", "failed"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

uint32_t hayes_connect_rate(const struct hayes *h)
{
	return h->rate;
}
