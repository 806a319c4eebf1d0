/*
 * The encrypted namespace over the store: record encodings (explicit little-endian, one
 * leading record version byte), sealing of every value with associated data that binds
 * it to its table, key and vault, keyed hashes for directory entry and xattr keys, and a
 * per-meta cache of metadata keys derived lazily from the key source.
 */
#include "lib/meta.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "lib/bytes.h"
#include "lib/keysource.h"
#include "lib/secret.h"

#define RECORD_VERSION 1

/*
 * Inode record, version 1 (offsets in bytes, integers little-endian):
 *   0 version(1) 1 ino(8) 9 mode(4) 13 uid(4) 17 gid(4) 21 nlink(4) 25 size(8)
 *   33 rdev(8) 41 parent(8) 49 atime 61 mtime 73 ctime 85 btime (sec i64, nsec u32 each)
 *   97 object_id(16) 113 key_version(4) 117 budget_reserved(8) 125 object_max_len(8)
 *   133 hole_count(4) 137 symlink_len(4) 141 holes (start u64, end u64 each), symlink
 */
#define INODE_FIXED_LEN 141
#define INODE_EXTENT_LEN 16
/* Directory entry record: version(1) ino(8) type(1) name_len(2) name. */
#define DIRENT_FIXED_LEN 12
/* Xattr record: version(1) name_len(1) value_len(4) name value. */
#define XATTR_FIXED_LEN 6
/* Index key record: version(1) key(32). Counter record: version(1) next inode(8). */
#define INDEX_KEY_RECORD_LEN (1 + CRYPTO_KEY_LEN)
#define COUNTER_RECORD_LEN 9
#define ORPHAN_RECORD_LEN 1

#define HASH_LEN 16
#define INO_KEY_LEN 8
#define DIRENT_KEY_LEN (2 * HASH_LEN)
#define XATTR_KEY_LEN (INO_KEY_LEN + HASH_LEN)
#define VALUE_VERSION_LEN 4

/* Associated data of a sealed value: prefix || table(1) || key version(4) || key
 * length(2) || key || vault id. */
#define AD_PREFIX "vaultfs.v1"
#define AD_PREFIX_LEN (sizeof(AD_PREFIX) - 1)
#define AD_MAX (AD_PREFIX_LEN + 1 + 4 + 2 + 511 + VAULT_ID_LEN)

static const char index_key_name[] = "index-key";
static const char counter_name[] = "next-ino";

struct meta_key_entry {
	uint32_t version;
	uint8_t *key;   /* secret memory; never freed before meta_close */
};

struct meta {
	struct store *store;
	struct keysource *keys;
	enum crypto_cipher cipher;
	size_t seal_overhead;
	uint8_t vault_id[VAULT_ID_LEN];
	uint8_t *index_key;   /* secret memory */
	pthread_mutex_t cache_lock;
	bool revoked;         /* guarded by cache_lock */
	struct meta_key_entry *cache;
	size_t cache_len;
	size_t cache_cap;
};

struct meta_txn {
	struct meta *meta;
	struct store_txn *store_txn;
	/* Scratch for plaintext records and sealed values: grown, never shrunk, wiped. */
	uint8_t *plain;
	size_t plain_cap;
	uint8_t *sealed;
	size_t sealed_cap;
};

/* Inode records. */

static bool mode_valid(uint32_t mode)
{
	if (mode & ~(uint32_t)(S_IFMT | 07777))
		return false;
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

static bool time_valid(const struct timespec *ts)
{
	return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

/* The invariants every stored inode record satisfies; shared by encode and decode. */
static bool inode_valid(const struct meta_inode *inode)
{
	if (inode->ino == 0 || !mode_valid(inode->mode))
		return false;
	if (!time_valid(&inode->atime) || !time_valid(&inode->mtime) ||
	    !time_valid(&inode->ctime) || !time_valid(&inode->btime))
		return false;
	if (inode->hole_count > META_HOLES_MAX)
		return false;
	if (inode->hole_count > 0 && (!S_ISREG(inode->mode) || inode->holes == NULL))
		return false;
	for (uint32_t i = 0; i < inode->hole_count; i++) {
		if (inode->holes[i].start >= inode->holes[i].end)
			return false;
		/* Sorted, disjoint and non-adjacent: the next starts after a gap. */
		if (i > 0 && inode->holes[i - 1].end >= inode->holes[i].start)
			return false;
	}
	if (S_ISLNK(inode->mode)) {
		if (inode->symlink == NULL || inode->size == 0 || inode->size > META_SYMLINK_MAX)
			return false;
	} else if (inode->symlink != NULL) {
		return false;
	}
	return true;
}

static size_t symlink_len(const struct meta_inode *inode)
{
	return S_ISLNK(inode->mode) ? (size_t)inode->size : 0;
}

static size_t inode_encoded_len(const struct meta_inode *inode)
{
	return INODE_FIXED_LEN + (size_t)inode->hole_count * INODE_EXTENT_LEN + symlink_len(inode);
}

static void put_time(uint8_t *p, const struct timespec *ts)
{
	put_le64(p, (uint64_t)ts->tv_sec);
	put_le32(p + 8, (uint32_t)ts->tv_nsec);
}

static void get_time(struct timespec *ts, const uint8_t *p)
{
	ts->tv_sec = (time_t)get_le64(p);
	ts->tv_nsec = (long)get_le32(p + 8);
}

/* out holds inode_encoded_len(inode) bytes; the inode is valid. */
static void inode_encode_into(uint8_t *out, const struct meta_inode *inode)
{
	uint8_t *p = out + INODE_FIXED_LEN;

	out[0] = RECORD_VERSION;
	put_le64(out + 1, inode->ino);
	put_le32(out + 9, inode->mode);
	put_le32(out + 13, inode->uid);
	put_le32(out + 17, inode->gid);
	put_le32(out + 21, inode->nlink);
	put_le64(out + 25, inode->size);
	put_le64(out + 33, inode->rdev);
	put_le64(out + 41, inode->parent);
	put_time(out + 49, &inode->atime);
	put_time(out + 61, &inode->mtime);
	put_time(out + 73, &inode->ctime);
	put_time(out + 85, &inode->btime);
	memcpy(out + 97, inode->object_id, OBJECT_ID_LEN);
	put_le32(out + 113, inode->key_version);
	put_le64(out + 117, inode->budget_reserved);
	put_le64(out + 125, inode->object_max_len);
	put_le32(out + 133, inode->hole_count);
	put_le32(out + 137, (uint32_t)symlink_len(inode));
	for (uint32_t i = 0; i < inode->hole_count; i++) {
		put_le64(p, inode->holes[i].start);
		put_le64(p + 8, inode->holes[i].end);
		p += INODE_EXTENT_LEN;
	}
	if (symlink_len(inode) > 0)
		memcpy(p, inode->symlink, symlink_len(inode));
}

int meta_inode_encode(uint8_t **out, size_t *out_len, const struct meta_inode *inode)
{
	size_t len;

	*out = NULL;
	*out_len = 0;
	if (!inode_valid(inode))
		return -EINVAL;
	len = inode_encoded_len(inode);
	*out = malloc(len);
	if (*out == NULL)
		return -ENOMEM;
	inode_encode_into(*out, inode);
	*out_len = len;
	return 0;
}

int meta_inode_decode(struct meta_inode *inode, const uint8_t *in, size_t in_len)
{
	const uint8_t *p = in + INODE_FIXED_LEN;
	uint32_t holes, link_len;
	int ret = -EBADMSG;

	memset(inode, 0, sizeof(*inode));
	if (in_len < INODE_FIXED_LEN || in[0] != RECORD_VERSION)
		return -EBADMSG;
	holes = get_le32(in + 133);
	link_len = get_le32(in + 137);
	if (holes > META_HOLES_MAX || link_len > META_SYMLINK_MAX)
		return -EBADMSG;
	if (in_len != INODE_FIXED_LEN + (size_t)holes * INODE_EXTENT_LEN + link_len)
		return -EBADMSG;

	inode->ino = get_le64(in + 1);
	inode->mode = get_le32(in + 9);
	inode->uid = get_le32(in + 13);
	inode->gid = get_le32(in + 17);
	inode->nlink = get_le32(in + 21);
	inode->size = get_le64(in + 25);
	inode->rdev = get_le64(in + 33);
	inode->parent = get_le64(in + 41);
	get_time(&inode->atime, in + 49);
	get_time(&inode->mtime, in + 61);
	get_time(&inode->ctime, in + 73);
	get_time(&inode->btime, in + 85);
	memcpy(inode->object_id, in + 97, OBJECT_ID_LEN);
	inode->key_version = get_le32(in + 113);
	inode->budget_reserved = get_le64(in + 117);
	inode->object_max_len = get_le64(in + 125);
	/* The symlink length is the size for links and zero otherwise. */
	if (S_ISLNK(inode->mode) ? link_len != inode->size : link_len != 0)
		goto out_release;
	if (holes > 0) {
		inode->holes = malloc((size_t)holes * sizeof(*inode->holes));
		if (inode->holes == NULL) {
			ret = -ENOMEM;
			goto out_release;
		}
		inode->hole_count = holes;
		for (uint32_t i = 0; i < holes; i++) {
			inode->holes[i].start = get_le64(p);
			inode->holes[i].end = get_le64(p + 8);
			p += INODE_EXTENT_LEN;
		}
	}
	if (link_len > 0) {
		inode->symlink = malloc(link_len);
		if (inode->symlink == NULL) {
			ret = -ENOMEM;
			goto out_release;
		}
		memcpy(inode->symlink, p, link_len);
	}
	if (!inode_valid(inode))
		goto out_release;
	return 0;

out_release:
	meta_inode_release(inode);
	return ret;
}

void meta_inode_release(struct meta_inode *inode)
{
	free(inode->holes);
	free(inode->symlink);
	memset(inode, 0, sizeof(*inode));
}

int meta_inode_copy(struct meta_inode *dst, const struct meta_inode *src)
{
	*dst = *src;
	dst->holes = NULL;
	dst->symlink = NULL;
	if (src->hole_count > 0 && src->holes != NULL) {
		dst->holes = malloc((size_t)src->hole_count * sizeof(*dst->holes));
		if (dst->holes == NULL)
			goto out_nomem;
		memcpy(dst->holes, src->holes, (size_t)src->hole_count * sizeof(*dst->holes));
	}
	if (src->symlink != NULL) {
		size_t len = symlink_len(src);
		dst->symlink = malloc(len > 0 ? len : 1);
		if (dst->symlink == NULL)
			goto out_nomem;
		memcpy(dst->symlink, src->symlink, len);
	}
	return 0;

out_nomem:
	meta_inode_release(dst);
	return -ENOMEM;
}

/* Directory entry and xattr records. */

static int name_check(const char *name, size_t len)
{
	if (name == NULL || len == 0)
		return -EINVAL;
	if (len > META_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL)
		return -EINVAL;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	return 0;
}

static bool dirent_type_valid(uint32_t type)
{
	switch (type) {
	case DT_FIFO:
	case DT_CHR:
	case DT_DIR:
	case DT_BLK:
	case DT_REG:
	case DT_LNK:
	case DT_SOCK:
		return true;
	default:
		return false;
	}
}

static size_t dirent_encode_into(uint8_t *out, const struct meta_dirent *entry)
{
	out[0] = RECORD_VERSION;
	put_le64(out + 1, entry->ino);
	out[9] = (uint8_t)entry->type;
	put_le16(out + 10, (uint16_t)entry->name_len);
	memcpy(out + DIRENT_FIXED_LEN, entry->name, entry->name_len);
	return DIRENT_FIXED_LEN + entry->name_len;
}

/* Fills all of entry but the cookie. */
static int dirent_decode(struct meta_dirent *entry, const uint8_t *in, size_t in_len)
{
	size_t name_len;

	if (in_len < DIRENT_FIXED_LEN || in[0] != RECORD_VERSION)
		return -EBADMSG;
	name_len = get_le16(in + 10);
	if (in_len != DIRENT_FIXED_LEN + name_len)
		return -EBADMSG;
	if (name_check((const char *)in + DIRENT_FIXED_LEN, name_len) < 0)
		return -EBADMSG;
	entry->ino = get_le64(in + 1);
	entry->type = in[9];
	if (entry->ino == 0 || !dirent_type_valid(entry->type))
		return -EBADMSG;
	entry->name_len = name_len;
	memcpy(entry->name, in + DIRENT_FIXED_LEN, name_len);
	entry->name[name_len] = '\0';
	return 0;
}

static int xattr_name_check(const char *name, size_t *len)
{
	if (name == NULL)
		return -EINVAL;
	*len = strnlen(name, META_XATTR_NAME_MAX + 1);
	/* ERANGE is what setxattr(2) answers for an empty or too long name. */
	if (*len == 0 || *len > META_XATTR_NAME_MAX)
		return -ERANGE;
	return 0;
}

/* Checks an xattr record and points at its name and value inside in. */
static int xattr_decode(const uint8_t *in, size_t in_len, const uint8_t **name,
			size_t *name_len, const uint8_t **value, size_t *value_len)
{
	if (in_len < XATTR_FIXED_LEN || in[0] != RECORD_VERSION)
		return -EBADMSG;
	*name_len = in[1];
	*value_len = get_le32(in + 2);
	if (*name_len == 0 || *value_len > META_XATTR_VALUE_MAX)
		return -EBADMSG;
	if (in_len != XATTR_FIXED_LEN + *name_len + *value_len)
		return -EBADMSG;
	*name = in + XATTR_FIXED_LEN;
	if (memchr(*name, '\0', *name_len) != NULL)
		return -EBADMSG;
	*value = *name + *name_len;
	return 0;
}

/* Metadata keys. */

/* The metadata key of version (borrowed from the cache: valid until meta_close). */
static int meta_key_get(struct meta *meta, uint32_t version, const uint8_t **out)
{
	uint8_t *dek = NULL, *key = NULL;
	int ret = 0;

	pthread_mutex_lock(&meta->cache_lock);
	if (meta->revoked) {
		ret = -EKEYREVOKED;
		goto out_unlock;
	}
	for (size_t i = 0; i < meta->cache_len; i++) {
		if (meta->cache[i].version == version) {
			*out = meta->cache[i].key;
			goto out_unlock;
		}
	}
	if (meta->cache_len == meta->cache_cap) {
		size_t cap = meta->cache_cap ? 2 * meta->cache_cap : 4;
		struct meta_key_entry *cache = realloc(meta->cache, cap * sizeof(*cache));
		if (cache == NULL) {
			ret = -ENOMEM;
			goto out_unlock;
		}
		meta->cache = cache;
		meta->cache_cap = cap;
	}
	dek = secret_alloc(CRYPTO_KEY_LEN);
	key = secret_alloc(CRYPTO_KEY_LEN);
	if (dek == NULL || key == NULL) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = keysource_get(meta->keys, version, dek);
	if (ret < 0)
		goto out_free;
	ret = crypto_prf(key, CRYPTO_KEY_LEN, CRYPTO_CTX_META_KEY, meta->vault_id,
			 VAULT_ID_LEN, dek);
	if (ret < 0)
		goto out_free;
	meta->cache[meta->cache_len].version = version;
	meta->cache[meta->cache_len].key = key;
	meta->cache_len++;
	*out = key;
	key = NULL;
out_free:
	secret_free(key);
	secret_free(dek);
out_unlock:
	pthread_mutex_unlock(&meta->cache_lock);
	return ret;
}

void meta_revoke_keys(struct meta *meta)
{
	pthread_mutex_lock(&meta->cache_lock);
	meta->revoked = true;
	/* Wiped in place, not freed: a request that borrowed a key a moment ago may still
	 * hold the pointer; it now computes with zeros and fails to authenticate. */
	for (size_t i = 0; i < meta->cache_len; i++)
		secret_wipe(meta->cache[i].key, CRYPTO_KEY_LEN);
	if (meta->index_key)
		secret_wipe(meta->index_key, CRYPTO_KEY_LEN);
	pthread_mutex_unlock(&meta->cache_lock);
}

static size_t ad_build(uint8_t ad[AD_MAX], const struct meta *meta, enum store_table table,
		       uint32_t version, const uint8_t *key, size_t key_len)
{
	uint8_t *p = ad;

	memcpy(p, AD_PREFIX, AD_PREFIX_LEN);
	p += AD_PREFIX_LEN;
	*p++ = (uint8_t)table;
	put_le32(p, version);
	p += 4;
	put_le16(p, (uint16_t)key_len);
	p += 2;
	memcpy(p, key, key_len);
	p += key_len;
	memcpy(p, meta->vault_id, VAULT_ID_LEN);
	p += VAULT_ID_LEN;
	return (size_t)(p - ad);
}

static int buf_reserve(uint8_t **buf, size_t *cap, size_t len)
{
	uint8_t *grown;
	size_t new_cap;

	if (len <= *cap)
		return 0;
	new_cap = *cap ? *cap : 256;
	while (new_cap < len)
		new_cap *= 2;
	/* Not realloc: the old buffer may hold plaintext and is wiped first. */
	grown = malloc(new_cap);
	if (grown == NULL)
		return -ENOMEM;
	if (*buf != NULL) {
		secret_wipe(*buf, *cap);
		free(*buf);
	}
	*buf = grown;
	*cap = new_cap;
	return 0;
}

/* Seal plain (plain_len bytes) under the newest key and store it under table/key. */
static int value_put(struct meta_txn *txn, enum store_table table, const uint8_t *key,
		     size_t key_len, const uint8_t *plain, size_t plain_len, unsigned flags)
{
	struct meta *meta = txn->meta;
	uint32_t version = keysource_newest_version(meta->keys);
	size_t sealed_len = VALUE_VERSION_LEN + plain_len + meta->seal_overhead;
	uint8_t ad[AD_MAX];
	const uint8_t *meta_key;
	size_t ad_len;
	int ret;

	ret = meta_key_get(meta, version, &meta_key);
	if (ret < 0)
		return ret;
	ret = buf_reserve(&txn->sealed, &txn->sealed_cap, sealed_len);
	if (ret < 0)
		return ret;
	ad_len = ad_build(ad, meta, table, version, key, key_len);
	put_le32(txn->sealed, version);
	ret = crypto_seal(txn->sealed + VALUE_VERSION_LEN, sealed_len - VALUE_VERSION_LEN, plain,
			  plain_len, ad, ad_len, meta->cipher, meta_key);
	if (ret < 0)
		return ret;
	return store_put(txn->store_txn, table, (struct store_slice){ key, key_len },
			 (struct store_slice){ txn->sealed, sealed_len }, flags);
}

/* Authenticate and decrypt a stored value into out (out_cap bytes at least). */
static int value_open(struct meta *meta, enum store_table table, const uint8_t *key,
		      size_t key_len, struct store_slice value, uint8_t *out, size_t out_cap,
		      size_t *out_len)
{
	const uint8_t *in = value.data;
	uint8_t ad[AD_MAX];
	const uint8_t *meta_key;
	uint32_t version;
	size_t ad_len, plain_len;
	int ret;

	if (value.len < VALUE_VERSION_LEN + meta->seal_overhead)
		return -EBADMSG;
	plain_len = value.len - VALUE_VERSION_LEN - meta->seal_overhead;
	if (plain_len > out_cap)
		return -EBADMSG;
	version = get_le32(in);
	/* Versions only grow and new values use the newest, so a version outside 1..newest
	 * was never written by us: tampering, not a missing key. */
	if (version == 0 || version > keysource_newest_version(meta->keys))
		return -EBADMSG;
	ret = meta_key_get(meta, version, &meta_key);
	if (ret < 0)
		return ret;
	ad_len = ad_build(ad, meta, table, version, key, key_len);
	ret = crypto_unseal(out, plain_len, in + VALUE_VERSION_LEN, value.len - VALUE_VERSION_LEN,
			    ad, ad_len, meta->cipher, meta_key);
	if (ret < 0)
		return ret == -EINVAL ? -EBADMSG : ret;
	*out_len = plain_len;
	return 0;
}

/* Get and open table/key into the transaction's plaintext buffer. */
static int value_get(struct meta_txn *txn, enum store_table table, const uint8_t *key,
		     size_t key_len, size_t *plain_len)
{
	struct store_slice value;
	int ret;

	ret = store_get(txn->store_txn, table, (struct store_slice){ key, key_len }, &value);
	if (ret < 0)
		return ret;
	ret = buf_reserve(&txn->plain, &txn->plain_cap, value.len);
	if (ret < 0)
		return ret;
	return value_open(txn->meta, table, key, key_len, value, txn->plain, txn->plain_cap,
			  plain_len);
}

/* Keys. */

static void ino_key(uint8_t key[INO_KEY_LEN], uint64_t ino)
{
	put_be64(key, ino);
}

static int dir_hash(const struct meta *meta, uint64_t dir, uint8_t out[HASH_LEN])
{
	uint8_t input[8];

	put_le64(input, dir);
	return crypto_prf(out, HASH_LEN, CRYPTO_CTX_DIR_HASH, input, sizeof(input),
			  meta->index_key);
}

static int dirent_key(const struct meta *meta, uint64_t dir, const char *name,
		      size_t name_len, uint8_t key[DIRENT_KEY_LEN])
{
	uint8_t input[8 + META_NAME_MAX];
	int ret;

	ret = dir_hash(meta, dir, key);
	if (ret < 0)
		return ret;
	put_le64(input, dir);
	memcpy(input + 8, name, name_len);
	return crypto_prf(key + HASH_LEN, HASH_LEN, CRYPTO_CTX_NAME_HASH, input, 8 + name_len,
			  meta->index_key);
}

/*
 * Xattr names hash under CRYPTO_CTX_NAME_HASH too, with a 0x00 byte after the inode
 * number: an entry name never contains NUL, so no xattr input equals an entry input.
 */
static int xattr_key(const struct meta *meta, uint64_t ino, const char *name,
		     size_t name_len, uint8_t key[XATTR_KEY_LEN])
{
	uint8_t input[9 + META_XATTR_NAME_MAX];

	ino_key(key, ino);
	put_le64(input, ino);
	input[8] = 0;
	memcpy(input + 9, name, name_len);
	return crypto_prf(key + INO_KEY_LEN, HASH_LEN, CRYPTO_CTX_NAME_HASH, input, 9 + name_len,
			  meta->index_key);
}

static uint64_t cookie_of(const uint8_t name_hash[HASH_LEN])
{
	return META_COOKIE_DOTDOT + 1 + (get_be64(name_hash) >> 2);
}

/* Open and close. */

static int meta_new(struct meta **out, struct store *store, enum crypto_cipher cipher,
		    const uint8_t vault_id[VAULT_ID_LEN], struct keysource *keys)
{
	struct meta *meta;

	*out = NULL;
	if (crypto_cipher_name(cipher) == NULL)
		return -EINVAL;
	meta = calloc(1, sizeof(*meta));
	if (meta == NULL)
		return -ENOMEM;
	meta->index_key = secret_alloc(CRYPTO_KEY_LEN);
	if (meta->index_key == NULL) {
		free(meta);
		return -ENOMEM;
	}
	meta->store = store;
	meta->keys = keys;
	meta->cipher = cipher;
	meta->seal_overhead = crypto_seal_overhead(cipher);
	memcpy(meta->vault_id, vault_id, VAULT_ID_LEN);
	pthread_mutex_init(&meta->cache_lock, NULL);
	*out = meta;
	return 0;
}

void meta_close(struct meta *meta)
{
	if (meta == NULL)
		return;
	for (size_t i = 0; i < meta->cache_len; i++)
		secret_free(meta->cache[i].key);
	free(meta->cache);
	secret_free(meta->index_key);
	pthread_mutex_destroy(&meta->cache_lock);
	free(meta);
}

int meta_open(struct meta **out, struct store *store, enum crypto_cipher cipher,
	      const uint8_t vault_id[VAULT_ID_LEN], struct keysource *keys)
{
	struct meta *meta;
	struct store_txn *txn;
	struct store_slice value;
	uint8_t *record;
	size_t len;
	int ret;

	*out = NULL;
	ret = meta_new(&meta, store, cipher, vault_id, keys);
	if (ret < 0)
		return ret;
	record = secret_alloc(INDEX_KEY_RECORD_LEN);
	if (record == NULL) {
		ret = -ENOMEM;
		goto out_close;
	}
	ret = store_txn_begin(store, false, &txn);
	if (ret < 0)
		goto out_free_record;
	ret = store_get(txn, STORE_META,
			(struct store_slice){ index_key_name, sizeof(index_key_name) - 1 }, &value);
	/* A formatted store always has its index key: a missing one was removed. */
	if (ret == -ENOENT)
		ret = -EBADMSG;
	if (ret < 0)
		goto out_abort;
	ret = value_open(meta, STORE_META, (const uint8_t *)index_key_name,
			 sizeof(index_key_name) - 1, value, record, INDEX_KEY_RECORD_LEN, &len);
	if (ret < 0)
		goto out_abort;
	if (len != INDEX_KEY_RECORD_LEN || record[0] != RECORD_VERSION) {
		ret = -EBADMSG;
		goto out_abort;
	}
	memcpy(meta->index_key, record + 1, CRYPTO_KEY_LEN);
	*out = meta;
	meta = NULL;
out_abort:
	store_txn_abort(txn);
out_free_record:
	secret_free(record);
out_close:
	meta_close(meta);
	return ret;
}

static void time_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

int meta_format(struct store *store, enum crypto_cipher cipher,
		const uint8_t vault_id[VAULT_ID_LEN], struct keysource *keys,
		uint32_t root_uid, uint32_t root_gid)
{
	struct meta *meta;
	struct meta_txn *txn;
	struct meta_inode root = { 0 };
	uint8_t *record;
	uint8_t counter[COUNTER_RECORD_LEN];
	int ret;

	ret = meta_new(&meta, store, cipher, vault_id, keys);
	if (ret < 0)
		return ret;
	record = secret_alloc(INDEX_KEY_RECORD_LEN);
	if (record == NULL) {
		ret = -ENOMEM;
		goto out_close;
	}
	crypto_random(meta->index_key, CRYPTO_KEY_LEN);
	record[0] = RECORD_VERSION;
	memcpy(record + 1, meta->index_key, CRYPTO_KEY_LEN);

	ret = meta_txn_begin(meta, true, &txn);
	if (ret < 0)
		goto out_free_record;
	ret = value_put(txn, STORE_META, (const uint8_t *)index_key_name,
			sizeof(index_key_name) - 1, record, INDEX_KEY_RECORD_LEN,
			STORE_NO_OVERWRITE);
	if (ret < 0)
		goto out_abort;
	counter[0] = RECORD_VERSION;
	put_le64(counter + 1, META_ROOT_INO + 1);
	ret = value_put(txn, STORE_META, (const uint8_t *)counter_name, sizeof(counter_name) - 1,
			counter, sizeof(counter), STORE_NO_OVERWRITE);
	if (ret < 0)
		goto out_abort;

	root.ino = META_ROOT_INO;
	root.mode = S_IFDIR | 0755;
	root.uid = root_uid;
	root.gid = root_gid;
	root.nlink = 2;
	root.parent = META_ROOT_INO;
	time_now(&root.btime);
	root.atime = root.mtime = root.ctime = root.btime;
	ret = meta_inode_put(txn, &root);
	if (ret < 0)
		goto out_abort;
	ret = meta_txn_commit(txn);
	goto out_free_record;

out_abort:
	meta_txn_abort(txn);
out_free_record:
	secret_free(record);
out_close:
	meta_close(meta);
	return ret;
}

uint32_t meta_key_version(const struct meta *meta)
{
	return keysource_newest_version(meta->keys);
}

/* Transactions. */

int meta_txn_begin(struct meta *meta, bool write, struct meta_txn **out)
{
	struct meta_txn *txn;
	int ret;

	*out = NULL;
	txn = calloc(1, sizeof(*txn));
	if (txn == NULL)
		return -ENOMEM;
	txn->meta = meta;
	ret = store_txn_begin(meta->store, write, &txn->store_txn);
	if (ret < 0) {
		free(txn);
		return ret;
	}
	*out = txn;
	return 0;
}

static void txn_free(struct meta_txn *txn)
{
	if (txn->plain != NULL) {
		secret_wipe(txn->plain, txn->plain_cap);
		free(txn->plain);
	}
	free(txn->sealed);
	free(txn);
}

int meta_txn_commit(struct meta_txn *txn)
{
	int ret = store_txn_commit(txn->store_txn);

	txn_free(txn);
	return ret;
}

void meta_txn_abort(struct meta_txn *txn)
{
	if (txn == NULL)
		return;
	store_txn_abort(txn->store_txn);
	txn_free(txn);
}

/* Inodes. */

int meta_inode_get(struct meta_txn *txn, uint64_t ino, struct meta_inode *out)
{
	uint8_t key[INO_KEY_LEN];
	size_t len;
	int ret;

	memset(out, 0, sizeof(*out));
	if (ino == 0)
		return -EINVAL;
	ino_key(key, ino);
	ret = value_get(txn, STORE_INODES, key, sizeof(key), &len);
	if (ret < 0)
		return ret;
	ret = meta_inode_decode(out, txn->plain, len);
	if (ret == 0 && out->ino != ino) {
		meta_inode_release(out);
		ret = -EBADMSG;
	}
	return ret;
}

int meta_inode_put(struct meta_txn *txn, const struct meta_inode *inode)
{
	uint8_t key[INO_KEY_LEN];
	size_t len;
	int ret;

	if (!inode_valid(inode))
		return -EINVAL;
	len = inode_encoded_len(inode);
	ret = buf_reserve(&txn->plain, &txn->plain_cap, len);
	if (ret < 0)
		return ret;
	inode_encode_into(txn->plain, inode);
	ino_key(key, inode->ino);
	return value_put(txn, STORE_INODES, key, sizeof(key), txn->plain, len, 0);
}

int meta_inode_del(struct meta_txn *txn, uint64_t ino)
{
	uint8_t key[INO_KEY_LEN];

	if (ino == 0)
		return -EINVAL;
	ino_key(key, ino);
	return store_del(txn->store_txn, STORE_INODES, (struct store_slice){ key, sizeof(key) });
}

int meta_ino_alloc(struct meta_txn *txn, uint64_t *out)
{
	uint8_t record[COUNTER_RECORD_LEN];
	uint8_t key[INO_KEY_LEN];
	struct store_slice value;
	uint64_t next;
	size_t len;
	int ret;

	ret = value_get(txn, STORE_META, (const uint8_t *)counter_name, sizeof(counter_name) - 1,
			&len);
	if (ret == -ENOENT)
		ret = -EBADMSG;
	if (ret < 0)
		return ret;
	if (len != COUNTER_RECORD_LEN || txn->plain[0] != RECORD_VERSION)
		return -EBADMSG;
	next = get_le64(txn->plain + 1);
	if (next <= META_ROOT_INO)
		return -EBADMSG;
	/* Never hand out a number in use, even if the counter was set back. */
	for (;;) {
		if (next == UINT64_MAX)
			return -ENOSPC;
		ino_key(key, next);
		ret = store_get(txn->store_txn, STORE_INODES,
				(struct store_slice){ key, sizeof(key) }, &value);
		if (ret == -ENOENT)
			break;
		if (ret < 0)
			return ret;
		next++;
	}
	record[0] = RECORD_VERSION;
	put_le64(record + 1, next + 1);
	ret = value_put(txn, STORE_META, (const uint8_t *)counter_name, sizeof(counter_name) - 1,
			record, sizeof(record), 0);
	if (ret < 0)
		return ret;
	*out = next;
	return 0;
}

int meta_inode_count(struct meta_txn *txn, size_t *count)
{
	return store_count(txn->store_txn, STORE_INODES, count);
}

int meta_inode_next(struct meta_txn *txn, uint64_t after, struct meta_inode *out)
{
	struct store_slice key, value;
	struct store_cursor *cursor;
	uint8_t start[INO_KEY_LEN];
	size_t len;
	int ret;

	memset(out, 0, sizeof(*out));
	if (after == UINT64_MAX)
		return -ENOENT;
	ino_key(start, after + 1);
	ret = store_cursor_open(txn->store_txn, STORE_INODES, &cursor);
	if (ret < 0)
		return ret;
	ret = store_cursor_seek(cursor, (struct store_slice){ start, sizeof(start) }, &key, &value);
	if (ret == 0 && key.len != INO_KEY_LEN)
		ret = -EBADMSG;
	if (ret == 0)
		ret = buf_reserve(&txn->plain, &txn->plain_cap, value.len);
	if (ret == 0)
		ret = value_open(txn->meta, STORE_INODES, key.data, key.len, value, txn->plain,
				 txn->plain_cap, &len);
	if (ret == 0)
		ret = meta_inode_decode(out, txn->plain, len);
	if (ret == 0 && out->ino != get_be64(key.data)) {
		meta_inode_release(out);
		ret = -EBADMSG;
	}
	store_cursor_close(cursor);
	return ret;
}

/* The tables whose values are sealed (orphans hold empty values). */
static const enum store_table sealed_tables[] = {
	STORE_META, STORE_INODES, STORE_DIRENTS, STORE_XATTRS,
};
#define SEALED_TABLE_COUNT (sizeof(sealed_tables) / sizeof(sealed_tables[0]))

static bool sealed_older(struct store_slice value, uint32_t below)
{
	return value.len < VALUE_VERSION_LEN || get_le32(value.data) < below;
}

int meta_count_older(struct meta_txn *txn, uint32_t below, uint64_t *count)
{
	int ret = 0;

	*count = 0;
	for (size_t t = 0; t < SEALED_TABLE_COUNT && ret == 0; t++) {
		struct store_slice key, value;
		struct store_cursor *cursor;

		ret = store_cursor_open(txn->store_txn, sealed_tables[t], &cursor);
		if (ret < 0)
			break;
		ret = store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &key, &value);
		for (; ret == 0; ret = store_cursor_next(cursor, &key, &value))
			*count += sealed_older(value, below);
		if (ret == -ENOENT)
			ret = 0;
		store_cursor_close(cursor);
	}
	return ret;
}

/* Re-seal the value under table/key (sealed under an older version) under the newest. */
static int reseal_one(struct meta_txn *txn, enum store_table table, const uint8_t *key,
		      size_t key_len)
{
	size_t len;
	int ret = value_get(txn, table, key, key_len, &len);

	/* value_put seals from txn->sealed, value_get opened into txn->plain. */
	if (ret == 0)
		ret = value_put(txn, table, key, key_len, txn->plain, len, 0);
	return ret;
}

int meta_reseal_older(struct meta_txn *txn, uint32_t below, size_t max, size_t *count)
{
	/* Keys are collected first, then re-sealed: no writes under an open cursor. */
	uint8_t (*keys)[STORE_KEY_MAX] = NULL;
	size_t *key_lens = NULL;
	int ret = 0;

	*count = 0;
	if (max == 0)
		return 0;
	keys = malloc(max * sizeof(*keys));
	key_lens = malloc(max * sizeof(*key_lens));
	if (keys == NULL || key_lens == NULL) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t t = 0; t < SEALED_TABLE_COUNT && ret == 0 && *count < max; t++) {
		struct store_slice key, value;
		struct store_cursor *cursor;
		size_t found = 0;

		ret = store_cursor_open(txn->store_txn, sealed_tables[t], &cursor);
		if (ret < 0)
			break;
		ret = store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &key, &value);
		for (; ret == 0 && *count + found < max;
		     ret = store_cursor_next(cursor, &key, &value)) {
			if (!sealed_older(value, below))
				continue;
			if (key.len > STORE_KEY_MAX) {
				ret = -EBADMSG;
				break;
			}
			memcpy(keys[found], key.data, key.len);
			key_lens[found++] = key.len;
		}
		if (ret == -ENOENT)
			ret = 0;
		store_cursor_close(cursor);
		for (size_t i = 0; i < found && ret == 0; i++) {
			ret = reseal_one(txn, sealed_tables[t], keys[i], key_lens[i]);
			if (ret == 0)
				(*count)++;
		}
	}
out_free:
	free(keys);
	free(key_lens);
	return ret;
}

/* Directory entries. */

int meta_dirent_get(struct meta_txn *txn, uint64_t dir, const char *name, size_t name_len,
		    struct meta_dirent *out)
{
	uint8_t key[DIRENT_KEY_LEN];
	size_t len;
	int ret;

	ret = name_check(name, name_len);
	if (ret < 0)
		return ret;
	ret = dirent_key(txn->meta, dir, name, name_len, key);
	if (ret < 0)
		return ret;
	ret = value_get(txn, STORE_DIRENTS, key, sizeof(key), &len);
	if (ret < 0)
		return ret;
	ret = dirent_decode(out, txn->plain, len);
	if (ret < 0)
		return ret;
	if (out->name_len != name_len || memcmp(out->name, name, name_len) != 0)
		return -EBADMSG;
	out->cookie = cookie_of(key + HASH_LEN);
	return 0;
}

static int dirent_store(struct meta_txn *txn, uint64_t dir, const struct meta_dirent *entry,
			unsigned flags)
{
	uint8_t key[DIRENT_KEY_LEN];
	size_t len;
	int ret;

	ret = name_check(entry->name, entry->name_len);
	if (ret < 0)
		return ret;
	if (entry->ino == 0 || !dirent_type_valid(entry->type))
		return -EINVAL;
	ret = dirent_key(txn->meta, dir, entry->name, entry->name_len, key);
	if (ret < 0)
		return ret;
	ret = buf_reserve(&txn->plain, &txn->plain_cap, DIRENT_FIXED_LEN + META_NAME_MAX);
	if (ret < 0)
		return ret;
	len = dirent_encode_into(txn->plain, entry);
	return value_put(txn, STORE_DIRENTS, key, sizeof(key), txn->plain, len, flags);
}

int meta_dirent_add(struct meta_txn *txn, uint64_t dir, const struct meta_dirent *entry)
{
	return dirent_store(txn, dir, entry, STORE_NO_OVERWRITE);
}

int meta_dirent_put(struct meta_txn *txn, uint64_t dir, const struct meta_dirent *entry)
{
	return dirent_store(txn, dir, entry, 0);
}

int meta_dirent_del(struct meta_txn *txn, uint64_t dir, const char *name, size_t name_len)
{
	uint8_t key[DIRENT_KEY_LEN];
	int ret;

	ret = name_check(name, name_len);
	if (ret < 0)
		return ret;
	ret = dirent_key(txn->meta, dir, name, name_len, key);
	if (ret < 0)
		return ret;
	return store_del(txn->store_txn, STORE_DIRENTS, (struct store_slice){ key, sizeof(key) });
}

int meta_dir_iterate(struct meta_txn *txn, uint64_t dir, uint64_t after,
		     int (*fn)(void *arg, const struct meta_dirent *entry), void *arg)
{
	uint8_t seek[HASH_LEN + 8];
	size_t seek_len = HASH_LEN;
	struct store_cursor *cursor;
	struct store_slice key, value;
	struct meta_dirent entry;
	size_t len;
	int ret;

	ret = dir_hash(txn->meta, dir, seek);
	if (ret < 0)
		return ret;
	if (after > META_COOKIE_DOTDOT) {
		/* cookie > after  <=>  (hash >> 2) >= after - 2  <=>  hash >= (after - 2) << 2 */
		uint64_t min_shifted = after - META_COOKIE_DOTDOT;
		if (min_shifted > (UINT64_MAX >> 2))
			return 0;
		put_be64(seek + HASH_LEN, min_shifted << 2);
		seek_len += 8;
	}
	ret = store_cursor_open(txn->store_txn, STORE_DIRENTS, &cursor);
	if (ret < 0)
		return ret;
	ret = store_cursor_seek(cursor, (struct store_slice){ seek, seek_len }, &key, &value);
	while (ret == 0) {
		if (key.len != DIRENT_KEY_LEN || memcmp(key.data, seek, HASH_LEN) != 0)
			break;
		ret = buf_reserve(&txn->plain, &txn->plain_cap, value.len);
		if (ret < 0)
			goto out_close;
		ret = value_open(txn->meta, STORE_DIRENTS, key.data, key.len, value, txn->plain,
				 txn->plain_cap, &len);
		if (ret < 0)
			goto out_close;
		ret = dirent_decode(&entry, txn->plain, len);
		if (ret < 0)
			goto out_close;
		entry.cookie = cookie_of((const uint8_t *)key.data + HASH_LEN);
		ret = fn(arg, &entry);
		if (ret != 0)
			goto out_close;
		ret = store_cursor_next(cursor, &key, &value);
	}
	if (ret == -ENOENT)
		ret = 0;
out_close:
	store_cursor_close(cursor);
	return ret;
}

int meta_dir_is_empty(struct meta_txn *txn, uint64_t dir)
{
	uint8_t prefix[HASH_LEN];
	struct store_cursor *cursor;
	struct store_slice key, value;
	int ret;

	ret = dir_hash(txn->meta, dir, prefix);
	if (ret < 0)
		return ret;
	ret = store_cursor_open(txn->store_txn, STORE_DIRENTS, &cursor);
	if (ret < 0)
		return ret;
	ret = store_cursor_seek(cursor, (struct store_slice){ prefix, sizeof(prefix) }, &key,
				&value);
	if (ret == -ENOENT)
		ret = 1;
	else if (ret == 0)
		ret = key.len >= HASH_LEN && memcmp(key.data, prefix, HASH_LEN) == 0 ? 0 : 1;
	store_cursor_close(cursor);
	return ret;
}

/* Extended attributes. */

int meta_xattr_get(struct meta_txn *txn, uint64_t ino, const char *name, uint8_t **value,
		   size_t *value_len)
{
	uint8_t key[XATTR_KEY_LEN];
	const uint8_t *stored_name, *stored_value;
	size_t name_len, stored_name_len, len;
	int ret;

	*value = NULL;
	*value_len = 0;
	ret = xattr_name_check(name, &name_len);
	if (ret < 0)
		return ret;
	ret = xattr_key(txn->meta, ino, name, name_len, key);
	if (ret < 0)
		return ret;
	ret = value_get(txn, STORE_XATTRS, key, sizeof(key), &len);
	if (ret == -ENOENT)
		return -ENODATA;
	if (ret < 0)
		return ret;
	ret = xattr_decode(txn->plain, len, &stored_name, &stored_name_len, &stored_value, &len);
	if (ret < 0)
		return ret;
	if (stored_name_len != name_len || memcmp(stored_name, name, name_len) != 0)
		return -EBADMSG;
	*value = malloc(len > 0 ? len : 1);
	if (*value == NULL)
		return -ENOMEM;
	memcpy(*value, stored_value, len);
	*value_len = len;
	return 0;
}

int meta_xattr_set(struct meta_txn *txn, uint64_t ino, const char *name, const uint8_t *value,
		   size_t value_len, int flags)
{
	uint8_t key[XATTR_KEY_LEN];
	struct store_slice existing;
	size_t name_len, len;
	uint8_t *p;
	int ret;

	ret = xattr_name_check(name, &name_len);
	if (ret < 0)
		return ret;
	if (value_len > META_XATTR_VALUE_MAX)
		return -E2BIG;
	if (value == NULL && value_len > 0)
		return -EINVAL;
	if ((flags & XATTR_CREATE) && (flags & XATTR_REPLACE))
		return -EINVAL;
	ret = xattr_key(txn->meta, ino, name, name_len, key);
	if (ret < 0)
		return ret;
	ret = store_get(txn->store_txn, STORE_XATTRS, (struct store_slice){ key, sizeof(key) },
			&existing);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	if ((flags & XATTR_CREATE) && ret == 0)
		return -EEXIST;
	if ((flags & XATTR_REPLACE) && ret == -ENOENT)
		return -ENODATA;

	len = XATTR_FIXED_LEN + name_len + value_len;
	ret = buf_reserve(&txn->plain, &txn->plain_cap, len);
	if (ret < 0)
		return ret;
	p = txn->plain;
	p[0] = RECORD_VERSION;
	p[1] = (uint8_t)name_len;
	put_le32(p + 2, (uint32_t)value_len);
	memcpy(p + XATTR_FIXED_LEN, name, name_len);
	if (value_len > 0)
		memcpy(p + XATTR_FIXED_LEN + name_len, value, value_len);
	return value_put(txn, STORE_XATTRS, key, sizeof(key), p, len, 0);
}

int meta_xattr_del(struct meta_txn *txn, uint64_t ino, const char *name)
{
	uint8_t key[XATTR_KEY_LEN];
	size_t name_len;
	int ret;

	ret = xattr_name_check(name, &name_len);
	if (ret < 0)
		return ret;
	ret = xattr_key(txn->meta, ino, name, name_len, key);
	if (ret < 0)
		return ret;
	ret = store_del(txn->store_txn, STORE_XATTRS, (struct store_slice){ key, sizeof(key) });
	return ret == -ENOENT ? -ENODATA : ret;
}

int meta_xattr_list(struct meta_txn *txn, uint64_t ino, char *buf, size_t size,
		    size_t *needed)
{
	uint8_t prefix[INO_KEY_LEN];
	struct store_cursor *cursor;
	struct store_slice key, value;
	const uint8_t *name, *xattr_value;
	size_t name_len, value_len, len, total = 0;
	int ret;

	*needed = 0;
	ino_key(prefix, ino);
	ret = store_cursor_open(txn->store_txn, STORE_XATTRS, &cursor);
	if (ret < 0)
		return ret;
	ret = store_cursor_seek(cursor, (struct store_slice){ prefix, sizeof(prefix) }, &key,
				&value);
	while (ret == 0) {
		if (key.len != XATTR_KEY_LEN || memcmp(key.data, prefix, INO_KEY_LEN) != 0)
			break;
		ret = buf_reserve(&txn->plain, &txn->plain_cap, value.len);
		if (ret < 0)
			goto out_close;
		ret = value_open(txn->meta, STORE_XATTRS, key.data, key.len, value, txn->plain,
				 txn->plain_cap, &len);
		if (ret < 0)
			goto out_close;
		ret = xattr_decode(txn->plain, len, &name, &name_len, &xattr_value, &value_len);
		if (ret < 0)
			goto out_close;
		if (size > 0 && total + name_len + 1 <= size) {
			memcpy(buf + total, name, name_len);
			buf[total + name_len] = '\0';
		}
		total += name_len + 1;
		ret = store_cursor_next(cursor, &key, &value);
	}
	if (ret == -ENOENT)
		ret = 0;
	if (ret == 0) {
		*needed = total;
		if (size > 0 && total > size)
			ret = -ERANGE;
	}
out_close:
	store_cursor_close(cursor);
	return ret;
}

int meta_xattr_del_all(struct meta_txn *txn, uint64_t ino)
{
	uint8_t prefix[INO_KEY_LEN];
	struct store_cursor *cursor;
	struct store_slice key, value;
	int ret;

	ino_key(prefix, ino);
	ret = store_cursor_open(txn->store_txn, STORE_XATTRS, &cursor);
	if (ret < 0)
		return ret;
	ret = store_cursor_seek(cursor, (struct store_slice){ prefix, sizeof(prefix) }, &key,
				&value);
	while (ret == 0) {
		if (key.len < INO_KEY_LEN || memcmp(key.data, prefix, INO_KEY_LEN) != 0)
			break;
		ret = store_cursor_del(cursor);
		if (ret < 0)
			goto out_close;
		ret = store_cursor_next(cursor, &key, &value);
	}
	if (ret == -ENOENT)
		ret = 0;
out_close:
	store_cursor_close(cursor);
	return ret;
}

/* Orphans: sealed like every value, so a planted entry cannot get a live inode reclaimed. */

int meta_orphan_add(struct meta_txn *txn, uint64_t ino)
{
	uint8_t key[INO_KEY_LEN];
	const uint8_t record[ORPHAN_RECORD_LEN] = { RECORD_VERSION };

	if (ino == 0)
		return -EINVAL;
	ino_key(key, ino);
	return value_put(txn, STORE_ORPHANS, key, sizeof(key), record, sizeof(record), 0);
}

int meta_orphan_del(struct meta_txn *txn, uint64_t ino)
{
	uint8_t key[INO_KEY_LEN];

	if (ino == 0)
		return -EINVAL;
	ino_key(key, ino);
	return store_del(txn->store_txn, STORE_ORPHANS, (struct store_slice){ key, sizeof(key) });
}

int meta_orphan_iterate(struct meta_txn *txn, int (*fn)(void *arg, uint64_t ino), void *arg)
{
	struct store_cursor *cursor;
	struct store_slice key, value;
	uint64_t *inos = NULL;
	size_t count = 0, cap = 0, len;
	uint8_t record[ORPHAN_RECORD_LEN];
	int ret;

	/* Collect first: fn typically deletes the orphan and its inode, which would move
	 * the ground under a cursor. */
	ret = store_cursor_open(txn->store_txn, STORE_ORPHANS, &cursor);
	if (ret < 0)
		return ret;
	ret = store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &key, &value);
	while (ret == 0) {
		if (key.len != INO_KEY_LEN) {
			ret = -EBADMSG;
			break;
		}
		ret = value_open(txn->meta, STORE_ORPHANS, key.data, key.len, value, record,
				 sizeof(record), &len);
		if (ret < 0)
			break;
		if (len != ORPHAN_RECORD_LEN || record[0] != RECORD_VERSION) {
			ret = -EBADMSG;
			break;
		}
		if (count == cap) {
			size_t new_cap = cap ? 2 * cap : 16;
			uint64_t *grown = realloc(inos, new_cap * sizeof(*inos));
			if (grown == NULL) {
				ret = -ENOMEM;
				break;
			}
			inos = grown;
			cap = new_cap;
		}
		inos[count++] = get_be64(key.data);
		ret = store_cursor_next(cursor, &key, &value);
	}
	store_cursor_close(cursor);
	if (ret == -ENOENT)
		ret = 0;
	for (size_t i = 0; ret == 0 && i < count; i++)
		ret = fn(arg, inos[i]);
	free(inos);
	return ret;
}
