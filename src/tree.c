/*
 * tree.c: what is left of the workers' process trees when the pool stops:
 * each worker's process group and the processes the master adopted as
 * subreaper.  It signals only processes that are surely the pool's: a
 * group whose leader, a worker, is not reaped yet (so its id cannot name
 * another group), and the master's own children (their pids are not
 * reused before the master reaps them).  Owns nothing beyond a call.
 */
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

/* The pids in one /proc/self/task/TID/children file, added to out. */
static int
children_of_task(const char *tid, pid_t *out, int n, int max)
{
	char	 path[64], buf[8192], *p, *end;
	long	 v;
	int	 r;

	snprintf(path, sizeof(path), "/proc/self/task/%s/children", tid);
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
 * The master's live children (zombies included), at most max of them:
 * the number found, or -errno.  Every thread's list, since a child
 * belongs to the thread that forked it.
 */
int
tree_children(pid_t *out, int max)
{
	DIR	*d;
	struct dirent *de;
	int	 n = 0, r;

	if ((d = opendir("/proc/self/task")) == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL && n < max) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if ((r = children_of_task(de->d_name, out, n, max)) < 0) {
			closedir(d);
			return r;
		}
		n = r;
	}
	closedir(d);
	return n;
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
