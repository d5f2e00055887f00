/*
 * procfs.c: readers of /proc/PID/stat, statm and smaps_rollup for worker
 * metrics and sd_notify attribution, and of the children files that make
 * a worker's process tree.  The parsers take buffers (unit-tested); the
 * readers honour $WPOOL_PROCFS_ROOT.  Owns nothing beyond a call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wpool.h"

/*
 * /proc/PID/stat: the command may hold spaces and parentheses, so fields
 * are counted from the last ')'.  Fills ppid and cpu_seconds.
 */
int
procfs_parse_stat(const char *buf, long hz, struct proc_sample *out)
{
	const char *p = strrchr(buf, ')');
	unsigned long long utime, stime, rss;
	int	 ppid;
	char	 state;

	if (p == NULL || hz <= 0)
		return -EINVAL;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice threads
	 * itrealvalue starttime vsize rss */
	if (sscanf(p + 1, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu", &state, &ppid, &utime, &stime) != 4)
		return -EINVAL;
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
	    "%*u %*d %*d %*d %*d %*d %*d %*u %*u %llu", &rss) != 1)
		rss = 0;
	out->rss_pages = rss;
	out->ppid = ppid;
	out->cpu_seconds = (double)(utime + stime) / (double)hz;
	return 0;
}

/* /proc/PID/statm: the second field is resident pages. */
int
procfs_parse_statm(const char *buf, long pagesize, uint64_t *rss)
{
	unsigned long long size, res;

	if (pagesize <= 0 || sscanf(buf, "%llu %llu", &size, &res) != 2)
		return -EINVAL;
	*rss = res * (uint64_t)pagesize;
	return 0;
}

static int
read_proc(pid_t pid, const char *what, char *buf, size_t len)
{
	const char *root = getenv("WPOOL_PROCFS_ROOT");
	char	 path[512];
	int	 r;

	snprintf(path, sizeof(path), "%s/%d/%s", root && *root ? root :
	    "/proc", (int)pid, what);
	return (r = read_small_file(path, buf, len)) < 0 ? r : 0;
}

/* /proc/PID/smaps_rollup: its "Pss:" line, in bytes. */
int
procfs_parse_rollup(const char *buf, uint64_t *pss)
{
	const char *l = buf;
	unsigned long long kb;

	while (l != NULL && *l != '\0') {
		if (strncmp(l, "Pss:", 4) == 0) {
			if (sscanf(l + 4, " %llu kB", &kb) != 1 ||
			    kb > UINT64_MAX / 1024)
				return -EINVAL;
			*pss = (uint64_t)kb * 1024;
			return 0;
		}
		if ((l = strchr(l, '\n')) != NULL)
			l++;
	}
	return -EINVAL;
}

/* A worker's tree is counted to this many processes, for a bounded cost. */
#define TREE_MAX_PROCS	1024

/*
 * The children of pid, zombies included, added to out from n on: the new
 * count.  Every thread's list, since a child belongs to the thread that
 * forked it.  None when they cannot be read: the process is gone.
 */
static int
children_of(pid_t pid, pid_t *out, int n, int max)
{
	const char *root = getenv("WPOOL_PROCFS_ROOT");
	char	 path[512], buf[8192], *p, *end;
	struct dirent *de;
	DIR	*d;
	long	 v;

	snprintf(path, sizeof(path), "%s/%d/task", root && *root ? root :
	    "/proc", (int)pid);
	if ((d = opendir(path)) == NULL)
		return n;
	while ((de = readdir(d)) != NULL && n < max) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "task/%s/children", de->d_name);
		if (read_proc(pid, path, buf, sizeof(buf)) < 0)
			continue;
		/* A full buffer may end in half a pid: leave that one. */
		if (strlen(buf) == sizeof(buf) - 1 &&
		    (p = strrchr(buf, ' ')) != NULL)
			*p = '\0';
		for (p = buf; *p != '\0' && n < max; p = end) {
			errno = 0;
			v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (v > 1 && errno == 0)
				out[n++] = (pid_t)v;
		}
	}
	closedir(d);
	return n;
}

/*
 * One process of a tree: its RSS from stat (already read for the top),
 * its PSS from smaps_rollup.  -ENOENT when it is gone or a zombie (it
 * holds no memory); *pss_ok goes false when its PSS cannot be read (not
 * ours to read: another user's, without root).
 */
static int
tree_member(pid_t pid, bool top, long hz, long pagesize, uint64_t *rss,
    uint64_t *pss, bool *pss_ok)
{
	struct proc_sample s;
	char	 buf[2048];
	const char *st;
	uint64_t v = 0;
	int	 r;

	*pss = 0;
	if (!top) {
		if (read_proc(pid, "stat", buf, sizeof(buf)) < 0 ||
		    procfs_parse_stat(buf, hz, &s) < 0)
			return -ENOENT;
		if ((st = strrchr(buf, ')')) != NULL && st[1] == ' ' &&
		    (st[2] == 'Z' || st[2] == 'X'))
			return -ENOENT;
		*rss = s.rss_pages * (uint64_t)pagesize;
	}
	/* An empty rollup is a process without memory of its own. */
	if ((r = read_proc(pid, "smaps_rollup", buf, sizeof(buf))) == -ENOENT ||
	    r == -ESRCH)
		return top ? 0 : -ENOENT;
	if (r < 0 || (buf[0] != '\0' && procfs_parse_rollup(buf, &v) < 0))
		*pss_ok = false;
	*pss = v;
	return 0;
}

/*
 * The memory of pid's whole tree, into out's mem_*: what a worker that is
 * a master of its own (gunicorn, nginx, puma) uses, which its own RSS
 * does not say.  PSS when every process's can be read: a page shared
 * between them (a forked master's code, its preloaded app) counts once,
 * split between its users; else RSS, summed, which counts it in each.
 */
static void
sample_tree(pid_t pid, long hz, long pagesize, struct proc_sample *out)
{
	pid_t	 pids[TREE_MAX_PROCS];
	uint64_t rss_sum = 0, pss_sum = 0, rss, pss;
	bool	 pss_ok = true;
	int	 i, n = 1, procs = 0;

	pids[0] = pid;
	for (i = 0; i < n; i++) {
		rss = out->rss_bytes;
		if (tree_member(pids[i], i == 0, hz, pagesize, &rss, &pss,
		    &pss_ok) < 0)
			continue;
		rss_sum += rss;
		pss_sum += pss;
		procs++;
		n = children_of(pids[i], pids, n, TREE_MAX_PROCS);
	}
	out->mem_pss = pss_ok;
	out->mem_bytes = pss_ok ? pss_sum : rss_sum;
	out->mem_procs = procs;
}

/* The master's own CPU time, for what reading a tree costs it. */
static double
cpu_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
procfs_sample(pid_t pid, struct proc_sample *out)
{
	static long hz, pagesize;
	struct proc_sample s;
	double	 t0;
	char	 buf[1024];
	int	 r;

	if (hz == 0) {
		hz = sysconf(_SC_CLK_TCK);
		pagesize = sysconf(_SC_PAGESIZE);
	}
	memset(&s, 0, sizeof(s));
	/* One file: stat has the resident pages too (field 24). */
	if ((r = read_proc(pid, "stat", buf, sizeof(buf))) < 0)
		return r;
	if ((r = procfs_parse_stat(buf, hz, &s)) < 0)
		return r;
	s.rss_bytes = s.rss_pages * (uint64_t)pagesize;
	t0 = cpu_now();
	sample_tree(pid, hz, pagesize, &s);
	s.mem_cost = cpu_now() - t0;
	*out = s;
	return 0;
}

pid_t
procfs_ppid(pid_t pid)
{
	struct proc_sample s;
	char	 buf[1024];

	if (read_proc(pid, "stat", buf, sizeof(buf)) < 0 ||
	    procfs_parse_stat(buf, 100, &s) < 0)
		return -1;
	return s.ppid;
}

/*
 * The parent and the start time (clock ticks since boot) of a process: a
 * pid and its start time name one process, even after the pid is reused.
 */
int
procfs_ident(pid_t pid, pid_t *ppid, unsigned long long *start)
{
	char	 buf[1024], *p;
	unsigned long long st;
	int	 pp, r;

	if ((r = read_proc(pid, "stat", buf, sizeof(buf))) < 0)
		return r;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice threads
	 * itrealvalue starttime */
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 1, " %*c %d %*d %*d "
	    "%*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
	    &pp, &st) != 2)
		return -EINVAL;
	if (ppid)
		*ppid = pp;
	if (start)
		*start = st;
	return 0;
}
