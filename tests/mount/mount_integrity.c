/*
 * Real-mount tests of the integrity and confidentiality contract. Each integrity test
 * writes files, unmounts, alters the backing store (flip a bit, swap or move blocks
 * within a file, between files or between vaults, swap objects, truncate, extend, zero),
 * mounts again and reads: the altered range fails with EIO, no read ever returns wrong or
 * zeroed data, untouched files read correctly and the daemon logs the object id. The
 * confidentiality test scans every byte of the vault and the log for a marker that the
 * names, contents, link targets and xattrs carried.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define BLOCK FIXTURE_BLOCK_SIZE
#define HEADER FIXTURE_OBJECT_HEADER_LEN
#define MAX_OBJECTS 64
#define ALL_BLOCKS UINT32_MAX

enum { VICTIM_BLOCKS = 6 };

struct tracked {
	const char *name;
	size_t size;
	uint64_t seed;
	char id[FIXTURE_ID_HEX_LEN + 1];
	char object[PATH_MAX];
};

/* Write a file through the mount and find its object: the one id that is new. */
static void write_tracked(struct fixture *f, struct tracked *file)
{
	char before[MAX_OBJECTS][FIXTURE_ID_HEX_LEN + 1], after[MAX_OBJECTS][FIXTURE_ID_HEX_LEN + 1];
	char path[PATH_MAX];
	int count_before = fixture_object_ids(f, before, MAX_OBJECTS);
	snprintf(path, sizeof(path), "%s/%s", f->mnt, file->name);
	ck_assert_int_eq(pattern_write_file(path, file->size, file->seed), 0);
	int count_after = fixture_object_ids(f, after, MAX_OBJECTS);
	ck_assert_msg(count_after == count_before + 1, "%d objects before writing %s, %d after",
		      count_before, file->name, count_after);
	int found = 0;
	for (int i = 0; i < count_after; i++) {
		bool old = false;
		for (int j = 0; j < count_before; j++)
			old = old || strcmp(after[i], before[j]) == 0;
		if (!old) {
			memcpy(file->id, after[i], sizeof(file->id));
			found++;
		}
	}
	ck_assert_int_eq(found, 1);
	fixture_object_path(f, file->id, file->object);
}

/* Bytes per block on disk, from an object that holds exactly nblocks full blocks. */
static size_t object_stride(const struct tracked *file)
{
	struct stat st;
	size_t blocks = (file->size + BLOCK - 1) / BLOCK;
	ck_assert_int_eq(stat(file->object, &st), 0);
	ck_assert_msg(st.st_size > HEADER && ((size_t)st.st_size - HEADER) % blocks == 0,
		      "object of %zu blocks is %lld bytes", blocks, (long long)st.st_size);
	size_t stride = ((size_t)st.st_size - HEADER) / blocks;
	ck_assert_msg(stride == BLOCK + 12 + 16 || stride == BLOCK + 24 + 16,
		      "stride %zu is neither AES-256-GCM's nor XChaCha20-Poly1305's", stride);
	return stride;
}

static void read_object(const char *object, void *buf, size_t len, off_t offset)
{
	int fd = open(object, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", object, strerror(errno));
	ck_assert_int_eq(pread_full(fd, buf, len, offset), (ssize_t)len);
	close(fd);
}

static void write_object(const char *object, const void *buf, size_t len, off_t offset)
{
	int fd = open(object, O_WRONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", object, strerror(errno));
	ck_assert_int_eq(pwrite_full(fd, buf, len, offset), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static off_t block_offset(size_t stride, unsigned index)
{
	return (off_t)(HEADER + (size_t)index * stride);
}

/*
 * Read path block by block after tampering. Blocks in bad_mask must fail with EIO; any
 * other block either reads exactly the reference data or fails with EIO. An open that
 * fails with EIO counts as every block failing. Returns the number of blocks that failed.
 */
static int check_file(struct fixture *f, const struct tracked *file, uint32_t bad_mask)
{
	char path[PATH_MAX];
	uint8_t buf[BLOCK];
	int failed = 0;
	unsigned blocks = (unsigned)((file->size + BLOCK - 1) / BLOCK);

	snprintf(path, sizeof(path), "%s/%s", f->mnt, file->name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		ck_assert_msg(errno == EIO, "open %s: %s, want success or EIO", file->name,
			      strerror(errno));
		return (int)blocks;
	}
	/* the tampered blocks first, so readahead of a good block cannot mask them */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < blocks; i++) {
			bool bad = bad_mask & (UINT32_C(1) << i);
			if (bad != (pass == 0))
				continue;
			size_t len = file->size - (size_t)i * BLOCK < BLOCK ? file->size - (size_t)i * BLOCK
									    : BLOCK;
			memset(buf, 0xaa, sizeof(buf));
			errno = 0;
			ssize_t n = pread(fd, buf, len, (off_t)i * BLOCK);
			if (n == -1) {
				ck_assert_msg(errno == EIO, "%s block %u: %s, want EIO", file->name, i,
					      strerror(errno));
				failed++;
				continue;
			}
			ck_assert_msg(!bad, "%s block %u was tampered with but read %zd bytes",
				      file->name, i, n);
			ck_assert_msg((size_t)n == len && pattern_check(buf, len, file->seed,
									(uint64_t)i * BLOCK) == -1,
				      "%s block %u read %zd bytes of wrong data", file->name, i, n);
		}
	}
	close(fd);
	return failed;
}

static void assert_intact(struct fixture *f, const struct tracked *file)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", f->mnt, file->name);
	int result = pattern_verify_file(path, file->size, file->seed);
	ck_assert_msg(result == 0, "untouched %s: %s", file->name, strerror(-result));
}

static void assert_logged(struct fixture *f, size_t since, const struct tracked *file)
{
	ck_assert_msg(fixture_log_contains(f, since, file->id),
		      "the daemon log does not name object %s", file->id);
}

/* The usual cast: a victim of six blocks and a bystander that nobody touches. */
static struct tracked victim = { "victim", VICTIM_BLOCKS * BLOCK, 100, "", "" };
static struct tracked bystander = { "bystander", 3 * BLOCK + 100, 200, "", "" };

static size_t prepare(void)
{
	write_tracked(&fx, &victim);
	write_tracked(&fx, &bystander);
	fixture_unmount(&fx);
	return object_stride(&victim);
}

/* Mount after tampering; returns the log offset from which the new daemon writes. */
static size_t mount_tampered(void)
{
	size_t since = fixture_log_length(&fx);
	fixture_mount(&fx);
	return since;
}

START_TEST(test_bit_flip)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	uint8_t byte;
	off_t at = block_offset(stride, 2) + 100;
	read_object(victim.object, &byte, 1, at);
	byte ^= 0x08;
	write_object(victim.object, &byte, 1, at);
	size_t since = mount_tampered();
	check_file(&fx, &victim, UINT32_C(1) << 2);
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

/* A flip in the ciphertext of the last block, in the tag, and in the nonce of others. */
START_TEST(test_bit_flip_everywhere)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	uint8_t byte;
	const off_t spots[] = {
		block_offset(stride, 0) + 3,                        /* nonce of block 0 */
		block_offset(stride, 3) + (off_t)stride - 1,        /* tag of block 3 */
		block_offset(stride, 5) + (off_t)stride / 2,        /* ciphertext of block 5 */
	};
	for (size_t i = 0; i < 3; i++) {
		read_object(victim.object, &byte, 1, spots[i]);
		byte ^= 0x80;
		write_object(victim.object, &byte, 1, spots[i]);
	}
	size_t since = mount_tampered();
	check_file(&fx, &victim, (UINT32_C(1) << 0) | (UINT32_C(1) << 3) | (UINT32_C(1) << 5));
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_blocks_swapped)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	uint8_t *one = malloc(stride), *three = malloc(stride);
	ck_assert(one && three);
	read_object(victim.object, one, stride, block_offset(stride, 1));
	read_object(victim.object, three, stride, block_offset(stride, 3));
	write_object(victim.object, three, stride, block_offset(stride, 1));
	write_object(victim.object, one, stride, block_offset(stride, 3));
	free(one);
	free(three);
	size_t since = mount_tampered();
	check_file(&fx, &victim, (UINT32_C(1) << 1) | (UINT32_C(1) << 3));
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_block_from_other_file)
{
	SKIP_IF_PLAIN();
	struct tracked donor = { "donor", VICTIM_BLOCKS * BLOCK, 300, "", "" };
	write_tracked(&fx, &donor);
	size_t stride = prepare();
	uint8_t *block = malloc(stride);
	ck_assert(block != NULL);
	read_object(donor.object, block, stride, block_offset(stride, 2));
	write_object(victim.object, block, stride, block_offset(stride, 2));
	free(block);
	size_t since = mount_tampered();
	check_file(&fx, &victim, UINT32_C(1) << 2);
	assert_intact(&fx, &donor);
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_block_from_other_vault)
{
	SKIP_IF_PLAIN();
	static struct fixture other;
	/* the same name, size and content in a second vault with its own key */
	struct tracked twin = victim;
	fixture_create(&other, NULL, true);
	write_tracked(&other, &twin);
	fixture_unmount(&other);
	size_t stride = prepare();
	uint8_t *block = malloc(stride);
	ck_assert(block != NULL);
	read_object(twin.object, block, stride, block_offset(stride, 2));
	write_object(victim.object, block, stride, block_offset(stride, 2));
	free(block);
	fixture_destroy(&other);
	size_t since = mount_tampered();
	check_file(&fx, &victim, UINT32_C(1) << 2);
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_objects_swapped)
{
	SKIP_IF_PLAIN();
	struct tracked twin = { "twin", VICTIM_BLOCKS * BLOCK, 400, "", "" };
	write_tracked(&fx, &twin);
	prepare();
	char temp[PATH_MAX + 8];
	snprintf(temp, sizeof(temp), "%s.tmp", victim.object);
	ck_assert_int_eq(rename(victim.object, temp), 0);
	ck_assert_int_eq(rename(twin.object, victim.object), 0);
	ck_assert_int_eq(rename(temp, twin.object), 0);
	size_t since = mount_tampered();
	check_file(&fx, &victim, ALL_BLOCKS);
	check_file(&fx, &twin, ALL_BLOCKS);
	assert_intact(&fx, &bystander);
	ck_assert_msg(fixture_log_contains(&fx, since, victim.id) ||
			      fixture_log_contains(&fx, since, twin.id),
		      "the daemon log names neither swapped object");
}
END_TEST

START_TEST(test_truncated_at_block_boundary)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	ck_assert_int_eq(truncate(victim.object, block_offset(stride, 3)), 0);
	size_t since = mount_tampered();
	check_file(&fx, &victim, (UINT32_C(1) << 3) | (UINT32_C(1) << 4) | (UINT32_C(1) << 5));
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_truncated_mid_block)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	ck_assert_int_eq(truncate(victim.object, block_offset(stride, 3) + (off_t)stride / 2), 0);
	size_t since = mount_tampered();
	check_file(&fx, &victim, (UINT32_C(1) << 3) | (UINT32_C(1) << 4) | (UINT32_C(1) << 5));
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_extended_by_one_block)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	uint8_t *noise = malloc(stride);
	ck_assert(noise != NULL);
	pattern_fill(noise, stride, 500, 0);
	write_object(victim.object, noise, stride, block_offset(stride, VICTIM_BLOCKS));
	free(noise);
	size_t since = mount_tampered();
	/* the extra block lies past the end of the file: it is the object's length that
	 * is wrong, so some access to the file must fail, and none may return wrong data */
	int failed = check_file(&fx, &victim, 0);
	ck_assert_msg(failed > 0, "an object extended by one block still reads without error");
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

START_TEST(test_zeroed_block)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	uint8_t *zeros = calloc(1, stride);
	ck_assert(zeros != NULL);
	write_object(victim.object, zeros, stride, block_offset(stride, 2));
	write_object(victim.object, zeros, stride, block_offset(stride, 5));
	free(zeros);
	size_t since = mount_tampered();
	check_file(&fx, &victim, (UINT32_C(1) << 2) | (UINT32_C(1) << 5));
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

/* The object header names the object: a flipped bit in its id must not go unnoticed. */
START_TEST(test_header_bit_flip)
{
	SKIP_IF_PLAIN();
	prepare();
	uint8_t byte;
	const off_t in_object_id = 24; /* magic(8), 4 x u32, then the object id */
	read_object(victim.object, &byte, 1, in_object_id);
	byte ^= 0x01;
	write_object(victim.object, &byte, 1, in_object_id);
	size_t since = mount_tampered();
	int failed = check_file(&fx, &victim, 0);
	ck_assert_msg(failed > 0, "a flipped bit in the object header went unnoticed");
	assert_intact(&fx, &bystander);
	assert_logged(&fx, since, &victim);
}
END_TEST

/* A tampered file stays broken for later reads and does not break the mount. */
START_TEST(test_mount_survives_tampering)
{
	SKIP_IF_PLAIN();
	size_t stride = prepare();
	uint8_t byte;
	read_object(victim.object, &byte, 1, block_offset(stride, 0) + 50);
	byte ^= 0x01;
	write_object(victim.object, &byte, 1, block_offset(stride, 0) + 50);
	mount_tampered();
	for (int i = 0; i < 3; i++)
		check_file(&fx, &victim, UINT32_C(1) << 0);
	ck_assert_int_eq(pattern_write_file(mnt_path("after"), 10000, 600), 0);
	ck_assert_int_eq(pattern_verify_file(mnt_path("after"), 10000, 600), 0);
	assert_intact(&fx, &bystander);
	/* the broken file can still be removed */
	ck_assert_int_eq(unlink(mnt_path("victim")), 0);
}
END_TEST

/* ---- nonce budget ---- */

/* With the per-file-key limit lowered to 50 encryptions (-o budget_limit, a testing
 * option), rewriting a 4-block file 40 times (160 encryptions) must move it to fresh
 * objects under fresh keys, drop the old objects, and keep the data. */
START_TEST(test_nonce_budget_enforced)
{
	SKIP_IF_PLAIN();
	fixture_unmount(&fx);
	snprintf(fx.options, sizeof(fx.options), "budget_limit=50");
	fixture_mount(&fx);
	struct tracked file = { "rewritten", 4 * BLOCK, 0, "", "" };
	write_tracked(&fx, &file);
	char first_id[FIXTURE_ID_HEX_LEN + 1], ids[MAX_OBJECTS][FIXTURE_ID_HEX_LEN + 1];
	memcpy(first_id, file.id, sizeof(first_id));
	int changes = 0;
	char last_id[FIXTURE_ID_HEX_LEN + 1];
	memcpy(last_id, first_id, sizeof(last_id));
	for (int round = 1; round <= 40; round++) {
		ck_assert_int_eq(pattern_write_file(mnt_path("rewritten"), 4 * BLOCK, (uint64_t)round), 0);
		ck_assert_int_eq(fixture_object_ids(&fx, ids, MAX_OBJECTS), 1);
		if (strcmp(ids[0], last_id) != 0) {
			changes++;
			memcpy(last_id, ids[0], sizeof(last_id));
		}
		if (round == 20)
			fixture_remount(&fx); /* the count of encryptions survives a remount */
	}
	ck_assert_msg(changes >= 2, "160 encryptions under a limit of 50 changed the object %d "
		      "times, want at least 2", changes);
	fixture_remount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("rewritten"), 4 * BLOCK, 40), 0);
	ck_assert_int_eq(fixture_object_ids(&fx, ids, MAX_OBJECTS), 1);
}
END_TEST

/* Several writers of one file at once, each rewriting its own 1 MiB region and syncing
 * it (so that writeback has several WRITEs of the file in flight), under a limit of 1500
 * encryptions per file key: the key changes many times while requests are being sealed.
 * Every region must read back as its writer's last round, from a single object. */
enum { RACE_WRITERS = 4, RACE_ROUNDS = 24, RACE_REGION = 1024 * 1024 };

struct race_writer {
	pthread_t thread;
	int index;
	int result;
};

/* Each round: write the region, sync it, and read it back from the daemon (O_DIRECT, past
 * the page cache), so that a block written under a stale key fails that round. */
static void *race_write(void *arg)
{
	struct race_writer *w = arg;
	void *buf = NULL, *back = NULL;
	w->result = -1;
	int fd = open(mnt_path("raced"), O_WRONLY | O_CLOEXEC);
	int direct = open(mnt_path("raced"), O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || direct < 0 || (buf = malloc(RACE_REGION)) == NULL ||
	    posix_memalign(&back, 4096, RACE_REGION) != 0)
		goto out;
	off_t at = (off_t)w->index * RACE_REGION;
	for (int round = 1; round <= RACE_ROUNDS; round++) {
		uint64_t seed = (uint64_t)(100 * w->index + round);
		pattern_fill(buf, RACE_REGION, seed, (uint64_t)at);
		if (pwrite(fd, buf, RACE_REGION, at) != RACE_REGION || fdatasync(fd) != 0 ||
		    pread(direct, back, RACE_REGION, at) != RACE_REGION ||
		    pattern_check(back, RACE_REGION, seed, (uint64_t)at) != -1)
			goto out;
	}
	w->result = 0;
out:
	free(buf);
	free(back);
	if (fd >= 0)
		close(fd);
	if (direct >= 0)
		close(direct);
	return NULL;
}

START_TEST(test_concurrent_writers_across_key_changes)
{
	SKIP_IF_PLAIN();
	fixture_unmount(&fx);
	snprintf(fx.options, sizeof(fx.options), "budget_limit=1500");
	fixture_mount(&fx);
	ck_assert_int_eq(pattern_write_file(mnt_path("raced"), RACE_WRITERS * RACE_REGION, 1), 0);
	struct race_writer writers[RACE_WRITERS];
	for (int i = 0; i < RACE_WRITERS; i++) {
		writers[i] = (struct race_writer){ .index = i };
		ck_assert_int_eq(pthread_create(&writers[i].thread, NULL, race_write, &writers[i]), 0);
	}
	for (int i = 0; i < RACE_WRITERS; i++) {
		pthread_join(writers[i].thread, NULL);
		ck_assert_msg(writers[i].result == 0, "writer %d failed", i);
	}
	char ids[MAX_OBJECTS][FIXTURE_ID_HEX_LEN + 1];
	for (int pass = 0; pass < 2; pass++) {
		static uint8_t whole[RACE_WRITERS * RACE_REGION];
		int fd = open(mnt_path("raced"), O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pread_full(fd, whole, sizeof(whole), 0), (ssize_t)sizeof(whole));
		close(fd);
		for (int i = 0; i < RACE_WRITERS; i++)
			ck_assert_msg(pattern_check(whole + (size_t)i * RACE_REGION, RACE_REGION,
						    (uint64_t)(100 * i + RACE_ROUNDS),
						    (uint64_t)i * RACE_REGION) == -1,
				      "region %d is not its writer's last round (pass %d)", i, pass);
		ck_assert_int_eq(fixture_object_ids(&fx, ids, MAX_OBJECTS), 1);
		fixture_remount(&fx);
	}
}
END_TEST

/* ---- confidentiality ---- */

static char marker[40];

static void make_marker(void)
{
	uint8_t random_bytes[10];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, random_bytes, sizeof(random_bytes)), (ssize_t)sizeof(random_bytes));
	close(fd);
	int len = snprintf(marker, sizeof(marker), "PHI");
	for (size_t i = 0; i < sizeof(random_bytes); i++)
		len += snprintf(marker + len, sizeof(marker) - (size_t)len, "%02x", random_bytes[i]);
}

static void write_text(const char *path, const char *text, size_t repeat)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	size_t len = strlen(text);
	for (size_t i = 0; i < repeat; i++)
		ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static int marker_hits;
static char marker_where[PATH_MAX];

static int scan_for_marker(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	size_t len = 0;
	char *data = fixture_read_text(path, &len);
	ck_assert_msg(data != NULL, "read %s", path);
	if (memmem(data, len, marker, strlen(marker)) != NULL) {
		marker_hits++;
		snprintf(marker_where, sizeof(marker_where), "%s", path);
	}
	free(data);
	return 0;
}

START_TEST(test_nothing_readable_leaks)
{
	SKIP_IF_PLAIN();
	make_marker();
	char name[128], text[128];
	snprintf(name, sizeof(name), "patient-%s.csv", marker);
	snprintf(text, sizeof(text), "name,%s,diagnosis\n", marker);
	ck_assert_int_eq(mkdir(mnt_path("ward-%s", marker), 0755), 0);
	write_text(mnt_path("ward-%s/%s", marker, name), text, 5000);   /* ~150 KiB */
	write_text(mnt_path("short"), marker, 1);                         /* one small block */
	write_text(mnt_path("%s", marker), "x", 1);                       /* bare marker name */
	ck_assert_int_eq(symlink(mnt_path("ward-%s/%s", marker, name), mnt_path("link")), 0);
	ck_assert_int_eq(symlink("x", mnt_path("link-%s", marker)), 0);
	ck_assert_int_eq(link(mnt_path("short"), mnt_path("hard-%s", marker)), 0);
	ck_assert_int_eq(rename(mnt_path("%s", marker), mnt_path("renamed-%s", marker)), 0);
	char xattr_name[128];
	snprintf(xattr_name, sizeof(xattr_name), "user.%s", marker);
	ck_assert_int_eq(setxattr(mnt_path("short"), xattr_name, marker, strlen(marker), 0), 0);
	ck_assert_int_eq(setxattr(mnt_path("ward-%s", marker), "user.note", text, strlen(text), 0), 0);
	write_text(mnt_path("gone-%s", marker), text, 10);
	ck_assert_int_eq(unlink(mnt_path("gone-%s", marker)), 0);
	/* the data is all there... */
	char got[128];
	ck_assert_int_eq(getxattr(mnt_path("short"), xattr_name, got, sizeof(got)),
			 (ssize_t)strlen(marker));
	fixture_remount(&fx);
	ck_assert_int_eq(access(mnt_path("ward-%s/%s", marker, name), R_OK), 0);
	ck_assert_int_eq(readlink(mnt_path("link-%s", marker), got, sizeof(got)), 1);
	fixture_unmount(&fx);
	/* ...and none of it is readable in the backing store or the log */
	marker_hits = 0;
	ck_assert_int_eq(nftw(fx.vault, scan_for_marker, 32, FTW_PHYS), 0);
	ck_assert_msg(marker_hits == 0, "the marker is readable in %s (%d files)", marker_where,
		      marker_hits);
	ck_assert_msg(!fixture_log_contains(&fx, 0, marker), "the daemon log shows the marker");
	ck_assert_msg(!fixture_log_contains(&fx, 0, "ward-"), "the daemon log shows a name");
	/* the scan does find the marker where it is in the clear */
	char control[PATH_MAX];
	snprintf(control, sizeof(control), "%s/control", fx.root);
	ck_assert_int_eq(mkdir(control, 0700), 0);
	write_text(mnt_path("../control/clear"), text, 3);
	ck_assert_int_eq(nftw(control, scan_for_marker, 32, FTW_PHYS), 0);
	ck_assert_int_eq(marker_hits, 1);
	fixture_mount(&fx);
}
END_TEST

static Suite *integrity_suite(void)
{
	Suite *suite = suite_create("mount_integrity");
	TCase *tamper = tcase_create("tamper");
	tcase_add_checked_fixture(tamper, fixture_setup, fixture_teardown);
	tcase_set_timeout(tamper, 60);
	tcase_add_test(tamper, test_bit_flip);
	tcase_add_test(tamper, test_bit_flip_everywhere);
	tcase_add_test(tamper, test_blocks_swapped);
	tcase_add_test(tamper, test_block_from_other_file);
	tcase_add_test(tamper, test_block_from_other_vault);
	tcase_add_test(tamper, test_objects_swapped);
	tcase_add_test(tamper, test_truncated_at_block_boundary);
	tcase_add_test(tamper, test_truncated_mid_block);
	tcase_add_test(tamper, test_extended_by_one_block);
	tcase_add_test(tamper, test_zeroed_block);
	tcase_add_test(tamper, test_header_bit_flip);
	tcase_add_test(tamper, test_mount_survives_tampering);
	suite_add_tcase(suite, tamper);

	TCase *budget = tcase_create("nonce_budget");
	tcase_add_checked_fixture(budget, fixture_setup, fixture_teardown);
	tcase_set_timeout(budget, 60);
	tcase_add_test(budget, test_nonce_budget_enforced);
	tcase_add_test(budget, test_concurrent_writers_across_key_changes);
	suite_add_tcase(suite, budget);

	TCase *secrecy = tcase_create("confidentiality");
	tcase_add_checked_fixture(secrecy, fixture_setup, fixture_teardown);
	tcase_set_timeout(secrecy, 60);
	tcase_add_test(secrecy, test_nothing_readable_leaks);
	suite_add_tcase(suite, secrecy);
	return suite;
}

int main(void)
{
	return harness_run(integrity_suite());
}
