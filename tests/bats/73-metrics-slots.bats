#!/usr/bin/env bats
# /metrics stays bounded (issue 12 item 5): per-worker series are labelled
# by slot (id) and role (cur, next, old), never by pid, so restarts add no
# series; the per-slot counters only grow.  Checked with promtool, a real
# Prometheus parser.

load ../helpers

setup() {
	common_setup
	command -v promtool >/dev/null ||
		fail "promtool is missing (Debian's prometheus): make deps-test"
}

# scrape FILE: /metrics into FILE, checked by promtool.
scrape() {
	curl -sS --max-time 5 "http://127.0.0.1:$MP/metrics" >"$1" ||
		fail "scrape failed"
	promtool check metrics <"$1" || fail "promtool rejects $1: $(cat "$1")"
}

# series FILE: the series (name and labels) in FILE, sorted.
series() {
	grep -v '^#' "$1" | sed -E 's/ [^ ]+$//' | sort
}

# value FILE SERIES: the value of one series.
value() {
	grep -F -- "$2 " "$1" | awk '{ print $NF }'
}

metrics_port() {
	wait_for_log 'metrics on http://127\.0\.0\.1:[0-9]+/metrics' >&2
	sed -nE 's|.*metrics on http://127\.0\.0\.1:([0-9]+)/metrics.*|\1|p' "$LOG" | head -1
}

# cur_pid_ready FILE: slot 0's cur pid, if it is ready.
cur0_ready() {
	scrape now.txt
	grep -qF 'wpool_worker_up{pool="wpool",id="0",role="cur",state="ready"} 1' now.txt &&
		[[ $(value now.txt 'wpool_worker_pid{pool="wpool",id="0",role="cur"}') != "$1" ]]
}

@test "20 restarts of a slot add no series; its restart and exit counters grow by 20" {
	start_wpool -n 2 --max-restart-delay 0.2 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	MP=$(metrics_port)
	wait_until 10 cur0_ready none
	scrape before.txt
	! grep -q 'pid="' before.txt || fail "a pid label: $(grep 'pid="' before.txt)"
	local pid i
	for ((i = 0; i < 20; i++)); do
		pid=$(value now.txt 'wpool_worker_pid{pool="wpool",id="0",role="cur"}')
		[[ $pid =~ ^[0-9]+$ ]] || fail "no pid for slot 0: $(cat now.txt)"
		kill -9 "$pid"
		wait_until 10 cur0_ready "$pid"
	done
	scrape after.txt
	diff <(series before.txt) <(series after.txt) ||
		fail "the series changed after 20 restarts"
	local r0 r1 k0 k1
	r0=$(value before.txt 'wpool_worker_restarts_total{pool="wpool",id="0"}')
	r1=$(value after.txt 'wpool_worker_restarts_total{pool="wpool",id="0"}')
	k0=$(value before.txt 'wpool_worker_exits_total{pool="wpool",id="0",cause="killed"}')
	k1=$(value after.txt 'wpool_worker_exits_total{pool="wpool",id="0",cause="killed"}')
	assert_equal "$((r1 - r0)) $((k1 - k0))" "20 20"
	# The other slot was left alone, and the pool's total agrees.
	assert_equal "$(value after.txt 'wpool_worker_restarts_total{pool="wpool",id="1"}')" 0
	assert_equal "$(value after.txt 'wpool_restarts_total{pool="wpool"}')" 20
}

@test "during a reload the old and new worker of a slot are told apart by role, and the old is counted as stopped" {
	# The old worker ignores TERM: it lingers (role old) until --stop-timeout.
	start_wpool -n 1 --stop-timeout 3 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	wait_for_workers 1
	MP=$(metrics_port)
	"$WPOOL" reload --no-wait >/dev/null
	old_and_cur() {
		scrape now.txt
		grep -qF 'wpool_worker_up{pool="wpool",id="0",role="old",state="stopping"} 1' now.txt &&
			grep -qE '^wpool_worker_up\{pool="wpool",id="0",role="cur",state="ready"\} 1$' now.txt
	}
	wait_until 10 old_and_cur
	local old cur
	old=$(value now.txt 'wpool_worker_pid{pool="wpool",id="0",role="old"}')
	cur=$(value now.txt 'wpool_worker_pid{pool="wpool",id="0",role="cur"}')
	[[ $old == "${WORKERS[0]}" && $cur != "$old" ]] || fail "old=$old cur=$cur workers=${WORKERS[*]}"
	old_gone() {
		scrape now.txt
		! grep -q 'role="old"' now.txt
	}
	wait_until 10 old_gone
	# Killed at --stop-timeout, but it was wpool that asked it to stop.
	assert_equal "$(value now.txt 'wpool_worker_exits_total{pool="wpool",id="0",cause="stopped"}')" 1
	assert_equal "$(value now.txt 'wpool_worker_exits_total{pool="wpool",id="0",cause="killed"}')" 0
	assert_equal "$(value now.txt 'wpool_worker_restarts_total{pool="wpool",id="0"}')" 0
}

@test "balance mode counts each slot's requests across its workers" {
	start_wpool -n 1 --mode balance --max-requests 5 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$REPO_ROOT/tests/bin/bal_worker"
	# No requests of wait_for_workers' own: they would count.
	NO_HTTP=1 wait_for_workers 1
	MP=$(metrics_port)
	# The series are compared while the slot has one worker, its cur.
	settled() {
		scrape before.txt
		! grep -qE 'role="(old|next)"' before.txt
	}
	wait_until 10 settled
	local n0 i
	n0=$(value before.txt 'wpool_worker_requests_total{pool="wpool",id="0"}')
	for ((i = 0; i < 12; i++)); do
		http_get / >/dev/null || fail "request $i failed"
	done
	# With --max-requests 5, two of the slot's workers served and left.
	wait_for_log_count 'exited with status 0 after [0-9.]+s; replaced' 2
	# ... and no worker of the slot is on its way out (one that reached
	# its --max-requests with the last request is stopping for a moment).
	requests_are() {
		scrape after.txt
		(($(value after.txt 'wpool_worker_requests_total{pool="wpool",id="0"}') - n0 == $1)) &&
			! grep -qE 'role="(old|next)"' after.txt
	}
	wait_until 10 requests_are 12
	diff <(series before.txt) <(series after.txt) || fail "the series changed"
}
