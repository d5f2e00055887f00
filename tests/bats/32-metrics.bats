#!/usr/bin/env bats
# --metrics HOST:PORT: Prometheus text on /metrics (checked by promtool, a
# real parser), the status JSON on /status, 404 elsewhere; bounded
# requests, slow clients dropped, never blocking the master.

load ../helpers

# metrics_port: the port wpool logged for its metrics endpoint.
metrics_port() {
	wait_for_log 'metrics on http://127\.0\.0\.1:[0-9]+/metrics' >&2
	sed -nE 's|.*metrics on http://127\.0\.0\.1:([0-9]+)/metrics.*|\1|p' "$LOG" | head -1
}

@test "/metrics is valid Prometheus text (promtool) with the pool's figures" {
	command -v promtool >/dev/null || skip "machine lacks promtool (Debian's prometheus)"
	start_wpool -s "$BATS_TEST_TMPDIR/ctl.sock" -n 2 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local mp
	mp=$(metrics_port)
	run curl -sS --max-time 5 "http://127.0.0.1:$mp/metrics"
	assert_success
	printf '%s\n' "$output" >metrics.txt
	run promtool check metrics <metrics.txt
	assert_success
	run cat metrics.txt
	assert_line 'wpool_workers_target{pool="wpool"} 2'
	assert_line 'wpool_workers_alive{pool="wpool"} 2'
	assert_line 'wpool_workers_ready{pool="wpool"} 2'
	assert_line --regexp '^wpool_restarts_total\{pool="wpool"\} 0$'
	# Per-worker series by slot and role, the pid a value (issue 12).
	local id
	for id in 0 1; do
		assert_line --regexp "^wpool_worker_rss_bytes\\{pool=\"wpool\",id=\"$id\",role=\"cur\"\\} [1-9][0-9]*\$"
		assert_line "wpool_worker_up{pool=\"wpool\",id=\"$id\",role=\"cur\",state=\"ready\"} 1"
	done
	assert_equal "$(sed -nE 's/^wpool_worker_pid\{pool="wpool",id="[01]",role="cur"\} ([0-9]+)$/\1/p' metrics.txt | sort -n | paste -sd' ')" "${WORKERS[*]}"
	# A kill shows up as a restart.
	kill -9 "${WORKERS[0]}"
	wait_for_log 'killed by signal KILL'
	wait_for_workers 2
	run curl -sS --max-time 5 "http://127.0.0.1:$mp/metrics"
	assert_line 'wpool_restarts_total{pool="wpool"} 1'
}

@test "/status is the JSON of wpool status --json; other paths 404, other methods 405" {
	start_wpool -s "$BATS_TEST_TMPDIR/ctl.sock" -n 2 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 2
	local mp
	mp=$(metrics_port)
	run curl -sS --max-time 5 "http://127.0.0.1:$mp/status"
	assert_success
	assert_equal "$(jq -r '.target, .alive, (.workers | length)' <<<"$output" | paste -sd' ')" "2 2 2"
	run curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$mp/nope"
	assert_output 404
	run curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://127.0.0.1:$mp/metrics"
	assert_output 405
}

@test "HEAD gets GET's status and headers, with no body" {
	start_wpool -s "$BATS_TEST_TMPDIR/ctl.sock" -n 1 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local mp path len fd
	mp=$(metrics_port)
	for path in /metrics /status /nope; do
		# Raw, so that a body sent after the headers would be seen
		# (not fd 3: bats writes its results there).
		exec {fd}<>"/dev/tcp/127.0.0.1/$mp"
		printf 'HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&"$fd"
		timeout 5 cat <&"$fd" >head.out
		exec {fd}<&-
		run cat head.out
		case $path in
		/nope) assert_line --index 0 $'HTTP/1.1 404 Not Found\r' ;;
		*) assert_line --index 0 $'HTTP/1.1 200 OK\r' ;;
		esac
		len=$(sed -nE 's/^Content-Length: ([0-9]+)\r$/\1/p' head.out)
		((len > 0)) || fail "HEAD $path: no Content-Length in: $output"
		# Nothing after the blank line that ends the headers.
		[[ $(tail -c 4 head.out | od -An -c | tr -d ' ') == '\r\n\r\n' ]] ||
			fail "HEAD $path: a body after the headers: $output"
	done
}

@test "a silent client is dropped and never delays others; an oversized request gets 431" {
	start_wpool -s "$BATS_TEST_TMPDIR/ctl.sock" -n 1 --metrics 127.0.0.1:0 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	wait_for_workers 1
	local mp
	mp=$(metrics_port)
	run python3 - "$mp" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
silent = socket.create_connection(("127.0.0.1", port))
t = time.time()
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    data += d
print("other client answered in %.2fs" % (time.time() - t))
assert data.startswith(b"HTTP/1.1 200"), data[:40]
assert time.time() - t < 2, "delayed by the silent client"
silent.settimeout(10)
t = time.time()
assert silent.recv(1) == b""
waited = time.time() - t
print("silent client dropped after %.1fs" % waited)
assert 1 < waited < 9, waited
big = socket.create_connection(("127.0.0.1", port))
try:
    big.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n")
except OSError:
    pass
resp = big.recv(100)
print(resp[:40])
assert resp.startswith(b"HTTP/1.1 431"), resp
PY
	assert_success
}

@test "a bad --metrics value is a usage error; a taken port fails start-up with nothing started" {
	run_wpool --metrics nope -- "$TESTSRV"
	assert_equal "$status" 64
	[[ $stderr == *"--metrics: invalid value 'nope'"* ]] || fail "stderr: $stderr"
	run_wpool --metrics unix:/tmp/x.sock -- "$TESTSRV"
	assert_equal "$status" 64
	local port
	port=$(free_tcp_port)
	hold_tcp_listener "$port"
	run_wpool -n 1 --metrics "127.0.0.1:$port" -s "$BATS_TEST_TMPDIR/ctl.sock" -- "$TESTSRV"
	assert_equal "$status" 1
	[[ $stderr == *"error: --metrics: cannot bind 127.0.0.1:$port"* ]] || fail "stderr: $stderr"
	[[ $stderr != *started* ]] || fail "a worker was started: $stderr"
}
