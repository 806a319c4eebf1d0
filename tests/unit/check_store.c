/*
 * Unit tests of the metadata store: what meta.c and the keystore rely on from LMDB, seen
 * through the store contract (errors as -errno, key order, persistence, read-only, map
 * full, a map that grows under readers and other processes, a full disk, schemas,
 * compaction that leaves no freed bytes in the files, LMDB's files as symbolic links
 * refused and not followed).
 */
#include "lib/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"

static char test_dir[64];
static char store_dir[128];

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	strcpy(test_dir, "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(store_dir, sizeof(store_dir), "%s/meta", test_dir);
}

static void teardown(void)
{
	nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct store_slice str_slice(const char *s)
{
	struct store_slice slice = { .data = s, .len = strlen(s) };
	return slice;
}

static bool slice_is(struct store_slice slice, const char *s)
{
	return slice.len == strlen(s) && memcmp(slice.data, s, slice.len) == 0;
}

static void put_str(struct store_txn *txn, enum store_table table, const char *k,
		    const char *v)
{
	ck_assert_int_eq(store_put(txn, table, str_slice(k), str_slice(v), 0), 0);
}

START_TEST(test_open_missing)
{
	struct store *store;

	ck_assert_int_eq(store_open(&store, store_dir, 0), -ENOENT);
	ck_assert_ptr_null(store);
	ck_assert_int_eq(store_open(&store, store_dir, STORE_READ_ONLY), -ENOENT);
	/* An existing but empty directory is no store either. */
	ck_assert_int_eq(mkdir(store_dir, 0700), 0);
	ck_assert_int_eq(store_open(&store, store_dir, 0), -ENOENT);
}
END_TEST

START_TEST(test_put_get_del)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_INODES, "alpha", "one");
	put_str(txn, STORE_DIRENTS, "alpha", "other table");
	ck_assert_int_eq(store_get(txn, STORE_INODES, str_slice("alpha"), &val), 0);
	ck_assert(slice_is(val, "one"));
	ck_assert_int_eq(store_get(txn, STORE_DIRENTS, str_slice("alpha"), &val), 0);
	ck_assert(slice_is(val, "other table"));
	ck_assert_int_eq(store_get(txn, STORE_XATTRS, str_slice("alpha"), &val), -ENOENT);
	/* Overwrite without the flag, refuse with it. */
	put_str(txn, STORE_INODES, "alpha", "two");
	ck_assert_int_eq(store_put(txn, STORE_INODES, str_slice("alpha"), str_slice("three"),
				   STORE_NO_OVERWRITE), -EEXIST);
	ck_assert_int_eq(store_get(txn, STORE_INODES, str_slice("alpha"), &val), 0);
	ck_assert(slice_is(val, "two"));
	/* Empty values are allowed (orphans). */
	ck_assert_int_eq(store_put(txn, STORE_ORPHANS, str_slice("x"),
				   (struct store_slice){ NULL, 0 }, 0), 0);
	ck_assert_int_eq(store_get(txn, STORE_ORPHANS, str_slice("x"), &val), 0);
	ck_assert_uint_eq(val.len, 0);
	ck_assert_int_eq(store_del(txn, STORE_INODES, str_slice("alpha")), 0);
	ck_assert_int_eq(store_del(txn, STORE_INODES, str_slice("alpha")), -ENOENT);
	ck_assert_int_eq(store_get(txn, STORE_INODES, str_slice("alpha"), &val), -ENOENT);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
}
END_TEST

START_TEST(test_key_limits)
{
	struct store *store;
	struct store_txn *txn;
	uint8_t key[512];
	struct store_slice val;

	memset(key, 'k', sizeof(key));
	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_put(txn, STORE_META, (struct store_slice){ key, 511 },
				   str_slice("v"), 0), 0);
	ck_assert_int_eq(store_put(txn, STORE_META, (struct store_slice){ key, 512 },
				   str_slice("v"), 0), -EINVAL);
	ck_assert_int_eq(store_put(txn, STORE_META, (struct store_slice){ key, 0 },
				   str_slice("v"), 0), -EINVAL);
	ck_assert_int_eq(store_get(txn, STORE_META, (struct store_slice){ key, 511 }, &val), 0);
	/* A refused key does not poison the transaction. */
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
}
END_TEST

START_TEST(test_abort_discards)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "gone", "soon");
	store_txn_abort(txn);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("gone"), &val), -ENOENT);
	store_txn_abort(txn);
	store_close(store);
}
END_TEST

START_TEST(test_cursor_order_seek)
{
	struct store *store;
	struct store_txn *txn;
	struct store_cursor *cursor;
	struct store_slice k, v;
	static const char *const keys[] = { "b", "a", "ab", "c", "ba", "\x01", "\xff" };
	static const char *const sorted[] = { "\x01", "a", "ab", "b", "ba", "c", "\xff" };
	size_t count;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put_str(txn, STORE_DIRENTS, keys[i], keys[i]);
	put_str(txn, STORE_XATTRS, "0", "not in dirents");
	ck_assert_int_eq(store_txn_commit(txn), 0);

	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_count(txn, STORE_DIRENTS, &count), 0);
	ck_assert_uint_eq(count, 7);
	ck_assert_int_eq(store_count(txn, STORE_ORPHANS, &count), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_int_eq(store_cursor_open(txn, STORE_DIRENTS, &cursor), 0);
	ck_assert_int_eq(store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &k, &v), 0);
	ck_assert(slice_is(k, sorted[0]));
	ck_assert(slice_is(v, sorted[0]));
	for (size_t i = 1; i < sizeof(sorted) / sizeof(sorted[0]); i++) {
		ck_assert_int_eq(store_cursor_next(cursor, &k, &v), 0);
		ck_assert(slice_is(k, sorted[i]));
	}
	ck_assert_int_eq(store_cursor_next(cursor, &k, &v), -ENOENT);
	/* Seek lands on the first key >= the target. */
	ck_assert_int_eq(store_cursor_seek(cursor, str_slice("aa"), &k, &v), 0);
	ck_assert(slice_is(k, "ab"));
	ck_assert_int_eq(store_cursor_seek(cursor, str_slice("b"), &k, &v), 0);
	ck_assert(slice_is(k, "b"));
	ck_assert_int_eq(store_cursor_next(cursor, &k, &v), 0);
	ck_assert(slice_is(k, "ba"));
	ck_assert_int_eq(store_cursor_seek(cursor, str_slice("\xff\x01"), &k, &v), -ENOENT);
	store_cursor_close(cursor);
	store_txn_abort(txn);
	store_close(store);
}
END_TEST

START_TEST(test_cursor_del)
{
	struct store *store;
	struct store_txn *txn;
	struct store_cursor *cursor;
	struct store_slice k, v;
	size_t count;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_XATTRS, "1a", "");
	put_str(txn, STORE_XATTRS, "2a", "");
	put_str(txn, STORE_XATTRS, "2b", "");
	put_str(txn, STORE_XATTRS, "2c", "");
	put_str(txn, STORE_XATTRS, "3a", "");
	ck_assert_int_eq(store_cursor_open(txn, STORE_XATTRS, &cursor), 0);
	/* Delete every "2" key while walking, as meta_xattr_del_all does. */
	ck_assert_int_eq(store_cursor_seek(cursor, str_slice("2"), &k, &v), 0);
	while (((const char *)k.data)[0] == '2') {
		ck_assert_int_eq(store_cursor_del(cursor), 0);
		ck_assert_int_eq(store_cursor_next(cursor, &k, &v), 0);
	}
	ck_assert(slice_is(k, "3a"));
	store_cursor_close(cursor);
	ck_assert_int_eq(store_count(txn, STORE_XATTRS, &count), 0);
	ck_assert_uint_eq(count, 2);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
}
END_TEST

START_TEST(test_reopen_persists)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "kept", "value");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	ck_assert_int_eq(store_sync(store), 0);
	store_close(store);

	/* Committed without sync survives a close too (MDB_NOSYNC only skips fsync). */
	ck_assert_int_eq(store_open(&store, store_dir, 0), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "also", "kept");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);

	ck_assert_int_eq(store_open(&store, store_dir, 0), 0);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("kept"), &val), 0);
	ck_assert(slice_is(val, "value"));
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("also"), &val), 0);
	ck_assert(slice_is(val, "kept"));
	store_txn_abort(txn);
	store_close(store);
}
END_TEST

START_TEST(test_read_only)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "k", "v");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);

	ck_assert_int_eq(store_open(&store, store_dir, STORE_READ_ONLY), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), -EROFS);
	ck_assert_ptr_null(txn);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("k"), &val), 0);
	ck_assert(slice_is(val, "v"));
	ck_assert_int_eq(store_put(txn, STORE_META, str_slice("k"), str_slice("w"), 0), -EROFS);
	ck_assert_int_eq(store_del(txn, STORE_META, str_slice("k")), -EROFS);
	store_txn_abort(txn);
	ck_assert_int_eq(store_sync(store), 0);
	store_close(store);
}
END_TEST

START_TEST(test_concurrent_readers)
{
	struct store *store;
	struct store_txn *writer, *reader1, *reader2;
	struct store_slice val;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &writer), 0);
	put_str(writer, STORE_META, "k", "old");
	ck_assert_int_eq(store_txn_commit(writer), 0);

	/* Two readers in one thread (MDB_NOTLS) and a writer beside them: readers see the
	 * snapshot they began with. */
	ck_assert_int_eq(store_txn_begin(store, false, &reader1), 0);
	ck_assert_int_eq(store_txn_begin(store, false, &reader2), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &writer), 0);
	put_str(writer, STORE_META, "k", "new");
	ck_assert_int_eq(store_txn_commit(writer), 0);
	ck_assert_int_eq(store_get(reader1, STORE_META, str_slice("k"), &val), 0);
	ck_assert(slice_is(val, "old"));
	store_txn_abort(reader1);
	store_txn_abort(reader2);
	ck_assert_int_eq(store_txn_begin(store, false, &reader1), 0);
	ck_assert_int_eq(store_get(reader1, STORE_META, str_slice("k"), &val), 0);
	ck_assert(slice_is(val, "new"));
	store_txn_abort(reader1);
	store_close(store);
}
END_TEST

START_TEST(test_map_full)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;
	uint8_t value[2048];
	char key[32];
	int ret = 0;
	int i;

	memset(value, 0x5a, sizeof(value));
	ck_assert_int_eq(store_open_map_size(&store, store_dir, STORE_CREATE, 256 << 10), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "before", "full");
	ck_assert_int_eq(store_txn_commit(txn), 0);

	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	for (i = 0; i < 1000 && ret == 0; i++) {
		snprintf(key, sizeof(key), "key-%06d", i);
		ret = store_put(txn, STORE_INODES, str_slice(key),
				(struct store_slice){ value, sizeof(value) }, 0);
	}
	ck_assert_int_eq(ret, -ENOSPC);
	/* The transaction is dead: later calls and the commit say so. */
	ck_assert_int_eq(store_put(txn, STORE_META, str_slice("after"), str_slice("x"), 0),
			 -ENOSPC);
	ck_assert_int_eq(store_txn_commit(txn), -ENOSPC);

	/* Nothing of it was committed, and the store still works. */
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_INODES, str_slice("key-000000"), &val), -ENOENT);
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("before"), &val), 0);
	put_str(txn, STORE_META, "small", "fits");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
}
END_TEST

/* Values of GROW_VALUE bytes, GROW_BATCH per commit: 1 MiB a commit. */
enum { GROW_VALUE = 2048, GROW_BATCH = 512 };

static struct store_slice grow_value(int i, uint8_t *buf)
{
	memset(buf, 'a' + i % 26, GROW_VALUE);
	memcpy(buf, &i, sizeof(i));
	return (struct store_slice){ buf, GROW_VALUE };
}

static struct store_slice grow_key(int i, char *buf)
{
	snprintf(buf, 32, "grow-%08d", i);
	return str_slice(buf);
}

/* Commit values first..end-1 in batches. */
static void grow_fill(struct store *store, int first, int end)
{
	uint8_t value[GROW_VALUE];
	char key[32];

	for (int i = first; i < end;) {
		struct store_txn *txn;
		ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
		for (int n = 0; n < GROW_BATCH && i < end; n++, i++)
			ck_assert_int_eq(store_put(txn, STORE_INODES, grow_key(i, key),
						   grow_value(i, value), 0), 0);
		ck_assert_int_eq(store_txn_commit(txn), 0);
	}
}

/* Whether value i reads back (in a transaction of its own). */
static bool grow_reads(struct store *store, int i)
{
	uint8_t want[GROW_VALUE];
	struct store_txn *txn;
	struct store_slice val;
	char key[32];
	bool ok;

	if (store_txn_begin(store, false, &txn) != 0)
		return false;
	ok = store_get(txn, STORE_INODES, grow_key(i, key), &val) == 0 &&
	     val.len == GROW_VALUE && memcmp(val.data, grow_value(i, want).data, GROW_VALUE) == 0;
	store_txn_abort(txn);
	return ok;
}

static off_t data_file_size(void)
{
	char path[192];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data.mdb", store_dir);
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/* The file starts small and grows with the store, however large it may become. */
START_TEST(test_map_grows)
{
	enum { VALUES = 40 * GROW_BATCH };  /* 40 MiB of values */
	struct store *store;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_le(data_file_size(), 16 << 20);
	grow_fill(store, 0, VALUES);
	off_t grown = data_file_size();
	ck_assert_int_gt(grown, 40 << 20);
	ck_assert_int_le(grown, 512 << 20);  /* near what it holds, not the 64 GiB it may reach */
	store_close(store);

	ck_assert_int_eq(store_open(&store, store_dir, 0), 0);
	ck_assert_int_eq(data_file_size(), grown);
	for (int i = 0; i < VALUES; i += 97)
		ck_assert(grow_reads(store, i));
	ck_assert(grow_reads(store, VALUES - 1));
	store_close(store);
}
END_TEST

struct grow_reader {
	pthread_t thread;
	struct store *store;
	atomic_bool *stop;
	int reads, bad;
};

static void *grow_reader_run(void *arg)
{
	struct grow_reader *r = arg;

	while (!atomic_load(r->stop)) {
		r->bad += !grow_reads(r->store, r->reads % GROW_BATCH);
		r->reads++;
	}
	return NULL;
}

/* Threads that read while the map is resized under them read right, and never from an
 * unmapped old map. */
START_TEST(test_map_grows_under_readers)
{
	struct grow_reader readers[3];
	atomic_bool stop = false;
	struct store *store;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	grow_fill(store, 0, GROW_BATCH);
	for (int i = 0; i < 3; i++) {
		readers[i] = (struct grow_reader){ .store = store, .stop = &stop };
		ck_assert_int_eq(pthread_create(&readers[i].thread, NULL, grow_reader_run,
						&readers[i]), 0);
	}
	grow_fill(store, GROW_BATCH, 40 * GROW_BATCH);
	atomic_store(&stop, true);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pthread_join(readers[i].thread, NULL), 0);
		ck_assert_int_gt(readers[i].reads, 0);
		ck_assert_int_eq(readers[i].bad, 0);
	}
	ck_assert_int_gt(data_file_size(), 32 << 20);
	store_close(store);
}
END_TEST

/* Other processes: a reader that opened the store before it grew reads what was written
 * beyond its map, and a writer that opens it later does not cut the file back under the
 * process that grew it. */
START_TEST(test_map_grows_across_processes)
{
	enum { BEFORE = GROW_BATCH, AFTER = 40 * GROW_BATCH };
	int go[2], ready[2], status;
	struct store *store;
	char c;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	grow_fill(store, 0, BEFORE);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(ready), 0);
	pid_t reader = fork();
	ck_assert_int_ge(reader, 0);
	if (reader == 0) {
		struct store *mine;
		if (store_open(&mine, store_dir, STORE_READ_ONLY) != 0 || !grow_reads(mine, 0))
			_exit(2);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(grow_reads(mine, AFTER - 1) && grow_reads(mine, 1) ? 0 : 1);
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	grow_fill(store, BEFORE, AFTER);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(waitpid(reader, &status, 0), reader);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);

	off_t grown = data_file_size();
	pid_t writer = fork();
	ck_assert_int_ge(writer, 0);
	if (writer == 0) {
		struct store *mine;
		if (store_open(&mine, store_dir, 0) != 0)
			_exit(2);
		grow_fill(mine, AFTER, AFTER + 1);
		store_close(mine);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(writer, &status, 0), writer);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_ge(data_file_size(), grown);
	/* This process still reads and writes all of its map. */
	ck_assert(grow_reads(store, AFTER - 1));
	ck_assert(grow_reads(store, AFTER));
	grow_fill(store, AFTER + 1, AFTER + GROW_BATCH);
	ck_assert(grow_reads(store, AFTER + GROW_BATCH - 1));
	store_close(store);
}
END_TEST

/* Fill the file system of dir: write path until it is refused. */
static void fill_disk(const char *path)
{
	static char chunk[1 << 16];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	close(fd);
}

/* On a full disk a write is -ENOSPC, not a SIGBUS through the writable map that ends the
 * process; the store reads and reopens meanwhile, and writes again once there is room.
 * In a detached tmpfs, worked in as the current directory (paths through /proc would
 * need /proc, which a chroot may not have). */
START_TEST(test_disk_full)
{
	struct store *store;
	int ret = 0, i, small, cwd;

	small = harness_detached_tmpfs("40m");
	if (small == -EPERM || small == -ENOSYS) {
		fprintf(stderr, "skip %s: making a small tmpfs needs CAP_SYS_ADMIN: %s\n", __func__,
			strerror(-small));
		return;
	}
	ck_assert_msg(small >= 0, "fsopen: %s", strerror(-small));
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(cwd, 0);
	ck_assert_int_eq(fchdir(small), 0);

	ck_assert_int_eq(store_open(&store, "meta", STORE_CREATE), 0);
	fill_disk("filler");
	for (i = 0; ret == 0 && i < 100000; i++) {
		uint8_t value[GROW_VALUE];
		struct store_txn *txn;
		char key[32];
		ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
		ret = store_put(txn, STORE_INODES, grow_key(i, key), grow_value(i, value), 0);
		int committed = store_txn_commit(txn);
		if (ret == 0)
			ret = committed;
	}
	ck_assert_int_eq(ret, -ENOSPC);
	int stored = i - 1;
	ck_assert_int_gt(stored, 1000);
	ck_assert(grow_reads(store, 0));
	ck_assert(grow_reads(store, stored - 1));
	store_close(store);
	ck_assert_int_eq(store_open(&store, "meta", 0), 0);
	ck_assert(grow_reads(store, stored - 1));

	ck_assert_int_eq(unlink("filler"), 0);
	grow_fill(store, stored, stored + 4 * GROW_BATCH);
	ck_assert(grow_reads(store, stored + 4 * GROW_BATCH - 1));
	store_close(store);
	/* The tmpfs goes away with its last reference: the directory and the descriptor. */
	ck_assert_int_eq(fchdir(cwd), 0);
	close(cwd);
	close(small);
}
END_TEST

START_TEST(test_corrupt_file)
{
	struct store *store;
	char path[192];
	FILE *f;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	store_close(store);
	snprintf(path, sizeof(path), "%s/data.mdb", store_dir);
	f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	/* Wreck both meta pages: LMDB must refuse rather than read garbage. */
	static const uint8_t junk[8192];
	ck_assert_uint_eq(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
	fclose(f);
	ck_assert_int_eq(store_open(&store, store_dir, 0), -EIO);
}
END_TEST

START_TEST(test_env_file_links)
{
	static const char *const names[] = { "data.mdb", "lock.mdb" };
	static const char host_text[] = "a host file that LMDB must not write\n";
	char host[192], path[192], aside[192], got[sizeof(host_text) + 1];
	struct stat before, after;
	struct store_txn *txn;
	struct store *store;
	int dir_fd, fd;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "k", "v");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
	snprintf(host, sizeof(host), "%s/host-file", test_dir);
	fd = open(host, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, host_text, strlen(host_text)), (ssize_t)strlen(host_text));
	close(fd);
	usleep(20000);
	ck_assert_int_eq(stat(host, &before), 0);
	snprintf(aside, sizeof(aside), "%s/aside", test_dir);

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", store_dir, names[i]);
		ck_assert_int_eq(rename(path, aside), 0);
		ck_assert_int_eq(symlink(host, path), 0);
		ck_assert_int_eq(store_open(&store, store_dir, 0), -ELOOP);
		ck_assert_int_eq(store_open(&store, store_dir, STORE_READ_ONLY), -ELOOP);
		ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), -ELOOP);
		dir_fd = open(store_dir, O_RDONLY | O_DIRECTORY);
		ck_assert_int_ge(dir_fd, 0);
		ck_assert_int_eq(store_open_dir(&store, dir_fd, 0), -ELOOP);
		close(dir_fd);
		ck_assert_ptr_null(store);
		/* The host file is as it was: not truncated, extended or written. */
		ck_assert_int_eq(stat(host, &after), 0);
		ck_assert_int_eq(after.st_size, (off_t)strlen(host_text));
		ck_assert_int_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
		ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
		fd = open(host, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(read(fd, got, sizeof(got)), (ssize_t)strlen(host_text));
		close(fd);
		ck_assert_mem_eq(got, host_text, strlen(host_text));
		ck_assert_int_eq(unlink(path), 0);
		ck_assert_int_eq(rename(aside, path), 0);
	}
	/* Not a regular file either: refused as a damaged store. */
	snprintf(path, sizeof(path), "%s/lock.mdb", store_dir);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(store_open(&store, store_dir, 0), -EIO);
	ck_assert_int_eq(unlink(path), 0);

	/* Whole again (lock.mdb made anew), through a directory fd as a vault opens it. */
	dir_fd = open(store_dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dir_fd, 0);
	ck_assert_int_eq(store_open_dir(&store, dir_fd, STORE_READ_ONLY), 0);
	close(dir_fd);
	struct store_slice value;
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("k"), &value), 0);
	ck_assert(slice_is(value, "v"));
	store_txn_abort(txn);
	store_close(store);
}
END_TEST

START_TEST(test_schemas)
{
	struct store *store;
	struct store_txn *txn;
	struct store_cursor *cursor;
	struct store_slice val;
	size_t count;

	ck_assert_int_eq(store_open_schema(&store, store_dir, STORE_CREATE,
					   STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_KS_META, "kek", "record");
	put_str(txn, STORE_KS_DATASETS, "cardio", "dataset");
	put_str(txn, STORE_KS_VERSIONS, "cardio-1", "version");
	/* The vault's tables are not in a keystore, nor is anything past the last table. */
	ck_assert_int_eq(store_put(txn, STORE_META, str_slice("k"), str_slice("v"), 0), -EINVAL);
	ck_assert_int_eq(store_get(txn, STORE_INODES, str_slice("k"), &val), -EINVAL);
	ck_assert_int_eq(store_del(txn, STORE_ORPHANS, str_slice("k")), -EINVAL);
	ck_assert_int_eq(store_cursor_open(txn, STORE_DIRENTS, &cursor), -EINVAL);
	ck_assert_int_eq(store_count(txn, STORE_XATTRS, &count), -EINVAL);
	ck_assert_int_eq(store_count(txn, STORE_TABLE_COUNT, &count), -EINVAL);
	ck_assert_int_eq(store_count(txn, STORE_KS_VERSIONS, &count), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);

	/* A keystore is not a vault store (its tables are missing), and the reverse. */
	ck_assert_int_eq(store_open(&store, store_dir, 0), -EIO);
	ck_assert_int_eq(store_open_schema(&store, store_dir, 0, STORE_SCHEMA_VAULT), -EIO);
	ck_assert_int_eq(store_open_schema(&store, store_dir, 0, (enum store_schema)2), -EINVAL);

	ck_assert_int_eq(store_open_schema(&store, store_dir, STORE_READ_ONLY,
					   STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_KS_DATASETS, str_slice("cardio"), &val), 0);
	ck_assert(slice_is(val, "dataset"));
	ck_assert_int_eq(store_get(txn, STORE_META, str_slice("kek"), &val), -EINVAL);
	store_txn_abort(txn);
	store_close(store);

	/* The vault schema refuses the keystore's tables. */
	snprintf(store_dir, sizeof(store_dir), "%s/vault", test_dir);
	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_put(txn, STORE_KS_META, str_slice("k"), str_slice("v"), 0),
			 -EINVAL);
	ck_assert_int_eq(store_count(txn, STORE_KS_DATASETS, &count), -EINVAL);
	store_txn_abort(txn);
	store_close(store);
	ck_assert_int_eq(store_open_schema(&store, store_dir, 0, STORE_SCHEMA_KEYSTORE), -EIO);
}
END_TEST

static void fill_marker(uint8_t *buf, size_t len, uint8_t tag)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(tag ^ (i * 37));
}

START_TEST(test_compact)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;
	uint8_t deleted[96], overwritten[96], big[6000];
	char key[32], value[64];
	size_t count;

	fill_marker(deleted, sizeof(deleted), 0xd1);
	fill_marker(overwritten, sizeof(overwritten), 0x0e);
	fill_marker(big, sizeof(big), 0xb1);
	ck_assert_int_eq(store_open_schema(&store, store_dir, STORE_CREATE,
					   STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "key-%04d", i);
		snprintf(value, sizeof(value), "value-%04d", i);
		put_str(txn, STORE_KS_VERSIONS, key, value);
	}
	/* A small value among others (a leaf page), one rewritten shorter in place of the
	 * old, and one large enough for overflow pages. */
	ck_assert_int_eq(store_put(txn, STORE_KS_VERSIONS, str_slice("key-0100x"),
				   (struct store_slice){ deleted, sizeof(deleted) }, 0), 0);
	ck_assert_int_eq(store_put(txn, STORE_KS_DATASETS, str_slice("rewritten"),
				   (struct store_slice){ overwritten, sizeof(overwritten) }, 0), 0);
	ck_assert_int_eq(store_put(txn, STORE_KS_META, str_slice("big"),
				   (struct store_slice){ big, sizeof(big) }, 0), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);

	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_del(txn, STORE_KS_VERSIONS, str_slice("key-0100x")), 0);
	put_str(txn, STORE_KS_DATASETS, "rewritten", "short");
	ck_assert_int_eq(store_del(txn, STORE_KS_META, str_slice("big")), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	ck_assert_int_eq(store_sync(store), 0);
	/* Without compaction the freed pages still hold them: what makes this test able to
	 * fail. */
	ck_assert(harness_dir_contains(store_dir, deleted, sizeof(deleted)));
	ck_assert(harness_dir_contains(store_dir, overwritten, sizeof(overwritten)));
	ck_assert(harness_dir_contains(store_dir, big, sizeof(big)));

	ck_assert_int_eq(store_compact(store), 0);
	ck_assert(!harness_dir_contains(store_dir, deleted, sizeof(deleted)));
	ck_assert(!harness_dir_contains(store_dir, overwritten, sizeof(overwritten)));
	ck_assert(!harness_dir_contains(store_dir, big, sizeof(big)));

	/* Everything else reads back, and the store takes writes again. */
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_count(txn, STORE_KS_VERSIONS, &count), 0);
	ck_assert_uint_eq(count, 200);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "key-%04d", i);
		snprintf(value, sizeof(value), "value-%04d", i);
		ck_assert_int_eq(store_get(txn, STORE_KS_VERSIONS, str_slice(key), &val), 0);
		ck_assert(slice_is(val, value));
	}
	ck_assert_int_eq(store_get(txn, STORE_KS_DATASETS, str_slice("rewritten"), &val), 0);
	ck_assert(slice_is(val, "short"));
	ck_assert_int_eq(store_get(txn, STORE_KS_VERSIONS, str_slice("key-0100x"), &val),
			 -ENOENT);
	put_str(txn, STORE_KS_META, "after", "compact");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);

	ck_assert_int_eq(store_open_schema(&store, store_dir, 0, STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_KS_META, str_slice("after"), &val), 0);
	ck_assert(slice_is(val, "compact"));
	ck_assert_int_eq(store_get(txn, STORE_KS_VERSIONS, str_slice("key-0199"), &val), 0);
	ck_assert(slice_is(val, "value-0199"));
	store_txn_abort(txn);
	store_close(store);
}
END_TEST

START_TEST(test_compact_refusals)
{
	struct store *store;
	struct store_txn *txn;
	char path[192];
	FILE *f;

	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	put_str(txn, STORE_META, "k", "v");
	ck_assert_int_eq(store_txn_commit(txn), 0);
	/* A transaction would be left pointing into the closed environment. */
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_compact(store), -EBUSY);
	store_txn_abort(txn);
	/* A stale copy left by a crash is replaced, not appended to. */
	snprintf(path, sizeof(path), "%s/data.mdb.compact", store_dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("stale", f);
	fclose(f);
	ck_assert_int_eq(store_compact(store), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	store_close(store);

	ck_assert_int_eq(store_open(&store, store_dir, STORE_READ_ONLY), 0);
	ck_assert_int_eq(store_compact(store), -EROFS);
	store_close(store);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_open_missing);
	tcase_add_test(tc, test_put_get_del);
	tcase_add_test(tc, test_key_limits);
	tcase_add_test(tc, test_abort_discards);
	tcase_add_test(tc, test_cursor_order_seek);
	tcase_add_test(tc, test_cursor_del);
	tcase_add_test(tc, test_reopen_persists);
	tcase_add_test(tc, test_read_only);
	tcase_add_test(tc, test_concurrent_readers);
	tcase_add_test(tc, test_map_full);
	tcase_add_test(tc, test_map_grows);
	tcase_add_test(tc, test_map_grows_under_readers);
	tcase_add_test(tc, test_map_grows_across_processes);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_corrupt_file);
	tcase_add_test(tc, test_env_file_links);
	tcase_add_test(tc, test_schemas);
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_compact_refusals);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
