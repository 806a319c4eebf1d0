/*
 * Diagnostics: a single formatted line per call, written with one write(2) so lines
 * from different threads never interleave.
 */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_ident = "vaultfs";
static bool log_to_syslog;
static int log_max_level = LOG_INFO;

void log_init(const char *ident, bool use_syslog, int max_level)
{
	log_ident = ident;
	log_to_syslog = use_syslog;
	log_max_level = max_level;
	if (use_syslog)
		openlog(ident, LOG_PID, LOG_DAEMON);
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int prefix, body;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	if (log_to_syslog) {
		vsyslog(level, fmt, ap);
		va_end(ap);
		return;
	}
	prefix = snprintf(line, sizeof(line), "%s: %s: ", log_ident, level_name(level));
	body = vsnprintf(line + prefix, sizeof(line) - (size_t)prefix - 1, fmt, ap);
	va_end(ap);
	if (body < 0)
		return;
	size_t len = strlen(line);
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}
