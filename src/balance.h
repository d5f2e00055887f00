/*
 * balance.h: what the master-accept modules tell each other, and nothing
 * else includes: acceptq.c (the listeners, the queue of accepted
 * connections), channel.c (each balance-mode worker's channel and what is
 * in flight on it), balance.c (the balancers) and inetd.c (the connection
 * processes).  Each owns its own structure, hung off struct pool; the
 * others reach it only through the functions below.
 */
#ifndef WPOOL_BALANCE_H
#define WPOOL_BALANCE_H

#include <sys/tree.h>

#include "wpool.h"

/* The largest message on a channel, either way. */
#define CHAN_MSG_MAX	1024
/* The largest message the master sends a version-2 worker (wpool-worker.h). */
#define CHAN_BATCH_BYTES	8192

/*
 * One accepted connection: in the queue (acceptq.c's), in flight to a
 * worker (its channel's, until the worker reports it closed), or handed
 * to an inetd process.  Whoever holds it frees it (conn_close).
 */
struct conn {
	TAILQ_ENTRY(conn) entry;	/* in the queue */
	RB_ENTRY(conn) node;		/* in flight: its worker's tree */
	int	 fd;			/* -1 once a worker has it */
	unsigned long id;
	int	 listener;
	bool	 returned;		/* taken back from a worker's channel */
	char	 peer[64];
	uint32_t iphash;
};
TAILQ_HEAD(connq, conn);

/* acceptq.c */
void	conn_close(struct conn *);
void	conn_describe(struct conn *, const struct sockaddr_storage *,
	    socklen_t);
uint32_t conn_hash(const void *, size_t, uint32_t);
void	acceptq_requeue(struct pool *, struct connq *, int);
void	acceptq_flush(struct pool *);
void	acceptq_kick_soon(struct pool *);
void	acceptq_room(struct pool *);

/* channel.c */
bool	chan_eligible(const struct pool *, const struct worker *);
int	chan_give(struct pool *, struct worker *, struct conn *);
int	chan_flush_all(struct pool *);
int	chan_init(struct pool *);

/* balance.c */
struct worker *balancer_pick(struct pool *, const struct conn *);

/* inetd.c */
int	inetd_init(struct pool *);
bool	inetd_full(const struct pool *);
void	inetd_take(struct pool *, struct conn *);
int	inetd_stop(struct pool *, int);

#endif
