/*
 * vaultctl: the command-line tool for vault owners and admins. A table of subcommands
 * {name, function, help} dispatches argv[1] and also writes the usage text, so a new
 * subcommand is one row here and one tools/cmd_<name>.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
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
	{ "policy", cmd_policy, "check a key agent configuration and its policy" },
	{ "help", cmd_help, "show this text, or the usage of one subcommand" },
};

#define SUBCOMMAND_COUNT (sizeof(subcommands) / sizeof(subcommands[0]))

static void show_usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: vaultctl <subcommand> [<args>]\n"
		     "       vaultctl --version\n\n"
		     "subcommands:\n");
	for (i = 0; i < SUBCOMMAND_COUNT; i++)
		fprintf(out, "  %-8s  %s\n", subcommands[i].name, subcommands[i].help);
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

int vaultctl_usage(const char *synopsis, const char *help)
{
	printf("usage: vaultctl %s\n\n%s", synopsis, help);
	return VAULTCTL_EXIT_OK;
}

int main(int argc, char *argv[])
{
	int index;
	int status;

	/* Messages from lib/ carry our name; the tool's own messages go through
	 * vaultctl_error(). */
	log_init("vaultctl", false, LOG_WARNING);

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
