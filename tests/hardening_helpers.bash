# hardening_helpers.bash: helpers for the hardening suite
# (tests/bats/50-pid1 .. 54-valgrind).  Loaded after ../helpers, whose
# functions (start_wpool, wait_for_log, wait_for_workers, ...) they build on.
#
# What they add: wpool as PID 1 of a new PID namespace (ns_start_wpool), a
# consistency check of a running pool against /proc (pool_consistent,
# wait_pool_settled), a pids cgroup for fork-failure tests, and a teardown
# that undoes all of it, by pid and by path only.

# The system python: the one on PATH may be a pyenv shim that costs 100 ms a
# start and that other users (setpriv --reuid=nobody) cannot run.
if [[ -x /usr/bin/python3 ]]; then
	PY=/usr/bin/python3
else
	PY=$(command -v python3)
fi

RP_LOAD="$REPO_ROOT/tests/bin/rp_load"
BAL_WORKER="$REPO_ROOT/tests/bin/bal_worker"

setup() {
	hardening_setup
}

teardown() {
	hardening_teardown
}

hardening_setup() {
	common_setup
	UNSHARE_PID=
	CGROUP_DIR=
	BG_JOBS=()
}

hardening_teardown() {
	local p deadline
	# Our own background jobs (load generators, signal senders) first.
	for p in "${BG_JOBS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${BG_JOBS[@]}"; do
		wait "$p" 2>/dev/null
	done
	BG_JOBS=()
	# In a namespace test WPOOL_PID is the namespace's PID 1 (seen from
	# here): common_teardown stops it like any master.
	common_teardown
	if [[ -n $UNSHARE_PID ]]; then
		deadline=$(deadline_in 3)
		while kill -0 "$UNSHARE_PID" 2>/dev/null && ! past "$deadline"; do
			sleep 0.02
		done
		# unshare --kill-child: its child (PID 1) dies with it.
		kill -KILL "$UNSHARE_PID" 2>/dev/null
		wait "$UNSHARE_PID" 2>/dev/null
		UNSHARE_PID=
	fi
	cgroup_remove
	return 0
}

# bg_job CMD...: runs CMD in the background (fd 3 closed); teardown TERMs it.
# Sets BG_JOB.
bg_job() {
	"$@" 3>&- &
	BG_JOB=$!
	BG_JOBS+=("$BG_JOB")
}

# --- status and consistency ---------------------------------------------------

# pool_json: `wpool status --json` of this test's pool, bounded in time.
pool_json() {
	without_fd3 timeout -k 1 5 "$WPOOL" status --json
}

# jget JSON PYEXPR: evaluates PYEXPR with `j` = the parsed JSON.
jget() {
	"$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "$1" "$2"
}

# CONSISTENT_PY: checks one `status --json` (argv[1]) against /proc for the
# master (argv[2]) and, if given, a target (argv[3]).  Prints every problem,
# exits 1 if there is one.  A settled, consistent pool: running, no reload
# in progress, alive == ready == target == the number of workers listed,
# ids exactly 0..target-1, every worker ready and of the pool's generation
# (or older, after a failed reload),
# and the listed pids exactly the master's live children, none a zombie
# (pids compared as the pool sees them: in its PID namespace, if any).
CONSISTENT_PY='
import json, os, sys
bad = []
try:
    j = json.loads(sys.argv[1])
except ValueError as e:
    print("status --json is not JSON: %s: %r" % (e, sys.argv[1][:200]))
    sys.exit(1)
master = int(sys.argv[2])
def nspid(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return pid
want = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
ws = j.get("workers", [])
t = j.get("target")
if j.get("pid") != nspid(master):
    bad.append("status pid %r, master is %d" % (j.get("pid"), master))
if j.get("state") != "running":
    bad.append("pool state %r" % j.get("state"))
r = (j.get("reload") or {}).get("state")
if r == "running":
    bad.append("a reload is still running")
if want is not None and t != want:
    bad.append("target %r, want %d" % (t, want))
if not (j.get("alive") == j.get("ready") == t == len(ws)):
    bad.append("alive %r ready %r target %r listed %d" %
               (j.get("alive"), j.get("ready"), t, len(ws)))
ids = sorted((w.get("id") for w in ws), key=lambda x: (x is None, x or 0))
if ids != list(range(len(ws))):
    bad.append("worker ids %r" % ids)
for w in ws:
    if w.get("state") != "ready":
        bad.append("worker %r state %r" % (w.get("id"), w.get("state")))
    g, pg = w.get("generation"), j.get("generation")
    # After a failed reload old workers keep serving: older is fine then.
    if g != pg and not (r == "failed" and isinstance(g, int) and
                        isinstance(pg, int) and g < pg):
        bad.append("worker %r generation %r, pool %r (reload %s)" %
                   (w.get("id"), g, pg, r))
kids, zombies = set(), []
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % d) as f:
            st = f.read()
    except OSError:
        continue
    f = st[st.rindex(")") + 2:].split()
    if int(f[1]) == master:
        if f[0] == "Z":
            zombies.append(int(d))
        else:
            kids.add(nspid(int(d)))
pids = set(w.get("pid") for w in ws)
if pids != kids:
    bad.append("listed pids %s, live children %s" % (sorted(pids, key=str), sorted(kids)))
if zombies:
    bad.append("zombie children %s" % sorted(zombies))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
'

# pool_consistent [TARGET]: the check above, on $WPOOL_PID; problems on
# stdout.
pool_consistent() {
	local j
	j=$(pool_json) || { echo "status failed: $j"; return 1; }
	"$PY" -c "$CONSISTENT_PY" "$j" "$WPOOL_PID" "${1:-}"
}

# wait_pool_settled [TARGET [TIMEOUT]]: until pool_consistent holds (twice,
# 100 ms apart, so that a pool passing through a consistent state in the
# middle of a change does not count).
wait_pool_settled() {
	local want=${1:-} timeout=${2:-$DEFAULT_TIMEOUT} deadline out
	deadline=$(deadline_in "$timeout")
	while :; do
		if out=$(pool_consistent "$want"); then
			sleep 0.1
			out=$(pool_consistent "$want") && return 0
		fi
		if past "$deadline"; then
			log_fail "$(printf 'pool not settled%s after %ss:\n%s\nstatus: %s' \
				"${want:+ at $want}" "$timeout" "$out" "$(pool_json)")"
			return 1
		fi
		if ! kill -0 "$WPOOL_PID" 2>/dev/null; then
			log_fail "wpool exited while waiting for it to settle"
			return 1
		fi
		sleep 0.1
	done
}

# rss_kb PID: VmRSS in KiB.
rss_kb() {
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
}

# fd_count PID: open fds.
fd_count() {
	local n
	n=$(ls "/proc/$1/fd" 2>/dev/null | wc -l)
	echo "$n"
}

# lowest_free_fd PID: the lowest fd number PID does not use.
lowest_free_fd() {
	ls "/proc/$1/fd" | sort -n | awk 'BEGIN { n = 0 } $1 == n { n++ } END { print n }'
}

# cpu_ticks PID: utime + stime, in clock ticks.
cpu_ticks() {
	local u s
	u=$(proc_stat_field "$1" 14) && s=$(proc_stat_field "$1" 15) &&
		echo $((u + s))
}

# ppids_of PID...: "PID PPID" for each that still exists, in one pass.
ppids_of() {
	local p
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] && echo "/proc/$p/stat"
	done | xargs -r awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " ");
		n = FILENAME; gsub(/[^0-9]/, "", n); print n, f[2] }' 2>/dev/null
}

# worker_sockets PID: sockets PID holds other than its listeners (fds 3 ..
# 2+LISTEN_FDS): the connections it accepted and has not closed.
worker_sockets() {
	local n=0 f t fd nl
	nl=$(worker_env "$1" LISTEN_FDS)
	nl=${nl:-1}
	for f in /proc/"$1"/fd/*; do
		fd=${f##*/}
		((fd >= 3 && fd < 3 + nl)) && continue
		t=$(readlink "$f" 2>/dev/null) || continue
		[[ $t == socket:* ]] && n=$((n + 1))
	done
	echo "$n"
}

# --- PID 1 in a PID namespace ---------------------------------------------------

have_pidns() {
	unshare --pid --fork --mount-proc true 2>/dev/null
}

# ns_start_wpool ARGS...: start_wpool as PID 1 of a new PID namespace
# (`unshare --pid --fork --mount-proc --kill-child`).  Afterwards
# WPOOL_PID is that PID 1 as seen from here, so helpers that look at the
# master (worker_pids, wait_for_workers, stop_wpool) work unchanged, and
# UNSHARE_PID is the unshare process (our child; ns_wait_exit reaps it).
# The workers answer HTTP with their namespace pids, so wait_for_workers
# counts processes only (NO_HTTP).
ns_start_wpool() {
	NO_HTTP=1
	WPOOL_PREFIX=(unshare --pid --fork --mount-proc --kill-child)
	start_wpool "$@"
	WPOOL_PREFIX=()
	UNSHARE_PID=$WPOOL_PID
	local deadline inner=
	deadline=$(deadline_in 5)
	while [[ -z $inner ]]; do
		inner=$(children_of "$UNSHARE_PID" | head -n1)
		[[ -n $inner ]] && break
		past "$deadline" && { log_fail "unshare started no child"; return 1; }
		sleep 0.02
	done
	WPOOL_PID=$inner
	# It is PID 1 over there.
	local nspid
	nspid=$(awk '$1 == "NSpid:" { print $NF }' "/proc/$inner/status")
	[[ $nspid == 1 ]] || log_fail "wpool is pid $nspid in its namespace, not 1"
}

# ns_wait_exit [TIMEOUT]: waits for the namespace's PID 1 to exit and sets
# WPOOL_STATUS to its exit status (unshare --fork passes it on).
ns_wait_exit() {
	local timeout=${1:-$DEFAULT_TIMEOUT} deadline
	deadline=$(deadline_in "$timeout")
	while kill -0 "$UNSHARE_PID" 2>/dev/null; do
		if past "$deadline"; then
			log_fail "wpool (PID 1) still running after ${timeout}s"
			return 1
		fi
		sleep 0.02
	done
	WPOOL_STATUS=0
	wait "$UNSHARE_PID" || WPOOL_STATUS=$?
	UNSHARE_PID=
	WPOOL_PID=
}

# --- a pids cgroup (v1 or v2) -----------------------------------------------------

# cgroup_pids_root: where the pids controller is mounted, or fail.
cgroup_pids_root() {
	if [[ -f /sys/fs/cgroup/pids/cgroup.procs ]]; then
		echo /sys/fs/cgroup/pids
	elif [[ -f /sys/fs/cgroup/cgroup.controllers ]] &&
		grep -qw pids /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
		echo /sys/fs/cgroup
	else
		return 1
	fi
}

# cgroup_create MAX: a fresh child cgroup with pids.max = MAX; sets
# CGROUP_DIR (teardown removes it).
cgroup_create() {
	local root
	root=$(cgroup_pids_root) || return 1
	CGROUP_DIR="$root/wpool-test-$$-$BATS_TEST_NUMBER"
	mkdir "$CGROUP_DIR" 2>/dev/null || { CGROUP_DIR=; return 1; }
	echo "$1" >"$CGROUP_DIR/pids.max" || return 1
}

# cgroup_remove: once every process in it is gone (teardown has stopped
# them), remove CGROUP_DIR.
cgroup_remove() {
	[[ -n $CGROUP_DIR && -d $CGROUP_DIR ]] || return 0
	local deadline p
	deadline=$(deadline_in 5)
	while [[ -s $CGROUP_DIR/cgroup.procs ]] && ! past "$deadline"; do
		sleep 0.05
	done
	# Anything left is ours (started in it by this test): KILL it by pid.
	for p in $(cat "$CGROUP_DIR/cgroup.procs" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	deadline=$(deadline_in 3)
	until rmdir "$CGROUP_DIR" 2>/dev/null || past "$deadline"; do
		sleep 0.05
	done
	CGROUP_DIR=
}

# ns_host_pid NSPID: the pid, seen from here, of the process that is NSPID
# in the namespace of WPOOL_PID.
ns_host_pid() {
	local ns p
	ns=$(readlink "/proc/$WPOOL_PID/ns/pid") || return 1
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/ns/pid" 2>/dev/null) == "$ns" ]] || continue
		awk -v want="$1" '$1 == "NSpid:" { f = ($NF == want) } END { exit !f }' \
			"$p/status" 2>/dev/null && { echo "${p#/proc/}"; return 0; }
	done
	return 1
}

# nspid_of PID: PID's pid in its own (innermost) PID namespace.
nspid_of() {
	awk '$1 == "NSpid:" { print $NF }' "/proc/$1/status"
}
