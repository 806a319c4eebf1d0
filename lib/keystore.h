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
 * Destroying a version (retire, shred, KEK rotation) deletes the wrapped bytes and then
 * compacts the environment (store_compact), so they are in no keystore file afterwards.
 * Only the agent may have the keystore open. Every change is fsync'd before returning.
 * Errors common to all calls: -EINVAL for a name that policy_name_valid() refuses,
 * -ENOENT for an unknown dataset, -EBADMSG for a record that fails to decode, -EIO,
 * -ENOSPC, -ENOMEM.
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

/*
 * The Argon2id limits of the next passphrase setup (first unlock, or a KEK rotation to
 * a passphrase); CRYPTO_PWHASH_*_MODERATE unless set. The limits used are stored with
 * the salt, so raising them later and rotating the KEK upgrades an existing keystore.
 * Tests use CRYPTO_PWHASH_*_MIN. Returns 0 or -EINVAL (outside CRYPTO_PWHASH MIN..MAX).
 */
int keystore_set_pwhash_limits(struct keystore *keystore, uint64_t opslimit, size_t memlimit)
	__attribute__((warn_unused_result));

/* Passphrase KEK: Argon2id (crypto_pwhash, MODERATE limits, fresh salt at setup).
 * First call sets the KEK up; later calls return -EKEYREJECTED for a wrong passphrase.
 * -EINVAL for an empty passphrase; -ENOTSUP when the keystore's KEK is a raw key. */
int keystore_unlock_passphrase(struct keystore *keystore, const char *passphrase, size_t len,
			       struct kek **out) __attribute__((warn_unused_result));
/* Raw KEK (key file, systemd credential): 32 bytes. Same setup/check as above;
 * -ENOTSUP when the keystore's KEK comes from a passphrase. */
int keystore_unlock_key(struct keystore *keystore, const uint8_t key[CRYPTO_KEY_LEN],
			struct kek **out) __attribute__((warn_unused_result));
/* Read a raw KEK file: exactly 32 bytes or 64 hex digits (+ newline); the file must be a
 * regular file owned by the euid, mode without group/other bits, not a symlink: -EPERM
 * otherwise. -EBADMSG for any other size or a bad hex digit (key wiped), -ENOENT,
 * -EACCES. */
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
	struct keystore_version *versions;   /* owned, by version; retired ones included */
	uint64_t shredded_at;    /* when shredded: unix seconds, and by which uid */
	uint32_t shredded_by;
};
void keystore_dataset_release(struct keystore_dataset *dataset);

/* The three record kinds of the keystore (formats in keystore.c). */
enum keystore_record {
	KEYSTORE_RECORD_KEK,
	KEYSTORE_RECORD_DATASET,
	KEYSTORE_RECORD_VERSION,
};
#define KEYSTORE_RECORD_MAX 256

/* Record decoding, exposed for tests and fuzzing: decode in as a record of kind with the
 * keystore's own strict decoder and encode what it decoded into out (KEYSTORE_RECORD_MAX
 * bytes). Returns 0 with *out_len set, or -EBADMSG (malformed, or an unknown kind). */
int keystore_record_recode(uint8_t *out, size_t *out_len, enum keystore_record kind,
			   const uint8_t *in, size_t in_len) __attribute__((warn_unused_result));

/* A new dataset with a random DEK version 1. -EEXIST when the name is taken, also by a
 * shredded dataset: its record stays as a tombstone (keystore_dataset_get says
 * .shredded) so that a new dataset never takes the name of one whose backups exist.
 * -EKEYREJECTED when kek is not the keystore's current KEK. The DEK is returned in dek
 * (secret memory of the caller) so the vault can be created with it. */
int keystore_dataset_create(struct keystore *keystore, const struct kek *kek, const char *name,
			    uid_t who, uint8_t dek[CRYPTO_KEY_LEN], struct keystore_dataset *out)
	__attribute__((warn_unused_result));
int keystore_dataset_get(struct keystore *keystore, const char *name,
			 struct keystore_dataset *out) __attribute__((warn_unused_result));
/* Names of all datasets (shredded ones included), sorted; *names and each name
 * malloc'd. */
int keystore_dataset_list(struct keystore *keystore, char ***names, size_t *count)
	__attribute__((warn_unused_result));

/* Unwrap one DEK version. -ENOKEY for a retired or unknown version or a shredded
 * dataset, -EBADMSG when the wrapped key fails to authenticate, -EKEYREJECTED when kek
 * is not the keystore's current KEK (a rotation replaced it). */
int keystore_key_get(struct keystore *keystore, const struct kek *kek, const char *name,
		     uint32_t version, uint8_t key[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));
/* A new newest version. -ENOKEY for a shredded dataset, -EKEYREJECTED as above. */
int keystore_key_rotate(struct keystore *keystore, const struct kek *kek, const char *name,
			uid_t who, uint32_t *version) __attribute__((warn_unused_result));
/* Destroy one version (not the newest: -EBUSY) and compact; the caller checks that no
 * object uses it. -ENOKEY for an unknown version or a shredded dataset. Retiring a
 * retired version only compacts again (finishing an interrupted retire) and returns 0. */
int keystore_key_retire(struct keystore *keystore, const char *name, uint32_t version, uid_t who)
	__attribute__((warn_unused_result));
/* Destroy every version, then compact the environment so the wrapped bytes are nowhere in
 * the keystore files. The dataset stays as a tombstone (shredded, newest 0, history
 * kept). Shredding a shredded dataset only compacts again (finishing an interrupted
 * shred) and returns 0. */
int keystore_shred(struct keystore *keystore, const char *name, uid_t who)
	__attribute__((warn_unused_result));
/* Re-wrap every DEK from old_kek to new_kek in one transaction, replace the check value
 * (and salt), compact. The old KEK unwraps nothing afterwards. For a passphrase KEK give
 * new_passphrase (new_key NULL), for a raw KEK new_key (new_passphrase NULL); the new KEK
 * comes back in *new_out (may be NULL) whenever the rotation was committed, even if the
 * compaction then failed (its error is returned). -EKEYREJECTED for a stale old_kek,
 * -EBADMSG (nothing changed) when a wrapped key fails to authenticate. */
int keystore_kek_rotate(struct keystore *keystore, const struct kek *old_kek,
			const char *new_passphrase, size_t new_len,
			const uint8_t new_key[CRYPTO_KEY_LEN], struct kek **new_out)
	__attribute__((warn_unused_result));

#endif
