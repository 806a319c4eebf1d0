/*
 * Real-mount crash tests: threads write, rename and remove files while the daemon is
 * killed with SIGKILL at different moments. After each kill the dead mount is cleared
 * and the vault must mount again, every file whose fsync had returned must read back
 * intact, other files may read or fail but never hang, and new files must work.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/mount/fixture.h"

enum { WORKERS = 4, MAX_DURABLE = 4096, NAME_LEN = 64, BLOCK = FIXTURE_BLOCK_SIZE };

struct durable_file {
	char name[NAME_LEN];
	size_t size;
	uint64_t seed;
};

static struct {
	pthread_mutex_t lock;
	struct durable_file files[MAX_DURABLE];
	int count;
	atomic_int round_count;   /* durable files of the current round */
	atomic_bool stop;
} state = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct worker {
	pthread_t thread;
	int round;
	int index;
	int operations;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return x;
}

static uint64_t seed_for(int round, int thread, int index)
{
	return mix((uint64_t)round << 40 | (uint64_t)thread << 32 | (uint64_t)index);
}

static size_t size_for(uint64_t seed, int i)
{
	if (i % 9 == 8)
		return 2 * 1024 * 1024 + (size_t)(seed % 100000); /* now and then a larger one */
	return 1 + (size_t)(seed % (300 * 1024));
}

/* Write a file and, for durable ones, fsync it (and rename it into place) and fsync its
 * directory before recording it. */
static int write_one(struct worker *worker, int i)
{
	char name[NAME_LEN], path[PATH_MAX];
	uint64_t seed = seed_for(worker->round, worker->index, i);
	size_t size = size_for(seed, i);
	bool durable = i % 3 == 0;
	snprintf(name, sizeof(name), "r%d-t%d-%d%s", worker->round, worker->index, i,
		 durable ? "-durable" : "");
	snprintf(path, sizeof(path), "%s/%s", fx.mnt, name);
	/* half the durable files are saved the careful way: temp file, fsync, rename */
	bool via_temp = durable && i % 2 == 1;
	char temp[PATH_MAX + 8];
	snprintf(temp, sizeof(temp), "%s/r%d-t%d-%d.tmp", fx.mnt, worker->round, worker->index, i);
	int result = pattern_write(via_temp ? temp : path, size, seed, durable);
	if (result != 0)
		return result;
	if (via_temp && rename(temp, path) == -1)
		return -errno;
	if (!durable) {
		char renamed[PATH_MAX + 8];
		snprintf(renamed, sizeof(renamed), "%s.moved", path);
		if (i % 3 == 1 && rename(path, renamed) == -1)
			return -errno;
		if (i % 3 == 2) {
			snprintf(path, sizeof(path), "%s/r%d-t%d-%d.moved", fx.mnt, worker->round,
				 worker->index, i - 1);
			if (unlink(path) == -1 && errno != ENOENT)
				return -errno;
		}
		if (i % 10 == 5) {
			snprintf(path, sizeof(path), "%s/r%d-t%d-dir%d", fx.mnt, worker->round,
				 worker->index, i);
			if (mkdir(path, 0755) == -1)
				return -errno;
		}
		return 0;
	}
	int dir = open(fx.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir == -1)
		return -errno;
	result = fsync(dir) == -1 ? -errno : 0;
	close(dir);
	if (result != 0)
		return result;
	pthread_mutex_lock(&state.lock);
	if (state.count < MAX_DURABLE) {
		struct durable_file *file = &state.files[state.count++];
		snprintf(file->name, sizeof(file->name), "%s", name);
		file->size = size;
		file->seed = seed;
		state.round_count++;
	}
	pthread_mutex_unlock(&state.lock);
	return 0;
}

static void *work(void *arg)
{
	struct worker *worker = arg;
	for (int i = 0; !state.stop; i++) {
		if (write_one(worker, i) != 0)
			break; /* the daemon is gone: ENOTCONN and friends */
		worker->operations++;
	}
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Every durable file intact; every other entry reads or fails, but answers. */
static void verify_after_crash(int round)
{
	for (int i = 0; i < state.count; i++) {
		const struct durable_file *file = &state.files[i];
		int result = pattern_verify_file(mnt_path("%s", file->name), file->size, file->seed);
		ck_assert_msg(result == 0, "round %d: durable file %s (%zu bytes): %s", round,
			      file->name, file->size, strerror(-result));
	}
	DIR *dir = opendir(fx.mnt);
	ck_assert_msg(dir != NULL, "round %d: opendir: %s", round, strerror(errno));
	struct dirent *entry;
	int entries = 0;
	uint8_t *buf = malloc(BLOCK);
	ck_assert(buf != NULL);
	while ((entry = readdir(dir)) != NULL) {
		entries++;
		int file_round, thread, index;
		if (entry->d_type != DT_REG ||
		    sscanf(entry->d_name, "r%d-t%d-%d", &file_round, &thread, &index) != 3)
			continue;
		int fd = open(mnt_path("%s", entry->d_name), O_RDONLY | O_CLOEXEC);
		if (fd == -1)
			continue;
		/* it may fail or come up short, but what it reads is the data or a hole */
		uint64_t seed = seed_for(file_round, thread, index);
		size_t offset = 0;
		ssize_t n;
		while ((n = read(fd, buf, BLOCK)) > 0) {
			bool hole = true;
			for (ssize_t i = 0; i < n && hole; i++)
				hole = buf[i] == 0;
			ck_assert_msg(hole || pattern_check(buf, (size_t)n, seed, offset) == -1,
				      "round %d: %s reads wrong data at %zu", round, entry->d_name, offset);
			offset += (size_t)n;
		}
		ck_assert_msg(offset <= size_for(seed, index), "round %d: %s grew to %zu bytes",
			      round, entry->d_name, offset);
		close(fd);
	}
	free(buf);
	closedir(dir);
	ck_assert_int_ge(entries, state.count + 2);
	/* the mount takes new files */
	const char *fresh = mnt_path("after-round-%d", round);
	ck_assert_int_eq(pattern_write_file(fresh, 123456, 7000 + (uint64_t)round), 0);
	ck_assert_int_eq(pattern_verify_file(fresh, 123456, 7000 + (uint64_t)round), 0);
	ck_assert_int_eq(mkdir(mnt_path("after-dir-%d", round), 0755), 0);
}

START_TEST(test_kill_during_writes)
{
	SKIP_IF_PLAIN();
	const long kill_after_ms[] = { 0, 20, 80, 200, 400, 700, 1200 };
	const int rounds = (int)(sizeof(kill_after_ms) / sizeof(kill_after_ms[0]));
	for (int round = 0; round < rounds; round++) {
		struct worker workers[WORKERS];
		state.stop = false;
		state.round_count = 0;
		for (int i = 0; i < WORKERS; i++) {
			workers[i] = (struct worker){ .round = round, .index = i };
			ck_assert_int_eq(pthread_create(&workers[i].thread, NULL, work, &workers[i]), 0);
		}
		/* round 0 kills as soon as the first file is durable, the others later */
		for (int waited = 0; state.round_count == 0 && waited < 20000; waited += 5)
			sleep_ms(5);
		ck_assert_msg(state.round_count > 0, "round %d: no file became durable", round);
		sleep_ms(kill_after_ms[round]);
		fixture_kill_daemon(&fx);
		state.stop = true;
		int operations = 0;
		for (int i = 0; i < WORKERS; i++) {
			pthread_join(workers[i].thread, NULL);
			operations += workers[i].operations;
		}
		fprintf(stderr, "round %d: killed after %d operations, %d durable files so far\n",
			round, operations, state.count);
		fixture_clear_dead_mount(&fx);
		fixture_mount(&fx);
		verify_after_crash(round);
	}
	/* and a clean unmount and mount see the same */
	fixture_remount(&fx);
	for (int i = 0; i < state.count; i++)
		ck_assert_int_eq(pattern_verify_file(mnt_path("%s", state.files[i].name),
						     state.files[i].size, state.files[i].seed), 0);
}
END_TEST

/* A daemon killed with files open for writing and a big file half written. */
START_TEST(test_kill_with_open_files)
{
	SKIP_IF_PLAIN();
	ck_assert_int_eq(pattern_write_file(mnt_path("base"), 1 << 20, 1), 0);
	int open_fds[3];
	for (int i = 0; i < 3; i++) {
		open_fds[i] = open(mnt_path("open-%d", i), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
		ck_assert_int_ge(open_fds[i], 0);
		uint8_t data[10000];
		pattern_fill(data, sizeof(data), 50 + (uint64_t)i, 0);
		ck_assert_int_eq(pwrite_full(open_fds[i], data, sizeof(data), 0), (ssize_t)sizeof(data));
	}
	ck_assert_int_eq(truncate(mnt_path("base"), 3000), 0); /* not synced: may or may not stick */
	fixture_kill_daemon(&fx);
	for (int i = 0; i < 3; i++)
		close(open_fds[i]);
	fixture_clear_dead_mount(&fx);
	fixture_mount(&fx);
	struct stat st;
	ck_assert_int_eq(stat(mnt_path("base"), &st), 0);
	ck_assert_msg(st.st_size == 3000 || st.st_size == 1 << 20, "base has %lld bytes",
		      (long long)st.st_size);
	ck_assert_int_eq(pattern_verify_file(mnt_path("base"), (size_t)st.st_size, 1), 0);
	ck_assert_int_eq(pattern_write_file(mnt_path("new"), 5000, 2), 0);
	fixture_remount(&fx);
	ck_assert_int_eq(pattern_verify_file(mnt_path("new"), 5000, 2), 0);
}
END_TEST

/*
 * Holes filled after an fsync (which brings the recorded object length back to the real
 * one): the object grows inside the file's size, and a kill right after must still leave
 * a file that reads, never an object "longer than its record".
 */
START_TEST(test_kill_after_filling_holes)
{
	SKIP_IF_PLAIN();
	uint8_t block[4096];
	int fd = open(mnt_path("sparse"), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
	ck_assert_int_eq(fsync(fd), 0);
	pattern_fill(block, sizeof(block), 7, 0);
	ck_assert_int_eq(pwrite_full(fd, block, sizeof(block), 100 * 4096), (ssize_t)sizeof(block));
	ck_assert_int_eq(fsync(fd), 0);
	pattern_fill(block, sizeof(block), 8, 0);
	ck_assert_int_eq(pwrite_full(fd, block, sizeof(block), 200 * 4096), (ssize_t)sizeof(block));
	fixture_kill_daemon(&fx);
	close(fd);
	fixture_clear_dead_mount(&fx);
	fixture_mount(&fx);
	static uint8_t whole[1 << 20];
	fd = open(mnt_path("sparse"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, whole, sizeof(whole)), (ssize_t)sizeof(whole));
	close(fd);
	ck_assert_int_eq(pattern_check(whole + 100 * 4096, 4096, 7, 0), -1);   /* fsynced */
	uint8_t zeros[4096] = { 0 };
	ck_assert(pattern_check(whole + 200 * 4096, 4096, 8, 0) == -1 ||
		  memcmp(whole + 200 * 4096, zeros, sizeof(zeros)) == 0);      /* either */
}
END_TEST

/* Closed without fsync: the records are stored within milliseconds of the close (by the
 * flusher, several files per commit), so a kill a second later loses none of them. */
START_TEST(test_kill_after_close)
{
	SKIP_IF_PLAIN();
	enum { FILES = 40 };
	for (int i = 0; i < FILES; i++)
		ck_assert_int_eq(pattern_write(mnt_path("closed-%d", i), 3000 + 1000 * (size_t)i,
					       100 + (uint64_t)i, false), 0);
	sleep_ms(1000);
	fixture_kill_daemon(&fx);
	fixture_clear_dead_mount(&fx);
	fixture_mount(&fx);
	for (int i = 0; i < FILES; i++)
		ck_assert_int_eq(pattern_verify_file(mnt_path("closed-%d", i), 3000 + 1000 * (size_t)i,
						     100 + (uint64_t)i), 0);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *suite = suite_create("mount_crash");
	TCase *tcase = tcase_create("kill");
	tcase_add_checked_fixture(tcase, fixture_setup, fixture_teardown);
	tcase_set_timeout(tcase, 180);
	tcase_add_test(tcase, test_kill_during_writes);
	tcase_add_test(tcase, test_kill_with_open_files);
	tcase_add_test(tcase, test_kill_after_close);
	tcase_add_test(tcase, test_kill_after_filling_holes);
	suite_add_tcase(suite, tcase);
	return suite;
}

int main(void)
{
	return harness_run(crash_suite());
}
