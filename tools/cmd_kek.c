/*
 * vaultctl kek rotate: give a passphrase key agent a new passphrase. The agent re-wraps
 * every dataset key under the master key derived from it; the old passphrase unwraps
 * nothing afterwards. The new passphrase is typed twice on the terminal, without echo,
 * or read from a file descriptor; it lives only in secret memory.
 */
#include <stdio.h>
#include <string.h>

#include "lib/protocol.h"
#include "lib/secret.h"
#include "tools/vaultctl.h"

static const char synopsis[] = "kek rotate [--passphrase-fd N]";

static const char help[] =
	"Replace the key agent's master key (KEK) with one from a new passphrase and re-wrap\n"
	"every dataset key under it; afterwards the old passphrase unlocks nothing. Only for\n"
	"agents with kek = passphrase, which must be unsealed. The new passphrase, of at\n"
	"least " VAULTCTL_PASSPHRASE_MIN_TEXT " characters, is typed twice on the terminal without echo, or read from file\n"
	"descriptor N. Needs the 'kek' privilege (admin = * kek).\n\n"
	"  --passphrase-fd N   read the new passphrase from file descriptor N up to end of\n"
	"                      file; one trailing newline is removed\n"
	"  -h, --help          show this text\n";

static int kek_rotate(int argc, char *argv[])
{
	struct protocol_message request = { .type = PROTOCOL_KEK_ROTATE };
	struct protocol_message reply;
	uint8_t *passphrase = NULL;
	size_t passphrase_len = 0;
	int status;
	int fd;

	status = vaultctl_passphrase_options(argc, argv, synopsis, help, &fd);
	if (status >= 0)
		return status;
	if (secret_harden_process() < 0)
		return vaultctl_error("cannot protect this process from core dumps and tracing");
	status = vaultctl_read_passphrase(fd, "new passphrase for the key agent: ",
					  "repeat the new passphrase: ", &passphrase,
					  &passphrase_len);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	request.secret = passphrase;
	request.secret_len = passphrase_len;
	status = vaultctl_agent_request(&request, &reply, "kek rotate", "*",
					"cannot rotate the master key");
	secret_free(passphrase);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	protocol_message_release(&reply);
	printf("master key rotated: every dataset key is wrapped by the new one\n");
	return VAULTCTL_EXIT_OK;
}

static const struct vaultctl_action actions[] = {
	{ "rotate", kek_rotate },
};

int cmd_kek(int argc, char *argv[])
{
	return vaultctl_run_action("kek", actions, sizeof(actions) / sizeof(actions[0]), argc,
				   argv, synopsis, help);
}
