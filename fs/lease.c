/*
 * Mounting through the key agent: the lease. lease_acquire() asks the agent for a
 * dataset's keys, vault directory and grants; a thread then renews the lease well
 * before it expires, taking new grants and new key versions each time. When the agent
 * refuses a renewal (revocation, role removed, key shredded) or the lease runs out
 * without one, lease_revoke() wipes every key, drops the kernel's cached pages and
 * attributes of the mount and makes the gate refuse everything, open files included.
 * The mount itself stays until unmounted, so jobs see EACCES rather than hangs.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/agent.h"
#include "lib/clock.h"
#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/secret.h"
#include "lib/vault.h"

/* Renew at most this long after the last renewal, so revocation bites within it. */
#define RENEW_INTERVAL_MAX_MS 1500

struct lease {
	char *socket_path;
	char dataset[POLICY_NAME_MAX + 1];
	char mountpoint[PROTOCOL_PATH_MAX + 1];   /* told to a restarted agent */
	uint32_t holder_uid, holder_gid;          /* whom it is held for: 0 for root */
	uint64_t id;
	unsigned ttl;
	struct timespec expires;      /* CLOCK_MONOTONIC */
	struct keysource *keys;       /* borrowed: the vault's key source */
	struct vfs *vfs;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	bool running;
};

static void monotonic_after(struct timespec *at, unsigned seconds)
{
	clock_gettime(CLOCK_MONOTONIC, at);
	at->tv_sec += seconds;
}

static long until_ms(const struct timespec *at)
{
	return (long)-clock_ms_since(CLOCK_MONOTONIC, at);
}

static bool passed(const struct timespec *at)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > at->tv_sec || (now.tv_sec == at->tv_sec && now.tv_nsec >= at->tv_nsec);
}

/* Take the keys of a lease or renewal answer into the key source. */
static int take_keys(struct keysource *keys, const struct protocol_message *reply)
{
	for (size_t i = 0; i < reply->key_count; i++) {
		int err = keysource_memory_add(keys, reply->keys[i].version, reply->keys[i].key);
		if (err)
			return err;
	}
	return 0;
}

static bool has_group_grants(const struct policy_grants *grants)
{
	for (size_t i = 0; i < grants->count; i++)
		if (grants->grants[i].is_group)
			return true;
	return false;
}

static bool has_path_rules(const struct policy_grants *grants)
{
	for (size_t i = 0; i < grants->count; i++)
		if (grants->grants[i].rule_count)
			return true;
	return false;
}

static bool same_grants(const struct policy_grants *a, const struct policy_grants *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		const struct policy_grant *x = &a->grants[i], *y = &b->grants[i];
		if (x->is_group != y->is_group || x->id != y->id || x->mode != y->mode ||
		    x->rule_count != y->rule_count)
			return false;
		for (size_t r = 0; r < x->rule_count; r++)
			if (x->rules[r].mode != y->rules[r].mode ||
			    strcmp(x->rules[r].glob, y->rules[r].glob) != 0)
				return false;
	}
	return true;
}

/* Replace the grants the gate decides with (the reply's are moved out of it). Returns
 * whether they changed. */
static bool take_grants(struct vfs_access *access, struct protocol_message *reply)
{
	pthread_rwlock_wrlock(&access->lock);
	bool changed = !same_grants(&access->grants, &reply->grants);
	policy_grants_release(&access->grants);
	access->grants = reply->grants;
	__atomic_store_n(&access->group_grants, has_group_grants(&access->grants), __ATOMIC_RELEASE);
	access->path_rules = has_path_rules(&access->grants);
	memset(&reply->grants, 0, sizeof(reply->grants));
	pthread_rwlock_unlock(&access->lock);
	return changed;
}

int lease_acquire(struct lease **out, const char *socket_path, const char *dataset,
		  uint64_t claim, struct keysource **keys_out, char **vault_dir,
		  struct vfs_access **access_out)
{
	struct protocol_message request = { 0 }, reply = { 0 };
	struct vfs_access *access = NULL;
	struct keysource *keys = NULL;
	struct lease *lease = NULL;
	struct agent *agent;
	char host[PROTOCOL_TEXT_MAX + 1] = "";
	int err;

	err = agent_connect(&agent, socket_path);
	if (err)
		return err;
	request.type = PROTOCOL_LEASE;
	request.lease_id = claim;
	snprintf(request.name, sizeof(request.name), "%s", dataset);
	gethostname(host, sizeof(host) - 1);
	snprintf(request.text, sizeof(request.text), "%s", host);
	err = agent_call(agent, &request, &reply);
	agent_close(agent);
	if (err) {
		if (reply.text[0])
			log_error("agent refused the lease on '%s': %s", dataset, reply.text);
		goto out_release;
	}
	if (reply.ttl == 0 || reply.path[0] == '\0' || reply.key_count == 0) {
		err = -EPROTO;
		goto out_release;
	}
	lease = calloc(1, sizeof(*lease));
	access = calloc(1, sizeof(*access));
	if (lease && socket_path)
		lease->socket_path = strdup(socket_path);
	if (!lease || !access || (socket_path && !lease->socket_path)) {
		err = -ENOMEM;
		goto out_free;
	}
	err = keysource_memory_new(&keys);
	if (!err)
		err = take_keys(keys, &reply);
	if (err)
		goto out_free;
	*vault_dir = strdup(reply.path);
	if (!*vault_dir) {
		err = -ENOMEM;
		goto out_free;
	}
	pthread_rwlock_init(&access->lock, NULL);
	take_grants(access, &reply);
	snprintf(lease->dataset, sizeof(lease->dataset), "%s", dataset);
	lease->id = reply.lease_id;
	lease->ttl = reply.ttl;
	lease->keys = keys;
	monotonic_after(&lease->expires, reply.ttl);
	pthread_mutex_init(&lease->lock, NULL);
	pthread_cond_init(&lease->wake, NULL);
	*out = lease;
	*keys_out = keys;
	*access_out = access;
	protocol_message_release(&reply);
	return 0;

out_free:
	keysource_free(keys);
	if (lease)
		free(lease->socket_path);
	free(lease);
	free(access);
out_release:
	protocol_message_release(&reply);
	return err;
}

/* Drop every cached page and attribute the kernel holds for the mount's inodes. */
static void invalidate_kernel_caches(struct vfs *vfs)
{
	uint64_t *inos = NULL;
	size_t count = 0;

	pthread_mutex_lock(&vfs->table_lock);
	inos = calloc(vfs->table_count ? vfs->table_count : 1, sizeof(*inos));
	for (size_t i = 0; inos && i < vfs->table_size; i++)
		for (struct vnode *node = vfs->table[i]; node; node = node->next)
			inos[count++] = node->ino;
	pthread_mutex_unlock(&vfs->table_lock);
	(void)fuse_lowlevel_notify_inval_inode(vfs->session, META_ROOT_INO, 0, 0);
	for (size_t i = 0; i < count; i++)
		if (inos[i] != META_ROOT_INO)
			(void)fuse_lowlevel_notify_inval_inode(vfs->session, inos[i], 0, 0);
	free(inos);
}

void lease_revoke(struct vfs *vfs, struct keysource *keys, const char *why)
{
	struct vfs_access *access = vfs->access;

	if (!access || __atomic_exchange_n(&access->revoked, true, __ATOMIC_ACQ_REL))
		return;
	/* The gate refuses new requests from here on. Records changed a moment ago are
	 * stored while the keys still exist, so the vault stays consistent; then every key
	 * goes: leased DEKs, derived metadata keys, file keys. */
	if (node_flush_all(vfs) != 0)
		log_warn("some metadata could not be stored before the keys were wiped");
	keysource_memory_revoke(keys);
	meta_revoke_keys(vfs->vault->meta);
	node_forget_keys(vfs);
	trail_event(vfs, "lease-revoked", why, -EACCES);
	trail_wipe_keys(vfs);
	if (vfs->session)
		invalidate_kernel_caches(vfs);
	log_warn("lease revoked (%s): keys wiped, every access now refused", why);
}

/* One renewal. *answered: the agent itself refused it (not a transport failure). */
static int renew_once(struct lease *lease, bool *answered)
{
	struct protocol_message request = { 0 }, reply = { 0 };
	struct agent *agent;
	int err = agent_connect(&agent, lease->socket_path);

	*answered = false;
	if (err)
		return err;
	request.type = PROTOCOL_RENEW;
	request.lease_id = lease->id;
	/* What a restarted agent needs to take the lease back. */
	snprintf(request.name, sizeof(request.name), "%s", lease->dataset);
	snprintf(request.path, sizeof(request.path), "%s", lease->mountpoint);
	request.holder_uid = lease->holder_uid;
	request.holder_gid = lease->holder_gid;
	vfs_rekey_status(lease->vfs, &request.rekey);
	err = agent_call(agent, &request, &reply);
	*answered = reply.type == PROTOCOL_ERROR;
	agent_close(agent);
	if (!err) {
		err = take_keys(lease->keys, &reply);
		/* After the keys: the run needs the version it is asked to reach. */
		if (!err && reply.rekey.state == PROTOCOL_REKEY_REQUESTED) {
			int started = vfs_rekey_start(lease->vfs, reply.rekey.version);
			if (started)
				log_error("cannot start the rekey the agent asked for: %s",
					  strerror(-started));
		}
		/* Someone may have lost access: pages and attributes the kernel cached for
		 * them must not keep answering without asking the gate. */
		if (take_grants(lease->vfs->access, &reply) && lease->vfs->session)
			invalidate_kernel_caches(lease->vfs);
		if (reply.ttl)
			lease->ttl = reply.ttl;
		monotonic_after(&lease->expires, lease->ttl);
	} else if (reply.text[0]) {
		log_warn("agent refused to renew the lease: %s", reply.text);
	}
	protocol_message_release(&reply);
	return err;
}

/* A refusal the agent answered is final, except "sealed, try again" (-EAGAIN: it
 * restarted with a passphrase KEK). Whatever else failed - the agent restarting, its
 * socket gone or full, a timeout - is tried again until the lease runs out. */
static bool final_refusal(int err, bool answered)
{
	return answered && err != -EAGAIN;
}

static void *renewer(void *arg)
{
	struct lease *lease = arg;

	pthread_mutex_lock(&lease->lock);
	while (!lease->stop) {
		struct timespec deadline;
		unsigned interval_ms = lease->ttl * 1000 / 3;
		if (interval_ms > RENEW_INTERVAL_MAX_MS)
			interval_ms = RENEW_INTERVAL_MAX_MS;
		/* Wake no later than the expiry: an unreachable agent must not stretch it. */
		long left_ms = until_ms(&lease->expires);
		if (left_ms < (long)interval_ms)
			interval_ms = left_ms > 50 ? (unsigned)left_ms : 50;
		clock_after_ms(CLOCK_REALTIME, (long)interval_ms, &deadline);
		pthread_cond_timedwait(&lease->wake, &lease->lock, &deadline);
		if (lease->stop)
			break;
		pthread_mutex_unlock(&lease->lock);
		bool answered;
		int err = renew_once(lease, &answered);
		if (err && final_refusal(err, answered)) {
			lease_revoke(lease->vfs, lease->keys, "the agent refused to renew it");
		} else if (err && passed(&lease->expires)) {
			lease_revoke(lease->vfs, lease->keys, "it expired: the agent is unreachable");
		}
		pthread_mutex_lock(&lease->lock);
		if (lease->vfs->access && __atomic_load_n(&lease->vfs->access->revoked, __ATOMIC_ACQUIRE))
			break;
	}
	pthread_mutex_unlock(&lease->lock);
	return NULL;
}

int lease_start(struct lease *lease, struct vfs *vfs, const char *mountpoint,
		uint32_t holder_uid, uint32_t holder_gid)
{
	lease->vfs = vfs;
	snprintf(lease->mountpoint, sizeof(lease->mountpoint), "%s", mountpoint);
	lease->holder_uid = holder_uid;
	lease->holder_gid = holder_gid;
	int err = pthread_create(&lease->thread, NULL, renewer, lease);
	if (err)
		return -err;
	lease->running = true;
	return 0;
}

void lease_stop(struct lease *lease)
{
	if (!lease || !lease->running)
		return;
	pthread_mutex_lock(&lease->lock);
	lease->stop = true;
	pthread_cond_signal(&lease->wake);
	pthread_mutex_unlock(&lease->lock);
	pthread_join(lease->thread, NULL);
	lease->running = false;
}

void lease_release(struct lease *lease)
{
	struct protocol_message request = { 0 }, reply = { 0 };
	struct agent *agent;

	if (!lease)
		return;
	lease_stop(lease);
	/* Tell the agent the mount is gone; nothing depends on it hearing this. */
	if (agent_connect(&agent, lease->socket_path) == 0) {
		request.type = PROTOCOL_RELEASE;
		request.lease_id = lease->id;
		snprintf(request.name, sizeof(request.name), "%s", lease->dataset);
		if (agent_call(agent, &request, &reply) != 0)
			log_debug("the agent did not acknowledge the lease release");
		protocol_message_release(&reply);
		agent_close(agent);
	}
	pthread_mutex_destroy(&lease->lock);
	pthread_cond_destroy(&lease->wake);
	free(lease->socket_path);
	free(lease);
}

void lease_access_free(struct vfs_access *access)
{
	if (!access)
		return;
	policy_grants_release(&access->grants);
	pthread_rwlock_destroy(&access->lock);
	free(access);
}
