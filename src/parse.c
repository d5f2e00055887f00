/*
 * parse.c: the value parsers that the command line, the config file and
 * the listener specs share, and the name tables of the pool's enums.
 * Pure: no state, no output; each returns 0 or -errno and writes its
 * output only on success.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"

/*
 * The names of enum pool_mode and enum ready_mode, in enum order,
 * NULL-terminated: --help, the errors, `wpool check`, status and the docs
 * test all spell them from here.  The balancers' names come from their
 * table in balance.c (balancer_names).
 */
const char *const mode_names[] = { "shared", "reuseport", "balance",
    "inetd", NULL };
const char *const ready_names[] = { "exec", "notify", "listen", NULL };

/* The index of v in a NULL-terminated names table, or -EINVAL. */
int
parse_name(const char *v, const char *const *names)
{
	int	 i;

	for (i = 0; v != NULL && names[i] != NULL; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	return -EINVAL;
}

/* A config file's boolean: no value, true/yes/on/1 or false/no/off/0. */
int
parse_bool(const char *v, bool *out)
{
	if (v == NULL || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
	    strcmp(v, "on") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
	    strcmp(v, "off") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Signal names, without the SIG prefix, in the order kill -l prints. */
static const struct {
	const char *name;
	int	 sig;
} signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "ILL", SIGILL }, { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
	{ "IOT", SIGIOT }, { "BUS", SIGBUS }, { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
	{ "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
	{ "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "POLL", SIGPOLL }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
};

const char *
signal_name(int sig)
{
	static char buf[16];
	size_t	 i;

	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
		snprintf(buf, sizeof(buf), "RTMIN+%d", sig - SIGRTMIN);
		return buf;
	}
	snprintf(buf, sizeof(buf), "%d", sig);
	return buf;
}

/* "TERM", "SIGTERM", "term", "15", "RTMIN+2": 0 and *out, or -EINVAL. */
int
parse_signal(const char *s, int *out)
{
	long long n;
	size_t	 i;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (isdigit((unsigned char)*s)) {
		if (parse_int(s, 1, SIGRTMAX, &n) < 0)
			return -EINVAL;
		*out = (int)n;
		return 0;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcasecmp(s, signals[i].name) == 0) {
			*out = signals[i].sig;
			return 0;
		}
	if (strncasecmp(s, "RTMIN+", 6) == 0 &&
	    parse_int(s + 6, 0, SIGRTMAX - SIGRTMIN, &n) == 0) {
		*out = SIGRTMIN + (int)n;
		return 0;
	}
	return -EINVAL;
}

/* A whole decimal number in [min, max]. */
int
parse_int(const char *s, long long min, long long max, long long *out)
{
	const char *errstr;
	long long n;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s) ||
	    *s == '+')
		return -EINVAL;
	n = strtonum(s, min, max, &errstr);
	if (errstr != NULL)
		return strcmp(errstr, "invalid") == 0 ? -EINVAL : -ERANGE;
	*out = n;
	return 0;
}

/*
 * Seconds, with fractions and an optional unit: "0.5", "500ms", "2s",
 * "1.5m", "1h".  Negative, NaN and absurdly large values are refused.
 */
int
parse_duration(const char *s, double *out)
{
	static const struct {
		const char *unit;
		double	 scale;
	} units[] = {
		{ "", 1 }, { "s", 1 }, { "ms", 0.001 }, { "us", 0.000001 },
		{ "m", 60 }, { "min", 60 }, { "h", 3600 },
	};
	char	*end;
	double	 v;
	size_t	 i;

	if (s == NULL || *s == '\0' || !(isdigit((unsigned char)*s) ||
	    *s == '.'))
		return -EINVAL;
	/* Decimal only: strtod would also take 0x10 or 1e3. */
	for (end = (char *)s; isdigit((unsigned char)*end) || *end == '.';
	    end++)
		;
	if (*end == 'x' || *end == 'X' || *end == 'e' || *end == 'E')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0) {
			v *= units[i].scale;
			/* A year is plenty; more is a typo. */
			if (v > 366.0 * 86400)
				return -ERANGE;
			*out = v;
			return 0;
		}
	return -EINVAL;
}

/* Bytes with an optional binary suffix: 1048576, 512K, 512M, 1.5G, 2GiB. */
int
parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		double	 scale;
	} units[] = {
		{ "", 1 }, { "B", 1 },
		{ "K", 1024.0 }, { "KB", 1024.0 }, { "KiB", 1024.0 },
		{ "M", 1048576.0 }, { "MB", 1048576.0 }, { "MiB", 1048576.0 },
		{ "G", 1073741824.0 }, { "GB", 1073741824.0 },
		{ "GiB", 1073741824.0 },
		{ "T", 1099511627776.0 }, { "TB", 1099511627776.0 },
		{ "TiB", 1099511627776.0 },
	};
	char	*end;
	double	 v;
	size_t	 i;

	if (s == NULL || !(isdigit((unsigned char)*s) || *s == '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].unit) == 0) {
			v *= units[i].scale;
			if (v >= 18446744073709551615.0)
				return -ERANGE;
			*out = (uint64_t)v;
			return 0;
		}
	return -EINVAL;
}

/* "auto" gives 0; otherwise 1..WPOOL_MAX_WORKERS. */
int
parse_workers(const char *s, int *out)
{
	long long n;
	int	 r;

	if (s != NULL && strcmp(s, "auto") == 0) {
		*out = 0;
		return 0;
	}
	if ((r = parse_int(s, 1, WPOOL_MAX_WORKERS, &n)) < 0)
		return r;
	*out = (int)n;
	return 0;
}

/*
 * USER[:GROUP], names or numbers; the group defaults to USER's own.
 * -ENOSYS: a name, where names cannot be looked up at all (the static
 * build's lookups, src/static/lookup.c, say so with errno ENOSYS when
 * there is no /etc/passwd or /etc/group to read).
 */
int
parse_user(const char *s, uid_t *uid, gid_t *gid, bool *found)
{
	char	 user[256], *group;
	struct passwd *pw;
	struct group *gr;
	long long n;
	uid_t	 u;
	gid_t	 g;
	int	 e;

	*found = false;
	if (s == NULL || *s == '\0' || strlcpy(user, s, sizeof(user)) >=
	    sizeof(user))
		return -EINVAL;
	if ((group = strchr(user, ':')) != NULL)
		*group++ = '\0';
	errno = 0;
	pw = getpwnam(user);
	e = errno;
	if (pw != NULL) {
		u = pw->pw_uid;
		g = pw->pw_gid;
	} else if (parse_int(user, 0, UINT_MAX - 1, &n) == 0) {
		u = (uid_t)n;
		pw = getpwuid(u);
		g = pw != NULL ? pw->pw_gid : (gid_t)n;
	} else
		return e == ENOSYS ? -ENOSYS : -ENOENT;
	if (group != NULL) {
		errno = 0;
		gr = getgrnam(group);
		e = errno;
		if (gr != NULL)
			g = gr->gr_gid;
		else if (parse_int(group, 0, UINT_MAX - 1, &n) == 0)
			g = (gid_t)n;
		else
			return e == ENOSYS ? -ENOSYS : -ESRCH;
	}
	*uid = u;
	*gid = g;
	*found = true;
	return 0;
}
