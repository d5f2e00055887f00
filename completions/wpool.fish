# fish completion for wpool(1).  Install as
# /usr/share/fish/vendor_completions.d/wpool.fish.  Keep the options in
# step with the table of run options in src/cli.c (tests/bats/90-docs.bats
# checks).

set -l __wpool_signals HUP INT QUIT ILL TRAP ABRT IOT BUS FPE KILL USR1 SEGV \
    USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ \
    VTALRM PROF WINCH IO POLL PWR SYS

# Where the command line is: prints "options", "control SUBCOMMAND NARGS"
# or "command INDEX" (the token index where the command to run starts).
function __wpool_where
    set -l tokens (commandline -opc)
    set -l with_value -n --workers -b --bind -m --mode --balancer --backlog \
        --max-queue --restart-delay --max-restart-delay --min-uptime \
        --stop-signal --stop-timeout --shutdown-delay --min-ready --ready --ready-timeout --reload-batch \
        --fallback-cpus -s --control --name -c --config -u --user -C --chdir \
        -e --env --watchdog --max-requests --max-requests-jitter \
        --max-memory --max-crashes --memory-per-worker --pidfile --metrics
    set -l i 2
    while test $i -le (count $tokens)
        set -l t $tokens[$i]
        switch $t
            case --
                echo command (math $i + 1)
                return
            case '--*=*'
            case '-*'
                if contains -- $t $with_value
                    set i (math $i + 1)
                end
            case run check
            case status reload scale restart signal stop upgrade list
                echo control $t (math (count $tokens) - $i)
                return
            case '*'
                echo command $i
                return
        end
        set i (math $i + 1)
    end
    echo options
end

function __wpool_in_options
    test (__wpool_where) = options
end

# True before any run option: only there may a control command come.
function __wpool_may_control
    set -l skip 0
    for t in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $t
            case -s --control --name
                set skip 1
            case -q -v '-s?*' '--control=*' '--name=*'
            case '*'
                return 1
        end
    end
    return 0
end

function __wpool_control -a sub nargs
    set -l w (__wpool_where)
    set -l parts (string split ' ' -- $w)
    test "$parts[1]" = control; and test "$parts[2]" = $sub; or return 1
    test -z "$nargs"; or test "$parts[3]" = $nargs
end

function __wpool_in_command
    string match -q 'command *' -- (__wpool_where)
end

# Completes the command to run and, through its own completion, its words.
function __wpool_complete_command
    set -l parts (string split ' ' -- (__wpool_where))
    set -l tokens (commandline -opc) (commandline -ct)
    __fish_complete_subcommand --commandline $tokens[$parts[2]..-1]
end

# -u USER[:GROUP]: after the colon, the groups, the user kept.
function __wpool_user
    set -l cur (string replace -r -- '^(--user=|-u)' '' (commandline -ct))
    if string match -q -- '*:*' $cur
        set -l user (string split -m 1 -- : $cur)[1]
        __fish_complete_groups | string replace -r -- '^' "$user:"
    else
        __fish_complete_users
    end
end

# The names of the pools running, as `wpool list` shows them (the wpool
# of the command line is the one asked).
function __wpool_pools
    set -l w (commandline -opc)[1]
    command $w list 2>/dev/null | string match -rv -- '^NAME ' |
        string replace -r -- ' .*' ''
end

complete -c wpool -e
complete -c wpool -f

# The first word: a control command (when nothing but -s/--name came
# before), or else the command to run.
function __wpool_first_word
    set -l cur (commandline -ct)
    if __wpool_may_control
        set -l subs run\t'run a pool in the foreground' \
            check\t'validate the options, print the effective configuration' \
            status\t'show the pool and every worker' \
            reload\t'rolling, zero-downtime restart' \
            scale\t'change the number of workers: N, +N or -N' \
            restart\t'restart one worker, or all' \
            signal\t'send a signal to one or all workers' \
            stop\t'graceful shutdown of the pool' \
            upgrade\t're-execute the master in place, workers kept' \
            list\t'list the pools running'
        set -l hits (string match -- "$cur*" $subs)
        if set -q hits[1]
            printf '%s\n' $hits
            return
        end
    end
    __fish_complete_command
end

complete -c wpool -n __wpool_in_options -a '(__wpool_first_word)'
complete -c wpool -n __wpool_in_command -a '(__wpool_complete_command)'

complete -c wpool -n '__wpool_control status' -l json -d 'print the raw JSON object'
complete -c wpool -n '__wpool_control status' -l check -d 'exit 0 only if every worker is ready'
complete -c wpool -n '__wpool_control list' -l json -d 'print a JSON object'
complete -c wpool -n '__wpool_control reload' -l no-wait -d 'return once it started'
complete -c wpool -n '__wpool_control reload' -l dry-run -d 'print what the config file would change'
complete -c wpool -n '__wpool_control stop' -l no-wait -d 'return once it started'
complete -c wpool -n '__wpool_control restart' -l no-wait -d 'return once it started'
complete -c wpool -n '__wpool_control upgrade' -l binary -r -F -d 'the new wpool binary'
complete -c wpool -n '__wpool_control upgrade' -l reload -d 'a rolling reload after the upgrade'
complete -c wpool -n '__wpool_control restart 0' -a all -d 'every worker, rolling'
complete -c wpool -n '__wpool_control signal 0' -a "$__wpool_signals"

# Run options.
set -l o -c wpool -n __wpool_in_options
complete $o -s n -l workers -x -a auto -d 'number of workers, 1..1024 or auto'
complete $o -l fallback-cpus -x -d 'workers for auto when no CPU count can be read'
complete $o -s b -l bind -x -a 'systemd unix: tcp:// udp:// fd:' -d 'a listener, repeatable'
complete $o -s m -l mode -x -a 'shared reuseport balance inetd' -d 'how connections reach workers'
complete $o -l balancer -x -a 'least-conn round-robin ip-hash' -d 'worker choice in balance mode'
complete $o -l backlog -x -d 'listen backlog'
complete $o -l max-queue -x -d 'accepted connections held in balance mode'
complete $o -l restart-delay -x -d 'wait before respawning a dead worker'
complete $o -l max-restart-delay -x -d 'cap of the crash back-off'
complete $o -l min-uptime -x -d 'a worker that lived this long resets its back-off'
complete $o -l no-restart -d 'do not respawn; exit when the last worker exits'
complete $o -l stop-signal -x -a "$__wpool_signals" -d 'signal that asks a worker to stop'
complete $o -l stop-timeout -x -d 'KILL a stopping worker after this long'
complete $o -l shutdown-delay -x -d 'on a stop: not ready at once, serve on this long'
complete $o -l min-ready -x -d 'ready with this many workers ready'
complete $o -l ready -x -a 'exec notify listen' -d 'when a new worker counts as ready'
complete $o -l ready-timeout -x -d 'kill a worker not ready by then'
complete $o -l reload-batch -x -d 'workers replaced at a time in a reload'
complete $o -l watchdog -x -d 'restart a worker whose WATCHDOG=1 pings stop'
complete $o -l max-requests -x -d 'balance mode: recycle after N connections'
complete $o -l max-requests-jitter -x -d "add a random 0..J to each worker's limit"
complete $o -l max-memory -x -d "recycle a worker whose process tree's memory exceeds SIZE"
complete $o -l max-crashes -x -d 'stop the pool after N crashes within WINDOW: N[/WINDOW]'
complete $o -l memory-per-worker -x -d 'auto: at most the memory limit / SIZE workers'
complete $o -s u -l user -x -a '(__wpool_user)' -d 'run workers as USER[:GROUP]'
complete $o -s C -l chdir -x -a '(__fish_complete_directories)' -d "workers' working directory"
complete $o -s e -l env -x -a '(set -xn | string replace -r \'$\' =)' -d 'extra environment NAME=VALUE'
complete $o -l log-prefix -d 'prefix each line of worker output with [NAME.ID]'
complete $o -l cpu-affinity -d "pin worker i to the i-th CPU of wpool's mask"
complete $o -l shim -d 'balance mode: preload libwpool-shim.so for an unmodified server'
complete $o -s s -l control -r -F -d 'control socket path'
complete $o -l name -x -a '(__wpool_pools)' -d 'pool name: control socket, log prefix'
complete $o -s c -l config -r -F -d 'INI config file'
complete $o -l pidfile -r -F -d "write the master's pid to FILE, locked"
complete $o -l metrics -x -d 'serve /metrics and /status over HTTP on HOST:PORT'
complete $o -s q -l quiet -d 'log warnings and errors only'
complete $o -s v -l verbose -d 'log debug messages too'
complete $o -s h -l help -d 'show the help'
complete $o -s V -l version -d 'show the version'
