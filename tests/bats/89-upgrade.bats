#!/usr/bin/env bats
# wpool upgrade: the master execs a new image in place (same pid) and hands
# it its state; workers keep running and keep their pids; a bad new binary
# (missing, crashing, refusing the state, failing after exec) leaves the
# pool serving as it was and the client exits 1 saying why.

load ../helpers
load ../control_helpers
load ../sdnotify_helpers
load ../upgrade_helpers

@test "upgrade under load: 0 failed requests, same master and worker pids, same uptime, restarts and generation" {
	start_wpool -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	local before fds
	before=$(pool_snapshot)
	fds=$(fd_count "$WPOOL_PID")
	load_start 2
	sleep 0.3
	run -0 "$WPOOL" upgrade
	assert_output --partial "upgraded: master pid $WPOOL_PID (unchanged), 3 workers kept"
	# Twice more, with a copy as the new binary: nothing leaks, nothing moves.
	cp "$WPOOL" "$BATS_TEST_TMPDIR/wpool-new"
	run -0 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/wpool-new"
	run -0 "$WPOOL" upgrade
	load_wait
	((LOAD_REQUESTS > 100)) || fail "only $LOAD_REQUESTS requests: $(cat "$LOAD_OUT")"
	assert_equal "$LOAD_FAILED" 0
	assert_equal "$(pool_snapshot)" "$before"
	assert_equal "$(upgrade_field upgrades)" 3
	assert_equal "$(fd_count "$WPOOL_PID")" "$fds"
	# Supervision carries on in the new image: a killed worker comes back.
	kill -KILL "${WORKERS[0]}"
	wait_for_log 'worker [0-9] started \(pid [0-9]+, generation 0\)' 5
	wait_for_workers 3
	assert_equal "$(log_count ' started \(pid')" 4
}

@test "upgrade to a missing path, a crashing binary or one refusing the state: exit 1 with why, pool untouched" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local before
	before=$(pool_snapshot)
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/nope/wpool"
	assert_output --partial "cannot upgrade to $BATS_TEST_TMPDIR/nope/wpool"
	printf '#!/bin/sh\nkill -SEGV $$\n' >"$BATS_TEST_TMPDIR/crash"
	chmod +x "$BATS_TEST_TMPDIR/crash"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/crash"
	assert_output --partial "crashed in its probe (SIGSEGV)"
	printf '#!/bin/sh\necho "state format 99 only" >&2\nexit 1\n' \
		>"$BATS_TEST_TMPDIR/refuse"
	chmod +x "$BATS_TEST_TMPDIR/refuse"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/refuse"
	assert_output --partial "refused the state (exit 1): state format 99 only"
	# A program that exits 0 to anything (the pool was lost to it: the
	# master exec'd /bin/true), and a slow one, whose child the timeout
	# ends too.
	run -1 "$WPOOL" upgrade --binary /bin/true
	assert_output --partial "exited 0 from its probe without saying it can adopt the state"
	printf '#!/bin/sh\nsleep 60 &\necho $! >"%s"\nwait\n' "$BATS_TEST_TMPDIR/slow.pid" \
		>"$BATS_TEST_TMPDIR/slow"
	chmod +x "$BATS_TEST_TMPDIR/slow"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/slow"
	assert_output --partial "did not answer its probe within 5s"
	wait_gone "$(cat "$BATS_TEST_TMPDIR/slow.pid")" --timeout 2
	printf 'not a program\n' >"$BATS_TEST_TMPDIR/plain"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/plain"
	assert_output --partial "Permission denied"
	assert_equal "$(pool_snapshot)" "$before"
	assert_equal "$(upgrade_field upgrades)" 0
	wait_for_workers 2
	run -64 "$WPOOL" upgrade --bogus
	assert_output --partial "usage: wpool [-s PATH | --name NAME] upgrade"
}

@test "a new image that fails after exec goes back to the old one: exit 1, same pids, still serving" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local before
	before=$(pool_snapshot)
	# Passes the probe, then cannot open its resources after the exec.
	cat >"$BATS_TEST_TMPDIR/late" <<EOF
#!/bin/sh
[ -n "\$WPOOL_UPGRADE_PROBE" ] && exec "$WPOOL" "\$@"
exec "$WPOOL" --pidfile "$BATS_TEST_TMPDIR/none/p.pid" "\$@"
EOF
	chmod +x "$BATS_TEST_TMPDIR/late"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/late"
	assert_output --partial "upgrade failed: the new image could not take over"
	assert_output --partial "the old one resumed"
	wait_for_log 'going back to the image that was running'
	assert_equal "$(readlink "/proc/$WPOOL_PID/exe")" "$WPOOL"
	assert_equal "$(pool_snapshot)" "$before"
	wait_for_workers 2
	# And the next upgrade works.
	run -0 "$WPOOL" upgrade
	assert_equal "$(pool_snapshot)" "$before"
}

@test "a new image that passes the probe, then crashes (SIGSEGV) while it takes over: the old one resumes, same pid and workers" {
	local shim=$REPO_ROOT/tests/shim/crashonce.so trigger=$BATS_TEST_TMPDIR/crash-next
	[[ -f $shim ]] || fail "$shim is not built (make test-bins)"
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local before
	before=$(pool_snapshot)
	# The probe is the real wpool; the image exec'd faults in its start.
	cat >"$BATS_TEST_TMPDIR/crashing" <<EOF
#!/bin/sh
[ -n "\$WPOOL_UPGRADE_PROBE" ] && exec "$WPOOL" "\$@"
exec env LD_PRELOAD="$shim" CRASH_TRIGGER="$trigger" \\
	ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0" \\
	"$WPOOL" "\$@"
EOF
	chmod +x "$BATS_TEST_TMPDIR/crashing"
	touch "$trigger"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/crashing"
	[[ ! -e $trigger ]] || fail "the new image never ran: the test proves nothing"
	assert_output --partial "killed by SIGSEGV after the exec, before it took over"
	assert_output --partial "the old one resumed"
	assert_equal "$(readlink "/proc/$WPOOL_PID/exe")" "$WPOOL"
	assert_equal "$(pool_snapshot)" "$before"
	wait_for_workers 2
	# And the next upgrade works.
	run -0 "$WPOOL" upgrade
	assert_equal "$(pool_snapshot)" "$before"
}

@test "--binary that another user could change is refused before the probe runs it: another uid's directory, a file or directory others can write" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local before d=$BATS_TEST_TMPDIR
	before=$(pool_snapshot)
	# Each would run as the master's uid (root here) if not refused.
	mkdir "$d/theirs" "$d/open"
	cp "$WPOOL" "$d/theirs/wpool"
	chown 65534:65534 "$d/theirs"
	cp "$WPOOL" "$d/open/wpool"
	chmod 0777 "$d/open"
	cp "$WPOOL" "$d/wpool-rw"
	chmod 0777 "$d/wpool-rw"
	run -1 "$WPOOL" upgrade --binary "$d/theirs/wpool"
	assert_output --partial "$d/theirs belongs to uid 65534, who could change what the master runs"
	run -1 "$WPOOL" upgrade --binary "$d/open/wpool"
	assert_output --partial "$d/open can be written by other users (mode 0777)"
	run -1 "$WPOOL" upgrade --binary "$d/wpool-rw"
	assert_output --partial "$d/wpool-rw can be written by other users (mode 0777)"
	(($(log_count "upgrading: exec") == 0)) || fail "the master exec'd a binary it should have refused"
	assert_equal "$(pool_snapshot)" "$before"
	# A sticky directory (as /tmp) is safe: others cannot replace our file.
	chmod 1777 "$d/open"
	run -0 "$WPOOL" upgrade --binary "$d/open/wpool"
	assert_equal "$(pool_snapshot)" "$before"
}

@test "upgrade in reuseport mode keeps the slot sockets: served under load, same sockets" {
	start_wpool --mode reuseport -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local before socks
	before=$(pool_snapshot)
	socks=$(socket_inodes "$WPOOL_PID")
	load_start 2
	sleep 0.3
	run -0 "$WPOOL" upgrade
	assert_output --partial "2 workers kept"
	load_wait
	((LOAD_REQUESTS > 100)) || fail "only $LOAD_REQUESTS requests"
	assert_equal "$LOAD_FAILED" 0
	assert_equal "$(pool_snapshot)" "$before"
	assert_equal "$(socket_inodes "$WPOOL_PID")" "$socks"
	# Both slots still get connections, and a new slot joins the port.
	wait_for_workers 2
	run -0 "$WPOOL" scale 3
	wait_for_workers 3
}

@test "SIGUSR2 upgrades the master in place; WINCH is still forwarded; --reload replaces the workers after" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 2
	local before
	before=$(pool_snapshot)
	kill -USR2 "$WPOOL_PID"
	wait_for_log 'upgraded in place: master pid [0-9]+, 2 workers kept'
	assert_equal "$(upgrade_field upgrades)" 1
	assert_equal "$(pool_snapshot)" "$before"
	kill -WINCH "$WPOOL_PID"
	wait_for_file_line "$BATS_TEST_TMPDIR/sig.log" WINCH
	run grep -c USR2 "$BATS_TEST_TMPDIR/sig.log"
	assert_output 0
	run -0 "$WPOOL" upgrade --reload
	assert_output --partial "upgraded: master pid $WPOOL_PID (unchanged)"
	assert_output --partial "reloaded: 2 workers at generation 1"
	assert_equal "$("$WPOOL" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')" "$WPOOL_PID"
}

@test "as PID 1 of a PID namespace, the upgraded master is still PID 1" {
	unshare --pid --fork --mount-proc true 2>/dev/null ||
		fail "machine lacks PID namespaces (unshare --pid)"
	WPOOL_PREFIX=(unshare --pid --fork --mount-proc)
	# The worker upgrades its own master, then says what pid it has.
	run_wpool --no-restart -n 1 -- sh -c '"$0" upgrade &&
		"$0" status --json | grep -q "\"pid\": *1," && echo "master is pid 1"' "$WPOOL"
	assert_success
	assert_output --partial "upgraded: master pid 1 (unchanged), 1 worker kept"
	assert_output --partial "master is pid 1"
}

@test "under a notify manager: RELOADING then READY around the upgrade, MAINPID unchanged, the manager's child never exits" {
	start_managed -- -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	run -0 "$WPOOL" upgrade
	assert_output --partial "upgraded: master pid $WPOOL_PID (unchanged)"
	wait_event '^MSG READY=1$' 2
	assert_equal "$(events | sed -nE 's/^MSG (READY|RELOADING)=1$/\1/p' | paste -sd' ')" \
		"READY RELOADING READY"
	assert_equal "$(events | sed -n 's/^MSG MAINPID=//p')" "$WPOOL_PID"
	assert_equal "$(ev_count '^PID ')" 1
	assert_equal "$(ev_count '^EXIT ')" 0
}

@test "--log-prefix: the workers' output pipes are handed over; the worker writes on, prefixed" {
	start_wpool --log-prefix -n 1 -- sh -c 'i=0; while :; do i=$((i + 1)); echo "tick $i"; sleep 0.05; done'
	wait_for_log '^\[wpool\.0\] tick 3$'
	local before n
	before=$(pool_snapshot)
	run -0 "$WPOOL" upgrade
	n=$(log_count '^\[wpool\.0\] tick')
	wait_for_log_count '^\[wpool\.0\] tick' $((n + 5))
	assert_equal "$(pool_snapshot)" "$before"
	assert_equal "$(log_count 'worker 0 started')" 1
}

@test "a slot backing off is handed over backing off: it restarts when its delay ends, with its restart count" {
	start_wpool -n 1 --restart-delay 1.5 --min-uptime 5 -- sh -c 'sleep 0.3; exit 1'
	wait_for_log 'worker 0 .*exited'
	local t0 restarts
	t0=$(now_us)
	restarts=$("$WPOOL" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["restarts"])')
	run -0 "$WPOOL" upgrade
	assert_output --partial "0 workers kept"
	assert_equal "$("$WPOOL" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["restarts"])')" "$restarts"
	wait_for_log_count 'worker 0 started' 2 5
	# Not at once (a fresh slot would start now), and not never.
	(($(elapsed_ms "$t0") >= 1000)) || log_fail "restarted $(elapsed_ms "$t0") ms after the exit: the back-off was lost"
}

@test "the probe refuses a state of another format, mode or listeners, naming what differs" {
	local st=$BATS_TEST_TMPDIR/state.json
	probe() {
		run --separate-stderr without_fd3 env WPOOL_UPGRADE_FD=7 \
			timeout 5 "$WPOOL" --upgrade-probe "$@" 7<"$st"
	}
	echo '{"format": 99, "mode": "shared"}' >"$st"
	probe -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	assert_equal "$status" 1
	assert_equal "$stderr" "state format 99: this wpool ($("$WPOOL" --version | grep -o '[0-9][0-9.]*' | head -1)) reads format 1"
	echo '{"format": 1, "mode": "shared", "listeners": [{"spec": "127.0.0.1:0", "fd": 3}], "control": {"fd": 4}, "slots": []}' >"$st"
	probe --mode reuseport -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	assert_equal "$status" 1
	assert_equal "$stderr" "the mode changed (shared to reuseport): a change of mode needs a restart"
	probe -n 1 -b 127.0.0.1:1 -- "$TESTSRV"
	assert_equal "$status" 1
	assert_equal "$stderr" "listener 0 changed (127.0.0.1:0 to 127.0.0.1:1): run \`wpool reload\` first, or restart"
	echo 'not json' >"$st"
	probe -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	assert_equal "$status" 1
	assert_equal "$stderr" "the state handed over is not JSON"
	echo '{"format": 1, "mode": "shared", "listeners": [{"spec": "127.0.0.1:0", "fd": 3}], "control": {"fd": 4}, "slots": []}' >"$st"
	probe -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	assert_equal "$status" 0
	# It bound nothing and started nothing: the probe only checks, and
	# says it can adopt the state (exiting 0 is not enough: /bin/true),
	# and that it takes reuseport's eBPF placement by fd.
	assert_equal "$output" "wpool-upgrade-probe: can adopt format 1
wpool-upgrade-probe: takes reuseport-ebpf"
	refute [ -e "$WPOOL_CONTROL" ]
}

@test "upgrade during a reload waits for it (busy, asked again), then upgrades; inetd mode is refused by name" {
	start_wpool -n 2 --ready notify -b 127.0.0.1:0 -- "$TESTSRV" --notify --delay-start 0.4
	wait_for_workers 2
	run -0 "$WPOOL" reload --no-wait
	run -0 "$WPOOL" upgrade
	assert_output --partial "upgraded: master pid $WPOOL_PID (unchanged), 2 workers kept"
	assert_equal "$("$WPOOL" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["generation"], d["reload"]["state"])')" "1 done"
	stop_wpool
	start_wpool -m inetd -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	run -1 "$WPOOL" upgrade
	assert_output --partial "--mode inetd: not upgraded in place (its connections pass through the master)"
}

@test "-b systemd (socket activation): the new image parses it again and keeps fd 3; new workers get LISTEN_FDS" {
	command -v systemd-socket-activate >/dev/null ||
		fail "systemd-socket-activate is missing: make deps-test"
	local port before
	port=$(free_tcp_port)
	env --default-signal systemd-socket-activate -E "WPOOL_CONTROL=$WPOOL_CONTROL" \
		-l "127.0.0.1:$port" --fdname=web "$WPOOL" -n 2 -b systemd -- "$TESTSRV" \
		</dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	wait_for_log_count '^Listening on .* as [0-9]+\.$' 1
	run http_get / "$port"
	assert_success
	wait_for_listeners 1
	wait_for_workers 2
	before=$(pool_snapshot)
	run -0 "$WPOOL" upgrade
	assert_output --partial "2 workers kept"
	assert_equal "$(pool_snapshot)" "$before"
	run http_get / "$port"
	assert_success
	run -0 "$WPOOL" upgrade --reload
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" web
		assert_equal "$(worker_env "$p" LISTEN_PID)" "$p"
	done
}
