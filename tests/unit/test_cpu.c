/*
 * test_cpu.c: the CPU count behind -n auto.  The parsers take strings;
 * cpu_usable reads fixture trees built here under a mkdtemp directory and
 * pointed at by WPOOL_SYSFS_ROOT and WPOOL_PROCFS_ROOT (the affinity then
 * comes from $WPOOL_PROCFS_ROOT/self/status, Cpus_allowed_list).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

#define SENTINEL	-7.0

static void
v2_ok(const char *buf, double want)
{
	double	 v = SENTINEL;
	int	 r = cpu_parse_cgroup2_max(buf, &v);

	is_int(r, 0, "cgroup2 cpu.max '%s' parses", buf);
	is_dbl(v, want, "cgroup2 cpu.max '%s' = %g CPUs", buf, want);
}

static void
v2_err(const char *buf, int want)
{
	double	 v = SENTINEL;
	int	 r = cpu_parse_cgroup2_max(buf, &v);

	is_int(r, want, "cgroup2 cpu.max '%s' -> %d", buf, want);
	is_dbl(v, SENTINEL, "cgroup2 cpu.max '%s' leaves the output", buf);
}

static void
test_cgroup2_max(void)
{
	v2_ok("150000 100000", 1.5);
	v2_ok("50000 100000\n", 0.5);
	v2_ok("200000 100000\n", 2);
	v2_ok("100000 50000\n", 2);
	v2_ok("1000 100000\n", 0.01);
	v2_ok("150000", 1.5);			/* period defaults to 100000 */

	v2_err("max 100000", -ENOENT);
	v2_err("max 100000\n", -ENOENT);
	v2_err("max", -ENOENT);
	v2_err("garbage", -EINVAL);
	v2_err("", -EINVAL);
	v2_err("\n", -EINVAL);
	v2_err("0 100000", -EINVAL);
	v2_err("-1 100000", -EINVAL);
	v2_err("150000 0", -EINVAL);
	v2_err("150000 -100000", -EINVAL);
	v2_err("150000 abc", -EINVAL);
	v2_err("abc 100000", -EINVAL);
	v2_err("15x0000 100000", -EINVAL);
}

static void
test_cgroup1_quota(void)
{
	double	 v = SENTINEL;

	is_int(cpu_parse_cgroup1_quota("-1", "100000", &v), -ENOENT,
	    "cgroup1 quota -1: no limit (-ENOENT)");
	is_int(cpu_parse_cgroup1_quota("-1\n", "100000\n", &v), -ENOENT,
	    "cgroup1 quota -1 with newlines");
	is_dbl(v, SENTINEL, "no limit leaves the output");
	is_int(cpu_parse_cgroup1_quota("50000", "100000", &v), 0,
	    "cgroup1 50000/100000 parses");
	is_dbl(v, 0.5, "cgroup1 50000/100000 = 0.5");
	is_int(cpu_parse_cgroup1_quota("250000\n", "100000\n", &v), 0,
	    "cgroup1 250000/100000 parses");
	is_dbl(v, 2.5, "cgroup1 250000/100000 = 2.5");

	v = SENTINEL;
	is_int(cpu_parse_cgroup1_quota("", "100000", &v), -EINVAL,
	    "cgroup1 empty quota: -EINVAL");
	is_int(cpu_parse_cgroup1_quota("50000", "", &v), -EINVAL,
	    "cgroup1 empty period: -EINVAL");
	is_int(cpu_parse_cgroup1_quota("50000", "0", &v), -EINVAL,
	    "cgroup1 period 0: -EINVAL");
	is_int(cpu_parse_cgroup1_quota("0", "100000", &v), -EINVAL,
	    "cgroup1 quota 0: -EINVAL");
	is_int(cpu_parse_cgroup1_quota("abc", "100000", &v), -EINVAL,
	    "cgroup1 garbage quota: -EINVAL");
	is_dbl(v, SENTINEL, "refusals leave the output");
}

static void
test_self_cgroup(void)
{
	char	 v2[256], v1[256];
	int	 r;

	r = cpu_parse_self_cgroup("0::/user.slice/app.service\n", v2,
	    sizeof(v2), v1, sizeof(v1));
	is_int(r, 0, "v2-only /proc/self/cgroup parses");
	is_str(v2, "/user.slice/app.service", "v2 path");
	is_str(v1, "", "no v1 cpu path");

	r = cpu_parse_self_cgroup("0::/\n", v2, sizeof(v2), v1, sizeof(v1));
	is_int(r, 0, "v2 root cgroup parses");
	is_str(v2, "/", "v2 path /");

	r = cpu_parse_self_cgroup("0::/no/newline", v2, sizeof(v2), v1,
	    sizeof(v1));
	is_int(r, 0, "a last line without a newline parses");
	is_str(v2, "/no/newline", "v2 path without newline");

	r = cpu_parse_self_cgroup(
	    "12:memory:/docker/abc\n"
	    "11:pids:/docker/abc\n"
	    "4:cpu,cpuacct:/docker/abc\n"
	    "1:name=systemd:/docker/abc\n", v2, sizeof(v2), v1, sizeof(v1));
	is_int(r, 0, "v1-only /proc/self/cgroup parses");
	is_str(v1, "/docker/abc", "v1 cpu path");
	is_str(v2, "", "no v2 path");

	r = cpu_parse_self_cgroup("4:cpu,cpuacct:/docker/abc", v2, sizeof(v2),
	    v1, sizeof(v1));
	is_int(r, 0, "the brief's v1 line parses");
	is_str(v1, "/docker/abc", "v1 cpu path from cpu,cpuacct");

	r = cpu_parse_self_cgroup("5:cpuacct,cpu:/a\n", v2, sizeof(v2), v1,
	    sizeof(v1));
	is_int(r, 0, "cpuacct,cpu order parses");
	is_str(v1, "/a", "v1 cpu path from cpuacct,cpu");

	r = cpu_parse_self_cgroup("3:cpuacct:/x\n7:cpuset:/y\n", v2,
	    sizeof(v2), v1, sizeof(v1));
	is_int(r, -ENOENT, "cpuacct and cpuset alone are not cpu: -ENOENT");

	r = cpu_parse_self_cgroup(
	    "12:cpu,cpuacct:/system.slice/x.service\n"
	    "1:name=systemd:/system.slice/x.service\n"
	    "0::/system.slice/x.service\n", v2, sizeof(v2), v1, sizeof(v1));
	is_int(r, 0, "hybrid /proc/self/cgroup parses");
	is_str(v1, "/system.slice/x.service", "hybrid: v1 cpu path");
	is_str(v2, "/system.slice/x.service", "hybrid: v2 path");

	r = cpu_parse_self_cgroup("", v2, sizeof(v2), v1, sizeof(v1));
	is_int(r, -ENOENT, "empty: -ENOENT");
	r = cpu_parse_self_cgroup("garbage\nmore garbage\n", v2, sizeof(v2),
	    v1, sizeof(v1));
	is_int(r, -ENOENT, "garbage: -ENOENT");
	r = cpu_parse_self_cgroup("0::/a/very/long/path\n", v2, 8, v1,
	    sizeof(v1));
	is_int(r, -ENOENT, "a path longer than the buffer is not truncated");
}

static void
test_cpulist(void)
{
	is_int(cpu_parse_cpulist("0-3,8,10-11"), 7, "0-3,8,10-11 -> 7");
	is_int(cpu_parse_cpulist("0"), 1, "0 -> 1");
	is_int(cpu_parse_cpulist("0-7\n"), 8, "0-7\\n -> 8");
	is_int(cpu_parse_cpulist("5"), 1, "5 -> 1");
	is_int(cpu_parse_cpulist("0,2,4,6"), 4, "0,2,4,6 -> 4");
	is_int(cpu_parse_cpulist("2-2"), 1, "2-2 -> 1");
	is_int(cpu_parse_cpulist(""), -EINVAL, "'' -> -EINVAL");
	is_int(cpu_parse_cpulist("\n"), -EINVAL, "'\\n' -> -EINVAL");
	is_int(cpu_parse_cpulist("3-1"), -EINVAL, "3-1 -> -EINVAL");
	is_int(cpu_parse_cpulist("a"), -EINVAL, "a -> -EINVAL");
	is_int(cpu_parse_cpulist("0-"), -EINVAL, "0- -> -EINVAL");
	is_int(cpu_parse_cpulist("-1"), -EINVAL, "-1 -> -EINVAL");
	is_int(cpu_parse_cpulist("0;1"), -EINVAL, "0;1 -> -EINVAL");
	is_int(cpu_parse_cpulist("0-3 x"), -EINVAL, "trailing junk -> "
	    "-EINVAL");
}

/* ---- cpu_usable on fixture trees ---- */

static char base[] = "/tmp/wpool-unit-cpu.XXXXXX";
static int fixture_no;
static char root[PATH_MAX];

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
mkdirs(const char *path)
{
	char	 p[PATH_MAX], *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Writes ROOT/rel (making its directories) with the given contents. */
static void
put(const char *rel, const char *contents)
{
	char	 path[PATH_MAX], *slash;
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	mkdirs(path);
	*slash = '/';
	if ((f = fopen(path, "w")) == NULL) {
		printf("# cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	fputs(contents, f);
	fclose(f);
}

/* A fresh, empty fixture: ROOT/sys and ROOT/proc, in the environment. */
static void
fixture(void)
{
	char	 p[PATH_MAX + 8];

	snprintf(root, sizeof(root), "%s/f%d", base, ++fixture_no);
	snprintf(p, sizeof(p), "%s/sys", root);
	mkdirs(p);
	setenv("WPOOL_SYSFS_ROOT", p, 1);
	snprintf(p, sizeof(p), "%s/proc", root);
	mkdirs(p);
	setenv("WPOOL_PROCFS_ROOT", p, 1);
}

static void
status_file(const char *cpus)
{
	char	 buf[256];

	snprintf(buf, sizeof(buf), "Name:\twpool\nState:\tR (running)\n"
	    "Cpus_allowed:\tff\nCpus_allowed_list:\t%s\n"
	    "Mems_allowed_list:\t0\n", cpus);
	put("proc/self/status", buf);
}

static void
usable(const char *what, int want_r, int want_n, const char *in_source,
    const char *not_in_source)
{
	struct cpu_info ci;
	int	 r;

	memset(&ci, 0x5a, sizeof(ci));
	r = cpu_usable(&ci, 3);
	is_int(r, want_r, "%s: cpu_usable returns %d", what, want_r);
	is_int(ci.n, want_n, "%s: %d CPUs", what, want_n);
	ok(memchr(ci.source, '\0', sizeof(ci.source)) != NULL &&
	    strstr(ci.source, in_source) != NULL &&
	    (not_in_source == NULL || strstr(ci.source, not_in_source) ==
	    NULL), "%s: source '%s' mentions '%s'", what, ci.source,
	    in_source);
}

static void
test_usable(void)
{
	/* cgroup v2, quota on the process's own cgroup. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/app.slice/web.service\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
	put("sys/fs/cgroup/app.slice/web.service/cpu.max", "150000 100000\n");
	usable("v2 1.5 CPUs, affinity 0-7", 0, 2, "cgroup v2",
	    "affinity");
	usable("v2 1.5 CPUs, affinity 0-7 (path)", 0, 2,
	    "/app.slice/web.service", NULL);

	/* A quota far beyond any CPU count: the affinity mask decides. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/huge\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/huge/cpu.max", "9223372036854775807 1\n");
	usable("v2 quota of 9.2e18 CPUs, affinity 0-7", 0, 8, "affinity",
	    NULL);

	/* Nested: the parent's quota is tighter. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/a/b\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/a/cpu.max", "100000 100000\n");
	put("sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
	usable("v2 nested, parent 1 CPU, child max", 0, 1, "cgroup v2",
	    "/a/b");
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/a/b\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/a/cpu.max", "200000 100000\n");
	put("sys/fs/cgroup/a/b/cpu.max", "400000 100000\n");
	put("sys/fs/cgroup/cpu.max", "max 100000\n");
	usable("v2 nested, parent 2 CPUs, child 4", 0, 2, "/a", "/a/b");
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/a/b\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/a/cpu.max", "400000 100000\n");
	put("sys/fs/cgroup/a/b/cpu.max", "250000 100000\n");
	usable("v2 nested, child 2.5 tighter than parent 4", 0, 3, "/a/b",
	    NULL);

	/* Container without a cgroup namespace: only the mount's root. */
	fixture();
	status_file("0-15");
	put("proc/self/cgroup", "0::/docker/0123abcd\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/cpu.max", "300000 100000\n");
	usable("v2, path missing under the mount, quota at its root", 0, 3,
	    "cgroup v2", NULL);

	/* Quota above the affinity: the affinity wins. */
	fixture();
	status_file("0-1");
	put("proc/self/cgroup", "0::/svc\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/svc/cpu.max", "800000 100000\n");
	usable("v2 8 CPUs, affinity 0-1", 0, 2, "affinity", NULL);

	/* No quota: the affinity. */
	fixture();
	status_file("0-2,5");
	put("proc/self/cgroup", "0::/svc\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/svc/cpu.max", "max 100000\n");
	usable("v2 max, affinity 0-2,5", 0, 4, "affinity", NULL);

	/* A tiny quota still gives one worker. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/svc\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/svc/cpu.max", "10000 100000\n");
	usable("v2 0.1 CPU", 0, 1, "cgroup v2", NULL);

	/* An exact quota is not rounded up past itself. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "0::/svc\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/svc/cpu.max", "300000 100000\n");
	usable("v2 exactly 3 CPUs", 0, 3, "cgroup v2", NULL);

	/* cgroup v1. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "11:memory:/docker/abc\n"
	    "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n");
	put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
	    "250000\n");
	put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
	    "100000\n");
	usable("v1 2.5 CPUs, affinity 0-7", 0, 3, "cgroup v1", NULL);
	usable("v1 2.5 CPUs (path)", 0, 3, "/docker/abc", NULL);

	/* cgroup v1 mounted as plain cpu, quota -1: the affinity. */
	fixture();
	status_file("0-5");
	put("proc/self/cgroup", "4:cpu:/x\n");
	put("sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "-1\n");
	put("sys/fs/cgroup/cpu/x/cpu.cfs_period_us", "100000\n");
	usable("v1 no quota, affinity 0-5", 0, 6, "affinity", NULL);

	/* Hybrid: v1 without a quota, v2 under unified/ has one. */
	fixture();
	status_file("0-7");
	put("proc/self/cgroup", "4:cpu,cpuacct:/\n0::/svc\n");
	put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
	put("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
	put("sys/fs/cgroup/unified/svc/cpu.max", "200000 100000\n");
	usable("hybrid, unified/svc 2 CPUs", 0, 2, "cgroup v2", NULL);

	/* Quota readable but no affinity information. */
	fixture();
	put("proc/self/cgroup", "0::/svc\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu\n");
	put("sys/fs/cgroup/svc/cpu.max", "250000 100000\n");
	usable("v2 2.5 CPUs, no status file", 0, 3, "cgroup v2", NULL);

	/* Only the affinity. */
	fixture();
	status_file("0-3");
	usable("only Cpus_allowed_list 0-3", 0, 4, "affinity", NULL);

	/* Nothing readable: the fallback. */
	fixture();
	usable("nothing readable", -ENOENT, 3, "fallback", NULL);
	fixture();
	status_file("garbage");
	put("proc/self/cgroup", "garbage\n");
	usable("garbage everywhere", -ENOENT, 3, "fallback", NULL);

	/* Roots that do not exist at all. */
	setenv("WPOOL_SYSFS_ROOT", "/nonexistent/wpool-unit/sys", 1);
	setenv("WPOOL_PROCFS_ROOT", "/nonexistent/wpool-unit/proc", 1);
	usable("missing roots", -ENOENT, 3, "fallback", NULL);

	/* The real machine: at least one CPU, from somewhere. */
	unsetenv("WPOOL_SYSFS_ROOT");
	unsetenv("WPOOL_PROCFS_ROOT");
	{
		struct cpu_info ci;
		int	 r = cpu_usable(&ci, 3);

		ok(r == 0 && ci.n >= 1 && ci.n <= sysconf(_SC_NPROCESSORS_CONF),
		    "this machine: %d CPUs (%s)", ci.n, ci.source);
	}
}

/* ---- --memory-per-worker: the memory bound of -n auto ---- */

static void
test_memory_parsers(void)
{
	uint64_t v = 7;

	is_int(cpu_parse_memory_limit("536870912\n", &v), 0, "memory.max "
	    "536870912 parses");
	ok(v == 536870912, "= 512 MiB");
	v = 7;
	is_int(cpu_parse_memory_limit("max\n", &v), -ENOENT, "memory.max "
	    "'max': no limit");
	is_int(cpu_parse_memory_limit("9223372036854771712\n", &v), -ENOENT,
	    "v1's 'no limit' (the largest page multiple): none");
	is_int(cpu_parse_memory_limit("", &v), -EINVAL, "empty: -EINVAL");
	is_int(cpu_parse_memory_limit("-1\n", &v), -EINVAL, "-1: -EINVAL");
	is_int(cpu_parse_memory_limit("12k\n", &v), -EINVAL, "12k: -EINVAL");
	is_int(cpu_parse_memory_limit("99999999999999999999999\n", &v),
	    -EINVAL, "overflow: -EINVAL");
	ok(v == 7, "refusals leave the output");
	is_int(cpu_parse_meminfo("MemTotal:       16318412 kB\nMemFree: 1 kB"
	    "\n", &v), 0, "meminfo parses");
	ok(v == 16318412ULL * 1024, "MemTotal in bytes");
	is_int(cpu_parse_meminfo("XMemTotal: 5 kB\n", &v), -EINVAL,
	    "MemTotal only at a line's start");
	is_int(cpu_parse_meminfo("MemFree: 5 kB\n", &v), -EINVAL,
	    "no MemTotal: -EINVAL");
}

static void
bound(const char *what, uint64_t budget, int want_r, int want_mem,
    int cpus, int want_auto, const char *in_source)
{
	struct cpu_info ci;
	char	 text[512];
	int	 r;

	memset(&ci, 0x5a, sizeof(ci));
	ci.n = cpus;
	snprintf(ci.source, sizeof(ci.source), "test CPUs");
	r = cpu_memory_bound(&ci, budget);
	is_int(r, want_r, "%s: cpu_memory_bound returns %d", what, want_r);
	is_int(ci.mem_n, want_mem, "%s: memory allows %d", what, want_mem);
	is_int(cpu_auto_workers(&ci), want_auto, "%s: -n auto = %d", what,
	    want_auto);
	cpu_auto_text(&ci, text, sizeof(text));
	ok(strstr(text, in_source) != NULL, "%s: '%s' says '%s'", what, text,
	    in_source);
}

static void
test_memory_bound(void)
{
	/* v2: the tightest of the cgroup and its ancestors. */
	fixture();
	put("proc/self/cgroup", "0::/kubepods/pod1/app\n");
	put("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
	put("sys/fs/cgroup/kubepods/pod1/app/memory.max", "max\n");
	put("sys/fs/cgroup/kubepods/pod1/memory.max", "1073741824\n");
	put("sys/fs/cgroup/kubepods/memory.max", "4294967296\n");
	bound("v2 1G pod, 256M a worker, 8 CPUs", 256 << 20, 0, 4, 8, 4,
	    "bound by memory: cgroup v2 memory.max /kubepods/pod1 = 1.0G");
	bound("v2 1G pod, 256M a worker, 2 CPUs", 256 << 20, 0, 4, 2, 2,
	    "bound by CPUs: 2 CPUs");
	bound("v2 1G pod, 3G a worker", 3ULL << 30, 0, 1, 8, 1,
	    "= 0, but 1 at least");

	/* A container's own cgroup at the mount's root (no cgroupns). */
	fixture();
	put("proc/self/cgroup", "0::/docker/abc\n");
	put("sys/fs/cgroup/cgroup.controllers", "memory\n");
	put("sys/fs/cgroup/memory.max", "536870912\n");
	bound("v2 at the root", 100 << 20, 0, 5, 8, 5, "memory.max / = 512M");

	/* v1: the memory controller's own path. */
	fixture();
	put("proc/self/cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/x\n"
	    "0::/\n");
	put("sys/fs/cgroup/memory/memory.limit_in_bytes",
	    "9223372036854771712\n");
	put("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
	    "2147483648\n");
	bound("v1 2G, 512M a worker", 512 << 20, 0, 4, 16, 4,
	    "cgroup v1 memory.limit_in_bytes /docker/abc = 2.0G");

	/* No cgroup limit: the machine's memory. */
	fixture();
	put("proc/self/cgroup", "0::/\n");
	put("sys/fs/cgroup/cgroup.controllers", "memory\n");
	put("sys/fs/cgroup/memory.max", "max\n");
	put("proc/meminfo", "MemTotal:        2097152 kB\n");
	bound("no limit, 2G of RAM, 1G a worker", 1 << 30, 0, 2, 4, 2,
	    "MemTotal (no cgroup memory limit)");

	/* Nothing to read: no bound, the CPUs alone. */
	fixture();
	bound("nothing readable", 1 << 20, -ENOENT, 0, 4, 4, "4 CPUs");
	bound("no budget", 0, -ENOENT, 0, 4, 4, "test CPUs");
	unsetenv("WPOOL_SYSFS_ROOT");
	unsetenv("WPOOL_PROCFS_ROOT");
}

int
main(void)
{
	test_cgroup2_max();
	test_cgroup1_quota();
	test_self_cgroup();
	test_cpulist();
	if (mkdtemp(base) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return done_testing();
	}
	test_usable();
	test_memory_parsers();
	test_memory_bound();
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
