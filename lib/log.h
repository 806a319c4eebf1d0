/*
 * Diagnostics for the daemons and tools: one line per event, to stderr or syslog.
 * Never pass a key, a path inside a vault, a file name or file contents to these
 * functions: object ids, inode numbers and errno values identify things instead.
 */
#ifndef VAULTFS_LOG_H
#define VAULTFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* ident prefixes every line; use_syslog sends lines to syslog(3) instead of stderr;
 * messages above max_level (LOG_ERR < LOG_WARNING < LOG_INFO < LOG_DEBUG) are dropped. */
void log_init(const char *ident, bool use_syslog, int max_level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
