/*
 * The key agent's keystore: datasets, their DEK versions (only ever stored wrapped by
 * the KEK) and the history of who created, rotated and retired each version, when.
 * An LMDB environment through store.c (its keystore schema).
 *
 * Wrapping: wrapped DEK = crypto_seal(KEK, DEK, AD) with AD = "vaultfs.v1.dek" ||
 * dataset id (16) || version (u32 LE), so a wrapped key moved to another dataset or
 * version fails to unwrap. The KEK itself is never stored: for a passphrase KEK the
 * keystore keeps the Argon2id salt and limits; for every KEK it keeps a check value
 * (PRF of the KEK) so a wrong passphrase or key file is refused before use.
 *
 * Not thread-safe: the agent is single-threaded.
 */
#ifndef VAULTFS_KEYSTORE_H
#define VAULTFS_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/crypto.h"
#include "lib/object.h"
#include "lib/policy.h"

struct keystore;

/* The KEK, in secret memory. */
struct kek;
void kek_free(struct kek *kek);

/* Open (create: make the directory 0700 and the environment if missing). */
int keystore_open(struct keystore **out, const char *dir, bool create)
	__attribute__((warn_unused_result));
void keystore_close(struct keystore *keystore);

/* Whether a KEK has been set up (first unlock sets it). */
bool keystore_has_kek(struct keystore *keystore);

/* Passphrase KEK: Argon2id (crypto_pwhash, MODERATE limits, fresh salt at setup).
 * First call sets the KEK up; later calls return -EKEYREJECTED for a wrong passphrase. */
int keystore_unlock_passphrase(struct keystore *keystore, const char *passphrase, size_t len,
			       struct kek **out) __attribute__((warn_unused_result));
/* Raw KEK (key file, systemd credential): 32 bytes. Same setup/check as above. */
int keystore_unlock_key(struct keystore *keystore, const uint8_t key[CRYPTO_KEY_LEN],
			struct kek **out) __attribute__((warn_unused_result));
/* Read a raw KEK file: exactly 32 bytes or 64 hex digits (+ newline); the file must be a
 * regular file owned by the euid, mode without group/other bits. -EPERM otherwise. */
int kek_read_file(const char *path, uint8_t key[CRYPTO_KEY_LEN])
	__attribute__((warn_unused_result));

struct keystore_version {
	uint32_t version;
	bool retired;            /* destroyed: the wrapped key is gone */
	uint64_t created;        /* unix seconds */
	uint32_t created_by;     /* uid */
	uint64_t retired_at;
	uint32_t retired_by;
};

struct keystore_dataset {
	char name[POLICY_NAME_MAX + 1];
	uint8_t id[VAULT_ID_LEN];
	uint32_t newest;         /* version new objects use; 0 after a shred */
	bool shredded;
	uint64_t created;
	uint32_t created_by;
	size_t version_count;
	struct keystore_version *versions;   /* owned, by version */
};
void keystore_dataset_release(struct keystore_dataset *dataset);

/* A new dataset with a random DEK version 1. -EEXIST when the name is taken. The DEK is
 * returned in dek (secret memory of the caller) so the vault can be created with it. */
int keystore_dataset_create(struct keystore *keystore, const struct kek *kek, const char *name,
			    uid_t who, uint8_t dek[CRYPTO_KEY_LEN], struct keystore_dataset *out)
	__attribute__((warn_unused_result));
int keystore_dataset_get(struct keystore *keystore, const char *name,
			 struct keystore_dataset *out) __attribute__((warn_unused_result));
/* Names of all datasets, sorted; *names and each name malloc'd. */
int keystore_dataset_list(struct keystore *keystore, char ***names, size_t *count)
	__attribute__((warn_unused_result));

/* Unwrap one DEK version. -ENOKEY for a retired or unknown version or a shredded
 * dataset, -EBADMSG when the wrapped key fails to authenticate. */
int keystore_key_get(struct keystore *keystore, const struct kek *kek, const char *name,
		     uint32_t version, uint8_t key[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));
/* A new newest version. */
int keystore_key_rotate(struct keystore *keystore, const struct kek *kek, const char *name,
			uid_t who, uint32_t *version) __attribute__((warn_unused_result));
/* Destroy one version (not the newest: -EBUSY); the caller checks that no object uses it. */
int keystore_key_retire(struct keystore *keystore, const char *name, uint32_t version, uid_t who)
	__attribute__((warn_unused_result));
/* Destroy every version, then compact the environment so the wrapped bytes are nowhere in
 * the keystore files. */
int keystore_shred(struct keystore *keystore, const char *name, uid_t who)
	__attribute__((warn_unused_result));
/* Re-wrap every DEK from old_kek to new_kek in one transaction, replace the check value
 * (and salt), compact. The old KEK unwraps nothing afterwards. For a passphrase KEK give
 * new_passphrase (new_kek NULL) and get the new KEK back in *new_out. */
int keystore_kek_rotate(struct keystore *keystore, const struct kek *old_kek,
			const char *new_passphrase, size_t new_len,
			const uint8_t new_key[CRYPTO_KEY_LEN], struct kek **new_out)
	__attribute__((warn_unused_result));

#endif
