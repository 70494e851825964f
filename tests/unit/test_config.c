/* tern.conf: a whole file parsed, each error with its line, limits, windows, round trips. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/config.h"
#include "test.h"

static char id_hub[IDENTITY_STRING_MAX + 1], id_relay[IDENTITY_STRING_MAX + 1];
static struct identity_public pub_hub;

/* Feeds text line by line, as the daemon's reader or a fuzzer would. */
static int parse(const char *text, struct config **out)
{
	struct config_reader *r;
	if (config_read_init(&r) < 0)
		abort();
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
		int ret = config_read_line(r, p, len);
		if (ret == -EFBIG || ret == -ENOMEM)
			break;
		p += len;
	}
	return config_read_finish(r, out);
}

/* True if c has an error on line whose text holds every one of the NULL-ended strings. */
static bool has_error(const struct config *c, unsigned line, ...)
{
	for (size_t i = 0; c && i < c->n_errors; i++) {
		if (c->errors[i].line != line)
			continue;
		va_list ap;
		va_start(ap, line);
		bool all = true;
		for (const char *s; (s = va_arg(ap, const char *));)
			all = all && strstr(c->errors[i].msg, s);
		va_end(ap);
		if (all)
			return true;
	}
	return false;
}

static void dump_errors(const struct config *c)
{
	for (size_t i = 0; c && i < c->n_errors; i++)
		fprintf(stderr, "  line %u: %s\n", c->errors[i].line, c->errors[i].msg);
}

/* Expects text to fail with exactly one error, on line, mentioning each string. */
#define EXPECT_ERROR(text, line, ...)                                                              \
	do {                                                                                       \
		struct config *_c;                                                                 \
		CHECK_EQ(parse(text, &_c), -EINVAL);                                               \
		CHECK(_c != NULL);                                                                 \
		if (_c) {                                                                          \
			bool _ok = _c->n_errors == 1 && has_error(_c, line, __VA_ARGS__, NULL);    \
			CHECK(_ok);                                                                \
			if (!_ok)                                                                  \
				dump_errors(_c);                                                   \
			CHECK(_c->n_peers == 0 && _c->n_routes == 0 && _c->n_listens == 0);        \
		}                                                                                  \
		config_free(_c);                                                                   \
	} while (0)

static void test_full_file(void)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "# top level: daemon settings\n"
		 "listen = 0.0.0.0:4556          # repeatable\n"
		 "listen = [::]:4556\n"
		 "keepalive = 2m\n"
		 "log-level = debug\n"
		 "\n"
		 "[peer hub]\n"
		 "id = %s\n"
		 "addr = hub.example.org:4556\n"
		 "addr = [2001:db8::1]:4557\n"
		 "sneakernet = yes\n"
		 "min-priority = normal\n"
		 "bytes-per-day = 50M\n"
		 "window = 06:00-07:30\n"
		 "window = 23:00 - 01:00\n"
		 "[ peer relay ]\n"
		 "id = %s\n"
		 "[peer field-7]\n" /* only in the store: attaches an address */
		 "addr = 10.0.0.7:4556\n"
		 "[route]\n"
		 "default = hub\n"
		 "ipn:1234 = hub\n"
		 "alice = relay\n"
		 "relay = hub\n"
		 "ipn:99.2 = field-7\n",
		 id_hub, id_relay);
	struct config *c;
	CHECK_EQ(parse(text, &c), 0);
	if (!c)
		return;
	dump_errors(c);
	CHECK_EQ(c->lines, 25);
	CHECK_EQ(c->n_listens, 2);
	CHECK(!strcmp(c->listens[0].host, "0.0.0.0") && c->listens[0].port == 4556);
	CHECK(!strcmp(c->listens[0].text, "0.0.0.0:4556") && c->listens[0].line == 2);
	CHECK(!strcmp(c->listens[1].host, "::") && c->listens[1].line == 3);
	CHECK_EQ(c->keepalive_ms, 120000);
	CHECK_EQ(c->log_level, CONFIG_LOG_DEBUG);
	CHECK_EQ(c->n_peers, 3);
	const struct config_peer *hub = &c->peers[0];
	CHECK(!strcmp(hub->name, "hub") && hub->line == 7);
	CHECK(hub->has_id && hub->id_line == 8 && !memcmp(&hub->id, &pub_hub, sizeof(pub_hub)));
	CHECK_EQ(hub->n_addrs, 2);
	CHECK(!strcmp(hub->addrs[0].host, "hub.example.org") && hub->addrs[0].port == 4556);
	CHECK(!strcmp(hub->addrs[1].host, "2001:db8::1") && hub->addrs[1].port == 4557);
	CHECK_EQ(hub->addrs[1].line, 10);
	CHECK(hub->sneakernet_set && hub->sneakernet);
	CHECK_EQ(hub->min_priority, STORE_NORMAL);
	CHECK_EQ(hub->bytes_per_day, 50ull << 20);
	CHECK_EQ(hub->n_windows, 2);
	CHECK(hub->windows[0].start_min == 360 && hub->windows[0].end_min == 450);
	CHECK(hub->windows[1].start_min == 1380 && hub->windows[1].end_min == 60);
	CHECK_EQ(hub->windows[1].line, 15);
	const struct config_peer *relay = config_peer_find(c, "relay");
	CHECK(relay == &c->peers[1] && relay->has_id && relay->n_addrs == 0);
	CHECK(!relay->sneakernet_set && relay->min_priority == STORE_BULK);
	CHECK(relay->bytes_per_day == 0 && relay->n_windows == 0);
	CHECK(!c->peers[2].has_id && c->peers[2].n_addrs == 1);
	CHECK(config_peer_find(c, "nobody") == NULL);
	CHECK_EQ(c->n_routes, 5);
	CHECK(c->routes[0].kind == CONFIG_DEST_DEFAULT && c->routes[0].via_peer == 0);
	CHECK(c->routes[1].kind == CONFIG_DEST_NODE && c->routes[1].dest_node == 1234);
	CHECK(c->routes[2].kind == CONFIG_DEST_NAME && !strcmp(c->routes[2].dest, "alice"));
	CHECK(c->routes[2].via_peer == 1 && c->routes[2].line == 23);
	/* A [peer] of the file with an id is resolved at once; a contact is left to the daemon. */
	CHECK(c->routes[3].kind == CONFIG_DEST_NODE &&
	      c->routes[3].dest_node == identity_node_number(relay->id.sign_pk));
	CHECK(c->routes[4].dest_node == 99 && c->routes[4].via_peer == 2);

	struct store_peer sp;
	config_peer_to_store(hub, 77, &sp);
	CHECK(!strcmp(sp.name, "hub") && !strcmp(sp.addr, "hub.example.org:4556"));
	CHECK_EQ(sp.links, STORE_LINK_TCP | STORE_LINK_SNEAKERNET);
	CHECK(sp.node == identity_node_number(pub_hub.sign_pk) && sp.added_unix_ms == 77);
	CHECK(!memcmp(sp.box_pk, pub_hub.box_pk, 32) && sp.epoch == pub_hub.epoch);
	config_peer_to_store(relay, 77, &sp);
	CHECK(sp.links == 0 && sp.addr[0] == '\0');
	config_free(c);
}

static void test_defaults(void)
{
	struct config *c;
	CHECK_EQ(parse("", &c), 0);
	CHECK(c && c->n_listens == 0 && c->n_peers == 0 && c->n_routes == 0);
	CHECK(c && c->keepalive_ms == CONFIG_KEEPALIVE_DEFAULT_MS &&
	      c->log_level == CONFIG_LOG_INFO);
	config_free(c);
	/* Comments, blank lines, CRLF, a byte order mark, UTF-8 in comments. */
	CHECK_EQ(parse("\xef\xbb\xbf# caf\xc3\xa9\r\n\r\n  \t\r\nkeepalive=45\r\n", &c), 0);
	CHECK(c && c->keepalive_ms == 45000 && c->lines == 4);
	config_free(c);
}

static void test_errors_with_lines(void)
{
	char text[1024];
	EXPECT_ERROR("\n\nlisten 0.0.0.0:4556\n", 3, "no '='", "key = value");
	EXPECT_ERROR("= 5\n", 1, "no key");
	EXPECT_ERROR("keepalive =\n", 1, "keepalive", "no value");
	EXPECT_ERROR("colour = blue\n", 1, "colour", "unknown key", "listen, keepalive, log-level");
	EXPECT_ERROR("[peer a]\nfoo = 1\n", 2, "foo", "[peer a]",
		     "id, addr, sneakernet, min-priority, bytes-per-day, window");
	/* Every one of the 20 keys, to the last: the list is not cut. */
	EXPECT_ERROR("[peer a]\nfoo = 1\n", 2, "window, serial, baud, framing, parity, flow",
		     "cost-per-mib, dial, answer, modem-init, idle-hangup, redial",
		     "sbd, sbd-check, sbd-retry");
	EXPECT_ERROR("[peer a]\nlisten = 1.2.3.4:5\n", 2, "listen", "before the first section");
	EXPECT_ERROR("addr = h:1\n", 1, "addr", "a peer's key");
	EXPECT_ERROR("[peers]\nid = x\n", 1, "[peers]", "unknown section", "[peer NAME]");
	EXPECT_ERROR("[peer]\n", 1, "needs a name");
	EXPECT_ERROR("[peer -x]\n", 1, "[peer -x]", "not a peer name");
	EXPECT_ERROR("[peer a\n", 1, "ends with ']'");
	EXPECT_ERROR("[peer a]\n[peer b]\n[peer a]\nid = junk\n", 3, "[peer a]", "second section",
		     "line 1");
	EXPECT_ERROR("keepalive = 30s\nlog-level = info\nkeepalive = 40s\n", 3, "keepalive",
		     "twice", "line 1");
	EXPECT_ERROR("[peer a]\nsneakernet = yes\nsneakernet = no\n", 3, "sneakernet", "twice",
		     "line 2");
	EXPECT_ERROR("keepalive = 30x\n", 1, "keepalive", "30x", "not a duration");
	EXPECT_ERROR("keepalive = 0\n", 1, "keepalive", "out of range");
	EXPECT_ERROR("keepalive = 1d\n", 1, "keepalive", "out of range");
	EXPECT_ERROR("log-level = loud\n", 1, "log-level", "loud", "error, warn, info or debug");
	EXPECT_ERROR("listen = 0.0.0.0\n", 1, "listen", "no port");
	EXPECT_ERROR("listen = ::1:4556\n", 1, "listen", "brackets");
	EXPECT_ERROR("listen = [::1]4556\n", 1, "listen", "no port");
	EXPECT_ERROR("listen = [fe80::zz]:4556\n", 1, "not an IPv6 address");
	EXPECT_ERROR("listen = 10.0.0.300:4556\n", 1, "not an IPv4 address");
	EXPECT_ERROR("listen = a:0\n", 1, "port", "1 to 65535");
	EXPECT_ERROR("listen = a:65536\n", 1, "port");
	EXPECT_ERROR("listen = a:+80\n", 1, "port");
	EXPECT_ERROR("listen = :80\n", 1, "no host");
	EXPECT_ERROR("listen = bad_host!:80\n", 1, "not a host name");
	EXPECT_ERROR("listen = a:1\nlisten = a:1\n", 2, "a:1", "twice", "line 1");
	EXPECT_ERROR("[peer a]\nsneakernet = maybe\n", 2, "sneakernet", "yes or no");
	EXPECT_ERROR("[peer a]\nmin-priority = high\n", 2, "min-priority",
		     "bulk, normal or urgent");
	EXPECT_ERROR("[peer a]\nbytes-per-day = 5X\n", 2, "bytes-per-day", "5X");
	EXPECT_ERROR("[peer a]\nbytes-per-day = 99999999999999999999\n", 2, "bytes-per-day");
	EXPECT_ERROR("[peer a]\nbytes-per-day = 17000000000000000000K\n", 2, "bytes-per-day");
	EXPECT_ERROR("[peer a]\nwindow = 6-7\n", 2, "window", "HH:MM-HH:MM");
	EXPECT_ERROR("[peer a]\nwindow = 24:00-01:00\n", 2, "window");
	EXPECT_ERROR("[peer a]\nwindow = 06:60-07:00\n", 2, "window");
	EXPECT_ERROR("[peer a]\nwindow = 06:00-06:00\n", 2, "window", "starts where it ends");
	EXPECT_ERROR("[peer a]\nid = tern1abc\n", 2, "id", "not a valid identity string");
	/* One character changed: the checksum names the typo. */
	snprintf(text, sizeof(text), "[peer a]\nid = %s\n", id_hub);
	text[20] = text[20] == 'a' ? 'b' : 'a';
	EXPECT_ERROR(text, 2, "id:");
	snprintf(text, sizeof(text), "[peer a]\nid = %s\n[peer b]\nid = %s\n", id_hub, id_hub);
	EXPECT_ERROR(text, 4, "same identity as [peer a]", "line 2");
	EXPECT_ERROR("[route]\nipn:0 = a\n[peer a]\n", 2, "ipn:0", "not a destination");
	EXPECT_ERROR("[route]\nipn:x = a\n[peer a]\n", 2, "not a destination");
	EXPECT_ERROR("[route]\nbad name = a\n[peer a]\n", 2, "not a destination");
	EXPECT_ERROR("[route]\nx = a b\n[peer a]\n", 2, "not a peer name");
	EXPECT_ERROR("[route]\na = a\n[peer a]\n", 2, "reached directly");
	/* The via check needs the whole file: the error still names the route's line. */
	EXPECT_ERROR("[peer hub]\n[route]\ndefault = hub\nipn:5 = hbu\n", 4, "hbu", "no [peer hbu]",
		     "empty [peer hbu]");
	EXPECT_ERROR("[route]\ndefault = a\n[peer a]\n[route]\ndefault = a\n", 5, "default",
		     "second route", "line 2");
	snprintf(text, sizeof(text), "[peer a]\nid = %s\n[peer b]\n[route]\na = b\nipn:%u = b\n",
		 id_hub, (unsigned)identity_node_number(pub_hub.sign_pk));
	EXPECT_ERROR(text, 6, "second route", "a, at line 5");
	snprintf(text, sizeof(text), "[peer a]\nid = %s\n[route]\nipn:%u = a\n", id_hub,
		 (unsigned)identity_node_number(pub_hub.sign_pk));
	EXPECT_ERROR(text, 4, "[peer a] itself");
	EXPECT_ERROR("keepalive = 3\x01s\n", 1, "control character");
	EXPECT_ERROR("log-level = d\xc3\xa9\x62ug\n", 1, "0xc3", "outside a comment");
}

/* Errors do not stop the parse: each one is reported, in line order. */
static void test_all_errors(void)
{
	struct config *c;
	CHECK_EQ(parse("[route]\n"
		       "default = nowhere\n"
		       "[peer a]\n"
		       "bogus = 1\n"
		       "window = 25:00-01:00\n"
		       "[peer a]\n"
		       "[peer b]\n"
		       "min-priority = low\n",
		       &c),
		 -EINVAL);
	CHECK(c && c->n_errors == 5);
	if (c && c->n_errors == 5) {
		unsigned want[] = {2, 4, 5, 6, 8};
		for (size_t i = 0; i < 5; i++)
			CHECK_EQ(c->errors[i].line, want[i]);
	} else {
		dump_errors(c);
	}
	config_free(c);
}

static void test_limits(void)
{
	struct config_reader *r;
	struct config *c;
	char line[CONFIG_LINE_MAX + 64];

	/* A line of exactly the limit is read; one byte more is an error, not an overflow. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "keepalive = 9", 13);
	CHECK_EQ(config_read_init(&r), 0);
	CHECK_EQ(config_read_line(r, line, CONFIG_LINE_MAX), 0);
	CHECK_EQ(config_read_line(r, line, CONFIG_LINE_MAX + 1), -EINVAL);
	CHECK_EQ(config_read_finish(r, &c), -EINVAL);
	CHECK(c && c->n_errors == 1 && has_error(c, 2, "4097 bytes", "at most 4096", NULL));
	config_free(c);

	/* 17 addresses, 17 windows, 65 listen lines: the one past each limit is named. */
	size_t cap = 1 << 20, o = 0;
	char *text = malloc(cap);
	o += (size_t)snprintf(text + o, cap - o, "[peer a]\n");
	for (int i = 0; i < 17; i++)
		o += (size_t)snprintf(text + o, cap - o, "addr = h%d:1\nwindow = %02d:00-%02d:30\n",
				      i, i, i);
	CHECK_EQ(parse(text, &c), -EINVAL);
	CHECK(c && c->n_errors == 2 && has_error(c, 34, "more than 16 addresses", NULL) &&
	      has_error(c, 35, "more than 16 windows", NULL));
	config_free(c);
	o = 0;
	for (int i = 0; i < 65; i++)
		o += (size_t)snprintf(text + o, cap - o, "listen = 10.0.0.%d:1\n", i);
	CHECK_EQ(parse(text, &c), -EINVAL);
	CHECK(c && c->n_errors == 1 && has_error(c, 65, "more than 64", NULL));
	config_free(c);
	free(text);

	/* 4097 peers and 65537 routes. */
	CHECK_EQ(config_read_init(&r), 0);
	for (int i = 0; i < 4097; i++) {
		int n = snprintf(line, sizeof(line), "[peer p%d]\n", i);
		CHECK_EQ(config_read_line(r, line, (size_t)n), i < 4096 ? 0 : -EINVAL);
	}
	CHECK_EQ(config_read_line(r, "[route]\n", 8), 0);
	for (int i = 1; i <= 65538; i++) {
		int n = snprintf(line, sizeof(line), "ipn:%d = p%d\n", i, i % 4096);
		CHECK_EQ(config_read_line(r, line, (size_t)n), i <= 65536 ? 0 : -EINVAL);
	}
	CHECK_EQ(config_read_finish(r, &c), -EINVAL);
	CHECK(c && c->n_errors == 2);
	CHECK(has_error(c, 4097, "[peer p4096]", "more than 4096 peers", NULL));
	CHECK(has_error(c, 4098 + 65537, "more than 65536 routes", NULL));
	config_free(c);

	/* A file past CONFIG_FILE_MAX stops being read: -EFBIG, then the error. */
	CHECK_EQ(config_read_init(&r), 0);
	memset(line, '#', CONFIG_LINE_MAX);
	size_t lines = 0;
	int ret;
	while ((ret = config_read_line(r, line, CONFIG_LINE_MAX)) == 0)
		lines++;
	CHECK_EQ(ret, -EFBIG);
	CHECK_EQ(lines, CONFIG_FILE_MAX / CONFIG_LINE_MAX);
	CHECK_EQ(config_read_line(r, "keepalive = 5\n", 14), -EFBIG);
	CHECK_EQ(config_read_finish(r, &c), -EINVAL);
	CHECK(c && c->n_errors == 1 &&
	      has_error(c, (unsigned)lines + 1, "longer than 16 MiB", NULL));
	config_free(c);

	/* Thousands of errors: the first CONFIG_ERRORS_MAX kept, the rest counted. */
	CHECK_EQ(config_read_init(&r), 0);
	for (int i = 0; i < CONFIG_ERRORS_MAX + 10; i++)
		CHECK_EQ(config_read_line(r, "nonsense\n", 9), -EINVAL);
	CHECK_EQ(config_read_finish(r, &c), -EINVAL);
	CHECK(c && c->n_errors == CONFIG_ERRORS_MAX && c->n_errors_dropped == 10);
	config_free(c);
}

#define H (3600ull * 1000)
#define M (60ull * 1000)
/* 2026-03-01 00:00:00 UTC: any midnight will do. */
#define MIDNIGHT (1772323200ull * 1000)

static void test_windows(void)
{
	struct config *c;
	CHECK_EQ(parse("[peer always]\n"
		       "[peer morning]\nwindow = 06:00-07:30\n"
		       "[peer night]\nwindow = 23:00-01:00\n"
		       "[peer chain]\nwindow = 22:00-24:00\nwindow = 00:00-02:00\nwindow = "
		       "01:00-03:00\nwindow = 12:00-12:01\n"
		       "[peer day]\nwindow = 00:00-24:00\n"
		       "[peer round]\nwindow = 10:00-20:00\nwindow = 19:00-10:30\n",
		       &c),
		 0);
	if (!c || c->n_peers != 6)
		return;
	const struct config_peer *always = &c->peers[0], *morning = &c->peers[1];
	const struct config_peer *night = &c->peers[2], *chain = &c->peers[3];
	const struct config_peer *day = &c->peers[4], *round = &c->peers[5];

	CHECK(config_window_open(always, MIDNIGHT + 5 * H));
	CHECK_EQ(config_window_next_open(always, MIDNIGHT + 5 * H), 0);
	CHECK(config_window_next_close(always, MIDNIGHT) == UINT64_MAX);

	CHECK(!config_window_open(morning, MIDNIGHT + 5 * H));
	CHECK_EQ(config_window_next_open(morning, MIDNIGHT + 5 * H), 1 * H);
	CHECK_EQ(config_window_next_close(morning, MIDNIGHT + 5 * H), 0);
	CHECK(config_window_open(morning, MIDNIGHT + 6 * H)); /* the start is inside */
	CHECK_EQ(config_window_next_close(morning, MIDNIGHT + 6 * H), 90 * M);
	CHECK(config_window_open(morning, MIDNIGHT + 7 * H + 30 * M - 1));
	CHECK(!config_window_open(morning, MIDNIGHT + 7 * H + 30 * M)); /* the end is not */
	/* Just after it closes: tomorrow's opening, across midnight. */
	CHECK_EQ(config_window_next_open(morning, MIDNIGHT + 7 * H + 30 * M), 22 * H + 30 * M);
	CHECK_EQ(config_window_next_open(morning, MIDNIGHT + 23 * H), 7 * H);

	/* Wrapping midnight: open late and early on the same day, closed in between. */
	CHECK(config_window_open(night, MIDNIGHT + 23 * H + 30 * M));
	CHECK(config_window_open(night, MIDNIGHT + 30 * M));
	CHECK(config_window_open(night, MIDNIGHT));
	CHECK(!config_window_open(night, MIDNIGHT + 1 * H));
	CHECK(!config_window_open(night, MIDNIGHT + 22 * H + 59 * M));
	CHECK_EQ(config_window_next_open(night, MIDNIGHT + 1 * H), 22 * H);
	CHECK_EQ(config_window_next_open(night, MIDNIGHT + 22 * H + 59 * M), 1 * M);
	CHECK_EQ(config_window_next_close(night, MIDNIGHT + 23 * H + 30 * M), 90 * M);
	CHECK_EQ(config_window_next_close(night, MIDNIGHT + 30 * M), 30 * M);

	/* Windows that meet or overlap close once, at the end of the last. */
	CHECK_EQ(config_window_next_close(chain, MIDNIGHT + 23 * H), 4 * H);
	CHECK_EQ(config_window_next_close(chain, MIDNIGHT + 90 * M), 90 * M);
	CHECK_EQ(config_window_next_open(chain, MIDNIGHT + 3 * H), 9 * H);
	CHECK_EQ(config_window_next_open(chain, MIDNIGHT + 12 * H + 1 * M), 9 * H + 59 * M);
	CHECK(!config_window_open(chain, MIDNIGHT + 12 * H + 1 * M));

	CHECK(config_window_open(day, MIDNIGHT + 23 * H + 59 * M));
	CHECK(config_window_next_close(day, MIDNIGHT + 5 * H) == UINT64_MAX);
	/* Two windows that cover the day between them never close either. */
	CHECK(config_window_next_close(round, MIDNIGHT + 11 * H) == UINT64_MAX);
	CHECK(config_window_next_close(round, MIDNIGHT + 10 * H + 15 * M) == UINT64_MAX);
	config_free(c);
}

/* What config_print writes parses back to the same settings. */
static void test_serial(void)
{
	struct config *c;
	CHECK_EQ(parse("[peer radio]\nserial = /dev/ttyUSB0\nbaud = 9600\nframing = 8E1\n"
		       "flow = rtscts\n",
		       &c),
		 0);
	CHECK(c && c->n_peers == 1 &&
	      !strcmp(c->peers[0].serial, "serial:/dev/ttyUSB0,9600,8E1,rtscts"));
	config_free(c);
	CHECK_EQ(parse("[peer radio]\nparity = odd\nserial = /dev/ttyS1\n", &c), 0);
	CHECK(c && !strcmp(c->peers[0].serial, "serial:/dev/ttyS1,19200,8O1,none"));
	config_free(c);
	CHECK_EQ(parse("[peer hub]\naddr = h:1\n", &c), 0);
	CHECK(c && c->peers[0].serial[0] == '\0');
	config_free(c);
	EXPECT_ERROR("[peer a]\nserial = ttyUSB0\n", 2, "serial", "absolute path");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nbaud = 12\n", 3, "baud", "50 to 4000000");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nflow = xonxoff\n", 3, "flow", "0x11");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nframing = 7E1\n", 3, "framing", "8 data bits");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nparity = mark\n", 3, "parity", "none, even");
	EXPECT_ERROR("[peer a]\nbaud = 9600\n", 2, "give its device");
	EXPECT_ERROR("[peer a]\naddr = h:1\nserial = /dev/x\n", 3, "not both");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nserial = /dev/y\n", 3, "serial", "twice");
	CHECK_EQ(parse("[peer sat]\ncost-per-mib = 12.345678\n", &c), 0);
	CHECK(c && c->peers[0].cost_micro_per_mib == 12345678);
	config_free(c);
	CHECK_EQ(parse("[peer sat]\ncost-per-mib = 3\n", &c), 0);
	CHECK(c && c->peers[0].cost_micro_per_mib == 3000000);
	config_free(c);
	EXPECT_ERROR("[peer a]\ncost-per-mib = 1,5\n", 2, "cost-per-mib", "1,5", "decimals");
	EXPECT_ERROR("[peer a]\ncost-per-mib = -1\n", 2, "cost-per-mib");
	EXPECT_ERROR("[peer a]\ncost-per-mib = .\n", 2, "cost-per-mib");
	EXPECT_ERROR("[peer a]\ncost-per-mib = 0.1234567\n", 2, "cost-per-mib", "6 decimals");
}

static void test_modems(void)
{
	struct config *c;
	CHECK_EQ(parse("[peer hub]\nserial = /dev/ttyACM0\ndial = T0,555 1234\nmodem-init = AT&F\n"
		       "modem-init = ATS7=45\nidle-hangup = 2m\nredial = 90s\n",
		       &c),
		 0);
	const struct config_peer *p = c ? &c->peers[0] : NULL;
	CHECK(p && p->modem_line == 3 && !strcmp(p->modem.dial, "T0,555 1234") &&
	      p->modem.n_init == 2 && !strcmp(p->modem.init[1], "ATS7=45") && !p->modem.answer &&
	      p->modem.idle_ms == 120000 && p->modem.redial_ms == 90000);
	config_free(c);
	CHECK_EQ(parse("[peer field]\nserial = /dev/ttyS0\nanswer = yes\n", &c), 0);
	CHECK(c && c->peers[0].modem.answer && c->peers[0].modem.n_init == 0 &&
	      c->peers[0].modem.idle_ms == HAYES_IDLE_DEFAULT_MS);
	config_free(c);
	EXPECT_ERROR("[peer a]\ndial = 555\n", 2, "give its device");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nmodem-init = ATZ\n", 3,
		     "neither dials nor answers");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nanswer = yes\ndial = 555;ATH\n", 4, "dial",
		     "digits");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nanswer = yes\nmodem-init = +++ATH\n", 4,
		     "modem-init", "starts with AT");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nanswer = yes\nmodem-init = AT+++\n", 4,
		     "modem-init", "escape");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\ndial = 5\nidle-hangup = 0s\n", 4, "idle-hangup");
	CHECK_EQ(parse("[peer hub]\nsbd = /dev/ttyUSB1\nsbd-check = 6h\n", &c), 0);
	CHECK(c && !strcmp(c->peers[0].sbd, "serial:/dev/ttyUSB1,19200,8N1,none") &&
	      c->peers[0].sbd_check_ms == 6 * 3600000u &&
	      c->peers[0].sbd_retry_ms == CONFIG_SBD_RETRY_DEFAULT_MS && !c->peers[0].serial[0]);
	config_free(c);
	EXPECT_ERROR("[peer a]\nsbd = /dev/x\naddr = h:1\n", 2, "SBD modem or TCP");
	EXPECT_ERROR("[peer a]\nsbd = /dev/x\nserial = /dev/y\n", 2, "SBD modem or a serial line");
	EXPECT_ERROR("[peer a]\nsbd = x\n", 2, "sbd", "absolute path");
	EXPECT_ERROR("[peer a]\nsbd = /dev/x\nsbd-retry = soon\n", 3, "sbd-retry", "duration");
	/* Keys that would do nothing are errors, not silently dropped by config show. */
	CHECK_EQ(parse("[peer hub]\nsbd = /dev/x\nbaud = 9600\nsbd-retry = 1m\n", &c), 0);
	CHECK(c && !strcmp(c->peers[0].sbd, "serial:/dev/x,9600,8N1,none") &&
	      c->peers[0].sbd_retry_ms == 60000);
	config_free(c);
	EXPECT_ERROR("[peer a]\nsbd-check = 6h\n", 2, "sbd-check", "needs sbd = DEVICE",
		     "[peer a]");
	EXPECT_ERROR("[peer a]\nsbd-retry = 1m\n", 2, "sbd-retry", "needs sbd = DEVICE");
	EXPECT_ERROR("[peer a]\nserial = /dev/x\nsbd-check = 1h\n", 3, "sbd-check",
		     "needs sbd = DEVICE");
	EXPECT_ERROR("[peer a]\nsbd = /dev/x\n[peer b]\nsbd-retry = 5s\n", 4, "sbd-retry",
		     "[peer b]");
	EXPECT_ERROR("[peer a]\nsbd = /dev/x\nframing = 8E1\n", 3, "framing", "SBD", "baud");
	EXPECT_ERROR("[peer a]\nparity = odd\nsbd = /dev/x\n", 2, "parity", "SBD");
	EXPECT_ERROR("[peer a]\nsbd = /dev/x\nflow = rtscts\n", 3, "flow", "SBD");
	CHECK_EQ(parse("[peer a]\nsbd-check = 1h\nsbd-retry = 5s\n[peer b]\nsbd = /dev/x\n"
		       "framing = 8N2\nflow = rtscts\n",
		       &c),
		 -EINVAL);
	CHECK(c && c->n_errors == 4 && has_error(c, 2, "sbd-check", NULL) &&
	      has_error(c, 3, "sbd-retry", NULL) && has_error(c, 6, "framing", NULL) &&
	      has_error(c, 7, "flow", NULL));
	config_free(c);
}

/* The one address rule, for tern.conf's listen and addr, peer add --addr and run --listen. */
static void test_addr_parse(void)
{
	static const struct {
		const char *text, *host;
		unsigned port;
	} good[] = {
	    {"10.0.0.7:4556", "10.0.0.7", 4556},
	    {"hub.example.org:1", "hub.example.org", 1},
	    {"field_7.lan:65535", "field_7.lan", 65535},
	    {"[::1]:4556", "::1", 4556},
	    {"[fe80::1%eth0]:9", "fe80::1%eth0", 9},
	    {"0.0.0.0:4556", "0.0.0.0", 4556},
	};
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"10.0.0.300:4556", "not an IPv4 address"},
	    {"hub.example.org", "no port"},
	    {"::1:4556", "brackets"},
	    {"[::1]4556", "no port"},
	    {"[::1:4556", "no ']'"},
	    {"[zz::1]:4556", "not an IPv6 address"},
	    {"[fe80::1%]:4556", "interface"},
	    {":4556", "no host"},
	    {"h:0", "1 to 65535"},
	    {"h:65536", "1 to 65535"},
	    {"h:+80", "1 to 65535"},
	    {"h:", "1 to 65535"},
	    {"bad!host:80", "not a host name"},
	    {"-h:80", "not a host name"},
	    {"a..b:80", "not a host name"},
	};
	struct config_addr a;
	const char *why;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&a, 0, sizeof(a));
		bool ok = config_addr_parse(good[i].text, &a, &why) == 0 &&
			  !strcmp(a.host, good[i].host) && a.port == good[i].port &&
			  !strcmp(a.text, good[i].text);
		if (!ok)
			fprintf(stderr, "  %s refused or misread\n", good[i].text);
		CHECK(ok);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = "";
		bool ok =
		    config_addr_parse(bad[i].text, &a, &why) == -EINVAL && strstr(why, bad[i].why);
		if (!ok)
			fprintf(stderr, "  %s: %s, expected %s\n", bad[i].text, why, bad[i].why);
		CHECK(ok);
	}
	char longest[CONFIG_ADDR_MAX + 2];
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	memcpy(longest + sizeof(longest) - 4, ":80", 3);
	CHECK(config_addr_parse(longest, &a, &why) == -EINVAL && strstr(why, "255 bytes"));
}

static void test_round_trip(void)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "listen=[::1]:9\nkeepalive = 7200\n[peer hub]\nid = %s\naddr = h:1\n"
		 "sneakernet = off\nbytes-per-day = 3072\nwindow = 6:05-24:00\n"
		 "[peer x]\nmin-priority = urgent\nbytes-per-day = 1048577\n"
		 "[route]\ndefault = hub\nipn:7.1 = x\nhub2 = hub\n",
		 id_hub);
	char *id = strstr(text, id_hub);
	for (size_t i = 0; id_hub[i]; i++) /* the id in capitals: case is forgiven */
		if (id_hub[i] >= 'a' && id_hub[i] <= 'z')
			id[i] = (char)(id_hub[i] - 'a' + 'A');
	struct config *a, *b;
	CHECK_EQ(parse(text, &a), 0);
	if (!a)
		return;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	config_print(a, f);
	fclose(f);
	CHECK(strstr(out, "keepalive = 2h\n") && strstr(out, "bytes-per-day = 3K\n"));
	CHECK(strstr(out, "bytes-per-day = 1048577\n") && strstr(out, "window = 06:05-24:00\n"));
	CHECK(strstr(out, "sneakernet = no\n") && strstr(out, id_hub));
	CHECK_EQ(parse(out, &b), 0);
	if (b) {
		CHECK(b->n_listens == 1 && b->keepalive_ms == a->keepalive_ms);
		CHECK(b->n_peers == 2 && b->n_routes == 3);
		for (size_t i = 0; i < 2 && b->n_peers == 2; i++) {
			const struct config_peer *p = &a->peers[i], *q = &b->peers[i];
			CHECK(!strcmp(p->name, q->name) && p->has_id == q->has_id);
			CHECK(!memcmp(&p->id, &q->id, sizeof(p->id)));
			CHECK(p->sneakernet_set == q->sneakernet_set &&
			      p->sneakernet == q->sneakernet);
			CHECK(p->min_priority == q->min_priority &&
			      p->bytes_per_day == q->bytes_per_day);
			CHECK(p->n_windows == q->n_windows && p->n_addrs == q->n_addrs);
		}
		for (size_t i = 0; i < 3 && b->n_routes == 3; i++)
			CHECK(a->routes[i].kind == b->routes[i].kind &&
			      a->routes[i].dest_node == b->routes[i].dest_node &&
			      !strcmp(a->routes[i].via, b->routes[i].via));
	}
	free(out);
	config_free(a);
	config_free(b);
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || fchmod(fd, mode) < 0)
		abort();
	close(fd);
}

static void test_load(void)
{
	char dir[] = "/tmp/tern-test-config-XXXXXX", path[256];
	struct config *c;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/tern.conf", dir);

	CHECK_EQ(config_load(path, &c), -ENOENT);
	CHECK(c == NULL);
	CHECK_EQ(config_load(dir, &c), -EISDIR);

	/* The last line needs no newline. */
	const char good[] = "listen = 127.0.0.1:4556\n[peer a]\nwindow = 01:00-02:00";
	write_file(path, good, strlen(good), 0644);
	CHECK_EQ(config_load(path, &c), 0);
	CHECK(c && c->n_listens == 1 && c->n_peers == 1 && c->peers[0].n_windows == 1);
	CHECK(c && c->lines == 3);
	config_free(c);

	write_file(path, good, strlen(good), 0664);
	CHECK_EQ(config_load(path, &c), -EINVAL);
	CHECK(c && c->n_errors == 1 && has_error(c, 0, "writable by group or others", NULL));
	CHECK(c && c->n_peers == 0);
	config_free(c);

	/* A 100 KB line in the middle: one error, the lines around it still checked. */
	size_t n = 100000;
	char *big = malloc(n + 64);
	memcpy(big, "log-level = bad\n", 16);
	memset(big + 16, 'x', n);
	memcpy(big + 16 + n, "\nkeepalive = 1x\n", 16);
	write_file(path, big, n + 32, 0600);
	CHECK_EQ(config_load(path, &c), -EINVAL);
	CHECK(c && c->n_errors == 3 && has_error(c, 1, "log-level", NULL) &&
	      has_error(c, 2, "100000 bytes long", NULL) && has_error(c, 3, "keepalive", NULL));
	config_free(c);
	/* A NUL in a line is an error (and no strlen cuts the line short before it). */
	write_file(path, "keepalive = 5\0junk\n", 19, 0600);
	CHECK_EQ(config_load(path, &c), -EINVAL);
	CHECK(c && has_error(c, 1, "0x00", NULL));
	config_free(c);
	free(big);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	struct identity *a, *b;
	struct identity_public pub;
	if (tern_crypto_init() < 0 || identity_generate(&a) < 0 || identity_generate(&b) < 0)
		return 1;
	identity_get_public(a, &pub_hub);
	identity_public_encode(&pub_hub, id_hub, sizeof(id_hub));
	identity_get_public(b, &pub);
	identity_public_encode(&pub, id_relay, sizeof(id_relay));
	identity_free(a);
	identity_free(b);

	test_full_file();
	test_defaults();
	test_errors_with_lines();
	test_all_errors();
	test_limits();
	test_windows();
	test_serial();
	test_modems();
	test_addr_parse();
	test_round_trip();
	test_load();
	TEST_MAIN_END();
}
