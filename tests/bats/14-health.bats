#!/usr/bin/env bats
# Health: --watchdog, --max-memory and --ready-timeout replace the workers
# that stopped pinging, grew too big or never became ready.

load ../helpers
load ../control_helpers

@test "--watchdog: WATCHDOG_USEC and WATCHDOG_PID; a worker that pinged once and went silent is killed (ABRT) and restarted" {
	write_notify_py
	local script
	# Worker 0 keeps pinging, worker 1 pings once, worker 2 never pings.
	script=$(make_script watchdog.sh <<EOF
#!/bin/sh
case \$WPOOL_WORKER_ID in
0)	"$PY" "$NOTIFY_PY" WATCHDOG=1 --every 0.2 & ;;
1)	"$PY" "$NOTIFY_PY" WATCHDOG=1 ;;
esac
exec "$TESTSRV"
EOF
)
	ulimit -c 0
	# 3 s leaves the pool time to come up under load before worker 1 goes.
	start_wpool -s "$CTL" -n 3 --watchdog 3 -b 127.0.0.1:0 -- "$script"
	wait_for_workers 3
	local p0 p1 p2 p
	p0=$(pid_of_id 0) p1=$(pid_of_id 1) p2=$(pid_of_id 2)
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" WATCHDOG_USEC)" 3000000
		assert_equal "$(worker_env "$p" WATCHDOG_PID)" "$p"
	done
	# Worker 1 goes about 3 s after its only ping.
	wait_for_log "worker 1 \\(pid $p1\\) sent no WATCHDOG=1 for 3s; restarting it \\(ABRT\\)" 8
	wait_for_log "worker 1 \\(pid $p1\\) killed by signal ABRT"
	wait_for_log_count 'worker 1 started' 2 5
	wait_gone "$p1" --timeout 2
	# The others were left alone: one kept pinging, one never started to.
	sleep 1.5
	assert_equal "$(pid_of_id 0)" "$p0"
	assert_equal "$(pid_of_id 2)" "$p2"
	alive "$p0" || log_fail "worker 0 (pinging) was killed"
	alive "$p2" || log_fail "worker 2 (never pinged) was killed"
	! grep -Eq "worker (0|2) .*sent no WATCHDOG" "$LOG" || log_fail "a healthy worker was flagged"
	wait_status 5 '.workers[] | select(.id == 1) | .last_exit == {"signal":"ABRT"} and .restarts >= 1'
}

@test "--watchdog: a worker stopped with SIGSTOP is woken to die of ABRT at once, not left until --stop-timeout" {
	write_notify_py
	local script
	script=$(make_script watchdog.sh <<EOF
#!/bin/sh
"$PY" "$NOTIFY_PY" WATCHDOG=1 --every 0.2 &
exec "$TESTSRV"
EOF
)
	ulimit -c 0
	start_wpool -s "$CTL" -n 1 --watchdog 2 --stop-timeout 20 -b 127.0.0.1:0 -- "$script"
	wait_for_workers 1
	local p0 pinger
	p0=$(pid_of_id 0)
	pinger=$(children_of "$p0")
	[[ -n $pinger ]] || fail "no pinger under worker $p0"
	record_pid "$pinger"
	# Both stop: the worker hangs as a whole.
	kill -STOP "$pinger" "$p0"
	wait_for_log "worker 0 \\(pid $p0\\) sent no WATCHDOG=1 for 2s; restarting it \\(ABRT\\)" 6
	# Woken by SIGCONT, it dies of the ABRT at once; without, it stayed
	# stopped until --stop-timeout's KILL, 20 s on.
	wait_for_log "worker 0 \\(pid $p0\\) killed by signal ABRT" 5
	wait_for_log_count 'worker 0 started' 2 5
	kill -KILL "$pinger" 2>/dev/null || true
}

@test "--max-memory: a worker over the limit is replaced, the new one first, then the old one stopped" {
	local script
	# Only worker 0 grows past the limit.
	script=$(make_script fat.sh <<EOF
#!/bin/sh
[ "\$WPOOL_WORKER_ID" = 0 ] && exec "$TESTSRV" --alloc 64
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --max-memory 32M -b 127.0.0.1:0 -- "$script"
	NO_HTTP=1 wait_for_workers 2
	local st p0 p1
	st=$(status_json)
	p0=$(jq -r '.workers[] | select(.id == 0) | .pid' <<<"$st")
	p1=$(jq -r '.workers[] | select(.id == 1) | .pid' <<<"$st")
	wait_for_log "worker 0 \\(pid $p0\\) uses [0-9.]+M, over --max-memory 32(\\.0)?M[; ].*recycling it" 5
	wait_gone "$p0" --timeout 5
	# Order in the log: over the limit, successor started, old one gone.
	local over start gone new
	over=$(grep -n "worker 0 (pid $p0) uses" "$LOG" | head -1 | cut -d: -f1)
	start=$(grep -nE "worker 0 started \\(pid [0-9]+," "$LOG" | sed -n 2p | cut -d: -f1)
	gone=$(grep -nE "worker 0 \\(pid $p0(,|\\)).*(TERM|replaced)" "$LOG" | head -1 | cut -d: -f1)
	[[ -n $over && -n $start && -n $gone ]] && ((over < start && start < gone)) ||
		log_fail "expected: over the limit ($over) < successor started ($start) < old one gone ($gone)"
	new=$(grep -E "worker 0 started \\(pid [0-9]+," "$LOG" | sed -n 2p | sed -E 's/.*pid ([0-9]+),.*/\1/')
	[[ $new != "$p0" ]]
	# Worker 1, far under the limit, is never touched.
	sleep 1.2
	assert_equal "$(worker_pid_of 1)" "$p1"
	! grep -q "worker 1 (pid $p1) uses" "$LOG" || log_fail "worker 1 was recycled"
	# Never below capacity: worker 1 plus a worker 0 at every moment.
	assert_equal "$(sj '.target')" 2
}

@test "--max-memory: a worker over the limit as soon as it starts is recycled with a back-off, not once a second" {
	# Every worker allocates 64M at once: each successor is over the
	# limit too.  Recycled within --min-uptime of its start, the slot
	# waits 2 s, then 4 s, before the next recycle.  The hold counts as
	# part of no worker's age: the successor judged when a 2 s hold
	# ends, though older than --min-uptime (1.5 s), is still over the
	# limit "at once", and the back-off doubles rather than starting over.
	start_wpool -s "$CTL" -n 1 --min-uptime 1.5 --max-memory 32M -- "$TESTSRV" --alloc 64
	wait_for_log_count 'recycling it, but not its successor for 2s \(memory back-off\)' 1 5
	wait_for_log_count 'recycling it, but not its successor for 4s \(memory back-off\)' 1 8
	# Between them, no other recycle: the hold was kept, and the
	# back-off did not start over.
	assert_equal "$(log_count 'over --max-memory')" 2
	assert_equal "$(log_count '^wpool: warning: worker 0 .*over --max-memory 32(\.0)?M within --min-uptime')" 2
}

@test "--ready-timeout: a worker not ready in time is killed and counts as failed" {
	start_wpool -s "$CTL" -n 1 --ready notify --ready-timeout 1 -b 127.0.0.1:0 -- "$TESTSRV"
	NO_HTTP=1 wait_for_workers 1
	local p=${WORKERS[0]} t0
	t0=$(now_us)
	assert_equal "$(sj '.workers[0].state')" starting
	run_wp status --check
	assert_failure 1
	wait_for_log "worker 0 \\(pid $p\\) not ready after 1s; killing it" 5
	(($(elapsed_ms "$t0") >= 700)) || fail "killed after $(elapsed_ms "$t0") ms"
	wait_for_log "worker 0 \\(pid $p\\) killed by signal KILL"
	wait_gone "$p" --timeout 2
	# A failure of its own: the crash back-off, not "restarting now".
	grep -Eq "worker 0 \\(pid $p\\) killed by signal KILL after [0-9.]+s; restarting in [0-9.]+s \\(crash back-off\\)" "$LOG" ||
		log_fail "the ready timeout was not treated as a failure"
	wait_status 5 '.workers[0].last_exit == {"signal":"KILL"} and .workers[0].restarts >= 1'
	wait_for_log_count 'worker 0 started' 2 5
}

@test "--ready-timeout does not touch a worker that tells READY=1 in time" {
	start_wpool -s "$CTL" -n 1 --ready notify --ready-timeout 1 -b 127.0.0.1:0 -- \
		"$TESTSRV" --delay-start 0.4 --notify
	wait_status 5 '.ready == 1'
	local p
	p=$(worker_pid_of 0)
	sleep 1
	assert_equal "$(worker_pid_of 0)" "$p"
	! grep -q 'not ready after' "$LOG" || log_fail "a ready worker was timed out"
}
