/*
 * Unit tests of rekeying (lib/rekey.h) on real vault directories: every object and
 * metadata value moves to the newest key version and the header's key check with them,
 * so the vault opens and reads with the newest version alone; data (holes included) is
 * unchanged; an interrupted run resumes and sweeps what it left; a damaged object or
 * metadata value stops nothing silently; no plaintext reaches the new objects.
 */
#include "lib/rekey.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/extent.h"
#include "lib/keysource.h"
#include "lib/secret.h"
#include "lib/store.h"
#include "lib/vault.h"
#include "tests/harness.h"

#define MARKER "PHI-MARKER-7f3a9c"

static char test_dir[64];
static char vault_dir[128];
static struct keysource *keys;     /* versions 1 and 2 */
static struct vault *vault;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void add_version(struct keysource *source, uint32_t version)
{
	uint8_t key[CRYPTO_KEY_LEN];

	memset(key, (int)(0x40 + version), sizeof(key));
	ck_assert_int_eq(keysource_memory_add(source, version, key), 0);
}

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
	strcpy(test_dir, "/tmp/check_rekey.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(vault_dir, sizeof(vault_dir), "%s/v", test_dir);
	ck_assert_int_eq(keysource_memory_new(&keys), 0);
	add_version(keys, 1);
	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_AES256GCM, 0, keys, 0, 0), 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
}

static void teardown(void)
{
	vault_close(vault);
	vault = NULL;
	keysource_free(keys);
	keys = NULL;
	nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct object_key *file_key(struct vault *v, const struct meta_inode *rec)
{
	struct object_header header;
	struct object_key *key;
	uint8_t *dek = secret_alloc(CRYPTO_KEY_LEN);

	ck_assert_ptr_nonnull(dek);
	vault_object_header(v, rec, &header);
	ck_assert_int_eq(keysource_get(v->keys, rec->key_version, dek), 0);
	ck_assert_int_eq(object_key_new(&key, &header, dek), 0);
	secret_free(dek);
	return key;
}

/* The content of byte i of a test file. */
static uint8_t pattern(uint64_t ino, size_t i)
{
	return (uint8_t)(ino * 31 + i * 7 + i / OBJECT_BLOCK_SIZE);
}

/* A regular file of len bytes under the newest version, as the daemon writes it; block
 * hole_block (UINT64_MAX: none) is left a hole. An xattr goes with it. */
static uint64_t make_file(size_t len, uint64_t hole_block)
{
	struct meta_inode rec = { 0 };
	struct meta_txn *txn;
	uint8_t plain[OBJECT_BLOCK_SIZE];
	size_t stride = object_block_stride(CRYPTO_AES256GCM);
	uint8_t *sealed = malloc(stride);
	uint64_t count = object_block_count(len);
	int fd;

	ck_assert_ptr_nonnull(sealed);
	ck_assert_int_eq(meta_txn_begin(vault->meta, true, &txn), 0);
	ck_assert_int_eq(meta_ino_alloc(txn, &rec.ino), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
	rec.mode = S_IFREG | 0600;
	rec.nlink = 1;
	rec.parent = META_ROOT_INO;
	rec.size = len;
	fd = vault_object_create(vault, &rec);
	ck_assert_int_ge(fd, 0);
	struct object_key *key = file_key(vault, &rec);
	for (uint64_t b = 0; b < count; b++) {
		if (b == hole_block) {
			ck_assert_int_eq(extent_add(&rec, b, b + 1), 0);
			continue;
		}
		memset(plain, 0, sizeof(plain));
		for (size_t i = 0; i < OBJECT_BLOCK_SIZE && b * OBJECT_BLOCK_SIZE + i < len; i++)
			plain[i] = pattern(rec.ino, b * OBJECT_BLOCK_SIZE + i);
		if (b == 0 && len >= sizeof(MARKER))
			memcpy(plain, MARKER, sizeof(MARKER) - 1);
		ck_assert_int_eq(object_block_seal(sealed, plain, b, key), 0);
		ck_assert_int_eq(pwrite(fd, sealed, stride, object_block_offset(CRYPTO_AES256GCM, b)),
				 (ssize_t)stride);
	}
	rec.object_max_len = (uint64_t)object_block_offset(CRYPTO_AES256GCM, count);
	rec.budget_reserved = OBJECT_BUDGET_STEP;
	object_key_free(key);
	close(fd);
	free(sealed);
	ck_assert_int_eq(meta_txn_begin(vault->meta, true, &txn), 0);
	ck_assert_int_eq(meta_inode_put(txn, &rec), 0);
	ck_assert_int_eq(meta_xattr_set(txn, rec.ino, "user.note", (const uint8_t *)MARKER,
					sizeof(MARKER) - 1, 0), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
	uint64_t ino = rec.ino;
	meta_inode_release(&rec);
	return ino;
}

static void get_record(struct vault *v, uint64_t ino, struct meta_inode *rec)
{
	struct meta_txn *txn;

	ck_assert_int_eq(meta_txn_begin(v->meta, false, &txn), 0);
	ck_assert_int_eq(meta_inode_get(txn, ino, rec), 0);
	meta_txn_abort(txn);
}

/* Read the whole file back through v and compare it with what make_file wrote. */
static void check_file(struct vault *v, uint64_t ino, size_t len, uint64_t hole_block)
{
	struct meta_inode rec;
	const char *why = NULL;
	size_t stride = object_block_stride(CRYPTO_AES256GCM);
	uint8_t plain[OBJECT_BLOCK_SIZE];
	uint8_t *sealed = malloc(stride);

	ck_assert_ptr_nonnull(sealed);
	get_record(v, ino, &rec);
	ck_assert_uint_eq(rec.size, len);
	int fd = vault_object_attach(v, &rec, O_RDONLY, &why);
	ck_assert_int_ge(fd, 0);
	struct object_key *key = file_key(v, &rec);
	for (uint64_t b = 0; b < object_block_count(len); b++) {
		if (b == hole_block) {
			ck_assert(extent_is_hole(&rec, b));
			continue;
		}
		ck_assert(!extent_is_hole(&rec, b));
		ck_assert_int_eq(pread(fd, sealed, stride, object_block_offset(CRYPTO_AES256GCM, b)),
				 (ssize_t)stride);
		ck_assert_int_eq(object_block_open(plain, sealed, b, key), 0);
		for (size_t i = 0; i < OBJECT_BLOCK_SIZE && b * OBJECT_BLOCK_SIZE + i < len; i++) {
			size_t at = b * OBJECT_BLOCK_SIZE + i;
			uint8_t want = (b == 0 && i < sizeof(MARKER) - 1) ? (uint8_t)MARKER[i]
									  : pattern(ino, at);
			ck_assert_uint_eq(plain[i], want);
		}
	}
	object_key_free(key);
	close(fd);
	free(sealed);
	meta_inode_release(&rec);
}

static const struct vault_key_use *use_of(const struct vault_key_use *uses, size_t count,
					  uint32_t version)
{
	for (size_t i = 0; i < count; i++)
		if (uses[i].version == version)
			return &uses[i];
	return NULL;
}

/* The uses of version in the vault directory, zeros when none. */
static struct vault_key_use uses_of(uint32_t version)
{
	struct vault_key_use *uses, found = { .version = version };
	size_t count;

	ck_assert_int_eq(vault_key_versions_in_use(vault_dir, &uses, &count), 0);
	const struct vault_key_use *use = use_of(uses, count, version);
	if (use)
		found = *use;
	free(uses);
	return found;
}

static uint64_t object_count(void)
{
	uint64_t count;

	ck_assert_int_eq(vault_object_count(vault_dir, &count), 0);
	return count;
}

struct reports {
	uint64_t calls;
	uint64_t last_done;
	uint64_t total;
	uint64_t stop_after;   /* 0: never stop */
};

static int record_report(void *arg, const struct rekey_progress *p)
{
	struct reports *r = arg;

	ck_assert_uint_eq(p->version, 2);
	ck_assert_uint_le(p->done, p->total);
	ck_assert_uint_ge(p->done, r->last_done);
	if (r->calls > 0)
		ck_assert_uint_eq(p->total, r->total);
	r->total = p->total;
	r->last_done = p->done;
	r->calls++;
	return r->stop_after && r->calls >= r->stop_after ? -ECANCELED : 0;
}

/* A source holding version 2 only: what is left after version 1 is retired. */
static struct keysource *only_version_2(void)
{
	struct keysource *source;

	ck_assert_int_eq(keysource_memory_new(&source), 0);
	add_version(source, 2);
	return source;
}

START_TEST(test_rekey_moves_everything)
{
	uint64_t empty = make_file(0, UINT64_MAX);
	uint64_t small = make_file(3 * OBJECT_BLOCK_SIZE + 100, UINT64_MAX);
	uint64_t sparse = make_file(5 * OBJECT_BLOCK_SIZE, 2);
	uint64_t files, values;
	struct reports reports = { 0 };

	add_version(keys, 2);
	ck_assert_int_eq(rekey_count(vault, 2, &files, &values), 0);
	ck_assert_uint_eq(files, 3);
	ck_assert_uint_ge(values, 3 + 3 + 3);   /* vault records, inodes, xattrs */
	ck_assert_uint_gt(uses_of(1).objects, 0);

	ck_assert_int_eq(rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, record_report, &reports), 0);
	ck_assert_uint_eq(reports.total, files + values);
	ck_assert_uint_eq(reports.last_done, reports.total);
	ck_assert_uint_ge(reports.calls, 1 + 3);

	struct vault_key_use old = uses_of(1), now = uses_of(2);
	ck_assert_uint_eq(old.objects, 0);
	ck_assert_uint_eq(old.records, 0);
	ck_assert(!old.header);
	ck_assert_uint_eq(now.objects, 3);
	ck_assert(now.header);
	ck_assert_uint_eq(object_count(), 3);   /* the old objects are gone */
	ck_assert_int_eq(rekey_count(vault, 2, &files, &values), 0);
	ck_assert_uint_eq(files + values, 0);

	/* Version 1 retired: the vault opens and reads with version 2 alone. */
	struct keysource *retired = only_version_2();
	struct vault *reopened;
	vault_close(vault);
	vault = NULL;
	ck_assert_int_eq(vault_open(&reopened, vault_dir, retired, 0), 0);
	check_file(reopened, empty, 0, UINT64_MAX);
	check_file(reopened, small, 3 * OBJECT_BLOCK_SIZE + 100, UINT64_MAX);
	check_file(reopened, sparse, 5 * OBJECT_BLOCK_SIZE, 2);
	uint8_t *value;
	size_t value_len;
	struct meta_txn *txn;
	ck_assert_int_eq(meta_txn_begin(reopened->meta, false, &txn), 0);
	ck_assert_int_eq(meta_xattr_get(txn, small, "user.note", &value, &value_len), 0);
	ck_assert_mem_eq(value, MARKER, sizeof(MARKER) - 1);
	free(value);
	meta_txn_abort(txn);
	vault_close(reopened);
	keysource_free(retired);

	/* And a source with version 1 alone no longer opens it. */
	struct keysource *old_only;
	ck_assert_int_eq(keysource_memory_new(&old_only), 0);
	add_version(old_only, 1);
	ck_assert_int_eq(vault_open(&reopened, vault_dir, old_only, 0), -ENOKEY);
	keysource_free(old_only);
}
END_TEST

START_TEST(test_rekey_resumes_and_sweeps)
{
	uint64_t inos[6];
	struct reports stopped = { .stop_after = 4 }, resumed = { 0 };
	struct meta_inode rec;

	for (int i = 0; i < 6; i++)
		inos[i] = make_file((size_t)(i + 1) * 1500, UINT64_MAX);
	add_version(keys, 2);

	/* Left by an interrupted run an hour ago: a copy never recorded. And one made just
	 * now, as by a create in flight, which the sweep must spare. */
	get_record(vault, inos[0], &rec);
	struct meta_inode stray = { 0 };
	ck_assert_int_eq(meta_inode_copy(&stray, &rec), 0);
	int fd = vault_object_create(vault, &stray);
	ck_assert_int_ge(fd, 0);
	struct timespec old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	ck_assert_int_eq(futimens(fd, old), 0);
	close(fd);
	fd = vault_object_create(vault, &stray);   /* newest version: 2 */
	ck_assert_int_ge(fd, 0);
	/* Dated a minute ahead: "just now" whenever the runs below start, even on a slow
	 * (sanitized) build that crosses a second boundary first. */
	struct timespec ahead[2] = { { time(NULL) + 60, 0 }, { time(NULL) + 60, 0 } };
	ck_assert_int_eq(futimens(fd, ahead), 0);
	close(fd);
	meta_inode_release(&stray);
	meta_inode_release(&rec);
	uint64_t before = object_count();
	ck_assert_uint_eq(before, 8);

	/* Stopped after a few steps: some files moved, the header not yet. */
	ck_assert_int_eq(rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, record_report, &stopped),
			 -ECANCELED);
	ck_assert(uses_of(1).header);
	ck_assert_uint_gt(uses_of(1).objects, 0);
	for (int i = 0; i < 6; i++)
		check_file(vault, inos[i], (size_t)(i + 1) * 1500, UINT64_MAX);

	/* Run again: it picks up what is left. */
	ck_assert_int_eq(rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, record_report, &resumed), 0);
	ck_assert_uint_lt(resumed.total, stopped.total);
	ck_assert_uint_eq(uses_of(1).objects, 0);
	ck_assert_uint_eq(uses_of(1).records, 0);
	ck_assert(!uses_of(1).header);
	/* Six files plus the fresh stray; the old stray was swept. */
	ck_assert_uint_eq(object_count(), 7);
	for (int i = 0; i < 6; i++)
		check_file(vault, inos[i], (size_t)(i + 1) * 1500, UINT64_MAX);
}
END_TEST

START_TEST(test_rekey_damaged_object)
{
	uint64_t good = make_file(2 * OBJECT_BLOCK_SIZE, UINT64_MAX);
	uint64_t bad = make_file(2 * OBJECT_BLOCK_SIZE, UINT64_MAX);
	struct meta_inode rec;
	char path[VAULT_OBJECT_PATH_LEN];
	uint8_t byte;

	add_version(keys, 2);
	get_record(vault, bad, &rec);
	vault_object_path(path, rec.object_id);
	int fd = openat(vault->objects_fd, path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	off_t at = object_block_offset(CRYPTO_AES256GCM, 1) + 40;
	ck_assert_int_eq(pread(fd, &byte, 1, at), 1);
	byte ^= 0x01;
	ck_assert_int_eq(pwrite(fd, &byte, 1, at), 1);
	close(fd);

	/* The damaged file stays as it was, the others move, the header stays. */
	ck_assert_int_eq(rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, NULL, NULL), -EIO);
	meta_inode_release(&rec);
	get_record(vault, bad, &rec);
	ck_assert_uint_eq(rec.key_version, 1);
	meta_inode_release(&rec);
	get_record(vault, good, &rec);
	ck_assert_uint_eq(rec.key_version, 2);
	meta_inode_release(&rec);
	check_file(vault, good, 2 * OBJECT_BLOCK_SIZE, UINT64_MAX);
	ck_assert(uses_of(1).header);
	ck_assert_uint_eq(uses_of(1).objects, 1);
}
END_TEST

START_TEST(test_rekey_tampered_metadata)
{
	uint64_t ino = make_file(100, UINT64_MAX);
	struct store_txn *txn;
	struct store_slice key, value;
	struct store_cursor *cursor;
	uint8_t copy[1024];

	add_version(keys, 2);
	/* Flip one ciphertext bit of the xattr value. */
	ck_assert_int_eq(store_txn_begin(vault->store, true, &txn), 0);
	ck_assert_int_eq(store_cursor_open(txn, STORE_XATTRS, &cursor), 0);
	ck_assert_int_eq(store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &key, &value), 0);
	ck_assert_uint_le(value.len, sizeof(copy));
	memcpy(copy, value.data, value.len);
	copy[value.len - 1] ^= 0x80;
	uint8_t key_copy[64];
	memcpy(key_copy, key.data, key.len);
	size_t key_len = key.len, value_len = value.len;
	store_cursor_close(cursor);
	ck_assert_int_eq(store_put(txn, STORE_XATTRS, (struct store_slice){ key_copy, key_len },
				   (struct store_slice){ copy, value_len }, 0), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);

	ck_assert_int_eq(rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, NULL, NULL), -EBADMSG);
	/* Nothing was re-sealed from a value that failed to authenticate, and no file
	 * moved: the run stops before the objects. */
	struct meta_inode rec;
	get_record(vault, ino, &rec);
	ck_assert_uint_eq(rec.key_version, 1);
	meta_inode_release(&rec);
	ck_assert(uses_of(1).header);
}
END_TEST

START_TEST(test_rekey_no_plaintext)
{
	char command[512];

	make_file(OBJECT_BLOCK_SIZE + 10, UINT64_MAX);
	add_version(keys, 2);
	ck_assert_int_eq(rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, NULL, NULL), 0);
	store_sync(vault->store);
	snprintf(command, sizeof(command), "grep -rqa '%s' '%s'", MARKER, vault_dir);
	ck_assert_int_eq(system(command), 1 << 8);   /* grep: no match */
}
END_TEST

START_TEST(test_rebind_header)
{
	struct vault_header header;
	struct vault *reopened;
	struct keysource *retired = only_version_2();

	add_version(keys, 2);
	ck_assert_int_eq(vault_rebind(vault, 3), -ENOKEY);
	ck_assert_int_eq(vault_header_read(vault_dir, &header), 0);
	ck_assert_uint_eq(header.check_version, 1);
	ck_assert_int_eq(vault_rebind(vault, 2), 0);
	ck_assert_int_eq(vault_header_read(vault_dir, &header), 0);
	ck_assert_uint_eq(header.check_version, 2);
	ck_assert_int_eq(vault_rebind(vault, 2), 0);

	/* The header alone opens with version 2 (its metadata still needs version 1). */
	ck_assert_int_eq(vault_open(&reopened, vault_dir, retired, 0), -ENOKEY);
	keysource_free(retired);
	ck_assert_int_eq(vault_open(&reopened, vault_dir, keys, 0), 0);
	vault_close(reopened);

	/* The version is under the MAC: pointing it back at version 1 is refused. */
	char path[256];
	uint8_t bytes[VAULT_HEADER_LEN];
	snprintf(path, sizeof(path), "%s/%s", vault_dir, VAULT_HEADER_FILE);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, bytes, sizeof(bytes), 0), VAULT_HEADER_LEN);
	bytes[44] = 0;
	ck_assert_int_eq(pwrite(fd, bytes, sizeof(bytes), 0), VAULT_HEADER_LEN);
	close(fd);
	ck_assert_int_lt(vault_open(&reopened, vault_dir, keys, 0), 0);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("rekey");
	TCase *tc = tcase_create("rekey");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rekey_moves_everything);
	tcase_add_test(tc, test_rekey_resumes_and_sweeps);
	tcase_add_test(tc, test_rekey_damaged_object);
	tcase_add_test(tc, test_rekey_tampered_metadata);
	tcase_add_test(tc, test_rekey_no_plaintext);
	tcase_add_test(tc, test_rebind_header);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
