/*
 * The key agent protocol: one table of field tags (bounds, which message types carry
 * each, which must, repeatable or not), a strict decoder that accepts exactly the
 * canonical encoding of a message, the encoder that produces it, and whole-frame socket
 * I/O with deadlines. Passphrases and DEKs only ever sit in secret memory, wire buffers
 * included.
 */
#include "lib/protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/bytes.h"
#include "lib/clock.h"
#include "lib/secret.h"

#define BODY_HEAD_LEN 8     /* version u16, type u16, request id u32 */
#define FIELD_HEAD_LEN 6    /* tag u16, length u32 */
#define LENGTH_PREFIX_LEN 4
#define KEY_FIELD_LEN (4 + CRYPTO_KEY_LEN)   /* version u32, key */
#define REKEY_FIELD_LEN 24  /* version u32, state u32, done u64, total u64 */
#define GRANT_HEAD_LEN 8    /* is_group u8, id u32, mode u8, rule count u16 */
/* id u64, uid u32, pid u32, seconds left u32, flags u8, dataset length u8; then the
 * dataset name and the mountpoint (the rest, maybe empty) */
#define LEASE_HEAD_LEN 22
#define LEASE_OFF_UID 8
#define LEASE_OFF_PID 12
#define LEASE_OFF_LEFT 16
#define LEASE_OFF_FLAGS 20
#define LEASE_OFF_NAME_LEN 21
#define LEASE_MAX_LEN (LEASE_HEAD_LEN + POLICY_NAME_MAX + PROTOCOL_PATH_MAX)
_Static_assert(LEASE_OFF_NAME_LEN + 1 == LEASE_HEAD_LEN, "lease entry head");
#define RULE_HEAD_LEN 3     /* mode u8, glob length u16 */
#define GRANT_MAX_LEN (GRANT_HEAD_LEN + PROTOCOL_RULES_MAX * (RULE_HEAD_LEN + POLICY_GLOB_MAX))
/* Errors travel as -errno; anything outside (-MAX_ERRNO..-1) is not an errno. */
#define ERROR_MIN (-4095)

_Static_assert(POLICY_GLOB_MAX <= UINT16_MAX, "glob length fits its u16");
_Static_assert(PROTOCOL_RULES_MAX <= UINT16_MAX, "rule count fits its u16");
_Static_assert(PROTOCOL_FRAME_MAX <= UINT32_MAX - LENGTH_PREFIX_LEN, "frame length fits");

/* Field tags: wire format, never renumber. The encoder writes fields in this order and
 * the decoder accepts no other (tags ascending, a repeatable tag's values adjacent). */
enum tag {
	TAG_ERROR = 1,      /* i32 LE, -4095..-1 */
	TAG_NAME = 2,       /* dataset name */
	TAG_TEXT = 3,       /* message or host name: no control characters */
	TAG_PATH = 4,       /* vault directory: no NUL */
	TAG_LEASE_ID = 5,   /* u64 LE */
	TAG_TTL = 6,        /* u32 LE seconds */
	TAG_VERSION = 7,    /* u32 LE key version */
	TAG_MODE = 8,       /* u32 LE enum policy_mode, RO or RW */
	TAG_SECRET = 9,     /* passphrase bytes */
	TAG_KEY = 10,       /* repeatable: version u32 LE (>= 1, distinct), key */
	TAG_DATASET = 11,   /* repeatable: dataset name */
	TAG_GRANT = 12,     /* repeatable: is_group u8 (0/1), id u32, mode u8 (RO/RW),
			       rule count u16, then per rule: mode u8 (NONE/RO/RW), glob
			       length u16 (1..POLICY_GLOB_MAX), glob bytes (no NUL) */
	TAG_REKEY = 13,     /* version u32 (>= 1), state u32 (1..4), done u64, total u64
			       (done <= total), all LE: present iff state != 0 */
	TAG_HOLDER = 14,    /* uid u32, gid u32, LE: present iff either is not 0 */
	TAG_LEASE = 15,     /* repeatable: a lease of a listing (LEASE_HEAD_LEN above) */
};

/* Message types as bits, for the sets of the field table. */
enum {
	T_OK = 1u << 0,
	T_ERROR = 1u << 1,
	T_UNLOCK = 1u << 2,
	T_STATUS = 1u << 3,
	T_DATASET_CREATE = 1u << 4,
	T_DATASET_LIST = 1u << 5,
	T_LEASE = 1u << 6,
	T_RENEW = 1u << 7,
	T_RELEASE = 1u << 8,
	T_REVOKE = 1u << 9,
	T_KEY_ROTATE = 1u << 10,
	T_KEY_RETIRE = 1u << 11,
	T_KEY_SHRED = 1u << 12,
	T_KEK_ROTATE = 1u << 13,
	T_POLICY_RELOAD = 1u << 14,
	T_REKEY = 1u << 15,
	T_MOUNT = 1u << 16,
	T_UNMOUNT = 1u << 17,
	T_LEASE_LIST = 1u << 18,
};

static uint32_t type_bit(uint32_t type)
{
	switch (type) {
	case PROTOCOL_OK: return T_OK;
	case PROTOCOL_ERROR: return T_ERROR;
	case PROTOCOL_UNLOCK: return T_UNLOCK;
	case PROTOCOL_STATUS: return T_STATUS;
	case PROTOCOL_DATASET_CREATE: return T_DATASET_CREATE;
	case PROTOCOL_DATASET_LIST: return T_DATASET_LIST;
	case PROTOCOL_LEASE: return T_LEASE;
	case PROTOCOL_RENEW: return T_RENEW;
	case PROTOCOL_RELEASE: return T_RELEASE;
	case PROTOCOL_REVOKE: return T_REVOKE;
	case PROTOCOL_KEY_ROTATE: return T_KEY_ROTATE;
	case PROTOCOL_KEY_RETIRE: return T_KEY_RETIRE;
	case PROTOCOL_KEY_SHRED: return T_KEY_SHRED;
	case PROTOCOL_KEK_ROTATE: return T_KEK_ROTATE;
	case PROTOCOL_POLICY_RELOAD: return T_POLICY_RELOAD;
	case PROTOCOL_REKEY: return T_REKEY;
	case PROTOCOL_MOUNT: return T_MOUNT;
	case PROTOCOL_UNMOUNT: return T_UNMOUNT;
	case PROTOCOL_LEASE_LIST: return T_LEASE_LIST;
	default: return 0;
	}
}

const char *protocol_type_name(uint32_t type)
{
	switch (type) {
	case PROTOCOL_OK: return "ok";
	case PROTOCOL_ERROR: return "error";
	case PROTOCOL_UNLOCK: return "unlock";
	case PROTOCOL_STATUS: return "status";
	case PROTOCOL_DATASET_CREATE: return "dataset-create";
	case PROTOCOL_DATASET_LIST: return "dataset-list";
	case PROTOCOL_LEASE: return "lease";
	case PROTOCOL_RENEW: return "renew";
	case PROTOCOL_RELEASE: return "release";
	case PROTOCOL_REVOKE: return "revoke";
	case PROTOCOL_MOUNT: return "mount";
	case PROTOCOL_UNMOUNT: return "unmount";
	case PROTOCOL_LEASE_LIST: return "lease-list";
	case PROTOCOL_KEY_ROTATE: return "key-rotate";
	case PROTOCOL_KEY_RETIRE: return "key-retire";
	case PROTOCOL_KEY_SHRED: return "key-shred";
	case PROTOCOL_KEK_ROTATE: return "kek-rotate";
	case PROTOCOL_POLICY_RELOAD: return "policy-reload";
	case PROTOCOL_REKEY: return "rekey";
	default: return "unknown";
	}
}

/*
 * A field a type allows but does not require is optional, and present only when it
 * says something: the encoder leaves out an empty string, a zero integer, a missing
 * secret, and the decoder refuses them, so every accepted frame is the one encoding of
 * its message. REVOKE names its target by exactly one of name and lease_id.
 */
struct field_spec {
	uint16_t tag;
	uint32_t min_len;
	uint32_t max_len;
	uint32_t allowed;     /* types that may carry it */
	uint32_t required;    /* types that must */
	bool repeatable;
	size_t max_count;
};

#define NAME_TYPES (T_DATASET_CREATE | T_LEASE | T_KEY_ROTATE | T_KEY_RETIRE | T_KEY_SHRED | \
		    T_REKEY | T_MOUNT)

static const struct field_spec field_specs[] = {
	/* tag, min, max length, allowed in, required in, repeatable, at most */
	{ TAG_ERROR, 4, 4, T_ERROR, T_ERROR, false, 1 },
	{ TAG_NAME, 1, POLICY_NAME_MAX, NAME_TYPES | T_REVOKE | T_RENEW | T_LEASE_LIST, NAME_TYPES,
	  false, 1 },
	{ TAG_TEXT, 1, PROTOCOL_TEXT_MAX, T_OK | T_ERROR | T_LEASE | T_MOUNT, 0, false, 1 },
	{ TAG_PATH, 1, PROTOCOL_PATH_MAX, T_OK | T_MOUNT | T_UNMOUNT | T_RENEW,
	  T_MOUNT | T_UNMOUNT, false, 1 },
	{ TAG_LEASE_ID, 8, 8, T_OK | T_LEASE | T_RENEW | T_RELEASE | T_REVOKE, T_RENEW | T_RELEASE,
	  false, 1 },
	{ TAG_TTL, 4, 4, T_OK, 0, false, 1 },
	{ TAG_VERSION, 4, 4, T_OK | T_KEY_RETIRE | T_REKEY, T_KEY_RETIRE, false, 1 },
	{ TAG_MODE, 4, 4, T_OK | T_MOUNT, 0, false, 1 },
	{ TAG_SECRET, 1, PROTOCOL_SECRET_MAX, T_UNLOCK | T_KEK_ROTATE, T_UNLOCK | T_KEK_ROTATE,
	  false, 1 },
	{ TAG_KEY, KEY_FIELD_LEN, KEY_FIELD_LEN, T_OK, 0, true, PROTOCOL_KEYS_MAX },
	{ TAG_DATASET, 1, POLICY_NAME_MAX, T_OK, 0, true, PROTOCOL_NAMES_MAX },
	{ TAG_GRANT, GRANT_HEAD_LEN, GRANT_MAX_LEN, T_OK, 0, true, PROTOCOL_GRANTS_MAX },
	{ TAG_REKEY, REKEY_FIELD_LEN, REKEY_FIELD_LEN, T_OK | T_RENEW, 0, false, 1 },
	{ TAG_HOLDER, 8, 8, T_RENEW, 0, false, 1 },
	{ TAG_LEASE, LEASE_HEAD_LEN + 1, LEASE_MAX_LEN, T_OK, 0, true, PROTOCOL_LEASES_MAX },
};

#define FIELD_COUNT (sizeof(field_specs) / sizeof(field_specs[0]))
_Static_assert(FIELD_COUNT == TAG_LEASE, "one table entry per tag, in tag order");

static const struct field_spec *field_spec(uint16_t tag)
{
	if (tag == 0 || tag > FIELD_COUNT)
		return NULL;
	if (field_specs[tag - 1].tag != tag)
		abort();   /* the table is out of tag order */
	return &field_specs[tag - 1];
}

static bool text_valid(const uint8_t *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text[i] < 0x20 || text[i] == 0x7f)
			return false;
	return true;
}

/* A rekey field says something: a version, a known state, counts that add up. */
static bool rekey_valid(const struct protocol_rekey *rekey)
{
	return rekey->version != 0 && rekey->state >= PROTOCOL_REKEY_REQUESTED &&
	       rekey->state <= PROTOCOL_REKEY_FAILED && rekey->done <= rekey->total;
}

void protocol_message_release(struct protocol_message *msg)
{
	if (msg->secret)
		secret_free(msg->secret);
	for (size_t i = 0; i < msg->key_count; i++)
		secret_free(msg->keys[i].key);
	free(msg->keys);
	for (size_t i = 0; i < msg->name_count; i++)
		free(msg->names[i]);
	free(msg->names);
	free(msg->leases);
	policy_grants_release(&msg->grants);
	secret_wipe(msg, sizeof(*msg));
}

/* Decoding. */

/* A string field into its fixed buffer (room for len + 1 bytes, checked by the table). */
static void copy_string(char *dst, const uint8_t *value, size_t len)
{
	memcpy(dst, value, len);
	dst[len] = '\0';
}

static int decode_lease(struct protocol_lease *lease, const uint8_t *value, size_t len)
{
	size_t name_len = value[LEASE_OFF_NAME_LEN];
	size_t path_len;

	if (name_len == 0 || name_len > POLICY_NAME_MAX || LEASE_HEAD_LEN + name_len > len)
		return -EBADMSG;
	path_len = len - LEASE_HEAD_LEN - name_len;
	if (path_len > PROTOCOL_PATH_MAX || memchr(value + LEASE_HEAD_LEN, '\0', len - LEASE_HEAD_LEN))
		return -EBADMSG;
	lease->id = get_le64(value);
	lease->uid = get_le32(value + LEASE_OFF_UID);
	lease->pid = get_le32(value + LEASE_OFF_PID);
	lease->seconds_left = get_le32(value + LEASE_OFF_LEFT);
	lease->flags = value[LEASE_OFF_FLAGS];
	copy_string(lease->dataset, value + LEASE_HEAD_LEN, name_len);
	copy_string(lease->mountpoint, value + LEASE_HEAD_LEN + name_len, path_len);
	if (lease->id == 0 || (lease->flags & ~PROTOCOL_LEASE_FLAGS) ||
	    !policy_name_valid(lease->dataset))
		return -EBADMSG;
	return 0;
}

static int decode_grant(struct policy_grant *grant, const uint8_t *value, size_t len)
{
	size_t pos = GRANT_HEAD_LEN;
	uint8_t is_group = value[0];
	uint8_t mode = value[5];
	uint16_t rule_count = get_le16(value + 6);
	int err = -EBADMSG;

	memset(grant, 0, sizeof(*grant));
	if (is_group > 1 || (mode != POLICY_RO && mode != POLICY_RW) ||
	    rule_count > PROTOCOL_RULES_MAX)
		return -EBADMSG;
	/* Each rule takes at least RULE_HEAD_LEN + 1 bytes: a count the value cannot hold
	 * is refused before anything is allocated for it. */
	if (rule_count > (len - GRANT_HEAD_LEN) / (RULE_HEAD_LEN + 1))
		return -EBADMSG;
	grant->is_group = is_group;
	grant->id = get_le32(value + 1);
	grant->mode = mode;
	if (rule_count > 0) {
		grant->rules = calloc(rule_count, sizeof(*grant->rules));
		if (!grant->rules)
			return -ENOMEM;
	}
	for (size_t i = 0; i < rule_count; i++) {
		struct policy_rule *rule = &grant->rules[i];
		uint16_t glob_len;

		if (len - pos < RULE_HEAD_LEN)
			goto out_free;
		if (value[pos] > POLICY_RW)
			goto out_free;
		rule->mode = value[pos];
		glob_len = get_le16(value + pos + 1);
		pos += RULE_HEAD_LEN;
		if (glob_len == 0 || glob_len > POLICY_GLOB_MAX || glob_len > len - pos)
			goto out_free;
		if (memchr(value + pos, '\0', glob_len))
			goto out_free;
		copy_string(rule->glob, value + pos, glob_len);
		pos += glob_len;
	}
	if (pos != len)
		goto out_free;
	grant->rule_count = rule_count;
	return 0;

out_free:
	free(grant->rules);
	memset(grant, 0, sizeof(*grant));
	return err;
}

static int decode_field(struct protocol_message *msg, const struct field_spec *spec,
			bool required, const uint8_t *value, size_t len)
{
	switch (spec->tag) {
	case TAG_ERROR: {
		int32_t error = (int32_t)get_le32(value);
		if (error < ERROR_MIN || error > -1)
			return -EBADMSG;
		msg->error = error;
		return 0;
	}
	case TAG_NAME:
		if (memchr(value, '\0', len))
			return -EBADMSG;
		copy_string(msg->name, value, len);
		return policy_name_valid(msg->name) ? 0 : -EBADMSG;
	case TAG_TEXT:
		if (!text_valid(value, len))
			return -EBADMSG;
		copy_string(msg->text, value, len);
		return 0;
	case TAG_PATH:
		if (memchr(value, '\0', len))
			return -EBADMSG;
		copy_string(msg->path, value, len);
		return 0;
	case TAG_LEASE_ID:
		msg->lease_id = get_le64(value);
		return msg->lease_id || required ? 0 : -EBADMSG;
	case TAG_TTL:
		msg->ttl = get_le32(value);
		return msg->ttl || required ? 0 : -EBADMSG;
	case TAG_VERSION:
		msg->version = get_le32(value);
		return msg->version || required ? 0 : -EBADMSG;
	case TAG_MODE:
		msg->mode = get_le32(value);
		return msg->mode == POLICY_RO || msg->mode == POLICY_RW ? 0 : -EBADMSG;
	case TAG_HOLDER:
		msg->holder_uid = get_le32(value);
		msg->holder_gid = get_le32(value + 4);
		return msg->holder_uid || msg->holder_gid ? 0 : -EBADMSG;
	case TAG_LEASE:
		return decode_lease(&msg->leases[msg->lease_count++], value, len);
	case TAG_SECRET:
		msg->secret = secret_alloc(len);
		if (!msg->secret)
			return -ENOMEM;
		memcpy(msg->secret, value, len);
		msg->secret_len = len;
		return 0;
	case TAG_KEY: {
		struct protocol_key *key = &msg->keys[msg->key_count];
		uint32_t version = get_le32(value);

		if (version == 0)
			return -EBADMSG;
		for (size_t i = 0; i < msg->key_count; i++)
			if (msg->keys[i].version == version)
				return -EBADMSG;
		key->key = secret_alloc(CRYPTO_KEY_LEN);
		if (!key->key)
			return -ENOMEM;
		memcpy(key->key, value + 4, CRYPTO_KEY_LEN);
		key->version = version;
		msg->key_count++;
		return 0;
	}
	case TAG_DATASET: {
		char name[POLICY_NAME_MAX + 1];

		if (memchr(value, '\0', len))
			return -EBADMSG;
		copy_string(name, value, len);
		if (!policy_name_valid(name))
			return -EBADMSG;
		msg->names[msg->name_count] = strdup(name);
		if (!msg->names[msg->name_count])
			return -ENOMEM;
		msg->name_count++;
		return 0;
	}
	case TAG_GRANT: {
		int err = decode_grant(&msg->grants.grants[msg->grants.count], value, len);
		if (err == 0)
			msg->grants.count++;
		return err;
	}
	case TAG_REKEY:
		msg->rekey.version = get_le32(value);
		msg->rekey.state = get_le32(value + 4);
		msg->rekey.done = get_le64(value + 8);
		msg->rekey.total = get_le64(value + 16);
		return rekey_valid(&msg->rekey) ? 0 : -EBADMSG;
	}
	return -EBADMSG;
}

int protocol_decode(struct protocol_message *msg, const uint8_t *body, size_t len)
{
	size_t counts[FIELD_COUNT] = { 0 };
	uint16_t previous_tag = 0;
	uint32_t bit;
	size_t pos;
	int err = -EBADMSG;

	memset(msg, 0, sizeof(*msg));
	if (len < BODY_HEAD_LEN || len > PROTOCOL_FRAME_MAX)
		return -EBADMSG;
	if (get_le16(body) != PROTOCOL_VERSION)
		return -EBADMSG;
	bit = type_bit(get_le16(body + 2));
	if (!bit)
		return -EBADMSG;

	/* First pass: framing, order, bounds and counts, before anything is allocated. */
	for (pos = BODY_HEAD_LEN; pos < len;) {
		const struct field_spec *spec;
		uint16_t tag;
		uint32_t field_len;

		if (len - pos < FIELD_HEAD_LEN)
			return -EBADMSG;
		tag = get_le16(body + pos);
		field_len = get_le32(body + pos + 2);
		pos += FIELD_HEAD_LEN;
		if (field_len > len - pos)
			return -EBADMSG;
		spec = field_spec(tag);
		if (!spec || !(spec->allowed & bit))
			return -EBADMSG;
		if (tag < previous_tag || (tag == previous_tag && !spec->repeatable))
			return -EBADMSG;
		if (field_len < spec->min_len || field_len > spec->max_len)
			return -EBADMSG;
		if (++counts[tag - 1] > spec->max_count)
			return -EBADMSG;
		previous_tag = tag;
		pos += field_len;
	}
	for (size_t i = 0; i < FIELD_COUNT; i++)
		if ((field_specs[i].required & bit) && counts[i] == 0)
			return -EBADMSG;
	if (bit == T_REVOKE && counts[TAG_NAME - 1] + counts[TAG_LEASE_ID - 1] != 1)
		return -EBADMSG;

	/* Second pass: values, into lists sized by the first. */
	msg->type = get_le16(body + 2);
	msg->id = get_le32(body + 4);
	err = -ENOMEM;
	if (counts[TAG_KEY - 1] &&
	    !(msg->keys = calloc(counts[TAG_KEY - 1], sizeof(*msg->keys))))
		goto out_release;
	if (counts[TAG_DATASET - 1] &&
	    !(msg->names = calloc(counts[TAG_DATASET - 1], sizeof(*msg->names))))
		goto out_release;
	if (counts[TAG_GRANT - 1] &&
	    !(msg->grants.grants = calloc(counts[TAG_GRANT - 1], sizeof(*msg->grants.grants))))
		goto out_release;
	if (counts[TAG_LEASE - 1] &&
	    !(msg->leases = calloc(counts[TAG_LEASE - 1], sizeof(*msg->leases))))
		goto out_release;
	for (pos = BODY_HEAD_LEN; pos < len;) {
		uint16_t tag = get_le16(body + pos);
		uint32_t field_len = get_le32(body + pos + 2);
		/* The first pass checked every tag against the table. */
		const struct field_spec *spec = &field_specs[tag - 1];

		pos += FIELD_HEAD_LEN;
		err = decode_field(msg, spec, spec->required & bit, body + pos, field_len);
		if (err)
			goto out_release;
		pos += field_len;
	}
	return 0;

out_release:
	protocol_message_release(msg);
	return err;
}

/* Encoding: one walk over the table that either measures (buf NULL) or writes. */

struct writer {
	uint8_t *buf;
	size_t pos;
	bool secret;   /* a secret or a key was written */
};

static void put_bytes(struct writer *w, const void *bytes, size_t len)
{
	if (w->buf && len)
		memcpy(w->buf + w->pos, bytes, len);
	w->pos += len;
}

static void put_u8(struct writer *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void put_u16(struct writer *w, uint16_t v)
{
	uint8_t bytes[2];
	put_le16(bytes, v);
	put_bytes(w, bytes, sizeof(bytes));
}

static void put_u32(struct writer *w, uint32_t v)
{
	uint8_t bytes[4];
	put_le32(bytes, v);
	put_bytes(w, bytes, sizeof(bytes));
}

static void put_field(struct writer *w, uint16_t tag, const void *value, size_t len)
{
	put_u16(w, tag);
	put_u32(w, (uint32_t)len);
	put_bytes(w, value, len);
}

static void put_field_u32(struct writer *w, uint16_t tag, uint32_t v)
{
	uint8_t bytes[4];
	put_le32(bytes, v);
	put_field(w, tag, bytes, sizeof(bytes));
}

static int put_lease(struct writer *w, const struct protocol_lease *lease)
{
	size_t name_len = strnlen(lease->dataset, sizeof(lease->dataset));
	size_t path_len = strnlen(lease->mountpoint, sizeof(lease->mountpoint));
	uint8_t head[LEASE_HEAD_LEN];

	if (lease->id == 0 || (lease->flags & ~PROTOCOL_LEASE_FLAGS) ||
	    name_len > POLICY_NAME_MAX || !policy_name_valid(lease->dataset) ||
	    path_len > PROTOCOL_PATH_MAX)
		return -EINVAL;
	put_le64(head, lease->id);
	put_le32(head + LEASE_OFF_UID, lease->uid);
	put_le32(head + LEASE_OFF_PID, lease->pid);
	put_le32(head + LEASE_OFF_LEFT, lease->seconds_left);
	head[LEASE_OFF_FLAGS] = (uint8_t)lease->flags;
	head[LEASE_OFF_NAME_LEN] = (uint8_t)name_len;
	put_u16(w, TAG_LEASE);
	put_u32(w, (uint32_t)(LEASE_HEAD_LEN + name_len + path_len));
	put_bytes(w, head, sizeof(head));
	put_bytes(w, lease->dataset, name_len);
	put_bytes(w, lease->mountpoint, path_len);
	return 0;
}

static int put_grant(struct writer *w, const struct policy_grant *grant)
{
	size_t len = GRANT_HEAD_LEN;

	if (grant->mode != POLICY_RO && grant->mode != POLICY_RW)
		return -EINVAL;
	if (grant->rule_count > PROTOCOL_RULES_MAX || (grant->rule_count && !grant->rules))
		return -EINVAL;
	for (size_t i = 0; i < grant->rule_count; i++) {
		const struct policy_rule *rule = &grant->rules[i];
		size_t glob_len = strnlen(rule->glob, sizeof(rule->glob));

		if (glob_len == 0 || glob_len > POLICY_GLOB_MAX || (unsigned)rule->mode > POLICY_RW)
			return -EINVAL;
		len += RULE_HEAD_LEN + glob_len;
	}
	put_u16(w, TAG_GRANT);
	put_u32(w, (uint32_t)len);
	put_u8(w, grant->is_group ? 1 : 0);
	put_u32(w, grant->id);
	put_u8(w, (uint8_t)grant->mode);
	put_u16(w, (uint16_t)grant->rule_count);
	for (size_t i = 0; i < grant->rule_count; i++) {
		const struct policy_rule *rule = &grant->rules[i];
		size_t glob_len = strlen(rule->glob);

		put_u8(w, (uint8_t)rule->mode);
		put_u16(w, (uint16_t)glob_len);
		put_bytes(w, rule->glob, glob_len);
	}
	return 0;
}

/* A NUL-terminated string field of at most max bytes; empty means absent. */
static int put_string(struct writer *w, uint16_t tag, const char *s, size_t size, size_t max,
		      bool required)
{
	size_t len = strnlen(s, size);

	if (len == 0)
		return required ? -EINVAL : 0;
	if (len > max)
		return -EINVAL;
	put_field(w, tag, s, len);
	return 0;
}

static int put_spec(struct writer *w, const struct protocol_message *msg,
		    const struct field_spec *spec, bool required)
{
	switch (spec->tag) {
	case TAG_ERROR:
		if (msg->error < ERROR_MIN || msg->error > -1)
			return -EINVAL;
		put_field_u32(w, TAG_ERROR, (uint32_t)msg->error);
		return 0;
	case TAG_NAME:
		if (strnlen(msg->name, sizeof(msg->name)) > POLICY_NAME_MAX ||
		    (msg->name[0] && !policy_name_valid(msg->name)))
			return -EINVAL;
		return put_string(w, TAG_NAME, msg->name, sizeof(msg->name), POLICY_NAME_MAX,
				  required);
	case TAG_TEXT:
		if (!text_valid((const uint8_t *)msg->text, strnlen(msg->text, sizeof(msg->text))))
			return -EINVAL;
		return put_string(w, TAG_TEXT, msg->text, sizeof(msg->text), PROTOCOL_TEXT_MAX,
				  required);
	case TAG_PATH:
		return put_string(w, TAG_PATH, msg->path, sizeof(msg->path), PROTOCOL_PATH_MAX,
				  required);
	case TAG_LEASE_ID:
		if (msg->lease_id || required) {
			uint8_t bytes[8];
			put_le64(bytes, msg->lease_id);
			put_field(w, TAG_LEASE_ID, bytes, sizeof(bytes));
		}
		return 0;
	case TAG_TTL:
		if (msg->ttl || required)
			put_field_u32(w, TAG_TTL, msg->ttl);
		return 0;
	case TAG_VERSION:
		if (msg->version || required)
			put_field_u32(w, TAG_VERSION, msg->version);
		return 0;
	case TAG_MODE:
		if (msg->mode == POLICY_NONE)
			return 0;
		if (msg->mode != POLICY_RO && msg->mode != POLICY_RW)
			return -EINVAL;
		put_field_u32(w, TAG_MODE, msg->mode);
		return 0;
	case TAG_SECRET:
		if (!msg->secret || msg->secret_len == 0)
			return required ? -EINVAL : 0;
		if (msg->secret_len > PROTOCOL_SECRET_MAX)
			return -EINVAL;
		put_field(w, TAG_SECRET, msg->secret, msg->secret_len);
		w->secret = true;
		return 0;
	case TAG_KEY:
		if (msg->key_count > PROTOCOL_KEYS_MAX || (msg->key_count && !msg->keys))
			return -EINVAL;
		for (size_t i = 0; i < msg->key_count; i++) {
			const struct protocol_key *key = &msg->keys[i];

			if (!key->key || key->version == 0)
				return -EINVAL;
			for (size_t j = 0; j < i; j++)
				if (msg->keys[j].version == key->version)
					return -EINVAL;
			put_u16(w, TAG_KEY);
			put_u32(w, KEY_FIELD_LEN);
			put_u32(w, key->version);
			put_bytes(w, key->key, CRYPTO_KEY_LEN);
			w->secret = true;
		}
		return 0;
	case TAG_DATASET:
		if (msg->name_count > PROTOCOL_NAMES_MAX || (msg->name_count && !msg->names))
			return -EINVAL;
		for (size_t i = 0; i < msg->name_count; i++) {
			if (!msg->names[i] || !policy_name_valid(msg->names[i]))
				return -EINVAL;
			put_field(w, TAG_DATASET, msg->names[i], strlen(msg->names[i]));
		}
		return 0;
	case TAG_GRANT:
		if (msg->grants.count > PROTOCOL_GRANTS_MAX ||
		    (msg->grants.count && !msg->grants.grants))
			return -EINVAL;
		for (size_t i = 0; i < msg->grants.count; i++) {
			int err = put_grant(w, &msg->grants.grants[i]);
			if (err)
				return err;
		}
		return 0;
	case TAG_REKEY: {
		uint8_t bytes[REKEY_FIELD_LEN];

		if (msg->rekey.state == 0)
			return 0;
		if (!rekey_valid(&msg->rekey))
			return -EINVAL;
		put_le32(bytes, msg->rekey.version);
		put_le32(bytes + 4, msg->rekey.state);
		put_le64(bytes + 8, msg->rekey.done);
		put_le64(bytes + 16, msg->rekey.total);
		put_field(w, TAG_REKEY, bytes, sizeof(bytes));
		return 0;
	}
	case TAG_LEASE:
		if (msg->lease_count > PROTOCOL_LEASES_MAX || (msg->lease_count && !msg->leases))
			return -EINVAL;
		for (size_t i = 0; i < msg->lease_count; i++) {
			int err = put_lease(w, &msg->leases[i]);
			if (err)
				return err;
		}
		return 0;
	case TAG_HOLDER: {
		uint8_t bytes[8];

		if (!msg->holder_uid && !msg->holder_gid)
			return 0;
		put_le32(bytes, msg->holder_uid);
		put_le32(bytes + 4, msg->holder_gid);
		put_field(w, TAG_HOLDER, bytes, sizeof(bytes));
		return 0;
	}
	}
	return -EINVAL;
}

static int put_message(struct writer *w, const struct protocol_message *msg)
{
	uint32_t bit = type_bit(msg->type);

	if (!bit)
		return -EINVAL;
	if (bit == T_REVOKE && (msg->name[0] != '\0') == (msg->lease_id != 0))
		return -EINVAL;
	put_u32(w, 0);   /* length prefix, written once the length is known */
	put_u16(w, PROTOCOL_VERSION);
	put_u16(w, (uint16_t)msg->type);
	put_u32(w, msg->id);
	for (size_t i = 0; i < FIELD_COUNT; i++) {
		const struct field_spec *spec = &field_specs[i];
		int err;

		if (!(spec->allowed & bit))
			continue;
		err = put_spec(w, msg, spec, spec->required & bit);
		if (err)
			return err;
	}
	if (w->buf)
		put_le32(w->buf, (uint32_t)(w->pos - LENGTH_PREFIX_LEN));
	return 0;
}

/*
 * A frame is handed out behind a hidden header that says which allocator it came from,
 * so that protocol_frame_free() needs no flag from the caller.
 */
#define FRAME_HIDDEN_LEN 16
enum { FRAME_PLAIN = 0x50, FRAME_SECRET = 0x53 };

int protocol_encode(uint8_t **out, size_t *out_len, const struct protocol_message *msg)
{
	struct writer w = { 0 };
	uint8_t *base;
	size_t len;
	int err;

	*out = NULL;
	*out_len = 0;
	err = put_message(&w, msg);
	if (err)
		return err;
	len = w.pos;
	if (len - LENGTH_PREFIX_LEN > PROTOCOL_FRAME_MAX)
		return -EMSGSIZE;
	base = w.secret ? secret_alloc(FRAME_HIDDEN_LEN + len) : malloc(FRAME_HIDDEN_LEN + len);
	if (!base)
		return -ENOMEM;
	base[0] = w.secret ? FRAME_SECRET : FRAME_PLAIN;
	w = (struct writer){ .buf = base + FRAME_HIDDEN_LEN };
	err = put_message(&w, msg);
	if (err || w.pos != len)
		abort();   /* the measuring walk and the writing walk disagree */
	*out = base + FRAME_HIDDEN_LEN;
	*out_len = len;
	return 0;
}

void protocol_frame_free(uint8_t *frame, size_t len)
{
	uint8_t *base;

	if (!frame)
		return;
	base = frame - FRAME_HIDDEN_LEN;
	if (base[0] == FRAME_SECRET) {
		secret_free(base);
	} else {
		secret_wipe(base, FRAME_HIDDEN_LEN + len);
		free(base);
	}
}

/* Socket I/O. */

struct deadline {
	bool none;
	struct timespec at;   /* CLOCK_MONOTONIC */
};

static void deadline_start(struct deadline *d, int timeout_ms)
{
	d->none = timeout_ms < 0;
	clock_after_ms(CLOCK_MONOTONIC, d->none ? 0 : timeout_ms, &d->at);
}

/* Milliseconds left, rounded up so poll() never spins on a sub-millisecond rest. */
static int deadline_left_ms(const struct deadline *d)
{
	struct timespec now;
	long long left_ns;

	if (d->none)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	left_ns = (long long)(d->at.tv_sec - now.tv_sec) * 1000000000LL + (d->at.tv_nsec - now.tv_nsec);
	if (left_ns <= 0)
		return 0;
	return (int)((left_ns + 999999) / 1000000);
}

static int wait_ready(int fd, short events, const struct deadline *d)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int ready = poll(&pfd, 1, deadline_left_ms(d));

		if (ready > 0)
			return 0;
		if (ready == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int write_all(int fd, const uint8_t *buf, size_t len, const struct deadline *d)
{
	while (len > 0) {
		ssize_t n;
		int err = wait_ready(fd, POLLOUT, d);

		if (err)
			return err;
		/* MSG_NOSIGNAL: a peer gone away is -EPIPE, not a SIGPIPE that kills us. */
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, uint8_t *buf, size_t len, const struct deadline *d)
{
	while (len > 0) {
		ssize_t n;
		int err = wait_ready(fd, POLLIN, d);

		if (err)
			return err;
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int protocol_send(int fd, const struct protocol_message *msg, int timeout_ms)
{
	struct deadline deadline;
	uint8_t *frame;
	size_t len;
	int err;

	err = protocol_encode(&frame, &len, msg);
	if (err)
		return err;
	deadline_start(&deadline, timeout_ms);
	err = write_all(fd, frame, len, &deadline);
	protocol_frame_free(frame, len);
	return err;
}

int protocol_recv(int fd, struct protocol_message *msg, int timeout_ms)
{
	struct deadline deadline;
	uint8_t prefix[LENGTH_PREFIX_LEN];
	uint8_t *body;
	uint32_t len;
	int err;

	memset(msg, 0, sizeof(*msg));
	deadline_start(&deadline, timeout_ms);
	err = read_all(fd, prefix, sizeof(prefix), &deadline);
	if (err)
		return err;
	len = get_le32(prefix);
	/* Refused before a byte of the body is read or a byte allocated for it. */
	if (len == 0 || len > PROTOCOL_FRAME_MAX)
		return -EBADMSG;
	/* The body may carry a passphrase or keys: it lands in secret memory only. */
	body = secret_alloc(len);
	if (!body)
		return -ENOMEM;
	err = read_all(fd, body, len, &deadline);
	if (err)
		goto out_free;
	err = protocol_decode(msg, body, len);

out_free:
	secret_free(body);
	return err;
}
