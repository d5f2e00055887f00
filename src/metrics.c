/*
 * metrics.c: --metrics ADDR, a small HTTP/1.0-style endpoint on the
 * master's own loop: GET /metrics (Prometheus text format), GET
 * /status (the JSON of `wpool status --json`), and the probes GET /livez
 * (200 while the loop turns) and GET /readyz (200 or 503: drain.c).  Owns its listening socket
 * and connections.  Anyone who can reach the port may be hostile, so
 * everything a client can make the master hold is bounded: a few
 * connections (at the limit one of the address that holds the most, the
 * one that has made the least progress, gives way to a new one, so holding
 * connections cannot lock a scraper out), a deadline for the request and
 * one for the answer, memory allocated as bytes arrive, and a budget of
 * work per wake-up.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <json-c/json.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define HTTP_MAX_REQUEST	8192		/* request line and headers */
#define HTTP_MAX_CONNS		64		/* fewer with a low fd limit */
#define HTTP_MIN_CONNS		4
#define HTTP_HEADER_TIMEOUT	2.0		/* accept to the blank line */
#define HTTP_WRITE_TIMEOUT	5.0		/* for the whole answer */
#define HTTP_LINGER_TIMEOUT	2.0		/* reading after the answer */
#define HTTP_LINGER_MAX		(16 << 20)	/* bytes read after it */
#define HTTP_MAX_OUT		(8 << 20)	/* answers held, all clients */
#define HTTP_ACCEPT_BUDGET	32		/* connections per wake-up */
#define HTTP_READ_BUDGET	(64 * 1024)	/* bytes per wake-up */

/*
 * A connection reads its request, writes its answer, then lingers: its
 * write side shut down (FIN after the answer), it reads and discards what
 * the client still sends until the client closes.  Closing with unread
 * bytes would make the kernel send a reset, and a client still sending
 * (an oversized header) would see the reset instead of the answer.
 */
enum hphase { H_READ, H_WRITE, H_LINGER };

struct hconn {
	TAILQ_ENTRY(hconn) entry;	/* on its busy or lingering list */
	struct metrics *m;		/* its server's */
	int	 fd;
	enum hphase phase;
	char	*in;		/* NULL until the first byte */
	size_t	 in_len, in_cap;
	char	*out;
	size_t	 out_len, out_off;
	size_t	 drained;	/* bytes read while lingering */
	bool	 head;		/* a HEAD request: headers only */
	int	 peer;		/* its address: index in m->peers */
	struct timer timer;	/* the deadline of the phase */
};
TAILQ_HEAD(hconn_list, hconn);

/*
 * The addresses connections come from, with how many each holds: IPv4
 * addresses whole, IPv6 by /64 (what one host usually has to itself).
 */
struct peer {
	unsigned char key[16];
	int	 n;		/* 0: a free entry */
};

/* The server's state, the pool's (p->metrics) from metrics_open on. */
struct metrics {
	struct pool *pool;	/* the one it shows */
	int	 fd;		/* the listening socket */
	int	 nconns, max_conns;
	size_t	 out_total;	/* answers not yet handed to the kernel */
	/*
	 * Reading or writing, least recent progress first: the head is the
	 * connection a new one replaces when max_conns are open.  Lingering
	 * ones have had their answer and go before any of these.
	 */
	struct hconn_list busy;
	struct hconn_list lingering;
	struct peer peers[HTTP_MAX_CONNS];
	unsigned long evicted;	/* connections dropped for newer ones */
	double	 evict_logged;	/* when that was last said */
	bool	 accept_paused;	/* out of fds */
	struct timer resume_timer;
};

struct sbuf {
	char	*s;
	size_t	 len, cap;
};

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap -
		    b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->s != NULL && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->s = xreallocarray(b->s, b->cap, 1);
	}
}

static void
metric_head(struct sbuf *b, const char *name, const char *type,
    const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escape backslash, quote and newline. */
static const char *
label(const char *s, char *buf, size_t len)
{
	size_t	 o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else
			buf[o++] = *s;
	}
	buf[o] = '\0';
	return buf;
}

/* The exit causes' label values, by enum exit_cause. */
static const char *const exit_cause_names[SLOT_NEXIT_CAUSES] = {
	[EXIT_C_STOPPED] = "stopped",
	[EXIT_C_EXITED] = "exited",
	[EXIT_C_FAILED] = "failed",
	[EXIT_C_KILLED] = "killed",
	[EXIT_C_EXEC] = "exec_failed",
	[EXIT_C_READY_TIMEOUT] = "ready_timeout",
	[EXIT_C_WATCHDOG] = "watchdog",
};

/*
 * A worker of slot s ended with status: counted by cause, the first that
 * applies (what wpool did to it before what it did), and its requests
 * kept, so that the slot's counters only grow across restarts.
 */
void
metrics_count_exit(struct slot *s, const struct worker *w, int status)
{
	enum exit_cause c;

	if (w->exec_failed)
		c = EXIT_C_EXEC;
	else if (w->ready_failed)
		c = EXIT_C_READY_TIMEOUT;
	else if (w->watchdog_fired)
		c = EXIT_C_WATCHDOG;
	else if (w->stop_sent)
		c = EXIT_C_STOPPED;
	else if (WIFSIGNALED(status))
		c = EXIT_C_KILLED;
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		c = EXIT_C_EXITED;
	else
		c = EXIT_C_FAILED;
	s->exits[c]++;
	if (balance_requests(w) > 0)
		s->requests_done += (unsigned long)balance_requests(w);
}

/* The role label of a live worker: one of a bounded few, never a pid. */
static const char *const role_names[] = {
	[ROLE_NONE] = "none",
	[ROLE_CUR] = "cur",
	[ROLE_NEXT] = "next",
	[ROLE_OLD] = "old",
};

/*
 * The per-worker series, labelled by slot and role: a slot has at most
 * one worker of each role (cur, next, old; "none" for one that outlived
 * its slot), so the series are bounded by the slots whatever the
 * restarts.  The pid is a value (wpool_worker_pid), not a label.
 */
enum { PW_UP, PW_PID, PW_RSS, PW_MEM, PW_CPU, PW_UPTIME, PW_N };

static void
per_worker(struct sbuf *b, struct pool *p, const char *name, double now)
{
	static const struct {
		const char *metric, *type, *help;
	} pw[PW_N] = {
		[PW_UP] = { "wpool_worker_up", "gauge",
		    "1 for each live worker, by slot (id), role and state." },
		[PW_PID] = { "wpool_worker_pid", "gauge",
		    "The process id of the worker." },
		[PW_RSS] = { "wpool_worker_rss_bytes", "gauge",
		    "Resident memory of the worker's own process." },
		[PW_MEM] = { "wpool_worker_memory_bytes", "gauge",
		    "Memory of the worker's whole process tree, as "
		    "--max-memory sees it: PSS (kind=\"pss\") when every "
		    "process's smaps_rollup could be read, else RSS summed." },
		[PW_CPU] = { "wpool_worker_cpu_seconds_total", "counter",
		    "CPU time used by the worker (starts again with a new "
		    "worker in the slot and role)." },
		[PW_UPTIME] = { "wpool_worker_uptime_seconds", "gauge",
		    "Seconds since the worker started." },
	};
	/* Bit r of seen[id]: (id, role r) shown, so no series twice. */
	static unsigned char seen[WPOOL_MAX_WORKERS];
	struct worker *w;
	enum worker_role r;
	int	 i;

	for (i = 0; i < PW_N; i++) {
		metric_head(b, pw[i].metric, pw[i].type, pw[i].help);
		memset(seen, 0, sizeof(seen));
		TAILQ_FOREACH(w, &p->workers, entry) {
			r = worker_role(p, w);
			if (seen[w->id] & (1u << r))
				continue;
			seen[w->id] |= 1u << r;
			sb_printf(b, "%s{pool=\"%s\",id=\"%d\",role=\"%s\"",
			    pw[i].metric, name, w->id, role_names[r]);
			switch (i) {
			case PW_UP:
				sb_printf(b, ",state=\"%s\"} 1\n",
				    worker_state_name(w->state));
				break;
			case PW_PID:
				sb_printf(b, "} %d\n", (int)w->pid);
				break;
			case PW_RSS:
				sb_printf(b, "} %llu\n", (unsigned long long)
				    w->sample.rss_bytes);
				break;
			case PW_MEM:
				sb_printf(b, ",kind=\"%s\"} %llu\n",
				    w->sample.mem_pss ? "pss" : "rss",
				    (unsigned long long)w->sample.mem_bytes);
				break;
			case PW_CPU:
				sb_printf(b, "} %.2f\n",
				    w->sample.cpu_seconds);
				break;
			case PW_UPTIME:
				sb_printf(b, "} %.3f\n",
				    now - w->started_mono);
				break;
			}
		}
	}
}

/*
 * The per-slot counters: one series per slot that has ever run a worker
 * (and per exit cause), growing across restarts and reloads, so that
 * rate() over them means something.
 */
static void
per_slot(struct sbuf *b, struct pool *p, const char *name)
{
	struct worker *w;
	const struct slot *s;
	unsigned long n;
	int	 i, c;

	if (p->slots == NULL)
		return;
	metric_head(b, "wpool_worker_restarts_total", "counter",
	    "Times the slot's worker was restarted after it died.");
	for (i = 0; i < WPOOL_MAX_WORKERS; i++)
		if (p->slots[i].inited)
			sb_printf(b, "wpool_worker_restarts_total{pool=\"%s\","
			    "id=\"%d\"} %u\n", name, i, p->slots[i].restarts);
	metric_head(b, "wpool_worker_exits_total", "counter",
	    "Workers of the slot that ended, by cause.");
	for (i = 0; i < WPOOL_MAX_WORKERS; i++) {
		if (!(s = &p->slots[i])->inited)
			continue;
		for (c = 0; c < SLOT_NEXIT_CAUSES; c++)
			sb_printf(b, "wpool_worker_exits_total{pool=\"%s\","
			    "id=\"%d\",cause=\"%s\"} %lu\n", name, i,
			    exit_cause_names[c], s->exits[c]);
	}
	if (p->conf->mode != MODE_BALANCE)
		return;
	metric_head(b, "wpool_worker_requests_total", "counter",
	    "Connections the slot's workers were handed.");
	for (i = 0; i < WPOOL_MAX_WORKERS; i++) {
		if (!(s = &p->slots[i])->inited)
			continue;
		n = s->requests_done;
		TAILQ_FOREACH(w, &p->workers, entry)
			if (w->id == i && balance_requests(w) > 0)
				n += (unsigned long)balance_requests(w);
		sb_printf(b, "wpool_worker_requests_total{pool=\"%s\","
		    "id=\"%d\"} %lu\n", name, i, n);
	}
}

char *
metrics_text(struct pool *p, size_t *lenp)
{
	struct sbuf b = { NULL, 0, 0 };
	double	 now = now_mono();
	char	 name[160];

	pool_sample(p);
	label(p->conf->name, name, sizeof(name));
	metric_head(&b, "wpool_workers_target", "gauge",
	    "Workers the pool aims to run.");
	sb_printf(&b, "wpool_workers_target{pool=\"%s\"} %d\n", name,
	    p->target);
	metric_head(&b, "wpool_workers_alive", "gauge", "Live workers.");
	sb_printf(&b, "wpool_workers_alive{pool=\"%s\"} %d\n", name,
	    p->nworkers);
	metric_head(&b, "wpool_workers_ready", "gauge", "Ready workers.");
	sb_printf(&b, "wpool_workers_ready{pool=\"%s\"} %d\n", name,
	    pool_count(p, W_READY));
	metric_head(&b, "wpool_reloads_total", "counter",
	    "Reloads started (the generation).");
	sb_printf(&b, "wpool_reloads_total{pool=\"%s\"} %u\n", name,
	    p->generation);
	metric_head(&b, "wpool_restarts_total", "counter",
	    "Workers restarted after they died.");
	sb_printf(&b, "wpool_restarts_total{pool=\"%s\"} %lu\n", name,
	    p->restarts);
	metric_head(&b, "wpool_lifecycle_bad_transitions_total", "counter",
	    "Events the lifecycle table refused (0 unless wpool has a bug).");
	sb_printf(&b, "wpool_lifecycle_bad_transitions_total{pool=\"%s\"} "
	    "%lu\n", name, p->bad_transitions);
	metric_head(&b, "wpool_uptime_seconds", "gauge",
	    "Seconds since the master started.");
	sb_printf(&b, "wpool_uptime_seconds{pool=\"%s\"} %.3f\n", name,
	    now - p->started_mono);
	metric_head(&b, "wpool_cpus", "gauge",
	    "Usable CPUs as wpool counted them.");
	sb_printf(&b, "wpool_cpus{pool=\"%s\"} %d\n", name, p->cpus.n);
	if (p->conf->mode == MODE_BALANCE) {
		metric_head(&b, "wpool_connections_total", "counter",
		    "Connections accepted by the master.");
		sb_printf(&b, "wpool_connections_total{pool=\"%s\"} %lu\n",
		    name, balance_accepted(p));
	}
	per_worker(&b, p, name, now);
	per_slot(&b, p, name);
	*lenp = b.len;
	return b.s;
}

/* A new connection's entry in m->peers (there is room: one per conn). */
static int
peer_ref(struct metrics *m, const struct sockaddr_storage *ss)
{
	unsigned char key[16];
	int	 i, free_i = -1;

	memset(key, 0, sizeof(key));
	if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;	/* as an IPv4-mapped address */
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr,
		    4);
	} else if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;

		memcpy(key, a, IN6_IS_ADDR_V4MAPPED(a) ? 16 : 8);
	}
	for (i = 0; i < HTTP_MAX_CONNS; i++) {
		if (m->peers[i].n > 0 && memcmp(m->peers[i].key, key,
		    sizeof(key)) == 0) {
			m->peers[i].n++;
			return i;
		}
		if (m->peers[i].n == 0 && free_i < 0)
			free_i = i;
	}
	memcpy(m->peers[free_i].key, key, sizeof(key));
	m->peers[free_i].n = 1;
	return free_i;
}

static void
hconn_close(struct hconn *c)
{
	struct metrics *m = c->m;

	m->peers[c->peer].n--;
	timer_cancel(&c->timer);
	TAILQ_REMOVE(c->phase == H_LINGER ? &m->lingering : &m->busy, c,
	    entry);
	loop_del(c->fd);
	close(c->fd);
	m->out_total -= c->out_len;
	free(c->in);
	free(c->out);
	free(c);
	m->nconns--;
}

/* It made progress: the last to give way to a new connection. */
static void
hconn_touch(struct hconn *c)
{
	struct metrics *m = c->m;

	TAILQ_REMOVE(&m->busy, c, entry);
	TAILQ_INSERT_TAIL(&m->busy, c, entry);
}

/*
 * Room for one more connection: one that already has its answer goes
 * first; then, of the address that holds the most connections, the one
 * that has made the least progress for longest.  A scraper sends its
 * request and reads its answer at once, from an address of its own, so an
 * attacker holding connections, idle or trickling, only pushes out its
 * own; even from the scraper's address it has to open max_conns of them
 * between the scraper's connect and its request.
 */
static void
hconn_evict(struct metrics *m)
{
	struct hconn *c;
	int	 i, most = 0;

	if ((c = TAILQ_FIRST(&m->lingering)) == NULL) {
		for (i = 0; i < HTTP_MAX_CONNS; i++)
			if (m->peers[i].n > most)
				most = m->peers[i].n;
		TAILQ_FOREACH(c, &m->busy, entry)
			if (m->peers[c->peer].n == most)
				break;
	}
	if (c == NULL)
		return;
	hconn_close(c);
	/* Said once a minute at most: the flood must not flood the log. */
	m->evicted++;
	if (m->evict_logged == 0 || now_mono() - m->evict_logged >= 60) {
		m->evict_logged = now_mono();
		log_warnx("metrics: %d connections open, the most allowed: "
		    "dropping the least active for new ones (%lu so far)",
		    m->max_conns, m->evicted);
	}
}

static void
on_hconn_timeout(void *arg)
{
	hconn_close(arg);
}

/* The whole answer is with the kernel: FIN after it, then linger. */
static void
hconn_linger(struct hconn *c)
{
	struct metrics *m = c->m;

	m->out_total -= c->out_len;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	TAILQ_REMOVE(&m->busy, c, entry);
	TAILQ_INSERT_TAIL(&m->lingering, c, entry);
	c->phase = H_LINGER;
	if (shutdown(c->fd, SHUT_WR) < 0 || loop_mod(c->fd, EPOLLIN) < 0) {
		hconn_close(c);
		return;
	}
	timer_set(&c->timer, HTTP_LINGER_TIMEOUT);
}

static void
hconn_flush(struct hconn *c)
{
	ssize_t	 n;
	bool	 sent = false;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (sent)
				hconn_touch(c);
			return;
		}
		if (n <= 0) {
			hconn_close(c);
			return;
		}
		c->out_off += (size_t)n;
		sent = true;
	}
	hconn_linger(c);
}

static void
respond(struct hconn *c, int code, const char *reason, const char *type,
    const char *body, size_t blen)
{
	struct metrics *m = c->m;
	struct hconn *o, *next;
	char	 head[256];
	size_t	 need;
	int	 hl;

	hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
	    reason, type, blen);
	if (c->head)
		blen = 0;	/* the length a GET would get, and no body */
	need = (size_t)hl + blen;
	/* Answers wait here for clients that do not read them: bounded. */
	for (o = TAILQ_FIRST(&m->busy); o != NULL && m->out_total + need >
	    HTTP_MAX_OUT; o = next) {
		next = TAILQ_NEXT(o, entry);
		if (o->phase == H_WRITE)
			hconn_close(o);
	}
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	c->out = xreallocarray(NULL, need, 1);
	memcpy(c->out, head, (size_t)hl);
	memcpy(c->out + hl, body, blen);
	c->out_len = need;
	c->out_off = 0;
	m->out_total += need;
	c->phase = H_WRITE;
	timer_set(&c->timer, HTTP_WRITE_TIMEOUT);
	if (loop_mod(c->fd, EPOLLOUT) < 0) {
		hconn_close(c);
		return;
	}
	hconn_flush(c);
}

static void
route_metrics(struct hconn *c)
{
	char	*body;
	size_t	 blen;

	body = metrics_text(c->m->pool, &blen);
	respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    body, blen);
	free(body);
}

static void
route_status(struct hconn *c)
{
	json_object *o;
	const char *s;

	pool_sample(c->m->pool);
	o = status_json(c->m->pool, now_mono(), false);
	json_object_object_del(o, "ok");
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	respond(c, 200, "OK", "application/json", s, strlen(s));
	json_object_put(o);
}

/* Liveness: that this answers at all is the master's loop turning. */
static void
route_livez(struct hconn *c)
{
	respond(c, 200, "OK", "text/plain", "ok\n", 3);
}

/* Readiness: drain.c's answer, the one `status --check` gives. */
static void
route_readyz(struct hconn *c)
{
	char	 why[128], body[160];
	bool	 ok = pool_ready(c->m->pool, why, sizeof(why));
	int	 n;

	n = snprintf(body, sizeof(body), "%s: %s\n", ok ? "ready" :
	    "not ready", why);
	if (ok)
		respond(c, 200, "OK", "text/plain", body, (size_t)n);
	else
		respond(c, 503, "Service Unavailable", "text/plain", body,
		    (size_t)n);
}

static const struct {
	const char *path;
	void	(*fn)(struct hconn *);
} routes[] = {
	{ "/metrics", route_metrics },
	{ "/status", route_status },
	{ "/livez", route_livez },
	{ "/readyz", route_readyz },
};

static void
handle_request(struct hconn *c)
{
	char	 method[8], path[256];
	size_t	 i;

	if (sscanf(c->in, "%7s %255s", method, path) != 2) {
		respond(c, 400, "Bad Request", "text/plain", "bad request\n",
		    12);
		return;
	}
	c->head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !c->head) {
		respond(c, 405, "Method Not Allowed", "text/plain",
		    "only GET\n", 9);
		return;
	}
	/* A probe's query string (?verbose) changes nothing. */
	path[strcspn(path, "?")] = '\0';
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(path, routes[i].path) == 0) {
			routes[i].fn(c);
			return;
		}
	respond(c, 404, "Not Found", "text/plain",
	    "not found: try /metrics, /status, /livez or /readyz\n", 52);
}

/*
 * Control bytes no request line or header field may hold (RFC 9110 5.5,
 * RFC 9112 2.2): such a request is malformed whatever follows, and a NUL
 * would also hide the end of the headers from the string search.
 */
static bool
bad_bytes(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t	 i;

	for (i = 0; i < n; i++)
		if ((u[i] < 0x20 && u[i] != '\t' && u[i] != '\r' &&
		    u[i] != '\n') || u[i] == 0x7f)
			return true;
	return false;
}

/* The request so far lives in c->in, grown as bytes arrive. */
static void
hconn_read(struct hconn *c)
{
	char	 buf[HTTP_MAX_REQUEST];
	size_t	 from, cap;
	ssize_t	 n;

	n = read(c->fd, buf, HTTP_MAX_REQUEST - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		hconn_close(c);
		return;
	}
	if (bad_bytes(buf, (size_t)n)) {
		respond(c, 400, "Bad Request", "text/plain", "bad request\n",
		    12);
		return;
	}
	if (c->in_len + (size_t)n + 1 > c->in_cap) {
		cap = c->in_cap > 0 ? c->in_cap : 256;
		while (cap < c->in_len + (size_t)n + 1)
			cap *= 2;
		if (cap > HTTP_MAX_REQUEST + 1)
			cap = HTTP_MAX_REQUEST + 1;
		c->in = xreallocarray(c->in, cap, 1);
		c->in_cap = cap;
	}
	/* Only the new bytes (and three before them) can end the headers. */
	from = c->in_len > 3 ? c->in_len - 3 : 0;
	memcpy(c->in + c->in_len, buf, (size_t)n);
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
	hconn_touch(c);
	if (memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4) != NULL ||
	    memmem(c->in + from, c->in_len - from, "\n\n", 2) != NULL)
		handle_request(c);
	else if (c->in_len >= HTTP_MAX_REQUEST)
		respond(c, 431, "Request Header Fields Too Large",
		    "text/plain", "request too large\n", 18);
}

/* Reads and discards, a budget at a time, until the client closes. */
static void
hconn_drain(struct hconn *c)
{
	char	 buf[16384];
	size_t	 budget = HTTP_READ_BUDGET;
	ssize_t	 n;

	while (budget > 0) {
		n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0 || (c->drained += (size_t)n) > HTTP_LINGER_MAX) {
			hconn_close(c);
			return;
		}
		budget -= (size_t)n < budget ? (size_t)n : budget;
	}
}

static void
hconn_event(int fd, uint32_t ev, void *arg)
{
	static void (*const phase_io[])(struct hconn *) = {
		[H_READ] = hconn_read,
		[H_WRITE] = hconn_flush,
		[H_LINGER] = hconn_drain,
	};
	struct hconn *c = arg;

	(void)fd;
	(void)ev;	/* errors and hang-ups show in the read or send */
	phase_io[c->phase](c);
}

/*
 * Out of fds: stops watching the listening socket (its backlog holds the
 * rest) for a moment; a socket left readable that is not accepted from
 * would wake the loop for ever.
 */
static void
accept_pause(struct metrics *m, double retry)
{
	m->accept_paused = true;
	loop_mod(m->fd, 0);
	timer_set(&m->resume_timer, retry);
}

static void
on_resume_timer(void *arg)
{
	struct metrics *m = arg;

	if (m->accept_paused) {
		m->accept_paused = false;
		loop_mod(m->fd, EPOLLIN);
	}
}

/*
 * A budget of connections per wake-up, so that a flood of them cannot
 * starve the rest of the loop; the listening socket stays readable and
 * the loop comes back for the others.  At max_conns each new connection
 * takes the place of an old one (hconn_evict), so the fds held stay
 * bounded whatever the flood and are never the workers' to miss.
 */
static void
metrics_accept(int fd, uint32_t ev, void *arg)
{
	struct metrics *m = arg;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct hconn *c;
	int	 cfd, i;

	(void)ev;
	for (i = 0; i < HTTP_ACCEPT_BUDGET; i++) {
		sl = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		if ((cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause(m, 0.1);
			return;
		}
		if (m->nconns >= m->max_conns)
			hconn_evict(m);
		c = xcalloc(1, sizeof(*c));
		c->m = m;
		c->fd = cfd;
		c->phase = H_READ;
		timer_init(&c->timer, on_hconn_timeout, c);
		if (loop_add(cfd, EPOLLIN, hconn_event, c) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&m->busy, c, entry);
		c->peer = peer_ref(m, &ss);
		m->nconns++;
		timer_set(&c->timer, HTTP_HEADER_TIMEOUT);
		/*
		 * A scraper's request is usually there by now: take it
		 * before later connections can push this one out.
		 */
		hconn_read(c);
	}
}

/* Binds ADDR (HOST:PORT); the caller exits 1 on failure. */
int
metrics_open(struct pool *p, const char *addr, char *err, size_t len)
{
	struct metrics *m;
	struct listener l;
	struct rlimit rl;
	char	 lerr[256];
	int	 r;

	if ((r = listener_parse(addr, &l, lerr, sizeof(lerr))) < 0 ||
	    l.type != L_TCP) {
		snprintf(err, len, "--metrics: invalid value '%s': %s", addr,
		    r < 0 ? lerr : "expected HOST:PORT");
		if (r == 0)
			listener_free(&l);
		return -EINVAL;
	}
	m = xcalloc(1, sizeof(*m));
	m->pool = p;
	TAILQ_INIT(&m->busy);
	TAILQ_INIT(&m->lingering);
	timer_init(&m->resume_timer, on_resume_timer, m);
	/* A sixteenth of the fds at most: the rest are the workers'. */
	m->max_conns = HTTP_MAX_CONNS;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur <
	    (rlim_t)HTTP_MAX_CONNS * 16)
		m->max_conns = rl.rlim_cur / 16 > HTTP_MIN_CONNS ?
		    (int)(rl.rlim_cur / 16) : HTTP_MIN_CONNS;
	/* An in-place upgrade's: what queued meanwhile is served. */
	if ((l.fd = upgrade_take_fd("metrics")) >= 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		r = 0;
		if (getsockname(l.fd, (struct sockaddr *)&ss, &sl) == 0)
			sockaddr_format(&ss, sl, l.address, sizeof(l.address));
	} else
		r = listener_open(&l, 128, false, err, len);
	if (r == 0) {
		set_nonblock(l.fd, true);
		if ((r = loop_add(l.fd, EPOLLIN, metrics_accept, m)) < 0)
			close(l.fd);
		else {
			m->fd = l.fd;
			p->metrics = m;
			log_info("metrics on http://%s/metrics", l.address);
		}
	}
	if (r < 0)
		free(m);
	listener_free(&l);
	return r;
}

int
metrics_fd(const struct pool *p)
{
	return p->metrics != NULL ? p->metrics->fd : -1;
}

void
metrics_close(struct pool *p)
{
	struct metrics *m = p->metrics;
	struct hconn *c;

	if (m == NULL)
		return;
	while ((c = TAILQ_FIRST(&m->lingering)) != NULL)
		hconn_close(c);
	while ((c = TAILQ_FIRST(&m->busy)) != NULL)
		hconn_close(c);
	timer_cancel(&m->resume_timer);
	loop_del(m->fd);
	close(m->fd);
	free(m);
	p->metrics = NULL;
}
