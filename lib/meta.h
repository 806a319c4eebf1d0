/*
 * The encrypted namespace: inode records, directory entries, extended attributes and
 * orphans, sealed with crypto_seal() and kept in the store. LMDB keys are inode numbers
 * or keyed hashes, never names; every value is sealed with associated data that binds it
 * to its table and key, so values cannot be swapped between keys.
 *
 * Value on disk: key version (u32 LE) || crypto_seal(meta key of that version, record).
 * Meta key of version v = PRF(DEK v, CRYPTO_CTX_META_KEY, vault id). New values use the
 * newest version; any version the key source has can be read.
 *
 * Names and hashes: index key = 32 random bytes made at vault creation, sealed in
 * STORE_META under "index-key". Directory entry key = PRF16(index key, DIR_HASH, dir ino)
 * || PRF16(index key, NAME_HASH, dir ino || name). Entries of one directory are
 * contiguous; their order is that of the name hash, which also gives stable readdir
 * cookies (meta_dirent.cookie) that survive concurrent inserts and removals.
 *
 * Threads: struct meta is shared; a struct meta_txn belongs to one thread.
 */
#ifndef VAULTFS_META_H
#define VAULTFS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/object.h"
#include "lib/store.h"

struct keysource;

#define META_ROOT_INO 1
#define META_NAME_MAX 255
#define META_SYMLINK_MAX 4095
#define META_XATTR_NAME_MAX 255
#define META_XATTR_VALUE_MAX 65536
/* At most this many hole extents per file; callers fill the smallest hole first. */
#define META_HOLES_MAX 1024
/* Readdir cookies of "." and ".."; entries' cookies are larger. */
#define META_COOKIE_DOT 1
#define META_COOKIE_DOTDOT 2

/* Blocks [start, end) of a regular file that were never written: they read as zeros. */
struct meta_extent {
	uint64_t start;
	uint64_t end;
};

struct meta_inode {
	uint64_t ino;
	uint32_t mode;      /* type and permission bits, as st_mode */
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;
	uint64_t size;      /* bytes; for symlinks the target length */
	uint64_t rdev;
	uint64_t parent;    /* directories: inode of "..", root: itself */
	struct timespec atime, mtime, ctime, btime;
	/* Regular files only. */
	uint8_t object_id[OBJECT_ID_LEN];
	uint32_t key_version;
	uint64_t budget_reserved;  /* see object_budget */
	uint64_t object_max_len;   /* the object file is never longer than this */
	uint32_t hole_count;
	struct meta_extent *holes; /* sorted, disjoint, non-adjacent; owned (malloc) */
	/* Symlinks only: target bytes, not NUL-terminated; owned (malloc). */
	char *symlink;
};

/* Free what a meta_inode owns and zero it. */
void meta_inode_release(struct meta_inode *inode);
/* Deep copy (holes, symlink). Returns 0 or -ENOMEM. */
int meta_inode_copy(struct meta_inode *dst, const struct meta_inode *src)
	__attribute__((warn_unused_result));

/* Record encoding, exposed for tests and fuzzing: encode allocates *out (malloc). */
int meta_inode_encode(uint8_t **out, size_t *out_len, const struct meta_inode *inode)
	__attribute__((warn_unused_result));
/* Returns 0, -EBADMSG for any malformed input (lengths, counts, ordering of holes,
 * unknown record version, trailing bytes). */
int meta_inode_decode(struct meta_inode *inode, const uint8_t *in, size_t in_len)
	__attribute__((warn_unused_result));

struct meta_dirent {
	uint64_t ino;
	uint32_t type;       /* DT_REG, DT_DIR, DT_LNK, ... */
	uint64_t cookie;     /* readdir offset of this entry; filled by get and iterate */
	size_t name_len;
	char name[META_NAME_MAX + 1];  /* NUL-terminated copy for convenience */
};

struct meta;
struct meta_txn;

/*
 * Open the namespace over an open store. keys stays owned by the caller and must
 * outlive the meta. Reads the index key with the newest DEK version. Returns 0,
 * -EBADMSG (a value fails to authenticate: tampering or wrong key), -ENOKEY.
 */
int meta_open(struct meta **out, struct store *store, enum crypto_cipher cipher,
	      const uint8_t vault_id[VAULT_ID_LEN], struct keysource *keys)
	__attribute__((warn_unused_result));
void meta_close(struct meta *meta);

/*
 * Create the vault-level records of an empty store: a fresh index key, the inode
 * counter and the root directory (mode 0755 | S_IFDIR, owner uid/gid, times now).
 * Call in a write transaction on a new vault, then meta_open.
 */
int meta_format(struct store *store, enum crypto_cipher cipher,
		const uint8_t vault_id[VAULT_ID_LEN], struct keysource *keys,
		uint32_t root_uid, uint32_t root_gid) __attribute__((warn_unused_result));

int meta_txn_begin(struct meta *meta, bool write, struct meta_txn **out)
	__attribute__((warn_unused_result));
int meta_txn_commit(struct meta_txn *txn) __attribute__((warn_unused_result));
void meta_txn_abort(struct meta_txn *txn);

/* Inodes. get: 0, -ENOENT, -EBADMSG. put overwrites. */
int meta_inode_get(struct meta_txn *txn, uint64_t ino, struct meta_inode *out)
	__attribute__((warn_unused_result));
int meta_inode_put(struct meta_txn *txn, const struct meta_inode *inode)
	__attribute__((warn_unused_result));
int meta_inode_del(struct meta_txn *txn, uint64_t ino);
/* A fresh inode number, never handed out before in this vault. */
int meta_ino_alloc(struct meta_txn *txn, uint64_t *out) __attribute__((warn_unused_result));

/* Directory entries. get: 0, -ENOENT, -EBADMSG; add: -EEXIST when the name exists;
 * put overwrites; del: -ENOENT. Names are 1..META_NAME_MAX bytes without '/' or NUL. */
int meta_dirent_get(struct meta_txn *txn, uint64_t dir, const char *name, size_t name_len,
		    struct meta_dirent *out) __attribute__((warn_unused_result));
int meta_dirent_add(struct meta_txn *txn, uint64_t dir, const struct meta_dirent *entry)
	__attribute__((warn_unused_result));
int meta_dirent_put(struct meta_txn *txn, uint64_t dir, const struct meta_dirent *entry)
	__attribute__((warn_unused_result));
int meta_dirent_del(struct meta_txn *txn, uint64_t dir, const char *name, size_t name_len);

/*
 * Call fn for each entry of dir whose cookie is greater than after, in cookie order,
 * until fn returns non-zero (that value is returned) or the entries end (0 returned).
 * Pass after = META_COOKIE_DOTDOT to start at the first entry.
 */
int meta_dir_iterate(struct meta_txn *txn, uint64_t dir, uint64_t after,
		     int (*fn)(void *arg, const struct meta_dirent *entry), void *arg);
/* 1 when dir has no entries, 0 when it has, or -errno. */
int meta_dir_is_empty(struct meta_txn *txn, uint64_t dir);

/* Extended attributes of one inode. get: *value malloc'd, 0/-ENODATA; set flags are
 * XATTR_CREATE (-EEXIST) / XATTR_REPLACE (-ENODATA); list writes NUL-separated names into
 * buf (size 0: only *needed is set), -ERANGE when buf is too small. */
int meta_xattr_get(struct meta_txn *txn, uint64_t ino, const char *name,
		   uint8_t **value, size_t *value_len) __attribute__((warn_unused_result));
int meta_xattr_set(struct meta_txn *txn, uint64_t ino, const char *name,
		   const uint8_t *value, size_t value_len, int flags)
	__attribute__((warn_unused_result));
int meta_xattr_del(struct meta_txn *txn, uint64_t ino, const char *name);
int meta_xattr_list(struct meta_txn *txn, uint64_t ino, char *buf, size_t size,
		    size_t *needed) __attribute__((warn_unused_result));
int meta_xattr_del_all(struct meta_txn *txn, uint64_t ino);

/* Orphans: inodes with no name left that were still open. Reclaimed at the next mount. */
int meta_orphan_add(struct meta_txn *txn, uint64_t ino) __attribute__((warn_unused_result));
int meta_orphan_del(struct meta_txn *txn, uint64_t ino);
int meta_orphan_iterate(struct meta_txn *txn, int (*fn)(void *arg, uint64_t ino), void *arg);

/* Number of inode records (for info and fsck). */
int meta_inode_count(struct meta_txn *txn, size_t *count) __attribute__((warn_unused_result));

/* Rekeying (lib/rekey.h). The first inode record numbered above after: 0, -ENOENT
 * past the last one. */
int meta_inode_next(struct meta_txn *txn, uint64_t after, struct meta_inode *out)
	__attribute__((warn_unused_result));
/* Values sealed under versions older than below: count them, or re-seal at most max of
 * them under the newest version (write transaction; *count: how many were, fewer than
 * max when none are left). Each is authenticated before it is sealed again. */
int meta_count_older(struct meta_txn *txn, uint32_t below, uint64_t *count)
	__attribute__((warn_unused_result));
int meta_reseal_older(struct meta_txn *txn, uint32_t below, size_t max, size_t *count)
	__attribute__((warn_unused_result));

/* Revocation: wipe the cached metadata keys and the index key in place; every later
 * read or write of a record fails (-EKEYREVOKED). Irreversible for this struct meta. */
void meta_revoke_keys(struct meta *meta);

/* The newest key version, used for new values and new objects. */
uint32_t meta_key_version(const struct meta *meta);

#endif
