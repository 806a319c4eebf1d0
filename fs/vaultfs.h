/*
 * Internals of the vaultfs FUSE daemon: the per-mount state (struct vfs), the in-memory
 * inode table (struct vnode) and the work functions behind every FUSE callback. Each
 * do_*() does the work and returns 0 or -errno; ops.c only replies.
 *
 * Locking, outermost first: vnode locks (several at once only in inode-number order),
 * then the metadata write transaction (LMDB's single writer). table_lock guards only
 * the hash table and reference counts and is never held while taking another lock.
 */
#ifndef VAULTFS_FS_H
#define VAULTFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/meta.h"
#include "lib/object.h"
#include "lib/policy.h"

struct keysource;
struct vault;

struct vnode {
	uint64_t ino;
	/* Guarded by vfs.table_lock. */
	uint64_t nlookup;        /* kernel references (lookup minus forget) */
	uint32_t pins;           /* references held by requests in flight */
	uint32_t opens;          /* open file handles */
	struct vnode *next;      /* hash chain */
	/* Guarded by vfs.paths_lock: the path inside the vault it was last reached by ("" for
	 * the root, NULL when unknown), for the policy's path rules. */
	char *path;
	/* Guarded by lock. */
	pthread_rwlock_t lock;
	struct meta_inode rec;   /* authoritative while the vnode exists */
	bool dirty;              /* rec differs from the store */
	bool save_queued;        /* in vfs->save_queue (flusher_lock) */
	bool unlinked;           /* no name left; record and object go at last release */
	bool removed;            /* record already deleted from the store */
	int object_fd;           /* regular files: -1 until first open */
	int object_error;        /* non-zero: the object failed its checks, answer -EIO */
	struct object_key *key;
	struct object_budget budget;
	bool attr_stale;         /* st_blocks changed since the kernel last fetched it */
	uint64_t changes;        /* bumped by every change to the object's blocks or extent */
};

#define VFS_DEK_CACHE 8
/* The largest READ and WRITE request the daemon takes (libfuse's FUSE_MAX_MAX_PAGES is 256
 * pages), and its readahead window. */
#define VFS_MAX_REQUEST (1024 * 1024)

/* What the key agent's lease says about access to this mount (see gate.c, lease.c). */
struct vfs_access {
	pthread_rwlock_t lock;        /* guards grants */
	struct policy_grants grants;
	bool group_grants;            /* some grant names a gid: supplementary groups matter
					 (atomic access: read before taking lock) */
	bool path_rules;              /* some grant has path rules (guarded by lock) */
	bool revoked;                 /* set once, never cleared (atomic access) */
};

struct vfs {
	struct vault *vault;
	struct keysource *keys;
	enum crypto_cipher cipher;
	size_t stride;                 /* object_block_stride(cipher) */
	bool read_only;
	uint64_t budget_limit;         /* OBJECT_MAX_ENCRYPTIONS */
	double entry_timeout;
	/* Writeback cache: the kernel keeps regular files' mtime and ctime and sends each
	 * change of them in a SETATTR, so the daemon never sets them itself (set at INIT). */
	bool kernel_times;
	struct fuse_session *session;

	pthread_rwlock_t paths_lock;
	/* NULL when the mount has no policy (key file, ephemeral): the kernel's mode checks
	 * are then the only access control. */
	struct vfs_access *access;

	pthread_mutex_t table_lock;
	struct vnode **table;
	size_t table_size;             /* power of two */
	size_t table_count;

	/* DEKs fetched from the key source, by version (secret memory). */
	pthread_mutex_t deks_lock;
	uint32_t dek_versions[VFS_DEK_CACHE];
	uint8_t *deks[VFS_DEK_CACHE];

	struct vfs_rekey *rekey;       /* rekey.c: NULL until the agent first asks */
	struct vfs_trail *trail;       /* trail.c: NULL when the mount keeps no audit trail */
	struct crew *crew;             /* crew.c: NULL on one core */

	pthread_t flusher;
	pthread_mutex_t flusher_lock;
	pthread_cond_t flusher_wake;
	bool flusher_stop;
	struct vnode **save_queue;     /* closed files to store soon, pinned (flusher_lock) */
	size_t save_count, save_cap;
	bool flusher_running;
};

/* node.c: the inode table. */
int vfs_init(struct vfs *vfs, struct vault *vault, struct keysource *keys, bool read_only);
void vfs_release(struct vfs *vfs);
/* A pinned vnode for ino, loading its record if needed. Returns 0, -ENOENT, -EIO. */
int node_get(struct vfs *vfs, uint64_t ino, struct vnode **out);
/* Drop a pin from node_get/node_new; frees the vnode when nothing references it. */
void node_put(struct vfs *vfs, struct vnode *node);
/* Add a pinned vnode for a freshly created record (copied). */
int node_new(struct vfs *vfs, const struct meta_inode *rec, struct vnode **out);
void node_lookup_ref(struct vfs *vfs, struct vnode *node);
void node_forget(struct vfs *vfs, uint64_t ino, uint64_t nlookup);
/* Store the vnode's record now (write lock held). */
int node_save(struct vfs *vfs, struct vnode *node);
/* The same within milliseconds, by the flusher thread, in one commit with the records of
 * other files closed meanwhile (a close need not wait for a commit of its own). The vnode
 * stays dirty, so in the table, until then. Returns 0, or what node_save returns when no
 * flusher runs. */
int node_save_soon(struct vfs *vfs, struct vnode *node);
/* Derive the file key of an object whose header is given. Returns 0 or -errno. */
int node_object_key(struct vfs *vfs, const struct object_header *header,
		    struct object_key **out);
/* Revocation: wipe the DEK cache and every vnode's file key, close their objects, and
 * make any request still holding a vnode fail with EACCES. */
void node_forget_keys(struct vfs *vfs);
/* Store every dirty record and make the store durable. */
int node_flush_all(struct vfs *vfs);
/* Lock up to four vnodes (NULLs and repeats allowed) for writing, in inode order. */
void node_lock_many(struct vnode **nodes, int count);
void node_unlock_many(struct vnode **nodes, int count);
/* Delete the record, xattrs and object of an inode with no names left (write lock held
 * on node, no transaction open). */
int node_destroy(struct vfs *vfs, struct vnode *node);
/* After its record was deleted and committed: mark node removed and remove its object
 * (write lock held). Returns 0 or -errno from the object's removal. */
int node_drop_object(struct vfs *vfs, struct vnode *node);
/* Delete orphans left by a killed daemon. */
int node_reclaim_orphans(struct vfs *vfs);
void node_fill_stat(const struct vfs *vfs, const struct meta_inode *rec, struct stat *st);
/* Record that node is reached as name inside the directory dir (NULL name: node is the
 * root). Renaming a directory moves the recorded paths of everything below it. */
void node_set_path(struct vfs *vfs, struct vnode *node, struct vnode *dir, const char *name);
void node_move_paths(struct vfs *vfs, struct vnode *node, struct vnode *dir, const char *name);
/* Copy ino's path (+ "/" + name when name is not NULL) into a malloc'd string, or NULL
 * when the path is unknown. */
char *node_path(struct vfs *vfs, uint64_t ino, const char *name);
void node_time_now(struct timespec *now);
int flusher_start(struct vfs *vfs);
void flusher_stop(struct vfs *vfs);

/* file.c: regular file contents. */
/* Write a new, empty object for rec (which gets its id); *fd_out is open on it. */
int file_create_object(struct vfs *vfs, struct meta_inode *rec, int *fd_out);
/* Give a freshly created vnode the fd of its new object (taken over, or closed), so the
 * open that follows a create does not open the object again. */
void file_adopt_object(struct vfs *vfs, struct vnode *node, int fd);
int do_open(struct vfs *vfs, struct vnode *node, int flags);
int do_release(struct vfs *vfs, struct vnode *node);
int do_read(struct vfs *vfs, struct vnode *node, uint8_t *out, size_t size, off_t off,
	    size_t *done);
int do_write(struct vfs *vfs, struct vnode *node, const uint8_t *in, size_t size, off_t off);
int do_fsync(struct vfs *vfs, struct vnode *node, bool datasync);
int do_flush(struct vfs *vfs, struct vnode *node);
/* Copy the file into a new object under a fresh file key and the newest key version and
 * store its record (write lock held): when the file key's nonce budget is spent, and to
 * rekey. The old object, whose id goes to old_id, is the caller's to remove once the
 * store is synced. */
int file_reencrypt(struct vfs *vfs, struct vnode *node, uint8_t old_id[OBJECT_ID_LEN]);
/* Rekey: the same for a file whose object is under a version older than version (no
 * lock held). The copy is made under the read lock, so readers go on meanwhile; it is
 * put in place if no write came between, else made again under the write lock. Returns
 * 1 with old_id set, 0 when there was nothing to move, -errno. */
int file_rekey(struct vfs *vfs, struct vnode *node, uint32_t version,
	       uint8_t old_id[OBJECT_ID_LEN]);
/* Change the size (write lock held). */
int file_truncate(struct vfs *vfs, struct vnode *node, uint64_t size);
/* fallocate(2) modes 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
 * and FALLOC_FL_ZERO_RANGE [| FALLOC_FL_KEEP_SIZE] on an open file (no lock held): the
 * range reads as zeros through holes in the record, its backing space reserved where the
 * backing file system can. Returns 0, -EOPNOTSUPP (other modes), -EINVAL, -EFBIG,
 * -ENODEV (not a regular file), -ENOSPC (the backing store cannot reserve the space),
 * -EIO. */
int do_fallocate(struct vfs *vfs, struct vnode *node, int mode, off_t offset, off_t length);

/* dir.c: the namespace. */
int do_lookup(struct vfs *vfs, uint64_t parent, const char *name, struct fuse_entry_param *e);
int do_mknod(struct vfs *vfs, const struct fuse_ctx *ctx, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const char *link_target, struct fuse_entry_param *e,
	     struct vnode **created);
int do_unlink(struct vfs *vfs, uint64_t parent, const char *name, bool is_dir);
int do_rename(struct vfs *vfs, uint64_t parent, const char *name, uint64_t newparent,
	      const char *newname, unsigned int flags);
int do_link(struct vfs *vfs, uint64_t ino, uint64_t newparent, const char *newname,
	    struct fuse_entry_param *e);
/* plus: readdirplus, each entry with its attributes and counted as a lookup. */
int do_readdir(struct vfs *vfs, fuse_req_t req, uint64_t ino, size_t size, off_t off,
	       bool plus, char *buf, size_t *used);

/* attr.c: attributes, links, xattrs, statfs. */
int do_getattr(struct vfs *vfs, uint64_t ino, struct stat *st);
int do_setattr(struct vfs *vfs, uint64_t ino, const struct stat *attr, int to_set,
	       struct stat *st);
int do_readlink(struct vfs *vfs, uint64_t ino, char *buf, size_t size);
int do_setxattr(struct vfs *vfs, uint64_t ino, const char *name, const char *value,
		size_t size, int flags);
int do_getxattr(struct vfs *vfs, uint64_t ino, const char *name, uint8_t **value,
		size_t *size);
int do_listxattr(struct vfs *vfs, uint64_t ino, char *buf, size_t size, size_t *needed);
int do_removexattr(struct vfs *vfs, uint64_t ino, const char *name);
int do_statfs(struct vfs *vfs, struct statvfs *st);

/* gate.c: the one place every request passes (policy decisions and audit records). */
enum gate_op {
	GATE_LOOKUP, GATE_GETATTR, GATE_SETATTR, GATE_READLINK, GATE_MKNOD, GATE_MKDIR,
	GATE_UNLINK, GATE_RMDIR, GATE_SYMLINK, GATE_RENAME, GATE_LINK, GATE_OPEN, GATE_READ,
	GATE_WRITE, GATE_FLUSH, GATE_RELEASE, GATE_FSYNC, GATE_OPENDIR, GATE_READDIR,
	GATE_STATFS, GATE_SETXATTR, GATE_GETXATTR, GATE_LISTXATTR, GATE_REMOVEXATTR,
	GATE_CREATE, GATE_ACCESS, GATE_OPEN_WRITE, GATE_COUNT,
};
/* Before the work: 0 to proceed, or -errno to refuse the request. The request is on
 * inode ino, or on the entry name inside directory ino when name is not NULL; who asks
 * is the request's caller. */
int gate_enter(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
	       const char *name);

#define GATE_GROUPS_MAX 64
/* An open file (fi->fh): who opened it, captured at OPEN or CREATE. Every request on it
 * (READ, WRITE, FSYNC, SETATTR through it) is decided by that opener's current grants
 * and the lease, never by the uid the kernel sends: writeback, readahead and the flush
 * of cached times come from the kernel itself (uid 0, pid 0). */
struct vfs_handle {
	struct vnode *node;            /* pinned for the handle's life */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[GATE_GROUPS_MAX]; /* read only when a grant names a group */
	size_t group_count;
	bool writable;                 /* opened O_WRONLY or O_RDWR */
	uint64_t bytes_read;           /* for the close record (atomic access) */
	uint64_t bytes_written;
};
/* Renaming parent/name to newparent/newname (flags as rename2): -EXDEV when an entry
 * that moves (both, for RENAME_EXCHANGE) is a directory and some path at or below it
 * would get another mode for the caller at its new place - path rules do not follow a
 * move, so none may carry data into a zone where they give more (mv then copies, file
 * by file through the gate). Also -EXDEV past MOVE_WALK_MAX entries. 0 when no grant
 * has path rules. */
int gate_check_rename(struct vfs *vfs, fuse_req_t req, uint64_t parent, const char *name,
		      uint64_t newparent, const char *newname, unsigned int flags);
/* A new name newparent/newname for ino: -EXDEV when it would give the caller more than
 * the file's path does now. */
int gate_check_link(struct vfs *vfs, fuse_req_t req, uint64_t ino, uint64_t newparent,
		    const char *newname);
/* A handle for node opened by the request's caller with flags: 0 or -ENOMEM. */
int gate_handle_new(struct vfs *vfs, fuse_req_t req, struct vnode *node, int flags,
		    struct vfs_handle **out);
void gate_handle_free(struct vfs_handle *handle);
/* gate_enter for a request on an open file. -EACCES when the opener's grants no longer
 * allow it or the lease is revoked; -EBADF for a change through a read-only handle. */
int gate_enter_handle(struct vfs *vfs, enum gate_op op, const struct vfs_handle *handle);
/* After the work, with its result (0 or -errno): the audit record of the request (on
 * inode ino, or the entry name inside it), see trail.c. */
void gate_leave(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
		const char *name, int result);
/* The name of op for records and logs ("lookup", "open"). */
const char *gate_op_name(enum gate_op op);

/* crew.c: helper threads sharing one request's block encryption. */
struct crew;
/* Work on items [first, first + count); 0 or -errno. */
typedef int crew_fn(void *arg, size_t first, size_t count);
/* Start one helper per core beyond the first (none on one core: *out stays NULL); after
 * any fork. vfs_release stops the crew. */
int crew_start(struct crew **out);
void crew_stop(struct crew *crew);
/* Run fn over [0, count) in slices on the caller and the helpers (crew NULL: all on the
 * caller); returns the first non-zero result, after every slice has finished. */
int crew_run(struct crew *crew, crew_fn *fn, void *arg, size_t count);

/* rekey.c: rekeying the mounted vault when the key agent asks (lib/rekey.h has the
 * steps). One run at a time, on its own thread, alongside every other request. */
struct protocol_rekey;
/* Start a run to version unless one is running (then nothing changes). */
int vfs_rekey_start(struct vfs *vfs, uint32_t version);
/* The current or last run, for the agent (state 0: none ever started). */
void vfs_rekey_status(struct vfs *vfs, struct protocol_rekey *out);
/* Stop a run and wait for its thread (before the vfs goes away). */
void vfs_rekey_stop(struct vfs *vfs);

/* lease.c: mounting through the key agent. */
struct lease;
struct keysource;
/* Ask the agent (socket_path NULL: the default) for a lease on dataset - or, claim not 0,
 * take the lease it made when it started this daemon: returns the key source holding its
 * keys, the vault directory (malloc'd) and the access the gate uses. -errno from the
 * agent (EACCES: no role; EPERM: not root and not started by the agent) or the
 * transport. */
int lease_acquire(struct lease **out, const char *socket_path, const char *dataset,
		  uint64_t claim, struct keysource **keys, char **vault_dir,
		  struct vfs_access **access);
/* Start renewing in the background; the mount's vfs must be set up. mountpoint and the
 * holder (the user of a mount the agent started, else 0) are told to the agent with
 * each renewal, so that a restarted agent takes the lease back. A renewal the agent
 * refuses revokes at once (but for "sealed"); one that cannot reach it is tried again
 * until the lease runs out. */
int lease_start(struct lease *lease, struct vfs *vfs, const char *mountpoint,
		uint32_t holder_uid, uint32_t holder_gid);
/* Wipe keys and refuse everything from now on (idempotent). */
void lease_revoke(struct vfs *vfs, struct keysource *keys, const char *why);
/* Stop renewing (before the vfs goes away). */
void lease_stop(struct lease *lease);
/* Stop renewing and tell the agent the mount is gone. */
void lease_release(struct lease *lease);
void lease_access_free(struct vfs_access *access);

/* trail.c: the mount's audit trail (lib/audit.h). Every call is a no-op on a mount
 * without one. Records never hold a path: a keyed hash and a sealed copy instead. */
struct vfs_trail;
/* Open the trail in dir for dataset (NULL: none) and derive the path keys from the
 * newest key version. 0 or -errno (audit_open's). */
int trail_open(struct vfs *vfs, const char *dir, const char *dataset);
/* Write everything, seal, free: what audit_close returns. */
int trail_close(struct vfs *vfs);
/* Revocation: the path keys go with the others (records then carry no path). */
void trail_wipe_keys(struct vfs *vfs);
/* -EIO while records cannot be written: every access is then refused (fail closed). */
int trail_ok(struct vfs *vfs);
/* Every record so far durable: 0 or -errno. */
int trail_sync(struct vfs *vfs);
/* A request on inode ino or the entry name in it; rename: the target is name2 in ino2;
 * link: ino2 is the inode linked. Successes of namespace changes, setattr, xattr changes
 * and listings are recorded, and every refusal. */
void trail_request(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
		   const char *name, uint64_t ino2, const char *name2, int result);
/* open, create (flags), close (byte counts), fsync of an open file, by its opener. */
void trail_handle(struct vfs *vfs, fuse_req_t req, enum gate_op op,
		  const struct vfs_handle *handle, int flags, int result);
/* mount, unmount and lease events, by the daemon itself. */
void trail_event(struct vfs *vfs, const char *action, const char *detail, int result);

/* ops.c */
extern const struct fuse_lowlevel_ops vaultfs_ops;

/* Per-thread scratch buffers reused across requests (no allocation per call). */
uint8_t *scratch_get(int slot, size_t len);

#endif
