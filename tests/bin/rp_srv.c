/*
 * rp_srv: a small HTTP server for wpool's reuseport tests and benchmarks
 * that stops the way a real server does, unlike tests/bin/testsrv (which
 * exits at once on SIGTERM, dropping what it accepted): on SIGTERM it stops
 * accepting, answers every connection it already accepted, and exits 0.
 * What it leaves in the listener's queue is for whoever else listens on
 * that socket (in reuseport mode: the slot's next worker).
 *
 * Listeners: fds 3 .. 3+LISTEN_FDS-1 (fd 3 if LISTEN_FDS is unset).
 * Every request gets `200` with the body
 * `pid=PID id=WPOOL_WORKER_ID gen=WPOOL_GENERATION\n` and
 * `Connection: close`; the connection is then closed.
 *
 * Modes:
 *   (default)   epoll, nonblocking accept of everything queued
 *   --blocking  a plain blocking accept() loop on fd 3, one connection at a
 *               time (a thread-per-process server such as a naive prefork)
 * Flags: --delay-ms N  answer each request N ms late (epoll mode only;
 *                      keeps connections in flight for the stop tests)
 *        --quiet-exit  no "rp_srv: draining" line on stderr
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS	16
#define REQ_MAX		8192

enum ev_kind { EV_LISTEN, EV_CONN, EV_SIGNAL, EV_TIMER };

struct conn;

/* Every epoll event points at one of these. */
struct ev {
	enum ev_kind kind;
	int	 fd;
	struct conn *conn;
};

struct conn {
	struct ev ev;		/* EV_CONN */
	struct ev tev;		/* EV_TIMER, with --delay-ms */
	int	 fd;
	int	 tfd;
	size_t	 len;
	size_t	 off;
	bool	 answering;
	char	 req[REQ_MAX];
	char	 resp[256];
	size_t	 resp_len;
};

static int listeners[MAX_LISTENERS];
static struct ev lev[MAX_LISTENERS];
static int nlisteners;
static int epfd;
static int nconns;
static bool draining;
static long delay_ms;
static bool quiet_exit;
static char body[128];
static size_t body_len;

static void
die(const char *what)
{
	fprintf(stderr, "rp_srv: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
find_listeners(void)
{
	const char *s = getenv("LISTEN_FDS");
	int n = s != NULL ? atoi(s) : 1;

	if (n < 1 || n > MAX_LISTENERS) {
		fprintf(stderr, "rp_srv: LISTEN_FDS=%s: expected 1 to %d\n",
		    s, MAX_LISTENERS);
		exit(1);
	}
	for (int i = 0; i < n; i++)
		listeners[i] = 3 + i;
	nlisteners = n;
}

static void
make_body(void)
{
	const char *id = getenv("WPOOL_WORKER_ID");
	const char *gen = getenv("WPOOL_GENERATION");
	int n;

	n = snprintf(body, sizeof(body), "pid=%d id=%s gen=%s\n",
	    (int)getpid(), id != NULL ? id : "-", gen != NULL ? gen : "-");
	body_len = (size_t)n;
}

static void
ep_ctl(int op, int fd, uint32_t events, void *ptr)
{
	struct epoll_event e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.ptr = ptr;
	if (epoll_ctl(epfd, op, fd, &e) < 0 && op != EPOLL_CTL_DEL)
		die("epoll_ctl");
}

static void
conn_close(struct conn *c)
{
	ep_ctl(EPOLL_CTL_DEL, c->fd, 0, NULL);
	close(c->fd);
	if (c->tfd >= 0) {
		ep_ctl(EPOLL_CTL_DEL, c->tfd, 0, NULL);
		close(c->tfd);
	}
	free(c);
	nconns--;
}

static void
conn_flush(struct conn *c)
{
	while (c->off < c->resp_len) {
		ssize_t n = send(c->fd, c->resp + c->off, c->resp_len - c->off,
		    MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN) {
				ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLOUT, &c->ev);
				return;
			}
			break;
		}
		c->off += (size_t)n;
	}
	conn_close(c);
}

static void
conn_answer(struct conn *c)
{
	c->resp_len = (size_t)snprintf(c->resp, sizeof(c->resp),
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    body_len, body);
	c->off = 0;
	conn_flush(c);
}

static void
conn_readable(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->len >= REQ_MAX - 1) {
			conn_close(c);
			return;
		}
		n = recv(c->fd, c->req + c->len, REQ_MAX - 1 - c->len, 0);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			conn_close(c);
			return;
		}
		if (n == 0) {
			conn_close(c);
			return;
		}
		c->len += (size_t)n;
		c->req[c->len] = '\0';
		if (strstr(c->req, "\r\n\r\n") != NULL)
			break;
	}
	c->answering = true;
	if (delay_ms > 0) {
		struct itimerspec its;

		memset(&its, 0, sizeof(its));
		its.it_value.tv_sec = delay_ms / 1000;
		its.it_value.tv_nsec = (delay_ms % 1000) * 1000000L;
		if ((c->tfd = timerfd_create(CLOCK_MONOTONIC,
		    TFD_CLOEXEC | TFD_NONBLOCK)) < 0)
			die("timerfd_create");
		timerfd_settime(c->tfd, 0, &its, NULL);
		c->tev.kind = EV_TIMER;
		c->tev.fd = c->tfd;
		c->tev.conn = c;
		/* Until the timer fires, the connection is not watched. */
		ep_ctl(EPOLL_CTL_DEL, c->fd, 0, NULL);
		ep_ctl(EPOLL_CTL_ADD, c->tfd, EPOLLIN, &c->tev);
		return;
	}
	conn_answer(c);
}

static void
accept_all(int lfd)
{
	for (;;) {
		struct conn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			die("calloc");
		c->ev.kind = EV_CONN;
		c->ev.fd = fd;
		c->ev.conn = c;
		c->fd = fd;
		c->tfd = -1;
		nconns++;
		ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, &c->ev);
		/* The request is often there already: answer it now. */
		conn_readable(c);
	}
}

static void
start_draining(void)
{
	if (draining)
		return;
	draining = true;
	if (!quiet_exit)
		fprintf(stderr, "rp_srv: pid %d: SIGTERM: answering %d "
		    "connection(s), then exiting\n", (int)getpid(), nconns);
	for (int i = 0; i < nlisteners; i++) {
		ep_ctl(EPOLL_CTL_DEL, listeners[i], 0, NULL);
		close(listeners[i]);
	}
}

static void
run_epoll(void)
{
	struct epoll_event events[64];
	struct ev sev;
	sigset_t set;

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	for (int i = 0; i < nlisteners; i++) {
		int fl = fcntl(listeners[i], F_GETFL);

		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(listeners[i], F_SETFL, fl | O_NONBLOCK);
		lev[i].kind = EV_LISTEN;
		lev[i].fd = listeners[i];
		ep_ctl(EPOLL_CTL_ADD, listeners[i], EPOLLIN, &lev[i]);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sev.kind = EV_SIGNAL;
	if ((sev.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		die("signalfd");
	sev.conn = NULL;
	ep_ctl(EPOLL_CTL_ADD, sev.fd, EPOLLIN, &sev);
	for (;;) {
		int n;

		if (draining && nconns == 0)
			exit(0);
		n = epoll_wait(epfd, events, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		/* Connections first, so that a stop never drops one. */
		for (int i = 0; i < n; i++) {
			struct ev *e = events[i].data.ptr;

			if (e->kind == EV_LISTEN && !draining)
				accept_all(e->fd);
		}
		for (int i = 0; i < n; i++) {
			struct ev *e = events[i].data.ptr;
			struct signalfd_siginfo si;

			switch (e->kind) {
			case EV_LISTEN:
				break;
			case EV_CONN:
				if (e->conn->answering)
					conn_flush(e->conn);
				else
					conn_readable(e->conn);
				break;
			case EV_TIMER:
				ep_ctl(EPOLL_CTL_DEL, e->conn->tfd, 0, NULL);
				close(e->conn->tfd);
				e->conn->tfd = -1;
				ep_ctl(EPOLL_CTL_ADD, e->conn->fd, EPOLLIN,
				    &e->conn->ev);
				conn_answer(e->conn);
				break;
			case EV_SIGNAL:
				while (read(sev.fd, &si, sizeof(si)) ==
				    (ssize_t)sizeof(si))
					start_draining();
				break;
			}
		}
	}
}

static volatile sig_atomic_t stop_flag;

static void
on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
run_blocking(void)
{
	struct sigaction sa;
	char resp[256];
	int fl = fcntl(listeners[0], F_GETFL), resp_len;

	if (nlisteners != 1) {
		fprintf(stderr, "rp_srv: --blocking: one listener only\n");
		exit(1);
	}
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(listeners[0], F_SETFL, fl & ~O_NONBLOCK);
	/* No SA_RESTART: TERM interrupts accept(). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	resp_len = snprintf(resp, sizeof(resp),
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    body_len, body);
	while (!stop_flag) {
		struct timeval tv = { .tv_sec = 5 };
		char req[REQ_MAX];
		size_t len = 0;
		int fd = accept4(listeners[0], NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EAGAIN)
				continue;
			die("accept");
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		for (;;) {
			ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len,
			    0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			req[len] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL) {
				if (send(fd, resp, (size_t)resp_len,
				    MSG_NOSIGNAL) < 0)
					break;
				break;
			}
			if (len >= sizeof(req) - 1)
				break;
		}
		close(fd);
	}
	exit(0);
}

int
main(int argc, char **argv)
{
	bool blocking = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--blocking") == 0)
			blocking = true;
		else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
			delay_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--quiet-exit") == 0)
			quiet_exit = true;
		else {
			fputs("usage: rp_srv [--blocking] [--delay-ms N] "
			    "[--quiet-exit]\n", stderr);
			return 2;
		}
	}
	setvbuf(stderr, NULL, _IONBF, 0);
	find_listeners();
	make_body();
	if (blocking)
		run_blocking();
	run_epoll();
	return 0;
}
