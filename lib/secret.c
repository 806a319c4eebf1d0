/*
 * Secret memory and process hardening on top of libsodium's guarded allocator.
 * Keys only ever live in secret_alloc() memory; this file and crypto.c are the only
 * places that include <sodium.h>.
 */
#include "lib/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <sodium.h>

int secret_init(void)
{
	/* sodium_init() returns 1 when already initialised: not an error. */
	if (sodium_init() < 0)
		return -EIO;
	return 0;
}

void *secret_alloc(size_t len)
{
	return sodium_malloc(len);
}

void secret_free(void *secret)
{
	/* sodium_free() wipes before unmapping and ignores NULL. */
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
