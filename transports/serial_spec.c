/* Serial line specs: parsed from the CLI and tern.conf, kept in the store as text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transports/serial.h"

void serial_spec_default(struct serial_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->baud = 19200;
	s->data_bits = 8;
	s->parity = 'N';
	s->stop_bits = 1;
	s->flow = SERIAL_FLOW_NONE;
}

bool serial_spec_set_path(struct serial_spec *s, const char *path, const char **why)
{
	/* The text form separates fields with commas; a device name has none. */
	if (path[0] != '/' || strlen(path) > SERIAL_PATH_MAX || strchr(path, ',') ||
	    strpbrk(path, " \t\r\n")) {
		*why = "give the device's absolute path (/dev/ttyUSB0), without commas or spaces";
		return false;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	return true;
}

bool serial_spec_set_baud(struct serial_spec *s, const char *baud, const char **why)
{
	char *end;
	unsigned long v = strtoul(baud, &end, 10);
	if (baud[0] < '0' || baud[0] > '9' || *end || v < 50 || v > 4000000) {
		*why = "give the line's rate in baud, 50 to 4000000 (e.g. 9600, 19200, 115200)";
		return false;
	}
	s->baud = (uint32_t)v;
	return true;
}

bool serial_spec_set_parity(struct serial_spec *s, const char *parity, const char **why)
{
	if (!strcmp(parity, "none"))
		s->parity = 'N';
	else if (!strcmp(parity, "even"))
		s->parity = 'E';
	else if (!strcmp(parity, "odd"))
		s->parity = 'O';
	else {
		*why = "give none, even or odd";
		return false;
	}
	return true;
}

bool serial_spec_set_flow(struct serial_spec *s, const char *flow, const char **why)
{
	if (!strcmp(flow, "none"))
		s->flow = SERIAL_FLOW_NONE;
	else if (!strcmp(flow, "rtscts"))
		s->flow = SERIAL_FLOW_RTSCTS;
	else if (!strcmp(flow, "dtrdsr"))
		s->flow = SERIAL_FLOW_DTRDSR;
	else if (!strcmp(flow, "xonxoff")) {
		/* The frames are binary: XON and XOFF bytes in them would be taken as signals. */
		*why = "xonxoff would take 0x11 and 0x13 bytes of the frames as signals: give "
		       "rtscts, dtrdsr or none";
		return false;
	} else {
		*why = "give none, rtscts or dtrdsr";
		return false;
	}
	return true;
}

bool serial_spec_set_framing(struct serial_spec *s, const char *f, const char **why)
{
	if (strlen(f) != 3 || (f[0] != '7' && f[0] != '8') || !strchr("NEO", f[1]) || !f[1] ||
	    (f[2] != '1' && f[2] != '2')) {
		*why = "give data bits, parity and stop bits, as 8N1, 8E1, 7E1 or 8N2";
		return false;
	}
	/* Seven data bits would strip the frames' high bits. */
	if (f[0] == '7') {
		*why = "the frames are binary and need 8 data bits: give 8N1, 8E1, 8O1 or 8N2";
		return false;
	}
	s->data_bits = (uint8_t)(f[0] - '0');
	s->parity = f[1];
	s->stop_bits = (uint8_t)(f[2] - '0');
	return true;
}

static const char *flow_name(enum serial_flow f)
{
	return f == SERIAL_FLOW_RTSCTS ? "rtscts" : f == SERIAL_FLOW_DTRDSR ? "dtrdsr" : "none";
}

void serial_spec_format(const struct serial_spec *s, char *buf, size_t len)
{
	snprintf(buf, len, "serial:%s,%u,%u%c%u,%s", s->path, (unsigned)s->baud,
		 (unsigned)s->data_bits, s->parity, (unsigned)s->stop_bits, flow_name(s->flow));
}

bool serial_spec_is(const char *text)
{
	return strncmp(text, "serial:", 7) == 0;
}

bool serial_spec_parse(const char *text, struct serial_spec *out, const char **why)
{
	char buf[SERIAL_SPEC_TEXT_MAX + 1], *field[4];
	if (!serial_spec_is(text) || strlen(text) > SERIAL_SPEC_TEXT_MAX) {
		*why = "not serial:PATH,BAUD,FRAMING,FLOW";
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", text + 7);
	size_t n = 0;
	for (char *p = buf; p; n++) {
		if (n == 4) {
			n++; /* a fifth field: refused, not ignored */
			break;
		}
		field[n] = p;
		p = strchr(p, ',');
		if (p)
			*p++ = '\0';
	}
	struct serial_spec s;
	serial_spec_default(&s);
	if (n != 4) {
		*why = "not serial:PATH,BAUD,FRAMING,FLOW";
		return false;
	}
	if (!serial_spec_set_path(&s, field[0], why) || !serial_spec_set_baud(&s, field[1], why) ||
	    !serial_spec_set_framing(&s, field[2], why) || !serial_spec_set_flow(&s, field[3], why))
		return false;
	*out = s;
	return true;
}

unsigned serial_spec_bits_per_byte(const struct serial_spec *s)
{
	return 1u + s->data_bits + (s->parity != 'N') + s->stop_bits;
}

uint32_t serial_spec_rate(const struct serial_spec *s)
{
	uint32_t r = s->baud / serial_spec_bits_per_byte(s);
	return r ? r : 1;
}
