#!/usr/bin/env bats
# -m balance with hostile or hung workers (issue 10, items 1 and 10): a
# worker that passes the master a socket whose close would block; one that
# stops reading its channel, under each balancer; one that closes its
# channel with connections still unread in it; one that floods the master
# with "closed" reports for connections it never had.  Whatever they do,
# the master keeps answering and every connection is served by another
# worker, none is reset or left waiting.  The figures are in
# bench/64-balance-hung.sh.

load ../helpers
load ../balance_helpers

require_root() {
	(($(id -u) == 0)) || skip "machine lacks root for the tests (-u needs it)"
}

# A python worker that serves `id=WPOOL_WORKER_ID`, and on GET /attack
# (from three threads, so that one of them wins the race to close its own
# copy first) passes the master, on its channel, a TCP socket whose close
# blocks: SO_LINGER of 120 s, unsent data, and a peer that never reads.
# Then it closes its copy: if the master's copy is the last one, the
# master's close is the one that waits.  Its stderr says what the kernel did.
ATTACKER='
import errno, json, os, socket, struct, sys, threading
chan = socket.socket(fileno=3)
wid = os.environ.get("WPOOL_WORKER_ID", "?")
keep = []

def attack():
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    l.bind(("127.0.0.1", 0))
    l.listen(1)
    keep.append(l)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.connect(l.getsockname())
    s.setblocking(False)
    try:
        while True:
            s.send(b"x" * 65536)
    except BlockingIOError:
        pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 120))
    try:
        socket.send_fds(chan, [b"{\"type\":\"ready\"}"], [s.fileno()])
        r = "sent"
    except OSError as e:
        r = "refused (%s)" % errno.errorcode.get(e.errno, e.errno)
    print("attacker %s: %s" % (wid, r), file=sys.stderr, flush=True)
    s.close()

while True:
    data, fds, _f, _a = socket.recv_fds(chan, 1024, 1)
    if not data:
        break
    if not fds:
        continue
    meta = json.loads(data)
    c = socket.socket(fileno=fds[0])
    req = c.recv(4096)
    if req.startswith(b"GET /attack"):
        for _ in range(3):
            threading.Thread(target=attack, daemon=True).start()
    body = ("id=%s\n" % wid).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % len(body) + body)
    c.close()
    chan.send(json.dumps({"type": "closed", "id": meta["id"]}).encode())
'

# A python worker that never reads its channel and reports, as fast as the
# master takes them, connections closed that it never had.
FLOODER='
import os, socket
chan = socket.socket(fileno=3)
i = 10 ** 15
while True:
    i += 1
    chan.send(b"{\"type\":\"closed\",\"id\":%d}" % i)
'

# burst_all N OUT [ARGS...]: N connections at once (--timeout 8); fails
# unless every one was answered, saying how many were not.
burst_all() {
	local n=$1 out=$2 ok
	shift 2
	client burst "$PORT" -n "$n" --timeout 8 "$@" >"$out"
	ok=$(grep -c ' ok ' "$out")
	((ok == n)) || log_fail "$(printf '%d of %d connections answered; the others:\n%s' \
		"$ok" "$n" "$(grep -v ' ok ' "$out" | cut -d' ' -f2- | sort | uniq -c | sort -rn | head -5)")"
}

# stop_reading: a keep-alive connection (CONN) to the worker that the
# balancer picks for it, which is then told to stop reading its channel;
# sets HUNG (its id) and HUNG_PID.
stop_reading() {
	hold / || fail "no answer on a held connection"
	HUNG=$(ids_of <<<"$BODY")
	HUNG_PID=$(pids_of <<<"$BODY")
	ask "$CONN" /bad/stopread || fail "no answer to /bad/stopread"
}

@test "a -u nobody worker that passes the master a socket whose close blocks does not freeze it" {
	require_root
	start_wpool -m balance --balancer round-robin -n 2 -u nobody -C / \
		-b 127.0.0.1:0 -- "$PY" -c "$ATTACKER"
	wait_ready 2
	run client get "$PORT" /attack --timeout 5
	assert_output --regexp '^id=[01]$'
	wait_for_log 'attacker [01]: (sent|refused)'
	# A master stuck in close() answers nothing: here it answers at once.
	run timeout -k 1 3 "$WPOOL" status --json
	assert_success
	run client get "$PORT" / -n 4 --timeout 3
	refute_output --partial ERR
	assert_equal "$(ids_of <<<"$output" | sort -u | paste -sd' ')" "0 1"
	run timeout -k 1 3 "$WPOOL" status
	assert_success
}

@test "least-conn: connections sent to a worker that stopped reading are served by another" {
	start_wpool -m balance -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	stop_reading
	# One held by the other worker too: both count one connection, so
	# least-conn sends the hung worker half of them, to wait for ever.
	hold / || fail "no answer on a held connection"
	assert_equal "$(ids_of <<<"$BODY")" "$((1 - HUNG))"
	burst_all 20 "$BATS_TEST_TMPDIR/burst.out"
	refute grep -q "pid=$HUNG_PID " "$BATS_TEST_TMPDIR/burst.out"
	wait_for_log "worker $HUNG \(pid $HUNG_PID\) has left [0-9]+ connections? unread in its channel"
	# It makes no progress: it is replaced, with a line that says why.
	wait_for_log "worker $HUNG \(pid $HUNG_PID\) stopped reading its channel; replacing it"
	wait_st 10 "W[$HUNG]['pid'] != $HUNG_PID and d['ready'] == 2"
	run client get "$PORT" / -n 4
	refute_output --partial ERR
}

@test "round-robin: a worker that stopped reading its channel loses no connection" {
	start_wpool -m balance --balancer round-robin -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	stop_reading
	# More than its channel holds: those in it are taken back, not reset.
	burst_all 400 "$BATS_TEST_TMPDIR/burst.out"
	refute grep -q "pid=$HUNG_PID " "$BATS_TEST_TMPDIR/burst.out"
	wait_st 10 "W[$HUNG]['pid'] != $HUNG_PID and d['ready'] == 2"
	wait_st 5 "d['queue'] == 0 and all(w['connections'] == 0 for w in W.values())"
}

@test "ip-hash: a worker that stopped reading does not black-hole its clients' address" {
	start_wpool -m balance --balancer ip-hash -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	# hold connects from 127.0.0.1: the hung worker is that address's.
	stop_reading
	burst_all 16 "$BATS_TEST_TMPDIR/burst.out"
	assert_equal "$(ids_of <"$BATS_TEST_TMPDIR/burst.out" | sort -u)" "$((1 - HUNG))"
	# Once it is replaced, the address is its slot's again.
	wait_st 10 "W[$HUNG]['pid'] != $HUNG_PID and d['ready'] == 2"
	run client get "$PORT" / -n 3
	refute_output --partial ERR
	assert_equal "$(ids_of <<<"$output" | sort -u)" "$HUNG"
}

@test "a worker that closes its channel with connections unread in it: they are served by another" {
	start_wpool -m balance --balancer round-robin -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	stop_reading
	local c=$CONN
	client_bg "$BATS_TEST_TMPDIR/burst.out" burst "$PORT" -n 12 --timeout 8
	local burst=$BG
	# Some wait in its channel, unread; then it closes it.
	wait_st 5 "W[$HUNG]['connections'] >= 4"
	ask "$c" /bad/closechan || fail "no answer to /bad/closechan"
	wait "$burst"
	local ok
	ok=$(grep -c ' ok ' "$BATS_TEST_TMPDIR/burst.out")
	((ok == 12)) || log_fail "$ok of 12 answered: $(grep -v ' ok ' "$BATS_TEST_TMPDIR/burst.out")"
	refute grep -q "pid=$HUNG_PID " "$BATS_TEST_TMPDIR/burst.out"
	wait_for_log "worker $HUNG \(pid $HUNG_PID\) closed its connection channel"
	wait_st 10 "W[$HUNG]['pid'] != $HUNG_PID and d['ready'] == 2"
}

@test "a worker that reports connections closed that it never had is garbage: no connection is lost to it" {
	# Slot 0 floods; slot 1 serves.  Without the check, the flood keeps
	# the flooder's count at zero, so least-conn sends it half of them.
	start_wpool -m balance -n 2 -b 127.0.0.1:0 -- /bin/sh -c \
		'if [ "$WPOOL_WORKER_ID" = 0 ]; then exec "$1" -c "$2"; fi; exec "$3"' \
		sh "$PY" "$FLOODER" "$BAL_WORKER"
	wait_st 5 "d['alive'] == 2"
	burst_all 100 "$BATS_TEST_TMPDIR/burst.out"
	assert_equal "$(ids_of <"$BATS_TEST_TMPDIR/burst.out" | sort -u)" 1
	wait_for_log 'worker 0 \(pid [0-9]+\) reported connection [0-9]+ closed, which it does not hold'
	wait_for_log 'worker 0 \(pid [0-9]+\) kept sending garbage; replacing it'
	# The master is not busy reading the flood: it answers at once.
	run timeout -k 1 3 "$WPOOL" status
	assert_success
}

@test "a worker holds at most 1024 connections at once: one that never reports them closed gets no more" {
	start_wpool -m balance --balancer round-robin -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	local out x
	out=$(client get "$PORT" /bad/noclosed)
	x=$(ids_of <<<"$out")
	# Every other connection until it holds 1024, then the other worker's.
	client get "$PORT" / -n 2100 --timeout 5 >"$BATS_TEST_TMPDIR/get.out"
	refute grep -q ERR "$BATS_TEST_TMPDIR/get.out"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/get.out")" 2100
	assert_equal "$(ids_of <"$BATS_TEST_TMPDIR/get.out" | grep -cx "$x")" 1023
	wait_st 5 "W[$x]['connections'] == 1024 and W[$((1 - x))]['connections'] == 0"
	kill -0 "$(pid_of_slot "$x")"
}

@test "a worker that is only slow for a while: what waits for it goes elsewhere, and it is not replaced" {
	start_wpool -m balance --balancer round-robin -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	local slow spid
	# One request that blocks its worker (all of it) for 4 s.
	client_bg "$BATS_TEST_TMPDIR/slow.out" get "$PORT" '/work?us=4000000'
	slow=$BG
	wait_st 5 "sum(w['connections'] for w in W.values()) == 1"
	spid=$(st "[w['pid'] for w in W.values() if w['connections'] == 1][0]")
	# Those sent to it meanwhile are answered by the other before it is back.
	burst_all 10 "$BATS_TEST_TMPDIR/burst.out"
	refute grep -q "pid=$spid " "$BATS_TEST_TMPDIR/burst.out"
	awk '$2 == "ok" && $3 > 3.0 { bad = 1 } END { exit bad }' "$BATS_TEST_TMPDIR/burst.out" ||
		log_fail "some waited for the slow worker: $(cat "$BATS_TEST_TMPDIR/burst.out")"
	wait "$slow"
	assert_regex "$(cat "$BATS_TEST_TMPDIR/slow.out")" "^pid=$spid "
	# It reported its connection closed: it gets connections again, and
	# is still there once the time to replace a stuck one is past.
	wait_for_log "worker [01] \(pid $spid\) reported a connection closed: it gets connections again"
	sleep 3
	run client get "$PORT" / -n 4
	assert_equal "$(pids_of <<<"$output" | grep -cx "$spid")" 2
	refute grep -q "pid $spid) stopped reading" "$LOG"
}
