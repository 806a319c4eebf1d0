/*
 * The metadata store over LMDB: one environment per vault (or keystore), one named
 * database per table of its schema, opened once at store_open; compaction by copy and
 * rename. This is the only file that includes <lmdb.h>; every LMDB result leaves it as 0
 * or -errno.
 *
 * A writable store on ext2/3/4 or tmpfs maps its file writable (MDB_WRITEMAP): a commit
 * writes its pages into the map, where a pwrite per page cost ten system calls per
 * namespace change. A page written through a map must never need a new block: on a full
 * disk that is a SIGBUS, not an error. So the file is allocated (posix_fallocate) as far
 * as the map reaches before any page of it is written, and the map, which LMDB extends
 * the file to, starts at STORE_MAP_INITIAL and grows by half once three quarters are
 * used (see grow).
 * When the disk has no room to grow, the map stays and a full map is -ENOSPC. On other
 * file systems (copy-on-write, network), where an allocated block may still need space
 * to be written, commits pwrite and the map is the store's largest size, as for readers.
 *
 * Changing a map needs no transaction of the process open: each transaction holds
 * map_lock shared, a resize holds it exclusively. A resize never shrinks the file, which
 * other processes may map further: it takes the size of the file when that is larger,
 * under an flock of the store's directory that every open and resize takes.
 *
 * No link is followed in the store's directory (a vault's backing store may be hostile).
 * This module opens its own files there relative to the directory's fd with O_NOFOLLOW;
 * LMDB opens data.mdb and lock.mdb by name, so it is given the directory as
 * /proc/self/fd/N (the directory itself, wherever it is moved), each file is checked to be
 * a regular file before, and data.mdb to be the file LMDB opened after (check_env_files).
 */
#include "lib/store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"

#define STORE_MAX_READERS 256
/* A new store's map, and the step its size is rounded up to. */
#define STORE_MAP_INITIAL ((size_t)16 << 20)
#define STORE_MAP_STEP ((size_t)1 << 20)
/* How long a writer waits to grow the map while other transactions of the process end:
 * briefly while a quarter of it is still free (the next writer tries again), longer when
 * it is seven eighths full. */
#define GROW_WAIT_MS 50
#define GROW_WAIT_FULL_MS 2000

/* Table names are on-disk format: never rename. */
static const char *const table_names[STORE_TABLE_COUNT] = {
	[STORE_META] = "meta",
	[STORE_INODES] = "inodes",
	[STORE_DIRENTS] = "dirents",
	[STORE_XATTRS] = "xattrs",
	[STORE_ORPHANS] = "orphans",
	[STORE_KS_META] = "keystore",
	[STORE_KS_DATASETS] = "datasets",
	[STORE_KS_VERSIONS] = "versions",
};

/* Each schema's tables are one contiguous range of enum store_table. */
static const struct {
	enum store_table first, last;
} schema_tables[] = {
	[STORE_SCHEMA_VAULT] = { STORE_META, STORE_ORPHANS },
	[STORE_SCHEMA_KEYSTORE] = { STORE_KS_META, STORE_KS_VERSIONS },
};

#define DATA_FILE "data.mdb"
#define LOCK_FILE "lock.mdb"
#define COMPACT_FILE "data.mdb.compact"
/* "/proc/self/fd/" and an int */
#define ENV_PATH_LEN 32

struct store {
	MDB_env *env;   /* NULL after store_compact failed to reopen it */
	MDB_dbi dbi[STORE_TABLE_COUNT];
	bool read_only;
	enum store_schema schema;
	size_t map_max;   /* the largest the map may grow */
	size_t map_size;  /* the map now (map_lock) */
	size_t page_size;
	bool writemap;    /* MDB_WRITEMAP, and the map grows */
	int dir_fd;       /* flock'ed while this process sizes the file and its map */
	char env_path[ENV_PATH_LEN];  /* the directory as LMDB is given it: /proc/self/fd/N */
	/* Held shared by every transaction, exclusively to resize the map. */
	pthread_rwlock_t map_lock;
	/* A write transaction found the map full: grow before the next one. */
	atomic_bool map_full;
	/* A resize failed and the old map could not be restored either. */
	bool broken;
};

struct store_txn {
	struct store *store;
	MDB_txn *txn;
	bool write;
	/* First failure that left LMDB's write transaction unusable (map full...):
	 * every later call and the commit report it. */
	int error;
};

struct store_cursor {
	struct store_txn *txn;
	MDB_cursor *cursor;
	MDB_dbi dbi;
};

static int store_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	case MDB_PAGE_NOTFOUND:
	case MDB_CORRUPTED:
	case MDB_PANIC:
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
	case MDB_DBS_FULL:
	case MDB_TLS_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
	case MDB_MAP_RESIZED:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
		return -EIO;
	default:
		/* LMDB passes system errors through as positive errno values. */
		return rc > 0 ? -rc : -EIO;
	}
}

/* Errors after which LMDB refuses to go on with a write transaction. KEYEXIST and
 * NOTFOUND are answers, not failures; BAD_VALSIZE is checked before LMDB sees it. */
static void txn_note_failure(struct store_txn *txn, int rc)
{
	if (rc == MDB_SUCCESS || rc == MDB_KEYEXIST || rc == MDB_NOTFOUND)
		return;
	if (rc == MDB_MAP_FULL)
		atomic_store(&txn->store->map_full, true);
	if (txn->write && txn->error == 0)
		txn->error = store_errno(rc);
}

static MDB_val to_val(struct store_slice slice)
{
	MDB_val val = { .mv_size = slice.len, .mv_data = (void *)slice.data };
	return val;
}

static struct store_slice to_slice(MDB_val val)
{
	struct store_slice slice = { .data = val.mv_data, .len = val.mv_size };
	return slice;
}

static int check_key(struct store_slice key)
{
	if (key.len == 0 || key.len > STORE_KEY_MAX || key.data == NULL)
		return -EINVAL;
	return 0;
}

static bool table_valid(const struct store *store, enum store_table table)
{
	return (unsigned)table >= (unsigned)schema_tables[store->schema].first &&
	       (unsigned)table <= (unsigned)schema_tables[store->schema].last;
}

static int open_tables(struct store *store, unsigned flags)
{
	MDB_txn *txn;
	unsigned txn_flags = store->read_only ? MDB_RDONLY : 0;
	unsigned dbi_flags = (flags & STORE_CREATE) ? MDB_CREATE : 0;
	int rc;

	rc = mdb_txn_begin(store->env, NULL, txn_flags, &txn);
	if (rc != MDB_SUCCESS)
		return store_errno(rc);
	for (int i = schema_tables[store->schema].first;
	     i <= (int)schema_tables[store->schema].last; i++) {
		rc = mdb_dbi_open(txn, table_names[i], dbi_flags, &store->dbi[i]);
		if (rc != MDB_SUCCESS)
			goto out_abort;
	}
	rc = mdb_txn_commit(txn);
	/* A store without its tables is not one we wrote: call it corrupt. */
	return rc == MDB_NOTFOUND ? -EIO : store_errno(rc);

out_abort:
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? -EIO : store_errno(rc);
}

static size_t round_up(size_t n, size_t step)
{
	return (n + step - 1) / step * step;
}

/* The map LMDB uses now, 0 if it cannot say. */
static size_t env_map_size(MDB_env *env)
{
	MDB_envinfo info;

	return mdb_env_info(env, &info) == MDB_SUCCESS ? info.me_mapsize : 0;
}

/*
 * Resize the map to want, or to the size of the data file where that is larger (another
 * process may map it further; with MDB_WRITEMAP LMDB truncates the file to the map).
 * want 0 adopts the file's size. A writable map's file is allocated first: -ENOSPC, and
 * the map as it was, when the disk has no room. map_lock held exclusively. If LMDB
 * cannot map the new size it gets the old one back; failing that the store refuses
 * every transaction.
 */
static int resize_locked(struct store *store, size_t want)
{
	struct stat st;
	int fd, ret;

	if (flock(store->dir_fd, LOCK_EX) != 0)
		return -errno;
	ret = store_errno(mdb_env_get_fd(store->env, &fd));
	if (ret == 0 && fstat(fd, &st) != 0)
		ret = -errno;
	if (ret == 0) {
		size_t file = (size_t)st.st_size, size = want > file ? want : file;
		if (store->writemap && size > file)
			ret = -posix_fallocate(fd, 0, (off_t)size);
		if (ret == 0) {
			ret = store_errno(mdb_env_set_mapsize(store->env, size));
			if (ret < 0 &&
			    mdb_env_set_mapsize(store->env, store->map_size) != MDB_SUCCESS)
				store->broken = true;
		}
		store->map_size = env_map_size(store->env);
	}
	(void)flock(store->dir_fd, LOCK_UN);
	return ret;
}

/* Take map_lock exclusively, waiting at most wait_ms for the process's transactions to
 * end. Returns 0 or -EBUSY. Timed, because the caller may itself hold a transaction, or
 * a lock that the holder of one waits for. */
static int lock_map_exclusive(struct store *store, long wait_ms)
{
	struct timespec deadline;

	clock_after_ms(CLOCK_MONOTONIC, wait_ms, &deadline);
	return pthread_rwlock_clockwrlock(&store->map_lock, CLOCK_MONOTONIC, &deadline) == 0
		       ? 0
		       : -EBUSY;
}

/*
 * Before a write transaction on a writable map: grow it by half once three quarters are
 * used (or a transaction found it full), so that the largest transaction the callers
 * make, a few hundred records, fits in what is left. If the process's other transactions
 * do not end in time, or the disk has no room, the map stays as it is and the next
 * writer tries again.
 */
static void grow(struct store *store)
{
	MDB_envinfo info;

	if (!store->writemap)
		return;
	pthread_rwlock_rdlock(&store->map_lock);
	size_t map = store->map_size;
	int rc = mdb_env_info(store->env, &info);
	pthread_rwlock_unlock(&store->map_lock);
	if (rc != MDB_SUCCESS || map >= store->map_max)
		return;
	size_t used = ((size_t)info.me_last_pgno + 1) * store->page_size;
	bool full = atomic_load(&store->map_full);
	if (used <= map / 4 * 3 && !full)
		return;
	long wait_ms = full || used > map / 8 * 7 ? GROW_WAIT_FULL_MS : GROW_WAIT_MS;
	if (lock_map_exclusive(store, wait_ms) < 0)
		return;
	if (store->map_size == map && !store->broken) {
		size_t want = round_up(map + map / 2, STORE_MAP_STEP);
		if (want > store->map_max)
			want = store->map_max;
		if (resize_locked(store, want) == 0)
			atomic_store(&store->map_full, false);
	}
	pthread_rwlock_unlock(&store->map_lock);
}

/* Whether blocks once allocated on the file system of dir_fd stay writable without new
 * space (ext2/3/4, tmpfs): only there may the map be written through. */
static bool keeps_allocated_blocks(int dir_fd)
{
	struct statfs fs;

	return fstatfs(dir_fd, &fs) == 0 &&
	       (fs.f_type == EXT4_SUPER_MAGIC || fs.f_type == TMPFS_MAGIC);
}

/*
 * Allocate the data file as far as the writable map reaches, before any transaction, so
 * that no page written through the map needs a block later. On a full disk the map goes
 * back to the file's size before the open, which is allocated already (every writable
 * map allocates what it maps; LMDB without one wrote every page): the store reads, and a
 * write that needs more room is -ENOSPC.
 */
static int allocate_map(struct store *store, size_t allocated)
{
	int fd, rc = mdb_env_get_fd(store->env, &fd);

	if (rc != MDB_SUCCESS)
		return store_errno(rc);
	rc = posix_fallocate(fd, 0, (off_t)env_map_size(store->env));
	if (rc != ENOSPC)
		return -rc;
	/* LMDB keeps at least the pages it uses. */
	return store_errno(mdb_env_set_mapsize(store->env, allocated));
}

/* The file name in the store's directory, if it exists: 0 and *st for a regular file,
 * -ENOENT, -ELOOP for a symbolic link, -EIO for anything else. */
static int env_file_stat(const struct store *store, const char *name, struct stat *st)
{
	if (fstatat(store->dir_fd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	if (S_ISLNK(st->st_mode))
		return -ELOOP;
	return S_ISREG(st->st_mode) ? 0 : -EIO;
}

/*
 * After mdb_env_open: data.mdb is still a regular file, and the very file LMDB has open
 * (a link put there and taken away while LMDB opened it would have sent LMDB elsewhere);
 * lock.mdb is a regular file, and the one checked before when there was one.
 */
static int check_env_files(const struct store *store, const struct stat *lock_before)
{
	struct stat name, open_file, lock;
	int fd, err;

	err = store_errno(mdb_env_get_fd(store->env, &fd));
	if (err)
		return err;
	if (fstat(fd, &open_file) != 0)
		return -errno;
	err = env_file_stat(store, DATA_FILE, &name);
	if (err)
		return err == -ENOENT ? -EIO : err;
	if (name.st_dev != open_file.st_dev || name.st_ino != open_file.st_ino)
		return -ELOOP;
	err = env_file_stat(store, LOCK_FILE, &lock);
	/* A reader on a read-only file system may have no lock file. */
	if (err == -ENOENT && store->read_only && !lock_before)
		return 0;
	if (err)
		return err == -ENOENT ? -EIO : err;
	if (lock_before && (lock.st_dev != lock_before->st_dev || lock.st_ino != lock_before->st_ino))
		return -ELOOP;
	return 0;
}

/* Create and open store->env (the directory exists) and its tables. On failure
 * store->env is NULL. */
static int env_open(struct store *store, unsigned flags)
{
	store->writemap = !store->read_only && keeps_allocated_blocks(store->dir_fd);
	/* Readers map read-only: only a writer's map may be written through. */
	unsigned env_flags = MDB_NOSYNC | MDB_NOTLS |
			     (store->read_only ? MDB_RDONLY : store->writemap ? MDB_WRITEMAP : 0);
	unsigned table_count = (unsigned)schema_tables[store->schema].last -
			       (unsigned)schema_tables[store->schema].first + 1;
	size_t map = store->writemap && store->map_max > STORE_MAP_INITIAL ? STORE_MAP_INITIAL
									  : store->map_max;
	struct stat st, lock_st;
	bool had_lock = false;
	MDB_stat env_stat;
	int err, dead;

	err = store_errno(mdb_env_create(&store->env));
	if (err) {
		store->env = NULL;
		return err;
	}
	err = store_errno(mdb_env_set_maxdbs(store->env, table_count));
	if (err)
		goto out_env;
	err = store_errno(mdb_env_set_maxreaders(store->env, STORE_MAX_READERS));
	if (err)
		goto out_env;
	if (flock(store->dir_fd, LOCK_EX) != 0) {
		err = -errno;
		goto out_env;
	}
	err = env_file_stat(store, DATA_FILE, &st);
	if (err == 0) {
		/* Never below the file: another process may map all of it. */
		if (round_up((size_t)st.st_size, STORE_MAP_STEP) > map)
			map = round_up((size_t)st.st_size, STORE_MAP_STEP);
	} else if (err == -ENOENT && (flags & STORE_CREATE)) {
		st.st_size = 0;
		err = 0;
	}
	/* Without STORE_CREATE an absent data file means "no store here" (-ENOENT), not a
	 * fresh one: LMDB would otherwise create it in read-write mode. */
	if (!err) {
		err = env_file_stat(store, LOCK_FILE, &lock_st);
		had_lock = err == 0;
		if (err == -ENOENT)
			err = 0;
	}
	if (!err)
		err = store_errno(mdb_env_set_mapsize(store->env, map));
	if (!err)
		err = store_errno(mdb_env_open(store->env, store->env_path, env_flags, 0600));
	if (!err)
		err = check_env_files(store, had_lock ? &lock_st : NULL);
	if (!err && store->writemap)
		err = allocate_map(store, (size_t)st.st_size);
	(void)flock(store->dir_fd, LOCK_UN);
	if (err)
		goto out_env;
	store->map_size = env_map_size(store->env);
	err = store_errno(mdb_env_stat(store->env, &env_stat));
	if (err)
		goto out_env;
	store->page_size = env_stat.ms_psize;
	/* Reader slots of killed processes would otherwise stay taken (MDB_NOTLS). */
	if (!store->read_only)
		(void)mdb_reader_check(store->env, &dead);
	err = open_tables(store, flags);
	if (err)
		goto out_env;
	return 0;

out_env:
	mdb_env_close(store->env);
	store->env = NULL;
	return err;
}

/* Open the store in the directory open on dir_fd (borrowed). */
static int open_store(struct store **out, int dir_fd, unsigned flags, size_t map_size,
		      enum store_schema schema)
{
	struct store *store;
	int err;

	*out = NULL;
	if ((flags & STORE_CREATE) && (flags & STORE_READ_ONLY))
		return -EINVAL;
	if ((unsigned)schema >= sizeof(schema_tables) / sizeof(schema_tables[0]))
		return -EINVAL;
	store = calloc(1, sizeof(*store));
	if (!store)
		return -ENOMEM;
	store->read_only = (flags & STORE_READ_ONLY) != 0;
	store->schema = schema;
	store->map_max = map_size;
	atomic_init(&store->map_full, false);
	err = -pthread_rwlock_init(&store->map_lock, NULL);
	if (err)
		goto out_free;
	/* An open file of its own: the store's flock is not the caller's. "." is the
	 * directory itself, never a link. */
	store->dir_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store->dir_fd < 0) {
		err = -errno;
		goto out_free_lock;
	}
	snprintf(store->env_path, sizeof(store->env_path), "/proc/self/fd/%d", store->dir_fd);
	err = env_open(store, flags);
	if (err)
		goto out_close_dir;
	*out = store;
	return 0;

out_close_dir:
	close(store->dir_fd);
out_free_lock:
	pthread_rwlock_destroy(&store->map_lock);
out_free:
	free(store);
	return err;
}

/* open_store of the directory at path dir, made first with STORE_CREATE. */
static int open_store_path(struct store **out, const char *dir, unsigned flags,
			   size_t map_size, enum store_schema schema)
{
	int dir_fd, err;

	*out = NULL;
	if ((flags & STORE_CREATE) && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	err = open_store(out, dir_fd, flags, map_size, schema);
	close(dir_fd);
	return err;
}

int store_open_map_size(struct store **out, const char *dir, unsigned flags, size_t map_size)
{
	return open_store_path(out, dir, flags, map_size, STORE_SCHEMA_VAULT);
}

int store_open(struct store **out, const char *dir, unsigned flags)
{
	return open_store_path(out, dir, flags, STORE_MAP_SIZE, STORE_SCHEMA_VAULT);
}

int store_open_schema(struct store **out, const char *dir, unsigned flags,
		      enum store_schema schema)
{
	return open_store_path(out, dir, flags, STORE_MAP_SIZE, schema);
}

int store_open_dir(struct store **out, int dir_fd, unsigned flags)
{
	return open_store(out, dir_fd, flags, STORE_MAP_SIZE, STORE_SCHEMA_VAULT);
}

void store_close(struct store *store)
{
	if (store == NULL)
		return;
	if (store->env != NULL)
		mdb_env_close(store->env);
	close(store->dir_fd);
	pthread_rwlock_destroy(&store->map_lock);
	free(store);
}

int store_sync(struct store *store)
{
	if (store->env == NULL)
		return -EIO;
	if (store->read_only)
		return 0;
	return store_errno(mdb_env_sync(store->env, 1));
}

/* A compacting copy of the committed state into COMPACT_FILE, made durable. */
static int compact_copy(struct store *store)
{
	int fd, err;

	/* A copy left by a crash is stale: start from an empty file. */
	if (unlinkat(store->dir_fd, COMPACT_FILE, 0) != 0 && errno != ENOENT)
		return -errno;
	fd = openat(store->dir_fd, COMPACT_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Only the pages reachable from the tables are written, and of each page only its
	 * used part: the bytes of freed values stay behind in the old file. */
	err = store_errno(mdb_env_copyfd2(store->env, fd, MDB_CP_COMPACT));
	if (!err && fsync(fd) != 0)
		err = -errno;
	if (close(fd) != 0 && !err)
		err = -errno;
	if (err)
		unlinkat(store->dir_fd, COMPACT_FILE, 0);
	return err;
}

/* store_compact with map_lock held exclusively. */
static int compact_locked(struct store *store)
{
	int err, reopen;

	err = compact_copy(store);
	if (err)
		return err;
	if (renameat(store->dir_fd, COMPACT_FILE, store->dir_fd, DATA_FILE) != 0) {
		err = -errno;
		goto out_unlink;
	}
	/* From here data.mdb is the compacted file; the open environment still maps the
	 * old one, whose blocks the filesystem frees when it is closed. */
	err = fsync(store->dir_fd) == 0 ? 0 : -errno;
	mdb_env_close(store->env);
	reopen = env_open(store, 0);
	return reopen ? reopen : err;

out_unlink:
	unlinkat(store->dir_fd, COMPACT_FILE, 0);
	return err;
}

int store_compact(struct store *store)
{
	if (store->env == NULL)
		return -EIO;
	if (store->read_only)
		return -EROFS;
	/* An open transaction would be left pointing into the closed environment. */
	if (pthread_rwlock_trywrlock(&store->map_lock) != 0)
		return -EBUSY;
	int ret = compact_locked(store);
	pthread_rwlock_unlock(&store->map_lock);
	return ret;
}

int store_txn_begin(struct store *store, bool write, struct store_txn **out)
{
	struct store_txn *txn;
	int ret;

	*out = NULL;
	if (store->env == NULL)
		return -EIO;
	if (write && store->read_only)
		return -EROFS;
	txn = calloc(1, sizeof(*txn));
	if (txn == NULL)
		return -ENOMEM;
	txn->store = store;
	txn->write = write;
	if (write)
		grow(store);
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&store->map_lock);
		int rc = store->broken ? MDB_PANIC
				       : mdb_txn_begin(store->env, NULL, write ? 0 : MDB_RDONLY,
						       &txn->txn);
		ret = store_errno(rc);
		if (rc != MDB_MAP_RESIZED || tries == 2)
			break;
		/* Another process grew the store beyond this process's map. */
		pthread_rwlock_unlock(&store->map_lock);
		ret = lock_map_exclusive(store, GROW_WAIT_FULL_MS);
		if (ret < 0) {
			free(txn);
			return ret;
		}
		(void)resize_locked(store, 0);
		pthread_rwlock_unlock(&store->map_lock);
	}
	if (ret < 0) {
		pthread_rwlock_unlock(&store->map_lock);
		free(txn);
		return ret;
	}
	*out = txn;
	return 0;
}

int store_txn_commit(struct store_txn *txn)
{
	int ret;

	if (txn->error != 0) {
		ret = txn->error;
		mdb_txn_abort(txn->txn);
	} else {
		int rc = mdb_txn_commit(txn->txn);
		if (rc == MDB_MAP_FULL)
			atomic_store(&txn->store->map_full, true);
		ret = store_errno(rc);
	}
	pthread_rwlock_unlock(&txn->store->map_lock);
	free(txn);
	return ret;
}

void store_txn_abort(struct store_txn *txn)
{
	if (txn == NULL)
		return;
	mdb_txn_abort(txn->txn);
	pthread_rwlock_unlock(&txn->store->map_lock);
	free(txn);
}

int store_get(struct store_txn *txn, enum store_table table, struct store_slice key,
	      struct store_slice *val)
{
	MDB_val k, v;
	int rc;

	if (txn->error != 0)
		return txn->error;
	if (!table_valid(txn->store, table) || check_key(key) < 0)
		return -EINVAL;
	k = to_val(key);
	rc = mdb_get(txn->txn, txn->store->dbi[table], &k, &v);
	if (rc != MDB_SUCCESS) {
		txn_note_failure(txn, rc);
		return store_errno(rc);
	}
	*val = to_slice(v);
	return 0;
}

int store_put(struct store_txn *txn, enum store_table table, struct store_slice key,
	      struct store_slice val, unsigned flags)
{
	MDB_val k, v;
	int rc;

	if (txn->error != 0)
		return txn->error;
	if (!txn->write)
		return -EROFS;
	if (!table_valid(txn->store, table) || check_key(key) < 0)
		return -EINVAL;
	if (val.len > 0 && val.data == NULL)
		return -EINVAL;
	k = to_val(key);
	v = to_val(val);
	rc = mdb_put(txn->txn, txn->store->dbi[table], &k, &v,
		     (flags & STORE_NO_OVERWRITE) ? MDB_NOOVERWRITE : 0);
	txn_note_failure(txn, rc);
	return store_errno(rc);
}

int store_del(struct store_txn *txn, enum store_table table, struct store_slice key)
{
	MDB_val k;
	int rc;

	if (txn->error != 0)
		return txn->error;
	if (!txn->write)
		return -EROFS;
	if (!table_valid(txn->store, table) || check_key(key) < 0)
		return -EINVAL;
	k = to_val(key);
	rc = mdb_del(txn->txn, txn->store->dbi[table], &k, NULL);
	txn_note_failure(txn, rc);
	return store_errno(rc);
}

int store_cursor_open(struct store_txn *txn, enum store_table table, struct store_cursor **out)
{
	struct store_cursor *cursor;
	int ret;

	*out = NULL;
	if (txn->error != 0)
		return txn->error;
	if (!table_valid(txn->store, table))
		return -EINVAL;
	cursor = calloc(1, sizeof(*cursor));
	if (cursor == NULL)
		return -ENOMEM;
	cursor->txn = txn;
	cursor->dbi = txn->store->dbi[table];
	ret = store_errno(mdb_cursor_open(txn->txn, cursor->dbi, &cursor->cursor));
	if (ret < 0) {
		free(cursor);
		return ret;
	}
	*out = cursor;
	return 0;
}

void store_cursor_close(struct store_cursor *cursor)
{
	if (cursor == NULL)
		return;
	mdb_cursor_close(cursor->cursor);
	free(cursor);
}

static int cursor_get(struct store_cursor *cursor, MDB_val *k, MDB_cursor_op op,
		      struct store_slice *key_out, struct store_slice *val_out)
{
	MDB_val v;
	int rc;

	if (cursor->txn->error != 0)
		return cursor->txn->error;
	rc = mdb_cursor_get(cursor->cursor, k, &v, op);
	if (rc != MDB_SUCCESS) {
		txn_note_failure(cursor->txn, rc);
		return store_errno(rc);
	}
	if (key_out != NULL)
		*key_out = to_slice(*k);
	if (val_out != NULL)
		*val_out = to_slice(v);
	return 0;
}

int store_cursor_seek(struct store_cursor *cursor, struct store_slice key,
		      struct store_slice *key_out, struct store_slice *val_out)
{
	MDB_val k = { 0 };

	if (key.len == 0)
		return cursor_get(cursor, &k, MDB_FIRST, key_out, val_out);
	if (check_key(key) < 0)
		return -EINVAL;
	k = to_val(key);
	return cursor_get(cursor, &k, MDB_SET_RANGE, key_out, val_out);
}

int store_cursor_next(struct store_cursor *cursor, struct store_slice *key_out,
		      struct store_slice *val_out)
{
	MDB_val k = { 0 };

	return cursor_get(cursor, &k, MDB_NEXT, key_out, val_out);
}

int store_cursor_del(struct store_cursor *cursor)
{
	int rc;

	if (cursor->txn->error != 0)
		return cursor->txn->error;
	if (!cursor->txn->write)
		return -EROFS;
	rc = mdb_cursor_del(cursor->cursor, 0);
	txn_note_failure(cursor->txn, rc);
	/* EINVAL from LMDB here means the cursor is not on an entry. */
	return rc == EINVAL ? -ENOENT : store_errno(rc);
}

int store_count(struct store_txn *txn, enum store_table table, size_t *count)
{
	MDB_stat st;
	int rc;

	if (txn->error != 0)
		return txn->error;
	if (!table_valid(txn->store, table))
		return -EINVAL;
	rc = mdb_stat(txn->txn, txn->store->dbi[table], &st);
	if (rc != MDB_SUCCESS)
		return store_errno(rc);
	*count = st.ms_entries;
	return 0;
}
