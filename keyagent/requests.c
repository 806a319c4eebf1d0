/*
 * One handler per request type of the agent protocol. Each decides from the peer's
 * SO_PEERCRED identity and the policy in force now, does the work through the keystore
 * and the vault modules, and fills the answer. Every request is logged as one line
 * (uid, type, dataset, result): never a key, a passphrase or a path inside a vault.
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/crypto.h"
#include "lib/keysource.h"
#include "lib/keystore.h"
#include "lib/log.h"
#include "lib/meta.h"
#include "lib/secret.h"
#include "lib/store.h"
#include "lib/vault.h"

#define SEALED_TEXT "the agent is sealed: run 'vaultctl unlock'"
#define VAULT_ROOT_MODE (S_IFDIR | 01777)

/* What one request is about, for its log line. */
struct request {
	struct keyagent *agent;
	struct client *client;
	const struct peer *peer;
	const struct protocol_message *in;
	struct protocol_message *out;
	struct policy_principal who;
	struct policy_context ctx;
	char dataset[POLICY_NAME_MAX + 1];   /* "" when none */
};

static void about(struct request *r, const char *dataset)
{
	snprintf(r->dataset, sizeof(r->dataset), "%s", dataset);
}

__attribute__((format(printf, 3, 4)))
static int fail(struct request *r, int err, const char *fmt, ...)
{
	va_list ap;

	r->out->type = PROTOCOL_ERROR;
	r->out->error = err;
	va_start(ap, fmt);
	vsnprintf(r->out->text, sizeof(r->out->text), fmt, ap);
	va_end(ap);
	return err;
}

static int sealed(struct request *r)
{
	return r->agent->kek ? 0 : fail(r, -ENOKEY, SEALED_TEXT);
}

static bool privileged(struct request *r, const char *dataset, unsigned priv)
{
	return policy_has_privilege(r->agent->config.policy, &r->who, dataset, priv, &r->ctx);
}

static const char *privilege_name(unsigned priv)
{
	switch (priv) {
	case POLICY_PRIV_CREATE: return "create";
	case POLICY_PRIV_ROTATE: return "rotate";
	case POLICY_PRIV_RETIRE: return "retire";
	case POLICY_PRIV_SHRED: return "shred";
	case POLICY_PRIV_REVOKE: return "revoke";
	case POLICY_PRIV_RELOAD: return "reload";
	case POLICY_PRIV_KEK: return "kek";
	case POLICY_PRIV_SHARE: return "share";
	default: return "?";
	}
}

static int need_privilege(struct request *r, const char *dataset, unsigned priv)
{
	if (privileged(r, dataset, priv))
		return 0;
	if (strcmp(dataset, "*") == 0)
		return fail(r, -EACCES, "no role gives you the '%s' privilege now",
			    privilege_name(priv));
	return fail(r, -EACCES, "no role gives you the '%s' privilege on dataset '%s' now",
		    privilege_name(priv), dataset);
}

static int vault_dir(struct request *r, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", r->agent->config.data_root, name);

	if (n < 0 || (size_t)n >= len || (size_t)n > PROTOCOL_PATH_MAX)
		return fail(r, -ENAMETOOLONG, "the vault path of '%s' is too long: shorten "
			    "data_root", name);
	return 0;
}

/* The dataset's record; unknown and shredded datasets are answered here. */
static int dataset_get(struct request *r, const char *name, struct keystore_dataset *ds)
{
	int err = keystore_dataset_get(r->agent->keystore, name, ds);

	if (err == -ENOENT)
		return fail(r, -ENOENT, "no dataset '%s': see 'vaultctl dataset list'", name);
	if (err)
		return fail(r, err, "cannot read dataset '%s' from the keystore: %s", name,
			    strerror(-err));
	if (ds->shredded) {
		keystore_dataset_release(ds);
		return fail(r, -ENOKEY, "dataset '%s' was shredded: its keys are gone for good",
			    name);
	}
	return 0;
}

/* Every non-retired DEK version of ds into out->keys (secret memory), newest last; at
 * most PROTOCOL_KEYS_MAX, the newest ones. */
static int load_keys(struct request *r, const struct keystore_dataset *ds)
{
	struct protocol_message *out = r->out;
	size_t live = 0, skip;
	int err;

	for (size_t i = 0; i < ds->version_count; i++)
		if (!ds->versions[i].retired)
			live++;
	if (live == 0)
		return fail(r, -ENOKEY, "dataset '%s' has no key left", ds->name);
	skip = live > PROTOCOL_KEYS_MAX ? live - PROTOCOL_KEYS_MAX : 0;
	if (skip)
		log_warn("dataset '%s' has %zu live key versions: only the newest %d are leased; "
			 "rekey and retire old ones", ds->name, live, PROTOCOL_KEYS_MAX);
	out->keys = calloc(live - skip, sizeof(*out->keys));
	if (!out->keys)
		return fail(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < ds->version_count; i++) {
		struct protocol_key *key;

		if (ds->versions[i].retired)
			continue;
		if (skip) {
			skip--;
			continue;
		}
		key = &out->keys[out->key_count];
		key->key = secret_alloc(CRYPTO_KEY_LEN);
		if (!key->key)
			return fail(r, -ENOMEM, "out of memory");
		key->version = ds->versions[i].version;
		out->key_count++;
		err = keystore_key_get(r->agent->keystore, r->agent->kek, ds->name,
				       key->version, key->key);
		if (err) {
			log_error("key version %u of dataset '%s' cannot be unwrapped: %s",
				  (unsigned)key->version, ds->name, strerror(-err));
			return fail(r, err == -EBADMSG ? -EIO : err, "a key of dataset '%s' cannot "
				    "be unwrapped: see the agent's log", ds->name);
		}
	}
	return 0;
}

/* The grants on the dataset in force now into out->grants, and who's mode at the root
 * (POLICY_NONE: no data grant now). */
static int load_grants(struct request *r, const char *name, const struct policy_principal *who,
		       enum policy_mode *mode)
{
	int err = policy_dataset_grants(r->agent->config.policy, name, &r->ctx, &r->out->grants);

	if (err)
		return fail(r, err, "cannot evaluate the policy: %s", strerror(-err));
	*mode = policy_grants_mode(&r->out->grants, who, "", true);
	if (r->out->grants.count > PROTOCOL_GRANTS_MAX)
		return fail(r, -E2BIG, "dataset '%s' has more than %d grants: the protocol "
			    "cannot carry them", name, PROTOCOL_GRANTS_MAX);
	return 0;
}

/* Handlers. */

static int do_unlock(struct request *r)
{
	struct keyagent *agent = r->agent;
	const struct protocol_message *in = r->in;
	struct timespec now;
	struct kek *kek = NULL;
	int err;

	if (agent->config.kek_source != CONFIG_KEK_PASSPHRASE)
		return fail(r, -EINVAL, "this agent's KEK comes from a key file or credential: "
			    "there is no passphrase to give");
	if (agent->kek)
		return fail(r, -EALREADY, "the agent is already unsealed");
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < agent->unlock_after.tv_sec ||
	    (now.tv_sec == agent->unlock_after.tv_sec && now.tv_nsec < agent->unlock_after.tv_nsec))
		return fail(r, -EAGAIN, "a wrong passphrase was given a moment ago: try again in "
			    "a moment");
	if (!keystore_has_kek(agent->keystore) && r->peer->uid != 0)
		return fail(r, -EPERM, "the keystore has no passphrase yet: only root may set "
			    "it up with 'vaultctl unlock'");
	err = keystore_unlock_passphrase(agent->keystore, (const char *)in->secret,
					 in->secret_len, &kek);
	if (err == -EKEYREJECTED) {
		/* No faster than one guess per back-off over the socket. */
		clock_after_ms(CLOCK_MONOTONIC, KEYAGENT_UNLOCK_BACKOFF_MS, &agent->unlock_after);
		return fail(r, -EKEYREJECTED, "wrong passphrase: try again");
	}
	if (err)
		return fail(r, err, "cannot unlock the keystore: %s", strerror(-err));
	agent->kek = kek;
	log_info("the agent is unsealed");
	return 0;
}

static int do_status(struct request *r)
{
	/* "new": sealed with no passphrase yet, so that vaultctl asks for the first one
	 * twice. */
	const char *state = r->agent->kek ? "unsealed" :
			    keystore_has_kek(r->agent->keystore) ? "sealed" : "new";

	snprintf(r->out->text, sizeof(r->out->text), "%s", state);
	return 0;
}

/* The root directory of a new dataset vault: sticky and writable by all, so the policy
 * and file modes decide who may do what. Set through the metadata API as meta_format
 * sets the default. */
static int set_root_mode(const char *dir, struct keysource *keys)
{
	struct meta_inode root = { 0 };
	struct meta_txn *txn;
	struct vault *vault;
	int err;

	err = vault_open(&vault, dir, keys, 0);
	if (err)
		return err;
	err = meta_txn_begin(vault->meta, true, &txn);
	if (err)
		goto out_close;
	err = meta_inode_get(txn, META_ROOT_INO, &root);
	if (!err) {
		root.mode = VAULT_ROOT_MODE;
		err = meta_inode_put(txn, &root);
	}
	meta_inode_release(&root);
	if (err) {
		meta_txn_abort(txn);
		goto out_close;
	}
	err = meta_txn_commit(txn);
	if (!err)
		err = store_sync(vault->store);
out_close:
	vault_close(vault);
	return err;
}

/* The vault's place must be free: checked before the keystore records the dataset. */
static int vault_place_free(const char *dir)
{
	struct stat st;
	int err;

	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return -EEXIST;
	err = rmdir(dir) == 0 ? 0 : -errno;
	if (err == -ENOTEMPTY || err == -EEXIST)
		return -EEXIST;
	return err;
}

/* -EEXIST, with the reason, when the keystore has the name (shredded names included:
 * their tombstone keeps them). */
static int dataset_taken(struct request *r, const char *name)
{
	struct keystore_dataset old = { 0 };
	int err = keystore_dataset_get(r->agent->keystore, name, &old);
	bool shredded = old.shredded;

	keystore_dataset_release(&old);
	if (err == -ENOENT)
		return 0;
	if (err)
		return fail(r, err, "cannot read the keystore: %s", strerror(-err));
	if (shredded)
		return fail(r, -EEXIST, "dataset '%s' was shredded: its name cannot be used "
			    "again", name);
	return fail(r, -EEXIST, "dataset '%s' exists already", name);
}

static int do_dataset_create(struct request *r)
{
	struct keyagent *agent = r->agent;
	const char *name = r->in->name;
	struct keystore_dataset ds = { 0 };
	struct keysource *keys = NULL;
	char dir[PROTOCOL_PATH_MAX + 1];
	uint8_t *dek;
	int err;

	about(r, name);
	if ((err = sealed(r)) || (err = need_privilege(r, name, POLICY_PRIV_CREATE)) ||
	    (err = vault_dir(r, name, dir, sizeof(dir))))
		return err;
	if (mkdir(agent->config.data_root, 0711) < 0 && errno != EEXIST)
		return fail(r, -errno, "cannot make the data root '%s': %s",
			    agent->config.data_root, strerror(errno));
	err = dataset_taken(r, name);
	if (err)
		return err;
	err = vault_place_free(dir);
	if (err == -EEXIST)
		return fail(r, err, "'%s' already exists: dataset '%s' cannot be made there",
			    dir, name);
	if (err)
		return fail(r, err, "cannot use '%s': %s", dir, strerror(-err));
	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (!dek)
		return fail(r, -ENOMEM, "out of memory");
	err = keystore_dataset_create(agent->keystore, agent->kek, name, r->peer->uid, dek, &ds);
	if (err == -EEXIST) {
		fail(r, err, "dataset '%s' exists already", name);
		goto out_free;
	}
	if (err) {
		fail(r, err, "cannot add dataset '%s' to the keystore: %s", name, strerror(-err));
		goto out_free;
	}
	err = keysource_memory_new(&keys);
	if (!err)
		err = keysource_memory_add(keys, 1, dek);
	if (!err)
		err = vault_create(dir, crypto_cipher_default(), 0, keys, 0, 0);
	if (!err)
		err = set_root_mode(dir, keys);
	if (err) {
		log_error("dataset '%s' is in the keystore but its vault in '%s' could not be "
			  "made: %s", name, dir, strerror(-err));
		fail(r, err, "dataset '%s' is in the keystore but its vault could not be made: "
		     "%s: see the agent's log", name, strerror(-err));
		goto out_free;
	}
	snprintf(r->out->path, sizeof(r->out->path), "%s", dir);
	r->out->version = ds.newest;
out_free:
	keysource_free(keys);
	keystore_dataset_release(&ds);
	secret_free(dek);
	return err;
}

/* Whether the peer may see dataset name in a listing. */
static bool listable(struct request *r, const char *name)
{
	static const unsigned privs[] = {
		POLICY_PRIV_CREATE, POLICY_PRIV_ROTATE, POLICY_PRIV_RETIRE, POLICY_PRIV_SHRED,
		POLICY_PRIV_REVOKE,
	};
	struct policy_grants grants = { 0 };
	bool seen;

	if (r->peer->uid == 0)
		return true;
	for (size_t i = 0; i < sizeof(privs) / sizeof(privs[0]); i++)
		if (privileged(r, name, privs[i]))
			return true;
	if (policy_dataset_grants(r->agent->config.policy, name, &r->ctx, &grants) != 0)
		return false;
	seen = policy_grants_mode(&grants, &r->who, "", true) != POLICY_NONE;
	policy_grants_release(&grants);
	return seen;
}

static int do_dataset_list(struct request *r)
{
	struct protocol_message *out = r->out;
	char **names = NULL;
	size_t count = 0;
	int err;

	err = keystore_dataset_list(r->agent->keystore, &names, &count);
	if (err)
		return fail(r, err, "cannot list the keystore: %s", strerror(-err));
	if (count) {
		out->names = calloc(count, sizeof(*out->names));
		if (!out->names) {
			err = fail(r, -ENOMEM, "out of memory");
			goto out_free;
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (!listable(r, names[i]))
			continue;
		if (out->name_count == PROTOCOL_NAMES_MAX) {
			log_warn("more than %d datasets: the list is cut short", PROTOCOL_NAMES_MAX);
			break;
		}
		out->names[out->name_count++] = names[i];
		names[i] = NULL;
	}
out_free:
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return err;
}

/* A daemon the agent started takes the keys of the lease made for it (mounts.c): only
 * that process (its pid, running as root) may, and only once. */
static int claim(struct request *r, const struct keystore_dataset *ds, struct lease **out)
{
	struct lease *lease = leases_find(&r->agent->leases, r->in->lease_id);

	if (!lease || !lease->started || lease->claimed || r->peer->uid != 0 ||
	    lease->pid != r->peer->pid || strcmp(lease->dataset, ds->name) != 0)
		return fail(r, -EPERM, "no lease of dataset '%s' waits for this process",
			    ds->name);
	if (lease->revoked)
		return fail(r, lease->revoked_error, "the lease on dataset '%s' was %s",
			    lease->dataset, lease->revoked);
	*out = lease;
	return 0;
}

static int do_lease(struct request *r)
{
	struct keyagent *agent = r->agent;
	const char *name = r->in->name;
	struct protocol_message *out = r->out;
	struct keystore_dataset ds = { 0 };
	struct lease *claimed = NULL;
	struct policy_principal holder = r->who;
	enum policy_mode mode;
	int err;

	about(r, name);
	if ((err = sealed(r)) || (err = dataset_get(r, name, &ds)))
		return err;
	/* The host the client names is only logged: host patterns match this machine. */
	if (r->in->text[0] && strcmp(r->in->text, agent->host) != 0)
		log_debug("uid %u asked for a lease as host '%s'", (unsigned)r->peer->uid,
			  r->in->text);
	if (r->in->lease_id) {
		if ((err = claim(r, &ds, &claimed)))
			goto out_release;
		holder = leases_holder(claimed);
	}
	if ((err = load_grants(r, name, &holder, &mode)))
		goto out_release;
	if (mode == POLICY_NONE) {
		err = fail(r, -EACCES, "no role grants you dataset '%s' now", name);
		goto out_release;
	}
	if (!claimed && r->peer->uid != 0) {
		/* Keys never reach a process a user controls: with them and a copy of the
		 * backing store every rule the daemon enforces would be moot. */
		err = fail(r, -EPERM, "dataset keys go only to mount daemons: mount it with "
			   "'vaultctl mount %s MOUNTPOINT'", name);
		goto out_release;
	}
	/* The worker holds the vault: a mount now would wait on its lock or fight it. */
	if (rekey_offline_busy(agent, name)) {
		err = fail(r, -EBUSY, "dataset '%s' is being rekeyed offline: retry when "
			   "'vaultctl rekey %s' finishes", name, name);
		goto out_release;
	}
	if ((err = vault_dir(r, name, out->path, sizeof(out->path))) || (err = load_keys(r, &ds)))
		goto out_release;
	if (claimed) {
		claimed->claimed = true;
		leases_renew(claimed, agent->config.lease_ttl);
		out->lease_id = claimed->id;
	} else {
		err = leases_add(&agent->leases, name, &holder, r->peer->uid, r->peer->pid,
				 agent->config.lease_ttl, &out->lease_id);
		if (err) {
			fail(r, err, "too many leases are held: release unused mounts");
			goto out_release;
		}
	}
	out->ttl = agent->config.lease_ttl;
	out->version = ds.newest;
	out->mode = mode;
out_release:
	keystore_dataset_release(&ds);
	return err;
}

/*
 * A renewal of a lease this agent does not know, from a root daemon that names its
 * dataset: the agent restarted (upgrade, crash) and the mount carries on. The lease is
 * taken back with its id, for the holder the daemon names (root's word: it could have
 * any key anyway), and the renewal then goes on like any other - policy, shred and all.
 */
static int take_back(struct request *r, struct lease **out)
{
	const struct protocol_message *in = r->in;
	struct policy_principal holder = { in->holder_uid, in->holder_gid, NULL, 0 };
	gid_t *groups = NULL;
	struct lease *lease;
	int err;

	if (r->peer->uid != 0 || !in->name[0])
		return fail(r, -EACCES, "no such lease: it expired or the agent restarted; "
			    "mount again");
	about(r, in->name);
	err = server_groups_of(holder.uid, &groups, &holder.group_count);
	if (err)
		return fail(r, err, "cannot list the groups of uid %u: %s", (unsigned)holder.uid,
			    strerror(-err));
	holder.groups = groups;
	err = leases_restore(&r->agent->leases, in->lease_id, in->name, &holder, 0, r->peer->pid,
			     r->agent->config.lease_ttl, &lease);
	free(groups);
	if (err)
		return fail(r, err == -EEXIST ? -EACCES : err, "cannot take lease back: %s",
			    strerror(-err));
	/* A user's mount is one the agent started: its daemon is root, the holder not. */
	if (holder.uid != 0) {
		lease->started = true;
		lease->claimed = true;
		mounts_adopt(r->agent, lease, in->path);
	}
	log_warn("uid %u pid %d: lease on dataset '%s' for uid %u taken back after an agent "
		 "restart", (unsigned)r->peer->uid, (int)r->peer->pid, in->name,
		 (unsigned)holder.uid);
	*out = lease;
	return 0;
}

/* The renewer gets -EACCES or -ENOKEY for anything final: those make the FUSE daemon
 * revoke at once. -EAGAIN (sealed) and transport failures read as "agent unreachable":
 * the daemon tries again until its lease runs out. */
static int do_renew(struct request *r)
{
	struct keyagent *agent = r->agent;
	struct protocol_message *out = r->out;
	struct keystore_dataset ds = { 0 };
	struct lease *lease;
	enum policy_mode mode;
	int err;

	/* Sealed (restarted with a passphrase KEK, not yet unlocked): not final. */
	if (!agent->kek)
		return fail(r, -EAGAIN, SEALED_TEXT);
	lease = leases_find(&agent->leases, r->in->lease_id);
	if (!lease && (err = take_back(r, &lease)))
		return err;
	if (!lease || lease->renewer != r->peer->uid || (lease->started && !lease->claimed))
		return fail(r, -EACCES, "no such lease: it expired or the agent restarted; "
			    "mount again");
	about(r, lease->dataset);
	if (lease->revoked)
		return fail(r, lease->revoked_error, "the lease on dataset '%s' was %s",
			    lease->dataset, lease->revoked);
	err = dataset_get(r, lease->dataset, &ds);
	if (err) {
		if (err == -ENOKEY) {
			leases_revoke(lease, -ENOKEY, "revoked: the dataset was shredded");
			return err;
		}
		leases_revoke(lease, -EACCES, "revoked: the dataset is gone");
		return fail(r, -EACCES, "the lease on dataset '%s' was %s", lease->dataset,
			    lease->revoked);
	}
	struct policy_principal holder = leases_holder(lease);
	if ((err = load_grants(r, lease->dataset, &holder, &mode)))
		goto out_release;
	if (mode == POLICY_NONE) {
		leases_revoke(lease, -EACCES, "revoked: no role grants it now (role removed or "
			      "outside its time window)");
		err = fail(r, -EACCES, "no role grants you dataset '%s' now (role removed or "
			   "outside its time window)", lease->dataset);
		goto out_release;
	}
	if ((err = load_keys(r, &ds)))
		goto out_release;
	leases_renew(lease, agent->config.lease_ttl);
	leases_set_mountpoint(lease, r->in->path);
	rekey_renew(agent, lease, &r->in->rekey, &out->rekey);
	out->ttl = agent->config.lease_ttl;
	out->version = ds.newest;
	out->mode = mode;
out_release:
	keystore_dataset_release(&ds);
	return err;
}

/* The mountpoint of a user's mount: an absolute path to a directory the caller owns
 * (root: any), not a link, nothing mounted on it. Whatever else is wrong is one answer,
 * so that the agent's view tells a user nothing about paths they cannot see. The daemon
 * checks again on the directory it opens, so a swap after this check mounts nothing
 * anywhere else. */
static int check_mountpoint(struct request *r, const char *path)
{
	char parent[PROTOCOL_PATH_MAX + 4];
	struct stat st, up;

	if (path[0] != '/')
		return fail(r, -EINVAL, "mountpoint '%s' is not an absolute path", path);
	/* Root is kept out of a user's FUSE mount: EACCES, or ENOTCONN for a dead one. */
	if (lstat(path, &st) < 0 && (errno == EACCES || errno == ENOTCONN))
		return fail(r, -EBUSY, "mountpoint '%s' is busy: something is mounted there "
			    "already", path);
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    (r->peer->uid != 0 && st.st_uid != r->peer->uid))
		return fail(r, -EPERM, "mountpoint '%s' is not a directory of yours: create one "
			    "you own", path);
	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(parent, &up) == 0 && (up.st_dev != st.st_dev || up.st_ino == st.st_ino))
		return fail(r, -EBUSY, "mountpoint '%s' is busy: something is mounted there "
			    "already", path);
	return 0;
}

static int do_mount(struct request *r)
{
	struct keyagent *agent = r->agent;
	const char *name = r->in->name;
	struct keystore_dataset ds = { 0 };
	enum policy_mode mode;
	struct lease *lease;
	uint64_t id;
	int err;

	about(r, name);
	if ((err = sealed(r)) || (err = dataset_get(r, name, &ds)))
		return err;
	keystore_dataset_release(&ds);
	if ((err = load_grants(r, name, &r->who, &mode)))
		return err;
	if (mode == POLICY_NONE)
		return fail(r, -EACCES, "no role grants you dataset '%s' now", name);
	if (rekey_offline_busy(agent, name))
		return fail(r, -EBUSY, "dataset '%s' is being rekeyed offline: retry when "
			    "'vaultctl rekey %s' finishes", name, name);
	/* A mount others may enter too is the policy's call. */
	if (r->in->text[0] && strcmp(r->in->text, MOUNT_SHARED) != 0)
		return fail(r, -EINVAL, "unknown mount option '%s'", r->in->text);
	bool shared = r->in->text[0] != '\0';
	if (shared && (err = need_privilege(r, name, POLICY_PRIV_SHARE)))
		return err;
	if (mounts_dataset_busy(agent, name))
		return fail(r, -EBUSY, "dataset '%s' is mounted on this host already: a dataset "
			    "has one mount at a time (ask for a shared mount)", name);
	if ((err = check_mountpoint(r, r->in->path)))
		return err;
	/* Held for the caller, renewed by root: the daemon the agent starts. */
	err = leases_add(&agent->leases, name, &r->who, 0, 0, agent->config.lease_ttl, &id);
	if (err)
		return fail(r, err, "too many leases are held: unmount unused mounts");
	lease = leases_find(&agent->leases, id);
	lease->started = true;
	leases_set_mountpoint(lease, r->in->path);
	err = mounts_start(agent, r->client, r->in->id, lease, r->in->path,
			   r->in->mode == POLICY_RO, shared);
	if (err) {
		leases_remove(&agent->leases, lease);
		return fail(r, err, "cannot start the vaultfs daemon: %s", strerror(-err));
	}
	return -EINPROGRESS;
}

/* Whether the caller may see lease in a listing: root, its holder, or whoever may
 * revoke it. */
static bool lease_visible(struct request *r, const struct lease *lease)
{
	return r->peer->uid == 0 || lease->uid == r->peer->uid ||
	       privileged(r, lease->dataset, POLICY_PRIV_REVOKE);
}

static int do_lease_list(struct request *r)
{
	struct lease_table *table = &r->agent->leases;
	struct protocol_message *out = r->out;
	/* What a reply holds besides the leases, and what each costs at most: stay under
	 * the frame size rather than fail the whole listing. */
	size_t room = PROTOCOL_FRAME_MAX - 512;
	struct timespec now;

	if (r->in->name[0])
		about(r, r->in->name);
	leases_expire(table);
	if (table->count) {
		out->leases = calloc(table->count, sizeof(*out->leases));
		if (!out->leases)
			return fail(r, -ENOMEM, "out of memory");
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (size_t i = 0; i < table->count; i++) {
		const struct lease *lease = &table->items[i];
		struct protocol_lease *entry = &out->leases[out->lease_count];
		size_t cost = 32 + strlen(lease->dataset) +
			      (lease->mountpoint ? strlen(lease->mountpoint) : 0);

		if ((r->in->name[0] && strcmp(r->in->name, lease->dataset) != 0) ||
		    !lease_visible(r, lease))
			continue;
		if (cost > room || out->lease_count == PROTOCOL_LEASES_MAX) {
			snprintf(out->text, sizeof(out->text), "the list is cut short: name a "
				 "dataset to see the rest");
			break;
		}
		room -= cost;
		entry->id = lease->id;
		entry->uid = lease->uid;
		entry->pid = (uint32_t)lease->pid;
		entry->seconds_left = lease->expires.tv_sec > now.tv_sec
			? (uint32_t)(lease->expires.tv_sec - now.tv_sec) : 0;
		entry->flags = (lease->revoked ? PROTOCOL_LEASE_REVOKED : 0) |
			       (lease->started ? PROTOCOL_LEASE_STARTED : 0);
		snprintf(entry->dataset, sizeof(entry->dataset), "%s", lease->dataset);
		if (lease->mountpoint)
			snprintf(entry->mountpoint, sizeof(entry->mountpoint), "%s",
				 lease->mountpoint);
		out->lease_count++;
	}
	return 0;
}

static int do_unmount(struct request *r)
{
	int err = mounts_unmount(r->agent, r->peer->uid, r->in->path);

	if (err == -ENOENT)
		return fail(r, err, "the agent made no mount of yours at '%s'", r->in->path);
	if (err == -EBUSY)
		return fail(r, err, "'%s' is busy: close the files open in it first", r->in->path);
	if (err)
		return fail(r, err, "cannot unmount '%s': %s", r->in->path, strerror(-err));
	return 0;
}

static int do_release(struct request *r)
{
	struct lease *lease = leases_find(&r->agent->leases, r->in->lease_id);

	if (!lease || lease->renewer != r->peer->uid)
		return fail(r, -ENOENT, "no such lease");
	about(r, lease->dataset);
	mounts_lease_gone(r->agent, lease->id);
	leases_remove(&r->agent->leases, lease);
	return 0;
}

static int do_revoke(struct request *r)
{
	struct keyagent *agent = r->agent;
	const char *why = "revoked by an administrator";
	struct lease *lease;
	size_t count;
	int err;

	if (r->in->name[0]) {
		about(r, r->in->name);
		if ((err = need_privilege(r, r->in->name, POLICY_PRIV_REVOKE)))
			return err;
		count = leases_revoke_dataset(&agent->leases, r->in->name, -EACCES, why);
		snprintf(r->out->text, sizeof(r->out->text), "%zu lease%s of dataset '%s' revoked",
			 count, count == 1 ? "" : "s", r->in->name);
		return 0;
	}
	lease = leases_find(&agent->leases, r->in->lease_id);
	if (!lease)
		return fail(r, -ENOENT, "no such lease");
	about(r, lease->dataset);
	if ((err = need_privilege(r, lease->dataset, POLICY_PRIV_REVOKE)))
		return err;
	leases_revoke(lease, -EACCES, why);
	snprintf(r->out->text, sizeof(r->out->text), "lease on dataset '%s' revoked",
		 lease->dataset);
	return 0;
}

static int do_key_rotate(struct request *r)
{
	const char *name = r->in->name;
	struct keystore_dataset ds = { 0 };
	int err;

	about(r, name);
	if ((err = sealed(r)) || (err = need_privilege(r, name, POLICY_PRIV_ROTATE)) ||
	    (err = dataset_get(r, name, &ds)))
		return err;
	keystore_dataset_release(&ds);
	err = keystore_key_rotate(r->agent->keystore, r->agent->kek, name, r->peer->uid,
				  &r->out->version);
	if (err)
		return fail(r, err, "cannot rotate the key of dataset '%s': %s", name,
			    strerror(-err));
	log_info("dataset '%s': key version %u made by uid %u", name,
		 (unsigned)r->out->version, (unsigned)r->peer->uid);
	return 0;
}

/* How many objects and records of the vault still use version (0: none). */
static int version_uses(struct request *r, const char *name, uint32_t version,
			uint64_t *objects, uint64_t *records, uint64_t *unreadable)
{
	char dir[PROTOCOL_PATH_MAX + 1];
	struct vault_key_use *uses;
	size_t count;
	int err;

	*objects = *records = *unreadable = 0;
	if ((err = vault_dir(r, name, dir, sizeof(dir))))
		return err;
	err = vault_key_versions_in_use(dir, &uses, &count);
	if (err)
		return fail(r, err, "cannot tell whether the vault of '%s' still uses version "
			    "%u (%s): refusing to retire it", name, (unsigned)version,
			    strerror(-err));
	for (size_t i = 0; i < count; i++) {
		if (uses[i].version == version) {
			*objects = uses[i].objects;
			*records = uses[i].records;
		} else if (uses[i].version == 0) {
			*unreadable = uses[i].objects + uses[i].records;
		}
	}
	free(uses);
	return 0;
}

static int do_key_retire(struct request *r)
{
	const char *name = r->in->name;
	uint32_t version = r->in->version;
	struct keystore_dataset ds = { 0 };
	uint64_t objects, records, unreadable;
	bool live = false;
	int err;

	about(r, name);
	if ((err = need_privilege(r, name, POLICY_PRIV_RETIRE)) ||
	    (err = dataset_get(r, name, &ds)))
		return err;
	for (size_t i = 0; i < ds.version_count; i++)
		if (ds.versions[i].version == version && !ds.versions[i].retired)
			live = true;
	if (!live) {
		err = fail(r, -ENOENT, "dataset '%s' has no live key version %u", name,
			   (unsigned)version);
		goto out_release;
	}
	if (version == ds.newest) {
		err = fail(r, -EBUSY, "version %u is the newest key of '%s': rotate first",
			   (unsigned)version, name);
		goto out_release;
	}
	if ((err = version_uses(r, name, version, &objects, &records, &unreadable)))
		goto out_release;
	if (objects || records) {
		err = fail(r, -EBUSY, "key version %u of '%s' is still used by %llu objects and "
			   "%llu metadata records: run 'vaultctl rekey %s' first", (unsigned)version,
			   name, (unsigned long long)objects, (unsigned long long)records, name);
		goto out_release;
	}
	if (unreadable) {
		err = fail(r, -EBUSY, "%llu objects or records of '%s' are damaged and do not "
			   "say which key version they use: restore them from a backup or remove "
			   "them, then retire", (unsigned long long)unreadable, name);
		goto out_release;
	}
	err = keystore_key_retire(r->agent->keystore, name, version, r->peer->uid);
	if (err)
		fail(r, err, "cannot retire version %u of '%s': %s", (unsigned)version, name,
		     strerror(-err));
	else
		log_info("dataset '%s': key version %u retired by uid %u", name,
			 (unsigned)version, (unsigned)r->peer->uid);
out_release:
	keystore_dataset_release(&ds);
	return err;
}

static int do_key_shred(struct request *r)
{
	const char *name = r->in->name;
	struct keystore_dataset ds = { 0 };
	size_t revoked;
	int err;

	about(r, name);
	if ((err = need_privilege(r, name, POLICY_PRIV_SHRED)) ||
	    (err = dataset_get(r, name, &ds)))
		return err;
	keystore_dataset_release(&ds);
	/* An offline worker holds copies of the keys: stopped and joined first. */
	rekey_job_stop(r->agent, name, "the dataset was shredded");
	/* Mounts lose the keys whatever happens to the keystore below. */
	revoked = leases_revoke_dataset(&r->agent->leases, name, -ENOKEY,
					"revoked: the dataset was shredded");
	err = keystore_shred(r->agent->keystore, name, r->peer->uid);
	if (err)
		return fail(r, err, "cannot shred dataset '%s': %s", name, strerror(-err));
	log_warn("dataset '%s' shredded by uid %u: %zu leases revoked", name,
		 (unsigned)r->peer->uid, revoked);
	snprintf(r->out->text, sizeof(r->out->text), "dataset '%s' shredded, %zu lease%s "
		 "revoked", name, revoked, revoked == 1 ? "" : "s");
	return 0;
}

/* Every live DEK version of ds in a keysource of its own, for an offline worker. */
static int worker_keys(struct request *r, const struct keystore_dataset *ds,
		       struct keysource **out)
{
	struct keysource *keys = NULL;
	uint8_t *key;
	int err;

	*out = NULL;
	key = secret_alloc(CRYPTO_KEY_LEN);
	if (!key)
		return fail(r, -ENOMEM, "out of memory");
	err = keysource_memory_new(&keys);
	if (err) {
		fail(r, err, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < ds->version_count; i++) {
		uint32_t version = ds->versions[i].version;

		if (ds->versions[i].retired)
			continue;
		err = keystore_key_get(r->agent->keystore, r->agent->kek, ds->name, version, key);
		if (!err)
			err = keysource_memory_add(keys, version, key);
		if (err) {
			log_error("key version %u of dataset '%s' cannot be unwrapped: %s",
				  (unsigned)version, ds->name, strerror(-err));
			fail(r, err == -EBADMSG ? -EIO : err, "a key of dataset '%s' cannot be "
			     "unwrapped: see the agent's log", ds->name);
			goto out_free;
		}
	}
	*out = keys;
	keys = NULL;
out_free:
	keysource_free(keys);
	secret_free(key);
	return err;
}

/* A live (unrevoked) lease on dataset: its mount is where an online run happens. */
static const struct lease *live_lease(struct keyagent *agent, const char *dataset)
{
	leases_expire(&agent->leases);
	for (size_t i = 0; i < agent->leases.count; i++) {
		const struct lease *lease = &agent->leases.items[i];

		if (strcmp(lease->dataset, dataset) == 0 && !lease->revoked)
			return lease;
	}
	return NULL;
}

/* Start a run of the dataset to its newest version: online through its mount when it
 * has one, else offline in a worker. */
static int rekey_start(struct request *r, const struct keystore_dataset *ds,
		       struct rekey_job **job)
{
	struct keyagent *agent = r->agent;
	const struct lease *lease = live_lease(agent, ds->name);
	struct keysource *keys;
	char dir[PROTOCOL_PATH_MAX + 1];
	int err;

	if (lease) {
		err = rekey_start_online(agent, ds->name, ds->newest, lease, r->peer->uid, job);
		return err ? fail(r, err, "cannot start the rekey of '%s': %s", ds->name,
				  strerror(-err)) : 0;
	}
	if ((err = vault_dir(r, ds->name, dir, sizeof(dir))) || (err = worker_keys(r, ds, &keys)))
		return err;
	err = rekey_start_offline(agent, ds->name, ds->newest, dir, keys, r->peer->uid, job);
	if (err)
		return fail(r, err, "cannot start the rekey of '%s': %s", ds->name,
			    strerror(-err));
	return 0;
}

static int do_rekey(struct request *r)
{
	const char *name = r->in->name;
	uint32_t version = r->in->version;
	struct keystore_dataset ds = { 0 };
	struct rekey_job *job;
	int err;

	about(r, name);
	if ((err = sealed(r)) || (err = need_privilege(r, name, POLICY_PRIV_ROTATE)) ||
	    (err = dataset_get(r, name, &ds)))
		return err;
	rekey_jobs_check(r->agent);
	job = rekey_job_find(r->agent, name);
	if (version) {
		/* Only a report: never starts anything. */
		if (!job || rekey_job_version(job) != version) {
			err = fail(r, -ENOENT, "no rekey of dataset '%s' to key version %u is "
				   "known: run 'vaultctl rekey %s'", name, (unsigned)version, name);
			goto out_release;
		}
	} else if (!job || !rekey_job_active(job)) {
		if ((err = rekey_start(r, &ds, &job)))
			goto out_release;
	}
	rekey_job_report(job, &r->out->rekey, r->out->text, sizeof(r->out->text));
out_release:
	keystore_dataset_release(&ds);
	return err;
}

static int do_kek_rotate(struct request *r)
{
	struct keyagent *agent = r->agent;
	struct kek *fresh = NULL;
	int err;

	if ((err = sealed(r)) || (err = need_privilege(r, "*", POLICY_PRIV_KEK)))
		return err;
	if (agent->config.kek_source != CONFIG_KEK_PASSPHRASE)
		return fail(r, -EOPNOTSUPP, "this agent's KEK comes from a key file or "
			    "credential: only a passphrase KEK is rotated over the socket");
	err = keystore_kek_rotate(agent->keystore, agent->kek, (const char *)r->in->secret,
				  r->in->secret_len, NULL, &fresh);
	if (err)
		return fail(r, err, "cannot rotate the KEK: %s", strerror(-err));
	kek_free(agent->kek);
	agent->kek = fresh;
	log_warn("the KEK was rotated by uid %u", (unsigned)r->peer->uid);
	return 0;
}

static int do_policy_reload(struct request *r)
{
	char why[sizeof(r->out->text)];
	int err;

	if ((err = need_privilege(r, "*", POLICY_PRIV_RELOAD)))
		return err;
	err = keyagent_reload(r->agent, why, sizeof(why));
	if (err)
		return fail(r, err, "%s", why);
	return 0;
}

int requests_handle(struct keyagent *agent, struct client *client, const struct peer *peer,
		    const struct protocol_message *request, struct protocol_message *reply)
{
	struct request r = {
		.agent = agent,
		.client = client,
		.peer = peer,
		.in = request,
		.out = reply,
		.who = {
			.uid = peer->uid,
			.gid = peer->gid,
			.groups = peer->groups,
			.group_count = peer->group_count,
		},
		.ctx = { .host = agent->host, .now = time(NULL) },
	};
	int err;

	memset(reply, 0, sizeof(*reply));
	reply->type = PROTOCOL_OK;
	/* Nothing is done that the trail cannot record. */
	if (request->type != PROTOCOL_STATUS && agent_trail_ok(agent)) {
		err = fail(&r, -EIO, "the agent's audit trail cannot be written: see the "
			   "system log");
		goto out_answer;
	}
	switch (request->type) {
	case PROTOCOL_UNLOCK: err = do_unlock(&r); break;
	case PROTOCOL_STATUS: err = do_status(&r); break;
	case PROTOCOL_DATASET_CREATE: err = do_dataset_create(&r); break;
	case PROTOCOL_DATASET_LIST: err = do_dataset_list(&r); break;
	case PROTOCOL_LEASE: err = do_lease(&r); break;
	case PROTOCOL_RENEW: err = do_renew(&r); break;
	case PROTOCOL_RELEASE: err = do_release(&r); break;
	case PROTOCOL_REVOKE: err = do_revoke(&r); break;
	case PROTOCOL_MOUNT: err = do_mount(&r); break;
	case PROTOCOL_UNMOUNT: err = do_unmount(&r); break;
	case PROTOCOL_LEASE_LIST: err = do_lease_list(&r); break;
	case PROTOCOL_KEY_ROTATE: err = do_key_rotate(&r); break;
	case PROTOCOL_KEY_RETIRE: err = do_key_retire(&r); break;
	case PROTOCOL_KEY_SHRED: err = do_key_shred(&r); break;
	case PROTOCOL_KEK_ROTATE: err = do_kek_rotate(&r); break;
	case PROTOCOL_POLICY_RELOAD: err = do_policy_reload(&r); break;
	case PROTOCOL_REKEY: err = do_rekey(&r); break;
	default:
		err = fail(&r, -EOPNOTSUPP, "not a request the agent answers");
		break;
	}
out_answer:
	/* A mount's outcome is recorded when the daemon has mounted or failed. */
	if (err != -EINPROGRESS)
		agent_trail_request(agent, peer, request, r.dataset, err);
	if (err && err != -EINPROGRESS) {
		/* Nothing of a refused answer is sent but its error and text. */
		struct protocol_message failure = { .type = PROTOCOL_ERROR, .error = err };
		memcpy(failure.text, reply->text, sizeof(failure.text));
		protocol_message_release(reply);
		*reply = failure;
	}
	/* vaultctl asks how a rekey goes four times a second: those are not news. */
	log_msg(request->type == PROTOCOL_REKEY && request->version && !err ? LOG_DEBUG : LOG_INFO,
		"uid %u pid %d: %s%s%s%s: %s", (unsigned)peer->uid, (int)peer->pid,
		protocol_type_name(request->type), r.dataset[0] ? " '" : "", r.dataset,
		r.dataset[0] ? "'" : "",
		err == -EINPROGRESS ? "daemon started" : err ? strerror(-err) : "ok");
	/* A released lease may have been an online run's mount. */
	if (request->type == PROTOCOL_RELEASE || request->type == PROTOCOL_REVOKE)
		rekey_jobs_check(agent);
	return err;
}
