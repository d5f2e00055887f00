/*
 * tree.c: what is left of the workers' process trees: each worker's
 * process group, the processes the master adopted as subreaper, and what
 * a worker left behind when it died while the pool runs (its "leftovers",
 * which this file owns: a record and a timer each).  It signals only
 * processes that are surely the pool's: a group while one of the master's
 * unreaped children is in it, or whose leader, a worker, is not reaped yet
 * (so its id cannot name another group), the master's own children (their
 * pids are not reused before the master reaps them), and otherwise one
 * process at a time through a pidfd, checked to be in the group.
 */
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/*
 * sig to the process group that the worker leader made, and to the
 * worker itself if it has since moved to another group.
 */
int
tree_signal_group(pid_t leader, int sig)
{
	int	 r = 0;

	if (leader <= 1)
		return -EINVAL;
	if (kill(-leader, sig) < 0)
		r = -errno;
	if (r < 0 || getpgid(leader) != leader)
		r = kill(leader, sig) == 0 ? 0 : -errno;
	return r;
}

/* The pids in one /proc/PROC/task/TID/children file, added to out. */
static int
children_of_task(const char *proc, const char *tid, pid_t *out, int n,
    int max)
{
	char	 path[96], buf[8192], *p, *end;
	long	 v;
	int	 r;

	snprintf(path, sizeof(path), "/proc/%s/task/%s/children", proc, tid);
	if ((r = read_small_file(path, buf, sizeof(buf))) < 0)
		return r;
	/* A full buffer may end in half a pid: never signal that. */
	if ((size_t)r == sizeof(buf) - 1 && (p = strrchr(buf, ' ')) != NULL)
		*p = '\0';
	for (p = buf; *p != '\0' && n < max; p = end) {
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > 1 && errno == 0)
			out[n++] = (pid_t)v;
	}
	return n;
}

/*
 * The children of the process proc ("self" or a pid), zombies included,
 * added to out from n on: the new count, or -errno.  Every thread's
 * list, since a child belongs to the thread that forked it.
 */
static int
children_of(const char *proc, pid_t *out, int n, int max)
{
	char	 path[64];
	DIR	*d;
	struct dirent *de;
	int	 r;

	snprintf(path, sizeof(path), "/proc/%s/task", proc);
	if ((d = opendir(path)) == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL && n < max) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if ((r = children_of_task(proc, de->d_name, out, n, max)) < 0) {
			closedir(d);
			return r;
		}
		n = r;
	}
	closedir(d);
	return n;
}

/*
 * The master's live children (zombies included), at most max of them:
 * the number found, or -errno.
 */
int
tree_children(pid_t *out, int max)
{
	return children_of("self", out, 0, max);
}

/*
 * sig to each child of the master for which skip (may be NULL) says no;
 * sig 0 only counts them.  Returns how many were not skipped, or -errno
 * if the children cannot be listed.
 */
int
tree_signal_children(int sig, bool (*skip)(pid_t, void *), void *arg)
{
	pid_t	 kids[4096];
	int	 i, n, left = 0;

	if ((n = tree_children(kids, (int)(sizeof(kids) / sizeof(kids[0])))) < 0)
		return n;
	for (i = 0; i < n; i++) {
		if (skip != NULL && skip(kids[i], arg))
			continue;
		left++;
		if (sig != 0)
			kill(kids[i], sig);
	}
	return left;
}

/*
 * What a worker left when it died while the pool runs (issue 11): the
 * live processes of its group that descend from the master, and the
 * master's children that left the group (setsid) but whose environment
 * names the worker (LISTEN_PID=its pid, which wpool set and the systemd
 * protocol passes on).  A daemon that cleared it cannot be told from
 * another worker's, and stops with the pool.
 */
#define TREE_MAX_PROCS	4096
#define LEFT_POLL_SECS	0.1	/* after KILL: until none is left */
#define LEFT_POLLS	40	/* then they are left to the pool's stop */

struct tproc {
	pid_t	 pid;		/* 0: gone while we looked */
	pid_t	 ppid;
	pid_t	 pgrp;
	char	 state;
};

/* The state, parent and group of pid, from /proc/PID/stat. */
static int
tproc_read(pid_t pid, struct tproc *t)
{
	char	 path[64], buf[1024], *p;
	int	 ppid, pgrp, r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((r = read_small_file(path, buf, sizeof(buf))) < 0)
		return r;
	/* comm may hold anything, ')' too: the fields follow the last. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %d %d", &t->state, &ppid, &pgrp) != 3)
		return -EINVAL;
	t->pid = pid;
	t->ppid = ppid;
	t->pgrp = pgrp;
	return 0;
}

/* Every process below the master, breadth first: how many, or -errno. */
static int
tree_below(struct tproc *out, pid_t *pids, int max)
{
	char	 dir[16];
	int	 i, n, r;

	if ((n = children_of("self", pids, 0, max)) < 0)
		return n;
	for (i = 0; i < n; i++) {
		if (tproc_read(pids[i], &out[i]) < 0) {
			out[i].pid = 0;
			continue;
		}
		snprintf(dir, sizeof(dir), "%d", (int)pids[i]);
		if ((r = children_of(dir, pids, n, max)) > n)
			n = r;
	}
	return n;
}

/* Whether pid's environment has LISTEN_PID=leader. */
static bool
names_worker(pid_t pid, pid_t leader)
{
	char	 path[64], want[32], buf[32768], *s, *end;
	int	 r;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if ((r = read_small_file(path, buf, sizeof(buf))) <= 0)
		return false;
	snprintf(want, sizeof(want), "LISTEN_PID=%d", (int)leader);
	for (s = buf, end = buf + r; s < end; s += strlen(s) + 1)
		if (strcmp(s, want) == 0)
			return true;
	return false;
}

/*
 * sig to pid through a pidfd, if it is in group pgid once the pidfd
 * holds it: a pid reused meanwhile is another process, never signalled.
 */
static void
signal_member(pid_t pid, pid_t pgid, int sig)
{
	struct tproc t;
	int	 fd;

	if ((fd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
		return;
	if (tproc_read(pid, &t) == 0 && t.pgrp == pgid && t.state != 'Z')
		(void)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
	close(fd);
}

/*
 * sig to what is left of the tree of the worker that led group pgid and
 * is reaped; sig 0 only counts.  Returns how many processes (zombies
 * aside), or -errno if the master's tree cannot be read.  The group as a
 * whole while one of the master's children is in it: unreaped, it holds
 * the group's id, which no new group can take.
 */
int
tree_signal_left(pid_t pgid, int sig)
{
	struct tproc *t;
	pid_t	*pids, me = getpid();
	bool	*adopted, pinned = false;
	int	 i, n, left = 0;

	if (pgid <= 1)
		return -EINVAL;
	t = xcalloc(TREE_MAX_PROCS, sizeof(*t));
	pids = xcalloc(TREE_MAX_PROCS, sizeof(*pids));
	adopted = xcalloc(TREE_MAX_PROCS, sizeof(*adopted));
	if ((n = tree_below(t, pids, TREE_MAX_PROCS)) < 0) {
		left = n;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (t[i].pid == 0)
			continue;
		if (t[i].pgrp == pgid) {
			pinned |= t[i].ppid == me;
			left += t[i].state != 'Z';
		} else if (t[i].ppid == me && t[i].state != 'Z' &&
		    names_worker(t[i].pid, pgid)) {
			adopted[i] = true;
			left++;
		}
	}
	if (sig == 0 || left == 0)
		goto out;
	if (pinned)
		kill(-pgid, sig);
	for (i = 0; i < n; i++) {
		if (adopted[i])
			kill(t[i].pid, sig);	/* ours: kept till reaped */
		else if (!pinned && t[i].pid != 0 && t[i].pgrp == pgid)
			signal_member(t[i].pid, pgid, sig);
	}
out:
	free(adopted);
	free(pids);
	free(t);
	return left;
}

/* One worker's leftovers, until they are gone. */
struct leftover {
	TAILQ_ENTRY(leftover) entry;
	int	 id;
	pid_t	 pgid;		/* the worker's pid: its group */
	double	 timeout;		/* --stop-timeout when it died */
	bool	 killed;		/* KILL sent */
	int	 polls;
	struct timer timer;
};

struct tree {
	TAILQ_HEAD(, leftover) left;
	int	 nleft;
};

static struct tree tree = { TAILQ_HEAD_INITIALIZER(tree.left), 0 };

/* The module's state, for the pool to reach (struct pool's tree). */
struct tree *
tree_state(void)
{
	return &tree;
}

static void
leftover_free(struct leftover *l)
{
	timer_cancel(&l->timer);
	TAILQ_REMOVE(&tree.left, l, entry);
	tree.nleft--;
	free(l);
}

/* --stop-timeout after the stop signal: KILL, then look until none. */
static void
on_leftover_timer(void *arg)
{
	struct leftover *l = arg;
	int	 n;

	if ((n = sys_signal_left(l->pgid, 0)) <= 0) {
		log_debug("what worker %d (pid %d) left is gone", l->id,
		    (int)l->pgid);
		leftover_free(l);
		return;
	}
	if (!l->killed)
		log_warnx("%d process%s worker %d (pid %d) left did not stop "
		    "within %gs; sending KILL", n, n == 1 ? "" : "es", l->id,
		    (int)l->pgid, l->timeout);
	else if (++l->polls >= LEFT_POLLS) {
		log_warnx("%d process%s worker %d (pid %d) left survived KILL; "
		    "they stop with the pool", n, n == 1 ? "" : "es", l->id,
		    (int)l->pgid);
		leftover_free(l);
		return;
	}
	l->killed = true;
	sys_signal_left(l->pgid, SIGKILL);
	timer_set(&l->timer, LEFT_POLL_SECS);
}

/*
 * A worker of the running pool was reaped: what it left gets the stop
 * signal now, KILL after --stop-timeout, and the master reaps it as its
 * own children (adopted as subreaper).  A stopping pool signals them
 * itself.  Nothing is kept when nothing was left.
 */
void
tree_worker_gone(struct pool *p, int id, pid_t pid)
{
	struct leftover *l;
	int	 n, sig = p->conf->stop_signal;

	if (p->state != POOL_RUNNING)
		return;
	if ((n = sys_signal_left(pid, sig)) <= 0)
		return;
	log_info("worker %d (pid %d) left %d process%s; stopping %s with "
	    "%s, KILL after %gs", id, (int)pid, n, n == 1 ? "" : "es",
	    n == 1 ? "it" : "them", signal_name(sig), p->conf->stop_timeout);
	TAILQ_FOREACH(l, &tree.left, entry)
		if (l->pgid == pid)
			return;
	if (tree.nleft >= WPOOL_MAX_WORKERS)
		return;	/* a crash loop: the stop signal has to do */
	l = xcalloc(1, sizeof(*l));
	l->id = id;
	l->pgid = pid;
	l->timeout = p->conf->stop_timeout;
	timer_init(&l->timer, on_leftover_timer, l);
	timer_set(&l->timer, l->timeout);
	TAILQ_INSERT_TAIL(&tree.left, l, entry);
	tree.nleft++;
}

/* The records and their timers go (the pool is done). */
void
tree_close(void)
{
	struct leftover *l;

	while ((l = TAILQ_FIRST(&tree.left)) != NULL)
		leftover_free(l);
}
