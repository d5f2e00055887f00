/*
 * test_readyprobe.c: the parsers of /proc/PID/syscall, fd links and epoll
 * fdinfo, on lines taken from a 6.x kernel; then readyprobe_tree on real
 * children of this test that wait on a listener in accept, poll, select
 * and epoll, one that waits in a grandchild, and ones that do not wait.
 */
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

static void
test_parse_syscall(void)
{
	unsigned long a[6];
	long	 nr = -5;

	is_int(readyprobe_parse_syscall("232 0x4 0x564da3c5fc10 0x3ff 0x7530 "
	    "0x0 0x0 0x7ffdaf27f0c8 0x7f4090726ef3\n", &nr, a), 1,
	    "a blocked epoll_wait parses");
	is_int(nr, 232, "its number");
	is_int((long long)a[0], 4, "its first argument, hex");
	is_int((long long)a[2], 0x3ff, "its third argument");
	is_int(readyprobe_parse_syscall("running\n", &nr, a), 0,
	    "a running task is not in a system call");
	is_int(readyprobe_parse_syscall("-1 0x7ffd 0x7f40\n", &nr, a), 0,
	    "a task blocked outside a system call");
	is_int(readyprobe_parse_syscall("", &nr, a), -EINVAL, "empty");
	is_int(readyprobe_parse_syscall("43 0x3 0x0\n", &nr, a), -EINVAL,
	    "too few arguments");
	is_int(readyprobe_parse_syscall("43 3 0 0 0 0 0 0 0\n", &nr, a),
	    -EINVAL, "arguments without 0x");
}

static void
test_parse_links(void)
{
	uint64_t ino = 0;

	is_int(readyprobe_socket_inode("socket:[12663]", &ino), 0,
	    "a socket link");
	is_int((long long)ino, 12663, "its inode");
	is_int(readyprobe_socket_inode("pipe:[12663]", &ino), -EINVAL,
	    "a pipe is not a socket");
	is_int(readyprobe_socket_inode("socket:[12663", &ino), -EINVAL,
	    "no closing bracket");
	is_int(readyprobe_socket_inode("/dev/null", &ino), -EINVAL, "a file");
}

static void
test_parse_epoll(void)
{
	static const char info[] =
	    "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n"
	    "tfd:        5 events:       19 data:                5  pos:0 "
	    "ino:1a2b sdev:9\n"
	    "tfd:        3 events:       19 data:                3  pos:0 "
	    "ino:3177 sdev:9\n";
	static const char out_only[] =
	    "tfd:        3 events:        4 data:                3  pos:0 "
	    "ino:3177 sdev:9\n";
	uint64_t want[] = { 99, 12663 }, other[] = { 12664 };

	is_int(readyprobe_parse_epoll(info, want, 2), 1,
	    "the listener's inode (hex 3177) is in the second line");
	is_int(readyprobe_parse_epoll(info, other, 1), 0,
	    "another inode is not");
	is_int(readyprobe_parse_epoll(out_only, want, 2), 0,
	    "watched for output only: not waiting for connections");
	is_int(readyprobe_parse_epoll("pos:\t0\n", want, 2), 0,
	    "an empty epoll set");
}

static void
test_parse_tcp(void)
{
	static const char head[] = "  sl  local_address rem_address   st "
	    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
	static const char lis[] = "   0: 0100007F:1F90 00000000:0000 0A "
	    "00000000:00000000 00:00000000 00000000     0        0 34761165 1 "
	    "000000001206a9cb 100 0 0 10 0\n";
	static const char est6[] = "   3: 0000000000000000FFFF00000100007F:"
	    "1F90 0000000000000000FFFF00000100007F:D2A4 01 00000000:00000000 "
	    "00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 "
	    "30 10 -1\n";
	unsigned port, st;
	uint64_t ino;

	is_int(readyprobe_parse_tcp(head, &port, &st, &ino), -EINVAL,
	    "the header line is not a socket");
	is_int(readyprobe_parse_tcp(lis, &port, &st, &ino), 0, "a listener");
	ok(port == 8080 && st == 0x0A && ino == 34761165,
	    "its port 8080, state LISTEN and inode");
	is_int(readyprobe_parse_tcp(est6, &port, &st, &ino), 0,
	    "an accepted tcp6 connection");
	ok(port == 8080 && st == 0x01 && ino == 4242,
	    "its local port, ESTABLISHED and inode");
}

enum how { ACCEPT, POLL, SELECT, EPOLL, EPOLL_BUSY, GRANDCHILD, SLEEP,
    OTHER_FD, CLOSED, UDP, SERVING };

static void
child_wait(int lfd, enum how how)
{
	struct pollfd pfd = { lfd, POLLIN, 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	fd_set	 set;
	int	 ep, other;

	switch (how) {
	case ACCEPT:
		accept(lfd, NULL, NULL);
		break;
	case POLL:
		poll(&pfd, 1, 10000);
		break;
	case SELECT:
		FD_ZERO(&set);
		FD_SET(lfd, &set);
		select(lfd + 1, &set, NULL, NULL, NULL);
		break;
	case EPOLL:
	case EPOLL_BUSY:
		ep = epoll_create1(0);
		ev.data.fd = lfd;
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
		if (how == EPOLL)
			epoll_wait(ep, &ev, 1, 10000);
		else	/* registered, but busy elsewhere right now */
			sleep(10);
		break;
	case GRANDCHILD:
		if (fork() == 0)
			accept(lfd, NULL, NULL);
		else
			pause();
		break;
	case SLEEP:
		sleep(10);
		break;
	case CLOSED:
		close(lfd);
		sleep(10);
		break;
	case UDP:
		recv(lfd, &ev, sizeof(ev), 0);
		break;
	case SERVING:
		/* The connection was queued: accept never waits. */
		other = accept(lfd, NULL, NULL);
		recv(other, &ev, sizeof(ev), 0);
		break;
	case OTHER_FD:
		other = socket(AF_INET, SOCK_STREAM, 0);
		listen(other, 1);
		accept(other, NULL, NULL);
		break;
	}
	_exit(0);
}

/*
 * Polls the probe for up to 2 s until it says ready; a child that must not
 * look ready is given 0.3 s to settle first, then looked at 10 times.
 */
static int
probe_until(pid_t pid, uint64_t ino, int want)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int	 i, r = 0;

	if (want <= 0) {
		for (i = 0; i < 30; i++)
			nanosleep(&ts, NULL);
		for (i = 0; i < 10; i++)
			if ((r = readyprobe_tree(pid, &ino, 1)) != want)
				return r;
		return want;
	}
	for (i = 0; i < 200; i++) {
		if ((r = readyprobe_tree(pid, &ino, 1)) == want)
			return r;
		nanosleep(&ts, NULL);
	}
	return r;
}

static void
test_live(enum how how, int want, const char *what)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct stat st;
	pid_t	 pid;
	int	 lfd, cfd = -1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, (how == UDP ? SOCK_DGRAM : SOCK_STREAM) |
	    SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    (how != UDP && listen(lfd, 8) < 0) || fstat(lfd, &st) < 0) {
		ok(0, "%s: a listener", what);
		return;
	}
	if (how == SERVING) {
		socklen_t sl = sizeof(sin);

		cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0 ||
		    connect(cfd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
			ok(0, "%s: a queued connection", what);
			return;
		}
	}
	if ((pid = fork()) == 0) {
		setpgid(0, 0);
		child_wait(lfd, how);
	}
	setpgid(pid, pid);
	is_int(probe_until(pid, (uint64_t)st.st_ino, want), want, "%s", what);
	if (how == SERVING) {
		uint64_t ino = (uint64_t)st.st_ino;

		is_int(readyprobe_serving(pid, &ino, 1), 1, "but it serves a "
		    "connection accepted from the listener (steady load)");
	} else if (how == OTHER_FD || how == SLEEP) {
		uint64_t ino = (uint64_t)st.st_ino;

		is_int(readyprobe_serving(pid, &ino, 1), 0, "%s: serves none "
		    "of the listener's connections", what);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(lfd);
	if (cfd >= 0)
		close(cfd);
}

int
main(void)
{
	uint64_t ino = 1;

	test_parse_syscall();
	test_parse_links();
	test_parse_epoll();
	test_parse_tcp();
	test_live(ACCEPT, 1, "a child blocked in accept() on the listener");
	test_live(POLL, 1, "a child in poll() with the listener");
	test_live(SELECT, 1, "a child in select() with the listener");
	test_live(EPOLL, 1, "a child in epoll_wait() on a set with it");
	test_live(EPOLL_BUSY, 1,
	    "a child that registered it in epoll and sleeps");
	test_live(GRANDCHILD, 1, "a grandchild blocked in accept()");
	test_live(SLEEP, 0, "a child that only sleeps is not ready");
	test_live(OTHER_FD, 0, "a child that accepts on another socket");
	test_live(CLOSED, -ENOENT,
	    "a child that closed the listener cannot be seen");
	test_live(UDP, 1, "a child blocked in recvfrom() on a UDP socket");
	test_live(SERVING, 0, "a child serving a connection it accepted, "
	    "never waiting in accept, is not seen waiting");
	is_int(readyprobe_tree(0x3ffffff0, &ino, 1) < 0, 1,
	    "a pid that does not exist cannot be seen");
	is_int(readyprobe_tree(getpid(), &ino, 0), -ENOENT, "no listener");
	return done_testing();
}
