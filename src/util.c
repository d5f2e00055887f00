/*
 * util.c: small helpers with no state: fd flags, allocation that cannot
 * fail silently, and human-readable durations and sizes.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

int
set_cloexec(int fd, bool on)
{
	int	 fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -1;
	fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, fl);
}

int
set_nonblock(int fd, bool on)
{
	int	 fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

/* Out of memory in the master is not something it can serve through. */
char *
xstrdup(const char *s)
{
	char	*p = strdup(s);

	if (p == NULL)
		err(1, "strdup");
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void	*p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		err(1, "calloc");
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	void	*q = reallocarray(p, n ? n : 1, size ? size : 1);

	if (q == NULL)
		err(1, "reallocarray");
	return q;
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0)
		err(1, "asprintf");
	return n;
}

/* 0.3s, 42s, 5m07s, 3h02m, 2d04h. */
int
format_duration(double s, char *buf, size_t len)
{
	unsigned long long t;

	if (s < 0)
		s = 0;
	if (s < 10)
		return snprintf(buf, len, "%.1fs", s);
	t = (unsigned long long)s;
	if (t < 60)
		return snprintf(buf, len, "%llus", t);
	if (t < 3600)
		return snprintf(buf, len, "%llum%02llus", t / 60, t % 60);
	if (t < 86400)
		return snprintf(buf, len, "%lluh%02llum", t / 3600,
		    (t % 3600) / 60);
	return snprintf(buf, len, "%llud%02lluh", t / 86400, (t % 86400) / 3600);
}

/* 512B, 12.4K, 3.0M, 1.2G. */
int
format_bytes(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	double	 v = (double)b;
	int	 i = -1;

	if (b < 1024)
		return snprintf(buf, len, "%lluB", (unsigned long long)b);
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	return snprintf(buf, len, v < 100 ? "%.1f%c" : "%.0f%c", v, units[i]);
}

/* Reads up to len - 1 bytes of a small file (/proc, cgroup) as a string. */
int
read_small_file(const char *path, char *buf, size_t len)
{
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}
