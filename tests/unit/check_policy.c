/*
 * Unit tests of lib/policy: glob known answers, building errors, access decisions (modes,
 * path rules, users, groups, supplementary groups, directories), time windows at fixed
 * instants in several zones (day boundary, daylight saving), host patterns, privileges,
 * flattened grants, and separation of duties (direct user, through a group, a gid in
 * both roles, one role). Uses only root (0), daemon (1) and nogroup (65534).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy.h"
#include "tests/harness.h"

/* Fixed instants (UTC) and what they are locally. */
#define FRI_1200_UTC 1704456000   /* 2024-01-05 Fri 13:00 Berlin, 21:00 Tokyo, 07:00 NY */
#define FRI_2330_UTC 1704497400   /* Sat 00:30 Berlin, Sat 08:30 Tokyo, Fri 18:30 NY */
#define SAT_1200_UTC 1704542400   /* Sat 13:00 Berlin */
#define FRI_0700_BERLIN 1704434400
#define FRI_1900_BERLIN 1704477600
#define JUL_FRI_1730_UTC 1720200600  /* 2024-07-05 19:30 Berlin (CEST) */

static struct policy *policy;
static struct policy_error err;

static void setup(void)
{
	ck_assert_int_eq(policy_new(&policy), 0);
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	policy_free(policy);
	policy = NULL;
}

static struct policy_role *add_role(const char *name, unsigned line)
{
	struct policy_role *role = NULL;

	ck_assert_msg(policy_add_role(policy, name, line, &role, &err) == 0, "%s", err.message);
	return role;
}

static void must(int status)
{
	ck_assert_msg(status == 0, "status %d: line %u: %s", status, err.line, err.message);
}

static void finish(void)
{
	must(policy_finish(policy, &err));
}

static const struct policy_principal user_root = { .uid = 0, .gid = 0 };
static const struct policy_principal user_daemon = { .uid = 1, .gid = 1 };
static const struct policy_principal user_4242 = { .uid = 4242, .gid = 4242 };
static const gid_t nogroup_list[] = { 100, 65534 };
static const struct policy_principal user_4242_in_nogroup = {
	.uid = 4242, .gid = 4242, .groups = nogroup_list, .group_count = 2,
};

/* The mode of who on path of dataset, with the grants flattened at now on host. */
static enum policy_mode mode_at(const struct policy_principal *who, const char *dataset,
				const char *path, bool is_dir, time_t now, const char *host)
{
	struct policy_context ctx = { .host = host, .now = now };
	struct policy_grants grants;
	enum policy_mode mode;

	ck_assert_int_eq(policy_dataset_grants(policy, dataset, &ctx, &grants), 0);
	mode = policy_grants_mode(&grants, who, path, is_dir);
	policy_grants_release(&grants);
	return mode;
}

static enum policy_mode mode_of(const struct policy_principal *who, const char *path,
				bool is_dir)
{
	return mode_at(who, "cardio", path, is_dir, FRI_1200_UTC, "gpu-1");
}

/* Globs. */

START_TEST(test_glob_known_answers)
{
	static const struct {
		const char *glob;
		const char *path;
		bool match;
	} cases[] = {
		{ "features/**", "features", true },
		{ "features/**", "features/a", true },
		{ "features/**", "features/a/b/c.npy", true },
		{ "features/**", "featuresX/a", false },
		{ "features/**", "raw/features/a", false },
		{ "features/**", "", false },
		{ "**", "", true },
		{ "**", "a", true },
		{ "**", "a/b/c", true },
		{ "**/*.pt", "m.pt", true },
		{ "**/*.pt", "a/b/m.pt", true },
		{ "**/*.pt", "a/b/m.ptx", false },
		{ "**/*.pt", "a/b.pt/c", false },
		{ "a/**/b", "a/b", true },
		{ "a/**/b", "a/x/b", true },
		{ "a/**/b", "a/x/y/b", true },
		{ "a/**/b", "a/x/y/c", false },
		{ "a/**/b", "a/b/c", false },
		{ "a/**/b/**/c", "a/b/b/x/c", true },
		{ "a/**/**/b", "a/b", true },
		{ "*", "a", true },
		{ "*", "a/b", false },           /* '*' never crosses '/' */
		{ "*", "", false },
		{ "*", ".hidden", true },        /* unlike the shell: dot files are not special */
		{ "a/*", "a/b", true },
		{ "a/*", "a/b/c", false },
		{ "a/*/c", "a/b/c", true },
		{ "a/*/c", "a/b/x/c", false },
		{ "*.csv", "x.csv", true },
		{ "*.csv", ".csv", true },
		{ "*.csv", "x.csv.gz", false },
		{ "*.csv", "d/x.csv", false },
		{ "f*o*o", "foo", true },
		{ "f*o*o", "fxoxoxo", true },
		{ "f*o*o", "fxoxox", false },
		{ "?", "a", true },
		{ "?", "", false },
		{ "?", "ab", false },
		{ "?", "/", false },             /* '?' never matches '/' */
		{ "a?c", "a/c", false },
		{ "scan_??.dcm", "scan_01.dcm", true },
		{ "scan_??.dcm", "scan_1.dcm", false },
		{ "?", "\xc3\xa9", true },       /* one UTF-8 character, two bytes */
		{ "??", "\xc3\xa9", false },
		{ "caf?", "caf\xc3\xa9", true },
		{ "exact/path.txt", "exact/path.txt", true },
		{ "exact/path.txt", "exact/path.tx", false },
		{ "exact/path.txt", "exact/path.txt/more", false },
		{ "Exact", "exact", false },     /* case matters */
		{ "a", "a/", false },
		{ "*-*", "gpu-1", true },
		{ "train-?.example.org", "train-3.example.org", true },
		{ "train-?.example.org", "train-13.example.org", false },
		{ "gpu-*", "gpu-01.cluster.local", true },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(policy_glob_match(cases[i].glob, cases[i].path) == cases[i].match,
			      "glob '%s' on '%s': expected %s", cases[i].glob, cases[i].path,
			      cases[i].match ? "match" : "no match");
}
END_TEST

/* Many '*' and '**' against a long non-matching path must finish at once. */
START_TEST(test_glob_no_blowup)
{
	char path[4096];
	size_t i;

	for (i = 0; i + 2 < sizeof(path); i += 2) {
		path[i] = 'a';
		path[i + 1] = '/';
	}
	path[i] = 'b';
	path[i + 1] = '\0';
	ck_assert(!policy_glob_match("**/a/**/a/**/a/**/a/**/a/**/c", path));
	ck_assert(policy_glob_match("**/a/**/a/**/a/**/a/**/b", path));
	memset(path, 'a', 4000);
	path[4000] = '\0';
	ck_assert(!policy_glob_match("*a*a*a*a*a*a*a*a*a*a*b", path));
}
END_TEST

START_TEST(test_name_valid)
{
	char long_name[POLICY_NAME_MAX + 2];

	ck_assert(policy_name_valid("cardio"));
	ck_assert(policy_name_valid("Cardio_2024.v1-b"));
	ck_assert(!policy_name_valid(""));
	ck_assert(!policy_name_valid("."));
	ck_assert(!policy_name_valid(".."));
	ck_assert(!policy_name_valid("-rf"));
	ck_assert(!policy_name_valid("a/b"));
	ck_assert(!policy_name_valid("a b"));
	ck_assert(!policy_name_valid("*"));
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	ck_assert(!policy_name_valid(long_name));
	long_name[POLICY_NAME_MAX] = '\0';
	ck_assert(policy_name_valid(long_name));
}
END_TEST

/* Building errors carry their line. */

static void expect_error(int status, unsigned line, const char *part)
{
	ck_assert_int_eq(status, -EINVAL);
	ck_assert_uint_eq(err.line, line);
	ck_assert_msg(strstr(err.message, part) != NULL, "'%s' lacks '%s'", err.message, part);
}

START_TEST(test_build_errors)
{
	struct policy_role *role = add_role("analysts", 3);
	struct policy_role *other;

	expect_error(policy_add_role(policy, "analysts", 9, &other, &err), 9,
		     "role 'analysts' is defined twice (first on line 3)");
	expect_error(policy_add_role(policy, "bad name", 10, &other, &err), 10,
		     "bad role name 'bad name'");
	expect_error(policy_role_add_user(role, "no-such-user-vaultfs", 4, &err), 4,
		     "unknown user 'no-such-user-vaultfs'");
	expect_error(policy_role_add_group(role, "no-such-group-vaultfs", 5, &err), 5,
		     "unknown group 'no-such-group-vaultfs'");
	expect_error(policy_role_add_user(role, "4294967295", 5, &err), 5, "unknown user");
	expect_error(policy_role_add_grant(role, "../etc", POLICY_RW, 6, &err), 6,
		     "bad dataset name '../etc'");
	expect_error(policy_role_add_grant(role, "cardio", POLICY_NONE, 6, &err), 6, "ro or rw");
	must(policy_role_add_grant(role, "cardio", POLICY_RO, 7, &err));
	expect_error(policy_role_add_grant(role, "cardio", POLICY_RW, 8, &err), 8,
		     "grants 'cardio' twice (first on line 7)");
	expect_error(policy_role_add_path_rule(role, "cardio", "/abs/**", POLICY_RO, 11, &err),
		     11, "starts with '/'");
	expect_error(policy_role_add_path_rule(role, "cardio", "a//b", POLICY_RO, 11, &err),
		     11, "empty component");
	expect_error(policy_role_add_path_rule(role, "cardio", "a/", POLICY_RO, 11, &err),
		     11, "empty component");
	expect_error(policy_role_add_path_rule(role, "cardio", "a/../b", POLICY_RO, 11, &err),
		     11, "'..'");
	expect_error(policy_role_add_path_rule(role, "cardio", "a**/b", POLICY_RO, 11, &err),
		     11, "'**' inside a component");
	expect_error(policy_role_add_path_rule(role, "cardio", "x/[ab]", POLICY_RO, 11, &err),
		     11, "character classes");
	expect_error(policy_role_add_path_rule(role, "cardio", "", POLICY_RO, 11, &err),
		     11, "empty path glob");
	expect_error(policy_role_add_window(role, "Mon-Fri 07:00-19:00", 12, &err), 12,
		     "bad time window");
	expect_error(policy_role_add_window(role, "Mon-Fry 07:00-19:00 UTC", 12, &err), 12,
		     "bad days 'Mon-Fry'");
	expect_error(policy_role_add_window(role, "Mon 7:00-19:00 UTC", 12, &err), 12,
		     "bad hours");
	expect_error(policy_role_add_window(role, "Mon 07:00-24:01 UTC", 12, &err), 12,
		     "bad hours");
	expect_error(policy_role_add_window(role, "Mon 24:00-24:00 UTC", 12, &err), 12,
		     "bad hours");
	expect_error(policy_role_add_window(role, "Mon 19:00-07:00 UTC", 12, &err), 12,
		     "split a window over midnight");
	expect_error(policy_role_add_window(role, "Mon 07:00-19:00 Europe/Berln", 13, &err), 13,
		     "unknown time zone 'Europe/Berln'");
	expect_error(policy_role_add_window(role, "Mon 07:00-19:00 ../../etc/passwd", 13, &err),
		     13, "bad time zone name");
	expect_error(policy_role_add_window(role, "Mon 07:00-19:00 Europe", 13, &err), 13,
		     "not a time zone file");
	expect_error(policy_role_add_host(role, "gpu/1", 14, &err), 14, "bad host pattern");
	expect_error(policy_role_add_admin(role, "cardio", 0, 15, &err), 15,
		     "no such admin privilege");
	expect_error(policy_role_add_admin(role, "cardio", 0x100, 15, &err), 15,
		     "no such admin privilege");
	expect_error(policy_role_add_admin(role, "cardio", POLICY_PRIV_RELOAD, 16, &err), 16,
		     "admin = * reload");
	expect_error(policy_role_add_admin(role, "cardio", POLICY_PRIV_KEK, 16, &err), 16,
		     "admin = * kek");
	must(policy_role_add_admin(role, "*", POLICY_PRIV_RELOAD | POLICY_PRIV_REVOKE, 17,
				   &err));
	must(policy_role_add_window(role, "Mon-Fri,Sun 07:00-24:00 Europe/Berlin", 18, &err));
	must(policy_role_add_window(role, "fri-mon 00:00-01:00 UTC", 19, &err));
	must(policy_role_add_host(role, "GPU-*", 20, &err));
	finish();
}
END_TEST

START_TEST(test_rule_needs_grant)
{
	struct policy_role *role = add_role("analysts", 1);

	must(policy_role_add_user(role, "daemon", 2, &err));
	must(policy_role_add_grant(role, "cardio", POLICY_RW, 3, &err));
	must(policy_role_add_path_rule(role, "neuro", "features/**", POLICY_RO, 4, &err));
	expect_error(policy_finish(policy, &err), 4,
		     "path rule for dataset 'neuro' in role 'analysts', which grants no access");
}
END_TEST

/* Decisions. */

START_TEST(test_modes_users_groups)
{
	struct policy_role *readers = add_role("readers", 1);
	struct policy_role *writers = add_role("writers", 5);

	must(policy_role_add_user(readers, "daemon", 2, &err));
	must(policy_role_add_group(readers, "nogroup", 2, &err));
	must(policy_role_add_grant(readers, "cardio", POLICY_RO, 3, &err));
	must(policy_role_add_user(writers, "0", 6, &err));
	must(policy_role_add_grant(writers, "cardio", POLICY_RW, 7, &err));
	must(policy_role_add_grant(writers, "neuro", POLICY_RO, 8, &err));
	finish();

	ck_assert_int_eq(mode_of(&user_daemon, "a/b.csv", false), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_daemon, "", true), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_root, "a/b.csv", false), POLICY_RW);
	ck_assert_int_eq(mode_at(&user_root, "neuro", "x", false, FRI_1200_UTC, "h"), POLICY_RO);
	ck_assert_int_eq(mode_at(&user_daemon, "neuro", "x", false, FRI_1200_UTC, "h"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "neuro", "", true, FRI_1200_UTC, "h"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_root, "other", "x", false, FRI_1200_UTC, "h"),
			 POLICY_NONE);
	/* No role at all: nothing, not even directories. */
	ck_assert_int_eq(mode_of(&user_4242, "a/b.csv", false), POLICY_NONE);
	ck_assert_int_eq(mode_of(&user_4242, "", true), POLICY_NONE);
	/* Through a supplementary group, and through the primary group. */
	ck_assert_int_eq(mode_of(&user_4242_in_nogroup, "a/b.csv", false), POLICY_RO);
	{
		struct policy_principal primary = { .uid = 4242, .gid = 65534 };

		ck_assert_int_eq(mode_of(&primary, "a/b.csv", false), POLICY_RO);
	}
}
END_TEST

START_TEST(test_path_rules)
{
	struct policy_role *trainers = add_role("trainers", 1);
	struct policy_role *viewers = add_role("viewers", 10);

	must(policy_role_add_user(trainers, "daemon", 2, &err));
	must(policy_role_add_grant(trainers, "cardio", POLICY_RW, 3, &err));
	must(policy_role_add_path_rule(trainers, "cardio", "raw/secret/**", POLICY_NONE, 4,
				       &err));
	must(policy_role_add_path_rule(trainers, "cardio", "features/**", POLICY_RO, 5, &err));
	must(policy_role_add_path_rule(trainers, "cardio", "checkpoints/**", POLICY_RW, 6, &err));
	must(policy_role_add_path_rule(trainers, "cardio", "raw/**", POLICY_RO, 7, &err));
	must(policy_role_add_path_rule(trainers, "cardio", "features/**", POLICY_RW, 8, &err));
	/* An ro grant caps its rules. */
	must(policy_role_add_user(viewers, "0", 11, &err));
	must(policy_role_add_grant(viewers, "cardio", POLICY_RO, 12, &err));
	must(policy_role_add_path_rule(viewers, "cardio", "**", POLICY_RW, 13, &err));
	finish();

	ck_assert_int_eq(mode_of(&user_daemon, "features/x.npy", false), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_daemon, "checkpoints/e1/m.pt", false), POLICY_RW);
	ck_assert_int_eq(mode_of(&user_daemon, "raw/a.dcm", false), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_daemon, "raw/secret/names.csv", false), POLICY_NONE);
	ck_assert_int_eq(mode_of(&user_daemon, "notes.txt", false), POLICY_NONE);
	/* Directories: the rules, but at least ro for anyone with a grant. */
	ck_assert_int_eq(mode_of(&user_daemon, "checkpoints", true), POLICY_RW);
	ck_assert_int_eq(mode_of(&user_daemon, "raw/secret", true), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_daemon, "", true), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_daemon, "other", true), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_root, "checkpoints/m.pt", false), POLICY_RO);
	ck_assert_int_eq(mode_of(&user_root, "anything", false), POLICY_RO);
}
END_TEST

/* Union over roles: each grant decides by its own rules, the best wins. */
START_TEST(test_union_over_grants)
{
	struct policy_role *a = add_role("a", 1);
	struct policy_role *b = add_role("b", 10);

	must(policy_role_add_user(a, "daemon", 2, &err));
	must(policy_role_add_grant(a, "cardio", POLICY_RW, 3, &err));
	must(policy_role_add_path_rule(a, "cardio", "checkpoints/**", POLICY_RW, 4, &err));
	must(policy_role_add_group(b, "1", 11, &err));
	must(policy_role_add_grant(b, "cardio", POLICY_RO, 12, &err));
	finish();

	ck_assert_int_eq(mode_of(&user_daemon, "checkpoints/m.pt", false), POLICY_RW);
	ck_assert_int_eq(mode_of(&user_daemon, "features/x", false), POLICY_RO);
	{
		struct policy_principal not_in_group = { .uid = 1, .gid = 4242 };

		ck_assert_int_eq(mode_of(&not_in_group, "features/x", false), POLICY_NONE);
		ck_assert_int_eq(mode_of(&not_in_group, "features", true), POLICY_RO);
	}
}
END_TEST

START_TEST(test_windows)
{
	struct policy_role *day = add_role("day", 1);
	struct policy_role *tokyo = add_role("tokyo", 10);
	struct policy_role *utc = add_role("utc", 20);
	char *saved_tz;

	must(policy_role_add_user(day, "daemon", 2, &err));
	must(policy_role_add_grant(day, "cardio", POLICY_RW, 3, &err));
	must(policy_role_add_window(day, "Mon-Fri 07:00-19:00 Europe/Berlin", 4, &err));
	must(policy_role_add_user(tokyo, "daemon", 11, &err));
	must(policy_role_add_grant(tokyo, "neuro", POLICY_RO, 12, &err));
	must(policy_role_add_window(tokyo, "Sat 08:00-12:00 Asia/Tokyo", 13, &err));
	must(policy_role_add_user(utc, "0", 21, &err));
	must(policy_role_add_grant(utc, "cardio", POLICY_RO, 22, &err));
	must(policy_role_add_window(utc, "Mon-Fri 00:00-24:00 UTC", 23, &err));
	must(policy_role_add_window(utc, "Sun 10:00-11:00 America/New_York", 24, &err));
	finish();

	/* Run under a TZ of our own: it must be what it was afterwards. */
	setenv("TZ", "America/Los_Angeles", 1);
	tzset();

	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_1200_UTC, "h"),
			 POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, SAT_1200_UTC, "h"),
			 POLICY_NONE);
	/* Edges: 07:00 in, 19:00 out (Berlin, winter: UTC+1). */
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_0700_BERLIN, "h"),
			 POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_0700_BERLIN - 60, "h"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_1900_BERLIN - 60, "h"),
			 POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_1900_BERLIN, "h"),
			 POLICY_NONE);
	/* Daylight saving: 17:30 UTC is 18:30 in January but 19:30 in July. */
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_1200_UTC + 5 * 3600 +
				 1800, "h"), POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, JUL_FRI_1730_UTC, "h"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, JUL_FRI_1730_UTC - 3600,
				 "h"), POLICY_RW);
	/* The day boundary: Friday 23:30 UTC is Saturday in Berlin and Tokyo. */
	ck_assert_int_eq(mode_at(&user_root, "cardio", "f", false, FRI_2330_UTC, "h"), POLICY_RO);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_2330_UTC, "h"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "neuro", "f", false, FRI_2330_UTC, "h"),
			 POLICY_RO);
	ck_assert_int_eq(mode_at(&user_daemon, "neuro", "f", false, FRI_1200_UTC, "h"),
			 POLICY_NONE);
	/* Saturday noon UTC is outside both of root's windows; Sunday 10:30 in New York
	 * (15:30 UTC) is inside the second. */
	ck_assert_int_eq(mode_at(&user_root, "cardio", "f", false, SAT_1200_UTC, "h"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_root, "cardio", "f", false, SAT_1200_UTC + 86400 +
				 3 * 3600 + 1800, "h"), POLICY_RO);
	ck_assert_int_eq(mode_at(&user_root, "cardio", "f", false, SAT_1200_UTC + 86400 +
				 2 * 3600 + 1800, "h"), POLICY_NONE);

	saved_tz = getenv("TZ");
	ck_assert_ptr_nonnull(saved_tz);
	ck_assert_str_eq(saved_tz, "America/Los_Angeles");
	{
		struct tm tm;
		time_t t = FRI_1200_UTC;

		ck_assert_ptr_nonnull(localtime_r(&t, &tm));
		ck_assert_int_eq(tm.tm_hour, 4);   /* 12:00 UTC is 04:00 in Los Angeles */
	}
	unsetenv("TZ");
	tzset();
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, FRI_1200_UTC, "h"),
			 POLICY_RW);
	ck_assert_ptr_null(getenv("TZ"));
}
END_TEST

START_TEST(test_hosts)
{
	struct policy_role *gpu = add_role("gpu", 1);

	must(policy_role_add_user(gpu, "daemon", 2, &err));
	must(policy_role_add_grant(gpu, "cardio", POLICY_RW, 3, &err));
	must(policy_role_add_host(gpu, "gpu-*", 4, &err));
	must(policy_role_add_host(gpu, "train-?.Example.org", 4, &err));
	finish();

	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, "gpu-7"), POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, "GPU-7.local"),
			 POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, "train-2.example.org"),
			 POLICY_RW);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, "train-22.example.org"),
			 POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, "laptop"), POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, NULL), POLICY_NONE);
	ck_assert_int_eq(mode_at(&user_daemon, "cardio", "f", false, 0, ""), POLICY_NONE);
}
END_TEST

START_TEST(test_privileges)
{
	struct policy_role *keys = add_role("keyadmins", 1);
	struct policy_role *ops = add_role("ops", 10);
	struct policy_context ctx = { .host = "h", .now = FRI_1200_UTC };
	struct policy_context weekend = { .host = "h", .now = SAT_1200_UTC };

	must(policy_role_add_user(keys, "daemon", 2, &err));
	must(policy_role_add_admin(keys, "cardio", POLICY_PRIV_ROTATE | POLICY_PRIV_RETIRE, 3,
				   &err));
	must(policy_role_add_window(keys, "Mon-Fri 00:00-24:00 UTC", 4, &err));
	must(policy_role_add_group(ops, "nogroup", 11, &err));
	must(policy_role_add_admin(ops, "*", POLICY_PRIV_RELOAD | POLICY_PRIV_REVOKE, 12, &err));
	must(policy_role_add_admin(ops, "neuro", POLICY_PRIV_CREATE, 13, &err));
	finish();

	ck_assert(policy_has_privilege(policy, &user_daemon, "cardio", POLICY_PRIV_ROTATE, &ctx));
	ck_assert(policy_has_privilege(policy, &user_daemon, "cardio",
				       POLICY_PRIV_ROTATE | POLICY_PRIV_RETIRE, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_daemon, "cardio",
					POLICY_PRIV_ROTATE | POLICY_PRIV_SHRED, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_daemon, "neuro", POLICY_PRIV_ROTATE, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_daemon, "*", POLICY_PRIV_ROTATE, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_daemon, "cardio", POLICY_PRIV_ROTATE,
					&weekend));
	ck_assert(!policy_has_privilege(policy, &user_root, "cardio", POLICY_PRIV_ROTATE, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_daemon, "cardio", 0, &ctx));

	ck_assert(policy_has_privilege(policy, &user_4242_in_nogroup, "*", POLICY_PRIV_RELOAD,
				       &ctx));
	ck_assert(policy_has_privilege(policy, &user_4242_in_nogroup, "cardio",
				       POLICY_PRIV_REVOKE, &weekend));
	ck_assert(policy_has_privilege(policy, &user_4242_in_nogroup, "neuro",
				       POLICY_PRIV_CREATE, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_4242_in_nogroup, "cardio",
					POLICY_PRIV_CREATE, &ctx));
	ck_assert(!policy_has_privilege(policy, &user_4242, "*", POLICY_PRIV_RELOAD, &ctx));
}
END_TEST

START_TEST(test_flattened_grants)
{
	struct policy_role *a = add_role("a", 1);
	struct policy_role *b = add_role("b", 10);
	struct policy_context ctx = { .host = "h", .now = FRI_1200_UTC };
	struct policy_grants grants;
	struct policy_grants copy;
	const char **names;
	size_t count;

	must(policy_role_add_user(a, "daemon", 2, &err));
	must(policy_role_add_group(a, "nogroup", 2, &err));
	must(policy_role_add_grant(a, "cardio", POLICY_RW, 3, &err));
	must(policy_role_add_path_rule(a, "cardio", "features/**", POLICY_RO, 4, &err));
	must(policy_role_add_path_rule(a, "cardio", "checkpoints/**", POLICY_RW, 5, &err));
	must(policy_role_add_user(b, "0", 11, &err));
	must(policy_role_add_grant(b, "neuro", POLICY_RO, 12, &err));
	must(policy_role_add_admin(b, "imaging", POLICY_PRIV_CREATE, 13, &err));
	finish();

	ck_assert_int_eq(policy_dataset_grants(policy, "cardio", &ctx, &grants), 0);
	ck_assert_uint_eq(grants.count, 2);
	ck_assert(!grants.grants[0].is_group);
	ck_assert_uint_eq(grants.grants[0].id, 1);
	ck_assert(grants.grants[1].is_group);
	ck_assert_uint_eq(grants.grants[1].id, 65534);
	ck_assert_int_eq(grants.grants[1].mode, POLICY_RW);
	ck_assert_uint_eq(grants.grants[1].rule_count, 2);
	ck_assert_str_eq(grants.grants[1].rules[0].glob, "features/**");
	ck_assert_int_eq(grants.grants[1].rules[0].mode, POLICY_RO);
	ck_assert_str_eq(grants.grants[1].rules[1].glob, "checkpoints/**");

	ck_assert_int_eq(policy_grants_copy(&copy, &grants), 0);
	policy_grants_release(&grants);
	ck_assert_uint_eq(grants.count, 0);
	ck_assert_uint_eq(copy.count, 2);
	ck_assert_str_eq(copy.grants[1].rules[1].glob, "checkpoints/**");
	ck_assert_int_eq(policy_grants_mode(&copy, &user_daemon, "checkpoints/a", false),
			 POLICY_RW);
	policy_grants_release(&copy);

	ck_assert_int_eq(policy_dataset_grants(policy, "nothing", &ctx, &grants), 0);
	ck_assert_uint_eq(grants.count, 0);
	ck_assert_int_eq(policy_grants_mode(&grants, &user_root, "", true), POLICY_NONE);
	policy_grants_release(&grants);

	ck_assert_int_eq(policy_datasets(policy, &names, &count), 0);
	ck_assert_uint_eq(count, 3);
	ck_assert_str_eq(names[0], "cardio");
	ck_assert_str_eq(names[1], "neuro");
	ck_assert_str_eq(names[2], "imaging");
	free(names);
	ck_assert_int_eq(policy_roles(policy, &names, &count), 0);
	ck_assert_uint_eq(count, 2);
	ck_assert_str_eq(names[0], "a");
	ck_assert_str_eq(names[1], "b");
	free(names);
}
END_TEST

START_TEST(test_group_lookup)
{
	gid_t gid = 7;

	ck_assert_int_eq(policy_group_lookup("nogroup", &gid), 0);
	ck_assert_uint_eq(gid, 65534);
	ck_assert_int_eq(policy_group_lookup("1234", &gid), 0);
	ck_assert_uint_eq(gid, 1234);
	ck_assert_int_eq(policy_group_lookup("no-such-group-vaultfs", &gid), -ENOENT);
}
END_TEST

/* Separation of duties. */

static void expect_duty_violation(unsigned line, const char *part1, const char *part2)
{
	int status = policy_finish(policy, &err);

	ck_assert_int_eq(status, -EPERM);
	ck_assert_uint_eq(err.line, line);
	ck_assert_msg(strstr(err.message, part1) != NULL, "'%s' lacks '%s'", err.message, part1);
	ck_assert_msg(strstr(err.message, part2) != NULL, "'%s' lacks '%s'", err.message, part2);
	ck_assert_msg(strstr(err.message, "separation of duties") != NULL, "%s", err.message);
}

START_TEST(test_duties_direct_user)
{
	struct policy_role *analysts = add_role("analysts", 10);
	struct policy_role *keyadmins = add_role("keyadmins", 28);

	must(policy_role_add_user(analysts, "daemon", 11, &err));
	must(policy_role_add_grant(analysts, "cardio", POLICY_RO, 12, &err));
	must(policy_role_add_user(keyadmins, "1", 29, &err));
	must(policy_role_add_admin(keyadmins, "cardio", POLICY_PRIV_ROTATE, 30, &err));
	expect_duty_violation(30, "user '1' holds key-admin privileges on 'cardio' through role "
			      "'keyadmins' (line 30)",
			      "a data grant on it through role 'analysts' (line 12)");
}
END_TEST

START_TEST(test_duties_global_admin)
{
	struct policy_role *analysts = add_role("analysts", 10);
	struct policy_role *keyadmins = add_role("keyadmins", 20);

	must(policy_role_add_user(analysts, "daemon", 11, &err));
	must(policy_role_add_grant(analysts, "neuro", POLICY_RO, 12, &err));
	must(policy_role_add_user(keyadmins, "daemon", 21, &err));
	must(policy_role_add_admin(keyadmins, "*", POLICY_PRIV_KEK, 22, &err));
	expect_duty_violation(22, "on every dataset ('*')", "a data grant on 'neuro'");
}
END_TEST

START_TEST(test_duties_via_group)
{
	struct policy_role *analysts = add_role("analysts", 10);
	struct policy_role *keyadmins = add_role("keyadmins", 20);

	/* root's primary group is root: getgrouplist lists it. */
	must(policy_role_add_group(analysts, "root", 11, &err));
	must(policy_role_add_grant(analysts, "cardio", POLICY_RW, 12, &err));
	must(policy_role_add_user(keyadmins, "root", 21, &err));
	must(policy_role_add_admin(keyadmins, "cardio", POLICY_PRIV_SHRED, 22, &err));
	expect_duty_violation(22, "user 'root' holds key-admin privileges on 'cardio'",
			      "(as a member of group 'root') through role 'analysts' (line 12)");
}
END_TEST

START_TEST(test_duties_via_admin_group)
{
	struct policy_role *analysts = add_role("analysts", 10);
	struct policy_role *keyadmins = add_role("keyadmins", 20);

	must(policy_role_add_user(analysts, "0", 11, &err));
	must(policy_role_add_grant(analysts, "cardio", POLICY_RW, 12, &err));
	must(policy_role_add_group(keyadmins, "0", 21, &err));
	must(policy_role_add_admin(keyadmins, "cardio", POLICY_PRIV_RETIRE, 22, &err));
	expect_duty_violation(22, "user '0' holds key-admin privileges on 'cardio' (as a member "
			      "of group '0') through role 'keyadmins' (line 22)",
			      "through role 'analysts' (line 12)");
}
END_TEST

START_TEST(test_duties_gid_in_both)
{
	struct policy_role *analysts = add_role("analysts", 10);
	struct policy_role *keyadmins = add_role("keyadmins", 20);

	must(policy_role_add_group(analysts, "nogroup", 11, &err));
	must(policy_role_add_grant(analysts, "cardio", POLICY_RW, 12, &err));
	must(policy_role_add_group(keyadmins, "65534", 21, &err));
	must(policy_role_add_admin(keyadmins, "cardio", POLICY_PRIV_ROTATE, 22, &err));
	expect_duty_violation(22, "group '65534' holds key-admin privileges on 'cardio'",
			      "(line 12)");
}
END_TEST

START_TEST(test_duties_same_role)
{
	struct policy_role *ops = add_role("ops", 10);

	must(policy_role_add_grant(ops, "cardio", POLICY_RO, 12, &err));
	must(policy_role_add_admin(ops, "cardio", POLICY_PRIV_ROTATE, 13, &err));
	expect_duty_violation(13, "role 'ops' holds key-admin privileges on 'cardio' (line 13)",
			      "a data grant on it (line 12)");
}
END_TEST

/* What separation of duties does not forbid. */
START_TEST(test_duties_allowed)
{
	struct policy_role *analysts = add_role("analysts", 10);
	struct policy_role *keyadmins = add_role("keyadmins", 20);
	struct policy_role *ops = add_role("ops", 30);

	must(policy_role_add_user(analysts, "root", 11, &err));
	must(policy_role_add_group(analysts, "nogroup", 11, &err));
	must(policy_role_add_grant(analysts, "cardio", POLICY_RW, 12, &err));
	/* Key admin of another dataset; daemon is not in nogroup, nor root in daemon. */
	must(policy_role_add_user(keyadmins, "daemon", 21, &err));
	must(policy_role_add_group(keyadmins, "daemon", 21, &err));
	must(policy_role_add_admin(keyadmins, "neuro", POLICY_PRIV_ROTATE | POLICY_PRIV_SHRED, 22,
				   &err));
	must(policy_role_add_admin(keyadmins, "cardio", POLICY_PRIV_CREATE, 23, &err));
	/* Non-key privileges on the same dataset, to the same user. */
	must(policy_role_add_user(ops, "root", 31, &err));
	must(policy_role_add_admin(ops, "cardio", POLICY_PRIV_REVOKE | POLICY_PRIV_CREATE, 32,
				   &err));
	must(policy_role_add_admin(ops, "*", POLICY_PRIV_RELOAD, 33, &err));
	finish();
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *suite = suite_create("policy");
	TCase *tc;

	tc = tcase_create("glob");
	tcase_add_test(tc, test_glob_known_answers);
	tcase_add_test(tc, test_glob_no_blowup);
	tcase_add_test(tc, test_name_valid);
	suite_add_tcase(suite, tc);

	tc = tcase_create("build");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_build_errors);
	tcase_add_test(tc, test_rule_needs_grant);
	tcase_add_test(tc, test_group_lookup);
	suite_add_tcase(suite, tc);

	tc = tcase_create("decisions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_modes_users_groups);
	tcase_add_test(tc, test_path_rules);
	tcase_add_test(tc, test_union_over_grants);
	tcase_add_test(tc, test_windows);
	tcase_add_test(tc, test_hosts);
	tcase_add_test(tc, test_privileges);
	tcase_add_test(tc, test_flattened_grants);
	suite_add_tcase(suite, tc);

	tc = tcase_create("duties");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_duties_direct_user);
	tcase_add_test(tc, test_duties_global_admin);
	tcase_add_test(tc, test_duties_via_group);
	tcase_add_test(tc, test_duties_via_admin_group);
	tcase_add_test(tc, test_duties_gid_in_both);
	tcase_add_test(tc, test_duties_same_role);
	tcase_add_test(tc, test_duties_allowed);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(policy_suite());
}
