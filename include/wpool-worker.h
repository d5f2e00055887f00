/*
 * wpool-worker.h: the worker side of wpool's balance mode, header-only.
 *
 * In `wpool -m balance`, the master accepts every connection and passes
 * it to a worker over the SOCK_SEQPACKET socket at fd $WPOOL_CONN_FD (3).
 * Version 1: each message carries one connection fd (SCM_RIGHTS) and a
 * JSON payload {"id":N,"listener":"NAME","peer":"ADDR:PORT"}.  When the
 * worker is done with a connection it reports {"type":"closed","id":N},
 * which feeds the least-connections balancer.  See wpool(1), BALANCE MODE.
 *
 * Version 2, which a worker opts into by sending
 * {"type":"hello","version":2,"batch":K} (1 <= K <= 253) on the channel
 * (wpool_hello): from then on a message may carry up to K fds, and its
 * payload has one such JSON object per fd, in the fds' order, separated by
 * "\n" (a message of one fd is version 1's).  A payload is at most
 * WPOOL_MSG_MAX bytes: read with a buffer that large.  The master sends
 * several when several connections wait for this worker (a burst), so a
 * worker reads its channel less often.  wpool_accept reads both versions
 * and hands out one connection a call.
 *
 *	struct wpool_conn c;
 *	int chan = wpool_channel();
 *	wpool_hello(chan, WPOOL_BATCH);	(optional: version 2)
 *	while (wpool_accept(chan, &c) == 0) {
 *		serve(c.fd);
 *		close(c.fd);
 *		wpool_closed(chan, c.id);
 *	}
 */
#ifndef WPOOL_WORKER_H
#define WPOOL_WORKER_H

#include <sys/socket.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest payload of a message from the master (version 2). */
#define WPOOL_MSG_MAX	8192
/* The most fds one message carries (the kernel's SCM_MAX_FD). */
#define WPOOL_BATCH_MAX	253
/* The batch wpool_hello is usually asked for. */
#define WPOOL_BATCH	64

struct wpool_conn {
	int	 fd;		/* the connection; the worker closes it */
	unsigned long long id;	/* to report it closed */
	char	 listener[256];	/* the listener's name= */
	char	 peer[128];	/* the client, "ADDR:PORT" */
};

/* The channel fd from $WPOOL_CONN_FD, or -1 if not in balance mode. */
static inline int
wpool_channel(void)
{
	const char *s = getenv("WPOOL_CONN_FD");

	return s != NULL && *s != '\0' ? atoi(s) : -1;
}

/* Copies the string value of "key" from a flat JSON object. */
static inline void
wpool__field(const char *json, const char *key, char *out, size_t len)
{
	char	 pat[64];
	const char *p;
	size_t	 n = 0;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(json, pat)) == NULL)
		return;
	p += strlen(pat);
	if (*p == '"') {
		for (p++; *p && *p != '"' && n + 1 < len; p++)
			out[n++] = *p;
	} else {
		for (; *p && *p != ',' && *p != '}' && n + 1 < len; p++)
			out[n++] = *p;
	}
	out[n] = '\0';
}

/*
 * What the last message held that wpool_accept has not handed out yet:
 * its payload, the line of the next one, and the fds.
 */
struct wpool__batch {
	char	 buf[WPOOL_MSG_MAX + 1];
	char	*next;			/* its line */
	int	 fds[WPOOL_BATCH_MAX];
	int	 nfds, at;
};

static inline struct wpool__batch *
wpool__pending(void)
{
	static struct wpool__batch b;

	return &b;
}

/*
 * How many connections wpool_accept holds from the last message: a worker
 * that waits for its channel to be readable (poll, epoll) before calling
 * wpool_accept calls it again first while this is not 0.
 */
static inline int
wpool_pending(void)
{
	const struct wpool__batch *b = wpool__pending();

	return b->nfds - b->at;
}

/*
 * Opts in to version 2: messages of up to batch fds.  1 if the hello was
 * sent, 0 if the master reads only version 1 (no $WPOOL_CONN_VERSION of
 * 2 or more: an older wpool; the worker goes on with version 1), -1 with
 * errno set.
 */
static inline int
wpool_hello(int chan, int batch)
{
	const char *v = getenv("WPOOL_CONN_VERSION");
	char	 msg[64];
	int	 n;

	if (batch < 1 || batch > WPOOL_BATCH_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (v == NULL || atoi(v) < 2)
		return 0;
	n = snprintf(msg, sizeof(msg),
	    "{\"type\":\"hello\",\"version\":2,\"batch\":%d}", batch);
	return send(chan, msg, (size_t)n, MSG_NOSIGNAL) == n ? 1 : -1;
}

/* The next connection of the last message into *c: 0, or -1 if none. */
static inline int
wpool__next(struct wpool__batch *b, struct wpool_conn *c)
{
	char	 num[32], *line, *nl;

	if (b->at >= b->nfds)
		return -1;
	line = b->next;
	if ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		b->next = nl + 1;
	} else
		b->next = line + strlen(line);
	c->fd = b->fds[b->at++];
	wpool__field(line, "id", num, sizeof(num));
	c->id = strtoull(num, NULL, 10);
	wpool__field(line, "listener", c->listener, sizeof(c->listener));
	wpool__field(line, "peer", c->peer, sizeof(c->peer));
	return 0;
}

/*
 * Waits for the next connection (on a non-blocking channel: -1 with
 * errno EAGAIN when none waits).  Returns 0 with *c filled, or -1 with
 * errno set (0 when the master closed the channel: time to exit).  What
 * one message brought is handed out first, without a read.
 */
static inline int
wpool_accept(int chan, struct wpool_conn *c)
{
	struct wpool__batch *b = wpool__pending();
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int) * WPOOL_BATCH_MAX)];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	ssize_t	 n;
	size_t	 nf, i;

	for (;;) {
		if (wpool__next(b, c) == 0)
			return 0;
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = b->buf;
		iov.iov_len = sizeof(b->buf) - 1;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return -1;
		}
		b->buf[n] = '\0';
		b->next = b->buf;
		b->nfds = b->at = 0;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < nf && b->nfds < WPOOL_BATCH_MAX; i++)
				memcpy(&b->fds[b->nfds++], CMSG_DATA(cm) +
				    i * sizeof(int), sizeof(int));
		}
	}
}

/* Reports connection id done; call after closing it. */
static inline int
wpool_closed(int chan, unsigned long long id)
{
	char	 msg[64];
	int	 n = snprintf(msg, sizeof(msg),
	    "{\"type\":\"closed\",\"id\":%llu}", id);

	return send(chan, msg, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/*
 * Version 2 only (after wpool_hello): reports several connections closed
 * in one message, {"type":"closed","id":N} lines separated by "\n", of at
 * most WPOOL_REPORT_MAX bytes.  wpool_closed_later adds one (sending what
 * it holds first when full); wpool_flush sends what it holds: call it
 * before waiting for events again, so the master hears it at once.
 */
#define WPOOL_REPORT_MAX	1024

struct wpool__reports {
	char	 buf[WPOOL_REPORT_MAX];
	size_t	 len;
};

static inline struct wpool__reports *
wpool__reports(void)
{
	static struct wpool__reports r;

	return &r;
}

static inline int
wpool_flush(int chan)
{
	struct wpool__reports *r = wpool__reports();
	ssize_t	 n;

	if (r->len == 0)
		return 0;
	n = send(chan, r->buf, r->len, MSG_NOSIGNAL);
	n = n == (ssize_t)r->len ? 0 : -1;
	r->len = 0;
	return (int)n;
}

static inline int
wpool_closed_later(int chan, unsigned long long id)
{
	struct wpool__reports *r = wpool__reports();
	char	 line[64];
	int	 n = snprintf(line, sizeof(line),
	    "{\"type\":\"closed\",\"id\":%llu}", id), e = 0;

	if (r->len + 1 + (size_t)n > sizeof(r->buf))
		e = wpool_flush(chan);
	if (r->len > 0)
		r->buf[r->len++] = '\n';
	memcpy(r->buf + r->len, line, (size_t)n);
	r->len += (size_t)n;
	return e;
}

/* Tells the master this worker is ready (for --ready notify). */
static inline int
wpool_ready(int chan)
{
	static const char msg[] = "{\"type\":\"ready\"}";

	return send(chan, msg, sizeof(msg) - 1, MSG_NOSIGNAL) ==
	    (ssize_t)(sizeof(msg) - 1) ? 0 : -1;
}

#endif
