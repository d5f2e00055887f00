/*
 * cli.c: the run options: one table, cli_opts[], from which getopt's
 * options, --help, the config file's [pool] keys and their error, `wpool
 * check`'s output and the docs test are all built; and argv to struct
 * conf through it.  Owns struct conf's contents; never opens a socket or
 * starts a process.  Errors go to the caller's buffer.  The value parsers
 * are parse.c's.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define HELP_COL	30	/* where --help's descriptions start */
#define HELP_WIDTH	80

/* The field of struct conf an option sets. */
#define F(field)	.off = offsetof(struct conf, field), \
			.size = sizeof(((struct conf *)0)->field)

static int set_bind(struct conf *, const struct opt *, const char *,
    const char *, char *, size_t);
static int set_env(struct conf *, const struct opt *, const char *,
    const char *, char *, size_t);
static int set_user(struct conf *, const struct opt *, const char *,
    const char *, char *, size_t);
static int set_max_crashes(struct conf *, const struct opt *, const char *,
    const char *, char *, size_t);
static int show_help(struct conf *, const struct opt *, const char *,
    const char *, char *, size_t);
static int show_version(struct conf *, const struct opt *, const char *,
    const char *, char *, size_t);
static bool name_ok(const char *);
static bool control_ok(const char *);
static bool nonempty_ok(const char *);
static bool metrics_ok(const char *);

/*
 * Every run option, in the order of the config file's keys (which
 * `wpool check` prints and the "unknown key" error lists); --help shows
 * them section by section in this order.  A new option is one entry here
 * and its field in struct conf (plus a setter if no kind fits), and its
 * lines in the man pages and completions, which tests/bats/90-docs.bats
 * checks against this table.
 */
const struct opt cli_opts[] = {
	{ .name = "name", .kind = OPT_STRING, .flags = OPT_CLI | OPT_FILE,
	  F(name), .valid = name_ok, .accepted = "1 to 64 letters, digits, "
	  "'.', '_' or '-', not starting with '.'", .dflt = "wpool",
	  .section = SEC_MASTER, .arg = "NAME",
	  .help = "pool name: control socket, log prefix" },
	{ .name = "workers", .letter = 'n', .kind = OPT_INT,
	  .flags = OPT_CLI | OPT_FILE, F(workers), .min = 1,
	  .max = WPOOL_MAX_WORKERS, .word = "auto", .dflt = "auto",
	  .section = SEC_POOL, .arg = "N|auto",
	  .help = "number of workers, 1..1024; auto = usable CPUs\n"
	  "(affinity and cgroup quota)" },
	{ .name = "fallback-cpus", .kind = OPT_INT, .flags = OPT_CLI | OPT_FILE,
	  F(fallback_cpus), .min = 1, .max = WPOOL_MAX_WORKERS, .dflt = "4",
	  .section = SEC_POOL, .arg = "N",
	  .help = "workers for auto if no CPU count can be read" },
	{ .name = "memory-per-worker", .kind = OPT_SIZE,
	  .flags = OPT_CLI | OPT_FILE | OPT_ABOVE0 | OPT_OFF0,
	  F(worker_memory), .section = SEC_POOL, .arg = "SIZE",
	  .help = "auto: at most the memory limit (cgroup\n"
	      "memory.max, else RAM) / SIZE workers" },
	{ .name = "bind", .letter = 'b', .kind = OPT_LIST, .flags = OPT_CLI,
	  .set = set_bind, .file_hint = "a [listen] section",
	  .section = SEC_POOL, .arg = "SPEC",
	  .help = "a listener, repeatable: HOST:PORT, [::1]:PORT,\n"
	  ":PORT, unix:PATH, udp://HOST:PORT, fd:N, systemd;\n"
	  "options after commas: name=, backlog=, mode=,\n"
	  "owner=, v6only, freebind, defer_accept, nodelay,\n"
	  "rcvbuf=, sndbuf=" },
	{ .name = "mode", .letter = 'm', .kind = OPT_ENUM,
	  .flags = OPT_CLI | OPT_FILE, F(mode), .values = mode_names,
	  .dflt = "shared", .section = SEC_POOL, .arg = "MODE", .help = "%s" },
	{ .name = "balancer", .kind = OPT_ENUM, .flags = OPT_CLI | OPT_FILE,
	  F(balancer), .values = balancer_names, .dflt = "least-conn",
	  .modes = MODE_BIT(MODE_BALANCE),
	  .mode_why = "where wpool hands out the connections",
	  .section = SEC_POOL, .arg = "NAME", .help = "balance mode: %s" },
	{ .name = "backlog", .kind = OPT_INT, .flags = OPT_CLI | OPT_FILE,
	  F(backlog), .min = 1, .max = 1 << 20, .dflt = "1024",
	  .section = SEC_POOL, .arg = "N",
	  .help = "listen backlog, capped by somaxconn" },
	{ .name = "max-queue", .kind = OPT_INT, .flags = OPT_CLI | OPT_FILE,
	  F(max_queue), .min = 1, .max = 1000000, .dflt = "1000",
	  .modes = MODE_BIT(MODE_BALANCE),
	  .mode_why = "where wpool hands out the connections",
	  .section = SEC_POOL, .arg = "N",
	  .help = "balance mode: most connections queued" },
	{ .name = "restart-delay", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE, F(restart_delay),
	  .ex = { "0.5", "500ms" }, .dflt = "0", .section = SEC_SUPERVISION,
	  .arg = "SEC", .help = "wait before respawning a dead worker" },
	{ .name = "max-restart-delay", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE, F(max_restart_delay),
	  .ex = { "30", "1m" }, .dflt = "30", .section = SEC_SUPERVISION,
	  .arg = "SEC", .help = "cap of the crash back-off" },
	{ .name = "min-uptime", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE, F(min_uptime), .ex = { "5", "500ms" },
	  .dflt = "5", .section = SEC_SUPERVISION, .arg = "SEC",
	  .help = "a worker that lived this long resets its\nslot's back-off" },
	{ .name = "no-restart", .kind = OPT_FLAG, .flags = OPT_CLI | OPT_FILE,
	  F(no_restart), .section = SEC_SUPERVISION,
	  .help = "do not respawn; exit when the last worker exits" },
	{ .name = "stop-signal", .kind = OPT_SIGNAL,
	  .flags = OPT_CLI | OPT_FILE, F(stop_signal), .dflt = "TERM",
	  .section = SEC_SUPERVISION, .arg = "SIG",
	  .help = "signal that asks a worker to stop" },
	{ .name = "stop-timeout", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE, F(stop_timeout),
	  .ex = { "10 or 2.5", "1m" }, .dflt = "10",
	  .section = SEC_SUPERVISION, .arg = "SEC",
	  .help = "then KILL after this long" },
	{ .name = "shutdown-delay", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE | OPT_OFF0, F(shutdown_delay),
	  .ex = { "5 or 1.5", "10s" }, .section = SEC_SUPERVISION,
	  .arg = "SEC",
	  .help = "on TERM, INT or stop: not ready at once, serve on\n"
	  "this long, then stop (a second TERM or INT: now)" },
	{ .name = "min-ready", .kind = OPT_INT,
	  .flags = OPT_CLI | OPT_FILE | OPT_OFF0, F(min_ready), .min = 1,
	  .max = WPOOL_MAX_WORKERS, .section = SEC_SUPERVISION, .arg = "N",
	  .help = "ready (status --check, /readyz) with N workers\n"
	  "ready; default: every wanted one" },
	{ .name = "ready", .kind = OPT_ENUM, .flags = OPT_CLI | OPT_FILE,
	  F(ready), .values = ready_names, .dflt = "listen",
	  .section = SEC_SUPERVISION, .arg = "MODE",
	  .help = "when a new worker counts as ready: %s" },
	{ .name = "ready-timeout", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE | OPT_ABOVE0, F(ready_timeout),
	  .ex = { "60", "2m" }, .dflt = "60", .section = SEC_SUPERVISION,
	  .arg = "SEC", .help = "kill a worker not ready by then" },
	{ .name = "reload-batch", .kind = OPT_INT, .flags = OPT_CLI | OPT_FILE,
	  F(reload_batch), .min = 1, .max = WPOOL_MAX_WORKERS, .dflt = "1",
	  .section = SEC_SUPERVISION, .arg = "K",
	  .help = "workers replaced at a time in a reload" },
	{ .name = "watchdog", .kind = OPT_DURATION,
	  .flags = OPT_CLI | OPT_FILE | OPT_ABOVE0 | OPT_OFF0, F(watchdog),
	  .ex = { "30", "500ms" }, .section = SEC_SUPERVISION, .arg = "SEC",
	  .help = "restart a worker whose WATCHDOG=1 pings stop" },
	{ .name = "max-requests", .kind = OPT_INT,
	  .flags = OPT_CLI | OPT_FILE | OPT_OFF0, F(max_requests), .min = 1,
	  .max = LLONG_MAX / 2, .modes = MODE_BIT(MODE_BALANCE),
	  .mode_why = "where wpool sees each connection",
	  .section = SEC_SUPERVISION, .arg = "N",
	  .help = "balance mode: recycle after N connections" },
	{ .name = "max-requests-jitter", .kind = OPT_INT,
	  .flags = OPT_CLI | OPT_FILE | OPT_OFF0, F(max_requests_jitter),
	  .min = 0, .max = LLONG_MAX / 2, .section = SEC_SUPERVISION,
	  .arg = "J", .help = "add a random 0..J to each worker's limit" },
	{ .name = "max-memory", .kind = OPT_SIZE,
	  .flags = OPT_CLI | OPT_FILE | OPT_ABOVE0 | OPT_OFF0, F(max_memory),
	  .section = SEC_SUPERVISION, .arg = "SIZE",
	  .help = "recycle a worker whose process tree uses more\n"
	      "than SIZE (PSS, else RSS), such as 512M or 1G\n"
	      "(no limit unless given)" },
	{ .name = "max-crashes", .kind = OPT_STRING,
	  .flags = OPT_CLI | OPT_FILE, F(max_crashes), .set = set_max_crashes,
	  .modes = MODE_BIT(MODE_SHARED) | MODE_BIT(MODE_REUSEPORT) |
	  MODE_BIT(MODE_BALANCE), .mode_why = "where wpool restarts workers",
	  .section = SEC_SUPERVISION, .arg = "N[/WINDOW]",
	  .help = "stop the pool when workers crash N times\n"
	      "within WINDOW (60s unless given), exiting with\n"
	      "the last crash's status (off unless given)" },
	{ .name = "user", .letter = 'u', .kind = OPT_STRING,
	  .flags = OPT_CLI | OPT_FILE, F(user), .set = set_user,
	  .section = SEC_WORKERS, .arg = "USER[:GROUP]",
	  .help = "run workers as USER (listeners bound first)" },
	{ .name = "chdir", .letter = 'C', .kind = OPT_STRING,
	  .flags = OPT_CLI | OPT_FILE, F(chdir), .valid = nonempty_ok,
	  .accepted = "a directory", .section = SEC_WORKERS, .arg = "DIR",
	  .help = "workers' working directory" },
	{ .name = "env", .letter = 'e', .kind = OPT_LIST, .flags = OPT_CLI,
	  .set = set_env, .file_hint = "[env]", .section = SEC_WORKERS,
	  .arg = "NAME=VALUE",
	  .help = "extra environment for workers, repeatable" },
	{ .name = "log-prefix", .kind = OPT_FLAG, .flags = OPT_CLI | OPT_FILE,
	  F(log_prefix), .section = SEC_WORKERS,
	  .help = "prefix each line of worker output with [NAME.ID]" },
	{ .name = "cpu-affinity", .kind = OPT_FLAG, .flags = OPT_CLI | OPT_FILE,
	  F(cpu_affinity), .modes = MODE_BIT(MODE_SHARED) |
	  MODE_BIT(MODE_REUSEPORT) | MODE_BIT(MODE_BALANCE),
	  .mode_why = "which keep a worker per slot (an inetd connection "
	  "has none)", .section = SEC_WORKERS,
	  .help = "pin worker i to the i-th CPU of wpool's own\n"
	  "mask, wrapping; sets WPOOL_CPU" },
	{ .name = "shim", .kind = OPT_FLAG, .flags = OPT_CLI | OPT_FILE,
	  F(shim), .modes = MODE_BIT(MODE_BALANCE),
	  .mode_why = "where the shim has connections to hand to accept()",
	  .section = SEC_WORKERS,
	  .help = "balance mode for unmodified servers: preload\n"
	  "libwpool-shim.so, whose accept() takes them from\n"
	  "wpool (dynamically linked servers, not Go)" },
	{ .name = "control", .letter = 's', .kind = OPT_STRING,
	  .flags = OPT_CLI | OPT_FILE, F(control), .valid = control_ok,
	  .accepted = "a socket path of 1 to 107 bytes",
	  .section = SEC_MASTER, .arg = "PATH", .help = "control socket path" },
	{ .name = "config", .letter = 'c', .kind = OPT_STRING,
	  .flags = OPT_CLI, F(config), .file_hint = "the command line",
	  .section = SEC_MASTER, .arg = "FILE",
	  .help = "INI config file; options given here override it" },
	{ .name = "pidfile", .kind = OPT_STRING, .flags = OPT_CLI | OPT_FILE,
	  F(pidfile), .valid = nonempty_ok, .accepted = "a file path",
	  .section = SEC_MASTER, .arg = "FILE",
	  .help = "write the master's pid to FILE, locked" },
	{ .name = "metrics", .kind = OPT_STRING, .flags = OPT_CLI | OPT_FILE,
	  F(metrics), .valid = metrics_ok, .accepted = "HOST:PORT with a port "
	  "from 0 to 65535, such as 127.0.0.1:9100", .section = SEC_MASTER,
	  .arg = "HOST:PORT", .help = "serve /metrics and /status over HTTP" },
	/* Two flags on one field: they set it to .min. */
	{ .name = "quiet", .letter = 'q', .kind = OPT_FLAG,
	  .flags = OPT_CLI | OPT_FILE | OPT_ONE_OF, F(log_level),
	  .min = LOG_WARN, .section = SEC_MASTER,
	  .help = "log warnings and errors only" },
	{ .name = "verbose", .letter = 'v', .kind = OPT_FLAG,
	  .flags = OPT_CLI | OPT_FILE | OPT_ONE_OF, F(log_level),
	  .min = LOG_DEBUG, .section = SEC_MASTER,
	  .help = "log debug messages too" },
	{ .name = "help", .letter = 'h', .kind = OPT_FLAG, .flags = OPT_CLI,
	  .set = show_help, .section = SEC_MASTER, .help = "show this help" },
	{ .name = "version", .letter = 'V', .kind = OPT_FLAG, .flags = OPT_CLI,
	  .set = show_version, .section = SEC_MASTER,
	  .help = "show the version" },
	/* The file's command = ...; on the command line, the words after. */
	{ .name = "command", .kind = OPT_COMMAND, .flags = OPT_FILE },
};

const size_t cli_nopts = sizeof(cli_opts) / sizeof(cli_opts[0]);

/* conf.given has a bit for each entry. */
_Static_assert(sizeof(cli_opts) / sizeof(cli_opts[0]) <= 64,
    "struct conf's given has 64 bits");
/* The enums are stored through int pointers. */
_Static_assert(sizeof(enum pool_mode) == sizeof(int) &&
    sizeof(enum ready_mode) == sizeof(int), "enums are ints");

static const char *const section_names[] = {
	[SEC_POOL] = "Pool", [SEC_SUPERVISION] = "Supervision",
	[SEC_WORKERS] = "Workers", [SEC_MASTER] = "Master",
};

static const char usage_head[] =
"usage: wpool [RUN OPTIONS] [--] COMMAND [ARG...]\n"
"       wpool run [RUN OPTIONS] [--] COMMAND [ARG...]\n"
"       wpool check [RUN OPTIONS] [--] [COMMAND [ARG...]]\n"
"       wpool [-s PATH | --name NAME] status [--json] [--check]\n"
"       wpool [-s PATH | --name NAME] reload [--no-wait] [--dry-run]\n"
"       wpool [-s PATH | --name NAME] scale N|+N|-N\n"
"       wpool [-s PATH | --name NAME] restart ID|all [--no-wait]\n"
"       wpool [-s PATH | --name NAME] signal SIG [ID]\n"
"       wpool [-s PATH | --name NAME] stop [--no-wait]\n"
"       wpool [-s PATH | --name NAME] upgrade [--binary PATH] [--reload]\n"
"       wpool [-s PATH | --name NAME] list [--json]\n"
"       wpool --help | --version\n"
"\n"
"Run COMMAND as a supervised pool of workers that share listening sockets.\n";

static const char usage_tail[] =
"\n"
"Signals: TERM, INT, QUIT stop; HUP, USR1 reload; TTIN, TTOU add or remove a\n"
"worker; USR2 upgrades the master in place; WINCH is forwarded to every\n"
"worker.  See wpool(1).\n";

/* Appends s to buf (of len bytes, NUL-terminated). */
static void
append(char *buf, size_t len, const char *s)
{
	strlcat(buf, s, len);
}

/* "a, b or c": a names table joined, with `last` before the last one. */
static void
join_names(char *buf, size_t len, const char *const *v, const char *sep,
    const char *last)
{
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; v[i] != NULL; i++) {
		if (i > 0)
			append(buf, len, v[i + 1] == NULL ? last : sep);
		append(buf, len, v[i]);
	}
}

/* text with its one "%s", if any, replaced by the option's values. */
static void
expand(char *buf, size_t len, const char *text, const struct opt *o,
    const char *sep, const char *last)
{
	const char *p = strstr(text, "%s");
	char	 vals[256];

	if (p == NULL || o->values == NULL) {
		strlcpy(buf, text, len);
		return;
	}
	join_names(vals, sizeof(vals), o->values, sep, last);
	snprintf(buf, len, "%.*s%s%s", (int)(p - text), text, vals, p + 2);
}

/*
 * Prints words at column col, wrapping at HELP_WIDTH; returns the column.
 * A last word that starts with '\1' (the default) follows two blanks and
 * takes the word before it along to the next line if it does not fit.
 */
static size_t
put_words(FILE *f, const char *s, size_t col)
{
	const char *rest;
	bool	 first = true;
	size_t	 n, need;

	while (*s != '\0') {
		n = strcspn(s, " ");
		rest = s + n + strspn(s + n, " ");
		need = (*s == '\1' ? 1 : 0) + n;
		if (*rest == '\1')
			need += 1 + strlen(rest);
		if (!first && col + 1 + need > HELP_WIDTH) {
			fprintf(f, "\n%*s", HELP_COL, "");
			col = HELP_COL;
			first = true;
		}
		if (*s == '\1') {
			fprintf(f, "%s%.*s", first ? "" : "  ", (int)n - 1,
			    s + 1);
			col += first ? n - 1 : n + 1;
		} else {
			if (!first) {
				fputc(' ', f);
				col++;
			}
			fprintf(f, "%.*s", (int)n, s);
			col += n;
		}
		first = false;
		s = rest;
	}
	return col;
}

/* One option of --help: "  -n, --workers N|auto   text  [default]". */
static void
usage_option(FILE *f, const struct opt *o)
{
	char	 left[96], arg[96], text[512], *line, *next;
	size_t	 col;

	expand(arg, sizeof(arg), o->arg != NULL ? o->arg : "", o, "|", "|");
	if (o->letter != 0)
		snprintf(left, sizeof(left), "  -%c, --%s", o->letter, o->name);
	else
		snprintf(left, sizeof(left), "      --%s", o->name);
	if (o->kind != OPT_FLAG) {
		append(left, sizeof(left), " ");
		append(left, sizeof(left), arg);
	}
	col = strlen(left);
	fputs(left, f);
	if (col + 2 > HELP_COL) {
		/* Too long for two blanks before the text: a line alone. */
		fprintf(f, "\n%*s", HELP_COL, "");
		col = HELP_COL;
	} else
		do {
			fputc(' ', f);
		} while (++col < HELP_COL);
	expand(text, sizeof(text), o->help, o, ", ", " or ");
	if (o->dflt != NULL) {
		append(text, sizeof(text), " \1[");
		append(text, sizeof(text), o->dflt);
		append(text, sizeof(text), "]");
	}
	for (line = text; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		col = put_words(f, line, col);
		if (next != NULL) {
			fprintf(f, "\n%*s", HELP_COL, "");
			col = HELP_COL;
		}
	}
	fputc('\n', f);
}

void
cli_usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;
	size_t	 i;
	int	 s;

	fputs(usage_head, f);
	for (s = SEC_POOL; s <= SEC_MASTER; s++) {
		fprintf(f, "\n%s:\n", section_names[s]);
		for (i = 0; i < cli_nopts; i++)
			if ((int)cli_opts[i].section == s &&
			    (cli_opts[i].flags & OPT_CLI))
				usage_option(f, &cli_opts[i]);
	}
	fputs(usage_tail, f);
}

const struct opt *
opt_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < cli_nopts; i++)
		if (strcmp(cli_opts[i].name, name) == 0)
			return &cli_opts[i];
	return NULL;
}

/* How errors name an option on the command line: -n/--workers, --name. */
void
opt_cli_name(const struct opt *o, char *buf, size_t len)
{
	if (o->letter != 0)
		snprintf(buf, len, "-%c/--%s", o->letter, o->name);
	else
		snprintf(buf, len, "--%s", o->name);
}

/* Whether p shares o's restriction: one field, or one reason for a mode. */
static bool
opt_peer(const struct opt *o, const struct opt *p)
{
	if (o->flags & OPT_ONE_OF)
		return (p->flags & OPT_ONE_OF) && p->off == o->off;
	return o->mode_why != NULL && p->mode_why != NULL &&
	    strcmp(p->mode_why, o->mode_why) == 0;
}

#define MAX_PEERS	8

/*
 * The options that share o's restriction, for one error about them all:
 * "-q/--quiet and -v/--verbose", or "'quiet' and 'verbose'" for the file.
 */
void
opt_peers(const struct opt *o, bool file, char *buf, size_t len)
{
	const char *v[MAX_PEERS + 1];
	char	 names[MAX_PEERS][64];
	size_t	 i, n = 0;

	for (i = 0; i < cli_nopts && n < MAX_PEERS; i++) {
		if (!opt_peer(o, &cli_opts[i]))
			continue;
		if (file)
			snprintf(names[n], sizeof(names[n]), "'%s'",
			    cli_opts[i].name);
		else
			opt_cli_name(&cli_opts[i], names[n], sizeof(names[n]));
		v[n] = names[n];
		n++;
	}
	v[n] = NULL;
	join_names(buf, len, v, ", ", " and ");
}

void
conf_defaults(struct conf *c)
{
	char	 err[256];
	size_t	 i;

	memset(c, 0, sizeof(*c));
	c->log_level = LOG_INFO;
	for (i = 0; i < cli_nopts; i++)
		if (cli_opts[i].dflt != NULL)
			opt_apply(c, &cli_opts[i], cli_opts[i].dflt,
			    cli_opts[i].name, err, sizeof(err));
	/* A default is not an option given. */
	c->given = 0;
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
	free(c->max_crashes);
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

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

static bool
name_ok(const char *s)
{
	const char *p;

	if (*s == '\0' || strlen(s) > 64 || *s == '.')
		return false;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL)
			return false;
	return true;
}

static bool
control_ok(const char *s)
{
	return *s != '\0' && strlen(s) < 108;
}

static bool
nonempty_ok(const char *s)
{
	return *s != '\0';
}

static bool
metrics_ok(const char *s)
{
	struct listener l;
	char	 lerr[256];
	bool	 tcp;

	if (listener_parse(s, &l, lerr, sizeof(lerr)) < 0)
		return false;
	tcp = l.type == L_TCP;
	listener_free(&l);
	return tcp;
}

static bool
env_ok(const char *s)
{
	const char *eq = strchr(s, '=');
	const char *p;

	if (eq == NULL || eq == s)
		return false;
	for (p = s; p < eq; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return !isdigit((unsigned char)*s);
}

static int
set_bind(struct conf *c, const struct opt *o, const char *v,
    const char *opt, char *err, size_t len)
{
	struct listener l;
	char	 lerr[256];

	(void)o;
	if (c->nlisteners >= WPOOL_MAX_LISTENERS) {
		snprintf(err, len, "%s: too many listeners (at most %d)", opt,
		    WPOOL_MAX_LISTENERS);
		return -EINVAL;
	}
	if (listener_parse(v, &l, lerr, sizeof(lerr)) < 0) {
		snprintf(err, len, "%s: invalid value '%s': %s", opt, v, lerr);
		return -EINVAL;
	}
	c->listeners = xreallocarray(c->listeners, c->nlisteners + 1,
	    sizeof(*c->listeners));
	c->listeners[c->nlisteners++] = l;
	return 0;
}

static int
set_env(struct conf *c, const struct opt *o, const char *v, const char *opt,
    char *err, size_t len)
{
	(void)o;
	if (!env_ok(v))
		return bad(err, len, opt, v, "NAME=VALUE, NAME made of "
		    "letters, digits and '_'");
	c->env = xreallocarray(c->env, c->nenv + 1, sizeof(*c->env));
	c->env[c->nenv++] = xstrdup(v);
	return 0;
}

static int
set_user(struct conf *c, const struct opt *o, const char *v, const char *opt,
    char *err, size_t len)
{
	bool	 found;
	int	 r;

	(void)o;
	r = parse_user(v, &c->uid, &c->gid, &found);
	if (r == -ENOSYS) {
		snprintf(err, len, "%s: '%s': user and group names need NSS "
		    "or /etc/passwd and /etc/group, which this static build "
		    "lacks here; use -u UID:GID", opt, v);
		return -EINVAL;
	}
	if (r == -ESRCH)
		return bad(err, len, opt, v, "an existing group after ':'");
	if (r < 0)
		return bad(err, len, opt, v, "an existing user name or uid, "
		    "optionally :GROUP");
	c->set_user = true;
	set_str(&c->user, v);
	return 0;
}

/*
 * --max-crashes N[/WINDOW]: N from 1 to MAX_CRASHES, WINDOW a duration
 * (CRASH_WINDOW unless given).  Kept as given, for `wpool check`.
 */
#define MAX_CRASHES	1000
#define CRASH_WINDOW	60.0

static int
set_max_crashes(struct conf *c, const struct opt *o, const char *v,
    const char *opt, char *err, size_t len)
{
	const char *slash = strchr(v, '/');
	char	 n[32];
	long long k;
	double	 w = CRASH_WINDOW;

	(void)o;
	if (snprintf(n, sizeof(n), "%.*s", slash != NULL ? (int)(slash - v) :
	    (int)strlen(v), v) >= (int)sizeof(n) ||
	    parse_int(n, 1, MAX_CRASHES, &k) < 0 ||
	    (slash != NULL && (parse_duration(slash + 1, &w) < 0 || w <= 0)))
		return bad(err, len, opt, v, "N or N/WINDOW: N crashes from 1 "
		    "to 1000, WINDOW a duration above 0, up to a year (60s "
		    "unless given), such as 5, 5/30s or 10/2m");
	c->crash_limit = (int)k;
	c->crash_window = w;
	set_str(&c->max_crashes, v);
	return 0;
}

/* --help and --version: printed; 1 tells cli_parse to stop there. */
static int
show_help(struct conf *c, const struct opt *o, const char *v,
    const char *opt, char *err, size_t len)
{
	(void)c, (void)o, (void)v, (void)opt, (void)err, (void)len;
	cli_usage(0);
	return 1;
}

static int
show_version(struct conf *c, const struct opt *o, const char *v,
    const char *opt, char *err, size_t len)
{
	(void)c, (void)o, (void)v, (void)opt, (void)err, (void)len;
	printf("wpool %s\n", WPOOL_VERSION);
	return 1;
}

/* What an option of o's kind accepts, for its error. */
static void
accepted(const struct opt *o, char *buf, size_t len)
{
	char	 vals[256];

	switch (o->kind) {
	case OPT_FLAG:
		snprintf(buf, len, "true or false");
		break;
	case OPT_INT:
		if (o->max >= LLONG_MAX / 2)
			snprintf(buf, len, "a number >= %lld", o->min);
		else
			snprintf(buf, len, "a number from %lld to %lld", o->min,
			    o->max);
		if (o->word != NULL) {
			append(buf, len, " or '");
			append(buf, len, o->word);
			append(buf, len, "'");
		}
		break;
	case OPT_DURATION:
		snprintf(buf, len, "seconds %s, such as %s, or with a unit (us, "
		    "ms, s, m, h), such as %s", (o->flags & OPT_ABOVE0) ?
		    "above 0, up to a year" : "from 0 to a year", o->ex[0],
		    o->ex[1]);
		break;
	case OPT_SIZE:
		snprintf(buf, len, "a size%s such as 512M, 1G or 1048576",
		    (o->flags & OPT_ABOVE0) ? " > 0" : "");
		break;
	case OPT_SIGNAL:
		snprintf(buf, len, "a signal name or number, such as TERM, "
		    "SIGQUIT or 15");
		break;
	case OPT_ENUM:
		join_names(vals, sizeof(vals), o->values, ", ", " or ");
		snprintf(buf, len, "%s", vals);
		break;
	default:
		snprintf(buf, len, "%s", o->accepted != NULL ? o->accepted :
		    "a value");
		break;
	}
}

/* Stores n in o's int-sized or long-sized field. */
static void
store_int(struct conf *c, const struct opt *o, long long n)
{
	void	*p = (char *)c + o->off;

	if (o->size == sizeof(long))
		*(long *)p = (long)n;
	else
		*(int *)p = (int)n;
}

static long long
load_int(const struct conf *c, const struct opt *o)
{
	const void *p = (const char *)c + o->off;

	return o->size == sizeof(long) ? *(const long *)p : *(const int *)p;
}

/* Parses v as o's kind into o's field; 0 or -EINVAL with err set. */
static int
apply_kind(struct conf *c, const struct opt *o, const char *v,
    const char *opt, char *err, size_t len)
{
	void	*field = (char *)c + o->off;
	char	 what[256];
	long long n;
	uint64_t sz;
	double	 d;
	bool	 b;
	int	 i;

	switch (o->kind) {
	case OPT_FLAG:
		if (parse_bool(v, &b) < 0)
			goto bad;
		if (o->size == sizeof(bool))
			*(bool *)field = b;
		else if (b)
			/* A flag that sets a value is set, never unset. */
			*(int *)field = (int)o->min;
		return 0;
	case OPT_INT:
		if (o->word != NULL && v != NULL && strcmp(v, o->word) == 0)
			n = 0;
		else if (parse_int(v, o->min, o->max, &n) < 0)
			goto bad;
		store_int(c, o, n);
		return 0;
	case OPT_DURATION:
		if (parse_duration(v, &d) < 0 || ((o->flags & OPT_ABOVE0) &&
		    d <= 0))
			goto bad;
		*(double *)field = d;
		return 0;
	case OPT_SIZE:
		if (parse_size(v, &sz) < 0 || ((o->flags & OPT_ABOVE0) &&
		    sz == 0))
			goto bad;
		*(uint64_t *)field = sz;
		return 0;
	case OPT_SIGNAL:
		if (parse_signal(v, &i) < 0)
			goto bad;
		*(int *)field = i;
		return 0;
	case OPT_ENUM:
		if ((i = parse_name(v, o->values)) < 0)
			goto bad;
		*(int *)field = i;
		return 0;
	case OPT_STRING:
		if (o->valid != NULL && !o->valid(v))
			goto bad;
		set_str(field, v);
		return 0;
	default:
		snprintf(err, len, "%s: not set this way", opt);
		return -EINVAL;
	}
bad:
	accepted(o, what, sizeof(what));
	return bad(err, len, opt, v != NULL ? v : "", what);
}

/*
 * Applies one option: shared by the command line and the config file, so
 * both accept and refuse exactly the same values.  `opt` is how the
 * error names it ("-n/--workers" or "workers"); v is NULL for a flag on
 * the command line or a bare key.  0, 1 when --help or --version was
 * printed, or -errno with err set.
 */
int
opt_apply(struct conf *c, const struct opt *o, const char *v,
    const char *opt, char *err, size_t len)
{
	int	 r;

	if (o->kind != OPT_FLAG && v == NULL)
		v = "";
	r = o->set != NULL ? o->set(c, o, v, opt, err, len) :
	    apply_kind(c, o, v, opt, err, len);
	if (r >= 0)
		c->given |= UINT64_C(1) << (o - cli_opts);
	return r;
}

/* The same, by the option's long name (the config file's key). */
int
cli_apply(struct conf *c, const char *key, const char *v, const char *opt,
    char *err, size_t len)
{
	const struct opt *o = opt_find(key);

	if (o == NULL) {
		snprintf(err, len, "unknown option '%s'", opt);
		return -ENOENT;
	}
	return opt_apply(c, o, v, opt, err, len);
}

/*
 * o's value in c as the config file spells it, so that it reads back the
 * same: 0, or -ENOENT when `wpool check` leaves it out (off, unset, or
 * not for this mode).  Durations are plain decimals to the nanosecond
 * without trailing zeros (%g would write 1.23457e+06 and lose digits).
 */
int
opt_format(const struct opt *o, const struct conf *c, char *buf, size_t len)
{
	const void *field = (const char *)c + o->off;
	long long n;
	size_t	 k;

	if (!(o->flags & OPT_FILE) || (o->modes != 0 &&
	    !(o->modes & MODE_BIT(c->mode))))
		return -ENOENT;
	switch (o->kind) {
	case OPT_FLAG:
		if (o->size == sizeof(bool))
			snprintf(buf, len, "%s", *(const bool *)field ? "true" :
			    "false");
		else if (*(const int *)field == o->min)
			snprintf(buf, len, "true");
		else
			return -ENOENT;
		return 0;
	case OPT_INT:
		n = load_int(c, o);
		if (n == 0 && (o->flags & OPT_OFF0))
			return -ENOENT;
		if (n == 0 && o->word != NULL)
			snprintf(buf, len, "%s", o->word);
		else
			snprintf(buf, len, "%lld", n);
		return 0;
	case OPT_DURATION:
		if (*(const double *)field == 0 && (o->flags & OPT_OFF0))
			return -ENOENT;
		k = (size_t)snprintf(buf, len, "%.9f", *(const double *)field);
		if (k >= len)
			return -ENOENT;
		while (k > 0 && buf[k - 1] == '0')
			buf[--k] = '\0';
		if (k > 0 && buf[k - 1] == '.')
			buf[--k] = '\0';
		return 0;
	case OPT_SIZE:
		if (*(const uint64_t *)field == 0 && (o->flags & OPT_OFF0))
			return -ENOENT;
		snprintf(buf, len, "%llu",
		    (unsigned long long)*(const uint64_t *)field);
		return 0;
	case OPT_SIGNAL:
		snprintf(buf, len, "%s", signal_name(*(const int *)field));
		return 0;
	case OPT_ENUM:
		snprintf(buf, len, "%s", o->values[*(const int *)field]);
		return 0;
	case OPT_STRING:
		if (*(char *const *)field == NULL)
			return -ENOENT;
		snprintf(buf, len, "%s", *(char *const *)field);
		return 0;
	default:
		return -ENOENT;
	}
}

static struct option long_opts[64 + 1];
static char short_opts[2 + 2 * 64 + 1] = "+:";

/* getopt's tables, from cli_opts: -X for a letter, 256 + index if none. */
static void
getopt_tables(void)
{
	size_t	 i, n = 0, k = 2;

	if (long_opts[0].name != NULL)
		return;
	for (i = 0; i < cli_nopts; i++) {
		const struct opt *o = &cli_opts[i];

		if (!(o->flags & OPT_CLI))
			continue;
		long_opts[n].name = o->name;
		long_opts[n].has_arg = o->kind == OPT_FLAG ? no_argument :
		    required_argument;
		long_opts[n].val = o->letter != 0 ? o->letter : 256 + (int)i;
		n++;
		if (o->letter != 0) {
			short_opts[k++] = o->letter;
			if (o->kind != OPT_FLAG)
				short_opts[k++] = ':';
		}
	}
}

static const struct opt *
opt_by_letter(int ch)
{
	size_t	 i;

	for (i = 0; i < cli_nopts; i++)
		if (cli_opts[i].letter == ch && (cli_opts[i].flags & OPT_CLI))
			return &cli_opts[i];
	return NULL;
}

/*
 * What getopt_long refused in arg ("--NAME[=VALUE]"), said precisely: a
 * flag given a value, a prefix of several options (getopt takes a prefix
 * of one), or no such option.  getopt's own optopt would name the flag's
 * letter, not what was typed.
 */
static void
long_opt_error(const char *arg, char *err, size_t len)
{
	const char *name = arg + 2, *eq = strchr(name, '=');
	size_t	 n = eq != NULL ? (size_t)(eq - name) : strlen(name), i, o;
	int	 matches = 0;
	char	 list[512];

	list[0] = '\0';
	for (i = 0, o = 0; n > 0 && long_opts[i].name != NULL; i++) {
		if (strncmp(long_opts[i].name, name, n) != 0)
			continue;
		if (long_opts[i].name[n] == '\0') {
			/* An exact name getopt refused: a flag with a value. */
			snprintf(err, len, "--%s takes no value (got '%s'): "
			    "give --%s alone", long_opts[i].name, arg,
			    long_opts[i].name);
			return;
		}
		if (o < sizeof(list))
			o += (size_t)snprintf(list + o, sizeof(list) - o,
			    "%s--%s", matches > 0 ? ", " : "",
			    long_opts[i].name);
		matches++;
	}
	if (matches > 1)
		snprintf(err, len, "ambiguous option '--%.*s': could be %s",
		    (int)n, name, list);
	else if (matches == 1)
		/* A prefix of one flag, given a value. */
		snprintf(err, len, "%s takes no value (got '%s')", list, arg);
	else
		snprintf(err, len, "unknown option '--%.*s'", (int)n, name);
}

/*
 * Parses the run options; argv[optind...] becomes the command.  Returns
 * 0, 1 for --help/--version (already printed), or -EINVAL with err set.
 */
int
cli_parse(int argc, char **argv, struct conf *c, char *err, size_t len)
{
	const struct opt *o, *loud = NULL;
	char	 optname[64], peers[160];
	int	 ch, r;

	getopt_tables();
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, short_opts, long_opts,
	    NULL)) != -1) {
		if (ch == '?') {
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				long_opt_error(argv[optind - 1], err, len);
			else
				snprintf(err, len, "unknown option '-%c'",
				    optopt);
			return -EINVAL;
		}
		if (ch == ':') {
			snprintf(err, len, "%s: a value is required",
			    argv[optind - 1]);
			return -EINVAL;
		}
		o = ch >= 256 ? &cli_opts[ch - 256] : opt_by_letter(ch);
		if (o == NULL) {
			snprintf(err, len, "unknown option");
			return -EINVAL;
		}
		if (o->flags & OPT_ONE_OF) {
			if (loud != NULL && loud != o && loud->off == o->off) {
				opt_peers(o, false, peers, sizeof(peers));
				snprintf(err, len, "%s: give one or the other",
				    peers);
				return -EINVAL;
			}
			loud = o;
		}
		opt_cli_name(o, optname, sizeof(optname));
		if ((r = opt_apply(c, o, optarg, optname, err, len)) != 0)
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

/* An option given in a mode it does not apply to. */
static int
mode_error(const struct opt *o, char *err, size_t len)
{
	char	 peers[160], modes[128], flags[128];
	const char *v[8];
	char	 m[8][32];
	size_t	 i, n = 0;

	for (i = 0; mode_names[i] != NULL && n < 7; i++)
		if (o->modes & MODE_BIT(i)) {
			snprintf(m[n], sizeof(m[n]), "-m %s", mode_names[i]);
			v[n++] = mode_names[i];
		}
	v[n] = NULL;
	join_names(modes, sizeof(modes), v, ", ", " or ");
	for (i = 0; i < n; i++)
		v[i] = m[i];
	join_names(flags, sizeof(flags), v, ", ", " or ");
	opt_peers(o, false, peers, sizeof(peers));
	snprintf(err, len, "%s: only in %s mode%s (%s), %s", peers, modes,
	    n > 1 ? "s" : "", flags, o->mode_why);
	return -EINVAL;
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

/* The listeners against the mode and against each other. */
static int
validate_listeners(struct conf *c, char *err, size_t len)
{
	size_t	 i, j;

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
	return 0;
}

/* -u: the user's groups, and whether wpool may switch to it. */
static int
validate_user(struct conf *c, char *err, size_t len)
{
	struct passwd *pw = getpwuid(c->uid);
	int	 ngroups = 0;

	if (pw != NULL) {
		getgrouplist(pw->pw_name, c->gid, NULL, &ngroups);
		c->groups = xcalloc((size_t)ngroups + 1, sizeof(gid_t));
		if (getgrouplist(pw->pw_name, c->gid, c->groups, &ngroups) < 0)
			ngroups = 0;
	} else {
		c->groups = xcalloc(1, sizeof(gid_t));
		c->groups[0] = c->gid;
		ngroups = 1;
	}
	c->ngroups = ngroups;
	if (geteuid() != 0 && c->uid != geteuid()) {
		snprintf(err, len, "-u/--user: '%s': only root can run workers "
		    "as another user", c->user);
		return -EPERM;
	}
	return 0;
}

/* Checks that hold across options; run after the file and the flags. */
int
cli_validate(struct conf *c, char *err, size_t len)
{
	const char *why;
	size_t	 i;
	int	 r;

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
	if ((r = validate_listeners(c, err, len)) < 0)
		return r;
	/* After the listeners: their errors name the mode too. */
	for (i = 0; i < cli_nopts; i++)
		if (cli_opts[i].modes != 0 &&
		    (c->given & (UINT64_C(1) << i)) &&
		    !(cli_opts[i].modes & MODE_BIT(c->mode)))
			return mode_error(&cli_opts[i], err, len);
	if (c->chdir != NULL && (why = chdir_problem(c->chdir)) != NULL) {
		snprintf(err, len, "-C/--chdir: invalid value '%s': %s: "
		    "expected a directory", c->chdir, why);
		return -EINVAL;
	}
	return c->set_user ? validate_user(c, err, len) : 0;
}
