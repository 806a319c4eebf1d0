/*
 * The lease table: who holds which dataset's keys, until when. A lease is renewed by
 * its holder well before it expires; a revoked lease stays in the table until its
 * expiry so that the holder's next renewal is told why it is refused.
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"

static void now_monotonic(struct timespec *now)
{
	clock_gettime(CLOCK_MONOTONIC, now);
}

static bool expired(const struct lease *lease, const struct timespec *now)
{
	return now->tv_sec > lease->expires.tv_sec ||
	       (now->tv_sec == lease->expires.tv_sec && now->tv_nsec >= lease->expires.tv_nsec);
}

void leases_expire(struct lease_table *table)
{
	struct timespec now;
	size_t kept = 0;

	now_monotonic(&now);
	for (size_t i = 0; i < table->count; i++) {
		if (expired(&table->items[i], &now))
			free(table->items[i].mountpoint);
		else if (kept++ != i)
			table->items[kept - 1] = table->items[i];
	}
	table->count = kept;
}

static struct lease *find(struct lease_table *table, uint64_t id)
{
	for (size_t i = 0; i < table->count; i++)
		if (table->items[i].id == id)
			return &table->items[i];
	return NULL;
}

/* A new lease with id (0: a fresh random one). */
static int add(struct lease_table *table, uint64_t id, const char *dataset,
	       const struct policy_principal *holder, uid_t renewer, pid_t pid, unsigned ttl,
	       struct lease **out)
{
	uid_t uid = holder->uid;
	struct lease *lease;
	size_t held = 0;

	leases_expire(table);
	for (size_t i = 0; i < table->count; i++)
		if (table->items[i].uid == uid)
			held++;
	if (table->count >= KEYAGENT_LEASES_MAX || (uid != 0 && held >= KEYAGENT_LEASES_PER_UID_MAX))
		return -ENOSPC;
	if (table->count == table->capacity) {
		size_t capacity = table->capacity ? 2 * table->capacity : 16;
		struct lease *grown = realloc(table->items, capacity * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		table->items = grown;
		table->capacity = capacity;
	}
	lease = &table->items[table->count];
	memset(lease, 0, sizeof(*lease));
	/* Ids are capabilities of a sort (a renewal names one): random, so they cannot be
	 * guessed from another lease, and checked against the renewer's uid anyway. */
	lease->id = id;
	while (lease->id == 0 || (!id && find(table, lease->id)))
		crypto_random(&lease->id, sizeof(lease->id));
	snprintf(lease->dataset, sizeof(lease->dataset), "%s", dataset);
	lease->uid = uid;
	lease->gid = holder->gid;
	lease->group_count = holder->group_count < KEYAGENT_HOLDER_GROUPS_MAX
		? holder->group_count : KEYAGENT_HOLDER_GROUPS_MAX;
	if (lease->group_count)
		memcpy(lease->groups, holder->groups, lease->group_count * sizeof(gid_t));
	lease->renewer = renewer;
	lease->pid = pid;
	leases_renew(lease, ttl);
	table->count++;
	*out = lease;
	return 0;
}

int leases_add(struct lease_table *table, const char *dataset,
	       const struct policy_principal *holder, uid_t renewer, pid_t pid, unsigned ttl,
	       uint64_t *id)
{
	struct lease *lease;
	int err = add(table, 0, dataset, holder, renewer, pid, ttl, &lease);

	if (!err)
		*id = lease->id;
	return err;
}

int leases_restore(struct lease_table *table, uint64_t id, const char *dataset,
		   const struct policy_principal *holder, uid_t renewer, pid_t pid, unsigned ttl,
		   struct lease **out)
{
	leases_expire(table);
	if (id == 0 || find(table, id))
		return -EEXIST;
	return add(table, id, dataset, holder, renewer, pid, ttl, out);
}

struct policy_principal leases_holder(const struct lease *lease)
{
	return (struct policy_principal){ lease->uid, lease->gid, lease->groups,
					  lease->group_count };
}

struct lease *leases_find(struct lease_table *table, uint64_t id)
{
	leases_expire(table);
	return find(table, id);
}

void leases_renew(struct lease *lease, unsigned ttl)
{
	now_monotonic(&lease->expires);
	lease->expires.tv_sec += ttl;
}

void leases_remove(struct lease_table *table, struct lease *lease)
{
	size_t i = (size_t)(lease - table->items);

	if (i >= table->count)
		return;
	free(lease->mountpoint);
	table->items[i] = table->items[table->count - 1];
	table->count--;
}

void leases_revoke(struct lease *lease, int error, const char *why)
{
	if (lease->revoked)
		return;
	lease->revoked = why;
	lease->revoked_error = error;
}

size_t leases_revoke_dataset(struct lease_table *table, const char *dataset, int error,
			     const char *why)
{
	size_t revoked = 0;

	leases_expire(table);
	for (size_t i = 0; i < table->count; i++) {
		struct lease *lease = &table->items[i];

		if (strcmp(lease->dataset, dataset) == 0 && !lease->revoked) {
			leases_revoke(lease, error, why);
			revoked++;
		}
	}
	return revoked;
}

void leases_set_mountpoint(struct lease *lease, const char *mountpoint)
{
	if (!mountpoint[0] || (lease->mountpoint && strcmp(lease->mountpoint, mountpoint) == 0))
		return;
	free(lease->mountpoint);
	lease->mountpoint = strdup(mountpoint);
}

void leases_clear(struct lease_table *table)
{
	for (size_t i = 0; i < table->count; i++)
		free(table->items[i].mountpoint);
	free(table->items);
	memset(table, 0, sizeof(*table));
}
