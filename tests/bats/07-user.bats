#!/usr/bin/env bats
# -u USER[:GROUP]: listeners are bound as root, workers run as USER; and
# --pidfile: written, locked, refused to a second pool.

load ../helpers
load ../private_helpers

teardown() {
	common_teardown
	reachable_cleanup
}

# free_low_port: a free port below 1024 on 127.0.0.1.
free_low_port() {
	python3 - <<'PY'
import socket, sys
for port in range(1023, 600, -1):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit(1)
PY
}

# ids_of PID Uid|Gid: the real, effective, saved and fs ids, space-separated.
ids_of() {
	awk -v k="$2:" '$1 == k { print $2, $3, $4, $5 }' "/proc/$1/status"
}

groups_of() {
	awk '$1 == "Groups:" { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"
}

require_root() {
	(($(id -u) == 0)) || skip "machine lacks root for the tests (-u needs it)"
}

@test "-u nobody: a port below 1024 is bound as root, workers run as nobody" {
	require_root
	local port uid gid
	port=$(free_low_port) || skip "machine lacks a free port below 1024"
	reachable_bins
	uid=$(id -u nobody)
	gid=$(id -g nobody)
	start_wpool -n 2 -u nobody -b "127.0.0.1:$port" -- "$TESTSRV"
	assert_equal "$PORT" "$port"
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(ids_of "$p" Uid)" "$uid $uid $uid $uid"
		assert_equal "$(ids_of "$p" Gid)" "$gid $gid $gid $gid"
		# root's supplementary groups are dropped: nobody's own only.
		[[ " $(groups_of "$p") " != *" 0 "* ]] ||
			fail "worker $p kept group 0: $(groups_of "$p")"
	done
	# The master stays root (it binds again on reload, reads every /proc).
	assert_equal "$(ids_of "$WPOOL_PID" Uid)" "0 0 0 0"
	run http_get /id "$port"
	assert_output --regexp '^[01]$'
}

@test "-u nobody:daemon: the worker's group is daemon" {
	require_root
	getent group daemon >/dev/null || skip "machine lacks a daemon group"
	local gid
	gid=$(getent group daemon | cut -d: -f3)
	start_wpool -n 1 -u nobody:daemon -- sleep 30
	wait_for_workers 1
	assert_equal "$(ids_of "${WORKERS[0]}" Gid)" "$gid $gid $gid $gid"
	assert_equal "$(groups_of "${WORKERS[0]}")" "$gid"
}

@test "-u nobody: HOME, USER and LOGNAME are nobody's, as with systemd's User=; -e still wins" {
	require_root
	local home
	home=$(getent passwd nobody | cut -d: -f6)
	HOME=/root USER=root LOGNAME=root run_wpool --no-restart -n 1 -u nobody -- \
		sh -c 'echo "$HOME|$USER|$LOGNAME"'
	assert_equal "$status" 0
	assert_output "$home|nobody|nobody"
	HOME=/root run_wpool --no-restart -n 1 -u nobody -e HOME=/tmp -- \
		sh -c 'echo "$HOME|$USER"'
	assert_output "/tmp|nobody"
	# A uid with no passwd entry: HOME=/, and no name claimed.
	getent passwd 54321 >/dev/null && skip "machine lacks a free uid (54321 is taken)"
	HOME=/root USER=root LOGNAME=root run_wpool --no-restart -n 1 -u 54321 -- \
		sh -c 'echo "$HOME|${USER-unset}|${LOGNAME-unset}"'
	assert_output "/|unset|unset"
	# Without -u, the master's own.
	HOME=/root USER=root run_wpool --no-restart -n 1 -- sh -c 'echo "$HOME|$USER"'
	assert_output "/root|root"
}

@test "-u with an unknown user is a usage error (64), before anything starts" {
	run_wpool -n 1 -u wpool-no-such-user -- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 64
	[[ $stderr == *"wpool-no-such-user"* ]] || fail "stderr: $stderr"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}

@test "-u nobody: a command only root may run is reported once, exit 126" {
	require_root
	# BATS_TEST_TMPDIR is private to root: nobody cannot reach the script,
	# which shows that privileges are dropped before exec, not after.
	mkdir -m 0700 "$BATS_TEST_TMPDIR/private"
	printf '#!/bin/sh\nexec sleep 30\n' >"$BATS_TEST_TMPDIR/private/srv"
	chmod 0755 "$BATS_TEST_TMPDIR/private/srv"
	run_wpool -n 2 -u nobody -- "$BATS_TEST_TMPDIR/private/srv"
	assert_equal "$status" 126
	assert_equal "$(grep -c 'cannot run' <<<"$stderr")" 1
	grep -q 'Permission denied' <<<"$stderr" || fail "stderr: $stderr"
}

@test "-u nobody: a worker's restart runs as nobody too" {
	require_root
	reachable_bins
	start_wpool -n 1 -u nobody -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local old=${WORKERS[0]}
	kill -KILL "$old"
	wait_for_log_count 'worker 0 started' 2
	wait_for_workers 1
	[[ ${WORKERS[0]} != "$old" ]] || fail "not replaced"
	assert_equal "$(ids_of "${WORKERS[0]}" Uid | cut -d' ' -f1)" "$(id -u nobody)"
}

@test "--pidfile holds the master's pid; a second pool with it is refused" {
	local pf=$BATS_TEST_TMPDIR/wpool.pid
	start_wpool -n 1 --pidfile "$pf" -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	wait_until 5 test -s "$pf"
	assert_equal "$(cat "$pf")" "$WPOOL_PID"
	run_wpool -n 1 --pidfile "$pf" -s "$BATS_TEST_TMPDIR/other.sock" \
		-- sh -c 'touch "$0"; exec sleep 5' "$BATS_TEST_TMPDIR/second-ran"
	assert_failure
	((status != 124)) || fail "the second pool ran until the timeout"
	[[ $stderr == *"$pf"* ]] || fail "the error does not name the pidfile: $stderr"
	[[ $stderr == *"$WPOOL_PID"* || $stderr == *"running"* || $stderr == *"locked"* ]] ||
		fail "the error does not say why: $stderr"
	[[ ! -e $BATS_TEST_TMPDIR/second-ran ]] || fail "the second pool started a worker"
	# The first pool and its pidfile are untouched.
	assert_equal "$(cat "$pf")" "$WPOOL_PID"
	alive "$WPOOL_PID" || log_fail "the first pool died"
}

@test "--pidfile is removed when the pool stops" {
	local pf=$BATS_TEST_TMPDIR/wpool.pid
	start_wpool -n 1 --pidfile "$pf" -- sleep 30
	wait_until 5 test -s "$pf"
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
	[[ ! -e $pf ]] || fail "the pidfile is still there"
}

@test "--pidfile in a directory that does not exist: exit non-zero, nothing started" {
	run_wpool -n 1 --pidfile "$BATS_TEST_TMPDIR/nodir/wpool.pid" \
		-- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	assert_failure
	((status != 124)) || fail "it ran until the timeout"
	[[ $stderr == *"nodir/wpool.pid"* ]] || fail "stderr: $stderr"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}
