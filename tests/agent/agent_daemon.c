/*
 * The real vault-keyagent, started per test with a temporary configuration, keystore
 * and data root, spoken to over its socket with lib/agent.h: dataset create and list,
 * leases whose keys open the vault, refusals for uids without a role (child processes
 * that setresuid, so SO_PEERCRED says so), renew, revoke, rotate, retire, shred, policy
 * reload over the socket and by SIGHUP, malformed frames, the client limit, the sealed
 * passphrase mode and its back-off, no secret in /proc of the agent or its log, and
 * rekey jobs: refusals, an offline run to DONE, leases refused while one runs, and an
 * online run driven through renewals.
 * Needs root (setresuid, chown of the socket).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyagent/keyagent.h"
#include "lib/agent.h"
#include "lib/audit.h"
#include "lib/bytes.h"
#include "lib/crypto.h"
#include "lib/keysource.h"
#include "lib/meta.h"
#include "lib/object.h"
#include "lib/secret.h"
#include "lib/vault.h"
#include "tests/harness.h"

#define NOBODY_UID 1000      /* no role at all */
#define KEYADMIN_UID 1001    /* key privileges on the datasets, no data grant */
#define SOCKET_GID 1000      /* the socket group; children run with it */
#define PASSPHRASE "correct horse battery staple"
#define WRONG_PASSPHRASE "incorrect horse"
#define NEW_PASSPHRASE "a brand new passphrase"

static char dir[64];
static char socket_path[100];
static char config_path[128];
static char log_path[128];
static char kek_hex[2 * CRYPTO_KEY_LEN + 1];
static pid_t agent_pid = -1;

#define KEYS_ROLE                                                                       \
	"[role keys]\n"                                                                  \
	"users = 1001\n"                                                                 \
	"admin = cardio rotate retire shred\n"                                           \
	"admin = scratch shred\n"                                                        \
	"admin = * kek\n"

static const char base_roles[] =
	"[role data]\n"
	"users = 0\n"
	"grant = cardio rw\n"
	"grant = scratch rw\n"
	"admin = * create revoke reload\n"
	"\n"
	KEYS_ROLE;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

/* The configuration: [agent] for this test's directory, then roles. */
/* Extra [agent] settings of the next write_config (a test sets them). */
static char agent_extra[256];

static void write_config(const char *kek, const char *roles)
{
	FILE *f = fopen(config_path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "[agent]\n"
		"socket = %s\n"
		"socket_group = %d\n"
		"keystore = %s/keystore\n"
		"data_root = %s/vaults\n"
		"kek = %s\n"
		"lease_ttl = 5\n"
		"%s"
		"\n%s", socket_path, SOCKET_GID, dir, dir, kek, agent_extra, roles);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(config_path, 0644), 0);
}

static void write_keyfile_config(const char *roles)
{
	char kek[160];

	snprintf(kek, sizeof(kek), "keyfile:%s/kek", dir);
	write_config(kek, roles);
}

static void setup(void)
{
	uint8_t key[CRYPTO_KEY_LEN];
	char path[128];
	FILE *f;

	ck_assert_int_eq(secret_init(), 0);
	strcpy(dir, "/tmp/agent_daemon.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	path_in(socket_path, sizeof(socket_path), "run/agent.sock");
	path_in(config_path, sizeof(config_path), "keyagent.conf");
	path_in(log_path, sizeof(log_path), "agent.log");
	crypto_random(key, sizeof(key));
	crypto_to_hex(kek_hex, sizeof(kek_hex), key, sizeof(key));
	path_in(path, sizeof(path), "kek");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", kek_hex);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0600), 0);
	write_keyfile_config(base_roles);
	agent_pid = -1;
}

static void stop_agent(void)
{
	int status;

	if (agent_pid <= 0)
		return;
	kill(agent_pid, SIGTERM);
	waitpid(agent_pid, &status, 0);
	agent_pid = -1;
}

static void teardown(void)
{
	char command[256];

	stop_agent();
	agent_extra[0] = '\0';
	/* Sealed trail segments are immutable where the file system allows. */
	snprintf(command, sizeof(command), "chattr -R -i -a %s 2>/dev/null", dir);
	if (system(command) != 0) {
		/* nothing to clear */
	}
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int status_call(struct protocol_message *reply);

/* Start vault-keyagent -f on the test's configuration and wait for its socket. */
static void start_agent(void)
{
	const char *exe = getenv("VAULT_KEYAGENT");
	struct protocol_message reply;

	ck_assert_msg(exe != NULL, "VAULT_KEYAGENT is not set");
	agent_pid = fork();
	ck_assert_int_ge(agent_pid, 0);
	if (agent_pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		/* The agent goes when the test does, failed or not. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (log >= 0)
			dup2(log, STDERR_FILENO);
		execl(exe, exe, "-f", "-c", config_path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int status;

		if (status_call(&reply) == 0) {
			protocol_message_release(&reply);
			return;
		}
		ck_assert_msg(waitpid(agent_pid, &status, WNOHANG) == 0,
			      "the agent exited during startup (see %s)", log_path);
		usleep(10000);
	}
	ck_abort_msg("the agent's socket did not appear");
}

/* One request as the test process (root). */
static int call(int type, const char *name, struct protocol_message *reply)
{
	struct protocol_message request = { .type = type };
	struct agent *agent;
	int err;

	memset(reply, 0, sizeof(*reply));
	if (name)
		snprintf(request.name, sizeof(request.name), "%s", name);
	err = agent_connect(&agent, socket_path);
	if (err)
		return err;
	err = agent_call(agent, &request, reply);
	agent_close(agent);
	return err;
}

static int call_message(const struct protocol_message *request, struct protocol_message *reply)
{
	struct agent *agent;
	int err;

	memset(reply, 0, sizeof(*reply));
	err = agent_connect(&agent, socket_path);
	if (err)
		return err;
	err = agent_call(agent, request, reply);
	agent_close(agent);
	return err;
}

static int status_call(struct protocol_message *reply)
{
	return call(PROTOCOL_STATUS, NULL, reply);
}

static void expect_status(const char *want)
{
	struct protocol_message reply;

	ck_assert_int_eq(status_call(&reply), 0);
	ck_assert_str_eq(reply.text, want);
	protocol_message_release(&reply);
}

/* What a child running as another uid saw. */
struct outcome {
	int err;
	uint32_t version;
	uint32_t mode;
	uint64_t lease_id;
	size_t key_count;
	size_t name_count;
	struct protocol_rekey rekey;
	char text[PROTOCOL_TEXT_MAX + 1];
};

/* One request from a child process with uid (gid SOCKET_GID, no other groups). */
static struct outcome call_as(uid_t uid, const struct protocol_message *request)
{
	struct outcome out = { .err = -EPROTO };
	int fds[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		gid_t gid = SOCKET_GID;
		struct protocol_message reply;

		close(fds[0]);
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(1);
		out.err = call_message(request, &reply);
		out.version = reply.version;
		out.mode = reply.mode;
		out.lease_id = reply.lease_id;
		out.key_count = reply.key_count;
		out.name_count = reply.name_count;
		out.rekey = reply.rekey;
		memcpy(out.text, reply.text, sizeof(out.text));
		protocol_message_release(&reply);
		_exit(write(fds[1], &out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 2);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &out, sizeof(out)), (ssize_t)sizeof(out));
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return out;
}

static struct outcome simple_as(uid_t uid, int type, const char *name)
{
	struct protocol_message request = { .type = type };

	if (name)
		snprintf(request.name, sizeof(request.name), "%s", name);
	return call_as(uid, &request);
}

static struct outcome renew_as(uid_t uid, uint64_t lease_id)
{
	struct protocol_message request = { .type = PROTOCOL_RENEW, .lease_id = lease_id };
	return call_as(uid, &request);
}

static int renew(uint64_t lease_id, struct protocol_message *reply)
{
	struct protocol_message request = { .type = PROTOCOL_RENEW, .lease_id = lease_id };
	return call_message(&request, reply);
}

static void create_dataset(const char *name)
{
	struct protocol_message reply;
	char want[160];

	ck_assert_int_eq(call(PROTOCOL_DATASET_CREATE, name, &reply), 0);
	snprintf(want, sizeof(want), "%s/vaults/%s", dir, name);
	ck_assert_str_eq(reply.path, want);
	protocol_message_release(&reply);
}

/* A lease on dataset name, which must be granted: its id. */
static uint64_t lease(const char *name)
{
	struct protocol_message reply;
	uint64_t id;

	ck_assert_int_eq(call(PROTOCOL_LEASE, name, &reply), 0);
	id = reply.lease_id;
	protocol_message_release(&reply);
	return id;
}

static bool has_version(const struct protocol_message *reply, uint32_t version)
{
	for (size_t i = 0; i < reply->key_count; i++)
		if (reply->keys[i].version == version)
			return true;
	return false;
}

/* The file at path holds needle (as text) anywhere: /proc files and logs. */
static bool file_contains(const char *path, const char *needle)
{
	static char buf[1 << 20];
	size_t len = 0, n_len = strlen(needle);
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	for (size_t i = 0; i + n_len <= len; i++)
		if (memcmp(buf + i, needle, n_len) == 0)
			return true;
	return false;
}

static void expect_no_secret_in_proc(const char *secret)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)agent_pid);
	ck_assert(access(path, R_OK) == 0);
	ck_assert(!file_contains(path, secret));
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)agent_pid);
	ck_assert(!file_contains(path, secret));
}

/* Tests. */

START_TEST(test_create_list_lease)
{
	struct protocol_message reply;
	struct keysource *keys;
	struct meta_inode root = { 0 };
	struct meta_txn *txn;
	struct vault *vault;
	struct outcome o;
	char vault_path[160], key_hex[2 * CRYPTO_KEY_LEN + 1];

	start_agent();
	expect_status("unsealed");
	create_dataset("cardio");
	ck_assert_int_eq(call(PROTOCOL_DATASET_CREATE, "cardio", &reply), -EEXIST);
	protocol_message_release(&reply);
	/* Creating needs the create privilege. */
	o = simple_as(NOBODY_UID, PROTOCOL_DATASET_CREATE, "other");
	ck_assert_int_eq(o.err, -EACCES);
	ck_assert_ptr_nonnull(strstr(o.text, "create"));

	/* Listing: root sees all, a key admin its datasets, a uid without a role none. */
	ck_assert_int_eq(call(PROTOCOL_DATASET_LIST, NULL, &reply), 0);
	ck_assert_uint_eq(reply.name_count, 1);
	ck_assert_str_eq(reply.names[0], "cardio");
	protocol_message_release(&reply);
	o = simple_as(KEYADMIN_UID, PROTOCOL_DATASET_LIST, NULL);
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.name_count, 1);
	o = simple_as(NOBODY_UID, PROTOCOL_DATASET_LIST, NULL);
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.name_count, 0);

	/* A lease with the right role: keys that open the vault. */
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	ck_assert_uint_ne(reply.lease_id, 0);
	ck_assert_uint_eq(reply.ttl, 5);
	ck_assert_uint_eq(reply.version, 1);
	ck_assert_uint_eq(reply.mode, POLICY_RW);
	ck_assert_uint_eq(reply.key_count, 1);
	ck_assert_uint_eq(reply.keys[0].version, 1);
	ck_assert_uint_ge(reply.grants.count, 1);
	ck_assert_uint_eq(reply.grants.grants[0].id, 0);
	snprintf(vault_path, sizeof(vault_path), "%s/vaults/cardio", dir);
	ck_assert_str_eq(reply.path, vault_path);
	ck_assert_int_eq(keysource_memory_new(&keys), 0);
	ck_assert_int_eq(keysource_memory_add(keys, 1, reply.keys[0].key), 0);
	crypto_to_hex(key_hex, sizeof(key_hex), reply.keys[0].key, CRYPTO_KEY_LEN);
	protocol_message_release(&reply);
	ck_assert_int_eq(vault_open(&vault, vault_path, keys, VAULT_OPEN_READ_ONLY), 0);
	ck_assert_int_eq(meta_txn_begin(vault->meta, false, &txn), 0);
	ck_assert_int_eq(meta_inode_get(txn, META_ROOT_INO, &root), 0);
	meta_txn_abort(txn);
	ck_assert_uint_eq(root.mode, S_IFDIR | 01777);
	ck_assert_uint_eq(root.uid, 0);
	meta_inode_release(&root);
	vault_close(vault);
	keysource_free(keys);

	/* No role: refused, and SO_PEERCRED is what says who asked. */
	o = simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio");
	ck_assert_int_eq(o.err, -EACCES);
	ck_assert_str_eq(o.text, "no role grants you dataset 'cardio' now");
	ck_assert_uint_eq(o.key_count, 0);
	/* Key privileges are not a data grant. */
	o = simple_as(KEYADMIN_UID, PROTOCOL_LEASE, "cardio");
	ck_assert_int_eq(o.err, -EACCES);
	ck_assert_int_eq(call(PROTOCOL_LEASE, "nosuch", &reply), -ENOENT);
	protocol_message_release(&reply);

	/* Every request is logged by uid and type; no key is. */
	ck_assert(file_contains(log_path, "uid 1000 pid"));
	ck_assert(file_contains(log_path, "lease 'cardio': Permission denied"));
	ck_assert(!file_contains(log_path, key_hex));
	ck_assert(!file_contains(log_path, kek_hex));
	expect_no_secret_in_proc(kek_hex);
	expect_no_secret_in_proc(key_hex);
}
END_TEST

START_TEST(test_renew_revoke_release)
{
	struct protocol_message reply, request = { 0 };
	uint64_t id, other;
	struct outcome o;

	start_agent();
	create_dataset("cardio");
	id = lease("cardio");
	ck_assert_int_eq(renew(id, &reply), 0);
	ck_assert_uint_eq(reply.ttl, 5);
	ck_assert_uint_eq(reply.key_count, 1);
	ck_assert_uint_ge(reply.grants.count, 1);
	protocol_message_release(&reply);

	/* Another uid cannot renew a lease it does not hold. */
	o = renew_as(NOBODY_UID, id);
	ck_assert_int_eq(o.err, -EACCES);
	ck_assert_int_eq(renew(12345, &reply), -EACCES);
	protocol_message_release(&reply);

	/* Revoking the dataset's leases needs the privilege, then renewal is refused. */
	o = simple_as(NOBODY_UID, PROTOCOL_REVOKE, "cardio");
	ck_assert_int_eq(o.err, -EACCES);
	ck_assert_int_eq(renew(id, &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(call(PROTOCOL_REVOKE, "cardio", &reply), 0);
	ck_assert_str_eq(reply.text, "1 lease of dataset 'cardio' revoked");
	protocol_message_release(&reply);
	ck_assert_int_eq(renew(id, &reply), -EACCES);
	ck_assert_ptr_nonnull(strstr(reply.text, "revoked"));
	protocol_message_release(&reply);

	/* Revoke one lease by id; the other stays. */
	id = lease("cardio");
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	other = reply.lease_id;
	protocol_message_release(&reply);
	request.type = PROTOCOL_REVOKE;
	request.lease_id = id;
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(renew(id, &reply), -EACCES);
	protocol_message_release(&reply);
	ck_assert_int_eq(renew(other, &reply), 0);
	protocol_message_release(&reply);

	/* Release: only by its holder, and the lease is gone. */
	request.type = PROTOCOL_RELEASE;
	request.lease_id = other;
	o = call_as(NOBODY_UID, &request);
	ck_assert_int_eq(o.err, -ENOENT);
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(renew(other, &reply), -EACCES);
	protocol_message_release(&reply);
}
END_TEST

/* A fake object in the vault whose plaintext header names key_version. */
static void write_object(const char *dataset, uint8_t first, uint32_t key_version, char *path,
			 size_t path_len)
{
	struct object_header header = {
		.format_version = OBJECT_FORMAT_VERSION,
		.cipher = CRYPTO_XCHACHA20POLY1305,
		.key_version = key_version,
		.block_size = OBJECT_BLOCK_SIZE,
	};
	uint8_t bytes[OBJECT_HEADER_LEN];
	char rel[VAULT_OBJECT_PATH_LEN];
	int fd;

	header.object_id[0] = first;
	object_header_encode(bytes, &header);
	vault_object_path(rel, header.object_id);
	snprintf(path, path_len, "%s/vaults/%s/objects/%.2s", dir, dataset, rel);
	mkdir(path, 0700);
	snprintf(path, path_len, "%s/vaults/%s/objects/%s", dir, dataset, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bytes, sizeof(bytes)), (ssize_t)sizeof(bytes));
	close(fd);
}

static struct outcome retire_as(uid_t uid, const char *name, uint32_t version)
{
	struct protocol_message request = { .type = PROTOCOL_KEY_RETIRE, .version = version };

	snprintf(request.name, sizeof(request.name), "%s", name);
	return call_as(uid, &request);
}

START_TEST(test_rotate_retire)
{
	struct protocol_message reply;
	char object[256];
	uint64_t id;
	struct outcome o;

	start_agent();
	create_dataset("cardio");
	id = lease("cardio");

	/* Rotation needs the privilege, which root does not have here. */
	ck_assert_int_eq(call(PROTOCOL_KEY_ROTATE, "cardio", &reply), -EACCES);
	protocol_message_release(&reply);
	o = simple_as(KEYADMIN_UID, PROTOCOL_KEY_ROTATE, "cardio");
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.version, 2);

	/* The mount's next renewal brings the new version, the old one still there. */
	ck_assert_int_eq(renew(id, &reply), 0);
	ck_assert_uint_eq(reply.version, 2);
	ck_assert_uint_eq(reply.key_count, 2);
	ck_assert(has_version(&reply, 1) && has_version(&reply, 2));
	protocol_message_release(&reply);

	/* Version 1 seals the vault's metadata: retiring it is refused. */
	o = retire_as(KEYADMIN_UID, "cardio", 1);
	ck_assert_int_eq(o.err, -EBUSY);
	ck_assert_ptr_nonnull(strstr(o.text, "metadata records"));
	/* The newest version cannot be retired either. */
	o = retire_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_int_eq(o.err, -EBUSY);
	o = simple_as(KEYADMIN_UID, PROTOCOL_KEY_ROTATE, "cardio");
	ck_assert_uint_eq(o.version, 3);

	/* An object under version 2 keeps it; once gone, version 2 can be retired. */
	write_object("cardio", 0x42, 2, object, sizeof(object));
	o = retire_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_int_eq(o.err, -EBUSY);
	ck_assert_ptr_nonnull(strstr(o.text, "used by 1 objects and 0 metadata records"));
	ck_assert_int_eq(retire_as(0, "cardio", 2).err, -EACCES);
	ck_assert_int_eq(unlink(object), 0);
	o = retire_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_int_eq(o.err, 0);
	o = retire_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_int_eq(o.err, -ENOENT);

	ck_assert_int_eq(renew(id, &reply), 0);
	ck_assert_uint_eq(reply.version, 3);
	ck_assert_uint_eq(reply.key_count, 2);
	ck_assert(has_version(&reply, 1) && has_version(&reply, 3) && !has_version(&reply, 2));
	protocol_message_release(&reply);
}
END_TEST

START_TEST(test_shred)
{
	struct protocol_message reply;
	uint64_t id;
	struct outcome o;

	start_agent();
	create_dataset("cardio");
	create_dataset("scratch");
	id = lease("scratch");
	ck_assert_int_eq(call(PROTOCOL_KEY_SHRED, "scratch", &reply), -EACCES);
	protocol_message_release(&reply);
	o = simple_as(KEYADMIN_UID, PROTOCOL_KEY_SHRED, "scratch");
	ck_assert_int_eq(o.err, 0);

	/* The mount's renewal: keys gone for good. A new lease: the same. */
	ck_assert_int_eq(renew(id, &reply), -ENOKEY);
	ck_assert_ptr_nonnull(strstr(reply.text, "shredded"));
	protocol_message_release(&reply);
	ck_assert_int_eq(call(PROTOCOL_LEASE, "scratch", &reply), -ENOKEY);
	ck_assert_ptr_nonnull(strstr(reply.text, "shredded"));
	protocol_message_release(&reply);
	/* The name stays taken; the other dataset is untouched. */
	ck_assert_int_eq(call(PROTOCOL_DATASET_CREATE, "scratch", &reply), -EEXIST);
	ck_assert_ptr_nonnull(strstr(reply.text, "shredded"));
	protocol_message_release(&reply);
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	protocol_message_release(&reply);
}
END_TEST

/* Every segment of the trail in trail_dir, concatenated (malloc'd). */
static char *read_trail(const char *trail_dir)
{
	char command[256], *text = NULL;
	size_t len = 0;
	FILE *pipe, *mem;
	char buf[4096];
	size_t n;

	snprintf(command, sizeof(command), "cat %s/seg-*.jsonl", trail_dir);
	pipe = popen(command, "r");
	ck_assert_ptr_nonnull(pipe);
	mem = open_memstream(&text, &len);
	while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
		fwrite(buf, 1, n, mem);
	pclose(pipe);
	fclose(mem);
	return text;
}

/* The record of action by uid with result, in text (NULL when none). */
static const char *find_record(const char *text, const char *action, unsigned uid,
			       const char *result)
{
	char want_action[64], want_uid[32], last_uid[32], want_result[48];

	snprintf(want_action, sizeof(want_action), "\"action\":\"%s\"", action);
	/* Keys are sorted: uid comes last, or before another key. */
	snprintf(want_uid, sizeof(want_uid), "\"uid\":%u,", uid);
	snprintf(last_uid, sizeof(last_uid), "\"uid\":%u}", uid);
	snprintf(want_result, sizeof(want_result), "\"result\":\"%s\"", result);
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (memmem(line, len, want_action, strlen(want_action)) &&
		    (memmem(line, len, want_uid, strlen(want_uid)) ||
		     memmem(line, len, last_uid, strlen(last_uid))) &&
		    memmem(line, len, want_result, strlen(want_result)))
			return line;
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/*
 * With audit_root set the agent keeps its own trail: its start and stop, and every
 * request that changes something or releases keys, refused or not, with who asked.
 */
START_TEST(test_agent_trail)
{
	char trail_dir[160], roles[1024];
	struct protocol_message reply;
	struct audit_verdict verdict;

	snprintf(agent_extra, sizeof(agent_extra), "audit_root = %s/audit\n", dir);
	snprintf(roles, sizeof(roles), "%s", base_roles);
	write_keyfile_config(roles);
	start_agent();
	create_dataset("cardio");
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio").err, -EACCES);
	ck_assert_int_eq(call(PROTOCOL_REVOKE, "cardio", &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(call(PROTOCOL_POLICY_RELOAD, NULL, &reply), 0);
	protocol_message_release(&reply);
	/* Status and listings are not events. */
	ck_assert_int_eq(call(PROTOCOL_DATASET_LIST, NULL, &reply), 0);
	protocol_message_release(&reply);
	stop_agent();

	snprintf(trail_dir, sizeof(trail_dir), "%s/audit/@agent", dir);
	ck_assert_int_eq(audit_verify(trail_dir, &verdict), 0);
	char *text = read_trail(trail_dir);
	ck_assert_ptr_nonnull(find_record(text, "agent-start", 0, "ok"));
	ck_assert_ptr_nonnull(find_record(text, "dataset-create", 0, "ok"));
	ck_assert_ptr_nonnull(find_record(text, "lease", 0, "ok"));
	ck_assert_ptr_nonnull(find_record(text, "lease", NOBODY_UID, "EACCES"));
	ck_assert_ptr_nonnull(find_record(text, "revoke", 0, "ok"));
	const char *reload = find_record(text, "policy-reload", 0, "ok");
	ck_assert_ptr_nonnull(reload);
	ck_assert_ptr_nonnull(strstr(reload, "\"policy_sha256\":\""));
	ck_assert_ptr_nonnull(find_record(text, "agent-stop", 0, "ok"));
	ck_assert_ptr_null(strstr(text, "dataset-list"));
	ck_assert_ptr_null(strstr(text, kek_hex));
	ck_assert_uint_eq(verdict.records, 7);  /* start, create, 2 leases, revoke, reload, stop */
	free(text);
}
END_TEST

static const char grant_nobody[] =
	"\n[role newcomers]\n"
	"users = 1000\n"
	"grant = cardio ro\n";

/* base_roles with root's data grants gone (admin privileges kept). */
static const char roles_without_root_grant[] =
	"[role data]\n"
	"users = 0\n"
	"admin = * create revoke reload\n"
	"\n"
	KEYS_ROLE;

/*
 * A user with a data role (uid 1000, ro after the reload) and one with none (1002)
 * speak the protocol directly: no request, with any fields, brings them key bytes - not
 * a LEASE, not one that names root's lease to claim or renew it.
 */
START_TEST(test_users_never_get_keys)
{
	static const int types[] = {
		PROTOCOL_STATUS, PROTOCOL_DATASET_CREATE, PROTOCOL_DATASET_LIST, PROTOCOL_LEASE,
		PROTOCOL_RENEW, PROTOCOL_RELEASE, PROTOCOL_REVOKE, PROTOCOL_MOUNT,
		PROTOCOL_UNMOUNT, PROTOCOL_KEY_ROTATE, PROTOCOL_KEY_RETIRE, PROTOCOL_KEY_SHRED,
		PROTOCOL_REKEY, PROTOCOL_POLICY_RELOAD,
	};
	static const uid_t users[] = { NOBODY_UID, NOBODY_UID + 2 };
	char roles[1024];
	struct protocol_message reply;
	uint64_t id;

	start_agent();
	create_dataset("cardio");
	snprintf(roles, sizeof(roles), "%s%s", base_roles, grant_nobody);
	write_keyfile_config(roles);
	ck_assert_int_eq(call(PROTOCOL_POLICY_RELOAD, NULL, &reply), 0);
	protocol_message_release(&reply);
	id = lease("cardio");
	for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
		for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
			for (int with_id = 0; with_id <= 1; with_id++) {
				struct protocol_message request = { .type = types[t] };
				struct outcome o;

				snprintf(request.name, sizeof(request.name), "cardio");
				snprintf(request.path, sizeof(request.path), "/");
				request.version = 1;
				if (with_id || types[t] == PROTOCOL_RENEW ||
				    types[t] == PROTOCOL_RELEASE)
					request.lease_id = id;
				if (types[t] == PROTOCOL_REVOKE)
					request.name[0] = '\0';
				o = call_as(users[u], &request);
				ck_assert_msg(o.key_count == 0, "uid %u got %zu keys from %s",
					      (unsigned)users[u], o.key_count,
					      protocol_type_name((uint32_t)types[t]));
				ck_assert_msg(o.err != 0 || types[t] == PROTOCOL_STATUS ||
					      types[t] == PROTOCOL_DATASET_LIST,
					      "uid %u: %s succeeded", (unsigned)users[u],
					      protocol_type_name((uint32_t)types[t]));
			}
		}
	}
	/* root's lease is untouched by all that. */
	ck_assert_int_eq(renew(id, &reply), 0);
	ck_assert_uint_eq(reply.key_count, 1);
	protocol_message_release(&reply);
}
END_TEST

START_TEST(test_policy_reload)
{
	char roles[1024], text[160];
	struct protocol_message reply;
	struct outcome o;
	uint64_t id;

	start_agent();
	create_dataset("cardio");
	ck_assert_int_eq(simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio").err, -EACCES);
	id = lease("cardio");

	/* A new role takes effect at the reload: uid 1000 is then told to mount through
	 * the agent (EPERM) rather than that it has no role (EACCES); keys it never gets. */
	snprintf(roles, sizeof(roles), "%s%s", base_roles, grant_nobody);
	write_keyfile_config(roles);
	ck_assert_int_eq(simple_as(NOBODY_UID, PROTOCOL_POLICY_RELOAD, NULL).err, -EACCES);
	ck_assert_int_eq(simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio").err, -EACCES);
	ck_assert_int_eq(call(PROTOCOL_POLICY_RELOAD, NULL, &reply), 0);
	protocol_message_release(&reply);
	o = simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio");
	ck_assert_int_eq(o.err, -EPERM);
	ck_assert_uint_eq(o.key_count, 0);
	ck_assert_ptr_nonnull(strstr(o.text, "vaultctl mount cardio"));

	/* A bad file is refused with its line, and the old policy stays: [agent] takes
	 * lines 1-8, base_roles 9-19, grant_nobody 20-23, the broken role 24-26. */
	snprintf(roles, sizeof(roles), "%s%s[role broken]\nusers = 1000\ngrant = cardio rx\n",
		 base_roles, grant_nobody);
	write_keyfile_config(roles);
	ck_assert_int_eq(call(PROTOCOL_POLICY_RELOAD, NULL, &reply), -EINVAL);
	snprintf(text, sizeof(text), "%s:26:", config_path);
	ck_assert_msg(strstr(reply.text, text) != NULL, "got '%s'", reply.text);
	protocol_message_release(&reply);
	ck_assert_int_eq(renew(id, &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio").err, -EPERM);

	/* Separation of duties: a key admin with a data grant on the same dataset. */
	snprintf(roles, sizeof(roles), "%s%s[role greedy]\nusers = 1001\ngrant = cardio ro\n",
		 base_roles, grant_nobody);
	write_keyfile_config(roles);
	ck_assert_int_ne(call(PROTOCOL_POLICY_RELOAD, NULL, &reply), 0);
	ck_assert_ptr_nonnull(strstr(reply.text, config_path));
	protocol_message_release(&reply);
	ck_assert_int_eq(simple_as(KEYADMIN_UID, PROTOCOL_LEASE, "cardio").err, -EACCES);

	/* Removing the holder's grant: its next renewal is refused. */
	write_keyfile_config(roles_without_root_grant);
	ck_assert_int_eq(call(PROTOCOL_POLICY_RELOAD, NULL, &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(renew(id, &reply), -EACCES);
	ck_assert_ptr_nonnull(strstr(reply.text, "no role grants you dataset 'cardio'"));
	protocol_message_release(&reply);
	ck_assert(kill(agent_pid, 0) == 0);
}
END_TEST

/* Wait up to about two seconds for a lease as uid to give want. */
static bool lease_becomes(uid_t uid, int want)
{
	for (int i = 0; i < 40; i++) {
		if (simple_as(uid, PROTOCOL_LEASE, "cardio").err == want)
			return true;
		usleep(50000);
	}
	return false;
}

START_TEST(test_sighup_reload)
{
	char roles[1024];

	start_agent();
	create_dataset("cardio");
	snprintf(roles, sizeof(roles), "%s%s", base_roles, grant_nobody);
	write_keyfile_config(roles);
	ck_assert_int_eq(kill(agent_pid, SIGHUP), 0);
	ck_assert(lease_becomes(NOBODY_UID, -EPERM));

	/* A bad file: logged with its line, the old policy stays, the agent runs on. */
	write_keyfile_config("[role broken\n");
	ck_assert_int_eq(kill(agent_pid, SIGHUP), 0);
	usleep(300000);
	ck_assert(kill(agent_pid, 0) == 0);
	ck_assert_int_eq(simple_as(NOBODY_UID, PROTOCOL_LEASE, "cardio").err, -EPERM);
	ck_assert(file_contains(log_path, "policy reload refused"));

	write_keyfile_config(base_roles);
	ck_assert_int_eq(kill(agent_pid, SIGHUP), 0);
	ck_assert(lease_becomes(NOBODY_UID, -EACCES));
}
END_TEST

static int raw_connect(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	return fd;
}

/* The agent closes fd within a second (read gives end of stream or a reset). */
static void expect_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char byte;

	ck_assert_int_eq(poll(&p, 1, 1000), 1);
	ck_assert_int_le(read(fd, &byte, 1), 0);
	close(fd);
}

/* A normal request still succeeds, promptly. */
static void expect_prompt_status(void)
{
	struct timespec start, end;

	clock_gettime(CLOCK_MONOTONIC, &start);
	expect_status("unsealed");
	clock_gettime(CLOCK_MONOTONIC, &end);
	ck_assert_int_lt((end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000,
			 500);
	ck_assert(kill(agent_pid, 0) == 0);
}

/* In a child as uid: KEYAGENT_CLIENTS_PER_UID_MAX idle connections are kept, one more
 * is closed at once. Returns 0 when so. */
static int per_uid_limit_as(uid_t uid)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		struct pollfd p = { .events = POLLIN };
		int fds[KEYAGENT_CLIENTS_PER_UID_MAX + 1];
		gid_t gid = SOCKET_GID;
		char byte;

		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(1);
		snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
		for (int i = 0; i <= KEYAGENT_CLIENTS_PER_UID_MAX; i++) {
			fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
			if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&addr, sizeof(addr)) < 0)
				_exit(2);
			usleep(20000);
		}
		p.fd = fds[KEYAGENT_CLIENTS_PER_UID_MAX];
		if (poll(&p, 1, 1000) != 1 || read(p.fd, &byte, 1) > 0)
			_exit(3);
		p.fd = fds[0];
		if (poll(&p, 1, 200) != 0)
			_exit(4);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_malformed_frames)
{
	uint8_t frame[64];
	int fd, idle[KEYAGENT_CLIENTS_MAX];

	start_agent();

	/* Garbage: a plausible length, then a body that is no message. */
	fd = raw_connect();
	put_le32(frame, 16);
	for (int i = 4; i < 20; i++)
		frame[i] = (uint8_t)(0xa5 ^ i);
	ck_assert_int_eq(write(fd, frame, 20), 20);
	expect_closed(fd);
	expect_prompt_status();

	/* A valid head with an unknown field tag. */
	fd = raw_connect();
	put_le32(frame, 14);
	put_le16(frame + 4, PROTOCOL_VERSION);
	put_le16(frame + 6, PROTOCOL_STATUS);
	put_le32(frame + 8, 1);
	put_le16(frame + 12, 999);
	put_le32(frame + 14, 0);
	ck_assert_int_eq(write(fd, frame, 18), 18);
	expect_closed(fd);
	expect_prompt_status();

	/* Oversize and zero lengths: closed before any body is read. */
	fd = raw_connect();
	put_le32(frame, 0xffffffffu);
	ck_assert_int_eq(write(fd, frame, 4), 4);
	expect_closed(fd);
	fd = raw_connect();
	put_le32(frame, PROTOCOL_FRAME_MAX + 1);
	ck_assert_int_eq(write(fd, frame, 4), 4);
	expect_closed(fd);
	fd = raw_connect();
	put_le32(frame, 0);
	ck_assert_int_eq(write(fd, frame, 4), 4);
	expect_closed(fd);
	expect_prompt_status();

	/* Half a frame, then silence: the others are served meanwhile. */
	fd = raw_connect();
	put_le32(frame, 100);
	ck_assert_int_eq(write(fd, frame, 10), 10);
	expect_prompt_status();
	expect_prompt_status();
	close(fd);

	/* Idle connections up to the limit: one more is turned away, not queued forever;
	 * once they go, requests are answered again. */
	for (int i = 0; i < KEYAGENT_CLIENTS_MAX; i++)
		idle[i] = raw_connect();
	expect_closed(raw_connect());
	for (int i = 0; i < KEYAGENT_CLIENTS_MAX; i++)
		close(idle[i]);
	usleep(100000);
	expect_prompt_status();
	ck_assert(file_contains(log_path, "malformed frame"));

	/* One uid other than root cannot take every slot. */
	ck_assert_int_eq(per_uid_limit_as(NOBODY_UID), 0);
	expect_prompt_status();
}
END_TEST

START_TEST(test_passphrase)
{
	struct protocol_message reply, request = { .type = PROTOCOL_UNLOCK };
	struct timespec start, end;
	char roles[1024];
	struct outcome o;

	snprintf(roles, sizeof(roles), "%s", base_roles);
	write_config("passphrase", roles);
	start_agent();
	/* A new keystore: sealed, and the status says no passphrase is set yet. */
	expect_status("new");
	ck_assert_int_eq(call(PROTOCOL_DATASET_CREATE, "cardio", &reply), -ENOKEY);
	ck_assert_str_eq(reply.text, "the agent is sealed: run 'vaultctl unlock'");
	protocol_message_release(&reply);

	/* Only root sets the passphrase of a new keystore up. */
	request.secret = secret_alloc(sizeof(PASSPHRASE) - 1);
	ck_assert_ptr_nonnull(request.secret);
	memcpy(request.secret, PASSPHRASE, sizeof(PASSPHRASE) - 1);
	request.secret_len = sizeof(PASSPHRASE) - 1;
	o = call_as(NOBODY_UID, &request);
	ck_assert_int_eq(o.err, -EPERM);
	expect_status("new");
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);
	expect_status("unsealed");
	create_dataset("cardio");
	expect_no_secret_in_proc(PASSPHRASE);

	/* Restarted: sealed again; a wrong passphrase, then a pause before the next try. */
	stop_agent();
	start_agent();
	expect_status("sealed");
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), -ENOKEY);
	protocol_message_release(&reply);
	memcpy(request.secret, WRONG_PASSPHRASE, sizeof(WRONG_PASSPHRASE) - 1);
	request.secret_len = sizeof(WRONG_PASSPHRASE) - 1;
	ck_assert_int_eq(call_message(&request, &reply), -EKEYREJECTED);
	protocol_message_release(&reply);
	clock_gettime(CLOCK_MONOTONIC, &start);
	memcpy(request.secret, PASSPHRASE, sizeof(PASSPHRASE) - 1);
	request.secret_len = sizeof(PASSPHRASE) - 1;
	ck_assert_int_eq(call_message(&request, &reply), -EAGAIN);
	ck_assert_ptr_nonnull(strstr(reply.text, "try again in a moment"));
	protocol_message_release(&reply);
	expect_status("sealed");
	sleep(2);
	ck_assert_int_eq(call_message(&request, &reply), 0);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ck_assert_int_ge(end.tv_sec - start.tv_sec, 2);
	protocol_message_release(&reply);
	expect_status("unsealed");
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	protocol_message_release(&reply);

	/* KEK rotation (key admin only): afterwards only the new passphrase unlocks. */
	secret_free(request.secret);
	request.type = PROTOCOL_KEK_ROTATE;
	request.secret = secret_alloc(sizeof(NEW_PASSPHRASE) - 1);
	ck_assert_ptr_nonnull(request.secret);
	memcpy(request.secret, NEW_PASSPHRASE, sizeof(NEW_PASSPHRASE) - 1);
	request.secret_len = sizeof(NEW_PASSPHRASE) - 1;
	ck_assert_int_eq(call_message(&request, &reply), -EACCES);
	protocol_message_release(&reply);
	ck_assert_int_eq(call_as(KEYADMIN_UID, &request).err, 0);
	stop_agent();
	start_agent();
	request.type = PROTOCOL_UNLOCK;
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	protocol_message_release(&reply);
	expect_no_secret_in_proc(PASSPHRASE);
	expect_no_secret_in_proc(NEW_PASSPHRASE);
	ck_assert(!file_contains(log_path, PASSPHRASE));
	ck_assert(!file_contains(log_path, NEW_PASSPHRASE));
	secret_free(request.secret);
}
END_TEST

START_TEST(test_keyfile_kek_rotate_refused)
{
	struct protocol_message request = { .type = PROTOCOL_KEK_ROTATE };

	start_agent();
	request.secret = secret_alloc(8);
	ck_assert_ptr_nonnull(request.secret);
	memcpy(request.secret, "whatever", 8);
	request.secret_len = 8;
	ck_assert_int_eq(call_as(KEYADMIN_UID, &request).err, -EOPNOTSUPP);
	request.type = PROTOCOL_UNLOCK;
	ck_assert_int_eq(call_as(0, &request).err, -EINVAL);
	secret_free(request.secret);
}
END_TEST

/* Run the agent to its exit; its stderr into the log. Returns the exit status. */
static int run_agent_to_exit(bool foreground)
{
	const char *exe = getenv("VAULT_KEYAGENT");
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (log >= 0)
			dup2(log, STDERR_FILENO);
		if (foreground)
			execl(exe, exe, "-f", "-c", config_path, (char *)NULL);
		else
			execl(exe, exe, "-c", config_path, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_startup_refusals)
{
	char path[128], kek[160];
	FILE *f;

	/* A configuration error: FILE:LINE: problem, exit 1. */
	write_keyfile_config("[role broken]\nusers = 0\ngrant = cardio maybe\n");
	ck_assert_int_eq(run_agent_to_exit(true), 1);
	snprintf(kek, sizeof(kek), "%s:11:", config_path);
	ck_assert(file_contains(log_path, kek));

	/* The keystore remembers its KEK: another key file is refused with a clear word. */
	write_keyfile_config(base_roles);
	start_agent();
	stop_agent();
	path_in(path, sizeof(path), "kek2");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%064d\n", 7);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0600), 0);
	snprintf(kek, sizeof(kek), "keyfile:%s", path);
	write_config(kek, base_roles);
	ck_assert_int_eq(run_agent_to_exit(true), 1);
	ck_assert(file_contains(log_path, "is not the KEK of keystore"));

	/* A key file others can read is refused. */
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(run_agent_to_exit(true), 1);
	ck_assert(file_contains(log_path, "chmod 0600"));
}
END_TEST

START_TEST(test_daemon_mode)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct stat st;
	int fd;

	/* Without -f: the parent returns once the socket is up, with the modes it should
	 * have; the daemon is found through the socket and stopped with SIGTERM. */
	ck_assert_int_eq(run_agent_to_exit(false), 0);
	ck_assert_int_eq(stat(socket_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_gid, SOCKET_GID);
	path_in(addr.sun_path, sizeof(addr.sun_path), "run");
	ck_assert_int_eq(stat(addr.sun_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	ck_assert_uint_eq(st.st_gid, SOCKET_GID);
	fd = raw_connect();
	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
	close(fd);
	expect_status("unsealed");
	ck_assert_int_eq(kill(cred.pid, SIGTERM), 0);
	for (int i = 0; i < 200 && kill(cred.pid, 0) == 0; i++)
		usleep(10000);
	ck_assert_int_ne(kill(cred.pid, 0), 0);
	ck_assert_int_eq(access(socket_path, F_OK), -1);
}
END_TEST

/* Rekey. */

static struct outcome rekey_as(uid_t uid, const char *name, uint32_t version)
{
	struct protocol_message request = { .type = PROTOCOL_REKEY, .version = version };

	snprintf(request.name, sizeof(request.name), "%s", name);
	return call_as(uid, &request);
}

/* Follow the run to version as vaultctl does until it ends (bounded: a hung run fails
 * the test rather than the suite's timeout). */
static struct outcome rekey_wait(uid_t uid, const char *name, uint32_t version)
{
	struct outcome o = { .err = -ETIMEDOUT };

	for (int i = 0; i < 1200; i++) {
		o = rekey_as(uid, name, version);
		ck_assert_int_eq(o.err, 0);
		ck_assert_uint_eq(o.rekey.version, version);
		if (o.rekey.state == PROTOCOL_REKEY_DONE || o.rekey.state == PROTOCOL_REKEY_FAILED)
			return o;
		usleep(25000);
	}
	ck_abort_msg("the rekey of '%s' did not end", name);
	return o;
}

static const char rotator_role[] =
	"\n[role rotator]\n"
	"users = 1002\n"
	"admin = * rotate\n";

START_TEST(test_rekey_refusals)
{
	char roles[1024];
	struct outcome o;

	snprintf(roles, sizeof(roles), "%s%s", base_roles, rotator_role);
	write_keyfile_config(roles);
	start_agent();
	create_dataset("cardio");
	/* The rotate privilege on the dataset: a data role is not it. */
	o = rekey_as(NOBODY_UID, "cardio", 0);
	ck_assert_int_eq(o.err, -EACCES);
	ck_assert_ptr_nonnull(strstr(o.text, "'rotate' privilege on dataset 'cardio'"));
	ck_assert_int_eq(rekey_as(0, "cardio", 0).err, -EACCES);
	ck_assert_int_eq(rekey_as(NOBODY_UID, "cardio", 1).err, -EACCES);
	/* An unknown dataset, for one who may rekey any. */
	o = rekey_as(1002, "nosuch", 0);
	ck_assert_int_eq(o.err, -ENOENT);
	ck_assert_ptr_nonnull(strstr(o.text, "no dataset 'nosuch'"));
	/* Asking about a run that never started starts nothing. */
	o = rekey_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_int_eq(o.err, -ENOENT);
	ck_assert_ptr_nonnull(strstr(o.text, "vaultctl rekey cardio"));
	o = rekey_as(KEYADMIN_UID, "cardio", 1);
	ck_assert_int_eq(o.err, -ENOENT);
	ck_assert_uint_eq(o.rekey.state, 0);
}
END_TEST

START_TEST(test_rekey_offline)
{
	struct protocol_message reply;
	struct keysource *keys;
	struct vault *vault;
	char vault_path[160];
	struct outcome o;

	start_agent();
	create_dataset("cardio");
	ck_assert_uint_eq(simple_as(KEYADMIN_UID, PROTOCOL_KEY_ROTATE, "cardio").version, 2);
	/* Not mounted: the agent does it. */
	o = rekey_as(KEYADMIN_UID, "cardio", 0);
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.rekey.version, 2);
	ck_assert_str_eq(o.text, "offline");
	o = rekey_wait(KEYADMIN_UID, "cardio", 2);
	ck_assert_msg(o.rekey.state == PROTOCOL_REKEY_DONE, "rekey ended in state %u: %s",
		      (unsigned)o.rekey.state, o.text);
	ck_assert_uint_gt(o.rekey.done, 0);   /* the root directory's records at least */
	ck_assert_uint_eq(o.rekey.done, o.rekey.total);
	ck_assert(file_contains(log_path, "rekey to key version 2 started offline"));
	ck_assert(file_contains(log_path, "rekey to key version 2 done"));

	/* What a user relies on: version 1 can go, and the vault opens without it. */
	o = retire_as(KEYADMIN_UID, "cardio", 1);
	ck_assert_msg(o.err == 0, "retire refused: %s", o.text);
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	ck_assert_uint_eq(reply.key_count, 1);
	ck_assert_uint_eq(reply.keys[0].version, 2);
	ck_assert_int_eq(keysource_memory_new(&keys), 0);
	ck_assert_int_eq(keysource_memory_add(keys, 2, reply.keys[0].key), 0);
	protocol_message_release(&reply);
	snprintf(vault_path, sizeof(vault_path), "%s/vaults/cardio", dir);
	ck_assert_int_eq(vault_open(&vault, vault_path, keys, VAULT_OPEN_READ_ONLY), 0);
	vault_close(vault);
	keysource_free(keys);
}
END_TEST

START_TEST(test_rekey_offline_refuses_leases)
{
	struct protocol_message reply, request = { .type = PROTOCOL_RELEASE };
	struct keysource *keys;
	struct meta_txn *txn;
	struct vault *vault;
	char vault_path[160];
	struct outcome o;

	start_agent();
	create_dataset("cardio");
	ck_assert_uint_eq(simple_as(KEYADMIN_UID, PROTOCOL_KEY_ROTATE, "cardio").version, 2);
	/* The keys, through a lease given back at once: nothing is mounted. */
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	ck_assert_int_eq(keysource_memory_new(&keys), 0);
	for (size_t i = 0; i < reply.key_count; i++)
		ck_assert_int_eq(keysource_memory_add(keys, reply.keys[i].version,
						      reply.keys[i].key), 0);
	request.lease_id = reply.lease_id;
	protocol_message_release(&reply);
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);

	/* Holding the vault's metadata write lock holds the worker where it opens the
	 * vault: the run is in progress for as long as this test wants. */
	snprintf(vault_path, sizeof(vault_path), "%s/vaults/cardio", dir);
	ck_assert_int_eq(vault_open(&vault, vault_path, keys, 0), 0);
	ck_assert_int_eq(meta_txn_begin(vault->meta, true, &txn), 0);
	o = rekey_as(KEYADMIN_UID, "cardio", 0);
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_RUNNING);
	ck_assert_str_eq(o.text, "offline");
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), -EBUSY);
	ck_assert_msg(strstr(reply.text, "being rekeyed offline") &&
		      strstr(reply.text, "vaultctl rekey cardio"), "got '%s'", reply.text);
	protocol_message_release(&reply);
	/* A second request attaches to the run in progress rather than starting another. */
	o = rekey_as(KEYADMIN_UID, "cardio", 0);
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_RUNNING);
	o = rekey_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_RUNNING);

	meta_txn_abort(txn);
	vault_close(vault);
	keysource_free(keys);
	o = rekey_wait(KEYADMIN_UID, "cardio", 2);
	/* Whatever the end, the worker let go: leases are given again. */
	ck_assert_int_eq(call(PROTOCOL_LEASE, "cardio", &reply), 0);
	protocol_message_release(&reply);
}
END_TEST

static int renew_rekey(uint64_t lease_id, uint32_t version, uint32_t state, uint64_t done,
		       uint64_t total, struct protocol_message *reply)
{
	struct protocol_message request = {
		.type = PROTOCOL_RENEW, .lease_id = lease_id,
		.rekey = { .version = version, .state = state, .done = done, .total = total },
	};
	return call_message(&request, reply);
}

START_TEST(test_rekey_online)
{
	struct protocol_message reply, request = { .type = PROTOCOL_RELEASE };
	char want[64];
	uint64_t id;
	struct outcome o;

	start_agent();
	create_dataset("cardio");
	id = lease("cardio");
	ck_assert_uint_eq(simple_as(KEYADMIN_UID, PROTOCOL_KEY_ROTATE, "cardio").version, 2);

	/* Mounted (a live lease): the mount is asked, through its next renewal. */
	o = rekey_as(KEYADMIN_UID, "cardio", 0);
	ck_assert_int_eq(o.err, 0);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_REQUESTED);
	ck_assert_uint_eq(o.rekey.version, 2);
	snprintf(want, sizeof(want), "online (mounted by pid %d)", (int)getpid());
	ck_assert_str_eq(o.text, want);
	ck_assert_int_eq(renew(id, &reply), 0);
	ck_assert_uint_eq(reply.rekey.state, PROTOCOL_REKEY_REQUESTED);
	ck_assert_uint_eq(reply.rekey.version, 2);
	ck_assert_uint_eq(reply.rekey.done, 0);
	protocol_message_release(&reply);
	/* Leases are not refused for an online run. */
	request.lease_id = lease("cardio");
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);

	/* The daemon reports: the request stops, the counts show. */
	ck_assert_int_eq(renew_rekey(id, 2, PROTOCOL_REKEY_RUNNING, 1, 4, &reply), 0);
	ck_assert_uint_eq(reply.rekey.state, 0);
	protocol_message_release(&reply);
	o = rekey_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_RUNNING);
	ck_assert_uint_eq(o.rekey.done, 1);
	ck_assert_uint_eq(o.rekey.total, 4);
	/* Following it again attaches. */
	o = rekey_as(KEYADMIN_UID, "cardio", 0);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_RUNNING);
	ck_assert_int_eq(renew_rekey(id, 2, PROTOCOL_REKEY_DONE, 4, 4, &reply), 0);
	protocol_message_release(&reply);
	o = rekey_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_DONE);
	ck_assert_uint_eq(o.rekey.done, 4);

	/* A new run; the mount goes away before it is done: FAILED, and says why. */
	o = rekey_as(KEYADMIN_UID, "cardio", 0);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_REQUESTED);
	request.lease_id = id;
	ck_assert_int_eq(call_message(&request, &reply), 0);
	protocol_message_release(&reply);
	o = rekey_as(KEYADMIN_UID, "cardio", 2);
	ck_assert_uint_eq(o.rekey.state, PROTOCOL_REKEY_FAILED);
	ck_assert_ptr_nonnull(strstr(o.text, "the mount went away"));
	ck_assert(file_contains(log_path, "rekey to key version 2 started online"));
	ck_assert(file_contains(log_path, "rekey to key version 2 failed"));
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("agent");
	TCase *tc = tcase_create("agent");

	if (geteuid() != 0) {
		fprintf(stderr, "agent_daemon: needs root (setresuid, socket ownership)\n");
		return 77;
	}
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_create_list_lease);
	tcase_add_test(tc, test_renew_revoke_release);
	tcase_add_test(tc, test_rotate_retire);
	tcase_add_test(tc, test_shred);
	tcase_add_test(tc, test_policy_reload);
	tcase_add_test(tc, test_users_never_get_keys);
	tcase_add_test(tc, test_agent_trail);
	tcase_add_test(tc, test_sighup_reload);
	tcase_add_test(tc, test_malformed_frames);
	tcase_add_test(tc, test_passphrase);
	tcase_add_test(tc, test_keyfile_kek_rotate_refused);
	tcase_add_test(tc, test_startup_refusals);
	tcase_add_test(tc, test_daemon_mode);
	tcase_add_test(tc, test_rekey_refusals);
	tcase_add_test(tc, test_rekey_offline);
	tcase_add_test(tc, test_rekey_offline_refuses_leases);
	tcase_add_test(tc, test_rekey_online);
	suite_add_tcase(suite, tc);
	return harness_run(suite);
}
