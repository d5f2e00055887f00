#!/usr/bin/env bash
# 50-chaos: kill -9 a random worker every 200 ms for 10 s under load.
#
# Pool: `wpool -n NW -b 127.0.0.1:0 -- tests/bin/testsrv` (shared mode).
# Load: tests/bin/rp_load, open loop, RATE new connections a second, each
# one `GET /sleep?ms=HOLD` with `Connection: close` (so that every worker
# holds a few requests when it is killed), counting ok / reset / refused /
# timeout / closed-without-answer.
#
# Every 200 ms a random worker is taken: `kill -STOP` (it accepts nothing
# more), its accepted-but-unanswered connections are counted (the sockets
# in /proc/PID/fd besides its listener), then `kill -KILL`.  Those requests
# die with the worker whatever the supervisor does; everything else must
# succeed: connections queued on the listener wait for a live worker, since
# the master keeps the socket open.  So:
#
#   chaos_refused                   connections refused            = 0
#   chaos_failed_beyond_in_flight   failed requests minus the ones
#                                   in flight in killed workers    <= 0
#   chaos_pool_ready_at_end         alive == ready workers after   = NW
#   chaos_master_rss_growth_kib     master VmRSS after - before    <= 8
#   chaos_master_fd_growth          master open fds after - before = 0
#
# "Before" is taken after a warm-up (2 s of load with a KILL every 10 ms,
# not counted, and a `wpool status`, so that the master's heap has reached
# its high-water mark); "after" once the pool is back to NW, after one more
# `wpool status`.  The RSS target allows two pages: under churn glibc's heap
# creeps up by a page now and then before it levels off (3000 restarts in a
# row leave it flat once there), which is no leak; a leak of a worker's
# bookkeeping per restart would show as more than that over 50 kills, and
# tests/valgrind.sh proves the absence of leaks outright.  The raw counts
# are printed as INFO lines.
#
# Env: QUICK=1 (3 s), DUR=S (10), NW=N (4), RATE=N (300), HOLD=MS (20),
#      EVERY=S (0.2).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then DUR=${DUR:-3}; else DUR=${DUR:-10}; fi
NW=${NW:-4}
RATE=${RATE:-300}
HOLD=${HOLD:-20}
EVERY=${EVERY:-0.2}
RP_LOAD=$ROOT/tests/bin/rp_load

preflight
[ -x "$RP_LOAD" ] || die "tests/bin/rp_load not built (make test-bins)"
SOCK=$TMP/ctl.sock
INFOS=()

now_us() {
	local t=$EPOCHREALTIME
	echo $((10#${t%.*} * 1000000 + 10#${t#*.}))
}

# workers: the master's children that run testsrv (not a fork before exec).
workers() {
	pgrep -P "$MASTER" -x testsrv 2>/dev/null
}

# held PID: sockets PID holds besides its listener (fd 3).
held() {
	local n=0 f t
	for f in /proc/"$1"/fd/*; do
		[ "${f##*/}" = 3 ] && continue
		t=$(readlink "$f" 2>/dev/null) || continue
		[[ $t == socket:* ]] && n=$((n + 1))
	done
	echo "$n"
}

# kill_counted PID: STOP, count what it holds, KILL; prints the count.
kill_counted() {
	local pid=$1 i
	kill -STOP "$pid" 2>/dev/null || { echo 0; return; }
	for ((i = 0; i < 100; i++)); do
		[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = T ] && break
		sleep 0.002
	done
	held "$pid"
	kill -KILL "$pid" 2>/dev/null
}

heap_kb() {
	awk '/^[0-9a-f]+-/ { h = ($6 == "[heap]") } h && $1 == "Rss:" { print $2 }' \
	    "/proc/$1/smaps" 2>/dev/null
}

fds_of() {
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}

bg "$TMP/wpool.log" "$WPOOL" -n "$NW" -b 127.0.0.1:0 -s "$SOCK" -- "$TESTSRV"
MASTER=$BG_PID
PORT=$(wait_port "$TMP/wpool.log")
check_bg "$MASTER"
wait_ready "$SOCK" "$NW"

# chaos_round SECS OUTFILE: load for SECS + 1 s, a KILL every EVERY s for
# SECS s; sets KILLS, IN_FLIGHT and OUT (rp_load's line).
chaos_round() {
	local secs=$1 out=$2 end next t pid n load
	echo "\$ $(show "$RP_LOAD" -p "$PORT" -r "$RATE" -d $((secs + 1)) -P "/sleep?ms=$HOLD" -t 5000) >$out &"
	"$RP_LOAD" -p "$PORT" -r "$RATE" -d $((secs + 1)) -P "/sleep?ms=$HOLD" \
	    -t 5000 >"$out" 2>"$out.err" &
	load=$!
	BG_PIDS+=("$load")
	nap 0.3
	KILLS=0
	IN_FLIGHT=0
	end=$(($(now_us) + secs * 1000000))
	next=$(now_us)
	while (($(now_us) < end)); do
		mapfile -t pids < <(workers)
		if ((${#pids[@]} > 0)); then
			pid=${pids[RANDOM % ${#pids[@]}]}
			n=$(kill_counted "$pid")
			KILLS=$((KILLS + 1))
			IN_FLIGHT=$((IN_FLIGHT + ${n:-0}))
		fi
		next=$((next + EVERY_US))
		t=$((next - $(now_us)))
		if ((t > 0)); then
			nap "$(printf '%d.%06d' $((t / 1000000)) $((t % 1000000)))"
		fi
	done
	wait "$load"
	OUT=$(cat "$out")
	[[ $OUT == sent=* ]] || die "rp_load gave no result: $(cat "$out.err")"
}

# wait_back: until alive == ready == NW (5 s at most); sets READY_END.
wait_back() {
	local i j a r
	READY_END=0
	for ((i = 0; i < 250; i++)); do
		j=$(status_json "$SOCK")
		a=$(jfield "$j" alive)
		r=$(jfield "$j" ready)
		READY_END=${r:-0}
		[ "$a" = "$NW" ] && [ "$r" = "$NW" ] && return 0
		sleep 0.02
	done
	return 1
}

EVERY_US=$(awk -v s="$EVERY" 'BEGIN { printf "%d", s * 1000000 }')

# Warm-up, not counted: 2 s of the same load with a KILL every 10 ms (about
# 200 restarts), so that the master's heap has reached its high-water mark
# (allocator fragmentation under churn: it grows by a few KiB over the first
# hundred restarts, then stays flat for thousands) before "before".
echo "# warm-up: 2 s of load with a KILL every 10 ms, not counted"
EVERY_US=10000
chaos_round 2 "$TMP/warmup.out"
EVERY_US=$(awk -v s="$EVERY" 'BEGIN { printf "%d", s * 1000000 }')
wait_back || die "the pool did not come back to $NW after the warm-up"
status_json "$SOCK" >/dev/null
RSS0=$(proc_field "$MASTER" VmRSS)
HEAP0=$(heap_kb "$MASTER")
FDS0=$(fds_of "$MASTER")
R0=$(jfield "$(status_json "$SOCK")" restarts)
B0=$(grep -c 'crash back-off' "$TMP/wpool.log")
echo "# master pid $MASTER: VmRSS $RSS0 KiB, $FDS0 fds before"

echo "# load: $RATE conn/s of GET /sleep?ms=$HOLD for $((DUR + 1)) s; a KILL every ${EVERY}s for ${DUR}s"
chaos_round "$DUR" "$TMP/load.out"
echo "# rp_load: $OUT"

get() { printf '%s\n' "$OUT" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
SENT=$(get sent)
OK=$(get ok)
REFUSED=$(get refused)
FAILED=$((SENT - OK))

wait_back
status_json "$SOCK" >/dev/null
RSS1=$(proc_field "$MASTER" VmRSS)
HEAP1=$(heap_kb "$MASTER")
FDS1=$(fds_of "$MASTER")
R1=$(jfield "$(status_json "$SOCK")" restarts)
echo "# master: VmRSS $RSS1 KiB, $FDS1 fds after"
BACKOFF=$(($(grep -c 'crash back-off' "$TMP/wpool.log") - B0))

result chaos_refused "$REFUSED" = 0
result chaos_failed_beyond_in_flight $((FAILED - IN_FLIGHT)) "<=" 0
result chaos_pool_ready_at_end "$READY_END" = "$NW"
result chaos_master_rss_growth_kib $((RSS1 - RSS0)) "<=" 8
result chaos_master_fd_growth $((FDS1 - FDS0)) = 0
INFOS+=("INFO kills=$KILLS in ${DUR}s (restarts counted by the pool: $((R1 - R0)); crash back-offs: $BACKOFF)")
INFOS+=("INFO requests sent=$SENT ok=$OK failed=$FAILED (reset=$(get reset) closed=$(get closed) timeout=$(get timeout) other=$(get other)) in_flight_in_killed_workers=$IN_FLIGHT")
INFOS+=("INFO latency p50=$(get p50_ms) ms p99=$(get p99_ms) ms max=$(get max_ms) ms; distinct workers that answered: $(get workers)")
INFOS+=("INFO master VmRSS before=$RSS0 KiB after=$RSS1 KiB (heap $HEAP0 -> $HEAP1 KiB); fds before=$FDS0 after=$FDS1")

stop_bg "$MASTER"
finish
for i in "${INFOS[@]}"; do echo "$i"; done
exit 0
