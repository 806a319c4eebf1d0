/*
 * vault-keyagent's internals: the agent's state, the server (socket, clients, frames),
 * the request handlers, the lease table and the rekey jobs. One thread runs the poll
 * loop and every function here, so nothing of the agent's state is locked; the only
 * other threads are offline rekey workers (rekey.c), which touch none of it.
 */
#ifndef VAULTFS_KEYAGENT_H
#define VAULTFS_KEYAGENT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/config.h"
#include "lib/policy.h"
#include "lib/protocol.h"

struct keystore;
struct kek;

#define KEYAGENT_CLIENTS_MAX 64
#define KEYAGENT_CLIENTS_PER_UID_MAX 16   /* one user cannot take every slot (root exempt) */
#define KEYAGENT_CLIENTS_RESERVED 16      /* slots only root takes: the mount daemons */
#define KEYAGENT_IDLE_MS 30000            /* a client silent this long is closed */
#define KEYAGENT_SEND_TIMEOUT_MS 1000     /* a reply not taken within this closes the client */
#define KEYAGENT_UNLOCK_BACKOFF_MS 2000   /* after a wrong passphrase */
#define KEYAGENT_LEASES_MAX 4096
#define KEYAGENT_LEASES_PER_UID_MAX 256

/*
 * Who is asking, from SO_PEERCRED only (uid, gid, pid of the connecting process) plus
 * the supplementary groups the group database gives the uid's passwd entry at connect
 * time (getgrouplist). Nothing the client sends is ever taken as its identity.
 */
struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t *groups;        /* malloc'd; NULL when the uid has no passwd entry */
	size_t group_count;
};

#define KEYAGENT_HOLDER_GROUPS_MAX 64

/*
 * A lease is held for a user (the holder: whose grants the mount carries, re-checked at
 * every renewal) by a daemon. Root's own mounts are held and renewed by root. For a
 * user's mount the agent starts the daemon itself (mounts.c): the lease is made first,
 * only that daemon's pid may claim it (a LEASE naming its id), and root renews it. No
 * other peer ever receives its keys.
 */
struct lease {
	uint64_t id;                          /* random, never 0 */
	char dataset[POLICY_NAME_MAX + 1];
	uid_t uid;                            /* holder */
	gid_t gid;
	gid_t groups[KEYAGENT_HOLDER_GROUPS_MAX];   /* holder's supplementary groups */
	size_t group_count;
	uid_t renewer;                        /* who renews and releases it */
	pid_t pid;                            /* the daemon */
	bool started;                         /* the agent started the daemon (mounts.c) */
	bool claimed;                         /* ... and the daemon took the keys */
	char *mountpoint;                     /* malloc'd, as the daemon last said; or NULL */
	struct timespec expires;              /* CLOCK_MONOTONIC */
	const char *revoked;                  /* NULL, or why (static text) */
	int revoked_error;                    /* what a renewal is refused with */
};

struct lease_table {
	struct lease *items;
	size_t count;
	size_t capacity;
};

/* A new lease of ttl seconds for holder (groups beyond KEYAGENT_HOLDER_GROUPS_MAX are
 * dropped), renewed by renewer; *id is random and unique. -ENOSPC when the table or the
 * holder's share of it is full, -ENOMEM. */
int leases_add(struct lease_table *table, const char *dataset,
	       const struct policy_principal *holder, uid_t renewer, pid_t pid, unsigned ttl,
	       uint64_t *id) __attribute__((warn_unused_result));
/* A lease a daemon still holds after an agent restart, taken back with its id. The
 * pointer is valid until the table changes. -EEXIST when id is 0 or in use, as above. */
int leases_restore(struct lease_table *table, uint64_t id, const char *dataset,
		   const struct policy_principal *holder, uid_t renewer, pid_t pid, unsigned ttl,
		   struct lease **out) __attribute__((warn_unused_result));
/* Remember where the lease's mount is (for listings); best effort. */
void leases_set_mountpoint(struct lease *lease, const char *mountpoint);
/* The holder as a principal for policy decisions (points into lease). */
struct policy_principal leases_holder(const struct lease *lease);
/* The lease with id, or NULL. Expired leases are dropped first. */
struct lease *leases_find(struct lease_table *table, uint64_t id);
/* Push expiry ttl seconds from now. */
void leases_renew(struct lease *lease, unsigned ttl);
/* Drop one lease (by pointer from leases_find). */
void leases_remove(struct lease_table *table, struct lease *lease);
/* Mark a lease revoked: its holder's next renewal is refused with error and why. */
void leases_revoke(struct lease *lease, int error, const char *why);
/* leases_revoke every live lease of dataset; returns how many. */
size_t leases_revoke_dataset(struct lease_table *table, const char *dataset, int error,
			     const char *why);
/* Drop leases past their expiry. */
void leases_expire(struct lease_table *table);
void leases_clear(struct lease_table *table);

struct client;
struct rekey_job;
struct keysource;
struct mount_job;
struct audit_trail;

struct keyagent {
	const char *config_path;
	struct config config;        /* policy and lease_ttl replaced on reload */
	struct keystore *keystore;
	struct kek *kek;             /* NULL while sealed */
	struct timespec unlock_after;   /* CLOCK_MONOTONIC: no unlock attempt before */
	struct lease_table leases;
	char host[256];              /* for host patterns: this machine, never the client's word */
	int listen_fd;
	int signal_fd;
	struct client *clients[KEYAGENT_CLIENTS_MAX];
	size_t client_count;
	struct rekey_job *rekey_jobs;   /* list, at most one per dataset (rekey.c) */
	int rekey_wake_fd;              /* eventfd: an offline worker finished (made by
					   server_listen, closed by server_close) */
	struct mount_job *mount_jobs;   /* daemons started for users (mounts.c) */
	struct audit_trail *trail;      /* agent_trail.c: NULL without audit_root */
	bool stopping;
};

/* main.c: reload the configuration's policy (and lease_ttl) atomically. On a bad file
 * returns -errno with the configuration module's "FILE:LINE: problem" in why, and the
 * old policy stays in force. */
int keyagent_reload(struct keyagent *agent, char *why, size_t why_len);
/* main.c: a signal arrived on the signalfd. */
void keyagent_signal(struct keyagent *agent, int signo);

/* server.c: create the socket (see vault-keyagent(8) for modes and owners). */
int server_listen(struct keyagent *agent) __attribute__((warn_unused_result));
/* server.c: the poll loop, until agent->stopping. Returns 0 or -errno. */
int server_run(struct keyagent *agent);
/* server.c: close every client and the socket, unlinking it. */
void server_close(struct keyagent *agent);
/* server.c: the supplementary groups of uid's passwd entry into a malloc'd array (NULL
 * and 0 when it has none). 0 or -errno. */
int server_groups_of(uid_t uid, gid_t **groups, size_t *count);
/* server.c: send a deferred answer to client (closed if it cannot take it). */
void server_answer(struct keyagent *agent, struct client *client,
		   struct protocol_message *reply);

/*
 * mounts.c: the vaultfs daemons the agent starts for users' mounts (PROTOCOL_MOUNT).
 * The request's answer is deferred until the daemon has mounted or failed.
 */
/* Start `vaultfs -f -o dataset=D,agent=SOCKET,lease=ID,mount_uid=U,mount_gid=G[,ro]
 * [,allow_other] MOUNTPOINT` for lease (in the table; its pid is set to the daemon's); client is
 * answered with request_id later. -errno when nothing could be started. */
int mounts_start(struct keyagent *agent, struct client *client, uint32_t request_id,
		 const struct lease *lease, const char *mountpoint, bool read_only, bool shared)
	__attribute__((warn_unused_result));
/* The stderr pipes of daemons still starting, for poll; how many were put in fds. */
size_t mounts_poll_fds(struct keyagent *agent, struct pollfd *fds, size_t max);
/* fd (from mounts_poll_fds) is readable or closed. */
void mounts_output(struct keyagent *agent, int fd);
/* SIGCHLD: reap the daemons that ended. */
void mounts_reap(struct keyagent *agent);
/* Whether a daemon the agent started serves (or starts for) dataset. */
bool mounts_dataset_busy(struct keyagent *agent, const char *dataset);
/* Unmount the mount the agent made at mountpoint for uid (0: for anyone). -ENOENT when
 * it made none there, -EBUSY while files are open in it, -errno. */
int mounts_unmount(struct keyagent *agent, uid_t uid, const char *mountpoint);
/* A daemon the agent started before a restart renews lease (taken back): keep track
 * of its mount at mountpoint again. Best effort. */
void mounts_adopt(struct keyagent *agent, const struct lease *lease, const char *mountpoint);
/* lease was released: forget an adopted daemon that held it. */
void mounts_lease_gone(struct keyagent *agent, uint64_t lease_id);
/* client is gone: its answers are dropped. */
void mounts_forget_client(struct keyagent *agent, const struct client *client);
/* Kill and answer daemons that took too long to mount. */
void mounts_check(struct keyagent *agent);
/* Agent shutdown: forget the daemons (mounted ones keep serving). */
void mounts_clear(struct keyagent *agent);

/*
 * rekey.c: re-encrypting a dataset under its newest key version, one job per dataset.
 * A job is online (the dataset has a live lease: the mount's daemon does the work, asked
 * through its RENEW replies and reporting in its RENEW requests) or offline (a worker
 * thread runs rekey_vault() on the unmounted vault). A finished job stays in the list,
 * DONE or FAILED, until the next run of that dataset replaces it, so that vaultctl can
 * read how it ended.
 */
/* The job of dataset (active or finished), or NULL. */
struct rekey_job *rekey_job_find(struct keyagent *agent, const char *dataset);
/* Whether job is REQUESTED or RUNNING. */
bool rekey_job_active(const struct rekey_job *job);
/* The job's target version. */
uint32_t rekey_job_version(const struct rekey_job *job);
/* Whether an offline worker holds dataset's vault now (leases are then refused). */
bool rekey_offline_busy(struct keyagent *agent, const char *dataset);
/* Start an online run of dataset to version through the daemon holding lease. */
int rekey_start_online(struct keyagent *agent, const char *dataset, uint32_t version,
		       const struct lease *lease, uid_t uid, struct rekey_job **out)
	__attribute__((warn_unused_result));
/* Start an offline run of the vault in dir to version, the newest of keys (taken, also
 * on failure: a keysource_memory holding every live version). -EAGAIN when no thread
 * could be started, -ENOMEM. */
int rekey_start_offline(struct keyagent *agent, const char *dataset, uint32_t version,
			const char *dir, struct keysource *keys, uid_t uid, struct rekey_job **out)
	__attribute__((warn_unused_result));
/* The job's state and counts, and who does it ("offline", "online (mounted by pid N)",
 * followed by ": why" when it failed). */
void rekey_job_report(struct rekey_job *job, struct protocol_rekey *out, char *text,
		      size_t text_len);
/* A RENEW of lease: take the daemon's progress from in (the renewal's rekey field) and
 * fill out with REQUESTED while the dataset's job still waits for that daemon. */
void rekey_renew(struct keyagent *agent, const struct lease *lease,
		 const struct protocol_rekey *in, struct protocol_rekey *out);
/* Fail online jobs whose lease was released, revoked or expired, and reap offline
 * workers that finished. Never blocks. */
void rekey_jobs_check(struct keyagent *agent);
/* Stop dataset's job (cancel and join its worker) and mark it FAILED with why. */
void rekey_job_stop(struct keyagent *agent, const char *dataset, const char *why);
/* Agent shutdown: stop every worker (each run returns -ECANCELED), join, free all. */
void rekey_jobs_clear(struct keyagent *agent);

/*
 * agent_trail.c: the agent's own audit trail in AUDIT_ROOT/@agent (no trail without
 * audit_root). Open after any fork: it runs a writer thread.
 */
int agent_trail_open(struct keyagent *agent) __attribute__((warn_unused_result));
/* Everything written, sealed: 0 or -errno. */
int agent_trail_close(struct keyagent *agent);
/* -EIO while records cannot be written (every request but status is then refused). */
int agent_trail_ok(const struct keyagent *agent);
/* start, stop, a reload on SIGHUP: with the policy file's SHA-256. */
void agent_trail_event(struct keyagent *agent, const char *action, int result);
/* One request and its result (renewals, status and listings are not recorded). */
void agent_trail_request(struct keyagent *agent, const struct peer *peer,
			 const struct protocol_message *request, const char *dataset, int result);

/* requests.c: answer one decoded request from client into reply (PROTOCOL_OK or
 * PROTOCOL_ERROR), logging it as one line. Returns the result (0 or -errno), or
 * -EINPROGRESS when the answer is deferred (a MOUNT: mounts.c sends it). */
int requests_handle(struct keyagent *agent, struct client *client, const struct peer *peer,
		    const struct protocol_message *request, struct protocol_message *reply);

#endif
