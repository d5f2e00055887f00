# leftovers_helpers.bash: for 70-leftovers.bats, what a worker leaves
# behind when it dies while the pool runs.  Loaded after helpers.bash.

# below_wpool: every process below wpool, one pid a line (recorded, so
# that teardown kills what a failing test left).
below_wpool() {
	local -a todo=("$WPOOL_PID") kids
	local p
	while ((${#todo[@]})); do
		p=${todo[0]}
		todo=("${todo[@]:1}")
		mapfile -t kids < <(children_of "$p")
		((${#kids[@]})) || continue
		record_pid "${kids[@]}"
		printf '%s\n' "${kids[@]}"
		todo+=("${kids[@]}")
	done
}

# exe_below_wpool EXE: the processes below wpool running EXE.
exe_below_wpool() {
	local p
	for p in $(below_wpool); do
		[[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$1" ]] && echo "$p"
	done
}

# wait_count N COMMAND...: until COMMAND prints N lines; sets GOT to them.
wait_count() {
	local n=$1 deadline
	shift
	deadline=$(deadline_in 15)
	while mapfile -t GOT < <("$@"); ((${#GOT[@]} != n)); do
		past "$deadline" &&
			log_fail "$* gave ${#GOT[@]} lines, not $n: ${GOT[*]}"
		sleep 0.05
	done
}

# answers_only_from K PORT PIDS...: K requests on new connections, each
# answered by one of PIDS (testsrv says pid=N; the nginx of
# nginx_conf says N).
answers_only_from() {
	local k=$1 port=$2 line pid seen=0
	shift 2
	local -A ok=()
	for pid in "$@"; do ok[$pid]=1; done
	while IFS= read -r line; do
		[[ $line =~ ^(pid=)?([0-9]+) ]] || continue
		pid=${BASH_REMATCH[2]}
		seen=$((seen + 1))
		[[ -n ${ok[$pid]+x} ]] ||
			log_fail "answered by pid $pid, which is none of: $*"
	done < <(http_sample "$k" "$port")
	((seen == k)) || log_fail "only $seen of $k requests were answered"
}

# gone_within SECS PIDS...: each of PIDS is gone (reaped too) before SECS.
gone_within() {
	local secs=$1
	shift
	wait_gone "$@" --timeout "$secs"
}
