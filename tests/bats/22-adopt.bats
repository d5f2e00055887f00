#!/usr/bin/env bats
# Adopted listeners: -b systemd (sockets passed to wpool itself by socket
# activation: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) and -b fd:N[,name=N]
# (a listening socket a launcher left open), checked to be listening
# sockets; a round trip through Debian's systemd-socket-activate.

load ../helpers
load ../reuseport_helpers

setup() {
	rp_setup
	LAUNCHER="$BATS_TEST_TMPDIR/launch.py"
	# launch.py MODE FD COMMAND...: puts something at fd FD (inheritable),
	# then execs COMMAND.  MODE: listen (a TCP socket listening on
	# 127.0.0.1, port written to $PORT_FILE), udp (a bound UDP socket),
	# bound (a TCP socket bound but not listening), file (/dev/null),
	# closed (nothing: FD is closed).
	cat >"$LAUNCHER" <<'EOF'
import os, socket, sys
mode, fdnum, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
fd = None
if mode in ("listen", "bound", "udp"):
    s = socket.socket(socket.AF_INET,
                      socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    if mode == "listen":
        s.listen(64)
    with open(os.environ.get("PORT_FILE", os.devnull), "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    fd = s.fileno()
elif mode == "file":
    fd = os.open(os.devnull, os.O_RDONLY)
elif mode == "closed":
    try:
        os.close(fdnum)
    except OSError:
        pass
if fd is not None:
    if fd != fdnum:
        os.dup2(fd, fdnum)
    os.set_inheritable(fdnum, True)
os.execvp(argv[0], argv)
EOF
	export PORT_FILE="$BATS_TEST_TMPDIR/port"
}

teardown() {
	rp_teardown
}

# start_activated SSA_ARGS... -- WPOOL_ARGS...: systemd-socket-activate in
# the background, exec'ing wpool (same pid: WPOOL_PID) on the first
# connection.  Waits until it listens.
start_activated() {
	local ssa=() n=0
	while (($#)) && [[ $1 != -- ]]; do
		ssa+=("$1")
		shift
	done
	shift
	command -v systemd-socket-activate >/dev/null ||
		skip "machine lacks systemd-socket-activate (Debian package systemd)"
	# systemd-socket-activate passes on only the environment it is told
	# to (-E): this test's control socket must be among it.
	env --default-signal systemd-socket-activate \
		-E "WPOOL_CONTROL=$WPOOL_CONTROL" "${ssa[@]}" \
		"$WPOOL" "$@" </dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	local a
	for a in "${ssa[@]}"; do [[ $a == -l* ]] && n=$((n + 1)); done
	wait_for_log_count '^Listening on .* as [0-9]+\.$' "$n"
}

@test "systemd-socket-activate -l 127.0.0.1:PORT --fdname=web wpool -b systemd: the round trip" {
	local port
	port=$(free_tcp_port)
	start_activated -l "127.0.0.1:$port" --fdname=web -- -n 2 -b systemd -- "$TESTSRV"
	# The connection that triggers the activation waits in the backlog
	# and is answered by a worker.
	run http_get / "$port"
	[[ $status == 0 ]] || log_fail "the first connection failed: $output"
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0$'
	wait_for_listeners 1
	assert_equal "$PORT" "$port"
	grep -Eq "^wpool: listening on 127\.0\.0\.1:$port \(web, fd 3\)$" "$LOG" ||
		log_fail "no 'listening on 127.0.0.1:$port (web, fd 3)' line"
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" web
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 1
		assert_equal "$(worker_env "$p" LISTEN_PID)" "$p"
		assert_equal "$(worker_env "$p" WPOOL_MASTER_PID)" "$WPOOL_PID"
	done
	# Over HTTP too: what a worker sees.
	run http_get /env
	assert_line LISTEN_FDNAMES=web
	assert_line LISTEN_FDS=1
	# The master's own LISTEN_* are consumed, not left in its environment
	# for a stranger to misread.
	run --separate-stderr status_json
	assert_equal "$(jq_py 'j["listeners"][0]["name"]' <<<"$output")" web
	assert_equal "$(jq_py 'j["listeners"][0]["address"]' <<<"$output")" "127.0.0.1:$port"
	# It is a pool like any other: a killed worker comes back and serves.
	kill -KILL "$(pid_of_id 0)"
	wait_for_log_count 'worker 0 started' 2
	wait_for_workers 2
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	[[ $WPOOL_STATUS == 0 ]] || log_fail "exit status $WPOOL_STATUS after TERM"
	grep -q '^wpool: stopped$' "$LOG" || log_fail "no clean stop"
}

@test "systemd-socket-activate with two -l: two listeners, named in order" {
	local p1 p2
	p1=$(free_tcp_port)
	p2=$(free_tcp_port)
	[[ $p1 != "$p2" ]] || p2=$((p1 + 1))
	start_activated -l "127.0.0.1:$p1" -l "127.0.0.1:$p2" --fdname=web:admin \
		-- -n 2 -b systemd -- "$TESTSRV"
	run http_get /id "$p2"
	assert_success
	wait_for_listeners 2
	assert_equal "${PORTS[*]}" "$p1 $p2"
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 2
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" web:admin
	done
	run http_get / "$p1"
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0$'
	run http_get / "$p2"
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0$'
	run --separate-stderr status_json
	assert_equal "$(jq_py '[l["name"] for l in j["listeners"]]' <<<"$output")" "$(printf 'web\nadmin')"
}

@test "a LISTEN_FDNAMES name wpool cannot pass on safely (a quote) is refused with a warning; the default name is used" {
	local p1
	p1=$(free_tcp_port)
	start_activated -l "127.0.0.1:$p1" '--fdname=we"b' -- -n 1 -b systemd -- "$TESTSRV"
	# systemd-socket-activate starts wpool at the first connection.
	run http_get /id "$p1"
	assert_success
	wait_for_listeners 1
	wait_for_workers 1
	wait_for_log "warning: LISTEN_FDNAMES: fd 3: name 'we\"b' is not letters, digits"
	local name
	name=$(worker_env "${WORKERS[0]}" LISTEN_FDNAMES)
	[[ $name != *'"'* && -n $name ]] || fail "the worker got LISTEN_FDNAMES='$name'"
}

@test "systemd-socket-activate --datagram: a UDP socket adopted with -b systemd" {
	local port
	port=$(python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
	start_activated -d -l "127.0.0.1:$port" -- -n 2 -b systemd -- "$TESTSRV"
	run python3 - "$port" <<'EOF'
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
c.sendto(b"GET /id", ("127.0.0.1", int(sys.argv[1])))
print(c.recvfrom(2048)[0].decode().strip())
EOF
	assert_success
	assert_output --regexp '^[01]$'
	NO_HTTP=1 wait_for_workers 2
}

@test "-b systemd without LISTEN_FDS: exit 64, nothing started, a message that says why" {
	run_wpool -64 -n 2 -b systemd -- "$TESTSRV"
	assert_equal "$output" ""
	[[ $stderr == *LISTEN_FDS* ]] || fail "the message does not name LISTEN_FDS: $stderr"
	assert_equal "$(wc -l <<<"$stderr")" 1
}

@test "-b systemd with someone else's LISTEN_PID: exit 64, nothing adopted" {
	LISTEN_FDS=1 LISTEN_PID=1 run_wpool -64 -n 2 -b systemd -- "$TESTSRV"
	[[ $stderr == *LISTEN_PID* ]] || fail "the message does not name LISTEN_PID: $stderr"
	assert_equal "$(wc -l <<<"$stderr")" 1
	# Same when a listening socket really is at fd 3.
	WPOOL_PREFIX=(python3 "$LAUNCHER" listen 3 env LISTEN_FDS=1 LISTEN_PID=1)
	run_wpool -64 -n 2 -b systemd -- "$TESTSRV"
	[[ $stderr == *LISTEN_PID* ]] || fail "the message does not name LISTEN_PID: $stderr"
}

@test "-b systemd: LISTEN_PID is wpool's pid but fd 3 is not open: exit 1" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" closed 3 bash -c 'export LISTEN_FDS=1 LISTEN_PID=$$; exec "$@"' sh)
	run_wpool -1 -n 2 -b systemd -- "$TESTSRV"
	[[ $stderr == *fd:3* || $stderr == *"fd 3"* ]] || fail "the message does not name fd 3: $stderr"
}

@test "-b fd:N,name=web: a listening socket left open by a launcher is adopted" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" listen 7)
	start_wpool -n 2 -b fd:7,name=web -- "$TESTSRV"
	local port
	port=$(tr -d '\n' <"$PORT_FILE")
	assert_equal "$PORT" "$port"
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" web
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 1
	done
	# The worker gets it at fd 3, like any listener, and not fd 7 as well.
	run http_get /fds
	assert_line --regexp '^3 socket:\[[0-9]+\]$'
	refute_line --regexp '^7 '
	run --separate-stderr status_json
	assert_equal "$(jq_py 'j["listeners"][0]["name"]' <<<"$output")" web
}

@test "-b fd:N without a name is named by position, like any listener" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" listen 5)
	start_wpool -n 1 -b 127.0.0.1:0 -b fd:5 -- "$TESTSRV"
	wait_for_workers 1
	assert_equal "$(worker_env "${WORKERS[0]}" LISTEN_FDNAMES)" l0:l1
	assert_equal "${PORTS[1]}" "$(tr -d '\n' <"$PORT_FILE")"
	run http_get / "${PORTS[1]}"
	assert_output --regexp '^pid=[0-9]+ id=0 gen=0$'
}

@test "-b fd:N that is not a socket: exit 1, 'not a socket'" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" file 7)
	run_wpool -1 -n 2 -b fd:7 -- "$TESTSRV"
	[[ $stderr == *"not a socket"* ]] || fail "unclear message: $stderr"
	[[ $stderr == *fd:7* ]] || fail "the message does not name fd:7: $stderr"
	[[ $stderr != *started* ]] || fail "a worker was started: $stderr"
}

@test "-b fd:N that is a socket but not listening: exit 1" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" bound 7)
	run_wpool -1 -n 2 -b fd:7 -- "$TESTSRV"
	[[ $stderr == *listening* ]] || fail "unclear message: $stderr"
	[[ $stderr == *fd:7* ]] || fail "the message does not name fd:7: $stderr"
}

@test "-b fd:N that is not open: exit 1" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" closed 7)
	run_wpool -1 -n 2 -b fd:7 -- "$TESTSRV"
	[[ $stderr == *fd:7* ]] || fail "the message does not name fd:7: $stderr"
}

@test "-b fd:N with a bound UDP socket is adopted (datagram sockets do not listen)" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" udp 6)
	start_wpool -n 1 -b fd:6,name=dgram -- "$TESTSRV"
	NO_HTTP=1 wait_for_workers 1
	run python3 - "$(tr -d '\n' <"$PORT_FILE")" <<'EOF'
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
c.sendto(b"GET /id", ("127.0.0.1", int(sys.argv[1])))
print(c.recvfrom(2048)[0].decode().strip())
EOF
	assert_output 0
}

@test "reuseport with an adopted socket (fd:N or systemd) is refused with exit 64" {
	WPOOL_PREFIX=(python3 "$LAUNCHER" listen 7)
	run_wpool -64 -m reuseport -n 2 -b fd:7 -- "$TESTSRV"
	[[ $stderr == *reuseport* ]] || fail "unclear message: $stderr"
	WPOOL_PREFIX=(python3 "$LAUNCHER" listen 3 bash -c 'export LISTEN_FDS=1 LISTEN_PID=$$; exec "$@"' sh)
	run_wpool -64 -m reuseport -n 2 -b systemd -- "$TESTSRV"
	[[ $stderr == *reuseport* ]] || fail "unclear message: $stderr"
}
