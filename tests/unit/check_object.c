/*
 * Unit tests of lib/object: the header encoding as fixed bytes, the block format rebuilt
 * from the crypto primitives with an independently computed file key, tamper tests for
 * every way a block can be altered or moved, the nonce budget, and the object headers of
 * the fuzz corpus (tests/fuzz/corpus-ondisk) with seeded mutations of them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/object.h"
#include "lib/secret.h"
#include "tests/fuzz/replay.h"
#include "tests/harness.h"

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
}

static int all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != 0)
			return 0;
	}
	return 1;
}

static enum crypto_cipher loop_cipher(int i)
{
	return i == 0 ? CRYPTO_AES256GCM : CRYPTO_XCHACHA20POLY1305;
}

static void sample_header(struct object_header *header, enum crypto_cipher cipher)
{
	memset(header, 0, sizeof(*header));
	header->format_version = OBJECT_FORMAT_VERSION;
	header->cipher = cipher;
	header->key_version = 0x01020304;
	header->block_size = OBJECT_BLOCK_SIZE;
	for (int i = 0; i < OBJECT_ID_LEN; i++)
		header->object_id[i] = (uint8_t)(0x10 + i);
	for (int i = 0; i < VAULT_ID_LEN; i++)
		header->vault_id[i] = (uint8_t)(0xa0 + i);
}

/* The encoding of sample_header(XChaCha20-Poly1305), byte by byte. */
static const uint8_t header_known[OBJECT_HEADER_LEN] = {
	'V', 'A', 'U', 'L', 'T', 'O', 'B', 'J',
	0x01, 0x00, 0x00, 0x00,                 /* format_version 1 */
	0x02, 0x00, 0x00, 0x00,                 /* cipher 2: xchacha20-poly1305 */
	0x04, 0x03, 0x02, 0x01,                 /* key_version 0x01020304 */
	0x00, 0x10, 0x00, 0x00,                 /* block_size 4096 */
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,   /* object_id */
	0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
	0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,   /* vault_id */
	0, 0, 0, 0, 0, 0, 0, 0,                 /* reserved */
};

START_TEST(test_header_known_answer)
{
	struct object_header header, decoded;
	uint8_t out[OBJECT_HEADER_LEN];

	sample_header(&header, CRYPTO_XCHACHA20POLY1305);
	memset(out, 0xee, sizeof(out));
	object_header_encode(out, &header);
	ck_assert_mem_eq(out, header_known, OBJECT_HEADER_LEN);

	memset(&decoded, 0xee, sizeof(decoded));
	ck_assert_int_eq(object_header_decode(&decoded, header_known), 0);
	ck_assert_uint_eq(decoded.format_version, 1);
	ck_assert_uint_eq(decoded.cipher, CRYPTO_XCHACHA20POLY1305);
	ck_assert_uint_eq(decoded.key_version, 0x01020304);
	ck_assert_uint_eq(decoded.block_size, OBJECT_BLOCK_SIZE);
	ck_assert_mem_eq(decoded.object_id, header.object_id, OBJECT_ID_LEN);
	ck_assert_mem_eq(decoded.vault_id, header.vault_id, VAULT_ID_LEN);
}
END_TEST

START_TEST(test_header_rejects)
{
	struct object_header decoded;
	uint8_t in[OBJECT_HEADER_LEN];

	/* Every magic byte and every reserved byte matters. */
	for (int i = 0; i < 8; i++) {
		memcpy(in, header_known, sizeof(in));
		in[i] ^= 0x20;
		ck_assert_int_eq(object_header_decode(&decoded, in), -EBADMSG);
	}
	for (int i = 56; i < 64; i++) {
		memcpy(in, header_known, sizeof(in));
		in[i] = 1;
		ck_assert_int_eq(object_header_decode(&decoded, in), -EBADMSG);
	}
	memset(in, 0, sizeof(in));
	ck_assert_int_eq(object_header_decode(&decoded, in), -EBADMSG);

	memcpy(in, header_known, sizeof(in));
	in[8] = 2;   /* format version 2 */
	ck_assert_int_eq(object_header_decode(&decoded, in), -EPROTONOSUPPORT);
	memcpy(in, header_known, sizeof(in));
	in[8] = 0;   /* format version 0 */
	ck_assert_int_eq(object_header_decode(&decoded, in), -EPROTONOSUPPORT);
	memcpy(in, header_known, sizeof(in));
	in[21] = 0x20;   /* block size 8192 */
	ck_assert_int_eq(object_header_decode(&decoded, in), -EPROTONOSUPPORT);
	memcpy(in, header_known, sizeof(in));
	in[12] = 3;   /* unknown cipher */
	ck_assert_int_eq(object_header_decode(&decoded, in), -EPROTONOSUPPORT);
}
END_TEST

START_TEST(test_geometry)
{
	ck_assert_uint_eq(object_block_stride(CRYPTO_AES256GCM), 12 + 4096 + 16);
	ck_assert_uint_eq(object_block_stride(CRYPTO_XCHACHA20POLY1305), 24 + 4096 + 16);
	ck_assert_int_eq(object_block_offset(CRYPTO_AES256GCM, 0), 64);
	ck_assert_int_eq(object_block_offset(CRYPTO_AES256GCM, 3), 64 + 3 * 4124);
	ck_assert_int_eq(object_block_offset(CRYPTO_XCHACHA20POLY1305, 1), 64 + 4136);
	ck_assert_int_eq(object_block_offset(CRYPTO_XCHACHA20POLY1305, UINT64_C(1) << 32),
			 64 + (INT64_C(1) << 32) * 4136);
	ck_assert_uint_eq(object_block_count(0), 0);
	ck_assert_uint_eq(object_block_count(1), 1);
	ck_assert_uint_eq(object_block_count(4095), 1);
	ck_assert_uint_eq(object_block_count(4096), 1);
	ck_assert_uint_eq(object_block_count(4097), 2);
	ck_assert_uint_eq(object_block_count(UINT64_MAX), (UINT64_MAX >> 12) + 1);
}
END_TEST

/*
 * File key for DEK = 0x42 * 32 and sample_header ids, computed independently with Python:
 *   hashlib.blake2b(b"vaultfs.v1.object-key\0" + vault_id + object_id,
 *                   key=b"\x42" * 32, digest_size=32)
 */
static const uint8_t file_key_known[CRYPTO_KEY_LEN] = {
	0xf4, 0xa8, 0x7c, 0x48, 0xff, 0x35, 0x8d, 0x26, 0x6e, 0x02, 0x7a, 0x37, 0x97, 0x33, 0x1c, 0x32,
	0x4e, 0xf8, 0xc0, 0x6f, 0x76, 0x18, 0xdc, 0x47, 0x0d, 0xcd, 0x5b, 0x46, 0x86, 0x58, 0x09, 0x0d,
};

/* vault id || object id || key version LE32 || index LE64, as object.h documents. */
static void known_ad(uint8_t ad[44], const struct object_header *header, uint64_t index)
{
	memcpy(ad, header->vault_id, 16);
	memcpy(ad + 16, header->object_id, 16);
	for (int i = 0; i < 4; i++)
		ad[32 + i] = (uint8_t)(header->key_version >> (8 * i));
	for (int i = 0; i < 8; i++)
		ad[36 + i] = (uint8_t)(index >> (8 * i));
}

struct fixture {
	struct object_header header;
	uint8_t *dek;
	struct object_key *key;
	uint8_t plain[OBJECT_BLOCK_SIZE];
	uint8_t block[24 + OBJECT_BLOCK_SIZE + CRYPTO_TAG_LEN];
	uint8_t back[OBJECT_BLOCK_SIZE];
	size_t stride;
};

/* Returns 0 when the cipher cannot run on this CPU (then object_key_new must say so). */
static int fixture_init(struct fixture *f, enum crypto_cipher cipher)
{
	int ret;

	memset(f, 0, sizeof(*f));
	sample_header(&f->header, cipher);
	f->dek = secret_alloc(CRYPTO_KEY_LEN);
	ck_assert_ptr_nonnull(f->dek);
	memset(f->dek, 0x42, CRYPTO_KEY_LEN);
	ret = object_key_new(&f->key, &f->header, f->dek);
	if (!crypto_cipher_available(cipher)) {
		ck_assert_int_eq(ret, -ENOTSUP);
		secret_free(f->dek);
		return 0;
	}
	ck_assert_int_eq(ret, 0);
	for (size_t i = 0; i < sizeof(f->plain); i++)
		f->plain[i] = (uint8_t)(i * 7 + 3);
	f->stride = object_block_stride(cipher);
	ck_assert_uint_le(f->stride, sizeof(f->block));
	return 1;
}

static void fixture_release(struct fixture *f)
{
	object_key_free(f->key);
	secret_free(f->dek);
}

/* Open the block with the key of header (DEK 0x42...), expecting -EBADMSG and a wipe. */
static void expect_rejected(struct fixture *f, const uint8_t *block, uint64_t index,
			    const struct object_header *header, const char *what)
{
	struct object_key *key;

	ck_assert_int_eq(object_key_new(&key, header, f->dek), 0);
	memset(f->back, 0xaa, sizeof(f->back));
	ck_assert_msg(object_block_open(f->back, block, index, key) == -EBADMSG,
		      "accepted: %s", what);
	ck_assert_msg(all_zero(f->back, sizeof(f->back)), "not wiped: %s", what);
	object_key_free(key);
}

START_TEST(test_block_known_format)
{
	struct fixture f;
	struct crypto_aead_key *aead;
	uint8_t ad[44];
	size_t nonce_len;

	if (!fixture_init(&f, loop_cipher(_i)))
		return;
	nonce_len = crypto_nonce_len(loop_cipher(_i));
	ck_assert_int_eq(crypto_aead_key_new(&aead, loop_cipher(_i), file_key_known), 0);

	/* object_block_seal output opens with the independently derived key and AD. */
	ck_assert_int_eq(object_block_seal(f.block, f.plain, 5, f.key), 0);
	known_ad(ad, &f.header, 5);
	ck_assert_int_eq(crypto_aead_open(f.back, f.block + nonce_len,
					  OBJECT_BLOCK_SIZE + CRYPTO_TAG_LEN, ad, sizeof(ad),
					  f.block, aead), 0);
	ck_assert_mem_eq(f.back, f.plain, OBJECT_BLOCK_SIZE);

	/* And a block built from the documented format opens with object_block_open. */
	known_ad(ad, &f.header, 0x0102030405060708);
	memset(f.block, 0x5a, nonce_len);
	ck_assert_int_eq(crypto_aead_seal(f.block + nonce_len, f.plain, OBJECT_BLOCK_SIZE, ad,
					  sizeof(ad), f.block, aead), 0);
	memset(f.back, 0, sizeof(f.back));
	ck_assert_int_eq(object_block_open(f.back, f.block, 0x0102030405060708, f.key), 0);
	ck_assert_mem_eq(f.back, f.plain, OBJECT_BLOCK_SIZE);

	crypto_aead_key_free(aead);
	fixture_release(&f);
}
END_TEST

START_TEST(test_block_round_trip)
{
	struct fixture f;
	uint8_t again[sizeof(f.block)];

	if (!fixture_init(&f, loop_cipher(_i)))
		return;
	ck_assert_int_eq(object_block_seal(f.block, f.plain, 0, f.key), 0);
	ck_assert_mem_ne(f.block + crypto_nonce_len(loop_cipher(_i)), f.plain, 64);
	ck_assert_int_eq(object_block_open(f.back, f.block, 0, f.key), 0);
	ck_assert_mem_eq(f.back, f.plain, OBJECT_BLOCK_SIZE);

	/* The same plaintext at the same index never gives the same bytes (fresh nonce). */
	ck_assert_int_eq(object_block_seal(again, f.plain, 0, f.key), 0);
	ck_assert_mem_ne(again, f.block, crypto_nonce_len(loop_cipher(_i)));
	ck_assert_mem_ne(again, f.block, f.stride);
	fixture_release(&f);
}
END_TEST

START_TEST(test_block_tamper)
{
	struct fixture f;
	struct object_header other;
	uint8_t bad[sizeof(f.block)];
	size_t nonce_len;

	if (!fixture_init(&f, loop_cipher(_i)))
		return;
	nonce_len = crypto_nonce_len(loop_cipher(_i));
	ck_assert_int_eq(object_block_seal(f.block, f.plain, 7, f.key), 0);

	/* Flipped bit in the nonce, first/middle/last ciphertext byte, and the tag. */
	{
		const size_t positions[] = {
			0, nonce_len - 1, nonce_len, nonce_len + 2048,
			nonce_len + OBJECT_BLOCK_SIZE - 1, nonce_len + OBJECT_BLOCK_SIZE,
			f.stride - 1,
		};
		for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
			memcpy(bad, f.block, f.stride);
			bad[positions[i]] ^= 0x01;
			expect_rejected(&f, bad, 7, &f.header, "flipped bit");
		}
	}
	/* Moved within the file. */
	expect_rejected(&f, f.block, 6, &f.header, "index 6");
	expect_rejected(&f, f.block, 8, &f.header, "index 8");
	expect_rejected(&f, f.block, 7 | (UINT64_C(1) << 32), &f.header, "index high bits");
	/* Moved to another object of the same vault. */
	other = f.header;
	other.object_id[15] ^= 1;
	expect_rejected(&f, f.block, 7, &other, "other object id");
	/* Moved to another vault. */
	other = f.header;
	other.vault_id[0] ^= 1;
	expect_rejected(&f, f.block, 7, &other, "other vault id");
	/* Opened under another key version (same DEK bytes: the AD alone must catch it). */
	other = f.header;
	other.key_version += 1;
	expect_rejected(&f, f.block, 7, &other, "other key version");
	/* All-zero block: never read as a hole. */
	memset(bad, 0, sizeof(bad));
	expect_rejected(&f, bad, 7, &f.header, "all-zero block");
	/* Truncated: a short read leaves the tail zero, or the tag missing. */
	memcpy(bad, f.block, f.stride);
	memset(bad + f.stride - CRYPTO_TAG_LEN, 0, CRYPTO_TAG_LEN);
	expect_rejected(&f, bad, 7, &f.header, "truncated tag");
	memcpy(bad, f.block, f.stride);
	memset(bad + f.stride / 2, 0, f.stride - f.stride / 2);
	expect_rejected(&f, bad, 7, &f.header, "truncated block");

	/* Another DEK. */
	{
		struct object_key *key;

		f.dek[0] ^= 1;
		ck_assert_int_eq(object_key_new(&key, &f.header, f.dek), 0);
		memset(f.back, 0xaa, sizeof(f.back));
		ck_assert_int_eq(object_block_open(f.back, f.block, 7, key), -EBADMSG);
		ck_assert(all_zero(f.back, sizeof(f.back)));
		object_key_free(key);
		f.dek[0] ^= 1;
	}
	/* The untouched block still opens. */
	ck_assert_int_eq(object_block_open(f.back, f.block, 7, f.key), 0);
	ck_assert_mem_eq(f.back, f.plain, OBJECT_BLOCK_SIZE);
	fixture_release(&f);
}
END_TEST

START_TEST(test_key_errors)
{
	struct object_header header;
	struct object_key *key = NULL;
	uint8_t dek[CRYPTO_KEY_LEN] = { 0 };

	sample_header(&header, (enum crypto_cipher)3);
	ck_assert_int_eq(object_key_new(&key, &header, dek), -EINVAL);
	sample_header(&header, CRYPTO_XCHACHA20POLY1305);
	header.block_size = 8192;
	ck_assert_int_eq(object_key_new(&key, &header, dek), -EINVAL);
	ck_assert_ptr_null(key);
	object_key_free(NULL);
}
END_TEST

START_TEST(test_budget_steps)
{
	struct object_budget budget = { 0, 0 };
	const uint64_t max = OBJECT_MAX_ENCRYPTIONS;

	/* The first encryption needs a reservation persisted first. */
	ck_assert_int_eq(object_budget_take(&budget, 1, max), 1);
	ck_assert_uint_eq(budget.used, 1);
	ck_assert_uint_eq(budget.reserved, OBJECT_BUDGET_STEP);
	/* Then the step is consumed without touching the disk. */
	ck_assert_int_eq(object_budget_take(&budget, OBJECT_BUDGET_STEP - 2, max), 0);
	ck_assert_int_eq(object_budget_take(&budget, 1, max), 0);
	ck_assert_uint_eq(budget.used, OBJECT_BUDGET_STEP);
	ck_assert_uint_eq(budget.reserved, OBJECT_BUDGET_STEP);
	ck_assert_int_eq(object_budget_take(&budget, 0, max), 0);
	/* One more crosses into the next step. */
	ck_assert_int_eq(object_budget_take(&budget, 1, max), 1);
	ck_assert_uint_eq(budget.reserved, 2 * OBJECT_BUDGET_STEP);
	/* A large take reserves whole steps, enough to cover it. */
	ck_assert_int_eq(object_budget_take(&budget, 3 * OBJECT_BUDGET_STEP, max), 1);
	ck_assert_uint_eq(budget.used, 4 * OBJECT_BUDGET_STEP + 1);
	ck_assert_uint_eq(budget.reserved, 5 * OBJECT_BUDGET_STEP);
	ck_assert_uint_eq(budget.reserved % OBJECT_BUDGET_STEP, 0);

	/* After a restart, used starts from the persisted reservation (over-count). */
	budget.used = budget.reserved;
	ck_assert_int_eq(object_budget_take(&budget, 1, max), 1);
	ck_assert_uint_eq(budget.reserved, 6 * OBJECT_BUDGET_STEP);
}
END_TEST

START_TEST(test_budget_limit)
{
	const uint64_t max = OBJECT_MAX_ENCRYPTIONS;
	struct object_budget budget = { max - 10, max - 10 };

	/* The last reservation is clamped to the limit, never beyond. */
	ck_assert_int_eq(object_budget_take(&budget, 4, max), 1);
	ck_assert_uint_eq(budget.reserved, max);
	ck_assert_int_eq(object_budget_take(&budget, 6, max), 0);
	ck_assert_uint_eq(budget.used, max);
	/* Exhausted: nothing is taken. */
	ck_assert_int_eq(object_budget_take(&budget, 1, max), -EKEYEXPIRED);
	ck_assert_uint_eq(budget.used, max);
	ck_assert_uint_eq(budget.reserved, max);

	/* A take that would cross the limit is refused whole. */
	budget.used = max - 5;
	budget.reserved = max - 5;
	ck_assert_int_eq(object_budget_take(&budget, 6, max), -EKEYEXPIRED);
	ck_assert_uint_eq(budget.used, max - 5);
	ck_assert_uint_eq(budget.reserved, max - 5);
	ck_assert_int_eq(object_budget_take(&budget, UINT64_MAX, max), -EKEYEXPIRED);
	ck_assert_uint_eq(budget.used, max - 5);

	/* A limit that is not a multiple of the step. */
	budget.used = 0;
	budget.reserved = 0;
	ck_assert_int_eq(object_budget_take(&budget, 1, 100), 1);
	ck_assert_uint_eq(budget.reserved, 100);
	ck_assert_int_eq(object_budget_take(&budget, 99, 100), 0);
	ck_assert_int_eq(object_budget_take(&budget, 1, 100), -EKEYEXPIRED);
	ck_assert_uint_eq(budget.used, 100);

	/* The budget bound itself: 2^32 encryptions per key, reserved 2^16 at a time. */
	ck_assert_uint_eq(OBJECT_MAX_ENCRYPTIONS, UINT64_C(4294967296));
	ck_assert_uint_eq(OBJECT_MAX_ENCRYPTIONS % OBJECT_BUDGET_STEP, 0);
}
END_TEST

/* The fuzz corpus and seeded mutations of its valid headers: the decoder's verdict is the
 * one the layout gives, and a header accepted re-encodes to its bytes. */

#define ONDISK_CORPUS TEST_DATA_DIR "/fuzz/corpus-ondisk"
#define HEADER_MUTATIONS 50000

static bool replay_header(void *arg, const uint8_t *bytes, size_t len)
{
	(void)arg;
	uint8_t in[OBJECT_HEADER_LEN] = { 0 }, out[OBJECT_HEADER_LEN];
	struct object_header header;
	uint32_t version, cipher, block_size;
	bool layout_ok, supported;
	int ret;

	/* The reader hands over exactly OBJECT_HEADER_LEN bytes; a short file reads zeros. */
	memcpy(in, bytes, len < sizeof(in) ? len : sizeof(in));
	version = get_le32(in + 8);
	cipher = get_le32(in + 12);
	block_size = get_le32(in + 20);
	layout_ok = memcmp(in, "VAULTOBJ", 8) == 0 && all_zero(in + 56, 8);
	supported = version == OBJECT_FORMAT_VERSION && block_size == OBJECT_BLOCK_SIZE &&
		    (cipher == CRYPTO_AES256GCM || cipher == CRYPTO_XCHACHA20POLY1305);
	ret = object_header_decode(&header, in);
	if (!layout_ok) {
		ck_assert_int_eq(ret, -EBADMSG);
		return false;
	}
	if (!supported) {
		ck_assert_int_eq(ret, -EPROTONOSUPPORT);
		return false;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_eq(header.key_version, get_le32(in + 16));
	object_header_encode(out, &header);
	ck_assert(memcmp(out, in, sizeof(in)) == 0);
	return true;
}

START_TEST(test_header_fuzz_replay)
{
	uint8_t buf[2 * OBJECT_HEADER_LEN];
	struct replay_corpus corpus;
	uint64_t state = UINT64_C(0x6f626a6563746864);

	ck_assert_int_eq(replay_corpus_load(&corpus, ONDISK_CORPUS, REPLAY_ONDISK_OBJECT_HEADER,
					    sizeof(buf)), 0);
	struct replay_counts c = replay_run(&corpus, replay_header, NULL, &state,
					    HEADER_MUTATIONS, buf, sizeof(buf), NULL);
	/* Both ciphers, and malformed ones. */
	ck_assert_uint_ge(c.valid, 2);
	ck_assert_uint_gt(c.inputs, c.valid + 4);
	ck_assert_uint_gt(c.accepted, HEADER_MUTATIONS / 100);
	ck_assert_uint_gt(c.rejected, HEADER_MUTATIONS / 2);
	replay_corpus_release(&corpus);
}
END_TEST

static Suite *object_suite(void)
{
	Suite *suite = suite_create("object");
	TCase *tc;

	tc = tcase_create("header");
	tcase_add_test(tc, test_header_known_answer);
	tcase_add_test(tc, test_header_rejects);
	tcase_add_test(tc, test_geometry);
	tcase_add_test(tc, test_header_fuzz_replay);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(suite, tc);

	tc = tcase_create("block");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_block_known_format, 0, 2);
	tcase_add_loop_test(tc, test_block_round_trip, 0, 2);
	tcase_add_loop_test(tc, test_block_tamper, 0, 2);
	tcase_add_test(tc, test_key_errors);
	suite_add_tcase(suite, tc);

	tc = tcase_create("budget");
	tcase_add_test(tc, test_budget_steps);
	tcase_add_test(tc, test_budget_limit);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(object_suite());
}
