/*
 * The in-memory inode table: one struct vnode per inode the kernel knows about or a
 * request is using. A vnode's record is authoritative while it lives; changes reach the
 * store at once for namespace operations and lazily (flush, fsync, release, the flusher
 * thread) for data writes. An inode with no names left is deleted when its last
 * reference goes.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/extent.h"
#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/secret.h"
#include "lib/vault.h"

#define TABLE_INITIAL_SIZE 1024
#define FLUSH_INTERVAL_SECONDS 5
/* How long the flusher waits for more closes before storing their records. */
#define SAVE_DELAY_MS 10
#define SAVE_BATCH_MAX 256

static size_t bucket_of(const struct vfs *vfs, uint64_t ino)
{
	/* Fibonacci hashing spreads sequential inode numbers. */
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (vfs->table_size - 1);
}

int vfs_init(struct vfs *vfs, struct vault *vault, struct keysource *keys, bool read_only)
{
	memset(vfs, 0, sizeof(*vfs));
	vfs->vault = vault;
	vfs->keys = keys;
	vfs->cipher = (enum crypto_cipher)vault->header.cipher;
	vfs->stride = object_block_stride(vfs->cipher);
	vfs->read_only = read_only;
	vfs->budget_limit = OBJECT_MAX_ENCRYPTIONS;
	vfs->entry_timeout = 3600.0;
	vfs->table_size = TABLE_INITIAL_SIZE;
	vfs->table = calloc(vfs->table_size, sizeof(*vfs->table));
	if (!vfs->table)
		return -ENOMEM;
	pthread_mutex_init(&vfs->table_lock, NULL);
	pthread_mutex_init(&vfs->deks_lock, NULL);
	pthread_rwlock_init(&vfs->paths_lock, NULL);
	pthread_mutex_init(&vfs->flusher_lock, NULL);
	pthread_cond_init(&vfs->flusher_wake, NULL);
	return 0;
}

static void vnode_free(struct vnode *node)
{
	if (node->object_fd >= 0)
		close(node->object_fd);
	object_key_free(node->key);
	meta_inode_release(&node->rec);
	pthread_rwlock_destroy(&node->lock);
	free(node->path);
	free(node);
}

void vfs_release(struct vfs *vfs)
{
	crew_stop(vfs->crew);
	vfs->crew = NULL;
	for (size_t i = 0; i < vfs->table_size; i++) {
		struct vnode *node = vfs->table[i];
		while (node) {
			struct vnode *next = node->next;
			vnode_free(node);
			node = next;
		}
	}
	free(vfs->table);
	free(vfs->save_queue);
	vfs->table = NULL;
	for (int i = 0; i < VFS_DEK_CACHE; i++)
		secret_free(vfs->deks[i]);
	pthread_mutex_destroy(&vfs->deks_lock);
	pthread_rwlock_destroy(&vfs->paths_lock);
	pthread_mutex_destroy(&vfs->table_lock);
	pthread_mutex_destroy(&vfs->flusher_lock);
	pthread_cond_destroy(&vfs->flusher_wake);
}

static struct vnode *table_find(struct vfs *vfs, uint64_t ino)
{
	struct vnode *node = vfs->table[bucket_of(vfs, ino)];
	while (node && node->ino != ino)
		node = node->next;
	return node;
}

static void table_grow(struct vfs *vfs)
{
	size_t old_size = vfs->table_size;
	struct vnode **old = vfs->table;
	struct vnode **grown = calloc(old_size * 2, sizeof(*grown));

	if (!grown)
		return;  /* a longer chain is still correct */
	vfs->table = grown;
	vfs->table_size = old_size * 2;
	for (size_t i = 0; i < old_size; i++) {
		struct vnode *node = old[i];
		while (node) {
			struct vnode *next = node->next;
			size_t b = bucket_of(vfs, node->ino);
			node->next = grown[b];
			grown[b] = node;
			node = next;
		}
	}
	free(old);
}

static void table_insert(struct vfs *vfs, struct vnode *node)
{
	if (vfs->table_count >= vfs->table_size)
		table_grow(vfs);
	size_t b = bucket_of(vfs, node->ino);
	node->next = vfs->table[b];
	vfs->table[b] = node;
	vfs->table_count++;
}

static void table_remove(struct vfs *vfs, struct vnode *node)
{
	struct vnode **link = &vfs->table[bucket_of(vfs, node->ino)];
	while (*link != node)
		link = &(*link)->next;
	*link = node->next;
	vfs->table_count--;
}

static struct vnode *vnode_alloc(void)
{
	struct vnode *node = calloc(1, sizeof(*node));
	if (!node)
		return NULL;
	pthread_rwlock_init(&node->lock, NULL);
	node->object_fd = -1;
	return node;
}

/* Insert node unless ino is there already; returns the pinned vnode in the table. */
static struct vnode *table_adopt(struct vfs *vfs, struct vnode *node)
{
	pthread_mutex_lock(&vfs->table_lock);
	struct vnode *existing = table_find(vfs, node->ino);
	if (existing) {
		existing->pins++;
		pthread_mutex_unlock(&vfs->table_lock);
		vnode_free(node);
		return existing;
	}
	node->pins = 1;
	table_insert(vfs, node);
	pthread_mutex_unlock(&vfs->table_lock);
	return node;
}

int node_get(struct vfs *vfs, uint64_t ino, struct vnode **out)
{
	struct meta_txn *txn;
	struct vnode *node;
	int err;

	pthread_mutex_lock(&vfs->table_lock);
	node = table_find(vfs, ino);
	if (node) {
		node->pins++;
		pthread_mutex_unlock(&vfs->table_lock);
		*out = node;
		return 0;
	}
	pthread_mutex_unlock(&vfs->table_lock);

	node = vnode_alloc();
	if (!node)
		return -ENOMEM;
	node->ino = ino;
	/* The kernel never looks the root up: its path is known from the start. */
	if (ino == META_ROOT_INO && !(node->path = strdup(""))) {
		err = -ENOMEM;
		goto out_free;
	}
	err = meta_txn_begin(vfs->vault->meta, false, &txn);
	if (err)
		goto out_free;
	err = meta_inode_get(txn, ino, &node->rec);
	meta_txn_abort(txn);
	if (err == -EBADMSG) {
		log_error("inode %llu: metadata record failed authentication",
			  (unsigned long long)ino);
		err = -EIO;
	}
	if (err)
		goto out_free;
	*out = table_adopt(vfs, node);
	return 0;

out_free:
	vnode_free(node);
	return err;
}

int node_new(struct vfs *vfs, const struct meta_inode *rec, struct vnode **out)
{
	struct vnode *node = vnode_alloc();
	int err;

	if (!node)
		return -ENOMEM;
	node->ino = rec->ino;
	err = meta_inode_copy(&node->rec, rec);
	if (err) {
		vnode_free(node);
		return err;
	}
	*out = table_adopt(vfs, node);
	return 0;
}

/* The DEK of version in the cache, fetched from the key source on first use (deks_lock
 * held). Returns NULL with *err set when the source fails. */
static const uint8_t *cached_dek(struct vfs *vfs, uint32_t version, int *err)
{
	int slot = 0;
	for (int i = 0; i < VFS_DEK_CACHE; i++) {
		if (vfs->deks[i] && vfs->dek_versions[i] == version)
			return vfs->deks[i];
		if (!vfs->deks[i])
			slot = i;
	}
	if (vfs->deks[slot]) {
		/* Full: versions this old are rare; replace a slot rather than grow. */
		slot = (int)(version % VFS_DEK_CACHE);
		secret_free(vfs->deks[slot]);
		vfs->deks[slot] = NULL;
	}
	uint8_t *dek = secret_alloc(CRYPTO_KEY_LEN);
	if (!dek) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = keysource_get(vfs->keys, version, dek);
	if (*err) {
		secret_free(dek);
		return NULL;
	}
	vfs->deks[slot] = dek;
	vfs->dek_versions[slot] = version;
	return dek;
}

int node_object_key(struct vfs *vfs, const struct object_header *header,
		    struct object_key **out)
{
	int err;

	pthread_mutex_lock(&vfs->deks_lock);
	const uint8_t *dek = cached_dek(vfs, header->key_version, &err);
	if (dek)
		err = object_key_new(out, header, dek);
	pthread_mutex_unlock(&vfs->deks_lock);
	return err;
}

void node_forget_keys(struct vfs *vfs)
{
	struct vnode **nodes = NULL;
	size_t count = 0;

	pthread_mutex_lock(&vfs->deks_lock);
	for (int i = 0; i < VFS_DEK_CACHE; i++) {
		secret_free(vfs->deks[i]);
		vfs->deks[i] = NULL;
	}
	pthread_mutex_unlock(&vfs->deks_lock);

	pthread_mutex_lock(&vfs->table_lock);
	nodes = calloc(vfs->table_count ? vfs->table_count : 1, sizeof(*nodes));
	for (size_t i = 0; nodes && i < vfs->table_size; i++) {
		for (struct vnode *node = vfs->table[i]; node; node = node->next) {
			node->pins++;
			nodes[count++] = node;
		}
	}
	pthread_mutex_unlock(&vfs->table_lock);
	for (size_t i = 0; i < count; i++) {
		pthread_rwlock_wrlock(&nodes[i]->lock);
		object_key_free(nodes[i]->key);
		nodes[i]->key = NULL;
		if (nodes[i]->object_fd >= 0)
			close(nodes[i]->object_fd);
		nodes[i]->object_fd = -1;
		nodes[i]->object_error = -EACCES;
		pthread_rwlock_unlock(&nodes[i]->lock);
		node_put(vfs, nodes[i]);
	}
	free(nodes);
}

void node_lookup_ref(struct vfs *vfs, struct vnode *node)
{
	pthread_mutex_lock(&vfs->table_lock);
	node->nlookup++;
	pthread_mutex_unlock(&vfs->table_lock);
}

static bool unreferenced(const struct vnode *node)
{
	return node->nlookup == 0 && node->opens == 0;
}

void node_put(struct vfs *vfs, struct vnode *node)
{
	pthread_mutex_lock(&vfs->table_lock);
	bool last = node->pins == 1 && unreferenced(node);
	pthread_mutex_unlock(&vfs->table_lock);

	if (last) {
		/* Still pinned by us, so a concurrent node_get finds this vnode, and sees the
		 * state we store here, rather than reading a stale record. */
		pthread_rwlock_wrlock(&node->lock);
		if (node->unlinked && !node->removed) {
			if (!vfs->read_only)
				(void)node_destroy(vfs, node);
		} else if (node->dirty && !node->removed) {
			(void)node_save(vfs, node);
		}
		pthread_rwlock_unlock(&node->lock);
	}

	pthread_mutex_lock(&vfs->table_lock);
	node->pins--;
	bool gone = node->pins == 0 && unreferenced(node) && (!node->dirty || node->removed);
	if (gone)
		table_remove(vfs, node);
	pthread_mutex_unlock(&vfs->table_lock);
	if (gone)
		vnode_free(node);
}

void node_forget(struct vfs *vfs, uint64_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&vfs->table_lock);
	struct vnode *node = table_find(vfs, ino);
	if (!node) {
		pthread_mutex_unlock(&vfs->table_lock);
		return;
	}
	node->nlookup = nlookup > node->nlookup ? 0 : node->nlookup - nlookup;
	node->pins++;
	pthread_mutex_unlock(&vfs->table_lock);
	node_put(vfs, node);
}

/* Store the records of count locked vnodes in one commit. */
static int save_batch(struct vfs *vfs, struct vnode **nodes, size_t count)
{
	struct meta_txn *txn;
	int err;

	err = meta_txn_begin(vfs->vault->meta, true, &txn);
	if (err)
		return err;
	for (size_t i = 0; i < count && !err; i++)
		err = meta_inode_put(txn, &nodes[i]->rec);
	if (err) {
		meta_txn_abort(txn);
		return err;
	}
	err = meta_txn_commit(txn);
	for (size_t i = 0; i < count && !err; i++)
		nodes[i]->dirty = false;
	return err;
}

int node_save(struct vfs *vfs, struct vnode *node)
{
	return node->removed ? 0 : save_batch(vfs, &node, 1);
}

int node_drop_object(struct vfs *vfs, struct vnode *node)
{
	int err = 0;

	node->removed = true;
	node->dirty = false;
	if (S_ISREG(node->rec.mode)) {
		/* Record first, object second: a crash in between leaves an unreferenced
		 * object, never a record without its object. */
		if (node->object_fd >= 0) {
			close(node->object_fd);
			node->object_fd = -1;
		}
		err = vault_object_unlink(vfs->vault, node->rec.object_id);
	}
	return err == -ENOENT ? 0 : err;
}

int node_destroy(struct vfs *vfs, struct vnode *node)
{
	struct meta_txn *txn;
	int err;

	if (node->removed)
		return 0;
	err = meta_txn_begin(vfs->vault->meta, true, &txn);
	if (err)
		return err;
	err = meta_inode_del(txn, node->ino);
	if (err && err != -ENOENT)
		goto out_abort;
	err = meta_xattr_del_all(txn, node->ino);
	if (err && err != -ENOENT)
		goto out_abort;
	(void)meta_orphan_del(txn, node->ino);
	err = meta_txn_commit(txn);
	if (err)
		return err;
	return node_drop_object(vfs, node);

out_abort:
	meta_txn_abort(txn);
	return err;
}

static int collect_orphan(void *arg, uint64_t ino)
{
	struct { uint64_t *inos; size_t count, cap; } *list = arg;
	if (list->count == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		uint64_t *grown = realloc(list->inos, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		list->inos = grown;
		list->cap = cap;
	}
	list->inos[list->count++] = ino;
	return 0;
}

int node_reclaim_orphans(struct vfs *vfs)
{
	struct { uint64_t *inos; size_t count, cap; } list = { 0 };
	struct meta_txn *txn;
	int err;

	err = meta_txn_begin(vfs->vault->meta, false, &txn);
	if (err)
		return err;
	err = meta_orphan_iterate(txn, collect_orphan, &list);
	meta_txn_abort(txn);
	for (size_t i = 0; !err && i < list.count; i++) {
		struct vnode *node;
		int got = node_get(vfs, list.inos[i], &node);
		if (got == -ENOENT) {
			/* Record already gone: only the orphan mark is left. */
			if (!meta_txn_begin(vfs->vault->meta, true, &txn)) {
				(void)meta_orphan_del(txn, list.inos[i]);
				if (meta_txn_commit(txn) != 0)
					log_warn("inode %llu: orphan mark not cleared",
						 (unsigned long long)list.inos[i]);
			}
			continue;
		}
		if (got) {
			err = got;
			break;
		}
		pthread_rwlock_wrlock(&node->lock);
		err = node_destroy(vfs, node);
		pthread_rwlock_unlock(&node->lock);
		node_put(vfs, node);
	}
	if (list.count)
		log_info("reclaimed %zu unlinked inode(s) left open by an earlier run", list.count);
	free(list.inos);
	return err;
}

/* Pin every dirty vnode; returns them (free() the array) and sets *count. */
static struct vnode **pin_dirty(struct vfs *vfs, size_t *count)
{
	struct vnode **dirty = NULL;
	size_t cap = 0;

	*count = 0;
	pthread_mutex_lock(&vfs->table_lock);
	for (size_t i = 0; i < vfs->table_size; i++) {
		for (struct vnode *node = vfs->table[i]; node; node = node->next) {
			if (!node->dirty)
				continue;
			if (*count == cap) {
				size_t grown_cap = cap ? cap * 2 : 64;
				struct vnode **grown = realloc(dirty, grown_cap * sizeof(*grown));
				if (!grown)
					goto out_unlock;  /* the rest at the next flush */
				dirty = grown;
				cap = grown_cap;
			}
			node->pins++;
			dirty[(*count)++] = node;
		}
	}
out_unlock:
	pthread_mutex_unlock(&vfs->table_lock);
	return dirty;
}

/*
 * Store the records of the pinned vnodes in dirty and drop their pins. Those whose lock is
 * free are stored together, SAVE_BATCH_MAX per commit; a vnode whose lock is busy is
 * waited for and stored alone. Locks are taken before the write transaction, as
 * everywhere: whoever holds a transaction never waits for a vnode lock.
 */
static int save_pinned(struct vfs *vfs, struct vnode **dirty, size_t count)
{
	int err = 0;

	for (size_t first = 0; first < count; first += SAVE_BATCH_MAX) {
		size_t end = count - first < SAVE_BATCH_MAX ? count : first + SAVE_BATCH_MAX;
		struct vnode *locked[SAVE_BATCH_MAX];
		size_t n = 0;

		for (size_t i = first; i < end; i++) {
			if (pthread_rwlock_trywrlock(&dirty[i]->lock) != 0)
				continue;
			if (dirty[i]->dirty && !dirty[i]->removed) {
				locked[n++] = dirty[i];
			} else {
				pthread_rwlock_unlock(&dirty[i]->lock);
				node_put(vfs, dirty[i]);
			}
			dirty[i] = NULL;
		}
		int saved = n ? save_batch(vfs, locked, n) : 0;
		if (saved && !err)
			err = saved;
		for (size_t i = 0; i < n; i++) {
			pthread_rwlock_unlock(&locked[i]->lock);
			node_put(vfs, locked[i]);
		}
		for (size_t i = first; i < end; i++) {
			if (!dirty[i])
				continue;
			pthread_rwlock_wrlock(&dirty[i]->lock);
			if (dirty[i]->dirty) {
				saved = node_save(vfs, dirty[i]);
				if (saved && !err)
					err = saved;
			}
			pthread_rwlock_unlock(&dirty[i]->lock);
			node_put(vfs, dirty[i]);
		}
	}
	return err;
}

/* Store every dirty record, without making the store durable. */
static int save_all(struct vfs *vfs)
{
	size_t count;
	struct vnode **dirty = pin_dirty(vfs, &count);
	int err = save_pinned(vfs, dirty, count);

	free(dirty);
	return err;
}

/* Room for one more in the save queue (flusher_lock held). */
static bool queue_room(struct vfs *vfs)
{
	if (vfs->save_count < vfs->save_cap)
		return true;
	size_t cap = vfs->save_cap ? 2 * vfs->save_cap : 64;
	struct vnode **grown = realloc(vfs->save_queue, cap * sizeof(*grown));
	if (!grown)
		return false;
	vfs->save_queue = grown;
	vfs->save_cap = cap;
	return true;
}

int node_save_soon(struct vfs *vfs, struct vnode *node)
{
	bool waiting = true;

	if (!vfs->flusher_running)
		return node_save(vfs, node);
	pthread_mutex_lock(&vfs->flusher_lock);
	if (!node->save_queued && queue_room(vfs)) {
		pthread_mutex_lock(&vfs->table_lock);
		node->pins++;
		pthread_mutex_unlock(&vfs->table_lock);
		node->save_queued = true;
		vfs->save_queue[vfs->save_count++] = node;
		if (vfs->save_count == 1)
			pthread_cond_signal(&vfs->flusher_wake);
	} else if (!node->save_queued) {
		waiting = false;
	}
	pthread_mutex_unlock(&vfs->flusher_lock);
	/* No memory for the queue: store it now. */
	return waiting ? 0 : node_save(vfs, node);
}

/* Store the records of the queued closed files (flusher_lock held, and dropped meanwhile). */
static int save_queued(struct vfs *vfs)
{
	struct vnode **queue = vfs->save_queue;
	size_t count = vfs->save_count;

	vfs->save_queue = NULL;
	vfs->save_count = vfs->save_cap = 0;
	for (size_t i = 0; i < count; i++)
		queue[i]->save_queued = false;
	pthread_mutex_unlock(&vfs->flusher_lock);
	int err = save_pinned(vfs, queue, count);
	free(queue);
	pthread_mutex_lock(&vfs->flusher_lock);
	return err;
}

int node_flush_all(struct vfs *vfs)
{
	int err = save_all(vfs);

	if (vfs->read_only)
		return err;
	/* Object data reaches the disk before the records that point to it, so power loss
	 * at a flush cannot leave records describing blocks the disk never got. */
	int synced = syncfs(vfs->vault->objects_fd) == 0 ? 0 : -errno;
	if (!synced)
		synced = store_sync(vfs->vault->store);
	return err ? err : synced;
}

static int compare_by_ino(const void *a, const void *b)
{
	const struct vnode *x = *(struct vnode *const *)a, *y = *(struct vnode *const *)b;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Sorted, without NULLs and repeats; returns how many are left. */
static int lock_order(struct vnode **sorted, struct vnode **nodes, int count)
{
	int n = 0;
	for (int i = 0; i < count; i++)
		if (nodes[i])
			sorted[n++] = nodes[i];
	qsort(sorted, (size_t)n, sizeof(*sorted), compare_by_ino);
	int unique = 0;
	for (int i = 0; i < n; i++)
		if (!unique || sorted[unique - 1] != sorted[i])
			sorted[unique++] = sorted[i];
	return unique;
}

void node_lock_many(struct vnode **nodes, int count)
{
	struct vnode *sorted[4];
	int n = lock_order(sorted, nodes, count);
	for (int i = 0; i < n; i++)
		pthread_rwlock_wrlock(&sorted[i]->lock);
}

void node_unlock_many(struct vnode **nodes, int count)
{
	struct vnode *sorted[4];
	int n = lock_order(sorted, nodes, count);
	for (int i = n - 1; i >= 0; i--)
		pthread_rwlock_unlock(&sorted[i]->lock);
}

void node_time_now(struct timespec *now)
{
	clock_gettime(CLOCK_REALTIME, now);
}

void node_fill_stat(const struct vfs *vfs, const struct meta_inode *rec, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = rec->ino;
	st->st_mode = rec->mode;
	st->st_nlink = rec->nlink;
	st->st_uid = rec->uid;
	st->st_gid = rec->gid;
	st->st_rdev = rec->rdev;
	st->st_size = (off_t)rec->size;
	st->st_blksize = OBJECT_BLOCK_SIZE;
	if (S_ISREG(rec->mode)) {
		uint64_t data = object_block_count(rec->size) - extent_hole_blocks(rec);
		st->st_blocks = (blkcnt_t)(data * (OBJECT_BLOCK_SIZE / 512));
	} else if (S_ISDIR(rec->mode)) {
		st->st_size = OBJECT_BLOCK_SIZE;
		st->st_blocks = OBJECT_BLOCK_SIZE / 512;
	}
	st->st_atim = rec->atime;
	st->st_mtim = rec->mtime;
	st->st_ctim = rec->ctime;
	(void)vfs;
}

static bool passed(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/*
 * Every FLUSH_INTERVAL_SECONDS: store every dirty record and make everything durable.
 * When a close queues its file (node_save_soon): wait SAVE_DELAY_MS for more closes, then
 * store the queued records in as few commits as possible, without a sync.
 */
static void *flusher_main(void *arg)
{
	struct vfs *vfs = arg;
	struct timespec periodic, soon;

	clock_after_ms(CLOCK_REALTIME, FLUSH_INTERVAL_SECONDS * 1000L, &periodic);
	pthread_mutex_lock(&vfs->flusher_lock);
	while (!vfs->flusher_stop) {
		bool saving = vfs->save_count > 0;
		if (saving)
			clock_after_ms(CLOCK_REALTIME, SAVE_DELAY_MS, &soon);
		/* While waiting out the short delay, further closes only join the queue. */
		while (!vfs->flusher_stop && !passed(saving ? &soon : &periodic) &&
		       (saving || vfs->save_count == 0))
			pthread_cond_timedwait(&vfs->flusher_wake, &vfs->flusher_lock,
					       saving ? &soon : &periodic);
		if (vfs->flusher_stop)
			break;
		if (!saving && vfs->save_count > 0)
			continue;  /* a close queued its file: wait the short delay first */
		int err = save_queued(vfs);
		if (err)
			log_error("storing the records of closed files failed: %s", strerror(-err));
		if (passed(&periodic)) {
			pthread_mutex_unlock(&vfs->flusher_lock);
			err = node_flush_all(vfs);
			if (err)
				log_error("periodic metadata flush failed: %s", strerror(-err));
			pthread_mutex_lock(&vfs->flusher_lock);
			clock_after_ms(CLOCK_REALTIME, FLUSH_INTERVAL_SECONDS * 1000L, &periodic);
		}
	}
	/* Whatever is still queued keeps a pin: store it and let it go. */
	(void)save_queued(vfs);
	pthread_mutex_unlock(&vfs->flusher_lock);
	return NULL;
}

int flusher_start(struct vfs *vfs)
{
	int err = pthread_create(&vfs->flusher, NULL, flusher_main, vfs);
	if (err)
		return -err;
	vfs->flusher_running = true;
	return 0;
}

void flusher_stop(struct vfs *vfs)
{
	if (!vfs->flusher_running)
		return;
	pthread_mutex_lock(&vfs->flusher_lock);
	vfs->flusher_stop = true;
	pthread_cond_signal(&vfs->flusher_wake);
	pthread_mutex_unlock(&vfs->flusher_lock);
	pthread_join(vfs->flusher, NULL);
	vfs->flusher_running = false;
}

/* dir's path + "/" + name ("name" at the root); NULL when dir's path is unknown. */
static char *join_path(const struct vnode *dir, const char *name)
{
	char *path = NULL;

	if (!dir->path)
		return NULL;
	if (dir->path[0] == '\0')
		path = strdup(name);
	else if (asprintf(&path, "%s/%s", dir->path, name) < 0)
		path = NULL;
	return path;
}

void node_set_path(struct vfs *vfs, struct vnode *node, struct vnode *dir, const char *name)
{
	pthread_rwlock_wrlock(&vfs->paths_lock);
	char *path = name ? join_path(dir, name) : strdup("");
	if (path && (!node->path || strcmp(path, node->path) != 0)) {
		free(node->path);
		node->path = path;
		path = NULL;
	}
	free(path);
	pthread_rwlock_unlock(&vfs->paths_lock);
}

void node_move_paths(struct vfs *vfs, struct vnode *node, struct vnode *dir, const char *name)
{
	pthread_rwlock_wrlock(&vfs->paths_lock);
	char *old = node->path;
	char *path = join_path(dir, name);
	node->path = path;
	if (old && path && S_ISDIR(node->rec.mode)) {
		size_t old_len = strlen(old);
		pthread_mutex_lock(&vfs->table_lock);
		for (size_t i = 0; i < vfs->table_size; i++) {
			for (struct vnode *v = vfs->table[i]; v; v = v->next) {
				char *moved;
				if (!v->path || strncmp(v->path, old, old_len) != 0 ||
				    v->path[old_len] != '/')
					continue;
				if (asprintf(&moved, "%s%s", path, v->path + old_len) < 0)
					moved = NULL;  /* unknown: the policy then refuses */
				free(v->path);
				v->path = moved;
			}
		}
		pthread_mutex_unlock(&vfs->table_lock);
	}
	free(old);
	pthread_rwlock_unlock(&vfs->paths_lock);
}

char *node_path(struct vfs *vfs, uint64_t ino, const char *name)
{
	char *path = NULL;

	pthread_rwlock_rdlock(&vfs->paths_lock);
	pthread_mutex_lock(&vfs->table_lock);
	struct vnode *node = table_find(vfs, ino);
	if (node && node->path)
		path = name ? join_path(node, name) : strdup(node->path);
	else if (ino == META_ROOT_INO)
		path = strdup(name ? name : "");
	pthread_mutex_unlock(&vfs->table_lock);
	pthread_rwlock_unlock(&vfs->paths_lock);
	return path;
}
