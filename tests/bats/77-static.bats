#!/usr/bin/env bats
# `make static`: a wpool with no shared library runs FROM scratch.  Each
# test runs it as PID 1 of new pid and mount namespaces, chrooted into an
# empty root that holds only it and a static testsrv (see
# tests/static_helpers.bash), and drives it from the host over loopback
# and its control socket.

load ../helpers
load ../static_helpers

setup_file() {
	static_build_file
}

setup() {
	common_setup
	unshare --fork --pid --mount --mount-proc true 2>/dev/null ||
		fail "unshare --pid --mount failed: these tests need root (or CAP_SYS_ADMIN) and util-linux"
	static_rootfs
}

teardown() {
	static_teardown
}

# ns_stat PID: /proc/PID/stat as PID 1's namespace sees it.
ns_stat() {
	cat "/proc/$WPOOL_PID/root/proc/$1/stat" 2>/dev/null
}

@test "make static: no interpreter and no shared library (ldd: not a dynamic executable)" {
	run ldd "$BATS_FILE_TMPDIR/wpool"
	assert_output --partial "not a dynamic executable"
	run -0 readelf -lW "$BATS_FILE_TMPDIR/wpool"
	refute_output --partial "INTERP"
	refute_output --partial "DYNAMIC"
	run ldd "$BATS_FILE_TMPDIR/testsrv"
	assert_output --partial "not a dynamic executable"
}

@test "PID 1 in an empty root: serves on loopback, and a worker killed -9 is replaced" {
	start_static -n 2 -b 127.0.0.1:0 -- /testsrv
	wait_static_workers 2
	run -0 static_ctl status
	assert_output --partial "(pid 1)"
	assert_output --partial "2/2 ready"
	local victim=${WORKERS[0]} id=${WORKER_ID[${WORKERS[0]}]}
	kill -KILL "$victim"
	wait_for_log "worker $id \(pid [0-9]+\) killed by signal KILL"
	wait_gone "$victim"
	wait_static_workers 2
	[[ " ${WORKERS[*]} " != *" $victim "* ]] || fail "victim $victim still listed"
	run -0 http_get /id
	assert_output --regexp '^[01]$'
}

@test "PID 1 in an empty root: reload replaces every worker with the next generation" {
	start_static -n 2 -b 127.0.0.1:0 -- /testsrv
	wait_static_workers 2
	local -a old=("${WORKERS[@]}")
	run -0 static_ctl reload
	wait_for_log_count 'worker [0-9]+ started \(pid [0-9]+, generation 1\)' 2
	wait_gone "${old[@]}"
	wait_static_workers 2
	run -0 http_get /
	assert_output --partial "gen=1"
}

@test "PID 1 in an empty root: a worker's orphans come to it and are reaped" {
	start_static -n 1 -b 127.0.0.1:0 -- /testsrv --orphans 3 --orphan-life 1
	wait_for_log '^orphans:'
	local -a orphans
	read -ra orphans <<<"$(sed -n 's/^orphans: //p' "$LOG" | head -n1)"
	assert_equal "${#orphans[@]}" 3
	local p stat rest
	for p in "${orphans[@]}"; do
		stat=$(ns_stat "$p") || fail "orphan $p already gone before its 1 s"
		rest=${stat##*) }
		read -ra f <<<"$rest"
		assert_equal "${f[1]}" 1	# ppid: PID 1, wpool
	done
	# They exit after 1 s: none may stay, not even as a zombie.
	local deadline
	deadline=$(deadline_in 5)
	for p in "${orphans[@]}"; do
		while [[ -e /proc/$WPOOL_PID/root/proc/$p ]]; do
			past "$deadline" && fail "orphan $p not reaped: $(ns_stat "$p")"
			sleep 0.05
		done
	done
	wait_static_workers 1
}

@test "PID 1 in an empty root: TERM stops the workers and exits 0" {
	start_static -n 2 -b 127.0.0.1:0 -- /testsrv
	wait_static_workers 2
	local -a workers=("${WORKERS[@]}")
	kill -TERM "$WPOOL_PID"
	wait_static_exit
	assert_equal "$WPOOL_STATUS" 0
	wait_gone "${workers[@]}"
	wait_for_log '^wpool: stopped'
}

@test "static build without /etc/passwd: -u NAME is refused with exit 64, -u UID:GID works" {
	run -64 chroot "$ROOTFS" /wpool -u www-data -- /testsrv
	assert_output --partial "-u/--user: 'www-data': user and group names need NSS or /etc/passwd"
	assert_output --partial "use -u UID:GID"
	run -64 chroot "$ROOTFS" /wpool -u 0:www-data -- /testsrv
	assert_output --partial "'0:www-data': user and group names need NSS"

	# Workers of another user get einhorn's socket in a new directory of
	# /run or /tmp: the one thing a scratch image must add for -u.
	mkdir -m 1777 "$ROOTFS/tmp"
	start_static -n 1 -u 4242:4343 -b 127.0.0.1:0 -- /testsrv
	wait_static_workers 1
	run -0 grep -E '^(Uid|Gid|Groups):' "/proc/${WORKERS[0]}/status"
	assert_line --regexp '^Uid:[[:space:]]+4242[[:space:]]+4242'
	assert_line --regexp '^Gid:[[:space:]]+4343[[:space:]]+4343'
	assert_line --regexp '^Groups:[[:space:]]+4343[[:space:]]*$'
	assert_equal "$(worker_env "${WORKERS[0]}" HOME)" /
}

@test "static build with /etc/passwd and /etc/group: names, supplementary groups and HOME from the files" {
	mkdir "$ROOTFS/etc"
	printf 'root:x:0:0:root:/root:/nologin\napp:x:4242:4343::/home/app:/nologin\n' \
		>"$ROOTFS/etc/passwd"
	printf 'root:x:0:\napp:x:4343:\nextra:x:4444:other,app\nnot:x:4545:other\n' \
		>"$ROOTFS/etc/group"
	run -64 chroot "$ROOTFS" /wpool -u nosuch -- /testsrv
	assert_output --partial "expected an existing user name or uid"
	run -64 chroot "$ROOTFS" /wpool -u app:nosuch -- /testsrv
	assert_output --partial "expected an existing group"

	mkdir -m 1777 "$ROOTFS/tmp"
	start_static -n 1 -u app -b 127.0.0.1:0 -- /testsrv
	wait_static_workers 1
	run -0 grep -E '^(Uid|Gid|Groups):' "/proc/${WORKERS[0]}/status"
	assert_line --regexp '^Uid:[[:space:]]+4242[[:space:]]'
	assert_line --regexp '^Gid:[[:space:]]+4343[[:space:]]'
	assert_line --regexp '^Groups:[[:space:]]+4343 4444[[:space:]]*$'
	assert_equal "$(worker_env "${WORKERS[0]}" HOME)" /home/app
	assert_equal "$(worker_env "${WORKERS[0]}" USER)" app
}

@test "static build without /etc/hosts: -b localhost:0 binds the IPv4 loopback" {
	start_static -n 1 -b localhost:0 -- /testsrv
	assert_equal "${LISTEN_ADDRS[0]}" "127.0.0.1:$PORT"
	wait_static_workers 1
}
