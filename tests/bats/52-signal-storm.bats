#!/usr/bin/env bats
# Signal storm: 10 000 signals of six kinds (HUP, TTIN, TTOU, USR2, CHLD,
# WINCH) sent to the master in one burst, while clients keep connecting.
# The master survives, no connection is refused, the pool settles at its
# (new) target with a consistent state (status agrees with /proc, one
# generation, ids 0..N-1, no zombie), the control socket still obeys, and
# nothing leaked: the master's fds are what they were and it idles again.

load ../helpers
load ../hardening_helpers

# STORM_PY PID N SEED: N signals, each one of the six at random, as fast as
# os.kill goes; prints "secs=S HUP=n TTIN=n ...".
STORM_PY='
import os, random, signal, sys, time
pid, n, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
names = ["HUP", "TTIN", "TTOU", "USR2", "CHLD", "WINCH"]
sigs = [getattr(signal, "SIG" + s) for s in names]
count = [0] * len(sigs)
t0 = time.monotonic()
for i in range(n):
    k = rng.randrange(len(sigs))
    os.kill(pid, sigs[k])
    count[k] += 1
dt = time.monotonic() - t0
print("secs=%.3f " % dt + " ".join("%s=%d" % (names[k], count[k]) for k in range(len(sigs))))
'

# storm N SEED: sends the burst; sets STORM (its line) and N_TTIN.
storm() {
	STORM=$(without_fd3 "$PY" -c "$STORM_PY" "$WPOOL_PID" "$1" "$2") ||
		log_fail "the signal sender failed: $STORM"
	N_TTIN=$(sed -n 's/.*TTIN=\([0-9]*\).*/\1/p' <<<"$STORM")
	echo "# storm: $STORM" >&3
}

# idle_wakeups PID SECS: voluntary context switches over SECS.
idle_wakeups() {
	local a b
	a=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status")
	sleep "$2"
	b=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status")
	echo $((b - a))
}

@test "signal storm: 10 000 mixed signals in a burst; the master survives, settles consistent, leaks nothing" {
	[[ -x $RP_LOAD ]] || fail "no $RP_LOAD (make test-bins)"
	start_wpool -n 3 --stop-timeout 2 -b 127.0.0.1:0 -- "$TESTSRV" \
		--signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_pool_settled 3
	local fds0 t0
	fds0=$(fd_count "$WPOOL_PID")

	# Clients throughout (rp_load ends on its own after 30 s at most; the
	# teardown TERMs it, which makes it print its counts).
	bg_job "$RP_LOAD" -p "$PORT" -r 200 -d 30 -t 5000 \
		>"$BATS_TEST_TMPDIR/load.out" 2>&1
	local load=$BG_JOB
	sleep 0.2

	t0=$(now_us)
	storm 10000 "${STORM_SEED:-$RANDOM}"
	alive "$WPOOL_PID" || log_fail "the master died in the storm"

	# Whatever the target became, the pool settles there.  (A USR2 that
	# reaches a new worker before it has set up its handler kills it; a
	# reload whose new worker died so fails and leaves older workers
	# serving: consistent too.)
	wait_pool_settled "" 30
	local j target gen
	j=$(pool_json)
	target=$(jget "$j" 'j["target"]')
	echo "# settled after $(elapsed_ms "$t0") ms: target $target, generation" \
		"$(jget "$j" 'j["generation"]'), reload $(jget "$j" 'j["reload"]["state"]')," \
		"$(log_count 'received SIGHUP') HUPs logged" >&3
	((target >= 1 && target <= 3 + N_TTIN)) || log_fail "target $target out of range"

	# A reload now (no more signals to race with) completes, and every
	# worker is of the new generation.
	without_fd3 timeout 20 "$WPOOL" reload >/dev/null ||
		log_fail "wpool reload after the storm failed or hung"
	wait_pool_settled "$target" 20
	gen=$(jget "$(pool_json)" 'j["generation"]')
	assert_equal "$(jget "$(pool_json)" 'j["reload"]["state"]')" "done"

	# The control socket obeys: back to 3, consistent again.
	without_fd3 timeout 20 "$WPOOL" scale 3 >/dev/null || log_fail "scale 3 failed"
	wait_pool_settled 3 20
	kill -TERM "$load"
	wait "$load" || true
	BG_JOBS=()
	local out
	out=$(cat "$BATS_TEST_TMPDIR/load.out")
	echo "# load during the storm: $out" >&3
	[[ $out =~ refused=0 ]] || log_fail "connections refused: $out"
	[[ $out =~ ok=[1-9] ]] || log_fail "no request served: $out"
	run http_get /
	assert_output --regexp "^pid=[0-9]+ id=[0-2] gen=$gen\$"

	# Nothing leaked, and it sleeps again.
	assert_equal "$(fd_count "$WPOOL_PID")" "$fds0"
	local wake
	wake=$(idle_wakeups "$WPOOL_PID" 0.5)
	((wake <= 3)) || log_fail "the master woke up $wake times in 0.5 s after the storm"
	refute grep -Ei 'error|assert|abort' "$LOG"
}

@test "signal storm: 5000 TTIN and 5000 TTOU interleaved; every step is logged, the pool ends at the last one" {
	start_wpool -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_pool_settled 2
	# The kernel coalesces pending signals of a kind, so where the pool
	# ends is up to timing; but each step the master took is logged, the
	# steps follow each other, and the pool ends where the last one says.
	run without_fd3 "$PY" -c '
import os, signal, sys
pid = int(sys.argv[1])
for i in range(5000):
    os.kill(pid, signal.SIGTTIN)
    os.kill(pid, signal.SIGTTOU)
' "$WPOOL_PID"
	assert_success
	alive "$WPOOL_PID" || log_fail "the master died in the storm"
	wait_pool_settled "" 20
	local target steps
	target=$(jget "$(pool_json)" 'j["target"]')
	steps=$(sed -n 's/.*: scaling from \([0-9]*\) to \([0-9]*\) workers\?.*/\1 \2/p' "$LOG" |
		awk -v start=2 '
			BEGIN { at = start }
			$1 != at { printf "step from %s while at %s\n", $1, at; bad = 1 }
			{ at = $2; n++ }
			END { if (!bad) print "ok " n " " at }')
	[[ $steps == "ok "* ]] || log_fail "scaling steps do not follow each other: $steps"
	echo "# ${steps#ok } (steps, last target); status target $target" >&3
	assert_equal "${steps##* }" "$target"
	((target >= 1)) || log_fail "target $target"
	without_fd3 "$WPOOL" scale 2 >/dev/null
	wait_pool_settled 2
}

# What the storm found first, made deterministic: a TTOU (or `wpool scale`)
# that removes the very slot whose replacement a rolling reload is waiting
# for must end that step of the reload, not leave it "running" for ever
# (which made every later HUP and `wpool reload` a silent no-op).
@test "scale-down removing the slot a reload is replacing does not wedge the reload" {
	start_wpool -n 2 --ready notify -b 127.0.0.1:0 -- "$TESTSRV" --notify --delay-start 0.5
	wait_pool_settled 2
	kill -HUP "$WPOOL_PID"
	# Slot 0 done, slot 1's new worker starting (not ready for 0.5 s).
	wait_for_log 'worker 1 started \(pid [0-9]+, generation 1\)'
	send_signal "$WPOOL_PID" TTOU
	wait_until 5 eval '[[ $(jget "$(pool_json)" "j[\"reload\"][\"state\"]") != running ]]'
	wait_pool_settled 1
	# And the next reload happens.
	without_fd3 timeout 10 "$WPOOL" reload >/dev/null || log_fail "the next reload failed or hung"
	wait_pool_settled 1
	assert_equal "$(jget "$(pool_json)" 'j["generation"]')" 2
}
