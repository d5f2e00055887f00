# static_helpers.bash: wpool-static in an empty root, as PID 1 (77-static).
#
# What a container runtime gives a FROM scratch image, without a Docker
# engine: new pid and mount namespaces (unshare), /proc of the new pid
# namespace, /dev/null, and a chroot into a directory that holds nothing
# but the static wpool and a static test server.  The network namespace
# is the host's, so that curl reaches the pool on 127.0.0.1.

# static_build_file: once per file, into BATS_FILE_TMPDIR: `make static`
# (its own objects) and testsrv linked statically.
static_build_file() {
	make -s -j"$(nproc)" -C "$REPO_ROOT" static >"$BATS_FILE_TMPDIR/make.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/make.log" >&2
		return 1
	}
	cp "$REPO_ROOT/wpool-static" "$BATS_FILE_TMPDIR/wpool"
	"${CC:-cc}" -static -O2 -std=c11 -D_GNU_SOURCE \
		-o "$BATS_FILE_TMPDIR/testsrv" "$REPO_ROOT/tests/bin/testsrv.c"
}

# static_rootfs: $ROOTFS, this test's empty root with the two binaries and
# the mount points for /proc and /dev/null.
static_rootfs() {
	ROOTFS=$BATS_TEST_TMPDIR/root
	mkdir -p "$ROOTFS/proc" "$ROOTFS/dev"
	: >"$ROOTFS/dev/null"
	cp "$BATS_FILE_TMPDIR/wpool" "$BATS_FILE_TMPDIR/testsrv" "$ROOTFS/"
	# worker_pids tells workers from the master by this path.
	WPOOL=$ROOTFS/wpool
	CTL=$ROOTFS/ctl.sock
}

# start_static ARGS...: /wpool -s /ctl.sock ARGS as PID 1 of a new pid
# namespace, chrooted into $ROOTFS.  UNSHARE_PID is unshare (the parent,
# which exits with PID 1's status); WPOOL_PID is the master's host pid,
# for the shared helpers (wait_for_workers, stop_wpool).
start_static() {
	local nbind
	nbind=$(count_binds "$@")
	env --default-signal unshare --fork --kill-child --pid --mount \
		--mount-proc="$ROOTFS/proc" \
		sh -c 'mount --bind /dev/null "$0/dev/null" && exec chroot "$0" "$@"' \
		"$ROOTFS" /wpool -s /ctl.sock "$@" </dev/null >"$LOG" 2>&1 3>&- &
	UNSHARE_PID=$!
	WPOOL_PID=
	wait_for_listeners "$nbind"
	WPOOL_PID=$(static_master)
	[[ -n $WPOOL_PID ]] || log_fail "no wpool under unshare ($UNSHARE_PID)"
}

# static_master: the host pid of PID 1, once it runs /wpool.
static_master() {
	local p deadline
	deadline=$(deadline_in)
	while ! past "$deadline"; do
		for p in $(children_of "$UNSHARE_PID"); do
			if [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$WPOOL" ]]; then
				echo "$p"
				return 0
			fi
		done
		sleep 0.02
	done
	return 1
}

# static_ctl ARGS...: the host's wpool client against the pool's socket.
static_ctl() {
	"$REPO_ROOT/wpool" -s "$CTL" "$@"
}

# wait_static_exit: unshare's status (PID 1's) in WPOOL_STATUS.
wait_static_exit() {
	local deadline
	deadline=$(deadline_in)
	while kill -0 "$UNSHARE_PID" 2>/dev/null; do
		past "$deadline" && log_fail "PID 1 still running after TERM"
		sleep 0.02
	done
	WPOOL_STATUS=0
	wait "$UNSHARE_PID" || WPOOL_STATUS=$?
	UNSHARE_PID=
	WPOOL_PID=
}

static_teardown() {
	common_teardown
	if [[ -n ${UNSHARE_PID:-} ]]; then
		kill -KILL "$UNSHARE_PID" 2>/dev/null
		wait "$UNSHARE_PID" 2>/dev/null
	fi
	return 0
}

# ns_pid HOSTPID: the pid PID 1's namespace knows it by (what testsrv says).
ns_pid() {
	awk '$1 == "NSpid:" { print $NF }' "/proc/$1/status" 2>/dev/null
}

# wait_static_workers N: wait_for_workers for a pool in its own pid
# namespace: N workers (host pids in WORKERS) that have each answered GET /
# under their namespace pid; WORKER_ID by host pid.
wait_static_workers() {
	local n=$1 deadline line p ok
	local -a kids
	local -A seen=()
	deadline=$(deadline_in)
	while :; do
		mapfile -t kids < <(worker_pids | sort -n)
		if ((${#kids[@]} == n)); then
			while IFS= read -r line; do
				[[ $line =~ ^pid=([0-9]+)\ id=([^ ]*) ]] &&
					seen[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
			done < <(http_sample 8)
			ok=1
			for p in "${kids[@]}"; do
				[[ -n ${seen[$(ns_pid "$p")]+x} ]] || ok=0
			done
			if ((ok)); then
				WORKERS=("${kids[@]}")
				WORKER_ID=()
				for p in "${kids[@]}"; do
					WORKER_ID[$p]=${seen[$(ns_pid "$p")]}
				done
				return 0
			fi
		fi
		past "$deadline" &&
			log_fail "timed out waiting for $n workers; have: ${kids[*]}; answered (namespace pids): ${!seen[*]}"
		kill -0 "$WPOOL_PID" 2>/dev/null ||
			log_fail "wpool exited while waiting for $n workers"
		sleep 0.05
	done
}
