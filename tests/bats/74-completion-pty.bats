#!/usr/bin/env bats
# Completion as people use it: real interactive bash (with bash-completion
# loaded), zsh (compinit) and fish on a pty (tmux), keys typed, Tab
# pressed, the screen read.  The command lines are the ones that broke:
# after `-b 127.0.0.1:8080` bash splits words at ':' (COMP_WORDBREAKS).
# Every wait polls the pane against a deadline.

load '../helpers'
load '../complete_helpers'

# A directory with files that must not be offered where a value is, two
# pools running (one in the shell's XDG_RUNTIME_DIR, one started without
# it), and the shells' environment.  Sets P1 and P2, the pools' names.
# Their names differ from the first letter: Tab lists them, inserts nothing.
pty_setup() {
	unset WPOOL_CONTROL
	shared_dir 0700
	export XDG_RUNTIME_DIR=$SDIR
	mkdir -p work
	cd work || return 1
	: >notes.txt
	: >data.ini
	P1="qa$$x"
	P2="zb$$y"
	start_bg_pool "$XDG_RUNTIME_DIR/wpool/$P1.sock" -- --name "$P1" -n 1 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	local sys=/run/wpool
	(($(id -u) == 0)) || sys=/tmp/wpool-$(id -u)
	start_bg_pool "$sys/$P2.sock" -u XDG_RUNTIME_DIR -- --name "$P2" -n 1 \
		-b 127.0.0.1:0 -- "$TESTSRV"
	pty_env "$BATS_TEST_TMPDIR/home"
}

# line_is TEXT: the command line reads TEXT (trailing blanks aside).
line_is() {
	assert_equal "$(pty_line)" "${1%"${1##*[! ]}"}"
}

# completes LINE KEYS... -- WANT: typing LINE then KEYS makes the command
# line read WANT, with the cursor at its end (after a blank, if WANT ends
# in one).
completes() {
	local line=$1 want
	shift
	local -a keys=()
	while [[ $1 != -- ]]; do
		keys+=("$1")
		shift
	done
	want=$2
	pty_complete "$line" "^\\\$ $(re_quote "${want%"${want##*[! ]}"}")\$" \
		"${keys[@]}" || return 1
	# The blank after a word is not on the screen: the cursor says.
	pty_wait_cursor $((2 + ${#want}))
}

# lists LINE KEYS... -- REGEX...: typing LINE then KEYS shows a line
# matching each REGEX (the candidates), and no file of the directory.
lists() {
	local line=$1 re
	shift
	local -a keys=()
	while [[ $1 != -- ]]; do
		keys+=("$1")
		shift
	done
	shift
	pty_complete "$line" "$1" "${keys[@]}"
	for re in "$@"; do
		grep -Eq -- "$re" <<<"$SCREEN" ||
			fail "no /$re/ after '$line' ${keys[*]}: $SCREEN"
	done
	[[ $SCREEN != *notes.txt* && $SCREEN != *data.ini* ]] ||
		fail "files offered after '$line': $SCREEN"
}

@test "bash on a pty: options, values, subcommands and pool names after -b HOST:PORT" {
	pty_setup
	bash_on_pty
	local b='wpool -b 127.0.0.1:8080'
	# An option after an address with a colon.
	completes "$b --rea" Tab -- "$b --ready"
	lists "$b --ready" Tab Tab -- '^--ready +--ready-timeout$'
	line_is "$b --ready"
	# Its values, not files.
	lists "$b --ready " Tab Tab -- '^exec +listen +notify$'
	completes "$b --ready n" Tab -- "$b --ready notify "
	completes "$b --ready=li" Tab -- "$b --ready=listen "
	# --mode, --balancer, with other colon-ful listeners before.
	completes "wpool -b [::1]:8080 -b unix:/tmp/a.sock --mode re" Tab -- \
		"wpool -b [::1]:8080 -b unix:/tmp/a.sock --mode reuseport "
	lists "$b -b :9090 -m " Tab Tab -- '^balance +inetd +reuseport +shared$'
	completes "$b --balance" Tab -- "$b --balancer "
	lists "$b --balancer " Tab Tab -- '^ip-hash +least-conn +round-robin$'
	completes "$b --balancer=ro" Tab -- "$b --balancer=round-robin "
	# A value with a colon of its own.
	completes "$b -u nobody:nogr" Tab -- "$b -u nobody:nogroup "
	# Subcommands after a socket path with a colon.
	lists "wpool -s /tmp/a:b.sock st" Tab Tab -- '^status +stop$'
	completes "wpool -s /tmp/a:b.sock sig" Tab -- "wpool -s /tmp/a:b.sock signal "
	completes "wpool -s /tmp/a:b.sock li" Tab -- "wpool -s /tmp/a:b.sock list "
	# The pools running, for --name.
	lists "wpool --name " Tab Tab -- "(^| )$P1( |\$)" "(^| )$P2( |\$)"
	completes "$b --name zb" Tab -- "$b --name $P2 "
	completes "wpool --name=qa" Tab -- "wpool --name=$P1 "
	# The command to run, after --.
	completes "wpool --name $P1 list --j" Tab -- "wpool --name $P1 list --json "
	completes "$b -- whoam" Tab -- "$b -- whoami "
}

@test "bash without bash-completion on a pty: the same command lines" {
	pty_setup
	bash_on_pty bare
	local b='wpool -b 127.0.0.1:8080'
	completes "$b --rea" Tab -- "$b --ready"
	lists "$b --ready " Tab Tab -- '^exec +listen +notify$'
	completes "$b --ready=li" Tab -- "$b --ready=listen "
	completes "$b -b :9090 --mode re" Tab -- "$b -b :9090 --mode reuseport "
	lists "$b --balancer " Tab Tab -- '^ip-hash +least-conn +round-robin$'
	completes "$b -u nobody:nogr" Tab -- "$b -u nobody:nogroup "
	lists "wpool -s /tmp/a:b.sock st" Tab Tab -- '^status +stop$'
	completes "$b --name zb" Tab -- "$b --name $P2 "
	completes "wpool --name $P1 list --j" Tab -- "wpool --name $P1 list --json "
	completes "$b -- whoam" Tab -- "$b -- whoami "
}

@test "zsh on a pty: options, values, subcommands and pool names after -b HOST:PORT" {
	pty_setup
	zsh_on_pty
	local b='wpool -b 127.0.0.1:8080'
	completes "$b --rea" Tab -- "$b --ready"
	lists "$b --rea" Tab Tab -- '^--ready +' '^--ready-timeout +'
	lists "$b --ready " Tab -- 'exec +listen +notify'
	completes "$b --ready n" Tab -- "$b --ready notify "
	completes "$b --ready=li" Tab -- "$b --ready=listen "
	completes "wpool -b [::1]:8080 -b unix:/tmp/a.sock --mode re" Tab -- \
		"wpool -b [::1]:8080 -b unix:/tmp/a.sock --mode reuseport "
	lists "$b -b :9090 -m " Tab -- 'balance +inetd +reuseport +shared'
	completes "$b --balance" Tab -- "$b --balancer="
	lists "$b --balancer " Tab -- 'ip-hash +least-conn +round-robin'
	completes "$b -u nobody:nogr" Tab -- "$b -u nobody:nogroup "
	lists "wpool -s /tmp/a:b.sock st" Tab -- '^status +-- ' '^stop +-- '
	completes "wpool -s /tmp/a:b.sock sig" Tab -- "wpool -s /tmp/a:b.sock signal "
	lists "wpool --name " Tab -- "(^| )$P1( |\$)" "(^| )$P2( |\$)"
	completes "$b --name zb" Tab -- "$b --name $P2 "
	completes "wpool --name $P1 list --j" Tab -- "wpool --name $P1 list --json "
	completes "$b -- whoam" Tab -- "$b -- whoami "
}

@test "fish on a pty: options, values, subcommands and pool names after -b HOST:PORT" {
	pty_setup
	fish_on_pty
	local b='wpool -b 127.0.0.1:8080'
	completes "$b --rea" Tab -- "$b --ready"
	lists "$b --rea" Tab Tab -- '--ready-timeout'
	lists "$b --ready " Tab -- '^exec .*listen .*notify'
	completes "$b --ready n" Tab -- "$b --ready notify "
	completes "$b --ready=li" Tab -- "$b --ready=listen "
	completes "wpool -b [::1]:8080 -b unix:/tmp/a.sock --mode re" Tab -- \
		"wpool -b [::1]:8080 -b unix:/tmp/a.sock --mode reuseport "
	lists "$b -b :9090 -m " Tab -- '^balance .*inetd .*reuseport .*shared'
	completes "$b --balance" Tab -- "$b --balancer "
	lists "$b --balancer " Tab -- '^ip-hash .*least-conn .*round-robin'
	completes "$b -u nobody:nogr" Tab -- "$b -u nobody:nogroup "
	lists "wpool -s /tmp/a:b.sock st" Tab -- 'status +\(.*stop'
	completes "wpool -s /tmp/a:b.sock sig" Tab -- "wpool -s /tmp/a:b.sock signal "
	lists "wpool --name " Tab -- "(^| )$P1( |\$)" "(^| )$P2( |\$)"
	completes "$b --name zb" Tab -- "$b --name $P2 "
	completes "wpool --name $P1 list --j" Tab -- "wpool --name $P1 list --json "
	completes "$b -- whoam" Tab -- "$b -- whoami "
}
