# ASGI (uvicorn --fd 3): answers "ok SLOT"; uvicorn stops gracefully on TERM.
# SLOW=S: takes S seconds to import, as a large app does.
import os, time
time.sleep(float(os.environ.get("SLOW", "0")))
ID = os.environ.get("WPOOL_WORKER_ID", "?").encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok " + ID + b"\n"})
