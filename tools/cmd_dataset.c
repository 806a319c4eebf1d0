/*
 * vaultctl dataset: datasets through the key agent. 'dataset create NAME' has the agent
 * make the dataset's first key and its vault directory under the data root, and prints
 * that directory; 'dataset list' prints the datasets the caller may see, one per line.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/protocol.h"
#include "tools/vaultctl.h"

static const char synopsis[] = "dataset create NAME\n       vaultctl dataset list";

static const char help[] =
	"  create NAME   have the key agent create dataset NAME: its first key (wrapped by\n"
	"                the agent's master key) and its vault directory under the agent's\n"
	"                data root; print that directory. Needs the 'create' privilege.\n"
	"  list          print the datasets you may mount or manage, one name per line\n"
	"  -h, --help    show this text\n";

static bool wants_help(int argc, char *argv[])
{
	return argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
}

static int dataset_create(int argc, char *argv[])
{
	static const char create_synopsis[] = "dataset create NAME";
	struct protocol_message request = { .type = PROTOCOL_DATASET_CREATE };
	struct protocol_message reply;
	int status;

	if (wants_help(argc, argv))
		return vaultctl_usage(synopsis, help);
	status = vaultctl_one_dataset_name(create_synopsis, argc - 1, argv + 1,
					   "the new dataset's name");
	if (status != 0)
		return status;
	snprintf(request.name, sizeof(request.name), "%s", argv[1]);
	status = vaultctl_agent_request(&request, &reply, "dataset create", argv[1], NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	printf("%s\n", reply.path);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

static int dataset_list(int argc, char *argv[])
{
	struct protocol_message request = { .type = PROTOCOL_DATASET_LIST };
	struct protocol_message reply;
	size_t i;
	int status;

	if (wants_help(argc, argv))
		return vaultctl_usage(synopsis, help);
	if (argc != 1)
		return vaultctl_usage_error("dataset list", "unexpected argument '%s'", argv[1]);
	status = vaultctl_agent_request(&request, &reply, "dataset list", NULL, NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	for (i = 0; i < reply.name_count; i++)
		printf("%s\n", reply.names[i]);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

static const struct vaultctl_action actions[] = {
	{ "create", dataset_create },
	{ "list", dataset_list },
};

int cmd_dataset(int argc, char *argv[])
{
	return vaultctl_run_action("dataset", actions, sizeof(actions) / sizeof(actions[0]), argc,
				   argv, synopsis, help);
}
