/*
 * vaultctl key: a dataset's keys over time, through the key agent. 'key rotate' adds a
 * version (printed) that new objects use; 'key retire' destroys a version no object
 * uses any more; 'key shred' destroys every version in the agent's keystore, after the
 * dataset's name has been typed on the terminal or repeated with --confirm, so that its
 * data decrypts only with a copy of the keystore made before (the prompt says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/policy.h"
#include "lib/protocol.h"
#include "tools/vaultctl.h"

static const char synopsis[] =
	"key rotate NAME\n"
	"       vaultctl key retire NAME VERSION\n"
	"       vaultctl key shred [--confirm NAME] NAME";

static const char help[] =
	"  rotate NAME           make a new key version for dataset NAME and print its\n"
	"                        number; new objects use it, older ones still read\n"
	"  retire NAME VERSION   destroy key version VERSION of NAME; refused while any\n"
	"                        object or record uses it (run 'vaultctl rekey NAME' first)\n"
	"                        and for the newest version\n"
	"  shred NAME            destroy every key version of NAME in the agent's keystore:\n"
	"                        its data and every backup of its vault become unreadable,\n"
	"                        except with a copy of the keystore made before the shred\n"
	"                        and the same KEK (see vaultctl(8)). Asks you to type NAME\n"
	"                        on the terminal; without a terminal, repeat NAME with\n"
	"                        --confirm NAME\n"
	"  -h, --help            show this text\n\n"
	"Each needs the matching privilege (rotate, retire, shred) on the dataset.\n";

static bool wants_help(int argc, char *argv[])
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

static int key_rotate(int argc, char *argv[])
{
	static const char rotate_synopsis[] = "key rotate NAME";
	struct protocol_message request = { .type = PROTOCOL_KEY_ROTATE };
	struct protocol_message reply;
	int status;

	if (wants_help(argc, argv))
		return vaultctl_usage(synopsis, help);
	status = vaultctl_one_dataset_name(rotate_synopsis, argc - 1, argv + 1,
					   "the dataset whose key to rotate");
	if (status != 0)
		return status;
	snprintf(request.name, sizeof(request.name), "%s", argv[1]);
	status = vaultctl_agent_request(&request, &reply, "key rotate", argv[1], NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	printf("%" PRIu32 "\n", reply.version);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

/* A key version: a nonzero decimal that fits 32 bits. Returns 0 or -EINVAL. */
static int parse_version(const char *text, uint32_t *version)
{
	unsigned long value;
	char *end;

	if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text))
		return -EINVAL;
	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || value == 0 || value > UINT32_MAX)
		return -EINVAL;
	*version = (uint32_t)value;
	return 0;
}

static int key_retire(int argc, char *argv[])
{
	static const char retire_synopsis[] = "key retire NAME VERSION";
	struct protocol_message request = { .type = PROTOCOL_KEY_RETIRE };
	struct protocol_message reply;
	int status;

	if (wants_help(argc, argv))
		return vaultctl_usage(synopsis, help);
	if (argc != 3)
		return vaultctl_usage_error(retire_synopsis, argc < 3 ? "give the dataset NAME and "
					    "the key VERSION to retire" : "too many arguments");
	status = vaultctl_check_dataset_name(retire_synopsis, argv[1]);
	if (status != 0)
		return status;
	if (parse_version(argv[2], &request.version) < 0)
		return vaultctl_usage_error(retire_synopsis, "'%s' is not a key version: give a "
					    "number from 1 up, as 'key rotate' printed it", argv[2]);
	snprintf(request.name, sizeof(request.name), "%s", argv[1]);
	status = vaultctl_agent_request(&request, &reply, "key retire", argv[1], NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

/* Ask for the dataset's name on the terminal. Returns 0 when it was typed exactly,
 * else an exit status after a message. */
static int confirm_on_terminal(const char *name)
{
	static const char prompt[] = "type the dataset name to destroy every key of it: ";
	char typed[POLICY_NAME_MAX + 2];
	bool too_long = false;
	size_t len = 0;
	ssize_t n;
	char byte;
	int tty;
	int status;

	tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty < 0)
		return vaultctl_usage_error("key shred --confirm NAME NAME", "no terminal to confirm "
					    "on: repeat the dataset name with --confirm %s", name);
	/* What shred destroys, and what it cannot reach: copies of the keystore. */
	dprintf(tty,
		"shredding '%s' destroys every version of its key in the key agent's\n"
		"keystore and revokes every lease on it: its data and every backup of its vault\n"
		"can then no longer be decrypted with this keystore\n"
		"not covered: a copy of the keystore made before the shred (a backup, a\n"
		"snapshot, disk blocks the filesystem freed) opened with the same master key\n"
		"(KEK) still decrypts the dataset and its backups; destroy such copies, or with\n"
		"a passphrase KEK run 'vaultctl kek rotate' after the shred and destroy every\n"
		"record of the old passphrase (see vaultctl(8))\n"
		"%s", name, prompt);
	for (;;) {
		n = read(tty, &byte, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || byte == '\n')
			break;
		if (len < sizeof(typed) - 1)
			typed[len++] = byte;
		else
			too_long = true;
	}
	close(tty);
	typed[len] = '\0';
	if (n < 0)
		return vaultctl_error("cannot read the confirmation from the terminal: %s: nothing "
				      "was shredded", strerror(errno));
	if (too_long || strcmp(typed, name) != 0)
		status = vaultctl_error("the name typed is not '%s': nothing was shredded", name);
	else
		status = 0;
	return status;
}

static int key_shred(int argc, char *argv[])
{
	static const char shred_synopsis[] = "key shred [--confirm NAME] NAME";
	static const struct option options[] = {
		{ "confirm", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct protocol_message request = { .type = PROTOCOL_KEY_SHRED };
	struct protocol_message reply;
	const char *confirm = NULL;
	const char *name;
	int status;
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			confirm = optarg;
			break;
		case 'h':
			return vaultctl_usage(synopsis, help);
		case ':':
			return vaultctl_usage_error(shred_synopsis, "'%s' needs a value",
						    argv[optind - 1]);
		default:
			return vaultctl_usage_error(shred_synopsis, "unknown option '%s'",
						    argv[optind - 1]);
		}
	}
	status = vaultctl_one_dataset_name(shred_synopsis, argc - optind, argv + optind,
					   "the dataset to shred");
	if (status != 0)
		return status;
	name = argv[optind];
	if (confirm != NULL) {
		if (strcmp(confirm, name) != 0)
			return vaultctl_usage_error(shred_synopsis, "--confirm '%s' does not repeat "
						    "the dataset name '%s': nothing was shredded",
						    confirm, name);
	} else {
		status = confirm_on_terminal(name);
		if (status != 0)
			return status;
	}
	snprintf(request.name, sizeof(request.name), "%s", name);
	status = vaultctl_agent_request(&request, &reply, "key shred", name, NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	if (reply.text[0] != '\0')
		printf("%s\n", reply.text);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

static const struct vaultctl_action actions[] = {
	{ "rotate", key_rotate },
	{ "retire", key_retire },
	{ "shred", key_shred },
};

int cmd_key(int argc, char *argv[])
{
	return vaultctl_run_action("key", actions, sizeof(actions) / sizeof(actions[0]), argc,
				   argv, synopsis, help);
}
