#!/usr/bin/env bats
# Draining before a stop (issue 14): --shutdown-delay fails readiness and
# serves on before the stop signal, so that a client that leaves once
# /readyz fails (a Service's endpoints) loses no request; and connections
# the kernel queued on a shared listener when the last worker stopped
# accepting are served by a worker started for them, not reset.

load ../helpers
load ../control_helpers
load ../drain_helpers

@test "--shutdown-delay 1s: a stop under load fails no request of a client that leaves when /readyz fails" {
	start_wpool -v -s "$CTL" -n 2 --shutdown-delay 1s --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	metrics_port
	wait_for_workers 2
	"$PY" "$DRAIN_CLIENT" "$PORT" "$MPORT" --conc 4 --probe-every 0.1 \
		>client.out 2>&1 3>&- &
	local cpid=$! t0
	wait_until 10 grep -q '^started' client.out
	t0=$(now_us)
	kill -TERM "$WPOOL_PID"
	wait "$cpid"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	run cat client.out
	assert_line --regexp '^ok=[1-9][0-9]* failed=0$'
	# The workers were asked to stop after the delay, not at the TERM.
	wait_for_log 'stopping \(SIGTERM\) in 1s \(--shutdown-delay\)'
	wait_for_log 'asking 2 workers to stop with TERM'
	(($(elapsed_ms "$t0") >= 1000)) || log_fail "stopped before the delay"
	no_bad_transitions
}

@test "--shutdown-delay: a second TERM ends the delay; wpool stop asks the same" {
	start_wpool -s "$CTL" -n 1 --shutdown-delay 60 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local t0
	t0=$(now_us)
	kill -TERM "$WPOOL_PID"
	wait_for_log 'in 60s \(--shutdown-delay\)'
	# Still serving during the delay.
	run http_get /
	assert_success
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	(($(elapsed_ms "$t0") < 10000)) || log_fail "the second TERM did not end the delay"
	wait_for_log 'asked again to stop: ending --shutdown-delay now'

	# `wpool stop` starts the delay, a second `wpool stop` ends it.
	: >"$LOG"
	start_wpool -s "$CTL" -n 1 --shutdown-delay 60 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run_wp stop --no-wait
	assert_success
	wait_for_log 'stopping \(wpool stop\) in 60s'
	run_wp status --check
	assert_failure 1
	assert_output 'unhealthy: stopping'
	run_wp stop
	assert_success
	wait_wpool_exit 10
}

@test "--shutdown-delay: a bad value is a usage error naming it" {
	run_wpool -64 --shutdown-delay soon -b 127.0.0.1:0 -- "$TESTSRV"
	[[ $stderr == *--shutdown-delay* && $stderr == *soon* ]] || fail "stderr: $stderr"
	run_wpool -64 --min-ready 2000 -b 127.0.0.1:0 -- "$TESTSRV"
	[[ $stderr == *--min-ready* && $stderr == *2000* ]] || fail "stderr: $stderr"
}

# queued_at_stop MODE: the test of both modes below.
queued_at_stop() {
	# One worker that answers one connection at a time and, on TERM,
	# finishes the one in hand but accepts no more (gunicorn's sync
	# worker): while it sleeps on A, B1..B6 wait in the accept queue.
	start_wpool -v -s "$CTL" -m "$1" -n 1 -b 127.0.0.1:0 -- \
		"$TESTSRV" --blocking --graceful
	wait_for_workers 1
	curl -sS --max-time 10 -o /dev/null "http://127.0.0.1:$PORT/sleep?ms=1500" 3>&- &
	local apid=$!
	# A is accepted (connected, none queued) before the others come.
	a_served() {
		(($(queue_len "$PORT") == 0)) &&
			(($(ss -Htn state established "( sport = :$PORT )" | wc -l) >= 1))
	}
	wait_until 5 a_served
	queue_clients 6 "$PORT" "$BATS_TEST_TMPDIR/q"
	queued_6() { (($(queue_len "$PORT") >= 6)); }
	wait_until 5 queued_6
	kill -TERM "$WPOOL_PID"
	wait "$apid"
	wait "${QPIDS[@]}"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	run cat "$BATS_TEST_TMPDIR"/q.*
	assert_equal "${#lines[@]}" 6
	refute_line --partial FAIL
	wait_for_log 'worker 0: [0-9]+ connections? queued at stop; starting a worker to serve them'
	wait_for_log 'worker 0: its queue is drained'
	no_bad_transitions
}

@test "shared mode: connections queued on the listener when the last worker stops are served, not reset" {
	queued_at_stop shared
}

@test "reuseport: connections queued on a slot's socket when its worker stops are served, not reset" {
	queued_at_stop reuseport
}
