/*
 * pool_mode.c: what differs between the pool's modes, behind one table
 * (mode_ops) that pool.c's lifecycle calls.  Owns the sockets of a
 * reuseport slot and the steering between them; the balance and inetd
 * entries call balance.c, which owns the master-accept side.  Changes no
 * worker's or slot's state: pool.c alone does.
 */
#include <sys/stat.h>

#include <errno.h>
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
		if (listener_open_socket(l, c->backlog, true, &s->fds[i], err,
		    sizeof(err)) < 0) {
			log_warnx("worker %d: %s", s->id, err);
			while (i-- > 0)
				close(s->fds[i]);
			free(s->fds);
			free(s->queue);
			s->fds = NULL;
			s->queue = NULL;
			return -1;
		}
	}
	p->group[p->ngroup++] = s->id;
	return 0;
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
	for (i = 0; i < p->conf->nlisteners; i++)
		close(s->fds[i]);
	free(s->fds);
	free(s->queue);
	s->fds = NULL;
	s->queue = NULL;
	for (pos = 0; pos < p->ngroup; pos++)
		if (p->group[pos] == s->id) {
			p->group[pos] = p->group[--p->ngroup];
			break;
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

static bool
slot_serving(const struct slot *s)
{
	return s->wanted && !s->draining && s->cur != NULL &&
	    s->cur->state == W_READY;
}

/*
 * reuseport: new TCP connections go only to the sockets of slots whose
 * worker is ready; a dead worker's queue waits for its successor, and gets
 * no more meanwhile.  UDP datagrams go by a hash of their source to every
 * slot that stays (not a draining one): a client's datagrams keep to one
 * slot, and while its worker restarts they wait in the slot's socket for
 * the successor, instead of moving to another worker and back.
 */
static void
steer_group(struct pool *p)
{
	static bool warned;
	int	 ready[WPOOL_MAX_WORKERS], kept[WPOOL_MAX_WORKERS];
	int	 nready = 0, nkept = 0, pos, r;
	size_t	 i;
	bool	 udp;

	if (p->ngroup == 0 || p->ngroup > WPOOL_MAX_WORKERS)
		return;
	for (pos = 0; pos < p->ngroup; pos++) {
		const struct slot *s = &p->slots[p->group[pos]];

		if (slot_serving(s))
			ready[nready++] = pos;
		if (s->wanted && !s->draining)
			kept[nkept++] = pos;
	}
	for (i = 0; i < p->conf->nlisteners; i++) {
		udp = p->conf->listeners[i].type == L_UDP;
		if (udp && nkept > 0)
			r = listener_steer(p->slots[p->group[0]].fds[i], kept,
			    nkept, true);
		else if (nready > 0 || nkept > 0)
			r = listener_steer(p->slots[p->group[0]].fds[i],
			    nready > 0 ? ready : kept,
			    nready > 0 ? nready : nkept, udp);
		else
			continue;
		if (r < 0 && !warned) {
			warned = true;
			log_warnx("cannot steer connections between slots: %s",
			    strerror(-r));
		}
	}
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
