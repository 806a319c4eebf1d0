/*
 * Rekeying a mounted vault: when the key agent's renewal answer asks for it (lease.c),
 * a thread re-seals old metadata values, copies every file still under an older key
 * version into a new object through the inode table (so open files, cached records and
 * concurrent readers and writers stay consistent: see file_rekey),
 * sweeps objects left by an interrupted run and moves the header's key check. Progress
 * goes back to the agent in the next renewals.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/protocol.h"
#include "lib/rekey.h"

/* The sweep spares objects changed this recently: a file being created or re-encrypted
 * right now has an object its record does not name yet. */
#define SWEEP_MARGIN_S 60

struct vfs_rekey {
	pthread_mutex_t lock;
	pthread_t thread;
	bool joinable;
	bool stop;                      /* guarded by lock */
	struct protocol_rekey status;   /* guarded by lock */
	struct vfs *vfs;
};

static int report(void *arg, const struct rekey_progress *progress)
{
	struct vfs_rekey *r = arg;
	bool stop;

	pthread_mutex_lock(&r->lock);
	r->status.done = progress->done;
	r->status.total = progress->total;
	stop = r->stop;
	pthread_mutex_unlock(&r->lock);
	return stop ? -ECANCELED : 0;
}

/* The run's file step (rekey_file_fn): through the file's vnode (file_rekey), so open
 * files, cached records and concurrent readers and writers stay consistent. */
static int rekey_file(void *arg, struct vault *vault, uint64_t ino, uint32_t version,
		      uint8_t old_id[OBJECT_ID_LEN])
{
	struct vfs *vfs = arg;
	struct vnode *node;
	int err = node_get(vfs, ino, &node);

	(void)vault;
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = file_rekey(vfs, node, version, old_id);
	node_put(vfs, node);
	return err;
}

static int run(struct vfs_rekey *r, uint32_t version)
{
	struct rekey_plan plan = {
		.version = version,
		.file = rekey_file,
		.file_arg = r->vfs,
		.sweep_margin = SWEEP_MARGIN_S,
		.report = report,
		.report_arg = r,
	};

	if (r->vfs->read_only)
		return -EROFS;
	log_info("rekey to key version %u started", (unsigned)version);
	return rekey_run(r->vfs->vault, &plan);
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
	free(r);
	vfs->rekey = NULL;
}
