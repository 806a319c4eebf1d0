/*
 * The mount's audit trail (lib/audit.h, vaultfs-audit(5)): one record per access that
 * changes the namespace or opens, closes or syncs a file, per listing of a directory,
 * per denial, and the mount and unmount. A record says who (uid, gid, pid, process name
 * and executable), what (action, inode, object, key version), where (dataset, mount id)
 * and the result. Paths are PHI: a record carries a keyed hash of the path (so that an
 * auditor can look one up) and the path sealed under a key derived from the dataset's
 * key, never the path itself.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/audit.h"
#include "lib/clock.h"
#include "lib/crypto.h"
#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/secret.h"
#include "lib/vault.h"

#define MOUNT_ID_LEN 16                    /* random bytes, hex in records */
#define PATH_HASH_LEN 32
#define PROC_TEXT_MAX 256

struct vfs_trail {
	struct audit_trail *trail;
	char mount_id[2 * MOUNT_ID_LEN + 1];
	char dataset[POLICY_NAME_MAX + 1];     /* "" for a key-file or ephemeral vault */
	uint32_t path_key_version;             /* the DEK version the path keys come from */
	uint8_t *hash_key;                     /* secret memory; NULL once wiped */
	uint8_t *seal_key;
	pthread_mutex_t keys_lock;
};

static const char *action_of(enum gate_op op)
{
	switch (op) {
	case GATE_MKNOD: return "mknod";
	case GATE_MKDIR: return "mkdir";
	case GATE_UNLINK: return "unlink";
	case GATE_RMDIR: return "rmdir";
	case GATE_SYMLINK: return "symlink";
	case GATE_RENAME: return "rename";
	case GATE_LINK: return "link";
	case GATE_OPEN:
	case GATE_OPEN_WRITE: return "open";
	case GATE_CREATE: return "create";
	case GATE_RELEASE: return "close";
	case GATE_FSYNC: return "fsync";
	case GATE_READDIR: return "readdir";
	case GATE_SETATTR: return "setattr";
	case GATE_SETXATTR: return "setxattr";
	case GATE_REMOVEXATTR: return "removexattr";
	case GATE_READ: return "read";
	case GATE_WRITE: return "write";
	default: return NULL;
	}
}

/* Whether trail_request records op when it succeeds (every refusal is recorded). */
static bool recorded(enum gate_op op)
{
	switch (op) {
	case GATE_READ:
	case GATE_WRITE:
		return false;   /* summed up in the close record */
	case GATE_OPEN:
	case GATE_OPEN_WRITE:
	case GATE_CREATE:
	case GATE_RELEASE:
	case GATE_FSYNC:
		return false;   /* trail_handle, with the handle's opener and counts */
	default:
		return action_of(op) != NULL;
	}
}

int trail_open(struct vfs *vfs, const char *dir, const char *dataset)
{
	struct vfs_trail *t;
	uint8_t *dek = NULL;
	uint8_t id[MOUNT_ID_LEN];
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->keys_lock, NULL);
	crypto_random(id, sizeof(id));
	crypto_to_hex(t->mount_id, sizeof(t->mount_id), id, sizeof(id));
	snprintf(t->dataset, sizeof(t->dataset), "%s", dataset ? dataset : "");
	t->hash_key = secret_alloc(CRYPTO_KEY_LEN);
	t->seal_key = secret_alloc(CRYPTO_KEY_LEN);
	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (!t->hash_key || !t->seal_key || !dek) {
		err = -ENOMEM;
		goto out_free;
	}
	/* The path keys come from the dataset's key: shredding it makes the paths in the
	 * trail unreadable, and the trail still verifies. */
	t->path_key_version = keysource_newest_version(vfs->keys);
	err = keysource_get(vfs->keys, t->path_key_version, dek);
	if (!err)
		err = crypto_prf(t->hash_key, CRYPTO_KEY_LEN, CRYPTO_CTX_AUDIT_PATH_KEY, "", 0, dek);
	if (!err)
		err = crypto_prf(t->seal_key, CRYPTO_KEY_LEN, CRYPTO_CTX_AUDIT_PATH_SEAL, "", 0, dek);
	if (err)
		goto out_free;
	err = audit_open(&t->trail, dir, NULL);
	if (err)
		goto out_free;
	vfs->trail = t;
	t = NULL;
out_free:
	secret_free(dek);
	if (t) {
		secret_free(t->hash_key);
		secret_free(t->seal_key);
		pthread_mutex_destroy(&t->keys_lock);
		free(t);
	}
	return err;
}

int trail_close(struct vfs *vfs)
{
	struct vfs_trail *t = vfs->trail;
	int err;

	if (!t)
		return 0;
	err = audit_close(t->trail);
	trail_wipe_keys(vfs);
	pthread_mutex_destroy(&t->keys_lock);
	free(t);
	vfs->trail = NULL;
	return err;
}

void trail_wipe_keys(struct vfs *vfs)
{
	struct vfs_trail *t = vfs->trail;

	if (!t)
		return;
	pthread_mutex_lock(&t->keys_lock);
	secret_free(t->hash_key);
	secret_free(t->seal_key);
	t->hash_key = t->seal_key = NULL;
	pthread_mutex_unlock(&t->keys_lock);
}

int trail_ok(struct vfs *vfs)
{
	return vfs->trail ? audit_ok(vfs->trail->trail) : 0;
}

int trail_sync(struct vfs *vfs)
{
	return vfs->trail ? audit_sync(vfs->trail->trail) : 0;
}

/* First line of /proc/PID/NAME (comm), or the target of /proc/PID/exe. */
static void proc_text(pid_t pid, const char *name, char *out, size_t len)
{
	char path[64];
	ssize_t n;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	if (strcmp(name, "exe") == 0) {
		n = readlink(path, out, len - 1);
		out[n > 0 ? n : 0] = '\0';
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/*
 * A process's name and executable, looked up once a second at most: a job opening
 * thousands of files would otherwise pay four system calls per record. A pid reused
 * within that second could be named after its predecessor.
 */
#define PROCESS_CACHE_SIZE 32
#define PROCESS_CACHE_MS 1000

struct process_names {
	pid_t pid;
	struct timespec looked_up;   /* CLOCK_MONOTONIC */
	char comm[PROC_TEXT_MAX];
	char exe[PROC_TEXT_MAX];
};

static struct process_names process_cache[PROCESS_CACHE_SIZE];
static pthread_mutex_t process_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void process_names(pid_t pid, char comm[PROC_TEXT_MAX], char exe[PROC_TEXT_MAX])
{
	struct process_names *entry = &process_cache[(unsigned)pid % PROCESS_CACHE_SIZE];

	pthread_mutex_lock(&process_cache_lock);
	if (entry->pid != pid || clock_ms_since(CLOCK_MONOTONIC, &entry->looked_up) >=
				 PROCESS_CACHE_MS) {
		entry->pid = pid;
		clock_gettime(CLOCK_MONOTONIC, &entry->looked_up);
		proc_text(pid, "comm", entry->comm, sizeof(entry->comm));
		proc_text(pid, "exe", entry->exe, sizeof(entry->exe));
	}
	memcpy(comm, entry->comm, PROC_TEXT_MAX);
	memcpy(exe, entry->exe, PROC_TEXT_MAX);
	pthread_mutex_unlock(&process_cache_lock);
}

static void add_who(struct audit_record *r, uid_t uid, gid_t gid, pid_t pid)
{
	char comm[PROC_TEXT_MAX], exe[PROC_TEXT_MAX];

	audit_add_u64(r, "uid", uid);
	audit_add_u64(r, "gid", gid);
	audit_add_i64(r, "pid", pid);
	if (pid <= 0) {
		audit_add_text(r, "comm", "kernel");  /* writeback, readahead */
		return;
	}
	process_names(pid, comm, exe);
	if (comm[0])
		audit_add_text(r, "comm", comm);
	if (exe[0])
		audit_add_text(r, "exe", exe);
}

static void add_where(struct vfs_trail *t, struct audit_record *r)
{
	if (t->dataset[0])
		audit_add_text(r, "dataset", t->dataset);
	audit_add_text(r, "mount", t->mount_id);
}

/* The path as keyed hash and sealed copy under field names prefix_hash, prefix_sealed.
 * Nothing when the path is unknown or the keys are gone (revoked). */
static void add_path(struct vfs_trail *t, struct audit_record *r, const char *hash_key,
		     const char *sealed_key, const char *path)
{
	enum crypto_cipher cipher = CRYPTO_XCHACHA20POLY1305;
	size_t len = path ? strlen(path) : 0, sealed_len;
	uint8_t hash[PATH_HASH_LEN], *sealed;
	char hex[2 * (AUDIT_TEXT_MAX / 2) + 1];

	if (!path || len > AUDIT_TEXT_MAX / 2 - 64)
		return;
	sealed_len = len + crypto_seal_overhead(cipher);
	sealed = malloc(sealed_len);
	if (!sealed)
		return;
	pthread_mutex_lock(&t->keys_lock);
	if (t->hash_key &&
	    crypto_prf(hash, sizeof(hash), CRYPTO_CTX_AUDIT_PATH_HASH, path, len, t->hash_key) == 0 &&
	    crypto_seal(sealed, sealed_len, (const uint8_t *)path, len,
			(const uint8_t *)t->mount_id, strlen(t->mount_id), cipher, t->seal_key) == 0) {
		pthread_mutex_unlock(&t->keys_lock);
		crypto_to_hex(hex, sizeof(hex), hash, sizeof(hash));
		audit_add_text(r, hash_key, hex);
		crypto_to_hex(hex, sizeof(hex), sealed, sealed_len);
		audit_add_text(r, sealed_key, hex);
	} else {
		pthread_mutex_unlock(&t->keys_lock);
	}
	free(sealed);
}

static void add_object(struct audit_record *r, struct vfs *vfs, uint64_t ino)
{
	struct vnode *node;
	char hex[2 * OBJECT_ID_LEN + 1];

	audit_add_u64(r, "ino", ino);
	if (node_get(vfs, ino, &node) != 0)
		return;
	pthread_rwlock_rdlock(&node->lock);
	if (S_ISREG(node->rec.mode)) {
		crypto_to_hex(hex, sizeof(hex), node->rec.object_id, OBJECT_ID_LEN);
		audit_add_text(r, "object", hex);
		audit_add_u64(r, "key_version", node->rec.key_version);
	}
	pthread_rwlock_unlock(&node->lock);
	node_put(vfs, node);
}

static void append(struct vfs *vfs, const struct audit_record *r)
{
	/* A record that cannot be queued is the trail's failure: audit_ok reports it and
	 * the gate refuses what follows. */
	(void)audit_append(vfs->trail->trail, r);
}

void trail_request(struct vfs *vfs, fuse_req_t req, enum gate_op op, uint64_t ino,
		   const char *name, uint64_t ino2, const char *name2, int result)
{
	struct vfs_trail *t = vfs->trail;
	bool denied = result == -EACCES || result == -EPERM;
	const struct fuse_ctx *ctx;
	struct audit_record r;
	char *path;

	if (!t || (!result && !recorded(op)) || (result && !denied && !action_of(op)))
		return;
	ctx = fuse_req_ctx(req);
	audit_record_init(&r, action_of(op) ? action_of(op) : gate_op_name(op));
	add_where(t, &r);
	add_who(&r, ctx->uid, ctx->gid, ctx->pid);
	/* The entry a namespace request names, else the inode. */
	if (name) {
		audit_add_u64(&r, "parent", ino);
	} else {
		add_object(&r, vfs, ino);
	}
	path = node_path(vfs, ino, name);
	add_path(t, &r, "path_hash", "path_sealed", path);
	free(path);
	if (name2) {
		audit_add_u64(&r, "parent2", ino2);
		path = node_path(vfs, ino2, name2);
		add_path(t, &r, "path2_hash", "path2_sealed", path);
		free(path);
	} else if (ino2) {
		/* link: the inode linked */
		add_object(&r, vfs, ino2);
	}
	audit_add_result(&r, result);
	if (denied)
		audit_add_text(&r, "rule", "policy");
	append(vfs, &r);
}

void trail_handle(struct vfs *vfs, fuse_req_t req, enum gate_op op,
		  const struct vfs_handle *handle, int flags, int result)
{
	struct vfs_trail *t = vfs->trail;
	struct audit_record r;
	char *path;

	if (!t || !action_of(op))
		return;
	audit_record_init(&r, action_of(op));
	add_where(t, &r);
	/* Who opened it: a close or an fsync may come from the kernel, on the opener's
	 * behalf (whose process may be gone by then: no comm or exe). */
	if (handle) {
		add_who(&r, handle->uid, handle->gid, handle->pid);
		add_object(&r, vfs, handle->node->ino);
		path = node_path(vfs, handle->node->ino, NULL);
		add_path(t, &r, "path_hash", "path_sealed", path);
		free(path);
	} else if (req) {
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		add_who(&r, ctx->uid, ctx->gid, ctx->pid);
	}
	if (op == GATE_OPEN || op == GATE_OPEN_WRITE || op == GATE_CREATE)
		audit_add_u64(&r, "flags", (unsigned)flags);
	if (op == GATE_RELEASE && handle) {
		audit_add_u64(&r, "bytes_read", __atomic_load_n(&handle->bytes_read, __ATOMIC_RELAXED));
		audit_add_u64(&r, "bytes_written",
			      __atomic_load_n(&handle->bytes_written, __ATOMIC_RELAXED));
	}
	audit_add_result(&r, result);
	append(vfs, &r);
}

void trail_event(struct vfs *vfs, const char *action, const char *detail, int result)
{
	struct vfs_trail *t = vfs->trail;
	struct audit_record r;

	if (!t)
		return;
	audit_record_init(&r, action);
	add_where(t, &r);
	add_who(&r, getuid(), getgid(), getpid());
	if (detail)
		audit_add_text(&r, "detail", detail);
	audit_add_result(&r, result);
	append(vfs, &r);
}
