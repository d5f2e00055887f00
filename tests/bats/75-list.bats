#!/usr/bin/env bats
# Finding a pool: control commands search the caller's runtime directory,
# the login session's and, for root, /run/wpool (a pool started by
# systemd, cron or docker exec); `wpool list` shows what runs there; what
# another user planted is neither trusted nor listed.

load '../helpers'
load '../complete_helpers'

# A client environment: its own XDG_RUNTIME_DIR (a login shell's), no
# $WPOOL_CONTROL.  Sets XDG.
client_env() {
	unset WPOOL_CONTROL
	XDG=$(mktemp -d /tmp/wpool-bats-xdg.XXXXXX)
	SHARED_DIRS+=("$XDG")
	chmod 0700 "$XDG"
	export XDG_RUNTIME_DIR=$XDG
}

# sysdir: where a pool started without XDG_RUNTIME_DIR puts its socket.
sysdir() {
	if (($(id -u) == 0)); then
		echo /run/wpool
	else
		echo "/tmp/wpool-$(id -u)"
	fi
}

# wl ARGS...: the client, bounded in time, without $WPOOL_CONTROL.
wl() {
	without_fd3 timeout -k 2 20 "$WPOOL" "$@"
}

@test "two pools, one in the client's XDG_RUNTIME_DIR and one started without it: list shows both, status finds each by --name" {
	client_env
	local a="la$$" b="lb$$" sa sb
	sa="$XDG/wpool/$a.sock"
	sb="$(sysdir)/$b.sock"
	[[ ! -e $sb ]] || fail "$sb exists before the test"
	start_bg_pool "$sa" -- --name "$a" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	local pa=$BG_PID
	# As systemd, cron or docker exec start it: no XDG_RUNTIME_DIR.
	start_bg_pool "$sb" -u XDG_RUNTIME_DIR -- --name "$b" -m reuseport -n 1 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	local pb=$BG_PID
	run --separate-stderr wl list
	assert_success
	assert_line --regexp "^NAME +PID +MODE +READY +SOCKET\$"
	assert_line --regexp "^$a +$pa +shared +2/2 +$sa\$"
	assert_line --regexp "^$b +$pb +reuseport +1/1 +$sb\$"
	# JSON: the same pools, and where it looked.
	run --separate-stderr wl list --json
	assert_success
	assert_equal "$(jq -c --arg a "$a" '.pools[] | select(.name == $a)' <<<"$output")" \
		"{\"name\":\"$a\",\"pid\":$pa,\"mode\":\"shared\",\"ready\":2,\"target\":2,\"socket\":\"$sa\"}"
	assert_equal "$(jq -r --arg b "$b" '.pools[] | select(.name == $b) | "\(.pid) \(.socket)"' <<<"$output")" \
		"$pb $sb"
	assert_equal "$(jq -r '.searched[0]' <<<"$output")" "$XDG/wpool"
	jq -e --arg d "$(sysdir)" '.searched | index($d) != null' <<<"$output" >/dev/null ||
		fail "$(sysdir) not searched: $output"
	# --name: only that pool, and a table that fits 80 columns.
	run --separate-stderr wl --name "$b" list
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_equal "$(awk '{ print $1 }' <<<"${lines[1]}")" "$b"
	local l
	for l in "${lines[@]}"; do
		((${#l} <= 80)) || fail "longer than 80 columns: '$l'"
	done
	# The pool outside the client's XDG_RUNTIME_DIR is found, and acted on.
	run --separate-stderr wl --name "$b" status --json
	assert_success
	assert_equal "$(jq -r .pid <<<"$output")" "$pb"
	run --separate-stderr wl --name "$b" scale 2
	assert_success
	assert_output "scaled from 1 to 2 workers"
	run --separate-stderr wl --name "$a" status --json
	assert_success
	assert_equal "$(jq -r .pid <<<"$output")" "$pa"
	# stop follows the socket it found until the pool is gone.
	run --separate-stderr wl --name "$b" stop
	assert_success
	assert_line stopped
	[[ ! -e $sb ]] || fail "$sb outlived the pool"
}

@test "no pool: the error lists every path it tried and points at --name, -s and list; list says where it looked" {
	client_env
	local n="ln$$"
	run --separate-stderr wl --name "$n" status
	assert_failure 1
	assert_output ''
	assert_equal "${#stderr_lines[@]}" 2
	assert_equal "${stderr_lines[0]}" \
		"wpool: error: no wpool running at $XDG/wpool/$n.sock, /run/user/$(id -u)/wpool/$n.sock or $(sysdir)/$n.sock"
	[[ ${stderr_lines[1]} == *"--name NAME"*"-s PATH"*"'wpool list'"* ]] ||
		fail "no hint: ${stderr_lines[1]}"
	# A stale socket is no pool: skipped, and not listed.
	mkdir -m 0700 "$XDG/wpool"
	make_stale_unix_socket "$XDG/wpool/$n.sock"
	run --separate-stderr wl --name "$n" status
	assert_failure 1
	[[ ${stderr_lines[0]} == "wpool: error: no wpool running at $XDG/wpool/$n.sock, "* ]] ||
		fail "stderr: $stderr"
	run --separate-stderr wl --name "$n" list
	assert_success
	assert_output ''
	assert_equal "$stderr" \
		"wpool: no wpool running named $n in $XDG/wpool, /run/user/$(id -u)/wpool, $(sysdir)"
	run --separate-stderr wl --name "$n" list --json
	assert_success
	assert_equal "$(jq -c .pools <<<"$output")" '[]'
	# -s: the one socket given, not searched for.
	start_bg_pool "$BATS_TEST_TMPDIR/mine.sock" -- -s "$BATS_TEST_TMPDIR/mine.sock" \
		-n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	run --separate-stderr wl -s "$BATS_TEST_TMPDIR/mine.sock" list
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_line --regexp "^mine +$BG_PID +shared +1/1 +$BATS_TEST_TMPDIR/mine.sock\$"
	# A bad argument is a usage error.
	run --separate-stderr wl list --jsn
	assert_failure 64
	assert_equal "${stderr_lines[0]}" "wpool: error: list: unknown argument '--jsn'"
}

@test "a socket that uid 65534 planted, or listens on, or whose directory it owns, is neither talked to nor listed" {
	command -v setpriv >/dev/null || fail "setpriv is missing: make deps-test"
	(($(id -u) == 0)) || skip "needs root to plant another user's socket"
	client_env
	local mine="lm$$"
	start_bg_pool "$(sysdir)/$mine.sock" -u XDG_RUNTIME_DIR -- --name "$mine" \
		-n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	local mpid=$BG_PID
	mkdir -m 0700 "$XDG/wpool"
	shared_dir 0777
	# 1. Its socket, moved into the client's own directory: owned by 65534.
	fake_server_as 65534 "$SDIR/evil.sock" "$SDIR/mark1"
	mv "$SDIR/evil.sock" "$XDG/wpool/evil.sock"
	[[ $(stat -c %u "$XDG/wpool/evil.sock") == 65534 ]]
	run --separate-stderr wl list
	assert_success
	assert_line --regexp "^$mine +$mpid "
	refute_line --partial evil
	[[ $stderr == *"not talking to $XDG/wpool/evil.sock: it is owned by another user (uid 65534)"* ]] ||
		fail "stderr: $stderr"
	run --separate-stderr wl --name evil status --check
	assert_failure 1
	refute_output --partial healthy
	[[ ! -e $SDIR/mark1 ]] || fail "the client talked to 65534's socket: $(cat "$SDIR/mark1")"
	# 2. The file made root's: the listener is still 65534's.
	chown 0:0 "$XDG/wpool/evil.sock"
	run --separate-stderr wl list
	assert_success
	refute_line --partial evil
	[[ $stderr == *"not talking to $XDG/wpool/evil.sock: the process listening on it (pid "*") is uid 65534's"* ]] ||
		fail "stderr: $stderr"
	run --separate-stderr wl --name evil status --check
	assert_failure 1
	refute_output --partial healthy
	[[ ! -e $SDIR/mark1 ]] || fail "the client sent a request to 65534's listener: $(cat "$SDIR/mark1")"
	# 3. A runtime directory whose wpool/ is 65534's, with its socket.
	local evil=$SDIR/xdg
	setpriv --reuid=65534 --regid=65534 --clear-groups mkdir -p -m 0700 "$evil/wpool"
	fake_server_as 65534 "$evil/wpool/$mine.sock" "$SDIR/mark2"
	XDG_RUNTIME_DIR=$evil run --separate-stderr wl list
	assert_success
	refute_line --partial "$evil"
	[[ $stderr == *"not talking to $evil/wpool: $evil/wpool is owned by another user (uid 65534)"* ]] ||
		fail "stderr: $stderr"
	# The same name elsewhere is the pool the search trusts.
	XDG_RUNTIME_DIR=$evil run --separate-stderr wl --name "$mine" status --json
	assert_success
	assert_equal "$(jq -r .pid <<<"$output")" "$mpid"
	[[ $stderr == *"not talking to $evil/wpool/$mine.sock: $evil/wpool is owned by another user"* ]] ||
		fail "stderr: $stderr"
	[[ ! -e $SDIR/mark2 ]] || fail "the client talked to 65534's directory: $(cat "$SDIR/mark2")"
}
