/*
 * The key agent's own audit trail (vaultfs-audit(5)), in AUDIT_ROOT/@agent: its start
 * and stop with the policy file's SHA-256, every request that changes something or
 * releases keys (unlock, dataset create, lease, mount, unmount, release, revoke, key
 * rotate, retire and shred, KEK rotation, policy reload, rekey), refused or not, with
 * who asked (uid, gid, pid from SO_PEERCRED), the dataset and the result. Renewals,
 * status and listings are not recorded: they change nothing. While the trail cannot
 * take records, the agent refuses every request but status (fail closed).
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/audit.h"
#include "lib/crypto.h"
#include "lib/log.h"

/* '@' is no character of a dataset name: this directory is never a dataset's trail. */
#define AGENT_TRAIL_DIR "@agent"
#define POLICY_FILE_MAX (16u << 20)

int agent_trail_open(struct keyagent *agent)
{
	char dir[PATH_MAX];
	int err;

	if (!agent->config.audit_root)
		return 0;
	if (mkdir(agent->config.audit_root, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_error("cannot make the audit root '%s': %s", agent->config.audit_root,
			  strerror(-err));
		return err;
	}
	if (snprintf(dir, sizeof(dir), "%s/" AGENT_TRAIL_DIR, agent->config.audit_root) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	err = audit_open(&agent->trail, dir, NULL);
	if (err)
		log_error("cannot open the agent's audit trail in '%s': %s", dir, strerror(-err));
	return err;
}

int agent_trail_close(struct keyagent *agent)
{
	int err = audit_close(agent->trail);

	agent->trail = NULL;
	return err;
}

int agent_trail_ok(const struct keyagent *agent)
{
	return agent->trail ? audit_ok(agent->trail) : 0;
}

/* SHA-256 of the configuration file in hex, or "" when it cannot be read. */
static void policy_hash(const char *path, char hex[2 * CRYPTO_SHA256_LEN + 1])
{
	uint8_t digest[CRYPTO_SHA256_LEN];
	struct stat st;
	char *text = NULL;
	int fd;

	hex[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size <= POLICY_FILE_MAX &&
	    (text = malloc((size_t)st.st_size + 1)) != NULL &&
	    read(fd, text, (size_t)st.st_size) == st.st_size) {
		crypto_sha256(digest, text, (size_t)st.st_size);
		crypto_to_hex(hex, 2 * CRYPTO_SHA256_LEN + 1, digest, sizeof(digest));
	}
	free(text);
	close(fd);
}

void agent_trail_event(struct keyagent *agent, const char *action, int result)
{
	char hash[2 * CRYPTO_SHA256_LEN + 1];
	struct audit_record r;

	if (!agent->trail)
		return;
	audit_record_init(&r, action);
	audit_add_u64(&r, "uid", getuid());
	audit_add_i64(&r, "pid", getpid());
	audit_add_text(&r, "host", agent->host);
	policy_hash(agent->config_path, hash);
	if (hash[0])
		audit_add_text(&r, "policy_sha256", hash);
	audit_add_result(&r, result);
	(void)audit_append(agent->trail, &r);
}

static bool worth_recording(uint32_t type)
{
	switch (type) {
	case PROTOCOL_STATUS:
	case PROTOCOL_RENEW:
	case PROTOCOL_DATASET_LIST:
	case PROTOCOL_LEASE_LIST:
		return false;
	default:
		return true;
	}
}

void agent_trail_request(struct keyagent *agent, const struct peer *peer,
			 const struct protocol_message *request, const char *dataset, int result)
{
	char hash[2 * CRYPTO_SHA256_LEN + 1];
	struct audit_record r;

	if (!agent->trail || !worth_recording(request->type))
		return;
	/* A rekey report asked four times a second is no event. */
	if (request->type == PROTOCOL_REKEY && request->version && !result)
		return;
	audit_record_init(&r, protocol_type_name(request->type));
	audit_add_u64(&r, "uid", peer->uid);
	audit_add_u64(&r, "gid", peer->gid);
	audit_add_i64(&r, "pid", peer->pid);
	if (dataset && dataset[0])
		audit_add_text(&r, "dataset", dataset);
	if (request->lease_id)
		audit_add_u64(&r, "lease", request->lease_id);
	if (request->type == PROTOCOL_KEY_RETIRE)
		audit_add_u64(&r, "key_version", request->version);
	if (request->type == PROTOCOL_POLICY_RELOAD) {
		policy_hash(agent->config_path, hash);
		if (hash[0])
			audit_add_text(&r, "policy_sha256", hash);
	}
	audit_add_result(&r, result == -EINPROGRESS ? 0 : result);
	(void)audit_append(agent->trail, &r);
}
