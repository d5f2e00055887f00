#!/usr/bin/env bash
# 66-fdstore-restart: connections lost when wpool crashes and is started
# again, with its listener kept in a service manager's fd store and without.
#
# tests/sdmanager.py plays systemd (NOTIFY_SOCKET, FDSTORE=1, LISTEN_FDS on
# restart).  8 client threads connect to 127.0.0.1:PORT over and over (one
# GET /pid each, 5 ms apart).  After WARM seconds wpool and its workers are
# killed with -9; GAP seconds later the manager starts wpool again (as
# Restart=on-failure would) and the load runs SECS more seconds.
# Figures: connections refused, other failures, and served, per run.
# Baseline in the same run: the same crash with NOTIFY_SOCKET empty, so
# that wpool stores nothing and the restarted one binds a new socket.
#   bash bench/66-fdstore-restart.sh        (about 15 s)
# Target: 0 refused with the fd store.  Env: WARM (2), GAP (0.5), SECS (2),
# MODE (shared; or reuseport).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

WARM=${WARM:-2}
GAP=${GAP:-0.5}
SECS=${SECS:-2}
MODE=${MODE:-shared}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || die "python3 missing"

preflight

cat >"$TMP/load.py" <<'PY'
import socket, sys, threading, time, os
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
f = open(out, "a", buffering=1)
def one():
    s = socket.socket()
    s.settimeout(15)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            b = s.recv(4096)
            if not b:
                break
            data += b
        r = "ok" if data.startswith(b"HTTP/1.1 200") else "bad"
    except ConnectionRefusedError:
        r = "refused"
    except OSError as e:
        r = type(e).__name__
    finally:
        s.close()
    with lock:
        f.write(r + "\n")
def loop():
    while not os.path.exists(stop):
        one()
        time.sleep(0.005)
ts = [threading.Thread(target=loop) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
PY

# one NAME [ENV=VALUE...]: a crash and restart; sets REF FAIL OK.
one() {
	local name=$1 d=$TMP/$1 port mgr wp w
	shift
	mkdir -p "$d"
	port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	bg "$d/manager.log" "$PY" "$ROOT/tests/sdmanager.py" "$d/notify.sock" \
	    "$d/events" "$d/wpool.log" "$@" -- "$WPOOL" -s "$d/ctl" -m "$MODE" \
	    -n 2 -b "127.0.0.1:$port,name=web" -- "$TESTSRV"
	mgr=$BG_PID
	wait_ready "$d/ctl" 2
	bg "$d/load.log" "$PY" "$TMP/load.py" "$port" "$d/out" "$d/stop"
	nap "$WARM"
	wp=$(awk '$2 == "PID" { p = $3 } END { print p }' "$d/events")
	w=$(ps -o pid= --ppid "$wp" | tr '\n' ' ')
	echo "\$ kill -KILL $wp $w; sleep $GAP; kill -USR1 $mgr  # the manager restarts it"
	# shellcheck disable=SC2086
	kill -KILL "$wp" $w
	nap "$GAP"
	kill -USR1 "$mgr"
	wait_ready "$d/ctl" 2
	nap "$SECS"
	touch "$d/stop"
	for ((i = 0; i < 200; i++)); do
		[ -n "$(ps -o pid= -p "$BG_PID")" ] || break
		sleep 0.1
	done
	stop_bg "$mgr"
	read -r REF FAIL OK < <(awk '{ n[$1]++ } END { printf "%d %d %d\n",
	    n["refused"], NR - n["ok"] - n["refused"], n["ok"] }' "$d/out")
}

one base NOTIFY_SOCKET=
b_ref=$REF b_fail=$FAIL b_ok=$OK
one store
result refused_with_fdstore "$REF" "<=" 0
RESULTS+=("INFO fd store ($MODE): refused=$REF other_failures=$FAIL served=$OK")
RESULTS+=("INFO baseline, no fd store ($MODE): refused=$b_ref other_failures=$b_fail served=$b_ok")
RESULTS+=("INFO refused: $REF with the fd store vs $b_ref without (gap ${GAP}s)")
finish
exit 0
