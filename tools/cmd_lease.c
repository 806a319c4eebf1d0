/*
 * vaultctl lease: list and revoke key leases. 'lease list [NAME]' shows the leases the
 * caller may see (each a mount: its id, dataset, holder, daemon, expiry, mountpoint);
 * 'lease revoke NAME' revokes every lease on a dataset, 'lease revoke --id ID' one
 * lease. A mount whose lease is revoked wipes its keys and refuses every access within
 * seconds, while staying mounted.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/protocol.h"
#include "tools/vaultctl.h"

static const char synopsis[] = "lease list [NAME]\n       vaultctl lease revoke NAME\n"
			       "       vaultctl lease revoke --id ID";

static const char help[] =
	"List the key leases of mounts (root sees all; an admin with 'revoke' those of the\n"
	"dataset; anyone the mounts made for them), or of dataset NAME only: each lease's\n"
	"ID, dataset, holder uid, daemon pid, seconds until it expires unless renewed, and\n"
	"mountpoint; 'agent' marks a mount the key agent started for a user, 'revoked' one\n"
	"whose next renewal is refused.\n\n"
	"Revoke the key leases of mounts: every lease on dataset NAME, or the one lease ID\n"
	"(decimal, or hexadecimal after 0x). The mounts concerned wipe their keys and refuse\n"
	"every access, open files included, within 5 seconds; they stay mounted until\n"
	"unmounted. A revoked mount gets no keys again: mount it anew. Needs the 'revoke'\n"
	"privilege on the dataset.\n\n"
	"  --id ID      revoke one lease instead of all leases of a dataset\n"
	"  -h, --help   show this text\n";

/* A lease id: nonzero, decimal or 0x-hexadecimal. Returns 0 or -EINVAL. */
static int parse_lease_id(const char *text, uint64_t *id)
{
	unsigned long long value;
	int base = 10;
	char *end;

	if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
		base = 16;
		text += 2;
	}
	/* Digits only: strtoull alone would take blanks and signs. */
	if (text[0] == '\0' ||
	    strspn(text, base == 16 ? "0123456789abcdefABCDEF" : "0123456789") != strlen(text))
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, base);
	if (errno != 0 || *end != '\0' || value == 0)
		return -EINVAL;
	*id = (uint64_t)value;
	return 0;
}

static int lease_revoke(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct protocol_message request = { .type = PROTOCOL_REVOKE };
	struct protocol_message reply;
	const char *id_text = NULL;
	const char *name = NULL;
	int status;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'i':
			id_text = optarg;
			break;
		case 'h':
			return vaultctl_usage(synopsis, help);
		case ':':
			return vaultctl_usage_error(synopsis, "'%s' needs a value", argv[optind - 1]);
		default:
			return vaultctl_usage_error(synopsis, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind > 1 || (id_text != NULL && argc - optind == 1))
		return vaultctl_usage_error(synopsis, "give either one dataset NAME or --id ID");
	if (id_text == NULL && argc - optind == 0)
		return vaultctl_usage_error(synopsis, "give the dataset NAME whose leases to revoke, "
					    "or --id ID");
	if (id_text != NULL) {
		if (parse_lease_id(id_text, &request.lease_id) < 0)
			return vaultctl_usage_error(synopsis, "'%s' is not a lease id: give a "
						    "nonzero number", id_text);
	} else {
		name = argv[optind];
		status = vaultctl_check_dataset_name(synopsis, name);
		if (status != 0)
			return status;
		snprintf(request.name, sizeof(request.name), "%s", name);
	}
	status = vaultctl_agent_request(&request, &reply, "lease revoke", name, NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	if (reply.text[0] != '\0')
		printf("%s\n", reply.text);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

static int lease_list(int argc, char *argv[])
{
	struct protocol_message request = { .type = PROTOCOL_LEASE_LIST };
	struct protocol_message reply;
	const char *name = NULL;
	int status;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return vaultctl_usage(synopsis, help);
	if (argc > 2)
		return vaultctl_usage_error(synopsis, "too many arguments: at most one NAME");
	if (argc == 2) {
		name = argv[1];
		status = vaultctl_check_dataset_name(synopsis, name);
		if (status != 0)
			return status;
		snprintf(request.name, sizeof(request.name), "%s", name);
	}
	status = vaultctl_agent_request(&request, &reply, "lease list", name, NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	printf("%-18s  %-16s  %6s  %7s  %7s  %-12s  %s\n", "ID", "DATASET", "UID", "PID",
	       "EXPIRES", "STATE", "MOUNTPOINT");
	for (size_t i = 0; i < reply.lease_count; i++) {
		const struct protocol_lease *lease = &reply.leases[i];
		const char *state = lease->flags & PROTOCOL_LEASE_REVOKED ? "revoked"
				    : lease->flags & PROTOCOL_LEASE_STARTED ? "agent" : "root";

		printf("0x%016" PRIx64 "  %-16s  %6" PRIu32 "  %7" PRIu32 "  %6" PRIu32 "s  %-12s"
		       "  %s\n", lease->id, lease->dataset, lease->uid, lease->pid,
		       lease->seconds_left, state, lease->mountpoint[0] ? lease->mountpoint : "-");
	}
	if (reply.text[0] != '\0')
		fprintf(stderr, "vaultctl: %s\n", reply.text);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

static const struct vaultctl_action actions[] = {
	{ "list", lease_list },
	{ "revoke", lease_revoke },
};

int cmd_lease(int argc, char *argv[])
{
	return vaultctl_run_action("lease", actions, sizeof(actions) / sizeof(actions[0]), argc,
				   argv, synopsis, help);
}
