#!/usr/bin/env bash
# Every checked-in golden vault must mount with its key and read back exactly as its
# manifest says. A copy is mounted, never the checked-in files themselves.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0
for golden in "$here"/v*/; do
	name=$(basename "$golden")
	work=$(mktemp -d)
	cp -a "$golden/vault" "$work/vault"
	install -m 0600 "$golden/key" "$work/key"
	mkdir "$work/mnt"
	if "$VAULTFS" -o keyfile="$work/key",ro "$work/vault" "$work/mnt" 2>"$work/log" &&
	   "$here/listing.sh" "$work/mnt" > "$work/listing" &&
	   diff -u "$golden/manifest" "$work/listing"; then
		echo "ok: golden vault $name reads back as its manifest"
		passed=$((passed + 1))
	else
		echo "FAIL: golden vault $name"; cat "$work/log"
		failed=$((failed + 1))
	fi
	fusermount3 -u "$work/mnt" 2>/dev/null
	rm -rf "$work"
done
[ $((passed + failed)) -gt 0 ] || { echo "FAIL: no golden vault found"; failed=1; }
echo "checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
