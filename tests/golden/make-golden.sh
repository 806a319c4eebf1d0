#!/usr/bin/env bash
# Make a golden vault: the vault that this format version writes, checked in so that
# every later version must keep reading it (tests/golden/test_golden.sh).
# usage: make-golden.sh VAULTFS VAULTCTL CIPHER OUTDIR
set -euo pipefail
vaultfs=$1 vaultctl=$2 cipher=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'fusermount3 -u "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/mnt"
"$vaultctl" init --cipher "$cipher" --key-file "$work/key" "$work/vault" 2>/dev/null
"$vaultfs" -o keyfile="$work/key" "$work/vault" "$work/mnt" 2>/dev/null
m=$work/mnt
mkdir -p "$m/data" "$m/a/b/c" "$m/private"
chmod 0750 "$m/private"
printf 'id,age,label\n1,54,0\n2,61,1\n' > "$m/data/features.csv"
python3 -c 'import random,sys; r=random.Random(7); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(300000)))' > "$m/data/big.bin"
truncate -s 10M "$m/data/sparse.bin"
printf 'end' | dd of="$m/data/sparse.bin" bs=1 seek=$((9 * 1024 * 1024)) conv=notrunc status=none
: > "$m/data/empty"
ln -s data/features.csv "$m/latest"
ln "$m/data/features.csv" "$m/data/features-link.csv"
setfattr -n user.label -v golden "$m/data/features.csv"
printf 'deep\n' > "$m/a/b/c/deep.txt"
printf 'secret\n' > "$m/private/notes.txt"
chmod 0640 "$m/private/notes.txt"
printf 'utf8\n' > "$m/a/naïve name – ü.txt"
long=$(printf 'n%.0s' $(seq 1 255))
printf 'long\n' > "$m/a/$long"
touch -d '2026-01-02 03:04:05.123456789 UTC' "$m/data/features.csv" "$m/a/b/c/deep.txt"
sync
"$here/listing.sh" "$m" > "$work/manifest"
fusermount3 -u "$m"
rm -rf "$out"
mkdir -p "$out"
cp -a "$work/vault" "$out/vault"
rm -f "$out/vault/meta/lock.mdb"
cp "$work/key" "$out/key"
cp "$work/manifest" "$out/manifest"
echo "golden vault written to $out"
