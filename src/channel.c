/*
 * channel.c: each balance-mode worker's channel, a SOCK_SEQPACKET pair
 * over which the master passes connections (SCM_RIGHTS) and the worker
 * reports them closed.  Owns both ends of every channel, the connections
 * in flight on it (sent, not reported closed) and everything the master
 * keeps per worker about them (w->chan: what it holds, what it served,
 * how it misbehaved, the watch over a stall); the only writer of w->chan.
 * Asks pool.c to replace a worker whose channel is broken or stuck.
 */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/tree.h>

#include <json-c/json.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balance.h"

/* Garbage messages a worker may send before it is restarted. */
#define GARBAGE_LIMIT	16
/* A channel closed by a live worker: it is broken after this grace. */
#define CHAN_LOST_GRACE		1.0
/*
 * How much a channel holds unread: its send buffer, of which each message
 * takes some 768 bytes (the kernel doubles the value), so about 40.  A
 * worker that does not read gets that much at most; one that does is
 * given more as fast as it reads.
 */
#define CHAN_SNDBUF		16384
/*
 * Version 2 of the protocol (a worker's hello): one message carries up to
 * the batch the worker asked for (at most CHAN_BATCH_MAX, the kernel's
 * SCM_MAX_FD) and a payload of at most CHAN_BATCH_BYTES, so that a
 * message always fits the channel's send buffer and the worker's read.
 */
#define CHAN_BATCH_MAX		253
/* One connection's line at most: {"id":N,"listener":"<255>","peer":"<63>"} */
#define CONN_LINE_MAX		512
/* Connections one worker may hold at once (sent, not reported closed). */
#define WORKER_MAX_INFLIGHT	1024
/*
 * Workers with connections in flight are looked at every WATCH_TICK; one
 * that stalls (wpool.h: BALANCE_STALL_GRACE, BALANCE_STUCK_SECONDS) has
 * what waits unread in its channel taken back, then is replaced.
 */
#define WATCH_TICK		0.5

RB_HEAD(conntree, conn);

/*
 * A worker's channel.  The master keeps both ends: fd to talk, and peer,
 * the worker's own end (its fd 3), only to take back what waits there
 * unread.  The kernel queues a message at the receiving end until one
 * read takes it whole, so a read on peer gets exactly the connections the
 * worker never took, atomically even while it runs; and holding peer
 * keeps them queued when the worker closes its end or dies, instead of
 * the kernel closing them.
 */
struct chan {
	struct pool *pool;		/* its worker's */
	struct worker *w;
	int	 fd;			/* the master's end; -1 once closed */
	int	 peer;
	ino_t	 peer_ino;		/* to find it among the worker's fds, */
	int	 peer_fdno;		/* where it was last seen (3) */
	bool	 full;			/* its send buffer is: skipped */
	int	 garbage;		/* bad messages since a good one */
	long	 active;		/* connections in flight */
	long	 requests;		/* connections it was given */
	long	 max_requests;		/* --max-requests with its jitter */
	struct timer lost_timer;	/* closed by a live worker: replaced */
	struct conntree inflight;	/* sent and not reported closed */
	uint64_t sent_bytes;		/* payload sent on the channel, */
	uint64_t pulled_bytes;		/* and taken back: the rest minus */
	unsigned long closes;		/* what is unread has been read */
	struct chan_watch watch;
	bool	 probing;		/* stalled: one sent, to see it read */
	bool	 muted;			/* kept sending garbage: not read */
	int	 batch;			/* fds per message: 1, or its hello's */
	char	*pay;			/* version 2: the next message's payload */
	bool	 v2;			/* said hello: may send lines too */
	struct connq staged;		/* picked, in its next message */
	int	 nstaged;
	size_t	 staged_bytes;		/* that message's payload so far */
	TAILQ_ENTRY(chan) stage_entry;	/* in channels.staging */
};

/* The pool's channels: p->channels. */
struct channels {
	struct timer watch_timer;	/* workers with connections in flight */
	TAILQ_HEAD(, chan) staging;	/* channels with connections staged */
};

static int
conn_cmp(const struct conn *a, const struct conn *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

/* RB_GENERATE_STATIC's __unused is off in libbsd (it clashes with Linux). */
RB_GENERATE_INTERNAL(conntree, conn, node, conn_cmp,
    __attribute__((__unused__)) static)

static void	 on_watch(void *);

int
chan_init(struct pool *p)
{
	if (p->conf->mode != MODE_BALANCE)
		return 0;
	p->channels = xcalloc(1, sizeof(*p->channels));
	timer_init(&p->channels->watch_timer, on_watch, p);
	TAILQ_INIT(&p->channels->staging);
	return 0;
}

/* What status, pool.c and the balancers read of a worker's channel. */
long
balance_active(const struct worker *w)
{
	return w->chan != NULL ? w->chan->active : 0;
}

long
balance_requests(const struct worker *w)
{
	return w->chan != NULL ? w->chan->requests : 0;
}

bool
balance_has_channel(const struct worker *w)
{
	return w->chan != NULL && w->chan->fd >= 0;
}

bool
chan_eligible(const struct pool *p, const struct worker *w)
{
	const struct chan *ch;

	if (w == NULL || (ch = w->chan) == NULL)
		return false;
	return w->state == W_READY && !w->stop_sent && ch->fd >= 0 &&
	    !ch->full && (ch->garbage == 0 || ch->active == 0) &&
	    !w->recycle_pending &&
	    (!ch->watch.stalled || !ch->probing) && !ch->muted &&
	    ch->active < WORKER_MAX_INFLIGHT &&
	    (p->conf->max_requests == 0 || ch->requests < ch->max_requests);
}

/* A channel that closed while its process lives on: it is replaced. */
static void
on_lost_timer(void *arg)
{
	struct chan *ch = arg;
	struct pool *p = ch->pool;

	if (ch->w->stop_sent || p->state != POOL_RUNNING)
		return;
	if (ch->fd < 0)
		pool_recycle(p, ch->w, "closed its connection channel");
}

/*
 * A connection taken back whose record is gone (the worker reported its
 * id closed before it could know it): made again from the socket and from
 * the message the master wrote.
 */
static struct conn *
conn_rebuild(struct pool *p, int fd, unsigned long id, const char *msg)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct conn *c = xcalloc(1, sizeof(*c));
	const char *at = strstr(msg, ",\"listener\":\"");
	size_t	 i, len;

	c->id = id;
	for (i = 0; at != NULL && i < p->conf->nlisteners; i++) {
		len = strlen(p->conf->listeners[i].name);
		if (strncmp(at + 13, p->conf->listeners[i].name, len) == 0 &&
		    at[13 + len] == '"') {
			c->listener = (int)i;
			break;
		}
	}
	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNIX;
	conn_describe(c, &ss, sl);
	return c;
}

/*
 * One message read at the worker's end: its fds in order, into fds (at
 * most max; any more are disposed); returns how many.
 */
static int
msg_fds(struct msghdr *msg, int *fds, int max)
{
	struct cmsghdr *cm;
	size_t	 i, nf;
	int	 n = 0, f;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nf; i++) {
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int),
			    sizeof(int));
			if (n < max)
				fds[n++] = f;
			else
				fdrecv_dispose(f);
		}
	}
	return n;
}

/* A connection taken back (fd, and the line the master wrote for it). */
static void
take_back(struct pool *p, struct chan *ch, int fd, const char *line,
    struct connq *back)
{
	struct conn key, *c;

	/* The master's own line: {"id":N,"listener":... */
	key.id = strncmp(line, "{\"id\":", 6) == 0 ?
	    strtoul(line + 6, NULL, 10) : 0;
	if ((c = RB_FIND(conntree, &ch->inflight, &key)) != NULL) {
		RB_REMOVE(conntree, &ch->inflight, c);
		if (ch->active > 0)
			ch->active--;
	} else
		c = conn_rebuild(p, fd, key.id, line);
	c->fd = fd;
	c->returned = true;
	if (ch->requests > 0)
		ch->requests--;
	TAILQ_INSERT_TAIL(back, c, entry);
}

/*
 * Takes back every connection still unread in w's channel and puts them
 * at the head of the queue, oldest first.  Only the master writes to the
 * worker's end, so what arrives there is its own messages: one line per
 * fd, in the fds' order (one of each in version 1).
 */
static int
pull_back(struct pool *p, struct chan *ch)
{
	struct connq back = TAILQ_HEAD_INITIALIZER(back);
	char	 buf[CHAN_BATCH_BYTES + 1], *line, *nl;
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int) * FDRECV_MAX_FDS)];
	} ctl;
	int	 fds[FDRECV_MAX_FDS];
	struct msghdr msg;
	struct iovec iov;
	ssize_t	 n;
	int	 i, nf, k = 0;

	if (ch->peer < 0)
		return 0;
	for (;;) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf) - 1;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		/* MSG_DONTWAIT: the file's flags are the worker's too. */
		n = recvmsg(ch->peer, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		nf = msg_fds(&msg, fds, FDRECV_MAX_FDS);
		ch->pulled_bytes += (uint64_t)n;
		buf[n] = '\0';
		for (i = 0, line = buf; i < nf; i++, k++) {
			if ((nl = strchr(line, '\n')) != NULL)
				*nl = '\0';
			take_back(p, ch, fds[i], line, &back);
			line = nl != NULL ? nl + 1 : buf + n;
		}
	}
	acceptq_requeue(p, &back, k);
	return k;
}

/*
 * Ends w's channel: what waits unread in it goes back to the queue (the
 * count is returned), what the worker took is its own and forgotten.
 * Then the master's end is shut, so that nothing more arrives while what
 * the worker sent is disposed of (fds, where the kernel lets it pass them).
 */
static int
chan_close(struct pool *p, struct chan *ch)
{
	struct conn *c, *t;
	char	 buf[64];
	int	 n = 0;

	if (ch->nstaged > 0) {
		n = ch->nstaged;
		TAILQ_REMOVE(&p->channels->staging, ch, stage_entry);
		ch->active -= n;
		ch->requests -= n;
		ch->nstaged = 0;
		ch->staged_bytes = 0;
		acceptq_requeue(p, &ch->staged, n);
		TAILQ_INIT(&ch->staged);
	}
	if (ch->peer >= 0) {
		n += pull_back(p, ch);
		close(ch->peer);
		ch->peer = -1;
	}
	if (ch->fd >= 0) {
		(void)shutdown(ch->fd, SHUT_RDWR);
		while (fdrecv_msg(ch->fd, buf, sizeof(buf), MSG_DONTWAIT,
		    NULL, NULL, NULL) > 0)
			;
		loop_del(ch->fd);
		close(ch->fd);
		ch->fd = -1;
	}
	RB_FOREACH_SAFE(c, conntree, &ch->inflight, t) {
		RB_REMOVE(conntree, &ch->inflight, c);
		free(c);
	}
	ch->active = 0;
	ch->full = false;
	return n;
}

/*
 * Whether w's process still holds its end of the channel: the master's
 * copy of that end keeps it open, so a worker that closes it is not seen
 * as an end of file.  Where it was last (fd 3 at first); all of its fds
 * if it is not there.  When it cannot tell (no access; an exiting process
 * has no fds; a /proc of another pid namespace, where that pid is not our
 * child), yes.
 */
static bool
chan_held(struct chan *ch)
{
	char	 path[64], link[64], want[64];
	struct dirent *de;
	pid_t	 pid = ch->w->pid;
	ssize_t	 n;
	DIR	*d;
	bool	 any = false, found = false;

	snprintf(want, sizeof(want), "socket:[%lu]",
	    (unsigned long)ch->peer_ino);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid,
	    ch->peer_fdno);
	if ((n = readlink(path, link, sizeof(link) - 1)) >= 0) {
		link[n] = '\0';
		if (strcmp(link, want) == 0)
			return true;
	} else if (errno != ENOENT)
		return true;
	if (procfs_ppid(pid) != getpid())
		return true;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return true;
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		any = true;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n >= 0) {
			link[n] = '\0';
			if ((found = strcmp(link, want) == 0))
				ch->peer_fdno = atoi(de->d_name);
		}
	}
	closedir(d);
	return found || !any;
}

/* w closed its end while it lives on: as if it had closed the socket. */
static void
chan_lost(struct pool *p, struct chan *ch)
{
	struct worker *w = ch->w;
	int	 n;

	n = chan_close(p, ch);
	if (n > 0) {
		log_info("worker %d (pid %d) closed its channel with %d "
		    "connection%s unread: they go to other workers", w->id,
		    (int)w->pid, n, n == 1 ? "" : "s");
		acceptq_kick_soon(p);
	}
	timer_set(&ch->lost_timer, CHAN_LOST_GRACE);
	pool_worker_idle(p, w);
}

/*
 * The watch over one channel, pure: what a look at it (the bytes the
 * worker has read so far, those still unread, the closes it reported)
 * calls for.  Progress is the worker reading its channel or reporting a
 * connection closed; a channel with nothing unread needs none, unless
 * its worker has stalled already (what waited was taken back).  A
 * stalled worker is sent one connection at a time, so that one that was
 * only slow (or not scheduled) is seen to read again.
 */
void
balance_watch_start(struct chan_watch *cw, uint64_t consumed,
    unsigned long closes, double now)
{
	cw->seen_consumed = consumed;
	cw->seen_closes = closes;
	cw->progress_at = now;
}

int
balance_watch(struct chan_watch *cw, uint64_t consumed, long unread,
    unsigned long closes, double now)
{
	bool	 read = consumed != cw->seen_consumed;
	double	 idle;
	int	 r = 0;

	if (read || closes != cw->seen_closes || (unread == 0 && !cw->stalled))
		balance_watch_start(cw, consumed, closes, now);
	if (cw->stalled && read) {
		/* It read what it was sent since: it reads again. */
		cw->stalled = false;
		r |= WATCH_RESUMED;
	}
	idle = now - cw->progress_at;
	if (unread > 0 && idle >= BALANCE_STALL_GRACE - 0.01) {
		r |= WATCH_PULL;
		if (!cw->stalled)
			r |= WATCH_STALLED;
		cw->stalled = true;
	}
	if (cw->stalled && !cw->recycled &&
	    idle >= BALANCE_STUCK_SECONDS - 0.01) {
		r |= WATCH_RECYCLE;
		cw->recycled = true;
	}
	return r;
}

/* A connection reported closed: true if that ends a stall. */
bool
balance_watch_closed(struct chan_watch *cw, double now)
{
	if (!cw->stalled)
		return false;
	cw->stalled = false;
	cw->progress_at = now;
	return true;
}

/*
 * One look at a worker with connections in flight; true if some were
 * taken back.  What it has read is what was sent, less what was taken
 * back and what is still unread (FIONREAD at its end: the payload bytes
 * queued there).
 */
static bool
watch_worker(struct pool *p, struct chan *ch, double now)
{
	struct worker *w = ch->w;
	int	 inq = 0, n = 0, r;

	if (!chan_held(ch)) {
		chan_lost(p, ch);
		return true;
	}
	if (ioctl(ch->peer, FIONREAD, &inq) < 0 || inq < 0)
		return false;
	r = balance_watch(&ch->watch, ch->sent_bytes - ch->pulled_bytes -
	    (uint64_t)inq, inq, ch->closes, now);
	if (r & WATCH_PULL)
		n = pull_back(p, ch);
	else if (inq == 0)
		/* The last probe was taken back a look ago: another may go. */
		ch->probing = false;
	if (r & WATCH_STALLED)
		log_warnx("worker %d (pid %d) has left %d connection%s unread "
		    "in its channel for %gs: they go to other workers, and it "
		    "gets one at a time until it reads again", w->id,
		    (int)w->pid, n, n == 1 ? "" : "s", BALANCE_STALL_GRACE);
	if (r & WATCH_RESUMED) {
		ch->probing = false;
		log_info("worker %d (pid %d) reads its channel again", w->id,
		    (int)w->pid);
	}
	if ((r & WATCH_RECYCLE) && !w->stop_sent) {
		log_warnx("worker %d (pid %d) has not read its channel for %gs",
		    w->id, (int)w->pid, BALANCE_STUCK_SECONDS);
		pool_recycle(p, w, "stopped reading its channel");
	}
	return n > 0;
}

static void
on_watch(void *arg)
{
	struct pool *p = arg;
	struct worker *w, *tw;
	struct chan *ch;
	double	 now = now_mono();
	bool	 again = false, moved = false;

	if (p->state != POOL_RUNNING)
		return;
	TAILQ_FOREACH_SAFE(w, &p->workers, entry, tw) {
		if ((ch = w->chan) == NULL || ch->fd < 0 ||
		    (ch->active == 0 && !ch->watch.stalled))
			continue;
		if (watch_worker(p, ch, now))
			moved = true;
		if (ch->fd >= 0 && (ch->active > 0 || ch->watch.stalled))
			again = true;
	}
	if (again)
		timer_set(&p->channels->watch_timer, WATCH_TICK);
	if (moved)
		balance_kick(p);
}

/* c's line in a message: {"id":N,"listener":"NAME","peer":"ADDR"}. */
static int
conn_line(const struct pool *p, const struct conn *c, char *buf, size_t len)
{
	int	 n;

	n = snprintf(buf, len, "{\"id\":%lu,\"listener\":\"%s\",\"peer\":"
	    "\"%s\"}", c->id, p->conf->listeners[c->listener].name, c->peer);
	return n < 0 || (size_t)n >= len ? -EMSGSIZE : n;
}

/*
 * Sends what is staged on ch in one message, with payload (len bytes):
 * its length, or -EAGAIN when the channel is full, or another -errno.
 */
static int
send_staged(struct chan *ch, const char *payload, size_t len)
{
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int) * CHAN_BATCH_MAX)];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	struct conn *c;
	size_t	 k = 0;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)payload;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)ch->nstaged);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)ch->nstaged);
	TAILQ_FOREACH(c, &ch->staged, entry)
		memcpy(CMSG_DATA(cm) + k++ * sizeof(int), &c->fd, sizeof(int));
	if (sendmsg(ch->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return errno == EAGAIN || errno == ENOBUFS ? -EAGAIN : -errno;
	return (int)len;
}

/*
 * Closes the master's copies of what was sent, in runs: accept4 gives
 * the lowest free fds, so a batch is mostly one run, one close_range.
 */
static void
close_fds(const int *fds, int n)
{
	int	 i, j;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && fds[j] == fds[j - 1] + 1; j++)
			;
		if (j - i == 1 ||
		    close_range((unsigned)fds[i], (unsigned)fds[j - 1], 0) < 0)
			while (i < j)
				close(fds[i++]);
	}
}

/*
 * What is staged on ch goes out in one message: each connection is the
 * worker's now (the master's copy of the fd goes; the message holds the
 * connection until the worker reads it, or the master takes it back), its
 * record waits for the worker's "closed".  If it cannot go (a full
 * channel is skipped until it drains, a broken one has its worker
 * replaced), the connections go back to the head of the queue; their
 * count is returned.
 */
static int
chan_flush(struct pool *p, struct chan *ch, const char *payload, size_t len)
{
	struct worker *w = ch->w;
	struct conn *c;
	int	 fds[CHAN_BATCH_MAX];
	int	 r = -EPIPE, n = ch->nstaged, k = 0;

	if (n == 0)
		return 0;
	TAILQ_REMOVE(&p->channels->staging, ch, stage_entry);
	if (ch->fd >= 0)
		r = send_staged(ch, payload, len);
	ch->nstaged = 0;
	ch->staged_bytes = 0;
	if (r > 0) {
		if (ch->active == n && !ch->watch.stalled)
			/* Nothing was in flight: the clock starts now. */
			balance_watch_start(&ch->watch, ch->sent_bytes -
			    ch->pulled_bytes, ch->closes, now_mono());
		ch->sent_bytes += (uint64_t)r;
		while ((c = TAILQ_FIRST(&ch->staged)) != NULL) {
			TAILQ_REMOVE(&ch->staged, c, entry);
			fds[k++] = c->fd;
			c->fd = -1;
			RB_INSERT(conntree, &ch->inflight, c);
		}
		close_fds(fds, k);
		if (!p->channels->watch_timer.armed)
			timer_set(&p->channels->watch_timer, WATCH_TICK);
		if (p->conf->max_requests > 0 &&
		    ch->requests >= ch->max_requests)
			pool_recycle(p, w, "served its --max-requests");
		return 0;
	}
	ch->active -= n;
	ch->requests -= n;
	if (ch->watch.stalled)
		ch->probing = false;
	acceptq_requeue(p, &ch->staged, n);
	TAILQ_INIT(&ch->staged);
	if (ch->fd < 0)
		return n;
	if (r == -EAGAIN) {
		/*
		 * A busy worker's channel fills too; one that stops
		 * reading is told by the watch.
		 */
		log_debug("worker %d (pid %d): its channel is full", w->id,
		    (int)w->pid);
		ch->full = true;
		loop_mod(ch->fd, EPOLLIN | EPOLLOUT);
		return n;
	}
	log_warnx("worker %d (pid %d): cannot pass a connection: %s", w->id,
	    (int)w->pid, strerror(-r));
	/* Its end was shut: the channel is broken. */
	ch->garbage = GARBAGE_LIMIT;
	pool_recycle(p, w, "cannot be passed connections");
	return n;
}

/*
 * Gives c (out of the queue) to w, a balancer's pick: it is staged for
 * w's next message, which goes when it holds w's batch (at once for a
 * version-1 worker) or at chan_flush_all.  It counts as w's from now on,
 * so that the balancer's next pick sees it.  0: c is no longer the
 * caller's (sent, staged, or back in the queue with what was staged);
 * -errno: it is, and w is not eligible any more.
 */
int
chan_give(struct pool *p, struct worker *w, struct conn *c)
{
	struct chan *ch = w->chan;
	char	 line[CONN_LINE_MAX], *at;
	int	 n;

	/* Version 2: the line goes after those staged, one a line. */
	at = ch->pay != NULL ? ch->pay + ch->staged_bytes +
	    (ch->nstaged > 0) : line;
	if ((n = conn_line(p, c, at, CONN_LINE_MAX)) < 0) {
		log_warnx("connection %lu: its message is too long", c->id);
		return n;
	}
	if (ch->nstaged == 0)
		TAILQ_INSERT_TAIL(&p->channels->staging, ch, stage_entry);
	else
		ch->pay[ch->staged_bytes++] = '\n';
	TAILQ_INSERT_TAIL(&ch->staged, c, entry);
	ch->nstaged++;
	ch->staged_bytes += (size_t)n;
	ch->active++;
	ch->requests++;
	if (ch->watch.stalled)
		/* A probe: if it is read, the worker is back. */
		ch->probing = true;
	if (ch->pay == NULL)
		chan_flush(p, ch, line, (size_t)n);
	else if (ch->nstaged >= ch->batch ||
	    ch->staged_bytes + 1 + CONN_LINE_MAX > CHAN_BATCH_BYTES)
		chan_flush(p, ch, ch->pay, ch->staged_bytes);
	return 0;
}

/* Every message still staged goes out: how many went back to the queue. */
int
chan_flush_all(struct pool *p)
{
	struct chan *ch;
	int	 n = 0;

	if (p->channels == NULL)
		return 0;
	while ((ch = TAILQ_FIRST(&p->channels->staging)) != NULL)
		n += chan_flush(p, ch, ch->pay, ch->staged_bytes);
	return n;
}

/*
 * The form every worker library sends, {"type":"closed","id":N} with N of
 * at most 18 digits, read without json-c: that message comes once per
 * connection, and a json-c parse (a tokener, a locale, objects) costs more
 * than the rest of its handling.  0 and *id set when buf is exactly that;
 * -1 for anything else, which then goes through json-c.
 */
static int
parse_closed_fast(const char *buf, size_t len, long long *id)
{
	static const char prefix[] = "{\"type\":\"closed\",\"id\":";
	const size_t plen = sizeof(prefix) - 1;
	long long v = 0;
	size_t	 i;

	if (len < plen + 2 || len > plen + 19 || buf[len - 1] != '}' ||
	    memcmp(buf, prefix, plen) != 0)
		return -1;
	if (buf[plen] == '0' && len != plen + 2)
		return -1;	/* a leading zero is not JSON */
	for (i = plen; i < len - 1; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		v = v * 10 + (buf[i] - '0');
	}
	*id = v;
	return 0;
}

/* The whole of buf as one JSON value, or NULL. */
static json_object *
parse_whole(const char *buf, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	json_object *o;

	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o != NULL && json_tokener_get_parse_end(tok) < len) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* An integer member of o in [min, max], or -1. */
static long long
int_member(json_object *o, const char *key, long long min, long long max)
{
	json_object *v;
	long long n;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	n = json_object_get_int64(v);
	return n >= min && n <= max ? n : -1;
}

/*
 * A message from a worker: {"type":"closed","id":N} (0, *id = N),
 * {"type":"ready"} (1), {"type":"hello","version":V,"batch":K} with V >= 2
 * (2, *id = K, at most 253: the worker reads version 2's messages of up to
 * K fds; a newer V is read as 2) or with V = 1 (3: it stays version 1).
 * -EINVAL for anything else.
 */
int
balance_parse_message(const char *buf, size_t len, long long *id)
{
	json_object *o, *t, *v;
	const char *type;
	long long k, ver;
	int	 r = -EINVAL;

	if (len == 0 || len > CHAN_MSG_MAX)
		return -EINVAL;
	if (parse_closed_fast(buf, len, id) == 0)
		return 0;
	if ((o = parse_whole(buf, len)) == NULL)
		return -EINVAL;
	if (json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "type", &t) &&
	    json_object_is_type(t, json_type_string)) {
		type = json_object_get_string(t);
		if (strcmp(type, "ready") == 0)
			r = 1;
		else if (strcmp(type, "closed") == 0 &&
		    json_object_object_get_ex(o, "id", &v) &&
		    json_object_is_type(v, json_type_int)) {
			*id = json_object_get_int64(v);
			r = 0;
		} else if (strcmp(type, "hello") == 0 &&
		    (ver = int_member(o, "version", 1, INT_MAX)) > 0 &&
		    (k = int_member(o, "batch", 1, LLONG_MAX)) > 0) {
			/*
			 * A newer library says the newest version it reads:
			 * 2 is what this master speaks; a larger batch than
			 * a message can carry is the largest that can.
			 */
			*id = k < CHAN_BATCH_MAX ? k : CHAN_BATCH_MAX;
			r = ver == 1 ? 3 : 2;
		}
	}
	json_object_put(o);
	return r;
}

/*
 * A hello: the worker reads version 2, batches of up to k.  Sent at any
 * time (a second one changes k); what was sent before is version 1's,
 * which is version 2's message of one fd.
 */
static void
chan_hello(struct pool *p, struct chan *ch, int k)
{
	(void)p;
	ch->garbage = 0;
	ch->v2 = true;
	if (ch->pay == NULL && k > 1)
		ch->pay = xcalloc(1, CHAN_BATCH_BYTES);
	ch->batch = k;
	log_debug("worker %d (pid %d) speaks version 2: up to %d "
	    "connection%s a message", ch->w->id, (int)ch->w->pid, k,
	    k == 1 ? "" : "s");
}

/*
 * A message that is not one the protocol has: logged once per run of
 * them; while the worker holds connections it gets no more until a good
 * message comes (a "closed" of one of them), and it is replaced (and no
 * longer read: a flood costs the master nothing) if GARBAGE_LIMIT come in
 * a row.  One that holds none has nothing good to send: it is given
 * connections again, or a single bad message would take it out of the
 * pool for good while it counts as ready.
 */
static void
chan_garbage(struct pool *p, struct chan *ch, const char *what)
{
	struct worker *w = ch->w;

	if (ch->garbage++ == 0)
		log_warnx("worker %d (pid %d) %s: no more connections while "
		    "it holds one, until it behaves", w->id, (int)w->pid, what);
	if (ch->garbage == GARBAGE_LIMIT) {
		ch->muted = true;
		loop_mod(ch->fd, 0);
		pool_recycle(p, w, "kept sending garbage");
	}
}

/*
 * {"type":"closed","id":N}: valid only for a connection w holds (true);
 * the caller kicks the queue.
 */
static bool
chan_closed(struct pool *p, struct chan *ch, long long id)
{
	struct worker *w = ch->w;
	struct conn key, *c = NULL;
	char	 what[96];

	key.id = (unsigned long)id;
	if (id > 0)
		c = RB_FIND(conntree, &ch->inflight, &key);
	if (c == NULL) {
		snprintf(what, sizeof(what), "reported connection %lld "
		    "closed, which it does not hold", id);
		chan_garbage(p, ch, what);
		return false;
	}
	RB_REMOVE(conntree, &ch->inflight, c);
	free(c);
	ch->garbage = 0;
	ch->closes++;
	if (balance_watch_closed(&ch->watch, now_mono())) {
		ch->probing = false;
		log_info("worker %d (pid %d) reported a connection closed: "
		    "it gets connections again", w->id, (int)w->pid);
	}
	if (ch->active > 0 && --ch->active == 0)
		pool_worker_idle(p, w);
	return true;
}

/*
 * One message from a worker (a version-2 worker's may hold several, one a
 * line): true if a connection was reported closed.
 */
static bool
chan_message(struct pool *p, struct chan *ch, char *buf, size_t len)
{
	char	*line = buf, *end = buf + len, *nl;
	long long id;
	bool	 closed = false;
	int	 r;

	for (; line <= end && ch->fd >= 0 && !ch->muted; line = nl + 1) {
		nl = ch->v2 ? memchr(line, '\n', (size_t)(end - line)) : NULL;
		if (nl == NULL)
			nl = end;
		r = balance_parse_message(line, (size_t)(nl - line), &id);
		if (r < 0) {
			chan_garbage(p, ch, "sent a message that is not "
			    "{\"type\":\"closed\",\"id\":N}, "
			    "{\"type\":\"ready\"} or a hello");
			break;
		}
		if (r == 2)
			chan_hello(p, ch, (int)id);
		else if (r == 3)
			ch->garbage = 0;	/* a hello of version 1's */
		else if (r == 1) {
			ch->garbage = 0;
			pool_worker_notify(p, ch->w, "READY", "1");
			closed = true;	/* it may be eligible now */
		} else if (chan_closed(p, ch, id))
			closed = true;
	}
	return closed;
}

static void
chan_event(int fd, uint32_t ev, void *arg)
{
	struct chan *ch = arg;		/* lives while its fd is watched */
	struct pool *p = ch->pool;
	char	 buf[CHAN_MSG_MAX + 1];
	bool	 kick = false;
	ssize_t	 n;
	int	 k, flags;

	if (ev & EPOLLOUT) {
		ch->full = false;
		loop_mod(fd, ch->muted ? 0 : EPOLLIN);
		kick = true;
	}
	for (k = 0; k < 256 && ch->fd == fd && !ch->muted; k++) {
		/*
		 * The kernel refuses fds a worker sends (fdrecv_refuse);
		 * where it cannot, fdrecv_msg disposes of them.
		 */
		flags = 0;
		n = fdrecv_msg(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT, NULL,
		    NULL, &flags);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n == 0 && ch->peer >= 0) {
			/*
			 * The master holds the worker's end too: not its end
			 * closing, but a message of no bytes.
			 */
			chan_garbage(p, ch, "sent an empty message");
			continue;
		}
		if (n <= 0) {
			/* An error (or the end, once the peer is gone). */
			chan_lost(p, ch);
			break;
		}
		if (flags & MSG_TRUNC)
			chan_garbage(p, ch, "sent a message that is not "
			    "{\"type\":\"closed\",\"id\":N}, "
			    "{\"type\":\"ready\"} or a hello");
		else if (chan_message(p, ch, buf, (size_t)n))
			kick = true;
	}
	/* Once for all that was reported closed. */
	if (kick)
		balance_kick(p);
}

/*
 * A new worker's channel: returns the worker's end (for fd 3) and keeps
 * the master's end, and a copy of the worker's end, in w->chan.
 */
int
balance_worker_channel(struct pool *p, struct worker *w, int *child_fd)
{
	struct chan *ch;
	struct stat st;
	int	 sv[2], peer = -1, sndbuf = CHAN_SNDBUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Workers have no business sending fds: the kernel refuses them. */
	(void)fdrecv_refuse(sv[0]);
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf));
	set_nonblock(sv[0], true);
	ch = xcalloc(1, sizeof(*ch));
	if (fstat(sv[1], &st) < 0 ||
	    (peer = fcntl(sv[1], F_DUPFD_CLOEXEC, 3)) < 0 ||
	    loop_add(sv[0], EPOLLIN, chan_event, ch) < 0) {
		if (peer >= 0)
			close(peer);
		close(sv[0]);
		close(sv[1]);
		free(ch);
		return -EIO;
	}
	ch->pool = p;
	ch->w = w;
	ch->fd = sv[0];
	ch->peer = peer;
	ch->peer_ino = st.st_ino;
	ch->peer_fdno = 3;
	RB_INIT(&ch->inflight);
	TAILQ_INIT(&ch->staged);
	ch->batch = 1;
	timer_init(&ch->lost_timer, on_lost_timer, ch);
	if (p->conf->max_requests > 0)
		ch->max_requests = p->conf->max_requests +
		    (p->conf->max_requests_jitter > 0 ? (long)arc4random_uniform(
		    (uint32_t)(p->conf->max_requests_jitter + 1)) : 0);
	w->chan = ch;
	*child_fd = sv[1];
	return 0;
}

/*
 * The worker is gone: what it took is gone with it; what it never read
 * goes to other workers (from a timer: this runs inside pool.c's reaping).
 */
void
balance_worker_gone(struct pool *p, struct worker *w)
{
	struct chan *ch = w->chan;
	int	 n;

	if (ch == NULL)
		return;
	timer_cancel(&ch->lost_timer);
	n = chan_close(p, ch);
	free(ch->pay);
	free(ch);
	w->chan = NULL;
	if (n == 0)
		return;
	if (p->state == POOL_RUNNING) {
		log_info("worker %d (pid %d) left %d connection%s unread: "
		    "they go to other workers", w->id, (int)w->pid, n,
		    n == 1 ? "" : "s");
		acceptq_kick_soon(p);
	} else
		acceptq_flush(p);
}

/*
 * `wpool upgrade`: w's channel as the next image adopts it (chan_adopt):
 * both ends (their fds survive the exec), the records of what is in
 * flight (the ids the worker will report closed, what least-conn counts),
 * its hello and its counters.  Nothing is staged: the caller flushed.
 * What the worker sends meanwhile waits in the channel for the next image.
 */
json_object *
chan_export(struct pool *p, struct worker *w)
{
	struct chan *ch = w->chan;
	json_object *o, *a, *e;
	struct conn *c;

	(void)p;
	if (ch == NULL || ch->fd < 0 || ch->peer < 0)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "fd", json_object_new_int(ch->fd));
	json_object_object_add(o, "peer", json_object_new_int(ch->peer));
	json_object_object_add(o, "peer_ino",
	    json_object_new_int64((int64_t)ch->peer_ino));
	json_object_object_add(o, "peer_fdno",
	    json_object_new_int(ch->peer_fdno));
	json_object_object_add(o, "requests",
	    json_object_new_int64(ch->requests));
	json_object_object_add(o, "max_requests",
	    json_object_new_int64(ch->max_requests));
	json_object_object_add(o, "sent_bytes",
	    json_object_new_int64((int64_t)ch->sent_bytes));
	json_object_object_add(o, "pulled_bytes",
	    json_object_new_int64((int64_t)ch->pulled_bytes));
	json_object_object_add(o, "closes",
	    json_object_new_int64((int64_t)ch->closes));
	json_object_object_add(o, "garbage", json_object_new_int(ch->garbage));
	json_object_object_add(o, "muted", json_object_new_boolean(ch->muted));
	json_object_object_add(o, "v2", json_object_new_boolean(ch->v2));
	json_object_object_add(o, "batch", json_object_new_int(ch->batch));
	a = json_object_new_array();
	RB_FOREACH(c, conntree, &ch->inflight) {
		e = json_object_new_object();
		json_object_object_add(e, "id",
		    json_object_new_int64((int64_t)c->id));
		json_object_object_add(e, "listener",
		    json_object_new_int(c->listener));
		json_object_object_add(e, "peer",
		    json_object_new_string(c->peer));
		json_object_object_add(e, "iphash",
		    json_object_new_int64(c->iphash));
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "inflight", a);
	return o;
}

static long long
jget(json_object *o, const char *k, long long dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_boolean)))
		return dflt;
	return json_object_get_int64(v);
}

/*
 * The next image's side of chan_export: w (adopted, ready) gets its
 * channel back as it was.  0, or -errno with nothing kept.
 */
int
chan_adopt(struct pool *p, struct worker *w, json_object *o)
{
	struct chan *ch;
	struct conn *c;
	json_object *a, *e, *v;
	int	 fd = (int)jget(o, "fd", -1), peer = (int)jget(o, "peer", -1);
	size_t	 i;

	if (p->channels == NULL || w->chan != NULL || fd < 0 || peer < 0)
		return -EINVAL;
	set_cloexec(fd, true);
	set_cloexec(peer, true);
	ch = xcalloc(1, sizeof(*ch));
	ch->pool = p;
	ch->w = w;
	ch->fd = fd;
	ch->peer = peer;
	ch->peer_ino = (ino_t)jget(o, "peer_ino", 0);
	ch->peer_fdno = (int)jget(o, "peer_fdno", 3);
	ch->requests = (long)jget(o, "requests", 0);
	ch->max_requests = (long)jget(o, "max_requests", 0);
	ch->sent_bytes = (uint64_t)jget(o, "sent_bytes", 0);
	ch->pulled_bytes = (uint64_t)jget(o, "pulled_bytes", 0);
	ch->closes = (unsigned long)jget(o, "closes", 0);
	ch->garbage = (int)jget(o, "garbage", 0);
	ch->muted = jget(o, "muted", 0) != 0;
	ch->v2 = jget(o, "v2", 0) != 0;
	ch->batch = (int)jget(o, "batch", 1);
	if (ch->batch < 1 || ch->batch > CHAN_BATCH_MAX)
		ch->batch = 1;
	if (ch->v2 && ch->batch > 1)
		ch->pay = xcalloc(1, CHAN_BATCH_BYTES);
	RB_INIT(&ch->inflight);
	TAILQ_INIT(&ch->staged);
	timer_init(&ch->lost_timer, on_lost_timer, ch);
	if (json_object_object_get_ex(o, "inflight", &a) &&
	    json_object_is_type(a, json_type_array))
		for (i = 0; i < json_object_array_length(a); i++) {
			e = json_object_array_get_idx(a, i);
			c = xcalloc(1, sizeof(*c));
			c->fd = -1;
			c->id = (unsigned long)jget(e, "id", 0);
			c->listener = (int)jget(e, "listener", 0);
			c->iphash = (uint32_t)jget(e, "iphash", 0);
			if (json_object_object_get_ex(e, "peer", &v) &&
			    json_object_is_type(v, json_type_string))
				strlcpy(c->peer, json_object_get_string(v),
				    sizeof(c->peer));
			if (c->id == 0 ||
			    RB_INSERT(conntree, &ch->inflight, c) != NULL) {
				free(c);
				continue;
			}
			ch->active++;
		}
	if (loop_add(fd, ch->muted ? 0 : EPOLLIN, chan_event, ch) < 0) {
		struct conn *t;

		RB_FOREACH_SAFE(c, conntree, &ch->inflight, t) {
			RB_REMOVE(conntree, &ch->inflight, c);
			free(c);
		}
		free(ch->pay);
		free(ch);
		return -EIO;
	}
	w->chan = ch;
	w->chan_ino = (uint64_t)ch->peer_ino;
	if (ch->active > 0 && !p->channels->watch_timer.armed)
		timer_set(&p->channels->watch_timer, WATCH_TICK);
	return 0;
}

/* Every staged message out now (`wpool upgrade` hands over no stage). */
int
balance_flush(struct pool *p)
{
	return chan_flush_all(p);
}
