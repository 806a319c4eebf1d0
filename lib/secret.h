/*
 * Secret memory and process hardening. Every key lives in memory from secret_alloc():
 * guard pages, mlock'd, excluded from core dumps, wiped on secret_free(). Stack copies of
 * secrets are wiped with secret_wipe() at their last use.
 *
 * Locked across fork: the kernel does not pass mlock on to a child, so this module keeps
 * a registry of every live secret_alloc() region and a pthread_atfork() child handler
 * locks each of them again in the child. A daemon that forks after its keys exist
 * (fuse_daemonize, the key agent's daemonize) thus keeps them locked in the process that
 * serves. Only these regions are locked: not mlockall(), which would pin LMDB's map.
 * posix_spawn() and vfork() run no fork handlers; they exec at once.
 */
#ifndef VAULTFS_SECRET_H
#define VAULTFS_SECRET_H

#include <stddef.h>
#include <stdint.h>

/* Initialise the crypto library and register the fork handlers; call once before any
 * other secret_ or crypto_ call. Returns 0 or -errno. Safe to call more than once. */
int secret_init(void) __attribute__((warn_unused_result));

/* len bytes of locked, guarded memory, or NULL. Contents are undefined until written.
 * Registered for locking again after fork() until secret_free(). Thread-safe. */
void *secret_alloc(size_t len);

/* Wipe and release memory from secret_alloc(); NULL is ignored. Any other pointer is a
 * bug and aborts. Thread-safe. */
void secret_free(void *secret);

/* Overwrite len bytes with zeros in a way the compiler cannot elide. */
void secret_wipe(void *buf, size_t len);

/* Constant-time comparison: 0 when the len bytes at a and b are equal, -1 otherwise. */
int secret_compare(const void *a, const void *b, size_t len) __attribute__((warn_unused_result));

/*
 * Read a small secret file (a key file) into buf, which should be secret memory. The
 * file must be a regular file, not a symlink, owned by the effective uid, with no group
 * or other permission bits. Returns 0 with *len set; -EPERM when those checks fail,
 * -EBADMSG when the file holds cap bytes or more, -ENOENT, -errno.
 */
int secret_file_read(const char *path, uint8_t *buf, size_t cap, size_t *len)
	__attribute__((warn_unused_result));

/* Make this process unable to leak secrets by core dump or ptrace by an unprivileged
 * peer: RLIMIT_CORE 0 and PR_SET_DUMPABLE 0. Call after any privilege change too.
 * Returns 0 or -errno. */
int secret_harden_process(void) __attribute__((warn_unused_result));

#endif
