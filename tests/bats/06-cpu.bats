#!/usr/bin/env bats
# -n auto: the CPUs in the affinity mask, limited by the cgroup CPU quota
# (v2 cpu.max along the cgroup path, tightest wins; v1 CFS quota), rounded
# up; --fallback-cpus when nothing can be read.  The fixtures under
# tests/fixtures/cgroup-* are fake /sys and /proc trees; with
# WPOOL_PROCFS_ROOT set, the affinity mask is the fixture's
# self/status Cpus_allowed_list (0-7 = 8 CPUs unless said otherwise).

load ../helpers

CGROUP_DIR=

teardown() {
	common_teardown
	if [[ -n $CGROUP_DIR && -d $CGROUP_DIR ]]; then
		local deadline
		deadline=$(deadline_in 5)
		# Empty once the last worker is reaped.
		until rmdir "$CGROUP_DIR" 2>/dev/null || past "$deadline"; do
			sleep 0.05
		done
	fi
}

# auto_workers_with FIXTURE [ARGS...]: runs -n auto with the fixture's roots
# and sets AUTO_N to the number of workers it started.
auto_workers_with() {
	local fx=$FIXTURES/$1
	shift
	[[ -d $fx ]] || fail "no fixture $fx"
	export WPOOL_SYSFS_ROOT=$fx/sys WPOOL_PROCFS_ROOT=$fx/proc
	auto_workers "$@"
}

# auto_workers [ARGS...]: wpool -n auto ARGS -- sleep 30; sets AUTO_N from
# the log's "N workers (...)" line and checks that many are running.
auto_workers() {
	start_wpool -n auto "$@" -- sleep 30
	wait_for_log '^wpool: [0-9]+ workers? \('
	AUTO_N=$(sed -nE 's/^wpool: ([0-9]+) workers? \(.*/\1/p' "$LOG" | head -1)
	wait_for_workers "$AUTO_N"
}

@test "cgroup v2 cpu.max 150000 100000 (1.5 CPUs) -> 2 workers" {
	auto_workers_with cgroup-v2-quota
	assert_equal "$AUTO_N" 2
	grep -q 'cgroup' "$LOG" || log_fail "the log does not say the count came from the cgroup"
}

@test "cgroup v2 cpu.max max -> the affinity mask's count" {
	auto_workers_with cgroup-v2-max
	assert_equal "$AUTO_N" 8
}

@test "cgroup v2 nested: a tighter parent limits the leaf" {
	auto_workers_with cgroup-v2-nested-parent
	assert_equal "$AUTO_N" 1
}

@test "cgroup v2 nested: a tighter leaf (2.5 CPUs) wins over its parent -> 3" {
	auto_workers_with cgroup-v2-nested-leaf
	assert_equal "$AUTO_N" 3
}

@test "cgroup v2 quota above the affinity mask: the mask wins" {
	auto_workers_with cgroup-v2-affinity
	assert_equal "$AUTO_N" 2
}

@test "cgroup v1 cpu,cpuacct quota 50000 period 100000 -> 1 worker" {
	auto_workers_with cgroup-v1-quota
	assert_equal "$AUTO_N" 1
}

@test "cgroup v1 separate cpu hierarchy quota 300000 period 100000 -> 3 workers" {
	auto_workers_with cgroup-v1-cpu
	assert_equal "$AUTO_N" 3
}

@test "cgroup v1 quota -1 (unlimited) -> the affinity mask's count" {
	auto_workers_with cgroup-v1-unlimited
	assert_equal "$AUTO_N" 8
}

@test "nothing readable: --fallback-cpus 3 workers, with a warning" {
	mkdir -p "$BATS_TEST_TMPDIR/empty"
	export WPOOL_SYSFS_ROOT=$BATS_TEST_TMPDIR/empty WPOOL_PROCFS_ROOT=$BATS_TEST_TMPDIR/empty
	auto_workers --fallback-cpus 3
	assert_equal "$AUTO_N" 3
	grep -Eq '^wpool: warning: .*fallback' "$LOG" || log_fail "no warning about the fallback"
}

@test "nothing readable, no --fallback-cpus: 4 workers" {
	mkdir -p "$BATS_TEST_TMPDIR/empty"
	export WPOOL_SYSFS_ROOT=$BATS_TEST_TMPDIR/empty WPOOL_PROCFS_ROOT=$BATS_TEST_TMPDIR/empty
	auto_workers
	assert_equal "$AUTO_N" 4
}

@test "taskset -c 0 -> 1 worker" {
	WPOOL_PREFIX=(taskset -c 0)
	auto_workers
	assert_equal "$AUTO_N" 1
	grep -q 'affinity' "$LOG" || log_fail "the log does not name the affinity mask"
}

@test "-n auto is the default" {
	WPOOL_PREFIX=(taskset -c 0)
	start_wpool -- sleep 30
	wait_for_log '^wpool: 1 worker'
	wait_for_workers 1
}

@test "a real cgroup v1 CPU quota of half a CPU -> 1 worker" {
	(($(nproc) >= 2)) || skip "machine lacks a second CPU (the quota would not show)"
	local base=/sys/fs/cgroup/cpu
	[[ -f /sys/fs/cgroup/cgroup.controllers ]] &&
		base=/sys/fs/cgroup
	CGROUP_DIR=$base/wpool-test-$$-$BATS_TEST_NUMBER
	if ! mkdir "$CGROUP_DIR" 2>/dev/null; then
		CGROUP_DIR=
		skip "machine lacks a writable cpu cgroup"
	fi
	if [[ -f $CGROUP_DIR/cpu.max ]]; then
		echo "50000 100000" >"$CGROUP_DIR/cpu.max" ||
			skip "machine lacks a writable cpu cgroup"
	else
		{ echo 100000 >"$CGROUP_DIR/cpu.cfs_period_us" &&
			echo 50000 >"$CGROUP_DIR/cpu.cfs_quota_us"; } ||
			skip "machine lacks a writable cpu cgroup"
	fi
	# A shell moves itself into the cgroup, then becomes wpool.
	WPOOL_PREFIX=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CGROUP_DIR")
	auto_workers
	assert_equal "$AUTO_N" 1
	grep -q 'cgroup' "$LOG" || log_fail "the log does not say the count came from the cgroup"
	stop_wpool
}
