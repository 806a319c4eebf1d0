/*
 * vaultctl policy: work with the key agent's policy. 'policy check FILE' reads a
 * keyagent.conf exactly as the agent would and either explains the first line that
 * breaks it or prints a short summary (roles, datasets). 'policy reload' has the running
 * agent read its file again: a bad file is refused, with the agent's FILE:LINE
 * explanation, and the old policy stays in force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/policy.h"
#include "lib/protocol.h"
#include "tools/vaultctl.h"

static const char synopsis[] = "policy check FILE\n       vaultctl policy reload";

static const char help[] =
	"Check a key agent configuration (keyagent.conf, see vaultfs-policy(5)) the way the\n"
	"agent reads it at start and on reload: syntax, settings, users and groups, time\n"
	"zones, path rules and separation of duties. On success print the roles and the\n"
	"datasets it names; otherwise print the file, line and problem, and exit 1.\n\n"
	"'policy reload' has the running key agent read its configuration again (as SIGHUP\n"
	"does) and put the new policy in force at once. A file with any error is refused\n"
	"with its file, line and problem, and the old policy stays in force. Needs the\n"
	"'reload' privilege (admin = * reload).\n\n"
	"  -h, --help   show this text\n";

/* "name, name, ..." of names on one line after label. */
static void print_names(const char *label, const char **names, size_t count)
{
	size_t i;

	printf("%s: %zu", label, count);
	for (i = 0; i < count; i++)
		printf("%s%s", i == 0 ? " (" : ", ", names[i]);
	printf("%s\n", count > 0 ? ")" : "");
}

static int policy_check(int argc, char *argv[])
{
	struct config config;
	struct config_error err;
	const char **roles = NULL;
	const char **datasets = NULL;
	size_t role_count = 0;
	size_t dataset_count = 0;
	int status;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return vaultctl_usage(synopsis, help);
	if (argc != 2)
		return vaultctl_usage_error(synopsis, argc < 2 ? "give the configuration file" :
					    "too many arguments");
	status = config_read(&config, argv[1], &err);
	if (status < 0)
		return vaultctl_error("%s", err.message);
	if (policy_roles(config.policy, &roles, &role_count) < 0 ||
	    policy_datasets(config.policy, &datasets, &dataset_count) < 0) {
		status = vaultctl_error("out of memory");
		goto out_release;
	}
	printf("%s: ok\n", argv[1]);
	print_names("roles", roles, role_count);
	print_names("datasets", datasets, dataset_count);
	status = VAULTCTL_EXIT_OK;
out_release:
	free(datasets);
	free(roles);
	config_release(&config);
	return status;
}

static int policy_reload(int argc, char *argv[])
{
	struct protocol_message request = { .type = PROTOCOL_POLICY_RELOAD };
	struct protocol_message reply;
	int status;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return vaultctl_usage(synopsis, help);
	if (argc != 1)
		return vaultctl_usage_error("policy reload", "unexpected argument '%s': the agent "
					    "reads the file it was started with", argv[1]);
	status = vaultctl_agent_request(&request, &reply, "policy reload", "*",
					"policy reload refused, the old policy stays in force");
	if (status != VAULTCTL_EXIT_OK)
		return status;
	protocol_message_release(&reply);
	printf("policy reloaded\n");
	return VAULTCTL_EXIT_OK;
}

static const struct vaultctl_action actions[] = {
	{ "check", policy_check },
	{ "reload", policy_reload },
};

int cmd_policy(int argc, char *argv[])
{
	return vaultctl_run_action("policy", actions, sizeof(actions) / sizeof(actions[0]), argc,
				   argv, synopsis, help);
}
