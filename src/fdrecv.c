/*
 * fdrecv.c: receiving from peers that may be hostile.  Owns the rule that
 * no descriptor a peer passes (SCM_RIGHTS) is ever closed in a way that can
 * block the master: the kernel is asked to refuse them where it can
 * (SO_PASSRIGHTS, Linux 6.16), every receive has a control buffer large
 * enough for the kernel's maximum (so none is dropped, and so closed, in
 * the kernel on the master's behalf), and each received descriptor goes
 * through fdrecv_dispose().
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS	83
#endif

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

/*
 * Closes a descriptor a peer sent.  A socket is reset first (SO_LINGER
 * zero), so that a TCP socket with unsent data and a peer that never reads
 * cannot hold the close.
 */
void
fdrecv_dispose(int fd)
{
	struct linger lg = { 1, 0 };
	struct stat st;

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/*
 * recvmsg() for a socket whose peer may pass descriptors: every descriptor
 * that arrives is disposed of; the credentials, if asked for (cred not
 * NULL) and sent, are copied out (*has_cred).  Returns what recvmsg
 * returns; *flags gets msg_flags (MSG_TRUNC, MSG_CTRUNC).
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
	return n;
}
