/*
 * The key agent's client side: one Unix stream connection, requests numbered in order,
 * each answer checked against its request's id. A connection that lost its place in
 * the stream (timeout, malformed or mismatched answer) is not used again.
 */
#include "lib/agent.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Errors travel as -errno; anything outside (-MAX_ERRNO..-1) is not an errno. */
#define AGENT_ERROR_MIN (-4095)

struct agent {
	int fd;
	uint32_t next_id;
	bool broken;
};

int agent_connect(struct agent **out, const char *socket_path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct agent *agent;
	int err;

	*out = NULL;
	if (!socket_path)
		socket_path = secure_getenv("VAULTFS_AGENT_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = AGENT_DEFAULT_SOCKET;
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);

	agent = calloc(1, sizeof(*agent));
	if (!agent)
		return -ENOMEM;
	agent->next_id = 1;
	agent->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (agent->fd < 0) {
		err = -errno;
		goto out_free;
	}
	/* A Unix stream connect either completes or fails at once; an interrupted one
	 * has already been queued, which EISCONN on the retry confirms. */
	while (connect(agent->fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EISCONN)
			break;
		err = -errno;
		goto out_close;
	}
	*out = agent;
	return 0;

out_close:
	close(agent->fd);
out_free:
	free(agent);
	return err;
}

void agent_close(struct agent *agent)
{
	if (!agent)
		return;
	close(agent->fd);
	free(agent);
}

int agent_call(struct agent *agent, const struct protocol_message *request,
	       struct protocol_message *reply)
{
	struct protocol_message numbered;
	uint32_t id;
	int err;

	memset(reply, 0, sizeof(*reply));
	if (agent->broken)
		return -ECONNRESET;
	id = agent->next_id++;
	if (agent->next_id == 0)
		agent->next_id = 1;

	/* A shallow copy that shares the request's secret and keys and owns nothing. */
	numbered = *request;
	numbered.id = id;
	err = protocol_send(agent->fd, &numbered, AGENT_TIMEOUT_MS);
	/* A message that cannot be encoded was never sent: the connection stays good. */
	if (err == -EINVAL || err == -EMSGSIZE)
		return err;
	if (err)
		goto out_broken;
	err = protocol_recv(agent->fd, reply, AGENT_TIMEOUT_MS);
	if (err)
		goto out_broken;
	if (reply->id != id || (reply->type != PROTOCOL_OK && reply->type != PROTOCOL_ERROR)) {
		err = -EBADMSG;
		goto out_release;
	}
	if (reply->type == PROTOCOL_OK)
		return 0;
	/* The decoder bounds it already; checked again because a caller returns it as is. */
	if (reply->error < AGENT_ERROR_MIN || reply->error > -1) {
		err = -EBADMSG;
		goto out_release;
	}
	return reply->error;

out_release:
	protocol_message_release(reply);
out_broken:
	/* Whatever follows in the stream can no longer be matched to a request. */
	agent->broken = true;
	shutdown(agent->fd, SHUT_RDWR);
	return err;
}
