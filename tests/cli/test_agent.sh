#!/usr/bin/env bash
# CLI tests of vaultctl against the real key agent ($VAULT_KEYAGENT, started in the
# foreground on a scratch configuration per case) and real mounts ($VAULTFS): status,
# unlock, datasets, mount, lease revocation, key rotate/retire/shred, rekey offline and
# online, KEK rotation, policy reload, and the messages for an agent that is down, sealed or refusing.
# Root runs the admin commands and mounts; other uids come from setpriv. Each case is a
# function named case_*; the last line is the summary "checks: N passed, N failed".
set -u

for var in VAULTCTL VAULTFS VAULT_KEYAGENT; do
	if [ -z "${!var:-}" ] || [ ! -x "${!var}" ]; then
		echo "test_agent.sh: set $var to its binary" >&2
		exit 1
	fi
done
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null || [ ! -c /dev/fuse ]; then
	echo "skip: needs root, setpriv (util-linux) and /dev/fuse"
	echo "checks: 0 passed, 0 failed"
	exit 77
fi

# uids of the policy below: DATA_UID has a data grant on 'b'; KEK_UID holds 'kek'.
DATA_UID=1000
KEK_UID=1001
SOCKET_GID=1000

. "$(dirname "$0")/lib.sh"
# Other uids must reach the socket directory (the agent makes that one 0750).
chmod 0755 "$scratch"

# run ARGS...: run vaultctl as root on the case's agent, leaving $status, $out and $err.
run() {
	"$VAULTCTL" --agent "$sock" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null
	collect
}

# run_as UID ARGS...: the same as another uid, without supplementary groups.
run_as() {
	local uid=$1
	shift
	setpriv --reuid "$uid" --regid "$SOCKET_GID" --clear-groups -- \
		"$VAULTCTL" --agent "$sock" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null
	collect
}

# run_detached ARGS...: without a controlling terminal (setsid), as a batch job runs.
run_detached() {
	setsid -w "$VAULTCTL" --agent "$sock" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null
	collect
}






# Here an error is exactly one "vaultctl: " line on stderr.
expect_one_line_error() {
	expect_clean_error
	[ "$(wc -l <"$dir/stderr")" -eq 1 ] || fail "more than one line on stderr: $err"
}

# write_config KEK [EXTRA-ROLES]: the case's keyagent.conf. Lines 1-7 are [agent];
# role 'ops' is lines 9-12, 'keyadmin' 14-16, 'data' 18-20. Root administers 'a' and
# reads and writes 'b' (separation of duties forbids key-admin and data on one dataset).
write_config() {
	cat >"$conf" <<-EOF
	[agent]
	socket = $sock
	socket_group = $SOCKET_GID
	keystore = $dir/keystore
	data_root = $dir/vaults
	kek = $1
	lease_ttl = 5

	[role ops]
	users = root
	admin = a rotate retire shred
	admin = * create revoke reload

	[role keyadmin]
	users = $KEK_UID
	admin = * kek

	[role data]
	users = root, $DATA_UID
	grant = b rw
	EOF
	[ $# -ge 2 ] && printf '%s\n' "$2" >>"$conf"
	chmod 0644 "$conf"
}

keyfile_config() {
	head -c 32 /dev/urandom >"$dir/kek"
	chmod 0600 "$dir/kek"
	write_config "keyfile:$dir/kek" "$@"
}

# start_agent: run the agent in the foreground and wait for its socket (10 s).
start_agent() {
	local i
	"$VAULT_KEYAGENT" -f -c "$conf" 2>>"$dir/agent.log" &
	agent_pid=$!
	for i in $(seq 1 100); do
		[ -S "$sock" ] && return 0
		if ! kill -0 "$agent_pid" 2>/dev/null; then
			fail "the agent did not start: $(cat "$dir/agent.log")"
			agent_pid=
			return 1
		fi
		sleep 0.1
	done
	fail "the agent made no socket within 10 s: $(cat "$dir/agent.log")"
	return 1
}

stop_agent() {
	if [ -n "${agent_pid:-}" ]; then
		kill "$agent_pid" 2>/dev/null
		wait "$agent_pid" 2>/dev/null
		agent_pid=
	fi
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

unmount() {
	"$VAULTCTL" umount "$1" >/dev/null 2>&1 || umount -l "$1" 2>/dev/null
	wait_mount "$1" absent || fail "'$1' still mounted"
}

# Every case: a keyfile agent, unless the case starts another.
setup_case() {
	chmod 0755 "$dir"
	sock="$dir/run/agent.sock"
	conf="$dir/keyagent.conf"
	agent_pid=
	trap 'stop_agent' EXIT
}

case_status_and_datasets() {
	keyfile_config
	start_agent || return
	run status
	expect_status 0
	[ "$out" = unsealed ] || fail "status printed '$out', expected 'unsealed'"
	run dataset create a
	expect_status 0
	[ "$out" = "$dir/vaults/a" ] || fail "dataset create printed '$out', expected '$dir/vaults/a'"
	[ -f "$dir/vaults/a/vaultfs.header" ] || fail "no vault made in $dir/vaults/a"
	run dataset create b
	expect_status 0
	run dataset list
	expect_status 0
	[ "$out" = "$(printf 'a\nb')" ] || fail "dataset list printed '$out', expected 'a' and 'b'"
	run dataset create a
	expect_one_line_error
	expect_err "vaultctl: dataset 'a' exists already"
	run dataset create 'no good'
	expect_status 2
	expect_err "'no good' is not a dataset name"
	# uid DATA_UID sees the dataset it may mount, and may not create one.
	run_as "$DATA_UID" dataset list
	expect_status 0
	[ "$out" = b ] || fail "uid $DATA_UID listed '$out', expected only 'b'"
	run_as "$DATA_UID" dataset create c
	expect_one_line_error
	expect_err "vaultctl: the agent refused: you hold no role allowing 'dataset create' on 'c'"
	[ ! -e "$dir/vaults/c" ] || fail "a refused create left '$dir/vaults/c'"
}

case_mount_write_read() {
	keyfile_config
	start_agent || return
	run dataset create a
	run dataset create b
	mkdir "$dir/m"
	run mount b "$dir/m"
	expect_status 0
	wait_mount "$dir/m" present || { fail "vaultctl mount made no mount: $err"; return; }
	echo "ecg 0042" >"$dir/m/record.txt" || fail "cannot write through the mount"
	[ "$(cat "$dir/m/record.txt" 2>&1)" = "ecg 0042" ] || fail "read back differs"
	unmount "$dir/m"
	[ -z "$(grep -rl "ecg 0042" "$dir/vaults/b" 2>/dev/null)" ] ||
		fail "the plaintext is in the vault's files"
	# Again with vaultfs found next to vaultctl (the build tree), not through $VAULTFS.
	env -u VAULTFS "$VAULTCTL" --agent "$sock" mount b "$dir/m" -o ro \
		>"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_status 0
	wait_mount "$dir/m" present || { fail "second mount failed: $err"; return; }
	[ "$(cat "$dir/m/record.txt" 2>&1)" = "ecg 0042" ] || fail "data did not survive a remount"
	unmount "$dir/m"
	# Root administers 'a' and holds no data grant on it: the agent refuses the lease.
	run mount a "$dir/m"
	expect_status 1
	grep -q "refused dataset 'a'" "$dir/stderr" || fail "no refusal for 'a': $err"
	wait_mount "$dir/m" absent || fail "a refused mount is present"
	run mount b "$dir/m" -o dataset=a
	expect_status 2
	run mount b "$dir/m" -o agent=/x
	expect_status 2
	expect_err "vaultctl --agent SOCKET mount"
}

case_lease_revoke() {
	local i denied=0 open_fd=0
	keyfile_config
	start_agent || return
	run dataset create b
	mkdir "$dir/m"
	run mount b "$dir/m"
	wait_mount "$dir/m" present || { fail "mount failed: $err"; return; }
	echo "hr 61" >"$dir/m/f" || fail "cannot write through the mount"
	exec 3<"$dir/m/f" && open_fd=1 || fail "cannot open a file in the mount"
	run lease revoke b
	expect_status 0
	expect_out "1 lease of dataset 'b' revoked"
	for i in $(seq 1 50); do
		if ! cat "$dir/m/f" >/dev/null 2>"$dir/cat.err" &&
		   grep -q "Permission denied" "$dir/cat.err"; then
			denied=1
			break
		fi
		sleep 0.1
	done
	[ "$denied" = 1 ] || fail "the file was still readable 5 s after the revocation"
	if [ "$open_fd" = 1 ]; then
		cat <&3 >/dev/null 2>"$dir/cat.err" &&
			fail "an open file was still readable after revocation"
		exec 3<&-
	fi
	ls "$dir/m" >/dev/null 2>&1 && fail "the mount could still be listed after revocation"
	grep -q " $dir/m " /proc/self/mountinfo || fail "the revoked mount vanished"
	unmount "$dir/m"
	# By id, unknown; bad ids; a uid without the privilege.
	run lease revoke --id 12345
	expect_one_line_error
	expect_err "no such lease"
	run lease revoke --id zz
	expect_status 2
	run lease revoke b --id 1
	expect_status 2
	run_as "$DATA_UID" lease revoke b
	expect_one_line_error
	expect_err "you hold no role allowing 'lease revoke' on 'b'"
}

case_key_rotate_retire() {
	keyfile_config
	start_agent || return
	run dataset create a
	run dataset create b
	run key rotate a
	expect_status 0
	[ "$out" = 2 ] || fail "key rotate printed '$out', expected '2'"
	run key retire a 1
	expect_one_line_error
	expect_err "is still used by"
	run key retire a 2
	expect_one_line_error
	expect_err "newest key"
	run key retire a 7
	expect_one_line_error
	expect_err "no live key version 7"
	run key retire a x
	expect_status 2
	run key rotate b
	expect_one_line_error
	expect_err "vaultctl: the agent refused: you hold no role allowing 'key rotate' on 'b'"
}

case_key_shred() {
	keyfile_config
	start_agent || return
	run dataset create a
	# No terminal and no --confirm: refused, nothing destroyed.
	run_detached key shred a
	expect_status 2
	expect_err "no terminal to confirm on: repeat the dataset name with --confirm a"
	run key shred --confirm A a
	expect_status 2
	expect_err "--confirm 'A' does not repeat the dataset name 'a'"
	run key rotate a
	expect_status 0
	[ "$out" = 2 ] || fail "the dataset lost its key after refused shreds: '$out' $err"
	run key shred --confirm a a
	expect_status 0
	expect_out "dataset 'a' shredded, 0 leases revoked"
	run key rotate a
	expect_one_line_error
	expect_err "dataset 'a' was shredded"
	run dataset create a
	expect_one_line_error
	expect_err "cannot be used again"
}

# KEK_UID also rotates, retires and rekeys 'b', on which it holds no data grant.
rekey_role=$(printf '[role rekeyer]\nusers = %s\nadmin = b rotate retire' "$KEK_UID")

# fill_files DIR: a few files, one of 3 MiB, in the mount at DIR; copies in $dir/orig.
fill_files() {
	mkdir -p "$dir/orig/sub" "$1/sub" || { fail "cannot make directories"; return 1; }
	head -c $((3 * 1024 * 1024)) /dev/urandom >"$dir/orig/big.bin"
	echo "ecg 0042" >"$dir/orig/record.txt"
	printf 'bp 120/80\n' >"$dir/orig/sub/vitals.csv"
	: >"$dir/orig/empty"
	for f in big.bin record.txt sub/vitals.csv empty; do
		cp "$dir/orig/$f" "$1/$f" || { fail "cannot write '$f' through the mount"; return 1; }
	done
}

# same_files DIR: the files of fill_files read back through the mount at DIR.
same_files() {
	for f in big.bin record.txt sub/vitals.csv empty; do
		cmp -s "$dir/orig/$f" "$1/$f" || fail "'$f' differs after the rekey"
	done
}

# wait_released N: the agent has logged N releases of 'b' (5 s at most): an unmounted
# daemon gives its lease back just after the mount goes, and a rekey started before that
# would go to it rather than run offline.
wait_released() {
	local i
	for i in $(seq 1 50); do
		[ "$(grep -c "release 'b': ok" "$dir/agent.log")" -ge "$1" ] && return 0
		sleep 0.1
	done
	fail "the unmounted daemon did not release its lease"
}

# Dataset b, under the rekey test's roles, mounted on $dir/m and holding fill_files.
mount_filled() {
	keyfile_config "$rekey_role"
	start_agent || return 1
	run dataset create b
	mkdir "$dir/m"
	run mount b "$dir/m"
	wait_mount "$dir/m" present || { fail "mount failed: $err"; return 1; }
	fill_files "$dir/m"
}

case_rekey_offline() {
	mount_filled || return
	unmount "$dir/m"
	wait_released 1
	run_as "$KEK_UID" key rotate b
	expect_status 0
	[ "$out" = 2 ] || fail "key rotate printed '$out', expected '2'"
	run_as "$KEK_UID" key retire b 1
	expect_one_line_error
	expect_err "run 'vaultctl rekey b' first"
	# Without the privilege (a data role is not it), with the option after the subcommand.
	setpriv --reuid "$DATA_UID" --regid "$SOCKET_GID" --clear-groups -- \
		"$VAULTCTL" rekey --agent "$sock" b >"$dir/stdout" 2>"$dir/stderr" </dev/null
	collect
	expect_one_line_error
	expect_err "vaultctl: the agent refused: you hold no role allowing 'rekey' on 'b'"
	run_as "$KEK_UID" rekey nosuch
	expect_one_line_error
	# Not mounted: the agent rekeys; without a terminal one line at the start and the end.
	run_as "$KEK_UID" rekey b
	expect_status 0
	expect_err "rekeying dataset 'b' to key version 2: offline"
	[ "$(wc -l <"$dir/stderr")" -eq 1 ] || fail "more than the start line on stderr: $err"
	grep -qE "^dataset 'b' rekeyed: [0-9]+ items now under key version 2; retire older versions with 'vaultctl key retire'\$" \
		"$dir/stdout" || fail "unexpected rekey output: $out"
	[ "$(wc -l <"$dir/stdout")" -eq 1 ] || fail "more than one line on stdout: $out"
	grep -q "rekey to key version 2 done" "$dir/agent.log" || fail "the agent logged no finish"
	run_as "$KEK_UID" key retire b 1
	expect_status 0
	# Only version 2 is left, and it reads everything back.
	run mount b "$dir/m"
	wait_mount "$dir/m" present || { fail "mount after the rekey failed: $err"; return; }
	same_files "$dir/m"
	unmount "$dir/m"
	wait_released 2
	# Nothing left to move: a second run is done at once.
	run_as "$KEK_UID" rekey b
	expect_status 0
	expect_out "dataset 'b' rekeyed: 0 items now under key version 2; retire older versions with 'vaultctl key retire'"
	# On a terminal (script(1) gives it one): the progress bar, redrawn with \r.
	setpriv --reuid "$KEK_UID" --regid "$SOCKET_GID" --clear-groups -- \
		script -qec "'$VAULTCTL' --agent '$sock' rekey b" /dev/null >"$dir/tty" 2>&1 </dev/null
	grep -q $'\rrekey .b. to key version 2 \[#*\] 100% 0/0' "$dir/tty" ||
		fail "no progress bar on a terminal: $(tr '\r\033' '|~' <"$dir/tty")"
}

case_rekey_online() {
	mount_filled || return
	run_as "$KEK_UID" key rotate b
	expect_status 0
	# Mounted: the mount's daemon does it, asked through its lease renewals.
	run_as "$KEK_UID" rekey b
	expect_status 0
	grep -q "rekeying dataset 'b' to key version 2: online (mounted by pid [0-9]*)" \
		"$dir/stderr" || fail "not said to run online: $err"
	grep -qE "^dataset 'b' rekeyed: [0-9]+ items now under key version 2;" "$dir/stdout" ||
		fail "unexpected rekey output: $out"
	same_files "$dir/m"
	unmount "$dir/m"
	run_as "$KEK_UID" key retire b 1
	expect_status 0
	run mount b "$dir/m"
	wait_mount "$dir/m" present || { fail "mount after the rekey failed: $err"; return; }
	same_files "$dir/m"
	unmount "$dir/m"
}

case_kek_rotate_keyfile_agent() {
	keyfile_config
	start_agent || return
	setpriv --reuid "$KEK_UID" --regid "$SOCKET_GID" --clear-groups -- \
		"$VAULTCTL" --agent "$sock" kek rotate --passphrase-fd 3 \
		3<<<"a new passphrase" >"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_one_line_error
	expect_err "only a passphrase KEK is rotated"
	# Root holds no 'kek' privilege.
	"$VAULTCTL" --agent "$sock" kek rotate --passphrase-fd 3 3<<<"a long passphrase" \
		>"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_one_line_error
	expect_err "you hold no role allowing 'kek rotate' on '*'"
}

# unlock_with PASSPHRASE [UID]: vaultctl unlock, the passphrase on descriptor 3.
unlock_with() {
	"$VAULTCTL" --agent "$sock" unlock --passphrase-fd 3 3<<<"$1" >"$dir/stdout" 2>"$dir/stderr"
	collect
}

case_passphrase_agent() {
	write_config passphrase
	start_agent || return
	run status
	expect_status 0
	[ "$out" = new ] || fail "status printed '$out', expected 'new' (no passphrase yet)"
	run dataset create b
	expect_one_line_error
	expect_err "vaultctl: the agent is sealed: run 'vaultctl unlock'"
	# Never from the command line; never from nowhere.
	run unlock "first passphrase"
	expect_status 2
	run_detached unlock
	expect_one_line_error
	expect_err "no terminal to read the passphrase from"
	unlock_with ""
	expect_one_line_error
	expect_err "the passphrase is empty"
	# The first passphrase has at least 12 characters, not bytes; a short one is not sent.
	unlock_with "short pass"
	expect_one_line_error
	expect_err "the new passphrase has 10 characters: choose one of at least 12"
	unlock_with "ééééééééééé"
	expect_one_line_error
	expect_err "the new passphrase has 11 characters"
	run status
	[ "$out" = new ] || fail "status after refused passphrases printed '$out'"
	# The first unlock sets the passphrase.
	unlock_with "first passphrase"
	expect_status 0
	expect_out unsealed
	run status
	[ "$out" = unsealed ] || fail "status after unlock printed '$out'"
	unlock_with "first passphrase"
	expect_one_line_error
	expect_err "already unsealed"
	run dataset create b
	expect_status 0
	# A restart seals it again; a wrong passphrase is refused, a short one is only wrong
	# (passphrases set before the minimum still unlock).
	stop_agent
	start_agent || return
	run status
	[ "$out" = sealed ] || fail "status after restart printed '$out'"
	unlock_with "short"
	expect_one_line_error
	expect_err "vaultctl: cannot unlock: wrong passphrase"
	sleep 2.2   # the agent's back-off after a wrong guess
	unlock_with "first passphrase"
	expect_status 0
	# KEK rotation: the old passphrase opens nothing afterwards, the new one does.
	setpriv --reuid "$KEK_UID" --regid "$SOCKET_GID" --clear-groups -- \
		"$VAULTCTL" --agent "$sock" kek rotate --passphrase-fd 3 \
		3<<<"second passphrase" >"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_status 0
	# A new passphrase from KEK rotation has the same minimum.
	setpriv --reuid "$KEK_UID" --regid "$SOCKET_GID" --clear-groups -- \
		"$VAULTCTL" --agent "$sock" kek rotate --passphrase-fd 3 \
		3<<<"too short" >"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_one_line_error
	expect_err "the new passphrase has 9 characters: choose one of at least 12"
	stop_agent
	start_agent || return
	unlock_with "first passphrase"
	expect_one_line_error
	expect_err "wrong passphrase"
	sleep 2.2
	unlock_with "second passphrase"
	expect_status 0
	run dataset list
	[ "$out" = b ] || fail "dataset list after KEK rotation printed '$out'"
	# A passphrase over the protocol's bound is refused before anything is sent.
	head -c 2000 /dev/zero | tr '\0' x >"$dir/long"
	"$VAULTCTL" --agent "$sock" kek rotate --passphrase-fd 3 3<"$dir/long" \
		>"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_one_line_error
	expect_err "longer than 1024 bytes"
}

# on_terminal SCRIPT ARGS...: run vaultctl ARGS on a pseudo-terminal, typing the lines
# of $typed after each prompt; SCRIPT=term sends SIGTERM at the first prompt instead.
# Leaves the terminal's output in $dir/stdout, and "echo:on|off" lines (the terminal's
# echo flag at each prompt and at the end) in $dir/echo.
on_terminal() {
	local mode=$1
	shift
	python3 - "$mode" "$VAULTCTL" --agent "$sock" "$@" >"$dir/stdout" 2>"$dir/stderr" <<-'EOF'
	import os, pty, select, signal, sys, termios, time
	mode, argv = sys.argv[1], sys.argv[2:]
	lines = [l.encode() + b"\n" for l in os.environ.get("typed", "").split("|") if l]
	pid, fd = pty.fork()
	if pid == 0:
	    os.execv(argv[0], argv)
	out, echo = b"", []
	# Read until a new prompt (output since the call ending in ':'), end of output or the
	# deadline: a line typed before its prompt would be flushed by the prompt's TCSAFLUSH.
	def take(deadline):
	    global out
	    start = len(out)
	    while time.time() < deadline:
	        if not select.select([fd], [], [], max(0, deadline - time.time()))[0]:
	            return
	        try:
	            data = os.read(fd, 4096)
	        except OSError:
	            return
	        if not data:
	            return
	        out += data
	        if out[start:].rstrip().endswith(b":"):
	            return
	for line in lines + [None]:
	    take(time.time() + 10)
	    echo.append("echo:" + ("on" if termios.tcgetattr(fd)[3] & termios.ECHO else "off"))
	    if mode == "term":
	        os.kill(pid, signal.SIGTERM)
	        time.sleep(0.5)
	        break
	    if line is None:
	        break
	    os.write(fd, line)
	    out += b"\n"
	take(time.time() + 10)
	echo.append("echo:" + ("on" if termios.tcgetattr(fd)[3] & termios.ECHO else "off"))
	_, status = os.waitpid(pid, 0)
	sys.stdout.buffer.write(out.replace(b"\r", b""))
	with open(os.path.join(os.environ["dir"], "echo"), "w") as f:
	    f.write("\n".join(echo) + "\n")
	sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else 1)
	EOF
	collect
}

case_terminal() {
	export dir
	write_config passphrase "$(printf '[role shredder]\nusers = root\nadmin = b shred')"
	sed -i 's/^users = root, /users = /' "$conf"
	start_agent || return
	# Killed at the prompt: the terminal gets its echo back.
	typed="" on_terminal term unlock
	[ "$(cat "$dir/echo")" = "$(printf 'echo:off\necho:on')" ] ||
		fail "echo at the prompt / after SIGTERM: $(tr '\n' ' ' <"$dir/echo")"
	# A new keystore: the first passphrase is refused at once when short, else asked
	# twice, and two that differ set nothing.
	typed="short" on_terminal keys unlock
	expect_status 1
	grep -qF "new passphrase for the key agent (at least 12 characters):" "$dir/stdout" ||
		fail "no prompt for a new passphrase: $out"
	expect_out "vaultctl: the new passphrase has 5 characters: choose one of at least 12, nothing was sent"
	grep -qF "repeat" "$dir/stdout" && fail "a short passphrase was asked for again: $out"
	typed="terminal passphrase|terminal passphrasf" on_terminal keys unlock
	expect_status 1
	expect_out "vaultctl: the two passphrases differ: nothing was changed, try again"
	run status
	[ "$out" = new ] || fail "status after two different passphrases printed '$out'"
	typed="terminal passphrase|terminal passphrase" on_terminal keys unlock
	expect_status 0
	grep -qF "repeat the new passphrase:" "$dir/stdout" ||
		fail "the first passphrase was not asked twice: $(cat "$dir/stdout")"
	grep -qF "terminal passphrase" "$dir/stdout" && fail "the passphrase was echoed"
	[ "$(head -n 2 "$dir/echo")" = "$(printf 'echo:off\necho:off')" ] ||
		fail "echo was on at a prompt: $(tr '\n' ' ' <"$dir/echo")"
	[ "$(tail -n 1 "$dir/echo")" = echo:on ] || fail "echo was not restored"
	expect_out unsealed
	run dataset create b
	expect_status 0
	typed="bb" on_terminal keys key shred b
	expect_status 1
	grep -qF "type the dataset name to destroy every key of it:" "$dir/stdout" ||
		fail "no confirmation prompt: $out"
	# The prompt says what shred cannot reach, and what does.
	grep -qF "not covered: a copy of the keystore made before the shred" "$dir/stdout" &&
		grep -qF "run 'vaultctl kek rotate'" "$dir/stdout" ||
		fail "the prompt does not say what shred leaves readable: $(cat "$dir/stdout")"
	expect_out "vaultctl: the name typed is not 'b': nothing was shredded"
	typed="b" on_terminal keys key shred b
	expect_status 0
	expect_out "dataset 'b' shredded, 0 leases revoked"
	# Once set, the passphrase is asked for once.
	stop_agent
	start_agent || return
	typed="terminal passphrase" on_terminal keys unlock
	expect_status 0
	grep -qF "passphrase for the key agent:" "$dir/stdout" || fail "no prompt: $out"
	grep -qF "repeat" "$dir/stdout" && fail "an existing passphrase was asked twice: $out"
	expect_out unsealed
}

case_agent_down() {
	keyfile_config
	run status
	expect_one_line_error
	expect_err "vaultctl: the key agent is not running at '$sock': start vault-keyagent"
	VAULTFS_AGENT_SOCKET="$dir/env.sock" "$VAULTCTL" dataset list >"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_one_line_error
	expect_err "the key agent is not running at '$dir/env.sock'"
	# A socket left behind by a killed agent: nobody listens.
	start_agent || return
	kill -9 "$agent_pid"
	wait "$agent_pid" 2>/dev/null
	agent_pid=
	[ -S "$sock" ] || fail "the killed agent left no socket to test with"
	run key rotate a
	expect_one_line_error
	expect_err "the key agent is not running at '$sock'"
	mkdir "$dir/m"
	run mount b "$dir/m"
	expect_status 1
	grep -q "the key agent is not running at '$sock'" "$dir/stderr" ||
		fail "mount does not say the agent is down: $err"
}

case_policy_reload() {
	keyfile_config
	start_agent || return
	run dataset create b
	run key rotate b
	expect_one_line_error
	# A typo on line 21: refused, naming the line; the old policy stays.
	write_config "keyfile:$dir/kek" "grnat = b rw"
	run policy reload
	expect_one_line_error
	expect_err "policy reload refused, the old policy stays in force: $conf:21:"
	run_as "$DATA_UID" dataset list
	[ "$out" = b ] || fail "the old policy is not in force after a bad reload: '$out'"
	# Separation of duties: root may not rotate 'b' while it holds a data grant on it.
	write_config "keyfile:$dir/kek" "$(printf '[role more]\nusers = root\nadmin = b rotate')"
	run policy reload
	expect_one_line_error
	expect_err "separation of duties"
	expect_err "$conf:"
	# A good one: root also gives up its data grant on 'b', and may rotate it.
	sed -i 's/^users = root, /users = /' "$conf"
	run policy reload
	expect_status 0
	expect_out "policy reloaded"
	run key rotate b
	expect_status 0
	[ "$out" = 2 ] || fail "key rotate after the reload printed '$out': $err"
	run_as "$DATA_UID" policy reload
	expect_one_line_error
	expect_err "you hold no role allowing 'policy reload' on '*'"
}

case_usage() {
	local listing
	run help
	expect_status 0
	listing=$out
	for sub in unlock status dataset mount lease key rekey kek policy; do
		grep -qE "^  $sub " <<<"$listing" || fail "'vaultctl help' does not list $sub"
		run help "$sub"
		expect_status 0
		grep -q "^usage: vaultctl $sub" "$dir/stdout" || fail "'help $sub' prints no usage"
	done
	"$VAULTCTL" --agent >"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_status 2
	run dataset
	expect_status 2
	run key frob a
	expect_status 2
	run mount b
	expect_status 2
	# Every command taking one dataset NAME: none, two, and a bad one are usage errors.
	for cmd in "dataset create" "key rotate" "key shred" "rekey"; do
		# shellcheck disable=SC2086
		run $cmd
		expect_status 2
		expect_err "missing NAME"
		# shellcheck disable=SC2086
		run $cmd a b
		expect_status 2
		expect_err "too many arguments: one NAME only"
		# shellcheck disable=SC2086
		run $cmd 'no good'
		expect_status 2
		expect_err "'no good' is not a dataset name"
	done
	run unlock --passphrase-fd x
	expect_status 2
}

# run_agent ARGS...: vault-keyagent ARGS, leaving $status, $out and $err.
run_agent() {
	"$VAULT_KEYAGENT" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null
	collect
}

# vault-keyagent's command line works like vaultctl's: --help and --version on stdout
# with status 0, a bad command line named on stderr with the synopsis and status 2.
case_keyagent_command_line() {
	local option version
	version=$("$VAULTCTL" --version) || fail "vaultctl --version failed"
	for option in --help -h; do
		run_agent "$option"
		expect_status 0
		[ "$(head -n 1 "$dir/stdout")" = \
			"usage: vault-keyagent [-f] [-c FILE] [--pid-file FILE]" ] ||
			fail "$option printed: $out"
		grep -qF -- "--pid-file FILE" "$dir/stdout" || fail "$option omits --pid-file: $out"
		[ -z "$err" ] || fail "$option wrote to stderr: $err"
	done
	for option in --version -V; do
		run_agent "$option"
		expect_status 0
		[ "$out" = "vault-keyagent ${version#vaultctl }" ] ||
			fail "$option printed '$out', expected the version of '$version'"
		[ -z "$err" ] || fail "$option wrote to stderr: $err"
	done
	run_agent --bogus
	expect_status 2
	[ "$(head -n 1 "$dir/stderr")" = "vault-keyagent: unknown option '--bogus'" ] ||
		fail "unknown option: $err"
	grep -qx "usage: vault-keyagent .*" "$dir/stderr" || fail "no synopsis: $err"
	[ -z "$out" ] || fail "a usage error wrote to stdout: $out"
	run_agent -fx
	expect_status 2
	expect_err "vault-keyagent: unknown option '-x'"
	run_agent -c "$conf" extra
	expect_status 2
	expect_err "vault-keyagent: unexpected argument 'extra'"
	run_agent --pid-file
	expect_status 2
	expect_err "vault-keyagent: give a value to '--pid-file'"
	[ ! -S "$sock" ] || fail "a usage error started an agent"
}

# wait_gone PID: poll up to 10 s for the process to end.
wait_gone() {
	local i
	for i in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# --pid-file: the agent that answers writes its pid (once it answers, so a script can
# stop it without procps) and removes the file when it stops.
case_keyagent_pid_file() {
	local pid
	keyfile_config
	# In the background, with a path relative to where it was started.
	(cd "$dir" && "$VAULT_KEYAGENT" -c "$conf" --pid-file agent.pid) \
		>"$dir/stdout" 2>"$dir/stderr"
	collect
	expect_status 0
	[ -s "$dir/agent.pid" ] || { fail "no pid file once the agent returned: $err"; return; }
	pid=$(cat "$dir/agent.pid")
	agent_pid=$pid   # the teardown stops it if a check below fails
	[[ "$pid" =~ ^[0-9]+$ ]] || { fail "pid file holds '$pid'"; return; }
	[ "$(stat -c %a "$dir/agent.pid")" = 644 ] ||
		fail "pid file mode $(stat -c %a "$dir/agent.pid"), expected 644"
	[ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$VAULT_KEYAGENT")" ] ||
		fail "pid $pid is not the agent: $(readlink "/proc/$pid/exe")"
	ls "$dir"/agent.pid.* >/dev/null 2>&1 && fail "a temporary pid file was left"
	run status
	expect_status 0
	[ "$out" = unsealed ] || fail "the agent of the pid file does not answer: $err"
	kill "$pid"
	wait_gone "$pid" || fail "agent $pid did not stop on SIGTERM"
	[ ! -e "$dir/agent.pid" ] || fail "the pid file outlived the agent"
	agent_pid=
	# In the foreground: the pid is the one started.
	"$VAULT_KEYAGENT" -f -c "$conf" --pid-file "$dir/fg.pid" 2>>"$dir/agent.log" &
	agent_pid=$!
	for _ in $(seq 1 100); do
		[ -s "$dir/fg.pid" ] && break
		sleep 0.1
	done
	[ "$(cat "$dir/fg.pid" 2>/dev/null)" = "$agent_pid" ] ||
		fail "foreground pid file holds '$(cat "$dir/fg.pid" 2>/dev/null)', not $agent_pid"
	stop_agent
	[ ! -e "$dir/fg.pid" ] || fail "the foreground agent left its pid file"
	# A pid file that cannot be written stops the start: status 1, no agent left behind.
	run_agent -c "$conf" --pid-file "$dir/missing/agent.pid"
	expect_status 1
	expect_err "cannot write pid file '$dir/missing/agent.pid'"
	[ ! -S "$sock" ] || fail "the agent kept its socket after failing to start"
	"$VAULTCTL" --agent "$sock" status >/dev/null 2>&1 && fail "an agent still answers"
}

case_setup() { setup_case; }
case_teardown() { stop_agent; }
case_failed_hook() { sed 's/^/    agent: /' "$dir/agent.log" 2>/dev/null | tail -n 20; }
run_cases
