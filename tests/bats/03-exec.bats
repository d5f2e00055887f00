#!/usr/bin/env bats
# A command that cannot be executed is reported once, clearly, with the
# shell's exit status (127 not found, 126 not executable), never retried.

load ../helpers

# assert_cannot_run STATUS NAME: wpool exited STATUS within 2 s, saying once
# that it cannot run NAME.
assert_cannot_run() {
	local want=$1 name=$2
	assert_equal "$status" "$want"
	local all="$stderr"$'\n'"$output"
	local n
	n=$(grep -c 'cannot run' <<<"$all")
	((n == 1)) || fail "$(printf "'cannot run' said %d times:\n%s" "$n" "$all")"
	grep -qF "cannot run '$name'" <<<"$all" ||
		fail "$(printf 'the message does not name %s:\n%s' "$name" "$all")"
	# Each slot may have been forked once before the failure was known;
	# none may be started a second time.
	local dup
	dup=$(grep -oE 'worker [0-9]+ started' <<<"$all" | sort | uniq -d)
	[[ -z $dup ]] || fail "retried ($dup): $all"
}

@test "a command that does not exist: exit 127, one message, quickly" {
	local t0
	t0=$(now_us)
	run_wpool -127 -n 2 -b 127.0.0.1:0 -- ./no-such-command --flag
	assert_cannot_run 127 ./no-such-command
	grep -q 'No such file or directory' <<<"$stderr" || fail "stderr: $stderr"
	(($(elapsed_ms "$t0") < 2000)) || fail "took $(elapsed_ms "$t0") ms"
}

@test "a command name not found in PATH: exit 127" {
	run_wpool -127 -n 1 -- wpool-test-no-such-program
	assert_cannot_run 127 wpool-test-no-such-program
}

@test "a script whose interpreter does not exist: exit 127" {
	printf '#!/nonexistent/interpreter\necho hi\n' >"$BATS_TEST_TMPDIR/script"
	chmod +x "$BATS_TEST_TMPDIR/script"
	run_wpool -127 -n 1 -- "$BATS_TEST_TMPDIR/script"
	# Named as the interpreter's fault, before anything starts (issue 12).
	assert_equal "$stderr" "wpool: error: interpreter /nonexistent/interpreter of script $BATS_TEST_TMPDIR/script not found"
	refute_output --partial started
}

@test "a file that is not executable: exit 126" {
	printf '#!/bin/sh\necho hi\n' >"$BATS_TEST_TMPDIR/noexec"
	chmod 0644 "$BATS_TEST_TMPDIR/noexec"
	local t0
	t0=$(now_us)
	run_wpool -n 3 -- "$BATS_TEST_TMPDIR/noexec"
	assert_cannot_run 126 "$BATS_TEST_TMPDIR/noexec"
	grep -q 'Permission denied' <<<"$stderr" || fail "stderr: $stderr"
	(($(elapsed_ms "$t0") < 2000)) || fail "took $(elapsed_ms "$t0") ms"
}

@test "a directory as the command: exit 126" {
	mkdir "$BATS_TEST_TMPDIR/dir"
	run_wpool -n 1 -- "$BATS_TEST_TMPDIR/dir"
	assert_cannot_run 126 "$BATS_TEST_TMPDIR/dir"
}

@test "an exec failure leaves no process behind and the port free" {
	local port
	port=$(free_tcp_port)
	run_wpool -127 -n 4 -b "127.0.0.1:$port" -- ./no-such-command
	assert_equal "$status" 127
	tcp_port_free "$port" || fail "127.0.0.1:$port is still bound"
	local pids
	pids=$(sed -nE 's/.*started \(pid ([0-9]+),.*/\1/p' <<<"$stderr")
	[[ -n $pids ]] || return 0
	wait_gone $pids --timeout 2
}
