/*
 * test_procfs.c: /proc/PID/stat and statm parsing (commands with spaces
 * and parentheses), and procfs_sample on this process and on a fixture
 * tree under WPOOL_PROCFS_ROOT.
 */
#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

/* A real line from a 6.x kernel, with a command that fights back. */
static const char weird_stat[] =
    "1234 (my (weird) cmd) S 1 1234 1234 0 -1 4194560 2417 0 3 0 250 150 "
    "7 2 20 0 1 0 12345 10240000 500 18446744073709551615 94371382042624 "
    "94371382056785 140730958441264 0 0 0 0 4096 16386 1 0 0 17 1 0 0 0 0 "
    "0 94371382068208 94371382069824 94371400015872 140730958447234 "
    "140730958447256 140730958447256 140730958450667 0\n";

static void
test_parse_stat(void)
{
	struct proc_sample s;
	int	 r;

	memset(&s, 0, sizeof(s));
	r = procfs_parse_stat(weird_stat, 100, &s);
	is_int(r, 0, "a stat line with '(my (weird) cmd)' parses");
	is_int(s.ppid, 1, "ppid 1");
	is_dbl(s.cpu_seconds, 4.0, "(250 + 150) / 100 = 4.0 s");
	r = procfs_parse_stat(weird_stat, 250, &s);
	is_int(r, 0, "hz 250");
	is_dbl(s.cpu_seconds, 1.6, "(250 + 150) / 250 = 1.6 s");

	/* ") S 99 " inside the command must not fool the parser. */
	r = procfs_parse_stat("77 (evil) S 99 1 1 0 -1 0 0 0 0 0 1 1 0) R 42 "
	    "77 77 0 -1 4194560 0 0 0 0 30 20 0 0 20 0 1 0 5 0 0\n", 100, &s);
	is_int(r, 0, "a command holding ') S 99 ' parses");
	is_int(s.ppid, 42, "ppid from after the last ')'");
	is_dbl(s.cpu_seconds, 0.5, "cpu from after the last ')'");

	r = procfs_parse_stat("5 (a b c) R 3 5 5 0 -1 0 0 0 0 0 0 0 0 0", 100,
	    &s);
	is_int(r, 0, "spaces in the command, no trailing fields");
	is_int(s.ppid, 3, "ppid 3");
	is_dbl(s.cpu_seconds, 0, "no cpu yet");

	r = procfs_parse_stat("9 () Z 1 0 0 0 -1 0 0 0 0 0 4294967296 0", 1, &s);
	is_int(r, 0, "empty command, zombie, large utime");
	is_dbl(s.cpu_seconds, 4294967296.0, "utime beyond 32 bits");

	/* Refusals leave the output. */
	s.ppid = 555;
	s.cpu_seconds = 5.5;
	s.rss_bytes = 5;
	is_int(procfs_parse_stat("", 100, &s), -EINVAL, "empty: -EINVAL");
	is_int(procfs_parse_stat("1234 (noclose S 1 2 3", 100, &s), -EINVAL,
	    "no ')': -EINVAL");
	is_int(procfs_parse_stat("1234 (x) S 1 2 3", 100, &s), -EINVAL,
	    "truncated: -EINVAL");
	is_int(procfs_parse_stat("1234 (x) S abc 1 1 0 -1 0 0 0 0 0 1 1", 100,
	    &s), -EINVAL, "a field that is not a number: -EINVAL");
	is_int(procfs_parse_stat(weird_stat, 0, &s), -EINVAL, "hz 0: -EINVAL");
	is_int(procfs_parse_stat(weird_stat, -1, &s), -EINVAL,
	    "hz -1: -EINVAL");
	ok(s.ppid == 555 && s.cpu_seconds == 5.5 && s.rss_bytes == 5,
	    "refusals leave the output");
}

static void
test_parse_statm(void)
{
	uint64_t rss = 7;

	is_int(procfs_parse_statm("2000 300 100 10 0 200 0\n", 4096, &rss), 0,
	    "statm parses");
	ok(rss == 300ULL * 4096, "rss = 300 pages * 4096");
	is_int(procfs_parse_statm("1 0 0 0 0 0 0", 4096, &rss), 0,
	    "statm with 0 resident");
	ok(rss == 0, "rss 0");
	is_int(procfs_parse_statm("9999999999 8589934592 0 0 0 0 0", 65536,
	    &rss), 0, "statm with huge numbers");
	ok(rss == 8589934592ULL * 65536, "no 32-bit overflow");

	rss = 7;
	is_int(procfs_parse_statm("", 4096, &rss), -EINVAL, "empty: -EINVAL");
	is_int(procfs_parse_statm("2000", 4096, &rss), -EINVAL,
	    "one field: -EINVAL");
	is_int(procfs_parse_statm("abc def", 4096, &rss), -EINVAL,
	    "garbage: -EINVAL");
	is_int(procfs_parse_statm("2000 300", 0, &rss), -EINVAL,
	    "page size 0: -EINVAL");
	ok(rss == 7, "refusals leave the output");
}

static void
test_sample_self(void)
{
	struct proc_sample s;
	volatile unsigned long spin = 0;
	int	 r;

	unsetenv("WPOOL_PROCFS_ROOT");
	while (spin < 20000000UL)	/* some CPU time to see */
		spin++;
	memset(&s, 0, sizeof(s));
	r = procfs_sample(getpid(), &s);
	is_int(r, 0, "procfs_sample(getpid()) succeeds");
	ok(s.rss_bytes > 0, "rss %llu > 0", (unsigned long long)s.rss_bytes);
	ok(s.rss_bytes % (uint64_t)sysconf(_SC_PAGESIZE) == 0,
	    "rss is whole pages");
	ok(s.rss_bytes < (16ULL << 30), "rss is plausible");
	is_int(s.ppid, getppid(), "ppid is getppid()");
	ok(s.cpu_seconds >= 0 && s.cpu_seconds < 3600, "cpu_seconds %.2f is "
	    "plausible", s.cpu_seconds);
	is_int(procfs_ppid(getpid()), getppid(), "procfs_ppid(getpid())");
	ok(s.mem_procs == 1 && s.mem_pss && s.mem_bytes > 0 &&
	    s.mem_bytes <= s.rss_bytes, "this process alone: its PSS %llu, "
	    "at most its RSS", (unsigned long long)s.mem_bytes);

	s.ppid = 555;
	r = procfs_sample(INT_MAX, &s);
	is_int(r, -ENOENT, "a pid that does not exist: -ENOENT");
	is_int(s.ppid, 555, "and the output is left");
	is_int(procfs_ppid(INT_MAX), -1, "procfs_ppid of no process: -1");
}

static char base[] = "/tmp/wpool-unit-procfs.XXXXXX";

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
put(const char *rel, const char *contents)
{
	char	 path[PATH_MAX];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", base, rel);
	if ((f = fopen(path, "w")) == NULL)
		return;
	fputs(contents, f);
	fclose(f);
}

static void
test_sample_fixture(void)
{
	struct proc_sample s;
	char	 p[PATH_MAX];
	long	 hz = sysconf(_SC_CLK_TCK);
	long	 pg = sysconf(_SC_PAGESIZE);
	int	 r;

	if (mkdtemp(base) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(p, sizeof(p), "%s/4242", base);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/4243", base);
	mkdir(p, 0755);
	put("4242/stat", weird_stat);
	put("4242/statm", "5000 1000 200 10 0 300 0\n");
	put("4243/stat", "4243 (x) S 1 2 3\n");		/* truncated */
	put("4243/statm", "5000 1000 200 10 0 300 0\n");
	setenv("WPOOL_PROCFS_ROOT", base, 1);

	memset(&s, 0, sizeof(s));
	r = procfs_sample(4242, &s);
	is_int(r, 0, "procfs_sample reads $WPOOL_PROCFS_ROOT/PID");
	is_int(s.ppid, 1, "fixture ppid");
	is_dbl(s.cpu_seconds, 400.0 / (double)hz, "fixture cpu seconds");
	/* RSS comes from stat's field 24 (500 pages here), not statm. */
	ok(s.rss_bytes == 500ULL * (uint64_t)pg, "fixture rss = stat's 500 pages");
	is_int(procfs_ppid(4242), 1, "procfs_ppid reads the fixture");

	s.ppid = 555;
	is_int(procfs_sample(4243, &s), -EINVAL, "a truncated stat: -EINVAL");
	is_int(s.ppid, 555, "and the output is left");
	is_int(procfs_sample(4244, &s), -ENOENT, "no such fixture pid: "
	    "-ENOENT");
	unsetenv("WPOOL_PROCFS_ROOT");
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_parse_rollup(void)
{
	uint64_t pss = 7;

	is_int(procfs_parse_rollup("55ec8b2d5000-7fff3eba6000 ---p 00000000 "
	    "00:00 0   [rollup]\nRss:   1768 kB\nPss:    184 kB\n"
	    "Pss_Dirty:   116 kB\n", &pss), 0, "smaps_rollup parses");
	ok(pss == 184 * 1024, "Pss = 184 kB, not Rss nor Pss_Dirty");
	pss = 7;
	is_int(procfs_parse_rollup("Pss_Anon: 3 kB\nRss: 5 kB\n", &pss),
	    -EINVAL, "no Pss line: -EINVAL");
	is_int(procfs_parse_rollup("Pss: lots\n", &pss), -EINVAL,
	    "Pss without a number: -EINVAL");
	is_int(procfs_parse_rollup("", &pss), -EINVAL, "empty: -EINVAL");
	ok(pss == 7, "refusals leave the output");
}

/* A stat line for pid in state st, with rss pages resident. */
static void
put_stat(int pid, char st, int ppid, int rss)
{
	char	 rel[64], buf[512];

	snprintf(rel, sizeof(rel), "%d", pid);
	snprintf(buf, sizeof(buf), "%s/%s", base, rel);
	mkdir(buf, 0755);
	snprintf(buf, sizeof(buf), "%d (w) %c %d %d %d 0 -1 0 0 0 0 0 10 10 0 "
	    "0 20 0 1 0 100 1000 %d\n", pid, st, ppid, pid, pid, rss);
	snprintf(rel, sizeof(rel), "%d/stat", pid);
	put(rel, buf);
}

static void
put_children(int pid, int tid, const char *kids)
{
	char	 rel[96], p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%d/task", base, pid);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%d/task/%d", base, pid, tid);
	mkdir(p, 0755);
	snprintf(rel, sizeof(rel), "%d/task/%d/children", pid, tid);
	put(rel, kids);
}

static void
put_rollup(int pid, int pss_kb)
{
	char	 rel[64], buf[128];

	snprintf(rel, sizeof(rel), "%d/smaps_rollup", pid);
	snprintf(buf, sizeof(buf), "0-1 ---p 0 00:00 0 [rollup]\nRss: 1 kB\n"
	    "Pss: %d kB\n", pss_kb);
	put(rel, buf);
}

/*
 * A worker's tree: 100 (the worker) forked 101 from its main thread and
 * 102 from another; 101 forked 103; 104 is a zombie.  The tree's memory
 * is their PSS, or their RSS when one PSS cannot be read.
 */
static void
test_sample_tree(void)
{
	struct proc_sample s;
	long	 pg = sysconf(_SC_PAGESIZE);
	char	 p[PATH_MAX];

	snprintf(base, sizeof(base), "/tmp/wpool-unit-procfs.XXXXXX");
	if (mkdtemp(base) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	put_stat(100, 'S', 1, 10);
	put_stat(101, 'S', 100, 20);
	put_stat(102, 'S', 100, 30);
	put_stat(103, 'R', 101, 40);
	put_stat(104, 'Z', 100, 0);
	put_children(100, 100, "101 104 ");
	put_children(100, 107, "102 ");
	put_children(101, 101, "103 ");
	put_rollup(100, 1000);
	put_rollup(101, 2000);
	put_rollup(102, 3000);
	put_rollup(103, 4000);
	setenv("WPOOL_PROCFS_ROOT", base, 1);

	memset(&s, 0, sizeof(s));
	is_int(procfs_sample(100, &s), 0, "tree: sampled");
	ok(s.rss_bytes == 10ULL * (uint64_t)pg, "tree: rss_bytes is the "
	    "worker's own");
	is_int(s.mem_procs, 4, "tree: 4 processes (every thread's children, "
	    "grandchildren, no zombie)");
	ok(s.mem_pss, "tree: PSS readable for all");
	ok(s.mem_bytes == 10000ULL * 1024, "tree: mem_bytes = the PSS sum "
	    "(%llu)", (unsigned long long)s.mem_bytes);

	/* One PSS unreadable (a directory where the file was): RSS for all. */
	snprintf(p, sizeof(p), "%s/103/smaps_rollup", base);
	remove(p);
	mkdir(p, 0755);
	memset(&s, 0, sizeof(s));
	is_int(procfs_sample(100, &s), 0, "tree, one PSS unreadable: sampled");
	ok(!s.mem_pss, "tree: kind falls back to RSS");
	ok(s.mem_bytes == 100ULL * (uint64_t)pg, "tree: mem_bytes = the RSS "
	    "sum, 100 pages (%llu)", (unsigned long long)s.mem_bytes);

	/* A child gone between the list and its stat: not counted. */
	snprintf(p, sizeof(p), "%s/102/stat", base);
	remove(p);
	memset(&s, 0, sizeof(s));
	is_int(procfs_sample(100, &s), 0, "tree, a child gone: sampled");
	is_int(s.mem_procs, 3, "tree: 3 processes");

	/* No children files at all: the worker alone. */
	memset(&s, 0, sizeof(s));
	is_int(procfs_sample(101 + 2, &s), 0, "a leaf: sampled");
	is_int(s.mem_procs, 1, "a leaf: itself");
	unsetenv("WPOOL_PROCFS_ROOT");
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	test_parse_stat();
	test_parse_statm();
	test_parse_rollup();
	test_sample_self();
	test_sample_fixture();
	test_sample_tree();
	return done_testing();
}
