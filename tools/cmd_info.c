/*
 * vaultctl info: what a vault's header and backing store say without a key: format
 * version, cipher, vault id, creation time, flags and the number of objects, one
 * "key: value" line each, so scripts can read it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/secret.h"
#include "lib/vault.h"
#include "tools/vaultctl.h"

static const char synopsis[] = "info DIR";

static const char help[] =
	"Show the format version, cipher, id, creation time, flags and object count of the\n"
	"vault in DIR. No key is needed.\n\n"
	"  -h, --help   show this text\n";

static int report_header_error(int err, const char *dir)
{
	struct stat st;

	switch (err) {
	case -ENOENT:
		if (stat(dir, &st) < 0)
			return vaultctl_error("'%s' does not exist: give the directory of a vault",
					      dir);
		if (!S_ISDIR(st.st_mode))
			return vaultctl_error("'%s' is not a directory: give the directory of a "
					      "vault", dir);
		return vaultctl_error("'%s' is not a vault: no " VAULT_HEADER_FILE " found", dir);
	case -ENOTDIR:
		return vaultctl_error("'%s' is not a directory: give the directory of a vault",
				      dir);
	case -EBADMSG:
		return vaultctl_error("'%s' is not a vault: " VAULT_HEADER_FILE " is damaged or "
				      "not a vaultfs header", dir);
	case -EPROTONOSUPPORT:
		return vaultctl_error("'%s' has an unsupported format version: this vaultctl "
				      "reads format %d only: use a newer vaultctl", dir,
				      VAULT_FORMAT_VERSION);
	case -EACCES:
	case -EPERM:
		return vaultctl_error("cannot read '%s/" VAULT_HEADER_FILE "': permission denied: "
				      "run as the vault's owner", dir);
	default:
		return vaultctl_error("cannot read the header of '%s': %s", dir, strerror(-err));
	}
}

/* The vault in dir holds a symbolic link: name it (vault_find_link) and refuse. */
static int report_link(const char *dir)
{
	char where[PATH_MAX];
	int err = vault_find_link(dir, where, sizeof(where));

	if (err == -ELOOP && !where[0])
		return vaultctl_error("vault '%s' is a symbolic link: refusing to read it: give "
				      "the directory it points to", dir);
	if (err == -ELOOP)
		return vaultctl_error("vault '%s' contains a symbolic link at '%s': refusing to "
				      "read it: a vault never holds links; restore it from a "
				      "backup", dir, where);
	return vaultctl_error("vault '%s' contains a symbolic link: refusing to read it: a "
			      "vault never holds links; restore it from a backup", dir);
}

/* "none", or the names of the known flags and the hex value of any others. */
static void format_flags(char *buf, size_t len, uint32_t flags)
{
	uint32_t unknown = flags & ~(uint32_t)VAULT_FLAG_EPHEMERAL;

	if (flags == 0) {
		snprintf(buf, len, "none");
		return;
	}
	snprintf(buf, len, "%s%s", (flags & VAULT_FLAG_EPHEMERAL) ? "ephemeral" : "",
		 (flags & VAULT_FLAG_EPHEMERAL) && unknown ? " " : "");
	if (unknown != 0)
		snprintf(buf + strlen(buf), len - strlen(buf), "0x%" PRIx32, unknown);
}

/* ISO 8601 in UTC, e.g. 2026-03-01T12:00:00Z. */
static void format_time(char *buf, size_t len, uint64_t seconds)
{
	struct tm tm;
	time_t t = (time_t)seconds;

	if ((uint64_t)t != seconds || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "@%" PRIu64, seconds);
}

int cmd_info(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vault_header header;
	char id_hex[2 * VAULT_ID_LEN + 1];
	char created[64];
	char flags[64];
	const char *cipher;
	const char *dir;
	uint64_t objects;
	int opt;
	int err;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return vaultctl_usage(synopsis, help);
		default:
			return vaultctl_usage_error(synopsis, "unknown option '%s'",
						    argv[optind - 1]);
		}
	}
	if (optind == argc)
		return vaultctl_usage_error(synopsis, "missing DIR: the directory of a vault");
	if (argc - optind > 1)
		return vaultctl_usage_error(synopsis, "too many arguments: one DIR only");
	dir = argv[optind];

	err = secret_init();
	if (err < 0)
		return vaultctl_error("cannot initialise the crypto library: %s", strerror(-err));

	err = vault_header_read(dir, &header);
	if (err == -ELOOP)
		return report_link(dir);
	if (err < 0)
		return report_header_error(err, dir);
	/* Nothing is followed anyway; a link is named, as vaultfs names it at a mount. */
	err = vault_find_link(dir, NULL, 0);
	if (err == 0)
		err = vault_object_count(dir, &objects);
	if (err == -ELOOP)
		return report_link(dir);
	if (err < 0)
		return vaultctl_error("cannot count the objects of '%s': %s: check '%s/"
				      VAULT_OBJECTS_DIR "'", dir, strerror(-err), dir);

	crypto_to_hex(id_hex, sizeof(id_hex), header.vault_id, sizeof(header.vault_id));
	format_time(created, sizeof(created), header.created);
	format_flags(flags, sizeof(flags), header.flags);
	cipher = crypto_cipher_name((enum crypto_cipher)header.cipher);

	printf("format: %" PRIu32 "\n", header.format_version);
	if (cipher != NULL)
		printf("cipher: %s\n", cipher);
	else
		printf("cipher: unknown (%" PRIu32 ")\n", header.cipher);
	printf("id: %s\n", id_hex);
	printf("created: %s\n", created);
	printf("flags: %s\n", flags);
	printf("objects: %" PRIu64 "\n", objects);
	return VAULTCTL_EXIT_OK;
}
