#!/usr/bin/env bash
# 03-restart-latency: how long a client waits when a worker is killed.
#
# wpool -n 1 --restart-delay 0 -- testsrv, shared mode.  50 times: ask
# `GET /` which pid serves, SIGKILL it, then connect + `GET /` every 0.2 ms
# until a different pid answers.  The master keeps the listening socket
# open, so a connection made meanwhile waits in the backlog and is answered
# by the replacement: the figure is what a client sees, from the kill to
# the replacement's first answer (death noticed, reaped, fork, exec, the
# server's own start-up, accept).
#
# Baseline in the same run: the same measurement against the smallest
# possible supervisor (benchtool restart-baseline: holds the listener,
# SIGKILLs its child, waitpid, fork+exec at once) running the same testsrv.
#
# Each replacement lives PAUSE_MS (150) before it is killed: a worker that
# dies within 0.1 s of its start twice in a row, whatever the signal, is a
# crash loop (the OOM killer in a small cgroup) and backs off, so faster
# kills would measure the back-off, not the restart.
#
# Targets: median and p90 <= 5 ms.
# Env: QUICK=1 (10 kills), KILLS=N, POLL_US=N (default 200), PAUSE_MS=N.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then KILLS=${KILLS:-10}; else KILLS=${KILLS:-50}; fi
POLL_US=${POLL_US:-200}
PAUSE_MS=${PAUSE_MS:-150}
TARGET_MS=5

preflight
build_benchtool

bg "$TMP/wpool.log" "$WPOOL" -n 1 --restart-delay 0 -b 127.0.0.1:0 \
    -s "$TMP/ctl.sock" -- "$TESTSRV"
MASTER=$BG_PID
PORT=$(wait_port "$TMP/wpool.log")
wait_ready "$TMP/ctl.sock" 1
check_bg "$MASTER"

echo "# benchtool (bench/benchtool.c) built as $TMP/benchtool"
run "$BT" restart "$PORT" "$KILLS" "$POLL_US" "$PAUSE_MS" >"$TMP/restart.out" ||
    die "benchtool restart failed"
grep '^sample=' "$TMP/restart.out" | awk '{ print "  " $0 }' | head -n 5
echo "  ... ($KILLS samples in $TMP/restart.out)"
OUT=$(cat "$TMP/restart.out")

run "$BT" restart-baseline "$KILLS" "$POLL_US" "$PAUSE_MS" -- "$TESTSRV" >"$TMP/base.out" ||
    die "benchtool restart-baseline failed"
BOUT=$(cat "$TMP/base.out")

MED=$(kv "$OUT" restart_median_ms)
P90=$(kv "$OUT" restart_p90_ms)
BMED=$(kv "$BOUT" baseline_median_ms)
BP90=$(kv "$BOUT" baseline_p90_ms)
FAIL=$(kv "$OUT" failures)
echo
echo "wpool:    kill -> replacement answers: median $MED ms, p90 $P90 ms," \
    "min $(kv "$OUT" restart_min_ms) ms, max $(kv "$OUT" restart_max_ms) ms" \
    "($(kv "$OUT" restart_n) samples, $FAIL timeouts)"
echo "baseline: kill -> replacement answers: median $BMED ms, p90 $BP90 ms," \
    "min $(kv "$BOUT" baseline_min_ms) ms, max $(kv "$BOUT" baseline_max_ms) ms" \
    "($(kv "$BOUT" baseline_n) samples)"
echo "wpool/baseline: median $(calc "$MED / $BMED"), p90 $(calc "$P90 / $BP90")"

# The log must say why each worker came back: check that no back-off
# was applied to outside kills.
BACKOFF=$(grep -c 'back-off\|backoff' "$TMP/wpool.log")
echo "log lines mentioning back-off: $BACKOFF (outside kills must restart at once)"
grep -m2 'killed by signal KILL' "$TMP/wpool.log" | sed 's/^/  | /'

result restart_latency_median_ms "$MED" "<=" "$TARGET_MS"
result restart_latency_p90_ms "$P90" "<=" "$TARGET_MS"
RESULTS+=("INFO baseline_median_ms=$BMED baseline_p90_ms=$BP90 wpool_vs_baseline_median_ratio=$(calc "$MED / $BMED") timeouts=$FAIL backoff_log_lines=$BACKOFF")
stop_bg "$MASTER"
finish
exit 0
