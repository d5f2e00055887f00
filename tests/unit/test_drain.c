/*
 * test_drain: pool_ready (drain.c), the one answer of `status --check`
 * and /readyz: stopping or in --shutdown-delay, --min-ready, inetd.
 */
#include <stdlib.h>
#include <string.h>

#include "wpool.h"
#include "tap.h"

static struct worker ws[4];

/* A pool of target workers, ready of them ready, the rest starting. */
static void
pool_with(struct pool *p, struct conf *c, int target, int ready)
{
	int	 i;

	memset(p, 0, sizeof(*p));
	p->conf = c;
	p->target = target;
	p->state = POOL_RUNNING;
	TAILQ_INIT(&p->workers);
	for (i = 0; i < target; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].state = i < ready ? W_READY : W_STARTING;
		TAILQ_INSERT_TAIL(&p->workers, &ws[i], entry);
	}
}

int
main(void)
{
	struct conf c;
	struct pool p;
	char	 why[128];

	memset(&c, 0, sizeof(c));
	c.mode = MODE_SHARED;
	pool_with(&p, &c, 2, 2);
	ok(pool_ready(&p, why, sizeof(why)), "every wanted worker ready");
	is_str(why, "2/2 workers ready", "its line");
	pool_with(&p, &c, 2, 1);
	ok(!pool_ready(&p, why, sizeof(why)), "one of two: not ready");
	is_str(why, "1/2 workers ready", "its line");
	pool_with(&p, &c, 0, 0);
	ok(!pool_ready(&p, why, sizeof(why)), "no worker wanted: not ready");

	c.min_ready = 1;
	pool_with(&p, &c, 2, 1);
	ok(pool_ready(&p, why, sizeof(why)), "--min-ready 1: one is enough");
	is_str(why, "1/2 workers ready (--min-ready 1)", "its line");
	pool_with(&p, &c, 2, 0);
	ok(!pool_ready(&p, why, sizeof(why)), "--min-ready 1: none is not");
	c.min_ready = 4;
	pool_with(&p, &c, 2, 2);
	ok(pool_ready(&p, why, sizeof(why)),
	    "--min-ready above the target asks for the target");
	pool_with(&p, &c, 2, 1);
	ok(!pool_ready(&p, why, sizeof(why)), "... and not less");
	c.min_ready = 0;

	pool_with(&p, &c, 2, 2);
	p.stop_delayed = true;
	ok(!pool_ready(&p, why, sizeof(why)), "in --shutdown-delay: not ready");
	is_str(why, "stopping", "its line");
	pool_with(&p, &c, 2, 2);
	p.state = POOL_STOPPING;
	ok(!pool_ready(&p, why, sizeof(why)), "stopping: not ready");

	c.mode = MODE_INETD;
	pool_with(&p, &c, 0, 0);
	ok(pool_ready(&p, why, sizeof(why)), "inetd: ready while it runs");
	p.state = POOL_STOPPING;
	ok(!pool_ready(&p, why, sizeof(why)), "inetd stopping: not ready");
	return done_testing();
}
