#!/usr/bin/env bats
# Signals to the master: TERM/INT/QUIT stop, HUP reloads, TTIN/TTOU scale,
# WINCH is forwarded to every worker (USR2 upgrades the master: 89-upgrade).

load ../helpers

# signals_of PID: the signal names testsrv --signal-log recorded for PID.
signals_of() {
	awk -v p="$1" '$1 == p { print $2 }' "$BATS_TEST_TMPDIR/sig.log" 2>/dev/null
}

# wait_for_signal PID SIG
wait_for_signal() {
	wait_until 5 grep -qx "$1 $2" "$BATS_TEST_TMPDIR/sig.log"
}

@test "TERM: every worker gets TERM, wpool says so and exits 0" {
	start_wpool -n 3 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 3
	local workers=("${WORKERS[@]}") p
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
	for p in "${workers[@]}"; do
		assert_equal "$(signals_of "$p")" TERM
	done
	wait_gone "${workers[@]}" --timeout 1
	grep -Eq 'stopping .*3 workers.* TERM' "$LOG" || log_fail "no 'stopping' line"
	assert_equal "$(tail -1 "$LOG")" "wpool: stopped"
}

@test "QUIT and INT stop the pool too, with exit 0" {
	local sig
	for sig in QUIT INT; do
		start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
		wait_for_workers 2
		local workers=("${WORKERS[@]}")
		kill -"$sig" "$WPOOL_PID"
		wait_wpool_exit 5
		assert_equal "$WPOOL_STATUS" 0
		wait_gone "${workers[@]}" --timeout 1
	done
}

@test "workers that ignore TERM are KILLed after --stop-timeout" {
	start_wpool -n 2 --stop-timeout 1 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	wait_for_workers 2
	local workers=("${WORKERS[@]}") t0 ms
	t0=$(now_us)
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 4
	ms=$(elapsed_ms "$t0")
	assert_equal "$WPOOL_STATUS" 0
	((ms >= 900)) || log_fail "exited after $ms ms: before --stop-timeout 1"
	((ms < 3000)) || log_fail "exited after $ms ms"
	wait_gone "${workers[@]}" --timeout 1
	assert_equal "$(log_count 'killed by signal KILL')" 2
}

@test "--stop-signal INT: workers are asked to stop with INT" {
	start_wpool -n 2 --stop-signal INT -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 2
	local workers=("${WORKERS[@]}") p
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
	for p in "${workers[@]}"; do
		assert_equal "$(signals_of "$p")" INT
	done
}

@test "TTIN adds worker id N, TTOU removes the highest id" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	kill -TTIN "$WPOOL_PID"
	wait_for_workers 3
	assert_equal "$(sorted_ids)" "0 1 2"
	wait_for_log 'worker 2 started'
	kill -TTIN "$WPOOL_PID"
	wait_for_workers 4
	assert_equal "$(sorted_ids)" "0 1 2 3"
	local top keep0 keep1
	top=$(pid_of_id 3)
	keep0=$(pid_of_id 0)
	keep1=$(pid_of_id 1)
	kill -TTOU "$WPOOL_PID"
	wait_gone "$top" --timeout 5
	kill -TTOU "$WPOOL_PID"
	wait_for_workers 2
	assert_equal "$(sorted_ids)" "0 1"
	# The lower slots were left alone.
	assert_equal "$(pid_of_id 0)" "$keep0"
	assert_equal "$(pid_of_id 1)" "$keep1"
	# And removed workers are not restarted.
	assert_equal "$(log_count 'worker 2 started')" 1
	assert_equal "$(log_count 'worker 3 started')" 1
}

@test "TTOU never goes below one worker" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local only=${WORKERS[0]}
	# Had TTOU removed the only worker, TTIN would bring the pool back to
	# one worker, not two, and worker 0 would have a new pid.
	send_signal "$WPOOL_PID" TTOU
	kill -TTIN "$WPOOL_PID"
	wait_for_workers 2
	assert_equal "$(pid_of_id 0)" "$only"
}

@test "WINCH is forwarded to every worker (USR2 too, by wpool signal), which keep running" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 2
	local workers=("${WORKERS[@]}") p
	# USR2 to the master upgrades it in place (89-upgrade.bats).
	"$WPOOL" signal USR2 >/dev/null
	send_signal "$WPOOL_PID" WINCH
	for p in "${workers[@]}"; do
		wait_for_signal "$p" USR2
		wait_for_signal "$p" WINCH
	done
	wait_for_workers 2
	assert_equal "${WORKERS[*]}" "${workers[*]}"
	alive "$WPOOL_PID" || log_fail "wpool died"
}

@test "HUP replaces every worker: new pids, same ids, next generation" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 2
	local old=("${WORKERS[@]}")
	kill -HUP "$WPOOL_PID"
	wait_gone "${old[@]}" --timeout 10
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		[[ " ${old[*]} " != *" $p "* ]] || log_fail "worker $p was not replaced"
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 1
	done
	assert_equal "$(sorted_ids)" "0 1"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=1$'
	# HUP itself is not forwarded: the old workers got their stop signal.
	for p in "${old[@]}"; do
		assert_equal "$(signals_of "$p")" TERM
	done
	alive "$WPOOL_PID" || log_fail "wpool died"
}

@test "USR1 reloads like HUP" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local old=${WORKERS[0]}
	kill -USR1 "$WPOOL_PID"
	wait_gone "$old" --timeout 10
	wait_for_workers 1
	assert_equal "$(worker_env "${WORKERS[0]}" WPOOL_GENERATION)" 1
}

@test "a second INT during a slow stop stops at once" {
	start_wpool -n 2 --stop-timeout 30 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	wait_for_workers 2
	local workers=("${WORKERS[@]}") t0
	kill -INT "$WPOOL_PID"
	wait_for_log 'stopping'
	t0=$(now_us)
	kill -INT "$WPOOL_PID"
	wait_wpool_exit 3
	(($(elapsed_ms "$t0") < 2000)) || log_fail "took $(elapsed_ms "$t0") ms"
	wait_gone "${workers[@]}" --timeout 1
}

@test "an idle master does not wake up" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local before after
	# voluntary context switches: each wake-up is one.
	before=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$WPOOL_PID/status")
	sleep 1
	after=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$WPOOL_PID/status")
	((after - before <= 2)) ||
		log_fail "the idle master woke up $((after - before)) times in 1 s"
}

@test "TERM while the only slot is backing off: wpool exits at once with 0" {
	start_wpool -n 1 --max-restart-delay 30 -- "$TESTSRV" --exit 1
	# By the 4th start the slot waits 0.8 s or more before the next.
	wait_for_log_count 'worker 0 started' 4
	local t0
	t0=$(now_us)
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 3
	assert_equal "$WPOOL_STATUS" 0
	(($(elapsed_ms "$t0") < 1000)) || log_fail "took $(elapsed_ms "$t0") ms"
	refute grep -q 'worker 0 started' <(sed -n '/stopping/,$p' "$LOG")
}
