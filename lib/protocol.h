/*
 * The key agent protocol, spoken over the agent's Unix socket by vaultctl and vaultfs.
 * Who is asking is never part of a message: the agent takes it from SO_PEERCRED.
 *
 * Frame: u32 LE length of the body (1..PROTOCOL_FRAME_MAX), then the body:
 *   u16 LE version (PROTOCOL_VERSION), u16 LE type, u32 LE request id,
 *   then fields, each u16 LE tag, u32 LE length, value.
 * Each message type allows a fixed set of tags, each at most once (repeatable list tags
 * excepted) and each with a bounded length; anything else - unknown version, type or
 * tag, a repeated or missing field, a length out of bounds, trailing bytes, a name that
 * is not a valid name - is -EBADMSG, and the receiver closes the connection.
 * Integers in fields are little-endian.
 *
 * Canonical encoding (lib/protocol.c has the tag table): fields appear in ascending tag
 * order, the values of a repeatable tag adjacent; a field the type allows but does not
 * require is present only when it says something (no empty string, zero integer or empty
 * secret), so an accepted frame is the one encoding of its message and re-encodes to the
 * same bytes. Text (messages, host) holds no control characters; errors are -4095..-1;
 * modes are POLICY_RO or POLICY_RW (a rule's may be POLICY_NONE); key versions are
 * nonzero and distinct within a message.
 */
#ifndef VAULTFS_PROTOCOL_H
#define VAULTFS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/crypto.h"
#include "lib/policy.h"

#define PROTOCOL_VERSION 1
#define PROTOCOL_FRAME_MAX (64 * 1024)
#define PROTOCOL_TEXT_MAX 255      /* messages, host names */
#define PROTOCOL_PATH_MAX 4095     /* vault directory */
#define PROTOCOL_SECRET_MAX 1024   /* passphrase */
#define PROTOCOL_KEYS_MAX 64       /* DEK versions in one lease */
#define PROTOCOL_NAMES_MAX 1024    /* datasets in one list */
#define PROTOCOL_GRANTS_MAX 256
#define PROTOCOL_RULES_MAX 64      /* per grant */
#define PROTOCOL_LEASES_MAX 256    /* leases in one listing */
#define MOUNT_SHARED "shared"      /* MOUNT's text: allow_other */

/* Types are wire format: never renumber. Each request is answered by PROTOCOL_OK
 * (with the fields its description names) or PROTOCOL_ERROR (error, text). */
enum protocol_type {
	PROTOCOL_OK = 1,
	PROTOCOL_ERROR = 2,
	PROTOCOL_UNLOCK = 10,          /* secret: passphrase */
	PROTOCOL_STATUS = 11,          /* -> text: "unsealed", "sealed", or "new": sealed
					  and no passphrase set yet (the first unlock sets
					  it) */
	PROTOCOL_DATASET_CREATE = 20,  /* name -> path (vault directory) */
	PROTOCOL_DATASET_LIST = 21,    /* -> names */
	PROTOCOL_LEASE = 30,           /* name, text: host [, lease_id: claim the lease the
					  agent made when it started this daemon] -> lease_id,
					  ttl, path, keys, version (newest), grants, mode (the
					  holder's). Answered only to root and to daemons the
					  agent started: never to a user's process */
	PROTOCOL_RENEW = 31,           /* lease_id [, rekey: the daemon's progress] [, name,
					  path: mountpoint, holder: the lease's holder when not
					  root - so that a restarted agent takes the lease back
					  from a root daemon] -> ttl, grants, keys (new
					  versions) [, rekey: REQUESTED] */
	PROTOCOL_RELEASE = 32,         /* lease_id -> (nothing): unmounted */
	PROTOCOL_REVOKE = 33,          /* name (all leases of a dataset) or lease_id */
	PROTOCOL_MOUNT = 34,           /* name, path: mountpoint [, mode: RO for a read-only
					  mount] [, text: MOUNT_SHARED for a mount others may
					  enter, with the 'share' privilege] -> text: the agent
					  starts vaultfs for the caller and answers once it is
					  mounted (or failed) */
	PROTOCOL_UNMOUNT = 35,         /* path: mountpoint of a mount the agent made for the
					  caller (root: for anyone) */
	PROTOCOL_LEASE_LIST = 36,      /* [name: one dataset] -> leases the caller may see:
					  root all, a 'revoke' admin those of the dataset,
					  anyone those held for them */
	PROTOCOL_KEY_ROTATE = 40,      /* name -> version */
	PROTOCOL_KEY_RETIRE = 41,      /* name, version */
	PROTOCOL_KEY_SHRED = 42,       /* name */
	PROTOCOL_KEK_ROTATE = 43,      /* secret: new passphrase (passphrase KEKs only) */
	PROTOCOL_REKEY = 44,           /* name [, version: only report on that run] ->
					  rekey, text (who does it: online or offline) */
	PROTOCOL_POLICY_RELOAD = 50,
};

/*
 * Re-encrypting a dataset under its newest key version ("rekey"), carried as one
 * fixed field: version u32, state u32, done u64, total u64 (done <= total, version >= 1,
 * state one of these). Absent from a message: state 0.
 *   REKEY reply: the run to version and how far it is.
 *   RENEW reply: REQUESTED, asking the mount's daemon to rekey to version (done = total
 *   = 0) - sent while the agent wants that and has not yet heard RUNNING.
 *   RENEW request: the daemon's own run, RUNNING / DONE / FAILED with its counts; sent
 *   in every renewal once the daemon has begun a run.
 */
enum protocol_rekey_state {
	PROTOCOL_REKEY_REQUESTED = 1,
	PROTOCOL_REKEY_RUNNING = 2,
	PROTOCOL_REKEY_DONE = 3,
	PROTOCOL_REKEY_FAILED = 4,
};

struct protocol_rekey {
	uint32_t version;
	uint32_t state;       /* enum protocol_rekey_state; 0: no rekey field */
	uint64_t done;        /* objects and metadata values re-encrypted */
	uint64_t total;       /* found under older versions when the run began */
};

/* One lease of a listing. */
#define PROTOCOL_LEASE_REVOKED 0x1   /* revoked: its next renewal is refused */
#define PROTOCOL_LEASE_STARTED 0x2   /* the agent started the daemon (a user's mount) */
#define PROTOCOL_LEASE_FLAGS (PROTOCOL_LEASE_REVOKED | PROTOCOL_LEASE_STARTED)
struct protocol_lease {
	uint64_t id;
	uint32_t uid;                   /* holder */
	uint32_t pid;                   /* the daemon */
	uint32_t seconds_left;          /* until it expires without a renewal */
	uint32_t flags;
	char dataset[POLICY_NAME_MAX + 1];
	char mountpoint[PROTOCOL_PATH_MAX + 1];   /* "" when not known */
};

struct protocol_key {
	uint32_t version;
	uint8_t *key;   /* CRYPTO_KEY_LEN bytes of secret memory, owned by the message */
};

/* One message, either direction. Fields a type does not use stay zero/NULL. */
struct protocol_message {
	enum protocol_type type;
	uint32_t id;                    /* echoed in the answer */
	int32_t error;                  /* PROTOCOL_ERROR: -errno */
	char name[POLICY_NAME_MAX + 1];
	char text[PROTOCOL_TEXT_MAX + 1];
	char path[PROTOCOL_PATH_MAX + 1];
	uint64_t lease_id;
	uint32_t ttl;                   /* seconds */
	uint32_t version;
	uint32_t mode;                  /* enum policy_mode */
	uint8_t *secret;                /* secret memory, owned */
	size_t secret_len;
	struct protocol_key *keys;      /* owned */
	size_t key_count;
	char **names;                   /* owned */
	size_t name_count;
	struct policy_grants grants;    /* owned */
	struct protocol_rekey rekey;
	uint32_t holder_uid;            /* RENEW: whom the lease is held for (see above) */
	uint32_t holder_gid;
	struct protocol_lease *leases;  /* owned */
	size_t lease_count;
};

/* The name of a message type for logs and tools ("lease", "key-rotate"; "unknown"). */
const char *protocol_type_name(uint32_t type);

/* Wipe and free everything a message owns, and zero it. */
void protocol_message_release(struct protocol_message *msg);

/* Encode msg as one frame (length prefix included) into *out: secret memory when the
 * message carries a secret or keys, else malloc; free with protocol_frame_free().
 * Fields the type does not use are ignored. Returns 0, -EINVAL for a message that is not
 * valid (unknown type, required field missing, bad name or text, out-of-range value),
 * -EMSGSIZE when the body would exceed PROTOCOL_FRAME_MAX, or -ENOMEM. */
int protocol_encode(uint8_t **out, size_t *out_len, const struct protocol_message *msg)
	__attribute__((warn_unused_result));
void protocol_frame_free(uint8_t *frame, size_t len);

/* Decode one frame body (without its length prefix). Returns 0 or -EBADMSG (-ENOMEM
 * when out of memory; msg then holds nothing). Never reads outside [body, body + len).
 * Secrets and keys are copied into secret memory. Fuzzed. */
int protocol_decode(struct protocol_message *msg, const uint8_t *body, size_t len)
	__attribute__((warn_unused_result));

/* Blocking I/O of whole frames on a stream socket, with a deadline (timeout_ms, -1 none)
 * for the whole frame; EINTR is retried. send never raises SIGPIPE (-EPIPE instead).
 * recv returns -EBADMSG for a malformed frame (a length over PROTOCOL_FRAME_MAX is
 * refused before any of the body is read), -ECONNRESET at end of stream (also inside a
 * frame), -ETIMEDOUT; msg holds nothing on failure. After any failure but -EINVAL or
 * -EMSGSIZE from send, the stream is out of step: close it. */
int protocol_send(int fd, const struct protocol_message *msg, int timeout_ms);
int protocol_recv(int fd, struct protocol_message *msg, int timeout_ms);

#endif
