#!/usr/bin/env bats
# wpool as PID 1 and as a subreaper: orphans come back to it and are reaped;
# with --no-restart and one worker, the worker's exit status is wpool's.

load ../helpers

# The worker, inside a new PID namespace where wpool is PID 1: make 20
# orphans, check they were given to PID 1, wait (bounded) until none is left,
# not even as a zombie.  Its exit status says what went wrong.
ORPHAN_CHECK='
out=$("$0" --orphans 20 --orphan-life 1 --exit 0) || exit 10
pids=${out#orphans: }
set -- $pids
[ $# -eq 20 ] || { echo "expected 20 orphans, got: $out"; exit 11; }
for p in $pids; do
	ppid=$(cut -d" " -f4 /proc/$p/stat)
	[ "$ppid" = 1 ] || { echo "orphan $p has ppid $ppid, not 1"; exit 12; }
done
i=0
while :; do
	left=""
	for p in $pids; do [ -e /proc/$p ] && left="$left $p"; done
	[ -z "$left" ] && break
	i=$((i + 1))
	if [ $i -ge 100 ]; then
		echo "not reaped:"
		for p in $left; do cat /proc/$p/stat; echo; done
		exit 13
	fi
	sleep 0.05
done
echo "all 20 orphans reaped"
'

@test "as PID 1 in a PID namespace, wpool reaps orphans and passes the status on" {
	unshare --pid --fork --mount-proc true 2>/dev/null ||
		skip "machine lacks PID namespaces (unshare --pid)"
	WPOOL_PREFIX=(unshare --pid --fork --mount-proc)
	run_wpool --no-restart -n 1 -- sh -c "$ORPHAN_CHECK" "$TESTSRV"
	assert_success
	assert_output --partial "all 20 orphans reaped"
}

@test "as PID 1, a worker's exit status 3 is wpool's" {
	unshare --pid --fork --mount-proc true 2>/dev/null ||
		skip "machine lacks PID namespaces (unshare --pid)"
	WPOOL_PREFIX=(unshare --pid --fork --mount-proc)
	run_wpool --no-restart -n 1 -- sh -c 'exit 3'
	assert_equal "$status" 3
}

@test "as a plain subreaper, orphans of a worker are reparented to wpool and reaped" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV" --orphans 5 --orphan-life 1.5
	wait_for_log '^orphans:'
	local -a orphans
	read -ra orphans <<<"$(sed -n 's/^orphans: //p' "$LOG")"
	assert_equal "${#orphans[@]}" 5
	record_pid "${orphans[@]}"
	local p
	for p in "${orphans[@]}"; do
		assert_equal "$(proc_ppid "$p")" "$WPOOL_PID"
	done
	# They exit after 1.5 s; nothing of them may stay, not even a zombie.
	wait_gone "${orphans[@]}" --timeout 5
	# Reaping strangers does not disturb the pool: the worker still serves
	# and was never counted as dead.
	wait_for_workers 1
	assert_equal "$(log_count 'worker 0 started')" 1
	refute grep -E 'worker 0 \(pid [0-9]+\) (exited|killed)' "$LOG"
}

# exit_status_of SCRIPT: wpool --no-restart -n 1 -- sh -c SCRIPT's status.
exit_status_of() {
	run_wpool --no-restart -n 1 -- sh -c "$1"
}

@test "--no-restart -n 1: exit 0 -> 0" {
	exit_status_of 'exit 0'
	assert_equal "$status" 0
}

@test "--no-restart -n 1: exit 3 -> 3" {
	exit_status_of 'exit 3'
	assert_equal "$status" 3
}

@test "--no-restart -n 1: killed by TERM -> 143" {
	exit_status_of 'kill -TERM $$'
	assert_equal "$status" 143
}

@test "--no-restart -n 1: killed by KILL -> 137" {
	exit_status_of 'kill -KILL $$'
	assert_equal "$status" 137
}

@test "--no-restart -n 1: the status of a worker that lived a while" {
	run_wpool --no-restart -n 1 -b 127.0.0.1:0 -- "$TESTSRV" --exit-after 0.3 5
	assert_equal "$status" 5
}

@test "--no-restart: a pool of two exits when the last worker exits" {
	local t0
	t0=$(now_us)
	run_wpool --no-restart -n 2 -- sh -c 'sleep 0.$((WPOOL_WORKER_ID * 5 + 1))'
	grep -q 'worker 0 (pid [0-9]*) exited' <<<"$stderr" || fail "$stderr"
	grep -q 'worker 1 (pid [0-9]*) exited' <<<"$stderr" || fail "$stderr"
	(($(elapsed_ms "$t0") >= 500)) || fail "exited before the last worker"
	(($(elapsed_ms "$t0") < 3000)) || fail "took $(elapsed_ms "$t0") ms"
}

@test "--no-restart -n 1: a requested stop passes the worker's status on, like tini" {
	# The worker dies of the TERM wpool forwards: 128 + 15.
	start_wpool --no-restart -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 143
	# The worker handles TERM and exits 0.
	start_wpool --no-restart -n 1 -- sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done'
	wait_for_workers 1
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
}

@test "--no-restart -n 3: after a stop signal, the first worker that died of it gives 143" {
	start_wpool --no-restart -n 3 -- sleep 60
	wait_for_workers 3
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 143
	# Workers that handle TERM and exit 0: 0.
	start_wpool --no-restart -n 3 -- sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done'
	wait_for_workers 3
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
}
