/*
 * The audit trail of a real mount (-o audit=DIR, vaultfs-audit(5)): a scripted workload
 * of every recorded operation leaves its records in order, with who and the result; the
 * trail verifies with 'vaultctl audit verify' and an edited record is named; a marker
 * put in names, symlink targets and xattr values appears nowhere in the trail; a full
 * audit disk refuses accesses (fail closed) and loses nothing once space returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define MARKER "PHI-MARKER-7Q2"

static char audit_dir[256];
static char small_disk[256];   /* the tmpfs of the full-disk test, while mounted */

static void setup_with_trail(const char *dir_name)
{
	fixture_create(&fx, NULL, false);
	snprintf(audit_dir, sizeof(audit_dir), "%s/%s", fx.root, dir_name);
	snprintf(fx.options, sizeof(fx.options), "audit=%s", audit_dir);
	fixture_mount(&fx);
}

/* Every segment of the trail, concatenated (malloc'd). */
static char *trail_text(size_t *len_out)
{
	char command[PATH_MAX + 64], *text = NULL;
	size_t len = 0;
	FILE *pipe;

	snprintf(command, sizeof(command), "cat %s/seg-*.jsonl 2>/dev/null", audit_dir);
	pipe = popen(command, "r");
	ck_assert_ptr_nonnull(pipe);
	FILE *mem = open_memstream(&text, &len);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
		fwrite(buf, 1, n, mem);
	pclose(pipe);
	fclose(mem);
	if (len_out)
		*len_out = len;
	return text;
}

static int vaultctl_verify(const char *output)
{
	const char *argv[] = { fixture_binary("VAULTCTL"), "audit", "verify", audit_dir, NULL };
	return fixture_spawn(argv, output, 30000);
}

/* The actions of the trail in order, as "a b c". */
static char *actions(void)
{
	char *text = trail_text(NULL), *out = calloc(1, strlen(text) + 1), *p = text;

	ck_assert_ptr_nonnull(out);
	while ((p = strstr(p, "\"action\":\"")) != NULL) {
		p += strlen("\"action\":\"");
		size_t n = strcspn(p, "\"");
		strncat(out, p, n);
		strcat(out, " ");
		p += n;
	}
	free(text);
	return out;
}

/* Whether want's words appear in have in this order (others may come between). */
static bool in_order(const char *have, const char *const *want, size_t count)
{
	const char *p = have;

	for (size_t i = 0; i < count; i++) {
		char word[64];
		snprintf(word, sizeof(word), "%s ", want[i]);
		const char *found = strstr(p, word);
		while (found && found != have && found[-1] != ' ')
			found = strstr(found + 1, word);
		if (!found)
			return false;
		p = found + strlen(word);
	}
	return true;
}

START_TEST(test_workload_recorded_in_order)
{
	char buf[256];
	int fd;

	setup_with_trail("trail");
	ck_assert_int_eq(mkdir(mnt_path("d-" MARKER), 0755), 0);
	fd = open(mnt_path("d-" MARKER "/f-" MARKER), O_CREAT | O_WRONLY, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "hello " MARKER, 6 + strlen(MARKER)), 6 + (ssize_t)strlen(MARKER));
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(close(fd), 0);
	fd = open(mnt_path("d-" MARKER "/f-" MARKER), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(read(fd, buf, sizeof(buf)), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(rename(mnt_path("d-" MARKER "/f-" MARKER),
				mnt_path("d-" MARKER "/g-" MARKER)), 0);
	ck_assert_int_eq(link(mnt_path("d-" MARKER "/g-" MARKER), mnt_path("h-" MARKER)), 0);
	ck_assert_int_eq(unlink(mnt_path("h-" MARKER)), 0);
	ck_assert_int_eq(chmod(mnt_path("d-" MARKER "/g-" MARKER), 0600), 0);
	ck_assert_int_eq(setxattr(mnt_path("d-" MARKER "/g-" MARKER), "user.note", MARKER,
				  strlen(MARKER), 0), 0);
	ck_assert_int_eq(removexattr(mnt_path("d-" MARKER "/g-" MARKER), "user.note"), 0);
	ck_assert_int_eq(symlink("target-" MARKER, mnt_path("s-" MARKER)), 0);
	ck_assert_int_eq(unlink(mnt_path("s-" MARKER)), 0);
	ck_assert_int_eq(unlink(mnt_path("d-" MARKER "/g-" MARKER)), 0);
	ck_assert_int_eq(rmdir(mnt_path("d-" MARKER)), 0);
	fixture_unmount(&fx);

	char *have = actions();
	/* Closes come when the kernel releases the file, which may be a little later. */
	static const char *const want[] = {
		"mount", "mkdir", "create", "fsync", "open", "rename", "link", "unlink",
		"setattr", "setxattr", "removexattr", "symlink", "unlink", "unlink", "rmdir",
		"unmount",
	};
	ck_assert_msg(in_order(have, want, sizeof(want) / sizeof(want[0])),
		      "the trail's actions: %s", have);
	int closes = 0;
	for (const char *p = have; (p = strstr(p, "close ")) != NULL; p += 6)
		closes++;
	ck_assert_msg(closes == 2, "%d close records: %s", closes, have);
	/* Nothing but recorded kinds of action. */
	static const char *const known[] = {
		"mount", "mkdir", "create", "fsync", "close", "open", "rename", "link", "unlink",
		"setattr", "setxattr", "removexattr", "symlink", "rmdir", "unmount", "readdir",
	};
	for (char *word = strtok(have, " "); word; word = strtok(NULL, " ")) {
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok |= strcmp(word, known[i]) == 0;
		ck_assert_msg(ok, "unexpected action '%s' in the trail", word);
	}
	free(have);

	/* Who and what: root's uid, a result, path hashes; never a name or a value. */
	size_t len;
	char *text = trail_text(&len);
	ck_assert_ptr_nonnull(strstr(text, "\"uid\":0"));
	ck_assert_ptr_nonnull(strstr(text, "\"comm\":\"mount_audit\""));
	ck_assert_ptr_nonnull(strstr(text, "\"exe\":\"/"));
	ck_assert_ptr_nonnull(strstr(text, "\"result\":\"ok\""));
	ck_assert_ptr_nonnull(strstr(text, "\"path_hash\":\""));
	ck_assert_ptr_nonnull(strstr(text, "\"bytes_written\":"));
	ck_assert_msg(memmem(text, len, MARKER, strlen(MARKER)) == NULL,
		      "a name, target or value reached the trail");
	ck_assert_msg(memmem(text, len, "hello", 5) == NULL, "file contents reached the trail");
	free(text);
	char *log = fixture_read_text(fx.log, &len);
	ck_assert_msg(!log || !memmem(log, len, MARKER, strlen(MARKER)), "a name reached the log");
	free(log);

	/* It verifies; an edited record is found and named. */
	ck_assert_int_eq(vaultctl_verify(NULL), 0);
	char segment[PATH_MAX + 64], output[PATH_MAX];
	snprintf(segment, sizeof(segment), "%s/seg-0000000000000001.jsonl", audit_dir);
	/* A sealed segment is immutable where the file system allows: as an attacker with
	 * root on the storage would, take the flag off first. */
	int seg = open(segment, O_RDONLY);
	ck_assert_int_ge(seg, 0);
	int flags = 0;
	if (ioctl(seg, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
		flags &= ~FS_IMMUTABLE_FL;
		ck_assert_int_eq(ioctl(seg, FS_IOC_SETFLAGS, &flags), 0);
	}
	close(seg);
	seg = open(segment, O_RDWR);
	ck_assert_int_ge(seg, 0);
	char *whole = calloc(1, 1 << 20);
	ssize_t got = pread(seg, whole, (1 << 20) - 1, 0);
	ck_assert_int_gt(got, 0);
	char *third = strchr(strchr(whole, '\n') + 1, '\n') + 1;
	char *uid = strstr(third, "\"uid\":0");
	ck_assert_ptr_nonnull(uid);
	ck_assert_int_eq(pwrite(seg, "1", 1, (uid - whole) + 6), 1);  /* uid 0 -> 1 */
	close(seg);
	free(whole);
	snprintf(output, sizeof(output), "%s/verify.txt", fx.root);
	ck_assert_int_ne(vaultctl_verify(output), 0);
	char *said = fixture_read_text(output, NULL);
	ck_assert_msg(said && strstr(said, "record 3") != NULL, "verify said: %s", said);
	free(said);
}
END_TEST

/* A 64 KiB tmpfs for the trail, in a mount namespace of the test's own. */
START_TEST(test_full_audit_disk_fails_closed)
{
	char filler[PATH_MAX + 16];
	int fd;

	ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	fixture_create(&fx, NULL, false);
	snprintf(audit_dir, sizeof(audit_dir), "%s/small", fx.root);
	ck_assert_int_eq(mkdir(audit_dir, 0700), 0);
	ck_assert_int_eq(mount("tmpfs", audit_dir, "tmpfs", 0, "size=64k,mode=0700"), 0);
	snprintf(small_disk, sizeof(small_disk), "%s", audit_dir);
	snprintf(fx.options, sizeof(fx.options), "audit=%s/trail", audit_dir);
	snprintf(filler, sizeof(filler), "%s/filler", audit_dir);
	fixture_mount(&fx);
	snprintf(audit_dir + strlen(audit_dir), sizeof(audit_dir) - strlen(audit_dir), "/trail");

	/* Fill what is left of the trail's disk. */
	fd = open(filler, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	char block[4096] = { 0 };
	while (write(fd, block, sizeof(block)) > 0)
		;
	close(fd);
	/* Accesses are refused (EIO) once a record cannot be written. */
	int refused = 0, done = 0;
	for (int i = 0; i < 200 && !refused; i++) {
		fd = open(mnt_path("file-%d", i), O_CREAT | O_WRONLY, 0644);
		if (fd < 0) {
			ck_assert_int_eq(errno, EIO);
			refused = 1;
			break;
		}
		close(fd);
		done = i + 1;
	}
	ck_assert_msg(refused, "200 files made with the audit disk full");
	/* Space returns: the mount works again, and every record is written. */
	ck_assert_int_eq(unlink(filler), 0);
	int back = 0;
	for (int tries = 0; tries < 50 && !back; tries++) {
		fd = open(mnt_path("after"), O_CREAT | O_WRONLY, 0644);
		if (fd >= 0) {
			close(fd);
			back = 1;
		} else {
			usleep(100000);
		}
	}
	ck_assert_msg(back, "the mount still refuses with space back on the audit disk");
	fixture_unmount(&fx);
	ck_assert_int_eq(vaultctl_verify(NULL), 0);
	char *have = actions();
	int creates = 0;
	for (char *p = have; (p = strstr(p, "create ")) != NULL; p += 7)
		creates++;
	/* Every file that was made has its record, and "after" too. */
	ck_assert_int_ge(creates, done + 1);
	free(have);
}
END_TEST

/* Sealed segments are immutable: take the flag off so the fixture can remove them. */
static void unseal_trail(void)
{
	char command[sizeof(audit_dir) + 64];

	if (!audit_dir[0])
		return;
	snprintf(command, sizeof(command), "chattr -R -i -a %s 2>/dev/null", audit_dir);
	if (system(command) != 0) {
		/* no chattr, or nothing to clear: removing the tree says what is left */
	}
}

/* A trail directory that is a link is refused, and nothing is mounted. */
START_TEST(test_trail_directory_link_refused)
{
	char real[PATH_MAX], link_path[PATH_MAX], options[PATH_MAX + 256], output[PATH_MAX];

	fixture_create(&fx, NULL, false);
	snprintf(real, sizeof(real), "%s/real-trail", fx.root);
	snprintf(link_path, sizeof(link_path), "%s/trail-link", fx.root);
	snprintf(output, sizeof(output), "%s/refused.txt", fx.root);
	ck_assert_int_eq(mkdir(real, 0700), 0);
	ck_assert_int_eq(symlink(real, link_path), 0);
	snprintf(options, sizeof(options), "keyfile=%s,audit=%s", fx.key, link_path);
	const char *argv[] = { fixture_binary("VAULTFS"), "-f", "-o", options, fx.vault, fx.mnt,
			       NULL };
	ck_assert_int_eq(fixture_spawn(argv, output, 30000), 1);
	char *said = fixture_read_text(output, NULL);
	ck_assert_msg(said && strstr(said, "cannot open the audit trail") != NULL, "%s", said);
	free(said);
	ck_assert(!fixture_is_mount(fx.mnt));
}
END_TEST

static void teardown(void)
{
	unseal_trail();
	if (small_disk[0])
		umount2(small_disk, MNT_DETACH);
	fixture_teardown();
}

int main(void)
{
	Suite *suite = suite_create("mount_audit");
	TCase *tc = tcase_create("trail");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_workload_recorded_in_order);
	tcase_add_test(tc, test_full_audit_disk_fails_closed);
	tcase_add_test(tc, test_trail_directory_link_refused);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
