/*
 * Real mounts through the real key agent: who may mount, what each role may do on an
 * allow_other mount (rw, ro, none, path rules, group grants), revocation within 5 s on
 * an open file (lease revoke, role removal by a policy reload, an agent that died) and
 * of one user on a file others hold open too (cached pages, a shared mapping), key
 * rotation and retirement with data intact, crypto-shred, a time window under
 * libfaketime, and no key material in /proc or the logs. Other users are numeric uids
 * taken by setresuid children. Needs root and /dev/fuse.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "tests/harness.h"
#include "tests/mount/agent_fixture.h"
#include "tests/mount/fixture.h"

#define DATASET "cardio"
#define KEYADMIN_UID 1001    /* key privileges on cardio, no data grant */
#define WRITER_UID 2001      /* rw */
#define READER_UID 2002      /* ro */
#define NOBODY_UID 2003      /* no role */
#define PIPELINE_UID 2005    /* rw with path rules: features ro, checkpoints rw */
#define MEMBER_UID 2006      /* in group TEAM_GID only through a supplementary group */
#define OUTSIDER_UID 2007    /* in another group */
#define TEAM_GID 3000        /* rw by group */
#define OTHER_GID 3001
#define REVOKE_BOUND_MS 5000

/* Root mounts (data role) and administers (create, revoke, reload); uid 1001 holds the
 * key privileges, and separation of duties keeps it apart from every data role. */
#define OPS_ROLE                                                                        \
	"[role ops]\n"                                                                  \
	"users = 0\n"                                                                   \
	"admin = * create revoke reload\n"                                              \
	"\n"                                                                            \
	"[role keys]\n"                                                                 \
	"users = 1001\n"                                                                \
	"admin = " DATASET " rotate retire shred\n"                                     \
	"\n"
#define MOUNTER_ROLE                                                                    \
	"[role mounter]\n"                                                              \
	"users = 0\n"                                                                   \
	"grant = " DATASET " rw\n"                                                      \
	"\n"
#define WRITERS_ROLE                                                                    \
	"[role writers]\n"                                                              \
	"users = 2001\n"                                                                \
	"grant = " DATASET " rw\n"                                                      \
	"\n"
#define READERS_ROLE                                                                    \
	"[role readers]\n"                                                              \
	"users = 2002\n"                                                                \
	"grant = " DATASET " ro\n"                                                      \
	"\n"
#define OTHER_ROLES                                                                     \
	"[role pipeline]\n"                                                             \
	"users = 2005\n"                                                                \
	"grant = " DATASET " rw\n"                                                      \
	"path = " DATASET " features/** ro\n"                                           \
	"path = " DATASET " checkpoints/** rw\n"                                        \
	"\n"                                                                            \
	"[role team]\n"                                                                 \
	"groups = 3000\n"                                                               \
	"grant = " DATASET " rw\n"

static const char standard_roles[] =
	OPS_ROLE MOUNTER_ROLE WRITERS_ROLE READERS_ROLE OTHER_ROLES;
/* The same without the readers: what a reload removing uid 2002's role installs. */
static const char roles_without_readers[] = OPS_ROLE MOUNTER_ROLE WRITERS_ROLE OTHER_ROLES;

static struct agent_fixture ax;
static struct agent_mount am;

/* Path of fmt under the mount. Returns one of 16 rotating static buffers. */
static const char *at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *at(const char *fmt, ...)
{
	static char buffers[16][PATH_MAX];
	static unsigned next;
	char *buf = buffers[next++ % 16];
	char rel[PATH_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(buf, PATH_MAX, "%s/%s", am.mnt, rel);
	return buf;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Checks inside a child running as another uid: print what went wrong, return 1. */
#define CHILD_OK(call)                                                                  \
	do {                                                                            \
		errno = 0;                                                              \
		if ((long)(call) == -1) {                                               \
			fprintf(stderr, "uid %u, line %d: %s failed: %s\n",             \
				(unsigned)getuid(), __LINE__, #call, strerror(errno));   \
			return 1;                                                       \
		}                                                                       \
	} while (0)

#define CHILD_ZERO(call)                                                                \
	do {                                                                            \
		int child_err_ = (call);                                                \
		if (child_err_ != 0) {                                                  \
			fprintf(stderr, "uid %u, line %d: %s: %s\n", (unsigned)getuid(), \
				__LINE__, #call, strerror(-child_err_));                 \
			return 1;                                                       \
		}                                                                       \
	} while (0)

#define CHILD_ERRNO(call, err)                                                          \
	do {                                                                            \
		errno = 0;                                                              \
		long child_result_ = (long)(call);                                      \
		int child_errno_ = errno;                                               \
		if (child_result_ != -1 || child_errno_ != (err)) {                     \
			fprintf(stderr, "uid %u, line %d: %s: want -1/%s, got %ld/%s\n", \
				(unsigned)getuid(), __LINE__, #call, strerror(err),      \
				child_result_,                                          \
				child_result_ == -1 ? strerror(child_errno_) : "success"); \
			return 1;                                                       \
		}                                                                       \
	} while (0)

static int run_as(uid_t uid, int (*fn)(void *arg), void *arg)
{
	gid_t gid = uid;
	return agent_run_as(uid, gid, &gid, 1, fn, arg);
}

/* The agent with the given roles and a dataset, not mounted. */
static void begin_unmounted(const char *roles)
{
	agent_fixture_create(&ax, roles);
	agent_fixture_start(&ax, NULL);
	agent_fixture_create_dataset(&ax, DATASET);
	agent_mount_init(&am, &ax, "mnt", DATASET);
}

/* ... and mounted by root with allow_other. */
static void begin(const char *roles)
{
	begin_unmounted(roles);
	agent_mount_start(&am, NULL);
}

static void setup(void)
{
	memset(&ax, 0, sizeof(ax));
	memset(&am, 0, sizeof(am));
}

static void teardown(void)
{
	agent_fixture_destroy(&ax);
}

static struct agent_outcome keyadmin_request(enum protocol_type type, uint32_t version)
{
	struct protocol_message request = { .type = type, .version = version };

	snprintf(request.name, sizeof(request.name), "%s", DATASET);
	return agent_fixture_call_as(&ax, KEYADMIN_UID, AGENT_FIXTURE_SOCKET_GID, &request);
}

static void write_file_as_root(const char *rel, size_t len, uint64_t seed, mode_t mode,
			       uid_t owner)
{
	ck_assert_int_eq(pattern_write_file(at("%s", rel), len, seed), 0);
	ck_assert_int_eq(chmod(at("%s", rel), mode), 0);
	ck_assert_int_eq(chown(at("%s", rel), owner, owner), 0);
}

static void mkdir_as_root(const char *rel, mode_t mode, uid_t owner)
{
	ck_assert_int_eq(mkdir(at("%s", rel), mode), 0);
	ck_assert_int_eq(chmod(at("%s", rel), mode), 0);
	ck_assert_int_eq(chown(at("%s", rel), owner, owner), 0);
}

/*
 * Who may mount.
 */

START_TEST(test_mount_allowed_and_refused)
{
	const char *roles = OPS_ROLE MOUNTER_ROLE;
	struct agent_mount other;

	begin(roles);
	agent_fixture_create_dataset(&ax, "neuro");
	ck_assert_int_eq(pattern_write_file(at("kept"), 100000, 1), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
	agent_mount_start(&am, NULL);
	ck_assert_int_eq(pattern_verify_file(at("kept"), 100000, 1), 0);

	/* No role grants root 'neuro': refused with a message naming it, nothing mounted. */
	agent_mount_init(&other, &ax, "mnt-neuro", "neuro");
	ck_assert_int_eq(agent_mount_try(&other, NULL), 1);
	ck_assert(!agent_is_mount(other.mnt));
	char *log = fixture_read_text(other.log, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "'neuro'") != NULL && strstr(log, "refused") != NULL,
		      "vaultfs said: %s", log);
	free(log);
	/* The agent logged the refusal too. */
	ck_assert_int_eq(access(ax.log, R_OK), 0);
	ck_assert(agent_file_contains(ax.log, "neuro", 5));
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/*
 * Roles on one allow_other mount.
 */

static int writer_work(void *arg)
{
	(void)arg;
	char value[8] = "";

	CHILD_ZERO(pattern_write(at("shared/w1"), 10000, 11, true));
	CHILD_ZERO(pattern_verify_file(at("shared/w1"), 10000, 11));
	CHILD_OK(mkdir(at("shared/wdir"), 0755));
	CHILD_OK(rename(at("shared/w1"), at("shared/w2")));
	CHILD_OK(chmod(at("shared/w2"), 0644));
	CHILD_OK(setxattr(at("shared/w2"), "user.origin", "ward", 4, 0));
	CHILD_OK(getxattr(at("shared/w2"), "user.origin", value, sizeof(value)));
	CHILD_ZERO(pattern_write(at("shared/scratch"), 100, 12, false));
	CHILD_OK(unlink(at("shared/scratch")));
	CHILD_ZERO(pattern_verify_file(at("shared/w2"), 10000, 11));
	return 0;
}

/* uid 2002 (ro) on things it owns, in a directory it owns, all mode 0666/0777: only the
 * gate can refuse these. */
static int reader_work(void *arg)
{
	(void)arg;
	const char *own = at("shared/ro-own");
	const char *dir = at("shared/ro-dir");
	DIR *listing;
	int fd;

	CHILD_ZERO(pattern_verify_file(at("shared/w2"), 10000, 11));
	CHILD_ZERO(pattern_verify_file(own, 5000, 21));
	listing = opendir(at("shared"));
	CHILD_OK(listing == NULL ? -1 : 0);
	CHILD_OK(readdir(listing) == NULL ? -1 : 0);
	closedir(listing);

	CHILD_ERRNO(open(own, O_WRONLY | O_CLOEXEC), EACCES);
	CHILD_ERRNO(open(own, O_RDWR | O_CLOEXEC), EACCES);
	CHILD_ERRNO(open(at("shared/ro-dir/new"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666),
		    EACCES);
	CHILD_ERRNO(open(at("shared/new"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666),
		    EACCES);
	CHILD_ERRNO(truncate(own, 0), EACCES);
	CHILD_ERRNO(chmod(own, 0600), EACCES);
	CHILD_ERRNO(unlink(own), EACCES);
	CHILD_ERRNO(rename(own, at("shared/ro-dir/moved")), EACCES);
	CHILD_ERRNO(mkdir(at("shared/ro-dir/sub"), 0777), EACCES);
	CHILD_ERRNO(setxattr(own, "user.note", "x", 1, 0), EACCES);
	CHILD_ERRNO(symlink("ro-own", at("shared/ro-dir/link")), EACCES);
	CHILD_ERRNO(rmdir(dir), EACCES);
	/* Reading still works after all those refusals. */
	fd = open(own, O_RDONLY | O_CLOEXEC);
	CHILD_OK(fd);
	close(fd);
	return 0;
}

START_TEST(test_rw_and_ro_roles)
{
	struct stat st;
	char value[8];

	begin(standard_roles);
	mkdir_as_root("shared", 0777, 0);
	write_file_as_root("shared/ro-own", 5000, 21, 0666, READER_UID);
	mkdir_as_root("shared/ro-dir", 0777, READER_UID);

	ck_assert_int_eq(run_as(WRITER_UID, writer_work, NULL), 0);
	ck_assert_int_eq(stat(at("shared/w2"), &st), 0);
	ck_assert_uint_eq(st.st_uid, WRITER_UID);
	ck_assert_int_eq(stat(at("shared/wdir"), &st), 0);
	ck_assert_errno(stat(at("shared/scratch"), &st), ENOENT);

	ck_assert_int_eq(run_as(READER_UID, reader_work, NULL), 0);
	/* Nothing the reader tried happened. */
	ck_assert_int_eq(stat(at("shared/ro-own"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0666);
	ck_assert_int_eq(st.st_size, 5000);
	ck_assert_int_eq(pattern_verify_file(at("shared/ro-own"), 5000, 21), 0);
	ck_assert_errno(stat(at("shared/ro-dir/new"), &st), ENOENT);
	ck_assert_errno(stat(at("shared/ro-dir/moved"), &st), ENOENT);
	ck_assert_errno(stat(at("shared/ro-dir/sub"), &st), ENOENT);
	ck_assert_errno(lstat(at("shared/ro-dir/link"), &st), ENOENT);
	ck_assert_errno(stat(at("shared/new"), &st), ENOENT);
	ck_assert_errno(getxattr(at("shared/ro-own"), "user.note", value, sizeof(value)),
			ENODATA);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

static int nobody_work(void *arg)
{
	(void)arg;
	struct stat st;

	CHILD_ERRNO(open(am.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES);
	CHILD_ERRNO(opendir(at("shared")) == NULL ? -1 : 0, EACCES);
	CHILD_ERRNO(open(at("shared/open"), O_RDONLY | O_CLOEXEC), EACCES);
	CHILD_ERRNO(open(at("shared/created"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666),
		    EACCES);
	CHILD_ERRNO(mkdir(at("made"), 0777), EACCES);
	/* Attributes too: the root's were fetched by root a moment ago, and must not be
	 * handed to a uid without a role from the kernel's cache. */
	CHILD_ERRNO(stat(am.mnt, &st), EACCES);
	return 0;
}

START_TEST(test_no_role_refused_everything)
{
	struct stat st;

	begin(standard_roles);
	mkdir_as_root("shared", 0777, 0);
	write_file_as_root("shared/open", 4096, 31, 0666, 0);
	ck_assert_int_eq(run_as(NOBODY_UID, nobody_work, NULL), 0);
	ck_assert_errno(stat(at("shared/created"), &st), ENOENT);
	ck_assert_errno(stat(at("made"), &st), ENOENT);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/*
 * Path rules and groups.
 */

static int pipeline_work(void *arg)
{
	(void)arg;
	DIR *listing;
	struct dirent *entry;
	bool saw_other = false;

	/* Under features: read-only. */
	CHILD_ZERO(pattern_verify_file(at("features/ecg.npy"), 9000, 41));
	CHILD_ERRNO(open(at("features/ecg.npy"), O_WRONLY | O_CLOEXEC), EACCES);
	CHILD_ERRNO(open(at("features/new"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666),
		    EACCES);
	CHILD_ERRNO(unlink(at("features/ecg.npy")), EACCES);
	/* Under checkpoints: read-write. */
	CHILD_OK(mkdir(at("checkpoints/e7"), 0755));
	CHILD_ZERO(pattern_write(at("checkpoints/e7/model.pt"), 20000, 42, true));
	CHILD_ZERO(pattern_verify_file(at("checkpoints/e7/model.pt"), 20000, 42));
	/* No rule matches other/: no access to the file, but the directory lists. */
	CHILD_ERRNO(open(at("other/notes"), O_RDONLY | O_CLOEXEC), EACCES);
	CHILD_ERRNO(open(at("other/new"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666),
		    EACCES);
	CHILD_ERRNO(open(at("top-level"), O_RDONLY | O_CLOEXEC), EACCES);
	listing = opendir(at("other"));
	CHILD_OK(listing == NULL ? -1 : 0);
	while ((entry = readdir(listing)) != NULL)
		saw_other |= strcmp(entry->d_name, "notes") == 0;
	closedir(listing);
	if (!saw_other) {
		fprintf(stderr, "uid %u: other/ lists without 'notes'\n", (unsigned)getuid());
		return 1;
	}
	listing = opendir(am.mnt);
	CHILD_OK(listing == NULL ? -1 : 0);
	closedir(listing);
	return 0;
}

START_TEST(test_path_rules)
{
	begin(standard_roles);
	mkdir_as_root("features", 0777, 0);
	mkdir_as_root("checkpoints", 0777, 0);
	mkdir_as_root("other", 0777, 0);
	write_file_as_root("features/ecg.npy", 9000, 41, 0666, 0);
	write_file_as_root("other/notes", 3000, 43, 0666, 0);
	write_file_as_root("top-level", 3000, 44, 0666, 0);
	ck_assert_int_eq(run_as(PIPELINE_UID, pipeline_work, NULL), 0);
	ck_assert_int_eq(pattern_verify_file(at("checkpoints/e7/model.pt"), 20000, 42), 0);
	ck_assert_int_eq(pattern_verify_file(at("features/ecg.npy"), 9000, 41), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/* uid 2008 may write everything but a/<any>/data (nothing) and ro/ (read only). */
#define MOVER_UID 2008
#define MOVER_ROLE                                                                      \
	"[role mover]\n"                                                                \
	"users = 2008\n"                                                                \
	"grant = " DATASET " rw\n"                                                      \
	"path = " DATASET " a/*/data none\n"                                            \
	"path = " DATASET " ro/** ro\n"                                                 \
	"path = " DATASET " ** rw\n"                                                    \
	"\n"

static int mover_work(void *arg)
{
	(void)arg;
	/* Barred directly. */
	CHILD_ERRNO(open(at("a/x/data"), O_RDONLY | O_CLOEXEC), EACCES);
	/* A directory rename would carry a/x/data to c/x/data, where nothing bars it. */
	CHILD_ERRNO(rename(at("a/x"), at("c/x")), EXDEV);
	CHILD_ERRNO(rename(at("a"), at("c/a")), EXDEV);
	/* The file itself cannot be named for a move, nor linked (it cannot be read). */
	CHILD_ERRNO(rename(at("a/x/data"), at("c/data")), EACCES);
	CHILD_ERRNO(link(at("a/x/data"), at("c/data")), EACCES);
	/* An exchange moves both ways: c/y would land where the rules differ too. */
	CHILD_ERRNO(renameat2(AT_FDCWD, at("a/x"), AT_FDCWD, at("c/y"), RENAME_EXCHANGE), EXDEV);
	/* A read-only file linked where it could be written: refused. */
	CHILD_ERRNO(link(at("ro/model.pt"), at("c/model.pt")), EXDEV);
	CHILD_ERRNO(rename(at("ro"), at("c/ro")), EACCES);  /* the ro rule covers ro itself */
	/* Moves that change nothing for the rules go on: a/x to a/z (a/<any>/data bars
	 * it there too), c/y to c/w, and a link within c/. */
	CHILD_OK(rename(at("a/x"), at("a/z")));
	CHILD_ERRNO(open(at("a/z/data"), O_RDONLY | O_CLOEXEC), EACCES);
	CHILD_OK(rename(at("c/y"), at("c/w")));
	CHILD_OK(link(at("c/w/notes"), at("c/notes-link")));
	/* After all that, no name of the data is readable. */
	CHILD_ERRNO(open(at("c/x/data"), O_RDONLY | O_CLOEXEC), ENOENT);
	CHILD_ERRNO(open(at("c/data"), O_RDONLY | O_CLOEXEC), ENOENT);
	return 0;
}

START_TEST(test_path_rules_hold_under_rename_and_link)
{
	begin(OPS_ROLE MOUNTER_ROLE MOVER_ROLE);
	/* Top-level directories are the mover's: the root is sticky. */
	mkdir_as_root("a", 0777, MOVER_UID);
	mkdir_as_root("a/x", 0777, 0);
	mkdir_as_root("c", 0777, 0);
	mkdir_as_root("c/y", 0777, 0);
	mkdir_as_root("ro", 0777, MOVER_UID);
	write_file_as_root("a/x/data", 5000, 61, 0666, 0);
	write_file_as_root("c/y/notes", 700, 62, 0666, 0);
	write_file_as_root("ro/model.pt", 7000, 63, 0666, 0);
	ck_assert_int_eq(run_as(MOVER_UID, mover_work, NULL), 0);
	ck_assert_int_eq(pattern_verify_file(at("a/z/data"), 5000, 61), 0);
	ck_assert_int_eq(pattern_verify_file(at("c/w/notes"), 700, 62), 0);
	ck_assert_int_eq(pattern_verify_file(at("ro/model.pt"), 7000, 63), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

static int member_work(void *arg)
{
	(void)arg;
	CHILD_ZERO(pattern_write(at("shared/by-group"), 6000, 51, true));
	CHILD_ZERO(pattern_verify_file(at("shared/by-group"), 6000, 51));
	return 0;
}

static int outsider_work(void *arg)
{
	(void)arg;
	CHILD_ERRNO(open(at("shared/by-group"), O_RDONLY | O_CLOEXEC), EACCES);
	CHILD_ERRNO(open(at("shared/outsider"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666),
		    EACCES);
	return 0;
}

START_TEST(test_group_grant)
{
	gid_t member_groups[] = { MEMBER_UID, TEAM_GID };
	gid_t outsider_groups[] = { OUTSIDER_UID, OTHER_GID };
	gid_t primary = TEAM_GID;

	begin(standard_roles);
	mkdir_as_root("shared", 0777, 0);
	/* The team's gid only as a supplementary group. */
	ck_assert_int_eq(agent_run_as(MEMBER_UID, MEMBER_UID, member_groups, 2, member_work,
				      NULL), 0);
	ck_assert_int_eq(agent_run_as(OUTSIDER_UID, OUTSIDER_UID, outsider_groups, 2,
				      outsider_work, NULL), 0);
	/* The same uid without the group is outside too. */
	ck_assert_int_eq(agent_run_as(MEMBER_UID, MEMBER_UID, member_groups, 1, outsider_work,
				      NULL), 0);
	/* And as the primary group, a uid with no role of its own is inside. */
	ck_assert_int_eq(unlink(at("shared/by-group")), 0);
	ck_assert_int_eq(agent_run_as(OUTSIDER_UID, TEAM_GID, &primary, 1, member_work, NULL), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/*
 * Revocation on an open file.
 */

struct reader {
	pid_t pid;
	int fd;          /* read end: 'r' once reading works, then 'e' + errno */
};

#define READ_FILE_LEN 65536
#define READ_FILE_SEED 61

/* A child as uid that opens path and reads it from the start over and over. */
static void reader_start(struct reader *r, uid_t uid, const char *path)
{
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		static uint8_t buf[READ_FILE_LEN];
		gid_t gid = uid;
		bool told = false;
		int err = ETIMEDOUT, fd;

		close(fds[0]);
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(125);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			goto out;
		}
		for (long start = now_ms(); now_ms() - start < 20000;) {
			ssize_t got = pread_full(fd, buf, sizeof(buf), 0);
			if (got < 0) {
				err = (int)-got;
				break;
			}
			if (got != (ssize_t)sizeof(buf) ||
			    pattern_check(buf, sizeof(buf), READ_FILE_SEED, 0) != -1) {
				err = EILSEQ;
				break;
			}
			if (!told && write(fds[1], "r", 1) == 1)
				told = true;
			usleep(20000);
		}
out:;
		char message[1 + sizeof(int)] = { 'e' };
		memcpy(message + 1, &err, sizeof(err));
		_exit(write(fds[1], message, sizeof(message)) == (ssize_t)sizeof(message) ? 0 : 1);
	}
	close(fds[1]);
	r->fd = fds[0];
}

/* Read one byte from fd within timeout_ms: the byte, or -1. */
static int read_byte(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char byte;

	if (poll(&pfd, 1, timeout_ms) != 1 || read(fd, &byte, 1) != 1)
		return -1;
	return (unsigned char)byte;
}

static void reader_wait_ready(struct reader *r)
{
	int byte = read_byte(r->fd, 5000);
	if (byte == 'e') {
		int err = 0;
		ck_assert_int_eq(read(r->fd, &err, sizeof(err)), (ssize_t)sizeof(err));
		ck_abort_msg("the reader failed before the revocation: %s", strerror(err));
	}
	ck_assert_msg(byte == 'r', "the reader did not start reading");
}

/* The errno that ended the reader's reads within timeout_ms, or 0 if it kept reading. */
static int reader_failure(struct reader *r, long since_ms, long timeout_ms, long *after_ms)
{
	int err = 0;
	long left = since_ms + timeout_ms - now_ms();

	if (read_byte(r->fd, left > 0 ? (int)left : 0) == 'e' &&
	    read(r->fd, &err, sizeof(err)) == (ssize_t)sizeof(err))
		*after_ms = now_ms() - since_ms;
	return err;
}

static void reader_stop(struct reader *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* The mount is revoked as a whole: still mounted, and refusing root with EACCES. */
static void expect_mount_refuses_everyone(void)
{
	struct stat st;

	ck_assert_msg(agent_is_mount(am.mnt), "%s is no longer a mount", am.mnt);
	ck_assert(am.daemon > 0 && waitpid(am.daemon, NULL, WNOHANG) == 0);
	ck_assert_errno(open(at("data"), O_RDONLY | O_CLOEXEC), EACCES);
	ck_assert_errno(open(at("after"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644), EACCES);
	ck_assert_errno(open(am.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES);
	/* The root's cached attributes go with the rest (EACCES, not ENOTCONN). */
	ck_assert_errno(stat(am.mnt, &st), EACCES);
}

/* Start a reader as uid on 'data', trigger, and expect EACCES within bound_ms. */
static void expect_reader_cut_off(uid_t uid, void (*trigger)(void), long bound_ms)
{
	struct reader r = { .fd = -1 };
	long after = -1;
	int err;

	write_file_as_root("data", READ_FILE_LEN, READ_FILE_SEED, 0644, 0);
	reader_start(&r, uid, at("data"));
	reader_wait_ready(&r);
	long since = now_ms();
	trigger();
	err = reader_failure(&r, since, bound_ms, &after);
	reader_stop(&r);
	ck_assert_msg(err == EACCES, "reads on the open file: want EACCES within %ld ms, got %s",
		      bound_ms, err ? strerror(err) : "still reading");
	ck_assert_int_le(after, bound_ms);
}

static void revoke_dataset(void)
{
	char text[PROTOCOL_TEXT_MAX + 1];
	ck_assert_int_eq(agent_fixture_simple(&ax, PROTOCOL_REVOKE, DATASET, text), 0);
	ck_assert_msg(strstr(text, "revoked") != NULL, "agent said: %s", text);
}

START_TEST(test_revoke_open_file)
{
	begin(standard_roles);
	expect_reader_cut_off(READER_UID, revoke_dataset, REVOKE_BOUND_MS);
	expect_mount_refuses_everyone();
	ck_assert_int_eq(access(am.log, R_OK), 0);
	ck_assert(agent_file_contains(am.log, "revoked", 7));
	/* A new mount of the dataset works: revocation ends leases, not access rights. */
	ck_assert_int_eq(agent_mount_stop(&am), 0);
	agent_mount_start(&am, NULL);
	ck_assert_int_eq(pattern_verify_file(at("data"), READ_FILE_LEN, READ_FILE_SEED), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

static void remove_readers_role(void)
{
	char text[PROTOCOL_TEXT_MAX + 1];
	agent_fixture_set_roles(&ax, roles_without_readers);
	int err = agent_fixture_reload(&ax, text);
	ck_assert_msg(err == 0, "reload: %s (%s)", strerror(-err), text);
}

static int open_data(void *arg)
{
	(void)arg;
	CHILD_ERRNO(open(at("data"), O_RDONLY | O_CLOEXEC), EACCES);
	return 0;
}

static int verify_data(void *arg)
{
	(void)arg;
	CHILD_ZERO(pattern_verify_file(at("data"), READ_FILE_LEN, READ_FILE_SEED));
	return 0;
}

START_TEST(test_role_removal_reaches_mount)
{
	begin(standard_roles);
	expect_reader_cut_off(READER_UID, remove_readers_role, REVOKE_BOUND_MS);
	ck_assert_int_eq(run_as(READER_UID, open_data, NULL), 0);
	/* Only uid 2002 lost its access: root and the writers go on. */
	ck_assert(agent_is_mount(am.mnt));
	ck_assert_int_eq(pattern_verify_file(at("data"), READ_FILE_LEN, READ_FILE_SEED), 0);
	ck_assert_int_eq(run_as(WRITER_UID, verify_data, NULL), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/*
 * One user's revocation on a shared mount: uid 2002 loses its role while uid 2001 keeps
 * its own. Both hold the same file open, its pages in the page cache they share (the
 * mount keeps it across opens), and 2002 holds a shared mapping of it too. Nothing the
 * kernel cached may keep answering 2002: its reads fail, its mapping faults, while 2001
 * goes on reading through the descriptor it had and through a new one. Not covered, as
 * the kernel has one page cache per inode: pages 2001 reads back into it after the
 * removal, which the kernel serves to 2002's descriptor and mapping as well.
 */

#define SHARED_FILE "cached"
#define SHARED_LEN (256 * 1024)
#define SHARED_SEED 67

/* A child as another uid that holds descriptors and mappings between the steps the
 * parent orders: for each step number it is sent, it runs step() and answers 0 or 1. */
struct holder {
	pid_t pid;
	int command;     /* write end: step numbers */
	int answer;      /* read end: 0 if the step held, 1 if not */
};

static void holder_start(struct holder *h, uid_t uid, int (*step)(int number))
{
	int commands[2], answers[2];

	ck_assert_int_eq(pipe2(commands, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(answers, O_CLOEXEC), 0);
	fflush(NULL);
	h->pid = fork();
	ck_assert_int_ge(h->pid, 0);
	if (h->pid == 0) {
		gid_t gid = uid;
		unsigned char number, answer;

		close(commands[1]);
		close(answers[0]);
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(125);
		while (read(commands[0], &number, 1) == 1) {
			answer = step(number) ? 1 : 0;
			fflush(NULL);
			if (write(answers[1], &answer, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	close(commands[0]);
	close(answers[1]);
	h->command = commands[1];
	h->answer = answers[0];
}

static void holder_send(struct holder *h, int number)
{
	unsigned char byte = (unsigned char)number;
	ck_assert_int_eq(write(h->command, &byte, 1), 1);
}

/* The answer to the step sent last, within timeout_ms: 0, 1, or -1 for none. */
static int holder_answer(struct holder *h, int timeout_ms)
{
	return read_byte(h->answer, timeout_ms);
}

static int holder_run(struct holder *h, int number)
{
	holder_send(h, number);
	return holder_answer(h, 10000);
}

static void holder_stop(struct holder *h)
{
	close(h->command);
	close(h->answer);
	if (fixture_wait_child(h->pid, 5000) == -ETIMEDOUT) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
}

/* In a holder: the descriptor it keeps open and (the reader) the file mapped. */
static int held_fd = -1;
static const uint8_t *held_map;
static uint8_t held_buf[SHARED_LEN];

/* The file's bytes through the held descriptor: 0, -errno, or -EILSEQ if wrong. */
static int read_held(bool with_read)
{
	ssize_t got;

	if (with_read) {
		/* read(2) from the start up to the end, not past it: that would make the
		 * kernel fetch the attributes first, which the gate refuses on its own,
		 * and the cached pages would not be what is tested. */
		if (lseek(held_fd, 0, SEEK_SET) != 0)
			return -errno;
		got = read(held_fd, held_buf, sizeof(held_buf));
		if (got < 0)
			got = -errno;
	} else {
		got = pread_full(held_fd, held_buf, sizeof(held_buf), 0);
	}
	if (got < 0)
		return (int)got;
	if (got != SHARED_LEN || pattern_check(held_buf, SHARED_LEN, SHARED_SEED, 0) != -1)
		return -EILSEQ;
	return 0;
}

static sigjmp_buf bus_jump;

static void on_bus(int signal)
{
	(void)signal;
	siglongjmp(bus_jump, 1);
}

/* Read every page of the held mapping: 0, SIGBUS if a page could not be had, or
 * -EILSEQ if the bytes are wrong. */
static int read_held_map(void)
{
	struct sigaction bus = { .sa_handler = on_bus }, old;
	volatile int result = SIGBUS;

	sigemptyset(&bus.sa_mask);
	if (sigaction(SIGBUS, &bus, &old) != 0)
		return -errno;
	if (sigsetjmp(bus_jump, 1) == 0)
		result = pattern_check(held_map, SHARED_LEN, SHARED_SEED, 0) == -1 ? 0 : -EILSEQ;
	sigaction(SIGBUS, &old, NULL);
	return result;
}

/* Retry check until it returns something other than 0 (what it gave while access
 * lasted) or until deadline_ms (now_ms()): what it returned last. */
static int until_refused(int (*check)(void), long deadline_ms)
{
	int result;

	while ((result = check()) == 0 && now_ms() < deadline_ms)
		usleep(10000);
	return result;
}

static int pread_held(void)
{
	return read_held(false);
}

static int read_syscall_held(void)
{
	return read_held(true);
}

enum shared_step {
	STEP_OPEN,          /* open, read everything, (the reader) map and touch every page */
	STEP_CUT_OFF,       /* the reader: refused within the bound; the writer: reads on */
	STEP_AFTER_OTHERS,  /* the reader, after the writer read the pages back into the
			       page cache: its descriptor is still refused */
};

/* Check that a refusal is the one wanted, naming what was refused. */
static int refused_with(const char *what, int result, int want, long started_ms)
{
	if (result == want)
		return 0;
	fprintf(stderr, "uid %u: %s after %ld ms: want %s, got %s\n", (unsigned)getuid(), what,
		now_ms() - started_ms, want == SIGBUS ? "SIGBUS" : strerror(-want),
		result == 0 ? "the file's bytes" : result == SIGBUS ? "SIGBUS" : strerror(-result));
	return 1;
}

static int shared_reader_step(int number)
{
	long started = now_ms(), deadline = started + REVOKE_BOUND_MS;
	int failed = 0;

	switch (number) {
	case STEP_OPEN:
		held_fd = open(at(SHARED_FILE), O_RDONLY | O_CLOEXEC);
		CHILD_OK(held_fd);
		CHILD_ZERO(read_held(false));
		held_map = mmap(NULL, SHARED_LEN, PROT_READ, MAP_SHARED, held_fd, 0);
		CHILD_OK(held_map == MAP_FAILED ? -1 : 0);
		CHILD_ZERO(read_held_map());
		return 0;
	case STEP_CUT_OFF:
		/* Each is retried until refused: the bound counts from the reload. */
		failed |= refused_with("pread on the open descriptor",
				       until_refused(pread_held, deadline), -EACCES, started);
		failed |= refused_with("read on the open descriptor",
				       until_refused(read_syscall_held, deadline), -EACCES,
				       started);
		failed |= refused_with("the shared mapping", until_refused(read_held_map, deadline),
				       SIGBUS, started);
		CHILD_ERRNO(open(at(SHARED_FILE), O_RDONLY | O_CLOEXEC), EACCES);
		return failed;
	case STEP_AFTER_OTHERS:
		/* Every read asks the daemon on a shared mount, cached pages or not. (A mapping
		 * is another matter: a fault on a page another user brought back is served by
		 * the kernel alone - see vaultfs(8), CAVEATS.) */
		failed |= refused_with("pread once the writer read the file again",
				       pread_held(), -EACCES, started);
		failed |= refused_with("read once the writer read the file again",
				       read_syscall_held(), -EACCES, started);
		return failed;
	default:
		return 1;
	}
}

static int shared_writer_step(int number)
{
	switch (number) {
	case STEP_OPEN:
		held_fd = open(at(SHARED_FILE), O_RDONLY | O_CLOEXEC);
		CHILD_OK(held_fd);
		CHILD_ZERO(read_held(false));
		return 0;
	case STEP_CUT_OFF:
		CHILD_ZERO(read_held(false));
		CHILD_ZERO(read_held(true));
		CHILD_ZERO(pattern_verify_file(at(SHARED_FILE), SHARED_LEN, SHARED_SEED));
		return 0;
	default:
		return 1;
	}
}

START_TEST(test_role_removal_on_shared_cached_file)
{
	struct holder reader, writer;

	begin(standard_roles);
	write_file_as_root(SHARED_FILE, SHARED_LEN, SHARED_SEED, 0644, 0);
	holder_start(&reader, READER_UID, shared_reader_step);
	holder_start(&writer, WRITER_UID, shared_writer_step);
	ck_assert_msg(holder_run(&reader, STEP_OPEN) == 0, "the reader could not read the file");
	ck_assert_msg(holder_run(&writer, STEP_OPEN) == 0, "the writer could not read the file");

	holder_send(&reader, STEP_CUT_OFF);
	remove_readers_role();
	ck_assert_msg(holder_answer(&reader, REVOKE_BOUND_MS + 10000) == 0,
		      "the reader kept reading what the kernel had cached");
	ck_assert_msg(holder_run(&writer, STEP_CUT_OFF) == 0,
		      "the writer's reads broke when only the reader lost its role");
	ck_assert_msg(holder_run(&reader, STEP_AFTER_OTHERS) == 0,
		      "the reader read pages the writer brought back into the cache");
	ck_assert_int_eq(pattern_verify_file(at(SHARED_FILE), SHARED_LEN, SHARED_SEED), 0);
	holder_stop(&reader);
	holder_stop(&writer);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

static void kill_agent(void)
{
	agent_fixture_kill(&ax);
}

START_TEST(test_lease_expires_without_agent)
{
	begin(standard_roles);
	expect_reader_cut_off(READER_UID, kill_agent, (ax.lease_ttl + 2) * 1000L);
	expect_mount_refuses_everyone();
	ck_assert_int_ge(agent_mount_stop(&am), 0);
	ck_assert(!agent_is_mount(am.mnt));
}
END_TEST

/*
 * Keys over time.
 */

#define MAX_OBJECTS 64

/* The one object that appeared since before (ids as fixture_object_ids_in gives them). */
static void new_object(const char *vault, char before[][33], int before_count, char *out)
{
	char now[MAX_OBJECTS][33];
	int count = fixture_object_ids_in(vault, now, MAX_OBJECTS), found = 0;

	for (int i = 0; i < count; i++) {
		bool old = false;
		for (int j = 0; j < before_count && !old; j++)
			old = strcmp(now[i], before[j]) == 0;
		if (!old) {
			memcpy(out, now[i], 33);
			found++;
		}
	}
	ck_assert_msg(found == 1, "%d new objects, want 1", found);
}

START_TEST(test_rotate_and_retire)
{
	char vault[PATH_MAX], ids[MAX_OBJECTS][33], first[33], second[33];
	struct agent_outcome o;
	int count;

	begin(standard_roles);
	agent_fixture_vault_dir(&ax, DATASET, vault);
	count = fixture_object_ids_in(vault, ids, MAX_OBJECTS);
	ck_assert_int_eq(pattern_write_file(at("before"), 20000, 71), 0);
	new_object(vault, ids, count, first);
	ck_assert_uint_eq(agent_object_key_version(vault, first), 1);

	o = keyadmin_request(PROTOCOL_KEY_ROTATE, 0);
	ck_assert_msg(o.err == 0, "rotate: %s (%s)", strerror(-o.err), o.text);
	ck_assert_uint_eq(o.version, 2);
	/* The daemon renews at least every 1.5 s and takes the new version then. */
	usleep(2500 * 1000);
	count = fixture_object_ids_in(vault, ids, MAX_OBJECTS);
	ck_assert_int_eq(pattern_write_file(at("after"), 30000, 72), 0);
	new_object(vault, ids, count, second);
	ck_assert_uint_eq(agent_object_key_version(vault, second), 2);
	ck_assert_uint_eq(agent_object_key_version(vault, first), 1);
	ck_assert_int_eq(pattern_verify_file(at("before"), 20000, 71), 0);
	ck_assert_int_eq(pattern_verify_file(at("after"), 30000, 72), 0);

	/* Version 1 is in use (the first object, the metadata): retiring it is refused. */
	o = keyadmin_request(PROTOCOL_KEY_RETIRE, 1);
	ck_assert_msg(o.err == -EBUSY, "retire 1: want EBUSY, got %s (%s)", strerror(-o.err),
		      o.text);
	ck_assert_msg(strstr(o.text, "used by") != NULL, "agent said: %s", o.text);

	/* A new mount (no cached page) reads both, under both versions. */
	ck_assert_int_eq(agent_mount_stop(&am), 0);
	agent_mount_start(&am, NULL);
	ck_assert_int_eq(pattern_verify_file(at("before"), 20000, 71), 0);
	ck_assert_int_eq(pattern_verify_file(at("after"), 30000, 72), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/* Reads a large file through O_DIRECT (so every read reaches the daemon) until told to
 * stop, checking each 64 KiB piece against its pattern. */
struct rekey_reader {
	char path[PATH_MAX];
	size_t len;
	uint64_t seed;
	volatile bool stop;
	long reads;
	long bad;
	int error;
};

static void *read_while_rekeying(void *arg)
{
	struct rekey_reader *r = arg;
	const size_t piece = 64 * 1024;
	void *buf = NULL;
	int fd = open(r->path, O_RDONLY | O_DIRECT);

	if (fd < 0 || posix_memalign(&buf, 4096, piece) != 0) {
		r->error = fd < 0 ? errno : ENOMEM;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (uint64_t off = 0; !r->stop; off = (off + 7 * piece) % r->len) {
		ssize_t got = pread(fd, buf, piece, (off_t)off);
		if (got != (ssize_t)piece) {
			r->error = got < 0 ? errno : EIO;
			break;
		}
		r->bad += pattern_check(buf, piece, r->seed, off) >= 0;
		r->reads++;
	}
	free(buf);
	close(fd);
	return NULL;
}

/*
 * Rekey while mounted: the mount's daemon moves every file to the newest version while a
 * reader keeps reading a large file and a descriptor held open for writing keeps
 * writing; afterwards version 1 can be retired and a fresh mount reads everything.
 */
START_TEST(test_rekey_online)
{
	char vault[PATH_MAX], ids[MAX_OBJECTS][33];
	struct agent_outcome o;
	int count, fd;

	begin(standard_roles);
	agent_fixture_vault_dir(&ax, DATASET, vault);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pattern_write_file(at("file%d", i), 5000 + i * 7000, 80 + i), 0);
	ck_assert_int_eq(pattern_write_file(at("open"), 3 * 4096, 90), 0);
	fd = open(at("open"), O_RDWR);
	ck_assert_int_ge(fd, 0);
	const size_t big_len = 48u << 20;
	ck_assert_int_eq(pattern_write_file(at("big"), big_len, 95), 0);
	struct rekey_reader reader = { .len = big_len, .seed = 95 };
	snprintf(reader.path, sizeof(reader.path), "%s", at("big"));
	pthread_t reader_thread;
	ck_assert_int_eq(pthread_create(&reader_thread, NULL, read_while_rekeying, &reader), 0);

	o = keyadmin_request(PROTOCOL_KEY_ROTATE, 0);
	ck_assert_msg(o.err == 0, "rotate: %s (%s)", strerror(-o.err), o.text);
	o = keyadmin_request(PROTOCOL_REKEY, 0);
	ck_assert_msg(o.err == 0, "rekey: %s (%s)", strerror(-o.err), o.text);
	ck_assert_uint_eq(o.rekey.version, 2);
	ck_assert_msg(strstr(o.text, "online") != NULL, "agent said: %s", o.text);
	/* The daemon hears of it at its next renewal (at most 1.5 s) and reports back at
	 * the one after; this bound only keeps a broken run from hanging the test. */
	for (int tries = 0; tries < 300; tries++) {
		/* Writes through the open descriptor meanwhile. */
		ck_assert_int_eq(pwrite(fd, "during", 6, 100), 6);
		o = keyadmin_request(PROTOCOL_REKEY, 2);
		ck_assert_msg(o.err == 0, "rekey status: %s (%s)", strerror(-o.err), o.text);
		if (o.rekey.state == PROTOCOL_REKEY_DONE || o.rekey.state == PROTOCOL_REKEY_FAILED)
			break;
		usleep(100 * 1000);
	}
	reader.stop = true;
	ck_assert_int_eq(pthread_join(reader_thread, NULL), 0);
	ck_assert_msg(reader.error == 0, "reading during the rekey: %s", strerror(reader.error));
	ck_assert_msg(reader.reads > 0 && reader.bad == 0, "%ld of %ld reads wrong", reader.bad,
		      reader.reads);
	ck_assert_msg(o.rekey.state == PROTOCOL_REKEY_DONE, "rekey ended in state %u: %s",
		      (unsigned)o.rekey.state, o.text);
	ck_assert_uint_eq(o.rekey.done, o.rekey.total);
	ck_assert_uint_ge(o.rekey.total, 9);

	/* Every object is under version 2 now. */
	count = fixture_object_ids_in(vault, ids, MAX_OBJECTS);
	ck_assert_int_eq(count, 10);
	for (int i = 0; i < count; i++)
		ck_assert_uint_eq(agent_object_key_version(vault, ids[i]), 2);
	/* The descriptor opened before the run reads and writes the file's new object. */
	char head[16];
	ck_assert_int_eq(pwrite(fd, "after the rekey", 15, 4096), 15);
	ck_assert_int_eq(pread(fd, head, 15, 4096), 15);
	ck_assert(memcmp(head, "after the rekey", 15) == 0);
	ck_assert_int_eq(close(fd), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pattern_verify_file(at("file%d", i), 5000 + i * 7000, 80 + i), 0);
	ck_assert_int_eq(pattern_verify_file(at("big"), big_len, 95), 0);

	/* Nothing uses version 1: it retires, and a fresh mount reads everything. */
	ck_assert_int_eq(agent_mount_stop(&am), 0);
	o = keyadmin_request(PROTOCOL_KEY_RETIRE, 1);
	ck_assert_msg(o.err == 0, "retire 1: %s (%s)", strerror(-o.err), o.text);
	agent_mount_start(&am, NULL);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pattern_verify_file(at("file%d", i), 5000 + i * 7000, 80 + i), 0);
	fd = open(at("open"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, head, 15, 4096), 15);
	ck_assert(memcmp(head, "after the rekey", 15) == 0);
	ck_assert_int_eq(pread(fd, head, 6, 100), 6);
	ck_assert(memcmp(head, "during", 6) == 0);
	close(fd);
	ck_assert_int_eq(pattern_verify_file(at("big"), big_len, 95), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/* vaultfs -f -o keyfile=KEYFILE VAULT MNT with a dev key file holding hex: its exit
 * status; the output goes to log. */
static int mount_with_key(const char *vault, const char *hex, const char *log)
{
	char keyfile[PATH_MAX], mnt[PATH_MAX], options[PATH_MAX + 16];
	FILE *f;

	snprintf(keyfile, sizeof(keyfile), "%s/try.key", ax.root);
	snprintf(mnt, sizeof(mnt), "%s/mnt-keyfile", ax.root);
	unlink(keyfile);
	mkdir(mnt, 0755);
	f = fopen(keyfile, "we");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "vaultfs-dev-key-v1\n%s\n", hex);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(keyfile, 0600), 0);
	snprintf(options, sizeof(options), "keyfile=%s", keyfile);
	const char *argv[] = { getenv("VAULTFS"), "-f", "-o", options, vault, mnt, NULL };
	ck_assert_ptr_nonnull(argv[0]);
	int status = fixture_spawn(argv, log, 5000);
	if (agent_is_mount(mnt)) {
		const char *detach[] = { "umount", "-l", mnt, NULL };
		fixture_spawn(detach, NULL, 5000);
	}
	return status;
}

static void shred_dataset(void)
{
	struct agent_outcome o = keyadmin_request(PROTOCOL_KEY_SHRED, 0);
	ck_assert_msg(o.err == 0, "shred: %s (%s)", strerror(-o.err), o.text);
}

START_TEST(test_shred)
{
	char vault[PATH_MAX], log[PATH_MAX], hex[2 * CRYPTO_KEY_LEN + 1];
	uint8_t key[CRYPTO_KEY_LEN];
	char *text;

	begin(standard_roles);
	agent_fixture_vault_dir(&ax, DATASET, vault);
	/* The mount refuses everyone within the bound (its next renewal is refused). */
	expect_reader_cut_off(READER_UID, shred_dataset, REVOKE_BOUND_MS);
	expect_mount_refuses_everyone();
	ck_assert_int_ge(agent_mount_stop(&am), 0);

	/* A new mount is refused, naming the dataset. */
	ck_assert_int_eq(agent_mount_try(&am, NULL), 1);
	ck_assert(!agent_is_mount(am.mnt));
	text = fixture_read_text(am.log, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strstr(text, "'" DATASET "'") != NULL, "vaultfs said: %s", text);
	free(text);

	/* The vault's objects are still there, but no key opens the vault: not a fresh
	 * one, not the KEK. */
	char ids[MAX_OBJECTS][33];
	ck_assert_int_ge(fixture_object_ids_in(vault, ids, MAX_OBJECTS), 1);
	snprintf(log, sizeof(log), "%s/keyfile.log", ax.root);
	crypto_random(key, sizeof(key));
	crypto_to_hex(hex, sizeof(hex), key, sizeof(key));
	ck_assert_int_eq(mount_with_key(vault, hex, log), 1);
	ck_assert_int_eq(mount_with_key(vault, ax.kek_hex, log), 1);
	text = fixture_read_text(log, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strstr(text, "wrong key") != NULL, "vaultfs said: %s", text);
	ck_assert_msg(strstr(strstr(text, "wrong key") + 1, "wrong key") != NULL,
		      "vaultfs said: %s", text);
	free(text);
}
END_TEST

/*
 * A time window, with the agent's clock set by libfaketime.
 */

START_TEST(test_time_window)
{
	const char *roles = OPS_ROLE
		"[role office-hours]\n"
		"users = 0\n"
		"grant = " DATASET " rw\n"
		"window = Mon-Fri 07:00-19:00 UTC\n";
	char text[PROTOCOL_TEXT_MAX + 1];
	char *log;

	agent_fixture_create(&ax, roles);
	/* Monday 03:00 UTC: outside the window. */
	agent_fixture_start(&ax, "2026-06-01 03:00:00");
	agent_fixture_create_dataset(&ax, DATASET);
	agent_mount_init(&am, &ax, "mnt", DATASET);
	ck_assert_int_eq(agent_fixture_simple(&ax, PROTOCOL_LEASE, DATASET, text), -EACCES);
	ck_assert_int_eq(agent_mount_try(&am, NULL), 1);
	ck_assert(!agent_is_mount(am.mnt));
	log = fixture_read_text(am.log, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "'" DATASET "'") != NULL, "vaultfs said: %s", log);
	free(log);
	agent_fixture_stop(&ax);

	/* Monday 10:00 UTC: inside. */
	agent_fixture_start(&ax, "2026-06-01 10:00:00");
	agent_mount_start(&am, NULL);
	ck_assert_int_eq(pattern_write_file(at("in-hours"), 10000, 91), 0);
	ck_assert_int_eq(pattern_verify_file(at("in-hours"), 10000, 91), 0);
	ck_assert_int_eq(agent_mount_stop(&am), 0);
}
END_TEST

/*
 * No key material where other processes or logs can see it.
 */

static void expect_absent(const char *path, const void *secret, size_t len, const char *what)
{
	ck_assert_msg(!agent_file_contains(path, secret, len), "%s found in %s", what, path);
}

static void expect_no_keys_in(const char *path, const uint8_t *kek, const char *dek_hex,
			      const uint8_t *dek)
{
	char upper[2 * CRYPTO_KEY_LEN + 1];

	for (size_t i = 0; i < sizeof(upper); i++)
		upper[i] = (char)(ax.kek_hex[i] >= 'a' && ax.kek_hex[i] <= 'f'
					  ? ax.kek_hex[i] - 'a' + 'A' : ax.kek_hex[i]);
	expect_absent(path, ax.kek_hex, strlen(ax.kek_hex), "the KEK in hex");
	expect_absent(path, upper, strlen(upper), "the KEK in upper-case hex");
	expect_absent(path, kek, CRYPTO_KEY_LEN, "the KEK");
	expect_absent(path, dek_hex, strlen(dek_hex), "the DEK in hex");
	expect_absent(path, dek, CRYPTO_KEY_LEN, "the DEK");
}

static void from_hex(uint8_t *out, const char *hex)
{
	for (size_t i = 0; i < CRYPTO_KEY_LEN; i++) {
		unsigned byte;
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
		out[i] = (uint8_t)byte;
	}
}

START_TEST(test_no_key_material_visible)
{
	struct protocol_message request = { .type = PROTOCOL_LEASE }, reply;
	uint8_t kek[CRYPTO_KEY_LEN], dek[CRYPTO_KEY_LEN];
	char dek_hex[2 * CRYPTO_KEY_LEN + 1], path[64];

	begin(standard_roles);
	ck_assert_int_eq(pattern_write_file(at("file"), 10000, 101), 0);
	ck_assert_int_eq(pattern_verify_file(at("file"), 10000, 101), 0);

	/* The DEK the mount holds: root may lease it too. */
	snprintf(request.name, sizeof(request.name), "%s", DATASET);
	ck_assert_int_eq(agent_fixture_call(&ax, &request, &reply), 0);
	ck_assert_uint_ge(reply.key_count, 1);
	memcpy(dek, reply.keys[0].key, sizeof(dek));
	crypto_to_hex(dek_hex, sizeof(dek_hex), dek, sizeof(dek));
	memset(&request, 0, sizeof(request));
	request.type = PROTOCOL_RELEASE;
	request.lease_id = reply.lease_id;
	protocol_message_release(&reply);
	ck_assert_int_eq(agent_fixture_call(&ax, &request, &reply), 0);
	protocol_message_release(&reply);
	from_hex(kek, ax.kek_hex);

	pid_t pids[] = { ax.agent, am.daemon };
	const char *names[] = { "vault-keyagent", "vaultfs" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pids[i]);
		ck_assert_msg(agent_file_contains(path, names[i], strlen(names[i])),
			      "%s is not %s", path, names[i]);
		expect_no_keys_in(path, kek, dek_hex, dek);
		snprintf(path, sizeof(path), "/proc/%d/environ", (int)pids[i]);
		ck_assert(access(path, R_OK) == 0);
		expect_no_keys_in(path, kek, dek_hex, dek);
	}
	ck_assert_int_eq(agent_mount_stop(&am), 0);
	ck_assert_int_eq(access(am.log, R_OK), 0);
	expect_no_keys_in(am.log, kek, dek_hex, dek);
	expect_no_keys_in(ax.log, kek, dek_hex, dek);
}
END_TEST

static Suite *agent_mount_suite(void)
{
	Suite *suite = suite_create("mount_agent");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
		{ "mount", test_mount_allowed_and_refused },
		{ "roles", test_rw_and_ro_roles },
		{ "no_role", test_no_role_refused_everything },
		{ "path_rules", test_path_rules },
		{ "path_rules_moves", test_path_rules_hold_under_rename_and_link },
		{ "groups", test_group_grant },
		{ "revoke", test_revoke_open_file },
		{ "role_removal", test_role_removal_reaches_mount },
		{ "role_removal_shared", test_role_removal_on_shared_cached_file },
		{ "agent_gone", test_lease_expires_without_agent },
		{ "rotate", test_rotate_and_retire },
		{ "rekey", test_rekey_online },
		{ "shred", test_shred },
		{ "time_window", test_time_window },
		{ "secrets", test_no_key_material_visible },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(suite, tc);
	}
	return suite;
}

int main(void)
{
	return harness_run(agent_mount_suite());
}
