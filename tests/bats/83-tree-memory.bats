#!/usr/bin/env bats
# The memory of a whole worker: a worker is often a master of its own
# (gunicorn, nginx, puma), so status, /metrics and --max-memory count its
# process tree, by PSS (smaps_rollup: a page its processes share counts
# once) where wpool may read it, else by RSS summed, and say which.  And
# -n auto bounded by memory (--memory-per-worker): at most the cgroup's limit
# (or MemTotal) / the budget, the log saying which bound won; the cgroup
# files are fixtures under $WPOOL_SYSFS_ROOT and $WPOOL_PROCFS_ROOT (test
# hooks that cpu.c reads its paths below).

load ../helpers
load ../control_helpers
load ../private_helpers

teardown() {
	control_teardown
	reachable_cleanup
}

MiB=$((1 << 20))

# tree_py: a worker that is a master of its own.  It touches SHARED MiB,
# then forks KIDS children that each touch KID MiB of their own (the
# shared pages stay shared, copy-on-write); with "nodump", its children
# make themselves non-dumpable, so that a master that is not root cannot
# read their smaps_rollup.  A child that has touched its memory makes
# kid-ready.PID in the working directory.
tree_py() {
	make_script tree.py <<'PY' >/dev/null
#!/usr/bin/python3
import ctypes, os, sys, time
shared, kids, kid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
nodump = len(sys.argv) > 4
def touch(mb):
    b = bytearray(mb << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return b
keep = touch(shared)
for _ in range(kids):
    if os.fork() == 0:
        if nodump:
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)   # PR_SET_DUMPABLE
        mine = touch(kid)
        open("kid-ready.%d" % os.getpid(), "w").close()
        while True:
            time.sleep(1)
while True:
    time.sleep(1)
PY
}

# rss_sum PID...: the sum of their VmRSS, in bytes.
rss_sum() {
	local p t=0 kb
	for p in "$@"; do
		kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")
		t=$((t + ${kb:-0} * 1024))
	done
	echo "$t"
}

# tree_pids PID: PID and its descendants.
tree_pids() {
	local p
	echo "$1"
	for p in $(children_of "$1"); do
		tree_pids "$p"
	done
}

@test "status, --json and /metrics show the worker's whole tree by PSS; a shared page counts once" {
	tree_py
	start_wpool -s "$CTL" -n 1 --ready exec --metrics 127.0.0.1:0 -- \
		./tree.py 32 3 16
	# 32 MiB shared by 4 processes, 3 x 16 MiB of their own: ~80 MiB of
	# PSS, python's own aside; RSS summed would count the 32 MiB 4 times.
	wait_until 15 eval '(($(compgen -G "kid-ready.*" | wc -l) == 3))'
	wait_status 15 ".workers[0].mem_procs == 4 and .workers[0].mem_bytes > $((76 * MiB))"
	local st w pids rss
	st=$(status_json)
	w=$(jq -c '.workers[0]' <<<"$st")
	assert_equal "$(jq -r '.mem_kind' <<<"$st")" pss
	assert_equal "$(jq -r '.mem_kind' <<<"$w")" pss
	mapfile -t pids < <(tree_pids "$(jq -r '.pid' <<<"$w")")
	assert_equal "${#pids[@]}" 4
	rss=$(rss_sum "${pids[@]}")
	echo "# tree PSS $(($(jq -r '.mem_bytes' <<<"$w") / MiB)) MiB, RSS summed $((rss / MiB)) MiB, the worker's own RSS $(($(jq -r '.rss_bytes' <<<"$w") / MiB)) MiB" >&3
	(($(jq -r '.mem_bytes' <<<"$w") < rss - 64 * MiB)) ||
		fail "PSS $(jq -r '.mem_bytes' <<<"$w") is no less than RSS summed $rss: shared pages counted more than once"
	(($(jq -r '.mem_bytes' <<<"$w") < 128 * MiB)) || fail "tree PSS too large: $w"
	# rss_bytes stays the worker's own, as before.
	(($(jq -r '.rss_bytes' <<<"$w") < 64 * MiB)) || fail "rss_bytes is not the top process's: $w"
	# The table's memory column is the tree's, and says PSS.
	run_wp status
	assert_success
	assert_line --regexp '^ID +PID +STATE +GEN +UPTIME +PSS +CPU% '
	assert_line --regexp '^0 +[0-9]+ +ready +0 +[0-9.]+m?s +[0-9]+(\.[0-9])?M '
	# /metrics: the tree's series beside the process's own.
	local mport
	mport=$(sed -nE 's/.*metrics on http:\/\/127\.0\.0\.1:([0-9]+)\/.*/\1/p' "$LOG" | head -1)
	[[ -n $mport ]] || log_fail "no metrics port in the log"
	run curl -sS --max-time 5 "http://127.0.0.1:$mport/metrics"
	assert_success
	assert_line --regexp '^wpool_worker_memory_bytes\{pool="wpool",id="0",role="cur",kind="pss"\} [0-9]+$'
	local m
	m=$(sed -nE 's/^wpool_worker_memory_bytes\{.*\} ([0-9]+)$/\1/p' <<<"$output")
	((m > 76 * MiB && m < 128 * MiB)) || fail "wpool_worker_memory_bytes $m"
}

@test "--max-memory acts on the tree: a small master whose children grow is recycled" {
	tree_py
	start_wpool -s "$CTL" -n 1 --ready exec --max-memory 48M -- ./tree.py 1 3 24
	local first
	first=$(sed -nE 's/.*worker 0 started \(pid ([0-9]+).*/\1/p' "$LOG" | head -1)
	wait_for_log "worker 0 \\(pid $first\\) uses [0-9.]+M, over --max-memory 48\\.0M.*; recycling it.*; its tree: PSS of 4 processes\$"
	wait_for_log_count 'worker 0 started' 2
	wait_gone "$first"
	# The master's own RSS was far below the limit: only the tree is over.
}

@test "without PSS to read (wpool not root, a non-dumpable child), the tree is summed by RSS, and status says RSS" {
	[[ $(id -u) == 0 ]] || fail "this test needs root, to run wpool as nobody"
	command -v setpriv >/dev/null || fail "setpriv is missing: make deps-test"
	reachable_bins
	shared_dir
	tree_py
	install -m 0755 tree.py "$SDIR/tree.py"
	chown 65534 "$SDIR"
	CTL=$SDIR/ctl.sock
	export WPOOL_CONTROL=$CTL
	WPOOL_PREFIX=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	start_wpool -s "$CTL" -n 1 --ready exec -C "$SDIR" -- "$SDIR/tree.py" 1 1 16 nodump
	wait_until 15 compgen -G "$SDIR/kid-ready.*"
	wait_status 15 ".workers[0].mem_procs == 2 and .workers[0].mem_bytes > $((16 * MiB))"
	local st rss
	st=$(status_json)
	rss=$(rss_sum $(tree_pids "$(jq -r '.workers[0].pid' <<<"$st")"))
	# RSS summed: the two processes' VmRSS, give or take what moved (a
	# sample is reused for 0.25 s).
	wait_status 5 ".workers[0].mem_bytes > $((rss * 8 / 10)) and .workers[0].mem_bytes < $((rss * 12 / 10))"
	st=$(status_json)
	assert_equal "$(jq -r '.mem_kind' <<<"$st")" rss
	assert_equal "$(jq -r '.workers[0].mem_kind' <<<"$st")" rss
	run_wp status
	assert_success
	assert_line --regexp '^ID +PID +STATE +GEN +UPTIME +RSS +CPU% '
}

@test "nginx, master and 2 workers: one worker of 3 processes, by PSS, below their RSS summed" {
	local nginx=$NGINX_BIN port dir=$BATS_TEST_TMPDIR/nginx
	port=$(free_tcp_port)
	nginx_conf "$dir" "$port"
	start_wpool -s "$CTL" -n 1 --stop-signal QUIT -e 'NGINX=3;' -b "127.0.0.1:$port" -- \
		"$nginx" -p "$dir" -c "$dir/nginx.conf" -e stderr
	wait_status 15 '.workers[0].mem_procs == 3'
	local st w rss
	st=$(status_json)
	w=$(jq -c '.workers[0]' <<<"$st")
	assert_equal "$(jq -r '.mem_kind' <<<"$w")" pss
	rss=$(rss_sum $(tree_pids "$(jq -r '.pid' <<<"$w")"))
	echo "# nginx: tree PSS $(($(jq -r '.mem_bytes' <<<"$w") / 1024)) KiB, RSS summed $((rss / 1024)) KiB, master's RSS $(($(jq -r '.rss_bytes' <<<"$w") / 1024)) KiB" >&3
	(($(jq -r '.mem_bytes' <<<"$w") > 0)) || fail "no memory: $w"
	(($(jq -r '.mem_bytes' <<<"$w") < rss * 9 / 10)) ||
		fail "PSS $(jq -r '.mem_bytes' <<<"$w") not below RSS summed $rss: $w"
}

# mem_fixture DIR V2PATH LIMIT CPUS: a fake /proc and /sys under DIR for
# cpu.c: the process in cgroup v2 V2PATH, whose memory.max is LIMIT, an
# affinity of CPUS CPUs; the roots are exported.
mem_fixture() {
	local d=$1
	mkdir -p "$d/proc/self" "$d/sys/fs/cgroup$2"
	printf 'Name:\twpool\nCpus_allowed_list:\t0-%d\n' $(($4 - 1)) >"$d/proc/self/status"
	echo "0::$2" >"$d/proc/self/cgroup"
	echo "cpu memory" >"$d/sys/fs/cgroup/cgroup.controllers"
	echo "$3" >"$d/sys/fs/cgroup$2/memory.max"
	export WPOOL_SYSFS_ROOT=$d/sys WPOOL_PROCFS_ROOT=$d/proc
}

@test "-n auto with --memory-per-worker: at most memory.max / the budget; the log says which bound won" {
	mem_fixture "$BATS_TEST_TMPDIR/f1" /kubepods/pod 536870912 8
	run_wpool check --memory-per-worker 128M -- true
	assert_success
	assert_line 'workers = auto  ; = 4: bound by memory: cgroup v2 memory.max /kubepods/pod = 512M, / --memory-per-worker 128M = 4; 8 CPUs: affinity mask'
	assert_line "memory-per-worker = $((128 * MiB))"
	start_wpool -s "$CTL" --memory-per-worker 128M --ready exec -- sleep 30
	wait_for_log '^wpool: 4 workers \(bound by memory: cgroup v2 memory.max /kubepods/pod = 512M, / --memory-per-worker 128M = 4; 8 CPUs: affinity mask\)$'
	wait_status 10 '.alive == 4'
	assert_equal "$(sj '"\(.target) \(.workers_bound) \(.memory_limit_bytes) \(.cpus)"')" "4 memory 536870912 8"
	stop_wpool

	# More memory than the CPUs use: the CPUs win, and the log says so.
	: >"$LOG"
	start_wpool -s "$CTL" --memory-per-worker 32M --ready exec -- sleep 30
	wait_for_log '^wpool: 8 workers \(bound by CPUs: 8 CPUs: affinity mask; memory: cgroup v2 memory.max /kubepods/pod = 512M, / --memory-per-worker 32.0M = 16\)$'
	assert_equal "$(sj '.workers_bound')" cpus
	stop_wpool

	# A budget above the limit: one worker, with a warning.
	run_wpool check --memory-per-worker 1G -- true
	assert_line 'workers = auto  ; = 1: bound by memory: cgroup v2 memory.max /kubepods/pod = 512M, / --memory-per-worker 1.0G = 0, but 1 at least; 8 CPUs: affinity mask'
	# -n N is kept, but a pool that cannot fit says so.
	start_wpool -s "$CTL" -n 6 --memory-per-worker 128M --ready exec -- sleep 30
	wait_for_log 'warning: -n 6: more workers than --memory-per-worker lets the memory hold \(cgroup v2 memory.max /kubepods/pod = 512M, / --memory-per-worker 128M = 4\)'
}

@test "-n auto with --memory-per-worker: cgroup v1 memory.limit_in_bytes, MemTotal without a limit, and bad values" {
	local d=$BATS_TEST_TMPDIR/v1
	mkdir -p "$d/proc/self" "$d/sys/fs/cgroup/memory/docker/abc"
	printf 'Name:\twpool\nCpus_allowed_list:\t0-15\n' >"$d/proc/self/status"
	printf '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n' >"$d/proc/self/cgroup"
	echo 9223372036854771712 >"$d/sys/fs/cgroup/memory/memory.limit_in_bytes"
	echo 1073741824 >"$d/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"
	export WPOOL_SYSFS_ROOT=$d/sys WPOOL_PROCFS_ROOT=$d/proc
	run_wpool check --memory-per-worker 300M -- true
	assert_line 'workers = auto  ; = 3: bound by memory: cgroup v1 memory.limit_in_bytes /docker/abc = 1.0G, / --memory-per-worker 300M = 3; 16 CPUs: affinity mask'

	# No limit in the cgroup ("max"): the machine's memory bounds it.
	mem_fixture "$BATS_TEST_TMPDIR/f2" / max 16
	echo 'MemTotal:        4194304 kB' >"$WPOOL_PROCFS_ROOT/meminfo"
	run_wpool check --memory-per-worker 1G -- true
	assert_line 'workers = auto  ; = 4: bound by memory: MemTotal (no cgroup memory limit) = 4.0G, / --memory-per-worker 1.0G = 4; 16 CPUs: affinity mask'
	unset WPOOL_SYSFS_ROOT WPOOL_PROCFS_ROOT

	local v
	for v in 0 -1 abc 12Q ""; do
		run_wpool -64 --memory-per-worker "$v" -- true
		[[ $stderr == "wpool: error: --memory-per-worker: invalid value '$v': expected a size > 0 such as 512M, 1G or 1048576"* ]] ||
			fail "'$v': $stderr"
	done
}
