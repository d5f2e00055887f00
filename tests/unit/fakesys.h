/*
 * fakesys.h: the fake kernel the lifecycle's unit tests run pool.c on
 * (sys_set(&fake_ops)): forks that succeed or fail on demand, signals
 * recorded and turned into exits, a clock the test moves and the loop's
 * timers fired at it.  A header of statics, included by one test file
 * each (test_lifecycle.c, test_upgrade.c), which uses what it needs.
 */
#ifndef FAKESYS_H
#define FAKESYS_H

#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"

#define FAKE_UNUSED	__attribute__((unused))

#define FAKE_PID0	1000
#define FAKE_MAX	4096

struct fake_proc {
	bool	 alive;
	int	 probe;			/* what the readiness probe sees */
	int	 last_signal;
	int	 nsignals;
	uint64_t rss;
};

static struct {
	double	 now;
	int	 fail_forks;		/* the next N forks fail */
	int	 forks, spawns;
	pid_t	 next_pid;
	bool	 obey_term;		/* a worker exits on the stop signal */
	struct fake_proc procs[FAKE_MAX];
	pid_t	 exits[FAKE_MAX];	/* waiting to be reaped */
	int	 statuses[FAKE_MAX];
	int	 nexits;
} F;

static FAKE_UNUSED struct fake_proc *
proc(pid_t pid)
{
	if (pid < FAKE_PID0 || pid >= FAKE_PID0 + FAKE_MAX)
		return NULL;
	return &F.procs[pid - FAKE_PID0];
}

/* What the readiness probe sees of a new process at first. */
static int probe_default = READY_NOT_YET;

static FAKE_UNUSED pid_t
fake_spawn(const struct spawn_req *req, int *status_fd)
{
	(void)req;
	F.forks++;
	if (F.fail_forks > 0) {
		F.fail_forks--;
		return -EAGAIN;
	}
	F.spawns++;
	*status_fd = -1;		/* exec'd at once */
	proc(F.next_pid)->alive = true;
	proc(F.next_pid)->probe = probe_default;
	return F.next_pid++;
}

/* The child exits with a wait status, to be reaped at the next SIGCHLD. */
static FAKE_UNUSED void
fake_exit(pid_t pid, int status)
{
	struct fake_proc *pr = proc(pid);

	if (pr == NULL || !pr->alive)
		return;
	pr->alive = false;
	F.exits[F.nexits] = pid;
	F.statuses[F.nexits++] = status;
}

#define EXITED(code)	(((code) & 0xff) << 8)
#define KILLED(sig)	(sig)

static FAKE_UNUSED int
fake_kill(pid_t pid, int sig)
{
	struct fake_proc *pr = proc(pid);

	if (pr == NULL || !pr->alive)
		return -ESRCH;
	if (sig == 0 || sig == SIGCONT)
		return 0;
	pr->last_signal = sig;
	pr->nsignals++;
	if (sig == SIGKILL || sig == SIGABRT ||
	    (sig == SIGTERM && F.obey_term))
		fake_exit(pid, KILLED(sig));
	return 0;
}

static FAKE_UNUSED pid_t
fake_reap(int *status)
{
	pid_t	 pid;

	if (F.nexits == 0)
		return 0;
	pid = F.exits[0];
	*status = F.statuses[0];
	F.nexits--;
	memmove(F.exits, F.exits + 1, (size_t)F.nexits * sizeof(F.exits[0]));
	memmove(F.statuses, F.statuses + 1,
	    (size_t)F.nexits * sizeof(F.statuses[0]));
	return pid;
}

static FAKE_UNUSED double
fake_mono(void)
{
	return F.now;
}

static FAKE_UNUSED double
fake_real(void)
{
	return 1.7e9 + F.now;
}

static FAKE_UNUSED int
fake_sample(pid_t pid, struct proc_sample *s)
{
	struct fake_proc *pr = proc(pid);

	if (pr == NULL || !pr->alive)
		return -ESRCH;
	memset(s, 0, sizeof(*s));
	s->rss_bytes = pr->rss;
	s->mem_bytes = pr->rss;		/* a tree of one */
	s->mem_procs = 1;
	return 0;
}

static int queued;	/* connections in every socket's accept queue */

static FAKE_UNUSED int
fake_queue_len(int fd)
{
	(void)fd;
	return queued;
}

static int probes;	/* calls of the readiness probe */

static FAKE_UNUSED int
fake_ready_probe(pid_t pid, const uint64_t *inos, size_t n)
{
	struct fake_proc *pr = proc(pid);

	(void)inos;
	probes++;
	if (pr == NULL || !pr->alive || n == 0)
		return -ENOENT;
	return pr->probe;
}

static const struct sys_ops fake_ops = {
	.spawn = fake_spawn,
	.kill = fake_kill,
	.reap = fake_reap,
	.mono = fake_mono,
	.real = fake_real,
	.sample = fake_sample,
	.queue_len = fake_queue_len,
	.ready_probe = fake_ready_probe,
};

/* Reaps what exited and fires what is due, until nothing is left to do. */
static FAKE_UNUSED void
settle(void)
{
	do {
		if (F.nexits > 0)
			loop_deliver_signal(SIGCHLD, 0);
		loop_fire_timers();
	} while (F.nexits > 0);
}

/* Moves the clock by dt, firing each timer at its own deadline. */
static FAKE_UNUSED void
advance(double dt)
{
	double	 end = F.now + dt, d;

	settle();
	while ((d = loop_next_deadline()) >= 0 && d <= end) {
		if (d > F.now)
			F.now = d;
		settle();
	}
	F.now = end;
	settle();
}

static char *fake_argv[] = { "fake-server", NULL };

#endif /* FAKESYS_H */
