/*
 * The pool of object files of a vault (vault.c is its only user). A removed object is moved
 * into objects/trash at once and emptied there by a thread of the pool, so that removing a
 * file does not wait for the file system to free (and discard) its blocks; the emptied file
 * then waits in objects/free until a new object takes it back instead of creating an inode.
 * The thread starts emptying once removals pause for 50 ms, or 2 s after the first of a
 * run of removals that does not pause (pool.c, POOL_QUIET_MS).
 */
#ifndef VAULTFS_POOL_H
#define VAULTFS_POOL_H

#include <stdint.h>

#include "lib/object.h"

#define POOL_FREE_DIR "free"
#define POOL_TRASH_DIR "trash"

/* At most this many emptied files wait in free/; more are unlinked. */
#define POOL_MAX 16384

struct pool;

/*
 * Open the pool under objects_fd (the vault's objects directory), making free/ and trash/
 * if missing, and list free/. Returns 0, -ELOOP (free/ or trash/ is a symbolic link: never
 * followed), -errno.
 */
int pool_open(struct pool **out, int objects_fd) __attribute__((warn_unused_result));

/* Start the thread that empties the trash, beginning with whatever a crash left there:
 * only the vault's lock holder may call it. Not done by pool_open, so that a daemon can
 * fork after opening its vault (a fork keeps no thread), and so that opening a vault
 * without its lock never touches another process's trash. Without it, files this process
 * put wait until pool_settle() or pool_free() empties them on the caller's thread. */
void pool_start(struct pool *pool);

/* Empty everything still queued (on the caller's thread when none was started), stop the
 * thread and free the pool. NULL is accepted. */
void pool_free(struct pool *pool);

/*
 * Move an emptied file into place as name in dir_fd (the object's fan-out directory,
 * opened by the caller without following a link). Returns 0, -ENOENT when no emptied
 * file waits, -errno.
 */
int pool_take(struct pool *pool, int dir_fd, const char *name)
	__attribute__((warn_unused_result));

/*
 * Take the object file name in dir_fd (its fan-out directory), whose id is id, out of
 * the vault: it is renamed into trash/ now and emptied later. Returns 0, -ENOENT (no such
 * file), -errno (nothing moved: the caller unlinks it itself).
 */
int pool_put(struct pool *pool, int dir_fd, const char *name, const uint8_t id[OBJECT_ID_LEN])
	__attribute__((warn_unused_result));

/* Wait until every file put so far has been emptied (or unlinked); without a thread,
 * empty them here. */
void pool_settle(struct pool *pool);

#endif
