/*
 * Unit tests of lib/secret: guarded allocation, wiping, constant-time comparison,
 * process hardening (checked in a forked child so the test runner keeps its limits) and
 * secret memory that stays locked in a forked child.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
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

/* VmLck of this process in kB, or -1. */
static long locked_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *status = fopen("/proc/self/status", "r");

	if (!status)
		return -1;
	while (fgets(line, sizeof(line), status))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(status);
	return kb;
}

/* Whether every mapping of this process that holds a byte of [start, start + len) is
 * locked (its VmFlags in /proc/self/smaps say "lo"); false when none does. */
static bool range_locked(const void *start, size_t len)
{
	uintptr_t first = (uintptr_t)start, last = first + len - 1;
	uintptr_t low = 0, high = 0;
	bool inside = false, seen = false, locked = true;
	char line[512];
	FILE *smaps = fopen("/proc/self/smaps", "r");

	if (!smaps)
		return false;
	while (fgets(line, sizeof(line), smaps)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &low, &high) == 2) {
			inside = low <= last && high > first;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			seen = true;
			if (!strstr(line, " lo"))
				locked = false;
		}
	}
	fclose(smaps);
	return seen && locked;
}

/* Exit codes of the forked child: which property failed. */
enum { FORK_OK, FORK_NO_VMLCK, FORK_NOT_LOCKED, FORK_CHANGED };

/* A region page-sized or not, made before a fork, is locked in the child too (the kernel
 * does not carry mlock over a fork; secret.c locks it again), and stays usable there. */
START_TEST(test_locked_after_fork)
{
	static const size_t sizes[] = { 32, 4096, 5000 };
	uint8_t *secrets[3];
	uint8_t *freed;
	int status;
	pid_t pid;

	SKIP_UNLESS_MLOCK_OBSERVABLE();

	for (size_t i = 0; i < 3; i++) {
		secrets[i] = secret_alloc(sizes[i]);
		ck_assert_ptr_nonnull(secrets[i]);
		memset(secrets[i], 0xa5, sizes[i]);
		ck_assert_msg(range_locked(secrets[i], sizes[i]),
			      "secret memory is not locked before the fork: raise ulimit -l");
	}
	/* A freed region is forgotten: the child does not touch its unmapped pages. */
	freed = secret_alloc(64);
	ck_assert_ptr_nonnull(freed);
	secret_free(freed);
	ck_assert_int_gt(locked_kb(), 0);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (locked_kb() <= 0)
			_exit(FORK_NO_VMLCK);
		for (size_t i = 0; i < 3; i++) {
			if (!range_locked(secrets[i], sizes[i]))
				_exit(FORK_NOT_LOCKED);
			/* The canary page before a page-sized region is locked as well. */
			if (!range_locked(secrets[i] - 16, 16))
				_exit(FORK_NOT_LOCKED);
			for (size_t j = 0; j < sizes[i]; j++)
				if (secrets[i][j] != 0xa5)
					_exit(FORK_CHANGED);
			secret_free(secrets[i]);
		}
		_exit(FORK_OK);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), FORK_OK);
	for (size_t i = 0; i < 3; i++)
		secret_free(secrets[i]);
}
END_TEST

/* Many regions, freed out of order and made again (the registry grows and deletes in
 * the middle of its probe runs): the child locks exactly what the parent had locked. */
START_TEST(test_many_locked_after_fork)
{
	enum { COUNT = 200 };
	uint8_t *secrets[COUNT];
	long parent_kb;
	int status;
	pid_t pid;

	SKIP_UNLESS_MLOCK_OBSERVABLE();

	for (int i = 0; i < COUNT; i++) {
		secrets[i] = secret_alloc(32);
		ck_assert_ptr_nonnull(secrets[i]);
		memset(secrets[i], i, 32);
	}
	for (int i = 0; i < COUNT; i += 3) {
		secret_free(secrets[i]);
		secrets[i] = NULL;
	}
	for (int i = 0; i < COUNT; i += 6) {
		secrets[i] = secret_alloc(32);
		ck_assert_ptr_nonnull(secrets[i]);
		memset(secrets[i], i, 32);
	}
	parent_kb = locked_kb();
	ck_assert_msg(parent_kb > 0, "nothing is locked before the fork: raise ulimit -l");

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (locked_kb() != parent_kb)
			_exit(FORK_NO_VMLCK);
		for (int i = 0; i < COUNT; i++) {
			if (!secrets[i])
				continue;
			if (secrets[i][0] != (uint8_t)i || secrets[i][31] != (uint8_t)i)
				_exit(FORK_CHANGED);
			secret_free(secrets[i]);
		}
		_exit(FORK_OK);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), FORK_OK);
	for (int i = 0; i < COUNT; i++)
		secret_free(secrets[i]);
}
END_TEST

/* secret_free() of memory secret_alloc() did not return is a bug: it aborts rather than
 * hand a foreign pointer to the guarded allocator. */
START_TEST(test_free_foreign_aborts)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint8_t *secret = secret_alloc(32);

		if (!secret)
			_exit(1);
		secret_free(secret);
		secret_free(secret);   /* a double free */
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGABRT);
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
	tcase_add_test(tc, test_locked_after_fork);
	tcase_add_test(tc, test_many_locked_after_fork);
	tcase_add_test(tc, test_free_foreign_aborts);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(secret_suite());
}
