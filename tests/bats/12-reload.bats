#!/usr/bin/env bats
# Rolling reload (DESIGN 10) through every door (wpool reload, restart all,
# HUP, USR1), its order and batch size, its failure, scaling, and the
# promise users buy wpool for: a reload under load loses no request.

load ../helpers
load ../control_helpers

# sample_during_reload OUT: polls status every few ms until the reload in
# progress is over; writes "ready alive" per sample to OUT.
sample_during_reload() {
	local out=$1 deadline st
	: >"$out"
	deadline=$(deadline_in 15)
	while ! past "$deadline"; do
		st=$(status_json) || continue
		jq -r '"\(.ready) \(.alive) \(.reload.state)"' <<<"$st" >>"$out"
		[[ $(jq -r .reload.state <<<"$st") == running ]] || return 0
	done
	fail "the reload did not end within 15 s"
}

@test "wpool reload: every slot gets a new worker of the next generation; progress; exit 0" {
	start_wpool -s "$CTL" -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	local old=("${WORKERS[@]}") p
	run_wp reload
	assert_success
	assert_line --regexp '^reload to generation 1: [0-9]/3 workers replaced'
	assert_line --regexp '^reloaded: 3 workers at generation 1 in [0-9.]+s$'
	wait_for_workers 3
	assert_equal "$(sorted_ids)" "0 1 2"
	for p in "${old[@]}"; do
		[[ " ${WORKERS[*]} " != *" $p "* ]] || fail "pid $p survived the reload"
	done
	wait_gone "${old[@]}" --timeout 5
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 1
		assert_equal "$(worker_env "$p" SERVER_STARTER_GENERATION)" 2
		assert_equal "$(worker_env "$p" WPOOL_WORKERS)" 3
	done
	local st
	st=$(status_json)
	jq -e '.generation == 1 and .ready == 3 and .reload.generation == 1 and
		.reload.state == "done" and .reload.done == 3 and .reload.total == 3 and
		.reload.error == null and (.reload.seconds | type == "number") and
		([.workers[].generation] | unique) == [1]' <<<"$st" >/dev/null ||
		fail "status after the reload: $st"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-2] gen=1$'
	wait_for_log 'reload to generation 1 done: 3 workers replaced in [0-9.]+s'
}

@test "HUP, USR1, wpool reload and restart all each add a generation" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	send_signal "$WPOOL_PID" HUP
	wait_status 10 '.reload.generation == 1 and .reload.state == "done"'
	send_signal "$WPOOL_PID" USR1
	wait_status 10 '.reload.generation == 2 and .reload.state == "done"'
	run_wp reload
	assert_success
	assert_line --regexp '^reloaded: 2 workers at generation 3 '
	run_wp restart all
	assert_success
	assert_line --regexp '^reloaded: 2 workers at generation 4 '
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 4
		assert_equal "$(worker_env "$p" SERVER_STARTER_GENERATION)" 5
	done
	assert_equal "$(sj .generation)" 4
	assert_equal "$(log_count 'reload to generation [1-4] done')" 4
	grep -q 'received SIGHUP: reloading' "$LOG" || log_fail "no log line for HUP"
	grep -q 'received SIGUSR1: reloading' "$LOG" || log_fail "no log line for USR1"
}

@test "one slot at a time: the new worker is ready before the old one is stopped" {
	# New workers take 0.3 s to become ready (--ready notify).
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- \
		"$TESTSRV" --delay-start 0.3 --notify
	wait_status 10 '.ready == 2'
	wait_for_workers 2
	local old0 old1
	old0=$(pid_of_id 0) old1=$(pid_of_id 1)
	run_wp reload --no-wait
	assert_success
	assert_output 'reload to generation 1 started'
	sample_during_reload "$BATS_TEST_TMPDIR/samples"
	wait_status 5 '.reload.state == "done" and .ready == 2'
	# Capacity never dropped, and never more than one extra worker.
	local min_ready max_alive
	min_ready=$(awk '{ print $1 }' "$BATS_TEST_TMPDIR/samples" | sort -n | head -1)
	max_alive=$(awk '{ print $2 }' "$BATS_TEST_TMPDIR/samples" | sort -n | tail -1)
	((min_ready >= 2)) || fail "ready dropped to $min_ready: $(cat "$BATS_TEST_TMPDIR/samples")"
	((max_alive == 3)) || fail "at most $max_alive workers alive (expected 3): $(cat "$BATS_TEST_TMPDIR/samples")"
	# The log tells the same story: start 0, old 0 goes, start 1, old 1 goes.
	local seq
	seq=$(grep -E 'worker [01] started \(pid [0-9]+, generation 1\)|generation 0\) .*replaced' "$LOG" |
		sed -E 's/.*worker ([01]) started.*/start \1/; s/.*worker ([01]) \(pid.*replaced.*/gone \1/' |
		paste -sd, -)
	assert_equal "$seq" "start 0,gone 0,start 1,gone 1"
	grep -Eq "worker 0 \\(pid $old0, generation 0\\) killed by signal TERM after [0-9.]+s; replaced" "$LOG" ||
		log_fail "no 'replaced' line for the old worker 0"
	grep -Eq "worker 1 \\(pid $old1, generation 0\\)" "$LOG" || log_fail "no line for the old worker 1"
}

@test "--reload-batch 2: two slots at a time, capacity kept" {
	start_wpool -s "$CTL" -n 4 --reload-batch 2 --ready notify -b 127.0.0.1:0 -- \
		"$TESTSRV" --delay-start 0.3 --notify
	wait_status 10 '.ready == 4'
	run_wp reload --no-wait
	assert_success
	sample_during_reload "$BATS_TEST_TMPDIR/samples"
	wait_status 5 '.reload.state == "done" and .ready == 4 and ([.workers[].generation] | unique) == [1]'
	local min_ready max_alive
	min_ready=$(awk '{ print $1 }' "$BATS_TEST_TMPDIR/samples" | sort -n | head -1)
	max_alive=$(awk '{ print $2 }' "$BATS_TEST_TMPDIR/samples" | sort -n | tail -1)
	((min_ready >= 4)) || fail "ready dropped to $min_ready: $(cat "$BATS_TEST_TMPDIR/samples")"
	((max_alive == 6)) || fail "at most $max_alive workers alive (expected 6): $(cat "$BATS_TEST_TMPDIR/samples")"
	# The first two new workers both started before any old one went.
	local seq
	seq=$(grep -E 'worker [0-3] started \(pid [0-9]+, generation 1\)|generation 0\) .*replaced' "$LOG" |
		sed -E 's/.*worker ([0-3]) started.*/s\1/; s/.*worker ([0-3]) \(pid.*replaced.*/g\1/' |
		paste -sd, -)
	[[ $seq == s0,s1,* || $seq == s1,s0,* ]] || log_fail "reload order: $seq"
	grep -q 'replacing 4 workers, 2 at a time' "$LOG" || log_fail "no 'replacing 4 workers, 2 at a time'"
}

@test "a reload asked for during a reload is queued and runs after it" {
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- \
		"$TESTSRV" --delay-start 0.3 --notify
	wait_status 10 '.ready == 2'
	run_wp reload --no-wait
	assert_success
	assert_output 'reload to generation 1 started'
	run_wp reload --no-wait
	assert_success
	# Queued, and said so (issue 12: it used to say "started").
	assert_output 'reload to generation 2 queued: it starts when generation 1 is done'
	wait_status 10 '.reload.generation == 2 and .reload.state == "done" and .ready == 2 and ([.workers[].generation] | unique) == [2]'
	wait_for_log 'reload to generation 1 done'
	wait_for_log 'reload to generation 2 done'
}

@test "a reload queued behind one that fails still runs, and each waiting client reports its own reload" {
	# Generation 1's workers fail at start (the deploy was bad); the
	# fix lands while that reload runs, and a second reload is asked for.
	local script flag=$BATS_TEST_TMPDIR/bad
	script=$(make_script gen.sh <<EOF
#!/bin/sh
[ -e "$flag" ] && { sleep 0.5; exit 3; }
exec "$TESTSRV" --delay-start 0.3 --notify
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 2'
	touch "$flag"
	local out1=$BATS_TEST_TMPDIR/r1.out rc1
	"$WPOOL" reload >"$out1" 2>&1 &
	local r1=$!
	record_pid "$r1"
	wait_status 5 '.reload.generation == 1 and .reload.state == "running"'
	wait_for_log 'worker 0 started \(pid [0-9]+, generation 1\)'
	rm -f "$flag"
	RUN_TIMEOUT=20 run_wp reload
	assert_success
	assert_line --index 0 --regexp '^reload to generation 2 waits for the one to generation 1: 0/2 workers replaced$'
	assert_line --regexp '^reloaded: 2 workers at generation 2 in [0-9.]+s$'
	refute_line --regexp '^reload to generation 2: .* 1/2 .*generation 1'
	rc1=0
	wait "$r1" || rc1=$?
	assert_equal "$rc1" 1
	run cat "$out1"
	assert_line --regexp '^wpool: error: reload to generation 1 failed: new worker 0 \(pid [0-9]+\) exited with status 3 after [0-9.]+s \(generation 2 followed\)$'
	assert_equal "$(sj '[.reload.recent_failures[].generation] | join(" ")')" 1
	assert_equal "$(sj '[.workers[].generation] | unique | join(" ")')" 2
}

@test "two queued reloads that both fail: each waiting client reports its own failure" {
	# Generation 1 fails on worker 1; generation 2, queued behind it,
	# fails at once on worker 0, before the first client looks again.
	local script
	script=$(make_script gen.sh <<EOF
#!/bin/sh
[ "\$WPOOL_GENERATION" -ge 2 ] && exit 4
[ "\$WPOOL_GENERATION" = 1 ] && [ "\$WPOOL_WORKER_ID" = 1 ] && { sleep 0.3; exit 3; }
exec "$TESTSRV" --delay-start 0.3 --notify
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 2'
	local out1=$BATS_TEST_TMPDIR/r1.out rc1=0
	"$WPOOL" reload >"$out1" 2>&1 &
	local r1=$!
	record_pid "$r1"
	wait_status 5 '.reload.generation == 1 and .reload.state == "running"'
	RUN_TIMEOUT=20 run_wp reload
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: reload to generation 2 failed: new worker 0 \(pid [0-9]+\) exited with status 4'
	wait "$r1" || rc1=$?
	assert_equal "$rc1" 1
	run cat "$out1"
	assert_line --regexp '^wpool: error: reload to generation 1 failed: new worker 1 \(pid [0-9]+\) exited with status 3 .*\(generation 2 followed\)$'
	assert_equal "$(sj '[.reload.recent_failures[].generation] | join(" ")')" "1 2"
}

@test "a new worker that is never ready (--ready-timeout) stops the reload; the old ones keep serving" {
	local script
	script=$(make_script gen.sh <<EOF
#!/bin/sh
# Generation 0 is healthy; later ones never say READY=1.
[ "\$WPOOL_GENERATION" -ge 1 ] && exec "$TESTSRV"
exec "$TESTSRV" --notify
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify --ready-timeout 1 -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 2'
	wait_for_workers 2
	local old=("${WORKERS[@]}") t0
	t0=$(now_us)
	run_wp reload
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: reload to generation 1 failed: .*worker 0 .*not ready'
	(($(elapsed_ms "$t0") >= 900)) || fail "failed after $(elapsed_ms "$t0") ms, before --ready-timeout"
	# The old workers are untouched and serve.
	wait_for_workers 2
	assert_equal "${WORKERS[*]}" "${old[*]}"
	run http_sample 4
	assert_output --regexp 'gen=0'
	refute_output --partial 'gen=1'
	local st
	st=$(status_json)
	jq -e '.ready == 2 and .reload.state == "failed" and .reload.generation == 1 and
		(.reload.error | type == "string" and test("not ready")) and
		([.workers[] | select(.pid != null) | .generation] | unique) == [0]' <<<"$st" >/dev/null ||
		fail "status: $st"
	grep -Eq 'worker 0 \(pid [0-9]+\) not ready after 1s; killing it' "$LOG" || log_fail "no 'not ready' line"
	grep -Eq 'reload to generation 1 failed: .*the remaining old workers keep serving' "$LOG" ||
		log_fail "the log does not say the reload failed"
	# Worker 1 was never replaced.
	! grep -Eq 'worker 1 started \(pid [0-9]+, generation 1\)' "$LOG" || log_fail "worker 1 was replaced"
	run_wp status
	assert_line --regexp '^  last reload \(generation 1\) failed: '
}

@test "a new worker that crashes at start stops the reload: wpool reload exits 1 with the reason" {
	local script
	script=$(make_script gen.sh <<EOF
#!/bin/sh
[ "\$WPOOL_GENERATION" -ge 1 ] && exec "$TESTSRV" --exit 3
exec "$TESTSRV" --notify
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 2'
	wait_for_workers 2
	local old=("${WORKERS[@]}")
	run_wp reload
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: reload to generation 1 failed: new worker 0 \(pid [0-9]+\) exited with status 3 after [0-9.]+s$'
	wait_for_workers 2
	assert_equal "${WORKERS[*]}" "${old[*]}"
	assert_equal "$(sj .reload.state)" failed
	# A later good reload still works (here: the same failure again, cleanly).
	run_wp reload
	assert_failure 1
	assert_equal "$(sj .ready)" 2
}

@test "a reload reaching a slot in crash back-off whose new worker also dies: the reload fails with the reason, it does not hang" {
	local script flag=$BATS_TEST_TMPDIR/broken
	script=$(make_script flaky.sh <<EOF
#!/bin/sh
[ -e "$flag" ] && exit 3
exec "$TESTSRV" --notify
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify --max-restart-delay 5 -b 127.0.0.1:0 -- "$script"
	wait_status 10 '.ready == 2'
	wait_for_workers 2
	# Slot 0 now crashes at every start, and waits in back-off.
	touch "$flag"
	kill -KILL "$(sj '.workers[] | select(.id == 0) | .pid')"
	wait_for_log 'worker 0 \(pid [0-9]+\) exited with status 3 after [0-9.]+s; restarting in'
	RUN_TIMEOUT=10 run_wp reload
	assert_failure 1
	assert_regex "$stderr" 'reload to generation 1 failed: new worker 0 \(pid [0-9]+\) exited with status 3'
	assert_equal "$(sj .reload.state)" failed
	# Once the slot can start again, the next reload goes through.
	rm -f "$flag"
	wait_status 10 '.ready == 2'
	RUN_TIMEOUT=20 run_wp reload
	assert_success
	assert_equal "$(sj '[.workers[].generation] | unique | join(" ")')" 2
}

@test "a reload while a slot is being restarted waits for that restart, then replaces the slot too" {
	# Workers ignore TERM: a restarted one goes only at --stop-timeout.
	start_wpool -s "$CTL" -n 2 --stop-timeout 1.5 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	wait_for_workers 2
	run_wp restart 0 --no-wait
	assert_success
	RUN_TIMEOUT=20 run_wp reload
	assert_success
	assert_line --regexp '^reloaded: 2 workers at generation 1 in [0-9.]+s$'
	wait_status 10 '.ready == 2'
	assert_equal "$(sj '[.workers[].generation] | unique | join(" ")')" 1
}

@test "slots added by a scale-up during a reload start new and are not replaced again" {
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$TESTSRV" --notify --delay-start 0.6
	wait_status 10 '.ready == 1'
	run_wp reload --no-wait
	assert_success
	run_wp scale 3
	assert_success
	wait_status 15 '.reload.state == "done" and .ready == 3'
	# Slots 1 and 2 each started once, at generation 1.
	assert_equal "$(grep -cE 'worker 1 started \(pid [0-9]+, generation 1\)' "$LOG")" 1
	assert_equal "$(grep -cE 'worker 2 started \(pid [0-9]+, generation 1\)' "$LOG")" 1
	assert_equal "$(sj '[.workers[].generation] | unique | join(" ")')" 1
}

@test "scale N, +N, -N: new slots take the lowest free ids, the highest go first" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local p0 p1
	p0=$(pid_of_id 0) p1=$(pid_of_id 1)
	run_wp scale 4
	assert_success
	assert_output 'scaled from 2 to 4 workers'
	wait_for_workers 4
	assert_equal "$(sorted_ids)" "0 1 2 3"
	assert_equal "$(worker_env "$(pid_of_id 3)" WPOOL_WORKERS)" 4
	local p3
	p3=$(pid_of_id 3)
	run_wp scale -1
	assert_success
	assert_output 'scaled from 4 to 3 workers'
	wait_gone "$p3" --timeout 5
	wait_for_workers 3
	assert_equal "$(sorted_ids)" "0 1 2"
	run_wp scale +2
	assert_success
	assert_output 'scaled from 3 to 5 workers'
	wait_for_workers 5
	assert_equal "$(sorted_ids)" "0 1 2 3 4"
	# TTOU stops the highest id, TTIN adds the lowest free one.
	local p4
	p4=$(pid_of_id 4)
	send_signal "$WPOOL_PID" TTOU
	wait_gone "$p4" --timeout 5
	wait_for_workers 4
	assert_equal "$(sorted_ids)" "0 1 2 3"
	send_signal "$WPOOL_PID" TTIN
	wait_for_workers 5
	assert_equal "$(sorted_ids)" "0 1 2 3 4"
	run_wp scale 1
	assert_success
	assert_output 'scaled from 5 to 1 worker'
	wait_for_workers 1
	assert_equal "$(sorted_ids)" 0
	# Slot 0 and slot 1 kept their workers as long as they were wanted.
	assert_equal "$(pid_of_id 0)" "$p0"
	assert_equal "$(sj .target)" 1
	run_wp scale 1025
	assert_failure 64
	run_wp scale -1
	assert_failure 1
	assert_regex "$stderr" '^wpool: error: scale: 0 workers'
}

# load_reload_test WRK-ARGS...: 4 workers of a server that drains on TERM,
# wrk on them, 10 `wpool reload`s meanwhile (about 10 s), then wrk is
# stopped (INT: it prints its report); no error allowed.
load_reload_test() {
	command -v wrk >/dev/null || skip "machine lacks wrk"
	write_gracesrv
	start_wpool -s "$CTL" -n 4 -b 127.0.0.1:0 -- "$GRACESRV"
	wait_for_workers 4
	local old=("${WORKERS[@]}") out="$BATS_TEST_TMPDIR/wrk.out" wrk_pid rl t0 next
	wrk -t2 -c32 -d60s "$@" "http://127.0.0.1:$PORT/" >"$out" 2>&1 3>&- &
	wrk_pid=$!
	record_pid "$wrk_pid"
	t0=$(now_us)
	# (Not `i`: bats 1.8's `run` with flags clobbers a global i.)
	for ((rl = 1; rl <= 10; rl++)); do
		# Spread the reloads over the run: one every 0.85 s from 0.4 s.
		next=$((t0 + 400000 + (rl - 1) * 850000))
		while (($(now_us) < next)); do sleep 0.02; done
		run_wp reload
		[[ $status == 0 ]] || log_fail "reload $rl failed ($status): $stderr"
		[[ $output =~ (^|$'\n')"reloaded: 4 workers at generation $rl in " ]] ||
			log_fail "reload $rl: $output"
	done
	sleep 0.5
	kill -0 "$wrk_pid" 2>/dev/null || fail "wrk ended before the reloads did: $(cat "$out")"
	kill -INT "$wrk_pid"
	wait_gone "$wrk_pid" --timeout 10
	wait "$wrk_pid" || fail "wrk failed: $(cat "$out")"
	local errs requests
	errs=$(wrk_errors "$out")
	requests=$(wrk_requests "$out")
	echo "# wrk $*: $requests requests; errors (socket non-2xx): $errs" >&3
	[[ $errs == "0 0" ]] || log_fail "$(printf 'wrk saw errors during the reloads:\n%s' "$(cat "$out")")"
	((requests > 1000)) || fail "only $requests requests: $(cat "$out")"
	# Every worker was replaced, the pool is whole, at generation 10.
	wait_status 10 '.ready == 4 and .target == 4 and .generation == 10 and .reload.state == "done" and ([.workers[].generation] | unique) == [10]'
	wait_for_workers 4
	local p
	for p in "${old[@]}"; do
		[[ " ${WORKERS[*]} " != *" $p "* ]] || fail "pid $p survived 10 reloads"
	done
	assert_equal "$(sorted_ids)" "0 1 2 3"
	assert_equal "$(log_count 'reload to generation ([1-9]|10) done')" 10
}

@test "under wrk load with keep-alive, 10 reloads: no socket error, no non-2xx" {
	load_reload_test
}

@test "under wrk load with Connection: close, 10 reloads: no socket error, no non-2xx" {
	load_reload_test -H 'Connection: close'
}
