#!/usr/bin/env python3
"""Workloads of bench/run that fio does not cover, and the reading of fio's JSON.

Each subcommand prints one JSON object on stdout: {"value", "unit", "better", "bytes",
"seconds"} for a measurement, so that bench/run can add the run's context around it.
Times are wall-clock seconds of the measured phase only (time.monotonic).
"""
import io
import json
import os
import subprocess
import sys
import time

MIB = 1024 * 1024


def emit(value, unit, better, nbytes, seconds, **extra):
    out = {"value": value, "unit": unit, "better": better, "bytes": nbytes,
           "seconds": seconds}
    out.update(extra)
    print(json.dumps(out))


def make_tar(out, dirs, files_per_dir, size):
    """A tar of dirs x files_per_dir random files of size bytes, made without a temp tree."""
    import tarfile  # here: it is slow to import, and only this command needs it
    tmp = out + ".tmp"
    now = int(time.time())
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        top = tarfile.TarInfo("tree")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, now
        tar.addfile(top)
        for d in range(dirs):
            info = tarfile.TarInfo("tree/d%03d" % d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
            for f in range(files_per_dir):
                info = tarfile.TarInfo("tree/d%03d/f%04d.bin" % (d, f))
                info.size, info.mode, info.mtime = size, 0o644, now
                tar.addfile(info, io.BytesIO(os.urandom(size)))
    os.replace(tmp, out)


def walk_files(top):
    """Every regular file under top, by scandir (no stat of its own)."""
    stack = [top]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    yield e.path


# The tree steps are not followed by a sync: the disk is shared with other work, and a
# syncfs() would time everybody's dirty pages. Durability is timed by seq_write and ckpt_write.
def cmd_untar(tar, dest):
    t0 = time.monotonic()
    subprocess.run(["tar", "-xf", tar, "-C", dest], check=True)
    secs = time.monotonic() - t0
    files = sum(1 for _ in walk_files(os.path.join(dest, "tree")))
    emit(secs, "s", "lower", os.path.getsize(tar), secs, files=files)


def cmd_stat(top):
    """The `find -type f | xargs stat` of the tree: lstat every directory entry."""
    t0 = time.monotonic()
    n = 0
    stack = [top]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                st = os.lstat(e.path)
                n += 1
                if (st.st_mode & 0o170000) == 0o040000:
                    stack.append(e.path)
    secs = time.monotonic() - t0
    emit(secs, "s", "lower", 0, secs, files=n)


def cmd_read(top):
    t0 = time.monotonic()
    n = nbytes = 0
    for path in walk_files(top):
        with open(path, "rb", buffering=0) as f:
            while True:
                b = f.read(MIB)
                if not b:
                    break
                nbytes += len(b)
        n += 1
    secs = time.monotonic() - t0
    emit(secs, "s", "lower", nbytes, secs, files=n)


def cmd_ls(top):
    t0 = time.monotonic()
    subprocess.run(["ls", "-lR", top], check=True, stdout=subprocess.DEVNULL)
    secs = time.monotonic() - t0
    emit(secs, "s", "lower", 0, secs)


def cmd_rm(top):
    t0 = time.monotonic()
    subprocess.run(["rm", "-rf", top], check=True)
    secs = time.monotonic() - t0
    emit(secs, "s", "lower", 0, secs)


def cmd_ckpt_write(top, count, size):
    """Checkpoint pattern: each file written in 1 MiB pieces, fsync'd, closed."""
    os.makedirs(top, exist_ok=True)
    piece = os.urandom(min(size, MIB))
    t0 = time.monotonic()
    for i in range(count):
        fd = os.open(os.path.join(top, "ckpt-%02d.pt" % i),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            left = size
            while left > 0:
                left -= os.write(fd, piece[:min(left, len(piece))])
            os.fsync(fd)
        finally:
            os.close(fd)
    secs = time.monotonic() - t0
    emit(count * size / MIB / secs, "MiB/s", "higher", count * size, secs)


def cmd_ckpt_read(top):
    t0 = time.monotonic()
    nbytes = 0
    for name in sorted(os.listdir(top)):
        with open(os.path.join(top, name), "rb", buffering=0) as f:
            while True:
                b = f.read(MIB)
                if not b:
                    break
                nbytes += len(b)
    secs = time.monotonic() - t0
    emit(nbytes / MIB / secs, "MiB/s", "higher", nbytes, secs)


def cmd_fio(path, direction, metric):
    """Reads fio's --output-format=json file (anything before the first '{' is skipped)."""
    with open(path) as f:
        text = f.read()
    job = json.loads(text[text.index("{"):])["jobs"][0]
    if job.get("error"):
        raise SystemExit("fio job failed with error %d" % job["error"])
    side = job[direction]
    secs = side["runtime"] / 1000.0
    if metric == "iops":
        emit(side["iops"], "IOPS", "higher", side["io_bytes"], secs)
    else:
        emit(side["bw_bytes"] / MIB, "MiB/s", "higher", side["io_bytes"], secs)


def main(argv):
    commands = {
        "make-tar": (lambda a: make_tar(a[0], int(a[1]), int(a[2]), int(a[3])), 4),
        "untar": (lambda a: cmd_untar(a[0], a[1]), 2),
        "stat": (lambda a: cmd_stat(a[0]), 1),
        "read": (lambda a: cmd_read(a[0]), 1),
        "ls": (lambda a: cmd_ls(a[0]), 1),
        "rm": (lambda a: cmd_rm(a[0]), 1),
        "ckpt-write": (lambda a: cmd_ckpt_write(a[0], int(a[1]), int(a[2])), 3),
        "ckpt-read": (lambda a: cmd_ckpt_read(a[0]), 1),
        "fio": (lambda a: cmd_fio(a[0], a[1], a[2]), 3),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.exit("usage: fileops.py {%s} args..." % ",".join(commands))
    commands[argv[1]][0](argv[2:])


if __name__ == "__main__":
    main(sys.argv)
