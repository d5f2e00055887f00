/*
 * cpu.c: how many CPUs the pool may use, for -n auto: the affinity mask,
 * limited by a cgroup CPU quota (v2 cpu.max along the process's own
 * cgroup path, or v1 CFS quota).  The parsers take strings so that tests
 * feed them fixtures; cpu_usable reads below $WPOOL_SYSFS_ROOT and
 * $WPOOL_PROCFS_ROOT when they are set.
 */
#include <sched.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* "max 100000" -> -ENOENT (no limit); "150000 100000" -> 1.5. */
int
cpu_parse_cgroup2_max(const char *buf, double *cpus)
{
	long long quota, period = 100000;
	const char *p = buf;
	char	*end;

	p += strspn(p, " \t");
	if (strncmp(p, "max", 3) == 0 && (p[3] == '\0' || isspace(
	    (unsigned char)p[3])))
		return -ENOENT;
	errno = 0;
	quota = strtoll(p, &end, 10);
	if (end == p || errno != 0 || quota <= 0 || (*end != '\0' &&
	    !isspace((unsigned char)*end)))
		return -EINVAL;
	p = end + strspn(end, " \t");
	if (*p != '\0' && *p != '\n') {
		period = strtoll(p, &end, 10);
		if (end == p || errno != 0 || period <= 0 ||
		    (*end != '\0' && !isspace((unsigned char)*end)))
			return -EINVAL;
	}
	*cpus = (double)quota / (double)period;
	return 0;
}

/* cfs_quota_us and cfs_period_us contents: -1 quota means no limit. */
int
cpu_parse_cgroup1_quota(const char *quota, const char *period, double *cpus)
{
	long long q, p;

	if (sscanf(quota, "%lld", &q) != 1 || sscanf(period, "%lld", &p) != 1)
		return -EINVAL;
	if (q < 0)
		return -ENOENT;
	if (q == 0 || p <= 0)
		return -EINVAL;
	*cpus = (double)q / (double)p;
	return 0;
}

/*
 * /proc/self/cgroup: the v2 path ("0::/x") and the v1 cpu controller's
 * path ("N:cpu,cpuacct:/x").  Returns 0 if either was found.
 */
int
cpu_parse_self_cgroup(const char *buf, char *v2, size_t v2len, char *v1,
    size_t v1len)
{
	const char *line = buf, *nl, *c1, *c2;
	char	 ctrl[256];
	size_t	 n;
	int	 found = 0;

	if (v2len)
		v2[0] = '\0';
	if (v1len)
		v1[0] = '\0';
	while (line && *line) {
		nl = strchr(line, '\n');
		n = nl ? (size_t)(nl - line) : strlen(line);
		c1 = memchr(line, ':', n);
		c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line)) :
		    NULL;
		if (c2 != NULL && (size_t)(c2 - c1 - 1) < sizeof(ctrl)) {
			size_t	 plen = n - (size_t)(c2 + 1 - line);
			char	*tok, *save, *cp;

			memcpy(ctrl, c1 + 1, (size_t)(c2 - c1 - 1));
			ctrl[c2 - c1 - 1] = '\0';
			if (ctrl[0] == '\0' && strncmp(line, "0:", 2) == 0 &&
			    plen < v2len) {
				memcpy(v2, c2 + 1, plen);
				v2[plen] = '\0';
				found = 1;
			}
			for (cp = ctrl; (tok = strtok_r(cp, ",", &save)); cp = NULL)
				if (strcmp(tok, "cpu") == 0 && plen < v1len) {
					memcpy(v1, c2 + 1, plen);
					v1[plen] = '\0';
					found = 1;
				}
		}
		line = nl ? nl + 1 : NULL;
	}
	return found ? 0 : -ENOENT;
}

/* "0-3,8,10-11" -> 7; -EINVAL on nonsense. */
int
cpu_parse_cpulist(const char *s)
{
	long	 a, b;
	char	*end;
	int	 n = 0;

	while (*s && *s != '\n') {
		/* No machine has a million CPUs: bigger is garbage. */
		a = strtol(s, &end, 10);
		if (end == s || a < 0 || a >= (1 << 20))
			return -EINVAL;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s || b < a || b >= (1 << 20))
				return -EINVAL;
		}
		n += (int)(b - a + 1);
		s = end;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	return n > 0 ? n : -EINVAL;
}

static const char *
root(const char *env, const char *def)
{
	const char *r = getenv(env);

	return r != NULL && *r != '\0' ? r : def;
}

/*
 * The tightest quota among dir/path and each of its ancestors.  Levels
 * that do not exist are skipped: without a cgroup namespace a container
 * sees its own cgroup at the mount's root, not under its full path.
 */
static int
quota_along(const char *dir, const char *path, bool v2, double *best,
    char *where, size_t wlen)
{
	char	 p[4096], file[4400], buf[256], buf2[256];
	double	 q;
	char	*slash;
	int	 found = 0;

	if (strlcpy(p, path, sizeof(p)) >= sizeof(p))
		return -ENAMETOOLONG;
	for (;;) {
		if (v2) {
			snprintf(file, sizeof(file), "%s%s/cpu.max", dir, p);
			if (read_small_file(file, buf, sizeof(buf)) > 0 &&
			    cpu_parse_cgroup2_max(buf, &q) == 0 &&
			    (!found || q < *best)) {
				*best = q;
				found = 1;
				snprintf(where, wlen, "cgroup v2 cpu.max %s%s",
				    *p ? p : "/", "");
			}
		} else {
			snprintf(file, sizeof(file), "%s%s/cpu.cfs_quota_us",
			    dir, p);
			if (read_small_file(file, buf, sizeof(buf)) > 0) {
				snprintf(file, sizeof(file),
				    "%s%s/cpu.cfs_period_us", dir, p);
				if (read_small_file(file, buf2, sizeof(buf2)) > 0 &&
				    cpu_parse_cgroup1_quota(buf, buf2,
				    &q) == 0 && (!found || q < *best)) {
					*best = q;
					found = 1;
					snprintf(where, wlen, "cgroup v1 cpu "
					    "quota %s", *p ? p : "/");
				}
			}
		}
		if (*p == '\0' || strcmp(p, "/") == 0)
			break;
		if ((slash = strrchr(p, '/')) == NULL)
			break;
		*slash = '\0';
	}
	return found ? 0 : -ENOENT;
}

int
cpu_usable(struct cpu_info *ci, int fallback)
{
	const char *sys = root("WPOOL_SYSFS_ROOT", "/sys");
	const char *proc = root("WPOOL_PROCFS_ROOT", "/proc");
	char	 buf[8192], v2[4096], v1[4096], dir[4200], where[200];
	cpu_set_t set;
	double	 quota = 0;
	int	 aff = 0, n, r = -ENOENT;

	memset(ci, 0, sizeof(*ci));
	CPU_ZERO(&set);
	if (getenv("WPOOL_PROCFS_ROOT") != NULL) {
		/* Fixtures give the mask as /proc/self/status shows it. */
		char	*l;

		snprintf(dir, sizeof(dir), "%s/self/status", proc);
		if (read_small_file(dir, buf, sizeof(buf)) > 0 &&
		    (l = strstr(buf, "Cpus_allowed_list:")) != NULL)
			aff = cpu_parse_cpulist(l + 18 + strspn(l + 18,
			    " \t"));
		if (aff < 0)
			aff = 0;
	} else if (sched_getaffinity(0, sizeof(set), &set) == 0)
		aff = CPU_COUNT(&set);
	snprintf(dir, sizeof(dir), "%s/self/cgroup", proc);
	if (read_small_file(dir, buf, sizeof(buf)) > 0 &&
	    cpu_parse_self_cgroup(buf, v2, sizeof(v2), v1, sizeof(v1)) == 0) {
		snprintf(dir, sizeof(dir), "%s/fs/cgroup/cgroup.controllers",
		    sys);
		if (v2[0] != '\0' && access(dir, F_OK) == 0) {
			snprintf(dir, sizeof(dir), "%s/fs/cgroup", sys);
			r = quota_along(dir, v2, true, &quota, where,
			    sizeof(where));
		} else if (v1[0] != '\0') {
			snprintf(dir, sizeof(dir), "%s/fs/cgroup/cpu,cpuacct",
			    sys);
			if (access(dir, F_OK) != 0)
				snprintf(dir, sizeof(dir), "%s/fs/cgroup/cpu",
				    sys);
			r = quota_along(dir, v1, false, &quota, where,
			    sizeof(where));
		}
		if (r < 0 && v2[0] != '\0') {
			/* Hybrid hierarchy: v2 mounted beside v1. */
			snprintf(dir, sizeof(dir), "%s/fs/cgroup/unified", sys);
			r = quota_along(dir, v2, true, &quota, where,
			    sizeof(where));
		}
	}
	if (r == 0) {
		/* A quota of more CPUs than workers can be: no int overflow. */
		n = quota >= WPOOL_MAX_WORKERS ? WPOOL_MAX_WORKERS :
		    (int)ceil(quota - 1e-9);
		if (n < 1)
			n = 1;
		if (aff > 0 && aff < n) {
			ci->n = aff;
			snprintf(ci->source, sizeof(ci->source), "affinity "
			    "mask; %s allows %.2f", where, quota);
		} else {
			ci->n = n;
			snprintf(ci->source, sizeof(ci->source), "%s = %.2f "
			    "CPUs, rounded up", where, quota);
		}
		return 0;
	}
	if (aff > 0) {
		ci->n = aff;
		snprintf(ci->source, sizeof(ci->source), "affinity mask");
		return 0;
	}
	ci->n = fallback;
	snprintf(ci->source, sizeof(ci->source), "fallback: no CPU count "
	    "could be read");
	return -ENOENT;
}

/*
 * --cpu-affinity: the CPU of slot `slot` is the (slot mod n)-th of the n
 * CPUs in set, counted upwards, as nginx's worker_cpu_affinity auto
 * counts them; slots wrap when there are more than CPUs.  Pure, for the
 * unit test: the CPU number, or -ENOENT for an empty set.
 */
int
cpu_nth(const cpu_set_t *set, int slot)
{
	int	 n = CPU_COUNT(set), i, k;

	if (n <= 0 || slot < 0)
		return -ENOENT;
	k = slot % n;
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, set) && k-- == 0)
			return i;
	return -ENOENT;
}

/*
 * The CPU a worker of slot `slot` is pinned to: asked of the master's
 * mask at each start rather than once, so that a mask changed under a
 * running master (taskset -p, a cpuset resized) never names a CPU the
 * kernel would refuse, while a slot keeps its CPU across restarts and
 * reloads as long as the mask stays.  -errno if it cannot be read.
 */
int
cpu_for_slot(int slot)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return cpu_nth(&set, slot);
}

/*
 * -n auto bounded by memory (--memory-per-worker): the tightest memory limit
 * of the process's cgroup and its ancestors (v2 memory.max, v1
 * memory.limit_in_bytes), else the machine's MemTotal, divided by the
 * budget of a worker.  Read below $WPOOL_SYSFS_ROOT and
 * $WPOOL_PROCFS_ROOT as the CPU count is.
 */

/* v1 writes "no limit" as the largest page multiple: above this, none. */
#define MEM_UNLIMITED	(UINT64_C(1) << 62)

/* memory.max or memory.limit_in_bytes: "max" or a huge value: -ENOENT. */
int
cpu_parse_memory_limit(const char *buf, uint64_t *limit)
{
	const char *p = buf + strspn(buf, " \t");
	unsigned long long v;
	char	*end;

	if (strncmp(p, "max", 3) == 0 && (p[3] == '\0' || isspace(
	    (unsigned char)p[3])))
		return -ENOENT;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno != 0 || (*end != '\0' && !isspace((unsigned char)*end)))
		return -EINVAL;
	if (v >= MEM_UNLIMITED)
		return -ENOENT;
	*limit = v;
	return 0;
}

/* /proc/meminfo: MemTotal, in bytes. */
int
cpu_parse_meminfo(const char *buf, uint64_t *total)
{
	const char *l = strstr(buf, "MemTotal:");
	unsigned long long kb;

	if (l == NULL || (l != buf && l[-1] != '\n') ||
	    sscanf(l + 9, " %llu kB", &kb) != 1 || kb == 0 ||
	    kb > UINT64_MAX / 1024)
		return -EINVAL;
	*total = (uint64_t)kb * 1024;
	return 0;
}

/* The path of v1 controller ctrl in /proc/self/cgroup ("4:memory:/x"). */
static int
self_cgroup_v1(const char *buf, const char *ctrl, char *out, size_t len)
{
	const char *line, *nl, *c1, *c2;
	size_t	 n, clen = strlen(ctrl);

	for (line = buf; line != NULL && *line != '\0';
	    line = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		n = nl != NULL ? (size_t)(nl - line) : strlen(line);
		if ((c1 = memchr(line, ':', n)) == NULL ||
		    (c2 = memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line))) ==
		    NULL)
			continue;
		/* ctrl alone or in a list: "memory", "cpu,cpuacct". */
		for (const char *t = c1 + 1; t < c2; ) {
			const char *e = memchr(t, ',', (size_t)(c2 - t));

			if (e == NULL)
				e = c2;
			if ((size_t)(e - t) == clen && memcmp(t, ctrl,
			    clen) == 0) {
				n -= (size_t)(c2 + 1 - line);
				if (n >= len)
					return -ENAMETOOLONG;
				memcpy(out, c2 + 1, n);
				out[n] = '\0';
				return 0;
			}
			t = e + 1;
		}
	}
	return -ENOENT;
}

/* The tightest memory limit among dir/path and its ancestors. */
static int
mem_along(const char *dir, const char *path, const char *file,
    const char *what, uint64_t *best, char *where, size_t wlen)
{
	char	 p[4096], f[4400], buf[64];
	uint64_t v;
	char	*slash;
	int	 found = 0;

	if (strlcpy(p, path, sizeof(p)) >= sizeof(p))
		return -ENAMETOOLONG;
	for (;;) {
		snprintf(f, sizeof(f), "%s%s/%s", dir, strcmp(p, "/") == 0 ?
		    "" : p, file);
		if (read_small_file(f, buf, sizeof(buf)) > 0 &&
		    cpu_parse_memory_limit(buf, &v) == 0 &&
		    (!found || v < *best)) {
			*best = v;
			found = 1;
			snprintf(where, wlen, "%s %s", what, *p ? p : "/");
		}
		if (*p == '\0' || strcmp(p, "/") == 0 ||
		    (slash = strrchr(p, '/')) == NULL)
			break;
		*slash = '\0';
		if (*p == '\0')
			strlcpy(p, "/", sizeof(p));
	}
	return found ? 0 : -ENOENT;
}

/* The memory the pool may use, and where that was read. */
static int
memory_limit(uint64_t *limit, char *where, size_t wlen)
{
	const char *sys = root("WPOOL_SYSFS_ROOT", "/sys");
	const char *proc = root("WPOOL_PROCFS_ROOT", "/proc");
	char	 buf[8192], v2[4096], v1[4096], dir[4200];
	int	 r = -ENOENT;

	snprintf(dir, sizeof(dir), "%s/self/cgroup", proc);
	if (read_small_file(dir, buf, sizeof(buf)) > 0) {
		if (cpu_parse_self_cgroup(buf, v2, sizeof(v2), NULL, 0) < 0)
			v2[0] = '\0';
		snprintf(dir, sizeof(dir), "%s/fs/cgroup/cgroup.controllers",
		    sys);
		if (v2[0] != '\0' && access(dir, F_OK) == 0) {
			snprintf(dir, sizeof(dir), "%s/fs/cgroup", sys);
			r = mem_along(dir, v2, "memory.max",
			    "cgroup v2 memory.max", limit, where, wlen);
		} else if (self_cgroup_v1(buf, "memory", v1, sizeof(v1)) == 0) {
			snprintf(dir, sizeof(dir), "%s/fs/cgroup/memory", sys);
			r = mem_along(dir, v1, "memory.limit_in_bytes",
			    "cgroup v1 memory.limit_in_bytes", limit, where,
			    wlen);
		}
	}
	if (r == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/meminfo", proc);
	if (read_small_file(dir, buf, sizeof(buf)) > 0 &&
	    cpu_parse_meminfo(buf, limit) == 0) {
		snprintf(where, wlen, "MemTotal (no cgroup memory limit)");
		return 0;
	}
	return -ENOENT;
}

/*
 * How many workers of budget bytes the memory allows, into ci's mem_*:
 * at least 1 (a pool of none serves nothing; the log says it does not
 * fit).  -ENOENT, and no bound, when no limit can be read.
 */
int
cpu_memory_bound(struct cpu_info *ci, uint64_t budget)
{
	char	 where[128], lim[16], per[16];
	uint64_t limit, n;

	ci->mem_n = 0;
	ci->mem_limit = 0;
	ci->mem_source[0] = '\0';
	if (budget == 0 || memory_limit(&limit, where, sizeof(where)) < 0)
		return -ENOENT;
	n = limit / budget;
	ci->mem_n = n < 1 ? 1 : n > WPOOL_MAX_WORKERS ? WPOOL_MAX_WORKERS :
	    (int)n;
	ci->mem_limit = limit;
	format_bytes(limit, lim, sizeof(lim));
	format_bytes(budget, per, sizeof(per));
	snprintf(ci->mem_source, sizeof(ci->mem_source), "%s = %s, / "
	    "--memory-per-worker %s = %llu%s", where, lim, per,
	    (unsigned long long)n, n < 1 ? ", but 1 at least" : "");
	return 0;
}

/* -n auto's count: the CPUs, or fewer if memory allows fewer. */
int
cpu_auto_workers(const struct cpu_info *ci)
{
	return ci->mem_n > 0 && ci->mem_n < ci->n ? ci->mem_n : ci->n;
}

/* For the log and `wpool check`: what -n auto counted, which bound won. */
void
cpu_auto_text(const struct cpu_info *ci, char *buf, size_t len)
{
	if (ci->mem_n > 0 && ci->mem_n < ci->n)
		snprintf(buf, len, "bound by memory: %s; %d CPU%s: %s",
		    ci->mem_source, ci->n, ci->n == 1 ? "" : "s", ci->source);
	else if (ci->mem_n > 0)
		snprintf(buf, len, "bound by CPUs: %d CPU%s: %s; memory: %s",
		    ci->n, ci->n == 1 ? "" : "s", ci->source, ci->mem_source);
	else
		snprintf(buf, len, "%d CPU%s: %s", ci->n, ci->n == 1 ? "" :
		    "s", ci->source);
}
