/*
 * Regular file contents: reading and writing ciphertext objects block by block.
 *
 * Crash ordering. Whatever the daemon is killed in the middle of, the record in the store
 * must stay consistent with the object file: (1) nonce budget is reserved in the record
 * before it is used; (2) a stored size never covers a block that was not yet written
 * unless the block is listed as a hole, so a block that never reached the object reads as
 * zeros rather than failing; (3) the object may only grow up to the recorded
 * object_max_len, which is raised (with room to spare) before the object grows past it,
 * and brought back to the exact length at close and fsync. A shrink rewrites the new last
 * block with a zeroed tail first, so bytes past the end are always zero.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/extent.h"
#include "lib/log.h"
#include "lib/rekey.h"
#include "lib/store.h"
#include "lib/vault.h"

/* Blocks sealed or opened per pread/pwrite: large enough for 1 MiB FUSE requests. */
#define CHUNK_BLOCKS 256
/* Blocks an object may grow by before its record must be stored again (about 1 MiB). */
#define OBJECT_RESERVE_BLOCKS 256
/* Writes of at least this many bytes start their write-out at once (write-behind). */
#define WRITE_BEHIND_MIN (256 * 1024)
/* Aligned writes of at least this many bytes are sealed before the vnode lock is taken. */
#define SEAL_EARLY_MIN (64 * 1024)
/* No file may be larger: block indexes and offsets stay far from overflow. */
#define FILE_SIZE_MAX (UINT64_C(1) << 52)

enum { SCRATCH_CIPHER, SCRATCH_BLOCK };

static void object_name(char hex[2 * OBJECT_ID_LEN + 1], const struct meta_inode *rec)
{
	crypto_to_hex(hex, 2 * OBJECT_ID_LEN + 1, rec->object_id, OBJECT_ID_LEN);
}

static int object_fault(const struct vnode *node, uint64_t block, const char *what)
{
	char hex[2 * OBJECT_ID_LEN + 1];
	object_name(hex, &node->rec);
	if (block == UINT64_MAX)
		log_error("object %s: %s", hex, what);
	else
		log_error("object %s block %llu: %s", hex, (unsigned long long)block, what);
	return -EIO;
}

int file_create_object(struct vfs *vfs, struct meta_inode *rec, int *fd_out)
{
	int fd = vault_object_create(vfs->vault, rec);
	if (fd < 0)
		return fd;
	*fd_out = fd;
	/* The first nonce budget and room for the first writes, stored with the new record,
	 * so that the first writes need no commit of their own. */
	rec->budget_reserved = vfs->budget_limit < OBJECT_BUDGET_STEP ? vfs->budget_limit
								  : OBJECT_BUDGET_STEP;
	rec->object_max_len = OBJECT_HEADER_LEN + OBJECT_RESERVE_BLOCKS * vfs->stride;
	rec->size = 0;
	return 0;
}

void file_adopt_object(struct vfs *vfs, struct vnode *node, int fd)
{
	struct object_header header;

	pthread_rwlock_wrlock(&node->lock);
	vault_object_header(vfs->vault, &node->rec, &header);
	if (node->object_fd < 0 && !node->object_error &&
	    node_object_key(vfs, &header, &node->key) == 0) {
		node->object_fd = fd;
		/* A new object under a new file key: nothing of its budget is used yet. */
		node->budget.used = 0;
		node->budget.reserved = node->rec.budget_reserved;
		fd = -1;
	}
	pthread_rwlock_unlock(&node->lock);
	if (fd >= 0)
		close(fd);
}

/* Open the object and check it against the record (write lock held). Mismatches are
 * remembered in object_error so every read and write of the file fails with EIO. */
static int attach(struct vfs *vfs, struct vnode *node)
{
	struct object_header header;
	const char *why = NULL;
	int fd, err;

	if (node->object_fd >= 0 || node->object_error)
		return node->object_error;
	fd = vault_object_attach(vfs->vault, &node->rec, vfs->read_only ? O_RDONLY : O_RDWR,
				 &why);
	if (fd == -EIO && why) {
		node->object_error = object_fault(node, UINT64_MAX, why);
		return node->object_error;
	}
	if (fd < 0)
		return fd;
	vault_object_header(vfs->vault, &node->rec, &header);
	err = node_object_key(vfs, &header, &node->key);
	if (err) {
		close(fd);
		return err;
	}
	node->object_fd = fd;
	node->budget.used = node->rec.budget_reserved;
	node->budget.reserved = node->rec.budget_reserved;
	return 0;
}

static void detach(struct vnode *node)
{
	if (node->object_fd >= 0) {
		close(node->object_fd);
		node->object_fd = -1;
	}
	object_key_free(node->key);
	node->key = NULL;
}

/*
 * The file's contents changed: mtime and ctime move to now - unless the kernel keeps them
 * (writeback cache). It then sends its own times in a SETATTR, which may well come before
 * a WRITE it sent earlier is done here: a time of the daemon's would land after the
 * kernel's and come back, later than what stat showed, at the next mount.
 */
static void mark_modified(const struct vfs *vfs, struct vnode *node)
{
	if (vfs->kernel_times)
		return;
	node_time_now(&node->rec.mtime);
	node->rec.ctime = node->rec.mtime;
}

/* Blocks sealed or opened by one crew slice. */
struct block_work {
	const struct object_key *key;
	size_t stride;
	uint64_t index;          /* block index of item 0 */
	uint8_t *cipher;
	uint8_t *plain;
	uint64_t bad;            /* open: lowest item that failed (UINT64_MAX: none) */
};

static int open_slice(void *arg, size_t first, size_t count)
{
	struct block_work *w = arg;

	for (size_t i = first; i < first + count; i++) {
		if (object_block_open(w->plain + i * OBJECT_BLOCK_SIZE, w->cipher + i * w->stride,
				      w->index + i, w->key) != 0) {
			uint64_t bad = __atomic_load_n(&w->bad, __ATOMIC_RELAXED);
			while (i < bad && !__atomic_compare_exchange_n(&w->bad, &bad, i, false,
								       __ATOMIC_RELAXED,
								       __ATOMIC_RELAXED))
				;
			return -EBADMSG;
		}
	}
	return 0;
}

static int seal_slice(void *arg, size_t first, size_t count)
{
	struct block_work *w = arg;

	for (size_t i = first; i < first + count; i++) {
		int err = object_block_seal(w->cipher + i * w->stride,
					    w->plain + i * OBJECT_BLOCK_SIZE, w->index + i, w->key);
		if (err)
			return err;
	}
	return 0;
}

/* Read and authenticate count consecutive data blocks starting at index into plain. */
static int read_blocks(struct vfs *vfs, struct vnode *node, uint64_t index, uint64_t count,
		       uint8_t *plain)
{
	size_t len = (size_t)count * vfs->stride;
	uint8_t *cipher = scratch_get(SCRATCH_CIPHER, CHUNK_BLOCKS * vfs->stride);
	ssize_t got;

	if (!cipher)
		return -ENOMEM;
	got = pread(node->object_fd, cipher, len, object_block_offset(vfs->cipher, index));
	if (got < 0)
		return -errno;
	uint64_t whole = (uint64_t)got / vfs->stride;
	struct block_work work = { node->key, vfs->stride, index, cipher, plain, UINT64_MAX };
	if (crew_run(vfs->crew, open_slice, &work, whole < count ? whole : count) != 0)
		return object_fault(node, index + work.bad, "authentication failed");
	if (whole < count)
		return object_fault(node, index + whole, "missing (truncated object)");
	return 0;
}

int do_read(struct vfs *vfs, struct vnode *node, uint8_t *out, size_t size, off_t off,
	    size_t *done)
{
	int err = 0;

	*done = 0;
	pthread_rwlock_rdlock(&node->lock);
	if (node->object_error || node->object_fd < 0) {
		err = node->object_error ? node->object_error : -EBADF;
		goto out_unlock;
	}
	if ((uint64_t)off >= node->rec.size)
		goto out_unlock;
	uint64_t end = (uint64_t)off + size;
	if (end > node->rec.size)
		end = node->rec.size;
	uint8_t *block = scratch_get(SCRATCH_BLOCK, CHUNK_BLOCKS * OBJECT_BLOCK_SIZE);
	if (!block) {
		err = -ENOMEM;
		goto out_unlock;
	}
	uint64_t pos = (uint64_t)off;
	while (pos < end) {
		uint64_t index = pos / OBJECT_BLOCK_SIZE;
		uint64_t last = (end - 1) / OBJECT_BLOCK_SIZE + 1;
		uint64_t run_end;
		bool hole = extent_is_hole(&node->rec, index);

		run_end = hole ? extent_next_data(&node->rec, index, last)
			       : extent_next_hole(&node->rec, index, last);
		if (run_end - index > CHUNK_BLOCKS)
			run_end = index + CHUNK_BLOCKS;
		uint64_t run_bytes_end = run_end * OBJECT_BLOCK_SIZE;
		if (run_bytes_end > end)
			run_bytes_end = end;
		size_t skip = (size_t)(pos - index * OBJECT_BLOCK_SIZE);
		size_t take = (size_t)(run_bytes_end - pos);
		uint8_t *dest = out + (pos - (uint64_t)off);
		if (hole) {
			memset(dest, 0, take);
		} else if (skip == 0 && take == (run_end - index) * OBJECT_BLOCK_SIZE) {
			/* Whole blocks: decrypt straight into the reply. */
			err = read_blocks(vfs, node, index, run_end - index, dest);
			if (err)
				goto out_unlock;
		} else {
			err = read_blocks(vfs, node, index, run_end - index, block);
			if (err)
				goto out_unlock;
			memcpy(dest, block + skip, take);
		}
		pos += take;
	}
	*done = (size_t)(end - (uint64_t)off);

out_unlock:
	pthread_rwlock_unlock(&node->lock);
	return err;
}

int file_reencrypt(struct vfs *vfs, struct vnode *node, uint8_t old_id[OBJECT_ID_LEN])
{
	struct meta_inode fresh;
	struct object_key *key;
	struct object_budget budget;
	int fd, err;

	err = attach(vfs, node);
	if (err)
		return err;
	err = rekey_copy_object(vfs->vault, &node->rec, node->object_fd, node->key,
				vfs->budget_limit, &fresh, &fd, &key, &budget);
	if (err)
		return err;
	memcpy(old_id, node->rec.object_id, OBJECT_ID_LEN);
	meta_inode_release(&node->rec);
	node->rec = fresh;
	detach(node);
	node->object_fd = fd;
	node->key = key;
	node->budget = budget;
	err = node_save(vfs, node);
	if (err)
		log_error("inode %llu: re-encrypted object not recorded: %s",
			  (unsigned long long)node->ino, strerror(-err));
	return err;
}

/* Put the copy fresh (its fd, key and budget) in place of node's object (write lock
 * held): only its object fields, since attributes may have changed during the copy. */
static int swap_object(struct vfs *vfs, struct vnode *node, const struct meta_inode *fresh,
		       int fd, struct object_key *key, const struct object_budget *budget,
		       uint8_t old_id[OBJECT_ID_LEN])
{
	memcpy(old_id, node->rec.object_id, OBJECT_ID_LEN);
	memcpy(node->rec.object_id, fresh->object_id, OBJECT_ID_LEN);
	node->rec.key_version = fresh->key_version;
	node->rec.budget_reserved = fresh->budget_reserved;
	node->rec.object_max_len = fresh->object_max_len;
	detach(node);
	node->object_fd = fd;
	node->key = key;
	node->budget = *budget;
	node->changes++;
	return node_save(vfs, node);
}

int file_rekey(struct vfs *vfs, struct vnode *node, uint32_t version,
	       uint8_t old_id[OBJECT_ID_LEN])
{
	struct meta_inode snapshot = { 0 }, fresh = { 0 };
	struct object_key *key = NULL;
	struct object_budget budget;
	uint8_t copied_from[OBJECT_ID_LEN];
	bool copied = false, moved = false;
	uint64_t changes;
	int fd = -1, err;

	/* Open the object and note the file as it is. */
	pthread_rwlock_wrlock(&node->lock);
	if (node->removed || !S_ISREG(node->rec.mode) || node->rec.key_version >= version) {
		pthread_rwlock_unlock(&node->lock);
		return 0;
	}
	err = attach(vfs, node);
	if (!err)
		err = meta_inode_copy(&snapshot, &node->rec);
	changes = node->changes;
	pthread_rwlock_unlock(&node->lock);
	if (err)
		return err;
	memcpy(copied_from, snapshot.object_id, OBJECT_ID_LEN);

	/* Copy under the read lock: readers go on, writers wait. */
	pthread_rwlock_rdlock(&node->lock);
	if (node->changes == changes && node->object_fd >= 0 && !node->object_error) {
		err = rekey_copy_object(vfs->vault, &snapshot, node->object_fd, node->key,
					vfs->budget_limit, &fresh, &fd, &key, &budget);
		copied = err == 0;
	}
	pthread_rwlock_unlock(&node->lock);
	meta_inode_release(&snapshot);
	if (err)
		return err;

	pthread_rwlock_wrlock(&node->lock);
	if (copied && node->changes == changes && !node->removed &&
	    memcmp(node->rec.object_id, copied_from, OBJECT_ID_LEN) == 0) {
		err = swap_object(vfs, node, &fresh, fd, key, &budget, old_id);
		moved = true;
	} else {
		/* A write came between: the copy is stale; make it again under the lock. */
		if (copied) {
			(void)vault_object_unlink(vfs->vault, fresh.object_id);
			close(fd);
			object_key_free(key);
		}
		if (!node->removed && node->rec.key_version < version) {
			err = file_reencrypt(vfs, node, old_id);
			moved = true;
		}
	}
	pthread_rwlock_unlock(&node->lock);
	meta_inode_release(&fresh);
	if (err)
		return err;
	return moved ? 1 : 0;
}

/* Take nonce budget for count block encryptions, storing a new reservation before use. */
static int take_budget(struct vfs *vfs, struct vnode *node, uint64_t count)
{
	int taken = object_budget_take(&node->budget, count, vfs->budget_limit);
	if (taken == -EKEYEXPIRED) {
		uint8_t old_id[OBJECT_ID_LEN];
		int err = file_reencrypt(vfs, node, old_id);
		/* The old object goes once the store durably names the new one. */
		if (!err)
			err = store_sync(vfs->vault->store);
		if (err)
			return err;
		(void)vault_object_unlink(vfs->vault, old_id);
		log_info("inode %llu: file key reached its encryption limit; re-encrypted under "
			 "a new key", (unsigned long long)node->ino);
		taken = object_budget_take(&node->budget, count, vfs->budget_limit);
	}
	if (taken < 0)
		return taken;
	if (taken == 1) {
		node->rec.budget_reserved = node->budget.reserved;
		return node_save(vfs, node);
	}
	return 0;
}

/*
 * Before the object grows to end bytes: if that passes the recorded object_max_len, raise
 * it with room to spare and store the record now (rule 3). Called before blocks are
 * written, while they are still holes in the record, so the stored record never claims
 * a block the object does not hold.
 */
static int reserve_object_length(struct vfs *vfs, struct vnode *node, uint64_t end)
{
	if (end <= node->rec.object_max_len)
		return 0;
	uint64_t room = (end - OBJECT_HEADER_LEN) / 4;
	if (room < OBJECT_RESERVE_BLOCKS * vfs->stride)
		room = OBJECT_RESERVE_BLOCKS * vfs->stride;
	node->rec.object_max_len = end + room;
	return node_save(vfs, node);
}

/* Write blocks [first, first + count), already sealed into cipher. */
static int write_sealed(struct vfs *vfs, struct vnode *node, uint64_t first, uint64_t count,
			const uint8_t *cipher)
{
	size_t len = (size_t)count * vfs->stride;
	int err;

	node->changes++;
	err = reserve_object_length(vfs, node,
				    (uint64_t)object_block_offset(vfs->cipher, first + count));
	if (err)
		return err;
	ssize_t written = pwrite(node->object_fd, cipher, len,
				 object_block_offset(vfs->cipher, first));
	if (written < 0)
		return -errno;
	/* Write-behind: a large write starts on its way to the disk now, so that the disk
	 * works while the writer goes on and an fsync finds little left to wait for. */
	if (len >= WRITE_BEHIND_MIN)
		(void)sync_file_range(node->object_fd, object_block_offset(vfs->cipher, first),
				      (off_t)written, SYNC_FILE_RANGE_WRITE);
	return (size_t)written == len ? 0 : -ENOSPC;
}

/* Seal and write blocks [first, first + count) whose plaintext is in plain. */
static int write_blocks(struct vfs *vfs, struct vnode *node, uint64_t first, uint64_t count,
			const uint8_t *plain)
{
	uint8_t *cipher = scratch_get(SCRATCH_CIPHER, CHUNK_BLOCKS * vfs->stride);
	int err;

	if (!cipher)
		return -ENOMEM;
	err = take_budget(vfs, node, count);
	if (err)
		return err;
	struct block_work work = { node->key, vfs->stride, first, cipher, (uint8_t *)plain,
				   UINT64_MAX };
	err = crew_run(vfs->crew, seal_slice, &work, count);
	if (err)
		return err;
	return write_sealed(vfs, node, first, count, cipher);
}

/*
 * A large block-aligned write (one chunk) seals its blocks before do_write takes the vnode
 * lock for the rest: the kernel keeps several WRITEs of a file in flight, and this way one
 * is sealed while another writes its ciphertext. The nonce budget is taken first, under
 * the lock (rule 1); the sealed blocks are used only if the file key is still the one they
 * were sealed with (a rekey, a fresh key at the budget limit, a revocation or a last close
 * may change it meanwhile: the write then seals again). Returns a reference to the key,
 * with the ciphertext in the SCRATCH_CIPHER buffer, or NULL to seal under the lock.
 */
static struct object_key *seal_early(struct vfs *vfs, struct vnode *node, const uint8_t *in,
				     uint64_t first, uint64_t count)
{
	uint8_t *cipher = scratch_get(SCRATCH_CIPHER, CHUNK_BLOCKS * vfs->stride);
	struct object_key *key = NULL;

	if (!cipher)
		return NULL;
	pthread_rwlock_wrlock(&node->lock);
	if (!node->object_error && node->object_fd >= 0 && node->key &&
	    take_budget(vfs, node, count) == 0 && node->key)
		key = object_key_ref(node->key);
	pthread_rwlock_unlock(&node->lock);
	if (!key)
		return NULL;
	struct block_work work = { key, vfs->stride, first, cipher, (uint8_t *)in, UINT64_MAX };
	if (crew_run(vfs->crew, seal_slice, &work, count) != 0) {
		object_key_free(key);
		return NULL;
	}
	return key;
}

/* Plaintext of block index as it is now: zeros for holes and blocks past the end. */
static int current_block(struct vfs *vfs, struct vnode *node, uint64_t index, uint8_t *plain)
{
	if (index >= object_block_count(node->rec.size) || extent_is_hole(&node->rec, index)) {
		memset(plain, 0, OBJECT_BLOCK_SIZE);
		return 0;
	}
	return read_blocks(vfs, node, index, 1, plain);
}

/* Make room for blocks up to new_size before writing them (crash ordering rule 2). */
/*
 * Grow the file to new_size in the record; the new blocks are holes until the caller has
 * written them. Not stored here: the next save cannot happen before the blocks are
 * written, since saves take the vnode lock the caller holds.
 */
static int extend_record(struct vfs *vfs, struct vnode *node, uint64_t new_size)
{
	uint64_t old_blocks = object_block_count(node->rec.size);
	uint64_t new_blocks = object_block_count(new_size);
	int err = extent_add(&node->rec, old_blocks, new_blocks);

	(void)vfs;
	if (err)
		return err;
	node->rec.size = new_size;
	node->dirty = true;
	node->changes++;
	return 0;
}


/*
 * At a close or fsync, shrink object_max_len back to the object's real length, so that
 * a closed file's object cannot be extended unnoticed by even one byte. Marks the record
 * dirty when that changes it.
 */
static void settle_object_length(struct vnode *node)
{
	struct stat st;

	if (node->object_fd < 0 || fstat(node->object_fd, &st) != 0)
		return;
	if ((uint64_t)st.st_size < node->rec.object_max_len) {
		node->rec.object_max_len = (uint64_t)st.st_size;
		node->dirty = true;
	}
}

/* Keep the hole list within META_HOLES_MAX by writing zeros into the shortest holes. */
static int bound_holes(struct vfs *vfs, struct vnode *node)
{
	uint8_t *zeros = scratch_get(SCRATCH_BLOCK, CHUNK_BLOCKS * OBJECT_BLOCK_SIZE);
	if (!zeros)
		return -ENOMEM;
	while (node->rec.hole_count > META_HOLES_MAX) {
		struct meta_extent hole = node->rec.holes[extent_smallest(&node->rec)];
		for (uint64_t i = hole.start; i < hole.end; i += CHUNK_BLOCKS) {
			uint64_t n = hole.end - i < CHUNK_BLOCKS ? hole.end - i : CHUNK_BLOCKS;
			memset(zeros, 0, (size_t)n * OBJECT_BLOCK_SIZE);
			int err = write_blocks(vfs, node, i, n, zeros);
			if (err)
				return err;
		}
		int err = extent_remove(&node->rec, hole.start, hole.end);
		if (err)
			return err;
	}
	return 0;
}

int do_write(struct vfs *vfs, struct vnode *node, const uint8_t *in, size_t size, off_t off)
{
	uint64_t start = (uint64_t)off, end = start + size;
	uint8_t *plain;
	int err = 0;

	if (size == 0)
		return 0;
	if (end > FILE_SIZE_MAX || end < start)
		return -EFBIG;
	struct object_key *sealed = NULL;
	if (size >= SEAL_EARLY_MIN && size <= CHUNK_BLOCKS * OBJECT_BLOCK_SIZE &&
	    start % OBJECT_BLOCK_SIZE == 0 && size % OBJECT_BLOCK_SIZE == 0)
		sealed = seal_early(vfs, node, in, start / OBJECT_BLOCK_SIZE,
				    size / OBJECT_BLOCK_SIZE);
	pthread_rwlock_wrlock(&node->lock);
	if (node->object_error || node->object_fd < 0) {
		err = node->object_error ? node->object_error : -EBADF;
		goto out_unlock;
	}
	plain = scratch_get(SCRATCH_BLOCK, CHUNK_BLOCKS * OBJECT_BLOCK_SIZE);
	if (!plain) {
		err = -ENOMEM;
		goto out_unlock;
	}
	uint64_t first = start / OBJECT_BLOCK_SIZE;
	uint64_t last = (end - 1) / OBJECT_BLOCK_SIZE;
	uint64_t old_size = node->rec.size;

	for (uint64_t chunk = first; chunk <= last; chunk += CHUNK_BLOCKS) {
		uint64_t count = last - chunk + 1 < CHUNK_BLOCKS ? last - chunk + 1 : CHUNK_BLOCKS;
		uint64_t chunk_start = chunk * OBJECT_BLOCK_SIZE;
		uint64_t chunk_end = (chunk + count) * OBJECT_BLOCK_SIZE;
		uint64_t from = start > chunk_start ? start : chunk_start;
		uint64_t to = end < chunk_end ? end : chunk_end;

		const uint8_t *source = in + (from - start);
		if (from % OBJECT_BLOCK_SIZE || to % OBJECT_BLOCK_SIZE) {
			/* Partial first and last blocks keep their other bytes. */
			if (from % OBJECT_BLOCK_SIZE)
				err = current_block(vfs, node, chunk, plain);
			if (!err && to % OBJECT_BLOCK_SIZE &&
			    (count > 1 || !(from % OBJECT_BLOCK_SIZE)))
				err = current_block(vfs, node, chunk + count - 1,
						    plain + (count - 1) * OBJECT_BLOCK_SIZE);
			if (err)
				goto out_unlock;
			memcpy(plain + (from - chunk_start), source, (size_t)(to - from));
			source = plain;
		}
		if (to > node->rec.size) {
			err = extend_record(vfs, node, to);
			if (err)
				goto out_unlock;
		}
		if (sealed && sealed == node->key)
			err = write_sealed(vfs, node, chunk, count,
					   scratch_get(SCRATCH_CIPHER, CHUNK_BLOCKS * vfs->stride));
		else
			err = write_blocks(vfs, node, chunk, count, source);
		if (err)
			goto out_failed;
		uint32_t holes_before = node->rec.hole_count;
		err = extent_remove(&node->rec, chunk, chunk + count);
		if (node->rec.hole_count != holes_before || to > old_size)
			node->attr_stale = true;
		if (err)
			goto out_failed;
	}
	err = bound_holes(vfs, node);
	mark_modified(vfs, node);
	node->dirty = true;
	goto out_unlock;

out_failed:
	/* The blocks may be torn: forget the part of the write that extended the file.
	 * The stored record still lists them as holes. */
	if (node->rec.size > old_size) {
		uint64_t keep = object_block_count(old_size);
		node->rec.size = old_size;
		if (extent_remove(&node->rec, keep, UINT64_MAX) != 0)
			node->object_error = -EIO;  /* cannot happen: removal at the end never splits */
		node->dirty = true;
	}
out_unlock:
	pthread_rwlock_unlock(&node->lock);
	object_key_free(sealed);
	return err;
}

static int resize(struct vfs *vfs, struct vnode *node, uint64_t size)
{
	uint64_t old_size = node->rec.size;
	uint64_t blocks = object_block_count(size);
	int err = 0;

	if (size > old_size) {
		err = extend_record(vfs, node, size);
	} else if (size < old_size) {
		uint64_t tail = size % OBJECT_BLOCK_SIZE;
		if (tail && !extent_is_hole(&node->rec, blocks - 1)) {
			uint8_t *plain = scratch_get(SCRATCH_BLOCK, CHUNK_BLOCKS * OBJECT_BLOCK_SIZE);
			if (!plain)
				return -ENOMEM;
			err = read_blocks(vfs, node, blocks - 1, 1, plain);
			if (!err) {
				memset(plain + tail, 0, OBJECT_BLOCK_SIZE - tail);
				err = write_blocks(vfs, node, blocks - 1, 1, plain);
			}
			if (err)
				return err;
		}
		err = extent_remove(&node->rec, blocks, UINT64_MAX);
		if (err)
			return err;
		node->changes++;
		node->rec.size = size;
		err = node_save(vfs, node);
		if (err)
			return err;
		off_t length = object_block_offset(vfs->cipher, blocks);
		if (ftruncate(node->object_fd, length) != 0)
			return -errno;
		node->rec.object_max_len = (uint64_t)length;
		node->dirty = true;
	}
	return err;
}

int file_truncate(struct vfs *vfs, struct vnode *node, uint64_t size)
{
	int err;

	if (size > FILE_SIZE_MAX)
		return -EFBIG;
	err = attach(vfs, node);
	if (err)
		return err;
	err = resize(vfs, node, size);
	if (node->opens == 0)
		detach(node);
	return err;
}

/*
 * Reserve backing space for blocks [first, end) of the object, where the backing file
 * system can, with fallocate(2) on the object: it grows over the range (within the
 * recorded object_max_len, rule 3) while the blocks stay holes in the record, so what it
 * holds there is never read. Elsewhere the allocation stays logical (vaultfs(8)).
 */
static int reserve_blocks(struct vfs *vfs, struct vnode *node, uint64_t first, uint64_t end)
{
	off_t from = object_block_offset(vfs->cipher, first);
	off_t to = object_block_offset(vfs->cipher, end);
	int err = reserve_object_length(vfs, node, (uint64_t)to);

	if (err)
		return err;
	if (fallocate(node->object_fd, 0, from, to - from) == 0)
		return 0;
	return errno == EOPNOTSUPP ? 0 : -errno;
}

/*
 * Blocks [first, end) became holes in the stored record: drop their old ciphertext from
 * the object, freeing the space (punch) or keeping it reserved (zero). Only a tidy-up -
 * the record alone makes them read as zeros - so a backing file system that cannot do it
 * leaves the old bytes, unread, until the blocks are written again.
 */
static void wipe_blocks(struct vfs *vfs, struct vnode *node, uint64_t first, uint64_t end,
			bool keep_reserved)
{
	off_t from = object_block_offset(vfs->cipher, first);
	off_t len = object_block_offset(vfs->cipher, end) - from;

	if (keep_reserved &&
	    fallocate(node->object_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, from, len) == 0)
		return;
	if (fallocate(node->object_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, len) != 0)
		return;
	if (keep_reserved)
		(void)fallocate(node->object_fd, FALLOC_FL_KEEP_SIZE, from, len);
}

/* Zero bytes [from, to) of block index, a block inside the file (write lock held). */
static int zero_in_block(struct vfs *vfs, struct vnode *node, uint64_t index, size_t from,
			 size_t to)
{
	uint8_t *plain = scratch_get(SCRATCH_BLOCK, CHUNK_BLOCKS * OBJECT_BLOCK_SIZE);
	int err;

	if (extent_is_hole(&node->rec, index))
		return 0;
	if (!plain)
		return -ENOMEM;
	err = read_blocks(vfs, node, index, 1, plain);
	if (err)
		return err;
	memset(plain + from, 0, to - from);
	return write_blocks(vfs, node, index, 1, plain);
}

/*
 * Make bytes [start, end) of the file, clipped to its size, read as zeros (write lock
 * held): the blocks the range covers whole - the last block of the file too, when the
 * range reaches the end - become holes in the record, never zeroed ciphertext (integrity
 * contract item 5); the parts of blocks at its edges are written again with zeros. The
 * whole blocks are returned in [*hole_first, *hole_end) (empty when none).
 */
static int zero_range(struct vfs *vfs, struct vnode *node, uint64_t start, uint64_t end,
		      uint64_t *hole_first, uint64_t *hole_end)
{
	uint64_t size = node->rec.size;
	int err = 0;

	*hole_first = *hole_end = 0;
	if (end > size)
		end = size;
	if (start >= end)
		return 0;
	uint64_t head = start / OBJECT_BLOCK_SIZE, tail = end / OBJECT_BLOCK_SIZE;
	uint64_t first = (start + OBJECT_BLOCK_SIZE - 1) / OBJECT_BLOCK_SIZE;
	uint64_t last_end = end == size ? object_block_count(size) : tail;

	if (start % OBJECT_BLOCK_SIZE) {
		size_t to = head == tail ? (size_t)(end % OBJECT_BLOCK_SIZE) : OBJECT_BLOCK_SIZE;
		err = zero_in_block(vfs, node, head, (size_t)(start % OBJECT_BLOCK_SIZE), to);
	}
	if (!err && end % OBJECT_BLOCK_SIZE && end < size &&
	    (tail != head || start % OBJECT_BLOCK_SIZE == 0))
		err = zero_in_block(vfs, node, tail, 0, (size_t)(end % OBJECT_BLOCK_SIZE));
	if (err || first >= last_end)
		return err;
	err = extent_add(&node->rec, first, last_end);
	if (err)
		return err;
	node->changes++;
	node->dirty = true;
	*hole_first = first;
	*hole_end = last_end;
	return 0;
}

int do_fallocate(struct vfs *vfs, struct vnode *node, int mode, off_t offset, off_t length)
{
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
	bool punch = mode & FALLOC_FL_PUNCH_HOLE, zero = mode & FALLOC_FL_ZERO_RANGE;
	bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
	uint64_t start = (uint64_t)offset, end = start + (uint64_t)length;
	uint64_t hole_first = 0, hole_end = 0;
	int err;

	if ((mode & ~known) || (punch && (zero || !keep_size)))
		return -EOPNOTSUPP;
	if (offset < 0 || length <= 0)
		return -EINVAL;
	if (end > FILE_SIZE_MAX || end < start)
		return -EFBIG;
	pthread_rwlock_wrlock(&node->lock);
	if (!S_ISREG(node->rec.mode)) {
		err = -ENODEV;
		goto out_unlock;
	}
	if (node->object_error || node->object_fd < 0) {
		err = node->object_error ? node->object_error : -EBADF;
		goto out_unlock;
	}
	/* Space first: a refusal (ENOSPC) changes nothing. A punched range gets none. */
	if (!punch) {
		err = reserve_blocks(vfs, node, start / OBJECT_BLOCK_SIZE,
				     (end - 1) / OBJECT_BLOCK_SIZE + 1);
		if (err)
			goto out_unlock;
	}
	if (punch || zero) {
		err = zero_range(vfs, node, start, end, &hole_first, &hole_end);
		if (err)
			goto out_unlock;
	}
	if (!keep_size && end > node->rec.size) {
		/* The new blocks are holes: they read as zeros and need no write. */
		err = extend_record(vfs, node, end);
		if (err)
			goto out_unlock;
	}
	err = bound_holes(vfs, node);
	if (err)
		goto out_unlock;
	mark_modified(vfs, node);
	node->dirty = true;
	err = node_save(vfs, node);
	if (err || hole_first == hole_end)
		goto out_unlock;
	/* The record naming the new holes is durable before their ciphertext goes: else a
	 * power loss could leave a record that still reads blocks the object no longer
	 * holds (EIO). Blocks bound_holes wrote again are data now and stay. */
	err = store_sync(vfs->vault->store);
	if (err)
		goto out_unlock;
	for (uint64_t index = extent_next_hole(&node->rec, hole_first, hole_end);
	     index < hole_end;) {
		uint64_t run_end = extent_next_data(&node->rec, index, hole_end);
		wipe_blocks(vfs, node, index, run_end, zero);
		index = extent_next_hole(&node->rec, run_end, hole_end);
	}

out_unlock:
	pthread_rwlock_unlock(&node->lock);
	return err;
}

int do_open(struct vfs *vfs, struct vnode *node, int flags)
{
	int err = 0;

	pthread_rwlock_wrlock(&node->lock);
	if (S_ISREG(node->rec.mode)) {
		err = attach(vfs, node);
		/* A damaged object still opens: its reads and writes fail with EIO. */
		if (err == -EIO)
			err = 0;
	}
	if (err)
		goto out_unlock;
	pthread_mutex_lock(&vfs->table_lock);
	node->opens++;
	pthread_mutex_unlock(&vfs->table_lock);
	/* libfuse asks for atomic O_TRUNC: the kernel sends no separate setattr. */
	if ((flags & O_TRUNC) && S_ISREG(node->rec.mode) && node->rec.size > 0) {
		err = node->object_error ? node->object_error : resize(vfs, node, 0);
		if (!err) {
			mark_modified(vfs, node);
			err = node_save(vfs, node);
		}
		if (err) {
			pthread_mutex_lock(&vfs->table_lock);
			node->opens--;
			pthread_mutex_unlock(&vfs->table_lock);
			if (node->opens == 0)
				detach(node);
		}
	}
out_unlock:
	pthread_rwlock_unlock(&node->lock);
	return err;
}

int do_flush(struct vfs *vfs, struct vnode *node)
{
	int err = 0;

	pthread_rwlock_wrlock(&node->lock);
	settle_object_length(node);
	if (node->dirty && !vfs->read_only)
		err = node_save_soon(vfs, node);
	pthread_rwlock_unlock(&node->lock);
	return err;
}

int do_release(struct vfs *vfs, struct vnode *node)
{
	int err = 0;

	pthread_rwlock_wrlock(&node->lock);
	pthread_mutex_lock(&vfs->table_lock);
	uint32_t left = --node->opens;
	pthread_mutex_unlock(&vfs->table_lock);
	if (left == 0) {
		settle_object_length(node);
		if (node->dirty && !vfs->read_only)
			err = node_save_soon(vfs, node);
		detach(node);
	}
	pthread_rwlock_unlock(&node->lock);
	return err;
}

int do_fsync(struct vfs *vfs, struct vnode *node, bool datasync)
{
	int err = 0;

	pthread_rwlock_wrlock(&node->lock);
	/* Data first, then the record that makes it reachable, then the store. */
	if (node->object_fd >= 0 && (datasync ? fdatasync(node->object_fd) : fsync(node->object_fd)))
		err = -errno;
	if (!err)
		settle_object_length(node);
	if (!err && node->dirty && !vfs->read_only)
		err = node_save(vfs, node);
	pthread_rwlock_unlock(&node->lock);
	if (!err && !vfs->read_only)
		err = store_sync(vfs->vault->store);
	return err;
}
