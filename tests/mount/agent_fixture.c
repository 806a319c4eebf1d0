/*
 * Fixture of the real-mount tests through the key agent (see agent_fixture.h): the
 * agent's temp dir, configuration and process (optionally under faketime), requests to
 * it, vaultfs mounts of its datasets, and a watchdog that cleans up after a test process
 * that died mid-test.
 */
#include "tests/mount/agent_fixture.h"

#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/agent.h"
#include "lib/crypto.h"
#include "lib/secret.h"
#include "tests/mount/fixture.h"

#define START_WAIT_MS 10000
#define STOP_WAIT_MS 10000
#define MOUNT_WAIT_MS 10000
#define COMMAND_WAIT_MS 30000





bool agent_is_mount(const char *path)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char point[PATH_MAX];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 && strcmp(point, path) == 0)
			found = true;
	}
	fclose(f);
	return found;
}

static void record_pid(const struct agent_fixture *a, pid_t pid)
{
	FILE *f = fopen(a->pids, "ae");
	if (f) {
		fprintf(f, "%d\n", (int)pid);
		fclose(f);
	}
}

static int spawn_quiet(const char *const argv[], int timeout_ms)
{
	return fixture_spawn(argv, NULL, timeout_ms);
}

/* Detach whatever is mounted at path: fusermount3 -u, then umount -l. */
static void detach(const char *path)
{
	const char *fusermount[] = { "fusermount3", "-u", "-q", path, NULL };
	const char *lazy[] = { "umount", "-l", path, NULL };

	if (!agent_is_mount(path))
		return;
	if (spawn_quiet(fusermount, COMMAND_WAIT_MS) == 0 && !agent_is_mount(path))
		return;
	spawn_quiet(lazy, COMMAND_WAIT_MS);
}

/* Every mount point below root, detached. */
static void detach_all_below(const char *root)
{
	char line[4096], prefix[128];
	char points[32][PATH_MAX];
	int count = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	snprintf(prefix, sizeof(prefix), "%s/", root);
	while (count < 32 && fgets(line, sizeof(line), f)) {
		char point[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1 &&
		    strncmp(point, prefix, strlen(prefix)) == 0)
			snprintf(points[count++], PATH_MAX, "%s", point);
	}
	fclose(f);
	for (int i = 0; i < count; i++)
		detach(points[i]);
}



/* SIGKILL every process the fixture recorded (only ever its own children). */
static void kill_recorded(const char *pids_path)
{
	FILE *f = fopen(pids_path, "re");
	int pid;

	if (!f)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		if (pid > 1)
			kill(pid, SIGKILL);
	fclose(f);
}

/*
 * The watchdog waits for EOF on a pipe whose write end only the test process holds
 * (close-on-exec keeps it out of the agent and the daemons). A byte 'x' first means
 * agent_fixture_destroy ran; a bare EOF means the test process died: then it kills the
 * recorded processes, detaches the mounts below root and removes the temp dir.
 */
static void start_watchdog(struct agent_fixture *a)
{
	int fds[2];

	ck_assert_msg(pipe2(fds, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	ck_assert_msg(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		char byte = 0;
		int null_fd = open("/dev/null", O_RDWR);
		setpgid(0, 0); /* outlive a killpg of the test's process group */
		if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 ||
		    dup2(null_fd, 2) < 0 || dup2(fds[0], 3) == -1 || chdir("/") == -1)
			_exit(1);
		close_range(4, ~0U, 0);
		while (read(3, &byte, 1) == -1 && errno == EINTR)
			;
		if (byte != 'x') {
			kill_recorded(a->pids);
			detach_all_below(a->root);
			fixture_sleep_ms(200);
			fixture_remove_tree(a->root);
		}
		_exit(0);
	}
	close(fds[0]);
	a->watchdog_fd = fds[1];
}

static void write_config(struct agent_fixture *a)
{
	FILE *f = fopen(a->config, "we");

	ck_assert_msg(f != NULL, "%s: %s", a->config, strerror(errno));
	fprintf(f, "[agent]\n"
		"socket = %s\n"
		"socket_group = %d\n"
		"keystore = %s/keystore\n"
		"data_root = %s\n"
		"kek = keyfile:%s\n"
		"lease_ttl = %u\n"
		"vaultfs = %s\n"
		"\n%s", a->socket, AGENT_FIXTURE_SOCKET_GID, a->root, a->data_root, a->kek,
		a->lease_ttl, fixture_binary("VAULTFS"), a->roles);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(a->config, 0644), 0);
}

void agent_fixture_create(struct agent_fixture *a, const char *roles)
{
	uint8_t key[CRYPTO_KEY_LEN];
	FILE *f;

	memset(a, 0, sizeof(*a));
	a->owner = getpid();
	a->watchdog_fd = -1;
	a->lease_ttl = 5;
	umask(022);
	ck_assert_int_eq(secret_init(), 0);
	snprintf(a->root, sizeof(a->root), "/tmp/vaultfs-agentmount.XXXXXX");
	ck_assert_msg(mkdtemp(a->root) != NULL, "mkdtemp: %s", strerror(errno));
	ck_assert_int_eq(chmod(a->root, 0755), 0);
	snprintf(a->config, sizeof(a->config), "%s/keyagent.conf", a->root);
	snprintf(a->kek, sizeof(a->kek), "%s/kek", a->root);
	snprintf(a->socket, sizeof(a->socket), "%s/run/agent.sock", a->root);
	snprintf(a->data_root, sizeof(a->data_root), "%s/vaults", a->root);
	snprintf(a->log, sizeof(a->log), "%s/agent.log", a->root);
	snprintf(a->pids, sizeof(a->pids), "%s/pids", a->root);
	start_watchdog(a);

	crypto_random(key, sizeof(key));
	crypto_to_hex(a->kek_hex, sizeof(a->kek_hex), key, sizeof(key));
	secret_wipe(key, sizeof(key));
	f = fopen(a->kek, "we");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", a->kek_hex);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(a->kek, 0600), 0);
	agent_fixture_set_roles(a, roles);
}

void agent_fixture_set_roles(struct agent_fixture *a, const char *roles)
{
	ck_assert_msg(strlen(roles) < sizeof(a->roles), "roles too long for the fixture");
	snprintf(a->roles, sizeof(a->roles), "%s", roles);
	write_config(a);
}

/* The real agent under a faketime wrapper: the wrapper's child running the agent. */
static pid_t find_faked_agent(pid_t launcher, const char *exe)
{
	char path[64], want[PATH_MAX], got[PATH_MAX];
	int pid = 0;
	FILE *f;

	if (!realpath(exe, want))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)launcher, (int)launcher);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	ssize_t len = readlink(path, got, sizeof(got) - 1);
	if (len <= 0)
		return 0;
	got[len] = '\0';
	return strcmp(got, want) == 0 ? (pid_t)pid : 0;
}

static int status_call(struct agent_fixture *a)
{
	return agent_fixture_simple(a, PROTOCOL_STATUS, NULL, NULL);
}

void agent_fixture_start(struct agent_fixture *a, const char *faketime)
{
	const char *exe = fixture_binary("VAULT_KEYAGENT");

	ck_assert_msg(a->launcher == 0, "agent_fixture_start: the agent is running");
	a->launcher = fork();
	ck_assert_int_ge(a->launcher, 0);
	if (a->launcher == 0) {
		int log = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		int null_fd = open("/dev/null", O_RDONLY);
		/* The agent goes when the test does, failed or not. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log < 0 || null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(log, 1) < 0 ||
		    dup2(log, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		if (faketime) {
			setenv("TZ", "UTC", 1);
			/* Only the wall clock moves: leases and timeouts keep a sane clock. */
			setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
			/* A sanitizer build of the agent tolerates the preloaded library. */
			const char *asan = getenv("ASAN_OPTIONS");
			char asan_options[512];
			snprintf(asan_options, sizeof(asan_options), "%s%sverify_asan_link_order=0",
				 asan ? asan : "", asan && asan[0] ? ":" : "");
			setenv("ASAN_OPTIONS", asan_options, 1);
			execlp("faketime", "faketime", faketime, exe, "-f", "-c", a->config,
			       (char *)NULL);
		} else {
			execl(exe, exe, "-f", "-c", a->config, (char *)NULL);
		}
		_exit(127);
	}
	record_pid(a, a->launcher);
	a->agent = faketime ? 0 : a->launcher;
	for (int waited = 0; waited < START_WAIT_MS; waited += 10) {
		int status;
		if (!a->agent) {
			a->agent = find_faked_agent(a->launcher, exe);
			if (a->agent)
				record_pid(a, a->agent);
		}
		if (a->agent && status_call(a) == 0)
			return;
		if (waitpid(a->launcher, &status, WNOHANG) == a->launcher) {
			char *text = fixture_read_text(a->log, NULL);
			a->launcher = 0;
			a->agent = 0;
			ck_abort_msg("the agent exited (%d) during startup: %s", fixture_decode_status(status),
				     text ? text : "");
		}
		fixture_sleep_ms(10);
	}
	ck_abort_msg("the agent did not answer within %d ms (log %s)", START_WAIT_MS, a->log);
}

static void end_agent(struct agent_fixture *a, int sig)
{
	if (a->launcher <= 0)
		return;
	kill(a->agent > 0 ? a->agent : a->launcher, sig);
	int status = fixture_wait_child(a->launcher, STOP_WAIT_MS);
	if (status == -ETIMEDOUT) {
		if (a->agent > 0)
			kill(a->agent, SIGKILL);
		kill(a->launcher, SIGKILL);
		waitpid(a->launcher, NULL, 0);
	}
	a->launcher = 0;
	a->agent = 0;
}

void agent_fixture_stop(struct agent_fixture *a)
{
	end_agent(a, SIGTERM);
}

void agent_fixture_kill(struct agent_fixture *a)
{
	ck_assert_msg(a->launcher > 0, "agent_fixture_kill: no agent");
	end_agent(a, SIGKILL);
}

void agent_fixture_destroy(struct agent_fixture *a)
{
	if (a->owner != getpid() || a->root[0] == '\0')
		return;
	detach_all_below(a->root);
	agent_fixture_stop(a);
	/* Daemons whose mount is gone exit by themselves; reap what is left. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	fixture_remove_tree(a->root);
	if (a->watchdog_fd != -1) {
		if (write(a->watchdog_fd, "x", 1) != 1) {
			/* the watchdog is gone: nothing left to tell it */
		}
		close(a->watchdog_fd);
		a->watchdog_fd = -1;
	}
	a->root[0] = '\0';
}

int agent_fixture_call(struct agent_fixture *a, const struct protocol_message *request,
		       struct protocol_message *reply)
{
	struct agent *agent;
	int err;

	memset(reply, 0, sizeof(*reply));
	err = agent_connect(&agent, a->socket);
	if (err)
		return err;
	err = agent_call(agent, request, reply);
	agent_close(agent);
	return err;
}

int agent_fixture_simple(struct agent_fixture *a, enum protocol_type type, const char *name,
			 char *text)
{
	struct protocol_message request = { .type = type }, reply;
	int err;

	if (name)
		snprintf(request.name, sizeof(request.name), "%s", name);
	err = agent_fixture_call(a, &request, &reply);
	if (text)
		snprintf(text, PROTOCOL_TEXT_MAX + 1, "%s", reply.text);
	protocol_message_release(&reply);
	return err;
}

struct agent_outcome agent_fixture_call_as(struct agent_fixture *a, uid_t uid, gid_t gid,
					   const struct protocol_message *request)
{
	struct agent_outcome out = { .err = -EPROTO };
	int fds[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct protocol_message reply;

		close(fds[0]);
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(1);
		out.err = agent_fixture_call(a, request, &reply);
		out.version = reply.version;
		out.mode = reply.mode;
		out.lease_id = reply.lease_id;
		out.key_count = reply.key_count;
		out.rekey = reply.rekey;
		memcpy(out.text, reply.text, sizeof(out.text));
		protocol_message_release(&reply);
		_exit(write(fds[1], &out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 2);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &out, sizeof(out)), (ssize_t)sizeof(out));
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return out;
}

int agent_fixture_reload(struct agent_fixture *a, char *text)
{
	return agent_fixture_simple(a, PROTOCOL_POLICY_RELOAD, NULL, text);
}

void agent_fixture_create_dataset(struct agent_fixture *a, const char *name)
{
	char text[PROTOCOL_TEXT_MAX + 1];
	int err = agent_fixture_simple(a, PROTOCOL_DATASET_CREATE, name, text);
	ck_assert_msg(err == 0, "dataset create '%s': %s (%s)", name, strerror(-err), text);
}

void agent_fixture_vault_dir(const struct agent_fixture *a, const char *name, char *buf)
{
	snprintf(buf, PATH_MAX, "%s/%s", a->data_root, name);
}

void agent_mount_init(struct agent_mount *m, struct agent_fixture *a, const char *dir_name,
		      const char *dataset)
{
	memset(m, 0, sizeof(*m));
	m->agent = a;
	snprintf(m->dataset, sizeof(m->dataset), "%s", dataset);
	snprintf(m->mnt, sizeof(m->mnt), "%s/%s", a->root, dir_name);
	snprintf(m->log, sizeof(m->log), "%s/%s.log", a->root, dir_name);
	ck_assert_msg(mkdir(m->mnt, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", m->mnt,
		      strerror(errno));
}

int agent_mount_try(struct agent_mount *m, const char *options)
{
	char opts[PATH_MAX + 600];
	const char *exe = fixture_binary("VAULTFS");

	ck_assert_msg(!m->mounted, "agent_mount_try: %s is mounted", m->mnt);
	snprintf(opts, sizeof(opts), "dataset=%s,agent=%s,allow_other%s%s", m->dataset,
		 m->agent->socket, options && options[0] ? "," : "", options ? options : "");
	fflush(NULL);
	m->daemon = fork();
	ck_assert_int_ge(m->daemon, 0);
	if (m->daemon == 0) {
		int log = open(m->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int null_fd = open("/dev/null", O_RDONLY);
		if (log < 0 || null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(log, 1) < 0 ||
		    dup2(log, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0); /* no fd of a mount may keep it busy */
		execl(exe, exe, "-f", "-o", opts, m->mnt, (char *)NULL);
		_exit(127);
	}
	record_pid(m->agent, m->daemon);
	for (int waited = 0; waited < MOUNT_WAIT_MS; waited += 10) {
		int status;
		if (agent_is_mount(m->mnt)) {
			m->mounted = true;
			return 0;
		}
		if (waitpid(m->daemon, &status, WNOHANG) == m->daemon) {
			m->daemon = 0;
			m->status = fixture_decode_status(status);
			return m->status;
		}
		fixture_sleep_ms(10);
	}
	ck_abort_msg("%s did not become a mount within %d ms (log %s)", m->mnt, MOUNT_WAIT_MS,
		     m->log);
	return -ETIMEDOUT;
}

void agent_mount_start(struct agent_mount *m, const char *options)
{
	int status = agent_mount_try(m, options);
	if (status != 0) {
		char *text = fixture_read_text(m->log, NULL);
		ck_abort_msg("vaultfs -o dataset=%s exited %d before mounting: %s", m->dataset,
			     status, text ? text : "");
	}
}

int agent_mount_stop(struct agent_mount *m)
{
	int result = 0;

	if (!m->mounted && m->daemon <= 0)
		return 0;
	m->mounted = false;
	detach(m->mnt);
	if (m->daemon > 0) {
		int status = fixture_wait_child(m->daemon, STOP_WAIT_MS);
		if (status == -ETIMEDOUT) {
			kill(m->daemon, SIGKILL);
			waitpid(m->daemon, NULL, 0);
			result = -ETIMEDOUT;
		} else {
			result = fixture_decode_status(status);
		}
		m->status = result;
		m->daemon = 0;
	}
	if (agent_is_mount(m->mnt))
		result = -EBUSY;
	return result;
}

int agent_run_as(uid_t uid, gid_t gid, const gid_t *groups, size_t group_count,
		 int (*fn)(void *arg), void *arg)
{
	int status;

	fflush(NULL);
	pid_t pid = fork();
	if (pid == -1)
		return -errno;
	if (pid == 0) {
		if (setgroups(group_count, groups) == -1 || setresgid(gid, gid, gid) == -1 ||
		    setresuid(uid, uid, uid) == -1) {
			fprintf(stderr, "run as %u:%u: %s\n", (unsigned)uid, (unsigned)gid,
				strerror(errno));
			_exit(125);
		}
		umask(0);
		int result = fn(arg);
		fflush(NULL);
		_exit(result);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -errno;
	return fixture_decode_status(status);
}

bool agent_file_contains(const char *path, const void *needle, size_t len)
{
	size_t size = 0;
	char *text = fixture_read_text(path, &size);
	bool found = text != NULL && memmem(text, size, needle, len) != NULL;
	free(text);
	return found;
}

uint32_t agent_object_key_version(const char *vault_dir, const char *id)
{
	char path[PATH_MAX + 64];
	uint8_t header[20];
	uint32_t version = 0;

	snprintf(path, sizeof(path), "%s/objects/%.2s/%s", vault_dir, id, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, header, sizeof(header), 0) == (ssize_t)sizeof(header))
		version = (uint32_t)header[16] | (uint32_t)header[17] << 8 |
			  (uint32_t)header[18] << 16 | (uint32_t)header[19] << 24;
	close(fd);
	return version;
}
