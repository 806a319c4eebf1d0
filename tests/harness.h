/*
 * Runs a Check suite and prints the one summary line that .ci/run adds up:
 * "checks: N passed, N failed". Every test program ends through here.
 */
#ifndef VAULTFS_TESTS_HARNESS_H
#define VAULTFS_TESTS_HARNESS_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static inline int harness_run(Suite *suite)
{
	SRunner *runner = srunner_create(suite);
	srunner_run_all(runner, CK_NORMAL);
	int run = srunner_ntests_run(runner);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	printf("checks: %d passed, %d failed\n", run - failed, failed);
	return failed == 0 && run > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
