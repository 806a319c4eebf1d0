/*
 * Talking to the key agent, for vaultctl and vaultfs: connect to its socket, send one
 * request, wait for its answer. Errors from the agent come back as -errno with its
 * one-line explanation; "agent down" is -ECONNREFUSED or -ENOENT (no socket).
 */
#ifndef VAULTFS_AGENT_H
#define VAULTFS_AGENT_H

#include "lib/protocol.h"

#define AGENT_DEFAULT_SOCKET "/run/vaultfs/agent.sock"
#define AGENT_TIMEOUT_MS 10000

struct agent;

/* Connect to the agent at socket_path (NULL: $VAULTFS_AGENT_SOCKET, ignored in a setuid
 * process, or the default). The socket is close-on-exec. -ENAMETOOLONG for a path that
 * does not fit a Unix socket address. */
int agent_connect(struct agent **out, const char *socket_path) __attribute__((warn_unused_result));
void agent_close(struct agent *agent);

/*
 * Send request (its id is set here) and receive the answer into reply (released by the
 * caller). Returns 0 when the agent answered PROTOCOL_OK; the agent's -errno when it
 * answered PROTOCOL_ERROR (reply->text holds its message); -errno for transport failures.
 * Requests are numbered 1, 2, ... per connection; an answer with another id or of another
 * type than OK/ERROR is -EBADMSG. -EINVAL or -EMSGSIZE for a request that cannot be
 * encoded (nothing sent); after any other transport or protocol failure reply holds
 * nothing, the connection is unusable and every later call returns -ECONNRESET: close it
 * and connect again.
 */
int agent_call(struct agent *agent, const struct protocol_message *request,
	       struct protocol_message *reply) __attribute__((warn_unused_result));

#endif
