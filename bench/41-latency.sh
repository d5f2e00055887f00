#!/usr/bin/env bash
# 41-latency: p99 latency of a heavy-tailed request mix when epoll workers
# each hold many keep-alive connections: balance mode's least-conn against
# shared and reuseport modes.
#
# Workers: tests/bin/bal_worker (one epoll loop per process; GET /work?us=N
# blocks the whole worker N us, as a synchronous handler would, so every
# connection a worker holds waits behind its slow requests).  The same
# binary serves all three modes (accepting itself in shared and reuseport
# modes, taking connections from the channel in balance mode).
# Load: tests/bin/bal_load, open loop: CONNS keep-alive connections opened
# at once, requests arriving at RATE/s (Poisson) on random connections, N
# from a bounded Pareto (xm 100 us, alpha 1.5, cap 20 ms; mean ~280 us).
# Latency counts from when a request was due, so queueing is included.
# RATE = LOAD x the pool's capacity for this mix, measured first with
# bal_load --closed against a least-conn pool.
#
# How connections land decides the tail: least-conn spreads them evenly;
# shared mode lets whichever worker wakes first take them (epoll without
# EPOLLEXCLUSIVE); reuseport, run as root, has the kernel place each on the
# ready slot with the fewest placed so far (wpool's eBPF program), which
# spreads the burst of 64 connections onto idle workers (~2 ms on
# loopback, before the master's first look at the queues) as evenly as
# least-conn; without CAP_BPF, and in WPOOL_BASE's older build, the pick is
# random, and a worker with more connections than its share is more
# loaded, and its clients wait.
#
# Each round starts a fresh pool per mode (so shared and reuseport place
# connections anew), in rotated order, with the same request sequence
# (--seed = round).  Result: median p99 per mode; the targets are
# least-conn p99 <= 0.5 x the worse of shared and reuseport, and reuseport
# (steered by load) p99 <= 1.2 x least-conn.
#
# WPOOL_BASE=path (a wpool built from an older commit, e.g. one whose
# reuseport steering is uniformly random: `git archive 409b089 | tar -x -C
# /tmp/base && make -C /tmp/base wpool`) adds a fourth mode to each round,
# "reuseport-base" (that binary, -m reuseport), and a `Connection: close`
# throughput phase: wrk -t1 -c64 against reuseport with WPOOL and with
# WPOOL_BASE, interleaved A B / B A over the rounds; target: median(A) /
# median(B) >= 0.98.
#
# Env: QUICK=1 (about 20 s), ROUNDS=N, DURATION=SEC, WORKERS=N, CONNS=N,
# LOAD=FRACTION, WPOOL=path, WPOOL_BASE=path.
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-3}
else
	ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5}
fi
WORKERS=${WORKERS:-4}
CONNS=${CONNS:-64}
LOAD=${LOAD:-0.7}
TARGET=0.5
WORKER=$ROOT/tests/bin/bal_worker
LOADGEN=$ROOT/tests/bin/bal_load
MIX=(--xm 100 --alpha 1.5 --cap 20000)

preflight
[ -x "$WORKER" ] || die "$WORKER not built (make test-bins)"
[ -x "$LOADGEN" ] || die "$LOADGEN not built (make test-bins)"

WPOOL_BASE=${WPOOL_BASE:-}
[ -z "$WPOOL_BASE" ] || [ -x "$WPOOL_BASE" ] || die "WPOOL_BASE=$WPOOL_BASE is not executable"

# start_pool MODE: a pool of $WORKERS bal_workers; sets POOL_PID, PORT.
# MODE reuseport-base: WPOOL_BASE's reuseport mode.
start_pool() {
	local mode=$1 sock=$TMP/$1.sock bin=$WPOOL
	if [ "$mode" = reuseport-base ]; then
		bin=$WPOOL_BASE mode=reuseport
	fi
	# bg truncates the log in the background: an old one could be read
	# first, with the previous pool's port.
	rm -f "$sock" "$TMP/$1.log"
	bg "$TMP/$1.log" "$bin" -m "$mode" -n "$WORKERS" \
	    -b 127.0.0.1:0 -s "$sock" -- "$WORKER"
	POOL_PID=$BG_PID
	PORT=$(wait_port "$TMP/$1.log")
	wait_ready "$sock" "$WORKERS"
	check_bg "$POOL_PID"
	curl -fsS -m 2 "http://127.0.0.1:$PORT/" >/dev/null 2>&1 ||
	    die "$mode pool on port $PORT does not answer"
}

# spread PORT: established connections per worker, largest first.
spread() {
	ss -tnpH state established "sport = :$1" 2>/dev/null |
	    grep -o 'pid=[0-9]*' | sort | uniq -c | awk '{ print $1 }' |
	    sort -rn | paste -sd/ -
}

# --- the rate ---------------------------------------------------------------
start_pool balance
echo "\$ $(show "$LOADGEN" --port "$PORT" --conns "$CONNS" --closed \
    --duration 2 --warmup 0.5 "${MIX[@]}")"
cal=$("$LOADGEN" --port "$PORT" --conns "$CONNS" --closed --duration 2 \
    --warmup 0.5 "${MIX[@]}") || die "bal_load --closed failed"
cap=$(kv "$cal" achieved_rps)
[ -n "$cap" ] && [ "$cap" -gt 0 ] || die "no capacity measured: $cal"
RATE=$(calc "$cap * $LOAD")
RATE=${RATE%.*}
echo "# capacity for the mix (closed loop, least-conn): $cap req/s;" \
    "mean work $(kv "$cal" mean_work_us) us; open-loop rate = $LOAD x $cap = $RATE req/s"
stop_bg "$POOL_PID"

echo "\$ $(show "$WPOOL" -m MODE -n "$WORKERS" -b 127.0.0.1:0 -- "$WORKER")"
echo "\$ $(show "$LOADGEN" --port PORT --conns "$CONNS" --rate "$RATE" \
    --duration "$DURATION" --warmup 1 --seed ROUND "${MIX[@]}")"
MODES=(balance shared reuseport)
[ -n "$WPOOL_BASE" ] && MODES+=(reuseport-base)
NM=${#MODES[@]}
echo "# $ROUNDS round(s) x $NM modes x ${DURATION}s (+1 s warm-up)"

for m in "${MODES[@]}"; do
	: >"$TMP/p99.$m"
	: >"$TMP/p50.$m"
	: >"$TMP/err.$m"
done
for ((r = 1; r <= ROUNDS; r++)); do
	for ((k = 0; k < NM; k++)); do
		m=${MODES[$(((k + r - 1) % NM))]}
		start_pool "$m"
		# In the background (killed on exit like the pools) while the
		# connections' spread is read.
		bg "$TMP/out" "$LOADGEN" --port "$PORT" --conns "$CONNS" \
		    --rate "$RATE" --duration "$DURATION" --warmup 1 --seed "$r" \
		    "${MIX[@]}" >/dev/null
		lp=$BG_PID
		sleep 0.6
		dist=$(spread "$PORT")
		wait "$lp" || { cat "$TMP/out" >&2; die "bal_load failed"; }
		out=$(cat "$TMP/out")
		stop_bg "$POOL_PID"
		p99=$(kv "$out" p99_us)
		p50=$(kv "$out" p50_us)
		echo "$p99" >>"$TMP/p99.$m"
		echo "$p50" >>"$TMP/p50.$m"
		echo "$(($(kv "$out" errors) + $(kv "$out" unfinished)))" >>"$TMP/err.$m"
		label=$m
		[ "$m" = balance ] && label=least-conn
		printf 'round %d %-14s conns/worker %-12s p50 %8.1f ms  p99 %8.1f ms  p99.9 %8.1f ms  done %s/s  unfinished %s  errors %s\n' \
		    "$r" "$label" "$dist" "$(calc "$p50 / 1000")" \
		    "$(calc "$p99 / 1000")" "$(calc "$(kv "$out" p999_us) / 1000")" \
		    "$(kv "$out" achieved_rps)" "$(kv "$out" unfinished)" \
		    "$(kv "$out" errors)"
	done
done

echo
lc=$(median <"$TMP/p99.balance")
sh=$(median <"$TMP/p99.shared")
rp=$(median <"$TMP/p99.reuseport")
worse=$(awk -v a="$sh" -v b="$rp" 'BEGIN { print (a > b ? a : b) }')
ratio=$(calc "$lc / $worse")
printf 'median p99: least-conn %.1f ms, shared %.1f ms, reuseport %.1f ms; least-conn / worse = %s\n' \
    "$(calc "$lc / 1000")" "$(calc "$sh / 1000")" "$(calc "$rp / 1000")" "$ratio"
result leastconn_p99_vs_worse_ratio "$ratio" "<=" "$TARGET"
result reuseport_p99_vs_leastconn "$(calc "$rp / $lc")" "<=" 1.2
if [ -n "$WPOOL_BASE" ]; then
	rb=$(median <"$TMP/p99.reuseport-base")
	printf 'median p99: reuseport-base %.1f ms; reuseport / reuseport-base = %s\n' \
	    "$(calc "$rb / 1000")" "$(calc "$rp / $rb")"
	RESULTS+=("INFO p99_ms reuseport-base=$(calc "$rb / 1000") reuseport_vs_base=$(calc "$rp / $rb")")
	# --- Connection: close throughput, this build against the base -----
	command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
	echo "\$ $(show wrk -t1 -c64 -d2s -H 'Connection: close' "http://127.0.0.1:PORT/")  # reuseport, WPOOL (A) and WPOOL_BASE (B)"
	: >"$TMP/close.A"
	: >"$TMP/close.B"
	for ((r = 1; r <= ROUNDS; r++)); do
		order="reuseport reuseport-base"
		[ $((r % 2)) = 0 ] && order="reuseport-base reuseport"
		for m in $order; do
			start_pool "$m"
			out=$(wrk -t1 -c64 -d2s -H 'Connection: close' \
			    "http://127.0.0.1:$PORT/" 2>&1) || die "wrk failed: $out"
			stop_bg "$POOL_PID"
			rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
			side=A
			[ "$m" = reuseport-base ] && side=B
			echo "$rps" >>"$TMP/close.$side"
			printf 'round %d close %-14s %s req/s\n' "$r" "$m" "$rps"
		done
	done
	ca=$(median <"$TMP/close.A")
	cb=$(median <"$TMP/close.B")
	printf 'close: median reuseport %.0f req/s, reuseport-base %.0f req/s\n' "$ca" "$cb"
	result reuseport_close_vs_base "$(calc "$ca / $cb")" ">=" 0.98
fi
RESULTS+=("INFO leastconn_p99_vs_shared=$(calc "$lc / $sh") leastconn_p99_vs_reuseport=$(calc "$lc / $rp")")
RESULTS+=("INFO p99_ms least-conn=$(calc "$lc / 1000") shared=$(calc "$sh / 1000") reuseport=$(calc "$rp / 1000")")
RESULTS+=("INFO p50_ms least-conn=$(calc "$(median <"$TMP/p50.balance") / 1000") shared=$(calc "$(median <"$TMP/p50.shared") / 1000") reuseport=$(calc "$(median <"$TMP/p50.reuseport") / 1000")")
RESULTS+=("INFO rate=$RATE capacity=$cap workers=$WORKERS conns=$CONNS failed_or_unfinished least-conn=$(awk '{ s += $1 } END { print s + 0 }' "$TMP/err.balance") shared=$(awk '{ s += $1 } END { print s + 0 }' "$TMP/err.shared") reuseport=$(awk '{ s += $1 } END { print s + 0 }' "$TMP/err.reuseport")")
finish
exit 0
