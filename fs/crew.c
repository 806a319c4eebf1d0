/*
 * The crew: a few helper threads that share the block encryption of one large request
 * with the thread serving it. A 1 MiB write is 256 AES-GCM seals, and a 1 MiB read as
 * many opens: without help, one core works while the others idle.
 *
 * crew_run() cuts the work into slices, queues all but the first, does the first itself
 * and then takes back any slice no helper has started, so a busy crew never makes a
 * request wait longer than doing it alone would.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Helpers at most, whatever the core count. */
#define CREW_MAX 3
/* Below this many items the hand-over costs more than it saves. */
#define CREW_MIN_ITEMS 16

struct crew_task {
	crew_fn *fn;
	void *arg;
	size_t first;
	size_t count;
	int result;
	enum { TASK_QUEUED, TASK_TAKEN, TASK_DONE } state;
	struct crew_task *next;
};

struct crew {
	pthread_mutex_t lock;
	pthread_cond_t work;     /* a task was queued, or stop */
	pthread_cond_t done;     /* a task finished */
	struct crew_task *queue;
	bool stop;
	int size;
	pthread_t threads[CREW_MAX];
};

static void *helper(void *arg)
{
	struct crew *crew = arg;

	pthread_mutex_lock(&crew->lock);
	for (;;) {
		while (!crew->queue && !crew->stop)
			pthread_cond_wait(&crew->work, &crew->lock);
		if (crew->stop)
			break;
		struct crew_task *task = crew->queue;
		crew->queue = task->next;
		task->state = TASK_TAKEN;
		pthread_mutex_unlock(&crew->lock);
		int result = task->fn(task->arg, task->first, task->count);
		pthread_mutex_lock(&crew->lock);
		task->result = result;
		task->state = TASK_DONE;
		pthread_cond_broadcast(&crew->done);
	}
	pthread_mutex_unlock(&crew->lock);
	return NULL;
}

int crew_start(struct crew **out)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct crew *crew;

	*out = NULL;
	if (cores <= 1)
		return 0;
	crew = calloc(1, sizeof(*crew));
	if (!crew)
		return -ENOMEM;
	pthread_mutex_init(&crew->lock, NULL);
	pthread_cond_init(&crew->work, NULL);
	pthread_cond_init(&crew->done, NULL);
	for (long i = 0; i < cores - 1 && i < CREW_MAX; i++) {
		if (pthread_create(&crew->threads[crew->size], NULL, helper, crew) != 0)
			break;
		crew->size++;
	}
	if (crew->size == 0) {
		crew_stop(crew);
		return 0;
	}
	*out = crew;
	return 0;
}

void crew_stop(struct crew *crew)
{
	if (!crew)
		return;
	pthread_mutex_lock(&crew->lock);
	crew->stop = true;
	pthread_cond_broadcast(&crew->work);
	pthread_mutex_unlock(&crew->lock);
	for (int i = 0; i < crew->size; i++)
		pthread_join(crew->threads[i], NULL);
	pthread_cond_destroy(&crew->work);
	pthread_cond_destroy(&crew->done);
	pthread_mutex_destroy(&crew->lock);
	free(crew);
}

/* Remove task from the queue if no helper took it (lock held). */
static bool unqueue(struct crew *crew, struct crew_task *task)
{
	for (struct crew_task **link = &crew->queue; *link; link = &(*link)->next) {
		if (*link == task) {
			*link = task->next;
			return true;
		}
	}
	return false;
}

int crew_run(struct crew *crew, crew_fn *fn, void *arg, size_t count)
{
	struct crew_task tasks[CREW_MAX];
	int parts, result;

	if (!crew || count < CREW_MIN_ITEMS)
		return fn(arg, 0, count);
	parts = crew->size + 1;
	if ((size_t)parts > count / (CREW_MIN_ITEMS / 2))
		parts = (int)(count / (CREW_MIN_ITEMS / 2));
	size_t slice = (count + (size_t)parts - 1) / (size_t)parts;

	pthread_mutex_lock(&crew->lock);
	for (int i = 1; i < parts; i++) {
		struct crew_task *task = &tasks[i - 1];
		task->fn = fn;
		task->arg = arg;
		task->first = (size_t)i * slice;
		task->count = task->first + slice <= count ? slice : count - task->first;
		task->result = 0;
		task->state = TASK_QUEUED;
		task->next = crew->queue;
		crew->queue = task;
	}
	pthread_cond_broadcast(&crew->work);
	pthread_mutex_unlock(&crew->lock);

	result = fn(arg, 0, slice);
	for (int i = 0; i < parts - 1; i++) {
		struct crew_task *task = &tasks[i];
		pthread_mutex_lock(&crew->lock);
		if (task->state == TASK_QUEUED && unqueue(crew, task)) {
			pthread_mutex_unlock(&crew->lock);
			task->result = fn(arg, task->first, task->count);
		} else {
			while (task->state != TASK_DONE)
				pthread_cond_wait(&crew->done, &crew->lock);
			pthread_mutex_unlock(&crew->lock);
		}
		if (!result)
			result = task->result;
	}
	return result;
}
