/*
 * pool_mode.h: what the lifecycle of pool.c asks of the pool's mode
 * (shared, reuseport, balance, inetd), so that it never branches on the
 * mode itself.  Private to pool.c and pool_mode.c.
 */
#ifndef POOL_MODE_H
#define POOL_MODE_H

struct mode_ops {
	/* Why `restart ID` has nothing to restart; NULL: it has workers. */
	const char *no_workers;
	/* Workers get a channel at fd 3 (WPOOL_CONN_FD), not listeners. */
	bool	 chan;
	/* What pool_scale counts, one and many. */
	const char *noun1, *nounN;
	/* The start-up line that says how many. */
	void	(*announce)(struct pool *);
	/* A slot's own sockets, before its worker starts: 0 or -1. */
	int	(*slot_open)(struct pool *, struct slot *);
	/* The fds a new worker gets at 3.. (*chan: one to close after). */
	int	(*fds)(struct pool *, struct slot *, struct worker *, int *,
		    int *, int *);
	/* The socket inodes a starting worker waits on (--ready listen). */
	size_t	(*inodes)(struct pool *, struct worker *, uint64_t *);
	/* Where new connections go, once a slot's worker changed. */
	void	(*steer)(struct pool *);
	/* A worker asked to stop waits for its connections to close. */
	bool	(*stop_waits)(const struct worker *);
	/* A slot scaled away serves its queue before it stops. */
	bool	(*drains)(const struct slot *);
	/*
	 * The pool stops: connections the kernel queued on the sockets of
	 * the slot the master closes last, which a worker started in that
	 * slot may serve.
	 */
	int	(*stop_queued)(struct pool *, struct slot *);
	/* A worker became ready: what waits for one may go to it. */
	void	(*on_ready)(struct pool *);
	/* A worker is freed: what the mode kept of it goes. */
	void	(*worker_gone)(struct pool *, struct worker *);
	/* The target changed (or was first set). */
	void	(*resized)(struct pool *);
	/* The pool stops: the mode's own processes and queue get sig. */
	void	(*stop)(struct pool *, int);
	/* A reaped pid that is not a worker: true if it was the mode's. */
	bool	(*reaped)(struct pool *, pid_t, int);
	/* Whether pid is one of the mode's own processes. */
	bool	(*has_child)(const struct pool *, pid_t);
};

const struct mode_ops *mode_of(const struct pool *);
void	 slot_close_fds(struct pool *, struct slot *);
void	 slot_adopt_fds(struct pool *, struct slot *, const int *);
const struct ksteer *pool_ksteer(const struct pool *);
int	 slot_queued(struct pool *, struct slot *);

#endif
