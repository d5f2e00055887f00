#!/usr/bin/env bash
# 01-throughput: what wpool's shared mode costs a server under load.
#
# A: wpool -n 2 -b 127.0.0.1:0 -- testsrv        (2 workers share the socket)
# B: testsrv --prefork 2 --port 0                 (the same server pre-forking
#                                                  itself on its own socket)
# wrk -t1 -c64 against each, with keep-alive and with `Connection: close`,
# interleaved A B B A / B A A B / ... so drifts of a noisy machine hit both
# sides alike; the figure is the median over the rounds of each round's
# (A1 + A2) / (B1 + B2).  The ratio of the medians, and each side's server
# CPU time per request (which other load on the machine disturbs less), are
# shown too.  In shared mode the master is not on the data path, so the
# target is parity: ratio >= 0.99.
#
# Env: QUICK=1 (about 10 s), ROUNDS=N, DURATION=SEC (per wrk run),
# CONNS=N, WPOOL=path, TESTSRV=path.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-1}
else
	ROUNDS=${ROUNDS:-6} DURATION=${DURATION:-1}
fi
CONNS=${CONNS:-64}
TARGET=0.99

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"

bg "$TMP/wpool.log" "$WPOOL" -n 2 -b 127.0.0.1:0 -s "$TMP/ctl.sock" -- "$TESTSRV"
WPOOL_PID=$BG_PID
bg "$TMP/prefork.log" "$TESTSRV" --prefork 2 --port 0
PREFORK_PID=$BG_PID
A_PORT=$(wait_port "$TMP/wpool.log")
B_PORT=$(wait_port "$TMP/prefork.log")
wait_ready "$TMP/ctl.sock" 2
check_bg "$WPOOL_PID"
check_bg "$PREFORK_PID"
curl -fsS -m 2 "http://127.0.0.1:$A_PORT/" >/dev/null 2>&1 ||
    die "wpool pool on port $A_PORT does not answer"
curl -fsS -m 2 "http://127.0.0.1:$B_PORT/" >/dev/null 2>&1 ||
    die "prefork baseline on port $B_PORT does not answer"
echo "# A = wpool shared mode on port $A_PORT; B = testsrv --prefork on port $B_PORT"

# Server processes of each side, for their CPU time (/proc/PID/schedstat,
# nanoseconds on CPU): the workers of A, the children of B's parent.
A_PIDS=$(status_json "$TMP/ctl.sock" | grep -o '"pid":[0-9]*' | tail -n +2 | cut -d: -f2)
B_PIDS=$(cat "/proc/$PREFORK_PID/task/$PREFORK_PID/children")
if [ "$(wc -w <<<"$A_PIDS")" != 2 ] || [ "$(wc -w <<<"$B_PIDS")" != 2 ]; then
	die "cannot find the 2 server processes of each side (A: $A_PIDS; B: $B_PIDS)"
fi

echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:PORT/")"
echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:PORT/")"
echo "# $ROUNDS rounds x 2 variants x 4 runs of ${DURATION}s: A B B A in odd rounds, B A A B in even ones"
echo "# cpu = the 2 server processes' CPU time per request (/proc/PID/schedstat)"

: >"$TMP/errors"
for variant in keepalive close; do
	for f in A B ratio cpuA cpuB; do : >"$TMP/$variant.$f"; done
done
for ((r = 1; r <= ROUNDS; r++)); do
	for variant in keepalive close; do
		hdr=()
		[ "$variant" = close ] && hdr=(-H 'Connection: close')
		if ((r % 2)); then order="A B B A"; else order="B A A B"; fi
		sum_A=0 sum_B=0 csum_A=0 csum_B=0
		for side in $order; do
			if [ "$side" = A ]; then
				wrk_run "$A_PORT" "$A_PIDS" "${hdr[@]}"
			else
				wrk_run "$B_PORT" "$B_PIDS" "${hdr[@]}"
			fi
			echo "$RPS" >>"$TMP/$variant.$side"
			echo "$CPU_US" >>"$TMP/$variant.cpu$side"
			eval "sum_$side=\$(calc \"\$sum_$side + \$RPS\")"
			eval "csum_$side=\$(calc \"\$csum_$side + \$CPU_US\")"
		done
		ratio=$(calc "$sum_A / $sum_B")
		echo "$ratio" >>"$TMP/$variant.ratio"
		printf 'round %2d %-9s %s: A(wpool) %7.0f req/s %6.2f us cpu   B(prefork) %7.0f req/s %6.2f us cpu   A/B %s\n' \
		    "$r" "$variant" "${order// /}" "$(calc "$sum_A / 2")" "$(calc "$csum_A / 2")" \
		    "$(calc "$sum_B / 2")" "$(calc "$csum_B / 2")" "$ratio"
	done
done

echo
for variant in keepalive close; do
	a=$(median <"$TMP/$variant.A")
	b=$(median <"$TMP/$variant.B")
	ca=$(median <"$TMP/$variant.cpuA")
	cb=$(median <"$TMP/$variant.cpuB")
	paired=$(median <"$TMP/$variant.ratio")
	lo=$(sort -g "$TMP/$variant.ratio" | head -n1)
	hi=$(sort -g "$TMP/$variant.ratio" | tail -n1)
	printf '%-9s A(wpool) median %.0f req/s, B(prefork) median %.0f req/s; A/B: median of the %d per-round ratios %s (range %s..%s), ratio of medians %s\n' \
	    "$variant" "$a" "$b" "$ROUNDS" "$paired" "$lo" "$hi" "$(calc "$a / $b")"
	printf '%-9s server CPU per request: A %s us, B %s us; B/A %s\n' \
	    "$variant" "$ca" "$cb" "$(calc "$cb / $ca")"
	result "shared_vs_prefork_${variant}_ratio" "$paired" ">=" "$TARGET"
	RESULTS+=("INFO ${variant}: wpool_rps=$(printf '%.0f' "$a") prefork_rps=$(printf '%.0f' "$b") ratio_of_medians=$(calc "$a / $b") paired_range=$lo..$hi cpu_us_per_req_wpool=$ca cpu_us_per_req_prefork=$cb cpu_efficiency_ratio=$(calc "$cb / $ca")")
done
if [ -s "$TMP/errors" ]; then
	echo "wrk reported errors:"
	cat "$TMP/errors"
fi
RESULTS+=("INFO wrk_runs_with_errors=$(wc -l <"$TMP/errors")")

stop_bg "$WPOOL_PID"
stop_bg "$PREFORK_PID"
finish
exit 0
