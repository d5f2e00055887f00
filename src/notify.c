/*
 * notify.c: the sd_notify datagram socket given to workers as
 * NOTIFY_SOCKET.  Owns that socket, the cache of who sent what, and the
 * helper children that take datagrams carrying descriptors.  A message is
 * attributed by the sender's credentials (SO_PASSCRED) to the worker that
 * is, or is an ancestor of, the sender (or whose MAINPID= it is).
 *
 * Anyone on the host can send here: the abstract name is listed in
 * /proc/net/unix.  So the master never receives a descriptor itself.  It
 * peeks (MSG_PEEK, a control buffer with room for the credentials only:
 * the kernel installs no descriptor and keeps the datagram's), handles
 * what it peeked, and consumes datagrams that carry none.  A run of
 * datagrams that carries descriptors is consumed by a helper child
 * (fdrecv_msg, in the child) that closes them, or holds the ones whose
 * close may wait, in its own context; systemd-notify's BARRIER=1 (a pipe
 * that it waits to see closed) is one of those.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define NOTIFY_MAX	4096
#define NOTIFY_BATCH	64	/* datagrams peeked at once */
#define NOTIFY_ROUNDS	8	/* batches per wakeup, then other work */

/*
 * Helpers: at most HELPERS_MAX at a time, each killed HELPER_DEADLINE
 * after it started (which ends any close it waits in).  A helper lives a
 * millisecond when the descriptors close at once (a barrier's pipe), so
 * a burst of workers starting does not come near the limits.  When half
 * of them are busy, or more than HELPER_RATE start in a second, the socket
 * refuses descriptors (SO_PASSRIGHTS: the sender's sendmsg fails with
 * EPERM) until none is left and REFUSE_MIN has passed.  Refusing, rather than dropping
 * the datagram, is the choice: a datagram with descriptors cannot be
 * dropped without the kernel closing them in the master, and refusing
 * keeps the queue free for the messages that carry none (READY=1 and the
 * like still work; only a BARRIER=1 sent meanwhile fails, with EPERM).
 */
#define HELPERS_MAX	8
#define HELPER_DEADLINE	2.0
#define HELPER_RATE	50
#define REFUSE_MIN	1.0

/*
 * Attribution cache: one entry per (pid, uid) slot, direct-mapped.  A
 * verdict for a worker's process is checked on each use by the sender's
 * start time (a reused pid is another process); a verdict of "no
 * worker's" is trusted for NEG_TTL, so that a flood from another user
 * costs a lookup per datagram, not a walk of /proc.  The whole cache is
 * dropped when the workers (or their MAINPID=) change.
 */
/*
 * A wakeup that found at least FLOOD_MIN datagrams and none of them a
 * worker's is a flood (the kernel queues only max_dgram_qlen, 10 by
 * default, from senders that are not connected): the socket is left
 * alone for FLOOD_PAUSE, so that a stranger's flood costs the master a
 * few wakeups a second instead of one per datagram or two.  Workers'
 * messages wait at most that long, and none is lost: their senders block
 * (or get EAGAIN) like the stranger's.
 */
#define FLOOD_MIN	8
#define FLOOD_PAUSE	0.005

#define ACACHE_SIZE	1024	/* a power of two */
#define NEG_TTL		1.0
#define WALK_DEPTH	64

struct acache {
	pid_t	 pid;		/* 0: empty */
	uid_t	 uid;
	pid_t	 wpid;		/* the worker's pid; 0: none */
	unsigned long long start;
	double	 checked;
};

struct helper {
	pid_t	 pid;
	int	 pidfd;		/* -1: free */
	double	 started;
};

struct notify_msg {
	struct notify *nt;
	struct pool *p;
	struct worker *w;
};

/* The socket's state: the pool's (p->notify) from notify_open on. */
struct notify {
	struct pool *pool;
	int	 fd;
	char	 name[108];
	/* The last batch peeked; kept while a helper consumes it. */
	struct mmsghdr peekv[NOTIFY_BATCH];
	struct iovec peek_iov[NOTIFY_BATCH];
	char	 peek_buf[NOTIFY_BATCH][NOTIFY_MAX];
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(struct ucred))];
	} peek_ctl[NOTIFY_BATCH];
	bool	 one_at_a_time;		/* no SO_PEEK_OFF here */
	struct acache acache[ACACHE_SIZE];
	uint64_t acache_print;		/* of the workers it was filled for */
	struct helper helpers[HELPERS_MAX];
	int	 nhelpers;
	int	 consume_fd;		/* the consuming helper's count pipe */
	int	 consume_want, consume_got;
	struct timer helper_timer, flood_timer;
	bool	 flood_paused;
	bool	 refusing, paused;
	double	 refused_at, rate_window;
	int	 rate_count;
	unsigned long refused_total;
	double	 logged_at;		/* refusing: when last said */
	unsigned long logged_total;	/* refused_total then */
	bool	 told;			/* this episode was said */
	pid_t	 last_worker, last_named;	/* MAINPID= last refused */
};

/* Calls cb(key, value) for each KEY=VALUE line; others are skipped. */
int
notify_parse(const char *buf, size_t len, void (*cb)(const char *,
    const char *, void *), void *arg)
{
	char	 line[NOTIFY_MAX + 1], *eq;
	const char *p = buf, *end = buf + len, *nl;
	size_t	 n;
	int	 count = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && n < sizeof(line)) {
			memcpy(line, p, n);
			line[n] = '\0';
			if (memchr(line, '\0', n) == NULL &&
			    (eq = strchr(line, '=')) != NULL && eq != line) {
				*eq = '\0';
				cb(line, eq + 1, arg);
				count++;
			}
		}
		p += n + 1;
	}
	return count;
}

/* --- attribution -------------------------------------------------------- */

/* What the cache's verdicts depend on: the workers' pids and MAINPID=s. */
static uint64_t
workers_print(struct pool *p)
{
	struct worker *w;
	uint64_t h = 1469598103934665603ULL;

	TAILQ_FOREACH(w, &p->workers, entry) {
		h = (h ^ (uint64_t)(uint32_t)w->pid) * 1099511628211ULL;
		h = (h ^ (uint64_t)(uint32_t)w->main_pid) * 1099511628211ULL;
	}
	return h;
}

/* Drops every verdict once the workers changed. */
static void
acache_check(struct notify *nt)
{
	uint64_t print = workers_print(nt->pool);

	if (print != nt->acache_print) {
		memset(nt->acache, 0, sizeof(nt->acache));
		nt->acache_print = print;
	}
}

static struct worker *
worker_of_pid(struct pool *p, pid_t pid)
{
	struct worker *w;

	if ((w = pool_find_pid(p, pid)) != NULL)
		return w;
	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->main_pid == pid)
			return w;
	return NULL;
}

/* The walk of /proc ancestors that the cache saves. */
static struct worker *
walk(struct pool *p, pid_t pid)
{
	struct worker *w;
	int	 depth;

	for (depth = 0; depth < WALK_DEPTH && pid > 1; depth++) {
		if ((w = worker_of_pid(p, pid)) != NULL)
			return w;
		if (pid == p->pid || (pid = procfs_ppid(pid)) < 0)
			return NULL;
	}
	return NULL;
}

static struct acache *
acache_slot(struct notify *nt, pid_t pid, uid_t uid)
{
	uint32_t h = ((uint32_t)pid * 2654435761U) ^ (uint32_t)uid;

	return &nt->acache[(h ^ (h >> 16)) & (ACACHE_SIZE - 1)];
}

static struct worker *
attribute(struct notify *nt, const struct ucred *cred, double now)
{
	struct pool *p = nt->pool;
	struct acache *e = acache_slot(nt, cred->pid, cred->uid);
	unsigned long long start;
	struct worker *w;

	if (e->pid == cred->pid && e->uid == cred->uid && e->wpid == 0 &&
	    now - e->checked < NEG_TTL)
		return NULL;
	if (procfs_ident(cred->pid, NULL, &start) < 0)
		start = 0;
	if (e->pid == cred->pid && e->uid == cred->uid && e->wpid != 0 &&
	    start != 0 && start == e->start &&
	    (w = pool_find_pid(p, e->wpid)) != NULL)
		return w;
	w = walk(p, cred->pid);
	e->pid = cred->pid;
	e->uid = cred->uid;
	e->wpid = w ? w->pid : 0;
	e->start = start;
	e->checked = now;
	return w;
}

/*
 * MAINPID= may name the worker itself, a descendant, or a process the
 * master adopted (as subreaper: a daemon that double-forked away from the
 * worker is the usual main pid), but never another worker's process, the
 * master, or a process outside the pool.
 */
static bool
mainpid_allowed(struct pool *p, struct worker *w, pid_t pid)
{
	pid_t	 pp;
	int	 depth;

	for (depth = 0; depth < WALK_DEPTH && pid > 1; depth++) {
		if (pid == w->pid)
			return true;
		if (pid == p->pid || pool_find_pid(p, pid) != NULL)
			return false;
		if ((pp = procfs_ppid(pid)) < 0)
			return false;
		if (pp == p->pid)
			return true;	/* adopted, and no worker */
		pid = pp;
	}
	return false;
}

static void
on_pair(const char *key, const char *val, void *arg)
{
	struct notify_msg *m = arg;
	long long n;

	if (strcmp(key, "MAINPID") == 0 && parse_int(val, 1, 1LL << 31,
	    &n) == 0 && !mainpid_allowed(m->p, m->w, (pid_t)n)) {
		/* Once per worker and pid: a worker that insists is not news. */
		if (m->nt->last_worker != m->w->pid ||
		    m->nt->last_named != (pid_t)n)
			log_warnx("worker %d (pid %d): MAINPID=%lld refused: "
			    "not a process of the worker's own tree", m->w->id,
			    (int)m->w->pid, n);
		m->nt->last_worker = m->w->pid;
		m->nt->last_named = (pid_t)n;
		return;
	}
	pool_worker_notify(m->p, m->w, key, val);
}

/* The sender's credentials, which SO_PASSCRED makes the kernel attach. */
static bool
msg_cred(const struct msghdr *h, struct ucred *cred)
{
	const struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR((struct msghdr *)h,
	    (struct cmsghdr *)cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_CREDENTIALS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(*cred))) {
			memcpy(cred, CMSG_DATA(cm), sizeof(*cred));
			return true;
		}
	return false;
}

/* Returns whether the message was a worker's. */
static bool
handle(struct notify *nt, const struct msghdr *h, size_t len, double now)
{
	struct ucred cred;
	struct notify_msg m;

	if ((h->msg_flags & MSG_TRUNC) || !msg_cred(h, &cred))
		return false;
	m.nt = nt;
	m.p = nt->pool;
	if ((m.w = attribute(nt, &cred, now)) == NULL) {
		log_debug("notify message from pid %d, not a worker: ignored",
		    (int)cred.pid);
		return false;
	}
	notify_parse(h->msg_iov->iov_base, len, on_pair, &m);
	return true;
}

/* --- helpers ------------------------------------------------------------- */

static void	 notify_read(int, uint32_t, void *);
static void	 resume(struct notify *);

/* Said at most once a minute: a stranger may start an episode a second. */
#define REFUSE_LOG_EVERY 60.0

static void
set_refusing(struct notify *nt, bool on, pid_t sender, uid_t uid)
{
	if (on == nt->refusing)
		return;
	if (on && fdrecv_refuse(nt->fd) < 0)
		return;		/* an older kernel: the limits still hold */
	if (!on)
		(void)fdrecv_allow(nt->fd);
	nt->refusing = on;
	if (on) {
		nt->refused_at = now_mono();
		nt->refused_total++;
		nt->told = nt->refused_at - nt->logged_at >= REFUSE_LOG_EVERY;
		if (nt->told) {
			log_warnx("notify socket: refusing descriptors for "
			    "now: too many sent with messages (the last by "
			    "pid %d, uid %d; %lu time%s since the last "
			    "warning)", (int)sender, (int)uid,
			    nt->refused_total - nt->logged_total,
			    nt->refused_total - nt->logged_total == 1 ?
			    "" : "s");
			nt->logged_at = nt->refused_at;
			nt->logged_total = nt->refused_total;
		}
	} else if (nt->told)
		log_info("notify socket: accepting descriptors again");
}

static void
helpers_tick(void *arg)
{
	struct notify *nt = arg;
	double	 now = now_mono();
	int	 i;

	for (i = 0; i < HELPERS_MAX; i++)
		if (nt->helpers[i].pidfd >= 0 &&
		    now - nt->helpers[i].started >= HELPER_DEADLINE)
			(void)syscall(SYS_pidfd_send_signal,
			    nt->helpers[i].pidfd, SIGKILL, NULL, 0);
	if (nt->refusing && nt->nhelpers == 0 &&
	    now - nt->refused_at >= REFUSE_MIN)
		set_refusing(nt, false, 0, 0);
	if (nt->paused && nt->nhelpers < HELPERS_MAX)
		resume(nt);
	if (nt->nhelpers > 0 || nt->refusing || nt->paused)
		timer_set(&nt->helper_timer, 0.25);
}

static void
resume(struct notify *nt)
{
	if (nt->fd >= 0 && nt->consume_fd < 0 && !nt->flood_paused) {
		nt->paused = false;
		loop_mod(nt->fd, EPOLLIN);
		notify_read(nt->fd, EPOLLIN, nt);
	}
}

static void
on_helper_exit(int fd, uint32_t ev, void *arg)
{
	struct notify *nt = arg;
	struct helper *h = NULL;
	int	 i;

	(void)ev;
	for (i = 0; i < HELPERS_MAX && h == NULL; i++)
		if (nt->helpers[i].pidfd == fd)
			h = &nt->helpers[i];
	if (h == NULL)
		return;
	loop_del(h->pidfd);
	close(h->pidfd);
	h->pidfd = -1;
	nt->nhelpers--;
	/* pool.c's reaper collects it: a pid of no worker, silently. */
	if (nt->paused)
		resume(nt);
}

/* The consuming helper says one byte per datagram it took. */
static void
on_consumed(int fd, uint32_t ev, void *arg)
{
	struct notify *nt = arg;
	char	 b[NOTIFY_BATCH];
	ssize_t	 n;
	double	 now = now_mono();
	int	 i;

	(void)ev;
	while ((n = read(fd, b, sizeof(b))) > 0)
		nt->consume_got += (int)n;
	if (n < 0 && errno == EAGAIN)
		return;
	loop_del(fd);
	close(fd);
	nt->consume_fd = -1;
	if (nt->consume_got > nt->consume_want)
		nt->consume_got = nt->consume_want;
	/* Those it took are gone from the queue: handle them, once. */
	acache_check(nt);
	for (i = 0; i < nt->consume_got; i++)
		handle(nt, &nt->peekv[i].msg_hdr, nt->peekv[i].msg_len, now);
	resume(nt);
}

/* The child: takes want datagrams, tells each, and exits. */
static void __attribute__((noreturn))
helper_main(int sock, int out, int want)
{
	char	 buf[NOTIFY_MAX];
	int	 i;

	fdrecv_holder_mode();
	for (i = 0; i < want; i++) {
		if (fdrecv_msg(sock, buf, sizeof(buf), MSG_DONTWAIT, NULL,
		    NULL, NULL) < 0)
			break;
		if (write(out, "x", 1) != 1)
			break;
	}
	close(sock);
	close(out);
	/* What was held closes here, in this child. */
	_exit(0);
}

/* Starts a helper to take the first want datagrams; false if it cannot. */
static bool
helper_start(struct notify *nt, int want, const struct ucred *sender)
{
	struct helper *h = NULL;
	int	 pfd[2], keep[2], i;
	double	 now = now_mono();
	pid_t	 pid;

	for (i = 0; i < HELPERS_MAX && h == NULL; i++)
		if (nt->helpers[i].pidfd < 0)
			h = &nt->helpers[i];
	if (now - nt->rate_window >= 1.0) {
		nt->rate_window = now;
		nt->rate_count = 0;
	}
	if (h == NULL || nt->nhelpers + 1 > HELPERS_MAX / 2 ||
	    nt->rate_count + 1 > HELPER_RATE)
		set_refusing(nt, true, sender->pid, sender->uid);
	if (h == NULL)
		return false;
	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0)
		return false;
	keep[0] = nt->fd;
	keep[1] = pfd[1];
	if ((pid = fdrecv_fork_child(keep, 2)) == 0)
		helper_main(nt->fd, pfd[1], want);
	close(pfd[1]);
	if (pid < 0 || (h->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
		/* Without a pidfd it could not be bounded: never mind it. */
		if (pid > 0)
			kill(pid, SIGKILL);
		close(pfd[0]);
		return false;
	}
	if (loop_add(h->pidfd, EPOLLIN, on_helper_exit, nt) < 0 ||
	    loop_add(pfd[0], EPOLLIN, on_consumed, nt) < 0) {
		(void)syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL,
		    0);
		loop_del(h->pidfd);
		close(h->pidfd);
		h->pidfd = -1;
		close(pfd[0]);
		return false;
	}
	h->pid = pid;
	h->started = now;
	nt->nhelpers++;
	nt->rate_count++;
	nt->consume_fd = pfd[0];
	nt->consume_want = want;
	nt->consume_got = 0;
	if (!nt->helper_timer.armed)
		timer_set(&nt->helper_timer, 0.25);
	return true;
}

/* --- the socket ---------------------------------------------------------- */

static int
peek_batch(struct notify *nt, int fd)
{
	int	 i, zero = 0;

	for (i = 0; i < NOTIFY_BATCH; i++) {
		nt->peek_iov[i].iov_base = nt->peek_buf[i];
		nt->peek_iov[i].iov_len = NOTIFY_MAX;
		memset(&nt->peekv[i], 0, sizeof(nt->peekv[i]));
		nt->peekv[i].msg_hdr.msg_iov = &nt->peek_iov[i];
		nt->peekv[i].msg_hdr.msg_iovlen = 1;
		nt->peekv[i].msg_hdr.msg_control = nt->peek_ctl[i].buf;
		nt->peekv[i].msg_hdr.msg_controllen =
		    sizeof(nt->peek_ctl[i].buf);
	}
	/*
	 * Each peek starts past the one before: SO_PEEK_OFF from 0.  A
	 * kernel without it for this socket peeks the head only.
	 */
	if (!nt->one_at_a_time && setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero,
	    sizeof(zero)) < 0)
		nt->one_at_a_time = true;
	return recvmmsg(fd, nt->peekv, nt->one_at_a_time ? 1 : NOTIFY_BATCH,
	    MSG_PEEK | MSG_DONTWAIT, NULL);
}

/* Takes n datagrams that carry no descriptor. */
static int
consume(int fd, int n)
{
	struct mmsghdr v[NOTIFY_BATCH];
	struct iovec iov = { NULL, 0 };
	int	 i;

	memset(v, 0, sizeof(v[0]) * (size_t)n);
	for (i = 0; i < n; i++) {
		v[i].msg_hdr.msg_iov = &iov;
		v[i].msg_hdr.msg_iovlen = 1;
	}
	return recvmmsg(fd, v, (unsigned)n, MSG_DONTWAIT, NULL);
}

static void
on_flood_timer(void *arg)
{
	struct notify *nt = arg;

	nt->flood_paused = false;
	if (!nt->paused)
		resume(nt);
}

static void
notify_read(int fd, uint32_t ev, void *arg)
{
	struct notify *nt = arg;
	double	 now = now_mono();
	int	 round, n, k, i, got, seen = 0, workers = 0;

	(void)ev;
	if (nt->consume_fd >= 0 || nt->flood_paused)
		return;
	acache_check(nt);
	for (round = 0; round < NOTIFY_ROUNDS; round++) {
		if ((n = peek_batch(nt, fd)) <= 0)
			break;
		/*
		 * The leading datagrams without descriptors (MSG_CTRUNC:
		 * there were some and no room); after a truncated one the
		 * peeked positions no longer match datagrams.
		 */
		for (k = 0; k < n; k++) {
			if (nt->peekv[k].msg_hdr.msg_flags & MSG_CTRUNC)
				break;
			if (nt->peekv[k].msg_hdr.msg_flags & MSG_TRUNC) {
				k++;
				break;
			}
		}
		if (k == 0) {
			struct ucred cred = { 0, 0, 0 };

			/* The head carries descriptors: a helper takes it
			 * and what follows in this batch. */
			for (k = 1; k < n; k++)
				if (nt->peekv[k - 1].msg_hdr.msg_flags &
				    MSG_TRUNC)
					break;
			(void)msg_cred(&nt->peekv[0].msg_hdr, &cred);
			loop_mod(fd, 0);
			if (!helper_start(nt, k, &cred)) {
				/* Until a helper is free (helpers_tick). */
				nt->paused = true;
				if (!nt->helper_timer.armed)
					timer_set(&nt->helper_timer, 0.25);
			}
			return;
		}
		if ((got = consume(fd, k)) <= 0)
			break;
		for (i = 0; i < got; i++)
			workers += handle(nt, &nt->peekv[i].msg_hdr,
			    nt->peekv[i].msg_len, now);
		seen += got;
		acache_check(nt);
	}
	if (seen >= FLOOD_MIN && workers == 0) {
		nt->flood_paused = true;
		loop_mod(fd, 0);
		timer_set(&nt->flood_timer, FLOOD_PAUSE);
	}
}

/*
 * Opens the socket in the abstract namespace: no file to clean up, and
 * workers running as another user (-u) can reach it.
 */
int
notify_open(struct pool *p, char *err, size_t len)
{
	struct notify *nt;
	struct sockaddr_un sun;
	socklen_t sl;
	int	 one = 1, fd, r, i;
	char	 kept[sizeof(nt->name) + 1];

	/* An in-place upgrade's: workers know its name already. */
	if ((fd = upgrade_take_notify(kept, sizeof(kept))) >= 0 &&
	    kept[0] == '@') {
		nt = xcalloc(1, sizeof(*nt));
		nt->pool = p;
		nt->fd = nt->consume_fd = -1;
		nt->logged_at = -REFUSE_LOG_EVERY;
		strlcpy(nt->name, kept + 1, sizeof(nt->name));
		goto watch;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0) {
		snprintf(err, len, "cannot open the notify socket: %s",
		    strerror(errno));
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	/* A bigger buffer so a burst of 1024 READY=1 is not dropped. */
	{
		int	 sz = 1 << 20;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	nt = xcalloc(1, sizeof(*nt));
	nt->pool = p;
	nt->fd = nt->consume_fd = -1;
	nt->logged_at = -REFUSE_LOG_EVERY;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(nt->name, sizeof(nt->name), "wpool/%d/%08lx/notify",
	    (int)getpid(), (unsigned long)arc4random());
	memcpy(sun.sun_path + 1, nt->name, strlen(nt->name));
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(nt->name));
	if (bind(fd, (struct sockaddr *)&sun, sl) < 0) {
		snprintf(err, len, "cannot bind the notify socket: %s",
		    strerror(errno));
		r = -errno;
		close(fd);
		free(nt);
		return r;
	}
watch:
	if ((r = loop_add(fd, EPOLLIN, notify_read, nt)) < 0) {
		close(fd);
		free(nt);
		snprintf(err, len, "cannot watch the notify socket");
		return r;
	}
	for (i = 0; i < HELPERS_MAX; i++)
		nt->helpers[i].pidfd = -1;
	timer_init(&nt->helper_timer, helpers_tick, nt);
	timer_init(&nt->flood_timer, on_flood_timer, nt);
	nt->fd = fd;
	p->notify = nt;
	xasprintf(&p->notify_path, "@%s", nt->name);
	return 0;
}

int
notify_fd(const struct pool *p)
{
	return p->notify != NULL ? p->notify->fd : -1;
}

void
notify_close(struct pool *p)
{
	struct notify *nt = p->notify;
	int	 i;

	if (nt == NULL)
		return;
	loop_del(nt->fd);
	close(nt->fd);
	if (nt->consume_fd >= 0) {
		loop_del(nt->consume_fd);
		close(nt->consume_fd);
		nt->consume_fd = -1;
	}
	/* Helpers die with the master (PDEATHSIG) or at their deadline. */
	for (i = 0; i < HELPERS_MAX; i++)
		if (nt->helpers[i].pidfd >= 0) {
			(void)syscall(SYS_pidfd_send_signal,
			    nt->helpers[i].pidfd, SIGKILL, NULL, 0);
			loop_del(nt->helpers[i].pidfd);
			close(nt->helpers[i].pidfd);
			nt->helpers[i].pidfd = -1;
		}
	nt->nhelpers = 0;
	timer_cancel(&nt->helper_timer);
	timer_cancel(&nt->flood_timer);
	free(nt);
	p->notify = NULL;
}
