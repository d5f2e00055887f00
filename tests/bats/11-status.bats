#!/usr/bin/env bats
# `wpool status` (JSON and table, --check) and the other client
# subcommands: restart ID, signal, stop, their errors and usage.

load ../helpers
load ../control_helpers

@test "status --json: the pool's fields, with their types" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	run_wp status --json
	assert_success
	assert_equal "${#lines[@]}" 1
	local st=$output
	# Every key the contract names, with the right type.
	jq -e --argjson pid "$WPOOL_PID" --arg addr "${LISTEN_ADDRS[0]}" '
		(has("ok") | not) and
		.name == "wpool" and .pid == $pid and .mode == "shared" and
		.state == "running" and .target == 2 and .alive == 2 and
		.ready == 2 and (.cpus | type == "number" and . >= 1) and
		(.cpus_source | type == "string" and length > 0) and
		.generation == 0 and (.uptime_s | type == "number" and . >= 0) and
		.restarts == 0 and
		(.listeners | length == 1) and
		.listeners[0].name == "l0" and .listeners[0].address == $addr and
		.listeners[0].fd == 3 and (.listeners[0].queue | type == "number") and
		.reload.generation == 0 and .reload.state == "none" and
		.reload.done == 0 and .reload.total == 0 and .reload.error == null and
		(.workers | type == "array" and length == 2)' <<<"$st" >/dev/null ||
		fail "unexpected status: $st"
}

@test "status --json: each worker's fields, matching the real processes" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	sleep 0.3
	local st p id now
	st=$(status_json)
	now=$(date -u +%s)
	for p in "${WORKERS[@]}"; do
		id=${WORKER_ID[$p]}
		jq -e --argjson pid "$p" --argjson id "$id" --argjson now "$now" '
			.workers[] | select(.id == $id) |
			.pid == $pid and .state == "ready" and .generation == 0 and
			(.started_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")) and
			((.started_at | fromdateiso8601) - $now | fabs < 10) and
			(.uptime_s | type == "number" and . >= 0.2 and . < 30) and
			(has("idle_s") | not) and
			(.rss_bytes | type == "number" and . > 100000) and
			(.cpu_percent | type == "number" and . >= 0) and
			(.cpu_seconds | type == "number" and . >= 0) and
			.restarts == 0 and .last_exit == null and .status == null' \
			<<<"$st" >/dev/null || fail "worker $id (pid $p): $st"
	done
	# rss_bytes is the worker's VmRSS (give or take what moved since).
	p=${WORKERS[0]}
	local rss_kb js
	rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")
	js=$(jq -r --argjson pid "$p" '.workers[] | select(.pid == $pid) | .rss_bytes' <<<"$st")
	((js > rss_kb * 1024 / 2 && js < rss_kb * 1024 * 2)) ||
		fail "rss_bytes $js vs VmRSS ${rss_kb} kB"
}

@test "status after deaths: last_exit, restarts and the pool's restart count" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local p0
	p0=$(pid_of_id 0)
	kill -KILL "$p0"
	wait_status 5 '.workers[] | select(.id == 0) | .state == "ready" and .restarts == 1 and .last_exit == {"signal":"KILL"}'
	# testsrv's /exit?code=3 makes the worker that answers exit with 3.
	NO_HTTP=1 wait_for_workers 2
	local p1
	p1=$(worker_pid_of 1)
	local tries=0
	while alive "$p1" && ((tries++ < 40)); do
		http_get '/exit?code=3' >/dev/null 2>&1 || true
		sleep 0.05
		# The request may have reached worker 0: ask again until 1 went.
		[[ $(worker_pid_of 1) == "$p1" ]] || break
	done
	wait_status 5 '.workers[] | select(.id == 1) | .last_exit == {"code":3} and .restarts >= 1'
	wait_status 5 '.restarts >= 2'
}

@test "a slot in back-off: {id, pid:null, state:backoff, next_start_s}, and --check fails" {
	local script
	script=$(make_script flaky.sh <<EOF
#!/bin/sh
[ "\$WPOOL_WORKER_ID" = 1 ] && exec "$TESTSRV" --exit 3
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --restart-delay 3 -b 127.0.0.1:0 -- "$script"
	wait_for_log 'worker 1 \(pid [0-9]+\) exited with status 3'
	wait_status 5 '.workers[] | select(.id == 1) | .pid == null and .state == "backoff" and (.next_start_s | type == "number" and . > 0 and . <= 3)'
	local st
	st=$(status_json)
	jq -e '.target == 2 and .ready == 1 and .alive == 1 and
		(.workers[] | select(.id == 1) | .last_exit == {"code":3})' <<<"$st" >/dev/null ||
		fail "status: $st"
	run_wp status --check
	assert_failure 1
	assert_output 'unhealthy: 1/2 workers ready'
	# The table shows the slot without a pid, and when it comes back.
	run_wp status
	assert_success
	assert_line --regexp '^1 +- +backoff +[0-9]+ +in [0-9.]+s +- +- +[0-9]+ +exit 3$'
}

@test "status table: pool line, listeners, header, a row per worker, at most 80 columns" {
	local long script
	long=$(printf 'serving requests on behalf of a rather verbose application %.0s' 1 2 3)
	script=$(make_script chatty.sh <<EOF
#!/bin/sh
systemd-notify --ready --status="worker \$WPOOL_WORKER_ID: $long"
exec "$TESTSRV"
EOF
)
	command -v systemd-notify >/dev/null || skip "machine lacks systemd-notify"
	start_wpool -s "$CTL" -n 3 --ready notify -b 127.0.0.1:0 -b 127.0.0.1:0 -- "$script"
	wait_for_workers 3
	wait_status 5 '.ready == 3'
	run_wp status
	assert_success
	local n=${#lines[@]} l
	assert_equal "$n" 8
	assert_regex "${lines[0]}" "^pool wpool \\(pid $WPOOL_PID\\): shared mode, 3/3 ready, generation 0, up [0-9.]+s\$"
	assert_regex "${lines[1]}" "^  [0-9]+ CPUs: .+\$"
	assert_equal "${lines[2]}" "  listening on ${LISTEN_ADDRS[0]} (l0, fd 3)"
	assert_equal "${lines[3]}" "  listening on ${LISTEN_ADDRS[1]} (l1, fd 4)"
	# No IDLE column: wpool cannot see when a worker last served (issue 12).
	assert_regex "${lines[4]}" '^ID +PID +STATE +GEN +UPTIME +[PR]SS +CPU% +RESTARTS +LAST-EXIT +STATUS$'
	local p
	for p in "${WORKERS[@]}"; do
		assert_line --regexp "^${WORKER_ID[$p]} +$p +ready +0 +[0-9.]+[smhd]+ +[0-9.]+[BKMG] +[0-9.]+ +0 +- +worker ${WORKER_ID[$p]}"
	done
	for l in "${lines[@]}"; do
		((${#l} <= 80)) || fail "$(printf 'a line of %s columns:\n%s\nin:\n%s' "${#l}" "$l" "$output")"
	done
	# The full status text is in the JSON.
	assert_equal "$(sj '.workers[0].status')" "worker 0: $long"
}

@test "status table: a row without STATUS text ends at LAST-EXIT, no trailing blanks" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	run_wp status
	assert_success
	local l rows=0
	for l in "${lines[@]}"; do
		[[ $l != *[[:space:]] ]] || fail "trailing blanks in: '$l'"
		[[ $l =~ ^[0-9]+\ +[0-9]+\ +ready ]] || continue
		rows=$((rows + 1))
		assert_regex "$l" ' 0 +-$'
	done
	assert_equal "$rows" 2
}

@test "status table: control characters in STATUS text are shown as spaces; COLUMNS widens a piped table" {
	command -v systemd-notify >/dev/null || skip "machine lacks systemd-notify"
	local script
	script=$(make_script esc.sh <<EOF
#!/bin/sh
systemd-notify --ready --status="\$(printf 'tab\there \033[31mred\033[0m and a long text that goes on past the eighty columns of a terminal, on and on')"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_for_workers 1
	wait_status 5 '.ready == 1'
	run_wp status
	assert_success
	local l
	for l in "${lines[@]}"; do
		((${#l} <= 80)) || fail "a line of ${#l} columns: $l"
	done
	COLUMNS=200 run_wp status
	[[ $output != *$'\033'* && $output != *$'\t'* ]] || fail "control characters in: $output"
	assert_output --partial 'tab here  [31mred [0m and a long text that goes on past the eighty columns of a terminal, on and on'
}

@test "status --check: exit 0 and 'healthy' when every worker is ready" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	run_wp status --check
	assert_success
	assert_output 'healthy: 2/2 workers ready'
}

@test "status --check: exit 1 while a worker is still starting (--ready notify)" {
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$TESTSRV"
	NO_HTTP=1 wait_for_workers 2
	run_wp status --check
	assert_failure 1
	assert_output 'unhealthy: 0/2 workers ready'
	assert_equal "$(sj '[.workers[].state] | unique | join(",")')" starting
}

@test "no pool at the path: every subcommand says so, exit 1" {
	local sock="$BATS_TEST_TMPDIR/none.sock" args
	for args in status 'status --json' 'status --check' reload 'scale 2' \
		'restart 0' 'restart all' 'signal HUP' 'signal USR1 0' stop; do
		run --separate-stderr without_fd3 timeout 10 "$WPOOL" -s "$sock" $args
		assert_failure 1
		assert_equal "$stderr" "wpool: error: no wpool running at $sock"
		assert_output ''
	done
	# A stale socket file is no pool either.
	make_stale_unix_socket "$sock"
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" -s "$sock" status
	assert_failure 1
	assert_equal "$stderr" "wpool: error: no wpool running at $sock"
}

@test "bad client arguments: exit 64 with a usage line, before any connection" {
	# No pool listens at $CTL: a 1 would mean the arguments were not checked.
	local args
	for args in 'status --bogus' 'status json' 'reload --bogus' 'reload now' \
		scale 'scale x' 'scale 0' 'scale +0' 'scale -0' 'scale 1025' \
		'scale 2 3' 'scale ++1' restart 'restart x' 'restart -1' \
		'restart 1024' 'restart 0 1' signal 'signal BOGUS' 'signal HUP x' \
		'signal HUP 0 1' 'stop --bogus' 'stop now'; do
		run --separate-stderr wp $args
		[[ $status == 64 ]] || fail "wpool $args: exit $status (expected 64); stderr: $stderr"
		[[ $stderr == *usage:* ]] || fail "wpool $args: no usage line: $stderr"
		assert_output ''
	done
}

@test "restart ID: that slot gets a new pid, the others keep theirs; an unknown id fails" {
	start_wpool -s "$CTL" -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	local p0 p1 p2
	p0=$(pid_of_id 0) p1=$(pid_of_id 1) p2=$(pid_of_id 2)
	run_wp restart 1
	assert_success
	assert_line --index 0 'restarting worker 1'
	assert_line --regexp '^restarted worker 1 \(new pid [0-9]+\) in [0-9.]+s$'
	wait_gone "$p1" --timeout 5
	wait_for_workers 3
	[[ $(pid_of_id 1) != "$p1" ]] || fail "worker 1 kept pid $p1"
	assert_equal "$(pid_of_id 0)" "$p0"
	assert_equal "$(pid_of_id 2)" "$p2"
	# The successor came first, then the old one was stopped.
	local new1
	new1=$(pid_of_id 1)
	local a b
	a=$(grep -n "worker 1 started (pid $new1," "$LOG" | cut -d: -f1)
	b=$(grep -nE "worker 1 \\(pid $p1[,)].*(TERM|replaced)" "$LOG" | head -1 | cut -d: -f1)
	[[ -n $a && -n $b ]] && ((a < b)) ||
		log_fail "expected 'worker 1 started (pid $new1' before the old one's end"
	run_wp restart 7
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: no worker 7'
	assert_equal "$(sj .ready)" 3
}

@test "signal SIG [ID]: to one worker or to all, and the workers keep running" {
	local slog="$BATS_TEST_TMPDIR/sig.log"
	start_wpool -s "$CTL" -n 3 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$slog"
	wait_for_workers 3
	local p1 p
	p1=$(pid_of_id 1)
	run_wp signal USR1 1
	assert_success
	assert_output 'sent SIGUSR1 to 1 worker'
	wait_until 5 grep -qx "$p1 USR1" "$slog"
	run_wp signal SIGHUP
	assert_success
	assert_output 'sent SIGHUP to 3 workers'
	for p in "${WORKERS[@]}"; do
		wait_until 5 grep -qx "$p HUP" "$slog"
	done
	run_wp signal 12 2
	assert_success
	assert_output 'sent SIGUSR2 to 1 worker'
	wait_until 5 grep -qx "$(pid_of_id 2) USR2" "$slog"
	sleep 0.2
	# Only worker 1 got USR1, and nobody was restarted.
	assert_equal "$(grep -c ' USR1$' "$slog")" 1
	assert_equal "$(ready_pids)" "${WORKERS[*]}"
	run_wp signal USR1 5
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: no worker 5'
}

@test "stop: waits until the master is gone, exit 0, socket removed" {
	# Workers that ignore TERM make the stop last --stop-timeout (1 s).
	start_wpool -s "$CTL" -n 2 --stop-timeout 1 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	wait_for_workers 2
	local master=$WPOOL_PID t0
	t0=$(now_us)
	run_wp stop
	assert_success
	assert_line 'stopped'
	# It returned only after the master had gone (KILL after 1 s).
	(($(elapsed_ms "$t0") >= 900)) || fail "stop returned after $(elapsed_ms "$t0") ms"
	if kill -0 "$master" 2>/dev/null; then
		# A zombie until we reap it is fine; a live master is not.
		[[ $(proc_state "$master") == Z ]] || fail "the master is still running"
	fi
	wait_wpool_exit 2
	assert_equal "$WPOOL_STATUS" 0
	[[ ! -e $CTL ]] || fail "the socket outlived the pool"
	grep -q 'stopping (wpool stop)' "$LOG" || log_fail "the log does not say why it stopped"
}

@test "stop --no-wait: returns at once, the pool stops by itself" {
	start_wpool -s "$CTL" -n 2 --stop-timeout 2 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	wait_for_workers 2
	local t0
	t0=$(now_us)
	run_wp stop --no-wait
	assert_success
	(($(elapsed_ms "$t0") < 1000)) || fail "stop --no-wait took $(elapsed_ms "$t0") ms"
	kill -0 "$WPOOL_PID" || fail "the pool was gone at once: --stop-timeout not honoured"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
}

@test "a subcommand's --help prints its usage and exits 0" {
	local c
	for c in status reload scale restart signal stop; do
		run --separate-stderr wp "$c" --help
		assert_success
		assert_output --regexp "^usage: wpool .*$c"
	done
}
