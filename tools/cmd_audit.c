/*
 * vaultctl audit: work with audit trails (vaultfs-audit(5)). 'audit verify DIR' checks
 * every record of the trail in DIR - canonical form, sequence, hash chain across
 * segments - and names the first record that was edited, inserted, deleted or
 * reordered, and its segment.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/audit.h"
#include "tools/vaultctl.h"

static const char synopsis[] = "audit verify DIR";

static const char help[] =
	"Verify the audit trail in DIR (a mount's -o audit=DIR, or the key agent's\n"
	"audit_root/DATASET): every record must be canonical JSON, numbered one after the\n"
	"other across segments, and chained to the one before by its SHA-256. Prints the\n"
	"number of records, or the first bad record and its segment, and exits 1.\n\n"
	"  -h, --help   show this text\n";

static int audit_verify_cmd(int argc, char *argv[])
{
	struct audit_verdict verdict;
	int err;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return vaultctl_usage(synopsis, help);
	if (argc != 2)
		return vaultctl_usage_error(synopsis, argc < 2 ? "give the trail's DIR"
							       : "too many arguments");
	err = audit_verify(argv[1], &verdict);
	if (err == -EBADMSG) {
		if (verdict.bad_seq)
			return vaultctl_error("trail '%s' is not intact at record %llu in '%s': %s",
					      argv[1], (unsigned long long)verdict.bad_seq,
					      verdict.bad_segment, verdict.why);
		return vaultctl_error("trail '%s' is not intact in '%s': %s", argv[1],
				      verdict.bad_segment, verdict.why);
	}
	if (err)
		return vaultctl_error("cannot read the trail in '%s': %s", argv[1], strerror(-err));
	printf("%s: %llu records, chain intact\n", argv[1], (unsigned long long)verdict.records);
	return VAULTCTL_EXIT_OK;
}

static const struct vaultctl_action actions[] = {
	{ "verify", audit_verify_cmd },
};

int cmd_audit(int argc, char *argv[])
{
	return vaultctl_run_action("audit", actions, sizeof(actions) / sizeof(actions[0]), argc,
				   argv, synopsis, help);
}
