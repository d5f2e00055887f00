# complete_helpers.bash: helpers for finding pools (75-list.bats) and for
# completing command lines in real interactive shells on a pty
# (74-completion-pty.bats).  Loaded after ../helpers.

# The system python: the one on PATH may be a pyenv shim that other users
# (setpriv --reuid=65534) cannot run.
if [[ -x /usr/bin/python3 ]]; then
	PY=/usr/bin/python3
else
	PY=$(command -v python3)
fi

complete_setup() {
	common_setup
	BG_POOLS=()
	FAKES=()
	TMUX_SOCK=
}

complete_teardown() {
	local p deadline
	[[ -n $TMUX_SOCK ]] && tmux -S "$TMUX_SOCK" kill-server 2>/dev/null
	for p in "${BG_POOLS[@]}" "${FAKES[@]}"; do
		kill -TERM "$p" 2>/dev/null || continue
		deadline=$(deadline_in 5)
		while kill -0 "$p" 2>/dev/null && ! past "$deadline"; do
			sleep 0.02
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	common_teardown
}

setup() {
	complete_setup
}

teardown() {
	complete_teardown
}

# --- pools -----------------------------------------------------------------

# start_bg_pool SOCKET [ENV...] -- ARGS...: a pool besides start_wpool's,
# started through env(1) with ENV (e.g. -u XDG_RUNTIME_DIR, A=B), its log
# in $BATS_TEST_TMPDIR/pool-N.log; waits until every worker is ready at
# SOCKET, where it must put its control socket.  Sets BG_PID.
start_bg_pool() {
	local sock=$1 log="$BATS_TEST_TMPDIR/pool-${#BG_POOLS[@]}.log"
	local -a envs=()
	shift
	while [[ $1 != -- ]]; do
		envs+=("$1")
		shift
	done
	shift
	env --default-signal -u WPOOL_CONTROL "${envs[@]}" "$WPOOL" "$@" \
		</dev/null >"$log" 2>&1 3>&- &
	BG_PID=$!
	BG_POOLS+=("$BG_PID")
	wait_until 10 pool_ready_at "$sock" ||
		fail "no ready pool at $sock; log: $(cat "$log")"
}

# pool_ready_at SOCKET: the pool there answers, every worker ready.
pool_ready_at() {
	[[ -S $1 ]] &&
		without_fd3 timeout 5 "$WPOOL" -s "$1" status --check >/dev/null 2>&1
}

# A control socket's impostor: answers every request with a healthy pool,
# and appends what it was sent to MARK (nothing sent, nothing written).
FAKE_PY='
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        d = c.recv(4096)
    except OSError:
        d = b""
    if d:
        with open(sys.argv[2], "ab") as f:
            f.write(d)
        c.sendall(b"{\"ok\":true,\"name\":\"evil\",\"pid\":1,\"mode\":\"shared\",\"ready\":9,\"target\":9}\n")
    c.close()
'

# fake_server_as UID SOCKET MARK: FAKE_PY run by UID (its own group, no
# others) on SOCKET; waits until it listens.
fake_server_as() {
	local out="$BATS_TEST_TMPDIR/fake-${#FAKES[@]}.out"
	setpriv --reuid="$1" --regid="$1" --clear-groups \
		"$PY" -c "$FAKE_PY" "$2" "$3" >"$out" 2>&1 3>&- &
	FAKES+=("$!")
	wait_for_file_line "$out" listening
}

# --- shells on a pty -------------------------------------------------------

# pty_shell SHELL...: starts the interactive shell command SHELL... in a
# detached tmux session of 200x50 on a private tmux server.
pty_shell() {
	TMUX_SOCK="$BATS_TEST_TMPDIR/tmux.sock"
	tmux -S "$TMUX_SOCK" -f /dev/null new-session -d -x 200 -y 50 \
		-s t "$@" 3>&- || fail "tmux cannot start: $*"
}

# pty_type TEXT: types TEXT literally.
pty_type() {
	tmux -S "$TMUX_SOCK" send-keys -t t -l -- "$1"
}

# pty_keys KEY...: sends tmux key names (Tab, Enter, C-u).
pty_keys() {
	tmux -S "$TMUX_SOCK" send-keys -t t "$@"
}

# pty_screen: what the pane shows, trailing blanks removed.
pty_screen() {
	tmux -S "$TMUX_SOCK" capture-pane -p -J -t t | sed -e 's/[[:space:]]*$//'
}

# pty_wait REGEX [TIMEOUT]: polls the pane until one of its lines matches
# the extended REGEX; SCREEN is the pane then.
pty_wait() {
	local deadline
	deadline=$(deadline_in "${2:-${PTY_TIMEOUT:-10}}")
	while :; do
		SCREEN=$(pty_screen)
		grep -Eq -- "$1" <<<"$SCREEN" && return 0
		if past "$deadline"; then
			fail "$(printf 'timed out waiting for /%s/ on the pty:\n%s' \
				"$1" "$SCREEN")"
			return 1
		fi
		sleep 0.05
	done
}

# pty_wait_line TEXT: polls until the command line reads TEXT (trailing
# blanks aside).
pty_wait_line() {
	local want=$1 deadline
	want="\$ ${want%"${want##*[! ]}"}"
	deadline=$(deadline_in "${PTY_TIMEOUT:-10}")
	until pty_screen | grep -qxF -- "$want"; do
		if past "$deadline"; then
			fail "$(printf 'the line never read "%s" on the pty:\n%s' \
				"$want" "$(pty_screen)")"
			return 1
		fi
		sleep 0.05
	done
}

# pty_wait_cursor COLUMN: polls until the cursor is at COLUMN (from 0).
pty_wait_cursor() {
	local deadline x
	deadline=$(deadline_in "${PTY_TIMEOUT:-10}")
	until x=$(tmux -S "$TMUX_SOCK" display-message -p -t t '#{cursor_x}') &&
		[[ $x == "$1" ]]; do
		if past "$deadline"; then
			fail "$(printf 'the cursor is at column %s, not %s:\n%s' \
				"$x" "$1" "$(pty_screen)")"
			return 1
		fi
		sleep 0.05
	done
}

# pty_clear: an empty command line on a clear pane.
pty_clear() {
	pty_keys C-u C-k C-l
	pty_wait '^\$$'
}

# pty_complete LINE REGEX KEY...: on a fresh line, types LINE, then KEYs
# (Tab, or Tab Tab), and waits until a line of the pane matches REGEX
# (what the completion must show); SCREEN is the pane then.
pty_complete() {
	local line=$1 re=$2
	shift 2
	pty_clear || return 1
	pty_type "$line"
	pty_wait_line "$line" || return 1
	pty_keys "$@"
	pty_wait "$re"
}

# pty_line: the command line being edited (the last prompt's line).
pty_line() {
	grep -E '^\$ ' <<<"$SCREEN" | tail -1 | sed -e 's/^\$ //'
}

# re_quote TEXT: TEXT as an extended regex that matches it literally.
re_quote() {
	sed -e 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"
}

# pty_env DIR: a user's empty home in DIR, the wpool under test first on
# PATH; the environment (env -i ARGS) of the shells in PTY_ENV.
pty_env() {
	local home=$1
	mkdir -p "$home/bin"
	ln -sf "$WPOOL" "$home/bin/wpool"
	PTY_ENV=(env -i HOME="$home" TERM=screen LANG=C.UTF-8
		PATH="$home/bin:/usr/local/bin:/usr/bin:/bin"
		XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" XDG_CONFIG_HOME="$home/.config"
		XDG_DATA_HOME="$home/.local/share" PS1='$ ')
}

# bash_on_pty [bare]: an interactive bash without start-up files, as a
# user has it: bash-completion loaded (unless bare), then wpool's
# completion sourced.
bash_on_pty() {
	local bc=/usr/share/bash-completion/bash_completion src=''
	command -v tmux >/dev/null || fail "tmux is missing: make deps-test"
	if [[ ${1-} != bare ]]; then
		[[ -r $bc ]] || fail "bash-completion is missing: make deps-test"
		src="source $bc; "
	fi
	pty_shell "${PTY_ENV[@]}" bash --norc --noprofile -i
	pty_type "${src}source $REPO_ROOT/completions/wpool.bash; PS1='\$ '; cd $PWD"
	pty_keys Enter
	pty_wait '^\$$'
}

# zsh_on_pty: an interactive zsh whose .zshrc puts wpool's completion on
# fpath and runs compinit, as a user's does.
zsh_on_pty() {
	command -v zsh >/dev/null || fail "zsh is missing: make deps-test"
	command -v tmux >/dev/null || fail "tmux is missing: make deps-test"
	local home=${PTY_ENV[2]#HOME=}
	cat >"$home/.zshrc" <<-ZSHRC
	fpath=($REPO_ROOT/completions \$fpath)
	autoload -Uz compinit
	compinit -u -d $home/.zcompdump
	PS1='\$ '
	unsetopt beep
	cd $PWD
	ZSHRC
	pty_shell "${PTY_ENV[@]}" ZDOTDIR="$home" zsh -i
	pty_wait '^\$$'
}

# fish_on_pty: an interactive fish with wpool's completion in the user's
# completions directory, no greeting, no autosuggestions (they would show
# on the line), a "$ " prompt.
fish_on_pty() {
	command -v fish >/dev/null || fail "fish is missing: make deps-test"
	command -v tmux >/dev/null || fail "tmux is missing: make deps-test"
	local home=${PTY_ENV[2]#HOME=}
	mkdir -p "$home/.config/fish/completions"
	ln -sf "$REPO_ROOT/completions/wpool.fish" \
		"$home/.config/fish/completions/wpool.fish"
	cat >"$home/.config/fish/config.fish" <<-FISH
	set -g fish_greeting ''
	set -g fish_autosuggestion_enabled 0
	function fish_prompt; printf '\$ '; end
	function fish_right_prompt; end
	cd $PWD
	FISH
	pty_shell "${PTY_ENV[@]}" fish -i
	pty_wait '^\$$'
}
