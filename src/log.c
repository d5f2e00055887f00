/*
 * log.c: the master's own log lines on stderr, and the lines that output.c
 * relays to stdout and stderr.  Owns the log name and level, and one sink
 * per destination (fd 1 and fd 2): each line goes out whole and in order,
 * and, once the event loop runs, never by a call that can block; what a
 * slow reader has not taken waits in a bounded buffer.  A worker line that
 * does not fit is refused, not lost: output.c stops reading until
 * output_resume().  Knows nothing else about the pool.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/*
 * What a stalled reader may cost: the lines kept for it, per sink.  Larger
 * than any line log.c and output.c make (2 KiB and 4 KiB plus a prefix).
 */
#define SINK_BUF	(64 * 1024)
/*
 * Of which workers' lines may not use the last part: the master's own
 * lines (a worker's death, "stopped") still fit when workers flood.
 */
#define SINK_RESERVE	(16 * 1024)
/*
 * Refused worker lines are asked for again once no more than this is
 * kept: the reader has taken 32 KiB since, so that output.c resumes once
 * per that much, not once per line the reader takes.
 */
#define SINK_LOW	(SINK_BUF / 4)
/* How long exit waits for a slow reader to take the last lines. */
#define SINK_DRAIN_SECS	2.0

enum sink_kind {
	SINK_PLAIN,	/* blocking write(2): a tty, a file, /dev/null */
	SINK_PIPE,	/* write(2) on our own O_NONBLOCK reopening */
	SINK_POLLED,	/* a pipe we cannot reopen: poll(2), then PIPE_BUF */
	SINK_SOCKET	/* send(2) with MSG_DONTWAIT */
};

struct sink {
	enum sink_kind kind;
	int	 fd;		/* what is written to */
	bool	 watching;	/* EPOLLOUT registered: something is kept */
	bool	 dropping;	/* own lines are dropped until it drains */
	bool	 refused;	/* a worker line waits for output_resume() */
	unsigned long dropped;
	size_t	 off, len;	/* kept bytes: buf[off .. off + len) */
	char	*buf;		/* SINK_BUF bytes of sink_bufs */
};

/*
 * The buffers apart from the sinks, so that they are zero-initialised
 * (.bss): inside the initialised sinks they would make 128 KiB of .data,
 * which the kernel maps in up to 64 KiB at a time (fault-around) once a
 * field beside them is read, and counts in the master's RSS unused.
 */
static char	 sink_bufs[2][SINK_BUF];

/*
 * The log's whole state, in one place so that the pool can reach it
 * (struct pool's log) and the in-place upgrade can see what it holds.
 */
struct logstate {
	char	 name[80];
	int	 level;
	struct sink sinks[2];
	/* sinks[1], or sinks[0] when fd 2 is the same pipe or socket as 1. */
	struct sink *err_sink;
};

static struct logstate lg = {
	.name = "wpool",
	.level = LOG_INFO,
	.sinks = {
		{ .kind = SINK_PLAIN, .fd = STDOUT_FILENO, .buf = sink_bufs[0] },
		{ .kind = SINK_PLAIN, .fd = STDERR_FILENO, .buf = sink_bufs[1] },
	},
	.err_sink = &lg.sinks[1],
};

static void	sink_flush(struct sink *);

/* The log's state, for struct pool. */
struct logstate *
log_state(void)
{
	return &lg;
}

void
log_init(const char *name, int level)
{
	if (name != NULL)
		strlcpy(lg.name, name, sizeof(lg.name));
	lg.level = level;
}

/* Writes all of buf to fd, retrying short writes and EINTR. */
static void
write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* One attempt that cannot block: bytes written, or -errno. */
static ssize_t
sink_send(struct sink *s, const char *buf, size_t len)
{
	struct pollfd pfd;
	ssize_t	 n;

	if (s->kind == SINK_POLLED) {
		/*
		 * A pipe with room takes up to PIPE_BUF bytes at once even
		 * on a blocking fd; with no reader, write fails at once.
		 */
		pfd.fd = s->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLOUT |
		    POLLERR)))
			return -EAGAIN;
		if (len > PIPE_BUF)
			len = PIPE_BUF;
	}
	do {
		if (s->kind == SINK_SOCKET)
			n = send(s->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(s->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

static void
sink_keep(struct sink *s, const char *buf, size_t len)
{
	if (s->off + s->len + len > SINK_BUF) {
		memmove(s->buf, s->buf + s->off, s->len);
		s->off = 0;
	}
	memcpy(s->buf + s->off + s->len, buf, len);
	s->len += len;
}

/*
 * Only here, from the loop, are refused worker lines asked for again:
 * never from inside log_write_line, which output.c is calling.
 */
static void
sink_writable(int fd, uint32_t ev, void *arg)
{
	struct sink *s = arg;

	(void)fd;
	(void)ev;
	sink_flush(s);
	/* While a gap is open, worker lines would only be refused again. */
	if (s->refused && s->len <= SINK_LOW && !s->dropping) {
		s->refused = false;
		output_resume();
	}
}

/* EPOLLOUT while something is kept, and only then: no busy loop. */
static void
sink_watch(struct sink *s)
{
	if (s->len > 0 && !s->watching)
		s->watching = loop_add(s->fd, EPOLLOUT, sink_writable, s) == 0;
	else if (s->len == 0 && s->watching) {
		loop_del(s->fd);
		s->watching = false;
	}
}

/*
 * Bytes of the kept data to write in one call: whole lines up to PIPE_BUF,
 * which a pipe takes atomically, so that a line of ours is never split by
 * a worker writing to the same pipe (without --log-prefix); a single
 * longer line (or the rest of one) goes alone.
 */
static size_t
sink_chunk(const struct sink *s)
{
	const char *p = s->buf + s->off, *nl;
	size_t	 n = s->len < PIPE_BUF ? s->len : PIPE_BUF;

	if ((nl = memrchr(p, '\n', n)) != NULL)
		return (size_t)(nl - p) + 1;
	if ((nl = memchr(p, '\n', s->len)) != NULL)
		return (size_t)(nl - p) + 1;
	return s->len;
}

/* The line that closes a gap in s, in vlog's format; 0: none to write. */
static size_t
gap_line(struct sink *s, char *line, size_t size)
{
	int	 m;

	if (lg.level < LOG_WARN)
		return 0;
	m = snprintf(line, size, "%s: warning: %lu log lines dropped: the "
	    "log reader was not keeping up\n", lg.name, s->dropped);
	return m > 0 && (size_t)m < size ? (size_t)m : 0;
}

/*
 * Writes what is kept, in order, until the reader stops taking it; once
 * all is out, says how many lines were dropped meanwhile, at the place
 * they are missing from.
 */
static void
sink_flush(struct sink *s)
{
	char	 line[256];
	ssize_t	 n;
	size_t	 m;

	while (s->len > 0) {
		n = sink_send(s, s->buf + s->off, sink_chunk(s));
		if (n == -EAGAIN || n == 0)
			break;
		if (n < 0) {
			/* The reader is gone (EPIPE): none of it can arrive. */
			s->off = s->len = 0;
			s->dropping = false;
			s->dropped = 0;
			break;
		}
		s->off += (size_t)n;
		s->len -= (size_t)n;
	}
	if (s->len == 0) {
		s->off = 0;
		if (s->dropping && (m = gap_line(s, line, sizeof(line))) > 0) {
			n = sink_send(s, line, m);
			if (n == -EAGAIN)
				n = 0;
			if (n >= 0 && (size_t)n < m)
				sink_keep(s, line + n, m - (size_t)n);
		}
		s->dropping = false;
		s->dropped = 0;
	}
	sink_watch(s);
}

/*
 * One whole line to s: written, or kept after what is already kept.  A
 * worker line that does not fit in the workers' share (all but the
 * reserve) is refused (-EAGAIN), for output.c to hold until the loop calls
 * output_resume(); so is every worker line while a gap of the master's
 * own is open, so that the warning closes the gap before them.  The
 * master's own lines (own) may use the reserve; when even that is full
 * they are dropped and counted, and the next one that fits, or the
 * buffer running empty, closes the gap with a warning.  Without EPOLLOUT
 * (loop_add failed), nothing would say when to try again: worker lines
 * are then dropped and counted too.
 */
static int
sink_put(struct sink *s, const char *buf, size_t len, bool own)
{
	char	 line[256];
	ssize_t	 n = 0;
	size_t	 m, room;

	if (s->kind == SINK_PLAIN) {
		write_all(s->fd, buf, len);
		return 0;
	}
	/* While EPOLLOUT is watched, the loop says when to try again. */
	if (!s->watching && (s->len > 0 || s->dropping))
		sink_flush(s);
	if (s->dropping && own) {
		/* Something is kept (else the flush closed the gap). */
		m = gap_line(s, line, sizeof(line));
		if (s->len + m + len <= SINK_BUF) {
			sink_keep(s, line, m);
			s->dropping = false;
			s->dropped = 0;
		}
	}
	room = SINK_BUF - s->len;
	if (!own)
		room = room > SINK_RESERVE ? room - SINK_RESERVE : 0;
	if (!own && s->watching && (s->dropping || len > room)) {
		s->refused = true;
		return -EAGAIN;
	}
	if (s->dropping || len > room) {
		s->dropping = true;
		s->dropped++;
		sink_watch(s);
		return 0;
	}
	if (s->len == 0) {
		n = sink_send(s, buf, len);
		if (n == -EAGAIN)
			n = 0;
		if (n < 0)
			return 0;	/* as a blocking write would fail */
	}
	if ((size_t)n < len)
		sink_keep(s, buf + n, len - (size_t)n);
	sink_watch(s);
	return 0;
}

/*
 * A sink for fd, which the workers share: its file description stays
 * blocking for them.  A pipe is reopened through /proc for a description
 * of our own that can be O_NONBLOCK; a socket takes MSG_DONTWAIT per call.
 * A pipe that another user made (a container runtime's, for a master that
 * is not root) cannot be reopened (EACCES): poll(2) before each write of at
 * most PIPE_BUF keeps it from blocking, unless a worker writing to the
 * same pipe fills it in between (without --log-prefix).
 */
static void
sink_open(struct sink *s, int fd)
{
	struct stat st;
	char	 path[64];
	int	 nfd;

	s->kind = SINK_PLAIN;
	s->fd = fd;
	if (fstat(fd, &st) < 0)
		return;
	if (S_ISSOCK(st.st_mode))
		s->kind = SINK_SOCKET;
	else if (S_ISFIFO(st.st_mode)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if ((nfd = open(path, O_WRONLY | O_NONBLOCK |
		    O_CLOEXEC)) >= 0) {
			s->kind = SINK_PIPE;
			s->fd = nfd;
		} else
			s->kind = SINK_POLLED;
	}
}

static bool
same_stream(int a, int b)
{
	struct stat sa, sb;

	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return false;
	return (S_ISFIFO(sa.st_mode) || S_ISSOCK(sa.st_mode)) &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* At exit: a bounded wait for the last lines ("stopped") to go out. */
static void
log_outputs_drain(void)
{
	struct pollfd pfd;
	double	 deadline = now_mono() + SINK_DRAIN_SECS, left;
	size_t	 i;

	for (i = 0; i < sizeof(lg.sinks) / sizeof(lg.sinks[0]); i++) {
		if (lg.sinks[i].kind == SINK_PLAIN)
			continue;
		for (;;) {
			sink_flush(&lg.sinks[i]);
			left = deadline - now_mono();
			if (lg.sinks[i].len == 0 || left <= 0)
				break;
			pfd.fd = lg.sinks[i].fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 &&
			    errno != EINTR)
				break;
		}
	}
}

/*
 * The master's switch to writes that never block, once the event loop
 * exists to finish what a stalled reader did not take.  When fd 2 is the
 * same pipe or socket as fd 1 (2>&1), both share one sink, so that the
 * order of lines between them is kept too.
 */
void
log_outputs_init(void)
{
	sink_open(&lg.sinks[0], STDOUT_FILENO);
	if (lg.sinks[0].kind != SINK_PLAIN &&
	    same_stream(STDOUT_FILENO, STDERR_FILENO))
		lg.err_sink = &lg.sinks[0];
	else
		sink_open(&lg.sinks[1], STDERR_FILENO);
	atexit(log_outputs_drain);
}

/*
 * One whole worker line to fd; fd 1 and 2 go through their sinks.  0: it
 * is written or kept; -EAGAIN: refused, nothing of it taken, and
 * output_resume() will be called once there is room.
 */
int
log_write_line(int fd, const char *buf, size_t len)
{
	if (fd == STDOUT_FILENO)
		return sink_put(&lg.sinks[0], buf, len, false);
	if (fd == STDERR_FILENO)
		return sink_put(lg.err_sink, buf, len, false);
	write_all(fd, buf, len);
	return 0;
}

static void
vlog(int level, const char *tag, int errnum, const char *fmt, va_list ap)
{
	char	 line[2048];
	int	 n, m;

	if (level > lg.level)
		return;
	n = snprintf(line, sizeof(line), "%s: %s", lg.name, tag);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (errnum != 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
		    strerror(errnum));
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	sink_put(lg.err_sink, line, (size_t)n, true);
}

void
log_warn(const char *fmt, ...)
{
	int	 saved = errno;
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_WARN, "warning: ", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_WARN, "warning: ", 0, fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, "error: ", 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, "", 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_DEBUG, "debug: ", 0, fmt, ap);
	va_end(ap);
}
