/*
 * control.c: the control socket server.  Owns the listening sockets (the
 * control socket, and einhorn's socket for workers of another user) and
 * every client connection: one JSON object per line in, one per line out.
 * Nothing a client does can block the master or grow it without bound:
 * reads and writes are nonblocking, a client holds at most one request and
 * one answer, all clients together hold at most CTL_MEM_MAX, a slow client
 * is dropped, and descriptors a client passes are refused or disposed of.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* A request must arrive whole within this long of the previous one. */
#define CTL_TIMEOUT	5.0
/*
 * The connections kept at once; more wait in the backlog.  An idle one
 * costs a struct client and an fd, no buffer.
 */
#define CTL_MAX_CLIENTS	4096
/*
 * What all clients' buffers may hold together.  A client holds at most one
 * partial request and one answer (it is read from again only once its
 * answer is written); past this budget, the clients that have held memory
 * the longest are dropped first.
 */
#define CTL_MEM_MAX	(4u * 1024 * 1024)
/* Memory freed by clients is given back to the system past this much. */
#define CTL_TRIM_AFTER	(256u * 1024)
/* A request is looked for in chunks of this size, peeked at first. */
#define CTL_CHUNK	4096
#define EINHORN_SOCK	"einhorn.sock"

struct client {
	TAILQ_ENTRY(client) entry;	/* least recently active first */
	struct control *ctl;		/* the server it came to */
	int	 fd;
	uid_t	 uid;
	pid_t	 pid;
	bool	 trusted;	/* the master's uid or root */
	bool	 ack_only;	/* may only send einhorn's worker:ack */
	bool	 closing;	/* close once the output is written */
	bool	 refused;	/* told why; what it sends is discarded */
	char	*in;		/* a partial request; NULL when none */
	size_t	 in_len, in_cap;
	char	*out;		/* one answer; NULL when none */
	size_t	 out_len, out_off;
	struct timer timer;
};

/* The server's state: the pool's (p->ctl) from control_open on. */
struct control {
	struct pool *pool;
	TAILQ_HEAD(, client) clients;
	int	 nclients;
	size_t	 mem;			/* every client's in_cap + out_len */
	size_t	 freed;			/* freed since the last trim */
	int	 fd;			/* the control socket, or -1 */
	char	 path[108];
	int	 ein_fd;		/* einhorn's socket, for -u workers */
	char	 ein_dir[PATH_MAX];
	struct timer emfile_timer;
	bool	 emfile_paused;
	bool	 full_paused;		/* CTL_MAX_CLIENTS reached */
	double	 ack_logged;		/* when a refused ack was last logged */
	unsigned long acks_unlogged;	/* refused since, not logged */
};

static void
listeners_watch(struct control *ctl, bool on)
{
	if (ctl->fd >= 0)
		loop_mod(ctl->fd, on ? EPOLLIN : 0);
	if (ctl->ein_fd >= 0)
		loop_mod(ctl->ein_fd, on ? EPOLLIN : 0);
}

/* Out of fds: stop watching the sockets a moment instead of spinning. */
static void
on_emfile_timer(void *arg)
{
	struct control *ctl = arg;

	ctl->emfile_paused = false;
	if (!ctl->full_paused)
		listeners_watch(ctl, true);
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

/*
 * glibc keeps what is freed for later; once the clients that held it are
 * gone, it goes back to the system.
 */
static void
mem_release(struct control *ctl, size_t n)
{
	ctl->mem -= n;
	ctl->freed += n;
	if (ctl->freed >= CTL_TRIM_AFTER && ctl->mem < CTL_TRIM_AFTER / 4) {
		malloc_trim(0);
		ctl->freed = 0;
	}
}

static void
client_free_in(struct client *c)
{
	free(c->in);
	c->in = NULL;
	mem_release(c->ctl, c->in_cap);
	c->in_len = c->in_cap = 0;
}

static void
client_free_out(struct client *c)
{
	free(c->out);
	c->out = NULL;
	mem_release(c->ctl, c->out_len);
	c->out_len = c->out_off = 0;
}

static void
client_close(struct client *c)
{
	struct control *ctl = c->ctl;

	timer_cancel(&c->timer);
	loop_del(c->fd);
	close(c->fd);
	TAILQ_REMOVE(&ctl->clients, c, entry);
	ctl->nclients--;
	client_free_in(c);
	client_free_out(c);
	free(c);
	if (ctl->full_paused) {
		/* A place is free again: the waiting clients may come. */
		ctl->full_paused = false;
		if (!ctl->emfile_paused)
			listeners_watch(ctl, true);
	}
}

/*
 * Makes room for n more bytes of client memory: the clients that have
 * held memory the longest, other than c, are dropped until it fits.
 */
static void
mem_reserve(struct client *c, size_t n)
{
	struct control *ctl = c->ctl;
	struct client *o, *next;

	for (o = TAILQ_FIRST(&ctl->clients); o != NULL && ctl->mem + n >
	    CTL_MEM_MAX; o = next) {
		next = TAILQ_NEXT(o, entry);
		if (o == c || (o->in_cap == 0 && o->out_len == 0))
			continue;
		log_debug("control: dropping a client (pid %d) to keep "
		    "clients' memory under %u KiB", (int)o->pid,
		    CTL_MEM_MAX / 1024);
		client_close(o);
	}
	ctl->mem += n;
}

/* The client did something: it goes to the end of the eviction order. */
static void
client_touch(struct client *c)
{
	struct control *ctl = c->ctl;

	TAILQ_REMOVE(&ctl->clients, c, entry);
	TAILQ_INSERT_TAIL(&ctl->clients, c, entry);
	timer_set(&c->timer, CTL_TIMEOUT);
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

/*
 * Writes what it can; returns -1 if the client was closed.  While an
 * answer is unwritten the client is not read from: one that asks without
 * reading holds one answer, not a queue of them.
 */
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
			loop_mod(c->fd, EPOLLOUT);
			return 0;
		}
		if (n <= 0) {
			client_close(c);
			return -1;
		}
		c->out_off += (size_t)n;
	}
	client_free_out(c);
	if (c->closing) {
		client_close(c);
		return -1;
	}
	loop_mod(c->fd, EPOLLIN);
	return 0;
}

/* Queues one answer line; the client has none queued (client_flush). */
static void
client_send(struct client *c, const char *s)
{
	size_t	 n = strlen(s);

	if (c->out != NULL) {
		/* Not reached: a client is not read while it has output. */
		client_set_closing(c);
		return;
	}
	mem_reserve(c, n + 1);
	c->out = xreallocarray(NULL, n + 1, 1);
	memcpy(c->out, s, n);
	c->out[n] = '\n';
	c->out_len = n + 1;
	c->out_off = 0;
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
	char	 err[1024];
	unsigned gen;
	int	 r;

	if (inetd_refuse(p, "reload", err, sizeof(err)) < 0)
		return error_json("%s", err);
	if (json_object_object_get_ex(req, "dry_run", &o) &&
	    json_object_get_boolean(o)) {
		char	*changes;

		/* What the file would change; nothing is bound or started. */
		if (pool_reload_dry(p, &changes, err, sizeof(err)) < 0)
			return error_json("%s", err);
		o = json_object_new_object();
		json_object_object_add(o, "changes",
		    json_object_new_string(changes));
		free(changes);
		return ok_json(o);
	}
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
	char	 err[512];

	/* Before "all" goes to reload: it is refused as a restart. */
	if (inetd_refuse(p, "restart", err, sizeof(err)) < 0)
		return error_json("%s", err);
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
	/* The record in status's "recent_restarts" its client follows. */
	json_object_object_add(o, "serial",
	    json_object_new_int64(p->restart_serial));
	return ok_json(o);
}

static char *
cmd_signal(struct pool *p, json_object *req)
{
	json_object *v, *o;
	long long id = -1;
	char	 err[512];
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
	if (inetd_refuse(p, "signal", err, sizeof(err)) < 0 ||
	    (n = pool_signal(p, sig, r == 0 ? (int)id : -1, err,
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

/*
 * {"cmd":"upgrade","binary":PATH}: checked and probed now (upgrade.c);
 * the exec waits until the answer is on its way (client_answer).  The
 * client follows it in status's "upgrade", and asks for --reload itself.
 */
static char *
cmd_upgrade(struct pool *p, json_object *req)
{
	json_object *o, *v;
	const char *bin = NULL;
	char	 err[1024];
	unsigned serial;

	if (json_object_object_get_ex(req, "binary", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return error_json("upgrade: \"binary\" must be a path");
		bin = json_object_get_string(v);
	}
	if (upgrade_request(p, bin, &serial, err, sizeof(err)) < 0)
		return error_json("%s", err);
	o = json_object_new_object();
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "workers", json_object_new_int(p->nworkers));
	json_object_object_add(o, "serial", json_object_new_int64(serial));
	return ok_json(o);
}

static const struct {
	const char *name;
	cmd_fn	 fn;
} commands[] = {
	{ "upgrade", cmd_upgrade },
	{ "status", cmd_status },
	{ "reload", cmd_reload },
	{ "scale", cmd_scale },
	{ "restart", cmd_restart },
	{ "signal", cmd_signal },
	{ "stop", cmd_stop },
};

/*
 * The worker whose process tree pid is in: the worker itself, or one of
 * its descendants (orphans of a worker are ours, so their parent chain
 * ends at the master).  NULL if pid is in no worker's tree.
 */
static struct worker *
tree_worker(struct pool *p, pid_t pid)
{
	struct worker *w;
	int	 depth;

	for (depth = 0; depth < 32 && pid > 1 && pid != p->pid; depth++) {
		if ((w = pool_find_pid(p, pid)) != NULL)
			return w;
		pid = procfs_ppid(pid);
	}
	return NULL;
}

/*
 * einhorn's {"command":"worker:ack","pid":N}: the worker is ready.  A
 * process of a worker's tree may ack only that worker; only the master's
 * user or root, from outside every worker's tree, may ack any worker.
 */
/*
 * A refused ack is logged, since the worker it was for will be killed as
 * not ready and nothing else would say why; at most once a second, as any
 * local user may send them.
 */
static void
ack_refused(struct pool *p, pid_t peer, const char *why)
{
	struct control *ctl = p->ctl;
	struct worker *own;
	double	 now = now_mono();
	char	 whose[40] = "";

	if (ctl != NULL && ctl->ack_logged > 0 && now - ctl->ack_logged < 1) {
		ctl->acks_unlogged++;
		return;
	}
	if ((own = tree_worker(p, peer)) != NULL)
		snprintf(whose, sizeof(whose), " (of worker %d)", own->id);
	if (ctl != NULL && ctl->acks_unlogged > 0)
		log_warnx("refused an einhorn ack from pid %d%s: %s (and %lu "
		    "more in the last second)", (int)peer, whose, why,
		    ctl->acks_unlogged);
	else
		log_warnx("refused an einhorn ack from pid %d%s: %s",
		    (int)peer, whose, why);
	if (ctl != NULL) {
		ctl->ack_logged = now;
		ctl->acks_unlogged = 0;
	}
}

static char *
einhorn_ack(struct pool *p, json_object *req, pid_t peer, bool trusted)
{
	struct worker *w, *own;
	long long pid;
	char	 why[160];

	own = tree_worker(p, peer);
	if (get_int(req, "pid", &pid) < 0)
		pid = peer;
	if (pid < 1 || pid > INT_MAX ||
	    (w = tree_worker(p, (pid_t)pid)) == NULL)
		snprintf(why, sizeof(why), "worker:ack: pid %lld is not a "
		    "worker nor a process of one", pid);
	else if (own != NULL ? w != own : !trusted)
		snprintf(why, sizeof(why), "worker:ack: pid %d may not ack "
		    "pid %lld: a worker acks only itself", (int)peer, pid);
	else {
		pool_worker_notify(p, w, "READY", "1");
		return ok_json(NULL);
	}
	ack_refused(p, peer, why);
	return error_json("%s", why);
}

/*
 * einhorn's own client (Einhorn::Worker.ack!) sends a YAML document on
 * one line, "%" and newlines escaped: "---%0Acommand: worker:ack%0Apid:
 * 123%0A".  This reads that flat form, a mapping of plain or quoted
 * scalars, into an object; anything else is not einhorn's and is NULL.
 */
static json_object *
einhorn_yaml(const char *line, size_t len)
{
	json_object *o;
	char	*doc, *s, *key, *val, *next;
	size_t	 i, j, vl;
	long long n;

	doc = xreallocarray(NULL, len + 1, 1);
	for (i = j = 0; i < len; i++) {
		if (line[i] == '%' && i + 2 < len && line[i + 1] == '0' &&
		    (line[i + 2] == 'A' || line[i + 2] == 'a')) {
			doc[j++] = '\n';
			i += 2;
		} else if (line[i] == '%' && i + 2 < len &&
		    line[i + 1] == '2' && line[i + 2] == '5') {
			doc[j++] = '%';
			i += 2;
		} else
			doc[j++] = line[i];
	}
	doc[j] = '\0';
	if (strncmp(doc, "---\n", 4) != 0 || memchr(doc, '\0', j) != NULL) {
		free(doc);
		return NULL;
	}
	o = json_object_new_object();
	for (s = doc + 4; s != NULL && *s != '\0'; s = next) {
		if ((next = strchr(s, '\n')) != NULL)
			*next++ = '\0';
		if (*s == '\0' || strcmp(s, "...") == 0)
			continue;
		key = s;
		if ((val = strstr(s, ": ")) == NULL || val == key ||
		    strchr(" -?[{'\"#", *key) != NULL) {
			json_object_put(o);
			o = NULL;
			break;
		}
		*val = '\0';
		val += 2;
		vl = strlen(val);
		if (vl >= 2 && (val[0] == '\'' || val[0] == '"') &&
		    val[vl - 1] == val[0]) {
			val[vl - 1] = '\0';
			json_object_object_add(o, key,
			    json_object_new_string(val + 1));
		} else if (parse_int(val, -(long long)INT_MAX, INT_MAX,
		    &n) == 0)
			json_object_object_add(o, key,
			    json_object_new_int64(n));
		else
			json_object_object_add(o, key,
			    json_object_new_string(val));
	}
	free(doc);
	return o;
}

static json_object *
parse_request(const char *line, size_t len, char **err)
{
	struct json_tokener *tok;
	json_object *req;

	*err = NULL;
	if (len >= 4 && memcmp(line, "---%", 4) == 0) {
		if ((req = einhorn_yaml(line, len)) == NULL)
			*err = error_json("invalid request: not JSON, nor "
			    "einhorn's one-line YAML");
		return req;
	}
	/* Invalid UTF-8 is refused: it could not be echoed as JSON. */
	tok = json_tokener_new_ex(32);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (req == NULL || json_tokener_get_parse_end(tok) < len) {
		*err = error_json("invalid JSON: %s", req != NULL ?
		    "trailing data after the object" :
		    json_tokener_get_error(tok) == json_tokener_continue ?
		    "incomplete" :
		    json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(req);
		req = NULL;
	}
	json_tokener_free(tok);
	return req;
}

/*
 * One request line to one response line (without the newline), for a
 * peer of uid and pid; ack_only: the peer may only ack (einhorn's
 * socket).  Pure with respect to the connection, so the fuzzer can drive
 * it.
 */
static char *
dispatch(struct pool *p, const char *line, size_t len, uid_t uid,
    pid_t pid, bool ack_only)
{
	json_object *req, *v;
	const char *cmd;
	char	*resp, shown[3 * 64 + 1];
	size_t	 i;
	bool	 trusted = uid == 0 || uid == geteuid();

	if ((req = parse_request(line, len, &resp)) == NULL) {
		if (ack_only || (len >= 4 && memcmp(line, "---%", 4) == 0))
			ack_refused(p, pid, "neither JSON nor einhorn's "
			    "one-line YAML");
		return resp;
	}
	if (!json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return error_json("a request is a JSON object like "
		    "{\"cmd\":\"status\"}");
	}
	if (json_object_object_get_ex(req, "command", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "worker:ack") == 0) {
		resp = einhorn_ack(p, req, pid, trusted && !ack_only);
		json_object_put(req);
		return resp;
	}
	if (ack_only || !trusted) {
		json_object_put(req);
		if (ack_only) {
			ack_refused(p, pid, "a request other than worker:ack "
			    "from a peer that may only ack");
			return error_json("this socket takes only einhorn's "
			    "{\"command\":\"worker:ack\"}");
		}
		return error_json("permission denied: uid %u is neither "
		    "wpool's uid %u nor root", (unsigned)uid,
		    (unsigned)geteuid());
	}
	if (!json_object_object_get_ex(req, "cmd", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(req);
		return error_json("\"cmd\" is required: status, reload, scale, "
		    "restart, signal, stop or upgrade");
	}
	cmd = json_object_get_string(v);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0) {
			resp = commands[i].fn(p, req);
			json_object_put(req);
			return resp;
		}
	text_clean(cmd, 64, shown, sizeof(shown));
	resp = error_json("unknown command '%s': expected status, reload, "
	    "scale, restart, signal, stop or upgrade", shown);
	json_object_put(req);
	return resp;
}

char *
control_dispatch(struct pool *p, const char *line, size_t len, uid_t uid,
    pid_t pid)
{
	return dispatch(p, line, len, uid, pid, false);
}

/* Answers one whole request line; returns -1 if the client was closed. */
static int
client_answer(struct client *c, const char *line, size_t len)
{
	char	*resp;
	bool	 stop;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return 0;
	stop_asked = false;
	resp = dispatch(c->ctl->pool, line, len, c->uid, c->pid, c->ack_only);
	stop = stop_asked;
	stop_asked = false;
	client_send(c, resp);
	free(resp);
	if (stop) {
		struct pool *p = c->ctl->pool;

		if (!p->stop_delayed)
			snprintf(p->stop_why, sizeof(p->stop_why),
			    "wpool stop");
		pool_stop_request(p);
	}
	if (upgrade_pending()) {
		struct pool *p = c->ctl->pool;

		/*
		 * The answer first (the exec closes this connection); if
		 * execve fails, the pool carries on as it was.
		 */
		if (client_flush(c) < 0) {
			upgrade_run(p);
			return -1;
		}
		upgrade_run(p);
		return 0;
	}
	return client_flush(c);
}

/* Keeps a partial request; -1 if it is too large (the client is told). */
static int
client_keep(struct client *c, const char *buf, size_t n)
{
	size_t	 cap;
	char	*resp;

	if (c->in_len + n > WPOOL_CTL_MAX_REQUEST) {
		resp = error_json("request too large: over %d KiB",
		    WPOOL_CTL_MAX_REQUEST / 1024);
		client_send(c, resp);
		free(resp);
		client_set_closing(c);
		shutdown(c->fd, SHUT_RD);
		client_flush(c);
		return -1;
	}
	if (c->in_len + n > c->in_cap) {
		for (cap = c->in_cap ? c->in_cap : CTL_CHUNK;
		    cap < c->in_len + n; cap *= 2)
			;
		mem_reserve(c, cap - c->in_cap);
		c->in = xreallocarray(c->in, cap, 1);
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, buf, n);
	c->in_len += n;
	return 0;
}

/*
 * Reads one request and answers it, then goes back to the loop: a client
 * that sends many at once is answered one per turn of the loop, after
 * every other client's turn.  The data past the request is only peeked
 * at, so it stays in the kernel (whose level-triggered readiness brings
 * us back) and not in the master's memory.  Every read has a control
 * buffer and disposes of the descriptors that come with the data: one
 * dropped by the kernel instead would be closed in the master's context,
 * where a close can block.
 */
static void
client_read(struct client *c)
{
	char	 buf[CTL_CHUNK], *nl, *line;
	ssize_t	 n;
	size_t	 take, len;

	for (;;) {
		n = fdrecv_msg(c->fd, buf, sizeof(buf), MSG_PEEK |
		    MSG_DONTWAIT, NULL, NULL, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* The client is done sending; answer what it sent. */
			if (c->out != NULL)
				client_set_closing(c);
			else
				client_close(c);
			return;
		}
		nl = memchr(buf, '\n', (size_t)n);
		take = nl != NULL ? (size_t)(nl - buf) + 1 : (size_t)n;
		n = fdrecv_msg(c->fd, buf, take, MSG_DONTWAIT, NULL, NULL,
		    NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			client_close(c);
			return;
		}
		nl = memchr(buf, '\n', (size_t)n);
		if (nl == NULL) {
			if (client_keep(c, buf, (size_t)n) < 0)
				return;
			continue;
		}
		client_touch(c);
		if (c->in == NULL) {
			client_answer(c, buf, (size_t)(nl - buf));
			return;
		}
		if (client_keep(c, buf, (size_t)(nl - buf)) < 0)
			return;
		/*
		 * The request leaves the client before it is answered, so that
		 * its memory is counted free when the answer's is reserved.
		 */
		line = c->in;
		len = c->in_len;
		c->in = NULL;
		mem_release(c->ctl, c->in_cap);
		c->in_len = c->in_cap = 0;
		client_answer(c, line, len);
		free(line);
		return;
	}
}

static void
client_event(int fd, uint32_t ev, void *arg)
{
	struct client *c = arg;
	char	 sink[CTL_CHUNK];
	ssize_t	 n;

	if ((ev & EPOLLOUT) && client_flush(c) < 0)
		return;
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->closing ||
	    c->out != NULL)
		return;
	if (c->refused) {
		while ((n = fdrecv_msg(fd, sink, sizeof(sink), MSG_DONTWAIT,
		    NULL, NULL, NULL)) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			client_close(c);
		return;
	}
	client_read(c);
}

static void
control_accept(int fd, uint32_t ev, void *arg)
{
	struct control *ctl = arg;
	struct client *c;
	struct ucred cred;
	socklen_t sl;
	int	 cfd;
	bool	 einhorn = fd == ctl->ein_fd;

	(void)ev;
	for (;;) {
		if (ctl->nclients >= CTL_MAX_CLIENTS) {
			/* The rest wait in the backlog until a place frees. */
			if (!ctl->full_paused)
				log_warnx("control: %d clients connected; "
				    "others wait", ctl->nclients);
			ctl->full_paused = true;
			listeners_watch(ctl, false);
			return;
		}
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				if (!ctl->emfile_paused)
					log_warnx("control: out of file "
					    "descriptors; clients wait");
				ctl->emfile_paused = true;
				listeners_watch(ctl, false);
				timer_set(&ctl->emfile_timer, 0.1);
			}
			return;
		}
		sl = sizeof(cred);
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
			close(cfd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->ctl = ctl;
		c->fd = cfd;
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->trusted = cred.uid == 0 || cred.uid == geteuid();
		c->ack_only = einhorn || !c->trusted;
		timer_init(&c->timer, on_client_timeout, c);
		if (loop_add(cfd, EPOLLIN, client_event, c) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&ctl->clients, c, entry);
		ctl->nclients++;
		timer_set(&c->timer, CTL_TIMEOUT);
		/*
		 * A peer that may only ack and is in no worker's tree is told
		 * why at once; the connection stays open for reading, so that
		 * its request is not met by a broken pipe, and what it sends
		 * is discarded.
		 */
		if (c->ack_only && tree_worker(ctl->pool, cred.pid) == NULL) {
			char	*resp = error_json("permission denied: uid %u is "
			    "neither wpool's uid %u nor root, and pid %d is "
			    "not a worker's", (unsigned)cred.uid,
			    (unsigned)geteuid(), (int)cred.pid);

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

/*
 * A listening socket at path, made 0600 as it is bound (by the umask: a
 * chmod of the path afterwards would follow a symlink put in its place),
 * refusing descriptors, and watched.
 */
static int
listen_at(struct control *ctl, const char *path, mode_t umask_bits, int *out,
    char *err, size_t len)
{
	struct sockaddr_un sun;
	mode_t	 old;
	int	 fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0) {
		snprintf(err, len, "cannot create the control socket: %s",
		    strerror(errno));
		return -errno;
	}
	/* Accepted sockets inherit it; older kernels: fdrecv_msg. */
	(void)fdrecv_refuse(fd);
	old = umask(umask_bits);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 1024) < 0) {
		snprintf(err, len, "cannot listen on %s: %s", path,
		    strerror(errno));
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = loop_add(fd, EPOLLIN, control_accept, ctl)) < 0) {
		close(fd);
		unlink(path);
		snprintf(err, len, "cannot watch the control socket");
		return r;
	}
	*out = fd;
	return 0;
}

/*
 * Workers of another user (-u) cannot reach the control socket (0600, in
 * a private directory), so einhorn's EINHORN_SOCK_PATH names a socket of
 * its own for them: in a new directory that only the master and the
 * workers' group may enter, a socket that takes only worker:ack from
 * processes of a worker's tree.  The directory is made by mkdtemp and
 * nobody else may write it, so the chown of the socket inside it cannot
 * be redirected.
 */
static int
einhorn_open(struct control *ctl, char *err, size_t len)
{
	struct pool *p = ctl->pool;
	const struct conf *cf = p->conf;
	char	 path[PATH_MAX];
	struct stat st;
	int	 dfd, r;

	if (!cf->set_user || cf->uid == geteuid())
		return 0;
	snprintf(ctl->ein_dir, sizeof(ctl->ein_dir), "%s/wpool-einhorn.XXXXXX",
	    geteuid() == 0 && stat("/run", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/run", W_OK) == 0 ? "/run" : "/tmp");
	if (mkdtemp(ctl->ein_dir) == NULL) {
		snprintf(err, len, "cannot create a directory for einhorn's "
		    "socket (%s): %s", ctl->ein_dir, strerror(errno));
		ctl->ein_dir[0] = '\0';
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/" EINHORN_SOCK, ctl->ein_dir);
	if ((r = listen_at(ctl, path, 0117, &ctl->ein_fd, err, len)) < 0)
		goto fail;
	if ((dfd = open(ctl->ein_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0 || fchownat(dfd, EINHORN_SOCK, (uid_t)-1, cf->gid,
	    AT_SYMLINK_NOFOLLOW) < 0 || fchown(dfd, (uid_t)-1, cf->gid) < 0 ||
	    fchmod(dfd, 0710) < 0) {
		r = -errno;
		snprintf(err, len, "cannot give einhorn's socket in %s to "
		    "group %u: %s", ctl->ein_dir, (unsigned)cf->gid,
		    strerror(-r));
		if (dfd >= 0)
			close(dfd);
		goto fail;
	}
	close(dfd);
	p->einhorn_path = xstrdup(path);
	log_debug("einhorn's socket for the workers: %s", path);
	return 0;
fail:
	if (ctl->ein_fd >= 0) {
		loop_del(ctl->ein_fd);
		close(ctl->ein_fd);
		ctl->ein_fd = -1;
	}
	unlink(path);
	rmdir(ctl->ein_dir);
	ctl->ein_dir[0] = '\0';
	return r;
}

int
control_open(struct pool *p, const char *path, char *err, size_t len)
{
	struct control *ctl;
	struct sockaddr_un sun;
	struct stat st;
	const char *env;
	bool	 private;
	int	 fd, r;

	/* Freed by control_close, which the caller calls on failure too. */
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->pool = p;
	TAILQ_INIT(&ctl->clients);
	ctl->fd = ctl->ein_fd = -1;
	timer_init(&ctl->emfile_timer, on_emfile_timer, ctl);
	p->ctl = ctl;
	if (path != NULL)
		strlcpy(ctl->path, path, sizeof(ctl->path));
	else if (control_default_path(p->conf->name, ctl->path,
	    sizeof(ctl->path)) >= (int)sizeof(ctl->path)) {
		snprintf(err, len, "the control socket path is too long; set "
		    "one with -s PATH");
		return -ENAMETOOLONG;
	}
	/* An in-place upgrade's: its clients' connections wait on it. */
	if ((fd = upgrade_take_control(ctl->path, sizeof(ctl->path))) >= 0) {
		if ((r = loop_add(fd, EPOLLIN, control_accept, ctl)) < 0) {
			snprintf(err, len, "cannot watch the control socket");
			return r;
		}
		ctl->fd = fd;
		p->control_path = xstrdup(ctl->path);
		return einhorn_open(ctl, err, len);
	}
	env = getenv("WPOOL_CONTROL");
	private = path == NULL && (env == NULL || *env == '\0');
	if ((r = mkdir_parent(ctl->path, private, err, len)) < 0)
		return r;
	if (lstat(ctl->path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, len, "%s exists and is not a socket; not "
		    "replacing it", ctl->path);
		return -EEXIST;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, ctl->path, sizeof(sun.sun_path));
	/* A live socket means another pool; a dead one is left over. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) >= 0) {
		r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		if (r < 0 && errno == EAGAIN)
			r = 0;
		close(fd);
		if (r == 0) {
			snprintf(err, len, "another wpool is running on %s",
			    ctl->path);
			return -EADDRINUSE;
		}
		/* Only a socket is removed: -s may name the wrong file. */
		if (errno == ECONNREFUSED && lstat(ctl->path, &st) == 0 &&
		    S_ISSOCK(st.st_mode))
			unlink(ctl->path);
	}
	if ((r = listen_at(ctl, ctl->path, 0177, &ctl->fd, err, len)) < 0)
		return r;
	p->control_path = xstrdup(ctl->path);
	if ((r = einhorn_open(ctl, err, len)) < 0) {
		control_close(p);
		return r;
	}
	log_debug("control socket %s", ctl->path);
	return 0;
}

int
control_fd(const struct pool *p)
{
	return p->ctl != NULL ? p->ctl->fd : -1;
}

void
control_close(struct pool *p)
{
	struct control *ctl = p->ctl;
	struct client *c;
	char	 path[PATH_MAX];

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->clients)) != NULL) {
		if (c->out != NULL)
			client_flush(c);
		if (TAILQ_FIRST(&ctl->clients) == c)
			client_close(c);
	}
	timer_cancel(&ctl->emfile_timer);
	if (ctl->fd >= 0) {
		loop_del(ctl->fd);
		close(ctl->fd);
		unlink(ctl->path);
	}
	ctl->fd = -1;
	if (ctl->ein_fd >= 0) {
		loop_del(ctl->ein_fd);
		close(ctl->ein_fd);
		snprintf(path, sizeof(path), "%s/" EINHORN_SOCK, ctl->ein_dir);
		unlink(path);
		rmdir(ctl->ein_dir);
	}
	free(ctl);
	p->ctl = NULL;
}
