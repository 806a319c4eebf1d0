/*
 * Real-mount tests of POSIX fidelity, as root on an allow_other key-file mount (the way an
 * outside conformance suite runs): device nodes, FIFOs and sockets are stored with their
 * type and rdev and stay inert (the mount is always nodev); fallocate in each mode the
 * daemon supports, checked byte for byte against a reference; and times set by the kernel
 * (writeback cache) or by utimensat come back exactly after a remount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>  /* fallocate, FALLOC_FL_* */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

#define BLOCK FIXTURE_BLOCK_SIZE
#define MIB (1024L * 1024L)
#define UNPRIVILEGED_UID 4242

static struct stat stat_of(const char *path)
{
	struct stat st;
	ck_assert_msg(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
	return st;
}

static int open_or_fail(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

/* ---- device nodes, FIFOs, sockets ---- */

struct special {
	const char *name;
	mode_t mode;
	unsigned char d_type;
};

static const struct special specials[] = {
	{ "null", S_IFCHR | 0666, DT_CHR },
	{ "disk", S_IFBLK | 0640, DT_BLK },
	{ "fifo", S_IFIFO | 0620, DT_FIFO },
	{ "sock", S_IFSOCK | 0755, DT_SOCK },
};

static dev_t special_rdev(size_t i)
{
	/* A wide minor (above 8 bits) and a major above 255 check the whole encoding. */
	return i == 0 ? makedev(1, 3) : i == 1 ? makedev(259, 65537) : 0;
}

static void assert_specials(const char *when)
{
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		struct stat st = stat_of(mnt_path("dev/%s", specials[i].name));
		ck_assert_msg(st.st_mode == specials[i].mode, "%s %s: mode %o, want %o", when,
			      specials[i].name, (unsigned)st.st_mode, (unsigned)specials[i].mode);
		ck_assert_msg(st.st_rdev == special_rdev(i), "%s %s: rdev %u:%u, want %u:%u", when,
			      specials[i].name, major(st.st_rdev), minor(st.st_rdev),
			      major(special_rdev(i)), minor(special_rdev(i)));
		ck_assert_int_eq(st.st_uid, 0);
		ck_assert_int_eq(st.st_size, 0);
	}
	/* readdir names the types too */
	DIR *dir = opendir(mnt_path("dev"));
	ck_assert_ptr_nonnull(dir);
	size_t seen = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
			if (strcmp(entry->d_name, specials[i].name) != 0)
				continue;
			ck_assert_msg(entry->d_type == specials[i].d_type, "%s %s: d_type %d",
				      when, entry->d_name, entry->d_type);
			seen++;
		}
	}
	closedir(dir);
	ck_assert_msg(seen == sizeof(specials) / sizeof(specials[0]), "%s: %zu entries", when,
		      seen);
}

/* The mount is nodev: a stored device node opens nothing, however its mode reads. */
static void assert_devices_inert(const char *when)
{
	const char *nodes[] = { "null", "disk" };
	for (size_t i = 0; i < 2; i++) {
		const char *path = mnt_path("dev/%s", nodes[i]);
		errno = 0;
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
		int err = errno;
		if (fd >= 0)
			close(fd);
		ck_assert_msg(fd < 0 && err == EACCES, "%s: open %s: got %d/%s, want EACCES", when,
			      nodes[i], fd, strerror(err));
	}
}

static int try_mknod_device(void *arg)
{
	const char *path = arg;
	if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		fprintf(stderr, "an unprivileged user made a device node\n");
		return 1;
	}
	if (errno != EPERM) {
		fprintf(stderr, "unprivileged mknod: %s, want EPERM\n", strerror(errno));
		return 1;
	}
	/* FIFOs are anyone's */
	char fifo[PATH_MAX];
	snprintf(fifo, sizeof(fifo), "%s.fifo", path);
	if (mknod(fifo, S_IFIFO | 0600, 0) != 0) {
		fprintf(stderr, "unprivileged mkfifo: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

START_TEST(test_special_files)
{
	SKIP_IF_PLAIN();
	ck_assert_int_eq(mkdir(mnt_path("dev"), 0777), 0);
	ck_assert_int_eq(chmod(mnt_path("dev"), 0777), 0);
	umask(0);
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		const char *path = mnt_path("dev/%s", specials[i].name);
		ck_assert_msg(mknod(path, specials[i].mode, special_rdev(i)) == 0, "mknod %s: %s",
			      specials[i].name, strerror(errno));
	}
	umask(022);
	assert_specials("created");
	assert_devices_inert("created");

	/* A FIFO works as a pipe, locally in the kernel. */
	int fifo = open_or_fail(mnt_path("dev/fifo"), O_RDWR | O_NONBLOCK);
	char got[8] = { 0 };
	ck_assert_int_eq(write(fifo, "ping", 4), 4);
	ck_assert_int_eq(read(fifo, got, sizeof(got)), 4);
	ck_assert_str_eq(got, "ping");
	close(fifo);

	/* bind(2) makes a socket node, and a client reaches the listener through it. */
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	ck_assert_int_lt(strlen(mnt_path("dev/bound")), sizeof(addr.sun_path));
	strcpy(addr.sun_path, mnt_path("dev/bound"));
	int server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert(server >= 0 && client >= 0);
	ck_assert_msg(bind(server, (struct sockaddr *)&addr, sizeof(addr)) == 0, "bind: %s",
		      strerror(errno));
	ck_assert_int_eq(listen(server, 1), 0);
	ck_assert_msg(connect(client, (struct sockaddr *)&addr, sizeof(addr)) == 0,
		      "connect: %s", strerror(errno));
	close(client);
	close(server);
	ck_assert(S_ISSOCK(stat_of(mnt_path("dev/bound")).st_mode));

	/* Only root makes device nodes (the kernel's CAP_MKNOD check). */
	ck_assert_int_eq(fixture_run_as(UNPRIVILEGED_UID, UNPRIVILEGED_UID, try_mknod_device,
					(void *)mnt_path("dev/user")),
			 0);
	ck_assert_errno(lstat(mnt_path("dev/user"), &(struct stat){ 0 }), ENOENT);

	/* Links, renames and removal treat them like any other inode. */
	ck_assert_int_eq(link(mnt_path("dev/null"), mnt_path("dev/null2")), 0);
	ck_assert_int_eq(stat_of(mnt_path("dev/null")).st_nlink, 2);
	ck_assert_int_eq(rename(mnt_path("dev/null2"), mnt_path("null3")), 0);

	fixture_remount(&fx);
	assert_specials("after remount");
	assert_devices_inert("after remount");
	ck_assert(S_ISSOCK(stat_of(mnt_path("dev/bound")).st_mode));
	ck_assert(S_ISFIFO(stat_of(mnt_path("dev/user.fifo")).st_mode));
	struct stat linked = stat_of(mnt_path("null3"));
	ck_assert(S_ISCHR(linked.st_mode));
	ck_assert_int_eq(linked.st_rdev, makedev(1, 3));
	ck_assert_int_eq(linked.st_nlink, 2);
	ck_assert_int_eq(unlink(mnt_path("null3")), 0);
	ck_assert_int_eq(unlink(mnt_path("dev/bound")), 0);
	ck_assert_int_eq(stat_of(mnt_path("dev/null")).st_nlink, 1);
	/* chmod and chown of a device node keep its rdev */
	ck_assert_int_eq(chmod(mnt_path("dev/disk"), 0600), 0);
	ck_assert_int_eq(chown(mnt_path("dev/disk"), 7, 8), 0);
	fixture_remount(&fx);
	struct stat disk = stat_of(mnt_path("dev/disk"));
	ck_assert_int_eq(disk.st_mode, S_IFBLK | 0600);
	ck_assert_int_eq(disk.st_uid, 7);
	ck_assert_int_eq(disk.st_rdev, makedev(259, 65537));
	ck_assert_errno(lstat(mnt_path("dev/bound"), &(struct stat){ 0 }), ENOENT);
}
END_TEST

/* ---- fallocate ---- */

/* A file under test and the bytes it must hold. */
struct model {
	const char *path;
	uint8_t *bytes;
	size_t size;
	size_t cap;
};

static void model_init(struct model *m, const char *path, size_t cap)
{
	m->path = path;
	m->bytes = calloc(1, cap);
	m->size = 0;
	m->cap = cap;
	ck_assert_ptr_nonnull(m->bytes);
}

static void model_write(struct model *m, int fd, size_t offset, size_t len, uint64_t seed)
{
	ck_assert_uint_le(offset + len, m->cap);
	pattern_fill(m->bytes + offset, len, seed, offset);
	ck_assert_int_eq(pwrite_full(fd, m->bytes + offset, len, (off_t)offset), (ssize_t)len);
	if (offset + len > m->size)
		m->size = offset + len;
}

/* fallocate on the file and the same on the model. */
static void model_fallocate(struct model *m, int fd, int mode, size_t offset, size_t len)
{
	ck_assert_msg(fallocate(fd, mode, (off_t)offset, (off_t)len) == 0,
		      "fallocate(mode %#x, %zu, %zu): %s", mode, offset, len, strerror(errno));
	size_t end = offset + len;
	ck_assert_uint_le(end, m->cap);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		size_t zero_end = end;
		if ((mode & FALLOC_FL_KEEP_SIZE) && zero_end > m->size)
			zero_end = m->size;
		if (offset < zero_end)
			memset(m->bytes + offset, 0, zero_end - offset);
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > m->size)
		m->size = end;
}

static void model_check(const struct model *m, const char *when)
{
	struct stat st = stat_of(m->path);
	ck_assert_msg((size_t)st.st_size == m->size, "%s: size %lld, want %zu", when,
		      (long long)st.st_size, m->size);
	uint8_t *got = malloc(m->size + 1);
	ck_assert_ptr_nonnull(got);
	int fd = open_or_fail(m->path, O_RDONLY);
	ck_assert_int_eq(pread_full(fd, got, m->size + 1, 0), (ssize_t)m->size);
	close(fd);
	if (memcmp(got, m->bytes, m->size) != 0) {
		size_t i = 0;
		while (got[i] == m->bytes[i])
			i++;
		ck_abort_msg("%s: byte %zu is 0x%02x, want 0x%02x", when, i, got[i], m->bytes[i]);
	}
	free(got);
}

static blkcnt_t blocks_of(const char *path)
{
	return stat_of(path).st_blocks;
}

/* Mode 0: the range reads as zeros and the size grows to its end; a range inside the
 * file changes nothing. Unaligned, across block boundaries. */
START_TEST(test_fallocate_allocate)
{
	struct model m;
	model_init(&m, mnt_path("alloc"), 64 * BLOCK);
	int fd = open_or_fail(m.path, O_CREAT | O_RDWR);
	model_write(&m, fd, 0, 5, 1);
	model_fallocate(&m, fd, 0, 1000, 3 * BLOCK + 500);      /* past the end: grows */
	ck_assert_uint_eq(m.size, 1000 + 3 * BLOCK + 500);
	model_check(&m, "grown");
	model_fallocate(&m, fd, 0, 10, 2 * BLOCK);              /* inside: nothing changes */
	model_check(&m, "inside");
	model_write(&m, fd, 2 * BLOCK - 7, 20, 2);              /* writes into the range */
	model_fallocate(&m, fd, 0, 5 * BLOCK + 3, 9 * BLOCK + 11); /* a gap, then more */
	model_write(&m, fd, 12 * BLOCK + 100, 50, 3);
	model_check(&m, "written");
	close(fd);
	fixture_remount(&fx);
	model_check(&m, "after remount");
	/* still writable and growable after the remount */
	fd = open_or_fail(m.path, O_RDWR);
	model_write(&m, fd, 14 * BLOCK - 1, 2, 4);
	model_fallocate(&m, fd, 0, 20 * BLOCK + 1, 1);
	close(fd);
	fixture_remount(&fx);
	model_check(&m, "grown after remount");
	free(m.bytes);
}
END_TEST

/* KEEP_SIZE: nothing visible changes, even past the end; a later extension reads zeros
 * over the reserved range. */
START_TEST(test_fallocate_keep_size)
{
	struct model m;
	model_init(&m, mnt_path("keep"), 64 * BLOCK);
	int fd = open_or_fail(m.path, O_CREAT | O_RDWR);
	model_write(&m, fd, 0, 10000, 5);
	model_fallocate(&m, fd, FALLOC_FL_KEEP_SIZE, 8000, 20000);
	model_check(&m, "kept");
	model_fallocate(&m, fd, FALLOC_FL_KEEP_SIZE, 0, 40 * BLOCK);
	model_check(&m, "kept, larger");
	close(fd);
	fixture_remount(&fx);
	model_check(&m, "after remount");
	fd = open_or_fail(m.path, O_RDWR);
	model_write(&m, fd, 25000, 1, 6);
	ck_assert_int_eq(ftruncate(fd, 30 * BLOCK + 9), 0);
	m.size = 30 * BLOCK + 9;
	close(fd);
	model_check(&m, "extended");
	fixture_remount(&fx);
	model_check(&m, "extended, after remount");
	free(m.bytes);
}
END_TEST

/* PUNCH_HOLE: the range reads as zeros, the size stays, the bytes around it stay, and
 * whole punched blocks are no longer counted in st_blocks. */
START_TEST(test_fallocate_punch_hole)
{
	struct model m;
	model_init(&m, mnt_path("punch"), 64 * BLOCK);
	int fd = open_or_fail(m.path, O_CREAT | O_RDWR);
	model_write(&m, fd, 0, 5 * BLOCK + 100, 7);
	close(fd);
	blkcnt_t before = blocks_of(m.path);
	ck_assert_int_eq(before, 6 * (BLOCK / 512));
	fd = open_or_fail(m.path, O_RDWR);
	/* bytes 1000..10999: block 1 whole, blocks 0 and 2 in part */
	model_fallocate(&m, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 10000);
	model_check(&m, "punched");
	ck_assert_msg(blocks_of(m.path) == before - BLOCK / 512, "st_blocks %lld, want %lld",
		      (long long)blocks_of(m.path), (long long)(before - BLOCK / 512));
	/* within one block */
	model_fallocate(&m, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * BLOCK + 5, 17);
	/* over the end: the tail goes, the size stays */
	model_fallocate(&m, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * BLOCK + 7,
			10 * BLOCK);
	/* beyond the end: nothing happens */
	model_fallocate(&m, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 30 * BLOCK, BLOCK);
	model_check(&m, "punched more");
	/* whole blocks, aligned, over a block already punched */
	model_fallocate(&m, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 3 * BLOCK);
	close(fd);
	model_check(&m, "aligned");
	fixture_remount(&fx);
	model_check(&m, "after remount");
	/* Of blocks 0..5, 0..2 are punched whole, and so is 5, the tail block, since the
	 * range covered the end of the file; 3 and 4 only in part. */
	ck_assert_int_eq(blocks_of(m.path), 2 * (BLOCK / 512));
	/* writing into a punched range reads back */
	fd = open_or_fail(m.path, O_RDWR);
	model_write(&m, fd, BLOCK - 3, 10, 8);
	close(fd);
	fixture_remount(&fx);
	model_check(&m, "rewritten");
	/* punching a file's every block leaves a file of zeros of the same size */
	fd = open_or_fail(m.path, O_RDWR);
	model_fallocate(&m, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, m.size);
	close(fd);
	ck_assert_int_eq(blocks_of(m.path), 0);
	fixture_remount(&fx);
	model_check(&m, "all punched");
	ck_assert_int_eq(blocks_of(m.path), 0);
	free(m.bytes);
}
END_TEST

/* ZERO_RANGE: the range reads as zeros; without KEEP_SIZE the size grows to its end. */
START_TEST(test_fallocate_zero_range)
{
	struct model m;
	model_init(&m, mnt_path("zero"), 64 * BLOCK);
	int fd = open_or_fail(m.path, O_CREAT | O_RDWR);
	model_write(&m, fd, 0, 5 * BLOCK + 100, 9);
	model_fallocate(&m, fd, FALLOC_FL_ZERO_RANGE, 2 * BLOCK - 1, 2);  /* across a boundary */
	model_fallocate(&m, fd, FALLOC_FL_ZERO_RANGE, 3 * BLOCK + 1, BLOCK + 10);
	model_check(&m, "zeroed");
	model_fallocate(&m, fd, FALLOC_FL_ZERO_RANGE, 5 * BLOCK, 3 * BLOCK + 77);  /* grows */
	ck_assert_uint_eq(m.size, 8 * BLOCK + 77);
	model_fallocate(&m, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 7 * BLOCK, 9 * BLOCK);
	ck_assert_uint_eq(m.size, 8 * BLOCK + 77);
	model_check(&m, "grown");
	close(fd);
	fixture_remount(&fx);
	model_check(&m, "after remount");
	fd = open_or_fail(m.path, O_RDWR);
	model_write(&m, fd, 3 * BLOCK + 2, BLOCK, 10);
	model_fallocate(&m, fd, FALLOC_FL_ZERO_RANGE, 0, 20 * BLOCK + 3);
	model_write(&m, fd, 19 * BLOCK, 7, 11);
	close(fd);
	fixture_remount(&fx);
	model_check(&m, "zeroed again");
	free(m.bytes);
}
END_TEST

/* Punching and zeroing many separate ranges: the hole list has a bound, past which the
 * daemon writes zeros instead; the file reads the same either way. */
START_TEST(test_fallocate_many_holes)
{
	enum { BLOCKS = 2600 };
	struct model m;
	model_init(&m, mnt_path("many"), BLOCKS * BLOCK);
	int fd = open_or_fail(m.path, O_CREAT | O_RDWR);
	model_write(&m, fd, 0, BLOCKS * BLOCK, 12);
	for (size_t i = 1; i < BLOCKS; i += 2)
		model_fallocate(&m, fd, (i % 4 == 1 ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
					FALLOC_FL_KEEP_SIZE, i * BLOCK, BLOCK);
	close(fd);
	model_check(&m, "punched");
	fixture_remount(&fx);
	model_check(&m, "after remount");
	free(m.bytes);
}
END_TEST

/* Whether the file system under dir can reserve space without writing. */
static bool backing_can_reserve(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/reserve-probe", dir);
	int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	bool can = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, BLOCK) == 0;
	close(fd);
	unlink(path);
	return can;
}

static void assert_usage(uint64_t got, uint64_t low, uint64_t high, const char *what)
{
	ck_assert_msg(got >= low && got <= high, "%s: backing store uses %llu bytes, want %llu..%llu",
		      what, (unsigned long long)got, (unsigned long long)low,
		      (unsigned long long)high);
}

/* As vaultfs(8) says: on a backing file system that can, allocation reserves the space
 * in the object (past its end too, with KEEP_SIZE), a punched hole gives it back, a zeroed
 * range keeps it, and a truncate frees what was reserved past the end. */
START_TEST(test_fallocate_reserves_space)
{
	SKIP_IF_PLAIN();
	const char *backing = fixture_backing_dir(&fx);
	if (!backing_can_reserve(backing)) {
		fprintf(stderr, "skip %s: the backing file system cannot reserve space\n", __func__);
		return;
	}
	const uint64_t slack = 4 * MIB;
	const char *path = mnt_path("reserved");
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	uint64_t before = fixture_disk_usage(backing);
	ck_assert_int_eq(fallocate(fd, 0, 0, 32 * MIB), 0);
	uint64_t reserved = fixture_disk_usage(backing);
	assert_usage(reserved, before + 32 * MIB, before + 32 * MIB + slack, "allocated");
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 32 * MIB, 16 * MIB), 0);
	uint64_t beyond = fixture_disk_usage(backing);
	assert_usage(beyond, reserved + 16 * MIB, reserved + 16 * MIB + slack, "past the end");
	ck_assert_int_eq(stat_of(path).st_size, 32 * MIB);
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 32 * MIB), 0);
	assert_usage(fixture_disk_usage(backing), before + 16 * MIB, before + 16 * MIB + slack,
		     "punched");
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	assert_usage(fixture_disk_usage(backing), 0, before + slack, "truncated");
	close(fd);

	/* Zeroing written blocks keeps their space. */
	ck_assert_int_eq(pattern_write_file(path, 8 * MIB, 14), 0);
	uint64_t written = fixture_disk_usage(backing);
	fd = open_or_fail(path, O_RDWR);
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 8 * MIB), 0);
	close(fd);
	assert_usage(fixture_disk_usage(backing), written - slack, written + slack, "zeroed");
	ck_assert_int_eq(blocks_of(path), 0);
}
END_TEST

/* What the kernel refuses before the daemon sees it, and what the daemon refuses. */
START_TEST(test_fallocate_refusals)
{
	const char *path = mnt_path("refused");
	int fd = open_or_fail(path, O_CREAT | O_RDWR);
	ck_assert_int_eq(pwrite(fd, "data", 4, 0), 4);
	ck_assert_errno(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 1), EOPNOTSUPP);
	if (!fixture_plain_mode()) {
		/* modes vaultfs does not support (a local file system may) */
		ck_assert_errno(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, BLOCK), EOPNOTSUPP);
		ck_assert_errno(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, BLOCK), EOPNOTSUPP);
	}
	ck_assert_errno(fallocate(fd, 0, -1, 1), EINVAL);
	ck_assert_errno(fallocate(fd, 0, 0, 0), EINVAL);
	ck_assert_errno(fallocate(fd, 0, (off_t)1 << 60, BLOCK), EFBIG);
	close(fd);
	fd = open_or_fail(path, O_RDONLY);
	ck_assert_errno(fallocate(fd, 0, 0, BLOCK), EBADF);
	close(fd);
	/* posix_fallocate goes through fallocate now, not glibc's emulation */
	fd = open_or_fail(path, O_RDWR);
	ck_assert_int_eq(posix_fallocate(fd, 0, MIB), 0);
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, BLOCK), 0);
	close(fd);
	ck_assert_int_eq(stat_of(path).st_size, MIB);
}
END_TEST

/* ---- times ---- */

static void assert_same_time(struct timespec got, struct timespec want, const char *what,
			     const char *name)
{
	ck_assert_msg(got.tv_sec == want.tv_sec && got.tv_nsec == want.tv_nsec,
		      "%s %s: %lld.%09ld, was %lld.%09ld before the remount", name, what,
		      (long long)got.tv_sec, got.tv_nsec, (long long)want.tv_sec, want.tv_nsec);
}

/*
 * With the writeback cache the kernel keeps a written file's mtime and ctime and sends
 * them when it writes the inode back - possibly while WRITEs of the same file are still
 * being served (syncfs does that, and so does the kernel's periodic writeback). What
 * stat showed must be what comes back after a remount, to the nanosecond, as must
 * times set explicitly.
 */
START_TEST(test_times_survive_remount)
{
	enum { FILES = 12, CHUNK = 256 * 1024, CHUNKS = 8 };
	uint8_t *chunk = malloc(CHUNK);
	int fds[FILES];
	struct stat before[FILES];
	ck_assert_ptr_nonnull(chunk);
	pattern_fill(chunk, CHUNK, 13, 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < FILES; i++) {
			fds[i] = open_or_fail(mnt_path("t%d", i), O_CREAT | O_RDWR);
			for (int c = 0; c < CHUNKS; c++)
				ck_assert_int_eq(pwrite_full(fds[i], chunk, CHUNK,
							     (off_t)(round * CHUNKS + c) * CHUNK),
						 CHUNK);
		}
		/* Every third file gets explicit times over its dirty pages. */
		for (int i = 0; i < FILES; i += 3) {
			struct timespec set[2] = { { 1000000000 + i, 111111111 * (i % 9) },
						   { 1500000000 + i, 987654321 - i } };
			ck_assert_int_eq(futimens(fds[i], set), 0);
		}
		ck_assert_int_eq(syncfs(fds[0]), 0);
		for (int i = 0; i < FILES; i++)
			close(fds[i]);
		/* The same through a truncate and a small write, closed without syncfs, and
		 * a truncate to the size a file has (which changes no time). */
		int fd = open_or_fail(mnt_path("t1"), O_RDWR);
		ck_assert_int_eq(ftruncate(fd, 3 * CHUNK + 5), 0);
		ck_assert_int_eq(pwrite(fd, "x", 1, 17), 1);
		close(fd);
		ck_assert_int_eq(truncate(mnt_path("t2"), stat_of(mnt_path("t2")).st_size), 0);
		for (int i = 0; i < FILES; i++)
			before[i] = stat_of(mnt_path("t%d", i));
		fixture_remount(&fx);
		for (int i = 0; i < FILES; i++) {
			struct stat after = stat_of(mnt_path("t%d", i));
			char name[32];
			snprintf(name, sizeof(name), "round %d file t%d", round, i);
			ck_assert_int_eq(after.st_size, before[i].st_size);
			assert_same_time(after.st_mtim, before[i].st_mtim, "mtime", name);
			assert_same_time(after.st_ctim, before[i].st_ctim, "ctime", name);
			if (i % 3 == 0) {
				ck_assert_int_eq(after.st_mtim.tv_sec, 1500000000 + i);
				ck_assert_int_eq(after.st_mtim.tv_nsec, 987654321 - i);
			}
		}
	}
	free(chunk);
}
END_TEST

static Suite *posix_suite(void)
{
	Suite *suite = suite_create("mount_posix");
	TCase *nodes = tcase_create("special_files");
	tcase_add_checked_fixture(nodes, fixture_setup_allow_other, fixture_teardown);
	tcase_set_timeout(nodes, 120);
	tcase_add_test(nodes, test_special_files);
	suite_add_tcase(suite, nodes);

	TCase *allocate = tcase_create("fallocate");
	tcase_add_checked_fixture(allocate, fixture_setup_allow_other, fixture_teardown);
	tcase_set_timeout(allocate, 120);
	tcase_add_test(allocate, test_fallocate_allocate);
	tcase_add_test(allocate, test_fallocate_keep_size);
	tcase_add_test(allocate, test_fallocate_punch_hole);
	tcase_add_test(allocate, test_fallocate_zero_range);
	tcase_add_test(allocate, test_fallocate_many_holes);
	tcase_add_test(allocate, test_fallocate_reserves_space);
	tcase_add_test(allocate, test_fallocate_refusals);
	suite_add_tcase(suite, allocate);

	TCase *times = tcase_create("times");
	tcase_add_checked_fixture(times, fixture_setup_allow_other, fixture_teardown);
	tcase_set_timeout(times, 120);
	tcase_add_test(times, test_times_survive_remount);
	suite_add_tcase(suite, times);
	return suite;
}

int main(void)
{
	return harness_run(posix_suite());
}
