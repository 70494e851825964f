/* tern id: prints the identity string to share (first line) and the fingerprint to compare aloud.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"

int cmd_id(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0}};
	bool json = false;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage("id", "unknown option %s", argv[optind - 1]);
		json = true;
	}
	if (optind != argc)
		return cli_usage("id", "unexpected argument %s", argv[optind]);

	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	char idstr[IDENTITY_STRING_MAX + 1], fpr[IDENTITY_FINGERPRINT_LEN];
	identity_public_encode(&n.pub, idstr, sizeof(idstr));
	identity_fingerprint(n.pub.sign_pk, fpr);
	if (json) {
		printf("{\"identity\": ");
		json_string(stdout, idstr);
		printf(", \"fingerprint\": ");
		json_string(stdout, fpr);
		printf(", \"node\": \"ipn:%u.%d\", \"epoch\": %u}\n", n.node_num,
		       NODE_SERVICE_MESSAGES, n.pub.epoch);
	} else {
		printf("%s\nfingerprint: %s\nnode: ipn:%u.%d\n", idstr, fpr, n.node_num,
		       NODE_SERVICE_MESSAGES);
	}
	node_close(&n);
	return EXIT_OK;
}
