/*
 * pool_mode.c: what differs between the pool's modes, behind one table
 * (mode_ops) that pool.c's lifecycle calls.  Owns the sockets of a
 * reuseport slot and the steering between them; the balance and inetd
 * entries call balance.c, which owns the master-accept side.  Changes no
 * worker's or slot's state: pool.c alone does.
 */
#include <sys/epoll.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "pool_mode.h"

static void
announce_workers(struct pool *p)
{
	char	 why[512];

	if (p->conf->workers == 0) {
		/* Which bound won, CPUs or memory (cpu.c). */
		cpu_auto_text(&p->cpus, why, sizeof(why));
		log_info("%d worker%s (%s)", p->target,
		    p->target == 1 ? "" : "s", why);
	} else
		log_info("%d worker%s", p->target, p->target == 1 ? "" : "s");
}

static void
announce_inetd(struct pool *p)
{
	log_info("inetd mode: one process per connection, at most %d at a "
	    "time", p->target);
}

/*
 * reuseport steering by load.  New TCP connections go to the ready slots
 * whose accept queues are the shortest (within STEER_SLACK of the
 * shortest), at random among them: a slot whose worker is stuck on a slow
 * request, or stopped, stops accepting, its queue grows, and it gets no
 * more until it drains.  The queues are read (TCP_INFO of each socket the
 * master holds) whenever the group is steered and, while connections
 * flow, at most once per STEER_PERIOD; the program is attached again only
 * when the set changes.  How the master learns that connections flow
 * without waking for each: a one-shot EPOLLIN watch on the socket of one
 * of the slots that take new connections, and on the one of them with
 * the longest queue, armed again only after the period's sample.  With
 * no connection coming, no watch fires and the master sleeps; a queue
 * that stays (its worker stuck) wakes it once per period at most, until
 * the slot is left out.  An excluded slot is not watched (its queue would
 * fire at once, and it gets no new connections); it is read at the
 * samples that the others' connections bring.
 *
 * Where the master may load an eBPF program (CAP_BPF: as root, outside a
 * seccomp filter that forbids bpf()), ksteer.c places each connection in
 * the kernel on the slot with the fewest placed so far, among those this
 * gives the lowest weight (ready and short-queued, then stuck ones, then
 * ones whose worker is starting): a burst onto idle workers (64
 * connect()s take ~2 ms on loopback, before the master's first look) is
 * spread evenly, not at random, and a closing slot's connections move to
 * another.  Elsewhere the classic BPF program of listen.c picks at random
 * among the set above, and such a burst is spread as the kernel's hash
 * would.
 */
#define STEER_PERIOD	0.01	/* seconds between samples while flowing */
#define STEER_SLACK	3	/* queued over the shortest that still gets more */

struct steer {
	struct timer timer;	/* the period's end, while flowing */
	bool	 flowing;	/* a watch fired since the last sample */
	int	 queued[WPOOL_MAX_WORKERS];	/* by slot id, TCP, at sampling */
	int	 last[WPOOL_MAX_WORKERS];	/* TCP positions attached */
	int	 nlast;		/* -1: not known */
	unsigned turn;		/* which of them is watched next */
	struct ksteer *k;	/* the eBPF placement, or NULL: classic */
	/* With k: what each slot had at the last judging, and its verdict. */
	double	 kjudged;
	uint32_t kplaced[WPOOL_MAX_WORKERS];
	int	 kqueued[WPOOL_MAX_WORKERS];
	bool	 kidle[WPOOL_MAX_WORKERS];	/* accepted none since */
};

static void steer_group(struct pool *);
static void steer_load(struct pool *, bool);

static bool
slot_serving(const struct slot *s)
{
	return s->wanted && !s->draining && s->cur != NULL &&
	    s->cur->state == W_READY;
}

/* The connections waiting on a slot's TCP sockets (0 if unreadable). */
static int
slot_tcp_queued(const struct pool *p, const struct slot *s)
{
	size_t	 i;
	int	 q = 0, n;

	for (i = 0; s->fds != NULL && i < p->conf->nlisteners; i++)
		if (p->conf->listeners[i].type != L_UDP &&
		    (n = sys_queue_len(s->fds[i])) > 0)
			q += n;
	return q;
}

/* Arms the one-shot watch on the TCP sockets of a slot. */
static void
steer_arm(struct pool *p, const struct slot *s)
{
	size_t	 i;

	for (i = 0; s->fds != NULL && i < p->conf->nlisteners; i++)
		if (p->conf->listeners[i].type != L_UDP)
			(void)loop_mod(s->fds[i], EPOLLIN | EPOLLONESHOT);
}

static void
on_steer_timer(void *arg)
{
	struct pool *p = arg;
	struct steer *st = p->steer;

	if (st == NULL || !st->flowing)
		return;		/* none came in the period: sleep */
	st->flowing = false;
	steer_load(p, false);
	timer_set(&st->timer, STEER_PERIOD);
}

/* A connection came to a watched socket (its watch is now off). */
static void
on_steer_watch(int fd, uint32_t ev, void *arg)
{
	struct slot *s = arg;
	struct pool *p = s->pool;
	struct steer *st = p->steer;

	(void)fd;
	(void)ev;
	if (st == NULL)
		return;
	st->flowing = true;
	if (!st->timer.armed) {
		/* The first after a quiet period: look now. */
		st->flowing = false;
		steer_load(p, false);
		timer_set(&st->timer, STEER_PERIOD);
	}
}

/* Placement falls back to the classic program, said once. */
static void
ksteer_lost(struct steer *st, const char *why)
{
	static bool said;

	ksteer_free(st->k);
	st->k = NULL;
	if (said)
		return;
	said = true;
	log_info("reuseport: new TCP connections go at random among the "
	    "least-queued ready slots, not to the least loaded one (%s; the "
	    "eBPF program needs CAP_BPF)", why);
}

/* Watches a new slot's TCP sockets; its watch is armed once it steers. */
static void
steer_watch_add(struct pool *p, struct slot *s)
{
	struct ksteer_fds kf;
	char	 err[256];
	size_t	 i;
	bool	 tcp = false;

	for (i = 0; i < p->conf->nlisteners; i++)
		tcp |= p->conf->listeners[i].type != L_UDP;
	if (!tcp)
		return;
	if (p->steer == NULL) {
		p->steer = xcalloc(1, sizeof(*p->steer));
		p->steer->nlast = -1;
		timer_init(&p->steer->timer, on_steer_timer, p);
		if (upgrade_take_ksteer(&kf) == 0) {
			if (ksteer_adopt(&kf, p->conf->nlisteners,
			    &p->steer->k, err, sizeof(err)) < 0)
				ksteer_lost(p->steer, err);
		} else if (ksteer_new(p->conf->nlisteners, &p->steer->k, err,
		    sizeof(err)) < 0)
			ksteer_lost(p->steer, err);
	}
	for (i = 0; i < p->conf->nlisteners; i++)
		if (p->conf->listeners[i].type != L_UDP) {
			/* Off (no event set) until the first steering. */
			(void)loop_add(s->fds[i], EPOLLONESHOT, on_steer_watch, s);
			if (p->steer->k != NULL && ksteer_join(p->steer->k, i,
			    s->id, s->fds[i], err, sizeof(err)) < 0)
				ksteer_lost(p->steer, err);
		}
}

/*
 * The kernel moves the connections of a closing listener (in the
 * handshake or in its accept queue) to another socket of the group only
 * with net.ipv4.tcp_migrate_req (Linux >= 5.14); wpool reads it, never
 * sets it.  Said once, when a socket closes while others stay and the
 * pool runs on (when it stops, all close and there is nowhere to move).
 */
static void
migrate_check(struct pool *p)
{
	static bool said;
	char	 buf[16] = "";
	FILE	*f;
	size_t	 i;
	bool	 tcp = false;

	for (i = 0; i < p->conf->nlisteners; i++)
		tcp |= p->conf->listeners[i].type != L_UDP;
	if (said || !tcp || p->ngroup < 2 || p->state != POOL_RUNNING)
		return;
	if (p->steer != NULL && ksteer_migrates(p->steer->k))
		return;		/* the eBPF program places them */
	said = true;
	if ((f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "re")) == NULL) {
		log_info("reuseport: this kernel has no "
		    "net.ipv4.tcp_migrate_req (Linux >= 5.14): connections "
		    "still in the handshake on a closing slot's socket are "
		    "reset, not moved to another slot");
		return;
	}
	if (fgets(buf, sizeof(buf), f) == NULL || atoi(buf) == 0)
		log_info("reuseport: net.ipv4.tcp_migrate_req is off: "
		    "connections still in the handshake on a closing slot's "
		    "socket are reset, not moved to another slot "
		    "(sysctl -w net.ipv4.tcp_migrate_req=1 moves them)");
	fclose(f);
}

static int
slot_open_none(struct pool *p, struct slot *s)
{
	(void)p;
	(void)s;
	return 0;
}

/* reuseport: a slot's own sockets, opened once, kept across restarts. */
static int
slot_open_fds(struct pool *p, struct slot *s)
{
	struct conf *c = p->conf;
	char	 err[512];
	size_t	 i;

	if (s->fds != NULL)
		return 0;
	s->fds = xcalloc(c->nlisteners, sizeof(int));
	s->queue = xcalloc(c->nlisteners, sizeof(int));
	for (i = 0; i < c->nlisteners; i++) {
		struct listener *l = &c->listeners[i];

		if (l->fd >= 0) {
			/* The socket bound at start-up is the first slot's. */
			s->fds[i] = l->fd;
			l->fd = -1;
			continue;
		}
		if (sdnotify_adopt(l, s->id, c->backlog, true, &s->fds[i]) == 0)
			continue;	/* kept in the fd store meanwhile */
		if (listener_open_socket(l, c->backlog, true, &s->fds[i], err,
		    sizeof(err)) < 0) {
			log_warnx("worker %d: %s", s->id, err);
			while (i-- > 0) {
				sdnotify_forget_fd(p, s->fds[i]);
				close(s->fds[i]);
			}
			free(s->fds);
			free(s->queue);
			s->fds = NULL;
			s->queue = NULL;
			return -1;
		}
		sdnotify_store(l, s->id, s->fds[i]);
	}
	p->group[p->ngroup++] = s->id;
	steer_watch_add(p, s);
	return 0;
}

/*
 * reuseport: a slot's sockets as the image before an in-place upgrade
 * held them (upgrade.c), taken in the group's order so positions hold.
 */
void
slot_adopt_fds(struct pool *p, struct slot *s, const int *fds)
{
	size_t	 n = p->conf->nlisteners;

	s->fds = xcalloc(n, sizeof(int));
	s->queue = xcalloc(n, sizeof(int));
	memcpy(s->fds, fds, n * sizeof(int));
	p->group[p->ngroup++] = s->id;
	steer_watch_add(p, s);
}

/*
 * Closing a socket moves the group's last socket into its place, as the
 * kernel's reuseport_detach_sock does, so positions stay known.
 */
void
slot_close_fds(struct pool *p, struct slot *s)
{
	size_t	 i;
	int	 pos;

	if (s->fds == NULL)
		return;
	migrate_check(p);
	if (p->steer != NULL)
		ksteer_leave(p->steer->k, s->id);
	for (i = 0; i < p->conf->nlisteners; i++) {
		loop_del(s->fds[i]);
		sdnotify_forget_fd(p, s->fds[i]);
		close(s->fds[i]);
	}
	free(s->fds);
	free(s->queue);
	s->fds = NULL;
	s->queue = NULL;
	for (pos = 0; pos < p->ngroup; pos++)
		if (p->group[pos] == s->id) {
			p->group[pos] = p->group[--p->ngroup];
			break;
		}
	if (p->steer != NULL) {
		/* Positions moved: what was attached is no guide. */
		p->steer->nlast = -1;
		if (p->ngroup == 0) {
			timer_cancel(&p->steer->timer);
			ksteer_free(p->steer->k);
			free(p->steer);
			p->steer = NULL;
		}
	}
}

/*
 * Connections waiting in the accept queues of a slot's sockets, and one
 * for each of its datagram sockets with a datagram waiting.
 */
int
slot_queued(struct pool *p, struct slot *s)
{
	size_t	 i;
	int	 q = 0, n;

	for (i = 0; s->fds != NULL && i < p->conf->nlisteners; i++) {
		if (p->conf->listeners[i].type == L_UDP)
			n = listener_dgram_waiting(s->fds[i]);
		else
			n = sys_queue_len(s->fds[i]);
		if (n > 0)
			q += n;
	}
	return q;
}

/* The listeners: the pool's, or (reuseport) the slot's own. */
static int
fds_listeners(struct pool *p, struct slot *s, struct worker *w, int *fds,
    int *nfds, int *chan)
{
	struct conf *c = p->conf;
	size_t	 i;

	(void)w;
	*chan = -1;
	*nfds = (int)c->nlisteners;
	for (i = 0; i < c->nlisteners; i++)
		fds[i] = s->fds != NULL ? s->fds[i] : c->listeners[i].fd;
	return 0;
}

/* balance: the worker's end of its connection channel, alone. */
static int
fds_channel(struct pool *p, struct slot *s, struct worker *w, int *fds,
    int *nfds, int *chan)
{
	struct stat st;

	(void)s;
	if (balance_worker_channel(p, w, chan) < 0)
		return -EMFILE;
	fds[0] = *chan;
	*nfds = 1;
	if (fstat(*chan, &st) == 0)
		w->chan_ino = (uint64_t)st.st_ino;
	return 0;
}

static size_t
inodes_listeners(struct pool *p, struct worker *w, uint64_t *out)
{
	struct conf *c = p->conf;
	struct slot *s = &p->slots[w->id];
	struct stat st;
	size_t	 i, n = 0;
	int	 fd;

	for (i = 0; i < c->nlisteners && i < WPOOL_MAX_LISTENERS; i++) {
		fd = s->fds != NULL ? s->fds[i] : c->listeners[i].fd;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			out[n++] = (uint64_t)st.st_ino;
	}
	return n;
}

static size_t
inodes_channel(struct pool *p, struct worker *w, uint64_t *out)
{
	(void)p;
	if (w->chan_ino == 0)
		return 0;
	out[0] = w->chan_ino;
	return 1;
}

/*
 * The eBPF placement's weights, by the rule of steer_load, but for what
 * makes a slot stuck: a long queue and no connection accepted since the
 * last judging (the connections placed on it, less what its queue grew):
 * a worker that accepts, only behind for a moment (a burst, a busy CPU),
 * keeps its share, and the counts stay even.  Judged at most every half
 * period (samples on lifecycle events come closer; the verdict holds).
 * The program attached (again only if the highest slot id changed).  -1:
 * it is lost.
 */
static int
ksteer_group(struct pool *p, struct steer *st, int qmin)
{
	uint32_t base[2 * WPOOL_MAX_WORKERS], placed;
	int	 ids[2 * WPOOL_MAX_WORKERS];
	char	 err[256];
	int	 pos, nslots = 0, id;
	double	 now = now_mono();
	bool	 judge = now - st->kjudged >= STEER_PERIOD / 2;
	size_t	 i;

	for (pos = 0; pos < p->ngroup; pos++) {
		const struct slot *s = &p->slots[p->group[pos]];

		id = ids[pos] = s->id;
		if (judge) {
			placed = ksteer_placed(st->k, id);
			st->kidle[id] = (int64_t)(placed - st->kplaced[id]) -
			    (st->queued[id] - st->kqueued[id]) <= 0;
			st->kplaced[id] = placed;
			st->kqueued[id] = st->queued[id];
		}
		if (slot_serving(s))
			base[pos] = st->queued[id] <= qmin + STEER_SLACK ||
			    !st->kidle[id] ? 0 : KSTEER_STUCK;
		else if (s->wanted && !s->draining)
			base[pos] = KSTEER_WAIT;
		else
			base[pos] = KSTEER_OUT;
		if (s->id + 1 > nslots)
			nslots = s->id + 1;
	}
	if (judge)
		st->kjudged = now;
	ksteer_weigh(st->k, ids, base, p->ngroup);
	for (i = 0; i < p->conf->nlisteners; i++)
		if (p->conf->listeners[i].type != L_UDP &&
		    ksteer_attach(st->k, i, p->slots[p->group[0]].fds[i],
		    nslots, err, sizeof(err)) < 0) {
			ksteer_lost(st, err);
			return -1;
		}
	return 0;
}

/*
 * reuseport: new TCP connections go only to the sockets of slots whose
 * worker is ready, and of those to the least loaded (above); a dead
 * worker's queue waits for its successor, and gets no more meanwhile.
 * UDP datagrams go by a hash of their source to every slot that stays
 * (not a draining one): a client's datagrams keep to one slot, and while
 * its worker restarts they wait in the slot's socket for the successor,
 * instead of moving to another worker and back.  force: a slot changed
 * (every program is attached again); else a sample while connections
 * flow (the TCP one only, if its set changed).
 */
static void
steer_load(struct pool *p, bool force)
{
	static bool warned;
	struct steer *st = p->steer;
	int	 ready[WPOOL_MAX_WORKERS], kept[WPOOL_MAX_WORKERS];
	int	 least[WPOOL_MAX_WORKERS];
	int	 nready = 0, nkept = 0, nleast = 0, pos, r, qmin = -1;
	const int *tcp;
	int	 ntcp;
	size_t	 i;
	bool	 udp, same;

	if (p->ngroup == 0 || p->ngroup > WPOOL_MAX_WORKERS)
		return;
	memset(kept, 0, sizeof(kept));
	for (pos = 0; pos < p->ngroup; pos++) {
		const struct slot *s = &p->slots[p->group[pos]];

		if (st != NULL)
			st->queued[s->id] = slot_tcp_queued(p, s);
		if (slot_serving(s)) {
			ready[nready++] = pos;
			if (st != NULL && (qmin < 0 ||
			    st->queued[s->id] < qmin))
				qmin = st->queued[s->id];
		}
		if (s->wanted && !s->draining)
			kept[nkept++] = pos;
	}
	for (r = 0; r < nready; r++)
		if (st == NULL || st->queued[p->group[ready[r]]] <=
		    qmin + STEER_SLACK)
			least[nleast++] = ready[r];
	tcp = nready > 0 ? least : kept;
	ntcp = nready > 0 ? nleast : nkept;
	same = st != NULL && st->nlast == ntcp &&
	    memcmp(st->last, tcp, (size_t)ntcp * sizeof(int)) == 0;
	if (st != NULL && st->k != NULL && ksteer_group(p, st, qmin) < 0)
		force = true;	/* lost: the classic program, everywhere */
	for (i = 0; ntcp > 0 && i < p->conf->nlisteners; i++) {
		udp = p->conf->listeners[i].type == L_UDP;
		if (udp && force && nkept > 0)
			r = listener_steer(p->slots[p->group[0]].fds[i], kept,
			    nkept, true);
		else if (!udp && st != NULL && st->k != NULL)
			continue;
		else if (!udp && (force || !same))
			r = listener_steer(p->slots[p->group[0]].fds[i], tcp,
			    ntcp, false);
		else
			continue;
		if (r < 0 && !warned) {
			warned = true;
			log_warnx("cannot steer connections between slots: %s",
			    strerror(-r));
		}
	}
	if (st == NULL)
		return;
	if (!same)
		log_debug("reuseport: new connections to %d of %d slot%s",
		    ntcp, p->ngroup, p->ngroup == 1 ? "" : "s");
	st->nlast = ntcp;
	memcpy(st->last, tcp, (size_t)ntcp * sizeof(int));
	/*
	 * Watch one of the sockets that take new connections (they all get
	 * some), another each time: one wake-up per period, not one per
	 * slot.  And the one of them with the longest queue, if any, whose
	 * watch fires at once: a slot getting stuck is looked at every
	 * period until it is left out, however few connections come (then
	 * the next longest).  With none ready there is nothing to weigh:
	 * readiness steers again.
	 */
	if (nready == 0 || ntcp == 0)
		return;
	steer_arm(p, &p->slots[p->group[tcp[st->turn++ % (unsigned)ntcp]]]);
	for (r = 0, pos = -1; r < ntcp; r++)
		if (st->queued[p->group[tcp[r]]] > 0 && (pos < 0 ||
		    st->queued[p->group[tcp[r]]] > st->queued[p->group[pos]]))
			pos = tcp[r];
	if (pos >= 0)
		steer_arm(p, &p->slots[p->group[pos]]);
}

/* reuseport's eBPF placement, for an upgrade to hand over; or NULL. */
const struct ksteer *
pool_ksteer(const struct pool *p)
{
	return p->steer != NULL ? p->steer->k : NULL;
}

static void
steer_group(struct pool *p)
{
	steer_load(p, true);
}

static void
pool_nothing(struct pool *p)
{
	(void)p;
}

static bool
stop_now(const struct worker *w)
{
	(void)w;
	return false;
}

/* balance: wpool knows which connections a worker still has open. */
static bool
stop_when_idle(const struct worker *w)
{
	return balance_active(w) > 0 && balance_has_channel(w);
}

static bool
drains_never(const struct slot *s)
{
	(void)s;
	return false;
}

/* reuseport: a slot with a worker serves what its sockets queued. */
static bool
drains_queue(const struct slot *s)
{
	return s->cur != NULL;
}

/*
 * shared: the pool's listeners, held by the master to its end, where
 * what the last worker left queued would be reset on close; slot 0's
 * worker serves them.  (balance and inetd: the master accepts.)
 */
static int
stop_queued_listeners(struct pool *p, struct slot *s)
{
	size_t	 i;
	int	 q = 0, n;

	for (i = 0; s->id == 0 && i < p->conf->nlisteners; i++) {
		if (p->conf->listeners[i].fd < 0 ||
		    p->conf->listeners[i].type == L_UDP)
			continue;
		if ((n = sys_queue_len(p->conf->listeners[i].fd)) > 0)
			q += n;
	}
	return q;
}

static int
stop_queued_none(struct pool *p, struct slot *s)
{
	(void)p;
	(void)s;
	return 0;
}

static void
worker_gone_none(struct pool *p, struct worker *w)
{
	(void)p;
	(void)w;
}

static void
stop_none(struct pool *p, int sig)
{
	(void)p;
	(void)sig;
}

/* balance, inetd: accepting pauses, the queue and inetd's processes go. */
static void
stop_accepting(struct pool *p, int sig)
{
	balance_stop(p, sig);
}

static bool
reaped_none(struct pool *p, pid_t pid, int status)
{
	(void)p;
	(void)pid;
	(void)status;
	return false;
}

static bool
has_child_none(const struct pool *p, pid_t pid)
{
	(void)p;
	(void)pid;
	return false;
}

static const struct mode_ops mode_table[] = {
	[MODE_SHARED] = {
		.noun1 = "worker", .nounN = "workers",
		.announce = announce_workers, .slot_open = slot_open_none,
		.fds = fds_listeners, .inodes = inodes_listeners,
		.steer = pool_nothing, .stop_waits = stop_now,
		.drains = drains_never, .on_ready = pool_nothing,
		.stop_queued = stop_queued_listeners,
		.worker_gone = worker_gone_none, .resized = pool_nothing,
		.stop = stop_none, .reaped = reaped_none,
		.has_child = has_child_none,
	},
	[MODE_REUSEPORT] = {
		.noun1 = "worker", .nounN = "workers",
		.announce = announce_workers, .slot_open = slot_open_fds,
		.fds = fds_listeners, .inodes = inodes_listeners,
		.steer = steer_group, .stop_waits = stop_now,
		.drains = drains_queue, .on_ready = pool_nothing,
		.stop_queued = slot_queued,
		.worker_gone = worker_gone_none, .resized = pool_nothing,
		.stop = stop_none, .reaped = reaped_none,
		.has_child = has_child_none,
	},
	[MODE_BALANCE] = {
		.chan = true,
		.noun1 = "worker", .nounN = "workers",
		.announce = announce_workers, .slot_open = slot_open_none,
		.fds = fds_channel, .inodes = inodes_channel,
		.steer = pool_nothing, .stop_waits = stop_when_idle,
		.drains = drains_never, .on_ready = balance_kick,
		.stop_queued = stop_queued_none,
		.worker_gone = balance_worker_gone,
		.resized = balance_pool_resized, .stop = stop_accepting,
		.reaped = reaped_none, .has_child = has_child_none,
	},
	[MODE_INETD] = {
		.no_workers = "inetd mode has no workers to restart: each "
		    "connection has a process of its own",
		.noun1 = "connection process at most",
		.nounN = "connection processes at most",
		.announce = announce_inetd, .slot_open = slot_open_none,
		.fds = fds_listeners, .inodes = inodes_listeners,
		.steer = pool_nothing, .stop_waits = stop_now,
		.drains = drains_never, .on_ready = pool_nothing,
		.stop_queued = stop_queued_none,
		.worker_gone = worker_gone_none,
		/* Only the limit changes; running processes finish. */
		.resized = balance_kick, .stop = stop_accepting,
		.reaped = balance_reaped, .has_child = inetd_has_child,
	},
};

const struct mode_ops *
mode_of(const struct pool *p)
{
	unsigned m = (unsigned)p->conf->mode;

	return &mode_table[m < sizeof(mode_table) / sizeof(mode_table[0]) ?
	    m : MODE_SHARED];
}
