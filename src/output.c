/*
 * output.c: --log-prefix.  Worker stdout and stderr arrive through pipes
 * and are re-emitted one whole line at a time, each line prefixed with
 * [NAME.ID] and written with one write(2), so lines of different workers
 * never mix.  A line longer than the buffer is cut into bounded pieces.
 * Owns each pipe's read end and buffer from attach until EOF.
 */
#include <sys/epoll.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define OUT_LINE_MAX	4096
/* Bytes read from one pipe per wake-up, so a flood cannot starve others. */
#define OUT_READ_BUDGET	(64 * 1024)

struct outbuf {
	int	 fd;
	int	 dest;
	char	 prefix[96];
	size_t	 plen;
	size_t	 len;
	char	 buf[OUT_LINE_MAX];
};

static void
emit(struct outbuf *o, const char *line, size_t len)
{
	char	 out[sizeof(o->prefix) + OUT_LINE_MAX + 1];

	memcpy(out, o->prefix, o->plen);
	memcpy(out + o->plen, line, len);
	out[o->plen + len] = '\n';
	log_write_line(o->dest, out, o->plen + len + 1);
}

static void
flush_lines(struct outbuf *o, bool all)
{
	char	*start = o->buf, *nl;
	size_t	 left = o->len;

	while (left > 0 && (nl = memchr(start, '\n', left)) != NULL) {
		emit(o, start, (size_t)(nl - start));
		left -= (size_t)(nl - start) + 1;
		start = nl + 1;
	}
	if (left == sizeof(o->buf) || (all && left > 0)) {
		emit(o, start, left);
		left = 0;
	}
	memmove(o->buf, start, left);
	o->len = left;
}

static void
output_read(int fd, uint32_t ev, void *arg)
{
	struct outbuf *o = arg;
	size_t	 budget = OUT_READ_BUDGET;
	ssize_t	 n;

	(void)ev;
	while (budget > 0) {
		n = read(fd, o->buf + o->len, sizeof(o->buf) - o->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* Every writer is gone: the last partial line too. */
			flush_lines(o, true);
			output_detach(o);
			return;
		}
		o->len += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		flush_lines(o, false);
	}
}

/* Two pipes: read ends nonblocking and close-on-exec, for the master. */
int
output_open(int *out_r, int *out_w, int *err_r, int *err_w)
{
	int	 a[2], b[2];

	if (pipe2(a, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(b, O_CLOEXEC) < 0) {
		int	 e = errno;

		close(a[0]);
		close(a[1]);
		return -e;
	}
	set_nonblock(a[0], true);
	set_nonblock(b[0], true);
	*out_r = a[0];
	*out_w = a[1];
	*err_r = b[0];
	*err_w = b[1];
	return 0;
}

struct outbuf *
output_attach(int fd, int dest, const char *prefix)
{
	struct outbuf *o = xcalloc(1, sizeof(*o));

	o->fd = fd;
	o->dest = dest;
	snprintf(o->prefix, sizeof(o->prefix), "[%s] ", prefix);
	o->plen = strlen(o->prefix);
	if (loop_add(fd, EPOLLIN, output_read, o) < 0) {
		close(fd);
		free(o);
		return NULL;
	}
	return o;
}

void
output_detach(struct outbuf *o)
{
	if (o == NULL)
		return;
	loop_del(o->fd);
	close(o->fd);
	free(o);
}
