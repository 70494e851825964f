/* tern run: the relay daemon, which binds the link engine to libev, TCP and the API socket. */
#pragma once

#include <stddef.h>

#include "relay/node.h"

#define DAEMON_MAX_LISTEN 64

struct daemon_options {
	const char *listen[DAEMON_MAX_LISTEN]; /* HOST:PORT from the command line */
	size_t n_listen;
	const char *config_path; /* tern.conf; NULL: the node home's, if it exists */
	bool log_level_set;	 /* --log-level given: it wins over the file's */
};

/*
 * Runs until SIGTERM or SIGINT on node n (opened by the caller, closed by it after).
 * Returns 0 after a clean stop, or -errno when it could not start (the reason is logged).
 */
int daemon_run(struct node *n, const struct daemon_options *opt);
