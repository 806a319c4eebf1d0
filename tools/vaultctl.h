/*
 * vaultctl: the subcommands and the few helpers they share. Each subcommand lives in
 * tools/cmd_<name>.c, gets argv with argv[0] = its own name, and returns the process
 * exit status: 0 success, 1 error, 2 usage error. Only vaultctl.c's main() exits.
 */
#ifndef VAULTFS_TOOLS_VAULTCTL_H
#define VAULTFS_TOOLS_VAULTCTL_H

#include <stddef.h>
#include <stdint.h>

#define VAULTCTL_EXIT_OK 0
#define VAULTCTL_EXIT_ERROR 1
#define VAULTCTL_EXIT_USAGE 2

struct protocol_message;

int cmd_init(int argc, char *argv[]);
int cmd_info(int argc, char *argv[]);
int cmd_umount(int argc, char *argv[]);
int cmd_policy(int argc, char *argv[]);
int cmd_unlock(int argc, char *argv[]);
int cmd_status(int argc, char *argv[]);
int cmd_dataset(int argc, char *argv[]);
int cmd_mount(int argc, char *argv[]);
int cmd_lease(int argc, char *argv[]);
int cmd_key(int argc, char *argv[]);
int cmd_kek(int argc, char *argv[]);
int cmd_rekey(int argc, char *argv[]);
int cmd_audit(int argc, char *argv[]);

/* Print "vaultctl: <message>" on stderr; returns VAULTCTL_EXIT_ERROR. */
int vaultctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "vaultctl: <message>" (when fmt is not NULL) and then "usage: vaultctl <synopsis>"
 * on stderr; returns VAULTCTL_EXIT_USAGE. */
int vaultctl_usage_error(const char *synopsis, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "usage: vaultctl <synopsis>" and the help text on stdout, for --help; returns 0. */
int vaultctl_usage(const char *synopsis, const char *help);

/* Subcommands with actions ("key rotate", "dataset list"): argv[1] names the action. */
struct vaultctl_action {
	const char *name;
	int (*fn)(int argc, char *argv[]);
};
/* Run the action argv[1] names with argv shifted by one; usage errors name the choices,
 * e.g. "unknown key action 'x': use rotate, retire or shred". */
int vaultctl_run_action(const char *noun, const struct vaultctl_action *actions, size_t count,
			int argc, char *argv[], const char *synopsis, const char *help);

/* vaultctl.c: the key agent's socket: the global '--agent SOCKET' option, else
 * $VAULTFS_AGENT_SOCKET, else AGENT_DEFAULT_SOCKET. Never NULL. */
const char *vaultctl_agent_socket(void);
/* vaultctl.c: the socket a subcommand's own '--agent SOCKET' names (as the global
 * option; socket_path must outlive the call). */
void vaultctl_set_agent_socket(const char *socket_path);
/* vaultctl.c: whether the socket was chosen (option or environment), not the default. */
int vaultctl_agent_socket_chosen(void);

/*
 * vaultctl.c: one request to the key agent (connect, send, receive, close). Returns 0
 * when the agent answered PROTOCOL_OK, reply then holding its answer (the caller
 * releases it). Otherwise reply holds nothing, one line has been printed on stderr and
 * the result is VAULTCTL_EXIT_ERROR (VAULTCTL_EXIT_USAGE for a socket path too long for
 * a Unix socket). Check names first (vaultctl_check_dataset_name). The line explains: the agent is not running at the socket
 * (with a hint to start it); the agent is sealed (run 'vaultctl unlock'); a refusal
 * ("you hold no role allowing '<command>' on '<dataset>'", dataset NULL: not known);
 * any other refusal with the agent's own text, after "<context>: " when context is not
 * NULL.
 */
int vaultctl_agent_request(const struct protocol_message *request,
			   struct protocol_message *reply, const char *command,
			   const char *dataset, const char *context);

/* vaultctl.c: whether name is a valid dataset name; prints the usage error otherwise
 * and returns VAULTCTL_EXIT_USAGE, else 0. */
int vaultctl_check_dataset_name(const char *synopsis, const char *name);
/* The same for the operands left after the options, which must be exactly one dataset
 * NAME; what says what it names ("the dataset to rekey") in the "missing NAME" error. */
int vaultctl_one_dataset_name(const char *synopsis, int count, char *const *operands,
			      const char *what);

/* The shortest new passphrase vaultctl sets, in characters (UTF-8 code points), and
 * the same as a string for help texts. */
#define VAULTCTL_PASSPHRASE_MIN 12
#define VAULTCTL_STRINGIFY(x) #x
#define VAULTCTL_NUMBER_TEXT(x) VAULTCTL_STRINGIFY(x)
#define VAULTCTL_PASSPHRASE_MIN_TEXT VAULTCTL_NUMBER_TEXT(VAULTCTL_PASSPHRASE_MIN)

/*
 * cmd_unlock.c: read a passphrase into secret memory (*out, from secret_alloc(), holding
 * *len bytes and one NUL after them; free with secret_free()). With fd >= 0 (not a
 * terminal) the whole content of fd up to end of file, once, one trailing newline
 * stripped; else from the controlling terminal (/dev/tty) without echo, after prompt.
 * confirm_prompt not NULL means a new passphrase is being set: it must have at least
 * VAULTCTL_PASSPHRASE_MIN characters, and a terminal is asked a second time, after
 * confirm_prompt, for the same (a descriptor is a script, read once: it cannot
 * mistype). Echo is restored on return and on a fatal signal. Never from argv or the
 * environment. Prints the problem and returns VAULTCTL_EXIT_ERROR (no terminal, empty,
 * too short, over PROTOCOL_SECRET_MAX bytes, mismatch, read error), or 0.
 */
int vaultctl_read_passphrase(int fd, const char *prompt, const char *confirm_prompt,
			     uint8_t **out, size_t *len);

/* cmd_unlock.c: the options of unlock and kek rotate, '--passphrase-fd N' and '--help',
 * and no arguments. Returns -1 to go on, with *fd the descriptor (-1: the terminal), or
 * the exit status to return. */
int vaultctl_passphrase_options(int argc, char *argv[], const char *synopsis,
				const char *help, int *fd);

#endif
