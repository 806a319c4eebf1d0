/*
 * Secret memory and process hardening on top of libsodium's guarded allocator, plus a
 * registry of every live region so that a forked child locks them again (the kernel
 * does not pass mlock on to a child). Keys only ever live in secret_alloc() memory;
 * this file and crypto.c are the only places that include <sodium.h>.
 */
#include "lib/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <sodium.h>

/*
 * sodium_malloc() locks the pages from the 16-byte canary it puts just before the
 * returned pointer up to the guard page after the len bytes (layout in <sodium/utils.h>):
 * a region is locked again over that same span, so that no page of it is left out.
 */
#define SODIUM_CANARY_LEN 16

/*
 * The registry: an open-addressing hash set (linear probing, at most half full) from
 * the pointer secret_alloc() returned to its length. One lock guards it; the fork
 * handlers hold that lock across fork(), so the child finds the table consistent.
 */
#define REGISTRY_MIN_SLOTS 64

struct region {
	uint8_t *start;   /* NULL: empty slot */
	size_t len;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static struct region *registry;
static size_t registry_slots;   /* a power of two, or 0 before the first region */
static size_t registry_count;
static int registry_status;     /* 0, or -errno when the fork handlers are missing */

static size_t registry_home(const void *start, size_t slots)
{
	/* Fibonacci hashing: the upper half of the product mixes every bit of the address
	 * (the low bits of sodium_malloc() pointers mostly repeat). */
	uint64_t product = (uint64_t)(uintptr_t)start * UINT64_C(0x9E3779B97F4A7C15);

	return (size_t)(product >> 32) & (slots - 1);
}

static void registry_place(struct region *table, size_t slots, struct region region)
{
	size_t i = registry_home(region.start, slots);

	while (table[i].start)
		i = (i + 1) & (slots - 1);
	table[i] = region;
}

/* Room for one more region. Returns 0 or -ENOMEM. Called with registry_lock held. */
static int registry_reserve(void)
{
	struct region *table;
	size_t slots;

	if (registry_count + 1 <= registry_slots / 2)
		return 0;
	slots = registry_slots ? registry_slots * 2 : REGISTRY_MIN_SLOTS;
	table = calloc(slots, sizeof(*table));
	if (!table)
		return -ENOMEM;
	for (size_t i = 0; i < registry_slots; i++)
		if (registry[i].start)
			registry_place(table, slots, registry[i]);
	free(registry);
	registry = table;
	registry_slots = slots;
	return 0;
}

/* Remove start; false when it is not registered. Called with registry_lock held. */
static bool registry_remove(const void *start)
{
	size_t i, hole, home;

	if (registry_slots == 0)
		return false;
	for (i = registry_home(start, registry_slots); registry[i].start != start;
	     i = (i + 1) & (registry_slots - 1))
		if (!registry[i].start)
			return false;
	/* Backward-shift deletion: move up every later entry of the run whose home slot
	 * does not lie (cyclically) between the hole and itself, so lookups never need
	 * tombstones. */
	hole = i;
	for (;;) {
		registry[hole].start = NULL;
		for (i = (hole + 1) & (registry_slots - 1);; i = (i + 1) & (registry_slots - 1)) {
			if (!registry[i].start) {
				registry_count--;
				return true;
			}
			home = registry_home(registry[i].start, registry_slots);
			if (((i - home) & (registry_slots - 1)) >= ((i - hole) & (registry_slots - 1)))
				break;
		}
		registry[hole] = registry[i];
		hole = i;
	}
}

static void registry_before_fork(void)
{
	pthread_mutex_lock(&registry_lock);
}

static void registry_after_fork_parent(void)
{
	pthread_mutex_unlock(&registry_lock);
}

/*
 * The child of fork() starts with no page locked. Lock every region again, with a
 * system call only: async-signal-safe, as a child of a threaded parent needs.
 * MLOCK_ONFAULT locks the pages the child shares with its parent where they are; plain
 * mlock() would first copy each of them (breaking copy-on-write), and the parent's
 * copies of the keys would go back to the kernel unwiped when it exits, as a parent
 * that daemonizes does at once. A page the child writes later is faulted in locked.
 * A failure (RLIMIT_MEMLOCK) leaves the region usable but unlocked, as sodium_malloc()
 * does.
 */
static void registry_after_fork_child(void)
{
	int saved_errno = errno;

	for (size_t i = 0; i < registry_slots; i++) {
		uint8_t *start;
		size_t len;

		if (!registry[i].start)
			continue;
		start = registry[i].start - SODIUM_CANARY_LEN;
		len = registry[i].len + SODIUM_CANARY_LEN;
		if (mlock2(start, len, MLOCK_ONFAULT) != 0 && errno == ENOSYS)
			(void)mlock(start, len);   /* a kernel before 4.4 */
	}
	pthread_mutex_unlock(&registry_lock);
	errno = saved_errno;
}

static void registry_setup(void)
{
	registry_status = -pthread_atfork(registry_before_fork, registry_after_fork_parent,
					  registry_after_fork_child);
}

int secret_init(void)
{
	/* sodium_init() returns 1 when already initialised: not an error. */
	if (sodium_init() < 0)
		return -EIO;
	pthread_once(&registry_once, registry_setup);
	return registry_status;
}

void *secret_alloc(size_t len)
{
	uint8_t *secret;
	int err;

	pthread_once(&registry_once, registry_setup);
	if (registry_status)
		return NULL;
	secret = sodium_malloc(len);
	if (!secret)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	err = registry_reserve();
	if (!err) {
		registry_place(registry, registry_slots,
			       (struct region){ .start = secret, .len = len });
		registry_count++;
	}
	pthread_mutex_unlock(&registry_lock);
	if (err) {
		sodium_free(secret);
		return NULL;
	}
	return secret;
}

void secret_free(void *secret)
{
	bool known;

	if (!secret)
		return;
	pthread_mutex_lock(&registry_lock);
	known = registry_remove(secret);
	pthread_mutex_unlock(&registry_lock);
	if (!known) {
		/* sodium_free() of a foreign pointer would unmap whatever lies before it. */
		fputs("BUG: secret_free() of memory that secret_alloc() did not return\n", stderr);
		abort();
	}
	/* sodium_free() wipes before unmapping. */
	sodium_free(secret);
}

void secret_wipe(void *buf, size_t len)
{
	sodium_memzero(buf, len);
}

int secret_compare(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len) == 0 ? 0 : -1;
}

int secret_harden_process(void)
{
	struct rlimit no_core = { .rlim_cur = 0, .rlim_max = 0 };

	if (setrlimit(RLIMIT_CORE, &no_core) < 0)
		return -errno;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int secret_file_read(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
	struct stat st;
	size_t done = 0;
	int fd, ret = 0;

	/* O_NONBLOCK: a FIFO planted at path must not hang us before fstat refuses it. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;  /* ELOOP: a symlink */
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		ret = -EPERM;
		goto out_close;
	}
	for (;;) {
		ssize_t n = read(fd, buf + done, cap - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
		if (done == cap) {
			ret = -EBADMSG;
			break;
		}
	}
	if (ret == 0)
		*len = done;
out_close:
	close(fd);
	return ret;
}
