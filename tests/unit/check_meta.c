/*
 * Unit tests of the encrypted namespace: known-answer record encodings, strict decoding,
 * round trips through a real store, readdir cookies, xattrs, orphans, and tampering with
 * the stored values (bit flips, values moved between keys, tables and vaults); the inode
 * records of the fuzz corpus (tests/fuzz/corpus-ondisk) and seeded mutations of them.
 */
#include "lib/meta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "lib/keysource.h"
#include "lib/secret.h"
#include "lib/store.h"
#include "tests/fuzz/replay.h"
#include "tests/harness.h"

#define MARKER "PHI-MARKER-7c1e"

static char test_dir[64];
static char store_dir[128];
static struct store *store;
static struct keysource *keys;
static struct meta *meta;
static uint8_t vault_id[VAULT_ID_LEN];

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
	strcpy(test_dir, "/tmp/check_meta.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(store_dir, sizeof(store_dir), "%s/meta", test_dir);
	ck_assert_int_eq(store_open(&store, store_dir, STORE_CREATE), 0);
	ck_assert_int_eq(keysource_ephemeral_new(&keys), 0);
	crypto_random(vault_id, sizeof(vault_id));
	ck_assert_int_eq(meta_format(store, CRYPTO_XCHACHA20POLY1305, vault_id, keys, 1000, 1001),
			 0);
	ck_assert_int_eq(meta_open(&meta, store, CRYPTO_XCHACHA20POLY1305, vault_id, keys), 0);
}

static void teardown(void)
{
	meta_close(meta);
	meta = NULL;
	store_close(store);
	store = NULL;
	keysource_free(keys);
	keys = NULL;
	nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = 0;

	for (const char *p = hex; *p != '\0';) {
		unsigned byte;
		if (*p == ' ' || *p == '\n') {
			p++;
			continue;
		}
		ck_assert_int_eq(sscanf(p, "%2x", &byte), 1);
		ck_assert_uint_lt(n, cap);
		out[n++] = (uint8_t)byte;
		p += 2;
	}
	return n;
}

/* Known-answer inode records. */

static const char regular_hex[] =
	"01"
	"0807060504030201"                   /* ino */
	"a0810000" "e8030000" "e9030000"     /* mode 0100640, uid 1000, gid 1001 */
	"01000000"                           /* nlink */
	"4523010000000000"                   /* size 0x12345 */
	"0000000000000000"                   /* rdev */
	"0100000000000000"                   /* parent */
	"0000006000000000" "01000000"        /* atime */
	"0100006000000000" "ffc99a3b"        /* mtime, nsec 999999999 */
	"0200006000000000" "00000000"        /* ctime */
	"ffffff5f00000000" "f4010000"        /* btime */
	"00112233445566778899aabbccddeeff"   /* object id */
	"01000000"                           /* key version */
	"0000010000000000"                   /* budget reserved */
	"0000020000000000"                   /* object max len */
	"02000000" "00000000"                /* hole count, symlink length */
	"0200000000000000" "0400000000000000"
	"0a00000000000000" "0b00000000000000";

static const char symlink_hex[] =
	"01"
	"0500000000000000"
	"ffa10000" "00000000" "00000000" "01000000"
	"0600000000000000" "0000000000000000" "0100000000000000"
	"000000000000000000000000" "000000000000000000000000"
	"000000000000000000000000" "000000000000000000000000"
	"00000000000000000000000000000000" "00000000"
	"0000000000000000" "0000000000000000"
	"00000000" "06000000"
	"746172676574";                      /* "target" */

static struct meta_extent regular_holes[] = { { 2, 4 }, { 10, 11 } };

static void regular_inode(struct meta_inode *inode)
{
	static const uint8_t id[OBJECT_ID_LEN] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
						   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };

	memset(inode, 0, sizeof(*inode));
	inode->ino = 0x0102030405060708;
	inode->mode = S_IFREG | 0640;
	inode->uid = 1000;
	inode->gid = 1001;
	inode->nlink = 1;
	inode->size = 0x12345;
	inode->parent = 1;
	inode->atime = (struct timespec){ 0x60000000, 1 };
	inode->mtime = (struct timespec){ 0x60000001, 999999999 };
	inode->ctime = (struct timespec){ 0x60000002, 0 };
	inode->btime = (struct timespec){ 0x5fffffff, 500 };
	memcpy(inode->object_id, id, sizeof(id));
	inode->key_version = 1;
	inode->budget_reserved = 0x10000;
	inode->object_max_len = 0x20000;
	inode->hole_count = 2;
	inode->holes = regular_holes;
}

static void symlink_inode(struct meta_inode *inode)
{
	memset(inode, 0, sizeof(*inode));
	inode->ino = 5;
	inode->mode = S_IFLNK | 0777;
	inode->nlink = 1;
	inode->size = 6;
	inode->parent = 1;
	inode->symlink = "target";
}

static void assert_inode_eq(const struct meta_inode *a, const struct meta_inode *b)
{
	ck_assert_uint_eq(a->ino, b->ino);
	ck_assert_uint_eq(a->mode, b->mode);
	ck_assert_uint_eq(a->uid, b->uid);
	ck_assert_uint_eq(a->gid, b->gid);
	ck_assert_uint_eq(a->nlink, b->nlink);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_uint_eq(a->rdev, b->rdev);
	ck_assert_uint_eq(a->parent, b->parent);
	ck_assert_int_eq(a->atime.tv_sec, b->atime.tv_sec);
	ck_assert_int_eq(a->atime.tv_nsec, b->atime.tv_nsec);
	ck_assert_int_eq(a->mtime.tv_sec, b->mtime.tv_sec);
	ck_assert_int_eq(a->mtime.tv_nsec, b->mtime.tv_nsec);
	ck_assert_int_eq(a->ctime.tv_sec, b->ctime.tv_sec);
	ck_assert_int_eq(a->btime.tv_nsec, b->btime.tv_nsec);
	ck_assert_mem_eq(a->object_id, b->object_id, OBJECT_ID_LEN);
	ck_assert_uint_eq(a->key_version, b->key_version);
	ck_assert_uint_eq(a->budget_reserved, b->budget_reserved);
	ck_assert_uint_eq(a->object_max_len, b->object_max_len);
	ck_assert_uint_eq(a->hole_count, b->hole_count);
	for (uint32_t i = 0; i < a->hole_count; i++) {
		ck_assert_uint_eq(a->holes[i].start, b->holes[i].start);
		ck_assert_uint_eq(a->holes[i].end, b->holes[i].end);
	}
	ck_assert_int_eq(a->symlink == NULL, b->symlink == NULL);
	if (a->symlink != NULL)
		ck_assert_mem_eq(a->symlink, b->symlink, a->size);
}

START_TEST(test_inode_encode_known_answer)
{
	struct meta_inode inode, decoded;
	uint8_t expected[512];
	uint8_t *out;
	size_t len, expected_len;

	regular_inode(&inode);
	expected_len = unhex(expected, sizeof(expected), regular_hex);
	ck_assert_uint_eq(expected_len, 141 + 32);
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), 0);
	ck_assert_uint_eq(len, expected_len);
	ck_assert_mem_eq(out, expected, len);
	free(out);
	ck_assert_int_eq(meta_inode_decode(&decoded, expected, expected_len), 0);
	assert_inode_eq(&decoded, &inode);
	meta_inode_release(&decoded);

	symlink_inode(&inode);
	expected_len = unhex(expected, sizeof(expected), symlink_hex);
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), 0);
	ck_assert_uint_eq(len, expected_len);
	ck_assert_mem_eq(out, expected, len);
	free(out);
	ck_assert_int_eq(meta_inode_decode(&decoded, expected, expected_len), 0);
	assert_inode_eq(&decoded, &inode);
	meta_inode_release(&decoded);
}
END_TEST

START_TEST(test_inode_decode_rejects)
{
	struct meta_inode inode;
	uint8_t good[512], bad[520];
	size_t len;

	len = unhex(good, sizeof(good), regular_hex);
	/* Every truncation, and one byte too many. */
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(meta_inode_decode(&inode, good, cut), -EBADMSG);
	memcpy(bad, good, len);
	bad[len] = 0;
	ck_assert_int_eq(meta_inode_decode(&inode, bad, len + 1), -EBADMSG);
	ck_assert_ptr_null(inode.holes);

#define MUTATE(offset, value)                                                  \
	do {                                                                   \
		memcpy(bad, good, len);                                        \
		bad[offset] = (value);                                         \
		ck_assert_int_eq(meta_inode_decode(&inode, bad, len), -EBADMSG); \
	} while (0)

	MUTATE(0, 2);            /* unknown record version */
	MUTATE(0, 0);
	memcpy(bad, good, len);
	memset(bad + 1, 0, 8);   /* inode number 0 */
	ck_assert_int_eq(meta_inode_decode(&inode, bad, len), -EBADMSG);
	MUTATE(10, 0x00);        /* mode without a file type */
	MUTATE(11, 0x01);        /* mode with bits above S_IFMT */
	MUTATE(60, 0x9a);        /* atime nsec 0x9a000001 >= 1e9 */
	MUTATE(72, 0xff);        /* mtime nsec >= 1e9 */
	MUTATE(133, 3);          /* hole count larger than the holes present */
	MUTATE(137, 1);          /* symlink length without the bytes */
	/* Holes: unsorted, overlapping, adjacent, empty. */
	MUTATE(141 + 16, 1);     /* second hole starts at 1: unsorted */
	MUTATE(141 + 16, 3);     /* second hole [3, 11): overlaps [2, 4) */
	MUTATE(141 + 16, 4);     /* [4, 11): adjacent to [2, 4) */
	MUTATE(141 + 8, 2);      /* [2, 2): empty */
	/* A directory may not carry holes. */
	MUTATE(10, 0x41);
#undef MUTATE
	/* A symlink target on a regular file, with the byte present. */
	memcpy(bad, good, len);
	bad[137] = 1;
	bad[len] = 'x';
	ck_assert_int_eq(meta_inode_decode(&inode, bad, len + 1), -EBADMSG);
	/* The unmodified record still decodes: the mutations above were the cause. */
	ck_assert_int_eq(meta_inode_decode(&inode, good, len), 0);
	meta_inode_release(&inode);

	/* A hole count over META_HOLES_MAX is refused even with the bytes present. */
	{
		size_t big_len = 141 + (size_t)(META_HOLES_MAX + 1) * 16;
		uint8_t *big = calloc(1, big_len);
		ck_assert_ptr_nonnull(big);
		memcpy(big, good, 141);
		big[133] = (uint8_t)((META_HOLES_MAX + 1) & 0xff);
		big[134] = (uint8_t)((META_HOLES_MAX + 1) >> 8);
		for (uint32_t i = 0; i <= META_HOLES_MAX; i++) {
			big[141 + 16 * i] = (uint8_t)(2 * i);
			big[141 + 16 * i + 1] = (uint8_t)((2 * i) >> 8);
			big[141 + 16 * i + 8] = (uint8_t)(2 * i + 1);
			big[141 + 16 * i + 9] = (uint8_t)((2 * i + 1) >> 8);
		}
		ck_assert_int_eq(meta_inode_decode(&inode, big, big_len), -EBADMSG);
		/* The same with META_HOLES_MAX holes is fine. */
		big[133] = (uint8_t)(META_HOLES_MAX & 0xff);
		big[134] = (uint8_t)(META_HOLES_MAX >> 8);
		ck_assert_int_eq(meta_inode_decode(&inode, big, big_len - 16), 0);
		ck_assert_uint_eq(inode.hole_count, META_HOLES_MAX);
		meta_inode_release(&inode);
		free(big);
	}

	/* Symlinks: the length must be the size, and at least one byte. */
	len = unhex(good, sizeof(good), symlink_hex);
	memcpy(bad, good, len);
	bad[25] = 5;
	ck_assert_int_eq(meta_inode_decode(&inode, bad, len), -EBADMSG);
	memcpy(bad, good, len);
	bad[25] = 0;
	bad[137] = 0;
	ck_assert_int_eq(meta_inode_decode(&inode, bad, len - 6), -EBADMSG);
	ck_assert_int_eq(meta_inode_decode(&inode, good, len), 0);
	meta_inode_release(&inode);
}
END_TEST

START_TEST(test_inode_encode_rejects)
{
	struct meta_inode inode;
	struct meta_extent unsorted[] = { { 10, 11 }, { 2, 4 } };
	struct meta_extent adjacent[] = { { 2, 4 }, { 4, 5 } };
	uint8_t *out;
	size_t len;

	regular_inode(&inode);
	inode.holes = unsorted;
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), -EINVAL);
	ck_assert_ptr_null(out);
	inode.holes = adjacent;
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), -EINVAL);
	regular_inode(&inode);
	inode.symlink = "x";
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), -EINVAL);
	regular_inode(&inode);
	inode.ino = 0;
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), -EINVAL);
	symlink_inode(&inode);
	inode.size = META_SYMLINK_MAX + 1;
	ck_assert_int_eq(meta_inode_encode(&out, &len, &inode), -EINVAL);
}
END_TEST

START_TEST(test_inode_copy)
{
	struct meta_inode inode, copy;

	regular_inode(&inode);
	ck_assert_int_eq(meta_inode_copy(&copy, &inode), 0);
	ck_assert_ptr_ne(copy.holes, inode.holes);
	assert_inode_eq(&copy, &inode);
	meta_inode_release(&copy);
	ck_assert_ptr_null(copy.holes);
	symlink_inode(&inode);
	ck_assert_int_eq(meta_inode_copy(&copy, &inode), 0);
	ck_assert_ptr_ne(copy.symlink, inode.symlink);
	assert_inode_eq(&copy, &inode);
	meta_inode_release(&copy);
}
END_TEST

/* Through a real store. */

START_TEST(test_format_root_and_alloc)
{
	struct meta_txn *txn;
	struct meta_inode root;
	uint64_t ino;
	size_t count;

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ck_assert_int_eq(meta_inode_get(txn, META_ROOT_INO, &root), 0);
	ck_assert_uint_eq(root.mode, S_IFDIR | 0755);
	ck_assert_uint_eq(root.uid, 1000);
	ck_assert_uint_eq(root.gid, 1001);
	ck_assert_uint_eq(root.nlink, 2);
	ck_assert_uint_eq(root.parent, META_ROOT_INO);
	ck_assert_int_gt(root.mtime.tv_sec, 1600000000);
	meta_inode_release(&root);
	ck_assert_int_eq(meta_inode_count(txn, &count), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_int_eq(meta_dir_is_empty(txn, META_ROOT_INO), 1);
	/* Read-only transactions cannot allocate. */
	ck_assert_int_lt(meta_ino_alloc(txn, &ino), 0);
	meta_txn_abort(txn);

	/* Formatting twice is refused. */
	ck_assert_int_eq(meta_format(store, CRYPTO_XCHACHA20POLY1305, vault_id, keys, 0, 0),
			 -EEXIST);

	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_ino_alloc(txn, &ino), 0);
	ck_assert_uint_eq(ino, 2);
	ck_assert_int_eq(meta_ino_alloc(txn, &ino), 0);
	ck_assert_uint_eq(ino, 3);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
	/* An aborted allocation is given out again; a committed one never. */
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_ino_alloc(txn, &ino), 0);
	ck_assert_uint_eq(ino, 4);
	meta_txn_abort(txn);

	meta_close(meta);
	ck_assert_int_eq(meta_open(&meta, store, CRYPTO_XCHACHA20POLY1305, vault_id, keys), 0);
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_ino_alloc(txn, &ino), 0);
	ck_assert_uint_eq(ino, 4);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
}
END_TEST

START_TEST(test_inode_round_trip)
{
	struct meta_txn *txn;
	struct meta_inode regular, link, got;
	size_t count;

	regular_inode(&regular);
	regular.ino = 7;
	symlink_inode(&link);
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_inode_put(txn, &regular), 0);
	ck_assert_int_eq(meta_inode_put(txn, &link), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ck_assert_int_eq(meta_inode_get(txn, 7, &got), 0);
	assert_inode_eq(&got, &regular);
	meta_inode_release(&got);
	ck_assert_int_eq(meta_inode_get(txn, 5, &got), 0);
	assert_inode_eq(&got, &link);
	meta_inode_release(&got);
	ck_assert_int_eq(meta_inode_get(txn, 6, &got), -ENOENT);
	ck_assert_int_eq(meta_inode_count(txn, &count), 0);
	ck_assert_uint_eq(count, 3);
	meta_txn_abort(txn);

	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	regular.size = 1;
	regular.hole_count = 0;
	ck_assert_int_eq(meta_inode_put(txn, &regular), 0);
	ck_assert_int_eq(meta_inode_get(txn, 7, &got), 0);
	assert_inode_eq(&got, &regular);
	meta_inode_release(&got);
	ck_assert_int_eq(meta_inode_del(txn, 5), 0);
	ck_assert_int_eq(meta_inode_del(txn, 5), -ENOENT);
	ck_assert_int_eq(meta_inode_get(txn, 5, &got), -ENOENT);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
}
END_TEST

static struct meta_dirent make_entry(const char *name, uint64_t ino, uint32_t type)
{
	struct meta_dirent entry = { .ino = ino, .type = type };

	/* A name of META_NAME_MAX + 1 bytes fills the array without its NUL. */
	entry.name_len = strlen(name);
	ck_assert_uint_le(entry.name_len, sizeof(entry.name));
	memcpy(entry.name, name, entry.name_len);
	if (entry.name_len < sizeof(entry.name))
		entry.name[entry.name_len] = '\0';
	return entry;
}

START_TEST(test_dirent_basic)
{
	struct meta_txn *txn;
	struct meta_dirent entry, got;
	char long_name[META_NAME_MAX + 2];

	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	entry = make_entry("notes.txt", 10, DT_REG);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), 0);
	ck_assert_int_eq(meta_dir_is_empty(txn, META_ROOT_INO), 0);
	ck_assert_int_eq(meta_dir_is_empty(txn, 10), 1);
	ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, "notes.txt", 9, &got), 0);
	ck_assert_uint_eq(got.ino, 10);
	ck_assert_uint_eq(got.type, DT_REG);
	ck_assert_uint_eq(got.name_len, 9);
	ck_assert_str_eq(got.name, "notes.txt");
	ck_assert_uint_gt(got.cookie, META_COOKIE_DOTDOT);
	/* Lookups are exact: prefixes and other directories do not match. */
	ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, "notes.tx", 8, &got), -ENOENT);
	ck_assert_int_eq(meta_dirent_get(txn, 2, "notes.txt", 9, &got), -ENOENT);

	entry = make_entry("notes.txt", 11, DT_DIR);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), -EEXIST);
	ck_assert_int_eq(meta_dirent_add(txn, 2, &entry), 0);
	ck_assert_int_eq(meta_dirent_put(txn, META_ROOT_INO, &entry), 0);
	ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, "notes.txt", 9, &got), 0);
	ck_assert_uint_eq(got.ino, 11);
	ck_assert_uint_eq(got.type, DT_DIR);

	ck_assert_int_eq(meta_dirent_del(txn, META_ROOT_INO, "notes.txt", 9), 0);
	ck_assert_int_eq(meta_dirent_del(txn, META_ROOT_INO, "notes.txt", 9), -ENOENT);
	ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, "notes.txt", 9, &got), -ENOENT);
	ck_assert_int_eq(meta_dir_is_empty(txn, META_ROOT_INO), 1);
	ck_assert_int_eq(meta_dirent_get(txn, 2, "notes.txt", 9, &got), 0);

	/* Names: 1..255 bytes, no '/', no NUL, not "." or "..". */
	memset(long_name, 'n', sizeof(long_name));
	long_name[META_NAME_MAX + 1] = '\0';
	entry = make_entry(long_name, 12, DT_REG);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), -ENAMETOOLONG);
	long_name[META_NAME_MAX] = '\0';
	entry = make_entry(long_name, 12, DT_REG);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), 0);
	ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, long_name, META_NAME_MAX, &got), 0);
	ck_assert_str_eq(got.name, long_name);
	entry = make_entry("a/b", 12, DT_REG);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), -EINVAL);
	entry = make_entry("..", 12, DT_DIR);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), -EINVAL);
	entry = make_entry("", 12, DT_REG);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), -EINVAL);
	ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, "a\0b", 3, &got), -EINVAL);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
}
END_TEST

#define ITER_MAX 512

struct collected {
	size_t count;
	size_t stop_after;   /* 0: never stop */
	uint64_t cookies[ITER_MAX];
	char names[ITER_MAX][16];
};

static int collect(void *arg, const struct meta_dirent *entry)
{
	struct collected *c = arg;

	ck_assert_uint_lt(c->count, ITER_MAX);
	ck_assert_uint_eq(strlen(entry->name), entry->name_len);
	ck_assert_uint_lt(entry->name_len, 16);
	c->cookies[c->count] = entry->cookie;
	memcpy(c->names[c->count], entry->name, entry->name_len + 1);
	c->count++;
	return c->stop_after != 0 && c->count == c->stop_after ? 42 : 0;
}

static int find_name(const struct collected *c, const char *name)
{
	for (size_t i = 0; i < c->count; i++) {
		if (strcmp(c->names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

START_TEST(test_dir_iterate)
{
	struct meta_txn *txn;
	struct meta_dirent entry, got;
	static struct collected all, first, rest;
	char name[16];
	uint64_t last;

	memset(&all, 0, sizeof(all));
	memset(&first, 0, sizeof(first));
	memset(&rest, 0, sizeof(rest));
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "file-%03d", i);
		entry = make_entry(name, 100 + (uint64_t)i, DT_REG);
		ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), 0);
	}
	/* Entries of other directories never show up. */
	entry = make_entry("elsewhere", 99, DT_REG);
	ck_assert_int_eq(meta_dirent_add(txn, 2, &entry), 0);
	ck_assert_int_eq(meta_dirent_add(txn, 3, &entry), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, META_COOKIE_DOTDOT, collect, &all),
			 0);
	ck_assert_uint_eq(all.count, 200);
	for (size_t i = 0; i < all.count; i++) {
		ck_assert_uint_gt(all.cookies[i], META_COOKIE_DOTDOT);
		if (i > 0)
			ck_assert_uint_gt(all.cookies[i], all.cookies[i - 1]);
		ck_assert_int_eq(meta_dirent_get(txn, META_ROOT_INO, all.names[i],
						 strlen(all.names[i]), &got), 0);
		ck_assert_uint_eq(got.cookie, all.cookies[i]);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "file-%03d", i);
		ck_assert_int_ge(find_name(&all, name), 0);
	}
	/* Starting after "." is the same as after "..". */
	memset(&first, 0, sizeof(first));
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, META_COOKIE_DOT, collect, &first),
			 0);
	ck_assert_uint_eq(first.count, 200);
	/* Resuming after the last cookie yields nothing; after a huge one too. */
	memset(&first, 0, sizeof(first));
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, all.cookies[199], collect, &first),
			 0);
	ck_assert_uint_eq(first.count, 0);
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, UINT64_MAX, collect, &first), 0);
	ck_assert_uint_eq(first.count, 0);
	/* The callback's non-zero value stops the walk and is returned. */
	first.stop_after = 50;
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, META_COOKIE_DOTDOT, collect, &first),
			 42);
	ck_assert_uint_eq(first.count, 50);
	ck_assert_mem_eq(first.cookies, all.cookies, 50 * sizeof(uint64_t));
	meta_txn_abort(txn);
	last = first.cookies[49];

	/* Between two readdir calls: remove entries on both sides of the resume point and
	 * add new ones. The rest of the walk sees each remaining entry past the cookie once. */
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_dirent_del(txn, META_ROOT_INO, all.names[10],
					 strlen(all.names[10])), 0);
	ck_assert_int_eq(meta_dirent_del(txn, META_ROOT_INO, all.names[49],
					 strlen(all.names[49])), 0);
	ck_assert_int_eq(meta_dirent_del(txn, META_ROOT_INO, all.names[120],
					 strlen(all.names[120])), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "new-%02d", i);
		entry = make_entry(name, 500 + (uint64_t)i, DT_LNK);
		ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), 0);
	}
	ck_assert_int_eq(meta_txn_commit(txn), 0);

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, last, collect, &rest), 0);
	ck_assert_int_lt(find_name(&rest, all.names[120]), 0);
	for (size_t i = 50; i < 200; i++) {
		if (i != 120)
			ck_assert_int_ge(find_name(&rest, all.names[i]), 0);
	}
	for (size_t i = 0; i < rest.count; i++) {
		ck_assert_uint_gt(rest.cookies[i], last);
		if (i > 0)
			ck_assert_uint_gt(rest.cookies[i], rest.cookies[i - 1]);
	}
	/* New entries appear exactly when their cookie is past the resume point. */
	memset(&all, 0, sizeof(all));
	ck_assert_int_eq(meta_dir_iterate(txn, META_ROOT_INO, META_COOKIE_DOTDOT, collect, &all),
			 0);
	ck_assert_uint_eq(all.count, 200 - 3 + 20);
	{
		size_t expected_rest = 0;
		for (size_t i = 0; i < all.count; i++)
			expected_rest += all.cookies[i] > last;
		ck_assert_uint_eq(rest.count, expected_rest);
	}
	meta_txn_abort(txn);
}
END_TEST

START_TEST(test_xattr)
{
	struct meta_txn *txn;
	uint8_t *value;
	size_t len, needed;
	char list[64];
	static uint8_t big[META_XATTR_VALUE_MAX + 1];

	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_xattr_get(txn, 7, "user.a", &value, &len), -ENODATA);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.a", (const uint8_t *)"one", 3,
					XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.a", (const uint8_t *)"one", 3,
					XATTR_CREATE), 0);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.a", (const uint8_t *)"two", 3,
					XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(meta_xattr_get(txn, 7, "user.a", &value, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(value, "one", 3);
	free(value);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.a", (const uint8_t *)"longer", 6,
					XATTR_REPLACE), 0);
	ck_assert_int_eq(meta_xattr_get(txn, 7, "user.a", &value, &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_mem_eq(value, "longer", 6);
	free(value);
	/* Empty values exist; a plain set creates or replaces. */
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.empty", NULL, 0, 0), 0);
	ck_assert_int_eq(meta_xattr_get(txn, 7, "user.empty", &value, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(value);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "security.x", big, META_XATTR_VALUE_MAX, 0), 0);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.big", big, sizeof(big), 0), -E2BIG);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "", big, 1, 0), -ERANGE);
	/* Another inode's attributes are separate. */
	ck_assert_int_eq(meta_xattr_set(txn, 8, "user.a", (const uint8_t *)"eight", 5, 0), 0);
	ck_assert_int_eq(meta_xattr_set(txn, 6, "user.z", (const uint8_t *)"six", 3, 0), 0);

	ck_assert_int_eq(meta_xattr_list(txn, 7, NULL, 0, &needed), 0);
	ck_assert_uint_eq(needed, sizeof("user.a") + sizeof("user.empty") + sizeof("security.x"));
	ck_assert_int_eq(meta_xattr_list(txn, 7, list, needed - 1, &needed), -ERANGE);
	ck_assert_int_eq(meta_xattr_list(txn, 7, list, sizeof(list), &needed), 0);
	{
		size_t seen = 0;
		for (size_t off = 0; off < needed; off += strlen(list + off) + 1) {
			ck_assert(strcmp(list + off, "user.a") == 0 ||
				  strcmp(list + off, "user.empty") == 0 ||
				  strcmp(list + off, "security.x") == 0);
			seen++;
		}
		ck_assert_uint_eq(seen, 3);
	}
	ck_assert_int_eq(meta_xattr_list(txn, 9, list, sizeof(list), &needed), 0);
	ck_assert_uint_eq(needed, 0);

	ck_assert_int_eq(meta_xattr_del(txn, 7, "user.empty"), 0);
	ck_assert_int_eq(meta_xattr_del(txn, 7, "user.empty"), -ENODATA);
	ck_assert_int_eq(meta_xattr_list(txn, 7, NULL, 0, &needed), 0);
	ck_assert_uint_eq(needed, sizeof("user.a") + sizeof("security.x"));
	ck_assert_int_eq(meta_xattr_del_all(txn, 7), 0);
	ck_assert_int_eq(meta_xattr_list(txn, 7, NULL, 0, &needed), 0);
	ck_assert_uint_eq(needed, 0);
	ck_assert_int_eq(meta_xattr_get(txn, 8, "user.a", &value, &len), 0);
	ck_assert_mem_eq(value, "eight", 5);
	free(value);
	ck_assert_int_eq(meta_xattr_get(txn, 6, "user.z", &value, &len), 0);
	free(value);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
}
END_TEST

static int collect_ino(void *arg, uint64_t ino)
{
	uint64_t *list = arg;
	list[++list[0]] = ino;
	return 0;
}

struct reclaim {
	struct meta_txn *txn;
	int calls;
};

static int reclaim_orphan(void *arg, uint64_t ino)
{
	struct reclaim *r = arg;
	r->calls++;
	ck_assert_int_eq(meta_orphan_del(r->txn, ino), 0);
	ck_assert_int_eq(meta_inode_del(r->txn, ino), 0);
	return 0;
}

START_TEST(test_orphans)
{
	struct meta_txn *txn;
	struct meta_inode inode;
	uint64_t list[8] = { 0 };
	struct reclaim r = { 0 };

	regular_inode(&inode);
	inode.hole_count = 0;
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	for (uint64_t ino = 300; ino > 256; ino -= 20) {
		inode.ino = ino;
		ck_assert_int_eq(meta_inode_put(txn, &inode), 0);
		ck_assert_int_eq(meta_orphan_add(txn, ino), 0);
	}
	ck_assert_int_eq(meta_orphan_iterate(txn, collect_ino, list), 0);
	ck_assert_uint_eq(list[0], 3);
	ck_assert_uint_eq(list[1], 260);
	ck_assert_uint_eq(list[2], 280);
	ck_assert_uint_eq(list[3], 300);
	ck_assert_int_eq(meta_orphan_del(txn, 280), 0);
	ck_assert_int_eq(meta_orphan_del(txn, 280), -ENOENT);
	ck_assert_int_eq(meta_txn_commit(txn), 0);

	/* Reclaim at mount: the callback deletes as the walk goes. */
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	r.txn = txn;
	ck_assert_int_eq(meta_orphan_iterate(txn, reclaim_orphan, &r), 0);
	ck_assert_int_eq(r.calls, 2);
	list[0] = 0;
	ck_assert_int_eq(meta_orphan_iterate(txn, collect_ino, list), 0);
	ck_assert_uint_eq(list[0], 0);
	ck_assert_int_eq(meta_inode_get(txn, 280, &inode), 0);
	meta_inode_release(&inode);
	ck_assert_int_eq(meta_inode_get(txn, 300, &inode), -ENOENT);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
}
END_TEST

/* Raw access to the store beneath meta, as an attacker with the files has. */

static void raw_copy(enum store_table table, const void *key, size_t key_len, uint8_t *out,
		     size_t cap, size_t *len)
{
	struct store_txn *st;
	struct store_slice val;

	ck_assert_int_eq(store_txn_begin(store, false, &st), 0);
	ck_assert_int_eq(store_get(st, table, (struct store_slice){ key, key_len }, &val), 0);
	ck_assert_uint_le(val.len, cap);
	memcpy(out, val.data, val.len);
	*len = val.len;
	store_txn_abort(st);
}

static void raw_put(enum store_table table, const void *key, size_t key_len,
		    const uint8_t *value, size_t len)
{
	struct store_txn *st;

	ck_assert_int_eq(store_txn_begin(store, true, &st), 0);
	ck_assert_int_eq(store_put(st, table, (struct store_slice){ key, key_len },
				   (struct store_slice){ value, len }, 0), 0);
	ck_assert_int_eq(store_txn_commit(st), 0);
}

/* The key of the first entry of table. */
static size_t raw_first_key(enum store_table table, uint8_t *key, size_t cap)
{
	struct store_txn *st;
	struct store_cursor *cursor;
	struct store_slice k, v;
	size_t len;

	ck_assert_int_eq(store_txn_begin(store, false, &st), 0);
	ck_assert_int_eq(store_cursor_open(st, table, &cursor), 0);
	ck_assert_int_eq(store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &k, &v), 0);
	ck_assert_uint_le(k.len, cap);
	memcpy(key, k.data, k.len);
	len = k.len;
	store_cursor_close(cursor);
	store_txn_abort(st);
	return len;
}

static int read_inode(uint64_t ino)
{
	struct meta_txn *txn;
	struct meta_inode inode;
	int ret;

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ret = meta_inode_get(txn, ino, &inode);
	if (ret == 0)
		meta_inode_release(&inode);
	meta_txn_abort(txn);
	return ret;
}

static int read_dirent(uint64_t dir, const char *name)
{
	struct meta_txn *txn;
	struct meta_dirent entry;
	struct collected c = { 0 };
	int ret, ret2;

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ret = meta_dirent_get(txn, dir, name, strlen(name), &entry);
	ret2 = meta_dir_iterate(txn, dir, META_COOKIE_DOTDOT, collect, &c);
	meta_txn_abort(txn);
	/* Lookup and readdir agree on every outcome. */
	ck_assert_int_eq(ret, ret2);
	return ret;
}

static int read_xattr(uint64_t ino, const char *name)
{
	struct meta_txn *txn;
	uint8_t *value;
	size_t len, needed;
	int ret, ret2;

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ret = meta_xattr_get(txn, ino, name, &value, &len);
	if (ret == 0)
		free(value);
	ret2 = meta_xattr_list(txn, ino, NULL, 0, &needed);
	meta_txn_abort(txn);
	ck_assert_int_eq(ret, ret2);
	return ret;
}

static int read_orphans(void)
{
	struct meta_txn *txn;
	uint64_t list[8] = { 0 };
	int ret;

	ck_assert_int_eq(meta_txn_begin(meta, false, &txn), 0);
	ret = meta_orphan_iterate(txn, collect_ino, list);
	meta_txn_abort(txn);
	return ret;
}

static int alloc_ino(void)
{
	struct meta_txn *txn;
	uint64_t ino;
	int ret;

	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ret = meta_ino_alloc(txn, &ino);
	meta_txn_abort(txn);
	return ret;
}

static int reopen(void)
{
	meta_close(meta);
	meta = NULL;
	return meta_open(&meta, store, CRYPTO_XCHACHA20POLY1305, vault_id, keys);
}

/* Flip one bit in every byte of the value at table/key in turn: each read fails. */
static void flip_every_byte(enum store_table table, const void *key, size_t key_len,
			    int (*read)(void))
{
	uint8_t value[1024], bad[1024];
	size_t len;

	raw_copy(table, key, key_len, value, sizeof(value), &len);
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(read(), 0);
	for (size_t i = 0; i < len; i++) {
		memcpy(bad, value, len);
		bad[i] ^= (uint8_t)(1u << (i % 8));
		raw_put(table, key, key_len, bad, len);
		ck_assert_msg(read() == -EBADMSG, "flipped byte %zu of %zu", i, len);
	}
	/* Truncated, extended and zeroed values fail too. */
	raw_put(table, key, key_len, value, len - 1);
	ck_assert_int_eq(read(), -EBADMSG);
	memcpy(bad, value, len);
	bad[len] = 0;
	raw_put(table, key, key_len, bad, len + 1);
	ck_assert_int_eq(read(), -EBADMSG);
	memset(bad, 0, len);
	raw_put(table, key, key_len, bad, len);
	ck_assert_int_eq(read(), -EBADMSG);
	raw_put(table, key, key_len, value, 0);
	ck_assert_int_eq(read(), -EBADMSG);
	raw_put(table, key, key_len, value, len);
	ck_assert_int_eq(read(), 0);
}

static int read_inode_7(void) { return read_inode(7); }
static int read_dirent_a(void) { return read_dirent(META_ROOT_INO, "a"); }
static int read_xattr_7(void) { return read_xattr(7, "user.k"); }

static void populate_one_of_each(void)
{
	struct meta_txn *txn;
	struct meta_inode inode;
	struct meta_dirent entry = make_entry("a", 7, DT_REG);

	regular_inode(&inode);
	inode.ino = 7;
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_inode_put(txn, &inode), 0);
	inode.ino = 8;
	ck_assert_int_eq(meta_inode_put(txn, &inode), 0);
	ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), 0);
	ck_assert_int_eq(meta_xattr_set(txn, 7, "user.k", (const uint8_t *)"v", 1, 0), 0);
	ck_assert_int_eq(meta_orphan_add(txn, 8), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
}

START_TEST(test_tamper_bit_flips)
{
	uint8_t key[64];
	size_t key_len;

	populate_one_of_each();
	key_len = raw_first_key(STORE_INODES, key, sizeof(key));
	ck_assert_uint_eq(key_len, 8);
	/* The first inode key is the root's: use inode 7's, big-endian. */
	memset(key, 0, 8);
	key[7] = 7;
	flip_every_byte(STORE_INODES, key, 8, read_inode_7);
	key_len = raw_first_key(STORE_DIRENTS, key, sizeof(key));
	ck_assert_uint_eq(key_len, 32);
	flip_every_byte(STORE_DIRENTS, key, key_len, read_dirent_a);
	key_len = raw_first_key(STORE_XATTRS, key, sizeof(key));
	ck_assert_uint_eq(key_len, 24);
	flip_every_byte(STORE_XATTRS, key, key_len, read_xattr_7);
	key_len = raw_first_key(STORE_ORPHANS, key, sizeof(key));
	flip_every_byte(STORE_ORPHANS, key, key_len, read_orphans);
	flip_every_byte(STORE_META, "next-ino", 8, alloc_ino);
	flip_every_byte(STORE_META, "index-key", 9, reopen);
}
END_TEST

START_TEST(test_tamper_moved_values)
{
	uint8_t key7[8] = { 0, 0, 0, 0, 0, 0, 0, 7 };
	uint8_t key8[8] = { 0, 0, 0, 0, 0, 0, 0, 8 };
	uint8_t value[1024], orphan[1024], dirent_key[32], other_key[32];
	size_t len, orphan_len;
	struct meta_txn *txn;
	struct meta_dirent entry = make_entry("b", 8, DT_REG);

	populate_one_of_each();
	/* Inode 7's record stored as inode 8's. */
	raw_copy(STORE_INODES, key7, 8, value, sizeof(value), &len);
	raw_put(STORE_INODES, key8, 8, value, len);
	ck_assert_int_eq(read_inode(8), -EBADMSG);
	ck_assert_int_eq(read_inode(7), 0);

	/* A value moved to the same key in another table: the orphan of 8 replaced by
	 * inode 7's record under key 8, and inode 8 replaced by the orphan record. */
	raw_copy(STORE_ORPHANS, key8, 8, orphan, sizeof(orphan), &orphan_len);
	raw_put(STORE_ORPHANS, key8, 8, value, len);
	ck_assert_int_eq(read_orphans(), -EBADMSG);
	raw_put(STORE_INODES, key8, 8, orphan, orphan_len);
	ck_assert_int_eq(read_inode(8), -EBADMSG);

	/* A directory entry's value copied under another name's key. */
	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	ck_assert_int_eq(meta_dirent_add(txn, 2, &entry), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
	ck_assert_int_eq(read_dirent(2, "b"), 0);
	{
		/* Find the root's entry "a" and dir 2's entry "b" by elimination. */
		struct store_txn *st;
		struct store_cursor *cursor;
		struct store_slice k, v;
		ck_assert_int_eq(store_txn_begin(store, false, &st), 0);
		ck_assert_int_eq(store_cursor_open(st, STORE_DIRENTS, &cursor), 0);
		ck_assert_int_eq(store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &k, &v),
				 0);
		memcpy(dirent_key, k.data, 32);
		ck_assert_int_eq(store_cursor_next(cursor, &k, &v), 0);
		memcpy(other_key, k.data, 32);
		ck_assert_int_eq(store_cursor_next(cursor, &k, &v), -ENOENT);
		store_cursor_close(cursor);
		store_txn_abort(st);
	}
	raw_copy(STORE_DIRENTS, dirent_key, 32, value, sizeof(value), &len);
	raw_put(STORE_DIRENTS, other_key, 32, value, len);
	/* The overwritten name fails to authenticate; the other still reads. */
	{
		int a = read_dirent(META_ROOT_INO, "a"), b = read_dirent(2, "b");
		ck_assert((a == -EBADMSG && b == 0) || (a == 0 && b == -EBADMSG));
	}
}
END_TEST

START_TEST(test_wrong_key_or_vault)
{
	struct keysource *other;
	struct meta *m;
	uint8_t other_id[VAULT_ID_LEN];

	ck_assert_int_eq(keysource_ephemeral_new(&other), 0);
	ck_assert_int_eq(meta_open(&m, store, CRYPTO_XCHACHA20POLY1305, vault_id, other), -EBADMSG);
	ck_assert_ptr_null(m);
	keysource_free(other);
	/* The same key under another vault id (a store copied into another vault). */
	memcpy(other_id, vault_id, sizeof(other_id));
	other_id[0] ^= 1;
	ck_assert_int_eq(meta_open(&m, store, CRYPTO_XCHACHA20POLY1305, other_id, keys), -EBADMSG);
	ck_assert_int_eq(meta_open(&m, store, CRYPTO_AES256GCM, vault_id, keys) == 0, 0);
}
END_TEST

START_TEST(test_no_plaintext_on_disk)
{
	struct meta_txn *txn;
	struct meta_dirent entry;
	struct meta_inode link;
	char path[192];
	uint8_t *data;
	struct stat st;
	int fd;

	ck_assert_int_eq(meta_txn_begin(meta, true, &txn), 0);
	for (int i = 0; i < 50; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-%d.csv", MARKER, i);
		entry = make_entry(name, 100 + (uint64_t)i, DT_REG);
		ck_assert_int_eq(meta_dirent_add(txn, META_ROOT_INO, &entry), 0);
	}
	ck_assert_int_eq(meta_xattr_set(txn, 1, "user." MARKER, (const uint8_t *)MARKER,
					strlen(MARKER), 0), 0);
	symlink_inode(&link);
	link.symlink = "../" MARKER;
	link.size = strlen(link.symlink);
	ck_assert_int_eq(meta_inode_put(txn, &link), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);
	ck_assert_int_eq(store_sync(store), 0);

	snprintf(path, sizeof(path), "%s/data.mdb", store_dir);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(pread(fd, data, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	ck_assert_ptr_null(memmem(data, (size_t)st.st_size, MARKER, strlen(MARKER)));
	ck_assert_ptr_null(memmem(data, (size_t)st.st_size, "PHI-MARKER", 10));
	free(data);
}
END_TEST

static void *reader_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		if (read_inode(META_ROOT_INO) != 0)
			return (void *)1;
	}
	return NULL;
}

START_TEST(test_threads_share_meta)
{
	pthread_t threads[4];
	void *result;

	/* A fresh meta: the key cache is filled by whichever thread comes first. */
	ck_assert_int_eq(reopen(), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, reader_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(threads[i], &result), 0);
		ck_assert_ptr_null(result);
	}
}
END_TEST

/* The fuzz corpus and seeded mutations of its valid records: no crash; a refusal is
 * -EBADMSG and leaves nothing allocated; a record accepted re-encodes to its bytes. */

#define ONDISK_CORPUS TEST_DATA_DIR "/fuzz/corpus-ondisk"
#define INODE_MUTATIONS 100000
/* More than the longest record: the fixed part, every hole and the longest link. */
#define INODE_INPUT_MAX (256 + 16 * META_HOLES_MAX + META_SYMLINK_MAX)

static bool replay_inode(void *arg, const uint8_t *bytes, size_t len)
{
	(void)arg;
	struct meta_inode inode;
	uint8_t *out;
	size_t out_len;
	int ret = meta_inode_decode(&inode, bytes, len);

	if (ret != 0) {
		ck_assert_int_eq(ret, -EBADMSG);
		ck_assert_ptr_null(inode.holes);
		ck_assert_ptr_null(inode.symlink);
		return false;
	}
	ck_assert_int_eq(meta_inode_encode(&out, &out_len, &inode), 0);
	ck_assert_uint_eq(out_len, len);
	ck_assert(memcmp(out, bytes, len) == 0);
	free(out);
	meta_inode_release(&inode);
	return true;
}

START_TEST(test_inode_fuzz_replay)
{
	static uint8_t buf[INODE_INPUT_MAX + 64];
	struct replay_corpus corpus;
	uint64_t state = UINT64_C(0x6d657461696e6f64);

	ck_assert_int_eq(replay_corpus_load(&corpus, ONDISK_CORPUS, REPLAY_ONDISK_META_INODE,
					    INODE_INPUT_MAX + 64), 0);
	struct replay_counts c = replay_run(&corpus, replay_inode, NULL, &state, INODE_MUTATIONS,
					    buf, sizeof(buf), NULL);
	/* Seeds of every file type, and malformed ones. */
	ck_assert_uint_ge(c.valid, 10);
	ck_assert_uint_gt(c.inputs, c.valid + 10);
	/* Both paths were exercised in earnest. */
	ck_assert_uint_gt(c.accepted, INODE_MUTATIONS / 100);
	ck_assert_uint_gt(c.rejected, INODE_MUTATIONS / 2);
	replay_corpus_release(&corpus);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("meta");
	TCase *records = tcase_create("records");
	TCase *store_tc = tcase_create("store");

	tcase_add_test(records, test_inode_encode_known_answer);
	tcase_add_test(records, test_inode_decode_rejects);
	tcase_add_test(records, test_inode_encode_rejects);
	tcase_add_test(records, test_inode_copy);
	tcase_add_test(records, test_inode_fuzz_replay);
	tcase_set_timeout(records, 30);
	suite_add_tcase(suite, records);

	tcase_add_checked_fixture(store_tc, setup, teardown);
	tcase_set_timeout(store_tc, 60);
	tcase_add_test(store_tc, test_format_root_and_alloc);
	tcase_add_test(store_tc, test_inode_round_trip);
	tcase_add_test(store_tc, test_dirent_basic);
	tcase_add_test(store_tc, test_dir_iterate);
	tcase_add_test(store_tc, test_xattr);
	tcase_add_test(store_tc, test_orphans);
	tcase_add_test(store_tc, test_tamper_bit_flips);
	tcase_add_test(store_tc, test_tamper_moved_values);
	tcase_add_test(store_tc, test_wrong_key_or_vault);
	tcase_add_test(store_tc, test_no_plaintext_on_disk);
	tcase_add_test(store_tc, test_threads_share_meta);
	suite_add_tcase(suite, store_tc);
	return harness_run(suite);
}
