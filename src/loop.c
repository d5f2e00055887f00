/*
 * loop.c: the event loop: fd events (epoll), signals (signalfd) and timers
 * (one timerfd over a sorted list).  It knows nothing about pools or
 * workers, and is the only file that calls epoll_*.  Idle, it sleeps in
 * epoll_wait with no timeout: no timer armed means no wake-up at all.
 */
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

struct handler {
	io_cb	 cb;
	void	*arg;
};

/*
 * The loop's whole state, in one place so that the pool can reach it
 * (struct pool's loop) and the in-place upgrade can see what it holds.
 */
struct loop {
	int	 epfd;
	int	 tfd;			/* the timers' timerfd */
	int	 sfd;			/* the signalfd */
	struct handler *handlers;	/* by fd */
	size_t	 nhandlers;
	bool	 stopping;
	TAILQ_HEAD(, timer) timers;	/* armed, by deadline */
	void	(*signal_cb)(int, pid_t, void *);
	void	*signal_arg;
};

static struct loop lp = {
	.epfd = -1,
	.tfd = -1,
	.sfd = -1,
	.timers = TAILQ_HEAD_INITIALIZER(lp.timers),
};

static void
timers_arm(void)
{
	struct itimerspec its;
	struct timer *t = TAILQ_FIRST(&lp.timers);
	double	 d;

	memset(&its, 0, sizeof(its));
	if (t != NULL) {
		d = t->deadline;
		if (d <= 0)
			d = 1e-9;
		its.it_value.tv_sec = (time_t)d;
		its.it_value.tv_nsec = (long)((d - (double)(time_t)d) * 1e9);
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(lp.tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

void
timer_init(struct timer *t, timer_cb cb, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
}

/* Arms t to fire `after` seconds from now, replacing any earlier setting. */
void
timer_set(struct timer *t, double after)
{
	struct timer *it;
	bool	 first;

	if (t->armed)
		TAILQ_REMOVE(&lp.timers, t, entry);
	t->deadline = now_mono() + (after > 0 ? after : 0);
	t->armed = true;
	TAILQ_FOREACH(it, &lp.timers, entry)
		if (it->deadline > t->deadline)
			break;
	if (it != NULL)
		TAILQ_INSERT_BEFORE(it, t, entry);
	else
		TAILQ_INSERT_TAIL(&lp.timers, t, entry);
	first = TAILQ_FIRST(&lp.timers) == t;
	if (first && lp.tfd >= 0)
		timers_arm();
}

void
timer_cancel(struct timer *t)
{
	bool	 first;

	if (!t->armed)
		return;
	first = TAILQ_FIRST(&lp.timers) == t;
	TAILQ_REMOVE(&lp.timers, t, entry);
	t->armed = false;
	if (first && lp.tfd >= 0)
		timers_arm();
}

/*
 * Fires every timer due at now_mono(), in deadline order, and re-arms the
 * timerfd for the next.  The loop calls it when the timerfd fires; a unit
 * test on a fake clock calls it after moving the clock.
 */
void
loop_fire_timers(void)
{
	struct timer *t;
	double	 now = now_mono();

	while ((t = TAILQ_FIRST(&lp.timers)) != NULL && t->deadline <= now) {
		TAILQ_REMOVE(&lp.timers, t, entry);
		t->armed = false;
		t->cb(t->arg);
	}
	if (lp.tfd >= 0)
		timers_arm();
}

/* The earliest armed deadline, or -1 with none: a test's next step. */
double
loop_next_deadline(void)
{
	struct timer *t = TAILQ_FIRST(&lp.timers);

	return t != NULL ? t->deadline : -1;
}

static void
timers_fire(int fd, uint32_t ev, void *arg)
{
	uint64_t exp;

	(void)ev;
	(void)arg;
	while (read(fd, &exp, sizeof(exp)) > 0)
		;
	loop_fire_timers();
}

int
loop_add(int fd, uint32_t events, io_cb cb, void *arg)
{
	struct epoll_event ev;

	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= lp.nhandlers) {
		size_t	 n = (size_t)fd + 64;

		lp.handlers = xreallocarray(lp.handlers, n,
		    sizeof(*lp.handlers));
		memset(lp.handlers + lp.nhandlers, 0,
		    (n - lp.nhandlers) * sizeof(*lp.handlers));
		lp.nhandlers = n;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.fd = fd;
	if (epoll_ctl(lp.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	lp.handlers[fd].cb = cb;
	lp.handlers[fd].arg = arg;
	return 0;
}

int
loop_mod(int fd, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.fd = fd;
	return epoll_ctl(lp.epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

/* Call before close(fd): a closed fd leaves epoll only with its last dup. */
void
loop_del(int fd)
{
	if (fd < 0 || (size_t)fd >= lp.nhandlers)
		return;
	epoll_ctl(lp.epfd, EPOLL_CTL_DEL, fd, NULL);
	lp.handlers[fd].cb = NULL;
	lp.handlers[fd].arg = NULL;
}

static void
signals_read(int fd, uint32_t ev, void *arg)
{
	struct signalfd_siginfo si[16];
	ssize_t	 n;
	size_t	 i;

	(void)ev;
	(void)arg;
	while ((n = read(fd, si, sizeof(si))) > 0)
		for (i = 0; i < (size_t)n / sizeof(si[0]); i++)
			lp.signal_cb((int)si[i].ssi_signo, (pid_t)si[i].ssi_pid,
			    lp.signal_arg);
}

/* A signal as if it came through the signalfd: for unit tests. */
void
loop_deliver_signal(int sig, pid_t from)
{
	if (lp.signal_cb != NULL)
		lp.signal_cb(sig, from, lp.signal_arg);
}

/* Blocks the signals and delivers them through cb from the loop. */
int
loop_signals(const int *sigs, size_t n, void (*cb)(int, pid_t, void *),
    void *arg)
{
	sigset_t set;
	size_t	 i;
	int	 r;

	sigemptyset(&set);
	for (i = 0; i < n; i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	if ((lp.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -errno;
	lp.signal_cb = cb;
	lp.signal_arg = arg;
	if ((r = loop_add(lp.sfd, EPOLLIN, signals_read, NULL)) < 0)
		return r;
	return 0;
}

int
loop_init(void)
{
	int	 r;

	if ((lp.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;
	if ((lp.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK |
	    TFD_CLOEXEC)) < 0)
		return -errno;
	if ((r = loop_add(lp.tfd, EPOLLIN, timers_fire, NULL)) < 0)
		return r;
	timers_arm();
	return 0;
}

/* The loop's state, for struct pool. */
struct loop *
loop_state(void)
{
	return &lp;
}

void
loop_break(void)
{
	lp.stopping = true;
}

void
loop_run(void)
{
	struct epoll_event evs[64];
	int	 i, n, fd;

	lp.stopping = false;
	while (!lp.stopping) {
		n = epoll_wait(lp.epfd, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			return;
		}
		for (i = 0; i < n; i++) {
			fd = evs[i].data.fd;
			if ((size_t)fd < lp.nhandlers &&
			    lp.handlers[fd].cb != NULL)
				lp.handlers[fd].cb(fd, evs[i].events,
				    lp.handlers[fd].arg);
		}
	}
}
