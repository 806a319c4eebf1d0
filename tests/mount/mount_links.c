/*
 * A hostile backing store, seen by the real daemon: every file and directory of a vault
 * that has been mounted and used (header, meta/ and LMDB's data.mdb and lock.mdb,
 * objects/, its fan-out directories, object files, objects/free and objects/trash, the
 * vault directory itself) in turn replaced by a symbolic link to a host file or
 * directory. vaultfs refuses to mount with one line naming the link, vaultctl info
 * refuses the same way, and the host file and directory are left as they were.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define HOST_TEXT "a host file that vaultfs must never write\n"
#define PATHS_MAX 64
#define REFUSAL_WAIT_MS 10000

/* A host file and a host directory (holding a file named lock.mdb) outside the vault. */
struct host {
	char file[PATH_MAX];
	char dir[PATH_MAX];
	char inner[PATH_MAX + 16];
	struct stat file_st, dir_st, inner_st;
};

static char paths[PATHS_MAX][128];
static int path_count;

static void write_host_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, HOST_TEXT, strlen(HOST_TEXT)), (ssize_t)strlen(HOST_TEXT));
	close(fd);
}

static void host_make(struct host *host)
{
	snprintf(host->file, sizeof(host->file), "%s/host-file", fx.root);
	snprintf(host->dir, sizeof(host->dir), "%s/host-dir", fx.root);
	snprintf(host->inner, sizeof(host->inner), "%s/lock.mdb", host->dir);
	write_host_file(host->file);
	ck_assert_int_eq(mkdir(host->dir, 0755), 0);
	write_host_file(host->inner);
	/* Times compared below must be able to differ from these. */
	fixture_sleep_ms(20);
	ck_assert_int_eq(lstat(host->file, &host->file_st), 0);
	ck_assert_int_eq(lstat(host->dir, &host->dir_st), 0);
	ck_assert_int_eq(lstat(host->inner, &host->inner_st), 0);
}

static bool same_times(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void assert_host_file(const char *path, const struct stat *before, const char *rel)
{
	struct stat st;
	size_t len = 0;

	ck_assert_msg(lstat(path, &st) == 0, "'%s' as a link: host file %s is gone", rel, path);
	ck_assert_msg(S_ISREG(st.st_mode) && st.st_ino == before->st_ino && same_times(&st, before),
		      "'%s' as a link: host file %s was changed", rel, path);
	char *text = fixture_read_text(path, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(len == strlen(HOST_TEXT) && memcmp(text, HOST_TEXT, len) == 0,
		      "'%s' as a link: host file %s has other bytes", rel, path);
	free(text);
}

static void host_assert_unchanged(const struct host *host, const char *rel)
{
	struct dirent *entry;
	struct stat st;
	int entries = 0;

	assert_host_file(host->file, &host->file_st, rel);
	assert_host_file(host->inner, &host->inner_st, rel);
	ck_assert_int_eq(lstat(host->dir, &st), 0);
	ck_assert_msg(same_times(&st, &host->dir_st), "'%s' as a link: host directory changed",
		      rel);
	DIR *d = opendir(host->dir);
	ck_assert_ptr_nonnull(d);
	while ((entry = readdir(d)) != NULL)
		entries++;
	closedir(d);
	ck_assert_msg(entries == 3, "'%s' as a link: host directory has %d entries", rel, entries);
}

static int collect_path(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	ck_assert_int_lt(path_count, PATHS_MAX);
	const char *rel = path + strlen(fx.vault);
	snprintf(paths[path_count++], sizeof(paths[0]), "%s", rel[0] == '/' ? rel + 1 : rel);
	return 0;
}

/* The line the daemon or vaultctl prints for a link at rel ("" the vault itself). */
static void expected_refusal(char *buf, size_t len, const char *rel)
{
	if (rel[0])
		snprintf(buf, len, "vault '%s' contains a symbolic link at '%s': refusing to ",
			 fx.vault, rel);
	else
		snprintf(buf, len, "vault '%s' is a symbolic link: refusing to ", fx.vault);
}

/* Run argv with its output in fx.root/refusal.out: its exit status, and the output in
 * out (malloc'd). */
static int run_capturing(const char *const argv[], char **out)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/refusal.out", fx.root);
	unlink(path);
	int status = fixture_spawn(argv, path, REFUSAL_WAIT_MS);
	*out = fixture_read_text(path, NULL);
	ck_assert_ptr_nonnull(*out);
	return status;
}

START_TEST(test_links_refused)
{
	SKIP_IF_PLAIN();
	char path[PATH_MAX], aside[PATH_MAX], options[PATH_MAX + 16], expected[PATH_MAX + 256];
	bool saw_lock = false, saw_fanout = false, saw_free = false;
	struct host host;

	/* Used: objects in fan-out directories, an emptied object file kept in
	 * objects/free, meta/lock.mdb. */
	ck_assert_int_eq(pattern_write_file(mnt_path("kept"), 70000, 3), 0);
	ck_assert_int_eq(pattern_write_file(mnt_path("removed"), 5000, 4), 0);
	ck_assert_int_eq(unlink(mnt_path("removed")), 0);
	fixture_unmount(&fx);
	host_make(&host);
	path_count = 0;
	ck_assert_int_eq(nftw(fx.vault, collect_path, 16, FTW_PHYS), 0);
	snprintf(aside, sizeof(aside), "%s/aside", fx.root);
	snprintf(options, sizeof(options), "keyfile=%s", fx.key);
	const char *mount[] = { fixture_binary("VAULTFS"), "-f", "-o", options, fx.vault, fx.mnt,
				NULL };
	const char *info[] = { fixture_binary("VAULTCTL"), "info", fx.vault, NULL };

	for (int i = 0; i < path_count; i++) {
		const char *rel = paths[i];
		struct stat st;
		char *out;

		snprintf(path, sizeof(path), "%s%s%.*s", fx.vault, rel[0] ? "/" : "",
			 (int)sizeof(paths[0]), rel);
		ck_assert_int_eq(lstat(path, &st), 0);
		saw_lock |= strcmp(rel, "meta/lock.mdb") == 0;
		saw_fanout |= strlen(rel) == strlen("objects/xx") && S_ISDIR(st.st_mode);
		saw_free |= strncmp(rel, "objects/free/", 13) == 0;
		ck_assert_int_eq(rename(path, aside), 0);
		ck_assert_int_eq(symlink(S_ISDIR(st.st_mode) ? host.dir : host.file, path), 0);
		expected_refusal(expected, sizeof(expected), rel);

		int status = run_capturing(mount, &out);
		bool mounted = fixture_is_mount(fx.mnt);
		if (mounted)
			fixture_clear_dead_mount(&fx);
		ck_assert_msg(status == 1 && !mounted, "'%s' as a link: vaultfs exited %d%s: %s",
			      rel, status, mounted ? " and mounted" : "", out);
		ck_assert_msg(strstr(out, expected) != NULL, "'%s' as a link: vaultfs said: %s",
			      rel, out);
		free(out);
		status = run_capturing(info, &out);
		ck_assert_msg(status != 0 && strstr(out, expected) != NULL,
			      "'%s' as a link: vaultctl info exited %d: %s", rel, status, out);
		free(out);
		host_assert_unchanged(&host, rel);

		ck_assert_int_eq(unlink(path), 0);
		ck_assert_int_eq(rename(aside, path), 0);
	}
	ck_assert(saw_lock && saw_fanout && saw_free);

	/* The whole line, as an admin reads it. */
	char *out;
	snprintf(path, sizeof(path), "%s/meta/lock.mdb", fx.vault);
	ck_assert_int_eq(rename(path, aside), 0);
	ck_assert_int_eq(symlink(host.file, path), 0);
	ck_assert_int_eq(run_capturing(mount, &out), 1);
	snprintf(expected, sizeof(expected), "vaultfs: vault '%s' contains a symbolic link at "
		 "'meta/lock.mdb': refusing to mount: a vault never holds links; restore it from "
		 "a backup\n", fx.vault);
	ck_assert_msg(strstr(out, expected) != NULL, "vaultfs said: %s", out);
	free(out);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rename(aside, path), 0);

	/* Restored, the vault mounts and reads as before. */
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("kept"), 70000, 3), 0);
	host_assert_unchanged(&host, "at the end");
}
END_TEST

static Suite *links_suite(void)
{
	Suite *suite = suite_create("mount_links");
	TCase *tcase = tcase_create("hostile backing store");
	tcase_add_checked_fixture(tcase, fixture_setup, fixture_teardown);
	tcase_set_timeout(tcase, 240);
	tcase_add_test(tcase, test_links_refused);
	suite_add_tcase(suite, tcase);
	return suite;
}

int main(void)
{
	return harness_run(links_suite());
}
