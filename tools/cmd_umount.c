/*
 * vaultctl umount: unmount a mounted vault. Root calls umount2(2) directly; anyone else
 * asks the key agent first (it unmounts what it mounted for that user) and otherwise goes
 * through the setuid helper fusermount3 -u, as FUSE requires. The mount table is
 * checked first so that a path which is not a FUSE mount gets a clear answer, and so that a
 * mount whose daemon died (stat fails with ENOTCONN) can still be unmounted.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/agent.h"
#include "lib/protocol.h"
#include "lib/secret.h"
#include "tools/vaultctl.h"

#define MOUNTINFO_PATH "/proc/self/mountinfo"

static const char synopsis[] = "umount MOUNTPOINT";

static const char help[] =
	"Unmount the vault mounted at MOUNTPOINT (as 'fusermount3 -u MOUNTPOINT' does).\n"
	"The daemon flushes its metadata and exits.\n\n"
	"  -h, --help   show this text\n";

/*
 * Absolute form of path without following its last component, which may be a dead
 * FUSE mount that cannot be stat'ed. Returns a malloc'd string or NULL (errno set).
 */
static char *absolute_path(const char *path)
{
	char *copy, *slash, *parent, *result = NULL;
	const char *base;
	size_t len;

	copy = strdup(path);
	if (copy == NULL)
		return NULL;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	slash = strrchr(copy, '/');
	if (slash == NULL) {
		parent = realpath(".", NULL);
		base = copy;
	} else if (slash == copy) {
		parent = strdup("/");
		base = slash + 1;
	} else {
		*slash = '\0';
		parent = realpath(copy, NULL);
		base = slash + 1;
	}
	if (parent == NULL)
		goto out_free_copy;
	if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		/* "/", "." or "..": no last component worth protecting; resolve fully. */
		free(parent);
		result = realpath(path, NULL);
		goto out_free_copy;
	}
	if (asprintf(&result, "%s%s%s", parent, strcmp(parent, "/") == 0 ? "" : "/", base) < 0)
		result = NULL;
	free(parent);
out_free_copy:
	free(copy);
	return result;
}

/* Undo the octal escapes (\040 for a space, ...) of a mountinfo field, in place. */
static void unescape_mountinfo(char *field)
{
	char *in = field, *out = field;

	while (*in != '\0') {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

/*
 * Look mountpoint up in the mount table. Returns 1 and the file system type (malloc'd)
 * of the last (topmost) mount there, 0 when nothing is mounted there, or -errno.
 */
static int find_mount(const char *mountpoint, char **fstype)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *table;
	int found = 0;

	*fstype = NULL;
	table = fopen(MOUNTINFO_PATH, "re");
	if (table == NULL)
		return -errno;
	while (getline(&line, &cap, table) != -1) {
		/* id parent major:minor root mountpoint options [optional...] - fstype ... */
		char *save = NULL, *field, *point = NULL, *type = NULL;
		int index = 0;
		bool after_separator = false;

		for (field = strtok_r(line, " \n", &save); field != NULL;
		     field = strtok_r(NULL, " \n", &save), index++) {
			if (index == 4)
				point = field;
			else if (index > 5 && !after_separator && strcmp(field, "-") == 0)
				after_separator = true;
			else if (after_separator) {
				type = field;
				break;
			}
		}
		if (point == NULL || type == NULL)
			continue;
		unescape_mountinfo(point);
		if (strcmp(point, mountpoint) != 0)
			continue;
		free(*fstype);
		*fstype = strdup(type);
		if (*fstype == NULL) {
			found = -ENOMEM;
			break;
		}
		found = 1;
	}
	free(line);
	fclose(table);
	return found;
}

static bool is_fuse_type(const char *fstype)
{
	return strcmp(fstype, "fuse") == 0 || strncmp(fstype, "fuse.", 5) == 0;
}

static int report_umount_error(int err, const char *mountpoint)
{
	if (err == EBUSY)
		return vaultctl_error("'%s' is busy: close the files and shells using it "
				      "(see 'fuser -m %s') and try again", mountpoint, mountpoint);
	return vaultctl_error("cannot unmount '%s': %s", mountpoint, strerror(err));
}

/* A mount the key agent made for this user: the agent takes it down. Returns -ENOENT
 * when the agent made none there (or cannot be reached), else an exit status. */
static int agent_unmount(const char *mountpoint)
{
	struct protocol_message request = { .type = PROTOCOL_UNMOUNT }, reply = { 0 };
	struct agent *agent;
	int err;

	if (strlen(mountpoint) > PROTOCOL_PATH_MAX || secret_init() != 0)
		return -ENOENT;
	snprintf(request.path, sizeof(request.path), "%s", mountpoint);
	if (agent_connect(&agent, vaultctl_agent_socket()) != 0)
		return -ENOENT;
	err = agent_call(agent, &request, &reply);
	agent_close(agent);
	if (err == -ENOENT || err == -ECONNRESET || err == -ETIMEDOUT) {
		err = -ENOENT;
	} else if (err == -EBUSY) {
		err = report_umount_error(EBUSY, mountpoint);
	} else if (err) {
		err = vaultctl_error("cannot unmount '%s': %s", mountpoint,
				     reply.text[0] ? reply.text : strerror(-err));
	}
	protocol_message_release(&reply);
	return err;
}

/* Run fusermount3 -u; it prints its own reason on failure. */
static int run_fusermount(const char *mountpoint)
{
	int wait_status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return vaultctl_error("cannot start fusermount3: %s", strerror(errno));
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", mountpoint, (char *)NULL);
		fprintf(stderr, "vaultctl: cannot run fusermount3: %s: install the fuse3 "
				"package\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &wait_status, 0) < 0) {
		if (errno != EINTR)
			return vaultctl_error("cannot wait for fusermount3: %s", strerror(errno));
	}
	if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
		return VAULTCTL_EXIT_OK;
	if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 127)
		return VAULTCTL_EXIT_ERROR;
	return vaultctl_error("cannot unmount '%s': fusermount3 failed (see above)", mountpoint);
}

int cmd_umount(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mountpoint;
	char *path = NULL;
	char *fstype = NULL;
	struct stat st;
	int status;
	int opt;
	int found;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			return vaultctl_usage(synopsis, help);
		default:
			return vaultctl_usage_error(synopsis, "unknown option '%s'",
						    argv[optind - 1]);
		}
	}
	if (optind == argc)
		return vaultctl_usage_error(synopsis, "missing MOUNTPOINT: where the vault is "
					    "mounted");
	if (argc - optind > 1)
		return vaultctl_usage_error(synopsis, "too many arguments: one MOUNTPOINT only");
	mountpoint = argv[optind];

	path = absolute_path(mountpoint);
	if (path == NULL) {
		if (errno == ENOENT)
			return vaultctl_error("'%s' does not exist: give the directory where the "
					      "vault is mounted", mountpoint);
		return vaultctl_error("cannot resolve '%s': %s", mountpoint, strerror(errno));
	}
	found = find_mount(path, &fstype);
	if (found < 0) {
		status = vaultctl_error("cannot read the mount table " MOUNTINFO_PATH ": %s",
					strerror(-found));
		goto out_free;
	}
	if (found == 0) {
		if (lstat(path, &st) < 0 && errno == ENOENT)
			status = vaultctl_error("'%s' does not exist: give the directory where the "
						"vault is mounted", mountpoint);
		else
			status = vaultctl_error("'%s' is not a mount point: nothing to unmount",
						mountpoint);
		goto out_free;
	}
	if (!is_fuse_type(fstype)) {
		status = vaultctl_error("'%s' is a %s mount, not a vault: use umount(8)",
					mountpoint, fstype);
		goto out_free;
	}

	if (geteuid() == 0) {
		/* UMOUNT_NOFOLLOW: a symlink swapped in after the check above cannot
		 * redirect the unmount elsewhere. */
		if (umount2(path, UMOUNT_NOFOLLOW) < 0)
			status = report_umount_error(errno, mountpoint);
		else
			status = VAULTCTL_EXIT_OK;
	} else {
		status = agent_unmount(path);
		if (status == -ENOENT)
			status = run_fusermount(path);
	}
out_free:
	free(fstype);
	free(path);
	return status;
}
