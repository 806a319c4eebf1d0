/*
 * vaultctl: the command-line tool for vault owners and admins. A table of subcommands
 * {name, function, help} dispatches argv[1] and also writes the usage text, so a new
 * subcommand is one row here and one tools/cmd_<name>.c. It also holds what the
 * subcommands share: the global '--agent SOCKET' option and the one place that turns
 * the key agent's refusals into a message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/agent.h"
#include "lib/log.h"
#include "lib/policy.h"
#include "lib/protocol.h"
#include "lib/secret.h"
#include "tools/vaultctl.h"

#ifndef VAULTFS_VERSION
#define VAULTFS_VERSION "unknown"
#endif

static int cmd_help(int argc, char *argv[]);

static const struct {
	const char *name;
	int (*fn)(int argc, char *argv[]);
	const char *help;
} subcommands[] = {
	{ "init", cmd_init, "create a vault in an empty directory, with a new key file" },
	{ "info", cmd_info, "show a vault's format, cipher, id, creation time and object count" },
	{ "umount", cmd_umount, "unmount a mounted vault" },
	{ "unlock", cmd_unlock, "unseal the key agent with its passphrase" },
	{ "status", cmd_status, "say whether the key agent is sealed or unsealed" },
	{ "dataset", cmd_dataset, "create a dataset through the key agent, or list them" },
	{ "mount", cmd_mount, "mount a dataset with keys leased from the key agent" },
	{ "lease", cmd_lease, "list or revoke the key leases of mounted datasets" },
	{ "audit", cmd_audit, "verify an audit trail" },
	{ "key", cmd_key, "rotate, retire or shred a dataset's keys" },
	{ "rekey", cmd_rekey, "re-encrypt a dataset under its newest key version" },
	{ "kek", cmd_kek, "rotate the key agent's master key (passphrase agents)" },
	{ "policy", cmd_policy, "check a key agent configuration, or reload the agent's policy" },
	{ "help", cmd_help, "show this text, or the usage of one subcommand" },
};

#define SUBCOMMAND_COUNT (sizeof(subcommands) / sizeof(subcommands[0]))

/* From '--agent SOCKET' before the subcommand; NULL when not given. */
static const char *agent_option;

static void show_usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: vaultctl [--agent SOCKET] <subcommand> [<args>]\n"
		     "       vaultctl --version\n\n"
		     "subcommands:\n");
	for (i = 0; i < SUBCOMMAND_COUNT; i++)
		fprintf(out, "  %-8s  %s\n", subcommands[i].name, subcommands[i].help);
	fprintf(out, "\n  --agent SOCKET  the key agent's socket (default: $VAULTFS_AGENT_SOCKET, "
		     "else\n                  " AGENT_DEFAULT_SOCKET ")\n");
	fprintf(out, "\nrun 'vaultctl help <subcommand>' for its arguments; see vaultctl(8)\n");
}

static int find_subcommand(const char *name)
{
	size_t i;

	for (i = 0; i < SUBCOMMAND_COUNT; i++)
		if (strcmp(subcommands[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int cmd_help(int argc, char *argv[])
{
	char help_flag[] = "--help";
	char *sub_argv[3];
	int index;

	if (argc == 1) {
		show_usage(stdout);
		return VAULTCTL_EXIT_OK;
	}
	if (argc > 2)
		return vaultctl_usage_error("help [<subcommand>]", "too many arguments");
	index = find_subcommand(argv[1]);
	if (index < 0)
		return vaultctl_usage_error("help [<subcommand>]",
					    "unknown subcommand '%s': run 'vaultctl help'",
					    argv[1]);
	if (subcommands[index].fn == cmd_help) {
		show_usage(stdout);
		return VAULTCTL_EXIT_OK;
	}
	sub_argv[0] = argv[1];
	sub_argv[1] = help_flag;
	sub_argv[2] = NULL;
	return subcommands[index].fn(2, sub_argv);
}

int vaultctl_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("vaultctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return VAULTCTL_EXIT_ERROR;
}

int vaultctl_usage_error(const char *synopsis, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	if (fmt != NULL) {
		fputs("vaultctl: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: vaultctl %s\n", synopsis);
	return VAULTCTL_EXIT_USAGE;
}

/* "a", "a or b", "a, b or c". */
static void action_choices(char *buf, size_t size, const struct vaultctl_action *actions,
			   size_t count)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < count && used < size; i++) {
		const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
		int n = snprintf(buf + used, size - used, "%s%s", sep, actions[i].name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

int vaultctl_run_action(const char *noun, const struct vaultctl_action *actions, size_t count,
			int argc, char *argv[], const char *synopsis, const char *help)
{
	char choices[128];

	action_choices(choices, sizeof(choices), actions, count);
	if (argc < 2)
		return vaultctl_usage_error(synopsis, "give an action: %s", choices);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return vaultctl_usage(synopsis, help);
	for (size_t i = 0; i < count; i++)
		if (strcmp(argv[1], actions[i].name) == 0)
			return actions[i].fn(argc - 1, argv + 1);
	return vaultctl_usage_error(synopsis, "unknown %s action '%s': use %s", noun, argv[1],
				    choices);
}

int vaultctl_usage(const char *synopsis, const char *help)
{
	printf("usage: vaultctl %s\n\n%s", synopsis, help);
	return VAULTCTL_EXIT_OK;
}

/* $VAULTFS_AGENT_SOCKET, ignored when empty or in a setuid process (as the agent client
 * does), or NULL. */
static const char *agent_environment(void)
{
	const char *socket_path = secure_getenv("VAULTFS_AGENT_SOCKET");

	return socket_path && *socket_path ? socket_path : NULL;
}

void vaultctl_set_agent_socket(const char *socket_path)
{
	agent_option = socket_path;
}

const char *vaultctl_agent_socket(void)
{
	if (agent_option)
		return agent_option;
	if (agent_environment())
		return agent_environment();
	return AGENT_DEFAULT_SOCKET;
}

int vaultctl_agent_socket_chosen(void)
{
	return agent_option != NULL || agent_environment() != NULL;
}

int vaultctl_check_dataset_name(const char *synopsis, const char *name)
{
	if (policy_name_valid(name))
		return 0;
	return vaultctl_usage_error(synopsis, "'%s' is not a dataset name: use 1 to %d letters, "
				    "digits, '.', '_' and '-', not starting with '-'", name,
				    POLICY_NAME_MAX);
}

int vaultctl_one_dataset_name(const char *synopsis, int count, char *const *operands,
			      const char *what)
{
	if (count < 1)
		return vaultctl_usage_error(synopsis, "missing NAME: %s", what);
	if (count > 1)
		return vaultctl_usage_error(synopsis, "too many arguments: one NAME only");
	return vaultctl_check_dataset_name(synopsis, operands[0]);
}

/* Whether the agent says it is sealed ("new": sealed, no passphrase yet), asked on a
 * connection that is still in step. */
static bool agent_sealed(struct agent *agent)
{
	struct protocol_message request = { .type = PROTOCOL_STATUS };
	struct protocol_message reply;
	bool sealed;

	if (agent_call(agent, &request, &reply) != 0) {
		protocol_message_release(&reply);
		return false;
	}
	sealed = strcmp(reply.text, "sealed") == 0 || strcmp(reply.text, "new") == 0;
	protocol_message_release(&reply);
	return sealed;
}

/* The message for a request the agent answered with an error. */
static int report_refusal(struct agent *agent, int err, const struct protocol_message *reply,
			  const char *command, const char *dataset, const char *context)
{
	const char *text = reply->text;

	if (err == -ENOKEY && agent_sealed(agent))
		return vaultctl_error("the agent is sealed: run 'vaultctl unlock'");
	if (err == -EACCES)
		return vaultctl_error("the agent refused: you hold no role allowing '%s'%s%s%s%s%s%s: "
				      "ask an administrator for one", command,
				      dataset ? " on '" : "", dataset ? dataset : "",
				      dataset ? "'" : "", text[0] ? " (agent: " : "", text,
				      text[0] ? ")" : "");
	if (text[0])
		return context ? vaultctl_error("%s: %s", context, text)
			       : vaultctl_error("%s", text);
	if (dataset)
		return vaultctl_error("the agent could not do '%s' on '%s': %s: see the agent's log",
				      command, dataset, strerror(-err));
	return vaultctl_error("the agent could not do '%s': %s: see the agent's log", command,
			      strerror(-err));
}

int vaultctl_agent_request(const struct protocol_message *request,
			   struct protocol_message *reply, const char *command,
			   const char *dataset, const char *context)
{
	const char *socket_path = vaultctl_agent_socket();
	struct agent *agent;
	int status;
	int err;

	memset(reply, 0, sizeof(*reply));
	/* Frames are received into secret memory. */
	err = secret_init();
	if (err < 0)
		return vaultctl_error("cannot initialise the crypto library: %s", strerror(-err));
	err = agent_connect(&agent, socket_path);
	switch (err) {
	case 0:
		break;
	case -ENOENT:
	case -ECONNREFUSED:
		return vaultctl_error("the key agent is not running at '%s': start vault-keyagent, "
				      "or give its socket with --agent SOCKET", socket_path);
	case -EACCES:
	case -EPERM:
		return vaultctl_error("cannot connect to the key agent at '%s': permission denied: "
				      "ask to be added to the agent's socket group", socket_path);
	case -ENAMETOOLONG:
		return vaultctl_usage_error("[--agent SOCKET] <subcommand> [<args>]",
					    "socket path '%s' is too long for a Unix socket",
					    socket_path);
	default:
		return vaultctl_error("cannot connect to the key agent at '%s': %s", socket_path,
				      strerror(-err));
	}
	err = agent_call(agent, request, reply);
	if (err == 0) {
		status = VAULTCTL_EXIT_OK;
	} else if (reply->type == PROTOCOL_ERROR) {
		/* Checked first: the agent's own answer may be -EINVAL too. */
		status = report_refusal(agent, err, reply, command, dataset, context);
	} else if (err == -EINVAL || err == -EMSGSIZE) {
		status = vaultctl_error("the request '%s' cannot be sent: an argument is out of "
					"bounds", command);
	} else if (err == -ECONNRESET) {
		status = vaultctl_error("the key agent at '%s' closed the connection: see its "
					"log", socket_path);
	} else if (err == -ETIMEDOUT) {
		status = vaultctl_error("the key agent at '%s' did not answer within %d seconds: "
					"see its log", socket_path, AGENT_TIMEOUT_MS / 1000);
	} else {
		status = vaultctl_error("talking to the key agent at '%s' failed: %s: see its log",
					socket_path, strerror(-err));
	}
	if (status != VAULTCTL_EXIT_OK)
		protocol_message_release(reply);
	agent_close(agent);
	return status;
}

/* Global options before the subcommand. Returns how many arguments they took, or -1
 * after a usage error. */
static int parse_global_options(int argc, char *argv[])
{
	static const char synopsis[] = "[--agent SOCKET] <subcommand> [<args>]";
	int i = 1;

	while (i < argc) {
		if (strcmp(argv[i], "--agent") == 0) {
			if (i + 1 >= argc) {
				vaultctl_usage_error(synopsis, "--agent needs the path of the agent's "
						     "socket");
				return -1;
			}
			agent_option = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--agent=", 8) == 0) {
			agent_option = argv[i] + 8;
			i++;
		} else {
			break;
		}
		if (agent_option[0] == '\0') {
			vaultctl_usage_error(synopsis, "--agent needs the path of the agent's socket");
			return -1;
		}
	}
	return i - 1;
}

int main(int argc, char *argv[])
{
	int index;
	int status;
	int taken;

	/* Messages from lib/ carry our name; the tool's own messages go through
	 * vaultctl_error(). */
	log_init("vaultctl", false, LOG_WARNING);

	taken = parse_global_options(argc, argv);
	if (taken < 0)
		return VAULTCTL_EXIT_USAGE;
	argc -= taken;
	argv += taken;
	if (argc < 2) {
		show_usage(stderr);
		return VAULTCTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("vaultctl %s\n", VAULTFS_VERSION);
		return VAULTCTL_EXIT_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		show_usage(stdout);
		return VAULTCTL_EXIT_OK;
	}
	index = find_subcommand(argv[1]);
	if (index < 0) {
		vaultctl_error("unknown subcommand '%s': run 'vaultctl help' for the list",
			       argv[1]);
		return VAULTCTL_EXIT_USAGE;
	}
	status = subcommands[index].fn(argc - 1, argv + 1);
	/* A failed write of the output (full disk, closed pipe) must not look like success. */
	if ((fflush(stdout) != 0 || ferror(stdout)) && status == VAULTCTL_EXIT_OK)
		status = vaultctl_error("cannot write to standard output: %s", strerror(errno));
	return status;
}
