/* The node home: where it is, its key file and its store, opened with the checks an operator
 * expects. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "relay/cli.h"

const char *cli_home_opt;

#define KEYFILE_MAX (64 * 1024)

int home_dir(char *out, size_t len)
{
	const char *env = getenv("TERN_HOME");
	int n;
	if (cli_home_opt && *cli_home_opt) {
		n = snprintf(out, len, "%s", cli_home_opt);
	} else if (env && *env) {
		n = snprintf(out, len, "%s", env);
	} else {
		const char *home = getenv("HOME");
		if (!home || !*home)
			return -ENOENT;
		n = snprintf(out, len, "%s/.local/share/tern", home);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int home_path(const char *name, char *out, size_t len)
{
	char dir[HOME_PATH_MAX];
	int ret = home_dir(dir, sizeof(dir));
	if (ret < 0)
		return ret;
	int n = snprintf(out, len, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Creates dir and its missing parents; the last component is private to the user. */
int home_make(char *dir)
{
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int r = mkdir(dir, 0755);
		*p = '/';
		if (r != 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(dir, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return 0;
}

static void strip_newline(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int read_tty_line(FILE *tty, const char *prompt, char *out, size_t len)
{
	struct termios old, quiet;
	bool echo_off = tcgetattr(fileno(tty), &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	}
	fputs(prompt, tty);
	fflush(tty);
	char *got = fgets(out, (int)len, tty);
	if (echo_off)
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	if (!got)
		return -EIO;
	strip_newline(out);
	return 0;
}

int home_passphrase(const char *prompt, bool confirm, char *out, size_t len)
{
	const char *file = getenv("TERN_PASSPHRASE_FILE");
	int ret = 0;
	if (file && *file) {
		FILE *f = fopen(file, "re");
		if (!f)
			return cli_fail(file, "cannot read the passphrase file: %s",
					strerror(errno)),
			       -errno;
		if (!fgets(out, (int)len, f))
			out[0] = '\0';
		fclose(f);
		strip_newline(out);
		if (!*out)
			return cli_fail(file, "the passphrase file is empty"), -EINVAL;
		return 0;
	}
	FILE *tty = fopen("/dev/tty", "r+e");
	if (!tty)
		return cli_fail("passphrase", "no terminal to ask on: set TERN_PASSPHRASE_FILE"),
		       -ENXIO;
	ret = read_tty_line(tty, prompt, out, len);
	if (ret == 0 && !*out)
		ret = -EINVAL;
	if (ret == 0 && confirm) {
		char again[256];
		ret = read_tty_line(tty, "Again: ", again, sizeof(again));
		if (ret == 0 && strcmp(again, out) != 0)
			ret = -EINVAL;
		explicit_bzero(again, sizeof(again));
	}
	fclose(tty);
	if (ret < 0)
		cli_fail("passphrase", "%s",
			 ret == -EINVAL ? "empty or not the same twice" : "cannot read it");
	return ret;
}

/* Reads the key file, refusing one that others can read (it may be unprotected). */
static int read_keyfile(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return cli_fail(path, "no identity here: run `tern init` first");
		return cli_fail(path, "%s", strerror(errno));
	}
	struct stat st;
	int ret = EXIT_FAIL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cli_fail(path, "not a regular file");
		goto out;
	}
	if (st.st_mode & 077) {
		cli_fail(path, "others can access the secret key (mode %04o): run chmod 600 %s",
			 (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > KEYFILE_MAX) {
		cli_fail(path, "not a tern key file (size %lld)", (long long)st.st_size);
		goto out;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len);
	if (!*buf || read(fd, *buf, *len) != (ssize_t)*len) {
		cli_fail(path, "cannot read it");
		free(*buf);
		*buf = NULL;
		goto out;
	}
	ret = EXIT_OK;
out:
	close(fd);
	return ret;
}

static int load_identity(struct node *n)
{
	char path[HOME_PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	char pass[256] = "";
	int ret;

	if (home_path("identity.key", path, sizeof(path)) < 0)
		return cli_fail("home", "path too long");
	ret = read_keyfile(path, &buf, &len);
	if (ret != EXIT_OK)
		return ret;
	bool protected = keyfile_is_encrypted(buf, len);
	if (protected && home_passphrase("Passphrase: ", false, pass, sizeof(pass)) < 0) {
		ret = EXIT_FAIL;
		goto out;
	}
	int err = keyfile_decode(buf, len, protected ? pass : NULL, &n->id);
	if (err == -EACCES)
		ret = cli_fail(path, "wrong passphrase");
	else if (err < 0)
		ret = cli_fail(path, "not a valid tern key file");
	else
		ret = EXIT_OK;
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(buf, len);
	free(buf);
	return ret;
}

static void apply_clock_setting(struct node *n)
{
	char mode[32];
	if (store_setting_get(n->store, "clock", mode, sizeof(mode)) < 0)
		strcpy(mode, "auto");
	if (strcmp(mode, "trusted") == 0)
		n->clock_trusted = true;
	else if (strcmp(mode, "untrusted") == 0)
		n->clock_trusted = false;
	else
		n->clock_trusted = clock_looks_trusted();
}

int home_check_owner(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0 || st.st_uid == geteuid())
		return EXIT_OK;
	/* Files made here by another user (root, say) would lock the owner's daemon out. */
	struct passwd *pw = getpwuid(st.st_uid);
	char who[64];
	if (pw)
		snprintf(who, sizeof(who), "%s", pw->pw_name);
	else
		snprintf(who, sizeof(who), "%u", (unsigned)st.st_uid);
	return cli_fail(dir,
			"this node home belongs to user %s: run tern as that user (sudo -u %s "
			"tern --home %s ...)",
			who, who, dir);
}

int home_open(struct node *n)
{
	char path[HOME_PATH_MAX];
	const char *why = NULL;

	memset(n, 0, sizeof(*n));
	if (home_dir(path, sizeof(path)) == 0 && home_check_owner(path) != EXIT_OK)
		return EXIT_FAIL;
	if (load_identity(n) != EXIT_OK)
		return EXIT_FAIL;
	identity_get_public(n->id, &n->pub);
	n->node_num = identity_node_number(n->pub.sign_pk);
	clock_now(&n->now);
	if (home_path("store.db", path, sizeof(path)) < 0) {
		node_close(n);
		return cli_fail("home", "path too long");
	}
	int ret = store_open(path, &n->now, &n->store, &why);
	if (ret < 0) {
		node_close(n);
		return cli_fail(path, "cannot open the store: %s", why ? why : strerror(-ret));
	}
	apply_clock_setting(n);
	return EXIT_OK;
}
