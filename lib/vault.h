/*
 * A vault directory on disk and the open handle on it:
 *
 *   <vault>/vaultfs.header   VAULT_HEADER_LEN bytes (see vault_header_encode)
 *   <vault>/meta/            LMDB environment (store.h, meta.h)
 *   <vault>/objects/xx/<id>  ciphertext objects (object.h); xx = first byte of id in hex
 *   <vault>/objects/free/    emptied object files of removed files, kept for reuse
 *
 * A vault never holds a symbolic link, and none is ever followed inside one: the vault
 * directory (the last component of the path given; the directories leading to it may be
 * links), its entries, those of meta/ and objects/ and of every directory in objects/.
 * Where one is found the call fails with -ELOOP; vault_find_link names it.
 *
 * The header is readable without a key (format version, cipher, vault id, creation time)
 * and carries a key check (PRF of one DEK version, 1 until a rekey moves it to the newest)
 * so a wrong key is refused before any data is touched, and a MAC under the same key so a
 * tampered header is refused too.
 */
#ifndef VAULTFS_VAULT_H
#define VAULTFS_VAULT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/object.h"

struct keysource;
struct meta;
struct meta_inode;
struct store;

#define VAULT_FORMAT_VERSION 1
#define VAULT_HEADER_LEN 128
#define VAULT_HEADER_FILE "vaultfs.header"
#define VAULT_META_DIR "meta"
#define VAULT_OBJECTS_DIR "objects"
#define VAULT_CHECK_LEN 32

#define VAULT_FLAG_EPHEMERAL 0x1

struct vault_header {
	uint32_t format_version;
	uint32_t cipher;                 /* enum crypto_cipher */
	uint32_t flags;                  /* VAULT_FLAG_* */
	uint64_t created;                /* seconds since the epoch, UTC */
	uint8_t vault_id[VAULT_ID_LEN];
	uint32_t check_version;          /* DEK version of key_check and mac, >= 1 */
	uint8_t key_check[VAULT_CHECK_LEN];
	uint8_t mac[VAULT_CHECK_LEN];
};

/* Little-endian layout: magic "VAULTFS\0"(8), format_version, cipher, flags (u32),
 * created (u64), vault_id(16), check_version (u32; 0 stands for 1, so a vault that was
 * never rekeyed keeps the bytes it was made with), 16 reserved zero bytes, key_check(32)
 * at offset 64, mac(32) at offset 96 over all bytes before it. */
void vault_header_encode(uint8_t out[VAULT_HEADER_LEN], const struct vault_header *header);
/* Returns 0, -EBADMSG (not a vault header), -EPROTONOSUPPORT (format version). Does not
 * check key_check or mac: that needs the key (vault_open). */
int vault_header_decode(struct vault_header *header, const uint8_t in[VAULT_HEADER_LEN])
	__attribute__((warn_unused_result));

/* Read the header of the vault in dir. Returns 0, -ENOENT (no vault there: no header
 * file), -EBADMSG, -EPROTONOSUPPORT, -ELOOP (dir or its header file is a symbolic link),
 * -errno. */
int vault_header_read(const char *dir, struct vault_header *header)
	__attribute__((warn_unused_result));

/*
 * Create a vault in dir, which must be missing or empty (-ENOTEMPTY otherwise; -ELOOP
 * when dir is a symbolic link), keyed by version 1 of keys. The root directory is owned
 * by root_uid/root_gid.
 */
int vault_create(const char *dir, enum crypto_cipher cipher, uint32_t flags,
		 struct keysource *keys, uint32_t root_uid, uint32_t root_gid)
	__attribute__((warn_unused_result));

struct pool;

struct vault {
	int dir_fd;
	int objects_fd;
	struct vault_header header;
	struct store *store;
	struct meta *meta;
	struct keysource *keys;  /* borrowed */
	struct pool *pool;       /* removed object files, emptied for reuse (pool.h); NULL
				  * when read-only */
	int fanout_fd[256];      /* objects/xx, opened at first use (atomic; -1: not yet) */
};

#define VAULT_OPEN_READ_ONLY 0x1

/*
 * Open the vault in dir with keys (borrowed; must outlive the vault). Returns 0,
 * -ENOENT (not a vault), -EPROTONOSUPPORT, -EKEYREJECTED (wrong key: key check fails),
 * -EBADMSG (header MAC or metadata fails to authenticate), -ELOOP (the vault holds a
 * symbolic link, found before any key is used: vault_find_link names it), -errno.
 * Opening reads every directory of the vault once, to look for links (a readdir each,
 * no stat per file where the file system gives entry types).
 */
int vault_open(struct vault **out, const char *dir, struct keysource *keys, unsigned flags)
	__attribute__((warn_unused_result));
void vault_close(struct vault *vault);

/*
 * Look for a symbolic link in the vault in dir, where vault_open looks: returns -ELOOP
 * with its path relative to dir in where ("" when dir itself is the link; truncated to
 * len; where may be NULL when len is 0), 0 when there is none, -errno (-ENOENT: no dir).
 * Made for a caller's message after -ELOOP from another call: it finds nothing if the
 * link was removed meanwhile.
 */
int vault_find_link(const char *dir, char *where, size_t len) __attribute__((warn_unused_result));

/*
 * Make the header's key check and MAC with DEK version (a rekey moves them to the newest
 * version, so older ones can be retired). The new header replaces the old atomically
 * (written to a temporary file, synced, renamed, directory synced). Returns 0, -ENOKEY
 * (keys lacks version), -errno.
 */
int vault_rebind(struct vault *vault, uint32_t version) __attribute__((warn_unused_result));

/* Relative path "xx/<32 hex>" of an object inside objects/, into buf (36 bytes). */
void vault_object_path(char buf[36], const uint8_t object_id[OBJECT_ID_LEN]);

/* Open (flags as open(2); O_CREAT creates the xx/ directory as needed) or remove an
 * object. Return an fd / 0, or -errno (-ENOENT: no such object; -ELOOP: the object file
 * or its xx/ directory is a symbolic link, not followed). Removing moves the file
 * into objects/trash at once; the pool empties it (its ciphertext freed as unlink would)
 * and keeps it in objects/free for vault_object_create to reuse, because on ext4 without
 * a journal every new inode scans the inodes freed in the last minutes. A read-only vault
 * unlinks the file instead. vault_close() empties the trash before it returns. */
int vault_object_open(struct vault *vault, const uint8_t object_id[OBJECT_ID_LEN], int flags);
int vault_object_unlink(struct vault *vault, const uint8_t object_id[OBJECT_ID_LEN]);
/* Empty removed objects on a thread from now on (a long-running user calls this after
 * any fork: see pool_start); otherwise they wait for vault_object_settle or vault_close. */
void vault_object_start(struct vault *vault);
/* Wait until every object removed so far is emptied (on the caller's thread when none
 * was started). */
void vault_object_settle(struct vault *vault);

/* The header the object of a regular file's record has in this vault. */
void vault_object_header(const struct vault *vault, const struct meta_inode *rec,
			 struct object_header *header);
/* A new object file holding only its header, for rec, which gets a fresh object id and
 * the newest key version (an emptied file from objects/free when there is one). Returns
 * an fd open read-write on it, or -errno (and leaves no file behind). */
int vault_object_create(struct vault *vault, struct meta_inode *rec)
	__attribute__((warn_unused_result));

/*
 * Open (flags O_RDONLY or O_RDWR) the object a regular file's record names and check it
 * against the record: its header names the record's object id, key version, this vault
 * and cipher; its length covers every block the record says holds data and does not pass
 * object_max_len. Returns an fd; -EIO with *why saying what is wrong (missing, swapped or
 * damaged, extended, truncated object, a symbolic link in its place) for the caller to
 * log with the object id; -errno.
 */
int vault_object_attach(struct vault *vault, const struct meta_inode *rec, int flags,
			const char **why);

/* Call visit for every object file of an open vault with its id, the key version its
 * header names (0: unreadable) and its mtime, until visit returns non-zero (returned).
 * -ELOOP when a fan-out directory is a symbolic link (its objects are not skipped). */
typedef int vault_object_visit(void *arg, const uint8_t object_id[OBJECT_ID_LEN],
			       uint32_t key_version, time_t mtime);
int vault_objects_each(struct vault *vault, vault_object_visit *visit, void *arg)
	__attribute__((warn_unused_result));

/* Count object files under dir/objects without a key. Returns 0, -ELOOP (dir, objects/
 * or a fan-out directory is a symbolic link), -errno. */
int vault_object_count(const char *dir, uint64_t *count) __attribute__((warn_unused_result));

#define VAULT_OBJECT_PATH_LEN 36

/* Uses of one DEK version in a vault, counted without a key. */
struct vault_key_use {
	uint32_t version;    /* 0: objects and values whose version cannot be read */
	uint64_t objects;    /* object files whose plaintext header names the version */
	uint64_t records;    /* metadata values sealed under it (their u32 LE prefix) */
	bool header;         /* the header's key check is made with it */
};

/*
 * Count, without a key, the uses of every DEK version in the vault in dir: the
 * key_version of each object header and the version prefix of every sealed metadata
 * value. The store is opened read-only and may be in use by a mounted daemon: the
 * count is a snapshot (new writes use the newest version only, which retiring never
 * destroys). An object too short or malformed to name its version and a value too
 * short to carry one are counted under version 0: treat them as using every version.
 * *uses is malloc'd, sorted by version, one entry per version seen (NULL when none).
 * Returns 0, -ENOENT (no vault there), -ELOOP (the vault holds a symbolic link), -ENOMEM
 * or -errno.
 */
int vault_key_versions_in_use(const char *dir, struct vault_key_use **uses, size_t *count)
	__attribute__((warn_unused_result));

#endif
