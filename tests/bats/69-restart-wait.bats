#!/usr/bin/env bats
# `wpool restart ID` waits for its successor, as reload and restart all
# do: exit 0 once the new worker serves and the old one is gone, exit 1
# with the reason when the successor failed (the old worker serving on);
# --no-wait returns once the restart started.  Readiness is explicit
# (--ready notify): what "ready" means is what the wait depends on.

load ../helpers
load ../control_helpers

# A server that exits 3 at start while $flag exists, else notifies.
flaky_script() {
	make_script flaky.sh <<EOF
#!/bin/sh
[ -e "$flag" ] && exec "$TESTSRV" --exit 3
exec "$TESTSRV" --notify ${1:-}
EOF
}

@test "restart ID of a healthy pool waits until the new worker serves and the old one is gone; exit 0" {
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- \
		"$TESTSRV" --notify --delay-start 0.5
	wait_status 10 '.ready == 2'
	local old new
	old=$(worker_pid_of 1)
	run_wp restart 1
	assert_success
	assert_line --index 0 'restarting worker 1'
	assert_line --regexp '^restarting worker 1: new worker \(pid [0-9]+\) starting$'
	assert_line --regexp '^restarted worker 1 \(new pid [0-9]+\) in [0-9.]+s$'
	[[ ${lines[-1]} =~ new\ pid\ ([0-9]+)\)\ in\ ([0-9.]+)s ]] ||
		fail "last line: ${lines[-1]}"
	new=${BASH_REMATCH[1]}
	# The successor took 0.5 s to be ready: the client waited for it.
	awk -v s="${BASH_REMATCH[2]}" 'BEGIN { exit !(s >= 0.5) }' ||
		fail "restarted in ${BASH_REMATCH[2]}s, before the successor was ready"
	# When it returned, the new worker served and the old one was gone.
	assert_equal "$(sj '.workers[] | select(.id == 1) | "\(.pid) \(.state)"')" "$new ready"
	! alive "$old" || fail "the old worker $old is still alive"
	assert_equal "$(sj '.recent_restarts[-1] | "\(.id) \(.state) \(.pid)"')" "1 done $new"
}

@test "restart ID whose successor dies at once: exit 1 with the reason, the old worker keeps serving" {
	local flag=$BATS_TEST_TMPDIR/broken script old
	script=$(flaky_script)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 2'
	old=$(worker_pid_of 0)
	touch "$flag"
	run_wp restart 0
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: restart of worker 0 failed: new worker 0 \(pid [0-9]+\) exited with status 3 after [0-9.]+s; the old worker keeps serving$'
	assert_equal "$(worker_pid_of 0)" "$old"
	assert_equal "$(sj .ready)" 2
	jq -e '.recent_restarts[-1] | .id == 0 and .state == "failed" and
		.old_serves == true and (.error | test("exited with status 3"))' \
		<<<"$(status_json)" >/dev/null || fail "status: $(status_json)"
	# Once the cause is gone, the same restart goes through.
	rm -f "$flag"
	run_wp restart 0
	assert_success
	assert_line --regexp '^restarted worker 0 \(new pid [0-9]+\)'
	[[ $(worker_pid_of 0) != "$old" ]] || fail "worker 0 kept pid $old"
}

@test "restart ID whose successor is never ready: killed at --ready-timeout, exit 1 with the reason" {
	local flag=$BATS_TEST_TMPDIR/mute script old
	# While $flag exists a new worker serves but never says READY=1.
	script=$(make_script mute.sh <<EOF
#!/bin/sh
[ -e "$flag" ] && exec "$TESTSRV"
exec "$TESTSRV" --notify
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify --ready-timeout 1 -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 1'
	old=$(worker_pid_of 0)
	touch "$flag"
	run_wp restart 0
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: restart of worker 0 failed: new worker 0 \(pid [0-9]+\) was not ready in time and was .* after [0-9.]+s; the old worker keeps serving$'
	assert_equal "$(worker_pid_of 0)" "$old"
	assert_equal "$(sj .ready)" 1
}

@test "restart ID --no-wait returns once the restart started, with 0" {
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- \
		"$TESTSRV" --notify --delay-start 1.5
	wait_status 10 '.ready == 2'
	local old
	old=$(worker_pid_of 1)
	run_wp restart 1 --no-wait
	assert_success
	assert_output 'restarting worker 1'
	# It did not wait: the successor is still starting, the old one serves.
	assert_equal "$(sj '.recent_restarts[-1] | "\(.id) \(.state)"')" "1 running"
	alive "$old" || fail "the old worker $old is gone already"
	wait_status 10 '.recent_restarts[-1].state == "done"'
}

@test "restart of a worker id that does not exist: a clear error, exit 1; out of range: usage, exit 64" {
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$TESTSRV" --notify
	wait_status 10 '.ready == 2'
	run_wp restart 5
	assert_failure 1
	assert_equal "$stderr" 'wpool: error: no worker 5: ids are 0 to 1'
	assert_output ''
	run_wp restart 1024
	assert_failure 64
	assert_regex "$stderr" "invalid worker id '1024'"
	assert_equal "$(sj '.recent_restarts | length')" 0
}

@test "restart ID of a worker scaled away before its successor was ready: exit 1, it says so" {
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- \
		"$TESTSRV" --notify --delay-start 2
	wait_status 15 '.ready == 2'
	local out=$BATS_TEST_TMPDIR/restart.out rc
	wp restart 1 >"$out" 2>&1 &
	local cpid=$!
	wait_status 10 '.recent_restarts[-1].state == "running"'
	run_wp scale 1
	assert_success
	rc=0
	wait "$cpid" || rc=$?
	assert_equal "$rc" 1
	grep -Fxq 'wpool: error: restart of worker 1 failed: the pool was scaled down past it' "$out" ||
		fail "restart said: $(cat "$out")"
}
