/*
 * cli.c: the run options, from argv to struct conf.  Owns struct conf's
 * contents; never opens a socket or starts a process.  Errors go to the
 * caller's buffer.  The value parsers are parse.c's.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

static const char usage_text[] =
"usage: wpool [RUN OPTIONS] [--] COMMAND [ARG...]\n"
"       wpool run [RUN OPTIONS] [--] COMMAND [ARG...]\n"
"       wpool check [RUN OPTIONS] [--] [COMMAND [ARG...]]\n"
"       wpool [-s PATH | --name NAME] status [--json] [--check]\n"
"       wpool [-s PATH | --name NAME] reload [--no-wait]\n"
"       wpool [-s PATH | --name NAME] scale N|+N|-N\n"
"       wpool [-s PATH | --name NAME] restart ID|all [--no-wait]\n"
"       wpool [-s PATH | --name NAME] signal SIG [ID]\n"
"       wpool [-s PATH | --name NAME] stop [--no-wait]\n"
"       wpool --help | --version\n"
"\n"
"Run COMMAND as a supervised pool of workers that share listening sockets.\n"
"\n"
"Pool:\n"
"  -n, --workers N|auto        number of workers, 1..1024; auto = usable CPUs\n"
"                              (affinity and cgroup quota)  [auto]\n"
"      --fallback-cpus N       workers for auto when no CPU count can be read [4]\n"
"  -b, --bind SPEC             a listener, repeatable: HOST:PORT, [::1]:PORT,\n"
"                              :PORT, unix:PATH, udp://HOST:PORT, fd:N, systemd;\n"
"                              options after commas: name=, backlog=, mode=,\n"
"                              owner=, v6only, freebind, defer_accept, nodelay,\n"
"                              rcvbuf=, sndbuf=\n"
"  -m, --mode MODE             shared, reuseport, balance or inetd  [shared]\n"
"      --balancer NAME         balance mode: least-conn, round-robin or\n"
"                              ip-hash  [least-conn]\n"
"      --backlog N             listen backlog, capped by somaxconn  [1024]\n"
"      --max-queue N           balance mode: most connections queued  [1000]\n"
"\n"
"Supervision:\n"
"      --restart-delay SEC     wait before respawning a dead worker  [0]\n"
"      --max-restart-delay SEC cap of the crash back-off  [30]\n"
"      --min-uptime SEC        a worker that lived this long resets its\n"
"                              slot's back-off  [5]\n"
"      --no-restart            do not respawn; exit when the last worker exits\n"
"      --stop-signal SIG       signal that asks a worker to stop  [TERM]\n"
"      --stop-timeout SEC      then KILL after this long  [10]\n"
"      --ready exec|notify     when a new worker counts as ready  [exec]\n"
"      --ready-timeout SEC     kill a worker not ready by then  [60]\n"
"      --reload-batch K        workers replaced at a time in a reload  [1]\n"
"      --watchdog SEC          restart a worker whose WATCHDOG=1 pings stop\n"
"      --max-requests N        balance mode: recycle after N connections\n"
"      --max-requests-jitter J add a random 0..J to each worker's limit\n"
"      --max-memory SIZE       recycle a worker whose RSS exceeds SIZE (512M)\n"
"\n"
"Workers:\n"
"  -u, --user USER[:GROUP]     run workers as USER (listeners bound first)\n"
"  -C, --chdir DIR             workers' working directory\n"
"  -e, --env NAME=VALUE        extra environment for workers, repeatable\n"
"      --log-prefix            prefix each line of worker output with [NAME.ID]\n"
"\n"
"Master:\n"
"  -s, --control PATH          control socket path\n"
"      --name NAME             pool name: control socket, log prefix  [wpool]\n"
"  -c, --config FILE           INI config file; options given here override it\n"
"      --pidfile FILE          write the master's pid to FILE, locked\n"
"      --metrics HOST:PORT     serve /metrics and /status over HTTP\n"
"  -q, --quiet                 log warnings and errors only\n"
"  -v, --verbose               log debug messages too\n"
"  -h, --help                  show this help\n"
"  -V, --version               show the version\n"
"\n"
"Signals: TERM, INT, QUIT stop; HUP, USR1 reload; TTIN, TTOU add or remove a\n"
"worker; USR2, WINCH are forwarded to every worker.  See wpool(1).\n";

void
cli_usage(int status)
{
	fputs(usage_text, status == 0 ? stdout : stderr);
}

enum {
	OPT_BALANCER = 256, OPT_BACKLOG, OPT_MAX_QUEUE, OPT_RESTART_DELAY,
	OPT_MAX_RESTART_DELAY, OPT_MIN_UPTIME, OPT_NO_RESTART,
	OPT_STOP_SIGNAL, OPT_STOP_TIMEOUT, OPT_READY, OPT_READY_TIMEOUT,
	OPT_RELOAD_BATCH, OPT_FALLBACK_CPUS, OPT_NAME, OPT_WATCHDOG,
	OPT_MAX_REQUESTS, OPT_MAX_REQUESTS_JITTER, OPT_MAX_MEMORY,
	OPT_PIDFILE, OPT_LOG_PREFIX, OPT_METRICS,
};

static const char short_opts[] = "+:n:b:m:s:c:u:C:e:qvhV";

static const struct option long_opts[] = {
	{ "workers",		required_argument, NULL, 'n' },
	{ "bind",		required_argument, NULL, 'b' },
	{ "mode",		required_argument, NULL, 'm' },
	{ "balancer",		required_argument, NULL, OPT_BALANCER },
	{ "backlog",		required_argument, NULL, OPT_BACKLOG },
	{ "max-queue",		required_argument, NULL, OPT_MAX_QUEUE },
	{ "restart-delay",	required_argument, NULL, OPT_RESTART_DELAY },
	{ "max-restart-delay",	required_argument, NULL, OPT_MAX_RESTART_DELAY },
	{ "min-uptime",		required_argument, NULL, OPT_MIN_UPTIME },
	{ "no-restart",		no_argument,	   NULL, OPT_NO_RESTART },
	{ "stop-signal",	required_argument, NULL, OPT_STOP_SIGNAL },
	{ "stop-timeout",	required_argument, NULL, OPT_STOP_TIMEOUT },
	{ "ready",		required_argument, NULL, OPT_READY },
	{ "ready-timeout",	required_argument, NULL, OPT_READY_TIMEOUT },
	{ "reload-batch",	required_argument, NULL, OPT_RELOAD_BATCH },
	{ "fallback-cpus",	required_argument, NULL, OPT_FALLBACK_CPUS },
	{ "control",		required_argument, NULL, 's' },
	{ "name",		required_argument, NULL, OPT_NAME },
	{ "config",		required_argument, NULL, 'c' },
	{ "user",		required_argument, NULL, 'u' },
	{ "chdir",		required_argument, NULL, 'C' },
	{ "env",		required_argument, NULL, 'e' },
	{ "watchdog",		required_argument, NULL, OPT_WATCHDOG },
	{ "max-requests",	required_argument, NULL, OPT_MAX_REQUESTS },
	{ "max-requests-jitter", required_argument, NULL, OPT_MAX_REQUESTS_JITTER },
	{ "max-memory",		required_argument, NULL, OPT_MAX_MEMORY },
	{ "pidfile",		required_argument, NULL, OPT_PIDFILE },
	{ "log-prefix",		no_argument,	   NULL, OPT_LOG_PREFIX },
	{ "metrics",		required_argument, NULL, OPT_METRICS },
	{ "quiet",		no_argument,	   NULL, 'q' },
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ "version",		no_argument,	   NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

void
conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->workers = 0;
	c->fallback_cpus = 4;
	c->mode = MODE_SHARED;
	c->balancer = BAL_LEAST_CONN;
	c->backlog = 1024;
	c->max_queue = 1000;
	c->restart_delay = 0;
	c->max_restart_delay = 30;
	c->min_uptime = 5;
	c->stop_signal = SIGTERM;
	c->stop_timeout = 10;
	c->ready = READY_EXEC;
	c->ready_timeout = 60;
	c->reload_batch = 1;
	c->log_level = LOG_INFO;
}

void
conf_free(struct conf *c)
{
	size_t	 i;

	for (i = 0; i < c->nlisteners; i++)
		listener_free(&c->listeners[i]);
	free(c->listeners);
	for (i = 0; i < c->nenv; i++)
		free(c->env[i]);
	free(c->env);
	free(c->groups);
	free(c->control);
	free(c->name);
	free(c->config);
	free(c->user);
	free(c->chdir);
	free(c->pidfile);
	free(c->metrics);
	memset(c, 0, sizeof(*c));
}

static int
bad(char *err, size_t len, const char *opt, const char *val,
    const char *accepted)
{
	snprintf(err, len, "%s: invalid value '%s': expected %s", opt, val,
	    accepted);
	return -EINVAL;
}

static int
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
	return 0;
}

static int
name_ok(const char *s)
{
	const char *p;

	if (*s == '\0' || strlen(s) > 64 || *s == '.')
		return 0;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL)
			return 0;
	return 1;
}

static int
env_ok(const char *s)
{
	const char *eq = strchr(s, '=');
	const char *p;

	if (eq == NULL || eq == s)
		return 0;
	for (p = s; p < eq; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return !isdigit((unsigned char)*s);
}


/* The options that take seconds, and an example of each form. */
static const struct {
	const char *key;
	size_t	 off;
	bool	 positive;
	const char *plain, *unit;	/* such as ... */
} durations[] = {
	{ "restart-delay", offsetof(struct conf, restart_delay), false,
	    "0.5", "500ms" },
	{ "max-restart-delay", offsetof(struct conf, max_restart_delay), false,
	    "30", "1m" },
	{ "min-uptime", offsetof(struct conf, min_uptime), false,
	    "5", "500ms" },
	{ "stop-timeout", offsetof(struct conf, stop_timeout), false,
	    "10 or 2.5", "1m" },
	{ "ready-timeout", offsetof(struct conf, ready_timeout), true,
	    "60", "2m" },
	{ "watchdog", offsetof(struct conf, watchdog), true,
	    "30", "500ms" },
};

/*
 * Applies one option by its long name: shared by the command line and the
 * config file, so both accept and refuse exactly the same values.  `opt`
 * is how the error should name it ("--workers" or "workers").
 */
int
cli_apply(struct conf *c, const char *key, const char *v, const char *opt,
    char *err, size_t len)
{
	long long n;
	double	 d;
	size_t	 k;
	int	 i;

	for (k = 0; k < sizeof(durations) / sizeof(durations[0]); k++)
		if (strcmp(key, durations[k].key) == 0) {
			if (parse_duration(v, &d) < 0 ||
			    (durations[k].positive && d <= 0)) {
				char	 what[160];

				snprintf(what, sizeof(what), "seconds %s, such "
				    "as %s, or with a unit (us, ms, s, m, h), "
				    "such as %s", durations[k].positive ?
				    "above 0, up to a year" :
				    "from 0 to a year", durations[k].plain,
				    durations[k].unit);
				return bad(err, len, opt, v, what);
			}
			*(double *)(void *)((char *)c + durations[k].off) = d;
			return 0;
		}
	if (strcmp(key, "workers") == 0) {
		if (parse_workers(v, &c->workers) < 0)
			return bad(err, len, opt, v,
			    "a number from 1 to 1024 or 'auto'");
	} else if (strcmp(key, "bind") == 0) {
		struct listener l;
		char	 lerr[256];

		if (c->nlisteners >= WPOOL_MAX_LISTENERS) {
			snprintf(err, len, "%s: too many listeners (at most "
			    "%d)", opt, WPOOL_MAX_LISTENERS);
			return -EINVAL;
		}
		if (listener_parse(v, &l, lerr, sizeof(lerr)) < 0) {
			snprintf(err, len, "%s: invalid value '%s': %s", opt, v,
			    lerr);
			return -EINVAL;
		}
		c->listeners = xreallocarray(c->listeners, c->nlisteners + 1,
		    sizeof(*c->listeners));
		c->listeners[c->nlisteners++] = l;
	} else if (strcmp(key, "mode") == 0) {
		if ((i = parse_name(v, mode_names)) < 0)
			return bad(err, len, opt, v,
			    "shared, reuseport, balance or inetd");
		c->mode = (enum pool_mode)i;
	} else if (strcmp(key, "balancer") == 0) {
		if ((i = parse_name(v, balancer_names)) < 0)
			return bad(err, len, opt, v,
			    "least-conn, round-robin or ip-hash");
		c->balancer = (enum balancer)i;
		c->balance_opts = true;
	} else if (strcmp(key, "backlog") == 0) {
		if (parse_int(v, 1, 1 << 20, &n) < 0)
			return bad(err, len, opt, v,
			    "a number from 1 to 1048576");
		c->backlog = (int)n;
	} else if (strcmp(key, "max-queue") == 0) {
		if (parse_int(v, 1, 1000000, &n) < 0)
			return bad(err, len, opt, v,
			    "a number from 1 to 1000000");
		c->max_queue = (int)n;
		c->balance_opts = true;
	} else if (strcmp(key, "no-restart") == 0) {
		c->no_restart = true;
	} else if (strcmp(key, "stop-signal") == 0) {
		if (parse_signal(v, &c->stop_signal) < 0)
			return bad(err, len, opt, v, "a signal name or number, "
			    "such as TERM, SIGQUIT or 15");
	} else if (strcmp(key, "ready") == 0) {
		if ((i = parse_name(v, ready_names)) < 0)
			return bad(err, len, opt, v, "exec or notify");
		c->ready = (enum ready_mode)i;
	} else if (strcmp(key, "reload-batch") == 0) {
		if (parse_int(v, 1, WPOOL_MAX_WORKERS, &n) < 0)
			return bad(err, len, opt, v,
			    "a number from 1 to 1024");
		c->reload_batch = (int)n;
	} else if (strcmp(key, "fallback-cpus") == 0) {
		if (parse_int(v, 1, WPOOL_MAX_WORKERS, &n) < 0)
			return bad(err, len, opt, v,
			    "a number from 1 to 1024");
		c->fallback_cpus = (int)n;
	} else if (strcmp(key, "control") == 0) {
		if (*v == '\0' || strlen(v) >= 108)
			return bad(err, len, opt, v,
			    "a socket path of 1 to 107 bytes");
		set_str(&c->control, v);
	} else if (strcmp(key, "name") == 0) {
		if (!name_ok(v))
			return bad(err, len, opt, v, "1 to 64 letters, digits, "
			    "'.', '_' or '-', not starting with '.'");
		set_str(&c->name, v);
	} else if (strcmp(key, "user") == 0) {
		bool	 found;
		int	 r;

		r = parse_user(v, &c->uid, &c->gid, &found);
		if (r == -ESRCH)
			return bad(err, len, opt, v, "an existing group after "
			    "':'");
		if (r < 0)
			return bad(err, len, opt, v, "an existing user name or "
			    "uid, optionally :GROUP");
		c->set_user = true;
		set_str(&c->user, v);
	} else if (strcmp(key, "chdir") == 0) {
		if (*v == '\0')
			return bad(err, len, opt, v, "a directory");
		set_str(&c->chdir, v);
	} else if (strcmp(key, "env") == 0) {
		if (!env_ok(v))
			return bad(err, len, opt, v, "NAME=VALUE, NAME made of "
			    "letters, digits and '_'");
		c->env = xreallocarray(c->env, c->nenv + 1, sizeof(*c->env));
		c->env[c->nenv++] = xstrdup(v);
	} else if (strcmp(key, "max-requests") == 0) {
		if (parse_int(v, 1, LLONG_MAX / 2, &n) < 0)
			return bad(err, len, opt, v, "a number >= 1");
		c->max_requests = (long)n;
	} else if (strcmp(key, "max-requests-jitter") == 0) {
		if (parse_int(v, 0, LLONG_MAX / 2, &n) < 0)
			return bad(err, len, opt, v, "a number >= 0");
		c->max_requests_jitter = (long)n;
	} else if (strcmp(key, "max-memory") == 0) {
		if (parse_size(v, &c->max_memory) < 0 || c->max_memory == 0)
			return bad(err, len, opt, v, "a size > 0 such as "
			    "512M, 1G or 1048576");
	} else if (strcmp(key, "pidfile") == 0) {
		if (*v == '\0')
			return bad(err, len, opt, v, "a file path");
		set_str(&c->pidfile, v);
	} else if (strcmp(key, "log-prefix") == 0) {
		c->log_prefix = true;
	} else if (strcmp(key, "metrics") == 0) {
		struct listener l;
		char	 lerr[256];

		if (listener_parse(v, &l, lerr, sizeof(lerr)) < 0)
			return bad(err, len, opt, v, "HOST:PORT with a port "
			    "from 0 to 65535, such as 127.0.0.1:9100");
		if (l.type != L_TCP) {
			listener_free(&l);
			return bad(err, len, opt, v, "HOST:PORT with a port "
			    "from 0 to 65535, such as 127.0.0.1:9100");
		}
		listener_free(&l);
		set_str(&c->metrics, v);
	} else if (strcmp(key, "config") == 0) {
		set_str(&c->config, v);
	} else {
		snprintf(err, len, "unknown option '%s'", opt);
		return -ENOENT;
	}
	return 0;
}

/*
 * Parses the run options; argv[optind...] becomes the command.  Returns
 * 0, 1 for --help/--version (already printed), or -EINVAL with err set.
 */
int
cli_parse(int argc, char **argv, struct conf *c, char *err, size_t len)
{
	const struct option *o;
	char	 optname[64];
	int	 ch, idx, r, loud = 0;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, short_opts, long_opts,
	    &idx)) != -1) {
		switch (ch) {
		case 'h':
			cli_usage(0);
			return 1;
		case 'V':
			printf("wpool %s\n", WPOOL_VERSION);
			return 1;
		case 'q':
		case 'v':
			if (loud != 0 && loud != ch) {
				snprintf(err, len, "-q/--quiet and -v/--verbose: "
				    "give one or the other");
				return -EINVAL;
			}
			loud = ch;
			c->log_level = ch == 'q' ? LOG_WARN : LOG_DEBUG;
			continue;
		case '?':
			if (optopt > 0 && optopt < 256)
				snprintf(err, len, "unknown option '-%c'",
				    optopt);
			else
				snprintf(err, len, "unknown option '%s'",
				    argv[optind - 1]);
			return -EINVAL;
		case ':':
			snprintf(err, len, "%s: a value is required",
			    argv[optind - 1]);
			return -EINVAL;
		}
		/* Map the short letters to their long entries. */
		o = NULL;
		if (ch >= 256)
			o = &long_opts[idx];
		else
			for (o = long_opts; o->name != NULL; o++)
				if (o->val == ch)
					break;
		if (o == NULL || o->name == NULL) {
			snprintf(err, len, "unknown option");
			return -EINVAL;
		}
		if (ch < 256)
			snprintf(optname, sizeof(optname), "-%c/--%s", ch,
			    o->name);
		else
			snprintf(optname, sizeof(optname), "--%s", o->name);
		if ((r = cli_apply(c, o->name, optarg ? optarg : "", optname,
		    err, len)) < 0)
			return r;
	}
	if (optind < argc && strcmp(argv[optind], "run") == 0 &&
	    strcmp(argv[optind - 1], "--") != 0) {
		/* "wpool run [options] -- cmd": parse what follows run. */
		return cli_parse(argc - optind, argv + optind, c, err, len);
	}
	if (optind < argc)
		c->argv = argv + optind;
	return 0;
}

/* Why path is no directory wpool can change to, or NULL. */
static const char *
chdir_problem(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return strerror(errno);
	if (!S_ISDIR(st.st_mode))
		return "not a directory";
	if (access(path, X_OK) != 0)
		return strerror(errno);
	return NULL;
}

/* Checks that hold across options; run after the file and the flags. */
int
cli_validate(struct conf *c, char *err, size_t len)
{
	const char *why;
	size_t	 i, j;
	int	 ngroups;

	if (c->name == NULL)
		c->name = xstrdup("wpool");
	if (c->argv == NULL || c->argv[0] == NULL || c->argv[0][0] == '\0') {
		snprintf(err, len, "no command given: wpool [OPTIONS] [--] "
		    "COMMAND [ARG...]");
		return -EINVAL;
	}
	if (c->max_restart_delay < c->restart_delay)
		c->max_restart_delay = c->restart_delay;
	if (c->max_requests_jitter > 0 && c->max_requests == 0) {
		snprintf(err, len, "--max-requests-jitter: needs "
		    "--max-requests");
		return -EINVAL;
	}
	if (c->max_requests > 0 && c->mode != MODE_BALANCE) {
		snprintf(err, len, "--max-requests: only in balance mode "
		    "(-m balance), where wpool sees each connection");
		return -EINVAL;
	}
	if (c->mode == MODE_REUSEPORT && c->nlisteners == 0) {
		snprintf(err, len, "--mode: reuseport needs at least one "
		    "-b/--bind listener");
		return -EINVAL;
	}
	if ((c->mode == MODE_BALANCE || c->mode == MODE_INETD) &&
	    c->nlisteners == 0) {
		snprintf(err, len, "--mode: %s needs at least one -b/--bind "
		    "listener", mode_names[c->mode]);
		return -EINVAL;
	}
	for (i = 0; i < c->nlisteners; i++) {
		struct listener *l = &c->listeners[i];

		if (c->mode == MODE_REUSEPORT && l->type == L_UNIX) {
			snprintf(err, len, "--bind: 'unix:%s': unix sockets "
			    "cannot be used with -m reuseport: expected tcp or "
			    "udp", l->spec);
			return -EINVAL;
		}
		if ((c->mode == MODE_BALANCE || c->mode == MODE_INETD) &&
		    l->type == L_UDP) {
			snprintf(err, len, "--bind: '%s': udp listeners work in "
			    "shared and reuseport modes only, not %s", l->spec,
			    mode_names[c->mode]);
			return -EINVAL;
		}
		if (c->mode == MODE_REUSEPORT && (l->type == L_FD ||
		    l->type == L_SYSTEMD)) {
			snprintf(err, len, "--bind: '%s': inherited sockets "
			    "cannot be used with -m reuseport: expected tcp "
			    "or udp", l->spec);
			return -EINVAL;
		}
		if (l->name == NULL)
			xasprintf(&l->name, "l%zu", i);
		for (j = 0; j < i; j++)
			if (strcmp(c->listeners[j].name, l->name) == 0) {
				snprintf(err, len, "--bind: '%s': the name "
				    "'%s' is already used by '%s'", l->spec,
				    l->name, c->listeners[j].spec);
				return -EINVAL;
			}
	}
	if (c->balance_opts && c->mode != MODE_BALANCE) {
		snprintf(err, len, "--balancer and --max-queue: only in "
		    "balance mode (-m balance), where wpool hands out the "
		    "connections");
		return -EINVAL;
	}
	if (c->chdir != NULL && (why = chdir_problem(c->chdir)) != NULL) {
		snprintf(err, len, "-C/--chdir: invalid value '%s': %s: "
		    "expected a directory", c->chdir, why);
		return -EINVAL;
	}
	if (c->set_user) {
		struct passwd *pw = getpwuid(c->uid);

		ngroups = 0;
		if (pw != NULL) {
			getgrouplist(pw->pw_name, c->gid, NULL, &ngroups);
			c->groups = xcalloc((size_t)ngroups + 1,
			    sizeof(gid_t));
			if (getgrouplist(pw->pw_name, c->gid, c->groups,
			    &ngroups) < 0)
				ngroups = 0;
		} else {
			c->groups = xcalloc(1, sizeof(gid_t));
			c->groups[0] = c->gid;
			ngroups = 1;
		}
		c->ngroups = ngroups;
		if (geteuid() != 0 && c->uid != geteuid()) {
			snprintf(err, len, "-u/--user: '%s': only root can run "
			    "workers as another user", c->user);
			return -EPERM;
		}
	}
	return 0;
}
