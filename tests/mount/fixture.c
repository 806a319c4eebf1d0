/*
 * Fixture of the real-mount tests (see fixture.h): temp vault, vaultfs child, mount
 * polling, unmount with fallback, a watchdog that cleans up after a test process that
 * died mid-test, and the shared helpers.
 */
#include "tests/mount/fixture.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MOUNT_WAIT_MS 10000
#define UNMOUNT_WAIT_MS 10000
#define COMMAND_WAIT_MS 30000

struct fixture fx;

bool fixture_plain_mode(void)
{
	const char *plain = getenv("VAULTFS_TEST_PLAIN_DIR");
	return plain != NULL && strcmp(plain, "1") == 0;
}

const char *fixture_binary(const char *variable)
{
	const char *path = getenv(variable);
	ck_assert_msg(path != NULL && path[0] != '\0',
		      "environment variable %s (path of the binary) is not set", variable);
	return path;
}

void fixture_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

bool fixture_is_mount(const char *path)
{
	char parent[PATH_MAX];
	struct stat st, parent_st;

	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
		return false;
	if (stat(path, &st) == -1)
		return errno == ENOTCONN; /* a dead FUSE mount is still a mount */
	if (stat(parent, &parent_st) == -1)
		return false;
	return st.st_dev != parent_st.st_dev;
}

/* Wait for pid up to timeout_ms; returns its wait status, or -ETIMEDOUT. */
int fixture_wait_child(pid_t pid, int timeout_ms)
{
	int status;
	for (int waited = 0;; waited += 10) {
		pid_t done = waitpid(pid, &status, WNOHANG);
		if (done == pid)
			return status;
		if (done == -1 && errno != EINTR)
			return -errno;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		fixture_sleep_ms(10);
	}
}

int fixture_decode_status(int status)
{
	if (status < 0)
		return status;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static void redirect_output(const char *output)
{
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out_fd = output ? open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
			    : null_fd;
	if (null_fd == -1 || out_fd == -1)
		_exit(126);
	if (dup2(null_fd, STDIN_FILENO) == -1 || dup2(out_fd, STDOUT_FILENO) == -1 ||
	    dup2(out_fd, STDERR_FILENO) == -1)
		_exit(126);
}

static pid_t spawn_async(const char *const argv[], const char *output)
{
	pid_t pid = fork();
	if (pid == 0) {
		redirect_output(output);
		close_range(3, ~0U, 0); /* no fd of a mount may keep it busy */
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int fixture_spawn(const char *const argv[], const char *output, int timeout_ms)
{
	pid_t pid = spawn_async(argv, output);
	if (pid == -1)
		return -errno;
	int status = fixture_wait_child(pid, timeout_ms);
	if (status == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return fixture_decode_status(status);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void fixture_remove_tree(const char *root)
{
	if (root[0] != '\0')
		nftw(root, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Detach whatever is mounted at path: fusermount3 -u, then umount -l. */
static void detach(const char *path)
{
	const char *fusermount[] = { "fusermount3", "-u", "-q", path, NULL };
	const char *lazy[] = { "umount", "-l", path, NULL };

	if (!fixture_is_mount(path))
		return;
	if (fixture_spawn(fusermount, NULL, COMMAND_WAIT_MS) == 0 && !fixture_is_mount(path))
		return;
	fixture_spawn(lazy, NULL, COMMAND_WAIT_MS);
}

/*
 * The watchdog waits for EOF on a pipe whose write end only the test process holds
 * (O_CLOEXEC keeps it out of the daemon). A byte 'x' first means fixture_destroy ran;
 * a bare EOF means the test process died (a failed ck_assert _exits, a timeout
 * SIGKILLs the process group): then it detaches the mount and removes the temp dir.
 */
static void start_watchdog(struct fixture *f)
{
	int fds[2];
	ck_assert_msg(pipe2(fds, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	ck_assert_msg(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		char byte = 0;
		setpgid(0, 0); /* outlive a killpg of the test's process group */
		redirect_output(NULL);
		/* keep only the pipe: an inherited fd on a mount would make it busy */
		if (dup2(fds[0], 3) == -1 || chdir("/") == -1)
			_exit(1);
		close_range(4, ~0U, 0);
		while (read(3, &byte, 1) == -1 && errno == EINTR)
			;
		if (byte != 'x') {
			detach(f->mnt);
			fixture_sleep_ms(200);
			fixture_remove_tree(f->root);
		}
		_exit(0);
	}
	close(fds[0]);
	f->watchdog_fd = fds[1];
}

void fixture_create(struct fixture *f, const char *options, bool mount)
{
	memset(f, 0, sizeof(*f));
	f->owner = getpid();
	f->watchdog_fd = -1;
	f->plain = fixture_plain_mode();
	snprintf(f->options, sizeof(f->options), "%s", options ? options : "");
	umask(022);

	snprintf(f->root, sizeof(f->root), "/tmp/vaultfs-mount.XXXXXX");
	ck_assert_msg(mkdtemp(f->root) != NULL, "mkdtemp: %s", strerror(errno));
	ck_assert_msg(chmod(f->root, 0755) == 0, "chmod: %s", strerror(errno));
	snprintf(f->vault, sizeof(f->vault), "%s/vault", f->root);
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->root);
	snprintf(f->key, sizeof(f->key), "%s/key", f->root);
	snprintf(f->log, sizeof(f->log), "%s/daemon.log", f->root);
	ck_assert_msg(mkdir(f->mnt, 0755) == 0, "mkdir %s: %s", f->mnt, strerror(errno));
	start_watchdog(f);

	if (!f->plain) {
		const char *init[] = { fixture_binary("VAULTCTL"), "init", "--key-file", f->key,
				       f->vault, NULL };
		char out[PATH_MAX + 16];
		snprintf(out, sizeof(out), "%s/vaultctl.out", f->root);
		int status = fixture_spawn(init, out, COMMAND_WAIT_MS);
		if (status != 0) {
			char *text = fixture_read_text(out, NULL);
			ck_abort_msg("vaultctl init exited %d: %s", status, text ? text : "");
		}
	}
	if (mount)
		fixture_mount(f);
}

static void log_tail(const struct fixture *f, char *buf, size_t len)
{
	size_t text_len = 0;
	char *text = fixture_read_text(f->log, &text_len);
	buf[0] = '\0';
	if (text != NULL) {
		const char *start = text_len > len - 1 ? text + text_len - (len - 1) : text;
		snprintf(buf, len, "%s", start);
	}
	free(text);
}

void fixture_mount(struct fixture *f)
{
	char options[PATH_MAX + 600];
	char tail[2048];

	ck_assert_msg(!f->mounted, "fixture_mount: already mounted");
	if (f->plain) {
		f->mounted = true;
		return;
	}
	int len = f->ephemeral ? snprintf(options, sizeof(options), "ephemeral")
			       : snprintf(options, sizeof(options), "keyfile=%s", f->key);
	if (f->options[0] != '\0')
		snprintf(options + len, sizeof(options) - (size_t)len, ",%s", f->options);
	const char *argv[] = { fixture_binary("VAULTFS"), "-f", "-o", options, f->vault, f->mnt, NULL };
	f->daemon = spawn_async(argv, f->log);
	ck_assert_msg(f->daemon > 0, "fork: %s", strerror(errno));

	for (int waited = 0; waited < MOUNT_WAIT_MS; waited += 10) {
		if (fixture_is_mount(f->mnt)) {
			f->mounted = true;
			return;
		}
		int status;
		if (waitpid(f->daemon, &status, WNOHANG) == f->daemon) {
			f->daemon = 0;
			f->daemon_status = status;
			log_tail(f, tail, sizeof(tail));
			ck_abort_msg("vaultfs exited (%d) before mounting: %s",
				     fixture_decode_status(status), tail);
		}
		fixture_sleep_ms(10);
	}
	log_tail(f, tail, sizeof(tail));
	ck_abort_msg("%s did not become a mount within %d ms: %s", f->mnt, MOUNT_WAIT_MS,
		     tail);
}

/* Unmount and reap; returns the daemon's exit status (0 in plain mode), -errno. */
static int unmount_quietly(struct fixture *f)
{
	int result = 0;
	if (!f->mounted)
		return 0;
	f->mounted = false;
	if (f->plain)
		return 0;
	detach(f->mnt);
	if (f->daemon > 0) {
		int status = fixture_wait_child(f->daemon, UNMOUNT_WAIT_MS);
		if (status == -ETIMEDOUT) {
			kill(f->daemon, SIGKILL);
			waitpid(f->daemon, &status, 0);
			result = -ETIMEDOUT;
		} else {
			result = fixture_decode_status(status);
		}
		f->daemon_status = status;
		f->daemon = 0;
	}
	if (fixture_is_mount(f->mnt))
		result = -EBUSY;
	return result;
}

void fixture_unmount(struct fixture *f)
{
	char tail[2048];
	int result = unmount_quietly(f);
	if (result != 0) {
		log_tail(f, tail, sizeof(tail));
		ck_abort_msg("unmount of %s: daemon status %d (-110: did not exit, -16: still "
			     "mounted): %s", f->mnt, result, tail);
	}
}

void fixture_remount(struct fixture *f)
{
	fixture_unmount(f);
	fixture_mount(f);
}

void fixture_kill_daemon(struct fixture *f)
{
	ck_assert_msg(f->daemon > 0, "fixture_kill_daemon: no daemon");
	ck_assert_int_eq(kill(f->daemon, SIGKILL), 0);
	int status;
	ck_assert_int_eq(waitpid(f->daemon, &status, 0), f->daemon);
	f->daemon_status = status;
	f->daemon = 0;
}

void fixture_clear_dead_mount(struct fixture *f)
{
	detach(f->mnt);
	f->mounted = false;
	ck_assert_msg(!fixture_is_mount(f->mnt), "%s is still a mount", f->mnt);
}

void fixture_destroy(struct fixture *f)
{
	if (f->owner != getpid() || f->root[0] == '\0')
		return;
	unmount_quietly(f);
	if (f->daemon > 0) {
		kill(f->daemon, SIGKILL);
		waitpid(f->daemon, NULL, 0);
		f->daemon = 0;
	}
	fixture_remove_tree(f->root);
	if (f->watchdog_fd != -1) {
		if (write(f->watchdog_fd, "x", 1) != 1) {
			/* the watchdog is gone: nothing left to tell it */
		}
		close(f->watchdog_fd);
		f->watchdog_fd = -1;
	}
	f->root[0] = '\0';
}

void fixture_setup(void)
{
	fixture_create(&fx, NULL, true);
}

void fixture_setup_allow_other(void)
{
	fixture_create(&fx, "allow_other", true);
}

void fixture_setup_unmounted(void)
{
	fixture_create(&fx, NULL, false);
}

void fixture_teardown(void)
{
	bool was_mounted = fx.mounted && !fx.plain;
	int result = unmount_quietly(&fx);
	fixture_destroy(&fx);
	ck_assert_msg(!was_mounted || result == 0,
		      "clean unmount: daemon exit status %d (want 0)", result);
}

const char *mnt_path(const char *fmt, ...)
{
	static char buffers[16][PATH_MAX];
	static unsigned next;
	char *buf = buffers[next++ % 16];
	char rel[PATH_MAX - 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(buf, PATH_MAX, "%s/%s", fx.mnt, rel);
	return buf;
}

const char *fixture_backing_dir(const struct fixture *f)
{
	return f->plain ? f->mnt : f->vault;
}

static uint64_t usage_sum;

static int add_usage(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)type;
	(void)ftw;
	usage_sum += (uint64_t)st->st_blocks * 512;
	return 0;
}

uint64_t fixture_disk_usage(const char *dir)
{
	usage_sum = 0;
	nftw(dir, add_usage, 32, FTW_PHYS | FTW_MOUNT);
	return usage_sum;
}

pid_t fixture_start_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == -1)
		return -errno;
	if (pid == 0) {
		if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
		    setresuid(uid, uid, uid) == -1) {
			fprintf(stderr, "run_as %u:%u: %s\n", (unsigned)uid, (unsigned)gid,
				strerror(errno));
			_exit(125);
		}
		int result = fn(arg);
		fflush(NULL);
		_exit(result);
	}
	return pid;
}

int fixture_wait_as(pid_t pid)
{
	int status;
	if (pid < 0)
		return pid;
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -errno;
	return fixture_decode_status(status);
}

int fixture_run_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg)
{
	return fixture_wait_as(fixture_start_as(uid, gid, fn, arg));
}

char *fixture_read_text(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return NULL;
	size_t cap = 4096, used = 0;
	char *text = malloc(cap);
	while (text != NULL) {
		if (used + 1 >= cap) {
			char *bigger = realloc(text, cap * 2);
			if (bigger == NULL) {
				free(text);
				text = NULL;
				break;
			}
			text = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, text + used, cap - used - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	if (text != NULL) {
		text[used] = '\0';
		if (len)
			*len = used;
	}
	return text;
}

size_t fixture_log_length(const struct fixture *f)
{
	struct stat st;
	return stat(f->log, &st) == 0 ? (size_t)st.st_size : 0;
}

bool fixture_log_contains(const struct fixture *f, size_t since, const char *needle)
{
	size_t len = 0;
	char *text = fixture_read_text(f->log, &len);
	bool found = text != NULL && since <= len && strcasestr(text + since, needle) != NULL;
	free(text);
	return found;
}

static bool is_hex_id(const char *name)
{
	if (strlen(name) != FIXTURE_ID_HEX_LEN)
		return false;
	for (const char *c = name; *c; c++)
		if (!isxdigit((unsigned char)*c))
			return false;
	return true;
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

int fixture_object_ids(const struct fixture *f, char ids[][FIXTURE_ID_HEX_LEN + 1], int max)
{
	return fixture_object_ids_in(f->vault, ids, max);
}

int fixture_object_ids_in(const char *vault_dir, char ids[][FIXTURE_ID_HEX_LEN + 1], int max)
{
	char objects[PATH_MAX + 16];
	int count = 0;

	snprintf(objects, sizeof(objects), "%s/objects", vault_dir);
	DIR *top = opendir(objects);
	if (top == NULL)
		return 0;
	struct dirent *sub;
	while ((sub = readdir(top)) != NULL) {
		char sub_path[PATH_MAX * 2];
		/* Fan-out directories only: objects/free and objects/trash hold removed files. */
		if (strlen(sub->d_name) != 2 || !isxdigit((unsigned char)sub->d_name[0]) ||
		    !isxdigit((unsigned char)sub->d_name[1]))
			continue;
		snprintf(sub_path, sizeof(sub_path), "%s/%s", objects, sub->d_name);
		DIR *dir = opendir(sub_path);
		if (dir == NULL)
			continue;
		struct dirent *entry;
		while ((entry = readdir(dir)) != NULL)
			if (is_hex_id(entry->d_name) && count < max)
				snprintf(ids[count++], FIXTURE_ID_HEX_LEN + 1, "%s", entry->d_name);
		closedir(dir);
	}
	closedir(top);
	qsort(ids, (size_t)count, FIXTURE_ID_HEX_LEN + 1, compare_ids);
	return count;
}

long long fixture_pool_bytes(const struct fixture *f)
{
	static const char *const subs[] = { "free", "trash" };
	char pool[PATH_MAX + 16];
	long long bytes = 0;
	struct dirent *entry;
	struct stat st;

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(pool, sizeof(pool), "%s/objects/%s", f->vault, subs[i]);
		DIR *dir = opendir(pool);
		if (dir == NULL)
			continue;
		while ((entry = readdir(dir)) != NULL)
			if (entry->d_name[0] != '.' && fstatat(dirfd(dir), entry->d_name, &st, 0) == 0)
				bytes += st.st_size;
		closedir(dir);
	}
	return bytes;
}

void fixture_object_path(const struct fixture *f, const char *id, char *buf)
{
	snprintf(buf, PATH_MAX, "%s/objects/%.2s/%s", f->vault, id, id);
}

static uint64_t splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t offset)
{
	uint8_t *out = buf;
	uint64_t salt = splitmix64(seed * 2 + 1);
	size_t i = 0;
	while (i < len) {
		uint64_t pos = offset + i;
		uint64_t word = splitmix64(salt ^ (pos >> 3));
		for (unsigned byte = pos & 7; byte < 8 && i < len; byte++, i++)
			out[i] = (uint8_t)(word >> (8 * byte));
	}
}

long pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t offset)
{
	uint8_t expect[65536];
	const uint8_t *in = buf;
	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(expect) ? len - done : sizeof(expect);
		pattern_fill(expect, n, seed, offset + done);
		if (memcmp(expect, in + done, n) != 0) {
			for (size_t i = 0; i < n; i++)
				if (expect[i] != in[done + i])
					return (long)(done + i);
		}
		done += n;
	}
	return -1;
}

ssize_t pread_full(int fd, void *buf, size_t len, off_t offset)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, offset + (off_t)done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t pwrite_full(int fd, const void *buf, size_t len, off_t offset)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, offset + (off_t)done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -errno;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int pattern_write_file(const char *path, size_t len, uint64_t seed)
{
	return pattern_write(path, len, seed, true);
}

int pattern_write(const char *path, size_t len, uint64_t seed, bool sync)
{
	uint8_t chunk[65536];
	int result = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return -errno;
	for (size_t done = 0; done < len && result == 0;) {
		size_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
		pattern_fill(chunk, n, seed, done);
		ssize_t written = pwrite_full(fd, chunk, n, (off_t)done);
		if (written < 0)
			result = (int)written;
		done += n;
	}
	if (result == 0 && sync && fsync(fd) == -1)
		result = -errno;
	if (close(fd) == -1 && result == 0)
		result = -errno;
	return result;
}

int pattern_verify_file(const char *path, size_t len, uint64_t seed)
{
	uint8_t chunk[65536];
	int result = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) == -1)
		result = -errno;
	else if ((uint64_t)st.st_size != len)
		result = (uint64_t)st.st_size > len ? -EFBIG : -ENODATA;
	for (size_t done = 0; done < len && result == 0;) {
		size_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
		ssize_t got = pread_full(fd, chunk, n, (off_t)done);
		if (got < 0)
			result = (int)got;
		else if ((size_t)got != n)
			result = -ENODATA;
		else if (pattern_check(chunk, n, seed, done) != -1)
			result = -EILSEQ;
		done += n;
	}
	close(fd);
	return result;
}
