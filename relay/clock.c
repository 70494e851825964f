/* Reads the clocks the node needs: wall time, boot time and boot id, and whether wall time is
 * trustworthy. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "relay/cli.h"

static uint64_t ms_of(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The boot id tells the store whether the boot clock it recorded is still running. */
static void read_boot_id(uint8_t out[static 16])
{
	char text[64] = {0};
	memset(out, 0, 16);
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t got = read(fd, text, sizeof(text) - 1);
	close(fd);
	size_t j = 0;
	for (ssize_t i = 0; i < got && j < 32; i++) {
		char c = text[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			continue;
		out[j / 2] = (uint8_t)(out[j / 2] | (j % 2 ? v : v << 4));
		j++;
	}
}

void clock_now(struct store_clock *out)
{
	out->unix_ms = ms_of(CLOCK_REALTIME);
	out->boot_ms = ms_of(CLOCK_BOOTTIME);
	read_boot_id(out->boot_id);
}

/*
 * Only a clock that NTP (or GPS through it) has synchronised is trusted. An RTC
 * alone is not enough: a Pi 5 without its battery has one that starts in the
 * past, and a wrongly trusted clock loses bundles ("expired") where a wrongly
 * untrusted one only costs the bytes of a Bundle Age block.
 */
bool clock_looks_trusted(void)
{
	struct timex tx = {0};
	int state = adjtimex(&tx);
	return state != -1 && state != TIME_ERROR && !(tx.status & STA_UNSYNC);
}
