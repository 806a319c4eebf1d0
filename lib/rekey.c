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
	size_t len = (size_t)count * stride;
	off_t off = object_block_offset(cipher, first);
	ssize_t got = pread(in_fd, sealed, len, off);
	int ret;

	if (got < 0)
		return -errno;
	if (object_budget_take(budget, count, budget_limit) < 0)
		return -EKEYEXPIRED;
	for (uint64_t i = 0; i < count; i++) {
		if ((size_t)got < (i + 1) * stride) {
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
	/* A regular file writes short only when the disk is full. */
	ssize_t written = pwrite(out_fd, sealed, len, off);
	if (written < 0)
		return -errno;
	return (size_t)written == len ? 0 : -ENOSPC;
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

/* Call fn for each regular file's record numbered above after, in one read transaction,
 * until fn returns non-zero (returned); 0 at the end. */
typedef int file_visit(void *arg, const struct meta_inode *rec);

static int each_file(struct meta_txn *txn, uint64_t after, file_visit *fn, void *arg)
{
	struct meta_inode rec;
	int ret;

	while ((ret = meta_inode_next(txn, after, &rec)) == 0) {
		after = rec.ino;
		if (S_ISREG(rec.mode))
			ret = fn(arg, &rec);
		meta_inode_release(&rec);
		if (ret != 0)
			return ret;
	}
	return ret == -ENOENT ? 0 : ret;
}

struct older {
	uint32_t version;
	uint64_t files;   /* counted */
	uint64_t first;   /* found */
};

static int count_older(void *arg, const struct meta_inode *rec)
{
	struct older *o = arg;

	o->files += rec->key_version < o->version;
	return 0;
}

static int find_older(void *arg, const struct meta_inode *rec)
{
	struct older *o = arg;

	if (rec->key_version >= o->version)
		return 0;
	o->first = rec->ino;
	return 1;
}

int rekey_count(struct vault *vault, uint32_t version, uint64_t *files, uint64_t *values)
{
	struct older o = { .version = version };
	struct meta_txn *txn;
	int ret;

	*files = *values = 0;
	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	ret = meta_count_older(txn, version, values);
	if (ret == 0)
		ret = each_file(txn, 0, count_older, &o);
	meta_txn_abort(txn);
	*files = o.files;
	return ret;
}

/* The first regular file numbered above after whose record names an object under a
 * version older than version: 0 with *ino set, -ENOENT when none. */
static int rekey_next_file(struct vault *vault, uint32_t version, uint64_t after,
			   uint64_t *ino)
{
	struct older o = { .version = version };
	struct meta_txn *txn;
	int ret;

	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	ret = each_file(txn, after, find_older, &o);
	meta_txn_abort(txn);
	if (ret == 1)
		*ino = o.first;
	return ret == 1 ? 0 : ret < 0 ? ret : -ENOENT;
}

/* Re-seal, under the newest version, at most max metadata values sealed under versions
 * older than version, in one write transaction; *count says how many (fewer than max:
 * none are left). */
static int rekey_metadata(struct vault *vault, uint32_t version, size_t max, size_t *count)
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
	size_t capacity;
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

static int name_object(void *arg, const struct meta_inode *rec)
{
	struct sweep *s = arg;

	if (s->named_count == s->capacity) {
		size_t capacity = s->capacity ? 2 * s->capacity : 1024;
		void *grown = realloc(s->named, capacity * sizeof(*s->named));
		if (grown == NULL)
			return -ENOMEM;
		s->named = grown;
		s->capacity = capacity;
	}
	memcpy(s->named[s->named_count++], rec->object_id, OBJECT_ID_LEN);
	return 0;
}

/* Remove the object files no record names that were last changed before `before` (left
 * by an interrupted run: a copy never recorded, an original never unlinked). */
static int rekey_sweep(struct vault *vault, time_t before, uint64_t *removed)
{
	struct sweep s = { .vault = vault, .before = before };
	struct meta_txn *txn;
	int ret;

	*removed = 0;
	ret = meta_txn_begin(vault->meta, false, &txn);
	if (ret < 0)
		return ret;
	ret = each_file(txn, 0, name_object, &s);
	meta_txn_abort(txn);
	if (ret == 0) {
		qsort(s.named, s.named_count, OBJECT_ID_LEN, id_compare);
		ret = vault_objects_each(vault, sweep_visit, &s);
	}
	free(s.named);
	*removed = s.removed;
	return ret;
}

/* A run. */

struct run {
	struct vault *vault;
	const struct rekey_plan *plan;
	struct rekey_progress progress;
	uint8_t (*unlink)[OBJECT_ID_LEN];   /* old objects, unlinked after a store sync */
	size_t unlink_count;
};

static int flush_unlinks(struct run *r)
{
	int ret;

	if (r->unlink_count == 0)
		return 0;
	ret = store_sync(r->vault->store);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < r->unlink_count; i++)
		(void)vault_object_unlink(r->vault, r->unlink[i]);
	r->unlink_count = 0;
	return 0;
}

/* The offline rekey_file_fn: straight from the store (arg: the budget limit). */
static int offline_file(void *arg, struct vault *vault, uint64_t ino, uint32_t version,
			uint8_t old_id[OBJECT_ID_LEN])
{
	const uint64_t *budget_limit = arg;
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
	if (rec.key_version >= version)
		goto out_release;
	fd = vault_object_attach(vault, &rec, O_RDONLY, &why);
	if (fd < 0) {
		ret = fd;
		if (why)
			log_object(rec.object_id, UINT64_MAX, why);
		goto out_release;
	}
	ret = key_for(vault, &rec, &key);
	if (ret == 0)
		ret = rekey_copy_object(vault, &rec, fd, key, *budget_limit, &fresh, &new_fd,
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
		memcpy(old_id, rec.object_id, OBJECT_ID_LEN);
		ret = 1;
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

static int step(struct run *r, uint64_t done)
{
	r->progress.done += done;
	/* Items made by others meanwhile are not counted: never report more than total. */
	if (r->progress.done > r->progress.total)
		r->progress.done = r->progress.total;
	return r->plan->report ? r->plan->report(r->plan->report_arg, &r->progress) : 0;
}

/* Every file under an older version, in inode order: -EIO at the end when some object
 * was damaged (the others are done). */
static int rekey_files(struct run *r)
{
	uint32_t version = r->progress.version;
	uint64_t ino, after = 0;
	bool damaged = false;
	int ret;

	while ((ret = rekey_next_file(r->vault, version, after, &ino)) == 0) {
		after = ino;
		ret = r->plan->file(r->plan->file_arg, r->vault, ino, version,
				    r->unlink[r->unlink_count]);
		if (ret == -EIO) {
			damaged = true;
			continue;
		}
		if (ret < 0)
			return ret;
		if (ret == 1 && ++r->unlink_count == UNLINK_BATCH && (ret = flush_unlinks(r)))
			return ret;
		if ((ret = step(r, 1)))
			return ret;
	}
	if (ret != -ENOENT)
		return ret;
	ret = flush_unlinks(r);
	return ret == 0 && damaged ? -EIO : ret;
}

int rekey_run(struct vault *vault, const struct rekey_plan *plan)
{
	struct run r = { .vault = vault, .plan = plan, .progress = { .version = plan->version } };
	time_t start = time(NULL);
	uint64_t files, values, swept;
	size_t count;
	int ret;

	if (keysource_newest_version(vault->keys) < plan->version)
		return -ENOKEY;
	r.unlink = malloc(UNLINK_BATCH * sizeof(*r.unlink));
	if (r.unlink == NULL)
		return -ENOMEM;
	ret = rekey_count(vault, plan->version, &files, &values);
	if (ret < 0)
		goto out_free;
	r.progress.total = files + values;
	if ((ret = step(&r, 0)))
		goto out_free;
	do {
		ret = rekey_metadata(vault, plan->version, RESEAL_BATCH, &count);
		if (ret == 0)
			ret = step(&r, count);
	} while (ret == 0 && count == RESEAL_BATCH);
	if (ret == 0)
		ret = rekey_files(&r);
	if (ret == 0)
		ret = rekey_sweep(vault, start - plan->sweep_margin, &swept);
	if (ret == 0 && swept)
		log_info("rekey: removed %llu objects left by an interrupted run",
			 (unsigned long long)swept);
	/* Last: only now does nothing use an older version. */
	if (ret == 0)
		ret = vault_rebind(vault, plan->version);
	if (ret == 0)
		ret = store_sync(vault->store);
out_free:
	if (ret != 0)
		(void)flush_unlinks(&r);
	free(r.unlink);
	return ret;
}

int rekey_vault(struct vault *vault, uint64_t budget_limit, rekey_report_fn *report, void *arg)
{
	struct rekey_plan plan = {
		.version = keysource_newest_version(vault->keys),
		.file = offline_file,
		.file_arg = &budget_limit,
		.report = report,
		.report_arg = arg,
	};

	return rekey_run(vault, &plan);
}
