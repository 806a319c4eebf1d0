/*
 * The FUSE low-level callbacks. Each one passes the gate, calls the do_*() that does
 * the work, and replies; nothing here touches the store or the objects directly.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "lib/log.h"
#include "lib/store.h"
#include "lib/vault.h"

#define SCRATCH_SLOTS 3
enum { SCRATCH_REPLY = 2 };

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

struct scratch {
	uint8_t *buf[SCRATCH_SLOTS];
	size_t len[SCRATCH_SLOTS];
};

static void scratch_free(void *arg)
{
	struct scratch *scratch = arg;
	for (int i = 0; i < SCRATCH_SLOTS; i++)
		free(scratch->buf[i]);
	free(scratch);
}

static void scratch_key_create(void)
{
	(void)pthread_key_create(&scratch_key, scratch_free);
}

uint8_t *scratch_get(int slot, size_t len)
{
	struct scratch *scratch;

	pthread_once(&scratch_once, scratch_key_create);
	scratch = pthread_getspecific(scratch_key);
	if (!scratch) {
		scratch = calloc(1, sizeof(*scratch));
		if (!scratch || pthread_setspecific(scratch_key, scratch) != 0) {
			free(scratch);
			return NULL;
		}
	}
	if (scratch->len[slot] < len) {
		/* Buffers only grow, so a pointer stays valid for the whole request. */
		uint8_t *grown = realloc(scratch->buf[slot], len);
		if (!grown)
			return NULL;
		scratch->buf[slot] = grown;
		scratch->len[slot] = len;
	}
	return scratch->buf[slot];
}

static struct vfs *vfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct vfs_handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct vfs_handle *)(uintptr_t)fi->fh;
}

static void reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, -err);
}

/* The end of an open file: its vnode's open count, its close record, its pin, then the
 * handle. */
static int release_handle(struct vfs *vfs, fuse_req_t req, struct vfs_handle *handle)
{
	int err = do_release(vfs, handle->node);

	trail_handle(vfs, req, GATE_RELEASE, handle, 0, err);
	node_put(vfs, handle->node);
	gate_handle_free(handle);
	return err;
}

static void vfs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct vfs *vfs = userdata;

	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	vfs->kernel_times = (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* Only this daemon changes the backing store, so cached pages stay valid. But on a
	 * mount several users share under a policy (attributes never cached), the kernel
	 * then asks for the attributes, through the reader's handle, before every read
	 * from its page cache: a user who lost access is refused there even when another
	 * user brought the pages back (the cache is one per file). */
	if (vfs->access && vfs->entry_timeout == 0 && (conn->capable & FUSE_CAP_AUTO_INVAL_DATA))
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	else
		conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	conn->max_write = VFS_MAX_REQUEST;
	conn->max_readahead = VFS_MAX_REQUEST;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void vfs_op_destroy(void *userdata)
{
	struct vfs *vfs = userdata;
	int err = node_flush_all(vfs);
	if (err)
		log_error("final metadata flush failed: %s", strerror(-err));
}

static void vfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vfs *vfs = vfs_of(req);
	struct fuse_entry_param e;
	int err = gate_enter(vfs, req, GATE_LOOKUP, parent, name);

	if (!err)
		err = do_lookup(vfs, parent, name, &e);
	gate_leave(vfs, req, GATE_LOOKUP, parent, name, err);
	if (err == -ENOENT) {
		/* A negative entry the kernel may cache: every create passes through it. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = vfs->entry_timeout;
		fuse_reply_entry(req, &e);
	} else if (err) {
		reply_err(req, err);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void vfs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(vfs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void vfs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(vfs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void vfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	struct stat st;
	/* Through a handle: the kernel about to read or write it (see vfs_op_init), on
	 * behalf of whoever opened it. */
	int err = fi && fi->fh ? gate_enter_handle(vfs, GATE_READ, handle_of(fi))
			       : gate_enter(vfs, req, GATE_GETATTR, ino, NULL);

	if (!err)
		err = do_getattr(vfs, ino, &st);
	gate_leave(vfs, req, GATE_GETATTR, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, &st, vfs->entry_timeout);
}

static void vfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			   struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	struct stat st;
	/* Through a handle (ftruncate, O_TRUNC, the kernel flushing cached times): decided
	 * by who opened it, like a write. */
	int err = fi && fi->fh ? gate_enter_handle(vfs, GATE_SETATTR, handle_of(fi))
			       : gate_enter(vfs, req, GATE_SETATTR, ino, NULL);

	if (!err)
		err = do_setattr(vfs, ino, attr, to_set, &st);
	gate_leave(vfs, req, GATE_SETATTR, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, &st, vfs->entry_timeout);
}

static void vfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vfs *vfs = vfs_of(req);
	char target[META_SYMLINK_MAX + 1];
	int err = gate_enter(vfs, req, GATE_READLINK, ino, NULL);

	if (!err)
		err = do_readlink(vfs, ino, target, sizeof(target));
	gate_leave(vfs, req, GATE_READLINK, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_readlink(req, target);
}

static void make_node(fuse_req_t req, enum gate_op op, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev, const char *target)
{
	struct vfs *vfs = vfs_of(req);
	struct fuse_entry_param e;
	int err = gate_enter(vfs, req, op, parent, name);

	if (!err)
		err = do_mknod(vfs, fuse_req_ctx(req), parent, name, mode, rdev, target, &e, NULL);
	gate_leave(vfs, req, op, parent, name, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void vfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 dev_t rdev)
{
	make_node(req, GATE_MKNOD, parent, name, mode, rdev, NULL);
}

static void vfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, GATE_MKDIR, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void vfs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			   const char *name)
{
	make_node(req, GATE_SYMLINK, parent, name, S_IFLNK | 0777, 0, link);
}

static void remove_name(fuse_req_t req, enum gate_op op, fuse_ino_t parent, const char *name)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter(vfs, req, op, parent, name);

	if (!err)
		err = do_unlink(vfs, parent, name, op == GATE_RMDIR);
	gate_leave(vfs, req, op, parent, name, err);
	reply_err(req, err);
}

static void vfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, GATE_UNLINK, parent, name);
}

static void vfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, GATE_RMDIR, parent, name);
}

static void vfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter(vfs, req, GATE_RENAME, parent, name);

	if (!err)
		err = gate_enter(vfs, req, GATE_RENAME, newparent, newname);
	if (!err)
		err = gate_check_rename(vfs, req, parent, name, newparent, newname, flags);

	if (!err)
		err = do_rename(vfs, parent, name, newparent, newname, flags);
	trail_request(vfs, req, GATE_RENAME, parent, name, newparent, newname, err);
	reply_err(req, err);
}

static void vfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
			const char *newname)
{
	struct vfs *vfs = vfs_of(req);
	struct fuse_entry_param e;
	int err = gate_enter(vfs, req, GATE_READ, ino, NULL);

	if (!err)
		err = gate_enter(vfs, req, GATE_LINK, newparent, newname);
	if (!err)
		err = gate_check_link(vfs, req, ino, newparent, newname);

	if (!err)
		err = do_link(vfs, ino, newparent, newname, &e);
	trail_request(vfs, req, GATE_LINK, newparent, newname, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void vfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	struct vfs_handle *handle = NULL;
	struct vnode *node = NULL;
	bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int err = gate_enter(vfs, req, writes ? GATE_OPEN_WRITE : GATE_OPEN, ino, NULL);

	if (!err && vfs->read_only && (fi->flags & O_ACCMODE) != O_RDONLY)
		err = -EROFS;
	if (!err)
		err = node_get(vfs, ino, &node);
	if (!err) {
		err = gate_handle_new(vfs, req, node, fi->flags, &handle);
		if (!err)
			err = do_open(vfs, node, fi->flags);
		if (err) {
			gate_handle_free(handle);
			node_put(vfs, node);
		}
	}
	if (err) {
		gate_leave(vfs, req, writes ? GATE_OPEN_WRITE : GATE_OPEN, ino, NULL, err);
		reply_err(req, err);
		return;
	}
	trail_handle(vfs, req, GATE_OPEN, handle, fi->flags, 0);
	fi->fh = (uintptr_t)handle;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		release_handle(vfs, req, handle);  /* interrupted: never released by the kernel */
}

static void vfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			  struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	struct fuse_entry_param e;
	struct vfs_handle *handle = NULL;
	struct vnode *node = NULL;
	int err = gate_enter(vfs, req, GATE_CREATE, parent, name);

	if (!err)
		err = do_mknod(vfs, fuse_req_ctx(req), parent, name, S_IFREG | (mode & 07777), 0,
			       NULL, &e, &node);
	if (!err) {
		err = gate_handle_new(vfs, req, node, fi->flags, &handle);
		if (!err)
			err = do_open(vfs, node, fi->flags);
		if (err) {
			gate_handle_free(handle);
			node_forget(vfs, node->ino, 1);
			node_put(vfs, node);
		}
	}
	if (err) {
		gate_leave(vfs, req, GATE_CREATE, parent, name, err);
		reply_err(req, err);
		return;
	}
	trail_handle(vfs, req, GATE_CREATE, handle, fi->flags, 0);
	fi->fh = (uintptr_t)handle;
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		release_handle(vfs, req, handle);
}

static void vfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	uint8_t *buf = NULL;
	size_t done = 0;
	int err = gate_enter_handle(vfs, GATE_READ, handle_of(fi));

	if (!err) {
		buf = scratch_get(SCRATCH_REPLY, size ? size : 1);
		err = buf ? do_read(vfs, handle_of(fi)->node, buf, size, off, &done) : -ENOMEM;
	}
	if (!err)
		__atomic_add_fetch(&handle_of(fi)->bytes_read, done, __ATOMIC_RELAXED);
	gate_leave(vfs, req, GATE_READ, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_buf(req, (const char *)buf, done);
}

static void vfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter_handle(vfs, GATE_WRITE, handle_of(fi));

	if (!err)
		err = vfs->read_only ? -EROFS
				     : do_write(vfs, handle_of(fi)->node, (const uint8_t *)buf, size,
						off);
	if (!err)
		__atomic_add_fetch(&handle_of(fi)->bytes_written, size, __ATOMIC_RELAXED);
	gate_leave(vfs, req, GATE_WRITE, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_write(req, size);
}

static void vfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			     off_t length, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter_handle(vfs, GATE_WRITE, handle_of(fi));

	if (!err)
		err = vfs->read_only ? -EROFS
				     : do_fallocate(vfs, handle_of(fi)->node, mode, offset, length);
	gate_leave(vfs, req, GATE_WRITE, ino, NULL, err);
	reply_err(req, err);
}

/* With the writeback cache the kernel keeps its own size and times but not st_blocks:
 * once written blocks are on their way, have it fetch the attributes again. Only the
 * attributes (offset < 0), so no page lock is taken and this is safe inside a request. */
static void refresh_kernel_attributes(struct vfs *vfs, struct vnode *node)
{
	if (!node->attr_stale)
		return;
	node->attr_stale = false;
	(void)fuse_lowlevel_notify_inval_inode(vfs->session, node->ino, -1, 0);
}

static void vfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	struct vnode *node = handle_of(fi)->node;
	int err = gate_enter_handle(vfs, GATE_FLUSH, handle_of(fi));

	if (!err)
		err = do_flush(vfs, node);
	if (!err)
		refresh_kernel_attributes(vfs, node);
	gate_leave(vfs, req, GATE_FLUSH, ino, NULL, err);
	reply_err(req, err);
}

static void vfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	int err;

	/* A release is never refused: the handle must go whatever the policy says. Its
	 * close record is durable before the answer. */
	(void)ino;
	err = release_handle(vfs, req, handle_of(fi));
	int synced = trail_sync(vfs);
	reply_err(req, err ? err : synced);
}

static void vfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter_handle(vfs, GATE_FSYNC, handle_of(fi));

	if (!err)
		err = do_fsync(vfs, handle_of(fi)->node, datasync != 0);
	if (err)
		gate_leave(vfs, req, GATE_FSYNC, ino, NULL, err);
	else
		trail_handle(vfs, req, GATE_FSYNC, handle_of(fi), 0, 0);
	/* What fsync returned for is recorded durably before it returns. */
	int synced = trail_sync(vfs);
	if (!err)
		err = synced;
	reply_err(req, err);
}

static void vfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter(vfs, req, GATE_OPENDIR, ino, NULL);

	gate_leave(vfs, req, GATE_OPENDIR, ino, NULL, err);
	if (err) {
		reply_err(req, err);
		return;
	}
	fi->fh = 0;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void list_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct vfs *vfs = vfs_of(req);
	char *buf = NULL;
	size_t used = 0;
	int err = gate_enter(vfs, req, GATE_READDIR, ino, NULL);

	if (!err) {
		buf = (char *)scratch_get(SCRATCH_REPLY, size ? size : 1);
		err = buf ? do_readdir(vfs, req, ino, size, off, plus, buf, &used) : -ENOMEM;
	}
	/* One record per listing, not per chunk of it. */
	if (off == 0 || err)
		gate_leave(vfs, req, GATE_READDIR, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_buf(req, buf, used);
}

static void vfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	list_directory(req, ino, size, off, false);
}

static void vfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			       struct fuse_file_info *fi)
{
	(void)fi;
	list_directory(req, ino, size, off, true);
}

static void vfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void vfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			    struct fuse_file_info *fi)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter(vfs, req, GATE_FSYNC, ino, NULL);

	(void)datasync;
	(void)fi;
	if (!err && !vfs->read_only)
		err = node_flush_all(vfs);
	gate_leave(vfs, req, GATE_FSYNC, ino, NULL, err);
	reply_err(req, err);
}

static void vfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vfs *vfs = vfs_of(req);
	struct statvfs st;
	int err = gate_enter(vfs, req, GATE_STATFS, ino, NULL);

	if (!err)
		err = do_statfs(vfs, &st);
	gate_leave(vfs, req, GATE_STATFS, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else
		fuse_reply_statfs(req, &st);
}

static void vfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			    const char *value, size_t size, int flags)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter(vfs, req, GATE_SETXATTR, ino, NULL);

	if (!err)
		err = do_setxattr(vfs, ino, name, value, size, flags);
	gate_leave(vfs, req, GATE_SETXATTR, ino, NULL, err);
	reply_err(req, err);
}

static void vfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct vfs *vfs = vfs_of(req);
	uint8_t *value = NULL;
	size_t len = 0;
	int err = gate_enter(vfs, req, GATE_GETXATTR, ino, NULL);

	if (!err)
		err = do_getxattr(vfs, ino, name, &value, &len);
	gate_leave(vfs, req, GATE_GETXATTR, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, (const char *)value, len);
	free(value);
}

static void vfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct vfs *vfs = vfs_of(req);
	char *buf = NULL;
	size_t needed = 0;
	int err = gate_enter(vfs, req, GATE_LISTXATTR, ino, NULL);

	if (!err && size) {
		buf = (char *)scratch_get(SCRATCH_REPLY, size);
		if (!buf)
			err = -ENOMEM;
	}
	if (!err)
		err = do_listxattr(vfs, ino, buf, size, &needed);
	gate_leave(vfs, req, GATE_LISTXATTR, ino, NULL, err);
	if (err)
		reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, needed);
	else
		fuse_reply_buf(req, buf, needed);
}

static void vfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct vfs *vfs = vfs_of(req);
	int err = gate_enter(vfs, req, GATE_REMOVEXATTR, ino, NULL);

	if (!err)
		err = do_removexattr(vfs, ino, name);
	gate_leave(vfs, req, GATE_REMOVEXATTR, ino, NULL, err);
	reply_err(req, err);
}

const struct fuse_lowlevel_ops vaultfs_ops = {
	.init = vfs_op_init,
	.destroy = vfs_op_destroy,
	.lookup = vfs_op_lookup,
	.forget = vfs_op_forget,
	.forget_multi = vfs_op_forget_multi,
	.getattr = vfs_op_getattr,
	.setattr = vfs_op_setattr,
	.readlink = vfs_op_readlink,
	.mknod = vfs_op_mknod,
	.mkdir = vfs_op_mkdir,
	.symlink = vfs_op_symlink,
	.unlink = vfs_op_unlink,
	.rmdir = vfs_op_rmdir,
	.rename = vfs_op_rename,
	.link = vfs_op_link,
	.open = vfs_op_open,
	.create = vfs_op_create,
	.read = vfs_op_read,
	.write = vfs_op_write,
	.fallocate = vfs_op_fallocate,
	.flush = vfs_op_flush,
	.release = vfs_op_release,
	.fsync = vfs_op_fsync,
	.opendir = vfs_op_opendir,
	.readdir = vfs_op_readdir,
	.readdirplus = vfs_op_readdirplus,
	.releasedir = vfs_op_releasedir,
	.fsyncdir = vfs_op_fsyncdir,
	.statfs = vfs_op_statfs,
	.setxattr = vfs_op_setxattr,
	.getxattr = vfs_op_getxattr,
	.listxattr = vfs_op_listxattr,
	.removexattr = vfs_op_removexattr,
};
