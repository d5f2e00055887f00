# helpers.bash: what every tests/bats/*.bats file loads.
#
# The binaries under test come from the environment ($WPOOL, $TESTSRV;
# default: this repository's ./wpool and tests/bin/testsrv).  Every test runs
# in its own directory (BATS_TEST_TMPDIR) with its own control socket; every
# wait polls against a deadline (default 10 s, WPOOL_TEST_TIMEOUT); teardown
# ends only the wpool this test started and the pids it recorded, by pid, and
# fails a test whose pool, still running, counted a bad lifecycle transition.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

bats_require_minimum_version 1.5.0

REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
WPOOL="$(realpath -m "${WPOOL:-$REPO_ROOT/wpool}")"
TESTSRV="$(realpath -m "${TESTSRV:-$REPO_ROOT/tests/bin/testsrv}")"
FIXTURES="$REPO_ROOT/tests/fixtures"
DEFAULT_TIMEOUT="${WPOOL_TEST_TIMEOUT:-10}"

# Commands put in front of wpool by start_wpool and run_wpool, e.g.
# WPOOL_PREFIX=(taskset -c 0).  `env --default-signal` undoes what a shell
# does to background jobs (SIGINT and SIGQUIT ignored), so wpool starts the
# way it would from a terminal.
WPOOL_PREFIX=()

setup() {
	common_setup
}

teardown() {
	common_teardown
}

common_setup() {
	[[ -x $WPOOL ]] || fail "no wpool binary at $WPOOL (run: make wpool)"
	[[ -x $TESTSRV ]] || fail "no testsrv at $TESTSRV (run: make test-bins)"
	cd "$BATS_TEST_TMPDIR" || return 1
	LOG="$BATS_TEST_TMPDIR/wpool.log"
	: >"$LOG"
	WPOOL_PID=
	WPOOL_STATUS=
	PORT=
	PORTS=()
	LISTEN_ADDRS=()
	WORKERS=()
	declare -gA WORKER_ID=()
	RECORDED=()
	HOLDERS=()
	SHARED_DIRS=()
	# A private control socket: tests never meet another pool's socket.
	export WPOOL_CONTROL="$BATS_TEST_TMPDIR/ctl.sock"
	# What the test runner itself may have been given must not leak in.
	unset LISTEN_FDS LISTEN_PID LISTEN_FDNAMES NOTIFY_SOCKET \
		WATCHDOG_USEC WATCHDOG_PID WPOOL_SYSFS_ROOT WPOOL_PROCFS_ROOT
}

common_teardown() {
	local bad
	bad=$(lifecycle_bad_transitions)
	stop_wpool
	stop_holders
	local entry pid start
	for entry in "${RECORDED[@]}"; do
		pid=${entry%%:*}
		start=${entry#*:}
		# Only the very process recorded, never a reused pid.
		[[ $(proc_starttime "$pid") == "$start" ]] &&
			kill -KILL "$pid" 2>/dev/null
	done
	local d
	for d in "${SHARED_DIRS[@]}"; do
		[[ -n $d && -d $d ]] && rm -rf -- "$d"
	done
	if ((${bad:-0} > 0)); then
		fail "the pool counted $bad bad lifecycle transition(s) (bad_transitions in status --json): a wpool bug; log:
$(cat "$LOG" 2>/dev/null)"
		return 1
	fi
	return 0
}

# shared_dir [MODE]: a fresh directory under /tmp, on the same file system
# as BATS_TEST_TMPDIR but with parents other users can traverse; removed
# by common_teardown.  Sets SDIR.
shared_dir() {
	SDIR=$(mktemp -d /tmp/wpool-bats.XXXXXX) || return 1
	chmod "${1:-0755}" "$SDIR"
	SHARED_DIRS+=("$SDIR")
}

# lifecycle_bad_transitions: what the pool this test started, if it still
# runs and answers within a second, reports as bad_transitions (events
# its lifecycle table refused); nothing otherwise, so that a pool that
# has exited or is wedged on purpose does not fail the test.
lifecycle_bad_transitions() {
	[[ -n $WPOOL_PID ]] && kill -0 "$WPOOL_PID" 2>/dev/null || return 0
	local out
	out=$(timeout -k 0.5 1 "$WPOOL" status --json </dev/null 2>/dev/null 3>&-) ||
		return 0
	[[ $out =~ \"bad_transitions\":\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}"
	return 0
}

# --- time ------------------------------------------------------------------

# now_us: microseconds since the epoch (bash 5's EPOCHREALTIME).
now_us() {
	local t=$EPOCHREALTIME
	echo $((10#${t%.*} * 1000000 + 10#${t#*.}))
}

# secs_to_us 1.5 -> 1500000
secs_to_us() {
	local s=$1 int frac
	int=${s%%.*}
	[[ $s == *.* ]] && frac=${s#*.} || frac=
	frac="${frac}000000"
	frac=${frac:0:6}
	echo $((10#${int:-0} * 1000000 + 10#$frac))
}

deadline_in() {
	echo $(($(now_us) + $(secs_to_us "${1:-$DEFAULT_TIMEOUT}")))
}

past() {
	(($(now_us) > $1))
}

# elapsed_ms START_US
elapsed_ms() {
	echo $((($(now_us) - $1) / 1000))
}

# --- processes ---------------------------------------------------------------

alive() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null &&
		[[ $(proc_state "$1") != Z ]]
}

# proc_stat_field PID N: field N of /proc/PID/stat (comm may hold spaces).
proc_stat_field() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	local -a f=($rest)
	# rest starts at field 3 (state).
	echo "${f[$(($2 - 3))]}"
}

proc_state() { proc_stat_field "$1" 3; }
proc_ppid() { proc_stat_field "$1" 4; }
proc_pgrp() { proc_stat_field "$1" 5; }
proc_starttime() { proc_stat_field "$1" 22; }

# record_pid PID...: teardown kills these (if they are still the same
# processes) after wpool is stopped.
record_pid() {
	local p s
	for p in "$@"; do
		if s=$(proc_starttime "$p"); then
			RECORDED+=("$p:$s")
		fi
	done
	return 0
}

# children_of PID: live (non-zombie) children, one pid a line.
children_of() {
	ps -o pid=,stat= --ppid "$1" 2>/dev/null |
		awk '$2 !~ /^Z/ { print $1 }'
}

# worker_pids: wpool's children that have exec'd the command (a child
# between fork and exec still runs wpool's image).
worker_pids() {
	local p exe
	for p in $(children_of "$WPOOL_PID"); do
		exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
		[[ $exe == "$WPOOL" ]] && continue
		echo "$p"
	done
}

# --- starting and stopping wpool -------------------------------------------

# count_binds ARGS...: how many -b/--bind options come before `--`.
count_binds() {
	local n=0 a
	for a in "$@"; do
		case $a in
		--) break ;;
		-b | --bind) n=$((n + 1)) ;;
		--bind=* | -b?*) n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}

# start_wpool ARGS...: runs wpool in the background, output to $LOG, and
# waits for every listener's `listening on` line (PORT = the first one's
# port, PORTS and LISTEN_ADDRS all of them) or, without -b, for the first
# `worker N started`.  WAIT_LISTENERS=N overrides the count of listeners.
start_wpool() {
	local nbind=${WAIT_LISTENERS:-$(count_binds "$@")}
	PORT=
	PORTS=()
	LISTEN_ADDRS=()
	"${WPOOL_PREFIX[@]}" env --default-signal "$WPOOL" "$@" \
		</dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	if ((nbind > 0)); then
		wait_for_listeners "$nbind"
	else
		wait_for_log 'worker [0-9]+ started'
	fi
}

# run_wpool [-STATUS] ARGS...: bats `run` of wpool in the foreground,
# stdout and stderr apart, bounded so that a wpool that wrongly starts
# cannot hang.  -STATUS (e.g. -127) is run's own check of the exit status,
# which also tells bats that 127 is no "command not found" accident.
run_wpool() {
	local -a check=()
	if [[ $1 =~ ^-[0-9]+$ ]]; then
		check=("$1")
		shift
	fi
	run "${check[@]}" --separate-stderr without_fd3 \
		timeout -k 2 "${RUN_TIMEOUT:-10}" \
		"${WPOOL_PREFIX[@]}" env --default-signal "$WPOOL" "$@"
}

# without_fd3 COMMAND...: bats reports on fd 3; a process that outlives the
# test while holding it would keep bats waiting.
without_fd3() {
	"$@" 3>&-
}

wait_for_listeners() {
	local n=$1 line addr
	wait_for_log_count '^[^ ]+: listening on ' "$n"
	PORTS=()
	LISTEN_ADDRS=()
	while IFS= read -r line; do
		addr=${line#*listening on }
		addr=${addr%% (*}
		LISTEN_ADDRS+=("$addr")
		if [[ $addr =~ :([0-9]+)$ ]]; then
			PORTS+=("${BASH_REMATCH[1]}")
		else
			PORTS+=("")
		fi
	done < <(grep -E '^[^ ]+: listening on ' "$LOG")
	PORT=${PORTS[0]}
	export PORT
}

# stop_wpool: TERM, then KILL after a deadline; its workers (recorded
# first, by pid) are killed too if they outlive it.
stop_wpool() {
	[[ -n $WPOOL_PID ]] || return 0
	local p
	for p in $(children_of "$WPOOL_PID"); do
		record_pid "$p"
	done
	if kill -0 "$WPOOL_PID" 2>/dev/null; then
		kill -TERM "$WPOOL_PID" 2>/dev/null || true
		local deadline
		deadline=$(deadline_in 5)
		while kill -0 "$WPOOL_PID" 2>/dev/null && ! past "$deadline"; do
			sleep 0.02
		done
		kill -KILL "$WPOOL_PID" 2>/dev/null || true
	fi
	wait "$WPOOL_PID" 2>/dev/null || true
	WPOOL_PID=
	return 0
}

# wait_wpool_exit [TIMEOUT]: waits for wpool to exit on its own and sets
# WPOOL_STATUS; fails if it is still running at the deadline.
wait_wpool_exit() {
	local timeout=${1:-$DEFAULT_TIMEOUT} deadline
	deadline=$(deadline_in "$timeout")
	while kill -0 "$WPOOL_PID" 2>/dev/null; do
		if past "$deadline"; then
			fail "$(printf 'wpool (pid %s) still running after %ss; log:\n%s' \
				"$WPOOL_PID" "$timeout" "$(cat "$LOG")")"
			return 1
		fi
		sleep 0.02
	done
	WPOOL_STATUS=0
	wait "$WPOOL_PID" || WPOOL_STATUS=$?
	WPOOL_PID=
}

# wait_gone PID... [--timeout SEC]: waits until no such process exists
# (not even as a zombie).
wait_gone() {
	local timeout=$DEFAULT_TIMEOUT pids=() p deadline left
	while (($#)); do
		if [[ $1 == --timeout ]]; then
			timeout=$2
			shift 2
		else
			pids+=("$1")
			shift
		fi
	done
	deadline=$(deadline_in "$timeout")
	while :; do
		left=()
		for p in "${pids[@]}"; do
			[[ -e /proc/$p ]] && left+=("$p")
		done
		((${#left[@]} == 0)) && return 0
		if past "$deadline"; then
			fail "$(printf 'still there after %ss: %s\n%s\nlog:\n%s' \
				"$timeout" "${left[*]}" \
				"$(for p in "${left[@]}"; do cat "/proc/$p/stat"; echo; done)" \
				"$(cat "$LOG")")"
			return 1
		fi
		sleep 0.02
	done
}

# --- the log -------------------------------------------------------------------

log_fail() {
	fail "$(printf '%s\n--- wpool log (%s) ---\n%s' "$1" "$LOG" "$(cat "$LOG")")"
}

# wait_for_log REGEX [TIMEOUT]: polls $LOG for an extended regex.
wait_for_log() {
	wait_for_log_count "$1" 1 "${2:-$DEFAULT_TIMEOUT}"
}

# wait_for_log_count REGEX N [TIMEOUT]: until N lines match.
wait_for_log_count() {
	local regex=$1 n=$2 timeout=${3:-$DEFAULT_TIMEOUT} deadline
	deadline=$(deadline_in "$timeout")
	while (($(log_count "$regex") < n)); do
		if past "$deadline"; then
			log_fail "timed out after ${timeout}s waiting for $n line(s) matching /$regex/"
			return 1
		fi
		if [[ -n $WPOOL_PID ]] && ! kill -0 "$WPOOL_PID" 2>/dev/null; then
			(($(log_count "$regex") >= n)) && return 0
			log_fail "wpool exited while waiting for $n line(s) matching /$regex/"
			return 1
		fi
		sleep 0.02
	done
}

# log_count REGEX: lines of $LOG that match.
log_count() {
	grep -Ec -- "$1" "$LOG" 2>/dev/null || true
}

# --- HTTP ----------------------------------------------------------------------

# http_get PATH [PORT [HOST]]: one request, the body on stdout.
http_get() {
	local host=${3:-127.0.0.1}
	[[ $host == *:* ]] && host="[$host]"
	curl -sS -g --max-time 5 "http://$host:${2:-$PORT}$1"
}

# http_sample K [PORT]: K requests of /, each on a new connection.
http_sample() {
	local k=$1 port=${2:-$PORT} urls=() i
	for ((i = 0; i < k; i++)); do
		urls+=("http://127.0.0.1:$port/")
	done
	curl -s --max-time 5 -H 'Connection: close' "${urls[@]}"
}

# wait_for_workers N [TIMEOUT]: until wpool has exactly N workers and, when
# PORT is set (and NO_HTTP is not), every one of them has answered GET /.
# Sets WORKERS (pids, ascending) and WORKER_ID[pid].
wait_for_workers() {
	local n=$1 timeout=${2:-$DEFAULT_TIMEOUT} deadline line p ok
	local -a kids
	local -A seen=()
	deadline=$(deadline_in "$timeout")
	while :; do
		mapfile -t kids < <(worker_pids | sort -n)
		if ((${#kids[@]} == n)); then
			if [[ -z $PORT || -n ${NO_HTTP:-} ]]; then
				WORKERS=("${kids[@]}")
				return 0
			fi
			while IFS= read -r line; do
				[[ $line =~ ^pid=([0-9]+)\ id=([^ ]*) ]] &&
					seen[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
			done < <(http_sample 8)
			ok=1
			for p in "${kids[@]}"; do
				[[ -n ${seen[$p]+x} ]] || ok=0
			done
			if ((ok)); then
				WORKERS=("${kids[@]}")
				WORKER_ID=()
				for p in "${kids[@]}"; do
					WORKER_ID[$p]=${seen[$p]}
				done
				return 0
			fi
		fi
		if past "$deadline"; then
			log_fail "$(printf 'timed out after %ss waiting for %s workers; have: %s; answered: %s' \
				"$timeout" "$n" "${kids[*]}" "${!seen[*]}")"
			return 1
		fi
		if ! kill -0 "$WPOOL_PID" 2>/dev/null; then
			log_fail "wpool exited while waiting for $n workers"
			return 1
		fi
		sleep 0.05
	done
}

# pid_of_id ID: the worker pid whose WPOOL_WORKER_ID is ID (after
# wait_for_workers).
pid_of_id() {
	local p
	for p in "${WORKERS[@]}"; do
		[[ ${WORKER_ID[$p]} == "$1" ]] && { echo "$p"; return 0; }
	done
	return 1
}

# sorted_ids: the WPOOL_WORKER_IDs of WORKERS, ascending, space-separated.
sorted_ids() {
	local p
	for p in "${WORKERS[@]}"; do echo "${WORKER_ID[$p]}"; done |
		sort -n | paste -sd' '
}

# worker_env PID NAME: NAME's value in the environment PID started with.
worker_env() {
	tr '\0' '\n' <"/proc/$1/environ" | sed -n "s/^$2=//p"
}

# --- real servers --------------------------------------------------------------

# NGINX_BIN: Debian's nginx, which the tests that run one use (make deps-test).
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)

# nginx_conf DIR PORT [WORKERS [BODY]]: DIR/nginx.conf for an nginx (a
# master and WORKERS worker processes, 2 unless said) on PORT, from the
# compatibility suite's template, that answers every request with BODY, or
# else the pid of the nginx worker that took it.  Fails the test when nginx
# is not installed.
nginx_conf() {
	[[ -x $NGINX_BIN ]] || fail "nginx is not installed: make deps-test"
	mkdir -p "$1"
	sed -e "s|@DIR@|$1|g" -e "s|@PORT@|$2|" -e "s|@WORKERS@|${3:-2}|" \
		-e "s|@BODY@|${4:-\$pid}|" -e "s|@PID@|main|" \
		"$BATS_TEST_DIRNAME/../apps/compat/nginx.conf.in" >"$1/nginx.conf"
}

# --- sockets -------------------------------------------------------------------

# free_tcp_port [HOST]: a port nothing listens on right now.
free_tcp_port() {
	python3 - "${1:-127.0.0.1}" <<'EOF'
import socket, sys
host = sys.argv[1]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind((host, 0))
print(s.getsockname()[1])
EOF
}

# tcp_port_free PORT [HOST]: true when PORT can be bound (without
# SO_REUSEADDR a listener or a lingering socket would make it fail).
tcp_port_free() {
	python3 - "$1" "${2:-127.0.0.1}" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind((sys.argv[2], int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# can_bind_ipv6_loopback: true when [::1]:0 can be bound.
can_bind_ipv6_loopback() {
	python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("::1", 0))' 2>/dev/null
}

# Holders are python servers a test keeps in the background.  They exit on
# their own (after 60 s, or once $BATS_TEST_TMPDIR/holders.stop exists,
# which teardown creates), so that bash has no killed job to report.
HOLDER_LOOP='
import os, socket, sys, time
stop = os.path.join(os.environ["BATS_TEST_TMPDIR"], "holders.stop")
def serve(s, greeting):
    s.settimeout(0.1)
    print("ready", flush=True)
    end = time.time() + 60
    while time.time() < end and not os.path.exists(stop):
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        try:
            c.sendall(greeting)
        except OSError:
            pass
        c.close()
'

# hold_tcp_listener PORT: a background python listening on 127.0.0.1:PORT
# (no SO_REUSEADDR) until the test ends; sets HOLDER_PID.
hold_tcp_listener() {
	BATS_TEST_TMPDIR=$BATS_TEST_TMPDIR python3 -c "$HOLDER_LOOP"'
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
serve(s, b"alive\n")' "$1" >"$BATS_TEST_TMPDIR/holder.out" 2>&1 3>&- &
	HOLDER_PID=$!
	HOLDERS+=("$HOLDER_PID")
	record_pid "$HOLDER_PID"
	wait_for_file_line "$BATS_TEST_TMPDIR/holder.out" '^ready'
}

# hold_unix_listener PATH: a background python serving on PATH (each
# connection gets "alive\n"); sets HOLDER_PID.
hold_unix_listener() {
	BATS_TEST_TMPDIR=$BATS_TEST_TMPDIR python3 -c "$HOLDER_LOOP"'
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
serve(s, b"alive\n")' "$1" >"$BATS_TEST_TMPDIR/holder.out" 2>&1 3>&- &
	HOLDER_PID=$!
	HOLDERS+=("$HOLDER_PID")
	record_pid "$HOLDER_PID"
	wait_for_file_line "$BATS_TEST_TMPDIR/holder.out" '^ready'
}

# stop_holders: ask every holder to exit, and reap it.
stop_holders() {
	((${#HOLDERS[@]})) || return 0
	touch "$BATS_TEST_TMPDIR/holders.stop"
	local p deadline
	deadline=$(deadline_in 3)
	for p in "${HOLDERS[@]}"; do
		while kill -0 "$p" 2>/dev/null && ! past "$deadline"; do
			sleep 0.02
		done
		wait "$p" 2>/dev/null || true
	done
	HOLDERS=()
}

# make_stale_unix_socket PATH: a socket file nobody listens on.
make_stale_unix_socket() {
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
s.close()' "$1"
}

# wait_for_file_line FILE REGEX [TIMEOUT]
wait_for_file_line() {
	local deadline
	deadline=$(deadline_in "${3:-$DEFAULT_TIMEOUT}")
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		if past "$deadline"; then
			fail "$(printf 'timed out waiting for /%s/ in %s:\n%s' \
				"$2" "$1" "$(cat "$1" 2>/dev/null)")"
			return 1
		fi
		sleep 0.02
	done
}

# wait_until TIMEOUT COMMAND...: polls COMMAND until it succeeds.
wait_until() {
	local timeout=$1 deadline
	shift
	deadline=$(deadline_in "$timeout")
	until "$@"; do
		if past "$deadline"; then
			log_fail "timed out after ${timeout}s waiting for: $*"
			return 1
		fi
		sleep 0.02
	done
}

# signal_pending PID SIG: true while SIG sent to the process PID has not
# been taken (by a handler or a signalfd read) yet.
signal_pending() {
	local num mask
	num=$(kill -l "$2") || return 1
	mask=$(awk '/^ShdPnd:/ { print $2 }' "/proc/$1/status" 2>/dev/null) ||
		return 1
	[[ -n $mask ]] || return 1
	(((16#$mask >> (num - 1)) & 1))
}

# send_signal PID SIG: kill -SIG, then wait until PID has taken it, so that
# the next signal sent cannot overtake it (pending standard signals are
# delivered lowest number first, not in the order they were sent).
send_signal() {
	kill -"$2" "$1"
	wait_until 5 eval "! signal_pending $1 $2"
}
