/* A serial port as the daemon uses it: opened as a spec says, non-blocking, with an fd. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "transports/serial.h"

struct serial_port;

/*
 * Opens the device and sets it up, non-blocking. 0, or -errno (-ENOENT no such device,
 * -EACCES, -EBUSY, -EINVAL a setting the device refuses, -EIO); *why (if not NULL) gets
 * the library's words for a log line (a static buffer, valid until the next call).
 */
int serial_port_open(const struct serial_spec *s, struct serial_port **out, const char **why);
void serial_port_close(struct serial_port *p); /* serial_port_close(NULL) is a no-op */
/* The descriptor to watch for readability. */
int serial_port_fd(const struct serial_port *p);
/* What is there now (0: nothing), or -errno; -EIO when the other end went away. */
ssize_t serial_port_read(struct serial_port *p, void *buf, size_t len);
/* What the port takes now (0: its buffer is full), or -errno. */
ssize_t serial_port_write(struct serial_port *p, const void *buf, size_t len);
