#!/usr/bin/env bats
# --ready listen (the default) with the servers users run, from Debian's
# packages: each is given the pool's socket as it takes one, loads its code
# slowly (SLOW=1.5 s, tests/apps/compat/), and must count as starting while it
# loads, then as ready once it waits on the socket, without any change to
# the server.  Then a reload to a build that dies while loading fails with
# exit 1 while the old workers keep answering every request.

load ../helpers

APPS=$BATS_TEST_DIRNAME/../apps/compat
SLOW=1.5

# needs COMMAND: a test dependency from DEPS_TEST (make deps-test).
needs() {
	command -v "$1" >/dev/null ||
		fail "$1 is not installed: run make deps-test (DEPS_TEST)"
}

# state_of ID: the worker's state as `status --json` says.
state_of() {
	"$WPOOL" status --json | jq -r ".workers[] | select(.id == $1) | .state"
}

# served: GET / answers 200 with "ok".
served() {
	[[ $(curl -s --max-time 2 "http://127.0.0.1:$PORT/") == ok* ]]
}

# loads_then_serves PORT: worker 0 counts as starting while it loads (half
# a second in as well), then as ready, and then answers GET / at once.
loads_then_serves() {
	wait_until 10 eval '[[ $(state_of 0) == starting ]]'
	sleep 0.5
	[[ $(state_of 0) == starting ]] ||
		fail "ready while still loading: $(state_of 0)"
	wait_until 20 eval '[[ $(state_of 0) == ready ]]'
	run curl -s --max-time 2 "http://127.0.0.1:$1/"
	assert_output --partial ok
}

# slow_start ARGS... -- COMMAND: a pool of one worker of a server that
# loads for SLOW seconds: starting while it loads, ready once it serves.
slow_start() {
	export SLOW
	cp "$APPS"/wsgi.py "$APPS"/asgi.py "$APPS"/app.js "$APPS"/app.php \
		"$APPS"/config.ru "$BATS_TEST_TMPDIR/"
	local t0
	t0=$(now_us)
	start_wpool -n 1 --stop-timeout 5 -b 127.0.0.1:0 "$@"
	loads_then_serves "$PORT"
	(($(now_us) - t0 >= 1000000)) ||
		fail "ready after $((($(now_us) - t0) / 1000)) ms, before it loaded"
}

@test "gunicorn (sync workers): starting while it imports, ready when it serves" {
	needs gunicorn
	slow_start -- gunicorn -w 2 --chdir "$BATS_TEST_TMPDIR" wsgi:app
}

@test "gunicorn (gthread workers)" {
	needs gunicorn
	slow_start -- gunicorn -w 2 -k gthread --threads 4 \
		--chdir "$BATS_TEST_TMPDIR" wsgi:app
}

@test "gunicorn with uvicorn workers" {
	needs gunicorn
	/usr/bin/python3 -c 'import uvicorn' 2>/dev/null ||
		fail "python3-uvicorn is not installed (make deps-test)"
	slow_start -- gunicorn -w 2 -k uvicorn.workers.UvicornWorker \
		--chdir "$BATS_TEST_TMPDIR" asgi:app
}

@test "uvicorn --fd 3" {
	/usr/bin/python3 -c 'import uvicorn' 2>/dev/null ||
		fail "python3-uvicorn is not installed (make deps-test)"
	slow_start -C "$BATS_TEST_TMPDIR" -- /usr/bin/python3 -m uvicorn \
		--fd 3 asgi:app
}

@test "node, listen({fd: 3})" {
	needs node
	slow_start -- node "$BATS_TEST_TMPDIR/app.js"
}

@test "Go with go-systemd's activation.Listeners" {
	needs go
	[[ -d /usr/share/gocode/src/github.com/coreos/go-systemd ]] ||
		fail "golang-github-coreos-go-systemd-dev is not installed"
	mkdir -p "$BATS_TEST_TMPDIR/gosrv"
	cp "$APPS/gosrv/main.go" "$BATS_TEST_TMPDIR/gosrv/"
	(cd "$BATS_TEST_TMPDIR/gosrv" && GO111MODULE=off \
		GOPATH=/usr/share/gocode GOCACHE="$BATS_TEST_TMPDIR/gocache" \
		go build -o gosrv .) || fail "cannot build the Go server"
	slow_start -- "$BATS_TEST_TMPDIR/gosrv/gosrv"
}

@test "PHP (php-cli, sockets from php://fd/3)" {
	needs php
	slow_start -- php "$BATS_TEST_TMPDIR/app.php"
}

@test "puma, cluster mode with --preload" {
	needs puma
	local port
	port=$(free_tcp_port)
	export SLOW
	cp "$APPS/config.ru" "$BATS_TEST_TMPDIR/"
	start_wpool -n 1 -b "127.0.0.1:$port" -C "$BATS_TEST_TMPDIR" -- \
		puma --preload -w 2 -b "tcp://127.0.0.1:$port" config.ru
	loads_then_serves "$port"
}

@test "nginx (master and workers, NGINX=3;)" {
	needs nginx
	local port
	port=$(free_tcp_port)
	nginx_conf "$BATS_TEST_TMPDIR/ngx" "$port" 2 ok
	# nginx loads fast: a shell sleeps first, holding the socket.
	export SLOW
	start_wpool -n 1 -e 'NGINX=3;' -b "127.0.0.1:$port" -- sh -c \
		"sleep $SLOW; exec nginx -p $BATS_TEST_TMPDIR/ngx -c $BATS_TEST_TMPDIR/ngx/nginx.conf -e stderr"
	loads_then_serves "$port"
}

@test "HAProxy in master-worker mode (bind fd@3)" {
	needs haproxy
	export SLOW
	start_wpool -n 1 -b 127.0.0.1:0 -- sh -c \
		"sleep $SLOW; exec haproxy -W -db -f $APPS/haproxy.cfg"
	loads_then_serves "$PORT"
}

@test "lighttpd with systemd socket activation" {
	needs lighttpd
	local port
	port=$(free_tcp_port)
	mkdir -p "$BATS_TEST_TMPDIR/www/0"
	echo ok 0 >"$BATS_TEST_TMPDIR/www/0/index.html"
	export SLOW
	start_wpool -n 1 -e "COMPAT_DIR=$BATS_TEST_TMPDIR" -e "COMPAT_PORT=$port" \
		-b "127.0.0.1:$port" -- sh -c \
		"sleep $SLOW; exec lighttpd -D -f $APPS/lighttpd.conf"
	loads_then_serves "$port"
}

# reload_to_broken: a pool of two gunicorn workers serving; the app is
# replaced by one that raises while it imports; `wpool reload` must fail
# with exit 1 and the reason, with every request answered meanwhile.
@test "gunicorn: reload to a build that fails while importing fails, 0 failed requests" {
	needs gunicorn
	export SLOW=0.5
	cp "$APPS/wsgi.py" "$BATS_TEST_TMPDIR/"
	start_wpool -n 2 -b 127.0.0.1:0 -- gunicorn -w 1 \
		--chdir "$BATS_TEST_TMPDIR" wsgi:app
	wait_until 20 eval '[[ $("$WPOOL" status --check) == healthy* ]]'
	local old
	old=$("$WPOOL" status --json | jq -c '[.workers[].pid] | sort')
	echo 'raise RuntimeError("broken build")' >>"$BATS_TEST_TMPDIR/wsgi.py"
	(
		for _ in $(seq 1 40); do
			curl -s -o /dev/null --max-time 3 -w '%{http_code}\n' \
				"http://127.0.0.1:$PORT/"
			sleep 0.1
		done >"$BATS_TEST_TMPDIR/codes"
	) 3>&- &
	local load=$!
	run timeout 30 "$WPOOL" reload
	assert_failure 1
	assert_output --partial "exited with status 3"
	wait "$load"
	run sort "$BATS_TEST_TMPDIR/codes"
	run uniq -c <<<"$output"
	assert_output --regexp '^ *40 200$'
	# The old workers still serve; none of the new generation does.
	assert_equal "$("$WPOOL" status --json | jq -c '[.workers[] | select(.state == "ready") | .pid] | sort')" "$old"
}

@test "gunicorn: reload waits for the new generation to import, then succeeds" {
	needs gunicorn
	export SLOW=1.5
	cp "$APPS/wsgi.py" "$BATS_TEST_TMPDIR/"
	start_wpool -n 1 -b 127.0.0.1:0 -- gunicorn -w 1 \
		--chdir "$BATS_TEST_TMPDIR" wsgi:app
	wait_until 20 eval '[[ $("$WPOOL" status --check) == healthy* ]]'
	local t0
	t0=$(now_us)
	run timeout 30 "$WPOOL" reload
	assert_success
	(($(now_us) - t0 >= 1500000)) ||
		fail "reload returned after $((($(now_us) - t0) / 1000)) ms, before the new generation imported"
	served
}

@test "--ready exec still counts a worker ready at exec" {
	needs gunicorn
	export SLOW=3
	cp "$APPS/wsgi.py" "$BATS_TEST_TMPDIR/"
	start_wpool -n 1 --ready exec -b 127.0.0.1:0 -- gunicorn -w 1 \
		--chdir "$BATS_TEST_TMPDIR" wsgi:app
	wait_until 5 eval '[[ $(state_of 0) == ready ]]'
	! served || fail "served already: the test proves nothing"
}

@test "a command that never holds the pool's socket is ready after 1 s alive, and the log says why" {
	start_wpool -n 1 -b 127.0.0.1:0 -- sh -c 'exec 3<&-; exec sleep 30'
	wait_until 10 eval '[[ $(state_of 0) == ready ]]'
	wait_for_log "cannot see it wait; ready after 1s alive"
}

# A server under steady load never waits in accept (a connection is always
# queued) but serves: holding a connection accepted from the pool's
# listener counts as ready.  The connection is queued before the worker
# has loaded, so its accept never blocks; it then serves that client for
# good, never calling accept again.
@test "a worker that accepts a queued connection and serves it, never waiting in accept, is ready" {
	cat >"$BATS_TEST_TMPDIR/busy.py" <<'PY'
import socket, time
time.sleep(1)
lis = socket.socket(fileno=3)
conn, _ = lis.accept()
conn.recv(100)
time.sleep(60)
PY
	start_wpool -n 1 --ready-timeout 6 --stop-timeout 1 -b 127.0.0.1:0 -- \
		/usr/bin/python3 "$BATS_TEST_TMPDIR/busy.py"
	# Connected and sent while the worker still loads: it waits queued.
	/usr/bin/python3 -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x")
time.sleep(30)' "$PORT" 3>&- &
	record_pid $!
	wait_until 5 eval '[[ $(state_of 0) == ready ]]'
	! grep -q 'not ready' "$LOG" || fail "killed as not ready: $(cat "$LOG")"
}
