/*
 * pool.c: the worker table and its state machine.  The only file that
 * changes a worker's or a slot's state, starts or signals workers, and
 * decides when a dead one comes back.  Others read struct pool and ask
 * through the pool_* functions; what differs between modes it asks of
 * mode_of(p) (pool_mode.c), never of p->conf->mode.
 *
 * A slot's state is that of its roles: cur (the worker that serves, or
 * starts to), next (its successor in a replacement: reload, restart or
 * recycle) and repl.old (the predecessor being stopped).  Every event (a
 * worker ready, dead, timed out; a timer; a request) goes through
 * slot_event, which runs the action of its cell in slot_table and gives
 * the slot the state its roles then make, one the cell allows.  An event
 * raised while another runs (a worker ready as soon as it is started, a
 * stop from inside an exit) is queued and runs after it, in order, before
 * the callback returns; what follows the end of a replacement (the
 * reload's next step, a recycle that waited, a queued reload) waits for
 * the next turn of the loop, as replace-ended.  The table, one line per
 * cell that can happen, by the names status shows (stopped is SL_EMPTY);
 * the others are NEVER cells, whose action counts a bad transition:
 *
 *   stopped      start, exit, replace, remove, drain, replace-ended ->
 *                    backoff | starting | serving
 *                notify-stopping, stop: =
 *   backoff      timer -> stopped | starting | serving | retiring
 *                notify-stopping: =
 *                exit, remove -> stopped | starting | serving
 *                replace, replace-ended -> starting | serving
 *                stop -> stopped
 *   starting     ready -> serving | replacing | replace-wait | retiring
 *                ready-timeout, replace-ended: =
 *                watchdog, notify-stopping, stop -> stopping
 *                exit, remove, drain -> stopped | backoff | serving
 *                replace -> replacing | replace-wait | retiring
 *   serving      watchdog, notify-stopping, stop -> stopping
 *                exit, remove, drain -> stopped | backoff | starting
 *                replace, replace-ended -> replacing | replace-wait |
 *                    retiring
 *   stopping     ready-timeout, watchdog, notify-stopping, stop: =
 *                exit, remove -> stopped | backoff | starting | serving
 *                replace -> replacing | replace-wait | retiring
 *   replacing    ready -> serving | retiring
 *                ready-timeout, watchdog, notify-stopping, stop: =
 *                exit -> stopped | backoff | starting | serving |
 *                    stopping | replace-wait
 *                remove -> stopped | backoff | starting | serving
 *   replace-wait timer -> starting | serving | stopping | replacing |
 *                    retiring
 *                ready, ready-timeout, watchdog, notify-stopping: =
 *                exit, remove -> stopped | backoff | starting | serving
 *                stop -> stopping
 *   retiring     ready, ready-timeout, watchdog, notify-stopping, stop: =
 *                exit -> stopped | backoff | starting | serving |
 *                    stopping | replacing | replace-wait
 *                remove -> stopped | backoff | starting | serving
 *
 * ("=": the slot stays as it is.)  In a picture, the main paths:
 *
 *                START, TIMER              READY
 *   EMPTY -----------------------> STARTING -------> SERVING <-----------+
 *    ^  \ fork failed                |  EXIT            | REPLACE         |
 *    |   +-------> BACKOFF <---------+  (young)         v                 |
 *    |              TIMER: start again              REPLACING             |
 *    |                                   (next starts; its fork failed:   |
 *    |                                    REPLACE_WAIT, TIMER retries;    |
 *    |                                    next EXIT: cur serves on)       |
 *    |  EXIT (--no-restart,                          | next READY         |
 *    |        stopping)                              v                    |
 *    +----------- STOPPING <-- WATCHDOG,          RETIRING --old EXIT-----+
 *                              STOP, STOPPING=1   (old stopping)
 */
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "pool_mode.h"


/* How long a pool without workers waits for the log to take their lines. */
#define OUTPUT_WAIT_SECS	2.0

/* Below this a worker never counts as having lived: it died young. */
#define YOUNG_SECS		0.1

/* How often a stopping pool looks for what its workers left behind. */
#define LEFTOVER_POLL_SECS	0.1


/*
 * The next delay of a back-off: first, then twice the last; never below
 * least, never above cap (or first, if cap is below it).
 */
static double
backoff_next(double last, double first, double least, double cap)
{
	double	 d = last > 0 ? last * 2 : first;

	if (d < least)
		d = least;
	if (cap < first)
		cap = first;
	return d > cap ? cap : d;
}

/*
 * A reload or restart whose successor cannot be forked this many times in
 * a row fails (its client waits for it); a recycle keeps trying, since
 * the worker it replaces gets no more work.
 */
#define REPLACE_FORK_TRIES	3

static int	 replace_begin(struct pool *, struct slot *, enum replace_kind,
		    unsigned);
static void	 replace_failed(struct pool *, struct slot *, const char *);

static void	 worker_spawn_slot(struct pool *, struct slot *);
static void	 replace_start(struct pool *, struct slot *);
static void	 worker_stop(struct pool *, struct worker *, const char *);
static void	 schedule_respawn(struct pool *, struct slot *, double);
static void	 worker_kill(struct worker *, int);
static void	 worker_exec_seen(struct pool *, struct worker *);
static void	 on_probe_timer(void *);
static void	 reload_step(struct pool *);
static void	 replace_done(struct pool *, struct slot *);
static void	 restart_record_end(struct pool *, const struct slot *,
		    const char *, bool);

#define BIT(st)	(1u << (st))
#define SPAWNED	(BIT(SL_STARTING) | BIT(SL_SERVING) | BIT(SL_BACKOFF))
#define CUR	(BIT(SL_STARTING) | BIT(SL_SERVING) | BIT(SL_STOPPING))
#define REPL	(BIT(SL_REPLACING) | BIT(SL_REPLACE_WAIT) | BIT(SL_RETIRING))
/* Its worker gone: started again (starting, serving), backing off, none. */
#define GONE	(SPAWNED | BIT(SL_EMPTY))

/* What an event brings: the worker it is about, and how that one ended. */
struct slot_arg {
	struct worker *w;
	int	 status;		/* EV_EXIT: its wait status */
};

typedef void slot_action(struct pool *, struct slot *, struct slot_arg *);

/*
 * A cell of the table: what the event does in that state, and the states
 * it may lead to (staying put is always allowed: an event may change
 * nothing).  Which of them is for the slot's roles to say once the action
 * is done: an exit is a restart at once, a back-off or the end, by the
 * worker's age and the options, not by the state.
 */
struct slot_cell {
	slot_action *act;
	unsigned next;
};

static slot_action act_start, act_respawn, act_ready, act_ready_timeout,
    act_watchdog, act_notify_stopping, act_exit, act_replace, act_remove,
    act_drain, act_stop, act_ended, slot_impossible;

#define CELL(act, next)	{ act, next }
/* An event the state never sees: counted and logged, nothing done. */
#define NEVER		{ slot_impossible, 0 }

static const struct slot_cell slot_table[SL_NSTATES][EV_NEVENTS] = {
	[SL_EMPTY] = {
		[EV_START] =		CELL(act_start, SPAWNED),
		[EV_TIMER] =		NEVER,
		[EV_READY] =		NEVER,
		[EV_READY_TIMEOUT] =	NEVER,
		[EV_WATCHDOG] =		NEVER,
		/* from a worker of a slot that let it go */
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping, 0),
		/* a drain worker */
		[EV_EXIT] =		CELL(act_exit, SPAWNED),
		[EV_REPLACE] =		CELL(act_replace, SPAWNED),
		[EV_REMOVE] =		CELL(act_remove, SPAWNED),
		[EV_DRAIN] =		CELL(act_drain, SPAWNED),
		[EV_STOP] =		CELL(act_stop, 0),
		[EV_ENDED] =		CELL(act_ended, SPAWNED),
	},
	[SL_BACKOFF] = {
		[EV_START] =		NEVER,
		/* a new cur while the old one of a replacement stops */
		[EV_TIMER] =		CELL(act_respawn, GONE |
					    BIT(SL_RETIRING)),
		[EV_READY] =		NEVER,
		[EV_READY_TIMEOUT] =	NEVER,
		[EV_WATCHDOG] =		NEVER,
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping, 0),
		[EV_EXIT] =		CELL(act_exit, GONE),
		[EV_REPLACE] =		CELL(act_replace, SPAWNED),
		/* with connections queued, a worker starts to drain them */
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		NEVER,
		[EV_STOP] =		CELL(act_stop, BIT(SL_EMPTY)),
		[EV_ENDED] =		CELL(act_ended, SPAWNED),
	},
	[SL_STARTING] = {
		[EV_START] =		NEVER,
		[EV_TIMER] =		NEVER,
		[EV_READY] =		CELL(act_ready, BIT(SL_SERVING) | REPL),
		[EV_READY_TIMEOUT] =	CELL(act_ready_timeout, 0),
		[EV_WATCHDOG] =		CELL(act_watchdog, BIT(SL_STOPPING)),
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping,
					    BIT(SL_STOPPING)),
		[EV_EXIT] =		CELL(act_exit, GONE),
		[EV_REPLACE] =		CELL(act_replace, REPL),
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		CELL(act_drain, GONE),
		[EV_STOP] =		CELL(act_stop, BIT(SL_STOPPING)),
		/* a replacement's old worker went after the new one died */
		[EV_ENDED] =		CELL(act_ended, 0),
	},
	[SL_SERVING] = {
		[EV_START] =		NEVER,
		[EV_TIMER] =		NEVER,
		[EV_READY] =		NEVER,
		[EV_READY_TIMEOUT] =	NEVER,
		[EV_WATCHDOG] =		CELL(act_watchdog, BIT(SL_STOPPING)),
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping,
					    BIT(SL_STOPPING)),
		[EV_EXIT] =		CELL(act_exit, GONE),
		[EV_REPLACE] =		CELL(act_replace, REPL),
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		CELL(act_drain, GONE),
		[EV_STOP] =		CELL(act_stop, BIT(SL_STOPPING)),
		/* a reload's turn, or a recycle that waited */
		[EV_ENDED] =		CELL(act_ended, REPL),
	},
	[SL_STOPPING] = {
		[EV_START] =		NEVER,
		[EV_TIMER] =		NEVER,
		[EV_READY] =		NEVER,
		[EV_READY_TIMEOUT] =	CELL(act_ready_timeout, 0),
		/* a worker that said STOPPING=1 goes quiet */
		[EV_WATCHDOG] =		CELL(act_watchdog, 0),
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping, 0),
		[EV_EXIT] =		CELL(act_exit, GONE),
		[EV_REPLACE] =		CELL(act_replace, REPL),
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		NEVER,
		[EV_STOP] =		CELL(act_stop, 0),
		[EV_ENDED] =		NEVER,
	},
	[SL_REPLACING] = {
		[EV_START] =		NEVER,
		[EV_TIMER] =		NEVER,
		[EV_READY] =		CELL(act_ready, BIT(SL_RETIRING) |
					    BIT(SL_SERVING)),
		[EV_READY_TIMEOUT] =	CELL(act_ready_timeout, 0),
		[EV_WATCHDOG] =		CELL(act_watchdog, 0),
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping, 0),
		/* cur died (next takes over), next died, or stopping */
		[EV_EXIT] =		CELL(act_exit, CUR | BIT(SL_EMPTY) |
					    BIT(SL_REPLACE_WAIT) |
					    BIT(SL_BACKOFF)),
		[EV_REPLACE] =		NEVER,
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		NEVER,
		[EV_STOP] =		CELL(act_stop, 0),
		[EV_ENDED] =		NEVER,
	},
	[SL_REPLACE_WAIT] = {
		[EV_START] =		NEVER,
		[EV_TIMER] =		CELL(act_respawn, CUR |
					    BIT(SL_REPLACING) |
					    BIT(SL_RETIRING)),
		/* cur was starting when its successor's fork failed */
		[EV_READY] =		CELL(act_ready, 0),
		[EV_READY_TIMEOUT] =	CELL(act_ready_timeout, 0),
		[EV_WATCHDOG] =		CELL(act_watchdog, 0),
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping, 0),
		[EV_EXIT] =		CELL(act_exit, GONE),
		[EV_REPLACE] =		NEVER,
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		NEVER,
		[EV_STOP] =		CELL(act_stop, BIT(SL_STOPPING)),
		[EV_ENDED] =		NEVER,
	},
	[SL_RETIRING] = {
		[EV_START] =		NEVER,
		[EV_TIMER] =		NEVER,
		/* a new cur, started after the successor died, is ready */
		[EV_READY] =		CELL(act_ready, 0),
		[EV_READY_TIMEOUT] =	CELL(act_ready_timeout, 0),
		[EV_WATCHDOG] =		CELL(act_watchdog, 0),
		[EV_NOTIFY_STOPPING] =	CELL(act_notify_stopping, 0),
		[EV_EXIT] =		CELL(act_exit, CUR | REPL |
					    BIT(SL_BACKOFF) | BIT(SL_EMPTY)),
		[EV_REPLACE] =		NEVER,
		[EV_REMOVE] =		CELL(act_remove, GONE),
		[EV_DRAIN] =		NEVER,
		[EV_STOP] =		CELL(act_stop, 0),
		[EV_ENDED] =		NEVER,
	},
};

#undef CELL
#undef NEVER

const char *
slot_state_name(enum slot_state st)
{
	static const char *const names[SL_NSTATES] = { "stopped", "backoff",
	    "starting", "serving", "stopping", "replacing", "replace-wait",
	    "retiring" };

	return (unsigned)st < SL_NSTATES ? names[st] : "unknown";
}

const char *
slot_event_name(enum slot_event ev)
{
	static const char *const names[EV_NEVENTS] = { "start", "timer",
	    "ready", "ready-timeout", "watchdog", "notify-stopping", "exit",
	    "replace", "remove", "drain", "stop", "replace-ended" };

	return (unsigned)ev < EV_NEVENTS ? names[ev] : "unknown";
}

/*
 * The states ev may lead to from st, with st itself; 0 for a cell that
 * cannot happen (test_lifecycle walks the table with it).
 */
unsigned
slot_transitions(enum slot_state st, enum slot_event ev)
{
	if ((unsigned)st >= SL_NSTATES || (unsigned)ev >= EV_NEVENTS ||
	    slot_table[st][ev].act == slot_impossible)
		return 0;
	return slot_table[st][ev].next | BIT(st);
}

/* The action of a cell that cannot happen: the table or the code is wrong. */
static void
slot_impossible(struct pool *p, struct slot *s, struct slot_arg *a)
{
	(void)a;
	p->bad_transitions++;
	log_debug("worker %d: %s cannot happen in state %s, says the state "
	    "table; ignored", s->id, slot_event_name(p->ev_doing),
	    slot_state_name(s->state));
}

/*
 * What w is to its slot: the one place that compares the slot's role
 * pointers; ROLE_NONE is a worker stopping after its slot let it go
 * (scaled down, or the pool stopping before a replacement ended).
 */
enum worker_role
worker_role(const struct pool *p, const struct worker *w)
{
	const struct slot *s = &p->slots[w->id];

	if (w == s->cur)
		return ROLE_CUR;
	if (w == s->next)
		return ROLE_NEXT;
	if (w == s->repl.old)
		return ROLE_OLD;
	return ROLE_NONE;
}

/* The state of a slot's roles. */
static enum slot_state
slot_state_of(const struct slot *s)
{
	if (s->cur == NULL)
		return s->respawn_at > 0 ? SL_BACKOFF : SL_EMPTY;
	if (s->repl.old != NULL)
		return SL_RETIRING;
	if (s->next != NULL)
		return SL_REPLACING;
	if (s->repl.kind != REPLACE_NONE && !s->repl.ending &&
	    s->respawn_at > 0)
		return SL_REPLACE_WAIT;
	switch (s->cur->state) {
	case W_STARTING:
		return SL_STARTING;
	case W_READY:
		return SL_SERVING;
	default:
		return SL_STOPPING;
	}
}

/*
 * One transition: the cell's action, then the state the slot's roles make,
 * which the cell must allow (a move it does not is counted and logged:
 * the table or the code is wrong).
 */
static void
slot_run(struct pool *p, struct slot *s, enum slot_event ev,
    struct slot_arg *a)
{
	enum slot_state from = s->state, to;
	const struct slot_cell *cell = &slot_table[from][ev];

	p->ev_doing = ev;
	cell->act(p, s, a);
	to = slot_state_of(s);
	p->transitions[from][ev]++;
	if (cell->act != slot_impossible && to != from &&
	    !(cell->next & BIT(to))) {
		p->bad_transitions++;
		log_debug("worker %d: %s in state %s led to %s, which the "
		    "state table does not allow", s->id, slot_event_name(ev),
		    slot_state_name(from), slot_state_name(to));
	}
	s->state = to;
}

/*
 * The one way into the machine.  An event raised by an action is queued
 * (its worker by pid: it may be gone when its turn comes) and runs once
 * the transition in progress is over, as dinit's process queues.
 */
static void
slot_event(struct pool *p, struct slot *s, enum slot_event ev,
    struct worker *w, int status)
{
	struct slot_arg a = { w, status };
	struct slot_qev *q;
	size_t	 i;

	if (p->in_event) {
		if (p->nevq == p->evq_cap) {
			p->evq_cap = p->evq_cap ? p->evq_cap * 2 : 64;
			p->evq = xreallocarray(p->evq, p->evq_cap,
			    sizeof(*p->evq));
		}
		q = &p->evq[p->nevq++];
		q->slot = s->id;
		q->ev = ev;
		q->pid = w != NULL ? w->pid : 0;
		q->status = status;
		return;
	}
	p->in_event = true;
	slot_run(p, s, ev, &a);
	for (i = 0; i < p->nevq; i++) {
		q = &p->evq[i];
		a.w = q->pid > 0 ? pool_find_pid(p, q->pid) : NULL;
		a.status = q->status;
		if (q->pid > 0 && a.w == NULL)
			continue;	/* its worker went meanwhile */
		slot_run(p, &p->slots[q->slot], q->ev, &a);
	}
	p->nevq = 0;
	p->in_event = false;
	sdnotify_update(p);
}

const char *
worker_state_name(enum worker_state s)
{
	static const char *const names[] = { "starting", "ready",
	    "stopping", "failed" };

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] :
	    "unknown";
}

/* The state status shows: a ready worker with connections is busy. */
const char *
worker_shown_state(const struct worker *w)
{
	return w->state == W_READY && balance_active(w) > 0 ? "busy" :
	    worker_state_name(w->state);
}

int
pool_count(const struct pool *p, enum worker_state st)
{
	const struct worker *w;
	int	 n = 0;

	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->state == st)
			n++;
	return n;
}

struct worker *
pool_find_pid(struct pool *p, pid_t pid)
{
	struct worker *w;

	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->pid == pid)
			return w;
	return NULL;
}

/* Variables that describe another supervisor's sockets must not leak. */
static bool
env_scrubbed(const char *e)
{
	static const char *const prefixes[] = { "LISTEN_PID=", "LISTEN_FDS=",
	    "LISTEN_FDNAMES=", "NOTIFY_SOCKET=", "WATCHDOG_USEC=",
	    "WATCHDOG_PID=", "EINHORN_", "SERVER_STARTER_", "WPOOL_WORKER_ID=",
	    "WPOOL_WORKERS=", "WPOOL_MASTER_PID=", "WPOOL_GENERATION=",
	    "WPOOL_CONN_FD=", "WPOOL_CONN_VERSION=", "WPOOL_CPU=",
	    "WPOOL_SHIM_" };
	size_t	 i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(e, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* Sets NAME=VALUE in the base environment, replacing an earlier NAME. */
static void
env_base_set(struct pool *p, char *var)
{
	size_t	 klen = strcspn(var, "=") + 1, j;

	for (j = 0; j < p->nenv_base; j++)
		if (strncmp(p->env_base[j], var, klen) == 0)
			break;
	if (j < p->nenv_base)
		free(p->env_base[j]);
	else
		j = p->nenv_base++;
	p->env_base[j] = var;
}

/* Removes NAME from the base environment. */
static void
env_base_unset(struct pool *p, const char *name)
{
	size_t	 klen = strlen(name), j;

	for (j = 0; j < p->nenv_base; j++)
		if (strncmp(p->env_base[j], name, klen) == 0 &&
		    p->env_base[j][klen] == '=') {
			free(p->env_base[j]);
			p->env_base[j] = p->env_base[--p->nenv_base];
			p->env_base[p->nenv_base] = NULL;
			return;
		}
}

/*
 * --shim: LD_PRELOAD=libwpool-shim.so, ahead of what the environment (or
 * -e) preloads already.  Found at start (main.c refuses to run without
 * it); a reload looks again.
 */
static void
env_base_preload(struct pool *p)
{
	char	 lib[4096], *var;
	const char *old = NULL;
	size_t	 j;

	if (shim_find(lib, sizeof(lib)) < 0) {
		log_warnx("--shim: cannot find libwpool-shim.so (looked at "
		    "%s): new workers run without it", lib);
		return;
	}
	for (j = 0; j < p->nenv_base; j++)
		if (strncmp(p->env_base[j], "LD_PRELOAD=", 11) == 0)
			old = p->env_base[j] + 11;
	if (old != NULL && *old != '\0')
		xasprintf(&var, "LD_PRELOAD=%s:%s", lib, old);
	else
		xasprintf(&var, "LD_PRELOAD=%s", lib);
	env_base_set(p, var);
}

/*
 * The master's environment, scrubbed; with -u, the user's HOME, USER and
 * LOGNAME, as systemd's User= and su give them; then -e NAME=VALUE.
 */
static void
env_base_build(struct pool *p)
{
	struct conf *c = p->conf;
	struct passwd *pw;
	size_t	 n = 0, i, cap;
	char	**e, *var;

	for (e = environ; *e; e++)
		n++;
	cap = n + c->nenv + 4;
	p->env_base = xcalloc(cap, sizeof(char *));
	for (e = environ; *e; e++)
		if (!env_scrubbed(*e))
			p->env_base[p->nenv_base++] = xstrdup(*e);
	if (c->set_user && (pw = getpwuid(c->uid)) != NULL) {
		xasprintf(&var, "HOME=%s", pw->pw_dir);
		env_base_set(p, var);
		xasprintf(&var, "USER=%s", pw->pw_name);
		env_base_set(p, var);
		xasprintf(&var, "LOGNAME=%s", pw->pw_name);
		env_base_set(p, var);
	} else if (c->set_user) {
		/* A bare uid: no name, and no home but /, as systemd has. */
		env_base_set(p, xstrdup("HOME=/"));
		env_base_unset(p, "USER");
		env_base_unset(p, "LOGNAME");
	}
	for (i = 0; i < c->nenv; i++)
		env_base_set(p, xstrdup(c->env[i]));
	if (c->shim)
		env_base_preload(p);
}

struct envbuf {
	char	**v;
	size_t	 n, cap;
};

static void
env_add(struct envbuf *e, char *s)
{
	if (e->n + 2 > e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->v = xreallocarray(e->v, e->cap, sizeof(char *));
	}
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
}

static void
env_free(struct envbuf *e, size_t from)
{
	size_t	 i;

	for (i = from; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
}

static char *
pid_slot(const char *name)
{
	char	*s = xcalloc(1, 48);

	snprintf(s, 48, "%s=", name);
	return s;
}

/* The worker's environment; the pids in *_PID are filled in the child. */
static void
env_build(struct pool *p, struct worker *w, struct envbuf *e,
    char **slots)
{
	struct conf *c = p->conf;
	char	*names = NULL, *ssp = NULL, *tmp, sp[512];
	size_t	 i;

	for (i = 0; i < p->nenv_base; i++)
		env_add(e, p->env_base[i]);
	if (mode_of(p)->chan && c->shim) {
		/*
		 * The shim makes the channel at fd 3 the listener that
		 * LISTEN_FDS tells of, as shared mode would; the server must
		 * not see WPOOL_CONN_FD, or it would read the channel itself.
		 */
		env_add(e, xstrdup("WPOOL_SHIM_FD=3"));
		if (shim_listener_env(c->listeners[0].fd, sp, sizeof(sp)) == 0)
			env_add(e, xstrdup(sp));
		env_add(e, xstrdup("LISTEN_FDS=1"));
		slots[0] = pid_slot("LISTEN_PID");
		env_add(e, slots[0]);
		xasprintf(&tmp, "LISTEN_FDNAMES=%s", c->listeners[0].name);
		env_add(e, tmp);
	} else if (mode_of(p)->chan) {
		/* Connections come over the channel at fd 3, not listeners. */
		xasprintf(&tmp, "WPOOL_CONN_FD=3");
		env_add(e, tmp);
		/* The newest protocol it reads (channel.c): a hello may say 2. */
		xasprintf(&tmp, "WPOOL_CONN_VERSION=2");
		env_add(e, tmp);
	} else if (c->nlisteners > 0) {
		for (i = 0; i < c->nlisteners; i++) {
			xasprintf(&tmp, "%s%s%s", names ? names : "",
			    names ? ":" : "", c->listeners[i].name);
			free(names);
			names = tmp;
			listener_starter_port(&c->listeners[i], sp, sizeof(sp));
			xasprintf(&tmp, "%s%s%s=%zu", ssp ? ssp : "",
			    ssp ? ";" : "", sp, 3 + i);
			free(ssp);
			ssp = tmp;
		}
		xasprintf(&tmp, "LISTEN_FDS=%zu", c->nlisteners);
		env_add(e, tmp);
		slots[0] = pid_slot("LISTEN_PID");
		env_add(e, slots[0]);
		xasprintf(&tmp, "LISTEN_FDNAMES=%s", names);
		env_add(e, tmp);
		xasprintf(&tmp, "SERVER_STARTER_PORT=%s", ssp);
		env_add(e, tmp);
		free(names);
		free(ssp);
	}
	xasprintf(&tmp, "SERVER_STARTER_GENERATION=%u", w->generation + 1);
	env_add(e, tmp);
	xasprintf(&tmp, "WPOOL_WORKER_ID=%d", w->id);
	env_add(e, tmp);
	xasprintf(&tmp, "WPOOL_WORKERS=%d", p->target);
	env_add(e, tmp);
	xasprintf(&tmp, "WPOOL_MASTER_PID=%d", (int)p->pid);
	env_add(e, tmp);
	xasprintf(&tmp, "WPOOL_GENERATION=%u", w->generation);
	env_add(e, tmp);
	if (p->notify_path != NULL) {
		xasprintf(&tmp, "NOTIFY_SOCKET=%s", p->notify_path);
		env_add(e, tmp);
	}
	if (c->watchdog > 0) {
		xasprintf(&tmp, "WATCHDOG_USEC=%llu",
		    (unsigned long long)(c->watchdog * 1e6));
		env_add(e, tmp);
		slots[1] = pid_slot("WATCHDOG_PID");
		env_add(e, slots[1]);
	}
	if (p->control_path != NULL && c->nlisteners > 0 &&
	    !mode_of(p)->chan) {
		xasprintf(&tmp, "EINHORN_FD_COUNT=%zu", c->nlisteners);
		env_add(e, tmp);
		for (i = 0; i < c->nlisteners; i++) {
			xasprintf(&tmp, "EINHORN_FD_%zu=%zu", i, 3 + i);
			env_add(e, tmp);
		}
	}
	if (p->control_path != NULL) {
		xasprintf(&tmp, "EINHORN_MASTER_PID=%d", (int)p->pid);
		env_add(e, tmp);
		xasprintf(&tmp, "EINHORN_CHILD_INDEX=%d", w->id);
		env_add(e, tmp);
		xasprintf(&tmp, "EINHORN_SOCK_PATH=%s", p->einhorn_path != NULL ?
		    p->einhorn_path : p->control_path);
		env_add(e, tmp);
	}
}

static void
worker_free(struct pool *p, struct worker *w)
{
	timer_cancel(&w->probe_timer);
	timer_cancel(&w->ready_timer);
	timer_cancel(&w->kill_timer);
	timer_cancel(&w->watchdog_timer);
	if (w->exec_fd >= 0) {
		loop_del(w->exec_fd);
		close(w->exec_fd);
	}
	mode_of(p)->worker_gone(p, w);
	output_writer_gone(w->pid);
	TAILQ_REMOVE(&p->workers, w, entry);
	p->nworkers--;
	free(w);
}

/*
 * What a failed exec says: execve's ENOENT or EACCES about a script whose
 * "#!" interpreter is the one missing is told as such (spawn_check), not
 * as about the script, which is there.
 */
static void
exec_error_text(struct pool *p, const struct spawn_error *e, char *buf,
    size_t len)
{
	const struct conf *c = p->conf;
	bool	 interp;

	if (e->stage == SPAWN_STAGE_EXEC && (e->err == ENOENT ||
	    e->err == EACCES) && spawn_check(c->argv[0], c->chdir, &interp,
	    buf, len) < 0 && interp)
		return;
	snprintf(buf, len, "cannot %s '%s': %s", spawn_stage_name(e->stage),
	    c->argv[0], strerror(e->err));
}

/* Reads the exec-status pipe; true if the worker could not exec. */
static bool
worker_check_exec(struct pool *p, struct worker *w, struct spawn_error *e)
{
	int	 r;

	if (w->exec_fd < 0)
		return w->state == W_FAILED && w->exec_failed;
	r = spawn_read_status(w->exec_fd, e);
	if (r == -EAGAIN)
		return false;
	loop_del(w->exec_fd);
	close(w->exec_fd);
	w->exec_fd = -1;
	if (r == 1) {
		w->state = W_FAILED;
		w->exec_failed = true;
		w->exec_error = *e;
		return true;
	}
	p->ever_started = true;
	return false;
}

static void
on_exec_status(int fd, uint32_t ev, void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;
	struct spawn_error e;

	(void)fd;
	(void)ev;
	/* A failure is told once, when the child is reaped. */
	if (worker_check_exec(p, w, &e))
		return;
	worker_exec_seen(p, w);
}

static void
on_ready_timeout(void *arg)
{
	struct worker *w = arg;

	slot_event(w->pool, &w->pool->slots[w->id], EV_READY_TIMEOUT, w, 0);
}

/* --ready-timeout passed: the worker is killed; its exit says the rest. */
static void
act_ready_timeout(struct pool *p, struct slot *s, struct slot_arg *a)
{
	struct worker *w = a->w;

	(void)s;
	log_warnx("worker %d (pid %d) not ready after %gs; killing it", w->id,
	    (int)w->pid, p->conf->ready_timeout);
	w->ready_failed = true;
	worker_kill(w, SIGKILL);
}

static void	 worker_signal_stop(struct pool *, struct worker *);

static void
on_kill_timeout(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;

	if (w->stop_waiting) {
		log_warnx("worker %d (pid %d) still has %ld open connection%s "
		    "after %gs; sending %s", w->id, (int)w->pid,
		    balance_active(w), balance_active(w) == 1 ? "" : "s",
		    p->conf->stop_timeout,
		    signal_name(p->conf->stop_signal));
		worker_signal_stop(p, w);
		return;
	}
	log_warnx("worker %d (pid %d) did not stop within %gs; sending KILL",
	    w->id, (int)w->pid, p->conf->stop_timeout);
	worker_kill(w, SIGKILL);
}

static void
on_watchdog_timeout(void *arg)
{
	struct worker *w = arg;

	slot_event(w->pool, &w->pool->slots[w->id], EV_WATCHDOG, w, 0);
}

/* --watchdog passed without WATCHDOG=1: the worker is aborted. */
static void
act_watchdog(struct pool *p, struct slot *s, struct slot_arg *a)
{
	struct worker *w = a->w;

	(void)s;
	log_warnx("worker %d (pid %d) sent no WATCHDOG=1 for %gs; restarting "
	    "it (ABRT)", w->id, (int)w->pid, p->conf->watchdog);
	w->watchdog_fired = true;
	/* No longer counted as ready: status --check fails until it is back. */
	w->state = W_STOPPING;
	w->stop_sent = true;
	sys_kill(w->pid, SIGABRT);
	/*
	 * A stopped process (SIGSTOP, a debugger gone) would hold a dumping
	 * signal until --stop-timeout's KILL: wake it, as systemd does.
	 */
	sys_kill(w->pid, SIGCONT);
	timer_set(&w->kill_timer, p->conf->stop_timeout);
}

/*
 * Starts one worker for slot s in *wp: -errno (logged) if it could not be
 * forked.  Its role in the slot is the caller's to give, before
 * worker_exec_seen tells whether it counts as ready already.
 */
static int
worker_start(struct pool *p, struct slot *s, unsigned gen, struct worker **wp)
{
	struct conf *c = p->conf;
	struct spawn_req req;
	struct envbuf env = { NULL, 0, 0 };
	struct worker *w;
	int	 fds[WPOOL_MAX_LISTENERS];
	int	 out_r = -1, out_w = -1, err_r = -1, err_w = -1, status_fd;
	int	 chan = -1;
	char	 prefix[96], *tmp;
	pid_t	 pid;

	w = xcalloc(1, sizeof(*w));
	w->pool = p;
	w->id = s->id;
	w->generation = gen;
	w->exec_fd = -1;
	timer_init(&w->ready_timer, on_ready_timeout, w);
	timer_init(&w->kill_timer, on_kill_timeout, w);
	timer_init(&w->watchdog_timer, on_watchdog_timeout, w);
	timer_init(&w->probe_timer, on_probe_timer, w);

	memset(&req, 0, sizeof(req));
	if (mode_of(p)->fds(p, s, w, fds, &req.nfds, &chan) < 0) {
		log_warnx("worker %d: cannot create its channel", s->id);
		free(w);
		return -EMFILE;
	}
	req.argv = c->argv;
	env_build(p, w, &env, req.pid_slots);
	if (c->cpu_affinity && (req.cpu = cpu_for_slot(s->id)) >= 0) {
		req.pin_cpu = true;
		xasprintf(&tmp, "WPOOL_CPU=%d", req.cpu);
		env_add(&env, tmp);
	} else if (c->cpu_affinity) {
		errno = -req.cpu;
		log_warn("worker %d: cannot read the CPUs to pin it to; "
		    "it runs unpinned", s->id);
	}
	req.envp = env.v;
	req.fds = fds;
	req.stdin_fd = -1;
	req.stdout_fd = -1;
	req.stderr_fd = -1;
	req.set_user = c->set_user;
	req.uid = c->uid;
	req.gid = c->gid;
	req.groups = c->groups;
	req.ngroups = c->ngroups;
	req.chdir = c->chdir;
	req.nofile = &p->nofile;
	if (c->log_prefix && output_open(&out_r, &out_w, &err_r, &err_w) == 0) {
		req.stdout_fd = out_w;
		req.stderr_fd = err_w;
	}
	pid = sys_spawn(&req, &status_fd);
	env_free(&env, p->nenv_base);
	if (chan >= 0)
		close(chan);
	if (out_w >= 0) {
		close(out_w);
		close(err_w);
	}
	if (pid < 0) {
		errno = -pid;
		log_warn("worker %d: cannot fork", s->id);
		if (out_r >= 0) {
			close(out_r);
			close(err_r);
		}
		mode_of(p)->worker_gone(p, w);
		free(w);
		return (int)pid;
	}
	if (out_r >= 0) {
		snprintf(prefix, sizeof(prefix), "%s.%d", c->name, s->id);
		output_attach(out_r, STDOUT_FILENO, prefix, pid);
		output_attach(err_r, STDERR_FILENO, prefix, pid);
	}
	w->pid = pid;
	w->state = W_STARTING;
	w->started_mono = now_mono();
	w->started_real = now_real();
	w->exec_fd = status_fd;
	if (status_fd >= 0 && (set_nonblock(status_fd, true),
	    loop_add(status_fd, EPOLLIN, on_exec_status, w) < 0)) {
		/* Without the pipe, EOF cannot be seen: assume exec. */
		close(status_fd);
		w->exec_fd = -1;
	}
	timer_set(&w->ready_timer, c->ready_timeout);
	TAILQ_INSERT_TAIL(&p->workers, w, entry);
	p->nworkers++;
	if (req.pin_cpu)
		log_info("worker %d started (pid %d, generation %u) on CPU %d",
		    s->id, (int)pid, gen, req.cpu);
	else
		log_info("worker %d started (pid %d, generation %u)", s->id,
		    (int)pid, gen);
	*wp = w;
	return 0;
}

/*
 * --ready listen: a starting worker is looked at (readyprobe.c) when its
 * exec is seen, then after PROBE_FIRST_SECS and at twice the interval up
 * to PROBE_MAX_SECS, and only while it starts: an idle master still never
 * wakes.  One whose readiness cannot be seen (no process of its tree
 * holds a listener: a server that opened sockets of its own; or /proc
 * denied) counts as ready once it has lived PROBE_GRACE_SECS without one.
 * A pool with no socket to wait on (no -b) has nothing to see: exec is
 * its readiness.
 */
#define PROBE_FIRST_SECS	0.01
#define PROBE_MAX_SECS		0.2
#define PROBE_GRACE_SECS	1.0
/* From when a tree that holds a listener is asked if it serves. */
#define PROBE_SERVING_SECS	0.3

/* The socket inodes w serves: its listeners, or its balance channel. */
static size_t
worker_listen_inodes(struct pool *p, struct worker *w, uint64_t *out)
{
	return mode_of(p)->inodes(p, w, out);
}

static void
worker_probe(struct pool *p, struct worker *w)
{
	uint64_t inos[WPOOL_MAX_LISTENERS];
	size_t	 n = worker_listen_inodes(p, w, inos);
	double	 lived = now_mono() - w->exec_mono;
	int	 r = n > 0 ? sys_ready_probe(w->pid, inos, n) : -ENOENT;

	if (r == READY_WAITING) {
		log_debug("worker %d (pid %d) waits for connections after %.2fs",
		    w->id, (int)w->pid, lived);
		pool_worker_ready(p, w);
		return;
	}
	/*
	 * The grace is counted from the last time the tree was seen holding
	 * a listener: one that lets go of it may be going (a gunicorn whose
	 * worker failed to boot closes its sockets, then exits), and must
	 * stay alive without it for the whole grace to count as ready.
	 */
	if (r == READY_NOT_YET && lived >= PROBE_SERVING_SECS &&
	    sys_ready_serving(w->pid, inos, n) == 1) {
		/* Under steady load it never waits in accept, but it serves. */
		log_debug("worker %d (pid %d) serves a connection after %.2fs",
		    w->id, (int)w->pid, lived);
		pool_worker_ready(p, w);
		return;
	}
	if (r == READY_NOT_YET)
		w->probe_held_mono = now_mono();
	if (w->probe_held_mono > w->exec_mono)
		lived = now_mono() - w->probe_held_mono;
	if (r < 0 && lived >= PROBE_GRACE_SECS) {
		log_info("worker %d (pid %d): no process of its tree holds a "
		    "listener, so --ready listen cannot see it wait; ready "
		    "after %gs alive", w->id, (int)w->pid, PROBE_GRACE_SECS);
		pool_worker_ready(p, w);
		return;
	}
	w->probe_every = w->probe_every * 2 < PROBE_MAX_SECS ?
	    w->probe_every * 2 : PROBE_MAX_SECS;
	timer_set(&w->probe_timer, w->probe_every);
}

static void
on_probe_timer(void *arg)
{
	struct worker *w = arg;

	if (w->state == W_STARTING)
		worker_probe(w->pool, w);
}

/*
 * The worker has exec'd (or there was no status pipe to tell): --ready
 * exec is met; --ready listen starts looking; --ready notify is met if
 * READY=1 came first.
 */
static void
worker_exec_seen(struct pool *p, struct worker *w)
{
	if (w->exec_fd >= 0 || w->state != W_STARTING)
		return;
	w->exec_mono = now_mono();
	if (p->conf->ready == READY_EXEC || w->notified_ready)
		pool_worker_ready(p, w);
	else if (p->conf->ready == READY_LISTEN) {
		uint64_t inos[WPOOL_MAX_LISTENERS];

		if (worker_listen_inodes(p, w, inos) == 0) {
			pool_worker_ready(p, w);
			return;
		}
		w->probe_every = PROBE_FIRST_SECS / 2;
		worker_probe(p, w);
	}
}

/*
 * fork failed for slot s, whatever it was starting: its worker, the
 * successor of a replacement (reload, restart, recycle) or a worker to
 * drain its queue.  One event with one answer: the slot backs off as for
 * a crash, and its respawn timer retries the same thing; a removed slot's
 * drain timer retries its drain worker (a few times at most).
 */
static void
slot_fork_failed(struct pool *p, struct slot *s)
{
	s->backoff = backoff_next(s->backoff, 0.1, 0,
	    p->conf->max_restart_delay);
	if (!s->wanted) {
		log_warnx("worker %d: cannot start a worker to drain its "
		    "queue", s->id);
		return;
	}
	log_warnx("worker %d: retrying in %.1fs", s->id, s->backoff);
	schedule_respawn(p, s, s->backoff);
}

static void
on_respawn(void *arg)
{
	struct slot *s = arg;

	slot_event(s->pool, s, EV_TIMER, NULL, 0);
}

/* The respawn timer: the slot's worker again, or a successor's fork. */
static void
act_respawn(struct pool *p, struct slot *s, struct slot_arg *a)
{
	(void)a;
	s->respawn_at = 0;
	if (p->state != POOL_RUNNING || !s->wanted)
		;
	else if (s->cur == NULL)
		worker_spawn_slot(p, s);
	else if (s->repl.kind != REPLACE_NONE && !s->repl.ending &&
	    s->next == NULL && s->repl.old == NULL)
		replace_start(p, s);
}

/* Slots with no worker left and not wanted give their sockets back. */
static void
slot_release(struct pool *p, struct slot *s)
{
	struct worker *w;

	if (s->wanted || s->fds == NULL)
		return;
	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->id == s->id)
			return;
	/* A few tries only: a command that cannot start must not spin. */
	if (slot_queued(p, s) > 0 && p->state == POOL_RUNNING &&
	    s->drain_spawns < 3 &&
	    now_mono() - s->drain_started < p->conf->stop_timeout) {
		/*
		 * Connections wait on a socket nobody serves: a worker is
		 * started just to drain them, however its slot died, since
		 * closing the socket would reset them.
		 */
		log_info("worker %d: %d connections queued on a removed slot; "
		    "starting a worker to serve them", s->id,
		    slot_queued(p, s));
		s->draining = true;
		s->drain_spawns++;
		worker_spawn_slot(p, s);
		timer_set(&s->drain_timer, 0.02);
		return;
	}
	s->draining = false;
	slot_close_fds(p, s);
	mode_of(p)->steer(p);
}

/* A slot scaled away: its workers are asked to stop, its sockets go. */
static void
slot_stop(struct pool *p, struct slot *s)
{
	if (s->next != NULL) {
		worker_stop(p, s->next, "scaled down");
		s->next = NULL;
	}
	if (s->cur != NULL) {
		worker_stop(p, s->cur, "scaled down");
		s->cur = NULL;
	}
	slot_release(p, s);
}


static void
on_drain_timer(void *arg)
{
	struct slot *s = arg;
	struct pool *p = s->pool;

	if (s->draining)
		slot_event(p, s, EV_DRAIN, NULL, 0);
}

/*
 * A stopping pool whose last worker is gone may still have connections
 * the kernel queued on its sockets, which the master holds to its end
 * and closing them would reset (shared mode: the listeners; reuseport: a
 * slot's own): the slot starts a worker to serve them, a few times at
 * most and within --stop-timeout of the stop.
 */
static bool
stop_drain_wanted(struct pool *p, struct slot *s)
{
	return p->state == POOL_STOPPING && !p->stop_now && !p->fatal &&
	    s->inited && s->drain_spawns < 3 &&
	    now_mono() - p->stop_mono < p->conf->stop_timeout &&
	    mode_of(p)->stop_queued(p, s) > 0;
}

/* The stopping pool's drain worker: start it, watch the queue, stop it. */
static void
stop_drain(struct pool *p, struct slot *s)
{
	struct worker *w;
	int	 q = mode_of(p)->stop_queued(p, s);

	if (s->cur == NULL) {
		if (!stop_drain_wanted(p, s)) {
			s->draining = false;
			pool_check_done(p);
			return;
		}
		log_info("worker %d: %d connection%s queued at stop; starting "
		    "a worker to serve them", s->id, q, q == 1 ? "" : "s");
		s->drain_spawns++;
		if (worker_start(p, s, p->generation, &w) < 0) {
			log_warnx("worker %d: cannot start a worker to "
			    "drain its queue", s->id);
			s->drain_spawns = 3;
			s->draining = false;
			pool_check_done(p);
			return;
		}
		s->cur = w;
		worker_exec_seen(p, w);
		s->draining = true;
		timer_set(&s->drain_timer, 0.02);
		return;
	}
	if (q > 0 && now_mono() - p->stop_mono < p->conf->stop_timeout) {
		timer_set(&s->drain_timer, 0.02);
		return;
	}
	s->draining = false;
	if (q > 0)
		log_warnx("worker %d: %d connections still queued %gs after "
		    "the stop (--stop-timeout)", s->id, q,
		    p->conf->stop_timeout);
	else
		log_info("worker %d: its queue is drained; stopping the "
		    "worker that served it", s->id);
	slot_event(p, s, EV_STOP, NULL, 0);
}

/* A slot scaled away looks at its queue again: serve on, or go. */
static void
act_drain(struct pool *p, struct slot *s, struct slot_arg *a)
{
	int	 q;

	(void)a;
	if (p->state == POOL_STOPPING) {
		stop_drain(p, s);
		return;
	}
	q = slot_queued(p, s);
	if (q > 0 && now_mono() - s->drain_started < p->conf->stop_timeout &&
	    (s->cur != NULL || s->drain_spawns < 3)) {
		if (s->cur == NULL)
			slot_release(p, s);
		if (s->draining)
			timer_set(&s->drain_timer, 0.02);
		return;
	}
	s->draining = false;
	if (q > 0)
		log_warnx("worker %d: %d connections still queued after %gs of "
		    "draining", s->id, q, p->conf->stop_timeout);
	slot_stop(p, s);
}

/* A slot's fixed parts, set up the first time it is wanted. */
static struct slot *
slot_prepare(struct pool *p, int id)
{
	struct slot *s = &p->slots[id];

	if (!s->inited) {
		s->inited = true;
		s->pool = p;
		s->id = id;
		timer_init(&s->respawn_timer, on_respawn, s);
		timer_init(&s->drain_timer, on_drain_timer, s);
	}
	return s;
}

static void
schedule_respawn(struct pool *p, struct slot *s, double delay)
{
	s->respawn_at = now_mono() + delay;
	timer_set(&s->respawn_timer, delay);
	(void)p;
}

/* A slot wanted (start-up, scale up) gets its worker. */
static void
act_start(struct pool *p, struct slot *s, struct slot_arg *a)
{
	(void)a;
	worker_spawn_slot(p, s);
}

static void
worker_spawn_slot(struct pool *p, struct slot *s)
{
	struct worker *w;
	int	 ngroup = p->ngroup;
	int	 r;

	r = mode_of(p)->slot_open(p, s);
	if (r == 0 && p->ngroup != ngroup)
		/*
		 * A socket joined the group: steer now, not at the first
		 * ready, or a client's datagrams sent meanwhile go by the
		 * kernel's hash first and by ours after.
		 */
		mode_of(p)->steer(p);
	if (r < 0 || worker_start(p, s, p->generation, &w) < 0) {
		/* fork failed (pids limit, memory): try again, backing off. */
		slot_fork_failed(p, s);
		return;
	}
	s->cur = w;
	worker_exec_seen(p, w);
}

void
pool_worker_ready(struct pool *p, struct worker *w)
{
	if (w->state == W_STARTING)
		slot_event(p, &p->slots[w->id], EV_READY, w, 0);
}

/* A worker is ready: it serves, and a replacement moves on. */
static void
act_ready(struct pool *p, struct slot *s, struct slot_arg *a)
{
	struct worker *w = a->w;
	enum worker_role role;

	if (w->state != W_STARTING)
		return;
	w->state = W_READY;
	w->ready_mono = now_mono();
	timer_cancel(&w->ready_timer);
	timer_cancel(&w->probe_timer);
	log_debug("worker %d ready (pid %d)", w->id, (int)w->pid);
	role = worker_role(p, w);
	if (role == ROLE_NEXT) {
		/* The successor serves; now ask its predecessor to go. */
		s->repl.old = s->cur;
		s->cur = w;
		s->next = NULL;
		if (s->repl.old != NULL) {
			worker_stop(p, s->repl.old, NULL);
		} else
			replace_done(p, s);
	} else if (role == ROLE_CUR && s->repl.new_is_cur &&
	    s->repl.kind != REPLACE_NONE && s->next == NULL &&
	    s->repl.old == NULL)
		/*
		 * The slot had none serving: its new worker is the one.  (A
		 * starting one whose successor's fork failed is not: it is
		 * still to be replaced.)
		 */
		replace_done(p, s);
	mode_of(p)->steer(p);
	mode_of(p)->on_ready(p);
}

static void
worker_signal_stop(struct pool *p, struct worker *w)
{
	w->stop_waiting = false;
	worker_kill(w, p->conf->stop_signal);
	timer_set(&w->kill_timer, p->conf->stop_timeout);
}

/*
 * Asks a worker to stop.  In balance mode wpool knows which connections a
 * worker still has open, and workers need not handle the stop signal
 * gracefully: one that still has connections gets no new ones, and the
 * signal waits until it reports the last one closed (pool_worker_idle),
 * or --stop-timeout passes.
 */
static void
worker_stop(struct pool *p, struct worker *w, const char *why)
{
	if (w->stop_sent)
		return;
	w->stop_sent = true;
	w->state = W_STOPPING;
	timer_cancel(&w->ready_timer);
	timer_cancel(&w->probe_timer);
	timer_cancel(&w->watchdog_timer);
	if (mode_of(p)->stop_waits(w)) {
		w->stop_waiting = true;
		log_info("worker %d (pid %d): %s; sending %s once its %ld open "
		    "connection%s closed", w->id, (int)w->pid,
		    why != NULL ? why : "replaced",
		    signal_name(p->conf->stop_signal), balance_active(w),
		    balance_active(w) == 1 ? " is" : "s are");
		timer_set(&w->kill_timer, p->conf->stop_timeout);
		return;
	}
	if (why != NULL)
		log_info("worker %d (pid %d): %s; sending %s", w->id,
		    (int)w->pid, why, signal_name(p->conf->stop_signal));
	worker_signal_stop(p, w);
}

/* Balance mode: w has no open connection left (or lost its channel). */
void
pool_worker_idle(struct pool *p, struct worker *w)
{
	if (w->stop_waiting)
		worker_signal_stop(p, w);
}

/*
 * Counts the slot's young deaths in a row, and says whether they make a
 * loop: from the second one on, a death that looks like an outside kill
 * (the OOM killer in a cgroup smaller than the worker's start-up, a
 * wrapper that kills itself) backs off like a crash, since replacing it
 * at once would spin.  One kill of a worker that had lived is still
 * replaced at once.
 */
static bool
slot_dies_young(struct slot *s, double lived)
{
	if (lived >= YOUNG_SECS) {
		s->young_deaths = 0;
		return false;
	}
	s->young_deaths++;
	return s->young_deaths >= 2;
}

/* "; OOM? 3 young deaths in a row" for the log, or "". */
static void
young_hint(const struct slot *s, int sig, char *buf, size_t len)
{
	snprintf(buf, len, "; %s%u young deaths in a row",
	    sig == SIGKILL ? "OOM? " : "", s->young_deaths);
}

static bool
crash_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGABRT || sig == SIGBUS ||
	    sig == SIGFPE || sig == SIGILL || sig == SIGSYS || sig == SIGTRAP;
}

/* A wait status as the shell's $?: the code, or 128 + the signal. */
static int
exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The pool's exit status with --no-restart: the first failure wins. */
static void
record_exit_status(struct pool *p, int status)
{
	int	 code = exit_code(status);

	if (!p->exit_status_set || (p->exit_status == 0 && code != 0)) {
		p->exit_status = code;
		p->exit_status_set = true;
	}
}

/* How a worker ended, said once for every path of worker_exited. */
struct exit_info {
	int	 status;
	int	 sig;			/* 0: it exited */
	double	 lived;
	bool	 exec_failed;
	struct spawn_error e;
	bool	 outside;		/* killed by someone else, not a crash */
	char	 how[64];
	char	 after[32];
	char	 hint[64];		/* "; OOM? 2 young deaths in a row" */
};

static void
exit_info_fill(struct pool *p, struct worker *w, int status,
    struct exit_info *x)
{
	memset(x, 0, sizeof(*x));
	x->status = status;
	x->lived = now_mono() - w->started_mono;
	x->exec_failed = worker_check_exec(p, w, &x->e);
	if (x->exec_failed)
		x->e = w->exec_error;
	if (WIFSIGNALED(status)) {
		x->sig = WTERMSIG(status);
		snprintf(x->how, sizeof(x->how), "killed by signal %s",
		    signal_name(x->sig));
		x->outside = !crash_signal(x->sig) && !w->stop_sent &&
		    !w->watchdog_fired && !w->ready_failed;
	} else
		snprintf(x->how, sizeof(x->how), "exited with status %d",
		    WEXITSTATUS(status));
	format_duration(x->lived, x->after, sizeof(x->after));
}

/* The new worker of a replacement died: why, for the replacement. */
static void
exit_replace_why(const struct worker *w, const struct exit_info *x,
    char *buf, size_t len)
{
	snprintf(buf, len, "new worker %d (pid %d) %s%s after %s", w->id,
	    (int)w->pid, w->ready_failed ? "was not ready in time and was " :
	    "", x->how, x->after);
}

/*
 * The first worker could not exec, for a reason that will not pass: the
 * command can never run, so the pool says so once and stops.  Out of fds
 * or memory in the child is passing, not fatal.
 */
static bool
exit_fatal(struct pool *p, struct worker *w, struct slot *s,
    const struct exit_info *x)
{
	const struct spawn_error *e = &x->e;
	char	 why[1024];

	if (!x->exec_failed || p->ever_started || p->state != POOL_RUNNING ||
	    (e->stage == SPAWN_STAGE_FDS && (e->err == EMFILE ||
	    e->err == ENFILE || e->err == ENOMEM)))
		return false;
	exec_error_text(p, e, why, sizeof(why));
	log_error("%s", why);
	p->exit_status = spawn_exit_status(e);
	p->exit_status_set = true;
	p->fatal = true;
	if (worker_role(p, w) == ROLE_CUR)
		s->cur = NULL;
	else if (worker_role(p, w) == ROLE_NEXT)
		s->next = NULL;
	worker_free(p, w);
	pool_stop(p, false);
	return true;
}

/*
 * A worker that is not the slot's serving one ended: the old one of a
 * replacement, the successor, or one of a stopping pool or removed slot.
 * True when that was its role (and it is handled).
 */
static bool
exit_by_role(struct pool *p, struct worker *w, struct slot *s,
    const struct exit_info *x)
{
	enum worker_role role = worker_role(p, w);
	char	 why[200];

	if (role == ROLE_OLD) {
		log_info("worker %d (pid %d, generation %u) %s after %s; "
		    "replaced", w->id, (int)w->pid, w->generation, x->how,
		    x->after);
		s->repl.old = NULL;
		worker_free(p, w);
		replace_done(p, s);
		return true;
	}
	if (role == ROLE_NEXT) {
		exit_replace_why(w, x, why, sizeof(why));
		log_warnx("%s; the old worker keeps serving", why);
		s->next = NULL;
		worker_free(p, w);
		replace_failed(p, s, why);
		return true;
	}
	if (role == ROLE_CUR && p->state == POOL_RUNNING && s->wanted)
		return false;
	if (p->fatal)
		log_debug("worker %d (pid %d) %s", w->id, (int)w->pid, x->how);
	else
		log_info("worker %d (pid %d) %s after %s", w->id, (int)w->pid,
		    x->how, x->after);
	if (role == ROLE_CUR)
		s->cur = NULL;
	if (p->conf->no_restart)
		record_exit_status(p, x->status);
	worker_free(p, w);
	slot_release(p, s);
	pool_check_done(p);
	return true;
}

/*
 * The slot's serving worker died: when to start the next.  Below 0.1 s a
 * worker never counts as having lived, whatever --min-uptime says: a
 * command that fails at once must not spin.
 */
static double
exit_restart_delay(struct pool *p, struct slot *s, struct exit_info *x,
    char *when, size_t len)
{
	struct conf *c = p->conf;
	double	 min_uptime = c->min_uptime > YOUNG_SECS ? c->min_uptime :
	    YOUNG_SECS;
	double	 delay;
	bool	 young = x->lived < min_uptime;

	/*
	 * A second young death in a row that looks like a kill from outside
	 * (the OOM killer in a cgroup smaller than the worker's start-up, a
	 * wrapper that kills itself) is a crash loop too: it backs off.
	 */
	if (slot_dies_young(s, x->lived) && x->outside) {
		x->outside = false;
		young_hint(s, x->sig, x->hint, sizeof(x->hint));
	}
	if (!young || x->outside) {
		if (!young)
			s->backoff = 0;
		delay = c->restart_delay;
	} else {
		/* Dying young of its own doing: a crash loop in the making. */
		s->backoff = backoff_next(s->backoff, 0.1, c->restart_delay,
		    c->max_restart_delay);
		delay = s->backoff;
	}
	if (delay <= 0)
		snprintf(when, len, "restarting now");
	else
		snprintf(when, len, "restarting in %.1fs%s", delay,
		    s->backoff > 0 && delay == s->backoff && !x->outside &&
		    young ? " (crash back-off)" : "");
	return delay;
}

static void
exit_restart(struct pool *p, struct worker *w, struct slot *s,
    struct exit_info *x)
{
	struct conf *c = p->conf;
	char	 when[96], why[1024];
	double	 delay, min_uptime = c->min_uptime > YOUNG_SECS ?
	    c->min_uptime : YOUNG_SECS;

	delay = exit_restart_delay(p, s, x, when, sizeof(when));
	s->restarts++;
	p->restarts++;
	if (x->exec_failed) {
		exec_error_text(p, &x->e, why, sizeof(why));
		log_warnx("worker %d (pid %d): %s; %s", w->id, (int)w->pid,
		    why, when);
	}
	else if (x->outside || x->lived >= min_uptime)
		log_info("worker %d (pid %d) %s after %s; %s", w->id,
		    (int)w->pid, x->how, x->after, when);
	else
		log_warnx("worker %d (pid %d) %s after %s%s; %s", w->id,
		    (int)w->pid, x->how, x->after, x->hint, when);
	worker_free(p, w);
	if (delay <= 0)
		worker_spawn_slot(p, s);
	else
		schedule_respawn(p, s, delay);
}

/*
 * --max-crashes: whether the serving worker's end is a crash.  It is
 * unless it exited with 0 (php-cgi, for one, ends so by design after its
 * requests) or wpool asked it to stop; but a worker ended for
 * --ready-timeout or --watchdog failed as surely as one that crashed, an
 * exec that fails is a crash, and so is a signal from outside (the OOM
 * killer's KILL, most often).
 */
static bool
exit_is_crash(const struct worker *w, const struct exit_info *x)
{
	if (x->exec_failed || w->ready_failed || w->watchdog_fired)
		return true;
	if (w->stop_sent)
		return false;
	return x->sig != 0 || WEXITSTATUS(x->status) != 0;
}

/*
 * A crash of the serving worker of a running pool, counted: the N-th
 * within the window stops the pool, which then exits with this worker's
 * status (as $? would show it), so that the orchestrator sees the loop.
 * True when it did (w is freed).
 */
static bool
exit_crash_loop(struct pool *p, struct worker *w, struct slot *s,
    const struct exit_info *x)
{
	struct conf *c = p->conf;
	double	 now = now_mono(), *at = p->crashes.at;
	char	 win[48];
	int	 code, lim = c->crash_limit;

	if (lim <= 0 || at == NULL || !exit_is_crash(w, x))
		return false;
	while (p->crashes.n > 0 &&
	    at[p->crashes.head] <= now - c->crash_window) {
		p->crashes.head = (p->crashes.head + 1) % lim;
		p->crashes.n--;
	}
	at[(p->crashes.head + p->crashes.n) % lim] = now;
	if (++p->crashes.n < lim)
		return false;
	code = x->exec_failed ? spawn_exit_status(&x->e) : exit_code(x->status);
	/* How close together they came: "3 crashes in 0.7s". */
	win[0] = '\0';
	if (lim > 1) {
		strlcpy(win, " in ", sizeof(win));
		format_duration(now - at[p->crashes.head], win + 4,
		    sizeof(win) - 4);
	}
	log_error("worker %d (pid %d) %s after %s: %d crash%s%s "
	    "(--max-crashes %s); giving up: stopping the pool, exit status %d",
	    w->id, (int)w->pid, x->exec_failed ? "could not run" : x->how,
	    x->after, lim, lim == 1 ? "" : "es", win, c->max_crashes, code);
	p->crashes.gave_up = true;
	p->exit_status = code;
	p->exit_status_set = true;
	snprintf(p->stop_why, sizeof(p->stop_why), "--max-crashes");
	s->cur = NULL;
	mode_of(p)->steer(p);
	worker_free(p, w);
	pool_stop(p, false);
	return true;
}

static void
worker_exit_handle(struct pool *p, struct worker *w, struct slot *s,
    int status)
{
	struct exit_info x;
	char	 repl_why[200];
	bool	 repl_failed;

	exit_info_fill(p, w, status, &x);
	metrics_count_exit(s, w, status);
	s->has_exit = true;
	s->last_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	s->last_signal = x.sig;
	if (exit_fatal(p, w, s, &x) || exit_by_role(p, w, s, &x) ||
	    exit_crash_loop(p, w, s, &x))
		return;
	s->cur = NULL;
	mode_of(p)->steer(p);
	if (s->next != NULL) {
		/* The successor was on its way: it takes the slot now. */
		log_info("worker %d (pid %d) %s after %s; its successor "
		    "(pid %d) takes over", w->id, (int)w->pid, x.how, x.after,
		    (int)s->next->pid);
		s->cur = s->next;
		s->next = NULL;
		worker_free(p, w);
		return;
	}
	/*
	 * The new worker of a replacement in a slot that had none serving
	 * died before it was ready: that replacement failed, as when an old
	 * one keeps serving.  Said once the slot's own restart is arranged,
	 * which it may build on.
	 */
	repl_failed = s->repl.kind != REPLACE_NONE && s->repl.old == NULL &&
	    s->repl.new_is_cur;
	if (repl_failed)
		exit_replace_why(w, &x, repl_why, sizeof(repl_why));
	if (p->conf->no_restart) {
		log_info("worker %d (pid %d) %s after %s; not restarting "
		    "(--no-restart)", w->id, (int)w->pid, x.how, x.after);
		record_exit_status(p, status);
		worker_free(p, w);
		pool_check_done(p);
		return;
	}
	exit_restart(p, w, s, &x);
	if (repl_failed)
		replace_failed(p, s, repl_why);
}

/*
 * The workers' whole trees stop with the pool (issue 11).  Each worker
 * leads a process group (spawn.c) that gets the stop signal and KILL; what
 * left its group (a daemon that did setsid, the children of a worker
 * that died) was adopted by the master as subreaper, and gets them as a
 * child of the master.  The master is done only once it has no child.
 */

/* sig to w's whole process group: the worker and what it started. */
static void
worker_kill(struct worker *w, int sig)
{
	sys_kill_group(w->pid, sig);
}

/* Workers and inetd's connection processes are signalled as such. */
static bool
is_worker_pid(pid_t pid, void *arg)
{
	return pool_find_pid(arg, pid) != NULL ||
	    mode_of(arg)->has_child(arg, pid);
}

/* The stop signal to the children that are not workers, once. */
static void
leftovers_stop(struct pool *p)
{
	int	 n;

	if (p->leftovers.asked)
		return;
	p->leftovers.asked = true;
	if ((n = sys_signal_children(p->conf->stop_signal, is_worker_pid,
	    p)) > 0)
		log_info("sending %s to %d process%s the workers left behind",
		    signal_name(p->conf->stop_signal), n, n == 1 ? "" : "es");
}

/* KILL to them, now and at every poll until none is left. */
static void
leftovers_kill(struct pool *p)
{
	int	 n;

	if (!p->leftovers.kill && (n = sys_signal_children(SIGKILL,
	    is_worker_pid, p)) > 0)
		log_warnx("%d process%s the workers left behind did not stop "
		    "within %gs; sending KILL", n, n == 1 ? "" : "es",
		    p->conf->stop_timeout);
	p->leftovers.kill = true;
	if (!p->leftovers.timer.armed)
		timer_set(&p->leftovers.timer, LEFTOVER_POLL_SECS);
}

static void
on_leftovers_timer(void *arg)
{
	struct pool *p = arg;

	if (p->leftovers.kill)
		sys_signal_children(SIGKILL, is_worker_pid, p);
	pool_check_done(p);
}

/*
 * Whether the master, its workers gone, must still wait for children:
 * they get the stop signal (with --no-restart, nobody sent it yet), KILL
 * after --stop-timeout, and a poll sees them go, since a process adopted
 * from deeper in a tree says nothing when it arrives.
 */
static bool
leftovers_pending(struct pool *p)
{
	if (sys_signal_children(0, NULL, NULL) <= 0) {
		timer_cancel(&p->leftovers.timer);
		return false;
	}
	if (!p->leftovers.asked) {
		leftovers_stop(p);
		if (!p->stop_timer.armed && !p->leftovers.kill)
			timer_set(&p->stop_timer, p->conf->stop_timeout);
	}
	if (!p->leftovers.timer.armed)
		timer_set(&p->leftovers.timer, LEFTOVER_POLL_SECS);
	return true;
}

static void
worker_exited(struct pool *p, struct worker *w, int status)
{
	struct slot *s = &p->slots[w->id];

	tree_worker_gone(p, w->id, w->pid);
	slot_event(p, s, EV_EXIT, w, status);
}

/* A worker was reaped: its role in the slot says what follows. */
static void
act_exit(struct pool *p, struct slot *s, struct slot_arg *a)
{
	worker_exit_handle(p, a->w, s, a->status);
}

static void
reap(struct pool *p)
{
	struct worker *w;
	int	 status;
	pid_t	 pid;

	while ((pid = sys_reap(&status)) > 0) {
		if ((w = pool_find_pid(p, pid)) != NULL)
			worker_exited(p, w, status);
		else if (!mode_of(p)->reaped(p, pid, status))
			log_debug("reaped pid %d (not a worker)", (int)pid);
	}
	/* Whichever way the last one went, a stopping pool may be done. */
	pool_check_done(p);
}

/*
 * Done once no worker is left and, with --log-prefix, their last lines
 * are read from their pipes and taken by the log.  A log reader too slow
 * to take them holds the exit back OUTPUT_WAIT_SECS at most.
 */
void
pool_check_done(struct pool *p)
{
	bool	 drains;
	int	 i;

	if (p->nworkers > 0 || inetd_running(p) > 0)
		return;
	if (p->state != POOL_STOPPING && !p->conf->no_restart)
		return;
	/* Each drain's action comes back here if it starts none. */
	for (i = 0, drains = false; i < WPOOL_MAX_WORKERS; i++)
		if (stop_drain_wanted(p, &p->slots[i])) {
			slot_event(p, &p->slots[i], EV_DRAIN, NULL, 0);
			drains = true;
		}
	if (drains)
		return;
	if (leftovers_pending(p))
		return;
	if (!p->output_waited && output_flush_all() > 0) {
		if (!p->output_timer.armed)
			timer_set(&p->output_timer, OUTPUT_WAIT_SECS);
		return;
	}
	timer_cancel(&p->output_timer);
	p->state = POOL_DONE;
	loop_break();
}

static void
on_output_timer(void *arg)
{
	struct pool *p = arg;

	p->output_waited = true;
	pool_check_done(p);
}

static void
on_output_idle(void *arg)
{
	pool_check_done(arg);
}

static void
on_stop_timeout(void *arg)
{
	struct pool *p = arg;
	struct worker *w;

	TAILQ_FOREACH(w, &p->workers, entry) {
		log_warnx("worker %d (pid %d) did not stop within %gs; "
		    "sending KILL", w->id, (int)w->pid, p->conf->stop_timeout);
		worker_kill(w, SIGKILL);
	}
	mode_of(p)->stop(p, SIGKILL);
	leftovers_kill(p);
}

/* The pool stops: the slot comes back no more, its workers are asked to go. */
static void
act_stop(struct pool *p, struct slot *s, struct slot_arg *a)
{
	struct worker *w;

	(void)a;
	timer_cancel(&s->respawn_timer);
	s->respawn_at = 0;
	timer_cancel(&s->drain_timer);
	TAILQ_FOREACH(w, &p->workers, entry) {
		if (w->id != s->id)
			continue;
		w->stop_sent = true;
		w->stop_waiting = false;
		w->state = W_STOPPING;
		timer_cancel(&w->ready_timer);
		timer_cancel(&w->probe_timer);
		timer_cancel(&w->kill_timer);
		timer_cancel(&w->watchdog_timer);
		worker_kill(w, p->conf->stop_signal);
	}
}

void
pool_stop(struct pool *p, bool now)
{
	struct worker *w;
	int	 i;

	if (p->state == POOL_DONE)
		return;
	if (p->stop_delayed) {
		timer_cancel(&p->delay_timer);
		p->stop_delayed = false;
	}
	if (now)
		p->stop_now = true;
	if (p->state != POOL_STOPPING) {
		p->state = POOL_STOPPING;
		p->stop_mono = now_mono();
		for (i = 0; i < WPOOL_MAX_WORKERS; i++)
			p->slots[i].drain_spawns = 0;
		if (p->reload.active) {
			p->reload.active = false;
			p->reload.failed = true;
			p->reload.finished_mono = now_mono();
			snprintf(p->reload.error, sizeof(p->reload.error),
			    "the pool is stopping");
		}
		timer_cancel(&p->sample_timer);
		if (p->nworkers > 0 && p->fatal)
			log_debug("stopping the other %d workers", p->nworkers);
		else if (p->nworkers > 0)
			log_info("stopping (%s): asking %d worker%s to stop "
			    "with %s", p->stop_why[0] ? p->stop_why : "requested",
			    p->nworkers, p->nworkers == 1 ? "" : "s",
			    signal_name(p->conf->stop_signal));
		for (i = 0; i < WPOOL_MAX_WORKERS; i++)
			if (p->slots[i].inited)
				slot_event(p, &p->slots[i], EV_STOP, NULL, 0);
		mode_of(p)->stop(p, p->conf->stop_signal);
		leftovers_stop(p);
		timer_set(&p->stop_timer, p->conf->stop_timeout);
		sdnotify_stopping(p);
	}
	if (now) {
		log_info("stopping at once: sending KILL to %d worker%s",
		    p->nworkers, p->nworkers == 1 ? "" : "s");
		TAILQ_FOREACH(w, &p->workers, entry)
			worker_kill(w, SIGKILL);
		mode_of(p)->stop(p, SIGKILL);
		leftovers_kill(p);
	}
	pool_check_done(p);
}

/*
 * TERM, INT, QUIT or `wpool stop`.  With --shutdown-delay the pool says
 * at once that it is not ready (status --check, /readyz: drain.c) and
 * serves on for the delay, so that a load balancer or Kubernetes takes it
 * out of rotation before the workers stop accepting; then it stops as
 * without.  Another request during the delay ends it and the stop goes
 * ahead at once, as systemd's and Kubernetes' users expect of a second
 * TERM (a further INT is then the KILL it always was).
 */
void
pool_stop_request(struct pool *p)
{
	double	 d = p->conf->shutdown_delay;

	if (p->state == POOL_RUNNING && !p->stop_delayed && d > 0) {
		p->stop_delayed = true;
		log_info("stopping (%s) in %gs (--shutdown-delay): not ready "
		    "from now, serving on; TERM or INT again stops now",
		    p->stop_why[0] ? p->stop_why : "requested", d);
		timer_set(&p->delay_timer, d);
		/* Its own manager hears it now too. */
		sdnotify_stopping(p);
		return;
	}
	if (p->stop_delayed)
		log_info("asked again to stop: ending --shutdown-delay now");
	pool_stop(p, false);
}

static void
on_delay_timer(void *arg)
{
	pool_stop(arg, false);
}

/*
 * Only to ready workers: one still starting may not have its handlers
 * yet, and USR2's or WINCH's default action would kill it.
 */
static void
forward_signal(struct pool *p, int sig)
{
	struct worker *w;

	TAILQ_FOREACH(w, &p->workers, entry)
		if (w->state == W_READY)
			sys_kill(w->pid, sig);
}

static void
on_signal(int sig, pid_t from, void *arg)
{
	struct pool *p = arg;
	char	 err[256];

	(void)from;
	switch (sig) {
	case SIGCHLD:
		reap(p);
		break;
	case SIGINT:
	case SIGTERM:
	case SIGQUIT:
		if (p->state == POOL_STOPPING && sig == SIGINT) {
			pool_stop(p, true);
			break;
		}
		if (p->state == POOL_RUNNING && !p->stop_delayed)
			snprintf(p->stop_why, sizeof(p->stop_why), "SIG%s",
			    signal_name(sig));
		pool_stop_request(p);
		break;
	case SIGHUP:
	case SIGUSR1:
		log_info("received SIG%s: reloading", signal_name(sig));
		if (pool_reload(p, NULL, err, sizeof(err)) < 0)
			log_warnx("reload: %s", err);
		break;
	case SIGTTIN:
		if (pool_scale(p, p->target + 1, err, sizeof(err)) < 0)
			log_warnx("SIGTTIN: %s", err);
		break;
	case SIGTTOU:
		if (pool_scale(p, p->target - 1, err, sizeof(err)) < 0)
			log_warnx("SIGTTOU: %s", err);
		break;
	case SIGUSR2:
		/*
		 * "Upgrade the binary", as gunicorn, unicorn and nginx take
		 * it: the master re-executes the binary it was started from
		 * in place (upgrade.c).  WINCH is still forwarded.
		 */
		log_info("received SIGUSR2: upgrading the master in place");
		if (upgrade_request(p, NULL, NULL, err, sizeof(err)) < 0)
			log_warnx("upgrade: %s", err);
		else
			upgrade_run(p);
		break;
	case SIGWINCH:
		log_debug("forwarding SIG%s to %d workers", signal_name(sig),
		    p->nworkers);
		forward_signal(p, sig);
		break;
	}
}

/* Replacement: start the successor; the rest follows its readiness. */
static int
replace_begin(struct pool *p, struct slot *s, enum replace_kind kind,
    unsigned gen)
{
	if (s->next != NULL || s->repl.kind != REPLACE_NONE)
		return -EBUSY;
	s->repl.kind = kind;
	s->repl.gen = gen;
	s->repl.forks_failed = 0;
	s->repl.new_is_cur = false;
	slot_event(p, s, EV_REPLACE, NULL, 0);
	return 0;
}

/* The replacement taken by replace_begin starts. */
static void
act_replace(struct pool *p, struct slot *s, struct slot_arg *a)
{
	(void)a;
	if (p->state != POOL_RUNNING)
		return;
	/* A slot waiting to respawn starts its new worker now. */
	timer_cancel(&s->respawn_timer);
	s->respawn_at = 0;
	replace_start(p, s);
}

/*
 * Starts the successor of the replacement under way in s (again, after a
 * fork that failed).  Nothing serving in the slot: the new worker simply
 * becomes the slot's, and the replacement is done when it is ready.
 */
static void
replace_start(struct pool *p, struct slot *s)
{
	struct worker *w;
	char	 why[128];
	int	 rc;

	if (s->cur == NULL) {
		s->repl.new_is_cur = true;
		worker_spawn_slot(p, s);
		return;
	}
	if ((rc = worker_start(p, s, s->repl.gen, &w)) == 0) {
		s->next = w;
		worker_exec_seen(p, w);
		return;
	}
	if (s->repl.kind != REPLACE_RECYCLE &&
	    ++s->repl.forks_failed >= REPLACE_FORK_TRIES) {
		snprintf(why, sizeof(why), "cannot start a new worker %d: %s",
		    s->id, strerror(-rc));
		log_warnx("worker %d: %s; the old worker keeps serving", s->id,
		    why);
		replace_failed(p, s, why);
		return;
	}
	slot_fork_failed(p, s);
}

/*
 * A slot whose turn in the reload came while it was being restarted or
 * recycled: that replacement has ended (either way), so the reload's own
 * starts now.  True when it did (or failed, which ends the reload).
 */
static bool
reload_resume(struct pool *p, struct slot *s)
{
	char	 why[128];
	int	 rc;

	if (!s->repl.reload_next)
		return false;
	s->repl.reload_next = false;
	if (!p->reload.active || !s->wanted) {
		if (p->reload.active) {
			p->reload.in_flight--;
			reload_step(p);
		}
		return false;
	}
	if ((rc = replace_begin(p, s, REPLACE_RELOAD,
	    p->reload.generation)) < 0) {
		snprintf(why, sizeof(why), "cannot start a new worker %d: %s",
		    s->id, strerror(-rc));
		s->repl.kind = REPLACE_RELOAD;
		replace_failed(p, s, why);
	}
	return true;
}

/*
 * A replacement ended, well or not (why): what follows from it (the
 * reload's next step, a recycle that waited its turn, a queued reload)
 * is a transition of its own, run after the current event from the
 * pool's deferred queue, never from inside it.
 */
static void
replace_end(struct pool *p, struct slot *s, const char *why)
{
	if (s->repl.ending || s->repl.kind == REPLACE_NONE)
		return;
	s->repl.ending = true;
	s->repl.end_failed = why != NULL;
	strlcpy(s->repl.why, why != NULL ? why : "", sizeof(s->repl.why));
	p->deferred[p->ndeferred++] = s->id;
	if (!p->defer_timer.armed)
		timer_set(&p->defer_timer, 0);
}

static void
replace_done(struct pool *p, struct slot *s)
{
	replace_end(p, s, NULL);
}

static void
replace_failed(struct pool *p, struct slot *s, const char *why)
{
	replace_end(p, s, why);
}

static void
replace_done_now(struct pool *p, struct slot *s)
{
	enum replace_kind kind = s->repl.kind;

	s->repl.kind = REPLACE_NONE;
	if (kind == REPLACE_RESTART)
		restart_record_end(p, s, NULL, false);
	if (reload_resume(p, s))
		return;
	if (s->cur != NULL && s->cur->recycle_pending)
		pool_recycle(p, s->cur, "is due for recycling");
	if (kind == REPLACE_RELOAD && p->reload.active) {
		p->reload.in_flight--;
		p->reload.done++;
		reload_step(p);
	}
}

/* Kept for the clients that follow a reload that a newer one overtook. */
static void
reload_failure_record(struct pool *p, unsigned gen, const char *why)
{
	struct reload_failure *f;

	if (p->nreload_failures == RELOAD_FAILURES) {
		memmove(p->reload_failures, p->reload_failures + 1,
		    (RELOAD_FAILURES - 1) * sizeof(*f));
		p->nreload_failures--;
	}
	f = &p->reload_failures[p->nreload_failures++];
	f->generation = gen;
	strlcpy(f->error, why, sizeof(f->error));
}

static void
replace_failed_now(struct pool *p, struct slot *s, const char *why)
{
	enum replace_kind kind = s->repl.kind;

	s->repl.kind = REPLACE_NONE;
	if (kind == REPLACE_RESTART)
		restart_record_end(p, s, why, !s->repl.new_is_cur &&
		    s->cur != NULL);
	if (reload_resume(p, s))
		return;
	if (kind == REPLACE_RELOAD && p->reload.active) {
		p->reload.in_flight--;
		p->reload.active = false;
		p->reload.failed = true;
		p->reload.finished_mono = now_mono();
		snprintf(p->reload.error, sizeof(p->reload.error), "%s", why);
		reload_failure_record(p, p->reload.generation, why);
		log_warnx("reload to generation %u failed: %s; the remaining "
		    "old workers keep serving", p->reload.generation, why);
		/*
		 * A reload asked for meanwhile still runs: it may be the
		 * one that brings the fix.
		 */
		if (p->reload.again) {
			p->reload.again = false;
			pool_reload(p, NULL, NULL, 0);
		}
	}
}

/* The deferred queue: each ended replacement's follow-up, in order. */
static void
on_deferred(void *arg)
{
	struct pool *p = arg;
	struct slot *s;

	while (p->ndeferred > 0) {
		s = &p->slots[p->deferred[0]];
		memmove(p->deferred, p->deferred + 1,
		    (size_t)--p->ndeferred * sizeof(p->deferred[0]));
		/* Not ending any more: the slot was scaled away. */
		if (s->repl.ending)
			slot_event(p, s, EV_ENDED, NULL, 0);
	}
}

/* The follow-up of a replacement that ended, from the deferred queue. */
static void
act_ended(struct pool *p, struct slot *s, struct slot_arg *a)
{
	char	 why[sizeof(s->repl.why)];

	(void)a;
	s->repl.ending = false;
	if (s->repl.end_failed) {
		strlcpy(why, s->repl.why, sizeof(why));
		replace_failed_now(p, s, why);
	} else
		replace_done_now(p, s);
}

static void
reload_step(struct pool *p)
{
	struct reload_state *r = &p->reload;
	struct slot *s;
	int	 rc;

	while (r->active && r->in_flight < p->conf->reload_batch &&
	    r->next_slot < p->target) {
		s = &p->slots[r->next_slot++];
		if (!s->wanted)
			continue;
		/* Started by a scale-up during the reload: already new. */
		if (s->cur != NULL && s->cur->generation >= r->generation &&
		    s->next == NULL && s->repl.kind == REPLACE_NONE)
			continue;
		r->in_flight++;
		if (s->repl.kind != REPLACE_NONE) {
			/* Being restarted or recycled: its turn comes after. */
			s->repl.reload_next = true;
			continue;
		}
		if ((rc = replace_begin(p, s, REPLACE_RELOAD,
		    r->generation)) < 0) {
			char	 why[128];

			snprintf(why, sizeof(why), "cannot start a new worker "
			    "%d: %s", s->id, strerror(-rc));
			s->repl.kind = REPLACE_RELOAD;
			replace_failed(p, s, why);
			return;
		}
	}
	if (r->active && r->in_flight == 0 && r->next_slot >= p->target) {
		r->active = false;
		r->finished_mono = now_mono();
		log_info("reload to generation %u done: %d worker%s replaced in "
		    "%.2fs", r->generation, r->done, r->done == 1 ? "" : "s",
		    r->finished_mono - r->started_mono);
		if (r->again) {
			r->again = false;
			pool_reload(p, NULL, NULL, 0);
		}
	}
}

/*
 * A reload re-reads the -c file (reconf.c) before its first new worker:
 * checked only (apply false: a reload queued behind another, a dry run),
 * or made the running configuration, the base environment rebuilt from
 * it.  *workers: the worker count to scale to, or 0 to keep the pool's.
 */
static int
reload_conf(struct pool *p, bool apply, int *workers, char **dry, char *err,
    size_t len)
{
	struct conf n;
	char	*changes, *line, *next;
	int	 was = p->conf->workers, rc;
	size_t	 i;

	*workers = 0;
	if ((rc = reconf_prepare(p, &n, apply, &changes, err, len)) < 0)
		return rc;
	if (!apply) {
		if (dry != NULL)
			*dry = changes != NULL ? changes : xstrdup("");
		else
			free(changes);
		reconf_abandon(p, &n);
		return 0;
	}
	for (line = changes; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		*next++ = '\0';
		log_info("reload: %s", line);
	}
	free(changes);
	reconf_commit(p, &n);
	for (i = 0; i < p->nenv_base; i++)
		free(p->env_base[i]);
	free(p->env_base);
	p->env_base = NULL;
	p->nenv_base = 0;
	env_base_build(p);
	if (p->conf->max_memory > 0 && !p->sample_timer.armed)
		timer_set(&p->sample_timer, 1.0);
	if (p->conf->workers != was) {
		*workers = p->conf->workers;
		if (*workers == 0 && cpu_usable(&p->cpus,
		    p->conf->fallback_cpus) == 0)
			*workers = p->cpus.n;
		if (*workers == 0)
			*workers = p->conf->fallback_cpus;
		if (*workers > WPOOL_MAX_WORKERS)
			*workers = WPOOL_MAX_WORKERS;
	}
	return 0;
}

/* `wpool reload --dry-run`: what a reload would change, one per line. */
int
pool_reload_dry(struct pool *p, char **changes, char *err, size_t len)
{
	int	 workers;

	*changes = NULL;
	return reload_conf(p, false, &workers, changes, err, len);
}

int
pool_reload(struct pool *p, unsigned *gen, char *err, size_t len)
{
	struct reload_state *r = &p->reload;
	char	 ebuf[1024];
	bool	 logged = err == NULL;
	int	 workers = 0, rc;

	if (err == NULL) {
		err = ebuf;
		len = sizeof(ebuf);
	}
	if (p->state != POOL_RUNNING) {
		if (err)
			snprintf(err, len, "the pool is stopping");
		return -ESHUTDOWN;
	}
	if (mode_of(p)->no_workers != NULL) {
		/* SIGHUP in inetd mode: refused as `wpool reload` is. */
		if (err)
			(void)inetd_refuse(p, "reload", err, len);
		return -ENOTSUP;
	}
	/* The file is read again when the reload runs, checked now too. */
	if (p->conf->config != NULL && (rc = reload_conf(p, !r->active,
	    &workers, NULL, err, len)) < 0) {
		if (logged)
			log_warnx("reload refused: %s; the pool runs on as it "
			    "was", err);
		return rc;
	}
	if (r->active) {
		/* One more after this one, for changes made meanwhile. */
		r->again = true;
		if (gen)
			*gen = r->generation + 1;
		return 1;
	}
	p->generation++;
	memset(r, 0, sizeof(*r));
	r->active = true;
	r->generation = p->generation;
	r->started_mono = now_mono();
	r->total = p->target;
	/*
	 * Slots added now start at the new generation (reload_step skips
	 * them): only those both generations have are replaced.
	 */
	if (workers > 0 && workers != p->target) {
		if (workers < r->total)
			r->total = workers;
		if (pool_scale(p, workers, err, len) < 0)
			log_warnx("reload: %s", err);
	}
	if (gen)
		*gen = r->generation;
	log_info("reload to generation %u: replacing %d worker%s, %d at a "
	    "time", r->generation, r->total, r->total == 1 ? "" : "s",
	    p->conf->reload_batch);
	reload_step(p);
	sdnotify_update(p);
	return 0;
}

/*
 * The record of a restart of one worker, for `wpool restart ID` to follow
 * through status: begun once the restart is accepted (its end always
 * comes later, from the deferred queue), the oldest dropped when the log
 * is full.
 */
static void
restart_record_begin(struct pool *p, const struct slot *s)
{
	struct restart_record *r;

	if (p->nrestart_log == RESTART_RECORDS) {
		memmove(p->restart_log, p->restart_log + 1,
		    (RESTART_RECORDS - 1) * sizeof(*r));
		p->nrestart_log--;
	}
	r = &p->restart_log[p->nrestart_log++];
	memset(r, 0, sizeof(*r));
	r->serial = ++p->restart_serial;
	r->id = s->id;
	r->state = RESTART_RUNNING;
	if (s->next != NULL)
		r->pid = s->next->pid;
	else if (s->repl.new_is_cur && s->cur != NULL)
		r->pid = s->cur->pid;
	r->started_mono = now_mono();
}

/*
 * The restart under way in s ended: well (why NULL, its successor serves)
 * or not (why), the old worker serving on or not.  A slot has one
 * replacement at a time, so at most one record of it is running.
 */
static void
restart_record_end(struct pool *p, const struct slot *s, const char *why,
    bool old_serves)
{
	struct restart_record *r;
	int	 i;

	for (i = p->nrestart_log - 1; i >= 0; i--) {
		r = &p->restart_log[i];
		if (r->id != s->id || r->state != RESTART_RUNNING)
			continue;
		r->state = why == NULL ? RESTART_DONE : RESTART_FAILED;
		r->finished_mono = now_mono();
		if (why == NULL && s->cur != NULL)
			r->pid = s->cur->pid;
		r->old_serves = old_serves;
		strlcpy(r->error, why != NULL ? why : "", sizeof(r->error));
		return;
	}
}

int
pool_restart(struct pool *p, int id, char *err, size_t len)
{
	int	 rc;

	if (p->state != POOL_RUNNING) {
		snprintf(err, len, "the pool is stopping");
		return -ESHUTDOWN;
	}
	if (mode_of(p)->no_workers != NULL) {
		snprintf(err, len, "%s", mode_of(p)->no_workers);
		return -ENOENT;
	}
	if (id < 0 || id >= p->target || !p->slots[id].wanted) {
		snprintf(err, len, "no worker %d: ids are 0 to %d", id,
		    p->target - 1);
		return -ENOENT;
	}
	if ((rc = replace_begin(p, &p->slots[id], REPLACE_RESTART,
	    p->generation)) < 0) {
		snprintf(err, len, rc == -EBUSY ? "worker %d is already being "
		    "replaced" : "cannot start a new worker %d", id);
		return rc;
	}
	restart_record_begin(p, &p->slots[id]);
	log_info("restarting worker %d", id);
	return 0;
}

/* A slot scaled away: it is wanted no more, whatever it was doing. */
static void
act_remove(struct pool *p, struct slot *s, struct slot_arg *a)
{
	(void)a;
	s->wanted = false;
	timer_cancel(&s->respawn_timer);
	s->respawn_at = 0;
	if (s->repl.kind == REPLACE_RELOAD && p->reload.active)
		/* The slot goes: its step of the reload is over. */
		p->reload.in_flight--;
	if (s->repl.kind == REPLACE_RESTART)
		restart_record_end(p, s, "the pool was scaled down past it",
		    false);
	s->repl.kind = REPLACE_NONE;
	s->repl.old = NULL;
	s->repl.ending = false;
	s->drain_started = now_mono();
	s->drain_spawns = 0;
	if (mode_of(p)->drains(s)) {
		/* Steer new connections away, serve the queue, stop. */
		s->draining = true;
		timer_set(&s->drain_timer, 0.02);
	} else
		slot_stop(p, s);
}

int
pool_scale(struct pool *p, int n, char *err, size_t len)
{
	struct slot *s;
	int	 i, old = p->target;

	if (p->state != POOL_RUNNING) {
		snprintf(err, len, "the pool is stopping");
		return -ESHUTDOWN;
	}
	if (n < 1 || n > WPOOL_MAX_WORKERS) {
		snprintf(err, len, "cannot scale to %d: expected 1 to %d "
		    "workers", n, WPOOL_MAX_WORKERS);
		return -ERANGE;
	}
	if (n == old)
		return 0;
	log_info("scaling from %d to %d %s", old, n,
	    n == 1 ? mode_of(p)->noun1 : mode_of(p)->nounN);
	p->target = n;
	if (mode_of(p)->no_workers != NULL) {
		mode_of(p)->resized(p);
		return 0;
	}
	/* Highest ids go first; they drain in the background. */
	for (i = n; i < old; i++)
		slot_event(p, &p->slots[i], EV_REMOVE, NULL, 0);
	for (i = old; i < n; i++) {
		s = slot_prepare(p, i);
		s->wanted = true;
		s->backoff = 0;
		if (s->draining) {
			/* Scaled back up while draining: keep its worker. */
			s->draining = false;
			timer_cancel(&s->drain_timer);
		}
		if (s->cur == NULL)
			slot_event(p, s, EV_START, NULL, 0);
	}
	mode_of(p)->steer(p);
	mode_of(p)->resized(p);
	/* A slot that went ended its step of a reload: the next may start. */
	if (p->reload.active)
		reload_step(p);
	return 0;
}

/* Replaces w gracefully: its successor first, then the stop signal. */
void
pool_recycle(struct pool *p, struct worker *w, const char *why)
{
	struct slot *s = &p->slots[w->id];

	if (p->state != POOL_RUNNING || w->stop_sent)
		return;
	if (worker_role(p, w) != ROLE_CUR || !s->wanted) {
		worker_stop(p, w, why);
		return;
	}
	if (s->repl.kind != REPLACE_NONE || s->next != NULL) {
		/* After the replacement under way, this one goes too. */
		w->recycle_pending = true;
		return;
	}
	w->recycle_pending = false;
	log_info("worker %d (pid %d) %s; replacing it", w->id, (int)w->pid,
	    why);
	replace_begin(p, s, REPLACE_RECYCLE, p->generation);
}

int
pool_signal(struct pool *p, int sig, int id, char *err, size_t len)
{
	struct worker *w;
	int	 n = 0;

	TAILQ_FOREACH(w, &p->workers, entry)
		if (id < 0 || w->id == id) {
			if (sys_kill(w->pid, sig) == 0)
				n++;
		}
	if (n == 0 && id >= 0) {
		snprintf(err, len, "no worker %d", id);
		return -ENOENT;
	}
	return n;
}

void
pool_sample(struct pool *p)
{
	struct worker *w;
	struct proc_sample s;
	double	 now = now_mono();
	size_t	 i;
	int	 id;

	for (i = 0; i < p->conf->nlisteners; i++)
		p->lqueue[i] = p->conf->listeners[i].fd >= 0 ?
		    sys_queue_len(p->conf->listeners[i].fd) : -1;
	for (id = 0; id < WPOOL_MAX_WORKERS; id++)
		for (i = 0; p->slots[id].fds != NULL &&
		    i < p->conf->nlisteners; i++)
			p->slots[id].queue[i] =
			    sys_queue_len(p->slots[id].fds[i]);
	TAILQ_FOREACH(w, &p->workers, entry) {
		/*
		 * Back-to-back requests reuse a sample: /proc reads add up.
		 * A tree whose reading is dear (smaps_rollup walks page
		 * tables) is read so as to cost the master at most 1% of a
		 * CPU: at most every 100 times what it took.
		 */
		if (w->sample_mono > 0 && (now - w->sample_mono < 0.25 ||
		    now - w->sample_mono < 100 * w->sample.mem_cost))
			continue;
		if (sys_sample(w->pid, &s) < 0)
			continue;
		if (w->sample_mono > 0 && now > w->sample_mono)
			w->cpu_percent = 100.0 * (s.cpu_seconds -
			    w->sample.cpu_seconds) / (now - w->sample_mono);
		w->sample = s;
		w->sample_mono = now;
	}
}

/* --max-memory: replace a worker over the limit, one slot at a time. */
static void
on_sample_timer(void *arg)
{
	struct pool *p = arg;
	struct worker *w;
	char	 rss[16], lim[16], what[64];
	double	 now = now_mono();
	double	 min_uptime = p->conf->min_uptime > 0.1 ?
		    p->conf->min_uptime : 0.1;

	pool_sample(p);
	TAILQ_FOREACH(w, &p->workers, entry) {
		struct slot *s = &p->slots[w->id];
		double	 since;

		if (worker_role(p, w) != ROLE_CUR || w->state != W_READY)
			continue;
		/* Its age, counted from when the back-off let it be judged. */
		since = now - (w->started_mono > s->mem_hold_until ?
		    w->started_mono : s->mem_hold_until);
		/* Its whole tree's: a master of its own is not alone. */
		if (w->sample.mem_bytes <= p->conf->max_memory) {
			/* Under the limit that long: the back-off is over. */
			if (since >= min_uptime)
				s->mem_backoff = 0;
			continue;
		}
		if (s->repl.kind != REPLACE_NONE || s->next != NULL ||
		    now < s->mem_hold_until)
			continue;
		format_bytes(w->sample.mem_bytes, rss, sizeof(rss));
		format_bytes(p->conf->max_memory, lim, sizeof(lim));
		/* What was counted: "PSS of 3 processes", said last. */
		snprintf(what, sizeof(what), "%s of %d process%s",
		    w->sample.mem_pss ? "PSS" : "RSS", w->sample.mem_procs,
		    w->sample.mem_procs == 1 ? "" : "es");
		if (since >= min_uptime) {
			s->mem_backoff = 0;
			log_info("worker %d (pid %d) uses %s, over "
			    "--max-memory %s; recycling it; its tree: %s",
			    w->id, (int)w->pid, rss, lim, what);
		} else {
			/*
			 * Over the limit this soon, its successor will be
			 * too: recycled at once, it would churn a process a
			 * second.  Back off as for a crash.
			 */
			s->mem_backoff = backoff_next(s->mem_backoff, 2.0, 0,
			    p->conf->max_restart_delay);
			s->mem_hold_until = now + s->mem_backoff;
			log_warnx("worker %d (pid %d) uses %s, over "
			    "--max-memory %s within --min-uptime; recycling "
			    "it, but not its successor for %.0fs (memory "
			    "back-off); its tree: %s", w->id, (int)w->pid, rss,
			    lim, s->mem_backoff, what);
		}
		replace_begin(p, s, REPLACE_RECYCLE, p->generation);
		break;
	}
	if (p->state == POOL_RUNNING)
		timer_set(&p->sample_timer, 1.0);
}

/* STOPPING=1: the worker counts as stopping (not ready) from now. */
static void
act_notify_stopping(struct pool *p, struct slot *s, struct slot_arg *a)
{
	(void)p;
	(void)s;
	a->w->state = W_STOPPING;
}

void
pool_worker_notify(struct pool *p, struct worker *w, const char *key,
    const char *val)
{
	if (strcmp(key, "READY") == 0 && strcmp(val, "1") == 0) {
		if (p->conf->ready == READY_NOTIFY && w->exec_fd < 0)
			pool_worker_ready(p, w);
		else if (p->conf->ready == READY_NOTIFY)
			w->notified_ready = true;
	} else if (strcmp(key, "STATUS") == 0) {
		strlcpy(w->status_text, val, sizeof(w->status_text));
	} else if (strcmp(key, "STOPPING") == 0 && strcmp(val, "1") == 0) {
		slot_event(p, &p->slots[w->id], EV_NOTIFY_STOPPING, w, 0);
	} else if (strcmp(key, "RELOADING") == 0 && strcmp(val, "1") == 0) {
		log_debug("worker %d (pid %d) is reloading", w->id,
		    (int)w->pid);
	} else if (strcmp(key, "WATCHDOG") == 0 && strcmp(val, "1") == 0) {
		if (p->conf->watchdog > 0 && !w->stop_sent)
			timer_set(&w->watchdog_timer, p->conf->watchdog);
	} else if (strcmp(key, "MAINPID") == 0) {
		long long n;

		if (parse_int(val, 1, 1LL << 31, &n) == 0)
			w->main_pid = (pid_t)n;
	}
}

/* --memory-per-worker: how many workers the memory holds, for -n auto. */
static void
pool_memory_bound(struct pool *p)
{
	uint64_t budget = p->conf->worker_memory;

	if (budget > 0 && cpu_memory_bound(&p->cpus, budget) < 0)
		log_warnx("--memory-per-worker: no memory limit could be "
		    "read (no cgroup limit, no /proc/meminfo); -n auto counts "
		    "CPUs alone");
	if (p->cpus.mem_n > 0 && p->cpus.mem_limit < budget)
		log_warnx("--memory-per-worker: one worker's budget is over "
		    "the memory limit (%s); starting 1 worker",
		    p->cpus.mem_source);
}

int
pool_init(struct pool *p, struct conf *c)
{
	memset(p, 0, sizeof(*p));
	p->conf = c;
	p->pid = getpid();
	p->started_mono = now_mono();
	p->started_real = now_real();
	TAILQ_INIT(&p->workers);
	/*
	 * calloc of this size maps fresh zero pages: slots that are never
	 * used cost no memory, so 4 workers do not pay for 1024.
	 */
	p->slots = xcalloc(WPOOL_MAX_WORKERS, sizeof(*p->slots));
	timer_init(&p->stop_timer, on_stop_timeout, p);
	timer_init(&p->delay_timer, on_delay_timer, p);
	timer_init(&p->sample_timer, on_sample_timer, p);
	timer_init(&p->output_timer, on_output_timer, p);
	timer_init(&p->defer_timer, on_deferred, p);
	timer_init(&p->leftovers.timer, on_leftovers_timer, p);
	output_on_idle(on_output_idle, p);
	if (c->workers == 0) {
		if (cpu_usable(&p->cpus, c->fallback_cpus) < 0)
			log_warnx("cannot read how many CPUs are usable; using "
			    "--fallback-cpus %d", c->fallback_cpus);
		pool_memory_bound(p);
		p->target = cpu_auto_workers(&p->cpus);
	} else {
		cpu_usable(&p->cpus, c->fallback_cpus);
		pool_memory_bound(p);
		p->target = c->workers;
		if (p->cpus.mem_n > 0 && p->target > p->cpus.mem_n)
			log_warnx("-n %d: more workers than "
			    "--memory-per-worker lets the memory hold (%s)",
			    p->target, p->cpus.mem_source);
	}
	if (p->target > WPOOL_MAX_WORKERS)
		p->target = WPOOL_MAX_WORKERS;
	if (c->crash_limit > 0)
		p->crashes.at = xcalloc((size_t)c->crash_limit,
		    sizeof(*p->crashes.at));
	env_base_build(p);
	/*
	 * epoll has no fd ceiling of its own, so the master may use the hard
	 * limit; workers get the limit they would have had without wpool.
	 */
	getrlimit(RLIMIT_NOFILE, &p->nofile);
	{
		struct rlimit rl = p->nofile;

		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return 0;
}

/*
 * What pool_init allocated, once the pool is done: the master exits
 * instead, but a test makes many pools in one process.
 */
void
pool_free(struct pool *p)
{
	size_t	 i;
	int	 id;

	for (id = 0; id < WPOOL_MAX_WORKERS; id++)
		slot_close_fds(p, &p->slots[id]);
	for (i = 0; i < p->nenv_base; i++)
		free(p->env_base[i]);
	free(p->env_base);
	free(p->slots);
	free(p->crashes.at);
	p->crashes.at = NULL;
	free(p->evq);
	p->evq = NULL;
	p->nevq = p->evq_cap = 0;
	p->env_base = NULL;
	p->nenv_base = 0;
	p->slots = NULL;
}

int
pool_start(struct pool *p)
{
	static const int sigs[] = { SIGCHLD, SIGINT, SIGTERM, SIGQUIT, SIGHUP,
	    SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH };
	int	 i, r;

	if ((r = loop_signals(sigs, sizeof(sigs) / sizeof(sigs[0]), on_signal,
	    p)) < 0)
		return r;
	mode_of(p)->announce(p);
	if (mode_of(p)->no_workers != NULL)
		return 0;
	/* Started by `wpool upgrade`: the workers are there already. */
	for (i = upgrade_adopt(p) == 1 ? p->target : 0;
	    i < p->target && p->state == POOL_RUNNING; i++) {
		slot_prepare(p, i)->wanted = true;
		slot_event(p, &p->slots[i], EV_START, NULL, 0);
	}
	if (p->conf->max_memory > 0)
		timer_set(&p->sample_timer, 1.0);
	return 0;
}

/* The pool's counters as the image before an in-place upgrade left them. */
void
pool_adopt(struct pool *p, const struct pool_adopt *a)
{
	p->target = a->target >= 1 && a->target <= WPOOL_MAX_WORKERS ?
	    a->target : 1;
	p->generation = a->generation;
	p->restarts = a->restarts;
	p->started_mono = a->started_mono;
	p->started_real = a->started_real;
	p->reload = a->reload;
	p->reload.active = false;
	memcpy(p->reload_failures, a->failures, sizeof(p->reload_failures));
	p->nreload_failures = a->nfailures;
}

/*
 * A slot as the image before an in-place upgrade left it (upgrade.c):
 * its counters, its reuseport sockets, and its worker, which is ready
 * (upgrade refuses a pool with workers starting or stopping) and still
 * the master's child.
 */
int
pool_adopt_slot(struct pool *p, const struct slot_adopt *a)
{
	struct slot *s;
	struct worker *w;

	if (a->id < 0 || a->id >= WPOOL_MAX_WORKERS || p->slots[a->id].inited)
		return -EINVAL;
	s = slot_prepare(p, a->id);
	s->wanted = a->id < p->target;
	s->restarts = a->restarts;
	memcpy(s->exits, a->exits, sizeof(s->exits));
	s->requests_done = a->requests_done;
	s->young_deaths = a->young_deaths;
	s->backoff = a->backoff;
	s->has_exit = a->has_exit;
	s->last_code = a->last_code;
	s->last_signal = a->last_signal;
	if (a->fds != NULL)
		slot_adopt_fds(p, s, a->fds);
	if (a->pid > 0) {
		w = xcalloc(1, sizeof(*w));
		w->pool = p;
		w->id = s->id;
		w->pid = a->pid;
		w->generation = a->generation;
		w->exec_fd = -1;
		w->state = W_READY;
		w->started_mono = a->started_mono;
		w->started_real = a->started_real;
		w->ready_mono = a->ready_mono;
		w->exec_mono = a->started_mono;
		w->main_pid = a->main_pid;
		strlcpy(w->status_text, a->status_text != NULL ?
		    a->status_text : "", sizeof(w->status_text));
		timer_init(&w->ready_timer, on_ready_timeout, w);
		timer_init(&w->kill_timer, on_kill_timeout, w);
		timer_init(&w->watchdog_timer, on_watchdog_timeout, w);
		timer_init(&w->probe_timer, on_probe_timer, w);
		TAILQ_INSERT_TAIL(&p->workers, w, entry);
		p->nworkers++;
		p->ever_started = true;
		s->cur = w;
	} else if (s->wanted && a->respawn_in >= 0)
		schedule_respawn(p, s, a->respawn_in);
	s->state = slot_state_of(s);
	return 0;
}

/* Every slot adopted: wanted ones that had nothing start; steer. */
void
pool_adopt_done(struct pool *p)
{
	int	 i;

	for (i = 0; i < p->target && p->state == POOL_RUNNING; i++) {
		struct slot *s = slot_prepare(p, i);

		s->wanted = true;
		if (s->state == SL_EMPTY)
			slot_event(p, s, EV_START, NULL, 0);
	}
	mode_of(p)->resized(p);
	mode_of(p)->steer(p);
	mode_of(p)->on_ready(p);
}

/* Runs until the pool is done; returns the master's exit status. */
int
pool_run(struct pool *p)
{
	if (p->state != POOL_DONE)
		loop_run();
	if (p->fatal || p->conf->no_restart || p->crashes.gave_up)
		return p->exit_status_set ? p->exit_status : 0;
	return 0;
}
