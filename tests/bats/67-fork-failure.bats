#!/usr/bin/env bats
# fork() failing in the master (a pids limit, memory) is one event for
# every path that forks: the slot backs off and retries whatever it was
# doing.  tests/shim/forkfail.so makes the master's next fork fail once
# each time the test creates the trigger file.

load ../helpers
load ../balance_helpers

FORKFAIL="$REPO_ROOT/tests/shim/forkfail.so"

setup() {
	bal_setup
	[[ -f $FORKFAIL ]] || fail "no $FORKFAIL (run: make test-bins)"
	TRIGGER="$BATS_TEST_TMPDIR/fail-next-fork"
	# Under ASan (make SANITIZE=1) the shim comes first: say that is fine.
	WPOOL_PREFIX=(env LD_PRELOAD="$FORKFAIL" FORKFAIL_TRIGGER="$TRIGGER"
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
}

# fail_next_fork: the master's next fork() fails with EAGAIN, once.
fail_next_fork() {
	: >"$TRIGGER"
}

@test "--max-requests: the recycled worker's successor cannot be forked once; retried, the next request is served" {
	start_wpool -m balance -n 1 --max-requests 2 -b 127.0.0.1:0 -- "$EXAMPLE_C"
	wait_ready 1
	fail_next_fork
	local i
	for ((i = 1; i <= 2; i++)); do
		curl -sS --max-time 5 "http://127.0.0.1:$PORT/" >/dev/null ||
			log_fail "request $i failed"
	done
	wait_for_log 'worker 0: cannot fork: Resource temporarily unavailable'
	[[ ! -e $TRIGGER ]] || log_fail "the fork did not fail"
	# Before the fix nothing retried: this one hung for good.
	curl -sS --max-time 5 "http://127.0.0.1:$PORT/" >/dev/null ||
		log_fail "the third request was not served"
	wait_for_log 'worker 0: retrying in 0\.1s'
	wait_for_log 'worker 0 \(pid [0-9]+, generation 0\) .* after [0-9.]+s; replaced'
	wait_ready 1
	run without_fd3 "$WPOOL" status --check
	assert_success
}

@test "restart ID: its successor cannot be forked once; retried, the worker is replaced" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_ready 1
	local old
	old=$(pid_of_slot 0)
	fail_next_fork
	run without_fd3 timeout 10 "$WPOOL" restart 0
	assert_success
	wait_for_log 'worker 0: cannot fork: Resource temporarily unavailable'
	wait_for_log 'worker 0: retrying in 0\.1s'
	wait_gone "$old"
	wait_ready 1
	[[ $(pid_of_slot 0) != "$old" ]] || log_fail "worker 0 was not replaced"
}

@test "reload: a new worker cannot be forked once; retried, the reload completes" {
	start_wpool -n 2 --reload-batch 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_ready 2
	fail_next_fork
	run without_fd3 timeout 20 "$WPOOL" reload
	assert_success
	grep -Eq 'worker [01]: cannot fork: Resource temporarily unavailable' "$LOG" ||
		log_fail "no fork failed"
	wait_ready 2
	assert_equal "$(st "sorted(w['generation'] for w in d['workers'])")" "$(printf '1\n1')"
}
