/*
 * vaultctl init: create a vault in an empty or new directory, keyed by a fresh random
 * development key written to a new key file. The key file is removed again if the vault
 * cannot be created, so a failed init leaves no key behind for a vault that does not exist.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/keysource.h"
#include "lib/secret.h"
#include "lib/vault.h"
#include "tools/vaultctl.h"

static const char synopsis[] =
	"init [--cipher aes-256-gcm|xchacha20-poly1305] --key-file FILE DIR";

static const char help[] =
	"Create a vault in DIR, which must be empty or not exist yet, with a fresh random\n"
	"key written to the new file FILE (mode 0600; an existing file is never overwritten).\n"
	"Key files are for development and tests only.\n\n"
	"  --cipher NAME     aes-256-gcm (default where the CPU supports it) or\n"
	"                    xchacha20-poly1305\n"
	"  --key-file FILE   where to write the new key (required)\n"
	"  -h, --help        show this text\n";

/* 0 when dir is missing or an empty directory, else an exit status after a message. */
static int check_target_dir(const char *dir)
{
	struct dirent *entry;
	struct stat st;
	DIR *handle;
	bool empty = true;

	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return vaultctl_error("cannot use '%s': %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return vaultctl_error("'%s' is not a directory: give a new or empty directory", dir);
	handle = opendir(dir);
	if (handle == NULL)
		return vaultctl_error("cannot read directory '%s': %s", dir, strerror(errno));
	while ((entry = readdir(handle)) != NULL) {
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
			empty = false;
			break;
		}
	}
	closedir(handle);
	if (!empty)
		return vaultctl_error("directory '%s' is not empty: give a new or empty directory",
				      dir);
	return 0;
}

/* Whether key_path would be created directly inside dir (which must be empty). */
static bool key_inside_dir(const char *key_path, const char *dir)
{
	struct stat key_parent, vault_dir;
	char *copy = strdup(key_path);
	bool inside = false;

	if (copy == NULL)
		return false;
	if (stat(dirname(copy), &key_parent) == 0 && stat(dir, &vault_dir) == 0)
		inside = key_parent.st_dev == vault_dir.st_dev &&
			 key_parent.st_ino == vault_dir.st_ino;
	free(copy);
	return inside;
}

/* Pick the cipher: the one named on the command line, or the default for this CPU. */
static int choose_cipher(enum crypto_cipher *out, const char *name)
{
	if (name == NULL) {
		*out = crypto_cipher_default();
		if (*out != CRYPTO_AES256GCM)
			fprintf(stderr, "vaultctl: aes-256-gcm is not available on this cpu "
					"(no AES-NI/PCLMUL): using xchacha20-poly1305\n");
		return 0;
	}
	if (crypto_cipher_from_name(out, name) < 0)
		return vaultctl_usage_error(synopsis, "unknown cipher '%s': use aes-256-gcm or "
					    "xchacha20-poly1305", name);
	if (!crypto_cipher_available(*out))
		return vaultctl_error("cipher '%s' is not available on this cpu (it needs "
				      "AES-NI and PCLMUL): use --cipher xchacha20-poly1305", name);
	return 0;
}

static int report_create_error(int err, const char *dir)
{
	switch (err) {
	case -ENOTEMPTY:
	case -EEXIST:
		return vaultctl_error("directory '%s' is not empty: give a new or empty "
				      "directory", dir);
	case -ENOTDIR:
		return vaultctl_error("'%s' is not a directory: give a new or empty directory",
				      dir);
	case -ELOOP:
		return vaultctl_error("'%s' is a symbolic link: a vault holds none and is never "
				      "reached through one: give the directory it points to", dir);
	case -ENOENT:
		return vaultctl_error("cannot create vault '%s': its parent directory does not "
				      "exist: create it first", dir);
	case -EACCES:
	case -EPERM:
		return vaultctl_error("cannot create vault '%s': permission denied: check the "
				      "permissions of the directory", dir);
	case -ENOSPC:
		return vaultctl_error("cannot create vault '%s': no space left on device", dir);
	default:
		return vaultctl_error("cannot create vault '%s': %s", dir, strerror(-err));
	}
}

static int report_keyfile_error(int err, const char *path)
{
	switch (err) {
	case -EEXIST:
		return vaultctl_error("key file '%s' exists: refusing to overwrite it", path);
	case -ENOENT:
		return vaultctl_error("cannot create key file '%s': its directory does not "
				      "exist: create it first", path);
	case -EACCES:
	case -EPERM:
		return vaultctl_error("cannot create key file '%s': permission denied: choose a "
				      "directory you can write", path);
	default:
		return vaultctl_error("cannot create key file '%s': %s", path, strerror(-err));
	}
}

static void print_created(const char *dir, enum crypto_cipher cipher)
{
	struct vault_header header;
	char id_hex[2 * VAULT_ID_LEN + 1];

	if (vault_header_read(dir, &header) < 0) {
		printf("created vault '%s' (cipher %s)\n", dir, crypto_cipher_name(cipher));
		return;
	}
	crypto_to_hex(id_hex, sizeof(id_hex), header.vault_id, sizeof(header.vault_id));
	printf("created vault '%s' (cipher %s, id %s)\n", dir, crypto_cipher_name(cipher),
	       id_hex);
}

int cmd_init(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "cipher", required_argument, NULL, 'c' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct keysource *keys = NULL;
	const char *cipher_name = NULL;
	const char *key_path = NULL;
	const char *dir;
	enum crypto_cipher cipher;
	int status;
	int opt;
	int err;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cipher_name = optarg;
			break;
		case 'k':
			key_path = optarg;
			break;
		case 'h':
			return vaultctl_usage(synopsis, help);
		case ':':
			return vaultctl_usage_error(synopsis, "option '%s' needs an argument",
						    argv[optind - 1]);
		default:
			return vaultctl_usage_error(synopsis, "unknown option '%s'",
						    argv[optind - 1]);
		}
	}
	if (key_path == NULL)
		return vaultctl_usage_error(synopsis, "missing --key-file: init writes the new "
					    "vault's key there");
	if (optind == argc)
		return vaultctl_usage_error(synopsis, "missing DIR: the directory of the new "
					    "vault");
	if (argc - optind > 1)
		return vaultctl_usage_error(synopsis, "too many arguments: one DIR only");
	dir = argv[optind];
	if (key_path[0] == '\0' || dir[0] == '\0')
		return vaultctl_usage_error(synopsis, "empty path: give a file and a directory");

	err = secret_init();
	if (err < 0)
		return vaultctl_error("cannot initialise the crypto library: %s", strerror(-err));
	err = secret_harden_process();
	if (err < 0)
		return vaultctl_error("cannot protect the key in memory: %s", strerror(-err));

	status = choose_cipher(&cipher, cipher_name);
	if (status != 0)
		return status;
	/* Refuse an unusable DIR before a key file appears; vault_create checks again. */
	status = check_target_dir(dir);
	if (status != 0)
		return status;
	if (key_inside_dir(key_path, dir))
		return vaultctl_error("key file '%s' would be inside the vault '%s': keep the key "
				      "elsewhere", key_path, dir);

	err = keysource_keyfile_create(&keys, key_path);
	if (err < 0)
		return report_keyfile_error(err, key_path);

	err = vault_create(dir, cipher, 0, keys, (uint32_t)getuid(), (uint32_t)getgid());
	if (err < 0) {
		status = report_create_error(err, dir);
		/* We made this key file just now: a key for no vault must not linger. */
		if (unlink(key_path) < 0)
			vaultctl_error("cannot remove key file '%s': %s: remove it by hand",
				       key_path, strerror(errno));
		goto out_free;
	}

	print_created(dir, cipher);
	fprintf(stderr, "vaultctl: warning: key file '%s' is for development and tests only: "
			"keep it off shared storage and never next to the vault\n", key_path);
	status = VAULTCTL_EXIT_OK;
out_free:
	keysource_free(keys);
	return status;
}
