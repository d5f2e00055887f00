/*
 * test_util.c: util.c's human-readable formats (what logs and `wpool
 * status` print) and its small fd and string helpers.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

static void
check_duration(double s, const char *want)
{
	char	 buf[32];
	int	 n;

	memset(buf, 'x', sizeof(buf));
	n = format_duration(s, buf, sizeof(buf));
	is_str(buf, want, "format_duration(%g) = \"%s\"", s, want);
	is_int(n, (long long)strlen(want), "format_duration(%g) returns the "
	    "length", s);
}

static void
check_bytes(uint64_t b, const char *want)
{
	char	 buf[32];
	int	 n;

	memset(buf, 'x', sizeof(buf));
	n = format_bytes(b, buf, sizeof(buf));
	is_str(buf, want, "format_bytes(%llu) = \"%s\"", (unsigned long long)b,
	    want);
	is_int(n, (long long)strlen(want), "format_bytes(%llu) returns the "
	    "length", (unsigned long long)b);
}

static void
test_format_duration(void)
{
	char	 small[4];

	check_duration(0.3, "0.3s");
	check_duration(0, "0.0s");
	check_duration(-5, "0.0s");		/* clock skew never shows "-" */
	check_duration(9.94, "9.9s");
	check_duration(42, "42s");
	check_duration(42.9, "42s");
	check_duration(59.99, "59s");
	check_duration(60, "1m00s");
	check_duration(307, "5m07s");
	check_duration(3599, "59m59s");
	check_duration(3600, "1h00m");
	check_duration(10920, "3h02m");
	check_duration(86399, "23h59m");
	check_duration(86400, "1d00h");
	check_duration(187200, "2d04h");

	/* snprintf semantics: truncated but terminated. */
	format_duration(10920, small, sizeof(small));
	is_str(small, "3h0", "format_duration truncates to the buffer");
}

static void
test_format_bytes(void)
{
	check_bytes(0, "0B");
	check_bytes(512, "512B");
	check_bytes(1023, "1023B");
	check_bytes(1024, "1.0K");
	check_bytes(12697, "12.4K");		/* 12.4 KiB */
	check_bytes(150 * 1024, "150K");	/* >= 100: no decimal */
	check_bytes(3 * 1048576, "3.0M");
	check_bytes(1288490189ULL, "1.2G");
	check_bytes(5ULL << 40, "5.0T");
	check_bytes(2ULL << 50, "2.0P");
	check_bytes(UINT64_MAX, "16384P");	/* P is the largest unit */
}

static void
test_fd_flags(void)
{
	int	 p[2];

	if (!ok(pipe(p) == 0, "pipe"))
		return;
	ok(set_cloexec(p[0], true) == 0 &&
	    (fcntl(p[0], F_GETFD) & FD_CLOEXEC), "set_cloexec on");
	ok(set_cloexec(p[0], false) == 0 &&
	    !(fcntl(p[0], F_GETFD) & FD_CLOEXEC), "set_cloexec off");
	ok(set_nonblock(p[1], true) == 0 &&
	    (fcntl(p[1], F_GETFL) & O_NONBLOCK), "set_nonblock on");
	ok(set_nonblock(p[1], false) == 0 &&
	    !(fcntl(p[1], F_GETFL) & O_NONBLOCK), "set_nonblock off");
	close(p[0]);
	close(p[1]);
	ok(set_cloexec(p[0], true) < 0, "set_cloexec on a closed fd fails");
	ok(set_nonblock(p[0], true) < 0, "set_nonblock on a closed fd fails");
}

static void
test_strings(void)
{
	char	*s;
	int	 n;
	int	*v;

	s = xstrdup("abc");
	is_str(s, "abc", "xstrdup copies");
	free(s);
	n = xasprintf(&s, "%s-%d", "w", 7);
	is_str(s, "w-7", "xasprintf formats");
	is_int(n, 3, "xasprintf returns the length");
	free(s);
	v = xcalloc(0, sizeof(int));
	ok(v != NULL, "xcalloc(0) returns a pointer");
	v = xreallocarray(v, 4, sizeof(int));
	v[3] = 1;
	ok(v != NULL && v[3] == 1, "xreallocarray grows");
	free(v);
}

int
main(void)
{
	test_format_duration();
	test_format_bytes();
	test_fd_flags();
	test_strings();
	return done_testing();
}
