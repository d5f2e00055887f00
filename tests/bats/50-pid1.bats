#!/usr/bin/env bats
# wpool as an init, modelled on tini's and dumb-init's own tests: every exit
# code passes through, a signal death becomes 128+N, orphans and zombies are
# reaped, workers that ignore TERM are KILLed after --stop-timeout, nothing
# of the pool outlives it.  Each as a plain subreaper (wpool started from
# here, PR_SET_CHILD_SUBREAPER) and as PID 1 of a new PID namespace
# (`unshare --pid --fork --mount-proc`).  tests/bats/05-pid1.bats has the
# basic cases; this file is the thorough set.

load ../helpers
load ../hardening_helpers

# exit_of [--pid1] CODE-SCRIPT: wpool --no-restart -n 1 -- sh -c SCRIPT's
# exit status, as a subreaper or (--pid1) as PID 1 of a new namespace.
exit_of() {
	local -a pre=()
	if [[ $1 == --pid1 ]]; then
		pre=(unshare --pid --fork --mount-proc --kill-child)
		shift
	fi
	local st=0
	without_fd3 timeout -k 2 10 "${pre[@]}" env --default-signal \
		"$WPOOL" -q --no-restart -n 1 -- sh -c "$1" \
		</dev/null >/dev/null 2>>"$LOG" || st=$?
	echo "$st"
}

# Codes checked as PID 1 (one namespace each): the edges and a spread.
PID1_CODES="0 1 2 3 7 42 63 64 65 99 100 125 126 127 128 129 130 137 143 150 199 200 254 255"

# EXIT_LOOP: in a plain bash (bats' per-command traps would triple the
# time): for each code in $CODES, wpool --no-restart -n 1 -- sh -c "exit
# CODE" (as PID 1 with PID1=1); prints each mismatch as WANT->GOT.
EXIT_LOOP='
pre=()
[ "$PID1" = 1 ] && pre=(unshare --pid --fork --mount-proc --kill-child)
for c in $CODES; do
	timeout -k 2 10 "${pre[@]}" env --default-signal "$WPOOL" -q \
		--no-restart -n 1 -- sh -c "exit $c" </dev/null >/dev/null 2>>"$LOG"
	got=$?
	[ "$got" = "$c" ] || printf "%s->%s " "$c" "$got"
done
'

@test "subreaper: exit codes 0..255 of the only worker pass through (--no-restart)" {
	run env CODES="$(seq 0 255)" PID1=0 WPOOL="$WPOOL" LOG="$LOG" \
		bash -c "$EXIT_LOOP" 3>&-
	assert_success
	[[ -z $output ]] || log_fail "wrong exit statuses (want->got): $output"
}

@test "PID 1: exit codes pass through (--no-restart; a sample of 24 codes)" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	run env CODES="$PID1_CODES" PID1=1 WPOOL="$WPOOL" LOG="$LOG" \
		bash -c "$EXIT_LOOP" 3>&-
	assert_success
	[[ -z $output ]] || log_fail "wrong exit statuses (want->got): $output"
}

# Signals a worker may die of, with their numbers on Linux x86/arm.
DEATH_SIGNALS="HUP:1 INT:2 QUIT:3 ILL:4 TRAP:5 ABRT:6 BUS:7 FPE:8 KILL:9 USR1:10 SEGV:11 USR2:12 PIPE:13 ALRM:14 TERM:15 XCPU:24 VTALRM:26 SYS:31"

@test "subreaper: a worker killed by signal N gives 128+N, for 18 signals" {
	local e sig num got bad=()
	for e in $DEATH_SIGNALS; do
		sig=${e%:*}
		num=${e#*:}
		[[ $(kill -l "$sig") == "$num" ]] || continue
		# No core files: the crash signals would leave one each.
		got=$(exit_of "ulimit -c 0; kill -$sig \$\$; sleep 5")
		[[ $got == $((128 + num)) ]] || bad+=("$sig->$got")
	done
	((${#bad[@]} == 0)) || log_fail "wrong exit statuses (signal->got): ${bad[*]}"
}

@test "PID 1: a worker killed by signal N gives 128+N" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	local e sig num got bad=()
	for e in HUP:1 INT:2 QUIT:3 ABRT:6 KILL:9 USR1:10 SEGV:11 PIPE:13 TERM:15; do
		sig=${e%:*}
		num=${e#*:}
		got=$(exit_of --pid1 "ulimit -c 0; kill -$sig \$\$; sleep 5")
		[[ $got == $((128 + num)) ]] || bad+=("$sig->$got")
	done
	((${#bad[@]} == 0)) || log_fail "wrong exit statuses (signal->got): ${bad[*]}"
}

@test "subreaper: 100 orphans of a worker come back to wpool and are all reaped" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV" --orphans 100 --orphan-life 2
	wait_for_log '^orphans:'
	local -a orphans
	read -ra orphans <<<"$(sed -n 's/^orphans: //p' "$LOG")"
	assert_equal "${#orphans[@]}" 100
	record_pid "${orphans[@]}"
	# Their parents are gone: every one is wpool's now (one pass over
	# /proc, while they still live).
	local wrong
	wrong=$(ppids_of "${orphans[@]}" | awk -v m="$WPOOL_PID" '$2 != m')
	[[ -z $wrong ]] || log_fail "$(printf 'orphans not reparented to wpool (pid ppid):\n%s' "$wrong")"
	wait_gone "${orphans[@]}" --timeout 8
	# No zombie left, the worker untouched and still serving.
	wait_pool_settled 1
	assert_equal "$(log_count 'worker 0 started')" 1
	refute grep -E 'worker 0 \(pid [0-9]+\) (exited|killed)' "$LOG"
}

# Runs inside the namespace as the only worker: 100 orphans (their parents
# exit at once, so they belong to PID 1), then, until none is left, no
# zombie anywhere in the namespace for longer than a moment.
ORPHANS_100='
out=$("$0" --orphans 100 --orphan-life 1 --exit 0) || exit 10
set -- ${out#orphans: }
[ $# -eq 100 ] || { echo "expected 100 orphans, got $#"; exit 11; }
pids="$*"
for p in $pids; do
	pp=$(cut -d" " -f4 /proc/$p/stat 2>/dev/null) || continue
	[ "$pp" = 1 ] || { echo "orphan $p has ppid $pp, not 1"; exit 12; }
done
i=0
while :; do
	left=""
	for p in $pids; do [ -e /proc/$p ] && left="$left $p"; done
	[ -z "$left" ] && break
	i=$((i + 1))
	[ $i -ge 200 ] && { echo "not reaped:$left"; exit 13; }
	sleep 0.05
done
# And no zombie at all in the namespace (ours excepted: we reap our own).
sleep 0.1
z=$(grep -l "^[0-9]* ([^)]*) Z" /proc/[0-9]*/stat 2>/dev/null)
[ -z "$z" ] || { echo "zombies: $z"; exit 14; }
echo "all 100 orphans reaped"
'

@test "PID 1: 100 orphans are reparented to PID 1 and all reaped" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	WPOOL_PREFIX=(unshare --pid --fork --mount-proc --kill-child)
	run_wpool --no-restart -n 1 -- sh -c "$ORPHANS_100" "$TESTSRV"
	assert_success
	assert_output --partial "all 100 orphans reaped"
}

# A worker that leaves 100 zombies (children it never waits for) and exits:
# they become wpool's and must not stay.
ZOMBIE_MAKER='
import os, sys, time
for i in range(100):
    if os.fork() == 0:
        os._exit(0)
time.sleep(0.3)          # they are all zombies of ours now
print("zombies made", flush=True)
os._exit(0)
'

@test "subreaper: 100 zombies left by an exiting worker are reaped" {
	start_wpool -n 1 --restart-delay 5 -- "$PY" -c "$ZOMBIE_MAKER"
	wait_for_log 'worker 0 \(pid [0-9]+\) exited with status 0'
	local z
	wait_until 5 eval '[[ -z $(ps -o pid=,stat= --ppid $WPOOL_PID | awk "\$2 ~ /^Z/") ]]'
	z=$(ps -o pid=,stat= --ppid "$WPOOL_PID" | awk '$2 ~ /^Z/' | wc -l)
	assert_equal "$z" 0
	alive "$WPOOL_PID" || log_fail "wpool died"
}

@test "PID 1: 100 zombies left by an exiting worker are reaped" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	ns_start_wpool -n 1 --restart-delay 5 -- "$PY" -c "$ZOMBIE_MAKER"
	wait_for_log 'worker 0 \(pid [0-9]+\) exited with status 0'
	wait_until 5 eval '[[ -z $(ps -o pid=,stat= --ppid $WPOOL_PID | awk "\$2 ~ /^Z/") ]]'
	alive "$WPOOL_PID" || log_fail "wpool died"
}

# ignore_term_stop HOW: HOW (a command) asks the pool of 2 TERM-ignoring
# workers to stop; checks the KILL came after --stop-timeout 0.5 and not
# much later, and that wpool exited 0.
ignore_term_stop() {
	wait_for_workers 2
	local workers=("${WORKERS[@]}") t0 ms
	t0=$(now_us)
	"$@"
	if [[ -n $UNSHARE_PID ]]; then
		ns_wait_exit 5
	else
		wait_wpool_exit 5
	fi
	ms=$(elapsed_ms "$t0")
	assert_equal "$WPOOL_STATUS" 0
	((ms >= 450)) || log_fail "stopped after $ms ms: before --stop-timeout 0.5"
	((ms < 2500)) || log_fail "stopped after $ms ms: long after --stop-timeout 0.5"
	wait_gone "${workers[@]}" --timeout 2
	assert_equal "$(log_count 'did not stop within 0.5s; sending KILL')" 2
	assert_equal "$(log_count 'killed by signal KILL')" 2
	assert_equal "$(tail -n1 "$LOG")" "wpool: stopped"
}

@test "subreaper: workers that ignore TERM are KILLed after --stop-timeout (TERM, then wpool stop)" {
	start_wpool -n 2 --stop-timeout 0.5 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	ignore_term_stop kill -TERM "$WPOOL_PID"
	: >"$LOG"
	start_wpool -n 2 --stop-timeout 0.5 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	ignore_term_stop without_fd3 "$WPOOL" stop
}

@test "PID 1: workers that ignore TERM are KILLed after --stop-timeout (TERM, then wpool stop)" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	ns_start_wpool -n 2 --stop-timeout 0.5 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	ignore_term_stop kill -TERM "$WPOOL_PID"
	: >"$LOG"
	# The control socket is a file: the client reaches PID 1 from here.
	ns_start_wpool -n 2 --stop-timeout 0.5 -b 127.0.0.1:0 -- "$TESTSRV" --ignore-term
	ignore_term_stop without_fd3 "$WPOOL" stop
}

@test "PID 1: TERM from inside the namespace (kill 1) stops the pool with 0" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	# An init that leaves TERM at its default never sees it: the kernel
	# drops it.  The first worker asks PID 1 to stop, as `docker stop`
	# or a shell in the container would.
	WPOOL_PREFIX=(unshare --pid --fork --mount-proc --kill-child)
	run_wpool -n 2 -- sh -c '[ "$WPOOL_WORKER_ID" = 0 ] && kill -TERM 1; exec sleep 30'
	assert_success
	grep -q 'stopping (SIGTERM)' <<<"$stderr" || fail "no stopping line: $stderr"
}

@test "PID 1: the pool's signals work from the host (HUP reloads, TTIN, WINCH)" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	ns_start_wpool -n 1 -b 127.0.0.1:0 -- "$TESTSRV" --signal-log "$BATS_TEST_TMPDIR/sig.log"
	wait_for_workers 1
	local old=${WORKERS[0]}
	send_signal "$WPOOL_PID" HUP
	wait_gone "$old" --timeout 5
	wait_pool_settled 1
	send_signal "$WPOOL_PID" TTIN
	wait_pool_settled 2
	assert_equal "$(jget "$(pool_json)" 'j["generation"]')" 1
	# (USR2 upgrades the master in place: 89-upgrade.bats.)
	send_signal "$WPOOL_PID" WINCH
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		wait_until 5 grep -qx "$(nspid_of "$p") WINCH" "$BATS_TEST_TMPDIR/sig.log"
	done
}

@test "PID 1: nothing outlives wpool, not even an orphan that ignores TERM" {
	have_pidns || skip "machine lacks PID namespaces (unshare --pid)"
	# The worker starts a TERM-ignoring child (its namespace pid in a
	# file) and serves.  Stopping the pool kills the worker; the child,
	# now an orphan of PID 1, ignores TERM; when PID 1 exits the kernel
	# KILLs what is left of its namespace.
	local pidf="$BATS_TEST_TMPDIR/orphan.pid" host
	ns_start_wpool -n 1 --stop-timeout 0.5 -- sh -c '
		sh -c "trap \"\" TERM; echo \$\$ >$0.tmp; mv $0.tmp $0; exec sleep 60" "$0" &
		exec sleep 60' "$pidf"
	wait_until 5 test -s "$pidf"
	host=$(ns_host_pid "$(cat "$pidf")") || log_fail "cannot find ns pid $(cat "$pidf")"
	record_pid "$host"
	# It ignores TERM indeed.
	local ign
	ign=$(awk '$1 == "SigIgn:" { print $2 }' "/proc/$host/status")
	(((16#$ign >> 14) & 1)) || log_fail "the orphan does not ignore TERM ($ign)"
	without_fd3 "$WPOOL" stop >/dev/null
	ns_wait_exit 5
	wait_gone "$host" --timeout 2
}
