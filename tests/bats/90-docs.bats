#!/usr/bin/env bats
# The docs are part of the interface: every run option of cli.c's table
# (printed by tests/bin/opt_table) is in --help, documented in man/wpool.1
# (and in wpool.conf(5) if the file takes it) and completed by the bash,
# zsh and fish completions, with its values; every subcommand of --help is
# documented and completed; the man page is lint-clean; the completions
# work; the README's quick start is what `make demo` runs, and the demo
# server behaves as the README says.

load ../helpers

MAN="$REPO_ROOT/man/wpool.1"
BASH_COMP="$REPO_ROOT/completions/wpool.bash"
ZSH_COMP="$REPO_ROOT/completions/_wpool"
FISH_COMP="$REPO_ROOT/completions/wpool.fish"
README="$REPO_ROOT/README.md"
HELLO="$REPO_ROOT/examples/hello"
OPT_TABLE="$REPO_ROOT/tests/bin/opt_table"

# Most tests read files only: they need neither testsrv nor a pool.
setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	LOG="$BATS_TEST_TMPDIR/wpool.log"
	: >"$LOG"
	WPOOL_PID=
	PORT=
	RECORDED=()
	export WPOOL_CONTROL="$BATS_TEST_TMPDIR/ctl.sock"
	unset LISTEN_FDS LISTEN_PID LISTEN_FDNAMES NOTIFY_SOCKET \
		WATCHDOG_USEC WATCHDOG_PID WPOOL_SYSFS_ROOT WPOOL_PROCFS_ROOT
}

teardown() {
	common_teardown
}

# help_text: `wpool --help`, or a failure that says how to build it.
help_text() {
	[[ -x $WPOOL ]] || fail "no wpool binary at $WPOOL (run: make wpool)"
	"$WPOOL" --help
}

# help_long_opts: every --long option named in --help, one a line.
help_long_opts() {
	help_text | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# help_short_opts: every -X of an "  -X, --long" line of --help.
help_short_opts() {
	help_text | sed -nE 's/^ +-([A-Za-z]), --.*/\1/p' | sort -u
}

# help_subcommands: the words that follow "wpool" (and its -s/--name
# prefix) in the usage lines: run, check, status, reload...
help_subcommands() {
	help_text | sed -nE \
		-e 's/^(usage:)? +wpool (\[-s PATH \| --name NAME\] )?([a-z]+) .*/\3/p' \
		-e 's/^(usage:)? +wpool (\[-s PATH \| --name NAME\] )?([a-z]+)$/\3/p' |
		sort -u
}

# man_text: the man page source with \- turned into -, so that
# ".Fl \-max\-queue" reads ".Fl --max-queue".
man_text() {
	sed 's/\\-/-/g' "$MAN"
}

# opt_table: cli.c's table of run options, "NAME LETTER KIND WHERE
# VALUES" a line, or a failure that says how to build it.
opt_table() {
	[[ -x $OPT_TABLE ]] || fail "no $OPT_TABLE (run: make test-bins)"
	"$OPT_TABLE"
}

# table_rows WHERE: the rows of the options that WHERE (cli or file)
# takes.
table_rows() {
	opt_table | awk -v w="$1" '{ n = split($4, a, ","); for (i = 1; i <= n; i++) if (a[i] == w) print }'
}

@test "--help names enough options and subcommands for the checks to mean something" {
	local n
	n=$(help_long_opts | wc -l)
	((n >= 30)) || fail "only $n long options found in --help"
	n=$(help_short_opts | wc -l)
	((n >= 10)) || fail "only $n short options found in --help"
	run help_subcommands
	assert_line status
	assert_line reload
	assert_line stop
}

@test "the option table has enough entries for the checks to mean something" {
	local n
	n=$(table_rows cli | wc -l)
	((n >= 30)) || fail "only $n command-line options in the table"
	n=$(table_rows file | wc -l)
	((n >= 25)) || fail "only $n [pool] keys in the table"
	n=$(opt_table | awk '$2 != "-"' | wc -l)
	((n >= 10)) || fail "only $n short options in the table"
}

@test "--help shows exactly the table's command-line options, with their letters" {
	local name letter kind where values missing=() extra=()
	local help
	help=$(help_text)
	while read -r name letter kind where values; do
		grep -qE -- "^ +(-[A-Za-z], )?--${name}( |\$)" <<<"$help" ||
			missing+=("--$name")
		if [[ $letter != - ]]; then
			grep -qE -- "^  -${letter}, --${name}( |\$)" <<<"$help" ||
				missing+=("-$letter")
		fi
	done < <(table_rows cli)
	# The options of control subcommands are in the usage lines only.
	for name in $(help_long_opts); do
		name=${name#--}
		case $name in json | check | no-wait | dry-run | binary | reload) continue ;; esac
		table_rows cli | grep -qE "^${name} " || extra+=("--$name")
	done
	((${#missing[@]} == 0)) || fail "the table's options missing from --help: ${missing[*]}"
	((${#extra[@]} == 0)) || fail "options in --help but not in the table: ${extra[*]}"
}

@test "every command-line option of the table is documented in man/wpool.1" {
	local name letter kind where values missing=() man
	man=$(man_text)
	while read -r name letter kind where values; do
		# As an item of a list, not just mentioned: ".Fl \-mode" (Fl
		# adds one dash) reads ".Fl -mode" in man_text.
		if [[ $letter != - ]]; then
			grep -qE -- "^\.It Fl ${letter} , Fl -${name}( |\$)" <<<"$man" ||
				missing+=("-$letter, --$name")
		else
			grep -qE -- "^\.It .*Fl -${name}( |\$)" <<<"$man" ||
				missing+=("--$name")
		fi
	done < <(table_rows cli)
	((${#missing[@]} == 0)) ||
		fail "not documented as .It Fl items in man/wpool.1: ${missing[*]}"
}

@test "every [pool] key of the table is documented in wpool.conf(5)" {
	local name letter kind where values missing=()
	while read -r name letter kind where values; do
		grep -qE "^\.It (.* )?Ic ${name}( |\$)" "$REPO_ROOT/man/wpool.conf.5" ||
			missing+=("$name")
	done < <(table_rows file)
	((${#missing[@]} == 0)) ||
		fail "no '.It Ic KEY' entry in wpool.conf.5: ${missing[*]}"
}

# fish_with_value: the options fish's __wpool_where skips a value after.
fish_with_value() {
	sed -n '/set -l with_value/,/[^\\]$/p' "$FISH_COMP" | tr -s ' \\\n' '\n' |
		grep -E '^-'
}

@test "every command-line option of the table is in the bash, zsh and fish completions, taking a value as the table says" {
	local name letter kind where values offers with missing=() wrong=()
	offers=$(bash_offers)
	with=$(fish_with_value)
	while read -r name letter kind where values; do
		grep -qxF -- "--$name" <<<"$offers" || missing+=("bash:--$name")
		grep -qE -- "--${name}([]=[',}]|\$)" "$ZSH_COMP" ||
			missing+=("zsh:--$name")
		grep -qE -- "-l ${name}( |\$)" "$FISH_COMP" ||
			missing+=("fish:--$name")
		if [[ $letter != - ]]; then
			grep -qxF -- "-$letter" <<<"$offers" ||
				missing+=("bash:-$letter")
			grep -qE -- "[{(' ]-${letter}[+,}]" "$ZSH_COMP" ||
				missing+=("zsh:-$letter")
			grep -qE -- "-s ${letter} -l ${name} " "$FISH_COMP" ||
				missing+=("fish:-$letter")
		fi
		# Whether the next word is the option's value.
		if [[ $kind == flag ]]; then
			! bash_takes_value "--$name" || wrong+=("bash:--$name")
			! grep -qE -- "--${name}=" "$ZSH_COMP" || wrong+=("zsh:--$name")
			! grep -qxF -- "--$name" <<<"$with" || wrong+=("fish:--$name")
			! grep -E -- "-l ${name}( |\$)" "$FISH_COMP" | grep -qE ' -[xr] ' ||
				wrong+=("fish:--$name")
		else
			bash_takes_value "--$name" || wrong+=("bash:--$name")
			grep -qE -- "--${name}=" "$ZSH_COMP" || wrong+=("zsh:--$name")
			grep -qxF -- "--$name" <<<"$with" || wrong+=("fish:--$name")
			grep -E -- "-l ${name}( |\$)" "$FISH_COMP" | grep -qE ' -[xr] ' ||
				wrong+=("fish:--$name")
		fi
	done < <(table_rows cli)
	((${#missing[@]} + ${#wrong[@]} == 0)) ||
		fail "missing from completions: ${missing[*]}; disagreeing with the table on taking a value: ${wrong[*]}"
}

# bash_takes_value OPT: the bash completion skips a value after OPT.
bash_takes_value() {
	bash -c 'source "$1" && _wpool_takes_value "$2"' _ "$BASH_COMP" "$1"
}

@test "every value of an enum option is completed by bash, zsh and fish and documented in man/wpool.1" {
	local name letter kind where values want got missing=() man
	man=$(man_text)
	while read -r name letter kind where values; do
		[[ $kind == enum ]] || continue
		want=$(tr ',' '\n' <<<"$values" | sort | paste -sd' ')
		got=$(complete_bash wpool "--$name" '' | sort | paste -sd' ')
		[[ $got == "$want" ]] || missing+=("bash:--$name=(${got:0:60})")
		grep -E -- "--${name}=" "$ZSH_COMP" | grep -qF ":(${values//,/ })" ||
			missing+=("zsh:--$name")
		if command -v fish >/dev/null; then
			got=$(fish --no-config -c 'source $argv[1]
				complete -C"wpool --$argv[2] " | string replace -r "\t.*" ""' \
				"$FISH_COMP" "$name" | sort | paste -sd' ')
			[[ $got == "$want" ]] || missing+=("fish:--$name=(${got:0:60})")
		fi
		for v in ${values//,/ }; do
			grep -qE -- "(^\.It |Fl -${name} )Cm ${v}( |\$)" <<<"$man" ||
				missing+=("man:--$name $v")
		done
	done < <(opt_table)
	((${#missing[@]} == 0)) || fail "enum values not completed or documented: ${missing[*]}"
}

@test "every subcommand in --help is documented in man/wpool.1" {
	local cmd missing=()
	for cmd in $(help_subcommands); do
		grep -qE "^\.Cm ${cmd}( |\$)" "$MAN" || missing+=("$cmd")
	done
	((${#missing[@]} == 0)) ||
		fail "not in the man page's synopsis: ${missing[*]}"
}

# bash_offers: every option the bash completion offers, one a line: the
# run options, and those of the control commands.
bash_offers() {
	{
		complete_bash wpool -
		complete_bash wpool status -
		complete_bash wpool reload -
		complete_bash wpool stop -
		complete_bash wpool restart 0 -
	} | sort -u
}

@test "every subcommand in --help is in the bash, zsh and fish completions" {
	local cmd missing=()
	for cmd in $(help_subcommands); do
		grep -qE "^_wpool_subcommands=.*\b${cmd}\b" "$BASH_COMP" ||
			missing+=("bash:$cmd")
		grep -qE "'${cmd}:" "$ZSH_COMP" || missing+=("zsh:$cmd")
		grep -qE "\b${cmd}\\\\t" "$FISH_COMP" || missing+=("fish:$cmd")
	done
	((${#missing[@]} == 0)) || fail "missing from completions: ${missing[*]}"
}

@test "man/wpool.1 is clean under mandoc -Tlint -W warning" {
	command -v mandoc >/dev/null || skip "machine lacks mandoc"
	run mandoc -Tlint -W warning "$MAN"
	assert_success
	assert_output ""
}

# complete_bash WORD...: runs the bash completion on the words (the last
# one is being completed) in a fresh bash; prints COMPREPLY, one a line.
complete_bash() {
	bash -c '
		source "$1" || exit 1
		shift
		complete -p wpool >/dev/null || exit 1
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		_wpool || exit 1
		printf "%s\n" "${COMPREPLY[@]}"
	' complete_bash "$BASH_COMP" "$@"
}

@test "bash completion: sourcing it registers _wpool for wpool" {
	run bash -c 'source "$1" && complete -p wpool' _ "$BASH_COMP"
	assert_success
	assert_output "complete -F _wpool wpool"
}

@test "bash completion: wpool --mo completes to --mode" {
	run complete_bash wpool --mo
	assert_success
	assert_output "--mode"
}

@test "bash completion: wpool --mode offers the four modes" {
	run complete_bash wpool --mode ''
	assert_success
	assert_equal "$(sort <<<"$output" | paste -sd' ')" \
		"balance inetd reuseport shared"
	run complete_bash wpool -m re
	assert_output "reuseport"
}

@test "bash completion: wpool st offers status and stop" {
	run complete_bash wpool st
	assert_success
	assert_equal "$(sort <<<"$output" | paste -sd' ')" "status stop"
}

@test "bash completion: wpool signal offers signal names" {
	run complete_bash wpool signal ''
	assert_success
	assert_line TERM
	assert_line HUP
	assert_line USR1
	assert_line USR2
	assert_line KILL
	run complete_bash wpool --stop-signal QU
	assert_output QUIT
}

@test "bash completion: values of --balancer, --ready, and control arguments" {
	run complete_bash wpool --balancer ''
	assert_equal "$(sort <<<"$output" | paste -sd' ')" \
		"ip-hash least-conn round-robin"
	run complete_bash wpool --ready ''
	assert_equal "$(sort <<<"$output" | paste -sd' ')" "exec listen notify"
	run complete_bash wpool --name web status --
	assert_equal "$(sort <<<"$output" | paste -sd' ')" "--check --json"
	run complete_bash wpool reload --
	assert_equal "$(sort <<<"$output" | paste -sd' ')" "--dry-run --no-wait"
	run complete_bash wpool restart a
	assert_output "all"
}

@test "bash completion: files, directories and commands where they belong" {
	mkdir -p conf.d
	: >pool.ini
	run complete_bash wpool -c poo
	assert_output "pool.ini"
	run complete_bash wpool --chdir con
	assert_output "conf.d"
	run complete_bash wpool -C poo
	assert_output ""
	# After --, the command to run.
	run complete_bash wpool -n 2 -- bas
	assert_line bash
	run complete_bash wpool -- st
	refute_line status
}

@test "zsh completion parses (zsh -n)" {
	command -v zsh >/dev/null || skip "machine lacks zsh"
	run zsh -n "$ZSH_COMP"
	assert_success
	assert_output ""
}

@test "fish completion parses (fish -n)" {
	command -v fish >/dev/null || skip "machine lacks fish"
	run fish -n "$FISH_COMP"
	assert_success
	assert_output ""
}

@test "fish completion: --mode values, subcommands and signal names" {
	command -v fish >/dev/null || skip "machine lacks fish"
	run fish --no-config -c 'source $argv[1]
		complete -C"wpool --mode " | string replace -r "\t.*" ""' \
		"$FISH_COMP"
	assert_success
	assert_equal "$(sort <<<"$output" | paste -sd' ')" \
		"balance inetd reuseport shared"
	run fish --no-config -c 'source $argv[1]
		complete -C"wpool st" | string replace -r "\t.*" ""' "$FISH_COMP"
	assert_equal "$(sort <<<"$output" | paste -sd' ')" "status stop"
	run fish --no-config -c 'source $argv[1]
		complete -C"wpool signal " | string replace -r "\t.*" ""' \
		"$FISH_COMP"
	assert_line TERM
	assert_line HUP
}

@test "README: the quick start's set-up commands are make demo and make check" {
	# The first code block after "## Quick start", without blank lines.
	run awk '
		/^## Quick start/ { inqs = 1; next }
		inqs && /^## / { exit }
		inqs && /^```/ { if (inblock) exit; inblock = 1; next }
		inblock && NF { print }
	' "$README"
	assert_success
	assert_output "$(printf 'make demo\nmake check')"
}

@test "README shows the command that make demo runs" {
	local demo
	demo=$(sed -n 's/^\t\(\.\/wpool .*\)$/\1/p' "$REPO_ROOT/Makefile" |
		head -1)
	[[ -n $demo ]] || fail "no ./wpool command in the Makefile's demo target"
	grep -qF -- "$demo" "$README" ||
		fail "README does not show the demo command: $demo"
}

@test "README documents every mode that wpool accepts" {
	[[ -x $WPOOL ]] || fail "no wpool binary at $WPOOL (run: make wpool)"
	local mode modes
	modes=$(opt_table | awk '$1 == "mode" { print $5 }')
	[[ -n $modes ]] || fail "no mode option in the table"
	for mode in ${modes//,/ }; do
		# A mode wpool accepts must be documented, and not as planned.
		if "$WPOOL" check -m "$mode" -b 127.0.0.1:0 -- /bin/true \
			>/dev/null 2>&1; then
			grep -qE "^\| \`${mode}\`" "$README" ||
				fail "README's modes table lacks $mode"
			! grep -qiE "\`${mode}\`.*planned" "$README" ||
				fail "README calls $mode planned, but wpool accepts it"
			grep -qE "^\.It Cm ${mode}\$" "$MAN" ||
				fail "man/wpool.1 MODES lacks $mode"
		fi
	done
}

@test "the demo server answers as the README says, survives kill -9, logs USR2, stops on TERM" {
	[[ -x $WPOOL ]] || fail "no wpool binary at $WPOOL (run: make wpool)"
	[[ -x $HELLO ]] || fail "no $HELLO (run: make examples/hello)"
	start_wpool -n 2 -b 127.0.0.1:0 -- "$HELLO"
	wait_for_log_count 'worker [0-9]+ started' 2
	run http_get /
	assert_success
	assert_output --regexp '^hello from worker [01] \(pid [0-9]+\)$'

	local victim=${output##*pid }
	victim=${victim%)}
	kill -KILL "$victim"
	wait_for_log "worker [01] \\(pid $victim\\) killed by signal KILL"
	wait_for_log_count 'worker [0-9]+ started' 3
	run http_get /
	assert_success
	assert_output --regexp '^hello from worker [01] \(pid [0-9]+\)$'

	# Forwarded signals are logged by hello, not fatal to it.
	run "$WPOOL" signal USR2
	assert_success
	wait_for_log_count 'hello: worker [01] \(pid [0-9]+\) got SIGUSR2' 2
	assert_equal "$(log_count 'worker [0-9]+ started')" 3

	kill -TERM "$WPOOL_PID"
	wait_wpool_exit
	assert_equal "$WPOOL_STATUS" 0
	# hello exits cleanly on TERM: status 0, not killed by the signal.
	assert_equal "$(log_count 'exited with status 0')" 2
}
