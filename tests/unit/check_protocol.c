/*
 * Unit tests of lib/protocol: known-answer frames written by hand from the tag table,
 * round trips of every message type, every class of malformed frame, secrets in secret
 * memory and gone after release, whole-frame socket I/O (oversize, truncation, EOF,
 * deadlines, EINTR, a vanished peer), and a replay of the fuzz corpus plus 200k seeded
 * mutations of valid frames. PROTOCOL_WRITE_CORPUS=DIR writes the fuzz seeds instead.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/bytes.h"
#include "lib/protocol.h"
#include "lib/secret.h"
#include "tests/harness.h"

#define CORPUS_DIR TEST_DATA_DIR "/fuzz/corpus"
#define MUTATION_ROUNDS 200000

/* Tags as the protocol defines them (lib/protocol.c); repeated here on purpose so that
 * a renumbering there breaks these tests. */
enum {
	TAG_ERROR = 1, TAG_NAME = 2, TAG_TEXT = 3, TAG_PATH = 4, TAG_LEASE_ID = 5, TAG_TTL = 6,
	TAG_VERSION = 7, TAG_MODE = 8, TAG_SECRET = 9, TAG_KEY = 10, TAG_DATASET = 11,
	TAG_GRANT = 12, TAG_REKEY = 13, TAG_HOLDER = 14, TAG_LEASE = 15,
};

static const enum protocol_type all_types[] = {
	PROTOCOL_OK, PROTOCOL_ERROR, PROTOCOL_UNLOCK, PROTOCOL_STATUS, PROTOCOL_DATASET_CREATE,
	PROTOCOL_DATASET_LIST, PROTOCOL_LEASE, PROTOCOL_RENEW, PROTOCOL_RELEASE, PROTOCOL_REVOKE,
	PROTOCOL_KEY_ROTATE, PROTOCOL_KEY_RETIRE, PROTOCOL_KEY_SHRED, PROTOCOL_KEK_ROTATE,
	PROTOCOL_POLICY_RELOAD, PROTOCOL_REKEY, PROTOCOL_MOUNT, PROTOCOL_UNMOUNT,
	PROTOCOL_LEASE_LIST,
};
#define TYPE_COUNT (sizeof(all_types) / sizeof(all_types[0]))

static void setup(void)
{
	ck_assert_int_eq(secret_init(), 0);
}

/* Sample messages. */

static void set_secret(struct protocol_message *m, const void *bytes, size_t len)
{
	m->secret = secret_alloc(len);
	ck_assert_ptr_nonnull(m->secret);
	memcpy(m->secret, bytes, len);
	m->secret_len = len;
}

static void add_keys(struct protocol_message *m, size_t count, uint32_t first_version)
{
	m->keys = calloc(count, sizeof(*m->keys));
	ck_assert_ptr_nonnull(m->keys);
	for (size_t i = 0; i < count; i++) {
		m->keys[i].version = first_version + (uint32_t)i;
		m->keys[i].key = secret_alloc(CRYPTO_KEY_LEN);
		ck_assert_ptr_nonnull(m->keys[i].key);
		for (int b = 0; b < CRYPTO_KEY_LEN; b++)
			m->keys[i].key[b] = (uint8_t)(0xa0 + i + b);
		m->key_count++;
	}
}

static void add_names(struct protocol_message *m, size_t count)
{
	m->names = calloc(count, sizeof(*m->names));
	ck_assert_ptr_nonnull(m->names);
	for (size_t i = 0; i < count; i++) {
		char name[POLICY_NAME_MAX + 1];
		snprintf(name, sizeof(name), "dataset-%zu.v_%zu", i, i * 7);
		m->names[i] = strdup(name);
		ck_assert_ptr_nonnull(m->names[i]);
		m->name_count++;
	}
}

static void add_grants(struct protocol_message *m)
{
	struct policy_grant *g;

	m->grants.grants = calloc(3, sizeof(*m->grants.grants));
	ck_assert_ptr_nonnull(m->grants.grants);
	m->grants.count = 3;
	g = &m->grants.grants[0];
	*g = (struct policy_grant){ .is_group = false, .id = 1000, .mode = POLICY_RW,
				    .rule_count = 2 };
	g->rules = calloc(2, sizeof(*g->rules));
	ck_assert_ptr_nonnull(g->rules);
	strcpy(g->rules[0].glob, "features/**");
	g->rules[0].mode = POLICY_RO;
	strcpy(g->rules[1].glob, "checkpoints/*.pt");
	g->rules[1].mode = POLICY_RW;
	g = &m->grants.grants[1];
	*g = (struct policy_grant){ .is_group = true, .id = 4242, .mode = POLICY_RO };
	g = &m->grants.grants[2];
	*g = (struct policy_grant){ .is_group = false, .id = UINT32_MAX - 1, .mode = POLICY_RW,
				    .rule_count = 1 };
	g->rules = calloc(1, sizeof(*g->rules));
	ck_assert_ptr_nonnull(g->rules);
	memset(g->rules[0].glob, 'g', POLICY_GLOB_MAX);
	g->rules[0].mode = POLICY_NONE;
}

static void add_leases(struct protocol_message *m)
{
	m->leases = calloc(2, sizeof(*m->leases));
	ck_assert_ptr_nonnull(m->leases);
	m->lease_count = 2;
	m->leases[0] = (struct protocol_lease){ .id = 0x0102030405060708ULL, .uid = 2001,
						.pid = 4242, .seconds_left = 29,
						.flags = PROTOCOL_LEASE_STARTED,
						.dataset = "cardio",
						.mountpoint = "/home/alice/mnt/cardio" };
	m->leases[1] = (struct protocol_lease){ .id = UINT64_MAX, .uid = 0, .pid = 1,
						.flags = PROTOCOL_LEASE_REVOKED };
	memset(m->leases[1].dataset, 'd', POLICY_NAME_MAX);
}

/* Every field type carries (full) or only its required ones (minimal). */
static void sample_message(struct protocol_message *m, enum protocol_type type, bool full)
{
	static const uint8_t passphrase[] = "correct horse\0battery \xff staple";

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->id = full ? 0xdeadbeef : 0;
	switch (type) {
	case PROTOCOL_OK:
		if (!full)
			break;
		strcpy(m->text, "unsealed");
		strcpy(m->path, "/var/lib/vaultfs/vaults/cardio");
		m->lease_id = 0x1122334455667788ULL;
		m->ttl = 30;
		m->version = 3;
		m->mode = POLICY_RW;
		add_keys(m, 3, 1);
		add_names(m, 4);
		add_grants(m);
		add_leases(m);
		m->rekey = (struct protocol_rekey){ .version = 3, .state = PROTOCOL_REKEY_RUNNING,
						    .done = 5, .total = UINT64_MAX };
		break;
	case PROTOCOL_ERROR:
		m->error = -EACCES;
		if (full)
			strcpy(m->text, "no role grants 'cardio' to uid 1000: ask an admin");
		break;
	case PROTOCOL_UNLOCK:
	case PROTOCOL_KEK_ROTATE:
		set_secret(m, passphrase, full ? sizeof(passphrase) - 1 : 1);
		break;
	case PROTOCOL_DATASET_CREATE:
	case PROTOCOL_KEY_ROTATE:
	case PROTOCOL_KEY_SHRED:
		strcpy(m->name, full ? "cardio_2026-11.v2" : "c");
		break;
	case PROTOCOL_LEASE:
		strcpy(m->name, "cardio");
		if (full) {
			strcpy(m->text, "gpu-07.example.org");
			m->lease_id = 0x0102030405060708ULL;
		}
		break;
	case PROTOCOL_MOUNT:
		strcpy(m->name, "cardio");
		strcpy(m->path, full ? "/home/alice/mnt/cardio data" : "m");
		m->mode = full ? POLICY_RO : POLICY_NONE;
		if (full)
			strcpy(m->text, MOUNT_SHARED);
		break;
	case PROTOCOL_UNMOUNT:
		strcpy(m->path, full ? "/home/alice/mnt/cardio data" : "m");
		break;
	case PROTOCOL_LEASE_LIST:
		if (full)
			strcpy(m->name, "cardio");
		break;
	case PROTOCOL_RENEW:
		if (full) {
			m->rekey = (struct protocol_rekey){ .version = 2,
							    .state = PROTOCOL_REKEY_DONE,
							    .done = 7, .total = 7 };
			strcpy(m->name, "cardio");
			strcpy(m->path, "/home/alice/mnt");
			m->holder_uid = 2001;
			m->holder_gid = 0;
		}
		/* fall through */
	case PROTOCOL_RELEASE:
		m->lease_id = full ? UINT64_MAX : 0;
		break;
	case PROTOCOL_REKEY:
		strcpy(m->name, full ? "cardio" : "c");
		m->version = full ? 4 : 0;
		break;
	case PROTOCOL_REVOKE:
		if (full)
			strcpy(m->name, "cardio");
		else
			m->lease_id = 77;
		break;
	case PROTOCOL_KEY_RETIRE:
		strcpy(m->name, "cardio");
		m->version = full ? 12 : 0;
		break;
	case PROTOCOL_STATUS:
	case PROTOCOL_DATASET_LIST:
	case PROTOCOL_POLICY_RELOAD:
		break;
	}
}

static void assert_messages_equal(const struct protocol_message *a, const struct protocol_message *b)
{
	ck_assert_int_eq(a->type, b->type);
	ck_assert_uint_eq(a->id, b->id);
	ck_assert_int_eq(a->error, b->error);
	ck_assert_str_eq(a->name, b->name);
	ck_assert_str_eq(a->text, b->text);
	ck_assert_str_eq(a->path, b->path);
	ck_assert_uint_eq(a->lease_id, b->lease_id);
	ck_assert_uint_eq(a->holder_uid, b->holder_uid);
	ck_assert_uint_eq(a->holder_gid, b->holder_gid);
	ck_assert_uint_eq(a->lease_count, b->lease_count);
	for (size_t i = 0; i < a->lease_count; i++) {
		ck_assert_uint_eq(a->leases[i].id, b->leases[i].id);
		ck_assert_uint_eq(a->leases[i].uid, b->leases[i].uid);
		ck_assert_uint_eq(a->leases[i].pid, b->leases[i].pid);
		ck_assert_uint_eq(a->leases[i].seconds_left, b->leases[i].seconds_left);
		ck_assert_uint_eq(a->leases[i].flags, b->leases[i].flags);
		ck_assert_str_eq(a->leases[i].dataset, b->leases[i].dataset);
		ck_assert_str_eq(a->leases[i].mountpoint, b->leases[i].mountpoint);
	}
	ck_assert_uint_eq(a->ttl, b->ttl);
	ck_assert_uint_eq(a->version, b->version);
	ck_assert_uint_eq(a->mode, b->mode);
	ck_assert_uint_eq(a->secret_len, b->secret_len);
	if (a->secret_len)
		ck_assert_mem_eq(a->secret, b->secret, a->secret_len);
	ck_assert_uint_eq(a->key_count, b->key_count);
	for (size_t i = 0; i < a->key_count; i++) {
		ck_assert_uint_eq(a->keys[i].version, b->keys[i].version);
		ck_assert_mem_eq(a->keys[i].key, b->keys[i].key, CRYPTO_KEY_LEN);
	}
	ck_assert_uint_eq(a->name_count, b->name_count);
	for (size_t i = 0; i < a->name_count; i++)
		ck_assert_str_eq(a->names[i], b->names[i]);
	ck_assert_uint_eq(a->rekey.version, b->rekey.version);
	ck_assert_uint_eq(a->rekey.state, b->rekey.state);
	ck_assert_uint_eq(a->rekey.done, b->rekey.done);
	ck_assert_uint_eq(a->rekey.total, b->rekey.total);
	ck_assert_uint_eq(a->grants.count, b->grants.count);
	for (size_t i = 0; i < a->grants.count; i++) {
		const struct policy_grant *x = &a->grants.grants[i], *y = &b->grants.grants[i];
		ck_assert_int_eq(x->is_group, y->is_group);
		ck_assert_uint_eq(x->id, y->id);
		ck_assert_int_eq(x->mode, y->mode);
		ck_assert_uint_eq(x->rule_count, y->rule_count);
		for (size_t r = 0; r < x->rule_count; r++) {
			ck_assert_int_eq(x->rules[r].mode, y->rules[r].mode);
			ck_assert_str_eq(x->rules[r].glob, y->rules[r].glob);
		}
	}
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *bytes = p;
	for (size_t i = 0; i < len; i++)
		if (bytes[i])
			return false;
	return true;
}

/*
 * Whether p lies in secret memory, asked of the kernel rather than of the allocator:
 * secret_alloc() memory is excluded from core dumps ("dd" in the mapping's VmFlags).
 */
static bool in_secret_memory(const void *p)
{
	FILE *smaps = fopen("/proc/self/smaps", "r");
	uintptr_t address = (uintptr_t)p;
	bool inside = false, secret = false;
	char line[1024];

	ck_assert_ptr_nonnull(smaps);
	while (fgets(line, sizeof(line), smaps)) {
		unsigned long low, high;

		if (sscanf(line, "%lx-%lx ", &low, &high) == 2) {
			inside = address >= low && address < high;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			secret = strstr(line, " dd") != NULL;
			break;
		}
	}
	fclose(smaps);
	return secret;
}

/* Hand-built bodies. */

static uint8_t body[PROTOCOL_FRAME_MAX + 64];
static size_t body_len;

static void body_start(uint16_t version, uint16_t type, uint32_t id)
{
	put_le16(body, version);
	put_le16(body + 2, type);
	put_le32(body + 4, id);
	body_len = 8;
}

static void body_bytes(const void *bytes, size_t len)
{
	ck_assert_uint_le(body_len + len, sizeof(body));
	memcpy(body + body_len, bytes, len);
	body_len += len;
}

static void body_field(uint16_t tag, const void *value, uint32_t len)
{
	uint8_t head[6];
	put_le16(head, tag);
	put_le32(head + 2, len);
	body_bytes(head, sizeof(head));
	body_bytes(value, len);
}

static void body_u32(uint16_t tag, uint32_t v)
{
	uint8_t bytes[4];
	put_le32(bytes, v);
	body_field(tag, bytes, 4);
}

static void body_u64(uint16_t tag, uint64_t v)
{
	uint8_t bytes[8];
	put_le64(bytes, v);
	body_field(tag, bytes, 8);
}

static void body_string(uint16_t tag, const char *s)
{
	body_field(tag, s, (uint32_t)strlen(s));
}

/* A rekey field: version u32, state u32, done u64, total u64. */
static void body_rekey(uint32_t version, uint32_t state, uint64_t done, uint64_t total)
{
	uint8_t bytes[24];
	put_le32(bytes, version);
	put_le32(bytes + 4, state);
	put_le64(bytes + 8, done);
	put_le64(bytes + 16, total);
	body_field(TAG_REKEY, bytes, sizeof(bytes));
}

static int decode_body(void)
{
	struct protocol_message m;
	int err = protocol_decode(&m, body, body_len);

	if (err)
		ck_assert(all_zero(&m, sizeof(m)));
	protocol_message_release(&m);
	return err;
}

#define assert_body_ok() ck_assert_int_eq(decode_body(), 0)
#define assert_body_bad() ck_assert_int_eq(decode_body(), -EBADMSG)

/* Encode m and check the frame is expected (length prefix included), then decode it. */
static void assert_known_answer(const struct protocol_message *m, const uint8_t *expected,
				size_t expected_len)
{
	struct protocol_message back;
	uint8_t *frame;
	size_t len;

	ck_assert_int_eq(protocol_encode(&frame, &len, m), 0);
	ck_assert_uint_eq(len, expected_len);
	ck_assert_mem_eq(frame, expected, expected_len);
	ck_assert_int_eq(protocol_decode(&back, expected + 4, expected_len - 4), 0);
	assert_messages_equal(m, &back);
	protocol_message_release(&back);
	protocol_frame_free(frame, len);
}

START_TEST(test_known_answer_dataset_create)
{
	static const uint8_t expected[] = {
		0x14, 0x00, 0x00, 0x00,                          /* body length 20 */
		0x01, 0x00, 0x14, 0x00, 0x07, 0x00, 0x00, 0x00,  /* v1, type 20, id 7 */
		0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 'c', 'a', 'r', 'd', 'i', 'o',
	};
	struct protocol_message m = { .type = PROTOCOL_DATASET_CREATE, .id = 7 };

	strcpy(m.name, "cardio");
	assert_known_answer(&m, expected, sizeof(expected));
}
END_TEST

START_TEST(test_known_answer_error)
{
	static const uint8_t expected[] = {
		0x1e, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x02, 0x00, 0x04, 0x03, 0x02, 0x01,
		0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0xf3, 0xff, 0xff, 0xff,   /* -13 */
		0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 'd', 'e', 'n', 'i', 'e', 'd',
	};
	struct protocol_message m = { .type = PROTOCOL_ERROR, .id = 0x01020304, .error = -EACCES };

	ck_assert_int_eq(EACCES, 13);
	strcpy(m.text, "denied");
	assert_known_answer(&m, expected, sizeof(expected));
}
END_TEST

START_TEST(test_known_answer_lease_reply)
{
	static const uint8_t expected[] = {
		0x84, 0x00, 0x00, 0x00,                          /* body length 132 */
		0x01, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00,
		0x04, 0x00, 0x04, 0x00, 0x00, 0x00, '/', 'v', '/', 'c',
		0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x06, 0x00, 0x04, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x00,
		0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
		0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
		0x0a, 0x00, 0x24, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
		0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
		0x1c, 0x1d, 0x1e, 0x1f,
		0x0c, 0x00, 0x16, 0x00, 0x00, 0x00,
		0x00, 0xe8, 0x03, 0x00, 0x00, 0x02, 0x01, 0x00,  /* uid 1000 rw, 1 rule */
		0x01, 0x0b, 0x00, 'f', 'e', 'a', 't', 'u', 'r', 'e', 's', '/', '*', '*',
	};
	struct protocol_message m = {
		.type = PROTOCOL_OK, .id = 5, .lease_id = 0x0102030405060708ULL, .ttl = 30,
		.version = 2, .mode = POLICY_RW,
	};
	struct policy_rule rule = { .glob = "features/**", .mode = POLICY_RO };
	struct policy_grant grant = { .id = 1000, .mode = POLICY_RW, .rule_count = 1,
				      .rules = &rule };
	uint8_t *key = secret_alloc(CRYPTO_KEY_LEN);
	struct protocol_key keys[1] = { { .version = 2, .key = key } };

	ck_assert_ptr_nonnull(key);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		key[i] = (uint8_t)i;
	strcpy(m.path, "/v/c");
	m.keys = keys;
	m.key_count = 1;
	m.grants.grants = &grant;
	m.grants.count = 1;
	assert_known_answer(&m, expected, sizeof(expected));
	secret_free(key);
}
END_TEST

START_TEST(test_known_answer_small_messages)
{
	static const uint8_t unlock[] = {
		0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x01, 0x00, 0x00, 0x00,
		0x09, 0x00, 0x02, 0x00, 0x00, 0x00, 'p', 'w',
	};
	static const uint8_t revoke[] = {
		0x16, 0x00, 0x00, 0x00, 0x01, 0x00, 0x21, 0x00, 0x03, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t list[] = {
		0x17, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff,
		0x0b, 0x00, 0x01, 0x00, 0x00, 0x00, 'a',
		0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 'b', 'c',
	};
	static const uint8_t reload[] = {
		0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct protocol_message m = { .type = PROTOCOL_UNLOCK, .id = 1 };
	char a[] = "a", bc[] = "bc";
	char *names[] = { a, bc };

	set_secret(&m, "pw", 2);
	assert_known_answer(&m, unlock, sizeof(unlock));
	protocol_message_release(&m);

	m = (struct protocol_message){ .type = PROTOCOL_REVOKE, .id = 3, .lease_id = 9 };
	assert_known_answer(&m, revoke, sizeof(revoke));
	m = (struct protocol_message){ .type = PROTOCOL_OK, .id = UINT32_MAX, .names = names,
				       .name_count = 2 };
	assert_known_answer(&m, list, sizeof(list));
	m = (struct protocol_message){ .type = PROTOCOL_POLICY_RELOAD };
	assert_known_answer(&m, reload, sizeof(reload));
}
END_TEST

START_TEST(test_known_answer_rekey)
{
	/* A REKEY reply: text "offline", then the rekey field (tag 13, 24 bytes). */
	static const uint8_t reply[] = {
		0x33, 0x00, 0x00, 0x00,                          /* body length 51 */
		0x01, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,  /* version 1, OK, id 7 */
		0x03, 0x00, 0x07, 0x00, 0x00, 0x00,              /* text, 7 bytes */
		'o', 'f', 'f', 'l', 'i', 'n', 'e',
		0x0d, 0x00, 0x18, 0x00, 0x00, 0x00,              /* rekey, 24 bytes */
		0x02, 0x00, 0x00, 0x00,                          /* version 2 */
		0x02, 0x00, 0x00, 0x00,                          /* RUNNING */
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  /* done 40 */
		0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  /* total 2^32 + 256 */
	};
	/* A REKEY request that only asks about the run to version 2. */
	static const uint8_t request[] = {
		0x1e, 0x00, 0x00, 0x00, 0x01, 0x00, 0x2c, 0x00, 0x05, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 'c', 'a', 'r', 'd', 'i', 'o',
		0x07, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	};
	struct protocol_message m = {
		.type = PROTOCOL_OK,
		.id = 7,
		.text = "offline",
		.rekey = { .version = 2, .state = PROTOCOL_REKEY_RUNNING, .done = 40,
			   .total = (UINT64_C(1) << 32) + 256 },
	};

	assert_known_answer(&m, reply, sizeof(reply));
	m = (struct protocol_message){ .type = PROTOCOL_REKEY, .id = 5, .name = "cardio",
				       .version = 2 };
	assert_known_answer(&m, request, sizeof(request));
}
END_TEST

static void round_trip_message(const struct protocol_message *m)
{
	struct protocol_message back;
	uint8_t *frame;
	size_t len;

	ck_assert_int_eq(protocol_encode(&frame, &len, m), 0);
	ck_assert_int_eq(protocol_decode(&back, frame + 4, len - 4), 0);
	assert_messages_equal(m, &back);
	protocol_frame_free(frame, len);
	protocol_message_release(&back);
}

START_TEST(test_rekey_round_trips)
{
	struct protocol_message m;

	/* A REKEY request that starts or attaches: the name alone. */
	m = (struct protocol_message){ .type = PROTOCOL_REKEY, .id = 1, .name = "cardio" };
	round_trip_message(&m);
	/* Its answer in every state, and DONE with everything moved. */
	for (uint32_t state = PROTOCOL_REKEY_REQUESTED; state <= PROTOCOL_REKEY_FAILED; state++) {
		m = (struct protocol_message){
			.type = PROTOCOL_OK, .id = 1, .text = "online (mounted by pid 42)",
			.rekey = { .version = 9, .state = state, .done = state, .total = 10 },
		};
		round_trip_message(&m);
	}
	/* A renewal reporting progress, and its answer asking for a run. */
	m = (struct protocol_message){
		.type = PROTOCOL_RENEW, .id = 2, .lease_id = 77,
		.rekey = { .version = 3, .state = PROTOCOL_REKEY_RUNNING, .done = 0, .total = 0 },
	};
	round_trip_message(&m);
	m = (struct protocol_message){
		.type = PROTOCOL_OK, .id = 2, .ttl = 30, .version = 3,
		.rekey = { .version = 3, .state = PROTOCOL_REKEY_REQUESTED },
	};
	round_trip_message(&m);
	/* State 0 is no field at all: whatever else the struct says is not sent. */
	m = (struct protocol_message){
		.type = PROTOCOL_OK, .id = 3, .rekey = { .version = 5, .done = 1, .total = 2 },
	};
	{
		struct protocol_message back;
		uint8_t *frame;
		size_t len;

		ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
		ck_assert_uint_eq(len, 4 + 8);
		ck_assert_int_eq(protocol_decode(&back, frame + 4, len - 4), 0);
		ck_assert_uint_eq(back.rekey.state, 0);
		ck_assert_uint_eq(back.rekey.version, 0);
		protocol_frame_free(frame, len);
		protocol_message_release(&back);
	}
}
END_TEST

START_TEST(test_rekey_invalid)
{
	static const struct protocol_rekey bad[] = {
		{ .version = 0, .state = PROTOCOL_REKEY_RUNNING, .done = 0, .total = 1 },
		{ .version = 2, .state = 5, .done = 0, .total = 1 },
		{ .version = 2, .state = UINT32_MAX, .done = 0, .total = 1 },
		{ .version = 2, .state = PROTOCOL_REKEY_DONE, .done = 2, .total = 1 },
		{ .version = 2, .state = PROTOCOL_REKEY_RUNNING, .done = UINT64_MAX, .total = 0 },
	};
	uint8_t bytes[25] = { 0 };
	uint8_t *frame;
	size_t len;

	/* The valid base. */
	body_start(1, PROTOCOL_OK, 1);
	body_rekey(2, PROTOCOL_REKEY_DONE, 3, 3);
	assert_body_ok();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct protocol_message m = { .type = PROTOCOL_OK, .rekey = bad[i] };

		/* Refused on the wire, in both types that carry it... */
		body_start(1, PROTOCOL_OK, 1);
		body_rekey(bad[i].version, bad[i].state, bad[i].done, bad[i].total);
		assert_body_bad();
		body_start(1, PROTOCOL_RENEW, 1);
		body_u64(TAG_LEASE_ID, 1);
		body_rekey(bad[i].version, bad[i].state, bad[i].done, bad[i].total);
		assert_body_bad();
		/* ...and never encoded. */
		ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
		ck_assert_ptr_null(frame);
	}
	/* State 0 on the wire: an absent field may not be sent. */
	body_start(1, PROTOCOL_OK, 1);
	body_rekey(2, 0, 0, 0);
	assert_body_bad();
	/* Lengths other than 24. */
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_REKEY, bytes, 23);
	assert_body_bad();
	put_le32(bytes, 1);
	put_le32(bytes + 4, PROTOCOL_REKEY_REQUESTED);
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_REKEY, bytes, 25);
	assert_body_bad();
	/* Twice. */
	body_start(1, PROTOCOL_OK, 1);
	body_rekey(2, PROTOCOL_REKEY_DONE, 3, 3);
	body_rekey(2, PROTOCOL_REKEY_DONE, 3, 3);
	assert_body_bad();
	/* In a type that does not carry it, REKEY requests included. */
	body_start(1, PROTOCOL_REKEY, 1);
	body_string(TAG_NAME, "cardio");
	body_rekey(2, PROTOCOL_REKEY_DONE, 3, 3);
	assert_body_bad();
	body_start(1, PROTOCOL_LEASE, 1);
	body_string(TAG_NAME, "cardio");
	body_rekey(2, PROTOCOL_REKEY_DONE, 3, 3);
	assert_body_bad();
	/* Before a field of a lower tag. */
	body_start(1, PROTOCOL_OK, 1);
	body_rekey(2, PROTOCOL_REKEY_DONE, 3, 3);
	body_string(TAG_TEXT, "offline");
	assert_body_bad();
	/* A REKEY request: name required, version optional but never 0, no other field. */
	body_start(1, PROTOCOL_REKEY, 1);
	assert_body_bad();
	body_start(1, PROTOCOL_REKEY, 1);
	body_string(TAG_NAME, "cardio");
	body_u32(TAG_VERSION, 0);
	assert_body_bad();
	body_start(1, PROTOCOL_REKEY, 1);
	body_string(TAG_NAME, "../x");
	assert_body_bad();
	body_start(1, PROTOCOL_REKEY, 1);
	body_string(TAG_NAME, "cardio");
	body_string(TAG_TEXT, "offline");
	assert_body_bad();
	body_start(1, PROTOCOL_REKEY, 1);
	body_string(TAG_NAME, "cardio");
	body_u32(TAG_VERSION, 2);
	assert_body_ok();
	{
		struct protocol_message m = { .type = PROTOCOL_REKEY };
		ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	}
}
END_TEST

/* Round trips. */

static void round_trip(enum protocol_type type, bool full)
{
	struct protocol_message m, back;
	uint8_t *frame, *again;
	size_t len, again_len;

	sample_message(&m, type, full);
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
	ck_assert_uint_eq(get_le32(frame), len - 4);
	ck_assert_int_eq(protocol_decode(&back, frame + 4, len - 4), 0);
	assert_messages_equal(&m, &back);
	ck_assert_int_eq(protocol_encode(&again, &again_len, &back), 0);
	ck_assert_uint_eq(again_len, len);
	ck_assert_mem_eq(again, frame, len);
	protocol_frame_free(again, again_len);
	protocol_frame_free(frame, len);
	protocol_message_release(&back);
	protocol_message_release(&m);
}

START_TEST(test_round_trip_full)
{
	round_trip(all_types[_i], true);
}
END_TEST

START_TEST(test_round_trip_minimal)
{
	round_trip(all_types[_i], false);
}
END_TEST

static bool check_frame(const uint8_t *bytes, size_t len);

/*
 * Every prefix of a valid body that ends inside the header or a field is refused; one
 * that ends between fields is a message without the optional fields that followed (the
 * length prefix is what catches that cut), and it re-encodes to exactly itself.
 * Anything appended is refused.
 */
START_TEST(test_truncated_and_extended)
{
	struct protocol_message m;
	uint8_t *frame;
	size_t len, next_boundary = 8;

	sample_message(&m, all_types[_i], true);
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
	for (size_t cut = 0; cut < len - 4; cut++) {
		bool boundary = cut == next_boundary;
		bool accepted = check_frame(frame + 4, cut);

		if (boundary)
			next_boundary += 6 + get_le32(frame + 4 + cut + 2);
		if (!boundary)
			ck_assert_msg(!accepted, "cut at %zu inside a field accepted", cut);
	}
	memcpy(body, frame + 4, len - 4);
	body_len = len - 4;
	assert_body_ok();
	for (size_t extra = 1; extra <= 7; extra++) {
		body[body_len++] = 0;
		assert_body_bad();   /* trailing bytes, a partial field header at first */
	}
	protocol_frame_free(frame, len);
	protocol_message_release(&m);
}
END_TEST

START_TEST(test_bad_header)
{
	static const uint16_t bad_types[] = { 0, 3, 9, 12, 19, 22, 29, 34, 39, 44, 49, 51, 0xffff };

	body_start(1, PROTOCOL_STATUS, 1);
	assert_body_ok();
	for (size_t cut = 0; cut < 8; cut++) {
		body_len = cut;
		assert_body_bad();
	}
	body_start(0, PROTOCOL_STATUS, 1);
	assert_body_bad();
	body_start(2, PROTOCOL_STATUS, 1);
	assert_body_bad();
	body_start(0x0101, PROTOCOL_STATUS, 1);
	assert_body_bad();
	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		body_start(1, bad_types[i], 1);
		assert_body_bad();
	}
	/* A body over PROTOCOL_FRAME_MAX, even a well-formed one. */
	body_start(1, PROTOCOL_OK, 1);
	memset(body + 8, 0, PROTOCOL_FRAME_MAX);
	body_len = PROTOCOL_FRAME_MAX + 1;
	assert_body_bad();
}
END_TEST

START_TEST(test_unknown_and_disallowed_tags)
{
	/* The valid base: a lease request. */
	body_start(1, PROTOCOL_LEASE, 9);
	body_string(TAG_NAME, "cardio");
	assert_body_ok();
	/* Unknown tags: 0, one past the last, the largest. */
	body_start(1, PROTOCOL_LEASE, 9);
	body_field(0, "x", 1);
	body_string(TAG_NAME, "cardio");
	assert_body_bad();
	for (uint32_t tag = TAG_REKEY + 1; tag <= 0xffff; tag += 0x1111) {
		body_start(1, PROTOCOL_LEASE, 9);
		body_string(TAG_NAME, "cardio");
		body_field((uint16_t)tag, "x", 1);
		assert_body_bad();
	}
	/* Known tags the type does not allow. */
	body_start(1, PROTOCOL_LEASE, 9);
	body_string(TAG_NAME, "cardio");
	body_field(TAG_SECRET, "pw", 2);
	assert_body_bad();
	body_start(1, PROTOCOL_DATASET_CREATE, 9);
	body_string(TAG_NAME, "cardio");
	body_string(TAG_PATH, "/x");
	assert_body_bad();
	body_start(1, PROTOCOL_STATUS, 9);
	body_string(TAG_TEXT, "sealed");
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 9);
	body_string(TAG_NAME, "cardio");
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 9);
	body_u32(TAG_ERROR, (uint32_t)-EIO);
	assert_body_bad();
	body_start(1, PROTOCOL_UNLOCK, 9);
	body_field(TAG_SECRET, "pw", 2);
	body_u32(TAG_VERSION, 1);
	assert_body_bad();
}
END_TEST

START_TEST(test_repeated_and_out_of_order)
{
	body_start(1, PROTOCOL_LEASE, 9);
	body_string(TAG_NAME, "cardio");
	body_string(TAG_TEXT, "host");
	assert_body_ok();
	body_start(1, PROTOCOL_LEASE, 9);
	body_string(TAG_NAME, "cardio");
	body_string(TAG_NAME, "cardio");
	assert_body_bad();
	body_start(1, PROTOCOL_LEASE, 9);
	body_string(TAG_TEXT, "host");
	body_string(TAG_NAME, "cardio");
	assert_body_bad();
	body_start(1, PROTOCOL_UNLOCK, 9);
	body_field(TAG_SECRET, "a", 1);
	body_field(TAG_SECRET, "b", 1);
	assert_body_bad();
	/* A repeatable tag may repeat, but only adjacent and in order with the others. */
	body_start(1, PROTOCOL_OK, 9);
	body_string(TAG_DATASET, "a");
	body_string(TAG_DATASET, "b");
	assert_body_ok();
	body_start(1, PROTOCOL_OK, 9);
	body_string(TAG_DATASET, "a");
	body_u32(TAG_TTL, 5);
	body_string(TAG_DATASET, "b");
	assert_body_bad();
}
END_TEST

START_TEST(test_missing_required)
{
	body_start(1, PROTOCOL_DATASET_CREATE, 1);
	assert_body_bad();
	body_start(1, PROTOCOL_KEY_RETIRE, 1);
	body_string(TAG_NAME, "cardio");
	assert_body_bad();
	body_u32(TAG_VERSION, 0);   /* required: zero is a value */
	assert_body_ok();
	body_start(1, PROTOCOL_ERROR, 1);
	body_string(TAG_TEXT, "no error number");
	assert_body_bad();
	body_start(1, PROTOCOL_UNLOCK, 1);
	assert_body_bad();
	body_start(1, PROTOCOL_KEK_ROTATE, 1);
	assert_body_bad();
	body_start(1, PROTOCOL_RENEW, 1);
	assert_body_bad();
	body_start(1, PROTOCOL_RELEASE, 1);
	assert_body_bad();
	body_start(1, PROTOCOL_LEASE, 1);
	body_string(TAG_TEXT, "host");
	assert_body_bad();
	/* REVOKE: exactly one of name and lease id. */
	body_start(1, PROTOCOL_REVOKE, 1);
	assert_body_bad();
	body_string(TAG_NAME, "cardio");
	assert_body_ok();
	body_u64(TAG_LEASE_ID, 5);
	assert_body_bad();
}
END_TEST

START_TEST(test_field_bounds)
{
	char long_text[PROTOCOL_PATH_MAX + 2];
	uint8_t secret[PROTOCOL_SECRET_MAX + 1];
	uint8_t key[4 + CRYPTO_KEY_LEN + 1] = { 1 };

	memset(long_text, 'a', sizeof(long_text));
	memset(secret, 's', sizeof(secret));
	/* Each bound: the largest accepted, one more refused; and empty refused. */
	body_start(1, PROTOCOL_DATASET_CREATE, 1);
	body_field(TAG_NAME, long_text, POLICY_NAME_MAX);
	assert_body_ok();
	body_start(1, PROTOCOL_DATASET_CREATE, 1);
	body_field(TAG_NAME, long_text, POLICY_NAME_MAX + 1);
	assert_body_bad();
	body_start(1, PROTOCOL_DATASET_CREATE, 1);
	body_field(TAG_NAME, long_text, 0);
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_TEXT, long_text, PROTOCOL_TEXT_MAX);
	assert_body_ok();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_TEXT, long_text, PROTOCOL_TEXT_MAX + 1);
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_TEXT, long_text, 0);
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_PATH, long_text, PROTOCOL_PATH_MAX);
	assert_body_ok();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_PATH, long_text, PROTOCOL_PATH_MAX + 1);
	assert_body_bad();
	body_start(1, PROTOCOL_UNLOCK, 1);
	body_field(TAG_SECRET, secret, PROTOCOL_SECRET_MAX);
	assert_body_ok();
	body_start(1, PROTOCOL_UNLOCK, 1);
	body_field(TAG_SECRET, secret, PROTOCOL_SECRET_MAX + 1);
	assert_body_bad();
	body_start(1, PROTOCOL_UNLOCK, 1);
	body_field(TAG_SECRET, secret, 0);
	assert_body_bad();
	/* Fixed-size fields: exactly their size. */
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_KEY, key, 4 + CRYPTO_KEY_LEN);
	assert_body_ok();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_KEY, key, 4 + CRYPTO_KEY_LEN + 1);
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_KEY, key, 4 + CRYPTO_KEY_LEN - 1);
	assert_body_bad();
	body_start(1, PROTOCOL_RENEW, 1);
	body_field(TAG_LEASE_ID, key, 7);
	assert_body_bad();
	body_start(1, PROTOCOL_RENEW, 1);
	body_field(TAG_LEASE_ID, key, 9);
	assert_body_bad();
	body_start(1, PROTOCOL_ERROR, 1);
	body_field(TAG_ERROR, key, 5);
	assert_body_bad();
	/* A field length running past the body. */
	body_start(1, PROTOCOL_DATASET_CREATE, 1);
	body_string(TAG_NAME, "cardio");
	put_le32(body + 8 + 2, 7);
	assert_body_bad();
	put_le32(body + 8 + 2, UINT32_MAX);
	assert_body_bad();
}
END_TEST

START_TEST(test_field_values)
{
	static const char *bad_names[] = { "a b", "a/b", "caf\xc3\xa9", "x:y", "*", "a\nb" };
	static const int32_t bad_errors[] = { 0, 1, EACCES, -4096, INT32_MIN, INT32_MAX };
	uint8_t key[4 + CRYPTO_KEY_LEN] = { 0 };

	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		body_start(1, PROTOCOL_KEY_SHRED, 1);
		body_string(TAG_NAME, bad_names[i]);
		assert_body_bad();
		body_start(1, PROTOCOL_OK, 1);
		body_string(TAG_DATASET, bad_names[i]);
		assert_body_bad();
	}
	body_start(1, PROTOCOL_KEY_SHRED, 1);
	body_field(TAG_NAME, "ab\0c", 4);
	assert_body_bad();
	body_start(1, PROTOCOL_KEY_SHRED, 1);
	body_string(TAG_NAME, "A-z_0.9");
	assert_body_ok();

	for (size_t i = 0; i < sizeof(bad_errors) / sizeof(bad_errors[0]); i++) {
		body_start(1, PROTOCOL_ERROR, 1);
		body_u32(TAG_ERROR, (uint32_t)bad_errors[i]);
		assert_body_bad();
	}
	body_start(1, PROTOCOL_ERROR, 1);
	body_u32(TAG_ERROR, (uint32_t)-4095);
	assert_body_ok();

	/* Text: no control characters (they would end up in logs). */
	body_start(1, PROTOCOL_ERROR, 1);
	body_u32(TAG_ERROR, (uint32_t)-EIO);
	body_string(TAG_TEXT, "line\nforged log line");
	assert_body_bad();
	body_start(1, PROTOCOL_ERROR, 1);
	body_u32(TAG_ERROR, (uint32_t)-EIO);
	body_string(TAG_TEXT, "\x1b[31mred");
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_PATH, "/a\0b", 4);
	assert_body_bad();

	/* Optional fields carry something or are absent: zero is not an encoding. */
	body_start(1, PROTOCOL_OK, 1);
	body_u64(TAG_LEASE_ID, 0);
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_u32(TAG_TTL, 0);
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	body_u32(TAG_VERSION, 0);
	assert_body_bad();
	for (uint32_t mode = 0; mode < 5; mode++) {
		body_start(1, PROTOCOL_OK, 1);
		body_u32(TAG_MODE, mode);
		ck_assert_int_eq(decode_body(), mode == POLICY_RO || mode == POLICY_RW ? 0 : -EBADMSG);
	}

	/* Keys: version 0 and duplicate versions refused; at most PROTOCOL_KEYS_MAX. */
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_KEY, key, sizeof(key));
	assert_body_bad();
	put_le32(key, 4);
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_KEY, key, sizeof(key));
	body_field(TAG_KEY, key, sizeof(key));
	assert_body_bad();
	body_start(1, PROTOCOL_OK, 1);
	for (uint32_t v = 1; v <= PROTOCOL_KEYS_MAX; v++) {
		put_le32(key, v);
		body_field(TAG_KEY, key, sizeof(key));
	}
	assert_body_ok();
	put_le32(key, PROTOCOL_KEYS_MAX + 1);
	body_field(TAG_KEY, key, sizeof(key));
	assert_body_bad();
}
END_TEST

/* One grant value: is_group, id, mode, declared rule count, then the rules given. */
static size_t grant_value(uint8_t *out, uint8_t is_group, uint8_t mode, uint16_t declared,
			  size_t rules, const uint8_t *rule_modes, const char *const *globs)
{
	size_t len = 8;

	out[0] = is_group;
	put_le32(out + 1, 1000);
	out[5] = mode;
	put_le16(out + 6, declared);
	for (size_t i = 0; i < rules; i++) {
		size_t glob_len = strlen(globs[i]);
		out[len] = rule_modes[i];
		put_le16(out + len + 1, (uint16_t)glob_len);
		memcpy(out + len + 3, globs[i], glob_len);
		len += 3 + glob_len;
	}
	return len;
}

static int decode_grant_body(const uint8_t *value, size_t len)
{
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_GRANT, value, (uint32_t)len);
	return decode_body();
}

START_TEST(test_grant_structure)
{
	static const char *const globs[] = { "features/**", "checkpoints/*" };
	static const uint8_t modes[] = { POLICY_RO, POLICY_RW };
	static const uint8_t bad_rule_modes[] = { POLICY_RO, 3 };
	uint8_t value[16 * 1024];
	char long_glob[POLICY_GLOB_MAX + 2];
	const char *long_globs[1] = { long_glob };
	size_t len;

	len = grant_value(value, 0, POLICY_RW, 2, 2, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), 0);
	len = grant_value(value, 1, POLICY_RO, 0, 0, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), 0);

	/* The count lies: more than present, fewer than present, far more than fit. */
	len = grant_value(value, 0, POLICY_RW, 3, 2, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 0, POLICY_RW, 1, 2, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 0, POLICY_RW, 0xffff, 2, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	/* More rules than PROTOCOL_RULES_MAX, every one well-formed. */
	{
		const char *many[PROTOCOL_RULES_MAX + 1];
		uint8_t many_modes[PROTOCOL_RULES_MAX + 1];
		for (size_t i = 0; i <= PROTOCOL_RULES_MAX; i++) {
			many[i] = "x/**";
			many_modes[i] = POLICY_RO;
		}
		len = grant_value(value, 0, POLICY_RW, PROTOCOL_RULES_MAX, PROTOCOL_RULES_MAX,
				  many_modes, many);
		ck_assert_int_eq(decode_grant_body(value, len), 0);
		len = grant_value(value, 0, POLICY_RW, PROTOCOL_RULES_MAX + 1,
				  PROTOCOL_RULES_MAX + 1, many_modes, many);
		ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	}
	/* A glob length running past the value, zero, or over POLICY_GLOB_MAX. */
	len = grant_value(value, 0, POLICY_RW, 2, 2, modes, globs);
	put_le16(value + len - strlen(globs[1]) - 2, (uint16_t)(strlen(globs[1]) + 1));
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 0, POLICY_RW, 2, 2, modes, globs);
	put_le16(value + len - strlen(globs[1]) - 2, 0);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	memset(long_glob, 'g', sizeof(long_glob));
	long_glob[POLICY_GLOB_MAX] = '\0';
	len = grant_value(value, 0, POLICY_RW, 1, 1, modes, long_globs);
	ck_assert_int_eq(decode_grant_body(value, len), 0);
	long_glob[POLICY_GLOB_MAX] = 'g';
	long_glob[POLICY_GLOB_MAX + 1] = '\0';
	len = grant_value(value, 0, POLICY_RW, 1, 1, modes, long_globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	/* A NUL inside a glob. */
	len = grant_value(value, 0, POLICY_RW, 2, 2, modes, globs);
	value[len - 3] = '\0';
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	/* Modes and flags out of range; a truncated head. */
	len = grant_value(value, 0, POLICY_RW, 2, 2, bad_rule_modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 0, POLICY_NONE, 0, 0, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 0, 3, 0, 0, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 2, POLICY_RO, 0, 0, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len), -EBADMSG);
	len = grant_value(value, 0, POLICY_RO, 0, 0, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, len - 1), -EBADMSG);
	/* A rule head cut short. */
	len = grant_value(value, 0, POLICY_RW, 1, 1, modes, globs);
	ck_assert_int_eq(decode_grant_body(value, 8 + 2), -EBADMSG);
}
END_TEST

START_TEST(test_encode_refuses_invalid)
{
	struct protocol_message m = { .type = PROTOCOL_DATASET_CREATE };
	uint8_t *frame = (uint8_t *)&m;
	size_t len = 1;

	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);   /* name missing */
	ck_assert_ptr_null(frame);
	ck_assert_uint_eq(len, 0);
	strcpy(m.name, "no/slash");
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	memset(m.name, 'a', sizeof(m.name));   /* unterminated */
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m = (struct protocol_message){ .type = 99 };
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m = (struct protocol_message){ .type = PROTOCOL_ERROR, .error = EACCES };
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m = (struct protocol_message){ .type = PROTOCOL_REVOKE };
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m.lease_id = 1;
	strcpy(m.name, "cardio");
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m = (struct protocol_message){ .type = PROTOCOL_UNLOCK };
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m = (struct protocol_message){ .type = PROTOCOL_OK, .mode = 7 };
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);
	m = (struct protocol_message){ .type = PROTOCOL_ERROR, .error = -1 };
	strcpy(m.text, "two\nlines");
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EINVAL);

	/* Too big for one frame: as many names as allowed, each as long as allowed. */
	m = (struct protocol_message){ .type = PROTOCOL_OK };
	m.names = calloc(PROTOCOL_NAMES_MAX, sizeof(*m.names));
	ck_assert_ptr_nonnull(m.names);
	for (size_t i = 0; i < PROTOCOL_NAMES_MAX; i++) {
		m.names[i] = malloc(POLICY_NAME_MAX + 1);
		ck_assert_ptr_nonnull(m.names[i]);
		memset(m.names[i], 'n', POLICY_NAME_MAX);
		m.names[i][POLICY_NAME_MAX] = '\0';
		m.name_count++;
	}
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), -EMSGSIZE);
	m.name_count = PROTOCOL_FRAME_MAX / (6 + POLICY_NAME_MAX) - 1;
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
	protocol_frame_free(frame, len);
	m.name_count = PROTOCOL_NAMES_MAX;
	protocol_message_release(&m);
}
END_TEST

START_TEST(test_secrets_in_secret_memory)
{
	struct protocol_message m, back;
	uint8_t *frame;
	size_t len;

	/* The probe tells the two allocators apart. */
	{
		void *plain = malloc(64), *secret = secret_alloc(64);
		ck_assert(!in_secret_memory(plain));
		ck_assert(in_secret_memory(secret));
		free(plain);
		secret_free(secret);
	}

	sample_message(&m, PROTOCOL_UNLOCK, true);
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
	ck_assert(in_secret_memory(frame));
	ck_assert(in_secret_memory(frame + len - 1));
	ck_assert_int_eq(protocol_decode(&back, frame + 4, len - 4), 0);
	ck_assert(in_secret_memory(back.secret));
	ck_assert(in_secret_memory(back.secret + back.secret_len - 1));
	protocol_frame_free(frame, len);
	protocol_message_release(&back);
	ck_assert(all_zero(&back, sizeof(back)));
	protocol_message_release(&m);
	ck_assert(all_zero(&m, sizeof(m)));

	sample_message(&m, PROTOCOL_OK, true);
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
	ck_assert(in_secret_memory(frame));
	ck_assert_int_eq(protocol_decode(&back, frame + 4, len - 4), 0);
	ck_assert_uint_eq(back.key_count, 3);
	for (size_t i = 0; i < back.key_count; i++)
		ck_assert(in_secret_memory(back.keys[i].key));
	protocol_frame_free(frame, len);
	protocol_message_release(&back);
	ck_assert(all_zero(&back, sizeof(back)));
	protocol_message_release(&m);

	/* A frame with nothing secret in it needs no locked memory. */
	sample_message(&m, PROTOCOL_DATASET_CREATE, true);
	ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
	ck_assert(!in_secret_memory(frame));
	protocol_frame_free(frame, len);
	protocol_message_release(&m);
	/* Releasing twice, or a zeroed message, is harmless. */
	protocol_message_release(&m);
}
END_TEST

/* Socket I/O. */

static int pair[2];

static void pair_open(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
}

static void pair_close(void)
{
	close(pair[0]);
	close(pair[1]);
}

START_TEST(test_send_recv)
{
	struct protocol_message m, back;

	pair_open();
	for (size_t i = 0; i < TYPE_COUNT; i++) {
		sample_message(&m, all_types[i], true);
		ck_assert_int_eq(protocol_send(pair[0], &m, 1000), 0);
		ck_assert_int_eq(protocol_recv(pair[1], &back, 1000), 0);
		assert_messages_equal(&m, &back);
		protocol_message_release(&back);
		protocol_message_release(&m);
	}
	pair_close();
}
END_TEST

/* A frame larger than the socket buffer goes through in pieces. */
START_TEST(test_send_recv_large)
{
	struct protocol_message m = { .type = PROTOCOL_OK }, back;
	int size = 4096;
	pid_t pid;
	int status;

	pair_open();
	ck_assert_int_eq(setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
	ck_assert_int_eq(setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
	strcpy(m.path, "/");
	m.names = calloc(800, sizeof(*m.names));
	ck_assert_ptr_nonnull(m.names);
	for (size_t i = 0; i < 800; i++) {
		m.names[i] = malloc(POLICY_NAME_MAX + 1);
		ck_assert_ptr_nonnull(m.names[i]);
		snprintf(m.names[i], POLICY_NAME_MAX + 1, "%064zu", i);
		m.name_count++;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(protocol_send(pair[0], &m, 5000) == 0 ? 0 : 1);
	ck_assert_int_eq(protocol_recv(pair[1], &back, 5000), 0);
	assert_messages_equal(&m, &back);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	protocol_message_release(&back);
	protocol_message_release(&m);
	pair_close();
}
END_TEST

START_TEST(test_recv_oversize_refused_before_body)
{
	struct protocol_message m;
	uint8_t head[4 + 3] = { 0, 0, 0, 0, 'a', 'b', 'c' };
	uint8_t rest[8];

	pair_open();
	put_le32(head, PROTOCOL_FRAME_MAX + 1);
	ck_assert_int_eq(write(pair[0], head, sizeof(head)), (ssize_t)sizeof(head));
	/* No body follows: a reader that waited for it would time out instead. */
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -EBADMSG);
	ck_assert(all_zero(&m, sizeof(m)));
	ck_assert_int_eq(recv(pair[1], rest, sizeof(rest), MSG_DONTWAIT), 3);
	ck_assert_mem_eq(rest, "abc", 3);

	put_le32(head, 0);
	ck_assert_int_eq(write(pair[0], head, 4), 4);
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -EBADMSG);
	put_le32(head, UINT32_MAX);
	ck_assert_int_eq(write(pair[0], head, 4), 4);
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -EBADMSG);
	/* A well-framed body that does not decode. */
	put_le32(head, 3);
	ck_assert_int_eq(write(pair[0], head, sizeof(head)), (ssize_t)sizeof(head));
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -EBADMSG);
	pair_close();
}
END_TEST

START_TEST(test_recv_end_of_stream)
{
	struct protocol_message m;
	uint8_t frame[4 + 20];

	/* At a frame boundary. */
	pair_open();
	close(pair[0]);
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -ECONNRESET);
	close(pair[1]);
	/* Inside the length prefix. */
	pair_open();
	ck_assert_int_eq(write(pair[0], "\x14\x00", 2), 2);
	close(pair[0]);
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -ECONNRESET);
	close(pair[1]);
	/* Inside the body. */
	pair_open();
	put_le32(frame, 20);
	memset(frame + 4, 0, 20);
	ck_assert_int_eq(write(pair[0], frame, 4 + 19), 4 + 19);
	close(pair[0]);
	ck_assert_int_eq(protocol_recv(pair[1], &m, 2000), -ECONNRESET);
	ck_assert(all_zero(&m, sizeof(m)));
	close(pair[1]);
}
END_TEST

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

START_TEST(test_recv_deadline_and_eintr)
{
	struct sigaction action = { .sa_handler = on_alarm };   /* no SA_RESTART */
	struct itimerval every_20ms = { { 0, 20000 }, { 0, 20000 } };
	struct itimerval off = { 0 };
	struct protocol_message m;
	struct timespec start, end;
	double elapsed;

	pair_open();
	ck_assert_int_eq(sigaction(SIGALRM, &action, NULL), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &every_20ms, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* Half a frame, then silence: the deadline covers the whole frame. */
	ck_assert_int_eq(write(pair[0], "\x14\x00\x00\x00\x01\x00", 6), 6);
	ck_assert_int_eq(protocol_recv(pair[1], &m, 300), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	elapsed = (double)(end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
	ck_assert(alarms >= 3);   /* interrupted, and carried on */
	ck_assert(elapsed >= 0.29 && elapsed < 5.0);
	pair_close();
}
END_TEST

START_TEST(test_send_to_closed_peer)
{
	struct protocol_message m;

	/* SIGPIPE left at its default: a send without MSG_NOSIGNAL would kill the test. */
	signal(SIGPIPE, SIG_DFL);
	pair_open();
	close(pair[1]);
	sample_message(&m, PROTOCOL_STATUS, true);
	ck_assert_int_eq(protocol_send(pair[0], &m, 1000), -EPIPE);
	close(pair[0]);
}
END_TEST

/* The corpus and the mutations. */

struct seed {
	uint8_t *bytes;
	size_t len;
};

static struct seed *seeds;
static size_t seed_count, valid_seed_count;

/* decode; when accepted, the re-encoding must be the input itself. Returns whether accepted. */
static bool check_frame(const uint8_t *bytes, size_t len)
{
	struct protocol_message m;
	uint8_t *frame;
	size_t frame_len;
	int err = protocol_decode(&m, bytes, len);

	if (err) {
		ck_assert_int_eq(err, -EBADMSG);
		ck_assert(all_zero(&m, sizeof(m)));
		return false;
	}
	ck_assert_int_eq(protocol_encode(&frame, &frame_len, &m), 0);
	ck_assert_uint_eq(frame_len, len + 4);
	ck_assert_uint_eq(get_le32(frame), len);
	ck_assert(memcmp(frame + 4, bytes, len) == 0);
	protocol_frame_free(frame, frame_len);
	protocol_message_release(&m);
	return true;
}

static void load_corpus(void)
{
	DIR *dir = opendir(CORPUS_DIR);
	struct dirent *entry;

	ck_assert_msg(dir != NULL, "no corpus at %s", CORPUS_DIR);
	while ((entry = readdir(dir))) {
		char path[1024];
		struct stat st;
		FILE *file;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, entry->d_name);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_le(st.st_size, 2 * PROTOCOL_FRAME_MAX);
		seeds = realloc(seeds, (seed_count + 1) * sizeof(*seeds));
		ck_assert_ptr_nonnull(seeds);
		seeds[seed_count].len = (size_t)st.st_size;
		seeds[seed_count].bytes = malloc(seeds[seed_count].len + 1);
		ck_assert_ptr_nonnull(seeds[seed_count].bytes);
		file = fopen(path, "rb");
		ck_assert_ptr_nonnull(file);
		ck_assert_uint_eq(fread(seeds[seed_count].bytes, 1, seeds[seed_count].len, file),
				  seeds[seed_count].len);
		fclose(file);
		if (check_frame(seeds[seed_count].bytes, seeds[seed_count].len)) {
			/* Valid seeds first: the mutations start from those. */
			struct seed valid = seeds[seed_count];
			seeds[seed_count] = seeds[valid_seed_count];
			seeds[valid_seed_count++] = valid;
		}
		seed_count++;
	}
	closedir(dir);
}

START_TEST(test_corpus_replay)
{
	load_corpus();
	/* Two valid seeds per type (full and minimal) at least, and malformed ones. */
	ck_assert_uint_ge(valid_seed_count, 2 * TYPE_COUNT);
	ck_assert_uint_gt(seed_count, valid_seed_count);
}
END_TEST

static uint64_t rng_state = 0x5eed5eed5eed5eedULL;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t rng_below(size_t n)
{
	return n ? (size_t)(rng() % n) : 0;
}

static const uint32_t interesting[] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 20, 30, 36, 64, 65, 127, 128, 255, 256,
	0x7fff, 0x8000, 0xffff, 0x10000, PROTOCOL_FRAME_MAX, 0x7fffffff, 0x80000000, 0xfffffff3,
	0xffffffff,
};

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
	size_t rounds = 1 + rng_below(3);

	for (size_t r = 0; r < rounds; r++) {
		size_t at = rng_below(len ? len : 1), n;
		uint32_t v = interesting[rng_below(sizeof(interesting) / sizeof(interesting[0]))];

		switch (rng_below(9)) {
		case 0:
			if (len)
				buf[at] ^= (uint8_t)(1u << rng_below(8));
			break;
		case 1:
			if (len)
				buf[at] = (uint8_t)rng();
			break;
		case 2:   /* a little-endian u16 or u32 with a boundary value */
			n = rng_below(2) ? 2 : 4;
			if (at + n <= len) {
				for (size_t i = 0; i < n; i++)
					buf[at + i] = (uint8_t)(v >> (8 * i));
			}
			break;
		case 3:   /* delete a range */
			n = 1 + rng_below(8);
			if (at + n <= len) {
				memmove(buf + at, buf + at + n, len - at - n);
				len -= n;
			}
			break;
		case 4:   /* insert random bytes */
			n = 1 + rng_below(8);
			if (len + n <= cap && at <= len) {
				memmove(buf + at + n, buf + at, len - at);
				for (size_t i = 0; i < n; i++)
					buf[at + i] = (uint8_t)rng();
				len += n;
			}
			break;
		case 5:   /* truncate */
			len = rng_below(len + 1);
			break;
		case 6: { /* duplicate a range (a repeated field, often) */
			size_t from = rng_below(len ? len : 1);
			n = 1 + rng_below(48);
			if (from + n <= len && len + n <= cap && at <= len) {
				uint8_t chunk[48];
				memcpy(chunk, buf + from, n);
				memmove(buf + at + n, buf + at, len - at);
				memcpy(buf + at, chunk, n);
				len += n;
			}
			break;
		}
		case 7: { /* splice another seed's tail */
			const struct seed *other = &seeds[rng_below(seed_count)];
			size_t from = rng_below(other->len + 1);
			if (at + (other->len - from) <= cap && at <= len) {
				memcpy(buf + at, other->bytes + from, other->len - from);
				len = at + (other->len - from);
			}
			break;
		}
		case 8:   /* a field's length to match or miss the rest by one */
			if (at + 4 <= len) {
				uint32_t rest = (uint32_t)(len - at - 4);
				put_le32(buf + at, rest + (uint32_t)rng_below(3) - 1);
			}
			break;
		}
	}
	return len;
}

START_TEST(test_mutations)
{
	static uint8_t buf[PROTOCOL_FRAME_MAX + 128];
	size_t accepted = 0, rejected = 0;

	load_corpus();
	ck_assert_uint_gt(valid_seed_count, 0);
	for (size_t i = 0; i < MUTATION_ROUNDS; i++) {
		const struct seed *seed = &seeds[rng_below(valid_seed_count)];
		size_t len;

		memcpy(buf, seed->bytes, seed->len);
		len = mutate(buf, seed->len, sizeof(buf));
		if (check_frame(buf, len))
			accepted++;
		else
			rejected++;
	}
	/* Both paths were exercised in earnest. */
	ck_assert_uint_gt(accepted, MUTATION_ROUNDS / 100);
	ck_assert_uint_gt(rejected, MUTATION_ROUNDS / 2);
}
END_TEST

/* PROTOCOL_WRITE_CORPUS=DIR: the fuzz seeds, valid frames of every type and a few
 * malformed ones. Not a test: run by hand when the protocol changes. */

static void write_seed(const char *dir, const char *name, const uint8_t *bytes, size_t len)
{
	char path[1024];
	FILE *file;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	file = fopen(path, "wb");
	ck_assert_msg(file != NULL, "cannot write '%s'", path);
	ck_assert_uint_eq(fwrite(bytes, 1, len, file), len);
	ck_assert_int_eq(fclose(file), 0);
}

START_TEST(test_write_corpus)
{
	const char *dir = getenv("PROTOCOL_WRITE_CORPUS");

	for (size_t i = 0; i < TYPE_COUNT; i++) {
		for (int full = 0; full <= 1; full++) {
			struct protocol_message m;
			char name[64];
			uint8_t *frame;
			size_t len;

			sample_message(&m, all_types[i], full);
			ck_assert_int_eq(protocol_encode(&frame, &len, &m), 0);
			snprintf(name, sizeof(name), "%s-%s", protocol_type_name(all_types[i]),
				 full ? "full" : "minimal");
			write_seed(dir, name, frame + 4, len - 4);
			protocol_frame_free(frame, len);
			protocol_message_release(&m);
		}
	}
	body_start(1, PROTOCOL_LEASE, 1);
	body_string(TAG_TEXT, "host");
	body_string(TAG_NAME, "cardio");
	write_seed(dir, "bad-order", body, body_len);
	body_start(1, PROTOCOL_LEASE, 1);
	body_string(TAG_NAME, "cardio");
	body_string(TAG_NAME, "cardio");
	write_seed(dir, "bad-repeated", body, body_len);
	body_start(1, PROTOCOL_KEY_SHRED, 1);
	body_string(TAG_NAME, "../etc");
	write_seed(dir, "bad-name", body, body_len);
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_GRANT, "\x00\xe8\x03\x00\x00\x02\x02\x00\x01\x03\x00" "a/*", 14);
	write_seed(dir, "bad-grant-count", body, body_len);
	body_start(1, PROTOCOL_OK, 1);
	body_field(TAG_GRANT, "\x00\xe8\x03\x00\x00\x02\x01\x00\x01\x09\x00" "a/*", 14);
	write_seed(dir, "bad-glob-length", body, body_len);
	body_start(1, PROTOCOL_ERROR, 1);
	body_u32(TAG_ERROR, 13);
	write_seed(dir, "bad-error", body, body_len);
	body_start(1, PROTOCOL_UNLOCK, 1);
	body_field(TAG_SECRET, "pw", 2);
	body_bytes("\x09\x00\x01", 3);
	write_seed(dir, "bad-trailing", body, body_len);
	body_start(1, PROTOCOL_STATUS, 1);
	write_seed(dir, "bad-truncated", body, 5);
	body_start(2, PROTOCOL_STATUS, 1);
	write_seed(dir, "bad-version", body, body_len);
	body_start(1, PROTOCOL_REVOKE, 1);
	body_string(TAG_NAME, "cardio");
	body_u64(TAG_LEASE_ID, 3);
	write_seed(dir, "bad-revoke-both", body, body_len);
	body_start(1, PROTOCOL_OK, 1);
	body_rekey(2, PROTOCOL_REKEY_RUNNING, 8, 7);
	write_seed(dir, "bad-rekey-counts", body, body_len);
	body_start(1, PROTOCOL_RENEW, 1);
	body_u64(TAG_LEASE_ID, 3);
	body_rekey(2, PROTOCOL_REKEY_RUNNING, 1, 9);
	write_seed(dir, "renew-rekey-running", body, body_len);
}
END_TEST

int main(void)
{
	const char *corpus_out = getenv("PROTOCOL_WRITE_CORPUS");
	Suite *suite = suite_create("protocol");
	TCase *tc = tcase_create("frames");
	TCase *io = tcase_create("io");
	TCase *fuzz = tcase_create("replay");

	if (corpus_out) {
		TCase *write = tcase_create("write corpus");
		tcase_add_checked_fixture(write, setup, NULL);
		tcase_add_test(write, test_write_corpus);
		suite_add_tcase(suite, write);
		return harness_run(suite);
	}
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_known_answer_dataset_create);
	tcase_add_test(tc, test_known_answer_error);
	tcase_add_test(tc, test_known_answer_lease_reply);
	tcase_add_test(tc, test_known_answer_small_messages);
	tcase_add_test(tc, test_known_answer_rekey);
	tcase_add_test(tc, test_rekey_round_trips);
	tcase_add_test(tc, test_rekey_invalid);
	tcase_add_loop_test(tc, test_round_trip_full, 0, TYPE_COUNT);
	tcase_add_loop_test(tc, test_round_trip_minimal, 0, TYPE_COUNT);
	tcase_add_loop_test(tc, test_truncated_and_extended, 0, TYPE_COUNT);
	tcase_add_test(tc, test_bad_header);
	tcase_add_test(tc, test_unknown_and_disallowed_tags);
	tcase_add_test(tc, test_repeated_and_out_of_order);
	tcase_add_test(tc, test_missing_required);
	tcase_add_test(tc, test_field_bounds);
	tcase_add_test(tc, test_field_values);
	tcase_add_test(tc, test_grant_structure);
	tcase_add_test(tc, test_encode_refuses_invalid);
	tcase_add_test(tc, test_secrets_in_secret_memory);
	suite_add_tcase(suite, tc);

	tcase_add_checked_fixture(io, setup, NULL);
	tcase_set_timeout(io, 30);
	tcase_add_test(io, test_send_recv);
	tcase_add_test(io, test_send_recv_large);
	tcase_add_test(io, test_recv_oversize_refused_before_body);
	tcase_add_test(io, test_recv_end_of_stream);
	tcase_add_test(io, test_recv_deadline_and_eintr);
	tcase_add_test(io, test_send_to_closed_peer);
	suite_add_tcase(suite, io);

	tcase_add_checked_fixture(fuzz, setup, NULL);
	tcase_set_timeout(fuzz, 300);
	tcase_add_test(fuzz, test_corpus_replay);
	tcase_add_test(fuzz, test_mutations);
	suite_add_tcase(suite, fuzz);
	return harness_run(suite);
}
