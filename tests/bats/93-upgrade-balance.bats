#!/usr/bin/env bats
# wpool upgrade in balance mode: the master hands the new image each
# worker's channel (both ends, the connections in flight, the hello, the
# counters) and the accept queue; nothing is lost or served twice, a
# worker's "closed" sent during the exec is read by the new image, and a
# new image that fails after the exec leaves the old one as it was.

load ../helpers
load ../balance_helpers
load ../upgrade_helpers
load ../shim_helpers

setup() {
	bal_setup
}

teardown() {
	bal_teardown
}

# no_bad_messages: the new image knew every id a worker reported closed.
no_bad_messages() {
	if grep -q 'does not hold\|garbage\|no more connections' "$LOG"; then
		fail "a worker's report was refused: $(cat "$LOG")"
	fi
}

# gets N: N requests, each on a connection of its own: all answered.
gets() {
	run client get "$PORT" / -n "$1"
	assert_success
	refute_output --partial ERR
	assert_equal "$(grep -c '^pid=' <<<"$output")" "$1"
}

@test "balance upgrade under load: 0 failed, same pids, counts carry on, a held connection's close is read by the new image" {
	start_wpool -m balance --balancer least-conn -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	local before n0
	hold /
	wait_st 5 "sum(w['connections'] for w in W.values()) == 1"
	before=$(pool_snapshot)
	load_start 2
	sleep 0.3
	run -0 "$WPOOL" upgrade
	assert_output --partial "upgraded: master pid $WPOOL_PID (unchanged), 2 workers kept"
	cp "$WPOOL" "$BATS_TEST_TMPDIR/wpool-new"
	run -0 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/wpool-new"
	load_wait
	((LOAD_REQUESTS > 100)) || fail "only $LOAD_REQUESTS requests: $(cat "$LOAD_OUT")"
	assert_equal "$LOAD_FAILED" 0
	assert_equal "$(pool_snapshot)" "$before"
	# Every connection counted once, none reset: wrk's and the held one.
	wait_st 5 "sum(w['connections'] for w in W.values()) == 1"
	n0=$(st "d['connections_total']")
	((n0 >= LOAD_REQUESTS + 1)) || fail "connections_total $n0 < $LOAD_REQUESTS + 1: reset?"
	assert_equal "$(st "sum(w['requests'] for w in W.values())")" "$n0"
	# The held connection still serves, and its close reaches the new image.
	ask "$CONN" / || fail "the held connection died across the upgrade"
	unhold "$CONN"
	wait_st 5 "sum(w['connections'] for w in W.values()) == 0"
	gets 4
	wait_st 5 "d['connections_total'] == $n0 + 4 and sum(w['connections'] for w in W.values()) == 0"
	assert_equal "$(upgrade_field upgrades)" 2
	no_bad_messages
}

@test "balance upgrade: --max-requests recycles at the count, across the upgrade" {
	start_wpool -m balance -n 1 --max-requests 10 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 1
	local pid
	pid=$(pid_of_slot 0)
	gets 6
	wait_st 5 "W[0]['requests'] == 6 and W[0]['connections'] == 0"
	run -0 "$WPOOL" upgrade
	assert_equal "$(pid_of_slot 0)" "$pid"
	assert_equal "$(st "W[0]['requests']")" 6
	gets 3
	wait_st 5 "W[0]['requests'] == 9"
	assert_equal "$(log_count 'served its --max-requests')" 0
	gets 1
	wait_for_log 'served its --max-requests'
	wait_st 10 "W[0]['pid'] != $pid and d['ready'] == 1"
	no_bad_messages
}

@test "balance upgrade: a version-1 and a version-2 worker both serve after it" {
	cat >"$BATS_TEST_TMPDIR/w.sh" <<EOF
#!/bin/sh
[ "\$WPOOL_WORKER_ID" = 0 ] && exec "$BAL_WORKER" --v1
exec "$BAL_WORKER"
EOF
	chmod +x "$BATS_TEST_TMPDIR/w.sh"
	start_wpool -m balance --balancer round-robin -n 2 -b 127.0.0.1:0 -- "$BATS_TEST_TMPDIR/w.sh"
	wait_ready 2
	gets 4
	wait_st 5 "W[0]['requests'] == 2 and W[1]['requests'] == 2"
	run -0 "$WPOOL" upgrade
	gets 4
	wait_st 5 "W[0]['requests'] == 4 and W[1]['requests'] == 4"
	# At once: the version-2 one takes batches again.
	run client burst "$PORT" -n 40
	assert_success
	assert_equal "$(grep -c ' ok ' <<<"$output")" 40
	wait_st 5 "sum(w['requests'] for w in W.values()) == 48 and sum(w['connections'] for w in W.values()) == 0"
	no_bad_messages
}

@test "balance upgrade of a --shim pool: served, recycled, nothing left in flight" {
	shim_setup
	shim_start --max-requests 6 -- "$SHIM_C"
	local before body
	before=$(pool_snapshot)
	body=$(shim_get /)
	[[ $body == "pid "* ]] || fail "before: $body"
	run -0 "$WPOOL" upgrade
	assert_equal "$(pool_snapshot)" "$before"
	shim_check_busy
	shim_check_recycle 18
}

@test "balance upgrade: a new image that fails after the exec, or crashes, leaves balance mode as it was" {
	local shim=$REPO_ROOT/tests/shim/crashonce.so trigger=$BATS_TEST_TMPDIR/crash-next
	[[ -f $shim ]] || fail "$shim is not built (make test-bins)"
	start_wpool -m balance --balancer least-conn -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	local before
	hold /
	before=$(pool_snapshot)
	cat >"$BATS_TEST_TMPDIR/late" <<EOF
#!/bin/sh
[ -n "\$WPOOL_UPGRADE_PROBE" ] && exec "$WPOOL" "\$@"
exec "$WPOOL" --pidfile "$BATS_TEST_TMPDIR/none/p.pid" "\$@"
EOF
	cat >"$BATS_TEST_TMPDIR/crashing" <<EOF
#!/bin/sh
[ -n "\$WPOOL_UPGRADE_PROBE" ] && exec "$WPOOL" "\$@"
exec env LD_PRELOAD="$shim" CRASH_TRIGGER="$trigger" \\
	ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0" \\
	"$WPOOL" "\$@"
EOF
	chmod +x "$BATS_TEST_TMPDIR/late" "$BATS_TEST_TMPDIR/crashing"
	load_start 2
	sleep 0.3
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/late"
	assert_output --partial "the old one resumed"
	touch "$trigger"
	run -1 "$WPOOL" upgrade --binary "$BATS_TEST_TMPDIR/crashing"
	[[ ! -e $trigger ]] || fail "the new image never ran: the test proves nothing"
	assert_output --partial "killed by SIGSEGV after the exec"
	load_wait
	((LOAD_REQUESTS > 50)) || fail "only $LOAD_REQUESTS requests: $(cat "$LOAD_OUT")"
	assert_equal "$LOAD_FAILED" 0
	assert_equal "$(readlink "/proc/$WPOOL_PID/exe")" "$WPOOL"
	assert_equal "$(pool_snapshot)" "$before"
	ask "$CONN" / || fail "the held connection died"
	unhold "$CONN"
	wait_st 5 "sum(w['connections'] for w in W.values()) == 0 and sum(w['requests'] for w in W.values()) == d['connections_total']"
	run -0 "$WPOOL" upgrade
	gets 4
	no_bad_messages
}

@test "balance upgrade with connections queued in the master and unread in a channel: each served once" {
	start_wpool -m balance -n 1 -b 127.0.0.1:0 -- "$BAL_WORKER" --v1
	wait_ready 1
	local pid out=$BATS_TEST_TMPDIR/burst.out slow=$BATS_TEST_TMPDIR/slow.out
	pid=$(pid_of_slot 0)
	# The worker blocks for 1.5 s: what comes meanwhile fills its channel
	# (some 40 version-1 messages), the rest waits in the master's queue.
	client_bg "$slow" get "$PORT" "/work?us=1500000"
	wait_st 5 "W[0]['connections'] == 1"
	client_bg "$out" burst "$PORT" -n 60
	local bg=$BG
	wait_st 5 "d['queue'] > 0"
	run -0 "$WPOOL" upgrade
	assert_equal "$(pid_of_slot 0)" "$pid"
	wait "$bg" || fail "burst: $(cat "$out")"
	assert_equal "$(grep -c ' ok ' "$out")" 60
	# Each connection served once: 61 distinct conn ids, 61 counted.
	assert_equal "$(sed -nE 's/.* conn=([0-9]+) .*/\1/p' "$out" "$slow" | sort -u | wc -l)" 61
	wait_st 5 "d['connections_total'] == 61 and W[0]['requests'] == 61 and W[0]['connections'] == 0 and d['queue'] == 0"
	no_bad_messages
}
