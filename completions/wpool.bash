# bash completion for wpool(1)                             -*- shell-script -*-
#
# Works with or without the bash-completion package: it needs only bash's
# own compgen.  Install as $(pkg-config --variable=completionsdir
# bash-completion)/wpool, or source it from ~/.bashrc.

_wpool_subcommands='run check status reload scale restart signal stop list'

# Run options that take a value, and those that do not.  Keep in step
# with the table of run options in src/cli.c (tests/bats/90-docs.bats
# checks).
_wpool_opts_value='-n --workers -b --bind -m --mode --balancer --backlog
	--max-queue --restart-delay --max-restart-delay --min-uptime
	--stop-signal --stop-timeout --ready --ready-timeout --reload-batch
	--fallback-cpus -s --control --name -c --config -u --user -C --chdir
	-e --env --watchdog --max-requests --max-requests-jitter --max-memory
	--pidfile --metrics'
_wpool_opts_flag='--no-restart --log-prefix -q --quiet -v --verbose
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
	if ((COMP_CWORD == at)); then
		COMPREPLY=($(compgen -c -- "$cur"))
		if [[ $cur == */* ]]; then
			compopt -o filenames 2>/dev/null || :
			COMPREPLY+=($(compgen -f -- "$cur"))
		fi
	elif declare -F _command_offset >/dev/null; then
		# bash-completion knows how to complete that command's words.
		_command_offset "$at"
	else
		compopt -o filenames 2>/dev/null || :
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
	return 0
}

_wpool()
{
	local cur prev w i sub='' running=''
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=''
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}

	# --opt=value: bash splits it at '=' (COMP_WORDBREAKS).
	if [[ $cur == = && $prev == -* ]]; then
		cur=''
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ $cur == --*=* ]]; then
		prev=${cur%%=*}
		cur=${cur#*=}
	fi

	# Find what the words before the cursor are: options, a control
	# command, or the start of the command to run.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -n $sub ]]; then
			break
		fi
		case $w in
		--)
			_wpool_command $((i + 1))
			return 0 ;;
		= | --*=*)
			_wpool_client_opt "${w%%=*}" || running=1 ;;
		-*)
			_wpool_client_opt "$w" || running=1
			if _wpool_takes_value "$w" && [[ ${COMP_WORDS[i + 1]-} != = ]]; then
				((i++))
			elif [[ ${COMP_WORDS[i + 1]-} == = ]]; then
				((i += 2))
			fi ;;
		run | check)
			running=1 ;;	# run options follow
		status | reload | scale | restart | signal | stop | list)
			sub=$w ;;
		*)
			_wpool_command "$i"
			return 0 ;;
		esac
	done

	if [[ -n $sub ]]; then
		# Arguments of a control command: $i is its first argument.
		local nargs=$((COMP_CWORD - i))
		case $sub in
		status)
			COMPREPLY=($(compgen -W '--json --check' -- "$cur")) ;;
		list)
			COMPREPLY=($(compgen -W '--json' -- "$cur")) ;;
		reload | stop)
			COMPREPLY=($(compgen -W '--no-wait' -- "$cur")) ;;
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
	((${#COMPREPLY[@]} == 0)) && _wpool_command "$COMP_CWORD"
	return 0
}

complete -F _wpool wpool
