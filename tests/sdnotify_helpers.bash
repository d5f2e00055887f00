# sdnotify_helpers.bash: wpool under a service manager, for
# tests/bats/85-sdnotify.bats and 86-fdstore.bats.  The manager is
# tests/sdmanager.py, written from systemd's documented protocol: it starts
# wpool with NOTIFY_SOCKET, logs every line wpool sends to $EVENTS as
# "MONO_USEC KIND TEXT", holds the fds wpool stores, and on SIGUSR1 starts
# wpool again with them as LISTEN_FDS.  Loaded after ../control_helpers.

SDMANAGER="$BATS_TEST_DIRNAME/../sdmanager.py"

sdnotify_setup() {
	control_setup
	EVENTS="$BATS_TEST_TMPDIR/events"
	NSOCK="$BATS_TEST_TMPDIR/manager.sock"
	: >"$EVENTS"
	MGR_PID=
}

sdnotify_teardown() {
	control_teardown
	if [[ -n $MGR_PID ]]; then
		kill -TERM "$MGR_PID" 2>/dev/null
		wait "$MGR_PID" 2>/dev/null
	fi
	return 0
}

setup() {
	sdnotify_setup
}

teardown() {
	sdnotify_teardown
}

# start_managed [NAME=VALUE...] -- WPOOL-ARGS...: the manager starts wpool
# (NAME=VALUE in its environment); sets MGR_PID and WPOOL_PID.  With
# "-- -- COMMAND...", it starts COMMAND instead (which execs wpool).
start_managed() {
	local -a env=()
	while [[ $1 != -- ]]; do
		env+=("$1")
		shift
	done
	shift
	# A second "--": the command is what follows, not wpool.
	local -a cmd=("$WPOOL" "$@")
	[[ $1 == -- ]] && cmd=("${@:2}")
	"$PY" "$SDMANAGER" "$NSOCK" "$EVENTS" "$LOG" "${env[@]}" 3>&- \
		-- "${cmd[@]}" </dev/null &
	MGR_PID=$!
	wait_event '^PID ' 1
	WPOOL_PID=$(last_wpool_pid)
}

# last_wpool_pid: the pid the manager started last.
last_wpool_pid() {
	awk '$2 == "PID" { p = $3 } END { print p }' "$EVENTS"
}

# restart_managed: the manager starts wpool again, with what it stored.
restart_managed() {
	local n
	n=$(ev_count '^PID ')
	kill -USR1 "$MGR_PID"
	wait_event '^PID ' $((n + 1))
	WPOOL_PID=$(last_wpool_pid)
}

# events: the events without their times, "KIND TEXT" a line.
events() {
	cut -d' ' -f2- "$EVENTS"
}

ev_count() {
	events | grep -cE -- "$1"
}

# wait_event REGEX [N] [TIMEOUT]: until N events match.
wait_event() {
	local re=$1 n=${2:-1} timeout=${3:-$DEFAULT_TIMEOUT} deadline
	deadline=$(deadline_in "$timeout")
	while (($(ev_count "$re") < n)); do
		if past "$deadline"; then
			fail "timed out after ${timeout}s waiting for $n event(s) /$re/; events:
$(events)
log:
$(cat "$LOG")"
			return 1
		fi
		sleep 0.02
	done
}

# start_load PORT: THREADS clients (8) connect to 127.0.0.1:PORT over and
# over, one GET /pid each, until stop_load; each connection becomes a
# line of $LOADOUT: "START_MONO_USEC OUTCOME" (ok, refused, reset, ...).
start_load() {
	LOADOUT="$BATS_TEST_TMPDIR/load.out"
	: >"$LOADOUT"
	"$PY" - "$1" "$LOADOUT" "$BATS_TEST_TMPDIR/load.stop" 3>&- <<'PYEOF' &
import socket, sys, threading, time, os
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
f = open(out, "a", buffering=1)
def one():
    t0 = time.monotonic_ns() // 1000
    s = socket.socket()
    s.settimeout(15)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        # The whole answer, by its Content-Length (keep-alive or not).
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                n = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                     if l.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    break
        r = "ok" if data.startswith(b"HTTP/1.1 200") and sep else "bad"
    except ConnectionRefusedError:
        r = "refused"
    except ConnectionResetError:
        r = "reset"
    except OSError as e:
        r = "error:" + type(e).__name__
    finally:
        s.close()
    with lock:
        f.write("%d %s\n" % (t0, r))
def loop():
    while not os.path.exists(stop):
        one()
        time.sleep(0.005)
ts = [threading.Thread(target=loop) for _ in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
PYEOF
	LOAD_PID=$!
	record_pid "$LOAD_PID"
}

stop_load() {
	touch "$BATS_TEST_TMPDIR/load.stop"
	wait "$LOAD_PID" 2>/dev/null || true
}

load_count() {
	awk -v o="$1" '$2 == o { n++ } END { print n + 0 }' "$LOADOUT"
}

# served_since T N: N connections begun after T (monotonic us) were served.
served_since() {
	(($(awk -v t="$1" '$1 > t && $2 == "ok"' "$LOADOUT" | wc -l) >= $2))
}

# crash_and_restart: wpool and its workers are killed with -9, as a crash
# under KillMode=control-group leaves it; a moment later (connections
# queue meanwhile) the manager starts it again with the fds it stored.
# Sets KILLED_AT (monotonic microseconds, the clock of $EVENTS).
crash_and_restart() {
	local -a w
	w=($(worker_pids))
	((${#w[@]} > 0)) || fail "no workers to kill"
	kill -KILL "$WPOOL_PID" "${w[@]}"
	KILLED_AT=$("$PY" -c 'import time; print(time.monotonic_ns() // 1000)')
	wait_gone "$WPOOL_PID" "${w[@]}" --timeout 5
	sleep 0.5
	restart_managed
}
