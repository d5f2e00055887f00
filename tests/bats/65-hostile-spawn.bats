#!/usr/bin/env bats
# Hostile starts (issue 10): -u workers must not outlive a master killed
# with KILL (item 4), and a command that dies young of a KILL or TERM
# must back off like any crash loop (item 11).

load ../helpers
load ../private_helpers

teardown() {
	common_teardown
	reachable_cleanup
}

require_root() {
	(($(id -u) == 0)) || skip "machine lacks root for the tests (-u needs it)"
}

# port_answers PORT: whether anything accepts a TCP connection on it.
port_answers() {
	python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
sys.exit(0)
PY
}

# kill_master_expect_gone: KILL the master; its workers (WORKERS) must be
# gone within 5 s and PORT must stop answering.
kill_master_expect_gone() {
	local p deadline
	record_pid "${WORKERS[@]}"
	kill -KILL "$WPOOL_PID"
	wait "$WPOOL_PID" 2>/dev/null || true
	WPOOL_PID=
	deadline=$(deadline_in 5)
	for p in "${WORKERS[@]}"; do
		while alive "$p"; do
			past "$deadline" && fail "worker $p ($(ids_of_uid "$p")) outlived the master killed with KILL by 5 s"
			sleep 0.05
		done
	done
	! port_answers "$PORT" || fail "port $PORT still answers after the master and its workers died"
}

ids_of_uid() {
	awk '$1 == "Uid:" { print "uid " $2 }' "/proc/$1/status" 2>/dev/null
}

@test "-u nobody: workers die when the master is killed with KILL, and the port stops answering" {
	require_root
	reachable_bins
	start_wpool -n 2 -u nobody -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	assert_equal "$(ids_of_uid "${WORKERS[0]}")" "uid $(id -u nobody)"
	port_answers "$PORT" || fail "the pool does not answer on $PORT"
	kill_master_expect_gone
}

@test "without -u: workers die when the master is killed with KILL" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	kill_master_expect_gone
}

# starts_in SECS: how many workers the pool started within SECS of now.
starts_in() {
	local deadline
	deadline=$(deadline_in "$1")
	while ! past "$deadline"; do
		kill -0 "$WPOOL_PID" 2>/dev/null || break
		sleep 0.1
	done
	log_count 'worker 0 started'
}

@test "a command that kills itself with KILL backs off, and the log says OOM?" {
	start_wpool -n 1 -- sh -c 'kill -9 $$'
	local n
	n=$(starts_in 5)
	# 0, 0.1, 0.2, 0.4, 0.8, 1.6 and 3.2 s apart: about 8 in 5 s.  Without
	# the back-off: thousands.
	((n >= 3 && n <= 15)) || log_fail "$n starts in 5 s"
	grep -Eq 'worker 0 \(pid [0-9]+\) killed by signal KILL after 0\.[01]s; restarting now' "$LOG" ||
		log_fail "the first young KILL is not replaced at once"
	grep -Eq 'killed by signal KILL after 0\.[01]s; OOM\? 2 young deaths in a row; restarting in 0\.1s \(crash back-off\)' "$LOG" ||
		log_fail "the second young KILL does not back off, or says nothing of OOM"
}

@test "a command that kills itself with TERM backs off too" {
	start_wpool -n 1 -- sh -c 'kill -TERM $$'
	local n
	n=$(starts_in 5)
	((n >= 3 && n <= 15)) || log_fail "$n starts in 5 s"
	grep -Eq 'killed by signal TERM after 0\.[01]s; 2 young deaths in a row; restarting in 0\.1s \(crash back-off\)' "$LOG" ||
		log_fail "the second young TERM does not back off"
}

@test "the back-off of young kills doubles from --restart-delay" {
	start_wpool -n 1 --restart-delay 0.5 -- sh -c 'kill -9 $$'
	wait_for_log 'restarting in 1\.0s \(crash back-off\)' 8
	grep -Eq 'KILL after 0\.[01]s; restarting in 0\.5s$' "$LOG" ||
		log_fail "the first young KILL does not wait --restart-delay"
	grep -Eq 'OOM\? 2 young deaths in a row; restarting in 0\.5s \(crash back-off\)' "$LOG" ||
		log_fail "the back-off does not start from --restart-delay"
}
