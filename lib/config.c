/*
 * keyagent.conf (see config.h and vaultfs-policy(5)): read with inih, [agent] settings
 * into struct config, [role NAME] sections into a policy. The only module that uses
 * inih. Lines are counted and section headers read by our own line reader, so messages
 * carry exact line numbers and full role names whatever inih was built with.
 */
#include "lib/config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_LEASE_TTL 30
#define LEASE_TTL_MIN 5
#define LEASE_TTL_MAX 86400
#define LIST_SEPARATORS ", \t"
#define FIELD_SEPARATORS " \t"
#define MAX_FIELDS 16

enum section_kind {
	SECTION_NONE,     /* before the first header */
	SECTION_AGENT,
	SECTION_ROLE,
	SECTION_BROKEN,   /* a header with an error, already reported */
};

enum agent_key {
	AGENT_SOCKET,
	AGENT_SOCKET_GROUP,
	AGENT_KEYSTORE,
	AGENT_DATA_ROOT,
	AGENT_KEK,
	AGENT_LEASE_TTL,
	AGENT_VAULTFS,
	AGENT_AUDIT_ROOT,
	AGENT_KEY_COUNT,
};

static const char *const agent_keys[AGENT_KEY_COUNT] = {
	[AGENT_SOCKET] = "socket",
	[AGENT_SOCKET_GROUP] = "socket_group",
	[AGENT_KEYSTORE] = "keystore",
	[AGENT_DATA_ROOT] = "data_root",
	[AGENT_KEK] = "kek",
	[AGENT_LEASE_TTL] = "lease_ttl",
	[AGENT_VAULTFS] = "vaultfs",
	[AGENT_AUDIT_ROOT] = "audit_root",
};

static const char *const role_keys[] = {
	"users", "groups", "grant", "path", "window", "hosts", "admin",
};

#define ROLE_KEY_COUNT (sizeof(role_keys) / sizeof(role_keys[0]))

static const struct {
	const char *name;
	unsigned priv;
} privileges[] = {
	{ "create", POLICY_PRIV_CREATE },
	{ "rotate", POLICY_PRIV_ROTATE },
	{ "retire", POLICY_PRIV_RETIRE },
	{ "shred", POLICY_PRIV_SHRED },
	{ "revoke", POLICY_PRIV_REVOKE },
	{ "reload", POLICY_PRIV_RELOAD },
	{ "kek", POLICY_PRIV_KEK },
	{ "share", POLICY_PRIV_SHARE },
};

#define PRIVILEGE_COUNT (sizeof(privileges) / sizeof(privileges[0]))

/* State of one read: the reader and the handler share it. */
struct parse {
	FILE *file;
	unsigned line;                 /* lines read so far: the line inih is working on */
	bool failed;
	int status;                    /* of the first error */
	unsigned error_line;           /* 0: no line applies */
	char error[sizeof(((struct policy_error *)0)->message) + 64];

	enum section_kind section;
	struct policy_role *role;
	char role_name[POLICY_NAME_MAX + 1];
	unsigned agent_line;           /* 0: no [agent] yet */
	unsigned agent_set[AGENT_KEY_COUNT];   /* line of each setting, 0 if unset */

	struct config *config;
};

__attribute__((format(printf, 3, 4)))
static void note_error(struct parse *parse, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (parse->failed)
		return;
	parse->failed = true;
	parse->status = -EINVAL;
	parse->error_line = line;
	va_start(ap, fmt);
	vsnprintf(parse->error, sizeof(parse->error), fmt, ap);
	va_end(ap);
}

static void note_policy_error(struct parse *parse, int status, const struct policy_error *err)
{
	note_error(parse, err->line, "%s", err->message);
	parse->status = status == -ENOMEM ? -ENOMEM : -EINVAL;
}

static char *trim(char *text)
{
	char *end;

	while (*text == ' ' || *text == '\t')
		text++;
	end = text + strlen(text);
	while (end > text && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
			      end[-1] == '\n'))
		*--end = '\0';
	return text;
}

/* "[agent]" or "[role NAME]": seen by the reader, before inih, so that a section with
 * no settings is checked too and a long role name is not cut to inih's 50 bytes. */
static void begin_section(struct parse *parse, char *header)
{
	struct policy_error err;
	char *close = strchr(header, ']');
	char *name;
	int status;

	parse->section = SECTION_BROKEN;
	parse->role = NULL;
	if (close == NULL) {
		note_error(parse, parse->line, "section header without ']': write [agent] or "
			   "[role NAME]");
		return;
	}
	*close = '\0';
	name = trim(header + 1);
	if (strcmp(name, "agent") == 0) {
		if (parse->agent_line != 0) {
			note_error(parse, parse->line, "second [agent] section (the first is on line "
				   "%u): keep one", parse->agent_line);
			return;
		}
		parse->agent_line = parse->line;
		parse->section = SECTION_AGENT;
		return;
	}
	if (strncmp(name, "role", 4) == 0 && (name[4] == '\0' || name[4] == ' ' ||
					      name[4] == '\t')) {
		name = trim(name + 4);
		if (*name == '\0') {
			note_error(parse, parse->line, "[role] needs a name: write [role NAME]");
			return;
		}
		status = policy_add_role(parse->config->policy, name, parse->line, &parse->role,
					 &err);
		if (status < 0) {
			note_policy_error(parse, status, &err);
			return;
		}
		snprintf(parse->role_name, sizeof(parse->role_name), "%s", name);
		parse->section = SECTION_ROLE;
		return;
	}
	note_error(parse, parse->line, "unknown section '[%.64s]': use [agent] or [role NAME]",
		   name);
}

/*
 * inih's line reader. Counts lines, reads section headers, refuses NUL bytes and lines
 * longer than inih's buffer (which it would otherwise split in two), and strips leading
 * blanks: inih would take an indented line as the continuation of the previous value.
 */
static char *read_line(char *buffer, int size, void *stream)
{
	struct parse *parse = stream;
	long start = ftell(parse->file);
	size_t len;
	size_t skip;

	if (fgets(buffer, size, parse->file) == NULL)
		return NULL;
	parse->line++;
	len = strlen(buffer);
	/* fgets stops at a newline, not at a NUL byte: one would cut the line short
	 * (silently, before a blank line) and pass as a long line otherwise. */
	if (start >= 0 && ftell(parse->file) - start != (long)len) {
		note_error(parse, parse->line, "line holds a NUL byte: save keyagent.conf as plain "
			   "text");
		buffer[0] = '\0';
		return buffer;
	}
	if (len > 0 && buffer[len - 1] != '\n') {
		/* A full buffer: the line fits if its newline or the end of the file is next. */
		int c = getc(parse->file);

		if (c != EOF && c != '\n') {
			while (c != EOF && c != '\n')
				c = getc(parse->file);
			note_error(parse, parse->line, "line longer than %d bytes: split it (users, "
				   "groups, hosts and grants may be repeated)", size - 1);
			buffer[0] = '\0';
			return buffer;
		}
	}
	if (parse->line == 1 && strncmp(buffer, "\xef\xbb\xbf", 3) == 0)
		memmove(buffer, buffer + 3, len - 3 + 1);
	skip = strspn(buffer, " \t");
	if (skip > 0)
		memmove(buffer, buffer + skip, strlen(buffer + skip) + 1);
	if (buffer[0] == '[') {
		char header[1024];

		snprintf(header, sizeof(header), "%s", buffer);
		begin_section(parse, header);
	}
	return buffer;
}

/* Split text in place at any of separators; empty fields are skipped. Returns the
 * number of fields, or MAX_FIELDS + 1 when there are more. */
static size_t split(char *text, const char *separators, char *fields[MAX_FIELDS])
{
	size_t count = 0;
	char *save;
	char *field;

	for (field = strtok_r(text, separators, &save); field != NULL;
	     field = strtok_r(NULL, separators, &save)) {
		if (count == MAX_FIELDS)
			return MAX_FIELDS + 1;
		fields[count++] = field;
	}
	return count;
}

/* Optimal string alignment distance, for "did you mean" hints on short words. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t d[17][17];
	size_t la = strlen(a);
	size_t lb = strlen(b);
	size_t i;
	size_t j;

	if (la > 16 || lb > 16)
		return SIZE_MAX;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++)
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

static void unknown_key(struct parse *parse, const char *key, const char *section,
			const char *const *known, size_t known_count)
{
	char list[256] = "";
	size_t i;

	for (i = 0; i < known_count; i++)
		if (edit_distance(key, known[i]) <= 2) {
			note_error(parse, parse->line, "unknown key '%.64s' in %s: did you mean '%s'?",
				   key, section, known[i]);
			return;
		}
	for (i = 0; i < known_count; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i == 0 ? "" : ", ", known[i]);
	note_error(parse, parse->line, "unknown key '%.64s' in %s: known keys are %s", key,
		   section, list);
}

static int set_string(struct parse *parse, char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL) {
		note_error(parse, parse->line, "out of memory");
		parse->status = -ENOMEM;
		return -ENOMEM;
	}
	free(*field);
	*field = copy;
	return 0;
}

static int set_absolute_path(struct parse *parse, const char *key, char **field,
			     const char *value)
{
	if (value[0] != '/') {
		note_error(parse, parse->line, "%s must be an absolute path, not '%.200s'", key,
			   value);
		return -EINVAL;
	}
	return set_string(parse, field, value);
}

static void set_kek(struct parse *parse, const char *value)
{
	struct config *config = parse->config;

	if (strcmp(value, "passphrase") == 0) {
		config->kek_source = CONFIG_KEK_PASSPHRASE;
		return;
	}
	if (strncmp(value, "keyfile:", 8) == 0) {
		if (value[8] != '/') {
			note_error(parse, parse->line, "kek key file must be an absolute path: write "
				   "'kek = keyfile:/etc/vaultfs/kek.key'");
			return;
		}
		if (set_string(parse, &config->kek_arg, value + 8) == 0)
			config->kek_source = CONFIG_KEK_KEYFILE;
		return;
	}
	if (strncmp(value, "credential:", 11) == 0) {
		const char *name = value + 11;

		if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
		    strcmp(name, "..") == 0) {
			note_error(parse, parse->line, "bad credential name '%.64s': give the name "
				   "of a file in $CREDENTIALS_DIRECTORY, without '/'", name);
			return;
		}
		if (set_string(parse, &config->kek_arg, name) == 0)
			config->kek_source = CONFIG_KEK_CREDENTIAL;
		return;
	}
	note_error(parse, parse->line, "bad kek '%.64s': use passphrase, keyfile:PATH or "
		   "credential:NAME", value);
}

static void set_lease_ttl(struct parse *parse, const char *value)
{
	unsigned long ttl = 0;
	size_t i;

	for (i = 0; value[i] != '\0' && i < 9; i++) {
		if (value[i] < '0' || value[i] > '9')
			break;
		ttl = ttl * 10 + (unsigned long)(value[i] - '0');
	}
	if (i == 0 || value[i] != '\0' || ttl < LEASE_TTL_MIN || ttl > LEASE_TTL_MAX) {
		note_error(parse, parse->line, "lease_ttl must be %d..%d seconds, not '%.32s'",
			   LEASE_TTL_MIN, LEASE_TTL_MAX, value);
		return;
	}
	parse->config->lease_ttl = (unsigned)ttl;
}

static void set_socket_group(struct parse *parse, const char *value)
{
	int status = policy_group_lookup(value, &parse->config->socket_group);

	if (status == -ENOENT || status == -EINVAL)
		note_error(parse, parse->line, "unknown group '%.64s' for socket_group: create it "
			   "or give a numeric gid", value);
	else if (status < 0)
		note_error(parse, parse->line, "cannot look up group '%.64s': %s", value,
			   strerror(-status));
}

static void agent_setting(struct parse *parse, const char *key, const char *value)
{
	struct config *config = parse->config;
	enum agent_key which;

	for (which = 0; which < AGENT_KEY_COUNT; which++)
		if (strcmp(key, agent_keys[which]) == 0)
			break;
	if (which == AGENT_KEY_COUNT) {
		unknown_key(parse, key, "[agent]", agent_keys, AGENT_KEY_COUNT);
		return;
	}
	if (parse->agent_set[which] != 0) {
		note_error(parse, parse->line, "%s is set twice in [agent] (first on line %u): "
			   "keep one", key, parse->agent_set[which]);
		return;
	}
	parse->agent_set[which] = parse->line;
	switch (which) {
	case AGENT_SOCKET:
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			note_error(parse, parse->line, "socket path is longer than %zu bytes, the "
				   "limit of a Unix socket: choose a shorter path",
				   sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return;
		}
		set_absolute_path(parse, key, &config->socket_path, value);
		break;
	case AGENT_SOCKET_GROUP:
		set_socket_group(parse, value);
		break;
	case AGENT_KEYSTORE:
		set_absolute_path(parse, key, &config->keystore_path, value);
		break;
	case AGENT_DATA_ROOT:
		set_absolute_path(parse, key, &config->data_root, value);
		break;
	case AGENT_KEK:
		set_kek(parse, value);
		break;
	case AGENT_LEASE_TTL:
		set_lease_ttl(parse, value);
		break;
	case AGENT_VAULTFS:
		set_absolute_path(parse, key, &config->vaultfs_path, value);
		break;
	case AGENT_AUDIT_ROOT:
		/* It goes into a daemon's -o audit=, where a comma would end it. */
		if (strchr(value, ',')) {
			note_error(parse, parse->line, "audit_root may not contain a comma: "
				   "choose another directory");
			return;
		}
		set_absolute_path(parse, key, &config->audit_root, value);
		break;
	case AGENT_KEY_COUNT:
		abort();
	}
}

static int parse_mode(const char *text, bool allow_none, enum policy_mode *mode)
{
	if (strcmp(text, "ro") == 0)
		*mode = POLICY_RO;
	else if (strcmp(text, "rw") == 0)
		*mode = POLICY_RW;
	else if (allow_none && strcmp(text, "none") == 0)
		*mode = POLICY_NONE;
	else
		return -EINVAL;
	return 0;
}

static int role_list(struct parse *parse, const char *key, char *value,
		     int (*add)(struct policy_role *, const char *, unsigned,
				struct policy_error *),
		     struct policy_error *err)
{
	char *save;
	char *item;
	bool any = false;
	int status;

	for (item = strtok_r(value, LIST_SEPARATORS, &save); item != NULL;
	     item = strtok_r(NULL, LIST_SEPARATORS, &save)) {
		status = add(parse->role, item, parse->line, err);
		if (status < 0)
			return status;
		any = true;
	}
	if (!any) {
		note_error(parse, parse->line, "%s lists nothing: give one or more names "
			   "separated by commas", key);
		return -EINVAL;
	}
	return 0;
}

static int role_admin(struct parse *parse, char **fields, size_t count,
		      struct policy_error *err)
{
	unsigned privs = 0;
	size_t i;
	size_t p;

	if (count < 2 || count > MAX_FIELDS) {
		note_error(parse, parse->line, "write 'admin = DATASET|* PRIVILEGE...', as in "
			   "'admin = cardio rotate retire'");
		return -EINVAL;
	}
	for (i = 1; i < count; i++) {
		for (p = 0; p < PRIVILEGE_COUNT; p++)
			if (strcmp(fields[i], privileges[p].name) == 0)
				break;
		if (p == PRIVILEGE_COUNT) {
			note_error(parse, parse->line, "unknown admin privilege '%.32s': use create, "
				   "rotate, retire, shred, revoke, reload or kek", fields[i]);
			return -EINVAL;
		}
		privs |= privileges[p].priv;
	}
	return policy_role_add_admin(parse->role, fields[0], privs, parse->line, err);
}

static void role_setting(struct parse *parse, const char *key, const char *value)
{
	struct policy_error err;
	char copy[1024];
	char *fields[MAX_FIELDS];
	char section[POLICY_NAME_MAX + 8];
	enum policy_mode mode;
	size_t count;
	int status;

	snprintf(section, sizeof(section), "[role %s]", parse->role_name);
	snprintf(copy, sizeof(copy), "%s", value);
	if (strcmp(key, "users") == 0) {
		status = role_list(parse, key, copy, policy_role_add_user, &err);
	} else if (strcmp(key, "groups") == 0) {
		status = role_list(parse, key, copy, policy_role_add_group, &err);
	} else if (strcmp(key, "hosts") == 0) {
		status = role_list(parse, key, copy, policy_role_add_host, &err);
	} else if (strcmp(key, "window") == 0) {
		status = policy_role_add_window(parse->role, value, parse->line, &err);
	} else if (strcmp(key, "grant") == 0) {
		count = split(copy, FIELD_SEPARATORS, fields);
		if (count != 2 || parse_mode(fields[1], false, &mode) < 0) {
			note_error(parse, parse->line, "write 'grant = DATASET ro' or 'grant = "
				   "DATASET rw', not 'grant = %.64s'", value);
			return;
		}
		status = policy_role_add_grant(parse->role, fields[0], mode, parse->line, &err);
	} else if (strcmp(key, "path") == 0) {
		count = split(copy, FIELD_SEPARATORS, fields);
		if (count != 3 || parse_mode(fields[2], true, &mode) < 0) {
			note_error(parse, parse->line, "write 'path = DATASET GLOB ro|rw|none', as in "
				   "'path = cardio features/** ro', not 'path = %.64s'", value);
			return;
		}
		status = policy_role_add_path_rule(parse->role, fields[0], fields[1], mode,
						   parse->line, &err);
	} else if (strcmp(key, "admin") == 0) {
		count = split(copy, FIELD_SEPARATORS, fields);
		status = role_admin(parse, fields, count, &err);
	} else {
		unknown_key(parse, key, section, role_keys, ROLE_KEY_COUNT);
		return;
	}
	if (status < 0 && !parse->failed)
		note_policy_error(parse, status, &err);
}

static int handle_setting(void *user, const char *section, const char *key, const char *value)
{
	struct parse *parse = user;

	/* Sections come from read_line (inih may cut their names); a build of inih that
	 * announces new sections passes a NULL key. */
	(void)section;
	if (key == NULL || parse->failed)
		return 1;
	if (*key == '\0') {
		note_error(parse, parse->line, "value without a key: write 'KEY = VALUE'");
		return 1;
	}
	if (value == NULL || *value == '\0') {
		note_error(parse, parse->line, "%.64s has no value: write '%.64s = VALUE' or "
			   "remove the line", key, key);
		return 1;
	}
	if (strlen(value) >= 1024) {
		note_error(parse, parse->line, "value of %.64s is too long", key);
		return 1;
	}
	switch (parse->section) {
	case SECTION_NONE:
		note_error(parse, parse->line, "%.64s is outside any section: put it under [agent] "
			   "or [role NAME]", key);
		break;
	case SECTION_AGENT:
		agent_setting(parse, key, value);
		break;
	case SECTION_ROLE:
		role_setting(parse, key, value);
		break;
	case SECTION_BROKEN:
		break;
	}
	return 1;
}

/* After the last line: [agent] complete, then the policy as a whole. */
static void check_complete(struct parse *parse)
{
	static const enum agent_key required[] = {
		AGENT_SOCKET, AGENT_KEYSTORE, AGENT_DATA_ROOT, AGENT_KEK,
	};
	static const char *const examples[] = {
		"socket = /run/vaultfs/agent.sock", "keystore = /var/lib/vaultfs/keystore",
		"data_root = /var/lib/vaultfs/vaults", "kek = passphrase",
	};
	struct policy_error err;
	size_t i;
	int status;

	if (parse->agent_line == 0) {
		note_error(parse, 0, "no [agent] section: add one with socket, keystore, "
			   "data_root and kek (see vaultfs-policy(5))");
		return;
	}
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (parse->agent_set[required[i]] == 0) {
			note_error(parse, parse->agent_line, "[agent] lacks %s: add '%s'",
				   agent_keys[required[i]], examples[i]);
			return;
		}
	status = policy_finish(parse->config->policy, &err);
	if (status < 0)
		note_policy_error(parse, status, &err);
}

void config_release(struct config *config)
{
	free(config->socket_path);
	free(config->keystore_path);
	free(config->data_root);
	free(config->vaultfs_path);
	free(config->audit_root);
	free(config->kek_arg);
	policy_free(config->policy);
	memset(config, 0, sizeof(*config));
}

__attribute__((format(printf, 3, 4)))
static int file_error(struct config_error *err, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return status;
}

/* The policy decides who gets keys: refuse a file that others could have changed. */
static int check_file(FILE *file, const char *path, struct config_error *err)
{
	struct stat st;

	if (fstat(fileno(file), &st) != 0)
		return file_error(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return file_error(err, -EINVAL, "%s: not a regular file: give the path of "
				  "keyagent.conf", path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return file_error(err, -EACCES, "%s: owned by uid %u, neither root nor the "
				  "agent's user: run 'chown root %s'", path, (unsigned)st.st_uid,
				  path);
	if ((st.st_mode & S_IWOTH) != 0)
		return file_error(err, -EACCES, "%s: writable by every user: run 'chmod o-w %s'",
				  path, path);
	return 0;
}

int config_read(struct config *out, const char *path, struct config_error *err)
{
	struct config config = { .socket_group = 0, .lease_ttl = DEFAULT_LEASE_TTL };
	struct parse parse = { .config = &config };
	int syntax_line;
	int status;

	memset(out, 0, sizeof(*out));
	err->message[0] = '\0';
	parse.file = fopen(path, "re");
	if (parse.file == NULL) {
		status = -errno;
		if (status == -ENOENT)
			return file_error(err, status, "%s: no such file: give the path of "
					  "keyagent.conf", path);
		if (status == -EACCES)
			return file_error(err, status, "%s: permission denied: run as root", path);
		return file_error(err, status, "%s: %s", path, strerror(-status));
	}
	status = check_file(parse.file, path, err);
	if (status < 0)
		goto out_close;
	status = policy_new(&config.policy);
	if (status < 0) {
		file_error(err, status, "%s: out of memory", path);
		goto out_close;
	}
	syntax_line = ini_parse_stream(read_line, &parse, handle_setting, &parse);
	if (ferror(parse.file)) {
		status = file_error(err, -EIO, "%s: read error: %s", path, strerror(EIO));
		goto out_release;
	}
	if (syntax_line == -2) {
		status = file_error(err, -ENOMEM, "%s: out of memory", path);
		goto out_release;
	}
	/* inih reports the first line it could not parse; ours is the first we refused.
	 * The earlier one is the first problem of the file. */
	if (syntax_line > 0 && (!parse.failed || (unsigned)syntax_line < parse.error_line)) {
		status = file_error(err, -EINVAL, "%s:%d: syntax error: expected '[SECTION]', "
				    "'KEY = VALUE' or a comment starting with '#' or ';'", path,
				    syntax_line);
		goto out_release;
	}
	if (!parse.failed)
		check_complete(&parse);
	if (parse.failed) {
		if (parse.error_line > 0)
			status = file_error(err, parse.status, "%s:%u: %s", path, parse.error_line,
					    parse.error);
		else
			status = file_error(err, parse.status, "%s: %s", path, parse.error);
		goto out_release;
	}
	*out = config;
	status = 0;
	goto out_close;
out_release:
	config_release(&config);
out_close:
	fclose(parse.file);
	return status;
}
