# compat_helpers.bash: real servers from Debian under wpool (76-compat).
#
# compat_pool runs one pool of two workers of a server, in one mode, with
# the server's graceful stop signal, through every check in turn: both
# slots answer, a reload under load fails no request, a worker killed with
# KILL is replaced, and `wpool stop` leaves no process of the pool and a
# free port.  The apps are tests/apps/compat/: each answers GET / with
# "ok SLOT" (its WPOOL_WORKER_ID), so an answer says which slot served it.
#
# COMPAT_STOP_SIGNAL=SIG overrides every server's stop signal: with TERM,
# nginx, HAProxy and lighttpd (which drop connections on TERM) must fail
# the reload check; so must Node and Go with GRACEFUL=0 (the apps without
# their TERM handler).  COMPAT_TRICKLE=SEC overrides the clients' pause.

COMPAT_APPS=$BATS_TEST_DIRNAME/../apps/compat
# Debian's python, with the packages (the PATH's may be another).
COMPAT_PY=/usr/bin/python3

# compat_needs COMMAND...: test dependencies from DEPS_TEST.
compat_needs() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null ||
			fail "$c is not installed: run make deps-test (DEPS_TEST)"
	done
}

# compat_prepare: the pool's own directory (CDIR, its workers' cwd, with
# copies of the apps), a port (CPORT) and a tag (CTAG) that every process
# of the pool has in its environment.
compat_prepare() {
	CDIR=$BATS_TEST_TMPDIR/pool
	mkdir -p "$CDIR/www/0" "$CDIR/www/1"
	cp -r "$COMPAT_APPS"/. "$CDIR/"
	echo "ok 0" >"$CDIR/www/0/index.html"
	echo "ok 1" >"$CDIR/www/1/index.html"
	CPORT=$(free_tcp_port)
	TRICKLE=0.05
	RESETS_OK=0
	CTAG=compat-$$-$BATS_TEST_NUMBER-$RANDOM
	POOL_PIDS=()
}

# compat_go_build: go-systemd's activation package, offline from Debian's
# GOPATH; built once for the file.  Sets GOSRV.
compat_go_build() {
	compat_needs go
	[[ -d /usr/share/gocode/src/github.com/coreos/go-systemd/activation ]] ||
		fail "golang-github-coreos-go-systemd-dev is not installed (make deps-test)"
	GOSRV=$BATS_FILE_TMPDIR/gosrv/gosrv
	[[ -x $GOSRV ]] && return 0
	mkdir -p "$BATS_FILE_TMPDIR/gosrv"
	cp "$COMPAT_APPS/gosrv/main.go" "$BATS_FILE_TMPDIR/gosrv/"
	(cd "$BATS_FILE_TMPDIR/gosrv" && GO111MODULE=off GOFLAGS='' \
		GOPATH=/usr/share/gocode GOCACHE="$BATS_FILE_TMPDIR/gocache" \
		go build -o gosrv .) || fail "cannot build the Go server"
}

# pool_tree: wpool's descendants, one pid a line.
pool_tree() {
	ps -e -o pid=,ppid= | awk -v root="$WPOOL_PID" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = split(kids[root], q, " ")
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], c, " ")
				for (j = 1; j <= m; j++) q[++n] = c[j]
			}
		}'
}

# record_tree: remembers every process of the pool now (pid:starttime),
# for the check after stop, and for teardown to kill if a check fails.
record_tree() {
	local p s
	for p in $(pool_tree); do
		s=$(proc_starttime "$p") || continue
		POOL_PIDS+=("$p:$s")
		record_pid "$p"
	done
}

# slot_pid ID: the pid of slot ID's ready worker ("" if none).
slot_pid() {
	"$WPOOL" status --json 2>/dev/null |
		jq -r ".workers[] | select(.id == $1 and .state == \"ready\") | .pid" |
		head -n1
}

# two_ready: both slots ready, nothing else alive.
two_ready() {
	[[ $("$WPOOL" status --json 2>/dev/null | jq -c '[.alive, .ready]') == '[2,2]' ]]
}

# loadgen OUT ARGS...: tests/apps/compat/loadgen.py against CPORT, its
# JSON summary to OUT.
loadgen() {
	local out=$1
	shift
	"$COMPAT_PY" "$CDIR/loadgen.py" "$CPORT" "$@" >"$out" 2>&1 3>&-
}

# both_answer WHAT: concurrent requests until slots 0 and 1 have both
# answered (at most 20 s), with no failed request.
both_answer() {
	local out=$BATS_TEST_TMPDIR/answer.json
	loadgen "$out" -c 4 --until-ids 2 --max 20 ||
		log_fail "$1: the load generator failed: $(cat "$out")"
	[[ $(jq -c '.ids | keys' "$out") == '["0","1"]' ]] ||
		log_fail "$1: slots 0 and 1 should both answer within 20 s: $(cat "$out")"
	[[ $(jq .failed "$out") == 0 ]] ||
		log_fail "$1: failed requests: $(cat "$out")"
}

# reload_under_load: a reload while 8 clients send requests (Connection:
# close), from before it starts until it has ended; no request may fail,
# and both slots must be new workers.  The clients are slow (TRICKLE s
# between the first 16 bytes of a request and the rest), so that a server
# always has requests in progress when it is told to stop: one that drops
# them on its stop signal fails here at every run, not once in a while.
reload_under_load() {
	local out=$BATS_TEST_TMPDIR/load.json stop=$BATS_TEST_TMPDIR/load.stop
	local started=$BATS_TEST_TMPDIR/load.started old0 old1 lp rc=0
	old0=$(slot_pid 0) old1=$(slot_pid 1)
	rm -f "$stop" "$started"
	loadgen "$out" -c 8 --max 90 --stop "$stop" --started "$started" \
		--trickle "${COMPAT_TRICKLE:-$TRICKLE}" &
	lp=$!
	record_pid "$lp"
	wait_until 10 test -e "$started"
	# Load for a moment before the reload, and after it.
	sleep 0.5
	timeout 60 "$WPOOL" reload >"$BATS_TEST_TMPDIR/reload.out" 2>&1 3>&- || rc=$?
	record_tree
	sleep 0.3
	touch "$stop"
	wait "$lp" || log_fail "the load generator failed: $(cat "$out")"
	((rc == 0)) ||
		log_fail "wpool reload failed ($rc): $(cat "$BATS_TEST_TMPDIR/reload.out")"
	local sent failed
	sent=$(jq .sent "$out") failed=$(jq .failed "$out")
	# RESETS_OK: how many requests a server known to reset some at its
	# stop may lose (resets only, nothing else).
	((failed == 0)) || { ((failed <= RESETS_OK)) &&
		jq -e '[.errors[] | test("ConnectionResetError")] | all' "$out" >/dev/null; } ||
		log_fail "reload under load with --stop-signal $CSIG: $failed of $sent requests failed: $(cat "$out")"
	# 8 clients for over a second: far more than this unless the server
	# stalled.
	((sent >= 40)) ||
		log_fail "reload under load: only $sent requests sent: $(cat "$out")"
	local new0 new1
	wait_until 30 two_ready
	new0=$(slot_pid 0) new1=$(slot_pid 1)
	[[ $new0 != "$old0" && $new1 != "$old1" ]] ||
		log_fail "reload did not replace both workers: $old0 $old1 -> $new0 $new1"
}

# slot_replaced ID OLD: slot ID has a ready worker that is not OLD.
slot_replaced() {
	local p
	p=$(slot_pid "$1")
	[[ -n $p && $p != "$2" ]] && two_ready
}

# kill9_replaced: KILL slot 0's worker (its own children are left to wpool,
# as after a crash); a new one takes the slot and answers.
kill9_replaced() {
	local victim
	victim=$(slot_pid 0)
	[[ -n $victim ]] || log_fail "no ready worker in slot 0"
	record_tree
	kill -KILL "$victim"
	wait_until 30 slot_replaced 0 "$victim"
	record_tree
	both_answer "after kill -9 of worker $victim"
}

# leftovers: processes, other than the test's own, whose environment has
# the pool's tag or whose cwd is the pool's directory.
leftovers() {
	"$COMPAT_PY" - "$CTAG" "$CDIR" <<'EOF'
import os, sys
tag = ("COMPAT_TAG=" + sys.argv[1]).encode()
cdir = os.path.realpath(sys.argv[2])
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == os.getpid():
        continue
    try:
        env = open("/proc/%s/environ" % p, "rb").read().split(b"\0")
        cwd = os.readlink("/proc/%s/cwd" % p)
        cmd = open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ")
        state = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[0]
    except OSError:
        continue
    if tag in env or cwd == cdir or cwd.startswith(cdir + "/"):
        print(p, state, cwd, cmd.decode(errors="replace")[:100])
EOF
}

# port_free PORT: a listener can be bound there again (SO_REUSEADDR, as a
# server sets it, so that the requests' TIME_WAIT sockets do not count).
port_free() {
	"$COMPAT_PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError as e:
    print(e)
    sys.exit(1)
EOF
}

# stop_leaves_nothing: `wpool stop` succeeds, wpool exits 0, and no
# process of the pool is left: not one it had (recorded throughout), none
# with its tag or cwd; the port can be bound.
stop_leaves_nothing() {
	local entry pid start left=()
	record_tree
	run timeout 40 "$WPOOL" stop
	assert_success
	wait_wpool_exit 10
	[[ $WPOOL_STATUS == 0 ]] || log_fail "wpool exited $WPOOL_STATUS after stop"
	for entry in "${POOL_PIDS[@]}"; do
		pid=${entry%%:*} start=${entry#*:}
		[[ $(proc_starttime "$pid" 2>/dev/null) == "$start" ]] &&
			left+=("$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)")
	done
	((${#left[@]} == 0)) ||
		log_fail "$(printf 'left after stop:\n%s' "$(printf '%s\n' "${left[@]}")")"
	run leftovers
	assert_output ''
	port_free "$CPORT" || fail "port $CPORT not free after stop"
}

# compat_pool NAME MODE SIG [WPOOL ARGS...] -- COMMAND...: every check on
# one pool of two workers.
compat_pool() {
	local name=$1 mode=$2
	CSIG=${COMPAT_STOP_SIGNAL:-$3}
	shift 3
	start_wpool -n 2 -m "$mode" --stop-signal "$CSIG" --stop-timeout 5 \
		-C "$CDIR" -e "COMPAT_TAG=$CTAG" -e "COMPAT_DIR=$CDIR" \
		-e "COMPAT_PORT=$CPORT" -b "127.0.0.1:$CPORT" "$@"
	wait_until 30 two_ready
	record_tree
	both_answer "$name, $mode"
	reload_under_load
	kill9_replaced
	stop_leaves_nothing
}
