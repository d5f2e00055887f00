/*
 * rp_load: an HTTP/1.0-style load client for wpool's reuseport tests and
 * benchmarks.  It opens new connections to HOST:PORT at a fixed rate (open
 * loop: a slow server does not slow the arrivals down), sends one
 * `GET PATH` with `Connection: close` on each, reads the answer to EOF, and
 * counts what happened to every connection:
 *
 *   ok       a complete `200` answer, then EOF
 *   reset    ECONNRESET (or EPIPE) at any point
 *   refused  ECONNREFUSED on connect
 *   timeout  no complete answer within --timeout
 *   closed   EOF before a complete answer
 *   other    anything else (errno or a non-200 status)
 *
 * With -r 0 it is closed-loop instead: -c connections at all times, each
 * replaced as soon as it ends (as fast as the server goes).
 *
 * Usage: rp_load -p PORT [-H HOST] [-r RATE/s] [-d SECONDS] [-n TOTAL]
 *                [-c MAX_IN_FLIGHT] [-t TIMEOUT_MS] [-P PATH] [-v]
 *                [--stop-file FILE]
 *
 * Output (stdout, one line, at the end; or when SIGTERM/SIGINT arrives):
 *   sent=N ok=N reset=N refused=N timeout=N closed=N other=N late=N
 *   p50_ms=X p90_ms=X p99_ms=X max_ms=X secs=X rate=X workers=K cv=X
 *   pids=PID:COUNT,...
 * where `workers` counts the distinct `pid=N` found in the answers (the
 * first one of each body), `cv` is the coefficient of variation (population
 * standard deviation / mean) of the per-pid counts, and `late` counts the
 * starts that were delayed because -c connections were already in flight.
 * -v prints one stderr line per failed connection (time since start in ms,
 * kind, errno text).  The exit status is 0 when it ran, 2 on bad usage.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS	4096
#define RESP_MAX	4096

enum kind { K_OK, K_RESET, K_REFUSED, K_TIMEOUT, K_CLOSED, K_OTHER, K_N };
static const char *const kind_name[K_N] = { "ok", "reset", "refused",
    "timeout", "closed", "other" };

struct conn {
	int	 fd;
	bool	 connected;
	size_t	 sent;
	size_t	 got;
	double	 start;
	char	 resp[RESP_MAX];
	struct conn *prev, *next;
};

static struct {
	const char *host;
	int	 port;
	double	 rate;
	double	 duration;
	long	 total;
	int	 max_conc;
	double	 timeout;
	const char *path;
	bool	 verbose;
	const char *stop_file;
} opt = { "127.0.0.1", -1, 100, 5, -1, 512, 5.0, "/", false, NULL };

static struct sockaddr_in dst;
static char request[512];
static size_t request_len;
static long counts[K_N];
static long sent, late;
static double *lat;
static size_t nlat, caplat;
static struct { long pid, n; } pids[MAX_PIDS];
static int npids;
static struct conn *inflight;
static int ninflight;
static int epfd;
static double t0;
static volatile sig_atomic_t stop_now;

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fputs("usage: rp_load -p PORT [-H HOST] [-r RATE] [-d SECONDS] "
	    "[-n TOTAL] [-c MAX_IN_FLIGHT]\n"
	    "               [-t TIMEOUT_MS] [-P PATH] [-v] "
	    "[--stop-file FILE]\n", stderr);
	exit(2);
}

static double
num(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0) {
		fprintf(stderr, "rp_load: %s: invalid value '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

static void
add_pid(long pid)
{
	for (int i = 0; i < npids; i++)
		if (pids[i].pid == pid) {
			pids[i].n++;
			return;
		}
	if (npids < MAX_PIDS) {
		pids[npids].pid = pid;
		pids[npids++].n = 1;
	}
}

static void
add_latency(double v)
{
	if (nlat == caplat) {
		double *n;

		caplat = caplat ? caplat * 2 : 4096;
		if ((n = realloc(lat, caplat * sizeof(*lat))) == NULL) {
			perror("rp_load: realloc");
			exit(1);
		}
		lat = n;
	}
	lat[nlat++] = v;
}

static void
conn_end(struct conn *c, enum kind k, int err)
{
	double now = mono();

	counts[k]++;
	if (k == K_OK)
		add_latency((now - c->start) * 1000.0);
	else if (opt.verbose)
		fprintf(stderr, "rp_load: %.1f ms: %s%s%s\n",
		    (c->start - t0) * 1000.0, kind_name[k],
		    err ? ": " : "", err ? strerror(err) : "");
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		inflight = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ninflight--;
	free(c);
}

static enum kind
errno_kind(int e)
{
	if (e == ECONNRESET || e == EPIPE)
		return K_RESET;
	if (e == ECONNREFUSED)
		return K_REFUSED;
	if (e == ETIMEDOUT)
		return K_TIMEOUT;
	return K_OTHER;
}

static void
conn_start(void)
{
	struct conn *c;
	struct epoll_event ev;
	int fd, one = 1;

	sent++;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (opt.verbose)
			perror("rp_load: socket");
		counts[K_OTHER]++;
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		perror("rp_load: calloc");
		exit(1);
	}
	c->fd = fd;
	c->start = mono();
	c->next = inflight;
	if (inflight != NULL)
		inflight->prev = c;
	inflight = c;
	ninflight++;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLOUT | EPOLLIN;
	ev.data.ptr = c;
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;

		conn_end(c, errno_kind(e), e);
	}
}

/* A complete answer: status line, headers, Content-Length bytes of body. */
static void
conn_done_reading(struct conn *c)
{
	char *hdr_end, *cl, *body;
	long len = -1;

	c->resp[c->got < RESP_MAX ? c->got : RESP_MAX - 1] = '\0';
	if (strncmp(c->resp, "HTTP/1.", 7) != 0 ||
	    (hdr_end = strstr(c->resp, "\r\n\r\n")) == NULL) {
		conn_end(c, c->got == 0 ? K_CLOSED : K_OTHER, 0);
		return;
	}
	body = hdr_end + 4;
	if ((cl = strcasestr(c->resp, "\r\nContent-Length:")) != NULL &&
	    cl < hdr_end)
		len = strtol(cl + 17, NULL, 10);
	if (len >= 0 && (size_t)(c->resp + c->got - body) < (size_t)len) {
		conn_end(c, K_CLOSED, 0);
		return;
	}
	if (strncmp(c->resp + 9, "200", 3) != 0) {
		conn_end(c, K_OTHER, 0);
		return;
	}
	if ((body = strstr(body, "pid=")) != NULL)
		add_pid(strtol(body + 4, NULL, 10));
	conn_end(c, K_OK, 0);
}

static void
conn_event(struct conn *c, uint32_t events)
{
	ssize_t n;

	if (!c->connected) {
		int e = 0;
		socklen_t sl = sizeof(e);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
			e = errno;
		if (e != 0) {
			conn_end(c, errno_kind(e), e);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLIN | EPOLLHUP | EPOLLERR)))
			return;
		c->connected = true;
	}
	while (c->sent < request_len) {
		n = send(c->fd, request + c->sent, request_len - c->sent,
		    MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			conn_end(c, errno_kind(errno), errno);
			return;
		}
		c->sent += (size_t)n;
		if (c->sent == request_len) {
			struct epoll_event ev;

			memset(&ev, 0, sizeof(ev));
			ev.events = EPOLLIN;
			ev.data.ptr = c;
			epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
	for (;;) {
		if (c->got >= RESP_MAX - 1) {
			char sink[4096];

			n = recv(c->fd, sink, sizeof(sink), 0);
		} else
			n = recv(c->fd, c->resp + c->got,
			    RESP_MAX - 1 - c->got, 0);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			conn_end(c, errno_kind(errno), errno);
			return;
		}
		if (n == 0) {
			conn_done_reading(c);
			return;
		}
		if (c->got < RESP_MAX - 1)
			c->got += (size_t)n;
	}
}

static void
expire(double now)
{
	struct conn *c, *next;

	for (c = inflight; c != NULL; c = next) {
		next = c->next;
		if (now - c->start >= opt.timeout)
			conn_end(c, K_TIMEOUT, 0);
	}
}

/* No libm: the Makefile links only libbsd, inih and json-c. */
static double
sqrt_nolibm(double v)
{
	double x = v > 1 ? v : 1;

	if (v <= 0)
		return 0;
	for (int i = 0; i < 64; i++)
		x = (x + v / x) / 2;
	return x;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t i;

	if (nlat == 0)
		return 0;
	/* The nearest-rank percentile: ceil(p/100 * n), 1-based. */
	double r = p / 100.0 * (double)nlat;

	i = (size_t)r;
	if ((double)i < r)
		i++;
	if (i > 0)
		i--;
	if (i >= nlat)
		i = nlat - 1;
	return lat[i];
}

static void
report(double secs)
{
	double mean = 0, var = 0, cv = 0;

	qsort(lat, nlat, sizeof(*lat), cmp_double);
	for (int i = 0; i < npids; i++)
		mean += (double)pids[i].n;
	if (npids > 0) {
		mean /= npids;
		for (int i = 0; i < npids; i++)
			var += ((double)pids[i].n - mean) *
			    ((double)pids[i].n - mean);
		var /= npids;
		cv = mean > 0 ? sqrt_nolibm(var) / mean : 0;
	}
	printf("sent=%ld", sent);
	for (int k = 0; k < K_N; k++)
		printf(" %s=%ld", kind_name[k], counts[k]);
	printf(" late=%ld p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	    "secs=%.2f rate=%.0f workers=%d cv=%.3f pids=", late, pct(50),
	    pct(90), pct(99), nlat ? lat[nlat - 1] : 0.0, secs,
	    secs > 0 ? (double)sent / secs : 0.0, npids, cv);
	for (int i = 0; i < npids; i++)
		printf("%s%ld:%ld", i ? "," : "", pids[i].pid, pids[i].n);
	printf("\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];
	struct sigaction sa;
	double next_start, end, last_expire = 0, now;
	bool starting = true;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;

		if (strcmp(a, "-p") == 0 && more)
			opt.port = (int)num(argv[++i], "-p");
		else if (strcmp(a, "-H") == 0 && more)
			opt.host = argv[++i];
		else if (strcmp(a, "-r") == 0 && more)
			opt.rate = num(argv[++i], "-r");
		else if (strcmp(a, "-d") == 0 && more)
			opt.duration = num(argv[++i], "-d");
		else if (strcmp(a, "-n") == 0 && more)
			opt.total = (long)num(argv[++i], "-n");
		else if (strcmp(a, "-c") == 0 && more)
			opt.max_conc = (int)num(argv[++i], "-c");
		else if (strcmp(a, "-t") == 0 && more)
			opt.timeout = num(argv[++i], "-t") / 1000.0;
		else if (strcmp(a, "-P") == 0 && more)
			opt.path = argv[++i];
		else if (strcmp(a, "--stop-file") == 0 && more)
			opt.stop_file = argv[++i];
		else if (strcmp(a, "-v") == 0)
			opt.verbose = true;
		else
			usage();
	}
	if (opt.port <= 0 || opt.port > 65535 || opt.max_conc < 1)
		usage();
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)opt.port);
	if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) {
		fprintf(stderr, "rp_load: -H: not an IPv4 address: '%s'\n",
		    opt.host);
		return 2;
	}
	request_len = (size_t)snprintf(request, sizeof(request),
	    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
	    opt.path, opt.host, opt.port);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("rp_load: epoll_create1");
		return 1;
	}
	t0 = next_start = mono();
	end = t0 + opt.duration;
	while (!stop_now && (starting || ninflight > 0)) {
		int n, wait_ms = 10;

		now = mono();
		if (starting && (now >= end || (opt.total >= 0 &&
		    sent >= opt.total) || (opt.stop_file != NULL &&
		    access(opt.stop_file, F_OK) == 0)))
			starting = false;
		if (starting && opt.rate > 0) {
			while (now >= next_start && (opt.total < 0 ||
			    sent < opt.total)) {
				if (ninflight >= opt.max_conc) {
					late++;
					next_start = now + 0.0005;
					break;
				}
				conn_start();
				next_start += 1.0 / opt.rate;
			}
			wait_ms = (int)((next_start - mono()) * 1000.0);
			if (wait_ms < 0)
				wait_ms = 0;
			if (wait_ms > 10)
				wait_ms = 10;
		} else if (starting) {
			while (ninflight < opt.max_conc && (opt.total < 0 ||
			    sent < opt.total))
				conn_start();
		}
		n = epoll_wait(epfd, evs, 256, wait_ms);
		for (int i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		now = mono();
		if (now - last_expire >= 0.01) {
			expire(now);
			last_expire = now;
		}
	}
	report(mono() - t0);
	return 0;
}
