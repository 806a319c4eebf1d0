/*
 * Role-based access policy (see policy.h): roles built line by line from keyagent.conf,
 * checked whole by policy_finish (path rules, separation of duties), then asked for
 * privileges and flattened into per-dataset grants for the FUSE daemon. Also the glob
 * matcher for path rules and host patterns, written here because fnmatch has no '**'.
 */
#include "lib/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define ZONE_NAME_MAX 128
#define HOST_PATTERN_MAX 253
#define DAY_COUNT 7
#define MINUTES_PER_DAY (24 * 60)

/* A growable array of fixed-size items. */
struct array {
	void *items;
	size_t count;
	size_t cap;
};

/* One name of a users= or groups= list: the id, and the name as written for messages. */
struct principal {
	uint32_t id;
	unsigned line;
	char name[POLICY_NAME_MAX + 1];
	/* Users only, filled by policy_finish: every group the account is a member of
	 * (getgrouplist), for separation of duties. */
	gid_t *member_of;
	size_t member_of_count;
};

struct grant_entry {
	char dataset[POLICY_NAME_MAX + 1];
	enum policy_mode mode;
	unsigned line;
};

struct rule_entry {
	char dataset[POLICY_NAME_MAX + 1];
	char glob[POLICY_GLOB_MAX + 1];
	enum policy_mode mode;
	unsigned line;
};

struct window {
	unsigned days;            /* bit 0 Monday .. bit 6 Sunday */
	unsigned start_minute;    /* inclusive */
	unsigned end_minute;      /* exclusive, up to 24:00 */
	char zone_path[sizeof(ZONEINFO_DIR) + ZONE_NAME_MAX + 1];
	unsigned line;
};

struct host_entry {
	char pattern[HOST_PATTERN_MAX + 1];   /* lowercase */
	unsigned line;
};

struct admin_entry {
	char dataset[POLICY_NAME_MAX + 1];    /* or "*" */
	unsigned privs;
	unsigned line;
};

struct policy_role {
	char name[POLICY_NAME_MAX + 1];
	unsigned line;
	struct array users;       /* struct principal */
	struct array groups;      /* struct principal */
	struct array grants;      /* struct grant_entry */
	struct array rules;       /* struct rule_entry, in file order */
	struct array windows;     /* struct window */
	struct array hosts;       /* struct host_entry */
	struct array admins;      /* struct admin_entry */
};

struct policy {
	struct array roles;       /* struct policy_role * */
	bool finished;
};

static const char *const day_names[DAY_COUNT] = {
	"mon", "tue", "wed", "thu", "fri", "sat", "sun",
};

/* Fill err (which may be NULL) and return -EINVAL. */
__attribute__((format(printf, 3, 4)))
static int fail(struct policy_error *err, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->line = line;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int fail_nomem(struct policy_error *err, unsigned line)
{
	fail(err, line, "out of memory");
	return -ENOMEM;
}

/* A zeroed new slot at the end of array, or NULL when out of memory. */
static void *array_append(struct array *array, size_t size)
{
	char *slot;

	if (array->count == array->cap) {
		size_t cap = array->cap == 0 ? 4 : array->cap * 2;
		void *items = reallocarray(array->items, cap, size);

		if (items == NULL)
			return NULL;
		array->items = items;
		array->cap = cap;
	}
	slot = (char *)array->items + array->count * size;
	memset(slot, 0, size);
	array->count++;
	return slot;
}

static void array_release(struct array *array)
{
	free(array->items);
	memset(array, 0, sizeof(*array));
}

static struct policy_role *role_at(const struct policy *policy, size_t i)
{
	return ((struct policy_role **)policy->roles.items)[i];
}

/* Building. */

int policy_new(struct policy **out)
{
	struct policy *policy = calloc(1, sizeof(*policy));

	if (policy == NULL)
		return -ENOMEM;
	*out = policy;
	return 0;
}

static void role_free(struct policy_role *role)
{
	struct principal *users = role->users.items;
	size_t i;

	for (i = 0; i < role->users.count; i++)
		free(users[i].member_of);
	array_release(&role->users);
	array_release(&role->groups);
	array_release(&role->grants);
	array_release(&role->rules);
	array_release(&role->windows);
	array_release(&role->hosts);
	array_release(&role->admins);
	free(role);
}

void policy_free(struct policy *policy)
{
	size_t i;

	if (policy == NULL)
		return;
	for (i = 0; i < policy->roles.count; i++)
		role_free(role_at(policy, i));
	array_release(&policy->roles);
	free(policy);
}

bool policy_name_valid(const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (len == 0 || len > POLICY_NAME_MAX)
		return false;
	/* Dataset names become directory names under the data root and arguments of
	 * vaultctl: no "." or "..", no leading '-'. */
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || name[0] == '-')
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static struct policy_role *find_role(const struct policy *policy, const char *name)
{
	size_t i;

	for (i = 0; i < policy->roles.count; i++)
		if (strcmp(role_at(policy, i)->name, name) == 0)
			return role_at(policy, i);
	return NULL;
}

int policy_add_role(struct policy *policy, const char *name, unsigned line,
		    struct policy_role **out, struct policy_error *err)
{
	struct policy_role *role;
	struct policy_role *existing;
	struct policy_role **slot;

	if (policy->finished)
		abort();   /* a finished policy is immutable: readers hold no lock */
	if (!policy_name_valid(name))
		return fail(err, line, "bad role name '%s': use 1..%d letters, digits, '.', '_' "
			    "or '-', not starting with '-'", name, POLICY_NAME_MAX);
	existing = find_role(policy, name);
	if (existing != NULL)
		return fail(err, line, "role '%s' is defined twice (first on line %u): give each "
			    "role its own name", name, existing->line);
	role = calloc(1, sizeof(*role));
	if (role == NULL)
		return fail_nomem(err, line);
	slot = array_append(&policy->roles, sizeof(*slot));
	if (slot == NULL) {
		free(role);
		return fail_nomem(err, line);
	}
	snprintf(role->name, sizeof(role->name), "%s", name);
	role->line = line;
	*slot = role;
	*out = role;
	return 0;
}

/* A decimal id: digits only, no sign, below (uint32_t)-1 (which means "no id"). */
static bool parse_id(const char *text, uint32_t *out)
{
	unsigned long long value = 0;
	size_t i;

	if (text[0] == '\0' || strlen(text) > 10)
		return false;
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		value = value * 10 + (unsigned)(text[i] - '0');
	}
	if (value >= UINT32_MAX)
		return false;
	*out = (uint32_t)value;
	return true;
}

/* getpwnam_r/getpwuid_r/getgrnam_r want a buffer of unknown size: grow it on ERANGE.
 * Returns 0, -ENOENT (no such entry) or -errno. */
static int lookup_user(const char *name, uid_t uid, uid_t *uid_out, gid_t *gid_out,
		       char *name_out, size_t name_len)
{
	struct passwd pw;
	struct passwd *found = NULL;
	size_t buf_len = 1024;
	char *buf = NULL;
	int status;

	for (;;) {
		char *bigger = realloc(buf, buf_len);

		if (bigger == NULL) {
			status = -ENOMEM;
			goto out_free;
		}
		buf = bigger;
		if (name != NULL)
			status = getpwnam_r(name, &pw, buf, buf_len, &found);
		else
			status = getpwuid_r(uid, &pw, buf, buf_len, &found);
		if (status != ERANGE || buf_len >= (1u << 20))
			break;
		buf_len *= 4;
	}
	if (status != 0) {
		status = -status;
		goto out_free;
	}
	if (found == NULL) {
		status = -ENOENT;
		goto out_free;
	}
	if (uid_out != NULL)
		*uid_out = pw.pw_uid;
	if (gid_out != NULL)
		*gid_out = pw.pw_gid;
	if (name_out != NULL)
		snprintf(name_out, name_len, "%s", pw.pw_name);
	status = 0;
out_free:
	free(buf);
	return status;
}

static int lookup_group(const char *name, gid_t *gid_out)
{
	struct group gr;
	struct group *found = NULL;
	size_t buf_len = 1024;
	char *buf = NULL;
	int status;

	for (;;) {
		char *bigger = realloc(buf, buf_len);

		if (bigger == NULL) {
			status = -ENOMEM;
			goto out_free;
		}
		buf = bigger;
		status = getgrnam_r(name, &gr, buf, buf_len, &found);
		if (status != ERANGE || buf_len >= (1u << 22))
			break;
		buf_len *= 4;
	}
	if (status != 0) {
		status = -status;
		goto out_free;
	}
	if (found == NULL) {
		status = -ENOENT;
		goto out_free;
	}
	*gid_out = gr.gr_gid;
	status = 0;
out_free:
	free(buf);
	return status;
}

int policy_group_lookup(const char *group, gid_t *gid)
{
	uint32_t id;

	if (parse_id(group, &id)) {
		*gid = id;
		return 0;
	}
	if (group[0] == '\0' || strlen(group) > POLICY_NAME_MAX)
		return -EINVAL;
	return lookup_group(group, gid);
}

static int add_principal(struct array *list, const char *text, bool is_group, unsigned line,
			 struct policy_error *err)
{
	const char *kind = is_group ? "group" : "user";
	struct principal *principal;
	uint32_t id;
	int status;

	if (strlen(text) > POLICY_NAME_MAX)
		return fail(err, line, "%s name '%.*s...' is longer than %d bytes: give the "
			    "numeric id", kind, 16, text, POLICY_NAME_MAX);
	if (!parse_id(text, &id)) {
		if (is_group) {
			gid_t gid = 0;

			status = lookup_group(text, &gid);
			id = gid;
		} else {
			uid_t uid = 0;

			status = lookup_user(text, 0, &uid, NULL, NULL, 0);
			id = uid;
		}
		if (status == -ENOENT)
			return fail(err, line, "unknown %s '%s': no such %s on this host: create "
				    "it or give a numeric %s", kind, text,
				    is_group ? "group" : "account", is_group ? "gid" : "uid");
		if (status == -ENOMEM)
			return fail_nomem(err, line);
		if (status < 0)
			return fail(err, line, "cannot look up %s '%s': %s: check nsswitch.conf",
				    kind, text, strerror(-status));
	}
	principal = array_append(list, sizeof(*principal));
	if (principal == NULL)
		return fail_nomem(err, line);
	principal->id = id;
	principal->line = line;
	snprintf(principal->name, sizeof(principal->name), "%s", text);
	return 0;
}

int policy_role_add_user(struct policy_role *role, const char *user, unsigned line,
			 struct policy_error *err)
{
	return add_principal(&role->users, user, false, line, err);
}

int policy_role_add_group(struct policy_role *role, const char *group, unsigned line,
			  struct policy_error *err)
{
	return add_principal(&role->groups, group, true, line, err);
}

static const struct grant_entry *role_grant(const struct policy_role *role,
					    const char *dataset)
{
	const struct grant_entry *grants = role->grants.items;
	size_t i;

	for (i = 0; i < role->grants.count; i++)
		if (strcmp(grants[i].dataset, dataset) == 0)
			return &grants[i];
	return NULL;
}

static int check_dataset_name(const char *dataset, unsigned line, struct policy_error *err)
{
	if (!policy_name_valid(dataset))
		return fail(err, line, "bad dataset name '%.*s': use 1..%d letters, digits, '.', "
			    "'_' or '-', not starting with '-'", POLICY_NAME_MAX + 1, dataset,
			    POLICY_NAME_MAX);
	return 0;
}

int policy_role_add_grant(struct policy_role *role, const char *dataset, enum policy_mode mode,
			  unsigned line, struct policy_error *err)
{
	const struct grant_entry *existing;
	struct grant_entry *grant;
	int status;

	status = check_dataset_name(dataset, line, err);
	if (status < 0)
		return status;
	if (mode != POLICY_RO && mode != POLICY_RW)
		return fail(err, line, "a grant of '%s' needs the mode ro or rw", dataset);
	existing = role_grant(role, dataset);
	if (existing != NULL)
		return fail(err, line, "role '%s' grants '%s' twice (first on line %u): keep one "
			    "grant per dataset and use path rules for parts of it", role->name,
			    dataset, existing->line);
	grant = array_append(&role->grants, sizeof(*grant));
	if (grant == NULL)
		return fail_nomem(err, line);
	snprintf(grant->dataset, sizeof(grant->dataset), "%s", dataset);
	grant->mode = mode;
	grant->line = line;
	return 0;
}

/* Path globs: relative, '/'-separated, no empty, "." or ".." components, '**' only as a
 * whole component, no character classes or escapes (which the matcher does not have). */
static int check_glob(const char *glob, unsigned line, struct policy_error *err)
{
	const char *component = glob;
	size_t len = strlen(glob);

	if (len == 0)
		return fail(err, line, "empty path glob: use '**' for the whole dataset");
	if (len > POLICY_GLOB_MAX)
		return fail(err, line, "path glob is longer than %d bytes", POLICY_GLOB_MAX);
	if (glob[0] == '/')
		return fail(err, line, "path glob '%s' starts with '/': globs are relative to "
			    "the dataset root, drop the leading '/'", glob);
	for (;;) {
		size_t component_len = strcspn(component, "/");
		size_t i;

		if (component_len == 0)
			return fail(err, line, "path glob '%s' has an empty component ('//' or a "
				    "trailing '/'): write 'dir/**' for a directory's contents", glob);
		if ((component_len == 1 && component[0] == '.') ||
		    (component_len == 2 && component[0] == '.' && component[1] == '.'))
			return fail(err, line, "path glob '%s' has a '.' or '..' component: write "
				    "the path from the dataset root", glob);
		for (i = 0; i < component_len; i++) {
			unsigned char c = (unsigned char)component[i];

			if (c < 0x20 || c == 0x7f)
				return fail(err, line, "path glob has a control character");
			if (c == '[' || c == ']' || c == '\\')
				return fail(err, line, "path glob '%s' uses '%c': character classes "
					    "and escapes are not supported, use '?' or '*'", glob, c);
			if (c == '*' && i + 1 < component_len && component[i + 1] == '*' &&
			    component_len != 2)
				return fail(err, line, "path glob '%s' has '**' inside a component: "
					    "'**' must stand alone between slashes, as in "
					    "'dir/**/*.pt'", glob);
		}
		if (component[component_len] == '\0')
			break;
		component += component_len + 1;
	}
	return 0;
}

int policy_role_add_path_rule(struct policy_role *role, const char *dataset, const char *glob,
			      enum policy_mode mode, unsigned line, struct policy_error *err)
{
	struct rule_entry *rule;
	int status;

	status = check_dataset_name(dataset, line, err);
	if (status < 0)
		return status;
	status = check_glob(glob, line, err);
	if (status < 0)
		return status;
	if (mode != POLICY_NONE && mode != POLICY_RO && mode != POLICY_RW)
		return fail(err, line, "a path rule needs the mode none, ro or rw");
	rule = array_append(&role->rules, sizeof(*rule));
	if (rule == NULL)
		return fail_nomem(err, line);
	snprintf(rule->dataset, sizeof(rule->dataset), "%s", dataset);
	snprintf(rule->glob, sizeof(rule->glob), "%s", glob);
	rule->mode = mode;
	rule->line = line;
	return 0;
}

/* Time windows. */

static int parse_day(const char *text, size_t len, unsigned *day)
{
	unsigned i;

	if (len != 3)
		return -EINVAL;
	for (i = 0; i < DAY_COUNT; i++)
		if (strncasecmp(text, day_names[i], 3) == 0) {
			*day = i;
			return 0;
		}
	return -EINVAL;
}

/* "Mon-Fri", "Sat,Sun", "Fri-Mon" (wraps over the week end), "Mon,Wed-Fri". */
static int parse_days(const char *text, unsigned *days_out)
{
	unsigned days = 0;
	const char *item = text;

	for (;;) {
		size_t item_len = strcspn(item, ",");
		const char *dash = memchr(item, '-', item_len);
		unsigned first;
		unsigned last;

		if (dash == NULL) {
			if (parse_day(item, item_len, &first) < 0)
				return -EINVAL;
			last = first;
		} else if (parse_day(item, (size_t)(dash - item), &first) < 0 ||
			   parse_day(dash + 1, item_len - (size_t)(dash - item) - 1, &last) < 0) {
			return -EINVAL;
		}
		for (;;) {
			days |= 1u << first;
			if (first == last)
				break;
			first = (first + 1) % DAY_COUNT;
		}
		if (item[item_len] == '\0')
			break;
		item += item_len + 1;
	}
	*days_out = days;
	return 0;
}

/* "HH:MM" exactly; 24:00 only when allow_end_of_day. */
static int parse_clock(const char *text, bool allow_end_of_day, unsigned *minute)
{
	unsigned hours;
	unsigned minutes;

	if (strlen(text) != 5 || text[2] != ':')
		return -EINVAL;
	if (text[0] < '0' || text[0] > '9' || text[1] < '0' || text[1] > '9' ||
	    text[3] < '0' || text[3] > '9' || text[4] < '0' || text[4] > '9')
		return -EINVAL;
	hours = (unsigned)(text[0] - '0') * 10 + (unsigned)(text[1] - '0');
	minutes = (unsigned)(text[3] - '0') * 10 + (unsigned)(text[4] - '0');
	if (minutes > 59 || hours > 24 || (hours == 24 && (minutes != 0 || !allow_end_of_day)))
		return -EINVAL;
	*minute = hours * 60 + minutes;
	return 0;
}

/* An IANA name with a TZif file under ZONEINFO_DIR. */
static int check_zone(const char *zone, char *path, size_t path_len, unsigned line,
		      struct policy_error *err)
{
	const char *component = zone;
	char magic[4];
	struct stat st;
	size_t i;
	int fd;
	ssize_t n;

	if (strlen(zone) > ZONE_NAME_MAX || zone[0] == '/' || zone[0] == '\0')
		goto out_bad;
	for (i = 0; zone[i] != '\0'; i++) {
		char c = zone[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '/' || c == '_' || c == '+' || c == '-'))
			goto out_bad;
	}
	for (;;) {
		size_t len = strcspn(component, "/");

		if (len == 0)
			goto out_bad;
		if (component[len] == '\0')
			break;
		component += len + 1;
	}
	snprintf(path, path_len, "%s/%s", ZONEINFO_DIR, zone);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ELOOP)   /* some zones are symlinks to others: fine */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (stat(ZONEINFO_DIR, &st) != 0)
			return fail(err, line, "cannot check time zone '%s': %s is missing: "
				    "install the tzdata package", zone, ZONEINFO_DIR);
		return fail(err, line, "unknown time zone '%s': no such file in %s: use an IANA "
			    "name such as Europe/Berlin or UTC", zone, ZONEINFO_DIR);
	}
	n = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? read(fd, magic, sizeof(magic)) : -1;
	close(fd);
	if (n != (ssize_t)sizeof(magic) || memcmp(magic, "TZif", sizeof(magic)) != 0)
		return fail(err, line, "unknown time zone '%s': %s is not a time zone file: use "
			    "an IANA name such as Europe/Berlin or UTC", zone, path);
	return 0;
out_bad:
	return fail(err, line, "bad time zone name '%.*s': use an IANA name such as "
		    "Europe/Berlin or UTC", ZONE_NAME_MAX, zone);
}

int policy_role_add_window(struct policy_role *role, const char *spec, unsigned line,
			   struct policy_error *err)
{
	char copy[256];
	char *fields[4];
	char *dash;
	char *cursor;
	size_t count = 0;
	struct window window = { .line = line };
	struct window *slot;
	int status;

	if (strlen(spec) >= sizeof(copy))
		return fail(err, line, "time window is too long");
	snprintf(copy, sizeof(copy), "%s", spec);
	for (cursor = strtok_r(copy, " \t", &dash); cursor != NULL && count < 4;
	     cursor = strtok_r(NULL, " \t", &dash))
		fields[count++] = cursor;
	if (count != 3)
		return fail(err, line, "bad time window '%s': write DAYS HH:MM-HH:MM ZONE, as in "
			    "'Mon-Fri 07:00-19:00 Europe/Berlin'", spec);
	if (parse_days(fields[0], &window.days) < 0)
		return fail(err, line, "bad days '%s' in time window: use Mon..Sun, ranges and "
			    "commas, as in 'Mon-Fri' or 'Sat,Sun'", fields[0]);
	dash = strchr(fields[1], '-');
	if (dash == NULL)
		goto out_bad_hours;
	*dash = '\0';
	if (parse_clock(fields[1], false, &window.start_minute) < 0 ||
	    parse_clock(dash + 1, true, &window.end_minute) < 0)
		goto out_bad_hours;
	if (window.end_minute <= window.start_minute)
		return fail(err, line, "time window ends at %s, not after it starts at %s: split "
			    "a window over midnight in two, ending at 24:00 and starting at 00:00",
			    dash + 1, fields[1]);
	status = check_zone(fields[2], window.zone_path, sizeof(window.zone_path), line, err);
	if (status < 0)
		return status;
	slot = array_append(&role->windows, sizeof(*slot));
	if (slot == NULL)
		return fail_nomem(err, line);
	*slot = window;
	return 0;
out_bad_hours:
	return fail(err, line, "bad hours in time window '%s': write HH:MM-HH:MM, as in "
		    "07:00-19:00 (24:00 may end a window)", spec);
}

int policy_role_add_host(struct policy_role *role, const char *pattern, unsigned line,
			 struct policy_error *err)
{
	struct host_entry *host;
	size_t len = strlen(pattern);
	size_t i;

	if (len == 0 || len > HOST_PATTERN_MAX)
		return fail(err, line, "bad host pattern: give 1..%d characters", HOST_PATTERN_MAX);
	for (i = 0; i < len; i++) {
		char c = pattern[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_' || c == '*' || c == '?'))
			return fail(err, line, "bad host pattern '%s': use letters, digits, '.', "
				    "'-', '_' and the wildcards '*' and '?'", pattern);
	}
	host = array_append(&role->hosts, sizeof(*host));
	if (host == NULL)
		return fail_nomem(err, line);
	for (i = 0; i < len; i++)
		host->pattern[i] = (char)(pattern[i] >= 'A' && pattern[i] <= 'Z' ?
					  pattern[i] - 'A' + 'a' : pattern[i]);
	host->pattern[len] = '\0';
	host->line = line;
	return 0;
}

int policy_role_add_admin(struct policy_role *role, const char *dataset, unsigned privs,
			  unsigned line, struct policy_error *err)
{
	const unsigned all = POLICY_PRIV_CREATE | POLICY_PRIV_ROTATE | POLICY_PRIV_RETIRE |
			     POLICY_PRIV_SHRED | POLICY_PRIV_REVOKE | POLICY_PRIV_RELOAD |
			     POLICY_PRIV_KEK | POLICY_PRIV_SHARE;
	bool global = strcmp(dataset, "*") == 0;
	struct admin_entry *admin;
	int status;

	if (!global) {
		status = check_dataset_name(dataset, line, err);
		if (status < 0)
			return status;
	}
	if (privs == 0 || (privs & ~all) != 0)
		return fail(err, line, "no such admin privilege: use create, rotate, retire, "
			    "shred, revoke, reload, kek or share");
	if (!global && (privs & (POLICY_PRIV_RELOAD | POLICY_PRIV_KEK)) != 0)
		return fail(err, line, "the privileges reload and kek concern the whole agent, "
			    "not dataset '%s': write them as 'admin = * %s'", dataset,
			    (privs & POLICY_PRIV_RELOAD) ? "reload" : "kek");
	admin = array_append(&role->admins, sizeof(*admin));
	if (admin == NULL)
		return fail_nomem(err, line);
	snprintf(admin->dataset, sizeof(admin->dataset), "%s", dataset);
	admin->privs = privs;
	admin->line = line;
	return 0;
}

/* Checking the whole policy. */

/* Every group the user account of principal belongs to (its primary group included),
 * for separation of duties; an id without an account belongs to none. */
static int load_memberships(struct principal *user)
{
	char name[256];
	gid_t primary = 0;
	gid_t *groups = NULL;
	int count = 16;
	int status;

	status = lookup_user(NULL, user->id, NULL, &primary, name, sizeof(name));
	if (status == -ENOENT)
		return 0;
	if (status < 0)
		return status;
	for (;;) {
		int want = count;
		gid_t *bigger = reallocarray(groups, (size_t)count, sizeof(*groups));

		if (bigger == NULL) {
			free(groups);
			return -ENOMEM;
		}
		groups = bigger;
		if (getgrouplist(name, primary, groups, &count) >= 0)
			break;
		if (count <= want)   /* glibc always raises count; be safe against a loop */
			count = want * 2;
		if (count > 65536) {
			free(groups);
			return -E2BIG;
		}
	}
	user->member_of = groups;
	user->member_of_count = (size_t)count;
	return 0;
}

static bool gid_in(gid_t gid, const gid_t *gids, size_t count)
{
	size_t i;

	for (i = 0; i < count; i++)
		if (gids[i] == gid)
			return true;
	return false;
}

/* Describes where a key-admin privilege and a data grant meet. */
struct duty_conflict {
	const struct policy_role *admin_role;
	const struct admin_entry *admin;
	const struct policy_role *data_role;
	const struct grant_entry *grant;
};

static int report_conflict(const struct duty_conflict *c, const char *who,
			   const char *admin_via, const char *data_via, struct policy_error *err)
{
	char on[POLICY_NAME_MAX + 32];
	const char *it = "it";
	char it_named[POLICY_NAME_MAX + 8];

	if (strcmp(c->admin->dataset, "*") == 0) {
		snprintf(on, sizeof(on), "every dataset ('*')");
		snprintf(it_named, sizeof(it_named), "'%s'", c->grant->dataset);
		it = it_named;
	} else {
		snprintf(on, sizeof(on), "'%s'", c->admin->dataset);
	}
	if (c->admin_role == c->data_role)
		return fail(err, c->admin->line, "role '%s' holds key-admin privileges on %s "
			    "(line %u) and a data grant on %s (line %u): separation of duties "
			    "forbids both: move one to another role", c->admin_role->name, on,
			    c->admin->line, it, c->grant->line);
	return fail(err, c->admin->line, "%s holds key-admin privileges on %s%s through role "
		    "'%s' (line %u) and a data grant on %s%s through role '%s' (line %u): "
		    "separation of duties forbids both", who, on, admin_via, c->admin_role->name,
		    c->admin->line, it, data_via, c->data_role->name, c->grant->line);
}

/* -EPERM with err filled when any principal of admin_role is also one of data_role. */
static int check_shared_principal(const struct duty_conflict *c, struct policy_error *err)
{
	const struct principal *admin_users = c->admin_role->users.items;
	const struct principal *admin_groups = c->admin_role->groups.items;
	const struct principal *data_users = c->data_role->users.items;
	const struct principal *data_groups = c->data_role->groups.items;
	char who[POLICY_NAME_MAX + 16];
	char via[POLICY_NAME_MAX + 32];
	size_t i;
	size_t j;

	if (c->admin_role == c->data_role) {
		report_conflict(c, NULL, "", "", err);
		return -EPERM;
	}
	for (i = 0; i < c->admin_role->users.count; i++) {
		const struct principal *admin_user = &admin_users[i];

		for (j = 0; j < c->data_role->users.count; j++) {
			if (admin_user->id != data_users[j].id)
				continue;
			snprintf(who, sizeof(who), "user '%s'", admin_user->name);
			report_conflict(c, who, "", "", err);
			return -EPERM;
		}
		for (j = 0; j < c->data_role->groups.count; j++) {
			if (!gid_in(data_groups[j].id, admin_user->member_of,
				    admin_user->member_of_count))
				continue;
			snprintf(who, sizeof(who), "user '%s'", admin_user->name);
			snprintf(via, sizeof(via), " (as a member of group '%s')",
				 data_groups[j].name);
			report_conflict(c, who, "", via, err);
			return -EPERM;
		}
	}
	for (i = 0; i < c->admin_role->groups.count; i++) {
		const struct principal *admin_group = &admin_groups[i];

		for (j = 0; j < c->data_role->groups.count; j++) {
			if (admin_group->id != data_groups[j].id)
				continue;
			snprintf(who, sizeof(who), "group '%s'", admin_group->name);
			report_conflict(c, who, "", "", err);
			return -EPERM;
		}
		for (j = 0; j < c->data_role->users.count; j++) {
			if (!gid_in(admin_group->id, data_users[j].member_of,
				    data_users[j].member_of_count))
				continue;
			snprintf(who, sizeof(who), "user '%s'", data_users[j].name);
			snprintf(via, sizeof(via), " (as a member of group '%s')",
				 admin_group->name);
			report_conflict(c, who, via, "", err);
			return -EPERM;
		}
	}
	return 0;
}

static int check_separation_of_duties(const struct policy *policy, struct policy_error *err)
{
	struct duty_conflict c;
	size_t a;
	size_t d;
	size_t i;
	size_t j;
	int status;

	for (a = 0; a < policy->roles.count; a++) {
		const struct policy_role *admin_role = role_at(policy, a);
		const struct admin_entry *admins = admin_role->admins.items;

		for (i = 0; i < admin_role->admins.count; i++) {
			if ((admins[i].privs & POLICY_KEY_PRIVS) == 0)
				continue;
			for (d = 0; d < policy->roles.count; d++) {
				const struct policy_role *data_role = role_at(policy, d);
				const struct grant_entry *grants = data_role->grants.items;

				for (j = 0; j < data_role->grants.count; j++) {
					if (strcmp(admins[i].dataset, "*") != 0 &&
					    strcmp(admins[i].dataset, grants[j].dataset) != 0)
						continue;
					c.admin_role = admin_role;
					c.admin = &admins[i];
					c.data_role = data_role;
					c.grant = &grants[j];
					status = check_shared_principal(&c, err);
					if (status < 0)
						return status;
				}
			}
		}
	}
	return 0;
}

int policy_finish(struct policy *policy, struct policy_error *err)
{
	size_t r;
	size_t i;
	int status;

	if (policy->finished)
		abort();
	for (r = 0; r < policy->roles.count; r++) {
		struct policy_role *role = role_at(policy, r);
		const struct rule_entry *rules = role->rules.items;
		struct principal *users = role->users.items;

		for (i = 0; i < role->rules.count; i++)
			if (role_grant(role, rules[i].dataset) == NULL)
				return fail(err, rules[i].line, "path rule for dataset '%s' in role "
					    "'%s', which grants no access to it: add 'grant = %s ro' "
					    "or 'grant = %s rw' to the role", rules[i].dataset,
					    role->name, rules[i].dataset, rules[i].dataset);
		for (i = 0; i < role->users.count; i++) {
			status = load_memberships(&users[i]);
			if (status == -ENOMEM)
				return fail_nomem(err, users[i].line);
			if (status < 0)
				return fail(err, users[i].line, "cannot list the groups of user "
					    "'%s': %s", users[i].name, strerror(-status));
		}
	}
	status = check_separation_of_duties(policy, err);
	if (status < 0)
		return status;
	policy->finished = true;
	return 0;
}

/* Decisions. */

static bool principal_in_role(const struct policy_role *role, const struct policy_principal *who)
{
	const struct principal *users = role->users.items;
	const struct principal *groups = role->groups.items;
	size_t i;

	for (i = 0; i < role->users.count; i++)
		if (users[i].id == (uint32_t)who->uid)
			return true;
	for (i = 0; i < role->groups.count; i++)
		if (groups[i].id == (uint32_t)who->gid ||
		    (who->groups != NULL && gid_in((gid_t)groups[i].id, who->groups,
						   who->group_count)))
			return true;
	return false;
}

/*
 * Local time of now in the zone of zone_path. localtime_r reads only the process-wide TZ,
 * so switch it for the call and put the old value back; this is not thread-safe, which is
 * why windows are decided in the (single-threaded) agent and never in the FUSE daemon.
 * Fails (so the window does not match) if the zone file has gone since it was checked,
 * where glibc would silently fall back to UTC.
 */
static bool zone_local_time(const char *zone_path, time_t now, struct tm *tm)
{
	char tz[sizeof(((struct window *)0)->zone_path) + 1];
	const char *old = getenv("TZ");
	char *saved = NULL;
	bool ok;

	if (access(zone_path, R_OK) != 0)
		return false;
	if (old != NULL) {
		saved = strdup(old);
		if (saved == NULL)
			return false;
	}
	snprintf(tz, sizeof(tz), ":%s", zone_path);
	ok = setenv("TZ", tz, 1) == 0;
	if (ok) {
		tzset();
		ok = localtime_r(&now, tm) != NULL;
	}
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	return ok;
}

static bool window_contains(const struct window *window, time_t now)
{
	struct tm tm;
	unsigned day;
	unsigned minute;

	if (!zone_local_time(window->zone_path, now, &tm))
		return false;
	day = (unsigned)(tm.tm_wday + DAY_COUNT - 1) % DAY_COUNT;   /* tm_wday 0 is Sunday */
	minute = (unsigned)tm.tm_hour * 60 + (unsigned)tm.tm_min;
	return (window->days & (1u << day)) != 0 && minute >= window->start_minute &&
	       minute < window->end_minute;
}

static bool host_matches(const struct policy_role *role, const char *host)
{
	const struct host_entry *hosts = role->hosts.items;
	char lower[HOST_PATTERN_MAX + 1];
	size_t len;
	size_t i;

	if (role->hosts.count == 0)
		return true;
	if (host == NULL || (len = strlen(host)) == 0 || len > HOST_PATTERN_MAX)
		return false;
	for (i = 0; i <= len; i++)
		lower[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
	/* Host names have no '/', so '*' spans the whole name, dots included. */
	if (strchr(lower, '/') != NULL)
		return false;
	for (i = 0; i < role->hosts.count; i++)
		if (policy_glob_match(hosts[i].pattern, lower))
			return true;
	return false;
}

static bool role_in_force(const struct policy_role *role, const struct policy_context *ctx)
{
	const struct window *windows = role->windows.items;
	size_t i;

	if (ctx == NULL)
		abort();
	if (!host_matches(role, ctx->host))
		return false;
	if (role->windows.count == 0)
		return true;
	for (i = 0; i < role->windows.count; i++)
		if (window_contains(&windows[i], ctx->now))
			return true;
	return false;
}

bool policy_has_privilege(const struct policy *policy, const struct policy_principal *who,
			  const char *dataset, unsigned priv, const struct policy_context *ctx)
{
	bool global = strcmp(dataset, "*") == 0;
	size_t r;
	size_t i;

	if (priv == 0)
		return false;
	for (r = 0; r < policy->roles.count; r++) {
		const struct policy_role *role = role_at(policy, r);
		const struct admin_entry *admins = role->admins.items;
		bool held = false;

		for (i = 0; i < role->admins.count && !held; i++)
			held = (admins[i].privs & priv) == priv &&
			       (strcmp(admins[i].dataset, "*") == 0 ||
				(!global && strcmp(admins[i].dataset, dataset) == 0));
		if (held && principal_in_role(role, who) && role_in_force(role, ctx))
			return true;
	}
	return false;
}

void policy_grants_release(struct policy_grants *grants)
{
	size_t i;

	for (i = 0; i < grants->count; i++)
		free(grants->grants[i].rules);
	free(grants->grants);
	grants->grants = NULL;
	grants->count = 0;
}

/* The rules of role for dataset, in file order, into a new array. */
static int copy_role_rules(const struct policy_role *role, const char *dataset,
			   struct policy_grant *grant)
{
	const struct rule_entry *rules = role->rules.items;
	size_t count = 0;
	size_t i;

	for (i = 0; i < role->rules.count; i++)
		if (strcmp(rules[i].dataset, dataset) == 0)
			count++;
	grant->rule_count = 0;
	grant->rules = NULL;
	if (count == 0)
		return 0;
	grant->rules = calloc(count, sizeof(*grant->rules));
	if (grant->rules == NULL)
		return -ENOMEM;
	for (i = 0; i < role->rules.count; i++) {
		struct policy_rule *rule;

		if (strcmp(rules[i].dataset, dataset) != 0)
			continue;
		rule = &grant->rules[grant->rule_count++];
		memcpy(rule->glob, rules[i].glob, sizeof(rule->glob));
		rule->mode = rules[i].mode;
	}
	return 0;
}

int policy_dataset_grants(const struct policy *policy, const char *dataset,
			  const struct policy_context *ctx, struct policy_grants *out)
{
	struct policy_grants grants = { 0 };
	size_t capacity = 0;
	size_t r;
	size_t i;
	int status;

	for (r = 0; r < policy->roles.count; r++) {
		const struct policy_role *role = role_at(policy, r);

		if (role_grant(role, dataset) != NULL)
			capacity += role->users.count + role->groups.count;
	}
	if (capacity > 0) {
		grants.grants = calloc(capacity, sizeof(*grants.grants));
		if (grants.grants == NULL)
			return -ENOMEM;
	}
	for (r = 0; r < policy->roles.count; r++) {
		const struct policy_role *role = role_at(policy, r);
		const struct grant_entry *entry = role_grant(role, dataset);
		const struct principal *users = role->users.items;
		const struct principal *groups = role->groups.items;
		size_t members = role->users.count + role->groups.count;

		if (entry == NULL || members == 0 || !role_in_force(role, ctx))
			continue;
		for (i = 0; i < members; i++) {
			struct policy_grant *grant = &grants.grants[grants.count];
			bool is_group = i >= role->users.count;

			grant->is_group = is_group;
			grant->id = is_group ? groups[i - role->users.count].id : users[i].id;
			grant->mode = entry->mode;
			status = copy_role_rules(role, dataset, grant);
			if (status < 0)
				goto out_release;
			grants.count++;
		}
	}
	*out = grants;
	return 0;
out_release:
	policy_grants_release(&grants);
	return status;
}

int policy_grants_copy(struct policy_grants *dst, const struct policy_grants *src)
{
	struct policy_grants copy = { 0 };
	size_t i;

	if (src->count > 0) {
		copy.grants = calloc(src->count, sizeof(*copy.grants));
		if (copy.grants == NULL)
			return -ENOMEM;
	}
	for (i = 0; i < src->count; i++) {
		const struct policy_grant *from = &src->grants[i];
		struct policy_grant *to = &copy.grants[i];

		*to = *from;
		to->rules = NULL;
		if (from->rule_count > 0) {
			to->rules = calloc(from->rule_count, sizeof(*to->rules));
			if (to->rules == NULL) {
				to->rule_count = 0;
				copy.count = i + 1;
				policy_grants_release(&copy);
				return -ENOMEM;
			}
			memcpy(to->rules, from->rules, from->rule_count * sizeof(*to->rules));
		}
	}
	copy.count = src->count;
	*dst = copy;
	return 0;
}

/* Append name to names unless present; names has room for every candidate. */
static void add_unique(const char **names, size_t *count, const char *name)
{
	size_t i;

	for (i = 0; i < *count; i++)
		if (strcmp(names[i], name) == 0)
			return;
	names[(*count)++] = name;
}

int policy_datasets(const struct policy *policy, const char ***names, size_t *count)
{
	const char **list = NULL;
	size_t capacity = 0;
	size_t found = 0;
	size_t r;
	size_t i;

	for (r = 0; r < policy->roles.count; r++)
		capacity += role_at(policy, r)->grants.count + role_at(policy, r)->admins.count;
	if (capacity > 0) {
		list = calloc(capacity, sizeof(*list));
		if (list == NULL)
			return -ENOMEM;
	}
	for (r = 0; r < policy->roles.count; r++) {
		const struct policy_role *role = role_at(policy, r);
		const struct grant_entry *grants = role->grants.items;
		const struct admin_entry *admins = role->admins.items;

		for (i = 0; i < role->grants.count; i++)
			add_unique(list, &found, grants[i].dataset);
		for (i = 0; i < role->admins.count; i++)
			if (strcmp(admins[i].dataset, "*") != 0)
				add_unique(list, &found, admins[i].dataset);
	}
	if (found == 0) {
		free(list);
		list = NULL;
	}
	*names = list;
	*count = found;
	return 0;
}

int policy_roles(const struct policy *policy, const char ***names, size_t *count)
{
	const char **list = NULL;
	size_t r;

	if (policy->roles.count > 0) {
		list = calloc(policy->roles.count, sizeof(*list));
		if (list == NULL)
			return -ENOMEM;
	}
	for (r = 0; r < policy->roles.count; r++)
		list[r] = role_at(policy, r)->name;
	*names = list;
	*count = policy->roles.count;
	return 0;
}

/* The mode one grant gives on path: its first matching rule, capped by its mode. */
static enum policy_mode grant_mode(const struct policy_grant *grant, const char *path)
{
	size_t i;

	if (grant->rule_count == 0)
		return grant->mode;
	for (i = 0; i < grant->rule_count; i++)
		if (policy_glob_match(grant->rules[i].glob, path))
			return grant->rules[i].mode < grant->mode ? grant->rules[i].mode :
								    grant->mode;
	return POLICY_NONE;
}

static bool grant_names(const struct policy_grant *grant, const struct policy_principal *who)
{
	if (!grant->is_group)
		return grant->id == (uint32_t)who->uid;
	return grant->id == (uint32_t)who->gid ||
	       (who->groups != NULL && gid_in((gid_t)grant->id, who->groups, who->group_count));
}

enum policy_mode policy_grants_mode(const struct policy_grants *grants,
				    const struct policy_principal *who, const char *path,
				    bool is_dir)
{
	enum policy_mode best = POLICY_NONE;
	bool any = false;
	size_t i;

	for (i = 0; i < grants->count; i++) {
		enum policy_mode mode;

		if (!grant_names(&grants->grants[i], who))
			continue;
		if (grants->grants[i].mode != POLICY_NONE)
			any = true;
		mode = grant_mode(&grants->grants[i], path);
		if (mode > best)
			best = mode;
	}
	if (is_dir && any && best < POLICY_RO)
		best = POLICY_RO;
	return best;
}

/* Globs. */

/* Bytes of the UTF-8 character at text (1 for anything that is not a valid lead byte). */
static size_t char_len(const char *text, size_t available)
{
	unsigned char lead = (unsigned char)text[0];
	size_t len = lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 ? 2 : 1;
	size_t i;

	if (lead < 0x80 || len > available)
		return 1;
	for (i = 1; i < len; i++)
		if (((unsigned char)text[i] & 0xc0) != 0x80)
			return 1;
	return len;
}

/*
 * One component: '*' any run of characters, '?' one character, others literal. The
 * classic wildcard walk: on a mismatch, let the last '*' swallow one more character;
 * linear in practice, never exponential.
 */
static bool component_match(const char *glob, size_t glob_len, const char *name,
			    size_t name_len)
{
	size_t g = 0;
	size_t n = 0;
	size_t star_g = SIZE_MAX;
	size_t star_n = 0;

	while (n < name_len) {
		if (g < glob_len && glob[g] == '*') {
			star_g = g++;
			star_n = n;
		} else if (g < glob_len && glob[g] == '?') {
			g++;
			n += char_len(name + n, name_len - n);
		} else if (g < glob_len && glob[g] == name[n]) {
			g++;
			n++;
		} else if (star_g != SIZE_MAX) {
			g = star_g + 1;
			star_n += char_len(name + star_n, name_len - star_n);
			n = star_n;
		} else {
			return false;
		}
	}
	while (g < glob_len && glob[g] == '*')
		g++;
	return g == glob_len;
}

/* Components of a '/'-separated string: first, next (NULL past the last), length. An
 * empty string has no components. */
static const char *first_component(const char *text)
{
	return text[0] == '\0' ? NULL : text;
}

static const char *next_component(const char *component)
{
	const char *slash = strchr(component, '/');

	return slash == NULL ? NULL : slash + 1;
}

static size_t component_len(const char *component)
{
	return strcspn(component, "/");
}

static bool is_double_star(const char *component)
{
	return component_len(component) == 2 && component[0] == '*' && component[1] == '*';
}

/* The same walk one level up: components are the characters and '**' is the star. */
bool policy_glob_match(const char *glob, const char *path)
{
	const char *g = first_component(glob);
	const char *p = first_component(path);
	const char *star_g = NULL;
	const char *star_p = NULL;
	bool starred = false;

	while (p != NULL) {
		if (g != NULL && is_double_star(g)) {
			starred = true;
			g = next_component(g);
			star_g = g;
			star_p = p;
		} else if (g != NULL && component_match(g, component_len(g), p, component_len(p))) {
			g = next_component(g);
			p = next_component(p);
		} else if (starred) {
			star_p = next_component(star_p);
			p = star_p;
			g = star_g;
			if (p == NULL)
				break;
		} else {
			return false;
		}
	}
	while (g != NULL && is_double_star(g))
		g = next_component(g);
	return g == NULL;
}
