#!/usr/bin/env bash
# 04-spawn-1024: the largest pool wpool accepts.
#
# wpool -n 1024 -s SOCK -- pause   (bench/pause.c: a static program that
# only waits for a signal; a plain supervisor, no listener):
#  * wall time from starting wpool until `status` reports alive = ready =
#    1024 (target <= 1 s), and until the log shows 1024 `worker N started`;
#  * the master's VmRSS then (target <= 8 MiB), against a 1-worker pool;
#  * `wpool -s SOCK status --json` with 1024 workers: median wall time of
#    20 calls, the whole command as a user runs it (target <= 100 ms), and
#    the raw control-socket round trip without the client's start-up;
#  * (info) `wpool stop` of 1024 workers, and the start with `sleep 100000`
#    as the worker (dynamically linked: ld.so runs in every child).
# Baselines in the same run: fork+exec of the same 1024 workers by a bare
# loop (benchtool spawn; exec success seen through a close-on-exec pipe, as
# `--ready exec` does), the status call on a 1-worker pool, and the client's
# own start-up (`wpool --version`).  Start-up rounds alternate baseline and
# wpool; the figures are medians.
#
# Env: QUICK=1 (1 round, 5 status calls), ROUNDS=N (3), WORKERS=N (1024),
# CALLS=N (20).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

WORKERS=${WORKERS:-1024}
if [ -n "$QUICK" ]; then
	CALLS=${CALLS:-5} ROUNDS=${ROUNDS:-1}
else
	CALLS=${CALLS:-20} ROUNDS=${ROUNDS:-3}
fi
SPAWN_TARGET_MS=1000
RSS_TARGET_MIB=8
STATUS_TARGET_MS=100

preflight
build_benchtool
if "$CC" -O2 -static -o "$TMP/pause" "$BENCH_DIR/pause.c" 2>/dev/null; then
	echo "# bench/pause.c built static as $TMP/pause"
else
	build_c pause
	echo "# bench/pause.c built (no static libc here: dynamic) as $TMP/pause"
fi
WORKER_CMD=("$TMP/pause")
SLEEP_CMD=(sleep 100000)

# time_cmd N CMD...: median wall ms of N runs of CMD (stdout discarded).
time_cmd() {
	local n=$1 i t0 t1
	shift
	for ((i = 0; i < n; i++)); do
		t0=$EPOCHREALTIME
		"$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
		t1=$EPOCHREALTIME
		calc "($t1 - $t0) * 1000"
	done | median
}

# baseline_spawn CMD...: ms for a bare loop to fork+exec WORKERS of CMD.
baseline_spawn() {
	local out
	out=$("$BT" spawn "$WORKERS" -- "$@") || die "benchtool spawn failed: $out"
	kv "$out" all_exec_ms
}

# pool_start SOCK LOG CMD...: start a WORKERS pool, wait until all ready;
# sets MASTER, STARTED_MS (log) and READY_MS (status).
pool_start() {
	local sock=$1 log=$2 t0 out
	shift 2
	t0=$EPOCHREALTIME
	bg "$log" "$WPOOL" -n "$WORKERS" -s "$sock" -- "$@" >/dev/null
	MASTER=$BG_PID
	out=$("$BT" wait-log "$log" " started (pid " "$WORKERS" "$t0" 30)
	STARTED_MS=$(kv "$out" elapsed_ms)
	out=$("$BT" wait-status "$sock" "$t0" 30 2 alive="$WORKERS" ready="$WORKERS")
	READY_MS=$(kv "$out" elapsed_ms)
	check_bg "$MASTER"
	if [ "$READY_MS" = timeout ]; then
		tail -n 5 "$log" | sed 's/^/  | /'
		status_json "$sock" | head -c 400
		echo
	fi
}

echo "\$ $(show "$BT" spawn "$WORKERS" -- "${WORKER_CMD[@]}")   # baseline"
echo "\$ $(show "$WPOOL" -n "$WORKERS" -s "$TMP/ctl.sock" -- "${WORKER_CMD[@]}") >$TMP/wpool.log 2>&1 &"
echo "\$ $(show "$BT" wait-log "$TMP/wpool.log" " started (pid " "$WORKERS" T0 30)"
echo "\$ $(show "$BT" wait-status "$TMP/ctl.sock" T0 30 2 alive="$WORKERS" ready="$WORKERS")"
echo "# (T0 = \$EPOCHREALTIME just before wpool starts)"
: >"$TMP/base"
: >"$TMP/ready"
: >"$TMP/started"
for ((r = 1; r <= ROUNDS; r++)); do
	b=$(baseline_spawn "${WORKER_CMD[@]}")
	echo "$b" >>"$TMP/base"
	pool_start "$TMP/ctl.sock" "$TMP/wpool.log" "${WORKER_CMD[@]}"
	echo "$READY_MS" >>"$TMP/ready"
	echo "$STARTED_MS" >>"$TMP/started"
	echo "round $r: bare loop $b ms; wpool: all 'started' logged after $STARTED_MS ms," \
	    "alive=ready=$WORKERS after $READY_MS ms"
	if ((r < ROUNDS)); then
		stop_bg "$MASTER"
	fi
done
BASE_MS=$(grep -v timeout "$TMP/base" | median)
READY_MS=$(grep -v timeout "$TMP/ready" | median)
STARTED_MS=$(grep -v timeout "$TMP/started" | median)
grep -q timeout "$TMP/ready" && READY_MS=timeout
echo "median: wpool all ready $READY_MS ms (all started $STARTED_MS ms); bare loop $BASE_MS ms;" \
    "wpool/baseline $(calc "${READY_MS/timeout/0} / $BASE_MS")"
LIVE=$(pgrep -c -g "$MASTER" -x pause 2>/dev/null || echo '?')
echo "pause processes in the pool's process group: $LIVE"

sleep 0.5
RSS=$(proc_field "$MASTER" VmRSS)
HWM=$(proc_field "$MASTER" VmHWM)
ANON=$(proc_field "$MASTER" RssAnon)
FDS=$(find "/proc/$MASTER/fd" -mindepth 1 -maxdepth 1 | wc -l)
PSS=$(rollup "$MASTER" Pss)
echo "master VmRSS $RSS KiB ($(calc "$RSS / 1024") MiB), VmHWM $HWM KiB, $FDS open fds: $(mem_detail "$MASTER")"

echo "\$ $(show "$WPOOL" -s "$TMP/ctl.sock" status --json) # x $CALLS"
ST=$(time_cmd "$CALLS" "$WPOOL" -s "$TMP/ctl.sock" status --json) || die "status failed"
RAW=$(run "$BT" ctl "$TMP/ctl.sock" '{"cmd":"status"}' "$CALLS") || die "benchtool ctl failed"
RAW_MS=$(kv "$RAW" ctl_median_ms)
echo "status --json with $WORKERS workers: median $ST ms (raw socket: median $RAW_MS ms," \
    "p90 $(kv "$RAW" ctl_p90_ms) ms, $(kv "$RAW" response_bytes) bytes)"
echo "\$ $(show "$WPOOL" -s "$TMP/ctl.sock" status) # table x $CALLS"
TABLE_MS=$(time_cmd "$CALLS" "$WPOOL" -s "$TMP/ctl.sock" status)
echo "status table with $WORKERS workers: median $TABLE_MS ms"
RSS_AFTER=$(proc_field "$MASTER" VmRSS)
echo "master VmRSS after the status calls: $RSS_AFTER KiB"

echo "\$ $(show "$WPOOL" -s "$TMP/ctl.sock" stop)"
TS0=$EPOCHREALTIME
"$WPOOL" -s "$TMP/ctl.sock" stop >"$TMP/stop.out" 2>&1
for ((i = 0; i < 500; i++)); do
	kill -0 "$MASTER" 2>/dev/null || break
	sleep 0.01
done
STOP_MS=$(calc "($EPOCHREALTIME - $TS0) * 1000")
kill -0 "$MASTER" 2>/dev/null && STOP_MS=">5000"
echo "stop of $WORKERS workers, until the master exited: $STOP_MS ms"
stop_bg "$MASTER"

echo "# baselines: a 1-worker pool, the client's start-up"
bg "$TMP/one.log" "$WPOOL" -n 1 -s "$TMP/one.sock" -- "${WORKER_CMD[@]}"
ONE=$BG_PID
wait_ready "$TMP/one.sock" 1
check_bg "$ONE"
sleep 0.2
RSS1=$(proc_field "$ONE" VmRSS)
echo "\$ $(show "$WPOOL" -s "$TMP/one.sock" status --json) # x $CALLS"
ST1=$(time_cmd "$CALLS" "$WPOOL" -s "$TMP/one.sock" status --json) || die "status failed"
RAW1=$(run "$BT" ctl "$TMP/one.sock" '{"cmd":"status"}' "$CALLS") || die "benchtool ctl failed"
RAW1_MS=$(kv "$RAW1" ctl_median_ms)
echo "\$ $(show "$WPOOL" --version) # x $CALLS"
VER=$(time_cmd "$CALLS" "$WPOOL" --version)
stop_bg "$ONE"
echo "1 worker: master VmRSS $RSS1 KiB; status --json median $ST1 ms (raw socket $RAW1_MS ms);" \
    "wpool --version: $VER ms"
echo "$WORKERS vs 1 worker: RSS +$(calc "($RSS - $RSS1) / ($WORKERS - 1)") KiB per worker;" \
    "status --json x$(calc "$ST / $ST1"), raw x$(calc "$RAW_MS / $RAW1_MS")"

echo "# the same start with '${SLEEP_CMD[*]}' as the worker"
SBASE_MS=$(baseline_spawn "${SLEEP_CMD[@]}")
pool_start "$TMP/sleep.sock" "$TMP/sleep.log" "${SLEEP_CMD[@]}"
SREADY_MS=$READY_MS
READY_MS=$(grep -v timeout "$TMP/ready" | median)
STARTED_MS=$(grep -v timeout "$TMP/started" | median)
grep -q timeout "$TMP/ready" && READY_MS=timeout
echo "sleep workers: all ready after $SREADY_MS ms; bare loop $SBASE_MS ms;" \
    "ratio $(calc "${SREADY_MS/timeout/0} / $SBASE_MS")"
stop_bg "$MASTER"

result "spawn_${WORKERS}_all_ready_ms" "$READY_MS" "<=" "$SPAWN_TARGET_MS"
result "master_rss_${WORKERS}_workers_mib" "$(calc "$RSS / 1024")" "<=" "$RSS_TARGET_MIB"
result "status_json_${WORKERS}_workers_median_ms" "$ST" "<=" "$STATUS_TARGET_MS"
RESULTS+=("INFO all_started_log_ms=$STARTED_MS baseline_fork_exec_ms=$BASE_MS spawn_vs_baseline_ratio=$(calc "${READY_MS/timeout/0} / $BASE_MS") rounds=$ROUNDS")
RESULTS+=("INFO master_rss_1_worker_kib=$RSS1 master_rss_kib=$RSS master_vmhwm_kib=$HWM master_rss_anon_kib=$ANON master_pss_kib=$PSS master_rss_after_status_kib=$RSS_AFTER master_fds=$FDS")
RESULTS+=("INFO status_raw_socket_median_ms=$RAW_MS status_1_worker_ms=$ST1 status_raw_1_worker_ms=$RAW1_MS status_table_ms=$TABLE_MS client_startup_ms=$VER stop_ms=$STOP_MS")
RESULTS+=("INFO sleep_workers_all_ready_ms=$SREADY_MS sleep_baseline_fork_exec_ms=$SBASE_MS")
finish
exit 0
