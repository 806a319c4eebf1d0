/*
 * Unit tests of the keystore: datasets and their DEK versions across reopen, wrong
 * passphrases and keys, wrapped keys moved, flipped or truncated (read and written raw
 * through the store), rotate, retire, shred and KEK rotation with proof that destroyed
 * wrapped bytes are in no keystore file, and the checks on raw KEK files.
 */
#include "lib/keystore.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/secret.h"
#include "lib/store.h"
#include "tests/fuzz/replay.h"
#include "tests/harness.h"

/* White-box knowledge of keystore.c's version records, for the raw tamper tests. */
#define VERSION_FIXED_LEN 30
#define VERSION_KEY_LEN (VAULT_ID_LEN + 4)

static const char passphrase[] = "correct horse battery staple";

static char test_dir[64];
static char keystore_dir[128];

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
	strcpy(test_dir, "/tmp/check_keystore.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	snprintf(keystore_dir, sizeof(keystore_dir), "%s/keystore", test_dir);
}

static void teardown(void)
{
	nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A keystore whose passphrase KEKs use the minimum Argon2id limits (fast tests). */
static struct keystore *open_keystore(bool create)
{
	struct keystore *keystore;

	ck_assert_int_eq(keystore_open(&keystore, keystore_dir, create), 0);
	ck_assert_int_eq(keystore_set_pwhash_limits(keystore, CRYPTO_PWHASH_OPSLIMIT_MIN,
						    CRYPTO_PWHASH_MEMLIMIT_MIN), 0);
	return keystore;
}

static struct kek *unlock(struct keystore *keystore, const char *pass)
{
	struct kek *kek;

	ck_assert_int_eq(keystore_unlock_passphrase(keystore, pass, strlen(pass), &kek), 0);
	ck_assert_ptr_nonnull(kek);
	return kek;
}

static void create(struct keystore *keystore, const struct kek *kek, const char *name,
		   uint8_t dek[CRYPTO_KEY_LEN])
{
	struct keystore_dataset dataset;

	ck_assert_int_eq(keystore_dataset_create(keystore, kek, name, 1000, dek, &dataset), 0);
	keystore_dataset_release(&dataset);
}

static void assert_key(struct keystore *keystore, const struct kek *kek, const char *name,
		       uint32_t version, const uint8_t expected[CRYPTO_KEY_LEN])
{
	uint8_t key[CRYPTO_KEY_LEN];

	ck_assert_int_eq(keystore_key_get(keystore, kek, name, version, key), 0);
	ck_assert_mem_eq(key, expected, CRYPTO_KEY_LEN);
}

static void dataset_id(struct keystore *keystore, const char *name, uint8_t id[VAULT_ID_LEN])
{
	struct keystore_dataset dataset;

	ck_assert_int_eq(keystore_dataset_get(keystore, name, &dataset), 0);
	memcpy(id, dataset.id, VAULT_ID_LEN);
	keystore_dataset_release(&dataset);
}

/* Raw access to version records, with the keystore closed (one LMDB environment per
 * process at a time). */
static void raw_key(uint8_t key[VERSION_KEY_LEN], const uint8_t id[VAULT_ID_LEN],
		    uint32_t version)
{
	memcpy(key, id, VAULT_ID_LEN);
	key[16] = (uint8_t)(version >> 24);
	key[17] = (uint8_t)(version >> 16);
	key[18] = (uint8_t)(version >> 8);
	key[19] = (uint8_t)version;
}

static size_t raw_get(const uint8_t id[VAULT_ID_LEN], uint32_t version, uint8_t *buf,
		      size_t buf_len)
{
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;
	uint8_t key[VERSION_KEY_LEN];
	size_t len;

	raw_key(key, id, version);
	ck_assert_int_eq(store_open_schema(&store, keystore_dir, 0, STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_KS_VERSIONS,
				   (struct store_slice){ key, sizeof(key) }, &val), 0);
	ck_assert_uint_le(val.len, buf_len);
	memcpy(buf, val.data, val.len);
	len = val.len;
	store_txn_abort(txn);
	store_close(store);
	return len;
}

static void raw_put(const uint8_t id[VAULT_ID_LEN], uint32_t version, const uint8_t *buf,
		    size_t len)
{
	struct store *store;
	struct store_txn *txn;
	uint8_t key[VERSION_KEY_LEN];

	raw_key(key, id, version);
	ck_assert_int_eq(store_open_schema(&store, keystore_dir, 0, STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_put(txn, STORE_KS_VERSIONS, (struct store_slice){ key, sizeof(key) },
				   (struct store_slice){ buf, len }, 0), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
}

START_TEST(test_create_get_list)
{
	struct keystore *keystore = open_keystore(true);
	struct keystore_dataset dataset, again;
	struct kek *kek;
	uint8_t dek[CRYPTO_KEY_LEN], other[CRYPTO_KEY_LEN], zeros[CRYPTO_KEY_LEN] = { 0 };
	char **names;
	size_t count;
	uint64_t before = (uint64_t)time(NULL);
	struct stat st;

	ck_assert_int_eq(stat(keystore_dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert(!keystore_has_kek(keystore));
	kek = unlock(keystore, passphrase);
	ck_assert(keystore_has_kek(keystore));

	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "cardio", 1000, dek, &dataset), 0);
	ck_assert_str_eq(dataset.name, "cardio");
	ck_assert_uint_eq(dataset.newest, 1);
	ck_assert(!dataset.shredded);
	ck_assert_uint_eq(dataset.created_by, 1000);
	ck_assert_uint_ge(dataset.created, before);
	ck_assert_uint_le(dataset.created, (uint64_t)time(NULL));
	ck_assert_uint_eq(dataset.version_count, 1);
	ck_assert_uint_eq(dataset.versions[0].version, 1);
	ck_assert(!dataset.versions[0].retired);
	ck_assert_uint_eq(dataset.versions[0].created_by, 1000);
	ck_assert_mem_ne(dek, zeros, sizeof(dek));

	ck_assert_int_eq(keystore_dataset_get(keystore, "cardio", &again), 0);
	ck_assert_mem_eq(again.id, dataset.id, VAULT_ID_LEN);
	ck_assert_uint_eq(again.newest, 1);
	ck_assert_uint_eq(again.created, dataset.created);
	ck_assert_uint_eq(again.version_count, 1);
	ck_assert_uint_eq(again.versions[0].created, dataset.versions[0].created);
	keystore_dataset_release(&again);
	assert_key(keystore, kek, "cardio", 1, dek);

	/* Names are unique and valid. */
	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "cardio", 1000, other, &again),
			 -EEXIST);
	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "a/b", 1000, other, &again),
			 -EINVAL);
	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "", 1000, other, &again), -EINVAL);
	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "..", 1000, other, &again),
			 -EINVAL);
	ck_assert_int_eq(keystore_dataset_get(keystore, "none", &again), -ENOENT);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "none", 1, other), -ENOENT);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", 2, other), -ENOKEY);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", 0, other), -ENOKEY);

	/* Every dataset has its own id and key. */
	create(keystore, kek, "zeta", other);
	ck_assert_mem_ne(dek, other, sizeof(dek));
	create(keystore, kek, "alpha", other);
	ck_assert_int_eq(keystore_dataset_get(keystore, "alpha", &again), 0);
	ck_assert_mem_ne(again.id, dataset.id, VAULT_ID_LEN);
	keystore_dataset_release(&again);

	ck_assert_int_eq(keystore_dataset_list(keystore, &names, &count), 0);
	ck_assert_uint_eq(count, 3);
	ck_assert_str_eq(names[0], "alpha");
	ck_assert_str_eq(names[1], "cardio");
	ck_assert_str_eq(names[2], "zeta");
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);

	keystore_dataset_release(&dataset);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_open_missing)
{
	struct keystore *keystore;

	ck_assert_int_eq(keystore_open(&keystore, keystore_dir, false), -ENOENT);
	ck_assert_ptr_null(keystore);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	struct keystore *keystore = open_keystore(true);
	struct kek *kek;
	uint8_t dek[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN] = { 0 };

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek);
	kek_free(kek);
	keystore_close(keystore);

	keystore = open_keystore(false);
	ck_assert(keystore_has_kek(keystore));
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, "wrong", 5, &kek), -EKEYREJECTED);
	ck_assert_ptr_null(kek);
	/* One character short is as wrong as anything else. */
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, passphrase, strlen(passphrase) - 1,
						    &kek), -EKEYREJECTED);
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, "", 0, &kek), -EINVAL);
	/* A passphrase keystore takes no raw key, whatever its bytes. */
	ck_assert_int_eq(keystore_unlock_key(keystore, key, &kek), -ENOTSUP);
	ck_assert_ptr_null(kek);

	kek = unlock(keystore, passphrase);
	assert_key(keystore, kek, "cardio", 1, dek);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_wrong_key)
{
	struct keystore *keystore = open_keystore(true), *other_keystore;
	struct kek *kek, *foreign;
	uint8_t raw[CRYPTO_KEY_LEN], wrong[CRYPTO_KEY_LEN], dek[CRYPTO_KEY_LEN];
	char other_dir[192];

	crypto_random(raw, sizeof(raw));
	memcpy(wrong, raw, sizeof(wrong));
	wrong[31] ^= 0x01;
	ck_assert_int_eq(keystore_unlock_key(keystore, raw, &kek), 0);
	create(keystore, kek, "cardio", dek);
	kek_free(kek);
	keystore_close(keystore);

	keystore = open_keystore(false);
	ck_assert_int_eq(keystore_unlock_key(keystore, wrong, &kek), -EKEYREJECTED);
	ck_assert_ptr_null(kek);
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, passphrase, strlen(passphrase), &kek),
			 -ENOTSUP);
	ck_assert_int_eq(keystore_unlock_key(keystore, raw, &kek), 0);
	assert_key(keystore, kek, "cardio", 1, dek);

	/* The KEK of another keystore is refused. */
	snprintf(other_dir, sizeof(other_dir), "%s/other", test_dir);
	ck_assert_int_eq(keystore_open(&other_keystore, other_dir, true), 0);
	ck_assert_int_eq(keystore_unlock_key(other_keystore, wrong, &foreign), 0);
	ck_assert_int_eq(keystore_key_get(keystore, foreign, "cardio", 1, dek), -EKEYREJECTED);
	ck_assert_int_eq(keystore_dataset_create(keystore, foreign, "new", 0, dek,
						 &(struct keystore_dataset){ 0 }), -EKEYREJECTED);
	kek_free(foreign);
	keystore_close(other_keystore);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_unwrap_after_reopen)
{
	struct keystore *keystore = open_keystore(true);
	struct keystore_dataset dataset;
	struct kek *kek;
	uint8_t dek[CRYPTO_KEY_LEN], id[VAULT_ID_LEN];
	uint32_t version;

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek);
	dataset_id(keystore, "cardio", id);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 1001, &version), 0);
	kek_free(kek);
	keystore_close(keystore);

	keystore = open_keystore(false);
	kek = unlock(keystore, passphrase);
	assert_key(keystore, kek, "cardio", 1, dek);
	ck_assert_int_eq(keystore_dataset_get(keystore, "cardio", &dataset), 0);
	ck_assert_mem_eq(dataset.id, id, VAULT_ID_LEN);
	ck_assert_uint_eq(dataset.newest, 2);
	ck_assert_uint_eq(dataset.version_count, 2);
	ck_assert_uint_eq(dataset.versions[1].created_by, 1001);
	keystore_dataset_release(&dataset);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_wrapped_key_moved)
{
	struct keystore *keystore = open_keystore(true);
	struct kek *kek;
	uint8_t dek_a[CRYPTO_KEY_LEN], dek_b[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN];
	uint8_t id_a[VAULT_ID_LEN], id_b[VAULT_ID_LEN], record[256], saved[256];
	size_t len, saved_len;
	uint32_t version;

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "alpha", dek_a);
	create(keystore, kek, "beta", dek_b);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "alpha", 0, &version), 0);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "beta", 0, &version), 0);
	dataset_id(keystore, "alpha", id_a);
	dataset_id(keystore, "beta", id_b);
	kek_free(kek);
	keystore_close(keystore);

	/* alpha's version 1 copied over beta's version 1: another dataset id. */
	len = raw_get(id_a, 1, record, sizeof(record));
	saved_len = raw_get(id_b, 1, saved, sizeof(saved));
	raw_put(id_b, 1, record, len);
	/* alpha's version 1 copied over its own version 2: another version. */
	raw_put(id_a, 2, record, len);

	keystore = open_keystore(false);
	kek = unlock(keystore, passphrase);
	memset(key, 0xaa, sizeof(key));
	ck_assert_int_eq(keystore_key_get(keystore, kek, "beta", 1, key), -EBADMSG);
	ck_assert_mem_eq(key, (uint8_t[CRYPTO_KEY_LEN]){ 0 }, sizeof(key));
	ck_assert_int_eq(keystore_key_get(keystore, kek, "alpha", 2, key), -EBADMSG);
	assert_key(keystore, kek, "alpha", 1, dek_a);
	kek_free(kek);
	keystore_close(keystore);

	/* Put back, it unwraps again. */
	raw_put(id_b, 1, saved, saved_len);
	keystore = open_keystore(false);
	kek = unlock(keystore, passphrase);
	assert_key(keystore, kek, "beta", 1, dek_b);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_wrapped_key_tampered)
{
	struct keystore *keystore = open_keystore(true);
	struct kek *kek;
	uint8_t dek[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN], id[VAULT_ID_LEN];
	uint8_t original[256], record[256];
	size_t len;
	/* Offsets into the wrapped key: salt, nonce, ciphertext, last tag byte. */
	size_t offsets[] = { 0, 16, 40, 0 };

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek);
	dataset_id(keystore, "cardio", id);
	kek_free(kek);
	keystore_close(keystore);
	len = raw_get(id, 1, original, sizeof(original));
	ck_assert_uint_gt(len, VERSION_FIXED_LEN + CRYPTO_KEY_LEN);
	offsets[3] = len - VERSION_FIXED_LEN - 1;

	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		memcpy(record, original, len);
		record[VERSION_FIXED_LEN + offsets[i]] ^= 0x01;
		raw_put(id, 1, record, len);
		keystore = open_keystore(false);
		kek = unlock(keystore, passphrase);
		ck_assert_msg(keystore_key_get(keystore, kek, "cardio", 1, key) == -EBADMSG,
			      "flip at wrapped offset %zu accepted", offsets[i]);
		kek_free(kek);
		keystore_close(keystore);
	}

	/* Zeroed wrapped key, a truncated record, a reserved byte set, an unknown record
	 * version: all refused. */
	for (int which = 0; which < 4; which++) {
		size_t record_len = len;

		memcpy(record, original, len);
		if (which == 0)
			memset(record + VERSION_FIXED_LEN, 0, len - VERSION_FIXED_LEN);
		else if (which == 1)
			record_len = len - 1;
		else if (which == 2)
			record[3] = 1;
		else
			record[0] = 2;
		raw_put(id, 1, record, record_len);
		keystore = open_keystore(false);
		kek = unlock(keystore, passphrase);
		ck_assert_msg(keystore_key_get(keystore, kek, "cardio", 1, key) == -EBADMSG,
			      "tamper %d accepted", which);
		kek_free(kek);
		keystore_close(keystore);
	}

	raw_put(id, 1, original, len);
	keystore = open_keystore(false);
	kek = unlock(keystore, passphrase);
	assert_key(keystore, kek, "cardio", 1, dek);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_rotate)
{
	struct keystore *keystore = open_keystore(true);
	struct keystore_dataset dataset;
	struct kek *kek;
	uint8_t dek1[CRYPTO_KEY_LEN], dek2[CRYPTO_KEY_LEN];
	uint32_t version = 0;

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek1);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 1002, &version), 0);
	ck_assert_uint_eq(version, 2);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", 2, dek2), 0);
	ck_assert_mem_ne(dek1, dek2, sizeof(dek1));
	assert_key(keystore, kek, "cardio", 1, dek1);

	ck_assert_int_eq(keystore_dataset_get(keystore, "cardio", &dataset), 0);
	ck_assert_uint_eq(dataset.newest, 2);
	ck_assert_uint_eq(dataset.version_count, 2);
	ck_assert_uint_eq(dataset.versions[0].version, 1);
	ck_assert_uint_eq(dataset.versions[1].version, 2);
	ck_assert_uint_eq(dataset.versions[1].created_by, 1002);
	keystore_dataset_release(&dataset);

	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "none", 0, &version), -ENOENT);
	kek_free(kek);
	keystore_close(keystore);
}
END_TEST

START_TEST(test_retire)
{
	struct keystore *keystore = open_keystore(true);
	struct keystore_dataset dataset;
	struct kek *kek;
	uint8_t dek1[CRYPTO_KEY_LEN], dek2[CRYPTO_KEY_LEN], dek3[CRYPTO_KEY_LEN];
	uint8_t key[CRYPTO_KEY_LEN], id[VAULT_ID_LEN], record[256];
	size_t len;
	uint32_t version;

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek1);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 0, &version), 0);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 0, &version), 0);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", 2, dek2), 0);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", 3, dek3), 0);
	dataset_id(keystore, "cardio", id);
	kek_free(kek);
	keystore_close(keystore);
	len = raw_get(id, 1, record, sizeof(record));
	ck_assert(harness_dir_contains(keystore_dir, record + VERSION_FIXED_LEN,
					 len - VERSION_FIXED_LEN));

	keystore = open_keystore(false);
	kek = unlock(keystore, passphrase);
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 3, 1003), -EBUSY);
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 9, 1003), -ENOKEY);
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 0, 1003), -ENOKEY);
	ck_assert_int_eq(keystore_key_retire(keystore, "none", 1, 1003), -ENOENT);
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 1, 1003), 0);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", 1, key), -ENOKEY);
	assert_key(keystore, kek, "cardio", 2, dek2);
	assert_key(keystore, kek, "cardio", 3, dek3);
	/* Again: nothing more to do, and the history stays the first retire's. */
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 1, 1004), 0);

	ck_assert_int_eq(keystore_dataset_get(keystore, "cardio", &dataset), 0);
	ck_assert_uint_eq(dataset.version_count, 3);
	ck_assert(dataset.versions[0].retired);
	ck_assert_uint_eq(dataset.versions[0].retired_by, 1003);
	ck_assert_uint_gt(dataset.versions[0].retired_at, 0);
	ck_assert(!dataset.versions[1].retired);
	ck_assert_uint_eq(dataset.newest, 3);
	keystore_dataset_release(&dataset);
	kek_free(kek);
	keystore_close(keystore);

	ck_assert(!harness_dir_contains(keystore_dir, record + VERSION_FIXED_LEN,
					 len - VERSION_FIXED_LEN));
}
END_TEST

START_TEST(test_shred)
{
	struct keystore *keystore = open_keystore(true);
	struct keystore_dataset dataset;
	struct kek *kek;
	uint8_t dek[CRYPTO_KEY_LEN], other[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN];
	uint8_t id[VAULT_ID_LEN], records[3][256];
	size_t lens[3];
	uint32_t version;

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek);
	create(keystore, kek, "neuro", other);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 0, &version), 0);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 0, &version), 0);
	dataset_id(keystore, "cardio", id);
	kek_free(kek);
	keystore_close(keystore);
	for (uint32_t v = 1; v <= 3; v++) {
		lens[v - 1] = raw_get(id, v, records[v - 1], sizeof(records[v - 1]));
		/* Before the shred they are there: the check below can fail. */
		ck_assert(harness_dir_contains(keystore_dir, records[v - 1] + VERSION_FIXED_LEN,
						 lens[v - 1] - VERSION_FIXED_LEN));
	}

	keystore = open_keystore(false);
	kek = unlock(keystore, passphrase);
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 1, 7), 0);
	ck_assert_int_eq(keystore_shred(keystore, "cardio", 1005), 0);
	for (uint32_t v = 0; v <= 4; v++)
		ck_assert_int_eq(keystore_key_get(keystore, kek, "cardio", v, key), -ENOKEY);
	ck_assert_int_eq(keystore_dataset_get(keystore, "cardio", &dataset), 0);
	ck_assert(dataset.shredded);
	ck_assert_uint_eq(dataset.newest, 0);
	ck_assert_uint_eq(dataset.shredded_by, 1005);
	ck_assert_uint_gt(dataset.shredded_at, 0);
	ck_assert_uint_eq(dataset.version_count, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert(dataset.versions[i].retired);
	/* The earlier retire keeps its own history. */
	ck_assert_uint_eq(dataset.versions[0].retired_by, 7);
	ck_assert_uint_eq(dataset.versions[2].retired_by, 1005);
	keystore_dataset_release(&dataset);

	/* The tombstone: the name cannot be taken again, nothing can be added. */
	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "cardio", 0, key, &dataset),
			 -EEXIST);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "cardio", 0, &version), -ENOKEY);
	ck_assert_int_eq(keystore_key_retire(keystore, "cardio", 2, 0), -ENOKEY);
	ck_assert_int_eq(keystore_shred(keystore, "cardio", 0), 0);
	ck_assert_int_eq(keystore_shred(keystore, "none", 0), -ENOENT);
	/* Other datasets are untouched by the compaction. */
	assert_key(keystore, kek, "neuro", 1, other);
	kek_free(kek);
	keystore_close(keystore);

	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(!harness_dir_contains(keystore_dir, records[i] + VERSION_FIXED_LEN,
						      lens[i] - VERSION_FIXED_LEN),
			      "wrapped key of version %zu survived the shred", i + 1);
}
END_TEST

/* Unwrap a raw version record with raw KEK bytes, as keystore.h specifies the wrap. */
static int unwrap_raw(const uint8_t *record, size_t len, const uint8_t id[VAULT_ID_LEN],
		      uint32_t version, const uint8_t kek[CRYPTO_KEY_LEN],
		      uint8_t dek[CRYPTO_KEY_LEN])
{
	uint8_t ad[14 + VAULT_ID_LEN + 4];

	memcpy(ad, "vaultfs.v1.dek", 14);
	memcpy(ad + 14, id, VAULT_ID_LEN);
	ad[30] = (uint8_t)version;
	ad[31] = (uint8_t)(version >> 8);
	ad[32] = (uint8_t)(version >> 16);
	ad[33] = (uint8_t)(version >> 24);
	return crypto_unseal(dek, CRYPTO_KEY_LEN, record + VERSION_FIXED_LEN,
			     len - VERSION_FIXED_LEN, ad, sizeof(ad),
			     (enum crypto_cipher)record[2], kek);
}

START_TEST(test_kek_rotate)
{
	struct keystore *keystore = open_keystore(true);
	struct kek *kek, *new_kek, *newer_kek;
	uint8_t dek_a1[CRYPTO_KEY_LEN], dek_a2[CRYPTO_KEY_LEN], dek_b[CRYPTO_KEY_LEN];
	uint8_t key[CRYPTO_KEY_LEN], raw[CRYPTO_KEY_LEN], id_a[VAULT_ID_LEN];
	uint8_t old_record[256], record[256];
	size_t old_len, len;
	uint32_t version;

	kek = unlock(keystore, "old passphrase");
	create(keystore, kek, "alpha", dek_a1);
	create(keystore, kek, "beta", dek_b);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "alpha", 0, &version), 0);
	ck_assert_int_eq(keystore_key_get(keystore, kek, "alpha", 2, dek_a2), 0);
	dataset_id(keystore, "alpha", id_a);
	kek_free(kek);
	keystore_close(keystore);
	old_len = raw_get(id_a, 2, old_record, sizeof(old_record));

	keystore = open_keystore(false);
	kek = unlock(keystore, "old passphrase");
	ck_assert_int_eq(keystore_kek_rotate(keystore, kek, NULL, 0, NULL, &new_kek), -EINVAL);
	ck_assert_int_eq(keystore_kek_rotate(keystore, kek, "x", 1, raw, &new_kek), -EINVAL);
	ck_assert_int_eq(keystore_kek_rotate(keystore, kek, "new passphrase", 14, NULL, &new_kek),
			 0);
	ck_assert_ptr_nonnull(new_kek);
	/* The old KEK is refused for everything; the new one unwraps every version. */
	ck_assert_int_eq(keystore_key_get(keystore, kek, "alpha", 1, key), -EKEYREJECTED);
	ck_assert_int_eq(keystore_dataset_create(keystore, kek, "gamma", 0, key,
						 &(struct keystore_dataset){ 0 }), -EKEYREJECTED);
	ck_assert_int_eq(keystore_key_rotate(keystore, kek, "alpha", 0, &version), -EKEYREJECTED);
	ck_assert_int_eq(keystore_kek_rotate(keystore, kek, "again", 5, NULL, &newer_kek),
			 -EKEYREJECTED);
	assert_key(keystore, new_kek, "alpha", 1, dek_a1);
	assert_key(keystore, new_kek, "alpha", 2, dek_a2);
	assert_key(keystore, new_kek, "beta", 1, dek_b);
	kek_free(kek);
	kek_free(new_kek);
	keystore_close(keystore);
	/* The wrapped bytes under the old KEK are gone from the files. */
	ck_assert(!harness_dir_contains(keystore_dir, old_record + VERSION_FIXED_LEN,
					  old_len - VERSION_FIXED_LEN));

	keystore = open_keystore(false);
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, "old passphrase", 14, &kek),
			 -EKEYREJECTED);
	kek = unlock(keystore, "new passphrase");
	assert_key(keystore, kek, "alpha", 2, dek_a2);

	/* To a raw KEK, whose bytes the test knows: every wrapped key in the store opens
	 * with the new bytes, none with others. */
	crypto_random(raw, sizeof(raw));
	ck_assert_int_eq(keystore_kek_rotate(keystore, kek, NULL, 0, raw, NULL), 0);
	kek_free(kek);
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, "new passphrase", 14, &kek),
			 -ENOTSUP);
	ck_assert_int_eq(keystore_unlock_key(keystore, raw, &kek), 0);
	crypto_random(key, sizeof(key));
	ck_assert_int_eq(keystore_kek_rotate(keystore, kek, NULL, 0, key, &new_kek), 0);
	kek_free(kek);
	kek_free(new_kek);
	keystore_close(keystore);
	len = raw_get(id_a, 2, record, sizeof(record));
	ck_assert_int_eq(unwrap_raw(record, len, id_a, 2, raw, dek_a1), -EBADMSG);
	ck_assert_int_eq(unwrap_raw(record, len, id_a, 2, key, dek_a1), 0);
	ck_assert_mem_eq(dek_a1, dek_a2, sizeof(dek_a2));
	/* And the binding of keystore.h holds: the same bytes under version 1 fail. */
	ck_assert_int_eq(unwrap_raw(record, len, id_a, 1, key, dek_a1), -EBADMSG);
}
END_TEST

START_TEST(test_pwhash_limits)
{
	struct keystore *keystore;
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;
	struct kek *kek;
	uint8_t record[68];

	ck_assert_int_eq(keystore_open(&keystore, keystore_dir, true), 0);
	ck_assert_int_eq(keystore_set_pwhash_limits(keystore, 0, CRYPTO_PWHASH_MEMLIMIT_MIN),
			 -EINVAL);
	ck_assert_int_eq(keystore_set_pwhash_limits(keystore, 1, CRYPTO_PWHASH_MEMLIMIT_MIN - 1),
			 -EINVAL);
	ck_assert_int_eq(keystore_set_pwhash_limits(keystore, 2, 2 * CRYPTO_PWHASH_MEMLIMIT_MIN),
			 0);
	kek = unlock(keystore, passphrase);
	kek_free(kek);
	keystore_close(keystore);

	/* Unlocking uses the stored limits, not the opener's (MODERATE here): otherwise the
	 * derived key would differ and be rejected. */
	ck_assert_int_eq(keystore_open(&keystore, keystore_dir, false), 0);
	kek = unlock(keystore, passphrase);
	kek_free(kek);
	keystore_close(keystore);

	ck_assert_int_eq(store_open_schema(&store, keystore_dir, 0, STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_KS_META, (struct store_slice){ "kek", 3 }, &val), 0);
	ck_assert_uint_eq(val.len, sizeof(record));
	memcpy(record, val.data, sizeof(record));
	ck_assert_uint_eq(record[4], 2);     /* opslimit, little-endian */
	ck_assert_uint_eq(record[13], 0x40); /* memlimit 16384 = 0x4000 */
	/* A raised opslimit in the record derives another key: rejected. */
	record[4] = 3;
	ck_assert_int_eq(store_put(txn, STORE_KS_META, (struct store_slice){ "kek", 3 },
				   (struct store_slice){ record, sizeof(record) }, 0), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);
	ck_assert_int_eq(keystore_open(&keystore, keystore_dir, false), 0);
	ck_assert_int_eq(keystore_unlock_passphrase(keystore, passphrase, strlen(passphrase),
						    &kek), -EKEYREJECTED);
	keystore_close(keystore);
}
END_TEST

/* Production setup: MODERATE limits unless told otherwise (one real Argon2id run). */
START_TEST(test_pwhash_default_moderate)
{
	struct keystore *keystore;
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;
	struct kek *kek;
	const uint8_t *p;

	ck_assert_int_eq(keystore_open(&keystore, keystore_dir, true), 0);
	kek = unlock(keystore, passphrase);
	kek_free(kek);
	keystore_close(keystore);
	ck_assert_int_eq(store_open_schema(&store, keystore_dir, 0, STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, false, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_KS_META, (struct store_slice){ "kek", 3 }, &val), 0);
	p = val.data;
	ck_assert_uint_eq(p[4], CRYPTO_PWHASH_OPSLIMIT_MODERATE);
	ck_assert_uint_eq((uint64_t)p[12] | (uint64_t)p[13] << 8 | (uint64_t)p[14] << 16 |
			  (uint64_t)p[15] << 24, CRYPTO_PWHASH_MEMLIMIT_MODERATE);
	store_txn_abort(txn);
	store_close(store);
}
END_TEST

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_kek_read_file)
{
	static const char hex[] =
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
	uint8_t expected[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN], zeros[CRYPTO_KEY_LEN] = { 0 };
	char path[192], link_path[192], text[80];

	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		expected[i] = (uint8_t)i;
	snprintf(path, sizeof(path), "%s/kek", test_dir);
	snprintf(link_path, sizeof(link_path), "%s/kek-link", test_dir);

	/* Accepted: 32 raw bytes, 64 hex digits with or without a newline. */
	write_file(path, expected, sizeof(expected), 0600);
	ck_assert_int_eq(kek_read_file(path, key), 0);
	ck_assert_mem_eq(key, expected, sizeof(key));
	write_file(path, hex, 64, 0400);
	memset(key, 0, sizeof(key));
	ck_assert_int_eq(kek_read_file(path, key), 0);
	ck_assert_mem_eq(key, expected, sizeof(key));
	snprintf(text, sizeof(text), "%s\n", hex);
	write_file(path, text, 65, 0600);
	ck_assert_int_eq(kek_read_file(path, key), 0);
	ck_assert_mem_eq(key, expected, sizeof(key));

	/* Sizes and contents refused, and no partial key left behind. */
	write_file(path, expected, 31, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	ck_assert_mem_eq(key, zeros, sizeof(key));
	write_file(path, text, 33, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	write_file(path, "", 0, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	write_file(path, text, 63, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	snprintf(text, sizeof(text), "%s\n\n", hex);
	write_file(path, text, 66, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	snprintf(text, sizeof(text), "%s ", hex);
	write_file(path, text, 65, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	memcpy(text, hex, 64);
	text[17] = 'g';
	write_file(path, text, 64, 0600);
	ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	ck_assert_mem_eq(key, zeros, sizeof(key));
	{
		uint8_t big[4096] = { 0 };

		write_file(path, big, sizeof(big), 0600);
		ck_assert_int_eq(kek_read_file(path, key), -EBADMSG);
	}

	/* Permissions: any group or other bit, a symlink, a directory, another owner. */
	write_file(path, expected, sizeof(expected), 0640);
	ck_assert_int_eq(kek_read_file(path, key), -EPERM);
	ck_assert_int_eq(chmod(path, 0604), 0);
	ck_assert_int_eq(kek_read_file(path, key), -EPERM);
	ck_assert_int_eq(chmod(path, 0610), 0);
	ck_assert_int_eq(kek_read_file(path, key), -EPERM);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(symlink(path, link_path), 0);
	ck_assert_int_eq(kek_read_file(link_path, key), -EPERM);
	ck_assert_int_eq(kek_read_file(test_dir, key), -EPERM);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(path, 1, (gid_t)-1), 0);
		ck_assert_int_eq(kek_read_file(path, key), -EPERM);
		ck_assert_int_eq(chown(path, 0, (gid_t)-1), 0);
	}
	ck_assert_int_eq(kek_read_file(path, key), 0);
	snprintf(path, sizeof(path), "%s/missing", test_dir);
	ck_assert_int_eq(kek_read_file(path, key), -ENOENT);
}
END_TEST

START_TEST(test_dataset_record_tampered)
{
	struct keystore *keystore = open_keystore(true);
	struct keystore_dataset dataset;
	struct store *store;
	struct store_txn *txn;
	struct store_slice val;
	struct kek *kek;
	uint8_t dek[CRYPTO_KEY_LEN], record[64];
	size_t len;

	kek = unlock(keystore, passphrase);
	create(keystore, kek, "cardio", dek);
	kek_free(kek);
	keystore_close(keystore);

	ck_assert_int_eq(store_open_schema(&store, keystore_dir, 0, STORE_SCHEMA_KEYSTORE), 0);
	ck_assert_int_eq(store_txn_begin(store, true, &txn), 0);
	ck_assert_int_eq(store_get(txn, STORE_KS_DATASETS, (struct store_slice){ "cardio", 6 },
				   &val), 0);
	len = val.len;
	ck_assert_uint_le(len, sizeof(record));
	memcpy(record, val.data, len);
	record[1] |= 0x80;   /* an unknown flag */
	ck_assert_int_eq(store_put(txn, STORE_KS_DATASETS, (struct store_slice){ "cardio", 6 },
				   (struct store_slice){ record, len }, 0), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	store_close(store);

	keystore = open_keystore(false);
	ck_assert_int_eq(keystore_dataset_get(keystore, "cardio", &dataset), -EBADMSG);
	ck_assert_uint_eq(dataset.version_count, 0);
	ck_assert_ptr_null(dataset.versions);
	keystore_close(keystore);
}
END_TEST

/*
 * The keystore records of the fuzz corpus, and seeded mutations of the valid ones: the
 * decoder never crashes, and whatever it accepts re-encodes to exactly its bytes.
 */
#define ONDISK_CORPUS TEST_DATA_DIR "/fuzz/corpus-ondisk"
#define RECORD_MUTATIONS 30000

static bool replay_record(void *arg, const uint8_t *in, size_t len)
{
	enum keystore_record kind = *(const enum keystore_record *)arg;
	uint8_t out[KEYSTORE_RECORD_MAX];
	size_t out_len = sizeof(out);
	int ret = keystore_record_recode(out, &out_len, kind, in, len);

	if (ret != 0) {
		ck_assert_int_eq(ret, -EBADMSG);
		return false;
	}
	ck_assert_uint_eq(out_len, len);
	ck_assert(memcmp(out, in, len) == 0);
	return true;
}

START_TEST(test_record_fuzz_replay)
{
	static const struct { int tag; enum keystore_record kind; } kinds[] = {
		{ REPLAY_ONDISK_KEK_RECORD, KEYSTORE_RECORD_KEK },
		{ REPLAY_ONDISK_DATASET_RECORD, KEYSTORE_RECORD_DATASET },
		{ REPLAY_ONDISK_VERSION_RECORD, KEYSTORE_RECORD_VERSION },
	};
	uint64_t state = UINT64_C(0x6b657973746f7265);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		uint8_t buf[KEYSTORE_RECORD_MAX];
		struct replay_corpus corpus;
		enum keystore_record kind = kinds[k].kind;

		ck_assert_int_eq(replay_corpus_load(&corpus, ONDISK_CORPUS, kinds[k].tag,
						    sizeof(buf)), 0);
		struct replay_counts c = replay_run(&corpus, replay_record, &kind, &state,
						    RECORD_MUTATIONS, buf, sizeof(buf), NULL);
		ck_assert_msg(c.valid > 0, "no valid seed of record kind '%c'", kinds[k].tag);
		ck_assert_uint_lt(c.accepted, RECORD_MUTATIONS);
		replay_corpus_release(&corpus);
	}
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("keystore");
	TCase *tc = tcase_create("keystore");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_get_list);
	tcase_add_test(tc, test_open_missing);
	tcase_add_test(tc, test_wrong_passphrase);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_test(tc, test_unwrap_after_reopen);
	tcase_add_test(tc, test_wrapped_key_moved);
	tcase_add_test(tc, test_wrapped_key_tampered);
	tcase_add_test(tc, test_rotate);
	tcase_add_test(tc, test_retire);
	tcase_add_test(tc, test_shred);
	tcase_add_test(tc, test_kek_rotate);
	tcase_add_test(tc, test_pwhash_limits);
	tcase_add_test(tc, test_pwhash_default_moderate);
	tcase_add_test(tc, test_kek_read_file);
	tcase_add_test(tc, test_dataset_record_tampered);
	tcase_add_test(tc, test_record_fuzz_replay);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
