#!/usr/bin/env bats
# Resource exhaustion.  At the open-files limit wpool refuses what it cannot
# do with a message that says why, keeps serving, keeps answering, and
# recovers once fds are back; a fork that fails (pids cgroup limit,
# RLIMIT_NPROC) is logged with its reason and retried with back-off, and
# the pool fills up again once processes may be created.

load ../helpers
load ../hardening_helpers
load ../private_helpers

NPROC_UID=64123		# an unused uid: RLIMIT_NPROC counts all of a uid's processes

hardening_setup_extra() {
	SHARED_TMP=
}

setup() {
	hardening_setup
	hardening_setup_extra
}

teardown() {
	hardening_teardown
	[[ -n $SHARED_TMP && -d $SHARED_TMP ]] && rm -rf -- "$SHARED_TMP"
	reachable_cleanup
	return 0
}

# cpu_ms_over PID SECS: CPU time PID used over SECS, in ms.
cpu_ms_over() {
	local a b hz
	hz=$(getconf CLK_TCK)
	a=$(cpu_ticks "$1")
	sleep "$2"
	b=$(cpu_ticks "$1")
	echo $(((b - a) * 1000 / hz))
}

# master_quiet_after REGEX FILE SETTLE WHY: once FILE has a line matching
# REGEX and SETTLE seconds passed, the master uses under 300 ms of CPU in
# the next second (a spin is about 1000).
master_quiet_after() {
	local ms
	wait_until 15 grep -q "$1" "$2"
	sleep "$3"
	ms=$(cpu_ms_over "$WPOOL_PID" 1)
	((ms < 300)) || log_fail "the master used $ms ms of CPU in 1 s $4"
}

# ctl_status: `wpool status` bounded; fails the test if it hangs.
ctl_status() {
	without_fd3 timeout -k 1 "${1:-10}" "$WPOOL" status >/dev/null ||
		log_fail "wpool status failed or hung"
}

@test "open-files limit, many workers: a worker that cannot get its fds is refused clearly and retried; the rest serve" {
	# 24 fds, and --log-prefix costs the master two pipes per worker:
	# 12 workers cannot all have theirs.  (An inherited fd, as a shell or
	# a test runner leaves, takes one more.)
	WPOOL_PREFIX=(prlimit --nofile=24:24)
	start_wpool -n 12 --log-prefix --max-restart-delay 2 -b 127.0.0.1:0 -- "$TESTSRV" 4>/dev/null
	wait_for_log 'Too many open files'
	sleep 0.5
	alive "$WPOOL_PID" || log_fail "wpool died at the fd limit"
	# The reason is said, and the slot is retried, backing off.
	grep -Eq 'worker [0-9]+: cannot fork: Too many open files|worker [0-9]+ \(pid [0-9]+\): cannot set up file descriptors .*Too many open files' "$LOG" ||
		log_fail "no clear message"
	wait_for_log 'worker [0-9]+: retrying in 0\.2s|restarting in 0\.2s'
	# What fits serves, and the master answers, without spinning.
	wait_until 10 eval 'curl -s -m 1 "http://127.0.0.1:$PORT/" | grep -Eq "^pid=[0-9]+ id=[0-9]+ gen=0$"'
	ctl_status
	local ms
	ms=$(cpu_ms_over "$WPOOL_PID" 1)
	((ms < 300)) || log_fail "the master used $ms ms of CPU in 1 s at the fd limit"
	# Asking only for what fits: the slots still retrying are dropped and
	# the pool is consistent.
	without_fd3 timeout 10 "$WPOOL" scale 1 >/dev/null || log_fail "scale 1 failed"
	wait_pool_settled 1 15
}

@test "open-files limit too low for most workers: wpool keeps retrying, it does not quit as if the command could not run" {
	# 20 fds with an inherited one, and two pipes per worker: most forks
	# fail for want of fds.  That is a shortage, not a command that
	# cannot run: no exit 1/126/127.
	WPOOL_PREFIX=(prlimit --nofile=20:20)
	start_wpool -n 12 --log-prefix --max-restart-delay 1 -b 127.0.0.1:0 -- "$TESTSRV" 4>/dev/null
	wait_for_log 'Too many open files'
	sleep 1.5
	alive "$WPOOL_PID" || log_fail "wpool gave up at the fd limit"
	refute grep -E 'error: cannot' "$LOG"
	ctl_status
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
}

@test "open-files limit just above the master's own fds: a replaced worker still gets its fds" {
	# reuseport, 12 slots, 2 listeners: 24 slot sockets in the master.
	# Its limit is then lowered to 4 above the fds it has open.  A child
	# must arrange its 5 fds without numbers above the master's highest
	# (before, it copied them all above it first: EMFILE before exec).
	start_wpool -m reuseport -n 12 --max-restart-delay 1 \
		-b 127.0.0.1:0 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 12
	local n lim round old new
	n=$(ls "/proc/$WPOOL_PID/fd" | wc -l)
	lim=$((n + 4))
	prlimit --pid "$WPOOL_PID" --nofile="$lim:$lim"
	for round in 1 2 3; do
		# Slot 11 holds the master's newest sockets, so the highest fds.
		old=$(without_fd3 "$WPOOL" status --json | jq -r '.workers[] | select(.id == 11) | .pid')
		[[ $old =~ ^[0-9]+$ ]] || log_fail "no worker in slot 11"
		kill -KILL "$old"
		wait_until 10 eval 'new=$(without_fd3 "$WPOOL" status --json |
			jq -r ".workers[] | select(.id == 11 and .state == \"ready\") | .pid");
			[[ -n $new && $new != '"$old"' ]]'
	done
	refute grep -E 'cannot set up file descriptors' "$LOG"
	echo "# master: $n fds open, limit $lim" >&3
}

@test "open-files limit, many clients (balance mode): accept pauses with a message; every client is served once fds are back" {
	[[ -x $BAL_WORKER && -x $RP_LOAD ]] || fail "no bal_worker/rp_load (make test-bins)"
	start_wpool -m balance -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_pool_settled 2
	# The master, and only it, out of fds: its soft limit down to the
	# lowest fd it does not use.
	local soft lim
	soft=$(prlimit --pid "$WPOOL_PID" --nofile --noheadings --output SOFT --raw)
	lim=$(lowest_free_fd "$WPOOL_PID")
	prlimit --pid "$WPOOL_PID" --nofile="$lim:" || fail "prlimit --pid failed"
	bg_job "$RP_LOAD" -p "$PORT" -r 0 -c 20 -n 60 -t 15000 \
		>"$BATS_TEST_TMPDIR/load.out" 2>&1
	local load=$BG_JOB
	wait_for_log 'cannot accept: Too many open files'
	local ms
	ms=$(cpu_ms_over "$WPOOL_PID" 1)
	((ms < 300)) || log_fail "the master used $ms ms of CPU in 1 s at the fd limit"
	alive "$WPOOL_PID" || log_fail "wpool died at the fd limit"
	# The clients wait in the backlog: none is refused or dropped.
	prlimit --pid "$WPOOL_PID" --nofile="$soft:" || fail "prlimit --pid failed"
	wait "$load" || true
	BG_JOBS=()
	local out
	out=$(cat "$BATS_TEST_TMPDIR/load.out")
	echo "# $out" >&3
	[[ $out =~ sent=60\ ok=60\ reset=0\ refused=0 ]] || log_fail "clients lost: $out"
	wait_pool_settled 2
}

# HOLD_CLIENTS_PY SOCK N STOPFILE: N idle connections to the control socket,
# held until STOPFILE exists (or 20 s); prints how many connected.
HOLD_CLIENTS_PY='
import os, socket, sys, time
path, n, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
held = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        break
    held.append(s)
print("connected %d" % len(held), flush=True)
end = time.time() + 20
while time.time() < end and not os.path.exists(stop):
    time.sleep(0.02)
'

@test "open-files limit, many control clients: a worker restart is refused with the reason, retried, and done once fds are free" {
	WPOOL_PREFIX=(prlimit --nofile=40:40)
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_pool_settled 2
	wait_for_workers 2
	# 60 idle clients: more than the master has fds for.
	bg_job "$PY" -c "$HOLD_CLIENTS_PY" "$WPOOL_CONTROL" 60 "$BATS_TEST_TMPDIR/stop" \
		>"$BATS_TEST_TMPDIR/clients.out" 2>&1
	wait_for_log 'control: out of file descriptors'
	# Waiting for an fd is no reason to spin (checked first, briefly: a
	# master that spins also floods its log).
	local ms
	ms=$(cpu_ms_over "$WPOOL_PID" 0.5)
	((ms < 150)) || fail "$(printf 'the master used %s ms of CPU in 0.5 s waiting for an fd; %s log lines; the first:\n%s' \
		"$ms" "$(wc -l <"$LOG")" "$(head -n 12 "$LOG")")"
	# A worker dies: its successor cannot be started for now.
	local victim=${WORKERS[0]}
	kill -KILL "$victim"
	wait_for_log 'worker [0-9]+: cannot fork: Too many open files'
	wait_for_log 'worker [0-9]+: retrying in'
	# The other worker serves.
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-9]+ gen=0$'
	# The clients go: the slot is refilled, status answers.
	touch "$BATS_TEST_TMPDIR/stop"
	wait_pool_settled 2 10
	ctl_status
	local waits
	waits=$(log_count 'control: out of file descriptors')
	((waits <= 50)) || log_fail "$waits 'out of file descriptors' lines"
}

@test "control and --metrics clients beyond their limits wait in the backlog; the master does not spin" {
	ulimit -n 12000
	start_wpool -n 1 --metrics 127.0.0.1:0 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local mp
	mp=$(sed -nE 's|.*metrics on http://127\.0\.0\.1:([0-9]+)/metrics.*|\1|p' "$LOG" | head -1)
	[[ -n $mp ]] || log_fail "no metrics port"
	# 300 idle HTTP connections (the limit is 256) and 4200 idle control
	# connections (the limit is 4096), held for 4 s.
	python3 - "$mp" "$WPOOL_CONTROL" >"$BATS_TEST_TMPDIR/flood.out" 2>&1 3>&- <<'EOF' &
import socket, sys, time
held = []
for i in range(300):
    held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
for i in range(4200):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[2])
    held.append(s)
print("held", len(held), flush=True)
time.sleep(4)
EOF
	record_pid $!
	master_quiet_after '^held 4500' "$BATS_TEST_TMPDIR/flood.out" 0.3 \
		"with clients over its limits"
	wait_for_log 'control: 4096 clients connected; others wait'
	# Once they are gone, both answer again.
	wait_until 15 eval 'without_fd3 timeout 2 "$WPOOL" status >/dev/null'
	run curl -sS --max-time 5 "http://127.0.0.1:$mp/metrics"
	assert_success
	assert_line --partial 'wpool_workers_ready{pool="wpool"} 1'
}

@test "a control client that asks faster than it reads is dropped; the master does not spin" {
	start_wpool -n 4 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 4
	# 600 status requests it never reads (more answers than the socket
	# holds wait in the master), then a line over 64 KiB: the master
	# answers "too large" and stops reading.  Waiting to write, it must
	# not keep waking up for the input it no longer reads (before the
	# fix it did, until the client's 5 s timeout).
	python3 - "$WPOOL_CONTROL" >"$BATS_TEST_TMPDIR/greedy.out" 2>&1 3>&- <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(3)
try:
    s.sendall(b'{"cmd":"status"}\n' * 600 + b"x" * 70000)
except (socket.timeout, OSError):
    pass
print("sent", flush=True)
time.sleep(8)
EOF
	record_pid $!
	master_quiet_after '^sent' "$BATS_TEST_TMPDIR/greedy.out" 0.5 \
		"with a client that does not read"
	ctl_status
}

@test "fork fails (pids cgroup limit): logged with the reason, retried with back-off, refilled when allowed" {
	cgroup_create 4 || skip "machine lacks a writable pids cgroup controller"
	# wpool + 3 workers fit; 6 are asked for.
	WPOOL_PREFIX=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CGROUP_DIR")
	start_wpool -n 6 --max-restart-delay 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_log 'worker [0-9]+: cannot fork: Resource temporarily unavailable'
	# Back-off: the same slot retried after 0.1 s, then 0.2 s, 0.4 s...
	wait_for_log 'worker 5: retrying in 0\.4s' 5
	local slot5
	slot5=$(grep -Eo 'worker 5: retrying in [0-9.]+s' "$LOG" | head -n3 | grep -Eo '[0-9.]+s$' | paste -sd' ')
	assert_equal "$slot5" "0.1s 0.2s 0.4s"
	# What could start serves; status shows the rest waiting.
	alive "$WPOOL_PID" || log_fail "wpool died"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-9]+ gen=0$'
	local j
	j=$(pool_json)
	assert_equal "$(jget "$j" 'j["alive"]')" 3
	assert_equal "$(jget "$j" 'sorted(w["state"] for w in j["workers"] if w["pid"] is None or w["state"] == "backoff").count("backoff")')" 3
	local ms
	ms=$(cpu_ms_over "$WPOOL_PID" 1)
	((ms < 300)) || log_fail "the master used $ms ms of CPU in 1 s"
	# Room again: the pool fills up within the back-off cap (1 s).
	echo max >"$CGROUP_DIR/pids.max"
	wait_pool_settled 6 10
}

@test "fork fails (RLIMIT_NPROC, unprivileged): logged with the reason, retried, refilled when allowed" {
	command -v setpriv >/dev/null || skip "machine lacks setpriv"
	command -v prlimit >/dev/null || skip "machine lacks prlimit"
	# Nothing else runs as this uid (RLIMIT_NPROC counts all its processes).
	[[ -z $(ps -o pid= -u "$NPROC_UID" 2>/dev/null) ]] || fail "uid $NPROC_UID is in use"
	# wpool and its workers run as that uid: binaries it can reach.
	reachable_bins
	SHARED_TMP=$(mktemp -d /tmp/wpool-nproc.XXXXXX)
	chmod 0755 "$SHARED_TMP"
	chown "$NPROC_UID:$NPROC_UID" "$SHARED_TMP"
	export WPOOL_CONTROL="$SHARED_TMP/ctl.sock"
	cd "$SHARED_TMP"
	# wpool + 3 workers = 4 processes of that uid; 5 workers asked for.
	WPOOL_PREFIX=(setpriv --reuid="$NPROC_UID" --regid="$NPROC_UID" --clear-groups
		prlimit --nproc=4:4)
	start_wpool -n 5 --max-restart-delay 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_log 'worker [0-9]+: cannot fork: Resource temporarily unavailable'
	wait_for_log 'worker [34]: retrying in 0\.2s' 5
	alive "$WPOOL_PID" || log_fail "wpool died"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-9]+ gen=0$'
	assert_equal "$(jget "$(pool_json)" 'j["alive"]')" 3
	# Fewer workers asked for: what fits, consistent.
	without_fd3 timeout 10 "$WPOOL" scale 3 >/dev/null || log_fail "scale 3 failed"
	wait_pool_settled 3 10
	# A worker killed now is restarted (3 processes of 4 allowed, plus
	# the one dying).
	kill -KILL "$(worker_pids | head -n1)"
	sleep 0.2
	wait_pool_settled 3 10
}
