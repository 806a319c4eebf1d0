/*
 * The audit trail. audit_append() encodes a record with jansson into its canonical line
 * under one lock, so that seq and prev follow the order of the calls, and queues it; a
 * writer thread appends the queue to the open segment, fdatasyncs it, and only then
 * forgets it. A write or sync that fails leaves the records queued and the trail failed
 * until a retry succeeds, and the segment is first cut back to its last durable line,
 * so no torn record is ever continued. audit_verify() reads the segments back.
 */
#include "lib/audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/clock.h"
#include "lib/crypto.h"
#include "lib/log.h"

#define SEGMENT_PREFIX "seg-"
#define SEGMENT_SUFFIX ".jsonl"
#define SEGMENT_DIGITS 16
#define SEGMENT_NAME_LEN (sizeof(SEGMENT_PREFIX) - 1 + SEGMENT_DIGITS + sizeof(SEGMENT_SUFFIX) - 1)

/* sort_keys, separators (',', ':'), ensure_ascii: the canonical form of a line. */
#define LINE_JSON_FLAGS (JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII)

/* "2026-12-03T09:30:00.123456789Z"; formatted into TIME_TEXT_MAX bytes, as a broken
 * clock past the year 9999 makes it longer (and audit_verify refuses it). */
#define TIME_LEN 30
#define TIME_TEXT_MAX 64

/*
 * The longest line a record makes: every field a text of AUDIT_TEXT_MAX bytes, each byte
 * escaped to at most 6 (a control character as \u0001; U+FFFD is 3 bytes as 6), its key
 * also listed in "truncated", and the chain fields. Nothing this module writes is longer,
 * so a longer "line" is not one of its records.
 */
#define LINE_MAX_BYTES (AUDIT_FIELDS_MAX * (6 * AUDIT_TEXT_MAX + 2 * AUDIT_KEY_MAX + 32) + 1024)

#define DEFAULT_SEGMENT_BYTES ((uint64_t)64 << 20)
#define DEFAULT_SEGMENT_SECONDS (24 * 3600)
#define DEFAULT_BATCH_MS 50
/* A queue this large is written at once rather than at the end of the batch window. */
#define BATCH_EAGER_BYTES ((size_t)256 << 10)
/* A failed trail is retried this often (and at once by audit_sync()). */
#define RETRY_MS 1000

static const char zero_hash_hex[AUDIT_HASH_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static void (*clock_for_tests)(struct timespec *now);

/* Lines in order: seq first_seq, first_seq + 1, ... each ending in '\n'. */
struct line_queue {
	char *bytes;
	size_t len;
	size_t capacity;
	uint64_t first_seq;     /* of the first line, when len > 0 */
};

struct audit_trail {
	pthread_mutex_t lock;
	pthread_cond_t wake;            /* to the writer: work, hurry, stop (CLOCK_MONOTONIC) */
	pthread_cond_t progress;        /* from the writer: an attempt ended */

	/* Under lock. */
	uint64_t seq;                   /* the last record appended */
	uint8_t head[CRYPTO_SHA256_LEN]; /* SHA-256 of its line */
	struct line_queue queue;        /* appended, not yet taken by the writer */
	size_t batch_pending;           /* bytes the writer holds, not yet durable */
	uint64_t durable_seq;           /* every record up to it is fsync'd */
	uint64_t attempts_started;      /* the writer's write-and-sync rounds */
	uint64_t attempts_done;
	uint64_t hurry_until;           /* audit_sync(): start round hurry_until without delay */
	bool stopping;
	/* 0, or the -errno that keeps records from being written (also set, to -ENOBUFS, by
	 * an append refused for a full queue). Written under lock; audit_ok() reads it
	 * without. */
	atomic_int failed;

	/* The writer's own (audit_open and audit_close use them while no thread runs). */
	struct line_queue batch;        /* taken from queue; bytes before batch_off are durable */
	size_t batch_off;
	uint64_t written_seq;           /* the last record made durable */
	int dir_fd;
	int segment_fd;                 /* -1 when none is open */
	char segment_name[SEGMENT_NAME_LEN + 1];
	uint64_t segment_len;           /* bytes of whole, durable lines */
	struct timespec segment_born;   /* CLOCK_MONOTONIC */
	bool segment_append_only;       /* FS_APPEND_FL is set on it */

	uint64_t segment_max_bytes;
	uint32_t segment_max_seconds;
	uint32_t batch_ms;
	pthread_t thread;
};

/* A broken invariant: a caller's bug that no run may continue past. */
static void audit_bug(const char *what, const char *key)
{
	log_error("audit: bug: %s '%s'", what, key ? key : "(null)");
	abort();
}

/* Records ---------------------------------------------------------------------------- */

static bool key_reserved(const char *key)
{
	static const char *const reserved[] = { "seq", "time", "prev", "truncated", "dropped" };

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(key, reserved[i]) == 0)
			return true;
	return false;
}

static bool key_valid(const char *key)
{
	size_t len;

	if (!key || key[0] < 'a' || key[0] > 'z')
		return false;
	for (len = 0; key[len]; len++) {
		char c = key[len];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return len <= AUDIT_KEY_MAX && !key_reserved(key);
}

/* The next field of record for key, or NULL (counted as dropped) when it is full. */
static struct audit_field *field_add(struct audit_record *record, const char *key)
{
	struct audit_field *field;

	if (!key_valid(key))
		audit_bug("invalid audit field name", key);
	for (size_t i = 0; i < record->count && i < AUDIT_FIELDS_MAX; i++)
		if (strcmp(record->fields[i].key, key) == 0)
			audit_bug("audit field added twice", key);
	if (record->count >= AUDIT_FIELDS_MAX) {
		record->dropped++;
		return NULL;
	}
	field = &record->fields[record->count++];
	field->key = key;
	field->is_text = false;
	field->truncated = false;
	field->number = 0;
	field->negative = false;
	field->text[0] = '\0';
	return field;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), 0 when s does not start one. Reads no further than
 * the first byte that breaks the sequence, so never past a terminating NUL.
 */
static size_t utf8_sequence(const uint8_t *s)
{
	uint8_t lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2)
		return 0;
	if (s[0] < 0xe0) {
		len = 2;
	} else if (s[0] < 0xf0) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] < 0xf5) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Copy value into out as well-formed UTF-8 of at most AUDIT_TEXT_MAX bytes. Returns
 * whether it was cut short. */
static bool text_copy(char out[AUDIT_TEXT_MAX + 1], const char *value)
{
	static const uint8_t replacement[] = { 0xef, 0xbf, 0xbd };     /* U+FFFD */
	const uint8_t *in = (const uint8_t *)value;
	size_t len = 0;
	bool cut = false;

	while (*in) {
		size_t in_len, out_len;
		const uint8_t *from = in;

		/* Most texts are ASCII: copy a run of it at once, reading no more of it
		 * than can fit. */
		if (*in < 0x80) {
			size_t room = AUDIT_TEXT_MAX - len, run = 0;
			while (run <= room && in[run] && in[run] < 0x80)
				run++;
			if (run > room) {
				run = room;
				cut = true;
			}
			memcpy(out + len, in, run);
			len += run;
			in += run;
			if (cut)
				break;
			continue;
		}
		in_len = utf8_sequence(in);
		out_len = in_len;
		if (in_len == 0) {
			from = replacement;
			out_len = sizeof(replacement);
			in_len = 1;
		}
		if (len + out_len > AUDIT_TEXT_MAX) {
			cut = true;
			break;
		}
		memcpy(out + len, from, out_len);
		len += out_len;
		in += in_len;
	}
	out[len] = '\0';
	return cut;
}

void audit_record_init(struct audit_record *record, const char *action)
{
	record->count = 0;
	record->dropped = 0;
	audit_add_text(record, "action", action);
}

void audit_add_text(struct audit_record *record, const char *key, const char *value)
{
	struct audit_field *field = field_add(record, key);

	if (!field)
		return;
	field->is_text = true;
	field->truncated = text_copy(field->text, value ? value : "");
}

void audit_add_u64(struct audit_record *record, const char *key, uint64_t value)
{
	struct audit_field *field = field_add(record, key);

	if (field)
		field->number = value;
}

void audit_add_i64(struct audit_record *record, const char *key, int64_t value)
{
	struct audit_field *field = field_add(record, key);

	if (!field)
		return;
	field->negative = value < 0;
	/* -(value + 1) + 1: INT64_MIN has no positive int64_t. */
	field->number = value < 0 ? (uint64_t)(-(value + 1)) + 1 : (uint64_t)value;
}

#define ERRNO_NAME(e) { e, #e }
static const struct {
	int value;
	const char *name;
} errno_names[] = {
	ERRNO_NAME(EPERM), ERRNO_NAME(ENOENT), ERRNO_NAME(ESRCH), ERRNO_NAME(EINTR),
	ERRNO_NAME(EIO), ERRNO_NAME(ENXIO), ERRNO_NAME(E2BIG), ERRNO_NAME(ENOEXEC),
	ERRNO_NAME(EBADF), ERRNO_NAME(ECHILD), ERRNO_NAME(EAGAIN), ERRNO_NAME(ENOMEM),
	ERRNO_NAME(EACCES), ERRNO_NAME(EFAULT), ERRNO_NAME(EBUSY), ERRNO_NAME(EEXIST),
	ERRNO_NAME(EXDEV), ERRNO_NAME(ENODEV), ERRNO_NAME(ENOTDIR), ERRNO_NAME(EISDIR),
	ERRNO_NAME(EINVAL), ERRNO_NAME(ENFILE), ERRNO_NAME(EMFILE), ERRNO_NAME(ENOTTY),
	ERRNO_NAME(ETXTBSY), ERRNO_NAME(EFBIG), ERRNO_NAME(ENOSPC), ERRNO_NAME(ESPIPE),
	ERRNO_NAME(EROFS), ERRNO_NAME(EMLINK), ERRNO_NAME(EPIPE), ERRNO_NAME(ERANGE),
	ERRNO_NAME(EDEADLK), ERRNO_NAME(ENAMETOOLONG), ERRNO_NAME(ENOLCK), ERRNO_NAME(ENOSYS),
	ERRNO_NAME(ENOTEMPTY), ERRNO_NAME(ELOOP), ERRNO_NAME(ENOMSG), ERRNO_NAME(ENODATA),
	ERRNO_NAME(ETIME), ERRNO_NAME(ENOLINK), ERRNO_NAME(EPROTO), ERRNO_NAME(EBADMSG),
	ERRNO_NAME(EOVERFLOW), ERRNO_NAME(EILSEQ), ERRNO_NAME(EUSERS), ERRNO_NAME(ENOTSOCK),
	ERRNO_NAME(EMSGSIZE), ERRNO_NAME(EOPNOTSUPP), ERRNO_NAME(EADDRINUSE),
	ERRNO_NAME(ENETDOWN), ERRNO_NAME(ENETUNREACH), ERRNO_NAME(ECONNABORTED),
	ERRNO_NAME(ECONNRESET), ERRNO_NAME(ENOBUFS), ERRNO_NAME(EISCONN), ERRNO_NAME(ENOTCONN),
	ERRNO_NAME(ETIMEDOUT), ERRNO_NAME(ECONNREFUSED), ERRNO_NAME(EHOSTUNREACH),
	ERRNO_NAME(EALREADY), ERRNO_NAME(EINPROGRESS), ERRNO_NAME(ESTALE), ERRNO_NAME(EDQUOT),
	ERRNO_NAME(ECANCELED), ERRNO_NAME(ENOKEY), ERRNO_NAME(EKEYEXPIRED),
	ERRNO_NAME(EKEYREVOKED), ERRNO_NAME(EKEYREJECTED), ERRNO_NAME(EOWNERDEAD),
	ERRNO_NAME(ENOTRECOVERABLE), ERRNO_NAME(ENOMEDIUM), ERRNO_NAME(EREMOTEIO),
};
#undef ERRNO_NAME

void audit_add_result(struct audit_record *record, int result)
{
	long long value = result < 0 ? -(long long)result : result;
	char name[32];

	if (value == 0) {
		audit_add_text(record, "result", "ok");
		return;
	}
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++) {
		if (errno_names[i].value == value) {
			audit_add_text(record, "result", errno_names[i].name);
			return;
		}
	}
	snprintf(name, sizeof(name), "E%lld", value);
	audit_add_text(record, "result", name);
}

static json_t *number_json(uint64_t number, bool negative)
{
	char decimal[24];

	if (!negative && number <= INT64_MAX)
		return json_integer((json_int_t)number);
	if (negative)       /* at most 2^63: from an int64_t */
		return json_integer(-(json_int_t)(number - 1) - 1);
	snprintf(decimal, sizeof(decimal), "%llu", (unsigned long long)number);
	return json_string_nocheck(decimal);
}

/* The record's fields as a JSON object, without seq, time and prev; NULL when out of
 * memory. Keys and texts were checked when they were added (valid names; well-formed
 * UTF-8 without NUL), so jansson's own checks (_nocheck) are skipped. */
static json_t *record_json(const struct audit_record *record)
{
	json_t *object = json_object(), *truncated = NULL;
	size_t count = record->count < AUDIT_FIELDS_MAX ? record->count : AUDIT_FIELDS_MAX;

	if (!object)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		const struct audit_field *field = &record->fields[i];
		json_t *value = field->is_text ? json_string_nocheck(field->text) :
			number_json(field->number, field->negative);

		if (json_object_set_new_nocheck(object, field->key, value) != 0)
			goto out_free;
		if (!field->truncated)
			continue;
		if (!truncated) {
			truncated = json_array();
			if (json_object_set_new_nocheck(object, "truncated", truncated) != 0)
				goto out_free;
		}
		if (json_array_append_new(truncated, json_string_nocheck(field->key)) != 0)
			goto out_free;
	}
	if (record->dropped &&
	    json_object_set_new_nocheck(object, "dropped", json_integer(record->dropped)) != 0)
		goto out_free;
	return object;
out_free:
	json_decref(object);
	return NULL;
}

static void time_format(char out[TIME_TEXT_MAX], const struct timespec *now)
{
	time_t seconds = now->tv_sec;
	struct tm tm;

	gmtime_r(&seconds, &tm);
	snprintf(out, TIME_TEXT_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)now->tv_nsec);
}

static bool digits(const char *s, size_t n, int min, int max)
{
	int value = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		value = value * 10 + (s[i] - '0');
	}
	return value >= min && value <= max;
}

static bool time_valid(const char *s)
{
	return strlen(s) == TIME_LEN && digits(s, 4, 0, 9999) && s[4] == '-' &&
	       digits(s + 5, 2, 1, 12) && s[7] == '-' && digits(s + 8, 2, 1, 31) &&
	       s[10] == 'T' && digits(s + 11, 2, 0, 23) && s[13] == ':' &&
	       digits(s + 14, 2, 0, 59) && s[16] == ':' && digits(s + 17, 2, 0, 60) &&
	       s[19] == '.' && digits(s + 20, 9, 0, 999999999) && s[29] == 'Z';
}

void audit_set_clock_for_tests(void (*clock)(struct timespec *now))
{
	clock_for_tests = clock;
}

/* Queues -------------------------------------------------------------------------------- */

static int queue_reserve(struct line_queue *queue, size_t need)
{
	size_t capacity = queue->capacity ? queue->capacity : 64 << 10;
	char *grown;

	if (need <= queue->capacity)
		return 0;
	while (capacity < need)
		capacity *= 2;
	grown = realloc(queue->bytes, capacity);
	if (!grown)
		return -ENOMEM;
	queue->bytes = grown;
	queue->capacity = capacity;
	return 0;
}

static uint64_t lines_in(const char *bytes, size_t len)
{
	const char *end = bytes + len;
	uint64_t lines = 0;

	while ((bytes = memchr(bytes, '\n', (size_t)(end - bytes))) != NULL) {
		lines++;
		bytes++;
	}
	return lines;
}

/* Segment files ----------------------------------------------------------------------- */

static void segment_name(char name[SEGMENT_NAME_LEN + 1], uint64_t first_seq)
{
	snprintf(name, SEGMENT_NAME_LEN + 1, SEGMENT_PREFIX "%0*llu" SEGMENT_SUFFIX,
		 SEGMENT_DIGITS, (unsigned long long)first_seq);
}

/* Whether name is exactly seg-<16 digits>.jsonl, and its number. */
static bool segment_seq_of(const char *name, uint64_t *first_seq)
{
	const char *number = name + sizeof(SEGMENT_PREFIX) - 1;
	uint64_t value = 0;

	if (strlen(name) != SEGMENT_NAME_LEN ||
	    strncmp(name, SEGMENT_PREFIX, sizeof(SEGMENT_PREFIX) - 1) != 0 ||
	    strcmp(number + SEGMENT_DIGITS, SEGMENT_SUFFIX) != 0)
		return false;
	for (int i = 0; i < SEGMENT_DIGITS; i++) {
		if (number[i] < '0' || number[i] > '9')
			return false;
		value = value * 10 + (uint64_t)(number[i] - '0');
	}
	*first_seq = value;
	return true;
}

struct name_list {
	char **names;
	size_t count;
};

static void name_list_release(struct name_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->names[i]);
	free(list->names);
	list->names = NULL;
	list->count = 0;
}

static int name_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every name in dir_fd that starts with "seg-", sorted (the zero-padded numbers sort
 * like the numbers). */
static int segments_list(int dir_fd, struct name_list *list)
{
	struct dirent *entry;
	size_t capacity = 0;
	DIR *dir;
	int fd, err = 0;

	list->names = NULL;
	list->count = 0;
	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		err = -errno;
		close(fd);
		return err;
	}
	errno = 0;
	while ((entry = readdir(dir)) != NULL) {
		if (strncmp(entry->d_name, SEGMENT_PREFIX, sizeof(SEGMENT_PREFIX) - 1) != 0)
			continue;
		if (list->count == capacity) {
			size_t grown_capacity = capacity ? 2 * capacity : 64;
			char **grown = realloc(list->names, grown_capacity * sizeof(*grown));
			if (!grown) {
				err = -ENOMEM;
				goto out_close;
			}
			list->names = grown;
			capacity = grown_capacity;
		}
		list->names[list->count] = strdup(entry->d_name);
		if (!list->names[list->count]) {
			err = -ENOMEM;
			goto out_close;
		}
		list->count++;
		errno = 0;
	}
	if (errno)
		err = -errno;
	else if (list->count)
		qsort(list->names, list->count, sizeof(*list->names), name_compare);
out_close:
	closedir(dir);
	if (err)
		name_list_release(list);
	return err;
}

/* Open the trail directory dir (made 0700 first when create), never through a link as
 * its last component (-ELOOP). A trailing slash would make open(2) follow a link, so it
 * is dropped. */
static int trail_dir_open(const char *dir, bool create)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	struct stat st;
	int fd, err;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len == 0)
		return -ENOENT;
	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len);
	path[len] = '\0';
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	err = -errno;
	/* O_DIRECTORY answers a link with ENOTDIR. */
	if (err == -ENOTDIR && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		err = -ELOOP;
	return err;
}

/*
 * Set and clear inode flags (chattr's a and i) on fd where the file system and our
 * privileges allow: tmpfs before Linux 6.0, overlayfs and processes without
 * CAP_LINUX_IMMUTABLE answer ENOTTY, EOPNOTSUPP or EPERM, and the trail then goes
 * without. Returns whether the flags are now as asked.
 */
static bool inode_flags_change(int fd, int set, int clear)
{
	int flags, err;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0) {
		err = errno;
		goto out_failed;
	}
	if ((flags & set) == set && (flags & clear) == 0)
		return true;
	flags = (flags | set) & ~clear;
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0)
		return true;
	err = errno;
out_failed:
	if (err != EPERM && err != ENOTTY && err != EOPNOTSUPP && err != EINVAL)
		log_warn("audit: cannot change the inode flags of an audit segment: %s",
			 strerror(err));
	return false;
}

/* Writing ---------------------------------------------------------------------------- */

static int write_all(int fd, const char *bytes, size_t len)
{
	while (len > 0) {
		ssize_t done = write(fd, bytes, len);
		if (done < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (done == 0)
			return -EIO;
		bytes += done;
		len -= (size_t)done;
	}
	return 0;
}

/* Cut the open segment back to its durable length: a write or sync that failed may
 * have left part of a line (or lines not known to be on disk) behind it. */
static int segment_cut(struct audit_trail *trail)
{
	int err = 0;

	if (trail->segment_append_only)
		inode_flags_change(trail->segment_fd, 0, FS_APPEND_FL);
	if (ftruncate(trail->segment_fd, (off_t)trail->segment_len) < 0)
		err = -errno;
	if (trail->segment_append_only)
		inode_flags_change(trail->segment_fd, FS_APPEND_FL, 0);
	return err;
}

/* Make fd the open segment, named name, with len durable bytes, append-only while it is
 * written. */
static void segment_adopt(struct audit_trail *trail, int fd, const char *name, uint64_t len)
{
	trail->segment_fd = fd;
	snprintf(trail->segment_name, sizeof(trail->segment_name), "%s", name);
	trail->segment_len = len;
	clock_gettime(CLOCK_MONOTONIC, &trail->segment_born);
	trail->segment_append_only = inode_flags_change(fd, FS_APPEND_FL, 0);
}

/* Begin the segment whose first record is first_seq. An empty file of that name (left
 * by a failed attempt or a crash) is taken over; one with records is not. The directory
 * is synced so that the new name survives a crash. */
static int segment_create(struct audit_trail *trail, uint64_t first_seq)
{
	char name[SEGMENT_NAME_LEN + 1];
	struct stat st;
	int fd, err;

	segment_name(name, first_seq);
	fd = openat(trail->dir_fd, name,
		    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != 0) {
		err = -EEXIST;
		goto out_close;
	}
	if (fsync(trail->dir_fd) < 0) {
		err = -errno;
		goto out_close;
	}
	segment_adopt(trail, fd, name, 0);
	return 0;
out_close:
	close(fd);
	return err;
}

/* Seal the open segment (its lines are durable already) and close it: no more
 * appending, immutable where the file system allows. An empty one is removed instead,
 * as it would be taken over by the next open, which a sealed one could not be. */
static void segment_seal(struct audit_trail *trail)
{
	if (trail->segment_fd < 0)
		return;
	if (trail->segment_len == 0) {
		/* An append-only file cannot be unlinked. */
		if (trail->segment_append_only)
			inode_flags_change(trail->segment_fd, 0, FS_APPEND_FL);
		if (unlinkat(trail->dir_fd, trail->segment_name, 0) == 0)
			(void)fsync(trail->dir_fd);
	} else {
		inode_flags_change(trail->segment_fd, FS_IMMUTABLE_FL, FS_APPEND_FL);
	}
	close(trail->segment_fd);
	trail->segment_fd = -1;
}

static bool segment_due(const struct audit_trail *trail)
{
	return trail->segment_len > 0 &&
	       (trail->segment_len >= trail->segment_max_bytes ||
		clock_ms_since(CLOCK_MONOTONIC, &trail->segment_born) >=
			(long long)trail->segment_max_seconds * 1000);
}

/* The open segment, ready to take the next line: made when there is none, and cut
 * back when a failed attempt left bytes behind its durable lines. */
static int segment_ready(struct audit_trail *trail, uint64_t next_seq)
{
	struct stat st;

	if (trail->segment_fd < 0)
		return segment_create(trail, next_seq);
	if (fstat(trail->segment_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size == trail->segment_len)
		return 0;
	if ((uint64_t)st.st_size > trail->segment_len)
		return segment_cut(trail);
	/* Shorter than what was made durable: not our doing. Leave it as found for
	 * audit_verify to report, and go on in a new segment. */
	log_error("audit: segment '%s' lost records after they were written: continuing in "
		  "a new segment; run 'vaultctl audit verify'", trail->segment_name);
	close(trail->segment_fd);
	trail->segment_fd = -1;
	return segment_create(trail, next_seq);
}

/* How many bytes of whole lines from bytes (len, > 0) go into the open segment: what
 * fits below segment_max_bytes, at least one line in an empty segment; 0 when the
 * segment must be sealed first. */
static size_t piece_len(const struct audit_trail *trail, const char *bytes, size_t len)
{
	uint64_t room = trail->segment_max_bytes > trail->segment_len ?
		trail->segment_max_bytes - trail->segment_len : 0;
	const char *end;

	if (len <= room)
		return len;
	end = room ? memrchr(bytes, '\n', (size_t)room) : NULL;
	if (end)
		return (size_t)(end - bytes) + 1;
	if (trail->segment_len > 0)
		return 0;
	end = memchr(bytes, '\n', len);
	return end ? (size_t)(end - bytes) + 1 : len;
}

/*
 * One attempt of the writer: append what the batch holds to the segments, rotating as
 * they fill or age, and make each piece durable before it counts as written. On a
 * failure the segment is cut back to its durable lines (what remains of the batch is
 * written again by the next attempt). Returns 0 or the -errno that stopped it.
 */
static int batch_write(struct audit_trail *trail)
{
	int err = 0;

	while (trail->batch_off < trail->batch.len) {
		const char *bytes = trail->batch.bytes + trail->batch_off;
		size_t left = trail->batch.len - trail->batch_off, piece;

		if (trail->segment_fd >= 0 && segment_due(trail))
			segment_seal(trail);
		err = segment_ready(trail, trail->batch.first_seq);
		if (err)
			break;
		piece = piece_len(trail, bytes, left);
		if (piece == 0) {
			segment_seal(trail);
			continue;
		}
		err = write_all(trail->segment_fd, bytes, piece);
		if (!err && fdatasync(trail->segment_fd) < 0)
			err = -errno;
		if (err) {
			(void)segment_cut(trail);   /* else segment_ready() cuts before the retry */
			break;
		}
		trail->segment_len += piece;
		trail->batch_off += piece;
		trail->batch.first_seq += lines_in(bytes, piece);
		trail->written_seq = trail->batch.first_seq - 1;
	}
	if (trail->batch_off == trail->batch.len)
		trail->batch_off = trail->batch.len = 0;
	return err;
}

/* Move the queue to the writer's batch (under lock). Returns 0 or -ENOMEM. */
static int batch_take(struct audit_trail *trail)
{
	struct line_queue *queue = &trail->queue, *batch = &trail->batch;
	size_t left = batch->len - trail->batch_off;
	int err;

	if (queue->len == 0)
		return 0;
	if (left == 0) {
		struct line_queue swap = *batch;
		*batch = *queue;
		*queue = swap;
		queue->len = 0;
		trail->batch_off = 0;
		return 0;
	}
	/* A failed attempt left lines: the queue goes behind them. */
	memmove(batch->bytes, batch->bytes + trail->batch_off, left);
	batch->len = left;
	trail->batch_off = 0;
	err = queue_reserve(batch, left + queue->len);
	if (err)
		return err;
	memcpy(batch->bytes + left, queue->bytes, queue->len);
	batch->len += queue->len;
	queue->len = 0;
	return 0;
}

/* Wait (under lock) until there is something to write and either a caller hurries or
 * the batch window, or the retry delay of a failed trail, has passed; or until stop. */
static void writer_wait(struct audit_trail *trail)
{
	bool timed = false;
	struct timespec deadline;

	while (!trail->stopping) {
		bool failed = atomic_load(&trail->failed) != 0;

		if (trail->queue.len == 0 && trail->batch.len == trail->batch_off) {
			pthread_cond_wait(&trail->wake, &trail->lock);
			timed = false;
			continue;
		}
		if (trail->attempts_started < trail->hurry_until)
			return;
		if (!failed && trail->queue.len >= BATCH_EAGER_BYTES)
			return;
		if (!timed) {
			clock_after_ms(CLOCK_MONOTONIC, failed ? RETRY_MS : (long)trail->batch_ms,
				       &deadline);
			timed = true;
		}
		if (pthread_cond_timedwait(&trail->wake, &trail->lock, &deadline) == ETIMEDOUT)
			return;
	}
}

static void *writer_main(void *arg)
{
	struct audit_trail *trail = arg;

	pthread_mutex_lock(&trail->lock);
	for (;;) {
		int err, was_failed;
		bool stopping;

		writer_wait(trail);
		stopping = trail->stopping;
		if (trail->queue.len == 0 && trail->batch.len == trail->batch_off) {
			if (stopping)
				break;
			continue;
		}
		err = batch_take(trail);
		trail->attempts_started++;
		trail->batch_pending = trail->batch.len - trail->batch_off;
		pthread_mutex_unlock(&trail->lock);

		if (!err)
			err = batch_write(trail);

		pthread_mutex_lock(&trail->lock);
		trail->batch_pending = trail->batch.len - trail->batch_off;
		trail->durable_seq = trail->written_seq;
		trail->attempts_done++;
		was_failed = atomic_load(&trail->failed);
		atomic_store(&trail->failed, err);
		pthread_cond_broadcast(&trail->progress);
		pthread_mutex_unlock(&trail->lock);
		/* Never a record's content here: it may hold data derived from PHI. */
		if (err && !was_failed)
			log_error("audit: cannot write the audit trail (segment '%s'): %s: accesses "
				  "are refused until it can", trail->segment_name, strerror(-err));
		else if (!err && was_failed)
			log_warn("audit: the audit trail is written again: accesses are allowed");
		pthread_mutex_lock(&trail->lock);
		if (stopping)
			break;
	}
	pthread_mutex_unlock(&trail->lock);
	return NULL;
}

/* Opening ---------------------------------------------------------------------------- */

/*
 * The last whole line of the segment fd (size bytes): into line (malloc'd, without its
 * newline; NULL when the segment holds no whole line), and in *whole_len the length of
 * the whole lines, less than size when the segment ends in a torn write. -EBADMSG when
 * what is there cannot be lines of this module.
 */
static int segment_last_line(int fd, uint64_t size, char **line, size_t *line_len,
			     uint64_t *whole_len)
{
	size_t window = size < 2 * (uint64_t)LINE_MAX_BYTES + 2 ? (size_t)size :
		2 * (size_t)LINE_MAX_BYTES + 2;
	uint64_t start = size - window;
	char *buf, *end, *begin;
	int err = 0;

	*line = NULL;
	*line_len = 0;
	*whole_len = 0;
	if (size == 0)
		return 0;
	buf = malloc(window);
	if (!buf)
		return -ENOMEM;
	for (size_t got = 0; got < window;) {
		ssize_t n = pread(fd, buf + got, window - got, (off_t)(start + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			goto out_free;
		}
		got += (size_t)n;
	}
	end = memrchr(buf, '\n', window);
	if (!end) {
		/* No whole line at all: the file is one torn line, or not a segment. */
		err = start == 0 && window <= LINE_MAX_BYTES ? 0 : -EBADMSG;
		goto out_free;
	}
	*whole_len = start + (uint64_t)(end - buf) + 1;
	begin = memrchr(buf, '\n', (size_t)(end - buf));
	begin = begin ? begin + 1 : buf;
	if ((begin == buf && start != 0) || size - *whole_len > LINE_MAX_BYTES) {
		err = -EBADMSG;
		goto out_free;
	}
	*line_len = (size_t)(end - begin);
	*line = malloc(*line_len + 1);
	if (!*line) {
		err = -ENOMEM;
		goto out_free;
	}
	memcpy(*line, begin, *line_len);
	(*line)[*line_len] = '\0';
out_free:
	free(buf);
	return err;
}

/* Cut segment name (open as fd) back to its whole lines. */
static int segment_cut_torn(struct audit_trail *trail, int fd, const char *name,
			    uint64_t size, uint64_t whole_len)
{
	int write_fd, err = 0;

	inode_flags_change(fd, 0, FS_APPEND_FL);
	write_fd = openat(trail->dir_fd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (write_fd < 0)
		return -errno;
	if (ftruncate(write_fd, (off_t)whole_len) < 0 || fsync(write_fd) < 0)
		err = -errno;
	close(write_fd);
	if (!err)
		log_warn("audit: segment '%s' ended in a torn write: cut back to its last whole "
			 "line (%llu bytes dropped)", name,
			 (unsigned long long)(size - whole_len));
	return err;
}

/* The seq of a record's line, or 0 when it is not one. */
static uint64_t line_seq(const char *line, size_t len)
{
	json_t *object = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *seq = json_object_get(object, "seq");
	uint64_t value = 0;

	if (json_is_object(object) && json_is_integer(seq) && json_integer_value(seq) > 0)
		value = (uint64_t)json_integer_value(seq);
	json_decref(object);
	return value;
}

/*
 * Find where the chain stands: the last record of the newest segment that has one
 * (sealing that segment, cutting off a torn write first), and the segment to go on in:
 * the newest when it is empty (a crash right after making it), else a new one.
 */
static int chain_resume(struct audit_trail *trail)
{
	struct name_list list;
	const char *reuse = NULL;
	uint64_t first_seq = 0;
	bool newest = true;
	int err;

	err = segments_list(trail->dir_fd, &list);
	if (err)
		return err;
	for (size_t i = list.count; i-- > 0;) {
		const char *name = list.names[i];
		uint64_t whole_len, seq;
		struct stat st;
		size_t line_len;
		char *line;
		int fd;

		if (!segment_seq_of(name, &first_seq))
			continue;           /* audit_verify reports it */
		fd = openat(trail->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			err = -errno;
			goto out_release;
		}
		if (fstat(fd, &st) < 0)
			err = -errno;
		else if (!S_ISREG(st.st_mode))
			err = -EBADMSG;
		if (err) {
			close(fd);
			goto out_release;
		}
		err = segment_last_line(fd, (uint64_t)st.st_size, &line, &line_len, &whole_len);
		if (!err && whole_len < (uint64_t)st.st_size)
			err = segment_cut_torn(trail, fd, name, (uint64_t)st.st_size, whole_len);
		if (err) {
			free(line);
			close(fd);
			goto out_release;
		}
		if (!line) {
			close(fd);
			if (newest)
				reuse = name;
			newest = false;
			continue;
		}
		seq = line_seq(line, line_len);
		if (seq == 0 || seq < first_seq) {
			log_error("audit: the last line of segment '%s' is not an audit record: "
				  "run 'vaultctl audit verify'", name);
			err = -EBADMSG;
		} else {
			trail->seq = seq;
			crypto_sha256(trail->head, line, line_len);
			/* Left append-only by a crash: it is done now. */
			inode_flags_change(fd, FS_IMMUTABLE_FL, FS_APPEND_FL);
		}
		free(line);
		close(fd);
		break;
	}
	if (err)
		goto out_release;
	if (reuse) {
		int fd;

		(void)segment_seq_of(reuse, &first_seq);
		if (first_seq != trail->seq + 1) {
			log_error("audit: segment '%s' should be named for seq %llu: run 'vaultctl "
				  "audit verify'", reuse, (unsigned long long)(trail->seq + 1));
			err = -EBADMSG;
			goto out_release;
		}
		fd = openat(trail->dir_fd, reuse,
			    O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			err = -errno;
			goto out_release;
		}
		segment_adopt(trail, fd, reuse, 0);
	} else {
		err = segment_create(trail, trail->seq + 1);
	}
out_release:
	name_list_release(&list);
	return err;
}

int audit_open(struct audit_trail **out, const char *dir, const struct audit_options *options)
{
	struct audit_trail *trail;
	pthread_condattr_t monotonic;
	int err;

	*out = NULL;
	trail = calloc(1, sizeof(*trail));
	if (!trail)
		return -ENOMEM;
	trail->segment_fd = -1;
	trail->segment_max_bytes = options && options->segment_max_bytes ?
		options->segment_max_bytes : DEFAULT_SEGMENT_BYTES;
	trail->segment_max_seconds = options && options->segment_max_seconds ?
		options->segment_max_seconds : DEFAULT_SEGMENT_SECONDS;
	trail->batch_ms = options && options->batch_ms ? options->batch_ms : DEFAULT_BATCH_MS;
	atomic_init(&trail->failed, 0);
	pthread_mutex_init(&trail->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&trail->wake, &monotonic);
	pthread_condattr_destroy(&monotonic);
	pthread_cond_init(&trail->progress, NULL);

	trail->dir_fd = trail_dir_open(dir, true);
	if (trail->dir_fd < 0) {
		err = trail->dir_fd;
		goto out_free;
	}
	err = chain_resume(trail);
	if (err)
		goto out_close;
	trail->durable_seq = trail->written_seq = trail->seq;
	err = queue_reserve(&trail->queue, BATCH_EAGER_BYTES);
	if (err)
		goto out_segment;
	err = -pthread_create(&trail->thread, NULL, writer_main, trail);
	if (err)
		goto out_segment;
	*out = trail;
	return 0;
out_segment:
	segment_seal(trail);
out_close:
	close(trail->dir_fd);
out_free:
	free(trail->queue.bytes);
	pthread_cond_destroy(&trail->progress);
	pthread_cond_destroy(&trail->wake);
	pthread_mutex_destroy(&trail->lock);
	free(trail);
	return err;
}

/* Appending ---------------------------------------------------------------------------- */

/* Set seq, time and prev on object and encode it as the next line of the queue, under
 * lock. Returns the seq, or 0 when refused. */
static uint64_t line_append(struct audit_trail *trail, json_t *object)
{
	struct line_queue *queue = &trail->queue;
	char time_text[TIME_TEXT_MAX], prev[AUDIT_HASH_HEX_LEN + 1];
	uint64_t seq = trail->seq + 1;
	struct timespec now;
	size_t len, room;

	if (clock_for_tests)
		clock_for_tests(&now);
	else
		clock_gettime(CLOCK_REALTIME, &now);
	time_format(time_text, &now);
	crypto_to_hex(prev, sizeof(prev), trail->head, sizeof(trail->head));
	if (json_object_set_new_nocheck(object, "seq", json_integer((json_int_t)seq)) != 0 ||
	    json_object_set_new_nocheck(object, "time", json_string_nocheck(time_text)) != 0 ||
	    json_object_set_new_nocheck(object, "prev", json_string_nocheck(prev)) != 0 ||
	    queue_reserve(queue, queue->len + 4096) != 0)
		return 0;
	room = queue->capacity - queue->len;
	len = json_dumpb(object, queue->bytes + queue->len, room, LINE_JSON_FLAGS);
	if (len + 1 > room && len != 0) {
		if (queue_reserve(queue, queue->len + len + 1) != 0)
			return 0;
		room = queue->capacity - queue->len;
		len = json_dumpb(object, queue->bytes + queue->len, room, LINE_JSON_FLAGS);
	}
	if (len == 0 || len + 1 > room)
		return 0;
	if (queue->len + len + 1 + trail->batch_pending > AUDIT_QUEUE_MAX)
		return 0;
	crypto_sha256(trail->head, queue->bytes + queue->len, len);
	queue->bytes[queue->len + len] = '\n';
	if (queue->len == 0)
		queue->first_seq = seq;
	queue->len += len + 1;
	trail->seq = seq;
	return seq;
}

uint64_t audit_append(struct audit_trail *trail, const struct audit_record *record)
{
	json_t *object = record_json(record);
	uint64_t seq = 0;
	size_t before;
	int was_failed = 0;

	if (!object)
		goto out_refused;
	pthread_mutex_lock(&trail->lock);
	before = trail->queue.len;
	seq = line_append(trail, object);
	if (seq && (before == 0 ||
		    (before < BATCH_EAGER_BYTES && trail->queue.len >= BATCH_EAGER_BYTES)))
		pthread_cond_signal(&trail->wake);
	if (!seq) {
		was_failed = atomic_load(&trail->failed);
		if (!was_failed)
			atomic_store(&trail->failed, -ENOBUFS);
	}
	pthread_mutex_unlock(&trail->lock);
	json_decref(object);
	if (seq)
		return seq;
out_refused:
	if (!was_failed)
		log_error("audit: an audit record was refused (%zu MiB wait to be written, or out "
			  "of memory): accesses are refused until the trail catches up",
			  AUDIT_QUEUE_MAX >> 20);
	return 0;
}

int audit_sync(struct audit_trail *trail)
{
	uint64_t target, round;
	int err = 0;

	pthread_mutex_lock(&trail->lock);
	target = trail->seq;
	/* The next round to start takes every record appended so far. */
	round = trail->attempts_started + 1;
	if (trail->durable_seq < target) {
		if (trail->hurry_until < round)
			trail->hurry_until = round;
		pthread_cond_signal(&trail->wake);
		while (trail->durable_seq < target && trail->attempts_done < round)
			pthread_cond_wait(&trail->progress, &trail->lock);
		if (trail->durable_seq < target)
			err = atomic_load(&trail->failed) ? atomic_load(&trail->failed) : -EIO;
	}
	pthread_mutex_unlock(&trail->lock);
	return err;
}

int audit_ok(const struct audit_trail *trail)
{
	return atomic_load(&trail->failed) ? -EIO : 0;
}

uint64_t audit_head(struct audit_trail *trail, char hash[AUDIT_HASH_HEX_LEN + 1])
{
	uint64_t seq;

	pthread_mutex_lock(&trail->lock);
	seq = trail->seq;
	crypto_to_hex(hash, AUDIT_HASH_HEX_LEN + 1, trail->head, sizeof(trail->head));
	pthread_mutex_unlock(&trail->lock);
	return seq;
}

int audit_close(struct audit_trail *trail)
{
	int err;

	if (!trail)
		return 0;
	pthread_mutex_lock(&trail->lock);
	trail->stopping = true;
	pthread_cond_signal(&trail->wake);
	pthread_mutex_unlock(&trail->lock);
	pthread_join(trail->thread, NULL);

	err = atomic_load(&trail->failed);
	if (!err && trail->durable_seq < trail->seq)
		err = -EIO;
	if (trail->durable_seq < trail->seq)
		log_error("audit: the audit trail is closed with %llu records not written",
			  (unsigned long long)(trail->seq - trail->durable_seq));
	segment_seal(trail);
	close(trail->dir_fd);
	free(trail->queue.bytes);
	free(trail->batch.bytes);
	pthread_cond_destroy(&trail->progress);
	pthread_cond_destroy(&trail->wake);
	pthread_mutex_destroy(&trail->lock);
	free(trail);
	return err;
}

/* Verifying --------------------------------------------------------------------------- */

struct verify_state {
	uint64_t expected;                      /* the seq the next line must have */
	uint8_t prev[CRYPTO_SHA256_LEN];        /* SHA-256 of the line before */
	char prev_segment[SEGMENT_NAME_LEN + 1]; /* where that line is */
	struct audit_verdict *verdict;
};

static int __attribute__((format(printf, 4, 5)))
verify_fault(struct verify_state *state, const char *segment, uint64_t bad_seq,
	     const char *fmt, ...)
{
	struct audit_verdict *verdict = state->verdict;
	va_list ap;

	verdict->bad_seq = bad_seq;
	snprintf(verdict->bad_segment, sizeof(verdict->bad_segment), "%s", segment);
	va_start(ap, fmt);
	vsnprintf(verdict->why, sizeof(verdict->why), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* Check one line (len bytes, its newline removed), line number line_no of segment. */
static int verify_line(struct verify_state *state, const char *segment, size_t line_no,
		       const char *line, size_t len)
{
	char prev_hex[AUDIT_HASH_HEX_LEN + 1];
	uint64_t expected = state->expected;
	json_t *object, *seq, *time, *prev;
	json_int_t seq_value;
	char *encoded;
	int err = 0;

	object = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(object)) {
		err = verify_fault(state, segment, expected, "line %zu of %s is not a JSON "
				   "object: edited or damaged", line_no, segment);
		goto out_free;
	}
	encoded = json_dumps(object, LINE_JSON_FLAGS);
	if (!encoded) {
		err = -ENOMEM;
		goto out_free;
	}
	if (strlen(encoded) != len || memcmp(encoded, line, len) != 0)
		err = verify_fault(state, segment, expected, "line %zu of %s is not in canonical "
				   "form: edited", line_no, segment);
	free(encoded);
	if (err)
		goto out_free;
	seq = json_object_get(object, "seq");
	seq_value = json_is_integer(seq) ? json_integer_value(seq) : 0;
	if (seq_value <= 0) {
		err = verify_fault(state, segment, expected, "line %zu of %s has no valid seq: "
				   "edited", line_no, segment);
		goto out_free;
	}
	if ((uint64_t)seq_value < expected) {
		err = verify_fault(state, segment, (uint64_t)seq_value, "line %zu of %s has seq "
				   "%lld, not %llu: records inserted, repeated or reordered",
				   line_no, segment, (long long)seq_value,
				   (unsigned long long)expected);
		goto out_free;
	}
	if ((uint64_t)seq_value > expected) {
		err = verify_fault(state, segment, expected, "line %zu of %s has seq %lld, not "
				   "%llu: records deleted or reordered", line_no, segment,
				   (long long)seq_value, (unsigned long long)expected);
		goto out_free;
	}
	time = json_object_get(object, "time");
	if (!json_is_string(time) || !time_valid(json_string_value(time))) {
		err = verify_fault(state, segment, expected, "line %zu of %s has no valid time: "
				   "edited", line_no, segment);
		goto out_free;
	}
	crypto_to_hex(prev_hex, sizeof(prev_hex), state->prev, sizeof(state->prev));
	prev = json_object_get(object, "prev");
	if (!json_is_string(prev) ||
	    strcmp(json_string_value(prev), expected == 1 ? zero_hash_hex : prev_hex) != 0) {
		uint64_t suspect = expected > 1 ? expected - 1 : 1;
		err = verify_fault(state, expected > 1 ? state->prev_segment : segment, suspect,
				   "line %zu of %s: prev does not match the line before: seq %llu "
				   "or this line edited, or lines inserted or reordered", line_no,
				   segment, (unsigned long long)suspect);
		goto out_free;
	}
	crypto_sha256(state->prev, line, len);
	snprintf(state->prev_segment, sizeof(state->prev_segment), "%s", segment);
	state->expected++;
out_free:
	json_decref(object);
	return err;
}

static int verify_segment(struct verify_state *state, int dir_fd, const char *name)
{
	size_t capacity = 0, line_no = 0;
	char *line = NULL;
	ssize_t len;
	struct stat st;
	FILE *file;
	int fd, err = 0;

	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno != ELOOP)
		return -errno;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return verify_fault(state, name, state->expected, "%s is not a regular file",
				    name);
	}
	file = fdopen(fd, "r");
	if (!file) {
		err = -errno;
		close(fd);
		return err;
	}
	errno = 0;
	while ((len = getline(&line, &capacity, file)) > 0) {
		line_no++;
		if (line[len - 1] != '\n') {
			err = verify_fault(state, name, state->expected, "line %zu of %s is cut "
					   "short (no newline): a torn write or a cut segment",
					   line_no, name);
			break;
		}
		if ((size_t)len > LINE_MAX_BYTES + 1) {
			err = verify_fault(state, name, state->expected, "line %zu of %s is too "
					   "long for a record: edited", line_no, name);
			break;
		}
		err = verify_line(state, name, line_no, line, (size_t)len - 1);
		if (err)
			break;
		errno = 0;
	}
	if (!err && len < 0 && errno)
		err = -errno;
	free(line);
	fclose(file);
	return err;
}

int audit_verify(const char *dir, struct audit_verdict *verdict)
{
	struct audit_verdict ignored;
	struct verify_state state = { .expected = 1 };
	struct name_list list;
	int dir_fd, err;

	if (!verdict)
		verdict = &ignored;
	memset(verdict, 0, sizeof(*verdict));
	state.verdict = verdict;
	dir_fd = trail_dir_open(dir, false);
	if (dir_fd < 0)
		return dir_fd;
	err = segments_list(dir_fd, &list);
	if (err)
		goto out_close;
	for (size_t i = 0; i < list.count && !err; i++) {
		const char *name = list.names[i];
		uint64_t first_seq;

		if (!segment_seq_of(name, &first_seq))
			err = verify_fault(&state, name, state.expected, "%s is not a segment name "
					   "(seg-<16 digits>.jsonl): a segment was renamed", name);
		else if (first_seq != state.expected && state.expected == 1)
			err = verify_fault(&state, name, 1, "the trail begins with %s, not at seq "
					   "1: its first segments are missing or renamed", name);
		else if (first_seq != state.expected)
			err = verify_fault(&state, name, state.expected, "%s should begin at seq "
					   "%llu: records or segments before it are missing, or it "
					   "was renamed", name, (unsigned long long)state.expected);
		else
			err = verify_segment(&state, dir_fd, name);
	}
	if (!err)
		verdict->records = state.expected - 1;
	name_list_release(&list);
out_close:
	close(dir_fd);
	return err;
}
