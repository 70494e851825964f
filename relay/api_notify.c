/* The CLI's side of the API socket: tells a running daemon that bundles were queued. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "relay/cli.h"

/* Long enough for a busy daemon, short enough that nobody waits on a hung one. */
#define NOTIFY_TIMEOUT_MS 2000

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* 0 once the daemon said ok; -errno otherwise (-ENOENT, -ECONNREFUSED: no daemon). */
static int notify(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const char req[] = "queued\n";
	char reply[256];
	size_t got = 0;
	int64_t deadline = now_ms() + NOTIFY_TIMEOUT_MS;
	int ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A Unix socket connects at once or not at all (EAGAIN: the backlog is full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		ret = -errno;
		goto out;
	}
	ret = wait_fd(fd, POLLOUT, deadline);
	if (ret == 1 && send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
		ret = -errno;
	while (ret == 1 && got < sizeof(reply) - 1 && !memchr(reply, '\n', got)) {
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret != 1)
			break;
		ssize_t n = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			ret = -ECONNRESET;
		else if (errno != EAGAIN && errno != EINTR)
			ret = -errno;
	}
	if (ret == 0)
		ret = -ETIMEDOUT;
	else if (ret == 1)
		ret = got >= 10 && memcmp(reply, "{\"ok\":true", 10) == 0 ? 0 : -EPROTO;
out:
	close(fd);
	return ret;
}

void api_notify_queued(void)
{
	char path[HOME_PATH_MAX];
	if (home_path("api.sock", path, sizeof(path)) < 0)
		return;
	int err = notify(path);
	/* No daemon (no socket, or a stale one): it sends the bundles when it starts. */
	if (err == 0 || err == -ENOENT || err == -ECONNREFUSED)
		return;
	fprintf(stderr,
		"tern: %s: the daemon was not told (%s); what was queued stays queued until "
		"the daemon next looks at its queue\n",
		path, strerror(-err));
}
