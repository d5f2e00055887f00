#!/usr/bin/env bash
# 91-shim: what --shim costs an unmodified server per connection.
#
# A: wpool -m balance --shim -n 2 -- examples/c_server   the master accepts,
#    the shim's accept() in the server takes each connection from the
#    channel, its close() reports it
# B: wpool -m shared -n 2 -- examples/c_server           the same server
#    accepting on the shared socket itself
# C: wpool -m balance -n 2 -- tests/bin/bal_worker       a server that
#    speaks the balance protocol itself (what bench/40 measures)
# wrk -t1 -c64 with `Connection: close` (one connection per request: the
# worst case for the master's hop), rounds interleaved A B C / C B A / ...;
# ratios of the medians: A/B (the price of least-conn for an unmodified
# server) and A/C (the shim against the protocol spoken natively; target
# >= 0.90).  Keep-alive requests (the master off the data path) as INFO.
#
# Env: QUICK=1 (about 15 s), ROUNDS=N, DURATION=SEC, CONNS=N, WPOOL=path.
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2}
else
	ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-3}
fi
CONNS=${CONNS:-64}
SERVER=$ROOT/examples/c_server
NATIVE=$ROOT/tests/bin/bal_worker
SHIM=$ROOT/src/shim/libwpool-shim.so

preflight
command -v wrk >/dev/null || die "wrk not installed (make deps-bench)"
for f in "$SERVER" "$NATIVE"; do
	[ -x "$f" ] || die "$f not built (make test-bins)"
done
[ -r "$SHIM" ] || die "$SHIM not built (make test-bins)"

bg "$TMP/a.log" "$WPOOL" -m balance --shim -n 2 -b 127.0.0.1:0 -s "$TMP/a.sock" -- "$SERVER"
A_PID=$BG_PID
bg "$TMP/b.log" "$WPOOL" -m shared -n 2 -b 127.0.0.1:0 -s "$TMP/b.sock" -- "$SERVER"
B_PID=$BG_PID
bg "$TMP/c.log" "$WPOOL" -m balance -n 2 -b 127.0.0.1:0 -s "$TMP/c.sock" -- "$NATIVE"
C_PID=$BG_PID
declare -A PORT
for s in a b c; do
	PORT[$s]=$(wait_port "$TMP/$s.log")
	wait_ready "$TMP/$s.sock" 2
	curl -fsS -m 2 "http://127.0.0.1:${PORT[$s]}/" >/dev/null 2>&1 ||
		die "pool $s on port ${PORT[$s]} does not answer"
done
check_bg "$A_PID"
check_bg "$B_PID"
check_bg "$C_PID"
echo "# A = balance --shim c_server :${PORT[a]}; B = shared c_server :${PORT[b]}; C = balance bal_worker :${PORT[c]}"

# wrk_rps PORT [HEADER...]: requests/s of one run; errors to $TMP/errors.
wrk_rps() {
	local port=$1 out rps errs
	shift
	out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "http://127.0.0.1:$port/" 2>&1)
	rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
	errs=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
	[ -n "$errs" ] && echo "port $port $*: socket errors: $errs" >>"$TMP/errors"
	[ -n "$rps" ] || { echo "$out" >&2; die "wrk gave no Requests/sec"; }
	echo "$rps"
}

echo "\$ $(show wrk -t1 -c"$CONNS" -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:PORT/")"
echo "# $ROUNDS round(s) x 2 variants x 3 pools of ${DURATION}s"
: >"$TMP/errors"
for ((r = 1; r <= ROUNDS; r++)); do
	for variant in close keepalive; do
		hdr=()
		[ "$variant" = close ] && hdr=(-H 'Connection: close')
		if ((r % 2)); then order="a b c"; else order="c b a"; fi
		declare -A got=()
		for s in $order; do
			got[$s]=$(wrk_rps "${PORT[$s]}" "${hdr[@]}") || exit 1
			echo "${got[$s]}" >>"$TMP/$variant.$s"
		done
		printf 'round %d %-9s A(shim) %8.0f  B(shared) %8.0f  C(native balance) %8.0f req/s\n' \
		    "$r" "$variant" "${got[a]}" "${got[b]}" "${got[c]}"
	done
done
echo
for variant in close keepalive; do
	a=$(median <"$TMP/$variant.a")
	b=$(median <"$TMP/$variant.b")
	c=$(median <"$TMP/$variant.c")
	printf '%s: median A(shim) %.0f, B(shared) %.0f, C(native balance) %.0f req/s; A/B %s, A/C %s\n' \
	    "$variant" "$a" "$b" "$c" "$(calc "$a / $b")" "$(calc "$a / $c")"
	if [ "$variant" = close ]; then
		result shim_vs_native_close_ratio "$(calc "$a / $c")" ">=" 0.90
		result shim_vs_shared_close_ratio "$(calc "$a / $b")" ">=" 0
	fi
done
[ -s "$TMP/errors" ] && { echo "# wrk errors:"; cat "$TMP/errors"; }
restarts=$(jfield "$(status_json "$TMP/a.sock")" restarts)
result shim_pool_restarts "${restarts:-nan}" "=" 0
finish
