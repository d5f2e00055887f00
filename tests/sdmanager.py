#!/usr/bin/env python3
"""A service manager's side of sd_notify and the fd store, for the tests.

Written from systemd's documented protocol (sd_notify(3), sd_listen_fds(3)):
an AF_UNIX SOCK_DGRAM socket at SOCK; each datagram is newline-separated
KEY=VALUE lines; FDSTORE=1 with FDNAME= comes with the fds in SCM_RIGHTS;
FDSTOREREMOVE=1 with FDNAME= drops them.  The manager holds what is stored
(one copy per open file, as systemd does) and, on SIGUSR1, starts CMD
again with them as LISTEN_FDS/LISTEN_FDNAMES at fds 3.. and LISTEN_PID set
to the child's own pid (the exec wrapper: fork, set it, exec).

usage: sdmanager.py SOCK EVENTS CMDLOG [ENV=VALUE...] -- CMD...
EVENTS gets one line per event, each line "MONO_USEC KIND TEXT":
  PID n            CMD started (again) as pid n
  MSG KEY=VALUE    one line of a datagram, in order
  STORED name addr an fd kept (addr: its socket's address)
  DUP name         an fd the store had already
  REMOVED name     FDSTOREREMOVE
  EXIT pid status  CMD exited
CMD's output goes to CMDLOG (appended).  SIGTERM ends the manager.
"""
import array
import os
import signal
import socket
import sys
import time

sock_path, events_path, cmdlog = sys.argv[1:4]
rest = sys.argv[4:]
extra_env = {}
while rest and rest[0] != "--":
    k, _, v = rest.pop(0).partition("=")
    extra_env[k] = v
cmd = rest[1:]

events = open(events_path, "a", buffering=1)
stored = []  # [name, fd, (dev, ino)]


def event(kind, text):
    events.write("%d %s %s\n" % (time.monotonic_ns() // 1000, kind, text))


def spawn():
    fds = [s[1] for s in stored]
    pid = os.fork()
    if pid == 0:
        out = os.open(cmdlog, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(out, 1)
        os.dup2(out, 2)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        # Out of the way first, then at 3, 4, ... in order.
        high = [os.dup2(fd, 100 + i, inheritable=False)
                for i, fd in enumerate(fds)]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i, inheritable=True)
        os.closerange(3 + len(fds), 1024)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = sock_path
        env.update(extra_env)  # NOTIFY_SOCKET= : a wpool not told
        for k in ("LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"):
            env.pop(k, None)
        if fds:
            env["LISTEN_FDS"] = str(len(fds))
            env["LISTEN_FDNAMES"] = ":".join(s[0] for s in stored)
            env["LISTEN_PID"] = str(os.getpid())
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execvpe(cmd[0], cmd, env)
    event("PID", str(pid))


def addr_of(fd):
    try:
        s = socket.socket(fileno=os.dup(fd))
        a = s.getsockname()
        s.close()
        if isinstance(a, tuple):
            return "%s:%d" % (a[0], a[1])
        return "unix:" + (a if isinstance(a, str) else a.decode())
    except OSError as e:
        return "?" + e.strerror


def handle(data, fds):
    lines = data.decode(errors="replace").split("\n")
    for line in lines:
        if line:
            event("MSG", line)
    kv = dict(line.partition("=")[::2] for line in lines if "=" in line)
    name = kv.get("FDNAME", "stored")
    if kv.get("FDSTORE") == "1":
        for fd in fds:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if any(s[2] == key for s in stored):
                event("DUP", name)
                os.close(fd)
                continue
            stored.append([name, fd, key])
            event("STORED", "%s %s" % (name, addr_of(fd)))
        return
    for fd in fds:
        os.close(fd)
    if kv.get("FDSTOREREMOVE") == "1":
        for s in [s for s in stored if s[0] == name]:
            os.close(s[1])
            stored.remove(s)
        event("REMOVED", name)


def main():
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sig = {signal.SIGUSR1, signal.SIGTERM, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, sig)
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)
    for s in sig:
        signal.signal(s, lambda *a: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, sig)
    spawn()
    import select
    while True:
        r, _, _ = select.select([sock, rfd], [], [])
        if sock in r:
            fds = array.array("i")
            msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(253 * 4))
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[:len(cdata) - len(cdata) % 4])
            handle(msg, list(fds))
        if rfd in r:
            for b in os.read(rfd, 64):
                if b == signal.SIGTERM:
                    return
                if b == signal.SIGUSR1:
                    spawn()
            while True:
                try:
                    pid, st = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                event("EXIT", "%d %d" % (pid, st))


main()
