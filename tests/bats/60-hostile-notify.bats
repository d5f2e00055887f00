#!/usr/bin/env bats
# The sd_notify socket against a hostile peer: another user (uid 65534,
# setpriv) finds the abstract NOTIFY_SOCKET in /proc/net/unix and sends
# descriptors whose close can block (a TCP socket with SO_LINGER, unsent
# data and a peer that never reads; a filled terminal), floods it, or a
# worker names a stranger with MAINPID=.  The master must stay answering,
# replace killed workers, keep systemd-notify's barrier working, and
# attribute nothing to a stranger.

load ../helpers
load ../control_helpers

# write_hostile_py: $HOSTILE_PY (in a directory uid 65534 can read), run as
#   setpriv ... $PY $HOSTILE_PY MASTERPID KIND HOLD [COUNT]
# It finds the master's notify socket in /proc/net/unix and sends
# datagrams carrying a hostile descriptor (closing its own copy first), prints "sent", and holds its
# end for HOLD seconds.  KIND:
#   tcp   a TCP socket with SO_LINGER {1, 3600} and unsent data, connected
#         to a listener that never accepts nor reads (small buffers)
#   nested  a Unix socket with such a TCP socket in flight in its queue
#   tty   the slave of a pty whose output is full, nobody reading; prints
#         "released" once every copy of it is closed (read gives EIO)
#   pipes COUNT datagrams, each with the write end of a pipe; prints
#         "eperm N" (how many sends the kernel refused) and "closed N"
#         (how many of the others the receiver closed within HOLD)
write_hostile_py() {
	shared_dir
	HOSTILE_PY="$SDIR/hostile.py"
	cat >"$HOSTILE_PY" <<'EOF'
import errno, os, select, socket, struct, sys, time
mpid, kind, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
name = None
with open("/proc/net/unix") as f:
    for line in f:
        cols = line.split()
        if len(cols) >= 8 and cols[-1].startswith("@wpool/%s/" % mpid) \
                and cols[-1].endswith("/notify"):
            name = cols[-1]
if name is None:
    sys.exit("no notify socket of pid %s in /proc/net/unix" % mpid)
addr = "\0" + name[1:]
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

def send(fd, msg=b"STATUS=hostile"):
    d.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                       struct.pack("i", fd))], 0, addr)

def lingering(lst):
    """A TCP socket with SO_LINGER {1, 3600} and unsent data."""
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.connect(lst.getsockname())
    c.setblocking(False)
    try:
        while True:
            c.send(b"x" * 65536)
    except BlockingIOError:
        pass
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 3600))
    return c.detach()

if kind in ("tcp", "nested"):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    # Whoever closes the socket last waits for the linger, so the sender
    # must close its copy before the receiver does: messages in front
    # keep the receiver busy meanwhile.  A loaded machine may still run
    # the receiver first: three tries, each in a child of its own (which
    # dies with this process if its own close is the one that waits).
    # nested: the TCP socket is in flight in a Unix socket's queue, and
    # that Unix socket is what is sent; its last close drops the TCP one.
    for attempt in range(3):
        if attempt:
            time.sleep(0.3)
        if os.fork() == 0:
            libc.prctl(1, 9)    # PR_SET_PDEATHSIG, SIGKILL
            fd = lingering(lst)
            if kind == "nested":
                a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
                a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    struct.pack("i", fd))])
                os.close(fd)
                a.close()
                fd = b.detach()
            for i in range(9):
                d.sendto(b"STATUS=padding", addr)
            send(fd)
            os.close(fd)
            os._exit(0)
    print("sent", flush=True)
    time.sleep(hold)
elif kind == "tty":
    import pty
    m, s = pty.openpty()
    os.set_blocking(s, False)
    try:
        while True:
            os.write(s, b"y" * 4096)
    except BlockingIOError:
        pass
    send(s)
    os.close(s)
    print("sent", flush=True)
    end = time.time() + hold
    while time.time() < end:
        if select.select([m], [], [], 0.1)[0]:
            try:
                os.read(m, 65536)
            except OSError as e:
                if e.errno == errno.EIO:
                    print("released", flush=True)
                    break
                raise
    time.sleep(max(0, end - time.time()))
elif kind == "pipes":
    count, eperm, ends = int(sys.argv[4]), 0, []
    for i in range(count):
        r, w = os.pipe()
        try:
            send(w)
            ends.append(r)
        except PermissionError:
            eperm += 1
            os.close(r)
        os.close(w)
    print("eperm %d" % eperm, flush=True)
    closed, end = 0, time.time() + hold
    while ends and time.time() < end:
        ready = select.select(ends, [], [], 0.1)[0]
        for r in ready:
            os.read(r, 1)
            ends.remove(r)
            os.close(r)
            closed += 1
    print("closed %d of %d" % (closed, count - eperm), flush=True)
EOF
	chmod 0644 "$HOSTILE_PY"
}

# hostile KIND HOLD [COUNT]: runs hostile.py as uid 65534 in the
# background against $WPOOL_PID, output in $HOSTILE_OUT.
hostile() {
	HOSTILE_OUT="$BATS_TEST_TMPDIR/hostile.$1"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$PY" "$HOSTILE_PY" "$WPOOL_PID" "$@" >"$HOSTILE_OUT" 2>&1 3>&- &
	HOSTILE_PID=$!
	record_pid "$HOSTILE_PID"
}

# answers_and_replaces: status answers at once, and a worker killed with
# -9 is replaced.
answers_and_replaces() {
	RUN_TIMEOUT=5 run_wp status
	[[ $status == 0 ]] || log_fail "status did not answer within 5 s (exit $status): $output $stderr"
	local victim=${WORKERS[0]} p
	kill -KILL "$victim"
	# Reaped (no zombie left), and a successor started.
	wait_gone "$victim" --timeout 10
	NO_HTTP=1 wait_for_workers 2
	for p in "${WORKERS[@]}"; do
		[[ $p != "$victim" ]] || log_fail "worker $victim was not replaced"
	done
	run_wp status
	assert_success
}

# answers_and_replaces_one: the same with one worker.
answers_and_replaces_one() {
	RUN_TIMEOUT=5 run_wp status
	[[ $status == 0 ]] || log_fail "status did not answer within 5 s (exit $status): $output $stderr"
	local victim=${WORKERS[0]}
	kill -KILL "$victim"
	wait_gone "$victim" --timeout 10
	NO_HTTP=1 wait_for_workers 1
	[[ ${WORKERS[0]} != "$victim" ]] || log_fail "worker $victim was not replaced"
}

# no_stray_children: the master's only children are its workers (helpers
# gone and reaped: no zombie), and no warning about an unknown pid.
no_stray_children() {
	local kids
	wait_until 5 eval '[[ $(ps -o pid= --ppid '"$WPOOL_PID"' | wc -l) == 2 ]]'
	kids=$(ps -o pid=,stat=,args= --ppid "$WPOOL_PID")
	[[ $kids != *Z* ]] || log_fail "zombies: $kids"
	! grep -qi 'not a worker\|unknown pid' "$LOG" || log_fail "the reaper spoke of a helper"
}

# barrier_behind_stranger KIND STATUS SECS: a stranger sends KIND (see
# write_hostile_py) first; then the worker's systemd-notify --ready, with
# its barrier, must succeed within SECS and the worker count as ready.
barrier_behind_stranger() {
	local kind=$1 status=$2 secs=$3 script rc t1 t0
	write_hostile_py
	script=$(make_script notify.sh <<EOF
#!/bin/bash
while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.02; done
t0=\$EPOCHREALTIME
systemd-notify --ready --status="$status"
echo "\$? \$EPOCHREALTIME \$t0" >"$BATS_TEST_TMPDIR/took"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$script"
	hostile "$kind" 30
	wait_for_file_line "$HOSTILE_OUT" '^sent'
	touch "$BATS_TEST_TMPDIR/go"
	RUN_TIMEOUT=5 wait_status 5 ".ready == 1 and .workers[0].status == \"$status\""
	wait_for_file_line "$BATS_TEST_TMPDIR/took" .
	read -r rc t1 t0 <"$BATS_TEST_TMPDIR/took"
	assert_equal "$rc" 0
	awk -v a="$t0" -v b="$t1" -v s="$secs" 'BEGIN { exit !(b - a < s) }' ||
		fail "systemd-notify took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')s"
}

@test "a stranger's TCP socket with SO_LINGER and unsent data does not freeze the master" {
	write_hostile_py
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	hostile tcp 30
	wait_for_file_line "$HOSTILE_OUT" '^sent'
	answers_and_replaces
	no_stray_children
}

@test "a stranger's Unix socket with a lingering TCP socket in its queue stalls neither the master nor the notify socket" {
	command -v systemd-notify >/dev/null || fail "systemd-notify missing (the systemd package)"
	# Its READY=1 and BARRIER=1 come right after the stranger's socket:
	# handled at once, not once a helper stuck closing it was killed (2 s).
	barrier_behind_stranger nested "ready behind the stranger" 1
	NO_HTTP=1 wait_for_workers 1
	answers_and_replaces_one
}

@test "a stranger's filled terminal is closed out of the master, and released" {
	write_hostile_py
	start_wpool -s "$CTL" -n 2 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	hostile tty 8
	wait_for_file_line "$HOSTILE_OUT" '^sent'
	answers_and_replaces
	# Every copy of it closed: not kept by the master nor by a helper.
	wait_for_file_line "$HOSTILE_OUT" '^released' 8
	no_stray_children
}

@test "a worker's MAINPID= naming a process outside its tree is refused" {
	write_notify_py
	local script stranger
	# The stranger: no process of the pool's, it tells READY=1 every 0.1 s.
	script=$(make_script worker.sh <<EOF
#!/bin/sh
while [ ! -s "$BATS_TEST_TMPDIR/stranger.pid" ]; do sleep 0.02; done
"$PY" "$NOTIFY_PY" "MAINPID=\$(cat "$BATS_TEST_TMPDIR/stranger.pid")"
echo named >"$BATS_TEST_TMPDIR/named"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$script"
	NO_HTTP=1 wait_for_workers 1
	NOTIFY_SOCKET=$(worker_env "${WORKERS[0]}" NOTIFY_SOCKET) \
		"$PY" "$NOTIFY_PY" "READY=1
STATUS=told by a stranger" --every 0.1 3>&- &
	stranger=$!
	record_pid "$stranger"
	echo "$stranger" >"$BATS_TEST_TMPDIR/stranger.pid"
	wait_for_file_line "$BATS_TEST_TMPDIR/named" .
	wait_for_log "worker 0 \(pid ${WORKERS[0]}\): MAINPID=$stranger refused"
	sleep 1
	local st
	st=$(status_json)
	jq -e '.ready == 0 and .workers[0].state == "starting" and .workers[0].status != "told by a stranger"' \
		<<<"$st" >/dev/null || log_fail "the stranger counted for the worker: $st"
	kill "$stranger"
}

@test "systemd-notify --ready (with its barrier) works while a stranger's blocking fd is pending" {
	command -v systemd-notify >/dev/null || fail "systemd-notify missing (the systemd package)"
	# Its BARRIER=1 pipe is closed: it does not wait out its 5 s timeout.
	barrier_behind_stranger tcp "ready after the stranger" 3
}

@test "a stranger sending descriptors fast is refused them (EPERM), then the barrier works again" {
	command -v systemd-notify >/dev/null || fail "systemd-notify missing (the systemd package)"
	write_hostile_py
	local script
	script=$(make_script notify.sh <<EOF
#!/bin/bash
while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.02; done
systemd-notify --ready --status="ready after the refusal"
echo "\$?" >"$BATS_TEST_TMPDIR/rc"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 2 --ready notify -b 127.0.0.1:0 -- "$script"
	local nfd0 nfd1
	# Counted once both workers have exec'd and the master has closed
	# their exec-status pipes (slow under ASan): the same count twice.
	wait_until 10 eval '(($(worker_pids | wc -l) == 2)) &&
		! grep -qx wpool /proc/$(worker_pids | head -1)/comm /proc/$(worker_pids | tail -1)/comm'
	nfd0=-1
	wait_until 10 eval 'n=$(ls "/proc/$WPOOL_PID/fd" | wc -l);
		((n == nfd0)) || { nfd0=$n; sleep 0.1; false; }'
	hostile pipes 5 1500
	wait_for_file_line "$HOSTILE_OUT" '^closed' 15
	cat "$HOSTILE_OUT"
	local eperm closed of
	read -r _ eperm <<<"$(grep '^eperm' "$HOSTILE_OUT")"
	read -r _ closed _ of <<<"$(grep '^closed' "$HOSTILE_OUT")"
	((eperm > 0)) || log_fail "no send was refused: $(cat "$HOSTILE_OUT")"
	# What the kernel let through was closed, not kept.
	assert_equal "$closed" "$of"
	wait_for_log 'notify socket: refusing descriptors'
	wait_for_log 'notify socket: accepting descriptors again'
	nfd1=$(ls "/proc/$WPOOL_PID/fd" | wc -l)
	assert_equal "$nfd1" "$nfd0"
	touch "$BATS_TEST_TMPDIR/go"
	wait_status 5 '.ready == 2'
	wait_for_file_line "$BATS_TEST_TMPDIR/rc" .
	assert_equal "$(cat "$BATS_TEST_TMPDIR/rc")" 0
	no_stray_children
}

@test "a stranger's flood of messages keeps neither a worker's READY=1 out nor its own in" {
	write_hostile_py
	write_notify_py
	cat >"$SDIR/flood.py" <<'EOF'
import socket, sys, time
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    for i in range(100):
        d.sendto(b"READY=1\nSTATUS=flooded", "\0" + sys.argv[1][1:])
EOF
	chmod 0644 "$SDIR/flood.py"
	local script
	script=$(make_script worker.sh <<EOF
#!/bin/sh
while [ ! -e "$BATS_TEST_TMPDIR/go" ]; do sleep 0.02; done
"$PY" "$NOTIFY_PY" "READY=1
STATUS=mine"
exec "$TESTSRV"
EOF
)
	start_wpool -s "$CTL" -n 1 --ready notify -b 127.0.0.1:0 -- "$script"
	NO_HTTP=1 wait_for_workers 1
	setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" "$SDIR/flood.py" \
		"$(worker_env "${WORKERS[0]}" NOTIFY_SOCKET)" 6 3>&- &
	record_pid $!
	sleep 1
	assert_equal "$(sj .ready)" 0
	touch "$BATS_TEST_TMPDIR/go"
	wait_status 5 '.ready == 1 and .workers[0].status == "mine"'
}
