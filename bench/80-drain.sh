#!/usr/bin/env bash
# 80-drain: what a stop loses, before and after issue 14's drain.
#
# 1. Queued at stop (--shutdown-delay 0, shared mode): one worker that
#    serves one connection at a time and on TERM finishes the one in hand
#    but accepts no more (testsrv --blocking --graceful, as gunicorn's sync
#    worker).  While it sleeps on one request, Q clients connect and wait
#    in the accept queue; then TERM to wpool.  Counted: the queued clients
#    answered 200 and those reset, for the base build and this tree's, in
#    this run, ROUNDS rounds each.
# 2. A stop under load with a client that stops opening connections once
#    /readyz fails, probing every 0.1 s (tests/bin/drain_client.py, 4
#    threads, a new connection per request): failed requests with
#    --shutdown-delay 0 and 1s, this tree's build (the base has no /readyz).
#
# Baseline: 409b089 (BASE_REV), exported with git archive and built in
# $TMP, or BASE_WPOOL=path to a built wpool.
# Targets: every queued connection served (new); 0 failed requests with
# --shutdown-delay 1s.
# Env: QUICK=1 (1 round), ROUNDS=N, Q=N, BASE_REV, BASE_WPOOL.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then ROUNDS=${ROUNDS:-1}; else ROUNDS=${ROUNDS:-3}; fi
Q=${Q:-20}
BASE_REV=${BASE_REV:-409b089}
CLIENT=$ROOT/tests/bin/drain_client.py

if [ -z "${BASE_WPOOL:-}" ]; then
	mkdir -p "$TMP/base"
	echo "\$ git archive $BASE_REV | tar -x -C \$TMP/base && make -C \$TMP/base wpool"
	git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$TMP/base" ||
	    die "cannot export $BASE_REV"
	make -s -C "$TMP/base" wpool >"$TMP/base-build.log" 2>&1 ||
	    die "cannot build $BASE_REV (see $TMP/base-build.log)"
	BASE_WPOOL=$TMP/base/wpool
fi

# queue_len PORT: the accept queue of the listener on 127.0.0.1:PORT.
queue_len() {
	ss -Hltn "sport = :$1" | awk '{ print $2; exit }'
}

# queued NAME BINARY ROUND: one round of part 1; adds to NAME_ok, NAME_reset.
queued() {
	local name=$1 bin=$2 r=$3 log=$TMP/q-$1-$3.log m port i n ok reset
	local -a cl=()
	bg "$log" "$bin" -n 1 -s "$TMP/q-$name-$r.sock" -b 127.0.0.1:0 -- \
	    "$TESTSRV" --blocking --graceful
	m=$BG_PID
	port=$(wait_port "$log")
	wait_ready "$TMP/q-$name-$r.sock" 1
	check_bg "$m"
	curl -s --max-time 10 -o /dev/null "http://127.0.0.1:$port/sleep?ms=1500" &
	cl+=($!)
	sleep 0.2
	for ((i = 0; i < Q; i++)); do
		(curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' \
		    "http://127.0.0.1:$port/" >"$TMP/q-$name-$r.$i" 2>/dev/null) &
		cl+=($!)
	done
	for ((i = 0; i < 250; i++)); do
		n=$(queue_len "$port")
		[ "${n:-0}" -ge "$Q" ] && break
		sleep 0.02
	done
	kill -TERM "$m"
	wait "${cl[@]}" 2>/dev/null
	stop_bg "$m"
	ok=$(cat "$TMP/q-$name-$r".* | grep -c '^200$')
	reset=$((Q - ok))
	echo "  $name round $r: $Q queued at the stop, $ok served, $reset reset"
	eval "${name}_ok=\$((${name}_ok + ok)) ${name}_reset=\$((${name}_reset + reset))"
}

# under_load DELAY: part 2; sets failed_DELAY and ok_DELAY.
under_load() {
	local d=$1 log=$TMP/l-$1.log m port mport out=$TMP/l-$1.out c i
	bg "$log" "$WPOOL" -n 2 -s "$TMP/l-$d.sock" --shutdown-delay "$d" \
	    --metrics 127.0.0.1:0 -b 127.0.0.1:0 -- "$TESTSRV"
	m=$BG_PID
	port=$(wait_port "$log")
	wait_ready "$TMP/l-$d.sock" 2
	check_bg "$m"
	mport=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log")
	echo "\$ $(show python3 "$CLIENT" "$port" "$mport" --conc 4 --probe-every 0.1) &"
	python3 "$CLIENT" "$port" "$mport" --conc 4 --probe-every 0.1 >"$out" 2>&1 &
	c=$!
	for ((i = 0; i < 500; i++)); do
		grep -q '^started' "$out" && break
		sleep 0.02
	done
	nap 1
	kill -TERM "$m"
	wait "$c"
	stop_bg "$m"
	eval "ok_$d=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$out")"
	eval "failed_$d=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' "$out")"
	echo "  --shutdown-delay $d: $(grep '^ok=' "$out")" \
	    "$(grep -m1 '^failure' "$out")"
}

preflight
echo "== 1. connections queued at the stop ($Q a round, $ROUNDS rounds)"
base_ok=0 base_reset=0 new_ok=0 new_reset=0
for ((r = 1; r <= ROUNDS; r++)); do
	queued base "$BASE_WPOOL" "$r"
	queued new "$WPOOL" "$r"
done
total=$((Q * ROUNDS))
echo "  base: $base_ok/$total served, $base_reset reset;" \
    "new: $new_ok/$total served, $new_reset reset"
echo "== 2. a stop under load, the client leaving once /readyz fails"
under_load 0
under_load 1
# shellcheck disable=SC2154  # set by queued / under_load
{
	result queued_served_base "$base_ok" ">=" 0
	result queued_served_new "$new_ok" ">=" "$total"
	result queued_reset_new "$new_reset" "<=" 0
	result failed_requests_delay0 "$failed_0" ">=" 0
	result failed_requests_delay1s "$failed_1" "<=" 0
}
finish
