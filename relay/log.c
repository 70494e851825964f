/* The daemon's log lines: level filter, journald's priority prefix, or a UTC timestamp. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay/log.h"

static enum log_level max_level = LOG_INFO;
static bool journal;

static const char *const names[] = {"error", "warn", "info", "debug"};
/* syslog priorities: err, warning, info, debug */
static const int priorities[] = {3, 4, 6, 7};

void log_init(enum log_level level)
{
	max_level = level;
	journal = getenv("JOURNAL_STREAM") != NULL;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > max_level)
		return;
	char line[1024];
	int off;
	if (journal) {
		off = snprintf(line, sizeof(line), "<%d>", priorities[level]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		off = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		off += snprintf(line + off, sizeof(line) - (size_t)off,
				".%03ldZ %s: ", ts.tv_nsec / 1000000, names[level]);
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
	va_end(ap);
	/* One write per line, so lines of two processes sharing stderr do not interleave. */
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
}
