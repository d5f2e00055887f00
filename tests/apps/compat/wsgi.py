# WSGI (gunicorn): answers "ok SLOT"; TERM is gunicorn's own graceful stop.
import os
ID = os.environ.get("WPOOL_WORKER_ID", "?").encode()
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok " + ID + b"\n"]
