#!/usr/bin/env bats
# The orchestrator's HTTP probes on --metrics (issue 14): /livez answers
# while the master's loop turns, /readyz 200 or 503 with a one-line body;
# `wpool status --check` gives the same answer (the same function).

load ../helpers
load ../control_helpers
load ../drain_helpers

@test "/livez and /readyz: 200 with one line; status --check agrees; HEAD and a query string" {
	start_wpool -s "$CTL" -n 2 --metrics 127.0.0.1:0 -b 127.0.0.1:0 -- "$TESTSRV"
	metrics_port
	wait_for_workers 2
	run probe /livez
	assert_output '200 ok'
	run probe /readyz
	assert_output '200 ready: 2/2 workers ready'
	run probe '/readyz?verbose'
	assert_output '200 ready: 2/2 workers ready'
	run_wp status --check
	assert_success
	assert_output 'healthy: 2/2 workers ready'
	run curl -sS --max-time 5 -I "http://127.0.0.1:$MPORT/readyz"
	assert_line --index 0 $'HTTP/1.1 200 OK\r'
	run probe /nope
	assert_line --index 0 --partial '404 not found: try /metrics, /status, /livez or /readyz'
}

@test "during --shutdown-delay: /readyz 503 'not ready: stopping', /livez 200, status --check 1, workers serve on" {
	start_wpool -s "$CTL" -n 2 --shutdown-delay 30 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	metrics_port
	wait_for_workers 2
	local before
	before=$(worker_pids | sort -n | paste -sd' ')
	kill -TERM "$WPOOL_PID"
	wait_for_log 'in 30s \(--shutdown-delay\)'
	run probe /readyz
	assert_output '503 not ready: stopping'
	run probe /livez
	assert_output '200 ok'
	run_wp status --check
	assert_failure 1
	assert_output 'unhealthy: stopping'
	run http_sample 4
	assert_success
	assert_equal "$(grep -c . <<<"$output")" 4
	# The same workers, none asked to stop yet.
	assert_equal "$(worker_pids | sort -n | paste -sd' ')" "$before"
	! grep -q 'asking 2 workers to stop' "$LOG" || log_fail "stopped during the delay"
	# A second TERM: the stop signal now.
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
}

@test "--min-ready: ready with that many workers ready; by default every wanted one" {
	local script
	script=$(make_script flaky.sh <<EOF
#!/bin/sh
[ "\$WPOOL_WORKER_ID" = 1 ] && exec "$TESTSRV" --exit 3
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --restart-delay 30 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$script"
	metrics_port
	wait_for_log 'worker 1 \(pid [0-9]+\) exited with status 3'
	wait_status 5 '.ready == 1'
	run probe /readyz
	assert_output '503 not ready: 1/2 workers ready'
	run_wp status --check
	assert_failure 1
	assert_output 'unhealthy: 1/2 workers ready'
	stop_wpool

	: >"$LOG"
	start_wpool -s "$CTL" -n 2 --min-ready 1 --restart-delay 30 \
		--metrics 127.0.0.1:0 -b 127.0.0.1:0 -- "$script"
	metrics_port
	wait_for_log 'worker 1 \(pid [0-9]+\) exited with status 3'
	wait_status 5 '.ready == 1'
	run probe /readyz
	assert_output '200 ready: 1/2 workers ready (--min-ready 1)'
	run_wp status --check
	assert_success
	assert_output 'healthy: 1/2 workers ready (--min-ready 1)'
}
