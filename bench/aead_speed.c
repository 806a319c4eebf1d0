/*
 * aead_speed: the crypto ceiling of the benchmark. Seals and opens 4096-byte blocks with
 * libsodium's AES-256-GCM and XChaCha20-Poly1305 on one thread for a fixed time and prints
 * one JSON object per cipher and direction, in MiB of plaintext per second. Built and run
 * by bench/run; not part of vaultfs.
 */
#define _GNU_SOURCE
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK_LEN 4096
#define BATCH 64  /* blocks between clock reads */

struct aead {
	const char *name;
	size_t nonce_len;
	size_t tag_len;
	int (*available)(void);
	int (*seal)(unsigned char *c, unsigned long long *clen, const unsigned char *m,
		    unsigned long long mlen, const unsigned char *ad, unsigned long long adlen,
		    const unsigned char *nsec, const unsigned char *npub, const unsigned char *k);
	int (*open)(unsigned char *m, unsigned long long *mlen, unsigned char *nsec,
		    const unsigned char *c, unsigned long long clen, const unsigned char *ad,
		    unsigned long long adlen, const unsigned char *npub, const unsigned char *k);
};

static int always_available(void)
{
	return 1;
}

static const struct aead aeads[] = {
	{ "aes-256-gcm", crypto_aead_aes256gcm_NPUBBYTES, crypto_aead_aes256gcm_ABYTES,
	  crypto_aead_aes256gcm_is_available, crypto_aead_aes256gcm_encrypt,
	  crypto_aead_aes256gcm_decrypt },
	{ "xchacha20-poly1305", crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	  crypto_aead_xchacha20poly1305_ietf_ABYTES, always_available,
	  crypto_aead_xchacha20poly1305_ietf_encrypt, crypto_aead_xchacha20poly1305_ietf_decrypt },
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The block number goes into the nonce and the associated data, as a file system would. */
static void set_counter(unsigned char *nonce, unsigned char *ad, uint64_t counter)
{
	for (int i = 0; i < 8; i++) {
		nonce[i] = (unsigned char)(counter >> (8 * i));
		ad[i] = nonce[i];
	}
}

/* Runs one cipher in one direction for about `seconds`; returns MiB/s or a negative value. */
static double measure(const struct aead *a, int opening, double seconds, const unsigned char *key)
{
	unsigned char nonce[32] = { 0 }, ad[8] = { 0 };
	unsigned char *plain = malloc(BLOCK_LEN);
	unsigned char *sealed = malloc(BLOCK_LEN + a->tag_len);
	unsigned char *scratch = malloc(BLOCK_LEN + a->tag_len);
	unsigned long long len;
	uint64_t blocks = 0;
	double start, elapsed = 0, result = -1;

	if (!plain || !sealed || !scratch)
		goto out_free;
	randombytes_buf(plain, BLOCK_LEN);
	set_counter(nonce, ad, 0);
	if (a->seal(sealed, &len, plain, BLOCK_LEN, ad, sizeof ad, NULL, nonce, key) != 0)
		goto out_free;

	start = now_seconds();
	while (elapsed < seconds) {
		for (int i = 0; i < BATCH; i++, blocks++) {
			if (opening) {
				/* Opening the same block again: the cost does not depend on the nonce. */
				if (a->open(scratch, &len, NULL, sealed, BLOCK_LEN + a->tag_len, ad,
					    sizeof ad, nonce, key) != 0)
					goto out_free;
			} else {
				set_counter(nonce, ad, blocks);
				a->seal(scratch, &len, plain, BLOCK_LEN, ad, sizeof ad, NULL, nonce, key);
			}
		}
		elapsed = now_seconds() - start;
	}
	result = (double)blocks * BLOCK_LEN / (1024.0 * 1024.0) / elapsed;
out_free:
	free(scratch);
	free(sealed);
	free(plain);
	return result;
}

int main(int argc, char **argv)
{
	unsigned char key[32];
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	int status = 0;

	if (seconds <= 0 || seconds > 60) {
		fprintf(stderr, "usage: aead_speed [seconds]: seconds per measurement, 0 to 60\n");
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "aead_speed: libsodium failed to initialise\n");
		return 1;
	}
	randombytes_buf(key, sizeof key);
	for (size_t i = 0; i < sizeof aeads / sizeof aeads[0]; i++) {
		const struct aead *a = &aeads[i];

		if (!a->available()) {
			printf("{\"cipher\":\"%s\",\"available\":false}\n", a->name);
			continue;
		}
		for (int opening = 0; opening <= 1; opening++) {
			double mib;

			measure(a, opening, seconds / 10, key);  /* warm-up, discarded */
			mib = measure(a, opening, seconds, key);

			if (mib < 0) {
				fprintf(stderr, "aead_speed: %s failed\n", a->name);
				status = 1;
				continue;
			}
			printf("{\"cipher\":\"%s\",\"available\":true,\"op\":\"%s\","
			       "\"block\":%d,\"mib_s\":%.1f}\n",
			       a->name, opening ? "open" : "seal", BLOCK_LEN, mib);
		}
	}
	sodium_memzero(key, sizeof key);
	return status;
}
