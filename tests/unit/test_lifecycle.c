/*
 * test_lifecycle.c: the worker lifecycle of pool.c on a fake kernel
 * (sys_set): forks that succeed or fail on demand, signals recorded and
 * turned into exits, a clock the test moves and the loop's timers fired
 * at it.  No real process is started; every case runs in microseconds of
 * virtual time.  Every cell of pool.c's slot_table that can happen is
 * taken by some case (test_table_walk), and the listing that opens pool.c
 * is the table's (test_table_comment).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"
#include "tap.h"
#include "fakesys.h"

/* Every test's transitions, for the walk of the table at the end. */
static unsigned long hits[SL_NSTATES][EV_NEVENTS], bad;
static struct conf C;
static struct pool P;

static struct pool *
pool_new(int n, void (*tune)(struct conf *))
{
	memset(&F, 0, sizeof(F));
	/* conf_defaults allocates the name anew: the last pool's goes. */
	free(C.name);
	F.now = 1000;
	F.next_pid = FAKE_PID0;
	F.obey_term = true;
	conf_defaults(&C);
	C.workers = n;
	/* The tests were written for exec readiness; listen has its own. */
	C.ready = READY_EXEC;
	C.argv = fake_argv;
	free(C.name);
	C.name = xstrdup("test");
	if (tune != NULL)
		tune(&C);
	pool_init(&P, &C);
	pool_start(&P);
	settle();
	return &P;
}

/* Stops the pool and checks that it leaves no timer and no worker. */
static void
pool_end(struct pool *p, const char *name)
{
	int	 st, ev;

	pool_stop(p, true);
	settle();
	for (st = 0; st < SL_NSTATES; st++)
		for (ev = 0; ev < EV_NEVENTS; ev++)
			hits[st][ev] += p->transitions[st][ev];
	is_int(p->bad_transitions, 0, "%s: every transition is in the table",
	    name);
	bad += p->bad_transitions;
	pool_free(p);
	timer_cancel(&p->stop_timer);
	timer_cancel(&p->sample_timer);
	timer_cancel(&p->output_timer);
	timer_cancel(&p->defer_timer);
	ok(p->state == POOL_DONE && p->nworkers == 0 &&
	    loop_next_deadline() < 0, "%s: the pool ends clean", name);
}

static struct worker *
cur(struct pool *p, int id)
{
	return p->slots[id].cur;
}

static pid_t
cur_pid(struct pool *p, int id)
{
	return cur(p, id) != NULL ? cur(p, id)->pid : -1;
}

static void
ready(struct pool *p, struct worker *w)
{
	pool_worker_notify(p, w, "READY", "1");
	settle();
}

static void
notify_mode(struct conf *c)
{
	c->ready = READY_NOTIFY;
	c->ready_timeout = 1;
	c->min_uptime = 2;
	c->max_restart_delay = 1;
}

static void
min_uptime_1(struct conf *c)
{
	c->min_uptime = 1;
}

static void
test_crash_backoff(void)
{
	struct pool *p = pool_new(1, min_uptime_1);
	pid_t	 a = cur_pid(p, 0), b, c, d;

	is_int(F.spawns, 1, "crash: one worker started");
	advance(0.01);
	fake_exit(a, EXITED(1));
	settle();
	ok(cur(p, 0) == NULL, "crash: the slot is empty");
	is_dbl(p->slots[0].backoff, 0.1, "crash young: back-off 0.1 s");
	advance(0.099);
	is_int(F.spawns, 1, "crash: not restarted before 0.1 s");
	advance(0.002);
	is_int(F.spawns, 2, "crash: restarted at 0.1 s");
	b = cur_pid(p, 0);
	fake_exit(b, KILLED(SIGSEGV));
	settle();
	is_dbl(p->slots[0].backoff, 0.2, "crash young again: back-off 0.2 s");
	advance(0.199);
	is_int(F.spawns, 2, "crash: not restarted before 0.2 s");
	advance(0.002);
	is_int(F.spawns, 3, "crash: restarted at 0.2 s");
	c = cur_pid(p, 0);
	advance(1.0);
	fake_exit(c, EXITED(1));
	settle();
	is_dbl(p->slots[0].backoff, 0, "lived --min-uptime: back-off reset");
	is_int(F.spawns, 4, "lived --min-uptime: restarted at once");
	d = cur_pid(p, 0);
	ok(d != c && p->slots[0].restarts == 3, "crash: three restarts");
	pool_end(p, "crash");
}

static void
test_killed_outside(void)
{
	struct pool *p = pool_new(2, min_uptime_1);
	pid_t	 a = cur_pid(p, 1);

	fake_exit(a, KILLED(SIGKILL));
	settle();
	is_int(F.spawns, 3, "killed from outside: replaced at once");
	ok(cur_pid(p, 1) != a && cur(p, 1)->state == W_READY,
	    "killed from outside: the new worker is ready");
	is_dbl(p->slots[1].backoff, 0, "killed from outside: no back-off");
	pool_end(p, "killed");
}

/* A reload where the new worker of slot 0 dies, hangs or cannot fork. */
enum how { DIES, NEVER_READY, NO_FORK, FORK_ONCE };

static void
reload_case(int batch, enum how how)
{
	static const char *const names[] = { "dies", "never ready",
	    "cannot fork", "fork fails once" };
	char	 name[64];
	struct pool *p;
	pid_t	 old0, old1;
	unsigned gen;
	int	 i;

	snprintf(name, sizeof(name), "reload batch %d, new worker %s", batch,
	    names[how]);
	p = pool_new(2, notify_mode);
	C.reload_batch = batch;
	ready(p, cur(p, 0));
	ready(p, cur(p, 1));
	old0 = cur_pid(p, 0);
	old1 = cur_pid(p, 1);
	if (how == NO_FORK)
		F.fail_forks = 100;
	if (how == FORK_ONCE)
		F.fail_forks = 1;
	is_int(pool_reload(p, &gen, NULL, 0), 0, "%s: accepted", name);
	settle();
	if (how == NO_FORK || how == FORK_ONCE) {
		is_int(F.spawns, how == NO_FORK ? 2 : 1 + batch,
		    "%s: no successor for slot 0 yet", name);
		advance(0.1);
	}
	if (how == NO_FORK) {
		advance(0.2);
		ok(p->reload.failed && strstr(p->reload.error,
		    "cannot start a new worker 0") != NULL,
		    "%s: fails after %d forks: %s", name, F.forks - 2,
		    p->reload.error);
		F.fail_forks = 0;
		goto check_old;
	}
	is_int(F.spawns, 2 + batch, "%s: %d successor(s) started", name,
	    batch);
	ok(p->slots[0].next != NULL, "%s: slot 0 has a successor", name);
	if (how == FORK_ONCE) {
		for (i = 0; i < 2; i++) {
			if (p->slots[i].next == NULL)
				settle();
			if (p->slots[i].next != NULL)
				ready(p, p->slots[i].next);
		}
		settle();
		ok(!p->reload.active && !p->reload.failed &&
		    p->reload.done == 2, "%s: the reload completes", name);
		ok(cur(p, 0)->generation == 1 && cur(p, 1)->generation == 1,
		    "%s: both workers are new", name);
		pool_end(p, name);
		return;
	}
	if (how == DIES)
		fake_exit(p->slots[0].next->pid, EXITED(3));
	else
		advance(1.0);
	settle();
	ok(p->reload.failed && strstr(p->reload.error, how == DIES ?
	    "exited with status 3" : "was not ready in time") != NULL,
	    "%s: the reload fails: %s", name, p->reload.error);
check_old:
	/* With batch 2, slot 1's successor may still run: stop it. */
	if (p->slots[1].next != NULL)
		ready(p, p->slots[1].next);
	settle();
	is_int(cur_pid(p, 0), old0, "%s: old worker 0 keeps serving", name);
	ok(cur(p, 0)->state == W_READY, "%s: and is ready", name);
	ok(batch == 2 || cur_pid(p, 1) == old1,
	    "%s: worker 1 was not touched with batch 1", name);
	ok(p->slots[0].next == NULL && !p->slots[0].respawn_at,
	    "%s: slot 0 is settled", name);
	pool_end(p, name);
}

static void
test_reload_queued(void)
{
	struct pool *p = pool_new(1, notify_mode);
	unsigned gen;

	ready(p, cur(p, 0));
	is_int(pool_reload(p, &gen, NULL, 0), 0, "queued: first reload");
	is_int(gen, 1, "queued: to generation 1");
	is_int(pool_reload(p, &gen, NULL, 0), 1, "queued: second waits");
	is_int(gen, 2, "queued: to generation 2");
	fake_exit(p->slots[0].next->pid, EXITED(1));
	settle();
	ok(p->nreload_failures == 1 &&
	    p->reload_failures[0].generation == 1, "queued: the first failed");
	ok(p->reload.active && p->reload.generation == 2 &&
	    p->slots[0].next != NULL, "queued: the second runs at once");
	ready(p, p->slots[0].next);
	ok(!p->reload.active && !p->reload.failed &&
	    cur(p, 0)->generation == 2, "queued: the second succeeds");
	pool_end(p, "queued");
}

static void
test_restart_failing(void)
{
	struct pool *p = pool_new(1, notify_mode);
	char	 err[128];
	pid_t	 old;

	ready(p, cur(p, 0));
	old = cur_pid(p, 0);
	is_int(pool_restart(p, 0, err, sizeof(err)), 0, "restart: accepted");
	is_int(pool_restart(p, 0, err, sizeof(err)), -EBUSY,
	    "restart: a second one is refused while the first runs");
	fake_exit(p->slots[0].next->pid, EXITED(1));
	settle();
	is_int(cur_pid(p, 0), old, "restart, successor died: old serves");
	ok(proc(old)->nsignals == 0, "restart: the old one was not signalled");
	is_int(pool_restart(p, 0, err, sizeof(err)), 0,
	    "restart: the slot takes a new restart");
	ready(p, p->slots[0].next);
	ok(cur_pid(p, 0) != old && !proc(old)->alive,
	    "restart: now replaced");
	/* A successor that cannot be forked: retried, then given up. */
	old = cur_pid(p, 0);
	F.fail_forks = 100;
	is_int(pool_restart(p, 0, err, sizeof(err)), 0, "restart: no fork");
	advance(2);
	is_int(cur_pid(p, 0), old, "restart, no fork: old serves");
	F.fail_forks = 0;
	advance(2);
	is_int(F.spawns, 3, "restart, no fork: given up, not retried forever");
	is_int(pool_restart(p, 0, err, sizeof(err)), 0,
	    "restart: accepted again after giving up");
	pool_end(p, "restart");
}

static void
test_scale_during_reload(void)
{
	struct pool *p = pool_new(3, notify_mode);
	char	 err[128];
	unsigned gen;
	int	 i;

	for (i = 0; i < 3; i++)
		ready(p, cur(p, i));
	pool_reload(p, &gen, NULL, 0);
	ok(p->slots[0].next != NULL, "scale: reload replaces slot 0 first");
	is_int(pool_scale(p, 1, err, sizeof(err)), 0, "scale: down to 1");
	settle();
	is_int(p->nworkers, 2, "scale down: slots 1 and 2 stopped");
	ready(p, p->slots[0].next);
	ok(!p->reload.active && !p->reload.failed && p->reload.done == 1,
	    "scale down: the reload ends with the one slot left");
	pool_reload(p, &gen, NULL, 0);
	is_int(pool_scale(p, 3, err, sizeof(err)), 0, "scale: up to 3");
	ok(cur(p, 1) != NULL && cur(p, 1)->generation == 2 &&
	    cur(p, 2) != NULL, "scale up: new slots start at the new "
	    "generation");
	ready(p, cur(p, 1));
	ready(p, cur(p, 2));
	ready(p, p->slots[0].next);
	ok(!p->reload.active && !p->reload.failed,
	    "scale up: the reload completes");
	for (i = 0; i < 3; i++)
		ok(cur(p, i)->generation == 2 && cur(p, i)->state == W_READY,
		    "scale up: worker %d new and ready", i);
	pool_end(p, "scale");
}

/* THE BUG: --max-requests' recycle whose successor cannot be forked. */
static void
test_recycle_fork_fails(void)
{
	struct pool *p = pool_new(1, NULL);
	pid_t	 old = cur_pid(p, 0);

	F.fail_forks = 1;
	pool_recycle(p, cur(p, 0), "served its --max-requests");
	settle();
	is_int(F.forks, 2, "recycle: the successor's fork failed");
	ok(p->slots[0].respawn_at > 0, "recycle: a retry is scheduled");
	advance(0.1);
	is_int(F.spawns, 2, "recycle: the successor is started on retry");
	ok(cur_pid(p, 0) != old && !proc(old)->alive,
	    "recycle: the old worker is replaced");
	pool_end(p, "recycle");
}

static void
max_memory(struct conf *c)
{
	c->max_memory = 100 << 20;
	c->min_uptime = 1;
}

static void
test_memory_fork_fails(void)
{
	struct pool *p = pool_new(1, max_memory);
	pid_t	 old = cur_pid(p, 0);

	advance(1.5);
	proc(old)->rss = 200 << 20;
	F.fail_forks = 1;
	advance(0.5);
	is_int(F.forks, 2, "memory: recycled, its successor's fork failed");
	advance(0.1);
	ok(cur_pid(p, 0) != old && !proc(old)->alive,
	    "memory: replaced after the retry");
	pool_end(p, "memory");
}

static void
watchdog(struct conf *c)
{
	c->watchdog = 1;
	c->min_uptime = 1;
}

static void
test_watchdog(void)
{
	struct pool *p = pool_new(1, watchdog);
	pid_t	 old = cur_pid(p, 0);

	pool_worker_notify(p, cur(p, 0), "WATCHDOG", "1");
	advance(0.9);
	pool_worker_notify(p, cur(p, 0), "WATCHDOG", "1");
	advance(0.9);
	ok(proc(old)->alive, "watchdog: fed, it lives");
	advance(0.2);
	is_int(proc(old)->last_signal, SIGABRT, "watchdog: ABRT when starved");
	ok(cur_pid(p, 0) != old, "watchdog: replaced");
	pool_end(p, "watchdog");
}

/* --ready listen, on one real (unbound) socket the probe is asked about. */
static int listen_fd = -1;
static struct listener listen_l;

static void
listen_mode(struct conf *c)
{
	if (listen_fd < 0)
		listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&listen_l, 0, sizeof(listen_l));
	listen_l.type = L_TCP;
	listen_l.spec = "127.0.0.1:8080";
	listen_l.name = "l0";
	listen_l.host = "127.0.0.1";
	listen_l.port = "8080";
	snprintf(listen_l.address, sizeof(listen_l.address), "127.0.0.1:8080");
	listen_l.fd = listen_fd;
	c->listeners = &listen_l;
	c->nlisteners = 1;
	c->ready = READY_LISTEN;
	c->ready_timeout = 10;
	c->min_uptime = 2;
}

static void
listen_done(struct pool *p, const char *name)
{
	pool_end(p, name);
	C.listeners = NULL;
	C.nlisteners = 0;
}

static void
test_listen_ready(void)
{
	struct pool *p;
	struct worker *w;
	int	 n;

	p = pool_new(1, listen_mode);
	w = cur(p, 0);
	advance(3.0);
	ok(w->state == W_STARTING, "listen: still loading after 3 s: starting");
	n = probes;
	proc(w->pid)->probe = READY_WAITING;
	advance(0.21);
	ok(w->state == W_READY, "listen: ready within 0.2 s of waiting");
	n = probes;
	advance(5.0);
	is_int(probes, n, "listen: a ready worker is not looked at again");
	ok(!w->probe_timer.armed, "listen: no probe timer once ready");
	listen_done(p, "listen ready");
}

static void
test_listen_unseen(void)
{
	struct pool *p;
	struct worker *w;

	probe_default = -ENOENT;
	p = pool_new(1, listen_mode);
	probe_default = READY_NOT_YET;
	w = cur(p, 0);
	advance(0.9);
	ok(w->state == W_STARTING, "listen unseen: starting before 1 s");
	advance(0.25);
	ok(w->state == W_READY, "listen unseen: ready after 1 s alive");
	listen_done(p, "listen unseen");

	/* Seen with the socket while it loads, then on sockets of its own. */
	p = pool_new(1, listen_mode);
	w = cur(p, 0);
	advance(2.0);
	proc(w->pid)->probe = -ENOENT;
	advance(0.9);
	ok(w->state == W_STARTING,
	    "listen let go: not ready within 1 s of letting go");
	advance(0.25);
	ok(w->state == W_READY,
	    "listen let go: ready once alive 1 s without the socket");
	listen_done(p, "listen unseen");
}

/* A reload to a build that dies while loading fails; the old one serves. */
static void
test_listen_reload_broken(void)
{
	struct pool *p;
	struct worker *old, *nw;
	unsigned gen;

	p = pool_new(1, listen_mode);
	old = cur(p, 0);
	proc(old->pid)->probe = READY_WAITING;
	advance(0.2);
	ok(old->state == W_READY, "listen reload: the old worker is ready");
	is_int(pool_reload(p, &gen, NULL, 0), 0, "listen reload: accepted");
	settle();
	nw = p->slots[0].next;
	ok(nw != NULL, "listen reload: a successor");
	if (nw == NULL) {
		listen_done(p, "listen reload");
		return;
	}
	proc(nw->pid)->probe = READY_NOT_YET;
	advance(1.5);
	/* It closes the sockets it held, then exits: never ready. */
	proc(nw->pid)->probe = -ENOENT;
	advance(0.5);
	ok(nw->state == W_STARTING, "listen reload: a tree that let go of "
	    "the socket 0.5 s ago is not ready");
	fake_exit(nw->pid, EXITED(3));
	settle();
	ok(p->reload.failed && strstr(p->reload.error, "exited with status 3"),
	    "listen reload: the reload fails: %s", p->reload.error);
	ok(cur(p, 0) == old && old->state == W_READY,
	    "listen reload: the old worker keeps serving");
	listen_done(p, "listen reload");
}

/*
 * A reload's new worker serves, its predecessor exits, and the new one
 * dies young in the same round of reaping: the replacement ends with the
 * slot already starting the next worker.
 */
static void
test_replace_ends_while_starting(void)
{
	struct pool *p = pool_new(1, notify_mode);
	struct worker *nw;
	pid_t	 old;
	unsigned gen;

	ready(p, cur(p, 0));
	old = cur_pid(p, 0);
	is_int(pool_reload(p, &gen, NULL, 0), 0, "ends while starting: reload");
	settle();
	nw = p->slots[0].next;
	ok(nw != NULL, "ends while starting: a successor");
	if (nw == NULL) {
		pool_end(p, "ends while starting");
		return;
	}
	F.obey_term = false;
	pool_worker_notify(p, nw, "READY", "1");
	settle();
	/* The new worker dies while the old one still stops; its slot
	 * starts another, and only then the old one is gone. */
	fake_exit(nw->pid, EXITED(1));
	settle();
	advance(0.15);
	ok(p->slots[0].state == SL_RETIRING && cur(p, 0) != NULL &&
	    cur(p, 0)->state == W_STARTING,
	    "ends while starting: a new worker starts while the old one stops "
	    "(%s)", slot_state_name(p->slots[0].state));
	fake_exit(old, EXITED(0));
	settle();
	ok(p->slots[0].state == SL_STARTING,
	    "ends while starting: the replacement ended, the slot starts (%s)",
	    slot_state_name(p->slots[0].state));
	ok(!p->reload.active, "ends while starting: the reload is over");
	pool_end(p, "ends while starting");
}

static void
test_ready_timeout(void)
{
	struct pool *p = pool_new(1, notify_mode);
	pid_t	 old = cur_pid(p, 0);

	advance(0.99);
	ok(proc(old)->alive, "ready-timeout: alive before the timeout");
	advance(0.02);
	is_int(proc(old)->last_signal, SIGKILL, "ready-timeout: KILL");
	ok(cur(p, 0) == NULL && p->slots[0].respawn_at > 0,
	    "ready-timeout: restarted with back-off");
	advance(0.1);
	ok(cur(p, 0) != NULL, "ready-timeout: restarted");
	pool_end(p, "ready-timeout");
}

static void
test_stop_mixed(void)
{
	struct pool *p = pool_new(4, notify_mode);
	pid_t	 pid[4];
	int	 i;

	/* 0 ready, 1 starting, 2 stopping (TERM ignored), 3 in back-off. */
	ready(p, cur(p, 0));
	ready(p, cur(p, 2));
	F.obey_term = false;
	pool_recycle(p, cur(p, 2), "test");
	ready(p, p->slots[2].next);
	fake_exit(cur_pid(p, 3), EXITED(1));
	settle();
	for (i = 0; i < 4; i++)
		pid[i] = cur_pid(p, i);
	ok(p->slots[3].respawn_at > 0, "stop: slot 3 in back-off");
	pool_stop(p, false);
	settle();
	ok(p->state == POOL_STOPPING, "stop: stopping");
	ok(proc(pid[0])->last_signal == SIGTERM &&
	    proc(pid[1])->last_signal == SIGTERM,
	    "stop: TERM to ready and starting workers");
	advance(1);
	is_int(F.spawns, 5, "stop: no respawn in back-off after stop");
	F.obey_term = true;
	fake_exit(pid[0], KILLED(SIGTERM));
	fake_exit(pid[1], KILLED(SIGTERM));
	fake_exit(pid[2], KILLED(SIGTERM));
	settle();
	ok(p->state == POOL_STOPPING && p->nworkers == 1,
	    "stop: waits for the old worker 2 that ignores TERM");
	advance(C.stop_timeout);
	ok(p->state == POOL_DONE, "stop: done after --stop-timeout's KILL");
	pool_end(p, "stop");
}

static void
notify_watchdog(struct conf *c)
{
	notify_mode(c);
	c->watchdog = 1;
	c->ready_timeout = 10;
}

/*
 * Scaled down in every state: starting, serving, back-off, stopping,
 * replacing, waiting to retry a fork, retiring.  Each slot goes, its
 * workers are stopped, and nothing comes back.
 */
static void
test_scale_down_states(void)
{
	struct pool *p = pool_new(8, notify_mode);
	char	 err[128];
	int	 i;

	F.obey_term = false;
	ready(p, cur(p, 0));
	for (i = 2; i < 8; i++)
		ready(p, cur(p, i));
	fake_exit(cur_pid(p, 3), EXITED(1));		/* 3: back-off */
	settle();
	pool_worker_notify(p, cur(p, 4), "STOPPING", "1");	/* 4 */
	pool_restart(p, 5, err, sizeof(err));		/* 5: replacing */
	F.fail_forks = 1;
	pool_restart(p, 6, err, sizeof(err));		/* 6: fork retry */
	pool_restart(p, 7, err, sizeof(err));		/* 7: retiring */
	ready(p, p->slots[7].next);
	is_str(slot_state_name(p->slots[1].state), "starting", "remove: 1");
	is_str(slot_state_name(p->slots[2].state), "serving", "remove: 2");
	is_str(slot_state_name(p->slots[3].state), "backoff", "remove: 3");
	is_str(slot_state_name(p->slots[4].state), "stopping", "remove: 4");
	is_str(slot_state_name(p->slots[5].state), "replacing", "remove: 5");
	is_str(slot_state_name(p->slots[6].state), "replace-wait",
	    "remove: 6");
	is_str(slot_state_name(p->slots[7].state), "retiring", "remove: 7");
	is_int(pool_scale(p, 1, err, sizeof(err)), 0, "remove: scaled to 1");
	settle();
	for (i = 1; i < 8; i++)
		ok(p->slots[i].state == SL_EMPTY && cur(p, i) == NULL &&
		    p->slots[i].next == NULL, "remove: slot %d empty", i);
	F.obey_term = true;
	advance(C.stop_timeout + 1);
	is_int(p->nworkers, 1, "remove: only worker 0 is left");
	/*
	 * With --no-restart, a worker that exits leaves its slot empty: it
	 * is restarted on request, scaled away, and the pool stops with it.
	 */
	is_int(pool_scale(p, 2, err, sizeof(err)), 0, "remove: back to 2");
	C.no_restart = true;
	fake_exit(cur_pid(p, 1), EXITED(0));
	settle();
	ok(p->slots[1].state == SL_EMPTY, "no-restart: slot 1 empty");
	is_int(pool_restart(p, 1, err, sizeof(err)), 0, "no-restart: restart");
	ok(cur(p, 1) != NULL, "no-restart: slot 1 started again");
	fake_exit(cur_pid(p, 1), EXITED(0));
	settle();
	is_int(pool_scale(p, 1, err, sizeof(err)), 0, "no-restart: scale 1");
	pool_end(p, "remove");
}

/* Events in the states the cases above do not reach. */
static void
test_more_cells(void)
{
	struct pool *p = pool_new(4, notify_watchdog);
	char	 err[128];
	pid_t	 pid;

	/* A starting worker: its watchdog fires; it says STOPPING=1. */
	pool_worker_notify(p, cur(p, 0), "WATCHDOG", "1");
	pool_worker_notify(p, cur(p, 1), "STOPPING", "1");
	ok(p->slots[1].state == SL_STOPPING, "cells: STOPPING=1 stops it");
	/* A restart of a starting worker, and of a stopping one. */
	is_int(pool_restart(p, 2, err, sizeof(err)), 0, "cells: restart 2");
	ok(p->slots[2].state == SL_REPLACING, "cells: starting -> replacing");
	is_int(pool_restart(p, 1, err, sizeof(err)), 0, "cells: restart 1");
	ok(p->slots[1].state == SL_REPLACING, "cells: stopping -> replacing");
	/* Serving, then STOPPING=1. */
	ready(p, cur(p, 3));
	pool_worker_notify(p, cur(p, 3), "STOPPING", "1");
	ok(p->slots[3].state == SL_STOPPING, "cells: serving -> stopping");
	advance(1.0);
	ok(p->slots[0].state == SL_STOPPING || p->slots[0].state ==
	    SL_BACKOFF, "cells: the watchdog stopped a starting worker");
	pool_end(p, "cells 1");

	p = pool_new(3, notify_watchdog);
	F.obey_term = false;
	ready(p, cur(p, 0));
	ready(p, cur(p, 1));
	/* Replacing: the old worker's watchdog fires. */
	pool_worker_notify(p, cur(p, 0), "WATCHDOG", "1");
	pool_restart(p, 0, err, sizeof(err));
	/* Retiring: the new worker's watchdog fires. */
	pool_restart(p, 1, err, sizeof(err));
	ready(p, p->slots[1].next);
	pool_worker_notify(p, cur(p, 1), "WATCHDOG", "1");
	ok(p->slots[1].state == SL_RETIRING, "cells: retiring");
	advance(1.0);
	ok(p->slots[0].state == SL_STARTING, "cells: the old one's watchdog "
	    "fired while replacing: its successor takes over");
	/* Slot 1's new worker died young while its old one stops. */
	ok(p->slots[1].state == SL_BACKOFF && p->slots[1].repl.old != NULL,
	    "cells: back-off with the old worker still stopping");
	fake_exit(p->slots[1].repl.old->pid, KILLED(SIGTERM));
	settle();
	ok(p->slots[1].state == SL_BACKOFF && p->slots[1].repl.old == NULL,
	    "cells: the old one gone, still in back-off");
	advance(0.2);
	ok(p->slots[1].state == SL_STARTING, "cells: then restarted");
	/* A slot in back-off restarted: it starts at once. */
	fake_exit(cur_pid(p, 2), EXITED(1));
	settle();
	ok(p->slots[2].state == SL_BACKOFF, "cells: back-off");
	pool_restart(p, 2, err, sizeof(err));
	ok(p->slots[2].state == SL_STARTING, "cells: restarted from back-off");
	/* Its new worker dies young: the restart failed, back-off again. */
	fake_exit(cur_pid(p, 2), EXITED(1));
	settle();
	ok(p->slots[2].state == SL_BACKOFF && p->slots[2].repl.kind ==
	    REPLACE_NONE, "cells: a failed restart from back-off backs off");
	advance(0.5);
	/* A stop with a stopping worker. */
	pool_worker_notify(p, cur(p, 2), "STOPPING", "1");
	pool_end(p, "cells 2");

	p = pool_new(2, notify_mode);
	ready(p, cur(p, 0));
	ready(p, cur(p, 1));
	/* Waiting to retry a fork: the worker dies; the pool stops. */
	F.fail_forks = 2;
	pool_restart(p, 0, err, sizeof(err));
	pool_restart(p, 1, err, sizeof(err));
	ok(p->slots[0].state == SL_REPLACE_WAIT &&
	    p->slots[1].state == SL_REPLACE_WAIT, "cells: both wait");
	pid = cur_pid(p, 0);
	fake_exit(pid, EXITED(1));
	settle();
	ok(cur_pid(p, 0) != pid, "cells: its slot restarted");
	pool_end(p, "cells 3");
}

static struct listener rp_listener;

static void
reuseport(struct conf *c)
{
	memset(&rp_listener, 0, sizeof(rp_listener));
	rp_listener.type = L_TCP;
	rp_listener.spec = "127.0.0.1:0";
	rp_listener.name = "l0";
	rp_listener.host = "127.0.0.1";
	rp_listener.port = "0";
	rp_listener.fd = -1;
	rp_listener.mode = -1;
	c->listeners = &rp_listener;
	c->nlisteners = 1;
	c->mode = MODE_REUSEPORT;
	c->min_uptime = 1;
	c->ready = READY_NOTIFY;
	c->ready_timeout = 10;
}

/*
 * reuseport, scaled down with connections queued on the slot's socket:
 * its worker serves them first; when it dies meanwhile, one is started
 * just to drain them; the slot goes once its queue is empty.
 */
static void
test_drain(void)
{
	struct pool *p = pool_new(2, reuseport);
	char	 err[128];
	pid_t	 pid;

	ok(p->slots[1].fds != NULL, "drain: slot 1 has its own socket");
	ready(p, cur(p, 0));
	ready(p, cur(p, 1));
	queued = 5;
	is_int(pool_scale(p, 1, err, sizeof(err)), 0, "drain: scale to 1");
	advance(0.05);
	ok(p->slots[1].draining && p->slots[1].state == SL_SERVING,
	    "drain: slot 1 serves its queue");
	pid = cur_pid(p, 1);
	F.fail_forks = 1;
	fake_exit(pid, EXITED(1));
	settle();
	ok(cur(p, 1) == NULL && p->slots[1].state == SL_EMPTY,
	    "drain: its drain worker could not be forked");
	advance(0.05);
	ok(cur(p, 1) != NULL && cur_pid(p, 1) != pid,
	    "drain: a worker started to drain it");
	advance(0.05);
	ok(p->slots[1].state == SL_STARTING, "drain: it starts, and drains");
	ready(p, cur(p, 1));
	queued = 0;
	advance(0.05);
	ok(!p->slots[1].draining && p->slots[1].fds == NULL &&
	    p->slots[1].state == SL_EMPTY, "drain: then the slot goes");
	pool_end(p, "drain");
}

/*
 * An event raised inside a transition is one of its own, run after it:
 * a worker that counts as ready at exec becomes ready after its start,
 * not inside it.
 */
static void
test_queued_event(void)
{
	struct pool *p = pool_new(1, NULL);

	ok(p->transitions[SL_EMPTY][EV_START] == 1 &&
	    p->transitions[SL_STARTING][EV_READY] == 1,
	    "queued: start, then ready, each a transition of its own "
	    "(start %lu, ready %lu)", p->transitions[SL_EMPTY][EV_START],
	    p->transitions[SL_STARTING][EV_READY]);
	ok(cur(p, 0)->state == W_READY && p->slots[0].state == SL_SERVING,
	    "queued: the slot serves once the queue ran");
	ok(!p->in_event && p->nevq == 0, "queued: the queue is empty after");
	pool_end(p, "queued event");
}

/*
 * A restart of a starting worker whose successor cannot be forked at
 * first: the old one becoming ready meanwhile does not end the restart;
 * the retry replaces it.
 */
static void
test_restart_wait_ready(void)
{
	struct pool *p = pool_new(1, notify_mode);
	char	 err[128];
	pid_t	 old = cur_pid(p, 0);
	struct restart_record *r;

	F.fail_forks = 1;
	is_int(pool_restart(p, 0, err, sizeof(err)), 0, "wait ready: restart");
	is_str(slot_state_name(p->slots[0].state), "replace-wait",
	    "wait ready: the successor's fork failed");
	ready(p, cur(p, 0));
	is_str(slot_state_name(p->slots[0].state), "replace-wait",
	    "wait ready: the old worker ready, still to be replaced");
	r = &p->restart_log[p->nrestart_log - 1];
	ok(r->state == RESTART_RUNNING, "wait ready: the restart still runs");
	advance(0.1);
	ok(p->slots[0].next != NULL, "wait ready: the retry forks a successor");
	if (p->slots[0].next != NULL)
		ready(p, p->slots[0].next);
	ok(cur_pid(p, 0) != old && !proc(old)->alive,
	    "wait ready: the old worker was replaced");
	ok(r->state == RESTART_DONE && r->pid == cur_pid(p, 0),
	    "wait ready: the restart is done, with the new pid");
	pool_end(p, "wait ready");
}

/*
 * A reload's new worker serves and dies young while its predecessor
 * still stops: the slot starts another, which is RETIRING with cur
 * starting.  Ready or timed out there, the slot stays retiring.
 */
static struct pool *
retiring_starting(void (*tune)(struct conf *), pid_t *old)
{
	struct pool *p = pool_new(1, tune);
	unsigned gen;

	ready(p, cur(p, 0));
	*old = cur_pid(p, 0);
	pool_reload(p, &gen, NULL, 0);
	F.obey_term = false;
	ready(p, p->slots[0].next);
	fake_exit(cur_pid(p, 0), EXITED(1));
	settle();
	advance(0.15);
	return p;
}

static void
test_retiring_cur_starts(void)
{
	struct pool *p;
	pid_t	 old;

	p = retiring_starting(notify_mode, &old);
	ok(p->slots[0].state == SL_RETIRING &&
	    cur(p, 0)->state == W_STARTING, "retiring: cur starts");
	ready(p, cur(p, 0));
	ok(p->slots[0].state == SL_RETIRING && cur(p, 0)->state == W_READY,
	    "retiring: cur ready, the old one still stops");
	fake_exit(old, EXITED(0));
	settle();
	ok(p->slots[0].state == SL_SERVING, "retiring: then it serves");
	pool_end(p, "retiring ready");

	p = retiring_starting(notify_mode, &old);
	advance(1.1);
	ok(p->transitions[SL_RETIRING][EV_READY_TIMEOUT] == 1,
	    "retiring timeout: cur not ready in time, the old one stopping");
	ok(proc(old)->alive && p->slots[0].repl.old != NULL,
	    "retiring timeout: the old one still stops");
	pool_end(p, "retiring timeout");
}

static void
short_watchdog(struct conf *c)
{
	notify_mode(c);
	c->watchdog = 0.05;
	c->ready_timeout = 10;
	c->max_restart_delay = 10;
}

/*
 * The events a worker raises itself (STOPPING=1, a starved watchdog, a
 * ready timeout) come in whatever state its slot is in.
 */
static void
test_worker_events_anywhere(void)
{
	struct pool *p = pool_new(8, notify_mode);
	char	 err[128];
	struct worker *w;
	pid_t	 pid;
	int	 i;

	F.obey_term = false;
	for (i = 0; i < 8; i++)
		ready(p, cur(p, i));
	pool_worker_notify(p, cur(p, 1), "STOPPING", "1");	/* stopping */
	pool_restart(p, 2, err, sizeof(err));			/* replacing */
	F.fail_forks = 1;
	pool_restart(p, 3, err, sizeof(err));		/* replace-wait */
	pool_restart(p, 4, err, sizeof(err));		/* retiring */
	ready(p, p->slots[4].next);
	pool_restart(p, 5, err, sizeof(err));	/* back-off, old stopping */
	ready(p, p->slots[5].next);
	fake_exit(cur_pid(p, 5), EXITED(1));
	settle();
	pid = cur_pid(p, 7);
	pool_scale(p, 7, err, sizeof(err));	/* 7: stopped, worker stops */
	is_str(slot_state_name(p->slots[5].state), "backoff", "anywhere: 5");
	is_str(slot_state_name(p->slots[7].state), "stopped", "anywhere: 7");
	pool_worker_notify(p, cur(p, 1), "STOPPING", "1");
	pool_worker_notify(p, cur(p, 2), "STOPPING", "1");
	pool_worker_notify(p, cur(p, 3), "STOPPING", "1");
	pool_worker_notify(p, p->slots[4].repl.old, "STOPPING", "1");
	pool_worker_notify(p, p->slots[5].repl.old, "STOPPING", "1");
	w = pool_find_pid(p, pid);
	ok(w != NULL, "anywhere: the scaled-away worker stops");
	if (w != NULL)
		pool_worker_notify(p, w, "STOPPING", "1");
	is_str(slot_state_name(p->slots[2].state), "replacing",
	    "anywhere: STOPPING=1 from cur while replacing");
	is_str(slot_state_name(p->slots[3].state), "replace-wait",
	    "anywhere: STOPPING=1 from cur while waiting to retry");
	is_str(slot_state_name(p->slots[4].state), "retiring",
	    "anywhere: STOPPING=1 from the old one");
	pool_end(p, "anywhere");

	/* The watchdog of one that said STOPPING=1, and while retrying. */
	p = pool_new(2, short_watchdog);
	ready(p, cur(p, 0));
	ready(p, cur(p, 1));
	pid = cur_pid(p, 0);
	pool_worker_notify(p, cur(p, 0), "WATCHDOG", "1");
	pool_worker_notify(p, cur(p, 0), "STOPPING", "1");
	pool_worker_notify(p, cur(p, 1), "WATCHDOG", "1");
	F.fail_forks = 1;
	pool_restart(p, 1, err, sizeof(err));
	is_str(slot_state_name(p->slots[1].state), "replace-wait",
	    "anywhere: slot 1 waits to retry its fork");
	advance(0.06);
	is_int(proc(pid)->last_signal, SIGABRT,
	    "anywhere: the watchdog of a stopping worker fires");
	ok(p->transitions[SL_REPLACE_WAIT][EV_WATCHDOG] == 1,
	    "anywhere: the watchdog fired while waiting to retry");
	pool_end(p, "anywhere watchdog");

	/* Ready timeouts: of one that said STOPPING=1; while retrying. */
	p = pool_new(2, notify_mode);
	pid = cur_pid(p, 0);
	pool_worker_notify(p, cur(p, 0), "STOPPING", "1");
	advance(0.95);
	F.fail_forks = 1;
	pool_restart(p, 1, err, sizeof(err));
	advance(0.06);
	is_int(proc(pid)->last_signal, SIGKILL,
	    "anywhere: a stopping worker not ready in time is killed");
	ok(p->transitions[SL_REPLACE_WAIT][EV_READY_TIMEOUT] == 1,
	    "anywhere: the ready timeout fired while waiting to retry");
	pool_end(p, "anywhere timeout");
}

/* The cells that cannot happen are those slot_transitions says 0 of. */
static void
test_never_cell(void)
{
	ok(slot_transitions(SL_SERVING, EV_START) == 0,
	    "never: start cannot happen in serving");
	ok(slot_transitions(SL_SERVING, EV_EXIT) != 0, "never: exit can");
	ok(slot_transitions(SL_NSTATES, EV_EXIT) == 0 &&
	    slot_transitions(SL_SERVING, EV_NEVENTS) == 0,
	    "never: out of the table");
}

/*
 * reuseport: a slot whose worker died young (back-off) is scaled away
 * with connections queued on its socket: a worker starts to drain them.
 */
static void
test_drain_from_backoff(void)
{
	struct pool *p = pool_new(2, reuseport);
	char	 err[128];

	ready(p, cur(p, 0));
	ready(p, cur(p, 1));
	fake_exit(cur_pid(p, 1), EXITED(1));
	settle();
	is_str(slot_state_name(p->slots[1].state), "backoff",
	    "drain from back-off: slot 1 backs off");
	queued = 3;
	is_int(pool_scale(p, 1, err, sizeof(err)), 0,
	    "drain from back-off: scaled to 1");
	ok(cur(p, 1) != NULL && p->slots[1].draining,
	    "drain from back-off: a worker starts to drain its queue");
	is_int(p->bad_transitions, 0,
	    "drain from back-off: remove in backoff may lead to starting");
	queued = 0;
	ready(p, cur(p, 1));
	advance(0.05);
	ok(p->slots[1].state == SL_EMPTY && p->slots[1].fds == NULL,
	    "drain from back-off: then the slot goes");
	pool_end(p, "drain from back-off");
}

static void
inetd(struct conf *c)
{
	c->mode = MODE_INETD;
}

/* The lifecycle asks the mode: inetd has no slots, only a limit. */
static void
test_mode_inetd(void)
{
	struct pool *p = pool_new(2, inetd);
	char	 err[128];

	is_int(F.forks, 0, "inetd: no worker is started");
	is_int(pool_restart(p, 0, err, sizeof(err)), -ENOENT,
	    "inetd: restart ID is refused");
	ok(strstr(err, "inetd mode has no workers") != NULL,
	    "inetd: and says why: %s", err);
	is_int(pool_scale(p, 3, err, sizeof(err)), 0, "inetd: scaled to 3");
	ok(p->target == 3 && F.forks == 0 && !p->slots[2].inited,
	    "inetd: only the limit changed");
	pool_end(p, "inetd");
	C.mode = MODE_SHARED;
}

/* Appends s to buf, words separated by one space. */
static void
words_add(char *buf, size_t len, const char *s)
{
	size_t	 n = strlen(buf);

	snprintf(buf + n, len - n, "%s%s", n > 0 && buf[n - 1] != ' ' &&
	    s[0] != ',' && s[0] != ':' ? " " : "", s);
}

/* The table as pool.c's opening comment lists it, one space apart. */
static void
table_words(char *buf, size_t len)
{
	unsigned done, to, t2;
	int	 st, ev, e2, x;
	bool	 first;

	buf[0] = '\0';
	for (st = 0; st < SL_NSTATES; st++) {
		words_add(buf, len, slot_state_name(st));
		done = 0;
		for (ev = 0; ev < EV_NEVENTS; ev++) {
			if (slot_transitions(st, ev) == 0 || done & (1u << ev))
				continue;
			to = slot_transitions(st, ev) & ~(1u << st);
			first = true;
			for (e2 = ev; e2 < EV_NEVENTS; e2++) {
				t2 = slot_transitions(st, e2);
				if (t2 == 0 || (t2 & ~(1u << st)) != to)
					continue;
				done |= 1u << e2;
				if (!first)
					words_add(buf, len, ",");
				words_add(buf, len, slot_event_name(e2));
				first = false;
			}
			words_add(buf, len, to == 0 ? ": =" : "->");
			first = true;
			for (x = 0; x < SL_NSTATES; x++)
				if (to & (1u << x)) {
					if (!first)
						words_add(buf, len, "|");
					words_add(buf, len, slot_state_name(x));
					first = false;
				}
		}
	}
}

/* The listing in the comment that opens src/pool.c, one space apart. */
static bool
comment_words(char *buf, size_t len)
{
	FILE	*f = fopen("src/pool.c", "r");
	char	 line[256], *w, *save;
	bool	 in = false;

	buf[0] = '\0';
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (!in && strncmp(line, " *   stopped ", 13) == 0)
			in = true;
		if (in && strncmp(line, " *\n", 3) == 0)
			break;
		if (!in)
			continue;
		for (w = strtok_r(line + 2, " \n", &save); w != NULL;
		    w = strtok_r(NULL, " \n", &save)) {
			if (w[strlen(w) - 1] == ',' && strlen(w) > 1) {
				w[strlen(w) - 1] = '\0';
				words_add(buf, len, w);
				words_add(buf, len, ",");
			} else if (strcmp(w, "=") == 0)
				words_add(buf, len, "=");
			else if (w[strlen(w) - 1] == ':' && strlen(w) > 1) {
				w[strlen(w) - 1] = '\0';
				words_add(buf, len, w);
				words_add(buf, len, ":");
			} else
				words_add(buf, len, w);
		}
	}
	fclose(f);
	return in;
}

/* The state diagram that opens pool.c says what the table does. */
static void
test_table_comment(void)
{
	static char want[8192], got[8192];

	table_words(want, sizeof(want));
	ok(comment_words(got, sizeof(got)), "comment: pool.c opens with the "
	    "table's listing");
	is_str(got, want, "comment: the listing matches the table");
}

/* Every cell of the slot table was taken by some test above. */
static void
test_table_walk(void)
{
	int	 st, ev, cells = 0, missed = 0;

	for (st = 0; st < SL_NSTATES; st++)
		for (ev = 0; ev < EV_NEVENTS; ev++) {
			if (slot_transitions(st, ev) == 0)
				continue;
			cells++;
			if (hits[st][ev] == 0) {
				missed++;
				printf("# not exercised: %s in state %s\n",
				    slot_event_name(ev), slot_state_name(st));
			}
		}
	is_int(missed, 0, "table walk: all %d cells exercised", cells);
}

int
main(void)
{
	log_init("test", getenv("DEBUG") ? LOG_DEBUG : LOG_ERROR);
	sys_set(&fake_ops);
	if (loop_init() < 0)
		return 1;
	test_crash_backoff();
	test_killed_outside();
	reload_case(1, DIES);
	reload_case(2, DIES);
	reload_case(1, NEVER_READY);
	reload_case(2, NEVER_READY);
	reload_case(1, NO_FORK);
	reload_case(2, NO_FORK);
	reload_case(1, FORK_ONCE);
	reload_case(2, FORK_ONCE);
	test_reload_queued();
	test_restart_failing();
	test_scale_during_reload();
	test_recycle_fork_fails();
	test_memory_fork_fails();
	test_watchdog();
	test_ready_timeout();
	test_replace_ends_while_starting();
	test_listen_ready();
	test_listen_unseen();
	test_listen_reload_broken();
	test_stop_mixed();
	test_scale_down_states();
	test_more_cells();
	test_drain();
	test_drain_from_backoff();
	test_queued_event();
	test_restart_wait_ready();
	test_retiring_cur_starts();
	test_worker_events_anywhere();
	test_never_cell();
	test_mode_inetd();
	test_table_comment();
	test_table_walk();
	return done_testing();
}
