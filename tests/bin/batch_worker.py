#!/usr/bin/env python3
"""batch_worker: a balance-mode worker for tests/bats/92-balance-batch.bats
that shows what each message of the channel holds.

  --hello K     say {"type":"hello","version":2,"batch":K} first, if the
                master reads version 2 ($WPOOL_CONN_VERSION >= 2), as
                include/wpool-worker.h does; report closed connections in
                one message (v2 lines) per message received
  --version V   say version V in the hello instead (a newer library's)
  --log FILE    append `msg PID NFDS BYTES` for every message
  --gate FILE   send {"type":"ready"} once FILE exists (--ready notify)
  --peek        never read: wait for a message, MSG_PEEK it, log it as
                `peek PID NFDS` (closing the copies), then sleep
Each connection: read the request, answer `pid=P conn=ID` with
`Connection: close`, close it.
"""
import argparse
import array
import os
import socket
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--hello", type=int, default=0)
ap.add_argument("--version", type=int, default=2)
ap.add_argument("--log")
ap.add_argument("--gate")
ap.add_argument("--peek", action="store_true")
a = ap.parse_args()

chan = socket.socket(fileno=int(os.environ["WPOOL_CONN_FD"]))
pid = os.getpid()
v2 = a.hello > 0 and int(os.environ.get("WPOOL_CONN_VERSION", "1")) >= 2
if v2:
    chan.send(b'{"type":"hello","version":%d,"batch":%d}'
              % (a.version, a.hello))


def log(line):
    if a.log:
        with open(a.log, "a") as f:
            f.write(line + "\n")


if a.gate:
    while not os.path.exists(a.gate):
        time.sleep(0.02)
    chan.send(b'{"type":"ready"}')

CMSG = socket.CMSG_SPACE(253 * 4)


def fds_of(anc):
    fds = array.array("i")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % 4])
    return list(fds)


if a.peek:
    data, anc, _f, _a = chan.recvmsg(8193, CMSG, socket.MSG_PEEK)
    fds = fds_of(anc)
    log("peek %d %d" % (pid, len(fds)))
    for fd in fds:
        os.close(fd)
    while True:
        time.sleep(60)

while True:
    try:
        data, anc, _f, _a = chan.recvmsg(8193, CMSG)
    except OSError:
        break
    fds = fds_of(anc)
    if not data and not fds:
        break
    log("msg %d %d %d" % (pid, len(fds), len(data)))
    lines = data.split(b"\n")
    ids = []
    for i, fd in enumerate(fds):
        line = lines[i] if i < len(lines) else b"{}"
        cid = line.split(b'"id":')[1].split(b",")[0].decode() \
            if b'"id":' in line else "0"
        c = socket.socket(fileno=fd)
        try:
            c.settimeout(5)
            req = b""
            while b"\r\n\r\n" not in req:
                d = c.recv(4096)
                if not d:
                    break
                req += d
            body = b"pid=%d conn=%s\n" % (pid, cid.encode())
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
        except OSError as e:
            print("batch_worker %d: %s" % (pid, e), file=sys.stderr)
        c.close()
        ids.append(cid)
    reports = [b'{"type":"closed","id":%s}' % i.encode() for i in ids]
    if v2:
        # Lines, in messages of at most 1024 bytes (WPOOL_REPORT_MAX).
        while reports:
            n = 1
            while n < len(reports) and \
                    len(b"\n".join(reports[:n + 1])) <= 1024:
                n += 1
            chan.send(b"\n".join(reports[:n]))
            reports = reports[n:]
    else:
        for r in reports:
            chan.send(r)
