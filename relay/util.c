/* Small helpers every tern command uses: error reporting, hex, JSON strings, durations, sizes. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay/cli.h"

int cli_fail(const char *what, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout); /* keep the order of lines when both go to one place */
	fprintf(stderr, "tern: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

int cli_usage(const char *command, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "tern: %s: ", command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_print_help(command, stderr);
	return EXIT_USAGE;
}

bool cli_wants_help(int argc, char **argv)
{
	/* Only right after the command: "-m --help" is a message, not a request. */
	return argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *s, uint8_t *out, size_t len)
{
	if (strlen(s) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

size_t utf8_valid_len(const unsigned char *p, size_t avail)
{
	if (avail == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || (p[0] >= 0xe0 && n != 3 && n != 4) || n > avail)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	uint32_t cp = n == 2   ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3f)
		      : n == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3f)
			       : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 |
				     (p[3] & 0x3f);
	/* Overlong forms, surrogates and code points past U+10FFFF are not text. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	fputc('"', f);
	while (left) {
		size_t n = utf8_valid_len(p, left);
		if (n == 0) {
			fputs("\\ufffd", f); /* JSON must be UTF-8; the sender's bytes may not be */
			n = 1;
		} else if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fwrite(p, 1, n, f);
		}
		p += n;
		left -= n;
	}
	fputc('"', f);
}

void safe_text(const char *in, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t left = strlen(in), o = 0;
	while (left && o + 4 < outlen) {
		size_t n = utf8_valid_len(p, left);
		/* C0 and C1 controls would let a sender drive the terminal. */
		bool control =
		    n == 1 ? (*p < 0x20 || *p == 0x7f) : n == 2 && p[0] == 0xc2 && p[1] < 0xa0;
		if (n == 0 || control) {
			out[o++] = '?';
			n = n ? n : 1;
		} else {
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		left -= n;
	}
	out[o] = '\0';
}

void format_time(uint64_t unix_ms, char *out, size_t len)
{
	if (unix_ms == 0) {
		snprintf(out, len, "unknown");
		return;
	}
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "unknown");
}

void format_size(uint64_t bytes, char *out, size_t len)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%" PRIu64 " B", bytes);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

int parse_duration_ms(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t unit = 1000;
	if (*end) {
		switch (*end) {
		case 's':
			unit = 1000;
			break;
		case 'm':
			unit = 60 * 1000;
			break;
		case 'h':
			unit = 3600 * 1000;
			break;
		case 'd':
			unit = 24 * 3600 * 1000;
			break;
		case 'w':
			unit = 7ull * 24 * 3600 * 1000;
			break;
		default:
			return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	/* Ten years is past any sensible lifetime and keeps the arithmetic far from overflow. */
	if (v == 0 || v > 10ull * 366 * 24 * 3600 * 1000 / unit)
		return -ERANGE;
	*out = v * unit;
	return 0;
}

static const char *const priority_names[] = {"bulk", "normal", "urgent"};

int parse_priority(const char *s, enum store_priority *out)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, priority_names[i]) == 0) {
			*out = (enum store_priority)i;
			return 0;
		}
	return -EINVAL;
}

const char *priority_name(enum store_priority p)
{
	return (unsigned)p < 3 ? priority_names[p] : "unknown";
}

bool contact_name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > STORE_NAME_MAX || name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	char *end;
	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	if (*end) {
		const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
		if (!u || end[1])
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
	}
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}
