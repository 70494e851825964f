/* The daemon's log: one line per event on stderr, with levels; journald adds its own timestamps. */
#pragma once

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/*
 * Sets the level below which lines are dropped. Under journald (JOURNAL_STREAM set) lines
 * carry a syslog priority prefix ("<6>") and no timestamp; otherwise an ISO time and the level.
 */
void log_init(enum log_level level);
/* Parses error|warn|info|debug. 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
/*
 * Writes one line. Never give it a key, a passphrase or message plaintext: peers' words
 * reach it only through safe_text (controls replaced), so no peer can forge a line.
 */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
