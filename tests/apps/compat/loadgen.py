#!/usr/bin/python3
"""A small, bounded HTTP load: C clients, each sending GET / with
Connection: close (HTTP/1.0: no chunks) on a new connection, pausing PAUSE s between requests,
until STOPFILE exists, MAX seconds have passed, or (with --until-ids N) N
different bodies "ok ID" have been seen.  A request fails unless it gets
"HTTP/1.x 200" and a body starting with "ok" within 5 s.  Prints one JSON
line: sent, failed, the bodies' ids seen (with counts), the first failures.
"""
import argparse, json, os, socket, threading, time

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("-c", type=int, default=4)
p.add_argument("--stop")
p.add_argument("--max", type=float, default=30)
p.add_argument("--pause", type=float, default=0.01)
p.add_argument("--until-ids", type=int, default=0)
p.add_argument("--started")
p.add_argument("--trickle", type=float, default=0)
a = p.parse_args()

lock = threading.Lock()
st = {"sent": 0, "failed": 0, "ids": {}, "errors": []}
end = time.monotonic() + a.max
done = threading.Event()
REQ = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def one():
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    try:
        if a.trickle:
            # A slow client: the server holds a request it has begun.
            s.sendall(REQ[:16])
            time.sleep(a.trickle)
            s.sendall(REQ[16:])
        else:
            s.sendall(REQ)
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        raise ValueError("answer %r" % buf[:60])
    if not body.startswith(b"ok"):
        raise ValueError("body %r" % body[:60])
    return body.split()[1].decode() if len(body.split()) > 1 else ""


def client():
    while not done.is_set() and time.monotonic() < end:
        if a.stop and os.path.exists(a.stop):
            break
        try:
            i = one()
            err = None
        except Exception as e:
            err = "%s: %s" % (type(e).__name__, e)
        with lock:
            st["sent"] += 1
            if err:
                st["failed"] += 1
                if len(st["errors"]) < 5:
                    st["errors"].append(err)
            else:
                st["ids"][i] = st["ids"].get(i, 0) + 1
                if a.until_ids and len(st["ids"]) >= a.until_ids:
                    done.set()
        time.sleep(a.pause)


ts = [threading.Thread(target=client) for _ in range(a.c)]
for t in ts:
    t.start()
if a.started:
    open(a.started, "w").close()
for t in ts:
    t.join()
print(json.dumps(st, sort_keys=True), flush=True)
