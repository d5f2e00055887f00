#!/usr/bin/env bats
# Readiness: --ready exec|notify, the sd_notify socket (READY, STATUS,
# STOPPING, MAINPID, descendants, passed fds), and einhorn's worker:ack.

load ../helpers
load ../control_helpers

@test "NOTIFY_SOCKET is an abstract @wpool/... socket, the same for every worker" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local a b
	a=$(worker_env "${WORKERS[0]}" NOTIFY_SOCKET)
	b=$(worker_env "${WORKERS[1]}" NOTIFY_SOCKET)
	assert_regex "$a" '^@wpool/'
	assert_equal "$a" "$b"
	# Abstract: no file anywhere, and it is the master's.
	grep -q "@${a#@}" /proc/net/unix || fail "no abstract socket ${a} in /proc/net/unix"
}

@test "--ready notify: starting until systemd-notify --ready, then ready with its STATUS" {
	command -v systemd-notify >/dev/null || skip "machine lacks systemd-notify"
	local script
	# Each worker waits for its go file, then tells, then serves.  The
	# time systemd-notify takes shows whether its BARRIER fd was closed.
	script=$(make_script notify.sh <<EOF
#!/bin/bash
while [ ! -e "$BATS_TEST_TMPDIR/go.\$WPOOL_WORKER_ID" ]; do sleep 0.02; done
t0=\$EPOCHREALTIME
systemd-notify --ready --status="serving as \$WPOOL_WORKER_ID"
echo "\$? \$EPOCHREALTIME \$t0" >"$BATS_TEST_TMPDIR/took.\$WPOOL_WORKER_ID"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	NO_HTTP=1 wait_for_workers 2
	sleep 0.3
	local st
	st=$(status_json)
	jq -e '.ready == 0 and .alive == 2 and ([.workers[].state] | unique) == ["starting"]' \
		<<<"$st" >/dev/null || fail "before READY=1: $st"
	run_wp status --check
	assert_failure 1
	touch "$BATS_TEST_TMPDIR/go.0"
	wait_status 5 '.ready == 1 and (.workers[] | select(.id == 0) | .state == "ready" and .status == "serving as 0")'
	assert_equal "$(sj '.workers[] | select(.id == 1) | .state')" starting
	touch "$BATS_TEST_TMPDIR/go.1"
	wait_status 5 '.ready == 2'
	run_wp status --check
	assert_success
	assert_equal "$(sj '.workers[] | select(.id == 1) | .status')" "serving as 1"
	# systemd-notify succeeded without waiting out its 5 s barrier timeout.
	local id rc t1 t0
	for id in 0 1; do
		wait_for_file_line "$BATS_TEST_TMPDIR/took.$id" .
		read -r rc t1 t0 <"$BATS_TEST_TMPDIR/took.$id"
		assert_equal "$rc" 0
		awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 2) }' ||
			fail "systemd-notify took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')s"
	done
}

@test "a worker's descendant may send READY=1 and STATUS= (python, SCM_CREDENTIALS)" {
	write_notify_py
	local script
	script=$(make_script grandchild.sh <<EOF
#!/bin/sh
# A grandchild of the worker tells: sh -> sh -> python.
sh -c '"$PY" "$NOTIFY_PY" "READY=1
STATUS=told by a grandchild"'
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_status 5 '.ready == 1 and .workers[0].status == "told by a grandchild"'
	wait_for_workers 1
	assert_equal "$(sj .workers[0].state)" ready
}

@test "a message from a process that is not a worker's is ignored" {
	write_notify_py
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$TESTSRV"
	NO_HTTP=1 wait_for_workers 1
	local sock
	sock=$(worker_env "${WORKERS[0]}" NOTIFY_SOCKET)
	NOTIFY_SOCKET=$sock run "$PY" "$NOTIFY_PY" "READY=1
STATUS=forged"
	assert_success
	sleep 0.3
	local st
	st=$(status_json)
	jq -e '.ready == 0 and .workers[0].state == "starting" and .workers[0].status == null' \
		<<<"$st" >/dev/null || fail "a stranger's READY=1 counted: $st"
}

@test "an fd sent with a notify message is closed at once: the sender sees EOF" {
	write_notify_py
	local script
	script=$(make_script fd.sh <<EOF
#!/bin/sh
"$PY" "$NOTIFY_PY" "READY=1
STATUS=with an fd" --fd >"$BATS_TEST_TMPDIR/fd.\$WPOOL_WORKER_ID"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_status 5 '.ready == 2'
	wait_for_file_line "$BATS_TEST_TMPDIR/fd.0" .
	wait_for_file_line "$BATS_TEST_TMPDIR/fd.1" .
	assert_equal "$(cat "$BATS_TEST_TMPDIR/fd.0")" eof
	assert_equal "$(cat "$BATS_TEST_TMPDIR/fd.1")" eof
}

@test "MAINPID=: messages from the named process count for the worker" {
	write_notify_py
	local script
	# The worker starts a daemon that double-forks away (its parent becomes
	# wpool, the subreaper) and writes its pid, names it with MAINPID=, and
	# the daemon tells READY=1 once the go file exists.
	script=$(make_script mainpid.sh <<EOF
#!/bin/sh
"$PY" -c '
import os, subprocess, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1] + "/daemon.pid", "w") as f:
            f.write(str(os.getpid()))
        dl = time.time() + 20
        while not os.path.exists(sys.argv[1] + "/go") and time.time() < dl:
            time.sleep(0.02)
        subprocess.run([sys.executable, sys.argv[2], "READY=1\nSTATUS=from the main pid"])
        time.sleep(20)
    os._exit(0)
os.wait()
' "$BATS_TEST_TMPDIR" "$NOTIFY_PY"
while [ ! -s "$BATS_TEST_TMPDIR/daemon.pid" ]; do sleep 0.02; done
"$PY" "$NOTIFY_PY" "MAINPID=\$(cat "$BATS_TEST_TMPDIR/daemon.pid")"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_for_file_line "$BATS_TEST_TMPDIR/daemon.pid" .
	local daemon
	daemon=$(cat "$BATS_TEST_TMPDIR/daemon.pid")
	record_pid "$daemon"
	# The daemon is no descendant of the worker any more: wpool adopted it.
	wait_until 5 test "$(proc_ppid "$daemon")" = "$WPOOL_PID"
	sleep 0.3
	assert_equal "$(sj .ready)" 0
	touch "$BATS_TEST_TMPDIR/go"
	wait_status 5 '.ready == 1 and .workers[0].status == "from the main pid"'
	kill -KILL "$daemon"
}

@test "STOPPING=1 shows the worker as stopping" {
	write_notify_py
	local script
	script=$(make_script stopping.sh <<EOF
#!/bin/sh
( while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.02; done
  "$PY" "$NOTIFY_PY" "STOPPING=1
STATUS=shutting down" ) &
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$script"
	wait_for_workers 1
	wait_status 5 '.ready == 1'
	touch "$BATS_TEST_TMPDIR/go"
	wait_status 5 '.workers[0].state == "stopping" and .workers[0].status == "shutting down" and .ready == 0'
	run_wp status --check
	assert_failure 1
}

@test "--ready exec: a worker is ready as soon as its command runs" {
	start_wpool -s "$CTL" -n 2 --ready exec -b 127.0.0.1:0 -- "$TESTSRV" --delay-start 3
	NO_HTTP=1 wait_for_workers 2
	# testsrv sleeps 3 s before it listens, but exec succeeded: ready.
	wait_status 2 '.ready == 2 and ([.workers[].state] | unique) == ["ready"]'
}

@test "einhorn: EINHORN_* environment, and a worker:ack line makes the worker ready" {
	local script
	script=$(make_script einhorn.sh <<EOF
#!/bin/sh
while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.02; done
# What an einhorn client does: one JSON line on EINHORN_SOCK_PATH.
"$PY" -c '
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(os.environ["EINHORN_SOCK_PATH"])
s.sendall(json.dumps({"command": "worker:ack", "pid": int(sys.argv[1])}).encode() + b"\n")
print(s.makefile().readline().strip())
' \$\$ >"$BATS_TEST_TMPDIR/ack.\$EINHORN_CHILD_INDEX"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -b 127.0.0.1:0 -- "$script"
	NO_HTTP=1 wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" EINHORN_FD_COUNT)" 2
		assert_equal "$(worker_env "$p" EINHORN_FD_0)" 3
		assert_equal "$(worker_env "$p" EINHORN_FD_1)" 4
		assert_equal "$(worker_env "$p" EINHORN_MASTER_PID)" "$WPOOL_PID"
		assert_equal "$(worker_env "$p" EINHORN_CHILD_INDEX)" "$(worker_env "$p" WPOOL_WORKER_ID)"
		assert_equal "$(worker_env "$p" EINHORN_SOCK_PATH)" "$CTL"
	done
	sleep 0.2
	assert_equal "$(sj .ready)" 0
	touch "$BATS_TEST_TMPDIR/go"
	wait_status 5 '.ready == 2'
	wait_for_file_line "$BATS_TEST_TMPDIR/ack.0" .
	jq -e '.ok == true' "$BATS_TEST_TMPDIR/ack.0" >/dev/null ||
		fail "ack answer: $(cat "$BATS_TEST_TMPDIR/ack.0")"
	wait_for_workers 2
}
