#!/usr/bin/env bash
# 05-reload: how long a rolling reload takes, and whether clients notice.
#
# Part 1, duration: wpool -n 8 --ready notify -- testsrv --notify
# --delay-start 0.2 (each worker needs 0.2 s before it says READY=1).
# The time from sending `reload` until status reports it done, against the
# floor ceil(8/K) x (the start-to-READY time of one worker + its stop time),
# for --reload-batch K = 1, 2, 4.  The floor is measured right before each
# K by benchtool notify-start (a bare sd_notify receiver starting the same
# command, median of 3).  Target: ratio <= 1.10 (wpool adds under 10 %).  The wall time
# of the `wpool reload` command itself is shown too (it follows the reload
# by polling status every 100 ms).
#
# Part 2, under load: wrk -t1 -c64 with keep-alive, then with
# `Connection: close`, against wpool -n 4 --ready notify while 10 reloads
# run back to back.  The workers are bench/benchsrv.c, a server that stops
# gracefully on TERM (stops accepting, answers in-flight requests with
# `Connection: close`, then exits), as a real server does; target: 0 wrk
# socket errors and 0 non-2xx.  The same with tests/bin/testsrv, which
# exits on TERM at once and so drops the requests in flight on its own
# keep-alive connections, is shown for information: those errors are the
# worker's, not the supervisor's.
#
# Env: QUICK=1 (1 reload per batch size, no `wpool reload` command timing,
# 3 reloads under load, no testsrv runs), REPEAT=N (3),
# RELOADS=N (10).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	REPEAT=${REPEAT:-1} RELOADS=${RELOADS:-3}
else
	REPEAT=${REPEAT:-3} RELOADS=${RELOADS:-10}
fi
DELAY=0.2
LOAD_DELAY=0.05
RATIO_TARGET=1.10

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
build_benchtool
build_c benchsrv
echo "# bench/benchtool.c and bench/benchsrv.c built in $TMP"

# --- part 1 ------------------------------------------------------------
WORKER=("$TESTSRV" --notify --delay-start "$DELAY")
echo "\$ $(show "$BT" notify-start 3 -- "${WORKER[@]}")   # before each batch size"
: >"$TMP/starts"
for K in 1 2 4; do
	# The floor, measured right before (the machine's load drifts).
	BOUT=$("$BT" notify-start 3 -- "${WORKER[@]}") || die "benchtool notify-start failed"
	START_MS=$(kv "$BOUT" start_median_ms)
	STOP_MS=$(kv "$BOUT" stop_median_ms)
	SLOT_MS=$(calc "$START_MS + $STOP_MS")
	echo "$START_MS $STOP_MS" >>"$TMP/starts"
	echo "one worker: start to READY=1 $START_MS ms, TERM to exit $STOP_MS ms (median of 3)"
	sock=$TMP/ctl$K.sock
	bg "$TMP/wpool$K.log" "$WPOOL" -n 8 --ready notify --reload-batch "$K" \
	    -b 127.0.0.1:0 -s "$sock" -- "${WORKER[@]}"
	pid=$BG_PID
	wait_port "$TMP/wpool$K.log" >/dev/null
	wait_ready "$sock" 8
	check_bg "$pid"
	echo "\$ $(show "$BT" reload "$sock" 2 60)   # x $REPEAT"
	: >"$TMP/reload$K"
	for ((i = 0; i < REPEAT; i++)); do
		out=$("$BT" reload "$sock" 2 60)
		[ "$(kv "$out" state)" = "done" ] ||
		    die "reload failed: $out; $(tail -n 3 "$TMP/wpool$K.log")"
		kv "$out" elapsed_ms >>"$TMP/reload$K"
	done
	cli=skipped
	if [ -z "$QUICK" ]; then
		echo "\$ $(show "$WPOOL" -s "$sock" reload)"
		t0=$EPOCHREALTIME
		"$WPOOL" -s "$sock" reload >"$TMP/cli$K.out" 2>&1 ||
		    die "wpool reload failed: $(cat "$TMP/cli$K.out")"
		cli=$(calc "($EPOCHREALTIME - $t0) * 1000")
	fi
	stop_bg "$pid"
	med=$(median <"$TMP/reload$K")
	steps=$(((8 + K - 1) / K))
	floor=$(calc "$steps * $SLOT_MS")
	ratio=$(calc "$med / $floor")
	echo "reload-batch $K: reload of 8 workers median $med ms ($(paste -sd' ' "$TMP/reload$K") ms);" \
	    "floor $steps x $SLOT_MS = $floor ms; ratio $ratio; \`wpool reload\` command: $cli$([ "$cli" = skipped ] || echo " ms")"
	result "reload_batch${K}_vs_floor_ratio" "$ratio" "<=" "$RATIO_TARGET"
	RESULTS+=("INFO reload_batch${K}_ms=$med reload_batch${K}_floor_ms=$floor reload_batch${K}_cli_ms=$cli")
done
RESULTS+=("INFO worker_start_to_ready_ms=$(cut -d' ' -f1 "$TMP/starts" | paste -sd,) worker_stop_ms=$(cut -d' ' -f2 "$TMP/starts" | paste -sd,) (before batch 1,2,4)")

# --- part 2 ------------------------------------------------------------
# under_load NAME VARIANT CMD...: wrk against a fresh 4-worker pool while
# RELOADS reloads run; sets ERRS (socket errors + non-2xx) and REQS.
under_load() {
	local name=$1 variant=$2 sock log pid port wpid hdr=() out errs non2xx i t0
	shift 2
	sock=$TMP/load-$name-$variant.sock
	log=$TMP/load-$name-$variant.log
	bg "$log" "$WPOOL" -n 4 --ready notify -b 127.0.0.1:0 -s "$sock" -- "$@"
	pid=$BG_PID
	port=$(wait_port "$log")
	wait_ready "$sock" 4
	check_bg "$pid"
	[ "$variant" = close ] && hdr=(-H 'Connection: close')
	bg "$TMP/wrk-$name-$variant.out" wrk -t1 -c64 -d120s "${hdr[@]}" \
	    "http://127.0.0.1:$port/"
	wpid=$BG_PID
	sleep 0.5
	echo "\$ $(show "$WPOOL" -s "$sock" reload)   # x $RELOADS, back to back"
	t0=$EPOCHREALTIME
	for ((i = 0; i < RELOADS; i++)); do
		"$WPOOL" -s "$sock" reload >>"$TMP/reloads.out" 2>&1 ||
		    echo "reload $i failed: $(tail -n 1 "$TMP/reloads.out")"
	done
	RTIME=$(calc "$EPOCHREALTIME - $t0")
	sleep 0.5
	wrk_stop "$wpid" "$TMP/wrk-$name-$variant.out"
	errs=$WRK_ERRS non2xx=$WRK_NON2XX
	GEN=$(jfield "$(status_json "$sock")" generation)
	stop_bg "$pid"
	printf '%-8s %-9s %s requests in %s s, %d reloads (generation %s): socket errors: %s; non-2xx: %s\n' \
	    "$name" "$variant" "${REQS:-?}" "$RTIME" "$RELOADS" "$GEN" "${errs:-none}" "${non2xx:-0}"
	[ "$GEN" = "$RELOADS" ] || echo "  warning: $RELOADS reloads asked, generation is $GEN"
	WARN=$(grep -c 'warning\|error' "$log")
	[ "$WARN" = 0 ] || grep 'warning\|error' "$log" | head -n 3 | sed 's/^/  | /'
}

echo "# under load: wrk -t1 -c64 (keep-alive, then -H 'Connection: close'), $RELOADS reloads"
for variant in keepalive close; do
	under_load benchsrv "$variant" "$TMP/benchsrv" --notify --delay-start "$LOAD_DELAY"
	result "reload_under_load_${variant}_errors" "$ERRS" "<=" 0
	RESULTS+=("INFO reload_under_load_${variant}_requests=$REQS reloads=$RELOADS seconds=$RTIME")
done
[ -n "$QUICK" ] || for variant in keepalive close; do
	under_load testsrv "$variant" "$TESTSRV" --notify --delay-start "$LOAD_DELAY"
	RESULTS+=("INFO testsrv_reload_under_load_${variant}_errors=$ERRS requests=$REQS (testsrv exits on TERM at once: informational)")
done

finish
exit 0
