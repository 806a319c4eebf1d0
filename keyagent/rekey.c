/*
 * Rekey jobs of the key agent: at most one per dataset, online (the mount's daemon does
 * the work, asked and heard through its lease renewals) or offline (a worker thread runs
 * rekey_vault() on the unmounted vault). The worker shares nothing with the agent but
 * its job's progress block, under the job's mutex, and an eventfd that wakes the poll
 * loop when it ends; its keys are its own copy.
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/object.h"
#include "lib/rekey.h"
#include "lib/vault.h"

#define WHY_MAX 160

struct rekey_job {
	struct rekey_job *next;
	char dataset[POLICY_NAME_MAX + 1];
	uint32_t version;
	enum protocol_rekey_state state;   /* the poll loop's view */
	uint64_t done;
	uint64_t total;
	char why[WHY_MAX];                 /* FAILED: why */
	bool online;
	uint64_t lease_id;                 /* online: the mount's lease */
	pid_t pid;                         /* online: its holder */

	/* Offline: the worker's own, until joined. */
	bool has_thread;
	pthread_t thread;
	char dir[PROTOCOL_PATH_MAX + 1];
	struct keysource *keys;
	int wake_fd;
	atomic_bool cancel;
	pthread_mutex_t lock;              /* guards the block below */
	struct {
		bool running;                  /* vault open and locked, rekey_vault() called */
		bool finished;
		int result;
		uint64_t done;
		uint64_t total;
		char why[WHY_MAX];
	} shared;
};

struct rekey_job *rekey_job_find(struct keyagent *agent, const char *dataset)
{
	for (struct rekey_job *job = agent->rekey_jobs; job; job = job->next)
		if (strcmp(job->dataset, dataset) == 0)
			return job;
	return NULL;
}

bool rekey_job_active(const struct rekey_job *job)
{
	return job->state == PROTOCOL_REKEY_REQUESTED || job->state == PROTOCOL_REKEY_RUNNING;
}

uint32_t rekey_job_version(const struct rekey_job *job)
{
	return job->version;
}

bool rekey_offline_busy(struct keyagent *agent, const char *dataset)
{
	struct rekey_job *job;

	rekey_jobs_check(agent);
	job = rekey_job_find(agent, dataset);
	return job && !job->online && rekey_job_active(job);
}

/* Finishing, for the log: one line per start, finish and failure. */

static void job_done(struct rekey_job *job)
{
	job->state = PROTOCOL_REKEY_DONE;
	log_info("dataset '%s': rekey to key version %u done: %llu of %llu items re-encrypted",
		 job->dataset, (unsigned)job->version, (unsigned long long)job->done,
		 (unsigned long long)job->total);
}

static void job_failed(struct rekey_job *job, const char *why)
{
	job->state = PROTOCOL_REKEY_FAILED;
	snprintf(job->why, sizeof(job->why), "%s", why);
	log_warn("dataset '%s': rekey to key version %u failed after %llu of %llu items: %s",
		 job->dataset, (unsigned)job->version, (unsigned long long)job->done,
		 (unsigned long long)job->total, why);
}

static void job_free(struct rekey_job *job)
{
	if (!job)
		return;
	keysource_free(job->keys);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

/* A new job for dataset, replacing a finished one (the caller checked it is not
 * active). */
static struct rekey_job *job_new(struct keyagent *agent, const char *dataset, uint32_t version)
{
	struct rekey_job **link, *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	if (pthread_mutex_init(&job->lock, NULL) != 0) {
		free(job);
		return NULL;
	}
	snprintf(job->dataset, sizeof(job->dataset), "%s", dataset);
	job->version = version;
	job->wake_fd = agent->rekey_wake_fd;
	atomic_init(&job->cancel, false);
	for (link = &agent->rekey_jobs; *link; link = &(*link)->next) {
		if (strcmp((*link)->dataset, dataset) == 0) {
			struct rekey_job *old = *link;
			*link = old->next;
			job_free(old);
			break;
		}
	}
	job->next = agent->rekey_jobs;
	agent->rekey_jobs = job;
	return job;
}

static void job_unlink(struct keyagent *agent, struct rekey_job *job)
{
	for (struct rekey_job **link = &agent->rekey_jobs; *link; link = &(*link)->next) {
		if (*link == job) {
			*link = job->next;
			return;
		}
	}
}

/* Online. */

int rekey_start_online(struct keyagent *agent, const char *dataset, uint32_t version,
		       const struct lease *lease, uid_t uid, struct rekey_job **out)
{
	struct rekey_job *job = job_new(agent, dataset, version);

	if (!job)
		return -ENOMEM;
	job->online = true;
	job->lease_id = lease->id;
	job->pid = lease->pid;
	job->state = PROTOCOL_REKEY_REQUESTED;
	log_info("dataset '%s': rekey to key version %u started online (mounted by pid %d) "
		 "by uid %u", dataset, (unsigned)version, (int)lease->pid, (unsigned)uid);
	*out = job;
	return 0;
}

void rekey_renew(struct keyagent *agent, const struct lease *lease,
		 const struct protocol_rekey *in, struct protocol_rekey *out)
{
	struct rekey_job *job = rekey_job_find(agent, lease->dataset);

	memset(out, 0, sizeof(*out));
	/* A daemon that rekeys on its own (it began before the agent restarted) gets a
	 * job, so that 'vaultctl rekey' can follow it. */
	if (in->state == PROTOCOL_REKEY_RUNNING && (!job || !rekey_job_active(job))) {
		job = job_new(agent, lease->dataset, in->version);
		if (!job)
			return;
		job->online = true;
		job->lease_id = lease->id;
		job->pid = lease->pid;
		job->state = PROTOCOL_REKEY_REQUESTED;
		log_info("dataset '%s': rekey to key version %u found running online (mounted "
			 "by pid %d)", lease->dataset, (unsigned)in->version, (int)lease->pid);
	}
	if (!job || !job->online || job->lease_id != lease->id || !rekey_job_active(job))
		return;
	if (in->state != 0 && in->version == job->version) {
		job->done = in->done;
		job->total = in->total;
		switch (in->state) {
		case PROTOCOL_REKEY_RUNNING:
			job->state = PROTOCOL_REKEY_RUNNING;
			break;
		case PROTOCOL_REKEY_DONE:
			job_done(job);
			break;
		case PROTOCOL_REKEY_FAILED:
			job_failed(job, "the mount's daemon could not finish: see its log, then "
				   "run 'vaultctl rekey' again to resume");
			break;
		default:
			break;
		}
	}
	if (job->state == PROTOCOL_REKEY_REQUESTED)
		*out = (struct protocol_rekey){ .version = job->version,
						.state = PROTOCOL_REKEY_REQUESTED };
}

/* Whether the lease named by an online job is still live (present, not revoked). */
static bool lease_live(struct keyagent *agent, uint64_t id)
{
	for (size_t i = 0; i < agent->leases.count; i++)
		if (agent->leases.items[i].id == id)
			return !agent->leases.items[i].revoked;
	return false;
}

/* Offline: the worker. */

static void wake(int fd)
{
	uint64_t one = 1;

	if (fd >= 0)
		while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
}

static int worker_report(void *arg, const struct rekey_progress *progress)
{
	struct rekey_job *job = arg;

	pthread_mutex_lock(&job->lock);
	job->shared.done = progress->done;
	job->shared.total = progress->total;
	pthread_mutex_unlock(&job->lock);
	return atomic_load(&job->cancel) ? -ECANCELED : 0;
}

static void *worker_main(void *arg)
{
	struct rekey_job *job = arg;
	struct vault *vault = NULL;
	char why[WHY_MAX] = "";
	int err;

	err = vault_open(&vault, job->dir, job->keys, 0);
	if (err) {
		snprintf(why, sizeof(why), "cannot open the vault: %s", strerror(-err));
		goto out;
	}
	/* The mount's daemon holds this lock while mounted: never rekey under it. */
	if (flock(vault->dir_fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (err == -EBUSY)
			snprintf(why, sizeof(why), "the vault is mounted by something else: "
				 "unmount it, or mount it through the agent and run 'vaultctl "
				 "rekey' again");
		else
			snprintf(why, sizeof(why), "cannot lock the vault: %s", strerror(-err));
		goto out_close;
	}
	/* The old objects a rekey removes are emptied as it goes. */
	vault_object_start(vault);
	pthread_mutex_lock(&job->lock);
	job->shared.running = true;
	pthread_mutex_unlock(&job->lock);
	err = rekey_vault(vault, OBJECT_MAX_ENCRYPTIONS, worker_report, job);
	if (err == -ECANCELED)
		snprintf(why, sizeof(why), "stopped (the agent stopped or the dataset was "
			 "shredded): run 'vaultctl rekey' again to resume");
	else if (err == -EIO)
		snprintf(why, sizeof(why), "some objects are damaged (see the agent's log): "
			 "restore them from a backup or remove them, then run 'vaultctl rekey' "
			 "again");
	else if (err)
		snprintf(why, sizeof(why), "%s: run 'vaultctl rekey' again to resume",
			 strerror(-err));
out_close:
	vault_close(vault);   /* closes dir_fd: the lock goes with it */
out:
	pthread_mutex_lock(&job->lock);
	job->shared.result = err;
	job->shared.finished = true;
	snprintf(job->shared.why, sizeof(job->shared.why), "%s", why);
	pthread_mutex_unlock(&job->lock);
	wake(job->wake_fd);
	return NULL;
}

int rekey_start_offline(struct keyagent *agent, const char *dataset, uint32_t version,
			const char *dir, struct keysource *keys, uid_t uid, struct rekey_job **out)
{
	struct rekey_job *job = job_new(agent, dataset, version);
	int err;

	if (!job) {
		keysource_free(keys);
		return -ENOMEM;
	}
	job->keys = keys;
	job->state = PROTOCOL_REKEY_RUNNING;
	snprintf(job->dir, sizeof(job->dir), "%s", dir);
	err = -pthread_create(&job->thread, NULL, worker_main, job);
	if (err) {
		job_unlink(agent, job);
		job_free(job);
		return err;
	}
	job->has_thread = true;
	log_info("dataset '%s': rekey to key version %u started offline by uid %u", dataset,
		 (unsigned)version, (unsigned)uid);
	*out = job;
	return 0;
}

/* The worker's progress into the poll loop's view; a finished worker is joined. With
 * stopped_why, the worker was told to stop: wait for it, and a run it stopped fails with
 * that reason. */
static void job_sync(struct rekey_job *job, const char *stopped_why)
{
	bool finished;
	int result;
	char why[WHY_MAX];

	if (!job->has_thread)
		return;
	if (stopped_why) {
		pthread_join(job->thread, NULL);
		job->has_thread = false;
	}
	pthread_mutex_lock(&job->lock);
	job->done = job->shared.done;
	job->total = job->shared.total;
	finished = job->shared.finished;
	result = job->shared.result;
	memcpy(why, job->shared.why, sizeof(why));
	pthread_mutex_unlock(&job->lock);
	if (!finished)
		return;
	if (job->has_thread) {
		pthread_join(job->thread, NULL);   /* it has returned or is about to */
		job->has_thread = false;
	}
	keysource_free(job->keys);
	job->keys = NULL;
	if (result == 0)
		job_done(job);
	else
		job_failed(job, result == -ECANCELED && stopped_why ? stopped_why : why);
}

void rekey_jobs_check(struct keyagent *agent)
{
	uint64_t count;

	if (agent->rekey_wake_fd >= 0)
		while (read(agent->rekey_wake_fd, &count, sizeof(count)) > 0)
			;
	for (struct rekey_job *job = agent->rekey_jobs; job; job = job->next) {
		if (!rekey_job_active(job))
			continue;
		if (job->online) {
			if (!lease_live(agent, job->lease_id))
				job_failed(job, "the mount went away; run vaultctl rekey again to "
					   "resume");
		} else {
			job_sync(job, NULL);
		}
	}
}

void rekey_job_report(struct rekey_job *job, struct protocol_rekey *out, char *text,
		      size_t text_len)
{
	int n;

	if (!job->online)
		job_sync(job, NULL);
	*out = (struct protocol_rekey){
		.version = job->version,
		.state = job->state,
		.done = job->done,
		/* A daemon's or worker's first count may come after its first report. */
		.total = job->total < job->done ? job->done : job->total,
	};
	if (job->online)
		n = snprintf(text, text_len, "online (mounted by pid %d)", (int)job->pid);
	else
		n = snprintf(text, text_len, "offline");
	if (job->state == PROTOCOL_REKEY_FAILED && n >= 0 && (size_t)n < text_len)
		snprintf(text + n, text_len - (size_t)n, ": %s", job->why);
}

static void job_stop(struct rekey_job *job, const char *why)
{
	if (job->has_thread) {
		atomic_store(&job->cancel, true);
		job_sync(job, why);
	}
	if (rekey_job_active(job))
		job_failed(job, why);
}

void rekey_job_stop(struct keyagent *agent, const char *dataset, const char *why)
{
	struct rekey_job *job = rekey_job_find(agent, dataset);

	if (job)
		job_stop(job, why);
}

void rekey_jobs_clear(struct keyagent *agent)
{
	while (agent->rekey_jobs) {
		struct rekey_job *job = agent->rekey_jobs;

		job_stop(job, "the agent stopped: run 'vaultctl rekey' again to resume");
		agent->rekey_jobs = job->next;
		job_free(job);
	}
}
