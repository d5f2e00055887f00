#!/usr/bin/env bats
# --cpu-affinity: worker i is pinned, before exec, to the (i mod n)-th of
# the n CPUs in the master's own affinity mask, and gets WPOOL_CPU; its
# slot keeps that CPU across restarts and reloads.  The master itself is
# started under `taskset -c` with two CPUs (A and B: the first two this
# test may use) or one (B), so that the checks work on a 2-CPU machine.
# What a worker is pinned to is read back from /proc/PID/status
# (Cpus_allowed_list) and its environment, never from wpool's own log.

load ../helpers
load ../control_helpers

setup() {
	control_setup
	local -a cpus
	mapfile -t cpus < <(mask_cpus "$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)")
	((${#cpus[@]} >= 2)) ||
		fail "these tests need 2 usable CPUs; this process may use: ${cpus[*]}"
	A=${cpus[0]}
	B=${cpus[1]}
	EXTRA_PREFIX=()
}

teardown() {
	control_teardown
}

# mask_cpus LIST: "0-2,5" -> 0 1 2 5, one a line.
mask_cpus() {
	local part
	local -a parts
	IFS=, read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		if [[ $part == *-* ]]; then
			seq "${part%-*}" "${part#*-}"
		else
			echo "$part"
		fi
	done
}

# allowed PID: the CPUs PID may run on, as /proc shows them.
allowed() {
	awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$1/status"
}

# pins: "ID:CPU:WPOOL_CPU" for each worker, by slot id, space-separated;
# CPU is the whole Cpus_allowed_list, WPOOL_CPU "-" when unset.
pins() {
	local p id cpu
	for p in $(worker_pids); do
		id=$(worker_env "$p" WPOOL_WORKER_ID)
		cpu=$(tr '\0' '\n' <"/proc/$p/environ" | grep -c '^WPOOL_CPU=')
		if ((cpu > 0)); then
			cpu=$(worker_env "$p" WPOOL_CPU)
		else
			cpu=-
		fi
		echo "$id:$(allowed "$p"):$cpu"
	done | sort -n | paste -sd' '
}

# assert_pins EXPECTED: pins, polled until it matches (a replacement may
# be between fork and exec), then checked.
assert_pins() {
	local deadline got
	deadline=$(deadline_in 10)
	while got=$(pins); [[ $got != "$1" ]]; do
		past "$deadline" && break
		sleep 0.05
	done
	[[ $got == "$1" ]] || log_fail "pins: expected '$1', got '$got'"
}

# start_pinned MASK ARGS...: wpool ARGS under taskset -c MASK, workers
# `sleep 60` (no listener: exec is their readiness).
start_pinned() {
	local mask=$1
	shift
	WPOOL_PREFIX=(taskset -c "$mask" "${EXTRA_PREFIX[@]}")
	start_wpool -s "$CTL" "$@" -- sleep 60
}

@test "--cpu-affinity: 3 workers on 2 CPUs are pinned A, B, A (wrapping) and told WPOOL_CPU; the master keeps its mask" {
	start_pinned "$A,$B" -n 3 --cpu-affinity
	wait_for_workers 3
	assert_pins "0:$A:$A 1:$B:$B 2:$A:$A"
	# The master itself is not pinned: it still has both.
	local m
	m=$(mask_cpus "$(allowed "$WPOOL_PID")" | paste -sd' ')
	assert_equal "$m" "$A $B"
	wait_for_log "worker 1 started \(pid [0-9]+, generation 0\) on CPU $B\$"
}

@test "--cpu-affinity under a one-CPU master (taskset -c B): every worker on B" {
	start_pinned "$B" -n 2 --cpu-affinity
	wait_for_workers 2
	assert_pins "0:$B:$B 1:$B:$B"
}

@test "without --cpu-affinity nothing changes: workers inherit the master's mask, and a WPOOL_CPU from outside does not leak" {
	WPOOL_CPU=7 start_pinned "$A,$B" -n 2
	wait_for_workers 2
	local all
	all=$(allowed "$WPOOL_PID")
	assert_pins "0:$all:- 1:$all:-"
	run grep -c 'on CPU' "$LOG"
	assert_output 0
}

@test "--cpu-affinity: a worker killed (-9) and one restarted (wpool restart) come back on their slot's CPU" {
	start_pinned "$A,$B" -n 2 --cpu-affinity
	wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
	local old1 old0
	old1=$(worker_pid_of 1)
	kill -KILL "$old1"
	wait_status 10 "[.workers[] | select(.id == 1 and .state == \"ready\" and .pid != $old1)] | length == 1"
	assert_pins "0:$A:$A 1:$B:$B"
	old0=$(worker_pid_of 0)
	run_wp restart 0
	assert_success
	wait_status 10 "[.workers[] | select(.id == 0 and .state == \"ready\" and .pid != $old0)] | length == 1"
	assert_pins "0:$A:$A 1:$B:$B"
	[[ $(worker_pid_of 0) != "$old0" && $(worker_pid_of 1) != "$old1" ]] ||
		fail "the workers were not replaced"
}

@test "--cpu-affinity: a reload gives each slot's new worker the same CPU" {
	start_pinned "$A,$B" -n 2 --cpu-affinity
	wait_for_workers 2
	local old=" $(worker_pids | paste -sd' ') "
	run_wp reload
	assert_success
	wait_status 10 '.generation == 1 and .reload.state == "done"'
	assert_pins "0:$A:$A 1:$B:$B"
	local p
	for p in $(worker_pids); do
		[[ $old != *" $p "* ]] || fail "pid $p survived the reload"
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 1
	done
}

@test "--cpu-affinity with -n auto: one worker per CPU of the mask, each on its own" {
	start_pinned "$A,$B" -n auto --cpu-affinity
	wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
	stop_wpool
	start_pinned "$B" -n auto --cpu-affinity
	wait_for_workers 1
	assert_pins "0:$B:$B"
}

@test "--cpu-affinity follows a mask changed under the running master: a new worker goes to a CPU it still has" {
	start_pinned "$A,$B" -n 2 --cpu-affinity
	wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
	taskset -p -c "$B" "$WPOOL_PID" >/dev/null
	local old0
	old0=$(worker_pid_of 0)
	kill -KILL "$old0"
	# Slot 0 is now the 0th of the one CPU left; slot 1 keeps B.
	wait_status 10 "[.workers[] | select(.id == 0 and .state == \"ready\" and .pid != $old0)] | length == 1"
	assert_pins "0:$B:$B 1:$B:$B"
}

@test "--cpu-affinity in reuseport and balance modes" {
	start_pinned "$A,$B" -m reuseport -b 127.0.0.1:0 -n 2 --cpu-affinity
	NO_HTTP=1 wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
	stop_wpool
	: >"$LOG"
	start_pinned "$A,$B" -m balance -b 127.0.0.1:0 -n 2 --cpu-affinity
	NO_HTTP=1 wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
}

@test "--cpu-affinity is refused in inetd mode (exit 64, naming the option and the modes it works in)" {
	run_wpool -64 -m inetd -b 127.0.0.1:0 --cpu-affinity -- cat
	assert_output ''
	[[ $stderr == *"--cpu-affinity: only in shared, reuseport or balance modes"* ]] ||
		fail "stderr: $stderr"
}

@test "cpu-affinity = yes in the config file; wpool check shows it" {
	cat >pool.conf <<EOF
[pool]
workers = 2
cpu-affinity = yes
command = sleep 60
EOF
	run_wpool check -c pool.conf
	assert_success
	assert_output --partial 'cpu-affinity = true'
	WPOOL_PREFIX=(taskset -c "$A,$B")
	start_wpool -s "$CTL" -c pool.conf
	wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
}

@test "--cpu-affinity with -n auto under a cgroup quota of 0.5 CPU: one worker, on the mask's first CPU" {
	# The fixture bounds the count; the pin comes from the real mask.
	export WPOOL_SYSFS_ROOT=$FIXTURES/cgroup-v1-quota/sys WPOOL_PROCFS_ROOT=$FIXTURES/cgroup-v1-quota/proc
	start_pinned "$A,$B" -n auto --cpu-affinity
	wait_for_log '^wpool: 1 worker \(.*cgroup v1'
	wait_for_workers 1
	assert_pins "0:$A:$A"
}

@test "--cpu-affinity with -u 65534:65534: the pin holds for a worker of another user" {
	(($(id -u) == 0)) || fail "needs root to run workers as another user"
	start_pinned "$A,$B" -n 2 -u 65534:65534 --cpu-affinity
	wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
	local p
	for p in $(worker_pids); do
		assert_equal "$(stat -c %u "/proc/$p")" 65534
	done
}

@test "--cpu-affinity: a worker whose pin fails is reported as such and retried like any start failure, and its successor is pinned" {
	local shim=$REPO_ROOT/tests/shim/pinfail.so trigger=$BATS_TEST_TMPDIR/fail-next-pin
	[[ -f $shim ]] || fail "no $shim (run: make test-bins)"
	# Under ASan (make SANITIZE=1) the shim comes first: say that is fine.
	EXTRA_PREFIX=(env LD_PRELOAD="$shim" PINFAIL_TRIGGER="$trigger"
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
	start_pinned "$A,$B" -n 2 --cpu-affinity
	wait_for_workers 2
	assert_pins "0:$A:$A 1:$B:$B"
	local old1
	old1=$(worker_pid_of 1)
	: >"$trigger"
	kill -KILL "$old1"
	wait_for_log "worker 1 \(pid [0-9]+\): cannot pin to its CPU 'sleep': Invalid argument; restarting"
	[[ ! -e $trigger ]] || log_fail "the pin did not fail"
	wait_status 10 "[.workers[] | select(.id == 1 and .state == \"ready\" and .pid != $old1)] | length == 1"
	assert_pins "0:$A:$A 1:$B:$B"
}
