/*
 * The gate: every FUSE request passes gate_enter() before its work and gate_leave()
 * after it. On a mount made through the key agent, gate_enter() decides each request
 * from the caller's uid and groups and the grants of the current lease (mode and path
 * rules), and refuses everything once the lease is revoked. On a mount without a policy
 * (key file, ephemeral) the kernel's mode checks alone apply. gate_leave() is where
 * each access becomes an audit record (a later issue).
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static bool revoked(const struct vfs_access *access)
{
	return __atomic_load_n(&access->revoked, __ATOMIC_ACQUIRE);
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

static enum policy_mode mode_of(struct vfs_access *access, const struct policy_principal *who,
				const char *path, bool is_dir)
{
	pthread_rwlock_rdlock(&access->lock);
	enum policy_mode mode = policy_grants_mode(&access->grants, who, path, is_dir);
	pthread_rwlock_unlock(&access->lock);
	return mode;
}

int gate_enter(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
	       const char *name)
{
	struct vfs_access *access = vfs->access;
	enum need need = need_of(op);
	gid_t groups[64];
	char *path;
	int err = 0;

	if (!access || need == NEED_NOTHING)
		return 0;
	if (revoked(access))
		return -EACCES;

	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct policy_principal who = { ctx->uid, ctx->gid, NULL, 0 };
	/* Lookups and listings only need some access to the dataset: ask about its root. */
	bool is_dir = need == NEED_DATASET || targets_directory(vfs, op, ino, name);
	path = need == NEED_DATASET ? strdup("") : node_path(vfs, ino, name);
	if (!path)
		return -EACCES;  /* a path we cannot name cannot be checked: refuse */

	enum policy_mode mode = mode_of(access, &who, path, is_dir);
	bool enough = need == NEED_WRITE ? mode == POLICY_RW : mode != POLICY_NONE;
	if (!enough && access->group_grants) {
		/* Supplementary groups cost a read of /proc: only when they could matter. */
		int count = fuse_req_getgroups(req, (int)(sizeof(groups) / sizeof(groups[0])),
					       groups);
		if (count > 0) {
			who.groups = groups;
			who.group_count = (size_t)count < sizeof(groups) / sizeof(groups[0])
				? (size_t)count : sizeof(groups) / sizeof(groups[0]);
			mode = mode_of(access, &who, path, is_dir);
			enough = need == NEED_WRITE ? mode == POLICY_RW : mode != POLICY_NONE;
		}
	}
	if (!enough)
		err = -EACCES;
	free(path);
	return err;
}

void gate_leave(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino, int result)
{
	(void)vfs;
	(void)req;
	(void)op;
	(void)ino;
	(void)result;
}
