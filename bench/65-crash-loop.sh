#!/usr/bin/env bash
# 65-crash-loop: a command that dies at once of a KILL (as the OOM killer
# or a wrapper's `kill -9 $$` would end it), before and after issue 10
# item 11.
#
# wpool -n 1 -- sh -c 'kill -9 $$', for WINDOW seconds (default 10), once
# with the base build and once with this tree's, in this run: the number of
# worker starts in the window, the master's CPU (utime + stime) and its
# reaped children's (cutime + cstime), each as % of one core.
#
# Baseline: a880363 (BASE_REV), exported with git archive and built in
# $TMP, or BASE_WPOOL=path to a built wpool.
# Targets: at most 20 starts in 10 s (the crash back-off doubling from
# --restart-delay), master <= 2 % of a core.
# Env: QUICK=1 (3 s windows), WINDOW=N, BASE_REV, BASE_WPOOL.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then WINDOW=${WINDOW:-3}; else WINDOW=${WINDOW:-10}; fi
BASE_REV=${BASE_REV:-a880363}
HZ=$(getconf CLK_TCK)

if [ -z "${BASE_WPOOL:-}" ]; then
	mkdir -p "$TMP/base"
	echo "\$ git archive $BASE_REV | tar -x -C \$TMP/base && make -C \$TMP/base wpool"
	git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$TMP/base" ||
	    die "cannot export $BASE_REV"
	make -s -C "$TMP/base" wpool >"$TMP/base-build.log" 2>&1 ||
	    die "cannot build $BASE_REV (see $TMP/base-build.log)"
	BASE_WPOOL=$TMP/base/wpool
fi

# cpu_ticks PID: "self children" clock ticks from /proc/PID/stat.
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13, $14 + $15 }' "/proc/$1/stat"
}

# measure NAME BINARY: prints and records starts, master and children CPU.
measure() {
	local name=$1 bin=$2 log=$TMP/$1.log span m s0 c0 s1 c1 n0 n1 starts mcpu ccpu
	bg "$log" "$bin" -n 1 -s "$TMP/$name.sock" -- sh -c 'kill -9 $$'
	m=$BG_PID
	sleep 0.2
	check_bg "$m"
	# Starts from the first on; CPU from 0.2 s in (the master's own start).
	read -r s0 c0 < <(cpu_ticks "$m")
	n0=0
	span=$(calc "$WINDOW - 0.2")
	nap "$span"
	read -r s1 c1 < <(cpu_ticks "$m")
	n1=$(grep -c 'started' "$log")
	stop_bg "$m"
	starts=$((n1 - n0))
	mcpu=$(calc "($s1 - $s0) * 100 / $HZ / $span")
	ccpu=$(calc "($c1 - $c0) * 100 / $HZ / $span")
	echo "  $name: $starts starts in ${WINDOW}s, master ${mcpu}% of a core, children ${ccpu}%"
	grep -m1 'OOM?' "$log" | sed 's/^/  log: /'
	eval "${name}_starts=$starts ${name}_mcpu=$mcpu ${name}_ccpu=$ccpu"
}

preflight
measure base "$BASE_WPOOL"
measure new "$WPOOL"
# shellcheck disable=SC2154  # set by measure
{
	echo "  starts: base $base_starts, new $new_starts" \
	    "(ratio $(calc "$base_starts / ($new_starts > 0 ? $new_starts : 1)"))"
	result starts_per_10s "$(calc "$new_starts * 10 / $WINDOW")" "<=" 20
	result master_cpu_pct "$new_mcpu" "<=" 2
}
finish
