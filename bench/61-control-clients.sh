#!/usr/bin/env bash
# 61-control-clients: the master's memory and a legitimate client's
# latency while the control socket is abused (issue 10, item 7).
#
# For each build (WPOOL, and BASE_WPOOL if given, e.g. a build of the
# commit before the fix), a pool of 2 workers and:
#   1. 1000 idle clients connected: master VmRSS with them, and after they
#      left; a legitimate status request's latency meanwhile;
#   2. 5000 clients that connect, send half a request and go, 100 at once:
#      master VmRSS after;
#   3. 40 clients that pipeline status requests and never read, for 4 s:
#      master VmRSS at its peak, legitimate status latencies meanwhile.
# Latency is one connect + {"cmd":"status"} + the answer line, measured
# by a probe in python (no process start in the figure), 5 s at most.
#
# Targets (WPOOL): RSS grows by <= 4 MiB in each case and is given back
# after the clients left; a legitimate status within 100 ms (p90).
# Env: BASE_WPOOL=path to compare; QUICK=1 (2 s of pipelining).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ -n "$QUICK" ]; then FLOOD=2; else FLOOD=4; fi

cat >"$TMP/clients.py" <<'EOF'
import os, socket, sys, time, resource
mode, path = sys.argv[1], sys.argv[2]

def unix(p):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(p)
    return s

if mode == "idle":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    socks = [unix(path) for _ in range(int(sys.argv[3]))]
    print("connected", flush=True)
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.02)
elif mode == "pipeline":
    socks = [unix(path) for _ in range(int(sys.argv[3]))]
    for s in socks:
        s.setblocking(False)
    req = b'{"cmd":"status"}\n' * 64
    end = time.time() + float(sys.argv[4])
    while time.time() < end:
        for s in socks:
            try:
                s.send(req)
            except OSError:
                pass
        time.sleep(0.001)
elif mode == "churn":
    # N connections made and dropped, 100 open at a time, each sending half
    # a request: the pattern that left 266 MB behind before the fix.
    n, live = int(sys.argv[3]), []
    for i in range(n):
        s = unix(path)
        s.send(b'{"cmd":')
        live.append(s)
        if len(live) >= 100:
            live.pop(0).close()
    for s in live:
        s.close()
elif mode == "probe":
    # N probes, one every GAP s: prints each latency in ms, or "timeout".
    n, gap = int(sys.argv[3]), float(sys.argv[4])
    for _ in range(n):
        t0 = time.monotonic()
        try:
            s = unix(path)
            s.settimeout(5)
            s.sendall(b'{"cmd":"status"}\n')
            f = s.makefile("rb")
            ok = f.readline().endswith(b"\n")
            s.close()
            print("%.1f" % ((time.monotonic() - t0) * 1000) if ok else "timeout",
                  flush=True)
        except OSError:
            print("timeout", flush=True)
        time.sleep(gap)
EOF

rss() { proc_field "$1" VmRSS; }

# worst FILE: the largest latency, or "timeout" if any probe timed out.
worst() {
	if grep -q timeout "$1"; then echo timeout; else sort -g "$1" | tail -n1; fi
}

# measure LABEL BINARY: prints the figures, sets R_* for the summary.
measure() {
	local label=$1 bin=$2 sock=$TMP/$1.sock master base during after peak r lat
	bg "$TMP/$label.log" "$bin" -n 2 -s "$sock" -- sleep 100000
	master=$BG_PID
	wait_ready "$sock" 2
	check_bg "$master"
	"$PY" "$TMP/clients.py" probe "$sock" 3 0.05 >/dev/null
	base=$(rss "$master")

	# 1. 1000 idle clients.
	rm -f "$TMP/stop"
	echo "\$ $PY clients.py idle $sock 1000 &"
	"$PY" "$TMP/clients.py" idle "$sock" 1000 "$TMP/stop" >"$TMP/idle.out" &
	local ipid=$!
	for ((r = 0; r < 200; r++)); do
		grep -q connected "$TMP/idle.out" 2>/dev/null && break
		sleep 0.05
	done
	lat=$("$PY" "$TMP/clients.py" probe "$sock" 5 0.05 | tee "$TMP/lat1" | p90)
	during=$(rss "$master")
	touch "$TMP/stop"
	wait "$ipid"
	sleep 0.5
	"$PY" "$TMP/clients.py" probe "$sock" 1 0 >/dev/null
	after=$(rss "$master")
	echo "$label: RSS KiB $base idle, $during with 1000 idle clients," \
	    "$after after they left; status p90 $lat ms (worst $(worst "$TMP/lat1") ms)"
	eval "R_${label}_idle_during=$((during - base)) R_${label}_idle_after=$((after - base)) R_${label}_idle_lat=$lat"

	# 2. 5000 clients that come and go.
	base=$(rss "$master")
	echo "\$ $PY clients.py churn $sock 5000"
	"$PY" "$TMP/clients.py" churn "$sock" 5000
	sleep 0.5
	"$PY" "$TMP/clients.py" probe "$sock" 1 0 >/dev/null
	after=$(rss "$master")
	echo "$label: RSS KiB $base before, $after after 5000 clients came and went"
	eval "R_${label}_churn=$((after - base))"

	# 3. 40 pipelining non-readers.
	base=$(rss "$master")
	echo "\$ $PY clients.py pipeline $sock 40 $FLOOD &"
	"$PY" "$TMP/clients.py" pipeline "$sock" 40 "$FLOOD" &
	local ppid=$!
	sleep 0.3
	"$PY" "$TMP/clients.py" probe "$sock" $((FLOOD * 3)) 0.25 >"$TMP/lat2" &
	local qpid=$!
	peak=$base
	while kill -0 "$ppid" 2>/dev/null; do
		r=$(rss "$master")
		[ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r
		sleep 0.1
	done
	wait "$ppid"
	wait "$qpid"
	lat=$(grep -v timeout "$TMP/lat2" | p90)
	local w
	w=$(worst "$TMP/lat2")
	echo "$label: RSS KiB $base before, $peak at peak with 40 pipelining" \
	    "non-readers; status p90 $lat ms, worst $w ms," \
	    "$(grep -c timeout "$TMP/lat2") of $(wc -l <"$TMP/lat2") timed out"
	eval "R_${label}_pipe_peak=$((peak - base)) R_${label}_pipe_lat=$lat R_${label}_pipe_worst=$w"
	stop_bg "$master"
}

preflight
measure new "$WPOOL"
if [ -n "${BASE_WPOOL:-}" ]; then
	measure base "$BASE_WPOOL"
	echo "ratios base/new: idle RSS growth" \
	    "$(calc "$R_base_idle_during / ($R_new_idle_during > 0 ? $R_new_idle_during : 1)")," \
	    "churn RSS kept" \
	    "$(calc "$R_base_churn / ($R_new_churn > 0 ? $R_new_churn : 1)")," \
	    "pipelining RSS growth" \
	    "$(calc "$R_base_pipe_peak / ($R_new_pipe_peak > 0 ? $R_new_pipe_peak : 1)")"
fi

result idle_rss_growth_kib "$R_new_idle_during" "<=" 4096
result idle_rss_kept_after_kib "$R_new_idle_after" "<=" 1024
result idle_status_p90_ms "$R_new_idle_lat" "<=" 100
result churn_rss_kept_kib "$R_new_churn" "<=" 1024
result pipeline_rss_growth_kib "$R_new_pipe_peak" "<=" 4096
result pipeline_status_p90_ms "$R_new_pipe_lat" "<=" 100
finish
