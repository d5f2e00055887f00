/*
 * output.c: --log-prefix.  Worker stdout and stderr arrive through pipes
 * and are re-emitted one whole line at a time, each line prefixed with
 * [NAME.ID] and handed whole to log_write_line, so lines of different
 * workers never mix.  A stalled log reader neither blocks the master nor
 * costs lines: a pipe whose line log.c refuses is no longer read, so its
 * worker blocks on its own write, until log.c calls output_resume().  A
 * line longer than the buffer is cut into bounded pieces.  Owns each
 * pipe's read end and buffer from attach until EOF, the list of them, and
 * the list of those it stopped reading.  A pool with no worker left calls
 * output_flush_all() for their last lines, and is told through the idle
 * callback when the log has taken what was held back.
 */
#include <sys/epoll.h>
#include <sys/queue.h>

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
/*
 * Paused pipes of workers that have exited, kept for a stalled log reader
 * at most: beyond, the oldest is dropped, so that a crash loop during a
 * long stall cannot pile up pipes (and their data) in the master.
 */
#define OUT_MAX_ORPHANS	16
/* What a pipe can hold at most (/proc/sys/fs/pipe-max-size's default). */
#define OUT_DRAIN_BUDGET	(1024 * 1024)

struct outbuf {
	int	 fd;
	int	 dest;
	pid_t	 pid;		/* the worker writing to it */
	bool	 orphan;	/* that worker has exited */
	bool	 paused;	/* out of the loop, on the paused list */
	TAILQ_ENTRY(outbuf) entry;	/* on the paused list */
	TAILQ_ENTRY(outbuf) link;	/* on the list of all */
	char	 prefix[96];
	size_t	 plen;
	size_t	 len;
	char	 buf[OUT_LINE_MAX];
};

/*
 * The module's whole state, in one place so that the pool can reach it
 * (struct pool's out) and the in-place upgrade can see what it holds.
 */
struct output {
	/*
	 * Pipes whose line log.c refused, oldest first: not read until
	 * output_resume(), which serves them in that order.
	 */
	TAILQ_HEAD(, outbuf) paused;
	TAILQ_HEAD(, outbuf) pipes;	/* every pipe, by link */
	/* Told when no pipe is paused any more (see output_flush_all). */
	void	(*idle_cb)(void *);
	void	*idle_arg;
	/*
	 * While a pipe is paused, it is also offered again every 100 ms:
	 * log.c's call is the fast way back, this one makes sure no pipe
	 * waits for a call that does not come.  Armed only while something
	 * is paused.
	 */
	struct timer retry_timer;
	bool	 retry_inited;
};

static struct output os = {
	.paused = TAILQ_HEAD_INITIALIZER(os.paused),
	.pipes = TAILQ_HEAD_INITIALIZER(os.pipes),
};

/* The module's state, for struct pool. */
struct output *
output_state(void)
{
	return &os;
}

static void
on_retry(void *arg)
{
	(void)arg;
	output_resume();
	if (!TAILQ_EMPTY(&os.paused))
		timer_set(&os.retry_timer, 0.1);
}

static int
emit(struct outbuf *o, const char *line, size_t len)
{
	char	 out[sizeof(o->prefix) + OUT_LINE_MAX + 1];

	memcpy(out, o->prefix, o->plen);
	memcpy(out + o->plen, line, len);
	out[o->plen + len] = '\n';
	return log_write_line(o->dest, out, o->plen + len + 1);
}

/*
 * Hands on the whole lines in o's buffer (all: the last partial one too).
 * -EAGAIN when log.c refused one: it and what follows stay in the buffer.
 */
static int
flush_lines(struct outbuf *o, bool all)
{
	char	*start = o->buf, *nl;
	size_t	 left = o->len;
	int	 rc = 0;

	while (left > 0 && (nl = memchr(start, '\n', left)) != NULL) {
		if ((rc = emit(o, start, (size_t)(nl - start))) < 0)
			goto out;
		left -= (size_t)(nl - start) + 1;
		start = nl + 1;
	}
	if (left == sizeof(o->buf) || (all && left > 0)) {
		if ((rc = emit(o, start, left)) < 0)
			goto out;
		left = 0;
	}
out:
	memmove(o->buf, start, left);
	o->len = left;
	return rc;
}

/* At most OUT_MAX_ORPHANS paused pipes of exited workers; oldest go. */
static void
orphans_trim(void)
{
	struct outbuf *o;
	size_t	 n = 0;

	TAILQ_FOREACH(o, &os.paused, entry)
		if (o->orphan)
			n++;
	for (; n > OUT_MAX_ORPHANS; n--) {
		TAILQ_FOREACH(o, &os.paused, entry)
			if (o->orphan)
				break;
		log_warnx("the log reader is stalled: dropping what exited "
		    "worker pid %d left in its %s pipe (more than %d such "
		    "pipes wait)", (int)o->pid, o->dest == STDERR_FILENO ?
		    "stderr" : "stdout", OUT_MAX_ORPHANS);
		output_detach(o);
	}
}

/* Worker pid has exited: its pipes, if still open, are orphans. */
void
output_writer_gone(pid_t pid)
{
	struct outbuf *o;

	TAILQ_FOREACH(o, &os.pipes, link)
		if (o->pid == pid)
			o->orphan = true;
	orphans_trim();
}

/*
 * Stops reading o.  Out of the loop rather than loop_mod(fd, 0): epoll
 * always reports EPOLLHUP, and a paused pipe whose worker has exited
 * would wake the loop on every turn.  Its data waits in the pipe.
 */
static void
output_pause(struct outbuf *o)
{
	loop_del(o->fd);
	o->paused = true;
	TAILQ_INSERT_TAIL(&os.paused, o, entry);
	if (!os.retry_inited) {
		timer_init(&os.retry_timer, on_retry, NULL);
		os.retry_inited = true;
	}
	if (!os.retry_timer.armed)
		timer_set(&os.retry_timer, 0.1);
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
			/*
			 * Every writer is gone: the last partial line too.
			 * Refused, it waits with the pipe, which is still at
			 * its end when read again.
			 */
			if (flush_lines(o, true) < 0) {
				output_pause(o);
				orphans_trim();
			} else
				output_detach(o);
			return;
		}
		o->len += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		if (flush_lines(o, false) < 0) {
			output_pause(o);
			orphans_trim();
			return;
		}
	}
}

/*
 * log.c has room again: every paused pipe hands on the lines it holds and
 * is read again, or, refused once more, stays paused.  Called from the
 * loop, never from inside log_write_line.
 */
void
output_resume(void)
{
	TAILQ_HEAD(, outbuf) todo = TAILQ_HEAD_INITIALIZER(todo);
	struct outbuf *o;

	TAILQ_CONCAT(&todo, &os.paused, entry);
	while ((o = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, o, entry);
		o->paused = false;
		if (flush_lines(o, false) < 0) {
			output_pause(o);
			continue;
		}
		/* At EOF, the loop reports it and output_read detaches. */
		if (loop_add(o->fd, EPOLLIN, output_read, o) < 0) {
			flush_lines(o, true);
			output_detach(o);
		}
	}
	orphans_trim();
	if (TAILQ_EMPTY(&os.paused) && os.idle_cb != NULL)
		os.idle_cb(os.idle_arg);
}

/*
 * Reads o until its pipe is empty or at its end, and hands on every whole
 * line, and at the end the last partial one too.  No more than a pipe can
 * hold, though: beyond that, a child of the worker is still writing, and
 * what it writes is no worker's last lines (the loop goes on relaying it
 * meanwhile).  false: a line was refused, o is paused.
 */
static bool
drain(struct outbuf *o)
{
	size_t	 budget = OUT_DRAIN_BUDGET;
	ssize_t	 n;

	for (;;) {
		if (budget == 0)
			return true;
		n = read(o->fd, o->buf + o->len, sizeof(o->buf) - o->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			o->len += (size_t)n;
			budget -= (size_t)n < budget ? (size_t)n : budget;
			if (flush_lines(o, false) < 0)
				break;
			continue;
		}
		if (flush_lines(o, n == 0) < 0)
			break;
		if (n == 0 || errno != EAGAIN)
			output_detach(o);
		return true;
	}
	output_pause(o);
	return false;
}

/*
 * For a pool whose workers are all gone: what they wrote is in their
 * pipes (a write to a pipe is done before its writer exits), so reading
 * each pipe until it is empty gets it all, even when a worker's own child
 * keeps the pipe open.  Returns how many pipes hold lines the log has not
 * taken yet; the idle callback says when there are none.  A partial last
 * line waits for the pipe's end, or for output_close_all().
 */
size_t
output_flush_all(void)
{
	struct outbuf *o, *next;
	size_t	 n = 0;

	TAILQ_FOREACH_SAFE(o, &os.pipes, link, next)
		if (!o->paused)
			drain(o);
	orphans_trim();
	TAILQ_FOREACH(o, &os.paused, entry)
		n++;
	return n;
}

/*
 * At exit: the partial last lines still held are handed on as they are
 * (unless the log refuses them, its reader being stalled), and every pipe
 * is closed.
 */
void
output_close_all(void)
{
	struct outbuf *o;

	while ((o = TAILQ_FIRST(&os.pipes)) != NULL) {
		flush_lines(o, true);
		output_detach(o);
	}
}

void
output_on_idle(void (*cb)(void *), void *arg)
{
	os.idle_cb = cb;
	os.idle_arg = arg;
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
output_attach(int fd, int dest, const char *prefix, pid_t pid)
{
	struct outbuf *o = xcalloc(1, sizeof(*o));

	o->fd = fd;
	o->dest = dest;
	o->pid = pid;
	snprintf(o->prefix, sizeof(o->prefix), "[%s] ", prefix);
	o->plen = strlen(o->prefix);
	if (loop_add(fd, EPOLLIN, output_read, o) < 0) {
		close(fd);
		free(o);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&os.pipes, o, link);
	return o;
}

/*
 * Every pipe still read (fd, where it goes, its writer, its prefix), for
 * an in-place upgrade to hand over; output_flush_all first.
 */
void
output_export(int (*cb)(int, int, pid_t, const char *, void *), void *arg)
{
	struct outbuf *o;

	TAILQ_FOREACH(o, &os.pipes, link)
		if (!o->orphan)
			cb(o->fd, o->dest, o->pid, o->prefix, arg);
}

void
output_detach(struct outbuf *o)
{
	if (o == NULL)
		return;
	if (o->paused)
		TAILQ_REMOVE(&os.paused, o, entry);
	else
		loop_del(o->fd);
	TAILQ_REMOVE(&os.pipes, o, link);
	close(o->fd);
	free(o);
}
