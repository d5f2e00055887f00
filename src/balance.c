/*
 * balance.c: the modes where the master accepts.  In balance mode it
 * holds accepted connections in a bounded queue and passes each to the
 * worker a balancer picks, over the worker's SOCK_SEQPACKET channel with
 * SCM_RIGHTS; in inetd mode it runs the command once per connection.
 * Owns the accepted connections, the queue, the channels' master ends
 * and the inetd children; asks pool.c for anything about workers.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <json-c/json.h>

#include <errno.h>
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
/* A channel closed by a live worker, or full this long: it is broken. */
#define CHAN_LOST_GRACE		1.0
#define CHAN_STUCK_SECONDS	5.0

struct conn {
	TAILQ_ENTRY(conn) entry;
	int	 fd;
	unsigned long id;
	int	 listener;
	char	 peer[64];
	uint32_t iphash;
};

struct ichild {
	TAILQ_ENTRY(ichild) entry;
	pid_t	 pid;
	char	 peer[64];
	int	 listener;
	double	 started;
};

static struct pool *B;
static TAILQ_HEAD(, conn) queue = TAILQ_HEAD_INITIALIZER(queue);
static TAILQ_HEAD(, ichild) ichildren = TAILQ_HEAD_INITIALIZER(ichildren);
static int	 qlen;
static int	 nichildren;
static bool	 accepting;
static unsigned long next_id;
static unsigned	 rr_cursor;
static struct timer emfile_timer;

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
eligible(const struct worker *w)
{
	return w != NULL && w->state == W_READY &&
	    !w->stop_sent && w->chan_fd >= 0 && !w->chan_full &&
	    w->garbage == 0 && !w->recycle_pending &&
	    (B->conf->max_requests == 0 || w->requests < w->max_requests);
}

/*
 * A channel that closed while its process lives on, or that stays full,
 * means a broken worker: it is replaced once a grace period shows it.
 */
static void
on_chan_timer(void *arg)
{
	struct worker *w = arg;

	if (w->stop_sent || B->state != POOL_RUNNING)
		return;
	if (w->chan_fd < 0)
		pool_recycle(B, w, "closed its connection channel");
	else if (w->chan_full) {
		log_warnx("worker %d (pid %d) has not read its channel for "
		    "%gs", w->id, (int)w->pid, CHAN_STUCK_SECONDS);
		pool_recycle(B, w, "stopped reading its channel");
	}
}

static bool
slot_ok(int id, void *arg)
{
	(void)arg;
	return id < B->target && eligible(B->slots[id].cur);
}

static struct worker *
pick(const struct conn *c)
{
	struct worker *best = NULL, *w;
	int	 n = B->target, i, id;

	switch (B->conf->balancer) {
	case BAL_IP_HASH:
		id = balance_ring_lookup(c->iphash, slot_ok, NULL);
		return id >= 0 ? B->slots[id].cur : NULL;
	case BAL_ROUND_ROBIN:
		for (i = 0; i < n; i++) {
			id = (int)((rr_cursor + (unsigned)i) % (unsigned)n);
			if (eligible(B->slots[id].cur)) {
				rr_cursor = (unsigned)id + 1;
				return B->slots[id].cur;
			}
		}
		return NULL;
	case BAL_LEAST_CONN:
		/* Ties rotate: the scan starts after the last pick. */
		for (i = 0; i < n; i++) {
			id = (int)((rr_cursor + (unsigned)i) % (unsigned)n);
			w = B->slots[id].cur;
			if (eligible(w) && (best == NULL ||
			    w->active < best->active))
				best = w;
		}
		if (best != NULL)
			rr_cursor = (unsigned)best->id + 1;
		return best;
	}
	return NULL;
}

static void
conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void	 accept_resume(void);

/* Hands one connection to w; -EAGAIN when its channel is full. */
static int
send_conn(struct worker *w, struct conn *c)
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
	    B->conf->listeners[c->listener].name, c->peer);
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
	return 0;
}

/* Dispatches queued connections while some worker can take one. */
void
balance_kick(void)
{
	struct conn *c;
	struct worker *w;
	int	 r, tries;

	if (B == NULL)
		return;
	if (B->conf->mode == MODE_INETD) {
		/* A larger limit (scale up) lets waiting connections in. */
		if (!accepting && nichildren < B->target)
			accept_resume();
		return;
	}
	if (B->conf->mode != MODE_BALANCE)
		return;
	while ((c = TAILQ_FIRST(&queue)) != NULL) {
		for (tries = 0; tries < WPOOL_MAX_WORKERS; tries++) {
			if ((w = pick(c)) == NULL)
				goto out;
			if ((r = send_conn(w, c)) == 0)
				break;
			if (r == -EAGAIN) {
				/* Skip it until its channel drains. */
				log_warnx("worker %d (pid %d) is not reading its "
				    "channel; skipping it", w->id, (int)w->pid);
				w->chan_full = true;
				loop_mod(w->chan_fd, EPOLLIN | EPOLLOUT);
				timer_set(&w->chan_timer, CHAN_STUCK_SECONDS);
				continue;
			}
			log_warnx("worker %d (pid %d): cannot pass a "
			    "connection: %s", w->id, (int)w->pid,
			    strerror(-r));
			w->garbage = GARBAGE_LIMIT;
		}
		if (tries == WPOOL_MAX_WORKERS)
			break;
		TAILQ_REMOVE(&queue, c, entry);
		qlen--;
		w->active++;
		w->requests++;
		conn_free(c);
		if (B->conf->max_requests > 0 && w->requests >=
		    w->max_requests)
			pool_recycle(B, w, "served its --max-requests");
	}
out:
	B->queue_len = qlen;
	if (!accepting && qlen < B->conf->max_queue)
		accept_resume();
}

static void
accept_pause(void)
{
	size_t	 i;

	for (i = 0; i < B->conf->nlisteners; i++)
		loop_mod(B->conf->listeners[i].fd, 0);
	accepting = false;
}

static void
accept_resume(void)
{
	size_t	 i;

	if (B->state != POOL_RUNNING)
		return;
	for (i = 0; i < B->conf->nlisteners; i++)
		loop_mod(B->conf->listeners[i].fd, EPOLLIN);
	accepting = true;
}

static void
on_emfile(void *arg)
{
	(void)arg;
	if ((B->conf->mode == MODE_BALANCE && qlen < B->conf->max_queue) ||
	    (B->conf->mode == MODE_INETD && nichildren < B->target))
		accept_resume();
}

static void	 inetd_spawn(struct conn *);

static void
on_accept(int fd, uint32_t ev, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct conn *c;
	int	 cfd, n, li = (int)(intptr_t)arg;

	(void)ev;
	for (n = 0; n < ACCEPT_BURST; n++) {
		if (B->conf->mode == MODE_BALANCE &&
		    qlen >= B->conf->max_queue) {
			/* Full: the kernel's backlog holds the rest. */
			accept_pause();
			return;
		}
		if (B->conf->mode == MODE_INETD && nichildren >= B->target) {
			accept_pause();
			return;
		}
		sl = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warnx("cannot accept: %s; pausing 100 ms",
				    strerror(errno));
				accept_pause();
				timer_set(&emfile_timer, 0.1);
			}
			return;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = cfd;
		c->id = ++next_id;
		c->listener = li;
		B->connections_total++;
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			sockaddr_format(&ss, sl, c->peer, sizeof(c->peer));
		else
			strlcpy(c->peer, "unix", sizeof(c->peer));
		if (ss.ss_family == AF_INET)
			c->iphash = fnv1a(&((struct sockaddr_in *)&ss)->
			    sin_addr, 4, 2166136261u);
		else if (ss.ss_family == AF_INET6)
			c->iphash = fnv1a(&((struct sockaddr_in6 *)&ss)->
			    sin6_addr, 16, 2166136261u);
		if (B->conf->mode == MODE_INETD) {
			inetd_spawn(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&queue, c, entry);
		qlen++;
		balance_kick();
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

static void
chan_event(int fd, uint32_t ev, void *arg)
{
	struct worker *w = arg;
	char	 buf[CHAN_MSG_MAX + 1];
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	struct cmsghdr *cm;
	long long id;
	ssize_t	 n;
	int	 k, r;

	if (ev & EPOLLOUT) {
		w->chan_full = false;
		timer_cancel(&w->chan_timer);
		loop_mod(fd, EPOLLIN);
		balance_kick();
	}
	for (k = 0; k < 256; k++) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf) - 1;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/*
			 * The worker closed its end: usually it is exiting,
			 * and the reaper decides what comes next; if it lives
			 * on without a channel, it is replaced.
			 */
			loop_del(fd);
			close(fd);
			w->chan_fd = -1;
			w->active = 0;
			w->chan_full = false;
			timer_set(&w->chan_timer, CHAN_LOST_GRACE);
			pool_worker_idle(B, w);
			return;
		}
		/* Workers have no business sending fds: close them. */
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_RIGHTS) {
				int	*fds = (int *)(void *)CMSG_DATA(cm);
				size_t	 i, nf = (cm->cmsg_len - CMSG_LEN(0)) /
				    sizeof(int);

				for (i = 0; i < nf; i++)
					close(fds[i]);
			}
		r = (msg.msg_flags & MSG_TRUNC) ? -EMSGSIZE :
		    balance_parse_message(buf, (size_t)n, &id);
		if (r < 0) {
			if (w->garbage++ == 0)
				log_warnx("worker %d (pid %d) sent a message "
				    "that is not {\"type\":\"closed\",\"id\":N} "
				    "or {\"type\":\"ready\"}: no more "
				    "connections until it behaves", w->id,
				    (int)w->pid);
			if (w->garbage == GARBAGE_LIMIT)
				pool_recycle(B, w, "kept sending garbage");
			continue;
		}
		if (w->garbage > 0) {
			w->garbage = 0;
			balance_kick();
		}
		if (r == 1) {
			pool_worker_notify(B, w, "READY", "1");
			balance_kick();
		} else {
			if (w->active > 0 && --w->active == 0)
				pool_worker_idle(B, w);
			balance_kick();
		}
	}
}

/*
 * A new worker's channel: returns the worker's end (for fd 3) and keeps
 * the master's end in w->chan_fd.
 */
int
balance_worker_channel(struct worker *w, int *child_fd)
{
	int	 sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	set_nonblock(sv[0], true);
	if (loop_add(sv[0], EPOLLIN, chan_event, w) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -EIO;
	}
	w->chan_fd = sv[0];
	*child_fd = sv[1];
	timer_init(&w->chan_timer, on_chan_timer, w);
	if (B->conf->max_requests > 0)
		w->max_requests = B->conf->max_requests +
		    (B->conf->max_requests_jitter > 0 ? (long)arc4random_uniform(
		    (uint32_t)(B->conf->max_requests_jitter + 1)) : 0);
	return 0;
}

/* The worker is gone: what it held is gone with it. */
void
balance_worker_gone(struct worker *w)
{
	if (w->chan_timer.cb != NULL)
		timer_cancel(&w->chan_timer);
	if (w->chan_fd >= 0) {
		loop_del(w->chan_fd);
		close(w->chan_fd);
		w->chan_fd = -1;
	}
	w->active = 0;
}

/* inetd: the command runs with the connection as stdin and stdout. */
static void
inetd_spawn(struct conn *c)
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
		    B->conf->listeners[c->listener].name);
		xasprintf(&vars[8], "WPOOL_MASTER_PID=%d", (int)B->pid);
	}
#undef UNBRACKET
	env = xcalloc(B->nenv_base + 10, sizeof(char *));
	for (i = 0; i < B->nenv_base; i++)
		env[n++] = B->env_base[i];
	for (k = 0; k < 9; k++)
		env[n++] = vars[k];
	memset(&req, 0, sizeof(req));
	req.argv = B->conf->argv;
	req.envp = env;
	req.stdin_fd = c->fd;
	req.stdout_fd = c->fd;
	req.stderr_fd = -1;
	req.set_user = B->conf->set_user;
	req.uid = B->conf->uid;
	req.gid = B->conf->gid;
	req.groups = B->conf->groups;
	req.ngroups = B->conf->ngroups;
	req.chdir = B->conf->chdir;
	req.nofile = &B->nofile;
	pid = spawn_child(&req, &status_fd);
	for (k = 0; k < 9; k++)
		free(vars[k]);
	free(env);
	if (pid < 0) {
		errno = -pid;
		log_warn("cannot fork for a connection from %s", c->peer);
		conn_free(c);
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
	B->nconnections = nichildren;
	log_debug("connection from %s: pid %d", c->peer, (int)pid);
	conn_free(c);
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
balance_reaped(pid_t pid, int status)
{
	struct ichild *ch;

	TAILQ_FOREACH(ch, &ichildren, entry)
		if (ch->pid == pid)
			break;
	if (ch == NULL)
		return false;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 126)
		log_warnx("connection from %s: '%s' exited with status %d",
		    ch->peer, B->conf->argv[0], WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && !(B->state == POOL_STOPPING &&
	    (WTERMSIG(status) == B->conf->stop_signal ||
	    WTERMSIG(status) == SIGKILL))) {
		char	 after[32];

		format_duration(now_mono() - ch->started, after, sizeof(after));
		log_warnx("connection from %s: '%s' (pid %d) killed by signal "
		    "%s after %s", ch->peer, B->conf->argv[0], (int)pid,
		    signal_name(WTERMSIG(status)), after);
	}
	TAILQ_REMOVE(&ichildren, ch, entry);
	free(ch);
	nichildren--;
	B->nconnections = nichildren;
	if (!accepting && nichildren < B->target)
		accept_resume();
	if (B->state == POOL_STOPPING && nichildren == 0)
		pool_check_done(B);
	return true;
}

/* Stopping: ask every inetd child to stop; returns how many there are. */
int
balance_stop(int sig)
{
	struct ichild *ch;
	struct conn *c;

	if (B == NULL)
		return 0;
	accept_pause();
	/* Queued connections were never served: close them cleanly. */
	while ((c = TAILQ_FIRST(&queue)) != NULL) {
		TAILQ_REMOVE(&queue, c, entry);
		conn_free(c);
	}
	qlen = 0;
	TAILQ_FOREACH(ch, &ichildren, entry)
		kill(ch->pid, sig);
	return nichildren;
}

json_object *
balance_status_json(double mono)
{
	json_object *a = json_object_new_array();
	struct ichild *ch;

	TAILQ_FOREACH(ch, &ichildren, entry) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(ch->pid));
		json_object_object_add(o, "peer",
		    json_object_new_string(ch->peer));
		json_object_object_add(o, "listener", json_object_new_string(
		    B->conf->listeners[ch->listener].name));
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

	B = p;
	timer_init(&emfile_timer, on_emfile, NULL);
	if (p->conf->mode != MODE_BALANCE && p->conf->mode != MODE_INETD)
		return 0;
	if (p->conf->mode == MODE_BALANCE)
		balance_ring_build(p->target);
	for (i = 0; i < p->conf->nlisteners; i++) {
		struct listener *l = &p->conf->listeners[i];

		set_nonblock(l->fd, true);
		if ((r = loop_add(l->fd, EPOLLIN, on_accept,
		    (void *)(intptr_t)i)) < 0) {
			snprintf(err, len, "cannot watch %s", l->address);
			return r;
		}
	}
	accepting = true;
	return 0;
}
