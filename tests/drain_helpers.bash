# drain_helpers.bash: helpers of the drain and probe tests (tests/bats/80-*,
# 81-*) and bench/80-drain.sh.  Loaded after ../helpers and
# ../control_helpers.

# shellcheck disable=SC2034  # used by the bats files
DRAIN_CLIENT="$REPO_ROOT/tests/bin/drain_client.py"

# metrics_port: the port wpool logged for its --metrics endpoint (MPORT).
metrics_port() {
	wait_for_log 'metrics on http://127\.0\.0\.1:[0-9]+/metrics' >&2
	MPORT=$(sed -nE 's|.*metrics on http://127\.0\.0\.1:([0-9]+)/metrics.*|\1|p' "$LOG" | head -1)
}

# probe PATH: "CODE BODY" of GET PATH on the metrics port.
probe() {
	local out
	out=$(curl -sS --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$MPORT$1") || return 1
	printf '%s %s\n' "${out##*$'\n'}" "${out%$'\n'*}"
}

# no_bad_transitions: the -v log has no move the state table refused
# (the teardown's check needs a pool still running; these have stopped).
no_bad_transitions() {
	! grep -q 'which the state table does not allow' "$LOG" ||
		log_fail "a transition the lifecycle table refuses"
}

# queue_len PORT: connections waiting in the accept queue of the listener
# on 127.0.0.1:PORT (ss's Recv-Q of a listening socket).
queue_len() {
	ss -Hltn "sport = :$1" | awk '{ print $2; exit }'
}

# queue_clients N PORT OUTFILE: N clients that each connect, send GET /
# and write "OK" or "FAIL <curl exit>" to OUTFILE.N; their pids in QPIDS.
queue_clients() {
	local n=$1 port=$2 out=$3 i
	QPIDS=()
	for ((i = 0; i < n; i++)); do
		(
			if curl -sS --max-time 10 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
				echo OK
			else
				echo "FAIL $?"
			fi >"$out.$i"
		) 3>&- &
		QPIDS+=($!)
	done
}
