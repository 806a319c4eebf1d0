/*
 * vault-keyagent: the key agent of one host. Reads keyagent.conf, opens the keystore,
 * unseals it from a key file or systemd credential (or waits, sealed, for 'vaultctl
 * unlock'), then answers requests on its Unix socket in one thread until SIGTERM.
 * SIGHUP reloads the policy; a bad file leaves the old one in force.
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

#define DEFAULT_CONFIG "/etc/vaultfs/keyagent.conf"
#define IDENT "vault-keyagent"

static void usage(FILE *out)
{
	fprintf(out, "usage: " IDENT " [-f] [-c FILE]\n"
		"  -c FILE  configuration (default " DEFAULT_CONFIG ")\n"
		"  -f       stay in the foreground and log to stderr\n");
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
		(void)keyagent_reload(agent, why, sizeof(why));
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
	int ready_fd = -1;
	bool foreground = false;
	int opt, err;

	agent.config_path = DEFAULT_CONFIG;
	while ((opt = getopt(argc, argv, "c:fh")) != -1) {
		switch (opt) {
		case 'c':
			agent.config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_FAILURE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_FAILURE;
	}
	umask(077);
	log_init(IDENT, false, LOG_INFO);
	if (config_read(&agent.config, agent.config_path, &config_err) != 0) {
		fprintf(stderr, IDENT ": %s\n", config_err.message);
		return EXIT_FAILURE;
	}
	/* Before any secret exists or LMDB is opened: neither survives a fork well. */
	if (!foreground && (err = daemonize(&ready_fd)) != 0) {
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
	if ((err = server_listen(&agent)) != 0)
		goto out_keystore;
	if (!foreground) {
		detach(ready_fd);
		ready_fd = -1;
	}
	log_info("listening on '%s', %s", agent.config.socket_path,
		 agent.kek ? "unsealed" : "sealed until 'vaultctl unlock'");
	err = server_run(&agent);
	if (err)
		log_error("the poll loop failed: %s", strerror(-err));
	server_close(&agent);
out_keystore:
	leases_clear(&agent.leases);
	kek_free(agent.kek);
	keystore_close(agent.keystore);
out_signals:
	close(agent.signal_fd);
out_config:
	config_release(&agent.config);
	if (ready_fd >= 0)
		close(ready_fd);
	return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
