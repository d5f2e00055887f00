/*
 * test_sdnotify.c: wpool as a client of its own service manager: which
 * sockets the fd store gave back a listener adopts (its name and address,
 * and SO_REUSEPORT as the mode wants), what is dropped from the store,
 * and the datagrams the manager gets.  The manager is a datagram socket
 * under a mkdtemp directory; the stored sockets are bound on 127.0.0.1.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

static int mgr = -1;

/*
 * A slot's socket, at an fd far above those the test or the code under
 * test opens (the manager's socket, wpool's own to it): a runner may have
 * left fds of its own open at 8, 9 or 10.
 */
#define FRESH_FD	200

/* A TCP socket on 127.0.0.1, listening, at fd `at`; returns its port. */
static int
tcp_at(int at, bool reuseport)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int	 fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&sin,
	    &sl) < 0) {
		perror("tcp_at");
		exit(1);
	}
	/* socket() may have given `at` itself, when every fd below is open. */
	if (fd != at) {
		dup2(fd, at);
		close(fd);
	}
	return ntohs(sin.sin_port);
}

/* The next datagram the manager got, and whether an fd came with it. */
static const char *
next_msg(bool *had_fd)
{
	static char buf[1024];
	union {
		struct cmsghdr h;
		char	 b[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
	struct cmsghdr *c;
	ssize_t	 n;

	*had_fd = false;
	if ((n = recvmsg(mgr, &mh, MSG_DONTWAIT)) < 0)
		return "(none)";
	buf[n] = '\0';
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_type == SCM_RIGHTS) {
			int	 fd;

			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			close(fd);
			*had_fd = true;
		}
	return buf;
}

static void
spec(struct listener *l, const char *fmt, int port)
{
	char	 s[128], err[256];

	snprintf(s, sizeof(s), fmt, port);
	memset(l, 0, sizeof(*l));
	if (listener_parse(s, l, err, sizeof(err)) < 0) {
		printf("# %s: %s\n", s, err);
		exit(1);
	}
}

int
main(void)
{
	char	 dir[] = "/tmp/wpool-sdnotify.XXXXXX", path[128], env[64];
	char	 err[256], longname[300];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct listener web, api, rp, fresh, lng, renamed;
	struct conf c;
	struct pool p;
	bool	 fd;
	int	 pweb, pold, got, i;

	/* fds 3..7 for the store's sockets, as LISTEN_FDS puts them. */
	for (i = 3; i <= 7; i++)
		dup2(open("/dev/null", O_RDONLY), i);
	pweb = tcp_at(3, false);
	tcp_at(4, false);		/* "api", on another port than asked */
	tcp_at(5, false);		/* "rp", not a reuseport socket */
	tcp_at(6, false);		/* "stale": no listener of that name */
	pold = tcp_at(7, false);	/* "old": its listener is "new" now */
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/notify.sock", dir);
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	mgr = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(mgr, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return 1;
	setenv("NOTIFY_SOCKET", path, 1);
	setenv("LISTEN_FDS", "5", 1);
	snprintf(env, sizeof(env), "%d", (int)getpid());
	setenv("LISTEN_PID", env, 1);
	setenv("LISTEN_FDNAMES", "web:api:rp:stale:old", 1);

	conf_defaults(&c);
	c.workers = 1;
	is_int(sdnotify_init(&c, err, sizeof(err)), 0, "init");
	ok(getenv("LISTEN_FDS") == NULL, "LISTEN_FDS is taken, not passed on");

	spec(&web, "127.0.0.1:%d,name=web", pweb);
	is_int(sdnotify_adopt(&web, 0, 16, false, &got), 0,
	    "same name, same address: adopted");
	is_int(got, 3, "the stored socket itself");
	ok(fcntl(3, F_GETFD) & FD_CLOEXEC, "close-on-exec, as every fd");
	is_str(next_msg(&fd), "(none)", "adopted: not stored again");
	web.fd = 3;
	is_int(sdnotify_adopt(&web, 1, 16, false, &got), -ENOENT,
	    "slot 1 is web.slot1: none stored");

	/* web's port: surely not the one api's socket is bound to. */
	spec(&api, "127.0.0.1:%d,name=api", pweb);
	is_int(sdnotify_adopt(&api, 0, 16, false, &got), -ENOENT,
	    "same name, another port: bound anew");
	is_str(next_msg(&fd), "FDSTOREREMOVE=1\nFDNAME=api",
	    "and the stored one out of the store first");
	ok(fcntl(4, F_GETFD) >= 0, "but kept, for a listener bound there");

	spec(&rp, "127.0.0.1:%d,name=rp", 0);
	is_int(sdnotify_adopt(&rp, 0, 16, true, &got), -ENOENT,
	    "reuseport wanted, socket without SO_REUSEPORT: bound anew");
	is_str(next_msg(&fd), "FDSTOREREMOVE=1\nFDNAME=rp", "dropped");

	spec(&renamed, "127.0.0.1:%d,name=new", pold);
	is_int(sdnotify_adopt(&renamed, 0, 16, false, &got), 0,
	    "another name, the same address: adopted, not bound over");
	is_int(got, 7, "the socket stored as old");
	is_str(next_msg(&fd), "FDSTOREREMOVE=1\nFDNAME=old",
	    "its old name dropped from the store");
	is_str(next_msg(&fd), "FDSTORE=1\nFDNAME=new", "then stored as new");
	ok(fd, "with the socket");
	ok(fcntl(7, F_GETFD) >= 0, "and still open");

	spec(&fresh, "127.0.0.1:%d,name=fresh", 0);
	tcp_at(FRESH_FD, true);
	sdnotify_store(&fresh, 2, FRESH_FD);
	is_str(next_msg(&fd), "FDSTORE=1\nFDNAME=fresh.slot2",
	    "a slot's socket is stored as NAME.slotK");
	ok(fd, "with the socket in SCM_RIGHTS");

	memset(longname, 'x', 250);
	longname[250] = '\0';
	spec(&lng, "127.0.0.1:%d,name=x", 0);
	free(lng.name);
	lng.name = xstrdup(longname);
	sdnotify_store(&lng, 12, FRESH_FD);
	is_str(next_msg(&fd), "(none)",
	    "a name longer than FDNAME= takes is not stored");

	/* Nothing takes "stale": dropped when the pool starts. */
	c.argv = (char *[]){ "true", NULL };
	pool_init(&p, &c);
	p.sdnotify = sdnotify_state();
	sdnotify_start(&p);
	is_str(next_msg(&fd), "FDSTOREREMOVE=1\nFDNAME=stale",
	    "a stored socket no listener took is dropped");
	ok(fcntl(6, F_GETFD) < 0, "and closed");
	ok(fcntl(4, F_GETFD) < 0 && fcntl(5, F_GETFD) < 0,
	    "as are those out of the store already, without a word");
	is_str(next_msg(&fd), "STATUS=starting: 0/1 ready",
	    "then the first STATUS=");
	sdnotify_update(&p);
	is_str(next_msg(&fd), "(none)", "nothing new: nothing sent");

	/* A slot scaled away while the pool runs: the store drops it. */
	sdnotify_forget_fd(&p, FRESH_FD);
	is_str(next_msg(&fd), "FDSTOREREMOVE=1\nFDNAME=fresh.slot2",
	    "a stored socket that closes is dropped by its name");
	sdnotify_stopping(&p);
	is_str(next_msg(&fd), "STOPPING=1\nSTATUS=stopping: 0 workers left",
	    "STOPPING=1 even while the pool still runs (shutdown delay)");
	sdnotify_update(&p);
	is_str(next_msg(&fd), "(none)", "and never READY=1 after it");

	sdnotify_close();
	pool_free(&p);
	c.argv = NULL;
	conf_free(&c);
	listener_free(&web);
	listener_free(&api);
	listener_free(&rp);
	listener_free(&fresh);
	listener_free(&lng);
	listener_free(&renamed);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
