/*
 * test_tree.c: tree.c with real processes: the master's children are
 * listed, a worker's whole group is signalled, and a child that the skip
 * callback names is left alone; what a reaped worker left of its tree is
 * counted and signalled, in its group or adopted with its LISTEN_PID.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

/* A child that waits for a signal; in a group of its own if lead. */
static pid_t
child(bool lead, bool with_grandchild)
{
	pid_t	 pid = fork();

	if (pid != 0) {
		if (pid > 0 && lead)
			setpgid(pid, pid);
		return pid;
	}
	if (lead)
		setpgid(0, 0);
	if (with_grandchild && fork() == 0) {
		for (;;)
			pause();
	}
	for (;;)
		pause();
}

static bool
has(const pid_t *v, int n, pid_t p)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (v[i] == p)
			return true;
	return false;
}

static bool
skip_pid(pid_t pid, void *arg)
{
	return pid == *(pid_t *)arg;
}

/* Whether the group pgid has any process left, within 2 s. */
static bool
group_gone(pid_t pgid)
{
	int	 i;

	for (i = 0; i < 200; i++) {
		if (kill(-pgid, 0) < 0 && errno == ESRCH)
			return true;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		usleep(10000);
	}
	return false;
}


/* Until tree_signal_left(pgid, 0) is want, within 2 s. */
static bool
left_becomes(pid_t pgid, int want)
{
	int	 i;

	for (i = 0; i < 200; i++) {
		if (tree_signal_left(pgid, 0) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* A leader of its own group that forks one child into it, then exits. */
static pid_t
leader_leaving_child(bool child_moves_out)
{
	pid_t	 pid = fork(), a;

	if (pid != 0) {
		if (pid > 0)
			setpgid(pid, pid);
		return pid;
	}
	setpgid(0, 0);
	if ((a = fork()) == 0) {
		if (child_moves_out && fork() == 0)
			for (;;)
				pause();	/* stays in the leader's group */
		if (child_moves_out) {
			usleep(50000);
			setpgid(0, 0);
		}
		for (;;)
			pause();
	}
	usleep(child_moves_out ? 150000 : 50000);
	_exit(0);
}

/* A child that left the group, its environment naming listen_pid. */
static pid_t
daemon_naming(pid_t listen_pid)
{
	char	 env[32];
	char	*envp[] = { env, NULL };
	pid_t	 pid = fork();

	if (pid != 0)
		return pid;
	setsid();
	snprintf(env, sizeof(env), "LISTEN_PID=%d", (int)listen_pid);
	execle("/bin/sleep", "sleep", "100", (char *)NULL, envp);
	_exit(127);
}

static void
test_left(void)
{
	pid_t	 l, c, d, e, kids[16];
	int	 st, n, i;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	is_int(tree_signal_left(1, 0), -EINVAL, "never pid 1's leftovers");

	/* The child stays in the group: adopted, it holds the group's id. */
	l = leader_leaving_child(false);
	ok(waitpid(l, &st, 0) == l, "the leader exited and is reaped");
	is_int(tree_signal_left(l, 0), 1, "its child is left");
	n = tree_children(kids, 16);
	c = n == 1 ? kids[0] : -1;
	is_int(tree_signal_left(l, SIGTERM), 1, "and gets TERM");
	ok(c > 0 && waitpid(c, &st, 0) == c && WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGTERM, "the child died of TERM");
	is_int(tree_signal_left(l, 0), 0, "nothing is left");

	/* Its parent left the group: one at a time, through a pidfd. */
	l = leader_leaving_child(true);
	ok(waitpid(l, &st, 0) == l, "the second leader is reaped");
	ok(left_becomes(l, 1), "the grandchild alone is left in its group");
	is_int(tree_signal_left(l, SIGKILL), 1, "and gets KILL");
	ok(left_becomes(l, 0), "it is gone (a zombie of its parent)");
	n = tree_children(kids, 16);
	for (i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;

	/* Adopted daemons: the one whose LISTEN_PID names the worker. */
	l = 999999;
	d = daemon_naming(l);
	e = daemon_naming(l + 1);
	ok(left_becomes(l, 1), "the daemon naming the worker is left");
	is_int(tree_signal_left(l, SIGTERM), 1, "it alone is signalled");
	ok(waitpid(d, &st, 0) == d && WIFSIGNALED(st), "it died");
	ok(kill(e, 0) == 0, "the other worker's daemon runs on");
	kill(e, SIGKILL);
	waitpid(e, NULL, 0);
}

int
main(void)
{
	pid_t	 kids[16], a, b;
	int	 n, st;

	is_int(tree_children(kids, 16), 0, "no child: none listed");
	is_int(tree_signal_children(0, NULL, NULL), 0, "no child: none counted");

	a = child(true, true);
	b = child(false, false);
	ok(a > 0 && b > 0, "forked two children");
	usleep(50000);	/* a's grandchild exists */
	n = tree_children(kids, 16);
	is_int(n, 2, "both children listed (not the grandchild)");
	ok(has(kids, n, a) && has(kids, n, b), "by their pids");
	is_int(tree_children(kids, 1), 1, "at most max of them");
	is_int(tree_signal_children(0, skip_pid, &a), 1,
	    "skip leaves one to count");

	/* KILL to a's group takes the grandchild with it. */
	is_int(tree_signal_group(a, SIGKILL), 0, "a's group signalled");
	ok(group_gone(a), "a and its grandchild are gone");
	is_int(tree_signal_group(1, SIGKILL), -EINVAL, "never pid 1's group");

	/* b has no group of its own: it alone gets the signal. */
	is_int(tree_signal_children(SIGTERM, skip_pid, &a), 1,
	    "b signalled as a child");
	ok(waitpid(b, &st, 0) == b && WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGTERM, "b died of TERM");
	is_int(tree_children(kids, 16), 0, "no child left");
	test_left();
	return done_testing();
}
