#!/usr/bin/env bash
# 70-stop-signals: which stop signal lets a real server be reloaded without
# failing a request.  For each server users run under wpool (Debian's
# packages, unmodified; the apps are tests/apps/compat/): wpool -n 2 with
# the server, 16 clients of tests/apps/compat/loadgen.py (GET / with
# Connection: close, 2 ms apart on each) while two reloads run back to
# back, once with --stop-signal TERM and once with the server's graceful
# stop signal.  A request fails unless it is answered 200 "ok" within 5 s
# (refused, reset, closed early, timed out).  The baseline is TERM,
# measured in the same run; target: 0 failed with the graceful signal.
# Not wrk: its saturating load keeps a one-process server from ever being
# seen waiting on the socket, so each --ready listen reload would wait
# (a minute for gunicorn) until the load lets up.
#
# Servers without a graceful stop of their own: Node, PHP (the apps'
# GRACEFUL=0 is the plain server; their TERM handler, a few lines, is the
# "graceful" column) and twisted (twistd web: TERM and INT both stop the
# reactor at once; only TERM is measured).  For gunicorn, uvicorn and puma
# TERM is the graceful signal: one run fills both columns.  starman-master
# is starman behind tests/apps/compat/starman-master.sh, which passes QUIT
# to starman's master alone (measured with QUIT only).
#
# Env: QUICK=1 (one reload per run instead of two), MODE=shared|reuseport
# (shared), ONLY='nginx haproxy' (a subset), CLIENTS=N (16), PAUSE=SEC
# (0.002, between one client's requests), TRICKLE=SEC (0.05: slow clients,
# each request sent in two parts SEC apart, as 76-compat.bats does),
# LOAD=wrk (wrk -t1 -c16
# -H 'Connection: close' instead: saturating, so expect minutes with
# ONLY unset).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RELOADS=${RELOADS:-2}
[ -n "$QUICK" ] && RELOADS=1
MODE=${MODE:-shared}
APPS=$ROOT/tests/apps/compat
PY=/usr/bin/python3

preflight
LOAD=${LOAD:-python}
CLIENTS=${CLIENTS:-16}
TRICKLE=${TRICKLE:-0.05}
PAUSE=${PAUSE:-0.002}

# NAME GRACEFUL-SIGNAL NEEDS: the servers, in the table's order.  For a
# graceful signal of "app" the app's own TERM handler is the graceful run.
SERVERS=(
	"lighttpd INT lighttpd"
	"haproxy USR1 haproxy"
	"nginx QUIT nginx"
	"starman QUIT starman"
	"starman-master QUIT-only starman"
	"gunicorn TERM gunicorn"
	"uvicorn TERM $PY"
	"puma TERM puma"
	"node app node"
	"php app php"
	"twisted none twistd3"
)

cp -r "$APPS"/. "$TMP/"
mkdir -p "$TMP/www/0" "$TMP/www/1"
echo "ok 0" >"$TMP/www/0/index.html"
echo "ok 1" >"$TMP/www/1/index.html"

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# command_of NAME PORT: sets CMD (the worker command) and XARGS (more
# wpool options).
command_of() {
	XARGS=()
	case $1 in
	lighttpd) CMD=(lighttpd -D -f lighttpd.conf) ;;
	haproxy) CMD=(haproxy -W -db -f haproxy.cfg) ;;
	nginx) CMD=(./nginx.sh) XARGS=(-e 'NGINX=3;') ;;
	# Under this load --ready listen rarely sees a gunicorn or starman
	# worker wait on the socket (a reload would take 20-60 s): gunicorn's
	# READY=1, and starman at exec, keep the runs short.
	starman) CMD=(starman --workers 2 app.psgi) XARGS=(--ready exec) ;;
	starman-master) CMD=(./starman-master.sh) XARGS=(--ready exec) ;;
	gunicorn) CMD=(gunicorn -w 1 wsgi:app) XARGS=(--ready notify) ;;
	uvicorn) CMD=("$PY" -m uvicorn --fd 3 asgi:app) ;;
	puma) CMD=(puma -t 1:4 -b "tcp://127.0.0.1:$2" config.ru) ;;
	node) CMD=(node app.js) ;;
	php) CMD=(php app.php) ;;
	twisted) CMD=(twistd3 -n --pidfile= web --listen
		systemd:domain=INET:index=0 --path www/0) ;;
	esac
}

# load_start PORT: the clients (LOAD=wrk: wrk -t1 -c16, unpaced).
load_start() {
	if [ "$LOAD" = wrk ]; then
		bg "$TMP/load.out" wrk -t1 -c16 -d120s --timeout 5s \
		    -H 'Connection: close' "http://127.0.0.1:$1/"
	else
		rm -f "$TMP/load.stop"
		bg "$TMP/load.out" "$PY" "$TMP/loadgen.py" "$1" -c "$CLIENTS" \
		    --pause "$PAUSE" --max 120 --stop "$TMP/load.stop" \
		    --trickle "$TRICKLE"
	fi
	LOAD_PID=$BG_PID
}

# load_stop: ends the clients; sets REQS, FAILED and errs (what failed).
load_stop() {
	local out i
	if [ "$LOAD" = wrk ]; then
		kill -INT "$LOAD_PID"
	else
		touch "$TMP/load.stop"
	fi
	for ((i = 0; i < 100; i++)); do
		kill -0 "$LOAD_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$LOAD_PID" 2>/dev/null
	out=$(cat "$TMP/load.out")
	if [ "$LOAD" = wrk ]; then
		REQS=$(printf '%s\n' "$out" | awk '/requests in/ { print $1 }')
		errs=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
		FAILED=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: //p')
		FAILED=${FAILED:-0}
		for i in $(printf '%s\n' "$errs" | grep -o '[0-9]\+'); do
			FAILED=$((FAILED + i))
		done
	else
		REQS=$(jfield "$out" sent)
		FAILED=$(jfield "$out" failed)
		errs=$(printf '%s\n' "$out" |
		    sed -n 's/.*"errors": \[\([^]]*\)\].*/\1/p' | cut -c1-120)
	fi
}

# measure NAME SIG [ENV=VALUE]: failed requests over RELOADS reloads under
# load; sets FAILED and REQS.
measure() {
	local name=$1 sig=$2 port sock log pid i gen t0 errs
	shift 2
	t0=$EPOCHREALTIME
	port=$(free_port)
	sock=$TMP/$name-$sig-$#.sock
	log=$TMP/$name-$sig-$#.log
	command_of "$name" "$port"
	(
		cd "$TMP" || exit 1
		bg "$log" env "$@" COMPAT_DIR="$TMP" COMPAT_PORT="$port" \
		    "$WPOOL" -n 2 -m "$MODE" --stop-signal "$sig" \
		    --stop-timeout 5 -s "$sock" -b "127.0.0.1:$port" \
		    "${XARGS[@]}" -- "${CMD[@]}"
		echo "$BG_PID" >"$TMP/pid"
	)
	pid=$(cat "$TMP/pid")
	BG_PIDS+=("$pid")
	wait_ready "$sock" 2 30
	load_start "$port"
	nap 0.5
	for ((i = 0; i < RELOADS; i++)); do
		"$WPOOL" -s "$sock" reload >>"$TMP/reloads.out" 2>&1 ||
		    echo "  reload $i failed: $(tail -n 1 "$TMP/reloads.out")"
	done
	nap 0.5
	load_stop
	gen=$(jfield "$(status_json "$sock")" generation)
	stop_bg "$pid"
	[ "$gen" = "$RELOADS" ] ||
	    echo "  warning: $name $sig: $RELOADS reloads asked, generation is $gen"
	printf '  %-15s %-5s %s: %s requests, %s failed%s; run %s s\n' \
	    "$name" "$sig" "${*:-}" "${REQS:-?}" "${FAILED:-?}" \
	    "${errs:+ ($errs)}" "$(calc "$EPOCHREALTIME - $t0")"
}

echo "# wpool -n 2 -m $MODE --stop-signal SIG -b 127.0.0.1:PORT -- SERVER;" \
    "load $LOAD, Connection: close; $RELOADS reload(s) a run"
if [ "$LOAD" = wrk ]; then
	command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
	echo "\$ $(show wrk -t1 -c16 -d120s --timeout 5s -H 'Connection: close' http://127.0.0.1:PORT/) &"
else
	echo "\$ $(show "$PY" tests/apps/compat/loadgen.py PORT -c "$CLIENTS" --pause "$PAUSE" --max 120 --stop TMP/load.stop --trickle "$TRICKLE") &"
fi
echo "\$ $(show "$WPOOL" -s SOCK reload)   # x $RELOADS, then the load ends"
ROWS=()
for row in "${SERVERS[@]}"; do
	read -r name graceful needs <<<"$row"
	if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
		continue
	fi
	command -v "$needs" >/dev/null ||
	    die "$needs is not installed (make deps-test)"
	case $graceful in
	app)
		measure "$name" TERM GRACEFUL=0
		term=$FAILED treq=$REQS
		measure "$name" TERM
		ROWS+=("$name|none (app: TERM handler)|$term/$treq|$FAILED/$REQS")
		;;
	QUIT-only)
		measure "$name" QUIT
		ROWS+=("$name|QUIT to the master only|-|$FAILED/$REQS")
		;;
	none)
		measure "$name" TERM
		ROWS+=("$name|none|$FAILED/$REQS|-")
		;;
	TERM)
		measure "$name" TERM
		ROWS+=("$name|TERM|$FAILED/$REQS|(same run)")
		;;
	*)
		measure "$name" TERM
		term=$FAILED treq=$REQS
		measure "$name" "$graceful"
		ROWS+=("$name|$graceful|$term/$treq|$FAILED/$REQS")
		;;
	esac
	[ "$graceful" = none ] || [ "$graceful" = QUIT-only ] || result "${name}_failed_graceful" "$FAILED" "=" 0
	RESULTS+=("INFO ${name}: ${ROWS[-1]}")
done

echo
echo "failed requests / requests over $RELOADS reload(s) under load ($MODE mode):"
printf '%-15s %-28s %-14s %s\n' server "graceful stop signal" "with TERM" "with graceful"
for r in "${ROWS[@]}"; do
	IFS='|' read -r a b c d <<<"$r"
	printf '%-15s %-28s %-14s %s\n' "$a" "$b" "$c" "$d"
done

finish
exit 0
