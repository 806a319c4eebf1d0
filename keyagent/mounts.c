/*
 * Mounts the agent starts for users. A user never holds a dataset key, so a user's mount
 * is served by a vaultfs daemon the agent starts itself, as root in a session of its own
 * (users can neither ptrace nor signal it), with a clean environment and no inherited
 * descriptor but its stderr. The daemon claims the lease made for it (only its pid may),
 * mounts for that user alone and closes its stderr; the answer to the user's MOUNT waits
 * until then, read from that pipe in the poll loop, so the agent keeps serving meanwhile
 * (the daemon's own LEASE among others).
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"

/* A daemon that has neither mounted nor failed by then is killed. */
#define MOUNT_START_TIMEOUT_MS 8000   /* under AGENT_TIMEOUT_MS: the user hears why */
#define DAEMON_PREFIX "vaultfs: "

struct mount_job {
	struct mount_job *next;
	struct client *client;        /* waits for the answer; NULL once gone */
	uint32_t request_id;
	uint64_t lease_id;
	char dataset[POLICY_NAME_MAX + 1];
	char mountpoint[PROTOCOL_PATH_MAX + 1];
	dev_t device;                 /* of the mount, once up */
	uid_t uid;
	pid_t pid;
	int output_fd;                /* the daemon's stderr while it starts; -1 after */
	char line[PROTOCOL_TEXT_MAX + 1];   /* the last whole line it wrote */
	char partial[PROTOCOL_TEXT_MAX + 1];
	size_t partial_len;
	struct timespec started;      /* CLOCK_MONOTONIC */
	bool adopted;                 /* started by an agent before a restart: no child */
	bool exited;
	int status;                   /* wait status, once exited */
};

static const char *default_vaultfs(void)
{
	return VAULTFS_INSTALLED_PATH;
}

/* After fork, before exec: only async-signal-safe calls. */
static void exec_daemon(const char *exe, char *const argv[], int output_fd)
{
	static const char failed[] = DAEMON_PREFIX "the key agent cannot run the vaultfs "
				     "daemon: check 'vaultfs' in its configuration\n";
	static char *const env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	sigset_t none;
	int null_fd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
	    dup2(output_fd, STDERR_FILENO) < 0)
		_exit(126);
	close_range(3, ~0U, 0);
	execve(exe, argv, env);
	(void)!write(STDERR_FILENO, failed, sizeof(failed) - 1);
	_exit(127);
}

int mounts_start(struct keyagent *agent, struct client *client, uint32_t request_id,
		 const struct lease *lease, const char *mountpoint, bool read_only, bool shared)
{
	const char *exe = agent->config.vaultfs_path ? agent->config.vaultfs_path
						     : default_vaultfs();
	struct mount_job *job;
	char *options = NULL;
	int fds[2], err = 0;

	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	if (asprintf(&options, "dataset=%s,agent=%s,lease=%llu,mount_uid=%u,mount_gid=%u%s%s"
		     "%s%s%s%s", lease->dataset, agent->config.socket_path,
		     (unsigned long long)lease->id, (unsigned)lease->uid, (unsigned)lease->gid,
		     read_only ? ",ro" : "", shared ? ",allow_other" : "",
		     agent->config.audit_root ? ",audit=" : "",
		     agent->config.audit_root ? agent->config.audit_root : "",
		     agent->config.audit_root ? "/" : "",
		     agent->config.audit_root ? lease->dataset : "") < 0) {
		options = NULL;
		err = -ENOMEM;
		goto out_free;
	}
	/* The trails live outside the vaults: purging a dataset leaves its trail. */
	if (agent->config.audit_root && mkdir(agent->config.audit_root, 0700) < 0 &&
	    errno != EEXIST) {
		err = -errno;
		log_error("cannot make the audit root '%s': %s", agent->config.audit_root,
			  strerror(-err));
		goto out_free;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		err = -errno;
		goto out_free;
	}
	char *argv[] = { (char *)"vaultfs", (char *)"-f", (char *)"-o", options,
			 (char *)mountpoint, NULL };
	pid_t pid = fork();
	if (pid == 0)
		exec_daemon(exe, argv, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		err = -errno;
		close(fds[0]);
		goto out_free;
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	job->client = client;
	job->request_id = request_id;
	job->lease_id = lease->id;
	snprintf(job->dataset, sizeof(job->dataset), "%s", lease->dataset);
	snprintf(job->mountpoint, sizeof(job->mountpoint), "%s", mountpoint);
	job->uid = lease->uid;
	job->pid = pid;
	job->output_fd = fds[0];
	clock_gettime(CLOCK_MONOTONIC, &job->started);
	job->next = agent->mount_jobs;
	agent->mount_jobs = job;
	job = NULL;
	log_info("uid %u: starting vaultfs (pid %d) for dataset '%s'", (unsigned)lease->uid,
		 (int)pid, lease->dataset);
	/* The lease may be claimed by that pid only. */
	struct lease *held = leases_find(&agent->leases, lease->id);
	if (held)
		held->pid = pid;
out_free:
	free(options);
	free(job);
	return err;
}

size_t mounts_poll_fds(struct keyagent *agent, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	for (struct mount_job *job = agent->mount_jobs; job && n < max; job = job->next)
		if (job->output_fd >= 0)
			fds[n++] = (struct pollfd){ .fd = job->output_fd, .events = POLLIN };
	return n;
}

/* The daemon's last line, without its "vaultfs: " and anything a message cannot hold. */
static void daemon_message(const struct mount_job *job, char *out, size_t len)
{
	const char *line = job->line[0] ? job->line : job->partial;

	if (strncmp(line, DAEMON_PREFIX, strlen(DAEMON_PREFIX)) == 0)
		line += strlen(DAEMON_PREFIX);
	snprintf(out, len, "%s", line[0] ? line : "the vaultfs daemon ended before mounting");
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
}

static void answer(struct keyagent *agent, struct mount_job *job, int err, const char *text)
{
	struct protocol_message reply = { .id = job->request_id };
	struct protocol_message request = { .type = PROTOCOL_MOUNT, .lease_id = job->lease_id };
	struct peer who = { .uid = job->uid, .gid = (gid_t)-1, .pid = job->pid };

	agent_trail_request(agent, &who, &request, job->dataset, err);

	if (!job->client)
		return;
	reply.type = err ? PROTOCOL_ERROR : PROTOCOL_OK;
	reply.error = err;
	snprintf(reply.text, sizeof(reply.text), "%s", text);
	server_answer(agent, job->client, &reply);
	job->client = NULL;
}

static void unlink_job(struct keyagent *agent, struct mount_job *job)
{
	for (struct mount_job **p = &agent->mount_jobs; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	if (job->output_fd >= 0)
		close(job->output_fd);
	free(job);
}

/* The daemon failed before mounting: its lease goes, the user hears why. */
static void start_failed(struct keyagent *agent, struct mount_job *job, int err,
			 const char *text)
{
	struct lease *lease = leases_find(&agent->leases, job->lease_id);

	if (lease)
		leases_remove(&agent->leases, lease);
	log_warn("uid %u: vaultfs for dataset '%s' did not mount: %s", (unsigned)job->uid,
		 job->dataset, text);
	answer(agent, job, err, text);
	if (!job->exited) {
		kill(job->pid, SIGKILL);
		if (waitpid(job->pid, &job->status, 0) == job->pid)
			job->exited = true;
	}
	unlink_job(agent, job);
}

/* The device of what is mounted on the directory fd (from the kernel's caches: no
 * request to the daemon, which may not serve yet). */
static dev_t mounted_device(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) != 0)
		return 0;
	return makedev(stx.stx_dev_major, stx.stx_dev_minor);
}

/* The mount's root opened without following a link, or -1. */
static int open_mountpoint(const char *path)
{
	return open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Its stderr closed: mounted if it still runs, failed if it ended. */
static void start_finished(struct keyagent *agent, struct mount_job *job)
{
	char text[PROTOCOL_TEXT_MAX + 1];

	close(job->output_fd);
	job->output_fd = -1;
	if (!job->exited && waitpid(job->pid, &job->status, WNOHANG) == job->pid)
		job->exited = true;
	if (job->exited) {
		daemon_message(job, text, sizeof(text));
		start_failed(agent, job, -EIO, text);
		return;
	}
	int fd = open_mountpoint(job->mountpoint);
	if (fd >= 0) {
		job->device = mounted_device(fd);
		close(fd);
	}
	log_info("uid %u: dataset '%s' mounted by vaultfs pid %d", (unsigned)job->uid,
		 job->dataset, (int)job->pid);
	snprintf(text, sizeof(text), "dataset '%s' mounted", job->dataset);
	answer(agent, job, 0, text);
}

static void take_output(struct mount_job *job, const char *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (bytes[i] == '\n') {
			if (job->partial_len) {
				memcpy(job->line, job->partial, job->partial_len);
				job->line[job->partial_len] = '\0';
			}
			job->partial_len = 0;
			job->partial[0] = '\0';
		} else if (job->partial_len < sizeof(job->partial) - 1) {
			job->partial[job->partial_len++] = bytes[i];
			job->partial[job->partial_len] = '\0';
		}
	}
}

void mounts_output(struct keyagent *agent, int fd)
{
	struct mount_job *job;
	char buf[512];
	ssize_t n;

	for (job = agent->mount_jobs; job && job->output_fd != fd; job = job->next)
		;
	if (!job)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		take_output(job, buf, (size_t)n);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		start_finished(agent, job);
}

void mounts_reap(struct keyagent *agent)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct mount_job *job;

		for (job = agent->mount_jobs; job && job->pid != pid; job = job->next)
			;
		if (!job)
			continue;
		job->exited = true;
		job->status = status;
		/* Still starting: its stderr's end decides (the pipe may hold its message). */
		if (job->output_fd >= 0)
			continue;
		log_info("vaultfs pid %d (dataset '%s', uid %u) ended", (int)pid, job->dataset,
			 (unsigned)job->uid);
		unlink_job(agent, job);
	}
}

/* The mount's parent directory held open, and the mountpoint's name in it (in parent).
 * -1 when the path has no parent. */
static int open_parent(const char *mountpoint, char *parent, size_t len, const char **name)
{
	char *slash;

	snprintf(parent, len, "%s", mountpoint);
	slash = strrchr(parent, '/');
	if (!slash || slash[1] == '\0')
		return -1;
	*slash = '\0';
	*name = slash + 1;
	return open(parent[0] ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Whether name inside parent_fd is still the job's mount. */
static bool still_mounted(const struct mount_job *job, int parent_fd, const char *name)
{
	struct statx stx;

	return statx(parent_fd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0, &stx) == 0 &&
	       makedev(stx.stx_dev_major, stx.stx_dev_minor) == job->device;
}

bool mounts_dataset_busy(struct keyagent *agent, const char *dataset)
{
	char parent[PROTOCOL_PATH_MAX + 1];
	const char *name;

	for (struct mount_job *job = agent->mount_jobs; job; job = job->next) {
		if (job->exited || strcmp(job->dataset, dataset) != 0)
			continue;
		if (job->output_fd >= 0)
			return true;   /* still starting */
		/* Unmounted, its daemon finishing: the next daemon waits for the vault. */
		int fd = open_parent(job->mountpoint, parent, sizeof(parent), &name);
		bool mounted = fd >= 0 && still_mounted(job, fd, name);
		if (fd >= 0)
			close(fd);
		if (mounted)
			return true;
	}
	return false;
}

int mounts_unmount(struct keyagent *agent, uid_t uid, const char *mountpoint)
{
	char parent[PROTOCOL_PATH_MAX + 1], target[PROTOCOL_PATH_MAX + 64];
	struct mount_job *job;
	const char *name;
	int parent_fd, err = 0;

	/*
	 * Only if the path still leads to that very mount: a user who swaps a directory of
	 * theirs in its path cannot make root unmount something else. The parent is held
	 * open (a descriptor of the mount itself would keep it busy) and the mount is
	 * named inside it; a mountpoint cannot be renamed or replaced while mounted.
	 */
	parent_fd = open_parent(mountpoint, parent, sizeof(parent), &name);
	if (parent_fd < 0)
		return -ENOENT;
	for (job = agent->mount_jobs; job; job = job->next)
		if (job->output_fd < 0 && !job->exited && job->device &&
		    strcmp(job->mountpoint, mountpoint) == 0 && (uid == 0 || uid == job->uid) &&
		    still_mounted(job, parent_fd, name))
			break;
	if (!job) {
		err = -ENOENT;
		goto out_close;
	}
	snprintf(target, sizeof(target), "/proc/self/fd/%d/%s", parent_fd, name);
	if (umount2(target, UMOUNT_NOFOLLOW) != 0)
		err = -errno;
	else
		log_info("uid %u: dataset '%s' unmounted", (unsigned)uid, job->dataset);
out_close:
	close(parent_fd);
	return err;
}

void mounts_adopt(struct keyagent *agent, const struct lease *lease, const char *mountpoint)
{
	char parent[PROTOCOL_PATH_MAX + 1];
	struct mount_job *job;
	const char *name;
	struct statx stx;

	if (!mountpoint[0] || !(job = calloc(1, sizeof(*job))))
		return;
	job->lease_id = lease->id;
	snprintf(job->dataset, sizeof(job->dataset), "%s", lease->dataset);
	snprintf(job->mountpoint, sizeof(job->mountpoint), "%s", mountpoint);
	job->uid = lease->uid;
	job->pid = lease->pid;
	job->output_fd = -1;
	job->adopted = true;
	clock_gettime(CLOCK_MONOTONIC, &job->started);
	int fd = open_parent(mountpoint, parent, sizeof(parent), &name);
	if (fd >= 0) {
		if (statx(fd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0, &stx) == 0)
			job->device = makedev(stx.stx_dev_major, stx.stx_dev_minor);
		close(fd);
	}
	job->next = agent->mount_jobs;
	agent->mount_jobs = job;
}

void mounts_lease_gone(struct keyagent *agent, uint64_t lease_id)
{
	for (struct mount_job *job = agent->mount_jobs; job; job = job->next) {
		if (job->adopted && job->lease_id == lease_id) {
			unlink_job(agent, job);
			return;
		}
	}
}

void mounts_forget_client(struct keyagent *agent, const struct client *client)
{
	for (struct mount_job *job = agent->mount_jobs; job; job = job->next)
		if (job->client == client)
			job->client = NULL;
}

void mounts_check(struct keyagent *agent)
{
	struct mount_job *job = agent->mount_jobs;

	while (job) {
		struct mount_job *next = job->next;

		if (job->output_fd >= 0 &&
		    clock_ms_since(CLOCK_MONOTONIC, &job->started) > MOUNT_START_TIMEOUT_MS)
			start_failed(agent, job, -ETIMEDOUT, "the vaultfs daemon did not mount in "
				     "time: see the system log");
		job = next;
	}
}

void mounts_clear(struct keyagent *agent)
{
	/* Mounted daemons are left serving (their lease runs out unless an agent renews
	 * it); one still starting could never claim its lease: it is stopped. */
	while (agent->mount_jobs) {
		struct mount_job *job = agent->mount_jobs;

		agent->mount_jobs = job->next;
		if (job->output_fd >= 0) {
			kill(job->pid, SIGKILL);
			close(job->output_fd);
		}
		free(job);
	}
}
