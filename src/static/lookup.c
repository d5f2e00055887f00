/*
 * static/lookup.c: the name lookups of `make static`'s wpool, which has no
 * NSS.  Only that build links this file, with --wrap for each function
 * below, so that wpool's calls land here instead of in glibc's NSS code.
 *
 * Why: a static glibc that looks a name up loads NSS modules (libnss_*.so)
 * at run time, and they must come from the very glibc it was linked with;
 * a scratch image has none, and a distroless or Alpine one has another
 * glibc's or none, so names would fail, or load code built for another
 * libc into the master.  Here they are read from the files alone:
 * /etc/passwd, /etc/group and /etc/hosts, as NSS's "files" would, and
 * numbers need no file at all.  Leaving NSS out also leaves its code, the
 * resolver and the loader out of the binary, which is what keeps the
 * master's idle RSS at about tini-static's (bench/02).
 *
 * Owns nothing but its static buffers (the libc functions' own contract:
 * the next call reuses them; the master is single-threaded).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <net/if.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct passwd *__wrap_getpwnam(const char *);
struct passwd *__wrap_getpwuid(uid_t);
struct group *__wrap_getgrnam(const char *);
int	__wrap_getgrouplist(const char *, gid_t, gid_t *, int *);
int	__wrap_getaddrinfo(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **);
void	__wrap_freeaddrinfo(struct addrinfo *);

/*
 * A missing file means that names cannot be looked up here at all: errno
 * ENOSYS says so to the caller (parse_user), which tells the user to give
 * numbers.  A name absent from a file that exists leaves errno 0, as
 * glibc's getpwnam does.
 */
static FILE *
db_open(const char *path)
{
	FILE	*f;

	if ((f = fopen(path, "re")) == NULL)
		errno = ENOSYS;
	else
		errno = 0;
	return f;
}

static struct passwd *
pw_find(const char *name, uid_t uid)
{
	struct passwd *pw;
	FILE	*f;

	if ((f = db_open("/etc/passwd")) == NULL)
		return NULL;
	while ((pw = fgetpwent(f)) != NULL)
		if (name != NULL ? strcmp(pw->pw_name, name) == 0 :
		    pw->pw_uid == uid)
			break;
	fclose(f);
	errno = 0;
	return pw;
}

struct passwd *
__wrap_getpwnam(const char *name)
{
	return pw_find(name, 0);
}

struct passwd *
__wrap_getpwuid(uid_t uid)
{
	return pw_find(NULL, uid);
}

struct group *
__wrap_getgrnam(const char *name)
{
	struct group *gr;
	FILE	*f;

	if ((f = db_open("/etc/group")) == NULL)
		return NULL;
	while ((gr = fgetgrent(f)) != NULL && strcmp(gr->gr_name, name) != 0)
		;
	fclose(f);
	errno = 0;
	return gr;
}

/* glibc's contract: group first, then each other group listing user. */
int
__wrap_getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
	struct group *gr;
	FILE	*f;
	char	**m;
	int	 n = 0;

	if (*ngroups > 0)
		groups[0] = group;
	n = 1;
	if ((f = db_open("/etc/group")) != NULL) {
		while ((gr = fgetgrent(f)) != NULL) {
			if (gr->gr_gid == group)
				continue;
			for (m = gr->gr_mem; *m != NULL; m++)
				if (strcmp(*m, user) == 0)
					break;
			if (*m == NULL)
				continue;
			if (n < *ngroups)
				groups[n] = gr->gr_gid;
			n++;
		}
		fclose(f);
	}
	if (n > *ngroups) {
		*ngroups = n;
		return -1;
	}
	*ngroups = n;
	return n;
}

/* One result: the addrinfo and its address in one allocation. */
struct ai_node {
	struct addrinfo ai;
	struct sockaddr_storage ss;
};

static int
ai_add(struct addrinfo ***tail, const struct addrinfo *h, int family,
    const void *addr, uint32_t scope, uint16_t port)
{
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM };
	struct ai_node *n;
	size_t	 i;

	if (h->ai_family != AF_UNSPEC && h->ai_family != family)
		return 0;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (h->ai_socktype != 0 && h->ai_socktype != types[i])
			continue;
		if ((n = calloc(1, sizeof(*n))) == NULL)
			return EAI_MEMORY;
		n->ai.ai_family = family;
		n->ai.ai_socktype = types[i];
		n->ai.ai_protocol = types[i] == SOCK_STREAM ? IPPROTO_TCP :
		    IPPROTO_UDP;
		n->ai.ai_addr = (struct sockaddr *)&n->ss;
		if (family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&n->ss;

			s->sin_family = AF_INET;
			s->sin_port = htons(port);
			memcpy(&s->sin_addr, addr, sizeof(s->sin_addr));
			n->ai.ai_addrlen = sizeof(*s);
		} else {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&n->ss;

			s->sin6_family = AF_INET6;
			s->sin6_port = htons(port);
			s->sin6_scope_id = scope;
			memcpy(&s->sin6_addr, addr, sizeof(s->sin6_addr));
			n->ai.ai_addrlen = sizeof(*s);
		}
		**tail = &n->ai;
		*tail = &n->ai.ai_next;
	}
	return 0;
}

/* A numeric address, IPv6 with an optional %SCOPE: 1 if it was one. */
static int
ai_numeric(struct addrinfo ***tail, const struct addrinfo *h,
    const char *host, uint16_t port, int *r)
{
	unsigned char a[sizeof(struct in6_addr)];
	char	 buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 1], *pct, *end;
	unsigned long scope = 0;

	if (inet_pton(AF_INET, host, a) == 1) {
		*r = ai_add(tail, h, AF_INET, a, 0, port);
		return 1;
	}
	if (strlen(host) >= sizeof(buf))
		return 0;
	strcpy(buf, host);
	if ((pct = strchr(buf, '%')) != NULL)
		*pct++ = '\0';
	if (inet_pton(AF_INET6, buf, a) != 1)
		return 0;
	if (pct != NULL) {
		errno = 0;
		scope = strtoul(pct, &end, 10);
		if (*pct == '\0' || *end != '\0' || errno != 0 ||
		    scope > UINT32_MAX)
			scope = if_nametoindex(pct);
		if (scope == 0) {
			*r = EAI_NONAME;
			return 1;
		}
	}
	*r = ai_add(tail, h, AF_INET6, a, (uint32_t)scope, port);
	return 1;
}

/*
 * host's lines of /etc/hosts; without a line, "localhost" is the loopback
 * (IPv4 first, as /etc/hosts usually lists it), as RFC 6761 asks.
 */
static int
ai_hosts(struct addrinfo ***tail, struct addrinfo **head,
    const struct addrinfo *h, const char *host, uint16_t port)
{
	static const struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	const struct in_addr lo4 = { htonl(INADDR_LOOPBACK) };
	char	 line[1024], *p, *addr, *name, *save;
	bool	 seen = false;
	FILE	*f;
	int	 r = 0;

	if ((f = fopen("/etc/hosts", "re")) != NULL) {
		while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
			if ((p = strchr(line, '#')) != NULL)
				*p = '\0';
			if ((addr = strtok_r(line, " \t\n", &save)) == NULL)
				continue;
			while ((name = strtok_r(NULL, " \t\n", &save)) != NULL)
				if (strcasecmp(name, host) == 0)
					break;
			if (name == NULL)
				continue;
			seen = true;
			ai_numeric(tail, h, addr, port, &r);
		}
		fclose(f);
	}
	if (r == 0 && !seen && strcasecmp(host, "localhost") == 0 &&
	    (r = ai_add(tail, h, AF_INET, &lo4, 0, port)) == 0)
		r = ai_add(tail, h, AF_INET6, &lo6, 0, port);
	if (r == 0 && *head == NULL)
		r = EAI_NONAME;
	return r;
}

/*
 * What wpool asks of getaddrinfo: numeric ports (no /etc/services), a
 * numeric host, a name from /etc/hosts, or none (the wildcard with
 * AI_PASSIVE, else the loopback).  No DNS: a bind address is local.
 */
int
__wrap_getaddrinfo(const char *host, const char *serv,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
	static const struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	const struct addrinfo none = { .ai_family = AF_UNSPEC };
	const struct addrinfo *h = hints != NULL ? hints : &none;
	struct addrinfo *head = NULL, **tail = &head;
	struct in_addr a4;
	unsigned long port = 0;
	char	*end;
	int	 r = 0;

	if (host == NULL && serv == NULL)
		return EAI_NONAME;
	if (h->ai_family != AF_UNSPEC && h->ai_family != AF_INET &&
	    h->ai_family != AF_INET6)
		return EAI_FAMILY;
	if (serv != NULL) {
		errno = 0;
		port = strtoul(serv, &end, 10);
		if (!isdigit((unsigned char)*serv) || *end != '\0' ||
		    errno != 0 || port > 65535)
			return EAI_SERVICE;
	}
	if (host == NULL) {
		bool	 passive = (h->ai_flags & AI_PASSIVE) != 0;

		a4.s_addr = htonl(passive ? INADDR_ANY : INADDR_LOOPBACK);
		if ((r = ai_add(&tail, h, AF_INET6, passive ? &any6 : &lo6, 0,
		    (uint16_t)port)) == 0)
			r = ai_add(&tail, h, AF_INET, &a4, 0, (uint16_t)port);
	} else if (!ai_numeric(&tail, h, host, (uint16_t)port, &r)) {
		if (h->ai_flags & AI_NUMERICHOST)
			r = EAI_NONAME;
		else
			r = ai_hosts(&tail, &head, h, host, (uint16_t)port);
	}
	if (r == 0 && head == NULL)
		r = EAI_ADDRFAMILY;
	if (r != 0) {
		__wrap_freeaddrinfo(head);
		return r;
	}
	if ((h->ai_flags & AI_CANONNAME) && host != NULL &&
	    (head->ai_canonname = strdup(host)) == NULL) {
		__wrap_freeaddrinfo(head);
		return EAI_MEMORY;
	}
	*res = head;
	return 0;
}

void
__wrap_freeaddrinfo(struct addrinfo *ai)
{
	struct addrinfo *next;

	for (; ai != NULL; ai = next) {
		next = ai->ai_next;
		free(ai->ai_canonname);
		free(ai);
	}
}
