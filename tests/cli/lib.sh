# Shared by the CLI test scripts (sourced): a scratch directory removed at exit (mounts
# under it detached first), the expect_* checks, and run_cases, which runs every case_*
# function in its own subshell and prints the summary "checks: N passed, N failed".
# A script defines run() (how it calls vaultctl) and may define case_setup,
# case_teardown and case_failed_hook.

scratch=$(mktemp -d "${TMPDIR:-/tmp}/vaultfs-cli.XXXXXX") || exit 1
cleanup() {
	local point
	for point in $(awk -v top="$scratch/" 'index($5, top) == 1 { print $5 }' /proc/self/mountinfo); do
		umount -l "$point" 2>/dev/null || fusermount3 -uz "$point" 2>/dev/null
	done
	rm -rf "$scratch"
}
trap cleanup EXIT

# After a command wrote $dir/stdout and $dir/stderr: leave $status, $out and $err.
collect() {
	status=$?
	out=$(cat "$dir/stdout")
	err=$(cat "$dir/stderr")
}

fail() {
	echo "    FAIL: $*"
	case_failed=1
}

expect_status() {
	[ "$status" -eq "$1" ] || fail "exit status $status, expected $1 (stderr: $err)"
}

expect_err() {
	grep -qF -- "$1" "$dir/stderr" || fail "stderr lacks '$1': $err"
}

expect_out() {
	grep -qxF -- "$1" "$dir/stdout" || fail "stdout lacks the line '$1': $out"
}

# Errors are lines that start with our name, never a crash or a silent failure.
expect_clean_error() {
	expect_status 1
	grep -q '^vaultctl: ' "$dir/stderr" || fail "no 'vaultctl: ' message on stderr: $err"
	[ -z "$out" ] || fail "error also wrote to stdout: $out"
}

run_cases() {
	local name passed=0 failed=0
	for name in $(declare -F | awk '$3 ~ /^case_/ && $3 != "case_setup" &&
			$3 != "case_teardown" && $3 != "case_failed_hook" { print $3 }'); do
		dir="$scratch/$name"
		mkdir "$dir"
		echo "$name"
		# A subshell per case: a case cannot leak state into the next.
		(
			case_failed=0
			if declare -F case_setup >/dev/null; then case_setup; fi
			"$name"
			if declare -F case_teardown >/dev/null; then case_teardown; fi
			exit "$case_failed"
		)
		if [ $? -eq 0 ]; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			echo "    FAILED: $name"
			if declare -F case_failed_hook >/dev/null; then case_failed_hook; fi
		fi
	done
	echo "checks: $passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}
