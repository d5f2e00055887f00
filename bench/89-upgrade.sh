#!/usr/bin/env bash
# 89-upgrade: how long `wpool upgrade` takes, and whether clients notice.
#
# Part 1, duration: wpool -n 4 -- testsrv, idle.  The wall time of the
# `wpool upgrade` command (from the request until the new master answers
# status on the handed-over control socket), median of REPEAT runs,
# against a baseline measured in the same run: a restart, `wpool stop`
# then a new wpool answering status with 4 ready workers (what an upgrade
# without the in-place exec costs: the workers are started anew and the
# listeners closed meanwhile).  The master's own figure (request to
# adopted, status's upgrade.seconds) is shown too.  Target: ratio <= 0.5.
#
# Part 2, under load: wrk -t1 -c32 -H 'Connection: close' against wpool
# -n 4 while UPGRADES upgrades run back to back; target: 0 socket errors
# and 0 non-2xx, and the worker pids unchanged.  The same load across one
# stop + start is shown for contrast.
#
# Env: QUICK=1 (3 runs, 3 upgrades under load), REPEAT=N (7), UPGRADES=N (10).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	REPEAT=${REPEAT:-3} UPGRADES=${UPGRADES:-3}
else
	REPEAT=${REPEAT:-7} UPGRADES=${UPGRADES:-10}
fi
RATIO_TARGET=0.5

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"

# pids SOCK: the workers' pids, sorted.
pids() {
	status_json "$1" | python3 -c '
import json, sys
print(" ".join(str(w["pid"]) for w in sorted(json.load(sys.stdin)["workers"],
      key=lambda w: w["pid"])))'
}

ms_since() {
	calc "($EPOCHREALTIME - $1) * 1000"
}

# --- part 1 ------------------------------------------------------------
sock=$TMP/ctl.sock
bg "$TMP/wpool.log" "$WPOOL" -n 4 -b 127.0.0.1:0 -s "$sock" -- "$TESTSRV"
pid=$BG_PID
wait_port "$TMP/wpool.log" >/dev/null
wait_ready "$sock" 4
check_bg "$pid"
before=$(pids "$sock")
echo "\$ $(show "$WPOOL" -s "$sock" upgrade)   # x $REPEAT"
: >"$TMP/up" ; : >"$TMP/master"
for ((i = 0; i < REPEAT; i++)); do
	t0=$EPOCHREALTIME
	"$WPOOL" -s "$sock" upgrade >"$TMP/up.out" 2>&1 ||
	    die "wpool upgrade failed: $(cat "$TMP/up.out")"
	ms_since "$t0" >>"$TMP/up"
	status_json "$sock" | python3 -c '
import json, sys
print("%.3f" % (json.load(sys.stdin)["upgrade"]["seconds"] * 1000))' >>"$TMP/master"
	sleep 0.1
done
after=$(pids "$sock")
[ "$before" = "$after" ] || echo "  warning: worker pids changed: $before -> $after"
[ "$(ps -o pid= -p "$pid" | tr -d ' ')" = "$pid" ] || echo "  warning: master gone"
stop_bg "$pid"
up_med=$(median <"$TMP/up")
master_med=$(median <"$TMP/master")

echo "\$ $(show "$WPOOL" -s "$sock" stop); $(show "$WPOOL" -n 4 -b 127.0.0.1:PORT -s "$sock" -- "$TESTSRV")   # until status shows 4 ready, x $REPEAT"
: >"$TMP/restart"
bg "$TMP/r.log" "$WPOOL" -n 4 -b 127.0.0.1:0 -s "$sock" -- "$TESTSRV"
rpid=$BG_PID
port=$(wait_port "$TMP/r.log")
wait_ready "$sock" 4
for ((i = 0; i < REPEAT; i++)); do
	t0=$EPOCHREALTIME
	"$WPOOL" -s "$sock" stop >/dev/null 2>&1
	wait "$rpid" 2>/dev/null
	bg "$TMP/r$i.log" "$WPOOL" -n 4 -b "127.0.0.1:$port" -s "$sock" -- "$TESTSRV"
	rpid=$BG_PID
	wait_ready "$sock" 4 >/dev/null
	ms_since "$t0" >>"$TMP/restart"
done
stop_bg "$rpid"
restart_med=$(median <"$TMP/restart")
ratio=$(calc "$up_med / $restart_med")
echo "upgrade command to new master answering: median $up_med ms ($(paste -sd' ' "$TMP/up") ms);" \
    "master's own (request to adopted): median $master_med ms"
echo "restart (stop, start, 4 ready): median $restart_med ms ($(paste -sd' ' "$TMP/restart") ms); ratio $ratio"
result upgrade_vs_restart_ratio "$ratio" "<=" "$RATIO_TARGET"
RESULTS+=("INFO upgrade_ms=$up_med upgrade_master_ms=$master_med restart_ms=$restart_med runs=$REPEAT")

# --- part 2 ------------------------------------------------------------
# load NAME ACTION: wrk -H 'Connection: close' while ACTION runs; sets ERRS.
load() {
	local name=$1 action=$2 out errs non2xx i wpid
	bg "$TMP/wpool-$name.log" "$WPOOL" -n 4 -b 127.0.0.1:0 -s "$sock" -- "$TESTSRV"
	LPID=$BG_PID
	port=$(wait_port "$TMP/wpool-$name.log")
	wait_ready "$sock" 4
	check_bg "$LPID"
	before=$(pids "$sock")
	bg "$TMP/wrk-$name.out" wrk -t1 -c32 -d120s -H 'Connection: close' \
	    "http://127.0.0.1:$port/"
	wpid=$BG_PID
	sleep 0.5
	$action
	sleep 0.5
	wrk_stop "$wpid" "$TMP/wrk-$name.out"
	errs=$WRK_ERRS non2xx=$WRK_NON2XX
	printf '%-8s %s requests; socket errors: %s; non-2xx: %s\n' "$name" \
	    "${REQS:-?}" "${errs:-none}" "${non2xx:-0}"
}

upgrades() {
	echo "\$ $(show "$WPOOL" -s "$sock" upgrade)   # x $UPGRADES, back to back"
	for ((i = 0; i < UPGRADES; i++)); do
		"$WPOOL" -s "$sock" upgrade >>"$TMP/ups.out" 2>&1 ||
		    echo "upgrade $i failed: $(tail -n 1 "$TMP/ups.out")"
	done
	[ "$(pids "$sock")" = "$before" ] || echo "  warning: worker pids changed"
	UPS=$(status_json "$sock" | python3 -c '
import json, sys; print(json.load(sys.stdin)["upgrade"]["upgrades"])')
}

restart() {
	echo "\$ $(show "$WPOOL" -s "$sock" stop); $(show "$WPOOL" -n 4 -b "127.0.0.1:$port" -s "$sock" -- "$TESTSRV")"
	"$WPOOL" -s "$sock" stop >/dev/null 2>&1
	wait "$LPID" 2>/dev/null
	bg "$TMP/wpool-restarted.log" "$WPOOL" -n 4 -b "127.0.0.1:$port" -s "$sock" -- "$TESTSRV"
	LPID=$BG_PID
	wait_ready "$sock" 4
}

echo "# under load: wrk -t1 -c32 -H 'Connection: close'"
load upgrade upgrades
stop_bg "$LPID"
echo "  $UPS upgrades done"
result upgrade_under_load_errors "$ERRS" "<=" 0
RESULTS+=("INFO upgrade_under_load_requests=$REQS upgrades=$UPS")
load restart restart
stop_bg "$LPID"
RESULTS+=("INFO restart_under_load_errors=$ERRS requests=$REQS (one stop + start, for contrast)")

finish
exit 0
