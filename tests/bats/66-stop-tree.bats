#!/usr/bin/env bats
# Nothing of the pool is left after it stops (issue 11): the workers'
# whole trees, and what the master adopted as subreaper, get the stop
# signal, then KILL after --stop-timeout, and the master exits only once
# it has no child left.

load ../helpers

# descendants_of PID: every live process below PID, one pid a line.
descendants_of() {
	local p
	for p in $(children_of "$1"); do
		echo "$p"
		descendants_of "$p"
	done
}

# tree_snapshot: TREE = every process below wpool (recorded for teardown).
tree_snapshot() {
	mapfile -t TREE < <(descendants_of "$WPOOL_PID")
	record_pid "${TREE[@]}"
}

# wait_tree N: until wpool has at least N processes below it.
wait_tree() {
	local deadline
	deadline=$(deadline_in 10)
	while tree_snapshot; ((${#TREE[@]} < $1)); do
		past "$deadline" && log_fail "only ${#TREE[@]} of $1 processes below wpool: ${TREE[*]}"
		sleep 0.05
	done
}

# wpool_stop_client: `wpool stop`, which must say stopped and exit 0.
wpool_stop_client() {
	run --separate-stderr without_fd3 timeout -k 2 20 "$WPOOL" stop
	assert_success
	assert_output --partial stopped
}

# expect_nothing_left: the master and every process of TREE are gone,
# and nothing answers on PORT any more.
expect_nothing_left() {
	wait_wpool_exit 10
	local p left=()
	for p in "${TREE[@]}"; do
		[[ -e /proc/$p ]] && left+=("$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)")
	done
	((${#left[@]} == 0)) || log_fail "left after the pool stopped: ${left[*]}"
	if [[ -n $PORT ]]; then
		! curl -s --max-time 2 "http://127.0.0.1:$PORT/" >/dev/null ||
			log_fail "port $PORT still answers after the pool stopped"
	fi
}

@test "sh -c 'sleep & exec server': the worker's child stops with the pool" {
	start_wpool -n 1 -b 127.0.0.1:0 -- sh -c 'sleep 1000 & exec "$0"' "$TESTSRV"
	wait_for_workers 1
	wait_tree 2
	wpool_stop_client
	expect_nothing_left
}

@test "a double-forked daemon (setsid) adopted by the master gets the stop signal" {
	start_wpool -n 1 -b 127.0.0.1:0 -- sh -c '( setsid "$0" & ) ; exec sleep 1000' "$TESTSRV"
	wait_tree 2
	local daemon p
	for p in $(children_of "$WPOOL_PID"); do
		[[ $(readlink "/proc/$p/exe") == "$TESTSRV" ]] && daemon=$p
	done
	[[ -n $daemon ]] || log_fail "the daemon was not adopted by the master"
	[[ $(proc_stat_field "$daemon" 6) == "$daemon" ]] || log_fail "the daemon did not setsid"
	curl -sf --max-time 5 "http://127.0.0.1:$PORT/" >/dev/null || log_fail "the daemon does not serve"
	wpool_stop_client
	expect_nothing_left
	grep -Eq 'sending TERM to [0-9]+ process(es)? the workers left behind' "$LOG" ||
		log_fail "the daemon was not sent the stop signal"
}

@test "children that ignore TERM are KILLed after --stop-timeout, inside the group and out of it" {
	start_wpool -n 1 --stop-timeout 1 -- sh -c \
		'trap "" TERM; sleep 1000 & ( setsid sleep 1001 & ) ; exec sleep 1002'
	wait_tree 3
	local t0
	t0=$(now_us)
	wpool_stop_client
	expect_nothing_left
	(($(elapsed_ms "$t0") >= 900)) || log_fail "stopped after $(elapsed_ms "$t0") ms: no --stop-timeout?"
	grep -Eq 'left behind did not stop within 1s; sending KILL|did not stop within 1s; sending KILL' "$LOG" ||
		log_fail "no KILL was logged"
}

@test "--no-restart: sh -c 'server & exit 0' ends, and so does the server it left" {
	start_wpool --no-restart -n 1 -b 127.0.0.1:0 -- sh -c '"$0" & exit 0' "$TESTSRV"
	local deadline
	deadline=$(deadline_in 5)
	while tree_snapshot; ((${#TREE[@]} < 1)) && kill -0 "$WPOOL_PID" 2>/dev/null; do
		past "$deadline" && break
		sleep 0.02
	done
	expect_nothing_left
	assert_equal "$WPOOL_STATUS" 0
}

@test "a worker's own master killed with KILL: its adopted children stop with the pool" {
	# The shape of nginx or gunicorn: a master (sh) whose children serve.
	start_wpool -n 1 -b 127.0.0.1:0 -- sh -c '"$0" & "$0" & wait' "$TESTSRV"
	wait_tree 3
	local sh_pid
	sh_pid=$(worker_pids | head -1)
	kill -KILL "$sh_pid"
	wait_for_log "worker 0 \\(pid $sh_pid\\) killed by signal KILL"
	# Its two children were stopped at its death (70-leftovers.bats):
	# the new sh and its two are what the pool stops.
	wait_tree 3
	curl -sf --max-time 5 "http://127.0.0.1:$PORT/" >/dev/null || log_fail "nothing serves"
	wpool_stop_client
	expect_nothing_left
}

@test "Ctrl-C in a terminal reaches the master, which stops every worker's group" {
	local out=$BATS_TEST_TMPDIR/pty.out
	# wpool in the foreground of a new terminal; ^C typed once it runs.
	run without_fd3 timeout -k 2 30 python3 - "$WPOOL" "$out" <<'PY'
import os, pty, sys, time, select
wpool, out = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(wpool, [wpool, "-n", "2", "--", "sh", "-c",
                     "sleep 1000 & exec sleep 1001"])
buf = b""
def read_for(secs, until):
    global buf
    end = time.time() + secs
    while time.time() < end and until not in buf:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
def below(p):
    kids = []
    for d in os.listdir("/proc"):
        try:
            st = open("/proc/%s/stat" % d).read()
        except (OSError, ValueError):
            continue
        f = st[st.rindex(")") + 2:].split()
        if int(f[1]) == p and f[0] != "Z":
            kids.append(int(d))
            kids += below(int(d))
    return kids
read_for(10, b"worker 1 started")
tree = []
end = time.time() + 10
while len(tree) < 4 and time.time() < end:
    time.sleep(0.05)
    tree = below(pid)
os.write(fd, b"\x03")
read_for(15, b"stopped")
_, st = os.waitpid(pid, 0)
left = [p for p in tree if os.path.exists("/proc/%d" % p)]
for p in left:
    os.kill(p, 9)
open(out, "wb").write(buf + b"\nTREE %d LEFT %r EXIT %d\n" % (
    len(tree), left, os.waitstatus_to_exitcode(st)))
PY
	cat "$out"
	grep -q 'stopping (SIGINT)' "$out" || fail "the master did not get the Ctrl-C"
	grep -q '^TREE 4 LEFT \[\] EXIT 0$' "$out" || fail "something was left, or wpool did not exit 0"
	# The workers got the stop signal from the master, not INT from the tty.
	assert_equal "$(grep -c 'killed by signal TERM' "$out")" 2
}

# port_free PORT: whether 127.0.0.1:PORT can be bound again.
port_free() {
	python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

@test "nginx whose master was killed with KILL: wpool stop leaves the port free and no process" {
	local nginx=$NGINX_BIN port dir=$BATS_TEST_TMPDIR/nginx
	port=$(free_tcp_port)
	nginx_conf "$dir" "$port"
	start_wpool -n 1 --stop-signal QUIT -e 'NGINX=3;' -b "127.0.0.1:$port" -- \
		"$nginx" -p "$dir" -c "$dir/nginx.conf" -e stderr
	local deadline master
	deadline=$(deadline_in 10)
	until [[ $(curl -s --max-time 2 "http://127.0.0.1:$port/") =~ ^[0-9]+$ ]]; do
		past "$deadline" && log_fail "nginx does not answer on $port"
		sleep 0.1
	done
	wait_tree 3
	master=$(worker_pids | head -1)
	kill -KILL "$master"
	wait_for_log "worker 0 \\(pid $master\\) killed by signal KILL"
	wait_for_log_count 'worker 0 started' 2
	# The old master's workers were stopped at its death
	# (70-leftovers.bats): the new nginx is what the pool stops.
	wait_tree 3
	[[ $(curl -s --max-time 2 "http://127.0.0.1:$port/") =~ ^[0-9]+$ ]] || log_fail "nginx does not answer after the kill"
	wpool_stop_client
	expect_nothing_left
	port_free "$port" || log_fail "port $port is still in use after the pool stopped"
}
