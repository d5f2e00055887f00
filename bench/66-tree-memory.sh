#!/usr/bin/env bash
# 66-tree-memory: what measuring a worker's whole tree (issue 14) costs
# the master.  With --max-memory the master samples every worker each
# second: now the worker's descendants (task/*/children) and each one's
# PSS (smaps_rollup, which walks its page tables), before only the
# worker's /proc/PID/stat.
#
# For each case, `wpool -n 1 --ready exec --max-memory 100G -- tree.py K MB`
# (a python worker with K-1 children, each touching MB MiB) idles for
# SECS seconds; the master's CPU time (schedstat) over that window,
# per second, is the figure:
#   base-64x8   the base build (top process's RSS only), 64 processes;
#   this-1x8    this build, 1 process of 8 MiB (the baseline);
#   this-64x8   this build, 64 processes of 8 MiB;
#   this-1x512  this build, 1 process of 512 MiB (a big page table).
# The tree's memory as status shows it is printed beside (INFO).
# Target: this-64x8 costs the master at most 20 ms of CPU a second (2 %
# of one CPU).  Env: QUICK=1 (SECS=4), SECS=N, BASE_WPOOL=path (default
# /tmp/crashmem-base/wpool, built from BASE_REV=409b089 with git archive).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then SECS=${SECS:-4}; else SECS=${SECS:-8}; fi
BASE_REV=${BASE_REV:-409b089}
BASE_WPOOL=${BASE_WPOOL:-/tmp/crashmem-base/wpool}

preflight
command -v python3 >/dev/null || die "python3 is missing"
if [ ! -x "$BASE_WPOOL" ]; then
	bdir=$(dirname "$BASE_WPOOL")
	mkdir -p "$bdir" || die "cannot make $bdir"
	git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$bdir" ||
	    die "cannot extract $BASE_REV into $bdir"
	run make -s -C "$bdir" wpool >/dev/null || die "cannot build $BASE_WPOOL"
fi

cat >"$TMP/tree.py" <<'PY'
import os, sys, time
k, mb = int(sys.argv[1]), int(sys.argv[2])
def touch():
    b = bytearray(mb << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return b
for _ in range(k - 1):
    if os.fork() == 0:
        keep = touch()
        while True:
            time.sleep(60)
keep = touch()
while True:
    time.sleep(60)
PY

# measure NAME WPOOL K MB: sets MS (master CPU ms per second) and MEM.
measure() {
	local name=$1 wp=$2 k=$3 mb=$4 sock=$TMP/$1.sock i j t0 t1 n
	bg "$TMP/$name.log" "$wp" -s "$sock" -n 1 --ready exec \
	    --max-memory 100G -- python3 "$TMP/tree.py" "$k" "$mb"
	local pid=$BG_PID
	check_bg "$pid"
	# Until the tree is complete and touched: its processes' VmRSS.
	for ((i = 0; i < 1000; i++)); do
		n=$(pgrep -c -g "$(pgrep -P "$pid" | head -n1)" 2>/dev/null || echo 0)
		[ "$n" -ge "$k" ] && break
		sleep 0.02
	done
	sleep 1
	t0=$(cpu_ns "$pid")
	sleep "$SECS"
	t1=$(cpu_ns "$pid")
	MS=$(calc "($t1 - $t0) / 1000000 / $SECS")
	j=$(status_json "$sock")
	MEM=$(printf '%s' "$j" | python3 -c 'import json,sys
w = json.load(sys.stdin)["workers"][0]
print("%s procs, %s %.1f MiB, own rss %.1f MiB" % (w.get("mem_procs", 1),
    w.get("mem_kind", "rss(top)"), w.get("mem_bytes", w["rss_bytes"]) / 2**20,
    w["rss_bytes"] / 2**20))')
	echo "# $name: master CPU $MS ms/s; $MEM"
	stop_bg "$pid"
}

measure base-64x8 "$BASE_WPOOL" 64 8
base=$MS
measure this-1x8 "$WPOOL" 1 8
one=$MS
measure this-64x8 "$WPOOL" 64 8
tree=$MS
mem64=$MEM
measure this-1x512 "$WPOOL" 1 512
big=$MS

RESULTS+=("INFO base-64x8 master_cpu_ms_per_s=$base (top process only)")
RESULTS+=("INFO this-1x8 master_cpu_ms_per_s=$one")
RESULTS+=("INFO this-64x8 master_cpu_ms_per_s=$tree; $mem64")
RESULTS+=("INFO this-1x512 master_cpu_ms_per_s=$big")
RESULTS+=("INFO ratio this-64x8/this-1x8=$(calc "$tree / ($one > 0 ? $one : 0.001)") this-64x8/base-64x8=$(calc "$tree / ($base > 0 ? $base : 0.001)")")
result this_64x8_master_cpu_ms_per_s "$tree" "<=" 20
finish
