/*
 * Unit tests of lib/config: the full example file read into settings and a working
 * policy; every class of error reported as "FILE:LINE: problem" with the right line
 * (syntax, unknown section and key, value without key, settings outside a section,
 * missing [agent] settings, bad values, unknown principals, policy and separation of
 * duties violations); refusal of missing, unsafe and non-regular files; and the files of
 * the fuzz corpus (tests/fuzz/corpus-config) with seeded mutations of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "tests/fuzz/replay.h"
#include "tests/harness.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keyagent.conf", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static void write_config(const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(close(fd), 0);
}

#define AGENT \
	"[agent]\n" \
	"socket = /run/vaultfs/agent.sock\n" \
	"keystore = /var/lib/vaultfs/keystore\n" \
	"data_root = /var/lib/vaultfs/vaults\n" \
	"kek = passphrase\n"
#define AGENT_LINES 5

static const char full_example[] =
	"# keyagent.conf for the cardiology ML team\n"
	"[agent]\n"
	"socket = /run/vaultfs/agent.sock\n"
	"socket_group = nogroup\n"
	"keystore = /var/lib/vaultfs/keystore\n"
	"data_root = /var/lib/vaultfs/vaults\n"
	"kek = keyfile:/etc/vaultfs/kek.key\n"
	"lease_ttl = 60\n"
	"\n"
	"; data scientists: read features, write checkpoints, office hours\n"
	"[role analysts]\n"
	"users = daemon, 4001\n"
	"users = 4002\n"
	"groups = nogroup\n"
	"grant = cardio rw\n"
	"path = cardio raw/identifiers/** none\n"
	"path = cardio features/** ro\n"
	"path = cardio checkpoints/** rw\n"
	"grant = neuro ro   ; whole dataset\n"
	"window = Mon-Fri 07:00-19:00 Europe/Berlin\n"
	"window = Sat 09:00-13:00 Europe/Berlin\n"
	"hosts = gpu-*, train-?.example.org\n"
	"\n"
	"  [role trainers]\n"
	"  users = 5001\n"
	"  grant = cardio ro\n"
	"\n"
	"[role keyadmins]\n"
	"users = 3001\n"
	"admin = cardio rotate retire shred\n"
	"admin = neuro rotate\n"
	"\n"
	"[role ops]\n"
	"users = root\n"
	"admin = * reload revoke create\n";

START_TEST(test_full_example)
{
	struct config config;
	struct config_error err;
	struct policy_principal analyst = { .uid = 4001, .gid = 4001 };
	struct policy_principal trainer = { .uid = 5001, .gid = 5001 };
	struct policy_principal keyadmin = { .uid = 3001, .gid = 3001 };
	struct policy_principal ops = { .uid = 0, .gid = 0 };
	/* Friday 2024-01-05 12:00 UTC, 13:00 in Berlin. */
	struct policy_context ctx = { .host = "gpu-3", .now = 1704456000 };
	struct policy_grants grants;
	const char **names;
	size_t count;

	write_config(full_example);
	ck_assert_msg(config_read(&config, path, &err) == 0, "%s", err.message);
	ck_assert_str_eq(config.socket_path, "/run/vaultfs/agent.sock");
	ck_assert_uint_eq(config.socket_group, 65534);
	ck_assert_str_eq(config.keystore_path, "/var/lib/vaultfs/keystore");
	ck_assert_str_eq(config.data_root, "/var/lib/vaultfs/vaults");
	ck_assert_int_eq(config.kek_source, CONFIG_KEK_KEYFILE);
	ck_assert_str_eq(config.kek_arg, "/etc/vaultfs/kek.key");
	ck_assert_uint_eq(config.lease_ttl, 60);
	ck_assert_ptr_nonnull(config.policy);

	ck_assert_int_eq(policy_roles(config.policy, &names, &count), 0);
	ck_assert_uint_eq(count, 4);
	ck_assert_str_eq(names[1], "trainers");
	free(names);
	ck_assert_int_eq(policy_datasets(config.policy, &names, &count), 0);
	ck_assert_uint_eq(count, 2);
	ck_assert_str_eq(names[0], "cardio");
	ck_assert_str_eq(names[1], "neuro");
	free(names);

	ck_assert_int_eq(policy_dataset_grants(config.policy, "cardio", &ctx, &grants), 0);
	ck_assert_int_eq(policy_grants_mode(&grants, &analyst, "checkpoints/m.pt", false),
			 POLICY_RW);
	ck_assert_int_eq(policy_grants_mode(&grants, &analyst, "features/x.npy", false),
			 POLICY_RO);
	ck_assert_int_eq(policy_grants_mode(&grants, &analyst, "raw/identifiers/mrn.csv", false),
			 POLICY_NONE);
	ck_assert_int_eq(policy_grants_mode(&grants, &trainer, "raw/identifiers/mrn.csv", false),
			 POLICY_RO);
	ck_assert_int_eq(policy_grants_mode(&grants, &keyadmin, "features/x.npy", false),
			 POLICY_NONE);
	policy_grants_release(&grants);
	/* Outside the window and on another host the analysts' role is not in force. */
	ctx.host = "laptop";
	ck_assert_int_eq(policy_dataset_grants(config.policy, "neuro", &ctx, &grants), 0);
	ck_assert_int_eq(policy_grants_mode(&grants, &analyst, "x", false), POLICY_NONE);
	policy_grants_release(&grants);
	ctx.host = "train-1.example.org";
	ctx.now += 86400 + 6 * 3600;   /* Saturday 19:00 in Berlin */
	ck_assert_int_eq(policy_dataset_grants(config.policy, "neuro", &ctx, &grants), 0);
	ck_assert_int_eq(policy_grants_mode(&grants, &analyst, "x", false), POLICY_NONE);
	policy_grants_release(&grants);
	ctx.now -= 7 * 3600;           /* Saturday 12:00 */
	ck_assert_int_eq(policy_dataset_grants(config.policy, "neuro", &ctx, &grants), 0);
	ck_assert_int_eq(policy_grants_mode(&grants, &analyst, "x", false), POLICY_RO);
	policy_grants_release(&grants);

	ck_assert(policy_has_privilege(config.policy, &keyadmin, "cardio", POLICY_PRIV_SHRED,
				       &ctx));
	ck_assert(!policy_has_privilege(config.policy, &keyadmin, "neuro", POLICY_PRIV_SHRED,
					&ctx));
	ck_assert(policy_has_privilege(config.policy, &ops, "*", POLICY_PRIV_RELOAD, &ctx));
	ck_assert(!policy_has_privilege(config.policy, &ops, "*", POLICY_PRIV_KEK, &ctx));
	config_release(&config);
	ck_assert_ptr_null(config.policy);
}
END_TEST

START_TEST(test_defaults_and_kek_sources)
{
	struct config config;
	struct config_error err;

	write_config(AGENT);
	ck_assert_msg(config_read(&config, path, &err) == 0, "%s", err.message);
	ck_assert_uint_eq(config.lease_ttl, 30);
	ck_assert_uint_eq(config.socket_group, 0);
	ck_assert_int_eq(config.kek_source, CONFIG_KEK_PASSPHRASE);
	ck_assert_ptr_null(config.kek_arg);
	config_release(&config);

	write_config("[agent]\n"
		     "socket = /run/a.sock\nkeystore = /k\ndata_root = /d\n"
		     "kek = credential:vaultfs-kek\nsocket_group = 1\nlease_ttl = 86400\n");
	ck_assert_msg(config_read(&config, path, &err) == 0, "%s", err.message);
	ck_assert_int_eq(config.kek_source, CONFIG_KEK_CREDENTIAL);
	ck_assert_str_eq(config.kek_arg, "vaultfs-kek");
	ck_assert_uint_eq(config.socket_group, 1);
	ck_assert_uint_eq(config.lease_ttl, 86400);
	config_release(&config);
}
END_TEST

/* config_read refuses text with -EINVAL and "PATH:LINE: " + part. */
static void expect_error_status(const char *text, int status, unsigned line, const char *part)
{
	struct config config;
	struct config_error err;
	char prefix[160];

	write_config(text);
	ck_assert_int_eq(config_read(&config, path, &err), status);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0,
		      "'%s' does not start with '%s'", err.message, prefix);
	ck_assert_msg(strstr(err.message, part) != NULL, "'%s' lacks '%s'", err.message, part);
	ck_assert_ptr_null(config.policy);
	ck_assert_ptr_null(config.socket_path);
}

static void expect_error(const char *text, unsigned line, const char *part)
{
	expect_error_status(text, -EINVAL, line, part);
}

START_TEST(test_syntax_errors)
{
	expect_error(AGENT "[role a]\nusers daemon\n", AGENT_LINES + 2, "syntax error");
	expect_error(AGENT "[role a\nusers = daemon\n", AGENT_LINES + 1,
		     "section header without ']'");
	/* An indented line is not a continuation of the previous value. */
	expect_error(AGENT "[role a]\nusers = daemon,\n    root\n", AGENT_LINES + 3,
		     "syntax error");
	/* The first problem of the file is the one reported. */
	expect_error(AGENT "[role a]\nusers = nobody-vaultfs\nbroken line\n", AGENT_LINES + 2,
		     "unknown user");
	expect_error(AGENT "[role a]\nbroken line\nusers = nobody-vaultfs\n", AGENT_LINES + 2,
		     "syntax error");
}
END_TEST

START_TEST(test_structure_errors)
{
	expect_error(AGENT "[roles a]\nusers = daemon\n", AGENT_LINES + 1,
		     "unknown section '[roles a]': use [agent] or [role NAME]");
	expect_error(AGENT "\n[everything]\n", AGENT_LINES + 2, "unknown section");
	expect_error(AGENT "[role]\n", AGENT_LINES + 1, "[role] needs a name");
	expect_error(AGENT "[role a]\n= daemon\n", AGENT_LINES + 2, "value without a key");
	expect_error("socket = /run/x.sock\n" AGENT, 1, "outside any section");
	expect_error(AGENT "[agent]\n", AGENT_LINES + 1,
		     "second [agent] section (the first is on line 1)");
	expect_error(AGENT "[role a]\nusers =\n", AGENT_LINES + 2, "users has no value");
	expect_error(AGENT "[role a]\n[role b]\n[role a]\n", AGENT_LINES + 3,
		     "role 'a' is defined twice (first on line 6)");
	expect_error(AGENT "[role a/b]\n", AGENT_LINES + 1, "bad role name 'a/b'");
}
END_TEST

START_TEST(test_agent_errors)
{
	expect_error("[role a]\nusers = daemon\n", 0, "no [agent] section");
	expect_error("# top\n[agent]\nsocket = /s\nkeystore = /k\ndata_root = /d\n", 2,
		     "[agent] lacks kek: add 'kek = passphrase'");
	expect_error("[agent]\nkek = passphrase\nkeystore = /k\ndata_root = /d\n", 1,
		     "[agent] lacks socket");
	expect_error("[agent]\nkek = passphrase\nsocket = /s\ndata_root = /d\n", 1,
		     "[agent] lacks keystore");
	expect_error("[agent]\nkek = passphrase\nsocket = /s\nkeystore = /k\n", 1,
		     "[agent] lacks data_root");
	expect_error(AGENT "lease_ttl = 4\n", AGENT_LINES + 1, "lease_ttl must be 5..86400 seconds");
	expect_error(AGENT "lease_ttl = 86401\n", AGENT_LINES + 1, "lease_ttl must be 5..86400");
	expect_error(AGENT "lease_ttl = 30s\n", AGENT_LINES + 1, "lease_ttl must be 5..86400");
	expect_error(AGENT "lease_ttl = -30\n", AGENT_LINES + 1, "lease_ttl must be 5..86400");
	expect_error(AGENT "lease_ttl = 99999999999999999999\n", AGENT_LINES + 1,
		     "lease_ttl must be");
	expect_error(AGENT "socket = /other\n", AGENT_LINES + 1,
		     "socket is set twice in [agent] (first on line 2)");
	expect_error(AGENT "sokcet_group = root\n", AGENT_LINES + 1,
		     "unknown key 'sokcet_group' in [agent]: did you mean 'socket_group'?");
	expect_error(AGENT "colour = blue\n", AGENT_LINES + 1,
		     "unknown key 'colour' in [agent]: known keys are socket, socket_group");
	expect_error("[agent]\nsocket = run/agent.sock\n", 2, "socket must be an absolute path");
	expect_error(AGENT "audit_root = /var/log/a,b\n", AGENT_LINES + 1,
		     "audit_root may not contain a comma");
	expect_error(AGENT "audit_root = log/audit\n", AGENT_LINES + 1,
		     "audit_root must be an absolute path");
	expect_error(AGENT "vaultfs = vaultfs\n", AGENT_LINES + 1,
		     "vaultfs must be an absolute path");
	expect_error("[agent]\nkeystore = ./ks\n", 2, "keystore must be an absolute path");
	expect_error("[agent]\nkek = keyfile:kek.key\n", 2, "must be an absolute path");
	expect_error("[agent]\nkek = credential:../x\n", 2, "bad credential name");
	expect_error("[agent]\nkek = hsm\n", 2, "bad kek 'hsm'");
	expect_error("[agent]\nsocket_group = no-such-group-vaultfs\n", 2,
		     "unknown group 'no-such-group-vaultfs'");
	expect_error("[agent]\nsocket = /run/vaultfs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n", 2,
		     "limit of a Unix socket");
}
END_TEST

START_TEST(test_role_errors)
{
	expect_error(AGENT "[role analysts]\nusers = daemon\ngrnat = cardio rw\n",
		     AGENT_LINES + 3,
		     "unknown key 'grnat' in [role analysts]: did you mean 'grant'?");
	expect_error(AGENT "[role a]\nusers = daemon, no-such-user-vaultfs\n", AGENT_LINES + 2,
		     "unknown user 'no-such-user-vaultfs'");
	expect_error(AGENT "[role a]\ngroups = nogroup\ngroups = no-such-group-vaultfs\n",
		     AGENT_LINES + 3, "unknown group 'no-such-group-vaultfs'");
	expect_error(AGENT "[role a]\nusers = ,\n", AGENT_LINES + 2, "users lists nothing");
	expect_error(AGENT "[role a]\ngrant = cardio\n", AGENT_LINES + 2,
		     "write 'grant = DATASET ro'");
	expect_error(AGENT "[role a]\ngrant = cardio write\n", AGENT_LINES + 2,
		     "write 'grant = DATASET ro'");
	expect_error(AGENT "[role a]\ngrant = car/dio rw\n", AGENT_LINES + 2,
		     "bad dataset name 'car/dio'");
	expect_error(AGENT "[role a]\ngrant = cardio ro\ngrant = cardio rw\n", AGENT_LINES + 3,
		     "grants 'cardio' twice (first on line 7)");
	expect_error(AGENT "[role a]\ngrant = cardio ro\npath = cardio features/** ro x\n",
		     AGENT_LINES + 3, "write 'path = DATASET GLOB ro|rw|none'");
	expect_error(AGENT "[role a]\ngrant = cardio ro\npath = cardio /features/** ro\n",
		     AGENT_LINES + 3, "starts with '/'");
	expect_error(AGENT "[role a]\ngrant = cardio rw\n\npath = neuro features/** ro\n",
		     AGENT_LINES + 4, "path rule for dataset 'neuro' in role 'a', which grants "
		     "no access to it");
	expect_error(AGENT "[role a]\nwindow = Mon-Fri 07:00-19:00 Mars/Olympus\n",
		     AGENT_LINES + 2, "unknown time zone 'Mars/Olympus'");
	expect_error(AGENT "[role a]\nwindow = weekdays 07:00-19:00 UTC\n", AGENT_LINES + 2,
		     "bad days 'weekdays'");
	expect_error(AGENT "[role a]\nhosts = gpu-1, gpu/2\n", AGENT_LINES + 2,
		     "bad host pattern 'gpu/2'");
	expect_error(AGENT "[role a]\nadmin = cardio rotate destroy\n", AGENT_LINES + 2,
		     "unknown admin privilege 'destroy'");
	expect_error(AGENT "[role a]\nadmin = cardio\n", AGENT_LINES + 2,
		     "write 'admin = DATASET|* PRIVILEGE...'");
	expect_error(AGENT "[role a]\nadmin = cardio reload\n", AGENT_LINES + 2,
		     "'admin = * reload'");
	expect_error(AGENT "[role a]\nadmin = ../x rotate\n", AGENT_LINES + 2,
		     "bad dataset name '../x'");
}
END_TEST

START_TEST(test_separation_of_duties)
{
	/* The example of the brief: carol is daemon here. */
	expect_error_status(AGENT "\n"
			    "[role analysts]\n"     /* 7 */
			    "users = daemon\n"
			    "grant = cardio ro\n"   /* 9 */
			    "\n"
			    "[role keyadmins]\n"
			    "users = 1\n"
			    "admin = cardio rotate\n", /* 13 */
			    -EINVAL, 13,
			    "user '1' holds key-admin privileges on 'cardio' through role "
			    "'keyadmins' (line 13) and a data grant on it through role 'analysts' "
			    "(line 9): separation of duties forbids both");
	/* Through a group: root is a member of group root. */
	expect_error(AGENT "[role keyadmins]\nusers = root\nadmin = * kek\n"
		     "[role analysts]\ngroups = root\ngrant = neuro rw\n", AGENT_LINES + 3,
		     "(as a member of group 'root') through role 'analysts' (line 11)");
	/* A gid in both roles. */
	expect_error(AGENT "[role keyadmins]\ngroups = nogroup\nadmin = cardio shred\n"
		     "[role analysts]\ngroups = 65534\ngrant = cardio ro\n", AGENT_LINES + 3,
		     "group 'nogroup' holds key-admin privileges on 'cardio'");
	/* One role holding both. */
	expect_error(AGENT "[role ops]\ngrant = cardio ro\nadmin = cardio retire\n",
		     AGENT_LINES + 3, "role 'ops' holds key-admin privileges on 'cardio' "
		     "(line 8) and a data grant on it (line 7)");
}
END_TEST

START_TEST(test_lines_and_comments)
{
	struct config config;
	struct config_error err;
	char text[512];
	char long_line[300];

	/* BOM, CRLF, comments of both kinds, inline ';' comments, blank lines. */
	write_config("\xef\xbb\xbf# comment\r\n[agent]\r\n; another\r\nsocket = /s ; inline\r\n"
		     "keystore = /k\r\ndata_root = /d\r\nkek = passphrase\r\n\r\n"
		     "[role a]\r\nusers = daemon\r\ngrant = cardio ro\r\n");
	ck_assert_msg(config_read(&config, path, &err) == 0, "%s", err.message);
	ck_assert_str_eq(config.socket_path, "/s");
	config_release(&config);

	/* A line longer than the reader's buffer is refused, not split in two. */
	memset(long_line, 'x', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	snprintf(text, sizeof(text), AGENT "[role a]\nusers = daemon\n# %s\n", long_line);
	expect_error(text, AGENT_LINES + 3, "line longer than");
	/* The line numbers after a long role name stay right. */
	expect_error(AGENT "[role a123456789012345678901234567890123456789012345678901234567890]\n"
		     "users = daemon\ngrant = x ro\ngrnt = x rw\n", AGENT_LINES + 4,
		     "in [role a123456789012345678901234567890123456789012345678901234567890]");
}
END_TEST

START_TEST(test_file_errors)
{
	struct config config;
	struct config_error err;
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/missing.conf", dir);
	ck_assert_int_eq(config_read(&config, missing, &err), -ENOENT);
	ck_assert_msg(strstr(err.message, "missing.conf: no such file") != NULL, "%s",
		      err.message);
	ck_assert_ptr_null(config.policy);

	ck_assert_int_eq(config_read(&config, dir, &err), -EINVAL);
	ck_assert_msg(strstr(err.message, "not a regular file") != NULL, "%s", err.message);

	write_config(AGENT);
	ck_assert_int_eq(chmod(path, 0666), 0);
	ck_assert_int_eq(config_read(&config, path, &err), -EACCES);
	ck_assert_msg(strstr(err.message, "writable by every user") != NULL, "%s", err.message);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(config_read(&config, path, &err), 0);
	config_release(&config);
}
END_TEST

/* A NUL byte is refused where it is, not taken for the end of the line (before a blank
 * line, "kek = keyfile:/etc/kek<NUL>.bak" was read as keyfile:/etc/kek) nor for a long line
 * that swallows the next one. */
START_TEST(test_nul_byte)
{
	static const char before_blank[] = "[agent]\nsocket = /run/a.sock\nkeystore = /k\n"
		"data_root = /d\nkek = keyfile:/etc/kek\0.bak\n\n";
	static const char mid_file[] = "[agent]\nsocket = /run/a\0b\nkeystore = /k\n";
	struct config config;
	struct config_error err;
	char want[256];
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, before_blank, sizeof(before_blank) - 1),
			 (ssize_t)sizeof(before_blank) - 1);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(config_read(&config, path, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s:5: line holds a NUL byte", path);
	ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s", err.message);

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, mid_file, sizeof(mid_file) - 1), (ssize_t)sizeof(mid_file) - 1);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(config_read(&config, path, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: line holds a NUL byte", path);
	ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s", err.message);
}
END_TEST

/* The fuzz corpus and seeded mutations of its valid files: no crash; a file read gives a
 * complete configuration; a refusal is -EINVAL with a message that names the file. */

#define CONFIG_CORPUS TEST_DATA_DIR "/fuzz/corpus-config"
#define CONFIG_MUTATIONS 1000
#define CONFIG_INPUT_MAX 8192

static const char *const config_words[] = {
	"[agent]", "[role ", "]", "\n", " = ", "=", "#", ";", ",", "socket", "socket_group",
	"keystore", "data_root", "kek", "passphrase", "keyfile:/", "credential:", "lease_ttl",
	"users", "groups", "grant", "path", "window", "hosts", "admin", " ro", " rw", " none",
	"**", "*", "?", "Mon-Fri", "07:00-19:00", " UTC", "create", "rotate", "shred",
	"reload", "root", "daemon", "nogroup", NULL,
};

static bool replay_config(void *arg, const uint8_t *bytes, size_t len)
{
	(void)arg;
	struct config config;
	struct config_error err;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	ret = config_read(&config, path, &err);
	if (ret != 0) {
		ck_assert_msg(ret == -EINVAL, "status %d: %s", ret, err.message);
		ck_assert_ptr_nonnull(memchr(err.message, '\0', sizeof(err.message)));
		ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0 &&
			      err.message[strlen(path)] == ':', "%s", err.message);
		ck_assert_ptr_null(config.policy);
		return false;
	}
	/* A NUL byte would have cut a line short: such a file is never read. */
	ck_assert_ptr_null(memchr(bytes, '\0', len));
	ck_assert_ptr_nonnull(config.policy);
	ck_assert(config.socket_path != NULL && config.socket_path[0] == '/');
	ck_assert(config.keystore_path != NULL && config.keystore_path[0] == '/');
	ck_assert(config.data_root != NULL && config.data_root[0] == '/');
	ck_assert_uint_ge(config.lease_ttl, 5);
	ck_assert_uint_le(config.lease_ttl, 86400);
	if (config.kek_source != CONFIG_KEK_PASSPHRASE)
		ck_assert(config.kek_arg != NULL && config.kek_arg[0] != '\0');
	config_release(&config);
	return true;
}

START_TEST(test_fuzz_replay)
{
	static uint8_t buf[CONFIG_INPUT_MAX];
	struct replay_corpus corpus;
	uint64_t state = UINT64_C(0x636f6e6669677331);

	ck_assert_int_eq(replay_corpus_load(&corpus, CONFIG_CORPUS, -1, CONFIG_INPUT_MAX / 2),
			 0);
	struct replay_counts c = replay_run(&corpus, replay_config, NULL, &state,
					    CONFIG_MUTATIONS, buf, sizeof(buf), config_words);
	/* The full example and a few variants, and refused ones. */
	ck_assert_uint_ge(c.valid, 4);
	ck_assert_uint_gt(c.inputs, c.valid + 5);
	ck_assert_uint_gt(c.accepted, CONFIG_MUTATIONS / 100);
	ck_assert_uint_gt(c.rejected, CONFIG_MUTATIONS / 4);
	replay_corpus_release(&corpus);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *suite = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_full_example);
	tcase_add_test(tc, test_defaults_and_kek_sources);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_structure_errors);
	tcase_add_test(tc, test_agent_errors);
	tcase_add_test(tc, test_role_errors);
	tcase_add_test(tc, test_separation_of_duties);
	tcase_add_test(tc, test_lines_and_comments);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_fuzz_replay);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(config_suite());
}
