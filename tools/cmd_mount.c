/*
 * vaultctl mount: mount a dataset through the key agent. A user asks the agent (MOUNT),
 * which checks the policy and the mountpoint and starts the vaultfs daemon itself, so
 * the dataset's keys never reach a process the user controls; the answer comes once the
 * daemon has mounted for that user alone, or failed. Root, an operator, runs vaultfs
 * with '-o dataset=NAME[,agent=SOCKET][,OPTIONS] MOUNTPOINT' itself: vaultctl becomes
 * vaultfs (exec), so vaultfs's messages and exit status are the command's. vaultfs is
 * $VAULTFS when set, else the one of the build tree next to this vaultctl, else
 * 'vaultfs' in PATH.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/protocol.h"
#include "tools/vaultctl.h"

/* Where vaultfs sits relative to vaultctl in the build tree (tools/ and fs/). */
#define BUILD_TREE_VAULTFS "../fs/vaultfs"

static const char synopsis[] = "mount NAME MOUNTPOINT [-o OPTION[,OPTION...]]";

static const char help[] =
	"Mount dataset NAME at MOUNTPOINT with vaultfs(8): the key agent checks your roles,\n"
	"leases the dataset's keys and names its vault directory. The mount loses its keys\n"
	"when the lease is revoked or cannot be renewed. Unmount with 'vaultctl umount'.\n\n"
	"A user's mount is made by the key agent, on a directory the user owns, and only\n"
	"that user may enter it; its options are ro and allow_other (a mount every user\n"
	"the policy lets in may enter: needs the 'share' privilege on the dataset). Root\n"
	"runs vaultfs itself and may pass any vaultfs option (max_threads=N, ...).\n\n"
	"  -o OPTIONS   mount options, comma-separated; repeatable\n"
	"  -h, --help   show this text\n\n"
	"The agent's socket (global option --agent) is passed on as -o agent=SOCKET.\n";

/* Options that would contradict the mount this command makes. */
static int check_options(const char *options)
{
	static const char *const refused[] = { "dataset=", "agent=", "keyfile=", "ephemeral",
					       "cipher=" };
	char *copy, *save = NULL, *option;
	int status = 0;
	size_t i;

	copy = strdup(options);
	if (copy == NULL)
		return vaultctl_error("out of memory");
	if (options[0] == '\0' || options[0] == ',' || options[strlen(options) - 1] == ',' ||
	    strstr(options, ",,") != NULL)
		status = vaultctl_usage_error(synopsis, "-o '%s' has an empty option", options);
	for (option = strtok_r(copy, ",", &save); option != NULL && status == 0;
	     option = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
			size_t len = strlen(refused[i]);
			bool match = refused[i][len - 1] == '=' ? strncmp(option, refused[i], len) == 0
								: strcmp(option, refused[i]) == 0;
			if (!match)
				continue;
			if (strcmp(refused[i], "agent=") == 0)
				status = vaultctl_usage_error(synopsis, "give the agent's socket with "
							      "'vaultctl --agent SOCKET mount', "
							      "not -o agent=");
			else
				status = vaultctl_usage_error(synopsis, "option '%s' does not go with a "
							      "dataset mount: the agent gives the "
							      "dataset, its keys and its vault",
							      option);
			break;
		}
	}
	free(copy);
	return status;
}

/* A user's mount: the agent starts the daemon. Only 'ro' means anything here. */
static int mount_through_agent(const char *name, const char *mountpoint, const char *options)
{
	struct protocol_message request = { .type = PROTOCOL_MOUNT }, reply = { 0 };
	char *copy = options ? strdup(options) : NULL, *save = NULL, *option;
	char *path = NULL;
	int status = 0;

	if (options && !copy)
		return vaultctl_error("out of memory");
	for (option = copy ? strtok_r(copy, ",", &save) : NULL; option && status == 0;
	     option = strtok_r(NULL, ",", &save)) {
		if (strcmp(option, "ro") == 0)
			request.mode = POLICY_RO;
		else if (strcmp(option, "allow_other") == 0)
			snprintf(request.text, sizeof(request.text), "%s", MOUNT_SHARED);
		else
			status = vaultctl_error("option '%s' is for root's mounts: a user's mount "
						"takes only 'ro' and 'allow_other'", option);
	}
	if (status)
		goto out_free;
	path = realpath(mountpoint, NULL);
	if (!path) {
		status = vaultctl_error("mountpoint '%s': %s: create a directory of yours first",
					mountpoint, strerror(errno));
		goto out_free;
	}
	if (strlen(path) > PROTOCOL_PATH_MAX) {
		status = vaultctl_error("mountpoint '%s' is too long", mountpoint);
		goto out_free;
	}
	snprintf(request.name, sizeof(request.name), "%s", name);
	snprintf(request.path, sizeof(request.path), "%s", path);
	status = vaultctl_agent_request(&request, &reply, "mount", name, NULL);
	if (status == 0)
		protocol_message_release(&reply);
out_free:
	free(path);
	free(copy);
	return status;
}

/* The vaultfs of the build tree, next to this vaultctl, when there is one (malloc'd). */
static char *build_tree_vaultfs(void)
{
	char self[PATH_MAX];
	char *candidate = NULL;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	if (asprintf(&candidate, "%s/" BUILD_TREE_VAULTFS, dirname(self)) < 0)
		return NULL;
	if (access(candidate, X_OK) != 0) {
		free(candidate);
		return NULL;
	}
	return candidate;
}

int cmd_mount(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *override = secure_getenv("VAULTFS");
	char *user_options = NULL, *mount_options = NULL, *mountpoint = NULL;
	char *program = NULL;
	const char *name;
	char *exec_argv[5];
	int status;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":ho:", options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			free(user_options);
			return vaultctl_usage(synopsis, help);
		case 'o': {
			char *joined = NULL;

			status = check_options(optarg);
			if (status != 0)
				goto out_free;
			if (asprintf(&joined, "%s%s%s", user_options ? user_options : "",
				     user_options ? "," : "", optarg) < 0) {
				status = vaultctl_error("out of memory");
				goto out_free;
			}
			free(user_options);
			user_options = joined;
			break;
		}
		case ':':
			status = vaultctl_usage_error(synopsis, "'%s' needs a value",
						      argv[optind - 1]);
			goto out_free;
		default:
			status = vaultctl_usage_error(synopsis, "unknown option '%s'",
						      argv[optind - 1]);
			goto out_free;
		}
	}
	if (argc - optind != 2) {
		status = vaultctl_usage_error(synopsis, argc - optind < 2 ?
					      "give the dataset NAME and the MOUNTPOINT" :
					      "too many arguments");
		goto out_free;
	}
	name = argv[optind];
	status = vaultctl_check_dataset_name(synopsis, name);
	if (status != 0)
		goto out_free;
	if (getuid() != 0) {
		status = mount_through_agent(name, argv[optind + 1], user_options);
		goto out_free;
	}
	if (asprintf(&mount_options, "dataset=%s%s%s%s%s", name,
		     vaultctl_agent_socket_chosen() ? ",agent=" : "",
		     vaultctl_agent_socket_chosen() ? vaultctl_agent_socket() : "",
		     user_options ? "," : "", user_options ? user_options : "") < 0 ||
	    /* A mountpoint that looks like an option must not be read as one. */
	    asprintf(&mountpoint, "%s%s", argv[optind + 1][0] == '-' ? "./" : "",
		     argv[optind + 1]) < 0) {
		status = vaultctl_error("out of memory");
		goto out_free;
	}
	if (override != NULL && override[0] != '\0')
		program = strdup(override);
	else
		program = build_tree_vaultfs();
	exec_argv[0] = program ? program : (char *)"vaultfs";
	exec_argv[1] = (char *)"-o";
	exec_argv[2] = mount_options;
	exec_argv[3] = mountpoint;
	exec_argv[4] = NULL;
	fflush(NULL);
	if (program != NULL)
		execv(program, exec_argv);
	else
		execvp("vaultfs", exec_argv);
	status = vaultctl_error("cannot run '%s': %s: install vaultfs, or set $VAULTFS to its "
				"path", exec_argv[0], strerror(errno));
out_free:
	free(program);
	free(mountpoint);
	free(mount_options);
	free(user_options);
	return status;
}
