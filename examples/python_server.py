#!/usr/bin/env python3
"""A wpool worker in plain Python (standard library only).

    wpool -n 2 -b 127.0.0.1:8080 -- python3 examples/python_server.py
    curl 127.0.0.1:8080/

It serves every listening socket it inherits, found the way systemd socket
activation (sd_listen_fds(3)) finds them: LISTEN_FDS sockets from fd 3 on
when LISTEN_PID is this process (without those variables, fd 3 alone).  So
the same file runs under wpool, under systemd's socket activation, and
under `systemd-socket-activate -l 8080 python3 python_server.py`.

GET / answers "pid=PID id=WPOOL_WORKER_ID gen=WPOOL_GENERATION
listener=NAME", NAME coming from LISTEN_FDNAMES.  GET /health answers "ok".

SIGTERM (wpool's stop and rolling reload) or SIGINT: stop accepting, let
the requests in hand finish, exit 0.  The listening sockets themselves stay
open in wpool, so nothing queued on them is lost while a worker restarts.
"""

import http.server
import os
import signal
import socket
import socketserver
import sys
import threading

SD_LISTEN_FDS_START = 3
IDLE_TIMEOUT = 5        # seconds a keep-alive connection may sit idle
STOPPING = threading.Event()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def inherited_sockets():
    """[(name, socket)] for every listener passed in, in fd order."""
    count = os.environ.get("LISTEN_FDS")
    pid = os.environ.get("LISTEN_PID")
    if count is None:
        fds = [SD_LISTEN_FDS_START]
    else:
        if pid is not None and pid != str(os.getpid()):
            sys.exit("python_server: LISTEN_PID is not this process")
        fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count))
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    socks = []
    for i, fd in enumerate(fds):
        # socket(fileno=) reads the family and type from the fd itself.
        sock = socket.socket(fileno=fd)
        # Every worker waits on the same socket and only one wins each
        # connection: the others must get EAGAIN from accept() (which
        # socketserver ignores), not block in it.
        sock.setblocking(False)
        name = names[i] if i < len(names) and names[i] else "l%d" % i
        socks.append((name, sock))
    return socks


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wpool-python-example"
    timeout = IDLE_TIMEOUT

    def do_GET(self):
        if self.path == "/health":
            body = "ok\n"
        else:
            body = "pid=%d id=%s gen=%s listener=%s\n" % (
                os.getpid(),
                os.environ.get("WPOOL_WORKER_ID", "-"),
                os.environ.get("WPOOL_GENERATION", "-"),
                self.server.listener_name,
            )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if STOPPING.is_set():
            # Stopping: finish this request, then let the client go.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def address_string(self):
        # Unix-socket peers have no address tuple.
        addr = self.client_address
        return addr[0] if isinstance(addr, tuple) and addr else "unix"

    def log_message(self, fmt, *args):
        if os.environ.get("EXAMPLE_ACCESS_LOG"):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


class InheritedServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """An HTTPServer around a socket that is already bound and listening."""

    daemon_threads = False      # server_close() waits for requests in hand
    block_on_close = True

    def __init__(self, name, sock):
        self.listener_name = name
        super().__init__(("", 0), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.address_family = sock.family

    def server_bind(self):
        pass

    def server_activate(self):
        pass

    def server_close(self):
        # Closing our copy of the listener is harmless: wpool keeps its own.
        super().server_close()


def main():
    servers = [InheritedServer(n, s) for n, s in inherited_sockets()]
    def on_stop(signum, frame):
        STOPPING.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)

    def serve(srv):
        # Only the main thread takes the stop signals: one delivered to a
        # serving thread would not wake the main thread's wait below.
        # Connection threads inherit this mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        srv.serve_forever(0.2)

    threads = []
    for srv in servers:
        t = threading.Thread(target=serve, args=(srv,))
        t.start()
        threads.append(t)
    while not STOPPING.wait(3600):
        pass
    for srv in servers:
        srv.shutdown()          # stop accepting
    for t in threads:
        t.join()
    for srv in servers:
        srv.server_close()      # wait for the requests in hand (and for
                                # idle keep-alive clients, IDLE_TIMEOUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
