/*
 * The daemon's own defences, seen from outside: it runs with RLIMIT_CORE 0 (set by
 * secret_harden_process(), which makes it non-dumpable in the same step and is checked
 * there by check_secret), and no key material appears in its command line, environment
 * or log. (Non-dumpability itself is not observable from outside on this kernel: a
 * same-uid peer without CAP_SYS_PTRACE could still read a non-dumpable test process.)
 * The process that serves the mount, in the foreground or forked into the background,
 * holds its keys in locked memory: every secret region is locked, and the vault key
 * itself is found in the daemon's memory only inside locked pages.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define KEY_HEX_LEN 64

/* The 64 hex digits of the key in the key file. */
static void key_hex(const char *key_path, char hex[KEY_HEX_LEN + 1])
{
	char *text = fixture_read_text(key_path, NULL);
	ck_assert_ptr_nonnull(text);
	char *line = strchr(text, '\n');
	ck_assert_ptr_nonnull(line);
	ck_assert_int_ge(strlen(line + 1), KEY_HEX_LEN);
	memcpy(hex, line + 1, KEY_HEX_LEN);
	hex[KEY_HEX_LEN] = '\0';
	free(text);
}

/* Does the file (which may hold NULs) contain needle? */
static bool file_contains(const char *path, const char *needle)
{
	size_t len;
	char *text = fixture_read_text(path, &len);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	bool found = memmem(text, len, needle, strlen(needle)) != NULL;
	free(text);
	return found;
}

START_TEST(test_root_daemon_hardened)
{
	SKIP_IF_PLAIN();
	char proc[64], hex[KEY_HEX_LEN + 1];

	key_hex(fx.key, hex);
	snprintf(proc, sizeof(proc), "/proc/%d/limits", (int)fx.daemon);
	ck_assert(file_contains(proc, "Max core file size        0                    0"));
	snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)fx.daemon);
	ck_assert(!file_contains(proc, hex));
	snprintf(proc, sizeof(proc), "/proc/%d/environ", (int)fx.daemon);
	ck_assert(!file_contains(proc, hex));
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 70000, 9), 0);
	fixture_remount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 70000, 9), 0);
	ck_assert(!file_contains(fx.log, hex));
}
END_TEST

/* Bound on a mapping read whole when looking for key bytes: anything larger is not a
 * heap, a stack or a secret region (an ASan shadow, a reserved but unused range). */
#define SCAN_MAPPING_MAX (256UL << 20)
#define MAPPINGS_MAX 16384

struct mapping {
	uintptr_t low, high;
	char perms[5];
	unsigned long inode;
	bool locked;       /* VmFlags "lo" */
	bool dont_dump;    /* VmFlags "dd": MADV_DONTDUMP, as sodium_malloc() marks keys */
};

/* The mappings of pid from /proc/PID/smaps, in address order; returns the count. */
static size_t read_mappings(pid_t pid, struct mapping *maps, size_t max)
{
	char path[64], line[1024];
	size_t count = 0;
	FILE *smaps;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	smaps = fopen(path, "r");
	ck_assert_msg(smaps != NULL, "cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), smaps)) {
		struct mapping m = { 0 };
		char device[16];
		unsigned long long offset;

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %llx %15s %lu", &m.low, &m.high,
			   m.perms, &offset, device, &m.inode) == 6) {
			ck_assert_uint_lt(count, max);
			maps[count++] = m;
		} else if (count > 0 && strncmp(line, "VmFlags:", 8) == 0) {
			maps[count - 1].locked = strstr(line, " lo") != NULL;
			maps[count - 1].dont_dump = strstr(line, " dd") != NULL;
		}
	}
	fclose(smaps);
	return count;
}

/* A secret_alloc() region: read-write, kept out of core dumps, right after a one-page
 * guard that allows no access. */
static bool is_secret_region(const struct mapping *maps, size_t i)
{
	long page = sysconf(_SC_PAGESIZE);

	return i > 0 && strcmp(maps[i].perms, "rw-p") == 0 && maps[i].dont_dump &&
	       strcmp(maps[i - 1].perms, "---p") == 0 && maps[i - 1].high == maps[i].low &&
	       maps[i - 1].high - maps[i - 1].low == (uintptr_t)page;
}

static long locked_kb(pid_t pid)
{
	char path[64];
	long kb = -1;
	char *status, *field;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	status = fixture_read_text(path, NULL);
	ck_assert_msg(status != NULL, "cannot read %s", path);
	field = strstr(status, "\nVmLck:");
	if (field)
		kb = strtol(field + 7, NULL, 10);
	free(status);
	return kb;
}

static void key_bytes(const char *key_path, uint8_t key[KEY_HEX_LEN / 2])
{
	char hex[KEY_HEX_LEN + 1];

	key_hex(key_path, hex);
	for (int i = 0; i < KEY_HEX_LEN / 2; i++) {
		unsigned byte;
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
		key[i] = (uint8_t)byte;
	}
}

/* How many copies of key lie in the mapping, read through /proc/PID/mem (root may read
 * a non-dumpable process); 0 when it cannot be read. */
static int key_copies(int mem_fd, const struct mapping *m, const uint8_t *key, size_t key_len)
{
	size_t len = m->high - m->low;
	uint8_t *buf, *at;
	ssize_t got;
	int copies = 0;

	buf = malloc(len);
	ck_assert_ptr_nonnull(buf);
	got = pread(mem_fd, buf, len, (off_t)m->low);
	for (at = buf; got > 0 && (at = memmem(at, (size_t)got - (size_t)(at - buf), key,
					     key_len)) != NULL; at++)
		copies++;
	free(buf);
	return copies;
}

/*
 * The daemon pid holds its keys in locked memory: VmLck is not 0, every secret region
 * is locked, and the vault key from key_path (NULL: not checked) is in its memory, only
 * in locked pages (anonymous mappings are searched: keys never sit in a file's pages).
 */
static void expect_keys_locked(pid_t pid, const char *key_path)
{
	struct mapping *maps = calloc(MAPPINGS_MAX, sizeof(*maps));
	uint8_t key[KEY_HEX_LEN / 2];
	size_t count, regions = 0;
	int mem_fd, locked_copies = 0;
	char path[64];

	ck_assert_ptr_nonnull(maps);
	ck_assert_msg(locked_kb(pid) > 0, "daemon %d locks no memory (VmLck 0 kB)", (int)pid);
	count = read_mappings(pid, maps, MAPPINGS_MAX);
	for (size_t i = 0; i < count; i++) {
		if (!is_secret_region(maps, i))
			continue;
		regions++;
		ck_assert_msg(maps[i].locked, "daemon %d: secret region %" PRIxPTR "-%" PRIxPTR
			      " is not locked", (int)pid, maps[i].low, maps[i].high);
	}
	ck_assert_msg(regions > 0, "daemon %d has no secret region", (int)pid);
	if (!key_path) {
		free(maps);
		return;
	}

	key_bytes(key_path, key);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(mem_fd >= 0, "cannot open %s: %s", path, strerror(errno));
	for (size_t i = 0; i < count; i++) {
		int copies;

		if (maps[i].perms[0] != 'r' || maps[i].inode != 0 ||
		    maps[i].high - maps[i].low > SCAN_MAPPING_MAX)
			continue;
		copies = key_copies(mem_fd, &maps[i], key, sizeof(key));
		ck_assert_msg(copies == 0 || maps[i].locked,
			      "daemon %d: the vault key lies in unlocked memory at %" PRIxPTR
			      "-%" PRIxPTR " (%s)", (int)pid, maps[i].low, maps[i].high,
			      maps[i].perms);
		locked_copies += copies;
	}
	close(mem_fd);
	ck_assert_msg(locked_copies > 0, "the vault key is nowhere in daemon %d's memory",
		      (int)pid);
	explicit_bzero(key, sizeof(key));
	free(maps);
}

/* The one vaultfs process ($VAULTFS) whose arguments name mountpoint, or 0. */
static pid_t daemon_serving(const char *mountpoint)
{
	const char *binary = getenv("VAULTFS");
	struct dirent *entry;
	pid_t found = 0;
	DIR *proc = opendir("/proc");

	ck_assert_ptr_nonnull(proc);
	ck_assert_ptr_nonnull(binary);
	while ((entry = readdir(proc)) != NULL) {
		char path[300];
		size_t len;
		char *cmdline;
		bool names_mountpoint = false;

		if (!isdigit((unsigned char)entry->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", entry->d_name);
		cmdline = fixture_read_text(path, &len);
		if (!cmdline)
			continue;
		if (strcmp(cmdline, binary) == 0)
			for (size_t at = 0; at < len; at += strlen(cmdline + at) + 1)
				if (strcmp(cmdline + at, mountpoint) == 0)
					names_mountpoint = true;
		free(cmdline);
		if (names_mountpoint) {
			ck_assert_msg(found == 0, "two vaultfs processes serve %s", mountpoint);
			found = (pid_t)atoi(entry->d_name);
		}
	}
	closedir(proc);
	return found;
}

/* vaultfs -f: the process that serves is the one started. */
START_TEST(test_foreground_keys_locked)
{
	SKIP_IF_PLAIN();
	SKIP_UNLESS_MLOCK_OBSERVABLE();
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 70000, 4), 0);
	ck_assert_int_eq(daemon_serving(fx.mnt), fx.daemon);
	expect_keys_locked(fx.daemon, fx.key);
}
END_TEST

/* Run vaultfs without -f (it forks into the background) with option on vault; returns
 * the pid of the process that serves the mount. */
static pid_t mount_daemonized(const char *option, const char *vault)
{
	const char *argv[] = { getenv("VAULTFS"), "-o", option, vault, fx.mnt, NULL };
	pid_t pid;

	ck_assert_int_eq(fixture_spawn(argv, fx.log, 15000), 0);
	ck_assert_msg(fixture_is_mount(fx.mnt), "vaultfs exited 0 before the mount was up");
	fx.mounted = true;   /* no child of ours: the teardown unmounts it */
	pid = daemon_serving(fx.mnt);
	ck_assert_msg(pid > 0, "no vaultfs process serves %s", fx.mnt);
	return pid;
}

/* vaultfs without -f: fuse_daemonize() forks, and the child that serves must hold its
 * keys locked too (a fork does not inherit mlock). Checked first before any file request,
 * whose keys are made after the fork. */
START_TEST(test_daemonized_keys_locked)
{
	SKIP_IF_PLAIN();
	SKIP_UNLESS_MLOCK_OBSERVABLE();
	char option[PATH_MAX + 16];
	pid_t pid;

	snprintf(option, sizeof(option), "keyfile=%s", fx.key);
	pid = mount_daemonized(option, fx.vault);
	expect_keys_locked(pid, fx.key);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 70000, 5), 0);
	ck_assert_int_eq(pattern_verify_file(mnt_path("f"), 70000, 5), 0);
	expect_keys_locked(pid, fx.key);
}
END_TEST

/* An ephemeral vault is made before the fork: its key, its first records' keys and the
 * random bytes they took all live in secret memory that must stay locked. */
START_TEST(test_daemonized_ephemeral_keys_locked)
{
	SKIP_IF_PLAIN();
	SKIP_UNLESS_MLOCK_OBSERVABLE();
	char vault[PATH_MAX];
	pid_t pid;

	snprintf(vault, sizeof(vault), "%s/ephemeral", fx.root);
	pid = mount_daemonized("ephemeral", vault);
	expect_keys_locked(pid, NULL);
	ck_assert_int_eq(pattern_write_file(mnt_path("f"), 70000, 6), 0);
	expect_keys_locked(pid, NULL);
}
END_TEST

static Suite *security_suite(void)
{
	Suite *suite = suite_create("mount_security");
	TCase *root = tcase_create("root daemon");
	tcase_add_checked_fixture(root, fixture_setup, fixture_teardown);
	tcase_set_timeout(root, 60);
	tcase_add_test(root, test_root_daemon_hardened);
	tcase_add_test(root, test_foreground_keys_locked);
	suite_add_tcase(suite, root);

	TCase *background = tcase_create("daemonized");
	tcase_add_checked_fixture(background, fixture_setup_unmounted, fixture_teardown);
	tcase_set_timeout(background, 60);
	tcase_add_test(background, test_daemonized_keys_locked);
	tcase_add_test(background, test_daemonized_ephemeral_keys_locked);
	suite_add_tcase(suite, background);
	return suite;
}

int main(void)
{
	return harness_run(security_suite());
}
