import time
time.sleep(float(__import__("os").environ.get("SLOW", "0")))
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
