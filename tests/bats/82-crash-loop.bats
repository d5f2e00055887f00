#!/usr/bin/env bats
# --max-crashes N[/WINDOW]: when the serving workers crash N times within
# WINDOW, the pool gives up: it stops gracefully (every other worker gets
# the stop signal) and exits with the status of the crash that tripped it,
# so that a container's restart policy and its alerts see the loop.  A
# crash is an end wpool did not ask for, other than exit 0: a non-zero
# exit, a signal (the OOM killer's KILL too), an exec that fails, a kill
# for --ready-timeout or --watchdog.  Stops, restarts and reloads that
# wpool asked for do not count.

load ../helpers
load ../control_helpers

# Worker 0 exits with $1 after 0.2 s; the others serve until TERM, which
# they record in got-term.ID.
crash_script() {
	make_script crash.sh <<EOF
#!/bin/sh
if [ "\$WPOOL_WORKER_ID" = 0 ]; then
	sleep 0.2
	exit $1
fi
trap 'echo TERM >got-term.\$WPOOL_WORKER_ID; exit 0' TERM
while :; do sleep 0.05; done
EOF
}

@test "the N-th crash within the window stops the pool gracefully; wpool exits with that crash's status" {
	crash_script 7
	start_wpool -s "$CTL" -n 3 --ready exec --max-crashes 3/30s -- ./crash.sh
	wait_wpool_exit 20
	assert_equal "$WPOOL_STATUS" 7
	# Three crashes, no fourth start, and the reason said once.
	assert_equal "$(log_count 'worker 0 \(pid [0-9]+\) exited with status 7')" 3
	assert_equal "$(log_count 'error: worker 0 .* exited with status 7 after .*: 3 crashes in [0-9.]+m?s \(--max-crashes 3/30s\); giving up: stopping the pool, exit status 7$')" 1
	grep -q 'stopping (--max-crashes): asking 2 workers to stop with TERM' "$LOG" ||
		log_fail "no graceful stop of the other workers"
	# The others got the stop signal and exited of it, not KILLed.
	[[ -s got-term.1 && -s got-term.2 ]] || log_fail "workers 1 and 2 got no TERM"
	assert_equal "$(log_count 'worker [12] \(pid [0-9]+\) exited with status 0')" 2
	assert_equal "$(log_count 'KILL')" 0
}

@test "a crash by a signal exits 128+N; an exec that fails later exits 126" {
	make_script segv.sh <<'EOF'
#!/bin/sh
sleep 0.2
kill -SEGV $$
EOF
	start_wpool -n 1 --ready exec --max-crashes 2 -- ./segv.sh
	wait_wpool_exit 20
	assert_equal "$WPOOL_STATUS" $((128 + 11))
	grep -q 'killed by signal SEGV after .*: 2 crashes in .* exit status 139$' "$LOG" ||
		log_fail "no give-up line for SEGV"

	# It ran once, then made itself unrunnable: its restart cannot exec.
	make_script unexec.sh <<'EOF'
#!/bin/sh
chmod -x "$0"
sleep 0.2
exit 3
EOF
	start_wpool -n 1 --ready exec --max-crashes 2/1m -- ./unexec.sh
	wait_wpool_exit 20
	assert_equal "$WPOOL_STATUS" 126
	grep -q 'worker 0 (pid [0-9]*) could not run after .*: 2 crashes in .*(--max-crashes 2/1m); giving up: stopping the pool, exit status 126$' "$LOG" ||
		log_fail "no give-up line for the exec failure"
}

@test "N-1 crashes within the window do not stop the pool; status --json counts them" {
	# Crashes twice (exit 5), then serves.
	make_script twice.sh <<EOF
#!/bin/sh
echo x >>starts
[ "\$(wc -l <starts)" -le 2 ] && exit 5
exec "$TESTSRV"
EOF
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 --max-crashes 3/1m -- ./twice.sh
	wait_status 15 '.ready == 1'
	assert_equal "$(log_count 'exited with status 5')" 2
	assert_equal "$(sj '.crashes | "\(.limit) \(.window_s) \(.recent) \(.gave_up)"')" "3 60 2 false"
	# It serves on; TERM stops it as usual, with status 0.
	http_get /pid >/dev/null || log_fail "the pool does not serve"
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	assert_equal "$(log_count 'max-crashes')" 0
}

@test "crashes further apart than the window do not add up" {
	# Lives 0.6 s, then exits 1: 3 crashes, never 2 within 0.5 s.
	make_script slow.sh <<'EOF'
#!/bin/sh
sleep 0.6
exit 1
EOF
	start_wpool -s "$CTL" -n 1 --ready exec --min-uptime 0.3 \
		--max-crashes 2/0.5s -- ./slow.sh
	wait_for_log_count 'exited with status 1' 3 15
	kill -0 "$WPOOL_PID" || log_fail "the pool gave up"
	assert_equal "$(log_count 'giving up')" 0
	(($(sj '.crashes.recent') <= 1)) || log_fail "more than 1 crash within 0.5 s"
}

@test "what wpool asks for (restart, reload, stop) and exit 0 are no crashes; a failed ready-timeout is one" {
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 --max-crashes 1 -- "$TESTSRV"
	wait_status 10 '.ready == 1'
	wp restart 0 >/dev/null || log_fail "restart failed"
	wp reload >/dev/null || log_fail "reload failed"
	wait_status 10 '.ready == 1 and .generation == 1'
	# A worker that ends of itself with 0 (php-cgi does, by design).
	http_get '/exit?code=0' >/dev/null 2>&1 || true
	wait_for_log 'exited with status 0'
	wait_status 10 '.ready == 1 and .crashes.recent == 0'
	kill -0 "$WPOOL_PID" || log_fail "the pool gave up"
	# Then a real crash: the limit of 1 trips at once.
	http_get '/exit?code=9' >/dev/null 2>&1 || true
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 9
	grep -q 'exited with status 9 after .*: 1 crash (--max-crashes 1); giving up: stopping the pool, exit status 9$' "$LOG" ||
		log_fail "no give-up line for 1 crash"

	# Never ready: killed for --ready-timeout twice, which counts.
	start_wpool -n 1 --ready notify --ready-timeout 0.3 --max-crashes 2 \
		-- sleep 30
	wait_wpool_exit 20
	assert_equal "$WPOOL_STATUS" $((128 + 9))
	assert_equal "$(log_count 'not ready after 0.3s; killing it')" 2
	grep -q 'giving up: stopping the pool, exit status 137$' "$LOG" ||
		log_fail "no give-up line"
}

@test "--max-crashes refuses bad values with exit 64, names the option, and reads back in check" {
	local v
	for v in 0 1001 abc 5/ 5/0 5/0s 5/-1s /5 5/10x 5/2y "" 3/4/5; do
		run_wpool -64 --max-crashes "$v" -- true
		[[ $stderr == "wpool: error: --max-crashes: invalid value '$v': expected N or N/WINDOW: N crashes from 1 to 1000, WINDOW a duration above 0, up to a year (60s unless given), such as 5, 5/30s or 10/2m"* ]] ||
			fail "'$v': $stderr"
	done
	printf '[pool]\nmax-crashes = 0\ncommand = true\n' >bad.conf
	run_wpool -64 -c bad.conf
	[[ $stderr == *"bad.conf:2: max-crashes: invalid value '0': expected N or N/WINDOW"* ]] ||
		fail "config: $stderr"
	run_wpool -64 -m inetd -b 127.0.0.1:0 --max-crashes 5 -- true
	[[ $stderr == *"--max-crashes: only in shared, reuseport or balance modes"* ]] ||
		fail "inetd: $stderr"
	run_wpool check --max-crashes 5/30s -- true
	assert_success
	assert_line 'max-crashes = 5/30s'
	run_wpool check -- true
	refute_line --partial 'max-crashes'
}
