/* tern's entry point: global options, the command table, and --help generated from it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "relay/cli.h"

static const struct cli_command commands[] = {
    {"init", cmd_init, "[--passphrase] [--clock auto|trusted|untrusted]",
     "create this node's identity and store"},
    {"id", cmd_id, "[--json]", "print this node's identity string and fingerprint"},
    {"contact", cmd_contact, "add NAME IDSTRING | list [--json] | remove NAME",
     "manage the address book"},
    {"send", cmd_send,
     "NAME[,NAME...] (-m TEXT | --file PATH | --lines | < stdin) [--priority bulk|normal|urgent] "
     "[--lifetime 7d]",
     "seal a message or file and queue it"},
    {"inbox", cmd_inbox, "[--json]", "list what was delivered to this node"},
    {"read", cmd_read, "ID", "print a delivered text message"},
    {"save", cmd_save, "ID DIR", "write a delivered file into DIR under its own name"},
    {"queue", cmd_queue, "[--json]", "list the bundles waiting for a next hop"},
    {"bundle", cmd_bundle, "export DIR | import FILE...", "hand bundles over as raw BPv7 files"},
    {"export", cmd_export,
     "DIR [--for NAME[,NAME...]] [--max-bytes SIZE] [--min-priority bulk|normal|urgent] "
     "[--json]",
     "write the bundles that travel by stick onto the stick mounted at DIR"},
    {"import", cmd_import, "DIR [--json]",
     "take in what a stick carries: bundles, receipts, manifests"},
    {"peer", cmd_peer,
     "add NAME IDSTRING [--sneakernet] [--addr HOST:PORT | --serial DEVICE [--baud N] "
     "[--framing 8N1] [--parity none|even|odd] [--flow none|rtscts|dtrdsr]] | list [--json] | "
     "remove NAME",
     "manage the nodes this one exchanges bundles with"},
    {"run", cmd_run, "[--listen HOST:PORT]... [--config FILE] [--log-level error|warn|info|debug]",
     "run the relay daemon: links to peers, forwarding, the local API"},
    {"status", cmd_status, "[--json]", "what the running daemon says of its links and queues"},
    {"sbd", cmd_sbd, "ingest FILE... | outbox PEER DIR",
     "Iridium SBD: take messages the gateway delivered; write bundles for a peer as messages"},
    {"route", cmd_route, "add DEST VIA | list | remove DEST",
     "choose the next hop for a destination (DEST: name, ipn:N or default)"},
    {"backup", cmd_backup, "FILE",
     "write this node's identity, store and configuration to FILE, sealed with a passphrase"},
    {"restore", cmd_restore, "FILE", "restore a backup into a new node home"},
    {"config", cmd_config, "check [FILE] | show [--json] [FILE]",
     "check the daemon's configuration file (default: tern.conf in the node home)"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

void cli_print_help(const char *command, FILE *f)
{
	const struct cli_command *c = find_command(command);
	if (c)
		fprintf(f, "usage: tern [--home DIR] %s %s\n  %s\n", c->name, c->usage, c->summary);
}

static void print_usage(FILE *f)
{
	fprintf(f, "usage: tern [--home DIR] COMMAND [ARGS]\n\n"
		   "An end-to-end encrypted store-and-forward relay.\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(
	    f, "\nThe node home is --home DIR, else $TERN_HOME, else ~/.local/share/tern.\n"
	       "A protected key reads its passphrase from the file named by "
	       "$TERN_PASSPHRASE_FILE,\nor from the terminal. `tern COMMAND --help` tells more.\n");
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--home") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "tern: --home needs a directory\n");
				return EXIT_USAGE;
			}
			cli_home_opt = argv[++i];
		} else if (strncmp(argv[i], "--home=", 7) == 0) {
			cli_home_opt = argv[i] + 7;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			print_usage(stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("tern %s\n", TERN_VERSION);
			return EXIT_OK;
		} else {
			fprintf(stderr, "tern: unknown option %s\n", argv[i]);
			print_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc && find_command(argv[i + 1])) {
			cli_print_help(argv[i + 1], stdout);
			return EXIT_OK;
		}
		print_usage(stdout);
		return EXIT_OK;
	}
	const struct cli_command *c = find_command(argv[i]);
	if (!c) {
		fprintf(stderr, "tern: %s: unknown command\n", argv[i]);
		print_usage(stderr);
		return EXIT_USAGE;
	}
	if (cli_wants_help(argc - i, argv + i)) {
		cli_print_help(c->name, stdout);
		return EXIT_OK;
	}
	opterr = 0; /* commands report bad options themselves, as "tern: <what>: <why>" */
	if (tern_crypto_init() < 0) {
		fprintf(stderr, "tern: libsodium: cannot initialise\n");
		return EXIT_FAIL;
	}
	return c->fn(argc - i, argv + i);
}
