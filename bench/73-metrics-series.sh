#!/usr/bin/env bash
# 73-metrics-series: how many distinct series a scraper sees over K
# restarts of one worker (issue 12 item 5): the union of the series of
# K+1 scrapes, one after each restart, against the series of one scrape.
# A pid label makes the union grow with every restart; slot and role
# labels keep it equal to one scrape's.
#   bench/73-metrics-series.sh [WPOOL] [K]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
WPOOL=${1:-$root/wpool}
K=${2:-20}
TESTSRV=$root/tests/bin/testsrv
dir=$(mktemp -d)
trap 'kill "$wp" 2>/dev/null; wait "$wp" 2>/dev/null; rm -rf "$dir"' EXIT
"$WPOOL" -s "$dir/ctl" -n 2 --max-restart-delay 0.2 --metrics 127.0.0.1:0 \
	-b 127.0.0.1:0 -- "$TESTSRV" >"$dir/log" 2>&1 &
wp=$!
for _ in $(seq 100); do
	grep -q 'metrics on' "$dir/log" && break
	sleep 0.05
done
mp=$(sed -nE 's|.*metrics on http://127\.0\.0\.1:([0-9]+)/metrics.*|\1|p' "$dir/log")
scrape() { curl -sS --max-time 5 "http://127.0.0.1:$mp/metrics" | grep -v '^#' | sed -E 's/ [^ ]+$//'; }
ready2() { [[ $(scrape | grep -c 'state="ready"') == 2 ]]; }
pid0() {
	WPOOL_CONTROL=$dir/ctl "$WPOOL" status --json |
		python3 -c 'import json,sys; print([w["pid"] for w in json.load(sys.stdin)["workers"] if w["id"] == 0][0])'
}
until ready2; do sleep 0.05; done
scrape | sort >"$dir/one"
cp "$dir/one" "$dir/all"
for ((i = 0; i < K; i++)); do
	p=$(pid0)
	kill -9 "$p"
	until [[ $(pid0) != "$p" ]] && ready2; do sleep 0.05; done
	scrape >>"$dir/all"
done
one=$(wc -l <"$dir/one")
all=$(sort -u "$dir/all" | wc -l)
echo "$WPOOL: series in one scrape: $one; distinct over $K restarts: $all; ratio $(awk -v a="$all" -v o="$one" 'BEGIN { printf "%.2f", a / o }')"
