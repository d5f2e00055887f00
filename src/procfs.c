/*
 * procfs.c: readers of /proc/PID/stat and statm for worker metrics and
 * sd_notify attribution.  The parsers take buffers (unit-tested); the
 * readers honour $WPOOL_PROCFS_ROOT.  Owns nothing beyond a call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int
procfs_sample(pid_t pid, struct proc_sample *out)
{
	static long hz, pagesize;
	struct proc_sample s;
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
