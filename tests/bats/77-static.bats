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

@test "examples/Dockerfile's scratch stage: its RUN builds the root, its ENTRYPOINT serves as PID 1 there, its HEALTHCHECK passes" {
	local f="$REPO_ROOT/examples/Dockerfile" ctx="$BATS_TEST_TMPDIR/ctx"
	run -0 python3 - "$f" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stages, cur = {}, None
for l in text.splitlines():
    l = l.strip()
    if not l or l.startswith("#"):
        continue
    w = l.split()
    if w[0].upper() == "FROM":
        cur = w[3] if len(w) > 3 and w[2].upper() == "AS" else w[1]
        stages[cur] = [l]
    else:
        stages[cur].append(l)
assert stages["static"][0].split()[1] == "build", stages["static"][0]
assert stages["scratch"][0].split()[1] == "scratch", stages["scratch"][0]
runs = [l[4:] for l in stages["static"] if l.upper().startswith("RUN ")]
assert len(runs) == 1, runs
print("RUN", runs[0])
for l in stages["scratch"]:
    k, _, v = l.partition(" ")
    k = k.upper()
    if k == "COPY":
        print("COPY", v)
    elif k in ("ENTRYPOINT", "CMD"):
        print(k, " ".join(json.loads(v)))
    elif k == "HEALTHCHECK":
        print("CHECK", " ".join(json.loads(re.split(r"\sCMD\s", v, 1)[1])))
EOF
	local out=$output
	assert_line "COPY --from=static /rootfs/ /"
	# The build stage's tree, with make static's output already there (as
	# the stage built it; timestamps kept, so make finds it up to date).
	mkdir -p "$ctx"
	cp -rp "$REPO_ROOT/Makefile" "$REPO_ROOT/src" "$REPO_ROOT/examples" "$ctx/"
	mkdir -p "$ctx/build"
	cp -rp "$REPO_ROOT/build/static" "$ctx/build/"
	cp -p "$REPO_ROOT/wpool-static" "$ctx/"
	local line
	line=$(sed -n 's/^RUN //p' <<<"$out")
	line=${line//\/rootfs/$ROOTFS}
	rm -rf "$ROOTFS"
	(cd "$ctx" && sh -ec "$line") >"$BATS_TEST_TMPDIR/build.log" 2>&1 ||
		fail "$(printf 'the static stage failed:\n%s' "$(tail -20 "$BATS_TEST_TMPDIR/build.log")")"
	run ldd "$ROOTFS/c_server"
	assert_output --partial "not a dynamic executable"
	# What the runtime adds: /proc and /dev/null.
	mkdir -p "$ROOTFS/proc" "$ROOTFS/dev"
	: >"$ROOTFS/dev/null"
	WPOOL=$ROOTFS/wpool
	local -a ep cmd args=()
	read -ra ep <<<"$(sed -n 's/^ENTRYPOINT //p' <<<"$out")"
	read -ra cmd <<<"$(sed -n 's/^CMD //p' <<<"$out")"
	[[ ${ep[0]} == /wpool ]] || fail "ENTRYPOINT is not /wpool: ${ep[*]}"
	local i
	for ((i = 1; i < ${#ep[@]}; i++)); do
		case ${ep[i]} in
		-b | --bind) args+=("${ep[i]}" 127.0.0.1:0); i=$((i + 1)) ;;
		*) args+=("${ep[i]}") ;;
		esac
	done
	# start_static's -s /ctl.sock comes first; the image's default socket
	# (/run/wpool) is what its HEALTHCHECK uses, so leave -s out here, and
	# the tests' WPOOL_CONTROL too.
	env -u WPOOL_CONTROL --default-signal unshare --fork --kill-child --pid --mount \
		--mount-proc="$ROOTFS/proc" \
		sh -c 'mount --bind /dev/null "$0/dev/null" && exec chroot "$0" "$@"' \
		"$ROOTFS" "${ep[0]}" "${args[@]}" "${cmd[@]}" </dev/null >"$LOG" 2>&1 3>&- &
	UNSHARE_PID=$!
	wait_for_listeners 1
	WPOOL_PID=$(static_master) || log_fail "no /wpool under unshare"
	wait_for_log 'worker 0 started'
	run -0 curl -sS --max-time 5 "http://127.0.0.1:$PORT/"
	local check
	read -ra check <<<"$(sed -n 's/^CHECK //p' <<<"$out")"
	local deadline
	deadline=$(deadline_in)
	until env -u WPOOL_CONTROL chroot "$ROOTFS" "${check[@]}" >/dev/null 2>&1; do
		past "$deadline" && fail "HEALTHCHECK ${check[*]} kept failing: $(env -u WPOOL_CONTROL chroot "$ROOTFS" "${check[@]}" 2>&1)"
		sleep 0.1
	done
	local w
	w=$(worker_pids | head -n1)
	run -0 grep -E '^Uid:' "/proc/$w/status"
	assert_output --regexp '^Uid:[[:space:]]+65534[[:space:]]'
	kill -TERM "$WPOOL_PID"
	wait_static_exit
	assert_equal "$WPOOL_STATUS" 0
}
