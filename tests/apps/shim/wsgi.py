# gunicorn under wpool --shim (tests/bats/91-shim.bats): GET / answers
# "pid PID", GET /slow the same after $SLOW_SEC seconds.
import os
import time


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(float(os.environ.get("SLOW_SEC", "3")))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("pid %d\n" % os.getpid()).encode()]
