/*
 * Real-mount tests with several users on one allow_other mount: files get the creating
 * user's ids, mode bits are enforced between users (default_permissions), and two users
 * writing concurrently each read back exactly their own data; setuid and setgid are
 * dropped where Linux drops them. Without allow_other, other users are kept out of the
 * mount entirely.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define USER_A 1000
#define USER_B 1001

static const char *shared_dir(void)
{
	return mnt_path("shared");
}

static void make_shared_dir(void)
{
	ck_assert_int_eq(mkdir(shared_dir(), 0777), 0);
	ck_assert_int_eq(chmod(shared_dir(), 0777), 0);
}

struct user_file {
	const char *name;
	mode_t mode;
	uint64_t seed;
};

/* As the calling user: create name with mode and check the new file's owner. */
static int create_own_file(void *arg)
{
	const struct user_file *file = arg;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared/%s", fx.mnt, file->name);
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, file->mode);
	if (fd == -1) {
		fprintf(stderr, "uid %u: create %s: %s\n", (unsigned)getuid(), path, strerror(errno));
		return 10;
	}
	char data[5000];
	pattern_fill(data, sizeof(data), file->seed, 0);
	if (pwrite_full(fd, data, sizeof(data), 0) != (ssize_t)sizeof(data) || close(fd) == -1)
		return 11;
	struct stat st;
	if (stat(path, &st) == -1 || st.st_uid != getuid() || st.st_gid != getgid() ||
	    (st.st_mode & 0777) != file->mode) {
		fprintf(stderr, "uid %u: %s has uid %u gid %u mode %o\n", (unsigned)getuid(), path,
			(unsigned)st.st_uid, (unsigned)st.st_gid, st.st_mode & 0777);
		return 12;
	}
	return pattern_verify_file(path, sizeof(data), file->seed) == 0 ? 0 : 13;
}

/* As another user: a 0600 file of someone else is EACCES for read and write. */
static int denied(void *arg)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared/%s", fx.mnt, (const char *)arg);
	const int flags[] = { O_RDONLY, O_WRONLY, O_RDWR, O_WRONLY | O_TRUNC };
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		int fd = open(path, flags[i] | O_CLOEXEC);
		if (fd != -1 || errno != EACCES) {
			fprintf(stderr, "uid %u: open %s flags %#x: %s, want EACCES\n",
				(unsigned)getuid(), path, flags[i], fd == -1 ? strerror(errno) : "ok");
			return 20;
		}
	}
	if (truncate(path, 0) != -1 || errno != EACCES)
		return 21;
	if (chmod(path, 0666) != -1 || errno != EPERM)
		return 22;
	return 0;
}

/* As another user: a 0644 file of someone else reads but does not write. */
static int read_only(void *arg)
{
	const struct user_file *file = arg;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared/%s", fx.mnt, file->name);
	if (pattern_verify_file(path, 5000, file->seed) != 0)
		return 30;
	if (open(path, O_WRONLY | O_CLOEXEC) != -1 || errno != EACCES)
		return 31;
	return 0;
}

START_TEST(test_private_files)
{
	make_shared_dir();
	struct user_file a = { "a-private", 0600, 1 }, b = { "b-private", 0600, 2 };
	struct user_file a_public = { "a-public", 0644, 3 };
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, create_own_file, &a), 0);
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, create_own_file, &a_public), 0);
	ck_assert_int_eq(fixture_run_as(USER_B, USER_B, create_own_file, &b), 0);
	ck_assert_int_eq(fixture_run_as(USER_B, USER_B, denied, (void *)a.name), 0);
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, denied, (void *)b.name), 0);
	ck_assert_int_eq(fixture_run_as(USER_B, USER_B, read_only, &a_public), 0);
	/* root still reads everything */
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared/%s", fx.mnt, a.name);
	ck_assert_int_eq(pattern_verify_file(path, 5000, a.seed), 0);
	fixture_remount(&fx);
	ck_assert_int_eq(fixture_run_as(USER_B, USER_B, denied, (void *)a.name), 0);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_uid, USER_A);
	ck_assert_int_eq(st.st_gid, USER_A);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

/* As the calling user: a 0700 directory of one's own that the other cannot enter. */
static int make_home(void *arg)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared/home-%u", fx.mnt, (unsigned)getuid());
	(void)arg;
	return mkdir(path, 0700) == 0 ? 0 : 40;
}

static int enter_home(void *arg)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/shared/home-%u/x", fx.mnt, *(const unsigned *)arg);
	if (stat(path, &st) != -1 || errno != EACCES)
		return 41;
	if (open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644) != -1 || errno != EACCES)
		return 42;
	return 0;
}

START_TEST(test_private_directory)
{
	make_shared_dir();
	unsigned owner = USER_A;
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, make_home, NULL), 0);
	ck_assert_int_eq(fixture_run_as(USER_B, USER_B, enter_home, &owner), 0);
}
END_TEST

enum { THREADS = 4, FILES_PER_THREAD = 12, FILE_SIZE = 96 * 1024 };

struct worker {
	pthread_t thread;
	int index;
	int result;
};

static void *write_and_verify(void *arg)
{
	struct worker *worker = arg;
	char path[PATH_MAX];
	for (int i = 0; i < FILES_PER_THREAD && worker->result == 0; i++) {
		uint64_t seed = (uint64_t)getuid() * 1000 + (uint64_t)worker->index * 100 + (uint64_t)i;
		snprintf(path, sizeof(path), "%s/shared/u%u-t%d-f%d", fx.mnt, (unsigned)getuid(),
			 worker->index, i);
		int result = pattern_write_file(path, FILE_SIZE + (size_t)i * 777, seed);
		if (result == 0)
			result = pattern_verify_file(path, FILE_SIZE + (size_t)i * 777, seed);
		if (result != 0) {
			fprintf(stderr, "uid %u: %s: %s\n", (unsigned)getuid(), path, strerror(-result));
			worker->result = 50;
		}
	}
	/* everything once more at the end: no other writer disturbed our files */
	for (int i = 0; i < FILES_PER_THREAD && worker->result == 0; i++) {
		uint64_t seed = (uint64_t)getuid() * 1000 + (uint64_t)worker->index * 100 + (uint64_t)i;
		snprintf(path, sizeof(path), "%s/shared/u%u-t%d-f%d", fx.mnt, (unsigned)getuid(),
			 worker->index, i);
		if (pattern_verify_file(path, FILE_SIZE + (size_t)i * 777, seed) != 0)
			worker->result = 51;
	}
	return NULL;
}

static int concurrent_user(void *arg)
{
	struct worker workers[THREADS];
	int result = 0;
	(void)arg;
	for (int i = 0; i < THREADS; i++) {
		workers[i] = (struct worker){ .index = i };
		if (pthread_create(&workers[i].thread, NULL, write_and_verify, &workers[i]) != 0)
			return 60;
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(workers[i].thread, NULL);
		if (workers[i].result != 0)
			result = workers[i].result;
	}
	return result;
}

START_TEST(test_concurrent_users)
{
	const uid_t uids[2] = { USER_A, USER_B };
	pid_t pids[2];

	make_shared_dir();
	for (int u = 0; u < 2; u++) {
		pids[u] = fixture_start_as(uids[u], uids[u], concurrent_user, NULL);
		ck_assert_int_gt(pids[u], 0);
	}
	for (int u = 0; u < 2; u++) {
		int status = fixture_wait_as(pids[u]);
		ck_assert_msg(status == 0, "uid %u: status %d", (unsigned)uids[u], status);
	}
	fixture_remount(&fx);
	for (int u = 0; u < 2; u++)
		for (int t = 0; t < THREADS; t++)
			for (int i = 0; i < FILES_PER_THREAD; i++) {
				const char *path = mnt_path("shared/u%u-t%d-f%d", (unsigned)uids[u], t, i);
				uint64_t seed = (uint64_t)uids[u] * 1000 + (uint64_t)t * 100 + (uint64_t)i;
				ck_assert_msg(pattern_verify_file(path, FILE_SIZE + (size_t)i * 777, seed) == 0,
					      "%s after remount", path);
				struct stat st;
				ck_assert_int_eq(stat(path, &st), 0);
				ck_assert_int_eq(st.st_uid, uids[u]);
			}
}
END_TEST

static int stat_root(void *arg)
{
	struct stat st;
	(void)arg;
	return stat(fx.mnt, &st) == -1 && errno == EACCES ? 0 : 70;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* A file of USER_A in the shared directory with mode (set after the owner). */
static const char *owned_file(const char *name, mode_t mode)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", shared_dir(), name);
	ck_assert_int_eq(pattern_write(path, 100, 1, false), 0);
	ck_assert_int_eq(chown(path, USER_A, USER_A), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return mnt_path("shared/%s", name);
}

static int write_some(void *arg)
{
	int fd = open(arg, O_WRONLY | O_CLOEXEC);
	if (fd == -1)
		return 40;
	if (pwrite(fd, "more", 4, 100) != 4)
		return 41;
	return close(fd) == 0 ? 0 : 42;
}

static int truncate_it(void *arg)
{
	return truncate(arg, 10) == 0 ? 0 : 43;
}

/* Setuid and setgid go where Linux drops them: at a change of owner (setgid only with
 * group execute), and at a write or truncate by a user without CAP_FSETID, whose
 * modified program must not keep them. Root's write keeps them. */
START_TEST(test_setuid_dropped)
{
	make_shared_dir();
	const char *path = owned_file("chown", 06755);
	ck_assert_int_eq(chown(path, USER_B, USER_B), 0);
	ck_assert_uint_eq(mode_of(path), 0755);

	path = owned_file("chown-sgid-noexec", 02745);
	ck_assert_int_eq(chown(path, USER_B, USER_B), 0);
	ck_assert_uint_eq(mode_of(path), 02745);

	path = owned_file("chown-same", 06755);
	ck_assert_int_eq(chown(path, (uid_t)-1, (gid_t)-1), 0);
	ck_assert_uint_eq(mode_of(path), 0755);

	path = owned_file("root-write", 06755);
	ck_assert_int_eq(write_some((void *)path), 0);
	ck_assert_uint_eq(mode_of(path), 06755);

	path = owned_file("user-write", 06777);
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, write_some, (void *)path), 0);
	ck_assert_uint_eq(mode_of(path), 0777);

	path = owned_file("user-truncate", 04777);
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, truncate_it, (void *)path), 0);
	ck_assert_uint_eq(mode_of(path), 0777);

	/* What was dropped stays dropped after a remount. */
	fixture_remount(&fx);
	ck_assert_uint_eq(mode_of(mnt_path("shared/chown")), 0755);
	ck_assert_uint_eq(mode_of(mnt_path("shared/user-write")), 0777);
	ck_assert_uint_eq(mode_of(mnt_path("shared/root-write")), 06755);
}
END_TEST

/* Without allow_other the mount is its owner's alone, whatever the modes say. */
START_TEST(test_no_allow_other)
{
	SKIP_IF_PLAIN();
	ck_assert_int_eq(fixture_run_as(USER_A, USER_A, stat_root, NULL), 0);
}
END_TEST

static Suite *users_suite(void)
{
	Suite *suite = suite_create("mount_users");
	TCase *shared = tcase_create("allow_other");
	tcase_add_checked_fixture(shared, fixture_setup_allow_other, fixture_teardown);
	tcase_set_timeout(shared, 90);
	tcase_add_test(shared, test_private_files);
	tcase_add_test(shared, test_private_directory);
	tcase_add_test(shared, test_concurrent_users);
	tcase_add_test(shared, test_setuid_dropped);
	suite_add_tcase(suite, shared);

	TCase *owner_only = tcase_create("owner_only");
	tcase_add_checked_fixture(owner_only, fixture_setup, fixture_teardown);
	tcase_set_timeout(owner_only, 30);
	tcase_add_test(owner_only, test_no_allow_other);
	suite_add_tcase(suite, owner_only);
	return suite;
}

int main(void)
{
	return harness_run(users_suite());
}
