/*
 * Ciphertext object format: the 64-byte object header, the per-object file key and the
 * sealing of fixed-size blocks bound to (vault, object, key version, index), plus the
 * nonce budget that keeps random GCM nonces within the design's collision bound.
 */
#include "lib/object.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bytes.h"
#include "lib/secret.h"

#define OBJECT_MAGIC "VAULTOBJ"
#define OBJECT_MAGIC_LEN 8
#define OBJECT_RESERVED_OFFSET 56
#define OBJECT_RESERVED_LEN 8

/* vault id || object id || key version (u32 LE) || block index (u64 LE) */
#define OBJECT_AD_PREFIX_LEN (VAULT_ID_LEN + OBJECT_ID_LEN + 4)
#define OBJECT_AD_LEN (OBJECT_AD_PREFIX_LEN + 8)

_Static_assert(OBJECT_MAGIC_LEN + 4 * 4 + OBJECT_ID_LEN + VAULT_ID_LEN + OBJECT_RESERVED_LEN ==
	       OBJECT_HEADER_LEN, "object header layout adds up to OBJECT_HEADER_LEN");
_Static_assert(OBJECT_RESERVED_OFFSET + OBJECT_RESERVED_LEN == OBJECT_HEADER_LEN,
	       "reserved bytes end the header");

/* The AEAD key lives in secret memory; the AD prefix beside it is public. */
struct object_key {
	struct crypto_aead_key *aead;
	enum crypto_cipher cipher;
	uint8_t ad_prefix[OBJECT_AD_PREFIX_LEN];
	unsigned refs;                 /* atomic */
};

static bool cipher_known(uint32_t cipher)
{
	return cipher == CRYPTO_AES256GCM || cipher == CRYPTO_XCHACHA20POLY1305;
}

void object_header_encode(uint8_t out[OBJECT_HEADER_LEN], const struct object_header *header)
{
	memcpy(out, OBJECT_MAGIC, OBJECT_MAGIC_LEN);
	put_le32(out + 8, header->format_version);
	put_le32(out + 12, header->cipher);
	put_le32(out + 16, header->key_version);
	put_le32(out + 20, header->block_size);
	memcpy(out + 24, header->object_id, OBJECT_ID_LEN);
	memcpy(out + 40, header->vault_id, VAULT_ID_LEN);
	memset(out + OBJECT_RESERVED_OFFSET, 0, OBJECT_RESERVED_LEN);
}

int object_header_decode(struct object_header *header, const uint8_t in[OBJECT_HEADER_LEN])
{
	struct object_header decoded;

	if (memcmp(in, OBJECT_MAGIC, OBJECT_MAGIC_LEN) != 0)
		return -EBADMSG;
	for (size_t i = 0; i < OBJECT_RESERVED_LEN; i++) {
		if (in[OBJECT_RESERVED_OFFSET + i] != 0)
			return -EBADMSG;
	}
	decoded.format_version = get_le32(in + 8);
	decoded.cipher = get_le32(in + 12);
	decoded.key_version = get_le32(in + 16);
	decoded.block_size = get_le32(in + 20);
	memcpy(decoded.object_id, in + 24, OBJECT_ID_LEN);
	memcpy(decoded.vault_id, in + 40, VAULT_ID_LEN);

	if (decoded.format_version != OBJECT_FORMAT_VERSION ||
	    decoded.block_size != OBJECT_BLOCK_SIZE || !cipher_known(decoded.cipher))
		return -EPROTONOSUPPORT;
	*header = decoded;
	return 0;
}

size_t object_block_stride(enum crypto_cipher cipher)
{
	return crypto_nonce_len(cipher) + OBJECT_BLOCK_SIZE + CRYPTO_TAG_LEN;
}

off_t object_block_offset(enum crypto_cipher cipher, uint64_t index)
{
	return (off_t)(OBJECT_HEADER_LEN + index * object_block_stride(cipher));
}

uint64_t object_block_count(uint64_t size)
{
	return size / OBJECT_BLOCK_SIZE + (size % OBJECT_BLOCK_SIZE != 0);
}

int object_key_new(struct object_key **out, const struct object_header *header,
		   const uint8_t dek[CRYPTO_KEY_LEN])
{
	uint8_t ids[VAULT_ID_LEN + OBJECT_ID_LEN];
	uint8_t file_key[CRYPTO_KEY_LEN];
	struct object_key *key;
	int ret;

	if (!cipher_known(header->cipher) || header->format_version != OBJECT_FORMAT_VERSION ||
	    header->block_size != OBJECT_BLOCK_SIZE)
		return -EINVAL;

	/* Only the AEAD key schedule is secret; the struct around it holds public ids. The
	 * file key passes through the stack and is wiped: files are opened often, and each
	 * secret allocation costs several system calls. */
	key = malloc(sizeof(*key));
	if (key == NULL)
		return -ENOMEM;
	memcpy(ids, header->vault_id, VAULT_ID_LEN);
	memcpy(ids + VAULT_ID_LEN, header->object_id, OBJECT_ID_LEN);
	ret = crypto_prf(file_key, CRYPTO_KEY_LEN, CRYPTO_CTX_OBJECT_KEY, ids, sizeof(ids), dek);
	if (ret == 0)
		ret = crypto_aead_key_new(&key->aead, header->cipher, file_key);
	secret_wipe(file_key, sizeof(file_key));
	if (ret < 0) {
		free(key);
		return ret;
	}
	key->cipher = header->cipher;
	key->refs = 1;
	memcpy(key->ad_prefix, ids, sizeof(ids));
	put_le32(key->ad_prefix + sizeof(ids), header->key_version);
	*out = key;
	return 0;
}

struct object_key *object_key_ref(struct object_key *key)
{
	__atomic_add_fetch(&key->refs, 1, __ATOMIC_RELAXED);
	return key;
}

void object_key_free(struct object_key *key)
{
	if (key == NULL || __atomic_sub_fetch(&key->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	crypto_aead_key_free(key->aead);
	free(key);
}

static void block_ad(uint8_t ad[OBJECT_AD_LEN], uint64_t index, const struct object_key *key)
{
	memcpy(ad, key->ad_prefix, OBJECT_AD_PREFIX_LEN);
	put_le64(ad + OBJECT_AD_PREFIX_LEN, index);
}

int object_block_seal(uint8_t *out, const uint8_t plain[OBJECT_BLOCK_SIZE], uint64_t index,
		      const struct object_key *key)
{
	size_t nonce_len = crypto_nonce_len(key->cipher);
	uint8_t ad[OBJECT_AD_LEN];

	block_ad(ad, index, key);
	crypto_random(out, nonce_len);
	return crypto_aead_seal(out + nonce_len, plain, OBJECT_BLOCK_SIZE, ad, sizeof(ad), out,
				key->aead);
}

int object_block_open(uint8_t plain[OBJECT_BLOCK_SIZE], const uint8_t *in, uint64_t index,
		      const struct object_key *key)
{
	size_t nonce_len = crypto_nonce_len(key->cipher);
	uint8_t ad[OBJECT_AD_LEN];
	int ret;

	block_ad(ad, index, key);
	ret = crypto_aead_open(plain, in + nonce_len, OBJECT_BLOCK_SIZE + CRYPTO_TAG_LEN, ad,
			       sizeof(ad), in, key->aead);
	if (ret < 0) {
		/* crypto_aead_open() already wiped on -EBADMSG; any other failure must too. */
		secret_wipe(plain, OBJECT_BLOCK_SIZE);
		ret = -EBADMSG;
	}
	return ret;
}

int object_budget_take(struct object_budget *budget, uint64_t n, uint64_t limit)
{
	uint64_t missing, steps;

	if (budget->used > limit || n > limit - budget->used)
		return -EKEYEXPIRED;
	budget->used += n;
	if (budget->used <= budget->reserved)
		return 0;

	/* Raise the reservation by whole steps until it covers what is now used; the last
	 * reservation before limit is cut to limit, which still covers used. */
	missing = budget->used - budget->reserved;
	steps = missing / OBJECT_BUDGET_STEP + (missing % OBJECT_BUDGET_STEP != 0);
	if (steps > (limit - budget->reserved) / OBJECT_BUDGET_STEP)
		budget->reserved = limit;
	else
		budget->reserved += steps * OBJECT_BUDGET_STEP;
	return 1;
}
