/*
 * vaultctl unlock and status: unseal a passphrase key agent, and ask whether it is
 * sealed. The passphrase is read from the terminal without echo or from a file
 * descriptor, never from argv or the environment, and lives only in secret memory,
 * wiped once sent. vaultctl_read_passphrase() serves 'kek rotate' too.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "lib/protocol.h"
#include "lib/secret.h"
#include "tools/vaultctl.h"

/* Room for the longest passphrase, a newline and the NUL after it. */
#define PASSPHRASE_BUFFER (PROTOCOL_SECRET_MAX + 2)

static const char unlock_synopsis[] = "unlock [--passphrase-fd N]";

static const char unlock_help[] =
	"Unseal a key agent whose master key comes from a passphrase (kek = passphrase):\n"
	"read the passphrase from the terminal without echo, or from file descriptor N, and\n"
	"send it to the agent. The first unlock of a new keystore sets the passphrase, of at\n"
	"least " VAULTCTL_PASSPHRASE_MIN_TEXT " characters; a terminal asks for it twice.\n\n"
	"  --passphrase-fd N   read the passphrase from file descriptor N up to end of file;\n"
	"                      one trailing newline is removed\n"
	"  -h, --help          show this text\n";

static const char status_synopsis[] = "status";

static const char status_help[] =
	"Print 'unsealed' or 'sealed': whether the key agent holds its master key; 'new'\n"
	"when it is sealed and its keystore has no passphrase yet (the first 'vaultctl\n"
	"unlock' sets it).\n\n"
	"  -h, --help   show this text\n";

/* Terminal state to put back when a signal ends the process mid-prompt. */
static int signal_tty_fd = -1;
static struct termios signal_tty_saved;

static const int fatal_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define FATAL_SIGNAL_COUNT (sizeof(fatal_signals) / sizeof(fatal_signals[0]))

static void restore_tty_and_die(int signo)
{
	/* tcsetattr and raise are async-signal-safe; SA_RESETHAND made the action the
	 * default again, so the raised signal ends the process once this returns. */
	if (signal_tty_fd >= 0)
		tcsetattr(signal_tty_fd, TCSAFLUSH, &signal_tty_saved);
	raise(signo);
}

static int parse_fd(const char *text)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < 0 || value > INT_MAX)
		return -1;
	return (int)value;
}

/* Read all of fd into buf (PASSPHRASE_BUFFER bytes). Returns 0, -EMSGSIZE or -errno. */
static int read_all(int fd, uint8_t *buf, size_t *len)
{
	ssize_t n;

	*len = 0;
	for (;;) {
		if (*len == PASSPHRASE_BUFFER - 1)
			return -EMSGSIZE;
		n = read(fd, buf + *len, PASSPHRASE_BUFFER - 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
}

/* Read one line from the terminal tty (echo already off) into buf. A line too long
 * for the buffer is read to its end and refused. Returns 0, -EMSGSIZE, -ENODATA (end of
 * input before a newline and nothing typed) or -errno. */
static int read_line(int tty, uint8_t *buf, size_t *len)
{
	bool too_long = false;
	uint8_t byte;
	ssize_t n;

	*len = 0;
	for (;;) {
		/* One byte at a time: nothing past the newline is consumed or buffered. */
		n = read(tty, &byte, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (*len == 0 && !too_long)
				return -ENODATA;
			break;
		}
		if (byte == '\n')
			break;
		if (*len == PASSPHRASE_BUFFER - 1)
			too_long = true;
		else
			buf[(*len)++] = byte;
	}
	secret_wipe(&byte, sizeof(byte));
	return too_long ? -EMSGSIZE : 0;
}

/* Prompt on tty and read one line without echo, restoring the terminal on return and
 * on a fatal signal. */
static int prompt_line(int tty, const char *prompt, uint8_t *buf, size_t *len)
{
	struct sigaction handler = { .sa_handler = restore_tty_and_die,
				     .sa_flags = SA_RESETHAND };
	struct sigaction saved[FATAL_SIGNAL_COUNT];
	struct termios quiet;
	sigset_t stops, saved_mask;
	size_t i;
	int err;

	if (tcgetattr(tty, &signal_tty_saved) < 0)
		return -errno;
	/* No stop from the terminal while echo is off: the shell would not put it back. */
	sigemptyset(&stops);
	sigaddset(&stops, SIGTSTP);
	sigaddset(&stops, SIGTTIN);
	sigaddset(&stops, SIGTTOU);
	sigprocmask(SIG_BLOCK, &stops, &saved_mask);
	signal_tty_fd = tty;
	sigemptyset(&handler.sa_mask);
	for (i = 0; i < FATAL_SIGNAL_COUNT; i++)
		sigaction(fatal_signals[i], &handler, &saved[i]);

	quiet = signal_tty_saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	quiet.c_lflag |= ICANON;
	/* Echo goes off before the prompt shows: nothing typed after it is echoed. */
	if (tcsetattr(tty, TCSAFLUSH, &quiet) < 0 || write(tty, prompt, strlen(prompt)) < 0) {
		err = -errno;
		goto out_restore;
	}
	err = read_line(tty, buf, len);
	/* The newline typed was not echoed. */
	if (write(tty, "\n", 1) < 0 && err == 0)
		err = -errno;
out_restore:
	tcsetattr(tty, TCSAFLUSH, &signal_tty_saved);
	for (i = 0; i < FATAL_SIGNAL_COUNT; i++)
		sigaction(fatal_signals[i], &saved[i], NULL);
	signal_tty_fd = -1;
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);
	return err;
}

/* Characters of a UTF-8 passphrase: the bytes that do not continue a sequence. */
static size_t passphrase_characters(const uint8_t *passphrase, size_t len)
{
	size_t characters = 0;

	for (size_t i = 0; i < len; i++)
		if ((passphrase[i] & 0xc0) != 0x80)
			characters++;
	return characters;
}

/* A new passphrase long enough? Prints why not and returns VAULTCTL_EXIT_ERROR. */
static int check_new_passphrase(const uint8_t *passphrase, size_t len)
{
	size_t characters = passphrase_characters(passphrase, len);

	if (len == 0 || characters >= VAULTCTL_PASSPHRASE_MIN)
		return VAULTCTL_EXIT_OK;   /* an empty one is refused below, as always */
	return vaultctl_error("the new passphrase has %zu characters: choose one of at least %d, "
			      "nothing was sent", characters, VAULTCTL_PASSPHRASE_MIN);
}

static int report_read_error(int err, int fd)
{
	switch (err) {
	case -EMSGSIZE:
		return vaultctl_error("the passphrase is longer than %d bytes: choose a shorter one",
				      PROTOCOL_SECRET_MAX);
	case -ENODATA:
		return vaultctl_error("no passphrase was typed: nothing was sent");
	case -EBADF:
		return vaultctl_error("file descriptor %d is not open: give --passphrase-fd the "
				      "descriptor the passphrase is on", fd);
	default:
		return fd >= 0 ? vaultctl_error("cannot read the passphrase from file descriptor "
						"%d: %s", fd, strerror(-err))
			       : vaultctl_error("cannot read the passphrase from the terminal: %s",
						strerror(-err));
	}
}

int vaultctl_read_passphrase(int fd, const char *prompt, const char *confirm_prompt,
			     uint8_t **out, size_t *len)
{
	uint8_t *first = NULL, *second = NULL;
	size_t first_len = 0, second_len = 0;
	int tty = -1;
	int status = VAULTCTL_EXIT_ERROR;
	int err;

	*out = NULL;
	*len = 0;
	err = secret_init();
	if (err < 0)
		return vaultctl_error("cannot initialise the crypto library: %s", strerror(-err));
	first = secret_alloc(PASSPHRASE_BUFFER);
	if (first == NULL)
		return vaultctl_error("cannot allocate secret memory: raise the locked-memory "
				      "limit (ulimit -l)");

	if (fd >= 0 && !isatty(fd)) {
		err = read_all(fd, first, &first_len);
		if (err == 0 && first_len > 0 && first[first_len - 1] == '\n')
			first_len--;
		if (err == 0 && first_len > PROTOCOL_SECRET_MAX)
			err = -EMSGSIZE;
		if (err < 0) {
			status = report_read_error(err, fd);
			goto out_free;
		}
		if (confirm_prompt && check_new_passphrase(first, first_len) != 0)
			goto out_free;
	} else {
		/* A terminal given as the descriptor is read like the controlling one. */
		tty = fd >= 0 ? fd : open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (tty < 0) {
			status = vaultctl_error("no terminal to read the passphrase from: give it "
						"on a file descriptor with --passphrase-fd N");
			goto out_free;
		}
		err = prompt_line(tty, prompt, first, &first_len);
		if (err == 0 && first_len > PROTOCOL_SECRET_MAX)
			err = -EMSGSIZE;
		if (err < 0) {
			status = report_read_error(err, -1);
			goto out_close;
		}
		if (confirm_prompt && check_new_passphrase(first, first_len) != 0)
			goto out_close;
		if (confirm_prompt != NULL && first_len > 0) {
			second = secret_alloc(PASSPHRASE_BUFFER);
			if (second == NULL) {
				status = vaultctl_error("cannot allocate secret memory: raise the "
							"locked-memory limit (ulimit -l)");
				goto out_close;
			}
			err = prompt_line(tty, confirm_prompt, second, &second_len);
			if (err < 0) {
				status = report_read_error(err, -1);
				goto out_close;
			}
			if (second_len != first_len ||
			    secret_compare(first, second, first_len) != 0) {
				status = vaultctl_error("the two passphrases differ: nothing was "
							"changed, try again");
				goto out_close;
			}
		}
	}
	if (first_len == 0) {
		status = vaultctl_error("the passphrase is empty: nothing was sent");
		goto out_close;
	}
	first[first_len] = '\0';
	*out = first;
	*len = first_len;
	first = NULL;
	status = VAULTCTL_EXIT_OK;
out_close:
	if (tty >= 0 && tty != fd)
		close(tty);
out_free:
	secret_free(second);
	secret_free(first);
	return status;
}

int vaultctl_passphrase_options(int argc, char *argv[], const char *synopsis,
				const char *help, int *fd)
{
	static const struct option options[] = {
		{ "passphrase-fd", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*fd = -1;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			*fd = parse_fd(optarg);
			if (*fd < 0)
				return vaultctl_usage_error(synopsis, "--passphrase-fd needs a "
							    "file descriptor number, not '%s'",
							    optarg);
			break;
		case 'h':
			return vaultctl_usage(synopsis, help);
		case ':':
			return vaultctl_usage_error(synopsis, "'%s' needs a value",
						    argv[optind - 1]);
		default:
			return vaultctl_usage_error(synopsis, "unknown option '%s'",
						    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return vaultctl_usage_error(synopsis, "unexpected argument '%s': the "
					    "passphrase is never given on the command line",
					    argv[optind]);
	return -1;
}

/* "unsealed", "sealed" or "new" into state (at least 16 bytes). */
static int ask_status(char *state, size_t len)
{
	struct protocol_message request = { .type = PROTOCOL_STATUS };
	struct protocol_message reply;
	int status;

	status = vaultctl_agent_request(&request, &reply, "status", NULL, NULL);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	snprintf(state, len, "%s", reply.text);
	protocol_message_release(&reply);
	return VAULTCTL_EXIT_OK;
}

int cmd_unlock(int argc, char *argv[])
{
	struct protocol_message request = { .type = PROTOCOL_UNLOCK };
	struct protocol_message reply;
	char state[PROTOCOL_TEXT_MAX + 1];
	uint8_t *passphrase = NULL;
	size_t passphrase_len = 0;
	int status;
	int fd;

	status = vaultctl_passphrase_options(argc, argv, unlock_synopsis, unlock_help, &fd);
	if (status >= 0)
		return status;
	if (secret_harden_process() < 0)
		return vaultctl_error("cannot protect this process from core dumps and tracing");
	/* Ask first, so nobody types a passphrase to an agent that is down or unsealed. */
	status = ask_status(state, sizeof(state));
	if (status != VAULTCTL_EXIT_OK)
		return status;
	if (strcmp(state, "unsealed") == 0)
		return vaultctl_error("the agent at '%s' is already unsealed: nothing to do",
				      vaultctl_agent_socket());
	/* A new keystore takes its passphrase from this unlock: no typo may slip in. */
	if (strcmp(state, "new") == 0)
		status = vaultctl_read_passphrase(fd, "new passphrase for the key agent "
						  "(at least " VAULTCTL_PASSPHRASE_MIN_TEXT " characters): ",
						  "repeat the new passphrase: ", &passphrase,
						  &passphrase_len);
	else
		status = vaultctl_read_passphrase(fd, "passphrase for the key agent: ", NULL,
						  &passphrase, &passphrase_len);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	request.secret = passphrase;
	request.secret_len = passphrase_len;
	status = vaultctl_agent_request(&request, &reply, "unlock", NULL, "cannot unlock");
	secret_free(passphrase);
	if (status != VAULTCTL_EXIT_OK)
		return status;
	protocol_message_release(&reply);
	printf("unsealed\n");
	return VAULTCTL_EXIT_OK;
}

int cmd_status(int argc, char *argv[])
{
	char state[PROTOCOL_TEXT_MAX + 1];
	int status;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return vaultctl_usage(status_synopsis, status_help);
	if (argc != 1)
		return vaultctl_usage_error(status_synopsis, "unexpected argument '%s'", argv[1]);
	status = ask_status(state, sizeof(state));
	if (status == VAULTCTL_EXIT_OK)
		printf("%s\n", state);
	return status;
}

