#!/usr/bin/env bats
# SERVER_STARTER_PORT in Server::Starter's own forms, read back by its own
# client code: Debian's Server::Starter (server_ports(), and start_server
# itself as the reference), Net::Server::SS::PreFork (what starman uses
# under SERVER_STARTER_PORT) and a real starman.  Every listener is named
# by the address it is bound to: PORT for -b :PORT (as --port PORT),
# HOST:PORT, [V6]:PORT, a unix socket's path, and an adopted socket's
# (-b fd:N, -b systemd) address, never "fd:3".

load ../helpers

setup() {
	common_setup
	local m
	for m in Server::Starter Net::Server::SS::PreFork Plack::Handler::Starman; do
		perl -M"$m" -e 1 2>/dev/null ||
			fail "perl module $m is missing: make deps-test"
	done
	command -v start_server >/dev/null ||
		fail "start_server is missing: make deps-test"
	SS_PID=
	# ports.pl: a worker that looks its sockets up with Server::Starter's
	# server_ports() and answers each connection with the KEY=FD under
	# which it found the socket the connection came in on.
	PORTS_PL="$BATS_TEST_TMPDIR/ports.pl"
	cat >"$PORTS_PL" <<'EOF'
use strict;
use warnings;
use IO::Select;
use Server::Starter qw(server_ports);

my $ports = server_ports();
my $sel = IO::Select->new;
my %key;
for my $k (keys %$ports) {
	open(my $s, '+<&=', $ports->{$k}) or die "fd $ports->{$k}: $!";
	$key{fileno $s} = $k;
	$sel->add($s);
}
while (1) {
	for my $s ($sel->can_read) {
		accept(my $c, $s) or next;
		my $k = $key{fileno $s};
		syswrite $c, "$k=$ports->{$k}\n";
		close $c;
	}
}
EOF
	# ss_probe.pl: a Net::Server::SS::PreFork server that says, once
	# bound, how the module understood SERVER_STARTER_PORT: each listening
	# socket as HOST|PORT, sorted, on stderr (wpool's log).  (It says it
	# before any connection: the module takes every socket for IPv4, and
	# a connection to an IPv6 one kills its child.)
	SS_PROBE="$BATS_TEST_TMPDIR/ss_probe.pl"
	cat >"$SS_PROBE" <<'EOF'
package SSProbe;
use strict;
use warnings;
use base 'Net::Server::SS::PreFork';

sub post_bind_hook {
	my $self = shift;
	print STDERR 'ss_probe: ', join(' ', sort map {
	    $_->NS_host . '|' . $_->NS_port } @{ $self->{server}{sock} }), "\n";
}

sub process_request { print "hello\n" }

SSProbe->run(min_servers => 1, max_servers => 2, min_spare_servers => 0,
    max_spare_servers => 1, log_level => 1);
EOF
	# launch.py FD FAMILY ADDR COMMAND...: a listening socket at fd FD
	# (tcp4 HOST, tcp6 HOST or unix PATH; TCP ports are the kernel's,
	# written to $PORT_FILE), then exec COMMAND: a launcher that leaves
	# wpool a socket to adopt with -b fd:FD.
	LAUNCH="$BATS_TEST_TMPDIR/launch.py"
	cat >"$LAUNCH" <<'EOF'
import os, socket, sys
fdnum, fam, addr, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
if fam == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(addr)
else:
    s = socket.socket(socket.AF_INET6 if fam == "tcp6" else socket.AF_INET)
    s.bind((addr, 0))
    with open(os.environ["PORT_FILE"], "w") as f:
        f.write("%d\n" % s.getsockname()[1])
s.listen(64)
os.dup2(s.fileno(), fdnum)
os.set_inheritable(fdnum, True)
os.execvp(argv[0], argv)
EOF
	export PORT_FILE="$BATS_TEST_TMPDIR/port"
	APP="$BATS_TEST_TMPDIR/app.psgi"
	cat >"$APP" <<'EOF'
sub {
	my $env = shift;
	# /slow keeps this starman busy, so that concurrent requests
	# reach the other worker too.
	select(undef, undef, undef, 0.3) if $env->{PATH_INFO} eq '/slow';
	[200, ['Content-Type' => 'text/plain'], ["starman pid=$$ " .
	    "port=$env->{SERVER_PORT} ssp=$ENV{SERVER_STARTER_PORT}\n"]];
}
EOF
}

teardown() {
	stop_start_server
	common_teardown
}

# ask tcp HOST PORT | unix PATH: connects and prints the line the server
# sends first (bounded: 10 s).
ask() {
	python3 - "$@" <<'EOF'
import socket, sys
if sys.argv[1] == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    addr = sys.argv[2]
else:
    host = sys.argv[2]
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    addr = (host, int(sys.argv[3]))
s.settimeout(10)
s.connect(addr)
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(4096)
    if not d:
        break
    buf += d
sys.stdout.write(buf.decode())
EOF
}

require_ipv6() {
	can_bind_ipv6_loopback || skip "machine lacks IPv6 loopback"
}

# start_ss ARGS...: Server::Starter's own start_server in the background
# (SS_PID), its log in $SS_LOG.
start_ss() {
	SS_LOG="$BATS_TEST_TMPDIR/start_server.log"
	env --default-signal start_server "$@" </dev/null >"$SS_LOG" 2>&1 3>&- &
	SS_PID=$!
}

stop_start_server() {
	[[ -n $SS_PID ]] || return 0
	kill -TERM "$SS_PID" 2>/dev/null
	local deadline
	deadline=$(deadline_in 5)
	while kill -0 "$SS_PID" 2>/dev/null && ! past "$deadline"; do
		sleep 0.02
	done
	kill -KILL "$SS_PID" 2>/dev/null
	wait "$SS_PID" 2>/dev/null
	SS_PID=
}

# start_activated SSA_ARGS... -- WPOOL_ARGS...: systemd-socket-activate
# exec'ing wpool (same pid: WPOOL_PID) on the first connection.
start_activated() {
	local ssa=()
	while (($#)) && [[ $1 != -- ]]; do
		ssa+=("$1")
		shift
	done
	shift
	command -v systemd-socket-activate >/dev/null ||
		fail "systemd-socket-activate is missing: make deps-test"
	env --default-signal systemd-socket-activate \
		-E "WPOOL_CONTROL=$WPOOL_CONTROL" "${ssa[@]}" \
		"$WPOOL" "$@" </dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	wait_for_log '^Listening on '
}

@test "-b :PORT, HOST:PORT, [::1]:PORT, unix:PATH: the keys start_server's --port/--path give, read by server_ports()" {
	require_ipv6
	local p1 p2 p3 sock="$BATS_TEST_TMPDIR/s.sock" want got i
	p1=$(free_tcp_port)
	p2=$(free_tcp_port)
	p3=$(free_tcp_port ::1)
	start_wpool -n 1 -b ":$p1" -b "127.0.0.1:$p2" -b "[::1]:$p3" \
		-b "unix:$sock" -- perl "$PORTS_PL"
	want=("$p1=3" "127.0.0.1:$p2=4" "[::1]:$p3=5" "$sock=6")
	got=("$(ask tcp 127.0.0.1 "$p1")" "$(ask tcp 127.0.0.1 "$p2")"
		"$(ask tcp ::1 "$p3")" "$(ask unix "$sock")")
	for i in 0 1 2 3; do
		[[ ${got[i]} == "${want[i]}" ]] ||
			log_fail "listener $i: server_ports() has '${got[i]}', not '${want[i]}'"
	done
	NO_HTTP=1 wait_for_workers 1
	assert_equal "$(worker_env "${WORKERS[0]}" SERVER_STARTER_PORT)" \
		"$p1=3;127.0.0.1:$p2=4;[::1]:$p3=5;$sock=6"
	stop_wpool
	rm -f "$sock"
	# The reference: Server::Starter's start_server, given the same.
	start_ss --port "$p1" --port "127.0.0.1:$p2" --port "[::1]:$p3" \
		--path "$sock" -- perl "$PORTS_PL"
	wait_until 10 test -S "$sock"
	local ref=("$(ask tcp 127.0.0.1 "$p1")" "$(ask tcp 127.0.0.1 "$p2")"
		"$(ask tcp ::1 "$p3")" "$(ask unix "$sock")")
	for i in 0 1 2 3; do
		# start_server's fds are whatever perl got: compare the keys.
		[[ ${ref[i]%=*} == "${got[i]%=*}" ]] ||
			fail "listener $i: start_server names it '${ref[i]%=*}', wpool '${got[i]%=*}'"
	done
}

@test "-b udp://HOST:PORT is spelled HOST:PORT, as Server::Starter spells its u-ports" {
	start_wpool -n 1 -b udp://127.0.0.1:0 -b 127.0.0.1:0 -- sleep 60
	local udp=${LISTEN_ADDRS[0]#udp://} tcp=${LISTEN_ADDRS[1]}
	NO_HTTP=1 wait_for_workers 1
	assert_equal "$(worker_env "${WORKERS[0]}" SERVER_STARTER_PORT)" \
		"$udp=3;$tcp=4"
}

@test "-b fd:N: an adopted socket is named by its address (tcp v4, v6, unix), in server_ports() and Net::Server::SS::PreFork" {
	require_ipv6
	local sock="$BATS_TEST_TMPDIR/adopted.sock" p4 p6 pf="$BATS_TEST_TMPDIR"
	# Three launchers in a row, each leaving one socket at its fd.
	PORT_FILE="$pf/p4" python3 "$LAUNCH" 5 tcp4 127.0.0.1 \
		env PORT_FILE="$pf/p6" python3 "$LAUNCH" 6 tcp6 ::1 \
		python3 "$LAUNCH" 7 unix "$sock" \
		env --default-signal "$WPOOL" -n 1 -b fd:5 -b fd:6 -b fd:7 \
		-- perl "$PORTS_PL" </dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	wait_for_listeners 3
	p4=$(<"$pf/p4")
	p6=$(<"$pf/p6")
	assert_equal "$(ask tcp 127.0.0.1 "$p4")" "127.0.0.1:$p4=3"
	assert_equal "$(ask tcp ::1 "$p6")" "[::1]:$p6=4"
	assert_equal "$(ask unix "$sock")" "$sock=5"
	stop_wpool
	# Net::Server::SS::PreFork, starman's reader: host and port, not
	# host "fd", port 3.
	rm -f "$sock"
	PORT_FILE="$pf/p4" python3 "$LAUNCH" 5 tcp4 127.0.0.1 \
		env --default-signal "$WPOOL" -n 1 -b fd:5 -- perl "$SS_PROBE" \
		</dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	wait_for_listeners 1
	p4=$(<"$pf/p4")
	wait_for_log '^ss_probe: '
	assert_equal "$(sed -n 's/^ss_probe: //p' "$LOG")" "127.0.0.1|$p4"
	# And it serves.
	run ask tcp 127.0.0.1 "$p4"
	assert_output hello
}

@test "-b :PORT, -b HOST:PORT, -b [::1]:PORT as Net::Server::SS::PreFork reads them: host *, the host, [::1]" {
	require_ipv6
	local p1 p2 p3
	p1=$(free_tcp_port)
	p2=$(free_tcp_port)
	p3=$(free_tcp_port ::1)
	start_wpool -n 1 -b ":$p1" -b "127.0.0.1:$p2" -b "[::1]:$p3" \
		-- perl "$SS_PROBE"
	wait_for_log '^ss_probe: '
	assert_equal "$(sed -n 's/^ss_probe: //p' "$LOG")" \
		"$(printf '%s\n' "*|$p1" "127.0.0.1|$p2" "[::1]|$p3" | sort | paste -sd' ')"
	run ask tcp 127.0.0.1 "$p2"
	assert_output hello
}

@test "a real starman under systemd-socket-activate and wpool -b systemd: sockets named by address, served by two workers" {
	local p1 p2 p out deadline
	shopt -s extglob
	p1=$(free_tcp_port)
	p2=$(free_tcp_port 127.0.0.2)
	# Two TCP listeners on IPv4: Net::Server::SS::PreFork takes every
	# socket for IPv4 (under start_server as well).
	start_activated -l "127.0.0.1:$p1" -l "127.0.0.2:$p2" -- \
		-n 2 -b systemd -- starman --workers 1 "$APP"
	# The connection that activates wpool is answered by a starman
	# (perl loading Plack on a loaded machine: a generous bound).
	run curl -sS --max-time 30 "http://127.0.0.1:$p1/"
	[[ $status == 0 ]] || log_fail "the first request: $output"
	wait_for_listeners 2
	NO_HTTP=1 wait_for_workers 2
	local want="127.0.0.1:$p1=3;127.0.0.2:$p2=4"
	assert_equal "${output/pid=+([0-9])/pid=N}" "starman pid=N port=$p1 ssp=$want"
	# Both workers serve: each starman master forks its own child, so
	# tell them apart by the child's parent.  Eight at once, each keeping
	# its starman busy for 0.3 s, cannot all go to one.
	local urls=() i
	for ((i = 0; i < 8; i++)); do urls+=("http://127.0.0.1:$p1/slow"); done
	declare -A by=()
	deadline=$(deadline_in 20)
	while ((${#by[@]} < 2)) && ! past "$deadline"; do
		while read -r out; do
			p=${out#starman pid=}
			p=${p%% *}
			[[ $p =~ ^[0-9]+$ ]] && by[$(proc_ppid "$p")]=1
		done < <(curl -sS --no-progress-meter --max-time 5 --parallel \
			--parallel-immediate \
			-H 'Connection: close' "${urls[@]}")
	done
	((${#by[@]} == 2)) || log_fail "only ${!by[*]} answered"
	for p in "${!by[@]}"; do
		[[ " ${WORKERS[*]} " == *" $p "* ]] ||
			log_fail "$p answered, not a wpool worker (${WORKERS[*]})"
	done
	# The second listener last: two starmans both woken by a connection
	# to it, the loser blocks in accept(2) there and serves only it.
	run http_get / "$p2" 127.0.0.2
	assert_success
	assert_equal "${output/pid=+([0-9])/pid=N}" "starman pid=N port=$p2 ssp=$want"
}
