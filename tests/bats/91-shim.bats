#!/usr/bin/env bats
# wpool -m balance --shim: unmodified servers from Debian's packages (and
# a blocking C server that knows nothing of wpool) in balance mode, with
# libwpool-shim.so preloaded: the channel at fd 3 is their listener.  For
# each one: while a worker serves a slow request, least-conn sends every
# new connection to the other one; every connection is reported closed;
# --max-requests recycles workers with no request failed
# (tests/shim_helpers.bash).  examples/c_server (epoll, keep-alive) under
# wrk.  Then the shim's corners (dup, fork, shutdown, threads, ip-hash)
# with a small python server, the worker's environment, and what wpool
# refuses.  About 35 s: .ci/run leaves it out of the SANITIZE=1 pass (the
# servers are not ASan builds; 40-balance covers the master's side).

load ../helpers
load ../balance_helpers
load ../shim_helpers

setup() {
	shim_setup
}

teardown() {
	bal_teardown
}

@test "gunicorn (sync) under the shim" {
	shim_needs gunicorn
	shim_server gunicorn -- gunicorn -w 1 -k sync wsgi:app
}

@test "gunicorn (gthread) under the shim" {
	shim_needs gunicorn
	shim_server gunicorn -- gunicorn -w 1 -k gthread --threads 4 wsgi:app
}

@test "uvicorn --fd 3 under the shim" {
	/usr/bin/python3 -c 'import uvicorn' 2>/dev/null ||
		fail "python3-uvicorn is not installed: run make deps-test (DEPS_TEST)"
	shim_server uvicorn -- /usr/bin/python3 -m uvicorn --no-access-log --fd 3 asgi:app
}

@test "node listen({fd: 3}) under the shim" {
	shim_needs node
	shim_server node -- node app.js
}

@test "PHP CLI socket_import_stream + socket_accept under the shim" {
	shim_needs php
	shim_server php -- php app.php
}

@test "a blocking C server under the shim" {
	shim_server c -- "$SHIM_C"
}

# examples/c_server keeps a pointer to each connection in its epoll set and
# frees it on close: an epoll event for a connection after its close (the
# kernel may hold a file passed over a unix socket a moment longer) was a
# use after free within a second or two of this load.  ASAN_OPTIONS: under
# SANITIZE=1 the example is an ASan build, with the shim preloaded first.
@test "an epoll server (examples/c_server) under load: no event after close" {
	command -v wrk >/dev/null || fail "wrk is not installed: run make deps-test (DEPS_TEST)"
	start_wpool -m balance --shim -n 2 -b "127.0.0.1:$(free_tcp_port)" \
		-e ASAN_OPTIONS=verify_asan_link_order=0 -- "$REPO_ROOT/examples/c_server"
	wait_ready 2 20
	run wrk -t1 -c16 -d3s -H 'Connection: close' "http://127.0.0.1:$PORT/"
	assert_success
	[[ $output != *"Socket errors"* ]] || fail "$output"
	! grep -q 'killed by signal\|exited with status' "$LOG" ||
		fail "a worker died under load: $(cat "$LOG")"
	[[ $(st "d['restarts']") == 0 ]] || fail "restarts: $(st "d['restarts']")"
	wait_st 5 "sum(w['connections'] for w in W.values()) == 0"
}

# --- the shim's corners --------------------------------------------------------

# corner NAME [ENV...]: one worker of corners.py in that way.
corner() {
	local name=$1
	shift
	start_wpool -m balance --shim -n 1 -b "127.0.0.1:$(free_tcp_port)" \
		-C "$BATS_TEST_TMPDIR" -e CORNER="$name" "$@" -- /usr/bin/python3 corners.py
	wait_ready 1 20
}

# no_bad_reports: the master took every report as one it expected.
no_bad_reports() {
	wait_st 5 "sum(w['connections'] for w in W.values()) == 0"
	! grep -q 'does not hold\|no more connections' "$LOG" ||
		fail "the shim reported a connection twice: $(cat "$LOG")"
}

@test "shim: a connection duplicated is reported closed when its last fd closes" {
	corner dup -e HOLD_SEC=1.5
	local out=$BATS_TEST_TMPDIR/dup.out bg
	shim_get / >"$out" &
	bg=$!
	record_pid $bg
	wait_st 5 "sum(w['connections'] for w in W.values()) == 1"
	# The original is closed by now; the copy still holds it.
	sleep 0.5
	[[ $(shim_conns) == 1 ]] || fail "counted closed when its first fd closed"
	wait "$bg"
	[[ $(cat "$out") == "pid "* ]] || fail "answer: $(cat "$out")"
	no_bad_reports
}

@test "shim: shutdown(SHUT_WR) then close reports once" {
	corner shutdown
	local i
	for ((i = 0; i < 4; i++)); do
		[[ $(shim_get /) == "pid "* ]] || fail "request $i"
	done
	wait_st 5 "sum(w['requests'] for w in W.values()) == 4"
	no_bad_reports
}

@test "shim: a forking server's child does not report what its parent did" {
	corner fork
	local i
	for ((i = 0; i < 4; i++)); do
		[[ $(shim_get /) == "pid "* ]] || fail "request $i"
	done
	no_bad_reports
}

@test "shim: threads accepting and closing at once" {
	corner threads -e HOLD_SEC=0.2
	local i out=$BATS_TEST_TMPDIR/par
	for ((i = 0; i < 16; i++)); do
		shim_get / >"$out.$i" &
		record_pid $!
	done
	for ((i = 0; i < 16; i++)); do
		wait_until 10 test -s "$out.$i"
	done
	wait_st 10 "sum(w['requests'] for w in W.values()) == 16"
	[[ $(cat "$out".* | grep -c '^pid ') == 16 ]] || fail "$(cat "$out".*)"
	no_bad_reports
}

@test "shim: ip-hash keeps each client address on one worker" {
	start_wpool -m balance --shim -n 2 --balancer ip-hash \
		-b "127.0.0.1:$(free_tcp_port)" -- "$SHIM_C"
	wait_ready 2 20
	local x k body
	local -A by=() all=()
	for k in 1 2 3; do
		for x in 2 3 4 5 6 7 8 9; do
			body=$(shim_get / --interface 127.0.0.$x)
			[[ $body == "pid "* ]] || fail "from 127.0.0.$x: $body"
			[[ -z ${by[$x]:-} || ${by[$x]} == "$body" ]] ||
				fail "127.0.0.$x went to ${by[$x]} then $body"
			by[$x]=$body
			all[$body]=1
		done
	done
	((${#all[@]} == 2)) || fail "8 addresses went to ${#all[@]} worker(s)"
}

# --- what wpool sets and refuses -------------------------------------------------

@test "shim: the worker gets LISTEN_FDS and LD_PRELOAD ahead of the environment's, not WPOOL_CONN_FD" {
	LD_PRELOAD=/nonexistent/a.so start_wpool -m balance --shim -n 1 \
		-b "127.0.0.1:$(free_tcp_port)" -e SLOW_SEC=0 -- "$SHIM_C"
	wait_ready 1 20
	local pid env
	pid=$(pid_of_slot 0)
	env=$(tr '\0' '\n' <"/proc/$pid/environ")
	grep -qx "LD_PRELOAD=$(realpath "$SHIM_LIB"):/nonexistent/a.so" <<<"$env" ||
		fail "LD_PRELOAD: $(grep LD_PRELOAD <<<"$env")"
	grep -qx 'LISTEN_FDS=1' <<<"$env" || fail "no LISTEN_FDS=1"
	grep -qx "LISTEN_PID=$pid" <<<"$env" || fail "no LISTEN_PID=$pid"
	grep -qx 'LISTEN_FDNAMES=l0' <<<"$env" || fail "no LISTEN_FDNAMES=l0"
	! grep -q '^WPOOL_CONN_FD=' <<<"$env" || fail "WPOOL_CONN_FD is set"
	[[ $(shim_get /) == "pid $pid" ]] || fail "not served"
}

@test "shim: --shim outside balance mode is a usage error" {
	run_wpool -64 -m shared --shim -b 127.0.0.1:0 -- "$SHIM_C"
	[[ $stderr == *"--shim: only in balance mode (-m balance)"* ]] || fail "stderr: $stderr"
}

@test "shim: a Go program and a static binary are refused at start" {
	shim_needs prometheus
	run_wpool -64 -m balance --shim -b 127.0.0.1:0 -- prometheus
	[[ $stderr == *"is a Go program, whose system calls bypass libc"* ]] || fail "stderr: $stderr"
	# Debian's ldconfig is a static-pie binary (libc-bin).
	run_wpool -64 -m balance --shim -b 127.0.0.1:0 -- /sbin/ldconfig
	[[ $stderr == *"is statically linked"* ]] || fail "stderr: $stderr"
	# A dynamically linked one passes the same check.
	run_wpool -0 check -m balance --shim -b 127.0.0.1:0 -- "$SHIM_C"
}

@test "shim: make install puts the library where the installed wpool finds it; without it, exit 1" {
	local dest=$BATS_TEST_TMPDIR/root
	run make -s -C "$REPO_ROOT" install DESTDIR="$dest" PREFIX=/usr
	assert_success
	[[ -f $dest/usr/lib/wpool/libwpool-shim.so ]] || fail "not installed"
	run "$dest/usr/bin/wpool" check -m balance --shim -b 127.0.0.1:0 -- "$SHIM_C"
	assert_success
	[[ ! -e /usr/local/lib/wpool/libwpool-shim.so ]] ||
		skip "a wpool is installed in /usr/local: its library would be found"
	rm "$dest/usr/lib/wpool/libwpool-shim.so"
	WPOOL=$dest/usr/bin/wpool RUN_TIMEOUT=5 run_wpool -1 -m balance --shim \
		-b 127.0.0.1:0 -- "$SHIM_C"
	[[ $stderr == *"--shim: cannot find libwpool-shim.so"* ]] || fail "stderr: $stderr"
}
