#!/usr/bin/env bash
# CLI tests of 'vaultctl policy check': the real binary (path in $VAULTCTL) on a good
# keyagent.conf, on files that break separation of duties or the syntax, and on a missing
# file. Each case is a function named case_*; the last line is "checks: N passed, N failed".
set -u

if [ -z "${VAULTCTL:-}" ] || [ ! -x "$VAULTCTL" ]; then
	echo "test_policy.sh: set VAULTCTL to the vaultctl binary" >&2
	exit 1
fi

. "$(dirname "$0")/lib.sh"

# run ARGS...: run vaultctl, leaving $status, $out and $err.
run() {
	"$VAULTCTL" "$@" >"$dir/stdout" 2>"$dir/stderr"
	collect
}






# The [agent] section every case starts with (5 lines).
agent_section() {
	cat <<-'EOF'
	[agent]
	socket = /run/vaultfs/agent.sock
	keystore = /var/lib/vaultfs/keystore
	data_root = /var/lib/vaultfs/vaults
	kek = passphrase
	EOF
}

case_good_policy() {
	{
		agent_section
		cat <<-'EOF'
		lease_ttl = 30

		[role analysts]
		users = daemon, 4001
		groups = nogroup
		grant = cardio rw
		path = cardio features/** ro
		path = cardio checkpoints/** rw
		grant = neuro ro
		window = Mon-Fri 07:00-19:00 Europe/Berlin
		hosts = gpu-*

		[role keyadmins]
		users = 3001
		admin = cardio rotate retire shred
		admin = imaging create

		[role ops]
		users = root
		admin = * reload revoke
		EOF
	} >"$dir/keyagent.conf"
	run policy check "$dir/keyagent.conf"
	expect_status 0
	expect_out "$dir/keyagent.conf: ok"
	expect_out "roles: 3 (analysts, keyadmins, ops)"
	expect_out "datasets: 3 (cardio, neuro, imaging)"
	[ -z "$err" ] || fail "stderr not empty: $err"
}

case_separation_of_duties() {
	{
		agent_section
		cat <<-'EOF'

		[role analysts]
		users = daemon
		grant = cardio ro

		[role keyadmins]
		users = daemon
		admin = cardio rotate
		EOF
	} >"$dir/keyagent.conf"
	run policy check "$dir/keyagent.conf"
	expect_clean_error
	expect_err "$dir/keyagent.conf:13: user 'daemon' holds key-admin privileges on 'cardio'"
	expect_err "role 'keyadmins' (line 13)"
	expect_err "role 'analysts' (line 9)"
	expect_err "separation of duties forbids both"
}

case_separation_of_duties_through_group() {
	{
		agent_section
		cat <<-'EOF'
		[role keyadmins]
		users = root
		admin = * kek
		[role analysts]
		groups = root
		grant = neuro rw
		EOF
	} >"$dir/keyagent.conf"
	run policy check "$dir/keyagent.conf"
	expect_clean_error
	expect_err "$dir/keyagent.conf:8: user 'root' holds key-admin privileges on every dataset"
	expect_err "as a member of group 'root'"
	expect_err "(line 11)"
}

case_syntax_error() {
	{
		agent_section
		printf '[role analysts]\nusers = daemon\ngrant cardio rw\n'
	} >"$dir/keyagent.conf"
	run policy check "$dir/keyagent.conf"
	expect_clean_error
	expect_err "$dir/keyagent.conf:8: syntax error"
}

case_unknown_key() {
	{
		agent_section
		printf '[role analysts]\nusers = daemon\ngrnat = cardio rw\n'
	} >"$dir/keyagent.conf"
	run policy check "$dir/keyagent.conf"
	expect_clean_error
	expect_err "$dir/keyagent.conf:8: unknown key 'grnat' in [role analysts]: did you mean 'grant'?"
}

case_missing_file() {
	run policy check "$dir/nothing.conf"
	expect_clean_error
	expect_err "$dir/nothing.conf: no such file"
}

case_usage() {
	run policy check
	expect_status 2
	expect_err "usage: vaultctl policy check FILE"
	run policy frobnicate x
	expect_status 2
	expect_err "unknown policy action 'frobnicate'"
	run policy
	expect_status 2
	run help policy
	expect_status 0
	expect_out "usage: vaultctl policy check FILE"
	run policy check --help
	expect_status 0
}

run_cases
