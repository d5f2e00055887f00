/*
 * test_tree.c: tree.c with real processes: the master's children are
 * listed, a worker's whole group is signalled, and a child that the skip
 * callback names is left alone.
 */
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
	return done_testing();
}
