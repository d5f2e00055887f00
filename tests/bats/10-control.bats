#!/usr/bin/env bats
# The control socket (DESIGN 7): where it lives, who may use it, and a
# protocol that no client can break or stall.

load ../helpers
load ../control_helpers
load ../private_helpers

teardown() {
	control_teardown
	reachable_cleanup
}

# mode_of PATH: octal permission bits.
mode_of() {
	stat -c %a "$1"
}

@test "-s PATH: a 0600 socket that answers status and is gone after the pool stops" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	[[ -S $CTL ]] || log_fail "no socket at $CTL"
	assert_equal "$(mode_of "$CTL")" 600
	assert_equal "$(sj .pid)" "$WPOOL_PID"
	assert_equal "$(sj .target)" 2
	term_pool
	[[ ! -e $CTL ]] || fail "the control socket outlived the pool"
}

@test "the socket is removed when the pool exits on its own (--no-restart)" {
	start_wpool -s "$CTL" -n 1 --no-restart -- "$TESTSRV" --exit-after 0.5 0
	wait_until 5 test -S "$CTL"
	wait_wpool_exit 5
	[[ ! -e $CTL ]] || fail "the control socket outlived the pool"
}

@test "\$WPOOL_CONTROL is the path when -s is not given, for the pool and the client" {
	local path="$BATS_TEST_TMPDIR/from-env.sock"
	export WPOOL_CONTROL=$path
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	[[ -S $path ]] || log_fail "no socket at \$WPOOL_CONTROL=$path"
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" status --json
	assert_success
	assert_equal "$(jq -r .pid <<<"$output")" "$WPOOL_PID"
	# -s beats the environment.
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" -s "$BATS_TEST_TMPDIR/none.sock" status
	assert_failure 1
	assert_equal "$stderr" "wpool: error: no wpool running at $BATS_TEST_TMPDIR/none.sock"
}

@test "\$XDG_RUNTIME_DIR/wpool/NAME.sock: directory created 0700, found by --name" {
	unset WPOOL_CONTROL
	export XDG_RUNTIME_DIR="$BATS_TEST_TMPDIR/xdg"
	mkdir -m 0700 "$XDG_RUNTIME_DIR"
	start_wpool --name web -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local sock="$XDG_RUNTIME_DIR/wpool/web.sock"
	[[ -S $sock ]] || log_fail "no socket at $sock"
	assert_equal "$(mode_of "$XDG_RUNTIME_DIR/wpool")" 700
	assert_equal "$(mode_of "$sock")" 600
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" --name web status --json
	assert_success
	assert_equal "$(jq -r .name <<<"$output")" web
	assert_equal "$(jq -r .pid <<<"$output")" "$WPOOL_PID"
	# Another name is another socket.
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" --name api status
	assert_failure 1
	[[ $stderr == "wpool: error: no wpool running at $XDG_RUNTIME_DIR/wpool/api.sock, "* ]] ||
		fail "stderr: $stderr"
	term_pool
	[[ ! -e $sock ]] || fail "$sock outlived the pool"
}

@test "without -s, \$WPOOL_CONTROL or \$XDG_RUNTIME_DIR: /run/wpool/NAME.sock for root, /tmp/wpool-UID otherwise" {
	unset WPOOL_CONTROL XDG_RUNTIME_DIR
	local name="bats-$$-$BATS_TEST_NUMBER-$RANDOM" sock
	if (($(id -u) == 0)); then
		sock="/run/wpool/$name.sock"
	else
		sock="/tmp/wpool-$(id -u)/$name.sock"
	fi
	[[ ! -e $sock ]] || fail "$sock exists before the test"
	start_wpool --name "$name" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	[[ -S $sock ]] || log_fail "no socket at $sock"
	assert_equal "$(mode_of "$sock")" 600
	assert_equal "$(mode_of "$(dirname "$sock")")" 700
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" --name "$name" status --json
	assert_success
	assert_equal "$(jq -r .pid <<<"$output")" "$WPOOL_PID"
	term_pool
	[[ ! -e $sock ]] || fail "$sock outlived the pool"
}

@test "a live socket: a second pool refuses to start, exit 1, and the first keeps its socket" {
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run_wpool -1 -s "$CTL" --name second -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	[[ $stderr == *"second: error: another wpool is running on $CTL"* ]] ||
		fail "unexpected stderr: $stderr"
	# Nothing of the second pool was started...
	[[ $stderr != *"worker 0 started"* ]] || fail "the second pool started a worker: $stderr"
	# ...and the first pool is untouched and still reachable.
	[[ -S $CTL ]] || log_fail "the second pool removed the first one's socket"
	assert_equal "$(sj .pid)" "$WPOOL_PID"
	assert_equal "$(sj .ready)" 1
}

@test "a stale socket file at the path is replaced" {
	make_stale_unix_socket "$CTL"
	[[ -S $CTL ]]
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	assert_equal "$(sj .pid)" "$WPOOL_PID"
	assert_equal "$(mode_of "$CTL")" 600
}

@test "-s naming a file that is not a socket: refused, exit 1, the file is left alone" {
	echo "precious data" >"$BATS_TEST_TMPDIR/important.txt"
	run_wpool -1 -s "$BATS_TEST_TMPDIR/important.txt" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	[[ $stderr == *"error: $BATS_TEST_TMPDIR/important.txt exists and is not a socket; not replacing it"* ]] ||
		fail "unexpected stderr: $stderr"
	[[ $stderr != *"worker 0 started"* ]] || fail "a worker was started: $stderr"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/important.txt")" "precious data"
}

@test "the default /tmp/wpool-UID directory must be the user's own and private, or wpool refuses it" {
	command -v setpriv >/dev/null || skip "machine lacks setpriv"
	unset WPOOL_CONTROL XDG_RUNTIME_DIR
	local uid=64998 dir=/tmp/wpool-64998 tmp=$BATS_TEST_TMPDIR/other
	[[ ! -e $dir ]] || skip "machine lacks a free uid: $dir exists"
	chmod 0755 "$BATS_TEST_TMPDIR"
	# wpool runs as that uid: binaries it can reach.
	reachable_bins
	# 1. Another user made it first (here: root, world-writable).
	mkdir -m 0777 "$dir"
	run timeout -k 1 5 setpriv --reuid=$uid --regid=$uid --clear-groups \
		env --default-signal "$WPOOL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV" 3>&-
	rmdir "$dir"
	assert_failure 1
	assert_output --partial "the control directory $dir is owned by another user"
	# 2. A link in its place.
	mkdir -m 0700 "$tmp"
	chown $uid "$tmp"
	ln -s "$tmp" "$dir"
	run timeout -k 1 5 setpriv --reuid=$uid --regid=$uid --clear-groups \
		env --default-signal "$WPOOL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV" 3>&-
	rm -f "$dir"
	assert_failure 1
	assert_output --partial "the control directory $dir is not a directory (a link?)"
	# 3. Its own, but writable by others.
	mkdir -m 0777 "$dir"
	chown $uid "$dir"
	chmod 0777 "$dir"
	run timeout -k 1 5 setpriv --reuid=$uid --regid=$uid --clear-groups \
		env --default-signal "$WPOOL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV" 3>&-
	rmdir "$dir"
	assert_failure 1
	assert_output --partial "the control directory $dir is writable by others"
}

@test "another uid cannot even connect to the 0600 socket" {
	command -v setpriv >/dev/null || skip "machine lacks setpriv"
	(($(id -u) == 0)) || skip "machine lacks root (needed to act as nobody)"
	shared_dir
	local sock="$SDIR/ctl.sock"
	start_wpool -s "$sock" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run --separate-stderr without_fd3 timeout 10 \
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$WPOOL" -s "$sock" status
	assert_failure 1
	assert_equal "$stderr" "wpool: error: cannot connect to $sock: Permission denied"
	assert_output ''
}

@test "a peer of another uid is refused by SO_PEERCRED with a JSON error, even on a 0666 socket" {
	command -v setpriv >/dev/null || skip "machine lacks setpriv"
	(($(id -u) == 0)) || skip "machine lacks root (needed to act as nobody)"
	shared_dir
	local sock="$SDIR/ctl.sock" i
	start_wpool -s "$sock" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	chmod 0666 "$sock"
	local -a nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	# A raw client: the refusal is one JSON line, then the connection ends.
	run without_fd3 timeout 10 "${nobody[@]}" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
data = b""
while True:
    try:
        d = s.recv(65536)
    except ConnectionResetError:
        break
    if not d:
        break
    data += d
sys.stdout.write(data.decode())' "$sock"
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -r .ok <<<"$output")" false
	assert_regex "$(jq -r .error <<<"$output")" '^permission denied: '
	wait_for_log 'refused a client with uid 65534'
	# The client says so too, every time (not "Broken pipe").
	for i in 1 2 3 4 5; do
		run --separate-stderr without_fd3 timeout 10 "${nobody[@]}" "$WPOOL" -s "$sock" status
		assert_failure 1
		assert_regex "$stderr" '^wpool: error: permission denied: '
	done
	# Nothing was done for them, and the owner is still served.
	run --separate-stderr without_fd3 timeout 10 "${nobody[@]}" "$WPOOL" -s "$sock" stop --no-wait
	assert_failure 1
	sleep 0.2
	kill -0 "$WPOOL_PID" || log_fail "a refused client stopped the pool"
	run --separate-stderr without_fd3 timeout 10 "$WPOOL" -s "$sock" status --json
	assert_success
	assert_equal "$(jq -r .ready <<<"$output")" 1
}

@test "bad requests get {ok:false,error} and the master keeps serving on the same connection" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local -a bad=(
		'nope'
		'{"cmd":'
		'[1,2]'
		'"status"'
		'42'
		'null'
		'{}'
		'{"cmd":42}'
		'{"cmd":"bogus"}'
		'{"cmd":"scale"}'
		'{"cmd":"scale","workers":"3"}'
		'{"cmd":"scale","workers":0}'
		'{"cmd":"scale","workers":1025}'
		'{"cmd":"scale","workers":3,"delta":1}'
		'{"cmd":"scale","delta":1.5}'
		'{"cmd":"scale","delta":-2}'
		'{"cmd":"scale","delta":9223372036854775807}'
		'{"cmd":"scale","delta":-9223372036854775808}'
		'{"cmd":"scale","delta":144444444444444444444444444444}'
		'{"cmd":"scale","workers":9223372036854775807}'
		'{"cmd":"restart","id":9223372036854775807}'
		'{"cmd":"signal","signal":4294967311}'
		'{"cmd":"restart"}'
		'{"cmd":"restart","id":"x"}'
		'{"cmd":"restart","id":7}'
		'{"cmd":"restart","id":-1}'
		'{"cmd":"signal"}'
		'{"cmd":"signal","signal":"BOGUS"}'
		'{"cmd":"signal","signal":[1]}'
		'{"cmd":"signal","signal":"USR1","id":"0"}'
		'{"cmd":"signal","signal":999}'
		'{"cmd":"signal","signal":"USR2","id":9}'
		'{"cmd":"signal","signal":"CONT","id":-7}'
		'{"cmd":"signal","signal":"CONT","id":4294967296}'
		'{"cmd":"status"} {"cmd":"status"}'
		'{"cmd":"status"}x'
		'{"command":"worker:ack","pid":1}'
	)
	run ctl_raw "${bad[@]}" '{"cmd":"status"}'
	assert_success
	assert_equal "${#lines[@]}" $((${#bad[@]} + 1))
	local i
	for ((i = 0; i < ${#bad[@]}; i++)); do
		jq -e '.ok == false and (.error | type == "string" and length > 0)' \
			<<<"${lines[i]}" >/dev/null ||
			fail "request '${bad[i]}' got: ${lines[i]}"
	done
	jq -e '.ok == true and .ready == 2' <<<"${lines[-1]}" >/dev/null ||
		fail "status after the bad requests: ${lines[-1]}"
	# Nothing of that changed the pool.
	assert_equal "$(sj .target)" 2
	assert_equal "$(sj .generation)" 0
	assert_equal "$(ready_pids)" "${WORKERS[*]}"
	kill -0 "$WPOOL_PID"
}

@test "a request line over 64 KiB is refused; the master keeps serving others" {
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run ctl_raw '@70000:x' '{"cmd":"status"}'
	assert_success
	jq -e '.ok == false and (.error | test("too large|64"))' <<<"${lines[0]}" >/dev/null ||
		fail "answer to 70000 bytes: ${lines[0]:0:200}"
	# A status just under the limit (padded with spaces) is still fine.
	local pad
	pad=$(printf '%*s' 60000 '')
	run ctl_raw "{\"cmd\":\"status\",$pad\"x\":1}"
	assert_success
	jq -e '.ok == true' <<<"$output" >/dev/null || fail "padded status: ${output:0:200}"
	run ctl_raw '{"cmd":"status"}'
	jq -e '.ok == true and .ready == 1' <<<"$output" >/dev/null || fail "status: $output"
}

@test "requests on one connection are answered in order; CRLF and split writes are fine" {
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run "$PY" - "$CTL" <<'EOF'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
f = s.makefile("rb")
# One request in three pieces, a CRLF line, then two in one write.
for piece in (b'{"cmd":', b'"sta', b'tus"}\n'):
    s.sendall(piece)
    time.sleep(0.1)
print(json.loads(f.readline())["ok"])
s.sendall(b'{"cmd":"status"}\r\n')
print(json.loads(f.readline())["ok"])
s.sendall(b'{"cmd":"bogus"}\n{"cmd":"status"}\n')
print(json.loads(f.readline())["ok"])
print(json.loads(f.readline())["ok"])
EOF
	assert_success
	assert_equal "$(echo $output)" "True True False True"
}

@test "silent and dribbling clients are dropped after ~5 s and never delay another client" {
	start_wpool -s "$CTL" -n 1 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	run "$PY" - "$CTL" <<'EOF'
import socket, sys, threading, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
t0 = time.monotonic()
silent = conn()
dribbler = conn()
res = {}
def wait_eof(name, s):
    s.settimeout(15)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    res[name] = time.monotonic() - t0
def dribble(s):
    # '{"cmd":"status"' one byte a second, never the newline.
    for b in b'{"cmd":"status"':
        try:
            s.send(bytes([b]))
        except OSError:
            return
        time.sleep(1)
threads = [threading.Thread(target=wait_eof, args=("silent", silent)),
           threading.Thread(target=wait_eof, args=("dribbler", dribbler)),
           threading.Thread(target=dribble, args=(dribbler,))]
for t in threads:
    t.start()
# Meanwhile other clients are answered at once, again and again.
worst = 0
n = 0
while time.monotonic() - t0 < 6:
    a = time.monotonic()
    c = conn()
    c.settimeout(5)
    c.sendall(b'{"cmd":"status"}\n')
    data = b""
    while not data.endswith(b"\n"):
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    if b'"ok":true' not in data:
        print("bad answer", data[:200])
    worst = max(worst, time.monotonic() - a)
    n += 1
    time.sleep(0.2)
for t in threads[:2]:
    t.join(12)
print("others %d worst_ms %d" % (n, worst * 1000))
print("silent %.1f" % res.get("silent", -1))
print("dribbler %.1f" % res.get("dribbler", -1))
EOF
	assert_success
	refute_output --partial "bad answer"
	local worst silent dribbler
	worst=$(sed -nE 's/^others [0-9]+ worst_ms ([0-9]+)$/\1/p' <<<"$output")
	silent=$(sed -nE 's/^silent ([0-9.-]+)$/\1/p' <<<"$output")
	dribbler=$(sed -nE 's/^dribbler ([0-9.-]+)$/\1/p' <<<"$output")
	((worst < 1000)) || fail "a client waited ${worst} ms meanwhile: $output"
	awk -v s="$silent" 'BEGIN { exit !(s >= 4 && s <= 8) }' ||
		fail "the silent client was dropped after ${silent}s (expected ~5): $output"
	awk -v s="$dribbler" 'BEGIN { exit !(s >= 4 && s <= 8) }' ||
		fail "the dribbling client was dropped after ${dribbler}s (expected ~5): $output"
	kill -0 "$WPOOL_PID"
}

@test "a burst of 1000 concurrent clients: every one gets a full status" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	RUN_TIMEOUT=30
	run without_fd3 timeout 30 "$PY" - "$CTL" "$WPOOL_PID" <<'EOF'
import json, resource, selectors, socket, sys, time
path, master = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
N = 1000
t0 = time.monotonic()
socks = []
for i in range(N):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    socks.append(s)
for s in socks:
    s.sendall(b'{"cmd":"status"}\n')
sel = selectors.DefaultSelector()
bufs = {}
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    bufs[s] = b""
done = 0
good = 0
while done < N and time.monotonic() - t0 < 20:
    for key, _ in sel.select(1):
        s = key.fileobj
        try:
            d = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            d = b""
        bufs[s] += d
        if not d or bufs[s].endswith(b"\n"):
            sel.unregister(s)
            done += 1
            try:
                o = json.loads(bufs[s])
                if o.get("ok") is True and o.get("pid") == master and len(o["workers"]) == 2:
                    good += 1
            except ValueError:
                pass
print("good %d of %d in %.1fs" % (good, N, time.monotonic() - t0))
EOF
	assert_success
	assert_output --regexp '^good 1000 of 1000 in '
	assert_equal "$(sj .ready)" 2
}

@test "JSON requests: scale by workers and delta, restart, signal, stop" {
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 2
	run ctl_raw '{"cmd":"scale","workers":3}'
	jq -e '.ok == true and .workers == 3 and .previous == 2' <<<"$output" >/dev/null ||
		fail "scale: $output"
	wait_for_workers 3
	run ctl_raw '{"cmd":"scale","delta":-1}'
	jq -e '.ok == true and .workers == 2 and .previous == 3' <<<"$output" >/dev/null ||
		fail "scale delta: $output"
	wait_for_workers 2
	assert_equal "$(sorted_ids)" "0 1"
	local old1
	old1=$(pid_of_id 1)
	run ctl_raw '{"cmd":"restart","id":1}'
	jq -e '.ok == true and .id == 1' <<<"$output" >/dev/null || fail "restart: $output"
	wait_gone "$old1" --timeout 5
	wait_for_workers 2
	run ctl_raw '{"cmd":"signal","signal":"USR1","id":0}'
	jq -e '.ok == true and .signal == "USR1" and .workers == 1' <<<"$output" >/dev/null ||
		fail "signal: $output"
	wait_until 5 grep -qx "$(pid_of_id 0) USR1" "$BATS_TEST_TMPDIR/sig.log"
	run ctl_raw '{"cmd":"restart","id":"all"}'
	jq -e '.ok == true and .generation == 1' <<<"$output" >/dev/null ||
		fail "restart all: $output"
	wait_status 10 '.reload.state == "done" and .ready == 2 and ([.workers[].generation] | unique) == [1]'
	run ctl_raw '{"cmd":"stop"}'
	jq -e '.ok == true' <<<"$output" >/dev/null || fail "stop: $output"
	wait_wpool_exit 5
	assert_equal "$WPOOL_STATUS" 0
	[[ ! -e $CTL ]] || fail "the socket outlived the pool"
}
