#!/usr/bin/env bats
# The config file (-c FILE, wpool.conf(5)): what it sets, how the command
# line overrides it, and its errors (FILE:LINE: message, exit 64, nothing
# started).

load ../helpers
load ../examples_helpers

# A pool of 2 on one named listener, with an [env] entry.
write_basic_conf() {
	cat >"${1:-pool.ini}" <<EOF
; a comment
# another comment
[pool]
workers = 2
command = $TESTSRV

[listen]
bind = 127.0.0.1:0
name = http

[env]
APP_ENV = test
EOF
}

@test "a config file starts the pool: workers, a named listener, [env]" {
	write_basic_conf
	WAIT_LISTENERS=1 start_wpool -c pool.ini
	assert_equal "$(log_count 'listening on 127\.0\.0\.1:[0-9]+ \(http, fd 3\)')" 1
	wait_for_workers 2
	assert_equal "$(sorted_ids)" "0 1"
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 1
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" http
		assert_equal "$(worker_env "$p" APP_ENV)" test
		assert_equal "$(worker_env "$p" WPOOL_WORKERS)" 2
	done
	# And what a worker itself sees.
	run http_get /env
	assert_success
	assert_line LISTEN_FDNAMES=http
	assert_line APP_ENV=test
}

@test "an indented line is read like any other (no continuation lines), as wpool.conf(5) says" {
	printf '[pool]\ncommand = true\n  workers = 3\n' >"$BATS_TEST_TMPDIR/a.ini"
	run_wpool check -c "$BATS_TEST_TMPDIR/a.ini"
	assert_line 'workers = 3'
	printf '[pool]\nworkers = 3\n\t4\ncommand = true\n' >"$BATS_TEST_TMPDIR/b.ini"
	run_wpool -64 check -c "$BATS_TEST_TMPDIR/b.ini"
	[[ $stderr == *"b.ini:3: unknown key '4' in [pool]"* ]] || fail "unexpected: $stderr"
}

@test "check finds what a run would before binding: a command that cannot run (127, 126), an fd that cannot be adopted (1)" {
	run_wpool -127 check -- "$BATS_TEST_TMPDIR/nope"
	[[ $stderr == *"error: cannot run '$BATS_TEST_TMPDIR/nope': No such file or directory"* ]] ||
		fail "unexpected: $stderr"
	printf 'not a program\n' >"$BATS_TEST_TMPDIR/text"
	chmod 0644 "$BATS_TEST_TMPDIR/text"
	run_wpool -126 check -m inetd -b 127.0.0.1:0 -- "$BATS_TEST_TMPDIR/text"
	[[ $stderr == *"cannot run '$BATS_TEST_TMPDIR/text': Permission denied"* ]] ||
		fail "unexpected: $stderr"
	run_wpool -1 check -b fd:99 -- true
	[[ $stderr == *"cannot adopt fd:99: Bad file descriptor"* ]] || fail "unexpected: $stderr"
	run_wpool check -b 127.0.0.1:0 -- true
	assert_success
}

@test "check's output reads back the same with -c: a command with ' ;' and quotes; [env] keeps the winning value" {
	write_basic_conf pool.ini
	run_wpool check -c pool.ini -e APP_ENV=prod -e GREETING=hi -- \
		printf '%s|' 'a ; b' "it's" x
	assert_success
	printf '%s\n' "$output" >again.ini
	# One APP_ENV line: the one that wins.
	assert_equal "$(grep -c '^APP_ENV = ' again.ini)" 1
	assert_line 'APP_ENV = prod'
	run_wpool check -c again.ini
	assert_success
	assert_equal "$output" "$(cat again.ini)"
	# The command reads back as the same words.
	run_wpool --no-restart -n 1 -b 127.0.0.1:0 -c again.ini
	assert_success
	assert_output "a ; b|it's|x|"
}

@test "check warns about a value that wpool.conf cannot hold as it is" {
	run_wpool check -b 127.0.0.1:0 -e 'A=x ;y' -e 'B= lead' -- true
	assert_success
	assert_regex "$stderr" "warning: check: A = 'x ;y' cannot be written in wpool.conf"
	assert_regex "$stderr" "warning: check: B = ' lead' cannot be written in wpool.conf"
}

@test "-n on the command line beats workers = in the file" {
	write_basic_conf
	WAIT_LISTENERS=1 start_wpool -c pool.ini -n 3
	wait_for_workers 3
	assert_equal "$(sorted_ids)" "0 1 2"
	assert_equal "$(worker_env "${WORKERS[0]}" WPOOL_WORKERS)" 3
}

@test "options before and after -c both beat the file" {
	write_basic_conf
	WAIT_LISTENERS=1 start_wpool -n 1 -c pool.ini --name cfgtest
	wait_for_workers 1
	wait_for_log '^cfgtest: worker 0 started'
}

@test "-e NAME=VALUE beats [env]; the other [env] entries stay" {
	write_basic_conf
	cat >>pool.ini <<EOF
OTHER = from file
EOF
	WAIT_LISTENERS=1 start_wpool -c pool.ini -e APP_ENV=x -e EXTRA=1
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" APP_ENV)" x
		assert_equal "$(worker_env "$p" OTHER)" "from file"
		assert_equal "$(worker_env "$p" EXTRA)" 1
	done
}

@test "-b on the command line replaces every listener of the file" {
	write_basic_conf
	cat >>pool.ini <<EOF
[listen.admin]
bind = 127.0.0.1:0
EOF
	start_wpool -c pool.ini -b 127.0.0.1:0,name=cli
	wait_for_workers 2
	assert_equal "$(log_count 'listening on')" 1
	assert_equal "$(log_count 'listening on 127\.0\.0\.1:[0-9]+ \(cli, fd 3\)')" 1
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 1
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" cli
	done
}

@test "a command after -- replaces the file's command" {
	cat >pool.ini <<EOF
[pool]
workers = 2
command = /nonexistent/server --never-run
[listen]
bind = 127.0.0.1:0
EOF
	WAIT_LISTENERS=1 start_wpool -c pool.ini -- "$TESTSRV"
	wait_for_workers 2
	run grep -c 'cannot run' "$LOG"
	assert_output 0
}

@test "two [listen] sections give two listeners, named in file order" {
	cat >pool.ini <<EOF
[pool]
workers = 2
command = $TESTSRV
[listen]
bind = 127.0.0.1:0
name = http
[listen.admin]
bind = 127.0.0.1:0
EOF
	WAIT_LISTENERS=2 start_wpool -c pool.ini
	assert_equal "$(log_count 'listening on 127\.0\.0\.1:[0-9]+ \(http, fd 3\)')" 1
	assert_equal "$(log_count 'listening on 127\.0\.0\.1:[0-9]+ \(admin, fd 4\)')" 1
	wait_for_workers 2
	local p
	for p in "${WORKERS[@]}"; do
		assert_equal "$(worker_env "$p" LISTEN_FDS)" 2
		assert_equal "$(worker_env "$p" LISTEN_FDNAMES)" http:admin
	done
	# Both ports are served.
	run http_get / "${PORTS[1]}"
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=[01] '
}

@test "each bind = in one [listen] section starts another listener" {
	cat >pool.ini <<EOF
[pool]
workers = 1
command = $TESTSRV
[listen]
bind = 127.0.0.1:0
bind = 127.0.0.1:0
name = second
[listen.third]
bind = 127.0.0.1:0
EOF
	WAIT_LISTENERS=3 start_wpool -c pool.ini
	wait_for_workers 1
	assert_equal "$(worker_env "${WORKERS[0]}" LISTEN_FDNAMES)" l0:second:third
	assert_equal "$(worker_env "${WORKERS[0]}" LISTEN_FDS)" 3
}

@test "[listen] options reach the socket: a unix listener's mode" {
	cat >pool.ini <<EOF
[pool]
workers = 1
command = $TESTSRV
[listen.local]
bind = unix:$BATS_TEST_TMPDIR/s.sock
mode = 0640
backlog = 16
EOF
	WAIT_LISTENERS=1 start_wpool -c pool.ini
	wait_for_workers 1
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/s.sock")" 640
	run curl -sS --max-time 5 --unix-socket "$BATS_TEST_TMPDIR/s.sock" http://x/
	assert_success
	assert_output --regexp '^pid=[0-9]+ id=0 '
}

@test "command = is split like a shell: quotes and backslashes, no expansion" {
	cat >pool.ini <<'EOF'
[pool]
workers = 1
no-restart
command = printf "<%s>\n" "a b" 'c  d' e\ f "x\"y" 'it''s' $HOME ~ * ; a comment
EOF
	run_wpool -c pool.ini
	assert_success
	assert_equal "$output" "$(printf '<%s>\n' 'a b' 'c  d' 'e f' 'x"y' 'its' '$HOME' '~' '*')"
}

@test "an unterminated quote in command = is an error on its line" {
	printf '[pool]\nworkers = 1\ncommand = ./srv "a b\n' >bad.ini
	conf_error bad.ini 3 'command: .*unterminated quote'
}

@test "booleans: no value, true, yes, 1 set no-restart; false, no, 0 do not" {
	local v
	for v in "" " = true" " = yes" " = 1"; do
		printf '[pool]\nworkers = 1\nno-restart%s\ncommand = true\n' "$v" >b.ini
		# With no-restart the pool ends when its worker does.
		run_wpool -c b.ini
		assert_success
		[[ $stderr == *"not restarting (--no-restart)"* ]] ||
			fail "no-restart$v: $stderr"
	done
	for v in false no 0; do
		printf '[pool]\nworkers = 1\nno-restart = %s\ncommand = true\n' "$v" >b.ini
		start_wpool -c b.ini
		wait_for_log 'worker 0 \(pid [0-9]+\) exited with status 0'
		# Restarted (after the crash back-off), not ended.
		wait_for_log_count 'worker 0 started' 2
		alive "$WPOOL_PID" || log_fail "no-restart = $v ended the pool"
		stop_wpool
	done
}

@test "log-prefix = yes prefixes worker output with [NAME.ID]" {
	cat >pool.ini <<EOF
[pool]
name = pfx
workers = 1
no-restart = yes
log-prefix = yes
command = echo hello
EOF
	run_wpool -c pool.ini
	assert_success
	assert_line '[pfx.0] hello'
}

@test "a later value of a key wins; sections may repeat" {
	cat >pool.ini <<EOF
[pool]
workers = 1
[listen]
bind = 127.0.0.1:0
[pool]
workers = 2
command = $TESTSRV
EOF
	WAIT_LISTENERS=1 start_wpool -c pool.ini
	wait_for_workers 2
}

@test "a relative command and -C/chdir = work from the file" {
	mkdir -p srvdir
	cp "$TESTSRV" srvdir/mysrv
	cat >pool.ini <<EOF
[pool]
workers = 1
chdir = $BATS_TEST_TMPDIR/srvdir
command = ./mysrv
[listen]
bind = 127.0.0.1:0
EOF
	WAIT_LISTENERS=1 start_wpool -c pool.ini
	wait_for_workers 1
	assert_equal "$(readlink "/proc/${WORKERS[0]}/cwd")" "$BATS_TEST_TMPDIR/srvdir"
}

# --- errors: FILE:LINE: message, exit 64, nothing started -----------------

@test "error: an unknown section names the file and line" {
	printf '[pool]\nworkers = 2\n\n[listener]\nbind = 127.0.0.1:0\n' >bad.ini
	conf_error bad.ini 4 'unknown section \[listener\]' -- "$TESTSRV"
}

@test "error: an unknown section is an error even with no keys in it" {
	# (no-restart and true: if it wrongly starts, it ends at once)
	printf '[pool]\nworkers = 1\nno-restart\ncommand = true\n[listner]\n' >bad.ini
	conf_error bad.ini 5 'unknown section \[listner\]'
}

@test "error: an unknown key in [pool]" {
	printf '[pool]\nworkers = 2\nworkerz = 3\ncommand = %s\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 3 "unknown key 'workerz' in \[pool\]: expected name, workers, fallback-cpus, .* or command"
}

@test "error: quiet and verbose both true, on the line of the second" {
	printf '[pool]\nquiet = true\ncommand = true\nverbose = yes\n' >bad.ini
	conf_error bad.ini 4 "verbose: 'quiet' and 'verbose' are both true: give one or the other"
}

@test "error: two listeners of the file with one name, on the second one's line" {
	printf '[pool]\ncommand = true\n[listen]\nbind = 127.0.0.1:0\nname = a\n[listen]\nbind = 127.0.0.1:0\nname = a\n' >bad.ini
	conf_error bad.ini 8 "name: 'a' is already the name of the listener '127.0.0.1:0'"
	printf '[pool]\ncommand = true\n[listen.x]\nbind = 127.0.0.1:0\n[listen.x]\nbind = 127.0.0.2:0\n[env]\nA = 1\n' >bad.ini
	conf_error bad.ini 6 "name: 'x' is already the name of the listener '127.0.0.1:0'"
}

@test "error: an unknown key in [listen]" {
	printf '[pool]\ncommand = %s\n[listen]\nbind = 127.0.0.1:0\nnodelai = true\n' \
		"$TESTSRV" >bad.ini
	conf_error bad.ini 5 "unknown key 'nodelai' in \[listen\]"
}

@test "error: a bad value names the key, the value and what is accepted" {
	printf '[pool]\ncommand = %s\n\nworkers = two\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 4 "workers: invalid value 'two': expected .*1 .*1024"
	printf '[pool]\nstop-timeout = soon\n' >bad.ini
	conf_error bad.ini 2 "stop-timeout: invalid value 'soon'"
	printf '[pool]\nmode = fast\n' >bad.ini
	conf_error bad.ini 2 "mode: invalid value 'fast'"
}

@test "error: a bad boolean" {
	printf '[pool]\ncommand = %s\nno-restart = maybe\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 3 "no-restart: invalid value 'maybe'"
}

@test "error: a bad listener spec, on the line of the bind" {
	printf '[pool]\ncommand = %s\n[listen]\nbind = 127.0.0.1:99999\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 4 'bind'
}

@test "error: a [listen] key before bind =" {
	printf '[pool]\ncommand = %s\n[listen]\nname = http\nbind = 127.0.0.1:0\n' \
		"$TESTSRV" >bad.ini
	conf_error bad.ini 4 'bind'
}

@test "error: a key before any section" {
	printf '; comment\nworkers = 2\n[pool]\ncommand = %s\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 2 'section'
}

@test "error: an invalid [env] name" {
	printf '[pool]\ncommand = %s\n[env]\n1ST = x\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 4 '1ST'
}

@test "error: bind = or env = in [pool] point to their sections" {
	printf '[pool]\ncommand = %s\nbind = 127.0.0.1:0\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 3 '\[listen\]'
	printf '[pool]\ncommand = %s\nenv = A=1\n' "$TESTSRV" >bad.ini
	conf_error bad.ini 3 '\[env\]'
}

@test "error: a bad listener after a good one binds neither" {
	local port
	port=$(free_tcp_port)
	printf '[pool]\ncommand = %s\n[listen]\nbind = 127.0.0.1:%s\n[listen.b]\nbind = 127.0.0.1:0\nbacklog = -1\n' \
		"$TESTSRV" "$port" >bad.ini
	conf_error bad.ini 7 'backlog'
	tcp_port_free "$port" || fail "port $port is bound"
}

@test "error: a missing config file is named, exit 64" {
	run_wpool -64 -c nonexistent.ini -- "$TESTSRV"
	assert_equal "$output" ""
	assert_equal "${#stderr_lines[@]}" 1
	[[ $stderr == "wpool: "*nonexistent.ini* ]] || fail "got: $stderr"
	[[ $stderr == *"No such file"* ]] || fail "no reason given: $stderr"
	assert_nothing_started
}

@test "error: a directory as config file is named, exit 64" {
	mkdir conf.d
	run_wpool -64 -c conf.d -- "$TESTSRV"
	assert_equal "${#stderr_lines[@]}" 1
	[[ $stderr == "wpool: "*conf.d* ]] || fail "got: $stderr"
	assert_nothing_started
}

@test "error: no command in the file nor on the command line" {
	printf '[pool]\nworkers = 2\n[listen]\nbind = 127.0.0.1:0\n' >nocmd.ini
	run_wpool -64 -c nocmd.ini
	# A usage error: the pointer to --help follows (issue 12).
	assert_equal "${#stderr_lines[@]}" 2
	assert_equal "${stderr_lines[1]}" "Try 'wpool --help' for more information."
	assert_equal "${stderr_lines[0]%%:*}" wpool
	[[ $stderr == *"no command given"* ]] || fail "got: $stderr"
	assert_nothing_started
}

@test "error: command = with nothing in it" {
	printf '[pool]\nworkers = 2\ncommand =\n' >bad.ini
	conf_error bad.ini 3 'command'
}

# --- the file's keys and the docs ----------------------------------------

# The long options of --help that are run options (not -c, -b, -e, which
# have their own sections, nor --help/--version).
pool_keys() {
	# From "Pool:" on: the usage lines before it show the commands'
	# own options (upgrade's --binary, --reload).
	"$WPOOL" --help | sed -n '/^Pool:/,$p' | grep -oE -- '--[a-z][a-z-]+' | sed 's/^--//' |
		grep -vxE 'config|bind|env|help|version|json|check|no-wait|dry-run' |
		sort -u
}

@test "every run option of --help is a [pool] key" {
	local key keys=0
	for key in $(pool_keys); do
		keys=$((keys + 1))
		printf '[pool]\n%s = x\n' "$key" >k.ini
		run_wpool -c k.ini
		# A bad value, a missing command: anything but "unknown key".
		[[ $stderr != *"unknown key"* ]] ||
			fail "[pool] $key is refused: $stderr"
		((status != 0)) || fail "[pool] $key = x started a pool"
	done
	((keys >= 25)) || fail "only $keys options found in --help"
}

@test "wpool.conf(5) documents every [pool] and [listen] key" {
	local man="$REPO_ROOT/man/wpool.conf.5" key
	[[ -f $man ]] || fail "no $man"
	for key in $(pool_keys) command bind name backlog mode owner v6only \
		freebind defer_accept nodelay rcvbuf sndbuf; do
		grep -Eq "^\.It (.* )?Ic $key( |$)" "$man" ||
			fail "wpool.conf.5 has no '.It Ic $key' entry"
	done
}

@test "wpool.conf(5) is clean under mandoc -Tlint" {
	command -v mandoc >/dev/null || skip "machine lacks mandoc"
	run mandoc -Tlint -W warning "$REPO_ROOT/man/wpool.conf.5"
	assert_success
	assert_output ""
}
