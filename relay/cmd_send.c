/* tern send: seals a text or a file for one or more contacts and queues it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cli.h"

struct mem_reader {
	const uint8_t *buf;
	size_t len, off;
};

static long read_mem(void *ctx, uint8_t *buf, size_t cap)
{
	struct mem_reader *m = ctx;
	size_t n = m->len - m->off < cap ? m->len - m->off : cap;
	memcpy(buf, m->buf + m->off, n);
	m->off += n;
	return (long)n;
}

static long read_fd(void *ctx, uint8_t *buf, size_t cap)
{
	int fd = *(int *)ctx;
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n >= 0)
			return (long)n;
		if (errno != EINTR)
			return -errno;
	}
}

/* A pipe has no size, and the envelope needs one: spool it, unnamed, in the node home. */
static int spool_stdin(int *out, uint64_t *size)
{
	char dir[HOME_PATH_MAX];
	if (home_dir(dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	uint8_t buf[65536];
	uint64_t total = 0;
	for (;;) {
		long n = read_fd(&(int){STDIN_FILENO}, buf, sizeof(buf));
		if (n < 0) {
			close(fd);
			return (int)n;
		}
		if (n == 0)
			break;
		if (write(fd, buf, (size_t)n) != n) {
			int err = errno ? -errno : -EIO;
			close(fd);
			return err;
		}
		total += (uint64_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -errno;
	}
	*out = fd;
	*size = total;
	return 0;
}

static int resolve_recipients(struct node *n, char *list, struct store_contact *rcpt, size_t *count)
{
	*count = 0;
	for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		if (*count == ENVELOPE_MAX_RECIPIENTS)
			return cli_fail("send", "at most %d recipients", ENVELOPE_MAX_RECIPIENTS);
		if (store_contact_get(n->store, name, &rcpt[*count]) < 0)
			return cli_fail(name, "no such contact (see `tern contact list`)");
		(*count)++;
	}
	if (*count == 0)
		return cli_fail("send", "no recipient named");
	return EXIT_OK;
}

/* Messages per durable commit with --lines: one fsync per thousand, a short write lock. */
#define LINES_PER_BATCH 1000

struct line_batch {
	uint8_t (*ids)[32];
	size_t n;
};

static int commit_lines(struct node *n, struct line_batch *b)
{
	int ret = store_batch_commit(n->store);
	if (ret < 0)
		return cli_fail("send", "the last %zu messages were not queued: %s", b->n,
				store_errmsg(n->store));
	/* Printed only now: a bundle id on stdout means the message is durably queued. */
	for (size_t i = 0; i < b->n; i++) {
		char hex[65];
		hex_encode(b->ids[i], 32, hex);
		printf("%s\n", hex);
	}
	b->n = 0;
	/* Each batch as it commits: a running daemon starts sending while the rest is sealed. */
	api_notify_queued();
	return EXIT_OK;
}

/* Up to LINES_PER_BATCH non-empty lines of stdin, read before the store is locked. */
struct line_set {
	char *text[LINES_PER_BATCH];
	size_t len[LINES_PER_BATCH], lineno[LINES_PER_BATCH];
	size_t n;
};

static void free_lines(struct line_set *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->text[i]);
	ls->n = 0;
}

/* 1 if lines were read, 0 at the end of stdin, -errno. */
static int read_lines(struct line_set *ls, size_t *lineno)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len = 0;
	while (ls->n < LINES_PER_BATCH && (len = getline(&line, &cap, stdin)) >= 0) {
		++*lineno;
		if (len && line[len - 1] == '\n')
			len--;
		if (len == 0)
			continue; /* an empty line is no message */
		if (!(ls->text[ls->n] = malloc((size_t)len))) {
			free(line);
			return -ENOMEM;
		}
		memcpy(ls->text[ls->n], line, (size_t)len);
		ls->len[ls->n] = (size_t)len;
		ls->lineno[ls->n++] = *lineno;
	}
	int err = len < 0 && ferror(stdin) ? -errno : 0;
	free(line);
	return err < 0 ? err : ls->n > 0;
}

/*
 * --lines: each line of stdin is one text message, a thousand per durable commit. The
 * lines of a batch are read first: a slow producer on the pipe must not hold the
 * store's write lock (the daemon and every other writer wait on it).
 */
static int send_lines(struct node *n, const struct store_contact *rcpt, size_t n_rcpt,
		      struct submit_request req)
{
	struct line_batch b = {.ids = calloc(LINES_PER_BATCH * n_rcpt, 32)};
	struct submit_result *res = malloc(sizeof(*res));
	struct line_set *ls = calloc(1, sizeof(*ls));
	size_t sent = 0, lineno = 0;
	int status = b.ids && res && ls ? EXIT_OK : cli_fail("send", "out of memory");
	int more = 1;
	while (status == EXIT_OK && (more = read_lines(ls, &lineno)) > 0) {
		int ret = store_batch_begin(n->store);
		if (ret < 0)
			status = cli_fail("send", "cannot write to the store: %s",
					  store_errmsg(n->store));
		for (size_t i = 0; status == EXIT_OK && i < ls->n; i++) {
			struct mem_reader mem = {.buf = (const uint8_t *)ls->text[i],
						 .len = ls->len[i]};
			const char *why = "";
			req.size = ls->len[i];
			req.read = read_mem;
			req.read_ctx = &mem;
			ret = node_submit(n, rcpt, n_rcpt, &req, res, &why);
			if (ret < 0) {
				store_batch_abort(n->store);
				status = cli_fail("send",
						  "line %zu: %s%s%s (the %zu messages before "
						  "it in this batch were not queued either)",
						  ls->lineno[i], why, *why ? ": " : "",
						  strerror(-ret), i);
				break;
			}
			memcpy(b.ids + b.n, res->bundle_id, res->n_bundles * 32);
			b.n += res->n_bundles;
		}
		if (status == EXIT_OK) {
			status = commit_lines(n, &b);
			sent += ls->n;
		}
		free_lines(ls);
	}
	if (more < 0)
		status = cli_fail("stdin", "cannot read it: %s", strerror(-more));
	if (status == EXIT_OK)
		fprintf(stderr, "queued %zu message%s for %zu recipient%s\n", sent,
			sent == 1 ? "" : "s", n_rcpt, n_rcpt == 1 ? "" : "s");
	if (ls)
		free_lines(ls);
	free(ls);
	free(res);
	free(b.ids);
	return status;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"message", required_argument, NULL, 'm'},	{"file", required_argument, NULL, 'f'},
	    {"priority", required_argument, NULL, 'p'}, {"lifetime", required_argument, NULL, 'l'},
	    {"lines", no_argument, NULL, 'L'},		{0},
	};
	const char *text = NULL, *file = NULL;
	bool lines = false;
	struct submit_request req = {
	    .kind = ENVELOPE_TEXT,
	    .priority = STORE_NORMAL,
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "m:f:p:l:", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			text = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'L':
			lines = true;
			break;
		case 'p':
			if (parse_priority(optarg, &req.priority) < 0)
				return cli_usage("send", "--priority %s: bulk, normal or urgent",
						 optarg);
			break;
		case 'l':
			if (parse_duration_ms(optarg, &req.lifetime_ms) < 0)
				return cli_usage(
				    "send", "--lifetime %s: like 90m, 12h, 7d (up to 10 years)",
				    optarg);
			break;
		default:
			return cli_usage("send", "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("send", "name the recipients once, as NAME[,NAME...]");
	if ((text != NULL) + (file != NULL) + lines > 1)
		return cli_usage("send", "-m, --file and --lines exclude each other");

	int fd = -1;
	struct mem_reader mem = {0};
	/* An empty text is a mistake (a variable that was never set), never a message. */
	if (text && !*text)
		return cli_fail("send", "the message is empty (-m \"\")");
	if (text) {
		mem.buf = (const uint8_t *)text;
		mem.len = strlen(text);
		req.size = mem.len;
		req.read = read_mem;
		req.read_ctx = &mem;
	} else if (file) {
		struct stat st;
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_fail(file, "%s", strerror(errno));
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			return cli_fail(file, "not a regular file");
		}
		if (strlen(base_name(file)) > ENVELOPE_NAME_MAX || !*base_name(file)) {
			close(fd);
			return cli_fail(file, "the file name is empty or longer than 255 bytes");
		}
		req.kind = ENVELOPE_FILE;
		req.name = base_name(file);
		req.size = (uint64_t)st.st_size;
	} else if (!lines && isatty(STDIN_FILENO)) {
		return cli_usage("send",
				 "nothing to send: give -m TEXT, --file PATH, or pipe text in");
	}

	struct node n;
	struct store_contact *rcpt = calloc(ENVELOPE_MAX_RECIPIENTS, sizeof(*rcpt));
	size_t n_rcpt = 0;
	int ret = EXIT_FAIL;
	if (!rcpt || home_open(&n) != EXIT_OK) {
		free(rcpt);
		if (fd >= 0)
			close(fd);
		return EXIT_FAIL;
	}
	if (lines) {
		if (resolve_recipients(&n, argv[optind], rcpt, &n_rcpt) == EXIT_OK)
			ret = send_lines(&n, rcpt, n_rcpt, req);
		goto out;
	}
	if (!text && !file) {
		int err = spool_stdin(&fd, &req.size);
		if (err < 0) {
			cli_fail("stdin", "cannot read it: %s", strerror(-err));
			goto out;
		}
		/* A cron job whose producer failed, or </dev/null: nothing to say, so nothing sent.
		 */
		if (req.size == 0) {
			cli_fail("send", "the message is empty (nothing on stdin)");
			goto out;
		}
	}
	if (fd >= 0) {
		req.read = read_fd;
		req.read_ctx = &fd;
	}
	if (resolve_recipients(&n, argv[optind], rcpt, &n_rcpt) != EXIT_OK)
		goto out;

	struct submit_result *res = malloc(sizeof(*res));
	const char *why = "";
	int err = res ? node_submit(&n, rcpt, n_rcpt, &req, res, &why) : -ENOMEM;
	if (err < 0) {
		if (*why)
			cli_fail("send", "%s: %s", why, strerror(-err));
		else
			cli_fail("send", "%s", strerror(-err));
		free(res);
		goto out;
	}
	for (size_t i = 0; i < res->n_bundles; i++) {
		char hex[65], size[32];
		hex_encode(res->bundle_id[i], 32, hex);
		format_size(res->bundle_len[i], size, sizeof(size));
		printf("%s\n", hex);
		fprintf(stderr, "queued for %s: %s bundle%s\n", rcpt[i].name, size,
			res->compact ? " (compact envelope)" : "");
	}
	free(res);
	api_notify_queued();
	ret = EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	free(rcpt);
	node_close(&n);
	return ret;
}
