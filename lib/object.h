/*
 * Ciphertext objects: one file under <vault>/objects/ per regular file of the vault.
 *
 *   offset 0   header, OBJECT_HEADER_LEN bytes (see object_header_encode)
 *   offset 64  block 0, block 1, ... each object_block_stride() bytes:
 *              nonce || AEAD(file key, 4096 plaintext bytes) || tag
 *
 * Every block holds exactly OBJECT_BLOCK_SIZE plaintext bytes (the tail of the last block
 * is zero padding); the file's length lives in the authenticated inode record, never in
 * the object. A block that the inode record lists as a hole is never read from disk.
 * The associated data of block i is vault id || object id || key version || i, so a block
 * cannot be moved within a file, to another file or to another vault.
 *
 * File key = PRF(DEK of key_version, CRYPTO_CTX_OBJECT_KEY, vault id || object id).
 */
#ifndef VAULTFS_OBJECT_H
#define VAULTFS_OBJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/crypto.h"

#define OBJECT_FORMAT_VERSION 1
#define OBJECT_HEADER_LEN 64
#define OBJECT_BLOCK_SIZE 4096
#define OBJECT_ID_LEN 16
#define VAULT_ID_LEN 16

/*
 * Nonce budget. Random 96-bit GCM nonces collide with probability about q^2 / 2^97 after
 * q encryptions under one key; capping q at 2^32 per file key keeps that below 2^-33.
 * The count of encryptions is reserved in the inode record OBJECT_BUDGET_STEP at a time
 * before any of them is used, so a killed daemon can only over-count.
 */
#define OBJECT_MAX_ENCRYPTIONS (UINT64_C(1) << 32)
#define OBJECT_BUDGET_STEP (UINT64_C(1) << 16)

struct object_header {
	uint32_t format_version;
	uint32_t cipher;        /* enum crypto_cipher */
	uint32_t key_version;   /* DEK version the file key is derived from */
	uint32_t block_size;    /* plaintext bytes per block: OBJECT_BLOCK_SIZE */
	uint8_t object_id[OBJECT_ID_LEN];
	uint8_t vault_id[VAULT_ID_LEN];
};

/* Little-endian layout: magic "VAULTOBJ", format_version, cipher, key_version,
 * block_size (u32 each), object_id, vault_id, 8 reserved zero bytes. */
void object_header_encode(uint8_t out[OBJECT_HEADER_LEN], const struct object_header *header);

/* Returns 0, -EBADMSG for a wrong magic or non-zero reserved bytes, -EPROTONOSUPPORT for
 * an unknown format version, block size or cipher. */
int object_header_decode(struct object_header *header, const uint8_t in[OBJECT_HEADER_LEN])
	__attribute__((warn_unused_result));

/* Bytes one block occupies on disk: nonce + OBJECT_BLOCK_SIZE + tag. */
size_t object_block_stride(enum crypto_cipher cipher);

/* Byte offset of block index in the object file. */
off_t object_block_offset(enum crypto_cipher cipher, uint64_t index);

/* Number of blocks a file of size bytes occupies. */
uint64_t object_block_count(uint64_t size);

/* A file key, ready to seal and open blocks of one object. Secret memory. */
struct object_key;

/* Derive the file key. dek is the DEK of header->key_version. Returns 0, -ENOMEM,
 * -EINVAL, -ENOTSUP (cipher not runnable here). */
int object_key_new(struct object_key **out, const struct object_header *header,
		   const uint8_t dek[CRYPTO_KEY_LEN]) __attribute__((warn_unused_result));
/* Another reference to key, for a thread that seals with it outside the lock that guards
 * its owner; object_key_free() drops one and wipes the key with the last. */
struct object_key *object_key_ref(struct object_key *key);
void object_key_free(struct object_key *key);

/* Encrypt one block: out receives object_block_stride() bytes, with a fresh random
 * nonce. The caller must have taken one unit of nonce budget. Returns 0 or -errno. */
int object_block_seal(uint8_t *out, const uint8_t plain[OBJECT_BLOCK_SIZE], uint64_t index,
		      const struct object_key *key);

/* Decrypt one block read from disk (object_block_stride() bytes). Returns 0 or -EBADMSG
 * (plain wiped) for any alteration: bit flip, zeroed block, block from another index,
 * object or vault. */
int object_block_open(uint8_t plain[OBJECT_BLOCK_SIZE], const uint8_t *in, uint64_t index,
		      const struct object_key *key) __attribute__((warn_unused_result));

/*
 * Nonce budget of one file key. used counts encryptions done; reserved is what the inode
 * record on disk says may have been used.
 */
struct object_budget {
	uint64_t used;
	uint64_t reserved;
};

/*
 * Take n encryptions from the budget. Returns 0 when they fit in the reservation;
 * 1 when the caller must first persist budget->reserved (already raised by this call,
 * in OBJECT_BUDGET_STEP units) in the inode record; -EKEYEXPIRED when the file key has
 * reached limit (pass OBJECT_MAX_ENCRYPTIONS) and the object must be re-encrypted under
 * a new object id. On -EKEYEXPIRED nothing is taken.
 */
int object_budget_take(struct object_budget *budget, uint64_t n, uint64_t limit)
	__attribute__((warn_unused_result));

#endif
