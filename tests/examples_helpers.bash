# examples_helpers.bash: helpers for 30-config.bats and 31-examples.bats,
# on top of helpers.bash (load that first).

# start_exec COMMAND...: like start_wpool, for a command that execs wpool
# itself (a script, systemd-socket-activate): runs it in the background,
# output to $LOG, WPOOL_PID its pid (wpool's, once exec'd).  Waits for
# WAIT_LISTENERS `listening on` lines (default 1).
start_exec() {
	env --default-signal "$@" </dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	wait_for_listeners "${WAIT_LISTENERS:-1}"
}

# distinct_ids N [PORT [TIMEOUT]]: GET / until answers from N distinct
# `id=` values (worker slots) and N distinct `pid=` values have been seen;
# sets SEEN_PIDS and SEEN_IDS (sorted, space-separated).  Each answer must
# start "pid=PID id=ID".
distinct_ids() {
	local n=$1 port=${2:-$PORT} timeout=${3:-$DEFAULT_TIMEOUT} deadline line
	local -A pids=() ids=()
	deadline=$(deadline_in "$timeout")
	while :; do
		while IFS= read -r line; do
			[[ $line =~ ^pid=([0-9]+)\ id=([0-9]+) ]] || continue
			pids[${BASH_REMATCH[1]}]=1
			ids[${BASH_REMATCH[2]}]=1
		done < <(http_sample 8 "$port")
		if ((${#pids[@]} >= n && ${#ids[@]} >= n)); then
			SEEN_PIDS=$(printf '%s\n' "${!pids[@]}" | sort -n | paste -sd' ')
			SEEN_IDS=$(printf '%s\n' "${!ids[@]}" | sort -n | paste -sd' ')
			return 0
		fi
		if past "$deadline"; then
			log_fail "$(printf 'timed out after %ss waiting for answers from %s workers on port %s; pids: %s; ids: %s' \
				"$timeout" "$n" "$port" "${!pids[*]}" "${!ids[*]}")"
			return 1
		fi
		if ! kill -0 "$WPOOL_PID" 2>/dev/null; then
			log_fail "wpool exited while waiting for $n workers to answer"
			return 1
		fi
		sleep 0.05
	done
}

# stop_gracefully [TIMEOUT]: SIGTERM to wpool, waits for it to exit
# (WPOOL_STATUS), and fails unless it exited 0 and every worker that was
# asked to stop exited with status 0 (the example's own SIGTERM handling),
# none killed by a signal.
stop_gracefully() {
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit "${1:-$DEFAULT_TIMEOUT}" || return 1
	((WPOOL_STATUS == 0)) || log_fail "wpool exited with $WPOOL_STATUS"
	grep -Eq 'stopping \(SIGTERM\)' "$LOG" ||
		log_fail "no 'stopping (SIGTERM)' line"
	if grep -E 'worker [0-9]+ \(pid [0-9]+\) (killed by|exited with status [1-9])' "$LOG"; then
		log_fail "a worker did not stop cleanly on TERM"
	fi
	grep -Eq 'worker [0-9]+ \(pid [0-9]+\) exited with status 0' "$LOG" ||
		log_fail "no worker exited with status 0"
}

# conf_error FILE LINE REGEX [ARGS...]: wpool -c FILE ARGS must fail at
# once with exit 64, one line `wpool: error: FILE:LINE: ...` matching REGEX on
# stderr, nothing on stdout, and nothing started (no listener, no
# worker, no control socket).
conf_error() {
	local file=$1 line=$2 regex=$3
	shift 3
	run_wpool -64 -c "$file" "$@"
	assert_equal "$output" ""
	assert_equal "${#stderr_lines[@]}" 1
	[[ ${stderr_lines[0]} == "wpool: error: $file:$line: "* ]] ||
		fail "expected 'wpool: error: $file:$line: ...', got: $stderr"
	[[ ${stderr_lines[0]} =~ $regex ]] ||
		fail "the message does not match /$regex/: $stderr"
	assert_nothing_started
}

# assert_nothing_started: the last run_wpool bound and started nothing.
assert_nothing_started() {
	[[ $stderr$output != *"listening on"* ]] || fail "it bound: $stderr"
	[[ $stderr$output != *" started ("* ]] || fail "it started: $stderr"
	[[ ! -e $WPOOL_CONTROL ]] || fail "it made a control socket"
}
