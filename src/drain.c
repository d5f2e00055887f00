/*
 * drain.c: whether the pool is ready to be sent traffic, the one answer
 * `wpool status --check` (through status.c's "healthy") and /readyz
 * (metrics.c) give, so that the two never disagree.  Pure: it reads
 * struct pool and changes nothing.
 *
 * Ready means: not stopping (nor in --shutdown-delay, whose point is to
 * be taken out of rotation while still serving), and at least --min-ready
 * workers ready; by default every wanted one, as `status --check` always
 * meant, so a pool that lost a worker says so.  A --min-ready above the
 * target asks for the target: a pool scaled down is not unready for it.
 */
#include <stdio.h>

#include "wpool.h"

bool
pool_ready(const struct pool *p, char *why, size_t len)
{
	const struct conf *c = p->conf;
	int	 ready, want;

	if (p->state != POOL_RUNNING || p->stop_delayed) {
		snprintf(why, len, "stopping");
		return false;
	}
	/* inetd mode serves as long as it runs: each connection's own. */
	if (c->mode == MODE_INETD) {
		snprintf(why, len, "inetd mode, accepting connections");
		return true;
	}
	ready = pool_count(p, W_READY);
	want = c->min_ready > 0 && c->min_ready < p->target ? c->min_ready :
	    p->target;
	if (c->min_ready > 0)
		snprintf(why, len, "%d/%d workers ready (--min-ready %d)",
		    ready, p->target, c->min_ready);
	else
		snprintf(why, len, "%d/%d workers ready", ready, p->target);
	return want > 0 && ready >= want;
}
