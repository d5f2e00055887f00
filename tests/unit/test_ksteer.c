/*
 * test_ksteer: ksteer.c's eBPF placement against the real kernel: four
 * SO_REUSEPORT listeners on loopback, connections made to them, and the
 * accept queue each one lands in (TCP_INFO), as the weights change; and a
 * closing listener's queue moved to the others (select-or-migrate).
 * Needs CAP_BPF, as the master does to use it: CI runs as root.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

#define N	4

static int lfd[N];
static struct sockaddr_in sin_;
static int clients[512];
static int nclients;

static int
queued(int fd)
{
	struct tcp_info ti;
	socklen_t sl = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0)
		return -1;
	return (int)ti.tcpi_unacked;
}

static void
connect_n(int n)
{
	int	 i, s;

	for (i = 0; i < n && nclients < (int)(sizeof(clients) /
	    sizeof(clients[0])); i++) {
		if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(s, (struct sockaddr *)&sin_, sizeof(sin_)) < 0) {
			fprintf(stderr, "# connect: %s\n", strerror(errno));
			exit(1);
		}
		clients[nclients++] = s;
	}
	usleep(20000);	/* the handshakes' last ACKs */
}

static void
weigh(struct ksteer *k, uint32_t b0, uint32_t b1, uint32_t b2, uint32_t b3)
{
	static const int ids[N] = { 0, 1, 2, 3 };
	uint32_t base[N] = { b0, b1, b2, b3 };

	ksteer_weigh(k, ids, base, N);
}

int
main(void)
{
	struct ksteer *k;
	char	 err[256];
	socklen_t sl;
	int	 i, one = 1, q[N], sum;

	if (ksteer_new(1, &k, err, sizeof(err)) < 0) {
		printf("1..1\nnot ok 1 - ksteer_new: %s (needs CAP_BPF: run "
		    "as root)\n", err);
		return 1;
	}
	memset(&sin_, 0, sizeof(sin_));
	sin_.sin_family = AF_INET;
	sin_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < N; i++) {
		lfd[i] = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(lfd[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (bind(lfd[i], (struct sockaddr *)&sin_, sizeof(sin_)) < 0 ||
		    listen(lfd[i], 512) < 0)
			return 1;
		sl = sizeof(sin_);
		getsockname(lfd[i], (struct sockaddr *)&sin_, &sl);
		is_int(ksteer_join(k, 0, i, lfd[i], err, sizeof(err)), 0,
		    "listener %d joins the socket array", i);
	}
	weigh(k, 0, 0, 0, 0);
	is_int(ksteer_attach(k, 0, lfd[0], N, err, sizeof(err)), 0,
	    "the program loads and attaches: %s", err);
	ok(ksteer_migrates(k), "loaded as select-or-migrate (Linux >= 5.14)");
	is_int(ksteer_attach(k, 0, lfd[0], N, err, sizeof(err)), 0,
	    "attaching for the same slots again does nothing");

	/* A burst onto four equal slots: spread evenly, not at random. */
	connect_n(64);
	for (i = 0; i < N; i++) {
		is_int(queued(lfd[i]), 16, "burst of 64: 16 on slot %d", i);
		is_int((int)ksteer_placed(k, i), 16, "and counted 16 placed");
	}

	/* Slot 1 stuck: the next 30 go to the three others, 10 each. */
	weigh(k, 0, KSTEER_STUCK, 0, 0);
	connect_n(30);
	is_int(queued(lfd[1]), 16, "a stuck slot gets none");
	for (i = 0; i < N; i++)
		if (i != 1)
			is_int(queued(lfd[i]), 26, "slot %d gets 10 more", i);

	/* Back: raised to the others' count, it gets its share, no more. */
	weigh(k, 0, 0, 0, 0);
	is_int((int)ksteer_placed(k, 1), 26,
	    "a slot weighed 0 again starts from the fewest placed elsewhere");
	connect_n(8);
	for (i = 0; i < N; i++)
		is_int(queued(lfd[i]), i == 1 ? 18 : 28,
		    "then the 8 next are shared: slot %d", i);

	/* None ready: the waiting ones take them; an out one never. */
	weigh(k, KSTEER_WAIT, KSTEER_WAIT, KSTEER_WAIT, KSTEER_OUT);
	connect_n(6);
	is_int(queued(lfd[3]), 28, "an out slot gets none");
	sum = queued(lfd[0]) + queued(lfd[1]) + queued(lfd[2]);
	is_int(sum, 28 + 18 + 28 + 6, "the waiting ones get all 6");

	/* Every one out: the kernel's own hash, still accepted somewhere. */
	weigh(k, KSTEER_OUT, KSTEER_OUT, KSTEER_OUT, KSTEER_OUT);
	connect_n(4);
	sum = 0;
	for (i = 0; i < N; i++)
		sum += (q[i] = queued(lfd[i]));
	is_int(sum, 28 + 18 + 28 + 6 + 28 + 4,
	    "with none to choose, connections still land (the kernel picks)");

	/* Slot 2 closes with its queue: moved to the others, none reset. */
	weigh(k, 0, 0, KSTEER_OUT, 0);
	ksteer_leave(k, 2);
	close(lfd[2]);
	usleep(20000);
	is_int(queued(lfd[0]) + queued(lfd[1]) + queued(lfd[3]), sum,
	    "a closing listener's %d queued connections move to the others",
	    q[2]);

	ksteer_free(k);
	for (i = 0; i < nclients; i++)
		close(clients[i]);
	return done_testing();
}
