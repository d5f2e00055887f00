/*
 * spawn.c: everything between fork and exec.  The child places the
 * listeners at fds 3.., drops privileges, execs, and on failure reports
 * the stage and errno through a close-on-exec pipe whose EOF means the
 * exec succeeded.  Each child leads a process group of its own.  Owns
 * nothing after spawn_child returns.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

const char *
spawn_stage_name(int stage)
{
	switch (stage) {
	case SPAWN_STAGE_FDS:
		return "set up file descriptors";
	case SPAWN_STAGE_USER:
		return "switch user";
	case SPAWN_STAGE_CHDIR:
		return "change directory";
	case SPAWN_STAGE_EXEC:
		return "run";
	case SPAWN_STAGE_CPU:
		return "pin to its CPU";
	}
	return "start";
}

/* The shell's convention: 127 not found, 126 found but not runnable. */
int
spawn_exit_status(const struct spawn_error *e)
{
	if (e->stage != SPAWN_STAGE_EXEC)
		return 1;
	return e->err == ENOENT || e->err == ENOTDIR ? EXIT_NOTFOUND :
	    EXIT_NOEXEC;
}

static void __attribute__((noreturn))
child_fail(int fd, int stage)
{
	struct spawn_error e = { stage, errno };
	ssize_t	 n;

	/* Nobody may be reading (inetd): fail with our status, not PIPE. */
	signal(SIGPIPE, SIG_IGN);
	do
		n = write(fd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	_exit(stage == SPAWN_STAGE_EXEC ? spawn_exit_status(&e) : 1);
}

/*
 * Puts stdin/stdout/stderr and fds[i] at 0, 1, 2 and 3 + i.  Sources may
 * sit where targets go, so every source is first copied above them all.
 */
static int
child_place_fds(const struct spawn_req *r, int lowest)
{
	int	 src[WPOOL_MAX_LISTENERS + 3], tmp[WPOOL_MAX_LISTENERS + 3];
	int	 i, n = 3 + r->nfds;

	if (r->stdin_fd >= 0)
		src[0] = r->stdin_fd;
	else if ((src[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	src[1] = r->stdout_fd;
	src[2] = r->stderr_fd;
	for (i = 0; i < r->nfds; i++)
		src[3 + i] = r->fds[i];
	for (i = 0; i < n; i++)
		if (src[i] >= 0 &&
		    (tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, lowest)) < 0)
			return -1;
	for (i = 0; i < n; i++)
		if (src[i] >= 0 && dup2(tmp[i], i) < 0)
			return -1;
	for (i = 0; i < n; i++)
		set_cloexec(i, false);
	return 0;
}

/*
 * Closes every fd from 3 up but the n in keep (which it sorts), so that
 * arranging the child's fds never needs numbers above the master's: a
 * master near its open-files limit can still start workers.
 */
static void
child_close_except(int *keep, int n)
{
	int	 i, j, t, from = 3;

	for (i = 1; i < n; i++)
		for (j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		if (keep[i] < from)
			continue;
		if (keep[i] > from)
			close_range((unsigned)from, (unsigned)keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	closefrom(from);
}

/*
 * SIG_DFL for sig.  glibc's sigaction refuses the two real-time signals
 * it keeps for itself (32, 33), yet a parent may have left them ignored
 * and exec keeps that: the raw system call resets them too.
 */
static void
child_default_signal(int sig)
{
	struct {
		void	*handler;
		unsigned long flags;
		void	*restorer;
		uint64_t mask;
	} ksa = { NULL, 0, NULL, 0 };	/* SIG_DFL is 0 */

	if (signal(sig, SIG_DFL) == SIG_ERR)
		syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
}

/*
 * A worker outlives a master killed with KILL only briefly: the kernel
 * sends it TERM when the master dies.  Set last, after the credentials
 * change, which clears it (a -u worker would otherwise keep serving), and
 * then the master must still be there: had it died before, the signal
 * would never come.  TERM rather than KILL: a server with processes of
 * its own (nginx, gunicorn) stops them on TERM, where KILL would leave
 * them orphaned and serving.  man/wpool.1 says what this cannot cover.
 */
static void
child_parent_death(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
}

/*
 * --cpu-affinity: the worker's whole tree runs on one CPU, set before
 * exec so that nothing of it ever runs elsewhere and a server that
 * counts its CPUs (nginx auto, Go's GOMAXPROCS) sees one.  Before the
 * credentials change, though any user may narrow its own mask.
 */
static int
child_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE) {
		errno = EINVAL;
		return -1;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/*
 * Forks and execs.  Returns the pid, with *status_fd the read end of the
 * exec-status pipe (close-on-exec), or -errno when fork itself fails.
 */
pid_t
spawn_child(const struct spawn_req *r, int *status_fd)
{
	sigset_t empty;
	int	 p[2], sig, e, i;
	pid_t	 pid, parent = getpid();

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		/* Also here, so that no signal to the group can miss it. */
		setpgid(pid, pid);
		close(p[1]);
		*status_fd = p[0];
		return pid;
	}

	/*
	 * Its own process group, whose id is its pid: the master signals the
	 * worker's whole tree (sh -c 'a & b', nginx's master and workers)
	 * with kill(-pid), and a terminal's Ctrl-C reaches the master only,
	 * which stops the workers its own way.
	 */
	setpgid(0, 0);

	/* Child: a clean signal state, as if started from a shell. */
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			child_default_signal(sig);
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);

	/*
	 * Only what the child keeps stays open; then the status pipe and a
	 * copy of each kept fd go just above the fds the worker gets, and
	 * the copies move down into place.
	 */
	{
		int	 keep[WPOOL_MAX_LISTENERS + 4], nkeep = 0;
		int	 top = 3 + r->nfds, hi;

		keep[nkeep++] = p[1];
		keep[nkeep++] = r->stdin_fd;
		keep[nkeep++] = r->stdout_fd;
		keep[nkeep++] = r->stderr_fd;
		for (i = 0; i < r->nfds; i++)
			keep[nkeep++] = r->fds[i];
		child_close_except(keep, nkeep);
		if ((hi = fcntl(p[1], F_DUPFD_CLOEXEC, top)) < 0)
			child_fail(p[1], SPAWN_STAGE_FDS);
		p[1] = hi;
		if (child_place_fds(r, top) < 0)
			child_fail(p[1], SPAWN_STAGE_FDS);
		if (hi > top)
			close_range((unsigned)top, (unsigned)hi - 1, 0);
		closefrom(hi + 1);
	}
	if (r->nofile != NULL)
		setrlimit(RLIMIT_NOFILE, r->nofile);
	if (r->pin_cpu && child_pin(r->cpu) < 0)
		child_fail(p[1], SPAWN_STAGE_CPU);
	if (r->chdir != NULL && chdir(r->chdir) < 0)
		child_fail(p[1], SPAWN_STAGE_CHDIR);
	if (r->set_user) {
		if (setgroups((size_t)r->ngroups, r->groups) < 0 ||
		    setgid(r->gid) < 0 || setuid(r->uid) < 0)
			child_fail(p[1], SPAWN_STAGE_USER);
	}
	child_parent_death(parent);
	for (i = 0; i < 2; i++)
		if (r->pid_slots[i] != NULL)
			snprintf(strchr(r->pid_slots[i], '=') + 1, 16, "%d",
			    (int)getpid());
	execvpe(r->argv[0], r->argv, r->envp);
	child_fail(p[1], SPAWN_STAGE_EXEC);
}

/*
 * Reads the exec-status pipe: 0 when exec succeeded (EOF), 1 with *e
 * filled when the child reported a failure, -EAGAIN when nothing yet.
 */
int
spawn_read_status(int fd, struct spawn_error *e)
{
	ssize_t	 n;

	do
		n = read(fd, e, sizeof(*e));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(*e)) {
		e->stage = SPAWN_STAGE_EXEC;
		e->err = EIO;
	}
	return 1;
}

/*
 * Where execvp would find cmd (run from dir): 0 with the path in buf, or
 * -ENOENT or -EACCES.
 */
static int
lookup_path(const char *cmd, const char *dir, char *buf, size_t len)
{
	const char *path, *p, *colon;
	int	 r = -ENOENT;

	if (strchr(cmd, '/') != NULL) {
		if (cmd[0] != '/' && dir != NULL)
			snprintf(buf, len, "%s/%s", dir, cmd);
		else
			strlcpy(buf, cmd, len);
		if (access(buf, X_OK) == 0)
			return 0;
		return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -EACCES;
	}
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; p = colon + 1) {
		colon = strchr(p, ':');
		snprintf(buf, len, "%.*s/%s", colon ? (int)(colon - p) :
		    (int)strlen(p), p, cmd);
		if (access(buf, X_OK) == 0)
			return 0;
		if (errno == EACCES)
			r = -EACCES;
		if (colon == NULL)
			break;
	}
	return r;
}

/*
 * Whether execvp would find cmd: 0, -ENOENT or -EACCES.  inetd mode asks
 * at start-up, since it runs nothing until a client connects.
 */
int
spawn_lookup(const char *cmd, const char *dir)
{
	char	 buf[4096];

	return lookup_path(cmd, dir, buf, sizeof(buf));
}

/*
 * The interpreter a script at path names on its "#!" line, into interp
 * (relative to dir, as the kernel takes it from the worker's directory):
 * 0, or -ENOENT when path is no script.
 */
static int
script_interpreter(const char *path, const char *dir, char *interp,
    size_t len)
{
	char	 head[256], *s, *e;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) < 0)
		return -ENOENT;
	n = read(fd, head, sizeof(head) - 1);
	close(fd);
	if (n < 2 || head[0] != '#' || head[1] != '!')
		return -ENOENT;
	head[n] = '\0';
	for (s = head + 2; *s == ' ' || *s == '\t'; s++)
		;
	for (e = s; *e != '\0' && *e != ' ' && *e != '\t' && *e != '\n';
	    e++)
		;
	*e = '\0';
	if (*s == '\0')
		return -ENOENT;
	if (s[0] != '/' && dir != NULL)
		snprintf(interp, len, "%s/%s", dir, s);
	else
		strlcpy(interp, s, len);
	return 0;
}

/* Where execvp would find cmd: 0 with the path in buf, or -errno. */
int
spawn_path(const char *cmd, const char *dir, char *buf, size_t len)
{
	return lookup_path(cmd, dir, buf, len);
}

/*
 * What a run finds out before it starts anything about running cmd: 0,
 * or -ENOENT (not found) or -EACCES (not executable) with the error in
 * err.  *interp tells a script whose "#!" interpreter is the one missing
 * or not executable, which execve reports as about the script.
 */
int
spawn_check(const char *cmd, const char *dir, bool *interp, char *err,
    size_t len)
{
	char	 path[4096], ipath[4096];
	int	 r;

	*interp = false;
	if ((r = lookup_path(cmd, dir, path, sizeof(path))) < 0) {
		snprintf(err, len, "cannot run '%s': %s", cmd, strerror(-r));
		return r;
	}
	if (script_interpreter(path, dir, ipath, sizeof(ipath)) < 0 ||
	    access(ipath, X_OK) == 0)
		return 0;
	*interp = true;
	r = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -EACCES;
	snprintf(err, len, "interpreter %s of script %s %s", ipath, path,
	    r == -ENOENT ? "not found" : "is not executable");
	return r;
}
