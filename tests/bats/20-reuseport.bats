#!/usr/bin/env bats
# -m reuseport: one SO_REUSEPORT socket per worker slot, bound and kept by
# the master, handed to the slot's next worker; connections queued on a
# dead, reloaded or scaled-down worker's socket are served, not reset.
#
# The load is tests/bin/rp_load (new connections at a fixed rate, each with
# `Connection: close`); the workers are tests/bin/rp_srv, which on TERM
# stops accepting and answers what it accepted (what a real server does:
# testsrv would drop its accepted connections on TERM, which no supervisor
# can save).  Killing a worker is done by stop_queue_kill: STOP it, let
# connections queue on its socket, check it holds no accepted connection,
# then KILL, so every kill leaves a non-empty queue behind and any failed
# connection is one that wpool lost.

load ../helpers
load ../reuseport_helpers

setup() {
	rp_setup
}

teardown() {
	rp_teardown
}

# slot_inodes: "ID:INODE" for every worker's fd 3, sorted by id.
slot_inodes() {
	local p
	for p in "${WORKERS[@]}"; do
		echo "${WORKER_ID[$p]}:$(sock_inode "$p" 3)"
	done | sort -n
}

@test "reuseport: 3 workers, 3 distinct listening sockets, each held by the master too" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	assert_equal "$(count_tcp_listeners "$PORT")" 3
	local p line inodes=()
	for p in "${WORKERS[@]}"; do
		# Exactly one of the sockets is this worker's, and wpool holds it.
		assert_equal "$(tcp_listen_lines "$PORT" | grep -c "pid=$p,")" 1
		line=$(tcp_listen_lines "$PORT" | grep "pid=$p,")
		[[ $line == *"pid=$WPOOL_PID,"* ]] ||
			log_fail "the master does not hold worker $p's socket: $line"
		inodes+=("$(sock_inode "$p" 3)")
		# fd 3 and nothing else: one listener, one socket.
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 1
		assert_equal "$(conn_fds "$p" 1)" 0
	done
	assert_equal "$(printf '%s\n' "${inodes[@]}" | sort -u | wc -l)" 3
	# Every worker's socket gets connections (the kernel, or wpool's
	# steering, spreads them): wait_for_workers saw all three answer.
	run --separate-stderr status_json
	assert_success
	assert_equal "$(jq_py 'j["mode"]' <<<"$output")" reuseport
	local ws
	ws=$(jq_py '[ "%d %s %d %d" % (w["id"], s["listener"], s["fd"], s["queue"])
	    for w in j["workers"] for s in w["sockets"] ]' <<<"$output")
	assert_equal "$ws" "$(printf '0 l0 3 0\n1 l0 3 0\n2 l0 3 0')"
}

@test "reuseport with two listeners: each worker gets its own socket on both" {
	start_wpool -m reuseport -n 2 -b 127.0.0.1:0,name=a -b 127.0.0.1:0,name=b -- "$TESTSRV"
	wait_for_workers 2
	local p2=${PORTS[1]} p
	assert_equal "$(count_tcp_listeners "$PORT")" 2
	assert_equal "$(count_tcp_listeners "$p2")" 2
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" a:b
		tcp_listen_lines "$PORT" | grep -q "pid=$p,fd=3)" ||
			log_fail "worker $p has no socket of its own on $PORT at fd 3"
		tcp_listen_lines "$p2" | grep -q "pid=$p,fd=4)" ||
			log_fail "worker $p has no socket of its own on $p2 at fd 4"
	done
	run http_get / "$p2"
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0$'
	run --separate-stderr status_json
	assert_equal "$(jq_py '[ ",".join(s["listener"] for s in w["sockets"])
	    for w in j["workers"] ]' <<<"$output")" "$(printf 'a,b\na,b')"
}

@test "reuseport: a worker killed with KILL is replaced on the very same socket" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 3
	local before old ino new
	before=$(slot_inodes)
	old=$(pid_of_id 1)
	ino=$(sock_inode "$old" 3)
	kill -KILL "$old"
	wait_for_log "worker 1 \(pid $old\) killed by signal KILL"
	wait_for_log_count 'worker 1 started' 2
	new=$(sed -nE 's/.*worker 1 started \(pid ([0-9]+),.*/\1/p' "$LOG" | tail -1)
	wait_for_workers 3
	assert_equal "$(sock_inode "$new" 3)" "$ino"
	assert_equal "$(slot_inodes)" "$before"
	assert_equal "$(count_tcp_listeners "$PORT")" 3
}

@test "reuseport: status reports the accept queue of a stopped worker's socket" {
	start_wpool -m reuseport -n 2 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 2
	local w1 q
	w1=$(pid_of_id 1)
	kill -STOP "$w1"
	start_load -p "$PORT" -r 200 -n 40 -t 10000
	# Connections steered to worker 1 wait in its socket's queue.
	wait_until 5 eval '(( $(queue_of_pid '"$w1 $PORT"' || echo 0) >= 2 ))'
	q=$(status_json | jq_py '[ s["queue"] for w in j["workers"] if w["id"] == 1
	    for s in w["sockets"] ][0]')
	((q >= 2)) || log_fail "status says worker 1's queue is '$q', ss says $(queue_of_pid "$w1" "$PORT")"
	# Worker 0 serves: its queue empties (a connection may have just
	# come in when status reads it, at 200 a second).
	wait_until 3 eval '(( $(status_json | jq_py '"'"'[ s["queue"] for w in j["workers"] if w["id"] == 0 for s in w["sockets"] ][0]'"'"') == 0 ))'
	kill -CONT "$w1"
	wait_load 20
	assert_load_clean 40
}

@test "reuseport: what was queued on a killed worker's socket is served by its successor" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 3
	local old q new
	old=$(pid_of_id 2)
	start_load -p "$PORT" -r 100 -d 2 -t 10000
	sleep 0.3
	q=$(stop_queue_kill "$old" "$PORT" 3)
	((q >= 3)) || log_fail "only $q connection(s) queued on worker 2's socket"
	wait_for_log "worker 2 \(pid $old\) killed by signal KILL"
	wait_load 20
	assert_load_clean 150
	new=$(sed -nE 's/.*worker 2 started \(pid ([0-9]+),.*/\1/p' "$LOG" | tail -1)
	[[ -n $new && $new != "$old" ]] || log_fail "no new worker 2"
	[[ $(load_field pids) == *"$new:"* ]] ||
		log_fail "the new worker 2 ($new) answered nothing: $LOAD"
}

@test "reuseport: kill -9 every 200 ms for 4 s under load: no reset, no refusal" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$RP_SRV" --quiet-exit
	wait_for_workers 3
	local t_end next kills=0 queued=0 q victims
	start_load -p "$PORT" -r 300 -d 5 -t 10000
	sleep 0.3
	t_end=$(deadline_in 4)
	while ! past "$t_end"; do
		next=$(deadline_in 0.2)
		mapfile -t victims < <(worker_pids)
		if ((${#victims[@]} > 0)); then
			q=$(stop_queue_kill "${victims[RANDOM % ${#victims[@]}]}" "$PORT")
			kills=$((kills + 1))
			queued=$((queued + q))
		fi
		while ! past "$next"; do sleep 0.01; done
	done
	wait_load 30
	echo "# kills=$kills queued_at_kill=$queued load: $LOAD" >&3
	# (Fewer than 20 on a busy machine: each kill waits for a queue.)
	((kills >= 5)) || log_fail "only $kills kills in 4 s"
	((queued > 0)) || log_fail "no kill left a queued connection behind: the test proved nothing"
	assert_load_clean 1000
	assert_equal "$(log_count 'killed by signal KILL')" "$kills"
	wait_for_workers 3
	assert_equal "$(count_tcp_listeners "$PORT")" 3
}

@test "reuseport: scale 3 -> 1 under load loses no connection, queued ones included" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 3
	local w1 w2 i1 i2 w0
	w0=$(pid_of_id 0)
	w1=$(pid_of_id 1)
	w2=$(pid_of_id 2)
	start_load -p "$PORT" -r 200 -d 4 -t 10000
	sleep 0.5
	# Workers 1 and 2, about to be removed, have connections waiting.
	kill -STOP "$w1" "$w2"
	wait_until 5 eval '(( $(queue_of_pid '"$w1 $PORT"' || echo 0) >= 2 &&
	    $(queue_of_pid '"$w2 $PORT"' || echo 0) >= 2 ))'
	run "$WPOOL" scale 1 3>&-
	assert_success
	sleep 0.2
	# Still there: wpool waits for their queues.
	alive "$w1" || log_fail "worker 1 was stopped while connections waited on its socket"
	alive "$w2" || log_fail "worker 2 was stopped while connections waited on its socket"
	kill -CONT "$w1" "$w2"
	wait_gone "$w1" "$w2"
	wait_until 5 eval '(( $(count_tcp_listeners '"$PORT"') == 1 ))'
	wait_load 20
	assert_load_clean 700
	grep -Eq "worker 1 \(pid $w1\) exited with status 0" "$LOG" ||
		log_fail "worker 1 did not stop gracefully"
	grep -Eq "worker 2 \(pid $w2\) exited with status 0" "$LOG" ||
		log_fail "worker 2 did not stop gracefully"
	# What is left is worker 0, on its own socket.
	wait_for_workers 1
	assert_equal "${WORKERS[0]}" "$w0"
	run --separate-stderr status_json
	assert_equal "$(jq_py 'len(j["workers"])' <<<"$output")" 1
}

@test "reuseport: scaling away a slot whose worker is dead (restart pending) still serves its queue" {
	# --restart-delay: the slot stays without a worker for 3 s after the
	# kill, with connections waiting on its socket; then it is scaled away.
	start_wpool -m reuseport -n 3 --restart-delay 3 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 3
	local w2 q
	w2=$(pid_of_id 2)
	start_load -p "$PORT" -r 100 -d 2 -t 10000
	sleep 0.3
	q=$(stop_queue_kill "$w2" "$PORT" 3)
	((q >= 3)) || log_fail "only $q connection(s) queued on worker 2's socket"
	wait_for_log "worker 2 \(pid $w2\) killed by signal KILL"
	run "$WPOOL" scale 2 3>&-
	assert_success
	wait_load 20
	assert_load_clean 150
}

@test "reuseport: a draining slot whose worker dies still gets its queue served" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 3
	local w2
	w2=$(pid_of_id 2)
	start_load -p "$PORT" -r 100 -d 2 -t 10000
	sleep 0.3
	kill -STOP "$w2"
	wait_until 5 eval '(( $(queue_of_pid '"$w2 $PORT"' || echo 0) >= 3 ))'
	run "$WPOOL" scale 2 3>&-
	assert_success
	sleep 0.2
	# Slot 2 drains (new connections go elsewhere); its worker dies.
	kill -KILL "$w2"
	wait_for_log "worker 2 \(pid $w2\) killed by signal KILL"
	wait_load 20
	assert_load_clean 150
}

@test "reuseport: scale 1 -> 3 -> 1 -> 2 under load: no failed connection" {
	start_wpool -m reuseport -n 1 -b 127.0.0.1:0 -- "$RP_SRV" --quiet-exit
	wait_for_workers 1
	start_load -p "$PORT" -r 300 -d 4 -t 10000
	sleep 0.3
	"$WPOOL" scale 3 3>&- >/dev/null
	wait_until 5 eval '(( $(count_tcp_listeners '"$PORT"') == 3 ))'
	sleep 0.5
	"$WPOOL" scale 1 3>&- >/dev/null
	wait_until 10 eval '(( $(count_tcp_listeners '"$PORT"') == 1 ))'
	sleep 0.3
	"$WPOOL" scale 2 3>&- >/dev/null
	wait_until 5 eval '(( $(count_tcp_listeners '"$PORT"') == 2 ))'
	wait_load 20
	assert_load_clean 1000
	wait_for_workers 2
}

@test "reuseport: a rolling reload under load fails no connection and keeps every slot's socket" {
	start_wpool -m reuseport -n 3 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 3
	local before old=("${WORKERS[@]}")
	before=$(slot_inodes)
	start_load -p "$PORT" -r 300 -d 4 -t 10000
	sleep 0.5
	run "$WPOOL" reload 3>&-
	assert_success
	wait_for_log_count 'worker [0-2] started \(pid [0-9]+, generation 1\)' 3
	wait_gone "${old[@]}"
	wait_load 20
	assert_load_clean 1000
	wait_for_workers 3
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 1
	done
	# Both generations of a slot shared the slot's socket.
	assert_equal "$(slot_inodes)" "$before"
	assert_equal "$(count_tcp_listeners "$PORT")" 3
}

@test "reuseport: a unix: listener is refused with exit 64 and a clear message" {
	run_wpool -64 -m reuseport -n 2 -b "unix:$BATS_TEST_TMPDIR/s.sock" -- "$TESTSRV"
	assert_equal "$output" ""
	[[ $stderr == *unix* && $stderr == *reuseport* ]] ||
		fail "unclear message: $stderr"
	# The error, then the pointer to --help of every usage error.
	assert_equal "$(wc -l <<<"$stderr")" 2
	assert_equal "${stderr_lines[1]}" "Try 'wpool --help' for more information."
	[[ ! -e $BATS_TEST_TMPDIR/s.sock ]] || fail "the socket file was created"
	# Mixed with a TCP listener, the same.
	run_wpool -64 -m reuseport -b 127.0.0.1:0 -b "unix:$BATS_TEST_TMPDIR/s.sock" -- "$TESTSRV"
	[[ $stderr == *unix* ]] || fail "unclear message: $stderr"
}

@test "reuseport without any -b is refused with exit 64" {
	run_wpool -64 -m reuseport -n 2 -- "$TESTSRV"
	[[ $stderr == *reuseport* ]] || fail "unclear message: $stderr"
	[[ $stderr == *-b* || $stderr == *bind* ]] || fail "the message does not say what is missing: $stderr"
}

@test "shared mode: status reports the listener's accept queue" {
	start_wpool -m shared -n 2 -b 127.0.0.1:0 -- "$RP_SRV"
	wait_for_workers 2
	local p q
	for p in "${WORKERS[@]}"; do kill -STOP "$p"; done
	start_load -p "$PORT" -r 100 -n 5 -t 10000
	wait_until 5 eval '(( $(tcp_listen_lines '"$PORT"' | awk "{print \$2}") >= 5 ))'
	q=$(status_json | jq_py 'j["listeners"][0]["queue"]')
	assert_equal "$q" 5
	for p in "${WORKERS[@]}"; do kill -CONT "$p"; done
	wait_load 10
	assert_load_clean 5
	q=$(status_json | jq_py 'j["listeners"][0]["queue"]')
	assert_equal "$q" 0
}
