/*
 * Runs a Check suite and prints the one summary line that .ci/run adds up:
 * "checks: N passed, N failed". Every test program ends through here. Also the few
 * helpers several suites share.
 */
#ifndef VAULTFS_TESTS_HARNESS_H
#define VAULTFS_TESTS_HARNESS_H

#include <check.h>
#include <errno.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* AddressSanitizer turns mlock(2) into a no-op for the whole process (its interceptor),
 * and a daemon built with it, as the tests are, locks nothing: tests of locked memory
 * skip under it. */
#ifndef __has_feature
#define __has_feature(feature) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define HARNESS_MLOCK_OBSERVABLE false
#else
#define HARNESS_MLOCK_OBSERVABLE true
#endif

#define SKIP_UNLESS_MLOCK_OBSERVABLE()                                                  \
	do {                                                                           \
		if (!HARNESS_MLOCK_OBSERVABLE) {                                       \
			fprintf(stderr, "skip %s: mlock is a no-op under AddressSanitizer\n", \
				__func__);                                             \
			return;                                                        \
		}                                                                      \
	} while (0)

/* Whether needle occurs in any regular file directly in dir (an LMDB environment's data
 * and lock files, and anything left beside them). */
static inline bool harness_dir_contains(const char *dir, const void *needle, size_t needle_len)
{
	DIR *d = opendir(dir);
	struct dirent *entry;
	bool found = false;

	ck_assert_ptr_nonnull(d);
	while (!found && (entry = readdir(d)) != NULL) {
		char path[512];
		struct stat st;
		uint8_t *buf;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
		ck_assert_int_eq(lstat(path, &st), 0);
		if (!S_ISREG(st.st_mode) || st.st_size == 0)
			continue;
		buf = malloc((size_t)st.st_size);
		ck_assert_ptr_nonnull(buf);
		f = fopen(path, "rb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
		fclose(f);
		found = memmem(buf, (size_t)st.st_size, needle, needle_len) != NULL;
		free(buf);
	}
	closedir(d);
	return found;
}

/*
 * A tmpfs of size ("64k", "40m") mounted nowhere: fsopen() and fsmount() make a detached
 * mount, reached only through the descriptor returned. Nothing can be left mounted, even
 * by a test that dies, and neither a mount namespace nor a "/" that is a mount point (a
 * chroot lacks one) is needed. Returns the descriptor, or -errno when this process may
 * not make one (no CAP_SYS_ADMIN, as in an unprivileged container).
 */
static inline int harness_detached_tmpfs(const char *size)
{
	int fs, mnt;

	fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	ck_assert_int_eq(fsconfig(fs, FSCONFIG_SET_STRING, "size", size, 0), 0);
	ck_assert_int_eq(fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), 0);
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	ck_assert_msg(mnt >= 0, "fsmount: %s", strerror(errno));
	close(fs);
	return mnt;
}

#endif
