#!/usr/bin/env bash
# 40-balance: what balance mode's extra hop costs per connection.
#
# A: wpool -m balance -n 2 (least-conn) -- bal_worker   the master accepts
#    every connection and passes it over the worker's channel (SCM_RIGHTS);
#    the worker reports it closed
# B: wpool -m shared -n 2 -- bal_worker                 the workers accept
#    on the shared socket themselves
# The same server binary (tests/bin/bal_worker) in both, so the difference
# is the mode.  wrk -t1 -c64 with `Connection: close` (one connection per
# request: the worst case for balance mode), interleaved A B / B A / ...;
# ratio = median(A) / median(B), target >= 0.90.
#
# Per-connection overhead, two ways:
#   wall  = 1e6/rps(A) - 1e6/rps(B) us: what each connection costs more at
#           saturation on this machine (its target is what the 0.90 ratio
#           allows at B's rate: (1/0.90 - 1) * 1e6 / rps(B));
#   master CPU = the master's utime+stime during A's runs divided by the
#           connections it accepted (status connections_total).
# Keep-alive requests (the master is then off the data path) as INFO.
#
# Env: QUICK=1 (about 10 s), ROUNDS=N, DURATION=SEC, CONNS=N, WPOOL=path.
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2}
else
	ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-3}
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
A_PORT=$(wait_port "$TMP/a.log")
B_PORT=$(wait_port "$TMP/b.log")
wait_ready "$TMP/a.sock" 2
wait_ready "$TMP/b.sock" 2
check_bg "$A_PID"
check_bg "$B_PID"
curl -fsS -m 2 "http://127.0.0.1:$A_PORT/" >/dev/null 2>&1 ||
    die "balance pool on port $A_PORT does not answer"
curl -fsS -m 2 "http://127.0.0.1:$B_PORT/" >/dev/null 2>&1 ||
    die "shared pool on port $B_PORT does not answer"
echo "# A = balance mode (least-conn) on port $A_PORT; B = shared mode on port $B_PORT"

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
for f in close.A close.B close.ratio keepalive.A keepalive.B keepalive.ratio master_us; do
	: >"$TMP/$f"
done
for ((r = 1; r <= ROUNDS; r++)); do
	for variant in close keepalive; do
		hdr=()
		[ "$variant" = close ] && hdr=(-H 'Connection: close')
		if ((r % 2)); then order="A B"; else order="B A"; fi
		for side in $order; do
			if [ "$side" = A ]; then
				c0=$(cpu_ticks "$A_PID")
				n0=$(jfield "$(status_json "$TMP/a.sock")" connections_total)
				rps=$(wrk_rps "$A_PORT" "${hdr[@]}") || exit 1
				c1=$(cpu_ticks "$A_PID")
				n1=$(jfield "$(status_json "$TMP/a.sock")" connections_total)
				if [ "$variant" = close ] && [ "$((n1 - n0))" -gt 0 ]; then
					calc "($c1 - $c0) / $HZ * 1000000 / ($n1 - $n0)" >>"$TMP/master_us"
				fi
				rps_A=$rps
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
		    "$([ "$variant" = close ] && printf '  master %s us CPU/conn' "$(tail -n1 "$TMP/master_us")")"
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
RESULTS+=("INFO keepalive balance_rps=$(printf '%.0f' "$ka") shared_rps=$(printf '%.0f' "$kb") ratio=$(calc "$ka / $kb")")
if [ -s "$TMP/errors" ]; then
	echo "wrk reported errors:"
	cat "$TMP/errors"
fi
RESULTS+=("INFO wrk_runs_with_errors=$(wc -l <"$TMP/errors")")

stop_bg "$A_PID"
stop_bg "$B_PID"
finish
exit 0
