# upgrade_helpers.bash: for tests/bats/89-upgrade.bats (wpool upgrade).

# pool_snapshot: the pool's pid, start time and counters, and each worker's
# id, pid, generation, start time and restarts, one line each: what an
# upgrade must leave as it was.
pool_snapshot() {
	"$WPOOL" status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("pool", d["pid"], d["started_at"], d["generation"], d["restarts"],
      d["target"])
for w in sorted(d["workers"], key=lambda w: w["id"]):
    print("worker", w["id"], w["pid"], w["generation"], w["started_at"],
          w["restarts"], w["state"])
'
}

# upgrade_field NAME: status's upgrade.NAME.
upgrade_field() {
	"$WPOOL" status --json | python3 -c '
import json, sys
print(json.load(sys.stdin)["upgrade"].get(sys.argv[1]))' "$1"
}

# load_start SECONDS [PORT]: wrk, a new connection per request, in the
# background; load_wait then sets LOAD_REQUESTS and LOAD_FAILED.
load_start() {
	command -v wrk >/dev/null || fail "wrk is missing: make deps-test"
	LOAD_OUT="$BATS_TEST_TMPDIR/wrk.out"
	wrk -t 2 -c 8 -d "${1}s" -H 'Connection: close' \
		"http://127.0.0.1:${2:-$PORT}/" >"$LOAD_OUT" 2>&1 3>&- &
	LOAD_PID=$!
	record_pid "$LOAD_PID"
}

load_wait() {
	wait "$LOAD_PID" || fail "wrk failed: $(cat "$LOAD_OUT")"
	LOAD_REQUESTS=$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$LOAD_OUT")
	local errs non2xx
	errs=$(sed -nE 's/.*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+).*/\1+\2+\3+\4/p' "$LOAD_OUT")
	non2xx=$(sed -nE 's/.*Non-2xx or 3xx responses: ([0-9]+).*/\1/p' "$LOAD_OUT")
	LOAD_FAILED=$((${errs:-0} + ${non2xx:-0}))
}

# socket_inodes PID: the socket inodes PID holds, sorted.
socket_inodes() {
	local f
	for f in /proc/"$1"/fd/*; do
		readlink "$f"
	done 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | sort -n |
		paste -sd' '
}

# fd_count PID: how many fds PID holds.
fd_count() {
	ls /proc/"$1"/fd | wc -l
}
