#!/usr/bin/env bats
# --metrics under attack (issue 10, item 8).  Anyone who can reach the
# port may be hostile: the attack clients (tests/bin/http_attack.py) run as
# another user (nobody) and hold connections idle, trickle requests a byte
# at a time, never read their answers, send NUL bytes and oversized
# headers.  A scrape must still be answered (curl, bounded by --max-time),
# the master must keep its fds, and a bad request must get its answer.

load ../helpers
load ../private_helpers

# The system python: one on PATH may be a shim that nobody cannot run.
if [[ -x /usr/bin/python3 ]]; then
	PY=/usr/bin/python3
else
	PY=$(command -v python3)
fi

setup() {
	common_setup
	ATTACK_PID=
	# The attackers run as nobody: a copy of their script it can read.
	reachable_copy "$REPO_ROOT/tests/bin/http_attack.py"
	ATTACK=(setpriv --reuid=65534 --regid=65534 --clear-groups
		"$PY" "$REACHABLE_DIR/http_attack.py")
}

teardown() {
	if [[ -n $ATTACK_PID ]]; then
		kill -KILL "$ATTACK_PID" 2>/dev/null
		wait "$ATTACK_PID" 2>/dev/null
	fi
	common_teardown
	reachable_cleanup
}

# metrics_port: the port wpool logged for its metrics endpoint.
metrics_port() {
	wait_for_log 'metrics on http://127\.0\.0\.1:[0-9]+/metrics' >&2
	sed -nE 's|.*metrics on http://127\.0\.0\.1:([0-9]+)/metrics.*|\1|p' "$LOG" | head -1
}

master_fds() {
	find "/proc/$WPOOL_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}

# wait_for_line FILE REGEX TIMEOUT: polls FILE (the attack's output).
wait_for_line() {
	local deadline
	deadline=$(deadline_in "$3")
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		if past "$deadline"; then
			fail "$(printf 'no line /%s/ in %s after %ss:\n%s\n--- log:\n%s' \
				"$2" "$1" "$3" "$(cat "$1")" "$(cat "$LOG")")"
			return 1
		fi
		sleep 0.05
	done
}

# flood_and_scrape ATTACK-OPTIONS...: runs the attack in the background
# from 127.0.0.2 (the scraper, curl, is 127.0.0.1: another host, as an
# attacker on the network is), held 3 s after its scrapes; notes the
# master's fds while it is held; leaves the attack's output in attack.out
# and FDS_HELD.
flood_and_scrape() {
	"${ATTACK[@]}" flood "$MP" --src 127.0.0.2 "$@" --hold 3 >attack.out 2>&1 3>&- &
	ATTACK_PID=$!
	wait_for_line attack.out '^holding$' 40 || return 1
	FDS_HELD=$(master_fds)
	wait "$ATTACK_PID" || fail "the attack failed: $(cat attack.out)"
	ATTACK_PID=
}

# under SECONDS LIMIT: a figure printed by the attack is below LIMIT.
under() {
	awk -v t="$1" -v l="$2" 'BEGIN { exit !(t + 0 < l + 0) }'
}

start_metrics_pool() {
	start_wpool -n 1 --metrics 127.0.0.1:0 -b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	MP=$(metrics_port)
	FDS_BEFORE=$(master_fds)
}

@test "3000 idle connections neither lock a scraper out nor take the master's fds" {
	start_metrics_pool
	flood_and_scrape --idle 3000 --scrapes 2 --scrape-timeout 3
	run cat attack.out
	assert_line --regexp '^attack idle=3000 '
	assert_line --regexp '^scrape 0 200 '
	assert_line --regexp '^scrape 1 200 '
	# At most 64 connections are held, whatever the flood.
	((FDS_HELD <= FDS_BEFORE + 64)) ||
		fail "the master held $FDS_HELD fds ($FDS_BEFORE before the attack)"
	# And the pool itself still serves.
	run http_get /
	assert_success
}

@test "300 slowloris clients and 100 that never read do not delay a scrape" {
	start_metrics_pool
	flood_and_scrape --slow 300 --noread 100 --gap 0.2 --scrapes 3 \
		--scrape-timeout 3
	run cat attack.out
	assert_line --regexp '^attack idle=0 slow=300 noread=100 '
	assert_line --regexp '^scrape 0 200 '
	assert_line --regexp '^scrape 1 200 '
	assert_line --regexp '^scrape 2 200 '
	((FDS_HELD <= FDS_BEFORE + 64)) ||
		fail "the master held $FDS_HELD fds ($FDS_BEFORE before the attack)"
}

@test "a request with a NUL or another control byte gets 400 at once" {
	start_metrics_pool
	local req
	for req in 'GET /metrics HTTP/1.1\r\nHost: x\x00\r\n\r\n' \
		'GET /met\x00rics HTTP/1.1\r\n\r\n' \
		'GET /metrics HTTP/1.1\r\nX: \x01\r\n\r\n'; do
		run "${ATTACK[@]}" raw "$MP" --send "$req" --timeout 5
		assert_success
		assert_line --regexp '^status HTTP/1.1 400 Bad Request [0-9.]+$'
		# "at once": well before the 2 s a silent client is given.
		under "${lines[0]##* }" 1.5 ||
			fail "$req answered after ${lines[0]##* }s"
		assert_line --regexp '^closed '
	done
}

@test "an oversized header gets its 431, even from a client that sends it all first" {
	start_metrics_pool
	local n
	# http.client sends the whole request before it reads: the answer
	# must not be lost in a reset while it is still sending.
	for n in 9000 $((8 << 20)); do
		run "${ATTACK[@]}" get "$MP" /metrics --header-bytes "$n" --timeout 10
		assert_success
		assert_line --regexp '^status 431 '
	done
	# And the connection does not stay open after the answer.
	run "${ATTACK[@]}" raw "$MP" --send 'GET /metrics HTTP/1.1\r\n' --pad 20000
	assert_line --index 0 --regexp '^status HTTP/1.1 431 '
	assert_line --index 1 --regexp '^closed '
	# The pool's own scrape still works.
	run curl -sS -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$MP/metrics"
	assert_output 200
}
