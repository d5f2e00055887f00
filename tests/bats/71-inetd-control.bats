#!/usr/bin/env bats
# -m inetd and the control commands that address workers: there are none,
# each connection runs the command afresh and its process serves one
# client.  reload, restart (an id or all) and signal are refused alike:
# exit 1, a message that says why and what to do instead, nothing started
# or signalled, the running connection processes left to serve their
# clients (issue 12, item 6).  scale, which sets the limit, still works.

load ../helpers
load ../balance_helpers

# start_hold_pool N: an inetd pool of at most N processes of ./hold.sh,
# which greets with its pid and holds the connection until the client
# closes it.
start_hold_pool() {
	printf '#!/bin/sh\necho "greet $$"\ncat >/dev/null\n' >"$BATS_TEST_TMPDIR/hold.sh"
	chmod +x "$BATS_TEST_TMPDIR/hold.sh"
	start_wpool -m inetd -n "$1" -b 127.0.0.1:0 -- ./hold.sh
}

# refused WHAT ARGS...: `wpool ARGS` fails with inetd's reason for WHAT,
# naming the running processes and what to do instead.
refused() {
	local what=$1 n=$2
	shift 2
	run "$WPOOL" "$@"
	assert_failure 1
	assert_output --partial "inetd mode has no workers to $what: each connection runs './hold.sh' afresh, so the next one runs it as it is now"
	assert_output --partial "the $n connection processes running serve their clients to the end"
	assert_output --partial 'to signal or end one, kill the pid `wpool status` lists'
}

@test "inetd: reload, restart and signal are refused alike, and the connection processes serve on" {
	start_hold_pool 2
	local out=$BATS_TEST_TMPDIR/hold.out rel=$BATS_TEST_TMPDIR/release before
	client_bg "$out" rawhold "$PORT" -n 2 --release "$rel" --timeout 20
	wait_for_file_line "$out" '^ready$'
	wait_st 5 "len(d['connections']) == 2"
	before=$(st "sorted(c['pid'] for c in d['connections'])")

	refused reload 2 reload
	refused reload 2 reload --no-wait
	refused restart 2 restart 0
	# `restart all` is the client's reload, refused as one.
	refused reload 2 restart all
	refused reload 2 restart all --no-wait
	refused signal 2 signal HUP
	refused signal 2 signal TERM 1

	# Nothing was started, replaced or signalled: the same two processes
	# serve on, and no reload is recorded or logged.
	assert_equal "$(st "sorted(c['pid'] for c in d['connections'])")" "$before"
	local pid
	for pid in $before; do
		alive "$pid" || fail "connection process $pid is gone"
	done
	assert_equal "$(st "d['reload']['state']")" none
	assert_equal "$(log_count 'reload to generation')" 0
	assert_equal "$(log_count 'replacing')" 0
	assert_equal "$(log_count 'restarting')" 0

	# Their clients are served to the end, and new ones after them.
	touch "$rel"
	wait "$BG"
	assert_equal "$(grep -c '^greet [0-9]* greet ' "$out")" 2
	run client raw "$PORT"
	assert_success
	assert_line --regexp '^greet [0-9]+$'
}

@test "inetd: with none running the refusal says so, in the JSON answer too" {
	start_hold_pool 1
	wait_st 5 "d['connections'] == []"
	run "$WPOOL" reload
	assert_failure 1
	assert_output --partial "the 0 connection processes running serve their clients to the end"
	# The control socket's own answer, for scripts that speak it.
	local sock=$WPOOL_CONTROL
	[[ -S $sock ]] || fail "no control socket at $sock"
	run "$PY" -c '
import json, socket, sys
for req in ({"cmd": "reload"}, {"cmd": "restart", "id": 0},
            {"cmd": "restart", "id": "all"}, {"cmd": "signal", "signal": "HUP"}):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall((json.dumps(req) + "\n").encode())
    r = json.loads(s.makefile().readline())
    print(req["cmd"], r["ok"], r["error"].split(":")[0])' "$sock"
	assert_success
	assert_output "reload False inetd mode has no workers to reload
restart False inetd mode has no workers to restart
restart False inetd mode has no workers to restart
signal False inetd mode has no workers to signal"
	# scale sets the limit, as before.
	run "$WPOOL" scale 3
	assert_success
	assert_equal "$(st "d['target']")" 3
}
