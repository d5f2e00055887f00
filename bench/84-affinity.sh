#!/usr/bin/env bash
# 84-affinity: what --cpu-affinity does to throughput.
#
# A: wpool -n 2 --cpu-affinity -b 127.0.0.1:0 -- testsrv   (worker i on CPU i)
# B: wpool -n 2 -b 127.0.0.1:0 -- testsrv                  (unpinned, as before)
# Both pools run side by side for the whole run, each under
# `taskset -c CPUS` with the same two CPUs, so only the option differs; wrk
# (unpinned) drives one at a time with keep-alive and with
# `Connection: close`, interleaved A B B A / B A A B / ... so that the drifts
# of a shared machine hit both sides alike.  The figure is the median over
# the rounds of each round's (A1 + A2) / (B1 + B2); each side's server CPU
# time per request is shown too.  Informational: pinning trades the
# scheduler's freedom to move a worker for cache locality, and which wins
# depends on the load and on what else runs on those CPUs (on a 2-CPU
# machine, wrk itself shares them).  No target: the RESULT line's
# ">= 0" only records the figure.
#
# Env: QUICK=1 (about 10 s), ROUNDS=N, DURATION=SEC (per wrk run),
# CONNS=N, CPUS=LIST (default: the first two this script may use),
# WPOOL=path, TESTSRV=path.  About 4 x ROUNDS x 2 x DURATION seconds:
# 32 s by default.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-1}
else
	ROUNDS=${ROUNDS:-4} DURATION=${DURATION:-1}
fi
CONNS=${CONNS:-64}

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
command -v taskset >/dev/null || die "taskset not installed (util-linux)"
if [ -z "${CPUS:-}" ]; then
	mask=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
	CPUS=$(for part in ${mask//,/ }; do
		if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
	done | head -n2 | paste -sd,)
fi
[[ $CPUS == *,* ]] || die "needs two CPUs (CPUS=$CPUS)"

bg "$TMP/a.log" taskset -c "$CPUS" "$WPOOL" -n 2 --cpu-affinity -b 127.0.0.1:0 \
    -s "$TMP/a.sock" -- "$TESTSRV"
A_PID=$BG_PID
bg "$TMP/b.log" taskset -c "$CPUS" "$WPOOL" -n 2 -b 127.0.0.1:0 \
    -s "$TMP/b.sock" -- "$TESTSRV"
B_PID=$BG_PID
A_PORT=$(wait_port "$TMP/a.log")
B_PORT=$(wait_port "$TMP/b.log")
wait_ready "$TMP/a.sock" 2
wait_ready "$TMP/b.sock" 2
check_bg "$A_PID"
check_bg "$B_PID"
for port in "$A_PORT" "$B_PORT"; do
	curl -fsS -m 2 "http://127.0.0.1:$port/" >/dev/null 2>&1 ||
	    die "the pool on port $port does not answer"
done

A_PIDS=$(status_json "$TMP/a.sock" | grep -o '"pid":[0-9]*' | tail -n +2 | cut -d: -f2)
B_PIDS=$(status_json "$TMP/b.sock" | grep -o '"pid":[0-9]*' | tail -n +2 | cut -d: -f2)
if [ "$(wc -w <<<"$A_PIDS")" != 2 ] || [ "$(wc -w <<<"$B_PIDS")" != 2 ]; then
	die "cannot find the 2 workers of each side (A: $A_PIDS; B: $B_PIDS)"
fi
pins() {
	local p out=
	for p in "$@"; do
		out+="$p:$(awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$p/status") "
	done
	echo "${out% }"
}
# shellcheck disable=SC2086
echo "# A = --cpu-affinity on port $A_PORT, workers pid:CPUs $(pins $A_PIDS)"
# shellcheck disable=SC2086
echo "# B = unpinned on port $B_PORT, workers pid:CPUs $(pins $B_PIDS)"
# shellcheck disable=SC2086
for p in $A_PIDS; do
	c=$(awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$p/status")
	[[ $c == *[,-]* ]] && die "A's worker $p is not pinned (CPUs $c)"
done

# Migrations between CPUs, summed over the workers (from /proc/PID/sched).
migrations() {
	local p t=0 v
	for p in "$@"; do
		v=$(awk '/^se.nr_migrations/ { print $3 }' "/proc/$p/sched" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}


echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:PORT/")"
echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:PORT/")"
echo "# $ROUNDS rounds x 2 variants x 4 runs of ${DURATION}s: A B B A in odd rounds, B A A B in even ones"

: >"$TMP/errors"
for variant in keepalive close; do
	for f in A B ratio cpuA cpuB; do : >"$TMP/$variant.$f"; done
done
# shellcheck disable=SC2086
mig_a0=$(migrations $A_PIDS) mig_b0=$(migrations $B_PIDS)
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
		printf 'round %2d %-9s %s: A(pinned) %7.0f req/s %6.2f us cpu   B(unpinned) %7.0f req/s %6.2f us cpu   A/B %s\n' \
		    "$r" "$variant" "${order// /}" "$(calc "$sum_A / 2")" "$(calc "$csum_A / 2")" \
		    "$(calc "$sum_B / 2")" "$(calc "$csum_B / 2")" "$ratio"
	done
done
# shellcheck disable=SC2086
mig_a=$(($(migrations $A_PIDS) - mig_a0)) mig_b=$(($(migrations $B_PIDS) - mig_b0))

echo
for variant in keepalive close; do
	a=$(median <"$TMP/$variant.A")
	b=$(median <"$TMP/$variant.B")
	ca=$(median <"$TMP/$variant.cpuA")
	cb=$(median <"$TMP/$variant.cpuB")
	paired=$(median <"$TMP/$variant.ratio")
	lo=$(sort -g "$TMP/$variant.ratio" | head -n1)
	hi=$(sort -g "$TMP/$variant.ratio" | tail -n1)
	printf '%-9s A(pinned) median %.0f req/s, B(unpinned) median %.0f req/s; A/B: median of the %d per-round ratios %s (range %s..%s)\n' \
	    "$variant" "$a" "$b" "$ROUNDS" "$paired" "$lo" "$hi"
	printf '%-9s server CPU per request: A %s us, B %s us\n' "$variant" "$ca" "$cb"
	result "affinity_vs_unpinned_${variant}_ratio" "$paired" ">=" 0
	RESULTS+=("INFO ${variant}: pinned_rps=$(printf '%.0f' "$a") unpinned_rps=$(printf '%.0f' "$b") paired_range=$lo..$hi cpu_us_per_req_pinned=$ca cpu_us_per_req_unpinned=$cb")
done
echo "workers' CPU migrations during the run: A $mig_a, B $mig_b"
RESULTS+=("INFO migrations_pinned=$mig_a migrations_unpinned=$mig_b")
if [ -s "$TMP/errors" ]; then
	echo "wrk reported errors:"
	cat "$TMP/errors"
fi
RESULTS+=("INFO wrk_runs_with_errors=$(wc -l <"$TMP/errors")")

stop_bg "$A_PID"
stop_bg "$B_PID"
finish
exit 0
