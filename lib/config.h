/*
 * The key agent's configuration file (keyagent.conf, INI read with inih): an [agent]
 * section of settings and one [role NAME] section per role, turned into a policy.
 * Only this module uses inih. Every error names the file, the line and the problem;
 * a file with any error is refused whole.
 *
 *   [agent]
 *   socket = /run/vaultfs/agent.sock       (directory made 0750, socket 0660)
 *   socket_group = vaultfs                 (group allowed to connect; default: root)
 *   keystore = /var/lib/vaultfs/keystore   (LMDB directory)
 *   data_root = /var/lib/vaultfs/vaults    (vault directories, one per dataset)
 *   kek = passphrase | keyfile:PATH | credential:NAME
 *   lease_ttl = 30                         (seconds, 5..86400)
 *   vaultfs = /usr/bin/vaultfs             (the daemon the agent starts for users'
 *                                           mounts; default: the installed one)
 *   audit_root = /var/log/vaultfs/audit    (the trails of the mounts it starts, one
 *                                           directory per dataset; default: none)
 *
 *   [role analysts]
 *   users = alice, 1001                    (names or numeric ids; repeatable)
 *   groups = ml
 *   grant = cardio rw                      (DATASET ro|rw; repeatable)
 *   path = cardio features/<**> ro         (DATASET GLOB ro|rw; repeatable, in order;
 *                                           written here with <> only because a C
 *                                           comment cannot hold a slash and two stars)
 *   window = Mon-Fri 07:00-19:00 Europe/Berlin
 *   hosts = gpu-*, train-?.example.org
 *   admin = cardio rotate retire           (DATASET|* PRIV...; see policy.h)
 */
#ifndef VAULTFS_CONFIG_H
#define VAULTFS_CONFIG_H

#include <sys/types.h>

#include "lib/policy.h"

enum config_kek_source {
	CONFIG_KEK_PASSPHRASE,   /* sealed until 'vaultctl unlock' */
	CONFIG_KEK_KEYFILE,      /* kek_arg: path of a 32-byte key file, mode 0600 */
	CONFIG_KEK_CREDENTIAL,   /* kek_arg: name under $CREDENTIALS_DIRECTORY */
};

struct config {
	char *socket_path;
	gid_t socket_group;
	char *keystore_path;
	char *data_root;
	enum config_kek_source kek_source;
	char *kek_arg;
	unsigned lease_ttl;
	char *vaultfs_path;      /* NULL: the default */
	char *audit_root;        /* NULL: mounts the agent starts keep no trail */
	struct policy *policy;   /* owned */
};

/* "FILE:LINE: problem" (or "FILE: problem" when no line applies). */
struct config_error {
	char message[512];
};

/* Read and check path. Returns 0, or -EINVAL (syntax, unknown key, bad value, policy
 * violation: err says which line), -ENOENT, -EACCES, -ENOMEM. */
int config_read(struct config *out, const char *path, struct config_error *err)
	__attribute__((warn_unused_result));
void config_release(struct config *config);

#endif
