/*
 * Real-mount tests of the namespace: mkdir/rmdir errors, readdir (exact listing, d_type,
 * stability under concurrent changes, 3000 entries), rename in all its forms including
 * renameat2 flags, hard links, symlinks, 255-byte names of arbitrary bytes and directory
 * link counts. Most results are checked again after a remount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

static void make_file(const char *path, const char *content)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	size_t len = strlen(content);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static void assert_content(const char *path, const char *content)
{
	char got[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ssize_t n = pread_full(fd, got, sizeof(got) - 1, 0);
	close(fd);
	ck_assert_int_ge(n, 0);
	got[n] = '\0';
	ck_assert_str_eq(got, content);
}

static struct stat stat_of(const char *path)
{
	struct stat st;
	ck_assert_msg(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
	return st;
}

START_TEST(test_mkdir_rmdir)
{
	struct stat st;
	ck_assert_int_eq(mkdir(mnt_path("d"), 0750), 0);
	st = stat_of(mnt_path("d"));
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0750);
	ck_assert_errno(mkdir(mnt_path("d"), 0755), EEXIST);
	make_file(mnt_path("d/f"), "x");
	ck_assert_errno(mkdir(mnt_path("d/f"), 0755), EEXIST);
	ck_assert_errno(rmdir(mnt_path("d")), ENOTEMPTY);
	ck_assert_errno(rmdir(mnt_path("d/f")), ENOTDIR);
	ck_assert_errno(mkdir(mnt_path("d/f/sub"), 0755), ENOTDIR);
	ck_assert_errno(open(mnt_path("d/f/x"), O_CREAT | O_RDWR, 0644), ENOTDIR);
	ck_assert_errno(unlink(mnt_path("d")), EISDIR);
	ck_assert_errno(rmdir(mnt_path("nothing")), ENOENT);
	ck_assert_errno(mkdir(mnt_path("nothing/sub"), 0755), ENOENT);
	ck_assert_int_eq(mkdir(mnt_path("d/e"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("d/e/g"), 0755), 0);
	fixture_remount(&fx);
	ck_assert(S_ISDIR(stat_of(mnt_path("d/e/g")).st_mode));
	ck_assert_int_eq(stat_of(mnt_path("d")).st_mode & 07777, 0750);
	ck_assert_errno(rmdir(mnt_path("d/e")), ENOTEMPTY);
	ck_assert_int_eq(rmdir(mnt_path("d/e/g")), 0);
	ck_assert_int_eq(rmdir(mnt_path("d/e")), 0);
	ck_assert_int_eq(unlink(mnt_path("d/f")), 0);
	ck_assert_int_eq(rmdir(mnt_path("d")), 0);
	ck_assert_errno(lstat(mnt_path("d"), &st), ENOENT);
	fixture_remount(&fx);
	ck_assert_errno(lstat(mnt_path("d"), &st), ENOENT);
}
END_TEST

struct expected_entry {
	const char *name;
	unsigned char type;
	int seen;
};

static void assert_listing(const char *dir, struct expected_entry *expected, size_t count)
{
	DIR *d = opendir(dir);
	ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
	for (size_t i = 0; i < count; i++)
		expected[i].seen = 0;
	struct dirent *entry;
	errno = 0;
	while ((entry = readdir(d)) != NULL) {
		size_t i = 0;
		while (i < count && strcmp(expected[i].name, entry->d_name) != 0)
			i++;
		ck_assert_msg(i < count, "unexpected entry '%s' in %s", entry->d_name, dir);
		ck_assert_msg(entry->d_type == expected[i].type, "'%s': d_type %d, want %d",
			      entry->d_name, entry->d_type, expected[i].type);
		expected[i].seen++;
	}
	ck_assert_msg(errno == 0, "readdir: %s", strerror(errno));
	closedir(d);
	for (size_t i = 0; i < count; i++)
		ck_assert_msg(expected[i].seen == 1, "'%s' listed %d times", expected[i].name,
			      expected[i].seen);
}

START_TEST(test_readdir_exact)
{
	struct expected_entry empty[] = { { ".", DT_DIR, 0 }, { "..", DT_DIR, 0 } };
	ck_assert_int_eq(mkdir(mnt_path("list"), 0755), 0);
	assert_listing(mnt_path("list"), empty, 2);
	make_file(mnt_path("list/alpha"), "a");
	make_file(mnt_path("list/beta.txt"), "b");
	make_file(mnt_path("list/.hidden"), "");
	ck_assert_int_eq(mkdir(mnt_path("list/sub"), 0755), 0);
	ck_assert_int_eq(symlink("alpha", mnt_path("list/link")), 0);
	struct expected_entry full[] = {
		{ ".", DT_DIR, 0 },    { "..", DT_DIR, 0 },       { "alpha", DT_REG, 0 },
		{ "beta.txt", DT_REG, 0 }, { ".hidden", DT_REG, 0 }, { "sub", DT_DIR, 0 },
		{ "link", DT_LNK, 0 },
	};
	assert_listing(mnt_path("list"), full, 7);
	fixture_remount(&fx);
	assert_listing(mnt_path("list"), full, 7);
	ck_assert_int_eq(unlink(mnt_path("list/beta.txt")), 0);
	full[3] = full[6];
	assert_listing(mnt_path("list"), full, 6);
	/* the root lists its own entries */
	struct expected_entry root[] = { { ".", DT_DIR, 0 }, { "..", DT_DIR, 0 },
					 { "list", DT_DIR, 0 } };
	assert_listing(fx.mnt, root, 3);
}
END_TEST

enum { STABLE = 300, CHURN = 300, ADDED_MAX = 400 };

/* getdents64 with a small buffer so the listing takes many calls, and between the calls
 * entries are added and removed: each entry present throughout appears exactly once. */
START_TEST(test_readdir_during_changes)
{
	int stable_seen[STABLE] = { 0 }, churn_seen[CHURN] = { 0 }, added_seen[ADDED_MAX] = { 0 };
	int dots = 0, added = 0, removed = 0;
	char buf[512];

	ck_assert_int_eq(mkdir(mnt_path("busy"), 0755), 0);
	for (int i = 0; i < STABLE; i++)
		make_file(mnt_path("busy/s%03d", i), "");
	for (int i = 0; i < CHURN; i++)
		make_file(mnt_path("busy/c%03d", i), "");
	int fd = open(mnt_path("busy"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (int calls = 0;; calls++) {
		ck_assert_msg(calls < 10000, "readdir does not end");
		ssize_t n = getdents64(fd, buf, sizeof(buf));
		ck_assert_msg(n >= 0, "getdents64: %s", strerror(errno));
		if (n == 0)
			break;
		for (ssize_t pos = 0; pos < n;) {
			struct dirent64 *entry = (struct dirent64 *)(buf + pos);
			const char *name = entry->d_name;
			int index = atoi(name + 1);
			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
				dots++;
			else if (name[0] == 's' && index < STABLE)
				stable_seen[index]++;
			else if (name[0] == 'c' && index < CHURN)
				churn_seen[index]++;
			else if (name[0] == 'n' && index < ADDED_MAX)
				added_seen[index]++;
			else
				ck_abort_msg("unexpected entry '%s'", name);
			pos += entry->d_reclen;
		}
		for (int k = 0; k < 4 && added < ADDED_MAX; k++)
			make_file(mnt_path("busy/n%03d", added++), "");
		for (int k = 0; k < 4 && removed < CHURN; k++)
			ck_assert_int_eq(unlink(mnt_path("busy/c%03d", removed++)), 0);
	}
	close(fd);
	ck_assert_int_eq(dots, 2);
	for (int i = 0; i < STABLE; i++)
		ck_assert_msg(stable_seen[i] == 1, "s%03d listed %d times", i, stable_seen[i]);
	for (int i = 0; i < CHURN; i++)
		ck_assert_msg(churn_seen[i] <= 1, "c%03d listed %d times", i, churn_seen[i]);
	for (int i = 0; i < ADDED_MAX; i++)
		ck_assert_msg(added_seen[i] <= 1, "n%03d listed %d times", i, added_seen[i]);
	ck_assert_msg(removed > 20 && added > 20, "too few changes during the listing");
}
END_TEST

enum { MANY = 3000 };

static void assert_many_listed(int expect_count)
{
	static int seen[MANY];
	memset(seen, 0, sizeof(seen));
	DIR *d = opendir(mnt_path("many"));
	ck_assert(d != NULL);
	int count = 0;
	struct dirent *entry;
	while ((entry = readdir(d)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		int index = -1;
		ck_assert_msg(sscanf(entry->d_name, "entry-%d", &index) == 1 && index >= 0 &&
				      index < MANY, "unexpected entry '%s'", entry->d_name);
		ck_assert_int_eq(entry->d_type, DT_REG);
		seen[index]++;
		count++;
	}
	closedir(d);
	ck_assert_int_eq(count, expect_count);
	for (int i = 0; i < expect_count; i++)
		ck_assert_msg(seen[i] == 1, "entry-%05d listed %d times", i, seen[i]);
}

START_TEST(test_directory_3000_entries)
{
	ck_assert_int_eq(mkdir(mnt_path("many"), 0755), 0);
	for (int i = 0; i < MANY; i++) {
		int fd = open(mnt_path("many/entry-%05d", i), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
			      0644);
		ck_assert_msg(fd >= 0, "create entry %d: %s", i, strerror(errno));
		if (i % 500 == 0)
			ck_assert_int_eq(write(fd, &i, sizeof(i)), (ssize_t)sizeof(i));
		close(fd);
	}
	assert_many_listed(MANY);
	fixture_remount(&fx);
	assert_many_listed(MANY);
	/* telldir/seekdir: going back to a position lists the same names again */
	DIR *d = opendir(mnt_path("many"));
	ck_assert(d != NULL);
	for (int i = 0; i < 1000; i++)
		ck_assert(readdir(d) != NULL);
	long position = telldir(d);
	char names[50][NAME_MAX + 1];
	for (int i = 0; i < 50; i++) {
		struct dirent *entry = readdir(d);
		ck_assert(entry != NULL);
		snprintf(names[i], sizeof(names[i]), "%s", entry->d_name);
	}
	seekdir(d, position);
	for (int i = 0; i < 50; i++) {
		struct dirent *entry = readdir(d);
		ck_assert(entry != NULL);
		ck_assert_str_eq(entry->d_name, names[i]);
	}
	rewinddir(d);
	int count = 0;
	while (readdir(d) != NULL)
		count++;
	ck_assert_int_eq(count, MANY + 2);
	closedir(d);
	for (int i = 0; i < MANY; i += 500) {
		int value = -1, fd = open(mnt_path("many/entry-%05d", i), O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(read(fd, &value, sizeof(value)), (ssize_t)sizeof(value));
		ck_assert_int_eq(value, i);
		close(fd);
	}
	for (int i = MANY - 1; i >= MANY / 2; i--)
		ck_assert_int_eq(unlink(mnt_path("many/entry-%05d", i)), 0);
	assert_many_listed(MANY / 2);
	for (int i = 0; i < MANY / 2; i++)
		ck_assert_int_eq(unlink(mnt_path("many/entry-%05d", i)), 0);
	assert_many_listed(0);
	ck_assert_int_eq(rmdir(mnt_path("many")), 0);
}
END_TEST

START_TEST(test_rename_files)
{
	ck_assert_int_eq(mkdir(mnt_path("a"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("b"), 0755), 0);
	make_file(mnt_path("a/one"), "first");
	ino_t ino = stat_of(mnt_path("a/one")).st_ino;
	/* within a directory */
	ck_assert_int_eq(rename(mnt_path("a/one"), mnt_path("a/two")), 0);
	ck_assert_errno(access(mnt_path("a/one"), F_OK), ENOENT);
	assert_content(mnt_path("a/two"), "first");
	ck_assert_int_eq(stat_of(mnt_path("a/two")).st_ino, ino);
	/* across directories */
	ck_assert_int_eq(rename(mnt_path("a/two"), mnt_path("b/three")), 0);
	ck_assert_errno(access(mnt_path("a/two"), F_OK), ENOENT);
	assert_content(mnt_path("b/three"), "first");
	/* over an existing file: the target's old content is gone */
	make_file(mnt_path("a/victim"), "old content");
	ck_assert_int_eq(rename(mnt_path("b/three"), mnt_path("a/victim")), 0);
	assert_content(mnt_path("a/victim"), "first");
	ck_assert_errno(access(mnt_path("b/three"), F_OK), ENOENT);
	ck_assert_int_eq(stat_of(mnt_path("a/victim")).st_nlink, 1);
	/* over a file that is still open: the open file keeps its old content */
	make_file(mnt_path("a/held"), "held content");
	make_file(mnt_path("a/newer"), "newer");
	int held = open(mnt_path("a/held"), O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(held, 0);
	ck_assert_int_eq(rename(mnt_path("a/newer"), mnt_path("a/held")), 0);
	assert_content(mnt_path("a/held"), "newer");
	char old[32] = { 0 };
	ck_assert_int_eq(pread(held, old, sizeof(old) - 1, 0), 12);
	ck_assert_str_eq(old, "held content");
	ck_assert_int_eq(pwrite(held, "HELD", 4, 0), 4);
	struct stat held_st;
	ck_assert_int_eq(fstat(held, &held_st), 0);
	ck_assert_int_eq(held_st.st_nlink, 0);
	close(held);
	assert_content(mnt_path("a/held"), "newer");
	/* onto itself: nothing happens */
	ck_assert_int_eq(rename(mnt_path("a/victim"), mnt_path("a/victim")), 0);
	/* errors */
	ck_assert_errno(rename(mnt_path("a/missing"), mnt_path("a/x")), ENOENT);
	ck_assert_int_eq(mkdir(mnt_path("a/dir"), 0755), 0);
	ck_assert_errno(rename(mnt_path("a/victim"), mnt_path("a/dir")), EISDIR);
	ck_assert_errno(rename(mnt_path("a/dir"), mnt_path("a/victim")), ENOTDIR);
	fixture_remount(&fx);
	assert_content(mnt_path("a/victim"), "first");
	ck_assert_errno(access(mnt_path("b/three"), F_OK), ENOENT);
	struct expected_entry list_b[] = { { ".", DT_DIR, 0 }, { "..", DT_DIR, 0 } };
	assert_listing(mnt_path("b"), list_b, 2);
}
END_TEST

START_TEST(test_rename_directories)
{
	ck_assert_int_eq(mkdir(mnt_path("src"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("src/tree"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("src/tree/deep"), 0755), 0);
	make_file(mnt_path("src/tree/file"), "in tree");
	make_file(mnt_path("src/tree/deep/leaf"), "leaf");
	ck_assert_int_eq(mkdir(mnt_path("dst"), 0755), 0);
	ck_assert_int_eq(stat_of(mnt_path("src")).st_nlink, 3);
	ck_assert_int_eq(stat_of(mnt_path("dst")).st_nlink, 2);
	ck_assert_int_eq(rename(mnt_path("src/tree"), mnt_path("dst/moved")), 0);
	ck_assert_errno(access(mnt_path("src/tree"), F_OK), ENOENT);
	assert_content(mnt_path("dst/moved/file"), "in tree");
	assert_content(mnt_path("dst/moved/deep/leaf"), "leaf");
	ck_assert_int_eq(stat_of(mnt_path("src")).st_nlink, 2);
	ck_assert_int_eq(stat_of(mnt_path("dst")).st_nlink, 3);
	/* onto an empty directory: replaces it */
	ck_assert_int_eq(mkdir(mnt_path("dst/empty"), 0755), 0);
	ck_assert_int_eq(rename(mnt_path("dst/moved"), mnt_path("dst/empty")), 0);
	assert_content(mnt_path("dst/empty/deep/leaf"), "leaf");
	ck_assert_int_eq(stat_of(mnt_path("dst")).st_nlink, 3);
	/* onto a non-empty directory: refused, both intact */
	ck_assert_int_eq(mkdir(mnt_path("full"), 0755), 0);
	make_file(mnt_path("full/keep"), "keep");
	ck_assert_errno(rename(mnt_path("dst/empty"), mnt_path("full")), ENOTEMPTY);
	assert_content(mnt_path("full/keep"), "keep");
	assert_content(mnt_path("dst/empty/file"), "in tree");
	/* into its own subdirectory: refused */
	ck_assert_errno(rename(mnt_path("dst"), mnt_path("dst/empty/deep/loop")), EINVAL);
	fixture_remount(&fx);
	assert_content(mnt_path("dst/empty/file"), "in tree");
	assert_content(mnt_path("dst/empty/deep/leaf"), "leaf");
	ck_assert_errno(access(mnt_path("dst/moved"), F_OK), ENOENT);
	ck_assert_int_eq(stat_of(mnt_path("dst")).st_nlink, 3);
	ck_assert_int_eq(stat_of(mnt_path("dst/empty")).st_nlink, 3);
}
END_TEST

START_TEST(test_renameat2_flags)
{
	make_file(mnt_path("left"), "LEFT");
	make_file(mnt_path("right"), "RIGHT");
	ck_assert_errno(renameat2(AT_FDCWD, mnt_path("left"), AT_FDCWD, mnt_path("right"),
				  RENAME_NOREPLACE), EEXIST);
	assert_content(mnt_path("left"), "LEFT");
	assert_content(mnt_path("right"), "RIGHT");
	ck_assert_int_eq(renameat2(AT_FDCWD, mnt_path("left"), AT_FDCWD, mnt_path("fresh"),
				   RENAME_NOREPLACE), 0);
	assert_content(mnt_path("fresh"), "LEFT");
	ck_assert_errno(access(mnt_path("left"), F_OK), ENOENT);

	/* exchange two files */
	ino_t fresh_ino = stat_of(mnt_path("fresh")).st_ino;
	ck_assert_int_eq(renameat2(AT_FDCWD, mnt_path("fresh"), AT_FDCWD, mnt_path("right"),
				   RENAME_EXCHANGE), 0);
	assert_content(mnt_path("fresh"), "RIGHT");
	assert_content(mnt_path("right"), "LEFT");
	ck_assert_int_eq(stat_of(mnt_path("right")).st_ino, fresh_ino);

	/* exchange a file and a directory across directories */
	ck_assert_int_eq(mkdir(mnt_path("box"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("box/dir"), 0755), 0);
	make_file(mnt_path("box/dir/inside"), "INSIDE");
	ck_assert_int_eq(renameat2(AT_FDCWD, mnt_path("fresh"), AT_FDCWD, mnt_path("box/dir"),
				   RENAME_EXCHANGE), 0);
	ck_assert(S_ISDIR(stat_of(mnt_path("fresh")).st_mode));
	assert_content(mnt_path("fresh/inside"), "INSIDE");
	ck_assert(S_ISREG(stat_of(mnt_path("box/dir")).st_mode));
	assert_content(mnt_path("box/dir"), "RIGHT");
	ck_assert_int_eq(stat_of(mnt_path("box")).st_nlink, 2);
	ck_assert_int_eq(stat_of(fx.mnt).st_nlink, 4); /* root: ., box, fresh + parent link */

	/* exchange with a missing name */
	ck_assert_errno(renameat2(AT_FDCWD, mnt_path("right"), AT_FDCWD, mnt_path("nobody"),
				  RENAME_EXCHANGE), ENOENT);
	fixture_remount(&fx);
	assert_content(mnt_path("fresh/inside"), "INSIDE");
	assert_content(mnt_path("box/dir"), "RIGHT");
	assert_content(mnt_path("right"), "LEFT");
}
END_TEST

START_TEST(test_hard_links)
{
	make_file(mnt_path("orig"), "shared");
	ck_assert_int_eq(mkdir(mnt_path("other"), 0755), 0);
	ck_assert_int_eq(link(mnt_path("orig"), mnt_path("other/alias")), 0);
	struct stat a = stat_of(mnt_path("orig")), b = stat_of(mnt_path("other/alias"));
	ck_assert_int_eq(a.st_ino, b.st_ino);
	ck_assert_int_eq(a.st_nlink, 2);
	ck_assert_int_eq(b.st_nlink, 2);
	/* content is shared both ways */
	int fd = open(mnt_path("other/alias"), O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, " content", 8), 8);
	close(fd);
	assert_content(mnt_path("orig"), "shared content");
	ck_assert_errno(link(mnt_path("orig"), mnt_path("other/alias")), EEXIST);
	ck_assert_errno(link(mnt_path("other"), mnt_path("dirlink")), EPERM);
	fixture_remount(&fx);
	ck_assert_int_eq(stat_of(mnt_path("orig")).st_nlink, 2);
	ck_assert_int_eq(stat_of(mnt_path("orig")).st_ino, stat_of(mnt_path("other/alias")).st_ino);
	ck_assert_int_eq(unlink(mnt_path("orig")), 0);
	ck_assert_int_eq(stat_of(mnt_path("other/alias")).st_nlink, 1);
	assert_content(mnt_path("other/alias"), "shared content");
	fixture_remount(&fx);
	ck_assert_errno(access(mnt_path("orig"), F_OK), ENOENT);
	ck_assert_int_eq(stat_of(mnt_path("other/alias")).st_nlink, 1);
	assert_content(mnt_path("other/alias"), "shared content");
}
END_TEST

START_TEST(test_symlinks)
{
	char target[1001], got[2048];
	memset(target, 'q', 1000);
	target[1000] = '\0';
	make_file(mnt_path("real"), "real data");
	ck_assert_int_eq(symlink("real", mnt_path("rel")), 0);
	ck_assert_int_eq(symlink("../nowhere/at all", mnt_path("dangling")), 0);
	ck_assert_int_eq(symlink(target, mnt_path("long")), 0);
	ck_assert_errno(symlink("x", mnt_path("real")), EEXIST);
	for (int round = 0; round < 2; round++) {
		struct stat st = stat_of(mnt_path("rel"));
		ck_assert(S_ISLNK(st.st_mode));
		ck_assert_int_eq(st.st_size, 4);
		ck_assert_int_eq(readlink(mnt_path("rel"), got, sizeof(got)), 4);
		ck_assert(memcmp(got, "real", 4) == 0);
		ck_assert_int_eq(stat(mnt_path("rel"), &st), 0);
		ck_assert(S_ISREG(st.st_mode));
		ck_assert_int_eq(st.st_ino, stat_of(mnt_path("real")).st_ino);
		assert_content(mnt_path("rel"), "real data");
		ck_assert_int_eq(readlink(mnt_path("dangling"), got, sizeof(got)), 17);
		ck_assert(memcmp(got, "../nowhere/at all", 17) == 0);
		ck_assert_errno(stat(mnt_path("dangling"), &st), ENOENT);
		ck_assert_errno(open(mnt_path("dangling"), O_RDONLY), ENOENT);
		ck_assert_int_eq(readlink(mnt_path("long"), got, sizeof(got)), 1000);
		ck_assert(memcmp(got, target, 1000) == 0);
		ck_assert_errno(readlink(mnt_path("real"), got, sizeof(got)), EINVAL);
		if (round == 0)
			fixture_remount(&fx);
	}
	/* removing the link leaves the target; a link renamed keeps its target */
	ck_assert_int_eq(rename(mnt_path("rel"), mnt_path("rel2")), 0);
	assert_content(mnt_path("rel2"), "real data");
	ck_assert_int_eq(unlink(mnt_path("rel2")), 0);
	assert_content(mnt_path("real"), "real data");
}
END_TEST

/* 255 bytes: every byte value 0x01..0xff except '/', and one more 'A'. */
static void long_name(char name[257], size_t len)
{
	size_t n = 0;
	for (int byte = 1; byte <= 0xff && n < len; byte++)
		if (byte != '/')
			name[n++] = (char)byte;
	while (n < len)
		name[n++] = 'A';
	name[n] = '\0';
}

START_TEST(test_long_names)
{
	char name[257], too_long[257];
	long_name(name, 255);
	long_name(too_long, 256);
	ck_assert_int_eq(strlen(name), 255);
	ck_assert_int_eq(mkdir(mnt_path("names"), 0755), 0);
	make_file(mnt_path("names/%s", name), "long name");
	ck_assert_int_eq(mkdir(mnt_path("names/d%.254s", name + 1), 0755), 0);
	ck_assert_errno(open(mnt_path("names/%s", too_long), O_CREAT | O_RDWR, 0644), ENAMETOOLONG);
	ck_assert_errno(mkdir(mnt_path("names/%s", too_long), 0755), ENAMETOOLONG);
	ck_assert_errno(symlink("x", mnt_path("names/%s", too_long)), ENAMETOOLONG);
	ck_assert_errno(rename(mnt_path("names/%s", name), mnt_path("names/%s", too_long)),
			ENAMETOOLONG);
	ck_assert_errno(link(mnt_path("names/%s", name), mnt_path("names/%s", too_long)),
			ENAMETOOLONG);
	fixture_remount(&fx);
	DIR *d = opendir(mnt_path("names"));
	ck_assert(d != NULL);
	int found = 0, found_dir = 0, others = 0;
	struct dirent *entry;
	while ((entry = readdir(d)) != NULL) {
		if (strcmp(entry->d_name, name) == 0)
			found++;
		else if (entry->d_name[0] == 'd' && strcmp(entry->d_name + 1, name + 1) == 0)
			found_dir++;
		else if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
			others++;
	}
	closedir(d);
	ck_assert_int_eq(found, 1);
	ck_assert_int_eq(found_dir, 1);
	ck_assert_int_eq(others, 0);
	assert_content(mnt_path("names/%s", name), "long name");
	char renamed[257];
	memcpy(renamed, name, sizeof(renamed));
	renamed[0] = 'R';
	ck_assert_int_eq(rename(mnt_path("names/%s", name), mnt_path("names/%s", renamed)), 0);
	assert_content(mnt_path("names/%s", renamed), "long name");
	ck_assert_errno(access(mnt_path("names/%s", name), F_OK), ENOENT);
}
END_TEST

START_TEST(test_directory_link_count)
{
	ck_assert_int_eq(mkdir(mnt_path("top"), 0755), 0);
	ck_assert_int_eq(stat_of(mnt_path("top")).st_nlink, 2);
	ck_assert_int_eq(mkdir(mnt_path("top/a"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("top/b"), 0755), 0);
	ck_assert_int_eq(mkdir(mnt_path("top/c"), 0755), 0);
	make_file(mnt_path("top/file"), "");
	ck_assert_int_eq(symlink("a", mnt_path("top/link")), 0);
	ck_assert_int_eq(stat_of(mnt_path("top")).st_nlink, 5);
	ck_assert_int_eq(stat_of(mnt_path("top/a")).st_nlink, 2);
	ck_assert_int_eq(rmdir(mnt_path("top/c")), 0);
	ck_assert_int_eq(stat_of(mnt_path("top")).st_nlink, 4);
	ck_assert_int_eq(rename(mnt_path("top/b"), mnt_path("b_out")), 0);
	ck_assert_int_eq(stat_of(mnt_path("top")).st_nlink, 3);
	ck_assert_int_eq(stat_of(fx.mnt).st_nlink, 4);
	fixture_remount(&fx);
	ck_assert_int_eq(stat_of(mnt_path("top")).st_nlink, 3);
	ck_assert_int_eq(stat_of(fx.mnt).st_nlink, 4);
}
END_TEST

static Suite *dirs_suite(void)
{
	Suite *suite = suite_create("mount_dirs");
	TCase *tcase = tcase_create("namespace");
	tcase_add_checked_fixture(tcase, fixture_setup, fixture_teardown);
	tcase_set_timeout(tcase, 90);
	tcase_add_test(tcase, test_mkdir_rmdir);
	tcase_add_test(tcase, test_readdir_exact);
	tcase_add_test(tcase, test_readdir_during_changes);
	tcase_add_test(tcase, test_directory_3000_entries);
	tcase_add_test(tcase, test_rename_files);
	tcase_add_test(tcase, test_rename_directories);
	tcase_add_test(tcase, test_renameat2_flags);
	tcase_add_test(tcase, test_hard_links);
	tcase_add_test(tcase, test_symlinks);
	tcase_add_test(tcase, test_long_names);
	tcase_add_test(tcase, test_directory_link_count);
	suite_add_tcase(suite, tcase);
	return suite;
}

int main(void)
{
	return harness_run(dirs_suite());
}
