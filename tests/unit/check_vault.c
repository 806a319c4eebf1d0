/*
 * Unit tests of the vault directory: header encoding (known answer), create and open,
 * refusal of a wrong key, a tampered or truncated header, an unknown format version,
 * a non-empty or non-vault directory, object file paths, and the count of key versions
 * in use (objects and metadata values) made without a key; the vault headers of the fuzz
 * corpus (tests/fuzz/corpus-ondisk) and seeded mutations of them; a backing store
 * holding symbolic links (every file and directory of a used vault in turn) refused,
 * and never followed.
 */
#include "lib/vault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/keysource.h"
#include "lib/meta.h"
#include "lib/secret.h"
#include "lib/store.h"
#include "tests/fuzz/replay.h"
#include "tests/harness.h"

static char test_dir[64];
static char vault_dir[128];
static struct keysource *keys;

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
	strcpy(test_dir, "/tmp/check_vault.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(vault_dir, sizeof(vault_dir), "%s/v", test_dir);
	ck_assert_int_eq(keysource_ephemeral_new(&keys), 0);
}

static void teardown(void)
{
	keysource_free(keys);
	keys = NULL;
	nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void vault_file(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", vault_dir, name);
}

static void read_header_bytes(uint8_t out[VAULT_HEADER_LEN])
{
	char path[192];
	int fd;

	vault_file(path, sizeof(path), VAULT_HEADER_FILE);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, out, VAULT_HEADER_LEN), VAULT_HEADER_LEN);
	close(fd);
}

static void write_header_bytes(const uint8_t *bytes, size_t len)
{
	char path[192];
	int fd;

	vault_file(path, sizeof(path), VAULT_HEADER_FILE);
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

static int try_open(struct keysource *source)
{
	struct vault *vault;
	int ret = vault_open(&vault, vault_dir, source, 0);

	if (ret == 0)
		vault_close(vault);
	else
		ck_assert_ptr_null(vault);
	return ret;
}

static const char header_hex[] =
	"5641554c54465300"                                                  /* magic */
	"01000000" "02000000" "01000000"                                    /* version, cipher, flags */
	"0000006500000000"                                                  /* created */
	"101112131415161718191a1b1c1d1e1f"                                  /* vault id */
	"00000000"                                                          /* check version */
	"00000000000000000000000000000000"                                  /* reserved */
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"  /* key check */
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"; /* mac */

static void known_header(struct vault_header *header)
{
	memset(header, 0, sizeof(*header));
	header->format_version = 1;
	header->cipher = CRYPTO_XCHACHA20POLY1305;
	header->flags = VAULT_FLAG_EPHEMERAL;
	header->created = 0x65000000;
	for (int i = 0; i < VAULT_ID_LEN; i++)
		header->vault_id[i] = (uint8_t)(0x10 + i);
	header->check_version = 1;
	for (int i = 0; i < VAULT_CHECK_LEN; i++) {
		header->key_check[i] = (uint8_t)(0xa0 + i);
		header->mac[i] = (uint8_t)(0xc0 + i);
	}
}

START_TEST(test_header_known_answer)
{
	struct vault_header header, decoded;
	uint8_t expected[VAULT_HEADER_LEN], out[VAULT_HEADER_LEN], bad[VAULT_HEADER_LEN];

	ck_assert_uint_eq(strlen(header_hex), 2 * VAULT_HEADER_LEN);
	ck_assert_int_eq(crypto_from_hex(expected, sizeof(expected), header_hex,
					 strlen(header_hex)), 0);
	known_header(&header);
	vault_header_encode(out, &header);
	ck_assert_mem_eq(out, expected, VAULT_HEADER_LEN);
	ck_assert_int_eq(vault_header_decode(&decoded, expected), 0);
	ck_assert_mem_eq(&decoded, &header, sizeof(header));

	memcpy(bad, expected, sizeof(bad));
	bad[0] = 'v';
	ck_assert_int_eq(vault_header_decode(&decoded, bad), -EBADMSG);
	memcpy(bad, expected, sizeof(bad));
	bad[7] = '!';
	ck_assert_int_eq(vault_header_decode(&decoded, bad), -EBADMSG);
	for (int i = 48; i < 64; i++) {
		memcpy(bad, expected, sizeof(bad));
		bad[i] = 1;
		ck_assert_int_eq(vault_header_decode(&decoded, bad), -EBADMSG);
	}
	/* The key check version: 0 stands for 1, and 1 itself is not its encoding. */
	memcpy(bad, expected, sizeof(bad));
	bad[44] = 1;
	ck_assert_int_eq(vault_header_decode(&decoded, bad), -EBADMSG);
	bad[44] = 7;
	ck_assert_int_eq(vault_header_decode(&decoded, bad), 0);
	ck_assert_uint_eq(decoded.check_version, 7);
	vault_header_encode(out, &decoded);
	ck_assert_mem_eq(out, bad, VAULT_HEADER_LEN);
	memcpy(bad, expected, sizeof(bad));
	bad[8] = 2;
	ck_assert_int_eq(vault_header_decode(&decoded, bad), -EPROTONOSUPPORT);
	memcpy(bad, expected, sizeof(bad));
	bad[11] = 1;
	ck_assert_int_eq(vault_header_decode(&decoded, bad), -EPROTONOSUPPORT);
	/* Unknown ciphers and flags decode, so tools can show them; open refuses them. */
	memcpy(bad, expected, sizeof(bad));
	bad[12] = 9;
	bad[17] = 1;
	ck_assert_int_eq(vault_header_decode(&decoded, bad), 0);
	ck_assert_uint_eq(decoded.cipher, 9);
	ck_assert_uint_eq(decoded.flags, 0x101);
}
END_TEST

START_TEST(test_create_open)
{
	struct vault_header header;
	struct vault *vault;
	struct meta_txn *txn;
	struct meta_inode root;
	uint8_t bytes[VAULT_HEADER_LEN], check[VAULT_CHECK_LEN];
	uint8_t *dek;
	char path[192];
	struct stat st;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, VAULT_FLAG_EPHEMERAL,
				      keys, 1234, 5678), 0);
	ck_assert_int_eq(stat(vault_dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	vault_file(path, sizeof(path), VAULT_OBJECTS_DIR);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	vault_file(path, sizeof(path), VAULT_HEADER_FILE);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, VAULT_HEADER_LEN);
	vault_file(path, sizeof(path), VAULT_HEADER_FILE ".tmp");
	ck_assert_int_eq(access(path, F_OK), -1);

	/* The header is readable without a key. */
	ck_assert_int_eq(vault_header_read(vault_dir, &header), 0);
	ck_assert_uint_eq(header.format_version, VAULT_FORMAT_VERSION);
	ck_assert_uint_eq(header.cipher, CRYPTO_XCHACHA20POLY1305);
	ck_assert_uint_eq(header.flags, VAULT_FLAG_EPHEMERAL);
	ck_assert_uint_ge(header.created, 1700000000);

	/* key_check and mac are the documented PRFs of the version-1 DEK. */
	dek = secret_alloc(CRYPTO_KEY_LEN);
	ck_assert_ptr_nonnull(dek);
	ck_assert_int_eq(keysource_get(keys, 1, dek), 0);
	read_header_bytes(bytes);
	ck_assert_int_eq(crypto_prf(check, sizeof(check), CRYPTO_CTX_KEY_CHECK, header.vault_id,
				    VAULT_ID_LEN, dek), 0);
	ck_assert_mem_eq(bytes + 64, check, VAULT_CHECK_LEN);
	ck_assert_int_eq(crypto_prf(check, sizeof(check), CRYPTO_CTX_HEADER_MAC, bytes, 96, dek),
			 0);
	ck_assert_mem_eq(bytes + 96, check, VAULT_CHECK_LEN);
	secret_free(dek);

	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	ck_assert_mem_eq(vault->header.vault_id, header.vault_id, VAULT_ID_LEN);
	ck_assert_ptr_eq(vault->keys, keys);
	ck_assert_int_eq(meta_txn_begin(vault->meta, false, &txn), 0);
	ck_assert_int_eq(meta_inode_get(txn, META_ROOT_INO, &root), 0);
	ck_assert_uint_eq(root.uid, 1234);
	ck_assert_uint_eq(root.gid, 5678);
	ck_assert(S_ISDIR(root.mode));
	meta_inode_release(&root);
	meta_txn_abort(txn);
	vault_close(vault);

	/* Read-only open reads but refuses writes. */
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, VAULT_OPEN_READ_ONLY), 0);
	ck_assert_int_eq(meta_txn_begin(vault->meta, true, &txn), -EROFS);
	ck_assert_int_eq(meta_txn_begin(vault->meta, false, &txn), 0);
	ck_assert_int_eq(meta_inode_get(txn, META_ROOT_INO, &root), 0);
	meta_inode_release(&root);
	meta_txn_abort(txn);
	vault_close(vault);

	/* A second create on the same directory is refused. */
	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0),
			 -ENOTEMPTY);
	ck_assert_int_eq(try_open(keys), 0);
}
END_TEST

START_TEST(test_create_in_empty_dir)
{
	ck_assert_int_eq(mkdir(vault_dir, 0755), 0);
	ck_assert_int_eq(vault_create(vault_dir, crypto_cipher_default(), 0, keys, 0, 0), 0);
	ck_assert_int_eq(try_open(keys), 0);
}
END_TEST

START_TEST(test_create_refuses)
{
	char path[192];
	struct stat st;
	DIR *d;
	int entries = 0;

	/* A non-empty directory: refused and left as it was. */
	ck_assert_int_eq(mkdir(vault_dir, 0700), 0);
	vault_file(path, sizeof(path), "data.csv");
	fclose(fopen(path, "w"));
	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0),
			 -ENOTEMPTY);
	d = opendir(vault_dir);
	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		entries++;
	closedir(d);
	ck_assert_int_eq(entries, 3);
	ck_assert_int_eq(stat(path, &st), 0);

	/* A hidden file counts too. */
	ck_assert_int_eq(unlink(path), 0);
	vault_file(path, sizeof(path), ".keep");
	fclose(fopen(path, "w"));
	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0),
			 -ENOTEMPTY);

	/* A file where the directory should be. */
	ck_assert_int_eq(vault_create(path, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), -ENOTDIR);
	/* Unknown flags and ciphers. */
	snprintf(path, sizeof(path), "%s/w", test_dir);
	ck_assert_int_eq(vault_create(path, CRYPTO_XCHACHA20POLY1305, 0x100, keys, 0, 0),
			 -EINVAL);
	ck_assert_int_eq(vault_create(path, (enum crypto_cipher)7, 0, keys, 0, 0), -EINVAL);
	ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(test_not_a_vault)
{
	struct vault_header header;

	ck_assert_int_eq(try_open(keys), -ENOENT);
	ck_assert_int_eq(vault_header_read(vault_dir, &header), -ENOENT);
	ck_assert_int_eq(mkdir(vault_dir, 0700), 0);
	ck_assert_int_eq(try_open(keys), -ENOENT);
	ck_assert_int_eq(vault_header_read(vault_dir, &header), -ENOENT);
}
END_TEST

START_TEST(test_wrong_key)
{
	struct keysource *other;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	ck_assert_int_eq(keysource_ephemeral_new(&other), 0);
	ck_assert_int_eq(try_open(other), -EKEYREJECTED);
	keysource_free(other);
	ck_assert_int_eq(try_open(keys), 0);
}
END_TEST

START_TEST(test_tampered_header)
{
	uint8_t good[VAULT_HEADER_LEN], bad[VAULT_HEADER_LEN + 1];
	struct vault_header header;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	read_header_bytes(good);
	for (size_t i = 0; i < VAULT_HEADER_LEN; i++) {
		int expected;

		if (i >= 8 && i < 12)
			expected = -EPROTONOSUPPORT;      /* format version */
		else if ((i >= 28 && i < 44) || (i >= 64 && i < 96))
			expected = -EKEYREJECTED;         /* vault id or key check */
		else if (i >= 44 && i < 48)
			expected = -ENOKEY;               /* key check version: not in the source */
		else
			expected = -EBADMSG;              /* magic, reserved, MAC'd fields, MAC */
		memcpy(bad, good, sizeof(good));
		bad[i] ^= (uint8_t)(1u << (i % 8));
		write_header_bytes(bad, VAULT_HEADER_LEN);
		ck_assert_msg(try_open(keys) == expected, "header byte %zu", i);
	}
	/* Cipher and flags changed to values this release does know: the MAC says no. */
	memcpy(bad, good, sizeof(good));
	bad[12] = CRYPTO_AES256GCM;
	write_header_bytes(bad, VAULT_HEADER_LEN);
	ck_assert_int_eq(try_open(keys), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[16] = VAULT_FLAG_EPHEMERAL;
	write_header_bytes(bad, VAULT_HEADER_LEN);
	ck_assert_int_eq(try_open(keys), -EBADMSG);
	/* Truncated, extended, zeroed. */
	write_header_bytes(good, VAULT_HEADER_LEN - 1);
	ck_assert_int_eq(try_open(keys), -EBADMSG);
	ck_assert_int_eq(vault_header_read(vault_dir, &header), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[VAULT_HEADER_LEN] = 0;
	write_header_bytes(bad, VAULT_HEADER_LEN + 1);
	ck_assert_int_eq(try_open(keys), -EBADMSG);
	memset(bad, 0, sizeof(bad));
	write_header_bytes(bad, VAULT_HEADER_LEN);
	ck_assert_int_eq(try_open(keys), -EBADMSG);
	write_header_bytes(good, 0);
	ck_assert_int_eq(try_open(keys), -EBADMSG);
	/* Restored, it opens again. */
	write_header_bytes(good, VAULT_HEADER_LEN);
	ck_assert_int_eq(try_open(keys), 0);
}
END_TEST

START_TEST(test_unsupported_version)
{
	uint8_t bytes[VAULT_HEADER_LEN];
	struct vault_header header;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	read_header_bytes(bytes);
	bytes[8] = 2;
	write_header_bytes(bytes, sizeof(bytes));
	ck_assert_int_eq(vault_header_read(vault_dir, &header), -EPROTONOSUPPORT);
	ck_assert_int_eq(try_open(keys), -EPROTONOSUPPORT);
}
END_TEST

START_TEST(test_missing_store)
{
	char path[192];

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	vault_file(path, sizeof(path), VAULT_META_DIR "/data.mdb");
	ck_assert_int_eq(unlink(path), 0);
	/* A vault header without its metadata is damage, not "no vault here". */
	ck_assert_int_eq(try_open(keys), -EIO);
}
END_TEST

START_TEST(test_object_files)
{
	static const uint8_t id[OBJECT_ID_LEN] = { 0xab, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
						   0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0xff };
	uint8_t id2[OBJECT_ID_LEN];
	char path[VAULT_OBJECT_PATH_LEN], full[256];
	struct vault *vault;
	struct stat st;
	uint64_t count;
	int fd;

	vault_object_path(path, id);
	ck_assert_str_eq(path, "ab/ab0102030405060708090a0b0c0d0eff");

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	ck_assert_int_eq(vault_object_count(vault_dir, &count), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	ck_assert_int_eq(vault_object_open(vault, id, O_RDONLY), -ENOENT);
	fd = vault_object_open(vault, id, O_WRONLY | O_CREAT | O_EXCL);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	close(fd);
	ck_assert_int_eq(vault_object_open(vault, id, O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
	snprintf(full, sizeof(full), "%s/objects/%s", vault_dir, path);
	ck_assert_int_eq(stat(full, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	memcpy(id2, id, sizeof(id2));
	id2[15] = 0x00;
	fd = vault_object_open(vault, id2, O_RDWR | O_CREAT);
	ck_assert_int_ge(fd, 0);
	close(fd);
	id2[0] = 0x00;
	fd = vault_object_open(vault, id2, O_RDWR | O_CREAT);
	ck_assert_int_ge(fd, 0);
	close(fd);

	/* Stray files are not objects. */
	snprintf(full, sizeof(full), "%s/objects/ab/not-an-object", vault_dir);
	fclose(fopen(full, "w"));
	snprintf(full, sizeof(full), "%s/objects/ab/00000000000000000000000000000000", vault_dir);
	fclose(fopen(full, "w"));
	snprintf(full, sizeof(full), "%s/objects/stray", vault_dir);
	fclose(fopen(full, "w"));
	ck_assert_int_eq(vault_object_count(vault_dir, &count), 0);
	ck_assert_uint_eq(count, 3);

	ck_assert_int_eq(vault_object_unlink(vault, id), 0);
	ck_assert_int_eq(vault_object_unlink(vault, id), -ENOENT);
	ck_assert_int_eq(vault_object_count(vault_dir, &count), 0);
	ck_assert_uint_eq(count, 2);
	vault_close(vault);
	ck_assert_int_eq(vault_object_count(test_dir, &count), -ENOENT);
}
END_TEST

/* Files in objects/sub, and their bytes. */
static size_t dir_files(const char *sub, size_t *bytes)
{
	char full[256];
	struct dirent *entry;
	struct stat st;
	size_t count = 0;
	DIR *d;

	*bytes = 0;
	snprintf(full, sizeof(full), "%s/objects/%s", vault_dir, sub);
	d = opendir(full);
	if (d == NULL)
		return 0;
	while ((entry = readdir(d)) != NULL) {
		if (entry->d_name[0] == '.')
			continue;
		/* The pool's thread may move a file on between readdir and here. */
		if (fstatat(dirfd(d), entry->d_name, &st, 0) < 0) {
			ck_assert_int_eq(errno, ENOENT);
			continue;
		}
		*bytes += (size_t)st.st_size;
		count++;
	}
	closedir(d);
	return count;
}

static size_t pool_files(size_t *bytes)
{
	return dir_files("free", bytes);
}

/* Removed objects are emptied and kept for reuse; a new object takes one back. */
START_TEST(test_object_pool)
{
	struct meta_inode rec = { .ino = 2, .mode = S_IFREG | 0600, .nlink = 1 };
	char path[VAULT_OBJECT_PATH_LEN], full[256];
	uint8_t first[OBJECT_ID_LEN], junk[8192];
	struct vault *vault;
	struct stat st;
	uint64_t count;
	size_t bytes;
	int fd;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	fd = vault_object_create(vault, &rec);
	ck_assert_int_ge(fd, 0);
	memset(junk, 0x5a, sizeof(junk));
	ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), OBJECT_HEADER_LEN), (ssize_t)sizeof(junk));
	close(fd);
	memcpy(first, rec.object_id, OBJECT_ID_LEN);
	ck_assert_int_eq(pool_files(&bytes), 0);

	/* Removed: gone from its place, emptied into the pool, not counted as an object. */
	ck_assert_int_eq(vault_object_unlink(vault, first), 0);
	ck_assert_int_eq(vault_object_open(vault, first, O_RDONLY), -ENOENT);
	vault_object_settle(vault);
	ck_assert_uint_eq(dir_files("trash", &bytes), 0);
	ck_assert_uint_eq(pool_files(&bytes), 1);
	ck_assert_uint_eq(bytes, 0);
	ck_assert_int_eq(vault_object_count(vault_dir, &count), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_int_eq(vault_object_unlink(vault, first), -ENOENT);

	/* Created: the pool file comes back under the new id, holding just a header. */
	fd = vault_object_create(vault, &rec);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert(memcmp(rec.object_id, first, OBJECT_ID_LEN) != 0);
	ck_assert_uint_eq(pool_files(&bytes), 0);
	vault_object_path(path, rec.object_id);
	snprintf(full, sizeof(full), "%s/objects/%s", vault_dir, path);
	ck_assert_int_eq(stat(full, &st), 0);
	ck_assert_int_eq(st.st_size, OBJECT_HEADER_LEN);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);

	/* The pool outlives the mount: a file removed now is found by the next open. */
	ck_assert_int_eq(vault_object_unlink(vault, rec.object_id), 0);
	vault_close(vault);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	fd = vault_object_create(vault, &rec);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_uint_eq(pool_files(&bytes), 0);
	ck_assert_int_eq(vault_object_count(vault_dir, &count), 0);
	ck_assert_uint_eq(count, 1);
	vault_close(vault);
}
END_TEST

/* A new object for rec holding text after its header. */
static void create_with(struct vault *vault, struct meta_inode *rec, const char *text)
{
	int fd = vault_object_create(vault, rec);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, text, strlen(text), OBJECT_HEADER_LEN), (ssize_t)strlen(text));
	close(fd);
}

/* A removal is a rename: the emptying happens behind it, and no removed ciphertext
 * outlives the vault's close, nor a crash (what is left in objects/trash is emptied by the
 * next open). */
START_TEST(test_object_trash)
{
	static const char marker[] = "TRASH-MARKER-1f4e";
	struct meta_inode rec = { .ino = 2, .mode = S_IFREG | 0600, .nlink = 1 };
	char full[512], name[2 * OBJECT_ID_LEN + 1];
	uint8_t left[OBJECT_ID_LEN];
	struct vault *vault;
	size_t bytes;
	FILE *f;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	vault_object_start(vault);
	for (int i = 0; i < 40; i++) {
		create_with(vault, &rec, marker);
		ck_assert_int_eq(vault_object_unlink(vault, rec.object_id), 0);
		ck_assert_int_eq(vault_object_open(vault, rec.object_id, O_RDONLY), -ENOENT);
	}
	vault_close(vault);
	ck_assert_uint_eq(dir_files("trash", &bytes), 0);
	/* Between 1 and 40 files: a create takes one back when one is ready. */
	size_t pooled = pool_files(&bytes);
	ck_assert_uint_ge(pooled, 1);
	ck_assert_uint_eq(bytes, 0);
	ck_assert(!harness_dir_contains(vault_dir, marker, strlen(marker)));

	/* A crash between the rename and the emptying. An opener that does not start the
	 * pool (it may not hold the vault's lock) leaves the trash alone... */
	crypto_random(left, sizeof(left));
	crypto_to_hex(name, sizeof(name), left, sizeof(left));
	snprintf(full, sizeof(full), "%s/objects/trash/%s", vault_dir, name);
	f = fopen(full, "w");
	ck_assert_ptr_nonnull(f);
	fputs(marker, f);
	fclose(f);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	vault_object_settle(vault);
	vault_close(vault);
	ck_assert_uint_eq(dir_files("trash", &bytes), 1);

	/* ...the lock holder's start empties it, and its thread empties what it removes. */
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	vault_object_start(vault);
	vault_object_settle(vault);
	ck_assert_uint_eq(dir_files("trash", &bytes), 0);
	ck_assert_uint_eq(pool_files(&bytes), pooled + 1);
	ck_assert_uint_eq(bytes, 0);
	ck_assert(!harness_dir_contains(vault_dir, marker, strlen(marker)));
	create_with(vault, &rec, marker);
	ck_assert_int_eq(vault_object_unlink(vault, rec.object_id), 0);
	for (int waited = 0; dir_files("trash", &bytes) > 0 && waited < 10000; waited += 10)
		usleep(10000);
	ck_assert_uint_eq(dir_files("trash", &bytes), 0);
	ck_assert(!harness_dir_contains(vault_dir, marker, strlen(marker)));
	vault_close(vault);
}
END_TEST

/* A new vault, opened with its pool's thread started, holding count objects with a little
 * content each; their ids go to ids. */
static struct vault *vault_with_objects(uint8_t (*ids)[OBJECT_ID_LEN], int count)
{
	struct meta_inode rec = { .ino = 2, .mode = S_IFREG | 0600, .nlink = 1 };
	struct vault *vault;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	vault_object_start(vault);
	for (int i = 0; i < count; i++) {
		create_with(vault, &rec, "some ciphertext");
		memcpy(ids[i], rec.object_id, OBJECT_ID_LEN);
	}
	return vault;
}

/* A burst of removals (rm -r) is not slowed by the emptying: the thread waits until the
 * removals pause. Without the wait it empties alongside and the trash holds a fraction. */
START_TEST(test_trash_waits_for_a_burst)
{
	enum { N = 200 };
	static uint8_t ids[N][OBJECT_ID_LEN];
	struct vault *vault = vault_with_objects(ids, N);
	size_t bytes;

	for (int i = 0; i < N; i++)
		ck_assert_int_eq(vault_object_unlink(vault, ids[i]), 0);
	/* Each emptying looks for a pause first, so a stall of this thread costs one file. */
	size_t waiting = dir_files("trash", &bytes);
	ck_assert_msg(waiting >= N - 5, "only %zu of %d removed files left for after the burst",
		      waiting, N);
	/* Once it is over, all of it is emptied without anyone asking. */
	for (int waited = 0; dir_files("trash", &bytes) > 0 && waited < 10000; waited += 10)
		usleep(10000);
	ck_assert_uint_eq(dir_files("trash", &bytes), 0);
	ck_assert_uint_eq(pool_files(&bytes), N);
	ck_assert_uint_eq(bytes, 0);
	vault_close(vault);
}
END_TEST

/* Removals that never pause still get emptied: no file waits much longer than 2 s. */
START_TEST(test_trash_delay_is_bounded)
{
	enum { N = 300 };
	static uint8_t ids[N][OBJECT_ID_LEN];
	struct vault *vault = vault_with_objects(ids, N);
	size_t bytes;

	/* One removal every 10 ms for 3 s: never the 50 ms pause the emptier waits for. */
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(vault_object_unlink(vault, ids[i]), 0);
		usleep(10000);
	}
	size_t emptied = pool_files(&bytes);
	ck_assert_msg(emptied >= 50, "only %zu of %d files emptied during 3 s of removals",
		      emptied, N);
	vault_close(vault);
	ck_assert_uint_eq(dir_files("trash", &bytes), 0);
}
END_TEST

/* Write a fake object file whose plaintext header names key_version. */
static void write_object(const uint8_t id[OBJECT_ID_LEN], uint32_t key_version, size_t len)
{
	struct object_header header = {
		.format_version = OBJECT_FORMAT_VERSION,
		.cipher = CRYPTO_XCHACHA20POLY1305,
		.key_version = key_version,
		.block_size = OBJECT_BLOCK_SIZE,
	};
	uint8_t bytes[OBJECT_HEADER_LEN];
	char path[VAULT_OBJECT_PATH_LEN], full[256];
	int fd;

	memcpy(header.object_id, id, OBJECT_ID_LEN);
	object_header_encode(bytes, &header);
	vault_object_path(path, id);
	path[2] = '\0';
	snprintf(full, sizeof(full), "%s/objects/%s", vault_dir, path);
	mkdir(full, 0700);
	path[2] = '/';
	snprintf(full, sizeof(full), "%s/objects/%s", vault_dir, path);
	fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

static const struct vault_key_use *find_use(const struct vault_key_use *uses, size_t count,
					    uint32_t version)
{
	for (size_t i = 0; i < count; i++)
		if (uses[i].version == version)
			return &uses[i];
	return NULL;
}

START_TEST(test_key_versions_in_use)
{
	uint8_t id[OBJECT_ID_LEN] = { 0x10 };
	uint8_t key[CRYPTO_KEY_LEN];
	const struct vault_key_use *use;
	struct vault_key_use *uses;
	struct keysource *memory;
	struct meta_inode inode = { 0 };
	struct meta_txn *txn;
	struct vault *vault;
	char full[256];
	size_t count;

	ck_assert_int_eq(vault_key_versions_in_use(test_dir, &uses, &count), -ENOENT);
	ck_assert_int_eq(keysource_memory_new(&memory), 0);
	memset(key, 1, sizeof(key));
	ck_assert_int_eq(keysource_memory_add(memory, 1, key), 0);
	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, memory, 0, 0), 0);

	/* A new vault: its records are sealed under version 1, no objects. */
	ck_assert_int_eq(vault_key_versions_in_use(vault_dir, &uses, &count), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(uses[0].version, 1);
	ck_assert_uint_ge(uses[0].records, 3);
	ck_assert_uint_eq(uses[0].objects, 0);
	free(uses);

	/* After a rotation, a new record is sealed under version 2. */
	memset(key, 2, sizeof(key));
	ck_assert_int_eq(keysource_memory_add(memory, 2, key), 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, memory, 0), 0);
	ck_assert_int_eq(meta_txn_begin(vault->meta, true, &txn), 0);
	ck_assert_int_eq(meta_ino_alloc(txn, &inode.ino), 0);
	inode.mode = S_IFREG | 0600;
	inode.nlink = 1;
	inode.parent = META_ROOT_INO;
	ck_assert_int_eq(meta_inode_put(txn, &inode), 0);
	ck_assert_int_eq(meta_txn_commit(txn), 0);

	/* Objects: two under version 2, one under 5, one too short to name a version. */
	write_object(id, 2, OBJECT_HEADER_LEN);
	id[15] = 1;
	write_object(id, 2, OBJECT_HEADER_LEN);
	id[0] = 0xfe;
	write_object(id, 5, OBJECT_HEADER_LEN);
	id[15] = 2;
	write_object(id, 5, 10);
	snprintf(full, sizeof(full), "%s/objects/10/stray", vault_dir);
	fclose(fopen(full, "w"));

	vault_close(vault);
	ck_assert_int_eq(vault_key_versions_in_use(vault_dir, &uses, &count), 0);
	ck_assert_uint_eq(count, 4);
	for (size_t i = 1; i < count; i++)
		ck_assert_uint_lt(uses[i - 1].version, uses[i].version);
	use = find_use(uses, count, 0);
	ck_assert_ptr_nonnull(use);
	ck_assert_uint_eq(use->objects, 1);
	ck_assert_uint_eq(use->records, 0);
	use = find_use(uses, count, 1);
	ck_assert_ptr_nonnull(use);
	ck_assert_uint_ge(use->records, 1);
	ck_assert_uint_eq(use->objects, 0);
	use = find_use(uses, count, 2);
	ck_assert_ptr_nonnull(use);
	ck_assert_uint_eq(use->objects, 2);
	ck_assert_uint_ge(use->records, 1);
	use = find_use(uses, count, 5);
	ck_assert_ptr_nonnull(use);
	ck_assert_uint_eq(use->objects, 1);
	ck_assert_uint_eq(use->records, 0);
	free(uses);
	keysource_free(memory);
}
END_TEST

/* The fuzz corpus and seeded mutations of its valid headers: the decoder's verdict is the
 * one the layout gives, and a header accepted re-encodes to its bytes. */

#define ONDISK_CORPUS TEST_DATA_DIR "/fuzz/corpus-ondisk"
#define HEADER_MUTATIONS 50000

/*
 * A hostile backing store. The sentinel stands for a host file and a host directory
 * outside the vault that a link in the vault points to; nothing vaultfs does may change
 * them.
 */
#define SENTINEL_LEN 100
#define VAULT_PATHS_MAX 64

struct sentinel {
	char file[192];       /* SENTINEL_LEN known bytes */
	char dir[192];        /* holds one such file, named inner */
	char inner[192 + 2 * OBJECT_ID_LEN + 2];
	struct stat file_st, dir_st, inner_st;
};

static void sentinel_bytes(uint8_t out[SENTINEL_LEN])
{
	for (int i = 0; i < SENTINEL_LEN; i++)
		out[i] = (uint8_t)(0x5a ^ i);
}

static void write_sentinel_file(const char *path)
{
	uint8_t bytes[SENTINEL_LEN];
	int fd;

	sentinel_bytes(bytes);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bytes, sizeof(bytes)), (ssize_t)sizeof(bytes));
	close(fd);
}

/* Make the sentinel file and directory in test_dir; the directory's file is named
 * inner_name (what vaultfs would open there if it followed the link). */
static void sentinel_make(struct sentinel *sentinel, const char *inner_name)
{
	snprintf(sentinel->file, sizeof(sentinel->file), "%s/host-file", test_dir);
	snprintf(sentinel->dir, sizeof(sentinel->dir), "%s/host-dir", test_dir);
	snprintf(sentinel->inner, sizeof(sentinel->inner), "%s/%s", sentinel->dir, inner_name);
	write_sentinel_file(sentinel->file);
	ck_assert_int_eq(mkdir(sentinel->dir, 0755), 0);
	write_sentinel_file(sentinel->inner);
	/* Times compared below must be able to differ from these. */
	usleep(20000);
	ck_assert_int_eq(lstat(sentinel->file, &sentinel->file_st), 0);
	ck_assert_int_eq(lstat(sentinel->dir, &sentinel->dir_st), 0);
	ck_assert_int_eq(lstat(sentinel->inner, &sentinel->inner_st), 0);
}

static bool same_times(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void assert_file_unchanged(const char *path, const struct stat *before, const char *what)
{
	uint8_t expected[SENTINEL_LEN], got[SENTINEL_LEN + 1];
	struct stat st;
	ssize_t n;
	int fd;

	sentinel_bytes(expected);
	ck_assert_msg(lstat(path, &st) == 0, "%s: host file gone", what);
	ck_assert_msg(S_ISREG(st.st_mode) && st.st_ino == before->st_ino &&
		      st.st_size == SENTINEL_LEN && same_times(&st, before),
		      "%s: host file %s changed (size %lld)", what, path, (long long)st.st_size);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, got, sizeof(got));
	close(fd);
	ck_assert_msg(n == SENTINEL_LEN && memcmp(got, expected, SENTINEL_LEN) == 0,
		      "%s: host file %s has other bytes", what, path);
}

/* Neither host file nor host directory was written, and the directory holds only its
 * file (a file made and removed again would show in its times). */
static void sentinel_assert_unchanged(const struct sentinel *sentinel, const char *what)
{
	struct stat st;
	struct dirent *entry;
	int entries = 0;
	DIR *d;

	assert_file_unchanged(sentinel->file, &sentinel->file_st, what);
	assert_file_unchanged(sentinel->inner, &sentinel->inner_st, what);
	ck_assert_int_eq(lstat(sentinel->dir, &st), 0);
	ck_assert_msg(same_times(&st, &sentinel->dir_st), "%s: host directory changed", what);
	d = opendir(sentinel->dir);
	ck_assert_ptr_nonnull(d);
	while ((entry = readdir(d)) != NULL)
		entries++;
	closedir(d);
	ck_assert_msg(entries == 3, "%s: host directory has %d entries", what, entries);
}

static char vault_paths[VAULT_PATHS_MAX][96];
static int vault_path_count;

static int collect_path(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	ck_assert_int_lt(vault_path_count, VAULT_PATHS_MAX);
	/* Relative to vault_dir; "" is the vault directory itself. */
	const char *rel = path + strlen(vault_dir);
	snprintf(vault_paths[vault_path_count++], sizeof(vault_paths[0]), "%s",
		 rel[0] == '/' ? rel + 1 : rel);
	return 0;
}

/* Every file and directory of vault_dir, the directory itself first. */
static void list_vault_paths(void)
{
	vault_path_count = 0;
	ck_assert_int_eq(nftw(vault_dir, collect_path, 16, FTW_PHYS), 0);
}

static bool path_is(const char *rel, const char *name)
{
	return strcmp(rel, name) == 0;
}

/* A vault as a mount leaves it: objects in fan-out directories, an emptied file in
 * objects/free, meta/lock.mdb. */
static void make_used_vault(void)
{
	struct meta_inode rec = { .ino = 2, .mode = S_IFREG | 0600, .nlink = 1 };
	struct vault *vault;

	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), 0);
	ck_assert_int_eq(vault_open(&vault, vault_dir, keys, 0), 0);
	for (int i = 0; i < 3; i++)
		create_with(vault, &rec, "some ciphertext");
	ck_assert_int_eq(vault_object_unlink(vault, rec.object_id), 0);
	vault_close(vault);
}

START_TEST(test_links_refused)
{
	struct vault_key_use *uses;
	struct vault_header header;
	struct sentinel sentinel;
	char path[PATH_MAX], aside[PATH_MAX], where[PATH_MAX];
	bool saw_lock = false, saw_fanout = false, saw_object = false, saw_free = false;
	size_t count;
	uint64_t objects;

	make_used_vault();
	sentinel_make(&sentinel, "lock.mdb");
	list_vault_paths();
	snprintf(aside, sizeof(aside), "%s/aside", test_dir);
	for (int i = 0; i < vault_path_count; i++) {
		const char *rel = vault_paths[i];
		struct stat st;

		snprintf(path, sizeof(path), "%s%s%.*s", vault_dir, rel[0] ? "/" : "",
			 (int)sizeof(vault_paths[0]), rel);
		ck_assert_int_eq(lstat(path, &st), 0);
		saw_lock |= path_is(rel, "meta/lock.mdb");
		saw_fanout |= strlen(rel) == strlen("objects/xx") && S_ISDIR(st.st_mode);
		saw_object |= strlen(rel) == strlen("objects/xx/") + 2 * OBJECT_ID_LEN &&
			      strncmp(rel, "objects/free", 12) != 0;
		saw_free |= strncmp(rel, "objects/free/", 13) == 0;

		ck_assert_int_eq(rename(path, aside), 0);
		ck_assert_int_eq(symlink(S_ISDIR(st.st_mode) ? sentinel.dir : sentinel.file, path),
				 0);

		ck_assert_msg(try_open(keys) == -ELOOP, "'%s' as a link: open gives %d", rel,
			      try_open(keys));
		struct vault *vault;
		ck_assert_int_eq(vault_open(&vault, vault_dir, keys, VAULT_OPEN_READ_ONLY), -ELOOP);
		ck_assert_int_eq(vault_find_link(vault_dir, where, sizeof(where)), -ELOOP);
		ck_assert_str_eq(where, rel);
		ck_assert_int_eq(vault_key_versions_in_use(vault_dir, &uses, &count), -ELOOP);
		if (!rel[0] || path_is(rel, VAULT_HEADER_FILE))
			ck_assert_int_eq(vault_header_read(vault_dir, &header), -ELOOP);
		if (!rel[0] || path_is(rel, VAULT_OBJECTS_DIR) ||
		    (strlen(rel) == strlen("objects/xx") && strncmp(rel, "objects/", 8) == 0))
			ck_assert_int_eq(vault_object_count(vault_dir, &objects), -ELOOP);
		if (!rel[0])
			ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys,
						      0, 0), -ELOOP);
		sentinel_assert_unchanged(&sentinel, rel);

		ck_assert_int_eq(unlink(path), 0);
		ck_assert_int_eq(rename(aside, path), 0);
	}
	/* The vault had each kind of file, and is whole again. */
	ck_assert(saw_lock && saw_fanout && saw_object && saw_free);
	ck_assert_int_eq(vault_find_link(vault_dir, where, sizeof(where)), 0);
	ck_assert_int_eq(try_open(keys), 0);
	sentinel_assert_unchanged(&sentinel, "at the end");
}
END_TEST

/* A new vault is not made through a link either: not in the directory it names. */
START_TEST(test_create_through_link_refused)
{
	char empty[192];
	struct stat before, after;

	snprintf(empty, sizeof(empty), "%s/host-empty", test_dir);
	ck_assert_int_eq(mkdir(empty, 0755), 0);
	ck_assert_int_eq(lstat(empty, &before), 0);
	usleep(20000);
	ck_assert_int_eq(symlink(empty, vault_dir), 0);
	ck_assert_int_eq(vault_create(vault_dir, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), -ELOOP);
	/* With a trailing slash too, which open(2) would follow. */
	char slashed[200];
	snprintf(slashed, sizeof(slashed), "%s//", vault_dir);
	ck_assert_int_eq(vault_create(slashed, CRYPTO_XCHACHA20POLY1305, 0, keys, 0, 0), -ELOOP);
	ck_assert_int_eq(lstat(empty, &after), 0);
	ck_assert(same_times(&before, &after));
	ck_assert_int_eq(rmdir(empty), 0);
}
END_TEST

static int visit_nothing(void *arg, const uint8_t object_id[OBJECT_ID_LEN],
			 uint32_t key_version, time_t mtime)
{
	(void)arg;
	(void)object_id;
	(void)key_version;
	(void)mtime;
	return 0;
}

/* A link put in the vault while it is open is not followed either: objects are reached
 * through their fan-out directory's own fd, never by a path through it. */
START_TEST(test_link_after_open_not_followed)
{
	struct meta_inode rec = { .ino = 2, .mode = S_IFREG | 0600, .nlink = 1 };
	uint8_t ids[1][OBJECT_ID_LEN], id[OBJECT_ID_LEN];
	char name[2 * OBJECT_ID_LEN + 1], fanout[3], path[PATH_MAX];
	struct sentinel sentinel;
	struct vault *vault;
	const char *why = NULL;

	vault = vault_with_objects(ids, 1);
	/* An object in a fan-out directory this vault has not opened yet. */
	crypto_random(id, sizeof(id));
	id[0] = (uint8_t)(ids[0][0] ^ 0x80);
	crypto_to_hex(name, sizeof(name), id, sizeof(id));
	crypto_to_hex(fanout, sizeof(fanout), id, 1);
	sentinel_make(&sentinel, name);
	snprintf(path, sizeof(path), "%s/objects/%s", vault_dir, fanout);
	ck_assert_int_eq(symlink(sentinel.dir, path), 0);

	ck_assert_int_eq(vault_object_open(vault, id, O_RDWR), -ELOOP);
	ck_assert_int_eq(vault_object_open(vault, id, O_RDWR | O_CREAT | O_EXCL), -ELOOP);
	ck_assert_int_eq(vault_object_unlink(vault, id), -ELOOP);
	memcpy(rec.object_id, id, OBJECT_ID_LEN);
	ck_assert_int_eq(vault_object_attach(vault, &rec, O_RDWR, &why), -EIO);
	ck_assert_ptr_nonnull(strstr(why, "symbolic link"));
	ck_assert_int_eq(vault_objects_each(vault, visit_nothing, NULL), -ELOOP);

	/* An object file itself replaced by a link: not opened, and its removal removes the
	 * link, not what it names. */
	crypto_to_hex(name, sizeof(name), ids[0], OBJECT_ID_LEN);
	crypto_to_hex(fanout, sizeof(fanout), ids[0], 1);
	snprintf(path, sizeof(path), "%s/objects/%s/%s", vault_dir, fanout, name);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink(sentinel.file, path), 0);
	ck_assert_int_eq(vault_object_open(vault, ids[0], O_RDWR), -ELOOP);
	ck_assert_int_eq(vault_object_unlink(vault, ids[0]), 0);
	vault_object_settle(vault);
	vault_close(vault);
	sentinel_assert_unchanged(&sentinel, "after open");
}
END_TEST

static bool replay_header(void *arg, const uint8_t *bytes, size_t len)
{
	(void)arg;
	uint8_t in[VAULT_HEADER_LEN] = { 0 }, out[VAULT_HEADER_LEN];
	struct vault_header header;
	bool reserved_zero = true;
	int ret;

	/* vault_header_read hands over exactly VAULT_HEADER_LEN bytes. */
	memcpy(in, bytes, len < sizeof(in) ? len : sizeof(in));
	for (size_t i = 48; i < 64; i++)
		reserved_zero = reserved_zero && in[i] == 0;
	/* Key check version 1 is written as 0: 1 itself is not the encoding. */
	bool check_canonical = get_le32(in + 44) != 1;
	ret = vault_header_decode(&header, in);
	if (memcmp(in, "VAULTFS\0", 8) != 0) {
		ck_assert_int_eq(ret, -EBADMSG);
		return false;
	}
	if (get_le32(in + 8) != VAULT_FORMAT_VERSION) {
		ck_assert_int_eq(ret, -EPROTONOSUPPORT);
		return false;
	}
	if (!reserved_zero || !check_canonical) {
		ck_assert_int_eq(ret, -EBADMSG);
		return false;
	}
	ck_assert_uint_eq(header.check_version, get_le32(in + 44) ? get_le32(in + 44) : 1);
	/* Unknown ciphers and flags decode: vault_open refuses them. */
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_eq(header.cipher, get_le32(in + 12));
	ck_assert_uint_eq(header.flags, get_le32(in + 16));
	vault_header_encode(out, &header);
	ck_assert(memcmp(out, in, sizeof(in)) == 0);
	return true;
}

START_TEST(test_header_fuzz_replay)
{
	uint8_t buf[2 * VAULT_HEADER_LEN];
	struct replay_corpus corpus;
	uint64_t state = UINT64_C(0x7661756c74686472);

	ck_assert_int_eq(replay_corpus_load(&corpus, ONDISK_CORPUS, REPLAY_ONDISK_VAULT_HEADER,
					    sizeof(buf)), 0);
	struct replay_counts c = replay_run(&corpus, replay_header, NULL, &state,
					    HEADER_MUTATIONS, buf, sizeof(buf), NULL);
	/* Both ciphers, and malformed ones. */
	ck_assert_uint_ge(c.valid, 2);
	ck_assert_uint_ge(c.inputs, c.valid + 3);
	ck_assert_uint_gt(c.accepted, HEADER_MUTATIONS / 100);
	ck_assert_uint_gt(c.rejected, HEADER_MUTATIONS / 10);
	replay_corpus_release(&corpus);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("vault");
	TCase *tc = tcase_create("vault");
	/* test_trash_delay_is_bounded removes files for 3 s: above Check's default of 4 s
	 * under load or a sanitizer. */
	tcase_set_timeout(tc, 30);
	TCase *replay;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_header_known_answer);
	tcase_add_test(tc, test_create_open);
	tcase_add_test(tc, test_create_in_empty_dir);
	tcase_add_test(tc, test_create_refuses);
	tcase_add_test(tc, test_not_a_vault);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_test(tc, test_tampered_header);
	tcase_add_test(tc, test_unsupported_version);
	tcase_add_test(tc, test_missing_store);
	tcase_add_test(tc, test_object_files);
	tcase_add_test(tc, test_object_pool);
	tcase_add_test(tc, test_object_trash);
	tcase_add_test(tc, test_trash_waits_for_a_burst);
	tcase_add_test(tc, test_trash_delay_is_bounded);
	tcase_add_test(tc, test_key_versions_in_use);
	tcase_add_test(tc, test_links_refused);
	tcase_add_test(tc, test_create_through_link_refused);
	tcase_add_test(tc, test_link_after_open_not_followed);
	suite_add_tcase(suite, tc);

	replay = tcase_create("replay");
	tcase_set_timeout(replay, 30);
	tcase_add_test(replay, test_header_fuzz_replay);
	suite_add_tcase(suite, replay);
	return harness_run(suite);
}
