#!/usr/bin/env python3
"""http_attack: hostile clients for wpool's --metrics endpoint (loopback).

Every wait is bounded; the figures are printed, never asserted here.

  flood PORT [--idle N] [--slow N] [--noread N] [--scrapes K]
        [--scrape-timeout T] [--settle S] [--gap G] [--path P]
        [--src IP] [--hold H] [--release FILE]
      Opens the attack and keeps it up while K scrapes (`curl` of P, one
      after the other, each bounded by --max-time T) run:
        --idle N    N connections that never send anything;
        --slow N    N slowloris connections: a request that never ends,
                    one byte every G seconds; reconnected when dropped;
        --noread N  N connections that send `GET P` and never read the
                    answer (a tiny receive buffer).
      The attack comes from --src (e.g. 127.0.0.2: another host than the
      scraper's 127.0.0.1), by default from the scraper's own address.
      Waits up to S seconds until no connect is pending any more (each
      established, or closed by the server) or none has completed for
      1.5 s, then prints `attack idle=... slow=... noread=... established=...`,
      `scrape I CODE SECONDS` for each scrape (CODE 000: no answer) and
      `dropped N` (attack connections the server closed meanwhile).
      With --hold H, prints `holding` after the scrapes and keeps the
      attack up for H more seconds, or until --release FILE exists.
  get PORT PATH [--header-bytes N] [--timeout T]
      One request the way most HTTP libraries make it (http.client: the
      whole request is sent before the answer is read), with an X-Pad
      header of N bytes; prints `status CODE SECONDS` or `error WHAT
      SECONDS`.
  raw PORT [--send TEXT] [--pad N] [--timeout T]
      One connection: sends TEXT (Python escapes: \\r \\n \\x00), then N
      bytes of header padding if --pad; keeps sending what is left while
      reading; prints `status LINE SECONDS` with the first line of the
      answer (or `status ERR reason SECONDS`), and `closed SECONDS` once the
      server has closed (or `open` at the deadline).
"""
import argparse
import codecs
import http.client
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Flood:
    def __init__(self, a):
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.conns = {}         # socket -> [kind, bytes sent, established]
        self.dropped = 0
        self.slow_req = (b"GET " + a.path.encode() +
                         b" HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 65536)
        self.next_slow = 0.0
        self.last_n, self.last_change = -1, 0.0

    def open(self, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.a.src:
            s.bind((self.a.src, 0))
        if kind == "noread":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.setblocking(False)
        try:
            s.connect((HOST, self.a.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        self.conns[s] = [kind, 0, False]
        self.sel.register(s, selectors.EVENT_WRITE)

    def gone(self, s):
        kind = self.conns.pop(s)[0]
        self.sel.unregister(s)
        s.close()
        self.dropped += 1
        if kind == "slow":
            self.open("slow")   # slowloris keeps its count up

    def event(self, s, ev):
        st = self.conns[s]
        if ev & selectors.EVENT_WRITE and not st[2]:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                self.gone(s)
                return
            st[2] = True
            if st[0] == "noread":
                try:
                    s.send(b"GET " + self.a.path.encode() +
                           b" HTTP/1.1\r\nHost: x\r\n\r\n")
                except OSError:
                    self.gone(s)
                    return
                # Never read: watch nothing; the answer stays unread.
                self.sel.unregister(s)
                return
            self.sel.modify(s, selectors.EVENT_READ)
            return
        if ev & selectors.EVENT_READ:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                self.gone(s)

    def trickle(self, now):
        """One more byte on every slow connection each --gap seconds."""
        if now < self.next_slow:
            return
        self.next_slow = now + self.a.gap
        for s, st in list(self.conns.items()):
            if st[0] != "slow" or not st[2]:
                continue
            try:
                n = s.send(self.slow_req[st[1]:st[1] + 1])
                st[1] += n
            except BlockingIOError:
                pass
            except OSError:
                self.gone(s)

    def spin(self, until, done=None):
        while True:
            now = time.monotonic()
            if now >= until or (done is not None and done()):
                return
            for key, ev in self.sel.select(min(0.01, until - now)):
                if key.fileobj in self.conns:
                    self.event(key.fileobj, ev)
            self.trickle(time.monotonic())

    def settled(self):
        """No connect pending, or none completed for 1.5 s (a
        server that accepts no more leaves the rest in SYN retries,
        and a SYN dropped at once is sent again after 1 s)."""
        now, n = time.monotonic(), self.established() + self.dropped
        if n != self.last_n:
            self.last_n, self.last_change = n, now
        return self.connecting() == 0 or now - self.last_change >= 1.5

    def connecting(self):
        return sum(1 for st in self.conns.values() if not st[2])

    def established(self):
        return sum(1 for st in self.conns.values() if st[2])

    def run(self):
        a = self.a
        for kind, n in (("idle", a.idle), ("slow", a.slow),
                        ("noread", a.noread)):
            for _ in range(n):
                self.open(kind)
        self.spin(time.monotonic() + a.settle, self.settled)
        print("attack idle=%d slow=%d noread=%d established=%d" %
              (a.idle, a.slow, a.noread, self.established()), flush=True)
        url = "http://%s:%d%s" % (HOST, a.port, a.path)
        for i in range(a.scrapes):
            t = time.monotonic()
            p = subprocess.Popen(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "--max-time", str(a.scrape_timeout), url],
                stdout=subprocess.PIPE)
            self.spin(t + a.scrape_timeout + 5, lambda: p.poll() is not None)
            if p.poll() is None:
                p.kill()
            code = p.communicate()[0].decode() or "000"
            print("scrape %d %s %.3f" % (i, code, time.monotonic() - t),
                  flush=True)
        if a.hold > 0:
            print("holding", flush=True)
            self.spin(time.monotonic() + a.hold,
                      lambda: a.release and os.path.exists(a.release))
        print("dropped %d" % self.dropped, flush=True)
        for s in list(self.conns):
            s.close()


def get(a):
    """As most HTTP libraries do: the whole request, then the answer."""
    c = http.client.HTTPConnection(HOST, a.port, timeout=a.timeout)
    hdrs = {"X-Pad": "a" * a.header_bytes} if a.header_bytes else {}
    t = time.monotonic()
    try:
        c.request("GET", a.path, headers=hdrs)
        r = c.getresponse()
        r.read()
        print("status %d %.3f" % (r.status, time.monotonic() - t))
    except (OSError, http.client.HTTPException) as e:
        print("error %r %.3f" % (e, time.monotonic() - t))


def raw(a):
    data = codecs.decode(a.send, "unicode_escape").encode("latin-1")
    data += b"X-Pad: " + b"a" * a.pad + b"\r\n\r\n" if a.pad else b""
    s = socket.create_connection((HOST, a.port), timeout=a.timeout)
    s.setblocking(False)
    t = time.monotonic()
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    got, off, status, err = b"", 0, None, None
    while time.monotonic() - t < a.timeout:
        for _, ev in sel.select(0.05):
            if ev & selectors.EVENT_WRITE:
                try:
                    off += s.send(data[off:off + 65536])
                except BlockingIOError:
                    pass
                except OSError as e:
                    err = err or "send: %s" % e.strerror
                    off = len(data)
                if off >= len(data):
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    d = s.recv(65536)
                except OSError as e:
                    err = "recv: %s" % e.strerror
                    d = b""
                if d and status is None:
                    got += d
                    if b"\n" in got:
                        status = got.split(b"\r\n")[0].decode("latin-1")
                        print("status %s %.3f" % (status,
                              time.monotonic() - t), flush=True)
                if not d:
                    if status is None:
                        print("status ERR %s %.3f" % (err or "eof",
                              time.monotonic() - t), flush=True)
                    print("closed %.3f" % (time.monotonic() - t))
                    return
    if status is None:
        print("status ERR timeout %.3f" % (time.monotonic() - t))
    print("open")


def main():
    raise_nofile()
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flood")
    f.add_argument("port", type=int)
    f.add_argument("--idle", type=int, default=0)
    f.add_argument("--slow", type=int, default=0)
    f.add_argument("--noread", type=int, default=0)
    f.add_argument("--scrapes", type=int, default=1)
    f.add_argument("--scrape-timeout", type=float, default=3)
    f.add_argument("--settle", type=float, default=3)
    f.add_argument("--gap", type=float, default=0.2)
    f.add_argument("--path", default="/metrics")
    f.add_argument("--hold", type=float, default=0)
    f.add_argument("--src")
    f.add_argument("--release")
    g = sub.add_parser("get")
    g.add_argument("port", type=int)
    g.add_argument("path")
    g.add_argument("--header-bytes", type=int, default=0)
    g.add_argument("--timeout", type=float, default=5)
    r = sub.add_parser("raw")
    r.add_argument("port", type=int)
    r.add_argument("--send", default="")
    r.add_argument("--pad", type=int, default=0)
    r.add_argument("--timeout", type=float, default=5)
    a = ap.parse_args()
    if a.cmd == "flood":
        Flood(a).run()
    elif a.cmd == "get":
        get(a)
    else:
        raw(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
