# sdnotify_helpers.bash: wpool under a service manager, for
# tests/bats/85-sdnotify.bats and 86-fdstore.bats.  The manager is
# tests/sdmanager.py, written from systemd's documented protocol: it starts
# wpool with NOTIFY_SOCKET, logs every line wpool sends to $EVENTS as
# "MONO_USEC KIND TEXT", holds the fds wpool stores, and on SIGUSR1 starts
# wpool again with them as LISTEN_FDS.  Loaded after ../control_helpers.

SDMANAGER="$BATS_TEST_DIRNAME/../sdmanager.py"

sdnotify_setup() {
	control_setup
	EVENTS="$BATS_TEST_TMPDIR/events"
	NSOCK="$BATS_TEST_TMPDIR/manager.sock"
	: >"$EVENTS"
	MGR_PID=
}

sdnotify_teardown() {
	control_teardown
	if [[ -n $MGR_PID ]]; then
		kill -TERM "$MGR_PID" 2>/dev/null
		wait "$MGR_PID" 2>/dev/null
	fi
	return 0
}

setup() {
	sdnotify_setup
}

teardown() {
	sdnotify_teardown
}

# start_managed [NAME=VALUE...] -- WPOOL-ARGS...: the manager starts wpool
# (NAME=VALUE in its environment); sets MGR_PID and WPOOL_PID.
start_managed() {
	local -a env=()
	while [[ $1 != -- ]]; do
		env+=("$1")
		shift
	done
	shift
	without_fd3 "$PY" "$SDMANAGER" "$NSOCK" "$EVENTS" "$LOG" "${env[@]}" \
		-- "$WPOOL" "$@" </dev/null &
	MGR_PID=$!
	wait_event '^PID ' 1
	WPOOL_PID=$(last_wpool_pid)
}

# last_wpool_pid: the pid the manager started last.
last_wpool_pid() {
	awk '$2 == "PID" { p = $3 } END { print p }' "$EVENTS"
}

# restart_managed: the manager starts wpool again, with what it stored.
restart_managed() {
	local n
	n=$(ev_count '^PID ')
	kill -USR1 "$MGR_PID"
	wait_event '^PID ' $((n + 1))
	WPOOL_PID=$(last_wpool_pid)
}

# events: the events without their times, "KIND TEXT" a line.
events() {
	cut -d' ' -f2- "$EVENTS"
}

ev_count() {
	events | grep -cE -- "$1"
}

# wait_event REGEX [N] [TIMEOUT]: until N events match.
wait_event() {
	local re=$1 n=${2:-1} timeout=${3:-$DEFAULT_TIMEOUT} deadline
	deadline=$(deadline_in "$timeout")
	while (($(ev_count "$re") < n)); do
		if past "$deadline"; then
			fail "timed out after ${timeout}s waiting for $n event(s) /$re/; events:
$(events)
log:
$(cat "$LOG")"
			return 1
		fi
		sleep 0.02
	done
}
