/*
 * libFuzzer harness of the on-disk decoders: the first input byte picks the decoder
 * (tests/fuzz/replay.h: inode record, object header, vault header, keystore KEK, dataset
 * and version records), the rest is its input. What a decoder accepts must re-encode to
 * exactly those bytes. Seeds and findings live in tests/fuzz/corpus-ondisk/, which
 * check_meta, check_object and check_vault replay.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/keystore.h"
#include "lib/meta.h"
#include "lib/object.h"
#include "lib/vault.h"
#include "tests/fuzz/replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_meta_inode(const uint8_t *in, size_t len)
{
	struct meta_inode inode;
	uint8_t *out;
	size_t out_len;
	int ret = meta_inode_decode(&inode, in, len);

	if (ret != 0) {
		if (ret != -EBADMSG || inode.holes != NULL || inode.symlink != NULL)
			abort();
		return;
	}
	if (meta_inode_encode(&out, &out_len, &inode) != 0)
		abort();   /* an accepted record must encode */
	if (out_len != len || memcmp(out, in, len) != 0)
		abort();   /* and to the very bytes it came from */
	free(out);
	meta_inode_release(&inode);
}

static void fuzz_object_header(const uint8_t *in, size_t len)
{
	uint8_t bytes[OBJECT_HEADER_LEN] = { 0 }, out[OBJECT_HEADER_LEN];
	struct object_header header;
	int ret;

	/* The reader hands over exactly OBJECT_HEADER_LEN bytes; a short read is zeros. */
	memcpy(bytes, in, len < sizeof(bytes) ? len : sizeof(bytes));
	ret = object_header_decode(&header, bytes);
	if (ret != 0) {
		if (ret != -EBADMSG && ret != -EPROTONOSUPPORT)
			abort();
		return;
	}
	object_header_encode(out, &header);
	if (memcmp(out, bytes, sizeof(out)) != 0)
		abort();
}

static void fuzz_vault_header(const uint8_t *in, size_t len)
{
	uint8_t bytes[VAULT_HEADER_LEN] = { 0 }, out[VAULT_HEADER_LEN];
	struct vault_header header;
	int ret;

	memcpy(bytes, in, len < sizeof(bytes) ? len : sizeof(bytes));
	ret = vault_header_decode(&header, bytes);
	if (ret != 0) {
		if (ret != -EBADMSG && ret != -EPROTONOSUPPORT)
			abort();
		return;
	}
	vault_header_encode(out, &header);
	if (memcmp(out, bytes, sizeof(out)) != 0)
		abort();
}

static void fuzz_keystore_record(enum keystore_record kind, const uint8_t *in, size_t len)
{
	uint8_t out[KEYSTORE_RECORD_MAX];
	size_t out_len;
	int ret = keystore_record_recode(out, &out_len, kind, in, len);

	if (ret != 0) {
		if (ret != -EBADMSG)
			abort();
		return;
	}
	if (out_len != len || memcmp(out, in, len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0]) {
	case REPLAY_ONDISK_META_INODE:
		fuzz_meta_inode(data + 1, size - 1);
		break;
	case REPLAY_ONDISK_OBJECT_HEADER:
		fuzz_object_header(data + 1, size - 1);
		break;
	case REPLAY_ONDISK_VAULT_HEADER:
		fuzz_vault_header(data + 1, size - 1);
		break;
	case REPLAY_ONDISK_KEK_RECORD:
		fuzz_keystore_record(KEYSTORE_RECORD_KEK, data + 1, size - 1);
		break;
	case REPLAY_ONDISK_DATASET_RECORD:
		fuzz_keystore_record(KEYSTORE_RECORD_DATASET, data + 1, size - 1);
		break;
	case REPLAY_ONDISK_VERSION_RECORD:
		fuzz_keystore_record(KEYSTORE_RECORD_VERSION, data + 1, size - 1);
		break;
	}
	return 0;
}
