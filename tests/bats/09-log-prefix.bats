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

@test "--log-prefix: what workers write as they stop arrives before the master exits" {
	# Each worker answers TERM with 20 000 lines (about 200 KB, three
	# times what its pipe holds) and exits: the last of them are still in
	# its pipe when it is reaped, and must not be lost with the master.
	# One worker leaves a child behind that keeps the pipe open: its
	# lines arrive all the same, and the master does not wait for it.
	start_wpool -s "$BATS_TEST_TMPDIR/ctl.sock" -n 4 --log-prefix -- sh -c '
		trap "seq 1 20000 | sed s/^/line-/; exit 0" TERM
		[ "$WPOOL_WORKER_ID" = 3 ] && sleep 30 </dev/null &
		echo up; sleep 60 & wait $!'
	wait_for_log_count '^\[wpool\.[0-3]\] up$' 4
	local id t0 t1
	t0=$(date +%s%N)
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 10
	t1=$(date +%s%N)
	assert_equal "$WPOOL_STATUS" 0
	for id in 0 1 2 3; do
		assert_equal "$(log_count "^\[wpool\.$id\] line-[0-9]+$")" 20000
		grep -qx "\[wpool\.$id\] line-20000" "$LOG" ||
			fail "worker $id's last line is missing"
	done
	assert_equal "$(tail -n 1 "$LOG")" "wpool: stopped"
	# Not held for the stray child's sake (a generous bound: ASan).
	(((t1 - t0) / 1000000 < 1500)) ||
		fail "the master took $(((t1 - t0) / 1000000)) ms to stop"
}

@test "--log-prefix: a worker's child that writes without end does not hold the stop back" {
	# On TERM the worker starts a child that ignores TERM and writes as
	# fast as it can, then exits: its pipe never runs empty.  The master
	# still stops: the child gets KILL after --stop-timeout (issue 11:
	# nothing of the pool is left; it used to be left running until the
	# SIGPIPE of a write after the master had gone).
	start_wpool -s "$BATS_TEST_TMPDIR/ctl.sock" -n 1 --log-prefix --stop-timeout 2 -- sh -c '
		trap "( trap \"\" TERM; exec yes ) & echo last; exit 0" TERM
		echo up; sleep 60 & wait $!'
	wait_for_log_count '^\[wpool\.0\] up$' 1
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	grep -qx '\[wpool\.0\] last' "$LOG" || fail "the worker's last line is missing"
	assert_equal "$(tail -n 1 "$LOG")" "wpool: stopped"
}

# --- a log reader that stops reading -----------------------------------------
# The master's stdout and stderr are a FIFO that a cat copies to $LOG; the
# tests stop the cat (kill -STOP), so that the FIFO fills up.  The master
# must go on without blocking; the workers must wait, whether they write
# to the FIFO themselves (without --log-prefix) or to their pipes to the
# master (with it), and lose nothing.

# start_wpool_on_fifo ARGS...: like start_wpool, with the FIFO as stdout
# and stderr; READER_PID is the cat.
start_wpool_on_fifo() {
	FIFO=$BATS_TEST_TMPDIR/out.fifo
	mkfifo "$FIFO"
	cat <"$FIFO" >"$LOG" 3>&- &
	READER_PID=$!
	record_pid "$READER_PID"
	"${WPOOL_PREFIX[@]}" env --default-signal "$WPOOL" \
		-s "$BATS_TEST_TMPDIR/ctl.sock" "$@" </dev/null >"$FIFO" 2>&1 3>&- &
	WPOOL_PID=$!
	wait_for_log 'worker [0-9]+ started'
}

# A worker that waits (at most 10 s) for the file $0 to exist, writes $1
# lines of 99 times the character $2 (fold ends the last one without a
# newline: echo adds it), creates "$0.PID" and sleeps.
FLOOD='i=0
	while [ ! -e "$0" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
	{ head -c $(($1 * 99)) /dev/zero | tr "\0" "$2" | fold -w 99; echo; }
	: >"$0.$$"
	exec sleep 60'

# flooded PID [TIMEOUT]: true once worker PID has written all its lines.
flooded() {
	local deadline
	deadline=$(deadline_in "${2:-10}")
	until [[ -e $BATS_TEST_TMPDIR/go.$1 ]]; do
		past "$deadline" && return 1
		sleep 0.02
	done
}

# fifo_full [SLACK]: true when the FIFO holds as much as it can, less
# SLACK bytes (the master writes whole lines, so it may leave a gap).
fifo_full() {
	python3 - "$FIFO" "${1:-0}" <<'PY'
import fcntl, os, struct, sys, termios
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
size = fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ
queued = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
sys.exit(0 if queued >= size - int(sys.argv[2]) else 1)
PY
}

# status_answers: `wpool status` answers within 5 s; sets output.
status_answers() {
	run timeout 5 "$WPOOL" -s "$BATS_TEST_TMPDIR/ctl.sock" status
	((status == 0)) ||
		fail "wpool status exited $status (124: no answer within 5 s): $output"
}

# one_worker_but PID: true when wpool has one worker, not PID.
one_worker_but() {
	local w
	w=$(worker_pids)
	[[ -n $w && $w != *$'\n'* && $w != "$1" ]]
}

# pid_of_worker_id ID: the worker whose WPOOL_WORKER_ID is ID, without HTTP.
pid_of_worker_id() {
	local p
	for p in $(worker_pids); do
		[[ $(worker_env "$p" WPOOL_WORKER_ID) == "$1" ]] && { echo "$p"; return 0; }
	done
	return 1
}

# cpu_ticks PID: user and system time so far, in clock ticks.
cpu_ticks() {
	echo $(($(proc_stat_field "$1" 14) + $(proc_stat_field "$1" 15)))
}

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# fd_count PID: the open fds of PID.
fd_count() {
	ls "/proc/$1/fd" | wc -l
}

# worker_replaced ID OLDPID: true when a worker other than OLDPID has ID.
worker_replaced() {
	local p
	p=$(pid_of_worker_id "$1") && [[ $p != "$2" ]]
}

# FLOOD, for workers 0 and 1 only; worker 2 sleeps.
FLOOD01='[ "$WPOOL_WORKER_ID" = 2 ] && exec sleep 60
	'"$FLOOD"

# arrived N TIMEOUT: true once N worker lines are in $LOG (quietly: the
# log is megabytes).
arrived() {
	local deadline
	deadline=$(deadline_in "$2")
	until (($(log_count '^\[wpool\.[01]\] a{99}$') >= $1)); do
		past "$deadline" && return 1
		sleep 0.05
	done
}

# lines_whole N: every line of $LOG is the master's or one of the workers'
# 99 a's, and each of workers 0 and 1 has exactly N of them.
lines_whole() {
	local bad id got
	bad=$(grep -Ev '^(wpool: .*|\[wpool\.[01]\] a{99})$' "$LOG" | cut -c 1-120 | head -5)
	[[ -z $bad ]] || fail "$(printf 'broken lines, e.g.:\n%s' "$bad")"
	for id in 0 1; do
		got=$(log_count "^\[wpool\.$id\] a{99}$")
		((got == $1)) || fail "worker $id: $got of its $1 lines arrived"
	done
	! grep -q 'log lines dropped' "$LOG" || fail "$(grep 'log lines dropped' "$LOG")"
}

@test "a stalled log reader with --log-prefix: the workers wait, the master answers, reaps and spawns, without spinning or growing" {
	start_wpool_on_fifo -n 3 --log-prefix -- \
		sh -c "$FLOOD01" "$BATS_TEST_TMPDIR/go" 20000 a
	wait_for_workers 3
	local w0 w1 w2 rss0 rss1 fds0 t0 t1
	w0=$(pid_of_worker_id 0)
	w1=$(pid_of_worker_id 1)
	w2=$(pid_of_worker_id 2)
	rss0=$(rss_kb "$WPOOL_PID")
	fds0=$(fd_count "$WPOOL_PID")
	kill -STOP "$READER_PID"
	touch "$BATS_TEST_TMPDIR/go"
	wait_until 10 fifo_full 8192
	# 2 MB each, through a FIFO that takes 64 KB: the master stops
	# reading the workers' pipes rather than losing their lines, so the
	# workers wait on their own writes.
	! flooded "$w0" 2 || fail "worker 0 wrote all its lines into a stalled log"
	! flooded "$w1" 0 || fail "worker 1 wrote all its lines into a stalled log"
	status_answers
	assert_output --partial "3/3 ready"
	# A killed worker is reaped and replaced (the master's own lines about
	# it go into its reserve).
	kill -KILL "$w2"
	wait_until 10 worker_replaced 2 "$w2"
	status_answers
	assert_output --partial "3/3 ready"
	# What waits for the reader is bounded, the dead worker's pipes are
	# closed, and nothing spins: idle for a second, the master uses
	# (almost) no CPU.
	rss1=$(rss_kb "$WPOOL_PID")
	((rss1 - rss0 < 4096)) || fail "the master grew from ${rss0} kB to ${rss1} kB"
	# The dead worker's pipes close once their end is seen (a moment
	# after its successor's open): wait for it rather than race it.
	wait_until 5 eval '(($(fd_count "$WPOOL_PID") <= fds0))' ||
		fail "the master had $fds0 fds, now $(fd_count "$WPOOL_PID")"
	sleep 0.3
	t0=$(cpu_ticks "$WPOOL_PID")
	sleep 1
	t1=$(cpu_ticks "$WPOOL_PID")
	# A spin would be about 100 ticks a second.
	((t1 - t0 <= 20)) || fail "the master used $((t1 - t0)) ticks of CPU in 1 s stalled"
	# The reader goes on: the workers finish, and every line arrives.
	kill -CONT "$READER_PID"
	flooded "$w0" 20 || fail "worker 0 did not finish once the reader went on"
	flooded "$w1" 20 || fail "worker 1 did not finish once the reader went on"
	# While the pool runs, not only once it stops: no pipe is left
	# waiting for a resume that does not come.
	arrived 40000 10 ||
		fail "$(log_count '^\[wpool\.[01]\] a{99}$') of 40000 lines arrived while the pool ran"
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	wait_gone "$READER_PID"
	assert_equal "$(tail -n 1 "$LOG")" "wpool: stopped"
	assert_equal "$(log_count '^wpool: worker 2 started')" 2
	lines_whole 20000
}

@test "a log reader that stalls until the pool stops: the master still exits, the workers' lines arrive in order" {
	start_wpool_on_fifo -n 1 --log-prefix -- \
		sh -c "$FLOOD" "$BATS_TEST_TMPDIR/go" 40000 a
	wait_for_workers 1
	local w0=${WORKERS[0]} w1
	kill -STOP "$READER_PID"
	touch "$BATS_TEST_TMPDIR/go"
	wait_until 10 fifo_full 8192
	# Signals are handled: one worker more.
	kill -TTIN "$WPOOL_PID"
	wait_until 10 eval '(($(worker_pids | wc -l) == 2))'
	w1=$(worker_pids | grep -vx "$w0")
	# The pool stops while the reader still does not read; it resumes
	# only once the workers are gone, and the master, waiting (a bounded
	# time) for the log to take them, hands on what they left in their
	# pipes.  They were killed in the middle of writing: each worker's
	# last line may be cut short, and is then the last of its lines.
	kill -TERM "$WPOOL_PID"
	wait_gone "$w0" "$w1"
	kill -CONT "$READER_PID"
	wait_wpool_exit 10
	assert_equal "$WPOOL_STATUS" 0
	wait_gone "$READER_PID"
	assert_equal "$(tail -n 1 "$LOG")" "wpool: stopped"
	grep -q '^wpool: stopping (SIGTERM)' "$LOG" || fail "no 'stopping' line"
	local bad
	bad=$(awk '
		/^wpool: / { next }
		/^\[wpool\.[01]\] a+$/ {
			id = substr($1, 8, 1)
			if (cut[id]) { print "after a short line: " $0; exit }
			if (length($2) != 99) cut[id] = 1
			next
		}
		{ print; exit }' "$LOG" | cut -c 1-120)
	[[ -z $bad ]] || fail "$(printf 'broken lines, e.g.:\n%s' "$bad")"
	# More than the FIFO and the master's buffer hold together (112 KiB,
	# some 1050 lines, all that came before the workers' pipes were
	# read at the end): what waited in the pipes came too.
	local got
	got=$(log_count '^\[wpool\.[01]\] a')
	((got > 1500)) || fail "only $got worker lines arrived"
}

@test "a stalled log reader and a crash loop: the pipes exited workers left do not pile up in the master" {
	# Each worker writes 50 KB (its pipe takes it all) and exits 1; with
	# the reader stopped, each leaves a pipe the master cannot empty.
	start_wpool_on_fifo -n 1 --log-prefix --max-restart-delay 0.1 -- sh -c '
		i=0
		while [ ! -e "$0" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
		{ head -c 49500 /dev/zero | tr "\0" b | fold -w 99; echo; }
		exit 1' "$BATS_TEST_TMPDIR/go"
	wait_for_workers 1
	local fds0 restarts=0 fds
	fds0=$(fd_count "$WPOOL_PID")
	kill -STOP "$READER_PID"
	touch "$BATS_TEST_TMPDIR/go"
	# Some 40 workers come and go while the reader is stopped.
	wait_until 30 eval '
		restarts=$(timeout 5 "$WPOOL" -s "$BATS_TEST_TMPDIR/ctl.sock" status --json | jq .restarts)
		((restarts >= 40))' ||
		fail "only $restarts restarts"
	# 16 such pipes at most, and the live worker's two.  The fewest of a
	# few looks: workers still come and go, and one between its exit and
	# its pipes' parking (or a status client) holds a few more a moment;
	# a leak stays.
	local k n
	fds=
	for k in 1 2 3 4 5; do
		n=$(fd_count "$WPOOL_PID")
		[[ -z $fds ]] || ((n < fds)) && fds=$n
		sleep 0.1
	done
	((fds <= fds0 + 16 + 2)) ||
		fail "the master had $fds0 fds, now $fds after $restarts restarts"
	kill -CONT "$READER_PID"
	wait_for_log 'warning: the log reader is stalled: dropping what exited worker pid [0-9]+ left in its stdout pipe \(more than 16 such pipes wait\)'
	# Whatever arrived is whole lines.
	local bad
	bad=$(grep -Ev '^(wpool: .*|\[wpool\.0\] b{99}|\[wpool\.0\] )$' "$LOG" | cut -c 1-120 | head -3)
	[[ -z $bad ]] || fail "$(printf 'broken lines, e.g.:\n%s' "$bad")"
}

@test "a stalled log reader without --log-prefix: workers' writes block, the master's do not" {
	# Worker 0 writes to the FIFO itself and blocks there once it is full;
	# its fd must stay blocking (O_NONBLOCK would make its writes fail).
	start_wpool_on_fifo -n 2 -- sh -c '
		[ "$WPOOL_WORKER_ID" = 0 ] || exec sleep 60
		'"$FLOOD" "$BATS_TEST_TMPDIR/go" 2000 '#'
	wait_for_workers 2
	local w0 w1
	w0=$(pid_of_worker_id 0)
	w1=$(pid_of_worker_id 1)
	kill -STOP "$READER_PID"
	touch "$BATS_TEST_TMPDIR/go"
	wait_until 10 fifo_full
	# The master logs that worker 1 died and started again, into the full
	# FIFO, and goes on.
	kill -KILL "$w1"
	status_answers
	wait_until 10 eval '(($(worker_pids | grep -vcx "$w0") == 1)) && ! alive "$w1"'
	status_answers
	assert_output --partial "2/2 ready"
	kill -CONT "$READER_PID"
	flooded "$w0" || log_fail "worker 0 did not finish writing once the reader went on"
	wait_for_log_count 'worker 1 started' 2
	# Every byte worker 0 wrote arrived.
	assert_equal "$(tr -cd '#' <"$LOG" | wc -c)" $((2000 * 99))
}
