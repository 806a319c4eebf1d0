/*
 * Where a vault's dataset keys (DEKs) come from. The FUSE daemon and the tools ask a
 * struct keysource for "DEK version v" and never learn where it lives. Sources so far:
 * a development key file (one version) and an ephemeral in-memory key; the key agent
 * becomes a third source behind the same interface.
 */
#ifndef VAULTFS_KEYSOURCE_H
#define VAULTFS_KEYSOURCE_H

#include <stdint.h>

#include "lib/crypto.h"

#define KEYFILE_MAGIC "vaultfs-dev-key-v1"

struct keysource;

/*
 * Key file: one line KEYFILE_MAGIC, one line of 64 hex digits, nothing else (the final
 * newline may be missing). Open checks that path is a regular file owned by the effective
 * uid with no group or other permission bits; a symlink is never followed. Returns 0,
 * -ENOENT, -EACCES (unreadable), -EPERM (loose permissions, wrong owner, a symlink or
 * not a regular file), -EBADMSG (not a key file), -ENOMEM.
 */
int keysource_keyfile_open(struct keysource **out, const char *path)
	__attribute__((warn_unused_result));

/* Write a fresh random key to a new file path (O_EXCL, mode 0600) and return a source
 * for it. Returns 0, -EEXIST (never overwrites), or -errno from the filesystem. */
int keysource_keyfile_create(struct keysource **out, const char *path)
	__attribute__((warn_unused_result));

/* A fresh random key that exists only in this process's secret memory. */
int keysource_ephemeral_new(struct keysource **out) __attribute__((warn_unused_result));

/*
 * Keys handed over by the key agent under a lease: a set of versions held in this
 * source's own secret memory, safe to use from several threads. Starts empty.
 */
int keysource_memory_new(struct keysource **out) __attribute__((warn_unused_result));
/* Add (or replace) a version; the newest is the highest added. key is copied. Returns
 * 0, -ENOMEM, -EKEYREVOKED after keysource_memory_revoke(), -EINVAL for version 0. */
int keysource_memory_add(struct keysource *source, uint32_t version,
			 const uint8_t key[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));
/* Wipe every key now; every later get answers -EKEYREVOKED. Irreversible. */
void keysource_memory_revoke(struct keysource *source);

/* Newest DEK version (new objects are encrypted under it); versions start at 1. */
uint32_t keysource_newest_version(const struct keysource *source);

/* Copy DEK version into key (which must be secret memory). Returns 0, -ENOKEY for a
 * version the source does not have, or -errno. */
int keysource_get(struct keysource *source, uint32_t version, uint8_t key[CRYPTO_KEY_LEN])
	__attribute__((warn_unused_result));

/* Wipe and free; NULL is ignored. */
void keysource_free(struct keysource *source);

#endif
