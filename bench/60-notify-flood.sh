#!/usr/bin/env bash
# 60-notify-flood: a flood of sd_notify datagrams from another user.
#
# The notify socket's abstract name is in /proc/net/unix for anyone to
# read.  A sender of uid 65534 (setpriv), no descendant of any worker,
# sends COUNT datagrams (default 1e6, at most SECS seconds, default 20)
# as fast as the socket takes them.  The figure: the master's CPU
# (utime + stime from /proc/PID/stat) over the flood's wall time, in % of
# one core, and per datagram.  The messages must be ignored: the pool's
# STATUS texts stay empty, which is checked (a broken setup exits
# non-zero).  wpool reads a stranger's flood a batch at a time (a pause
# of 5 ms after a batch that held no worker's message), so the flood
# itself goes slower: the sender is blocked by the full queue, as any
# sender is; both runs then stop at SECS.
#
# Baseline in the same run: with BASE_WPOOL=PATH (e.g. a build of the
# commit before, see below) the same flood against that binary first.
#   git worktree add /tmp/notify-base a880363 && make -C /tmp/notify-base wpool
#   BASE_WPOOL=/tmp/notify-base/wpool bash bench/60-notify-flood.sh
#
# Target: <= 20 % of a core.  Env: COUNT, SECS, QUICK=1 (2e5, 10 s).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ -n "$QUICK" ]; then COUNT=${COUNT:-200000}; SECS=${SECS:-10}; fi
COUNT=${COUNT:-1000000}
SECS=${SECS:-20}
TARGET=20

preflight
command -v setpriv >/dev/null || die "setpriv missing (util-linux)"

# The flooder: C, so that the sender is not the bottleneck.
cat >"$TMP/flood.c" <<'C'
#define _GNU_SOURCE
#include <sys/socket.h>
#include <sys/un.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	static const char msg[] = "STATUS=flooded by a stranger";
	long	 n, i;
	double	 t0, secs;
	int	 s;

	if (argc != 4)
		return 2;
	n = atol(argv[2]);
	secs = atof(argv[3]);
	strncpy(a.sun_path + 1, argv[1] + 1, sizeof(a.sun_path) - 2);
	if ((s = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0)
		return 1;
	t0 = now();
	for (i = 0; i < n; i++) {
		if (sendto(s, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&a,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		    strlen(argv[1] + 1))) < 0) {
			perror("sendto");
			return 1;
		}
		if ((i & 1023) == 0 && now() - t0 > secs)
			break;
	}
	printf("sent=%ld wall=%.3f\n", i, now() - t0);
	return 0;
}
C
"$CC" -O2 -o "$TMP/flood" "$TMP/flood.c" || die "cannot build the flooder"
chmod 755 "$TMP" "$TMP/flood"

ticks() {
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# flood LABEL BINARY: one pool, one flood; sets PCT.
flood() {
	local label=$1 bin=$2 master name t0 t1 out sent wall hz st
	bg "$TMP/$label.log" "$bin" -n 2 -b 127.0.0.1:0 -s "$TMP/$label.sock" -- "$TESTSRV"
	master=$BG_PID
	wait_port "$TMP/$label.log" >/dev/null
	wait_ready "$TMP/$label.sock" 2
	check_bg "$master"
	name=$(awk -v p="@wpool/$master/" 'index($NF, p) == 1 { print $NF }' /proc/net/unix | head -n1)
	[ -n "$name" ] || die "$label: no notify socket for pid $master in /proc/net/unix"
	hz=$(getconf CLK_TCK)
	t0=$(ticks "$master")
	echo "\$ setpriv --reuid=65534 --regid=65534 --clear-groups $TMP/flood $name $COUNT $SECS"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$TMP/flood" "$name" "$COUNT" "$SECS") ||
		die "$label: the flooder failed"
	t1=$(ticks "$master")
	sent=${out#sent=}
	sent=${sent%% *}
	wall=${out##*wall=}
	PCT=$(calc "100 * ($t1 - $t0) / $hz / $wall")
	echo "$label: $sent datagrams in ${wall}s ($(calc "$sent / $wall / 1000") k/s), master CPU $PCT % of a core," \
		"$(calc "1e6 * ($t1 - $t0) / $hz / ($sent + 1)") us of master CPU a datagram"
	st=$(status_json "$TMP/$label.sock")
	case $st in
	*flooded*) die "$label: a stranger's STATUS= reached the pool: $st" ;;
	esac
	stop_bg "$master"
}

if [ -n "${BASE_WPOOL:-}" ]; then
	flood base "$BASE_WPOOL"
	BASE_PCT=$PCT
fi
flood this "$WPOOL"
result notify_flood_master_cpu_pct "$PCT" "<=" "$TARGET"
if [ -n "${BASE_WPOOL:-}" ]; then
	echo "before: $BASE_PCT %, after: $PCT % (ratio $(calc "$PCT / ($BASE_PCT + 0.0001)"))"
	result notify_flood_base_cpu_pct "$BASE_PCT" ">=" 0
fi
finish
