/*
 * The trust boundary, tested the way users meet it: with the least-privilege policy of
 * vaultfs-policy(5) (root operates the agent and holds no data role), a user mounts a
 * dataset with 'vaultctl mount' - the agent starts the daemon, the user never holds a
 * key - works in it and unmounts it. Buffered, mmap'd, cp'd, numpy and sqlite writes
 * survive dropped caches and a remount byte for byte (the kernel writes them back as
 * uid 0, which holds no grant); a read-only user's writes are refused at open; nobody
 * else, root included, enters a user's mount; a user without a role or on a directory
 * not theirs mounts nothing. The agent stays available: a kill -9 and restart does not
 * end a mount, and users holding every connection they may do not starve the mounts'
 * renewals. Other users are numeric uids taken by setresuid children.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/agent_fixture.h"
#include "tests/mount/fixture.h"

#define DATASET "cardio"
#define WRITER_UID 2001      /* rw */
#define READER_UID 2002      /* ro */
#define NOBODY_UID 2003      /* no role */

/* Root administers and holds no data role: the policy the man page recommends. */
static const char least_privilege_roles[] =
	"[role ops]\n"
	"users = 0\n"
	"admin = * create revoke reload\n"
	"\n"
	"[role writers]\n"
	"users = 2001\n"
	"grant = " DATASET " rw\n"
	"\n"
	"[role readers]\n"
	"users = 2002\n"
	"grant = " DATASET " ro\n";

static struct agent_fixture ax;

/* A user's own mountpoint, under the fixture's root. */
static void user_dir(char *out, const char *name, uid_t owner)
{
	snprintf(out, PATH_MAX, "%s/%s", ax.root, name);
	ck_assert_int_eq(mkdir(out, 0700), 0);
	ck_assert_int_eq(chown(out, owner, owner), 0);
}

struct command {
	const char *const *argv;
	const char *output;      /* stdout and stderr go here */
};

static int exec_command(void *arg)
{
	const struct command *c = arg;
	int fd = open(c->output, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		return 126;
	setenv("VAULTFS_AGENT_SOCKET", ax.socket, 1);
	execv(c->argv[0], (char *const *)c->argv);
	return 127;
}

/* Run argv as uid (its own group and the agent's socket group); its exit status, and
 * what it printed in ax.root/out.txt. */
static int run_as_user(uid_t uid, const char *const argv[])
{
	char output[PATH_MAX];
	gid_t groups[] = { uid, AGENT_FIXTURE_SOCKET_GID };
	struct command c = { argv, output };

	snprintf(output, sizeof(output), "%s/out.txt", ax.root);
	unlink(output);
	int fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchown(fd, uid, uid), 0);
	close(fd);
	return agent_run_as(uid, uid, groups, 2, exec_command, &c);
}

static char *last_output(void)
{
	char output[PATH_MAX];
	char *text;

	snprintf(output, sizeof(output), "%s/out.txt", ax.root);
	text = fixture_read_text(output, NULL);
	return text ? text : strdup("");
}

static int vaultctl_as(uid_t uid, const char *verb, const char *a, const char *b,
		       const char *c)
{
	const char *argv[] = { fixture_binary("VAULTCTL"), verb, a, b, c, NULL };
	return run_as_user(uid, argv);
}

static void mount_as(uid_t uid, const char *mnt)
{
	int status = vaultctl_as(uid, "mount", DATASET, mnt, NULL);
	char *text = last_output();

	ck_assert_msg(status == 0, "vaultctl mount as uid %u: %d: %s", (unsigned)uid, status,
		      text);
	free(text);
	ck_assert(agent_is_mount(mnt));
}

static void umount_as(uid_t uid, const char *mnt)
{
	int status = vaultctl_as(uid, "umount", mnt, NULL, NULL);
	char *text = last_output();

	ck_assert_msg(status == 0, "vaultctl umount as uid %u: %d: %s", (unsigned)uid, status,
		      text);
	free(text);
	/* The agent's daemon goes away once its mount has: poll for it. */
	for (int waited = 0; agent_is_mount(mnt) && waited < 5000; waited += 20)
		fixture_sleep_ms(20);
	ck_assert(!agent_is_mount(mnt));
}

static void begin(void)
{
	memset(&ax, 0, sizeof(ax));
	agent_fixture_create(&ax, least_privilege_roles);
	agent_fixture_start(&ax, NULL);
	agent_fixture_create_dataset(&ax, DATASET);
}

static void teardown(void)
{
	agent_fixture_destroy(&ax);
}

static void drop_caches(void)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "3", 1), 1);
	close(fd);
}

/* Checks inside a child running as another uid: print what went wrong, return 1. */
#define CHILD_OK(call)                                                                  \
	do {                                                                            \
		if ((long)(call) == -1) {                                               \
			fprintf(stderr, "uid %u, line %d: %s: %s\n", (unsigned)getuid(), \
				__LINE__, #call, strerror(errno));                       \
			return 1;                                                       \
		}                                                                       \
	} while (0)

static const char *mnt_of(void *arg)
{
	return arg;
}

static const char buffered_text[] = "ecg lead II, 500 Hz, patient 0042\n";
#define MMAP_LEN 20000
#define COPY_LEN 3000000

/* The writer's session: each kind of write, closed without fsync. */
static int write_everything(void *arg)
{
	char path[PATH_MAX];
	const char *mnt = mnt_of(arg);
	int fd;

	/* Mode 0666: the file modes would let anyone write it, only the policy says no. */
	snprintf(path, sizeof(path), "%s/buffered.txt", mnt);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	CHILD_OK(fd);
	CHILD_OK(write(fd, buffered_text, strlen(buffered_text)));
	CHILD_OK(close(fd));

	snprintf(path, sizeof(path), "%s/mapped.bin", mnt);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHILD_OK(fd);
	CHILD_OK(ftruncate(fd, MMAP_LEN));
	uint8_t *map = mmap(NULL, MMAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < MMAP_LEN; i++)
		map[i] = (uint8_t)(i * 7 + 3);
	CHILD_OK(munmap(map, MMAP_LEN));
	CHILD_OK(close(fd));

	snprintf(path, sizeof(path), "%s/source.bin", mnt);
	if (pattern_write_file(path, COPY_LEN, 42) != 0)
		return 1;
	return 0;
}

static int verify_everything(void *arg)
{
	char path[PATH_MAX], buf[sizeof(buffered_text)];
	const char *mnt = mnt_of(arg);
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "%s/buffered.txt", mnt);
	fd = open(path, O_RDONLY);
	CHILD_OK(fd);
	got = read(fd, buf, sizeof(buf));
	close(fd);
	if (got != (ssize_t)strlen(buffered_text) || memcmp(buf, buffered_text, (size_t)got)) {
		fprintf(stderr, "buffered.txt lost its bytes (read %zd)\n", got);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/mapped.bin", mnt);
	fd = open(path, O_RDONLY);
	CHILD_OK(fd);
	for (size_t i = 0; i < MMAP_LEN; i++) {
		uint8_t byte;
		if (pread(fd, &byte, 1, (off_t)i) != 1 || byte != (uint8_t)(i * 7 + 3)) {
			fprintf(stderr, "mapped.bin differs at byte %zu\n", i);
			close(fd);
			return 1;
		}
	}
	close(fd);
	snprintf(path, sizeof(path), "%s/copy.bin", mnt);
	if (pattern_verify_file(path, COPY_LEN, 42) != 0) {
		fprintf(stderr, "copy.bin differs\n");
		return 1;
	}
	return 0;
}

/* numpy.save and sqlite write through Python's own buffered I/O. */
static const char python_write[] =
	"import sys, sqlite3, numpy\n"
	"m = sys.argv[1]\n"
	"numpy.save(m + '/features.npy', numpy.arange(250000, dtype=numpy.int64) * 3)\n"
	"db = sqlite3.connect(m + '/runs.sqlite')\n"
	"db.execute('create table runs (id integer primary key, loss real)')\n"
	"db.executemany('insert into runs (loss) values (?)', [(i / 7,) for i in range(5000)])\n"
	"db.commit()\n"
	"db.close()\n";
static const char python_verify[] =
	"import sys, sqlite3, numpy\n"
	"m = sys.argv[1]\n"
	"a = numpy.load(m + '/features.npy')\n"
	"assert (a == numpy.arange(250000, dtype=numpy.int64) * 3).all(), 'npy differs'\n"
	"db = sqlite3.connect(m + '/runs.sqlite')\n"
	"assert db.execute('pragma integrity_check').fetchone()[0] == 'ok'\n"
	"rows = db.execute('select id, loss from runs order by id').fetchall()\n"
	"assert len(rows) == 5000 and all(abs(l - (i - 1) / 7) < 1e-9 for i, l in rows)\n";

static void python_as(uid_t uid, const char *script, const char *mnt)
{
	const char *argv[] = { "/usr/bin/python3", "-c", script, mnt, NULL };
	int status = run_as_user(uid, argv);
	char *text = last_output();

	ck_assert_msg(status == 0, "python as uid %u: %d: %s", (unsigned)uid, status, text);
	free(text);
}

static void verify_as_writer(const char *mnt)
{
	ck_assert_int_eq(agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				      verify_everything, (void *)mnt), 0);
	python_as(WRITER_UID, python_verify, mnt);
}

START_TEST(test_user_writes_survive_drop_caches_and_remount)
{
	char mnt[PATH_MAX], src[PATH_MAX + 16], dst[PATH_MAX + 16];

	begin();
	user_dir(mnt, "alice-mnt", WRITER_UID);
	mount_as(WRITER_UID, mnt);
	ck_assert_int_eq(agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				      write_everything, mnt), 0);
	snprintf(src, sizeof(src), "%s/source.bin", mnt);
	snprintf(dst, sizeof(dst), "%s/copy.bin", mnt);
	const char *cp[] = { "/bin/cp", src, dst, NULL };
	ck_assert_int_eq(run_as_user(WRITER_UID, cp), 0);
	python_as(WRITER_UID, python_write, mnt);

	/* Everything the kernel still held is written back by its flusher, as uid 0. */
	drop_caches();
	verify_as_writer(mnt);
	umount_as(WRITER_UID, mnt);
	mount_as(WRITER_UID, mnt);
	verify_as_writer(mnt);
	umount_as(WRITER_UID, mnt);
	/* Nothing the agent logged holds the data's bytes. */
	ck_assert(!agent_file_contains(ax.log, "patient 0042", 12));
}
END_TEST

static int reader_work(void *arg)
{
	char path[PATH_MAX], buf[64];
	const char *mnt = mnt_of(arg);
	int fd;

	/* Reading is what the grant gives. */
	snprintf(path, sizeof(path), "%s/buffered.txt", mnt);
	fd = open(path, O_RDONLY);
	CHILD_OK(fd);
	CHILD_OK(read(fd, buf, sizeof(buf)));
	close(fd);
	/* Writing is refused when the file is opened, not lost after close. */
	errno = 0;
	if (open(path, O_WRONLY) != -1 || errno != EACCES) {
		fprintf(stderr, "open for writing: want EACCES, got %s\n", strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/new.txt", mnt);
	errno = 0;
	if (open(path, O_WRONLY | O_CREAT, 0600) != -1 || errno != EACCES) {
		fprintf(stderr, "create: want EACCES, got %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

static int stat_refused(void *arg)
{
	struct stat st;

	errno = 0;
	if (stat(mnt_of(arg), &st) != -1 || errno != EACCES) {
		fprintf(stderr, "uid %u: stat of another user's mount: want EACCES, got %s\n",
			(unsigned)getuid(), strerror(errno));
		return 1;
	}
	return 0;
}

START_TEST(test_reader_refused_at_open_others_kept_out)
{
	char mnt[PATH_MAX], reader_mnt[PATH_MAX];
	struct stat st;

	begin();
	user_dir(mnt, "alice-mnt", WRITER_UID);
	mount_as(WRITER_UID, mnt);
	ck_assert_int_eq(agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				      write_everything, mnt), 0);
	/* The mount is alice's alone: not the reader's, not root's. */
	ck_assert_int_eq(agent_run_as(READER_UID, READER_UID, (gid_t[]){ READER_UID }, 1,
				      stat_refused, mnt), 0);
	errno = 0;
	ck_assert_int_eq(stat(mnt, &st), -1);
	ck_assert_int_eq(errno, EACCES);
	/* One mount per dataset at a time: the reader is told so. */
	user_dir(reader_mnt, "bob-mnt", READER_UID);
	ck_assert_int_eq(vaultctl_as(READER_UID, "mount", DATASET, reader_mnt, NULL), 1);
	char *text = last_output();
	ck_assert_msg(strstr(text, "mounted on this host already") != NULL, "%s", text);
	free(text);
	/* Only the owner (or root) unmounts it. */
	ck_assert_int_ne(vaultctl_as(READER_UID, "umount", mnt, NULL, NULL), 0);
	ck_assert(agent_is_mount(mnt));
	umount_as(WRITER_UID, mnt);

	mount_as(READER_UID, reader_mnt);
	ck_assert_int_eq(agent_run_as(READER_UID, READER_UID, (gid_t[]){ READER_UID }, 1,
				      reader_work, reader_mnt), 0);
	umount_as(READER_UID, reader_mnt);
}
END_TEST

START_TEST(test_mount_refusals)
{
	char mnt[PATH_MAX], roots[PATH_MAX], link[PATH_MAX];
	char *text;

	begin();
	/* No role: refused, nothing mounted. */
	user_dir(mnt, "nobody-mnt", NOBODY_UID);
	ck_assert_int_eq(vaultctl_as(NOBODY_UID, "mount", DATASET, mnt, NULL), 1);
	text = last_output();
	ck_assert_msg(strstr(text, "no role") != NULL, "%s", text);
	free(text);
	ck_assert(!agent_is_mount(mnt));

	/* A directory that is not the user's: refused. */
	user_dir(roots, "roots-dir", 0);
	ck_assert_int_eq(chmod(roots, 0777), 0);
	ck_assert_int_eq(vaultctl_as(WRITER_UID, "mount", DATASET, roots, NULL), 1);
	text = last_output();
	ck_assert_msg(strstr(text, "not a directory of yours") != NULL, "%s", text);
	free(text);
	ck_assert(!agent_is_mount(roots));

	/* A link of the user's to root's directory: the agent sees the link, the daemon
	 * would open the directory without following it; either way nothing mounts. */
	snprintf(link, sizeof(link), "%s/alice-link", ax.root);
	ck_assert_int_eq(symlink(roots, link), 0);
	ck_assert_int_eq(lchown(link, WRITER_UID, WRITER_UID), 0);
	const char *direct[] = { fixture_binary("VAULTCTL"), "mount", DATASET, link, NULL };
	ck_assert_int_ne(run_as_user(WRITER_UID, direct), 0);
	ck_assert(!agent_is_mount(roots));

	/* A mount others may enter needs the 'share' privilege; other options are root's. */
	user_dir(mnt, "alice-mnt", WRITER_UID);
	const char *shared[] = { fixture_binary("VAULTCTL"), "mount", "-o", "allow_other",
				 DATASET, mnt, NULL };
	ck_assert_int_eq(run_as_user(WRITER_UID, shared), 1);
	text = last_output();
	ck_assert_msg(strstr(text, "'share'") != NULL, "%s", text);
	free(text);
	ck_assert(!agent_is_mount(mnt));
	const char *threads[] = { fixture_binary("VAULTCTL"), "mount", "-o", "max_threads=4",
				  DATASET, mnt, NULL };
	ck_assert_int_eq(run_as_user(WRITER_UID, threads), 1);
	ck_assert(!agent_is_mount(mnt));

	/* The user cannot run the daemon with the agent's options to claim a lease. */
	const char *claim[] = { fixture_binary("VAULTFS"), "-f", "-o",
				"dataset=" DATASET ",lease=1,mount_uid=2001,mount_gid=2001",
				mnt, NULL };
	ck_assert_int_ne(run_as_user(WRITER_UID, claim), 0);
	ck_assert(!agent_is_mount(mnt));
}
END_TEST

/* A small file written, then read back, as the writer: the mount serves. */
static int write_and_read(void *arg)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/alive-%ld", mnt_of(arg), (long)getpid());
	if (pattern_write_file(path, 70000, 7) != 0 || pattern_verify_file(path, 70000, 7) != 0) {
		fprintf(stderr, "uid %u: the mount does not serve: %s\n", (unsigned)getuid(),
			strerror(errno));
		return 1;
	}
	return 0;
}

static void expect_serving(const char *mnt)
{
	ck_assert_int_eq(agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				      write_and_read, (void *)mnt), 0);
}

START_TEST(test_mount_survives_agent_restart)
{
	char mnt[PATH_MAX];

	begin();
	user_dir(mnt, "alice-mnt", WRITER_UID);
	mount_as(WRITER_UID, mnt);
	expect_serving(mnt);
	/* The agent dies without a word and comes back: the daemon's renewals fail for a
	 * while, then the new agent takes the lease back. */
	agent_fixture_kill(&ax);
	fixture_sleep_ms(1000);
	agent_fixture_start(&ax, NULL);
	/* Past the lease's TTL: only a taken-back lease keeps the keys. */
	fixture_sleep_ms((ax.lease_ttl + 2) * 1000L);
	expect_serving(mnt);
	ck_assert(agent_file_contains(ax.log, "taken back after an agent restart", 33));
	/* The new agent knows the mount again: its user unmounts it through it. */
	umount_as(WRITER_UID, mnt);
}
END_TEST

/* Hold KEYAGENT's per-uid share of connections open until killed. */
static void hold_connections(uid_t uid, int count)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	gid_t groups[] = { uid, AGENT_FIXTURE_SOCKET_GID };

	if (strlen(ax.socket) >= sizeof(addr.sun_path))
		_exit(124);
	memcpy(addr.sun_path, ax.socket, strlen(ax.socket) + 1);
	if (setgroups(2, groups) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(125);
	for (int i = 0; i < count; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0)
			break;
	}
	for (;;)
		pause();
}

START_TEST(test_users_cannot_starve_renewals)
{
	enum { HOLDERS = 4, PER_HOLDER = 16 };
	pid_t holders[HOLDERS];
	char mnt[PATH_MAX];

	begin();
	user_dir(mnt, "alice-mnt", WRITER_UID);
	mount_as(WRITER_UID, mnt);
	/* Four users of the socket group take all they may: 64 connections, every slot
	 * the agent has for users. */
	for (int i = 0; i < HOLDERS; i++) {
		holders[i] = fork();
		ck_assert_int_ge(holders[i], 0);
		if (holders[i] == 0)
			hold_connections(3101 + (uid_t)i, PER_HOLDER);
	}
	/* Renewals must go on past the TTL, and root still reaches the agent. */
	fixture_sleep_ms((ax.lease_ttl + 2) * 1000L);
	expect_serving(mnt);
	ck_assert_int_eq(agent_fixture_simple(&ax, PROTOCOL_STATUS, NULL, NULL), 0);
	for (int i = 0; i < HOLDERS; i++) {
		kill(holders[i], SIGKILL);
		waitpid(holders[i], NULL, 0);
	}
	umount_as(WRITER_UID, mnt);
}
END_TEST

static int read_refused(void *arg)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/buffered.txt", mnt_of(arg));
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return errno == EACCES ? 0 : 2;
}

START_TEST(test_lease_list_and_revoke_by_id)
{
	char mnt[PATH_MAX], id[19] = "", *text, *line;

	begin();
	user_dir(mnt, "alice-mnt", WRITER_UID);
	mount_as(WRITER_UID, mnt);
	ck_assert_int_eq(agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				      write_everything, mnt), 0);
	/* Its holder sees the lease: dataset, uid, a mount the agent made, where. */
	ck_assert_int_eq(vaultctl_as(WRITER_UID, "lease", "list", NULL, NULL), 0);
	text = last_output();
	line = strstr(text, "\n0x");
	ck_assert_msg(line && strstr(line, DATASET) && strstr(line, "2001") &&
		      strstr(line, "agent") && strstr(line, mnt), "%s", text);
	memcpy(id, line + 1, 18);
	free(text);
	/* Another user without the revoke privilege sees nothing of it. */
	ck_assert_int_eq(vaultctl_as(READER_UID, "lease", "list", NULL, NULL), 0);
	text = last_output();
	ck_assert_msg(strstr(text, "0x") == NULL, "%s", text);
	free(text);
	/* ... and cannot revoke it; root (an operator with 'revoke') can, by its id. */
	ck_assert_int_ne(vaultctl_as(READER_UID, "lease", "revoke", "--id", id), 0);
	const char *revoke[] = { fixture_binary("VAULTCTL"), "--agent", ax.socket, "lease",
				 "revoke", "--id", id, NULL };
	ck_assert_int_eq(fixture_spawn(revoke, NULL, 10000), 0);
	bool refused = false;
	for (int waited = 0; !refused && waited < 5000; waited += 100) {
		refused = agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				       read_refused, mnt) == 0;
		if (!refused)
			fixture_sleep_ms(100);
	}
	ck_assert_msg(refused, "the mount still serves 5 s after its lease was revoked");
	umount_as(WRITER_UID, mnt);
}
END_TEST

/* Through a shared mount: the reader reads, cannot write; nobody gets nothing. */
static int shared_reader(void *arg)
{
	char path[PATH_MAX], buf[64];
	int fd;

	snprintf(path, sizeof(path), "%s/buffered.txt", mnt_of(arg));
	fd = open(path, O_RDONLY);
	CHILD_OK(fd);
	CHILD_OK(read(fd, buf, sizeof(buf)));
	close(fd);
	errno = 0;
	if (open(path, O_WRONLY) != -1 || errno != EACCES) {
		fprintf(stderr, "uid %u: open for writing: %s\n", (unsigned)getuid(), strerror(errno));
		return 1;
	}
	return 0;
}

static int shared_outsider(void *arg)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/buffered.txt", mnt_of(arg));
	errno = 0;
	if (open(path, O_RDONLY) != -1 || errno != EACCES) {
		fprintf(stderr, "uid %u: open: want EACCES, got %s\n", (unsigned)getuid(),
			strerror(errno));
		return 1;
	}
	return 0;
}

START_TEST(test_shared_mount_with_share_privilege)
{
	char roles[2048], mnt[PATH_MAX], text[PROTOCOL_TEXT_MAX + 1];

	begin();
	/* The writers may share their mount with whoever the policy lets in. */
	snprintf(roles, sizeof(roles), "%s\n[role sharers]\nusers = %d\nadmin = %s share\n",
		 least_privilege_roles, WRITER_UID, DATASET);
	agent_fixture_set_roles(&ax, roles);
	ck_assert_int_eq(agent_fixture_reload(&ax, text), 0);
	user_dir(mnt, "team-mnt", WRITER_UID);
	ck_assert_int_eq(chmod(mnt, 0755), 0);
	const char *shared[] = { fixture_binary("VAULTCTL"), "mount", "-o", "allow_other",
				 DATASET, mnt, NULL };
	ck_assert_int_eq(run_as_user(WRITER_UID, shared), 0);
	ck_assert(agent_is_mount(mnt));
	ck_assert_int_eq(agent_run_as(WRITER_UID, WRITER_UID, (gid_t[]){ WRITER_UID }, 1,
				      write_everything, mnt), 0);
	/* Every access is still the policy's: ro reads, no role nothing, root nothing. */
	ck_assert_int_eq(agent_run_as(READER_UID, READER_UID, (gid_t[]){ READER_UID }, 1,
				      shared_reader, mnt), 0);
	ck_assert_int_eq(agent_run_as(NOBODY_UID, NOBODY_UID, (gid_t[]){ NOBODY_UID }, 1,
				      shared_outsider, mnt), 0);
	ck_assert_int_eq(shared_outsider(mnt), 0);
	umount_as(WRITER_UID, mnt);
}
END_TEST

static Suite *trust_suite(void)
{
	Suite *s = suite_create("trust");
	TCase *tc = tcase_create("user mounts");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_user_writes_survive_drop_caches_and_remount);
	tcase_add_test(tc, test_reader_refused_at_open_others_kept_out);
	tcase_add_test(tc, test_mount_refusals);
	tcase_add_test(tc, test_lease_list_and_revoke_by_id);
	tcase_add_test(tc, test_shared_mount_with_share_privilege);
	tcase_add_test(tc, test_mount_survives_agent_restart);
	tcase_add_test(tc, test_users_cannot_starve_renewals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return harness_run(trust_suite());
}
