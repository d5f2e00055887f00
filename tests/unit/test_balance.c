/*
 * test_balance.c: the balance-mode channel messages a worker sends, as
 * balance_parse_message reads them: the common {"type":"closed","id":N}
 * on its fast path, everything else through json-c, with the same answers;
 * and the watch over a channel (balance_watch): when a worker that leaves
 * connections unread has them taken back, and when it is replaced.
 * And the balancers' table: its names (the --balancer values), and the
 * resize hook pool.c calls when the target changes, which rebuilds
 * ip-hash's ring and nothing else.
 */
#include <errno.h>
#include <string.h>

#include "wpool.h"
#include "tap.h"

static void
check(const char *msg, int want, long long want_id)
{
	long long id = -12345;
	int	 r = balance_parse_message(msg, strlen(msg), &id);

	is_int(r, want, "%s -> %d", msg, want);
	if (want == 0 || want == 2)
		is_int(id, want_id, "%s -> id %lld", msg, want_id);
}

/*
 * A worker's channel over time: look() is one look at it, t seconds in,
 * with `read` bytes read by the worker so far, `unread` waiting, and
 * `closes` reported.
 */
static struct chan_watch cw;

static int
look(double t, uint64_t read, long unread, unsigned long closes)
{
	return balance_watch(&cw, read, unread, closes, t);
}

static void
watch_tests(void)
{
	const double G = BALANCE_STALL_GRACE, S = BALANCE_STUCK_SECONDS;
	int	 r;

	/* A worker that reads as fast as it gets: never anything to do. */
	memset(&cw, 0, sizeof(cw));
	balance_watch_start(&cw, 0, 0, 0);
	is_int(look(0.5, 100, 50, 0), 0, "reading: nothing to do");
	is_int(look(1.0, 200, 50, 0), 0, "still reading");
	is_int(look(10.0, 300, 50, 0), 0, "progress long after: nothing");
	/* Nothing unread: holding connections for ever is no stall. */
	is_int(look(100.0, 300, 0, 0), 0, "nothing unread for 90 s");
	is_int(look(100.0 + S * 2, 300, 0, 0), 0, "nothing unread, much later");

	/* One that stops reading: taken back after the grace, once logged. */
	memset(&cw, 0, sizeof(cw));
	balance_watch_start(&cw, 0, 0, 0);
	is_int(look(G / 2, 0, 80, 0), 0, "unread for half the grace");
	r = look(G, 0, 80, 0);
	is_int(r, WATCH_PULL | WATCH_STALLED, "unread for the grace: pulled");
	ok(cw.stalled, "and stalled");
	/* Taken back, nothing is unread; it stays stalled, no new pull. */
	is_int(look(G + 0.5, 0, 0, 0), 0, "stalled, nothing unread");
	ok(cw.stalled, "still stalled with nothing unread");
	is_int(look(S - 0.5, 0, 0, 0), 0, "not yet replaced");
	is_int(look(S, 0, 0, 0), WATCH_RECYCLE, "replaced after %g s", S);
	is_int(look(S + 1, 0, 0, 0), 0, "replaced once");

	/* Progress resets the clock: reads, then closes. */
	memset(&cw, 0, sizeof(cw));
	balance_watch_start(&cw, 0, 0, 0);
	is_int(look(0.9 * G, 0, 80, 0), 0, "no progress yet");
	is_int(look(1.8 * G, 40, 40, 0), 0, "it read some: the clock restarts");
	is_int(look(2.7 * G, 40, 40, 1), 0, "it closed one: restarts again");
	r = look(3.8 * G, 40, 40, 1);
	is_int(r, WATCH_PULL | WATCH_STALLED, "then nothing for the grace");

	/* A stalled worker that reports one closed is back, clock reset. */
	ok(balance_watch_closed(&cw, 4.0 * G), "a close ends the stall");
	ok(!cw.stalled, "not stalled");
	ok(!balance_watch_closed(&cw, 4.0 * G), "a second close: no stall to end");
	is_int(look(4.0 * G + S - 0.5, 40, 0, 2), 0, "back: nothing to do");

	/* A stalled worker that reads what it was sent since is back. */
	memset(&cw, 0, sizeof(cw));
	balance_watch_start(&cw, 0, 0, 0);
	is_int(look(G, 0, 90, 0), WATCH_PULL | WATCH_STALLED, "stalled");
	is_int(look(G + 0.5, 0, 70, 0), WATCH_PULL, "a probe unread: pulled");
	ok(cw.stalled, "still stalled");
	is_int(look(G + 1.0, 70, 0, 0), WATCH_RESUMED, "the next one read");
	ok(!cw.stalled, "no longer stalled");
	is_int(look(G + 1.0 + S, 70, 0, 0), 0, "and not replaced");

	/* Probes unread do not move the clock: replaced in time. */
	memset(&cw, 0, sizeof(cw));
	balance_watch_start(&cw, 0, 0, 0);
	is_int(look(G, 0, 90, 0), WATCH_PULL | WATCH_STALLED, "stalled again");
	is_int(look(2 * G, 0, 70, 0), WATCH_PULL, "probe pulled");
	is_int(look(S, 0, 70, 0), WATCH_PULL | WATCH_RECYCLE,
	    "probe pulled, and replaced at %g s", S);

	/* Sent to while the channel was empty: the grace starts then. */
	memset(&cw, 0, sizeof(cw));
	balance_watch_start(&cw, 0, 0, 0);
	is_int(look(50.0, 0, 0, 0), 0, "empty for 50 s");
	balance_watch_start(&cw, 0, 0, 60.0);
	is_int(look(60.0 + G / 2, 0, 70, 0), 0, "sent at 60 s: not yet");
	is_int(look(60.0 + G, 0, 70, 0), WATCH_PULL | WATCH_STALLED,
	    "sent at 60 s: pulled at 60 s + grace");
}

/* Which slot each of NKEYS keys lands on; how many distinct slots. */
#define NKEYS	4000
static int owner[NKEYS];

static int
ring_owners(const struct pool *p, int *out)
{
	bool	 seen[64] = { false };
	int	 k, id, n = 0;

	for (k = 0; k < NKEYS; k++) {
		id = balance_ring_lookup(p, (uint32_t)k * 2654435761u, NULL,
		    NULL);
		out[k] = id;
		if (id >= 0 && id < 64 && !seen[id]) {
			seen[id] = true;
			n++;
		}
	}
	return n;
}

static void
table_tests(void)
{
	struct conf c;
	struct pool p;
	int	 now[NKEYS], k, moved = 0, wrong = 0, maxid = -1;

	/* The --balancer values, in their order, least-conn the default. */
	is_str(balancer_names[0], "least-conn", "balancer 0 least-conn");
	is_str(balancer_names[1], "round-robin", "balancer 1 round-robin");
	is_str(balancer_names[2], "ip-hash", "balancer 2 ip-hash");
	ok(balancer_names[3] == NULL, "three balancers");

	memset(&c, 0, sizeof(c));
	memset(&p, 0, sizeof(p));
	p.conf = &c;
	c.mode = MODE_BALANCE;
	c.balancer = parse_name("ip-hash", balancer_names);
	p.target = 3;
	balance_pool_resized(&p);
	is_int(ring_owners(&p, owner), 3, "ip-hash, 3 slots: keys on all 3");
	for (k = 0; k < NKEYS; k++)
		if (owner[k] > maxid)
			maxid = owner[k];
	is_int(maxid, 2, "and on none past slot 2");

	/* Scaled to 5: only keys that move to the new slots move. */
	p.target = 5;
	balance_pool_resized(&p);
	is_int(ring_owners(&p, now), 5, "scaled to 5: keys on all 5");
	for (k = 0; k < NKEYS; k++)
		if (now[k] != owner[k]) {
			moved++;
			if (now[k] < 3)
				wrong++;
		}
	is_int(wrong, 0, "no key moved between the old slots");
	ok(moved > NKEYS / 5 && moved < NKEYS * 3 / 5,
	    "about 2/5 of the keys moved (%d of %d)", moved, NKEYS);

	/* The other balancers and modes keep no ring: it is left alone. */
	c.balancer = parse_name("least-conn", balancer_names);
	p.target = 2;
	balance_pool_resized(&p);
	is_int(ring_owners(&p, owner), 5, "least-conn: resize leaves the ring");
	c.balancer = parse_name("round-robin", balancer_names);
	balance_pool_resized(&p);
	is_int(ring_owners(&p, owner), 5, "round-robin: resize leaves the ring");
	c.balancer = parse_name("ip-hash", balancer_names);
	c.mode = MODE_SHARED;
	balance_pool_resized(&p);
	is_int(ring_owners(&p, owner), 5, "shared mode: resize leaves the ring");
	c.mode = MODE_BALANCE;
	balance_pool_resized(&p);
	is_int(ring_owners(&p, owner), 2, "ip-hash at 2: keys on 2 slots");
	balance_free(&p);
	ok(p.balance == NULL, "balance_free: the ring is gone");
	is_int(balance_ring_lookup(&p, 1, NULL, NULL), -1,
	    "and no slot owns a key");
}

int
main(void)
{
	watch_tests();
	table_tests();
	/* The fast path: the exact form every worker library sends. */
	check("{\"type\":\"closed\",\"id\":0}", 0, 0);
	check("{\"type\":\"closed\",\"id\":7}", 0, 7);
	check("{\"type\":\"closed\",\"id\":123456789012345678}", 0,
	    123456789012345678LL);
	/* Other spellings of the same message: json-c, same answer. */
	check("{ \"type\": \"closed\", \"id\": 42 }", 0, 42);
	check("{\"id\":42,\"type\":\"closed\"}", 0, 42);
	check("{\"type\":\"closed\",\"id\":9223372036854775807}", 0,
	    9223372036854775807LL);
	check("{\"type\":\"closed\",\"id\":42,\"extra\":true}", 0, 42);
	/* json-c reads leading zeros; the fast path leaves them to it. */
	check("{\"type\":\"closed\",\"id\":007}", 0, 7);
	/* ready */
	check("{\"type\":\"ready\"}", 1, 0);
	/*
	 * A hello: version 2, or a newer one read as 2, or 1 (3: stays
	 * version 1); a batch of 1 or more, 253 at most as read.
	 */
	check("{\"type\":\"hello\",\"version\":2,\"batch\":64}", 2, 64);
	check("{\"batch\":1,\"version\":2,\"type\":\"hello\"}", 2, 1);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":253}", 2, 253);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":254}", 2, 253);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":9000000000}", 2, 253);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":0}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":-1}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":\"8\"}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":8.0}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":2,"
	    "\"batch\":99999999999999999999}", 2, 253);
	check("{\"type\":\"hello\",\"version\":3,\"batch\":8}", 2, 8);
	check("{\"type\":\"hello\",\"version\":0,\"batch\":8}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":1,\"batch\":8}", 3, 8);
	check("{\"type\":\"hello\",\"batch\":8}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":2}", -EINVAL, 0);
	check("{\"type\":\"hello\",\"version\":2,\"batch\":8}x", -EINVAL, 0);
	/* Not a closed message, though it starts like one. */
	check("{\"type\":\"closed\",\"id\":}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":12x}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":1.5}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":\"3\"}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":3}}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":3", -EINVAL, 0);
	check("{\"type\":\"closed\"}", -EINVAL, 0);
	check("{\"type\":\"opened\",\"id\":3}", -EINVAL, 0);
	check("[\"closed\",3]", -EINVAL, 0);
	check("", -EINVAL, 0);
	check("garbage", -EINVAL, 0);
	return done_testing();
}
