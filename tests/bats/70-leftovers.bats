#!/usr/bin/env bats
# What a worker leaves behind when it dies while the pool runs (issue 11):
# the rest of its process group, and the daemons adopted by the master
# whose environment names it, get the stop signal at once, KILL after
# --stop-timeout, and are reaped; the successor alone serves.

load ../helpers
load ../leftovers_helpers

@test "sh -c 'server & wait' killed with KILL: the server it left stops, the new one alone answers" {
	start_wpool -n 1 --stop-timeout 3 -b 127.0.0.1:0 -- \
		sh -c '"$0" & wait' "$TESTSRV"
	wait_count 1 exe_below_wpool "$TESTSRV"
	local old=${GOT[0]} sh
	sh=$(proc_ppid "$old")
	kill -KILL "$sh"
	gone_within 5 "$old"
	wait_for_log "worker 0 \\(pid $sh\\) left 1 process; stopping it with TERM"
	wait_count 1 exe_below_wpool "$TESTSRV"
	[[ ${GOT[0]} != "$old" ]] || log_fail "the old server still runs"
	answers_only_from 8 "$PORT" "${GOT[0]}"
}

@test "nginx whose master was killed with KILL: its workers stop, the new nginx alone answers" {
	local nginx=$NGINX_BIN port dir=$BATS_TEST_TMPDIR/ngx
	port=$(free_tcp_port)
	nginx_conf "$dir" "$port"
	start_wpool -n 1 --stop-signal QUIT --stop-timeout 3 -e 'NGINX=3;' \
		-b "127.0.0.1:$port" -- "$nginx" -p "$dir" -c "$dir/nginx.conf" -e stderr
	wait_count 3 exe_below_wpool "$nginx"
	local master old
	master=$(worker_pids)
	mapfile -t old < <(children_of "$master")
	((${#old[@]} == 2)) || log_fail "nginx $master has workers ${old[*]}"
	answers_only_from 8 "$port" "${old[@]}"
	kill -KILL "$master"
	gone_within 5 "${old[@]}"
	wait_for_log "worker 0 \\(pid $master\\) left 2 processes; stopping them with QUIT"
	wait_count 3 exe_below_wpool "$nginx"
	master=$(worker_pids)
	local new
	mapfile -t new < <(children_of "$master")
	((${#new[@]} == 2)) || log_fail "the new nginx $master has workers ${new[*]}"
	answers_only_from 8 "$port" "${new[@]}"
}

@test "a child that ignores the stop signal is KILLed after --stop-timeout" {
	start_wpool -n 1 --stop-timeout 1 -- \
		sh -c 'trap "" TERM; sleep 1000 & exec sleep 1001'
	local w kid t0
	wait_count 1 worker_pids
	w=${GOT[0]}
	wait_until 5 eval '[[ -n $(children_of "$w") ]]'
	kid=$(children_of "$w")
	record_pid "$kid"
	t0=$(now_us)
	kill -KILL "$w"
	gone_within 4 "$kid"
	wait_for_log "worker 0 \\(pid $w\\) left 1 process"
	(($(elapsed_ms "$t0") >= 900)) ||
		log_fail "gone after $(elapsed_ms "$t0") ms: TERM is ignored, so KILL came early"
	wait_for_log "1 process worker 0 \\(pid $w\\) left did not stop within 1s; sending KILL"
	kill -0 "$WPOOL_PID" || log_fail "wpool exited"
}

@test "a daemon that left the group (setsid) stops with the worker that started it, not with another" {
	start_wpool -n 2 --stop-timeout 3 -b 127.0.0.1:0 -- \
		sh -c '( setsid "$0" & ) ; exec sleep 1000' "$TESTSRV"
	wait_count 2 exe_below_wpool "$TESTSRV"
	local d w mine other
	for d in "${GOT[@]}"; do
		[[ $(proc_ppid "$d") == "$WPOOL_PID" ]] ||
			log_fail "daemon $d was not adopted by the master"
		[[ $(proc_pgrp "$d") == "$d" ]] || log_fail "daemon $d did not setsid"
	done
	w=$(worker_env "${GOT[0]}" LISTEN_PID)
	mine=${GOT[0]}
	other=${GOT[1]}
	alive "$w" || log_fail "no worker $w"
	kill -KILL "$w"
	gone_within 5 "$mine"
	alive "$other" || log_fail "the other worker's daemon $other was stopped too"
	wait_for_log "\\(pid $w\\) left 1 process; stopping it with TERM"
}

@test "sh -c 'server & exit 0' restarted: each server it leaves is stopped" {
	start_wpool -n 1 --stop-timeout 2 --restart-delay 0.3 -b 127.0.0.1:0 -- \
		sh -c '"$0" & exit 0' "$TESTSRV"
	wait_for_log_count 'worker 0 started' 5
	local n
	n=$(exe_below_wpool "$TESTSRV" | wc -l)
	((n <= 2)) || log_fail "$n servers run below wpool"
	wait_for_log_count 'worker 0 \(pid [0-9]+\) left 1 process; stopping it' 3
}

@test "status --json and /metrics show the lifecycle's bad transitions (0)" {
	local mport
	mport=$(free_tcp_port)
	start_wpool -n 1 --metrics "127.0.0.1:$mport" -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run "$WPOOL" status --json
	assert_success
	assert_equal "$(jq '.bad_transitions' <<<"$output")" 0
	run curl -sS --max-time 5 "http://127.0.0.1:$mport/metrics"
	assert_success
	assert_line 'wpool_lifecycle_bad_transitions_total{pool="wpool"} 0'
	assert_line --partial '# TYPE wpool_lifecycle_bad_transitions_total counter'
}
