/*
 * bal_worker: an epoll HTTP/1.1 server for wpool's balance-mode tests and
 * benchmarks.  It speaks the balance protocol of DESIGN section 8 through
 * the installed header include/wpool-worker.h, and can misbehave on request.
 *
 * Where connections come from:
 *   $WPOOL_CONN_FD set (balance mode): the channel; each connection is
 *     reported {"type":"closed","id":N} once closed.
 *   otherwise (shared / reuseport): accept on fds 3 .. 3+LISTEN_FDS-1
 *     (fd 3 if LISTEN_FDS is unset), so that the same server code can be
 *     compared across modes.
 * Many keep-alive connections at once; `Connection: close` and HTTP/1.0
 * are honoured.
 *
 * Requests (GET):
 *   /              pid=P id=WPOOL_WORKER_ID gen=G conn=ID peer=PEER active=A
 *                  (ID and PEER from the master's message; 0 and the socket's
 *                  own peer in the other modes; A: connections open here)
 *   /sleep?ms=N    the same after N ms, without blocking other connections
 *   /work?us=N     the same after blocking the whole worker N us (a slow
 *                  synchronous handler: head-of-line blocking)
 *   /spin?us=N     the same after burning N us of CPU
 *   /bad/garbage?n=K    answer, then send K (default 1) non-JSON messages
 *   /bad/wrongjson      answer, then send {"type":"closed","id":"x"}
 *   /bad/oversize       answer, then send a 64 KiB message
 *   /bad/fd             answer, then send a valid-looking message with an fd
 *   /bad/stopread       answer, then never read the channel again
 *   /bad/closechan      answer, then close the channel (keep serving)
 *   /bad/noclosed       answer; never report a connection closed again
 *   /bad/ready          answer, then send {"type":"ready"} (a good message)
 *   /bad/exit           answer, then exit 0 at once
 * Flags:
 *   --ready-on-usr1  send {"type":"ready"} on each SIGUSR1 (--ready notify)
 *   --ready          send {"type":"ready"} at start
 *   --log FILE       append "PID ID CONN PEER" for every connection taken
 *   --v1             do not say hello: one connection a message (protocol
 *                    version 1; by default it asks for batches of 64)
 * SIGTERM: stop taking connections (balance: drain what is already in the
 * channel), answer what is open with `Connection: close`, close idle
 * keep-alive connections, exit 0 when none is left (or after 5 s).
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../../include/wpool-worker.h"

#define MAX_FDS		65536
#define REQ_MAX		8192
#define OUT_MAX		1024
#define MAX_LISTENERS	16

/* epoll data: fds below MAX_FDS are connections; these tag the rest. */
#define TAG_SIGNAL	((uint64_t)1 << 40)
#define TAG_CHAN	((uint64_t)2 << 40)
#define TAG_LISTEN	((uint64_t)3 << 40)

struct conn {
	int	 fd;
	unsigned long long id;
	char	 peer[128];
	char	 req[REQ_MAX];
	size_t	 len;
	char	 out[OUT_MAX];
	size_t	 olen, ooff;
	bool	 close_after;
	bool	 sleeping;
	unsigned served;	/* answers sent */
	double	 wake;
	char	 pending_bad[32];
	int	 pending_n;
	struct conn *snext;	/* in the sleeping list */
};

static struct conn *conns[MAX_FDS];
static struct conn *sleepers;
static int	 ep = -1, chan = -1, sigfd = -1;
static int	 lfds[MAX_LISTENERS], nlfds;
static int	 nconns;
static bool	 stopping, stopread, noclosed, ready_on_usr1, v1;
static double	 stop_deadline;
static const char *wid = "?", *wgen = "?";
static FILE	*connlog;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
ep_add(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.u64 = data;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		perror("bal_worker: epoll_ctl add");
		exit(1);
	}
}

static void
ep_mod(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.u64 = data;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
}

static void
set_nonblock(int fd)
{
	int	 fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void
sleeper_remove(struct conn *c)
{
	struct conn **pp;

	for (pp = &sleepers; *pp != NULL; pp = &(*pp)->snext)
		if (*pp == c) {
			*pp = c->snext;
			break;
		}
	c->sleeping = false;
	c->snext = NULL;
}

static void
conn_close(struct conn *c)
{
	if (c->sleeping)
		sleeper_remove(c);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	conns[c->fd] = NULL;
	nconns--;
	if (chan >= 0 && !noclosed) {
		if (v1)
			wpool_closed(chan, c->id);
		else
			wpool_closed_later(chan, c->id);
	}
	free(c);
}

static void
conn_new(int fd, unsigned long long id, const char *peer)
{
	struct conn *c;

	if (fd >= MAX_FDS) {
		close(fd);
		return;
	}
	set_nonblock(fd);
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->id = id;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	conns[fd] = c;
	nconns++;
	ep_add(fd, EPOLLIN | EPOLLRDHUP, (uint64_t)fd);
	if (connlog != NULL) {
		fprintf(connlog, "%d %s %llu %s\n", (int)getpid(), wid, id, peer);
		fflush(connlog);
	}
}

static void
send_raw(const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr align;
		char	 b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;

	if (chan < 0)
		return;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof(ctl.b);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(chan, &msg, MSG_NOSIGNAL) < 0)
		fprintf(stderr, "bal_worker %d: sendmsg: %s\n", (int)getpid(),
		    strerror(errno));
}

/* The misbehaviour a /bad/ request asked for, once its answer is out. */
static void
misbehave(const char *what, int n)
{
	int	 i;

	fprintf(stderr, "bal_worker %d (id %s): misbehaving: %s\n",
	    (int)getpid(), wid, what);
	if (strcmp(what, "garbage") == 0) {
		for (i = 0; i < (n > 0 ? n : 1); i++)
			send_raw("this is not json", 16, -1);
	} else if (strcmp(what, "wrongjson") == 0) {
		send_raw("{\"type\":\"closed\",\"id\":\"x\"}", 26, -1);
	} else if (strcmp(what, "oversize") == 0) {
		size_t	 len = 65536;
		char	*big = malloc(len);

		if (big != NULL) {
			memset(big, ' ', len);
			memcpy(big, "{\"type\":\"ready\"", 15);
			big[len - 1] = '}';
			send_raw(big, len, -1);
			free(big);
		}
	} else if (strcmp(what, "fd") == 0) {
		int	 p[2];

		if (pipe(p) == 0) {
			send_raw("{\"type\":\"ready\"}", 16, p[0]);
			close(p[0]);
			close(p[1]);
		}
	} else if (strcmp(what, "stopread") == 0) {
		if (chan >= 0 && !stopread)
			epoll_ctl(ep, EPOLL_CTL_DEL, chan, NULL);
		stopread = true;
	} else if (strcmp(what, "closechan") == 0) {
		if (chan >= 0) {
			if (!stopread)
				epoll_ctl(ep, EPOLL_CTL_DEL, chan, NULL);
			close(chan);
			chan = -1;
		}
	} else if (strcmp(what, "noclosed") == 0) {
		noclosed = true;
	} else if (strcmp(what, "ready") == 0) {
		if (chan >= 0)
			wpool_ready(chan);
	} else if (strcmp(what, "exit") == 0) {
		_exit(0);
	}
}

static void
conn_flush(struct conn *c)
{
	ssize_t	 n;

	while (c->ooff < c->olen) {
		n = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ep_mod(c->fd, EPOLLOUT | EPOLLRDHUP, (uint64_t)c->fd);
			return;
		}
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->ooff += (size_t)n;
	}
	c->olen = c->ooff = 0;
	if (c->pending_bad[0] != '\0') {
		char	 what[32];

		snprintf(what, sizeof(what), "%s", c->pending_bad);
		c->pending_bad[0] = '\0';
		misbehave(what, c->pending_n);
		if (conns[c->fd] != c)
			return;
	}
	if (c->close_after || stopping) {
		conn_close(c);
		return;
	}
	ep_mod(c->fd, EPOLLIN | EPOLLRDHUP, (uint64_t)c->fd);
}

static void
respond(struct conn *c)
{
	char	 body[512];
	int	 blen, n;

	blen = snprintf(body, sizeof(body), "pid=%d id=%s gen=%s conn=%llu "
	    "peer=%s active=%d\n", (int)getpid(), wid, wgen, c->id, c->peer,
	    nconns);
	n = snprintf(c->out, sizeof(c->out), "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
	    blen, c->close_after || stopping ? "Connection: close\r\n" : "",
	    body);
	c->olen = (size_t)n;
	c->ooff = 0;
	c->served++;
	conn_flush(c);
}

static long
query_num(const char *path, const char *key)
{
	char	 pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), "%s=", key);
	if ((p = strstr(path, pat)) == NULL)
		return 0;
	return strtol(p + strlen(pat), NULL, 10);
}

static void
spin_us(long us)
{
	double	 end = now() + (double)us / 1e6;

	while (now() < end)
		;
}

static void
block_us(long us)
{
	struct timespec ts;

	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One complete request is at the start of c->req, ending at hend. */
static void
handle_request(struct conn *c, char *hend)
{
	char	 path[256], *sp, *eol, *h;
	size_t	 consumed = (size_t)(hend + 4 - c->req);
	bool	 http10;

	*hend = '\0';
	path[0] = '\0';
	if ((eol = strstr(c->req, "\r\n")) != NULL)
		*eol = '\0';
	sp = strchr(c->req, ' ');
	if (sp != NULL) {
		size_t	 k = 0;

		for (sp++; *sp && *sp != ' ' && k + 1 < sizeof(path); sp++)
			path[k++] = *sp;
		path[k] = '\0';
	}
	http10 = eol != NULL && strstr(c->req, "HTTP/1.0") != NULL;
	c->close_after = http10;
	for (h = eol != NULL ? eol + 2 : NULL; h != NULL && *h != '\0';) {
		char	*next = strstr(h, "\r\n");

		if (next != NULL)
			*next = '\0';
		if (strncasecmp(h, "connection:", 11) == 0) {
			char	*v = h + 11;

			while (*v == ' ')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				c->close_after = true;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				c->close_after = false;
		}
		h = next != NULL ? next + 2 : NULL;
	}
	memmove(c->req, c->req + consumed, c->len - consumed);
	c->len -= consumed;

	if (strncmp(path, "/sleep", 6) == 0) {
		long	 ms = query_num(path, "ms");

		c->sleeping = true;
		c->wake = now() + (double)ms / 1e3;
		c->snext = sleepers;
		sleepers = c;
		ep_mod(c->fd, EPOLLRDHUP, (uint64_t)c->fd);
		return;
	}
	if (strncmp(path, "/work", 5) == 0)
		block_us(query_num(path, "us"));
	else if (strncmp(path, "/spin", 5) == 0)
		spin_us(query_num(path, "us"));
	else if (strncmp(path, "/bad/", 5) == 0) {
		size_t	 k = strcspn(path + 5, "?");

		if (k >= sizeof(c->pending_bad))
			k = sizeof(c->pending_bad) - 1;
		memcpy(c->pending_bad, path + 5, k);
		c->pending_bad[k] = '\0';
		c->pending_n = (int)query_num(path, "n");
	}
	respond(c);
}

static void
conn_read(struct conn *c)
{
	ssize_t	 n;
	char	*hend;

	for (;;) {
		if (c->len >= sizeof(c->req) - 1) {
			conn_close(c);
			return;
		}
		n = read(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->len += (size_t)n;
		c->req[c->len] = '\0';
		if (strstr(c->req, "\r\n\r\n") != NULL)
			break;
	}
	c->req[c->len] = '\0';
	if ((hend = strstr(c->req, "\r\n\r\n")) != NULL)
		handle_request(c, hend);
}

static void
chan_read(void)
{
	struct wpool_conn wc;
	int	 k;

	/* What one message brought is taken whole: epoll cannot tell. */
	for (k = 0; (k < 64 || wpool_pending() > 0) && chan >= 0 &&
	    !stopread; k++) {
		if (wpool_accept(chan, &wc) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			/* The master closed the channel: finish and go. */
			epoll_ctl(ep, EPOLL_CTL_DEL, chan, NULL);
			close(chan);
			chan = -1;
			stopping = true;
			if (stop_deadline == 0)
				stop_deadline = now() + 5;
			return;
		}
		conn_new(wc.fd, wc.id, wc.peer);
	}
}

static void
listener_accept(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char	 peer[128];
	int	 fd, k;

	for (k = 0; k < 64; k++) {
		sl = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		peer[0] = '\0';
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			char	 a[64];

			inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
			snprintf(peer, sizeof(peer), "%s:%d", a,
			    ntohs(s4->sin_port));
		} else
			snprintf(peer, sizeof(peer), "local");
		conn_new(fd, 0, peer);
	}
}

static void
begin_stop(void)
{
	int	 i, fd;

	if (stopping && stop_deadline > 0)
		return;
	stopping = true;
	stop_deadline = now() + 5;
	for (i = 0; i < nlfds; i++) {
		epoll_ctl(ep, EPOLL_CTL_DEL, lfds[i], NULL);
		close(lfds[i]);
	}
	nlfds = 0;
	/* What the master passed before it stopped sending is ours. */
	if (chan >= 0 && !stopread)
		chan_read();
	for (fd = 0; fd < MAX_FDS; fd++) {
		struct conn *c = conns[fd];

		if (c == NULL || c->sleeping || c->olen > 0)
			continue;
		/* A request already sent is answered (then closed). */
		conn_read(c);
		if (conns[fd] != c || c->sleeping || c->olen > 0)
			continue;
		/*
		 * Idle keep-alive connections: nothing to answer.  A fresh
		 * one has its first request on the way: it is answered.
		 */
		if (c->served > 0 && c->len == 0)
			conn_close(c);
	}
}

static void
on_signal(void)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			begin_stop();
		else if (si.ssi_signo == SIGUSR1 && ready_on_usr1 && chan >= 0)
			wpool_ready(chan);
	}
}

static int
next_timeout_ms(void)
{
	struct conn *c;
	double	 t = -1, n = now(), d;

	for (c = sleepers; c != NULL; c = c->snext)
		if (t < 0 || c->wake < t)
			t = c->wake;
	if (stopping && (t < 0 || stop_deadline < t))
		t = stop_deadline;
	/* Stopping: look again soon for the moment nothing is left. */
	if (stopping && (t < 0 || t > n + 0.05))
		t = n + 0.05;
	if (t < 0)
		return -1;
	d = (t - n) * 1e3;
	return d <= 0 ? 0 : (int)d + 1;
}

static void
wake_sleepers(void)
{
	struct conn *c, *next, *due = NULL;
	double	 n = now();

	for (c = sleepers; c != NULL; c = next) {
		next = c->snext;
		if (c->wake <= n) {
			sleeper_remove(c);
			c->snext = due;
			due = c;
		}
	}
	for (c = due; c != NULL; c = next) {
		next = c->snext;
		c->snext = NULL;
		ep_mod(c->fd, EPOLLIN | EPOLLRDHUP, (uint64_t)c->fd);
		respond(c);
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[128];
	sigset_t ss;
	const char *s;
	bool	 ready_at_start = false;
	int	 i, n, nl = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ready-on-usr1") == 0)
			ready_on_usr1 = true;
		else if (strcmp(argv[i], "--ready") == 0)
			ready_at_start = true;
		else if (strcmp(argv[i], "--v1") == 0)
			v1 = true;
		else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
			if ((connlog = fopen(argv[++i], "a")) == NULL) {
				perror(argv[i]);
				return 1;
			}
		} else {
			fprintf(stderr, "bal_worker: unknown argument '%s'\n",
			    argv[i]);
			return 64;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if ((s = getenv("WPOOL_WORKER_ID")) != NULL)
		wid = s;
	if ((s = getenv("WPOOL_GENERATION")) != NULL)
		wgen = s;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("bal_worker: epoll_create1");
		return 1;
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	ep_add(sigfd, EPOLLIN, TAG_SIGNAL);

	if ((chan = wpool_channel()) >= 0) {
		set_nonblock(chan);
		ep_add(chan, EPOLLIN, TAG_CHAN);
		/* An older master: version 1 (closed reported one by one). */
		if (!v1 && wpool_hello(chan, WPOOL_BATCH) != 1)
			v1 = true;
		if (ready_at_start)
			wpool_ready(chan);
	} else {
		if ((s = getenv("LISTEN_FDS")) != NULL)
			nl = atoi(s);
		for (i = 0; i < nl && i < MAX_LISTENERS; i++) {
			lfds[nlfds] = 3 + i;
			set_nonblock(3 + i);
			ep_add(3 + i, EPOLLIN, TAG_LISTEN | (uint64_t)(3 + i));
			nlfds++;
		}
	}

	for (;;) {
		if (stopping && nconns == 0 && (chan < 0 || stopread ||
		    now() > stop_deadline - 4.9))
			break;
		if (stopping && now() >= stop_deadline)
			break;
		if (chan >= 0)
			wpool_flush(chan);
		n = epoll_wait(ep, evs, 128, next_timeout_ms());
		if (n < 0 && errno != EINTR) {
			perror("bal_worker: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;

			if (d == TAG_SIGNAL)
				on_signal();
			else if (d == TAG_CHAN)
				chan_read();
			else if ((d & ~(uint64_t)0xffffffff) == TAG_LISTEN) {
				if (!stopping)
					listener_accept((int)(d & 0xffffffff));
			} else if (d < MAX_FDS && conns[d] != NULL) {
				struct conn *c = conns[d];

				if (evs[i].events & EPOLLOUT)
					conn_flush(c);
				else if (c->sleeping) {
					/* Hung up while we sleep on it. */
					if (evs[i].events & (EPOLLRDHUP |
					    EPOLLHUP | EPOLLERR))
						conn_close(c);
				} else
					conn_read(c);
			}
		}
		wake_sleepers();
	}
	return 0;
}
