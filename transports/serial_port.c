/* Serial ports through libserialport (the only file that includes it), or termios for a pty. */
#include <errno.h>
#include <fcntl.h>
#include <libserialport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "transports/serial_port.h"

struct serial_port {
	struct sp_port *sp; /* NULL: a pseudo-terminal, driven through termios */
	int fd;
};

/* ---- the port ---- */

static char last_why[256];

static int fail(enum sp_return r, const char *what, const char **why)
{
	int err = r == SP_ERR_FAIL ? sp_last_error_code() : r == SP_ERR_MEM ? ENOMEM : EINVAL;
	if (r == SP_ERR_FAIL) {
		char *msg = sp_last_error_message();
		snprintf(last_why, sizeof(last_why), "%s: %s", what, msg ? msg : strerror(err));
		sp_free_error_message(msg);
	} else {
		snprintf(last_why, sizeof(last_why), "%s: %s", what,
			 r == SP_ERR_SUPP ? "not supported by this device" : strerror(err));
		if (r == SP_ERR_SUPP)
			err = EINVAL;
	}
	if (why)
		*why = last_why;
	return err > 0 ? -err : -EIO;
}

static speed_t termios_speed(uint32_t baud)
{
	static const struct {
		uint32_t baud;
		speed_t speed;
	} speeds[] = {{50, B50},	 {300, B300},	     {1200, B1200},	{2400, B2400},
		      {4800, B4800},	 {9600, B9600},	     {19200, B19200},	{38400, B38400},
		      {57600, B57600},	 {115200, B115200},  {230400, B230400}, {460800, B460800},
		      {921600, B921600}, {4000000, B4000000}};
	for (size_t i = 0; i < sizeof(speeds) / sizeof(speeds[0]); i++)
		if (speeds[i].baud >= baud)
			return speeds[i].speed;
	return B4000000;
}

/*
 * libserialport 0.1.1 refuses pseudo-terminals (it looks the device up in sysfs; support
 * is an unmerged upstream pull request), and the tests and the line emulator run on
 * them: a pty is opened and set raw through termios. A pty has no rate or control lines,
 * so the settings are those a terminal takes.
 */
static int open_pty(const struct serial_spec *s, struct serial_port *p, const char **why)
{
	p->fd = open(s->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	struct termios t;
	int ret = p->fd < 0 ? -errno : 0;
	if (ret == 0 && tcgetattr(p->fd, &t) < 0)
		ret = -errno;
	if (ret == 0) {
		cfmakeraw(&t);
		cfsetspeed(&t, termios_speed(s->baud));
		t.c_cflag |= CLOCAL | CREAD;
		t.c_cflag &= ~(tcflag_t)(PARENB | PARODD | CSTOPB | CRTSCTS);
		t.c_cflag |= s->parity != 'N' ? PARENB : 0;
		t.c_cflag |= s->parity == 'O' ? PARODD : 0;
		t.c_cflag |= s->stop_bits == 2 ? CSTOPB : 0;
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(p->fd, TCSANOW, &t) < 0)
			ret = -errno;
	}
	if (ret < 0) {
		snprintf(last_why, sizeof(last_why), "%s: %s", s->path, strerror(-ret));
		if (why)
			*why = last_why;
	}
	return ret;
}

int serial_port_open(const struct serial_spec *s, struct serial_port **out, const char **why)
{
	struct serial_port *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = -1;
	enum sp_return r = sp_get_port_by_name(s->path, &p->sp);
	int ret = 0;
	if (r == SP_ERR_ARG) {
		p->sp = NULL;
		ret = open_pty(s, p, why);
		goto out;
	}
	if (r != SP_OK) {
		ret = fail(r, "no such port", why);
		goto out;
	}
	if ((r = sp_open(p->sp, SP_MODE_READ_WRITE)) != SP_OK) {
		ret = fail(r, "open", why);
		goto out;
	}
	enum sp_parity parity = s->parity == 'E'   ? SP_PARITY_EVEN
				: s->parity == 'O' ? SP_PARITY_ODD
						   : SP_PARITY_NONE;
	enum sp_flowcontrol flow = s->flow == SERIAL_FLOW_RTSCTS   ? SP_FLOWCONTROL_RTSCTS
				   : s->flow == SERIAL_FLOW_DTRDSR ? SP_FLOWCONTROL_DTRDSR
								   : SP_FLOWCONTROL_NONE;
	if ((r = sp_set_baudrate(p->sp, (int)s->baud)) != SP_OK) {
		ret = fail(r, "baud rate", why);
		goto out;
	}
	if ((r = sp_set_bits(p->sp, s->data_bits)) != SP_OK ||
	    (r = sp_set_parity(p->sp, parity)) != SP_OK ||
	    (r = sp_set_stopbits(p->sp, s->stop_bits)) != SP_OK) {
		ret = fail(r, "framing", why);
		goto out;
	}
	if ((r = sp_set_flowcontrol(p->sp, flow)) != SP_OK) {
		ret = fail(r, "flow control", why);
		goto out;
	}
	if ((r = sp_get_port_handle(p->sp, &p->fd)) != SP_OK) {
		ret = fail(r, "handle", why);
		goto out;
	}
out:
	if (ret < 0) {
		serial_port_close(p);
		return ret;
	}
	*out = p;
	return 0;
}

void serial_port_close(struct serial_port *p)
{
	if (!p)
		return;
	if (p->sp) {
		sp_close(p->sp);
		sp_free_port(p->sp);
	} else if (p->fd >= 0) {
		close(p->fd);
	}
	free(p);
}

int serial_port_fd(const struct serial_port *p)
{
	return p->fd;
}

/* A pty's read or write: what went, 0 for none now, or -errno (-EIO: the other end left). */
static ssize_t pty_io(ssize_t n)
{
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
}

ssize_t serial_port_read(struct serial_port *p, void *buf, size_t len)
{
	if (!p->sp)
		return pty_io(read(p->fd, buf, len));
	enum sp_return r = sp_nonblocking_read(p->sp, buf, len);
	if (r >= 0)
		return r;
	return fail(r, "read", NULL);
}

ssize_t serial_port_write(struct serial_port *p, const void *buf, size_t len)
{
	if (!p->sp)
		return pty_io(write(p->fd, buf, len));
	enum sp_return r = sp_nonblocking_write(p->sp, buf, len);
	if (r >= 0)
		return r;
	return fail(r, "write", NULL);
}
