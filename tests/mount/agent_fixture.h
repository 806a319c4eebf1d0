/*
 * Fixture of the real-mount tests through the key agent: a real `$VAULT_KEYAGENT -f`
 * with a temporary configuration (kek = keyfile, socket, keystore and data root in a
 * temp dir, a small lease_ttl), optionally under libfaketime; requests to it over its
 * socket as root or as another uid; and `$VAULTFS -f -o dataset=NAME,agent=SOCKET`
 * mounts of its datasets. Needs root (setresuid children, /dev/fuse).
 */
#ifndef VAULTFS_TESTS_MOUNT_AGENT_FIXTURE_H
#define VAULTFS_TESTS_MOUNT_AGENT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/protocol.h"

#define AGENT_FIXTURE_ROLES_MAX 4096
#define AGENT_FIXTURE_SOCKET_GID 1500  /* socket_group: key-admin children run with it */

/*
 * One agent. Layout of root (mode 0755, removed by agent_fixture_destroy):
 *   root/keyagent.conf  the configuration ([agent] section, then roles)
 *   root/kek            the KEK: 64 hex digits, mode 0600
 *   root/run/agent.sock the socket
 *   root/keystore       the keystore, kept across agent restarts
 *   root/vaults/NAME    each dataset's vault
 *   root/agent.log      the agent's stderr, appended over every start
 *   root/pids           every process started, for the watchdog
 */
struct agent_fixture {
	char root[64];
	char config[128];
	char kek[128];
	char kek_hex[65];        /* the KEK file's content, without the newline */
	char socket[128];
	char data_root[128];
	char log[128];
	char pids[128];
	char roles[AGENT_FIXTURE_ROLES_MAX];
	unsigned lease_ttl;
	pid_t agent;             /* the agent process itself (under faketime: its child) */
	pid_t launcher;          /* our child: the agent, or the faketime wrapper */
	pid_t owner;             /* only the process that made the fixture tears it down */
	int watchdog_fd;
};

/* One mount of a dataset, at root/NAME of its agent fixture. */
struct agent_mount {
	struct agent_fixture *agent;
	char dataset[POLICY_NAME_MAX + 1];
	char mnt[128];
	char log[128];           /* stdout and stderr of every daemon run, appended */
	pid_t daemon;            /* 0 when none */
	int status;              /* exit status of the last daemon that ended, or 128+sig */
	bool mounted;
};

/* What a request sent from another uid got (agent_fixture_call_as). */
struct agent_outcome {
	int err;                 /* 0 or the -errno agent_call() returned */
	uint32_t version;
	uint32_t mode;
	uint64_t lease_id;
	size_t key_count;
	struct protocol_rekey rekey;
	char text[PROTOCOL_TEXT_MAX + 1];
};

/*
 * Make the temp dir, a random KEK file and the configuration with roles (INI text
 * appended after [agent]) and lease_ttl 5; start nothing. A watchdog process kills what
 * the fixture started, detaches its mounts and removes the temp dir if the test process
 * dies first. Fails the running test on any error.
 */
void agent_fixture_create(struct agent_fixture *a, const char *roles);

/* Rewrite the configuration with new roles (the agent sees them at its next reload). */
void agent_fixture_set_roles(struct agent_fixture *a, const char *roles);

/*
 * Start the agent (`-f -c CONFIG`, stderr to the log) and wait until it answers a
 * status request. faketime NULL: directly; else under `faketime TIMESTAMP` (TZ=UTC,
 * monotonic clock not faked). Fails the test if it exits or does not answer in 10 s.
 */
void agent_fixture_start(struct agent_fixture *a, const char *faketime);

/* SIGTERM the agent and wait for it (and the faketime wrapper). Safe when stopped. */
void agent_fixture_stop(struct agent_fixture *a);

/* SIGKILL the agent and reap it: leases can no longer be renewed. */
void agent_fixture_kill(struct agent_fixture *a);

/* Stop the agent, unmount every mount made by agent_mount_*, remove the temp dir. Safe
 * to call twice; does nothing in a process other than the one that made the fixture. */
void agent_fixture_destroy(struct agent_fixture *a);

/* One request as this process (root). reply is released by the caller; on transport
 * errors it holds nothing. Returns what agent_call() returns. */
int agent_fixture_call(struct agent_fixture *a, const struct protocol_message *request,
		       struct protocol_message *reply);

/* A request with only a type and a name (NULL: none), as root; the reply's text, if
 * any, goes to text (PROTOCOL_TEXT_MAX + 1 bytes, may be NULL). */
int agent_fixture_simple(struct agent_fixture *a, enum protocol_type type, const char *name,
			 char *text);

/* One request from a child process with uid, gid and no other groups (pass gid
 * AGENT_FIXTURE_SOCKET_GID to reach the socket). */
struct agent_outcome agent_fixture_call_as(struct agent_fixture *a, uid_t uid, gid_t gid,
					   const struct protocol_message *request);

/* PROTOCOL_POLICY_RELOAD as root: 0 or -errno (text: the agent's message, may be NULL). */
int agent_fixture_reload(struct agent_fixture *a, char *text);

/* PROTOCOL_DATASET_CREATE as root; fails the test unless it succeeds. */
void agent_fixture_create_dataset(struct agent_fixture *a, const char *name);

/* The vault directory of dataset name, in buf (PATH_MAX). */
void agent_fixture_vault_dir(const struct agent_fixture *a, const char *name, char *buf);

/* Make root/dir_name (0755) as the mountpoint of m for dataset; mounts nothing. */
void agent_mount_init(struct agent_mount *m, struct agent_fixture *a, const char *dir_name,
		      const char *dataset);

/*
 * Start `vaultfs -f -o dataset=D,agent=SOCKET,allow_other[,options] MNT` and wait up to
 * 10 s. Returns 0 once MNT is a mount, or the daemon's exit status (128 + signal) if it
 * ended first; fails the test if it neither mounts nor ends.
 */
int agent_mount_try(struct agent_mount *m, const char *options);

/* agent_mount_try that fails the test, with the daemon's log, unless it mounts. */
void agent_mount_start(struct agent_mount *m, const char *options);

/* fusermount3 -u (then umount -l) and wait for the daemon: its exit status, -ETIMEDOUT
 * if it did not exit in 10 s (it is then killed), -EBUSY if MNT stays a mount. */
int agent_mount_stop(struct agent_mount *m);

/* Fork a child that takes uid, gid and exactly the supplementary groups given
 * (setgroups, setresgid, setresuid) and returns fn(arg) as its exit status. Returns that
 * status or 128 + signal. fn must not use ck_assert: print why and return non-zero. */
int agent_run_as(uid_t uid, gid_t gid, const gid_t *groups, size_t group_count,
		 int (*fn)(void *arg), void *arg);

/* Is path a mount point in the kernel's mount table? Unlike a stat, this also says yes
 * for a revoked mount (which refuses stat) and a dead one (ENOTCONN). */
bool agent_is_mount(const char *path);

/* Does the file at path hold needle (len bytes) anywhere? false if it cannot be read. */
bool agent_file_contains(const char *path, const void *needle, size_t len);

/* The key version in the header of object id (u32 LE at byte 16); 0 if unreadable. */
uint32_t agent_object_key_version(const char *vault_dir, const char *id);

#endif
