/*
 * readyprobe.c: is a worker, or a process of its tree, waiting for
 * connections on one of the pool's listeners?  Seen from outside, with no
 * change to the server: a thread blocked in accept() on the listener, or
 * in poll()/select() with the listener in its read set, or an epoll set
 * that holds the listener (whether a thread waits in it right now or not:
 * an event loop that registered the listener is serving it).  Reads /proc
 * and, for poll and select, the sets in the process's memory; owns nothing
 * beyond a call.  The parsers take buffers and are unit-tested.
 */
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define PROBE_MAX_PROCS	64	/* processes of one tree looked at */
#define PROBE_MAX_TASKS	256	/* threads of one process */
#define PROBE_MAX_POLL	4096	/* pollfd entries read */
#define PROBE_MAX_FD	65536	/* highest fd number looked at */

/*
 * /proc/PID/syscall: "NR ARG1 ... ARG6 SP PC" while the task is blocked
 * in a system call, "running" while it runs, "-1 SP PC" while it is
 * blocked elsewhere.  Returns 1 and fills nr and args for the first case,
 * 0 for the others, -EINVAL for anything else.
 */
int
readyprobe_parse_syscall(const char *buf, long *nr, unsigned long args[6])
{
	char	*end;
	long	 n;
	int	 i;

	if (strncmp(buf, "running", 7) == 0)
		return 0;
	errno = 0;
	n = strtol(buf, &end, 10);
	if (end == buf || errno != 0)
		return -EINVAL;
	if (n < 0)
		return 0;
	for (i = 0; i < 6; i++) {
		const char *p = end;

		while (*p == ' ')
			p++;
		if (strncmp(p, "0x", 2) != 0)
			return -EINVAL;
		errno = 0;
		args[i] = strtoul(p + 2, &end, 16);
		if (end == p + 2 || errno != 0)
			return -EINVAL;
	}
	*nr = n;
	return 1;
}

/* "socket:[12345]", as readlink(/proc/PID/fd/N) gives it. */
int
readyprobe_socket_inode(const char *link, uint64_t *ino)
{
	unsigned long long v;
	char	 tail;

	if (sscanf(link, "socket:[%llu%c", &v, &tail) != 2 || tail != ']')
		return -EINVAL;
	*ino = v;
	return 0;
}

static bool
ino_in(uint64_t ino, const uint64_t *set, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (set[i] == ino)
			return true;
	return false;
}

/*
 * /proc/PID/fdinfo/EPFD of an epoll fd: a "tfd: N events: E data: D
 * pos:P ino:HEX sdev:S" line per watched file.  1 when one of them is a
 * listener (its inode is in the set) watched for input, 0 when none.
 */
int
readyprobe_parse_epoll(const char *buf, const uint64_t *inos, size_t n)
{
	const char *p = buf;

	while ((p = strstr(p, "tfd:")) != NULL) {
		unsigned long long ino;
		unsigned int ev;
		const char *q;

		p += 4;
		if ((q = strstr(p, "events:")) == NULL ||
		    sscanf(q + 7, "%x", &ev) != 1)
			continue;
		if ((q = strstr(p, "ino:")) == NULL ||
		    sscanf(q + 4, "%llx", &ino) != 1)
			continue;
		if ((ev & POLLIN) && ino_in(ino, inos, n))
			return 1;
	}
	return 0;
}

static int
proc_path(char *buf, size_t len, pid_t pid, const char *what)
{
	int	 r = snprintf(buf, len, "/proc/%d/%s", (int)pid, what);

	return r < 0 || (size_t)r >= len ? -ENAMETOOLONG : 0;
}

/* The listener inode behind PID's fd, or 0. */
static uint64_t
fd_inode(pid_t pid, long fd)
{
	char	 path[64], link[64];
	uint64_t ino;
	ssize_t	 n;

	if (fd < 0 || fd >= PROBE_MAX_FD)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/%ld", (int)pid, fd);
	if ((n = readlink(path, link, sizeof(link) - 1)) < 0)
		return 0;
	link[n] = '\0';
	return readyprobe_socket_inode(link, &ino) == 0 ? ino : 0;
}

static bool
fd_is_listener(pid_t pid, long fd, const uint64_t *inos, size_t n)
{
	uint64_t ino = fd_inode(pid, fd);

	return ino != 0 && ino_in(ino, inos, n);
}

static int
read_mem(pid_t pid, unsigned long addr, void *buf, size_t len)
{
	struct iovec local = { buf, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) ==
	    (ssize_t)len ? 0 : -EFAULT;
}

static bool
poll_waits(pid_t pid, unsigned long addr, unsigned long nfds,
    const uint64_t *inos, size_t n)
{
	struct pollfd *fds;
	unsigned long i;
	bool	 found = false;

	if (nfds == 0 || nfds > PROBE_MAX_POLL ||
	    (fds = calloc(nfds, sizeof(*fds))) == NULL)
		return false;
	if (read_mem(pid, addr, fds, nfds * sizeof(*fds)) == 0)
		for (i = 0; i < nfds && !found; i++)
			found = (fds[i].events & POLLIN) &&
			    fd_is_listener(pid, fds[i].fd, inos, n);
	free(fds);
	return found;
}

static bool
select_waits(pid_t pid, unsigned long nfds, unsigned long addr,
    const uint64_t *inos, size_t n)
{
	unsigned char set[PROBE_MAX_FD / 8];
	unsigned long fd;

	if (addr == 0 || nfds == 0 || nfds > PROBE_MAX_FD)
		return false;
	if (read_mem(pid, addr, set, (nfds + 7) / 8) < 0)
		return false;
	for (fd = 0; fd < nfds; fd++)
		if ((set[fd / 8] & (1u << (fd % 8))) &&
		    fd_is_listener(pid, (long)fd, inos, n))
			return true;
	return false;
}

/* What one thread's system call says: 1 waiting on a listener, 0 not. */
static int
syscall_waits(pid_t pid, long nr, const unsigned long *a,
    const uint64_t *inos, size_t n)
{
	switch (nr) {
#ifdef SYS_accept
	case SYS_accept:
#endif
	case SYS_accept4:
		return fd_is_listener(pid, (long)a[0], inos, n);
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_recvmmsg:
	case SYS_read:
		/* A datagram server blocked on its socket. */
		return fd_is_listener(pid, (long)a[0], inos, n);
#ifdef SYS_poll
	case SYS_poll:
#endif
	case SYS_ppoll:
		return poll_waits(pid, a[0], a[1], inos, n);
#ifdef SYS_select
	case SYS_select:
#endif
	case SYS_pselect6:
		return select_waits(pid, a[0], a[1], inos, n);
	default:
		return 0;
	}
}

/*
 * The threads of PID: 1 when one waits on a listener, 0 when none does,
 * -EACCES (or another -errno) when their system calls cannot be seen.
 */
static int
tasks_wait(pid_t pid, const uint64_t *inos, size_t n)
{
	char	 path[96], buf[256];
	struct dirent *de;
	unsigned long args[6];
	DIR	*d;
	long	 nr;
	int	 r, seen = 0, found = 0, err = 0;

	if (proc_path(path, sizeof(path), pid, "task") < 0 ||
	    (d = opendir(path)) == NULL)
		return -errno;
	while (!found && seen < PROBE_MAX_TASKS && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		seen++;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall",
		    (int)pid, de->d_name);
		if ((r = read_small_file(path, buf, sizeof(buf))) < 0) {
			err = r;
			continue;
		}
		if (readyprobe_parse_syscall(buf, &nr, args) == 1)
			found = syscall_waits(pid, nr, args, inos, n);
	}
	closedir(d);
	return found ? 1 : err ? err : 0;
}

/*
 * Calls visit for each of PID's descriptors with its number (as text) and
 * what it links to, until visit returns non-zero: that value, 0 when
 * every one was visited, or -errno when they cannot be listed.
 */
static int
fds_each(pid_t pid, int (*visit)(pid_t, const char *, const char *, void *),
    void *arg)
{
	char	 path[96], link[64];
	struct dirent *de;
	DIR	*d;
	ssize_t	 len;
	int	 r = 0;

	if (proc_path(path, sizeof(path), pid, "fd") < 0 ||
	    (d = opendir(path)) == NULL)
		return -errno;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid,
		    de->d_name);
		if ((len = readlink(path, link, sizeof(link) - 1)) < 0)
			continue;
		link[len] = '\0';
		r = visit(pid, de->d_name, link, arg);
	}
	closedir(d);
	return r;
}

struct watch_arg {
	const uint64_t *inos;
	size_t	 n;
	bool	*held;
};

static int
visit_watch(pid_t pid, const char *fd, const char *link, void *arg)
{
	struct watch_arg *a = arg;
	char	 path[96], buf[8192];
	uint64_t ino;

	if (readyprobe_socket_inode(link, &ino) == 0) {
		if (ino_in(ino, a->inos, a->n))
			*a->held = true;
		return 0;
	}
	if (strcmp(link, "anon_inode:[eventpoll]") != 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, fd);
	if (read_small_file(path, buf, sizeof(buf)) < 0)
		return 0;
	return readyprobe_parse_epoll(buf, a->inos, a->n);
}

/*
 * PID's descriptors: 1 when one of its epoll sets watches a listener, 0
 * when none does; *held is set when PID holds a listener itself.
 */
static int
fds_watch(pid_t pid, const uint64_t *inos, size_t n, bool *held)
{
	struct watch_arg a = { inos, n, held };

	return fds_each(pid, visit_watch, &a);
}

/*
 * A line of /proc/PID/net/tcp or tcp6: "sl local rem st ... inode ...",
 * addresses as HEX:PORT.  Fills the local port, the state (0x0A is
 * LISTEN) and the inode; 0, or -EINVAL for the header or garbage.
 */
int
readyprobe_parse_tcp(const char *line, unsigned *port, unsigned *state,
    uint64_t *ino)
{
	char	 local[64], rem[64];
	unsigned long long v;
	unsigned int st, lp;
	const char *c;

	if (sscanf(line, " %*[0-9]: %63s %63s %x %*s %*s %*s %*u %*u %llu",
	    local, rem, &st, &v) != 4)
		return -EINVAL;
	if ((c = strrchr(local, ':')) == NULL || sscanf(c + 1, "%x", &lp) != 1)
		return -EINVAL;
	*port = lp;
	*state = st;
	*ino = v;
	return 0;
}

#define TCP_LISTEN	0x0A
#define PROBE_MAX_CONNS	1024	/* accepted connections looked for */

static void
tcp_scan(pid_t pid, const char *file, const uint64_t *inos, size_t n,
    unsigned *ports, size_t *nports, uint64_t *conns, size_t *nconns,
    bool listeners)
{
	char	 path[96], line[512];
	unsigned port, st;
	uint64_t ino;
	size_t	 i;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)pid, file);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (readyprobe_parse_tcp(line, &port, &st, &ino) < 0)
			continue;
		if (listeners) {
			if (st == TCP_LISTEN && ino_in(ino, inos, n) &&
			    *nports < WPOOL_MAX_LISTENERS)
				ports[(*nports)++] = port;
			continue;
		}
		if (st == TCP_LISTEN || ino == 0)
			continue;
		for (i = 0; i < *nports; i++)
			if (ports[i] == port && *nconns < PROBE_MAX_CONNS) {
				conns[(*nconns)++] = ino;
				break;
			}
	}
	fclose(f);
}

/*
 * The inodes of the TCP connections accepted from the listeners (inos):
 * the sockets of the listeners' ports that are not listening, as the
 * network namespace of PID lists them.  Their number, at most max.
 */
static size_t
accepted_conns(pid_t pid, const uint64_t *inos, size_t n, uint64_t *conns)
{
	unsigned ports[WPOOL_MAX_LISTENERS];
	size_t	 nports = 0, nconns = 0;

	tcp_scan(pid, "tcp", inos, n, ports, &nports, NULL, NULL, true);
	tcp_scan(pid, "tcp6", inos, n, ports, &nports, NULL, NULL, true);
	if (nports == 0)
		return 0;
	tcp_scan(pid, "tcp", inos, n, ports, &nports, conns, &nconns, false);
	tcp_scan(pid, "tcp6", inos, n, ports, &nports, conns, &nconns, false);
	return nconns;
}

struct hold_arg {
	const uint64_t *set;
	size_t	 n;
};

static int
visit_hold(pid_t pid, const char *fd, const char *link, void *arg)
{
	struct hold_arg *a = arg;
	uint64_t ino;

	(void)pid;
	(void)fd;
	return readyprobe_socket_inode(link, &ino) == 0 &&
	    ino_in(ino, a->set, a->n);
}

/* 1 when one of PID's fds is one of the sockets given, 0 when none. */
static int
fds_hold(pid_t pid, const uint64_t *set, size_t n)
{
	struct hold_arg a = { set, n };

	return fds_each(pid, visit_hold, &a) == 1;
}

/* Appends PID's children (of every thread) to the list, up to max. */
static void
add_children(pid_t pid, pid_t *list, size_t *count, size_t max)
{
	char	 path[96], buf[4096], *p, *end;
	struct dirent *de;
	DIR	*d;

	if (proc_path(path, sizeof(path), pid, "task") < 0 ||
	    (d = opendir(path)) == NULL)
		return;
	while (*count < max && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/children",
		    (int)pid, de->d_name);
		if (read_small_file(path, buf, sizeof(buf)) < 0)
			continue;
		for (p = buf; *count < max; p = end) {
			long	 c = strtol(p, &end, 10);

			if (end == p)
				break;
			if (c > 0)
				list[(*count)++] = (pid_t)c;
		}
	}
	closedir(d);
}

/*
 * Whether a process of the tree holds a connection accepted from one of
 * the listeners: a server under steady load may never wait in accept, as
 * a connection is always queued, but it serves.  (UDP and unix listeners
 * have no such sign.)
 */
static bool
serving(const pid_t *list, size_t count, const uint64_t *inos, size_t n)
{
	uint64_t conns[PROBE_MAX_CONNS];
	size_t	 nconns, i;

	if ((nconns = accepted_conns(list[0], inos, n, conns)) == 0)
		return false;
	for (i = 0; i < count; i++)
		if (fds_hold(list[i], conns, nconns))
			return true;
	return false;
}

/*
 * Whether PID or a descendant serves a connection accepted from one of
 * the listeners: 1 or 0.  Dearer than readyprobe_tree (it reads the
 * namespace's TCP table, which a busy host makes long), so the caller
 * asks only once a worker has held a listener a while without waiting.
 */
int
readyprobe_serving(pid_t pid, const uint64_t *inos, size_t n)
{
	pid_t	 list[PROBE_MAX_PROCS];
	size_t	 count = 1, i;

	if (n == 0)
		return 0;
	list[0] = pid;
	for (i = 0; i < count; i++)
		add_children(list[i], list, &count, PROBE_MAX_PROCS);
	return serving(list, count, inos, n);
}

/*
 * Is PID, or one of its descendants, waiting for connections (or
 * datagrams) on one of the listeners whose socket inodes are given?
 * READY_WAITING when one is; READY_NOT_YET when a process of the tree
 * holds a listener but none waits on it (a server still loading its code
 * holds the inherited socket from its exec on); -ENOENT when no process of
 * the tree holds one (a server that opened sockets of its own: its
 * readiness cannot be seen), and another -errno when the tree cannot be
 * read at all.  The caller falls back to a grace period for the last two.
 */
int
readyprobe_tree(pid_t pid, const uint64_t *inos, size_t n)
{
	pid_t	 list[PROBE_MAX_PROCS];
	size_t	 count = 1, i;
	bool	 held = false;
	int	 r, err = 0;

	if (n == 0)
		return -ENOENT;
	list[0] = pid;
	for (i = 0; i < count; i++) {
		if ((r = fds_watch(list[i], inos, n, &held)) == 1)
			return READY_WAITING;
		if (r < 0 && i == 0)
			err = r;
		if (held && tasks_wait(list[i], inos, n) == 1)
			return READY_WAITING;
		add_children(list[i], list, &count, PROBE_MAX_PROCS);
	}
	if (held)
		return READY_NOT_YET;
	return err ? err : -ENOENT;
}
