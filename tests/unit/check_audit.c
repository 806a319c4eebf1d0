/*
 * Unit tests of the audit trail: the exact line a record makes (checked against values
 * computed independently with Python's json and hashlib), safe encoding of any bytes, the
 * chain across close, reopen and rotation, a torn tail cut off at open, every kind of
 * tampering that audit_verify must name, fail-closed writing on a full disk (nothing
 * lost, nothing torn), and many threads appending at once.
 */
#include "lib/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "tests/harness.h"

/* Made in the parent once per run and removed there, whatever a test did; each test
 * works in its own directory below it, removed by the test's own teardown. */
static char top_dir[64];
static char test_dir[128];
static char trail_dir[160];

/* Clear the append-only and immutable flags the trail sets, so the file can be changed
 * or removed. */
static void unseal(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), flags;

	if (fd < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
	    (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
		flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
		(void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		unseal(path);
	return remove(path);
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void top_setup(void)
{
	strcpy(top_dir, "/tmp/check_audit.XXXXXX");
	if (!mkdtemp(top_dir))
		abort();
}

static void top_teardown(void)
{
	remove_tree(top_dir);
}

static void setup(void)
{
	snprintf(test_dir, sizeof(test_dir), "%s/t.XXXXXX", top_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(trail_dir, sizeof(trail_dir), "%s/trail", test_dir);
}

static void teardown(void)
{
	remove_tree(test_dir);
}

/* Whether this process may set inode flags on files here (root with
 * CAP_LINUX_IMMUTABLE, on a file system that has them): the trail's seals are then
 * expected, else silently skipped. */
static bool flags_work(const char *dir)
{
	char path[256];
	int fd, flags;
	bool works = false;

	snprintf(path, sizeof(path), "%s/flags-probe", dir);
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags |= FS_APPEND_FL;
		works = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
		flags &= ~FS_APPEND_FL;
		(void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
	ck_assert_int_eq(unlink(path), 0);
	return works;
}

static int inode_flags(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), flags = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
	close(fd);
	return flags;
}

/* A file's bytes (malloc'd, NUL-terminated), length in *len. */
static char *file_load(const char *path, size_t *len)
{
	struct stat st;
	char *bytes;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	bytes = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(bytes);
	ck_assert_int_eq(read(fd, bytes, (size_t)st.st_size), st.st_size);
	bytes[st.st_size] = '\0';
	close(fd);
	if (len)
		*len = (size_t)st.st_size;
	return bytes;
}

static void file_store(const char *path, const char *bytes, size_t len)
{
	int fd;

	unseal(path);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

static void segment_path(char *path, size_t size, const char *dir, uint64_t first_seq)
{
	snprintf(path, size, "%s/seg-%016llu.jsonl", dir, (unsigned long long)first_seq);
}

/* The first seqs of the segments in dir, in order, from their names. */
static size_t segments(const char *dir, uint64_t *first, size_t max)
{
	struct dirent *entry;
	size_t count = 0;
	DIR *d = opendir(dir);

	ck_assert_ptr_nonnull(d);
	while ((entry = readdir(d)) != NULL) {
		unsigned long long seq;
		char tail[8];
		if (sscanf(entry->d_name, "seg-%16llu.%7s", &seq, tail) == 2 &&
		    strcmp(tail, "jsonl") == 0) {
			ck_assert_uint_lt(count, max);
			first[count++] = seq;
		}
	}
	closedir(d);
	for (size_t i = 1; i < count; i++)         /* insertion sort: a few dozen */
		for (size_t j = i; j > 0 && first[j - 1] > first[j]; j--) {
			uint64_t swap = first[j];
			first[j] = first[j - 1];
			first[j - 1] = swap;
		}
	return count;
}

/* A record for tests: record n of a run. */
static void record_make(struct audit_record *record, uint64_t n)
{
	audit_record_init(record, "read");
	audit_add_text(record, "dataset", "cardio");
	audit_add_u64(record, "uid", 1000);
	audit_add_u64(record, "n", n);
	audit_add_result(record, 0);
}

/* A trail of count records in dir, with segments of about segment_bytes. */
static void trail_make(const char *dir, uint64_t count, uint64_t segment_bytes)
{
	struct audit_options options = { .segment_max_bytes = segment_bytes, .batch_ms = 1 };
	struct audit_record record;
	struct audit_trail *trail;

	ck_assert_int_eq(audit_open(&trail, dir, &options), 0);
	for (uint64_t n = 1; n <= count; n++) {
		record_make(&record, n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
	}
	ck_assert_int_eq(audit_close(trail), 0);
}

static void verify_ok(const char *dir, uint64_t records)
{
	struct audit_verdict verdict;
	int err = audit_verify(dir, &verdict);

	ck_assert_msg(err == 0, "verify: %d: seq %llu in %s: %s", err,
		      (unsigned long long)verdict.bad_seq, verdict.bad_segment, verdict.why);
	ck_assert_uint_eq(verdict.records, records);
}

/* Known answers ------------------------------------------------------------------- */

static void fixed_clock(struct timespec *now)
{
	now->tv_sec = 1796290200;       /* 2026-12-03T09:30:00Z */
	now->tv_nsec = 123456789;
}

/*
 * Computed with Python 3 (json.dumps(obj, sort_keys=True, separators=(',', ':'),
 * ensure_ascii=True), \u escapes then upper-cased as jansson writes them, and
 * hashlib.sha256(line).hexdigest()), as vaultfs-audit(5) tells auditors to.
 */
static const char kat_line1[] =
	"{\"action\":\"open\",\"bytes_read\":\"18446744073709551615\",\"comm\":\"python3\","
	"\"dataset\":\"cardio\",\"delta\":-7,\"flags\":32768,\"gid\":1000,\"ino\":42,\"pid\":4242,"
	"\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\","
	"\"result\":\"EACCES\",\"seq\":1,\"time\":\"2026-12-03T09:30:00.123456789Z\","
	"\"uid\":1000,\"user\":\"Jos\\u00E9\"}";
static const char kat_hash1[] = "50258b8728705e5c97efe005e675365e6ae8e51c4ca0b9f4c4344dfffb9b6cc8";
static const char kat_line2[] =
	"{\"action\":\"close\",\"prev\":\"50258b8728705e5c97efe005e675365e6ae8e51c4ca0b9f4c4344dfffb"
	"9b6cc8\",\"result\":\"ok\",\"seq\":2,\"time\":\"2026-12-03T09:30:00.123456789Z\"}";
static const char kat_hash2[] = "5f6fc6953f1bb930851b82d6f78889cf858cc06cedb2625a781bcd01c571aaeb";

START_TEST(test_sha256_known_answer)
{
	/* FIPS 180-2, appendix B.1. */
	static const char expected[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint8_t hash[CRYPTO_SHA256_LEN];
	char hex[2 * CRYPTO_SHA256_LEN + 1];

	crypto_sha256(hash, "abc", 3);
	crypto_to_hex(hex, sizeof(hex), hash, sizeof(hash));
	ck_assert_str_eq(hex, expected);
}
END_TEST

START_TEST(test_known_answer)
{
	char path[256], head[AUDIT_HASH_HEX_LEN + 1], expected[1024];
	struct audit_record record;
	struct audit_trail *trail;
	uint8_t hash[CRYPTO_SHA256_LEN];
	char *bytes;

	audit_set_clock_for_tests(fixed_clock);
	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), 0);
	ck_assert_uint_eq(audit_head(trail, head), 0);
	ck_assert_str_eq(head, "0000000000000000000000000000000000000000000000000000000000000000");

	audit_record_init(&record, "open");
	audit_add_text(&record, "dataset", "cardio");
	audit_add_u64(&record, "uid", 1000);
	audit_add_u64(&record, "gid", 1000);
	audit_add_text(&record, "user", "Jos\xc3\xa9");
	audit_add_i64(&record, "pid", 4242);
	audit_add_text(&record, "comm", "python3");
	audit_add_u64(&record, "ino", 42);
	audit_add_u64(&record, "flags", 32768);
	audit_add_u64(&record, "bytes_read", UINT64_MAX);
	audit_add_i64(&record, "delta", -7);
	audit_add_result(&record, -EACCES);
	ck_assert_uint_eq(audit_append(trail, &record), 1);
	ck_assert_uint_eq(audit_head(trail, head), 1);
	ck_assert_str_eq(head, kat_hash1);

	audit_record_init(&record, "close");
	audit_add_result(&record, 0);
	ck_assert_uint_eq(audit_append(trail, &record), 2);
	ck_assert_uint_eq(audit_head(trail, head), 2);
	ck_assert_str_eq(head, kat_hash2);
	ck_assert_int_eq(audit_sync(trail), 0);
	ck_assert_int_eq(audit_close(trail), 0);

	segment_path(path, sizeof(path), trail_dir, 1);
	bytes = file_load(path, NULL);
	snprintf(expected, sizeof(expected), "%s\n%s\n", kat_line1, kat_line2);
	ck_assert_str_eq(bytes, expected);
	crypto_sha256(hash, kat_line1, strlen(kat_line1));
	crypto_to_hex(head, sizeof(head), hash, sizeof(hash));
	ck_assert_str_eq(head, kat_hash1);
	free(bytes);
	verify_ok(trail_dir, 2);
}
END_TEST

/* The one line of a trail with one record (malloc'd, without its newline). */
static char *single_line(const struct audit_record *record)
{
	struct audit_trail *trail;
	char path[256], *bytes;
	size_t len;

	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), 0);
	ck_assert_uint_eq(audit_append(trail, record), 1);
	ck_assert_int_eq(audit_close(trail), 0);
	verify_ok(trail_dir, 1);
	segment_path(path, sizeof(path), trail_dir, 1);
	bytes = file_load(path, &len);
	/* One line: a single newline, at the end, and nothing but printable ASCII before. */
	ck_assert_uint_gt(len, 1);
	ck_assert_ptr_eq(memchr(bytes, '\n', len), bytes + len - 1);
	for (size_t i = 0; i + 1 < len; i++)
		ck_assert_msg(bytes[i] >= 0x20 && bytes[i] < 0x7f, "byte %zu is 0x%02x", i,
			      (unsigned char)bytes[i]);
	bytes[len - 1] = '\0';
	return bytes;
}

START_TEST(test_text_any_bytes)
{
	struct audit_record record;
	char *line;

	audit_record_init(&record, "open");
	/* Invalid UTF-8 (a stray byte, an overlong NUL, a surrogate, a sequence cut short,
	 * past U+10FFFF), control characters and JSON's own specials. */
	audit_add_text(&record, "comm", "a\xff" "b\xc0\x80" "c\xed\xa0\x80" "d\xe2\x82" "e"
			"\xf4\x90\x80\x80");
	audit_add_text(&record, "exe", "l1\nl2\r\x01\x1b\t\"q\"\\/");
	audit_add_text(&record, "user", "\xf0\x9f\x98\x80");
	audit_add_text(&record, "object", NULL);
	line = single_line(&record);
	ck_assert_msg(strstr(line, "\"comm\":\"a\\uFFFDb\\uFFFD\\uFFFDc\\uFFFD\\uFFFD\\uFFFDd"
				   "\\uFFFD\\uFFFDe\\uFFFD\\uFFFD\\uFFFD\\uFFFD\""), "%s", line);
	ck_assert_msg(strstr(line, "\"exe\":\"l1\\nl2\\r\\u0001\\u001B\\t\\\"q\\\"\\\\/\""),
		      "%s", line);
	ck_assert_msg(strstr(line, "\"user\":\"\\uD83D\\uDE00\""), "%s", line);
	ck_assert_msg(strstr(line, "\"object\":\"\""), "%s", line);
	ck_assert_ptr_null(strstr(line, "truncated"));
	free(line);
}
END_TEST

START_TEST(test_text_cut_at_character)
{
	static char longest[AUDIT_TEXT_MAX + 1], over[AUDIT_TEXT_MAX + 2], split[AUDIT_TEXT_MAX + 2];
	struct audit_record record;
	char *line, *value;

	memset(longest, 'x', AUDIT_TEXT_MAX);
	memset(over, 'y', AUDIT_TEXT_MAX + 1);
	/* A two-byte character that would end one byte past the limit. */
	memset(split, 'z', AUDIT_TEXT_MAX - 1);
	memcpy(split + AUDIT_TEXT_MAX - 1, "\xc3\xa9", 2);
	audit_record_init(&record, "open");
	audit_add_text(&record, "exact", longest);
	audit_add_text(&record, "over", over);
	audit_add_text(&record, "split", split);
	line = single_line(&record);
	value = strstr(line, "\"exact\":\"");
	ck_assert_ptr_nonnull(value);
	ck_assert_int_eq(strspn(value + 9, "x"), AUDIT_TEXT_MAX);
	ck_assert_int_eq(value[9 + AUDIT_TEXT_MAX], '"');
	value = strstr(line, "\"over\":\"");
	ck_assert_ptr_nonnull(value);
	ck_assert_int_eq(strspn(value + 8, "y"), AUDIT_TEXT_MAX);
	ck_assert_int_eq(value[8 + AUDIT_TEXT_MAX], '"');
	value = strstr(line, "\"split\":\"");
	ck_assert_ptr_nonnull(value);
	ck_assert_int_eq(strspn(value + 9, "z"), AUDIT_TEXT_MAX - 1);
	ck_assert_int_eq(value[9 + AUDIT_TEXT_MAX - 1], '"');
	ck_assert_msg(strstr(line, "\"truncated\":[\"over\",\"split\"]"), "%s", line);
	free(line);
}
END_TEST

START_TEST(test_numbers_results_full_record)
{
	static const struct {
		int result;
		const char *name;
	} results[] = {
		{ 0, "ok" }, { -EACCES, "EACCES" }, { EIO, "EIO" }, { -ENOENT, "ENOENT" },
		{ -EPERM, "EPERM" }, { -EROFS, "EROFS" }, { -EXDEV, "EXDEV" },
		{ -ENOTEMPTY, "ENOTEMPTY" }, { -ENOSPC, "ENOSPC" }, { -EDQUOT, "EDQUOT" },
		{ -ENAMETOOLONG, "ENAMETOOLONG" }, { -EBADMSG, "EBADMSG" }, { -ENOKEY, "ENOKEY" },
		{ -ELOOP, "ELOOP" }, { -EAGAIN, "EAGAIN" }, { -4095, "E4095" },
	};
	struct audit_record record;
	char *line, key[16], expected[64];

	audit_record_init(&record, "open");
	audit_add_i64(&record, "lowest", INT64_MIN);
	audit_add_i64(&record, "highest", INT64_MAX);
	audit_add_u64(&record, "big", (uint64_t)INT64_MAX + 1);
	line = single_line(&record);
	ck_assert_msg(strstr(line, "\"lowest\":-9223372036854775808,"), "%s", line);
	ck_assert_msg(strstr(line, "\"highest\":9223372036854775807,"), "%s", line);
	ck_assert_msg(strstr(line, "\"big\":\"9223372036854775808\","), "%s", line);
	free(line);
	remove_tree(trail_dir);

	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		audit_record_init(&record, "open");
		audit_add_result(&record, results[i].result);
		line = single_line(&record);
		snprintf(expected, sizeof(expected), "\"result\":\"%s\"", results[i].name);
		ck_assert_msg(strstr(line, expected), "%s", line);
		free(line);
		remove_tree(trail_dir);
	}

	/* A full record keeps what fit and says how many fields it lost. */
	audit_record_init(&record, "open");
	for (int i = 1; i < AUDIT_FIELDS_MAX + 3; i++) {
		static char keys[AUDIT_FIELDS_MAX + 3][16];
		snprintf(keys[i], sizeof(keys[i]), "f%d", i);
		audit_add_u64(&record, keys[i], (uint64_t)i);
	}
	line = single_line(&record);
	snprintf(key, sizeof(key), "\"f%d\":", AUDIT_FIELDS_MAX - 1);
	ck_assert_msg(strstr(line, key), "%s", line);
	snprintf(key, sizeof(key), "\"f%d\":", AUDIT_FIELDS_MAX);
	ck_assert_msg(!strstr(line, key), "%s", line);
	ck_assert_msg(strstr(line, "\"dropped\":3,"), "%s", line);
	free(line);
}
END_TEST

/* A field name the module writes itself is a bug in the caller: it aborts. */
START_TEST(test_reserved_key_aborts)
{
	struct audit_record record;

	audit_record_init(&record, "open");
	audit_add_u64(&record, "seq", 1);
}
END_TEST

START_TEST(test_repeated_key_aborts)
{
	struct audit_record record;

	audit_record_init(&record, "open");
	audit_add_u64(&record, "uid", 1);
	audit_add_u64(&record, "uid", 2);
}
END_TEST

/* Chain, segments, reopening ------------------------------------------------------ */

START_TEST(test_chain_reopen_rotate)
{
	struct audit_options options = { .segment_max_bytes = 2048, .batch_ms = 1 };
	char path[256], head[AUDIT_HASH_HEX_LEN + 1], before[AUDIT_HASH_HEX_LEN + 1];
	bool seals = flags_work(test_dir);
	struct audit_record record;
	struct audit_trail *trail;
	uint64_t first[64];
	struct stat st;
	size_t count;

	trail_make(trail_dir, 100, 2048);
	ck_assert_int_eq(stat(trail_dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	verify_ok(trail_dir, 100);

	ck_assert_int_eq(audit_open(&trail, trail_dir, &options), 0);
	ck_assert_uint_eq(audit_head(trail, before), 100);
	record_make(&record, 101);
	ck_assert_uint_eq(audit_append(trail, &record), 101);
	ck_assert_int_eq(audit_sync(trail), 0);
	/* Reopening began a segment for seq 101, append-only while it is written. */
	segment_path(path, sizeof(path), trail_dir, 101);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	if (seals)
		ck_assert_int_eq(inode_flags(path) & (FS_APPEND_FL | FS_IMMUTABLE_FL),
				 FS_APPEND_FL);
	for (uint64_t n = 102; n <= 200; n++) {
		record_make(&record, n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
	}
	ck_assert_uint_eq(audit_head(trail, head), 200);
	ck_assert_int_eq(audit_close(trail), 0);
	verify_ok(trail_dir, 200);

	count = segments(trail_dir, first, 64);
	ck_assert_uint_ge(count, 10);
	ck_assert_uint_eq(first[0], 1);
	for (size_t i = 0; i < count; i++) {
		segment_path(path, sizeof(path), trail_dir, first[i]);
		ck_assert_int_eq(stat(path, &st), 0);
		/* Whole lines up to the limit, but always one line. */
		ck_assert_uint_le(st.st_size, 2048);
		ck_assert_uint_gt(st.st_size, 0);
		if (seals)
			ck_assert_int_eq(inode_flags(path) & (FS_APPEND_FL | FS_IMMUTABLE_FL),
					 FS_IMMUTABLE_FL);
	}

	/* The chain continued through the reopen: seq 101's prev is seq 100's hash. */
	segment_path(path, sizeof(path), trail_dir, 101);
	char *bytes = file_load(path, NULL), expected[100];
	snprintf(expected, sizeof(expected), "\"prev\":\"%s\"", before);
	ck_assert_ptr_nonnull(strstr(bytes, expected));
	ck_assert(strstr(bytes, expected) < strchr(bytes, '\n'));
	free(bytes);
}
END_TEST

/* A segment whose age is over the limit is sealed at the next write. */
START_TEST(test_rotate_by_age)
{
	struct audit_options options = { .segment_max_seconds = 1, .batch_ms = 1 };
	struct audit_record record;
	struct audit_trail *trail;
	uint64_t first[8];
	struct timespec start;

	ck_assert_int_eq(audit_open(&trail, trail_dir, &options), 0);
	record_make(&record, 1);
	ck_assert_uint_eq(audit_append(trail, &record), 1);
	ck_assert_int_eq(audit_sync(trail), 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* Poll until a record written after the second has passed lands in a new segment. */
	for (uint64_t n = 2; segments(trail_dir, first, 8) < 2; n++) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ck_assert_int_lt(now.tv_sec - start.tv_sec, 10);
		record_make(&record, n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
		ck_assert_int_eq(audit_sync(trail), 0);
		usleep(50 * 1000);
	}
	ck_assert_int_eq(audit_close(trail), 0);
	ck_assert_uint_eq(first[0], 1);
	ck_assert_uint_gt(first[1], 1);
}
END_TEST

/* The writer writes on its own, without audit_sync, within the batch window. */
START_TEST(test_written_without_sync)
{
	struct audit_options options = { .batch_ms = 20 };
	struct audit_record record;
	struct audit_trail *trail;
	char path[256];
	struct stat st;
	int polls = 0;

	ck_assert_int_eq(audit_open(&trail, trail_dir, &options), 0);
	record_make(&record, 1);
	ck_assert_uint_eq(audit_append(trail, &record), 1);
	segment_path(path, sizeof(path), trail_dir, 1);
	while (stat(path, &st) == 0 && st.st_size == 0 && polls++ < 1000)
		usleep(5000);
	ck_assert_int_gt(st.st_size, 0);
	ck_assert_int_eq(audit_ok(trail), 0);
	ck_assert_int_eq(audit_close(trail), 0);
}
END_TEST

START_TEST(test_empty_trail)
{
	struct audit_verdict verdict;
	struct audit_trail *trail;
	uint64_t first[4];

	ck_assert_int_eq(audit_verify(trail_dir, &verdict), -ENOENT);
	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), 0);
	ck_assert_int_eq(audit_sync(trail), 0);
	ck_assert_int_eq(audit_close(trail), 0);
	/* Nothing written, nothing left: no empty segment that could not be reused. */
	ck_assert_uint_eq(segments(trail_dir, first, 4), 0);
	verify_ok(trail_dir, 0);
	ck_assert_int_eq(audit_close(NULL), 0);
}
END_TEST

/* A crash right after a segment was made leaves it empty: the next open goes on in it. */
START_TEST(test_reopen_empty_segment)
{
	char path[256];
	uint64_t first[8];
	int fd;

	trail_make(trail_dir, 5, 0);
	segment_path(path, sizeof(path), trail_dir, 6);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	verify_ok(trail_dir, 5);
	trail_make(trail_dir, 0, 0);       /* open and close: reuse, then remove it */
	ck_assert_uint_eq(segments(trail_dir, first, 8), 1);

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	struct audit_trail *trail;
	struct audit_record record;
	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), 0);
	record_make(&record, 6);
	ck_assert_uint_eq(audit_append(trail, &record), 6);
	ck_assert_int_eq(audit_close(trail), 0);
	ck_assert_uint_eq(segments(trail_dir, first, 8), 2);
	ck_assert_uint_eq(first[1], 6);
	verify_ok(trail_dir, 6);
}
END_TEST

/* A torn last line (a crash in the middle of a write) is cut off by the next open, and
 * the chain goes on from the last whole record. */
START_TEST(test_reopen_torn_tail)
{
	static const char torn[] = "{\"action\":\"read\",\"dataset\":\"car";
	struct audit_verdict verdict;
	struct audit_record record;
	struct audit_trail *trail;
	char path[256], *bytes;
	size_t len, whole;

	trail_make(trail_dir, 10, 0);
	segment_path(path, sizeof(path), trail_dir, 1);
	bytes = file_load(path, &len);
	whole = len;
	bytes = realloc(bytes, len + sizeof(torn));
	ck_assert_ptr_nonnull(bytes);
	memcpy(bytes + len, torn, sizeof(torn) - 1);
	file_store(path, bytes, len + sizeof(torn) - 1);
	ck_assert_int_eq(audit_verify(trail_dir, &verdict), -EBADMSG);
	ck_assert_uint_eq(verdict.bad_seq, 11);

	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), 0);
	record_make(&record, 11);
	ck_assert_uint_eq(audit_append(trail, &record), 11);
	ck_assert_int_eq(audit_close(trail), 0);
	free(bytes);
	bytes = file_load(path, &len);
	ck_assert_uint_eq(len, whole);
	ck_assert_int_eq(bytes[len - 1], '\n');
	free(bytes);
	verify_ok(trail_dir, 11);

	/* A last line that is whole but no record is not guessed at. */
	segment_path(path, sizeof(path), trail_dir, 11);
	file_store(path, "not a record\n", 13);
	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_links_refused)
{
	char link_path[256], target[256], path[256];
	struct audit_verdict verdict;
	struct audit_trail *trail;

	trail_make(trail_dir, 3, 0);
	snprintf(link_path, sizeof(link_path), "%s/link", test_dir);
	ck_assert_int_eq(symlink(trail_dir, link_path), 0);
	ck_assert_int_eq(audit_open(&trail, link_path, NULL), -ELOOP);
	ck_assert_int_eq(audit_verify(link_path, &verdict), -ELOOP);
	/* Also with a trailing slash, which would make open(2) follow it. */
	strcat(link_path, "/");
	ck_assert_int_eq(audit_open(&trail, link_path, NULL), -ELOOP);

	/* A segment that is a link is never followed. */
	snprintf(target, sizeof(target), "%s/elsewhere", test_dir);
	ck_assert_int_eq(close(open(target, O_WRONLY | O_CREAT, 0600)), 0);
	segment_path(path, sizeof(path), trail_dir, 4);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(audit_open(&trail, trail_dir, NULL), -ELOOP);
	ck_assert_int_eq(audit_verify(trail_dir, &verdict), -EBADMSG);
	ck_assert_uint_eq(verdict.bad_seq, 4);
	ck_assert_str_eq(verdict.bad_segment, "seg-0000000000000004.jsonl");
}
END_TEST

/* Tampering -------------------------------------------------------------------------- */

/* The trail each tamper case starts from: 60 records, segments of about 6 lines. */
#define TAMPER_RECORDS 60
#define TAMPER_SEGMENT_BYTES 1024

struct tamper_trail {
	uint64_t first[32];     /* first seq of each segment */
	size_t count;
};

/* The index of the segment holding seq. */
static size_t segment_of(const struct tamper_trail *t, uint64_t seq)
{
	size_t i = t->count;

	while (i > 0 && t->first[i - 1] > seq)
		i--;
	ck_assert_uint_gt(i, 0);
	return i - 1;
}

static uint64_t segment_last(const struct tamper_trail *t, size_t i)
{
	return i + 1 < t->count ? t->first[i + 1] - 1 : TAMPER_RECORDS;
}

static void segment_file(const struct tamper_trail *t, size_t i, char *path, size_t size)
{
	segment_path(path, size, trail_dir, t->first[i]);
}

static const char *segment_base(uint64_t first_seq)
{
	static char name[64];
	snprintf(name, sizeof(name), "seg-%016llu.jsonl", (unsigned long long)first_seq);
	return name;
}

/* Byte offsets of line n (1-based) of buffer bytes: [*start, *end), end past '\n'. */
static void line_span(const char *bytes, size_t len, size_t n, size_t *start, size_t *end)
{
	size_t at = 0;

	for (size_t line = 1; line < n; line++) {
		const char *nl = memchr(bytes + at, '\n', len - at);
		ck_assert_ptr_nonnull(nl);
		at = (size_t)(nl - bytes) + 1;
	}
	*start = at;
	const char *nl = memchr(bytes + at, '\n', len - at);
	ck_assert_ptr_nonnull(nl);
	*end = (size_t)(nl - bytes) + 1;
}

/* The segment holding seq, loaded: its path, bytes, length, and the line of seq. */
struct loaded {
	char path[256];
	char *bytes;
	size_t len;
	size_t start, end;      /* the line of seq */
};

static void load_seq(const struct tamper_trail *t, uint64_t seq, struct loaded *l)
{
	size_t i = segment_of(t, seq);

	segment_file(t, i, l->path, sizeof(l->path));
	l->bytes = file_load(l->path, &l->len);
	line_span(l->bytes, l->len, (size_t)(seq - t->first[i] + 1), &l->start, &l->end);
}

/* A seq in the middle of the second segment, with lines on both sides in it. */
static uint64_t middle_seq(const struct tamper_trail *t)
{
	ck_assert_uint_ge(segment_last(t, 1) - t->first[1], 3);
	return t->first[1] + 1;
}

struct expect {
	bool passes;            /* undetectable without checkpoints */
	uint64_t bad_seq;
	char bad_segment[64];
	uint64_t records;       /* when it passes */
};

static void expect_bad(struct expect *e, uint64_t seq, const char *segment)
{
	e->passes = false;
	e->bad_seq = seq;
	snprintf(e->bad_segment, sizeof(e->bad_segment), "%s", segment);
}

/* A value changed inside a line: the next line's prev no longer matches. */
static void tamper_edit_value(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = middle_seq(t);
	struct loaded l;
	char *uid;

	load_seq(t, seq, &l);
	uid = strstr(l.bytes + l.start, "\"uid\":1000");
	ck_assert_ptr_nonnull(uid);
	ck_assert_uint_lt((size_t)(uid - l.bytes), l.end);
	uid[6] = '9';
	file_store(l.path, l.bytes, l.len);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[segment_of(t, seq)]));
}

/* The last line of a segment edited: found at the next segment, named in its own. */
static void tamper_edit_segment_end(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = segment_last(t, 0);
	struct loaded l;
	char *uid;

	load_seq(t, seq, &l);
	uid = strstr(l.bytes + l.start, "\"uid\":1000");
	ck_assert_ptr_nonnull(uid);
	uid[9] = '1';
	file_store(l.path, l.bytes, l.len);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[0]));
}

/* A byte that leaves the JSON valid but not canonical (a blank after a comma). */
static void tamper_not_canonical(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = middle_seq(t);
	struct loaded l;
	char *comma, *bytes;

	load_seq(t, seq, &l);
	comma = memchr(l.bytes + l.start, ',', l.end - l.start);
	ck_assert_ptr_nonnull(comma);
	bytes = malloc(l.len + 1);
	ck_assert_ptr_nonnull(bytes);
	size_t at = (size_t)(comma - l.bytes) + 1;
	memcpy(bytes, l.bytes, at);
	bytes[at] = ' ';
	memcpy(bytes + at + 1, l.bytes + at, l.len - at);
	file_store(l.path, bytes, l.len + 1);
	free(bytes);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[segment_of(t, seq)]));
}

/* A forged line inserted before seq: it copies seq's number and chains to the line
 * before, so it checks out; the real line then repeats the seq. */
static void tamper_insert(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = middle_seq(t);
	struct loaded l;
	size_t line_len;
	char *bytes, *uid;

	load_seq(t, seq, &l);
	line_len = l.end - l.start;
	bytes = malloc(l.len + line_len + 1);
	ck_assert_ptr_nonnull(bytes);
	memcpy(bytes, l.bytes, l.start);
	memcpy(bytes + l.start, l.bytes + l.start, line_len);
	memcpy(bytes + l.start + line_len, l.bytes + l.start, l.len - l.start);
	bytes[l.len + line_len] = '\0';
	uid = strstr(bytes + l.start, "\"uid\":1000");
	ck_assert_ptr_nonnull(uid);
	uid[6] = '6';
	file_store(l.path, bytes, l.len + line_len);
	free(bytes);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[segment_of(t, seq)]));
}

static void tamper_delete_line(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = middle_seq(t);
	struct loaded l;

	load_seq(t, seq, &l);
	memmove(l.bytes + l.start, l.bytes + l.end, l.len - l.end);
	file_store(l.path, l.bytes, l.len - (l.end - l.start));
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[segment_of(t, seq)]));
}

static void tamper_swap_lines(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = middle_seq(t);
	size_t next_start, next_end;
	struct loaded l;
	char *bytes;

	load_seq(t, seq, &l);
	line_span(l.bytes, l.len, (size_t)(seq - t->first[segment_of(t, seq)] + 2), &next_start,
		  &next_end);
	bytes = malloc(l.len);
	ck_assert_ptr_nonnull(bytes);
	memcpy(bytes, l.bytes, l.start);
	memcpy(bytes + l.start, l.bytes + next_start, next_end - next_start);
	memcpy(bytes + l.start + (next_end - next_start), l.bytes + l.start, l.end - l.start);
	memcpy(bytes + next_end, l.bytes + next_end, l.len - next_end);
	file_store(l.path, bytes, l.len);
	free(bytes);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[segment_of(t, seq)]));
}

/* A segment cut in the middle of its last line (not the last segment). */
static void tamper_cut_mid_line(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = segment_last(t, 1);
	struct loaded l;

	load_seq(t, seq, &l);
	file_store(l.path, l.bytes, l.start + (l.end - l.start) / 2);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[1]));
}

/* A segment's last line removed whole: the next segment no longer follows on. */
static void tamper_cut_line_boundary(const struct tamper_trail *t, struct expect *e)
{
	uint64_t seq = segment_last(t, 1);
	struct loaded l;

	load_seq(t, seq, &l);
	file_store(l.path, l.bytes, l.start);
	free(l.bytes);
	expect_bad(e, seq, segment_base(t->first[2]));
}

/* The trail's tail cut in the middle of a line: a torn record. */
static void tamper_cut_tail_mid_line(const struct tamper_trail *t, struct expect *e)
{
	struct loaded l;

	load_seq(t, TAMPER_RECORDS, &l);
	file_store(l.path, l.bytes, l.start + 10);
	free(l.bytes);
	expect_bad(e, TAMPER_RECORDS, segment_base(t->first[t->count - 1]));
}

/* The trail's tail cut at a line boundary: every line left is a good record, and only
 * a checkpoint of the chain head (issue 12, signed by the key agent) can tell that
 * records are missing. Until then verify passes, with fewer records. */
static void tamper_cut_tail_line_boundary(const struct tamper_trail *t, struct expect *e)
{
	struct loaded l;

	load_seq(t, TAMPER_RECORDS, &l);
	file_store(l.path, l.bytes, l.start);
	free(l.bytes);
	e->passes = true;
	e->records = TAMPER_RECORDS - 1;
}

static void tamper_delete_segment(const struct tamper_trail *t, struct expect *e)
{
	char path[256];

	segment_file(t, 2, path, sizeof(path));
	unseal(path);
	ck_assert_int_eq(unlink(path), 0);
	expect_bad(e, t->first[2], segment_base(t->first[3]));
}

static void tamper_delete_first_segment(const struct tamper_trail *t, struct expect *e)
{
	char path[256];

	segment_file(t, 0, path, sizeof(path));
	unseal(path);
	ck_assert_int_eq(unlink(path), 0);
	expect_bad(e, 1, segment_base(t->first[1]));
}

/* A segment renamed so that its name no longer says its first seq. */
static void tamper_rename_segment(const struct tamper_trail *t, struct expect *e)
{
	char from[256], to[256];

	segment_file(t, 2, from, sizeof(from));
	segment_path(to, sizeof(to), trail_dir, t->first[2] + 1);
	unseal(from);
	ck_assert_int_eq(rename(from, to), 0);
	expect_bad(e, t->first[2], segment_base(t->first[2] + 1));
}

/* The last segment renamed out of the pattern: not taken for a missing tail. */
static void tamper_rename_last_away(const struct tamper_trail *t, struct expect *e)
{
	char from[256], to[300];

	segment_file(t, t->count - 1, from, sizeof(from));
	snprintf(to, sizeof(to), "%s.old", from);
	unseal(from);
	ck_assert_int_eq(rename(from, to), 0);
	expect_bad(e, t->first[t->count - 1], segment_base(t->first[t->count - 1]));
	strcat(e->bad_segment, ".old");
}

static const struct {
	const char *name;
	void (*tamper)(const struct tamper_trail *t, struct expect *e);
} tamper_cases[] = {
	{ "edit a value", tamper_edit_value },
	{ "edit a segment's last line", tamper_edit_segment_end },
	{ "make a line not canonical", tamper_not_canonical },
	{ "insert a line", tamper_insert },
	{ "delete a line", tamper_delete_line },
	{ "swap two lines", tamper_swap_lines },
	{ "cut a segment mid-line", tamper_cut_mid_line },
	{ "cut a segment at a line boundary", tamper_cut_line_boundary },
	{ "cut the tail mid-line", tamper_cut_tail_mid_line },
	{ "cut the tail at a line boundary", tamper_cut_tail_line_boundary },
	{ "delete a middle segment", tamper_delete_segment },
	{ "delete the first segment", tamper_delete_first_segment },
	{ "rename a segment", tamper_rename_segment },
	{ "rename the last segment away", tamper_rename_last_away },
};
#define TAMPER_CASES (int)(sizeof(tamper_cases) / sizeof(tamper_cases[0]))

START_TEST(test_tamper)
{
	struct tamper_trail t;
	struct audit_verdict verdict;
	struct expect e = { 0 };
	int err;

	trail_make(trail_dir, TAMPER_RECORDS, TAMPER_SEGMENT_BYTES);
	t.count = segments(trail_dir, t.first, 32);
	ck_assert_uint_ge(t.count, 5);
	verify_ok(trail_dir, TAMPER_RECORDS);

	tamper_cases[_i].tamper(&t, &e);
	err = audit_verify(trail_dir, &verdict);
	if (e.passes) {
		ck_assert_msg(err == 0, "%s: %s", tamper_cases[_i].name, verdict.why);
		ck_assert_uint_eq(verdict.records, e.records);
		return;
	}
	ck_assert_msg(err == -EBADMSG, "%s: verify returned %d", tamper_cases[_i].name, err);
	ck_assert_msg(verdict.bad_seq == e.bad_seq && strcmp(verdict.bad_segment,
							     e.bad_segment) == 0,
		      "%s: expected seq %llu in %s, got seq %llu in %s: %s",
		      tamper_cases[_i].name, (unsigned long long)e.bad_seq, e.bad_segment,
		      (unsigned long long)verdict.bad_seq, verdict.bad_segment, verdict.why);
	ck_assert_str_ne(verdict.why, "");
}
END_TEST

/* Failing closed ---------------------------------------------------------------------- */

/* Write path until the file system is full. */
static void fill_disk(const char *path)
{
	static char chunk[4096];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	/* The last partial page too, byte by byte. */
	while (write(fd, chunk, 1) > 0)
		;
	close(fd);
}

/* Work in a small detached tmpfs as the current directory; false when this process
 * may not make one. */
static bool enter_small_disk(int *small, int *cwd)
{
	*small = harness_detached_tmpfs("64k");
	if (*small == -EPERM || *small == -ENOSYS) {
		fprintf(stderr, "skip: making a small tmpfs needs CAP_SYS_ADMIN: %s\n",
			strerror(-*small));
		return false;
	}
	ck_assert_msg(*small >= 0, "fsopen: %s", strerror(-*small));
	*cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(*cwd, 0);
	ck_assert_int_eq(fchdir(*small), 0);
	return true;
}

static void leave_small_disk(int small, int cwd)
{
	/* The tmpfs goes away with its last reference: the directory and the descriptor. */
	ck_assert_int_eq(fchdir(cwd), 0);
	close(cwd);
	close(small);
}

/*
 * On a full disk the trail fails (audit_ok, audit_sync) but keeps every record queued;
 * once there is room they are all written, in order, none torn, and the trail verifies.
 */
START_TEST(test_disk_full_fails_closed)
{
	struct audit_options options = { .batch_ms = 5 };
	struct audit_record record;
	struct audit_trail *trail;
	uint64_t n = 0;
	int small, cwd, polls = 0;

	if (!enter_small_disk(&small, &cwd))
		return;
	ck_assert_int_eq(audit_open(&trail, "trail", &options), 0);
	for (int i = 0; i < 5; i++) {
		record_make(&record, ++n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
	}
	ck_assert_int_eq(audit_sync(trail), 0);
	fill_disk("filler");

	while (audit_ok(trail) == 0) {
		ck_assert_int_lt(polls++, 2000);
		record_make(&record, ++n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
		usleep(2000);
	}
	ck_assert_int_eq(audit_ok(trail), -EIO);
	ck_assert_int_eq(audit_sync(trail), -ENOSPC);
	/* Still queued, not refused: the caller refuses the accesses meanwhile. */
	for (int i = 0; i < 50; i++) {
		record_make(&record, ++n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
	}
	ck_assert_int_eq(audit_sync(trail), -ENOSPC);
	ck_assert_int_eq(audit_ok(trail), -EIO);

	ck_assert_int_eq(unlink("filler"), 0);
	ck_assert_int_eq(audit_sync(trail), 0);
	ck_assert_int_eq(audit_ok(trail), 0);
	record_make(&record, ++n);
	ck_assert_uint_eq(audit_append(trail, &record), n);
	ck_assert_int_eq(audit_close(trail), 0);
	verify_ok("trail", n);
	leave_small_disk(small, cwd);
}
END_TEST

/* A trail that cannot write refuses records once AUDIT_QUEUE_MAX bytes wait, rather than
 * growing without bound; what it did write still verifies. */
START_TEST(test_queue_cap_refuses)
{
	static char text[AUDIT_TEXT_MAX + 1];
	struct audit_options options = { .batch_ms = 5 };
	struct audit_record record;
	struct audit_trail *trail;
	uint64_t n = 0, seq = 1;
	int small, cwd, polls = 0;

	if (!enter_small_disk(&small, &cwd))
		return;
	memset(text, 'x', AUDIT_TEXT_MAX);
	ck_assert_int_eq(audit_open(&trail, "trail", &options), 0);
	record_make(&record, ++n);
	ck_assert_uint_eq(audit_append(trail, &record), n);
	ck_assert_int_eq(audit_sync(trail), 0);
	fill_disk("filler");
	while (audit_ok(trail) == 0) {
		ck_assert_int_lt(polls++, 2000);
		record_make(&record, ++n);
		ck_assert_uint_eq(audit_append(trail, &record), n);
		usleep(2000);
	}
	/* About 1.1 KiB a line: the cap comes after some 60000 records. */
	for (uint64_t i = 0; seq != 0; i++) {
		ck_assert_uint_lt(i, 2 * (AUDIT_QUEUE_MAX / AUDIT_TEXT_MAX));
		record_make(&record, n + 1);
		audit_add_text(&record, "exe", text);
		seq = audit_append(trail, &record);
		if (seq)
			ck_assert_uint_eq(seq, ++n);
	}
	ck_assert_uint_gt(n, AUDIT_QUEUE_MAX / (2 * AUDIT_TEXT_MAX));
	ck_assert_int_eq(audit_ok(trail), -EIO);
	/* Records wait that cannot be written: close says so. */
	ck_assert_int_lt(audit_close(trail), 0);
	ck_assert_int_eq(audit_verify("trail", NULL), 0);
	leave_small_disk(small, cwd);
}
END_TEST

/* Threads ----------------------------------------------------------------------------- */

#define THREADS 8
#define THREAD_RECORDS 2000

struct appender {
	struct audit_trail *trail;
	int id;
	uint64_t seqs[THREAD_RECORDS];
};

static void *appender_main(void *arg)
{
	struct appender *a = arg;
	struct audit_record record;

	for (int i = 0; i < THREAD_RECORDS; i++) {
		audit_record_init(&record, "write");
		audit_add_u64(&record, "thread", (uint64_t)a->id);
		audit_add_u64(&record, "i", (uint64_t)i);
		a->seqs[i] = audit_append(a->trail, &record);
		if (i % 500 == 499 && audit_sync(a->trail) != 0)
			a->seqs[i] = 0;
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct audit_options options = { .segment_max_bytes = 256 << 10 };
	static struct appender appenders[THREADS];
	static bool seen[THREADS * THREAD_RECORDS + 1];
	pthread_t threads[THREADS];
	struct audit_trail *trail;
	uint64_t first[64];

	ck_assert_int_eq(audit_open(&trail, trail_dir, &options), 0);
	for (int t = 0; t < THREADS; t++) {
		appenders[t].trail = trail;
		appenders[t].id = t;
		ck_assert_int_eq(pthread_create(&threads[t], NULL, appender_main, &appenders[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_join(threads[t], NULL), 0);
	ck_assert_int_eq(audit_sync(trail), 0);
	ck_assert_int_eq(audit_ok(trail), 0);
	ck_assert_int_eq(audit_close(trail), 0);

	/* Every seq 1..16000 given out once, and in each thread in the order of its calls. */
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < THREAD_RECORDS; i++) {
			uint64_t seq = appenders[t].seqs[i];
			ck_assert_uint_ge(seq, 1);
			ck_assert_uint_le(seq, THREADS * THREAD_RECORDS);
			ck_assert(!seen[seq]);
			seen[seq] = true;
			if (i > 0)
				ck_assert_uint_gt(seq, appenders[t].seqs[i - 1]);
		}
	}
	verify_ok(trail_dir, THREADS * THREAD_RECORDS);
	ck_assert_uint_gt(segments(trail_dir, first, 64), 1);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("audit");
	TCase *records = tcase_create("records");
	TCase *trails = tcase_create("trails");
	TCase *tamper = tcase_create("tamper");

	tcase_add_unchecked_fixture(records, top_setup, top_teardown);
	tcase_add_checked_fixture(records, setup, teardown);
	tcase_add_test(records, test_sha256_known_answer);
	tcase_add_test(records, test_known_answer);
	tcase_add_test(records, test_text_any_bytes);
	tcase_add_test(records, test_text_cut_at_character);
	tcase_add_test(records, test_numbers_results_full_record);
	tcase_add_test_raise_signal(records, test_reserved_key_aborts, SIGABRT);
	tcase_add_test_raise_signal(records, test_repeated_key_aborts, SIGABRT);
	suite_add_tcase(suite, records);

	tcase_add_unchecked_fixture(trails, top_setup, top_teardown);
	tcase_add_checked_fixture(trails, setup, teardown);
	tcase_set_timeout(trails, 60);
	tcase_add_test(trails, test_chain_reopen_rotate);
	tcase_add_test(trails, test_rotate_by_age);
	tcase_add_test(trails, test_written_without_sync);
	tcase_add_test(trails, test_empty_trail);
	tcase_add_test(trails, test_reopen_empty_segment);
	tcase_add_test(trails, test_reopen_torn_tail);
	tcase_add_test(trails, test_links_refused);
	tcase_add_test(trails, test_disk_full_fails_closed);
	tcase_add_test(trails, test_queue_cap_refuses);
	tcase_add_test(trails, test_threads);
	suite_add_tcase(suite, trails);

	tcase_add_unchecked_fixture(tamper, top_setup, top_teardown);
	tcase_add_checked_fixture(tamper, setup, teardown);
	tcase_set_timeout(tamper, 30);
	tcase_add_loop_test(tamper, test_tamper, 0, TAMPER_CASES);
	suite_add_tcase(suite, tamper);
	return harness_run(suite);
}
