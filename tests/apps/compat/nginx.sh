#!/bin/sh
# One nginx master per wpool worker, with its own config (its slot in the
# answer, its own pid file); NGINX=3; (from -e) hands it the pool's socket.
conf=$COMPAT_DIR/nginx.$$.conf
sed -e "s|@DIR@|$COMPAT_DIR|g" -e "s|@PORT@|$COMPAT_PORT|" \
	-e "s|@WORKERS@|1|" -e "s|@BODY@|ok $WPOOL_WORKER_ID|" -e "s|@PID@|$$|" \
	"$(dirname "$0")/nginx.conf.in" >"$conf" || exit 1
exec nginx -p "$COMPAT_DIR" -c "$conf" -e stderr
