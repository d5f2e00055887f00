#!/usr/bin/env bats
# Listener specs: IPv4, IPv6, dual-stack, host names, Unix sockets (stale
# replaced, live refused, mode), bind failures, socket options.

load ../helpers

require_ipv6() {
	can_bind_ipv6_loopback || skip "machine lacks IPv6 loopback"
}

@test "[::1]:0 listens on IPv6 loopback" {
	require_ipv6
	start_wpool -n 1 -b '[::1]:0' -- "$TESTSRV"
	assert_equal "${LISTEN_ADDRS[0]}" "[::1]:$PORT"
	NO_HTTP=1 wait_for_workers 1
	run http_get /id "$PORT" ::1
	assert_output 0
	run http_get /listeners "$PORT" ::1
	assert_output "3 stream [::1]:$PORT"
	run http_get /env "$PORT" ::1
	assert_line "SERVER_STARTER_PORT=[::1]:$PORT=3"
}

@test ":0 listens on all addresses, IPv4 and IPv6 alike" {
	start_wpool -n 1 -b :0 -- "$TESTSRV"
	[[ -n $PORT ]] || log_fail "no port in the listening line"
	run http_get /id "$PORT" 127.0.0.1
	assert_output 0
	if can_bind_ipv6_loopback; then
		run http_get /id "$PORT" ::1
		assert_output 0
	fi
}

@test "localhost:0 resolves the host name" {
	start_wpool -n 1 -b localhost:0 -- "$TESTSRV"
	local addr=${LISTEN_ADDRS[0]} host
	[[ $addr == 127.0.0.1:* || $addr == "[::1]:"* ]] ||
		log_fail "localhost:0 is listening on $addr"
	host=${addr%:*}
	host=${host#[}
	host=${host%]}
	run http_get /id "$PORT" "$host"
	assert_output 0
}

@test "a host name that does not resolve: exit 1, no worker" {
	run_wpool -n 1 -b wpool-no-such-host.invalid:80 \
		-- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	# Either a usage error (64) or a bind error (1), never a pool.
	[[ $status == 1 || $status == 64 ]] || fail "status $status: $stderr"
	[[ $stderr == *"wpool-no-such-host.invalid"* ]] || fail "stderr: $stderr"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}

@test "unix:PATH serves, and mode=0600 is applied" {
	local sock=$BATS_TEST_TMPDIR/web.sock
	start_wpool -n 1 -b "unix:$sock,mode=0600" -- "$TESTSRV"
	assert_equal "${LISTEN_ADDRS[0]}" "unix:$sock"
	[[ -S $sock ]] || log_fail "$sock is not a socket"
	assert_equal "$(stat -c %a "$sock")" 600
	run curl -sS --max-time 5 --unix-socket "$sock" http://x/id
	assert_output 0
}

@test "unix:PATH,owner=nobody:nogroup sets the socket's owner" {
	(($(id -u) == 0)) || skip "machine lacks root for the tests (owner= needs it)"
	local sock=$BATS_TEST_TMPDIR/web.sock
	start_wpool -n 1 -b "unix:$sock,owner=nobody:nogroup,mode=0660" -- "$TESTSRV"
	assert_equal "$(stat -c '%U:%G %a' "$sock")" "nobody:nogroup 660"
}

@test "unix:PATH: a stale socket file is replaced" {
	local sock=$BATS_TEST_TMPDIR/web.sock
	make_stale_unix_socket "$sock"
	[[ -S $sock ]] || fail "fixture: no stale socket"
	start_wpool -n 1 -b "unix:$sock" -- "$TESTSRV"
	run curl -sS --max-time 5 --unix-socket "$sock" http://x/id
	assert_output 0
}

@test "unix:PATH: a live socket is an error (exit 1) and is left alone" {
	local sock=$BATS_TEST_TMPDIR/web.sock
	hold_unix_listener "$sock"
	run_wpool -n 1 -b "unix:$sock" -- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 1
	[[ $stderr == *"$sock"* ]] || fail "the error does not name $sock: $stderr"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
	# The other server still owns its socket.
	run python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
print(s.recv(64).decode().strip())' "$sock"
	assert_output alive
}

@test "unix:PATH: a regular file at PATH is not clobbered" {
	local sock=$BATS_TEST_TMPDIR/precious
	echo data >"$sock"
	run_wpool -n 1 -b "unix:$sock" -- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 1
	assert_equal "$(cat "$sock")" data
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}

@test "a port in use: exit 1, one clear line, no worker started" {
	local port t0
	port=$(free_tcp_port)
	hold_tcp_listener "$port"
	t0=$(now_us)
	run_wpool -n 2 -b 127.0.0.1:0 -b "127.0.0.1:$port" \
		-- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 1
	(($(elapsed_ms "$t0") < 2000)) || fail "took $(elapsed_ms "$t0") ms"
	local n
	n=$(grep -c "cannot bind 127\.0\.0\.1:$port: Address already in use" <<<"$stderr")
	((n == 1)) || fail "$(printf 'expected one bind error line:\n%s' "$stderr")"
	refute grep -q 'started' <<<"$stderr"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}

@test "nodelay, backlog=, rcvbuf=, sndbuf=, name= are accepted and applied" {
	start_wpool -n 1 -b "127.0.0.1:0,nodelay,backlog=17,rcvbuf=65536,sndbuf=65536,name=web" \
		-- "$TESTSRV"
	wait_for_workers 1
	run http_get /env
	assert_line LISTEN_FDNAMES=web
	# Accepted connections inherit TCP_NODELAY from the listener.
	run http_get /conn
	assert_output --regexp '^nodelay=1 '
	if command -v ss >/dev/null; then
		# For a listening socket ss shows the backlog as Send-Q, and the
		# kernel doubles the SO_RCVBUF asked for.
		run ss -Hltnm "sport = :$PORT"
		assert_output --regexp "^LISTEN +0 +17 "
		assert_output --partial "rb131072"
	fi
}

@test "--backlog sets the default backlog of every listener" {
	command -v ss >/dev/null || skip "machine lacks ss (iproute2)"
	start_wpool -n 1 --backlog 23 -b 127.0.0.1:0 -- "$TESTSRV"
	run ss -Hltn "sport = :$PORT"
	assert_output --regexp "^LISTEN +0 +23 "
}

@test "the listeners stay open while workers come and go" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	# A request in flight while the only worker is killed and replaced
	# waits in the backlog instead of being refused.
	kill -KILL "${WORKERS[0]}"
	run http_get /id
	assert_success
	assert_output 0
}
