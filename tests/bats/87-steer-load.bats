#!/usr/bin/env bats
# -m reuseport steers new TCP connections by load: a slot whose worker is
# stuck (here: stopped, so its accept queue grows) gets (almost) none of
# them while the others serve, and gets them again once it drains; the
# master watches only while connections flow (idle: no wake-up); a slot's
# socket closing says once whether the kernel moves its handshakes
# (net.ipv4.tcp_migrate_req).

load ../helpers
load ../reuseport_helpers

MIGRATE=/proc/sys/net/ipv4/tcp_migrate_req

setup() {
	rp_setup
	MIGRATE_SAVED=
}

teardown() {
	rp_teardown
	if [[ -n $MIGRATE_SAVED ]]; then
		echo "$MIGRATE_SAVED" >"$MIGRATE"
	fi
}

# sample_pids K TIMEOUT: K requests, each on a new connection, each given
# TIMEOUT seconds; the answering pid of each that was answered.
sample_pids() {
	local k=$1 t=$2 urls=() i
	for ((i = 0; i < k; i++)); do
		urls+=("http://127.0.0.1:$PORT/")
	done
	curl -s --max-time "$t" -H 'Connection: close' "${urls[@]}" 2>/dev/null |
		grep -o '^pid=[0-9]*' | cut -d= -f2 || true
}

# ctxt PID: the voluntary context switches of PID so far.
ctxt() {
	awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status"
}

@test "steer: a stopped worker's slot gets (almost) no new connection while the others serve" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	local stuck out n q
	stuck=$(pid_of_id 1)
	kill -STOP "$stuck"
	# 60 connections one after the other: at random a third (about 20)
	# would wait on the stopped worker's socket, each for the timeout.
	out=$(sample_pids 60 0.3)
	n=$(grep -c . <<<"$out" || true)
	q=$(queue_of_pid "$stuck" "$PORT") || q=0
	echo "answered $n of 60; queued on the stopped worker: $q"
	! grep -qx "$stuck" <<<"$out" || log_fail "the stopped worker answered"
	((q <= 8)) || log_fail "$q connections were sent to the stopped worker's queue"
	((n >= 52)) || log_fail "only $n of 60 connections were answered"
	# The others both served.
	assert_equal "$(sort -u <<<"$out" | grep -c .)" 2
	# Once it runs again it drains its queue and is given connections.
	kill -CONT "$stuck"
	wait_until 5 eval '(( $(queue_of_pid '"$stuck $PORT"' || echo 0) == 0 ))'
	local deadline seen=0
	deadline=$(deadline_in 5)
	until ((seen)); do
		grep -qx "$stuck" <<<"$(sample_pids 12 2)" && seen=1
		((seen)) || ! past "$deadline" ||
			log_fail "worker 1 got no connection after it drained its queue"
	done
}

@test "steer: the master does not wake while no connection comes, after a burst" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	local n a b
	n=$(sample_pids 50 2 | grep -c . || true)
	assert_equal "$n" 50
	# The watch's last period ends 5 ms after the last connection.
	sleep 0.2
	a=$(ctxt "$WPOOL_PID")
	sleep 1.5
	b=$(ctxt "$WPOOL_PID")
	echo "master woke $((b - a)) time(s) in 1.5 s idle"
	(((b - a) <= 1)) || log_fail "the idle master woke $((b - a)) times"
	# And it still watches: a stopped worker is noticed after the pause
	# (at random, about 20 of 60 would wait on its socket).
	local stuck q
	stuck=$(pid_of_id 0)
	kill -STOP "$stuck"
	sample_pids 60 0.3 >/dev/null
	q=$(queue_of_pid "$stuck" "$PORT") || q=0
	echo "queued on the stopped worker after the pause: $q of 60"
	((q <= 8)) || log_fail "$q connections were sent to the stopped worker's queue"
}

@test "steer: a slot's socket closing says once that net.ipv4.tcp_migrate_req is off" {
	[[ -r $MIGRATE ]] || skip "this kernel has no $MIGRATE (Linux < 5.14)"
	MIGRATE_SAVED=$(cat "$MIGRATE")
	echo 0 >"$MIGRATE" 2>/dev/null ||
		{ MIGRATE_SAVED=; skip "$MIGRATE is read-only here"; }
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	run "$WPOOL" scale 2 3>&-
	assert_success
	wait_for_log 'tcp_migrate_req is off'
	run "$WPOOL" scale 1 3>&-
	assert_success
	wait_until 5 eval '(( $(count_tcp_listeners '"$PORT"') == 1 ))'
	assert_equal "$(log_count 'tcp_migrate_req')" 1
}

@test "steer: with net.ipv4.tcp_migrate_req on, a slot's socket closes without that warning" {
	[[ -r $MIGRATE ]] || skip "this kernel has no $MIGRATE (Linux < 5.14)"
	MIGRATE_SAVED=$(cat "$MIGRATE")
	echo 1 >"$MIGRATE" 2>/dev/null ||
		{ MIGRATE_SAVED=; skip "$MIGRATE is read-only here"; }
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	run "$WPOOL" scale 1 3>&-
	assert_success
	wait_until 5 eval '(( $(count_tcp_listeners '"$PORT"') == 1 ))'
	assert_equal "$(log_count 'tcp_migrate_req')" 0
}
