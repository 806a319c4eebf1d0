#!/usr/bin/env bash
# Print a canonical description of the tree under $1: type, mode, size, mtime, link
# count, name, symlink target, content hash and extended attributes of every entry.
# The golden vault's manifest is this listing of the mounted vault when it was made.
set -euo pipefail
cd "$1"
find . -mindepth 1 -printf '%y %m %s %T@ %n %p -> %l\n' | LC_ALL=C sort
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
getfattr -R -d -m '^user\.' --absolute-names . 2>/dev/null | grep -v '^$' || true
