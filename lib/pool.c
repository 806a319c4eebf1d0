/*
 * Object files removed, emptied and kept for reuse. A removal costs the caller one rename
 * into trash/; the pool's thread truncates the file (on a disk mounted with discard that
 * is the slow part) and renames it into free/, where the next new object finds it. A file
 * in trash/ still holds ciphertext, so the trash is emptied before pool_free() returns and,
 * after a crash, by the next pool_start(). Both directory lists live in memory: files there are
 * named by 32 hex digits (the removed object's id), anything else is left alone.
 */
#include "lib/pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>          /* renameat2 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/crypto.h"

#define POOL_NAME_LEN (2 * OBJECT_ID_LEN)

/*
 * Removals come in bursts (rm -r of a tree, a job cleaning up its checkpoints). The emptier
 * waits until no file has been removed for POOL_QUIET_MS before it frees blocks, so that the
 * two do not share the CPU and the disk, but it holds no removed file back for longer than
 * POOL_MAX_DELAY_MS: under a steady stream of removals it empties as it goes.
 */
#define POOL_QUIET_MS 50
#define POOL_MAX_DELAY_MS 2000

struct pool_ids {
	uint8_t (*ids)[OBJECT_ID_LEN];
	size_t count;
	size_t capacity;
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;          /* trash has files, stopping, or hurry; waits on CLOCK_MONOTONIC */
	pthread_cond_t settled;       /* trash is empty and the thread idle */
	int free_fd;
	int trash_fd;
	struct pool_ids free;         /* emptied, ready for pool_take */
	struct pool_ids trash;        /* still to be emptied */
	bool emptying;                /* the thread is working on one file */
	int hurry;                    /* callers of pool_settle(): no waiting for quiet */
	struct timespec last_put;     /* CLOCK_MONOTONIC: the newest removal */
	struct timespec backlog_since; /* ...and the one that found the trash empty */
	bool started;
	bool stopping;
	pthread_t thread;
};

static bool ids_push(struct pool_ids *list, const uint8_t id[OBJECT_ID_LEN])
{
	if (list->count == list->capacity) {
		size_t capacity = list->capacity ? 2 * list->capacity : 256;
		void *grown = realloc(list->ids, capacity * sizeof(*list->ids));
		if (grown == NULL)
			return false;
		list->ids = grown;
		list->capacity = capacity;
	}
	memcpy(list->ids[list->count++], id, OBJECT_ID_LEN);
	return true;
}

static void name_of(char name[POOL_NAME_LEN + 1], const uint8_t id[OBJECT_ID_LEN])
{
	crypto_to_hex(name, POOL_NAME_LEN + 1, id, OBJECT_ID_LEN);
}

/* Open objects/sub, made if missing; never through a link (-ELOOP). */
static int open_subdir(int objects_fd, const char *sub)
{
	struct stat st;
	int fd, err;

	if (mkdirat(objects_fd, sub, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(objects_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0)
		return fd;
	err = -errno;
	/* O_DIRECTORY answers a link with ENOTDIR. */
	if (err == -ENOTDIR && fstatat(objects_fd, sub, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = -ELOOP;
	return err;
}

/* Add the names in dir_fd to list, at most max of them. An unreadable directory lists as
 * empty: its files are found at a later open. */
static void list_dir(int dir_fd, struct pool_ids *list, size_t max)
{
	uint8_t id[OBJECT_ID_LEN];
	struct dirent *entry;
	int fd = dup(dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((entry = readdir(d)) != NULL && list->count < max) {
		if (strlen(entry->d_name) == POOL_NAME_LEN &&
		    crypto_from_hex(id, sizeof(id), entry->d_name, POOL_NAME_LEN) == 0 &&
		    !ids_push(list, id))
			break;
	}
	closedir(d);
}

int pool_open(struct pool **out, int objects_fd)
{
	struct pool *pool;
	int ret;

	*out = NULL;
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return -ENOMEM;
	pthread_condattr_t monotonic;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, &monotonic);
	pthread_condattr_destroy(&monotonic);
	pthread_cond_init(&pool->settled, NULL);
	pool->trash_fd = -1;
	pool->free_fd = open_subdir(objects_fd, POOL_FREE_DIR);
	if (pool->free_fd < 0) {
		ret = pool->free_fd;
		goto out_free;
	}
	pool->trash_fd = open_subdir(objects_fd, POOL_TRASH_DIR);
	if (pool->trash_fd < 0) {
		ret = pool->trash_fd;
		goto out_free;
	}
	list_dir(pool->free_fd, &pool->free, POOL_MAX);
	*out = pool;
	return 0;

out_free:
	pool_free(pool);
	return ret;
}

/* Empty the trash file named by id and move it into free/, or unlink it when free/ is full
 * or the emptying fails. Called without the lock. */
static void empty_one(struct pool *pool, const uint8_t id[OBJECT_ID_LEN])
{
	char name[POOL_NAME_LEN + 1];
	bool keep;
	int fd;

	name_of(name, id);
	pthread_mutex_lock(&pool->lock);
	keep = pool->free.count < POOL_MAX;
	pthread_mutex_unlock(&pool->lock);
	if (keep) {
		fd = openat(pool->trash_fd, name,
			    O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		keep = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	if (keep && renameat2(pool->trash_fd, name, pool->free_fd, name, RENAME_NOREPLACE) == 0) {
		pthread_mutex_lock(&pool->lock);
		/* Not listed (out of memory): found in free/ at the next open. */
		(void)ids_push(&pool->free, id);
		pthread_mutex_unlock(&pool->lock);
		return;
	}
	/* Left in the trash if even this fails: the next pool_start() empties it. */
	(void)unlinkat(pool->trash_fd, name, 0);
}

/* With the lock held: wait while removals go on (see POOL_QUIET_MS). */
static void wait_for_quiet(struct pool *pool)
{
	while (!pool->stopping && pool->hurry == 0) {
		long long quiet_left = POOL_QUIET_MS - clock_ms_since(CLOCK_MONOTONIC, &pool->last_put);
		long long delay_left = POOL_MAX_DELAY_MS -
				       clock_ms_since(CLOCK_MONOTONIC, &pool->backlog_since);
		long long wait = quiet_left < delay_left ? quiet_left : delay_left;
		struct timespec until;

		if (wait <= 0)
			return;
		clock_after_ms(CLOCK_MONOTONIC, (long)wait, &until);
		pthread_cond_timedwait(&pool->wake, &pool->lock, &until);
	}
}

static void *emptier(void *arg)
{
	struct pool *pool = arg;
	uint8_t id[OBJECT_ID_LEN];

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->trash.count == 0 && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		if (pool->trash.count == 0)
			break;
		wait_for_quiet(pool);
		memcpy(id, pool->trash.ids[--pool->trash.count], OBJECT_ID_LEN);
		pool->emptying = true;
		pthread_mutex_unlock(&pool->lock);
		empty_one(pool, id);
		pthread_mutex_lock(&pool->lock);
		pool->emptying = false;
		if (pool->trash.count == 0)
			pthread_cond_broadcast(&pool->settled);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

void pool_start(struct pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	if (!pool->started && !pool->stopping) {
		/* The directory is the whole truth: it also holds what a crash left. */
		pool->trash.count = 0;
		list_dir(pool->trash_fd, &pool->trash, SIZE_MAX);
		pool->started = pthread_create(&pool->thread, NULL, emptier, pool) == 0;
	}
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

/* Empty what is queued on the caller's thread (no emptier runs). */
static void empty_here(struct pool *pool)
{
	uint8_t id[OBJECT_ID_LEN];

	pthread_mutex_lock(&pool->lock);
	while (pool->trash.count > 0) {
		memcpy(id, pool->trash.ids[--pool->trash.count], OBJECT_ID_LEN);
		pthread_mutex_unlock(&pool->lock);
		empty_one(pool, id);
		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
}

void pool_free(struct pool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	if (pool->started)
		pthread_join(pool->thread, NULL);
	if (pool->trash_fd >= 0)
		empty_here(pool);
	if (pool->free_fd >= 0)
		close(pool->free_fd);
	if (pool->trash_fd >= 0)
		close(pool->trash_fd);
	free(pool->free.ids);
	free(pool->trash.ids);
	pthread_cond_destroy(&pool->settled);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

int pool_take(struct pool *pool, int dir_fd, const char *name)
{
	char free_name[POOL_NAME_LEN + 1];
	uint8_t id[OBJECT_ID_LEN];
	int err;

	for (;;) {
		pthread_mutex_lock(&pool->lock);
		err = pool->free.count == 0 ? -ENOENT : 0;
		if (!err)
			memcpy(id, pool->free.ids[--pool->free.count], OBJECT_ID_LEN);
		pthread_mutex_unlock(&pool->lock);
		if (err)
			return err;
		name_of(free_name, id);
		if (renameat2(pool->free_fd, free_name, dir_fd, name, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != ENOENT)
			return -errno;
		/* That file is gone (removed by hand): try the next. */
	}
}

int pool_put(struct pool *pool, int dir_fd, const char *name, const uint8_t id[OBJECT_ID_LEN])
{
	char trash_name[POOL_NAME_LEN + 1];
	bool listed;

	name_of(trash_name, id);
	if (renameat2(dir_fd, name, pool->trash_fd, trash_name, RENAME_NOREPLACE) < 0)
		return -errno;
	pthread_mutex_lock(&pool->lock);
	clock_gettime(CLOCK_MONOTONIC, &pool->last_put);
	if (pool->trash.count == 0) {
		/* Only the first of a burst wakes the emptier; the others would only keep
		 * waking it to find the burst still going. */
		pool->backlog_since = pool->last_put;
		pthread_cond_signal(&pool->wake);
	}
	listed = ids_push(&pool->trash, id);
	pthread_mutex_unlock(&pool->lock);
	/* Not listed (out of memory): emptied now, not left holding ciphertext. */
	if (!listed)
		empty_one(pool, id);
	return 0;
}

void pool_settle(struct pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	bool started = pool->started;
	pool->hurry++;
	pthread_cond_broadcast(&pool->wake);
	while (started && (pool->trash.count > 0 || pool->emptying))
		pthread_cond_wait(&pool->settled, &pool->lock);
	pool->hurry--;
	pthread_mutex_unlock(&pool->lock);
	if (!started)
		empty_here(pool);
}
