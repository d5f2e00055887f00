/*
 * balance.c: the balancers of balance mode, one table (BALANCERS below):
 * which worker gets the next connection.  Owns their state, p->balance:
 * round-robin's cursor and ip-hash's ring.  A worker can be picked when
 * its channel says so (channel.c); the queue that asks is acceptq.c's.
 */
#include <stdlib.h>

#include "balance.h"

#define RING_VNODES	64

/* ip-hash: a ring of virtual nodes per slot id, sorted by hash. */
struct vnode {
	uint32_t hash;
	int	 slot;
};

struct balance {
	unsigned rr_cursor;		/* scans start after the last pick */
	struct vnode *ring;
	size_t	 nring;
};

static struct balance *
state(struct pool *p)
{
	if (p->balance == NULL)
		p->balance = xcalloc(1, sizeof(*p->balance));
	return p->balance;
}

void
balance_free(struct pool *p)
{
	if (p->balance != NULL)
		free(p->balance->ring);
	free(p->balance);
	p->balance = NULL;
}

static int
vnode_cmp(const void *a, const void *b)
{
	const struct vnode *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Rebuilt when the target changes; slots keep their points on the ring. */
static void
ring_build(struct balance *b, int target)
{
	int	 s, v;
	size_t	 n = 0;

	free(b->ring);
	b->ring = xcalloc((size_t)target * RING_VNODES, sizeof(*b->ring));
	for (s = 0; s < target; s++)
		for (v = 0; v < RING_VNODES; v++) {
			uint32_t key[2] = { (uint32_t)s, (uint32_t)v };

			b->ring[n].hash = conn_hash(key, sizeof(key),
			    2166136261u);
			b->ring[n++].slot = s;
		}
	qsort(b->ring, n, sizeof(*b->ring), vnode_cmp);
	b->nring = n;
}

/*
 * The slot that owns key on p's ring, skipping slots for which ok() says
 * no: only a missing worker's clients move, to the next point clockwise.
 */
int
balance_ring_lookup(const struct pool *p, uint32_t key,
    bool (*ok)(int, void *), void *arg)
{
	const struct balance *b = p->balance;
	size_t	 lo = 0, hi, i, k;

	if (b == NULL || b->nring == 0)
		return -1;
	hi = b->nring;
	while (lo < hi) {
		size_t	 mid = (lo + hi) / 2;

		if (b->ring[mid].hash < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (k = 0; k < b->nring; k++) {
		i = (lo + k) % b->nring;
		if (ok == NULL || ok(b->ring[i].slot, arg))
			return b->ring[i].slot;
	}
	return -1;
}

/* The ring's ok(): arg is the pool. */
static bool
slot_ok(int id, void *arg)
{
	const struct pool *p = arg;

	return id < p->target && chan_eligible(p, p->slots[id].cur);
}

static struct worker *
pick_ip_hash(struct pool *p, const struct conn *c)
{
	int	 id = balance_ring_lookup(p, c->iphash, slot_ok, p);

	return id >= 0 ? p->slots[id].cur : NULL;
}

static void
resize_ip_hash(struct pool *p)
{
	ring_build(state(p), p->target);
}

static struct worker *
pick_round_robin(struct pool *p, const struct conn *c)
{
	struct balance *b = state(p);
	int	 n = p->target, i, id;

	(void)c;
	for (i = 0; i < n; i++) {
		id = (int)((b->rr_cursor + (unsigned)i) % (unsigned)n);
		if (chan_eligible(p, p->slots[id].cur)) {
			b->rr_cursor = (unsigned)id + 1;
			return p->slots[id].cur;
		}
	}
	return NULL;
}

static struct worker *
pick_least_conn(struct pool *p, const struct conn *c)
{
	struct balance *b = state(p);
	struct worker *best = NULL, *w;
	int	 n = p->target, i, id;

	(void)c;
	/* Ties rotate: the scan starts after the last pick. */
	for (i = 0; i < n; i++) {
		id = (int)((b->rr_cursor + (unsigned)i) % (unsigned)n);
		w = p->slots[id].cur;
		if (chan_eligible(p, w) && (best == NULL ||
		    balance_active(w) < balance_active(best)))
			best = w;
	}
	if (best != NULL)
		b->rr_cursor = (unsigned)best->id + 1;
	return best;
}

/*
 * The balancers, one line each: the name (--balancer, the config file,
 * status, --help, the docs and completions checks all read it from
 * balancer_names below, through the option table), the function that
 * picks the worker for a connection (NULL: none eligible, it waits in the
 * queue), and the one called when the number of slots changes (NULL:
 * nothing to do).  conf.balancer is the index of its line; the first is
 * the default.  Adding one is a line here plus its pick function.
 */
#define BALANCERS(X)						\
	X("least-conn",	 pick_least_conn,	NULL)		\
	X("round-robin", pick_round_robin,	NULL)		\
	X("ip-hash",	 pick_ip_hash,		resize_ip_hash)

struct balancer {
	const char *name;
	struct worker *(*pick)(struct pool *, const struct conn *);
	void	(*resize)(struct pool *);
};

#define BALANCER_ENTRY(name, pick, resize)	{ name, pick, resize },
#define BALANCER_NAME(name, pick, resize)	name,
static const struct balancer balancers[] = { BALANCERS(BALANCER_ENTRY) };
const char *const balancer_names[] = { BALANCERS(BALANCER_NAME) NULL };
#undef BALANCER_ENTRY
#undef BALANCER_NAME

#define NBALANCERS	(sizeof(balancers) / sizeof(balancers[0]))

static const struct balancer *
balancer_of(const struct pool *p)
{
	size_t	 b = (size_t)p->conf->balancer;

	return b < NBALANCERS ? &balancers[b] : &balancers[0];
}

struct worker *
balancer_pick(struct pool *p, const struct conn *c)
{
	return balancer_of(p)->pick(p, c);
}

/*
 * The pool's target changed (or was first set): the balancer that keeps
 * state per slot (ip-hash's ring) rebuilds it.  Nothing outside balance
 * mode.
 */
void
balance_pool_resized(struct pool *p)
{
	const struct balancer *b;

	if (p->conf->mode != MODE_BALANCE)
		return;
	b = balancer_of(p);
	if (b->resize != NULL)
		b->resize(p);
}
