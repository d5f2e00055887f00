/*
 * test_fdrecv.c: fdrecv_dispose() closes at once only what cannot block
 * (TCP sockets after a reset, pipes, anonymous inodes, memfds, local
 * files, /dev/null), and hands a terminal, whose close may wait for its
 * output to drain, and a Unix socket, which may hold descriptors in
 * flight, to a holder child: the master's copy goes, the last one is the
 * child's, and once the child has exited no copy is left anywhere.
 */
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

static bool
is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void
stop(void *arg)
{
	(void)arg;
	loop_break();
}

/* Runs the loop for sec seconds: the holder is made from a timer. */
static void
run_loop(double sec)
{
	struct timer t;

	timer_init(&t, stop, NULL);
	timer_set(&t, sec);
	loop_run();
	timer_cancel(&t);
}

static void
test_quick(void)
{
	int	 p[2], sv[1], ev, mfd, dn, f;
	char	 path[] = "/tmp/wpool-unit-fdrecv.XXXXXX";

	ok(pipe(p) == 0, "a pipe");
	fdrecv_dispose(p[1]);
	ok(!is_open(p[1]), "a pipe's end is closed at once");
	close(p[0]);
	ok((sv[0] = socket(AF_INET, SOCK_STREAM, 0)) >= 0, "a TCP socket");
	fdrecv_dispose(sv[0]);
	ok(!is_open(sv[0]), "a TCP socket is closed at once");
	ev = eventfd(0, 0);
	fdrecv_dispose(ev);
	ok(!is_open(ev), "an eventfd is closed at once");
	mfd = memfd_create("fdrecv", 0);
	fdrecv_dispose(mfd);
	ok(!is_open(mfd), "a memfd is closed at once");
	dn = open("/dev/null", O_WRONLY);
	fdrecv_dispose(dn);
	ok(!is_open(dn), "/dev/null is closed at once");
	f = mkstemp(path);
	unlink(path);
	fdrecv_dispose(f);
	ok(!is_open(f), "a file in /tmp is closed at once");
}

static void
test_held(void)
{
	struct pollfd pfd;
	char	 buf[4096];
	int	 m, s, sv[2], status, eio = 0;
	pid_t	 pid;
	ssize_t	 n;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	ok(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0, "a pty");
	s = open(ptsname(m), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	ok(s >= 0, "its slave");
	/* Output nobody reads. */
	memset(buf, 'y', sizeof(buf));
	while (write(s, buf, sizeof(buf)) > 0)
		;
	fdrecv_dispose(s);
	ok(is_open(s), "a terminal is not closed in place");
	/* Its queue could hold descriptors in flight. */
	ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	    "a Unix socket pair");
	fdrecv_dispose(sv[0]);
	ok(is_open(sv[0]), "a Unix socket is not closed in place");
	run_loop(0.3);
	ok(!is_open(s) && !is_open(sv[0]), "the master's copies are gone "
	    "after a turn of the loop");
	pid = waitpid(-1, &status, 0);
	ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the holder exited by itself");
	/* No copy left: reading the master side ends in EIO. */
	pfd.fd = m;
	pfd.events = POLLIN;
	while (poll(&pfd, 1, 2000) > 0) {
		if ((n = read(m, buf, sizeof(buf))) < 0) {
			eio = errno == EIO;
			break;
		}
	}
	ok(eio, "every copy of the terminal is closed");
	close(m);
	ok(read(sv[1], buf, 1) == 0, "and of the Unix socket: its peer reads EOF");
	close(sv[1]);
}

int
main(void)
{
	log_init("test_fdrecv", 0);
	if (loop_init() < 0)
		return 1;
	test_quick();
	test_held();
	return done_testing();
}
