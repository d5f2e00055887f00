#!/usr/bin/env python3
"""A wpool balance-mode worker in Python (3.9+ for socket.recv_fds).

The master passes each connection over the SOCK_SEQPACKET socket at fd
$WPOOL_CONN_FD (3) with a JSON payload {"id","listener","peer"}; the worker
reports {"type":"closed","id":N} when done.

    wpool -m balance -n 4 -b 127.0.0.1:8080 -- python3 examples/balance_worker.py
"""
import json
import os
import socket
import sys

chan = socket.socket(fileno=int(os.environ.get("WPOOL_CONN_FD", "3")))
worker = os.environ.get("WPOOL_WORKER_ID", "?")

while True:
    try:
        data, fds, _flags, _addr = socket.recv_fds(chan, 1024, 1)
    except (ConnectionResetError, OSError):
        break
    if not data and not fds:
        break          # the master closed the channel: exit
    if not fds:
        continue
    meta = json.loads(data)
    conn = socket.socket(fileno=fds[0])
    try:
        conn.recv(4096)
        body = f"hello from worker {worker} (pid {os.getpid()}), " \
               f"connection {meta['id']} from {meta['peer']}\n".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body) + body)
    except OSError as e:
        print(f"worker {worker}: {e}", file=sys.stderr)
    finally:
        conn.close()
        chan.send(json.dumps({"type": "closed", "id": meta["id"]}).encode())
