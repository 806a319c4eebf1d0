/*
 * vaultctl: the subcommands and the few helpers they share. Each subcommand lives in
 * tools/cmd_<name>.c, gets argv with argv[0] = its own name, and returns the process
 * exit status: 0 success, 1 error, 2 usage error. Only vaultctl.c's main() exits.
 */
#ifndef VAULTFS_TOOLS_VAULTCTL_H
#define VAULTFS_TOOLS_VAULTCTL_H

#define VAULTCTL_EXIT_OK 0
#define VAULTCTL_EXIT_ERROR 1
#define VAULTCTL_EXIT_USAGE 2

int cmd_init(int argc, char *argv[]);
int cmd_info(int argc, char *argv[]);
int cmd_umount(int argc, char *argv[]);
int cmd_policy(int argc, char *argv[]);

/* Print "vaultctl: <message>" on stderr; returns VAULTCTL_EXIT_ERROR. */
int vaultctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "vaultctl: <message>" (when fmt is not NULL) and then "usage: vaultctl <synopsis>"
 * on stderr; returns VAULTCTL_EXIT_USAGE. */
int vaultctl_usage_error(const char *synopsis, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "usage: vaultctl <synopsis>" and the help text on stdout, for --help; returns 0. */
int vaultctl_usage(const char *synopsis, const char *help);

#endif
