/*
 * acceptq.c: where the master accepts (balance and inetd modes).  Owns
 * the watch on the listeners (paused while the mode is full), the queue of
 * accepted connections that wait for a worker, and their count; hands
 * each connection to the mode (balance: the queue, then a worker's
 * channel; inetd: a process of its own).  The queue is p->acceptq; the
 * channels, the balancers and the connection processes are asked through
 * balance.h.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <json-c/json.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balance.h"

/* Accepts per listener per wake-up, so one busy port cannot starve. */
#define ACCEPT_BURST	64

/* What each master-accept mode does with what the listeners give. */
struct accept_mode {
	enum pool_mode mode;
	bool	(*full)(const struct pool *);	/* stop accepting */
	void	(*take)(struct pool *, struct conn *);	/* it is the mode's */
	void	(*kick)(struct pool *);		/* NULL: nothing waits */
};

struct acceptq {
	const struct accept_mode *mode;
	struct connq queue;		/* balance: waiting for a worker */
	int	 len;
	bool	 accepting;
	unsigned long next_id;
	unsigned long total;		/* accepted since the start */
	struct timer emfile_timer;	/* out of fds: accepting again */
	struct timer kick_timer;	/* a kick out of pool.c's way */
};

static bool	 queue_full(const struct pool *);
static void	 queue_take(struct pool *, struct conn *);
static void	 dispatch(struct pool *);

static const struct accept_mode accept_modes[] = {
	{ MODE_BALANCE,	queue_full,	queue_take,	dispatch },
	{ MODE_INETD,	inetd_full,	inetd_take,	NULL },
};

uint32_t
conn_hash(const void *data, size_t len, uint32_t h)
{
	const unsigned char *b = data;
	size_t	 i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
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

/*
 * One taken back from a worker's channel may have been seen by it (a
 * MSG_PEEK receives a copy of the fd): it is reset, so that no lingering
 * close the worker set up can hold the master.
 */
void
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

/* The peer's address for the message, and its hash for ip-hash. */
void
conn_describe(struct conn *c, const struct sockaddr_storage *ss,
    socklen_t sl)
{
	if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)
		sockaddr_format(ss, sl, c->peer, sizeof(c->peer));
	else
		strlcpy(c->peer, "unix", sizeof(c->peer));
	if (ss->ss_family == AF_INET)
		c->iphash = conn_hash(&((const struct sockaddr_in *)ss)->
		    sin_addr, 4, 2166136261u);
	else if (ss->ss_family == AF_INET6)
		c->iphash = conn_hash(&((const struct sockaddr_in6 *)ss)->
		    sin6_addr, 16, 2166136261u);
}

static bool
queue_full(const struct pool *p)
{
	return p->acceptq->len >= p->conf->max_queue;
}

/* Queued connections were never served: they are closed. */
void
acceptq_flush(struct pool *p)
{
	struct acceptq *aq = p->acceptq;
	struct conn *c;

	while ((c = TAILQ_FIRST(&aq->queue)) != NULL) {
		TAILQ_REMOVE(&aq->queue, c, entry);
		conn_close(c);
	}
	aq->len = 0;
}

/* n connections taken back from a channel: first in line, in order. */
void
acceptq_requeue(struct pool *p, struct connq *back, int n)
{
	struct acceptq *aq = p->acceptq;
	struct conn *c;

	while ((c = TAILQ_LAST(back, connq)) != NULL) {
		TAILQ_REMOVE(back, c, entry);
		TAILQ_INSERT_HEAD(&aq->queue, c, entry);
	}
	aq->len += n;
}

/* A kick from a timer: the caller runs inside pool.c's reaping. */
void
acceptq_kick_soon(struct pool *p)
{
	timer_set(&p->acceptq->kick_timer, 0);
}

static void
accept_pause(struct pool *p)
{
	size_t	 i;

	for (i = 0; i < p->conf->nlisteners; i++)
		loop_mod(p->conf->listeners[i].fd, 0);
	p->acceptq->accepting = false;
}

static void
accept_resume(struct pool *p)
{
	size_t	 i;

	if (p->state != POOL_RUNNING)
		return;
	for (i = 0; i < p->conf->nlisteners; i++)
		loop_mod(p->conf->listeners[i].fd, EPOLLIN);
	p->acceptq->accepting = true;
}

/* Paused and no longer full (a worker took some, a process ended). */
void
acceptq_room(struct pool *p)
{
	struct acceptq *aq = p->acceptq;

	/* Not while out of fds: the 100 ms pause (on_emfile) ends that. */
	if (!aq->accepting && !aq->emfile_timer.armed && !aq->mode->full(p))
		accept_resume(p);
}

static void
on_emfile(void *arg)
{
	acceptq_room(arg);
}

static void
on_kick(void *arg)
{
	balance_kick(arg);
}

/* Queued; on_accept dispatches once what this wake-up accepted. */
static void
queue_take(struct pool *p, struct conn *c)
{
	struct acceptq *aq = p->acceptq;

	TAILQ_INSERT_TAIL(&aq->queue, c, entry);
	aq->len++;
}

static void
on_accept(int fd, uint32_t ev, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pool *p = arg;
	struct acceptq *aq = p->acceptq;
	struct conn *c;
	int	 cfd, n, li = 0;

	(void)ev;
	while ((size_t)li < p->conf->nlisteners &&
	    p->conf->listeners[li].fd != fd)
		li++;
	/*
	 * Until EAGAIN (or the burst): what one wake-up accepts is
	 * dispatched at once, so that a worker that reads version 2 gets
	 * several in one message.
	 */
	for (n = 0; n < ACCEPT_BURST; n++) {
		if (aq->mode->full(p) && aq->mode->kick != NULL)
			aq->mode->kick(p);
		if (aq->mode->full(p)) {
			/* Full: the kernel's backlog holds the rest. */
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
				timer_set(&aq->emfile_timer, 0.1);
			}
			break;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = cfd;
		c->id = ++aq->next_id;
		c->listener = li;
		aq->total++;
		conn_describe(c, &ss, sl);
		aq->mode->take(p, c);
	}
	if (aq->mode->kick != NULL)
		balance_kick(p);
}

/*
 * balance: queued connections go out while some worker can take one.
 * Each is given to the balancer's pick, which counts it at once; what
 * each worker was given goes in one message (a version-2 worker's batch)
 * at the end.  What could not go comes back to the head of the queue,
 * its channel skipped: another round gives it to others.
 */
static void
dispatch(struct pool *p)
{
	struct acceptq *aq = p->acceptq;
	struct conn *c;
	struct worker *w;
	int	 tries, round;

	for (round = 0; round <= WPOOL_MAX_WORKERS; round++) {
		while ((c = TAILQ_FIRST(&aq->queue)) != NULL) {
			TAILQ_REMOVE(&aq->queue, c, entry);
			aq->len--;
			for (tries = 0; tries < WPOOL_MAX_WORKERS; tries++) {
				if ((w = balancer_pick(p, c)) == NULL)
					break;
				/* Not taken: w said why and is skipped. */
				if (chan_give(p, w, c) == 0)
					break;
			}
			if (w == NULL || tries == WPOOL_MAX_WORKERS) {
				TAILQ_INSERT_HEAD(&aq->queue, c, entry);
				aq->len++;
				break;
			}
		}
		if (chan_flush_all(p) == 0)
			break;
	}
}

/* Dispatches queued connections while some worker can take one. */
void
balance_kick(struct pool *p)
{
	struct acceptq *aq = p->acceptq;

	if (aq == NULL)
		return;
	if (aq->mode->kick != NULL)
		aq->mode->kick(p);
	/* A larger limit (scale up), a shorter queue: accept again. */
	acceptq_room(p);
}

/* Stopping: no more accepts, the queue closed, inetd's processes asked. */
int
balance_stop(struct pool *p, int sig)
{
	if (p->acceptq == NULL)
		return 0;
	accept_pause(p);
	acceptq_flush(p);
	return inetd_stop(p, sig);
}

int
balance_queued(const struct pool *p)
{
	return p->acceptq != NULL ? p->acceptq->len : 0;
}

unsigned long
balance_accepted(const struct pool *p)
{
	return p->acceptq != NULL ? p->acceptq->total : 0;
}

int
balance_init(struct pool *p, char *err, size_t len)
{
	struct acceptq *aq;
	size_t	 i;
	int	 r;

	for (i = 0; i < sizeof(accept_modes) / sizeof(accept_modes[0]); i++)
		if (accept_modes[i].mode == p->conf->mode)
			break;
	if (i == sizeof(accept_modes) / sizeof(accept_modes[0]))
		return 0;	/* the workers accept */
	aq = p->acceptq = xcalloc(1, sizeof(*aq));
	aq->mode = &accept_modes[i];
	TAILQ_INIT(&aq->queue);
	timer_init(&aq->emfile_timer, on_emfile, p);
	timer_init(&aq->kick_timer, on_kick, p);
	if ((r = chan_init(p)) < 0 || (r = inetd_init(p)) < 0) {
		snprintf(err, len, "cannot start %s mode: %s",
		    mode_names[p->conf->mode], strerror(-r));
		return r;
	}
	balance_pool_resized(p);
	for (i = 0; i < p->conf->nlisteners; i++) {
		struct listener *l = &p->conf->listeners[i];

		set_nonblock(l->fd, true);
		if ((r = loop_add(l->fd, EPOLLIN, on_accept, p)) < 0) {
			snprintf(err, len, "cannot watch %s", l->address);
			return r;
		}
	}
	aq->accepting = true;
	return 0;
}

/*
 * `wpool upgrade`: the queue as the next image adopts it (acceptq_adopt):
 * the connections accepted and not yet given out (their fds survive the
 * exec), the next id (ids in flight must not come again) and the count.
 */
json_object *
acceptq_export(struct pool *p)
{
	struct acceptq *aq = p->acceptq;
	json_object *o, *a, *e;
	struct conn *c;

	if (aq == NULL)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "next_id",
	    json_object_new_int64((int64_t)aq->next_id));
	json_object_object_add(o, "total",
	    json_object_new_int64((int64_t)aq->total));
	a = json_object_new_array();
	TAILQ_FOREACH(c, &aq->queue, entry) {
		e = json_object_new_object();
		json_object_object_add(e, "fd", json_object_new_int(c->fd));
		json_object_object_add(e, "id",
		    json_object_new_int64((int64_t)c->id));
		json_object_object_add(e, "listener",
		    json_object_new_int(c->listener));
		json_object_object_add(e, "peer",
		    json_object_new_string(c->peer));
		json_object_object_add(e, "iphash",
		    json_object_new_int64(c->iphash));
		json_object_object_add(e, "returned",
		    json_object_new_boolean(c->returned));
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "queue", a);
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

/* The next image's side of acceptq_export; dispatched at the next kick. */
void
acceptq_adopt(struct pool *p, json_object *o)
{
	struct acceptq *aq = p->acceptq;
	json_object *a, *e, *v;
	struct conn *c;
	size_t	 i;

	if (aq == NULL || o == NULL)
		return;
	aq->next_id = (unsigned long)jget(o, "next_id", 0);
	aq->total = (unsigned long)jget(o, "total", 0);
	if (!json_object_object_get_ex(o, "queue", &a) ||
	    !json_object_is_type(a, json_type_array))
		return;
	for (i = 0; i < json_object_array_length(a); i++) {
		e = json_object_array_get_idx(a, i);
		c = xcalloc(1, sizeof(*c));
		c->fd = (int)jget(e, "fd", -1);
		c->id = (unsigned long)jget(e, "id", 0);
		c->listener = (int)jget(e, "listener", 0);
		c->iphash = (uint32_t)jget(e, "iphash", 0);
		c->returned = jget(e, "returned", 0) != 0;
		if (json_object_object_get_ex(e, "peer", &v) &&
		    json_object_is_type(v, json_type_string))
			strlcpy(c->peer, json_object_get_string(v),
			    sizeof(c->peer));
		if (c->fd < 0) {
			free(c);
			continue;
		}
		set_cloexec(c->fd, true);
		TAILQ_INSERT_TAIL(&aq->queue, c, entry);
		aq->len++;
	}
}
