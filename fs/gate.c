/*
 * The gate: every FUSE request passes gate_enter() (or, on an open file,
 * gate_enter_handle()) before its work and gate_leave() after it. On a mount made
 * through the key agent the gate decides each request from the grants of the current
 * lease (mode and path rules) and refuses everything once the lease is revoked. Who is
 * asking is the caller of the request, except on an open file: there it is whoever
 * opened the file, captured in its handle at OPEN or CREATE, because the kernel sends
 * writeback, readahead and the flush of cached times as itself (uid 0, pid 0). On a
 * mount without a policy (key file, ephemeral) the kernel's mode checks alone apply.
 * gate_leave() is where each access becomes an audit record (a later issue).
 */
#include "fs/vaultfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/vault.h"

/* A directory rename under path rules is checked entry by entry up to this many. */
#define MOVE_WALK_MAX 10000

/* What a request needs from the policy. */
enum need {
	NEED_NOTHING,   /* releases and flushes: never refused, or handles would leak */
	NEED_DATASET,   /* any access to the dataset: lookups, attributes, listings */
	NEED_READ,      /* read the object of the request */
	NEED_WRITE,     /* change it, or create or remove the named entry */
};

static enum need need_of(enum gate_op op)
{
	switch (op) {
	case GATE_RELEASE:
	case GATE_FLUSH:
		return NEED_NOTHING;
	case GATE_LOOKUP:
	case GATE_GETATTR:
	case GATE_STATFS:
	case GATE_OPENDIR:
	case GATE_READDIR:
	case GATE_ACCESS:
		return NEED_DATASET;
	case GATE_READLINK:
	case GATE_OPEN:
	case GATE_READ:
	case GATE_GETXATTR:
	case GATE_LISTXATTR:
	case GATE_FSYNC:
		return NEED_READ;
	default:
		return NEED_WRITE;
	}
}

const char *gate_op_name(enum gate_op op)
{
	static const char *const names[GATE_COUNT] = {
		[GATE_LOOKUP] = "lookup", [GATE_GETATTR] = "getattr", [GATE_SETATTR] = "setattr",
		[GATE_READLINK] = "readlink", [GATE_MKNOD] = "mknod", [GATE_MKDIR] = "mkdir",
		[GATE_UNLINK] = "unlink", [GATE_RMDIR] = "rmdir", [GATE_SYMLINK] = "symlink",
		[GATE_RENAME] = "rename", [GATE_LINK] = "link", [GATE_OPEN] = "open",
		[GATE_READ] = "read", [GATE_WRITE] = "write", [GATE_FLUSH] = "flush",
		[GATE_RELEASE] = "close", [GATE_FSYNC] = "fsync", [GATE_OPENDIR] = "opendir",
		[GATE_READDIR] = "readdir", [GATE_STATFS] = "statfs", [GATE_SETXATTR] = "setxattr",
		[GATE_GETXATTR] = "getxattr", [GATE_LISTXATTR] = "listxattr",
		[GATE_REMOVEXATTR] = "removexattr", [GATE_CREATE] = "create",
		[GATE_ACCESS] = "access", [GATE_OPEN_WRITE] = "open",
	};
	return (unsigned)op < GATE_COUNT && names[op] ? names[op] : "unknown";
}

static bool revoked(const struct vfs_access *access)
{
	return __atomic_load_n(&access->revoked, __ATOMIC_ACQUIRE);
}

static bool enough(enum need need, enum policy_mode mode)
{
	return need == NEED_WRITE ? mode == POLICY_RW : mode != POLICY_NONE;
}

/* What every request meets before the policy: 0 to let it through (it needs nothing,
 * or the mount has no policy), -EIO while the trail cannot record it (nothing is done
 * unrecorded), -EACCES once the lease is revoked, 1 to go on to the grants. */
static int first_checks(struct vfs *vfs, enum need need)
{
	if (need == NEED_NOTHING)
		return 0;
	if (trail_ok(vfs))
		return -EIO;
	if (!vfs->access)
		return 0;
	return revoked(vfs->access) ? -EACCES : 1;
}

/* Whether the target of the request is (or will be) a directory. */
static bool targets_directory(struct vfs *vfs, enum gate_op op, uint64_t ino, const char *name)
{
	struct vnode *node;
	bool is_dir = false;

	if (op == GATE_MKDIR || op == GATE_RMDIR || op == GATE_OPENDIR || op == GATE_READDIR)
		return true;
	if (name)
		return false;
	if (node_get(vfs, ino, &node) == 0) {
		pthread_rwlock_rdlock(&node->lock);
		is_dir = S_ISDIR(node->rec.mode);
		pthread_rwlock_unlock(&node->lock);
		node_put(vfs, node);
	}
	return is_dir;
}

/* The mode of who on inode ino (or the entry name inside it) under the grants in force.
 * The path is only made when some grant has path rules; a path that cannot be named
 * cannot be checked and gives POLICY_NONE. */
static enum policy_mode mode_of(struct vfs *vfs, struct vfs_access *access,
				const struct policy_principal *who, enum need need,
				uint64_t ino, const char *name, bool is_dir)
{
	enum policy_mode mode = POLICY_NONE;
	char *path = NULL;

	pthread_rwlock_rdlock(&access->lock);
	if (need == NEED_DATASET || !access->path_rules) {
		/* Lookups and listings only need some access to the dataset: the root. */
		mode = policy_grants_mode(&access->grants, who, "", is_dir || need == NEED_DATASET);
	} else {
		path = node_path(vfs, ino, name);
		if (path)
			mode = policy_grants_mode(&access->grants, who, path, is_dir);
	}
	pthread_rwlock_unlock(&access->lock);
	free(path);
	return mode;
}

/* The request's supplementary groups into groups (GATE_GROUPS_MAX); their count. */
static size_t request_groups(fuse_req_t req, gid_t *groups)
{
	int count = fuse_req_getgroups(req, GATE_GROUPS_MAX, groups);

	if (count <= 0)
		return 0;
	return (size_t)count < GATE_GROUPS_MAX ? (size_t)count : GATE_GROUPS_MAX;
}

int gate_enter(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
	       const char *name)
{
	struct vfs_access *access = vfs->access;
	enum need need = need_of(op);
	gid_t groups[GATE_GROUPS_MAX];
	int first = first_checks(vfs, need);

	if (first <= 0)
		return first;

	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct policy_principal who = { ctx->uid, ctx->gid, NULL, 0 };
	bool is_dir = need == NEED_DATASET || targets_directory(vfs, op, ino, name);
	enum policy_mode mode = mode_of(vfs, access, &who, need, ino, name, is_dir);

	if (!enough(need, mode) && __atomic_load_n(&access->group_grants, __ATOMIC_ACQUIRE)) {
		/* Supplementary groups cost a read of /proc: only when they could matter. */
		who.group_count = request_groups(req, groups);
		who.groups = groups;
		if (who.group_count)
			mode = mode_of(vfs, access, &who, need, ino, name, is_dir);
	}
	return enough(need, mode) ? 0 : -EACCES;
}

int gate_handle_new(struct vfs *vfs, fuse_req_t req, struct vnode *node, int flags,
		    struct vfs_handle **out)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct vfs_handle *handle = calloc(1, sizeof(*handle));

	if (!handle)
		return -ENOMEM;
	handle->node = node;
	handle->uid = ctx->uid;
	handle->gid = ctx->gid;
	handle->pid = ctx->pid;
	handle->writable = (flags & O_ACCMODE) != O_RDONLY;
	/* Groups are read (from /proc) only when a grant names a group. */
	if (vfs->access && __atomic_load_n(&vfs->access->group_grants, __ATOMIC_ACQUIRE))
		handle->group_count = request_groups(req, handle->groups);
	*out = handle;
	return 0;
}

void gate_handle_free(struct vfs_handle *handle)
{
	free(handle);
}

int gate_enter_handle(struct vfs *vfs, enum gate_op op, const struct vfs_handle *handle)
{
	struct vfs_access *access = vfs->access;
	enum need need = need_of(op);

	/* The kernel only writes through a handle opened for writing; anything else on a
	 * read-only handle is not the kernel's doing. */
	if (need == NEED_WRITE && !handle->writable)
		return -EBADF;
	int first = first_checks(vfs, need);
	if (first <= 0)
		return first;
	struct policy_principal who = {
		handle->uid, handle->gid, handle->groups, handle->group_count,
	};
	/* Handles are of regular files: never a directory. */
	enum policy_mode mode = mode_of(vfs, access, &who, need, handle->node->ino, NULL, false);
	return enough(need, mode) ? 0 : -EACCES;
}

/*
 * Renames and links under path rules. The rules are a property of paths and do not
 * follow an entry that moves, so a move must not carry anything into a place where the
 * caller's rules give more than where it was (nor, for a directory, anything below it):
 * such a move is refused with EXDEV, which mv and shutil.move answer by copying, every
 * file then passing the gate at its new path.
 */

struct move_walk {
	struct vfs_access *access;
	struct policy_principal who;
	struct meta_txn *txn;
	char from[PATH_MAX];          /* the entry's path, then "/" and the relative part */
	char to[PATH_MAX];
	size_t visited;
	int err;
};

/* The caller's modes on walk->from and walk->to (access->lock held). */
static bool same_mode(struct move_walk *walk, bool is_dir)
{
	return policy_grants_mode(&walk->access->grants, &walk->who, walk->from, is_dir) ==
	       policy_grants_mode(&walk->access->grants, &walk->who, walk->to, is_dir);
}

static int walk_directory(struct move_walk *walk, uint64_t dir);

static int walk_entry(void *arg, const struct meta_dirent *entry)
{
	struct move_walk *walk = arg;
	size_t from_len = strlen(walk->from), to_len = strlen(walk->to);
	bool is_dir = entry->type == DT_DIR;
	int err = 0;

	if (++walk->visited > MOVE_WALK_MAX)
		return -EXDEV;
	if (from_len + 1 + entry->name_len >= sizeof(walk->from) ||
	    to_len + 1 + entry->name_len >= sizeof(walk->to))
		return -EXDEV;
	snprintf(walk->from + from_len, sizeof(walk->from) - from_len, "/%s", entry->name);
	snprintf(walk->to + to_len, sizeof(walk->to) - to_len, "/%s", entry->name);
	if (!same_mode(walk, is_dir))
		err = -EXDEV;
	else if (is_dir)
		err = walk_directory(walk, entry->ino);
	walk->from[from_len] = '\0';
	walk->to[to_len] = '\0';
	return err;
}

static int walk_directory(struct move_walk *walk, uint64_t dir)
{
	return meta_dir_iterate(walk->txn, dir, META_COOKIE_DOTDOT, walk_entry, walk);
}

/* One entry (ino, a directory or not) moving from path from to path to. */
static int check_one_move(struct vfs *vfs, struct move_walk *walk, uint64_t ino, bool is_dir,
			  const char *from, const char *to)
{
	int err = 0;

	if (strlen(from) >= sizeof(walk->from) || strlen(to) >= sizeof(walk->to))
		return -EXDEV;
	snprintf(walk->from, sizeof(walk->from), "%s", from);
	snprintf(walk->to, sizeof(walk->to), "%s", to);
	if (!same_mode(walk, is_dir))
		return -EXDEV;
	if (is_dir) {
		err = meta_txn_begin(vfs->vault->meta, false, &walk->txn);
		if (err)
			return err;
		err = walk_directory(walk, ino);
		meta_txn_abort(walk->txn);
		walk->txn = NULL;
	}
	return err;
}

/* The entry name inside directory parent, and whether it is a directory. */
static int find_entry(struct vfs *vfs, uint64_t parent, const char *name, uint64_t *ino,
		      bool *is_dir)
{
	struct meta_dirent entry;
	struct meta_txn *txn;
	int err = meta_txn_begin(vfs->vault->meta, false, &txn);

	if (err)
		return err;
	err = meta_dirent_get(txn, parent, name, strlen(name), &entry);
	meta_txn_abort(txn);
	if (!err) {
		*ino = entry.ino;
		*is_dir = entry.type == DT_DIR;
	}
	return err;
}

/* The caller of req, with supplementary groups when a grant names a group. */
static void caller_of(struct vfs_access *access, fuse_req_t req, struct policy_principal *who,
		      gid_t groups[GATE_GROUPS_MAX])
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	*who = (struct policy_principal){ ctx->uid, ctx->gid, groups, 0 };
	if (__atomic_load_n(&access->group_grants, __ATOMIC_ACQUIRE))
		who->group_count = request_groups(req, groups);
}

int gate_check_rename(struct vfs *vfs, fuse_req_t req, uint64_t parent, const char *name,
		      uint64_t newparent, const char *newname, unsigned int flags)
{
	struct vfs_access *access = vfs->access;
	gid_t groups[GATE_GROUPS_MAX];
	char *from = NULL, *to = NULL;
	struct move_walk *walk = NULL;
	uint64_t ino, other;
	bool is_dir, other_is_dir;
	int err;

	if (!access)
		return 0;
	pthread_rwlock_rdlock(&access->lock);
	if (!access->path_rules) {
		err = 0;
		goto out_unlock;
	}
	from = node_path(vfs, parent, name);
	to = node_path(vfs, newparent, newname);
	walk = calloc(1, sizeof(*walk));
	if (!from || !to || !walk) {
		err = -EACCES;  /* what cannot be named cannot be checked */
		goto out_unlock;
	}
	walk->access = access;
	caller_of(access, req, &walk->who, groups);
	err = find_entry(vfs, parent, name, &ino, &is_dir);
	if (!err)
		err = check_one_move(vfs, walk, ino, is_dir, from, to);
	/* An exchange moves the other entry the other way. */
	if (!err && (flags & RENAME_EXCHANGE)) {
		err = find_entry(vfs, newparent, newname, &other, &other_is_dir);
		if (!err)
			err = check_one_move(vfs, walk, other, other_is_dir, to, from);
	}
out_unlock:
	pthread_rwlock_unlock(&access->lock);
	free(walk);
	free(from);
	free(to);
	return err;
}

int gate_check_link(struct vfs *vfs, fuse_req_t req, uint64_t ino, uint64_t newparent,
		    const char *newname)
{
	struct vfs_access *access = vfs->access;
	gid_t groups[GATE_GROUPS_MAX];
	struct policy_principal who;
	char *from, *to;
	int err = 0;

	if (!access)
		return 0;
	caller_of(access, req, &who, groups);
	pthread_rwlock_rdlock(&access->lock);
	if (access->path_rules) {
		from = node_path(vfs, ino, NULL);
		to = node_path(vfs, newparent, newname);
		/* A new name may give less than the old one, never more. */
		if (!from || !to ||
		    policy_grants_mode(&access->grants, &who, to, false) >
		    policy_grants_mode(&access->grants, &who, from, false))
			err = from && to ? -EXDEV : -EACCES;
		free(from);
		free(to);
	}
	pthread_rwlock_unlock(&access->lock);
	return err;
}

void gate_leave(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
		const char *name, int result)
{
	trail_request(vfs, req, op, ino, name, 0, NULL, result);
}
