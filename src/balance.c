/*
 * balance.c: the modes where the master accepts.  In balance mode it
 * holds accepted connections in a bounded queue and passes each to the
 * worker a balancer picks, over the worker's SOCK_SEQPACKET channel with
 * SCM_RIGHTS; in inetd mode it runs the command once per connection.
 * Owns the accepted connections (queued, or in flight to a worker until it
 * reports them closed), the queue, both ends of every channel and the
 * inetd children; asks pool.c for anything about workers.
 */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/tree.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <json-c/json.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* Accepts per listener per wake-up, so one busy port cannot starve. */
#define ACCEPT_BURST	64
#define CHAN_MSG_MAX	1024
/* Garbage messages a worker may send before it is restarted. */
#define GARBAGE_LIMIT	16
#define RING_VNODES	64
/* A channel closed by a live worker: it is broken after this grace. */
#define CHAN_LOST_GRACE		1.0
/*
 * How much a channel holds unread: its send buffer, of which each message
 * takes some 768 bytes (the kernel doubles the value), so about 40.  A
 * worker that does not read gets that much at most; one that does is
 * given more as fast as it reads.
 */
#define CHAN_SNDBUF		16384
/* Connections one worker may hold at once (sent, not reported closed). */
#define WORKER_MAX_INFLIGHT	1024
/*
 * Workers with connections in flight are looked at every WATCH_TICK; one
 * that stalls (wpool.h: BALANCE_STALL_GRACE, BALANCE_STUCK_SECONDS) has
 * what waits unread in its channel taken back, then is replaced.
 */
#define WATCH_TICK		0.5

struct conn {
	TAILQ_ENTRY(conn) entry;	/* in the queue */
	RB_ENTRY(conn) node;		/* in flight: its worker's tree */
	int	 fd;			/* -1 once a worker has it */
	unsigned long id;
	int	 listener;
	bool	 returned;		/* taken back from a worker's channel */
	char	 peer[64];
	uint32_t iphash;
};
TAILQ_HEAD(connq, conn);
RB_HEAD(conntree, conn);

/*
 * A worker's side of balance mode.  The master keeps both ends of the
 * channel: w->chan_fd to talk, and peer, the worker's own end (its fd 3),
 * only to take back what waits there unread.  The kernel queues a message
 * at the receiving end until one read takes it whole, so a read on peer
 * gets exactly the connections the worker never took, atomically even
 * while it runs; and holding peer keeps them queued when the worker
 * closes its end or dies, instead of the kernel closing them.
 */
struct bchan {
	struct pool *pool;		/* its worker's */
	int	 peer;
	ino_t	 peer_ino;		/* to find it among the worker's fds, */
	int	 peer_fdno;		/* where it was last seen (3) */
	struct conntree inflight;	/* sent and not reported closed */
	uint64_t sent_bytes;		/* payload sent on the channel, */
	uint64_t pulled_bytes;		/* and taken back: the rest minus */
	unsigned long closes;		/* what is unread has been read */
	struct chan_watch watch;
	bool	 probing;		/* stalled: one sent, to see it read */
	bool	 muted;			/* kept sending garbage: not read */
};

static int
conn_cmp(const struct conn *a, const struct conn *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

/* RB_GENERATE_STATIC's __unused is off in libbsd (it clashes with Linux). */
RB_GENERATE_INTERNAL(conntree, conn, node, conn_cmp,
    __attribute__((__unused__)) static)

struct ichild {
	TAILQ_ENTRY(ichild) entry;
	pid_t	 pid;
	char	 peer[64];
	int	 listener;
	double	 started;
};

static bool	 started;		/* balance_init ran */
static struct connq queue = TAILQ_HEAD_INITIALIZER(queue);
static TAILQ_HEAD(, ichild) ichildren = TAILQ_HEAD_INITIALIZER(ichildren);
static int	 qlen;
static int	 nichildren;
static bool	 accepting;
static unsigned long next_id;
static unsigned	 rr_cursor;
static struct timer emfile_timer;
static struct timer watch_timer;	/* workers with connections in flight */
static struct timer kick_timer;		/* a kick out of pool.c's way */

/* ip-hash: a ring of virtual nodes per slot id, sorted by hash. */
struct vnode {
	uint32_t hash;
	int	 slot;
};
static struct vnode *ring;
static size_t	 nring;

static uint32_t
fnv1a(const void *data, size_t len, uint32_t h)
{
	const unsigned char *p = data;
	size_t	 i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	/* A final mix so that nearby keys spread over the ring. */
	h ^= h >> 16;
	h *= 0x7feb352du;
	h ^= h >> 15;
	h *= 0x846ca68bu;
	h ^= h >> 16;
	return h;
}

static int
vnode_cmp(const void *a, const void *b)
{
	const struct vnode *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Rebuilt when the target changes; slots keep their points on the ring. */
void
balance_ring_build(int target)
{
	int	 s, v;
	size_t	 n = 0;

	free(ring);
	ring = xcalloc((size_t)target * RING_VNODES, sizeof(*ring));
	for (s = 0; s < target; s++)
		for (v = 0; v < RING_VNODES; v++) {
			uint32_t key[2] = { (uint32_t)s, (uint32_t)v };

			ring[n].hash = fnv1a(key, sizeof(key), 2166136261u);
			ring[n++].slot = s;
		}
	qsort(ring, n, sizeof(*ring), vnode_cmp);
	nring = n;
}

/*
 * The slot that owns key on the ring, skipping slots for which ok() says
 * no: only a missing worker's clients move, to the next point clockwise.
 */
int
balance_ring_lookup(uint32_t key, bool (*ok)(int, void *), void *arg)
{
	size_t	 lo = 0, hi = nring, i, k;

	if (nring == 0)
		return -1;
	while (lo < hi) {
		size_t	 mid = (lo + hi) / 2;

		if (ring[mid].hash < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (k = 0; k < nring; k++) {
		i = (lo + k) % nring;
		if (ok == NULL || ok(ring[i].slot, arg))
			return ring[i].slot;
	}
	return -1;
}

static bool
eligible(const struct pool *p, const struct worker *w)
{
	return w != NULL && w->state == W_READY &&
	    !w->stop_sent && w->chan_fd >= 0 && !w->chan_full &&
	    w->garbage == 0 && !w->recycle_pending && w->bal != NULL &&
	    (!w->bal->watch.stalled || !w->bal->probing) && !w->bal->muted &&
	    w->active < WORKER_MAX_INFLIGHT &&
	    (p->conf->max_requests == 0 || w->requests < w->max_requests);
}

/* A channel that closed while its process lives on: it is replaced. */
static void
on_chan_timer(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->bal->pool;	/* the timer lives with w->bal */

	if (w->stop_sent || p->state != POOL_RUNNING)
		return;
	if (w->chan_fd < 0)
		pool_recycle(p, w, "closed its connection channel");
}

/* The ring's ok(): arg is the pool. */
static bool
slot_ok(int id, void *arg)
{
	const struct pool *p = arg;

	return id < p->target && eligible(p, p->slots[id].cur);
}

static struct worker *
pick_ip_hash(struct pool *p, const struct conn *c)
{
	int	 id = balance_ring_lookup(c->iphash, slot_ok, p);

	return id >= 0 ? p->slots[id].cur : NULL;
}

static void
resize_ip_hash(struct pool *p)
{
	balance_ring_build(p->target);
}

static struct worker *
pick_round_robin(struct pool *p, const struct conn *c)
{
	int	 n = p->target, i, id;

	(void)c;
	for (i = 0; i < n; i++) {
		id = (int)((rr_cursor + (unsigned)i) % (unsigned)n);
		if (eligible(p, p->slots[id].cur)) {
			rr_cursor = (unsigned)id + 1;
			return p->slots[id].cur;
		}
	}
	return NULL;
}

static struct worker *
pick_least_conn(struct pool *p, const struct conn *c)
{
	struct worker *best = NULL, *w;
	int	 n = p->target, i, id;

	(void)c;
	/* Ties rotate: the scan starts after the last pick. */
	for (i = 0; i < n; i++) {
		id = (int)((rr_cursor + (unsigned)i) % (unsigned)n);
		w = p->slots[id].cur;
		if (eligible(p, w) && (best == NULL || w->active < best->active))
			best = w;
	}
	if (best != NULL)
		rr_cursor = (unsigned)best->id + 1;
	return best;
}

/*
 * The balancers, one line each: the name (--balancer, the config file,
 * status, --help, the docs and completions checks all read it from
 * balancer_names below, through the option table), the function that
 * picks the worker for a connection (NULL: none eligible, it waits in the
 * queue), and the one called when the number of slots changes (NULL:
 * nothing to do).  conf.balancer is the index of its line; the first is
 * the default.  Adding one is a line here plus its pick function.
 */
#define BALANCERS(X)						\
	X("least-conn",	 pick_least_conn,	NULL)		\
	X("round-robin", pick_round_robin,	NULL)		\
	X("ip-hash",	 pick_ip_hash,		resize_ip_hash)

struct balancer {
	const char *name;
	struct worker *(*pick)(struct pool *, const struct conn *);
	void	(*resize)(struct pool *);
};

#define BALANCER_ENTRY(name, pick, resize)	{ name, pick, resize },
#define BALANCER_NAME(name, pick, resize)	name,
static const struct balancer balancers[] = { BALANCERS(BALANCER_ENTRY) };
const char *const balancer_names[] = { BALANCERS(BALANCER_NAME) NULL };
#undef BALANCER_ENTRY
#undef BALANCER_NAME

#define NBALANCERS	(sizeof(balancers) / sizeof(balancers[0]))

static const struct balancer *
balancer_of(const struct pool *p)
{
	size_t	 b = (size_t)p->conf->balancer;

	return b < NBALANCERS ? &balancers[b] : &balancers[0];
}

static struct worker *
pick(struct pool *p, const struct conn *c)
{
	return balancer_of(p)->pick(p, c);
}

/*
 * The pool's target changed (or was first set): the balancer that keeps
 * state per slot (ip-hash's ring) rebuilds it.  Nothing outside balance
 * mode.
 */
void
balance_pool_resized(struct pool *p)
{
	const struct balancer *b;

	if (p->conf->mode != MODE_BALANCE)
		return;
	b = balancer_of(p);
	if (b->resize != NULL)
		b->resize(p);
}

/*
 * One taken back from a worker's channel may have been seen by it (a
 * MSG_PEEK receives a copy of the fd): it is reset, so that no lingering
 * close the worker set up can hold the master.
 */
static void
conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		if (c->returned)
			fdrecv_dispose(c->fd);
		else
			close(c->fd);
	}
	free(c);
}

static void
queue_flush(struct pool *p)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&queue)) != NULL) {
		TAILQ_REMOVE(&queue, c, entry);
		conn_close(c);
	}
	qlen = 0;
	p->queue_len = 0;
}

/* The peer's address for the message, and its hash for ip-hash. */
static void
conn_describe(struct conn *c, const struct sockaddr_storage *ss,
    socklen_t sl)
{
	if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)
		sockaddr_format(ss, sl, c->peer, sizeof(c->peer));
	else
		strlcpy(c->peer, "unix", sizeof(c->peer));
	if (ss->ss_family == AF_INET)
		c->iphash = fnv1a(&((const struct sockaddr_in *)ss)->
		    sin_addr, 4, 2166136261u);
	else if (ss->ss_family == AF_INET6)
		c->iphash = fnv1a(&((const struct sockaddr_in6 *)ss)->
		    sin6_addr, 16, 2166136261u);
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
 * Takes back every connection still unread in w's channel and puts them
 * at the head of the queue, oldest first.  Only the master writes to the
 * worker's end, so what arrives there is its own messages, one fd each.
 */
static int
pull_back(struct pool *p, struct worker *w)
{
	struct bchan *b = w->bal;
	struct connq back = TAILQ_HEAD_INITIALIZER(back);
	char	 buf[CHAN_MSG_MAX + 1];
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int) * FDRECV_MAX_FDS)];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	struct conn key, *c;
	ssize_t	 n;
	size_t	 i, nf;
	int	 fd, f, k = 0;

	if (b == NULL || b->peer < 0)
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
		n = recvmsg(b->peer, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		fd = -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < nf; i++) {
				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int),
				    sizeof(int));
				if (fd < 0)
					fd = f;
				else
					fdrecv_dispose(f);
			}
		}
		b->pulled_bytes += (uint64_t)n;
		if (fd < 0)
			continue;
		buf[n] = '\0';
		/* The master's own message: {"id":N,"listener":... */
		key.id = strtoul(buf + 6, NULL, 10);
		if ((c = RB_FIND(conntree, &b->inflight, &key)) != NULL) {
			RB_REMOVE(conntree, &b->inflight, c);
			if (w->active > 0)
				w->active--;
		} else
			c = conn_rebuild(p, fd, key.id, buf);
		c->fd = fd;
		c->returned = true;
		if (w->requests > 0)
			w->requests--;
		TAILQ_INSERT_TAIL(&back, c, entry);
		k++;
	}
	while ((c = TAILQ_LAST(&back, connq)) != NULL) {
		TAILQ_REMOVE(&back, c, entry);
		TAILQ_INSERT_HEAD(&queue, c, entry);
		qlen++;
	}
	p->queue_len = qlen;
	return k;
}

/*
 * Ends w's channel: what waits unread in it goes back to the queue (the
 * count is returned), what the worker took is its own and forgotten.
 * Then the master's end is shut, so that nothing more arrives while what
 * the worker sent is disposed of (fds, where the kernel lets it pass them).
 */
static int
chan_close(struct pool *p, struct worker *w)
{
	struct bchan *b = w->bal;
	struct conn *c, *t;
	char	 buf[64];
	int	 n = 0;

	if (b != NULL && b->peer >= 0) {
		n = pull_back(p, w);
		close(b->peer);
		b->peer = -1;
	}
	if (w->chan_fd >= 0) {
		(void)shutdown(w->chan_fd, SHUT_RDWR);
		while (fdrecv_msg(w->chan_fd, buf, sizeof(buf), MSG_DONTWAIT,
		    NULL, NULL, NULL) > 0)
			;
		loop_del(w->chan_fd);
		close(w->chan_fd);
		w->chan_fd = -1;
	}
	if (b != NULL)
		RB_FOREACH_SAFE(c, conntree, &b->inflight, t) {
			RB_REMOVE(conntree, &b->inflight, c);
			free(c);
		}
	w->active = 0;
	w->chan_full = false;
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
chan_held(struct worker *w)
{
	char	 path[64], link[64], want[64];
	struct dirent *de;
	ssize_t	 n;
	DIR	*d;
	bool	 any = false, found = false;

	snprintf(want, sizeof(want), "socket:[%lu]",
	    (unsigned long)w->bal->peer_ino);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)w->pid,
	    w->bal->peer_fdno);
	if ((n = readlink(path, link, sizeof(link) - 1)) >= 0) {
		link[n] = '\0';
		if (strcmp(link, want) == 0)
			return true;
	} else if (errno != ENOENT)
		return true;
	if (procfs_ppid(w->pid) != getpid())
		return true;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)w->pid);
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
				w->bal->peer_fdno = atoi(de->d_name);
		}
	}
	closedir(d);
	return found || !any;
}

/* w closed its end while it lives on: as if it had closed the socket. */
static void
chan_lost(struct pool *p, struct worker *w)
{
	int	 n;

	n = chan_close(p, w);
	if (n > 0) {
		log_info("worker %d (pid %d) closed its channel with %d "
		    "connection%s unread: they go to other workers", w->id,
		    (int)w->pid, n, n == 1 ? "" : "s");
		timer_set(&kick_timer, 0);
	}
	timer_set(&w->chan_timer, CHAN_LOST_GRACE);
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
watch_worker(struct pool *p, struct worker *w, double now)
{
	struct bchan *b = w->bal;
	int	 inq = 0, n = 0, r;

	if (!chan_held(w)) {
		chan_lost(p, w);
		return true;
	}
	if (ioctl(b->peer, FIONREAD, &inq) < 0 || inq < 0)
		return false;
	r = balance_watch(&b->watch, b->sent_bytes - b->pulled_bytes -
	    (uint64_t)inq, inq, b->closes, now);
	if (r & WATCH_PULL)
		n = pull_back(p, w);
	else if (inq == 0)
		/* The last probe was taken back a look ago: another may go. */
		b->probing = false;
	if (r & WATCH_STALLED)
		log_warnx("worker %d (pid %d) has left %d connection%s unread "
		    "in its channel for %gs: they go to other workers, and it "
		    "gets one at a time until it reads again", w->id,
		    (int)w->pid, n, n == 1 ? "" : "s", BALANCE_STALL_GRACE);
	if (r & WATCH_RESUMED) {
		b->probing = false;
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
	double	 now = now_mono();
	bool	 again = false, moved = false;

	if (p->state != POOL_RUNNING)
		return;
	TAILQ_FOREACH_SAFE(w, &p->workers, entry, tw) {
		if (w->bal == NULL || w->chan_fd < 0 ||
		    (w->active == 0 && !w->bal->watch.stalled))
			continue;
		if (watch_worker(p, w, now))
			moved = true;
		if (w->chan_fd >= 0 && (w->active > 0 ||
		    w->bal->watch.stalled))
			again = true;
	}
	if (again)
		timer_set(&watch_timer, WATCH_TICK);
	if (moved)
		balance_kick(p);
}

static void
on_kick(void *arg)
{
	balance_kick(arg);
}

static void	 accept_resume(struct pool *);

/* Hands one connection to w: its payload's length, -EAGAIN when full. */
static int
send_conn(struct pool *p, struct worker *w, struct conn *c)
{
	char	 payload[512];	/* a name of 255, a peer of 63, and the rest */
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	int	 n;

	n = snprintf(payload, sizeof(payload), "{\"id\":%lu,\"listener\":"
	    "\"%s\",\"peer\":\"%s\"}", c->id,
	    p->conf->listeners[c->listener].name, c->peer);
	if (n < 0 || (size_t)n >= sizeof(payload))
		return -EMSGSIZE;
	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	iov.iov_base = payload;
	iov.iov_len = (size_t)n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
	if (sendmsg(w->chan_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return errno == EAGAIN || errno == ENOBUFS ? -EAGAIN : -errno;
	return n;
}

/*
 * c is w's now: the master's copy of the fd goes (the message in the
 * channel holds the connection until the worker reads it, or the master
 * takes it back), its record waits for the worker's "closed".
 */
static void
conn_sent(struct worker *w, struct conn *c, int len)
{
	struct bchan *b = w->bal;

	if (b->watch.stalled)
		/* A probe: if it is read, the worker is back. */
		b->probing = true;
	else if (w->active == 0)
		/* Nothing in flight: the clock starts now. */
		balance_watch_start(&b->watch, b->sent_bytes -
		    b->pulled_bytes, b->closes, now_mono());
	b->sent_bytes += (uint64_t)len;
	close(c->fd);
	c->fd = -1;
	RB_INSERT(conntree, &b->inflight, c);
	w->active++;
	w->requests++;
	if (!watch_timer.armed)
		timer_set(&watch_timer, WATCH_TICK);
}

/* Dispatches queued connections while some worker can take one. */
void
balance_kick(struct pool *p)
{
	struct conn *c;
	struct worker *w;
	int	 r, tries;

	if (!started)
		return;
	if (p->conf->mode == MODE_INETD) {
		/* A larger limit (scale up) lets waiting connections in. */
		if (!accepting && nichildren < p->target)
			accept_resume(p);
		return;
	}
	if (p->conf->mode != MODE_BALANCE)
		return;
	while ((c = TAILQ_FIRST(&queue)) != NULL) {
		for (tries = 0; tries < WPOOL_MAX_WORKERS; tries++) {
			if ((w = pick(p, c)) == NULL)
				goto out;
			if ((r = send_conn(p, w, c)) > 0)
				break;
			if (r == -EAGAIN) {
				/*
				 * Skip it until its channel drains: a busy
				 * worker's channel fills too; one that stops
				 * reading is told by the watch.
				 */
				log_debug("worker %d (pid %d): its channel is "
				    "full", w->id, (int)w->pid);
				w->chan_full = true;
				loop_mod(w->chan_fd, EPOLLIN | EPOLLOUT);
				continue;
			}
			log_warnx("worker %d (pid %d): cannot pass a "
			    "connection: %s", w->id, (int)w->pid,
			    strerror(-r));
			/* Its end was shut: the channel is broken. */
			w->garbage = GARBAGE_LIMIT;
			pool_recycle(p, w, "cannot be passed connections");
		}
		if (tries == WPOOL_MAX_WORKERS)
			break;
		TAILQ_REMOVE(&queue, c, entry);
		qlen--;
		conn_sent(w, c, r);
		if (p->conf->max_requests > 0 && w->requests >=
		    w->max_requests)
			pool_recycle(p, w, "served its --max-requests");
	}
out:
	p->queue_len = qlen;
	if (!accepting && qlen < p->conf->max_queue)
		accept_resume(p);
}

static void
accept_pause(struct pool *p)
{
	size_t	 i;

	for (i = 0; i < p->conf->nlisteners; i++)
		loop_mod(p->conf->listeners[i].fd, 0);
	accepting = false;
}

static void
accept_resume(struct pool *p)
{
	size_t	 i;

	if (p->state != POOL_RUNNING)
		return;
	for (i = 0; i < p->conf->nlisteners; i++)
		loop_mod(p->conf->listeners[i].fd, EPOLLIN);
	accepting = true;
}

static void
on_emfile(void *arg)
{
	struct pool *p = arg;

	if ((p->conf->mode == MODE_BALANCE && qlen < p->conf->max_queue) ||
	    (p->conf->mode == MODE_INETD && nichildren < p->target))
		accept_resume(p);
}

static void	 inetd_spawn(struct pool *, struct conn *);

static void
on_accept(int fd, uint32_t ev, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pool *p = arg;
	struct conn *c;
	int	 cfd, n, li = 0;

	(void)ev;
	while ((size_t)li < p->conf->nlisteners &&
	    p->conf->listeners[li].fd != fd)
		li++;
	for (n = 0; n < ACCEPT_BURST; n++) {
		if (p->conf->mode == MODE_BALANCE &&
		    qlen >= p->conf->max_queue) {
			/* Full: the kernel's backlog holds the rest. */
			accept_pause(p);
			return;
		}
		if (p->conf->mode == MODE_INETD && nichildren >= p->target) {
			accept_pause(p);
			return;
		}
		sl = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warnx("cannot accept: %s; pausing 100 ms",
				    strerror(errno));
				accept_pause(p);
				timer_set(&emfile_timer, 0.1);
			}
			return;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = cfd;
		c->id = ++next_id;
		c->listener = li;
		p->connections_total++;
		conn_describe(c, &ss, sl);
		if (p->conf->mode == MODE_INETD) {
			inetd_spawn(p, c);
			continue;
		}
		TAILQ_INSERT_TAIL(&queue, c, entry);
		qlen++;
		balance_kick(p);
	}
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

/* A message from a worker: {"type":"closed","id":N} or {"type":"ready"}. */
int
balance_parse_message(const char *buf, size_t len, long long *id)
{
	json_object *o, *t, *v;
	const char *type;
	int	 r = -EINVAL;

	if (len == 0 || len > CHAN_MSG_MAX)
		return -EINVAL;
	if (parse_closed_fast(buf, len, id) == 0)
		return 0;
	{
		struct json_tokener *tok = json_tokener_new_ex(8);

		o = json_tokener_parse_ex(tok, buf, (int)len);
		if (o != NULL && json_tokener_get_parse_end(tok) < len) {
			json_object_put(o);
			o = NULL;
		}
		json_tokener_free(tok);
	}
	if (o == NULL)
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
		}
	}
	json_object_put(o);
	return r;
}

/*
 * A message that is not one the protocol has: logged once per run of
 * them; the worker gets no connections until a good message comes, and
 * is replaced (and no longer read: a flood costs the master nothing) if
 * GARBAGE_LIMIT come in a row.
 */
static void
chan_garbage(struct pool *p, struct worker *w, const char *what)
{
	if (w->garbage++ == 0)
		log_warnx("worker %d (pid %d) %s: no more connections until "
		    "it behaves", w->id, (int)w->pid, what);
	if (w->garbage == GARBAGE_LIMIT) {
		w->bal->muted = true;
		loop_mod(w->chan_fd, 0);
		pool_recycle(p, w, "kept sending garbage");
	}
}

/* {"type":"closed","id":N}: valid only for a connection w holds. */
static void
chan_closed(struct pool *p, struct worker *w, long long id)
{
	struct bchan *b = w->bal;
	struct conn key, *c = NULL;
	char	 what[96];

	key.id = (unsigned long)id;
	if (id > 0)
		c = RB_FIND(conntree, &b->inflight, &key);
	if (c == NULL) {
		snprintf(what, sizeof(what), "reported connection %lld "
		    "closed, which it does not hold", id);
		chan_garbage(p, w, what);
		return;
	}
	RB_REMOVE(conntree, &b->inflight, c);
	free(c);
	w->garbage = 0;
	b->closes++;
	if (balance_watch_closed(&b->watch, now_mono())) {
		b->probing = false;
		log_info("worker %d (pid %d) reported a connection closed: "
		    "it gets connections again", w->id, (int)w->pid);
	}
	if (w->active > 0 && --w->active == 0)
		pool_worker_idle(p, w);
	balance_kick(p);
}

static void
chan_event(int fd, uint32_t ev, void *arg)
{
	struct worker *w = arg;
	struct bchan *b = w->bal;	/* set while its fd is watched */
	struct pool *p = b->pool;
	char	 buf[CHAN_MSG_MAX + 1];
	long long id;
	ssize_t	 n;
	int	 k, r, flags;

	if (ev & EPOLLOUT) {
		w->chan_full = false;
		loop_mod(fd, b->muted ? 0 : EPOLLIN);
		balance_kick(p);
		if (w->chan_fd != fd)
			return;
	}
	for (k = 0; k < 256 && !b->muted; k++) {
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
			return;
		if (n <= 0) {
			/*
			 * The master holds the worker's end too, so this is
			 * not the worker closing its own: an error.
			 */
			chan_lost(p, w);
			return;
		}
		r = (flags & MSG_TRUNC) ? -EMSGSIZE :
		    balance_parse_message(buf, (size_t)n, &id);
		if (r < 0) {
			chan_garbage(p, w, "sent a message that is not "
			    "{\"type\":\"closed\",\"id\":N} or "
			    "{\"type\":\"ready\"}");
			continue;
		}
		if (r == 1) {
			w->garbage = 0;
			pool_worker_notify(p, w, "READY", "1");
			balance_kick(p);
		} else
			chan_closed(p, w, id);
		if (w->chan_fd != fd)
			return;
	}
}

/*
 * A new worker's channel: returns the worker's end (for fd 3) and keeps
 * the master's end in w->chan_fd, and a copy of the worker's end.
 */
int
balance_worker_channel(struct pool *p, struct worker *w, int *child_fd)
{
	struct bchan *b;
	struct stat st;
	int	 sv[2], peer = -1, sndbuf = CHAN_SNDBUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Workers have no business sending fds: the kernel refuses them. */
	(void)fdrecv_refuse(sv[0]);
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf));
	set_nonblock(sv[0], true);
	if (fstat(sv[1], &st) < 0 ||
	    (peer = fcntl(sv[1], F_DUPFD_CLOEXEC, 3)) < 0 ||
	    loop_add(sv[0], EPOLLIN, chan_event, w) < 0) {
		if (peer >= 0)
			close(peer);
		close(sv[0]);
		close(sv[1]);
		return -EIO;
	}
	b = xcalloc(1, sizeof(*b));
	b->pool = p;
	b->peer = peer;
	b->peer_ino = st.st_ino;
	b->peer_fdno = 3;
	RB_INIT(&b->inflight);
	w->bal = b;
	w->chan_fd = sv[0];
	*child_fd = sv[1];
	timer_init(&w->chan_timer, on_chan_timer, w);
	if (p->conf->max_requests > 0)
		w->max_requests = p->conf->max_requests +
		    (p->conf->max_requests_jitter > 0 ? (long)arc4random_uniform(
		    (uint32_t)(p->conf->max_requests_jitter + 1)) : 0);
	return 0;
}

/*
 * The worker is gone: what it took is gone with it; what it never read
 * goes to other workers (from a timer: this runs inside pool.c's reaping).
 */
void
balance_worker_gone(struct pool *p, struct worker *w)
{
	int	 n;

	if (w->chan_timer.cb != NULL)
		timer_cancel(&w->chan_timer);
	n = chan_close(p, w);
	free(w->bal);
	w->bal = NULL;
	if (n == 0)
		return;
	if (p->state == POOL_RUNNING) {
		log_info("worker %d (pid %d) left %d connection%s unread: "
		    "they go to other workers", w->id, (int)w->pid, n,
		    n == 1 ? "" : "s");
		timer_set(&kick_timer, 0);
	} else
		queue_flush(p);
}

/* inetd: the command runs with the connection as stdin and stdout. */
static void
inetd_spawn(struct pool *p, struct conn *c)
{
	struct spawn_req req;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ichild *ch;
	char	**env, host[64], lhost[64], *vars[10];
	char	*rp, *lp;
	size_t	 i, n = 0;
	int	 status_fd, k;
	pid_t	 pid;

	strlcpy(host, c->peer, sizeof(host));
	rp = strrchr(host, ':');
	if (rp != NULL)
		*rp++ = '\0';
	lhost[0] = '\0';
	lp = NULL;
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    sockaddr_format(&ss, sl, lhost, sizeof(lhost)) > 0 &&
	    (lp = strrchr(lhost, ':')) != NULL)
		*lp++ = '\0';
	/* Addresses without the brackets sockaddr_format puts on IPv6. */
#define UNBRACKET(s) ((s)[0] == '[' ? ((s)[strlen(s) - 1] = '\0', (s) + 1) : (s))
	{
		char	*rh = UNBRACKET(host), *lh = UNBRACKET(lhost);

		xasprintf(&vars[0], "PROTO=TCP");
		xasprintf(&vars[1], "TCPREMOTEIP=%s", rh);
		xasprintf(&vars[2], "TCPREMOTEPORT=%s", rp ? rp : "");
		xasprintf(&vars[3], "TCPLOCALIP=%s", lh);
		xasprintf(&vars[4], "TCPLOCALPORT=%s", lp ? lp : "");
		xasprintf(&vars[5], "REMOTE_ADDR=%s", rh);
		xasprintf(&vars[6], "REMOTE_PORT=%s", rp ? rp : "");
		xasprintf(&vars[7], "WPOOL_LISTENER=%s",
		    p->conf->listeners[c->listener].name);
		xasprintf(&vars[8], "WPOOL_MASTER_PID=%d", (int)p->pid);
	}
#undef UNBRACKET
	env = xcalloc(p->nenv_base + 10, sizeof(char *));
	for (i = 0; i < p->nenv_base; i++)
		env[n++] = p->env_base[i];
	for (k = 0; k < 9; k++)
		env[n++] = vars[k];
	memset(&req, 0, sizeof(req));
	req.argv = p->conf->argv;
	req.envp = env;
	req.stdin_fd = c->fd;
	req.stdout_fd = c->fd;
	req.stderr_fd = -1;
	req.set_user = p->conf->set_user;
	req.uid = p->conf->uid;
	req.gid = p->conf->gid;
	req.groups = p->conf->groups;
	req.ngroups = p->conf->ngroups;
	req.chdir = p->conf->chdir;
	req.nofile = &p->nofile;
	pid = spawn_child(&req, &status_fd);
	for (k = 0; k < 9; k++)
		free(vars[k]);
	free(env);
	if (pid < 0) {
		errno = -pid;
		log_warn("cannot fork for a connection from %s", c->peer);
		conn_close(c);
		return;
	}
	/* Exec failures show as exit status 127/126 when it is reaped. */
	close(status_fd);
	ch = xcalloc(1, sizeof(*ch));
	ch->pid = pid;
	ch->listener = c->listener;
	ch->started = now_mono();
	strlcpy(ch->peer, c->peer, sizeof(ch->peer));
	TAILQ_INSERT_TAIL(&ichildren, ch, entry);
	nichildren++;
	p->nconnections = nichildren;
	log_debug("connection from %s: pid %d", c->peer, (int)pid);
	conn_close(c);
}

/* Whether pid is one of inetd's connection processes. */
bool
balance_has_child(pid_t pid)
{
	struct ichild *ch;

	TAILQ_FOREACH(ch, &ichildren, entry)
		if (ch->pid == pid)
			return true;
	return false;
}

/* Called for every reaped pid that is not a worker. */
bool
balance_reaped(struct pool *p, pid_t pid, int status)
{
	struct ichild *ch;

	TAILQ_FOREACH(ch, &ichildren, entry)
		if (ch->pid == pid)
			break;
	if (ch == NULL)
		return false;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 126)
		log_warnx("connection from %s: '%s' exited with status %d",
		    ch->peer, p->conf->argv[0], WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && !(p->state == POOL_STOPPING &&
	    (WTERMSIG(status) == p->conf->stop_signal ||
	    WTERMSIG(status) == SIGKILL))) {
		char	 after[32];

		format_duration(now_mono() - ch->started, after, sizeof(after));
		log_warnx("connection from %s: '%s' (pid %d) killed by signal "
		    "%s after %s", ch->peer, p->conf->argv[0], (int)pid,
		    signal_name(WTERMSIG(status)), after);
	}
	TAILQ_REMOVE(&ichildren, ch, entry);
	free(ch);
	nichildren--;
	p->nconnections = nichildren;
	if (!accepting && nichildren < p->target)
		accept_resume(p);
	if (p->state == POOL_STOPPING && nichildren == 0)
		pool_check_done(p);
	return true;
}

/* Stopping: ask every inetd child to stop; returns how many there are. */
int
balance_stop(struct pool *p, int sig)
{
	struct ichild *ch;

	if (!started)
		return 0;
	accept_pause(p);
	/* Queued connections were never served: close them. */
	queue_flush(p);
	TAILQ_FOREACH(ch, &ichildren, entry)
		kill(ch->pid, sig);
	return nichildren;
}

json_object *
balance_status_json(struct pool *p, double mono)
{
	json_object *a = json_object_new_array();
	struct ichild *ch;

	TAILQ_FOREACH(ch, &ichildren, entry) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(ch->pid));
		json_object_object_add(o, "peer",
		    json_object_new_string(ch->peer));
		json_object_object_add(o, "listener", json_object_new_string(
		    p->conf->listeners[ch->listener].name));
		{
			char	 buf[32];

			snprintf(buf, sizeof(buf), "%.3f", mono - ch->started);
			json_object_object_add(o, "uptime_s",
			    json_object_new_double_s(mono - ch->started, buf));
		}
		json_object_array_add(a, o);
	}
	return a;
}

int
balance_init(struct pool *p, char *err, size_t len)
{
	size_t	 i;
	int	 r;

	started = true;
	timer_init(&emfile_timer, on_emfile, p);
	timer_init(&watch_timer, on_watch, p);
	timer_init(&kick_timer, on_kick, p);
	if (p->conf->mode != MODE_BALANCE && p->conf->mode != MODE_INETD)
		return 0;
	balance_pool_resized(p);
	for (i = 0; i < p->conf->nlisteners; i++) {
		struct listener *l = &p->conf->listeners[i];

		set_nonblock(l->fd, true);
		if ((r = loop_add(l->fd, EPOLLIN, on_accept, p)) < 0) {
			snprintf(err, len, "cannot watch %s", l->address);
			return r;
		}
	}
	accepting = true;
	return 0;
}
