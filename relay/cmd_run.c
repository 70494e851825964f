/* tern run: the relay daemon in the foreground, logging to stderr. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/config.h"
#include "relay/daemon.h"
#include "relay/log.h"

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"log-level", required_argument, NULL, 'v'},
	    {"config", required_argument, NULL, 'c'},
	    {0},
	};
	struct daemon_options opt = {0};
	enum log_level level = LOG_INFO;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "l:v:c:", opts, NULL)) != -1) {
		if (c == 'c') {
			opt.config_path = optarg;
		} else if (c == 'l') {
			if (opt.n_listen == DAEMON_MAX_LISTEN)
				return cli_usage("run", "at most %d --listen", DAEMON_MAX_LISTEN);
			/* As tern.conf's listen: a typo is a usage error, not a log line later. */
			struct config_addr a;
			const char *why;
			if (config_addr_parse(optarg, &a, &why) < 0)
				return cli_usage("run", "--listen %s: %s", optarg, why);
			opt.listen[opt.n_listen++] = optarg;
		} else if (c == 'v') {
			if (log_level_parse(optarg, &level) < 0)
				return cli_usage(
				    "run", "--log-level %s: error, warn, info or debug", optarg);
			opt.log_level_set = true;
		} else {
			return cli_usage("run", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage("run", "takes no arguments besides options");
	log_init(level);
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	int ret = daemon_run(&n, &opt);
	node_close(&n);
	return ret < 0 ? EXIT_FAIL : EXIT_OK;
}
