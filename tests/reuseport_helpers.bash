# reuseport_helpers.bash: what tests/bats/2*.bats (reuseport, UDP, adopted
# sockets) add to helpers.bash: a load client running in the background,
# listening sockets as ss(8) and /proc see them, and a "stop, let
# connections queue, then kill -9" step that makes a dead worker's queue
# non-empty on purpose.  Load after ../helpers.

RP_LOAD="$REPO_ROOT/tests/bin/rp_load"
RP_SRV="$REPO_ROOT/tests/bin/rp_srv"

rp_setup() {
	common_setup
	[[ -x $RP_LOAD ]] || fail "no rp_load at $RP_LOAD (run: make test-bins)"
	[[ -x $RP_SRV ]] || fail "no rp_srv at $RP_SRV (run: make test-bins)"
	LOAD_PID=
	LOAD_OUT="$BATS_TEST_TMPDIR/load.out"
	LOAD_ERR="$BATS_TEST_TMPDIR/load.err"
}

rp_teardown() {
	if [[ -n ${LOAD_PID:-} ]] && kill -0 "$LOAD_PID" 2>/dev/null; then
		kill -TERM "$LOAD_PID" 2>/dev/null
		wait "$LOAD_PID" 2>/dev/null
	fi
	# A worker left stopped by a failed test must be able to die.
	local p
	if [[ -n ${WPOOL_PID:-} ]]; then
		for p in $(children_of "$WPOOL_PID"); do
			kill -CONT "$p" 2>/dev/null
		done
	fi
	common_teardown
}

# --- json --------------------------------------------------------------------

# status_json: `wpool status --json` of this test's pool.
status_json() {
	"$WPOOL" status --json 3>&-
}

# jq_py EXPR: evaluates a python expression over the JSON object on stdin,
# bound to `j`; prints the result (lists one item a line).
jq_py() {
	python3 -c '
import json, sys
j = json.load(sys.stdin)
r = eval(sys.argv[1])
if isinstance(r, list):
    for x in r:
        print(x)
elif r is not None:
    print(r)' "$1"
}

# --- sockets -------------------------------------------------------------------

# sock_inode PID FD: the socket inode behind /proc/PID/fd/FD (socket:[N] -> N).
sock_inode() {
	local t
	t=$(readlink "/proc/$1/fd/$2" 2>/dev/null) || return 1
	[[ $t =~ ^socket:\[([0-9]+)\]$ ]] || return 1
	echo "${BASH_REMATCH[1]}"
}

# tcp_listen_lines PORT: `ss -ltnpH` lines of sockets listening on PORT.
tcp_listen_lines() {
	ss -ltnpH "sport = :$1" 2>/dev/null
}

# udp_lines PORT: `ss -lunpH` lines of UDP sockets bound to PORT.
udp_lines() {
	ss -lunpH "sport = :$1" 2>/dev/null
}

# count_tcp_listeners PORT
count_tcp_listeners() {
	tcp_listen_lines "$1" | grep -c . || true
}

# queue_of_pid PID PORT: Recv-Q (the accept queue) of the socket listening
# on PORT that PID holds, as ss reports it.
queue_of_pid() {
	tcp_listen_lines "$2" | awk -v p="pid=$1," '
		index($0, p) { print $2; found = 1; exit }
		END { if (!found) exit 1 }'
}

# conn_fds PID NLISTENERS: how many sockets PID holds besides its
# listeners at 3 .. 3+NLISTENERS-1, i.e. connections it has accepted.
conn_fds() {
	local n=0 fd t last=$((3 + ${2:-1} - 1))
	for fd in /proc/"$1"/fd/*; do
		fd=${fd##*/}
		((fd >= 3 && fd <= last)) && continue
		t=$(readlink "/proc/$1/fd/$fd" 2>/dev/null) || continue
		[[ $t == socket:* ]] && n=$((n + 1))
	done
	echo "$n"
}

# stop_queue_kill PID PORT [MIN_QUEUE]: stops PID (SIGSTOP), waits (at
# most 1 s) until at least MIN_QUEUE (default 1) connections wait in its
# socket's accept queue, makes sure it holds no accepted connection (a
# connection a worker accepted dies with it, whatever the supervisor does:
# that is not what is measured), then kills it with KILL.  Prints the
# queue length at the moment of the kill.  The listener of the stopped
# process must be its fd 3 (its only one).
stop_queue_kill() {
	local pid=$1 port=$2 min=${3:-1} q=0 tries deadline
	for ((tries = 0; tries < 50; tries++)); do
		kill -STOP "$pid" 2>/dev/null || { echo 0; return 1; }
		# Stopped means stopped: wait for the state to show it.
		deadline=$(deadline_in 1)
		until [[ $(proc_state "$pid") == T ]] || past "$deadline"; do
			sleep 0.001
		done
		(($(conn_fds "$pid" 1) == 0)) && break
		kill -CONT "$pid"
		sleep 0.002
	done
	deadline=$(deadline_in 1)
	while :; do
		q=$(queue_of_pid "$pid" "$port") || q=0
		((q >= min)) && break
		past "$deadline" && break
		sleep 0.005
	done
	kill -KILL "$pid"
	echo "$q"
}

# --- load ------------------------------------------------------------------------

# start_load RP_LOAD_ARGS...: rp_load in the background against 127.0.0.1
# (its -p must be given), stdout to $LOAD_OUT, failures to $LOAD_ERR.
start_load() {
	"$RP_LOAD" -v "$@" >"$LOAD_OUT" 2>"$LOAD_ERR" 3>&- &
	LOAD_PID=$!
	record_pid "$LOAD_PID"
}

# wait_load [TIMEOUT]: waits for the load client to finish; LOAD holds its
# result line, and load_field NAME reads one of its fields.
wait_load() {
	local deadline
	deadline=$(deadline_in "${1:-30}")
	while kill -0 "$LOAD_PID" 2>/dev/null; do
		if past "$deadline"; then
			kill -TERM "$LOAD_PID"
			break
		fi
		sleep 0.05
	done
	wait "$LOAD_PID" 2>/dev/null
	LOAD_PID=
	LOAD=$(cat "$LOAD_OUT")
}

load_field() {
	[[ " $LOAD " =~ \ $1=([^ ]*)\  ]] && echo "${BASH_REMATCH[1]}"
}

# assert_load_clean [MIN_OK]: every connection of the load got a complete
# answer (and at least MIN_OK did).
assert_load_clean() {
	local min=${1:-1} k bad=
	[[ -n $LOAD ]] || log_fail "the load client printed nothing: $(cat "$LOAD_ERR")"
	for k in reset refused timeout closed other; do
		[[ $(load_field "$k") == 0 ]] || bad+=" $k=$(load_field "$k")"
	done
	if [[ -n $bad ]]; then
		log_fail "$(printf 'failed connections:%s\nload: %s\nfailures (ms since start):\n%s' \
			"$bad" "$LOAD" "$(head -20 "$LOAD_ERR")")"
		return 1
	fi
	(($(load_field ok) >= min)) ||
		log_fail "only $(load_field ok) connections answered (expected >= $min): $LOAD"
}

# ready_count: the pool's ready workers, from status.
ready_count() {
	status_json | jq_py 'j["ready"]'
}
