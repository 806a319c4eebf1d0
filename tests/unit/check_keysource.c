/*
 * Unit tests of lib/keysource: key file create/open round trip and on-disk format, refusal
 * to overwrite, permission, owner, symlink and file-type checks, malformed files, missing
 * versions, cleanup after a failed write, and ephemeral keys.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/keysource.h"
#include "lib/secret.h"
#include "tests/harness.h"

static char dir[64];
static char path[256];

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
	snprintf(dir, sizeof(dir), "/tmp/check_keysource.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dev.key", dir);
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *entry;

	if (d == NULL)
		return;
	while ((entry = readdir(d)) != NULL) {
		char name[512];

		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		snprintf(name, sizeof(name), "%s/%s", dir, entry->d_name);
		if (unlink(name) != 0)
			rmdir(name);
	}
	closedir(d);
	rmdir(dir);
}

static void write_file(const char *file, const void *content, size_t len, mode_t mode)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static size_t read_file(const char *file, char *buf, size_t len)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, len);
	ck_assert_int_ge(n, 0);
	close(fd);
	return (size_t)n;
}

static const char valid_key_file[] =
	KEYFILE_MAGIC "\n"
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

static void expect_open(const char *file, int expected, const char *what)
{
	struct keysource *source = NULL;
	int ret = keysource_keyfile_open(&source, file);

	ck_assert_msg(ret == expected, "%s: got %d, expected %d", what, ret, expected);
	if (ret == 0)
		keysource_free(source);
	else
		ck_assert_ptr_null(source);
}

START_TEST(test_create_open_round_trip)
{
	struct keysource *created, *opened;
	uint8_t *k1 = secret_alloc(CRYPTO_KEY_LEN), *k2 = secret_alloc(CRYPTO_KEY_LEN);
	char content[256], expected[256], hex[2 * CRYPTO_KEY_LEN + 1];
	struct stat st;
	size_t len;

	ck_assert_int_eq(keysource_keyfile_create(&created, path), 0);
	ck_assert_uint_eq(keysource_newest_version(created), 1);
	ck_assert_int_eq(keysource_get(created, 1, k1), 0);

	ck_assert_int_eq(keysource_keyfile_open(&opened, path), 0);
	ck_assert_uint_eq(keysource_newest_version(opened), 1);
	ck_assert_int_eq(keysource_get(opened, 1, k2), 0);
	ck_assert_mem_eq(k1, k2, CRYPTO_KEY_LEN);

	/* On disk: a regular 0600 file holding magic line and the key's hex line. */
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(st.st_uid, geteuid());
	len = read_file(path, content, sizeof(content) - 1);
	content[len] = '\0';
	crypto_to_hex(hex, sizeof(hex), k1, CRYPTO_KEY_LEN);
	snprintf(expected, sizeof(expected), "%s\n%s\n", KEYFILE_MAGIC, hex);
	ck_assert_str_eq(content, expected);

	keysource_free(created);
	keysource_free(opened);
	keysource_free(NULL);
	secret_free(k1);
	secret_free(k2);
}
END_TEST

START_TEST(test_open_known_file)
{
	struct keysource *source;
	uint8_t *key = secret_alloc(CRYPTO_KEY_LEN);

	write_file(path, valid_key_file, strlen(valid_key_file), 0600);
	ck_assert_int_eq(keysource_keyfile_open(&source, path), 0);
	ck_assert_int_eq(keysource_get(source, 1, key), 0);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		ck_assert_uint_eq(key[i], i);
	keysource_free(source);

	/* Without the final newline, and read-only for the owner, still a key file. */
	write_file(path, valid_key_file, strlen(valid_key_file) - 1, 0400);
	expect_open(path, 0, "no final newline, mode 0400");
	secret_free(key);
}
END_TEST

START_TEST(test_create_never_overwrites)
{
	static const char precious[] = "someone else's file\n";
	struct keysource *source = NULL;
	char buf[64], target[300];
	struct stat st;

	write_file(path, precious, strlen(precious), 0600);
	ck_assert_int_eq(keysource_keyfile_create(&source, path), -EEXIST);
	ck_assert_ptr_null(source);
	ck_assert_uint_eq(read_file(path, buf, sizeof(buf)), strlen(precious));
	ck_assert_mem_eq(buf, precious, strlen(precious));

	/* A dangling symlink is not followed to create its target. */
	snprintf(target, sizeof(target), "%s/target", dir);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(keysource_keyfile_create(&source, path), -EEXIST);
	ck_assert_int_eq(lstat(target, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_loose_permissions)
{
	static const mode_t loose[] = { 0640, 0604, 0644, 0660, 0610, 0601, 0620, 0602 };

	for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "mode %04o", (unsigned)loose[i]);
		write_file(path, valid_key_file, strlen(valid_key_file), loose[i]);
		expect_open(path, -EPERM, what);
	}
	write_file(path, valid_key_file, strlen(valid_key_file), 0600);
	expect_open(path, 0, "mode 0600");
}
END_TEST

START_TEST(test_owner_and_access)
{
	write_file(path, valid_key_file, strlen(valid_key_file), 0600);
	if (geteuid() == 0) {
		/* Only root can give the file away: another owner is refused. */
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		expect_open(path, -EPERM, "owned by another uid");
	} else {
		/* Only a non-root user is stopped by a mode of 0000. */
		ck_assert_int_eq(chmod(path, 0000), 0);
		expect_open(path, -EACCES, "mode 0000");
	}
}
END_TEST

START_TEST(test_malformed)
{
	static const char *const garbage[] = {
		"",
		"garbage",
		KEYFILE_MAGIC,
		KEYFILE_MAGIC "\n",
		"vaultfs-dev-key-v2\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"VAULTFS-DEV-KEY-V1\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n",
		KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0\n",
		KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n",
		KEYFILE_MAGIC "\n"
		" 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \n",
		KEYFILE_MAGIC "\r\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\r\n",
		KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n",
		KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"\n" KEYFILE_MAGIC "\n"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	};
	char big[8192];

	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "garbage case %zu", i);
		write_file(path, garbage[i], strlen(garbage[i]), 0600);
		expect_open(path, -EBADMSG, what);
	}
	/* A valid key file followed by a lot more. */
	memset(big, 'a', sizeof(big));
	memcpy(big, valid_key_file, strlen(valid_key_file));
	write_file(path, big, sizeof(big), 0600);
	expect_open(path, -EBADMSG, "long file");
	/* An embedded NUL in the hex line. */
	memcpy(big, valid_key_file, sizeof(valid_key_file));
	big[30] = '\0';
	write_file(path, big, strlen(valid_key_file), 0600);
	expect_open(path, -EBADMSG, "embedded NUL");
}
END_TEST

START_TEST(test_missing_and_wrong_type)
{
	char link_path[300], sub[300];

	expect_open(path, -ENOENT, "missing file");
	snprintf(sub, sizeof(sub), "%s/nodir/dev.key", dir);
	expect_open(sub, -ENOENT, "missing directory");

	/* A symlink to a perfectly good key file is still refused. */
	write_file(path, valid_key_file, strlen(valid_key_file), 0600);
	snprintf(link_path, sizeof(link_path), "%s/link.key", dir);
	ck_assert_int_eq(symlink(path, link_path), 0);
	expect_open(link_path, -EPERM, "symlink");

	/* Not regular files: a directory, and a FIFO (which must not block the open). */
	snprintf(sub, sizeof(sub), "%s/subdir", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	expect_open(sub, -EPERM, "directory");
	snprintf(sub, sizeof(sub), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(sub, 0600), 0);
	expect_open(sub, -EPERM, "fifo");
}
END_TEST

START_TEST(test_versions)
{
	struct keysource *source;
	uint8_t *key = secret_alloc(CRYPTO_KEY_LEN);

	write_file(path, valid_key_file, strlen(valid_key_file), 0600);
	ck_assert_int_eq(keysource_keyfile_open(&source, path), 0);
	ck_assert_int_eq(keysource_get(source, 2, key), -ENOKEY);
	ck_assert_int_eq(keysource_get(source, 0, key), -ENOKEY);
	ck_assert_int_eq(keysource_get(source, UINT32_MAX, key), -ENOKEY);
	ck_assert_int_eq(keysource_get(source, 1, key), 0);
	keysource_free(source);
	secret_free(key);
}
END_TEST

/* Exit codes of the child that creates a key file under a tiny file size limit. */
enum { CHILD_OK, CHILD_CREATED, CHILD_WRONG_ERROR, CHILD_FILE_LEFT };

START_TEST(test_create_write_error_unlinks)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit limit = { .rlim_cur = 10, .rlim_max = 10 };
		struct keysource *source;
		struct stat st;
		int ret;

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
			_exit(CHILD_WRONG_ERROR);
		ret = keysource_keyfile_create(&source, path);
		if (ret == 0)
			_exit(CHILD_CREATED);
		if (ret != -EFBIG)
			_exit(CHILD_WRONG_ERROR);
		if (lstat(path, &st) == 0)
			_exit(CHILD_FILE_LEFT);
		_exit(CHILD_OK);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), CHILD_OK);
}
END_TEST

START_TEST(test_ephemeral)
{
	struct keysource *a, *b;
	uint8_t *ka = secret_alloc(CRYPTO_KEY_LEN), *kb = secret_alloc(CRYPTO_KEY_LEN);
	uint8_t *again = secret_alloc(CRYPTO_KEY_LEN);

	ck_assert_int_eq(keysource_ephemeral_new(&a), 0);
	ck_assert_int_eq(keysource_ephemeral_new(&b), 0);
	ck_assert_uint_eq(keysource_newest_version(a), 1);
	ck_assert_int_eq(keysource_get(a, 1, ka), 0);
	ck_assert_int_eq(keysource_get(b, 1, kb), 0);
	ck_assert_mem_ne(ka, kb, CRYPTO_KEY_LEN);
	/* Stable within one instance. */
	ck_assert_int_eq(keysource_get(a, 1, again), 0);
	ck_assert_mem_eq(ka, again, CRYPTO_KEY_LEN);
	ck_assert_int_eq(keysource_get(a, 2, again), -ENOKEY);
	keysource_free(a);
	keysource_free(b);
	secret_free(ka);
	secret_free(kb);
	secret_free(again);
}
END_TEST

/* The memory source holds what the agent leased: versions, the newest, replacement, and
 * revocation that wipes everything for good. */
START_TEST(test_memory_versions_and_revocation)
{
	struct keysource *source;
	uint8_t one[CRYPTO_KEY_LEN], two[CRYPTO_KEY_LEN], got[CRYPTO_KEY_LEN];

	memset(one, 0x11, sizeof(one));
	memset(two, 0x22, sizeof(two));
	ck_assert_int_eq(keysource_memory_new(&source), 0);
	ck_assert_uint_eq(keysource_newest_version(source), 0);
	ck_assert_int_eq(keysource_get(source, 1, got), -ENOKEY);
	ck_assert_int_eq(keysource_memory_add(source, 0, one), -EINVAL);
	ck_assert_int_eq(keysource_memory_add(source, 2, two), 0);
	ck_assert_int_eq(keysource_memory_add(source, 1, two), 0);
	ck_assert_int_eq(keysource_memory_add(source, 1, one), 0);   /* replaces */
	ck_assert_uint_eq(keysource_newest_version(source), 2);
	ck_assert_int_eq(keysource_get(source, 1, got), 0);
	ck_assert_mem_eq(got, one, sizeof(got));
	ck_assert_int_eq(keysource_get(source, 2, got), 0);
	ck_assert_mem_eq(got, two, sizeof(got));
	ck_assert_int_eq(keysource_get(source, 3, got), -ENOKEY);

	keysource_memory_revoke(source);
	ck_assert_int_eq(keysource_get(source, 1, got), -EKEYREVOKED);
	ck_assert_int_eq(keysource_get(source, 2, got), -EKEYREVOKED);
	ck_assert_int_eq(keysource_memory_add(source, 3, one), -EKEYREVOKED);
	ck_assert_uint_eq(keysource_newest_version(source), 0);
	keysource_free(source);
}
END_TEST

START_TEST(test_memory_add_only_to_memory_sources)
{
	struct keysource *source;
	uint8_t key[CRYPTO_KEY_LEN] = { 0 };

	ck_assert_int_eq(keysource_ephemeral_new(&source), 0);
	ck_assert_int_eq(keysource_memory_add(source, 2, key), -EINVAL);
	keysource_memory_revoke(source);   /* no effect on another kind */
	ck_assert_int_eq(keysource_get(source, 1, key), 0);
	keysource_free(source);
}
END_TEST

static Suite *keysource_suite(void)
{
	Suite *suite = suite_create("keysource");
	TCase *tc;

	tc = tcase_create("keyfile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_open_round_trip);
	tcase_add_test(tc, test_open_known_file);
	tcase_add_test(tc, test_create_never_overwrites);
	tcase_add_test(tc, test_loose_permissions);
	tcase_add_test(tc, test_owner_and_access);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_missing_and_wrong_type);
	tcase_add_test(tc, test_versions);
	tcase_add_test(tc, test_create_write_error_unlinks);
	suite_add_tcase(suite, tc);

	tc = tcase_create("ephemeral");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ephemeral);
	tcase_add_test(tc, test_memory_versions_and_revocation);
	tcase_add_test(tc, test_memory_add_only_to_memory_sources);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(keysource_suite());
}
