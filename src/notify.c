/*
 * notify.c: the sd_notify datagram socket given to workers as
 * NOTIFY_SOCKET.  Owns that socket.  A message is attributed by the
 * sender's credentials (SO_PASSCRED) to the worker that is, or is an
 * ancestor of, the sender; fds that arrive with it are closed at once.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define NOTIFY_MAX	4096
#define NOTIFY_FDS	16

static int	 notify_fd = -1;
static struct pool *notify_pool;
static char	 notify_name[108];

/* Calls cb(key, value) for each KEY=VALUE line; others are skipped. */
int
notify_parse(const char *buf, size_t len, void (*cb)(const char *,
    const char *, void *), void *arg)
{
	char	 line[NOTIFY_MAX + 1], *eq;
	const char *p = buf, *end = buf + len, *nl;
	size_t	 n;
	int	 count = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && n < sizeof(line)) {
			memcpy(line, p, n);
			line[n] = '\0';
			if (memchr(line, '\0', n) == NULL &&
			    (eq = strchr(line, '=')) != NULL && eq != line) {
				*eq = '\0';
				cb(line, eq + 1, arg);
				count++;
			}
		}
		p += n + 1;
	}
	return count;
}

static struct worker *
attribute(struct pool *p, pid_t pid)
{
	struct worker *w;
	int	 depth;

	for (depth = 0; depth < 32 && pid > 1; depth++) {
		if ((w = pool_find_pid(p, pid)) != NULL)
			return w;
		TAILQ_FOREACH(w, &p->workers, entry)
			if (w->main_pid == pid)
				return w;
		if (pid == p->pid)
			return NULL;
		pid = procfs_ppid(pid);
	}
	return NULL;
}

struct notify_msg {
	struct pool *p;
	struct worker *w;
};

static void
on_pair(const char *key, const char *val, void *arg)
{
	struct notify_msg *m = arg;

	pool_worker_notify(m->p, m->w, key, val);
}

static void
notify_read(int fd, uint32_t ev, void *arg)
{
	char	 buf[NOTIFY_MAX];
	union {
		struct cmsghdr align;
		char	 buf[CMSG_SPACE(sizeof(struct ucred)) +
		    CMSG_SPACE(sizeof(int) * NOTIFY_FDS)];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	struct ucred *cred;
	struct notify_msg m;
	ssize_t	 n;
	int	 budget;

	(void)ev;
	(void)arg;
	for (budget = 0; budget < 256; budget++) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return;
		cred = NULL;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET)
				continue;
			if (cm->cmsg_type == SCM_CREDENTIALS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
				cred = (struct ucred *)(void *)CMSG_DATA(cm);
			else if (cm->cmsg_type == SCM_RIGHTS) {
				/* sd_notify_barrier waits for these to close. */
				int	*fds = (int *)(void *)CMSG_DATA(cm);
				size_t	 i, nf = (cm->cmsg_len - CMSG_LEN(0)) /
				    sizeof(int);

				for (i = 0; i < nf; i++)
					close(fds[i]);
			}
		}
		if (cred == NULL || (msg.msg_flags & MSG_TRUNC))
			continue;
		m.p = notify_pool;
		if ((m.w = attribute(notify_pool, cred->pid)) == NULL) {
			log_debug("notify message from pid %d, not a worker: "
			    "ignored", (int)cred->pid);
			continue;
		}
		notify_parse(buf, (size_t)n, on_pair, &m);
	}
}

/*
 * Opens the socket in the abstract namespace: no file to clean up, and
 * workers running as another user (-u) can reach it.
 */
int
notify_open(struct pool *p, char *err, size_t len)
{
	struct sockaddr_un sun;
	socklen_t sl;
	int	 one = 1, fd, r;

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0) {
		snprintf(err, len, "cannot open the notify socket: %s",
		    strerror(errno));
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	/* A bigger buffer so a burst of 1024 READY=1 is not dropped. */
	{
		int	 sz = 1 << 20;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(notify_name, sizeof(notify_name), "wpool/%d/%08lx/notify",
	    (int)getpid(), (unsigned long)arc4random());
	memcpy(sun.sun_path + 1, notify_name, strlen(notify_name));
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(notify_name));
	if (bind(fd, (struct sockaddr *)&sun, sl) < 0) {
		snprintf(err, len, "cannot bind the notify socket: %s",
		    strerror(errno));
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = loop_add(fd, EPOLLIN, notify_read, NULL)) < 0) {
		close(fd);
		snprintf(err, len, "cannot watch the notify socket");
		return r;
	}
	notify_fd = fd;
	notify_pool = p;
	xasprintf(&p->notify_path, "@%s", notify_name);
	return 0;
}

void
notify_close(void)
{
	if (notify_fd >= 0) {
		loop_del(notify_fd);
		close(notify_fd);
	}
	notify_fd = -1;
}
