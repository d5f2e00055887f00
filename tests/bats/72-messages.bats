#!/usr/bin/env bats
# What wpool says (issue 12 item 7): a queued reload says so, the status
# table shows only what wpool knows, option errors say what was wrong, a
# script's missing interpreter is named, every error starts "NAME: error: "
# and a usage error points to --help.

load ../helpers

POINTER="Try 'wpool --help' for more information."

# usage_error_is STATUS MESSAGE: run_wpool's result is STATUS, the error
# MESSAGE, then the pointer to --help, and nothing else.
usage_error_is() {
	assert_equal "$status" 64
	assert_equal "${stderr_lines[0]}" "wpool: error: $1"
	assert_equal "${stderr_lines[1]}" "$POINTER"
	assert_equal "${#stderr_lines[@]}" 2
}

@test "a flag given a value says it takes none, not 'unknown option -h'" {
	run_wpool --help=foo -- "$TESTSRV"
	usage_error_is "--help takes no value (got '--help=foo'): give --help alone"
	run_wpool --no-restart=yes -- "$TESTSRV"
	usage_error_is "--no-restart takes no value (got '--no-restart=yes'): give --no-restart alone"
	# An abbreviation of one flag, with a value.
	run_wpool --no-rest=1 -- "$TESTSRV"
	usage_error_is "--no-restart takes no value (got '--no-rest=1')"
}

@test "an ambiguous abbreviation lists what it could be; an unknown one is unknown" {
	run_wpool --max 3 -- "$TESTSRV"
	assert_equal "$status" 64
	[[ ${stderr_lines[0]} == "wpool: error: ambiguous option '--max': could be "* ]] ||
		fail "got: $stderr"
	local o
	for o in --max-queue --max-restart-delay --max-requests --max-requests-jitter --max-memory; do
		[[ ${stderr_lines[0]} == *"$o"* ]] || fail "$o not listed: $stderr"
	done
	assert_equal "${stderr_lines[1]}" "$POINTER"
	run_wpool --ver=1 -- "$TESTSRV"
	usage_error_is "ambiguous option '--ver': could be --verbose, --version"
	run_wpool --bogus=3 -- "$TESTSRV"
	usage_error_is "unknown option '--bogus'"
	run_wpool -Z -- "$TESTSRV"
	usage_error_is "unknown option '-Z'"
	# An unambiguous abbreviation still works.
	run_wpool check --work 3 -- "$TESTSRV"
	assert_success
	assert_line 'workers = 3'
}

@test "every error starts 'wpool: error: '; usage errors point to --help, others do not" {
	# A bad value, a check across options, a misplaced control command.
	run_wpool -b nope -- "$TESTSRV"
	assert_equal "$status" 64
	[[ ${stderr_lines[0]} == "wpool: error: -b/--bind: invalid value 'nope'"* ]] || fail "got: $stderr"
	assert_equal "${stderr_lines[1]}" "$POINTER"
	run_wpool -m inetd -- "$TESTSRV"
	usage_error_is "--mode: inetd needs at least one -b/--bind listener"
	run_wpool -n 2 status
	assert_equal "$status" 64
	[[ ${stderr_lines[0]} == "wpool: error: 'status' is a control command"* ]] || fail "got: $stderr"
	assert_equal "${stderr_lines[1]}" "$POINTER"
	# Not usage errors: one line, no pointer.
	run_wpool -127 check -- ./nope
	assert_equal "$stderr" "wpool: error: cannot run './nope': No such file or directory"
	local port
	port=$(free_tcp_port)
	hold_tcp_listener "$port"
	run_wpool -1 -n 1 -b "127.0.0.1:$port" -- "$TESTSRV"
	[[ $stderr == "wpool: error: cannot bind 127.0.0.1:$port"* ]] || fail "got: $stderr"
	[[ $stderr != *"$POINTER"* ]] || fail "a pointer on a start-up failure: $stderr"
	# The client's errors too: no pool, a bad argument of a command.
	run_wpool -1 -s "$BATS_TEST_TMPDIR/none.sock" status
	assert_equal "$stderr" "wpool: error: no wpool running at $BATS_TEST_TMPDIR/none.sock"
	run_wpool -64 -s "$BATS_TEST_TMPDIR/none.sock" status --jsn
	assert_equal "${stderr_lines[0]}" "wpool: error: status: unknown argument '--jsn'"
}

# A script whose interpreter is not there.
bad_script() {
	printf '#!%s -x\necho never\n' "$2" >"$1"
	chmod +x "$1"
}

@test "a script whose #! interpreter is missing is named as such, by check and at start, before anything is bound" {
	bad_script s.sh /nonexistent/interp
	run_wpool -127 check -- ./s.sh
	assert_equal "$stderr" "wpool: error: interpreter /nonexistent/interp of script ./s.sh not found"
	local port
	port=$(free_tcp_port)
	run_wpool -127 -n 1 -b "127.0.0.1:$port" -- "$BATS_TEST_TMPDIR/s.sh"
	assert_equal "$stderr" "wpool: error: interpreter /nonexistent/interp of script $BATS_TEST_TMPDIR/s.sh not found"
	[[ $output != *started* && $output != *listening* ]] || fail "something started: $output"
	# Found through PATH, and a relative interpreter from -C's directory.
	mkdir bin
	bad_script bin/myscript ./missing-interp
	PATH="$BATS_TEST_TMPDIR/bin:$PATH" run_wpool -127 check -C /tmp -- myscript
	assert_equal "$stderr" "wpool: error: interpreter /tmp/./missing-interp of script $BATS_TEST_TMPDIR/bin/myscript not found"
	# An interpreter that is there but not executable.
	: >not-exec
	bad_script t.sh "$BATS_TEST_TMPDIR/not-exec"
	run_wpool -126 check -- ./t.sh
	assert_equal "$stderr" "wpool: error: interpreter $BATS_TEST_TMPDIR/not-exec of script ./t.sh is not executable"
	# A script whose interpreter is there passes.
	bad_script ok.sh /bin/sh
	run_wpool check -- ./ok.sh
	assert_success
}

@test "an interpreter that goes missing while the pool runs is named as such when a worker cannot start" {
	printf '#!/bin/sh\nexec %s\n' "$TESTSRV" >s.sh
	chmod +x s.sh
	start_wpool -n 1 -b 127.0.0.1:0 -- "$BATS_TEST_TMPDIR/s.sh"
	wait_for_workers 1
	# A deploy replaces the script with one whose interpreter is not there.
	bad_script s.sh /nonexistent/interp
	kill -KILL "${WORKERS[0]}"
	wait_for_log "worker 0 \(pid [0-9]+\): interpreter /nonexistent/interp of script $BATS_TEST_TMPDIR/s.sh not found; "
}

@test "reload --no-wait says queued when the reload waits for the one under way" {
	# Slow to get ready: the first reload is still under way for the second.
	start_wpool -n 1 --ready-timeout 30 -b 127.0.0.1:0 -- "$TESTSRV" --delay-start 3
	wait_for_log 'worker 0 started'
	wait_until 10 "$WPOOL" status --check
	run "$WPOOL" reload --no-wait
	assert_success
	assert_output "reload to generation 1 started"
	run "$WPOOL" reload --no-wait
	assert_success
	assert_output "reload to generation 2 queued: it starts when generation 1 is done"
	wait_for_log 'reload to generation 2 done' 30
}

@test "the status table has no IDLE column (wpool cannot see when a worker served), nor the JSON an idle_s" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run "$WPOOL" status
	assert_success
	assert_line --regexp '^ID +PID +STATE +GEN +UPTIME +[PR]SS +CPU% +RESTARTS +LAST-EXIT +STATUS$'
	refute_output --partial IDLE
	run "$WPOOL" status --json
	assert_equal "$(jq '.workers[0] | has("idle_s")' <<<"$output")" false
}

@test "--help gives examples of --max-memory's SIZE, not what reads as a default" {
	run_wpool --help
	assert_success
	local help
	help=$(sed -n '/--max-memory SIZE/,/^  *-\{1,2\}[a-z]/p' <<<"$output" | tr -s ' \n' ' ')
	[[ $help == *"such as 512M or 1G (no limit unless given)"* ]] || fail "got: $help"
	[[ $help != *"(512M)"* ]] || fail "still (512M): $help"
}
