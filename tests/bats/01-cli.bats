#!/usr/bin/env bats
# The command line: help, version, and bad input that must never start a
# half-configured pool (exit 64, one line naming the option and the value).

load ../helpers

@test "--help exits 0 and lists every run option on stdout" {
	run_wpool --help
	assert_success
	assert_equal "$stderr" ""
	assert_output --partial "usage: wpool"
	local opt
	for opt in --workers --bind --mode --balancer --backlog --max-queue \
		--restart-delay --max-restart-delay --min-uptime --no-restart \
		--stop-signal --stop-timeout --ready --ready-timeout \
		--reload-batch --fallback-cpus --control --name --config \
		--user --chdir --env --watchdog --max-requests \
		--max-requests-jitter --max-memory --pidfile --log-prefix \
		--metrics --quiet --verbose --help --version; do
		[[ $output == *"$opt"* ]] || fail "--help does not mention $opt"
	done
}

@test "-h is --help" {
	run_wpool -h
	assert_success
	assert_output --partial "--workers"
}

@test "--version prints a version and exits 0" {
	run_wpool --version
	assert_success
	assert_output --regexp '[0-9]+\.[0-9]+\.[0-9]+'
	assert_equal "$stderr" ""
}

# assert_one_error: stderr is one error line, optionally followed by the
# GNU-style "Try 'wpool --help'" hint, and nothing else.
assert_one_error() {
	local n=${#stderr_lines[@]}
	if ((n == 2)) && [[ ${stderr_lines[1]} == "Try 'wpool --help'"* ]]; then
		n=1
	fi
	((n == 1)) || fail "$(printf 'expected one error line, got %d:\n%s' \
		"${#stderr_lines[@]}" "$stderr")"
}

# bad_value OPTION-AS-LOGGED VALUE ARGS...: wpool ARGS -- true must exit 64
# with one stderr line naming the option and the value, quickly.
bad_value() {
	local opt=$1 val=$2
	shift 2
	local t0
	t0=$(now_us)
	run_wpool "$@" -- "$TESTSRV" --exit 0
	assert_equal "$status" 64
	(($(elapsed_ms "$t0") < 2000)) || fail "took $(elapsed_ms "$t0") ms"
	assert_one_error
	[[ ${stderr_lines[0]} == "wpool: error: $opt: invalid value '$val'"* ]] ||
		fail "$(printf 'stderr does not name %s and %s:\n%s' "$opt" "'$val'" "$stderr")"
	assert_equal "$output" ""
}

@test "-n 0 is refused" {
	bad_value -n/--workers 0 -n 0
	[[ $stderr == *1024* ]] || fail "no accepted range in: $stderr"
}

@test "-n 1025 is refused" {
	bad_value -n/--workers 1025 -n 1025
	[[ $stderr == *1024* ]] || fail "no accepted range in: $stderr"
}

@test "-n abc is refused" {
	bad_value -n/--workers abc -n abc
}

@test "--workers=-3 is refused" {
	bad_value -n/--workers -3 --workers=-3
}

@test "--restart-delay -1 is refused" {
	bad_value --restart-delay -1 --restart-delay -1
}

@test "--stop-signal FOO is refused" {
	bad_value --stop-signal FOO --stop-signal FOO
}

@test "--stop-timeout x is refused" {
	bad_value --stop-timeout x --stop-timeout x
}

@test "--max-memory 12Q is refused" {
	bad_value --max-memory 12Q --max-memory 12Q
}

@test "-b garbage is refused" {
	bad_value -b/--bind garbage -b garbage
}

@test "-b 127.0.0.1:99999 is refused as a usage error, not a bind error" {
	bad_value -b/--bind 127.0.0.1:99999 -b 127.0.0.1:99999
}

@test "-e without = is refused" {
	bad_value -e/--env FOO -e FOO
}

@test "-C with a directory that does not exist is refused" {
	bad_value -C/--chdir "$BATS_TEST_TMPDIR/nonexistent" -C "$BATS_TEST_TMPDIR/nonexistent"
}

@test "-q with -v is refused: one or the other" {
	run_wpool -q -v -- "$TESTSRV" --exit 0
	assert_equal "$status" 64
	assert_equal "${stderr_lines[0]}" "wpool: error: -q/--quiet and -v/--verbose: give one or the other"
}

@test "--balancer and --max-queue outside balance mode are refused, as --max-requests is" {
	local opt
	for opt in "--balancer round-robin" "--max-queue 5"; do
		# shellcheck disable=SC2086
		run_wpool $opt -b 127.0.0.1:0 -- "$TESTSRV" --exit 0
		assert_equal "$status" 64
		assert_equal "${stderr_lines[0]}" "wpool: error: --balancer and --max-queue: only in balance mode (-m balance), where wpool hands out the connections"
	done
	run_wpool -127 -m balance --balancer round-robin --max-queue 5 -b 127.0.0.1:0 -- ./no-such-command
	assert_equal "$status" 127
}

@test "-C with a file is refused as not a directory" {
	: >"$BATS_TEST_TMPDIR/file"
	bad_value -C/--chdir "$BATS_TEST_TMPDIR/file" -C "$BATS_TEST_TMPDIR/file"
	assert_equal "${stderr_lines[0]}" \
		"wpool: error: -C/--chdir: invalid value '$BATS_TEST_TMPDIR/file': not a directory: expected a directory"
}

@test "-b with a URL scheme other than udp:// names the scheme" {
	local spec
	for spec in http://127.0.0.1:80 HTTPS://localhost:443; do
		bad_value -b/--bind "$spec" -b "$spec"
		[[ ${stderr_lines[0]} == *"unknown scheme '${spec%%://*}://': expected HOST:PORT,"* ]] ||
			fail "not about the scheme: ${stderr_lines[0]}"
	done
}

@test "--stop-signal accepts names with and without SIG, and numbers" {
	# Each is valid: wpool gets as far as running the command.
	local sig
	for sig in TERM SIGINT 15 usr1; do
		run_wpool --no-restart -n 1 --stop-signal "$sig" -- "$TESTSRV" --exit 0
		assert_equal "$status" 0
	done
}

@test "an unknown long option is refused with exit 64" {
	run_wpool --foo -- "$TESTSRV" --exit 0
	assert_equal "$status" 64
	assert_one_error
	assert_equal "${stderr_lines[0]}" "wpool: error: unknown option '--foo'"
}

@test "an unknown short option is refused with exit 64" {
	run_wpool -Z -- "$TESTSRV" --exit 0
	assert_equal "$status" 64
	assert_one_error
	[[ ${stderr_lines[0]} == *"unknown option '-Z'"* ]] ||
		fail "stderr: $stderr"
}

@test "an option without its value is refused with exit 64" {
	run_wpool -n
	assert_equal "$status" 64
	[[ $stderr == *-n* ]] || fail "stderr does not name -n: $stderr"
}

@test "no command is refused with exit 64" {
	run_wpool -n 2
	assert_equal "$status" 64
	assert_one_error
	[[ ${stderr_lines[0]} == "wpool: error: no command given"* ]] ||
		fail "stderr: $stderr"
}

@test "a bad option after -b binds nothing, writes nothing, starts nothing" {
	local port sock=$BATS_TEST_TMPDIR/s.sock
	port=$(free_tcp_port)
	run_wpool -b "127.0.0.1:$port" -b "unix:$sock" \
		--pidfile "$BATS_TEST_TMPDIR/wpool.pid" --stop-timeout x \
		-- sh -c 'touch "$0"; exec sleep 5' "$BATS_TEST_TMPDIR/ran"
	assert_equal "$status" 64
	[[ $stderr == *"--stop-timeout"*"'x'"* ]] || fail "stderr: $stderr"
	[[ ! -e $sock ]] || fail "the unix socket $sock was created"
	[[ ! -e $BATS_TEST_TMPDIR/wpool.pid ]] || fail "the pidfile was written"
	[[ ! -e $BATS_TEST_TMPDIR/ran ]] || fail "a worker was started"
	[[ ! -e $WPOOL_CONTROL ]] || fail "the control socket was created"
	tcp_port_free "$port" || fail "127.0.0.1:$port is still bound"
}

@test "bad values in a later option are caught before a good -n auto is computed" {
	run_wpool -n auto --mode nonsense -- "$TESTSRV" --exit 0
	assert_equal "$status" 64
	[[ ${stderr_lines[0]} == "wpool: error: -m/--mode: invalid value 'nonsense'"* ]] ||
		fail "stderr: $stderr"
}
