/*
 * vault-keyagent: the key agent of one host. Reads keyagent.conf, opens the keystore,
 * unseals it from a key file or systemd credential (or waits, sealed, for 'vaultctl
 * unlock'), then answers requests on its Unix socket in one thread until SIGTERM.
 * SIGHUP reloads the policy; a bad file leaves the old one in force. With --pid-file the
 * agent that answers records its pid, so scripts can stop it without procps.
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/keystore.h"
#include "lib/log.h"
#include "lib/secret.h"

#ifndef VAULTFS_VERSION
#define VAULTFS_VERSION "unknown"
#endif

#define DEFAULT_CONFIG "/etc/vaultfs/keyagent.conf"
#define IDENT "vault-keyagent"
#define EXIT_USAGE 2   /* as vaultctl: a bad command line */

#define SYNOPSIS "usage: " IDENT " [-f] [-c FILE] [--pid-file FILE]\n"

static void usage(FILE *out)
{
	fprintf(out, SYNOPSIS
		"       " IDENT " --version\n\n"
		"  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
		"  -f, --foreground    stay in the foreground and log to stderr\n"
		"      --pid-file FILE once the agent answers, write its pid to FILE; removed\n"
		"                      when it stops\n"
		"  -h, --help          show this text\n"
		"  -V, --version       print the version\n\n"
		"see vault-keyagent(8)\n");
}

/* "vault-keyagent: <what> '<arg>'" and the synopsis on stderr, as vaultctl does;
 * returns EXIT_USAGE. */
static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, IDENT ": %s '%s'\n" SYNOPSIS, what, arg);
	return EXIT_USAGE;
}

/* path made absolute against the working directory (the daemon moves to /), in a new
 * string; NULL when out of memory. */
static char *absolute_path(const char *path)
{
	char cwd[PATH_MAX];
	char *joined;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&joined, "%s/%s", cwd, path) < 0)
		return NULL;
	return joined;
}

/*
 * Write our pid to path atomically: a temporary file in the same directory renamed over
 * it, so a reader never sees it empty or half written, and a symlink planted at path is
 * replaced, not followed. Mode 0644. Returns 0 or -errno.
 */
static int pid_file_write(const char *path)
{
	char *temp;
	char line[32];
	int fd, len, err = 0;

	if (asprintf(&temp, "%s.XXXXXX", path) < 0)
		return -ENOMEM;
	fd = mkostemp(temp, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto out_free;
	}
	len = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	errno = 0;
	if (fchmod(fd, 0644) < 0 || write(fd, line, (size_t)len) != len)
		err = errno ? -errno : -EIO;   /* a short write sets no errno */
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(temp, path) < 0)
		err = -errno;
	if (err)
		unlink(temp);
out_free:
	free(temp);
	return err;
}

/* Remove path if it still names this process (another agent may have taken it over). */
static void pid_file_remove(const char *path)
{
	char line[32] = "";
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n > 0 && strtol(line, NULL, 10) == (long)getpid())
		unlink(path);
}

struct options {
	char *config_path;   /* absolute; NULL: DEFAULT_CONFIG */
	char *pid_file;      /* absolute; NULL: none */
	bool foreground;
};

static void options_release(struct options *opts)
{
	free(opts->config_path);
	free(opts->pid_file);
}

/* The value of a file option, made absolute: the agent works from / once in the
 * background, and reads its configuration again on SIGHUP. Returns -1 or an exit status. */
static int path_option(char **out, const char *name, const char *value)
{
	if (!value[0])
		return usage_error("give a file name to", name);
	free(*out);
	*out = absolute_path(value);
	if (!*out) {
		fprintf(stderr, IDENT ": cannot take the path '%s': %s\n", value, strerror(errno));
		return EXIT_FAILURE;
	}
	return -1;
}

/* Returns -1 to go on with opts set, or the exit status (opts released). */
static int parse_options(int argc, char **argv, struct options *opts)
{
	enum { OPTION_PID_FILE = 256 };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "pid-file", required_argument, NULL, OPTION_PID_FILE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, status = -1;
	char bad[3];

	opterr = 0;
	while (status < 0 && (opt = getopt_long(argc, argv, ":c:fhV", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			status = path_option(&opts->config_path, "-c", optarg);
			break;
		case OPTION_PID_FILE:
			status = path_option(&opts->pid_file, "--pid-file", optarg);
			break;
		case 'f':
			opts->foreground = true;
			break;
		case 'h':
			usage(stdout);
			status = EXIT_SUCCESS;
			break;
		case 'V':
			printf(IDENT " %s\n", VAULTFS_VERSION);
			status = EXIT_SUCCESS;
			break;
		case ':':
			status = usage_error("give a value to", argv[optind - 1]);
			break;
		default:
			/* optopt names a bad short option, which may sit inside a group. */
			snprintf(bad, sizeof(bad), "-%c", optopt);
			status = usage_error("unknown option",
					     optopt ? bad : argv[optind - 1]);
			break;
		}
	}
	if (status < 0 && optind != argc)
		status = usage_error("unexpected argument", argv[optind]);
	if (status >= 0)
		options_release(opts);
	return status;
}

static bool same_string(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int keyagent_reload(struct keyagent *agent, char *why, size_t why_len)
{
	struct config fresh;
	struct config_error err;
	struct policy *old;
	int status;

	status = config_read(&fresh, agent->config_path, &err);
	if (status) {
		snprintf(why, why_len, "%s", err.message);
		log_error("policy reload refused, the old policy stays in force: %s", err.message);
		return status;
	}
	/* The socket, keystore, data root and KEK source are the agent's own state: they
	 * change with a restart only. */
	if (!same_string(fresh.socket_path, agent->config.socket_path) ||
	    fresh.socket_group != agent->config.socket_group ||
	    !same_string(fresh.keystore_path, agent->config.keystore_path) ||
	    !same_string(fresh.data_root, agent->config.data_root) ||
	    fresh.kek_source != agent->config.kek_source ||
	    !same_string(fresh.kek_arg, agent->config.kek_arg))
		log_warn("[agent] settings other than lease_ttl changed: they take effect when "
			 "the agent is restarted");
	old = agent->config.policy;
	agent->config.policy = fresh.policy;
	agent->config.lease_ttl = fresh.lease_ttl;
	fresh.policy = old;
	config_release(&fresh);
	log_info("policy reloaded from '%s'", agent->config_path);
	return 0;
}

void keyagent_signal(struct keyagent *agent, int signo)
{
	char why[512];

	switch (signo) {
	case SIGHUP:
		agent_trail_event(agent, "policy-reload-sighup",
				  keyagent_reload(agent, why, sizeof(why)));
		break;
	case SIGCHLD:
		mounts_reap(agent);
		break;
	case SIGTERM:
	case SIGINT:
		log_info("stopping on signal %d: wiping keys", signo);
		agent->stopping = true;
		break;
	default:
		break;
	}
}

/* Fork into the background; the parent exits once the child reports ready (0) or
 * fails (1), so an init script sees startup errors in the exit status and on stderr. */
static int daemonize(int *ready_fd)
{
	int fds[2];
	pid_t pid;
	char ok = 0;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(fds[1]);
		while (read(fds[0], &ok, 1) < 0 && errno == EINTR)
			;
		_exit(ok == 'r' ? EXIT_SUCCESS : EXIT_FAILURE);
	}
	close(fds[0]);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(EXIT_SUCCESS);
	if (chdir("/") < 0)
		return -errno;
	*ready_fd = fds[1];
	return 0;
}

/* Startup done: log to syslog, let go of the terminal, release the waiting parent. */
static void detach(int ready_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	log_init(IDENT, true, LOG_INFO);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	while (write(ready_fd, "r", 1) < 0 && errno == EINTR)
		;
	close(ready_fd);
}

static int signals_open(struct keyagent *agent)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	agent->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return agent->signal_fd < 0 ? -errno : 0;
}

/* The KEK file of kek=keyfile:PATH or kek=credential:NAME. */
static int kek_path(const struct config *config, char *path, size_t len)
{
	const char *dir;
	int n;

	if (config->kek_source == CONFIG_KEK_KEYFILE) {
		n = snprintf(path, len, "%s", config->kek_arg);
	} else {
		dir = secure_getenv("CREDENTIALS_DIRECTORY");
		if (!dir || !*dir) {
			log_error("kek = credential:%s needs $CREDENTIALS_DIRECTORY: start the agent "
				  "from its systemd unit with LoadCredential=%s:FILE", config->kek_arg,
				  config->kek_arg);
			return -ENOENT;
		}
		n = snprintf(path, len, "%s/%s", dir, config->kek_arg);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int unseal_from_file(struct keyagent *agent)
{
	char path[PATH_MAX];
	uint8_t *key;
	int err;

	err = kek_path(&agent->config, path, sizeof(path));
	if (err)
		return err;
	key = secret_alloc(CRYPTO_KEY_LEN);
	if (!key)
		return -ENOMEM;
	err = kek_read_file(path, key);
	if (err == -EPERM)
		log_error("KEK file '%s' must be a regular file owned by the agent's user with "
			  "no group or other permissions: run 'chmod 0600 %s'", path, path);
	else if (err == -EBADMSG || err == -EINVAL)
		log_error("KEK file '%s' holds no key: it must be 32 bytes or 64 hex digits", path);
	else if (err)
		log_error("cannot read KEK file '%s': %s", path, strerror(-err));
	if (err)
		goto out_free;
	err = keystore_unlock_key(agent->keystore, key, &agent->kek);
	if (err == -EKEYREJECTED)
		log_error("the key in '%s' is not the KEK of keystore '%s': give the right key "
			  "file", path, agent->config.keystore_path);
	else if (err == -ENOTSUP)
		log_error("keystore '%s' is sealed by a passphrase, not a key: set 'kek = "
			  "passphrase'", agent->config.keystore_path);
	else if (err)
		log_error("cannot unseal keystore '%s': %s", agent->config.keystore_path,
			  strerror(-err));
out_free:
	secret_free(key);
	return err;
}

int main(int argc, char **argv)
{
	struct keyagent agent = { .listen_fd = -1, .signal_fd = -1 };
	struct config_error config_err;
	struct options opts = { 0 };
	int ready_fd = -1;
	int status, err;

	status = parse_options(argc, argv, &opts);
	if (status >= 0)
		return status;
	agent.config_path = opts.config_path ? opts.config_path : DEFAULT_CONFIG;
	umask(077);
	log_init(IDENT, false, LOG_INFO);
	err = config_read(&agent.config, agent.config_path, &config_err);
	if (err) {
		fprintf(stderr, IDENT ": %s\n", config_err.message);
		goto out_options;
	}
	/* Before any secret exists or LMDB is opened: neither survives a fork well. */
	if (!opts.foreground && (err = daemonize(&ready_fd)) != 0) {
		fprintf(stderr, IDENT ": cannot go into the background: %s\n", strerror(-err));
		goto out_config;
	}
	if ((err = secret_init()) != 0 || (err = secret_harden_process()) != 0) {
		log_error("cannot set up secret memory: %s", strerror(-err));
		goto out_config;
	}
	if ((err = signals_open(&agent)) != 0) {
		log_error("cannot set up signals: %s", strerror(-err));
		goto out_config;
	}
	if (gethostname(agent.host, sizeof(agent.host) - 1) < 0)
		agent.host[0] = '\0';
	err = keystore_open(&agent.keystore, agent.config.keystore_path, true);
	if (err) {
		log_error("cannot open keystore '%s': %s", agent.config.keystore_path,
			  strerror(-err));
		goto out_signals;
	}
	if (agent.config.kek_source != CONFIG_KEK_PASSPHRASE &&
	    (err = unseal_from_file(&agent)) != 0)
		goto out_keystore;
	/* After any fork (the trail has a writer thread), before the first request. */
	if ((err = agent_trail_open(&agent)) != 0)
		goto out_keystore;
	agent_trail_event(&agent, "agent-start", 0);
	if ((err = server_listen(&agent)) != 0)
		goto out_keystore;
	/* Written once the agent answers, by the process that serves: its pid is final. */
	if (opts.pid_file && (err = pid_file_write(opts.pid_file)) != 0) {
		log_error("cannot write pid file '%s': %s", opts.pid_file, strerror(-err));
		goto out_server;
	}
	if (!opts.foreground) {
		detach(ready_fd);
		ready_fd = -1;
	}
	log_info("listening on '%s', %s", agent.config.socket_path,
		 agent.kek ? "unsealed" : "sealed until 'vaultctl unlock'");
	err = server_run(&agent);
	if (err)
		log_error("the poll loop failed: %s", strerror(-err));
	if (opts.pid_file)
		pid_file_remove(opts.pid_file);
out_server:
	server_close(&agent);
out_keystore:
	if (agent.trail) {
		agent_trail_event(&agent, "agent-stop", err);
		if (agent_trail_close(&agent) != 0) {
			log_error("the agent's audit trail could not be written to the end");
			err = err ? err : -EIO;
		}
	}
	leases_clear(&agent.leases);
	kek_free(agent.kek);
	keystore_close(agent.keystore);
out_signals:
	close(agent.signal_fd);
out_config:
	config_release(&agent.config);
	if (ready_fd >= 0)
		close(ready_fd);
out_options:
	options_release(&opts);
	return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
