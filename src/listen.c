/*
 * listen.c: listener specs (-b): parsing, binding, adopting inherited
 * sockets.  Owns each listener's socket until the pool closes it.  Never
 * logs: errors go to the caller's buffer, and the caller decides.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/filter.h>
#include <linux/sockios.h>

#include <ctype.h>
#include <fcntl.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* <linux/un.h>'s, which cannot be included beside <sys/un.h>. */
#ifndef SIOCUNIXFILE
#define SIOCUNIXFILE	(SIOCPROTOPRIVATE + 0)
#endif

#define SPEC_FORMS "HOST:PORT, [IPV6]:PORT, :PORT, unix:PATH, " \
	"udp://HOST:PORT, fd:N or systemd"

/*
 * A listener name: it goes into LISTEN_FDNAMES (':'-separated), the log
 * and balance mode's JSON messages, so only characters none of them
 * quote or split.
 */
static bool
name_ok(const char *v)
{
	const char *p;

	for (p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL)
			return false;
	return p > v && p - v <= 255;
}

static int
lerr(char *err, size_t len, const char *fmt, const char *a)
{
	snprintf(err, len, fmt, a);
	return -EINVAL;
}

static int
parse_port(const char *s, char *err, size_t len)
{
	long long n;

	if (parse_int(s, 0, 65535, &n) < 0)
		return lerr(err, len, "port '%s' is not a number from 0 to "
		    "65535", s);
	return 0;
}

/* HOST:PORT, [V6]:PORT or :PORT into l->host (NULL for any) and l->port. */
static int
parse_hostport(char *s, struct listener *l, char *err, size_t len)
{
	char	*colon, *host;

	if (*s == '[') {
		char	*close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return lerr(err, len, "'%s': expected [IPV6]:PORT", s);
		*close = '\0';
		host = s + 1;
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return lerr(err, len, "no port in '%s': expected "
			    SPEC_FORMS, s);
		*colon = '\0';
		host = s;
		if (strchr(host, ':') != NULL)
			return lerr(err, len, "'%s': put an IPv6 address in "
			    "brackets, like [::1]:8080", host);
	}
	if (parse_port(colon + 1, err, len) < 0)
		return -EINVAL;
	l->host = *host != '\0' ? xstrdup(host) : NULL;
	l->port = xstrdup(colon + 1);
	return 0;
}

static int
parse_option(struct listener *l, const char *opt, char *err, size_t len)
{
	const char *eq = strchr(opt, '=');
	const char *v = eq ? eq + 1 : NULL;
	size_t	 klen = eq ? (size_t)(eq - opt) : strlen(opt);
	bool	 inet = l->type == L_TCP || l->type == L_UDP;
	long long n;
	char	 key[32];

	if (klen >= sizeof(key))
		return lerr(err, len, "unknown option '%s'", opt);
	memcpy(key, opt, klen);
	key[klen] = '\0';
#define NEEDS_VALUE() do { if (v == NULL || *v == '\0') \
	return lerr(err, len, "option '%s' needs a value", key); } while (0)
#define ONLY(cond, what) do { if (!(cond)) return lerr(err, len, \
	"option '%s' applies only to " what " listeners", key); } while (0)
	if (strcmp(key, "name") == 0) {
		NEEDS_VALUE();
		if (!name_ok(v))
			return lerr(err, len, "name '%s': use up to 255 "
			    "letters, digits, '.', '_', '-'", v);
		free(l->name);
		l->name = xstrdup(v);
		return 0;
	}
	ONLY(l->type != L_FD && l->type != L_SYSTEMD, "tcp, udp and unix");
	if (strcmp(key, "backlog") == 0) {
		NEEDS_VALUE();
		ONLY(l->type != L_UDP, "stream");
		if (parse_int(v, 1, 1 << 20, &n) < 0)
			return lerr(err, len, "backlog '%s': expected 1 to "
			    "1048576", v);
		l->backlog = (int)n;
	} else if (strcmp(key, "mode") == 0) {
		char	*end;
		long	 m;

		NEEDS_VALUE();
		ONLY(l->type == L_UNIX, "unix");
		m = strtol(v, &end, 8);
		if (*end != '\0' || m < 0 || m > 0777)
			return lerr(err, len, "mode '%s': expected octal "
			    "permissions 0 to 0777, such as 0660", v);
		l->mode = (int)m;
	} else if (strcmp(key, "owner") == 0) {
		uid_t	 uid;
		gid_t	 gid;
		bool	 found;

		NEEDS_VALUE();
		ONLY(l->type == L_UNIX, "unix");
		if (parse_user(v, &uid, &gid, &found) < 0)
			return lerr(err, len, "owner '%s': expected an "
			    "existing USER[:GROUP]", v);
		free(l->owner);
		l->owner = xstrdup(v);
	} else if (strcmp(key, "v6only") == 0) {
		ONLY(inet, "tcp and udp");
		l->v6only = true;
	} else if (strcmp(key, "freebind") == 0) {
		ONLY(inet, "tcp and udp");
		l->freebind = true;
	} else if (strcmp(key, "defer_accept") == 0) {
		ONLY(l->type == L_TCP, "tcp");
		l->defer_accept = true;
	} else if (strcmp(key, "nodelay") == 0) {
		ONLY(l->type == L_TCP, "tcp");
		l->nodelay = true;
	} else if (strcmp(key, "rcvbuf") == 0 || strcmp(key, "sndbuf") == 0) {
		uint64_t sz;

		NEEDS_VALUE();
		if (parse_size(v, &sz) < 0 || sz == 0 || sz > (1u << 30)) {
			snprintf(err, len, "%s '%s': expected 1 to 1G bytes, "
			    "like 262144 or 256K", key, v);
			return -EINVAL;
		}
		if (key[0] == 'r')
			l->rcvbuf = (int)sz;
		else
			l->sndbuf = (int)sz;
	} else
		return lerr(err, len, "unknown option '%s': expected name=, "
		    "backlog=, mode=, owner=, v6only, freebind, defer_accept, "
		    "nodelay, rcvbuf= or sndbuf=", opt);
	if (v != NULL && (strcmp(key, "v6only") == 0 || strcmp(key,
	    "freebind") == 0 || strcmp(key, "defer_accept") == 0 ||
	    strcmp(key, "nodelay") == 0))
		return lerr(err, len, "option '%s' takes no value", key);
	return 0;
#undef NEEDS_VALUE
#undef ONLY
}

/* The schemes a listener may start with, and what follows each. */
static const struct {
	const char *prefix;
	enum listener_type type;
} schemes[] = {
	/* A unix: path may contain commas only if it has no options. */
	{ "unix:", L_UNIX },
	{ "udp://", L_UDP },
	{ "tcp://", L_TCP },
	{ "fd:", L_FD },
};

/*
 * The listener's type from the start of s, its address (in s) in *addr;
 * none is TCP.  A scheme that is not known is an error (s is cut there).
 */
static int
listener_scheme(char *s, struct listener *l, char **addr, char *err,
    size_t len)
{
	char	*sep;
	size_t	 i, n;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		n = strlen(schemes[i].prefix);
		if (strncmp(s, schemes[i].prefix, n) == 0) {
			l->type = schemes[i].type;
			*addr = s + n;
			return 0;
		}
	}
	if (strcmp(s, "systemd") == 0 || strncmp(s, "systemd,", 8) == 0) {
		l->type = L_SYSTEMD;
		*addr = s + 7;
		return 0;
	}
	if ((sep = strstr(s, "://")) != NULL &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") ==
	    (size_t)(sep - s) && sep > s) {
		*sep = '\0';
		return lerr(err, len, "unknown scheme '%s://': expected "
		    SPEC_FORMS, s);
	}
	l->type = L_TCP;
	*addr = s;
	return 0;
}

static int
unix_address(struct listener *l, const char *addr, char *err, size_t len)
{
	if (*addr == '\0')
		return lerr(err, len, "unix: needs a path, like "
		    "unix:/run/app.sock%s", "");
	if (strlen(addr) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return lerr(err, len, "unix socket path '%s' is longer than "
		    "107 bytes", addr);
	l->path = xstrdup(addr);
	l->spec = xstrdup(addr);
	return 0;
}

/*
 * The address part of a listener of l->type (opts: its options, if any;
 * spec: the whole of it, for the name of a UDP one).
 */
static int
listener_address(struct listener *l, const char *spec, char *addr,
    const char *opts, char *err, size_t len)
{
	long long n;
	char	*c;

	switch (l->type) {
	case L_UNIX:
		return unix_address(l, addr, err, len);
	case L_FD:
		if (parse_int(addr, 0, 1 << 20, &n) < 0)
			return lerr(err, len, "fd:'%s': expected a file "
			    "descriptor number", addr);
		l->adopt_fd = (int)n;
		xasprintf(&l->spec, "fd:%d", l->adopt_fd);
		return 0;
	case L_SYSTEMD:
		l->spec = xstrdup("systemd");
		if (opts != NULL)
			return lerr(err, len, "systemd takes no options: names "
			    "come from LISTEN_FDNAMES%s", "");
		return 0;
	case L_TCP:
	case L_UDP:
		l->spec = xstrdup(addr);
		if (parse_hostport(addr, l, err, len) < 0)
			return -EINVAL;
		if (l->type == L_UDP) {
			free(l->spec);
			xasprintf(&l->spec, "udp://%s", spec + 6);
			if ((c = strchr(l->spec, ',')) != NULL)
				*c = '\0';
		}
		return 0;
	}
	return -EINVAL;
}

/* The comma-separated options after the address (opts is cut up). */
static int
listener_options(struct listener *l, char *opts, char *err, size_t len)
{
	char	*opt;

	while (opts != NULL && *opts != '\0') {
		opt = opts;
		if ((opts = strchr(opts, ',')) != NULL)
			*opts++ = '\0';
		if (*opt == '\0')
			continue;
		if (parse_option(l, opt, err, len) < 0)
			return -EINVAL;
	}
	return 0;
}

int
listener_parse(const char *spec, struct listener *l, char *err, size_t len)
{
	char	*s, *addr, *opts;
	int	 r = -EINVAL;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->adopt_fd = -1;
	l->mode = -1;
	if (spec == NULL || *spec == '\0')
		return lerr(err, len, "empty listener: expected %s",
		    SPEC_FORMS);
	s = xstrdup(spec);
	if (listener_scheme(s, l, &addr, err, len) < 0)
		goto out;
	if ((opts = strchr(addr, ',')) != NULL)
		*opts++ = '\0';
	if (listener_address(l, spec, addr, opts, err, len) < 0 ||
	    listener_options(l, opts, err, len) < 0)
		goto out;
	r = 0;
out:
	free(s);
	if (r < 0)
		listener_free(l);
	return r;
}

void
listener_free(struct listener *l)
{
	free(l->spec);
	free(l->name);
	free(l->host);
	free(l->port);
	free(l->path);
	free(l->owner);
	l->spec = l->name = l->host = l->port = l->path = l->owner = NULL;
}

void
listener_close(struct listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

int
sockaddr_format(const void *sa, socklen_t salen, char *buf, size_t len)
{
	const struct sockaddr *s = sa;
	char	 host[INET6_ADDRSTRLEN];

	switch (s->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		return snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		return snprintf(buf, len, "[%s]:%u", host,
		    ntohs(in6->sin6_port));
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = sa;

		if (salen <= offsetof(struct sockaddr_un, sun_path))
			return snprintf(buf, len, "unix:(unnamed)");
		if (un->sun_path[0] == '\0')
			return snprintf(buf, len, "unix:@%.*s",
			    (int)(salen - offsetof(struct sockaddr_un,
			    sun_path) - 1), un->sun_path + 1);
		return snprintf(buf, len, "unix:%s", un->sun_path);
	}
	}
	return snprintf(buf, len, "(family %d)", s->sa_family);
}

static int
sockopt(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val));
}

static int
sys_err(char *err, size_t len, const char *what, const char *spec)
{
	int	 e = errno;

	snprintf(err, len, "cannot %s %s: %s", what, spec, strerror(e));
	return -e;
}

/* A unix socket file that nobody accepts on is stale and replaced. */
static int
unix_clear_stale(const char *path, char *err, size_t len)
{
	struct sockaddr_un sun;
	struct stat st;
	int	 fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : sys_err(err, len, "bind", path);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, len, "cannot bind unix:%s: the file exists and "
		    "is not a socket", path);
		return -EEXIST;
	}
	/* Nonblocking: a live server with a full queue must not stall us. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) < 0)
		return sys_err(err, len, "bind", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (r < 0 && errno == EAGAIN)
		r = 0;
	close(fd);
	if (r == 0) {
		snprintf(err, len, "cannot bind unix:%s: a running server "
		    "accepts on it", path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return sys_err(err, len, "replace stale socket", path);
	return 0;
}

/*
 * Gives the socket file bound on fd its owner without resolving its path
 * again.  The kernel hands out an O_PATH descriptor of the very inode that
 * bind() made (SIOCUNIXFILE, which needs CAP_NET_ADMIN).  Without it, the
 * path is opened O_PATH|O_NOFOLLOW and used only if it is a socket of
 * ours with one link: a symlink, another user's file or a hard link that
 * someone swapped in is refused, never changed.
 */
static int
unix_set_owner(int fd, const struct listener *l, const char *what,
    char *err, size_t len)
{
	struct stat st;
	uid_t	 uid;
	gid_t	 gid;
	bool	 found;
	int	 ofd, r = 0;

	parse_user(l->owner, &uid, &gid, &found);
	if ((ofd = ioctl(fd, SIOCUNIXFILE, 0)) < 0) {
		if ((ofd = open(l->path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
			return sys_err(err, len, "chown", what);
		if (fstat(ofd, &st) < 0) {
			r = sys_err(err, len, "chown", what);
			goto out;
		}
		if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid() ||
		    st.st_nlink != 1) {
			snprintf(err, len, "cannot chown %s: the path no longer "
			    "names the socket just bound (another user can "
			    "write its directory?)", what);
			r = -EPERM;
			goto out;
		}
	}
	if (fchownat(ofd, "", uid, gid, AT_EMPTY_PATH) < 0)
		r = sys_err(err, len, "chown", what);
out:
	close(ofd);
	return r;
}

/*
 * Anyone who can write the socket's directory can swap its name for a
 * symlink between bind() and a chmod(path) or chown(path), and so have
 * root change a file of their choosing (issue 10).  So the path is never
 * followed after bind(): the mode is the umask's at bind(), which Linux
 * applies to the new inode (0777 & ~umask; the master has one thread, so
 * the umask is ours for that call), and the owner goes on by descriptor.
 */
static int
open_unix(const struct listener *l, int backlog, int *out, char *err,
    size_t len)
{
	struct sockaddr_un sun;
	char	 what[160];
	mode_t	 mask = 0;
	int	 fd, r;

	if ((r = unix_clear_stale(l->path, err, len)) < 0)
		return r;
	snprintf(what, sizeof(what), "unix:%s", l->path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return sys_err(err, len, "bind", what);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, l->path, sizeof(sun.sun_path));
	if (l->mode >= 0)
		mask = umask(~(mode_t)l->mode & 0777);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (l->mode >= 0)
		umask(mask);
	if (r < 0) {
		r = sys_err(err, len, "bind", what);
		goto fail;
	}
	if (l->owner != NULL && (r = unix_set_owner(fd, l, what, err,
	    len)) < 0)
		goto fail_unlink;
	if (listen(fd, backlog) < 0) {
		r = sys_err(err, len, "listen on", what);
		goto fail_unlink;
	}
	*out = fd;
	return 0;
fail_unlink:
	unlink(l->path);
fail:
	close(fd);
	return r;
}

static int
open_inet(const struct listener *l, int backlog, bool reuseport, int *out,
    char *err, size_t len)
{
	struct addrinfo hints, *res = NULL, *ai;
	bool	 stream = l->type == L_TCP;
	char	 what[300];
	int	 fd = -1, r, e = 0;

	snprintf(what, sizeof(what), "%s%s", l->type == L_UDP ? "" : "",
	    l->spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = stream ? SOCK_STREAM : SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (l->host == NULL) {
		/* All addresses: IPv6 dual-stack where the kernel has it. */
		hints.ai_family = AF_INET6;
		r = getaddrinfo("::", l->port, &hints, &res);
		if (r == 0 && (fd = socket(AF_INET6, hints.ai_socktype,
		    0)) < 0) {
			freeaddrinfo(res);
			res = NULL;
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (res == NULL) {
			hints.ai_family = AF_INET;
			r = getaddrinfo("0.0.0.0", l->port, &hints, &res);
		}
	} else {
		hints.ai_family = AF_UNSPEC;
		r = getaddrinfo(l->host, l->port, &hints, &res);
	}
	if (r != 0) {
		snprintf(err, len, "cannot bind %s: %s", what,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		sockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
		if (reuseport && sockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
			goto next;
		if (ai->ai_family == AF_INET6)
			sockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
			    l->v6only ? 1 : 0);
		if (l->freebind && sockopt(fd, IPPROTO_IP, IP_FREEBIND, 1) < 0)
			goto next;
		if (l->rcvbuf && sockopt(fd, SOL_SOCKET, SO_RCVBUF,
		    l->rcvbuf) < 0)
			goto next;
		if (l->sndbuf && sockopt(fd, SOL_SOCKET, SO_SNDBUF,
		    l->sndbuf) < 0)
			goto next;
		if (l->nodelay && sockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0)
			goto next;
		if (l->defer_accept && sockopt(fd, IPPROTO_TCP,
		    TCP_DEFER_ACCEPT, 1) < 0)
			goto next;
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
			goto next;
		if (stream && listen(fd, backlog) < 0)
			goto next;
		freeaddrinfo(res);
		*out = fd;
		return 0;
next:
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	errno = e ? e : EADDRNOTAVAIL;
	return sys_err(err, len, "bind", what);
}

/* Checks that an inherited fd is a socket we can hand to workers. */
static int
adopt_fd(const struct listener *l, int *out, char *err, size_t len)
{
	struct stat st;
	int	 type, acc;
	socklen_t sl = sizeof(int);

	if (fstat(l->adopt_fd, &st) < 0) {
		snprintf(err, len, "cannot adopt fd:%d: %s", l->adopt_fd,
		    strerror(errno));
		return -EBADF;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, len, "cannot adopt fd:%d: not a socket",
		    l->adopt_fd);
		return -ENOTSOCK;
	}
	if (getsockopt(l->adopt_fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
		return sys_err(err, len, "adopt", l->spec);
	sl = sizeof(int);
	if (type == SOCK_STREAM && (getsockopt(l->adopt_fd, SOL_SOCKET,
	    SO_ACCEPTCONN, &acc, &sl) < 0 || !acc)) {
		snprintf(err, len, "cannot adopt fd:%d: the socket is not "
		    "listening", l->adopt_fd);
		return -EINVAL;
	}
	set_cloexec(l->adopt_fd, true);
	*out = l->adopt_fd;
	return 0;
}

/* Opens one socket for l (one per slot in reuseport mode). */
int
listener_open_socket(const struct listener *l, int backlog, bool reuseport,
    int *out, char *err, size_t len)
{
	if (l->backlog > 0)
		backlog = l->backlog;
	switch (l->type) {
	case L_UNIX:
		return open_unix(l, backlog, out, err, len);
	case L_TCP:
	case L_UDP:
		return open_inet(l, backlog, reuseport, out, err, len);
	case L_FD:
		return adopt_fd(l, out, err, len);
	case L_SYSTEMD:
		break;
	}
	snprintf(err, len, "%s must be expanded before opening", l->spec);
	return -EINVAL;
}

int
listener_open(struct listener *l, int backlog, bool reuseport, char *err,
    size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int	 r;

	if ((r = listener_open_socket(l, backlog, reuseport, &l->fd, err,
	    len)) < 0)
		return r;
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_format(&ss, sl, l->address, sizeof(l->address));
	else
		strlcpy(l->address, l->spec, sizeof(l->address));
	if (reuseport && l->port != NULL && strcmp(l->port, "0") == 0) {
		/* Every slot's socket must join the port the kernel chose. */
		char	*colon = strrchr(l->address, ':');

		if (colon != NULL) {
			free(l->port);
			l->port = xstrdup(colon + 1);
		}
	}
	if (l->type == L_UDP) {
		char	 tmp[sizeof(l->address)];

		snprintf(tmp, sizeof(tmp), "udp://%s", l->address);
		strlcpy(l->address, tmp, sizeof(l->address));
	}
	return 0;
}

/*
 * The listener as SERVER_STARTER_PORT names it, in the forms Server::Starter's
 * start_server writes and its server_ports() and Net::Server::SS::PreFork
 * read back (the key before '=' taken as HOST:PORT): PORT for a socket on
 * every address (-b :PORT, as --port PORT), A.B.C.D:PORT, [V6]:PORT, or a
 * unix socket's bare path; UDP is spelled as TCP, as Server::Starter does.
 * It is the address getsockname gave listener_open (l->address, spelled by
 * sockaddr_format above), so port 0 is the port the kernel chose and an
 * adopted socket (fd:N, systemd) is named by its address, never "fd:3".
 * Returns 0, or -ENAMETOOLONG if buf was too short.
 */
int
listener_starter_port(const struct listener *l, char *buf, size_t len)
{
	const char *a = l->address, *colon;
	int	 n;

	if (*a == '\0')
		a = l->spec;	/* not opened: nothing better to say */
	else if (strncmp(a, "udp://", 6) == 0)
		a += 6;
	colon = strrchr(a, ':');
	if (strncmp(a, "unix:", 5) == 0 && strcmp(a, "unix:(unnamed)") != 0)
		n = snprintf(buf, len, "%s", a + 5);
	else if ((l->type == L_TCP || l->type == L_UDP) && l->host == NULL &&
	    colon != NULL)
		n = snprintf(buf, len, "%s", colon + 1);
	else
		n = snprintf(buf, len, "%s", a);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * Replaces a `systemd` listener with one fd: listener per socket that
 * systemd passed to this process (sd_listen_fds(3)): LISTEN_PID must be
 * ours, names come from LISTEN_FDNAMES.  Returns how many were added.
 */
int
listener_expand_systemd(struct listener **ls, size_t *n, size_t at,
    char *err, size_t len)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	const char *names = getenv("LISTEN_FDNAMES");
	char	*namebuf = NULL, *np, *name;
	long long nfds, lpid;
	struct listener *arr;
	size_t	 i;

	if (fds == NULL || pid == NULL) {
		snprintf(err, len, "-b systemd: LISTEN_FDS and LISTEN_PID are "
		    "not set: wpool was not started by socket activation");
		return -ENOENT;
	}
	if (parse_int(pid, 1, 1LL << 31, &lpid) < 0 || lpid != getpid()) {
		snprintf(err, len, "-b systemd: LISTEN_PID=%s is not wpool's "
		    "pid %d: the sockets were meant for another process", pid,
		    (int)getpid());
		return -ESRCH;
	}
	if (parse_int(fds, 1, WPOOL_MAX_LISTENERS, &nfds) < 0) {
		snprintf(err, len, "-b systemd: LISTEN_FDS=%s: expected 1 to "
		    "%d sockets", fds, WPOOL_MAX_LISTENERS);
		return -EINVAL;
	}
	if (*n - 1 + (size_t)nfds > WPOOL_MAX_LISTENERS) {
		snprintf(err, len, "-b systemd: too many listeners");
		return -EINVAL;
	}
	arr = xcalloc(*n - 1 + (size_t)nfds, sizeof(*arr));
	memcpy(arr, *ls, at * sizeof(*arr));
	memcpy(arr + at + nfds, *ls + at + 1, (*n - at - 1) * sizeof(*arr));
	listener_free(&(*ls)[at]);
	if (names != NULL)
		namebuf = xstrdup(names);
	np = namebuf;
	for (i = 0; i < (size_t)nfds; i++) {
		struct listener *l = &arr[at + i];

		memset(l, 0, sizeof(*l));
		l->type = L_FD;
		l->fd = -1;
		l->mode = -1;
		l->adopt_fd = 3 + (int)i;
		xasprintf(&l->spec, "fd:%d", l->adopt_fd);
		name = np != NULL ? strsep(&np, ":") : NULL;
		if (name != NULL && *name != '\0' && strcmp(name, "unknown")) {
			if (name_ok(name))
				l->name = xstrdup(name);
			else
				log_warnx("LISTEN_FDNAMES: fd %d: name '%.64s' "
				    "is not letters, digits, '.', '_', '-' "
				    "(up to 255): not used", l->adopt_fd, name);
		}
	}
	free(namebuf);
	free(*ls);
	*ls = arr;
	*n = *n - 1 + (size_t)nfds;
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	return (int)nfds;
}

#define STMT(code, k)	((struct sock_filter)BPF_STMT((code), (uint32_t)(k)))
#define JUMP(code, k, jt, jf) \
	((struct sock_filter)BPF_JUMP((code), (uint32_t)(k), (jt), (jf)))

/*
 * A <- a hash of the datagram's source address and port, read from its
 * IPv4 or IPv6 header (an IPv4 datagram can reach an IPv6 socket); for
 * IPv6 the UDP header is taken to follow the fixed header, as it does
 * unless extension headers come between.  Returns the instructions added.
 */
static int
steer_flow_hash(struct sock_filter *prog)
{
	int	 len = 0;

	prog[len++] = STMT(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF);
	prog[len++] = STMT(BPF_ALU | BPF_RSH | BPF_K, 4);
	prog[len++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 9, 0);
	/* IPv4: the source address at 12, the port after IHL words. */
	prog[len++] = STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 12);
	prog[len++] = STMT(BPF_ST, 0);
	prog[len++] = STMT(BPF_LD | BPF_B | BPF_ABS, SKF_NET_OFF);
	prog[len++] = STMT(BPF_ALU | BPF_AND | BPF_K, 0xf);
	prog[len++] = STMT(BPF_ALU | BPF_LSH | BPF_K, 2);
	prog[len++] = STMT(BPF_MISC | BPF_TAX, 0);
	prog[len++] = STMT(BPF_LD | BPF_H | BPF_IND, SKF_NET_OFF);
	prog[len++] = STMT(BPF_LDX | BPF_MEM, 0);
	prog[len++] = JUMP(BPF_JMP | BPF_JA, 12, 0, 0);
	/* IPv6: the four words of the source address at 8, the port at 40. */
	prog[len++] = STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 8);
	prog[len++] = STMT(BPF_MISC | BPF_TAX, 0);
	prog[len++] = STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 12);
	prog[len++] = STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
	prog[len++] = STMT(BPF_MISC | BPF_TAX, 0);
	prog[len++] = STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 16);
	prog[len++] = STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
	prog[len++] = STMT(BPF_MISC | BPF_TAX, 0);
	prog[len++] = STMT(BPF_LD | BPF_W | BPF_ABS, SKF_NET_OFF + 20);
	prog[len++] = STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
	prog[len++] = STMT(BPF_MISC | BPF_TAX, 0);
	prog[len++] = STMT(BPF_LD | BPF_H | BPF_ABS, SKF_NET_OFF + 40);
	/* Both: A = (port ^ address) * golden ratio, its high half. */
	prog[len++] = STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
	prog[len++] = STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b1u);
	prog[len++] = STMT(BPF_ALU | BPF_RSH | BPF_K, 16);
	return len;
}

/*
 * Steers new connections of a SO_REUSEPORT group to the sockets at the
 * given positions of the group (the order they started listening) by a
 * classic BPF program: a number % n, then a jump table.  For TCP the
 * number is random: each connection is placed once, in one accept queue.
 * For UDP (by_flow) it is a hash of the source address and port, so that
 * a client's datagrams keep going to one worker while the positions stay
 * the same, as with the kernel's own reuseport hash.  The kernel falls
 * back to that hash for an index out of range.
 */
int
listener_steer(int fd, const int *idx, int n, bool by_flow)
{
	struct sock_filter prog[32 + 2 * 1024 + 1];
	struct sock_fprog fp;
	int	 i, len = 0;

	if (n <= 0 || n > 1024)
		return -EINVAL;
	if (by_flow)
		len = steer_flow_hash(prog);
	else
		prog[len++] = STMT(BPF_LD | BPF_W | BPF_ABS,
		    SKF_AD_OFF + SKF_AD_RANDOM);
	prog[len++] = STMT(BPF_ALU | BPF_MOD | BPF_K, n);
	for (i = 0; i < n - 1; i++) {
		/* if A == i return idx[i]: skip the next return if not. */
		prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		    BPF_K, (uint32_t)i, 0, 1);
		prog[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		    (uint32_t)idx[i]);
	}
	prog[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    (uint32_t)idx[n - 1]);
	fp.len = (unsigned short)len;
	fp.filter = prog;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fp,
	    sizeof(fp)) < 0)
		return -errno;
	return 0;
}

/*
 * Whether a datagram socket has a datagram waiting: 1 or 0, or -errno.
 * (SIOCINQ gives the size of the next one, so a waiting empty datagram
 * reads as none.)
 */
int
listener_dgram_waiting(int fd)
{
	int	 n = 0;

	if (ioctl(fd, SIOCINQ, &n) < 0)
		return -errno;
	return n > 0;
}

/* Connections waiting in a TCP listener's accept queue, or -errno. */
int
listener_queue_len(int fd)
{
	struct tcp_info ti;
	socklen_t sl = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0)
		return -errno;
	if (ti.tcpi_state != 10)	/* TCP_LISTEN */
		return -EINVAL;
	return (int)ti.tcpi_unacked;
}
