/*
 * bal_load: an open-loop HTTP/1.1 load generator for wpool's latency
 * benchmark (bench/41-latency.sh).  Unlike wrk it does not wait for an
 * answer before it asks again: requests arrive at a fixed mean rate
 * (Poisson), each on one of C keep-alive connections picked at random (C
 * independent clients), so a worker that holds too many connections falls
 * behind and its clients' latencies grow, which a closed-loop tool hides.
 * Each latency runs from the moment the request was due (not sent), so a
 * request waiting behind another on its connection counts its wait too.
 *
 * Requests are `GET /work?us=N` with N from a bounded Pareto distribution
 * (heavy-tailed: most requests short, a few very long).
 *
 *   bal_load --port P [--conns C] [--rate R] [--duration S] [--warmup S]
 *            [--xm US] [--alpha A] [--cap US] [--seed N] [--path PREFIX]
 *            [--closed]
 *
 * --closed: closed loop instead (each connection asks again as soon as it
 * has its answer, like wrk): achieved_rps is then the server's capacity
 * for this mix, which the benchmark uses to choose --rate.
 *
 * Prints key=value lines: conns, rate, sent, completed, errors,
 * unfinished, achieved_rps, mean_work_us, p50_us, p90_us, p99_us,
 * p999_us, max_us (latencies of requests due after the warm-up).
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pending {
	double	 due;
	long	 us;
};

struct lconn {
	int	 fd;
	bool	 busy;
	bool	 dead;
	struct pending *q;
	size_t	 qhead, qlen, qcap;
	char	 buf[4096];
	size_t	 blen;
};

static struct lconn *conns;
static int	 nconns = 64, port;
static double	 rate = 1000, duration = 5, warmup = 1;
static double	 xm = 100, alpha = 1.5, cap = 20000;
static uint64_t	 rng = 88172645463325252ULL;
static const char *prefix = "/work?us=";
static double	*lat;
static size_t	 nlat, latcap;
static double	 measure_from, gen_until;
static unsigned long sent, completed, errors, unfinished;
static double	 work_sum;
static unsigned long work_n;
static bool	 closed_loop;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ln and exp without libm (the test-bins rule links no -lm). */
static double
ln(double x)
{
	double	 z, z2, term, sum = 0;
	int	 e = 0, k;

	while (x >= 2) {
		x /= 2;
		e++;
	}
	while (x < 1) {
		x *= 2;
		e--;
	}
	/* x in [1, 2): ln x = 2 atanh((x - 1) / (x + 1)). */
	z = (x - 1) / (x + 1);
	z2 = z * z;
	term = z;
	for (k = 1; k < 40; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return 2 * sum + e * 0.69314718055994530942;
}

static double
expo(double y)
{
	double	 r, term = 1, sum = 1, scale = 1;
	int	 k, n;

	n = (int)(y / 0.69314718055994530942);
	if (y < 0)
		n--;
	r = y - n * 0.69314718055994530942;
	for (k = 1; k < 30; k++) {
		term *= r / k;
		sum += term;
	}
	for (; n > 0; n--)
		scale *= 2;
	for (; n < 0; n++)
		scale /= 2;
	return sum * scale;
}

static double
uniform(void)
{
	/* xorshift64*, to (0, 1]. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return ((double)((rng * 2685821657736338717ULL) >> 11) + 1.0) /
	    9007199254740993.0;
}

static long
sample_us(void)
{
	double	 x = xm / expo(ln(uniform()) / alpha);

	return x > cap ? (long)cap : (long)x;
}

static void
record(double due, double t)
{
	if (due < measure_from)
		return;
	if (nlat == latcap) {
		latcap = latcap ? latcap * 2 : 65536;
		if ((lat = realloc(lat, latcap * sizeof(*lat))) == NULL) {
			perror("bal_load: realloc");
			exit(1);
		}
	}
	lat[nlat++] = (t - due) * 1e6;
}

static void
push(struct lconn *c, double due, long us)
{
	if (c->qlen == c->qcap) {
		size_t	 ncap = c->qcap ? c->qcap * 2 : 16, i;
		struct pending *nq = calloc(ncap, sizeof(*nq));

		if (nq == NULL) {
			perror("bal_load: calloc");
			exit(1);
		}
		for (i = 0; i < c->qlen; i++)
			nq[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = nq;
		c->qhead = 0;
		c->qcap = ncap;
	}
	c->q[(c->qhead + c->qlen) % c->qcap].due = due;
	c->q[(c->qhead + c->qlen) % c->qcap].us = us;
	c->qlen++;
}

static void
conn_dead(struct lconn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	errors += c->qlen;
	c->qlen = 0;
	close(c->fd);
}

static void
send_next(struct lconn *c)
{
	char	 req[128];
	int	 n;
	struct pending *p;

	if (c->busy || c->dead || c->qlen == 0)
		return;
	p = &c->q[c->qhead];
	n = snprintf(req, sizeof(req), "GET %s%ld HTTP/1.1\r\nHost: b\r\n\r\n",
	    prefix, p->us);
	if (write(c->fd, req, (size_t)n) != n) {
		conn_dead(c);
		return;
	}
	c->busy = true;
	sent++;
}

/* Reads answers; each complete one finishes the head of the queue. */
static void
conn_read(struct lconn *c)
{
	ssize_t	 n;
	char	*hend, *cl;
	size_t	 need;
	long	 len;

	for (;;) {
		n = read(c->fd, c->buf + c->blen, sizeof(c->buf) - 1 - c->blen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_dead(c);
			return;
		}
		c->blen += (size_t)n;
		c->buf[c->blen] = '\0';
		while ((hend = strstr(c->buf, "\r\n\r\n")) != NULL) {
			len = 0;
			if ((cl = strcasestr(c->buf, "content-length:")) != NULL &&
			    cl < hend)
				len = strtol(cl + 15, NULL, 10);
			need = (size_t)(hend + 4 - c->buf) + (size_t)len;
			if (c->blen < need)
				break;
			memmove(c->buf, c->buf + need, c->blen - need);
			c->blen -= need;
			c->buf[c->blen] = '\0';
			if (c->qlen > 0) {
				record(c->q[c->qhead].due, now());
				c->qhead = (c->qhead + 1) % c->qcap;
				c->qlen--;
				completed++;
			}
			c->busy = false;
			if (closed_loop && now() < gen_until) {
				long	 us = sample_us();

				work_sum += (double)us;
				work_n++;
				push(c, now(), us);
			}
			send_next(c);
		}
		if (c->blen >= sizeof(c->buf) - 1) {
			conn_dead(c);
			return;
		}
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t	 k;

	if (nlat == 0)
		return 0;
	k = (size_t)(p * (double)nlat);
	if ((double)k < p * (double)nlat)
		k++;
	if (k < 1)
		k = 1;
	if (k > nlat)
		k = nlat;
	return lat[k - 1];
}

static void
usage(void)
{
	fprintf(stderr, "usage: bal_load --port P [--conns C] [--rate R] "
	    "[--duration S] [--warmup S] [--xm US] [--alpha A] [--cap US] "
	    "[--seed N] [--path PREFIX] [--closed]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	struct epoll_event ev, evs[256];
	struct sockaddr_in sa;
	struct itimerspec its;
	double	 t0, next, t, drain_until;
	int	 ep, tfd, i, n, one = 1;

	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL && strcmp(argv[i], "--closed") != 0)
			usage();
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(v);
		else if (strcmp(argv[i], "--conns") == 0)
			nconns = atoi(v);
		else if (strcmp(argv[i], "--rate") == 0)
			rate = atof(v);
		else if (strcmp(argv[i], "--duration") == 0)
			duration = atof(v);
		else if (strcmp(argv[i], "--warmup") == 0)
			warmup = atof(v);
		else if (strcmp(argv[i], "--xm") == 0)
			xm = atof(v);
		else if (strcmp(argv[i], "--alpha") == 0)
			alpha = atof(v);
		else if (strcmp(argv[i], "--cap") == 0)
			cap = atof(v);
		else if (strcmp(argv[i], "--seed") == 0)
			rng = strtoull(v, NULL, 10) * 2654435761ULL + 1;
		else if (strcmp(argv[i], "--path") == 0)
			prefix = v;
		else if (strcmp(argv[i], "--closed") == 0) {
			closed_loop = true;
			continue;
		}
		else
			usage();
		i++;
	}
	if (port <= 0 || nconns <= 0 || rate <= 0 || alpha <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK |
	    TFD_CLOEXEC)) < 0) {
		perror("bal_load");
		return 1;
	}
	if ((conns = calloc((size_t)nconns, sizeof(*conns))) == NULL)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* All connections at once, as a crowd of clients would. */
	for (i = 0; i < nconns; i++) {
		int	 fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sa,
		    sizeof(sa)) < 0) {
			perror("bal_load: connect");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conns[i].fd = fd;
	}
	/* Let the server place every connection before the clock starts. */
	usleep(200000);
	for (i = 0; i < nconns; i++) {
		int	 fl = fcntl(conns[i].fd, F_GETFL);

		fcntl(conns[i].fd, F_SETFL, fl | O_NONBLOCK);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.u64 = (uint64_t)i;
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = UINT64_MAX;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

	t0 = now();
	measure_from = t0 + warmup;
	gen_until = measure_from + duration;
	drain_until = gen_until + 5;
	next = t0 - ln(uniform()) / rate;
	if (closed_loop) {
		/* One request per connection; each answer asks the next. */
		next = gen_until;
		for (i = 0; i < nconns; i++) {
			long	 us = sample_us();

			push(&conns[i], t0, us);
			send_next(&conns[i]);
		}
	}
	for (;;) {
		t = now();
		/* Every request due by now joins its connection's queue. */
		while (next <= t && next < gen_until) {
			struct lconn *c = &conns[(int)(uniform() * nconns) %
			    nconns];
			long	 us = sample_us();

			if (next >= measure_from) {
				work_sum += (double)us;
				work_n++;
			}
			if (!c->dead) {
				push(c, next, us);
				send_next(c);
			} else if (next >= measure_from)
				errors++;
			next += -ln(uniform()) / rate;
		}
		if (t >= gen_until) {
			bool	 left = false;

			for (i = 0; i < nconns; i++)
				if (!conns[i].dead && conns[i].qlen > 0)
					left = true;
			if (!left || t >= drain_until)
				break;
		}
		memset(&its, 0, sizeof(its));
		{
			double	 wake = next < gen_until ? next : drain_until;

			its.it_value.tv_sec = (time_t)wake;
			its.it_value.tv_nsec = (long)((wake -
			    (double)(time_t)wake) * 1e9);
			if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
				its.it_value.tv_nsec = 1;
		}
		timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		n = epoll_wait(ep, evs, 256, 1000);
		for (i = 0; i < n; i++) {
			if (evs[i].data.u64 == UINT64_MAX) {
				uint64_t x;

				if (read(tfd, &x, sizeof(x)) < 0)
					continue;
			} else {
				struct lconn *c = &conns[evs[i].data.u64];

				if (!c->dead)
					conn_read(c);
			}
		}
	}
	/* What is still waiting at the end counts with what it waited. */
	t = now();
	for (i = 0; i < nconns; i++) {
		struct lconn *c = &conns[i];
		size_t	 k;

		for (k = 0; !c->dead && k < c->qlen; k++) {
			record(c->q[(c->qhead + k) % c->qcap].due, t);
			unfinished++;
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	printf("conns=%d\nrate=%.0f\nsent=%lu\ncompleted=%lu\nerrors=%lu\n"
	    "unfinished=%lu\nachieved_rps=%.0f\nmean_work_us=%.0f\n"
	    "p50_us=%.0f\np90_us=%.0f\np99_us=%.0f\np999_us=%.0f\n"
	    "max_us=%.0f\n", nconns, rate, sent, completed, errors, unfinished,
	    (double)completed / (t - t0), work_n ? work_sum / (double)work_n :
	    0, pct(0.50), pct(0.90), pct(0.99), pct(0.999),
	    nlat ? lat[nlat - 1] : 0);
	return 0;
}
