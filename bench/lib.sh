# bench/lib.sh: shared by bench/[0-9]*.sh (sourced, never run by itself).
#
# Gives each script: a temp dir ($TMP) removed on exit, background
# processes started in their own process group (setsid) and killed by that
# id on exit, the exact command lines echoed with a `$ ` prefix, the helper
# binaries built from bench/*.c, and result() for the RESULT summary lines.
# Timing is never asserted: a figure that misses its target prints MISS and
# the script still exits 0; only a broken setup exits non-zero.

set -u

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WPOOL=${WPOOL:-$ROOT/wpool}
TESTSRV=${TESTSRV:-$ROOT/tests/bin/testsrv}
QUICK=${QUICK:-0}
CC=${CC:-cc}
[ "$QUICK" = 0 ] && QUICK=

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wpool-bench.XXXXXX") || exit 1
BG_PIDS=()
RESULTS=()
NAP_PID=

# Every process group we started: TERM, up to 5 s, then KILL; then $TMP.
cleanup() {
	local p i
	trap - EXIT INT TERM
	[ -n "$NAP_PID" ] && kill "$NAP_PID" 2>/dev/null
	for ((i = ${#BG_PIDS[@]} - 1; i >= 0; i--)); do
		p=${BG_PIDS[i]}
		kill -0 "$p" 2>/dev/null && kill -TERM -- "-$p" 2>/dev/null
	done
	for ((i = 0; i < 50; i++)); do
		local alive=
		for p in "${BG_PIDS[@]}"; do
			kill -0 -- "-$p" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in "${BG_PIDS[@]}"; do
		kill -KILL -- "-$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# nap SEC: a sleep that a signal to the script interrupts at once (a
# foreground sleep would hold the traps back until it ends).
nap() {
	sleep "$1" &
	NAP_PID=$!
	wait "$NAP_PID"
	NAP_PID=
}

die() {
	echo "$(basename "$0"): setup failed: $*" >&2
	exit 1
}

# cpu_ns PID...: the nanoseconds PIDs ran on a CPU, summed
# (/proc/PID/schedstat).
cpu_ns() {
	local p t=0 v
	for p in "$@"; do
		read -r v _ <"/proc/$p/schedstat" && t=$((t + v))
	done
	echo "$t"
}

# wrk_run PORT PIDS [HEADER...]: one wrk run of DURATION seconds with CONNS
# connections; sets RPS and CPU_US (PIDS' CPU microseconds per request).
# Socket errors and non-2xx answers go to $TMP/errors, a line a run.
wrk_run() {
	local port=$1 pids=$2 out errs non2xx c0 c1 reqs
	shift 2
	# shellcheck disable=SC2086
	c0=$(cpu_ns $pids)
	out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "http://127.0.0.1:$port/" 2>&1)
	# shellcheck disable=SC2086
	c1=$(cpu_ns $pids)
	RPS=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
	reqs=$(printf '%s\n' "$out" | awk '/requests in/ { print $1 }')
	errs=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
	non2xx=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: //p')
	[ -n "$errs$non2xx" ] && echo "port $port $*: ${errs:+socket errors: $errs }${non2xx:+non-2xx: $non2xx}" >>"$TMP/errors"
	if [ -z "$RPS" ] || [ -z "$reqs" ]; then
		echo "$out" >&2
		die "wrk gave no Requests/sec"
	fi
	CPU_US=$(calc "($c1 - $c0) / 1000 / $reqs")
}

# wrk_stop PID OUT: ends a wrk started with bg (its output in OUT) with
# INT, so that it prints its summary, and reads it: sets REQS, ERRS (socket
# errors and non-2xx answers, summed), WRK_ERRS and WRK_NON2XX (as wrk
# says them, empty if none).
wrk_stop() {
	local pid=$1 out i
	echo "\$ kill -INT $pid   # wrk prints its summary"
	kill -INT "$pid"
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
	out=$(cat "$2")
	REQS=$(printf '%s\n' "$out" | awk '/requests in/ { print $1 }')
	WRK_ERRS=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
	WRK_NON2XX=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: //p')
	ERRS=${WRK_NON2XX:-0}
	for i in $(printf '%s\n' "$WRK_ERRS" | grep -o '[0-9]\+'); do
		ERRS=$((ERRS + i))
	done
}

# A command line as a reader can paste it from the repository root.
show() {
	local a out=
	for a in "$@"; do
		a=${a//$ROOT\//./}
		if [[ $a =~ [^A-Za-z0-9_./:=,@%+-] ]]; then
			a="'${a//\'/\'\\\'\'}'"
		fi
		out+="$a "
	done
	printf '%s\n' "${out% }"
}

# run CMD...: echo, then run in the foreground.
run() {
	echo "\$ $(show "$@")"
	"$@"
}

# bg LOG CMD...: start CMD in its own session (so its whole process group,
# workers included, can be killed by id), stderr+stdout to LOG; sets BG_PID.
bg() {
	local log=$1
	shift
	echo "\$ $(show "$@") >$log 2>&1 &"
	setsid "$@" >"$log" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# check_bg PID: setsid only forks when the caller leads a process group
# (an interactive shell with job control); then $! would not be the group
# we kill.  Called once the process is surely past setsid().
check_bg() {
	local pgid
	pgid=$(ps -o pgid= -p "$1" 2>/dev/null | tr -d ' ')
	[ -z "$pgid" ] || [ "$pgid" = "$1" ] ||
	    die "setsid did not make $1 a process group leader (pgid $pgid)"
}

# stop_bg PID: TERM its group, wait up to 10 s, then KILL it.
stop_bg() {
	local p=$1 i
	kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}

# wait_port LOG: the port from `listening on 127.0.0.1:PORT` in LOG.
wait_port() {
	local log=$1 i port
	for ((i = 0; i < 500; i++)); do
		port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
		    "$log" 2>/dev/null | head -n1)
		[ -n "$port" ] && { echo "$port"; return 0; }
		sleep 0.01
	done
	echo "--- $log:" >&2
	cat "$log" >&2
	die "no 'listening on 127.0.0.1:PORT' line in $log"
}

# status_json SOCK: the raw `wpool status --json`.
status_json() {
	"$WPOOL" -s "$1" status --json 2>/dev/null
}

# jfield JSON KEY: the first top-level `"KEY":N` (the pool's, not a worker's).
jfield() {
	local re="\"$2\":[[:space:]]*(-?[0-9.]+)"
	[[ $1 =~ $re ]] && echo "${BASH_REMATCH[1]}"
}

# wait_ready SOCK N [TIMEOUT]: until alive == ready == N.
wait_ready() {
	local sock=$1 n=$2 t=${3:-10} i j a r
	for ((i = 0; i < t * 50; i++)); do
		j=$(status_json "$sock")
		a=$(jfield "$j" alive)
		r=$(jfield "$j" ready)
		[ "$a" = "$n" ] && [ "$r" = "$n" ] && return 0
		sleep 0.02
	done
	die "pool at $sock not ready with $n workers after ${t}s (alive=$a ready=$r)"
}

# build_c NAME [LIBS...]: compile bench/NAME.c into $TMP/NAME.
build_c() {
	local name=$1
	shift
	"$CC" -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
	    -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	    -o "$TMP/$name" "$BENCH_DIR/$name.c" "$@" ||
	    die "cannot build bench/$name.c"
}

build_benchtool() {
	# shellcheck disable=SC2046
	build_c benchtool $(pkg-config --cflags --libs json-c 2>/dev/null ||
	    echo -ljson-c)
	# shellcheck disable=SC2034  # used by the scripts
	BT=$TMP/benchtool
}

# kv TEXT KEY: the value of a `KEY=VALUE` line.
kv() {
	printf '%s\n' "$1" | sed -n "s/^$2=//p" | head -n1
}

# median / p90 of numbers on stdin (nearest rank for p90).
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]
		else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
p90() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		k = int(0.9 * NR); if (k < 0.9 * NR) k++; if (k < 1) k = 1
		print v[k] }'
}

# calc EXPR: floating point arithmetic, 3 decimals.
calc() {
	awk "BEGIN { printf \"%.3f\n\", $1 }"
}

# proc_field PID FIELD: a number from /proc/PID/status.
proc_field() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
# rollup PID FIELD: a kB figure of /proc/PID/smaps_rollup (Pss, Private_Dirty...).
rollup() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null
}
# stack_rss PID: resident kB of the main thread's stack.
stack_rss() {
	awk '/^[0-9a-f]+-/ { s = ($6 == "[stack]") } s && $1 == "Rss:" { print $2 }' \
	    "/proc/$1/smaps" 2>/dev/null
}
# mem_detail PID: one line on where a process's RSS goes.
mem_detail() {
	echo "RssAnon $(proc_field "$1" RssAnon) KiB, RssFile $(proc_field "$1" RssFile) KiB" \
	    "(shared library pages, shared with every process using them);" \
	    "Pss $(rollup "$1" Pss) KiB, Private_Dirty $(rollup "$1" Private_Dirty) KiB," \
	    "stack $(stack_rss "$1") KiB"
}
ctxt() {
	echo $(($(proc_field "$1" voluntary_ctxt_switches) + \
	    $(proc_field "$1" nonvoluntary_ctxt_switches)))
}

# result NAME VALUE OP TARGET [UNIT]: one RESULT line, PASS or MISS, kept
# for the summary that finish() prints.  OP is >= or <= (or = for counts).
result() {
	local name=$1 value=$2 op=$3 target=$4 verdict
	if [ "$value" = nan ] || [ -z "$value" ] || [ "$value" = timeout ]; then
		verdict=MISS
	elif awk -v v="$value" -v t="$target" -v op="$op" 'BEGIN {
		exit !((op == ">=" && v + 0 >= t + 0) ||
		    (op == "<=" && v + 0 <= t + 0) || (op == "=" && v + 0 == t + 0)) }'
	then
		verdict=PASS
	else
		verdict=MISS
	fi
	RESULTS+=("RESULT $name=$value target$op$target $verdict")
}

finish() {
	local r
	echo
	echo "== summary: $(basename "$0")${QUICK:+ (QUICK=1)}"
	for r in "${RESULTS[@]}"; do
		echo "$r"
	done
}

preflight() {
	[ -x "$WPOOL" ] || die "$WPOOL not built (make wpool)"
	[ -x "$TESTSRV" ] || die "$TESTSRV not built (make test-bins)"
	# A tree last built by `make check SANITIZE=1` holds ASan binaries,
	# whose start-up and speed are not wpool's: refuse to measure them.
	local b
	for b in "$WPOOL" "$TESTSRV" "$ROOT"/tests/bin/bal_worker; do
		[ -x "$b" ] || continue
		if ldd "$b" 2>/dev/null | grep -q 'libasan\|libubsan'; then
			die "$b is a sanitizer build; rebuild plainly first:" \
			    "make clean-objs && make wpool test-bins"
		fi
	done
	echo "# $(basename "$0") on $(nproc) CPUs, $(uname -sr);" \
	    "wpool: $("$WPOOL" --version 2>&1 | head -n1)"
	echo "# TMP=$TMP (removed on exit)${QUICK:+; QUICK=1: short runs}"
}
