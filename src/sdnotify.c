/*
 * sdnotify.c: wpool as a client of its own service manager, through the
 * NOTIFY_SOCKET given to wpool itself (sd_notify(3)); notify.c is the
 * other side, the socket wpool's workers talk to.  Owns the datagram
 * socket to the manager, what the manager was last told, the watchdog,
 * extend and status timers, the sockets handed back from the fd store
 * (LISTEN_FDS) until listeners adopt them, and the names under which
 * listeners are stored.  Reads struct pool; changes nothing in it.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netdb.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* STATUS= at most this often: a worker storm must not flood the manager. */
#define SD_STATUS_EVERY		0.5
/*
 * wpool cannot see TimeoutStartSec= and the like, so while a start, reload
 * or stop makes progress it asks for SD_EXTEND_BY more every
 * SD_EXTEND_EVERY seconds: a loaded master one tick late still holds it.
 */
#define SD_EXTEND_EVERY		5.0
#define SD_EXTEND_BY		15.0
/* A state message the socket refused is sent again, this many times. */
#define SD_RETRY_FIRST		0.5
#define SD_RETRY_MAX		30.0
#define SD_RETRIES		10
/* systemd's limit for FDNAME= */
#define SD_FDNAME_MAX		255

/* What the manager was told, in the order it is told. */
enum sd_phase { SD_NONE, SD_STARTING, SD_READY, SD_RELOADING, SD_STOPPING };

/* A socket, by its name in the fd store and its inode. */
struct sd_fd {
	char	*name;
	int	 fd;		/* got: -1 once adopted or closed; stored: -1 */
	dev_t	 dev;
	ino_t	 ino;
	bool	 out;	/* out of the store already (FDSTOREREMOVE sent) */
};

struct sdnotify {
	int	 fd;			/* -1: no NOTIFY_SOCKET */
	struct sockaddr_un addr;
	socklen_t addrlen;
	struct pool *pool;
	enum sd_phase phase;		/* told */
	bool	 ever_ready;
	bool	 stopping;		/* sdnotify_stopping was called */
	unsigned reload_gen;		/* the reload RELOADING=1 was for */
	char	 status[256];		/* told */
	double	 status_at;
	struct timer status_timer;	/* a newer STATUS= waits for it */
	struct timer extend_timer;
	struct timer watchdog_timer;
	double	 watchdog_every;	/* 0: no watchdog asked for */
	struct timer retry_timer;
	double	 retry_every;
	int	 retries;
	int	 last_errno;		/* logged once per kind */
	struct sd_fd *got;		/* LISTEN_FDS not adopted yet */
	size_t	 ngot;
	struct sd_fd *stored;		/* what the store holds of ours */
	size_t	 nstored;
	bool	 store;			/* the fd store is used */
};

static struct sdnotify sd = { .fd = -1 };

struct sdnotify *
sdnotify_state(void)
{
	return &sd;
}

/* Sends one datagram (with fd, if >= 0); never waits: 0 or -errno. */
static int
sd_send(const char *msg, int fd)
{
	union {
		struct cmsghdr h;
		char	 buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { (void *)msg, strlen(msg) };
	struct msghdr mh;
	struct cmsghdr *c;

	if (sd.fd < 0)
		return -ENOTCONN;
	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &sd.addr;
	mh.msg_namelen = sd.addrlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(sd.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
		sd.last_errno = 0;
		return 0;
	}
	if (errno != sd.last_errno)
		log_warnx("NOTIFY_SOCKET %s%s: cannot tell the service "
		    "manager: %s", sd.addr.sun_path[0] ? "" : "@",
		    sd.addr.sun_path + (sd.addr.sun_path[0] ? 0 : 1),
		    strerror(errno));
	sd.last_errno = errno;
	return -errno;
}

/* FDNAME= of listener l's socket in slot (0: the listener's own). */
static int
sd_fdname(const struct listener *l, int slot, char *buf, size_t len)
{
	int	 n;

	if (slot == 0)
		n = snprintf(buf, len, "%s", l->name);
	else
		n = snprintf(buf, len, "%s.slot%d", l->name, slot);
	return n < 0 || (size_t)n >= len || n > SD_FDNAME_MAX ?
	    -ENAMETOOLONG : 0;
}

/*
 * The sockets the fd store gave back (sd_listen_fds(3)), unless `-b
 * systemd` took them all already (it unsets LISTEN_FDS).
 */
static void
sd_read_listen_fds(void)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	const char *names = getenv("LISTEN_FDNAMES");
	char	*buf, *np, *name;
	long long n, lpid;
	struct stat st;
	int	 i;

	if (fds == NULL || pid == NULL)
		return;
	if (parse_int(pid, 1, 1LL << 31, &lpid) < 0 || lpid != getpid() ||
	    parse_int(fds, 1, 4096, &n) < 0) {
		/* Meant for another process, as sd_listen_fds(3) ignores. */
		log_debug("LISTEN_FDS=%.32s LISTEN_PID=%.32s: not for wpool's "
		    "pid %d: ignored", fds, pid, (int)getpid());
		goto out;
	}
	sd.got = xcalloc((size_t)n, sizeof(*sd.got));
	np = buf = xstrdup(names != NULL ? names : "");
	for (i = 0; i < n; i++) {
		name = strsep(&np, ":");
		if (fstat(3 + i, &st) < 0)
			continue;
		set_cloexec(3 + i, true);
		sd.got[sd.ngot].fd = 3 + i;
		sd.got[sd.ngot].name = xstrdup(name != NULL ? name : "unknown");
		sd.got[sd.ngot].dev = st.st_dev;
		sd.got[sd.ngot].ino = st.st_ino;
		sd.ngot++;
	}
	free(buf);
out:
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
}

/*
 * The store drops every copy of g's name (FDSTOREREMOVE=1), or the next
 * wpool would get it back with connections nobody serves; wpool keeps its
 * own for a listener bound where it is (stored again under that one's name).
 */
static void
sd_unstore_got(struct sd_fd *g)
{
	char	 msg[64 + SD_FDNAME_MAX];

	if (g->out)
		return;
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", g->name);
	(void)sd_send(msg, -1);
	g->out = true;
	g->dev = 0;		/* to be stored again by whoever takes it */
	g->ino = 0;
}

/* A socket from the fd store that no listener takes: closed, and dropped. */
static void
sd_drop_got(struct sd_fd *g)
{
	sd_unstore_got(g);
	close(g->fd);
	g->fd = -1;
}

/*
 * Before the listeners open: the manager's socket from NOTIFY_SOCKET
 * (a path, or @abstract), and what the fd store gave back.  Without
 * NOTIFY_SOCKET nothing is ever sent and no timer is armed.
 */
int
sdnotify_init(const struct conf *c, char *err, size_t len)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t	 i, n;

	/*
	 * Only for a pool that binds every listener itself: sockets passed
	 * in (fd:N, -b systemd) are numbered by whoever passed them, and
	 * stored ones at 3.. would take their places after a restart.
	 */
	sd.store = true;
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].type == L_FD)
			sd.store = false;
	if (sd.store)
		sd_read_listen_fds();
	if (path == NULL || *path == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    n >= sizeof(sd.addr.sun_path)) {
		snprintf(err, len, "NOTIFY_SOCKET=%.120s: expected an absolute "
		    "path or @abstract name of up to %zu bytes: not told",
		    path, sizeof(sd.addr.sun_path) - 1);
		return -EINVAL;
	}
	memset(&sd.addr, 0, sizeof(sd.addr));
	sd.addr.sun_family = AF_UNIX;
	memcpy(sd.addr.sun_path, path, n);
	if (path[0] == '@')
		sd.addr.sun_path[0] = '\0';
	sd.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '@' ? 0 : 1));
	sd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sd.fd < 0) {
		snprintf(err, len, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* Whether the manager asked wpool itself for watchdog pings. */
static double
sd_watchdog_every(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	long long u, wp;

	if (usec == NULL || parse_int(usec, 1, 1LL << 50, &u) < 0)
		return 0;
	if (pid != NULL && (parse_int(pid, 1, 1LL << 31, &wp) < 0 ||
	    wp != getpid()))
		return 0;
	/* Half the interval, as sd_watchdog_enabled(3) advises. */
	return (double)u / 2e6;
}

static void
on_watchdog(void *arg)
{
	(void)arg;
	(void)sd_send("WATCHDOG=1", -1);
	timer_set(&sd.watchdog_timer, sd.watchdog_every);
}

/* Readiness as the manager sees it: every wanted worker ready. */
static bool
sd_all_ready(struct pool *p)
{
	if (p->conf->mode == MODE_INETD)
		return true;	/* no workers to wait for */
	return pool_count(p, W_READY) >= p->target;
}

static enum sd_phase
sd_phase_of(struct pool *p)
{
	if (p->state != POOL_RUNNING || sd.stopping)
		return SD_STOPPING;
	if (!sd.ever_ready)
		return sd_all_ready(p) ? SD_READY : SD_STARTING;
	return p->reload.active ? SD_RELOADING : SD_READY;
}

static void
sd_status_text(struct pool *p, enum sd_phase ph, char *buf, size_t len)
{
	int	 ready = pool_count(p, W_READY);

	switch (ph) {
	case SD_STOPPING:
		snprintf(buf, len, "stopping: %d worker%s left", p->nworkers,
		    p->nworkers == 1 ? "" : "s");
		break;
	case SD_RELOADING:
		snprintf(buf, len, "reloading to generation %u: %d/%d "
		    "replaced", p->reload.generation, p->reload.done,
		    p->reload.total);
		break;
	case SD_NONE:
	case SD_STARTING:
		snprintf(buf, len, "starting: %d/%d ready", ready, p->target);
		break;
	case SD_READY:
		snprintf(buf, len, "%d/%d ready, generation %u%s", ready,
		    p->target, p->generation, p->reload.failed ?
		    " (last reload failed)" : "");
		break;
	}
}

/* Whether the phase in progress is getting anywhere: worth the wait. */
static bool
sd_progressing(struct pool *p, enum sd_phase ph)
{
	switch (ph) {
	case SD_STARTING:
		/*
		 * Started, and none died yet: a crash loop lets systemd's
		 * own timeout fail the start.
		 */
		return pool_count(p, W_STARTING) > 0 && p->restarts == 0;
	case SD_RELOADING:
		return p->reload.active;
	case SD_STOPPING:
		return p->nworkers > 0 || inetd_running(p) > 0;
	default:
		return false;
	}
}

static void
on_extend(void *arg)
{
	struct pool *p = arg;
	char	 msg[64];

	if (!sd_progressing(p, sd_phase_of(p)))
		return;
	snprintf(msg, sizeof(msg), "EXTEND_TIMEOUT_USEC=%llu",
	    (unsigned long long)(SD_EXTEND_BY * 1e6));
	(void)sd_send(msg, -1);
	timer_set(&sd.extend_timer, SD_EXTEND_EVERY);
}

static void
on_status(void *arg)
{
	sdnotify_update(arg);
}

static void
on_retry(void *arg)
{
	sdnotify_update(arg);
}

/* The message that tells the manager of phase ph. */
static void
sd_phase_msg(enum sd_phase ph, const char *status, char *buf, size_t len)
{
	struct timespec ts;

	switch (ph) {
	case SD_READY:
		snprintf(buf, len, "READY=1\nSTATUS=%s", status);
		break;
	case SD_RELOADING:
		/* systemd wants both in one datagram (sd_notify(3)). */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(buf, len, "RELOADING=1\nMONOTONIC_USEC=%llu\n"
		    "STATUS=%s", (unsigned long long)ts.tv_sec * 1000000ULL +
		    (unsigned long long)ts.tv_nsec / 1000, status);
		break;
	case SD_STOPPING:
		snprintf(buf, len, "STOPPING=1\nSTATUS=%s", status);
		break;
	default:
		snprintf(buf, len, "STATUS=%s", status);
		break;
	}
}

/*
 * The pool changed: tells the manager what is new.  Cheap when nothing
 * is (a few comparisons), so pool.c may call it after every event.
 */
void
sdnotify_update(struct pool *p)
{
	enum sd_phase want, step;
	char	 status[sizeof(sd.status)], msg[512];
	double	 now;

	if (sd.fd < 0 || sd.pool != p)
		return;
	want = sd_phase_of(p);
	/* Never backwards: a reload asked while stopping stays stopping. */
	if (sd.phase == SD_STOPPING)
		want = SD_STOPPING;
	/*
	 * A reload that follows another at once (asked for while it ran)
	 * has a RELOADING=1 of its own: the manager that asked for it waits
	 * for one stamped after its request.
	 */
	if (want == SD_RELOADING && sd.phase == SD_RELOADING &&
	    p->reload.generation != sd.reload_gen)
		sd.phase = SD_READY;
	while (sd.phase != want) {
		/* A reload before READY was ever told: READY first. */
		step = want == SD_RELOADING && !sd.ever_ready ? SD_READY :
		    want;
		sd_status_text(p, step, status, sizeof(status));
		sd_phase_msg(step, status, msg, sizeof(msg));
		if (sd_send(msg, -1) < 0) {
			if (sd.retries++ < SD_RETRIES) {
				sd.retry_every = sd.retry_every > 0 ?
				    sd.retry_every * 2 : SD_RETRY_FIRST;
				if (sd.retry_every > SD_RETRY_MAX)
					sd.retry_every = SD_RETRY_MAX;
				timer_set(&sd.retry_timer, sd.retry_every);
			}
			return;
		}
		sd.retries = 0;
		sd.retry_every = 0;
		timer_cancel(&sd.retry_timer);
		if (step == SD_READY)
			sd.ever_ready = true;
		if (step == SD_RELOADING)
			sd.reload_gen = p->reload.generation;
		sd.phase = step;
		strlcpy(sd.status, status, sizeof(sd.status));
		sd.status_at = now_mono();
	}
	if (sd.phase != SD_READY && !sd.extend_timer.armed &&
	    sd_progressing(p, sd.phase))
		timer_set(&sd.extend_timer, SD_EXTEND_EVERY);
	sd_status_text(p, sd.phase, status, sizeof(status));
	if (strcmp(status, sd.status) == 0) {
		timer_cancel(&sd.status_timer);
		return;
	}
	now = now_mono();
	if (now - sd.status_at < SD_STATUS_EVERY) {
		if (!sd.status_timer.armed)
			timer_set(&sd.status_timer,
			    SD_STATUS_EVERY - (now - sd.status_at));
		return;
	}
	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	if (sd_send(msg, -1) == 0) {
		strlcpy(sd.status, status, sizeof(sd.status));
		sd.status_at = now;
	}
}

/*
 * The pool starts: timers (the loop is up), the watchdog if asked for,
 * the first STATUS=; and the fd store's sockets no listener took are
 * closed and dropped from the store (FDSTOREREMOVE=1).
 */
void
sdnotify_start(struct pool *p)
{
	size_t	 i;

	sd.pool = p;
	timer_init(&sd.status_timer, on_status, p);
	timer_init(&sd.extend_timer, on_extend, p);
	timer_init(&sd.watchdog_timer, on_watchdog, p);
	timer_init(&sd.retry_timer, on_retry, p);
	for (i = 0; i < sd.ngot; i++) {
		if (sd.got[i].fd < 0)
			continue;
		if (!sd.got[i].out)
			log_info("fd store: %s (fd %d) is no listener's any "
			    "more: dropped", sd.got[i].name, sd.got[i].fd);
		sd_drop_got(&sd.got[i]);
	}
	if (sd.fd < 0)
		return;
	if ((sd.watchdog_every = sd_watchdog_every()) > 0)
		timer_set(&sd.watchdog_timer, sd.watchdog_every);
	sdnotify_update(p);
}

/*
 * The pool is about to stop: STOPPING=1 now, even while it still serves
 * (a shutdown delay), and never READY=1 again.
 */
void
sdnotify_stopping(struct pool *p)
{
	sd.stopping = true;
	sdnotify_update(p);
}

/*
 * The master execs itself in place: the manager hears RELOADING=1 now and
 * READY=1 from the new image (it starts at SD_NONE); the pid stays.  If
 * the exec failed (failed), READY=1 again from this one.
 */
void
sdnotify_upgrading(struct pool *p, bool failed)
{
	char	 msg[512], status[sizeof(sd.status)];

	if (sd.fd < 0 || sd.stopping || sd.phase != SD_READY)
		return;
	if (failed) {
		sd_status_text(p, SD_READY, status, sizeof(status));
		sd_phase_msg(SD_READY, status, msg, sizeof(msg));
	} else
		sd_phase_msg(SD_RELOADING, "upgrading the master in place",
		    msg, sizeof(msg));
	(void)sd_send(msg, -1);
	if (!failed) {
		snprintf(msg, sizeof(msg), "MAINPID=%d", (int)getpid());
		(void)sd_send(msg, -1);
	}
}

/* Whether fd's socket is where listener l would bind (same address). */
static bool
sd_same_inet(const struct listener *l, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;
	struct addrinfo hints, *res, *ai;
	unsigned port;
	bool	 same = false;

	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
		return false;
	port = ntohs(ss->ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
	if (strcmp(l->port, "0") != 0 && (unsigned)atoi(l->port) != port)
		return false;
	if (l->host == NULL)
		return ss->ss_family == AF_INET ?
		    s4->sin_addr.s_addr == htonl(INADDR_ANY) :
		    IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = ss->ss_family;
	hints.ai_flags = AI_PASSIVE;
	hints.ai_socktype = l->type == L_UDP ? SOCK_DGRAM : SOCK_STREAM;
	if (getaddrinfo(l->host, NULL, &hints, &res) != 0)
		return false;
	for (ai = res; ai != NULL && !same; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			same = s4->sin_addr.s_addr == ((struct sockaddr_in *)
			    (void *)ai->ai_addr)->sin_addr.s_addr;
		else if (ai->ai_family == AF_INET6)
			same = memcmp(&s6->sin6_addr, &((struct sockaddr_in6 *)
			    (void *)ai->ai_addr)->sin6_addr,
			    sizeof(s6->sin6_addr)) == 0;
	}
	freeaddrinfo(res);
	return same;
}

static bool
sd_same_socket(const struct listener *l, int fd, bool reuseport)
{
	struct sockaddr_storage ss;
	const struct sockaddr_un *su = (const void *)&ss;
	socklen_t sl = sizeof(ss);
	struct stat st;
	int	 type, acc = 0, rp = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){
	    sizeof(int) }) < 0 || type != (l->type == L_UDP ? SOCK_DGRAM :
	    SOCK_STREAM))
		return false;
	if (type == SOCK_STREAM && (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN,
	    &acc, &(socklen_t){ sizeof(int) }) < 0 || !acc))
		return false;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	switch (l->type) {
	case L_UNIX:
		/* Its path must still be there, or no one could reach it. */
		return ss.ss_family == AF_UNIX && sl > offsetof(struct
		    sockaddr_un, sun_path) && strncmp(su->sun_path, l->path,
		    sizeof(su->sun_path)) == 0 && stat(l->path, &st) == 0 &&
		    S_ISSOCK(st.st_mode);
	case L_TCP:
	case L_UDP:
		/* A slot's socket must join (or not) as the mode wants. */
		if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &rp,
		    &(socklen_t){ sizeof(int) }) < 0 || !rp != !reuseport)
			return false;
		return sd_same_inet(l, &ss);
	default:
		return false;
	}
}

/* Listener l's slot takes the store's socket g (stored as name). */
static int
sd_take(struct sd_fd *g, const struct listener *l, int slot, int backlog,
    const char *name, int *fd)
{
	/* The backlog may have changed with the configuration. */
	if (l->type != L_UDP)
		(void)listen(g->fd, l->backlog > 0 ? l->backlog : backlog);
	*fd = g->fd;
	g->fd = -1;
	if (strcmp(g->name, name) != 0) {
		/* Stored again under the name it has now. */
		log_info("fd store: the socket stored as %s is %s's now (fd "
		    "%d)", g->name, name, *fd);
		sd_unstore_got(g);
	} else
		log_info("fd store: %s kept (fd %d), with the connections "
		    "queued on it", name, *fd);
	sdnotify_store(l, slot, *fd);
	return 0;
}

/*
 * A socket for listener l's slot from the fd store: the one of its name
 * (sd_fdname) if it is bound where l would bind, or else (but for
 * reuseport's, which may share an address) any one bound there: a listener
 * renamed, or named by its place (l0, l1) and moved, must not meet its own
 * old socket holding the address.  Returns 0 with *fd, or -ENOENT (bind
 * one).  One of its name bound elsewhere leaves the store at once; those
 * no listener takes are closed once the pool starts (sdnotify_start).
 */
int
sdnotify_adopt(const struct listener *l, int slot, int backlog,
    bool reuseport, int *fd)
{
	char	 name[SD_FDNAME_MAX + 1];
	size_t	 i;

	if (!sd.store || sd.ngot == 0 || l->type == L_FD ||
	    l->type == L_SYSTEMD ||
	    sd_fdname(l, slot, name, sizeof(name)) < 0)
		return -ENOENT;
	for (i = 0; i < sd.ngot; i++) {
		if (sd.got[i].fd < 0 || sd.got[i].out ||
		    strcmp(sd.got[i].name, name) != 0)
			continue;
		if (sd_same_socket(l, sd.got[i].fd, reuseport))
			return sd_take(&sd.got[i], l, slot, backlog, name, fd);
		/*
		 * Out of the store now, as the new one will be stored by
		 * that name; kept for a listener bound where it is.
		 */
		log_warnx("fd store: %s is not bound where %s is: binding a "
		    "new one", name, l->spec);
		sd_unstore_got(&sd.got[i]);
		break;
	}
	/* Port 0 binds anywhere: nothing can be in its way. */
	if (reuseport || (l->type != L_UNIX && strcmp(l->port, "0") == 0))
		return -ENOENT;
	for (i = 0; i < sd.ngot; i++)
		if (sd.got[i].fd >= 0 && sd_same_socket(l, sd.got[i].fd,
		    false))
			return sd_take(&sd.got[i], l, slot, backlog, name, fd);
	return -ENOENT;
}

/*
 * The manager is asked to keep listener l's socket in slot (FDSTORE=1),
 * so that a restarted wpool gets it back: what is queued on it waits.
 */
void
sdnotify_store(const struct listener *l, int slot, int fd)
{
	char	 name[SD_FDNAME_MAX + 1], msg[64 + SD_FDNAME_MAX];
	struct stat st;
	size_t	 i;
	bool	 had = false;

	if (sd.fd < 0 || !sd.store || l->type == L_FD || l->type == L_SYSTEMD ||
	    fstat(fd, &st) < 0)
		return;
	if (sd_fdname(l, slot, name, sizeof(name)) < 0) {
		log_warnx("fd store: %s's name is too long for FDNAME=: not "
		    "stored", l->spec);
		return;
	}
	for (i = 0; i < sd.ngot; i++)
		if (sd.got[i].dev == st.st_dev && sd.got[i].ino == st.st_ino)
			had = true;	/* the store has it already */
	if (!had) {
		snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
		if (sd_send(msg, fd) < 0)
			return;
	}
	sd.stored = xreallocarray(sd.stored, sd.nstored + 1,
	    sizeof(*sd.stored));
	sd.stored[sd.nstored].name = xstrdup(name);
	sd.stored[sd.nstored].fd = -1;
	sd.stored[sd.nstored].dev = st.st_dev;
	sd.stored[sd.nstored].ino = st.st_ino;
	sd.nstored++;
}

/*
 * A socket wpool stored is about to close while the pool runs (a slot
 * scaled away, a listener removed): the store drops it too.  At a stop
 * the store keeps them all, for the next wpool.
 */
void
sdnotify_forget_fd(struct pool *p, int fd)
{
	char	 msg[64 + SD_FDNAME_MAX];
	struct stat st;
	size_t	 i;

	if (sd.nstored == 0 || p->state != POOL_RUNNING || fstat(fd, &st) < 0)
		return;
	for (i = 0; i < sd.nstored; i++) {
		if (sd.stored[i].dev != st.st_dev ||
		    sd.stored[i].ino != st.st_ino)
			continue;
		snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s",
		    sd.stored[i].name);
		(void)sd_send(msg, -1);
		free(sd.stored[i].name);
		sd.stored[i] = sd.stored[--sd.nstored];
		return;
	}
}

/*
 * Whether the fd store holds fd's socket: a unix one keeps its path at
 * exit then, for the next wpool to adopt it with what queued meanwhile.
 */
bool
sdnotify_stored(int fd)
{
	struct stat st;
	size_t	 i;

	if (fd < 0 || fstat(fd, &st) < 0)
		return false;
	for (i = 0; i < sd.nstored; i++)
		if (sd.stored[i].dev == st.st_dev &&
		    sd.stored[i].ino == st.st_ino)
			return true;
	return false;
}

void
sdnotify_close(void)
{
	size_t	 i;

	if (sd.fd >= 0)
		close(sd.fd);
	sd.fd = -1;
	for (i = 0; i < sd.ngot; i++) {
		if (sd.got[i].fd >= 0)
			close(sd.got[i].fd);
		free(sd.got[i].name);
	}
	free(sd.got);
	sd.got = NULL;
	sd.ngot = 0;
	for (i = 0; i < sd.nstored; i++)
		free(sd.stored[i].name);
	free(sd.stored);
	sd.stored = NULL;
	sd.nstored = 0;
}

/*
 * listener_open, but a socket the fd store gave back for l is adopted
 * instead of binding a new one; either way the store is asked to keep it.
 */
int
sdnotify_listener_open(struct listener *l, int backlog, bool reuseport,
    char *err, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char	 tmp[sizeof(l->address)];
	int	 r;

	if (sdnotify_adopt(l, 0, backlog, reuseport, &l->fd) < 0) {
		if ((r = listener_open(l, backlog, reuseport, err, len)) < 0)
			return r;
		sdnotify_store(l, 0, l->fd);
		return 0;
	}
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_format(&ss, sl, l->address, sizeof(l->address));
	else
		strlcpy(l->address, l->spec, sizeof(l->address));
	if (l->type == L_UDP) {
		snprintf(tmp, sizeof(tmp), "udp://%s", l->address);
		strlcpy(l->address, tmp, sizeof(l->address));
	}
	if (reuseport && l->port != NULL && strcmp(l->port, "0") == 0 &&
	    strrchr(l->address, ':') != NULL) {
		/* Every slot's socket must join the port it was bound to. */
		free(l->port);
		l->port = xstrdup(strrchr(l->address, ':') + 1);
	}
	return 0;
}
