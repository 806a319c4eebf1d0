/*
 * Unit tests of lib/secret: guarded allocation, wiping, constant-time comparison and
 * process hardening (checked in a forked child so the test runner keeps its limits).
 */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/secret.h"
#include "tests/harness.h"

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
}

START_TEST(test_init_twice)
{
	ck_assert_int_eq(secret_init(), 0);
	ck_assert_int_eq(secret_init(), 0);
}
END_TEST

START_TEST(test_alloc_wipe_free)
{
	uint8_t *secret = secret_alloc(37);
	uint8_t buf[64];

	ck_assert_ptr_nonnull(secret);
	memset(secret, 0x5c, 37);
	ck_assert_uint_eq(secret[36], 0x5c);
	secret_wipe(secret, 37);
	for (int i = 0; i < 37; i++)
		ck_assert_uint_eq(secret[i], 0);
	secret_free(secret);
	secret_free(NULL);

	memset(buf, 0xff, sizeof(buf));
	secret_wipe(buf, 32);
	for (int i = 0; i < 32; i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_uint_eq(buf[32], 0xff);
}
END_TEST

START_TEST(test_compare)
{
	uint8_t a[32], b[32];

	for (int i = 0; i < 32; i++)
		a[i] = b[i] = (uint8_t)i;
	ck_assert_int_eq(secret_compare(a, b, sizeof(a)), 0);
	b[0] ^= 1;
	ck_assert_int_eq(secret_compare(a, b, sizeof(a)), -1);
	b[0] ^= 1;
	b[31] ^= 0x80;
	ck_assert_int_eq(secret_compare(a, b, sizeof(a)), -1);
	/* Only len bytes count. */
	ck_assert_int_eq(secret_compare(a, b, 31), 0);
	ck_assert_int_eq(secret_compare(a, b, 0), 0);
}
END_TEST

/* Exit codes of the hardened child: which property failed. */
enum { CHILD_OK, CHILD_HARDEN_FAILED, CHILD_DUMPABLE, CHILD_CORE_LIMIT };

START_TEST(test_harden_process)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit limit;

		if (secret_harden_process() != 0)
			_exit(CHILD_HARDEN_FAILED);
		if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
			_exit(CHILD_DUMPABLE);
		if (getrlimit(RLIMIT_CORE, &limit) != 0 || limit.rlim_cur != 0 ||
		    limit.rlim_max != 0)
			_exit(CHILD_CORE_LIMIT);
		/* Idempotent: safe to call again after a privilege change. */
		if (secret_harden_process() != 0)
			_exit(CHILD_HARDEN_FAILED);
		_exit(CHILD_OK);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), CHILD_OK);
}
END_TEST

static Suite *secret_suite(void)
{
	Suite *suite = suite_create("secret");
	TCase *tc = tcase_create("secret");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_init_twice);
	tcase_add_test(tc, test_alloc_wipe_free);
	tcase_add_test(tc, test_compare);
	tcase_add_test(tc, test_harden_process);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(secret_suite());
}
