#!/usr/bin/env bash
# CLI tests of vaultctl: run the real binary (path in $VAULTCTL) on scratch directories
# and check exit status, output and the files left behind. Each case is a function
# named case_*; the last line is the summary "checks: N passed, N failed".
set -u

if [ -z "${VAULTCTL:-}" ] || [ ! -x "$VAULTCTL" ]; then
	echo "test_vaultctl.sh: set VAULTCTL to the vaultctl binary" >&2
	exit 1
fi

. "$(dirname "$0")/lib.sh"

# run ARGS...: run vaultctl, leaving $status, $out and $err.
run() {
	"$VAULTCTL" "$@" >"$dir/stdout" 2>"$dir/stderr"
	collect
}






# Header field helpers (vault.h layout): u32 LE / hex bytes at an offset.
header_hex() {	# file offset length
	od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'
}

set_byte() {	# file offset value(0-255)
	printf "$(printf '\\%03o' "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

make_vault() {	# dir keyfile [cipher]
	if [ $# -ge 3 ]; then
		"$VAULTCTL" init --cipher "$3" --key-file "$2" "$1" >/dev/null 2>&1
	else
		"$VAULTCTL" init --key-file "$2" "$1" >/dev/null 2>&1
	fi
}

cpu_has_aes() {
	grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo
}

case_init_creates_vault() {
	run init --key-file "$dir/key" "$dir/v"
	expect_status 0
	[ -f "$dir/v/vaultfs.header" ] || fail "no vaultfs.header"
	[ "$(stat -c %s "$dir/v/vaultfs.header" 2>/dev/null)" = 128 ] ||
		fail "vaultfs.header is not 128 bytes"
	[ -d "$dir/v/meta" ] || fail "no meta/ directory"
	[ -d "$dir/v/objects" ] || fail "no objects/ directory"
	[ "$(header_hex "$dir/v/vaultfs.header" 0 8)" = 5641554c54465300 ] ||
		fail "header magic is not VAULTFS\\0"
	[ -f "$dir/key" ] || fail "no key file"
	[ "$(stat -c %a "$dir/key" 2>/dev/null)" = 600 ] ||
		fail "key file mode $(stat -c %a "$dir/key"), expected 600"
	[ "$(head -n 1 "$dir/key")" = vaultfs-dev-key-v1 ] || fail "key file has no magic line"
	[ "$(sed -n 2p "$dir/key" | tr -d '\n' | grep -cxE '[0-9a-f]{64}')" = 1 ] ||
		fail "key file has no 64-hex-digit key line"
	expect_err "development"
	run info "$dir/v"
	expect_status 0
	expect_out "format: 1"
	expect_out "objects: 0"
	expect_out "flags: none"
}

case_init_into_existing_empty_dir() {
	mkdir "$dir/v"
	run init --key-file "$dir/key" "$dir/v"
	expect_status 0
	[ -f "$dir/v/vaultfs.header" ] || fail "no vaultfs.header"
}

case_init_two_vaults_differ() {
	make_vault "$dir/a" "$dir/ka" || { fail "init a failed"; return; }
	make_vault "$dir/b" "$dir/kb" || { fail "init b failed"; return; }
	[ "$(header_hex "$dir/a/vaultfs.header" 28 16)" != "$(header_hex "$dir/b/vaultfs.header" 28 16)" ] ||
		fail "two vaults have the same id"
	[ "$(sed -n 2p "$dir/ka")" != "$(sed -n 2p "$dir/kb")" ] || fail "two vaults have the same key"
}

case_init_refuses_existing_key_file() {
	echo "precious, not a key" >"$dir/key"
	cp "$dir/key" "$dir/key.orig"
	run init --key-file "$dir/key" "$dir/v"
	expect_clean_error
	expect_err "vaultctl: key file '$dir/key' exists: refusing to overwrite it"
	cmp -s "$dir/key" "$dir/key.orig" || fail "existing key file was changed"
	[ ! -e "$dir/v/vaultfs.header" ] || fail "a vault was created anyway"
}

case_init_refuses_non_empty_dir() {
	mkdir "$dir/v"
	echo data >"$dir/v/file"
	run init --key-file "$dir/key" "$dir/v"
	expect_clean_error
	expect_err "'$dir/v' is not empty"
	[ ! -e "$dir/key" ] || fail "key file written for a refused vault"
	[ ! -e "$dir/v/vaultfs.header" ] || fail "vault header written into a non-empty dir"
	[ "$(cat "$dir/v/file")" = data ] || fail "existing file changed"
}

case_init_refuses_a_file_as_dir() {
	echo data >"$dir/v"
	run init --key-file "$dir/key" "$dir/v"
	expect_clean_error
	expect_err "is not a directory"
	[ ! -e "$dir/key" ] || fail "key file written for a refused vault"
}

case_init_refuses_key_inside_vault() {
	mkdir "$dir/v"
	run init --key-file "$dir/v/key" "$dir/v"
	expect_clean_error
	expect_err "would be inside the vault"
	[ ! -e "$dir/v/key" ] || fail "key file written inside the vault"
	[ ! -e "$dir/v/vaultfs.header" ] || fail "vault created with its key inside"
}

case_init_removes_key_when_create_fails() {
	# The parent of DIR does not exist: the key file can be made, the vault cannot.
	run init --key-file "$dir/key" "$dir/no/such/parent/v"
	expect_clean_error
	[ ! -e "$dir/key" ] || fail "key file left behind by a failed init"
}

case_init_refuses_unknown_cipher() {
	run init --cipher rot13 --key-file "$dir/key" "$dir/v"
	expect_status 2
	expect_err "unknown cipher 'rot13'"
	expect_err "xchacha20-poly1305"
	[ ! -e "$dir/key" ] || fail "key file written despite a bad cipher"
	[ ! -e "$dir/v" ] || fail "vault dir created despite a bad cipher"
}

case_init_usage_errors() {
	run init
	expect_status 2
	expect_err "usage: vaultctl init"
	run init "$dir/v"
	expect_status 2
	expect_err "missing --key-file"
	expect_err "usage: vaultctl init"
	run init --key-file "$dir/key"
	expect_status 2
	expect_err "missing DIR"
	run init --key-file "$dir/key" "$dir/v" "$dir/w"
	expect_status 2
	expect_err "too many arguments"
	run init --key-file
	expect_status 2
	expect_err "needs an argument"
	run init --frobnicate --key-file "$dir/key" "$dir/v"
	expect_status 2
	expect_err "unknown option '--frobnicate'"
	[ ! -e "$dir/key" ] || fail "a usage error wrote a key file"
	[ ! -e "$dir/v" ] || fail "a usage error created the vault dir"
}

case_init_xchacha20_then_info() {
	run init --cipher xchacha20-poly1305 --key-file "$dir/key" "$dir/v"
	expect_status 0
	run info "$dir/v"
	expect_status 0
	expect_out "format: 1"
	expect_out "cipher: xchacha20-poly1305"
	expect_out "flags: none"
	expect_out "objects: 0"
	expect_out "id: $(header_hex "$dir/v/vaultfs.header" 28 16)"
	[ "$(header_hex "$dir/v/vaultfs.header" 12 4)" = 02000000 ] ||
		fail "cipher field at offset 12 is not 2 (xchacha20-poly1305)"
	created=$(sed -n 's/^created: //p' "$dir/stdout")
	echo "$created" | grep -qxE '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z' ||
		fail "created is not ISO 8601 UTC: '$created'"
	now=$(date -u +%s)
	then=$(date -u -d "$created" +%s 2>/dev/null || echo 0)
	[ $((now - then)) -ge 0 ] && [ $((now - then)) -lt 600 ] ||
		fail "created '$created' is not the time of init"
	[ "$(wc -l <"$dir/stdout")" -eq 6 ] || fail "info printed other than 6 lines: $out"
}

case_init_aes256gcm() {
	run init --cipher aes-256-gcm --key-file "$dir/key" "$dir/v"
	if cpu_has_aes; then
		expect_status 0
		run info "$dir/v"
		expect_out "cipher: aes-256-gcm"
		run init --key-file "$dir/key2" "$dir/w"
		run info "$dir/w"
		expect_out "cipher: aes-256-gcm"
	else
		expect_clean_error
		expect_err "use --cipher xchacha20-poly1305"
		[ ! -e "$dir/key" ] || fail "key file written for an unusable cipher"
	fi
}

case_info_not_a_vault() {
	mkdir "$dir/v"
	run info "$dir/v"
	expect_clean_error
	expect_err "vaultctl: '$dir/v' is not a vault: no vaultfs.header found"
}

case_info_missing_dir() {
	run info "$dir/nothing-here"
	expect_clean_error
	expect_err "'$dir/nothing-here' does not exist"
}

case_info_usage_errors() {
	run info
	expect_status 2
	expect_err "usage: vaultctl info DIR"
	run info "$dir/a" "$dir/b"
	expect_status 2
	expect_err "too many arguments"
}

case_info_unsupported_format_version() {
	make_vault "$dir/v" "$dir/key" || { fail "init failed"; return; }
	set_byte "$dir/v/vaultfs.header" 8 2
	[ "$(header_hex "$dir/v/vaultfs.header" 8 4)" = 02000000 ] || fail "edit did not land"
	run info "$dir/v"
	expect_clean_error
	expect_err "unsupported format version"
	set_byte "$dir/v/vaultfs.header" 8 0
	run info "$dir/v"
	expect_clean_error
}

case_info_random_header() {
	local i
	make_vault "$dir/v" "$dir/key" || { fail "init failed"; return; }
	for i in $(seq 1 25); do
		head -c 128 /dev/urandom >"$dir/v/vaultfs.header"
		run info "$dir/v"
		expect_clean_error
	done
	# Right magic and version, random rest: may be refused or shown, never a crash.
	for i in $(seq 1 25); do
		{ printf 'VAULTFS\0\1\0\0\0'; head -c 116 /dev/urandom; } >"$dir/v/vaultfs.header"
		run info "$dir/v"
		[ "$status" -le 1 ] || fail "info exited $status on a random header body"
	done
}

case_info_truncated_header() {
	local len
	make_vault "$dir/v" "$dir/key" || { fail "init failed"; return; }
	cp "$dir/v/vaultfs.header" "$dir/good"
	for len in 0 1 7 8 12 20 44 64 80 96 127; do
		head -c "$len" "$dir/good" >"$dir/v/vaultfs.header"
		run info "$dir/v"
		expect_clean_error
	done
	cp "$dir/good" "$dir/v/vaultfs.header"
	run info "$dir/v"
	expect_status 0
}

case_help_lists_every_subcommand() {
	local sub
	run help
	expect_status 0
	for sub in init info umount help; do
		grep -qE "^  $sub " "$dir/stdout" || fail "'vaultctl help' does not list $sub"
	done
	run
	expect_status 2
	for sub in init info umount help; do
		grep -qE "^  $sub " "$dir/stderr" || fail "usage on stderr does not list $sub"
	done
	run --help
	expect_status 0
	[ -z "$err" ] || fail "--help wrote to stderr: $err"
	grep -q "^usage: vaultctl" "$dir/stdout" || fail "--help prints no usage"
	for sub in init info umount; do
		run help "$sub"
		expect_status 0
		grep -q "^usage: vaultctl $sub" "$dir/stdout" || fail "'help $sub' prints no usage"
		run "$sub" --help
		expect_status 0
		grep -q "^usage: vaultctl $sub" "$dir/stdout" || fail "'$sub --help' prints no usage"
	done
	run help frobnicate
	expect_status 2
	expect_err "unknown subcommand 'frobnicate'"
	run frobnicate
	expect_status 2
	expect_err "vaultctl: unknown subcommand 'frobnicate': run 'vaultctl help'"
}

case_version() {
	run --version
	expect_status 0
	echo "$out" | grep -qxE 'vaultctl [0-9]+\.[0-9]+\.[0-9]+.*' || fail "bad --version: '$out'"
}

case_umount_not_a_mount() {
	mkdir "$dir/m"
	run umount "$dir/m"
	expect_clean_error
	expect_err "vaultctl: '$dir/m' is not a mount point: nothing to unmount"
	[ -d "$dir/m" ] || fail "directory vanished"
	run umount "$dir/none"
	expect_clean_error
	expect_err "'$dir/none' does not exist"
	run umount
	expect_status 2
	expect_err "usage: vaultctl umount MOUNTPOINT"
}

case_umount_refuses_other_file_systems() {
	mkdir "$dir/m"
	if ! mount -t tmpfs vaultctl-test "$dir/m" 2>/dev/null; then
		echo "    skip: cannot mount a tmpfs here"
		return 0
	fi
	run umount "$dir/m"
	expect_clean_error
	expect_err "is a tmpfs mount, not a vault"
	grep -q " $dir/m " /proc/self/mountinfo || fail "vaultctl unmounted a tmpfs"
	umount "$dir/m"
}

# wait_mount DIR present|absent: poll the mount table for up to 5 s.
wait_mount() {
	local i
	for i in $(seq 1 50); do
		if grep -q " $1 " /proc/self/mountinfo; then
			[ "$2" = present ] && return 0
		else
			[ "$2" = absent ] && return 0
		fi
		sleep 0.1
	done
	return 1
}

can_mount() {
	[ -n "${VAULTFS:-}" ] && [ -x "$VAULTFS" ] && [ -c /dev/fuse ]
}

# The real daemon: vaultctl umount of a live, a busy and a dead (SIGKILLed) mount.
case_umount_vaultfs_mount() {
	local pid
	if ! can_mount; then
		echo "    skip: no VAULTFS binary or no /dev/fuse"
		return 0
	fi
	make_vault "$dir/v" "$dir/key" || { fail "init failed"; return; }
	mkdir "$dir/m"
	"$VAULTFS" -f -o "keyfile=$dir/key" "$dir/v" "$dir/m" 2>"$dir/daemon.log" &
	pid=$!
	if ! wait_mount "$dir/m" present; then
		kill "$pid" 2>/dev/null
		echo "    skip: vaultfs cannot mount here: $(cat "$dir/daemon.log")"
		return 0
	fi
	echo hello >"$dir/m/file" || fail "cannot write into the mount"
	run umount "$dir/m"
	expect_status 0
	wait_mount "$dir/m" absent || fail "still mounted after vaultctl umount"
	wait "$pid" || fail "vaultfs exited non-zero after vaultctl umount"
	run info "$dir/v"
	expect_out "objects: 1"

	# Busy: a process has its working directory inside the mount.
	"$VAULTFS" -f -o "keyfile=$dir/key" "$dir/v" "$dir/m" 2>>"$dir/daemon.log" &
	pid=$!
	wait_mount "$dir/m" present || { fail "second mount failed"; return; }
	(cd "$dir/m" && sleep 3) &
	sleep 0.5
	run umount "$dir/m"
	if [ "$(id -u)" = 0 ]; then
		expect_clean_error
		expect_err "is busy"
	fi
	wait "$!" 2>/dev/null
	wait_mount "$dir/m" present || fail "mount vanished while busy"

	# Dead: the daemon was killed; stat fails with ENOTCONN, unmount must still work.
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	run umount "$dir/m"
	expect_status 0
	wait_mount "$dir/m" absent || { fail "dead mount left behind"; fusermount3 -u "$dir/m"; }
	[ "$(cat "$dir/v/vaultfs.header" | wc -c)" = 128 ] || fail "header damaged"
}

run_cases
