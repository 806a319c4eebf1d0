/*
 * Log lines: one whole line per call with the daemon's name and the level, cut rather
 * than overflowing when a message is too long, and nothing below the chosen level.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "tests/harness.h"

/* Run fn with stderr captured; returns what it wrote (malloc'd, NUL-terminated). */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/check_log.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	int saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	fn();
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *text = calloc(1, (size_t)len + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(pread(fd, text, (size_t)len, 0), len);
	close(fd);
	return text;
}

static void write_two(void)
{
	log_init("vaultfs", false, LOG_INFO);
	log_error("object %s block %d: authentication failed", "00ff", 2);
	log_info("vault mounted");
	log_debug("not shown at info level");
}

START_TEST(lines_carry_name_and_level)
{
	char *text = capture(write_two);
	ck_assert_str_eq(text, "vaultfs: error: object 00ff block 2: authentication failed\n"
			       "vaultfs: info: vault mounted\n");
	free(text);
}
END_TEST

static void write_long(void)
{
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_init("vaultfs", false, LOG_DEBUG);
	log_warn("%s", big);
	log_debug("after");
}

START_TEST(long_messages_are_cut_to_one_line)
{
	char *text = capture(write_long);
	char *first_end = strchr(text, '\n');
	ck_assert_ptr_nonnull(first_end);
	ck_assert_uint_lt((size_t)(first_end - text), 1024);
	ck_assert(strncmp(text, "vaultfs: warning: aaaa", 22) == 0);
	ck_assert_str_eq(first_end + 1, "vaultfs: debug: after\n");
	free(text);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("log");
	TCase *tc = tcase_create("stderr");
	tcase_add_test(tc, lines_carry_name_and_level);
	tcase_add_test(tc, long_messages_are_cut_to_one_line);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
