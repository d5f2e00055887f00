#!/bin/sh
# starman in a session of its own, so that the stop signal wpool sends to
# the worker's process group reaches this shell alone, which passes QUIT
# on to starman's master only (its children exit at once on QUIT).
setsid starman --workers 2 app.psgi &
p=$!
trap 'kill -QUIT $p' QUIT
while kill -0 "$p" 2>/dev/null; do wait "$p"; done
