/*
 * fdrecv.c: receiving from peers that may be hostile.  Owns the rule that
 * no descriptor a peer passes (SCM_RIGHTS) is ever closed in a way that can
 * block the master: the kernel is asked to refuse them where it can
 * (SO_PASSRIGHTS, Linux 6.16), every receive has a control buffer large
 * enough for the kernel's maximum (so none is dropped, and so closed, in
 * the kernel on the master's behalf), and each received descriptor goes
 * through fdrecv_dispose().  Owns the holders too: short-lived children
 * that keep the last reference to descriptors whose final close may wait.
 * No policy of its callers lives here.
 */
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS	83
#endif

/*
 * Held descriptors wait here for a holder.  Past SOFT, fdrecv_msg() asks
 * the kernel to refuse the sending socket's further descriptors; past MAX
 * (only where the kernel cannot refuse) a descriptor is closed in place.
 */
#define PENDING_SOFT	64
#define PENDING_MAX	1024
#define HOLDERS_MAX	4
#define HOLD_DEADLINE	10.0	/* then a holder is killed: its close ends */

/*
 * File systems whose close cannot wait on anything but the local kernel,
 * by the name /proc/self/mountinfo gives.  Anything else (NFS, CIFS,
 * FUSE, 9p, ceph, cluster file systems, ...) may wait for a server or a
 * daemon in ->flush() or ->release().  overlayfs is here because
 * containers run on it; its close is its upper file's.
 */
static const char *const local_fs[] = {
	"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "vfat",
	"exfat", "squashfs", "iso9660", "overlay", "tmpfs", "ramfs",
	"hugetlbfs", "devtmpfs", "devpts", "proc", "sysfs", "cgroup",
	"cgroup2", "mqueue", "bpf", "tracefs", "debugfs", "securityfs",
	"pstore", "configfs", "efivarfs", "nsfs",
};

enum fd_kind { FD_QUICK, FD_SOCKET, FD_RISKY };

struct holder {
	int	 pidfd;		/* -1: free */
	double	 started;
};

static int	*pending;
static int	 npending, pending_cap;
static bool	 hold_here;
static bool	 warned_full;
static struct holder holders[HOLDERS_MAX];
static int	 nholders;
static struct timer release_timer, deadline_timer;
static bool	 timers_ready;

static void	 release_pending(void *);
static void	 check_deadlines(void *);

/*
 * Asks the kernel to refuse descriptors sent to this socket: the sender's
 * sendmsg fails with EPERM.  -errno where the kernel is older.
 */
int
fdrecv_refuse(int fd)
{
	int	 zero = 0;

	if (setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &zero,
	    sizeof(zero)) < 0)
		return -errno;
	return 0;
}

/* Undoes fdrecv_refuse(). */
int
fdrecv_allow(int fd)
{
	int	 one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &one,
	    sizeof(one)) < 0)
		return -errno;
	return 0;
}

/*
 * This process is itself a disposable holder (a child that exits soon):
 * descriptors whose close may wait are left open for its exit to close.
 */
void
fdrecv_holder_mode(void)
{
	hold_here = true;
	/* The parent's, closed in this child: not to count against it. */
	npending = 0;
}

/*
 * Whether the mount mnt_id (statx's) is of a local file system.  A mount
 * this process cannot see (another mount namespace: a user's own FUSE
 * mount in a user namespace) is not.  /proc/self/mountinfo is read at
 * most once a second; reading it never waits on a file system.
 */
static bool
mount_is_local(uint64_t mnt_id)
{
	static char	*buf;
	static size_t	 len;
	static double	 read_at = -1;
	char	 key[32], *line, *nl, *dash, *type, *end;
	double	 now = now_mono();
	size_t	 i, klen;

	if (buf == NULL || now - read_at >= 1.0) {
		FILE	*f = fopen("/proc/self/mountinfo", "re");
		size_t	 cap = 0;

		free(buf);
		buf = NULL;
		len = 0;
		if (f == NULL || getdelim(&buf, &cap, '\0', f) < 0) {
			if (f)
				fclose(f);
			free(buf);
			buf = NULL;
			return false;
		}
		len = strlen(buf);
		fclose(f);
		read_at = now;
	}
	klen = (size_t)snprintf(key, sizeof(key), "%llu ",
	    (unsigned long long)mnt_id);
	for (line = buf; line < buf + len; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = buf + len;
		if ((size_t)(nl - line) <= klen || strncmp(line, key, klen) != 0)
			continue;
		if ((dash = strstr(line, " - ")) == NULL || dash > nl)
			return false;
		type = dash + 3;
		if ((end = strchr(type, ' ')) == NULL || end > nl)
			end = nl;
		for (i = 0; i < sizeof(local_fs) / sizeof(local_fs[0]); i++)
			if (strlen(local_fs[i]) == (size_t)(end - type) &&
			    strncmp(local_fs[i], type, (size_t)(end - type)) == 0)
				return true;
		return false;
	}
	return false;
}

/*
 * Whether closing fd can wait.  Sockets other than Unix ones are reset
 * first (a TCP socket with SO_LINGER, unsent data and a peer that never
 * reads holds its close otherwise); pipes, FIFOs, anonymous inodes
 * (eventfd, timerfd, epoll...), memfds, O_PATH descriptors, /dev/null and
 * the like, and files on local file systems close at once.  A terminal
 * waits for its output to drain, a Unix socket for the descriptors in
 * flight in its queue, a block device may write back, a file on a
 * network or FUSE file system waits for its server or daemon, and a
 * device we do not know may do anything: those are risky.  Asking must
 * not wait either: statx with AT_STATX_DONT_SYNC takes what the kernel
 * has cached (a plain fstat of a FUSE file asks its daemon, and fstatfs
 * always does).
 */
static enum fd_kind
fd_kind(int fd)
{
	struct statx sx;
	int	 fl;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE |
	    STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_TYPE))
		return FD_RISKY;
	switch (sx.stx_mode & S_IFMT) {
	case S_IFSOCK:
		/*
		 * A Unix socket's queue may hold descriptors in flight (a
		 * lingering TCP socket): its close drops their last
		 * references, and so may wait for any of them.
		 */
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &fl,
		    &(socklen_t){ sizeof(fl) }) < 0 || fl == AF_UNIX)
			return FD_RISKY;
		return FD_SOCKET;
	case S_IFIFO:
	case 0:			/* an anonymous inode */
		return FD_QUICK;
	case S_IFCHR:
		return sx.stx_rdev_major == 1 ? FD_QUICK : FD_RISKY;
	case S_IFBLK:
		return FD_RISKY;
	}
	if ((fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_PATH))
		return FD_QUICK;
	/* Seals are shmem's only: a memfd, on a mount no one can see. */
	if (fcntl(fd, F_GET_SEALS) >= 0)
		return FD_QUICK;
	return (sx.stx_mask & STATX_MNT_ID) && mount_is_local(sx.stx_mnt_id) ?
	    FD_QUICK : FD_RISKY;
}

static void
timers_init(void)
{
	if (timers_ready)
		return;
	int	 i;

	timer_init(&release_timer, release_pending, NULL);
	timer_init(&deadline_timer, check_deadlines, NULL);
	for (i = 0; i < HOLDERS_MAX; i++)
		holders[i].pidfd = -1;
	timers_ready = true;
}

static void
hold(int fd)
{
	if (hold_here)
		return;		/* closed when this process exits */
	if (npending >= PENDING_MAX) {
		/* Only where the kernel cannot refuse descriptors. */
		if (!warned_full)
			log_warnx("more than %d received descriptors wait "
			    "for a holder; closing the next ones in place",
			    PENDING_MAX);
		warned_full = true;
		close(fd);
		return;
	}
	if (npending == pending_cap) {
		pending_cap = pending_cap ? pending_cap * 2 : 16;
		pending = xreallocarray(pending, (size_t)pending_cap,
		    sizeof(*pending));
	}
	pending[npending++] = fd;
	timers_init();
	/* Batched: one holder for what arrives in one turn of the loop. */
	if (!release_timer.armed)
		timer_set(&release_timer, 0);
}

/*
 * Closes a descriptor a peer sent, without waiting: at once when its
 * close cannot block (a socket is reset first: SO_LINGER zero), otherwise
 * through a holder (see release_pending).
 */
void
fdrecv_dispose(int fd)
{
	struct linger lg = { 1, 0 };

	if (fd < 0)
		return;
	switch (fd_kind(fd)) {
	case FD_SOCKET:
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		break;
	case FD_QUICK:
		close(fd);
		break;
	case FD_RISKY:
		hold(fd);
		break;
	}
}

static int
cmp_int(const void *a, const void *b)
{
	int	 x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

/* In a child: closes every descriptor but the n in keep (sorted). */
static void
close_all_but(const int *keep, int n)
{
	int	 i, from = 0;

	for (i = 0; i < n; i++) {
		if (keep[i] > from)
			(void)syscall(SYS_close_range, (unsigned)from,
			    (unsigned)keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	(void)syscall(SYS_close_range, (unsigned)from, ~0U, 0);
}

/*
 * The start of a child that will outlive nothing: it dies with the
 * master, and keeps none of the master's descriptors but keep (sorted in
 * place), so that if its close waits for ever it holds no listener, no
 * control socket, no pipe of the master's.
 */
pid_t
fdrecv_fork_child(int *keep, int nkeep)
{
	pid_t	 parent = getpid(), pid;

	if ((pid = fork()) != 0)
		return pid;
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	qsort(keep, (size_t)nkeep, sizeof(*keep), cmp_int);
	close_all_but(keep, nkeep);
	return 0;
}

static int
pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void
on_holder_exit(int fd, uint32_t ev, void *arg)
{
	struct holder *h = arg;

	(void)fd;
	(void)ev;
	loop_del(h->pidfd);
	close(h->pidfd);
	h->pidfd = -1;
	nholders--;
	/* pool.c's reaper collects it: an unknown pid, reaped silently. */
	if (npending > 0 && !release_timer.armed)
		timer_set(&release_timer, 0);
}

static void
check_deadlines(void *arg)
{
	double	 now = now_mono();
	int	 i;

	(void)arg;
	for (i = 0; i < HOLDERS_MAX; i++)
		if (holders[i].pidfd >= 0 &&
		    now - holders[i].started >= HOLD_DEADLINE)
			(void)syscall(SYS_pidfd_send_signal, holders[i].pidfd,
			    SIGKILL, NULL, 0);
	if (nholders > 0)
		timer_set(&deadline_timer, 1.0);
}

/*
 * Hands the pending descriptors to a holder: a child keeps a copy of
 * each until the master has closed its own, then exits, so that the last
 * reference, and the close that may wait (a terminal draining, a network
 * file's release), is the child's.  The child is killed after
 * HOLD_DEADLINE, which ends any such wait.  This cannot help a file
 * system's ->flush(), which every close(2) calls, the master's too:
 * callers that must accept such descriptors should not receive them in
 * the master at all (notify.c receives in a child).
 */
static void
release_pending(void *arg)
{
	struct holder *h = NULL;
	int	 sync[2], *keep, i;
	pid_t	 pid;
	char	 c;

	(void)arg;
	if (npending == 0)
		return;
	for (i = 0; i < HOLDERS_MAX && h == NULL; i++)
		if (holders[i].pidfd < 0)
			h = &holders[i];
	if (h == NULL)
		return;		/* again when one exits */
	if (pipe2(sync, O_CLOEXEC) < 0) {
		timer_set(&release_timer, 0.1);
		return;
	}
	keep = xcalloc((size_t)npending + 1, sizeof(*keep));
	memcpy(keep, pending, (size_t)npending * sizeof(*keep));
	keep[npending] = sync[0];
	if ((pid = fdrecv_fork_child(keep, npending + 1)) == 0) {
		/* Until the master has closed its copies. */
		while (read(sync[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	free(keep);
	close(sync[0]);
	if (pid < 0) {
		close(sync[1]);
		timer_set(&release_timer, 0.1);
		return;
	}
	h->pidfd = pidfd_of(pid);
	for (i = 0; i < npending; i++)
		close(pending[i]);	/* not the last reference */
	npending = 0;
	close(sync[1]);			/* the child's turn */
	if (h->pidfd < 0)
		return;			/* untracked, but it exits now */
	h->started = now_mono();
	if (loop_add(h->pidfd, EPOLLIN, on_holder_exit, h) < 0) {
		close(h->pidfd);
		h->pidfd = -1;
		return;
	}
	nholders++;
	if (!deadline_timer.armed)
		timer_set(&deadline_timer, 1.0);
}

/*
 * recvmsg() for a socket whose peer may pass descriptors: every descriptor
 * that arrives is disposed of; the credentials, if asked for (cred not
 * NULL) and sent, are copied out (*has_cred).  Returns what recvmsg
 * returns; *flags gets msg_flags (MSG_TRUNC, MSG_CTRUNC).  A peer whose
 * descriptors wait for holders faster than holders take them is refused
 * any more (fdrecv_refuse) for the life of the socket.
 */
ssize_t
fdrecv_msg(int fd, void *buf, size_t len, int rflags, struct ucred *cred,
    bool *has_cred, int *flags)
{
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(struct ucred)) +
		    CMSG_SPACE(sizeof(int) * FDRECV_MAX_FDS)];
	} ctl;
	struct iovec iov = { buf, len };
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t	 n;

	if (has_cred)
		*has_cred = false;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	n = recvmsg(fd, &msg, rflags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (flags)
		*flags = msg.msg_flags;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET)
			continue;
		if (cm->cmsg_type == SCM_CREDENTIALS && cred &&
		    cm->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			memcpy(cred, CMSG_DATA(cm), sizeof(*cred));
			if (has_cred)
				*has_cred = true;
		} else if (cm->cmsg_type == SCM_RIGHTS) {
			size_t	 i, nf = (cm->cmsg_len - CMSG_LEN(0)) /
			    sizeof(int);
			int	 rfd;

			for (i = 0; i < nf; i++) {
				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int),
				    sizeof(int));
				fdrecv_dispose(rfd);
			}
		}
	}
	if (npending >= PENDING_SOFT)
		(void)fdrecv_refuse(fd);
	return n;
}
