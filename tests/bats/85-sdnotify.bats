#!/usr/bin/env bats
# wpool as a notify service of its own manager (issue 13): READY=1 once
# the workers are ready, RELOADING=1 with MONOTONIC_USEC and READY=1 for a
# reload (Type=notify-reload), STOPPING=1, STATUS=, WATCHDOG=1 only when
# asked, EXTEND_TIMEOUT_USEC while a start drags on; a manager's socket
# that is missing or never read never holds the master up.

load ../helpers
load ../control_helpers
load ../sdnotify_helpers

# The state lines in the order they came, one word each.
states() {
	events | sed -nE 's/^MSG (READY|RELOADING|STOPPING)=1$/\1/p' | tr '\n' ' '
}

@test "sd_notify: READY, RELOADING with MONOTONIC_USEC, READY (reload and SIGHUP), then STOPPING, STATUS between; listeners stored by name" {
	start_managed -- -s "$CTL" -n 2 -b 127.0.0.1:0,name=web \
		-b "unix:$BATS_TEST_TMPDIR/api.sock,name=api" -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	assert_equal "$(sj .ready)" 2
	# READY=1 came once both workers were ready, with the summary.
	assert_equal "$(events | grep -A1 -m1 '^MSG READY=1$' | tail -1)" \
		"MSG STATUS=2/2 ready, generation 0"
	wait_event '^STORED web 127\.0\.0\.1:[0-9]+$'
	wait_event "^STORED api unix:$BATS_TEST_TMPDIR/api.sock\$"
	assert_equal "$(ev_count '^STORED ')" 2

	local t0 t1 mono
	t0=$(awk '{ t = $1 } END { print t }' "$EVENTS")
	wp reload >/dev/null
	wait_event '^MSG READY=1$' 2
	t1=$(awk '$2 == "MSG" && $3 ~ /^RELOADING=1$/ { print $1; exit }' "$EVENTS")
	mono=$(events | sed -n 's/^MSG MONOTONIC_USEC=//p' | head -1)
	[[ -n $mono && -n $t1 ]] || fail "no RELOADING=1 with MONOTONIC_USEC: $(events)"
	# CLOCK_MONOTONIC when the reload began: after the last event before
	# it, no later than the manager got it.
	((mono >= t0 && mono <= t1)) || fail "MONOTONIC_USEC=$mono not in [$t0, $t1]"
	# In the same datagram as RELOADING=1: the very next line.
	assert_equal "$(events | grep -A1 -m1 '^MSG RELOADING=1$' | tail -1)" \
		"MSG MONOTONIC_USEC=$mono"
	assert_equal "$(events | grep '^MSG STATUS=' | tail -1)" \
		"MSG STATUS=2/2 ready, generation 1"

	# Type=notify-reload: systemd's reload signal is SIGHUP.
	kill -HUP "$WPOOL_PID"
	wait_event '^MSG READY=1$' 3
	assert_equal "$(ev_count '^MSG RELOADING=1$')" 2
	assert_equal "$(events | grep '^MSG STATUS=' | tail -1)" \
		"MSG STATUS=2/2 ready, generation 2"

	kill -TERM "$WPOOL_PID"
	wait_event '^EXIT '
	WPOOL_PID=
	assert_equal "$(states)" "READY RELOADING READY RELOADING READY STOPPING "
	# A STATUS line between every two state lines.
	events | awk '
		/^MSG (READY|RELOADING|STOPPING)=1$/ { if (n++ && !st) bad = bad " " $2; st = 0 }
		/^MSG STATUS=/ { st = 1 }
		END { if (bad != "") { print "no STATUS= before" bad; exit 1 } }'
	assert_equal "$(events | grep -A1 '^MSG STOPPING=1$' | tail -1)" \
		"MSG STATUS=stopping: 2 workers left"
	# A graceful stop keeps the store: nothing removed.
	assert_equal "$(ev_count '^REMOVED ')" 0
}

@test "sd_notify: a reload asked for while one runs gets a RELOADING=1 of its own, stamped later, and one READY=1 at the end" {
	local slow
	slow=$(make_script slow.sh <<EOF
#!/bin/bash
sleep 0.4
exec "$TESTSRV"
EOF
)
	start_managed -- -s "$CTL" -n 2 --ready listen -b 127.0.0.1:0 -- "$slow"
	wait_event '^MSG READY=1$'
	# SIGHUP, as systemd sends it: `wpool reload` would wait for the end.
	kill -HUP "$WPOOL_PID"
	wait_event '^MSG RELOADING=1$'
	# The first one runs (each worker takes 0.4 s): this one waits for it.
	kill -HUP "$WPOOL_PID"
	wait_event '^MSG RELOADING=1$' 2
	wait_event '^MSG READY=1$' 2
	assert_equal "$(states)" "READY RELOADING RELOADING READY "
	local -a m
	m=($(events | sed -n 's/^MSG MONOTONIC_USEC=//p'))
	((${#m[@]} == 2 && m[1] > m[0])) || fail "MONOTONIC_USEC: ${m[*]}"
	assert_equal "$(events | grep '^MSG STATUS=' | tail -1)" \
		"MSG STATUS=2/2 ready, generation 2"
}

@test "sd_notify: WATCHDOG=1 only when WATCHDOG_USEC asks (and WATCHDOG_PID, if set, is wpool's); the idle master never wakes otherwise" {
	start_managed WATCHDOG_USEC=200000 -- -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	# Every 0.1 s: half the interval.
	wait_event '^MSG WATCHDOG=1$' 5 5
	# The workers get wpool's own socket, and no watchdog of wpool's.
	local w
	w=$(worker_pids)
	assert_regex "$(worker_env "$w" NOTIFY_SOCKET)" '^@wpool/'
	assert_equal "$(worker_env "$w" WATCHDOG_USEC)" ""
	kill -TERM "$WPOOL_PID"
	wait_event '^EXIT '
	WPOOL_PID=

	# WATCHDOG_PID names another process: not wpool's watchdog.
	: >"$EVENTS"
	kill -TERM "$MGR_PID"
	wait "$MGR_PID" 2>/dev/null || true
	start_managed WATCHDOG_USEC=200000 WATCHDOG_PID=1 -- -s "$CTL" -n 1 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	local before after
	# Settled: the status timer has nothing left to say.
	sleep 0.7
	before=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$WPOOL_PID/status")
	sleep 1
	after=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$WPOOL_PID/status")
	assert_equal "$(ev_count '^MSG WATCHDOG=1$')" 0
	((after - before <= 1)) || fail "an idle master woke $((after - before)) times in 1 s"
}

@test "sd_notify: EXTEND_TIMEOUT_USEC while the start drags on, and no READY=1 before the workers are" {
	# --ready notify, and the worker never says READY=1: starting.
	start_managed -- -s "$CTL" -n 1 --ready notify --ready-timeout 30s \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_event '^MSG STATUS=starting: 0/1 ready$'
	wait_event '^MSG EXTEND_TIMEOUT_USEC=15000000$' 1 8
	assert_equal "$(ev_count '^MSG READY=1$')" 0
	assert_equal "$(sj .ready)" 0
}

@test "sd_notify: a manager's socket that is missing, or that never reads, holds nothing up" {
	# Nothing at the path: the pool serves, and says so once.
	NOTIFY_SOCKET="$BATS_TEST_TMPDIR/nobody.sock" WATCHDOG_USEC=20000 \
		start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	wait_for_log 'cannot tell the service manager: No such file'
	sleep 0.3
	assert_equal "$(log_count 'cannot tell the service manager')" 1
	stop_wpool

	# A datagram socket whose owner never reads: its queue fills at once
	# with 10 ms watchdog pings; reloads and the stop go on regardless.
	"$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".up", "w").close()
time.sleep(60)' "$BATS_TEST_TMPDIR/deaf.sock" 3>&- &
	record_pid $!
	HOLDER=$!
	wait_until 5 test -e "$BATS_TEST_TMPDIR/deaf.sock.up"
	: >"$LOG"
	NOTIFY_SOCKET="$BATS_TEST_TMPDIR/deaf.sock" WATCHDOG_USEC=20000 \
		start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	wait_for_log 'cannot tell the service manager: Resource temporarily unavailable'
	local i
	for i in 1 2 3; do
		wp reload >/dev/null || fail "reload $i: $(cat "$LOG")"
	done
	run_wp status --check
	assert_success
	local t0
	t0=$(now_us)
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	(($(elapsed_ms "$t0") < 4000)) || fail "the stop took $(elapsed_ms "$t0") ms"
	kill "$HOLDER"
}

@test "examples/systemd: Type=notify-reload with an fd store, and its systemd < 253 form, as systemd-analyze verify reads them" {
	command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing: make deps-test"
	local ex="$BATS_TEST_DIRNAME/../../examples/systemd" d="$BATS_TEST_TMPDIR/units" v
	mkdir -p "$d"
	# ExecStart= must name a binary that exists: this tree's.
	sed "s|/usr/local/bin/wpool|$WPOOL|" "$ex/wpool-notify.service" \
		>"$d/wpool-notify.service"
	grep -qx 'Type=notify-reload' "$d/wpool-notify.service"
	grep -qE '^FileDescriptorStoreMax=[1-9]' "$d/wpool-notify.service"
	grep -q 'older than 253' "$d/wpool-notify.service"
	run --separate-stderr systemd-analyze verify --man=no "$d/wpool-notify.service"
	assert_success
	v=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')
	if ((v >= 253)); then
		[[ $stderr != *wpool-notify* ]] || fail "$stderr"
	else
		# All it says of the unit: it does not know notify-reload yet.
		assert_equal "$(grep wpool-notify <<<"$stderr" | sed 's/.*: //')" notify-reload
	fi
	# The note's form for systemd < 253, which it reads without a word.
	sed 's|^Type=notify-reload$|Type=notify\nExecReload=/bin/kill -HUP $MAINPID|' \
		"$d/wpool-notify.service" >"$d/wpool-notify252.service"
	grep -qx 'Type=notify' "$d/wpool-notify252.service"
	run --separate-stderr systemd-analyze verify --man=no "$d/wpool-notify252.service"
	assert_success
	[[ $stderr != *wpool-notify* ]] || fail "$stderr"
}

@test "sd_notify: with --shutdown-delay, STOPPING=1 comes when the delay begins, while the workers still serve" {
	start_managed -- -s "$CTL" -n 1 --shutdown-delay 30 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	local w
	w=$(sj '.workers[0].pid')
	kill -TERM "$WPOOL_PID"
	wait_event '^MSG STOPPING=1$' 1 5
	# The worker has not been asked to stop: the delay runs.
	kill -0 "$w" || fail "the worker is gone before the delay ended"
	assert_equal "$(sj '.workers[0].pid')" "$w"
	# A second TERM ends the delay.
	kill -TERM "$WPOOL_PID"
	wait_event '^EXIT '
	WPOOL_PID=
}
