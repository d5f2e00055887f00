/*
 * wpool-shim.c: libwpool-shim.so, the accept shim of `wpool -m balance
 * --shim`.  Preloaded (LD_PRELOAD) into an unmodified, dynamically linked
 * server, it makes the worker's balance channel (the SOCK_SEQPACKET socket
 * at $WPOOL_SHIM_FD, 3) look like the listening TCP socket the server was
 * told of (LISTEN_FDS=1, fd 3), and speaks the balance protocol (v1,
 * include/wpool-worker.h) for it:
 *
 *  - accept/accept4 on the listener (fd 3 or any dup of it: the same
 *    socket inode) take the next connection out of the channel, with the
 *    flags asked for; the peer's address comes from getpeername;
 *  - close of such a connection, and shutdown(SHUT_WR or SHUT_RDWR),
 *    reports {"type":"closed","id":N} once (a connection dup'ed is
 *    reported when its last fd in this process closes);
 *  - getsockname gives the real listener's address ($WPOOL_SHIM_LISTENER,
 *    set by wpool), getsockopt SO_ACCEPTCONN/SO_TYPE/SO_DOMAIN/SO_PROTOCOL
 *    a listening stream socket's answers, listen and setsockopt succeed;
 *    poll, select and epoll need nothing: the channel is readable when a
 *    connection waits, and O_NONBLOCK/FIONBIO work on it for real.
 *
 * The connections a process holds are a table indexed by fd (mmap'ed,
 * touched pages only), updated with atomic operations: no lock and no
 * allocation after start-up, so accept and close may run in any thread
 * and close in a signal handler.  A forked child forgets the connections
 * it inherited (its parent reports them, as a forking server's parent
 * closes its copy); libuv's syscall(SYS_close) is seen through syscall().
 * A connection's last fd leaves the epoll set it is in before it closes
 * (see unwatch).  A module dlopen'ed with RTLD_DEEPBIND (PHP's extensions) is opened
 * without it, or it would bind to libc's accept past this library.
 * What it cannot cover: servers that make system calls without libc (Go,
 * static binaries), and fds passed to another process.  wpool(1), BALANCE
 * MODE, says so too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT		__attribute__((visibility("default")))
/* A table entry: the connection's id, and two marks. */
#define E_DUP		(UINT64_C(1) << 63)	/* another fd may hold it */
#define E_DONE		(UINT64_C(1) << 62)	/* reported already */
#define E_ID		(E_DONE - 1)
#define TABLE_MAX	(1u << 22)	/* fds tracked: 32 MiB of address */
#define MSG_MAX		1024	/* a v1 message is at most ~400 bytes */

static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_close)(int);
static int (*real_shutdown)(int, int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static long (*real_syscall)(long, ...);
static int (*real_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*real_getpeername)(int, struct sockaddr *, socklen_t *);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static int (*real_listen)(int, int);
static void *(*real_dlopen)(const char *, int);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);

static int	 chan = -1;		/* the channel, as the server got it */
static int	 report_fd = -1;	/* our own copy, to report on */
static dev_t	 chan_dev;
static ino_t	 chan_ino;
static int	 l_domain = AF_INET, l_proto;
static struct sockaddr_storage l_addr;
static socklen_t l_addrlen;
static uint64_t *table;		/* fd -> entry; 0: not ours */
static int	*epolls;		/* fd -> 1 + the epoll set it is in */
static unsigned	 table_len;
static unsigned table_high;	/* every fd tracked is below */

static void
resolve(void)
{
#define R(f)	do { if (real_##f == NULL) \
	*(void **)&real_##f = dlsym(RTLD_NEXT, #f); } while (0)
	R(accept4); R(close); R(shutdown); R(dup); R(dup2); R(dup3);
	R(fcntl); R(syscall); R(getsockname); R(getpeername);
	R(getsockopt); R(setsockopt); R(listen); R(dlopen); R(epoll_ctl);
#undef R
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* $WPOOL_SHIM_LISTENER: "DOMAIN:PROTOCOL:HEX", the sockaddr in hex. */
static void
parse_listener(const char *s)
{
	unsigned char *out = (unsigned char *)&l_addr;
	char	*end;
	size_t	 n = 0;
	int	 hi, lo;

	if (s == NULL)
		return;
	l_domain = (int)strtol(s, &end, 10);
	if (*end != ':')
		return;
	l_proto = (int)strtol(end + 1, &end, 10);
	if (*end != ':')
		return;
	for (s = end + 1; n < sizeof(l_addr) && (hi = hexval(s[0])) >= 0 &&
	    (lo = hexval(s[1])) >= 0; s += 2)
		out[n++] = (unsigned char)(hi << 4 | lo);
	l_addrlen = (socklen_t)n;
}

static void
forget_all(void)
{
	unsigned i, n = table_high;

	/* One thread in the child: plain stores do. */
	for (i = 0; i < n; i++)
		table[i] = epolls[i] = 0;
	table_high = 0;
}

__attribute__((constructor)) static void
shim_init(void)
{
	const char *s = getenv("WPOOL_SHIM_FD");
	struct rlimit rl;
	struct stat st;
	socklen_t sl = sizeof(int);
	int	 fd, type = 0;
	void	*m;

	resolve();
	if (s == NULL || (fd = atoi(s)) < 0 || fstat(fd, &st) < 0 ||
	    !S_ISSOCK(st.st_mode) || real_getsockopt(fd, SOL_SOCKET, SO_TYPE,
	    &type, &sl) < 0 || type != SOCK_SEQPACKET)
		return;		/* not a worker of wpool --shim: inert */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max > TABLE_MAX)
		rl.rlim_max = TABLE_MAX;
	table_len = rl.rlim_max < 1024 ? 1024 : (unsigned)rl.rlim_max;
	m = mmap(NULL, table_len * sizeof(uint64_t), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return;
	table = m;
	m = mmap(NULL, table_len * sizeof(int), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return;
	epolls = m;
	/* Ours, up high: the server may close or reuse fd 3. */
	if ((report_fd = real_fcntl(fd, F_DUPFD_CLOEXEC, 512)) < 0 &&
	    (report_fd = real_fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return;
	parse_listener(getenv("WPOOL_SHIM_LISTENER"));
	chan_dev = st.st_dev;
	chan_ino = st.st_ino;
	pthread_atfork(NULL, NULL, forget_all);
	chan = fd;
}

static uint64_t
entry(int fd)
{
	if (table == NULL || fd < 0 || (unsigned)fd >= table_len)
		return 0;
	return __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE);
}

static void
track(int fd, uint64_t e)
{
	unsigned high;

	__atomic_store_n(&epolls[fd], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&table[fd], e, __ATOMIC_RELEASE);
	high = __atomic_load_n(&table_high, __ATOMIC_ACQUIRE);
	while ((unsigned)fd >= high &&
	    !__atomic_compare_exchange_n(&table_high, &high,
	    (unsigned)fd + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

/* Whether fd is the channel (the server's listener), under any number. */
static int
is_listener(int fd)
{
	struct stat st;

	if (chan < 0 || fd < 0 || fd == report_fd || entry(fd) != 0)
		return 0;
	return fstat(fd, &st) == 0 && st.st_ino == chan_ino &&
	    st.st_dev == chan_dev;
}

/* {"type":"closed","id":N}, whole; async-signal-safe. */
static void
report(uint64_t id)
{
	char	 msg[64], num[24];
	size_t	 n = 0, k = 0;
	struct pollfd pfd;
	int	 saved = errno, tries;
	ssize_t	 r;

	do
		num[k++] = (char)('0' + id % 10);
	while ((id /= 10) != 0 && k < sizeof(num));
	memcpy(msg, "{\"type\":\"closed\",\"id\":", 22);
	n = 22;
	while (k > 0)
		msg[n++] = num[--k];
	msg[n++] = '}';
	/* The file may be non-blocking (the server's choice): wait a little. */
	for (tries = 0; tries < 100; tries++) {
		r = send(report_fd, msg, n, MSG_NOSIGNAL);
		if (r >= 0 || (errno != EAGAIN && errno != EINTR))
			break;
		pfd.fd = report_fd;
		pfd.events = POLLOUT;
		(void)poll(&pfd, 1, 100);
	}
	errno = saved;
}

/* Whether a connection id is still held by another fd than fd. */
static int
held_elsewhere(int fd, uint64_t id)
{
	unsigned i, n = __atomic_load_n(&table_high, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++)
		if (i != (unsigned)fd && (table[i] & E_ID) == id)
			return 1;
	return 0;
}

/*
 * A connection passed over a unix socket may outlive its last close() for
 * a moment (the kernel lets go of a file sent in a message after the
 * receiver's own close, at times), and an epoll set drops a file only once
 * it is gone: meanwhile it reports events for an fd that is closed, whose
 * data a server has freed (examples/c_server: a use after free).  So a
 * connection's last fd leaves the epoll set it was put in before it
 * closes, as it would with a connection accepted from a listener.
 */
static void
unwatch(int fd, uint64_t e)
{
	int	 ep;

	if (e == 0 || (e & E_DUP) ||
	    (ep = __atomic_exchange_n(&epolls[fd], 0, __ATOMIC_SEQ_CST)) == 0)
		return;
	(void)real_epoll_ctl(ep - 1, EPOLL_CTL_DEL, fd, NULL);
}

EXPORT int
epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
	int	 r;

	resolve();
	r = real_epoll_ctl(ep, op, fd, ev);
	if (r == 0 && entry(fd) != 0) {
		if (op == EPOLL_CTL_ADD)
			__atomic_store_n(&epolls[fd], ep + 1, __ATOMIC_SEQ_CST);
		else if (op == EPOLL_CTL_DEL)
			__atomic_store_n(&epolls[fd], 0, __ATOMIC_SEQ_CST);
	}
	return r;
}

/* fd is going (closed, or replaced by dup2): report e if it was the last. */
static void
gone(int fd, uint64_t e)
{
	if (e == 0 || (e & E_DONE))
		return;
	if ((e & E_DUP) && held_elsewhere(fd, e & E_ID))
		return;
	report(e & E_ID);
}

/*
 * The next connection from the channel, as accept4 would return it.  At
 * the channel's end (the master gone; it sends TERM) a blocking accept
 * waits for that signal, a non-blocking one has nothing.
 */
static int
shim_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	char	 buf[MSG_MAX + 1];
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	uint64_t id;
	ssize_t	 n;
	int	 cfd, f, i, nf, fl;

	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = MSG_MAX;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0)
			return -1;
		if (n == 0) {
			fl = real_fcntl(fd, F_GETFL);
			if (fl >= 0 && (fl & O_NONBLOCK)) {
				errno = EAGAIN;
				return -1;
			}
			(void)poll(NULL, 0, -1);
			errno = EINTR;
			return -1;
		}
		buf[n] = '\0';
		cfd = -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (i = 0; i < nf; i++) {
				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int),
				    sizeof(int));
				if (cfd < 0)
					cfd = f;
				else
					real_close(f);
			}
		}
		if (cfd < 0)
			continue;
		if (strncmp(buf, "{\"id\":", 6) != 0 ||
		    (id = strtoull(buf + 6, NULL, 10)) == 0 || id > E_ID) {
			/* Not v1: nothing to report, but serve it. */
			id = 0;
		}
		break;
	}
	if (!(flags & SOCK_CLOEXEC))
		(void)real_fcntl(cfd, F_SETFD, 0);
	/* The master's socket has its own flags: the caller's count. */
	if ((fl = real_fcntl(cfd, F_GETFL)) >= 0 &&
	    !!(fl & O_NONBLOCK) != !!(flags & SOCK_NONBLOCK))
		(void)real_fcntl(cfd, F_SETFL, fl ^ O_NONBLOCK);
	if (id != 0) {
		if ((unsigned)cfd < table_len)
			track(cfd, id);
		else
			report(id);	/* cannot be followed: counted done */
	}
	if (addr != NULL && addrlen != NULL &&
	    real_getpeername(cfd, addr, addrlen) < 0) {
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)l_domain;
		memcpy(addr, &ss, *addrlen < sizeof(ss) ? *addrlen :
		    sizeof(ss));
		*addrlen = sizeof(sa_family_t);
	}
	return cfd;
}

EXPORT int
accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	resolve();
	if (is_listener(fd))
		return shim_accept(fd, addr, addrlen, flags);
	return real_accept4(fd, addr, addrlen, flags);
}

EXPORT int
accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return accept4(fd, addr, addrlen, 0);
}

EXPORT int
close(int fd)
{
	uint64_t e;
	int	 r;

	if (real_close == NULL)
		resolve();
	if (fd == report_fd && report_fd >= 0) {
		/* Closing every fd (a daemon's habit): ours stays. */
		return 0;
	}
	if (entry(fd) == 0)
		return real_close(fd);
	/* Taken first: once closed, the number may be reused at once. */
	e = __atomic_exchange_n(&table[fd], 0, __ATOMIC_SEQ_CST);
	unwatch(fd, e);
	r = real_close(fd);
	gone(fd, e);
	return r;
}

EXPORT int
shutdown(int fd, int how)
{
	uint64_t e, id;
	unsigned i, n;
	int	 r;

	resolve();
	r = real_shutdown(fd, how);
	if (how == SHUT_RD || (e = entry(fd)) == 0)
		return r;
	e = __atomic_fetch_or(&table[fd], E_DONE,
	    __ATOMIC_SEQ_CST);
	if (e == 0 || (e & E_DONE))
		return r;
	if (e & E_DUP) {
		/* The socket is done: so are its other fds. */
		id = e & E_ID;
		n = table_high;
		for (i = 0; i < n; i++)
			if ((table[i] & E_ID) == id)
				__atomic_fetch_or(&table[i],
				    E_DONE, __ATOMIC_SEQ_CST);
	}
	report(e & E_ID);
	return r;
}

/* newfd is a copy of oldfd (dup, fcntl): it holds its connection too. */
static int
copied(int oldfd, int newfd)
{
	uint64_t e;

	if (newfd < 0 || (e = entry(oldfd)) == 0)
		return newfd;
	__atomic_fetch_or(&table[oldfd], E_DUP, __ATOMIC_SEQ_CST);
	if ((unsigned)newfd < table_len)
		track(newfd, e | E_DUP);
	return newfd;
}

EXPORT int
dup(int fd)
{
	resolve();
	return copied(fd, real_dup(fd));
}

/* dup2/dup3 onto a connection of ours closes it. */
static int
dup_onto(int oldfd, int newfd, int flags, int three)
{
	uint64_t e = 0;
	int	 r;

	resolve();
	if (oldfd == newfd || newfd == report_fd)
		return three ? real_dup3(oldfd, newfd, flags) :
		    real_dup2(oldfd, newfd);
	if (entry(newfd) != 0) {
		e = __atomic_exchange_n(&table[newfd], 0,
		    __ATOMIC_SEQ_CST);
		unwatch(newfd, e);
	}
	r = three ? real_dup3(oldfd, newfd, flags) : real_dup2(oldfd, newfd);
	gone(newfd, e);
	return r < 0 ? r : copied(oldfd, r);
}

EXPORT int
dup2(int oldfd, int newfd)
{
	return dup_onto(oldfd, newfd, 0, 0);
}

EXPORT int
dup3(int oldfd, int newfd, int flags)
{
	return dup_onto(oldfd, newfd, flags, 1);
}

/* Every fcntl argument is an int or a pointer: passed on as a word. */
EXPORT int
fcntl(int fd, int cmd, ...)
{
	va_list	 ap;
	void	*arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	resolve();
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return copied(fd, real_fcntl(fd, cmd, arg));
	return real_fcntl(fd, cmd, arg);
}

EXPORT int fcntl64(int, int, ...) __attribute__((alias("fcntl")));

/* libuv closes with syscall(SYS_close): that close is seen here. */
EXPORT long
syscall(long nr, ...)
{
	va_list	 ap;
	long	 a[6];
	int	 i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	resolve();
	switch (nr) {
	case SYS_close:
		return close((int)a[0]);
	case SYS_accept:
	case SYS_accept4:
		if (is_listener((int)a[0]))
			return shim_accept((int)a[0], (struct sockaddr *)a[1],
			    (socklen_t *)a[2], nr == SYS_accept ? 0 : (int)a[3]);
		break;
	case SYS_shutdown:
		return shutdown((int)a[0], (int)a[1]);
	}
	return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

EXPORT int
getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	resolve();
	if (!is_listener(fd) || l_addrlen == 0)
		return real_getsockname(fd, addr, addrlen);
	memcpy(addr, &l_addr, *addrlen < l_addrlen ? *addrlen : l_addrlen);
	*addrlen = l_addrlen;
	return 0;
}

EXPORT int
getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	resolve();
	if (is_listener(fd)) {
		errno = ENOTCONN;
		return -1;
	}
	return real_getpeername(fd, addr, addrlen);
}

EXPORT int
getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	int	 v;

	resolve();
	if (!is_listener(fd))
		return real_getsockopt(fd, level, name, val, len);
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_ACCEPTCONN:
			v = 1;
			break;
		case SO_TYPE:
			v = SOCK_STREAM;
			break;
		case SO_DOMAIN:
			v = l_domain;
			break;
		case SO_PROTOCOL:
			v = l_proto;
			break;
		default:
			return real_getsockopt(fd, level, name, val, len);
		}
	} else
		v = 0;	/* TCP and IP options: their defaults */
	if (val == NULL || len == NULL || *len < sizeof(int)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(val, &v, sizeof(int));
	*len = sizeof(int);
	return 0;
}

/* The listener's options are the master's: setting them is harmless. */
EXPORT int
setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	resolve();
	if (is_listener(fd))
		return 0;
	return real_setsockopt(fd, level, name, val, len);
}

EXPORT int
listen(int fd, int backlog)
{
	resolve();
	if (is_listener(fd))
		return 0;
	return real_listen(fd, backlog);
}

/*
 * A module opened with RTLD_DEEPBIND (PHP's extensions: ext/sockets is
 * one) binds to its own libc ahead of this library: without the flag, it
 * sees these functions as the program does.
 */
EXPORT void *
dlopen(const char *file, int mode)
{
	resolve();
	if (chan >= 0)
		mode &= ~RTLD_DEEPBIND;
	return real_dlopen(file, mode);
}
