/*
 * wpool-worker.h: the worker side of wpool's balance mode, header-only.
 *
 * In `wpool -m balance`, the master accepts every connection and passes
 * it to a worker over the SOCK_SEQPACKET socket at fd $WPOOL_CONN_FD (3).
 * Each message carries one connection fd (SCM_RIGHTS) and a JSON payload
 * {"id":N,"listener":"NAME","peer":"ADDR:PORT"}.  When the worker is done
 * with a connection it reports {"type":"closed","id":N}, which feeds the
 * least-connections balancer.  See wpool(1), BALANCE MODE.
 *
 *	struct wpool_conn c;
 *	int chan = wpool_channel();
 *	while (wpool_accept(chan, &c) == 0) {
 *		serve(c.fd);
 *		close(c.fd);
 *		wpool_closed(chan, c.id);
 *	}
 */
#ifndef WPOOL_WORKER_H
#define WPOOL_WORKER_H

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * Waits for the next connection.  Returns 0 with *c filled, or -1 with
 * errno set (0 when the master closed the channel: time to exit).
 */
static inline int
wpool_accept(int chan, struct wpool_conn *c)
{
	char	 buf[1024], num[32];
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	ssize_t	 n;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf) - 1;
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
		buf[n] = '\0';
		c->fd = -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_RIGHTS)
				memcpy(&c->fd, CMSG_DATA(cm), sizeof(int));
		if (c->fd < 0)
			continue;
		wpool__field(buf, "id", num, sizeof(num));
		c->id = strtoull(num, NULL, 10);
		wpool__field(buf, "listener", c->listener,
		    sizeof(c->listener));
		wpool__field(buf, "peer", c->peer, sizeof(c->peer));
		return 0;
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

/* Tells the master this worker is ready (for --ready notify). */
static inline int
wpool_ready(int chan)
{
	static const char msg[] = "{\"type\":\"ready\"}";

	return send(chan, msg, sizeof(msg) - 1, MSG_NOSIGNAL) ==
	    (ssize_t)(sizeof(msg) - 1) ? 0 : -1;
}

#endif
