"""A tiny WSGI application for gunicorn under wpool (see run.sh).

GET / answers "pid=PID id=WPOOL_WORKER_ID gen=WPOOL_GENERATION
server=gunicorn"; GET /health answers "ok".  PID is the gunicorn worker
process that served the request; WPOOL_WORKER_ID is the wpool slot of the
gunicorn master above it.
"""

import os


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        body = b"ok\n"
    else:
        body = ("pid=%d id=%s gen=%s server=gunicorn\n" % (
            os.getpid(),
            os.environ.get("WPOOL_WORKER_ID", "-"),
            os.environ.get("WPOOL_GENERATION", "-"),
        )).encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
