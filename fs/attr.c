/*
 * Attributes: getattr/setattr (mode, owner, size, times), symlink targets, extended
 * attributes and statfs. Attribute changes are stored at once.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "lib/vault.h"

int do_getattr(struct vfs *vfs, uint64_t ino, struct stat *st)
{
	struct vnode *node;
	int err = node_get(vfs, ino, &node);

	if (err)
		return err;
	pthread_rwlock_rdlock(&node->lock);
	node_fill_stat(vfs, &node->rec, st);
	pthread_rwlock_unlock(&node->lock);
	node_put(vfs, node);
	return 0;
}

static void set_time(struct timespec *field, const struct timespec *value, bool now,
		     const struct timespec *clock)
{
	*field = now ? *clock : *value;
}

int do_setattr(struct vfs *vfs, uint64_t ino, const struct stat *attr, int to_set,
	       struct stat *st)
{
	struct vnode *node;
	struct timespec now;
	int err;

	if (vfs->read_only)
		return -EROFS;
	err = node_get(vfs, ino, &node);
	if (err)
		return err;
	pthread_rwlock_wrlock(&node->lock);
	node_time_now(&now);
	/* With the writeback cache the kernel keeps a regular file's mtime and ctime: it
	 * sends them whenever it changes them, and only those may be stored (a truncate to
	 * the same size, for one, changes neither). */
	bool kernel_times = vfs->kernel_times && S_ISREG(node->rec.mode);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (S_ISDIR(node->rec.mode))
			err = -EISDIR;
		else if (!S_ISREG(node->rec.mode))
			err = -EINVAL;
		else
			err = file_truncate(vfs, node, (uint64_t)attr->st_size);
		if (err)
			goto out_unlock;
		if (!kernel_times)
			node->rec.mtime = now;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		node->rec.mode = (node->rec.mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		node->rec.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		node->rec.gid = attr->st_gid;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
		set_time(&node->rec.atime, &attr->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW, &now);
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		set_time(&node->rec.mtime, &attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW, &now);
	if (to_set & FUSE_SET_ATTR_CTIME)
		node->rec.ctime = attr->st_ctim;
	else if (!kernel_times)
		node->rec.ctime = now;
	/* A size change is stored at once (the object changed with it); other attributes
	 * are stored with the next flush, close, fsync or periodic flush, like ext4's
	 * journal: tar and cp set times and modes on every file they make. */
	if (to_set & FUSE_SET_ATTR_SIZE)
		err = node_save(vfs, node);
	else
		node->dirty = true;
	if (!err)
		node_fill_stat(vfs, &node->rec, st);
out_unlock:
	pthread_rwlock_unlock(&node->lock);
	node_put(vfs, node);
	return err;
}

int do_readlink(struct vfs *vfs, uint64_t ino, char *buf, size_t size)
{
	struct vnode *node;
	int err = node_get(vfs, ino, &node);

	if (err)
		return err;
	pthread_rwlock_rdlock(&node->lock);
	if (!S_ISLNK(node->rec.mode) || !node->rec.symlink) {
		err = -EINVAL;
	} else if (node->rec.size >= size) {
		err = -ENAMETOOLONG;
	} else {
		memcpy(buf, node->rec.symlink, node->rec.size);
		buf[node->rec.size] = '\0';
	}
	pthread_rwlock_unlock(&node->lock);
	node_put(vfs, node);
	return err;
}

/* The namespaces vaultfs stores: user.* for applications, trusted.* for root. Others
 * (security.*, system.posix_acl_*) are refused, so the kernel falls back to mode bits. */
static bool stored_namespace(const char *name)
{
	return strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0;
}

/* Run one xattr change and touch ctime, in one transaction. */
static int xattr_change(struct vfs *vfs, uint64_t ino, const char *name, const char *value,
			size_t size, int flags, bool remove)
{
	struct meta_txn *txn;
	struct vnode *node;
	struct timespec old_ctime;
	int err;

	if (vfs->read_only)
		return -EROFS;
	if (strlen(name) > META_XATTR_NAME_MAX)
		return -ERANGE;
	if (!stored_namespace(name))
		return -EOPNOTSUPP;
	if (!remove && size > META_XATTR_VALUE_MAX)
		return -E2BIG;
	err = node_get(vfs, ino, &node);
	if (err)
		return err;
	pthread_rwlock_wrlock(&node->lock);
	old_ctime = node->rec.ctime;
	err = meta_txn_begin(vfs->vault->meta, true, &txn);
	if (err)
		goto out_unlock;
	if (remove)
		err = meta_xattr_del(txn, ino, name);
	else
		err = meta_xattr_set(txn, ino, name, (const uint8_t *)value, size, flags);
	if (err == -ENOENT)
		err = -ENODATA;
	node_time_now(&node->rec.ctime);
	if (!err)
		err = meta_inode_put(txn, &node->rec);
	if (err) {
		meta_txn_abort(txn);
		node->rec.ctime = old_ctime;
	} else {
		err = meta_txn_commit(txn);
	}
out_unlock:
	pthread_rwlock_unlock(&node->lock);
	node_put(vfs, node);
	return err;
}

int do_setxattr(struct vfs *vfs, uint64_t ino, const char *name, const char *value,
		size_t size, int flags)
{
	return xattr_change(vfs, ino, name, value, size, flags, false);
}

int do_removexattr(struct vfs *vfs, uint64_t ino, const char *name)
{
	return xattr_change(vfs, ino, name, NULL, 0, 0, true);
}

int do_getxattr(struct vfs *vfs, uint64_t ino, const char *name, uint8_t **value,
		size_t *size)
{
	struct meta_txn *txn;
	int err;

	if (!stored_namespace(name) || strlen(name) > META_XATTR_NAME_MAX)
		return -ENODATA;
	err = meta_txn_begin(vfs->vault->meta, false, &txn);
	if (err)
		return err;
	err = meta_xattr_get(txn, ino, name, value, size);
	meta_txn_abort(txn);
	return err == -ENOENT ? -ENODATA : err == -EBADMSG ? -EIO : err;
}

int do_listxattr(struct vfs *vfs, uint64_t ino, char *buf, size_t size, size_t *needed)
{
	struct meta_txn *txn;
	int err = meta_txn_begin(vfs->vault->meta, false, &txn);

	if (err)
		return err;
	err = meta_xattr_list(txn, ino, buf, size, needed);
	meta_txn_abort(txn);
	return err == -EBADMSG ? -EIO : err;
}

int do_statfs(struct vfs *vfs, struct statvfs *st)
{
	if (fstatvfs(vfs->vault->dir_fd, st) != 0)
		return -errno;
	st->f_namemax = META_NAME_MAX;
	return 0;
}
