#!/usr/bin/env python3
"""slow_accept: a keep-alive HTTP worker for tests/bats/87-steer-load.bats.

Serves the listener at fd 3 with one select() loop, answering every request
"pid=PID id=ID" (as tests/bin/testsrv begins its answers).  The worker whose WPOOL_WORKER_ID is 0 sleeps 5 ms after each
accept(): it keeps accepting, but slower than a burst brings connections,
so its accept queue grows while it works through it (a worker behind, not
stuck).
"""
import os
import select
import socket
import time

listener = socket.socket(fileno=3)
listener.setblocking(True)
slow = os.environ.get("WPOOL_WORKER_ID") == "0"
body = ("pid=%d id=%s\n" % (os.getpid(),
                             os.environ.get("WPOOL_WORKER_ID", ""))).encode()
answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
conns = []
while True:
    ready, _, _ = select.select([listener] + conns, [], [])
    for s in ready:
        if s is listener:
            c, _ = listener.accept()
            conns.append(c)
            if slow:
                time.sleep(0.005)
            continue
        data = s.recv(4096)
        if data:
            s.sendall(answer)
        else:
            conns.remove(s)
            s.close()
