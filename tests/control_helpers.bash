# control_helpers.bash: helpers for the control socket, status, readiness,
# reload and health tests (tests/bats/1*.bats).  Loaded after ../helpers,
# whose functions (start_wpool, wait_for_log, wait_for_workers, ...) they
# build on.
#
# Every test talks to its own control socket, $CTL, in its own directory:
# start pools with `start_wpool -s "$CTL" ...` and the client with `wp`.

# The system python: the one on PATH may be a pyenv shim that costs 100 ms
# a start and that other users (setpriv --reuid=nobody) cannot run.
if [[ -x /usr/bin/python3 ]]; then
	PY=/usr/bin/python3
else
	PY=$(command -v python3)
fi

control_setup() {
	common_setup
	CTL="$BATS_TEST_TMPDIR/ctl.sock"
	export WPOOL_CONTROL="$CTL"
}

control_teardown() {
	common_teardown
}

setup() {
	control_setup
}

teardown() {
	control_teardown
}

# --- the client ------------------------------------------------------------

# wp ARGS...: the control client on $CTL, bounded in time.
wp() {
	without_fd3 timeout -k 2 "${RUN_TIMEOUT:-20}" "$WPOOL" -s "$CTL" "$@"
}

# run_wp [-STATUS] ARGS...: bats `run` of wp, stdout and stderr apart.
run_wp() {
	local -a check=()
	if [[ $1 =~ ^-[0-9]+$ ]]; then
		check=("$1")
		shift
	fi
	run "${check[@]}" --separate-stderr wp "$@"
}

# status_json: `wpool status --json` on $CTL.
status_json() {
	wp status --json
}

# sj FILTER: jq -r FILTER applied to a fresh status.
sj() {
	local st
	st=$(status_json) || return 1
	jq -r "$1" <<<"$st"
}

# wait_status TIMEOUT JQ-FILTER: polls status until FILTER is true; fails
# with the last status and the log.
wait_status() {
	local timeout=$1 filter=$2 deadline st
	deadline=$(deadline_in "$timeout")
	while :; do
		st=$(status_json 2>/dev/null) &&
			jq -e "$filter" >/dev/null 2>&1 <<<"$st" && return 0
		if past "$deadline"; then
			log_fail "$(printf 'timed out after %ss waiting for status %s; last status:\n%s' \
				"$timeout" "$filter" "$st")"
			return 1
		fi
		if [[ -n $WPOOL_PID ]] && ! kill -0 "$WPOOL_PID" 2>/dev/null; then
			log_fail "wpool exited while waiting for status $filter"
			return 1
		fi
		sleep 0.05
	done
}

# worker_pid_of ID: the pid status reports for slot ID.
worker_pid_of() {
	sj ".workers[] | select(.id == $1 and .draining != true) | .pid"
}

# ready_pids: the pids of the ready workers, ascending, space-separated.
ready_pids() {
	sj '[.workers[] | select(.state == "ready") | .pid] | sort | map(tostring) | join(" ")'
}

# --- raw protocol ------------------------------------------------------------

# ctl_raw [--timeout SEC] [--path SOCK] LINE...: one connection; sends each
# LINE (a newline added), then prints one response line per request line.
# LINE may be @N:C to send N copies of the character C and a newline.
ctl_raw() {
	local timeout=5 path=$CTL
	while :; do
		case $1 in
		--timeout) timeout=$2; shift 2 ;;
		--path) path=$2; shift 2 ;;
		*) break ;;
		esac
	done
	"$PY" - "$path" "$timeout" "$@" <<'EOF'
import socket, sys
path, timeout, lines = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(timeout)
s.connect(path)
out = b""
for l in lines:
    if l.startswith("@") and ":" in l:
        n, c = l[1:].split(":", 1)
        out += c.encode() * int(n) + b"\n"
    else:
        out += l.encode() + b"\n"
try:
    s.sendall(out)
except OSError:
    pass	# the master may close early (a request too large): read on
buf = b""
for _ in lines:
    while b"\n" not in buf:
        try:
            d = s.recv(1 << 20)
        except ConnectionResetError:
            d = b""
        if not d:
            break
        buf += d
    if b"\n" not in buf:
        print("EOF")
        break
    line, buf = buf.split(b"\n", 1)
    print(line.decode())
EOF
}

# --- worker scripts ------------------------------------------------------------

# make_script NAME: writes stdin to $BATS_TEST_TMPDIR/NAME, executable;
# prints the path.
make_script() {
	local f="$BATS_TEST_TMPDIR/$1"
	cat >"$f"
	chmod +x "$f"
	echo "$f"
}

# write_notify_py: writes $NOTIFY_PY, run as
#   $PY $NOTIFY_PY MESSAGE [--fd] [--every SEC]
# which sends MESSAGE to $NOTIFY_SOCKET with SCM_CREDENTIALS (its own pid).
# wpool attributes a message by the sender's pid and ancestry, which it
# can only read while the sender exists: so the sender lingers 0.3 s after
# sending, as a real server would still be running.  With --fd it also
# passes the write end of a pipe, closes its own copy and prints "eof"
# once the receiver closed it too (or "no-eof" after 3 s).  With --every
# SEC it repeats the message every SEC seconds for as long as its parent
# lives (30 s at most).
write_notify_py() {
	NOTIFY_PY="$BATS_TEST_TMPDIR/notify.py"
	cat >"$NOTIFY_PY" <<'EOF'
import os, select, socket, struct, sys, time
args = sys.argv[1:]
msg = args.pop(0)
want_fd = "--fd" in args
every = float(args[args.index("--every") + 1]) if "--every" in args else 0
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
creds = (socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
         struct.pack("3i", os.getpid(), os.getuid(), os.getgid()))
if want_fd:
    r, w = os.pipe()
    s.sendmsg([msg.encode()], [creds, (socket.SOL_SOCKET, socket.SCM_RIGHTS,
               struct.pack("i", w))], 0, addr)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 3)
    print("eof" if ready and os.read(r, 1) == b"" else "no-eof", flush=True)
elif every > 0:
    parent, end = os.getppid(), time.time() + 30
    while time.time() < end and os.getppid() == parent:
        s.sendmsg([msg.encode()], [creds], 0, addr)
        time.sleep(every)
else:
    s.sendmsg([msg.encode()], [creds], 0, addr)
time.sleep(0.3)
EOF
}

# --- a graceful HTTP worker for the load tests -------------------------------

# write_gracesrv: $BATS_TEST_TMPDIR/gracesrv.py, an HTTP/1.1 keep-alive
# server on the inherited listeners that, on TERM, stops accepting, answers
# each open connection's next request with "Connection: close" and exits
# once they are all closed (5 s at most): what a well-behaved server does,
# so that any error a load generator sees is wpool's.  GET / answers
# "pid=PID id=ID gen=GEN" like testsrv.
write_gracesrv() {
	GRACESRV="$BATS_TEST_TMPDIR/gracesrv.py"
	{
		echo "#!$PY"
		cat <<'EOF'
import os, selectors, signal, socket, sys, time

body = ("pid=%d id=%s gen=%s\n" % (os.getpid(),
        os.environ.get("WPOOL_WORKER_ID", ""),
        os.environ.get("WPOOL_GENERATION", ""))).encode()
sel = selectors.DefaultSelector()
listeners = []
for fd in range(3, 3 + int(os.environ.get("LISTEN_FDS", "1"))):
    s = socket.socket(fileno=fd)
    s.setblocking(False)
    listeners.append(s)
    sel.register(s, selectors.EVENT_READ, None)

draining = False
def on_term(sig, frame):
    global draining
    draining = True
signal.signal(signal.SIGTERM, on_term)

class Conn:
    __slots__ = ("sock", "inb", "outb", "closing")
    def __init__(self, sock):
        self.sock, self.inb, self.outb, self.closing = sock, b"", b"", False

conns = set()

def close(c):
    sel.unregister(c.sock)
    c.sock.close()
    conns.discard(c)

def flush(c):
    while c.outb:
        try:
            k = c.sock.send(c.outb)
        except BlockingIOError:
            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            return True
        except OSError:
            close(c)
            return False
        c.outb = c.outb[k:]
    sel.modify(c.sock, selectors.EVENT_READ, c)
    if c.closing:
        close(c)
        return False
    return True

def serve(c):
    while not c.closing:
        i = c.inb.find(b"\r\n\r\n")
        if i < 0:
            break
        head, c.inb = c.inb[:i].lower(), c.inb[i + 4:]
        keep = b"connection: close" not in head and not draining
        c.outb += (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: %d\r\nConnection: %s\r\n\r\n" %
                   (len(body), b"keep-alive" if keep else b"close")) + body
        if not keep:
            c.closing = True
    return flush(c)

deadline = None
while True:
    if draining and deadline is None:
        deadline = time.monotonic() + 5
        for s in listeners:
            sel.unregister(s)
            s.close()
        listeners = []
        for c in list(conns):
            if c.inb:
                serve(c)
    if draining and (not conns or time.monotonic() > deadline):
        sys.exit(0)
    for key, ev in sel.select(0.05):
        if key.data is None:
            for _ in range(64):
                try:
                    cs, _a = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    break
                cs.setblocking(False)
                c = Conn(cs)
                conns.add(c)
                sel.register(cs, selectors.EVENT_READ, c)
            continue
        c = key.data
        if ev & selectors.EVENT_WRITE and not flush(c):
            continue
        if ev & selectors.EVENT_READ:
            try:
                d = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                close(c)
                continue
            if not d:
                close(c)
                continue
            c.inb += d
            serve(c)
EOF
	} >"$GRACESRV"
	chmod +x "$GRACESRV"
}

# wrk_errors FILE: "SOCKET NON2XX" counts from wrk's output (wrk prints
# those lines only when they are not zero).
wrk_errors() {
	local sock=0 non=0 line
	line=$(grep -E '^ *Socket errors:' "$1")
	if [[ -n $line ]]; then
		sock=$(sed -E 's/.*connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/' <<<"$line")
		sock=$((sock))
	fi
	line=$(grep -E '^ *Non-2xx or 3xx responses:' "$1")
	[[ -n $line ]] && non=$(awk '{ print $NF }' <<<"$line")
	echo "$sock $non"
}

# wrk_requests FILE: the total number of requests wrk completed.
wrk_requests() {
	sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$1"
}

# term_pool: TERM to the master, then wait for it to exit (status 0).
# (helpers' stop_wpool is for teardown: its `kill -KILL` of a pid that is
# already gone fails a test body under errexit.)
term_pool() {
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit "${1:-10}"
	assert_equal "$WPOOL_STATUS" 0
}
