/*
 * reconf.c: the configuration as a run builds it (command line over the
 * -c file, validated), at start and again at each reload, and what a
 * reload may change of the running pool's.  A reload builds a whole new
 * struct conf from the start's argv and the file as it is now; nothing of
 * the running pool changes until it has passed every check and every new
 * listener is bound.  Owns the start's argv (borrowed, it lives until
 * exit) and, during a reload, the configuration being built.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

static int	 start_argc;
static char	**start_argv;

void
reconf_init(int argc, char **argv)
{
	start_argc = argc;
	start_argv = argv;
}

/* The file's command, when the command line gave none: c owns it then. */
static bool
argv_from_file(const struct conf *c)
{
	return c->argv != NULL && (start_argv == NULL || c->argv < start_argv ||
	    c->argv >= start_argv + start_argc);
}

static void
argv_free(char **v)
{
	char	**a;

	for (a = v; a != NULL && *a != NULL; a++)
		free(*a);
	free(v);
}

/*
 * The file first, then the command line on top of it: -b there replaces
 * the file's listeners, a command after -- the file's command.
 */
static int
read_config(struct conf *c, int argc, char **argv, char *err, size_t len)
{
	char	*file = xstrdup(c->config), **fargv = NULL;
	size_t	 i, nfile;
	int	 r;

	conf_free(c);
	conf_defaults(c);
	r = conf_read(c, file, &fargv, err, len);
	free(file);
	if (r < 0)
		return CONF_E_FILE;	/* "FILE:LINE: message" */
	nfile = c->nlisteners;
	r = cli_parse(argc, argv, c, err, len);
	if (r == 0 && c->nlisteners > nfile) {
		for (i = 0; i < nfile; i++)
			listener_free(&c->listeners[i]);
		memmove(c->listeners, c->listeners + nfile,
		    (c->nlisteners - nfile) * sizeof(*c->listeners));
		c->nlisteners -= nfile;
	}
	if (c->argv == NULL)
		c->argv = fargv;
	else
		argv_free(fargv);
	return r < 0 ? CONF_E_USAGE : 0;
}

/* A subcommand word where the command to run goes, without "--". */
static int
misplaced_subcommand(const struct conf *c, int argc, char **argv, char *err,
    size_t len)
{
	if (c->argv == NULL || c->argv <= argv || c->argv >= argv + argc ||
	    strcmp(c->argv[-1], "--") == 0)
		return 0;
	if (strcmp(c->argv[0], "check") == 0) {
		snprintf(err, len, "'check' goes first: wpool check "
		    "[OPTIONS] [--] [COMMAND]; to run a program called check, "
		    "put it after '--'");
		return CONF_E_USAGE;
	}
	if (client_is_command(c->argv[0])) {
		snprintf(err, len, "'%s' is a control command and takes only "
		    "-s/--control and --name before it; to run a program "
		    "called %s, put it after '--'", c->argv[0], c->argv[0]);
		return CONF_E_USAGE;
	}
	return 0;
}

/*
 * The command line and the config file into c, validated: 0, CONF_HELP
 * (--help or --version was printed), or CONF_E_USAGE / CONF_E_FILE with
 * err set (a usage error points to --help, one of the file does not).
 */
int
conf_build(struct conf *c, int argc, char **argv, char *err, size_t len)
{
	size_t	 i;
	int	 r;

	conf_defaults(c);
	r = cli_parse(argc, argv, c, err, len);
	if (r == 1)
		return CONF_HELP;
	if (r < 0)
		return CONF_E_USAGE;
	if (c->config != NULL && (r = read_config(c, argc, argv, err,
	    len)) != 0)
		return r;
	if ((r = misplaced_subcommand(c, argc, argv, err, len)) != 0)
		return r;
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].type == L_SYSTEMD) {
			if ((r = listener_expand_systemd(&c->listeners,
			    &c->nlisteners, i, err, len)) < 0)
				return CONF_E_FILE;	/* LISTEN_FDS */
			i += (size_t)r - 1;
		}
	if (cli_validate(c, err, len) < 0)
		return CONF_E_USAGE;
	return 0;
}

/* What conf_build allocated, the file's command included. */
void
conf_release(struct conf *c)
{
	if (argv_from_file(c))
		argv_free(c->argv);
	c->argv = NULL;
	conf_free(c);
}

/*
 * Options the running pool cannot take in place: its identity, its
 * master's own sockets and files, how connections reach its workers.
 * Everything else a new generation takes.
 */
static const struct {
	const char *name;
	const char *why;
} fixed_opts[] = {
	{ "name", "it names the control socket, the logs and /metrics" },
	{ "mode", "it decides how connections reach the workers" },
	{ "balancer", "the master's balancer keeps its state" },
	{ "max-queue", "the master's queue is sized at start" },
	{ "control", "the control socket is open" },
	{ "metrics", "the metrics listener is open" },
	{ "pidfile", "the pid file is held" },
};

static const char *
fixed_why(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(fixed_opts) / sizeof(fixed_opts[0]); i++)
		if (strcmp(fixed_opts[i].name, name) == 0)
			return fixed_opts[i].why;
	return NULL;
}

/* A change, one line: appended to out (a NUL-terminated buffer). */
static void
out_line(char **out, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
out_line(char **out, size_t *n, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 k;

	va_start(ap, fmt);
	k = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	*out = xreallocarray(*out, *n + (size_t)k + 2, 1);
	memcpy(*out + *n, s, (size_t)k);
	*n += (size_t)k;
	(*out)[(*n)++] = '\n';
	(*out)[*n] = '\0';
	free(s);
}

static void
opt_value(const struct opt *o, const struct conf *c, char *v, size_t len)
{
	if (opt_format(o, c, v, len) < 0)
		snprintf(v, len, "(unset)");
}

static char *
argv_text(char **v)
{
	char	*s = xstrdup(""), *t, **a;

	for (a = v; a != NULL && *a != NULL; a++) {
		xasprintf(&t, "%s%s%s", s, a == v ? "" : " ", *a);
		free(s);
		s = t;
	}
	return s;
}

static bool
argv_same(char **a, char **b)
{
	for (; a != NULL && b != NULL && *a != NULL && *b != NULL; a++, b++)
		if (strcmp(*a, *b) != 0)
			return false;
	return (a == NULL || *a == NULL) && (b == NULL || *b == NULL);
}

/* The value of NAME that wins in env (the last one), or NULL. */
static const char *
env_get(const struct conf *c, const char *var, size_t klen)
{
	const char *v = NULL;
	size_t	 i;

	for (i = 0; i < c->nenv; i++)
		if (strncmp(c->env[i], var, klen + 1) == 0)
			v = c->env[i] + klen + 1;
	return v;
}

static void
env_diff(const struct conf *o, const struct conf *n, char **out, size_t *len)
{
	const char *ov, *nv;
	size_t	 i, k;

	for (i = 0; i < n->nenv; i++) {
		k = strcspn(n->env[i], "=");
		nv = env_get(n, n->env[i], k);
		if (nv != n->env[i] + k + 1)
			continue;	/* not the winning one */
		if ((ov = env_get(o, n->env[i], k)) == NULL)
			out_line(out, len, "env: + %s", n->env[i]);
		else if (strcmp(ov, nv) != 0)
			out_line(out, len, "env: %.*s: '%s' -> '%s'", (int)k,
			    n->env[i], ov, nv);
	}
	for (i = 0; i < o->nenv; i++) {
		k = strcspn(o->env[i], "=");
		if (env_get(o, o->env[i], k) != o->env[i] + k + 1)
			continue;
		if (env_get(n, o->env[i], k) == NULL)
			out_line(out, len, "env: - %.*s", (int)k, o->env[i]);
	}
}

static bool
str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL &&
	    strcmp(a, b) == 0);
}

/* The same socket: what was bound, and how; the name is only a label. */
static bool
listener_same(const struct listener *a, const struct listener *b)
{
	return a->type == b->type && str_same(a->spec, b->spec) &&
	    a->backlog == b->backlog && a->mode == b->mode &&
	    str_same(a->owner, b->owner) && a->v6only == b->v6only &&
	    a->freebind == b->freebind && a->defer_accept == b->defer_accept &&
	    a->nodelay == b->nodelay && a->rcvbuf == b->rcvbuf &&
	    a->sndbuf == b->sndbuf;
}

/* Index in c of the listener that is the same socket as l, or -1. */
static long
listener_match(const struct conf *c, const struct listener *l)
{
	size_t	 i;

	for (i = 0; i < c->nlisteners; i++)
		if (listener_same(&c->listeners[i], l))
			return (long)i;
	return -1;
}

static bool
listeners_same(const struct conf *o, const struct conf *n)
{
	size_t	 i;

	if (o->nlisteners != n->nlisteners)
		return false;
	for (i = 0; i < n->nlisteners; i++)
		if (!listener_same(&o->listeners[i], &n->listeners[i]) ||
		    !str_same(o->listeners[i].name, n->listeners[i].name))
			return false;
	return true;
}

static const char *
shown_spec(const struct listener *l, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", l->type == L_UNIX ? "unix:" : "", l->spec);
	return buf;
}

static void
listen_diff(const struct conf *o, const struct conf *n, char **out,
    size_t *len)
{
	char	 sp[512];
	size_t	 i;
	long	 j;

	for (i = 0; i < n->nlisteners; i++) {
		const struct listener *l = &n->listeners[i];

		if ((j = listener_match(o, l)) < 0)
			out_line(out, len, "bind: + %s (name %s, fd %zu)",
			    shown_spec(l, sp, sizeof(sp)), l->name, 3 + i);
		else if ((size_t)j != i || !str_same(l->name,
		    o->listeners[j].name))
			out_line(out, len, "bind: = %s (name %s, fd %zu; was "
			    "%s, fd %ld)", shown_spec(l, sp, sizeof(sp)),
			    l->name, 3 + i, o->listeners[j].name, 3 + j);
	}
	for (i = 0; i < o->nlisteners; i++)
		if (listener_match(n, &o->listeners[i]) < 0)
			out_line(out, len, "bind: - %s (name %s)",
			    shown_spec(&o->listeners[i], sp, sizeof(sp)),
			    o->listeners[i].name);
}

/*
 * What n changes of o, one line each, into *out (NULL: no change); or a
 * refusal in err, naming what cannot change in place.
 */
static int
reconf_compare(const struct conf *o, const struct conf *n, char **out,
    char *err, size_t elen)
{
	const struct opt *op;
	char	 ov[1024], nv[1024], *a, *b;
	const char *why;
	size_t	 len = 0;

	*out = NULL;
	for (op = cli_opts; op < cli_opts + cli_nopts; op++) {
		if (op->kind == OPT_COMMAND || !(op->flags & OPT_FILE))
			continue;
		/* quiet and verbose share a field: shown once, as verbose. */
		if ((op->flags & OPT_ONE_OF) && op + 1 < cli_opts + cli_nopts &&
		    op[1].off == op->off && (op[1].flags & OPT_ONE_OF))
			continue;
		opt_value(op, o, ov, sizeof(ov));
		opt_value(op, n, nv, sizeof(nv));
		if ((op->flags & OPT_ONE_OF) && o->log_level != n->log_level)
			snprintf(ov, sizeof(ov), "log level changes");
		else if (strcmp(ov, nv) == 0)
			continue;
		if ((why = fixed_why(op->name)) != NULL) {
			snprintf(err, elen, "reload: %s cannot change in place "
			    "('%s' -> '%s'): %s; restart the pool to change it",
			    op->name, ov, nv, why);
			free(*out);
			*out = NULL;
			return -EPERM;
		}
		if (op->flags & OPT_ONE_OF)
			out_line(out, &len, "log level: %d -> %d", o->log_level,
			    n->log_level);
		else
			out_line(out, &len, "%s: %s -> %s", op->name, ov, nv);
	}
	if (!argv_same(o->argv, n->argv)) {
		a = argv_text(o->argv);
		b = argv_text(n->argv);
		out_line(out, &len, "command: %s -> %s", a, b);
		free(a);
		free(b);
	}
	env_diff(o, n, out, &len);
	if (!listeners_same(o, n) && o->mode != MODE_SHARED) {
		snprintf(err, elen, "reload: bind: the listeners change in "
		    "place only in --mode shared (this pool is --mode %s); "
		    "restart the pool to change them", mode_names[o->mode]);
		free(*out);
		*out = NULL;
		return -EPERM;
	}
	listen_diff(o, n, out, &len);
	return 0;
}

/* Unbinds what prepare bound for n, keeping what it took from o. */
static void
unbind_new(const struct conf *o, struct conf *n)
{
	size_t	 i;

	for (i = 0; i < n->nlisteners; i++) {
		struct listener *l = &n->listeners[i];

		if (l->fd < 0 || listener_match(o, l) >= 0)
			continue;
		if (l->type == L_UNIX)
			unlink(l->path);
		listener_close(l);
	}
}

/*
 * Builds the configuration a reload of p would run into n and checks it
 * against the running one: 0 (n holds it, *changes the lines of what
 * changes, or NULL), or -errno with err saying why ("FILE:LINE: ..." for
 * the file).  bind: also binds n's new listeners and gives it the
 * running pool's sockets for the unchanged ones.
 */
int
reconf_prepare(struct pool *p, struct conf *n, bool bind, char **changes,
    char *err, size_t len)
{
	struct conf *o = p->conf;
	char	 e[1024];
	size_t	 i;
	long	 j;
	int	 r;

	*changes = NULL;
	memset(n, 0, sizeof(*n));
	if (start_argv == NULL || o->config == NULL) {
		conf_defaults(n);
		snprintf(err, len, "reload: nothing to re-read: the pool was "
		    "started without -c");
		return -ENOENT;
	}
	if ((r = conf_build(n, start_argc, start_argv, e, sizeof(e))) != 0) {
		snprintf(err, len, "%s", e);
		conf_release(n);
		return -EINVAL;
	}
	if (n->ready == READY_NOTIFY && p->notify_path == NULL) {
		snprintf(err, len, "reload: ready: notify needs the notify "
		    "socket, which this pool could not open");
		conf_release(n);
		return -EINVAL;
	}
	if ((r = reconf_compare(o, n, changes, err, len)) < 0) {
		conf_release(n);
		return r;
	}
	if (!bind)
		return 0;
	for (i = 0; i < n->nlisteners; i++) {
		struct listener *l = &n->listeners[i];

		if ((j = listener_match(o, l)) >= 0) {
			l->fd = o->listeners[j].fd;
			memcpy(l->address, o->listeners[j].address,
			    sizeof(l->address));
			continue;
		}
		if (listener_open(l, n->backlog, n->mode == MODE_REUSEPORT, e,
		    sizeof(e)) < 0) {
			snprintf(err, len, "reload: %s", e);
			unbind_new(o, n);
			free(*changes);
			*changes = NULL;
			conf_release(n);
			return -EADDRNOTAVAIL;
		}
	}
	return 0;
}

/*
 * Makes n the running configuration of p: a listener n no longer has is
 * closed (the old workers that hold it keep serving it until they go;
 * then it refuses connections), the rest moves over.  n is emptied.
 */
void
reconf_commit(struct pool *p, struct conf *n)
{
	struct conf *o = p->conf, old;
	size_t	 i;

	for (i = 0; i < n->nlisteners; i++) {
		struct listener *l = &n->listeners[i];

		if (listener_match(o, l) < 0)
			log_info("listening on %s (%s, fd %zu)", l->address,
			    l->name, 3 + i);
	}
	for (i = 0; i < o->nlisteners; i++) {
		struct listener *l = &o->listeners[i];

		if (l->fd < 0 || listener_match(n, l) >= 0)
			continue;
		log_info("no longer listening on %s (%s): its old workers "
		    "serve what it holds", l->address, l->name);
		if (l->type == L_UNIX)
			unlink(l->path);
		listener_close(l);
	}
	old = *o;
	*o = *n;
	memset(n, 0, sizeof(*n));
	conf_release(&old);
	log_init(o->name, o->log_level);
}

/* Frees what reconf_prepare built, unbinding what it bound. */
void
reconf_abandon(struct pool *p, struct conf *n)
{
	unbind_new(p->conf, n);
	conf_release(n);
}
