#!/usr/bin/env bash
# 20-reuseport-kill: kill -9 workers under `Connection: close` load and
# count the connections that fail, in wpool's reuseport mode and in a naive
# per-process SO_REUSEPORT pool (bench/reuseport_naive.c: each worker binds
# its own socket, which dies with it), in the same run, with the same load
# and the same kill schedule; wpool's shared mode for reference.
#
# Pool: 3 workers of tests/bin/rp_srv (an epoll HTTP server that answers
# `pid=...` and closes).  Load: tests/bin/rp_load, RATE new connections/s
# for DUR s, open loop, each `GET /` with `Connection: close`, 10 s timeout;
# it counts ok / reset / refused / timeout / closed-without-answer.
#
# Two kill styles, every 0.2 s, a random worker each time:
#  * queue: `kill -STOP W`, wait until ss(8) shows at least one connection
#    in W's socket's accept queue (at most 150 ms: in shared mode the other
#    workers empty the one queue) and W holds no accepted connection, then
#    `kill -KILL W`.  In the per-slot modes every kill leaves a non-empty
#    queue behind and no connection in W's hands, so every failure is a
#    queued connection the pool lost.  wpool target: 0; the naive pool
#    loses about what was queued (`queued_at_kill`).
#  * plain: `kill -KILL W` at once.  Connections W had accepted and not yet
#    answered fail in every mode (no supervisor can save them); the naive
#    pool loses its queue on top.
#
# Env: QUICK=1 (DUR=3, no shared-mode reference), DUR=S (8), RATE=N (300).
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	DUR=${DUR:-3}
	MODES=(reuseport naive)
else
	DUR=${DUR:-8}
	MODES=(reuseport naive shared)
fi
RATE=${RATE:-300}
NW=3
KILL_EVERY=0.2
RP_LOAD=$ROOT/tests/bin/rp_load
RP_SRV=$ROOT/tests/bin/rp_srv

preflight
[ -x "$RP_LOAD" ] && [ -x "$RP_SRV" ] ||
	die "tests/bin/rp_load and tests/bin/rp_srv not built (make test-bins)"
command -v ss >/dev/null || die "ss (iproute2) is missing"
build_c reuseport_naive
NAIVE=$TMP/reuseport_naive

now_s() { echo "$EPOCHREALTIME"; }
later() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# workers MASTER: its children running rp_srv.
workers() {
	pgrep -P "$1" -x rp_srv 2>/dev/null
}

# queue_of PID: the accept queue (ss Recv-Q) of the socket PID listens on.
queue_of() {
	ss -ltnpH "sport = :$PORT" 2>/dev/null |
	    awk -v p="pid=$1," 'index($0, p) { print $2; exit }'
}

# conns_of PID: sockets PID holds besides its listener at fd 3.
conns_of() {
	local n=0 f t
	for f in /proc/"$1"/fd/*; do
		[ "${f##*/}" = 3 ] && continue
		t=$(readlink "$f" 2>/dev/null) || continue
		[[ $t == socket:* ]] && n=$((n + 1))
	done
	echo "$n"
}

# stop_queue_kill PID: prints the queue length at the kill.
stop_queue_kill() {
	local pid=$1 i q=0 st
	for ((i = 0; i < 50; i++)); do
		kill -STOP "$pid" 2>/dev/null || { echo 0; return; }
		for ((st = 0; st < 200; st++)); do
			[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = T ] && break
			sleep 0.001
		done
		[ "$(conns_of "$pid")" = 0 ] && break
		kill -CONT "$pid"
		sleep 0.002
	done
	# At most 150 ms (in shared mode the other workers empty the one
	# queue, so it may stay at 0).
	local t_end
	t_end=$(awk -v t="$(now_s)" 'BEGIN { printf "%.6f", t + 0.15 }')
	while :; do
		q=$(queue_of "$pid")
		[ "${q:-0}" -ge 1 ] && break
		later "$(now_s)" "$t_end" && break
		sleep 0.003
	done
	kill -KILL "$pid"
	echo "${q:-0}"
}

# start_pool MODE STYLE: sets MASTER, PORT, POOL_LOG (a new file each time:
# wait_port may read it before the shell that starts the pool truncates it).
start_pool() {
	POOL_LOG=$TMP/$1.$2.log
	case $1 in
	reuseport | shared)
		bg "$POOL_LOG" "$WPOOL" -m "$1" -n "$NW" -b 127.0.0.1:0 \
		    -s "$TMP/$1.sock" -- "$RP_SRV" --quiet-exit ;;
	naive)
		bg "$POOL_LOG" "$NAIVE" -n "$NW" -- "$RP_SRV" --quiet-exit ;;
	esac
	MASTER=$BG_PID
	PORT=$(wait_port "$POOL_LOG")
	local i
	for ((i = 0; i < 500; i++)); do
		[ "$(workers "$MASTER" | wc -l)" = "$NW" ] && break
		sleep 0.01
	done
	check_bg "$MASTER"
	[ "$(workers "$MASTER" | wc -l)" = "$NW" ] ||
		die "$1: $NW workers did not start ($(cat "$POOL_LOG"))"
	# Every worker answers before the run starts.
	local warm
	warm=$("$RP_LOAD" -p "$PORT" -r 0 -c 4 -n 200)
	[[ " $warm " == *" ok=200 "* ]] ||
		die "$1: the pool on port $PORT does not answer: $warm"
}

# run_case MODE STYLE: one run; sets LOADLINE, KILLS, QUEUED.
run_case() {
	local mode=$1 style=$2 t_end next victims v q
	start_pool "$mode" "$style"
	bg "$TMP/load.$mode.$style.out" "$RP_LOAD" -p "$PORT" -r "$RATE" -d "$DUR" -t 10000
	local load=$BG_PID
	sleep 0.3
	KILLS=0
	QUEUED=0
	t_end=$(awk -v t="$(now_s)" -v d="$DUR" 'BEGIN { printf "%.6f", t + d - 0.8 }')
	while ! later "$(now_s)" "$t_end"; do
		next=$(awk -v t="$(now_s)" -v d="$KILL_EVERY" 'BEGIN { printf "%.6f", t + d }')
		mapfile -t victims < <(workers "$MASTER")
		if ((${#victims[@]} > 0)); then
			v=${victims[RANDOM % ${#victims[@]}]}
			if [ "$style" = queue ]; then
				q=$(stop_queue_kill "$v")
				QUEUED=$((QUEUED + q))
			else
				kill -KILL "$v" 2>/dev/null
			fi
			KILLS=$((KILLS + 1))
		fi
		while ! later "$(now_s)" "$next"; do sleep 0.01; done
	done
	wait "$load" 2>/dev/null
	LOADLINE=$(grep '^sent=' "$TMP/load.$mode.$style.out")
	stop_bg "$MASTER"
}

field() { [[ " $1 " =~ \ $2=([^ ]*)\  ]] && echo "${BASH_REMATCH[1]}"; }
failed() {
	echo $(($(field "$1" reset) + $(field "$1" refused) + \
	    $(field "$1" timeout) + $(field "$1" closed) + $(field "$1" other)))
}

echo "# $NW workers of $(show "$RP_SRV") --quiet-exit; pools:"
echo "#   reuseport: $(show "$WPOOL" -m reuseport -n $NW -b 127.0.0.1:0 -s "$TMP/reuseport.sock" -- "$RP_SRV" --quiet-exit)"
echo "#   naive:     $(show "$NAIVE" -n $NW -- "$RP_SRV" --quiet-exit)"
echo "#   shared:    $(show "$WPOOL" -m shared -n $NW -b 127.0.0.1:0 -s "$TMP/shared.sock" -- "$RP_SRV" --quiet-exit)"
echo "# load: $(show "$RP_LOAD" -p PORT -r "$RATE" -d "$DUR" -t 10000)"
echo "# kills every ${KILL_EVERY}s from 0.3 s to $DUR-0.8 s, a random worker each time:"
echo "#   queue: kill -STOP W; wait for ss -ltnpH 'sport = :PORT' to show >= 1 in W's Recv-Q"
echo "#          and /proc/W/fd to hold no socket but fd 3; kill -KILL W"
echo "#   plain: kill -KILL W"
declare -A F Q K L
for style in queue plain; do
	for mode in "${MODES[@]}"; do
		echo "== $mode, $style kills"
		run_case "$mode" "$style"
		F[$mode.$style]=$(failed "$LOADLINE")
		Q[$mode.$style]=$QUEUED
		K[$mode.$style]=$KILLS
		L[$mode.$style]=$LOADLINE
		if [ "$style" = queue ]; then
			echo "$mode/$style: $KILLS kills, $QUEUED connections queued at the kills;" \
			    "failed ${F[$mode.$style]}"
		else
			echo "$mode/$style: $KILLS kills; failed ${F[$mode.$style]}"
		fi
		echo "  rp_load: $LOADLINE" | cut -c1-220
	done
done

echo
echo "== what the same kills cost (failed connections / sent)"
for style in queue plain; do
	for mode in "${MODES[@]}"; do
		l=${L[$mode.$style]}
		printf '%-10s %-6s kills=%-3s queued_at_kill=%-4s sent=%-5s ok=%-5s reset=%-4s refused=%-3s timeout=%-3s closed=%-3s p99_ms=%s\n' \
		    "$mode" "$style" "${K[$mode.$style]}" \
		    "$([ "$style" = queue ] && echo "${Q[$mode.$style]}" || echo -)" \
		    "$(field "$l" sent)" "$(field "$l" ok)" "$(field "$l" reset)" \
		    "$(field "$l" refused)" "$(field "$l" timeout)" "$(field "$l" closed)" \
		    "$(field "$l" p99_ms)"
	done
done

result reuseport_queue_kill_failed "${F[reuseport.queue]}" = 0
RESULTS+=("INFO reuseport_queue_kills=${K[reuseport.queue]} reuseport_queued_at_kill=${Q[reuseport.queue]} reuseport_plain_kill_failed=${F[reuseport.plain]} reuseport_plain_kills=${K[reuseport.plain]}")
RESULTS+=("INFO naive_queue_kill_failed=${F[naive.queue]} naive_queued_at_kill=${Q[naive.queue]} naive_queue_kills=${K[naive.queue]} naive_plain_kill_failed=${F[naive.plain]} naive_plain_kills=${K[naive.plain]}")
if [ -n "${F[shared.queue]:-}" ]; then
	RESULTS+=("INFO shared_queue_kill_failed=${F[shared.queue]} shared_plain_kill_failed=${F[shared.plain]}")
fi
RESULTS+=("INFO rate=$RATE dur_s=$DUR workers=$NW kill_every_s=$KILL_EVERY")
finish
exit 0
