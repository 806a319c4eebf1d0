/*
 * vault-keyagent's internals: the agent's state, the server (socket, clients, frames),
 * the request handlers and the lease table. One thread: every function here runs on
 * the poll loop, so nothing is locked.
 */
#ifndef VAULTFS_KEYAGENT_H
#define VAULTFS_KEYAGENT_H

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

struct lease {
	uint64_t id;                          /* random, never 0 */
	char dataset[POLICY_NAME_MAX + 1];
	uid_t uid;                            /* holder */
	pid_t pid;
	struct timespec expires;              /* CLOCK_MONOTONIC */
	const char *revoked;                  /* NULL, or why (static text) */
	int revoked_error;                    /* what a renewal is refused with */
};

struct lease_table {
	struct lease *items;
	size_t count;
	size_t capacity;
};

/* A new lease of ttl seconds; *id is random and unique. -ENOSPC when the table or the
 * uid's share of it is full, -ENOMEM. */
int leases_add(struct lease_table *table, const char *dataset, uid_t uid, pid_t pid,
	       unsigned ttl, uint64_t *id) __attribute__((warn_unused_result));
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

/* requests.c: answer one decoded request into reply (PROTOCOL_OK or PROTOCOL_ERROR),
 * logging it as one line. Returns the result (0 or -errno). */
int requests_handle(struct keyagent *agent, const struct peer *peer,
		    const struct protocol_message *request, struct protocol_message *reply);
/* requests.c: the name of a request type for logs. */
const char *requests_type_name(uint32_t type);

#endif
