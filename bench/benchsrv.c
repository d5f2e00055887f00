/*
 * benchsrv: a tiny epoll HTTP/1.1 server for wpool's reload benchmark
 * (bench/05-reload.sh) that, unlike tests/bin/testsrv, stops gracefully:
 * on SIGTERM it stops accepting, answers the next request of every open
 * connection with `Connection: close`, closes connections that stay idle
 * for --drain SEC, and exits when none is left.  That is what a real server
 * does, and what a zero-downtime reload needs from its workers: whatever
 * errors remain are then the supervisor's.
 *
 * Listeners: fds 3 .. 3+LISTEN_FDS-1 (fd 3 if LISTEN_FDS is unset).
 * Every request gets `200` with the body `pid=PID\n`.
 * Flags: --notify (send READY=1 to $NOTIFY_SOCKET once listening),
 * --delay-start SEC, --drain SEC (default 2).
 *
 * Built by the script: cc -O2 -std=c11 -D_GNU_SOURCE -o benchsrv benchsrv.c
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS	16
#define BUFSZ		8192

struct conn {
	int	 fd;
	char	 in[BUFSZ];
	size_t	 inlen;
	char	*out;
	size_t	 outlen, outoff;
	bool	 close_after;
	struct conn *prev, *next;
};

static int epfd, sigfd, drainfd = -1;
static int listeners[MAX_LISTENERS], nlisteners;
static struct conn *conns;
static int nconns;
static bool draining;
static char body[64];
static size_t bodylen;

static void
fatal(const char *what)
{
	fprintf(stderr, "benchsrv: %s: %s\n", what, strerror(errno));
	exit(70);
}

static void
ep_add(int fd, unsigned events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		fatal("epoll_ctl");
}

static void
ep_mod(int fd, unsigned events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->out);
	free(c);
	nconns--;
	if (draining && nconns == 0)
		exit(0);
}

/* Length of the first complete request in c->in, or 0. */
static size_t
request_len(struct conn *c, bool *keep_alive)
{
	char *end, *p;
	bool http10;

	c->in[c->inlen] = '\0';
	if ((end = strstr(c->in, "\r\n\r\n")) == NULL)
		return 0;
	*end = '\0';
	http10 = strstr(c->in, " HTTP/1.0\r\n") != NULL;
	*keep_alive = !http10;
	for (p = strstr(c->in, "\r\n"); p != NULL && p < end;
	    p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, "connection:", 11) != 0)
			continue;
		if (strncasecmp(p + 13 + strspn(p + 13, " "), "close", 5) == 0)
			*keep_alive = false;
		else if (strncasecmp(p + 13 + strspn(p + 13, " "),
		    "keep-alive", 10) == 0)
			*keep_alive = true;
	}
	*end = '\r';
	return (size_t)(end - c->in) + 4;
}

static bool
conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t r = write(c->fd, c->out + c->outoff,
		    c->outlen - c->outoff);

		if (r < 0 && errno == EAGAIN) {
			ep_mod(c->fd, EPOLLOUT, c);
			return true;
		}
		if (r <= 0) {
			conn_close(c);
			return false;
		}
		c->outoff += (size_t)r;
	}
	c->outlen = c->outoff = 0;
	if (c->close_after) {
		conn_close(c);
		return false;
	}
	ep_mod(c->fd, EPOLLIN, c);
	return true;
}

static void
conn_readable(struct conn *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->in + c->inlen,
		    sizeof(c->in) - 1 - c->inlen);
		size_t len;
		bool ka;

		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0) {
			conn_close(c);
			return;
		}
		c->inlen += (size_t)r;
		while ((len = request_len(c, &ka)) > 0) {
			char hdr[256];
			int hl;

			if (draining)
				ka = false;
			hl = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\n"
			    "Content-Type: text/plain\r\n"
			    "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
			    bodylen, ka ? "keep-alive" : "close");
			c->out = realloc(c->out, c->outlen + (size_t)hl +
			    bodylen);
			if (c->out == NULL)
				fatal("realloc");
			memcpy(c->out + c->outlen, hdr, (size_t)hl);
			memcpy(c->out + c->outlen + hl, body, bodylen);
			c->outlen += (size_t)hl + bodylen;
			memmove(c->in, c->in + len, c->inlen - len);
			c->inlen -= len;
			if (!ka) {
				c->close_after = true;
				c->inlen = 0;
				break;
			}
		}
		if (c->inlen >= sizeof(c->in) - 1) {
			conn_close(c);
			return;
		}
		if (c->close_after)
			break;
	}
	if (c->outlen > 0)
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
			return;	/* EAGAIN: a sibling took it */
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			fatal("calloc");
		c->fd = fd;
		c->next = conns;
		if (conns)
			conns->prev = c;
		conns = c;
		nconns++;
		ep_add(fd, EPOLLIN, c);
	}
}

static void
start_drain(void)
{
	struct itimerspec its = { 0 };
	double drain = 2;
	const char *s = getenv("BENCHSRV_DRAIN");

	if (draining)
		return;
	draining = true;
	for (int i = 0; i < nlisteners; i++) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, listeners[i], NULL);
		close(listeners[i]);
	}
	if (nconns == 0)
		exit(0);
	if (s != NULL)
		drain = atof(s);
	if ((drainfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) == -1)
		fatal("timerfd_create");
	its.it_value.tv_sec = (time_t)drain;
	its.it_value.tv_nsec = (long)((drain - (double)(time_t)drain) * 1e9) + 1;
	timerfd_settime(drainfd, 0, &its, NULL);
	ep_add(drainfd, EPOLLIN, &drainfd);
}

static void
notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static const char msg[] = "READY=1\nSTATUS=serving";
	int fd;

	if (path == NULL || strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "benchsrv: --notify: no usable NOTIFY_SOCKET\n");
		return;
	}
	strcpy(sun.sun_path, path);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path))) == -1)
		perror("benchsrv: notify");
	close(fd);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[64];
	const char *lf = getenv("LISTEN_FDS");
	bool notify = false;
	double delay = 0;
	sigset_t set;
	int n = lf ? atoi(lf) : 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--notify") == 0)
			notify = true;
		else if (strcmp(argv[i], "--delay-start") == 0 && i + 1 < argc)
			delay = atof(argv[++i]);
		else if (strcmp(argv[i], "--drain") == 0 && i + 1 < argc)
			setenv("BENCHSRV_DRAIN", argv[++i], 1);
		else {
			fprintf(stderr, "usage: benchsrv [--notify] "
			    "[--delay-start SEC] [--drain SEC]\n");
			return 64;
		}
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	signal(SIGPIPE, SIG_IGN);
	if (delay > 0) {
		struct timespec ts = { .tv_sec = (time_t)delay,
		    .tv_nsec = (long)((delay - (double)(time_t)delay) * 1e9) };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	bodylen = (size_t)snprintf(body, sizeof(body), "pid=%d\n",
	    (int)getpid());
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	for (int fd = 3; fd < 3 + n && nlisteners < MAX_LISTENERS; fd++) {
		int fl = fcntl(fd, F_GETFL);

		if (fl == -1)
			fatal("listener fd");
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		listeners[nlisteners++] = fd;
		ep_add(fd, EPOLLIN, &listeners[nlisteners - 1]);
	}
	ep_add(sigfd, EPOLLIN, &sigfd);
	if (notify)
		notify_ready();
	for (;;) {
		int k = epoll_wait(epfd, evs, 64, -1);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (int i = 0; i < k; i++) {
			void *p = evs[i].data.ptr;

			if (p == &sigfd) {
				struct signalfd_siginfo si;

				while (read(sigfd, &si, sizeof(si)) > 0)
					start_drain();
			} else if (p == &drainfd) {
				exit(0);
			} else if (p >= (void *)listeners &&
			    p < (void *)(listeners + MAX_LISTENERS)) {
				if (!draining)
					accept_all(*(int *)p);
			} else {
				struct conn *c = p;

				if (evs[i].events & EPOLLOUT)
					conn_flush(c);
				else
					conn_readable(c);
			}
		}
	}
}
