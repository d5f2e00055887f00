/*
 * testsrv: the worker that wpool's tests supervise.  A small epoll HTTP/1.1
 * server (keep-alive, pipelining) on every inherited listener, whose answers
 * let a test see what wpool gave it: its pid and slot, its environment, its
 * open fds, its listeners.  Flags make it misbehave on purpose (crash, exit,
 * ignore TERM, leave orphans) or act as a plain pre-fork baseline for
 * benchmarks.  Owns nothing but itself; it never touches wpool's files.
 *
 * Routes: /  /env  /fds  /listeners  /conn  /id  /pid  /sleep?ms=N
 * /exit?code=N
 * (UDP listeners answer each datagram "PATH" with that route's body.)
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS	64
#define MAX_FDS		256
#define MAX_REQUEST	(64 * 1024)

static struct {
	bool	 ignore_term;
	bool	 exit_now;
	int	 exit_code;
	double	 exit_after;
	int	 exit_after_code;
	bool	 crash;
	int	 orphans;
	double	 orphan_life;
	bool	 notify;
	double	 delay_start;
	const char *signal_log;
	int	 prefork;
	int	 port;
	long	 alloc_mb;
	bool	 blocking;
	bool	 graceful;
	bool	 inetd;
} opt = { .exit_after = -1, .orphan_life = 0.3, .port = -1 };

/* The fds this process was started with, taken before it opened any. */
static struct {
	int	 fd;
	char	 target[PATH_MAX];
} startfds[MAX_FDS];
static int nstartfds;

/* The connection route() answers on, for /conn; -1 for datagrams. */
static int cur_conn_fd = -1;

static int listeners[MAX_LISTENERS];
static int nlisteners;
static volatile char *allocated;

struct buf {
	char	*p;
	size_t	 len, cap;
};

enum ev_kind { EV_LISTEN, EV_DGRAM, EV_CONN, EV_SLEEP, EV_SIGNAL, EV_EXIT };

struct conn;
struct ev {
	enum ev_kind kind;
	int	 fd;
	struct conn *conn;
};

struct conn {
	struct ev ev;
	struct ev sleep_ev;
	char	 in[MAX_REQUEST];
	size_t	 inlen;
	struct buf out;
	size_t	 outoff;
	bool	 sleeping;
	bool	 keep_alive_after_sleep;
	long	 slept_ms;
	bool	 close_after;
	bool	 eof;
	bool	 want_out;
	bool	 dead;		/* closed; freed after this epoll batch */
	int	 exit_code;	/* -1: none; else exit once flushed */
	struct conn *next_dead;
};

static struct conn *graveyard;

static int epfd = -1;

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("testsrv: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (errno)
		fprintf(stderr, ": %s", strerror(errno));
	fputc('\n', stderr);
	exit(70);
}

static void
usage(void)
{
	fputs("usage: testsrv [--ignore-term] [--exit CODE] "
	    "[--exit-after SEC CODE] [--crash]\n"
	    "               [--orphans N [--orphan-life SEC]] [--notify] "
	    "[--delay-start SEC]\n"
	    "               [--signal-log FILE] [--alloc MB] [--blocking "
	    "[--graceful]] [--inetd]\n"
	    "               [--prefork N --port P]\n"
	    "--signal-log logs USR1 USR2 WINCH HUP (kept running) and TERM "
	    "INT (then exits\nof them, unless --ignore-term); --blocking "
	    "answers one request per connection\n(--graceful: TERM lets it finish the one in hand, as gunicorn's sync worker);\n--inetd serves one request "
	    "on stdin/stdout.\n", stderr);
	exit(64);
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (b->len + n + 1 > cap)
			cap *= 2;
		if ((b->p = realloc(b->p, cap)) == NULL)
			die("realloc");
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	buf_add(b, tmp, (size_t)n);
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static double
parse_double(const char *s, const char *what)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end != '\0' || d < 0)
		die("%s: bad value '%s'", what, s);
	return d;
}

static long
parse_long(const char *s, const char *what)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0')
		die("%s: bad value '%s'", what, s);
	return l;
}

static void
sleep_seconds(double sec)
{
	struct timespec ts;

	ts.tv_sec = (time_t)sec;
	ts.tv_nsec = (long)((sec - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v ? v : dflt;
}

static void
snapshot_fds(void)
{
	DIR *d;
	struct dirent *de;
	char path[64];
	ssize_t n;

	if ((d = opendir("/proc/self/fd")) == NULL)
		die("opendir /proc/self/fd");
	while ((de = readdir(d)) != NULL && nstartfds < MAX_FDS) {
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, startfds[nstartfds].target,
		    sizeof(startfds[nstartfds].target) - 1);
		if (n < 0)
			continue;
		startfds[nstartfds].target[n] = '\0';
		startfds[nstartfds].fd = fd;
		nstartfds++;
	}
	closedir(d);
	/* readdir's order is the kernel's; tests want ascending fds. */
	for (int i = 1; i < nstartfds; i++)
		for (int j = i; j > 0 && startfds[j - 1].fd > startfds[j].fd;
		    j--) {
			int fd = startfds[j].fd;
			char tmp[PATH_MAX];

			memcpy(tmp, startfds[j].target, sizeof(tmp));
			startfds[j].fd = startfds[j - 1].fd;
			memcpy(startfds[j].target, startfds[j - 1].target,
			    sizeof(tmp));
			startfds[j - 1].fd = fd;
			memcpy(startfds[j - 1].target, tmp, sizeof(tmp));
		}
}

static void
format_sockname(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(out, len, "?");
		return;
	}
	switch (ss.ss_family) {
	case AF_INET: {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		if (sl <= offsetof(struct sockaddr_un, sun_path))
			snprintf(out, len, "unix:");
		else if (sun->sun_path[0] == '\0')
			snprintf(out, len, "unix:@%.*s",
			    (int)(sl - offsetof(struct sockaddr_un, sun_path)
			    - 1), sun->sun_path + 1);
		else
			snprintf(out, len, "unix:%s", sun->sun_path);
		break;
	}
	default:
		snprintf(out, len, "family-%d", ss.ss_family);
	}
}

/*
 * The body for one route; *status is the HTTP status, *sleep_ms and
 * *exit_code ask the caller to delay the answer or exit after sending it.
 */
static void
route(const char *target, struct buf *body, int *status, long *sleep_ms,
    int *exit_code)
{
	size_t plen = strcspn(target, "?");
	const char *query = target[plen] == '?' ? target + plen + 1 : "";

	*status = 200;
	*sleep_ms = -1;
	*exit_code = -1;
	if (plen == 1 && target[0] == '/') {
		buf_printf(body, "pid=%d id=%s gen=%s\n", (int)getpid(),
		    env_or("WPOOL_WORKER_ID", "-"),
		    env_or("WPOOL_GENERATION", "-"));
	} else if (plen == 4 && strncmp(target, "/env", 4) == 0) {
		for (char **e = environ; *e; e++)
			buf_printf(body, "%s\n", *e);
	} else if (plen == 4 && strncmp(target, "/fds", 4) == 0) {
		for (int i = 0; i < nstartfds; i++)
			buf_printf(body, "%d %s\n", startfds[i].fd,
			    startfds[i].target);
	} else if (plen == 10 && strncmp(target, "/listeners", 10) == 0) {
		for (int i = 0; i < nlisteners; i++) {
			char addr[160];
			int type = 0;
			socklen_t sl = sizeof(type);

			getsockopt(listeners[i], SOL_SOCKET, SO_TYPE, &type,
			    &sl);
			format_sockname(listeners[i], addr, sizeof(addr));
			buf_printf(body, "%d %s %s\n", listeners[i],
			    type == SOCK_DGRAM ? "dgram" : "stream", addr);
		}
	} else if (plen == 5 && strncmp(target, "/conn", 5) == 0) {
		int nodelay = -1, rcvbuf = -1, sndbuf = -1;
		socklen_t sl = sizeof(int);
		char addr[160] = "-";

		if (cur_conn_fd >= 0) {
			getsockopt(cur_conn_fd, IPPROTO_TCP, TCP_NODELAY,
			    &nodelay, &sl);
			sl = sizeof(int);
			getsockopt(cur_conn_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			    &sl);
			sl = sizeof(int);
			getsockopt(cur_conn_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
			    &sl);
			format_sockname(cur_conn_fd, addr, sizeof(addr));
		}
		buf_printf(body, "nodelay=%d rcvbuf=%d sndbuf=%d local=%s\n",
		    nodelay, rcvbuf, sndbuf, addr);
	} else if (plen == 3 && strncmp(target, "/id", 3) == 0) {
		buf_printf(body, "%s\n", env_or("WPOOL_WORKER_ID", "-"));
	} else if (plen == 4 && strncmp(target, "/pid", 4) == 0) {
		buf_printf(body, "%d\n", (int)getpid());
	} else if (plen == 6 && strncmp(target, "/sleep", 6) == 0) {
		long ms = 0;

		if (strncmp(query, "ms=", 3) == 0)
			ms = strtol(query + 3, NULL, 10);
		if (ms < 0)
			ms = 0;
		*sleep_ms = ms;
		buf_printf(body, "slept %ld ms pid=%d\n", ms, (int)getpid());
	} else if (plen == 5 && strncmp(target, "/exit", 5) == 0) {
		*exit_code = 0;
		if (strncmp(query, "code=", 5) == 0)
			*exit_code = (int)strtol(query + 5, NULL, 10) & 0xff;
		buf_printf(body, "exiting %d pid=%d\n", *exit_code,
		    (int)getpid());
	} else {
		*status = 404;
		buf_printf(body, "not found\n");
	}
}

/*
 * Parses one request at the start of buf.  Returns its length (headers and
 * body), 0 when it is still incomplete, -1 when it is malformed.
 */
static ssize_t
parse_request(const char *buf, size_t len, char *target, size_t tlen,
    bool *keep_alive)
{
	const char *end, *eol, *p, *sp1, *sp2;
	size_t hlen, clen = 0;
	bool http10;

	if ((end = memmem(buf, len, "\r\n\r\n", 4)) != NULL)
		hlen = (size_t)(end - buf) + 4;
	else if ((end = memmem(buf, len, "\n\n", 2)) != NULL)
		hlen = (size_t)(end - buf) + 2;
	else
		return len >= MAX_REQUEST ? -1 : 0;

	eol = memchr(buf, '\n', hlen);
	sp1 = memchr(buf, ' ', (size_t)(eol - buf));
	if (sp1 == NULL)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (sp2 == NULL)
		sp2 = eol;
	if ((size_t)(sp2 - sp1 - 1) >= tlen)
		return -1;
	memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	target[sp2 - sp1 - 1] = '\0';
	http10 = sp2 != eol && strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
	*keep_alive = !http10;

	for (p = eol + 1; p < buf + hlen; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(buf + hlen - p))) == NULL)
			break;
		if (strncasecmp(p, "Connection:", 11) == 0) {
			const char *v = p + 11;

			while (*v == ' ' || *v == '\t')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				*keep_alive = false;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				*keep_alive = true;
		} else if (strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtoul(p + 15, NULL, 10);
	}
	if (clen > MAX_REQUEST)
		return -1;
	if (hlen + clen > len)
		return 0;
	return (ssize_t)(hlen + clen);
}

static void
http_response(struct buf *out, int status, const struct buf *body,
    bool keep_alive)
{
	buf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: %s\r\n\r\n", status,
	    status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request",
	    body->len, keep_alive ? "keep-alive" : "close");
	if (body->len)
		buf_add(out, body->p, body->len);
}

static void
ep_ctl(int op, int fd, uint32_t events, struct ev *ev)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	if (epoll_ctl(epfd, op, fd, &e) == -1)
		die("epoll_ctl(%d)", fd);
}

/*
 * Closes now, frees later: an event for this conn may still be waiting in
 * the batch epoll_wait returned.
 */
static void
conn_close(struct conn *c)
{
	close(c->ev.fd);
	if (c->sleep_ev.fd >= 0)
		close(c->sleep_ev.fd);
	buf_free(&c->out);
	c->dead = true;
	c->next_dead = graveyard;
	graveyard = c;
}

static void
bury_conns(void)
{
	while (graveyard != NULL) {
		struct conn *c = graveyard;

		graveyard = c->next_dead;
		free(c);
	}
}

static uint32_t
conn_events(const struct conn *c, bool out)
{
	/* After EOF, level-triggered EPOLLIN would fire forever. */
	return (c->eof ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0);
}

/* Writes what is pending; returns false once the connection is gone. */
static bool
conn_flush(struct conn *c)
{
	while (c->outoff < c->out.len) {
		ssize_t n = write(c->ev.fd, c->out.p + c->outoff,
		    c->out.len - c->outoff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (!c->want_out) {
					ep_ctl(EPOLL_CTL_MOD, c->ev.fd,
					    conn_events(c, true), &c->ev);
					c->want_out = true;
				}
				return true;
			}
			conn_close(c);
			return false;
		}
		c->outoff += (size_t)n;
	}
	c->out.len = c->outoff = 0;
	if (c->want_out) {
		ep_ctl(EPOLL_CTL_MOD, c->ev.fd, conn_events(c, false), &c->ev);
		c->want_out = false;
	}
	if (c->exit_code >= 0)
		exit(c->exit_code);
	if (c->close_after || (c->eof && !c->sleeping)) {
		conn_close(c);
		return false;
	}
	return true;
}

static void
conn_process(struct conn *c)
{
	while (!c->sleeping && !c->close_after && c->exit_code < 0) {
		char target[2048];
		struct buf body = { 0 };
		bool keep_alive;
		ssize_t n;
		int status, exit_code;
		long sleep_ms;

		n = parse_request(c->in, c->inlen, target, sizeof(target),
		    &keep_alive);
		if (n == 0)
			break;
		if (n < 0) {
			buf_printf(&body, "bad request\n");
			http_response(&c->out, 400, &body, false);
			buf_free(&body);
			c->close_after = true;
			break;
		}
		memmove(c->in, c->in + n, c->inlen - (size_t)n);
		c->inlen -= (size_t)n;
		cur_conn_fd = c->ev.fd;
		route(target, &body, &status, &sleep_ms, &exit_code);
		cur_conn_fd = -1;
		if (sleep_ms > 0) {
			struct itimerspec its = { 0 };

			its.it_value.tv_sec = sleep_ms / 1000;
			its.it_value.tv_nsec = (sleep_ms % 1000) * 1000000L;
			if (c->sleep_ev.fd < 0) {
				c->sleep_ev.fd = timerfd_create(CLOCK_MONOTONIC,
				    TFD_NONBLOCK | TFD_CLOEXEC);
				if (c->sleep_ev.fd < 0)
					die("timerfd_create");
				ep_ctl(EPOLL_CTL_ADD, c->sleep_ev.fd, EPOLLIN,
				    &c->sleep_ev);
			}
			timerfd_settime(c->sleep_ev.fd, 0, &its, NULL);
			c->sleeping = true;
			c->keep_alive_after_sleep = keep_alive;
			c->slept_ms = sleep_ms;
			buf_free(&body);
			break;
		}
		http_response(&c->out, status, &body, keep_alive);
		buf_free(&body);
		if (!keep_alive)
			c->close_after = true;
		c->exit_code = exit_code;
	}
}

static void
conn_wake(struct conn *c)
{
	struct buf body = { 0 };
	uint64_t ticks;

	if (read(c->sleep_ev.fd, &ticks, sizeof(ticks)) < 0)
		return;
	c->sleeping = false;
	buf_printf(&body, "slept %ld ms pid=%d\n", c->slept_ms, (int)getpid());
	http_response(&c->out, 200, &body, c->keep_alive_after_sleep);
	buf_free(&body);
	if (!c->keep_alive_after_sleep)
		c->close_after = true;
	conn_process(c);
	conn_flush(c);
}

static void
conn_readable(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->inlen == sizeof(c->in)) {
			/*
			 * parse_request rejects a full buffer; while a /sleep
			 * holds it, a client that keeps sending is dropped
			 * rather than left to spin the level-triggered loop.
			 */
			if (c->sleeping) {
				conn_close(c);
				return;
			}
			break;
		}
		n = read(c->ev.fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (n > 0) {
			c->inlen += (size_t)n;
			continue;
		}
		if (n == 0) {
			c->eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			break;
		conn_close(c);
		return;
	}
	conn_process(c);
	if (c->eof && !c->sleeping && c->out.len == 0) {
		conn_close(c);
		return;
	}
	if (c->eof)
		ep_ctl(EPOLL_CTL_MOD, c->ev.fd, conn_events(c, c->want_out),
		    &c->ev);
	conn_flush(c);
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
			return;	/* EAGAIN: a sibling won the race */
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			die("calloc");
		c->ev.kind = EV_CONN;
		c->ev.fd = fd;
		c->ev.conn = c;
		c->sleep_ev.kind = EV_SLEEP;
		c->sleep_ev.fd = -1;
		c->sleep_ev.conn = c;
		c->exit_code = -1;
		ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, &c->ev);
	}
}

static void
dgram_readable(int fd)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char in[2048], target[2048];
		struct buf body = { 0 };
		ssize_t n;
		int status, exit_code;
		long sleep_ms;

		n = recvfrom(fd, in, sizeof(in) - 1, MSG_DONTWAIT,
		    (struct sockaddr *)&ss, &sl);
		if (n < 0)
			return;
		in[n] = '\0';
		/* "GET /x ..." or "/x"; anything else means "/". */
		{
			const char *p = in;
			size_t tl;

			if (strncmp(p, "GET ", 4) == 0)
				p += 4;
			tl = strcspn(p, " \r\n");
			if (*p != '/' || tl == 0)
				p = "/", tl = 1;
			memcpy(target, p, tl);
			target[tl] = '\0';
		}
		route(target, &body, &status, &sleep_ms, &exit_code);
		sendto(fd, body.p ? body.p : "", body.len, MSG_DONTWAIT,
		    (struct sockaddr *)&ss, sl);
		buf_free(&body);
		if (exit_code >= 0)
			exit(exit_code);
	}
}

static void
log_signal(int sig)
{
	int fd;
	char line[64];
	int n;

	if (opt.signal_log == NULL)
		return;
	n = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(),
	    sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	fd = open(opt.signal_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0)
		perror("testsrv: signal log");
	close(fd);
}

static void
die_of(int sig)
{
	sigset_t set;

	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	_exit(128 + sig);
}

/* Logs each signal; TERM (unless ignored) and INT end the process. */
static void
handle_signal(int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;

		log_signal(sig);
		if (sig == SIGTERM && opt.ignore_term)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			die_of(sig);
	}
}

static int
make_signalfd(void)
{
	static const int sigs[] = { SIGUSR1, SIGUSR2, SIGWINCH, SIGHUP,
	    SIGTERM, SIGINT };
	sigset_t set;
	int fd;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (sigs[i] == SIGTERM && opt.ignore_term &&
		    opt.signal_log == NULL)
			continue;	/* stays SIG_IGN */
		sigaddset(&set, sigs[i]);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		die("sigprocmask");
	if ((fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		die("signalfd");
	return fd;
}

static void
find_listeners(void)
{
	const char *s = getenv("LISTEN_FDS");
	int n = 1;

	if (s != NULL)
		n = atoi(s);
	for (int fd = 3; fd < 3 + n && nlisteners < MAX_LISTENERS; fd++) {
		int type = 0, acc = 0;
		socklen_t sl = sizeof(type);

		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) == -1) {
			if (s != NULL)
				fprintf(stderr, "testsrv: fd %d is not a "
				    "socket\n", fd);
			continue;
		}
		sl = sizeof(acc);
		if (type == SOCK_STREAM &&
		    (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) == -1
		    || !acc)) {
			fprintf(stderr, "testsrv: fd %d is not listening\n",
			    fd);
			continue;
		}
		if (type != SOCK_STREAM && type != SOCK_DGRAM) {
			fprintf(stderr, "testsrv: fd %d: socket type %d "
			    "ignored\n", fd, type);
			continue;
		}
		listeners[nlisteners++] = fd;
	}
}

static void
send_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t sl;
	int fd;

	if (path == NULL || *path == '\0') {
		fprintf(stderr, "testsrv: --notify: NOTIFY_SOCKET is not set\n");
		return;
	}
	if (strlen(path) >= sizeof(sun.sun_path))
		return;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sun, sl) == -1)
		perror("testsrv: notify");
	close(fd);
}

static void
make_orphans(void)
{
	pid_t pids[256];
	int n = opt.orphans > 256 ? 256 : opt.orphans;

	for (int i = 0; i < n; i++) {
		int p[2];
		pid_t child;

		if (pipe2(p, O_CLOEXEC) == -1)
			die("pipe");
		if ((child = fork()) == -1)
			die("fork");
		if (child == 0) {
			pid_t gc = fork();

			if (gc == 0) {
				int null = open("/dev/null", O_RDWR);

				/*
				 * Hold no listener and no pipe (a test reading
				 * our stdout must not wait for the orphans).
				 */
				for (int fd = 0; fd < 3 && null >= 0; fd++)
					dup2(null, fd);
				for (int fd = 3; fd < 1024; fd++)
					close(fd);
				sleep_seconds(opt.orphan_life);
				_exit(0);
			}
			if (write(p[1], &gc, sizeof(gc)) < 0)
				_exit(1);
			_exit(0);
		}
		close(p[1]);
		if (read(p[0], &pids[i], sizeof(pids[i])) != sizeof(pids[i]))
			die("orphan pid");
		close(p[0]);
		while (waitpid(child, NULL, 0) == -1 && errno == EINTR)
			;
	}
	printf("orphans:");
	for (int i = 0; i < n; i++)
		printf(" %d", (int)pids[i]);
	printf("\n");
	fflush(stdout);
}

static void
do_alloc(void)
{
	size_t len = (size_t)opt.alloc_mb << 20;
	long page = sysconf(_SC_PAGESIZE);

	if ((allocated = malloc(len)) == NULL)
		die("malloc %ld MB", opt.alloc_mb);
	for (size_t off = 0; off < len; off += (size_t)page)
		allocated[off] = 1;
}

/* Serves one connection on 0/1 and returns: inetd and --blocking. */
static void
serve_blocking(int in, int out)
{
	char req[MAX_REQUEST], target[2048];
	size_t len = 0;
	bool keep_alive;
	ssize_t n, r;
	struct buf body = { 0 }, resp = { 0 };
	int status, exit_code;
	long sleep_ms;

	for (;;) {
		n = parse_request(req, len, target, sizeof(target),
		    &keep_alive);
		if (n != 0)
			break;
		r = read(in, req + len, sizeof(req) - len);
		if (r <= 0)
			return;
		len += (size_t)r;
	}
	if (n < 0) {
		buf_printf(&body, "bad request\n");
		status = 400;
		exit_code = -1;
	} else {
		cur_conn_fd = out;
		route(target, &body, &status, &sleep_ms, &exit_code);
		cur_conn_fd = -1;
		if (sleep_ms > 0)
			sleep_seconds((double)sleep_ms / 1000.0);
	}
	/* One request per connection: see --blocking in usage. */
	http_response(&resp, status, &body, false);
	for (size_t off = 0; off < resp.len; off += (size_t)r) {
		r = write(out, resp.p + off, resp.len - off);
		if (r <= 0)
			break;
	}
	buf_free(&body);
	buf_free(&resp);
	if (exit_code >= 0)
		exit(exit_code);
}

/* --graceful: TERM seen; the connection in hand is answered first. */
static volatile sig_atomic_t term_seen;

static void
on_graceful_term(int sig)
{
	(void)sig;
	term_seen = 1;
}

static void
run_blocking(void)
{
	struct pollfd pfd[MAX_LISTENERS];
	sigset_t wait_mask, term;

	/* TERM is held while a connection is served, taken while waiting. */
	sigprocmask(SIG_SETMASK, NULL, &wait_mask);
	if (opt.graceful) {
		struct sigaction sa = { .sa_handler = on_graceful_term };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, NULL);
		sigdelset(&wait_mask, SIGTERM);
	}

	for (int i = 0; i < nlisteners; i++) {
		pfd[i].fd = listeners[i];
		pfd[i].events = POLLIN;
	}
	for (;;) {
		if (term_seen)
			exit(0);
		if (ppoll(pfd, (nfds_t)nlisteners, NULL, &wait_mask) == -1) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (opt.graceful) {
			sigset_t pending;

			/* Ready fds and a TERM at once: TERM wins. */
			sigpending(&pending);
			if (sigismember(&pending, SIGTERM))
				exit(0);
		}
		for (int i = 0; i < nlisteners; i++) {
			struct timeval tv = { .tv_sec = 5 };
			int fd;

			if (!(pfd[i].revents & POLLIN))
				continue;
			/* A sibling may win the race: do not block here. */
			fd = accept4(pfd[i].fd, NULL, NULL, SOCK_NONBLOCK |
			    SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			fcntl(fd, F_SETFL, 0);
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			serve_blocking(fd, fd);
			close(fd);
		}
	}
}

static void
run_epoll(void)
{
	struct ev lev[MAX_LISTENERS], sev, xev;
	struct epoll_event events[64];

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	for (int i = 0; i < nlisteners; i++) {
		int type = 0;
		socklen_t sl = sizeof(type);
		int fl = fcntl(listeners[i], F_GETFL);

		/*
		 * Workers share one open file description: a sibling may win
		 * any accept, so it must never block.
		 */
		if (fl != -1 && !(fl & O_NONBLOCK))
			fcntl(listeners[i], F_SETFL, fl | O_NONBLOCK);
		getsockopt(listeners[i], SOL_SOCKET, SO_TYPE, &type, &sl);
		lev[i].kind = type == SOCK_DGRAM ? EV_DGRAM : EV_LISTEN;
		lev[i].fd = listeners[i];
		lev[i].conn = NULL;
		ep_ctl(EPOLL_CTL_ADD, listeners[i], EPOLLIN, &lev[i]);
	}
	sev.kind = EV_SIGNAL;
	sev.fd = make_signalfd();
	sev.conn = NULL;
	ep_ctl(EPOLL_CTL_ADD, sev.fd, EPOLLIN, &sev);
	xev.kind = EV_EXIT;
	xev.fd = -1;
	xev.conn = NULL;
	if (opt.exit_after >= 0) {
		struct itimerspec its = { 0 };

		xev.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
		if (xev.fd == -1)
			die("timerfd_create");
		its.it_value.tv_sec = (time_t)opt.exit_after;
		its.it_value.tv_nsec = (long)((opt.exit_after -
		    (double)its.it_value.tv_sec) * 1e9);
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
		timerfd_settime(xev.fd, 0, &its, NULL);
		ep_ctl(EPOLL_CTL_ADD, xev.fd, EPOLLIN, &xev);
	}
	if (opt.notify)
		send_notify("READY=1\nSTATUS=serving");

	for (;;) {
		int n = epoll_wait(epfd, events, 64, -1);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct ev *ev = events[i].data.ptr;

			if (ev->conn != NULL && ev->conn->dead)
				continue;
			switch (ev->kind) {
			case EV_LISTEN:
				accept_all(ev->fd);
				break;
			case EV_DGRAM:
				dgram_readable(ev->fd);
				break;
			case EV_CONN:
				/* Both directions gone: nothing can be sent. */
				if (events[i].events & (EPOLLHUP | EPOLLERR))
					conn_close(ev->conn);
				else if (events[i].events & EPOLLIN)
					conn_readable(ev->conn);
				else if (events[i].events & EPOLLOUT)
					conn_flush(ev->conn);
				break;
			case EV_SLEEP:
				conn_wake(ev->conn);
				break;
			case EV_SIGNAL:
				handle_signal(ev->fd);
				break;
			case EV_EXIT:
				exit(opt.exit_after_code);
			}
		}
		bury_conns();
	}
}

static void
run_prefork(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	pid_t *kids;
	sigset_t set;
	int one = 1, fd, sfd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)opt.port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind 127.0.0.1:%d", opt.port);
	if (listen(fd, 1024) == -1)
		die("listen");
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	listeners[0] = fd;
	nlisteners = 1;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) == -1)
		die("signalfd");
	if ((kids = calloc((size_t)opt.prefork, sizeof(*kids))) == NULL)
		die("calloc");
	for (int i = 0; i < opt.prefork; i++) {
		if ((kids[i] = fork()) == -1)
			die("fork");
		if (kids[i] == 0) {
			close(sfd);
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			if (opt.blocking)
				run_blocking();
			else
				run_epoll();
			_exit(0);
		}
	}
	fprintf(stderr, "testsrv: %d processes listening on 127.0.0.1:%u\n",
	    opt.prefork, ntohs(sin.sin_port));
	for (int alive = opt.prefork; alive > 0;) {
		struct signalfd_siginfo si;

		if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGCHLD) {
			while (waitpid(-1, NULL, WNOHANG) > 0)
				alive--;
			continue;
		}
		for (int i = 0; i < opt.prefork; i++)
			kill(kids[i], SIGTERM);
		while (wait(NULL) > 0)
			;
		break;
	}
	exit(0);
}

int
main(int argc, char **argv)
{
	/* Before anything of ours is open: what wpool handed over. */
	snapshot_fds();

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;

		if (strcmp(a, "--ignore-term") == 0)
			opt.ignore_term = true;
		else if (strcmp(a, "--exit") == 0 && more) {
			opt.exit_now = true;
			opt.exit_code = (int)parse_long(argv[++i], a);
		} else if (strcmp(a, "--exit-after") == 0 && i + 2 < argc) {
			opt.exit_after = parse_double(argv[++i], a);
			opt.exit_after_code = (int)parse_long(argv[++i], a);
		} else if (strcmp(a, "--crash") == 0)
			opt.crash = true;
		else if (strcmp(a, "--orphans") == 0 && more)
			opt.orphans = (int)parse_long(argv[++i], a);
		else if (strcmp(a, "--orphan-life") == 0 && more)
			opt.orphan_life = parse_double(argv[++i], a);
		else if (strcmp(a, "--notify") == 0)
			opt.notify = true;
		else if (strcmp(a, "--delay-start") == 0 && more)
			opt.delay_start = parse_double(argv[++i], a);
		else if (strcmp(a, "--signal-log") == 0 && more)
			opt.signal_log = argv[++i];
		else if (strcmp(a, "--prefork") == 0 && more)
			opt.prefork = (int)parse_long(argv[++i], a);
		else if (strcmp(a, "--port") == 0 && more)
			opt.port = (int)parse_long(argv[++i], a);
		else if (strcmp(a, "--alloc") == 0 && more)
			opt.alloc_mb = parse_long(argv[++i], a);
		else if (strcmp(a, "--blocking") == 0)
			opt.blocking = true;
		else if (strcmp(a, "--graceful") == 0)
			opt.graceful = true;
		else if (strcmp(a, "--inetd") == 0)
			opt.inetd = true;
		else
			usage();
	}
	if (opt.prefork > 0 && (opt.port < 0 || opt.port > 65535))
		usage();

	if (opt.ignore_term)
		signal(SIGTERM, SIG_IGN);
	if (opt.alloc_mb > 0)
		do_alloc();
	if (opt.orphans > 0)
		make_orphans();
	if (opt.crash)
		abort();
	if (opt.exit_now)
		exit(opt.exit_code);
	if (opt.delay_start > 0)
		sleep_seconds(opt.delay_start);
	if (opt.inetd) {
		serve_blocking(0, 1);
		return 0;
	}
	if (opt.prefork > 0)
		run_prefork();

	find_listeners();
	if (opt.blocking) {
		if (nlisteners == 0)
			errno = 0, die("--blocking: no listener on fd 3");
		if (opt.notify)
			send_notify("READY=1\nSTATUS=serving");
		run_blocking();
	}
	run_epoll();
	return 0;
}
