/*
 * Key sources behind one ops table: the development key file and the ephemeral key, both
 * a single DEK version held in secret memory, and the memory source that holds the
 * versions the key agent leased.
 */
#include "lib/keysource.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/secret.h"

#define KEYFILE_MAGIC_LEN (sizeof(KEYFILE_MAGIC) - 1)
#define KEYFILE_HEX_LEN (2 * CRYPTO_KEY_LEN)
/* magic "\n" hex "\n"; the final newline may be missing */
#define KEYFILE_MAX_LEN (KEYFILE_MAGIC_LEN + 1 + KEYFILE_HEX_LEN + 1)

struct keysource_ops {
	int (*get)(struct keysource *source, uint32_t version, uint8_t key[CRYPTO_KEY_LEN]);
	uint32_t (*newest_version)(const struct keysource *source);
	void (*free)(struct keysource *source);
};

struct keysource {
	const struct keysource_ops *ops;
	void *state;
};

/* The single-version sources: state is CRYPTO_KEY_LEN bytes of secret memory. */

static int single_key_get(struct keysource *source, uint32_t version,
			  uint8_t key[CRYPTO_KEY_LEN])
{
	if (version != 1)
		return -ENOKEY;
	memcpy(key, source->state, CRYPTO_KEY_LEN);
	return 0;
}

static uint32_t single_key_newest_version(const struct keysource *source)
{
	return 1;
}

static void single_key_free(struct keysource *source)
{
	secret_free(source->state);
}

static const struct keysource_ops single_key_ops = {
	.get = single_key_get,
	.newest_version = single_key_newest_version,
	.free = single_key_free,
};

/* Take ownership of key (secret memory) on success. */
static int single_key_new(struct keysource **out, uint8_t *key)
{
	struct keysource *source = malloc(sizeof(*source));

	if (source == NULL)
		return -ENOMEM;
	source->ops = &single_key_ops;
	source->state = key;
	*out = source;
	return 0;
}

static int keyfile_parse(uint8_t key[CRYPTO_KEY_LEN], const uint8_t *buf, size_t len)
{
	const char *hex = (const char *)buf + KEYFILE_MAGIC_LEN + 1;
	size_t expected = KEYFILE_MAGIC_LEN + 1 + KEYFILE_HEX_LEN;

	if (len != expected && !(len == expected + 1 && buf[expected] == '\n'))
		return -EBADMSG;
	if (memcmp(buf, KEYFILE_MAGIC, KEYFILE_MAGIC_LEN) != 0 || buf[KEYFILE_MAGIC_LEN] != '\n')
		return -EBADMSG;
	if (crypto_from_hex(key, CRYPTO_KEY_LEN, hex, KEYFILE_HEX_LEN) < 0)
		return -EBADMSG;
	return 0;
}

int keysource_keyfile_open(struct keysource **out, const char *path)
{
	uint8_t *buf, *key = NULL;
	size_t len = 0;
	int ret;

	buf = secret_alloc(KEYFILE_MAX_LEN + 1);
	key = secret_alloc(CRYPTO_KEY_LEN);
	if (buf == NULL || key == NULL) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = secret_file_read(path, buf, KEYFILE_MAX_LEN + 1, &len);
	if (ret == 0)
		ret = keyfile_parse(key, buf, len);
	if (ret == 0)
		ret = single_key_new(out, key);
	if (ret == 0)
		key = NULL;
out_free:
	secret_free(key);
	secret_free(buf);   /* wipes the hex copy of the key */
	return ret;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Make the new directory entry durable: losing the key file loses the vault. */
static int fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret = 0;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_free;
	}
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
out_free:
	free(dir);
	return ret;
}

int keysource_keyfile_create(struct keysource **out, const char *path)
{
	struct keysource *source = NULL;
	uint8_t *buf, *key;
	size_t len = KEYFILE_MAX_LEN;
	int fd, ret;

	key = secret_alloc(CRYPTO_KEY_LEN);
	if (key == NULL)
		return -ENOMEM;
	crypto_random(key, CRYPTO_KEY_LEN);
	/* Everything that can fail for lack of memory happens before the file exists. */
	ret = single_key_new(&source, key);
	if (ret < 0) {
		secret_free(key);
		return ret;
	}
	buf = secret_alloc(KEYFILE_MAX_LEN + 1);
	if (buf == NULL) {
		ret = -ENOMEM;
		goto out_free_source;
	}
	memcpy(buf, KEYFILE_MAGIC "\n", KEYFILE_MAGIC_LEN + 1);
	crypto_to_hex((char *)buf + KEYFILE_MAGIC_LEN + 1, KEYFILE_HEX_LEN + 1, key,
		      CRYPTO_KEY_LEN);
	buf[len - 1] = '\n';

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out_free_buf;
	}
	ret = write_all(fd, buf, len);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0)
		ret = fsync_parent(path);
	if (ret < 0) {
		/* We created it with O_EXCL, so the file at path is ours to remove. */
		unlink(path);
		goto out_free_buf;
	}
	*out = source;
	source = NULL;
out_free_buf:
	secret_free(buf);   /* wipes the hex copy of the key */
out_free_source:
	keysource_free(source);
	return ret;
}

int keysource_ephemeral_new(struct keysource **out)
{
	uint8_t *key = secret_alloc(CRYPTO_KEY_LEN);
	int ret;

	if (key == NULL)
		return -ENOMEM;
	crypto_random(key, CRYPTO_KEY_LEN);
	ret = single_key_new(out, key);
	if (ret < 0)
		secret_free(key);
	return ret;
}

uint32_t keysource_newest_version(const struct keysource *source)
{
	return source->ops->newest_version(source);
}

int keysource_get(struct keysource *source, uint32_t version, uint8_t key[CRYPTO_KEY_LEN])
{
	return source->ops->get(source, version, key);
}

void keysource_free(struct keysource *source)
{
	if (source == NULL)
		return;
	source->ops->free(source);
	free(source);
}

/* The memory source: a small table of versions, each key in secret memory. */

#define MEMORY_VERSIONS_MAX 64

struct memory_keys {
	pthread_mutex_t lock;
	bool revoked;
	uint32_t newest;
	size_t count;
	uint32_t versions[MEMORY_VERSIONS_MAX];
	uint8_t *keys[MEMORY_VERSIONS_MAX];
};

static int memory_get(struct keysource *source, uint32_t version, uint8_t key[CRYPTO_KEY_LEN])
{
	struct memory_keys *memory = source->state;
	int err = -ENOKEY;

	pthread_mutex_lock(&memory->lock);
	if (memory->revoked) {
		err = -EKEYREVOKED;
	} else {
		for (size_t i = 0; i < memory->count; i++) {
			if (memory->versions[i] == version) {
				memcpy(key, memory->keys[i], CRYPTO_KEY_LEN);
				err = 0;
				break;
			}
		}
	}
	pthread_mutex_unlock(&memory->lock);
	return err;
}

static uint32_t memory_newest_version(const struct keysource *source)
{
	struct memory_keys *memory = source->state;
	pthread_mutex_lock(&memory->lock);
	uint32_t newest = memory->newest;
	pthread_mutex_unlock(&memory->lock);
	return newest;
}

static void memory_wipe(struct memory_keys *memory)
{
	for (size_t i = 0; i < memory->count; i++) {
		secret_free(memory->keys[i]);
		memory->keys[i] = NULL;
	}
	memory->count = 0;
}

static void memory_free(struct keysource *source)
{
	struct memory_keys *memory = source->state;
	memory_wipe(memory);
	pthread_mutex_destroy(&memory->lock);
	free(memory);
}

static const struct keysource_ops memory_ops = {
	.get = memory_get,
	.newest_version = memory_newest_version,
	.free = memory_free,
};

int keysource_memory_new(struct keysource **out)
{
	struct keysource *source = malloc(sizeof(*source));
	struct memory_keys *memory = calloc(1, sizeof(*memory));

	if (source == NULL || memory == NULL) {
		free(source);
		free(memory);
		return -ENOMEM;
	}
	pthread_mutex_init(&memory->lock, NULL);
	source->ops = &memory_ops;
	source->state = memory;
	*out = source;
	return 0;
}

int keysource_memory_add(struct keysource *source, uint32_t version,
			 const uint8_t key[CRYPTO_KEY_LEN])
{
	struct memory_keys *memory = source->state;
	int err = 0;

	if (source->ops != &memory_ops || version == 0)
		return -EINVAL;
	pthread_mutex_lock(&memory->lock);
	size_t slot = memory->count;
	for (size_t i = 0; i < memory->count; i++)
		if (memory->versions[i] == version)
			slot = i;
	if (memory->revoked) {
		err = -EKEYREVOKED;
	} else if (slot == MEMORY_VERSIONS_MAX) {
		err = -ENOSPC;
	} else {
		if (slot == memory->count) {
			memory->keys[slot] = secret_alloc(CRYPTO_KEY_LEN);
			if (memory->keys[slot] == NULL)
				err = -ENOMEM;
			else
				memory->count++;
		}
		if (!err) {
			memcpy(memory->keys[slot], key, CRYPTO_KEY_LEN);
			memory->versions[slot] = version;
			if (version > memory->newest)
				memory->newest = version;
		}
	}
	pthread_mutex_unlock(&memory->lock);
	return err;
}

void keysource_memory_revoke(struct keysource *source)
{
	struct memory_keys *memory = source->state;

	if (source->ops != &memory_ops)
		return;
	pthread_mutex_lock(&memory->lock);
	memory->revoked = true;
	memory_wipe(memory);
	memory->newest = 0;
	pthread_mutex_unlock(&memory->lock);
}
