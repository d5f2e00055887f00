#!/usr/bin/env bats
# udp://HOST:PORT listeners: a pool of datagram workers, in shared mode (one
# socket for all) and in reuseport mode (one socket per slot, kept across
# restarts, so datagrams queued on a dead worker's socket are answered by
# its successor).

load ../helpers
load ../reuseport_helpers

setup() {
	rp_setup
	ECHO="$BATS_TEST_TMPDIR/udp_echo.py"
	# The worker: echoes every datagram on fd 3 with its pid and slot.
	cat >"$ECHO" <<'EOF'
import os, socket, sys
fds = int(os.environ.get("LISTEN_FDS", "1"))
s = socket.socket(fileno=3)
assert s.type == socket.SOCK_DGRAM, s.type
tag = "pid=%d id=%s" % (os.getpid(), os.environ.get("WPOOL_WORKER_ID"))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(tag.encode() + b" " + data, peer)
EOF
}

teardown() {
	rp_teardown
}

# udp_ask PORT SOCKETS PER_SOCKET [TIMEOUT]: sends SOCKETS*PER_SOCKET
# numbered datagrams to 127.0.0.1:PORT from SOCKETS client sockets bound to
# 127.0.0.1 and collects the answers; prints `answered=N` then one line per
# answering pid: `PID COUNT`.  Unanswered datagrams are not resent.
udp_ask() {
	python3 - "$@" <<'EOF'
import collections, select, socket, sys, time
port, nsock, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
socks = []
for i in range(nsock):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    socks.append(c)
want = {}
for i, c in enumerate(socks):
    for k in range(per):
        msg = "m%d.%d" % (i, k)
        want[msg] = None
        c.sendto(msg.encode(), ("127.0.0.1", port))
got = collections.Counter()
end = time.time() + timeout
while any(v is None for v in want.values()) and time.time() < end:
    r, _, _ = select.select(socks, [], [], max(0.0, end - time.time()))
    for c in r:
        data, peer = c.recvfrom(2048)
        assert peer == ("127.0.0.1", port), peer
        parts = data.decode().split()
        pid, msg = parts[0][4:], parts[-1]
        if msg in want and want[msg] is None:
            want[msg] = pid
            got[pid] += 1
print("answered=%d" % sum(got.values()))
for pid, n in sorted(got.items()):
    print(pid, n)
EOF
}

@test "udp, shared mode: one socket, every datagram from 127.0.0.1 answered" {
	start_wpool -m shared -n 2 -b udp://127.0.0.1:0 -- python3 "$ECHO"
	NO_HTTP=1 wait_for_workers 2
	[[ ${LISTEN_ADDRS[0]} == udp://127.0.0.1:* ]] ||
		log_fail "the listening line does not say udp://: ${LISTEN_ADDRS[0]}"
	# One socket, held by the master and both workers.
	assert_equal "$(udp_lines "$PORT" | wc -l)" 1
	local p
	for p in "${WORKERS[@]}" "$WPOOL_PID"; do
		udp_lines "$PORT" | grep -q "pid=$p," ||
			log_fail "pid $p does not hold the socket: $(udp_lines "$PORT")"
	done
	run udp_ask "$PORT" 4 5
	assert_success
	assert_line --index 0 answered=20
	local pid
	for pid in $(tail -n +2 <<<"$output" | cut -d' ' -f1); do
		[[ " ${WORKERS[*]} " == *" $pid "* ]] || fail "answer from a stranger: $pid"
	done
	run --separate-stderr status_json
	assert_equal "$(jq_py 'j["listeners"][0]["address"]' <<<"$output")" "udp://127.0.0.1:$PORT"
}

@test "udp, reuseport mode: one socket per worker, datagrams spread and answered" {
	start_wpool -m reuseport -n 3 -b udp://127.0.0.1:0 -- python3 "$ECHO"
	NO_HTTP=1 wait_for_workers 3
	assert_equal "$(udp_lines "$PORT" | wc -l)" 3
	local p inodes=()
	for p in "${WORKERS[@]}"; do
		assert_equal "$(udp_lines "$PORT" | grep -c "pid=$p,")" 1
		udp_lines "$PORT" | grep "pid=$p," | grep -q "pid=$WPOOL_PID," ||
			log_fail "the master does not hold worker $p's socket"
		inodes+=("$(sock_inode "$p" 3)")
	done
	assert_equal "$(printf '%s\n' "${inodes[@]}" | sort -u | wc -l)" 3
	run udp_ask "$PORT" 16 4
	assert_success
	assert_line --index 0 answered=64
	# 16 client sockets: more than one worker answers.
	(($(tail -n +2 <<<"$output" | wc -l) >= 2)) ||
		fail "one worker answered everything: $output"
}

@test "udp, reuseport mode: datagrams queued on a killed worker's socket are answered by its successor" {
	start_wpool -m reuseport -n 3 -b udp://127.0.0.1:0 -- python3 "$ECHO"
	NO_HTTP=1 wait_for_workers 3
	local old ino new q
	# The worker of slot 1.
	for old in "${WORKERS[@]}"; do
		[[ $(worker_env "$old" WPOOL_WORKER_ID) == 1 ]] && break
	done
	ino=$(sock_inode "$old" 3)
	kill -STOP "$old"
	udp_ask "$PORT" 30 2 10 >"$BATS_TEST_TMPDIR/ask.out" 3>&- &
	local ask=$!
	record_pid "$ask"
	# Datagrams wait in the stopped worker's socket.
	wait_until 5 eval '[[ $(udp_lines '"$PORT"' | grep "pid='"$old"'," | awk "{print \$2}") -gt 0 ]]'
	q=$(udp_lines "$PORT" | grep "pid=$old," | awk '{print $2}')
	kill -KILL "$old"
	wait_for_log "worker 1 \(pid $old\) killed by signal KILL"
	wait "$ask"
	run cat "$BATS_TEST_TMPDIR/ask.out"
	assert_line --index 0 answered=60
	new=$(sed -nE 's/.*worker 1 started \(pid ([0-9]+),.*/\1/p' "$LOG" | tail -1)
	assert_equal "$(sock_inode "$new" 3)" "$ino"
	assert_line --regexp "^$new [0-9]+\$"
	echo "# $q bytes were queued on the killed worker's socket" >&3
}

@test "udp, reuseport mode: each client's datagrams keep to one worker" {
	start_wpool -m reuseport -n 3 -b udp://127.0.0.1:0 -- python3 "$ECHO"
	NO_HTTP=1 wait_for_workers 3
	# 24 client sockets, 6 datagrams each, one after another: every
	# answer to one client comes from the same pid (the kernel's own
	# reuseport hash does this too; a random pick would not).
	run python3 - "$PORT" <<'EOF'
import socket, sys
port = int(sys.argv[1])
spread = set()
for i in range(24):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.settimeout(5)
    pids = set()
    for k in range(6):
        c.sendto(b"m%d.%d" % (i, k), ("127.0.0.1", port))
        pids.add(c.recvfrom(2048)[0].split()[0])
    if len(pids) != 1:
        print("client %d answered by %s" % (i, sorted(pids)))
    spread |= pids
    c.close()
print("workers=%d" % len(spread))
EOF
	assert_success
	refute_output --partial "answered by"
	# ... and the clients are spread over more than one worker.
	assert_output --regexp '^workers=[23]$'
}

@test "udp, reuseport mode: scaling down serves the datagrams queued on the removed slot" {
	start_wpool -m reuseport -n 2 -b udp://127.0.0.1:0 -- python3 "$ECHO"
	NO_HTTP=1 wait_for_workers 2
	local w1 q
	for w1 in "${WORKERS[@]}"; do
		[[ $(worker_env "$w1" WPOOL_WORKER_ID) == 1 ]] && break
	done
	kill -STOP "$w1"
	udp_ask "$PORT" 40 2 15 >"$BATS_TEST_TMPDIR/ask.out" 3>&- &
	local ask=$!
	record_pid "$ask"
	# Datagrams wait in the stopped worker's socket.
	wait_until 5 eval '[[ $(udp_lines '"$PORT"' | grep "pid='"$w1"'," | awk "{print \$2}") -gt 0 ]]'
	q=$(udp_lines "$PORT" | grep "pid=$w1," | awk '{print $2}')
	run "$WPOOL" scale 1 3>&-
	assert_success
	sleep 0.3
	# Still there: wpool waits for its socket to empty.
	alive "$w1" || fail "slot 1's worker was stopped while datagrams waited on its socket"
	kill -CONT "$w1"
	wait_gone "$w1"
	wait "$ask"
	run cat "$BATS_TEST_TMPDIR/ask.out"
	assert_line --index 0 answered=80
	assert_line --regexp "^$w1 [0-9]+\$"
	echo "# $q bytes were queued on the removed slot's socket" >&3
}

@test "udp and tcp listeners together in reuseport mode (testsrv answers both)" {
	start_wpool -m reuseport -n 2 -b 127.0.0.1:0,name=web -b udp://127.0.0.1:0,name=dns -- "$TESTSRV"
	wait_for_workers 2
	local up=${PORTS[1]} p
	assert_equal "$(count_tcp_listeners "$PORT")" 2
	assert_equal "$(udp_lines "$up" | wc -l)" 2
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" web:dns
	done
	run python3 - "$up" <<'EOF'
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
c.sendto(b"GET /id", ("127.0.0.1", int(sys.argv[1])))
print(c.recvfrom(2048)[0].decode().strip())
EOF
	assert_success
	assert_output --regexp '^[01]$'
}
