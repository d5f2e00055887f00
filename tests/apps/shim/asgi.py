# uvicorn under wpool --shim (tests/bats/91-shim.bats): as wsgi.py, with
# /slow waiting without blocking the event loop.
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(float(os.environ.get("SLOW_SEC", "3")))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body",
                "body": ("pid %d\n" % os.getpid()).encode()})
