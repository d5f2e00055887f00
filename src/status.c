/*
 * status.c: the pool as a json-c object, for `wpool status --json`, the
 * control socket and /status.  Pure: it reads struct pool and the monotonic
 * time it is given, and changes nothing.
 */
#include <json-c/json.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wpool.h"

static json_object *
iso_time(double t)
{
	char	 buf[32];
	time_t	 s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_object_new_string(buf);
}

static json_object *
dbl(double v)
{
	/* Millisecond precision is all a reader needs, and it stays short. */
	char	 buf[32];

	snprintf(buf, sizeof(buf), "%.3f", v);
	return json_object_new_double_s(v, buf);
}

/*
 * The length of the UTF-8 sequence at s (n bytes left), 0 if it is not
 * valid: overlong forms, surrogates and code points past U+10FFFF are not.
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	static const struct {
		unsigned char lo, hi;	/* the lead byte */
		unsigned char lo2, hi2;	/* the second byte */
		size_t	 len;
	} seq[] = {
		{ 0xc2, 0xdf, 0x80, 0xbf, 2 },
		{ 0xe0, 0xe0, 0xa0, 0xbf, 3 },
		{ 0xe1, 0xec, 0x80, 0xbf, 3 },
		{ 0xed, 0xed, 0x80, 0x9f, 3 },
		{ 0xee, 0xef, 0x80, 0xbf, 3 },
		{ 0xf0, 0xf0, 0x90, 0xbf, 4 },
		{ 0xf1, 0xf3, 0x80, 0xbf, 4 },
		{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
	};
	size_t	 i, k;

	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		if (s[0] < seq[i].lo || s[0] > seq[i].hi)
			continue;
		if (n < seq[i].len || s[1] < seq[i].lo2 || s[1] > seq[i].hi2)
			return 0;
		for (k = 2; k < seq[i].len; k++)
			if ((s[k] & 0xc0) != 0x80)
				return 0;
		return seq[i].len;
	}
	return 0;
}

/*
 * Text from a worker or a client (STATUS=, a command name), made fit for
 * JSON and a terminal: at most max bytes of s are read; C0 and C1
 * controls and DEL become spaces, bytes that are not UTF-8 become U+FFFD;
 * out (len > 0) gets whole characters only, NUL-terminated.  Returns the
 * length written.
 */
size_t
text_clean(const char *s, size_t max, char *out, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t	 i = 0, o = 0, n, left;

	for (left = 0; left < max && u[left] != '\0'; left++)
		;
	while (i < left) {
		if (u[i] < 0x80) {
			n = 1;
			if (o + 1 >= len)
				break;
			out[o++] = u[i] < 0x20 || u[i] == 0x7f ? ' ' :
			    (char)u[i];
		} else if ((n = utf8_len(u + i, left - i)) == 0) {
			n = 1;
			if (o + 3 >= len)
				break;
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
		} else if (n == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0) {
			if (o + 1 >= len)
				break;
			out[o++] = ' ';
		} else {
			if (o + n >= len)
				break;
			memcpy(out + o, u + i, n);
			o += n;
		}
		i += n;
	}
	out[o] = '\0';
	return o;
}

static json_object *
last_exit(const struct slot *s)
{
	json_object *o;

	if (!s->has_exit)
		return NULL;
	o = json_object_new_object();
	if (s->last_signal > 0)
		json_object_object_add(o, "signal",
		    json_object_new_string(signal_name(s->last_signal)));
	else
		json_object_object_add(o, "code",
		    json_object_new_int(s->last_code));
	return o;
}

static json_object *
worker_json(const struct pool *p, const struct worker *w, double mono)
{
	const struct slot *s = &p->slots[w->id];
	json_object *o = json_object_new_object();
	char	 stext[3 * sizeof(w->status_text)];

	json_object_object_add(o, "id", json_object_new_int(w->id));
	json_object_object_add(o, "pid", json_object_new_int(w->pid));
	json_object_object_add(o, "state", json_object_new_string(
	    worker_shown_state(w)));
	json_object_object_add(o, "generation",
	    json_object_new_int64(w->generation));
	json_object_object_add(o, "started_at", iso_time(w->started_real));
	json_object_object_add(o, "uptime_s", dbl(mono - w->started_mono));
	json_object_object_add(o, "rss_bytes",
	    json_object_new_int64((int64_t)w->sample.rss_bytes));
	/* Its whole tree: what --max-memory compares, and status shows. */
	json_object_object_add(o, "mem_bytes",
	    json_object_new_int64((int64_t)w->sample.mem_bytes));
	json_object_object_add(o, "mem_kind", json_object_new_string(
	    w->sample.mem_pss ? "pss" : "rss"));
	json_object_object_add(o, "mem_procs",
	    json_object_new_int(w->sample.mem_procs));
	json_object_object_add(o, "cpu_percent", dbl(w->cpu_percent));
	json_object_object_add(o, "cpu_seconds", dbl(w->sample.cpu_seconds));
	json_object_object_add(o, "restarts",
	    json_object_new_int64(s->restarts));
	json_object_object_add(o, "last_exit", last_exit(s));
	/* A worker's text can be anything: JSON must be UTF-8. */
	text_clean(w->status_text, sizeof(w->status_text), stext,
	    sizeof(stext));
	json_object_object_add(o, "status", stext[0] ?
	    json_object_new_string(stext) : NULL);
	if (worker_role(p, w) == ROLE_NONE || worker_role(p, w) == ROLE_OLD ||
	    s->draining)
		json_object_object_add(o, "draining",
		    json_object_new_boolean(1));
	if (s->fds != NULL) {
		json_object *socks = json_object_new_array();
		size_t	 i;

		for (i = 0; i < p->conf->nlisteners; i++) {
			json_object *so = json_object_new_object();

			json_object_object_add(so, "listener",
			    json_object_new_string(p->conf->listeners[i].name));
			json_object_object_add(so, "fd",
			    json_object_new_int(3 + (int)i));
			if (s->queue[i] >= 0)
				json_object_object_add(so, "queue",
				    json_object_new_int(s->queue[i]));
			json_object_array_add(socks, so);
		}
		json_object_object_add(o, "sockets", socks);
	}
	if (p->conf->mode == MODE_BALANCE) {
		json_object_object_add(o, "connections",
		    json_object_new_int64(balance_active(w)));
		json_object_object_add(o, "requests",
		    json_object_new_int64(balance_requests(w)));
	}
	return o;
}

/* A wanted slot with no worker: waiting out its back-off, or failed. */
static json_object *
empty_slot_json(const struct pool *p, const struct slot *s, double mono)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int(s->id));
	json_object_object_add(o, "pid", NULL);
	json_object_object_add(o, "state", json_object_new_string(
	    slot_state_name(s->state)));
	json_object_object_add(o, "generation",
	    json_object_new_int64(p->generation));
	if (s->respawn_at > 0)
		json_object_object_add(o, "next_start_s",
		    dbl(s->respawn_at > mono ? s->respawn_at - mono : 0));
	json_object_object_add(o, "restarts",
	    json_object_new_int64(s->restarts));
	json_object_object_add(o, "last_exit", last_exit(s));
	return o;
}

/* The recent restarts of one worker, for the clients that wait for theirs. */
static json_object *
restarts_json(const struct pool *p, double mono)
{
	static const char *const names[] = {
		[RESTART_RUNNING] = "running",
		[RESTART_DONE] = "done",
		[RESTART_FAILED] = "failed",
	};
	const struct restart_record *r;
	json_object *a = json_object_new_array(), *o;
	int	 i;

	for (i = 0; i < p->nrestart_log; i++) {
		r = &p->restart_log[i];
		o = json_object_new_object();
		json_object_object_add(o, "serial",
		    json_object_new_int64(r->serial));
		json_object_object_add(o, "id", json_object_new_int(r->id));
		json_object_object_add(o, "state",
		    json_object_new_string(names[r->state]));
		json_object_object_add(o, "pid", r->pid > 0 ?
		    json_object_new_int(r->pid) : NULL);
		json_object_object_add(o, "seconds", dbl((r->state ==
		    RESTART_RUNNING ? mono : r->finished_mono) -
		    r->started_mono));
		json_object_object_add(o, "error", r->state == RESTART_FAILED ?
		    json_object_new_string(r->error) : NULL);
		json_object_object_add(o, "old_serves",
		    json_object_new_boolean(r->old_serves));
		json_object_array_add(a, o);
	}
	return a;
}

/*
 * How the workers' memory was measured: "pss" when every sampled worker's
 * tree was, "rss" when one could only be summed by RSS.
 */
static const char *
mem_kind(const struct pool *p)
{
	const struct worker *w;

	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->sample_mono > 0 && !w->sample.mem_pss)
			return "rss";
	return "pss";
}

/* --max-crashes: the limit, and how many crashes its window holds now. */
static json_object *
crashes_json(const struct pool *p, double mono)
{
	const struct conf *c = p->conf;
	json_object *o;
	int	 i, n = 0;

	if (c->crash_limit <= 0 || p->crashes.at == NULL)
		return NULL;
	for (i = 0; i < p->crashes.n; i++)
		if (p->crashes.at[(p->crashes.head + i) % c->crash_limit] >
		    mono - c->crash_window)
			n++;
	o = json_object_new_object();
	json_object_object_add(o, "limit", json_object_new_int(c->crash_limit));
	json_object_object_add(o, "window_s", dbl(c->crash_window));
	json_object_object_add(o, "recent", json_object_new_int(n));
	json_object_object_add(o, "gave_up",
	    json_object_new_boolean(p->crashes.gave_up));
	return o;
}

/* -n auto: what bounded it, CPUs or memory (--memory-per-worker). */
static void
auto_fields(json_object *o, const struct pool *p)
{
	const struct cpu_info *ci = &p->cpus;

	if (p->conf->workers != 0)
		return;
	json_object_object_add(o, "workers_bound", json_object_new_string(
	    ci->mem_n > 0 && ci->mem_n < ci->n ? "memory" : "cpus"));
	if (ci->mem_n > 0) {
		json_object_object_add(o, "memory_limit_bytes",
		    json_object_new_int64((int64_t)ci->mem_limit));
		json_object_object_add(o, "memory_source",
		    json_object_new_string(ci->mem_source));
	}
}

/* The pool's own fields, to o. */
static void
pool_fields(json_object *o, const struct pool *p, double mono)
{
	const struct conf *c = p->conf;

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "version",
	    json_object_new_string(WPOOL_VERSION));
	json_object_object_add(o, "mode",
	    json_object_new_string(mode_names[c->mode]));
	json_object_object_add(o, "balancer", c->mode == MODE_BALANCE ?
	    json_object_new_string(balancer_names[c->balancer]) : NULL);
	json_object_object_add(o, "state", json_object_new_string(
	    p->state == POOL_RUNNING ? "running" : "stopping"));
	json_object_object_add(o, "target", json_object_new_int(p->target));
	/* inetd mode: its live processes are the connections'. */
	json_object_object_add(o, "alive", json_object_new_int(
	    c->mode == MODE_INETD ? inetd_running(p) : p->nworkers));
	/* inetd mode is ready to serve as long as it is running. */
	json_object_object_add(o, "ready", json_object_new_int(
	    c->mode == MODE_INETD ? p->target : pool_count(p, W_READY)));
	/* drain.c's answer, the one /readyz gives: status --check's. */
	{
		char	 why[128];
		bool	 ok = pool_ready(p, why, sizeof(why));

		json_object_object_add(o, "healthy",
		    json_object_new_boolean(ok));
		json_object_object_add(o, "health",
		    json_object_new_string(why));
	}
	json_object_object_add(o, "cpus", json_object_new_int(p->cpus.n));
	json_object_object_add(o, "cpus_source",
	    json_object_new_string(p->cpus.source));
	auto_fields(o, p);
	json_object_object_add(o, "mem_kind",
	    json_object_new_string(mem_kind(p)));
	json_object_object_add(o, "crashes", crashes_json(p, mono));
	json_object_object_add(o, "generation",
	    json_object_new_int64(p->generation));
	json_object_object_add(o, "started_at", iso_time(p->started_real));
	json_object_object_add(o, "uptime_s", dbl(mono - p->started_mono));
	json_object_object_add(o, "restarts",
	    json_object_new_int64((int64_t)p->restarts));
	/* Events the lifecycle table refused: 0 unless wpool has a bug. */
	json_object_object_add(o, "bad_transitions",
	    json_object_new_int64((int64_t)p->bad_transitions));
}

static json_object *
listeners_json(const struct pool *p)
{
	const struct conf *c = p->conf;
	json_object *ls = json_object_new_array();
	size_t	 i;

	for (i = 0; i < c->nlisteners; i++) {
		json_object *l = json_object_new_object();

		json_object_object_add(l, "name",
		    json_object_new_string(c->listeners[i].name));
		json_object_object_add(l, "address",
		    json_object_new_string(c->listeners[i].address));
		json_object_object_add(l, "fd",
		    json_object_new_int(3 + (int)i));
		if (c->mode != MODE_REUSEPORT && p->lqueue[i] >= 0)
			json_object_object_add(l, "queue",
			    json_object_new_int(p->lqueue[i]));
		json_object_array_add(ls, l);
	}
	return ls;
}

/* The last reloads that failed, for the clients a newer one overtook. */
static json_object *
reload_failures_json(const struct pool *p)
{
	json_object *fl = json_object_new_array();
	int	 i;

	for (i = 0; i < p->nreload_failures; i++) {
		json_object *f = json_object_new_object();

		json_object_object_add(f, "generation", json_object_new_int64(
		    p->reload_failures[i].generation));
		json_object_object_add(f, "error", json_object_new_string(
		    p->reload_failures[i].error));
		json_object_array_add(fl, f);
	}
	return fl;
}

/* Which slots are being replaced right now, for a reload's progress. */
static json_object *
replacing_json(const struct pool *p)
{
	json_object *rep = json_object_new_array();
	int	 id;

	for (id = 0; id < p->target; id++)
		if (p->slots[id].next != NULL) {
			json_object *x = json_object_new_object();

			json_object_object_add(x, "id", json_object_new_int(id));
			json_object_object_add(x, "pid",
			    json_object_new_int(p->slots[id].next->pid));
			json_object_array_add(rep, x);
		}
	return rep;
}

static json_object *
reload_json(const struct pool *p, double mono)
{
	const struct reload_state *r = &p->reload;
	json_object *ro = json_object_new_object();

	json_object_object_add(ro, "generation",
	    json_object_new_int64(r->generation));
	json_object_object_add(ro, "state", json_object_new_string(
	    r->active ? "running" : r->failed ? "failed" :
	    r->generation > 0 ? "done" : "none"));
	json_object_object_add(ro, "done", json_object_new_int(r->done));
	json_object_object_add(ro, "total", json_object_new_int(r->total));
	json_object_object_add(ro, "error", r->failed ?
	    json_object_new_string(r->error) : NULL);
	json_object_object_add(ro, "recent_failures", reload_failures_json(p));
	if (r->generation > 0)
		json_object_object_add(ro, "seconds", dbl((r->active ? mono :
		    r->finished_mono) - r->started_mono));
	if (r->active)
		json_object_object_add(ro, "replacing", replacing_json(p));
	return ro;
}

/* Workers by slot id; a slot's draining and new workers together. */
static json_object *
workers_json(const struct pool *p, double mono)
{
	json_object *ws = json_object_new_array();
	const struct worker *w;
	int	 id;

	for (id = 0; id < WPOOL_MAX_WORKERS; id++) {
		const struct slot *s = &p->slots[id];
		bool	 any = false;

		TAILQ_FOREACH(w, &p->workers, entry)
			if (w->id == id) {
				json_object_array_add(ws,
				    worker_json(p, w, mono));
				any = true;
			}
		if (!any && s->wanted && p->state == POOL_RUNNING)
			json_object_array_add(ws, empty_slot_json(p, s, mono));
	}
	return ws;
}

/* The whole status; with brief, the pool without its workers. */
json_object *
status_json(struct pool *p, double mono, bool brief)
{
	const struct conf *c = p->conf;
	json_object *o = json_object_new_object();

	pool_fields(o, p, mono);
	json_object_object_add(o, "listeners", listeners_json(p));
	if (c->mode == MODE_BALANCE || c->mode == MODE_INETD)
		json_object_object_add(o, "connections_total",
		    json_object_new_int64((int64_t)balance_accepted(p)));
	if (c->mode == MODE_BALANCE)
		json_object_object_add(o, "queue",
		    json_object_new_int(balance_queued(p)));
	if (c->mode == MODE_INETD)
		json_object_object_add(o, "connections",
		    balance_status_json(p, mono));
	json_object_object_add(o, "reload", reload_json(p, mono));
	json_object_object_add(o, "recent_restarts", restarts_json(p, mono));
	upgrade_status(o);
	if (!brief)
		json_object_object_add(o, "workers", workers_json(p, mono));
	return o;
}
