# balance_helpers.bash: what tests/bats/4*.bats (balance and inetd modes)
# add to helpers.bash: the test worker and client, status queries, and
# keep-alive connections held by the test itself (bash /dev/tcp fds), so a
# test decides exactly when each one closes.  Load after ../helpers.

BAL_WORKER="$REPO_ROOT/tests/bin/bal_worker"
BAL_CLIENT="$REPO_ROOT/tests/bin/bal_client.py"
EXAMPLE_C="$REPO_ROOT/examples/balance_worker"
EXAMPLE_PY="$REPO_ROOT/examples/balance_worker.py"

# The system python: the one on PATH may be a slow pyenv shim.
if [[ -x /usr/bin/python3 ]]; then
	PY=/usr/bin/python3
else
	PY=$(command -v python3)
fi

bal_setup() {
	common_setup
	[[ -x $BAL_WORKER ]] || fail "no bal_worker at $BAL_WORKER (run: make test-bins)"
	HELD=()
}

bal_teardown() {
	local fd
	for fd in "${HELD[@]}"; do
		exec {fd}>&- 2>/dev/null
	done
	common_teardown
}

setup() {
	bal_setup
}

teardown() {
	bal_teardown
}

# client ARGS...: tests/bin/bal_client.py (see its docstring), with fd 3
# and the held connections closed (a copy in a background client would
# keep a connection open after unhold).
client() {
	(
		local fd
		for fd in "${HELD[@]}"; do
			exec {fd}>&-
		done
		exec "$PY" "$BAL_CLIENT" "$@" 3>&-
	)
}

# client_bg OUT ARGS...: the same in the background, stdout to OUT; sets
# BG (its pid, recorded for teardown).  Not `client ... &`: the shell
# running the function in the background would keep the held fds.
client_bg() {
	local out=$1
	shift
	(
		for fd in "${HELD[@]}"; do
			exec {fd}>&-
		done
		exec "$PY" "$BAL_CLIENT" "$@" >"$out" 3>&-
	) &
	BG=$!
	record_pid "$BG"
}

# ids_of: the id= field of each body line on stdin, one a line.
ids_of() {
	sed -nE 's/.*(^| )id=([0-9]+).*/\2/p'
}

# pids_of: the pid= field of each body line on stdin.
pids_of() {
	sed -nE 's/^pid=([0-9]+) .*/\1/p'
}

# --- status ----------------------------------------------------------------

# st EXPR: a python expression over `wpool status --json`: `d` is the
# object, `W` the live workers by id (the newest one of a slot wins), `P`
# every worker by pid.  Lists print one item a line; fails when status
# does not answer.
st() {
	local json
	json=$("$WPOOL" status --json 2>/dev/null 3>&-) || return 1
	"$PY" -c '
import json, sys
d = json.loads(sys.argv[2])
W = {}
P = {}
for w in d.get("workers", []):
    if w.get("pid"):
        P[w["pid"]] = w
        if not w.get("draining"):
            W[w["id"]] = w
r = eval(sys.argv[1])
if isinstance(r, list):
    for x in r:
        print(x)
elif r is not None:
    print(r)' "$1" "$json"
}

# wait_st TIMEOUT EXPR: until EXPR is True.
wait_st() {
	local timeout=$1 expr=$2 deadline
	deadline=$(deadline_in "$timeout")
	until [[ $(st "$expr" 2>/dev/null) == True ]]; do
		if past "$deadline"; then
			log_fail "$(printf 'timed out after %ss waiting for status: %s\nstatus: %s' \
				"$timeout" "$expr" "$("$WPOOL" status --json 2>&1 3>&-)")"
			return 1
		fi
		sleep 0.05
	done
}

# wait_ready N: until N workers are ready (or busy) and alive.
wait_ready() {
	wait_st "${2:-$DEFAULT_TIMEOUT}" "d['ready'] == $1 and d['alive'] == $1"
}

# pid_of_slot ID: the pid of the live worker in slot ID.
pid_of_slot() {
	st "W[$1]['pid']"
}

# --- held connections ----------------------------------------------------------

# hold PATH: opens a keep-alive connection to $PORT, sends GET PATH and
# reads the answer; sets CONN (the fd, kept open until unhold or the end
# of the test) and BODY (the answer's one line).
hold() {
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 1
	HELD+=("$fd")
	CONN=$fd
	ask "$fd" "${1:-/}"
}

# ask FD PATH: one more request on a held connection; sets BODY.
ask() {
	local fd=$1 line
	BODY=
	printf 'GET %s HTTP/1.1\r\nHost: t\r\n\r\n' "$2" 2>/dev/null 1>&"$fd" ||
		return 1
	read -r -t 5 line <&"$fd" || return 1
	[[ $line == "HTTP/1.1 200"* ]] || return 1
	while read -r -t 5 line <&"$fd"; do
		line=${line%$'\r'}
		[[ -z $line ]] && break
	done
	read -r -t 5 BODY <&"$fd"
}

# unhold FD: closes a held connection.
unhold() {
	local fd=$1 i
	exec {fd}>&-
	for i in "${!HELD[@]}"; do
		[[ ${HELD[i]} == "$1" ]] && unset 'HELD[i]'
	done
	return 0
}

# eof_within SEC FD: true when the peer closes FD (EOF or reset) within SEC.
eof_within() {
	local line rc
	read -r -t "$1" line <&"$2"
	rc=$?
	# read's status is > 128 on a timeout, 1 at EOF (or an error).
	((rc == 1)) || { [[ $rc == 0 ]] && eof_within "$1" "$2"; }
}
