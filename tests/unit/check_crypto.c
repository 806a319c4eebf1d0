/*
 * Unit tests of lib/crypto: known-answer vectors for both AEADs and the PRF, tamper tests
 * for AEAD and sealed values, cipher names, the strict hex parser used by key files and
 * Argon2id password keys (known answers from the reference implementation).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/secret.h"
#include "tests/harness.h"

/* Test-local hex decoder, independent of crypto_from_hex (which is under test). */
static size_t unhex(uint8_t *out, size_t out_len, const char *hex)
{
	size_t len = strlen(hex) / 2;

	ck_assert_uint_le(len, out_len);
	for (size_t i = 0; i < len; i++) {
		unsigned int byte;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
		out[i] = (uint8_t)byte;
	}
	return len;
}

static int all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != 0)
			return 0;
	}
	return 1;
}

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
}

/* On a CPU without AES-NI the AES-GCM cases can only check the refusal. */
static int cipher_skipped(enum crypto_cipher cipher)
{
	struct crypto_aead_key *key = NULL;
	uint8_t raw[CRYPTO_KEY_LEN] = { 0 };

	if (crypto_cipher_available(cipher))
		return 0;
	ck_assert_int_eq(crypto_aead_key_new(&key, cipher, raw), -ENOTSUP);
	return 1;
}

/*
 * AES-256-GCM, Test Case 16 of McGrew and Viega, "The Galois/Counter Mode of Operation
 * (GCM)", revised 2005 (256-bit key, 96-bit IV, 60-byte plaintext, 20-byte AAD).
 */
static const char gcm16_key[] =
	"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
static const char gcm16_iv[] = "cafebabefacedbaddecaf888";
static const char gcm16_plain[] =
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
static const char gcm16_aad[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
static const char gcm16_cipher_tag[] =
	"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	"8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
	"76fc6ece0f4e1768cddf8853bb2d551b";

/* XChaCha20-Poly1305, draft-irtf-cfrg-xchacha-03, appendix A.3.1. */
static const char xchacha_key[] =
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
static const char xchacha_nonce[] = "404142434445464748494a4b4c4d4e4f5051525354555657";
static const char xchacha_aad[] = "50515253c0c1c2c3c4c5c6c7";
static const char xchacha_plain[] =
	"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
	"for the future, sunscreen would be it.";
static const char xchacha_cipher_tag[] =
	"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
	"731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
	"2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
	"21f9664c97637da9768812f615c68b13b52e"
	"c0875924c1c7987947deafd8780acf49";

struct aead_vector {
	enum crypto_cipher cipher;
	uint8_t key[CRYPTO_KEY_LEN];
	uint8_t nonce[CRYPTO_NONCE_MAX];
	uint8_t aad[32];
	uint8_t plain[128];
	uint8_t expected[160];
	size_t aad_len, plain_len, expected_len;
};

static void load_vector(struct aead_vector *v, int which)
{
	memset(v, 0, sizeof(*v));
	if (which == 0) {
		v->cipher = CRYPTO_AES256GCM;
		unhex(v->key, sizeof(v->key), gcm16_key);
		unhex(v->nonce, sizeof(v->nonce), gcm16_iv);
		v->aad_len = unhex(v->aad, sizeof(v->aad), gcm16_aad);
		v->plain_len = unhex(v->plain, sizeof(v->plain), gcm16_plain);
		v->expected_len = unhex(v->expected, sizeof(v->expected), gcm16_cipher_tag);
	} else {
		v->cipher = CRYPTO_XCHACHA20POLY1305;
		unhex(v->key, sizeof(v->key), xchacha_key);
		unhex(v->nonce, sizeof(v->nonce), xchacha_nonce);
		v->aad_len = unhex(v->aad, sizeof(v->aad), xchacha_aad);
		v->plain_len = strlen(xchacha_plain);
		memcpy(v->plain, xchacha_plain, v->plain_len);
		v->expected_len = unhex(v->expected, sizeof(v->expected), xchacha_cipher_tag);
	}
	ck_assert_uint_eq(v->expected_len, v->plain_len + CRYPTO_TAG_LEN);
}

START_TEST(test_aead_known_answer)
{
	struct aead_vector v;
	struct crypto_aead_key *key;
	uint8_t out[160], back[128];

	load_vector(&v, _i);
	if (cipher_skipped(v.cipher))
		return;
	ck_assert_int_eq(crypto_aead_key_new(&key, v.cipher, v.key), 0);
	ck_assert_int_eq(crypto_aead_key_cipher(key), v.cipher);

	ck_assert_int_eq(crypto_aead_seal(out, v.plain, v.plain_len, v.aad, v.aad_len, v.nonce,
					  key), 0);
	ck_assert_mem_eq(out, v.expected, v.expected_len);

	ck_assert_int_eq(crypto_aead_open(back, v.expected, v.expected_len, v.aad, v.aad_len,
					  v.nonce, key), 0);
	ck_assert_mem_eq(back, v.plain, v.plain_len);

	/* In place, as the header allows. */
	memcpy(out, v.plain, v.plain_len);
	ck_assert_int_eq(crypto_aead_seal(out, out, v.plain_len, v.aad, v.aad_len, v.nonce, key),
			 0);
	ck_assert_mem_eq(out, v.expected, v.expected_len);
	ck_assert_int_eq(crypto_aead_open(out, out, v.expected_len, v.aad, v.aad_len, v.nonce,
					  key), 0);
	ck_assert_mem_eq(out, v.plain, v.plain_len);
	crypto_aead_key_free(key);
}
END_TEST

START_TEST(test_aead_tamper)
{
	struct aead_vector v;
	struct crypto_aead_key *key;
	uint8_t c[160], back[128];
	size_t nonce_len;

	load_vector(&v, _i);
	if (cipher_skipped(v.cipher))
		return;
	nonce_len = crypto_nonce_len(v.cipher);
	ck_assert_int_eq(crypto_aead_key_new(&key, v.cipher, v.key), 0);

	/* Every single-bit flip of ciphertext or tag is caught and the output wiped. */
	for (size_t bit = 0; bit < 8 * v.expected_len; bit++) {
		memcpy(c, v.expected, v.expected_len);
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memset(back, 0xaa, sizeof(back));
		ck_assert_int_eq(crypto_aead_open(back, c, v.expected_len, v.aad, v.aad_len,
						  v.nonce, key), -EBADMSG);
		ck_assert(all_zero(back, v.plain_len));
	}
	/* Flipped bits in nonce and associated data. */
	for (size_t bit = 0; bit < 8 * nonce_len; bit += 7) {
		uint8_t nonce[CRYPTO_NONCE_MAX];

		memcpy(nonce, v.nonce, sizeof(nonce));
		nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_int_eq(crypto_aead_open(back, v.expected, v.expected_len, v.aad,
						  v.aad_len, nonce, key), -EBADMSG);
	}
	v.aad[0] ^= 1;
	memset(back, 0xaa, sizeof(back));
	ck_assert_int_eq(crypto_aead_open(back, v.expected, v.expected_len, v.aad, v.aad_len,
					  v.nonce, key), -EBADMSG);
	ck_assert(all_zero(back, v.plain_len));
	v.aad[0] ^= 1;
	/* Truncated by one byte, and truncated to nothing but a tag's worth. */
	ck_assert_int_eq(crypto_aead_open(back, v.expected, v.expected_len - 1, v.aad,
					  v.aad_len, v.nonce, key), -EBADMSG);
	ck_assert_int_eq(crypto_aead_open(back, v.expected, CRYPTO_TAG_LEN, v.aad, v.aad_len,
					  v.nonce, key), -EBADMSG);
	ck_assert_int_eq(crypto_aead_open(back, v.expected, CRYPTO_TAG_LEN - 1, v.aad,
					  v.aad_len, v.nonce, key), -EINVAL);
	/* All-zero ciphertext. */
	memset(c, 0, sizeof(c));
	ck_assert_int_eq(crypto_aead_open(back, c, v.expected_len, v.aad, v.aad_len, v.nonce,
					  key), -EBADMSG);
	crypto_aead_key_free(key);

	/* Another key. */
	v.key[31] ^= 0x80;
	ck_assert_int_eq(crypto_aead_key_new(&key, v.cipher, v.key), 0);
	ck_assert_int_eq(crypto_aead_open(back, v.expected, v.expected_len, v.aad, v.aad_len,
					  v.nonce, key), -EBADMSG);
	crypto_aead_key_free(key);
}
END_TEST

START_TEST(test_aead_key_errors)
{
	struct crypto_aead_key *key = NULL;
	uint8_t raw[CRYPTO_KEY_LEN] = { 0 };

	ck_assert_int_eq(crypto_aead_key_new(&key, (enum crypto_cipher)0, raw), -EINVAL);
	ck_assert_int_eq(crypto_aead_key_new(&key, (enum crypto_cipher)3, raw), -EINVAL);
	ck_assert_ptr_null(key);
	crypto_aead_key_free(NULL);
}
END_TEST

START_TEST(test_cipher_names)
{
	enum crypto_cipher cipher;

	ck_assert_str_eq(crypto_cipher_name(CRYPTO_AES256GCM), "aes-256-gcm");
	ck_assert_str_eq(crypto_cipher_name(CRYPTO_XCHACHA20POLY1305), "xchacha20-poly1305");
	ck_assert_ptr_null(crypto_cipher_name((enum crypto_cipher)0));
	ck_assert_ptr_null(crypto_cipher_name((enum crypto_cipher)3));

	ck_assert_int_eq(crypto_cipher_from_name(&cipher, "aes-256-gcm"), 0);
	ck_assert_int_eq(cipher, CRYPTO_AES256GCM);
	ck_assert_int_eq(crypto_cipher_from_name(&cipher, "xchacha20-poly1305"), 0);
	ck_assert_int_eq(cipher, CRYPTO_XCHACHA20POLY1305);
	ck_assert_int_eq(crypto_cipher_from_name(&cipher, "AES-256-GCM "), -EINVAL);
	ck_assert_int_eq(crypto_cipher_from_name(&cipher, "aes"), -EINVAL);
	ck_assert_int_eq(crypto_cipher_from_name(&cipher, ""), -EINVAL);
	ck_assert_int_eq(crypto_cipher_from_name(&cipher, NULL), -EINVAL);

	ck_assert_uint_eq(crypto_nonce_len(CRYPTO_AES256GCM), 12);
	ck_assert_uint_eq(crypto_nonce_len(CRYPTO_XCHACHA20POLY1305), 24);
	ck_assert(crypto_cipher_available(CRYPTO_XCHACHA20POLY1305));
	ck_assert(!crypto_cipher_available((enum crypto_cipher)3));
	ck_assert(crypto_cipher_available(crypto_cipher_default()));
	if (crypto_cipher_available(CRYPTO_AES256GCM))
		ck_assert_int_eq(crypto_cipher_default(), CRYPTO_AES256GCM);
	else
		ck_assert_int_eq(crypto_cipher_default(), CRYPTO_XCHACHA20POLY1305);
}
END_TEST

/*
 * crypto_prf known answers, computed independently with Python:
 *   hashlib.blake2b(context.encode() + b"\0" + b"vaultfs known answer",
 *                   key=bytes(range(32)), digest_size=32).hexdigest()
 * These pin the context strings: changing one changes every derived key on disk.
 */
static const char *const prf_expected[CRYPTO_CTX_COUNT] = {
	[CRYPTO_CTX_OBJECT_KEY] =
		"3c17755114d73134a531e7248567fa3882a34865ddce36149286a185e4bf03b7",
	[CRYPTO_CTX_META_KEY] =
		"bb6adcf5a3d38ced4db213f4e45a13a0c5ed46cee065c63a31b002e455362513",
	[CRYPTO_CTX_KEY_CHECK] =
		"614a42a05bc1138e62581e619defc5a902e2014fea2ba3c059d99ab837991f9a",
	[CRYPTO_CTX_HEADER_MAC] =
		"ca1f1982cb8fab8a85ddf71bed5069aaeb777c24ae8e52a81df359a10b22e6f5",
	[CRYPTO_CTX_SEAL_SUBKEY] =
		"9ce173f6127f0d517a5eadd4b2f7c240257d118014d4e243625e91a2cb301d20",
	[CRYPTO_CTX_NAME_HASH] =
		"31d568ed9c4b7f67679760d49ce408e4be464313e694632d8dad76cb1a0d11ed",
	[CRYPTO_CTX_DIR_HASH] =
		"240959d6cad274df2b7c72fa93f11de735d2c43d165f85515480fa230b1e4b00",
	[CRYPTO_CTX_KEK_CHECK] =
		"fe6300168d8db833023965ac3c27a9a75dba07ab84bbc631055275af3d531a49",
	[CRYPTO_CTX_AUDIT_PATH_KEY] =
		"b8f5f54cf9a4acaf2ba124a3d7befd285a94d5988a982e81806c78d6bee7dcda",
	[CRYPTO_CTX_AUDIT_PATH_HASH] =
		"1924b5ba44c79d80611d0eb93350b755b36caa2e58d8f31042a186e0e3935282",
	[CRYPTO_CTX_AUDIT_PATH_SEAL] =
		"e16d1c2128a673e04373c5c663bbb27457e192f393f58260a8a2320d544b70e1",
};
/* Every context has its answer (computed with Python's hashlib.blake2b). */
_Static_assert(CRYPTO_CTX_COUNT == 11, "a new context needs its known answer above");
static const char prf_input[] = "vaultfs known answer";

static void prf_key(uint8_t key[CRYPTO_KEY_LEN])
{
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		key[i] = (uint8_t)i;
}

START_TEST(test_prf_known_answer)
{
	uint8_t key[CRYPTO_KEY_LEN], out[32], expected[32];

	prf_key(key);
	unhex(expected, sizeof(expected), prf_expected[_i]);
	ck_assert_int_eq(crypto_prf(out, sizeof(out), (enum crypto_context)_i, prf_input,
				    strlen(prf_input), key), 0);
	ck_assert_mem_eq(out, expected, sizeof(expected));
}
END_TEST

START_TEST(test_prf_lengths)
{
	uint8_t key[CRYPTO_KEY_LEN], out[65], expected[64];

	prf_key(key);
	/* digest_size=16, empty input */
	unhex(expected, sizeof(expected), "bda02f57ea8159ad3c6d5e331a3056d0");
	ck_assert_int_eq(crypto_prf(out, 16, CRYPTO_CTX_NAME_HASH, NULL, 0, key), 0);
	ck_assert_mem_eq(out, expected, 16);
	/* digest_size=64 */
	unhex(expected, sizeof(expected),
	      "4696aef7a86402e61c075850a93dd2b19265a082482ae7029a64d1a9c803c6ec"
	      "c060b8186766f778832e387504d059d9318004276de5016aa69db5bea1142563");
	ck_assert_int_eq(crypto_prf(out, 64, CRYPTO_CTX_KEY_CHECK, prf_input, strlen(prf_input),
				    key), 0);
	ck_assert_mem_eq(out, expected, 64);

	ck_assert_int_eq(crypto_prf(out, 15, CRYPTO_CTX_KEY_CHECK, NULL, 0, key), -EINVAL);
	ck_assert_int_eq(crypto_prf(out, 65, CRYPTO_CTX_KEY_CHECK, NULL, 0, key), -EINVAL);
	ck_assert_int_eq(crypto_prf(out, 32, CRYPTO_CTX_COUNT, NULL, 0, key), -EINVAL);
	ck_assert_int_eq(crypto_prf(out, 32, (enum crypto_context)-1, NULL, 0, key), -EINVAL);
}
END_TEST

START_TEST(test_prf_domain_separation)
{
	uint8_t key[CRYPTO_KEY_LEN], outs[CRYPTO_CTX_COUNT][32];

	prf_key(key);
	for (int i = 0; i < CRYPTO_CTX_COUNT; i++)
		ck_assert_int_eq(crypto_prf(outs[i], 32, (enum crypto_context)i, "x", 1, key), 0);
	for (int i = 0; i < CRYPTO_CTX_COUNT; i++) {
		for (int j = i + 1; j < CRYPTO_CTX_COUNT; j++)
			ck_assert_mem_ne(outs[i], outs[j], 32);
	}
}
END_TEST

START_TEST(test_random)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };

	crypto_random(a, sizeof(a));
	crypto_random(b, sizeof(b));
	ck_assert_mem_ne(a, b, sizeof(a));
	ck_assert(!all_zero(a, sizeof(a)));
}
END_TEST

START_TEST(test_seal_round_trip)
{
	enum crypto_cipher cipher = _i == 0 ? CRYPTO_AES256GCM : CRYPTO_XCHACHA20POLY1305;
	size_t nonce_len = crypto_nonce_len(cipher);
	size_t overhead = crypto_seal_overhead(cipher);
	uint8_t key[CRYPTO_KEY_LEN], subkey[CRYPTO_KEY_LEN];
	static const uint8_t m[] = "inode record 42";
	static const uint8_t ad[] = "meta:42";
	uint8_t sealed[128], sealed2[128], back[sizeof(m)];
	size_t sealed_len = sizeof(m) + overhead;
	struct crypto_aead_key *aead;

	if (cipher_skipped(cipher))
		return;
	ck_assert_uint_eq(overhead, CRYPTO_SEAL_SALT_LEN + nonce_len + CRYPTO_TAG_LEN);
	crypto_random(key, sizeof(key));
	ck_assert_int_eq(crypto_seal(sealed, sealed_len, m, sizeof(m), ad, sizeof(ad), cipher,
				     key), 0);
	ck_assert_int_eq(crypto_unseal(back, sizeof(back), sealed, sealed_len, ad, sizeof(ad),
				       cipher, key), 0);
	ck_assert_mem_eq(back, m, sizeof(m));

	/* Layout salt || nonce || ciphertext || tag under PRF(key, SEAL_SUBKEY, salt),
	 * rebuilt here from the primitives. */
	ck_assert_int_eq(crypto_prf(subkey, sizeof(subkey), CRYPTO_CTX_SEAL_SUBKEY, sealed,
				    CRYPTO_SEAL_SALT_LEN, key), 0);
	ck_assert_int_eq(crypto_aead_key_new(&aead, cipher, subkey), 0);
	memset(back, 0, sizeof(back));
	ck_assert_int_eq(crypto_aead_open(back, sealed + CRYPTO_SEAL_SALT_LEN + nonce_len,
					  sizeof(m) + CRYPTO_TAG_LEN, ad, sizeof(ad),
					  sealed + CRYPTO_SEAL_SALT_LEN, aead), 0);
	ck_assert_mem_eq(back, m, sizeof(m));
	crypto_aead_key_free(aead);

	/* Fresh salt and nonce each time. */
	ck_assert_int_eq(crypto_seal(sealed2, sealed_len, m, sizeof(m), ad, sizeof(ad), cipher,
				     key), 0);
	ck_assert_mem_ne(sealed2, sealed, CRYPTO_SEAL_SALT_LEN);
	ck_assert_mem_ne(sealed2 + CRYPTO_SEAL_SALT_LEN, sealed + CRYPTO_SEAL_SALT_LEN,
			 nonce_len);

	/* Empty message. */
	ck_assert_int_eq(crypto_seal(sealed2, overhead, NULL, 0, NULL, 0, cipher, key), 0);
	ck_assert_int_eq(crypto_unseal(NULL, 0, sealed2, overhead, NULL, 0, cipher, key), 0);
}
END_TEST

START_TEST(test_seal_tamper)
{
	enum crypto_cipher cipher = _i == 0 ? CRYPTO_AES256GCM : CRYPTO_XCHACHA20POLY1305;
	size_t overhead = crypto_seal_overhead(cipher);
	uint8_t key[CRYPTO_KEY_LEN];
	static const uint8_t m[] = "wrapped dataset key, version 3";
	static const uint8_t ad[] = "dataset cardio v3";
	uint8_t sealed[128], c[128], back[sizeof(m)];
	size_t sealed_len = sizeof(m) + overhead;

	if (cipher_skipped(cipher))
		return;
	crypto_random(key, sizeof(key));
	ck_assert_int_eq(crypto_seal(sealed, sealed_len, m, sizeof(m), ad, sizeof(ad), cipher,
				     key), 0);

	/* Any bit of salt, nonce, ciphertext or tag. */
	for (size_t bit = 0; bit < 8 * sealed_len; bit++) {
		memcpy(c, sealed, sealed_len);
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memset(back, 0xaa, sizeof(back));
		ck_assert_int_eq(crypto_unseal(back, sizeof(back), c, sealed_len, ad, sizeof(ad),
					       cipher, key), -EBADMSG);
		ck_assert(all_zero(back, sizeof(back)));
	}
	/* Other associated data, other key, other cipher's reading of the same bytes. */
	memset(back, 0xaa, sizeof(back));
	ck_assert_int_eq(crypto_unseal(back, sizeof(back), sealed, sealed_len, ad,
				       sizeof(ad) - 1, cipher, key), -EBADMSG);
	ck_assert(all_zero(back, sizeof(back)));
	key[0] ^= 1;
	ck_assert_int_eq(crypto_unseal(back, sizeof(back), sealed, sealed_len, ad, sizeof(ad),
				       cipher, key), -EBADMSG);
	key[0] ^= 1;
	/* All zero. */
	memset(c, 0, sealed_len);
	ck_assert_int_eq(crypto_unseal(back, sizeof(back), c, sealed_len, ad, sizeof(ad),
				       cipher, key), -EBADMSG);
	/* Truncated: lengths that do not add up are -EINVAL, and the output is still wiped. */
	memset(back, 0xaa, sizeof(back));
	ck_assert_int_eq(crypto_unseal(back, sizeof(back), sealed, sealed_len - 1, ad,
				       sizeof(ad), cipher, key), -EINVAL);
	ck_assert_int_eq(crypto_unseal(back, sizeof(back) - 1, sealed, sealed_len - 1, ad,
				       sizeof(ad), cipher, key), -EBADMSG);
	ck_assert(all_zero(back, sizeof(back) - 1));
	ck_assert_int_eq(crypto_unseal(back, 0, sealed, overhead - 1, ad, sizeof(ad), cipher,
				       key), -EINVAL);
	/* Bad lengths and cipher on the sealing side. */
	ck_assert_int_eq(crypto_seal(c, sealed_len - 1, m, sizeof(m), ad, sizeof(ad), cipher,
				     key), -EINVAL);
	ck_assert_int_eq(crypto_seal(c, sealed_len, m, sizeof(m), ad, sizeof(ad),
				     (enum crypto_cipher)3, key), -EINVAL);
	ck_assert_uint_eq(crypto_seal_overhead((enum crypto_cipher)3), 0);
}
END_TEST

START_TEST(test_hex_round_trip)
{
	static const uint8_t bin[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff };
	char hex[2 * sizeof(bin) + 1];
	uint8_t back[sizeof(bin)];

	crypto_to_hex(hex, sizeof(hex), bin, sizeof(bin));
	ck_assert_str_eq(hex, "00017f80abcdefff");
	ck_assert_int_eq(crypto_from_hex(back, sizeof(back), hex, strlen(hex)), 0);
	ck_assert_mem_eq(back, bin, sizeof(bin));
	ck_assert_int_eq(crypto_from_hex(back, sizeof(back), "00017F80ABCDEFFF", 16), 0);
	ck_assert_mem_eq(back, bin, sizeof(bin));
	crypto_to_hex(hex, 1, bin, 0);
	ck_assert_str_eq(hex, "");
}
END_TEST

START_TEST(test_hex_rejects)
{
	static const char *const bad[] = {
		"00112233445566",      /* too short */
		"0011223344556677 ",   /* trailing space (length 17) */
		" 0011223344556677",   /* leading space */
		"001122334455667",     /* odd */
		"00112233445566778",   /* odd, too long */
		"001122334455667788",  /* too long */
		"0011223344556g77",    /* non-hex */
		"00112233 4556677",    /* inner whitespace */
		"00112233:4556677",    /* separator */
		"0011223344556677\n",  /* newline */
		"0x11223344556677",    /* prefix */
		"",
	};
	uint8_t bin[8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(bin, 0xaa, sizeof(bin));
		ck_assert_msg(crypto_from_hex(bin, sizeof(bin), bad[i], strlen(bad[i])) == -EINVAL,
			      "accepted '%s'", bad[i]);
		ck_assert(all_zero(bin, sizeof(bin)));
	}
	/* An embedded NUL inside the stated length. */
	ck_assert_int_eq(crypto_from_hex(bin, sizeof(bin), "00112233\0" "4556677", 16), -EINVAL);
}
END_TEST

/*
 * crypto_password_key known answers, computed independently with the Argon2 reference
 * implementation (Debian's libargon2, called from Python through ctypes):
 *   argon2id_hash_raw(t, m_kib, 1, password, salt = bytes(range(16)), 32 bytes)
 * The reference library gives 0931...3cf7 for its own published vector (t=2, m=65536,
 * "password", "somesalt"), which cannot be replayed here: libsodium requires a 16-byte
 * salt. RFC 9106's Argon2id vector needs p=4, a secret and associated data, none of which
 * libsodium's crypto_pwhash accepts.
 */
struct pwhash_vector {
	const char *password;
	uint64_t opslimit;
	size_t memlimit;
	const char *expected;
};

static const struct pwhash_vector pwhash_vectors[] = {
	{ "correct horse battery staple", 1, 8192,
	  "d17ea6341ca93da6079ea2f64dc4aa31dd1aaf9caa67fb42ac4afd0714706f26" },
	{ "correct horse battery staple", 2, 65536,
	  "2df47ede6358ed17a9976d4fcedb897a10036d432a4acef17d263bfc98bd20ac" },
	{ "", 3, 262144,
	  "286adcceed17da8dc91a44c2268a40b2176f3a73127ed8c2c1eecd19067f3704" },
};

static void pwhash_salt(uint8_t salt[CRYPTO_PWHASH_SALT_LEN])
{
	for (int i = 0; i < CRYPTO_PWHASH_SALT_LEN; i++)
		salt[i] = (uint8_t)i;
}

START_TEST(test_password_key_known_answer)
{
	const struct pwhash_vector *v = &pwhash_vectors[_i];
	uint8_t salt[CRYPTO_PWHASH_SALT_LEN], key[CRYPTO_KEY_LEN], expected[CRYPTO_KEY_LEN];

	pwhash_salt(salt);
	unhex(expected, sizeof(expected), v->expected);
	ck_assert_int_eq(crypto_password_key(key, v->password, strlen(v->password), salt,
					     v->opslimit, v->memlimit), 0);
	ck_assert_mem_eq(key, expected, sizeof(expected));
}
END_TEST

START_TEST(test_password_key_inputs)
{
	static const char password[] = "correct horse battery staple";
	uint8_t salt[CRYPTO_PWHASH_SALT_LEN], key[CRYPTO_KEY_LEN], other[CRYPTO_KEY_LEN];

	pwhash_salt(salt);
	ck_assert_int_eq(crypto_password_key(key, password, strlen(password), salt,
					     CRYPTO_PWHASH_OPSLIMIT_MIN,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), 0);
	/* Every input changes the key: one password byte, one salt bit, each limit. */
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password) - 1, salt,
					     CRYPTO_PWHASH_OPSLIMIT_MIN,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), 0);
	ck_assert_mem_ne(key, other, sizeof(key));
	salt[15] ^= 1;
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt,
					     CRYPTO_PWHASH_OPSLIMIT_MIN,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), 0);
	ck_assert_mem_ne(key, other, sizeof(key));
	salt[15] ^= 1;
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt, 2,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), 0);
	ck_assert_mem_ne(key, other, sizeof(key));
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt,
					     CRYPTO_PWHASH_OPSLIMIT_MIN,
					     2 * CRYPTO_PWHASH_MEMLIMIT_MIN), 0);
	ck_assert_mem_ne(key, other, sizeof(key));

	/* Limits outside MIN..MAX are refused and leave no key behind. */
	memset(other, 0xaa, sizeof(other));
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt, 0,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), -EINVAL);
	ck_assert(all_zero(other, sizeof(other)));
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt,
					     CRYPTO_PWHASH_OPSLIMIT_MIN,
					     CRYPTO_PWHASH_MEMLIMIT_MIN - 1), -EINVAL);
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt,
					     CRYPTO_PWHASH_OPSLIMIT_MAX + 1,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), -EINVAL);
	ck_assert_int_eq(crypto_password_key(other, password, strlen(password), salt,
					     CRYPTO_PWHASH_OPSLIMIT_MIN,
					     CRYPTO_PWHASH_MEMLIMIT_MAX + 1), -EINVAL);
	ck_assert_int_eq(crypto_password_key(other, NULL, 1, salt, CRYPTO_PWHASH_OPSLIMIT_MIN,
					     CRYPTO_PWHASH_MEMLIMIT_MIN), -EINVAL);
}
END_TEST

/* The pooled small random values never repeat, and a forked child does not hand out
 * the values its parent is about to use (nonces would repeat). */
START_TEST(test_random_pool_no_repeats_across_fork)
{
	uint8_t seen[512][16], parent_next[16], child_next[16];
	int pipe_fds[2];

	for (int i = 0; i < 512; i++) {   /* crosses several pool refills */
		crypto_random(seen[i], sizeof(seen[i]));
		for (int j = 0; j < i; j++)
			ck_assert(memcmp(seen[i], seen[j], sizeof(seen[i])) != 0);
	}
	ck_assert_int_eq(pipe(pipe_fds), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		crypto_random(child_next, sizeof(child_next));
		_exit(write(pipe_fds[1], child_next, sizeof(child_next)) == sizeof(child_next) ? 0 : 1);
	}
	crypto_random(parent_next, sizeof(parent_next));
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(read(pipe_fds[0], child_next, sizeof(child_next)), sizeof(child_next));
	ck_assert(memcmp(parent_next, child_next, sizeof(parent_next)) != 0);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}
END_TEST

static Suite *crypto_suite(void)
{
	Suite *suite = suite_create("crypto");
	TCase *tc;

	tc = tcase_create("aead");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_aead_known_answer, 0, 2);
	tcase_add_loop_test(tc, test_aead_tamper, 0, 2);
	tcase_add_test(tc, test_aead_key_errors);
	tcase_add_test(tc, test_cipher_names);
	suite_add_tcase(suite, tc);

	tc = tcase_create("prf");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_prf_known_answer, 0, CRYPTO_CTX_COUNT);
	tcase_add_test(tc, test_prf_lengths);
	tcase_add_test(tc, test_prf_domain_separation);
	tcase_add_test(tc, test_random);
	suite_add_tcase(suite, tc);

	tc = tcase_create("seal");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_seal_round_trip, 0, 2);
	tcase_add_loop_test(tc, test_seal_tamper, 0, 2);
	suite_add_tcase(suite, tc);

	tc = tcase_create("hex");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_hex_round_trip);
	tcase_add_test(tc, test_hex_rejects);
	suite_add_tcase(suite, tc);

	tc = tcase_create("password");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_password_key_known_answer, 0,
			    sizeof(pwhash_vectors) / sizeof(pwhash_vectors[0]));
	tcase_add_test(tc, test_password_key_inputs);
	tcase_add_test(tc, test_random_pool_no_repeats_across_fork);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	return harness_run(crypto_suite());
}
