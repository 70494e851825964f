/* The SBD modem model: the AT command interpreter, the MO and MT buffers, transfers and sessions.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim/sbd_model.h"

#define US_PER_MS 1000u
#define US_PER_S  1000000u

/* The numeric forms of the two result codes (ATV0), as V.250 numbers them. */
#define CODE_OK	   0
#define CODE_ERROR 4

/* What one command of a line did. */
enum cmd {
	CMD_OK,	     /* done; the next command of the line may follow */
	CMD_ERROR,   /* refused: the line ends with ERROR */
	CMD_PENDING, /* entered a phase (transfer, session) that gives the final result later */
};

uint16_t sbd_checksum(const uint8_t *buf, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += buf[i];
	return (uint16_t)sum;
}

static bool imei_ok(const char *s)
{
	size_t n = strnlen(s, SBD_IMEI_LEN + 1);
	if (n != SBD_IMEI_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool params_ok(const struct sbd_params *p)
{
	if (!imei_ok(p->imei) || p->csq > SBD_CSQ_MAX || p->session_ms > SBD_SESSION_MS_MAX ||
	    p->wb_timeout_s < 1 || p->wb_timeout_s > SBD_WB_TIMEOUT_MAX ||
	    p->nfail > SBD_FAIL_MAX || (p->nfail && !p->fail) ||
	    !(p->fail_rate >= 0.0 && p->fail_rate <= 1.0))
		return false;
	for (size_t i = 0; i < p->nfail; i++) {
		if (p->fail[i].session == 0 || p->fail[i].status < 5)
			return false;
		for (size_t j = 0; j < i; j++)
			if (p->fail[j].session == p->fail[i].session)
				return false;
	}
	return true;
}

/* The settings ATZ and AT&F restore; the buffers and sequence numbers survive them. */
static void reset_settings(struct sbd_model *m)
{
	m->echo = true;
	m->verbose = true;
	m->quiet = false;
}

int sbd_model_init(struct sbd_model *m, const struct sbd_params *p)
{
	memset(m, 0, sizeof(*m));
	if (!params_ok(p))
		return -EINVAL;
	m->p = *p;
	if (p->nfail)
		memcpy(m->fail, p->fail, p->nfail * sizeof(*p->fail));
	m->p.fail = NULL; /* the copy in m->fail is the one used: m may be moved */
	sim_rng_seed(&m->rng, p->seed, 0);
	m->state = SBD_ST_COMMAND;
	reset_settings(m);
	m->mta = 1; /* ring indications on: the manual's default */
	m->momsn = p->momsn;
	return 0;
}

/* Output. The caller of input keeps SBD_RESPONSE_MAX free, so a response always fits. */

static void out_bytes(struct sbd_model *m, const void *buf, size_t n)
{
	const uint8_t *b = buf;
	for (size_t i = 0; i < n && m->out_len < SBD_OUT_MAX; i++) {
		m->out[(m->out_head + m->out_len) % SBD_OUT_MAX] = b[i];
		m->out_len++;
	}
}

static void out_str(struct sbd_model *m, const char *s)
{
	out_bytes(m, s, strlen(s));
}

/* An information response: framed by CR LF in verbose mode, ended by one in numeric mode. */
static void info(struct sbd_model *m, const char *text)
{
	if (m->verbose)
		out_str(m, "\r\n");
	out_str(m, text);
	out_str(m, "\r\n");
}

/* A final result code, unless ATQ1 suppressed them. */
static void result(struct sbd_model *m, bool ok)
{
	char num[8];
	if (m->quiet)
		return;
	if (m->verbose) {
		out_str(m, ok ? "\r\nOK\r\n" : "\r\nERROR\r\n");
		return;
	}
	snprintf(num, sizeof(num), "%d\r", ok ? CODE_OK : CODE_ERROR);
	out_str(m, num);
}

static void push_event(struct sbd_model *m, const struct sbd_event *ev)
{
	/* At most MO, MT_WANTED and SESSION are ever pending: the array holds them. */
	if (m->ev_count == SBD_EVENTS_MAX)
		return;
	m->ev[(m->ev_head + m->ev_count) % SBD_EVENTS_MAX] = *ev;
	m->ev_count++;
}

/* Transfers: SBDWB and SBDWT without text. */

static void start_transfer(struct sbd_model *m, enum sbd_state st, size_t need, uint64_t now)
{
	m->state = st;
	m->xfer_len = 0;
	m->xfer_need = need;
	m->xfer_overflow = false;
	m->deadline_us = now + (uint64_t)m->p.wb_timeout_s * US_PER_S;
	/* The manual gives READY's bytes exactly: 52 45 41 44 59 0D 0A, no leading CR LF. */
	out_str(m, "READY\r\n");
}

static void set_mo(struct sbd_model *m, const uint8_t *buf, size_t n)
{
	memcpy(m->mo, buf, n);
	m->mo_len = n;
}

static void finish_wb(struct sbd_model *m)
{
	size_t n = m->xfer_need;
	uint16_t want = (uint16_t)(m->xfer[n] << 8 | m->xfer[n + 1]);
	m->state = SBD_ST_COMMAND;
	if (sbd_checksum(m->xfer, n) != want) {
		/* The buffer keeps what it held: the manual says nothing of clearing it. */
		m->stats.wb_checksum++;
		info(m, "2");
	} else {
		set_mo(m, m->xfer, n);
		m->stats.wb_ok++;
		info(m, "0");
	}
	result(m, true);
}

static void wb_byte(struct sbd_model *m, uint8_t c)
{
	m->xfer[m->xfer_len++] = c;
	if (m->xfer_len == m->xfer_need + 2)
		finish_wb(m);
}

static void wt_byte(struct sbd_model *m, uint8_t c)
{
	if (c != '\r') {
		if (m->xfer_len < SBD_MO_MAX)
			m->xfer[m->xfer_len++] = c;
		else
			m->xfer_overflow = true;
		return;
	}
	m->state = SBD_ST_COMMAND;
	/* The manual gives no code for a text too long or empty: ERROR, as for SBDWT=. */
	if (m->xfer_overflow || m->xfer_len == 0) {
		result(m, false);
		return;
	}
	set_mo(m, m->xfer, m->xfer_len);
	info(m, "0");
	result(m, true);
}

static void transfer_timeout(struct sbd_model *m)
{
	if (m->state == SBD_ST_WB_DATA)
		m->stats.wb_timeout++;
	m->state = SBD_ST_COMMAND;
	/* RockBLOCK's reference: "1" is the one SBDWB response that no OK follows. */
	info(m, "1");
}

/* Sessions: SBDIX and SBDIXA. */

static const struct sbd_fail *scripted(const struct sbd_model *m, uint32_t session)
{
	for (size_t i = 0; i < m->p.nfail; i++)
		if (m->fail[i].session == session)
			return &m->fail[i];
	return NULL;
}

static void start_session(struct sbd_model *m, uint64_t now)
{
	/* Drawn whatever else decides, so session k meets the same draw in every run. */
	double u = sim_rng_unit(&m->rng);
	const struct sbd_fail *f;

	m->session++;
	m->session_start_us = now;
	m->deadline_us = now + (uint64_t)m->p.session_ms * US_PER_MS;
	m->state = SBD_ST_SESSION;
	/* "The mobile terminated buffer will be cleared when an SBD session is initiated." */
	m->mt_full = false;
	m->mt_len = 0;
	m->planned_status = 0;
	m->planned_why = SBD_WHY_NONE;
	if (m->p.csq == 0) {
		m->planned_status = SBD_STATUS_NO_SVC;
		m->planned_why = SBD_WHY_NO_SIGNAL;
	} else if ((f = scripted(m, m->session))) {
		m->planned_status = f->status;
		m->planned_why = SBD_WHY_SCRIPT;
	} else if (u < m->p.fail_rate) {
		m->planned_status = SBD_STATUS_NO_SVC;
		m->planned_why = SBD_WHY_RATE;
	}
}

static void end_session(struct sbd_model *m, const struct sbd_result *r, enum sbd_why why)
{
	char line[96];
	struct sbd_event ev = {.type = SBD_EV_SESSION,
			       .session = m->session,
			       .momsn = r->momsn,
			       .result = *r,
			       .why = why,
			       .start_us = m->session_start_us,
			       .end_us = m->deadline_us};

	m->state = SBD_ST_COMMAND;
	m->stats.sessions++;
	if (r->mo_status >= 5)
		m->stats.sessions_failed++;
	snprintf(line, sizeof(line), "+SBDIX: %u, %u, %u, %u, %u, %u", r->mo_status, r->momsn,
		 r->mt_status, r->mtmsn, r->mt_len, (unsigned)r->mt_queued);
	info(m, line);
	result(m, true);
	push_event(m, &ev);
}

/* A failed session: MOMSN stays, and the mailbox check is reported as failed too (MT 2). */
static void fail_session(struct sbd_model *m, uint8_t status, enum sbd_why why)
{
	struct sbd_result r = {.mo_status = status, .momsn = m->momsn, .mt_status = 2};
	end_session(m, &r, why);
}

/* The session's time on the air is over: a failure ends it, a success asks the gateway. */
static void session_over(struct sbd_model *m)
{
	if (m->planned_status >= 5) {
		fail_session(m, m->planned_status, m->planned_why);
		return;
	}
	m->state = SBD_ST_GATEWAY;
	if (m->mo_len) {
		struct sbd_event ev = {.type = SBD_EV_MO,
				       .session = m->session,
				       .momsn = m->momsn,
				       .mo = m->mo,
				       .mo_len = m->mo_len,
				       .start_us = m->session_start_us,
				       .end_us = m->deadline_us};
		push_event(m, &ev);
	}
	struct sbd_event want = {.type = SBD_EV_MT_WANTED,
				 .session = m->session,
				 .momsn = m->momsn,
				 .start_us = m->session_start_us,
				 .end_us = m->deadline_us};
	push_event(m, &want);
}

int sbd_model_gateway_reply(struct sbd_model *m, const struct sbd_gateway_reply *r)
{
	struct sbd_result res = {.momsn = m->momsn};
	int ret = 0;

	if (m->state != SBD_ST_GATEWAY)
		return -EINVAL;
	if (r->failed) {
		fail_session(m, SBD_STATUS_GW_DOWN, SBD_WHY_GATEWAY);
		return 0;
	}
	if (m->mo_len) {
		m->stats.mo_messages++;
		m->stats.mo_bytes += m->mo_len;
	}
	/* Every session that completes counts, a mailbox check with an empty buffer too. */
	m->momsn++;
	if (r->mt && (r->mt_len == 0 || r->mt_len > SBD_MT_MAX || !r->mt_buf)) {
		res.mo_status = SBD_STATUS_MT_LARGE;
		res.mt_status = 2;
		ret = -EMSGSIZE;
	} else if (r->mt) {
		memcpy(m->mt, r->mt_buf, r->mt_len);
		m->mt_len = r->mt_len;
		m->mt_full = true;
		m->mt_msn = ++m->gateway_msn;
		m->stats.mt_messages++;
		m->stats.mt_bytes += r->mt_len;
		res.mt_status = 1;
		res.mtmsn = m->mt_msn;
		res.mt_len = (uint16_t)r->mt_len;
	}
	res.mt_queued = r->mt_queued;
	end_session(m, &res, SBD_WHY_NONE);
	return ret;
}

/* Commands. Each takes its parameter text (after '=', or NULL) and its form. */

enum form {
	FORM_EXEC, /* AT+X */
	FORM_SET,  /* AT+X=... */
	FORM_READ, /* AT+X? */
	FORM_TEST, /* AT+X=? */
};

/* A whole decimal number in [0, max], nothing else. */
static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

static enum cmd cmd_sbdwb(struct sbd_model *m, enum form f, const char *arg, bool last,
			  uint64_t now)
{
	unsigned long n;
	size_t digits = strspn(arg, "0123456789");
	if (f != FORM_SET || digits == 0 || arg[digits])
		return CMD_ERROR;
	/* Any length out of 1..340 is the modem's "3", not a syntax error; READY never comes. */
	if (!parse_num(arg, SBD_MO_MAX, &n) || n < 1) {
		m->stats.wb_size++;
		info(m, "3");
		return CMD_OK;
	}
	if (!last)
		return CMD_ERROR;
	start_transfer(m, SBD_ST_WB_DATA, n, now);
	return CMD_PENDING;
}

static enum cmd cmd_sbdwt(struct sbd_model *m, enum form f, const char *arg, bool last,
			  uint64_t now)
{
	size_t n;
	if (f == FORM_EXEC) {
		if (!last)
			return CMD_ERROR;
		start_transfer(m, SBD_ST_WT_TEXT, 0, now);
		return CMD_PENDING;
	}
	if (f != FORM_SET)
		return CMD_ERROR;
	n = strlen(arg);
	if (n == 0 || n > SBD_TEXT_LINE_MAX)
		return CMD_ERROR;
	set_mo(m, (const uint8_t *)arg, n);
	return CMD_OK;
}

/* {2-byte length} {message} {2-byte checksum}, high bytes first; all zero when empty. */
static enum cmd cmd_sbdrb(struct sbd_model *m, enum form f)
{
	size_t n = m->mt_full ? m->mt_len : 0;
	uint16_t sum = sbd_checksum(m->mt, n);
	uint8_t head[2] = {(uint8_t)(n >> 8), (uint8_t)n};
	uint8_t tail[2] = {(uint8_t)(sum >> 8), (uint8_t)sum};
	if (f != FORM_EXEC)
		return CMD_ERROR;
	out_bytes(m, head, 2);
	out_bytes(m, m->mt, n);
	out_bytes(m, tail, 2);
	return CMD_OK;
}

static enum cmd cmd_sbdrt(struct sbd_model *m, enum form f)
{
	if (f != FORM_EXEC)
		return CMD_ERROR;
	if (m->verbose)
		out_str(m, "\r\n");
	out_str(m, "+SBDRT:\r\n");
	out_bytes(m, m->mt, m->mt_full ? m->mt_len : 0);
	out_str(m, "\r\n");
	return CMD_OK;
}

static enum cmd cmd_sbdix(struct sbd_model *m, enum form f, bool last, uint64_t now)
{
	/* AT+SBDIX=<location> is accepted; a fake satellite has no use for where it is. */
	if ((f != FORM_EXEC && f != FORM_SET) || !last)
		return CMD_ERROR;
	start_session(m, now);
	return CMD_PENDING;
}

/* SBDD0 clears MO, SBDD1 MT, SBDD2 both; a bare SBDD is taken as SBDD0. */
static enum cmd cmd_sbdd(struct sbd_model *m, enum form f, const char *digits)
{
	if (f != FORM_EXEC || (digits[0] && (digits[1] || digits[0] < '0' || digits[0] > '2')))
		return CMD_ERROR;
	if (digits[0] != '1')
		m->mo_len = 0;
	if (digits[0] == '1' || digits[0] == '2') {
		m->mt_full = false;
		m->mt_len = 0;
	}
	info(m, "0");
	return CMD_OK;
}

static enum cmd cmd_sbds(struct sbd_model *m, enum form f)
{
	char line[64];
	if (f != FORM_EXEC)
		return CMD_ERROR;
	/* MTMSN is -1 when the MT buffer is empty, as the manual says. */
	snprintf(line, sizeof(line), "+SBDS: %d, %u, %d, %ld", m->mo_len > 0, m->momsn, m->mt_full,
		 m->mt_full ? (long)m->mt_msn : -1L);
	info(m, line);
	return CMD_OK;
}

/* A setting 0..max with set, read and test forms: SBDMTA, SBDAREG. */
static enum cmd cmd_setting(struct sbd_model *m, enum form f, const char *name, const char *arg,
			    uint8_t *val, unsigned long max)
{
	char line[64];
	unsigned long v;
	switch (f) {
	case FORM_SET:
		if (!parse_num(arg, max, &v))
			return CMD_ERROR;
		*val = (uint8_t)v;
		return CMD_OK;
	case FORM_READ:
		snprintf(line, sizeof(line), "+%s:%u", name, *val);
		info(m, line);
		return CMD_OK;
	case FORM_TEST:
		snprintf(line, sizeof(line), "+%s:(0-%lu)", name, max);
		info(m, line);
		return CMD_OK;
	default:
		return CMD_ERROR;
	}
}

static enum cmd cmd_csq(struct sbd_model *m, enum form f, const char *name)
{
	char line[32];
	if (f == FORM_TEST)
		snprintf(line, sizeof(line), "+%s:(0-%u)", name, SBD_CSQ_MAX);
	else if (f == FORM_EXEC)
		snprintf(line, sizeof(line), "+%s:%u", name, m->p.csq);
	else
		return CMD_ERROR;
	info(m, line);
	return CMD_OK;
}

/*
 * One extended command: name (upper case, digits allowed, as in SBDD0), its form and argument;
 * last says whether it ends the line, as a command that starts a phase must: the phase owns what
 * comes next on the wire.
 */
static enum cmd extended(struct sbd_model *m, const char *name, enum form f, const char *arg,
			 bool last, uint64_t now)
{
	if (!strcmp(name, "CGSN") || !strcmp(name, "GSN")) {
		if (f != FORM_EXEC)
			return CMD_ERROR;
		info(m, m->p.imei);
		return CMD_OK;
	}
	if (!strcmp(name, "CSQ") || !strcmp(name, "CSQF"))
		return cmd_csq(m, f, name);
	if (!strcmp(name, "SBDWB"))
		return cmd_sbdwb(m, f, arg, last, now);
	if (!strcmp(name, "SBDWT"))
		return cmd_sbdwt(m, f, arg, last, now);
	if (!strcmp(name, "SBDRB"))
		return cmd_sbdrb(m, f);
	if (!strcmp(name, "SBDRT"))
		return cmd_sbdrt(m, f);
	if (!strcmp(name, "SBDIX") || !strcmp(name, "SBDIXA"))
		return cmd_sbdix(m, f, last, now);
	if (!strncmp(name, "SBDD", 4) && strspn(name + 4, "0123456789") == strlen(name + 4))
		return cmd_sbdd(m, f, name + 4);
	if (!strcmp(name, "SBDS"))
		return cmd_sbds(m, f);
	if (!strcmp(name, "SBDC")) {
		if (f != FORM_EXEC)
			return CMD_ERROR;
		m->momsn = 0;
		info(m, "0");
		return CMD_OK;
	}
	if (!strcmp(name, "SBDMTA"))
		return cmd_setting(m, f, name, arg, &m->mta, 1);
	if (!strcmp(name, "SBDAREG"))
		return cmd_setting(m, f, name, arg, &m->areg, 4);
	return CMD_ERROR;
}

/* One basic command: a letter (or & and a letter) and its value, -1 when none was given. */
static enum cmd basic(struct sbd_model *m, char amp, char c, long v)
{
	if (!amp) {
		switch (c) {
		case 'E':
			if (v > 1)
				return CMD_ERROR;
			m->echo = v == 1;
			return CMD_OK;
		case 'V':
			if (v > 1)
				return CMD_ERROR;
			m->verbose = v == 1;
			return CMD_OK;
		case 'Q':
			if (v > 1)
				return CMD_ERROR;
			m->quiet = v == 1;
			return CMD_OK;
		case 'Z':
			if (v > 1)
				return CMD_ERROR;
			reset_settings(m);
			return CMD_OK;
		default:
			return CMD_ERROR;
		}
	}
	switch (c) {
	case 'F':
		if (v > 0)
			return CMD_ERROR;
		reset_settings(m);
		return CMD_OK;
	case 'K': /* flow control: a pty has none to set */
		return v == -1 || v == 0 || v == 3 || v == 4 || v == 6 ? CMD_OK : CMD_ERROR;
	case 'D': /* DTR: a pty has none */
		return v <= 3 ? CMD_OK : CMD_ERROR;
	case 'W': /* store or pick a profile: nothing here survives a restart anyway */
	case 'Y':
		return v <= 1 ? CMD_OK : CMD_ERROR;
	default:
		return CMD_ERROR;
	}
}

/* Runs the commands after "AT" in s; gives the line's final result unless a command did. */
static void run_line(struct sbd_model *m, char *s, uint64_t now)
{
	enum cmd r = CMD_OK;
	while (*s && r == CMD_OK) {
		if (*s == ';') {
			s++;
			continue;
		}
		if (*s == '+') {
			char name[16];
			size_t n = 0;
			bool long_name = false;
			enum form f = FORM_EXEC;
			char *arg = s + strlen(s); /* "" */
			s++;
			while (*s && *s != '=' && *s != '?' && *s != ';') {
				if (n + 1 < sizeof(name))
					name[n++] = (char)toupper((unsigned char)*s);
				else
					long_name = true;
				s++;
			}
			name[n] = 0;
			if (*s == '?') {
				f = FORM_READ;
				s++;
			} else if (s[0] == '=' && s[1] == '?') {
				f = FORM_TEST;
				s += 2;
			} else if (*s == '=') {
				f = FORM_SET;
				arg = ++s;
				/* SBDWT's text is the rest of the line, ';' and all. */
				if (strcmp(name, "SBDWT")) {
					s += strcspn(s, ";");
					if (*s)
						*s++ = 0;
				} else {
					s += strlen(s);
				}
			}
			if (*s == ';')
				s++;
			r = long_name ? CMD_ERROR : extended(m, name, f, arg, !*s, now);
			continue;
		}
		char amp = 0, c;
		long v = -1;
		if (*s == '&')
			amp = *s++;
		c = (char)toupper((unsigned char)*s);
		if (!c) {
			r = CMD_ERROR;
			break;
		}
		s++;
		if (isdigit((unsigned char)*s)) {
			v = 0;
			while (isdigit((unsigned char)*s) && v < 1000)
				v = v * 10 + (*s++ - '0');
		}
		r = basic(m, amp, c, v);
	}
	if (r == CMD_OK || r == CMD_ERROR)
		result(m, r == CMD_OK);
}

/* A whole line came (CR): everything before "AT" is ignored, as V.250 has it. */
static void command_line(struct sbd_model *m, uint64_t now)
{
	char *s = m->line;
	bool overflow = m->line_overflow;
	m->line[m->line_len] = 0;
	m->line_len = 0;
	m->line_overflow = false;
	while (*s && !((s[0] == 'A' || s[0] == 'a') && (s[1] == 'T' || s[1] == 't')))
		s++;
	if (!*s)
		return;
	if (overflow) {
		result(m, false);
		return;
	}
	run_line(m, s + 2, now);
}

static void command_byte(struct sbd_model *m, uint8_t c, uint64_t now)
{
	if (m->echo)
		out_bytes(m, &c, 1);
	if (c == '\r') {
		command_line(m, now);
	} else if (c == '\b' || c == 0x7f) {
		if (m->line_len)
			m->line_len--;
	} else if (c == '\n' || c == 0) {
		/* A DTE that ends lines with CR LF leaves the LF here; NUL would cut the line. */
	} else if (m->line_len + 1 < SBD_LINE_MAX) {
		m->line[m->line_len++] = (char)c;
	} else {
		m->line_overflow = true;
	}
}

void sbd_model_advance(struct sbd_model *m, uint64_t now_us)
{
	if (now_us < m->deadline_us)
		return;
	switch (m->state) {
	case SBD_ST_WB_DATA:
	case SBD_ST_WT_TEXT:
		transfer_timeout(m);
		break;
	case SBD_ST_SESSION:
		session_over(m);
		break;
	default:
		break;
	}
}

uint64_t sbd_model_next_us(const struct sbd_model *m)
{
	switch (m->state) {
	case SBD_ST_WB_DATA:
	case SBD_ST_WT_TEXT:
	case SBD_ST_SESSION:
		return m->deadline_us;
	default:
		return UINT64_MAX;
	}
}

size_t sbd_model_input(struct sbd_model *m, const uint8_t *buf, size_t n, uint64_t now_us)
{
	size_t i;
	sbd_model_advance(m, now_us);
	for (i = 0; i < n; i++) {
		switch (m->state) {
		case SBD_ST_SESSION:
		case SBD_ST_GATEWAY:
			/* The DTE must wait for +SBDIX: the modem reads nothing meanwhile. */
			break;
		case SBD_ST_WB_DATA:
			/* Binary: no echo, and CR is data; a full transfer adds a short result. */
			if (SBD_OUT_MAX - m->out_len < SBD_RESPONSE_MAX)
				return i;
			wb_byte(m, buf[i]);
			break;
		case SBD_ST_WT_TEXT:
			if (SBD_OUT_MAX - m->out_len < SBD_RESPONSE_MAX)
				return i;
			wt_byte(m, buf[i]);
			break;
		case SBD_ST_COMMAND:
			if (SBD_OUT_MAX - m->out_len < SBD_RESPONSE_MAX)
				return i;
			command_byte(m, buf[i], now_us);
			break;
		}
	}
	return i;
}

size_t sbd_model_output(struct sbd_model *m, uint8_t *out, size_t cap)
{
	size_t n = m->out_len < cap ? m->out_len : cap;
	for (size_t i = 0; i < n; i++)
		out[i] = m->out[(m->out_head + i) % SBD_OUT_MAX];
	m->out_head = (m->out_head + n) % SBD_OUT_MAX;
	m->out_len -= n;
	return n;
}

size_t sbd_model_output_len(const struct sbd_model *m)
{
	return m->out_len;
}

bool sbd_model_next_event(struct sbd_model *m, struct sbd_event *ev)
{
	if (!m->ev_count)
		return false;
	*ev = m->ev[m->ev_head];
	m->ev_head = (m->ev_head + 1) % SBD_EVENTS_MAX;
	m->ev_count--;
	return true;
}

struct sbd_stats sbd_model_stats(const struct sbd_model *m)
{
	return m->stats;
}
