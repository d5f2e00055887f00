# shim_helpers.bash: what tests/bats/91-shim.bats (wpool -m balance --shim,
# unmodified servers) adds to helpers.bash and balance_helpers.bash.  Load
# after both.
#
# Every app (tests/apps/shim/, tests/bin/shim_blocking) answers GET / with
# "pid PID" (the process that served it: the wpool worker, or gunicorn's
# own worker under it) and GET /slow the same after $SLOW_SEC seconds.

SHIM_APPS=$REPO_ROOT/tests/apps/shim
SHIM_LIB=$REPO_ROOT/src/shim/libwpool-shim.so
SHIM_C=$REPO_ROOT/tests/bin/shim_blocking
# How long /slow holds its worker.
SHIM_SLOW=1

shim_setup() {
	bal_setup
	[[ -r $SHIM_LIB ]] || fail "no $SHIM_LIB (run: make test-bins)"
	[[ -x $SHIM_C ]] || fail "no $SHIM_C (run: make test-bins)"
	cp -r "$SHIM_APPS"/. "$BATS_TEST_TMPDIR/"
}

# shim_needs COMMAND...: test dependencies from DEPS_TEST.
shim_needs() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null ||
			fail "$c is not installed: run make deps-test (DEPS_TEST)"
	done
}

# shim_get PATH [ARGS...]: one request on a connection of its own; the
# body, or "ERR" and curl's status.
shim_get() {
	local path=$1
	shift
	curl -sS --max-time 10 -H 'Connection: close' "$@" \
		"http://127.0.0.1:$PORT$path" 2>&1 || echo "ERR $?"
}

# shim_start ARGS... -- COMMAND...: a balance pool of two workers under
# the shim, the apps' directory as cwd; waits until both are ready.
shim_start() {
	start_wpool -m balance --shim -n 2 -b "127.0.0.1:$(free_tcp_port)" \
		-C "$BATS_TEST_TMPDIR" -e SLOW_SEC=$SHIM_SLOW "$@"
	wait_ready 2 20
}

# shim_conns: the connections wpool counts in flight, all workers.
shim_conns() {
	st "sum(w['connections'] for w in W.values())"
}

# shim_check_busy: a worker busy with /slow gets none of the next fast
# requests (least-conn sees its connection until the shim reports it
# closed), then every connection is reported closed: none left in flight.
shim_check_busy() {
	local out=$BATS_TEST_TMPDIR/slow.out i body slow bg
	local -a fast=()
	shim_get /slow >"$out" &
	bg=$!
	record_pid $bg
	wait_st 10 "sum(w['connections'] for w in W.values()) == 1"
	for ((i = 0; i < 5; i++)); do
		body=$(shim_get /)
		[[ $body == "pid "* ]] || fail "request $i: $body"
		fast+=("${body#pid }")
	done
	wait "$bg"
	slow=$(cat "$out")
	[[ $slow == "pid "* ]] || fail "/slow: $slow"
	slow=${slow#pid }
	for i in "${fast[@]}"; do
		[[ $i == "${fast[0]}" && $i != "$slow" ]] ||
			fail "while pid $slow served /slow, the fast requests went to: ${fast[*]}"
	done
	wait_st 5 "sum(w['connections'] for w in W.values()) == 0"
	wait_st 5 "sum(w['requests'] for w in W.values()) >= 6"
	if grep -q 'does not hold\|garbage\|no more connections' "$LOG"; then
		fail "the shim sent a bad message: $(cat "$LOG")"
	fi
}

# shim_check_recycle K: K sequential requests under --max-requests 6 (as
# shim_server started): every one answered, the workers recycled.
shim_check_recycle() {
	local k=$1 i body failed=0
	local -A pids=()
	for ((i = 0; i < k; i++)); do
		body=$(shim_get /)
		if [[ $body == "pid "* ]]; then
			pids[${body#pid }]=1
		else
			failed=$((failed + 1))
			echo "request $i: $body"
		fi
	done
	((failed == 0)) || fail "$failed of $k requests failed; log: $(cat "$LOG")"
	wait_for_log_count 'served its --max-requests' 2
	((${#pids[@]} >= 3)) ||
		fail "only ${#pids[@]} processes served $k requests under --max-requests 6"
}

# shim_server NAME -- COMMAND...: the whole check of one server: least-conn
# keeps a busy worker out, every connection is seen closed, and
# --max-requests recycles with no request failed.
shim_server() {
	shift
	shim_start --max-requests 6 "$@"
	shim_check_busy
	shim_check_recycle 18
}
