/*
 * reuseport_naive: the naive per-process SO_REUSEPORT pool that wpool's
 * reuseport mode is compared with (bench/20-reuseport-kill.sh,
 * bench/21-distribution.sh).  Each worker binds its own SO_REUSEPORT socket
 * on HOST:PORT just before exec, and nobody else holds it: the socket dies
 * with its worker, and so do the connections queued on it (the kernel
 * resets them), while the kernel's 4-tuple hash keeps sending new ones to
 * it until it is gone.  A dead worker is replaced at once, on a new socket.
 *
 * Usage: reuseport_naive -n N [-H HOST] [-p PORT] [--backlog B] -- COMMAND...
 * Each worker gets its socket at fd 3 with LISTEN_FDS=1, LISTEN_PID (its
 * own pid), LISTEN_FDNAMES=l0 and WPOOL_WORKER_ID (0..N-1), like a wpool
 * worker.  With -p 0 (the default) a free port is chosen first.  Log lines
 * on stderr: `naive: listening on HOST:PORT` and
 * `naive: worker I started (pid P)`.  TERM or INT: TERM to every worker,
 * wait for them, exit 0.
 *
 * Built by the scripts: cc -O2 -std=c11 -D_GNU_SOURCE -o reuseport_naive
 * bench/reuseport_naive.c
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS	256

static struct sockaddr_in addr;
static int backlog = 1024;
static char **cmd;
static pid_t kids[MAX_WORKERS];
static int nkids;

static void
die(const char *what)
{
	fprintf(stderr, "naive: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
bind_reuseport(bool do_listen)
{
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		die("SO_REUSEPORT");
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("bind");
	if (do_listen && listen(fd, backlog) < 0)
		die("listen");
	return fd;
}

static pid_t
spawn(int id)
{
	pid_t pid = fork();
	char buf[32];
	int fd;

	if (pid < 0)
		die("fork");
	if (pid > 0) {
		fprintf(stderr, "naive: worker %d started (pid %d)\n", id,
		    (int)pid);
		return pid;
	}
	/* The child: its own socket, at fd 3, then the command. */
	sigset_t set;

	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	fd = bind_reuseport(true);
	if (fd != 3) {
		if (dup2(fd, 3) < 0)
			die("dup2");
		close(fd);
	}
	fcntl(3, F_SETFD, 0);
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	setenv("LISTEN_PID", buf, 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "l0", 1);
	snprintf(buf, sizeof(buf), "%d", id);
	setenv("WPOOL_WORKER_ID", buf, 1);
	setenv("WPOOL_GENERATION", "0", 1);
	execvp(cmd[0], cmd);
	fprintf(stderr, "naive: cannot run '%s': %s\n", cmd[0],
	    strerror(errno));
	_exit(127);
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, i, sig;
	sigset_t set;
	bool stopping = false;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			cmd = argv + i + 1;
			break;
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			nkids = atoi(argv[++i]);
		else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc)
			host = argv[++i];
		else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc)
			backlog = atoi(argv[++i]);
		else
			break;
	}
	if (cmd == NULL || cmd[0] == NULL || nkids < 1 ||
	    nkids > MAX_WORKERS || port < 0 || port > 65535) {
		fputs("usage: reuseport_naive -n N [-H HOST] [-p PORT] "
		    "[--backlog B] -- COMMAND...\n", stderr);
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "naive: -H: not an IPv4 address: %s\n", host);
		return 2;
	}
	if (port == 0) {
		/* Let the kernel choose, then give the port to the workers. */
		socklen_t sl = sizeof(addr);
		int fd = bind_reuseport(false);

		if (getsockname(fd, (struct sockaddr *)&addr, &sl) < 0)
			die("getsockname");
		close(fd);
	}
	fprintf(stderr, "naive: listening on %s:%d\n", host,
	    ntohs(addr.sin_port));
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < nkids; i++)
		kids[i] = spawn(i);
	for (;;) {
		pid_t pid;
		int status, alive = 0;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (i = 0; i < nkids; i++)
				if (kids[i] == pid) {
					kids[i] = 0;
					if (!stopping)
						kids[i] = spawn(i);
				}
		for (i = 0; i < nkids; i++)
			alive += kids[i] > 0;
		if (stopping && alive == 0)
			return 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = true;
			for (i = 0; i < nkids; i++)
				if (kids[i] > 0)
					kill(kids[i], SIGTERM);
		}
	}
}
