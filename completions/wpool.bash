# bash completion for wpool(1)                             -*- shell-script -*-
#
# Works with or without the bash-completion package: it needs only bash's
# own compgen, and puts back together the words that bash splits at ':'
# and '=' itself (_wpool_words), so that `-b 127.0.0.1:8080` stays one
# word with either.  Install as $(pkg-config --variable=completionsdir
# bash-completion)/wpool, or source it from ~/.bashrc.

_wpool_subcommands='run check status reload scale restart signal stop upgrade list'

# Run options that take a value, and those that do not.  Keep in step
# with the table of run options in src/cli.c (tests/bats/90-docs.bats
# checks).
_wpool_opts_value='-n --workers -b --bind -m --mode --balancer --backlog
	--max-queue --restart-delay --max-restart-delay --min-uptime
	--stop-signal --stop-timeout --shutdown-delay --min-ready --ready --ready-timeout --reload-batch
	--fallback-cpus -s --control --name -c --config -u --user -C --chdir
	-e --env --watchdog --max-requests --max-requests-jitter --max-memory
	--max-crashes --memory-per-worker --pidfile --metrics'
_wpool_opts_flag='--no-restart --log-prefix --cpu-affinity --shim -q --quiet -v --verbose
	-h --help -V --version'

_wpool_signals='HUP INT QUIT ILL TRAP ABRT IOT BUS FPE KILL USR1 SEGV USR2
	PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ
	VTALRM PROF WINCH IO POLL PWR SYS'

# Does option $1 take a value in the next word?
_wpool_takes_value()
{
	local o
	for o in $_wpool_opts_value; do
		[[ $1 == "$o" ]] && return 0
	done
	return 1
}

# May option $1 come before a control command?
_wpool_client_opt()
{
	case $1 in
	-s | --control | --name | -q | -v | -s?*) return 0 ;;
	esac
	return 1
}

# Completes the value of option $1; the word being completed is $cur.
_wpool_value()
{
	case $1 in
	-m | --mode)
		COMPREPLY=($(compgen -W 'shared reuseport balance inetd' \
			-- "$cur")) ;;
	--balancer)
		COMPREPLY=($(compgen -W 'least-conn round-robin ip-hash' \
			-- "$cur")) ;;
	--ready)
		COMPREPLY=($(compgen -W 'exec notify listen' -- "$cur")) ;;
	--stop-signal)
		COMPREPLY=($(compgen -W "$_wpool_signals" -- "$cur")) ;;
	-n | --workers)
		COMPREPLY=($(compgen -W 'auto' -- "$cur")) ;;
	--name)
		COMPREPLY=($(compgen -W "$(_wpool_pools)" -- "$cur")) ;;
	-c | --config | --pidfile | -s | --control)
		compopt -o filenames 2>/dev/null || :
		COMPREPLY=($(compgen -f -- "$cur")) ;;
	-C | --chdir)
		compopt -o filenames 2>/dev/null || :
		COMPREPLY=($(compgen -d -- "$cur")) ;;
	-u | --user)
		if [[ $cur == *:* ]]; then
			# USER:GROUP: complete the group, keep the user.
			COMPREPLY=($(compgen -P "${cur%%:*}:" -g \
				-- "${cur#*:}"))
		else
			COMPREPLY=($(compgen -u -- "$cur"))
		fi ;;
	-b | --bind)
		COMPREPLY=($(compgen -W 'systemd unix: tcp:// udp:// fd: :' \
			-- "$cur"))
		[[ ${COMPREPLY[0]-} == *[:/] ]] && { compopt -o nospace 2>/dev/null || :; }
		;;
	-e | --env)
		COMPREPLY=($(compgen -e -S = -- "$cur"))
		compopt -o nospace 2>/dev/null || : ;;
	*)
		COMPREPLY=() ;;	# a number, a duration, an address...
	esac
	return 0
}

# Completes the command to run, whose name is at word $1.
_wpool_command()
{
	local at=$1
	if ((cword == at)); then
		COMPREPLY=($(compgen -c -- "$cur"))
		if [[ $cur == */* ]]; then
			compopt -o filenames 2>/dev/null || :
			COMPREPLY+=($(compgen -f -- "$cur"))
		fi
	elif declare -F _command_offset >/dev/null; then
		# bash-completion knows how to complete that command's words
		# (it counts bash's own words: map ours back).
		_command_offset "${_wpool_raw[at]}"
	else
		compopt -o filenames 2>/dev/null || :
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
	return 0
}

# The names of the pools running, as `wpool list` shows them; the wpool
# run is the one on the command line.
_wpool_pools()
{
	local w=${words[0]}
	w=${w/#\~/$HOME}
	[[ $w == */* ]] || w=$(type -P wpool) || return 0
	"$w" list 2>/dev/null | while read -r w _; do
		[[ $w == NAME ]] || printf '%s\n' "$w"
	done
}

# bash splits the command line at the characters of COMP_WORDBREAKS,
# ':' and '=' among them, so `-b 127.0.0.1:8080` reaches a completion as
# three words and `--ready=ex` as three.  _wpool_words puts back together
# what no blank separates, as the user typed it, up to the cursor: sets
# words, cword and _wpool_raw (the index in COMP_WORDS of each word's
# first piece).  It fails if COMP_LINE does not read as COMP_WORDS.
_wpool_words()
{
	local line=${COMP_LINE:0:COMP_POINT} w i n=-1 glued
	words=() _wpool_raw=()
	for ((i = 0; i <= COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]-}
		glued=1
		if [[ $line =~ ^[[:space:]]+ ]]; then
			line=${line:${#BASH_REMATCH[0]}}
			glued=0
		fi
		if ((i == COMP_CWORD)); then
			w=$line		# up to the cursor
		elif [[ ${line:0:${#w}} == "$w" ]]; then
			line=${line:${#w}}
		else
			return 1
		fi
		if ((n >= 0 && glued)) &&
			[[ $w == [:=]* || ${words[n]} == *[:=] ]]; then
			words[n]+=$w
		else
			words[++n]=$w
			_wpool_raw[n]=$i
		fi
	done
	cword=$n
}

# COMPREPLY holds whole words, but bash replaces only what follows the
# last character of the word $1 that breaks words (':' or '=', if they
# are in COMP_WORDBREAKS): cut that much off.
_wpool_trim()
{
	local word=$1 brk='' c i pre
	for c in : =; do
		[[ $COMP_WORDBREAKS == *"$c"* ]] && brk+=$c
	done
	[[ -n $brk ]] || return 0
	pre=${word%"${word##*[$brk]}"}
	[[ -n $pre ]] || return 0
	for i in "${!COMPREPLY[@]}"; do
		COMPREPLY[i]=${COMPREPLY[i]#"$pre"}
	done
}

_wpool()
{
	local cur prev w i sub='' running='' cword whole
	local -a words _wpool_raw
	COMPREPLY=()
	if ! _wpool_words; then
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
		_wpool_raw=("${!COMP_WORDS[@]}")
	fi
	cur=${words[cword]}
	prev=''
	((cword > 0)) && prev=${words[cword - 1]}
	whole=$cur

	# --opt=value: the value is being completed.
	if [[ $cur == --*=* ]]; then
		prev=${cur%%=*}
		cur=${cur#*=}
	fi
	_wpool_complete
	if [[ $whole == --*=* ]]; then
		for i in "${!COMPREPLY[@]}"; do
			COMPREPLY[i]=$prev=${COMPREPLY[i]}
		done
	fi
	_wpool_trim "$whole"
	return 0
}

# Fills COMPREPLY for cur, prev, words and cword.
_wpool_complete()
{
	# Find what the words before the cursor are: options, a control
	# command, or the start of the command to run.
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $sub ]]; then
			break
		fi
		case $w in
		--)
			_wpool_command $((i + 1))
			return 0 ;;
		--*=*)
			_wpool_client_opt "${w%%=*}" || running=1 ;;
		-*)
			_wpool_client_opt "$w" || running=1
			_wpool_takes_value "$w" && ((i++)) ;;
		run | check)
			running=1 ;;	# run options follow
		status | reload | scale | restart | signal | stop | upgrade | list)
			sub=$w ;;
		*)
			_wpool_command "$i"
			return 0 ;;
		esac
	done

	if [[ -n $sub ]]; then
		# Arguments of a control command: $i is its first argument.
		local nargs=$((cword - i))
		case $sub in
		status)
			COMPREPLY=($(compgen -W '--json --check' -- "$cur")) ;;
		list)
			COMPREPLY=($(compgen -W '--json' -- "$cur")) ;;
		reload)
			COMPREPLY=($(compgen -W '--no-wait --dry-run' -- "$cur")) ;;
		stop)
			COMPREPLY=($(compgen -W '--no-wait' -- "$cur")) ;;
		upgrade)
			if [[ ${words[cword - 1]} == --binary ]]; then
				compopt -o filenames 2>/dev/null || :
				COMPREPLY=($(compgen -f -- "$cur"))
			else
				COMPREPLY=($(compgen -W '--binary --reload' \
					-- "$cur"))
			fi ;;
		restart)
			if ((nargs == 0)); then
				COMPREPLY=($(compgen -W 'all' -- "$cur"))
			else
				COMPREPLY=($(compgen -W '--no-wait' -- "$cur"))
			fi ;;
		signal)
			((nargs == 0)) &&
				COMPREPLY=($(compgen -W "$_wpool_signals" \
					-- "$cur")) ;;
		esac
		return 0
	fi

	if [[ $prev == -* ]] && _wpool_takes_value "$prev"; then
		_wpool_value "$prev"
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$_wpool_opts_value $_wpool_opts_flag \
			--" -- "$cur"))
		return 0
	fi
	# A control command (unless run options came first), else the
	# command to run.
	[[ -z $running ]] &&
		COMPREPLY=($(compgen -W "$_wpool_subcommands" -- "$cur"))
	((${#COMPREPLY[@]} == 0)) && _wpool_command "$cword"
	return 0
}

complete -F _wpool wpool
