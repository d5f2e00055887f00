#!/usr/bin/env bash
# valgrind memcheck of the wpool master through a representative scenario:
# start 3 workers, kill -9 two of them, a rolling reload, scale up and down
# (control socket and TTIN/TTOU), restart one worker, forwarded signals,
# status, status --json, a few bad control requests, stop.
#
#   valgrind --leak-check=full --errors-for-leak-kinds=definite
#            --error-exitcode=99 --track-fds=yes ./wpool ...
#
# Only the master runs under valgrind (--trace-children=no: the workers
# are exec'd natively; --child-silent-after-fork=yes: nothing is reported
# for the few instructions between fork and exec).  Exit status: 0 when the
# scenario ran and valgrind reported 0 errors and 0 bytes definitely lost;
# 1 when it reported any; 2 when the scenario itself failed; 77 when there
# is no valgrind.  Prints the valgrind summary and keeps the full report in
# $VALGRIND_LOG if that is set.  Takes 3-30 s.  An ASan-instrumented
# ./wpool (make check SANITIZE=1) cannot run under valgrind: then a plain
# build of the same sources is made in a temporary directory and checked.
#
# Env: WPOOL, TESTSRV (default: this repository's), VALGRIND_LOG=FILE.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WPOOL=${WPOOL:-$ROOT/wpool}
TESTSRV=${TESTSRV:-$ROOT/tests/bin/testsrv}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

command -v valgrind >/dev/null || { echo "valgrind: not installed"; exit 77; }
[ -x "$WPOOL" ] || { echo "no $WPOOL (make wpool)"; exit 2; }
[ -x "$TESTSRV" ] || { echo "no $TESTSRV (make test-bins)"; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wpool-valgrind.XXXXXX") || exit 2
SOCK=$TMP/ctl.sock

# An ASan build (make check SANITIZE=1) cannot run under valgrind: check a
# plain build of the same sources instead, compiled into $TMP.
if grep -q __asan_init "$WPOOL" 2>/dev/null; then
	PKGS="libbsd-overlay inih json-c"
	echo "# $WPOOL is built with AddressSanitizer: checking a plain build of $ROOT/src"
	# shellcheck disable=SC2046,SC2086
	${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -g $(pkg-config --cflags $PKGS) \
		-o "$TMP/wpool" "$ROOT"/src/*.c $(pkg-config --libs $PKGS) ||
		{ echo "cannot build a plain wpool"; rm -rf "$TMP"; exit 2; }
	WPOOL=$TMP/wpool
fi
VG=

cleanup() {
	if [ -n "$VG" ] && kill -0 "$VG" 2>/dev/null; then
		kill -KILL "$VG" 2>/dev/null
		wait "$VG" 2>/dev/null
	fi
	# Workers of a master killed that way die of PDEATHSIG; any left that
	# this run started are children of nobody we know: leave /proc alone.
	rm -rf "$TMP"
}
trap cleanup EXIT

say() { echo "# $*"; }
die() {
	echo "valgrind.sh: scenario failed: $*" >&2
	echo "--- wpool log:" >&2
	tail -n 40 "$TMP/wpool.log" >&2
	exit 2
}

ctl() {
	timeout -k 2 60 "$WPOOL" -s "$SOCK" "$@"
}

# field NAME: the pool's top-level NAME from status --json.
field() {
	ctl status --json 2>/dev/null | "$PY" -c '
import json, sys
try:
    print(json.load(sys.stdin)[sys.argv[1]])
except Exception:
    print("")' "$1"
}

# settled N: alive == ready == target == N and no reload running (60 s).
settled() {
	local n=$1 i
	for ((i = 0; i < 600; i++)); do
		ctl status --json 2>/dev/null | "$PY" -c '
import json, sys
try:
    j = json.load(sys.stdin)
except Exception:
    sys.exit(1)
ok = (j["alive"] == j["ready"] == j["target"] == int(sys.argv[1])
      and j["reload"]["state"] != "running")
sys.exit(0 if ok else 1)' "$n" && return 0
		sleep 0.1
	done
	die "the pool did not settle at $n workers"
}

workers() {
	ps -o pid= --ppid "$VG" | tr -d ' '
}

say "valgrind $(valgrind --version) on $("$WPOOL" --version 2>&1 | head -n1)"
echo "\$ valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --track-fds=yes --child-silent-after-fork=yes ./wpool -n 3 --stop-timeout 5 -b 127.0.0.1:0 -s SOCK -- ./tests/bin/testsrv --signal-log LOG"
valgrind --leak-check=full --errors-for-leak-kinds=definite \
	--error-exitcode=99 --track-fds=yes --child-silent-after-fork=yes \
	--log-file="$TMP/vg.log" \
	"$WPOOL" -n 3 --stop-timeout 5 -b 127.0.0.1:0 -s "$SOCK" \
	-- "$TESTSRV" --signal-log "$TMP/sig.log" \
	</dev/null >"$TMP/wpool.log" 2>&1 &
VG=$!
T0=$SECONDS

settled 3
say "started: 3 workers ($((SECONDS - T0)) s)"

for w in $(workers | head -n 2); do kill -KILL "$w"; done
sleep 0.5
settled 3
say "killed 2 workers with KILL: back to 3"

ctl reload >/dev/null || die "reload"
settled 3
[ "$(field generation)" = 1 ] || die "generation after reload: $(field generation)"
say "reload: generation 1"

ctl scale 5 >/dev/null || die "scale 5"
settled 5
ctl scale -3 >/dev/null || die "scale -3"
settled 2
kill -TTIN "$VG"
settled 3
kill -TTOU "$VG"
settled 2
say "scaled 3 -> 5 -> 2 -> 3 -> 2"

ctl restart 0 >/dev/null || die "restart 0"
settled 2
kill -WINCH "$VG"
ctl signal USR2 1 >/dev/null || die "signal USR2 1"
kill -HUP "$VG"
sleep 0.5
settled 2
say "restart 0, WINCH, USR2 to worker 1, HUP: generation $(field generation)"

ctl status >/dev/null || die "status"
ctl status --json >/dev/null || die "status --json"
# Bad requests take the error paths (each answered, none fatal).
"$PY" - "$SOCK" <<'EOF' || die "bad requests"
import socket, sys
for req in [b"not json\n", b'{"cmd":"nope"}\n', b'{"cmd":"scale","workers":"x"}\n',
            b'{"cmd":"restart","id":99}\n', b'[1,2,3]\n', b'{"cmd":"signal","signal":"NOPE"}\n']:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sys.argv[1])
    s.sendall(req)
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b'"ok":false' in data.replace(b" ", b""), (req, data)
    s.close()
# And a client that goes away mid-request.
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"cmd":"sta')
s.close()
EOF
say "status, status --json, 6 bad requests, 1 truncated"

ctl stop >/dev/null || die "stop"
RC=0
wait "$VG" || RC=$?
VG=
say "stopped: valgrind exit status $RC, $((SECONDS - T0)) s in all"

[ -n "${VALGRIND_LOG:-}" ] && cp "$TMP/vg.log" "$VALGRIND_LOG"
echo "--- valgrind summary:"
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|in use at exit|All heap blocks|FILE DESCRIPTORS' \
	"$TMP/vg.log" | sed 's/^==[0-9]*== */  /'

ERRORS=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$TMP/vg.log" | tail -n1)
DEF=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$TMP/vg.log" | tail -n1 | tr -d ,)
[ -n "$ERRORS" ] || { echo "no ERROR SUMMARY in the valgrind log"; cat "$TMP/vg.log"; exit 2; }
if [ "$RC" -ne 0 ] || [ "$ERRORS" != 0 ] || [ "${DEF:-0}" != 0 ]; then
	echo "--- valgrind report:"
	sed 's/^==[0-9]*== */  /' "$TMP/vg.log"
	echo "FAIL: valgrind exit $RC, $ERRORS errors, ${DEF:-0} bytes definitely lost"
	[ "$RC" -ne 0 ] && [ "$RC" -ne 99 ] && exit 2
	exit 1
fi
echo "PASS: 0 errors, 0 bytes definitely lost"
exit 0
