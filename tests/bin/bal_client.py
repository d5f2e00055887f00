#!/usr/bin/env python3
"""bal_client: the client side of wpool's balance and inetd tests.

Every wait is bounded (--timeout, default 10 s); errors are printed, not
raised, so the test sees what happened to each connection.  The server is
--host (default 127.0.0.1; ::1 for IPv6) port PORT.

  get PORT PATH [-n N] [--src IP] [--keepalive]
      N requests (default 1), each on a new connection with
      `Connection: close` (or all on one keep-alive connection); prints each
      response body, or `ERR reason`.
  ipmap PORT FIRST LAST [-n PER] [--path P]
      for X in FIRST..LAST: PER connections from source address 127.0.0.X;
      prints `127.0.0.X BODY-FIELD-id ...` (the worker ids that answered).
  hold PORT -n K [--path P] [--release FILE] [--out FILE]
      K keep-alive connections, one at a time: connect, GET P, read the
      answer (so the server has placed each one before the next); prints
      `held I local=PORT BODY`, then `ready`; waits for FILE to exist (or
      --timeout), then sends GET / on each and prints `after I BODY` (or
      `after I ERR reason`), closes them and prints `done`.
  burst PORT -n K [--path P] [--gap MS]
      K connections opened at once (--gap ms apart), a GET P on each; waits
      for every answer; prints `I ok SECONDS BODY` or `I ERR SECONDS reason`
      in the order the connections were opened.
  raw PORT [--send TEXT] [--src IP]
      one connection: sends TEXT (if any), shuts down its write side, prints
      `local=IP PORT` then everything received until EOF.
  rawhold PORT -n K [--release FILE]
      K raw connections opened at once; prints `conn I local=PORT` for each,
      then `ready`; prints `greet I LINE` as the first line arrives on each;
      on FILE (or --timeout) closes them all one at a time, 0.2 s apart,
      keeps reading the others, and prints `done`.
"""
import argparse
import os
import selectors
import socket
import sys
import time


def out(*a):
    print(*a, flush=True)


HOST = "127.0.0.1"


def connect(port, src=None, timeout=10.0):
    fam = socket.AF_INET6 if ":" in HOST else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((HOST, port))
    return s


def read_response(s):
    """One HTTP/1.1 response with Content-Length; returns (body, closed)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("EOF before the headers")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    closed = False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
        if k.strip().lower() == b"connection" and \
                v.strip().lower() == b"close":
            closed = True
    while len(rest) < length:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("EOF in the body")
        rest += d
    return rest[:length].decode(errors="replace").strip(), closed


def request(path, keepalive):
    conn = "keep-alive" if keepalive else "close"
    return ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: %s\r\n\r\n"
            % (path, conn)).encode()


def field(body, key):
    for w in body.split():
        if w.startswith(key + "="):
            return w[len(key) + 1:]
    return "?"


def cmd_get(a):
    if a.keepalive:
        try:
            s = connect(a.port, a.src, a.timeout)
            for _ in range(a.n):
                s.sendall(request(a.path, True))
                out(read_response(s)[0])
            s.close()
        except OSError as e:
            out("ERR %s" % e)
        return
    for _ in range(a.n):
        try:
            s = connect(a.port, a.src, a.timeout)
            s.sendall(request(a.path, False))
            out(read_response(s)[0])
            s.close()
        except (OSError, ConnectionError) as e:
            out("ERR %s" % e)


def cmd_ipmap(a):
    for x in range(a.first, a.last + 1):
        ip = "127.0.0.%d" % x
        ids = []
        for _ in range(a.n):
            try:
                s = connect(a.port, ip, a.timeout)
                s.sendall(request(a.path, False))
                ids.append(field(read_response(s)[0], "id"))
                s.close()
            except (OSError, ConnectionError) as e:
                ids.append("ERR:%s" % type(e).__name__)
        out(ip, *ids)


def wait_release(path, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path and os.path.exists(path):
            return
        time.sleep(0.02)


def cmd_hold(a):
    socks = []
    for i in range(a.n):
        try:
            s = connect(a.port, a.src, a.timeout)
            s.sendall(request(a.path, True))
            body, _ = read_response(s)
            out("held %d local=%d %s" % (i, s.getsockname()[1], body))
            socks.append(s)
        except (OSError, ConnectionError) as e:
            out("held %d ERR %s" % (i, e))
            socks.append(None)
    out("ready")
    wait_release(a.release, a.timeout)
    for i, s in enumerate(socks):
        if s is None:
            continue
        try:
            s.sendall(request("/", True))
            out("after %d %s" % (i, read_response(s)[0]))
        except (OSError, ConnectionError) as e:
            out("after %d ERR %s" % (i, e))
        s.close()
    out("done")


def cmd_burst(a):
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    res = {}
    socks = []
    for i in range(a.n):
        try:
            s = connect(a.port, a.src, a.timeout)
            s.sendall(request(a.path, False))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, (i, bytearray()))
            socks.append(s)
        except OSError as e:
            res[i] = "%d ERR %.3f %s" % (i, time.monotonic() - t0, e)
        if a.gap:
            time.sleep(a.gap / 1000.0)
    if a.started:
        with open(a.started, "w") as f:
            f.write("started\n")
    end = t0 + a.timeout
    while len(res) < a.n and time.monotonic() < end:
        for key, _ in sel.select(max(0.0, end - time.monotonic())):
            i, buf = key.data
            try:
                d = key.fileobj.recv(65536)
            except OSError as e:
                res[i] = "%d ERR %.3f %s" % (i, time.monotonic() - t0, e)
                sel.unregister(key.fileobj)
                continue
            if d:
                buf += d
                continue
            sel.unregister(key.fileobj)
            _, _, body = bytes(buf).partition(b"\r\n\r\n")
            if body:
                res[i] = "%d ok %.3f %s" % (i, time.monotonic() - t0,
                                            body.decode().strip())
            else:
                res[i] = "%d ERR %.3f EOF without an answer" % (
                    i, time.monotonic() - t0)
    for i in range(a.n):
        out(res.get(i, "%d ERR %.3f timeout" % (i, a.timeout)))
    for s in socks:
        s.close()


def cmd_raw(a):
    try:
        s = connect(a.port, a.src, a.timeout)
        out("local=%s %d" % s.getsockname()[:2])
        if a.send:
            s.sendall(a.send.encode().decode("unicode_escape").encode())
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        sys.stdout.write(buf.decode(errors="replace"))
        sys.stdout.flush()
    except OSError as e:
        out("ERR %s" % e)


def cmd_rawhold(a):
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(a.n):
        s = connect(a.port, a.src, a.timeout)
        out("conn %d local=%d" % (i, s.getsockname()[1]))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [i, b"", False])
        socks.append(s)
    out("ready")
    end = time.monotonic() + a.timeout
    released = False
    closing = list(range(a.n))
    next_close = 0.0
    while time.monotonic() < end:
        if not released and a.release and os.path.exists(a.release):
            released = True
        if released and closing and time.monotonic() >= next_close:
            i = closing.pop(0)
            try:
                sel.unregister(socks[i])
            except (KeyError, ValueError):
                pass
            socks[i].close()
            next_close = time.monotonic() + 0.2
        if released and not closing:
            break
        for key, _ in sel.select(0.02):
            st = key.data
            try:
                d = key.fileobj.recv(4096)
            except OSError as e:
                out("greet %d ERR %s" % (st[0], e))
                sel.unregister(key.fileobj)
                continue
            if not d:
                if not st[2]:
                    out("greet %d EOF" % st[0])
                sel.unregister(key.fileobj)
                continue
            st[1] += d
            if not st[2] and b"\n" in st[1]:
                st[2] = True
                out("greet %d %s" % (st[0],
                                     st[1].split(b"\n")[0].decode()))
    out("done")


def main():
    try:
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("get", "ipmap", "hold", "burst", "raw", "rawhold"):
        q = sub.add_parser(name)
        q.add_argument("port", type=int)
        if name == "get":
            q.add_argument("path")
        if name == "ipmap":
            q.add_argument("first", type=int)
            q.add_argument("last", type=int)
        q.add_argument("-n", type=int, default=1)
        q.add_argument("--path", default="/")
        q.add_argument("--src")
        q.add_argument("--keepalive", action="store_true")
        q.add_argument("--release")
        q.add_argument("--started")
        q.add_argument("--send")
        q.add_argument("--gap", type=float, default=0)
        q.add_argument("--timeout", type=float, default=10)
        q.add_argument("--host", default="127.0.0.1")
    a = p.parse_args()
    global HOST
    HOST = a.host
    {"get": cmd_get, "ipmap": cmd_ipmap, "hold": cmd_hold,
     "burst": cmd_burst, "raw": cmd_raw, "rawhold": cmd_rawhold}[a.cmd](a)


if __name__ == "__main__":
    main()
