/*
 * Unit tests of lib/agent: connecting (explicit path, $VAULTFS_AGENT_SOCKET, no socket,
 * nobody listening), request ids, OK and ERROR answers, and every way an agent can answer
 * wrongly (another id, a request type, an oversize or cut-off frame, a hang-up), against
 * a tiny agent in a thread of the test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/agent.h"
#include "lib/bytes.h"
#include "lib/secret.h"
#include "tests/harness.h"

/* How the test agent answers each request. */
enum behaviour {
	ANSWER_OK,           /* OK, text "unsealed", the request's id */
	ANSWER_ERROR,        /* ERROR -EACCES with a message */
	ANSWER_WRONG_ID,     /* OK with the id after the request's */
	ANSWER_WRONG_TYPE,   /* a STATUS request instead of an answer */
	ANSWER_CUT,          /* half a frame, then hang up */
	ANSWER_OVERSIZE,     /* a length prefix over PROTOCOL_FRAME_MAX */
	ANSWER_NOTHING,      /* hang up */
};

#define MAX_REQUESTS 8

struct server {
	char dir[64];
	char path[128];
	int listen_fd;
	enum behaviour behaviour;
	pthread_t thread;
	size_t request_count;
	uint32_t ids[MAX_REQUESTS];
	enum protocol_type types[MAX_REQUESTS];
	char names[MAX_REQUESTS][POLICY_NAME_MAX + 1];
};

static struct server server;

static int answer(int fd, const struct protocol_message *request)
{
	struct protocol_message reply = { .type = PROTOCOL_OK, .id = request->id };
	uint8_t raw[4 + 10] = { 0 };

	switch (server.behaviour) {
	case ANSWER_OK:
		strcpy(reply.text, "unsealed");
		break;
	case ANSWER_ERROR:
		reply.type = PROTOCOL_ERROR;
		reply.error = -EACCES;
		strcpy(reply.text, "no role grants 'cardio' to uid 1000: ask an admin");
		break;
	case ANSWER_WRONG_ID:
		reply.id = request->id + 1;
		break;
	case ANSWER_WRONG_TYPE:
		reply.type = PROTOCOL_STATUS;
		break;
	case ANSWER_CUT:
		put_le32(raw, 30);
		put_le16(raw + 4, PROTOCOL_VERSION);
		put_le16(raw + 6, PROTOCOL_OK);
		put_le32(raw + 8, request->id);
		if (write(fd, raw, sizeof(raw)) < 0)
			return -1;
		return -1;   /* hang up mid-frame */
	case ANSWER_OVERSIZE:
		put_le32(raw, PROTOCOL_FRAME_MAX + 1);
		return write(fd, raw, 4) == 4 ? 0 : -1;
	case ANSWER_NOTHING:
		return -1;
	}
	return protocol_send(fd, &reply, 5000);
}

/* One connection at a time, requests until the client goes or an answer ends it. */
static void *serve(void *arg)
{
	for (;;) {
		int fd = accept4(server.listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return NULL;   /* the listening socket was shut down */
		for (;;) {
			struct protocol_message request;

			if (protocol_recv(fd, &request, 5000) != 0)
				break;
			if (server.request_count < MAX_REQUESTS) {
				server.ids[server.request_count] = request.id;
				server.types[server.request_count] = request.type;
				strcpy(server.names[server.request_count], request.name);
				server.request_count++;
			}
			if (answer(fd, &request) != 0) {
				protocol_message_release(&request);
				break;
			}
			protocol_message_release(&request);
		}
		close(fd);
	}
}

static void server_start(enum behaviour behaviour)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	server.behaviour = behaviour;
	strcpy(server.path, server.dir);
	strcat(server.path, "/agent.sock");
	strcpy(addr.sun_path, server.path);
	server.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(server.listen_fd, 0);
	ck_assert_int_eq(bind(server.listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(server.listen_fd, 4), 0);
	ck_assert_int_eq(pthread_create(&server.thread, NULL, serve, NULL), 0);
}

static void server_stop(void)
{
	shutdown(server.listen_fd, SHUT_RDWR);
	pthread_join(server.thread, NULL);
	close(server.listen_fd);
	unlink(server.path);
}

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
	memset(&server, 0, sizeof(server));
	strcpy(server.dir, "/tmp/check_agent.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(server.dir));
	unsetenv("VAULTFS_AGENT_SOCKET");
}

static void teardown(void)
{
	char path[128];

	strcpy(path, server.dir);
	strcat(path, "/agent.sock");
	unlink(path);
	rmdir(server.dir);
}

static const struct protocol_message status_request = { .type = PROTOCOL_STATUS };

START_TEST(test_call_ok_ids_increase)
{
	struct protocol_message request = { .type = PROTOCOL_KEY_SHRED, .id = 999 };
	struct protocol_message reply;
	struct agent *agent;

	server_start(ANSWER_OK);
	ck_assert_int_eq(agent_connect(&agent, server.path), 0);
	strcpy(request.name, "cardio");
	for (uint32_t i = 1; i <= 3; i++) {
		ck_assert_int_eq(agent_call(agent, i == 2 ? &request : &status_request, &reply), 0);
		ck_assert_int_eq(reply.type, PROTOCOL_OK);
		ck_assert_uint_eq(reply.id, i);
		ck_assert_str_eq(reply.text, "unsealed");
		protocol_message_release(&reply);
	}
	agent_close(agent);
	server_stop();
	/* The agent numbers requests itself, whatever id the caller left in them. */
	ck_assert_uint_eq(server.request_count, 3);
	ck_assert_uint_eq(server.ids[0], 1);
	ck_assert_uint_eq(server.ids[1], 2);
	ck_assert_uint_eq(server.ids[2], 3);
	ck_assert_int_eq(server.types[1], PROTOCOL_KEY_SHRED);
	ck_assert_str_eq(server.names[1], "cardio");
	ck_assert_uint_eq(request.id, 999);
}
END_TEST

START_TEST(test_call_error)
{
	struct protocol_message reply;
	struct agent *agent;

	server_start(ANSWER_ERROR);
	ck_assert_int_eq(agent_connect(&agent, server.path), 0);
	ck_assert_int_eq(agent_call(agent, &status_request, &reply), -EACCES);
	ck_assert_int_eq(reply.type, PROTOCOL_ERROR);
	ck_assert_str_eq(reply.text, "no role grants 'cardio' to uid 1000: ask an admin");
	protocol_message_release(&reply);
	/* An error answer is an answer: the connection goes on. */
	ck_assert_int_eq(agent_call(agent, &status_request, &reply), -EACCES);
	protocol_message_release(&reply);
	agent_close(agent);
	server_stop();
	ck_assert_uint_eq(server.request_count, 2);
}
END_TEST

/* A wrong answer fails the call, and the connection is not trusted again. */
static void assert_bad_answer(enum behaviour behaviour, int expected)
{
	struct protocol_message reply;
	struct agent *agent;

	server_start(behaviour);
	ck_assert_int_eq(agent_connect(&agent, server.path), 0);
	ck_assert_int_eq(agent_call(agent, &status_request, &reply), expected);
	ck_assert_int_eq(reply.type, 0);
	ck_assert_ptr_null(reply.keys);
	ck_assert_int_eq(agent_call(agent, &status_request, &reply), -ECONNRESET);
	agent_close(agent);
	server_stop();
	ck_assert_uint_eq(server.request_count, 1);
}

START_TEST(test_wrong_id)
{
	assert_bad_answer(ANSWER_WRONG_ID, -EBADMSG);
}
END_TEST

START_TEST(test_wrong_type)
{
	assert_bad_answer(ANSWER_WRONG_TYPE, -EBADMSG);
}
END_TEST

START_TEST(test_cut_mid_frame)
{
	assert_bad_answer(ANSWER_CUT, -ECONNRESET);
}
END_TEST

START_TEST(test_oversize_answer)
{
	assert_bad_answer(ANSWER_OVERSIZE, -EBADMSG);
}
END_TEST

START_TEST(test_hang_up)
{
	assert_bad_answer(ANSWER_NOTHING, -ECONNRESET);
}
END_TEST

START_TEST(test_invalid_request_not_sent)
{
	struct protocol_message bad = { .type = PROTOCOL_DATASET_CREATE };
	struct protocol_message reply;
	struct agent *agent;

	server_start(ANSWER_OK);
	ck_assert_int_eq(agent_connect(&agent, server.path), 0);
	strcpy(bad.name, "no/such/name");
	ck_assert_int_eq(agent_call(agent, &bad, &reply), -EINVAL);
	ck_assert_int_eq(agent_call(agent, &status_request, &reply), 0);
	protocol_message_release(&reply);
	agent_close(agent);
	server_stop();
	ck_assert_uint_eq(server.request_count, 1);
	ck_assert_int_eq(server.types[0], PROTOCOL_STATUS);
}
END_TEST

START_TEST(test_connect_from_environment)
{
	struct protocol_message reply;
	struct agent *agent;

	server_start(ANSWER_OK);
	ck_assert_int_eq(setenv("VAULTFS_AGENT_SOCKET", server.path, 1), 0);
	ck_assert_int_eq(agent_connect(&agent, NULL), 0);
	ck_assert_int_eq(agent_call(agent, &status_request, &reply), 0);
	protocol_message_release(&reply);
	agent_close(agent);
	/* An explicit path wins over the environment. */
	ck_assert_int_eq(setenv("VAULTFS_AGENT_SOCKET", "/nonexistent/agent.sock", 1), 0);
	ck_assert_int_eq(agent_connect(&agent, server.path), 0);
	agent_close(agent);
	ck_assert_int_eq(agent_connect(&agent, NULL), -ENOENT);
	ck_assert_ptr_null(agent);
	server_stop();
	ck_assert_uint_eq(server.request_count, 1);
}
END_TEST

START_TEST(test_agent_down)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char long_path[200];
	struct agent *agent;
	int fd;

	strcpy(server.path, server.dir);
	strcat(server.path, "/agent.sock");
	ck_assert_int_eq(agent_connect(&agent, server.path), -ENOENT);
	ck_assert_ptr_null(agent);
	/* A socket left behind by an agent that is gone. */
	strcpy(addr.sun_path, server.path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
	ck_assert_int_eq(agent_connect(&agent, server.path), -ECONNREFUSED);
	unlink(server.path);
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	ck_assert_int_eq(agent_connect(&agent, long_path), -ENAMETOOLONG);
}
END_TEST

/* The connection does not leak into programs the client runs. */
START_TEST(test_close_on_exec)
{
	struct agent *agent;
	bool found = false;

	server_start(ANSWER_OK);
	ck_assert_int_eq(agent_connect(&agent, server.path), 0);
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_un peer;
		socklen_t len = sizeof(peer);

		if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0 || peer.sun_family != AF_UNIX)
			continue;
		if (strcmp(peer.sun_path, server.path) != 0)
			continue;
		found = true;
		ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	}
	ck_assert(found);
	agent_close(agent);
	server_stop();
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("agent");
	TCase *tc = tcase_create("agent");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_call_ok_ids_increase);
	tcase_add_test(tc, test_call_error);
	tcase_add_test(tc, test_wrong_id);
	tcase_add_test(tc, test_wrong_type);
	tcase_add_test(tc, test_cut_mid_frame);
	tcase_add_test(tc, test_oversize_answer);
	tcase_add_test(tc, test_hang_up);
	tcase_add_test(tc, test_invalid_request_not_sent);
	tcase_add_test(tc, test_connect_from_environment);
	tcase_add_test(tc, test_agent_down);
	tcase_add_test(tc, test_close_on_exec);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
