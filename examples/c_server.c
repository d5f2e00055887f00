/*
 * c_server.c: an event-driven HTTP/1.1 worker for wpool, in C and libc.
 *
 *	wpool -n auto --ready notify -b 127.0.0.1:8080,name=web -- \
 *	    ./examples/c_server
 *	curl 127.0.0.1:8080/
 *
 * Where examples/hello.c is the smallest worker, this one is the template
 * for a real one: one epoll loop per process serving many keep-alive
 * connections at once, and every part of wpool's worker contract
 * (DESIGN.md section 5) put to use:
 *
 *  - the listeners are the LISTEN_FDS sockets from fd 3 on, named by
 *    LISTEN_FDNAMES (sd_listen_fds(3)), when LISTEN_PID is this process;
 *  - readiness is reported with sd_notify(3)'s datagram protocol on
 *    NOTIFY_SOCKET: READY=1 once serving (for `--ready notify`), STATUS=
 *    (the open connections) that `wpool status` shows, STOPPING=1 when
 *    draining;
 *  - with `--watchdog SEC` wpool sets WATCHDOG_USEC, and the loop sends
 *    WATCHDOG=1 at half that interval: a worker whose loop is stuck stops
 *    pinging and wpool replaces it;
 *  - SIGTERM or SIGINT (wpool's stop and rolling reload) drain: stop
 *    accepting, finish the requests in hand, close idle connections, exit
 *    0; wpool keeps the listening sockets open meanwhile, so connections
 *    that arrive during the drain wait for the next worker.
 *
 * GET / answers "pid=PID id=WPOOL_WORKER_ID gen=WPOOL_GENERATION
 * listener=NAME"; GET /health answers "ok"; anything else is a 404.
 * Signals arrive through a signalfd, so there is no signal handler.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_FDS_START	3	/* SD_LISTEN_FDS_START */
#define MAX_LISTENERS		64
#define MAX_EVENTS		64
#define REQ_MAX			8192	/* a longer request head gets a 431 */
#define IDLE_TIMEOUT_SEC	5	/* keep-alive connections idle longer go */
#define DRAIN_TIMEOUT_SEC	8	/* under wpool's default --stop-timeout */

enum kind { K_LISTENER, K_CONN, K_SIGNAL, K_TIMER };

struct listener {
	enum kind	 kind;		/* first: epoll data points here */
	int		 fd;
	char		 name[64];
};

struct conn {
	enum kind	 kind;
	int		 fd;
	const struct listener *l;
	time_t		 active;	/* last read or write */
	size_t		 inlen;
	char		 in[REQ_MAX];
	char		*out;		/* response not yet written */
	size_t		 outlen, outoff;
	int		 close_after;	/* after out is written */
	LIST_ENTRY(conn) entry;
};

static struct listener listeners[MAX_LISTENERS];
static int	 nlisteners;
static LIST_HEAD(, conn) conns = LIST_HEAD_INITIALIZER(conns);
static int	 nconns;
static int	 epfd;
static int	 draining;
static const char *worker_id, *generation;

static time_t
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* A whole decimal number in [0, LLONG_MAX], or -1. */
static long long
parse_number(const char *s)
{
	char	*end;
	long long n;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return n;
}

/*
 * sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path,
 * or an abstract name after '@').  Without the variable, nothing to do.
 */
static void
notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t	 len;
	int	 fd;

	if (path == NULL || (*path != '/' && *path != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    salen) < 0)
		fprintf(stderr, "c_server: notify: %s\n", strerror(errno));
	close(fd);
}

/* "STATUS=3 conns" for `wpool status`, sent when it changes. */
static void
notify_status(void)
{
	static char last[64];
	char	 msg[64];

	if (draining)
		snprintf(msg, sizeof(msg), "STATUS=draining");
	else
		snprintf(msg, sizeof(msg), "STATUS=%d conn%s", nconns,
		    nconns == 1 ? "" : "s");
	if (strcmp(msg, last) != 0) {
		notify(msg);
		snprintf(last, sizeof(last), "%s", msg);
	}
}

static int
watch(void *ptr, int fd, uint32_t events, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = ptr;
	return epoll_ctl(epfd, op, fd, &ev);
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

/*
 * The inherited listeners: LISTEN_FDS of them when LISTEN_PID says the
 * variables are meant for this process (not leaked from a parent), else
 * fd 3 alone.  Each is made non-blocking: every worker waits on the same
 * shared socket and all but one get EAGAIN from accept().
 */
static int
open_listeners(void)
{
	long long n = parse_number(getenv("LISTEN_FDS"));
	long long pid = parse_number(getenv("LISTEN_PID"));
	const char *names = getenv("LISTEN_FDNAMES");
	int	 i, fd;

	if (n < 1 || pid != (long long)getpid())
		n = 1;
	if (n > MAX_LISTENERS)
		n = MAX_LISTENERS;
	for (i = 0; i < (int)n; i++) {
		struct listener *l = &listeners[nlisteners];
		size_t	 len;

		fd = LISTEN_FDS_START + i;
		/* Name i is the i-th ':'-separated field, used or not. */
		len = names != NULL ? strcspn(names, ":") : 0;
		if (len > 0 && len < sizeof(l->name))
			snprintf(l->name, sizeof(l->name), "%.*s", (int)len,
			    names);
		else
			snprintf(l->name, sizeof(l->name), "l%d", i);
		if (names != NULL)
			names = names[len] == ':' ? names + len + 1 : NULL;
		if (!is_stream_listener(fd))
			continue;
		l->kind = K_LISTENER;
		l->fd = fd;
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
		    watch(l, fd, EPOLLIN, EPOLL_CTL_ADD) < 0)
			return -1;
		nlisteners++;
	}
	return nlisteners;
}

static void
conn_close(struct conn *c)
{
	LIST_REMOVE(c, entry);
	close(c->fd);		/* also takes it out of the epoll set */
	free(c->out);
	free(c);
	nconns--;
}

/*
 * Writes what it can of c->out: 1 when all is written, 0 when the rest
 * waits for EPOLLOUT, -1 when the connection is closed (and c freed).
 */
static int
conn_flush(struct conn *c)
{
	ssize_t	 n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			watch(c, c->fd, EPOLLOUT, EPOLL_CTL_MOD);
			return 0;
		}
		if (n < 0) {
			conn_close(c);
			return -1;
		}
		c->outoff += (size_t)n;
		c->active = now();
	}
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	if (c->close_after || draining) {
		conn_close(c);
		return -1;
	}
	watch(c, c->fd, EPOLLIN, EPOLL_CTL_MOD);
	return 1;
}

static void
respond(struct conn *c, int code, const char *reason, const char *body)
{
	int	 len;

	len = asprintf(&c->out,
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n"
	    "%s"
	    "\r\n"
	    "%s", code, reason, strlen(body),
	    c->close_after || draining ? "Connection: close\r\n" : "", body);
	if (len < 0) {
		c->out = NULL;
		c->close_after = 1;
		return;
	}
	c->outlen = (size_t)len;
	c->outoff = 0;
}

/*
 * Answers the request head at the start of c->in, len bytes with its
 * blank line, and drops it from the buffer (a pipelined request may
 * follow it).
 */
/* 1 if the header line at p (len bytes) is "Connection:" naming word. */
static int
connection_says(const char *p, size_t len, const char *word)
{
	char	 value[128];

	if (len < 11 || strncasecmp(p, "Connection:", 11) != 0)
		return 0;
	snprintf(value, sizeof(value), "%.*s", (int)(len - 11), p + 11);
	return strcasestr(value, word) != NULL;
}

/*
 * Answers the request head at the start of c->in, len bytes with its
 * blank line, and drops it from the buffer (a pipelined request may
 * follow it).
 */
static void
handle_request(struct conn *c, size_t len)
{
	char	 method[16], target[256], version[16], body[256];
	const char *p, *end = c->in + len;
	size_t	 linelen;

	if (sscanf(c->in, "%15s %255s %15s", method, target, version) != 3) {
		c->close_after = 1;
		respond(c, 400, "Bad Request", "bad request\n");
		goto out;
	}
	/* HTTP/1.0 closes unless asked not to; 1.1 keeps alive unless asked. */
	c->close_after = strcmp(version, "HTTP/1.1") != 0;
	for (p = c->in; p < end; p += linelen + 2) {
		linelen = strcspn(p, "\r");
		if (connection_says(p, linelen, "close"))
			c->close_after = 1;
		else if (connection_says(p, linelen, "keep-alive"))
			c->close_after = 0;
		if (linelen == 0)
			break;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		respond(c, 405, "Method Not Allowed", "GET only\n");
	else if (strcmp(target, "/health") == 0)
		respond(c, 200, "OK", "ok\n");
	else if (strcmp(target, "/") == 0) {
		snprintf(body, sizeof(body), "pid=%ld id=%s gen=%s "
		    "listener=%s\n", (long)getpid(), worker_id, generation,
		    c->l->name);
		respond(c, 200, "OK", body);
	} else
		respond(c, 404, "Not Found", "not found\n");
out:
	memmove(c->in, c->in + len, c->inlen - len + 1);
	c->inlen -= len;
}

/*
 * Answers the complete request heads buffered, one at a time: the next
 * waits until the previous response is written.  Returns -1 if c is gone.
 */
static int
conn_process(struct conn *c)
{
	char	*end;
	int	 r;

	/* Request heads end with an empty line; bodies are ignored. */
	while ((end = strstr(c->in, "\r\n\r\n")) != NULL) {
		handle_request(c, (size_t)(end - c->in) + 4);
		if ((r = conn_flush(c)) <= 0)
			return r;
	}
	return 0;
}

/* Reads what the client sent and answers every complete request head. */
static void
conn_read(struct conn *c)
{
	ssize_t	 n;

	for (;;) {
		if (c->inlen == sizeof(c->in) - 1) {
			c->close_after = 1;
			respond(c, 431, "Request Header Fields Too Large",
			    "request head too large\n");
			conn_flush(c);
			return;
		}
		n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen,
		    0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);	/* the client is done, or gone */
			return;
		}
		c->inlen += (size_t)n;
		c->in[c->inlen] = '\0';
		c->active = now();
		if (conn_process(c) < 0 || c->out != NULL)
			return;		/* gone, or waiting for EPOLLOUT */
	}
}

static void
accept_all(struct listener *l)
{
	struct conn *c;
	int	 fd;

	while (!draining) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/*
			 * EAGAIN: another worker was quicker, or all is taken.
			 * Anything else (EMFILE...) leaves the connection in
			 * the backlog for a moment, for this or another worker.
			 */
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ECONNABORTED && errno != EINTR)
				fprintf(stderr, "c_server: accept: %s\n",
				    strerror(errno));
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			return;
		}
		c->kind = K_CONN;
		c->fd = fd;
		c->l = l;
		c->active = now();
		if (watch(c, fd, EPOLLIN, EPOLL_CTL_ADD) < 0) {
			close(fd);
			free(c);
			continue;
		}
		LIST_INSERT_HEAD(&conns, c, entry);
		nconns++;
	}
}

/*
 * Stops accepting: the listeners leave the epoll set (our copies close;
 * wpool and the other workers keep theirs), idle connections close, and
 * the loop ends when the last busy one is done.
 */
static void
drain(void)
{
	struct conn *c, *next;
	int	 i;

	if (draining)
		return;
	draining = 1;
	notify("STOPPING=1");
	for (i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	nlisteners = 0;
	for (c = LIST_FIRST(&conns); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		if (c->out == NULL && c->inlen == 0)
			conn_close(c);
	}
}

/*
 * Every tick (a second, or half the watchdog interval if that is shorter):
 * idle connections go, the watchdog gets its ping, the status is updated.
 */
static void
tick(int timerfd, int watchdog)
{
	struct conn *c, *next;
	uint64_t expirations;
	time_t	 t = now();

	if (read(timerfd, &expirations, sizeof(expirations)) < 0)
		return;
	for (c = LIST_FIRST(&conns); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		if (t - c->active >= IDLE_TIMEOUT_SEC)
			conn_close(c);
	}
	if (watchdog)
		notify("WATCHDOG=1");
	notify_status();
}

int
main(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct itimerspec its;
	struct signalfd_siginfo si;
	sigset_t mask;
	enum kind sigkind = K_SIGNAL, timerkind = K_TIMER;
	long long watchdog_usec;
	long long tick_usec = 1000000;
	time_t	 drain_deadline = 0;
	int	 sigfd, timerfd, i, n, timeout;

	if ((worker_id = getenv("WPOOL_WORKER_ID")) == NULL)
		worker_id = "-";
	if ((generation = getenv("WPOOL_GENERATION")) == NULL)
		generation = "-";
	watchdog_usec = parse_number(getenv("WATCHDOG_USEC"));
	if (parse_number(getenv("WATCHDOG_PID")) != (long long)getpid())
		watchdog_usec = -1;

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("c_server: epoll_create1");
		return 1;
	}
	if (open_listeners() <= 0) {
		fprintf(stderr, "c_server: no listening stream socket at fd "
		    "%d; run me as: wpool -b 127.0.0.1:8080 -- "
		    "./examples/c_server\n", LISTEN_FDS_START);
		return 1;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (sigfd < 0 || timerfd < 0) {
		perror("c_server: signalfd/timerfd");
		return 1;
	}
	memset(&its, 0, sizeof(its));
	/* Pinging at half the interval leaves room for a late tick. */
	if (watchdog_usec > 0 && watchdog_usec / 2 < tick_usec)
		tick_usec = watchdog_usec / 2 > 1000 ? watchdog_usec / 2 : 1000;
	its.it_interval.tv_sec = (time_t)(tick_usec / 1000000);
	its.it_interval.tv_nsec = (long)(tick_usec % 1000000) * 1000;
	its.it_value = its.it_interval;
	if (timerfd_settime(timerfd, 0, &its, NULL) < 0 ||
	    watch(&sigkind, sigfd, EPOLLIN, EPOLL_CTL_ADD) < 0 ||
	    watch(&timerkind, timerfd, EPOLLIN, EPOLL_CTL_ADD) < 0) {
		perror("c_server: epoll_ctl");
		return 1;
	}

	notify("READY=1");
	notify_status();
	if (watchdog_usec > 0)
		notify("WATCHDOG=1");

	while (!draining || nconns > 0) {
		timeout = -1;
		if (draining) {
			if (now() >= drain_deadline)
				break;	/* a client that never finishes */
			timeout = 1000;
		}
		n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			perror("c_server: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			enum kind *k = events[i].data.ptr;

			switch (*k) {
			case K_LISTENER:
				accept_all((struct listener *)(void *)k);
				break;
			case K_CONN: {
				struct conn *c = (struct conn *)(void *)k;

				if (c->out != NULL) {
					if (conn_flush(c) > 0)
						conn_process(c);
				} else
					conn_read(c);
				break;
			}
			case K_SIGNAL:
				while (read(sigfd, &si, sizeof(si)) ==
				    (ssize_t)sizeof(si))
					;
				drain();
				drain_deadline = now() + DRAIN_TIMEOUT_SEC;
				/*
				 * The events left in this batch may be for
				 * connections or listeners drain() closed.
				 */
				i = n;
				break;
			case K_TIMER:
				tick(timerfd, watchdog_usec > 0);
				/* Same: tick() may have closed connections. */
				i = n;
				break;
			}
		}
	}
	return 0;
}
