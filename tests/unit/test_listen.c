/*
 * test_listen.c: listener specs (-b) from text to struct listener, the
 * sockets listener_open makes of them, and sockaddr_format.  Sockets are
 * bound on 127.0.0.1 port 0 and under a mkdtemp directory only.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

static char errbuf[512];

static void
skip(const char *why)
{
	printf("ok %d # skip %s\n", ++tap_n, why);
}

static int
parse(const char *spec, struct listener *l)
{
	errbuf[0] = '\0';
	return listener_parse(spec, l, errbuf, sizeof(errbuf));
}

static void
test_parse_tcp(void)
{
	struct listener l;
	int	 r;

	r = parse("127.0.0.1:8080", &l);
	is_int(r, 0, "127.0.0.1:8080 parses");
	is_int(l.type, L_TCP, "127.0.0.1:8080: tcp");
	is_str(l.host, "127.0.0.1", "127.0.0.1:8080: host");
	is_str(l.port, "8080", "127.0.0.1:8080: port");
	is_str(l.spec, "127.0.0.1:8080", "127.0.0.1:8080: spec");
	ok(l.name == NULL, "127.0.0.1:8080: no name until validate");
	is_int(l.fd, -1, "not open yet: fd -1");
	is_int(l.mode, -1, "mode unset: -1");
	ok(l.backlog == 0 && l.rcvbuf == 0 && l.sndbuf == 0 && !l.nodelay &&
	    !l.v6only && !l.freebind && !l.defer_accept,
	    "no options: everything unset");
	listener_free(&l);

	r = parse("tcp://127.0.0.1:80", &l);
	is_int(r, 0, "tcp://127.0.0.1:80 parses");
	is_int(l.type, L_TCP, "tcp://: tcp");
	is_str(l.host, "127.0.0.1", "tcp://: host");
	is_str(l.port, "80", "tcp://: port");
	/* Server::Starter's HOST:PORT form, like a plain bind. */
	is_str(l.spec, "127.0.0.1:80", "tcp://: spec is HOST:PORT");
	listener_free(&l);

	r = parse("[::1]:8080", &l);
	is_int(r, 0, "[::1]:8080 parses");
	is_str(l.host, "::1", "[::1]:8080: host without brackets");
	is_str(l.port, "8080", "[::1]:8080: port");
	is_str(l.spec, "[::1]:8080", "[::1]:8080: spec keeps the brackets");
	listener_free(&l);

	r = parse(":8080", &l);
	is_int(r, 0, ":8080 parses");
	ok(l.host == NULL, ":8080: host NULL (all addresses)");
	is_str(l.port, "8080", ":8080: port");
	is_str(l.spec, ":8080", ":8080: spec");
	listener_free(&l);

	r = parse("localhost:0", &l);
	is_int(r, 0, "localhost:0 parses");
	is_str(l.host, "localhost", "localhost:0: host name kept");
	is_str(l.port, "0", "localhost:0: port 0");
	listener_free(&l);

	r = parse("0.0.0.0:65535", &l);
	is_int(r, 0, "port 65535 parses");
	listener_free(&l);

	r = parse("127.0.0.1:8080,nodelay,defer_accept,v6only,freebind,"
	    "backlog=64,rcvbuf=256K,sndbuf=65536,name=web", &l);
	is_int(r, 0, "every tcp option parses");
	if (r == 0) {
		ok(l.nodelay, "nodelay");
		ok(l.defer_accept, "defer_accept");
		ok(l.v6only, "v6only");
		ok(l.freebind, "freebind");
		is_int(l.backlog, 64, "backlog=64");
		is_int(l.rcvbuf, 256 * 1024, "rcvbuf=256K");
		is_int(l.sndbuf, 65536, "sndbuf=65536");
		is_str(l.name, "web", "name=web");
		is_str(l.spec, "127.0.0.1:8080", "spec without the options");
	}
	listener_free(&l);

	r = parse("127.0.0.1:8080,,nodelay,", &l);
	is_int(r, 0, "empty options between commas are ignored");
	ok(r == 0 && l.nodelay, "and the others still apply");
	listener_free(&l);
}

static void
test_parse_other_types(void)
{
	struct listener l;
	int	 r;

	r = parse("unix:/tmp/x.sock,mode=0660,name=api", &l);
	is_int(r, 0, "unix:/tmp/x.sock,mode=0660,name=api parses");
	is_int(l.type, L_UNIX, "unix: type");
	is_str(l.path, "/tmp/x.sock", "unix: path");
	is_int(l.mode, 0660, "unix: mode 0660 (octal)");
	is_str(l.name, "api", "unix: name");
	/* SERVER_STARTER_PORT's spelling of a unix socket is its path. */
	is_str(l.spec, "/tmp/x.sock", "unix: spec is the path");
	ok(l.host == NULL && l.port == NULL, "unix: no host, no port");
	listener_free(&l);

	r = parse("unix:relative.sock", &l);
	is_int(r, 0, "unix:relative.sock parses");
	is_str(l.path, "relative.sock", "relative path kept as given");
	listener_free(&l);

	r = parse("unix:/tmp/s,mode=600", &l);
	is_int(r, 0, "mode=600 parses as octal");
	is_int(l.mode, 0600, "mode=600 is 0600");
	listener_free(&l);

	r = parse("unix:/tmp/s,owner=root:root", &l);
	is_int(r, 0, "owner=root:root parses");
	is_str(l.owner, "root:root", "owner kept");
	listener_free(&l);

	r = parse("udp://127.0.0.1:53", &l);
	is_int(r, 0, "udp://127.0.0.1:53 parses");
	is_int(l.type, L_UDP, "udp: type");
	is_str(l.host, "127.0.0.1", "udp: host");
	is_str(l.port, "53", "udp: port");
	is_str(l.spec, "udp://127.0.0.1:53", "udp: spec keeps udp://");
	listener_free(&l);

	r = parse("udp://127.0.0.1:53,rcvbuf=1M,name=dns", &l);
	is_int(r, 0, "udp with options parses");
	is_str(l.spec, "udp://127.0.0.1:53", "udp: spec without the options");
	is_int(l.rcvbuf, 1 << 20, "udp: rcvbuf=1M");
	listener_free(&l);

	r = parse("fd:3,name=x", &l);
	is_int(r, 0, "fd:3,name=x parses");
	is_int(l.type, L_FD, "fd: type");
	is_int(l.adopt_fd, 3, "fd: adopt_fd 3");
	is_str(l.name, "x", "fd: name");
	is_str(l.spec, "fd:3", "fd: spec");
	listener_free(&l);

	r = parse("systemd", &l);
	is_int(r, 0, "systemd parses");
	is_int(l.type, L_SYSTEMD, "systemd: type");
	is_str(l.spec, "systemd", "systemd: spec");
	listener_free(&l);
}

static void
parse_bad(const char *spec, const char *needle)
{
	struct listener l;
	int	 r;

	memset(&l, 0xa5, sizeof(l));
	r = parse(spec, &l);
	is_int(r, -EINVAL, "'%s' refused", spec);
	ok(errbuf[0] != '\0' && (needle == NULL || strstr(errbuf, needle)),
	    "'%s': error says '%s': %s", spec, needle ? needle : "", errbuf);
	/* Nothing to free after a refusal (listener_free is harmless). */
	ok(l.spec == NULL && l.host == NULL && l.port == NULL &&
	    l.path == NULL && l.name == NULL && l.owner == NULL,
	    "'%s': no string left allocated", spec);
}

static void
test_parse_errors(void)
{
	parse_bad("", "empty");
	parse_bad("8080", "no port");
	parse_bad("127.0.0.1", "no port");
	parse_bad("127.0.0.1:99999", "99999");
	parse_bad("127.0.0.1:65536", "65536");
	parse_bad("127.0.0.1:abc", "abc");
	parse_bad("127.0.0.1:", "port");
	parse_bad("127.0.0.1:-1", "-1");
	parse_bad("127.0.0.1: 80", "port");
	parse_bad("::1:80", "brackets");
	parse_bad("[::1]8080", "[IPV6]:PORT");
	parse_bad("[::1:8080", "[IPV6]:PORT");
	parse_bad("unix:", "path");
	parse_bad("unix:,mode=0600", "path");
	parse_bad("unix:/tmp/s,mode=999", "999");
	parse_bad("unix:/tmp/s,mode=0660x", "0660x");
	parse_bad("unix:/tmp/s,mode=", "value");
	parse_bad("unix:/tmp/s,mode=17777", "17777");
	parse_bad("unix:/tmp/s,owner=no-such-user-wpool-unit", "owner");
	parse_bad("unix:/tmp/s,nodelay", "nodelay");
	parse_bad("unix:/tmp/s,v6only", "v6only");
	parse_bad("unix:/tmp/0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123",
	    "107");
	parse_bad("127.0.0.1:80,mode=0600", "mode");
	parse_bad("127.0.0.1:80,owner=root", "owner");
	parse_bad("127.0.0.1:80,bogus", "bogus");
	parse_bad("127.0.0.1:80,nodelay=1", "nodelay");
	parse_bad("127.0.0.1:80,backlog=0", "backlog");
	parse_bad("127.0.0.1:80,backlog=", "backlog");
	parse_bad("127.0.0.1:80,backlog", "backlog");
	parse_bad("127.0.0.1:80,rcvbuf=0", "'0'");
	parse_bad("127.0.0.1:80,sndbuf=2G", "2G");
	parse_bad("127.0.0.1:80,rcvbuf=12Q", "12Q");
	parse_bad("127.0.0.1:80,name=", "name");
	parse_bad("127.0.0.1:80,name=a b", "a b");
	parse_bad("127.0.0.1:80,name=a:b", "a:b");	/* LISTEN_FDNAMES sep */
	parse_bad("udp://127.0.0.1:53,backlog=5", "backlog");
	parse_bad("udp://127.0.0.1:53,nodelay", "nodelay");
	parse_bad("udp://:abc", "abc");
	parse_bad("fd:x", "x");
	parse_bad("fd:", "fd");
	parse_bad("fd:-1", "-1");
	parse_bad("fd:3,nodelay", "nodelay");
	parse_bad("systemd,name=a", "systemd");
	parse_bad("systemdx", NULL);
}

/* ---- sockets ---- */

static char tmpdir[] = "/tmp/wpool-unit-listen.XXXXXX";

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
is_listening(int fd)
{
	int	 acc = 0;
	socklen_t sl = sizeof(acc);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) == 0 && acc;
}

static int
sock_type(int fd)
{
	int	 t = -1;
	socklen_t sl = sizeof(t);

	getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &sl);
	return t;
}

static int
int_opt(int fd, int level, int name)
{
	int	 v = -1;
	socklen_t sl = sizeof(v);

	getsockopt(fd, level, name, &v, &sl);
	return v;
}

static void
test_open_tcp(void)
{
	struct listener l, l2;
	char	 spec[64], port[16];
	const char *colon;
	int	 r;

	if (parse("127.0.0.1:0,nodelay,rcvbuf=128K,backlog=7", &l) != 0) {
		ok(0, "127.0.0.1:0 parses: %s", errbuf);
		return;
	}
	r = listener_open(&l, 1024, false, errbuf, sizeof(errbuf));
	is_int(r, 0, "listener_open 127.0.0.1:0");
	if (r != 0) {
		printf("#   err: %s\n", errbuf);
		listener_free(&l);
		return;
	}
	ok(l.fd >= 0, "an fd");
	ok(is_listening(l.fd), "the socket listens");
	is_int(sock_type(l.fd), SOCK_STREAM, "a stream socket");
	ok(fcntl(l.fd, F_GETFD) & FD_CLOEXEC, "opened close-on-exec");
	is_int(int_opt(l.fd, SOL_SOCKET, SO_REUSEADDR), 1, "SO_REUSEADDR set");
	is_int(int_opt(l.fd, IPPROTO_TCP, TCP_NODELAY), 1, "nodelay set");
	ok(int_opt(l.fd, SOL_SOCKET, SO_RCVBUF) >= 128 * 1024,
	    "rcvbuf set (the kernel doubles it)");
	ok(strncmp(l.address, "127.0.0.1:", 10) == 0, "address %s is "
	    "127.0.0.1:PORT", l.address);
	colon = strrchr(l.address, ':');
	ok(colon != NULL && atoi(colon + 1) > 0, "the real port, not 0");

	/* Binding the same port again is a clear error. */
	snprintf(port, sizeof(port), "%s", colon ? colon + 1 : "1");
	snprintf(spec, sizeof(spec), "127.0.0.1:%s", port);
	if (parse(spec, &l2) == 0) {
		r = listener_open(&l2, 1024, false, errbuf, sizeof(errbuf));
		is_int(r, -EADDRINUSE, "a port in use: -EADDRINUSE");
		ok(strstr(errbuf, "cannot bind") != NULL &&
		    strstr(errbuf, spec) != NULL &&
		    strstr(errbuf, "in use") != NULL,
		    "'cannot bind %s: Address already in use': %s", spec,
		    errbuf);
		is_int(l2.fd, -1, "no fd after a failure");
		listener_close(&l2);
		listener_free(&l2);
	}

	/* Adopting it through fd:N. */
	snprintf(spec, sizeof(spec), "fd:%d,name=adopted", l.fd);
	if (parse(spec, &l2) == 0) {
		r = listener_open(&l2, 1024, false, errbuf, sizeof(errbuf));
		is_int(r, 0, "fd:N adopts a listening socket");
		is_int(l2.fd, l.fd, "the same fd");
		is_str(l2.address, l.address, "and its address");
		listener_free(&l2);
	}
	listener_close(&l);
	is_int(l.fd, -1, "listener_close sets fd -1");
	listener_close(&l);
	ok(1, "listener_close twice is harmless");
	listener_free(&l);
	listener_free(&l);
	ok(1, "listener_free twice is harmless");
}

static void
test_open_reuseport(void)
{
	struct listener a, b;
	char	 spec[64];
	int	 r;

	if (parse("127.0.0.1:0", &a) != 0 ||
	    listener_open(&a, 16, true, errbuf, sizeof(errbuf)) != 0) {
		ok(0, "reuseport listener opens: %s", errbuf);
		return;
	}
	is_int(int_opt(a.fd, SOL_SOCKET, SO_REUSEPORT), 1, "SO_REUSEPORT set");
	snprintf(spec, sizeof(spec), "%s", a.address);
	if (parse(spec, &b) == 0) {
		r = listener_open(&b, 16, true, errbuf, sizeof(errbuf));
		is_int(r, 0, "a second reuseport socket on %s", spec);
		listener_close(&b);
		listener_free(&b);
	}
	listener_close(&a);
	listener_free(&a);
}

static void
test_open_udp(void)
{
	struct listener l;
	int	 r;

	if (parse("udp://127.0.0.1:0", &l) != 0) {
		ok(0, "udp://127.0.0.1:0 parses: %s", errbuf);
		return;
	}
	r = listener_open(&l, 1024, false, errbuf, sizeof(errbuf));
	is_int(r, 0, "listener_open udp://127.0.0.1:0");
	if (r == 0) {
		is_int(sock_type(l.fd), SOCK_DGRAM, "a datagram socket");
		ok(strncmp(l.address, "udp://127.0.0.1:", 16) == 0 &&
		    strcmp(l.address, "udp://127.0.0.1:0") != 0,
		    "address %s is udp://127.0.0.1:PORT", l.address);
	}
	listener_close(&l);
	listener_free(&l);
}

static void
test_open_v6(void)
{
	struct listener l;
	int	 fd, r;
	struct sockaddr_in6 sin6;

	/* Only where the machine has ::1. */
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
		if (fd >= 0)
			close(fd);
		skip("machine lacks IPv6 loopback");
		skip("machine lacks IPv6 loopback");
		return;
	}
	close(fd);
	if (parse("[::1]:0,v6only", &l) != 0) {
		ok(0, "[::1]:0 parses: %s", errbuf);
		return;
	}
	r = listener_open(&l, 16, false, errbuf, sizeof(errbuf));
	is_int(r, 0, "listener_open [::1]:0");
	ok(strncmp(l.address, "[::1]:", 6) == 0 && strcmp(l.address,
	    "[::1]:0") != 0, "address %s is [::1]:PORT", l.address);
	listener_close(&l);
	listener_free(&l);
}

static void
test_open_fd_errors(void)
{
	struct listener l;
	char	 spec[32];
	int	 fd, r;

	fd = open("/dev/null", O_RDONLY);
	snprintf(spec, sizeof(spec), "fd:%d", fd);
	if (parse(spec, &l) == 0) {
		r = listener_open(&l, 16, false, errbuf, sizeof(errbuf));
		is_int(r, -ENOTSOCK, "fd:N of /dev/null: -ENOTSOCK");
		ok(strstr(errbuf, "not a socket") != NULL, "says so: %s",
		    errbuf);
		listener_free(&l);
	}
	close(fd);
	if (parse(spec, &l) == 0) {
		r = listener_open(&l, 16, false, errbuf, sizeof(errbuf));
		is_int(r, -EBADF, "fd:N of a closed fd: -EBADF");
		listener_free(&l);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	snprintf(spec, sizeof(spec), "fd:%d", fd);
	if (parse(spec, &l) == 0) {
		r = listener_open(&l, 16, false, errbuf, sizeof(errbuf));
		is_int(r, -EINVAL, "fd:N of a socket that does not listen: "
		    "-EINVAL");
		ok(strstr(errbuf, "not listening") != NULL, "says so: %s",
		    errbuf);
		listener_free(&l);
	}
	close(fd);

	if (parse("systemd", &l) == 0) {
		r = listener_open(&l, 16, false, errbuf, sizeof(errbuf));
		is_int(r, -EINVAL, "systemd must be expanded before opening");
		listener_free(&l);
	}
}

/* A socket file nobody listens on any more. */
static int
make_stale(const char *path)
{
	struct sockaddr_un sun;
	int	 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 1) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void
test_open_unix(void)
{
	struct listener l, l2;
	struct stat st;
	char	 path[256], spec[300], want[300];
	int	 r, fd;

	snprintf(path, sizeof(path), "%s/s.sock", tmpdir);
	snprintf(spec, sizeof(spec), "unix:%s,mode=0600,backlog=4", path);

	/* Stale socket file: replaced. */
	ok(make_stale(path) == 0, "a stale socket file exists");
	if (parse(spec, &l) != 0) {
		ok(0, "%s parses: %s", spec, errbuf);
		return;
	}
	r = listener_open(&l, 1024, false, errbuf, sizeof(errbuf));
	is_int(r, 0, "listener_open replaces a stale socket file");
	if (r != 0) {
		printf("#   err: %s\n", errbuf);
		listener_free(&l);
		return;
	}
	ok(is_listening(l.fd), "the unix socket listens");
	ok(stat(path, &st) == 0 && S_ISSOCK(st.st_mode), "the path is a "
	    "socket");
	is_int(st.st_mode & 07777, 0600, "mode=0600 applied");
	snprintf(want, sizeof(want), "unix:%s", path);
	is_str(l.address, want, "address unix:PATH");

	/* Live socket: refused, and left alone. */
	if (parse(spec, &l2) == 0) {
		r = listener_open(&l2, 1024, false, errbuf, sizeof(errbuf));
		is_int(r, -EADDRINUSE, "a live socket at the path: "
		    "-EADDRINUSE");
		ok(strstr(errbuf, path) != NULL, "the error names the path: %s",
		    errbuf);
		ok(stat(path, &st) == 0 && S_ISSOCK(st.st_mode),
		    "the live socket file is still there");
		listener_free(&l2);
	}
	/* And the first one still accepts. */
	{
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		ok(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		    "the live listener still takes connections");
		close(fd);
	}
	listener_close(&l);
	listener_free(&l);
	unlink(path);

	/* Regular file: refused, not deleted. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
	if (parse(spec, &l2) == 0) {
		r = listener_open(&l2, 1024, false, errbuf, sizeof(errbuf));
		is_int(r, -EEXIST, "a regular file at the path: -EEXIST");
		ok(strstr(errbuf, "not a socket") != NULL, "says so: %s",
		    errbuf);
		ok(stat(path, &st) == 0 && S_ISREG(st.st_mode),
		    "the regular file is untouched");
		listener_free(&l2);
	}
	unlink(path);

	/* A directory that does not exist. */
	snprintf(spec, sizeof(spec), "unix:%s/no/such/dir/s.sock", tmpdir);
	if (parse(spec, &l2) == 0) {
		r = listener_open(&l2, 1024, false, errbuf, sizeof(errbuf));
		is_int(r, -ENOENT, "a missing directory: -ENOENT");
		ok(strstr(errbuf, "cannot bind") != NULL, "'cannot bind': %s",
		    errbuf);
		listener_free(&l2);
	}
}

static void
test_sockaddr_format(void)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct sockaddr_storage ss;
	char	 buf[128];
	int	 n;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	n = sockaddr_format(&sin, sizeof(sin), buf, sizeof(buf));
	is_str(buf, "127.0.0.1:8080", "v4: HOST:PORT");
	is_int(n, 14, "returns the length");

	sin.sin_port = htons(0);
	sin.sin_addr.s_addr = htonl(INADDR_ANY);
	sockaddr_format(&sin, sizeof(sin), buf, sizeof(buf));
	is_str(buf, "0.0.0.0:0", "v4 any");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	sin6.sin6_addr = in6addr_loopback;
	sockaddr_format(&sin6, sizeof(sin6), buf, sizeof(buf));
	is_str(buf, "[::1]:443", "v6: [HOST]:PORT");

	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	sin6.sin6_port = htons(65535);
	sockaddr_format(&sin6, sizeof(sin6), buf, sizeof(buf));
	is_str(buf, "[2001:db8::1]:65535", "v6 documentation address");

	inet_pton(AF_INET6, "::ffff:10.0.0.1", &sin6.sin6_addr);
	sin6.sin6_port = htons(80);
	sockaddr_format(&sin6, sizeof(sin6), buf, sizeof(buf));
	is_str(buf, "[::ffff:10.0.0.1]:80", "v4-mapped v6");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "/run/app.sock");
	sockaddr_format(&sun, (socklen_t)(offsetof(struct sockaddr_un,
	    sun_path) + strlen(sun.sun_path) + 1), buf, sizeof(buf));
	is_str(buf, "unix:/run/app.sock", "unix: unix:PATH");

	sockaddr_format(&sun, sizeof(sun), buf, sizeof(buf));
	is_str(buf, "unix:/run/app.sock", "unix with the full length");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, "\0abstract", 9);
	sockaddr_format(&sun, (socklen_t)(offsetof(struct sockaddr_un,
	    sun_path) + 9), buf, sizeof(buf));
	is_str(buf, "unix:@abstract", "abstract unix: unix:@NAME");

	sockaddr_format(&sun, (socklen_t)sizeof(sa_family_t), buf,
	    sizeof(buf));
	is_str(buf, "unix:(unnamed)", "unnamed unix socket");

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_APPLETALK;
	sockaddr_format(&ss, sizeof(ss), buf, sizeof(buf));
	ok(strstr(buf, "family") != NULL, "another family: %s", buf);

	/* Truncated, but terminated. */
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	sockaddr_format(&sin, sizeof(sin), buf, 5);
	is_str(buf, "127.", "snprintf-style truncation");
}

/* starter(SPEC, ADDRESS): SERVER_STARTER_PORT's name of SPEC bound there. */
static const char *
starter(const char *spec, const char *address)
{
	static char buf[256];
	struct listener l;

	buf[0] = '\0';
	if (parse(spec, &l) < 0)
		return "(parse error)";
	strlcpy(l.address, address, sizeof(l.address));
	if (listener_starter_port(&l, buf, sizeof(buf)) < 0)
		strlcpy(buf, "(error)", sizeof(buf));
	listener_free(&l);
	return buf;
}

/*
 * listener_starter_port: Server::Starter's forms (start_server's --port
 * and --path), from the address the socket is bound to.
 */
static void
test_starter_port(void)
{
	struct listener l;
	char	 small[4];

	is_str(starter(":8080", "[::]:8080"), "8080",
	    ":PORT is the port alone, as --port PORT");
	is_str(starter(":0", "0.0.0.0:41234"), "41234",
	    ":0 is the port the kernel chose");
	is_str(starter("0.0.0.0:8080", "0.0.0.0:8080"), "0.0.0.0:8080",
	    "an address given is kept");
	is_str(starter("localhost:0", "127.0.0.1:41234"), "127.0.0.1:41234",
	    "a host name is the address it was bound to");
	is_str(starter("[::1]:0", "[::1]:41234"), "[::1]:41234",
	    "IPv6 in brackets");
	is_str(starter("udp://127.0.0.1:0", "udp://127.0.0.1:41234"),
	    "127.0.0.1:41234", "UDP spelled as TCP");
	is_str(starter("udp://:53", "udp://[::]:53"), "53",
	    "UDP on every address: the port alone");
	is_str(starter("unix:/tmp/s.sock", "unix:/tmp/s.sock"), "/tmp/s.sock",
	    "a unix socket is its path");
	is_str(starter("fd:5", "127.0.0.1:41234"), "127.0.0.1:41234",
	    "an adopted TCP socket is its address, not fd:5");
	is_str(starter("fd:5", "[::]:8080"), "[::]:8080",
	    "an adopted socket on every address: its address");
	is_str(starter("fd:5", "unix:/run/s.sock"), "/run/s.sock",
	    "an adopted unix socket is its path");
	is_str(starter("fd:5", "unix:@abstract"), "@abstract",
	    "an abstract one: @name");
	is_str(starter("127.0.0.1:80", ""), "127.0.0.1:80",
	    "not opened: the spec");

	ok(parse("127.0.0.1:80", &l) == 0, "parses");
	strlcpy(l.address, "127.0.0.1:80", sizeof(l.address));
	is_int(listener_starter_port(&l, small, sizeof(small)), -ENAMETOOLONG,
	    "too short a buffer: -ENAMETOOLONG");
	is_str(small, "127", "truncated, terminated");
	listener_free(&l);
}

int
main(void)
{
	test_parse_tcp();
	test_parse_other_types();
	test_parse_errors();
	test_sockaddr_format();
	test_starter_port();
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return done_testing();
	}
	test_open_tcp();
	test_open_reuseport();
	test_open_udp();
	test_open_v6();
	test_open_fd_errors();
	test_open_unix();
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
