#!/usr/bin/env bats
# The fd store (issue 13): wpool asks its manager to keep every listener
# and reuseport slot socket (FDSTORE=1, FDNAME=NAME or NAME.slotK); a
# wpool started again with them (LISTEN_FDS, LISTEN_FDNAMES) adopts each
# by name and address instead of binding, and serves what queued
# meanwhile; what no listener takes, or a slot scaled away, is dropped
# from the store (FDSTOREREMOVE=1).

load ../helpers
load ../control_helpers
load ../sdnotify_helpers

# The connections that started after the crash: none failed, some served.
assert_restart_lossless() {
	local refused after_ok after_bad
	refused=$(load_count refused)
	after_ok=$(awk -v t="$KILLED_AT" '$1 > t && $2 == "ok"' "$LOADOUT" | wc -l)
	after_bad=$(awk -v t="$KILLED_AT" '$1 > t && $2 != "ok"' "$LOADOUT" | wc -l)
	((refused == 0)) || fail "$refused connections refused: $(sort -k2 "$LOADOUT" | uniq -f1 -c)"
	((after_bad == 0)) || fail "$after_bad connections begun after the crash failed: $(awk -v t="$KILLED_AT" '$1 > t && $2 != "ok"' "$LOADOUT")"
	((after_ok >= 8)) || fail "only $after_ok connections begun after the crash were served"
}

@test "fd store: killed with -9 and started again with its stored fds, wpool adopts them; under load 0 connections refused" {
	local port
	port=$(free_tcp_port)
	start_managed -- -s "$CTL" -n 2 -b "127.0.0.1:$port,name=web" \
		-b "unix:$BATS_TEST_TMPDIR/api.sock,name=api" -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	wait_event "^STORED web 127\\.0\\.0\\.1:$port\$"
	wait_event "^STORED api unix:$BATS_TEST_TMPDIR/api.sock\$"
	start_load "$port"
	wait_until 10 served_since 0 20
	crash_and_restart
	wait_event '^MSG READY=1$' 2
	# Adopted, not bound: no second socket, nothing stored twice.
	wait_for_log 'fd store: web kept \(fd 3\), with the connections queued on it'
	wait_for_log 'fd store: api kept \(fd 4\)'
	curl -sS --max-time 5 --unix-socket "$BATS_TEST_TMPDIR/api.sock" http://x/pid >/dev/null
	wait_until 10 served_since "$KILLED_AT" 30
	stop_load
	assert_restart_lossless
	assert_equal "$(ev_count '^STORED ')" 2
	assert_equal "$(ev_count '^REMOVED ')" 0
	assert_equal "$(sj '.ready')" 2
}

@test "fd store: a graceful stop (systemctl restart) keeps the store and a unix listener's path; the next wpool adopts both, 0 refused under load" {
	local port
	port=$(free_tcp_port)
	start_managed -- -s "$CTL" -n 2 -b "127.0.0.1:$port,name=web" \
		-b "unix:$BATS_TEST_TMPDIR/api.sock,name=api" -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	wait_event "^STORED api unix:$BATS_TEST_TMPDIR/api.sock\$"
	start_load "$port"
	wait_until 10 served_since 0 20
	kill -TERM "$WPOOL_PID"
	wait_event '^EXIT '
	# testsrv exits at TERM with what it accepted unanswered: from the
	# old master's exit on, every connection must be served.
	KILLED_AT=$(awk '$2 == "EXIT" { print $1; exit }' "$EVENTS")
	# Stored, so its path stays for the next wpool.
	[[ -S $BATS_TEST_TMPDIR/api.sock ]] || fail "the unix socket's path went"
	sleep 0.3
	restart_managed
	wait_event '^MSG READY=1$' 2
	wait_for_log 'fd store: web kept'
	wait_for_log 'fd store: api kept'
	curl -sS --max-time 5 --unix-socket "$BATS_TEST_TMPDIR/api.sock" http://x/pid >/dev/null
	wait_until 10 served_since "$KILLED_AT" 30
	stop_load
	assert_restart_lossless
	assert_equal "$(ev_count '^REMOVED ')" 0
}

@test "fd store: -m reuseport stores each slot's socket as NAME.slotK, adopts them all after a crash, and drops one scaled away" {
	local port
	port=$(free_tcp_port)
	start_managed -- -s "$CTL" -m reuseport -n 3 -b "127.0.0.1:$port,name=web" -- "$TESTSRV"
	wait_event '^MSG READY=1$'
	wait_event "^STORED web 127\\.0\\.0\\.1:$port\$"
	wait_event "^STORED web\\.slot1 127\\.0\\.0\\.1:$port\$"
	wait_event "^STORED web\\.slot2 127\\.0\\.0\\.1:$port\$"
	start_load "$port"
	wait_until 10 served_since 0 20
	crash_and_restart
	wait_event '^MSG READY=1$' 2
	wait_for_log 'fd store: web kept'
	wait_for_log 'fd store: web\.slot1 kept'
	wait_for_log 'fd store: web\.slot2 kept'
	wait_until 10 served_since "$KILLED_AT" 30
	stop_load
	assert_restart_lossless
	assert_equal "$(ev_count '^STORED ')" 3
	# Scaled down: slot 2's socket is closed, and the store drops it.
	wp scale 2 >/dev/null
	wait_event '^REMOVED web\.slot2$'
	assert_equal "$(ev_count '^REMOVED ')" 1
}

@test "fd store: a listener moved, renamed or gone: its stored socket leaves the store, goes to the listener bound where it is, or is closed" {
	local p1 p2 p3 args="$BATS_TEST_TMPDIR/args"
	p1=$(free_tcp_port)
	p2=$(free_tcp_port)
	p3=$(free_tcp_port)
	# The command line the manager runs comes from a file, to change it.
	local wrap
	wrap=$(make_script wrap.sh <<WRAP
#!/bin/bash
exec "$WPOOL" \$(cat "$args")
WRAP
)
	echo "-s $CTL -n 1 -b 127.0.0.1:$p1,name=web -b 127.0.0.1:$p2,name=api -- $TESTSRV" >"$args"
	"$PY" "$SDMANAGER" "$NSOCK" "$EVENTS" "$LOG" -- "$wrap" </dev/null 3>&- &
	MGR_PID=$!
	wait_event '^MSG READY=1$'
	WPOOL_PID=$(last_wpool_pid)
	wait_event "^STORED api 127\\.0\\.0\\.1:$p2\$"
	# Now web moves to p3, www takes web's old p1, and api is gone.
	echo "-s $CTL -n 1 -b 127.0.0.1:$p3,name=web -b 127.0.0.1:$p1,name=www -- $TESTSRV" >"$args"
	crash_and_restart
	wait_event '^MSG READY=1$' 2
	wait_for_log "fd store: web is not bound where 127.0.0.1:$p3 is: binding a new one"
	# p1's socket is www's (binding p1 anew would fail: it is taken).
	wait_for_log "fd store: the socket stored as web is www's now"
	wait_for_log 'fd store: api \(fd [0-9]+\) is no listener.s any more: dropped'
	wait_event '^REMOVED api$'
	wait_event "^STORED web 127\\.0\\.0\\.1:$p3\$"
	wait_event "^STORED www 127\\.0\\.0\\.1:$p1\$"
	# The new web was stored after the old left: it is kept.
	assert_equal "$(events | grep -E '^(REMOVED|STORED) w' | tr '\n' ,)" \
		"STORED web 127.0.0.1:$p1,REMOVED web,STORED web 127.0.0.1:$p3,STORED www 127.0.0.1:$p1,"
	# Nobody holds api's port any more: refused.
	if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)' "$p2" 2>/dev/null; then
		fail "port $p2 still accepts connections"
	fi
	http_get /pid "$p3" >/dev/null
	http_get /pid "$p1" >/dev/null
}

@test "fd store: sockets passed in (-b systemd, here by systemd-socket-activate) are not stored: their passer holds them" {
	command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate is missing: make deps-test"
	local port
	port=$(free_tcp_port)
	start_managed -- -- systemd-socket-activate -l "127.0.0.1:$port" \
		--fdname=web -E NOTIFY_SOCKET "$WPOOL" -s "$CTL" -n 1 -b systemd \
		-- "$TESTSRV"
	# It execs wpool at the first connection, which waits in the queue.
	http_get /pid "$port" >/dev/null
	wait_event '^MSG READY=1$'
	assert_equal "$(events | grep -c '^MSG FDSTORE=1$')" 0
	WPOOL_PID=$(last_wpool_pid)
}
