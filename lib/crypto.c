/*
 * The cryptographic primitives of vaultfs over libsodium: AES-256-GCM with a precomputed
 * key schedule or XChaCha20-Poly1305, keyed BLAKE2b as the PRF with one fixed table of
 * context strings, sealed values with one-use subkeys, SHA-256 for the audit chain,
 * randomness and constant-time hex.
 */
#include "lib/crypto.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lib/secret.h"

/*
 * The PRF context strings, in enum crypto_context order. They are part of the on-disk
 * format: a changed string silently derives other keys, so these never change once
 * released; a new use appends a new string.
 */
static const char *const context_strings[] = {
	[CRYPTO_CTX_OBJECT_KEY] = "vaultfs.v1.object-key",
	[CRYPTO_CTX_META_KEY] = "vaultfs.v1.meta-key",
	[CRYPTO_CTX_KEY_CHECK] = "vaultfs.v1.key-check",
	[CRYPTO_CTX_HEADER_MAC] = "vaultfs.v1.header-mac",
	[CRYPTO_CTX_SEAL_SUBKEY] = "vaultfs.v1.seal-subkey",
	[CRYPTO_CTX_NAME_HASH] = "vaultfs.v1.name-hash",
	[CRYPTO_CTX_DIR_HASH] = "vaultfs.v1.dir-hash",
	[CRYPTO_CTX_KEK_CHECK] = "vaultfs.v1.kek-check",
	[CRYPTO_CTX_AUDIT_PATH_KEY] = "vaultfs.v1.audit-path-key",
	[CRYPTO_CTX_AUDIT_PATH_HASH] = "vaultfs.v1.audit-path-hash",
	[CRYPTO_CTX_AUDIT_PATH_SEAL] = "vaultfs.v1.audit-path-seal",
};
_Static_assert(sizeof(context_strings) / sizeof(context_strings[0]) == CRYPTO_CTX_COUNT,
	       "one context string per enum crypto_context value");

_Static_assert(CRYPTO_KEY_LEN == crypto_aead_aes256gcm_KEYBYTES, "AES-256-GCM key length");
_Static_assert(CRYPTO_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
	       "XChaCha20-Poly1305 key length");
_Static_assert(CRYPTO_KEY_LEN == crypto_generichash_KEYBYTES, "PRF key length");
_Static_assert(CRYPTO_TAG_LEN == crypto_aead_aes256gcm_ABYTES, "AES-256-GCM tag length");
_Static_assert(CRYPTO_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES,
	       "XChaCha20-Poly1305 tag length");
_Static_assert(CRYPTO_NONCE_MAX >= crypto_aead_aes256gcm_NPUBBYTES, "nonce buffer");
_Static_assert(CRYPTO_NONCE_MAX >= crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	       "nonce buffer");

_Static_assert(CRYPTO_PWHASH_SALT_LEN == crypto_pwhash_argon2id_SALTBYTES, "Argon2id salt");
_Static_assert(CRYPTO_PWHASH_OPSLIMIT_MIN == crypto_pwhash_argon2id_OPSLIMIT_MIN,
	       "Argon2id minimum passes");
_Static_assert(CRYPTO_PWHASH_MEMLIMIT_MIN == crypto_pwhash_argon2id_MEMLIMIT_MIN,
	       "Argon2id minimum memory");
_Static_assert(CRYPTO_PWHASH_OPSLIMIT_MODERATE == crypto_pwhash_argon2id_OPSLIMIT_MODERATE,
	       "Argon2id moderate passes");
_Static_assert(CRYPTO_PWHASH_MEMLIMIT_MODERATE == crypto_pwhash_argon2id_MEMLIMIT_MODERATE,
	       "Argon2id moderate memory");
_Static_assert(CRYPTO_PWHASH_MEMLIMIT_MAX <= crypto_pwhash_argon2id_MEMLIMIT_MAX,
	       "Argon2id maximum memory");

/*
 * Allocated with secret_alloc() (sodium_malloc()), which places the object so that it
 * ends at a guard page: the start is 16-byte aligned (as the AES-GCM state requires)
 * only because the state comes first and the struct size is a multiple of its alignment.
 * secret_alloc(), not sodium_malloc() directly: a forked child locks it again.
 */
struct crypto_aead_key {
	crypto_aead_aes256gcm_state aes_state;   /* AES-256-GCM only */
	uint8_t raw[CRYPTO_KEY_LEN];             /* XChaCha20-Poly1305 only */
	enum crypto_cipher cipher;
};
_Static_assert(sizeof(struct crypto_aead_key) % 16 == 0,
	       "sodium_malloc alignment of the AES-GCM state");

const char *crypto_cipher_name(enum crypto_cipher cipher)
{
	switch (cipher) {
	case CRYPTO_AES256GCM:
		return "aes-256-gcm";
	case CRYPTO_XCHACHA20POLY1305:
		return "xchacha20-poly1305";
	}
	return NULL;
}

int crypto_cipher_from_name(enum crypto_cipher *out, const char *name)
{
	if (name == NULL)
		return -EINVAL;
	if (strcmp(name, "aes-256-gcm") == 0) {
		*out = CRYPTO_AES256GCM;
		return 0;
	}
	if (strcmp(name, "xchacha20-poly1305") == 0) {
		*out = CRYPTO_XCHACHA20POLY1305;
		return 0;
	}
	return -EINVAL;
}

bool crypto_cipher_available(enum crypto_cipher cipher)
{
	switch (cipher) {
	case CRYPTO_AES256GCM:
		return crypto_aead_aes256gcm_is_available() != 0;
	case CRYPTO_XCHACHA20POLY1305:
		return true;
	}
	return false;
}

enum crypto_cipher crypto_cipher_default(void)
{
	if (crypto_cipher_available(CRYPTO_AES256GCM))
		return CRYPTO_AES256GCM;
	return CRYPTO_XCHACHA20POLY1305;
}

size_t crypto_nonce_len(enum crypto_cipher cipher)
{
	switch (cipher) {
	case CRYPTO_AES256GCM:
		return crypto_aead_aes256gcm_NPUBBYTES;
	case CRYPTO_XCHACHA20POLY1305:
		return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	}
	return 0;
}

/*
 * Small random values (nonces, salts, ids: several per metadata write) come from a
 * per-thread pool refilled 4 KiB at a time from the kernel, not from one getrandom(2)
 * call each. The pool is secret memory and every byte is wiped as it is handed out; a
 * forked child drops the pool it inherited so parent and child never share values.
 */
#define RANDOM_POOL_LEN 4096
#define RANDOM_POOLED_MAX 64

struct random_pool {
	uint8_t *bytes;    /* secret memory */
	size_t left;       /* unused bytes at the end of bytes */
};

static __thread struct random_pool random_pool;
static pthread_key_t random_pool_key;
static pthread_once_t random_pool_once = PTHREAD_ONCE_INIT;

static void random_pool_release(void *bytes)
{
	secret_free(bytes);
}

static void random_pool_after_fork(void)
{
	if (random_pool.bytes)
		sodium_memzero(random_pool.bytes, RANDOM_POOL_LEN);
	random_pool.left = 0;
}

static void random_pool_setup(void)
{
	(void)pthread_key_create(&random_pool_key, random_pool_release);
	(void)pthread_atfork(NULL, NULL, random_pool_after_fork);
}

void crypto_random(void *buf, size_t len)
{
	struct random_pool *pool = &random_pool;

	if (len > RANDOM_POOLED_MAX) {
		randombytes_buf(buf, len);
		return;
	}
	if (pool->bytes == NULL) {
		pthread_once(&random_pool_once, random_pool_setup);
		pool->bytes = secret_alloc(RANDOM_POOL_LEN);
		if (pool->bytes == NULL) {
			randombytes_buf(buf, len);
			return;
		}
		(void)pthread_setspecific(random_pool_key, pool->bytes);
		pool->left = 0;
	}
	if (pool->left < len) {
		randombytes_buf(pool->bytes, RANDOM_POOL_LEN);
		pool->left = RANDOM_POOL_LEN;
	}
	uint8_t *take = pool->bytes + RANDOM_POOL_LEN - pool->left;
	memcpy(buf, take, len);
	sodium_memzero(take, len);
	pool->left -= len;
}

int crypto_prf(uint8_t *out, size_t out_len, enum crypto_context context,
	       const void *input, size_t input_len, const uint8_t key[CRYPTO_KEY_LEN])
{
	static const uint8_t separator = 0x00;
	crypto_generichash_state state;
	const char *context_string;
	int ret = -EINVAL;

	if (out_len < crypto_generichash_BYTES_MIN || out_len > crypto_generichash_BYTES_MAX)
		return -EINVAL;
	if ((unsigned)context >= CRYPTO_CTX_COUNT)
		return -EINVAL;
	if (input == NULL && input_len != 0)
		return -EINVAL;
	context_string = context_strings[context];

	if (crypto_generichash_init(&state, key, CRYPTO_KEY_LEN, out_len) != 0)
		goto out_wipe;
	if (crypto_generichash_update(&state, (const uint8_t *)context_string,
				      strlen(context_string)) != 0)
		goto out_wipe;
	/* The separator keeps one context string from being a prefix-extension of another. */
	if (crypto_generichash_update(&state, &separator, 1) != 0)
		goto out_wipe;
	if (input_len > 0 && crypto_generichash_update(&state, input, input_len) != 0)
		goto out_wipe;
	if (crypto_generichash_final(&state, out, out_len) != 0)
		goto out_wipe;
	ret = 0;
out_wipe:
	/* The state holds the keyed hash's chaining value. */
	secret_wipe(&state, sizeof(state));
	return ret;
}

static void aead_key_init(struct crypto_aead_key *aead, enum crypto_cipher cipher,
			  const uint8_t key[CRYPTO_KEY_LEN])
{
	sodium_memzero(aead, sizeof(*aead));
	aead->cipher = cipher;
	if (cipher == CRYPTO_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&aead->aes_state, key);
	else
		memcpy(aead->raw, key, CRYPTO_KEY_LEN);
}

/*
 * Freed AEAD keys are wiped and kept for reuse: a daemon opens and closes files all day,
 * and each sodium_malloc/sodium_free pair costs mmap, mprotect, mlock, madvise and their
 * reverses. The pool is bounded; what does not fit is released as usual.
 */
#define AEAD_POOL_MAX 256

static pthread_mutex_t aead_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crypto_aead_key *aead_pool[AEAD_POOL_MAX];
static size_t aead_pool_count;

static struct crypto_aead_key *aead_key_alloc(void)
{
	struct crypto_aead_key *aead = NULL;

	pthread_mutex_lock(&aead_pool_lock);
	if (aead_pool_count > 0)
		aead = aead_pool[--aead_pool_count];
	pthread_mutex_unlock(&aead_pool_lock);
	if (aead == NULL) {
		aead = secret_alloc(sizeof(*aead));
		if (aead != NULL && ((uintptr_t)aead & 15) != 0)
			abort();   /* sodium_malloc broke the alignment the AES state needs */
	}
	return aead;
}

int crypto_aead_key_new(struct crypto_aead_key **out, enum crypto_cipher cipher,
			const uint8_t key[CRYPTO_KEY_LEN])
{
	struct crypto_aead_key *aead;

	if (cipher != CRYPTO_AES256GCM && cipher != CRYPTO_XCHACHA20POLY1305)
		return -EINVAL;
	if (!crypto_cipher_available(cipher))
		return -ENOTSUP;

	aead = aead_key_alloc();
	if (aead == NULL)
		return -ENOMEM;
	aead_key_init(aead, cipher, key);
	*out = aead;
	return 0;
}

void crypto_aead_key_free(struct crypto_aead_key *key)
{
	if (key == NULL)
		return;
	sodium_memzero(key, sizeof(*key));
	pthread_mutex_lock(&aead_pool_lock);
	if (aead_pool_count < AEAD_POOL_MAX) {
		aead_pool[aead_pool_count++] = key;
		key = NULL;
	}
	pthread_mutex_unlock(&aead_pool_lock);
	secret_free(key);
}

enum crypto_cipher crypto_aead_key_cipher(const struct crypto_aead_key *key)
{
	return key->cipher;
}

int crypto_aead_seal(uint8_t *out, const uint8_t *m, size_t m_len,
		     const uint8_t *ad, size_t ad_len, const uint8_t *nonce,
		     const struct crypto_aead_key *key)
{
	unsigned long long c_len;

	switch (key->cipher) {
	case CRYPTO_AES256GCM:
		if (m_len > crypto_aead_aes256gcm_MESSAGEBYTES_MAX)
			return -EINVAL;
		if (crypto_aead_aes256gcm_encrypt_afternm(out, &c_len, m, m_len, ad, ad_len,
							  NULL, nonce, &key->aes_state) != 0)
			return -EINVAL;
		return 0;
	case CRYPTO_XCHACHA20POLY1305:
		if (m_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
			return -EINVAL;
		if (crypto_aead_xchacha20poly1305_ietf_encrypt(out, &c_len, m, m_len, ad, ad_len,
							       NULL, nonce, key->raw) != 0)
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

int crypto_aead_open(uint8_t *out, const uint8_t *c, size_t c_len,
		     const uint8_t *ad, size_t ad_len, const uint8_t *nonce,
		     const struct crypto_aead_key *key)
{
	unsigned long long m_len;
	int rc;

	if (c_len < CRYPTO_TAG_LEN)
		return -EINVAL;
	switch (key->cipher) {
	case CRYPTO_AES256GCM:
		rc = crypto_aead_aes256gcm_decrypt_afternm(out, &m_len, NULL, c, c_len, ad, ad_len,
							   nonce, &key->aes_state);
		break;
	case CRYPTO_XCHACHA20POLY1305:
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &m_len, NULL, c, c_len, ad,
								ad_len, nonce, key->raw);
		break;
	default:
		return -EINVAL;
	}
	if (rc != 0) {
		/* Never hand back unauthenticated plaintext, whatever libsodium left there. */
		sodium_memzero(out, c_len - CRYPTO_TAG_LEN);
		return -EBADMSG;
	}
	return 0;
}

size_t crypto_seal_overhead(enum crypto_cipher cipher)
{
	size_t nonce_len = crypto_nonce_len(cipher);

	if (nonce_len == 0)
		return 0;
	return CRYPTO_SEAL_SALT_LEN + nonce_len + CRYPTO_TAG_LEN;
}

/*
 * The one-use AEAD key of a sealed value: PRF(key, CRYPTO_CTX_SEAL_SUBKEY, salt). Sealing
 * runs for every metadata write, so the subkey and its key schedule live on the stack
 * (no allocation, no syscalls) and are wiped before returning.
 */
static int seal_subkey_init(struct crypto_aead_key *aead, enum crypto_cipher cipher,
			    const uint8_t salt[CRYPTO_SEAL_SALT_LEN],
			    const uint8_t key[CRYPTO_KEY_LEN])
{
	uint8_t subkey[CRYPTO_KEY_LEN];
	int ret;

	if (!crypto_cipher_available(cipher))
		return -ENOTSUP;
	ret = crypto_prf(subkey, CRYPTO_KEY_LEN, CRYPTO_CTX_SEAL_SUBKEY, salt,
			 CRYPTO_SEAL_SALT_LEN, key);
	if (ret == 0)
		aead_key_init(aead, cipher, subkey);
	sodium_memzero(subkey, sizeof(subkey));
	return ret;
}

int crypto_seal(uint8_t *out, size_t out_len, const uint8_t *m, size_t m_len,
		const uint8_t *ad, size_t ad_len, enum crypto_cipher cipher,
		const uint8_t key[CRYPTO_KEY_LEN])
{
	size_t overhead = crypto_seal_overhead(cipher);
	size_t nonce_len = crypto_nonce_len(cipher);
	_Alignas(16) struct crypto_aead_key subkey;
	uint8_t *salt = out;
	uint8_t *nonce = out + CRYPTO_SEAL_SALT_LEN;
	int ret;

	if (overhead == 0 || m_len > SIZE_MAX - overhead || out_len != m_len + overhead)
		return -EINVAL;

	crypto_random(salt, CRYPTO_SEAL_SALT_LEN);
	crypto_random(nonce, nonce_len);
	ret = seal_subkey_init(&subkey, cipher, salt, key);
	if (ret == 0)
		ret = crypto_aead_seal(nonce + nonce_len, m, m_len, ad, ad_len, nonce, &subkey);
	sodium_memzero(&subkey, sizeof(subkey));
	return ret;
}

int crypto_unseal(uint8_t *m, size_t m_len, const uint8_t *in, size_t in_len,
		  const uint8_t *ad, size_t ad_len, enum crypto_cipher cipher,
		  const uint8_t key[CRYPTO_KEY_LEN])
{
	size_t overhead = crypto_seal_overhead(cipher);
	size_t nonce_len = crypto_nonce_len(cipher);
	const uint8_t *salt = in;
	const uint8_t *nonce = in + CRYPTO_SEAL_SALT_LEN;
	_Alignas(16) struct crypto_aead_key subkey;
	int ret;

	if (overhead == 0 || in_len < overhead || m_len != in_len - overhead)
		return -EINVAL;

	ret = seal_subkey_init(&subkey, cipher, salt, key);
	/* crypto_aead_open() wipes m itself on -EBADMSG. */
	if (ret == 0)
		ret = crypto_aead_open(m, nonce + nonce_len,
				       in_len - CRYPTO_SEAL_SALT_LEN - nonce_len, ad, ad_len,
				       nonce, &subkey);
	sodium_memzero(&subkey, sizeof(subkey));
	if (ret < 0)
		sodium_memzero(m, m_len);
	return ret;
}

int crypto_password_key(uint8_t key[CRYPTO_KEY_LEN], const char *password, size_t len,
			const uint8_t salt[CRYPTO_PWHASH_SALT_LEN], uint64_t opslimit,
			size_t memlimit)
{
	if (opslimit < CRYPTO_PWHASH_OPSLIMIT_MIN || opslimit > CRYPTO_PWHASH_OPSLIMIT_MAX ||
	    memlimit < CRYPTO_PWHASH_MEMLIMIT_MIN || memlimit > CRYPTO_PWHASH_MEMLIMIT_MAX ||
	    (password == NULL && len != 0) || len > crypto_pwhash_argon2id_PASSWD_MAX) {
		sodium_memzero(key, CRYPTO_KEY_LEN);
		return -EINVAL;
	}
	/* With the limits checked, the only failure left is the memory allocation. */
	if (crypto_pwhash(key, CRYPTO_KEY_LEN, password == NULL ? "" : password, len, salt,
			  opslimit, memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		sodium_memzero(key, CRYPTO_KEY_LEN);
		return -ENOMEM;
	}
	return 0;
}

void crypto_sha256(uint8_t out[CRYPTO_SHA256_LEN], const void *in, size_t len)
{
	_Static_assert(CRYPTO_SHA256_LEN == crypto_hash_sha256_BYTES, "SHA-256 output length");
	/* Cannot fail: libsodium's SHA-256 is plain code with no allocation. */
	crypto_hash_sha256(out, in, len);
}

void crypto_to_hex(char *hex, size_t hex_len, const uint8_t *bin, size_t bin_len)
{
	/* A too-small buffer is a programming error: fail loudly rather than truncate. */
	if (bin_len > (SIZE_MAX - 1) / 2 || hex_len < 2 * bin_len + 1)
		abort();
	sodium_bin2hex(hex, hex_len, bin, bin_len);
}

int crypto_from_hex(uint8_t *bin, size_t bin_len, const char *hex, size_t hex_len)
{
	size_t decoded = 0;

	/*
	 * No ignore set and no end pointer: sodium_hex2bin() then fails on any character
	 * that is not a hex digit, including whitespace and NUL, and on odd lengths. On any
	 * failure bin is wiped so no partial key survives.
	 */
	if (bin_len > SIZE_MAX / 2 || hex_len != 2 * bin_len ||
	    sodium_hex2bin(bin, bin_len, hex, hex_len, NULL, &decoded, NULL) != 0 ||
	    decoded != bin_len) {
		sodium_memzero(bin, bin_len);
		return -EINVAL;
	}
	return 0;
}
