/*
 * Secret memory and process hardening on top of libsodium's guarded allocator.
 * Keys only ever live in secret_alloc() memory; this file and crypto.c are the only
 * places that include <sodium.h>.
 */
#include "lib/secret.h"

#include <errno.h>
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
