#!/bin/sh
# Debian's gunicorn under wpool: wpool binds the port once and runs N
# single-process gunicorns on it, each replaced on its own when it dies and
# all replaced one by one, without a refused connection, by `wpool reload`.
#
#     examples/gunicorn/run.sh                      # 127.0.0.1:8000, -n auto
#     BIND=0.0.0.0:8080 WORKERS=4 examples/gunicorn/run.sh
#     curl 127.0.0.1:8000/
#
# gunicorn needs no --bind: it adopts the sockets of systemd socket
# activation (LISTEN_FDS, LISTEN_PID), which wpool passes to every worker.
# Do not add `--bind fd://3` as well: gunicorn 20 would then adopt fd 3
# twice and fail with "Bad file descriptor".
#
# --workers 1: wpool is the process manager, so each gunicorn master runs
# one worker; the pool's size is wpool's -n.  (Use --threads for
# concurrency inside each process.)
# --preload and --ready notify: gunicorn imports the application, then
# sends READY=1 to NOTIFY_SOCKET; a reload moves on to the next slot only
# once the new code has imported without error.
# Reload with `wpool --name gunicorn-example reload` (or kill -HUP the
# master), not gunicorn's own USR2 re-exec.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "${WPOOL:-wpool}" --name "${NAME:-gunicorn-example}" \
	-n "${WORKERS:-auto}" --ready notify -b "${BIND:-127.0.0.1:8000}" -- \
	gunicorn --workers 1 --preload --chdir "$here" app:app "$@"
