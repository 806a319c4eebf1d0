/*
 * A vault directory: the header file (written atomically at creation and when a rekey
 * moves its key check), the LMDB store under meta/ and the object files under objects/,
 * with removed object files emptied and kept for reuse by the pool (pool.h). Opening
 * checks the header's key check and MAC before any metadata is read. Counting the key
 * versions in use needs no key: object headers and the version prefix of metadata values
 * are plaintext.
 *
 * The backing store may be hostile, so no symbolic link in it is ever followed: every
 * file and directory is opened relative to the fd of its directory with O_NOFOLLOW, the
 * vault directory itself included (only the path leading to it is the admin's), and
 * opening a vault first looks for links everywhere vaultfs could open something
 * (find_link_at), to refuse the vault with the link's name rather than fail later.
 */
#include "lib/vault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/bytes.h"
#include "lib/extent.h"
#include "lib/keysource.h"
#include "lib/meta.h"
#include "lib/pool.h"
#include "lib/secret.h"
#include "lib/store.h"

#define HEADER_MAGIC "VAULTFS\0"
#define HEADER_MAGIC_LEN 8
#define HEADER_TEMP_FILE VAULT_HEADER_FILE ".tmp"
#define OFF_VERSION 8
#define OFF_CIPHER 12
#define OFF_FLAGS 16
#define OFF_CREATED 20
#define OFF_VAULT_ID 28
#define OFF_CHECK_VERSION (OFF_VAULT_ID + VAULT_ID_LEN)
#define OFF_RESERVED (OFF_CHECK_VERSION + 4)
#define OFF_KEY_CHECK 64
#define OFF_MAC (OFF_KEY_CHECK + VAULT_CHECK_LEN)

_Static_assert(OFF_RESERVED + 16 == OFF_KEY_CHECK, "16 reserved header bytes");
_Static_assert(OFF_MAC + VAULT_CHECK_LEN == VAULT_HEADER_LEN, "header length");
_Static_assert(VAULT_OBJECT_PATH_LEN == 2 + 1 + 2 * OBJECT_ID_LEN + 1, "object path length");

void vault_header_encode(uint8_t out[VAULT_HEADER_LEN], const struct vault_header *header)
{
	memset(out, 0, VAULT_HEADER_LEN);
	memcpy(out, HEADER_MAGIC, HEADER_MAGIC_LEN);
	put_le32(out + OFF_VERSION, header->format_version);
	put_le32(out + OFF_CIPHER, header->cipher);
	put_le32(out + OFF_FLAGS, header->flags);
	put_le64(out + OFF_CREATED, header->created);
	memcpy(out + OFF_VAULT_ID, header->vault_id, VAULT_ID_LEN);
	put_le32(out + OFF_CHECK_VERSION, header->check_version == 1 ? 0 : header->check_version);
	memcpy(out + OFF_KEY_CHECK, header->key_check, VAULT_CHECK_LEN);
	memcpy(out + OFF_MAC, header->mac, VAULT_CHECK_LEN);
}

/* Unknown ciphers and flags decode (vaultctl info shows them); vault_open refuses them. */
int vault_header_decode(struct vault_header *header, const uint8_t in[VAULT_HEADER_LEN])
{
	memset(header, 0, sizeof(*header));
	if (memcmp(in, HEADER_MAGIC, HEADER_MAGIC_LEN) != 0)
		return -EBADMSG;
	header->format_version = get_le32(in + OFF_VERSION);
	/* The version comes before the reserved bytes: a later format may use them. */
	if (header->format_version != VAULT_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	for (size_t i = OFF_RESERVED; i < OFF_KEY_CHECK; i++) {
		if (in[i] != 0)
			return -EBADMSG;
	}
	header->cipher = get_le32(in + OFF_CIPHER);
	header->flags = get_le32(in + OFF_FLAGS);
	header->created = get_le64(in + OFF_CREATED);
	memcpy(header->vault_id, in + OFF_VAULT_ID, VAULT_ID_LEN);
	header->check_version = get_le32(in + OFF_CHECK_VERSION);
	/* 1 is written as 0: one encoding per header. */
	if (header->check_version == 1)
		return -EBADMSG;
	if (header->check_version == 0)
		header->check_version = 1;
	memcpy(header->key_check, in + OFF_KEY_CHECK, VAULT_CHECK_LEN);
	memcpy(header->mac, in + OFF_MAC, VAULT_CHECK_LEN);
	return 0;
}

static int read_header_at(int dir_fd, struct vault_header *header)
{
	uint8_t buf[VAULT_HEADER_LEN + 1];
	size_t got = 0;
	ssize_t n;
	int fd, ret;

	fd = openat(dir_fd, VAULT_HEADER_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* One byte more than a header: a longer file is not a header. */
	while (got < sizeof(buf)) {
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_close;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	ret = got == VAULT_HEADER_LEN ? vault_header_decode(header, buf) : -EBADMSG;
out_close:
	close(fd);
	return ret;
}

/* The directory name in at_fd, opened without following a link: an fd, -ELOOP when name
 * is a symbolic link, -errno. */
static int open_dir_at(int at_fd, const char *name)
{
	struct stat st;
	int fd, err;

	fd = openat(at_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	err = -errno;
	/* O_DIRECTORY answers a link with ENOTDIR. */
	if (err == -ENOTDIR && fstatat(at_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = -ELOOP;
	return err;
}

/* The vault directory dir: its last component must not be a link either; the path up to
 * it is the admin's, links included. A trailing slash would make open(2) follow a link,
 * so it is dropped first. */
static int open_vault_dir(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len);
	path[len] = '\0';
	return open_dir_at(AT_FDCWD, path);
}

int vault_header_read(const char *dir, struct vault_header *header)
{
	int dir_fd, err;

	dir_fd = open_vault_dir(dir);
	if (dir_fd < 0)
		return dir_fd;
	err = read_header_at(dir_fd, header);
	close(dir_fd);
	return err;
}

/* Where vaultfs opens things: the entries of the vault directory, of meta/, of objects/
 * and of every directory in objects/ (fan-out directories, free/, trash/). */
static bool descends_into(int depth, const char *prefix, const char *name)
{
	if (depth == 0)
		return strcmp(name, VAULT_META_DIR) == 0 || strcmp(name, VAULT_OBJECTS_DIR) == 0;
	return depth == 1 && strcmp(prefix, VAULT_OBJECTS_DIR "/") == 0;
}

/*
 * The first symbolic link among the entries of the directory open on dir_fd (borrowed)
 * and of the directories below it that descends_into names: -ELOOP with its path
 * (prefix, then its name) in where, 0 when there is none, -errno. Reads d_type, so
 * a vault's scan costs one readdir of each of its directories, not a stat per object.
 */
static int find_link_in(int dir_fd, const char *prefix, int depth, char *where, size_t len)
{
	struct dirent *entry;
	DIR *d;
	int fd, err = 0;

	/* fdopendir takes its fd; "." is the directory itself. */
	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		err = -errno;
		close(fd);
		return err;
	}
	errno = 0;
	while ((entry = readdir(d))) {
		const char *name = entry->d_name;
		unsigned char type = entry->d_type;
		struct stat st;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
			errno = 0;
			continue;
		}
		if (type == DT_UNKNOWN) {
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
				err = errno == ENOENT ? 0 : -errno;
				if (err)
					break;
				errno = 0;
				continue;
			}
			type = S_ISLNK(st.st_mode) ? DT_LNK : S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
		}
		if (type == DT_LNK) {
			snprintf(where, len, "%s%s", prefix, name);
			err = -ELOOP;
			break;
		}
		if (type == DT_DIR && descends_into(depth, prefix, name)) {
			char sub_prefix[sizeof(VAULT_OBJECTS_DIR) + NAME_MAX + 2];
			int sub_fd = open_dir_at(dirfd(d), name);

			snprintf(sub_prefix, sizeof(sub_prefix), "%s%s/", prefix, name);
			if (sub_fd == -ELOOP)
				snprintf(where, len, "%s%s", prefix, name);
			if (sub_fd < 0 && sub_fd != -ENOENT) {
				err = sub_fd;
				break;
			}
			if (sub_fd >= 0) {
				err = find_link_in(sub_fd, sub_prefix, depth + 1, where, len);
				close(sub_fd);
				if (err)
					break;
			}
		}
		errno = 0;
	}
	if (!err && errno != 0)
		err = -errno;
	closedir(d);
	return err;
}

/* find_link_in for the whole vault open on dir_fd. */
static int find_link_at(int dir_fd, char *where, size_t len)
{
	if (len > 0)
		where[0] = '\0';
	return find_link_in(dir_fd, "", 0, where, len);
}

int vault_find_link(const char *dir, char *where, size_t len)
{
	int dir_fd, err;

	if (len > 0)
		where[0] = '\0';
	dir_fd = open_vault_dir(dir);
	if (dir_fd < 0)
		return dir_fd;
	err = find_link_at(dir_fd, where, len);
	close(dir_fd);
	return err;
}

/* key_check and mac of header under dek (version check_version). mac covers the encoded bytes
 * before it, so it is computed over the encoding with key_check in place. */
static int header_check_values(const struct vault_header *header, const uint8_t *dek,
			       uint8_t key_check[VAULT_CHECK_LEN], uint8_t mac[VAULT_CHECK_LEN])
{
	struct vault_header copy = *header;
	uint8_t bytes[VAULT_HEADER_LEN];
	int ret;

	ret = crypto_prf(key_check, VAULT_CHECK_LEN, CRYPTO_CTX_KEY_CHECK, header->vault_id,
			 VAULT_ID_LEN, dek);
	if (ret < 0)
		return ret;
	memcpy(copy.key_check, key_check, VAULT_CHECK_LEN);
	vault_header_encode(bytes, &copy);
	return crypto_prf(mac, VAULT_CHECK_LEN, CRYPTO_CTX_HEADER_MAC, bytes, OFF_MAC, dek);
}

static int write_all_at(int fd, const uint8_t *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Temp file, fsync, rename, fsync of the directory: the header is there whole or not
 * at all. */
static int write_header_at(int dir_fd, const uint8_t bytes[VAULT_HEADER_LEN])
{
	int fd, ret;

	fd = openat(dir_fd, HEADER_TEMP_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	ret = write_all_at(fd, bytes, VAULT_HEADER_LEN, 0);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && renameat(dir_fd, HEADER_TEMP_FILE, dir_fd, VAULT_HEADER_FILE) < 0)
		ret = -errno;
	if (ret < 0) {
		unlinkat(dir_fd, HEADER_TEMP_FILE, 0);
		return ret;
	}
	return fsync(dir_fd) < 0 ? -errno : 0;
}

static int fsync_parent(const char *dir)
{
	char parent[4096];
	const char *slash;
	size_t len;
	int fd, ret = 0;

	/* Trailing slashes belong to dir itself. */
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	slash = memrchr(dir, '/', len);
	if (slash == NULL) {
		strcpy(parent, ".");
	} else {
		len = slash == dir ? 1 : (size_t)(slash - dir);
		if (len >= sizeof(parent))
			return -ENAMETOOLONG;
		memcpy(parent, dir, len);
		parent[len] = '\0';
	}
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* 0 when the directory has no entries besides . and .., -ENOTEMPTY otherwise. */
static int dir_check_empty(int dir_fd)
{
	struct dirent *entry;
	DIR *d;
	int fd, ret = 0;

	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		ret = -errno;
		close(fd);
		return ret;
	}
	errno = 0;
	while ((entry = readdir(d)) != NULL) {
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
			ret = -ENOTEMPTY;
			break;
		}
	}
	if (entry == NULL && errno != 0)
		ret = -errno;
	closedir(d);
	return ret;
}

/* Remove what a failed vault_create made inside dir_fd (best effort). */
static void create_undo(int dir_fd)
{
	int meta_fd = open_dir_at(dir_fd, VAULT_META_DIR);

	if (meta_fd >= 0) {
		unlinkat(meta_fd, "data.mdb", 0);
		unlinkat(meta_fd, "lock.mdb", 0);
		close(meta_fd);
	}
	unlinkat(dir_fd, VAULT_META_DIR, AT_REMOVEDIR);
	unlinkat(dir_fd, VAULT_OBJECTS_DIR, AT_REMOVEDIR);
	unlinkat(dir_fd, HEADER_TEMP_FILE, 0);
}

int vault_create(const char *dir, enum crypto_cipher cipher, uint32_t flags,
		 struct keysource *keys, uint32_t root_uid, uint32_t root_gid)
{
	struct vault_header header = { 0 };
	uint8_t bytes[VAULT_HEADER_LEN];
	struct store *store = NULL;
	uint8_t *dek;
	bool made_dir = false;
	int dir_fd, meta_fd, err;

	if (crypto_cipher_name(cipher) == NULL || (flags & ~(uint32_t)VAULT_FLAG_EPHEMERAL))
		return -EINVAL;
	if (!crypto_cipher_available(cipher))
		return -ENOTSUP;
	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (dek == NULL)
		return -ENOMEM;
	/* Fetch the key first: a source without version 1 must not leave a directory. */
	err = keysource_get(keys, 1, dek);
	if (err)
		goto out_free_dek;

	if (mkdir(dir, 0700) == 0)
		made_dir = true;
	else if (errno != EEXIST) {
		err = -errno;
		goto out_free_dek;
	}
	dir_fd = open_vault_dir(dir);
	if (dir_fd < 0) {
		err = dir_fd;
		goto out_rmdir;
	}
	if (!made_dir) {
		err = dir_check_empty(dir_fd);
		if (err)
			goto out_close_dir;
	}
	if (mkdirat(dir_fd, VAULT_OBJECTS_DIR, 0700) < 0 ||
	    mkdirat(dir_fd, VAULT_META_DIR, 0700) < 0) {
		err = -errno;
		goto out_undo;
	}

	header.format_version = VAULT_FORMAT_VERSION;
	header.cipher = (uint32_t)cipher;
	header.flags = flags;
	header.created = (uint64_t)time(NULL);
	crypto_random(header.vault_id, VAULT_ID_LEN);
	header.check_version = 1;
	err = header_check_values(&header, dek, header.key_check, header.mac);
	if (err)
		goto out_undo;

	meta_fd = open_dir_at(dir_fd, VAULT_META_DIR);
	if (meta_fd < 0) {
		err = meta_fd;
		goto out_undo;
	}
	err = store_open_dir(&store, meta_fd, STORE_CREATE);
	if (!err) {
		err = meta_format(store, cipher, header.vault_id, keys, root_uid, root_gid);
		if (!err)
			err = store_sync(store);
		store_close(store);
	}
	/* store_sync makes the data durable, not the names of LMDB's files. */
	if (!err && fsync(meta_fd) < 0)
		err = -errno;
	close(meta_fd);
	if (err)
		goto out_undo;

	/* The header goes last: until it exists this is not a vault. */
	vault_header_encode(bytes, &header);
	err = write_header_at(dir_fd, bytes);
	if (err)
		goto out_undo;
	if (made_dir)
		err = fsync_parent(dir);
	goto out_close_dir;

out_undo:
	create_undo(dir_fd);
out_close_dir:
	close(dir_fd);
out_rmdir:
	if (err && made_dir)
		rmdir(dir);
out_free_dek:
	secret_free(dek);
	return err;
}

int vault_open(struct vault **out, const char *dir, struct keysource *keys, unsigned flags)
{
	uint8_t key_check[VAULT_CHECK_LEN], mac[VAULT_CHECK_LEN];
	char link[PATH_MAX];
	struct vault *vault;
	uint8_t *dek;
	int meta_fd, err;

	*out = NULL;
	vault = calloc(1, sizeof(*vault));
	if (vault == NULL)
		return -ENOMEM;
	vault->dir_fd = -1;
	vault->objects_fd = -1;
	for (size_t i = 0; i < sizeof(vault->fanout_fd) / sizeof(vault->fanout_fd[0]); i++)
		vault->fanout_fd[i] = -1;
	vault->keys = keys;
	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (dek == NULL) {
		err = -ENOMEM;
		goto out_close;
	}

	vault->dir_fd = open_vault_dir(dir);
	if (vault->dir_fd < 0) {
		err = vault->dir_fd;
		goto out_close;
	}
	err = read_header_at(vault->dir_fd, &vault->header);
	if (err)
		goto out_close;
	/* Before any key is used on it. Every open below refuses a link too, if one
	 * appears after this look. */
	err = find_link_at(vault->dir_fd, link, sizeof(link));
	if (err)
		goto out_close;
	err = keysource_get(keys, vault->header.check_version, dek);
	if (err)
		goto out_close;
	err = header_check_values(&vault->header, dek, key_check, mac);
	if (err)
		goto out_close;
	if (secret_compare(key_check, vault->header.key_check, VAULT_CHECK_LEN) != 0) {
		err = -EKEYREJECTED;
		goto out_close;
	}
	if (secret_compare(mac, vault->header.mac, VAULT_CHECK_LEN) != 0) {
		err = -EBADMSG;
		goto out_close;
	}
	/* Authentic, but from a newer release. */
	if (crypto_cipher_name((enum crypto_cipher)vault->header.cipher) == NULL ||
	    (vault->header.flags & ~(uint32_t)VAULT_FLAG_EPHEMERAL)) {
		err = -EPROTONOSUPPORT;
		goto out_close;
	}
	if (!crypto_cipher_available((enum crypto_cipher)vault->header.cipher)) {
		err = -ENOTSUP;
		goto out_close;
	}

	vault->objects_fd = open_dir_at(vault->dir_fd, VAULT_OBJECTS_DIR);
	if (vault->objects_fd < 0) {
		err = vault->objects_fd == -ENOENT ? -EIO : vault->objects_fd;
		goto out_close;
	}
	if (!(flags & VAULT_OPEN_READ_ONLY)) {
		err = pool_open(&vault->pool, vault->objects_fd);
		if (err)
			goto out_close;
	}
	meta_fd = open_dir_at(vault->dir_fd, VAULT_META_DIR);
	if (meta_fd < 0) {
		/* A header without its store is a damaged vault, not a missing one. */
		err = meta_fd == -ENOENT ? -EIO : meta_fd;
		goto out_close;
	}
	err = store_open_dir(&vault->store, meta_fd,
			     (flags & VAULT_OPEN_READ_ONLY) ? STORE_READ_ONLY : 0);
	close(meta_fd);
	if (err == -ENOENT)
		err = -EIO;
	if (err)
		goto out_close;
	err = meta_open(&vault->meta, vault->store, (enum crypto_cipher)vault->header.cipher,
			vault->header.vault_id, keys);
	if (err)
		goto out_close;
	*out = vault;
	vault = NULL;
out_close:
	secret_wipe(key_check, sizeof(key_check));
	secret_wipe(mac, sizeof(mac));
	secret_free(dek);
	vault_close(vault);
	return err;
}

int vault_rebind(struct vault *vault, uint32_t version)
{
	struct vault_header header = vault->header;
	uint8_t bytes[VAULT_HEADER_LEN];
	uint8_t *dek;
	int ret;

	if (version == 0)
		return -EINVAL;
	if (version == header.check_version)
		return 0;
	dek = secret_alloc(CRYPTO_KEY_LEN);
	if (dek == NULL)
		return -ENOMEM;
	ret = keysource_get(vault->keys, version, dek);
	if (ret < 0)
		goto out_free;
	header.check_version = version;
	ret = header_check_values(&header, dek, header.key_check, header.mac);
	if (ret < 0)
		goto out_free;
	vault_header_encode(bytes, &header);
	/* Left by a rebind that was interrupted: the header itself was never touched. */
	(void)unlinkat(vault->dir_fd, HEADER_TEMP_FILE, 0);
	ret = write_header_at(vault->dir_fd, bytes);
	if (ret == 0)
		vault->header = header;
out_free:
	secret_free(dek);
	return ret;
}

void vault_close(struct vault *vault)
{
	if (vault == NULL)
		return;
	pool_free(vault->pool);
	meta_close(vault->meta);
	store_close(vault->store);
	for (size_t i = 0; i < sizeof(vault->fanout_fd) / sizeof(vault->fanout_fd[0]); i++) {
		if (vault->fanout_fd[i] >= 0)
			close(vault->fanout_fd[i]);
	}
	if (vault->objects_fd >= 0)
		close(vault->objects_fd);
	if (vault->dir_fd >= 0)
		close(vault->dir_fd);
	free(vault);
}

void vault_object_path(char buf[VAULT_OBJECT_PATH_LEN], const uint8_t object_id[OBJECT_ID_LEN])
{
	crypto_to_hex(buf, 3, object_id, 1);
	buf[2] = '/';
	crypto_to_hex(buf + 3, VAULT_OBJECT_PATH_LEN - 3, object_id, OBJECT_ID_LEN);
}

/*
 * The fan-out directory objects/xx of object_id (xx its first byte in hex), made first
 * when create and it is missing. Opened once per open vault and kept (at most 256 fds):
 * objects are then opened, created, renamed and removed relative to it, with no path
 * component left that a link could redirect, and at no extra system call. Returns an fd
 * the vault owns, -ENOENT (missing, create false), -ELOOP (a link), -errno.
 */
static int fanout_dir(struct vault *vault, const uint8_t object_id[OBJECT_ID_LEN], bool create)
{
	int *slot = &vault->fanout_fd[object_id[0]];
	int fd = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	int expected = -1;
	char name[3];

	if (fd >= 0)
		return fd;
	crypto_to_hex(name, sizeof(name), object_id, 1);
	if (create) {
		if (mkdirat(vault->objects_fd, name, 0700) == 0) {
			/* A new fan-out directory must survive power loss with its files. */
			if (fsync(vault->objects_fd) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
	}
	fd = open_dir_at(vault->objects_fd, name);
	if (fd < 0)
		return fd;
	/* Another thread may have opened it meanwhile: keep one. */
	if (!__atomic_compare_exchange_n(slot, &expected, fd, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		close(fd);
		fd = expected;
	}
	return fd;
}

/* The name of an object's file in its fan-out directory: its id in hex. */
static void object_name(char name[2 * OBJECT_ID_LEN + 1], const uint8_t object_id[OBJECT_ID_LEN])
{
	crypto_to_hex(name, 2 * OBJECT_ID_LEN + 1, object_id, OBJECT_ID_LEN);
}

int vault_object_open(struct vault *vault, const uint8_t object_id[OBJECT_ID_LEN], int flags)
{
	char name[2 * OBJECT_ID_LEN + 1];
	int dir_fd, fd;

	dir_fd = fanout_dir(vault, object_id, (flags & O_CREAT) != 0);
	if (dir_fd < 0)
		return dir_fd;
	object_name(name, object_id);
	fd = openat(dir_fd, name, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
	return fd < 0 ? -errno : fd;
}

int vault_object_unlink(struct vault *vault, const uint8_t object_id[OBJECT_ID_LEN])
{
	char name[2 * OBJECT_ID_LEN + 1];
	int dir_fd, err = -EROFS;

	dir_fd = fanout_dir(vault, object_id, false);
	if (dir_fd < 0)
		return dir_fd;
	object_name(name, object_id);
	if (vault->pool)
		err = pool_put(vault->pool, dir_fd, name, object_id);
	if (!err || err == -ENOENT)
		return err;
	return unlinkat(dir_fd, name, 0) < 0 ? -errno : 0;
}

void vault_object_start(struct vault *vault)
{
	if (vault->pool != NULL)
		pool_start(vault->pool);
}

void vault_object_settle(struct vault *vault)
{
	if (vault->pool != NULL)
		pool_settle(vault->pool);
}

/* The header of the object open on fd: 0, -EBADMSG (unreadable, short, malformed). */
static int object_header_at(int fd, struct object_header *header)
{
	uint8_t bytes[OBJECT_HEADER_LEN];
	ssize_t n;

	do {
		n = pread(fd, bytes, sizeof(bytes), 0);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(bytes) || object_header_decode(header, bytes) != 0)
		return -EBADMSG;
	return 0;
}

/* Last block index that holds data, +1; 0 when the file has no data blocks. */
static uint64_t data_end_block(const struct meta_inode *rec)
{
	uint64_t count = object_block_count(rec->size);

	while (count > 0) {
		uint64_t last = count - 1;
		if (!extent_is_hole(rec, last))
			return count;
		/* Skip a trailing hole in one step. */
		uint32_t i = 0;
		while (i < rec->hole_count && rec->holes[i].end < count)
			i++;
		count = rec->holes[i].start;
	}
	return 0;
}

void vault_object_header(const struct vault *vault, const struct meta_inode *rec,
			 struct object_header *header)
{
	memset(header, 0, sizeof(*header));
	header->format_version = OBJECT_FORMAT_VERSION;
	header->cipher = vault->header.cipher;
	header->key_version = rec->key_version;
	header->block_size = OBJECT_BLOCK_SIZE;
	memcpy(header->object_id, rec->object_id, OBJECT_ID_LEN);
	memcpy(header->vault_id, vault->header.vault_id, VAULT_ID_LEN);
}

int vault_object_create(struct vault *vault, struct meta_inode *rec)
{
	char name[2 * OBJECT_ID_LEN + 1];
	uint8_t encoded[OBJECT_HEADER_LEN];
	struct object_header header;
	int dir_fd, fd, err;

	crypto_random(rec->object_id, OBJECT_ID_LEN);
	rec->key_version = meta_key_version(vault->meta);
	vault_object_header(vault, rec, &header);
	object_header_encode(encoded, &header);
	dir_fd = fanout_dir(vault, rec->object_id, true);
	if (dir_fd < 0)
		return dir_fd;
	object_name(name, rec->object_id);
	if (vault->pool && pool_take(vault->pool, dir_fd, name) == 0) {
		/* Emptied by the pool. Not opened with O_TRUNC: ext4 flushes a file truncated
		 * to zero at its close, which would cost every small file a write-out. */
		struct stat st;
		fd = vault_object_open(vault, rec->object_id, O_RDWR);
		if (fd >= 0 && (fstat(fd, &st) != 0 || (st.st_size != 0 && ftruncate(fd, 0) != 0))) {
			close(fd);
			fd = -EIO;
		}
	} else {
		fd = vault_object_open(vault, rec->object_id, O_RDWR | O_CREAT | O_EXCL);
	}
	if (fd < 0)
		return fd;
	err = write_all_at(fd, encoded, sizeof(encoded), 0);
	if (err) {
		close(fd);
		(void)vault_object_unlink(vault, rec->object_id);
		return err;
	}
	return fd;
}

int vault_object_attach(struct vault *vault, const struct meta_inode *rec, int flags,
			const char **why)
{
	struct object_header found, expected;
	struct stat st;
	int fd;

	vault_object_header(vault, rec, &expected);
	fd = vault_object_open(vault, rec->object_id, flags);
	if (fd == -ENOENT) {
		*why = "object file is missing";
		return -EIO;
	}
	if (fd == -ELOOP) {
		*why = "object file or its directory is a symbolic link (backing store altered)";
		return -EIO;
	}
	if (fd < 0)
		return fd;
	if (object_header_at(fd, &found) != 0 || memcmp(&found, &expected, sizeof(found)) != 0) {
		*why = "header does not match the metadata (swapped or damaged object)";
		goto out_fault;
	}
	if (fstat(fd, &st) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if ((uint64_t)st.st_size > rec->object_max_len) {
		*why = "longer than the metadata allows (extended object)";
		goto out_fault;
	}
	uint64_t data_end = data_end_block(rec);
	enum crypto_cipher cipher = (enum crypto_cipher)vault->header.cipher;
	if (data_end && (uint64_t)st.st_size < (uint64_t)object_block_offset(cipher, data_end)) {
		*why = "shorter than the metadata says (truncated object)";
		goto out_fault;
	}
	return fd;

out_fault:
	close(fd);
	return -EIO;
}

static bool is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[len] == '\0';
}

/*
 * Call visit for every object name under dir/objects: fan-out directories of two hex
 * digits, names of 32 hex digits that start with their directory's two. Stops at the
 * first non-zero return of visit and returns it; 0 or -errno otherwise.
 */
typedef int (*object_visit)(void *arg, int fanout_fd, const struct dirent *entry);

static int walk_fanout(int objects_fd, const char *fanout, object_visit visit, void *arg)
{
	struct dirent *entry;
	DIR *d;
	int fd, ret = 0;

	fd = open_dir_at(objects_fd, fanout);
	/* Not a directory: nothing vaultfs made. A link is never followed, nor skipped as
	 * if the objects behind it did not exist. */
	if (fd < 0)
		return fd == -ENOTDIR ? 0 : fd;
	d = fdopendir(fd);
	if (d == NULL) {
		ret = -errno;
		close(fd);
		return ret;
	}
	errno = 0;
	while ((entry = readdir(d)) != NULL) {
		if (is_lower_hex(entry->d_name, 2 * OBJECT_ID_LEN) &&
		    memcmp(entry->d_name, fanout, 2) == 0) {
			ret = visit(arg, dirfd(d), entry);
			if (ret != 0)
				break;
		}
		errno = 0;
	}
	if (ret == 0 && errno != 0)
		ret = -errno;
	closedir(d);
	return ret;
}

static int walk_objects(int objects_fd, object_visit visit, void *arg)
{
	struct dirent *entry;
	DIR *d;
	int fd, ret = 0;

	fd = dup(objects_fd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		ret = -errno;
		close(fd);
		return ret;
	}
	rewinddir(d);
	errno = 0;
	while ((entry = readdir(d)) != NULL) {
		if (is_lower_hex(entry->d_name, 2)) {
			ret = walk_fanout(dirfd(d), entry->d_name, visit, arg);
			if (ret != 0)
				break;
		}
		errno = 0;
	}
	if (ret == 0 && errno != 0)
		ret = -errno;
	closedir(d);
	return ret;
}

/* walk_objects over objects/ of the vault open on dir_fd, for the counts that need no
 * key. */
static int walk_objects_at(int dir_fd, object_visit visit, void *arg)
{
	int fd, err;

	fd = open_dir_at(dir_fd, VAULT_OBJECTS_DIR);
	if (fd < 0)
		return fd;
	err = walk_objects(fd, visit, arg);
	close(fd);
	return err;
}

static int count_object(void *arg, int fanout_fd, const struct dirent *entry)
{
	(void)fanout_fd;
	if (entry->d_type == DT_REG || entry->d_type == DT_UNKNOWN)
		(*(uint64_t *)arg)++;
	return 0;
}

int vault_object_count(const char *dir, uint64_t *count)
{
	int dir_fd, err;

	*count = 0;
	dir_fd = open_vault_dir(dir);
	if (dir_fd < 0)
		return dir_fd;
	err = walk_objects_at(dir_fd, count_object, count);
	close(dir_fd);
	return err;
}

/* Key version uses (for retiring a version), counted without a key. */

struct use_count {
	struct vault_key_use *uses;
	size_t count;
	size_t capacity;
};

static struct vault_key_use *use_of(struct use_count *c, uint32_t version)
{
	size_t i;

	for (i = 0; i < c->count && c->uses[i].version < version; i++)
		;
	if (i < c->count && c->uses[i].version == version)
		return &c->uses[i];
	if (c->count == c->capacity) {
		size_t capacity = c->capacity ? 2 * c->capacity : 8;
		struct vault_key_use *grown = realloc(c->uses, capacity * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		c->uses = grown;
		c->capacity = capacity;
	}
	memmove(&c->uses[i + 1], &c->uses[i], (c->count - i) * sizeof(*c->uses));
	c->count++;
	c->uses[i] = (struct vault_key_use){ .version = version };
	return &c->uses[i];
}

/* The version named by one object's header, 0 when the header cannot be read; *mtime
 * its mtime (0 when unknown). */
static uint32_t object_key_version_at(int fanout_fd, const char *name, time_t *mtime)
{
	struct object_header header;
	struct stat st;
	int fd, ret;

	*mtime = 0;
	fd = openat(fanout_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0)
		*mtime = st.st_mtime;
	ret = object_header_at(fd, &header);
	close(fd);
	return ret == 0 ? header.key_version : 0;
}

struct each_object {
	vault_object_visit *visit;
	void *arg;
};

static int visit_object(void *arg, int fanout_fd, const struct dirent *entry)
{
	struct each_object *each = arg;
	uint8_t id[OBJECT_ID_LEN];
	time_t mtime;
	uint32_t version = object_key_version_at(fanout_fd, entry->d_name, &mtime);

	if (crypto_from_hex(id, sizeof(id), entry->d_name, 2 * OBJECT_ID_LEN) != 0)
		return 0;
	return each->visit(each->arg, id, version, mtime);
}

int vault_objects_each(struct vault *vault, vault_object_visit *visit, void *arg)
{
	struct each_object each = { visit, arg };

	return walk_objects(vault->objects_fd, visit_object, &each);
}

static int count_object_version(void *arg, int fanout_fd, const struct dirent *entry)
{
	time_t mtime;
	struct vault_key_use *use =
		use_of(arg, object_key_version_at(fanout_fd, entry->d_name, &mtime));

	if (use == NULL)
		return -ENOMEM;
	use->objects++;
	return 0;
}

/* Every value of the vault's tables that holds sealed values. */
static int count_record_versions(struct store *store, struct use_count *c)
{
	static const enum store_table tables[] = {
		STORE_META, STORE_INODES, STORE_DIRENTS, STORE_XATTRS,
	};
	struct store_txn *txn;
	int ret;

	ret = store_txn_begin(store, false, &txn);
	if (ret < 0)
		return ret;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]) && ret == 0; t++) {
		struct store_slice key, value;
		struct store_cursor *cursor;

		ret = store_cursor_open(txn, tables[t], &cursor);
		if (ret < 0)
			break;
		ret = store_cursor_seek(cursor, (struct store_slice){ NULL, 0 }, &key, &value);
		while (ret == 0) {
			struct vault_key_use *use =
				use_of(c, value.len >= 4 ? get_le32(value.data) : 0);
			if (use == NULL) {
				ret = -ENOMEM;
				break;
			}
			use->records++;
			ret = store_cursor_next(cursor, &key, &value);
		}
		if (ret == -ENOENT)
			ret = 0;
		store_cursor_close(cursor);
	}
	store_txn_abort(txn);
	return ret;
}

int vault_key_versions_in_use(const char *dir, struct vault_key_use **uses, size_t *count)
{
	struct use_count c = { 0 };
	struct vault_header header;
	struct store *store = NULL;
	char link[PATH_MAX];
	int dir_fd, meta_fd, err;

	*uses = NULL;
	*count = 0;
	dir_fd = open_vault_dir(dir);
	if (dir_fd < 0)
		return dir_fd;
	err = read_header_at(dir_fd, &header);
	if (!err)
		err = find_link_at(dir_fd, link, sizeof(link));
	if (err)
		goto out_close;
	struct vault_key_use *header_use = use_of(&c, header.check_version);
	if (!header_use) {
		err = -ENOMEM;
		goto out_close;
	}
	header_use->header = true;
	err = walk_objects_at(dir_fd, count_object_version, &c);
	if (err)
		goto out_free;

	meta_fd = open_dir_at(dir_fd, VAULT_META_DIR);
	if (meta_fd < 0) {
		err = meta_fd;
	} else {
		err = store_open_dir(&store, meta_fd, STORE_READ_ONLY);
		close(meta_fd);
	}
	/* A header without its store is a damaged vault, not a missing one. */
	if (err == -ENOENT)
		err = -EIO;
	if (err)
		goto out_free;
	err = count_record_versions(store, &c);
	store_close(store);
	if (err)
		goto out_free;
	*uses = c.uses;
	*count = c.count;
	close(dir_fd);
	return 0;

out_free:
	free(c.uses);
out_close:
	close(dir_fd);
	return err;
}
