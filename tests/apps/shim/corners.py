# A bare python server on the listener at fd 3, for the shim's corners
# (tests/bats/91-shim.bats), one way per $CORNER: "dup" (the connection
# duplicated, the original closed, the answer sent on the copy after
# $HOLD_SEC), "shutdown" (shutdown(SHUT_WR), then close), "fork" (a child
# per connection serves it; the parent closes its copy at once),
# "threads" (a thread per connection).  GET / answers "pid PID".
import os
import socket
import threading
import time

corner = os.environ.get("CORNER", "threads")
hold = float(os.environ.get("HOLD_SEC", "0"))
lsock = socket.socket(fileno=3)
assert lsock.type == socket.SOCK_STREAM, lsock.type


def answer(c):
    c.recv(4096)
    time.sleep(hold)
    body = b"pid %d\n" % os.getpid()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (len(body), body))


def serve(c):
    if corner == "dup":
        d = c.dup()
        c.close()
        answer(d)
        d.close()
    elif corner == "shutdown":
        answer(c)
        c.shutdown(socket.SHUT_WR)
        c.recv(1)
        c.close()
    else:
        answer(c)
        c.close()


while True:
    conn, _ = lsock.accept()
    if corner == "fork":
        if os.fork() == 0:
            lsock.close()
            serve(conn)
            os._exit(0)
        conn.close()
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
    elif corner == "threads":
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    else:
        serve(conn)
