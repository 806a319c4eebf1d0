/*
 * The key agent's keystore over the store's keystore schema: record encodings (one
 * leading version byte, explicit little-endian, strict decoding), the KEK check value and
 * Argon2id parameters, DEK wrapping bound to dataset id and version, and destruction of
 * wrapped keys by deletion followed by compaction of the environment.
 */
#include "lib/keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/bytes.h"
#include "lib/secret.h"
#include "lib/store.h"

#define RECORD_VERSION 1

/*
 * KEK record (STORE_KS_META "kek"), version 1, offsets in bytes:
 *   0 version(1) 1 kind(1) 2 reserved(2, zero) 4 opslimit(8) 12 memlimit(8) 20 salt(16)
 *   36 check(32)
 * A raw KEK has opslimit and memlimit 0. check = PRF(KEK, CRYPTO_CTX_KEK_CHECK,
 * salt || kind): a fresh salt at every setup and KEK rotation, so no two keystores and
 * no two KEK generations share a check value.
 */
#define KEK_RECORD_LEN 68
#define KEK_CHECK_LEN 32
#define KEK_KIND_PASSPHRASE 1
#define KEK_KIND_KEY 2

/*
 * Dataset record (STORE_KS_DATASETS, key: the name), version 1:
 *   0 version(1) 1 flags(1) 2 reserved(2, zero) 4 id(16) 20 newest(4) 24 created(8)
 *   32 created_by(4) 36 shredded_at(8) 44 shredded_by(4)
 * A shredded dataset has newest 0; a live one has newest >= 1 and no shred fields.
 */
#define DATASET_RECORD_LEN 48
#define DATASET_SHREDDED 0x01

/*
 * Version record (STORE_KS_VERSIONS, key: dataset id(16) || version(4, big-endian so
 * that a dataset's versions are adjacent and in order)), version 1:
 *   0 version(1) 1 flags(1) 2 cipher(1) 3 reserved(1, zero) 4 created(8)
 *   12 created_by(4) 16 retired_at(8) 24 retired_by(4) 28 wrapped_len(2) 30 wrapped
 * A retired version has cipher 0 and no wrapped key; a live one has exactly
 * CRYPTO_KEY_LEN + crypto_seal_overhead(cipher) wrapped bytes and no retire fields.
 */
#define VERSION_FIXED_LEN 30
#define VERSION_RETIRED 0x01
#define VERSION_KEY_LEN (VAULT_ID_LEN + 4)
#define WRAPPED_MAX (CRYPTO_KEY_LEN + CRYPTO_SEAL_SALT_LEN + CRYPTO_NONCE_MAX + CRYPTO_TAG_LEN)
#define VERSION_RECORD_MAX (VERSION_FIXED_LEN + WRAPPED_MAX)

/* Associated data of a wrapped DEK: prefix || dataset id || version (LE). */
#define WRAP_AD_PREFIX "vaultfs.v1.dek"
#define WRAP_AD_PREFIX_LEN (sizeof(WRAP_AD_PREFIX) - 1)
#define WRAP_AD_LEN (WRAP_AD_PREFIX_LEN + VAULT_ID_LEN + 4)

/* A raw KEK file: 32 bytes, or 64 hex digits and an optional newline. */
#define KEK_FILE_HEX_LEN (2 * CRYPTO_KEY_LEN)
#define KEK_FILE_MAX (KEK_FILE_HEX_LEN + 1)

static const char kek_record_name[] = "kek";

struct kek {
	uint8_t key[CRYPTO_KEY_LEN];
};

struct keystore {
	struct store *store;
	/* Argon2id limits for the next passphrase setup (first unlock, KEK rotation). */
	uint64_t opslimit;
	size_t memlimit;
};

struct kek_record {
	uint8_t kind;
	uint64_t opslimit;
	uint64_t memlimit;
	uint8_t salt[CRYPTO_PWHASH_SALT_LEN];
	uint8_t check[KEK_CHECK_LEN];
};

struct dataset_record {
	bool shredded;
	uint8_t id[VAULT_ID_LEN];
	uint32_t newest;
	uint64_t created;
	uint32_t created_by;
	uint64_t shredded_at;
	uint32_t shredded_by;
};

struct version_record {
	bool retired;
	enum crypto_cipher cipher;   /* 0 when retired */
	uint64_t created;
	uint32_t created_by;
	uint64_t retired_at;
	uint32_t retired_by;
	size_t wrapped_len;
	uint8_t wrapped[WRAPPED_MAX];
};

static uint64_t now_seconds(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec;
}

static struct store_slice slice_of(const void *data, size_t len)
{
	struct store_slice slice = { .data = data, .len = len };
	return slice;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

/* Records */

static void kek_record_encode(uint8_t out[KEK_RECORD_LEN], const struct kek_record *rec)
{
	memset(out, 0, KEK_RECORD_LEN);
	out[0] = RECORD_VERSION;
	out[1] = rec->kind;
	put_le64(out + 4, rec->opslimit);
	put_le64(out + 12, rec->memlimit);
	memcpy(out + 20, rec->salt, CRYPTO_PWHASH_SALT_LEN);
	memcpy(out + 36, rec->check, KEK_CHECK_LEN);
}

static int kek_record_decode(struct kek_record *rec, struct store_slice val)
{
	const uint8_t *p = val.data;

	if (val.len != KEK_RECORD_LEN || p[0] != RECORD_VERSION || p[2] != 0 || p[3] != 0)
		return -EBADMSG;
	rec->kind = p[1];
	rec->opslimit = get_le64(p + 4);
	rec->memlimit = get_le64(p + 12);
	memcpy(rec->salt, p + 20, CRYPTO_PWHASH_SALT_LEN);
	memcpy(rec->check, p + 36, KEK_CHECK_LEN);
	switch (rec->kind) {
	case KEK_KIND_PASSPHRASE:
		if (rec->opslimit < CRYPTO_PWHASH_OPSLIMIT_MIN ||
		    rec->opslimit > CRYPTO_PWHASH_OPSLIMIT_MAX ||
		    rec->memlimit < CRYPTO_PWHASH_MEMLIMIT_MIN ||
		    rec->memlimit > CRYPTO_PWHASH_MEMLIMIT_MAX)
			return -EBADMSG;
		return 0;
	case KEK_KIND_KEY:
		return rec->opslimit == 0 && rec->memlimit == 0 ? 0 : -EBADMSG;
	default:
		return -EBADMSG;
	}
}

static void dataset_record_encode(uint8_t out[DATASET_RECORD_LEN],
				  const struct dataset_record *rec)
{
	memset(out, 0, DATASET_RECORD_LEN);
	out[0] = RECORD_VERSION;
	out[1] = rec->shredded ? DATASET_SHREDDED : 0;
	memcpy(out + 4, rec->id, VAULT_ID_LEN);
	put_le32(out + 20, rec->newest);
	put_le64(out + 24, rec->created);
	put_le32(out + 32, rec->created_by);
	put_le64(out + 36, rec->shredded_at);
	put_le32(out + 44, rec->shredded_by);
}

static int dataset_record_decode(struct dataset_record *rec, struct store_slice val)
{
	const uint8_t *p = val.data;

	if (val.len != DATASET_RECORD_LEN || p[0] != RECORD_VERSION ||
	    (p[1] & ~DATASET_SHREDDED) != 0 || p[2] != 0 || p[3] != 0)
		return -EBADMSG;
	rec->shredded = (p[1] & DATASET_SHREDDED) != 0;
	memcpy(rec->id, p + 4, VAULT_ID_LEN);
	rec->newest = get_le32(p + 20);
	rec->created = get_le64(p + 24);
	rec->created_by = get_le32(p + 32);
	rec->shredded_at = get_le64(p + 36);
	rec->shredded_by = get_le32(p + 44);
	if (rec->shredded && rec->newest != 0)
		return -EBADMSG;
	if (!rec->shredded && (rec->newest == 0 || !all_zero(p + 36, 12)))
		return -EBADMSG;
	return 0;
}

static size_t version_record_encode(uint8_t out[VERSION_RECORD_MAX],
				    const struct version_record *rec)
{
	memset(out, 0, VERSION_FIXED_LEN);
	out[0] = RECORD_VERSION;
	out[1] = rec->retired ? VERSION_RETIRED : 0;
	out[2] = rec->retired ? 0 : (uint8_t)rec->cipher;
	put_le64(out + 4, rec->created);
	put_le32(out + 12, rec->created_by);
	put_le64(out + 16, rec->retired_at);
	put_le32(out + 24, rec->retired_by);
	if (rec->retired)
		return VERSION_FIXED_LEN;
	put_le16(out + 28, (uint16_t)rec->wrapped_len);
	memcpy(out + VERSION_FIXED_LEN, rec->wrapped, rec->wrapped_len);
	return VERSION_FIXED_LEN + rec->wrapped_len;
}

static int version_record_decode(struct version_record *rec, struct store_slice val)
{
	const uint8_t *p = val.data;

	if (val.len < VERSION_FIXED_LEN || p[0] != RECORD_VERSION ||
	    (p[1] & ~VERSION_RETIRED) != 0 || p[3] != 0)
		return -EBADMSG;
	rec->retired = (p[1] & VERSION_RETIRED) != 0;
	rec->cipher = (enum crypto_cipher)p[2];
	rec->created = get_le64(p + 4);
	rec->created_by = get_le32(p + 12);
	rec->retired_at = get_le64(p + 16);
	rec->retired_by = get_le32(p + 24);
	rec->wrapped_len = get_le16(p + 28);
	if (val.len != VERSION_FIXED_LEN + rec->wrapped_len)
		return -EBADMSG;
	if (rec->retired)
		return p[2] == 0 && rec->wrapped_len == 0 ? 0 : -EBADMSG;
	if (crypto_seal_overhead(rec->cipher) == 0 ||
	    rec->wrapped_len != CRYPTO_KEY_LEN + crypto_seal_overhead(rec->cipher) ||
	    !all_zero(p + 16, 12))
		return -EBADMSG;
	memcpy(rec->wrapped, p + VERSION_FIXED_LEN, rec->wrapped_len);
	return 0;
}

_Static_assert(KEK_RECORD_LEN <= KEYSTORE_RECORD_MAX && DATASET_RECORD_LEN <= KEYSTORE_RECORD_MAX &&
	       VERSION_RECORD_MAX <= KEYSTORE_RECORD_MAX, "keystore record length");

int keystore_record_recode(uint8_t *out, size_t *out_len, enum keystore_record kind,
			   const uint8_t *in, size_t in_len)
{
	struct kek_record kek;
	struct dataset_record dataset;
	struct version_record version;
	int ret = -EBADMSG;

	*out_len = 0;
	switch (kind) {
	case KEYSTORE_RECORD_KEK:
		ret = kek_record_decode(&kek, slice_of(in, in_len));
		if (ret == 0) {
			kek_record_encode(out, &kek);
			*out_len = KEK_RECORD_LEN;
		}
		break;
	case KEYSTORE_RECORD_DATASET:
		ret = dataset_record_decode(&dataset, slice_of(in, in_len));
		if (ret == 0) {
			dataset_record_encode(out, &dataset);
			*out_len = DATASET_RECORD_LEN;
		}
		break;
	case KEYSTORE_RECORD_VERSION:
		ret = version_record_decode(&version, slice_of(in, in_len));
		if (ret == 0)
			*out_len = version_record_encode(out, &version);
		break;
	}
	return ret;
}

static void version_key(uint8_t key[VERSION_KEY_LEN], const uint8_t id[VAULT_ID_LEN],
			uint32_t version)
{
	memcpy(key, id, VAULT_ID_LEN);
	for (int i = 0; i < 4; i++)
		key[VAULT_ID_LEN + i] = (uint8_t)(version >> (24 - 8 * i));
}

static uint32_t version_from_key(const uint8_t key[VERSION_KEY_LEN])
{
	uint32_t version = 0;

	for (int i = 0; i < 4; i++)
		version = (version << 8) | key[VAULT_ID_LEN + i];
	return version;
}

/* Store access */

static int kek_record_get(struct store_txn *txn, struct kek_record *rec)
{
	struct store_slice val;
	int ret;

	ret = store_get(txn, STORE_KS_META, slice_of(kek_record_name, sizeof(kek_record_name) - 1),
			&val);
	if (ret < 0)
		return ret;
	return kek_record_decode(rec, val);
}

static int kek_record_put(struct store_txn *txn, const struct kek_record *rec)
{
	uint8_t buf[KEK_RECORD_LEN];

	kek_record_encode(buf, rec);
	return store_put(txn, STORE_KS_META, slice_of(kek_record_name, sizeof(kek_record_name) - 1),
			 slice_of(buf, sizeof(buf)), 0);
}

static int dataset_record_get(struct store_txn *txn, const char *name,
			      struct dataset_record *rec)
{
	struct store_slice val;
	int ret;

	if (!policy_name_valid(name))
		return -EINVAL;
	ret = store_get(txn, STORE_KS_DATASETS, slice_of(name, strlen(name)), &val);
	if (ret < 0)
		return ret;
	return dataset_record_decode(rec, val);
}

static int dataset_record_put(struct store_txn *txn, const char *name,
			      const struct dataset_record *rec, unsigned flags)
{
	uint8_t buf[DATASET_RECORD_LEN];

	dataset_record_encode(buf, rec);
	return store_put(txn, STORE_KS_DATASETS, slice_of(name, strlen(name)),
			 slice_of(buf, sizeof(buf)), flags);
}

static int version_record_get(struct store_txn *txn, const uint8_t id[VAULT_ID_LEN],
			      uint32_t version, struct version_record *rec)
{
	uint8_t key[VERSION_KEY_LEN];
	struct store_slice val;
	int ret;

	version_key(key, id, version);
	ret = store_get(txn, STORE_KS_VERSIONS, slice_of(key, sizeof(key)), &val);
	if (ret < 0)
		return ret;
	return version_record_decode(rec, val);
}

static int version_record_put(struct store_txn *txn, const uint8_t id[VAULT_ID_LEN],
			      uint32_t version, const struct version_record *rec, unsigned flags)
{
	uint8_t key[VERSION_KEY_LEN], buf[VERSION_RECORD_MAX];
	size_t len;

	version_key(key, id, version);
	len = version_record_encode(buf, rec);
	return store_put(txn, STORE_KS_VERSIONS, slice_of(key, sizeof(key)), slice_of(buf, len),
			 flags);
}

/* Commit and make the change durable: a lost dataset key is a lost vault. */
static int commit_sync(struct keystore *keystore, struct store_txn *txn)
{
	int ret = store_txn_commit(txn);

	if (ret == 0)
		ret = store_sync(keystore->store);
	return ret;
}

/* KEK */

static int kek_check_value(uint8_t check[KEK_CHECK_LEN], const struct kek_record *rec,
			   const uint8_t key[CRYPTO_KEY_LEN])
{
	uint8_t input[CRYPTO_PWHASH_SALT_LEN + 1];

	memcpy(input, rec->salt, CRYPTO_PWHASH_SALT_LEN);
	input[CRYPTO_PWHASH_SALT_LEN] = rec->kind;
	return crypto_prf(check, KEK_CHECK_LEN, CRYPTO_CTX_KEK_CHECK, input, sizeof(input), key);
}

/* 0 when kek is the keystore's current KEK, -EKEYREJECTED otherwise (a wrong key, or
 * a KEK that a rotation replaced). */
static int kek_verify(struct store_txn *txn, const struct kek *kek)
{
	struct kek_record rec;
	uint8_t check[KEK_CHECK_LEN];
	int ret;

	ret = kek_record_get(txn, &rec);
	if (ret == -ENOENT)
		return -EKEYREJECTED;
	if (ret < 0)
		return ret;
	ret = kek_check_value(check, &rec, kek->key);
	if (ret == 0 && secret_compare(check, rec.check, KEK_CHECK_LEN) != 0)
		ret = -EKEYREJECTED;
	return ret;
}

/* The KEK of rec's kind and salt from a passphrase or a raw key, in new secret memory. */
static int kek_derive(struct kek **out, const struct kek_record *rec, const char *passphrase,
		      size_t len, const uint8_t raw[CRYPTO_KEY_LEN])
{
	struct kek *kek;
	int ret = 0;

	kek = secret_alloc(sizeof(*kek));
	if (kek == NULL)
		return -ENOMEM;
	if (rec->kind == KEK_KIND_PASSPHRASE)
		ret = crypto_password_key(kek->key, passphrase, len, rec->salt, rec->opslimit,
					  (size_t)rec->memlimit);
	else
		memcpy(kek->key, raw, CRYPTO_KEY_LEN);
	if (ret < 0) {
		secret_free(kek);
		return ret;
	}
	*out = kek;
	return 0;
}

/* A fresh KEK record (new salt, the keystore's limits) and its KEK. */
static int kek_setup(struct keystore *keystore, struct kek_record *rec, struct kek **out,
		     const char *passphrase, size_t len, const uint8_t raw[CRYPTO_KEY_LEN])
{
	int ret;

	memset(rec, 0, sizeof(*rec));
	rec->kind = passphrase != NULL ? KEK_KIND_PASSPHRASE : KEK_KIND_KEY;
	if (rec->kind == KEK_KIND_PASSPHRASE) {
		rec->opslimit = keystore->opslimit;
		rec->memlimit = keystore->memlimit;
	}
	crypto_random(rec->salt, sizeof(rec->salt));
	ret = kek_derive(out, rec, passphrase, len, raw);
	if (ret < 0)
		return ret;
	ret = kek_check_value(rec->check, rec, (*out)->key);
	if (ret < 0) {
		secret_free(*out);
		*out = NULL;
	}
	return ret;
}

static int unlock(struct keystore *keystore, const char *passphrase, size_t len,
		  const uint8_t raw[CRYPTO_KEY_LEN], struct kek **out)
{
	struct store_txn *txn;
	struct kek_record rec;
	struct kek *kek = NULL;
	uint8_t check[KEK_CHECK_LEN];
	uint8_t kind = passphrase != NULL ? KEK_KIND_PASSPHRASE : KEK_KIND_KEY;
	int ret;

	*out = NULL;
	ret = store_txn_begin(keystore->store, true, &txn);
	if (ret < 0)
		return ret;
	ret = kek_record_get(txn, &rec);
	if (ret == -ENOENT) {
		/* First unlock: this KEK becomes the keystore's. */
		ret = kek_setup(keystore, &rec, &kek, passphrase, len, raw);
		if (ret == 0)
			ret = kek_record_put(txn, &rec);
		if (ret == 0) {
			ret = commit_sync(keystore, txn);
			txn = NULL;
		}
		goto out_abort;
	}
	if (ret < 0)
		goto out_abort;
	if (rec.kind != kind) {
		ret = -ENOTSUP;
		goto out_abort;
	}
	ret = kek_derive(&kek, &rec, passphrase, len, raw);
	if (ret == 0)
		ret = kek_check_value(check, &rec, kek->key);
	if (ret == 0 && secret_compare(check, rec.check, KEK_CHECK_LEN) != 0)
		ret = -EKEYREJECTED;
out_abort:
	store_txn_abort(txn);
	if (ret < 0) {
		secret_free(kek);
		kek = NULL;
	}
	*out = kek;
	return ret;
}

/* Wrapping */

static void wrap_ad(uint8_t ad[WRAP_AD_LEN], const uint8_t id[VAULT_ID_LEN], uint32_t version)
{
	memcpy(ad, WRAP_AD_PREFIX, WRAP_AD_PREFIX_LEN);
	memcpy(ad + WRAP_AD_PREFIX_LEN, id, VAULT_ID_LEN);
	put_le32(ad + WRAP_AD_PREFIX_LEN + VAULT_ID_LEN, version);
}

static int wrap(struct version_record *rec, const uint8_t id[VAULT_ID_LEN], uint32_t version,
		const uint8_t dek[CRYPTO_KEY_LEN], const struct kek *kek)
{
	uint8_t ad[WRAP_AD_LEN];

	rec->cipher = crypto_cipher_default();
	rec->wrapped_len = CRYPTO_KEY_LEN + crypto_seal_overhead(rec->cipher);
	wrap_ad(ad, id, version);
	return crypto_seal(rec->wrapped, rec->wrapped_len, dek, CRYPTO_KEY_LEN, ad, sizeof(ad),
			   rec->cipher, kek->key);
}

static int unwrap(uint8_t dek[CRYPTO_KEY_LEN], const struct version_record *rec,
		  const uint8_t id[VAULT_ID_LEN], uint32_t version, const struct kek *kek)
{
	uint8_t ad[WRAP_AD_LEN];

	wrap_ad(ad, id, version);
	return crypto_unseal(dek, CRYPTO_KEY_LEN, rec->wrapped, rec->wrapped_len, ad, sizeof(ad),
			     rec->cipher, kek->key);
}

/* Public API */

int keystore_open(struct keystore **out, const char *dir, bool create)
{
	struct keystore *keystore;
	int ret;

	*out = NULL;
	ret = secret_init();
	if (ret < 0)
		return ret;
	keystore = calloc(1, sizeof(*keystore));
	if (keystore == NULL)
		return -ENOMEM;
	keystore->opslimit = CRYPTO_PWHASH_OPSLIMIT_MODERATE;
	keystore->memlimit = CRYPTO_PWHASH_MEMLIMIT_MODERATE;
	ret = store_open_schema(&keystore->store, dir, create ? STORE_CREATE : 0,
				STORE_SCHEMA_KEYSTORE);
	if (ret < 0) {
		free(keystore);
		return ret;
	}
	*out = keystore;
	return 0;
}

void keystore_close(struct keystore *keystore)
{
	if (keystore == NULL)
		return;
	store_close(keystore->store);
	free(keystore);
}

int keystore_set_pwhash_limits(struct keystore *keystore, uint64_t opslimit, size_t memlimit)
{
	if (opslimit < CRYPTO_PWHASH_OPSLIMIT_MIN || opslimit > CRYPTO_PWHASH_OPSLIMIT_MAX ||
	    memlimit < CRYPTO_PWHASH_MEMLIMIT_MIN || memlimit > CRYPTO_PWHASH_MEMLIMIT_MAX)
		return -EINVAL;
	keystore->opslimit = opslimit;
	keystore->memlimit = memlimit;
	return 0;
}

void kek_free(struct kek *kek)
{
	secret_free(kek);
}

bool keystore_has_kek(struct keystore *keystore)
{
	struct store_txn *txn;
	struct kek_record rec;
	bool has = false;

	if (store_txn_begin(keystore->store, false, &txn) < 0)
		return false;
	has = kek_record_get(txn, &rec) == 0;
	store_txn_abort(txn);
	return has;
}

int keystore_unlock_passphrase(struct keystore *keystore, const char *passphrase, size_t len,
			       struct kek **out)
{
	if (passphrase == NULL || len == 0) {
		*out = NULL;
		return -EINVAL;
	}
	return unlock(keystore, passphrase, len, NULL, out);
}

int keystore_unlock_key(struct keystore *keystore, const uint8_t key[CRYPTO_KEY_LEN],
			struct kek **out)
{
	return unlock(keystore, NULL, 0, key, out);
}


int kek_read_file(const char *path, uint8_t key[CRYPTO_KEY_LEN])
{
	uint8_t *buf = secret_alloc(KEK_FILE_MAX + 1);
	size_t len = 0;
	int ret;

	if (buf == NULL)
		return -ENOMEM;
	ret = secret_file_read(path, buf, KEK_FILE_MAX + 1, &len);
	if (ret < 0)
		goto out_free;
	if (len == CRYPTO_KEY_LEN) {
		memcpy(key, buf, CRYPTO_KEY_LEN);
	} else if (len == KEK_FILE_HEX_LEN ||
		   (len == KEK_FILE_HEX_LEN + 1 && buf[KEK_FILE_HEX_LEN] == '\n')) {
		if (crypto_from_hex(key, CRYPTO_KEY_LEN, (const char *)buf, KEK_FILE_HEX_LEN) < 0)
			ret = -EBADMSG;
	} else {
		ret = -EBADMSG;
	}
out_free:
	if (ret < 0)
		secret_wipe(key, CRYPTO_KEY_LEN);
	secret_free(buf);   /* wipes the file's copy of the key */
	return ret;
}

void keystore_dataset_release(struct keystore_dataset *dataset)
{
	if (dataset == NULL)
		return;
	free(dataset->versions);
	memset(dataset, 0, sizeof(*dataset));
}

static void version_to_public(struct keystore_version *out, uint32_t version,
			      const struct version_record *rec)
{
	out->version = version;
	out->retired = rec->retired;
	out->created = rec->created;
	out->created_by = rec->created_by;
	out->retired_at = rec->retired_at;
	out->retired_by = rec->retired_by;
}

static void dataset_to_public(struct keystore_dataset *out, const char *name,
			      const struct dataset_record *rec)
{
	memset(out, 0, sizeof(*out));
	strcpy(out->name, name);   /* policy_name_valid() bounded it */
	memcpy(out->id, rec->id, VAULT_ID_LEN);
	out->newest = rec->newest;
	out->shredded = rec->shredded;
	out->created = rec->created;
	out->created_by = rec->created_by;
	out->shredded_at = rec->shredded_at;
	out->shredded_by = rec->shredded_by;
}

/* The dataset and every version record it has, in version order. */
static int dataset_load(struct store_txn *txn, const char *name, struct keystore_dataset *out)
{
	struct dataset_record rec;
	struct store_cursor *cursor;
	struct store_slice key, val;
	uint8_t start[VERSION_KEY_LEN];
	size_t cap = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = dataset_record_get(txn, name, &rec);
	if (ret < 0)
		return ret;
	dataset_to_public(out, name, &rec);

	ret = store_cursor_open(txn, STORE_KS_VERSIONS, &cursor);
	if (ret < 0)
		goto out_release;
	version_key(start, rec.id, 0);
	for (ret = store_cursor_seek(cursor, slice_of(start, sizeof(start)), &key, &val);
	     ret == 0; ret = store_cursor_next(cursor, &key, &val)) {
		struct version_record version;

		if (key.len != VERSION_KEY_LEN || memcmp(key.data, rec.id, VAULT_ID_LEN) != 0)
			break;
		ret = version_record_decode(&version, val);
		if (ret < 0)
			goto out_close;
		if (out->version_count == cap) {
			size_t new_cap = cap == 0 ? 4 : 2 * cap;
			struct keystore_version *grown =
				realloc(out->versions, new_cap * sizeof(*grown));

			if (grown == NULL) {
				ret = -ENOMEM;
				goto out_close;
			}
			out->versions = grown;
			cap = new_cap;
		}
		version_to_public(&out->versions[out->version_count++],
				  version_from_key(key.data), &version);
		secret_wipe(version.wrapped, sizeof(version.wrapped));
	}
	if (ret == -ENOENT)
		ret = 0;
	/* A live dataset's newest version exists and is live. */
	if (ret == 0 && !out->shredded &&
	    (out->version_count == 0 ||
	     out->versions[out->version_count - 1].version != out->newest ||
	     out->versions[out->version_count - 1].retired))
		ret = -EBADMSG;
out_close:
	store_cursor_close(cursor);
out_release:
	if (ret < 0)
		keystore_dataset_release(out);
	return ret;
}

int keystore_dataset_create(struct keystore *keystore, const struct kek *kek, const char *name,
			    uid_t who, uint8_t dek[CRYPTO_KEY_LEN], struct keystore_dataset *out)
{
	struct store_txn *txn;
	struct dataset_record rec = { 0 };
	struct version_record version = { 0 };
	struct keystore_version *versions;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!policy_name_valid(name))
		return -EINVAL;
	versions = calloc(1, sizeof(*versions));
	if (versions == NULL)
		return -ENOMEM;
	ret = store_txn_begin(keystore->store, true, &txn);
	if (ret < 0)
		goto out_free;
	ret = kek_verify(txn, kek);
	if (ret < 0)
		goto out_abort;
	/* A shredded dataset's record stays as a tombstone, so its name is taken too. */
	ret = dataset_record_get(txn, name, &rec);
	if (ret == 0)
		ret = -EEXIST;
	if (ret != -ENOENT)
		goto out_abort;

	crypto_random(rec.id, sizeof(rec.id));
	rec.newest = 1;
	rec.created = now_seconds();
	rec.created_by = (uint32_t)who;
	version.created = rec.created;
	version.created_by = rec.created_by;
	crypto_random(dek, CRYPTO_KEY_LEN);
	ret = wrap(&version, rec.id, 1, dek, kek);
	if (ret == 0)
		ret = version_record_put(txn, rec.id, 1, &version, STORE_NO_OVERWRITE);
	if (ret == 0)
		ret = dataset_record_put(txn, name, &rec, STORE_NO_OVERWRITE);
	if (ret < 0)
		goto out_abort;
	ret = commit_sync(keystore, txn);
	txn = NULL;
	if (ret < 0)
		goto out_abort;

	dataset_to_public(out, name, &rec);
	version_to_public(&versions[0], 1, &version);
	out->versions = versions;
	out->version_count = 1;
	versions = NULL;
out_abort:
	store_txn_abort(txn);
	if (ret < 0)
		secret_wipe(dek, CRYPTO_KEY_LEN);
out_free:
	free(versions);
	return ret;
}

int keystore_dataset_get(struct keystore *keystore, const char *name,
			 struct keystore_dataset *out)
{
	struct store_txn *txn;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = store_txn_begin(keystore->store, false, &txn);
	if (ret < 0)
		return ret;
	ret = dataset_load(txn, name, out);
	store_txn_abort(txn);
	return ret;
}

static void names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int keystore_dataset_list(struct keystore *keystore, char ***names_out, size_t *count_out)
{
	struct store_txn *txn;
	struct store_cursor *cursor;
	struct store_slice key, val;
	char **names = NULL;
	size_t count = 0, cap = 0;
	int ret;

	*names_out = NULL;
	*count_out = 0;
	ret = store_txn_begin(keystore->store, false, &txn);
	if (ret < 0)
		return ret;
	ret = store_cursor_open(txn, STORE_KS_DATASETS, &cursor);
	if (ret < 0)
		goto out_abort;
	for (ret = store_cursor_seek(cursor, slice_of(NULL, 0), &key, &val); ret == 0;
	     ret = store_cursor_next(cursor, &key, &val)) {
		char *name;

		if (count == cap) {
			size_t new_cap = cap == 0 ? 8 : 2 * cap;
			char **grown = realloc(names, new_cap * sizeof(*grown));

			if (grown == NULL) {
				ret = -ENOMEM;
				goto out_close;
			}
			names = grown;
			cap = new_cap;
		}
		name = key.len <= POLICY_NAME_MAX ? strndup(key.data, key.len) : NULL;
		if (name == NULL) {
			ret = key.len <= POLICY_NAME_MAX ? -ENOMEM : -EBADMSG;
			goto out_close;
		}
		names[count++] = name;
		/* Key bytes that are no dataset name (an embedded NUL among them). */
		if (strlen(name) != key.len || !policy_name_valid(name)) {
			ret = -EBADMSG;
			goto out_close;
		}
	}
	if (ret == -ENOENT)
		ret = 0;
out_close:
	store_cursor_close(cursor);
out_abort:
	store_txn_abort(txn);
	if (ret < 0) {
		names_free(names, count);
		return ret;
	}
	*names_out = names;
	*count_out = count;
	return 0;
}

int keystore_key_get(struct keystore *keystore, const struct kek *kek, const char *name,
		     uint32_t version, uint8_t key[CRYPTO_KEY_LEN])
{
	struct store_txn *txn;
	struct dataset_record rec;
	struct version_record version_rec;
	int ret;

	ret = store_txn_begin(keystore->store, false, &txn);
	if (ret < 0)
		return ret;
	ret = kek_verify(txn, kek);
	if (ret == 0)
		ret = dataset_record_get(txn, name, &rec);
	if (ret == 0 && (rec.shredded || version == 0))
		ret = -ENOKEY;
	if (ret == 0) {
		ret = version_record_get(txn, rec.id, version, &version_rec);
		if (ret == -ENOENT || (ret == 0 && version_rec.retired))
			ret = -ENOKEY;
	}
	if (ret == 0)
		ret = unwrap(key, &version_rec, rec.id, version, kek);
	store_txn_abort(txn);
	secret_wipe(&version_rec, sizeof(version_rec));
	return ret;
}

int keystore_key_rotate(struct keystore *keystore, const struct kek *kek, const char *name,
			uid_t who, uint32_t *version)
{
	struct store_txn *txn;
	struct dataset_record rec;
	struct version_record version_rec = { 0 };
	uint8_t *dek;
	uint32_t next;
	int ret;

	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (dek == NULL)
		return -ENOMEM;
	ret = store_txn_begin(keystore->store, true, &txn);
	if (ret < 0)
		goto out_free;
	ret = kek_verify(txn, kek);
	if (ret == 0)
		ret = dataset_record_get(txn, name, &rec);
	if (ret == 0 && rec.shredded)
		ret = -ENOKEY;
	if (ret == 0 && rec.newest == UINT32_MAX)
		ret = -EOVERFLOW;
	if (ret < 0)
		goto out_abort;

	next = rec.newest + 1;
	version_rec.created = now_seconds();
	version_rec.created_by = (uint32_t)who;
	crypto_random(dek, CRYPTO_KEY_LEN);
	ret = wrap(&version_rec, rec.id, next, dek, kek);
	if (ret == 0)
		ret = version_record_put(txn, rec.id, next, &version_rec, STORE_NO_OVERWRITE);
	rec.newest = next;
	if (ret == 0)
		ret = dataset_record_put(txn, name, &rec, 0);
	if (ret < 0)
		goto out_abort;
	ret = commit_sync(keystore, txn);
	txn = NULL;
	if (ret == 0)
		*version = next;
out_abort:
	store_txn_abort(txn);
out_free:
	secret_free(dek);
	return ret;
}

int keystore_key_retire(struct keystore *keystore, const char *name, uint32_t version, uid_t who)
{
	struct store_txn *txn;
	struct dataset_record rec;
	struct version_record version_rec;
	int ret;

	ret = store_txn_begin(keystore->store, true, &txn);
	if (ret < 0)
		return ret;
	ret = dataset_record_get(txn, name, &rec);
	if (ret == 0 && rec.shredded)
		ret = -ENOKEY;
	if (ret == 0 && version == rec.newest)
		ret = -EBUSY;
	if (ret == 0 && version == 0)
		ret = -ENOKEY;
	if (ret == 0) {
		ret = version_record_get(txn, rec.id, version, &version_rec);
		if (ret == -ENOENT)
			ret = -ENOKEY;
	}
	if (ret < 0 || version_rec.retired) {
		/* Retired before: only the compaction below may be left to do. */
		store_txn_abort(txn);
		goto out_compact;
	}
	version_rec.retired = true;
	version_rec.retired_at = now_seconds();
	version_rec.retired_by = (uint32_t)who;
	ret = version_record_put(txn, rec.id, version, &version_rec, 0);
	if (ret < 0) {
		store_txn_abort(txn);
		goto out_wipe;
	}
	ret = commit_sync(keystore, txn);
out_compact:
	if (ret == 0)
		ret = store_compact(keystore->store);
out_wipe:
	secret_wipe(&version_rec, sizeof(version_rec));
	return ret;
}

int keystore_shred(struct keystore *keystore, const char *name, uid_t who)
{
	struct store_txn *txn;
	struct dataset_record rec;
	struct keystore_dataset dataset;
	uint64_t now = now_seconds();
	int ret;

	ret = store_txn_begin(keystore->store, true, &txn);
	if (ret < 0)
		return ret;
	ret = dataset_load(txn, name, &dataset);
	if (ret == 0)
		ret = dataset_record_get(txn, name, &rec);
	if (ret < 0 || rec.shredded) {
		/* Shredded before: only the compaction below may be left to do. */
		store_txn_abort(txn);
		goto out_compact;
	}
	for (size_t i = 0; i < dataset.version_count && ret == 0; i++) {
		const struct keystore_version *v = &dataset.versions[i];
		struct version_record version_rec = {
			.retired = true,
			.created = v->created,
			.created_by = v->created_by,
			.retired_at = v->retired ? v->retired_at : now,
			.retired_by = v->retired ? v->retired_by : (uint32_t)who,
		};

		ret = version_record_put(txn, rec.id, v->version, &version_rec, 0);
	}
	rec.shredded = true;
	rec.newest = 0;
	rec.shredded_at = now;
	rec.shredded_by = (uint32_t)who;
	if (ret == 0)
		ret = dataset_record_put(txn, name, &rec, 0);
	if (ret < 0) {
		store_txn_abort(txn);
		goto out_release;
	}
	ret = commit_sync(keystore, txn);
out_compact:
	if (ret == 0)
		ret = store_compact(keystore->store);
out_release:
	keystore_dataset_release(&dataset);
	return ret;
}

/* One re-wrapped version waiting to be written. */
struct rewrap {
	uint8_t key[VERSION_KEY_LEN];
	struct version_record rec;
};

int keystore_kek_rotate(struct keystore *keystore, const struct kek *old_kek,
			const char *new_passphrase, size_t new_len,
			const uint8_t new_key[CRYPTO_KEY_LEN], struct kek **new_out)
{
	struct store_txn *txn;
	struct store_cursor *cursor = NULL;
	struct store_slice key, val;
	struct kek_record rec;
	struct kek *new_kek = NULL;
	struct rewrap *rewraps = NULL;
	size_t count = 0, cap = 0;
	uint8_t *dek;
	int ret;

	if (new_out != NULL)
		*new_out = NULL;
	if ((new_passphrase == NULL) == (new_key == NULL) ||
	    (new_passphrase != NULL && new_len == 0))
		return -EINVAL;
	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (dek == NULL)
		return -ENOMEM;
	ret = store_txn_begin(keystore->store, true, &txn);
	if (ret < 0)
		goto out_free_dek;
	ret = kek_verify(txn, old_kek);
	if (ret == 0)
		ret = kek_setup(keystore, &rec, &new_kek, new_passphrase, new_len, new_key);
	if (ret == 0)
		ret = store_cursor_open(txn, STORE_KS_VERSIONS, &cursor);
	if (ret < 0)
		goto out_abort;

	/* Unwrap and re-wrap every live version first, write them after the walk: a write
	 * would invalidate the cursor's slices. */
	for (ret = store_cursor_seek(cursor, slice_of(NULL, 0), &key, &val); ret == 0;
	     ret = store_cursor_next(cursor, &key, &val)) {
		struct version_record old;
		struct rewrap *r;

		if (key.len != VERSION_KEY_LEN) {
			ret = -EBADMSG;
			break;
		}
		ret = version_record_decode(&old, val);
		if (ret < 0)
			break;
		if (old.retired)
			continue;
		if (count == cap) {
			size_t new_cap = cap == 0 ? 16 : 2 * cap;
			struct rewrap *grown = realloc(rewraps, new_cap * sizeof(*grown));

			if (grown == NULL) {
				ret = -ENOMEM;
				break;
			}
			rewraps = grown;
			cap = new_cap;
		}
		r = &rewraps[count++];
		memcpy(r->key, key.data, VERSION_KEY_LEN);
		r->rec = old;
		ret = unwrap(dek, &old, r->key, version_from_key(r->key), old_kek);
		if (ret == 0)
			ret = wrap(&r->rec, r->key, version_from_key(r->key), dek, new_kek);
		secret_wipe(dek, CRYPTO_KEY_LEN);
		if (ret < 0)
			break;
	}
	if (ret == -ENOENT)
		ret = 0;
	store_cursor_close(cursor);
	for (size_t i = 0; i < count && ret == 0; i++)
		ret = version_record_put(txn, rewraps[i].key, version_from_key(rewraps[i].key),
					 &rewraps[i].rec, 0);
	if (ret == 0)
		ret = kek_record_put(txn, &rec);
	if (ret < 0)
		goto out_abort;
	ret = store_txn_commit(txn);
	txn = NULL;
	if (ret < 0)
		goto out_abort;
	/* Committed: the new KEK is the keystore's, whatever follows. */
	if (new_out != NULL) {
		*new_out = new_kek;
		new_kek = NULL;
	}
	/* The old wrapped keys and check value must leave the files too. */
	ret = store_sync(keystore->store);
	if (ret == 0)
		ret = store_compact(keystore->store);
out_abort:
	store_txn_abort(txn);
	free(rewraps);
	kek_free(new_kek);
out_free_dek:
	secret_free(dek);
	return ret;
}
