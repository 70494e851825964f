/* The CLI's side of the local API: one request to the running daemon, one reply line back. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay/cli.h"

#define REPLY_MAX (4u * 1024 * 1024)
/* Long enough for a busy daemon, short enough that nobody waits on a hung one. */
#define NOTIFY_TIMEOUT_MS 2000

/* Waits for fd to be ready for events, up to timeout_ms. 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
}

int api_call(const char *request, int timeout_ms, char **reply)
{
	char path[HOME_PATH_MAX];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	*reply = NULL;
	if (home_path("api.sock", path, sizeof(path)) < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* fits: checked above */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int ret = 0;
	size_t len = strlen(request), cap = 4096, got = 0;
	char *buf = NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	for (size_t off = 0; off <= len && ret == 0;) {
		const char *p = off < len ? request + off : "\n";
		size_t n = off < len ? len - off : 1;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0)
			ret = errno == EINTR ? 0 : -errno;
		else
			off += (size_t)w + (off == len);
	}
	buf = malloc(cap);
	if (!buf)
		ret = -ENOMEM;
	while (ret == 0) {
		if ((ret = wait_fd(fd, POLLIN, timeout_ms)) < 0)
			break;
		if (got + 1 == cap) {
			char *p = cap < REPLY_MAX ? realloc(buf, cap * 2) : NULL;
			if (!p) {
				ret = -EMSGSIZE;
				break;
			}
			buf = p;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r == 0 ? -ECONNRESET : -errno;
			break;
		}
		got += (size_t)r;
		buf[got] = '\0';
		if (memchr(buf, '\n', got))
			break;
	}
out:
	close(fd);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*strchr(buf, '\n') = '\0';
	*reply = buf;
	return 0;
}

void api_notify_queued(void)
{
	char *reply = NULL;
	int err = api_call("queued", NOTIFY_TIMEOUT_MS, &reply);
	bool ok = err == 0 && strncmp(reply, "{\"ok\":true", 10) == 0;
	free(reply);
	/* No daemon (no socket, or a stale one): it sends the bundles when it starts. */
	if (ok || err == -ENOENT || err == -ECONNREFUSED)
		return;
	fprintf(stderr,
		"tern: api.sock: the daemon was not told (%s); what was queued stays queued until "
		"the daemon next looks at its queue\n",
		err ? strerror(-err) : "it did not answer ok");
}
