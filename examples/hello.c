/*
 * hello.c: the smallest useful wpool worker, run by `make demo`.
 *
 *	wpool -n auto -b 127.0.0.1:8080 -- ./examples/hello
 *	curl 127.0.0.1:8080/
 *
 * It serves the listening sockets it inherits, found the way systemd
 * socket activation (sd_listen_fds(3)) finds them: LISTEN_FDS sockets from
 * fd 3 on, if LISTEN_PID is this process; without those variables, fd 3.
 * Every HTTP request gets "hello from worker ID (pid PID)", ID being
 * WPOOL_WORKER_ID.  SIGTERM or SIGINT lets it finish the request in hand
 * and exit 0: that is what wpool's stop and rolling reload ask of it.
 * HUP, USR1 and USR2 (`wpool signal USR2`, or USR2 to the master, which
 * forwards it) are only logged: a real server would reopen its logs.
 *
 * Plain C and libc only, so it reads as a template for a real worker.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_FDS_START	3	/* SD_LISTEN_FDS_START */
#define MAX_LISTENERS		64
#define READ_TIMEOUT_SEC	5	/* a silent client cannot hold us longer */

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t noted;	/* a signal to log, or 0 */

static void
on_signal(int sig)
{
	if (sig == SIGTERM || sig == SIGINT)
		stopping = 1;
	else
		noted = sig;
}

/* A whole decimal number in [0, INT_MAX], or -1. */
static long
parse_number(const char *s)
{
	char	*end;
	long	 n;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || n > INT_MAX)
		return -1;
	return n;
}

/*
 * How many fds, from 3 on, were passed to us: LISTEN_FDS when LISTEN_PID
 * says the variables are meant for this process (not for a parent that
 * leaked them), else one, fd 3, as a plain inetd-style fallback.
 */
static int
count_listeners(void)
{
	long	 fds = parse_number(getenv("LISTEN_FDS"));
	long	 pid = parse_number(getenv("LISTEN_PID"));

	if (fds < 1 || pid != (long)getpid())
		return 1;
	return fds > MAX_LISTENERS ? MAX_LISTENERS : (int)fds;
}

/* 1 if fd is a listening stream socket; datagram sockets are not ours. */
static int
is_stream_listener(int fd)
{
	int	 type, listening;
	socklen_t len;

	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return 0;
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return 0;
	return listening;
}

static int
send_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		/* MSG_NOSIGNAL: a client that hung up is no reason to die. */
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one request head, whatever it asks for, and answers it. */
static void
serve(int conn, const char *id)
{
	struct timeval tv = { READ_TIMEOUT_SEC, 0 };
	char	 req[4096], body[128], resp[512];
	size_t	 got = 0;
	ssize_t	 n;
	int	 len;

	setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < sizeof(req) - 1) {
		n = read(conn, req + got, sizeof(req) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* gone, or silent for too long */
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL ||
		    strstr(req, "\n\n") != NULL)
			break;
	}

	snprintf(body, sizeof(body), "hello from worker %s (pid %ld)\n", id,
	    (long)getpid());
	len = snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "%s", strlen(body), body);
	if (len > 0 && (size_t)len < sizeof(resp))
		send_all(conn, resp, (size_t)len);
}

int
main(void)
{
	struct pollfd pfd[MAX_LISTENERS];
	struct timespec backoff = { 0, 100 * 1000 * 1000 };
	static const int handled[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1,
	    SIGUSR2 };
	struct sigaction sa;
	sigset_t block, waitmask;
	const char *id;
	int	 i, n, nfds = 0, conn;

	if ((id = getenv("WPOOL_WORKER_ID")) == NULL)
		id = "?";

	n = count_listeners();
	for (i = 0; i < n; i++) {
		int	 fd = LISTEN_FDS_START + i;

		if (!is_stream_listener(fd))
			continue;
		/*
		 * Every worker polls the same shared sockets, and only one
		 * of them wins each connection: the others must get EAGAIN
		 * from accept(), not block in it.
		 */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		pfd[nfds].fd = fd;
		pfd[nfds].events = POLLIN;
		nfds++;
	}
	if (nfds == 0) {
		fprintf(stderr, "hello: no listening stream socket at fd %d; "
		    "run me as: wpool -b 127.0.0.1:8080 -- %s\n",
		    LISTEN_FDS_START, "./examples/hello");
		return 1;
	}

	/*
	 * These signals stay blocked except inside ppoll(), which unblocks
	 * them atomically: a stop request is seen at once while we wait,
	 * and never cuts a request in half.
	 */
	sigemptyset(&block);
	for (i = 0; i < (int)(sizeof(handled) / sizeof(handled[0])); i++)
		sigaddset(&block, handled[i]);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	for (i = 0; i < (int)(sizeof(handled) / sizeof(handled[0])); i++) {
		sigdelset(&waitmask, handled[i]);
		sigaction(handled[i], &sa, NULL);
	}

	while (!stopping) {
		if (ppoll(pfd, (nfds_t)nfds, NULL, &waitmask) < 0) {
			if (errno != EINTR) {
				perror("hello: poll");
				return 1;
			}
			if (noted != 0) {
				fprintf(stderr, "hello: worker %s (pid %ld) got "
				    "SIG%s\n", id, (long)getpid(),
				    noted == SIGHUP ? "HUP" : noted == SIGUSR1 ?
				    "USR1" : "USR2");
				noted = 0;
			}
			continue;
		}
		for (i = 0; i < nfds; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			conn = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (conn < 0) {
				/*
				 * Another worker was quicker, or the client
				 * gave up: both are normal.  Anything else
				 * (EMFILE...) gets a pause, not a busy loop.
				 */
				if (errno != EAGAIN && errno != EWOULDBLOCK &&
				    errno != ECONNABORTED && errno != EINTR) {
					perror("hello: accept");
					nanosleep(&backoff, NULL);
				}
				continue;
			}
			serve(conn, id);
			close(conn);
		}
	}
	return 0;
}
