/*
 * Real-mount tests of regular files: create, read and write at any offset, append,
 * truncation both ways, files past 4 GiB, sparse extension, fsync, unlinked open files,
 * tiny and large files. Every check compares with reference data, most after a remount
 * so the data comes back from the backing store, not the page cache.
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

#define KIB 1024L
#define MIB (1024L * KIB)
#define GIB (1024L * MIB)

static int open_or_fail(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

static void assert_zero(const uint8_t *buf, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(buf[i] == 0, "%s: byte %zu is 0x%02x, want 0", what, i, buf[i]);
}

static off_t file_size(const char *path)
{
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return st.st_size;
}

START_TEST(test_create_exclusive)
{
	const char *path = mnt_path("new");
	int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640);
	ck_assert_msg(fd >= 0, "create: %s", strerror(errno));
	ck_assert_int_eq(close(fd), 0);
	ck_assert_errno(open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640), EEXIST);
	fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "open existing with O_CREAT: %s", strerror(errno));
	close(fd);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(st.st_nlink, 1);
	ck_assert_errno(open(mnt_path("missing"), O_RDONLY), ENOENT);
	ck_assert_errno(open(mnt_path("missing/x"), O_CREAT | O_RDWR, 0644), ENOENT);
	fixture_remount(&fx);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
}
END_TEST

/* Random writes of random lengths at random offsets, mirrored in a reference buffer. */
START_TEST(test_write_read_any_offset)
{
	enum { SIZE = 300 * 1024 };
	uint8_t *reference = calloc(1, SIZE), *chunk = malloc(SIZE), *got = malloc(SIZE);
	ck_assert(reference && chunk && got);
	const char *path = mnt_path("random");
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	size_t end = 0;
	srandom(1234);
	for (int i = 0; i < 300; i++) {
		size_t offset = (size_t)random() % (SIZE - 1);
		size_t len = 1 + (size_t)random() % (i % 3 == 0 ? 20000 : 700);
		if (offset + len > SIZE)
			len = SIZE - offset;
		pattern_fill(chunk, len, (uint64_t)i, 0);
		ck_assert_int_eq(pwrite_full(fd, chunk, len, (off_t)offset), (ssize_t)len);
		memcpy(reference + offset, chunk, len);
		if (offset + len > end)
			end = offset + len;
		if (i % 50 == 0) { /* read back an unaligned window across block boundaries */
			size_t at = (size_t)random() % end, want = 1 + (size_t)random() % 9000;
			if (at + want > end)
				want = end - at;
			ck_assert_int_eq(pread_full(fd, got, want, (off_t)at), (ssize_t)want);
			ck_assert(memcmp(got, reference + at, want) == 0);
		}
	}
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(file_size(path), (off_t)end);

	fixture_remount(&fx);
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, SIZE, 0), (ssize_t)end);
	ck_assert_msg(memcmp(got, reference, end) == 0, "file differs after remount");
	for (int i = 0; i < 200; i++) {
		size_t at = (size_t)random() % end, want = 1 + (size_t)random() % 10000;
		if (at + want > end)
			want = end - at;
		ck_assert_int_eq(pread_full(fd, got, want, (off_t)at), (ssize_t)want);
		ck_assert_msg(memcmp(got, reference + at, want) == 0, "read at %zu+%zu", at, want);
	}
	/* reads at and past the end */
	ck_assert_int_eq(pread(fd, got, 100, (off_t)end), 0);
	ck_assert_int_eq(pread(fd, got, 100, (off_t)end + 5000), 0);
	ck_assert_int_eq(pread(fd, got, 100, (off_t)end - 10), 10);
	ck_assert(memcmp(got, reference + end - 10, 10) == 0);
	close(fd);
	free(reference);
	free(chunk);
	free(got);
}
END_TEST

START_TEST(test_append)
{
	const char *path = mnt_path("log");
	uint8_t data[10000], got[30000];
	pattern_fill(data, sizeof(data), 7, 0);
	int fd = open_or_fail(path, O_CREAT | O_WRONLY | O_APPEND);
	int other = open_or_fail(path, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, data, 3000), 3000);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(write(other, data + 3000, 5000), 5000); /* other fd appends too */
	ck_assert_int_eq(write(fd, data + 8000, 2000), 2000);    /* after lseek(0): still at end */
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 10000);
	close(fd);
	close(other);
	fixture_remount(&fx);
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), 10000);
	ck_assert(memcmp(got, data, sizeof(data)) == 0);
	close(fd);
	fd = open_or_fail(path, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, "tail", 4), 4);
	close(fd);
	ck_assert_int_eq(file_size(path), 10004);
}
END_TEST

START_TEST(test_open_truncate)
{
	const char *path = mnt_path("trunc");
	ck_assert_int_eq(pattern_write_file(path, 50000, 3), 0);
	int fd = open_or_fail(path, O_WRONLY | O_TRUNC);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	close(fd);
	fixture_remount(&fx);
	char got[16];
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(read(fd, got, sizeof(got)), 3);
	ck_assert(memcmp(got, "abc", 3) == 0);
	close(fd);
}
END_TEST

/* Shrink to mid-block, grow again: the old bytes after the cut must read as zeros,
 * also after a remount (the block tail was re-encrypted, not just hidden by the size). */
START_TEST(test_truncate_down_up)
{
	enum { SIZE = 3 * 4096 + 100, CUT = 5000, GROWN = 20000 };
	uint8_t got[GROWN];
	const char *path = mnt_path("shrink");
	ck_assert_int_eq(pattern_write_file(path, SIZE, 11), 0);
	ck_assert_int_eq(truncate(path, CUT), 0);
	ck_assert_int_eq(file_size(path), CUT);
	ck_assert_int_eq(truncate(path, GROWN), 0);
	ck_assert_int_eq(file_size(path), GROWN);
	for (int round = 0; round < 2; round++) {
		int fd = open_or_fail(path, O_RDONLY);
		memset(got, 0xaa, sizeof(got));
		ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), GROWN);
		ck_assert_int_eq(pattern_check(got, CUT, 11, 0), -1);
		assert_zero(got + CUT, GROWN - CUT, round ? "after remount" : "after regrow");
		close(fd);
		fixture_remount(&fx);
	}

	/* the same with ftruncate on an open fd, to a block boundary and to mid-block */
	const char *other = mnt_path("fshrink");
	ck_assert_int_eq(pattern_write_file(other, SIZE, 12), 0);
	int fd = open_or_fail(other, O_RDWR);
	ck_assert_int_eq(ftruncate(fd, 8192), 0);
	ck_assert_int_eq(ftruncate(fd, 3000), 0);
	ck_assert_int_eq(ftruncate(fd, 9000), 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 9000);
	memset(got, 0xaa, sizeof(got));
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), 9000);
	ck_assert_int_eq(pattern_check(got, 3000, 12, 0), -1);
	assert_zero(got + 3000, 6000, "ftruncate regrow");
	/* write past the end leaves a zero gap */
	ck_assert_int_eq(pwrite(fd, "Z", 1, 15000), 1);
	close(fd);
	fixture_remount(&fx);
	fd = open_or_fail(other, O_RDONLY);
	memset(got, 0xaa, sizeof(got));
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), 15001);
	ck_assert_int_eq(pattern_check(got, 3000, 12, 0), -1);
	assert_zero(got + 3000, 12000, "gap after write past end");
	ck_assert_int_eq(got[15000], 'Z');
	close(fd);
	ck_assert_int_eq(truncate(other, 0), 0);
	ck_assert_int_eq(file_size(other), 0);
}
END_TEST

START_TEST(test_file_over_4gib)
{
	const off_t far = 5 * GIB + 123, across = 4 * GIB - 3;
	const char *path = mnt_path("huge");
	uint8_t got[4096];
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	ck_assert_int_eq(pwrite(fd, "head", 4, 0), 4);
	ck_assert_int_eq(pwrite(fd, "acrossfour", 10, across), 10);
	ck_assert_int_eq(pwrite(fd, "beyond five", 11, far), 11);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(file_size(path), far + 11);
		fd = open_or_fail(path, O_RDONLY);
		memset(got, 0xaa, sizeof(got));
		ck_assert_int_eq(pread_full(fd, got, 11, far), 11);
		ck_assert(memcmp(got, "beyond five", 11) == 0);
		ck_assert_int_eq(pread_full(fd, got, 20, across - 5), 20);
		assert_zero(got, 5, "before 4 GiB mark");
		ck_assert(memcmp(got + 5, "acrossfour", 10) == 0);
		assert_zero(got + 15, 5, "after 4 GiB mark");
		ck_assert_int_eq(pread_full(fd, got, 4096, 0), 4096);
		ck_assert(memcmp(got, "head", 4) == 0);
		assert_zero(got + 4, 4092, "hole at start");
		const struct { off_t at; size_t len; } holes[] = {
			{ 1 * GIB, 4096 }, { 4 * GIB + 4096, 4096 }, { far - 4096 - 123, 4096 },
			{ far - 123, 123 },
		};
		for (size_t i = 0; i < sizeof(holes) / sizeof(holes[0]); i++) {
			memset(got, 0xaa, sizeof(got));
			ck_assert_int_eq(pread_full(fd, got, holes[i].len, holes[i].at),
					 (ssize_t)holes[i].len);
			assert_zero(got, holes[i].len, "hole");
		}
		ck_assert_int_eq(pread(fd, got, 100, far + 11), 0);
		close(fd);
		if (round == 0)
			fixture_remount(&fx);
	}
	ck_assert_int_eq(unlink(path), 0);
}
END_TEST

START_TEST(test_sparse_extension)
{
	const char *path = mnt_path("sparse");
	uint8_t got[8192];
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	ck_assert_int_eq(pwrite(fd, "x", 1, 0), 1);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	if (!fx.plain)
		fixture_remount(&fx); /* settle the backing store before measuring */
	uint64_t before = fixture_disk_usage(fixture_backing_dir(&fx));
	fd = open_or_fail(path, O_RDWR);
	ck_assert_int_eq(ftruncate(fd, 1 * GIB), 0);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	if (!fx.plain)
		fixture_unmount(&fx);
	uint64_t after = fixture_disk_usage(fixture_backing_dir(&fx));
	ck_assert_msg(after < before + 1 * MIB,
		      "extending to 1 GiB grew the vault by %llu bytes (limit 1 MiB)",
		      (unsigned long long)(after - before));
	if (!fx.plain)
		fixture_mount(&fx);
	ck_assert_int_eq(file_size(path), 1 * GIB);
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 512 * MIB + 100), (ssize_t)sizeof(got));
	assert_zero(got, sizeof(got), "sparse middle");
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 1 * GIB - 8192), (ssize_t)sizeof(got));
	assert_zero(got, sizeof(got), "sparse end");
	ck_assert_int_eq(pread_full(fd, got, 2, 0), 2);
	ck_assert_int_eq(got[0], 'x');
	ck_assert_int_eq(got[1], 0);
	close(fd);
}
END_TEST

START_TEST(test_posix_fallocate)
{
	const char *path = mnt_path("reserved");
	uint8_t got[8192];
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	ck_assert_int_eq(pwrite(fd, "start", 5, 0), 5);
	ck_assert_int_eq(posix_fallocate(fd, 0, 1 * MIB), 0);
	close(fd);
	fixture_remount(&fx);
	ck_assert_int_eq(file_size(path), 1 * MIB);
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), (ssize_t)sizeof(got));
	ck_assert(memcmp(got, "start", 5) == 0);
	assert_zero(got + 5, sizeof(got) - 5, "allocated range");
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 1 * MIB - 8192), (ssize_t)sizeof(got));
	assert_zero(got, sizeof(got), "allocated end");
	close(fd);
}
END_TEST

START_TEST(test_fsync)
{
	const char *path = mnt_path("synced");
	uint8_t data[70000];
	pattern_fill(data, sizeof(data), 21, 0);
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	ck_assert_int_eq(pwrite_full(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(pwrite(fd, "again", 5, 1000), 5);
	ck_assert_int_eq(fdatasync(fd), 0);
	memcpy(data + 1000, "again", 5);
	int dir = open(fx.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dir, 0);
	ck_assert_int_eq(fsync(dir), 0);
	close(dir);
	if (!fx.plain) {
		/* what fsync returned for survives the daemon's death */
		fixture_kill_daemon(&fx);
		close(fd);
		fixture_clear_dead_mount(&fx);
		fixture_mount(&fx);
	} else {
		close(fd);
	}
	uint8_t got[sizeof(data)];
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), (ssize_t)sizeof(got));
	ck_assert(memcmp(got, data, sizeof(data)) == 0);
	close(fd);
}
END_TEST

START_TEST(test_unlink_open_file)
{
	const char *path = mnt_path("doomed");
	uint8_t data[20000], got[sizeof(data)];
	char ids[8][FIXTURE_ID_HEX_LEN + 1];
	pattern_fill(data, sizeof(data), 31, 0);
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	ck_assert_int_eq(pwrite_full(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_errno(access(path, F_OK), ENOENT);
	ck_assert_errno(unlink(path), ENOENT);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_nlink, 0);
	ck_assert_int_eq(st.st_size, (off_t)sizeof(data));
	ck_assert_int_eq(pread_full(fd, got, sizeof(got), 0), (ssize_t)sizeof(got));
	ck_assert(memcmp(got, data, sizeof(data)) == 0);
	ck_assert_int_eq(pwrite(fd, "still", 5, 19000), 5);
	ck_assert_int_eq(pwrite(fd, "grows", 5, 30000), 5);
	ck_assert_int_eq(fsync(fd), 0);
	ck_assert_int_eq(pread_full(fd, got, 5, 19000), 5);
	ck_assert(memcmp(got, "still", 5) == 0);
	ck_assert_int_eq(pread_full(fd, got, 5, 30000), 5);
	ck_assert(memcmp(got, "grows", 5) == 0);
	/* a new file under the same name is a different file */
	int again = open_or_fail(path, O_CREAT | O_EXCL | O_RDWR);
	ck_assert_int_eq(pread(again, got, 10, 0), 0);
	close(again);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(close(fd), 0);
	if (!fx.plain) {
		fixture_unmount(&fx);
		ck_assert_msg(fixture_object_ids(&fx, ids, 8) == 0,
			      "the object of the unlinked file is still in the vault after close");
		ck_assert_msg(fixture_pool_bytes(&fx) == 0,
			      "a removed object kept for reuse still holds ciphertext");
		fixture_mount(&fx);
	}
	ck_assert_errno(access(path, F_OK), ENOENT);
}
END_TEST

START_TEST(test_tiny_files)
{
	const char *empty = mnt_path("empty"), *one = mnt_path("one");
	char got[8];
	int fd = open_or_fail(empty, O_CREAT | O_WRONLY);
	close(fd);
	fd = open_or_fail(one, O_CREAT | O_WRONLY);
	ck_assert_int_eq(write(fd, "!", 1), 1);
	close(fd);
	fixture_remount(&fx);
	ck_assert_int_eq(file_size(empty), 0);
	ck_assert_int_eq(file_size(one), 1);
	fd = open_or_fail(empty, O_RDONLY);
	ck_assert_int_eq(read(fd, got, sizeof(got)), 0);
	close(fd);
	fd = open_or_fail(one, O_RDONLY);
	ck_assert_int_eq(read(fd, got, sizeof(got)), 1);
	ck_assert_int_eq(got[0], '!');
	ck_assert_int_eq(read(fd, got, sizeof(got)), 0);
	close(fd);
	/* emptied by truncate, then one byte again */
	ck_assert_int_eq(truncate(one, 0), 0);
	fd = open_or_fail(one, O_WRONLY);
	ck_assert_int_eq(write(fd, "?", 1), 1);
	close(fd);
	fixture_remount(&fx);
	fd = open_or_fail(one, O_RDONLY);
	ck_assert_int_eq(read(fd, got, sizeof(got)), 1);
	ck_assert_int_eq(got[0], '?');
	close(fd);
}
END_TEST

START_TEST(test_large_file_64mib)
{
	const size_t size = 64 * MIB, chunk = 1 * MIB;
	const char *path = mnt_path("big");
	uint8_t *buf = malloc(chunk + 8192);
	ck_assert(buf != NULL);
	int fd = open_or_fail(path, O_CREAT | O_WRONLY | O_TRUNC);
	for (size_t done = 0; done < size; done += chunk) {
		pattern_fill(buf, chunk, 41, done);
		ck_assert_int_eq(write(fd, buf, chunk), (ssize_t)chunk);
	}
	ck_assert_int_eq(close(fd), 0);
	fixture_remount(&fx);

	/* 1: sequential read of the whole file */
	ck_assert_int_eq(file_size(path), (off_t)size);
	fd = open_or_fail(path, O_RDWR);
	for (size_t done = 0; done < size; done += chunk) {
		ck_assert_int_eq(read(fd, buf, chunk), (ssize_t)chunk);
		ck_assert_msg(pattern_check(buf, chunk, 41, done) == -1, "chunk at %zu", done);
	}
	ck_assert_int_eq(read(fd, buf, chunk), 0);
	/* 2: unaligned reads scattered over the file */
	srandom(99);
	for (int i = 0; i < 100; i++) {
		size_t at = (size_t)random() % (size - 9000), len = 1 + (size_t)random() % 9000;
		ck_assert_int_eq(pread_full(fd, buf, len, (off_t)at), (ssize_t)len);
		ck_assert_msg(pattern_check(buf, len, 41, at) == -1, "read %zu+%zu", at, len);
	}
	/* 3: overwrite an unaligned middle range with another pattern */
	const size_t over_at = 20 * MIB + 777, over_len = 3 * MIB + 5;
	for (size_t done = 0; done < over_len; done += chunk) {
		size_t n = over_len - done < chunk ? over_len - done : chunk;
		pattern_fill(buf, n, 42, over_at + done);
		ck_assert_int_eq(pwrite_full(fd, buf, n, (off_t)(over_at + done)), (ssize_t)n);
	}
	close(fd);
	fixture_remount(&fx);
	fd = open_or_fail(path, O_RDONLY);
	for (size_t done = 0; done < size; done += chunk) {
		ck_assert_int_eq(pread_full(fd, buf, chunk, (off_t)done), (ssize_t)chunk);
		/* check each piece with the pattern that covers it */
		const size_t edges[] = { done, over_at, over_at + over_len, done + chunk };
		for (int piece = 0; piece < 3; piece++) {
			size_t from = edges[piece] > done ? edges[piece] : done;
			size_t to = edges[piece + 1] < done + chunk ? edges[piece + 1] : done + chunk;
			if (from >= to)
				continue;
			ck_assert_msg(pattern_check(buf + (from - done), to - from,
						    piece == 1 ? 42 : 41, from) == -1,
				      "after overwrite: mismatch in %zu..%zu", from, to);
		}
	}
	close(fd);
	free(buf);
}
END_TEST

enum { WRITERS = 4, RECORD = 1000, RECORDS_PER_WRITER = 150 };

struct writer {
	pthread_t thread;
	int fd;
	int index;
	int result;
};

/* Records of 1000 bytes, interleaved between the writers: every 4 KiB block is shared
 * by several threads writing at the same time. */
static void *write_records(void *arg)
{
	struct writer *writer = arg;
	uint8_t record[RECORD];
	for (int i = 0; i < RECORDS_PER_WRITER && writer->result == 0; i++) {
		off_t at = (off_t)(i * WRITERS + writer->index) * RECORD;
		pattern_fill(record, RECORD, 61, (uint64_t)at);
		if (pwrite_full(writer->fd, record, RECORD, at) != RECORD)
			writer->result = -1;
	}
	return NULL;
}

START_TEST(test_concurrent_writers_one_file)
{
	const size_t size = (size_t)WRITERS * RECORDS_PER_WRITER * RECORD;
	const char *path = mnt_path("shared");
	struct writer writers[WRITERS];
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	for (int i = 0; i < WRITERS; i++) {
		/* each thread its own fd, as separate processes would have */
		writers[i] = (struct writer){ .fd = open_or_fail(path, O_RDWR), .index = i };
		ck_assert_int_eq(pthread_create(&writers[i].thread, NULL, write_records, &writers[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(writers[i].thread, NULL);
		ck_assert_int_eq(writers[i].result, 0);
		close(writers[i].fd);
	}
	close(fd);
	fixture_remount(&fx);
	ck_assert_int_eq(pattern_verify_file(path, size, 61), 0);
}
END_TEST

static Suite *files_suite(void)
{
	Suite *suite = suite_create("mount_files");
	TCase *basic = tcase_create("basic");
	tcase_add_checked_fixture(basic, fixture_setup, fixture_teardown);
	tcase_set_timeout(basic, 60);
	tcase_add_test(basic, test_create_exclusive);
	tcase_add_test(basic, test_write_read_any_offset);
	tcase_add_test(basic, test_append);
	tcase_add_test(basic, test_open_truncate);
	tcase_add_test(basic, test_truncate_down_up);
	tcase_add_test(basic, test_fsync);
	tcase_add_test(basic, test_posix_fallocate);
	tcase_add_test(basic, test_unlink_open_file);
	tcase_add_test(basic, test_tiny_files);
	tcase_add_test(basic, test_concurrent_writers_one_file);
	suite_add_tcase(suite, basic);

	TCase *large = tcase_create("large");
	tcase_add_checked_fixture(large, fixture_setup, fixture_teardown);
	tcase_set_timeout(large, 120);
	tcase_add_test(large, test_file_over_4gib);
	tcase_add_test(large, test_sparse_extension);
	tcase_add_test(large, test_large_file_64mib);
	suite_add_tcase(suite, large);
	return suite;
}

int main(void)
{
	return harness_run(files_suite());
}
