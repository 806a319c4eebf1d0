/*
 * vaultfs: mounts one vault with FUSE. Parses options, gets the key from its source,
 * opens and checks the vault (every refusal here is one clear line on stderr), mounts,
 * then serves requests on several threads until unmounted.
 */
#include "fs/vaultfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/agent.h"
#include "lib/keysource.h"
#include "lib/log.h"
#include "lib/secret.h"
#include "lib/vault.h"

/* How long (in 100 ms steps) to wait for a previous daemon to let go of the vault. */
#define LOCK_WAIT_TRIES 50

struct options {
	char *dataset;
	char *agent;
	char *keyfile;
	char *cipher;
	char *budget_limit;
	char *max_threads;
	char *lease;
	char *audit;
	char *mount_uid;
	char *mount_gid;
	int ephemeral;
	int allow_other;
	int read_only;
	int foreground;
	int debug;
	int help;
	int version;
	const char *unsafe_flag;  /* "dev" or "suid" when given: refused */
	char *vault_dir;
	char *mountpoint;
};

enum { KEY_FOREGROUND, KEY_DEBUG, KEY_HELP, KEY_VERSION, KEY_RO, KEY_ALLOW_OTHER, KEY_DEV,
       KEY_SUID };

#define OPTION(template, field) { template, offsetof(struct options, field), 1 }
static const struct fuse_opt option_spec[] = {
	OPTION("dataset=%s", dataset),
	OPTION("agent=%s", agent),
	OPTION("keyfile=%s", keyfile),
	OPTION("cipher=%s", cipher),
	OPTION("budget_limit=%s", budget_limit),
	OPTION("max_threads=%s", max_threads),
	OPTION("lease=%s", lease),
	OPTION("audit=%s", audit),
	OPTION("mount_uid=%s", mount_uid),
	OPTION("mount_gid=%s", mount_gid),
	OPTION("ephemeral", ephemeral),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("dev", KEY_DEV),
	FUSE_OPT_KEY("suid", KEY_SUID),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static const char usage_text[] =
	"usage: vaultfs [-f] [-d] [-o OPTION[,OPTION...]] DIR MOUNTPOINT\n"
	"       vaultfs [-f] [-d] -o dataset=NAME[,OPTION...] MOUNTPOINT\n"
	"\n"
	"  -o dataset=NAME     keys, vault and access rules from the key agent, under a lease\n"
	"  -o agent=SOCKET     the key agent's socket (default " AGENT_DEFAULT_SOCKET ")\n"
	"  -f                  stay in the foreground, log to stderr\n"
	"  -d                  foreground with FUSE request tracing\n"
	"  -o keyfile=FILE     development key file made by 'vaultctl init'\n"
	"  -o ephemeral        fresh in-memory key for an empty DIR (unrecoverable after unmount)\n"
	"  -o cipher=NAME      cipher of an ephemeral vault: aes-256-gcm or xchacha20-poly1305\n"
	"  -o ro               read-only mount\n"
	"  -o allow_other      let other users use the mount (access is still checked)\n"
	"  -o auto_unmount     unmount when the daemon exits\n"
	"  -o max_threads=N    request threads (default 10)\n"
	"  -o budget_limit=N   lower the per-file-key encryption limit (testing)\n"
	"  -o audit=DIR        keep the audit trail of every access in DIR (vaultfs-audit(5))\n"
	"  -o mount_uid=N,mount_gid=N  (root only) mount for that user: only they may enter\n"
	"  -o lease=ID         (set by the key agent) claim the lease it made for this daemon\n"
	"default_permissions, nodev and nosuid are always on ('dev' and 'suid' are refused).\n"
	"Unmount with 'fusermount3 -u MOUNTPOINT'.\n";

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *opts = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!opts->vault_dir) {
			opts->vault_dir = strdup(arg);
			return 0;
		}
		if (!opts->mountpoint) {
			opts->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "vaultfs: unexpected argument '%s'\n", arg);
		return -1;
	case KEY_RO:
		opts->read_only = 1;
		return 1;  /* the kernel needs it too */
	case KEY_ALLOW_OTHER:
		opts->allow_other = 1;
		return 1;
	case KEY_DEV:
	case KEY_SUID:
		/* libfuse would clear MS_NODEV or MS_NOSUID for them; never passed on. */
		opts->unsafe_flag = key == KEY_DEV ? "dev" : "suid";
		return 0;
	case KEY_FOREGROUND:
		opts->foreground = 1;
		return 0;
	case KEY_DEBUG:
		opts->foreground = 1;
		opts->debug = 1;
		return 1;
	case KEY_HELP:
		opts->help = 1;
		return 0;
	case KEY_VERSION:
		opts->version = 1;
		return 0;
	default:
		return 1;
	}
}

/* One line on stderr: "vaultfs: <message>: <hint>". Returns 1, the exit status. */
static int __attribute__((format(printf, 2, 3))) fail(const char *hint, const char *fmt, ...)
{
	va_list ap;

	fputs("vaultfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (hint)
		fprintf(stderr, ": %s", hint);
	fputc('\n', stderr);
	return 1;
}

/* Make a relative path absolute (without resolving links: the path may not exist). */
static int absolute(char **path)
{
	char *joined, cwd[PATH_MAX];

	if (!*path || (*path)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&joined, "%s/%s", cwd, *path) < 0)
		return -ENOMEM;
	free(*path);
	*path = joined;
	return 0;
}

/* The mountpoint must be an existing directory that is not already a mount. */
static int check_mountpoint(const char *path)
{
	char parent[PATH_MAX];
	struct stat st, up;

	if (stat(path, &st) != 0) {
		if (errno == ENOTCONN)
			return fail("run 'fusermount3 -u' on it first",
				    "mountpoint '%s' is a dead mount", path);
		return fail("create the directory first", "mountpoint '%s' does not exist", path);
	}
	if (!S_ISDIR(st.st_mode))
		return fail(NULL, "mountpoint '%s' is not a directory", path);
	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
		return fail(NULL, "mountpoint '%s' is too long", path);
	if (stat(parent, &up) == 0 && (up.st_dev != st.st_dev || up.st_ino == st.st_ino))
		return fail("unmount it first",
			    "mountpoint '%s' is busy: something is mounted there already", path);
	return 0;
}

/*
 * The kernel caps a FUSE mount's readahead at 128 KiB (its bdi default), whatever
 * max_readahead the daemon offers, so sequential and mmap reads arrive in 128 KiB pieces
 * and a memory-mapped file faults in 128 KiB at a time. Raise this mount's own window to
 * the request size. The mount is found without a request to it (AT_STATX_DONT_SYNC: the
 * session does not serve yet). Writing to sysfs needs root; otherwise the default stays.
 */
static void raise_readahead(const char *mountpoint)
{
	char path[64], value[16];
	struct statx stx;
	int fd, len;

	if (statx(AT_FDCWD, mountpoint, AT_STATX_DONT_SYNC, 0, &stx) != 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", stx.stx_dev_major,
		 stx.stx_dev_minor);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_debug("readahead stays at the kernel's default: %s", strerror(errno));
		return;
	}
	len = snprintf(value, sizeof(value), "%d", VFS_MAX_REQUEST / 1024);
	if (write(fd, value, (size_t)len) != len)
		log_debug("readahead stays at the kernel's default: %s", strerror(errno));
	close(fd);
}

static int parse_count(const char *text, const char *name, uint64_t min, uint64_t max,
		       uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || *end || end == text || value < min || value > max)
		return fail("see vaultfs(8)", "option %s has a bad value", name);
	*out = value;
	return 0;
}

/* Mount through the agent: the lease brings the keys, the vault directory and the rules. */
static int lease_keys(struct options *opts, struct keysource **keys, struct lease **lease,
		      struct vfs_access **access)
{
	const char *socket = opts->agent ? opts->agent : getenv("VAULTFS_AGENT_SOCKET");
	const char *shown = socket ? socket : AGENT_DEFAULT_SOCKET;
	uint64_t claim = 0;
	int err;

	if (opts->keyfile || opts->ephemeral || opts->cipher)
		return fail(NULL, "option dataset= excludes keyfile=, ephemeral and cipher=");
	if (opts->lease && parse_count(opts->lease, "lease", 1, UINT64_MAX, &claim))
		return 1;
	err = lease_acquire(lease, socket, opts->dataset, claim, keys, &opts->vault_dir, access);
	switch (err) {
	case 0:
		return 0;
	case -ENOENT:
	case -ECONNREFUSED:
		return fail("start vault-keyagent, or pass -o agent=SOCKET",
			    "the key agent is not running at '%s'", shown);
	case -EACCES:
		return fail("ask an administrator for a role on it",
			    "the key agent refused dataset '%s' to you", opts->dataset);
	case -EPERM:
		return fail("mount it with 'vaultctl mount NAME MOUNTPOINT': the key agent "
			    "starts the daemon", "dataset keys are given only to mount daemons "
			    "the key agent or root started");
	case -EKEYREJECTED:
	case -ENOKEY:
		return fail("run 'vaultctl unlock' first",
			    "the key agent is sealed or has no key for '%s'", opts->dataset);
	default:
		return fail(strerror(-err), "no lease on dataset '%s'", opts->dataset);
	}
}

static int open_keys(const struct options *opts, struct keysource **keys)
{
	int err;

	if (opts->cipher && !opts->ephemeral)
		return fail("a vault's cipher is chosen by 'vaultctl init --cipher'",
			    "option cipher= applies only to ephemeral vaults");
	if (opts->ephemeral && opts->keyfile)
		return fail(NULL, "options keyfile= and ephemeral exclude each other");
	if (opts->ephemeral) {
		err = keysource_ephemeral_new(keys);
		return err ? fail(NULL, "cannot make an ephemeral key: %s", strerror(-err)) : 0;
	}
	if (!opts->keyfile)
		return fail("pass -o keyfile=FILE or -o ephemeral", "no key source");
	err = keysource_keyfile_open(keys, opts->keyfile);
	switch (err) {
	case 0:
		log_warn("key file '%s' is a development key source: do not use it for real data",
			 opts->keyfile);
		return 0;
	case -ENOENT:
		return fail(NULL, "key file '%s' does not exist", opts->keyfile);
	case -EPERM:
		return fail("it must be yours with mode 0600 (chmod 600)",
			    "key file '%s' has loose permissions or another owner", opts->keyfile);
	case -EBADMSG:
		return fail(NULL, "'%s' is not a vaultfs key file", opts->keyfile);
	default:
		return fail(strerror(-err), "cannot read key file '%s'", opts->keyfile);
	}
}

/* The vault in dir holds a symbolic link (-ELOOP): say where, as vault_find_link finds
 * it. */
static int refuse_link(const char *dir)
{
	char where[PATH_MAX];
	int err = vault_find_link(dir, where, sizeof(where));

	if (err == -ELOOP && !where[0])
		return fail("give the directory it points to",
			    "vault '%s' is a symbolic link: refusing to mount", dir);
	if (err == -ELOOP)
		return fail("a vault never holds links; restore it from a backup",
			    "vault '%s' contains a symbolic link at '%s': refusing to mount",
			    dir, where);
	return fail("a vault never holds links; restore it from a backup",
		    "vault '%s' contains a symbolic link: refusing to mount", dir);
}

static int create_ephemeral(const struct options *opts, struct keysource *keys)
{
	enum crypto_cipher cipher = crypto_cipher_default();
	int err;

	if (opts->cipher && crypto_cipher_from_name(&cipher, opts->cipher) != 0)
		return fail("use aes-256-gcm or xchacha20-poly1305",
			    "unknown cipher '%s'", opts->cipher);
	if (!crypto_cipher_available(cipher))
		return fail("use xchacha20-poly1305",
			    "cipher '%s' is not supported by this CPU", crypto_cipher_name(cipher));
	err = vault_create(opts->vault_dir, cipher, VAULT_FLAG_EPHEMERAL, keys, getuid(), getgid());
	if (err == -ENOTEMPTY)
		return fail("an ephemeral vault needs an empty or missing directory",
			    "'%s' is not empty", opts->vault_dir);
	if (err == -ELOOP)
		return refuse_link(opts->vault_dir);
	if (err)
		return fail(strerror(-err),
			    "cannot create the ephemeral vault in '%s'", opts->vault_dir);
	return 0;
}

static int open_vault(const struct options *opts, struct keysource *keys, struct vault **vault)
{
	int err = vault_open(vault, opts->vault_dir, keys,
			     opts->read_only ? VAULT_OPEN_READ_ONLY : 0);
	switch (err) {
	case 0:
		break;
	case -ENOENT:
		return fail("no vaultfs.header found (create one with 'vaultctl init')",
			    "'%s' is not a vault", opts->vault_dir);
	case -ELOOP:
		return refuse_link(opts->vault_dir);
	case -EKEYREJECTED:
		return fail("the key does not match the vault's key check",
			    "wrong key for vault '%s'", opts->vault_dir);
	case -EPROTONOSUPPORT:
		return fail("it was made by a newer vaultfs",
			    "vault '%s' has an unsupported format version", opts->vault_dir);
	case -EBADMSG:
		return fail("its header or metadata was altered or damaged",
			    "vault '%s' failed authentication", opts->vault_dir);
	default:
		return fail(strerror(-err), "cannot open vault '%s'", opts->vault_dir);
	}
	/* A daemon that was just unmounted may still be writing its last records: give it
	 * a few seconds before calling the vault busy. */
	int locked;
	for (int tries = 0; (locked = flock((*vault)->dir_fd, LOCK_EX | LOCK_NB)) != 0 &&
			    errno == EWOULDBLOCK && tries < LOCK_WAIT_TRIES; tries++)
		usleep(100 * 1000);
	if (locked != 0) {
		vault_close(*vault);
		*vault = NULL;
		return fail("unmount it before mounting it again",
			    "vault '%s' is already mounted", opts->vault_dir);
	}
	return 0;
}

/* The user a root daemon mounts for (-o mount_uid=,mount_gid=): 0 when not asked. */
static int mount_user(const struct options *opts, uid_t *uid, gid_t *gid, bool *asked)
{
	uint64_t u, g;

	*asked = opts->mount_uid || opts->mount_gid;
	if (!*asked)
		return 0;
	if (!opts->mount_uid || !opts->mount_gid)
		return fail(NULL, "options mount_uid= and mount_gid= go together");
	if (geteuid() != 0)
		return fail("only root mounts for another user", "option mount_uid= needs root");
	if (parse_count(opts->mount_uid, "mount_uid", 0, UINT32_MAX - 1, &u) ||
	    parse_count(opts->mount_gid, "mount_gid", 0, UINT32_MAX - 1, &g))
		return 1;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}

/*
 * Mount for one user: root mounts the FUSE file system itself, with user_id= and
 * group_id= naming that user, so the kernel lets only them in (and everyone of an
 * allow_other mount). The mountpoint is opened without following a link and checked to
 * be the user's; the mount goes on that very directory (through /proc/self/fd), so a
 * directory swapped in after the check mounts nothing anywhere else. Returns the
 * /dev/fuse descriptor for fuse_session_mount("/dev/fd/N"), or -1 (reported).
 */
static int mount_for_user(const struct options *opts, uid_t uid, gid_t gid)
{
	unsigned long flags = MS_NOSUID | MS_NODEV | (opts->read_only ? MS_RDONLY : 0);
	char target[64], data[160];
	int dir_fd, fuse_fd = -1;
	struct stat st;

	dir_fd = open(opts->mountpoint, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0 || fstat(dir_fd, &st) != 0) {
		fail("give a directory, not a link", "cannot open mountpoint '%s': %s",
		     opts->mountpoint, strerror(errno));
		goto out_close;
	}
	if (uid != 0 && st.st_uid != uid) {
		fail("mount on a directory the user owns", "mountpoint '%s' is not owned by uid %u",
		     opts->mountpoint, (unsigned)uid);
		goto out_close;
	}
	fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fuse_fd < 0) {
		fail("is the fuse module loaded?", "cannot open /dev/fuse: %s", strerror(errno));
		goto out_close;
	}
	snprintf(target, sizeof(target), "/proc/self/fd/%d", dir_fd);
	snprintf(data, sizeof(data), "fd=%d,rootmode=%o,user_id=%u,group_id=%u,"
		 "default_permissions%s", fuse_fd, (unsigned)S_IFDIR, (unsigned)uid, (unsigned)gid,
		 opts->allow_other ? ",allow_other" : "");
	if (mount("vaultfs", target, "fuse.vaultfs", flags, data) != 0) {
		fail(NULL, "cannot mount on '%s': %s", opts->mountpoint, strerror(errno));
		close(fuse_fd);
		fuse_fd = -1;
	}
out_close:
	if (dir_fd >= 0)
		close(dir_fd);
	return fuse_fd;
}

/* The device of the mount at path, from the kernel's caches (no request to ourselves). */
static dev_t mount_device(const char *path)
{
	struct statx stx;

	/* Mask 0: root is not let into a user's mount, but may learn where it is. */
	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC | AT_SYMLINK_NOFOLLOW, 0, &stx) != 0)
		return 0;
	return makedev(stx.stx_dev_major, stx.stx_dev_minor);
}

/* Leaving on a signal: take down the mount made by mount_for_user - only if the path
 * (opened without following a link) still is that mount. */
static void unmount_own(const char *mountpoint, dev_t device)
{
	char target[64];
	struct statx stx;
	int fd = open(mountpoint, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	if (device && statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) == 0 &&
	    makedev(stx.stx_dev_major, stx.stx_dev_minor) == device) {
		snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
		if (umount2(target, MNT_DETACH) != 0)
			log_warn("cannot unmount '%s': %s", mountpoint, strerror(errno));
	}
	close(fd);
}

/* A daemon the agent started reports on stderr until it is mounted; then it logs to
 * syslog like a daemon and lets go of the pipe, which tells the agent it is up. */
static void detach_output(void)
{
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	log_init("vaultfs", true, LOG_INFO);
	if (null_fd < 0)
		return;
	dup2(null_fd, STDIN_FILENO);
	dup2(null_fd, STDOUT_FILENO);
	dup2(null_fd, STDERR_FILENO);
	close(null_fd);
}

static int serve(struct vfs *vfs, struct fuse_args *args, const struct options *opts,
		 struct lease *lease)
{
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *session;
	uint64_t threads = 10;
	char own_mount[32] = "";
	dev_t own_device = 0;
	bool for_user;
	uid_t uid = 0;
	gid_t gid = 0;
	int status = 1, ended;

	if (opts->max_threads && parse_count(opts->max_threads, "max_threads", 1, 256, &threads))
		return 1;
	if (mount_user(opts, &uid, &gid, &for_user))
		return 1;
	session = fuse_session_new(args, &vaultfs_ops, sizeof(vaultfs_ops), vfs);
	if (!session)
		return fail("check the -o options", "cannot start the FUSE session");
	vfs->session = session;
	if (fuse_set_signal_handlers(session) != 0)
		goto out_destroy;
	if (for_user) {
		int fuse_fd = mount_for_user(opts, uid, gid);
		if (fuse_fd < 0)
			goto out_signals;
		snprintf(own_mount, sizeof(own_mount), "/dev/fd/%d", fuse_fd);
		own_device = mount_device(opts->mountpoint);
	}
	if (fuse_session_mount(session, own_mount[0] ? own_mount : opts->mountpoint) != 0) {
		fail("see the message above", "cannot mount on '%s'", opts->mountpoint);
		goto out_signals;
	}
	raise_readahead(opts->mountpoint);
	if (fuse_daemonize(opts->foreground) != 0)
		goto out_unmount;
	if (opts->lease)
		detach_output();
	else if (!opts->foreground)
		log_init("vaultfs", true, LOG_INFO);
	/* Threads only after fuse_daemonize: a fork keeps none of them. */
	if (crew_start(&vfs->crew) != 0 || flusher_start(vfs) != 0)
		goto out_unmount;
	if (!vfs->read_only)
		vault_object_start(vfs->vault);
	if (lease && lease_start(lease, vfs, opts->mountpoint, uid, gid) != 0)
		goto out_flusher;
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out_flusher;
	fuse_loop_cfg_set_max_threads(loop, (unsigned int)threads);
	/* Threads stay once made: a checkpoint's writeback burst would otherwise create and
	 * end several per file, each setting up its buffers and random pool again. */
	fuse_loop_cfg_set_idle_threads(loop, (unsigned int)threads);
	log_info("vault mounted");
	/* The loop returns the number of the signal that ended it (SIGTERM, SIGINT, SIGHUP:
	 * a clean exit), 0 after an unmount, or -errno. */
	ended = fuse_session_loop_mt(session, loop);
	status = ended < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(loop);
	/* libfuse unmounts what it mounted; a mount of our own we take down ourselves. */
	if (ended > 0 && own_mount[0])
		unmount_own(opts->mountpoint, own_device);
	lease_stop(lease);
	vfs_rekey_stop(vfs);
out_flusher:
	flusher_stop(vfs);
out_unmount:
	fuse_session_unmount(session);
out_signals:
	fuse_remove_signal_handlers(session);
out_destroy:
	fuse_session_destroy(session);
	vfs->session = NULL;
	return status;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options opts = { 0 };
	struct keysource *keys = NULL;
	struct vfs_access *access = NULL;
	struct lease *lease = NULL;
	struct vault *vault = NULL;
	struct vfs vfs;
	int status = 1;

	log_init("vaultfs", false, LOG_INFO);
	if (fuse_opt_parse(&args, &opts, option_spec, option_proc) != 0) {
		fputs(usage_text, stderr);
		status = 2;
		goto out_free;
	}
	if (opts.help || opts.version) {
		if (opts.help)
			fputs(usage_text, stdout);
		else
			printf("vaultfs %s (libfuse %s)\n", VAULTFS_VERSION, fuse_pkgversion());
		status = 0;
		goto out_free;
	}
	/* Device nodes and set-user-ID files in a vault are stored, never honoured: whoever
	 * can write the vault (any rw grant) must not get a device or a privilege from it. */
	if (opts.unsafe_flag) {
		fail("drop it: device nodes and set-user-ID files in a vault are stored but never "
		     "honoured", "option '%s' is refused: a vault is always mounted nodev,nosuid",
		     opts.unsafe_flag);
		goto out_free;
	}
	/* Absolute paths: daemonizing moves to '/', and the unmount at exit needs the path. */
	if (absolute(&opts.mountpoint) || absolute(&opts.vault_dir)) {
		fail(NULL, "out of memory");
		goto out_free;
	}
	if (opts.dataset && opts.vault_dir && !opts.mountpoint) {
		/* With the agent the only argument is the mountpoint. */
		opts.mountpoint = opts.vault_dir;
		opts.vault_dir = NULL;
	}
	if ((opts.dataset && (opts.vault_dir || !opts.mountpoint)) ||
	    (!opts.dataset && (!opts.vault_dir || !opts.mountpoint))) {
		fputs(usage_text, stderr);
		status = 2;
		goto out_free;
	}
	if (secret_init() != 0 || secret_harden_process() != 0) {
		fail(NULL, "cannot initialise secret memory");
		goto out_free;
	}
	if (check_mountpoint(opts.mountpoint))
		goto out_free;
	if (opts.dataset ? lease_keys(&opts, &keys, &lease, &access) : open_keys(&opts, &keys))
		goto out_free;
	if (opts.ephemeral && create_ephemeral(&opts, keys))
		goto out_keys;
	if (open_vault(&opts, keys, &vault))
		goto out_keys;
	if (vfs_init(&vfs, vault, keys, opts.read_only) != 0) {
		fail(NULL, "out of memory");
		goto out_vault;
	}
	vfs.access = access;
	/* Under a policy, on a mount several users share (allow_other), the kernel must not
	 * answer lookups or stat from its caches: each user's access is decided per request.
	 * A mount only its owner may enter keeps them (revocation drops them). */
	if (access && opts.allow_other)
		vfs.entry_timeout = 0;
	if (opts.budget_limit &&
	    parse_count(opts.budget_limit, "budget_limit", 1, OBJECT_MAX_ENCRYPTIONS,
			&vfs.budget_limit))
		goto out_vfs;
	if (!opts.read_only) {
		int err = node_reclaim_orphans(&vfs);
		if (err)
			log_warn("could not reclaim all orphaned inodes: %s", strerror(-err));
	}
	/* default_permissions is mandatory: with allow_other the kernel must check modes for
	 * every caller. nodev and nosuid go last, after anything the user gave (libfuse's
	 * default; mount_for_user sets them itself). Our fsname and subtype go first so the
	 * user's -o may override them. */
	if (fuse_opt_add_arg(&args, "-odefault_permissions,nodev,nosuid") != 0 ||
	    fuse_opt_insert_arg(&args, 1, "-osubtype=vaultfs,fsname=vaultfs") != 0)
		goto out_vfs;
	if (opts.audit && absolute(&opts.audit)) {
		fail(NULL, "out of memory");
		goto out_vfs;
	}
	if (opts.audit) {
		int err = trail_open(&vfs, opts.audit, opts.dataset);
		if (err) {
			fail(err == -ELOOP ? "give the directory itself" : strerror(-err),
			     "cannot open the audit trail in '%s'", opts.audit);
			goto out_vfs;
		}
		trail_event(&vfs, "mount", opts.read_only ? "ro" : "rw", 0);
	}
	status = serve(&vfs, &args, &opts, lease);
	int err = node_flush_all(&vfs);
	if (err) {
		log_error("final metadata flush failed: %s", strerror(-err));
		status = 1;
	}
	if (vfs.trail) {
		trail_event(&vfs, "unmount", NULL, status ? -EIO : 0);
		if (trail_close(&vfs) != 0) {
			log_error("the audit trail could not be written to the end");
			status = 1;
		}
	}
out_vfs:
	trail_close(&vfs);
	vfs_release(&vfs);
out_vault:
	vault_close(vault);
out_keys:
	lease_release(lease);
	lease_access_free(access);
	keysource_free(keys);
out_free:
	free(opts.dataset);
	free(opts.agent);
	free(opts.keyfile);
	free(opts.cipher);
	free(opts.budget_limit);
	free(opts.max_threads);
	free(opts.lease);
	free(opts.audit);
	free(opts.mount_uid);
	free(opts.mount_gid);
	free(opts.vault_dir);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return status;
}
