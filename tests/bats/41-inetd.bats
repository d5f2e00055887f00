#!/usr/bin/env bats
# -m inetd: one process per connection, the connection on its stdin and
# stdout, ucspi-tcp's environment, at most N at a time; at the limit wpool
# stops accepting, so further connections wait in the kernel's backlog and
# are served later (DESIGN 3).  The handlers are small sh scripts written
# by each test; the client is tests/bin/bal_client.py.

load ../helpers
load ../balance_helpers

# handler NAME BODY: an executable sh script ./NAME.
handler() {
	printf '#!/bin/sh\n%s\n' "$2" >"$BATS_TEST_TMPDIR/$1"
	chmod +x "$BATS_TEST_TMPDIR/$1"
}

# start_hold_pool N: an inetd pool of at most N processes of ./hold.sh,
# which greets with its pid and holds the connection until the client
# closes it.
start_hold_pool() {
	handler hold.sh 'echo "greet $$"
cat >/dev/null'
	start_wpool -m inetd -n "$1" -b 127.0.0.1:0 -- ./hold.sh
}

# greets FILE: how many `greet I ...` lines FILE has.
greets() {
	grep -c '^greet [0-9]* greet ' "$1" 2>/dev/null || true
}

@test "the command runs once per connection with it on stdin and stdout, and the ucspi environment" {
	handler env.sh 'for v in PROTO TCPREMOTEIP TCPREMOTEPORT TCPLOCALIP TCPLOCALPORT REMOTE_ADDR REMOTE_PORT WPOOL_LISTENER; do
	eval "echo $v=\${$v-unset}"
done
read -r line
echo "got $line"'
	start_wpool -m inetd -n 2 -b 127.0.0.1:0,name=web -- ./env.sh
	run client raw "$PORT" --send 'hello\n' --src 127.0.0.9
	assert_success
	local lport
	lport=$(sed -nE 's/^local=127\.0\.0\.9 ([0-9]+)$/\1/p' <<<"$output")
	[[ -n $lport ]] || fail "no local port in: $output"
	assert_line PROTO=TCP
	assert_line TCPREMOTEIP=127.0.0.9
	assert_line "TCPREMOTEPORT=$lport"
	assert_line TCPLOCALIP=127.0.0.1
	assert_line "TCPLOCALPORT=$PORT"
	assert_line REMOTE_ADDR=127.0.0.9
	assert_line "REMOTE_PORT=$lport"
	assert_line WPOOL_LISTENER=web
	assert_line "got hello"
	wait_st 5 "d['mode'] == 'inetd' and d['connections_total'] == 1 and d['connections'] == []"
}

@test "a connection process gets the connection as fds 0 and 1 and no listener" {
	handler fds.sh 'exec ls -l /proc/self/fd/'
	start_wpool -m inetd -n 2 -b 127.0.0.1:0 -b 127.0.0.1:0 -- ./fds.sh
	run client raw "$PORT"
	assert_success
	local s0 s1
	s0=$(sed -nE 's/.* 0 -> (socket:\[[0-9]+\])$/\1/p' <<<"$output")
	s1=$(sed -nE 's/.* 1 -> (socket:\[[0-9]+\])$/\1/p' <<<"$output")
	[[ -n $s0 && $s0 == "$s1" ]] || fail "fds 0 and 1 are not the connection: $output"
	# Besides 0, 1, 2 only ls's own directory fd: no listener, no channel.
	assert_equal "$(grep -cE ' [0-9]+ -> ' <<<"$output")" 4
	assert_equal "$(grep -c 'socket:' <<<"$output")" 2
}

@test "IPv6: the addresses come without brackets" {
	can_bind_ipv6_loopback || skip "machine lacks IPv6 loopback"
	handler env6.sh 'echo "$TCPREMOTEIP $TCPLOCALIP $REMOTE_ADDR $TCPLOCALPORT"'
	start_wpool -m inetd -n 1 -b '[::1]:0' -- ./env6.sh
	run client raw "$PORT" --host ::1
	assert_success
	assert_line "::1 ::1 ::1 $PORT"
}

@test "at most N at once: the rest wait in the backlog (not accepted) and are served later" {
	start_hold_pool 2
	local out=$BATS_TEST_TMPDIR/hold.out rel=$BATS_TEST_TMPDIR/release
	client_bg "$out" rawhold "$PORT" -n 5 --release "$rel" --timeout 20
	wait_for_file_line "$out" '^ready$'
	wait_until 5 eval '(($(greets "$out") == 2))'
	wait_st 5 "len(d['connections']) == 2 and d['connections_total'] == 2 and d['listeners'][0]['queue'] == 3"
	# And it stays so: nothing more is accepted (and closed) meanwhile.
	sleep 0.5
	assert_equal "$(greets "$out")" 2
	assert_equal "$(st "(len(d['connections']), d['connections_total'], d['listeners'][0]['queue'])")" "(2, 2, 3)"
	assert_equal "$(children_of "$WPOOL_PID" | wc -l)" 2
	# Status lists each running process with its peer: the greeted ones.
	local i port pid line table
	table=$("$WPOOL" status)
	while read -r line; do
		[[ $line =~ ^greet\ ([0-9]+)\ greet\ ([0-9]+)$ ]] || continue
		i=${BASH_REMATCH[1]}
		pid=${BASH_REMATCH[2]}
		port=$(sed -nE "s/^conn $i local=([0-9]+)$/\1/p" "$out")
		assert_equal "$(st "[c['peer'] for c in d['connections'] if c['pid'] == $pid]")" \
			"127.0.0.1:$port"
		assert_equal "$(st "[c['listener'] for c in d['connections'] if c['pid'] == $pid]")" l0
		[[ $(proc_ppid "$pid") == "$WPOOL_PID" ]] || fail "pid $pid is not wpool's child"
		# The table too: one row per connection, not worker slots.
		grep -Eq "^$pid +[0-9.]+(ms|s) +l0 +127\.0\.0\.1:$port\$" <<<"$table" ||
			fail "$(printf 'no row for pid %s:\n%s' "$pid" "$table")"
	done <"$out"
	run "$WPOOL" status
	assert_line --index 0 --regexp '^pool wpool \(pid [0-9]+\): inetd mode, 2/2 connections, 2 in all, up '
	assert_line --index 3 --regexp '^PID +UPTIME +LISTENER +PEER$'
	assert_equal "${#lines[@]}" 6
	run "$WPOOL" status --check
	assert_success
	assert_output "healthy: inetd mode, accepting connections"
	# Its live processes are the connections'; there are no workers.
	assert_equal "$(st "d['alive']")" 2
	run "$WPOOL" restart 0
	assert_failure 1
	assert_output --partial "inetd mode has no workers to restart"
	# Clients leave one at a time: each leaves room for a waiting one.
	touch "$rel"
	wait "$BG"
	run cat "$out"
	assert_equal "$(greets "$out")" 5
	refute_output --partial ERR
	refute_output --partial EOF
	wait_st 5 "d['connections_total'] == 5 and d['connections'] == [] and d['listeners'][0]['queue'] == 0"
}

@test "a finished connection process frees its place at once" {
	handler hi.sh 'echo "hi $$"'
	start_wpool -m inetd -n 1 -b 127.0.0.1:0 -- ./hi.sh
	local i
	: >"$BATS_TEST_TMPDIR/his"
	for ((i = 0; i < 10; i++)); do
		client raw "$PORT" --timeout 5 | grep '^hi ' >>"$BATS_TEST_TMPDIR/his"
	done
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/his" | wc -l)" 10
	wait_st 5 "d['connections_total'] == 10 and d['connections'] == []"
}

@test "scale changes the limit of concurrent connection processes" {
	start_hold_pool 1
	run "$WPOOL" scale 3
	assert_success
	local out=$BATS_TEST_TMPDIR/hold.out rel=$BATS_TEST_TMPDIR/release
	client_bg "$out" rawhold "$PORT" -n 4 --release "$rel" --timeout 20
	wait_until 5 eval '(($(greets "$out") == 3))'
	sleep 0.3
	assert_equal "$(greets "$out")" 3
	touch "$rel"
	wait "$BG"
	assert_equal "$(greets "$out")" 4
}

@test "scaling up at the limit lets the waiting connections in at once" {
	start_hold_pool 1
	local out=$BATS_TEST_TMPDIR/hold.out rel=$BATS_TEST_TMPDIR/release
	client_bg "$out" rawhold "$PORT" -n 3 --release "$rel" --timeout 20
	wait_until 5 eval '(($(greets "$out") == 1))'
	wait_st 5 "d['listeners'][0]['queue'] == 2"
	# No connection process ends: the new limit alone must let them in.
	run "$WPOOL" scale 3
	assert_success
	wait_until 5 eval '(($(greets "$out") == 3))'
	touch "$rel"
	wait "$BG"
}

@test "a command that cannot be run is refused at start: exit 127, one message, nothing bound" {
	run_wpool -127 -m inetd -n 1 -b 127.0.0.1:0 -- ./nope
	assert_equal "$status" 127
	assert_equal "$stderr" "wpool: error: cannot run './nope': No such file or directory"
	printf 'not executable\n' >noexec.sh
	run_wpool -126 -m inetd -n 1 -b 127.0.0.1:0 -- ./noexec.sh
	assert_equal "$status" 126
}

@test "a command that disappears later: the connection is closed, wpool says why and goes on" {
	handler gone.sh 'echo hi'
	start_wpool -m inetd -n 1 -b 127.0.0.1:0 -- ./gone.sh
	rm -f gone.sh
	run client raw "$PORT" --timeout 5
	assert_success
	refute_line --regexp '^ERR'
	wait_for_log "exited with status 127"
	kill -0 "$WPOOL_PID"
	run client raw "$PORT" --timeout 5
	wait_for_log_count "exited with status 127" 2
	wait_st 5 "d['connections'] == [] and d['connections_total'] == 2"
}

@test "stop: connection processes get the stop signal, wpool exits 0" {
	start_hold_pool 2
	local out=$BATS_TEST_TMPDIR/hold.out pids
	client_bg "$out" rawhold "$PORT" -n 2 --timeout 10
	wait_until 5 eval '(($(greets "$out") == 2))'
	pids=$(sed -nE 's/^greet [0-9]+ greet ([0-9]+)$/\1/p' "$out")
	run "$WPOOL" stop
	assert_success
	wait_wpool_exit 8
	assert_equal "$WPOOL_STATUS" 0
	# shellcheck disable=SC2086
	wait_gone $pids --timeout 2
	wait_for_log 'stopped'
}

@test "a connection process killed from outside is logged; one that the stop ends is not" {
	start_hold_pool 2
	local out=$BATS_TEST_TMPDIR/hold.out pids p1
	client_bg "$out" rawhold "$PORT" -n 2 --timeout 10
	wait_until 5 eval '(($(greets "$out") == 2))'
	pids=$(sed -nE 's/^greet [0-9]+ greet ([0-9]+)$/\1/p' "$out")
	p1=$(head -n 1 <<<"$pids")
	kill -KILL "$p1"
	wait_for_log "warning: connection from 127\\.0\\.0\\.1:[0-9]+: '\\./hold\\.sh' \\(pid $p1\\) killed by signal KILL after [0-9.]+m?s"
	run "$WPOOL" stop
	assert_success
	wait_wpool_exit 8
	assert_equal "$(log_count 'killed by signal')" 1
}
