/*
 * Fixture of the real-mount tests: a fresh vault in a temp dir under /tmp, made by
 * `$VAULTCTL init` and mounted by a `$VAULTFS -f` child whose stderr goes to a log file,
 * plus the helpers the tests share (remount, kill -9, running as another uid, spawning
 * commands, object files of the backing store, reference data). With
 * VAULTFS_TEST_PLAIN_DIR=1 the "mount" is a plain directory and no daemon runs.
 */
#ifndef VAULTFS_TESTS_MOUNT_FIXTURE_H
#define VAULTFS_TESTS_MOUNT_FIXTURE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <check.h>

#define FIXTURE_OBJECT_HEADER_LEN 64   /* lib/object.h OBJECT_HEADER_LEN */
#define FIXTURE_BLOCK_SIZE 4096        /* lib/object.h OBJECT_BLOCK_SIZE */
#define FIXTURE_ID_HEX_LEN 32          /* object ids: 16 bytes in hex */

/*
 * One vault and its mount. Layout of root (mode 0755, removed by fixture_destroy):
 *   root/vault   the backing store (plain mode: unused)
 *   root/mnt     the mountpoint (plain mode: the "mounted" tree itself)
 *   root/key     the key file written by vaultctl init
 *   root/daemon.log  stdout and stderr of every daemon run, appended
 */
struct fixture {
	char root[64];
	char vault[128];
	char mnt[128];
	char key[128];
	char log[128];
	char options[512];   /* extra -o options after keyfile=, may be empty */
	pid_t daemon;        /* the running vaultfs child, 0 when none */
	int daemon_status;   /* wait status of the last daemon that ended */
	pid_t owner;         /* only the process that made the fixture tears it down */
	int watchdog_fd;     /* write end of the pipe a watchdog process waits on */
	bool plain;
	bool mounted;
	bool ephemeral;      /* mount with -o ephemeral instead of keyfile= */
};

/* The fixture used by the checked setups below; tests reach the mount through it. */
extern struct fixture fx;

/* True with VAULTFS_TEST_PLAIN_DIR=1 (no daemon: tests run against the local fs). */
bool fixture_plain_mode(void);

/* Tests that need the daemon return early (and pass) in plain mode. */
#define SKIP_IF_PLAIN()                                                            \
	do {                                                                        \
		if (fixture_plain_mode()) {                                         \
			fprintf(stderr, "skip %s: needs the vaultfs daemon\n", __func__); \
			return;                                                     \
		}                                                                   \
	} while (0)

/*
 * Make the temp dir and run `vaultctl init --key-file root/key root/vault`; then mount
 * unless mount is false. options are extra -o options (NULL or "" for none). Fails the
 * running test (ck_assert) on any error. A watchdog process unmounts and removes
 * everything if the test process dies without fixture_destroy (failed assertion, timeout).
 */
void fixture_create(struct fixture *f, const char *options, bool mount);

/* Unmount if mounted, reap the daemon, remove the temp dir. Safe to call twice. */
void fixture_destroy(struct fixture *f);

/* Start `vaultfs -f -o keyfile=KEY[,options] VAULT MNT` (ephemeral: -o ephemeral[,options])
 * and wait (up to 10 s) until MNT
 * is a mount. Fails the test with the daemon log if it exits or does not mount. */
void fixture_mount(struct fixture *f);

/* fusermount3 -u (falling back to umount -l), then wait for the daemon; fails the test
 * unless the daemon exits with status 0. */
void fixture_unmount(struct fixture *f);

/* fixture_unmount then fixture_mount on the same vault: drops every kernel cache. */
void fixture_remount(struct fixture *f);

/* SIGKILL the daemon and reap it; the mount stays behind, dead (ENOTCONN). */
void fixture_kill_daemon(struct fixture *f);

/* Detach a dead mount left by fixture_kill_daemon; fails the test if MNT stays a mount. */
void fixture_clear_dead_mount(struct fixture *f);

/* Checked setups of fx: a fresh mounted vault (default options / allow_other), and the
 * matching teardown. fixture_setup_unmounted makes the vault without mounting it. */
void fixture_setup(void);
void fixture_setup_allow_other(void);
void fixture_setup_unmounted(void);
void fixture_teardown(void);

/* Path of fmt under fx.mnt. Returns one of 16 rotating static buffers. */
const char *mnt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Directory whose disk usage stands for the vault's: the backing store, or in plain
 * mode the plain directory itself. */
const char *fixture_backing_dir(const struct fixture *f);

/* Sum of st_blocks * 512 of every file under dir (not crossing mounts). */
uint64_t fixture_disk_usage(const char *dir);

/*
 * Run argv (argv[0] a path or a name in PATH) with stdin from /dev/null and stdout and
 * stderr appended to output (NULL: /dev/null). Waits up to timeout_ms, then SIGKILLs it.
 * Returns the exit status, 128 + signal, or -ETIMEDOUT.
 */
int fixture_spawn(const char *const argv[], const char *output, int timeout_ms);

/* Fork a child that takes uid/gid (setgroups, setresgid, setresuid) and returns
 * fn(arg) as its exit status. Returns that status, or 128 + signal. fn must not use
 * ck_assert (it runs in another process): print why and return non-zero instead. */
int fixture_run_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg);
/* fixture_run_as in two halves, to run several users at once: the child's pid (or
 * -errno), and its status. Fork from one thread only: a child forked while another
 * thread of the test allocates can inherit the allocator's lock held (ASan). */
pid_t fixture_start_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg);
int fixture_wait_as(pid_t pid);

/* Bytes in the daemon log of f so far. */
size_t fixture_log_length(const struct fixture *f);

/* True if the daemon log of f, from byte offset since on, contains needle
 * (case-insensitive). */
bool fixture_log_contains(const struct fixture *f, size_t since, const char *needle);

/* Whole content of a file, NUL-terminated, malloc'ed; NULL on error. */
char *fixture_read_text(const char *path, size_t *len);

/* Object ids (32 hex) under vault/objects, sorted; returns the count (at most max). */
int fixture_object_ids(const struct fixture *f, char ids[][FIXTURE_ID_HEX_LEN + 1], int max);
/* The same for the vault in vault_dir. */
int fixture_object_ids_in(const char *vault_dir, char ids[][FIXTURE_ID_HEX_LEN + 1], int max);
/* Bytes held by removed object files, in objects/free and objects/trash (0 expected once
 * the daemon has stopped). */
long long fixture_pool_bytes(const struct fixture *f);

/* Path of the object file with that id, in buf (PATH_MAX). */
void fixture_object_path(const struct fixture *f, const char *id, char *buf);

/* Small helpers shared with agent_fixture.c. */
/* The path in environment variable variable (fails the test when unset). */
const char *fixture_binary(const char *variable);
void fixture_sleep_ms(long ms);
/* Wait for pid up to timeout_ms: its wait status, or -errno (-ETIMEDOUT). */
int fixture_wait_child(pid_t pid, int timeout_ms);
/* A wait status as an exit code: the status, or 128 + signal; negative stays. */
int fixture_decode_status(int status);
/* Remove root and everything below it, not crossing mounts. */
void fixture_remove_tree(const char *root);

/* Is path a mount point (st_dev differs from its parent's)? */
bool fixture_is_mount(const char *path);

/* Reference data: a pseudo-random byte stream selected by seed, addressable by offset,
 * so any range can be made or checked on its own. */
void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t offset);
/* Index of the first byte differing from the stream, or -1 if all match. */
long pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t offset);

/* Write len bytes of the stream (seed, from offset 0) to path (created or truncated),
 * fsync unless sync is false, close. Returns 0 or -errno. */
int pattern_write(const char *path, size_t len, uint64_t seed, bool sync);
/* pattern_write with fsync. */
int pattern_write_file(const char *path, size_t len, uint64_t seed);
/* Read path fully: 0 if it has exactly len bytes of the stream, -EILSEQ on a mismatch,
 * -EFBIG/-ENODATA on a wrong size, -errno on an error. */
int pattern_verify_file(const char *path, size_t len, uint64_t seed);

/* Full pread/pwrite loops: return bytes done or -errno. */
ssize_t pread_full(int fd, void *buf, size_t len, off_t offset);
ssize_t pwrite_full(int fd, const void *buf, size_t len, off_t offset);

/* Assert a call failed with one errno: ck_assert_errno(open(...), ENOENT). */
#define ck_assert_errno(call, err)                                                     \
	do {                                                                            \
		errno = 0;                                                              \
		long ck_result_ = (long)(call);                                         \
		int ck_errno_ = errno;                                                  \
		ck_assert_msg(ck_result_ == -1 && ck_errno_ == (err),                   \
			      "%s: expected -1/%s, got %ld/%s", #call, strerror(err),    \
			      ck_result_, strerror(ck_errno_));                          \
	} while (0)

/* Assert a call returning -1 on error succeeded: ck_assert_ok(fsync(fd)). */
#define ck_assert_ok(call)                                                             \
	do {                                                                            \
		errno = 0;                                                              \
		long ck_result_ = (long)(call);                                         \
		ck_assert_msg(ck_result_ != -1, "%s failed: %s", #call, strerror(errno)); \
	} while (0)

#endif
