#!/usr/bin/env bash
# 02-idle: an idle master must not wake up, and must stay small.
#
# wpool -n 4 with a listener and the control socket open, workers idle:
# the master's context switches (voluntary + involuntary, from
# /proc/PID/status) over a quiet window, and its VmRSS.  Then one
# `wpool status` call, and a second quiet window: serving a control
# request must leave no timer or poll behind (target: 0 again).
# Baseline in the same run: `sleep`, a process that is blocked for good,
# measured over the same windows (it must read 0; if it does not, the
# machine itself is disturbing the measurement).
#
# The same pool under `make static`'s wpool-static, started beside it and
# measured at the same moments: its master's VmRSS, and the ratio to the
# dynamic one's (tini-static and dumb-init read 1.2 and 1.1 MB).
#
# Targets: 0 wake-ups per window, master RSS <= 2 MiB, static master RSS
# <= 1.2 MiB.
# Env: QUICK=1 (3 s windows instead of 10 s), WINDOW=SEC,
# WPOOL_STATIC=PATH (default ./wpool-static, built by `make static` when
# missing).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then WINDOW=${WINDOW:-3}; else WINDOW=${WINDOW:-10}; fi
RSS_TARGET_KIB=2048
WPOOL_STATIC=${WPOOL_STATIC:-$ROOT/wpool-static}

preflight
if [ ! -x "$WPOOL_STATIC" ]; then
	run make -s -C "$ROOT" static >&2 || die "make static failed"
fi
ldd "$WPOOL_STATIC" 2>&1 | grep -q 'not a dynamic executable' ||
    die "$WPOOL_STATIC is not static: make static"

bg "$TMP/wpool.log" "$WPOOL" -n 4 -b 127.0.0.1:0 -s "$TMP/ctl.sock" -- "$TESTSRV"
MASTER=$BG_PID
bg "$TMP/static.log" "$WPOOL_STATIC" -n 4 -b 127.0.0.1:0 -s "$TMP/sctl.sock" -- "$TESTSRV"
SMASTER=$BG_PID
bg "$TMP/sleep.log" sleep 100000
BASE=$BG_PID
PORT=$(wait_port "$TMP/wpool.log")
wait_ready "$TMP/ctl.sock" 4
SPORT=$(wait_port "$TMP/static.log")
wait_ready "$TMP/sctl.sock" 4
check_bg "$MASTER"
check_bg "$SMASTER"
check_bg "$BASE"
# Let start-up settle (first status calls, worker start) before counting.
sleep 1

# window LABEL: context switches of master and baseline over WINDOW s.
window() {
	local label=$1 m0 m1 b0 b1 w0 w1 s0 s1 pids p
	pids=$(status_json_workers)
	m0=$(ctxt "$MASTER")
	s0=$(ctxt "$SMASTER")
	b0=$(ctxt "$BASE")
	w0=0
	for p in $pids; do w0=$((w0 + $(ctxt "$p"))); done
	nap "$WINDOW"
	m1=$(ctxt "$MASTER")
	s1=$(ctxt "$SMASTER")
	b1=$(ctxt "$BASE")
	w1=0
	for p in $pids; do w1=$((w1 + $(ctxt "$p"))); done
	WAKE=$((m1 - m0))
	BWAKE=$((b1 - b0))
	SWAKE=$((s1 - s0))
	printf '%-28s master %d context switches in %ss (%s/s); static master %d; baseline sleep %d; 4 workers %d\n' \
	    "$label" "$WAKE" "$WINDOW" "$(calc "$WAKE / $WINDOW")" "$SWAKE" "$BWAKE" $((w1 - w0))
}

# The worker pids, read once before the window (status would wake the
# master, so never during one).
status_json_workers() {
	grep -o '"pid":[0-9]*' <<<"$(status_json "$TMP/ctl.sock")" |
	    tail -n +2 | cut -d: -f2
}

echo "# reading /proc/$MASTER/status (voluntary_ctxt_switches + nonvoluntary_ctxt_switches, VmRSS)"
echo "# and /proc/$BASE/status for the baseline, ${WINDOW}s apart"
window "idle:"
IDLE1=$WAKE
BASE1=$BWAKE
RSS=$(proc_field "$MASTER" VmRSS)
BRSS=$(proc_field "$BASE" VmRSS)
HWM=$(proc_field "$MASTER" VmHWM)
ANON=$(proc_field "$MASTER" RssAnon)
FILE=$(proc_field "$MASTER" RssFile)
BANON=$(proc_field "$BASE" RssAnon)
BFILE=$(proc_field "$BASE" RssFile)
PSS=$(rollup "$MASTER" Pss)
STACK=$(stack_rss "$MASTER")
echo "master VmRSS $RSS KiB ($(calc "$RSS / 1024") MiB), VmHWM $HWM KiB: $(mem_detail "$MASTER")"
echo "baseline sleep VmRSS $BRSS KiB: $(mem_detail "$BASE")"
echo "master/baseline VmRSS $(calc "$RSS / $BRSS")"
SRSS=$(proc_field "$SMASTER" VmRSS)
SANON=$(proc_field "$SMASTER" RssAnon)
SFILE=$(proc_field "$SMASTER" RssFile)
echo "static master ($(show "$WPOOL_STATIC")) VmRSS $SRSS KiB ($(calc "$SRSS / 1024") MiB): $(mem_detail "$SMASTER")"
echo "static/dynamic master VmRSS $(calc "$SRSS / $RSS")"

echo "\$ $(show "$WPOOL" -s "$TMP/ctl.sock" status)"
"$WPOOL" -s "$TMP/ctl.sock" status >"$TMP/status.out" ||
    die "wpool status failed"
sed 's/^/  | /' "$TMP/status.out" | head -n 4
"$WPOOL" -s "$TMP/sctl.sock" status >/dev/null ||
    die "wpool status of the static pool failed"
# The call itself wakes the master; count from when it answered.
window "idle after 'wpool status':"
IDLE2=$WAKE
BASE2=$BWAKE
RSS2=$(proc_field "$MASTER" VmRSS)
SRSS2=$(proc_field "$SMASTER" VmRSS)
echo "master VmRSS after status $RSS2 KiB; static master $SRSS2 KiB"

curl -fsS -m 2 "http://127.0.0.1:$PORT/" >/dev/null ||
    die "pool stopped answering"
curl -fsS -m 2 "http://127.0.0.1:$SPORT/" >/dev/null ||
    die "static pool stopped answering"

result master_idle_wakeups "$IDLE1" "<=" 0
result master_idle_wakeups_after_status "$IDLE2" "<=" 0
result master_rss_mib "$(calc "$RSS / 1024")" "<=" "$(calc "$RSS_TARGET_KIB / 1024")"
result static_master_rss_mib "$(calc "$SRSS / 1024")" "<=" 1.2
result static_master_idle_wakeups "$SWAKE" "<=" 0
RESULTS+=("INFO window_s=$WINDOW baseline_sleep_wakeups=$BASE1,$BASE2 baseline_sleep_rss_kib=$BRSS master_rss_kib=$RSS master_rss_anon_kib=$ANON master_rss_file_kib=$FILE master_pss_kib=$PSS master_stack_kib=$STACK baseline_rss_anon_kib=$BANON baseline_rss_file_kib=$BFILE master_rss_after_status_kib=$RSS2 master_vmhwm_kib=$HWM static_master_rss_kib=$SRSS static_master_rss_anon_kib=$SANON static_master_rss_file_kib=$SFILE static_master_rss_after_status_kib=$SRSS2 static_over_dynamic_rss=$(calc "$SRSS / $RSS")")
stop_bg "$MASTER"
stop_bg "$SMASTER"
stop_bg "$BASE"
finish
exit 0
