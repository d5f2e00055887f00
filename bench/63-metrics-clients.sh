#!/usr/bin/env bash
# 63-metrics-clients: a scrape of --metrics while hostile clients hold it
# (issue 10, item 8), for the base build and this one in the same run.
#
# For each build: `wpool -n 1 --metrics 127.0.0.1:0 -b 127.0.0.1:0 --
# tests/bin/testsrv`; then tests/bin/http_attack.py opens an attack and,
# while it is held, times SCRAPES `curl` scrapes of /metrics one after the
# other (each bounded by --max-time $SCRAPE_TIMEOUT; an unanswered scrape
# counts as that bound):
#   quiet     no attack (the baseline each build's figures are divided by);
#   idle3000  3000 connections that never send anything;
#   slow300   300 slowloris connections (a request that never ends, one
#             byte every 0.2 s, reconnected when dropped).
# The attack comes from 127.0.0.2, another address than the scraper's
# (127.0.0.1), as an attacker on the network does; the same two attacks
# from the scraper's own address are measured for this build as INFO
# (then only the order of progress protects the scraper).  The master's
# open fds and VmRSS are read while the attack is held.
#
# Targets (this build): every scrape answered, the slowest within 1 s
# under each attack.  The base build's figures are INFO.
# Env: QUICK=1 (2 scrapes instead of 3), SCRAPES=N, SCRAPE_TIMEOUT=SEC,
# BASE_WPOOL=path (default /tmp/metrics-base/wpool, built from BASE_REV,
# default a880363, with `git worktree add` and `make wpool` if missing).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then SCRAPES=${SCRAPES:-2}; else SCRAPES=${SCRAPES:-3}; fi
SCRAPE_TIMEOUT=${SCRAPE_TIMEOUT:-4}
BASE_REV=${BASE_REV:-a880363}
BASE_WPOOL=${BASE_WPOOL:-/tmp/metrics-base/wpool}
ATTACK=(python3 "$ROOT/tests/bin/http_attack.py")

preflight
command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing"
if [ ! -x "$BASE_WPOOL" ]; then
	bdir=$(dirname "$BASE_WPOOL")
	[ -e "$bdir" ] || run git -C "$ROOT" worktree add --detach "$bdir" "$BASE_REV" >/dev/null ||
	    die "cannot check out $BASE_REV in $bdir"
	run make -s -C "$bdir" wpool >/dev/null || die "cannot build $BASE_WPOOL"
fi
echo "# base: $BASE_WPOOL ($(git -C "$(dirname "$BASE_WPOOL")" log -1 --format=%h 2>/dev/null || echo '?'))"
echo "# this: $WPOOL ($(git -C "$ROOT" log -1 --format=%h 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ', modified'))"

# metrics_port LOG: the port of `metrics on http://127.0.0.1:PORT/metrics`.
metrics_port() {
	local i port
	for ((i = 0; i < 500; i++)); do
		port=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' \
		    "$1" 2>/dev/null | head -n1)
		[ -n "$port" ] && { echo "$port"; return 0; }
		sleep 0.01
	done
	cat "$1" >&2
	die "no metrics port in $1"
}

# measure NAME WPOOL ATTACK-OPTIONS...: one pool, one attack; sets
# ANSWERED, WORST (s), MEDIAN (s), FDS (held while attacked, above the
# quiet master's), RSS (KiB).
measure() {
	local name=$1 bin=$2 log out i port master fds0 lat
	shift 2
	log=$TMP/$name.log
	out=$TMP/$name.attack
	bg "$log" "$bin" -n 1 --metrics 127.0.0.1:0 -b 127.0.0.1:0 \
	    -s "$TMP/$name.sock" -- "$TESTSRV"
	master=$BG_PID
	port=$(metrics_port "$log")
	check_bg "$master"
	fds0=$(find "/proc/$master/fd" -mindepth 1 -maxdepth 1 | wc -l)
	: >"$out"
	echo "\$ $(show "${ATTACK[@]}" flood "$port" "$@" --scrapes "$SCRAPES" \
	    --scrape-timeout "$SCRAPE_TIMEOUT" --hold 1) >$out"
	"${ATTACK[@]}" flood "$port" "$@" --scrapes "$SCRAPES" \
	    --scrape-timeout "$SCRAPE_TIMEOUT" --hold 1 >"$out" 2>&1 &
	local apid=$!
	for ((i = 0; i < 600; i++)); do
		grep -q '^holding' "$out" && break
		kill -0 "$apid" 2>/dev/null || break
		sleep 0.05
	done
	FDS=$(($(find "/proc/$master/fd" -mindepth 1 -maxdepth 1 | wc -l) - fds0))
	RSS=$(proc_field "$master" VmRSS)
	wait "$apid"
	stop_bg "$master"
	ANSWERED=$(grep -c '^scrape [0-9]* 200 ' "$out")
	lat=$(awk -v t="$SCRAPE_TIMEOUT" '$1 == "scrape" {
	    print ($3 == 200 ? $4 : t) }' "$out")
	WORST=$(sort -g <<<"$lat" | tail -n1)
	MEDIAN=$(median <<<"$lat")
	printf '%-8s %-9s %d/%d answered, median %.3f s, worst %.3f s; master +%d fds, VmRSS %d KiB (%s)\n' \
	    "${name%%-*}" "${name#*-}" "$ANSWERED" "$SCRAPES" "$MEDIAN" "$WORST" \
	    "$FDS" "$RSS" "$(grep '^attack' "$out" | cut -d' ' -f2-)"
}

declare -A ANS MED WST FD
for build in base this; do
	bin=$WPOOL
	[ "$build" = base ] && bin=$BASE_WPOOL
	for attack in quiet idle3000 slow300 idle3000same slow300same; do
		case $attack in
		quiet) opts=() ;;
		idle3000) opts=(--src 127.0.0.2 --idle 3000) ;;
		slow300) opts=(--src 127.0.0.2 --slow 300 --gap 0.2) ;;
		idle3000same) opts=(--idle 3000) ;;
		slow300same) opts=(--slow 300 --gap 0.2) ;;
		esac
		[ "$build" = base ] && [[ $attack == *same ]] && continue
		measure "$build-$attack" "$bin" "${opts[@]}"
		ANS[$build-$attack]=$ANSWERED
		MED[$build-$attack]=$MEDIAN
		WST[$build-$attack]=$WORST
		FD[$build-$attack]=$FDS
	done
done

for attack in idle3000 slow300; do
	for build in base this; do
		echo "INFO ${build}_${attack}_worst_s=${WST[$build-$attack]}" \
		    "median_s=${MED[$build-$attack]}" \
		    "answered=${ANS[$build-$attack]}/$SCRAPES" \
		    "vs_quiet=$(calc "${MED[$build-$attack]} / ${MED[$build-quiet]}")" \
		    "master_extra_fds=${FD[$build-$attack]}"
	done
	echo "INFO ${attack}_worst_this_vs_base=$(calc "${WST[this-$attack]} / ${WST[base-$attack]}")"
	result "metrics_scrape_${attack}_answered" "${ANS[this-$attack]}" = "$SCRAPES"
	result "metrics_scrape_${attack}_worst_s" "${WST[this-$attack]}" "<=" 1
	result "metrics_${attack}_master_extra_fds" "${FD[this-$attack]}" "<=" 64
	echo "INFO this_${attack}_from_scraper_address_worst_s=${WST[this-${attack}same]}" \
	    "median_s=${MED[this-${attack}same]}" \
	    "answered=${ANS[this-${attack}same]}/$SCRAPES"
done
finish
