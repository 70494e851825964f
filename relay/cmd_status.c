/* tern status: what the running daemon says of its links, queues and counters. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay/cli.h"

/*
 * Reads one value of a flat JSON object written by the daemon (daemon_api.c's status): the
 * string or the bare token after "key": within [p, end). Enough for our own output, which
 * escapes nothing in the fields read here (names, numbers, times, addresses).
 */
static void field(const char *p, const char *end, const char *key, char *out, size_t len)
{
	char pat[48];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	out[0] = '\0';
	const char *at = strstr(p, pat);
	if (!at || at >= end)
		return;
	at += strlen(pat);
	bool quoted = *at == '"';
	at += quoted;
	size_t n = 0;
	while (at < end && n + 1 < len && (quoted ? *at != '"' : *at != ',' && *at != '}'))
		out[n++] = *at++;
	out[n] = '\0';
}

static void print_text(const char *json)
{
	char node[32], started[40], v[10][280];
	const char *end = json + strlen(json);
	field(json, end, "node", node, sizeof(node));
	field(json, end, "started", started, sizeof(started));
	field(json, end, "expired", v[0], sizeof(v[0]));
	field(json, end, "no_route", v[1], sizeof(v[1]));
	printf("tern run: node %s, running since %s; %s bundles without a route, %s expired\n",
	       node, started, v[1], v[0]);
	const char *p = strstr(json, "\"peers\": [");
	printf("%-16s %-5s %-28s %7s %10s %10s %9s  %s\n", "peer", "link", "address", "queued",
	       "sent", "received", "cost", "last contact");
	while (p && (p = strstr(p, "{\"name\": ")) != NULL) {
		const char *q = strstr(p + 1, "{\"name\": ");
		const char *pend = q ? q : end;
		field(p, pend, "name", v[0], sizeof(v[0]));
		field(p, pend, "up", v[1], sizeof(v[1]));
		field(p, pend, "addr", v[2], sizeof(v[2]));
		field(p, pend, "queued", v[3], sizeof(v[3]));
		field(p, pend, "bytes_out", v[4], sizeof(v[4]));
		field(p, pend, "bytes_in", v[5], sizeof(v[5]));
		field(p, pend, "last_contact", v[6], sizeof(v[6]));
		/* The cost counts every run (the totals); sent and received, this run. */
		field(p, pend, "cost", v[7], sizeof(v[7]));
		char out[16], in[16];
		format_size(strtoull(v[4], NULL, 10), out, sizeof(out));
		format_size(strtoull(v[5], NULL, 10), in, sizeof(in));
		printf("%-16s %-5s %-28s %7s %10s %10s %9s  %s\n", v[0],
		       strcmp(v[1], "true") == 0 ? "up" : "down", v[2][0] ? v[2] : "(inbound only)",
		       v[3], out, in, v[7][0] ? v[7] : "-",
		       v[6][0] && strcmp(v[6], "null") != 0 ? v[6] : "never");
		p = pend;
	}
}

int cmd_status(int argc, char **argv)
{
	bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
	if (argc > 2 || (argc == 2 && !json))
		return cli_usage("status", "takes only --json");
	char *reply = NULL;
	int ret = api_call("status", 30000, &reply);
	if (ret == -ENOENT || ret == -ECONNREFUSED) {
		/* A script that parses --json gets a document either way; people read stderr. */
		if (json)
			printf("{\"running\": false}\n");
		return cli_fail("status",
				"no daemon runs on this node home (start it with tern run)");
	}
	if (ret < 0)
		return cli_fail("status", "the daemon did not answer: %s", strerror(-ret));
	/* The reply is {"ok": true, "status": {...}}: hand the inner object on. */
	const char *inner = strstr(reply, "\"status\":");
	if (!inner || !strstr(reply, "\"ok\":true")) {
		ret = cli_fail("status", "the daemon answered: %s", reply);
		free(reply);
		return ret;
	}
	inner = strchr(inner, '{');
	size_t n = inner ? strlen(inner) : 0;
	if (n && inner[n - 1] == '}')
		n--; /* the reply object's own closing brace; "status" is its last member */
	if (json)
		printf("%.*s\n", (int)n, inner ? inner : "");
	else
		print_text(inner ? inner : "");
	free(reply);
	return EXIT_OK;
}
