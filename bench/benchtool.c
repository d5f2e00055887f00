/*
 * benchtool: the timing helper of wpool's benchmarks (the bench scripts).  Each
 * subcommand measures one thing with CLOCK_MONOTONIC (or compares with a
 * $EPOCHREALTIME taken by the calling script) and prints plain
 * `key=value` lines the scripts read.  It also contains the minimal
 * baselines (a ten-line supervisor, a bare fork/exec loop, a bare
 * sd_notify receiver) that wpool's figures are divided by.
 *
 * Built by the scripts themselves into their temp dir:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -o benchtool bench/benchtool.c \
 *       $(pkg-config --cflags --libs json-c)
 *
 * Everything it starts it kills and reaps before it exits.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <json-c/json.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_SAMPLES	4096

static void
die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fputs("benchtool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (e)
		fprintf(stderr, ": %s", strerror(e));
	fputc('\n', stderr);
	exit(1);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_s(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted samples. */
static double
pct(const double *v, int n, double p)
{
	int k;

	if (n == 0)
		return -1;
	if (p == 50 && n % 2 == 0)
		return (v[n / 2 - 1] + v[n / 2]) / 2;
	k = (int)((p / 100.0) * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void
print_stats(const char *prefix, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("%s_n=%d\n", prefix, n);
	if (n == 0)
		return;
	printf("%s_median_ms=%.3f\n", prefix, pct(v, n, 50));
	printf("%s_p90_ms=%.3f\n", prefix, pct(v, n, 90));
	printf("%s_min_ms=%.3f\n", prefix, v[0]);
	printf("%s_max_ms=%.3f\n", prefix, v[n - 1]);
}

static long
num(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s)
		errno = 0, die("%s: not a number: '%s'", what, s);
	return v;
}

static double
dnum(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s)
		errno = 0, die("%s: not a number: '%s'", what, s);
	return v;
}

/* ---- HTTP probe ---------------------------------------------------- */

/*
 * One `GET /` on a fresh connection; returns the pid in the answer
 * (`pid=N ...`), or -1 on refusal, reset, EOF without an answer or
 * timeout.
 */
static long
http_pid(int port, int timeout_ms)
{
	static const char req[] =
	    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
	    .tv_usec = (timeout_ms % 1000) * 1000 };
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	char *p;
	int fd;
	long pid = -1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		goto out;
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
		goto out;
	while (len < sizeof(buf) - 1 &&
	    (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	if (strncmp(buf, "HTTP/1.", 7) == 0 && (p = strstr(buf, "pid=")))
		pid = strtol(p + 4, NULL, 10);
out:
	close(fd);
	return pid;
}

/*
 * Polls `GET /` every poll_us until a pid other than old answers; returns
 * the time of that answer, or -1 after timeout_s.
 */
static double
wait_new_pid(int port, long old, double poll_us, double timeout_s,
    long *newpid)
{
	double deadline = mono() + timeout_s;

	while (mono() < deadline) {
		long pid = http_pid(port, 2000);

		if (pid > 0 && pid != old) {
			*newpid = pid;
			return mono();
		}
		sleep_s(poll_us / 1e6);
	}
	return -1;
}

/* ---- children ------------------------------------------------------ */

static int
tcp_listener(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int one = 1, fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind");
	if (listen(fd, 1024) == -1)
		die("listen");
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * fork + exec argv with the listener (if any) at fd 3 and the systemd
 * variables set, like a supervisor does; exec failure is reported through
 * a close-on-exec pipe, which is also how `--ready exec` is detected.
 * Returns the pid; *exec_fd (if not NULL) gets the read end of the pipe.
 */
static pid_t
spawn(char **argv, int lfd, const char *notify, int *exec_fd)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		die("pipe2");
	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		char buf[32];
		int e;
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (lfd >= 0) {
			if (lfd == 3)
				fcntl(3, F_SETFD, 0);
			else if (dup2(lfd, 3) == -1)
				_exit(127);
			setenv("LISTEN_FDS", "1", 1);
			snprintf(buf, sizeof(buf), "%d", (int)getpid());
			setenv("LISTEN_PID", buf, 1);
		}
		if (notify != NULL)
			setenv("NOTIFY_SOCKET", notify, 1);
		execvp(argv[0], argv);
		e = errno;
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(pfd[1]);
	if (exec_fd != NULL)
		*exec_fd = pfd[0];
	else
		close(pfd[0]);
	return pid;
}

/* Waits for the exec pipe: 0 once exec succeeded, else the errno. */
static int
wait_exec(int fd)
{
	int e = 0;
	ssize_t r;

	while ((r = read(fd, &e, sizeof(e))) == -1 && errno == EINTR)
		;
	close(fd);
	return r == (ssize_t)sizeof(e) ? e : 0;
}

static void
kill_reap(pid_t pid, int sig)
{
	kill(pid, sig);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/* ---- subcommands --------------------------------------------------- */

/* http-pid PORT: the pid that answers `GET /`. */
static int
cmd_http_pid(int argc, char **argv)
{
	long pid;

	if (argc != 1)
		errno = 0, die("usage: http-pid PORT");
	pid = http_pid((int)num(argv[0], "PORT"), 2000);
	printf("%ld\n", pid);
	return pid > 0 ? 0 : 1;
}

/*
 * restart PORT COUNT POLL_US PAUSE_MS: COUNT times, SIGKILL the worker that
 * answers `GET /` and time until a different pid answers.
 */
static int
cmd_restart(int argc, char **argv)
{
	static double v[MAX_SAMPLES];
	int port, count, n = 0, fails = 0;
	double poll_us, pause_ms;

	if (argc != 4)
		errno = 0, die("usage: restart PORT COUNT POLL_US PAUSE_MS");
	port = (int)num(argv[0], "PORT");
	count = (int)num(argv[1], "COUNT");
	poll_us = dnum(argv[2], "POLL_US");
	pause_ms = dnum(argv[3], "PAUSE_MS");
	if (count > MAX_SAMPLES)
		count = MAX_SAMPLES;
	for (int i = 0; i < count; i++) {
		long old = http_pid(port, 5000), newpid = -1;
		double t0, t1;

		if (old <= 0)
			errno = 0, die("no answer on port %d", port);
		t0 = mono();
		if (kill((pid_t)old, SIGKILL) == -1)
			die("kill %ld", old);
		t1 = wait_new_pid(port, old, poll_us, 10, &newpid);
		if (t1 < 0) {
			fails++;
			printf("sample=%d killed=%ld timeout\n", i, old);
			continue;
		}
		v[n++] = (t1 - t0) * 1e3;
		printf("sample=%d killed=%ld replacement=%ld ms=%.3f\n", i,
		    old, newpid, v[n - 1]);
		fflush(stdout);
		sleep_s(pause_ms / 1e3);
	}
	printf("failures=%d\n", fails);
	print_stats("restart", v, n);
	return 0;
}

/*
 * restart-baseline COUNT POLL_US PAUSE_MS -- CMD...: the same measurement
 * against the smallest possible supervisor: this process holds the
 * listener, kills its one child with SIGKILL, reaps it, forks and execs a
 * new one at once.
 */
static int
cmd_restart_baseline(int argc, char **argv)
{
	static double v[MAX_SAMPLES];
	int count, lfd, port, n = 0, fails = 0;
	double poll_us, pause_ms;
	pid_t child;
	long dummy;

	if (argc < 5 || strcmp(argv[3], "--") != 0)
		errno = 0, die("usage: restart-baseline COUNT POLL_US "
		    "PAUSE_MS -- CMD...");
	count = (int)num(argv[0], "COUNT");
	poll_us = dnum(argv[1], "POLL_US");
	pause_ms = dnum(argv[2], "PAUSE_MS");
	if (count > MAX_SAMPLES)
		count = MAX_SAMPLES;
	argv += 4;
	lfd = tcp_listener(&port);
	child = spawn(argv, lfd, NULL, NULL);
	if (wait_new_pid(port, -2, poll_us, 10, &dummy) < 0)
		errno = 0, die("baseline server never answered");
	for (int i = 0; i < count; i++) {
		long newpid = -1;
		double t0, t1;

		t0 = mono();
		kill_reap(child, SIGKILL);
		child = spawn(argv, lfd, NULL, NULL);
		t1 = wait_new_pid(port, -2, poll_us, 10, &newpid);
		if (t1 < 0 || newpid != (long)child) {
			fails++;
			continue;
		}
		v[n++] = (t1 - t0) * 1e3;
		sleep_s(pause_ms / 1e3);
	}
	kill_reap(child, SIGKILL);
	printf("failures=%d\n", fails);
	print_stats("baseline", v, n);
	return 0;
}

/*
 * spawn COUNT -- CMD...: fork+exec COUNT copies of CMD, time until every
 * exec succeeded, then kill and reap them all.
 */
static int
cmd_spawn(int argc, char **argv)
{
	pid_t *pids;
	int *fds, count, failed = 0;
	double t0, t1, t2;

	if (argc < 3 || strcmp(argv[1], "--") != 0)
		errno = 0, die("usage: spawn COUNT -- CMD...");
	count = (int)num(argv[0], "COUNT");
	argv += 2;
	if ((pids = calloc((size_t)count, sizeof(*pids))) == NULL ||
	    (fds = calloc((size_t)count, sizeof(*fds))) == NULL)
		die("calloc");
	t0 = mono();
	for (int i = 0; i < count; i++)
		pids[i] = spawn(argv, -1, NULL, &fds[i]);
	t1 = mono();
	for (int i = 0; i < count; i++)
		if (wait_exec(fds[i]) != 0)
			failed++;
	t2 = mono();
	for (int i = 0; i < count; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < count; i++)
		while (waitpid(pids[i], NULL, 0) == -1 && errno == EINTR)
			;
	printf("forked_ms=%.3f\n", (t1 - t0) * 1e3);
	printf("all_exec_ms=%.3f\n", (t2 - t0) * 1e3);
	printf("exec_failures=%d\n", failed);
	return failed ? 1 : 0;
}

/* ---- control socket ------------------------------------------------ */

static int
ctl_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		errno = 0, die("socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * One request, one response line; returns the parsed response (the caller
 * puts it) or NULL when the pool cannot be reached.
 */
static json_object *
ctl_call(const char *path, const char *req, size_t *resp_len)
{
	static char *buf;
	static size_t cap;
	size_t len = 0;
	json_object *o;
	ssize_t r;
	int fd;

	if ((fd = ctl_connect(path)) < 0)
		return NULL;
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req) ||
	    write(fd, "\n", 1) != 1) {
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 65536 > cap) {
			cap = (cap + 65536) * 2;
			if ((buf = realloc(buf, cap)) == NULL)
				die("realloc");
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (buf[len - 1] == '\n')
			break;
	}
	close(fd);
	if (len == 0)
		return NULL;
	buf[len] = '\0';
	if (resp_len != NULL)
		*resp_len = len;
	o = json_tokener_parse(buf);
	return o;
}

static long long
jint(json_object *o, const char *key)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return -1;
	return json_object_get_int64(v);
}

static const char *
jstr(json_object *o, const char *key)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/*
 * wait-status SOCK T0 TIMEOUT POLL_MS KEY=N...: polls `status` until every
 * top-level KEY equals N; prints the time since T0 (a $EPOCHREALTIME).
 */
static int
cmd_wait_status(int argc, char **argv)
{
	double t0, deadline, poll_ms;
	int polls = 0;

	if (argc < 5)
		errno = 0, die("usage: wait-status SOCK T0 TIMEOUT POLL_MS "
		    "KEY=N...");
	t0 = dnum(argv[1], "T0");
	deadline = mono() + dnum(argv[2], "TIMEOUT");
	poll_ms = dnum(argv[3], "POLL_MS");
	while (mono() < deadline) {
		json_object *st = ctl_call(argv[0], "{\"cmd\":\"status\"}",
		    NULL);
		bool all = st != NULL;

		polls++;
		for (int i = 4; all && i < argc; i++) {
			char key[64];
			const char *eq = strchr(argv[i], '=');

			if (eq == NULL || (size_t)(eq - argv[i]) >= sizeof(key))
				errno = 0, die("bad KEY=N: %s", argv[i]);
			memcpy(key, argv[i], (size_t)(eq - argv[i]));
			key[eq - argv[i]] = '\0';
			if (jint(st, key) != num(eq + 1, key))
				all = false;
		}
		json_object_put(st);
		if (all) {
			printf("elapsed_ms=%.3f\npolls=%d\n",
			    (real() - t0) * 1e3, polls);
			return 0;
		}
		sleep_s(poll_ms / 1e3);
	}
	printf("elapsed_ms=timeout\npolls=%d\n", polls);
	return 1;
}

/*
 * wait-log FILE TEXT COUNT T0 TIMEOUT: polls FILE every 0.5 ms until COUNT
 * lines contain TEXT; prints the time since T0 (a $EPOCHREALTIME).
 */
static int
cmd_wait_log(int argc, char **argv)
{
	char buf[65536], line[4096];
	size_t ll = 0;
	int fd, count, seen = 0;
	double t0, deadline;

	if (argc != 5)
		errno = 0, die("usage: wait-log FILE TEXT COUNT T0 TIMEOUT");
	count = (int)num(argv[2], "COUNT");
	t0 = dnum(argv[3], "T0");
	deadline = mono() + dnum(argv[4], "TIMEOUT");
	while ((fd = open(argv[0], O_RDONLY | O_CLOEXEC)) == -1) {
		if (mono() > deadline)
			die("%s", argv[0]);
		sleep_s(0.0005);
	}
	while (mono() < deadline) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r <= 0) {
			sleep_s(0.0005);
			continue;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			if (strstr(line, argv[1]) != NULL && ++seen >= count) {
				printf("elapsed_ms=%.3f\n", (real() - t0) * 1e3);
				close(fd);
				return 0;
			}
		}
	}
	close(fd);
	printf("elapsed_ms=timeout\nseen=%d\n", seen);
	return 1;
}

/*
 * ctl SOCK JSON COUNT: COUNT round trips of one request on fresh
 * connections; latency statistics and the response size.
 */
static int
cmd_ctl(int argc, char **argv)
{
	static double v[MAX_SAMPLES];
	int count, n = 0;
	size_t len = 0;

	if (argc != 3)
		errno = 0, die("usage: ctl SOCK JSON COUNT");
	count = (int)num(argv[2], "COUNT");
	if (count > MAX_SAMPLES)
		count = MAX_SAMPLES;
	for (int i = 0; i < count; i++) {
		double t0 = mono();
		json_object *r = ctl_call(argv[0], argv[1], &len);

		if (r == NULL)
			errno = 0, die("no answer from %s", argv[0]);
		v[n++] = (mono() - t0) * 1e3;
		json_object_put(r);
	}
	printf("response_bytes=%zu\n", len);
	print_stats("ctl", v, n);
	return 0;
}

/*
 * reload SOCK POLL_MS TIMEOUT: sends `reload`, then polls `status` until
 * that generation's reload is done (or failed); prints the wall time.
 */
static int
cmd_reload(int argc, char **argv)
{
	json_object *r, *st, *ro;
	long long gen;
	double t0, deadline, poll_ms;

	if (argc != 3)
		errno = 0, die("usage: reload SOCK POLL_MS TIMEOUT");
	poll_ms = dnum(argv[1], "POLL_MS");
	t0 = mono();
	deadline = t0 + dnum(argv[2], "TIMEOUT");
	if ((r = ctl_call(argv[0], "{\"cmd\":\"reload\"}", NULL)) == NULL)
		errno = 0, die("no answer from %s", argv[0]);
	gen = jint(r, "generation");
	if (!json_object_get_boolean(json_object_object_get(r, "ok")))
		errno = 0, die("reload refused: %s",
		    json_object_to_json_string(r));
	json_object_put(r);
	while (mono() < deadline) {
		const char *state;

		sleep_s(poll_ms / 1e3);
		if ((st = ctl_call(argv[0], "{\"cmd\":\"status\"}", NULL)) ==
		    NULL)
			continue;
		if (!json_object_object_get_ex(st, "reload", &ro) ||
		    jint(ro, "generation") < gen) {
			json_object_put(st);
			continue;
		}
		state = jstr(ro, "state");
		if (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
		    jint(ro, "generation") > gen) {
			printf("generation=%lld\nstate=%s\nelapsed_ms=%.3f\n",
			    gen, state, (mono() - t0) * 1e3);
			json_object_put(st);
			return strcmp(state, "failed") == 0;
		}
		json_object_put(st);
	}
	printf("generation=%lld\nstate=timeout\nelapsed_ms=timeout\n", gen);
	return 1;
}

/*
 * notify-start COUNT -- CMD...: COUNT times, start CMD with a listener at
 * fd 3 and NOTIFY_SOCKET, time until it sends READY=1, then send TERM and
 * time until it exited.  The floor under a `--ready notify` reload slot.
 */
static int
cmd_notify_start(int argc, char **argv)
{
	static double vs[MAX_SAMPLES], vt[MAX_SAMPLES];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char path[64];
	int count, lfd, nfd, port, n = 0;

	if (argc < 3 || strcmp(argv[1], "--") != 0)
		errno = 0, die("usage: notify-start COUNT -- CMD...");
	count = (int)num(argv[0], "COUNT");
	if (count > MAX_SAMPLES)
		count = MAX_SAMPLES;
	argv += 2;
	lfd = tcp_listener(&port);
	/* An abstract socket: nothing to clean up. */
	snprintf(path, sizeof(path), "@wpool-bench-notify-%d", (int)getpid());
	if ((nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	memcpy(sun.sun_path + 1, path + 1, strlen(path) - 1);
	if (bind(nfd, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct
	    sockaddr_un, sun_path) + strlen(path))) == -1)
		die("bind %s", path);
	for (int i = 0; i < count; i++) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };
		char msg[4096];
		double t0, t1, t2;
		pid_t pid;
		bool ready = false;

		t0 = mono();
		pid = spawn(argv, lfd, path, NULL);
		while (!ready && poll(&p, 1, 10000) > 0) {
			ssize_t r = recv(nfd, msg, sizeof(msg) - 1, 0);

			if (r <= 0)
				continue;
			msg[r] = '\0';
			if (strncmp(msg, "READY=1", 7) == 0 ||
			    strstr(msg, "\nREADY=1") != NULL)
				ready = true;
		}
		t1 = mono();
		kill_reap(pid, SIGTERM);
		t2 = mono();
		if (!ready)
			errno = 0, die("no READY=1 from %s", argv[0]);
		vs[n] = (t1 - t0) * 1e3;
		vt[n++] = (t2 - t1) * 1e3;
	}
	print_stats("start", vs, n);
	print_stats("stop", vt, n);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "http-pid", cmd_http_pid },
		{ "restart", cmd_restart },
		{ "restart-baseline", cmd_restart_baseline },
		{ "spawn", cmd_spawn },
		{ "wait-status", cmd_wait_status },
		{ "wait-log", cmd_wait_log },
		{ "ctl", cmd_ctl },
		{ "reload", cmd_reload },
		{ "notify-start", cmd_notify_start },
	};

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		errno = 0, die("usage: benchtool SUBCOMMAND ARGS...");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 2, argv + 2);
	errno = 0;
	die("unknown subcommand '%s'", argv[1]);
	return 1;
}
