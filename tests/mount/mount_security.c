/*
 * The daemon's own defences, seen from outside: it runs with RLIMIT_CORE 0 (set by
 * secret_harden_process(), which makes it non-dumpable in the same step and is checked
 * there by check_secret), and no key material appears in its command line, environment
 * or log. (Non-dumpability itself is not observable from outside on this kernel: a
 * same-uid peer without CAP_SYS_PTRACE could still read a non-dumpable test process.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define KEY_HEX_LEN 64

/* The 64 hex digits of the key in the key file. */
static void key_hex(const char *key_path, char hex[KEY_HEX_LEN + 1])
{
	char *text = fixture_read_text(key_path, NULL);
	ck_assert_ptr_nonnull(text);
	char *line = strchr(text, '\n');
	ck_assert_ptr_nonnull(line);
	ck_assert_int_ge(strlen(line + 1), KEY_HEX_LEN);
	memcpy(hex, line + 1, KEY_HEX_LEN);
	hex[KEY_HEX_LEN] = '\0';
	free(text);
}

/* Does the file (which may hold NULs) contain needle? */
static bool file_contains(const char *path, const char *needle)
{
	size_t len;
	char *text = fixture_read_text(path, &len);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	bool found = memmem(text, len, needle, strlen(needle)) != NULL;
	free(text);
	return found;
}

START_TEST(test_root_daemon_hardened)
{
	SKIP_IF_PLAIN();
	char proc[64], hex[KEY_HEX_LEN + 1];

	key_hex(fx.key, hex);
	snprintf(proc, sizeof(proc), "/proc/%d/limits", (int)fx.daemon);
	ck_assert(file_contains(proc, "Max core file size        0                    0"));
	snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)fx.daemon);
	ck_assert(!file_contains(proc, hex));
	snprintf(proc, sizeof(proc), "/proc/%d/environ", (int)fx.daemon);
	ck_assert(!file_contains(proc, hex));
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 70000, 9), 0);
	fixture_remount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 70000, 9), 0);
	ck_assert(!file_contains(fx.log, hex));
}
END_TEST

static Suite *security_suite(void)
{
	Suite *suite = suite_create("mount_security");
	TCase *root = tcase_create("root daemon");
	tcase_add_checked_fixture(root, fixture_setup, fixture_teardown);
	tcase_set_timeout(root, 60);
	tcase_add_test(root, test_root_daemon_hardened);
	suite_add_tcase(suite, root);
	return suite;
}

int main(void)
{
	return harness_run(security_suite());
}
