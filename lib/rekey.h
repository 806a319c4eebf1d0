/*
 * Rekeying a vault: re-encrypting every object and re-sealing every metadata value that
 * uses an older DEK version under the newest one, and re-binding the header's key check
 * to it, so that the older versions can then be retired.
 *
 * A run only ever moves items forward (an item already under the target version is
 * skipped), and each step is atomic on its own: a file's new object is written and made
 * durable before its record points at it, and the old object is removed after. So an
 * interrupted run - killed daemon, stopped agent, power loss - is resumed by starting
 * another; the leftovers of an interruption (an object no record names) are swept.
 *
 * rekey_vault() does the whole run on a vault nobody has mounted (the key agent, offline).
 * A mounted daemon runs the same steps with rekey_run(), moving each file through its
 * own inode table (fs/rekey.c).
 */
#ifndef VAULTFS_REKEY_H
#define VAULTFS_REKEY_H

#include <stdint.h>
#include <time.h>

#include "lib/meta.h"
#include "lib/object.h"

struct vault;

struct rekey_progress {
	uint32_t version;   /* the target: the newest version of the vault's key source */
	uint64_t done;      /* objects and metadata values moved to version so far */
	uint64_t total;     /* found under older versions when the run began */
};

/* Called after every step; a non-zero return stops the run, which returns that value. */
typedef int rekey_report_fn(void *arg, const struct rekey_progress *progress);

/*
 * Rekey a vault opened read-write whose directory the caller has locked against mounts
 * (flock LOCK_EX on vault->dir_fd), to the newest version of vault->keys, which must
 * hold every version still in use. budget_limit bounds each new file key as
 * OBJECT_MAX_ENCRYPTIONS does (pass that). Returns 0 when every item is under the target;
 * -EIO when some object failed authentication (each logged with its id; the others are
 * still rekeyed and the header is left as it was); the report's non-zero value; -errno.
 */
int rekey_vault(struct vault *vault, uint64_t budget_limit, rekey_report_fn *report, void *arg)
	__attribute__((warn_unused_result));

/*
 * How one file is moved: offline straight through the store, by a mounted daemon through
 * its inode table. Copy file ino, if its record still names a version older than
 * version, into a new object (rekey_copy_object) and store its record; put the old
 * object's id in old_id and return 1; 0 when there was nothing to move; -EIO for a
 * damaged object (logged, record left as it was); -errno.
 */
typedef int rekey_file_fn(void *arg, struct vault *vault, uint64_t ino, uint32_t version,
			  uint8_t old_id[OBJECT_ID_LEN]);

struct rekey_plan {
	uint32_t version;            /* the target; vault->keys must have it */
	rekey_file_fn *file;
	void *file_arg;
	time_t sweep_margin;         /* the sweep spares objects changed this recently */
	rekey_report_fn *report;     /* may be NULL */
	void *report_arg;
};

/* A run by plan: what rekey_vault does with its own file step and no margin. Old objects
 * are unlinked in batches after a store sync; the header moves last. */
int rekey_run(struct vault *vault, const struct rekey_plan *plan)
	__attribute__((warn_unused_result));

/* Count the object-bearing files and the metadata values under versions older than
 * version (one read transaction). */
int rekey_count(struct vault *vault, uint32_t version, uint64_t *files, uint64_t *values)
	__attribute__((warn_unused_result));

/*
 * Copy the blocks of the object open on fd (its header already checked against rec,
 * keyed by key) into a new object under the newest version. On success *fresh is a deep
 * copy of rec naming the new object (id, key version, budget, exact object_max_len),
 * *fd_out is open read-write on it, *key_out its file key and *budget_out its budget;
 * the new object is durable, and nothing is stored: the caller stores *fresh, then
 * unlinks rec's object. A block that fails authentication is logged with the object id
 * and gives -EIO; on any failure the new object is removed.
 */
int rekey_copy_object(struct vault *vault, const struct meta_inode *rec, int fd,
		      const struct object_key *key, uint64_t budget_limit,
		      struct meta_inode *fresh, int *fd_out, struct object_key **key_out,
		      struct object_budget *budget_out) __attribute__((warn_unused_result));

#endif
