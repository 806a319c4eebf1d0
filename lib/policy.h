/*
 * Role-based access policy: roles name principals (users, groups), grant datasets with
 * a mode and optional path rules, may be limited to time windows and hosts, and may
 * carry admin privileges. Every access decision of the key agent and of the FUSE daemon
 * is made here. A policy is built once (by config.c, from keyagent.conf) and is
 * immutable afterwards, so readers need no lock; a reload builds a new one.
 *
 * Path rules: within a dataset, a role's rules are tried in file order and the first
 * whose glob matches the path decides (the grant's mode is a ceiling: a rule never
 * gives rw under an ro grant). Globs: '*' and '?' within one path component, '**' as a
 * whole component any number of components (so features, a slash and '**' match
 * everything below features). Paths are
 * relative to the dataset root, without a leading '/'. A role with no rules for a dataset
 * gives its grant mode to every path. Directories are always traversable and listable
 * by anyone with any access to the dataset (names are not content); file contents and
 * changes follow the rules.
 */
#ifndef VAULTFS_POLICY_H
#define VAULTFS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define POLICY_NAME_MAX 64      /* role and dataset names: [A-Za-z0-9._-], 1..64 bytes,
				 * not "." or "..", not starting with '-' */
#define POLICY_GLOB_MAX 255

enum policy_mode {
	POLICY_NONE = 0,
	POLICY_RO = 1,
	POLICY_RW = 2,
};

/* Admin privileges ("admin = DATASET|* PRIV..."). */
#define POLICY_PRIV_CREATE 0x01   /* dataset create */
#define POLICY_PRIV_ROTATE 0x02   /* key rotate, rekey */
#define POLICY_PRIV_RETIRE 0x04   /* key retire */
#define POLICY_PRIV_SHRED  0x08   /* key shred */
#define POLICY_PRIV_REVOKE 0x10   /* lease revoke */
#define POLICY_PRIV_RELOAD 0x20   /* policy reload (dataset must be '*') */
#define POLICY_PRIV_KEK    0x40   /* kek rotate (dataset must be '*') */
#define POLICY_PRIV_SHARE  0x80   /* a user's mount shared with the users the policy lets
				     in (allow_other); not a key-admin privilege */
/* Key-admin privileges: whoever holds one on a dataset may hold no data grant on it. */
#define POLICY_KEY_PRIVS (POLICY_PRIV_ROTATE | POLICY_PRIV_RETIRE | POLICY_PRIV_SHRED | \
			  POLICY_PRIV_KEK)

struct policy;
struct policy_role;

/* Who is asking: from SO_PEERCRED / the FUSE request, never from the client's word. */
struct policy_principal {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;   /* supplementary groups */
	size_t group_count;
};

/* Where and when: the host name (for host patterns) and the time (for windows). */
struct policy_context {
	const char *host;
	time_t now;
};

/* Errors carry the line of the configuration file at fault and a message meant for the
 * administrator (names of roles, datasets, users; never keys). */
struct policy_error {
	unsigned line;
	char message[256];
};

/* Building (used by config.c). Every function returns 0 or -EINVAL with err filled;
 * line is the configuration line being applied. */
int policy_new(struct policy **out);
void policy_free(struct policy *policy);
int policy_add_role(struct policy *policy, const char *name, unsigned line,
		    struct policy_role **out, struct policy_error *err);
/* A user name (resolved with getpwnam now) or a numeric uid. */
int policy_role_add_user(struct policy_role *role, const char *user, unsigned line,
			 struct policy_error *err);
/* A group name (getgrnam) or a numeric gid. */
int policy_role_add_group(struct policy_role *role, const char *group, unsigned line,
			  struct policy_error *err);
int policy_role_add_grant(struct policy_role *role, const char *dataset, enum policy_mode mode,
			  unsigned line, struct policy_error *err);
/* mode may also be POLICY_NONE: a rule that denies the paths it matches. */
int policy_role_add_path_rule(struct policy_role *role, const char *dataset, const char *glob,
			      enum policy_mode mode, unsigned line, struct policy_error *err);
/* "Mon-Fri 07:00-19:00 Europe/Berlin": days (Mon..Sun, ranges and commas), a time range
 * (end after start; 24:00 allowed as end), an IANA zone name. Several windows: any. */
int policy_role_add_window(struct policy_role *role, const char *spec, unsigned line,
			   struct policy_error *err);
/* A shell glob over the host name; several patterns: any. */
int policy_role_add_host(struct policy_role *role, const char *pattern, unsigned line,
			 struct policy_error *err);
/* dataset may be "*" (every dataset); privs is a set of POLICY_PRIV_*. */
int policy_role_add_admin(struct policy_role *role, const char *dataset, unsigned privs,
			  unsigned line, struct policy_error *err);
/* Check the whole policy (separation of duties: no principal holds a key-admin
 * privilege and a data grant on the same dataset, directly or through a group it is a
 * member of; a role's rules only name datasets it grants). On a violation returns
 * -EPERM with err naming both lines. Call once, after the last add. */
int policy_finish(struct policy *policy, struct policy_error *err);

/* Decisions. Time windows are evaluated by pointing TZ at the window's zone for the
 * call and restoring it: functions taking a policy_context are not thread-safe (the
 * agent is single-threaded; the FUSE daemon only uses policy_grants_mode). A zone file
 * that has vanished since loading makes its window not match (fail closed). */

/* Whether principal holds priv on dataset ("*" for global privileges) in context. */
bool policy_has_privilege(const struct policy *policy, const struct policy_principal *who,
			  const char *dataset, unsigned priv, const struct policy_context *ctx);

/*
 * The grants on one dataset in force in context (time windows and hosts applied),
 * flattened to what the FUSE daemon needs to decide per request without the policy:
 * entries of (uid or gid, mode, rules). Sent over the agent protocol with each lease.
 */
struct policy_rule {
	char glob[POLICY_GLOB_MAX + 1];
	enum policy_mode mode;
};

struct policy_grant {
	bool is_group;             /* id is a gid, else a uid */
	uint32_t id;
	enum policy_mode mode;     /* the grant's ceiling */
	size_t rule_count;         /* 0: mode applies to every path */
	struct policy_rule *rules;
};

struct policy_grants {
	size_t count;
	struct policy_grant *grants;
};

int policy_dataset_grants(const struct policy *policy, const char *dataset,
			  const struct policy_context *ctx, struct policy_grants *out);
void policy_grants_release(struct policy_grants *grants);
int policy_grants_copy(struct policy_grants *dst, const struct policy_grants *src);

/* The datasets named by any grant or admin entry (for listing); *names malloc'd array of
 * pointers into the policy, valid while it lives. */
int policy_datasets(const struct policy *policy, const char ***names, size_t *count);
/* The role names in file order, the same way (added for 'vaultctl policy check'). */
int policy_roles(const struct policy *policy, const char ***names, size_t *count);

/*
 * Mode of principal on a path of the dataset under grants: the best over every grant
 * that names the principal's uid, primary gid or a supplementary gid. path "" is the
 * dataset root. is_dir: directories are listable with any access (POLICY_RO at least
 * when the principal has any grant), see above.
 */
enum policy_mode policy_grants_mode(const struct policy_grants *grants,
				    const struct policy_principal *who, const char *path,
				    bool is_dir);

/* Glob matching as described at the top (exposed for tests). */
bool policy_glob_match(const char *glob, const char *path);

/* A group name (getgrnam) or a numeric gid, as in a role's groups: 0, -ENOENT (no such
 * group), -EINVAL (neither a name nor an id) or -errno. Added for [agent] socket_group. */
int policy_group_lookup(const char *group, gid_t *gid);

/* Valid dataset or role name. */
bool policy_name_valid(const char *name);

#endif
