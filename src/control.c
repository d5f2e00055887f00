/*
 * control.c: the control socket server.  Owns the listening socket and
 * every client connection: one JSON object per line in, one per line
 * out.  Nothing a client does can block the master: reads and writes are
 * nonblocking, requests are bounded, and a slow client is dropped.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* A request must arrive whole within this long of the previous one. */
#define CTL_TIMEOUT	5.0
#define CTL_MAX_CLIENTS	4096
#define CTL_MAX_OUT	(8u * 1024 * 1024)

struct client {
	TAILQ_ENTRY(client) entry;
	int	 fd;
	uid_t	 uid;
	pid_t	 pid;
	bool	 trusted;	/* the master's uid or root */
	bool	 closing;	/* close once the output is written */
	bool	 refused;	/* told why; what it sends is discarded */
	char	*in;
	size_t	 in_len;
	char	*out;
	size_t	 out_len, out_off;
	struct timer timer;
};

static TAILQ_HEAD(, client) clients = TAILQ_HEAD_INITIALIZER(clients);
static int	 nclients;
static int	 ctl_fd = -1;
static char	 ctl_path[108];
static struct pool *ctl_pool;
static struct timer emfile_timer;
static bool	 emfile_paused;
static bool	 full_paused;		/* CTL_MAX_CLIENTS reached */

/* Out of fds: stop watching the socket a moment instead of spinning. */
static void
on_emfile_timer(void *arg)
{
	(void)arg;
	if (ctl_fd >= 0 && !full_paused)
		loop_mod(ctl_fd, EPOLLIN);
}

int
control_default_path(const char *name, char *buf, size_t len)
{
	const char *e;

	if (name == NULL)
		name = "wpool";
	if ((e = getenv("WPOOL_CONTROL")) != NULL && *e != '\0')
		return snprintf(buf, len, "%s", e);
	if ((e = getenv("XDG_RUNTIME_DIR")) != NULL && *e == '/')
		return snprintf(buf, len, "%s/wpool/%s.sock", e, name);
	if (geteuid() == 0)
		return snprintf(buf, len, "/run/wpool/%s.sock", name);
	return snprintf(buf, len, "/tmp/wpool-%u/%s.sock",
	    (unsigned)geteuid(), name);
}

static void
client_close(struct client *c)
{
	timer_cancel(&c->timer);
	loop_del(c->fd);
	close(c->fd);
	TAILQ_REMOVE(&clients, c, entry);
	nclients--;
	free(c->in);
	free(c->out);
	free(c);
	if (full_paused) {
		/* A place is free again: the waiting clients may come. */
		full_paused = false;
		if (ctl_fd >= 0 && !emfile_paused)
			loop_mod(ctl_fd, EPOLLIN);
	}
}

/*
 * From now on the client only gets what is queued for it, then is closed:
 * what it sends is no longer read, so the fd is watched for output only
 * (watching input too would wake the loop for ever on unread bytes).
 */
static void
client_set_closing(struct client *c)
{
	c->closing = true;
	loop_mod(c->fd, EPOLLOUT);
}

static void
on_client_timeout(void *arg)
{
	struct client *c = arg;

	log_debug("control: dropping a client (pid %d) that was too slow",
	    (int)c->pid);
	client_close(c);
}

/* Writes what it can; returns -1 if the client was closed. */
static int
client_flush(struct client *c)
{
	ssize_t	 n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			loop_mod(c->fd, c->closing ? EPOLLOUT :
			    EPOLLIN | EPOLLOUT);
			return 0;
		}
		if (n <= 0) {
			client_close(c);
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_len = c->out_off = 0;
	loop_mod(c->fd, EPOLLIN);
	if (c->closing) {
		client_close(c);
		return -1;
	}
	return 0;
}

static void
client_send(struct client *c, const char *s)
{
	size_t	 n = strlen(s);

	if (c->out_len - c->out_off + n + 1 > CTL_MAX_OUT) {
		/* It asks faster than it reads: it gets what is queued. */
		client_set_closing(c);
		return;
	}
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	c->out = xreallocarray(c->out, c->out_len + n + 1, 1);
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
}

static char *
error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
error_json(const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char	 msg[512], *s;
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static char *
ok_json(json_object *o)
{
	char	*s;

	if (o == NULL)
		o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* Reads an integer member; -ENOENT if absent, -EINVAL if not an int. */
static int
get_int(json_object *req, const char *key, long long *out)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	*out = json_object_get_int64(v);
	return 0;
}

typedef char *(*cmd_fn)(struct pool *, json_object *);

/* {"cmd":"status","workers":false} leaves out the per-worker part. */
static char *
cmd_status(struct pool *p, json_object *req)
{
	json_object *v;
	bool	 brief = json_object_object_get_ex(req, "workers", &v) &&
	    json_object_is_type(v, json_type_boolean) &&
	    !json_object_get_boolean(v);

	if (!brief)
		pool_sample(p);
	return ok_json(status_json(p, now_mono(), brief));
}

static char *
cmd_reload(struct pool *p, json_object *req)
{
	json_object *o;
	char	 err[256];
	unsigned gen;
	int	 r;

	(void)req;
	if ((r = pool_reload(p, &gen, err, sizeof(err))) < 0)
		return error_json("%s", err);
	o = json_object_new_object();
	json_object_object_add(o, "generation", json_object_new_int64(gen));
	json_object_object_add(o, "queued", json_object_new_boolean(r == 1));
	return ok_json(o);
}

static char *
cmd_scale(struct pool *p, json_object *req)
{
	json_object *o;
	long long n, d;
	char	 err[256];
	int	 prev = p->target, rn, rd;

	rn = get_int(req, "workers", &n);
	rd = get_int(req, "delta", &d);
	if (rn == -EINVAL || rd == -EINVAL)
		return error_json("scale: \"workers\" and \"delta\" must be "
		    "integers");
	if ((rn == 0) == (rd == 0))
		return error_json("scale: give exactly one of \"workers\" "
		    "(a number) or \"delta\" (+N or -N)");
	if (rd == 0) {
		/* Bound the step before adding: the sum must not overflow. */
		if (d < -WPOOL_MAX_WORKERS || d > WPOOL_MAX_WORKERS)
			return error_json("scale: delta %lld: expected -%d to "
			    "+%d", d, WPOOL_MAX_WORKERS, WPOOL_MAX_WORKERS);
		n = prev + d;
	}
	if (n < 1 || n > WPOOL_MAX_WORKERS)
		return error_json("scale: %lld workers: expected 1 to %d", n,
		    WPOOL_MAX_WORKERS);
	if (pool_scale(p, (int)n, err, sizeof(err)) < 0)
		return error_json("%s", err);
	o = json_object_new_object();
	json_object_object_add(o, "workers", json_object_new_int(p->target));
	json_object_object_add(o, "previous", json_object_new_int(prev));
	return ok_json(o);
}

static char *
cmd_restart(struct pool *p, json_object *req)
{
	json_object *v, *o;
	long long id;
	char	 err[256];

	if (json_object_object_get_ex(req, "id", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "all") == 0)
		return cmd_reload(p, req);
	if (get_int(req, "id", &id) < 0)
		return error_json("restart: \"id\" must be a worker id or "
		    "\"all\"");
	if (id < 0 || id >= WPOOL_MAX_WORKERS)
		return error_json("restart: no worker %lld", id);
	if (pool_restart(p, (int)id, err, sizeof(err)) < 0)
		return error_json("%s", err);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int((int)id));
	return ok_json(o);
}

static char *
cmd_signal(struct pool *p, json_object *req)
{
	json_object *v, *o;
	long long id = -1;
	char	 err[256];
	int	 sig, n, r;

	if (!json_object_object_get_ex(req, "signal", &v))
		return error_json("signal: \"signal\" is required");
	if (json_object_is_type(v, json_type_int))
		sig = json_object_get_int(v);
	else if (!json_object_is_type(v, json_type_string) ||
	    parse_signal(json_object_get_string(v), &sig) < 0)
		return error_json("signal: unknown signal");
	if (sig < 1 || sig >= NSIG)
		return error_json("signal: %d is not a signal", sig);
	if ((r = get_int(req, "id", &id)) == -EINVAL)
		return error_json("signal: \"id\" must be an integer");
	if (r == 0 && (id < 0 || id >= WPOOL_MAX_WORKERS))
		return error_json("signal: no worker %lld", id);
	if ((n = pool_signal(p, sig, r == 0 ? (int)id : -1, err,
	    sizeof(err))) < 0)
		return error_json("%s", err);
	o = json_object_new_object();
	json_object_object_add(o, "signal",
	    json_object_new_string(signal_name(sig)));
	json_object_object_add(o, "workers", json_object_new_int(n));
	return ok_json(o);
}

/*
 * The stop itself waits until the answer is on its way (client_event):
 * stopping may end the loop before the answer is written.
 */
static bool	 stop_asked;

static char *
cmd_stop(struct pool *p, json_object *req)
{
	json_object *o = json_object_new_object();

	(void)req;
	stop_asked = true;
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	return ok_json(o);
}

static const struct {
	const char *name;
	cmd_fn	 fn;
} commands[] = {
	{ "status", cmd_status },
	{ "reload", cmd_reload },
	{ "scale", cmd_scale },
	{ "restart", cmd_restart },
	{ "signal", cmd_signal },
	{ "stop", cmd_stop },
};

/* einhorn's {"command":"worker:ack","pid":N}: the worker is ready. */
static char *
einhorn_ack(struct pool *p, json_object *req, pid_t peer)
{
	struct worker *w;
	long long pid;

	if (get_int(req, "pid", &pid) < 0)
		pid = peer;
	if ((w = pool_find_pid(p, (pid_t)pid)) == NULL &&
	    (w = pool_find_pid(p, peer)) == NULL)
		return error_json("worker:ack: pid %lld is not a worker", pid);
	pool_worker_notify(p, w, "READY", "1");
	return ok_json(NULL);
}

/*
 * One request line to one response line (without the newline).  Pure
 * with respect to the connection, so the fuzzer can drive it.
 */
char *
control_dispatch(struct pool *p, const char *line, size_t len, uid_t uid,
    pid_t pid)
{
	struct json_tokener *tok;
	json_object *req, *v;
	const char *cmd;
	char	*resp;
	size_t	 i;
	bool	 trusted = uid == 0 || uid == geteuid();

	tok = json_tokener_new_ex(32);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (req == NULL || json_tokener_get_parse_end(tok) < len) {
		resp = error_json("invalid JSON: %s", req != NULL ?
		    "trailing data after the object" :
		    json_tokener_get_error(tok) == json_tokener_continue ?
		    "incomplete" :
		    json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(req);
		json_tokener_free(tok);
		return resp;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return error_json("a request is a JSON object like "
		    "{\"cmd\":\"status\"}");
	}
	if (json_object_object_get_ex(req, "command", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "worker:ack") == 0) {
		resp = einhorn_ack(p, req, pid);
		json_object_put(req);
		return resp;
	}
	if (!trusted) {
		json_object_put(req);
		return error_json("permission denied: uid %u is neither "
		    "wpool's uid %u nor root", (unsigned)uid,
		    (unsigned)geteuid());
	}
	if (!json_object_object_get_ex(req, "cmd", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(req);
		return error_json("\"cmd\" is required: status, reload, scale, "
		    "restart, signal or stop");
	}
	cmd = json_object_get_string(v);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0) {
			resp = commands[i].fn(p, req);
			json_object_put(req);
			return resp;
		}
	resp = error_json("unknown command '%.64s': expected status, reload, "
	    "scale, restart, signal or stop", cmd);
	json_object_put(req);
	return resp;
}

static void
client_event(int fd, uint32_t ev, void *arg)
{
	struct client *c = arg;
	char	*nl, *resp;
	size_t	 linelen, used;
	ssize_t	 n;
	bool	 stop;

	if ((ev & EPOLLOUT) && client_flush(c) < 0)
		return;
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->closing)
		return;
	if (c->refused) {
		char	 sink[4096];

		while ((n = read(fd, sink, sizeof(sink))) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			client_close(c);
		return;
	}
	for (;;) {
		if (c->in_len >= WPOOL_CTL_MAX_REQUEST) {
			resp = error_json("request too large: over %d KiB",
			    WPOOL_CTL_MAX_REQUEST / 1024);
			client_send(c, resp);
			free(resp);
			client_set_closing(c);
			shutdown(fd, SHUT_RD);
			client_flush(c);
			return;
		}
		n = read(fd, c->in + c->in_len, WPOOL_CTL_MAX_REQUEST -
		    c->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* The client is done sending; answer what it sent. */
			if (c->out_len > c->out_off) {
				client_set_closing(c);
			} else
				client_close(c);
			return;
		}
		c->in_len += (size_t)n;
		while ((nl = memchr(c->in, '\n', c->in_len)) != NULL) {
			*nl = '\0';
			linelen = (size_t)(nl - c->in);
			used = linelen + 1;
			if (linelen > 0 && c->in[linelen - 1] == '\r')
				c->in[--linelen] = '\0';
			if (linelen > 0) {
				stop_asked = false;
				resp = control_dispatch(ctl_pool, c->in,
				    linelen, c->uid, c->pid);
				stop = stop_asked;
				stop_asked = false;
				client_send(c, resp);
				free(resp);
				if (client_flush(c) < 0)
					return;
				if (stop) {
					snprintf(ctl_pool->stop_why,
					    sizeof(ctl_pool->stop_why),
					    "wpool stop");
					pool_stop(ctl_pool, false);
				}
				if (c->closing)
					return;	/* no more requests read */
			}
			c->in_len -= used;
			memmove(c->in, c->in + used, c->in_len);
			timer_set(&c->timer, CTL_TIMEOUT);
		}
	}
}

static void
control_accept(int fd, uint32_t ev, void *arg)
{
	struct client *c;
	struct ucred cred;
	socklen_t sl;
	int	 cfd;

	(void)ev;
	(void)arg;
	for (;;) {
		if (nclients >= CTL_MAX_CLIENTS) {
			/* The rest wait in the backlog until a place frees. */
			if (!full_paused)
				log_warnx("control: %d clients connected; "
				    "others wait", nclients);
			full_paused = true;
			loop_mod(fd, 0);
			return;
		}
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				if (!emfile_paused)
					log_warnx("control: out of file "
					    "descriptors; clients wait");
				emfile_paused = true;
				loop_mod(fd, 0);
				timer_set(&emfile_timer, 0.1);
			}
			return;
		}
		emfile_paused = false;
		sl = sizeof(cred);
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
			close(cfd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = cfd;
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->trusted = cred.uid == 0 || cred.uid == geteuid();
		c->in = xcalloc(WPOOL_CTL_MAX_REQUEST + 1, 1);
		timer_init(&c->timer, on_client_timeout, c);
		if (loop_add(cfd, EPOLLIN, client_event, c) < 0) {
			close(cfd);
			free(c->in);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&clients, c, entry);
		nclients++;
		timer_set(&c->timer, CTL_TIMEOUT);
		/*
		 * Another user is told why at once; the connection stays
		 * open for reading, so that its request is not met by a
		 * broken pipe, and what it sends is discarded.  A worker
		 * running as another user may still send its einhorn ack.
		 */
		if (!c->trusted && pool_find_pid(ctl_pool, cred.pid) == NULL) {
			char	*resp = error_json("permission denied: uid %u is "
			    "neither wpool's uid %u nor root",
			    (unsigned)cred.uid, (unsigned)geteuid());

			log_warnx("control: refused a client with uid %u (pid "
			    "%d)", (unsigned)cred.uid, (int)cred.pid);
			c->refused = true;
			client_send(c, resp);
			free(resp);
			if (client_flush(c) == 0)
				shutdown(cfd, SHUT_WR);
		}
	}
}

/*
 * Makes the socket's directory if it is missing.  The default one
 * (private) is wpool's own, in a place like /tmp that others can write
 * to: it must be a real directory of this user that nobody else may
 * write, or another user could put their socket in its place.
 */
static int
mkdir_parent(const char *path, bool private, char *err, size_t len)
{
	char	 dir[PATH_MAX];
	struct stat st;

	strlcpy(dir, path, sizeof(dir));
	strlcpy(dir, dirname(dir), sizeof(dir));
	if (stat(dir, &st) < 0 && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, len, "cannot create the control directory %s: "
		    "%s", dir, strerror(errno));
		return -errno;
	}
	if (!private)
		return 0;
	if (lstat(dir, &st) < 0) {
		snprintf(err, len, "control directory %s: %s", dir,
		    strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0) {
		snprintf(err, len, "the control directory %s is %s; remove it "
		    "or give a socket path with -s PATH", dir,
		    !S_ISDIR(st.st_mode) ? "not a directory (a link?)" :
		    st.st_uid != geteuid() ? "owned by another user" :
		    "writable by others");
		return -EPERM;
	}
	return 0;
}

int
control_open(struct pool *p, const char *path, char *err, size_t len)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t	 old;
	const char *env;
	bool	 private;
	int	 fd, r;

	if (path != NULL)
		strlcpy(ctl_path, path, sizeof(ctl_path));
	else if (control_default_path(p->conf->name, ctl_path,
	    sizeof(ctl_path)) >= (int)sizeof(ctl_path)) {
		snprintf(err, len, "the control socket path is too long; set "
		    "one with -s PATH");
		return -ENAMETOOLONG;
	}
	env = getenv("WPOOL_CONTROL");
	private = path == NULL && (env == NULL || *env == '\0');
	if ((r = mkdir_parent(ctl_path, private, err, len)) < 0)
		return r;
	if (lstat(ctl_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, len, "%s exists and is not a socket; not "
		    "replacing it", ctl_path);
		return -EEXIST;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, ctl_path, sizeof(sun.sun_path));
	/* A live socket means another pool; a dead one is left over. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) >= 0) {
		r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		if (r < 0 && errno == EAGAIN)
			r = 0;
		close(fd);
		if (r == 0) {
			snprintf(err, len, "another wpool is running on %s",
			    ctl_path);
			return -EADDRINUSE;
		}
		/* Only a socket is removed: -s may name the wrong file. */
		if (errno == ECONNREFUSED && lstat(ctl_path, &st) == 0 &&
		    S_ISSOCK(st.st_mode))
			unlink(ctl_path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0) {
		snprintf(err, len, "cannot create the control socket: %s",
		    strerror(errno));
		return -errno;
	}
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 1024) < 0) {
		snprintf(err, len, "cannot listen on %s: %s", ctl_path,
		    strerror(errno));
		r = -errno;
		close(fd);
		return r;
	}
	chmod(ctl_path, 0600);
	if ((r = loop_add(fd, EPOLLIN, control_accept, NULL)) < 0) {
		close(fd);
		unlink(ctl_path);
		snprintf(err, len, "cannot watch the control socket");
		return r;
	}
	ctl_fd = fd;
	ctl_pool = p;
	timer_init(&emfile_timer, on_emfile_timer, NULL);
	p->control_path = xstrdup(ctl_path);
	log_debug("control socket %s", ctl_path);
	return 0;
}

void
control_close(void)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&clients)) != NULL) {
		if (c->out_len > c->out_off)
			client_flush(c);
		if (TAILQ_FIRST(&clients) == c)
			client_close(c);
	}
	if (ctl_fd >= 0) {
		timer_cancel(&emfile_timer);
		loop_del(ctl_fd);
		close(ctl_fd);
		unlink(ctl_path);
	}
	ctl_fd = -1;
}
