/*
 * metrics.c: --metrics ADDR, a small HTTP/1.0-style endpoint on the
 * master's own loop: GET /metrics (Prometheus text format) and GET
 * /status (the JSON of `wpool status --json`).  Owns its listening socket
 * and connections; requests are bounded and slow clients dropped, so it
 * can never block the master.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <json-c/json.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define HTTP_MAX_REQUEST	8192
#define HTTP_TIMEOUT		5.0
#define HTTP_MAX_CONNS		256

struct hconn {
	int	 fd;
	char	 in[HTTP_MAX_REQUEST];
	size_t	 in_len;
	char	*out;
	size_t	 out_len, out_off;
	bool	 head;		/* a HEAD request: headers only */
	struct timer timer;
};

static int	 metrics_fd = -1;
static int	 nconns;
static bool	 accept_paused;		/* at HTTP_MAX_CONNS, or out of fds */
static struct timer resume_timer;
static struct pool *metrics_pool;

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

char *
metrics_text(struct pool *p, size_t *lenp)
{
	struct sbuf b = { NULL, 0, 0 };
	struct worker *w;
	double	 now = now_mono();
	char	 name[160];
	static const struct {
		const char *metric, *type, *help;
	} per_worker[] = {
		{ "wpool_worker_up", "gauge",
		    "1 for each live worker, labelled with its state." },
		{ "wpool_worker_rss_bytes", "gauge",
		    "Resident memory of the worker." },
		{ "wpool_worker_cpu_seconds_total", "counter",
		    "CPU time used by the worker." },
		{ "wpool_worker_uptime_seconds", "gauge",
		    "Seconds since the worker started." },
		{ "wpool_worker_restarts_total", "counter",
		    "Times the worker's slot was restarted after a death." },
	};
	size_t	 i;

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
		    name, p->connections_total);
	}
	for (i = 0; i < sizeof(per_worker) / sizeof(per_worker[0]); i++) {
		metric_head(&b, per_worker[i].metric, per_worker[i].type,
		    per_worker[i].help);
		TAILQ_FOREACH(w, &p->workers, entry) {
			sb_printf(&b, "%s{pool=\"%s\",id=\"%d\",pid=\"%d\"",
			    per_worker[i].metric, name, w->id, (int)w->pid);
			switch (i) {
			case 0:
				sb_printf(&b, ",state=\"%s\"} 1\n",
				    worker_state_name(w->state));
				break;
			case 1:
				sb_printf(&b, "} %llu\n", (unsigned long long)
				    w->sample.rss_bytes);
				break;
			case 2:
				sb_printf(&b, "} %.2f\n",
				    w->sample.cpu_seconds);
				break;
			case 3:
				sb_printf(&b, "} %.3f\n",
				    now - w->started_mono);
				break;
			case 4:
				sb_printf(&b, "} %u\n",
				    p->slots[w->id].restarts);
				break;
			}
		}
	}
	*lenp = b.len;
	return b.s;
}

static void
hconn_close(struct hconn *c)
{
	timer_cancel(&c->timer);
	loop_del(c->fd);
	close(c->fd);
	free(c->out);
	free(c);
	nconns--;
	if (accept_paused && metrics_fd >= 0) {
		accept_paused = false;
		timer_cancel(&resume_timer);
		loop_mod(metrics_fd, EPOLLIN);
	}
}

/*
 * Stops watching the listening socket (its backlog holds the rest) until
 * a connection closes or, out of fds, a moment has passed: a socket left
 * readable that is not accepted from would wake the loop for ever.
 */
static void
accept_pause(double retry)
{
	accept_paused = true;
	loop_mod(metrics_fd, 0);
	if (retry > 0)
		timer_set(&resume_timer, retry);
}

static void
on_resume_timer(void *arg)
{
	(void)arg;
	if (accept_paused && metrics_fd >= 0) {
		accept_paused = false;
		loop_mod(metrics_fd, EPOLLIN);
	}
}

static void
on_hconn_timeout(void *arg)
{
	hconn_close(arg);
}

static void
hconn_flush(struct hconn *c)
{
	ssize_t	 n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			loop_mod(c->fd, EPOLLOUT);
			return;
		}
		if (n <= 0)
			break;
		c->out_off += (size_t)n;
	}
	hconn_close(c);
}

static void
respond(struct hconn *c, int code, const char *reason, const char *type,
    const char *body, size_t blen)
{
	char	 head[256];
	int	 hl;

	hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
	    reason, type, blen);
	if (c->head)
		blen = 0;	/* the length a GET would get, and no body */
	c->out = xreallocarray(NULL, (size_t)hl + blen, 1);
	memcpy(c->out, head, (size_t)hl);
	memcpy(c->out + hl, body, blen);
	c->out_len = (size_t)hl + blen;
	c->out_off = 0;
	shutdown(c->fd, SHUT_RD);
	loop_mod(c->fd, EPOLLOUT);
	hconn_flush(c);
}

static void
handle_request(struct hconn *c)
{
	char	 method[8], path[256];
	char	*body;
	size_t	 blen;

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
	if (strcmp(path, "/metrics") == 0) {
		body = metrics_text(metrics_pool, &blen);
		respond(c, 200, "OK", "text/plain; version=0.0.4; "
		    "charset=utf-8", body, blen);
		free(body);
	} else if (strcmp(path, "/status") == 0) {
		json_object *o;
		const char *s;

		pool_sample(metrics_pool);
		o = status_json(metrics_pool, now_mono(), now_real(), false);
		json_object_object_del(o, "ok");
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		respond(c, 200, "OK", "application/json", s, strlen(s));
		json_object_put(o);
	} else
		respond(c, 404, "Not Found", "text/plain",
		    "not found: try /metrics or /status\n", 36);
}

static void
hconn_event(int fd, uint32_t ev, void *arg)
{
	struct hconn *c = arg;
	ssize_t	 n;

	if (c->out != NULL) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			hconn_flush(c);
		return;
	}
	n = read(fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		hconn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
	if (strstr(c->in, "\r\n\r\n") != NULL || strstr(c->in, "\n\n") != NULL)
		handle_request(c);
	else if (c->in_len >= sizeof(c->in) - 1)
		respond(c, 431, "Request Header Fields Too Large",
		    "text/plain", "request too large\n", 18);
}

static void
metrics_accept(int fd, uint32_t ev, void *arg)
{
	struct hconn *c;
	int	 cfd;

	(void)ev;
	(void)arg;
	for (;;) {
		if (nconns >= HTTP_MAX_CONNS) {
			accept_pause(0);
			return;
		}
		if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause(0.1);
			return;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = cfd;
		timer_init(&c->timer, on_hconn_timeout, c);
		if (loop_add(cfd, EPOLLIN, hconn_event, c) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		nconns++;
		timer_set(&c->timer, HTTP_TIMEOUT);
	}
}

/* Binds ADDR (HOST:PORT); the caller exits 1 on failure. */
int
metrics_open(struct pool *p, const char *addr, char *err, size_t len)
{
	struct listener l;
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
	r = listener_open(&l, 128, false, err, len);
	if (r == 0) {
		set_nonblock(l.fd, true);
		if ((r = loop_add(l.fd, EPOLLIN, metrics_accept, NULL)) < 0)
			close(l.fd);
		else {
			metrics_fd = l.fd;
			metrics_pool = p;
			timer_init(&resume_timer, on_resume_timer, NULL);
			log_info("metrics on http://%s/metrics", l.address);
		}
	}
	listener_free(&l);
	return r;
}

void
metrics_close(void)
{
	if (metrics_fd >= 0) {
		timer_cancel(&resume_timer);
		loop_del(metrics_fd);
		close(metrics_fd);
	}
	metrics_fd = -1;
}
