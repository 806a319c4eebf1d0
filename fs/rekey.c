/*
 * Rekeying a mounted vault: when the key agent's renewal answer asks for it (lease.c),
 * a thread re-seals old metadata values, copies every file still under an older key
 * version into a new object through the inode table (so open files, cached records and
 * concurrent writers stay consistent: each file is rekeyed under its vnode write lock),
 * sweeps objects left by an interrupted run and moves the header's key check. Progress
 * goes back to the agent in the next renewals.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/protocol.h"
#include "lib/rekey.h"
#include "lib/store.h"
#include "lib/vault.h"

#define RESEAL_BATCH 256
/* Old objects waiting for a store sync before they are unlinked. */
#define UNLINK_BATCH 128
/* The sweep spares objects changed this recently: a file being created or re-encrypted
 * right now has an object its record does not name yet. */
#define SWEEP_MARGIN_S 60

struct vfs_rekey {
	pthread_mutex_t lock;
	pthread_t thread;
	bool joinable;
	bool stop;                      /* guarded by lock */
	struct protocol_rekey status;   /* guarded by lock */
	/* The run's own. */
	struct vfs *vfs;
	uint8_t (*unlink)[OBJECT_ID_LEN];
	size_t unlink_count;
};

static bool advance(struct vfs_rekey *r, uint64_t done)
{
	bool stop;

	pthread_mutex_lock(&r->lock);
	r->status.done += done;
	if (r->status.done > r->status.total)
		r->status.done = r->status.total;
	stop = r->stop;
	pthread_mutex_unlock(&r->lock);
	return stop;
}

static int flush_unlinks(struct vfs_rekey *r)
{
	struct vault *vault = r->vfs->vault;
	int err;

	if (r->unlink_count == 0)
		return 0;
	err = store_sync(vault->store);
	if (err)
		return err;
	for (size_t i = 0; i < r->unlink_count; i++)
		(void)vault_object_unlink(vault, r->unlink[i]);
	r->unlink_count = 0;
	return 0;
}

/* Rekey one file through its vnode: 0 (also when it went away or was rekeyed by a write
 * meanwhile), -EIO for a damaged object, -errno. */
static int rekey_file(struct vfs_rekey *r, uint64_t ino, uint32_t version)
{
	struct vfs *vfs = r->vfs;
	struct vnode *node;
	int err = node_get(vfs, ino, &node);

	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	pthread_rwlock_wrlock(&node->lock);
	if (!node->removed && S_ISREG(node->rec.mode) && node->rec.key_version < version) {
		err = file_reencrypt(vfs, node, r->unlink[r->unlink_count]);
		if (!err)
			r->unlink_count++;
	}
	pthread_rwlock_unlock(&node->lock);
	node_put(vfs, node);
	if (!err && r->unlink_count == UNLINK_BATCH)
		err = flush_unlinks(r);
	return err;
}

static int run(struct vfs_rekey *r, uint32_t version)
{
	struct vault *vault = r->vfs->vault;
	time_t start = time(NULL);
	uint64_t files, values, ino, after = 0, swept;
	bool damaged = false;
	size_t count;
	int err;

	if (r->vfs->read_only)
		return -EROFS;
	if (keysource_newest_version(r->vfs->keys) < version)
		return -ENOKEY;
	err = rekey_count(vault, version, &files, &values);
	if (err)
		return err;
	pthread_mutex_lock(&r->lock);
	r->status.total = files + values;
	pthread_mutex_unlock(&r->lock);
	log_info("rekey to key version %u: %llu files and %llu metadata values to move",
		 (unsigned)version, (unsigned long long)files, (unsigned long long)values);
	do {
		err = rekey_metadata(vault, version, RESEAL_BATCH, &count);
		if (!err && advance(r, count))
			err = -ECANCELED;
	} while (!err && count == RESEAL_BATCH);
	while (!err && (err = rekey_next_file(vault, version, after, &ino)) == 0) {
		after = ino;
		err = rekey_file(r, ino, version);
		if (err == -EIO) {
			damaged = true;
			err = 0;
			continue;
		}
		if (!err && advance(r, 1))
			err = -ECANCELED;
	}
	if (err == -ENOENT)
		err = 0;
	int flushed = flush_unlinks(r);
	if (!err)
		err = flushed;
	if (!err)
		err = rekey_sweep(vault, start - SWEEP_MARGIN_S, &swept);
	if (!err && swept)
		log_info("rekey: removed %llu objects left by an interrupted run",
			 (unsigned long long)swept);
	if (!err && damaged)
		err = -EIO;
	if (!err)
		err = vault_rebind(vault, version);
	if (!err)
		err = store_sync(vault->store);
	return err;
}

static void *rekey_thread(void *arg)
{
	struct vfs_rekey *r = arg;
	uint32_t version = r->status.version;
	int err = run(r, version);

	pthread_mutex_lock(&r->lock);
	r->status.state = err ? PROTOCOL_REKEY_FAILED : PROTOCOL_REKEY_DONE;
	if (!err)
		r->status.done = r->status.total;
	pthread_mutex_unlock(&r->lock);
	if (err == -EIO)
		log_error("rekey to key version %u incomplete: some objects are damaged (logged "
			  "above); they still use older versions", (unsigned)version);
	else if (err)
		log_error("rekey to key version %u failed: %s", (unsigned)version, strerror(-err));
	else
		log_info("rekey to key version %u done", (unsigned)version);
	return NULL;
}

int vfs_rekey_start(struct vfs *vfs, uint32_t version)
{
	struct vfs_rekey *r = vfs->rekey;
	int err;

	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return -ENOMEM;
		r->unlink = malloc(UNLINK_BATCH * sizeof(*r->unlink));
		if (r->unlink == NULL) {
			free(r);
			return -ENOMEM;
		}
		pthread_mutex_init(&r->lock, NULL);
		r->vfs = vfs;
		vfs->rekey = r;
	}
	pthread_mutex_lock(&r->lock);
	bool running = r->status.state == PROTOCOL_REKEY_RUNNING;
	pthread_mutex_unlock(&r->lock);
	if (running)
		return 0;
	if (r->joinable) {
		pthread_join(r->thread, NULL);
		r->joinable = false;
	}
	pthread_mutex_lock(&r->lock);
	r->status = (struct protocol_rekey){ .version = version, .state = PROTOCOL_REKEY_RUNNING };
	r->stop = false;
	pthread_mutex_unlock(&r->lock);
	r->unlink_count = 0;
	err = pthread_create(&r->thread, NULL, rekey_thread, r);
	if (err) {
		pthread_mutex_lock(&r->lock);
		r->status.state = PROTOCOL_REKEY_FAILED;
		pthread_mutex_unlock(&r->lock);
		return -err;
	}
	r->joinable = true;
	return 0;
}

void vfs_rekey_status(struct vfs *vfs, struct protocol_rekey *out)
{
	struct vfs_rekey *r = vfs->rekey;

	memset(out, 0, sizeof(*out));
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	*out = r->status;
	pthread_mutex_unlock(&r->lock);
}

void vfs_rekey_stop(struct vfs *vfs)
{
	struct vfs_rekey *r = vfs->rekey;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_mutex_unlock(&r->lock);
	if (r->joinable)
		pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	free(r->unlink);
	free(r);
	vfs->rekey = NULL;
}
