/*
 * The normal test suite's share of fuzzing: load a fuzz corpus directory and make
 * seeded, reproducible mutations of its inputs (bit flips, boundary integers, cut,
 * inserted, duplicated and spliced ranges, dictionary words). Header-only, for the
 * tests/unit/check_<module>.c that replay tests/fuzz/corpus-<name>/.
 */
#ifndef VAULTFS_TESTS_FUZZ_REPLAY_H
#define VAULTFS_TESTS_FUZZ_REPLAY_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/bytes.h"

/*
 * On-disk corpus (tests/fuzz/corpus-ondisk/): the first byte of a file says which decoder
 * the rest is for, so that one harness (fuzz_ondisk) covers them all.
 */
#define REPLAY_ONDISK_META_INODE 'i'
#define REPLAY_ONDISK_OBJECT_HEADER 'o'
#define REPLAY_ONDISK_VAULT_HEADER 'v'
#define REPLAY_ONDISK_KEK_RECORD 'k'
#define REPLAY_ONDISK_DATASET_RECORD 'd'
#define REPLAY_ONDISK_VERSION_RECORD 'r'

struct replay_input {
	uint8_t *bytes;
	size_t len;
};

struct replay_corpus {
	struct replay_input *inputs;   /* sorted by file name, so runs are reproducible */
	size_t count;
};

static inline int replay_name_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Load every file of dir no longer than max_len into corpus. kind < 0 takes whole files;
 * otherwise only files whose first byte is kind, without that byte. Returns 0 or -errno.
 */
static inline int replay_corpus_load(struct replay_corpus *corpus, const char *dir, int kind,
				     size_t max_len)
{
	DIR *d = opendir(dir);
	struct dirent *entry;
	char **names = NULL;
	size_t name_count = 0;
	int ret = 0;

	corpus->inputs = NULL;
	corpus->count = 0;
	if (d == NULL)
		return -errno;
	while ((entry = readdir(d)) != NULL) {
		char **grown;

		if (entry->d_name[0] == '.')
			continue;
		grown = realloc(names, (name_count + 1) * sizeof(*names));
		if (grown == NULL || (grown[name_count] = strdup(entry->d_name)) == NULL) {
			names = grown ? grown : names;
			ret = -ENOMEM;
			goto out_names;
		}
		names = grown;
		name_count++;
	}
	qsort(names, name_count, sizeof(*names), replay_name_compare);
	for (size_t i = 0; i < name_count && ret == 0; i++) {
		char path[4096];
		struct replay_input *grown;
		struct stat st;
		uint8_t *bytes;
		FILE *file;
		size_t skip;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max_len + 1)
			continue;
		bytes = malloc((size_t)st.st_size + 1);
		file = fopen(path, "rb");
		if (bytes == NULL || file == NULL ||
		    fread(bytes, 1, (size_t)st.st_size, file) != (size_t)st.st_size) {
			ret = bytes == NULL ? -ENOMEM : -EIO;
			free(bytes);
			if (file != NULL)
				fclose(file);
			break;
		}
		fclose(file);
		skip = kind < 0 ? 0 : 1;
		if ((kind >= 0 && (st.st_size < 1 || bytes[0] != (uint8_t)kind)) ||
		    (size_t)st.st_size - skip > max_len) {
			free(bytes);
			continue;
		}
		memmove(bytes, bytes + skip, (size_t)st.st_size - skip);
		grown = realloc(corpus->inputs, (corpus->count + 1) * sizeof(*grown));
		if (grown == NULL) {
			free(bytes);
			ret = -ENOMEM;
			break;
		}
		corpus->inputs = grown;
		corpus->inputs[corpus->count].bytes = bytes;
		corpus->inputs[corpus->count].len = (size_t)st.st_size - skip;
		corpus->count++;
	}
out_names:
	for (size_t i = 0; i < name_count; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

static inline void replay_corpus_release(struct replay_corpus *corpus)
{
	for (size_t i = 0; i < corpus->count; i++)
		free(corpus->inputs[i].bytes);
	free(corpus->inputs);
	corpus->inputs = NULL;
	corpus->count = 0;
}

/* xorshift64*: a fixed seed, so a failing mutation reproduces. */
static inline uint64_t replay_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * UINT64_C(0x2545f4914f6cdd1d);
}

static inline size_t replay_below(uint64_t *state, size_t n)
{
	return n ? (size_t)(replay_random(state) % n) : 0;
}

/*
 * Mutate buf (len bytes used, cap available) 1..3 times; returns the new length.
 * splice: inputs whose tails may be spliced in (may be NULL); words: a NULL-terminated
 * dictionary to insert or overwrite with (may be NULL).
 */
static inline size_t replay_mutate(uint64_t *state, uint8_t *buf, size_t len, size_t cap,
				   const struct replay_corpus *splice, const char *const *words)
{
	static const uint64_t interesting[] = {
		0, 1, 2, 3, 4, 7, 8, 16, 32, 64, 127, 128, 255, 256, 1023, 1024, 1025, 4095,
		4096, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
		UINT64_C(0x7fffffffffffffff), UINT64_C(0x8000000000000000), UINT64_MAX,
		999999999, 1000000000,
	};
	size_t rounds = 1 + replay_below(state, 3);
	size_t word_count = 0;

	while (words != NULL && words[word_count] != NULL)
		word_count++;
	for (size_t r = 0; r < rounds; r++) {
		size_t at = replay_below(state, len ? len : 1), n;
		uint64_t v = interesting[replay_below(state, sizeof(interesting) /
							      sizeof(interesting[0]))];

		switch (replay_below(state, 10)) {
		case 0:
			if (len)
				buf[at] ^= (uint8_t)(1u << replay_below(state, 8));
			break;
		case 1:
			if (len)
				buf[at] = (uint8_t)replay_random(state);
			break;
		case 2:   /* a little-endian u8, u16, u32 or u64 with a boundary value */
			n = (size_t)1 << replay_below(state, 4);
			if (at + n <= len) {
				for (size_t i = 0; i < n; i++)
					buf[at + i] = (uint8_t)(v >> (8 * i));
			}
			break;
		case 3:   /* delete a range */
			n = 1 + replay_below(state, 16);
			if (at + n <= len) {
				memmove(buf + at, buf + at + n, len - at - n);
				len -= n;
			}
			break;
		case 4:   /* insert random bytes */
			n = 1 + replay_below(state, 8);
			if (len + n <= cap && at <= len) {
				memmove(buf + at + n, buf + at, len - at);
				for (size_t i = 0; i < n; i++)
					buf[at + i] = (uint8_t)replay_random(state);
				len += n;
			}
			break;
		case 5:   /* truncate */
			len = replay_below(state, len + 1);
			break;
		case 6: { /* duplicate a range (a repeated field or line, often) */
			size_t from = replay_below(state, len ? len : 1);
			uint8_t chunk[64];

			n = 1 + replay_below(state, sizeof(chunk));
			if (from + n <= len && len + n <= cap && at <= len) {
				memcpy(chunk, buf + from, n);
				memmove(buf + at + n, buf + at, len - at);
				memcpy(buf + at, chunk, n);
				len += n;
			}
			break;
		}
		case 7:   /* splice another input's tail */
			if (splice != NULL && splice->count > 0) {
				const struct replay_input *other =
					&splice->inputs[replay_below(state, splice->count)];
				size_t from = replay_below(state, other->len + 1);

				if (at + (other->len - from) <= cap && at <= len) {
					memcpy(buf + at, other->bytes + from, other->len - from);
					len = at + (other->len - from);
				}
			}
			break;
		case 8:   /* a u32 length field that matches the rest, or misses it by one */
			if (at + 4 <= len) {
				uint32_t rest = (uint32_t)(len - at - 4);
				put_le32(buf + at, rest + (uint32_t)replay_below(state, 3) - 1);
			}
			break;
		case 9:   /* a dictionary word, inserted */
			if (word_count > 0) {
				const char *word = words[replay_below(state, word_count)];

				n = strlen(word);
				if (len + n <= cap && at <= len) {
					memmove(buf + at + n, buf + at, len - at);
					memcpy(buf + at, word, n);
					len += n;
				}
			}
			break;
		}
	}
	return len;
}

/* What replay_run saw. */
struct replay_counts {
	size_t inputs;     /* corpus inputs */
	size_t valid;      /* of them, accepted by the verdict */
	size_t accepted;   /* mutations accepted */
	size_t rejected;   /* mutations refused */
};

/* True when the decoder accepts bytes; it checks what it decoded on its own. */
typedef bool replay_verdict(void *arg, const uint8_t *bytes, size_t len);

/*
 * Run verdict over every input of corpus, then over `mutations` mutations (replay_mutate
 * with state, splicing from corpus, inserting words) of the inputs it accepted, made in
 * buf (cap bytes, at least the longest input). No mutation is made when it accepted none.
 */
static inline struct replay_counts replay_run(const struct replay_corpus *corpus,
					      replay_verdict *verdict, void *arg,
					      uint64_t *state, size_t mutations, uint8_t *buf,
					      size_t cap, const char *const *words)
{
	struct replay_counts counts = { .inputs = corpus->count };
	const struct replay_input **valid = calloc(corpus->count ? corpus->count : 1,
						   sizeof(*valid));

	if (valid == NULL)
		abort();
	for (size_t i = 0; i < corpus->count; i++) {
		if (verdict(arg, corpus->inputs[i].bytes, corpus->inputs[i].len))
			valid[counts.valid++] = &corpus->inputs[i];
	}
	for (size_t i = 0; counts.valid > 0 && i < mutations; i++) {
		const struct replay_input *seed = valid[replay_below(state, counts.valid)];
		size_t len;

		memcpy(buf, seed->bytes, seed->len);
		len = replay_mutate(state, buf, seed->len, cap, corpus, words);
		if (verdict(arg, buf, len))
			counts.accepted++;
		else
			counts.rejected++;
	}
	free(valid);
	return counts;
}

#endif
