#!/usr/bin/env bats
# `wpool reload` re-reads the -c file (issue 13): the new generation runs
# the file's new command and [env]; the listeners follow the file (a new
# bind serves, a removed one refuses once its old workers are gone); a
# broken file or a change that cannot be made in place is refused with
# the pool untouched; --dry-run lists the changes and makes none.

load ../helpers
load ../control_helpers

# write_conf FILE ARGS PORT... [-- ENV_LINE...]: a pool of 2 running
# testsrv ARGS, one [listen] per PORT (named l<PORT>), then [env] lines.
write_conf() {
	local file=$1 args=$2 p
	shift 2
	{
		printf '[pool]\nworkers = 2\nstop-timeout = 5s\ncommand = %s %s\n' \
			"$TESTSRV" "$args"
		while (($#)) && [[ $1 != -- ]]; do
			printf '\n[listen]\nbind = 127.0.0.1:%s\nname = l%s\n' "$1" "$1"
			shift
		done
		[[ ${1:-} == -- ]] && shift
		if (($#)); then
			printf '\n[env]\n'
			printf '%s\n' "$@"
		fi
	} >"$file"
}

# cmdline PID: its argv, space-separated.
cmdline() {
	tr '\0' ' ' <"/proc/$1/cmdline"
}

# stderr_has TEXT|--regexp RE: run_wp's stderr (kept apart) has it.
stderr_has() {
	if [[ $1 == --regexp ]]; then
		[[ $stderr =~ $2 ]] && return 0
	else
		[[ $stderr == *"$1"* ]] && return 0
	fi
	fail "stderr lacks ${*: -1}: $stderr"
}

# refused PORT: true when a connection to PORT is refused.
refused() {
	! curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null
}

@test "reload re-reads the file: the new generation runs the new command and [env]" {
	local p1 p old
	p1=$(free_tcp_port)
	write_conf pool.ini "" "$p1" -- "APP = one" "GONE = 1"
	start_wpool -s "$CTL" -c pool.ini
	wait_for_workers 2
	old=("${WORKERS[@]}")
	write_conf pool.ini "--delay-start 0" "$p1" -- "APP = two" "ADDED = yes"
	run_wp reload
	assert_success
	assert_line --regexp '^reloaded: 2 workers at generation 1'
	wait_gone "${old[@]}" --timeout 10
	wait_for_workers 2
	for p in "${WORKERS[@]}"; do
		assert_equal "$(cmdline "$p")" "$TESTSRV --delay-start 0 "
		assert_equal "$(worker_env "$p" APP)" two
		assert_equal "$(worker_env "$p" ADDED)" yes
		assert_equal "$(worker_env "$p" GONE)" ""
		assert_equal "$(worker_env "$p" WPOOL_GENERATION)" 1
	done
	wait_for_log 'reload: env: APP: .one. -> .two.'
	# The command line still wins over the file, as at start: -n 2 here.
	stop_wpool
	write_conf pool.ini "" "$p1"
	start_wpool -s "$CTL" -c pool.ini -n 1
	wait_for_workers 1
	sed -i 's/^workers = 2$/workers = 3/' pool.ini
	run_wp reload
	assert_success
	wait_status 10 '.reload.generation == 1 and .reload.state == "done"'
	wait_for_workers 1
}

@test "a broken file is refused with FILE:LINE, exit 1, and the pool is untouched" {
	local p1 before
	p1=$(free_tcp_port)
	write_conf pool.ini "" "$p1"
	start_wpool -s "$CTL" -c pool.ini
	wait_for_workers 2
	before="${WORKERS[*]}"
	cp pool.ini good.ini
	# An unknown key, on line 3.
	sed -i '3i bogus = 1' pool.ini
	run_wp reload
	assert_failure 1
	local refused=$stderr
	[[ $refused == "wpool: error: pool.ini:3: unknown key 'bogus' in [pool]: expected name, workers, "*" or command" ]] ||
		fail "got: $refused"
	# The same message as at start.
	run_wpool -64 check -c pool.ini
	assert_equal "$stderr" "$refused"
	# A bad value; an unreadable file; a bind that fails (port taken).
	cp good.ini pool.ini
	sed -i 's/^stop-timeout = 5s$/stop-timeout = soon/' pool.ini
	run_wp reload
	assert_failure 1
	stderr_has "pool.ini:3: stop-timeout: invalid value 'soon'"
	local taken
	taken=$(free_tcp_port)
	hold_tcp_listener "$taken"
	write_conf pool.ini "--delay-start 0" "$p1" "$taken"
	run_wp reload
	assert_failure 1
	stderr_has --regexp "127\.0\.0\.1:$taken.*(in use|Address already)"
	mv pool.ini moved.ini
	run_wp reload
	assert_failure 1
	stderr_has "cannot read 'pool.ini'"
	# SIGHUP with a broken file: logged, nothing replaced.
	mv moved.ini pool.ini
	sed -i '3i workers = many' pool.ini
	send_signal "$WPOOL_PID" HUP
	wait_for_log 'warning: reload: pool.ini:3: workers: invalid value'
	# Untouched: same pids, generation 0, still serving.
	wait_for_workers 2
	assert_equal "${WORKERS[*]}" "$before"
	run wp status --json
	assert_success
	jq -e '.generation == 0 and .ready == 2' <<<"$output" >/dev/null ||
		fail "status: $output"
	run http_get / "$p1"
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=0$'
	# Mended, the reload goes through.
	cp good.ini pool.ini
	run_wp reload
	assert_success
}

@test "listeners: a new bind serves after the reload, a removed one refuses once its old workers are gone" {
	local p1 p2 p3 old p
	p1=$(free_tcp_port)
	p2=$(free_tcp_port)
	while [[ $p2 == "$p1" ]]; do p2=$(free_tcp_port); done
	write_conf pool.ini "" "$p1" "$p2"
	WAIT_LISTENERS=2 start_wpool -s "$CTL" -c pool.ini
	wait_for_workers 2
	old=("${WORKERS[@]}")
	p3=$(free_tcp_port)
	while [[ $p3 == "$p1" || $p3 == "$p2" ]]; do p3=$(free_tcp_port); done
	# p1 removed, p2 kept (now at fd 4), p3 new (fd 3).
	write_conf pool.ini "" "$p3" "$p2"
	run_wp reload
	assert_success
	wait_gone "${old[@]}" --timeout 10
	PORT=$p2 wait_for_workers 2
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 2
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" "l$p3:l$p2"
	done
	run http_get / "$p3"
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=[01] gen=1$'
	run http_get / "$p2"
	assert_success
	assert_output --regexp 'gen=1$'
	refused "$p1" || fail "port $p1 still accepts connections after the reload"
	wait_for_log "no longer listening on 127\.0\.0\.1:$p1"
	run wp status --json
	jq -e "[.listeners[] | tostring] | length == 2" <<<"$output" >/dev/null ||
		fail "status listeners: $output"
}

@test "what cannot change in place is refused by name, the pool untouched" {
	local p1 before
	p1=$(free_tcp_port)
	write_conf pool.ini "" "$p1"
	start_wpool -s "$CTL" -c pool.ini
	wait_for_workers 2
	before="${WORKERS[*]}"
	sed -i '2i mode = reuseport' pool.ini
	run_wp reload
	assert_failure 1
	assert_equal "$stderr" "wpool: error: reload: mode cannot change in place ('shared' -> 'reuseport'): it decides how connections reach the workers; restart the pool to change it"
	sed -i 's/^mode = reuseport$/name = other/' pool.ini
	run_wp reload
	assert_failure 1
	stderr_has "reload: name cannot change in place"
	wait_for_workers 2
	assert_equal "${WORKERS[*]}" "$before"
	run wp status --json
	jq -e '.generation == 0' <<<"$output" >/dev/null || fail "status: $output"
}

@test "reload --dry-run lists what would change, one line each, and changes nothing" {
	local p1 p2 before
	p1=$(free_tcp_port)
	p2=$(free_tcp_port)
	while [[ $p2 == "$p1" ]]; do p2=$(free_tcp_port); done
	write_conf pool.ini "" "$p1" -- "APP = one"
	start_wpool -s "$CTL" -c pool.ini
	wait_for_workers 2
	before="${WORKERS[*]}"
	run_wp reload --dry-run
	assert_success
	assert_output "reload would change nothing"
	write_conf pool.ini "--delay-start 0" "$p2" -- "APP = two" "NEW = x"
	sed -i 's/^workers = 2$/workers = 3/' pool.ini
	run_wp reload --dry-run
	assert_success
	assert_equal "$output" "workers: 2 -> 3
command: $TESTSRV -> $TESTSRV --delay-start 0
env: APP: 'one' -> 'two'
env: + NEW=x
bind: + 127.0.0.1:$p2 (name l$p2, fd 3)
bind: - 127.0.0.1:$p1 (name l$p1)"
	# Nothing changed: not bound, not replaced.
	refused "$p2" || fail "the dry run bound $p2"
	wait_for_workers 2
	assert_equal "${WORKERS[*]}" "$before"
	run wp status --json
	jq -e '.generation == 0' <<<"$output" >/dev/null || fail "status: $output"
	# A broken file: the same refusal as a reload's.
	sed -i '3i bogus = 1' pool.ini
	run_wp reload --dry-run
	assert_failure 1
	stderr_has "pool.ini:3: unknown key 'bogus'"
}
