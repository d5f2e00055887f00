#!/usr/bin/env python3
"""drain_client: load as a Service behind a readiness probe sends it.

Usage: drain_client.py PORT READYZ_PORT [--conc N] [--probe-every SEC]
                       [--max-seconds SEC]

N threads each send GET / on a new connection, one after another, to
127.0.0.1:PORT.  A prober asks http://127.0.0.1:READYZ_PORT/readyz every
--probe-every seconds (as a kubelet's periodSeconds, scaled down); once it
answers anything but 200 (or does not answer) the endpoint counts as
removed and the threads open no new connection: what they had begun they
finish.  Prints "started" once a first request succeeded, then at the end
"ok=N failed=M" and one line per failure.
"""
import socket
import sys
import threading
import time

args = sys.argv[1:]
if len(args) < 2:
    sys.exit(__doc__)
port, rport = int(args[0]), int(args[1])
conc, every, max_s = 4, 0.1, 30.0
i = 2
while i < len(args):
    if args[i] == "--conc":
        conc = int(args[i + 1])
    elif args[i] == "--probe-every":
        every = float(args[i + 1])
    elif args[i] == "--max-seconds":
        max_s = float(args[i + 1])
    else:
        sys.exit("drain_client: unknown argument " + args[i])
    i += 2

removed = threading.Event()
lock = threading.Lock()
ok = 0
failed = []
started = threading.Event()


def get(p, path):
    s = socket.create_connection(("127.0.0.1", p), timeout=5)
    try:
        s.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
    finally:
        s.close()
    return data


def worker():
    global ok
    while not removed.is_set():
        try:
            d = get(port, "/")
            good = d.startswith(b"HTTP/1.1 200")
            why = d[:40]
        except OSError as e:
            good, why = False, repr(e)
        with lock:
            if good:
                ok += 1
                started.set()
            else:
                failed.append(why)


def prober():
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        try:
            if not get(rport, "/readyz").startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            break
        time.sleep(every)
    removed.set()


ts = [threading.Thread(target=worker) for _ in range(conc)]
for t in ts:
    t.start()
started.wait(10)
print("started", flush=True)
prober()
for t in ts:
    t.join()
print("ok=%d failed=%d" % (ok, len(failed)), flush=True)
for f in failed:
    print("failure: %s" % (f,), flush=True)
