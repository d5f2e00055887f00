/*
 * shim_blocking: a blocking HTTP/1.0 server that knows nothing of wpool's
 * balance protocol, for wpool --shim (tests/bats/91-shim.bats): the
 * listener at fd 3 (LISTEN_FDS), accept(), read, write, close, one
 * connection at a time.  GET / answers "pid PID"; GET /slow the same
 * after $SLOW_SEC seconds (3 unless given).  It checks that the listener
 * looks like one (SO_ACCEPTCONN, SO_TYPE, getsockname) and exits 2 if not.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
main(void)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss), il = sizeof(int);
	const char *slow = getenv("SLOW_SEC");
	char	 req[4096], resp[256], body[64];
	int	 l = 3, c, on = 0, type = 0, n;

	if (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &on, &il) < 0 || !on ||
	    (il = sizeof(int), getsockopt(l, SOL_SOCKET, SO_TYPE, &type,
	    &il)) < 0 || type != SOCK_STREAM ||
	    getsockname(l, (struct sockaddr *)&ss, &sl) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		fprintf(stderr, "shim_blocking: fd 3 is no TCP listener\n");
		return 2;
	}
	if (listen(l, 128) < 0)
		return 2;
	for (;;) {
		sl = sizeof(ss);
		if ((c = accept(l, (struct sockaddr *)&ss, &sl)) < 0)
			continue;
		n = (int)read(c, req, sizeof(req) - 1);
		req[n > 0 ? n : 0] = '\0';
		if (strncmp(req, "GET /slow ", 10) == 0)
			usleep((useconds_t)(1e6 * (slow ? atof(slow) : 3)));
		n = snprintf(body, sizeof(body), "pid %d\n", (int)getpid());
		n = snprintf(resp, sizeof(resp), "HTTP/1.0 200 OK\r\n"
		    "Content-Length: %d\r\nConnection: close\r\n\r\n%s", n,
		    body);
		(void)write(c, resp, (size_t)n);
		close(c);
	}
}
