#!/usr/bin/env bats
# -m balance, protocol version 2 (issue 15, "Balance mode, faster"): a
# worker that says {"type":"hello","version":2,"batch":K} gets several
# connections in one message when several wait for it, and may report
# several closed in one; a version-1 worker still gets one a message.
# Least-conn's counts, --max-requests and the taking back of what a dead
# worker left unread hold with batches.  The worker here
# (tests/bin/batch_worker.py) logs what each message held; connections
# wait in the master's queue while it is not ready (--ready notify, its
# --gate file), so that a burst is queued whole when it becomes ready.
# The figures are in bench/40-balance.sh.

load ../helpers
load ../balance_helpers

BATCH_WORKER="$REPO_ROOT/tests/bin/batch_worker.py"

# msgs PID: the fd counts of PID's messages, one a line.
msgs() {
	awk -v p="$1" '$1 == "msg" && $2 == p { print $3 }' "$BATS_TEST_TMPDIR/msgs"
}

# queued_burst N: N connections from a background client (BG), once the
# master holds them all in its queue.
queued_burst() {
	client_bg "$BATS_TEST_TMPDIR/burst.out" burst "$PORT" -n "$1" --timeout 20
	wait_st 5 "d['queue'] == $1"
}

# no_garbage: the master called no message garbage.
no_garbage() {
	! grep -q 'sent a message that is not' "$LOG" ||
		fail "$(printf 'a message was garbage:\n%s' "$(cat "$LOG")")"
}

# burst_ok N: the background burst ended with N answers and no error.
burst_ok() {
	wait "$BG"
	run cat "$BATS_TEST_TMPDIR/burst.out"
	refute_output --partial ERR
	assert_equal "$(grep -c ' ok ' <<<"$output")" "$1"
}

@test "a version-2 worker gets a queued burst in one message; status counts each connection" {
	start_wpool -m balance --ready notify -n 1 -b 127.0.0.1:0 -- \
		"$PY" "$BATCH_WORKER" --hello 16 --gate "$BATS_TEST_TMPDIR/go" \
		--log "$BATS_TEST_TMPDIR/msgs"
	wait_st 5 "d['alive'] == 1"
	queued_burst 10
	touch "$BATS_TEST_TMPDIR/go"
	burst_ok 10
	local pid
	pid=$(st "W[0]['pid']")
	# The 10 came in one message of 10 fds (the batch is 16).
	assert_equal "$(msgs "$pid" | paste -sd' ')" "10"
	# Each is counted, and each reported closed (one message of 10
	# lines): nothing held, nothing reported as garbage.
	wait_st 5 "W[0]['requests'] == 10 and W[0]['connections'] == 0 and d['connections_total'] == 10"
	no_garbage
}

@test "the batch is the worker's K, and a version-1 worker still gets one connection a message" {
	start_wpool -m balance --ready notify -n 2 -b 127.0.0.1:0 -- \
		"$PY" "$BATCH_WORKER" --hello 4 --gate "$BATS_TEST_TMPDIR/go" \
		--log "$BATS_TEST_TMPDIR/msgs"
	wait_st 5 "d['alive'] == 2"
	queued_burst 10
	touch "$BATS_TEST_TMPDIR/go"
	burst_ok 10
	run awk '$1 == "msg" { if ($3 > m) m = $3; n += $3 } END { print m, n }' "$BATS_TEST_TMPDIR/msgs"
	# Some message was full (4), none larger, and all 10 came.
	assert_output "4 10"
	stop_wpool

	rm -f "$BATS_TEST_TMPDIR/msgs" "$BATS_TEST_TMPDIR/go"
	start_wpool -m balance --ready notify -n 1 -b 127.0.0.1:0 -- \
		"$PY" "$BATCH_WORKER" --gate "$BATS_TEST_TMPDIR/go" \
		--log "$BATS_TEST_TMPDIR/msgs"
	wait_st 5 "d['alive'] == 1"
	queued_burst 6
	touch "$BATS_TEST_TMPDIR/go"
	burst_ok 6
	assert_equal "$(msgs "$(st "W[0]['pid']")" | paste -sd' ')" "1 1 1 1 1 1"
	wait_st 5 "W[0]['requests'] == 6 and W[0]['connections'] == 0"
}

@test "least-conn with batches: a burst is split evenly and counted per worker; closes are counted back" {
	# The C worker (include/wpool-worker.h, version 2) holds what it is
	# given until the client closes; 12 connections opened at once.
	start_wpool -m balance -n 2 -b 127.0.0.1:0 -- "$BAL_WORKER"
	wait_ready 2
	client_bg "$BATS_TEST_TMPDIR/hold.out" rawhold "$PORT" -n 12 \
		--release "$BATS_TEST_TMPDIR/release" --timeout 20
	local holder=$BG
	wait_for_file_line "$BATS_TEST_TMPDIR/hold.out" ready
	wait_st 5 "d['connections_total'] == 12"
	assert_equal "$(st "sorted(w['connections'] for w in W.values())")" "$(printf '6\n6')"
	touch "$BATS_TEST_TMPDIR/release"
	wait "$holder"
	wait_st 5 "sum(w['connections'] for w in W.values()) == 0 and sum(w['requests'] for w in W.values()) == 12"
	no_garbage
}

@test "--max-requests with batches: no worker serves more than N, none fails" {
	start_wpool -m balance --ready notify --max-requests 8 -n 2 -b 127.0.0.1:0 -- \
		"$PY" "$BATCH_WORKER" --hello 16 --gate "$BATS_TEST_TMPDIR/go" \
		--log "$BATS_TEST_TMPDIR/msgs"
	wait_st 5 "d['alive'] == 2"
	queued_burst 30
	touch "$BATS_TEST_TMPDIR/go"
	burst_ok 30
	run cat "$BATS_TEST_TMPDIR/burst.out"
	# Served by 4 workers or more, none more than 8 times.
	run bash -c "sed -nE 's/.*pid=([0-9]+).*/\1/p' '$BATS_TEST_TMPDIR/burst.out' | sort | uniq -c | awk '{ if (\$1 > 8) bad++; n++ } END { print (n >= 4), bad + 0 }'"
	assert_output "1 0"
	# And in batches: some message held several.
	run awk '$1 == "msg" && $3 > 1 { n++ } END { print (n > 0) }' "$BATS_TEST_TMPDIR/msgs"
	assert_output 1
	wait_for_log "served its --max-requests"
}

@test "a worker killed with a batch unread: the connections are taken back and served by another" {
	# Worker 0 is made ready alone and gets the whole burst in one
	# message, which it only peeks at; then it is killed.
	start_wpool -m balance --ready notify -n 2 -b 127.0.0.1:0 -- \
		sh -c 'if [ "$WPOOL_WORKER_ID" = 0 ]; then
			exec "$0" "$1" --hello 16 --peek --gate "$2/go0" --log "$2/msgs"
		else
			exec "$0" "$1" --hello 16 --gate "$2/go1" --log "$2/msgs"
		fi' "$PY" "$BATCH_WORKER" "$BATS_TEST_TMPDIR"
	wait_st 5 "d['alive'] == 2"
	queued_burst 8
	local pid0
	pid0=$(st "W[0]['pid']")
	touch "$BATS_TEST_TMPDIR/go0"
	wait_for_file_line "$BATS_TEST_TMPDIR/msgs" "peek $pid0 8"
	wait_st 5 "W[0]['connections'] == 8"
	kill -KILL "$pid0"
	wait_for_log "left 8 connections unread: they go to other workers"
	touch "$BATS_TEST_TMPDIR/go1"
	burst_ok 8
	wait_st 5 "W[1]['requests'] == 8 and W[1]['connections'] == 0"
}

@test "a hello is untrusted: a batch below 1 or not a number, or no version, is garbage; a batch of 253 with long names stays within a message" {
	local long
	long=$(printf 'n%.0s' {1..200})
	start_wpool -m balance --ready notify -n 1 -b "127.0.0.1:0,name=$long" -- \
		"$PY" -c '
import os, socket, subprocess, sys, time
chan = socket.socket(fileno=3)
for m in (b"{\"type\":\"hello\",\"version\":3,\"batch\":4}",
          b"{\"type\":\"hello\",\"version\":2,\"batch\":0}",
          b"{\"type\":\"hello\",\"version\":2,\"batch\":254}",
          b"{\"type\":\"hello\",\"version\":2,\"batch\":\"8\"}",
          b"{\"type\":\"hello\",\"version\":2}"):
    chan.send(m)
    time.sleep(0.05)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])' \
		"$BATCH_WORKER" --hello 253 --gate "$BATS_TEST_TMPDIR/go" \
		--log "$BATS_TEST_TMPDIR/msgs"
	wait_for_log "sent a message that is not"
	wait_st 5 "d['alive'] == 1"
	queued_burst 40
	touch "$BATS_TEST_TMPDIR/go"
	burst_ok 40
	# Several messages (8192 bytes at most each), none lost.
	run awk '$1 == "msg" { n += $3; k++; if ($4 > 8192) big++ } END { print n, (k > 1), big + 0 }' "$BATS_TEST_TMPDIR/msgs"
	assert_output "40 1 0"
	run awk '$1 == "msg" && $3 > 1 { n++ } END { print (n > 0) }' "$BATS_TEST_TMPDIR/msgs"
	assert_output 1
}

@test "one bad message from a worker that holds no connection does not take it out of the pool; a newer hello is read as version 2" {
	# Each worker's first message is garbage (a "closed" for a connection
	# it never had), its next a hello of a newer library; then it serves.
	# No {"type":"ready"} (a good message) follows: --ready exec.
	start_wpool -m balance --ready exec -n 2 -b 127.0.0.1:0 -- \
		"$PY" -c '
import os, socket, sys, time
chan = socket.socket(fileno=3)
chan.send(b"{\"type\":\"closed\",\"id\":1000000}")
time.sleep(0.1)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])' \
		"$BATCH_WORKER" --hello 300 --version 3 --log "$BATS_TEST_TMPDIR/msgs"
	wait_for_log_count "reported connection 1000000 closed, which it does not hold" 2
	wait_st 5 "d['alive'] == 2"
	run client get "$PORT" / -n 6 --timeout 5
	refute_output --partial ERR
	assert_equal "$(grep -c '^pid=' <<<"$output")" 6
	# The newer hello was read (no garbage), and the batch cut to 253.
	assert_equal "$(log_count "sent a message that is not")" 0
}

@test "an empty message on the channel is garbage, logged, not the channel's end: the worker serves on, not restarted" {
	start_wpool -m balance --ready exec -n 1 -b 127.0.0.1:0 -- \
		"$PY" -c '
import os, socket, sys, time
chan = socket.socket(fileno=3)
chan.send(b"")
time.sleep(0.1)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])' \
		"$BATCH_WORKER" --hello 8 --log "$BATS_TEST_TMPDIR/msgs"
	wait_for_log "sent an empty message"
	wait_st 5 "d['alive'] == 1"
	local pid
	pid=$(worker_pids)
	run client get "$PORT" / -n 4 --timeout 5
	refute_output --partial ERR
	assert_equal "$(grep -c '^pid=' <<<"$output")" 4
	assert_equal "$(worker_pids)" "$pid"
	assert_equal "$(log_count 'worker 0 started')" 1
}
