/*
 * Real-mount tests of attributes and of what data loaders rely on: chmod, chown,
 * timestamps with nanoseconds, statfs, st_blocks, user xattrs, POSIX and flock locks seen
 * from another process, shared mmap both ways, and a numpy.memmap round trip.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define MIB (1024L * 1024L)

static struct stat stat_of(const char *path)
{
	struct stat st;
	ck_assert_msg(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
	return st;
}

static void make_file(const char *path, size_t size, uint64_t seed)
{
	int result = pattern_write_file(path, size, seed);
	ck_assert_msg(result == 0, "write %s: %s", path, strerror(-result));
}

static int open_or_fail(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

START_TEST(test_chmod)
{
	make_file(mnt_path("f"), 10, 1);
	ck_assert_int_eq(mkdir(mnt_path("d"), 0755), 0);
	ck_assert_int_eq(symlink("f", mnt_path("l")), 0);
	ck_assert_int_eq(chmod(mnt_path("f"), 0640), 0);
	ck_assert_int_eq(stat_of(mnt_path("f")).st_mode & 07777, 0640);
	ck_assert_int_eq(chmod(mnt_path("f"), 0), 0);
	ck_assert_int_eq(stat_of(mnt_path("f")).st_mode & 07777, 0);
	ck_assert_int_eq(chmod(mnt_path("d"), 01777), 0);
	ck_assert_int_eq(stat_of(mnt_path("d")).st_mode & 07777, 01777);
	ck_assert_int_eq(chmod(mnt_path("l"), 04711), 0); /* follows the link */
	ck_assert_int_eq(stat_of(mnt_path("f")).st_mode & 07777, 04711);
	ck_assert(S_ISLNK(stat_of(mnt_path("l")).st_mode));
	int fd = open_or_fail(mnt_path("f"), O_RDONLY);
	ck_assert_int_eq(fchmod(fd, 0604), 0);
	close(fd);
	struct timespec before_ctime = stat_of(mnt_path("d")).st_ctim;
	ck_assert_int_eq(chmod(mnt_path("d"), 0700), 0);
	struct timespec after_ctime = stat_of(mnt_path("d")).st_ctim;
	ck_assert(after_ctime.tv_sec > before_ctime.tv_sec ||
		  (after_ctime.tv_sec == before_ctime.tv_sec &&
		   after_ctime.tv_nsec >= before_ctime.tv_nsec));
	fixture_remount(&fx);
	ck_assert_int_eq(stat_of(mnt_path("f")).st_mode & 07777, 0604);
	ck_assert(S_ISREG(stat_of(mnt_path("f")).st_mode));
	ck_assert_int_eq(stat_of(mnt_path("d")).st_mode & 07777, 0700);
	ck_assert(S_ISDIR(stat_of(mnt_path("d")).st_mode));
}
END_TEST

START_TEST(test_chown)
{
	make_file(mnt_path("f"), 10, 1);
	ck_assert_int_eq(symlink("f", mnt_path("l")), 0);
	struct stat st = stat_of(mnt_path("f"));
	ck_assert_int_eq(st.st_uid, 0);
	ck_assert_int_eq(st.st_gid, 0);
	ck_assert_int_eq(chown(mnt_path("f"), 1234, 5678), 0);
	st = stat_of(mnt_path("f"));
	ck_assert_int_eq(st.st_uid, 1234);
	ck_assert_int_eq(st.st_gid, 5678);
	ck_assert_int_eq(chown(mnt_path("f"), (uid_t)-1, 42), 0); /* -1 keeps the owner */
	st = stat_of(mnt_path("f"));
	ck_assert_int_eq(st.st_uid, 1234);
	ck_assert_int_eq(st.st_gid, 42);
	ck_assert_int_eq(lchown(mnt_path("l"), 777, 888), 0); /* the link, not the target */
	ck_assert_int_eq(stat_of(mnt_path("l")).st_uid, 777);
	ck_assert_int_eq(stat_of(mnt_path("f")).st_uid, 1234);
	ck_assert_int_eq(mkdir(mnt_path("d"), 0755), 0);
	int fd = open(mnt_path("d"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchown(fd, 1000, 1000), 0);
	close(fd);
	fixture_remount(&fx);
	st = stat_of(mnt_path("f"));
	ck_assert_int_eq(st.st_uid, 1234);
	ck_assert_int_eq(st.st_gid, 42);
	st = stat_of(mnt_path("l"));
	ck_assert_int_eq(st.st_uid, 777);
	ck_assert_int_eq(st.st_gid, 888);
	ck_assert_int_eq(stat_of(mnt_path("d")).st_uid, 1000);
	ck_assert_int_eq(stat_of(mnt_path("d")).st_gid, 1000);
}
END_TEST

static void assert_time(struct timespec got, time_t sec, long nsec, const char *what)
{
	ck_assert_msg(got.tv_sec == sec && got.tv_nsec == nsec, "%s: %lld.%09ld, want %lld.%09ld",
		      what, (long long)got.tv_sec, got.tv_nsec, (long long)sec, nsec);
}

static void assert_recent(struct timespec got, time_t since, const char *what)
{
	time_t now = time(NULL);
	ck_assert_msg(got.tv_sec >= since - 2 && got.tv_sec <= now + 2,
		      "%s: %lld not within [%lld, %lld]", what, (long long)got.tv_sec,
		      (long long)since - 2, (long long)now + 2);
}

START_TEST(test_utimens)
{
	const char *path = mnt_path("timed");
	make_file(path, 100, 2);
	struct timespec times[2] = { { 1000000000, 123456789 }, { 1500000000, 987654321 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
	struct stat st = stat_of(path);
	assert_time(st.st_atim, 1000000000, 123456789, "atime");
	assert_time(st.st_mtim, 1500000000, 987654321, "mtime");
	fixture_remount(&fx);
	st = stat_of(path);
	assert_time(st.st_atim, 1000000000, 123456789, "atime after remount");
	assert_time(st.st_mtim, 1500000000, 987654321, "mtime after remount");

	/* UTIME_OMIT keeps one, the other changes */
	struct timespec only_mtime[2] = { { 0, UTIME_OMIT }, { 1600000000, 1 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, path, only_mtime, 0), 0);
	st = stat_of(path);
	assert_time(st.st_atim, 1000000000, 123456789, "atime kept by UTIME_OMIT");
	assert_time(st.st_mtim, 1600000000, 1, "mtime");
	/* UTIME_NOW */
	time_t start = time(NULL);
	struct timespec now_atime[2] = { { 0, UTIME_NOW }, { 0, UTIME_OMIT } };
	ck_assert_int_eq(utimensat(AT_FDCWD, path, now_atime, 0), 0);
	st = stat_of(path);
	assert_recent(st.st_atim, start, "atime from UTIME_NOW");
	assert_time(st.st_mtim, 1600000000, 1, "mtime kept by UTIME_OMIT");
	/* futimens on an open file */
	int fd = open_or_fail(path, O_RDWR);
	struct timespec both[2] = { { 1111111111, 5 }, { 1222222222, 999999999 } };
	ck_assert_int_eq(futimens(fd, both), 0);
	close(fd);
	st = stat_of(path);
	assert_time(st.st_atim, 1111111111, 5, "atime by futimens");
	assert_time(st.st_mtim, 1222222222, 999999999, "mtime by futimens");
	/* a write moves mtime to now, also as seen after a remount */
	start = time(NULL);
	fd = open_or_fail(path, O_WRONLY);
	ck_assert_int_eq(pwrite(fd, "new", 3, 10), 3);
	close(fd);
	assert_recent(stat_of(path).st_mtim, start, "mtime after write");
	/* a symlink's own times */
	ck_assert_int_eq(symlink("timed", mnt_path("link")), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, mnt_path("link"), times, AT_SYMLINK_NOFOLLOW), 0);
	assert_time(stat_of(mnt_path("link")).st_mtim, 1500000000, 987654321, "link mtime");
	fixture_remount(&fx);
	assert_recent(stat_of(path).st_mtim, start, "mtime after write and remount");
	assert_time(stat_of(mnt_path("link")).st_mtim, 1500000000, 987654321, "link mtime");
}
END_TEST

START_TEST(test_statfs)
{
	struct statvfs vfs, backing;
	ck_assert_int_eq(statvfs(fx.mnt, &vfs), 0);
	ck_assert_int_eq(statvfs(fx.root, &backing), 0);
	ck_assert_int_gt(vfs.f_bsize, 0);
	ck_assert_int_gt(vfs.f_frsize, 0);
	ck_assert_int_gt(vfs.f_blocks, 0);
	ck_assert_uint_le(vfs.f_bfree, vfs.f_blocks);
	ck_assert_uint_le(vfs.f_bavail, vfs.f_bfree);
	ck_assert_uint_le(vfs.f_ffree, vfs.f_files);
	ck_assert_int_eq(vfs.f_namemax, 255);
	/* the sizes are those of the disk under the vault, give or take */
	double total = (double)vfs.f_blocks * (double)vfs.f_frsize;
	double backing_total = (double)backing.f_blocks * (double)backing.f_frsize;
	double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
	double backing_avail = (double)backing.f_bavail * (double)backing.f_frsize;
	ck_assert_msg(total > backing_total / 2 && total < backing_total * 2,
		      "total %.0f bytes, backing disk %.0f", total, backing_total);
	ck_assert_msg(avail > backing_avail / 2 && avail < backing_avail * 2 + 1e9,
		      "available %.0f bytes, backing disk %.0f", avail, backing_avail);
	struct statvfs of_file;
	make_file(mnt_path("f"), 10, 1);
	ck_assert_int_eq(statvfs(mnt_path("f"), &of_file), 0);
	ck_assert_int_eq(of_file.f_blocks, vfs.f_blocks);
}
END_TEST

START_TEST(test_st_blocks)
{
	const size_t size = 1 * MIB + 1;
	make_file(mnt_path("f"), size, 3);
	struct stat st = stat_of(mnt_path("f"));
	ck_assert_int_eq(st.st_size, (off_t)size);
	double bytes = (double)st.st_blocks * 512;
	ck_assert_msg(bytes >= (double)size && bytes <= (double)size * 1.05 + 65536,
		      "st_blocks %lld for %zu bytes", (long long)st.st_blocks, size);
	fixture_remount(&fx);
	st = stat_of(mnt_path("f"));
	bytes = (double)st.st_blocks * 512;
	ck_assert_msg(bytes >= (double)size && bytes <= (double)size * 1.05 + 65536,
		      "st_blocks %lld for %zu bytes after remount", (long long)st.st_blocks, size);
	ck_assert_int_gt(st.st_blksize, 0);
	make_file(mnt_path("empty"), 0, 3);
	ck_assert_int_le(stat_of(mnt_path("empty")).st_blocks, 8);
}
END_TEST

static bool list_has(const char *list, ssize_t len, const char *name, int *user_names)
{
	bool found = false;
	*user_names = 0;
	for (ssize_t pos = 0; pos < len; pos += (ssize_t)strlen(list + pos) + 1) {
		if (strncmp(list + pos, "user.", 5) == 0)
			(*user_names)++;
		if (strcmp(list + pos, name) == 0)
			found = true;
	}
	return found;
}

START_TEST(test_xattrs)
{
	const char *path = mnt_path("x");
	char got[256], list[1024];
	int user_names;
	make_file(path, 10, 1);
	ck_assert_int_eq(mkdir(mnt_path("dir"), 0755), 0);
	ck_assert_int_eq(setxattr(path, "user.alpha", "one", 3, 0), 0);
	ck_assert_int_eq(setxattr(path, "user.beta", "", 0, XATTR_CREATE), 0);
	ck_assert_int_eq(setxattr(mnt_path("dir"), "user.on_dir", "d", 1, 0), 0);
	ck_assert_errno(setxattr(path, "user.alpha", "two", 3, XATTR_CREATE), EEXIST);
	ck_assert_errno(setxattr(path, "user.gamma", "two", 3, XATTR_REPLACE), ENODATA);
	ck_assert_int_eq(setxattr(path, "user.alpha", "value 2", 7, XATTR_REPLACE), 0);
	ck_assert_errno(getxattr(path, "user.missing", got, sizeof(got)), ENODATA);
	ck_assert_int_eq(getxattr(path, "user.alpha", NULL, 0), 7);
	ck_assert_errno(getxattr(path, "user.alpha", got, 3), ERANGE);
	fixture_remount(&fx);
	ck_assert_int_eq(getxattr(path, "user.alpha", got, sizeof(got)), 7);
	ck_assert(memcmp(got, "value 2", 7) == 0);
	ck_assert_int_eq(getxattr(path, "user.beta", got, sizeof(got)), 0);
	ck_assert_int_eq(getxattr(mnt_path("dir"), "user.on_dir", got, sizeof(got)), 1);
	ssize_t len = listxattr(path, list, sizeof(list));
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(listxattr(path, NULL, 0), len);
	ck_assert(list_has(list, len, "user.alpha", &user_names));
	ck_assert(list_has(list, len, "user.beta", &user_names));
	ck_assert_int_eq(user_names, 2);
	ck_assert_int_eq(removexattr(path, "user.alpha"), 0);
	ck_assert_errno(getxattr(path, "user.alpha", got, sizeof(got)), ENODATA);
	ck_assert_errno(removexattr(path, "user.alpha"), ENODATA);
	len = listxattr(path, list, sizeof(list));
	ck_assert(!list_has(list, len, "user.alpha", &user_names));
	ck_assert_int_eq(user_names, 1);

	/* a 60 KiB value */
	enum { BIG = 60 * 1024 };
	char *big = malloc(BIG), *back = malloc(BIG);
	ck_assert(big && back);
	pattern_fill(big, BIG, 77, 0);
	int set = setxattr(path, "user.big", big, BIG, 0);
	if (set == -1 && fx.plain && (errno == ENOSPC || errno == E2BIG)) {
		fprintf(stderr, "skip 60 KiB xattr: the local filesystem does not take it\n");
	} else {
		ck_assert_msg(set == 0, "setxattr 60 KiB: %s", strerror(errno));
		fixture_remount(&fx);
		ck_assert_int_eq(getxattr(path, "user.big", back, BIG), BIG);
		ck_assert(memcmp(big, back, BIG) == 0);
	}
	free(big);
	free(back);
	/* xattrs go with the file */
	ck_assert_int_eq(rename(path, mnt_path("renamed")), 0);
	ck_assert_int_eq(getxattr(mnt_path("renamed"), "user.beta", got, sizeof(got)), 0);
	ck_assert_errno(getxattr(mnt_path("dir"), "user.beta", got, sizeof(got)), ENODATA);
}
END_TEST

struct lock_probe {
	const char *path;
	pid_t holder;
};

/* In a second process: the range held by the parent conflicts, another range does not. */
static int probe_posix_lock(void *arg)
{
	const struct lock_probe *probe = arg;
	int fd = open(probe->path, O_RDWR | O_CLOEXEC);
	if (fd == -1)
		return 10;
	struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 100 };
	if (fcntl(fd, F_SETLK, &lock) != -1 || errno != EAGAIN) {
		fprintf(stderr, "conflicting F_SETLK: %s\n", strerror(errno));
		return 11;
	}
	struct flock query = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	if (fcntl(fd, F_GETLK, &query) == -1 || query.l_type != F_WRLCK ||
	    query.l_pid != probe->holder) {
		fprintf(stderr, "F_GETLK: type %d pid %d, want %d %d\n", query.l_type,
			(int)query.l_pid, F_WRLCK, (int)probe->holder);
		return 12;
	}
	struct flock free_range = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 200,
				    .l_len = 100 };
	if (fcntl(fd, F_SETLK, &free_range) == -1) {
		fprintf(stderr, "free range F_SETLK: %s\n", strerror(errno));
		return 13;
	}
	close(fd);
	return 0;
}

static int take_posix_lock(void *arg)
{
	const struct lock_probe *probe = arg;
	int fd = open(probe->path, O_RDWR | O_CLOEXEC);
	struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (fd == -1 || fcntl(fd, F_SETLK, &lock) == -1)
		return 20;
	close(fd);
	return 0;
}

START_TEST(test_posix_locks)
{
	struct lock_probe probe = { mnt_path("locked"), getpid() };
	make_file(probe.path, 1000, 1);
	int fd = open_or_fail(probe.path, O_RDWR);
	struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
	ck_assert_int_eq(fcntl(fd, F_SETLK, &lock), 0);
	ck_assert_int_eq(fixture_run_as(0, 0, probe_posix_lock, &probe), 0);
	ck_assert_int_ne(fixture_run_as(0, 0, take_posix_lock, &probe), 0);
	lock.l_type = F_UNLCK;
	ck_assert_int_eq(fcntl(fd, F_SETLK, &lock), 0);
	ck_assert_int_eq(fixture_run_as(0, 0, take_posix_lock, &probe), 0);
	close(fd);
}
END_TEST

static int probe_flock(void *arg)
{
	int fd = open(arg, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return 10;
	if (flock(fd, LOCK_EX | LOCK_NB) != -1 || errno != EWOULDBLOCK)
		return 11;
	if (flock(fd, LOCK_SH | LOCK_NB) != -1 || errno != EWOULDBLOCK)
		return 12;
	close(fd);
	return 0;
}

static int take_flock(void *arg)
{
	int fd = open(arg, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1)
		return 20;
	close(fd);
	return 0;
}

START_TEST(test_flock)
{
	const char *path = mnt_path("flocked");
	make_file(path, 10, 1);
	int fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	ck_assert_int_eq(fixture_run_as(0, 0, probe_flock, (void *)path), 0);
	ck_assert_int_eq(flock(fd, LOCK_UN), 0);
	ck_assert_int_eq(fixture_run_as(0, 0, take_flock, (void *)path), 0);
	close(fd);
}
END_TEST

START_TEST(test_mmap_shared_write)
{
	enum { SIZE = 3 * 4096 + 500 };
	const char *path = mnt_path("mapped");
	uint8_t expect[SIZE], got[SIZE], patch[3000];
	make_file(path, SIZE, 5);
	pattern_fill(expect, SIZE, 5, 0);
	pattern_fill(patch, sizeof(patch), 6, 0);
	int fd = open_or_fail(path, O_RDWR);
	uint8_t *map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_msg(map != MAP_FAILED, "mmap: %s", strerror(errno));
	ck_assert(memcmp(map, expect, SIZE) == 0);
	memcpy(map + 3000, patch, sizeof(patch)); /* across the first block boundary */
	memcpy(expect + 3000, patch, sizeof(patch));
	map[SIZE - 1] = 0x5a;
	expect[SIZE - 1] = 0x5a;
	ck_assert_int_eq(msync(map, SIZE, MS_SYNC), 0);
	int reader = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(reader, got, SIZE, 0), SIZE);
	ck_assert(memcmp(got, expect, SIZE) == 0);
	close(reader);
	ck_assert_int_eq(munmap(map, SIZE), 0);
	close(fd);
	fixture_remount(&fx);
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, SIZE, 0), SIZE);
	ck_assert_msg(memcmp(got, expect, SIZE) == 0, "mmap writes lost after remount");
	close(fd);
}
END_TEST

START_TEST(test_mmap_sees_write)
{
	enum { SIZE = 4 * 4096 };
	const char *path = mnt_path("watched");
	make_file(path, SIZE, 8);
	int fd = open_or_fail(path, O_RDWR);
	const uint8_t *map = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_msg(map != MAP_FAILED, "mmap: %s", strerror(errno));
	ck_assert_int_eq(pattern_check(map, SIZE, 8, 0), -1);
	int writer = open_or_fail(path, O_WRONLY);
	ck_assert_int_eq(pwrite(writer, "through write()", 15, 4090), 15);
	close(writer);
	ck_assert(memcmp(map + 4090, "through write()", 15) == 0);
	ck_assert_int_eq(pattern_check(map, 4090, 8, 0), -1);
	ck_assert_int_eq(pattern_check(map + 4105, SIZE - 4105, 8, 4105), -1);
	munmap((void *)map, SIZE);
	close(fd);
}
END_TEST

START_TEST(test_mmap_32mib)
{
	const size_t size = 32 * MIB;
	const char *path = mnt_path("big");
	make_file(path, size, 9);
	fixture_remount(&fx);
	int fd = open_or_fail(path, O_RDONLY);
	const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_msg(map != MAP_FAILED, "mmap: %s", strerror(errno));
	for (size_t at = 0; at < size; at += MIB)
		ck_assert_msg(pattern_check(map + at, MIB, 9, at) == -1, "mismatch in MiB %zu",
			      at / MIB);
	munmap((void *)map, size);
	close(fd);
}
END_TEST

static const char numpy_script[] =
	"import sys, numpy as np\n"
	"p = sys.argv[1]\n"
	"a = np.memmap(p, dtype=np.float32, mode='w+', shape=(512, 1024))\n"
	"a[:] = np.arange(512 * 1024, dtype=np.float32).reshape(512, 1024)\n"
	"a.flush(); del a\n"
	"b = np.memmap(p, dtype=np.float32, mode='r+', shape=(512, 1024))\n"
	"assert b[100, 7] == 100 * 1024 + 7\n"
	"b[3, :] = -1; b.flush(); del b\n"
	"c = np.fromfile(p, dtype=np.float32).reshape(512, 1024)\n"
	"assert (c[3] == -1).all() and c[4, 5] == 4 * 1024 + 5 and c[511, 1023] == 512 * 1024 - 1\n"
	"print('numpy memmap ok')\n";

START_TEST(test_numpy_memmap)
{
	const char *probe[] = { "/usr/bin/python3", "-c", "import numpy", NULL };
	if (fixture_spawn(probe, NULL, 60000) != 0) {
		fprintf(stderr, "skip %s: /usr/bin/python3 has no numpy\n", __func__);
		return;
	}
	const char *path = mnt_path("array.f32");
	char output[PATH_MAX];
	snprintf(output, sizeof(output), "%s/python.out", fx.root);
	const char *run[] = { "/usr/bin/python3", "-c", numpy_script, path, NULL };
	int status = fixture_spawn(run, output, 60000);
	char *text = fixture_read_text(output, NULL);
	ck_assert_msg(status == 0, "python exited %d: %s", status, text ? text : "");
	free(text);
	fixture_remount(&fx);
	int fd = open_or_fail(path, O_RDONLY);
	float values[1024];
	ck_assert_int_eq(pread_full(fd, values, sizeof(values), 3 * 4096), (ssize_t)sizeof(values));
	for (int i = 0; i < 1024; i++)
		ck_assert(values[i] == -1.0f);
	ck_assert_int_eq(pread_full(fd, values, sizeof(values), 511 * 4096), (ssize_t)sizeof(values));
	for (int i = 0; i < 1024; i++)
		ck_assert(values[i] == (float)(511 * 1024 + i));
	close(fd);
}
END_TEST

/* SQLite in WAL mode: POSIX locks, a shared mmap of the -shm file, fsync, truncation and
 * random rewrites of pages, as experiment trackers and caches use it. */
static const char sqlite_script[] =
	"import sys, sqlite3\n"
	"db = sqlite3.connect(sys.argv[1])\n"
	"assert db.execute('pragma journal_mode=wal').fetchone()[0] == 'wal'\n"
	"db.execute('create table t (k integer primary key, v blob)')\n"
	"for batch in range(20):\n"
	"    with db:\n"
	"        db.executemany('insert into t values (?, ?)',\n"
	"                       [(batch * 500 + i, bytes([i % 251]) * (i % 700)) for i in range(500)])\n"
	"with db:\n"
	"    db.execute('delete from t where k % 3 = 0')\n"
	"    db.execute(\"update t set v = x'ff' where k % 3 = 1\")\n"
	"db.execute('pragma wal_checkpoint(truncate)')\n"
	"other = sqlite3.connect(sys.argv[1])\n"
	"n = other.execute('select count(*) from t').fetchone()[0]\n"
	"assert n == 10000 - 3334, n\n"
	"assert other.execute('pragma integrity_check').fetchone()[0] == 'ok'\n"
	"print('sqlite ok')\n";

static const char sqlite_check_script[] =
	"import sys, sqlite3\n"
	"db = sqlite3.connect(sys.argv[1])\n"
	"assert db.execute('pragma integrity_check').fetchone()[0] == 'ok'\n"
	"assert db.execute(\"select count(*) from t where v = x'ff'\").fetchone()[0] == 3333\n"
	"assert db.execute('select length(v) from t where k = 9998').fetchone()[0] == 498\n";

START_TEST(test_sqlite_wal)
{
	const char *path = mnt_path("tracker.db");
	char output[PATH_MAX];
	snprintf(output, sizeof(output), "%s/sqlite.out", fx.root);
	const char *run[] = { "/usr/bin/python3", "-c", sqlite_script, path, NULL };
	int status = fixture_spawn(run, output, 60000);
	char *text = fixture_read_text(output, NULL);
	ck_assert_msg(status == 0, "python exited %d: %s", status, text ? text : "");
	free(text);
	fixture_remount(&fx);
	const char *check[] = { "/usr/bin/python3", "-c", sqlite_check_script, path, NULL };
	status = fixture_spawn(check, output, 60000);
	text = fixture_read_text(output, NULL);
	ck_assert_msg(status == 0, "python exited %d: %s", status, text ? text : "");
	free(text);
}
END_TEST

static Suite *attrs_suite(void)
{
	Suite *suite = suite_create("mount_attrs");
	TCase *attrs = tcase_create("attributes");
	tcase_add_checked_fixture(attrs, fixture_setup, fixture_teardown);
	tcase_set_timeout(attrs, 60);
	tcase_add_test(attrs, test_chmod);
	tcase_add_test(attrs, test_chown);
	tcase_add_test(attrs, test_utimens);
	tcase_add_test(attrs, test_statfs);
	tcase_add_test(attrs, test_st_blocks);
	tcase_add_test(attrs, test_xattrs);
	suite_add_tcase(suite, attrs);

	TCase *sharing = tcase_create("locks_and_mmap");
	tcase_add_checked_fixture(sharing, fixture_setup, fixture_teardown);
	tcase_set_timeout(sharing, 90);
	tcase_add_test(sharing, test_posix_locks);
	tcase_add_test(sharing, test_flock);
	tcase_add_test(sharing, test_mmap_shared_write);
	tcase_add_test(sharing, test_mmap_sees_write);
	tcase_add_test(sharing, test_mmap_32mib);
	tcase_add_test(sharing, test_numpy_memmap);
	tcase_add_test(sharing, test_sqlite_wal);
	suite_add_tcase(suite, sharing);
	return suite;
}

int main(void)
{
	return harness_run(attrs_suite());
}
