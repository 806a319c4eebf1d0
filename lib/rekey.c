/*
 * Rekeying a vault under its newest DEK version: metadata values are re-sealed in
 * batches, each file's object is copied block by block into a new object under a fresh
 * file key, objects left by an interrupted run are swept, and the header's key check is
 * moved last, once nothing uses an older version.
 *
 * Durability: the metadata store commits without fsync (store.h), so an old object is
 * unlinked only after the store has been synced with the record that no longer names it.
 */
#include "lib/rekey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/extent.h"
#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/secret.h"
#include "lib/store.h"
#include "lib/vault.h"

/* Blocks read and written per system call when copying an object. */
#define COPY_BLOCKS 64
/* Metadata values re-sealed per write transaction. */
#define RESEAL_BATCH 256
/* Old objects waiting for a store sync before they are unlinked. */
#define UNLINK_BATCH 128

static void log_object(const uint8_t id[OBJECT_ID_LEN], uint64_t block, const char *what)
{
	char hex[2 * OBJECT_ID_LEN + 1];

	crypto_to_hex(hex, sizeof(hex), id, OBJECT_ID_LEN);
	if (block == UINT64_MAX)
		log_error("rekey: object %s: %s", hex, what);
	else
		log_error("rekey: object %s block %llu: %s", hex, (unsigned long long)block, what);
}

static int pread_full(int fd, uint8_t *buf, size_t len, off_t off, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, buf + *got, len - *got, off + (off_t)*got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

static int key_for(struct vault *vault, const struct meta_inode *rec, struct object_key **out)
{
	struct object_header header;
	uint8_t *dek = secret_alloc(CRYPTO_KEY_LEN);
	int ret;

	if (dek == NULL)
		return -ENOMEM;
	vault_object_header(vault, rec, &header);
	ret = keysource_get(vault->keys, rec->key_version, dek);
	if (ret == 0)
		ret = object_key_new(out, &header, dek);
	secret_free(dek);
	return ret;
}

/* Copy blocks [first, first + count) (no holes among them) from in to out. */
static int copy_run(enum crypto_cipher cipher, const struct meta_inode *rec, int in_fd,
		    const struct object_key *in_key, int out_fd, const struct object_key *out_key,
		    uint64_t first, uint64_t count, uint64_t budget_limit,
		    struct object_budget *budget, uint8_t *sealed, uint8_t *plain)
{
	size_t stride = object_block_stride(cipher);
	size_t len = (size_t)count * stride, got;
	off_t off = object_block_offset(cipher, first);
	int ret;

	ret = pread_full(in_fd, sealed, len, off, &got);
	if (ret < 0)
		return ret;
	if (object_budget_take(budget, count, budget_limit) < 0)
		return -EKEYEXPIRED;
	for (uint64_t i = 0; i < count; i++) {
		if (got < (i + 1) * stride) {
			log_object(rec->object_id, first + i, "missing (truncated object)");
			return -EIO;
		}
		if (object_block_open(plain, sealed + i * stride, first + i, in_key) != 0) {
			log_object(rec->object_id, first + i, "authentication failed");
			return -EIO;
		}
		ret = object_block_seal(sealed + i * stride, plain, first + i, out_key);
		if (ret < 0)
			return ret;
	}
	return pwrite_full(out_fd, sealed, len, off);
}

int rekey_copy_object(struct vault *vault, const struct meta_inode *rec, int fd,
		      const struct object_key *key, uint64_t budget_limit,
		      struct meta_inode *fresh, int *fd_out, struct object_key **key_out,
		      struct object_budget *budget_out)
{
	enum crypto_cipher cipher = (enum crypto_cipher)vault->header.cipher;
	size_t stride = object_block_stride(cipher);
	uint64_t count = object_block_count(rec->size);
	struct object_budget budget = { 0, 0 };
	struct object_key *new_key = NULL;
	uint8_t *sealed = malloc(COPY_BLOCKS * stride);
	uint8_t *plain = secret_alloc(OBJECT_BLOCK_SIZE);
	int new_fd = -1, ret;

	*fd_out = -1;
	*key_out = NULL;
	if (sealed == NULL || plain == NULL) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = meta_inode_copy(fresh, rec);
	if (ret < 0)
		goto out_free;
	new_fd = vault_object_create(vault, fresh);
	if (new_fd < 0) {
		ret = new_fd;
		goto out_release;
	}
	ret = key_for(vault, fresh, &new_key);
	for (uint64_t i = 0; ret == 0 && i < count;) {
		bool hole = extent_is_hole(rec, i);
		uint64_t end = hole ? extent_next_data(rec, i, count) : extent_next_hole(rec, i, count);
		if (end - i > COPY_BLOCKS)
			end = i + COPY_BLOCKS;
		if (!hole)
			ret = copy_run(cipher, rec, fd, key, new_fd, new_key, i, end - i,
				       budget_limit, &budget, sealed, plain);
		i = end;
	}
	if (ret == 0 && fdatasync(new_fd) != 0)
		ret = -errno;
	if (ret < 0)
		goto out_unlink;
	fresh->budget_reserved = budget.reserved;
	fresh->object_max_len = (uint64_t)object_block_offset(cipher, count);
	*fd_out = new_fd;
	*key_out = new_key;
	*budget_out = budget;
	goto out_free;

out_unlink:
	object_key_free(new_key);
	close(new_fd);
	(void)vault_object_unlink(vault, fresh->object_id);
out_release:
	meta_inode_release(fresh);
out_free:
	free(sealed);
	secret_free(plain);
	return ret;
}

int rekey_count(struct vault *vault, uint32_t version, uint64_t *files, uint64_t *values)
{
	struct meta_txn *txn;
	struct meta_inode rec;
	uint64_t after = 0;
	int ret;

	*files = *values = 0;
	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_count_older(txn, version, values);
	while (ret == 0 && (ret = meta_inode_next(txn, after, &rec)) == 0) {
		after = rec.ino;
		*files += S_ISREG(rec.mode) && rec.key_version < version;
		meta_inode_release(&rec);
	}
	if (ret == -ENOENT)
		ret = 0;
	meta_txn_abort(txn);
	return ret;
}

int rekey_next_file(struct vault *vault, uint32_t version, uint64_t after, uint64_t *ino)
{
	struct meta_txn *txn;
	struct meta_inode rec;
	int ret;

	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	while ((ret = meta_inode_next(txn, after, &rec)) == 0) {
		after = rec.ino;
		bool old = S_ISREG(rec.mode) && rec.key_version < version;
		meta_inode_release(&rec);
		if (old) {
			*ino = after;
			break;
		}
	}
	meta_txn_abort(txn);
	return ret;
}

int rekey_metadata(struct vault *vault, uint32_t version, size_t max, size_t *count)
{
	struct meta_txn *txn;
	int ret;

	*count = 0;
	ret = meta_txn_begin(vault->meta, true, &txn);
	if (ret < 0)
		return ret;
	ret = meta_reseal_older(txn, version, max, count);
	if (ret == 0)
		return meta_txn_commit(txn);
	*count = 0;
	meta_txn_abort(txn);
	return ret;
}

/* Sweeping: the sorted ids of every object a record names. */
struct sweep {
	struct vault *vault;
	time_t before;
	uint8_t (*named)[OBJECT_ID_LEN];
	size_t named_count;
	uint64_t removed;
};

static int id_compare(const void *a, const void *b)
{
	return memcmp(a, b, OBJECT_ID_LEN);
}

static int sweep_visit(void *arg, const uint8_t id[OBJECT_ID_LEN], uint32_t key_version,
		       time_t mtime)
{
	struct sweep *s = arg;

	/* Version 0: a header nobody can read - not ours to judge. */
	if (key_version == 0 || mtime >= s->before)
		return 0;
	if (bsearch(id, s->named, s->named_count, OBJECT_ID_LEN, id_compare) != NULL)
		return 0;
	if (vault_object_unlink(s->vault, id) == 0)
		s->removed++;
	return 0;
}

int rekey_sweep(struct vault *vault, time_t before, uint64_t *removed)
{
	struct sweep s = { .vault = vault, .before = before };
	struct meta_txn *txn;
	struct meta_inode rec;
	uint64_t after = 0;
	size_t capacity = 0;
	int ret;

	*removed = 0;
	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	while ((ret = meta_inode_next(txn, after, &rec)) == 0) {
		after = rec.ino;
		if (S_ISREG(rec.mode)) {
			if (s.named_count == capacity) {
				size_t grown_cap = capacity ? 2 * capacity : 1024;
				void *grown = realloc(s.named, grown_cap * sizeof(*s.named));
				if (grown == NULL) {
					meta_inode_release(&rec);
					ret = -ENOMEM;
					break;
				}
				s.named = grown;
				capacity = grown_cap;
			}
			memcpy(s.named[s.named_count++], rec.object_id, OBJECT_ID_LEN);
		}
		meta_inode_release(&rec);
	}
	meta_txn_abort(txn);
	if (ret == -ENOENT) {
		qsort(s.named, s.named_count, OBJECT_ID_LEN, id_compare);
		ret = vault_objects_each(vault, sweep_visit, &s);
	}
	free(s.named);
	*removed = s.removed;
	return ret;
}

/* The offline run. */

struct offline {
	struct vault *vault;
	uint64_t budget_limit;
	struct rekey_progress progress;
	rekey_report_fn *report;
	void *arg;
	uint8_t (*unlink)[OBJECT_ID_LEN];   /* old objects, unlinked after a store sync */
	size_t unlink_count;
};

static int flush_unlinks(struct offline *o)
{
	int ret;

	if (o->unlink_count == 0)
		return 0;
	ret = store_sync(o->vault->store);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < o->unlink_count; i++)
		(void)vault_object_unlink(o->vault, o->unlink[i]);
	o->unlink_count = 0;
	return 0;
}

/* Rekey one file; -EIO when its object is damaged (logged), the record left as it was. */
static int offline_file(struct offline *o, uint64_t ino)
{
	struct vault *vault = o->vault;
	struct meta_inode rec, fresh;
	struct object_key *key = NULL, *new_key = NULL;
	struct object_budget budget;
	struct meta_txn *txn;
	const char *why = NULL;
	int fd = -1, new_fd = -1, ret;

	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_inode_get(txn, ino, &rec);
	meta_txn_abort(txn);
	if (ret < 0)
		return ret;
	fd = vault_object_attach(vault, &rec, O_RDONLY, &why);
	if (fd < 0) {
		ret = fd;
		if (why)
			log_object(rec.object_id, UINT64_MAX, why);
		goto out_release;
	}
	ret = key_for(vault, &rec, &key);
	if (ret == 0)
		ret = rekey_copy_object(vault, &rec, fd, key, o->budget_limit, &fresh, &new_fd,
					&new_key, &budget);
	if (ret < 0)
		goto out_close;
	ret = meta_txn_begin(vault->meta, true, &txn);
	if (ret == 0) {
		ret = meta_inode_put(txn, &fresh);
		if (ret == 0)
			ret = meta_txn_commit(txn);
		else
			meta_txn_abort(txn);
	}
	if (ret == 0) {
		memcpy(o->unlink[o->unlink_count++], rec.object_id, OBJECT_ID_LEN);
		if (o->unlink_count == UNLINK_BATCH)
			ret = flush_unlinks(o);
	} else {
		(void)vault_object_unlink(vault, fresh.object_id);
	}
	object_key_free(new_key);
	close(new_fd);
	meta_inode_release(&fresh);
out_close:
	object_key_free(key);
	if (fd >= 0)
		close(fd);
out_release:
	meta_inode_release(&rec);
	return ret;
}

static int step(struct offline *o, uint64_t done)
{
	o->progress.done += done;
	/* Items made by others meanwhile are not counted: never report more than total. */
	if (o->progress.done > o->progress.total)
		o->progress.done = o->progress.total;
	return o->report ? o->report(o->arg, &o->progress) : 0;
}

int rekey_vault(struct vault *vault, uint64_t budget_limit, rekey_report_fn *report, void *arg)
{
	uint32_t version = keysource_newest_version(vault->keys);
	struct offline o = {
		.vault = vault, .budget_limit = budget_limit, .report = report, .arg = arg,
		.progress = { .version = version },
	};
	time_t start = time(NULL);
	uint64_t files, values, ino, after = 0, swept;
	bool damaged = false;
	size_t count;
	int ret;

	o.unlink = malloc(UNLINK_BATCH * sizeof(*o.unlink));
	if (o.unlink == NULL)
		return -ENOMEM;
	ret = rekey_count(vault, version, &files, &values);
	if (ret < 0)
		goto out_free;
	o.progress.total = files + values;
	if ((ret = step(&o, 0)))
		goto out_free;
	do {
		ret = rekey_metadata(vault, version, RESEAL_BATCH, &count);
		if (ret == 0)
			ret = step(&o, count);
	} while (ret == 0 && count == RESEAL_BATCH);
	while (ret == 0 && (ret = rekey_next_file(vault, version, after, &ino)) == 0) {
		after = ino;
		ret = offline_file(&o, ino);
		if (ret == -EIO) {
			damaged = true;
			ret = 0;
			continue;
		}
		if (ret == 0)
			ret = step(&o, 1);
	}
	if (ret == -ENOENT)
		ret = 0;
	if (ret == 0)
		ret = flush_unlinks(&o);
	if (ret == 0)
		ret = rekey_sweep(vault, start, &swept);
	if (ret == 0 && swept)
		log_info("rekey: removed %llu objects left by an interrupted run",
			 (unsigned long long)swept);
	if (ret == 0 && damaged)
		ret = -EIO;
	if (ret == 0)
		ret = vault_rebind(vault, version);
	if (ret == 0)
		ret = store_sync(vault->store);
out_free:
	if (ret != 0)
		(void)flush_unlinks(&o);
	free(o.unlink);
	return ret;
}
