/*
 * Real-mount tests of the daemon's command line: refusals (wrong key, loose key file
 * permissions, bad mountpoints, not a vault, bad options, dev and suid) exit 1 with a
 * message and mount nothing; ro, ephemeral, auto_unmount, fsname/max_threads, nodev and
 * nosuid, daemonizing and an XChaCha20-Poly1305 vault work as documented; a root mount
 * reads ahead 1 MiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define RUN_TIMEOUT_MS 10000

/*
 * Run `vaultfs -f ARGS...` (args ends with NULL) expecting a refusal: exit status 1, a
 * message on stderr containing needle (case-insensitive; NULL: any message) and no mount
 * at mnt. expect_usage_error accepts any non-zero status (usage errors often exit 2).
 */
static void refusal(const char *needle, const char *mnt, const char *const args[],
		    bool any_status)
{
	const char *argv[16];
	char output[PATH_MAX];
	size_t n = 0;
	argv[n++] = getenv("VAULTFS");
	argv[n++] = "-f";
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	ck_assert_msg(argv[0] != NULL, "VAULTFS is not set");
	snprintf(output, sizeof(output), "%s/refusal.out", fx.root);
	unlink(output);
	int status = fixture_spawn(argv, output, RUN_TIMEOUT_MS);
	bool mounted = fixture_is_mount(mnt);
	if (mounted) {
		const char *detach[] = { "umount", "-l", mnt, NULL };
		fixture_spawn(detach, NULL, RUN_TIMEOUT_MS);
	}
	char *message = fixture_read_text(output, NULL);
	ck_assert_msg(!mounted, "vaultfs mounted %s although it should refuse", mnt);
	ck_assert_msg(status == 1 || (any_status && status > 0 && status < 128),
		      "vaultfs exited %d, want 1 (output: %s)", status, message ? message : "");
	ck_assert_msg(message != NULL && message[0] != '\0', "vaultfs refused without a message");
	ck_assert_msg(needle == NULL || strcasestr(message, needle) != NULL,
		      "message '%s' does not mention '%s'", message, needle);
	free(message);
}

static void expect_refusal(const char *needle, const char *mnt, const char *const args[])
{
	refusal(needle, mnt, args, false);
}

static void expect_usage_error(const char *mnt, const char *const args[])
{
	refusal(NULL, mnt, args, true);
}

static const char *keyfile_option(const char *key)
{
	static char option[PATH_MAX + 16];
	snprintf(option, sizeof(option), "keyfile=%s", key);
	return option;
}

START_TEST(test_wrong_key)
{
	SKIP_IF_PLAIN();
	static struct fixture other;
	fixture_create(&other, NULL, false);
	const char *args[] = { "-o", keyfile_option(other.key), fx.vault, fx.mnt, NULL };
	expect_refusal("wrong key", fx.mnt, args);
	fixture_destroy(&other);
	/* nothing was harmed: the right key still opens it */
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 100, 1), 0);
}
END_TEST

START_TEST(test_loose_key_file)
{
	SKIP_IF_PLAIN();
	ck_assert_int_eq(chmod(fx.key, 0644), 0);
	const char *args[] = { "-o", keyfile_option(fx.key), fx.vault, fx.mnt, NULL };
	expect_refusal("permission", fx.mnt, args);
	ck_assert_int_eq(chmod(fx.key, 0600), 0);
	fixture_mount(&fx);
}
END_TEST

START_TEST(test_bad_mountpoints)
{
	SKIP_IF_PLAIN();
	char missing[PATH_MAX], file[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/no-such-dir", fx.root);
	snprintf(file, sizeof(file), "%s/a-file", fx.root);
	int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	const char *to_missing[] = { "-o", keyfile_option(fx.key), fx.vault, missing, NULL };
	expect_refusal(NULL, missing, to_missing);
	const char *to_file[] = { "-o", keyfile_option(fx.key), fx.vault, file, NULL };
	expect_refusal(NULL, file, to_file);
	/* already a mount: refused, and the existing mount keeps working */
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 5000, 1), 0);
	const char *again[] = { "-o", keyfile_option(fx.key), fx.vault, fx.mnt, NULL };
	const char *argv[] = { getenv("VAULTFS"), "-f", again[0], again[1], again[2], again[3], NULL };
	char output[PATH_MAX];
	snprintf(output, sizeof(output), "%s/busy.out", fx.root);
	int status = fixture_spawn(argv, output, RUN_TIMEOUT_MS);
	ck_assert_msg(status == 1, "second mount on a busy mountpoint exited %d, want 1", status);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 5000, 1), 0);
}
END_TEST

START_TEST(test_not_a_vault)
{
	SKIP_IF_PLAIN();
	char empty[PATH_MAX], missing[PATH_MAX];
	snprintf(empty, sizeof(empty), "%s/empty", fx.root);
	snprintf(missing, sizeof(missing), "%s/missing", fx.root);
	ck_assert_int_eq(mkdir(empty, 0700), 0);
	const char *of_empty[] = { "-o", keyfile_option(fx.key), empty, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, of_empty);
	const char *of_missing[] = { "-o", keyfile_option(fx.key), missing, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, of_missing);
	/* a damaged header is refused too */
	char header[PATH_MAX];
	snprintf(header, sizeof(header), "%s/vaultfs.header", fx.vault);
	int fd = open(header, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	uint8_t byte;
	ck_assert_int_eq(pread(fd, &byte, 1, 40), 1);
	byte ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &byte, 1, 40), 1);
	close(fd);
	const char *tampered[] = { "-o", keyfile_option(fx.key), fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, tampered);
}
END_TEST

START_TEST(test_bad_options)
{
	SKIP_IF_PLAIN();
	char both[PATH_MAX + 32];
	snprintf(both, sizeof(both), "keyfile=%s,ephemeral", fx.key);
	const char *bogus[] = { "-o", keyfile_option(fx.key), "-o", "no_such_option", fx.vault,
				fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, bogus);
	const char *no_key[] = { fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, no_key);
	const char *two_keys[] = { "-o", both, fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, two_keys);
	const char *no_mountpoint[] = { "-o", keyfile_option(fx.key), fx.vault, NULL };
	expect_usage_error(fx.mnt, no_mountpoint);
	/* cipher= belongs to ephemeral vaults: a keyfile vault has its cipher already */
	const char *cipher[] = { "-o", keyfile_option(fx.key), "-o", "cipher=xchacha20-poly1305",
				 fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, cipher);
}
END_TEST

START_TEST(test_read_only)
{
	SKIP_IF_PLAIN();
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("kept"), 9000, 3), 0);
	ck_assert_int_eq(mkdir(mnt_path("dir"), 0755), 0);
	fixture_unmount(&fx);
	snprintf(fx.options, sizeof(fx.options), "ro");
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("kept"), 9000, 3), 0);
	ck_assert_errno(open(mnt_path("kept"), O_WRONLY), EROFS);
	ck_assert_errno(open(mnt_path("kept"), O_RDWR), EROFS);
	ck_assert_errno(open(mnt_path("new"), O_CREAT | O_WRONLY, 0644), EROFS);
	ck_assert_errno(mkdir(mnt_path("newdir"), 0755), EROFS);
	ck_assert_errno(unlink(mnt_path("kept")), EROFS);
	ck_assert_errno(rmdir(mnt_path("dir")), EROFS);
	ck_assert_errno(rename(mnt_path("kept"), mnt_path("moved")), EROFS);
	ck_assert_errno(truncate(mnt_path("kept"), 0), EROFS);
	ck_assert_errno(chmod(mnt_path("kept"), 0600), EROFS);
	ck_assert_errno(symlink("kept", mnt_path("link")), EROFS);
	ck_assert_errno(setxattr(mnt_path("kept"), "user.x", "1", 1, 0), EROFS);
	ck_assert_int_eq(pattern_verify_file(mnt_path("kept"), 9000, 3), 0);
}
END_TEST

START_TEST(test_ephemeral)
{
	SKIP_IF_PLAIN();
	/* an ephemeral vault may not reuse a vault directory with content */
	const char *on_vault[] = { "-o", "ephemeral", fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, on_vault);

	struct fixture saved = fx;
	snprintf(fx.vault, sizeof(fx.vault), "%s/scratch", fx.root); /* missing: created */
	fx.ephemeral = true;
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("job-output"), 200000, 4), 0);
	ck_assert_int_eq(mkdir(mnt_path("dir"), 0755), 0);
	ck_assert_int_eq(pattern_verify_file(mnt_path("job-output"), 200000, 4), 0);
	fixture_unmount(&fx);
	ck_assert_msg(fixture_disk_usage(fx.vault) > 0, "the ephemeral vault left nothing on disk");
	/* no key file opens what is left, not even the one of a vault made with vaultctl */
	const char *with_key[] = { "-o", keyfile_option(saved.key), fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, with_key);
	const char *again[] = { "-o", "ephemeral", fx.vault, fx.mnt, NULL };
	expect_refusal(NULL, fx.mnt, again);
	snprintf(fx.vault, sizeof(fx.vault), "%s", saved.vault);
	fx.ephemeral = false;
}
END_TEST

START_TEST(test_ephemeral_cipher)
{
	SKIP_IF_PLAIN();
	snprintf(fx.vault, sizeof(fx.vault), "%s/scratch", fx.root);
	ck_assert_int_eq(mkdir(fx.vault, 0700), 0); /* empty: allowed */
	fx.ephemeral = true;
	snprintf(fx.options, sizeof(fx.options), "cipher=xchacha20-poly1305");
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 2 * FIXTURE_BLOCK_SIZE, 5), 0);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 2 * FIXTURE_BLOCK_SIZE, 5), 0);
	char ids[4][FIXTURE_ID_HEX_LEN + 1], object[PATH_MAX];
	ck_assert_int_eq(fixture_object_ids(&fx, ids, 4), 1);
	fixture_object_path(&fx, ids[0], object);
	struct stat st;
	ck_assert_int_eq(stat(object, &st), 0);
	ck_assert_int_eq(st.st_size, FIXTURE_OBJECT_HEADER_LEN + 2 * (FIXTURE_BLOCK_SIZE + 24 + 16));
}
END_TEST

/* vaultctl init --cipher xchacha20-poly1305: blocks of 4136 bytes on disk, and it reads. */
START_TEST(test_xchacha_vault)
{
	SKIP_IF_PLAIN();
	char vault[sizeof(fx.vault)], key[sizeof(fx.key)], output[PATH_MAX];
	snprintf(vault, sizeof(vault), "%s/xvault", fx.root);
	snprintf(key, sizeof(key), "%s/xkey", fx.root);
	snprintf(output, sizeof(output), "%s/xinit.out", fx.root);
	const char *init[] = { getenv("VAULTCTL"), "init", "--cipher", "xchacha20-poly1305",
			       "--key-file", key, vault, NULL };
	ck_assert_int_eq(fixture_spawn(init, output, RUN_TIMEOUT_MS), 0);
	snprintf(fx.vault, sizeof(fx.vault), "%s", vault);
	snprintf(fx.key, sizeof(fx.key), "%s", key);
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 3 * FIXTURE_BLOCK_SIZE, 6), 0);
	fixture_remount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 3 * FIXTURE_BLOCK_SIZE, 6), 0);
	char ids[4][FIXTURE_ID_HEX_LEN + 1], object[PATH_MAX];
	ck_assert_int_eq(fixture_object_ids(&fx, ids, 4), 1);
	fixture_object_path(&fx, ids[0], object);
	struct stat st;
	ck_assert_int_eq(stat(object, &st), 0);
	ck_assert_int_eq(st.st_size, FIXTURE_OBJECT_HEADER_LEN + 3 * (FIXTURE_BLOCK_SIZE + 24 + 16));
}
END_TEST

START_TEST(test_auto_unmount)
{
	SKIP_IF_PLAIN();
	snprintf(fx.options, sizeof(fx.options), "auto_unmount");
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 100, 1), 0);
	fixture_kill_daemon(&fx);
	bool gone = false;
	/* fusermount3's watcher unmounts once it sees the daemon gone; the bound only keeps a
	 * broken auto_unmount from hanging the test (5 s was once too short under ASan and
	 * the parallel suites of .ci/run). */
	for (int waited = 0; waited < 20000 && !gone; waited += 20) {
		gone = !fixture_is_mount(fx.mnt);
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	ck_assert_msg(gone, "auto_unmount: the mount outlived its daemon");
	fx.mounted = false;
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 100, 1), 0);
}
END_TEST

START_TEST(test_fuse_options)
{
	SKIP_IF_PLAIN();
	char fsname[64];
	snprintf(fsname, sizeof(fsname), "vaultfs-test-%d", (int)getpid());
	snprintf(fx.options, sizeof(fx.options), "fsname=%s,max_threads=2", fsname);
	fixture_mount(&fx);
	char *mountinfo = fixture_read_text("/proc/self/mountinfo", NULL);
	ck_assert(mountinfo != NULL);
	char *line = strstr(mountinfo, fx.mnt);
	ck_assert_msg(line != NULL, "%s is not in mountinfo", fx.mnt);
	char *end = strchr(line, '\n');
	if (end)
		*end = '\0';
	ck_assert_msg(strstr(line, fsname) != NULL, "fsname missing: %s", line);
	ck_assert_msg(strstr(line, "default_permissions") != NULL,
		      "default_permissions is not on: %s", line);
	free(mountinfo);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 100000, 1), 0);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 100000, 1), 0);
}
END_TEST

/* The per-mount options of mnt in /proc/self/mountinfo (field 6), malloc'd. */
static char *mount_options_of(const char *mnt)
{
	char *mountinfo = fixture_read_text("/proc/self/mountinfo", NULL);
	ck_assert(mountinfo != NULL);
	char *line = strstr(mountinfo, mnt);
	ck_assert_msg(line != NULL, "%s is not in mountinfo", mnt);
	char *options = line + strlen(mnt) + 1;
	char *end = strchr(options, ' ');
	ck_assert(end != NULL);
	*end = '\0';
	char *copy = strdup(options);
	free(mountinfo);
	return copy;
}

static bool has_option(const char *options, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = options; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
			return true;
	return false;
}

/* A stored device node or set-user-ID file must never act: the mount is nodev,nosuid
 * whatever the options say, and the options that would lift either are refused, also for
 * a mount root makes for a user (mount_uid=). */
START_TEST(test_nodev_nosuid)
{
	SKIP_IF_PLAIN();
	snprintf(fx.options, sizeof(fx.options), "nodev,nosuid,exec");
	fixture_mount(&fx);
	char *options = mount_options_of(fx.mnt);
	ck_assert_msg(has_option(options, "nodev") && has_option(options, "nosuid"),
		      "mount options: %s", options);
	free(options);
	fixture_unmount(&fx);

	const char *lifting[] = { "dev", "suid", "rw,dev", "suid,nodev", "nosuid,suid",
				  "mount_uid=0,mount_gid=0,dev", "mount_uid=0,mount_gid=0,suid" };
	for (size_t i = 0; i < sizeof(lifting) / sizeof(lifting[0]); i++) {
		const char *args[] = { "-o", keyfile_option(fx.key), "-o", lifting[i], fx.vault,
				       fx.mnt, NULL };
		expect_refusal("nodev,nosuid", fx.mnt, args);
	}
	/* as one -o with the key file, the same */
	char joined[PATH_MAX + 32];
	snprintf(joined, sizeof(joined), "%s,dev", keyfile_option(fx.key));
	const char *joined_args[] = { "-o", joined, fx.vault, fx.mnt, NULL };
	expect_refusal("'dev' is refused", fx.mnt, joined_args);
}
END_TEST

/* Without -f the parent exits 0 only once the mount works. */
/* A root mount reads ahead 1 MiB, not the kernel's 128 KiB FUSE default: a memory-mapped
 * file (numpy.memmap) faults in whole requests. */
START_TEST(test_readahead)
{
	SKIP_IF_PLAIN();
	struct stat st;
	char path[64];
	fixture_mount(&fx);
	ck_assert_int_eq(stat(fx.mnt, &st), 0);
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
		 minor(st.st_dev));
	char *text = fixture_read_text(path, NULL);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	ck_assert_msg(geteuid() != 0 || atoi(text) == 1024, "read_ahead_kb is %s, want 1024", text);
	free(text);
}
END_TEST

START_TEST(test_daemonize)
{
	SKIP_IF_PLAIN();
	const char *argv[] = { getenv("VAULTFS"), "-o", keyfile_option(fx.key), fx.vault, fx.mnt,
			       NULL };
	int status = fixture_spawn(argv, fx.log, 15000);
	ck_assert_msg(status == 0, "vaultfs exited %d", status);
	ck_assert_msg(fixture_is_mount(fx.mnt), "vaultfs exited 0 before the mount was up");
	fx.mounted = true; /* no child of ours: fixture_clear_dead_mount unmounts it */
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 30000, 2), 0);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 30000, 2), 0);
	/* The daemon's threads survive its fork: a removed file's object is emptied while
	 * it runs, not only when it exits. */
	ck_assert_int_eq(pattern_write_file(mnt_path("gone"), 30000, 3), 0);
	ck_assert_int_eq(unlink(mnt_path("gone")), 0);
	for (int waited = 0; fixture_pool_bytes(&fx) > 0 && waited < 10000; waited += 20)
		usleep(20000);
	ck_assert_msg(fixture_pool_bytes(&fx) == 0, "a removed object still holds ciphertext");
	fixture_clear_dead_mount(&fx);
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 30000, 2), 0);
}
END_TEST

static Suite *options_suite(void)
{
	Suite *suite = suite_create("mount_options");
	TCase *tcase = tcase_create("command_line");
	tcase_add_checked_fixture(tcase, fixture_setup_unmounted, fixture_teardown);
	tcase_set_timeout(tcase, 60);
	tcase_add_test(tcase, test_wrong_key);
	tcase_add_test(tcase, test_loose_key_file);
	tcase_add_test(tcase, test_bad_mountpoints);
	tcase_add_test(tcase, test_not_a_vault);
	tcase_add_test(tcase, test_bad_options);
	tcase_add_test(tcase, test_read_only);
	tcase_add_test(tcase, test_ephemeral);
	tcase_add_test(tcase, test_ephemeral_cipher);
	tcase_add_test(tcase, test_xchacha_vault);
	tcase_add_test(tcase, test_auto_unmount);
	tcase_add_test(tcase, test_fuse_options);
	tcase_add_test(tcase, test_nodev_nosuid);
	tcase_add_test(tcase, test_daemonize);
	tcase_add_test(tcase, test_readahead);
	suite_add_tcase(suite, tcase);
	return suite;
}

int main(void)
{
	return harness_run(options_suite());
}
