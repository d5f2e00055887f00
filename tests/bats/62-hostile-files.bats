#!/usr/bin/env bats
# Files another user can reach (issue 10, items 2, 3 and 6): a unix socket
# in a directory another uid writes, whose name is swapped for a symlink
# between bind and chown; a pid file planted as a symlink; -c given a FIFO,
# an unreadable "regular" file or NUL bytes.  The attacker is uid 65534.

load '../helpers'

ATTACKER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
RACER_PID=

setup() {
	common_setup
	HOSTILE_DIR=
}

teardown() {
	common_teardown
	[[ -n $RACER_PID ]] && kill "$RACER_PID" 2>/dev/null && wait "$RACER_PID"
	[[ -z $HOSTILE_DIR ]] || rm -rf "$HOSTILE_DIR"
	return 0
}

need_root() {
	(($(id -u) == 0)) || skip "machine lacks root for the tests (they run an attacker of another uid)"
}

# hostile_dir MODE: HOSTILE_DIR, a directory of uid 65534 outside the test's
# own (which only root may enter), and TARGET, a root file worth attacking.
hostile_dir() {
	HOSTILE_DIR=$(mktemp -d /tmp/wpool-hostile.XXXXXX)
	chown 65534:65534 "$HOSTILE_DIR"
	chmod "$1" "$HOSTILE_DIR"
	TARGET=$BATS_TEST_TMPDIR/secret
	echo "root's secret" >"$TARGET"
	chmod 0600 "$TARGET"
}

target_intact() {
	[[ $(stat -c '%u:%g %a' "$TARGET") == "0:0 600" ]] &&
		[[ $(cat "$TARGET") == "root's secret" ]]
}

# start_racer NAME: tests/bin/swap_racer as uid 65534, swapping
# HOSTILE_DIR/NAME for a symlink to TARGET whenever it is a socket.
start_racer() {
	"${ATTACKER[@]}" "$REPO_ROOT/tests/bin/swap_racer" "$HOSTILE_DIR/$1" \
		"$TARGET" "$HOSTILE_DIR/stop" 90 \
		>"$BATS_TEST_TMPDIR/racer.out" 2>&1 3>&- &
	RACER_PID=$!
	record_pid "$RACER_PID"
	wait_for_file_line "$BATS_TEST_TMPDIR/racer.out" '^ready'
}

# stop_racer: SWAPS = how many times it swapped the socket away.
stop_racer() {
	touch "$HOSTILE_DIR/stop"
	wait_for_file_line "$BATS_TEST_TMPDIR/racer.out" '^[0-9]+ swaps'
	wait "$RACER_PID" 2>/dev/null || true
	RACER_PID=
	SWAPS=$(grep -Eo '^[0-9]+' "$BATS_TEST_TMPDIR/racer.out" | tail -1)
}

# --- item 2: -b unix:PATH,owner=,mode= ---------------------------------------

# race_starts MAX SECONDS [PREFIX...]: starts and stops wpool as root with
# -b unix:HOSTILE_DIR/s,owner=nobody:nogroup,mode=0666 while the racer
# swaps the socket away, until MAX starts, SECONDS or a changed TARGET.
race_starts() {
	local max=$1 i deadline
	deadline=$(deadline_in "$2")
	shift 2
	hostile_dir 0755
	start_racer s
	STARTS=0
	# Each start binds, sets owner and mode, fails to exec and exits.
	for ((i = 0; i < max; i++)); do
		past "$deadline" && break
		timeout -k 1 10 "$@" "$WPOOL" -n 1 -s "$BATS_TEST_TMPDIR/ctl.sock" \
			-b "unix:$HOSTILE_DIR/s,owner=nobody:nogroup,mode=0666" \
			-- /nonexistent/wpool-x >>"$LOG" 2>&1 3>&- || true
		STARTS=$((STARTS + 1))
		target_intact || break
	done
	stop_racer
	target_intact || fail "after $STARTS starts and $SWAPS swaps, the target is now $(stat -c '%U:%G %a' "$TARGET")"
	((SWAPS > 0)) || fail "the racer never found the socket in $STARTS starts"
	((STARTS >= 30)) || fail "only $STARTS starts in $2 s"
	echo "# $STARTS starts, $SWAPS swaps" >&3
}

@test "unix:PATH,owner=,mode= never changes a file swapped in for the socket by another uid" {
	need_root
	race_starts 300 60
}

@test "unix:PATH,owner=,mode= without CAP_NET_ADMIN: a swapped-in file is not changed either" {
	need_root
	race_starts 150 30 setpriv --bounding-set=-net_admin
	# The racer won some of them: those starts failed, naming the socket.
	grep -q "cannot chown unix:$HOSTILE_DIR/s" "$LOG" || echo "# (no start lost the race)" >&3
}

@test "unix:PATH,owner=,mode= still apply without CAP_NET_ADMIN (the path is checked instead)" {
	need_root
	local sock=$BATS_TEST_TMPDIR/web.sock
	WPOOL_PREFIX=(setpriv --bounding-set=-net_admin)
	start_wpool -n 1 -b "unix:$sock,owner=nobody:nogroup,mode=0640" -- "$TESTSRV"
	assert_equal "$(stat -c '%U:%G %a' "$sock")" "nobody:nogroup 640"
	run curl -sS --max-time 5 --unix-socket "$sock" http://x/id
	assert_output 0
}

@test "unix:PATH,mode= above 0777 is a usage error naming the value" {
	run_wpool -n 1 -b "unix:$BATS_TEST_TMPDIR/s,mode=04777" -- true
	assert_equal "$status" 64
	[[ $stderr == *"04777"*"0777"* ]] || fail "stderr: $stderr"
}
# --- item 3: --pidfile ---------------------------------------------------------

@test "--pidfile: a symlink planted by another uid is refused and its target untouched" {
	need_root
	hostile_dir 0755
	"${ATTACKER[@]}" ln -s "$TARGET" "$HOSTILE_DIR/wpool.pid"
	run_wpool -n 1 --pidfile "$HOSTILE_DIR/wpool.pid" \
		-- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 64
	[[ $stderr == *"--pidfile"*"$HOSTILE_DIR"* ]] || fail "stderr: $stderr"
	target_intact || fail "the target is now $(stat -c '%U:%G %a' "$TARGET"): $(cat "$TARGET")"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}

@test "--pidfile: a symlink in a directory only root writes is refused too" {
	TARGET=$BATS_TEST_TMPDIR/secret
	echo "root's secret" >"$TARGET"
	chmod 0600 "$TARGET"
	ln -s "$TARGET" "$BATS_TEST_TMPDIR/wpool.pid"
	run_wpool -n 1 --pidfile "$BATS_TEST_TMPDIR/wpool.pid" -- true
	assert_equal "$status" 64
	[[ $stderr == *"--pidfile"*"wpool.pid"*"symlink"* ]] || fail "stderr: $stderr"
	[[ $(cat "$TARGET") == "root's secret" ]] || fail "the target was written"
}

@test "--pidfile in a directory another uid can write is refused before it is opened" {
	need_root
	hostile_dir 0755
	run_wpool -n 1 --pidfile "$HOSTILE_DIR/wpool.pid" -- true
	assert_equal "$status" 64
	[[ $stderr == *"--pidfile"*"$HOSTILE_DIR"*"uid 65534"* ]] || fail "stderr: $stderr"
	[[ ! -e $HOSTILE_DIR/wpool.pid ]] || fail "the pid file was made"
}

@test "--pidfile in a sticky root directory works, and a file another uid planted there is refused" {
	need_root
	local d
	d=$(mktemp -d /tmp/wpool-sticky.XXXXXX)
	HOSTILE_DIR=$d
	chmod 1777 "$d"
	start_wpool -n 1 --pidfile "$d/ok.pid" -b 127.0.0.1:0 -- "$TESTSRV"
	wait_until 5 test -s "$d/ok.pid"
	assert_equal "$(cat "$d/ok.pid")" "$WPOOL_PID"
	stop_wpool
	"${ATTACKER[@]}" sh -c 'echo 1 >"$0"' "$d/planted.pid"
	run_wpool -n 1 --pidfile "$d/planted.pid" -- true
	assert_equal "$status" 64
	[[ $stderr == *"--pidfile"*"planted.pid"*"65534"* ]] || fail "stderr: $stderr"
	assert_equal "$(cat "$d/planted.pid")" 1
}

# --- item 6: -c FILE -------------------------------------------------------------

@test "-c FIFO is refused at once, not read" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	RUN_TIMEOUT=5 run_wpool -c "$BATS_TEST_TMPDIR/fifo" -- true
	((status != 124)) || fail "wpool hung on the FIFO"
	assert_equal "$status" 64
	[[ $stderr == *"-c/--config"*"fifo"*"not a regular file"* ]] || fail "stderr: $stderr"
}

@test "-c /proc/self/mem: a read error is an error, not an empty file" {
	RUN_TIMEOUT=5 run_wpool -c /proc/self/mem -b 127.0.0.1:0 \
		-- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	((status != 124)) || fail "the pool started: $stderr"
	assert_equal "$status" 64
	[[ $stderr == *"-c/--config"*"cannot read"*"/proc/self/mem"* ]] || fail "stderr: $stderr"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
}

@test "-c FILE of NUL bytes is refused, naming the line" {
	head -c 64 /dev/zero >"$BATS_TEST_TMPDIR/nul.conf"
	RUN_TIMEOUT=5 run_wpool -c "$BATS_TEST_TMPDIR/nul.conf" -- true
	((status != 124)) || fail "the pool started: $stderr"
	assert_equal "$status" 64
	[[ $stderr == *"-c/--config"*"nul.conf"*"NUL byte"* ]] || fail "stderr: $stderr"
}

@test "-c FILE with a NUL byte after a good line is refused" {
	printf 'workers = 2\nx\0y = 1\n' >"$BATS_TEST_TMPDIR/mid.conf"
	RUN_TIMEOUT=5 run_wpool -c "$BATS_TEST_TMPDIR/mid.conf" -- true
	assert_equal "$status" 64
	[[ $stderr == *"mid.conf"*"NUL byte"*"line 2"* ]] || fail "stderr: $stderr"
}

@test "-c through a symlink to a good file still works" {
	printf '[pool]\nworkers = 3\n' >"$BATS_TEST_TMPDIR/real.conf"
	ln -s real.conf "$BATS_TEST_TMPDIR/link.conf"
	RUN_TIMEOUT=5 run_wpool check -c "$BATS_TEST_TMPDIR/link.conf" -- true
	assert_success
	[[ $output == *"workers = 3"* ]] || fail "output: $output"
}

@test "-c FILE larger than 4 MiB is refused, not read to the end" {
	yes '; a comment' | head -c $((5 << 20)) >"$BATS_TEST_TMPDIR/big.conf"
	RUN_TIMEOUT=5 run_wpool -c "$BATS_TEST_TMPDIR/big.conf" -- true
	assert_equal "$status" 64
	[[ $stderr == *"-c/--config"*"big.conf"*"larger than 4 MiB"* ]] || fail "stderr: $stderr"
}
