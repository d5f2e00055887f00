#!/usr/bin/env bats
# The pool: N workers on shared listeners, what each one is given
# (environment, fds, cwd), and the restart policy.

load ../helpers

@test "-n 3 runs 3 workers with ids 0..2 that all answer" {
	start_wpool -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	assert_equal "$(sorted_ids)" "0 1 2"
	assert_equal "$(log_count 'worker [0-2] started \(pid [0-9]+, generation 0\)')" 3
	local p
	for p in "${WORKERS[@]}"; do
		grep -Eq "worker ${WORKER_ID[$p]} started \(pid $p," "$LOG" ||
			log_fail "no start line for worker ${WORKER_ID[$p]} (pid $p)"
		# Each worker leads a process group of its own, which the
		# master signals as a whole (issue 11; Ctrl-C: 66-stop-tree).
		assert_equal "$(proc_pgrp "$p")" "$p"
	done
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-2] gen=0$'
}

@test "a worker killed with KILL is replaced at once in the same slot" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local old new t0
	old=$(pid_of_id 1)
	t0=$(now_us)
	kill -KILL "$old"
	wait_for_log "worker 1 \(pid $old\) killed by signal KILL"
	wait_for_log_count 'worker 1 started' 2 2
	new=$(sed -nE 's/.*worker 1 started \(pid ([0-9]+),.*/\1/p' "$LOG" | tail -1)
	[[ $new != "$old" ]] || log_fail "same pid"
	wait_for_workers 2
	assert_equal "${WORKER_ID[$new]}" 1
	assert_equal "$(sorted_ids)" "0 1"
	(($(elapsed_ms "$t0") < 1500)) ||
		log_fail "replacement took $(elapsed_ms "$t0") ms"
	grep -Eq "worker 1 \(pid $old\) killed by signal KILL after [0-9.]+s; restarting now" "$LOG" ||
		log_fail "the death line does not say it restarts now"
}

@test "a worker gets the systemd, Server::Starter and wpool environment" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local p env
	for p in "${WORKERS[@]}"; do
		env=$(tr '\0' '\n' <"/proc/$p/environ")
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 1
		assert_equal "$(worker_env "$p" LISTEN_PID)" "$p"
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" l0
		# Port 0 is named by the port it was bound to.
		assert_equal "$(worker_env "$p" SERVER_STARTER_PORT)" "127.0.0.1:$PORT=3"
		# Server::Starter counts generations from 1.
		assert_equal "$(worker_env "$p" SERVER_STARTER_GENERATION)" 1
		assert_equal "$(worker_env "$p" WPOOL_WORKER_ID)" "${WORKER_ID[$p]}"
		assert_equal "$(worker_env "$p" WPOOL_WORKERS)" 2
		assert_equal "$(worker_env "$p" WPOOL_MASTER_PID)" "$WPOOL_PID"
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 0
	done
	# And what the worker itself sees: /pid then /env on one keep-alive
	# connection, so both come from the same worker.
	run curl -sS --max-time 5 "http://127.0.0.1:$PORT/pid" "http://127.0.0.1:$PORT/env"
	assert_success
	assert_line --index 0 --regexp '^[0-9]+$'
	local pid=${lines[0]}
	assert_line "LISTEN_PID=$pid"
}

@test "LISTEN_*, NOTIFY_SOCKET and WATCHDOG_* given to wpool are not passed on" {
	export LISTEN_FDS=7 LISTEN_PID=1 LISTEN_FDNAMES=bogus
	export NOTIFY_SOCKET=$BATS_TEST_TMPDIR/nowhere.sock
	export WATCHDOG_USEC=1000000 WATCHDOG_PID=1
	export WPOOL_TEST_MARKER=kept
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run http_get /env
	assert_line LISTEN_FDS=1
	assert_line LISTEN_FDNAMES=l0
	assert_line "LISTEN_PID=${WORKERS[0]}"
	refute_line "NOTIFY_SOCKET=$NOTIFY_SOCKET"
	refute_line --regexp '^WATCHDOG_'
	assert_line WPOOL_TEST_MARKER=kept
	assert_equal "$(grep -c '^LISTEN_FDS=' <<<"$output")" 1
}

@test "a worker has exactly fds 0 (/dev/null), 1, 2 and its listener at 3" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run http_get /fds
	assert_equal "$(cut -d' ' -f1 <<<"$output" | paste -sd' ')" "0 1 2 3"
	assert_line "0 /dev/null"
	assert_line --regexp '^3 socket:\[[0-9]+\]$'
	run http_get /listeners
	assert_output "3 stream 127.0.0.1:$PORT"
}

@test "the worker's signal mask is empty and no signal is ignored" {
	start_wpool -n 1 -- sleep 30
	wait_for_workers 1
	# Read it once the worker has exec'd: between fork and exec the child
	# still has the master's mask, which it clears itself.
	local deadline
	deadline=$(deadline_in 5)
	until [[ $(cat "/proc/${WORKERS[0]}/comm" 2>/dev/null) == sleep ]]; do
		past "$deadline" && fail "worker ${WORKERS[0]} never exec'd sleep"
		sleep 0.01
	done
	run grep -E '^Sig(Blk|Ign):' "/proc/${WORKERS[0]}/status"
	assert_line --regexp '^SigBlk:[[:space:]]+0+$'
	assert_line --regexp '^SigIgn:[[:space:]]+0+$'
}

@test "two listeners are fds 3 and 4 in -b order, named by name=" {
	local sock=$BATS_TEST_TMPDIR/s.sock
	start_wpool -n 1 -b 127.0.0.1:0,name=http -b "unix:$sock,name=admin" \
		-- "$TESTSRV"
	wait_for_workers 1
	run http_get /fds
	assert_equal "$(cut -d' ' -f1 <<<"$output" | paste -sd' ')" "0 1 2 3 4"
	run http_get /listeners
	assert_line --index 0 "3 stream 127.0.0.1:$PORT"
	assert_line --index 1 "4 stream unix:$sock"
	run http_get /env
	assert_line LISTEN_FDS=2
	assert_line LISTEN_FDNAMES=http:admin
	# The user's spelling of each bind, options removed, port 0 as bound;
	# a unix path is spelled as Server::Starter's bare path.
	assert_line "SERVER_STARTER_PORT=127.0.0.1:$PORT=3;$sock=4"
	# The unix listener serves too.
	run curl -sS --max-time 5 --unix-socket "$sock" http://x/id
	assert_output 0
}

@test "-e NAME=VALUE reaches the worker and overrides the inherited value" {
	export WPOOL_TEST_FOO=old
	start_wpool -n 1 -e WPOOL_TEST_FOO=new -e 'WPOOL_TEST_SPACED=a b=c' \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run http_get /env
	assert_line WPOOL_TEST_FOO=new
	refute_line WPOOL_TEST_FOO=old
	assert_line 'WPOOL_TEST_SPACED=a b=c'
}

@test "-C DIR sets the workers' working directory, not the master's" {
	mkdir "$BATS_TEST_TMPDIR/wd"
	start_wpool -n 1 -C "$BATS_TEST_TMPDIR/wd" -- sleep 30
	wait_for_workers 1
	assert_equal "$(readlink "/proc/${WORKERS[0]}/cwd")" "$BATS_TEST_TMPDIR/wd"
	assert_equal "$(readlink "/proc/$WPOOL_PID/cwd")" "$BATS_TEST_TMPDIR"
}

@test "-C with a relative command resolves it in DIR" {
	mkdir "$BATS_TEST_TMPDIR/wd"
	cp "$TESTSRV" "$BATS_TEST_TMPDIR/wd/srv"
	start_wpool -n 1 -C "$BATS_TEST_TMPDIR/wd" -b 127.0.0.1:0 -- ./srv
	wait_for_workers 1
	assert_equal "$(readlink "/proc/${WORKERS[0]}/exe")" "$BATS_TEST_TMPDIR/wd/srv"
}

@test "a command that keeps failing at once backs off: few spawns, growing delays" {
	local t0
	t0=$(now_us)
	start_wpool -n 1 -- "$TESTSRV" --exit 1
	# Watch it for 3 seconds: the point is how often it is spawned.
	while (($(elapsed_ms "$t0") < 3000)); do
		sleep 0.1
	done
	local starts
	starts=$(log_count 'worker 0 started')
	((starts >= 3)) || log_fail "only $starts starts in 3 s: it is not restarted"
	((starts <= 10)) || log_fail "$starts starts in 3 s: no back-off"
	alive "$WPOOL_PID" || log_fail "wpool exited"
	grep -q 'exited with status 1 after' "$LOG" || log_fail "no exit status in the log"
	# The announced delays grow.
	local -a delays
	mapfile -t delays < <(sed -nE 's/.*restarting in ([0-9.]+)s.*/\1/p' "$LOG")
	((${#delays[@]} >= 3)) || log_fail "no 'restarting in Xs' delays in the log"
	local i
	for ((i = 1; i < ${#delays[@]}; i++)); do
		awk -v a="${delays[i - 1]}" -v b="${delays[i]}" 'BEGIN { exit !(b > a) }' ||
			log_fail "delay ${delays[i]} after ${delays[i - 1]} does not grow"
	done
	awk -v a="${delays[0]}" 'BEGIN { exit !(a >= 0.1 && a < 1) }' ||
		log_fail "first delay ${delays[0]}: expected from 0.1 s"
}

@test "the crash back-off is capped by --max-restart-delay" {
	start_wpool -n 1 --max-restart-delay 0.3 -- "$TESTSRV" --exit 2
	wait_for_log_count 'worker 0 started' 6 5
	local -a delays
	mapfile -t delays < <(sed -nE 's/.*restarting in ([0-9.]+)s.*/\1/p' "$LOG")
	local d
	for d in "${delays[@]}"; do
		awk -v d="$d" 'BEGIN { exit !(d <= 0.3) }' ||
			log_fail "delay $d exceeds --max-restart-delay 0.3"
	done
}

@test "workers killed from outside are restarted at once even before --min-uptime" {
	start_wpool -n 1 --min-uptime 100 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local i old t0 ms worst=0 born=0
	for i in 1 2 3 4 5; do
		old=${WORKERS[0]}
		# Each victim has lived past 0.1 s: workers killed younger than
		# that twice in a row are a crash loop and back off (issue 10).
		while (($(elapsed_ms "$born") < 150)); do sleep 0.02; done
		t0=$(now_us)
		kill -KILL "$old"
		wait_for_log_count 'worker 0 started' $((i + 1)) 3
		born=$(now_us)
		ms=$(elapsed_ms "$t0")
		((ms > worst)) && worst=$ms
		NO_HTTP=1 wait_for_workers 1 2
		[[ ${WORKERS[0]} != "$old" ]] || log_fail "same pid"
	done
	# A back-off would have made the 4th and 5th wait 0.8 s and 1.6 s.
	((worst < 700)) || log_fail "a replacement took $worst ms: back-off?"
	refute grep -q 'back-off' "$LOG"
	assert_equal "$(log_count 'killed by signal KILL.*restarting now')" 5
	wait_for_workers 1
}

@test "a worker that crashes (SEGV) young backs off like one that exits" {
	start_wpool -n 1 -- sh -c 'kill -SEGV $$'
	wait_for_log_count 'worker 0 started' 3 5
	grep -Eq 'killed by signal SEGV.*restarting in [0-9.]+s' "$LOG" ||
		log_fail "a SEGV death is not backed off"
}

@test "--restart-delay delays even a killed worker's replacement" {
	start_wpool -n 1 --restart-delay 0.5 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local t0 old=${WORKERS[0]}
	t0=$(now_us)
	kill -KILL "$old"
	wait_for_log_count 'worker 0 started' 2 3
	local ms
	ms=$(elapsed_ms "$t0")
	((ms >= 400)) || log_fail "replaced after $ms ms despite --restart-delay 0.5"
}
