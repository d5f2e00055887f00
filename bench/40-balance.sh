#!/usr/bin/env bash
# 40-balance: what balance mode's extra hop costs per connection.
#
# A: wpool -m balance -n 2 (least-conn) -- bal_worker   the master accepts
#    every connection and passes it over the worker's channel (SCM_RIGHTS);
#    the worker reports it closed.  The worker speaks version 2 of the
#    protocol (its hello): what waits for it comes in one message, what it
#    closed is reported in one
# B: wpool -m shared -n 2 -- bal_worker                 the workers accept
#    on the shared socket themselves
# V1: A with bal_worker --v1: version 1, one connection a message and one
#    report each (INFO: what version 2 gains, in the same run)
# The same server binary (tests/bin/bal_worker) in all, so the difference
# is the mode.  wrk -t1 -c64 with `Connection: close` (one connection per
# request: the worst case for balance mode), interleaved A B V1 / V1 B A
# / ...; ratio = median(A) / median(B), target >= 0.90.
#
# Per-connection overhead, two ways:
#   wall  = 1e6/rps(A) - 1e6/rps(B) us: what each connection costs more at
#           saturation on this machine (its target is what the 0.90 ratio
#           allows at B's rate: (1/0.90 - 1) * 1e6 / rps(B));
#   master CPU = the master's utime+stime during A's (and V1's) runs
#           divided by the connections it accepted (status
#           connections_total).
# Keep-alive requests (the master is then off the data path) as INFO.
#
# Env: QUICK=1 (about 10 s), ROUNDS=N, DURATION=SEC, CONNS=N, WPOOL=path.
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2}
else
	ROUNDS=${ROUNDS:-4} DURATION=${DURATION:-3}
fi
CONNS=${CONNS:-64}
TARGET=0.90
WORKER=$ROOT/tests/bin/bal_worker
HZ=$(getconf CLK_TCK)

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
[ -x "$WORKER" ] || die "$WORKER not built (make test-bins)"

bg "$TMP/a.log" "$WPOOL" -m balance -n 2 -b 127.0.0.1:0 -s "$TMP/a.sock" -- "$WORKER"
A_PID=$BG_PID
bg "$TMP/b.log" "$WPOOL" -m shared -n 2 -b 127.0.0.1:0 -s "$TMP/b.sock" -- "$WORKER"
B_PID=$BG_PID
bg "$TMP/v1.log" "$WPOOL" -m balance -n 2 -b 127.0.0.1:0 -s "$TMP/v1.sock" -- "$WORKER" --v1
V1_PID=$BG_PID
A_PORT=$(wait_port "$TMP/a.log")
B_PORT=$(wait_port "$TMP/b.log")
V1_PORT=$(wait_port "$TMP/v1.log")
wait_ready "$TMP/a.sock" 2
wait_ready "$TMP/b.sock" 2
wait_ready "$TMP/v1.sock" 2
check_bg "$A_PID"
check_bg "$B_PID"
check_bg "$V1_PID"
curl -fsS -m 2 "http://127.0.0.1:$A_PORT/" >/dev/null 2>&1 ||
    die "balance pool on port $A_PORT does not answer"
curl -fsS -m 2 "http://127.0.0.1:$B_PORT/" >/dev/null 2>&1 ||
    die "shared pool on port $B_PORT does not answer"
curl -fsS -m 2 "http://127.0.0.1:$V1_PORT/" >/dev/null 2>&1 ||
    die "balance pool (version 1) on port $V1_PORT does not answer"
echo "# A = balance mode (least-conn, protocol version 2) on port $A_PORT; B = shared mode on port $B_PORT; V1 = A with version 1 on port $V1_PORT"

# cpu_ticks PID: utime + stime of PID, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# wrk_rps PORT [HEADER...]: requests/s of one run; errors to $TMP/errors.
wrk_rps() {
	local port=$1 out rps errs non2xx
	shift
	out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "http://127.0.0.1:$port/" 2>&1)
	rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
	errs=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
	non2xx=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: //p')
	[ -n "$errs$non2xx" ] && echo "port $port $*: ${errs:+socket errors: $errs }${non2xx:+non-2xx: $non2xx}" >>"$TMP/errors"
	[ -n "$rps" ] || { echo "$out" >&2; die "wrk gave no Requests/sec"; }
	echo "$rps"
}

echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:PORT/")"
echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:PORT/")"
echo "# $ROUNDS round(s) x 4 runs of ${DURATION}s"

: >"$TMP/errors"
for f in close.A close.B close.V1 close.ratio keepalive.A keepalive.B keepalive.ratio master_us master_us.V1; do
	: >"$TMP/$f"
done
for ((r = 1; r <= ROUNDS; r++)); do
	for variant in close keepalive; do
		hdr=()
		[ "$variant" = close ] && hdr=(-H 'Connection: close')
		if ((r % 2)); then order="A B V1"; else order="V1 B A"; fi
		[ "$variant" = keepalive ] && order=${order/V1/}
		for side in $order; do
			if [ "$side" = A ] || [ "$side" = V1 ]; then
				if [ "$side" = A ]; then
					pid=$A_PID sock=$TMP/a.sock port=$A_PORT us=master_us
				else
					pid=$V1_PID sock=$TMP/v1.sock port=$V1_PORT us=master_us.V1
				fi
				c0=$(cpu_ticks "$pid")
				n0=$(jfield "$(status_json "$sock")" connections_total)
				rps=$(wrk_rps "$port" "${hdr[@]}") || exit 1
				c1=$(cpu_ticks "$pid")
				n1=$(jfield "$(status_json "$sock")" connections_total)
				if [ "$variant" = close ] && [ "$((n1 - n0))" -gt 0 ]; then
					calc "($c1 - $c0) / $HZ * 1000000 / ($n1 - $n0)" >>"$TMP/$us"
				fi
				if [ "$side" = A ]; then rps_A=$rps; else rps_V1=$rps; fi
			else
				rps=$(wrk_rps "$B_PORT" "${hdr[@]}") || exit 1
				rps_B=$rps
			fi
			echo "$rps" >>"$TMP/$variant.$side"
		done
		ratio=$(calc "$rps_A / $rps_B")
		echo "$ratio" >>"$TMP/$variant.ratio"
		printf 'round %d %-9s A(balance) %9.0f req/s  B(shared) %9.0f req/s  A/B %s%s\n' \
		    "$r" "$variant" "$rps_A" "$rps_B" "$ratio" \
		    "$([ "$variant" = close ] && printf '  master %s us CPU/conn; V1 %.0f req/s (V1/B %s), master %s us CPU/conn' \
		    "$(tail -n1 "$TMP/master_us")" "$rps_V1" "$(calc "$rps_V1 / $rps_B")" "$(tail -n1 "$TMP/master_us.V1")")"
	done
done

echo
a=$(median <"$TMP/close.A")
b=$(median <"$TMP/close.B")
ratio=$(calc "$a / $b")
wall=$(calc "1000000 / $a - 1000000 / $b")
budget=$(calc "(1 / $TARGET - 1) * 1000000 / $b")
master=$(median <"$TMP/master_us")
printf 'close: median A(balance) %.0f conn/s, B(shared) %.0f conn/s; ratio %s (paired: %s); overhead %s us/conn wall, master CPU %s us/conn\n' \
    "$a" "$b" "$ratio" "$(median <"$TMP/close.ratio")" "$wall" "$master"
result balance_vs_shared_close_ratio "$ratio" ">=" "$TARGET"
result balance_overhead_us_per_conn "$wall" "<=" "$budget"
ka=$(median <"$TMP/keepalive.A")
kb=$(median <"$TMP/keepalive.B")
RESULTS+=("INFO balance_close_cps=$(printf '%.0f' "$a") shared_close_cps=$(printf '%.0f' "$b") master_cpu_us_per_conn=$master")
v1=$(median <"$TMP/close.V1")
RESULTS+=("INFO version1 balance_close_cps=$(printf '%.0f' "$v1") ratio_vs_shared=$(calc "$v1 / $b") master_cpu_us_per_conn=$(median <"$TMP/master_us.V1") (version 2: $master)")
RESULTS+=("INFO keepalive balance_rps=$(printf '%.0f' "$ka") shared_rps=$(printf '%.0f' "$kb") ratio=$(calc "$ka / $kb")")
if [ -s "$TMP/errors" ]; then
	echo "wrk reported errors:"
	cat "$TMP/errors"
fi
RESULTS+=("INFO wrk_runs_with_errors=$(wc -l <"$TMP/errors")")

stop_bg "$A_PID"
stop_bg "$B_PID"
stop_bg "$V1_PID"
finish
exit 0
