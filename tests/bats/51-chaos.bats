#!/usr/bin/env bats
# Chaos, short version of bench/50-chaos.sh: under load on loopback, a
# random worker is killed with KILL every 200 ms for 3 s.  No connection is
# refused (the master keeps the listener), the only requests that fail are
# those a killed worker was holding, the pool is back to N at the end and
# consistent, and the master's RSS and fds have not grown.

load ../helpers
load ../hardening_helpers

N=4
CHAOS_SECS=${CHAOS_SECS:-3}

# kill_counted PID: STOP it (so that it takes no more connections), count
# the connections it holds, KILL it; prints that count.
kill_counted() {
	local pid=$1 i n
	kill -STOP "$pid" 2>/dev/null || { echo 0; return; }
	for ((i = 0; i < 100; i++)); do
		[[ $(proc_state "$pid") == T ]] && break
		sleep 0.002
	done
	n=$(worker_sockets "$pid")
	kill -KILL "$pid" 2>/dev/null
	echo "${n:-0}"
}

# chaos SECS: a random worker every 200 ms; sets KILLS and IN_FLIGHT.
chaos() {
	local end t next pids pid n
	KILLS=0
	IN_FLIGHT=0
	end=$(($(now_us) + $(secs_to_us "$1")))
	next=$(now_us)
	while (($(now_us) < end)); do
		mapfile -t pids < <(worker_pids)
		if ((${#pids[@]} > 0)); then
			pid=${pids[RANDOM % ${#pids[@]}]}
			n=$(kill_counted "$pid")
			KILLS=$((KILLS + 1))
			IN_FLIGHT=$((IN_FLIGHT + n))
		fi
		next=$((next + 200000))
		t=$((next - $(now_us)))
		if ((t > 0)); then
			sleep "$(printf '%d.%06d' $((t / 1000000)) $((t % 1000000)))"
		fi
	done
	return 0
}

@test "chaos: KILL a random worker every 200 ms under load; nothing refused, failures <= in flight, pool back to N, RSS flat" {
	[[ -x $RP_LOAD ]] || fail "no $RP_LOAD (make test-bins)"
	start_wpool -n "$N" -b 127.0.0.1:0 -- "$TESTSRV"
	wait_pool_settled "$N"
	# Warm up the master (first kills and restarts allocate what they
	# allocate once), then take its RSS and fds.
	local w
	for w in $(worker_pids | head -n 2); do kill -KILL "$w"; done
	wait_pool_settled "$N"
	without_fd3 "$WPOOL" status >/dev/null
	local rss0 fds0
	rss0=$(rss_kb "$WPOOL_PID")
	fds0=$(fd_count "$WPOOL_PID")

	# Open-loop load: 300 new connections a second, each a 20 ms request,
	# so that every worker holds a few when it is killed.
	local secs=$((CHAOS_SECS + 1))
	bg_job "$RP_LOAD" -p "$PORT" -r 300 -d "$secs" -P '/sleep?ms=20' \
		-t 5000 >"$BATS_TEST_TMPDIR/load.out" 2>"$BATS_TEST_TMPDIR/load.err"
	local load=$BG_JOB
	sleep 0.3
	chaos "$CHAOS_SECS"
	wait "$load" || true
	local out
	out=$(cat "$BATS_TEST_TMPDIR/load.out")
	[[ $out == sent=* ]] || log_fail "rp_load: $out $(cat "$BATS_TEST_TMPDIR/load.err")"
	local sent ok refused failed
	sent=$(sed -n 's/.*\bsent=\([0-9]*\).*/\1/p' <<<"$out")
	ok=$(sed -n 's/.*\bok=\([0-9]*\).*/\1/p' <<<"$out")
	refused=$(sed -n 's/.*\brefused=\([0-9]*\).*/\1/p' <<<"$out")
	failed=$((sent - ok))
	echo "# kills=$KILLS in_flight_in_killed=$IN_FLIGHT $out" >&3

	((KILLS >= CHAOS_SECS * 3)) || log_fail "only $KILLS kills in ${CHAOS_SECS}s"
	assert_equal "$refused" 0
	((sent > 0)) || log_fail "no load: $out"
	((failed <= IN_FLIGHT)) ||
		log_fail "$failed requests failed, more than the $IN_FLIGHT in flight in killed workers: $out"
	alive "$WPOOL_PID" || log_fail "the master died"

	# Back to N, consistent; every kill was restarted at once, not backed off.
	wait_pool_settled "$N"
	refute grep -q 'crash back-off' "$LOG"
	assert_equal "$(log_count 'killed by signal KILL.*restarting now')" "$((KILLS + 2))"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-3] gen=0$'

	# The master has not grown.
	without_fd3 "$WPOOL" status >/dev/null
	local rss1 fds1
	rss1=$(rss_kb "$WPOOL_PID")
	fds1=$(fd_count "$WPOOL_PID")
	echo "# master RSS ${rss0} KiB -> ${rss1} KiB, fds $fds0 -> $fds1" >&3
	assert_equal "$fds1" "$fds0"
	# (Under AddressSanitizer freed memory sits in quarantine and RSS
	# grows by design: there, tests/valgrind.sh is the leak check.)
	if ! grep -q __asan_init "$WPOOL"; then
		((rss1 - rss0 <= 64)) || log_fail "master RSS grew from $rss0 to $rss1 KiB"
	fi
}
