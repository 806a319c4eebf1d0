/*
 * The namespace: lookup, creation, unlink/rmdir, rename, hard links and readdir. Every
 * change is one metadata transaction that updates all the records it touches; the
 * vnodes involved are write-locked (in inode order) around it, and their in-memory
 * records are restored if the transaction fails.
 */
#include "fs/vaultfs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>  /* RENAME_NOREPLACE, RENAME_EXCHANGE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/vault.h"

#define RETRIES 8

/* The fields a namespace change may alter in a record, to undo a failed transaction. */
struct snapshot {
	struct vnode *node;
	uint32_t nlink;
	uint64_t parent;
	struct timespec mtime, ctime;
	bool unlinked;
};

static void snapshot_take(struct snapshot *snap, struct vnode *node)
{
	*snap = (struct snapshot){ .node = node };
	if (!node)
		return;
	snap->nlink = node->rec.nlink;
	snap->parent = node->rec.parent;
	snap->mtime = node->rec.mtime;
	snap->ctime = node->rec.ctime;
	snap->unlinked = node->unlinked;
}

static void snapshot_restore(const struct snapshot *snap)
{
	struct vnode *node = snap->node;
	if (!node)
		return;
	node->rec.nlink = snap->nlink;
	node->rec.parent = snap->parent;
	node->rec.mtime = snap->mtime;
	node->rec.ctime = snap->ctime;
	node->unlinked = snap->unlinked;
}

static int check_name(const char *name, size_t *len)
{
	*len = strlen(name);
	if (*len == 0)
		return -ENOENT;
	if (*len > META_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static void fill_entry(struct vfs *vfs, struct vnode *node, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = node->ino;
	e->generation = 1;
	e->attr_timeout = vfs->entry_timeout;
	e->entry_timeout = vfs->entry_timeout;
	node_fill_stat(vfs, &node->rec, &e->attr);
}

static int dirent_find(struct vfs *vfs, uint64_t parent, const char *name, size_t len,
		       struct meta_dirent *out)
{
	struct meta_txn *txn;
	int err = meta_txn_begin(vfs->vault->meta, false, &txn);
	if (err)
		return err;
	err = meta_dirent_get(txn, parent, name, len, out);
	meta_txn_abort(txn);
	if (err == -EBADMSG) {
		log_error("directory %llu: an entry failed authentication",
			  (unsigned long long)parent);
		err = -EIO;
	}
	return err;
}

int do_lookup(struct vfs *vfs, uint64_t parent, const char *name, struct fuse_entry_param *e)
{
	struct meta_dirent entry;
	struct vnode *node;
	size_t len;
	int err = check_name(name, &len);

	if (err)
		return err;
	err = dirent_find(vfs, parent, name, len, &entry);
	if (err)
		return err;
	err = node_get(vfs, entry.ino, &node);
	if (err)
		return err == -ENOENT ? -EIO : err;
	pthread_rwlock_rdlock(&node->lock);
	fill_entry(vfs, node, e);
	pthread_rwlock_unlock(&node->lock);
	if (vfs->access) {
		struct vnode *dir;
		if (node_get(vfs, parent, &dir) == 0) {
			node_set_path(vfs, node, dir, name);
			node_put(vfs, dir);
		}
	}
	node_lookup_ref(vfs, node);
	node_put(vfs, node);
	return 0;
}

static uint32_t dirent_type(mode_t mode)
{
	return IFTODT(mode);
}

/* Commit txn, or abort it when err is already set; returns the first error. */
static int finish(struct meta_txn *txn, int err)
{
	if (err) {
		meta_txn_abort(txn);
		return err;
	}
	return meta_txn_commit(txn);
}

int do_mknod(struct vfs *vfs, const struct fuse_ctx *ctx, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const char *link_target, struct fuse_entry_param *e,
	     struct vnode **created)
{
	struct meta_inode rec = { 0 };
	struct meta_dirent entry = { 0 };
	struct snapshot parent_snap;
	struct meta_txn *txn = NULL;
	struct vnode *dir, *node;
	int object_fd = -1;
	size_t len;
	int err = check_name(name, &len);

	if (err)
		return err;
	if (vfs->read_only)
		return -EROFS;
	/* Device nodes are stored with their rdev but open nothing: the mount is always
	 * nodev (fs/main.c), and only callers with CAP_MKNOD get this far (the kernel). */
	err = node_get(vfs, parent, &dir);
	if (err)
		return err;
	pthread_rwlock_wrlock(&dir->lock);
	if (!S_ISDIR(dir->rec.mode)) {
		err = -ENOTDIR;
		goto out_unlock;
	}
	if (dir->unlinked) {
		err = -ENOENT;
		goto out_unlock;
	}

	rec.mode = mode;
	rec.uid = ctx->uid;
	rec.gid = ctx->gid;
	if (dir->rec.mode & S_ISGID) {
		rec.gid = dir->rec.gid;
		if (S_ISDIR(mode))
			rec.mode |= S_ISGID;
	}
	rec.nlink = S_ISDIR(mode) ? 2 : 1;
	rec.rdev = rdev;
	rec.parent = S_ISDIR(mode) ? parent : 0;
	node_time_now(&rec.ctime);
	rec.atime = rec.mtime = rec.btime = rec.ctime;
	if (S_ISLNK(mode)) {
		size_t target_len = strlen(link_target);
		if (target_len > META_SYMLINK_MAX) {
			err = -ENAMETOOLONG;
			goto out_unlock;
		}
		rec.symlink = strdup(link_target);
		if (!rec.symlink) {
			err = -ENOMEM;
			goto out_unlock;
		}
		rec.size = target_len;
	}
	if (S_ISREG(mode)) {
		/* The object exists before any record points to it. */
		err = file_create_object(vfs, &rec, &object_fd);
		if (err)
			goto out_release;
	}

	snapshot_take(&parent_snap, dir);
	err = meta_txn_begin(vfs->vault->meta, true, &txn);
	if (err)
		goto out_object;
	err = meta_ino_alloc(txn, &rec.ino);
	entry.ino = rec.ino;
	entry.type = dirent_type(mode);
	entry.name_len = len;
	memcpy(entry.name, name, len);
	if (!err)
		err = meta_dirent_add(txn, parent, &entry);
	if (!err)
		err = meta_inode_put(txn, &rec);
	if (!err) {
		if (S_ISDIR(mode))
			dir->rec.nlink++;
		dir->rec.mtime = dir->rec.ctime = rec.ctime;
		err = meta_inode_put(txn, &dir->rec);
	}
	err = finish(txn, err);
	if (err) {
		snapshot_restore(&parent_snap);
		goto out_object;
	}
	err = node_new(vfs, &rec, &node);
	if (err)
		goto out_release;  /* created; the kernel will look it up again */
	fill_entry(vfs, node, e);
	if (vfs->access)
		node_set_path(vfs, node, dir, name);
	node_lookup_ref(vfs, node);
	if (created) {
		file_adopt_object(vfs, node, object_fd);
		object_fd = -1;
		*created = node;
	} else {
		node_put(vfs, node);
	}
	goto out_release;

out_object:
	if (S_ISREG(mode))
		(void)vault_object_unlink(vfs->vault, rec.object_id);
out_release:
	if (object_fd >= 0)
		close(object_fd);
	meta_inode_release(&rec);
out_unlock:
	pthread_rwlock_unlock(&dir->lock);
	node_put(vfs, dir);
	return err;
}

/*
 * Drop one name of node inside txn. At its last name an inode nobody has open goes in
 * the same transaction (its object after the commit: see drop_finish); one still open
 * goes to the orphans, deleted at its last release or at the next mount.
 */
static int drop_link(struct meta_txn *txn, struct vnode *node, const struct timespec *now)
{
	if (S_ISDIR(node->rec.mode))
		node->rec.nlink = 0;
	else if (node->rec.nlink > 0)
		node->rec.nlink--;
	node->rec.ctime = *now;
	if (node->rec.nlink > 0)
		return meta_inode_put(txn, &node->rec);
	node->unlinked = true;
	if (node->opens > 0) {
		int err = meta_orphan_add(txn, node->ino);
		return err ? err : meta_inode_put(txn, &node->rec);
	}
	int err = meta_inode_del(txn, node->ino);
	if (!err || err == -ENOENT)
		err = meta_xattr_del_all(txn, node->ino);
	return err == -ENOENT ? 0 : err;
}

/* After the commit of a drop_link that deleted the record: the object goes too. */
static void drop_finish(struct vfs *vfs, struct vnode *node)
{
	if (!node || !node->unlinked || node->opens > 0 || node->removed)
		return;
	(void)node_drop_object(vfs, node);
}

int do_unlink(struct vfs *vfs, uint64_t parent, const char *name, bool is_dir)
{
	struct meta_dirent entry, again;
	struct snapshot snaps[2];
	struct vnode *dir = NULL, *node = NULL;
	struct meta_txn *txn;
	struct timespec now;
	size_t len;
	int err = check_name(name, &len);

	if (err)
		return err;
	if (vfs->read_only)
		return -EROFS;
	err = node_get(vfs, parent, &dir);
	if (err)
		return err;
	for (int attempt = 0; attempt < RETRIES; attempt++) {
		err = dirent_find(vfs, parent, name, len, &entry);
		if (err)
			break;
		err = node_get(vfs, entry.ino, &node);
		if (err)
			break;
		struct vnode *locks[2] = { dir, node };
		node_lock_many(locks, 2);
		snapshot_take(&snaps[0], dir);
		snapshot_take(&snaps[1], node);
		err = meta_txn_begin(vfs->vault->meta, true, &txn);
		if (err)
			goto out_unlock;
		err = meta_dirent_get(txn, parent, name, len, &again);
		if (!err && again.ino != entry.ino) {
			/* Renamed over meanwhile: try again with the new inode. */
			meta_txn_abort(txn);
			node_unlock_many(locks, 2);
			node_put(vfs, node);
			node = NULL;
			err = -EAGAIN;
			continue;
		}
		if (!err && is_dir && !S_ISDIR(node->rec.mode))
			err = -ENOTDIR;
		if (!err && !is_dir && S_ISDIR(node->rec.mode))
			err = -EISDIR;
		if (!err && is_dir) {
			int empty = meta_dir_is_empty(txn, node->ino);
			err = empty < 0 ? empty : empty ? 0 : -ENOTEMPTY;
		}
		node_time_now(&now);
		if (!err)
			err = meta_dirent_del(txn, parent, name, len);
		if (!err)
			err = drop_link(txn, node, &now);
		if (!err) {
			if (is_dir)
				dir->rec.nlink--;
			dir->rec.mtime = dir->rec.ctime = now;
			err = meta_inode_put(txn, &dir->rec);
		}
		err = finish(txn, err);
		if (err) {
			snapshot_restore(&snaps[0]);
			snapshot_restore(&snaps[1]);
		} else {
			drop_finish(vfs, node);
		}
out_unlock:
		node_unlock_many(locks, 2);
		break;
	}
	if (node)
		node_put(vfs, node);
	node_put(vfs, dir);
	return err;
}

struct rename_plan {
	struct vnode *from_dir, *to_dir, *source, *target;
	struct meta_dirent source_entry, target_entry;
	bool has_target;
};

static int rename_apply(struct vfs *vfs, struct meta_txn *txn, struct rename_plan *plan,
			const char *name, size_t len, const char *newname, size_t newlen,
			unsigned int flags)
{
	struct vnode *source = plan->source, *target = plan->target;
	bool source_dir = S_ISDIR(source->rec.mode);
	bool moved = plan->from_dir != plan->to_dir;
	struct meta_dirent entry;
	struct timespec now;
	int err;

	node_time_now(&now);
	if (flags & RENAME_EXCHANGE) {
		bool target_dir = S_ISDIR(target->rec.mode);
		entry = plan->target_entry;
		entry.name_len = len;
		memcpy(entry.name, name, len);
		entry.name[len] = '\0';
		err = meta_dirent_put(txn, plan->from_dir->ino, &entry);
		entry = plan->source_entry;
		entry.name_len = newlen;
		memcpy(entry.name, newname, newlen);
		entry.name[newlen] = '\0';
		if (!err)
			err = meta_dirent_put(txn, plan->to_dir->ino, &entry);
		if (moved && source_dir) {
			source->rec.parent = plan->to_dir->ino;
			plan->from_dir->rec.nlink--;
			plan->to_dir->rec.nlink++;
		}
		if (moved && target_dir) {
			target->rec.parent = plan->from_dir->ino;
			plan->to_dir->rec.nlink--;
			plan->from_dir->rec.nlink++;
		}
		target->rec.ctime = now;
		if (!err)
			err = meta_inode_put(txn, &target->rec);
	} else {
		if (plan->has_target) {
			bool target_dir = S_ISDIR(target->rec.mode);
			if (source_dir && !target_dir)
				return -ENOTDIR;
			if (!source_dir && target_dir)
				return -EISDIR;
			if (target_dir) {
				int empty = meta_dir_is_empty(txn, target->ino);
				if (empty <= 0)
					return empty < 0 ? empty : -ENOTEMPTY;
				plan->to_dir->rec.nlink--;
			}
			err = drop_link(txn, target, &now);
			if (err)
				return err;
		}
		err = meta_dirent_del(txn, plan->from_dir->ino, name, len);
		entry = plan->source_entry;
		entry.name_len = newlen;
		memcpy(entry.name, newname, newlen);
		entry.name[newlen] = '\0';
		if (!err)
			err = meta_dirent_put(txn, plan->to_dir->ino, &entry);
		if (moved && source_dir) {
			source->rec.parent = plan->to_dir->ino;
			plan->from_dir->rec.nlink--;
			plan->to_dir->rec.nlink++;
		}
	}
	if (err)
		return err;
	source->rec.ctime = now;
	plan->from_dir->rec.mtime = plan->from_dir->rec.ctime = now;
	plan->to_dir->rec.mtime = plan->to_dir->rec.ctime = now;
	err = meta_inode_put(txn, &source->rec);
	if (!err)
		err = meta_inode_put(txn, &plan->from_dir->rec);
	if (!err && moved)
		err = meta_inode_put(txn, &plan->to_dir->rec);
	return err;
}

/* Keep the policy's view of paths in step with a rename that went through. */
static void rename_paths(struct vfs *vfs, struct rename_plan *plan, const char *name,
			 const char *newname, unsigned int flags)
{
	node_move_paths(vfs, plan->source, plan->to_dir, newname);
	if (flags & RENAME_EXCHANGE)
		node_move_paths(vfs, plan->target, plan->from_dir, name);
}

int do_rename(struct vfs *vfs, uint64_t parent, const char *name, uint64_t newparent,
	      const char *newname, unsigned int flags)
{
	struct rename_plan plan = { 0 };
	size_t len, newlen;
	int err;

	if (flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	err = check_name(name, &len);
	if (!err)
		err = check_name(newname, &newlen);
	if (err)
		return err;
	if (vfs->read_only)
		return -EROFS;
	err = node_get(vfs, parent, &plan.from_dir);
	if (err)
		return err;
	err = node_get(vfs, newparent, &plan.to_dir);
	if (err)
		goto out_from;

	for (int attempt = 0; attempt < RETRIES; attempt++) {
		struct meta_dirent check;
		struct meta_txn *txn;
		struct snapshot snaps[4];

		err = dirent_find(vfs, parent, name, len, &plan.source_entry);
		if (err)
			break;
		err = dirent_find(vfs, newparent, newname, newlen, &plan.target_entry);
		plan.has_target = err == 0;
		if (err && err != -ENOENT)
			break;
		err = 0;
		if ((flags & RENAME_NOREPLACE) && plan.has_target) {
			err = -EEXIST;
			break;
		}
		if ((flags & RENAME_EXCHANGE) && !plan.has_target) {
			err = -ENOENT;
			break;
		}
		if (plan.has_target && plan.target_entry.ino == plan.source_entry.ino)
			break;  /* two names of one inode: POSIX says do nothing */
		err = node_get(vfs, plan.source_entry.ino, &plan.source);
		if (!err && plan.has_target)
			err = node_get(vfs, plan.target_entry.ino, &plan.target);
		if (err)
			break;

		struct vnode *locks[4] = { plan.from_dir, plan.to_dir, plan.source, plan.target };
		node_lock_many(locks, 4);
		for (int i = 0; i < 4; i++)
			snapshot_take(&snaps[i], locks[i]);
		/* snapshot_take on a repeated vnode is harmless: restores write equal values. */
		err = meta_txn_begin(vfs->vault->meta, true, &txn);
		if (!err) {
			int got = meta_dirent_get(txn, parent, name, len, &check);
			bool stale = got != 0 || check.ino != plan.source_entry.ino;
			got = meta_dirent_get(txn, newparent, newname, newlen, &check);
			stale = stale || (got == 0) != plan.has_target ||
				(plan.has_target && check.ino != plan.target_entry.ino);
			if (stale) {
				meta_txn_abort(txn);
				err = -EAGAIN;
			} else {
				err = rename_apply(vfs, txn, &plan, name, len, newname, newlen, flags);
				err = finish(txn, err);
				if (err) {
					for (int i = 3; i >= 0; i--)
						snapshot_restore(&snaps[i]);
				} else {
					drop_finish(vfs, plan.target);
					if (vfs->access)
						rename_paths(vfs, &plan, name, newname, flags);
				}
			}
		}
		node_unlock_many(locks, 4);
		node_put(vfs, plan.source);
		plan.source = NULL;
		if (plan.target)
			node_put(vfs, plan.target);
		plan.target = NULL;
		if (err != -EAGAIN)
			break;
	}
	node_put(vfs, plan.to_dir);
out_from:
	node_put(vfs, plan.from_dir);
	return err;
}

int do_link(struct vfs *vfs, uint64_t ino, uint64_t newparent, const char *newname,
	    struct fuse_entry_param *e)
{
	struct meta_dirent entry = { 0 };
	struct snapshot snaps[2];
	struct vnode *node, *dir;
	struct meta_txn *txn;
	struct timespec now;
	size_t len;
	int err = check_name(newname, &len);

	if (err)
		return err;
	if (vfs->read_only)
		return -EROFS;
	err = node_get(vfs, ino, &node);
	if (err)
		return err;
	err = node_get(vfs, newparent, &dir);
	if (err)
		goto out_node;
	struct vnode *locks[2] = { node, dir };
	node_lock_many(locks, 2);
	if (S_ISDIR(node->rec.mode))
		err = -EPERM;
	else if (node->unlinked)
		err = -ENOENT;
	else if (node->rec.nlink >= UINT32_MAX - 1)
		err = -EMLINK;
	if (err)
		goto out_unlock;
	snapshot_take(&snaps[0], node);
	snapshot_take(&snaps[1], dir);
	err = meta_txn_begin(vfs->vault->meta, true, &txn);
	if (err)
		goto out_unlock;
	node_time_now(&now);
	entry.ino = ino;
	entry.type = dirent_type(node->rec.mode);
	entry.name_len = len;
	memcpy(entry.name, newname, len);
	err = meta_dirent_add(txn, newparent, &entry);
	node->rec.nlink++;
	node->rec.ctime = now;
	dir->rec.mtime = dir->rec.ctime = now;
	if (!err)
		err = meta_inode_put(txn, &node->rec);
	if (!err)
		err = meta_inode_put(txn, &dir->rec);
	err = finish(txn, err);
	if (err) {
		snapshot_restore(&snaps[0]);
		snapshot_restore(&snaps[1]);
	} else {
		fill_entry(vfs, node, e);
		node_lookup_ref(vfs, node);
	}
out_unlock:
	node_unlock_many(locks, 2);
	node_put(vfs, dir);
out_node:
	node_put(vfs, node);
	return err;
}

struct readdir_state {
	struct vfs *vfs;
	struct vnode *dir;      /* readdirplus: for the paths of the entries */
	fuse_req_t req;
	char *buf;
	size_t size;
	size_t used;
	bool plus;
};

static int add_entry(struct readdir_state *state, const char *name, uint64_t ino,
		     uint32_t type, uint64_t cookie)
{
	struct stat st = { .st_ino = ino, .st_mode = DTTOIF(type) };
	size_t need = fuse_add_direntry(state->req, state->buf + state->used,
					state->size - state->used, name, &st, (off_t)cookie);
	if (need > state->size - state->used)
		return 1;  /* full: the kernel asks again from this cookie */
	state->used += need;
	return 0;
}

/*
 * readdirplus: the entry with its attributes, which counts as a lookup (the kernel will
 * forget it). Saves ls -l and find a LOOKUP round trip per name.
 */
static int add_entry_plus(struct readdir_state *state, const struct meta_dirent *entry)
{
	struct fuse_entry_param e;
	struct vnode *node;
	int err = node_get(state->vfs, entry->ino, &node);

	if (err)
		return err == -ENOENT ? -EIO : err;
	pthread_rwlock_rdlock(&node->lock);
	fill_entry(state->vfs, node, &e);
	pthread_rwlock_unlock(&node->lock);
	size_t need = fuse_add_direntry_plus(state->req, state->buf + state->used,
					     state->size - state->used, entry->name, &e,
					     (off_t)entry->cookie);
	if (need > state->size - state->used) {
		node_put(state->vfs, node);
		return 1;
	}
	state->used += need;
	if (state->vfs->access)
		node_set_path(state->vfs, node, state->dir, entry->name);
	node_lookup_ref(state->vfs, node);
	node_put(state->vfs, node);
	return 0;
}

static int readdir_one(void *arg, const struct meta_dirent *entry)
{
	struct readdir_state *state = arg;
	if (state->plus)
		return add_entry_plus(state, entry);
	return add_entry(state, entry->name, entry->ino, entry->type, entry->cookie);
}

/* "." and "..": never looked up by the kernel, so no attributes and no reference. */
static int add_dot(struct readdir_state *state, const char *name, uint64_t ino,
		   uint64_t cookie)
{
	if (!state->plus)
		return add_entry(state, name, ino, DT_DIR, cookie);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.attr.st_ino = ino;
	e.attr.st_mode = S_IFDIR;
	size_t need = fuse_add_direntry_plus(state->req, state->buf + state->used,
					     state->size - state->used, name, &e, (off_t)cookie);
	if (need > state->size - state->used)
		return 1;
	state->used += need;
	return 0;
}

int do_readdir(struct vfs *vfs, fuse_req_t req, uint64_t ino, size_t size, off_t off,
	       bool plus, char *buf, size_t *used)
{
	struct readdir_state state = { vfs, NULL, req, buf, size, 0, plus };
	struct meta_txn *txn;
	struct vnode *dir;
	uint64_t parent;
	int err;

	err = node_get(vfs, ino, &dir);
	if (err)
		return err;
	pthread_rwlock_rdlock(&dir->lock);
	parent = dir->rec.parent;
	bool is_dir = S_ISDIR(dir->rec.mode);
	pthread_rwlock_unlock(&dir->lock);
	state.dir = dir;
	if (!is_dir) {
		err = -ENOTDIR;
		goto out_put;
	}

	if (off < META_COOKIE_DOT && add_dot(&state, ".", ino, META_COOKIE_DOT))
		goto out_done;
	if (off < META_COOKIE_DOTDOT && add_dot(&state, "..", parent, META_COOKIE_DOTDOT))
		goto out_done;
	err = meta_txn_begin(vfs->vault->meta, false, &txn);
	if (err)
		goto out_put;
	uint64_t after = off > META_COOKIE_DOTDOT ? (uint64_t)off : META_COOKIE_DOTDOT;
	err = meta_dir_iterate(txn, ino, after, readdir_one, &state);
	meta_txn_abort(txn);
	if (err == 1)
		err = 0;
	if (err == -EBADMSG) {
		log_error("directory %llu: an entry failed authentication",
			  (unsigned long long)ino);
		err = -EIO;
	}
	/* Entries already in the buffer were counted as lookups: they must be sent. */
	if (err && state.used > 0)
		err = 0;
out_done:
	*used = state.used;
out_put:
	node_put(vfs, dir);
	return err;
}
