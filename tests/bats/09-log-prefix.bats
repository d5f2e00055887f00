#!/usr/bin/env bats
# --log-prefix: every line a worker writes (stdout and stderr) comes out
# whole, prefixed "[NAME.ID] ", never mixed with another worker's; a huge
# line without a newline neither blocks the worker nor hangs the master.

load ../helpers

@test "--log-prefix: stdout and stderr lines get [wpool.ID]" {
	start_wpool -n 2 --log-prefix -- sh -c '
		echo "hello from $WPOOL_WORKER_ID"
		echo "oops from $WPOOL_WORKER_ID" >&2
		exec sleep 30'
	wait_for_log '^\[wpool\.0\] hello from 0$'
	wait_for_log '^\[wpool\.1\] hello from 1$'
	wait_for_log '^\[wpool\.0\] oops from 0$'
	wait_for_log '^\[wpool\.1\] oops from 1$'
}

@test "--log-prefix with --name web: [web.ID], and the master logs as web:" {
	start_wpool -n 1 --name web --log-prefix -- sh -c '
		echo "hello from $WPOOL_WORKER_ID"; exec sleep 30'
	wait_for_log '^\[web\.0\] hello from 0$'
	wait_for_log '^web: worker 0 started'
	refute grep -q '^\[wpool' "$LOG"
}

@test "without --log-prefix, worker output is passed through as is" {
	start_wpool -n 1 -- sh -c 'echo "plain line"; exec sleep 30'
	wait_for_log '^plain line$'
}

@test "two chatty workers: every line whole, prefixed with its own id" {
	# Each line is written in two pieces with a pause between them, while
	# the other worker writes too: only per-worker line buffering in the
	# master keeps lines whole.
	local n=1500
	start_wpool -n 2 --log-prefix -- sh -c '
		id=$WPOOL_WORKER_ID i=0
		while [ $i -lt '"$n"' ]; do
			printf "w%s line %s aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" $id $i
			[ $((i % 100)) -eq 0 ] && sleep 0.01
			printf "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
			i=$((i + 1))
		done
		echo "w$id done"
		exec sleep 30'
	wait_for_log '^\[wpool\.0\] w0 done$'
	wait_for_log '^\[wpool\.1\] w1 done$'
	local bad
	bad=$(grep -Ev '^(wpool: .*|\[wpool\.0\] w0 (line [0-9]+ a{40}b{40}|done)|\[wpool\.1\] w1 (line [0-9]+ a{40}b{40}|done))$' "$LOG" | head -5)
	[[ -z $bad ]] || log_fail "$(printf 'mixed or broken lines, e.g.:\n%s' "$bad")"
	assert_equal "$(log_count '^\[wpool\.0\] w0 line ')" "$n"
	assert_equal "$(log_count '^\[wpool\.1\] w1 line ')" "$n"
	# In order, none lost.
	run bash -c "sed -n 's/^\[wpool\.0\] w0 line \([0-9]*\) .*/\1/p' '$LOG' | awk '\$1 != NR - 1 { print; exit 1 }'"
	assert_success
}

@test "a 100 KB line without a newline: cut into bounded pieces, master unaffected" {
	start_wpool -n 1 --log-prefix -b 127.0.0.1:0 -- sh -c '
		head -c 102400 /dev/zero | tr "\0" x
		exec "$0"' "$TESTSRV"
	# The worker is not blocked on its pipe: it got past the write and
	# serves.
	wait_for_workers 1
	# Pieces come out before the line ends, each of bounded size.
	wait_for_log '^\[wpool\.0\] x+$'
	# The master still answers signals and restarts workers.
	kill -TTIN "$WPOOL_PID"
	wait_for_workers 2
	local w0
	w0=$(pid_of_id 0)
	kill -KILL "$w0"
	wait_for_log_count 'worker 0 started' 2
	wait_for_workers 2
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
	local longest total
	longest=$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$LOG")
	((longest <= 65536 + 64)) || fail "a log line of $longest bytes"
	# Every byte of the first worker's line arrived (the rest of a cut
	# line is flushed when the worker's pipe closes); the restarted worker
	# 0 and worker 1 wrote 100 KB each too, and may not all have been read.
	total=$(grep -E '^\[wpool\.0\] x+$' "$LOG" | sed 's/^\[wpool\.0\] //' | tr -d '\n' | wc -c)
	((total >= 102400)) || fail "only $total of 102400 bytes of worker 0's line were logged"
}

@test "--log-prefix: a worker's last line without a newline is not lost" {
	run_wpool --no-restart -n 1 --log-prefix -- sh -c 'printf "no newline at the end"'
	assert_equal "$status" 0
	grep -q '^\[wpool\.0\] no newline at the end$' <<<"$stderr"$'\n'"$output" ||
		fail "$(printf 'last line lost:\n%s\n%s' "$output" "$stderr")"
}
