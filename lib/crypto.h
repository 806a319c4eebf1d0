/*
 * Every cryptographic primitive vaultfs uses, behind one interface: AEAD (AES-256-GCM or
 * XChaCha20-Poly1305), the keyed PRF used for key derivation and name hashing (keyed
 * BLAKE2b), plain SHA-256 (the audit trail's chain), randomness, and hex coding of key
 * files. Only this module and secret.c touch libsodium. The list of KDF contexts below is
 * the complete list: every derived key and keyed hash in the product names one of them
 * (domain separation).
 */
#ifndef VAULTFS_CRYPTO_H
#define VAULTFS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_TAG_LEN 16
#define CRYPTO_NONCE_MAX 24
#define CRYPTO_SEAL_SALT_LEN 16

/* Values are stored on disk (vault header, object header): never renumber. */
enum crypto_cipher {
	CRYPTO_AES256GCM = 1,
	CRYPTO_XCHACHA20POLY1305 = 2,
};

/*
 * KDF contexts. Each maps to a fixed ASCII string (see crypto.c) that prefixes the PRF
 * input, so no two uses can ever produce the same key. On-disk meaning: never renumber
 * or change a string once released.
 */
enum crypto_context {
	CRYPTO_CTX_OBJECT_KEY,   /* file key: DEK version -> per-object key */
	CRYPTO_CTX_META_KEY,     /* metadata value key: DEK version -> key for LMDB values */
	CRYPTO_CTX_KEY_CHECK,    /* key check in the vault header: detects a wrong key */
	CRYPTO_CTX_HEADER_MAC,   /* MAC key for the vault header */
	CRYPTO_CTX_SEAL_SUBKEY,  /* per-value subkey of crypto_seal() */
	CRYPTO_CTX_NAME_HASH,    /* keyed hash of (parent, name): directory entry keys */
	CRYPTO_CTX_DIR_HASH,     /* keyed hash of a directory inode: entry key prefix */
	CRYPTO_CTX_KEK_CHECK,    /* keystore check value: detects a wrong KEK */
	CRYPTO_CTX_AUDIT_PATH_KEY,   /* DEK -> key of the paths' keyed hash in audit records */
	CRYPTO_CTX_AUDIT_PATH_HASH,  /* that keyed hash of a path */
	CRYPTO_CTX_AUDIT_PATH_SEAL,  /* DEK -> key sealing the paths in audit records */
	CRYPTO_CTX_COUNT,
};

/* Name as written by users and on the command line ("aes-256-gcm",
 * "xchacha20-poly1305"); NULL for an unknown value. */
const char *crypto_cipher_name(enum crypto_cipher cipher);

/* Parse a cipher name. Returns 0 or -EINVAL. */
int crypto_cipher_from_name(enum crypto_cipher *out, const char *name);

/* Whether this CPU and library can run the cipher (AES-256-GCM needs AES-NI/PCLMUL). */
bool crypto_cipher_available(enum crypto_cipher cipher);

/* AES-256-GCM where available, XChaCha20-Poly1305 otherwise. */
enum crypto_cipher crypto_cipher_default(void);

/* Nonce length of the cipher: 12 for AES-256-GCM, 24 for XChaCha20-Poly1305. */
size_t crypto_nonce_len(enum crypto_cipher cipher);

/* Fill buf with len bytes from the system CSPRNG. Cannot fail. */
void crypto_random(void *buf, size_t len);

/*
 * Keyed PRF: out = BLAKE2b(key, context-string || 0x00 || input), out_len 16..64 bytes.
 * Used both to derive keys (out_len 32, output into secret memory) and to hash names.
 * Returns 0 or -EINVAL for a bad length or context.
 */
int crypto_prf(uint8_t *out, size_t out_len, enum crypto_context context,
	       const void *input, size_t input_len, const uint8_t key[CRYPTO_KEY_LEN])
	__attribute__((warn_unused_result));

/*
 * An AEAD key prepared for repeated use (AES-GCM key schedule precomputed). Lives in
 * secret memory; crypto_aead_key_free() wipes it.
 */
struct crypto_aead_key;

/* Returns 0, -EINVAL for an unknown cipher, -ENOTSUP when the CPU cannot run it,
 * -ENOMEM. The caller keeps ownership of key and may wipe it afterwards. */
int crypto_aead_key_new(struct crypto_aead_key **out, enum crypto_cipher cipher,
			const uint8_t key[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));
void crypto_aead_key_free(struct crypto_aead_key *key);
enum crypto_cipher crypto_aead_key_cipher(const struct crypto_aead_key *key);

/*
 * AEAD with a caller-chosen nonce of crypto_nonce_len() bytes. out receives
 * m_len + CRYPTO_TAG_LEN bytes (ciphertext then tag). m and out may be the same buffer.
 * Returns 0 or -EINVAL.
 */
int crypto_aead_seal(uint8_t *out, const uint8_t *m, size_t m_len,
		     const uint8_t *ad, size_t ad_len, const uint8_t *nonce,
		     const struct crypto_aead_key *key);

/*
 * Inverse of crypto_aead_seal: out receives c_len - CRYPTO_TAG_LEN bytes. Returns 0, or
 * -EBADMSG when the tag does not verify (out is then wiped), -EINVAL for c_len < tag.
 */
int crypto_aead_open(uint8_t *out, const uint8_t *c, size_t c_len,
		     const uint8_t *ad, size_t ad_len, const uint8_t *nonce,
		     const struct crypto_aead_key *key) __attribute__((warn_unused_result));

/*
 * Sealed values (metadata, wrapped keys): a fresh random salt and nonce per call, and a
 * one-use subkey = PRF(key, CRYPTO_CTX_SEAL_SUBKEY, salt), so no nonce budget applies to
 * key however many values it seals. Layout of out: salt(16) || nonce || ciphertext || tag.
 * crypto_seal_overhead() bytes are added to m_len.
 */
size_t crypto_seal_overhead(enum crypto_cipher cipher);

/* out_len must be m_len + crypto_seal_overhead(cipher). Returns 0 or -EINVAL/-ENOMEM. */
int crypto_seal(uint8_t *out, size_t out_len, const uint8_t *m, size_t m_len,
		const uint8_t *ad, size_t ad_len, enum crypto_cipher cipher,
		const uint8_t key[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));

/* m_len must be in_len - crypto_seal_overhead(cipher). Returns 0, -EBADMSG (m wiped) or
 * -EINVAL (lengths). */
int crypto_unseal(uint8_t *m, size_t m_len, const uint8_t *in, size_t in_len,
		  const uint8_t *ad, size_t ad_len, enum crypto_cipher cipher,
		  const uint8_t key[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));

/*
 * Password hashing: Argon2id (version 1.3) with parallelism 1, as libsodium's
 * crypto_pwhash computes it. The limits are stored beside the salt (keystore) so they
 * can be raised later: opslimit is Argon2's pass count t, memlimit is in bytes (Argon2's
 * m is memlimit / 1024 KiB). MODERATE is the production setting (about a second, 256
 * MiB); MIN is for tests only. MAX bounds what a stored record may ask for.
 */
#define CRYPTO_PWHASH_SALT_LEN 16
#define CRYPTO_PWHASH_OPSLIMIT_MIN 1u
#define CRYPTO_PWHASH_MEMLIMIT_MIN ((size_t)8192)
#define CRYPTO_PWHASH_OPSLIMIT_MODERATE 3u
#define CRYPTO_PWHASH_MEMLIMIT_MODERATE ((size_t)256 << 20)
#define CRYPTO_PWHASH_OPSLIMIT_MAX 64u
#define CRYPTO_PWHASH_MEMLIMIT_MAX ((size_t)4 << 30)

/*
 * key = Argon2id(password, salt, t = opslimit, m = memlimit / 1024 KiB, p = 1), 32 bytes.
 * key should be secret memory; it is wiped on failure. Returns 0, -EINVAL (limits
 * outside MIN..MAX), -ENOMEM (the memlimit could not be allocated).
 */
int crypto_password_key(uint8_t key[CRYPTO_KEY_LEN], const char *password, size_t len,
			const uint8_t salt[CRYPTO_PWHASH_SALT_LEN], uint64_t opslimit,
			size_t memlimit) __attribute__((warn_unused_result));

/* Plain (unkeyed) SHA-256, for the audit trail's hash chain: a format auditors check
 * with standard tools, where no key may be needed. Never use it to derive a key. */
#define CRYPTO_SHA256_LEN 32
void crypto_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *in, size_t len);

/* Lower-case hex of bin into hex (2*bin_len+1 bytes with the NUL). */
void crypto_to_hex(char *hex, size_t hex_len, const uint8_t *bin, size_t bin_len);

/* Parse exactly bin_len bytes of hex (no separators, surrounding whitespace not allowed).
 * Returns 0 or -EINVAL. Constant-time in the hex digits (key files go through it). */
int crypto_from_hex(uint8_t *bin, size_t bin_len, const char *hex, size_t hex_len)
	__attribute__((warn_unused_result));

#endif
