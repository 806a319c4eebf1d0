/*
 * The agent's socket and its clients: a listening Unix socket, at most
 * KEYAGENT_CLIENTS_MAX connections, each read without blocking into its own buffer and
 * decoded only once a whole frame is in, so a slow or silent client never holds up the
 * others. A malformed frame closes its connection (logged by peer, never by content).
 */
#include "keyagent/keyagent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/bytes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/secret.h"

#define LENGTH_PREFIX_LEN 4
#define FRAME_TIMEOUT_MS 10000     /* a frame begun must be complete within this */
#define FRAMES_PER_WAKEUP 16       /* then the others get their turn */
#define LISTEN_BACKLOG 64
#define GROUPS_MAX 65536
#define POLL_INTERVAL_MS 1000
#define FIXED_FDS 3                /* signals, listening socket, rekey wake-ups */
#define MOUNT_FDS_MAX 64           /* daemons starting at once that are watched */

struct client {
	int fd;
	struct peer peer;
	uint8_t prefix[LENGTH_PREFIX_LEN];
	size_t prefix_got;
	uint8_t *body;             /* secret memory: a frame may carry a passphrase */
	uint32_t body_len;
	size_t body_got;
	struct timespec last_active;   /* CLOCK_MONOTONIC */
	struct timespec frame_started;
};

static long long ms_since(const struct timespec *then)
{
	return clock_ms_since(CLOCK_MONOTONIC, then);
}

/* Socket and directory. */

static int chown_to_group(const char *path, gid_t group)
{
	/* root:group when the agent runs as root; a test or development agent running as
	 * another user can only hand the socket to a group it is a member of. */
	uid_t owner = geteuid() == 0 ? 0 : (uid_t)-1;

	if (owner == (uid_t)-1 && group == getegid())
		return 0;
	return chown(path, owner, group) < 0 ? -errno : 0;
}

static int make_socket_dir(const char *socket_path, gid_t group)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	struct stat st;
	int err;

	snprintf(dir, sizeof(dir), "%s", socket_path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			log_error("'%s' is not a directory: fix 'socket' in the configuration", dir);
			return -ENOTDIR;
		}
		if (st.st_mode & S_IWOTH)
			log_warn("the socket directory '%s' is writable by every user: "
				 "run 'chmod 0750 %s'", dir, dir);
		return 0;
	}
	if (errno != ENOENT || mkdir(dir, 0750) < 0) {
		err = -errno;
		log_error("cannot make the socket directory '%s': %s", dir, strerror(-err));
		return err;
	}
	err = chown_to_group(dir, group);
	if (!err && chmod(dir, 0750) < 0)
		err = -errno;
	if (err)
		log_error("cannot give the socket directory '%s' to its group: %s", dir,
			  strerror(-err));
	return err;
}

/* A socket file left by an agent that died: unlink it; one somebody listens on: refuse. */
static int clear_stale_socket(const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, err = 0;

	if (lstat(addr->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("'%s' exists and is not a socket: move it away or fix 'socket'",
			  addr->sun_path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0) {
		log_error("another agent is listening on '%s': stop it first", addr->sun_path);
		err = -EADDRINUSE;
	} else if (unlink(addr->sun_path) < 0) {
		err = -errno;
	}
	close(fd);
	return err;
}

int server_listen(struct keyagent *agent)
{
	const char *path = agent->config.socket_path;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old_umask;
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		log_error("socket path '%s' is too long: choose a shorter 'socket'", path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	err = make_socket_dir(path, agent->config.socket_group);
	if (err)
		return err;
	err = clear_stale_socket(&addr);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Born without group or other access; opened up to 0660 once its group is right. */
	old_umask = umask(0177);
	err = bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0 ? -errno : 0;
	umask(old_umask);
	if (err) {
		log_error("cannot bind '%s': %s", path, strerror(-err));
		goto out_close;
	}
	err = chown_to_group(path, agent->config.socket_group);
	if (!err && chmod(path, 0660) < 0)
		err = -errno;
	if (!err && listen(fd, LISTEN_BACKLOG) < 0)
		err = -errno;
	if (err) {
		log_error("cannot set up the socket '%s': %s", path, strerror(-err));
		unlink(path);
		goto out_close;
	}
	/* Offline rekey workers say "finished" through this. */
	agent->rekey_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (agent->rekey_wake_fd < 0) {
		err = -errno;
		log_error("cannot make an eventfd: %s", strerror(-err));
		unlink(path);
		goto out_close;
	}
	agent->listen_fd = fd;
	return 0;

out_close:
	close(fd);
	return err;
}

/* Clients. */

int server_groups_of(uid_t uid, gid_t **out, size_t *out_count)
{
	char buffer[16384];
	struct passwd pw, *found = NULL;
	int count = 32;

	*out = NULL;
	*out_count = 0;
	if (getpwuid_r(uid, &pw, buffer, sizeof(buffer), &found) != 0 || !found)
		return 0;
	for (;;) {
		gid_t *groups = malloc((size_t)count * sizeof(*groups));
		int got = count;

		if (!groups)
			return -ENOMEM;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &got) >= 0) {
			*out = groups;
			*out_count = (size_t)got;
			return 0;
		}
		free(groups);
		if (got <= count || got > GROUPS_MAX)
			return -E2BIG;
		count = got;
	}
}

/* The supplementary groups of the peer's passwd entry; none when it has no entry. */
static int peer_groups(struct peer *peer)
{
	return server_groups_of(peer->uid, &peer->groups, &peer->group_count);
}

static void client_free(struct client *client)
{
	if (!client)
		return;
	if (client->fd >= 0)
		close(client->fd);
	secret_free(client->body);
	free(client->peer.groups);
	free(client);
}

static void close_client(struct keyagent *agent, size_t i)
{
	mounts_forget_client(agent, agent->clients[i]);
	client_free(agent->clients[i]);
	agent->clients[i] = NULL;
}

static size_t clients_of(const struct keyagent *agent, uid_t uid)
{
	size_t n = 0;

	for (size_t i = 0; i < KEYAGENT_CLIENTS_MAX; i++)
		if (agent->clients[i] && agent->clients[i]->peer.uid == uid)
			n++;
	return n;
}

static void accept_one(struct keyagent *agent)
{
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	struct client *client;
	size_t slot;
	int fd, err;

	fd = accept4(agent->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept: %s", strerror(errno));
		return;
	}
	/* The kernel's word on who connected: the only identity the agent believes. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 ||
	    cred_len != sizeof(cred)) {
		log_warn("a connection without peer credentials was closed");
		close(fd);
		return;
	}
	for (slot = 0; slot < KEYAGENT_CLIENTS_MAX && agent->clients[slot]; slot++)
		;
	/* The last slots are root's: mount daemons renew their leases as root, and users
	 * holding connections open must never starve them. */
	if (slot == KEYAGENT_CLIENTS_MAX ||
	    (cred.uid != 0 && (agent->client_count >= KEYAGENT_CLIENTS_MAX -
					    KEYAGENT_CLIENTS_RESERVED ||
			       clients_of(agent, cred.uid) >= KEYAGENT_CLIENTS_PER_UID_MAX))) {
		log_warn("too many connections: closed one from uid %u pid %d", (unsigned)cred.uid,
			 (int)cred.pid);
		close(fd);
		return;
	}
	client = calloc(1, sizeof(*client));
	if (!client) {
		close(fd);
		return;
	}
	client->fd = fd;
	client->peer.uid = cred.uid;
	client->peer.gid = cred.gid;
	client->peer.pid = cred.pid;
	err = peer_groups(&client->peer);
	if (err) {
		log_warn("cannot list the groups of uid %u: %s: connection closed",
			 (unsigned)cred.uid, strerror(-err));
		client_free(client);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &client->last_active);
	agent->clients[slot] = client;
	agent->client_count++;
}

static int send_reply(struct client *client, struct protocol_message *reply)
{
	int err = protocol_send(client->fd, reply, KEYAGENT_SEND_TIMEOUT_MS);

	/* An answer that cannot be encoded (too many grants or datasets) becomes an error
	 * answer rather than silence. */
	if (err == -EINVAL || err == -EMSGSIZE) {
		struct protocol_message failure = {
			.type = PROTOCOL_ERROR,
			.id = reply->id,
			.error = -EMSGSIZE,
		};
		log_error("an answer to uid %u could not be encoded: %s",
			  (unsigned)client->peer.uid, strerror(-err));
		snprintf(failure.text, sizeof(failure.text),
			 "the answer is too large for the protocol: see the agent's log");
		err = protocol_send(client->fd, &failure, KEYAGENT_SEND_TIMEOUT_MS);
	}
	return err;
}

/* One whole frame is in: decode, answer, forget. */
static int client_frame(struct keyagent *agent, struct client *client)
{
	struct protocol_message request, reply = { 0 };
	int err;

	err = protocol_decode(&request, client->body, client->body_len);
	secret_free(client->body);
	client->body = NULL;
	client->body_got = 0;
	client->prefix_got = 0;
	if (err) {
		if (err == -EBADMSG)
			log_warn("malformed frame from uid %u pid %d: connection closed",
				 (unsigned)client->peer.uid, (int)client->peer.pid);
		return err;
	}
	err = requests_handle(agent, client, &client->peer, &request, &reply);
	reply.id = request.id;
	protocol_message_release(&request);
	if (err == -EINPROGRESS) {
		/* Answered later (mounts.c), through server_answer. */
		protocol_message_release(&reply);
		return 0;
	}
	err = send_reply(client, &reply);
	protocol_message_release(&reply);
	if (err)
		log_info("the answer to uid %u pid %d was not taken (%s): connection closed",
			 (unsigned)client->peer.uid, (int)client->peer.pid, strerror(-err));
	return err;
}

void server_answer(struct keyagent *agent, struct client *client,
		   struct protocol_message *reply)
{
	int err = send_reply(client, reply);

	protocol_message_release(reply);
	if (!err)
		return;
	log_info("the answer to uid %u pid %d was not taken (%s): connection closed",
		 (unsigned)client->peer.uid, (int)client->peer.pid, strerror(-err));
	for (size_t i = 0; i < KEYAGENT_CLIENTS_MAX; i++) {
		if (agent->clients[i] == client) {
			close_client(agent, i);
			agent->client_count--;
		}
	}
}

/* Read what is there without blocking. Returns 0 to keep the client, -errno to close it. */
static int client_readable(struct keyagent *agent, struct client *client)
{
	for (int frames = 0; frames < FRAMES_PER_WAKEUP;) {
		uint8_t *dst;
		size_t want;
		ssize_t n;

		if (client->prefix_got < LENGTH_PREFIX_LEN) {
			dst = client->prefix + client->prefix_got;
			want = LENGTH_PREFIX_LEN - client->prefix_got;
		} else {
			dst = client->body + client->body_got;
			want = client->body_len - client->body_got;
		}
		n = recv(client->fd, dst, want, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		clock_gettime(CLOCK_MONOTONIC, &client->last_active);
		if (client->prefix_got < LENGTH_PREFIX_LEN) {
			if (client->prefix_got == 0)
				client->frame_started = client->last_active;
			client->prefix_got += (size_t)n;
			if (client->prefix_got < LENGTH_PREFIX_LEN)
				continue;
			client->body_len = get_le32(client->prefix);
			/* Refused before a byte of the body is read or allocated. */
			if (client->body_len == 0 || client->body_len > PROTOCOL_FRAME_MAX) {
				log_warn("malformed frame (length %u) from uid %u pid %d: "
					 "connection closed", (unsigned)client->body_len,
					 (unsigned)client->peer.uid, (int)client->peer.pid);
				return -EBADMSG;
			}
			client->body = secret_alloc(client->body_len);
			if (!client->body)
				return -ENOMEM;
			client->body_got = 0;
			continue;
		}
		client->body_got += (size_t)n;
		if (client->body_got < client->body_len)
			continue;
		int err = client_frame(agent, client);
		if (err)
			return err;
		frames++;
	}
	return 0;
}

/* Close clients silent too long, or stuck in the middle of a frame. */
static void sweep_clients(struct keyagent *agent)
{
	for (size_t i = 0; i < KEYAGENT_CLIENTS_MAX; i++) {
		struct client *client = agent->clients[i];

		if (!client)
			continue;
		if (ms_since(&client->last_active) >= KEYAGENT_IDLE_MS) {
			log_debug("idle connection of uid %u closed", (unsigned)client->peer.uid);
		} else if (client->prefix_got > 0 && ms_since(&client->frame_started) >= FRAME_TIMEOUT_MS) {
			log_warn("incomplete frame from uid %u pid %d for %d s: connection closed",
				 (unsigned)client->peer.uid, (int)client->peer.pid,
				 FRAME_TIMEOUT_MS / 1000);
		} else {
			continue;
		}
		close_client(agent, i);
		agent->client_count--;
	}
}

static void read_signals(struct keyagent *agent)
{
	struct signalfd_siginfo info;

	while (read(agent->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info))
		keyagent_signal(agent, (int)info.ssi_signo);
}

int server_run(struct keyagent *agent)
{
	struct pollfd fds[FIXED_FDS + KEYAGENT_CLIENTS_MAX + MOUNT_FDS_MAX];
	struct client *polled[KEYAGENT_CLIENTS_MAX];

	while (!agent->stopping) {
		nfds_t n = FIXED_FDS, clients_end;
		int ready;

		fds[0] = (struct pollfd){ .fd = agent->signal_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = agent->listen_fd, .events = POLLIN };
		fds[2] = (struct pollfd){ .fd = agent->rekey_wake_fd, .events = POLLIN };
		for (size_t i = 0; i < KEYAGENT_CLIENTS_MAX; i++) {
			if (!agent->clients[i])
				continue;
			polled[n - FIXED_FDS] = agent->clients[i];
			fds[n++] = (struct pollfd){ .fd = agent->clients[i]->fd, .events = POLLIN };
		}
		clients_end = n;
		n += mounts_poll_fds(agent, fds + n, MOUNT_FDS_MAX);
		ready = poll(fds, n, POLL_INTERVAL_MS);
		if (ready < 0 && errno != EINTR)
			return -errno;
		if (ready > 0) {
			if (fds[0].revents & POLLIN)
				read_signals(agent);
			if (agent->stopping)
				break;
			for (nfds_t k = clients_end; k < n; k++)
				if (fds[k].revents)
					mounts_output(agent, fds[k].fd);
			for (nfds_t k = FIXED_FDS; k < clients_end; k++) {
				size_t i;

				if (!fds[k].revents)
					continue;
				for (i = 0; i < KEYAGENT_CLIENTS_MAX &&
				     agent->clients[i] != polled[k - FIXED_FDS]; i++)
					;
				if (i == KEYAGENT_CLIENTS_MAX)
					continue;
				if (client_readable(agent, agent->clients[i]) != 0) {
					close_client(agent, i);
					agent->client_count--;
				}
			}
			if (fds[1].revents & POLLIN)
				accept_one(agent);
		}
		sweep_clients(agent);
		leases_expire(&agent->leases);
		/* Finished workers, and online runs whose mount went away. */
		rekey_jobs_check(agent);
		mounts_check(agent);
	}
	return 0;
}

void server_close(struct keyagent *agent)
{
	/* Running offline workers are told to stop and joined before anything goes. */
	rekey_jobs_clear(agent);
	mounts_clear(agent);
	if (agent->rekey_wake_fd >= 0) {
		close(agent->rekey_wake_fd);
		agent->rekey_wake_fd = -1;
	}
	for (size_t i = 0; i < KEYAGENT_CLIENTS_MAX; i++)
		if (agent->clients[i])
			close_client(agent, i);
	agent->client_count = 0;
	if (agent->listen_fd >= 0) {
		close(agent->listen_fd);
		agent->listen_fd = -1;
		if (agent->config.socket_path)
			unlink(agent->config.socket_path);
	}
}
