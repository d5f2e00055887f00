# WSGI (gunicorn): answers "ok SLOT"; TERM is gunicorn's own graceful stop.
# SLOW=S: takes S seconds to import, as a large app does.
import os, time
time.sleep(float(os.environ.get("SLOW", "0")))
ID = os.environ.get("WPOOL_WORKER_ID", "?").encode()
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok " + ID + b"\n"]
