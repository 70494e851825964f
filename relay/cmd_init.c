/* tern init: creates a node home with a new identity, its key file (0600) and an empty store. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cli.h"

/* Writes the key file so that it appears whole or not at all, and never replaces one. */
static int write_keyfile(const char *dir, const uint8_t *buf, size_t len)
{
	char tmp[HOME_PATH_MAX + 32], path[HOME_PATH_MAX + 32];
	snprintf(tmp, sizeof(tmp), "%s/.identity.key.tmp", dir);
	snprintf(path, sizeof(path), "%s/identity.key", dir);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int ret = 0;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd) != 0)
		ret = errno ? -errno : -EIO;
	close(fd);
	if (ret == 0 && link(tmp, path) != 0)
		ret = -errno;
	unlink(tmp);
	if (ret == 0) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return ret;
}

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"passphrase", no_argument, NULL, 'p'},
	    {"clock", required_argument, NULL, 'c'},
	    {0},
	};
	bool want_pass = getenv("TERN_PASSPHRASE_FILE") && *getenv("TERN_PASSPHRASE_FILE");
	const char *clock = "auto";
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "pc:", opts, NULL)) != -1) {
		if (c == 'p')
			want_pass = true;
		else if (c == 'c')
			clock = optarg;
		else
			return cli_usage("init", "unknown option %s", argv[optind - 1]);
	}
	if (optind != argc)
		return cli_usage("init", "unexpected argument %s", argv[optind]);
	if (strcmp(clock, "auto") && strcmp(clock, "trusted") && strcmp(clock, "untrusted"))
		return cli_usage("init", "--clock %s: must be auto, trusted or untrusted", clock);

	char dir[HOME_PATH_MAX], keypath[HOME_PATH_MAX + 16], dbpath[HOME_PATH_MAX + 16];
	if (home_dir(dir, sizeof(dir)) < 0)
		return cli_fail("init", "no home directory: give --home DIR or set TERN_HOME");
	snprintf(keypath, sizeof(keypath), "%s/identity.key", dir);
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", dir);
	if (access(keypath, F_OK) == 0)
		return cli_fail(dir, "a node already lives here (identity.key exists)");
	if (home_check_owner(dir) != EXIT_OK)
		return EXIT_FAIL;
	int err = home_make(dir);
	if (err < 0)
		return cli_fail(dir, "cannot create the node home: %s", strerror(-err));

	struct identity *id = NULL;
	uint8_t *file = NULL;
	size_t file_len = 0;
	char pass[256] = "";
	int ret = EXIT_FAIL;
	if (want_pass && home_passphrase("New passphrase: ", true, pass, sizeof(pass)) < 0)
		goto out;
	if (identity_generate(&id) < 0 ||
	    keyfile_encode(id, want_pass ? pass : NULL, &file, &file_len) < 0) {
		cli_fail("init", "cannot create the keys: out of memory");
		goto out;
	}
	err = write_keyfile(dir, file, file_len);
	if (err < 0) {
		cli_fail(keypath, "cannot write the key file: %s", strerror(-err));
		goto out;
	}

	struct store_clock now;
	struct store *store = NULL;
	const char *why = NULL;
	clock_now(&now);
	err = store_open(dbpath, &now, &store, &why);
	if (err == 0)
		err = store_setting_set(store, "clock", clock);
	store_close(store);
	if (err < 0) {
		cli_fail(dbpath, "cannot create the store: %s", why ? why : strerror(-err));
		goto out;
	}

	struct identity_public pub;
	char idstr[IDENTITY_STRING_MAX + 1], fpr[IDENTITY_FINGERPRINT_LEN];
	identity_get_public(id, &pub);
	identity_public_encode(&pub, idstr, sizeof(idstr));
	identity_fingerprint(pub.sign_pk, fpr);
	printf("created a tern node in %s%s\n", dir,
	       want_pass ? " (key protected by passphrase)" : "");
	printf("identity:    %s\nfingerprint: %s\nnode:        ipn:%u.%d\n", idstr, fpr,
	       identity_node_number(pub.sign_pk), NODE_SERVICE_MESSAGES);
	ret = EXIT_OK;
out:
	explicit_bzero(pass, sizeof(pass));
	keyfile_buf_free(file, file_len);
	identity_free(id);
	return ret;
}
