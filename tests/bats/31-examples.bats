#!/usr/bin/env bats
# The examples/ directory: every example that can run here is run, under
# this wpool, and answers; the deployment files that cannot run here
# (Docker, Kubernetes, systemd) are checked as far as this machine allows.

load ../helpers
load ../examples_helpers

EXAMPLES="$REPO_ROOT/examples"

# A server example under wpool: -n 2 on 127.0.0.1:0 and a named unix
# listener; both workers answer on TCP, the unix listener answers with its
# name, the worker sees the pool's environment, and TERM stops every
# worker cleanly (exit 0, no KILL).
check_server_example() {
	local sock="$BATS_TEST_TMPDIR/ex.sock"
	start_wpool -n 2 -b 127.0.0.1:0 -b "unix:$sock,name=local" "$@"
	wait_for_workers 2
	assert_equal "$(sorted_ids)" "0 1"
	distinct_ids 2
	assert_equal "$SEEN_IDS" "0 1"
	run http_get /
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0 listener=l0$'
	run curl -sS --max-time 5 --unix-socket "$sock" http://localhost/
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0 listener=local$'
	run http_get /health
	assert_output ok
	# Two requests on one keep-alive connection.
	run curl -sS --max-time 5 -w '%{num_connects}\n' \
		"http://127.0.0.1:$PORT/" "http://127.0.0.1:$PORT/"
	assert_success
	assert_equal "${#lines[@]}" 4
	assert_equal "${lines[1]}" 1
	assert_equal "${lines[3]}" 0
	stop_gracefully 8
}

@test "python_server.py answers from 2 workers and stops cleanly on TERM" {
	command -v python3 >/dev/null || skip "machine lacks python3"
	check_server_example -- python3 "$EXAMPLES/python_server.py"
}

@test "node_server.js answers from 2 workers and stops cleanly on TERM" {
	command -v node >/dev/null || skip "machine lacks node"
	check_server_example -- node "$EXAMPLES/node_server.js"
}

@test "c_server answers from 2 workers and stops cleanly on TERM" {
	[[ -x $EXAMPLES/c_server ]] || fail "no $EXAMPLES/c_server (run: make test-bins)"
	check_server_example -- "$EXAMPLES/c_server"
}

@test "hello answers from 2 workers and stops cleanly on TERM" {
	[[ -x $EXAMPLES/hello ]] || fail "no $EXAMPLES/hello (run: make test-bins)"
	start_wpool -n 2 -b 127.0.0.1:0 -- "$EXAMPLES/hello"
	NO_HTTP=1 wait_for_workers 2
	local deadline line
	local -A seen=()
	deadline=$(deadline_in 10)
	while ((${#seen[@]} < 2)); do
		while IFS= read -r line; do
			[[ $line =~ ^hello\ from\ worker\ ([01])\ \(pid\ ([0-9]+)\)$ ]] &&
				seen[${BASH_REMATCH[2]}]=${BASH_REMATCH[1]}
		done < <(http_sample 8)
		past "$deadline" && log_fail "answers from: ${!seen[*]}"
		sleep 0.05
	done
	stop_gracefully 8
}

@test "c_server: --ready notify, the watchdog and its status line" {
	start_wpool -n 2 --ready notify --watchdog 2 -b 127.0.0.1:0,name=web \
		-- "$EXAMPLES/c_server"
	wait_for_workers 2
	run "$WPOOL" status --check
	assert_success
	assert_output --partial '2/2'
	run "$WPOOL" status --json
	assert_success
	assert_output --partial '"status":"0 conns"'
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0 listener=web$'
	# Pinging every second, no worker is taken for a hung one.
	sleep 3
	assert_equal "$(log_count 'worker [01] started')" 2
	run "$WPOOL" status --check
	assert_success
	stop_gracefully 8
}

@test "c_server: an idle keep-alive client does not hold up the stop" {
	start_wpool -n 1 -b 127.0.0.1:0 -- "$EXAMPLES/c_server"
	wait_for_workers 1
	# A client that made one request and then sits on the connection.
	python3 - "$PORT" >idle.out 2>&1 3>&- <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
print(s.recv(4096).decode().splitlines()[0], flush=True)
# Until the server closes the connection.
s.settimeout(30)
print("closed" if s.recv(1) == b"" else "data", flush=True)
EOF
	record_pid $!
	wait_for_file_line idle.out '^HTTP/1.1 200 OK'
	local t0
	t0=$(now_us)
	stop_gracefully 8
	(($(elapsed_ms "$t0") < 2000)) ||
		log_fail "the stop took $(elapsed_ms "$t0") ms"
	# The worker closed the idle connection as it drained.
	wait_for_file_line idle.out '^closed$' 5
}

@test "gunicorn under wpool (examples/gunicorn/run.sh) answers from 2 workers" {
	command -v gunicorn >/dev/null || skip "machine lacks gunicorn"
	start_exec env WPOOL="$WPOOL" WORKERS=2 BIND=127.0.0.1:0 \
		"$EXAMPLES/gunicorn/run.sh"
	# The answers come from gunicorn's own worker processes, a level
	# below wpool's workers: count slots, not pids.
	NO_HTTP=1 wait_for_workers 2
	distinct_ids 2 "$PORT" 20
	assert_equal "$SEEN_IDS" "0 1"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0 server=gunicorn$'
	# --ready notify: gunicorn told wpool it was ready.
	wait_until 10 "$WPOOL" status --check
	stop_gracefully 15
}

@test "examples/wpool.ini is valid as it is" {
	# Its own listeners are read and checked (and then replaced by -b).
	run_wpool -c "$EXAMPLES/wpool.ini" -b 127.0.0.1:0 -n 1 --no-restart \
		-- true
	assert_success
	[[ $stderr == *"web: worker 0 (pid "*") exited with status 0"* ]] ||
		fail "got: $stderr"
}

@test "examples/wpool.ini runs its pool: listeners, names, env, log prefix" {
	command -v python3 >/dev/null || skip "machine lacks python3"
	local sock="$BATS_TEST_TMPDIR/admin.sock" n
	# The same file on ports and paths of this test's own.
	sed -E -e 's#^(bind = )(127\.0\.0\.1|0\.0\.0\.0)?:[0-9]+#\1127.0.0.1:0#' \
		-e "s#^(bind = )unix:.*#\\1unix:$sock#" \
		"$EXAMPLES/wpool.ini" >ex.ini
	WAIT_LISTENERS=2 start_wpool -c ex.ini -C "$REPO_ROOT"
	assert_equal "$(log_count '^web: listening on 127\.0\.0\.1:[0-9]+ \(http, fd 3\)')" 1
	assert_equal "$(log_count "^web: listening on unix:$sock \\(admin, fd 4\\)")" 1
	wait_for_log '^web: [0-9]+ workers? '
	n=$(sed -nE 's/^web: ([0-9]+) workers? .*/\1/p' "$LOG")
	wait_for_workers "$n"
	run http_get /
	assert_output --regexp '^pid=[0-9]+ id=[0-9]+ gen=0 listener=http$'
	run curl -sS --max-time 5 --unix-socket "$sock" http://localhost/
	assert_output --regexp '^pid=[0-9]+ id=[0-9]+ gen=0 listener=admin$'
	assert_equal "$(stat -c %a "$sock")" 660
	assert_equal "$(worker_env "${WORKERS[0]}" APP_ENV)" production
	# log-prefix = true and the example's access log.
	wait_for_log '^\[web\.[0-9]+\] .*"GET / HTTP/1\.1" 200'
	stop_gracefully 8
}

# systemd-analyze verify, with the repository's man pages on MANPATH (the
# units' Documentation= names them) and this wpool in ExecStart's place.
@test "the systemd units pass systemd-analyze verify" {
	command -v systemd-analyze >/dev/null ||
		skip "machine lacks a running systemd (no systemd-analyze)"
	mkdir -p probe
	printf '[Service]\nExecStart=/bin/true\n' >probe/probe.service
	systemd-analyze verify --man=no probe/probe.service >/dev/null 2>&1 ||
		skip "machine lacks a running systemd (systemd-analyze verify fails here)"
	mkdir -p units man/man1 man/man5
	ln -s "$REPO_ROOT/man/wpool.1" man/man1/wpool.1
	ln -s "$REPO_ROOT/man/wpool.conf.5" man/man5/wpool.conf.5
	cp "$EXAMPLES/systemd/wpool-web.socket" units/
	sed "s#/usr/local/bin/wpool#$WPOOL#" "$EXAMPLES/systemd/wpool-web.service" \
		>units/wpool-web.service
	local -a man=()
	command -v man >/dev/null || man=(--man=no)
	MANPATH="$BATS_TEST_TMPDIR/man" run systemd-analyze verify "${man[@]}" \
		units/wpool-web.socket units/wpool-web.service
	assert_success
	assert_output ""
}

@test "the systemd units' socket activation works: systemd-socket-activate" {
	command -v systemd-socket-activate >/dev/null ||
		skip "machine lacks systemd-socket-activate"
	local unit="$EXAMPLES/systemd/wpool-web.service" port fdname line
	local -a words opts=()
	fdname=$(sed -n 's/^FileDescriptorName=//p' "$EXAMPLES/systemd/wpool-web.socket")
	assert_equal "$fdname" web
	grep -q '^ListenStream=' "$EXAMPLES/systemd/wpool-web.socket"
	line=$(sed -n 's/^ExecStart=//p' "$unit")
	[[ $line == /usr/local/bin/wpool\ * ]] || fail "ExecStart: $line"
	[[ $line == *" -b systemd "* ]] || fail "ExecStart lacks -b systemd: $line"
	# ExecStart's own options, then this test's server.
	read -ra words <<<"$line"
	for w in "${words[@]:1}"; do
		[[ $w == -- ]] && break
		opts+=("$w")
	done
	port=$(free_tcp_port)
	env --default-signal systemd-socket-activate -l "127.0.0.1:$port" \
		--fdname="$fdname" "$WPOOL" "${opts[@]}" -- "$TESTSRV" \
		</dev/null >"$LOG" 2>&1 3>&- &
	WPOOL_PID=$!
	# The first connection starts the service; it waits in the backlog of
	# the socket systemd-socket-activate bound, and is served.
	wait_for_log 'Listening on'
	run http_get / "$port"
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=[0-9]+ gen=0$'
	wait_for_listeners 1
	assert_equal "${LISTEN_ADDRS[0]}" "127.0.0.1:$port"
	assert_equal "$(log_count "listening on 127\\.0\\.0\\.1:$port \\(web, fd 3\\)")" 1
	local n
	n=$(sed -nE 's/^[^ ]+: ([0-9]+) workers? .*/\1/p' "$LOG")
	PORT=$port wait_for_workers "$n"
	assert_equal "$(worker_env "${WORKERS[0]}" LISTEN_FDNAMES)" web
	kill -TERM "$WPOOL_PID"
	wait_wpool_exit 8
	assert_equal "$WPOOL_STATUS" 0
}

# The Kubernetes manifest, parsed with python3's yaml module when it is
# there, else checked line by line.
@test "the Kubernetes manifest: CPU limits, HTTP probes on /readyz and /livez, a grace period above the delay and stop timeout, no preStop" {
	local f="$EXAMPLES/k8s-deployment.yaml"
	if python3 -c 'import yaml' 2>/dev/null; then
		run python3 - "$f" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = [d for d in docs if d["kind"] == "Deployment"]
assert len(dep) == 1, "one Deployment"
spec = dep[0]["spec"]["template"]["spec"]
c = spec["containers"][0]
cmd = c["command"]
assert cmd[0] == "wpool" and cmd[-1] == "--", cmd
assert c["args"], "args: the worker command"
assert c["resources"]["limits"]["cpu"], "a CPU limit"
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
mport = [a.rsplit(":", 1)[1] for a in cmd if a.startswith("--metrics=")]
ports = {p["name"]: str(p["containerPort"]) for p in c["ports"]}
for probe in ("readinessProbe", "livenessProbe"):
    assert ports[c[probe]["httpGet"]["port"]] == mport[0], (probe, mport)
assert "preStop" not in c.get("lifecycle", {}), "no preStop"
def opt(name):
    v = [a.split("=", 1)[1] for a in cmd if a.startswith(name + "=")]
    assert v, name
    return float(v[0])
grace = spec["terminationGracePeriodSeconds"]
assert grace > opt("--stop-timeout") + opt("--shutdown-delay"), grace
print(" ".join(cmd[1:-1]))
EOF
		assert_success
		K8S_OPTS=$output
	else
		grep -Eq '^kind: Deployment$' "$f"
		grep -Eq '^ +cpu: "?[0-9]' "$f"
		grep -Eq '^ +path: /readyz$' "$f"
		grep -Eq '^ +path: /livez$' "$f"
		! grep -Eq "^ +preStop:" "$f"
		K8S_OPTS=$(sed -nE 's/^ +- (--[a-z-]+=.*)$/\1/p' "$f" | paste -sd' ')
	fi
	# Its wpool options are valid (the user and the ports are the pod's).
	local -a opts=()
	for o in $K8S_OPTS; do
		[[ $o == --user=* || $o == --bind=* || $o == --metrics=* ]] ||
			opts+=("$o")
	done
	run_wpool "${opts[@]}" -b 127.0.0.1:0 -n 1 --no-restart -- true
	assert_success
}

@test "the Dockerfile: multi-stage from debian:12, wpool as exec-form ENTRYPOINT" {
	local f="$EXAMPLES/Dockerfile"
	run python3 - "$f" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
lines = [l.strip() for l in text.splitlines()
         if l.strip() and not l.lstrip().startswith("#")]
froms = [l.split() for l in lines if l.upper().startswith("FROM ")]
assert len(froms) >= 2, "multi-stage"
assert froms[0][1] == "debian:12" and froms[0][2].upper() == "AS", froms[0]
assert froms[-1][1].startswith("debian:12"), froms[-1]
assert any(re.search(r"\bmake\b.*\bwpool\b", l) for l in lines
           if l.upper().startswith("RUN ")), "make wpool"
assert any(l.startswith("COPY --from=%s " % froms[0][3]) and "wpool" in l
           for l in lines), "COPY --from the build stage"
# The image built by default is the last stage's (others: --target).
last = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
ep = [l for l in lines[last:] if l.upper().startswith("ENTRYPOINT ")]
assert len(ep) == 1, "one ENTRYPOINT"
ep = json.loads(ep[0].split(None, 1)[1])
assert ep[0] == "wpool" and ep[-1] == "--", ep
cmd = [l for l in lines[last:] if l.upper().startswith("CMD ")]
assert len(cmd) == 1 and json.loads(cmd[0].split(None, 1)[1]), "exec-form CMD"
for l in lines:
    if l.upper().startswith("COPY ") and "--from" not in l:
        for src in l.split()[1:-1]:
            print("SRC", src)
print("OPTS", " ".join(ep[1:-1]))
EOF
	assert_success
	# Everything it copies from the context exists.
	local src
	for src in $(sed -n 's/^SRC //p' <<<"$output"); do
		[[ -e $REPO_ROOT/$src ]] || fail "COPY $src: not in the repository"
	done
	# Its wpool options are valid (the user and the port are the image's).
	local -a words opts=()
	read -ra words <<<"$(sed -n 's/^OPTS //p' <<<"$output")"
	local i
	for ((i = 0; i < ${#words[@]}; i++)); do
		case ${words[i]} in
		-u | --user | -b | --bind) i=$((i + 1)) ;;
		*) opts+=("${words[i]}") ;;
		esac
	done
	run_wpool "${opts[@]}" -b 127.0.0.1:0 -n 1 --no-restart -- true
	assert_success
}

@test "the Dockerfile's build stage builds from the files it copies" {
	local f="$EXAMPLES/Dockerfile" build="$BATS_TEST_TMPDIR/ctx"
	mkdir -p "$build"
	# The build stage's COPY lines, and its last RUN, as docker would.
	run python3 - "$f" <<'EOF'
import sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stage, run = [], None
for l in text.splitlines():
    l = l.strip()
    if not l or l.startswith("#"):
        continue
    if l.upper().startswith("FROM ") and stage:
        break
    stage.append(l)
for l in stage:
    if l.upper().startswith("COPY "):
        print("COPY", " ".join(l.split()[1:]))
    elif l.upper().startswith("RUN "):
        run = l[4:]
print("RUN", run)
EOF
	assert_success
	local line src dst
	while read -r line; do
		[[ $line == COPY* ]] || continue
		read -r _ src dst <<<"$line"
		mkdir -p "$build/$(dirname "$dst")"
		cp -r "$REPO_ROOT/${src%/}" "$build/${dst%/}"
	done <<<"$output"
	line=$(sed -n 's/^RUN //p' <<<"$output")
	[[ $line == *make* ]] || fail "the last RUN does not build: $line"
	(cd "$build" && sh -ec "$line") >build.log 2>&1 ||
		fail "$(printf 'the build stage failed:\n%s' "$(tail -20 build.log)")"
	[[ -x $build/wpool ]] || fail "no wpool built"
	run "$build/wpool" --version
	assert_success
}

@test "examples/README.md covers every example" {
	local f="$EXAMPLES/README.md" e
	[[ -f $f ]] || fail "no $f"
	for e in python_server.py node_server.js c_server.c hello.c gunicorn/ \
		Dockerfile k8s-deployment.yaml systemd/ wpool.ini; do
		grep -qF "$e" "$f" || fail "README.md does not mention $e"
	done
}
