#!/usr/bin/env bash
# 64-balance-hung: balance mode with a hung or hostile worker (issue 10),
# this build against a base build, in one run.
#
# Scenarios, 2 workers (tests/bin/bal_worker), each under both builds:
#   rr     --balancer round-robin; one worker stops reading its channel
#          (GET /bad/stopread); then RR_N connections at once
#   lc     least-conn; one worker stops reading, each holds one keep-alive
#          connection; then 20 connections at once
#   ip     ip-hash; the worker of 127.0.0.1 stops reading; then 16
#          connections at once from 127.0.0.1
#   close  round-robin; one worker stops reading, 12 connections at once,
#          then (0.5 s later) it closes its channel
# Each prints how many connections were answered, reset (or closed without
# an answer), and still waiting after WAIT seconds (the client gives up).
#   flood  3 workers, least-conn, wrk -c32 `Connection: close` for DURATION
#          s; worker 0 is a python worker that never reads its channel and
#          reports connections closed that it never had, as fast as the
#          master reads (so that its count of open connections stays at
#          zero where ids are not checked); against the same pool with a
#          python worker 0 that serves.  ratio = flooded / quiet, per build.
#
# The base build: BASE=path/to/wpool (default /tmp/balance-base/wpool,
# made with `git worktree add /tmp/balance-base a880363; make -C
# /tmp/balance-base wpool test-bins`); without it only this build runs.
# Env: QUICK=1, WAIT=SEC (default 6), RR_N (default 1000), DURATION (3).
. "$(dirname "$0")/lib.sh"

WAIT=${WAIT:-6}
RR_N=${RR_N:-1000}
if [ -n "$QUICK" ]; then
	DURATION=${DURATION:-2}
else
	DURATION=${DURATION:-3}
fi
BASE=${BASE:-/tmp/balance-base/wpool}
WORKER=$ROOT/tests/bin/bal_worker
CLIENT=$ROOT/tests/bin/bal_client.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
[ -x "$WORKER" ] || die "$WORKER not built (make test-bins)"
BUILDS=(new)
if [ -x "$BASE" ]; then
	BUILDS=(base new)
	echo "# base: $BASE ($("$BASE" --version 2>&1 | head -n1))"
else
	echo "# no base build at $BASE: this build only"
fi

# A python worker: serves `id=N`, reports each connection closed; with
# FLOOD=1 it reports connections closed that it never had, and reads
# nothing.
cat >"$TMP/pyworker.py" <<'EOF'
import json, os, socket
chan = socket.socket(fileno=3)
wid = os.environ.get("WPOOL_WORKER_ID", "?")
i = 10 ** 15
while os.environ.get("FLOOD") == "1":
    i += 1
    chan.send(b'{"type":"closed","id":%d}' % i)
while True:
    data, fds, _f, _a = socket.recv_fds(chan, 1024, 1)
    if not data:
        break
    if not fds:
        continue
    meta = json.loads(data)
    c = socket.socket(fileno=fds[0])
    try:
        c.recv(4096)
        body = ("id=%s\n" % wid).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % len(body) + body)
    except OSError:
        pass
    c.close()
    chan.send(json.dumps({"type": "closed", "id": meta["id"]}).encode())
EOF

# wpool_of BUILD: its binary.
wpool_of() {
	if [ "$1" = base ]; then echo "$BASE"; else echo "$WPOOL"; fi
}

# start BUILD NAME N ARGS... -- CMD: a pool; sets PID, PORT, SOCK.
start() {
	local bin name=$2 n=$3
	bin=$(wpool_of "$1")
	shift 3
	SOCK=$TMP/$name.sock
	bg "$TMP/$name.log" "$bin" -m balance -n "$n" -b 127.0.0.1:0 -s "$SOCK" "$@"
	PID=$BG_PID
	PORT=$(wait_port "$TMP/$name.log")
	WPOOL=$bin wait_ready "$SOCK" "$n"
	check_bg "$PID"
}

# ask FD PATH: one request on a held connection; its body line on stdout.
ask() {
	local fd=$1 line
	printf 'GET %s HTTP/1.1\r\nHost: t\r\n\r\n' "$2" >&"$fd" || return 1
	read -r -t 5 line <&"$fd" || return 1
	while read -r -t 5 line <&"$fd"; do
		[ -z "${line%$'\r'}" ] && break
	done
	read -r -t 5 line <&"$fd" && echo "$line"
}

# tally OUT: "answered A reset R waiting W" from a bal_client burst.
tally() {
	awk '$2 == "ok" { a++; next }
	    /timeout/ { w++; next }
	    { r++ }
	    END { printf "answered %d reset %d waiting %d\n", a, r, w }' "$1"
}

# burst N OUT [ARGS]: N connections at once, WAIT s for each.
burst() {
	local n=$1 out=$2
	shift 2
	"$PY" "$CLIENT" burst "$PORT" -n "$n" --timeout "$WAIT" "$@" >"$out"
}

scenario() {
	local build=$1 what=$2 fa fb t0 line
	case $what in
	rr)
		start "$build" "rr-$build" 2 --balancer round-robin -- "$WORKER"
		curl -sS -m 5 "http://127.0.0.1:$PORT/bad/stopread" >/dev/null
		t0=$(date +%s.%N)
		burst "$RR_N" "$TMP/out"
		;;
	lc | ip)
		if [ "$what" = lc ]; then
			start "$build" "lc-$build" 2 -- "$WORKER"
		else
			start "$build" "ip-$build" 2 --balancer ip-hash -- "$WORKER"
		fi
		exec {fa}<>"/dev/tcp/127.0.0.1/$PORT"
		ask "$fa" /bad/stopread >/dev/null
		if [ "$what" = lc ]; then
			exec {fb}<>"/dev/tcp/127.0.0.1/$PORT"
			ask "$fb" / >/dev/null
		fi
		t0=$(date +%s.%N)
		burst "$([ "$what" = lc ] && echo 20 || echo 16)" "$TMP/out"
		exec {fa}>&-
		[ "$what" = lc ] && exec {fb}>&-
		;;
	close)
		start "$build" "close-$build" 2 --balancer round-robin -- "$WORKER"
		exec {fa}<>"/dev/tcp/127.0.0.1/$PORT"
		ask "$fa" /bad/stopread >/dev/null
		t0=$(date +%s.%N)
		burst 12 "$TMP/out" &
		local b=$!
		nap 0.5
		ask "$fa" /bad/closechan >/dev/null
		wait "$b"
		exec {fa}>&-
		;;
	esac
	line="$(tally "$TMP/out") in $(calc "$(date +%s.%N) - $t0") s"
	printf '%-6s %-5s %s\n' "$what" "$build" "$line"
	echo "$line" >"$TMP/$what.$build"
	stop_bg "$PID"
}

echo "\$ $(show "$PY" "$CLIENT" burst PORT -n N --timeout "$WAIT")"
for what in rr lc ip close; do
	for build in "${BUILDS[@]}"; do
		scenario "$build" "$what"
	done
done

# flood: wrk's conn/s with worker 0 flooding and not.
echo "\$ $(show wrk -t1 -c32 -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:PORT/")"
rps() {
	local out
	out=$(wrk -t1 -c32 -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:$PORT/" 2>&1)
	printf '%s\n' "$out" | awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }'
}
for build in "${BUILDS[@]}"; do
	for flood in 0 1; do
		start "$build" "flood$flood-$build" 3 -- /bin/sh -c \
		    'if [ "$WPOOL_WORKER_ID" = 0 ]; then FLOOD=$1 exec "$2" "$3"; fi; exec "$4"' \
		    sh "$flood" "$PY" "$TMP/pyworker.py" "$WORKER"
		r=$(rps)
		[ -n "$r" ] || r=0
		echo "$r" >"$TMP/flood$flood.$build"
		printf 'flood  %-5s %s: %s conn/s\n' "$build" \
		    "$([ "$flood" = 1 ] && echo flooded || echo quiet)" "$r"
		stop_bg "$PID"
	done
	ratio=$(calc "$(cat "$TMP/flood1.$build") / ($(cat "$TMP/flood0.$build") + 0.001)")
	echo "flood  $build ratio flooded/quiet $ratio"
	echo "$ratio" >"$TMP/flood.$build"
done

# figures: answered/reset/waiting per scenario and build.
for what in rr lc ip close; do
	for build in "${BUILDS[@]}"; do
		RESULTS+=("INFO $what.$build $(cat "$TMP/$what.$build")")
	done
done
for build in "${BUILDS[@]}"; do
	RESULTS+=("INFO flood.$build quiet=$(cat "$TMP/flood0.$build") flooded=$(cat "$TMP/flood1.$build") ratio=$(cat "$TMP/flood.$build")")
done
# Targets for this build: nothing lost, the flood costs at most half.
for what in rr lc ip close; do
	n=$(awk '{ print $4 + $6 }' "$TMP/$what.new")
	result "hung_${what}_lost_or_waiting" "$n" "=" 0
done
result flood_throughput_ratio "$(cat "$TMP/flood.new")" ">=" 0.5
finish
exit 0
