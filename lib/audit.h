/*
 * The audit trail: one canonical JSON line per access, hash-chained, in append-only
 * segment files outside the vault. Written by a background thread in batches; the data
 * path never waits for a disk flush except through audit_sync() (fsync, close, unmount).
 * Fails closed: once a record cannot be written, audit_ok() says so and the caller
 * refuses the accesses it would describe, until the records are written after all.
 * Only this module uses jansson. The format is vaultfs-audit(5).
 *
 * A record line is a JSON object with sorted keys, no insignificant white space, and
 * (besides the fields the caller sets) "seq" (1, 2, ... over the whole trail), "time"
 * (UTC, "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ") and "prev" (lowercase hex SHA-256 of the
 * previous line's bytes without its newline; 64 zeros for seq 1). Segments are named
 * seg-<seq of their first record, 16 digits>.jsonl and continue the chain.
 */
#ifndef VAULTFS_AUDIT_H
#define VAULTFS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_FIELDS_MAX 32
#define AUDIT_TEXT_MAX 1024     /* a string field's value, in bytes */
#define AUDIT_KEY_MAX 32        /* a field's name, in bytes */
#define AUDIT_HASH_HEX_LEN 64
/* Records appended but not yet durable, in bytes, beyond which audit_append refuses. */
#define AUDIT_QUEUE_MAX ((size_t)64 << 20)

/* One record being built: up to AUDIT_FIELDS_MAX fields, no allocation. Keys are
 * static strings of [a-z0-9_], starting with a letter, at most AUDIT_KEY_MAX bytes, each
 * used once per record, and not one of the names this module writes (seq, time, prev,
 * truncated, dropped): anything else is a bug, and aborts. String values are copied. */
struct audit_record {
	size_t count;
	uint32_t dropped;                       /* fields that did not fit: "dropped" */
	struct audit_field {
		const char *key;
		bool is_text;
		bool truncated;                 /* text was cut short: listed in "truncated" */
		uint64_t number;
		bool negative;                  /* number is -number */
		char text[AUDIT_TEXT_MAX + 1];
	} fields[AUDIT_FIELDS_MAX];
};

/* Start a record with its "action". */
void audit_record_init(struct audit_record *record, const char *action);
/*
 * Add a field. Never fails: the record says what it could. Any bytes may come in as a
 * text: each byte that does not start a well-formed UTF-8 sequence becomes U+FFFD, and a
 * text longer than AUDIT_TEXT_MAX bytes (after that) is cut at a character boundary, its
 * key then listed in the record's "truncated" array. A field added to a full record is
 * counted in "dropped". A NULL value is the empty text. Numbers above INT64_MAX are
 * written as a decimal string (JSON libraries differ on integers past 2^63).
 */
void audit_add_text(struct audit_record *record, const char *key, const char *value);
void audit_add_u64(struct audit_record *record, const char *key, uint64_t value);
void audit_add_i64(struct audit_record *record, const char *key, int64_t value);
/* "result": "ok" for 0, else the errno's name ("EACCES"), from result as an errno or a
 * -errno; "E<number>" for a value without a name here. */
void audit_add_result(struct audit_record *record, int result);

struct audit_trail;

struct audit_options {
	uint64_t segment_max_bytes;     /* 0: 64 MiB */
	uint32_t segment_max_seconds;   /* 0: one day */
	uint32_t batch_ms;              /* longest a record waits to be written; 0: 50 */
};

/*
 * Open (creating it 0700 if missing) the trail in directory dir, which must not be a
 * symbolic link: continue its chain after the last record of its newest segment (the
 * newest segment is sealed and a new one begun), and start the writer thread. Returns
 * 0, -EBADMSG when the newest segment's last line is not a record (a torn write is
 * cut back to the last whole line instead, with a warning in the log), -ELOOP (dir or
 * a segment is a symbolic link), -errno.
 */
int audit_open(struct audit_trail **out, const char *dir, const struct audit_options *options)
	__attribute__((warn_unused_result));

/*
 * Append record (its seq, time and prev are set here) to the queue. Never blocks on
 * I/O; safe from any number of threads, and seq follows the order of the calls. A trail
 * that cannot write keeps queueing (nothing is lost) and audit_ok() fails meanwhile.
 * Returns the record's seq, or 0 when the record was refused and is not in the trail:
 * more than AUDIT_QUEUE_MAX bytes wait to be written (the trail has failed, or its disk
 * is far slower than the accesses; audit_ok() then fails too), or memory ran out.
 */
uint64_t audit_append(struct audit_trail *trail, const struct audit_record *record);

/* Wait until every record appended so far is durable (fsync'd). 0, or -errno of the
 * failure that keeps them from being written (a failed trail is retried once at once,
 * not waited for). */
int audit_sync(struct audit_trail *trail);

/* 0 while every record is being written; -EIO (and a log line, once) after a write
 * failed or a record was refused, until the writer has caught up again. Takes no lock:
 * cheap enough for every request. */
int audit_ok(const struct audit_trail *trail);

/* The hash (hex, NUL-terminated) of the last record appended and its seq: the chain
 * head a checkpoint signs. */
uint64_t audit_head(struct audit_trail *trail, char hash[AUDIT_HASH_HEX_LEN + 1]);

/* Write everything, seal the segment (append-only flag off, immutable where the file
 * system allows; one left empty is removed instead), stop the thread, free. NULL is
 * ignored. Returns what audit_sync returns; records that could not be written are
 * lost, and said so in the log. */
int audit_close(struct audit_trail *trail);

/*
 * Verify the trail in dir: every segment in order, every line canonical JSON with
 * seq, time and prev, seq consecutive across segments, prev the SHA-256 of the line
 * before. Returns 0 with records set, or -EBADMSG with bad_seq and bad_segment (the
 * file name) saying where the first fault is, and why in why; verdict may be NULL.
 * bad_seq is the first record that may be bad: the seq expected where a line is
 * missing, cut short, unreadable or out of order, or, where a line's prev does not
 * match, the record before it (that one, or the line after it, was changed); 0 when
 * none can be named. Any other -errno (-ENOENT, -ELOOP, -EIO) means the trail could
 * not be read. A cut-off tail is only found against a checkpoint (later).
 */
struct audit_verdict {
	uint64_t records;
	uint64_t bad_seq;
	char bad_segment[64];
	char why[160];
};
int audit_verify(const char *dir, struct audit_verdict *verdict)
	__attribute__((warn_unused_result));

/*
 * For tests only: take the time of every record from clock instead of CLOCK_REALTIME
 * (NULL: back to the real clock), so that a record's line is known in advance. Call it
 * before any trail is open: it is not synchronized.
 */
struct timespec;
void audit_set_clock_for_tests(void (*clock)(struct timespec *now));

#endif
