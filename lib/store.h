/*
 * The metadata store: a thin wrapper over one LMDB environment (<vault>/meta, or the key
 * agent's keystore) with a fixed set of tables per schema. It knows nothing of encryption: callers (meta.c) store only
 * keyed hashes or ids as keys and sealed bytes as values. Only this module includes
 * <lmdb.h>; LMDB errors become -errno (MDB_NOTFOUND -ENOENT, MDB_KEYEXIST -EEXIST,
 * MDB_MAP_FULL -ENOSPC, corruption -EIO).
 *
 * Durability: commits do not fsync (MDB_NOSYNC); a killed process loses nothing that
 * was committed, and store_sync() makes every commit so far durable against power loss.
 *
 * Size: on ext2/3/4 and tmpfs a writable store's file is allocated as far as its map
 * reaches, which starts at 16 MiB and grows by half as the store fills, up to the size
 * given at open; when the disk has no room a write that needs more is -ENOSPC.
 *
 * Threads: any number of read transactions at once from any threads; one write
 * transaction at a time (store_txn_begin for writing blocks until the previous commits).
 * A transaction is used by the thread that began it. A write transaction may wait a
 * moment for the process's other transactions to end, to grow the map.
 */
#ifndef VAULTFS_STORE_H
#define VAULTFS_STORE_H

#include <stdbool.h>
#include <stddef.h>

/* Table names are on-disk format: never rename. */
enum store_table {
	STORE_META,     /* vault-level records */
	STORE_INODES,   /* inode number -> sealed inode record */
	STORE_DIRENTS,  /* dir hash || name hash -> sealed directory entry */
	STORE_XATTRS,   /* inode number || name hash -> sealed extended attribute */
	STORE_ORPHANS,  /* inode number -> empty: unlinked while open, reclaim at mount */
	STORE_KS_META,      /* keystore: KEK parameters and check value */
	STORE_KS_DATASETS,  /* keystore: dataset name -> dataset record */
	STORE_KS_VERSIONS,  /* keystore: dataset id || version -> version record, wrapped DEK */
	STORE_TABLE_COUNT,
};

/*
 * Which tables an environment has. A vault's store has STORE_META..STORE_ORPHANS, the
 * key agent's keystore STORE_KS_*; naming a table of the other schema is -EINVAL.
 */
enum store_schema {
	STORE_SCHEMA_VAULT,
	STORE_SCHEMA_KEYSTORE,
};

struct store;
struct store_txn;
struct store_cursor;

/* A byte range; from store_get/cursor it points into the map and is valid until the
 * transaction ends or the next write in it. */
struct store_slice {
	const void *data;
	size_t len;
};

#define STORE_CREATE 0x1    /* create the environment directory and tables */
#define STORE_READ_ONLY 0x2

/*
 * Open the environment in directory dir with the vault schema (STORE_CREATE makes dir
 * if missing). Returns 0, -ENOENT (no store there and no STORE_CREATE), -EACCES, -ENOMEM,
 * -EIO (corrupt, tables of the schema missing, or data.mdb or lock.mdb not a regular
 * file), -ELOOP (data.mdb or lock.mdb is a symbolic link, or was one while LMDB opened
 * it), -EROFS. LMDB's locks are per process: open one environment at most once in a
 * process at a time.
 *
 * Nothing inside dir is followed as a symbolic link (dir itself is found as any path
 * is): LMDB is given the directory as /proc/self/fd/N, which must be mounted. LMDB opens
 * its two files by name: a link put in place of one and removed again between the
 * check before mdb_env_open and LMDB's own open is not seen (vaultfs(5), SYMBOLIC LINKS).
 */
int store_open(struct store **out, const char *dir, unsigned flags)
	__attribute__((warn_unused_result));
/* store_open of the directory open on dir_fd (borrowed: the store opens its own), for a
 * caller that found it without following a link. STORE_CREATE makes the environment's
 * files, not the directory. */
int store_open_dir(struct store **out, int dir_fd, unsigned flags)
	__attribute__((warn_unused_result));
/* store_open with the given schema. */
int store_open_schema(struct store **out, const char *dir, unsigned flags,
		      enum store_schema schema) __attribute__((warn_unused_result));
/* The largest store_open lets a store grow. */
#define STORE_MAP_SIZE ((size_t)64 << 30)
/* store_open with another largest size (a multiple of the page size), for tests that
 * need a store to fill up. A store whose file is already larger keeps its size. */
int store_open_map_size(struct store **out, const char *dir, unsigned flags, size_t map_size)
	__attribute__((warn_unused_result));
/* Close; no transaction may be open. NULL is ignored. */
void store_close(struct store *store);

/* Make every committed transaction durable (fsync). Returns 0 or -errno. */
int store_sync(struct store *store);

/*
 * Rewrite the environment compacted so that the bytes of deleted and overwritten values
 * (freed pages) are no longer in any file of the directory: a compacting copy of the
 * committed state into a temporary file beside data.mdb, fsync, rename over data.mdb,
 * fsync of the directory, then the environment is reopened in place. No transaction of
 * this store may be open (-EBUSY otherwise) and no other process may have the
 * environment open. Crash-safe: either the old or the compacted file is data.mdb.
 * Returns 0, -EBUSY, -EROFS (read-only store), -ENOSPC, -EIO or -errno from the
 * filesystem; if reopening fails the store refuses every further transaction with -EIO
 * and can only be closed. Not a secure erase of the device: the old file's blocks are
 * freed by the filesystem, not overwritten.
 */
int store_compact(struct store *store) __attribute__((warn_unused_result));

int store_txn_begin(struct store *store, bool write, struct store_txn **out)
	__attribute__((warn_unused_result));
/* Commit and free the transaction, whatever the result. Returns 0, -ENOSPC, -EIO. */
int store_txn_commit(struct store_txn *txn) __attribute__((warn_unused_result));
/* Abort and free; NULL is ignored. */
void store_txn_abort(struct store_txn *txn);

/* Returns 0 (val filled), -ENOENT. */
int store_get(struct store_txn *txn, enum store_table table, struct store_slice key,
	      struct store_slice *val) __attribute__((warn_unused_result));

#define STORE_NO_OVERWRITE 0x1
#define STORE_KEY_MAX 511
/* Returns 0, -EEXIST (with STORE_NO_OVERWRITE), -ENOSPC, -EINVAL (key too long:
 * keys are at most STORE_KEY_MAX bytes). */
int store_put(struct store_txn *txn, enum store_table table, struct store_slice key,
	      struct store_slice val, unsigned flags) __attribute__((warn_unused_result));
/* Returns 0, -ENOENT. */
int store_del(struct store_txn *txn, enum store_table table, struct store_slice key);

/* Cursors walk a table in key order (bytewise). Closed before their transaction ends. */
int store_cursor_open(struct store_txn *txn, enum store_table table, struct store_cursor **out)
	__attribute__((warn_unused_result));
void store_cursor_close(struct store_cursor *cursor);
/* Position at the first key >= key (key.len 0: the first entry). Returns 0, -ENOENT past
 * the end. */
int store_cursor_seek(struct store_cursor *cursor, struct store_slice key,
		      struct store_slice *key_out, struct store_slice *val_out);
/* Advance. Returns 0, -ENOENT past the end. */
int store_cursor_next(struct store_cursor *cursor, struct store_slice *key_out,
		      struct store_slice *val_out);
/* Delete the entry under the cursor; the next store_cursor_next() returns the one after. */
int store_cursor_del(struct store_cursor *cursor);

/* Number of entries in a table. */
int store_count(struct store_txn *txn, enum store_table table, size_t *count)
	__attribute__((warn_unused_result));

#endif
