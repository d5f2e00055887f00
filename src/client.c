/*
 * client.c: `wpool status|reload|scale|restart|signal|stop|upgrade|list`:
 * find the pool's control socket, connect, send one request, print the answer
 * as a table or as JSON.  Owns only its own connection; shares the
 * protocol (JSON lines) and the socket path rules with control.c.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wpool.h"

#define CLIENT_TIMEOUT_MS	30000
/* The largest answer read: a status of 1024 workers is well under it. */
#define CLIENT_MAX_ANSWER	(8u * 1024 * 1024)
/* `wpool list` asks every pool: one that hangs must not hang the list. */
#define LIST_TIMEOUT_MS		2000
/* The places a pool's socket is searched for (see search_dirs). */
#define SEARCH_DIRS		3

struct cli_ctx {
	char	 path[108];
	const char *name;	/* --name, or NULL */
	bool	 default_path;	/* not -s nor $WPOOL_CONTROL: searched, checked */
	bool	 found;		/* path is the socket the search found */
	int	 timeout_ms;
	int	 fd;
	char	*buf;
	size_t	 len, cap;
};

static int cmd_status(struct cli_ctx *, int, char **);
static int cmd_reload(struct cli_ctx *, int, char **);
static int cmd_scale(struct cli_ctx *, int, char **);
static int cmd_restart(struct cli_ctx *, int, char **);
static int cmd_signal(struct cli_ctx *, int, char **);
static int cmd_stop(struct cli_ctx *, int, char **);
static int cmd_upgrade(struct cli_ctx *, int, char **);
static int cmd_list(struct cli_ctx *, int, char **);

static const struct {
	const char *name;
	int	(*fn)(struct cli_ctx *, int, char **);
	const char *usage;
} client_cmds[] = {
	{ "status", cmd_status, "status [--json] [--check]" },
	{ "reload", cmd_reload, "reload [--no-wait] [--dry-run]" },
	{ "scale", cmd_scale, "scale N|+N|-N" },
	{ "restart", cmd_restart, "restart ID|all [--no-wait]" },
	{ "signal", cmd_signal, "signal SIG [ID]" },
	{ "stop", cmd_stop, "stop [--no-wait]" },
	{ "upgrade", cmd_upgrade, "upgrade [--binary PATH] [--reload]" },
	{ "list", cmd_list, "list [--json]" },
};

bool
client_is_command(const char *s)
{
	size_t	 i;

	for (i = 0; i < sizeof(client_cmds) / sizeof(client_cmds[0]); i++)
		if (strcmp(s, client_cmds[i].name) == 0)
			return true;
	return false;
}

/* The client's messages, with the prefixes the master's log has. */
static void __attribute__((format(printf, 2, 0)))
cmsg(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "wpool: %s: ", kind);
	vfprintf(stderr, fmt, ap);
}

static void __attribute__((format(printf, 1, 2)))
cerr(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	cmsg("error", fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 1, 2)))
cwarn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	cmsg("warning", fmt, ap);
	va_end(ap);
}

static int
usage_error(const char *cmd, const char *fmt, const char *arg)
{
	size_t	 i;

	fprintf(stderr, "wpool: error: %s: ", cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	for (i = 0; i < sizeof(client_cmds) / sizeof(client_cmds[0]); i++)
		if (strcmp(cmd, client_cmds[i].name) == 0)
			fprintf(stderr, "usage: wpool [-s PATH | --name NAME] "
			    "%s\n", client_cmds[i].usage);
	return EXIT_USAGE;
}

/*
 * Whose file st is may be trusted: root's or the caller's.  A file of
 * another user, or a directory that another user may write, could hold a
 * socket put there to answer in wpool's place.
 */
static const char *
untrusted(const struct stat *st, bool dir)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return "owned by another user";
	if (dir && (st->st_mode & 022) != 0)
		return "writable by other users";
	return NULL;
}

/*
 * 0, or -EPERM (said why, about what) if the directory dir may not be
 * trusted to hold a pool's socket.  A link must be root's or the
 * caller's, and so must the directory it leads to.
 */
static int
check_dir(const char *dir, const char *what)
{
	struct stat st;
	const char *why = NULL;

	if (lstat(dir, &st) == 0 && (why = untrusted(&st, !S_ISLNK(st.st_mode)))
	    == NULL && S_ISLNK(st.st_mode) && stat(dir, &st) == 0)
		why = untrusted(&st, true);
	if (why == NULL)
		return 0;
	cwarn("not talking to %s: %s is %s (uid %u); only "
	    "root's or your own (uid %u) are trusted\n", what, dir, why,
	    (unsigned)st.st_uid, (unsigned)geteuid());
	return -EPERM;
}

/*
 * 0, or -EPERM (said why) if the socket at path may not be trusted.  For
 * the default path only, as the server checks the default directory only:
 * a path given with -s is the caller's choice.
 */
static int
check_owner(const char *path)
{
	char	 dir[PATH_MAX];
	struct stat st;
	const char *why;

	strlcpy(dir, path, sizeof(dir));
	strlcpy(dir, dirname(dir), sizeof(dir));
	if (check_dir(dir, path) < 0)
		return -EPERM;
	if (lstat(path, &st) < 0 || (why = untrusted(&st, false)) == NULL)
		return 0;
	cwarn("not talking to %s: it is %s (uid %u); only "
	    "root's or your own (uid %u) are trusted\n", path, why,
	    (unsigned)st.st_uid, (unsigned)geteuid());
	return -EPERM;
}

/*
 * 0, or -EPERM (said why) if the process that listens on fd is not root
 * or the caller: the file's owner is checked, but a socket file handed
 * over (renamed, chowned) could still be another user's listener.
 */
static int
check_peer(int fd, const char *path)
{
	struct ucred cred;
	socklen_t sl = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0)
		return -errno;
	if (cred.uid == 0 || cred.uid == geteuid())
		return 0;
	cwarn("not talking to %s: the process listening on "
	    "it (pid %d) is uid %u's; only root's or your own (uid %u) are "
	    "trusted\n", path, (int)cred.pid, (unsigned)cred.uid,
	    (unsigned)geteuid());
	return -EPERM;
}

/*
 * Connects to the socket at path: 0 with x->fd set, or -errno (said
 * unless quiet; a refusal to trust is always said).
 */
static int
connect_at(struct cli_ctx *x, const char *path, bool quiet)
{
	struct sockaddr_un sun;
	int	 fd, r;

	if (x->default_path && (r = check_owner(path)) < 0)
		return r;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int	 e = errno;

		close(fd);
		if (!quiet) {
			if (e == ENOENT || e == ECONNREFUSED)
				cerr("no wpool running at "
				    "%s\n", path);
			else
				cerr("cannot connect to %s: "
				    "%s\n", path, strerror(e));
		}
		return -e;
	}
	if (x->default_path && (r = check_peer(fd, path)) < 0) {
		close(fd);
		return r;
	}
	x->fd = fd;
	return 0;
}

/*
 * Where a pool of this user may have put its socket, in the order
 * searched: first where a pool started here would (the server's default:
 * $XDG_RUNTIME_DIR/wpool, else /run/wpool for root, /tmp/wpool-UID for
 * others), then the login session's /run/user/UID/wpool, then the
 * directory of a pool started outside any session (systemd, cron, docker
 * exec): /run/wpool for root, /tmp/wpool-UID for others.  Another user's
 * directories are never searched.  Returns how many it filled.
 */
static size_t
search_dirs(char dirs[SEARCH_DIRS][PATH_MAX])
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char	 d[SEARCH_DIRS][PATH_MAX], sys[PATH_MAX];
	unsigned uid = (unsigned)geteuid();
	size_t	 i, k, n = 0, ndirs = 0;

	if (uid == 0)
		strlcpy(sys, "/run/wpool", sizeof(sys));
	else
		snprintf(sys, sizeof(sys), "/tmp/wpool-%u", uid);
	if (xdg != NULL && *xdg == '/')
		snprintf(d[n++], PATH_MAX, "%s/wpool", xdg);
	else
		strlcpy(d[n++], sys, PATH_MAX);
	snprintf(d[n++], PATH_MAX, "/run/user/%u/wpool", uid);
	strlcpy(d[n++], sys, PATH_MAX);
	/* $XDG_RUNTIME_DIR may well be /run/user/UID: each place once. */
	for (i = 0; i < n; i++) {
		for (k = 0; k < ndirs && strcmp(dirs[k], d[i]) != 0; k++)
			;
		if (k == ndirs)
			strlcpy(dirs[ndirs++], d[i], PATH_MAX);
	}
	return ndirs;
}

/*
 * The pool's socket, searched for in search_dirs' order: the first that
 * answers is the one.  If none does, says where it looked.
 */
static int
find_pool(struct cli_ctx *x, bool quiet)
{
	char	 dirs[SEARCH_DIRS][PATH_MAX], path[PATH_MAX];
	char	 looked[SEARCH_DIRS * 120] = "";
	const char *name = x->name != NULL ? x->name : "wpool";
	size_t	 i, n = search_dirs(dirs);
	int	 r = -ENOENT, e;

	for (i = 0; i < n; i++) {
		if (snprintf(path, sizeof(path), "%s/%s.sock", dirs[i], name) >=
		    (int)sizeof(x->path))
			continue;
		if (*looked != '\0')
			strlcat(looked, i + 1 == n ? " or " : ", ",
			    sizeof(looked));
		strlcat(looked, path, sizeof(looked));
		if ((e = connect_at(x, path, true)) == 0) {
			strlcpy(x->path, path, sizeof(x->path));
			x->found = true;
			return 0;
		}
		if (e != -ENOENT && e != -ECONNREFUSED && e != -ENOTDIR) {
			if (e != -EPERM && !quiet)
				cerr("cannot connect to %s: "
				    "%s\n", path, strerror(-e));
			r = e;
		}
	}
	if (!quiet)
		cerr("no wpool running at %s\n"
		    "wpool: hint: a pool of another name? give it with "
		    "--name NAME, or its socket with -s PATH; 'wpool list' "
		    "shows the pools running\n", looked);
	return r;
}

static int
ctx_connect(struct cli_ctx *x, bool quiet)
{
	if (x->default_path && !x->found)
		return find_pool(x, quiet);
	return connect_at(x, x->path, quiet);
}

/* Sends one request and reads one response line into a json object. */
static json_object *
request(struct cli_ctx *x, json_object *req)
{
	const char *s = json_object_to_json_string_ext(req,
	    JSON_C_TO_STRING_PLAIN);
	struct json_tokener *tok;
	struct pollfd pfd;
	json_object *resp;
	char	*nl;
	ssize_t	 n;
	size_t	 len = strlen(s);

	if (write(x->fd, s, len) != (ssize_t)len || write(x->fd, "\n", 1) != 1) {
		cerr("cannot send to %s: %s\n", x->path,
		    strerror(errno));
		return NULL;
	}
	x->len = 0;
	for (;;) {
		if (x->len >= CLIENT_MAX_ANSWER) {
			cerr("the answer from %s is over %u "
			    "MiB; not reading more\n", x->path,
			    CLIENT_MAX_ANSWER >> 20);
			return NULL;
		}
		if (x->len + 65536 > x->cap) {
			x->cap = x->len + 65536 * 2;
			x->buf = xreallocarray(x->buf, x->cap, 1);
		}
		pfd.fd = x->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, x->timeout_ms) <= 0) {
			cerr("no answer from %s\n", x->path);
			return NULL;
		}
		n = read(x->fd, x->buf + x->len, x->cap - x->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cerr("%s closed the connection\n",
			    x->path);
			return NULL;
		}
		x->len += (size_t)n;
		x->buf[x->len] = '\0';
		if ((nl = memchr(x->buf, '\n', x->len)) != NULL) {
			*nl = '\0';
			break;
		}
	}
	/* Not UTF-8 is not JSON: --json must print only valid JSON. */
	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
	resp = json_tokener_parse_ex(tok, x->buf, (int)strlen(x->buf));
	if (resp != NULL && !json_object_is_type(resp, json_type_object)) {
		json_object_put(resp);
		resp = NULL;
	}
	if (resp == NULL)
		cerr("unreadable answer from %s\n", x->path);
	json_tokener_free(tok);
	return resp;
}

/* Connects (again), sends req (which it frees) and returns the answer. */
static json_object *
call(struct cli_ctx *x, json_object *req)
{
	json_object *resp, *v;

	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (ctx_connect(x, false) < 0) {
		json_object_put(req);
		return NULL;
	}
	resp = request(x, req);
	json_object_put(req);
	if (resp == NULL)
		return NULL;
	if (!json_object_object_get_ex(resp, "ok", &v) ||
	    !json_object_get_boolean(v)) {
		json_object_object_get_ex(resp, "error", &v);
		cerr("%s\n", v ? json_object_get_string(v) :
		    "request failed");
		json_object_put(resp);
		return NULL;
	}
	return resp;
}

static json_object *
simple_req(const char *cmd)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "cmd", json_object_new_string(cmd));
	return o;
}

static const char *
jstr(json_object *o, const char *key, const char *def)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && v != NULL)
		return json_object_get_string(v);
	return def;
}

static long long
jint(json_object *o, const char *key, long long def)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && v != NULL)
		return json_object_get_int64(v);
	return def;
}

static double
jdbl(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && v != NULL)
		return json_object_get_double(v);
	return 0;
}

static int
term_width(void)
{
	struct winsize ws;
	const char *c;
	long	 n;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	/* Not a terminal (a pipe to grep): $COLUMNS if set, else 80. */
	if ((c = getenv("COLUMNS")) != NULL && (n = strtol(c, NULL, 10)) >= 40 &&
	    n <= 4096)
		return (int)n;
	return 80;
}

/*
 * A worker's STATUS= text, made safe for a terminal: C0 and C1 controls
 * (escape sequences, tabs, newlines) become spaces, what is not UTF-8
 * becomes U+FFFD.
 */
static const char *
printable(const char *s, char *buf, size_t len)
{
	text_clean(s, len, buf, len);
	return buf;
}

/* inetd mode: a process per connection, not workers in slots. */
static void
print_connections(json_object *st)
{
	json_object *cs, *c;
	char	 up[32];
	size_t	 i;

	printf("%-7s %-6s %-8s %s\n", "PID", "UPTIME", "LISTENER", "PEER");
	if (!json_object_object_get_ex(st, "connections", &cs))
		return;
	for (i = 0; i < json_object_array_length(cs); i++) {
		c = json_object_array_get_idx(cs, i);
		format_duration(jdbl(c, "uptime_s"), up, sizeof(up));
		printf("%-7lld %-6s %-8s %s\n", jint(c, "pid", 0), up,
		    jstr(c, "listener", "?"), jstr(c, "peer", "?"));
	}
}

/* The pool's lines above the table: mode, CPUs, listeners, a reload. */
static void
print_pool_head(json_object *st, bool inetd)
{
	json_object *ws, *ls, *ro;
	char	 up[32];
	size_t	 i;

	format_duration(jdbl(st, "uptime_s"), up, sizeof(up));
	if (inetd && json_object_object_get_ex(st, "connections", &ws))
		printf("pool %s (pid %lld): inetd mode, %zu/%lld connections, "
		    "%lld in all, up %s\n", jstr(st, "name", "?"),
		    jint(st, "pid", 0), json_object_array_length(ws),
		    jint(st, "target", 0), jint(st, "connections_total", 0),
		    up);
	else
		printf("pool %s (pid %lld): %s mode, %lld/%lld ready, "
		    "generation %lld, up %s\n", jstr(st, "name", "?"),
		    jint(st, "pid", 0), jstr(st, "mode", "?"),
		    jint(st, "ready", 0), jint(st, "target", 0),
		    jint(st, "generation", 0), up);
	printf("  %lld CPUs: %.*s\n", jint(st, "cpus", 0), term_width() - 12,
	    jstr(st, "cpus_source", "?"));
	if (json_object_object_get_ex(st, "listeners", &ls))
		for (i = 0; i < json_object_array_length(ls); i++) {
			json_object *l = json_object_array_get_idx(ls, i);

			printf("  listening on %s (%s, fd %lld)\n",
			    jstr(l, "address", "?"), jstr(l, "name", "?"),
			    jint(l, "fd", 0));
		}
	if (json_object_object_get_ex(st, "reload", &ro) &&
	    strcmp(jstr(ro, "state", ""), "running") == 0)
		printf("  reloading to generation %lld: %lld/%lld done\n",
		    jint(ro, "generation", 0), jint(ro, "done", 0),
		    jint(ro, "total", 0));
	else if (ro && strcmp(jstr(ro, "state", ""), "failed") == 0)
		printf("  last reload (generation %lld) failed: %s\n",
		    jint(ro, "generation", 0), jstr(ro, "error", "?"));
}

/* A worker's columns that need a process: "-" for a slot without one. */
struct row_cells {
	char	 pid[16], up[32], conns[48], rss[32], cpu[16], lexit[24];
};

static void
row_cells_fill(json_object *w, const char *state, struct row_cells *c)
{
	json_object *le;

	if (jint(w, "pid", 0) > 0) {
		snprintf(c->pid, sizeof(c->pid), "%lld", jint(w, "pid", 0));
		format_duration(jdbl(w, "uptime_s"), c->up, sizeof(c->up));
		/* The worker's whole tree, as --max-memory sees it. */
		format_bytes((uint64_t)jint(w, "mem_bytes", jint(w,
		    "rss_bytes", 0)), c->rss, sizeof(c->rss));
		snprintf(c->cpu, sizeof(c->cpu), "%.1f", jdbl(w,
		    "cpu_percent"));
	} else {
		strlcpy(c->pid, "-", sizeof(c->pid));
		if (strcmp(state, "backoff") == 0) {
			char	 t[16];

			format_duration(jdbl(w, "next_start_s"), t, sizeof(t));
			snprintf(c->up, sizeof(c->up), "in %s", t);
		} else
			strlcpy(c->up, "-", sizeof(c->up));
		strlcpy(c->rss, "-", sizeof(c->rss));
		strlcpy(c->cpu, "-", sizeof(c->cpu));
	}
	c->lexit[0] = '\0';
	if (json_object_object_get_ex(w, "last_exit", &le) && le) {
		if (jstr(le, "signal", NULL) != NULL)
			snprintf(c->lexit, sizeof(c->lexit), "%s",
			    jstr(le, "signal", ""));
		else
			snprintf(c->lexit, sizeof(c->lexit), "exit %lld",
			    jint(le, "code", 0));
	}
}

/* One row of the table, its STATUS text cut at the terminal's width. */
static void
print_worker_row(json_object *w, int width, bool balance)
{
	json_object *dr;
	struct row_cells c;
	const char *status, *state = jstr(w, "state", "?");
	char	 stext[512];
	int	 used, left;

	row_cells_fill(w, state, &c);
	status = printable(jstr(w, "status", ""), stext, sizeof(stext));
	if (json_object_object_get_ex(w, "draining", &dr) && dr)
		status = "(draining)";
	used = printf("%-3lld %-7s %-8s %-3lld %-6s ", jint(w, "id", 0), c.pid,
	    state, jint(w, "generation", 0), c.up);
	if (balance) {
		if (jint(w, "pid", 0) > 0)
			snprintf(c.conns, sizeof(c.conns), "%lld/%lld",
			    jint(w, "connections", 0), jint(w, "requests", 0));
		else
			strlcpy(c.conns, "-", sizeof(c.conns));
		used += printf("%-9s ", c.conns);
	}
	used += printf("%-6s %-5s %-8lld ", c.rss, c.cpu,
	    jint(w, "restarts", 0));
	/* No padding at the end of a row without STATUS text. */
	if (*status == '\0') {
		printf("%s\n", c.lexit[0] ? c.lexit : "-");
		return;
	}
	used += printf("%-9s ", c.lexit[0] ? c.lexit : "-");
	left = width - used - 1;
	if (left < 8)
		left = 8;
	printf("%.*s\n", left, status);
}

static void
print_table(json_object *st)
{
	json_object *ws;
	size_t	 i;
	int	 width = term_width();
	bool	 inetd, balance;

	inetd = strcmp(jstr(st, "mode", ""), "inetd") == 0;
	print_pool_head(st, inetd);
	if (inetd) {
		print_connections(st);
		return;
	}
	balance = strcmp(jstr(st, "mode", ""), "balance") == 0;
	if (balance)
		printf("  balancer %s: %lld connection%s queued, %lld in all\n",
		    jstr(st, "balancer", "?"), jint(st, "queue", 0),
		    jint(st, "queue", 0) == 1 ? "" : "s",
		    jint(st, "connections_total", 0));
	/*
	 * Balance mode: open/handled connections, which wpool sees.  Other
	 * modes have no column of when a worker last served: wpool does not
	 * see their connections, and a CPU counter sampled when asked is no
	 * measure of it.
	 */
	printf("%-3s %-7s %-8s %-3s %-6s ", "ID", "PID", "STATE", "GEN",
	    "UPTIME");
	if (balance)
		printf("%-9s ", "CONNS");
	/* The memory column says which: PSS, or RSS summed (wpool(1)). */
	printf("%-6s %-5s %-8s %-9s %s\n", strcmp(jstr(st, "mem_kind", "rss"),
	    "pss") == 0 ? "PSS" : "RSS", "CPU%", "RESTARTS", "LAST-EXIT",
	    "STATUS");
	if (!json_object_object_get_ex(st, "workers", &ws))
		return;
	for (i = 0; i < json_object_array_length(ws); i++)
		print_worker_row(json_object_array_get_idx(ws, i), width,
		    balance);
}

static int
cmd_status(struct cli_ctx *x, int argc, char **argv)
{
	json_object *st;
	bool	 json = false, check = false;
	int	 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--check") == 0)
			check = true;
		else
			return usage_error("status", "unknown argument '%s'",
			    argv[i]);
	}
	if ((st = call(x, simple_req("status"))) == NULL)
		return 1;
	if (check) {
		json_object *h;
		int	 rc;

		/* The master's own answer (drain.c), as /readyz gives it. */
		if (!json_object_object_get_ex(st, "healthy", &h)) {
			cerr("the master did not say whether it is healthy\n");
			json_object_put(st);
			return 1;
		}
		rc = json_object_get_boolean(h) ? 0 : 1;
		if (json)
			printf("%s\n", json_object_to_json_string_ext(st,
			    JSON_C_TO_STRING_PLAIN));
		else
			printf("%s: %s\n", rc == 0 ? "healthy" : "unhealthy",
			    jstr(st, "health", ""));
		json_object_put(st);
		return rc;
	}
	if (json) {
		json_object_object_del(st, "ok");
		printf("%s\n", json_object_to_json_string_ext(st,
		    JSON_C_TO_STRING_PLAIN));
	} else
		print_table(st);
	json_object_put(st);
	return 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * The outcome of reload gen, which reload cur has overtaken: failed if it
 * is among the pool's recent failures, unknown if that list no longer
 * reaches back to it, else done.
 */
static int
overtaken_outcome(json_object *ro, long long gen, long long cur)
{
	json_object *fl, *f;
	size_t	 i, n = 0;

	if (json_object_object_get_ex(ro, "recent_failures", &fl) &&
	    json_object_is_type(fl, json_type_array))
		n = json_object_array_length(fl);
	for (i = 0; i < n; i++) {
		f = json_object_array_get_idx(fl, i);
		if (jint(f, "generation", 0) == gen) {
			cerr("reload to generation %lld "
			    "failed: %s (generation %lld followed)\n", gen,
			    jstr(f, "error", "?"), cur);
			return 1;
		}
	}
	if (n >= RELOAD_FAILURES && jint(json_object_array_get_idx(fl, 0),
	    "generation", 0) > gen) {
		cerr("reload to generation %lld: outcome "
		    "unknown, %zu failed reloads followed\n", gen, n);
		return 1;
	}
	printf("reloaded to generation %lld (generation %lld followed)\n",
	    gen, cur);
	return 0;
}

/* The pool without its workers: what a client that waits polls. */
static json_object *
brief_status(struct cli_ctx *x)
{
	json_object *req = simple_req("status");

	json_object_object_add(req, "workers", json_object_new_boolean(0));
	return call(x, req);
}

/* Follows a reload through brief status requests until it ends. */
static int
wait_reload(struct cli_ctx *x, long long gen)
{
	json_object *st, *ro, *rep;
	char	 last[256] = "", line[256];
	long long cur;
	int	 rc = 1, off;
	size_t	 i;

	for (;;) {
		if ((st = brief_status(x)) == NULL)
			return 1;
		json_object_object_get_ex(st, "reload", &ro);
		cur = jint(ro, "generation", 0);
		if (cur > gen) {
			/* Over, and a newer one came: did ours fail? */
			rc = overtaken_outcome(ro, gen, cur);
			break;
		}
		if (cur < gen && strcmp(jstr(ro, "state", ""), "running") != 0) {
			cerr("reload to generation %lld did "
			    "not start\n", gen);
			rc = 1;
			break;
		}
		if (cur < gen) {
			/* Queued behind the reload under way. */
			snprintf(line, sizeof(line), "reload to generation %lld "
			    "waits for the one to generation %lld: %lld/%lld "
			    "workers replaced", gen, cur, jint(ro, "done", 0),
			    jint(ro, "total", 0));
			if (strcmp(line, last) != 0) {
				printf("%s\n", line);
				fflush(stdout);
				strlcpy(last, line, sizeof(last));
			}
		} else if (strcmp(jstr(ro, "state", ""), "running") == 0) {
			off = snprintf(line, sizeof(line), "reload to generation "
			    "%lld: %lld/%lld workers replaced", gen,
			    jint(ro, "done", 0), jint(ro, "total", 0));
			if (json_object_object_get_ex(ro, "replacing", &rep))
				for (i = 0; i < json_object_array_length(rep) &&
				    off < (int)sizeof(line) - 40; i++) {
					json_object *w =
					    json_object_array_get_idx(rep, i);

					off += snprintf(line + off, sizeof(line) -
					    (size_t)off, "%s worker %lld (new pid "
					    "%lld)", i ? "," : "; starting",
					    jint(w, "id", 0), jint(w, "pid", 0));
				}
			if (strcmp(line, last) != 0) {
				printf("%s\n", line);
				fflush(stdout);
				strlcpy(last, line, sizeof(last));
			}
		} else if (strcmp(jstr(ro, "state", ""), "done") == 0) {
			printf("reloaded: %lld workers at generation %lld in "
			    "%.2fs\n", jint(ro, "done", 0), gen,
			    jdbl(ro, "seconds"));
			rc = 0;
			break;
		} else if (strcmp(jstr(ro, "state", ""), "failed") == 0) {
			cerr("reload to generation %lld "
			    "failed: %s\n", gen, jstr(ro, "error", "?"));
			rc = 1;
			break;
		}
		json_object_put(st);
		st = NULL;
		sleep_ms(20);
	}
	json_object_put(st);
	return rc;
}

static int
cmd_reload(struct cli_ctx *x, int argc, char **argv)
{
	json_object *r, *q, *req;
	bool	 wait = true, queued, dry = false;
	long long gen;
	int	 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0)
			wait = false;
		else if (strcmp(argv[i], "--dry-run") == 0 ||
		    strcmp(argv[i], "-n") == 0)
			dry = true;
		else
			return usage_error(argv[0], "unknown argument '%s'",
			    argv[i]);
	}
	req = simple_req("reload");
	if (dry)
		json_object_object_add(req, "dry_run",
		    json_object_new_boolean(true));
	if ((r = call(x, req)) == NULL)
		return 1;
	if (dry) {
		const char *ch = jstr(r, "changes", "");

		/* One line per change, as the master's log has them. */
		if (*ch == '\0')
			printf("reload would change nothing\n");
		else
			fputs(ch, stdout);
		json_object_put(r);
		return 0;
	}
	gen = jint(r, "generation", 0);
	/* Asked for during another reload: it runs once that one is done. */
	queued = json_object_object_get_ex(r, "queued", &q) &&
	    json_object_get_boolean(q);
	json_object_put(r);
	if (!wait) {
		if (queued)
			printf("reload to generation %lld queued: it starts "
			    "when generation %lld is done\n", gen, gen - 1);
		else
			printf("reload to generation %lld started\n", gen);
		return 0;
	}
	return wait_reload(x, gen);
}

static int
cmd_scale(struct cli_ctx *x, int argc, char **argv)
{
	json_object *req, *r;
	long long n;
	const char *a;

	if (argc != 2)
		return usage_error("scale", "expected one argument%s", "");
	a = argv[1];
	req = simple_req("scale");
	if (a[0] == '+' || a[0] == '-') {
		if (parse_int(a + 1, 1, WPOOL_MAX_WORKERS, &n) < 0) {
			json_object_put(req);
			return usage_error("scale", "invalid value '%s': "
			    "expected N, +N or -N with N from 1 to 1024", a);
		}
		json_object_object_add(req, "delta",
		    json_object_new_int64(a[0] == '-' ? -n : n));
	} else {
		if (parse_int(a, 1, WPOOL_MAX_WORKERS, &n) < 0) {
			json_object_put(req);
			return usage_error("scale", "invalid value '%s': "
			    "expected N, +N or -N with N from 1 to 1024", a);
		}
		json_object_object_add(req, "workers", json_object_new_int64(n));
	}
	if ((r = call(x, req)) == NULL)
		return 1;
	printf("scaled from %lld to %lld worker%s\n", jint(r, "previous", 0),
	    jint(r, "workers", 0), jint(r, "workers", 0) == 1 ? "" : "s");
	json_object_put(r);
	return 0;
}

/* The record of restart serial in a status, NULL if it is gone. */
static json_object *
restart_record(json_object *st, long long serial)
{
	json_object *a, *r;
	size_t	 i;

	if (!json_object_object_get_ex(st, "recent_restarts", &a) ||
	    !json_object_is_type(a, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(a); i++) {
		r = json_object_array_get_idx(a, i);
		if (jint(r, "serial", 0) == serial)
			return r;
	}
	return NULL;
}

/*
 * What one status says of the restart of worker id (its record serial):
 * 0 it is done, 1 it failed or cannot be followed, -1 it runs on (then
 * a new successor's pid, not said before, is said).
 */
static int
restart_outcome(json_object *st, long long id, long long serial,
    long long *said_pid)
{
	json_object *r = restart_record(st, serial);
	const char *state = jstr(r, "state", "");
	long long pid = jint(r, "pid", 0);

	if (r == NULL) {
		cerr("restart of worker %lld: outcome "
		    "unknown, %d restarts followed\n", id, RESTART_RECORDS);
		return 1;
	}
	if (strcmp(state, "done") == 0) {
		printf("restarted worker %lld (new pid %lld) in %.2fs\n", id,
		    pid, jdbl(r, "seconds"));
		return 0;
	}
	if (strcmp(state, "failed") == 0) {
		cerr("restart of worker %lld failed: %s%s\n",
		    id, jstr(r, "error", "?"), jint(r, "old_serves", 0) ?
		    "; the old worker keeps serving" : "");
		return 1;
	}
	if (strcmp(jstr(st, "state", ""), "running") != 0) {
		cerr("restart of worker %lld: the pool is "
		    "stopping\n", id);
		return 1;
	}
	if (pid > 0 && pid != *said_pid) {
		printf("restarting worker %lld: new worker (pid %lld) "
		    "starting\n", id, pid);
		fflush(stdout);
		*said_pid = pid;
	}
	return -1;
}

/* Follows a restart of one worker through brief status requests. */
static int
wait_restart(struct cli_ctx *x, long long id, long long serial)
{
	json_object *st;
	long long said_pid = 0;
	int	 rc;

	for (;;) {
		if ((st = brief_status(x)) == NULL)
			return 1;
		rc = restart_outcome(st, id, serial, &said_pid);
		json_object_put(st);
		if (rc >= 0)
			return rc;
		sleep_ms(20);
	}
}

static int
cmd_restart(struct cli_ctx *x, int argc, char **argv)
{
	json_object *req, *r;
	long long id, serial;
	bool	 wait = true;
	const char *what = NULL;
	int	 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0)
			wait = false;
		else if (what == NULL)
			what = argv[i];
		else
			return usage_error("restart", "unexpected argument "
			    "'%s'", argv[i]);
	}
	if (what == NULL)
		return usage_error("restart", "which worker? give an ID or "
		    "'all'%s", "");
	if (strcmp(what, "all") == 0) {
		char	*rargv[] = { "restart", wait ? NULL : "--no-wait",
		    NULL };

		return cmd_reload(x, wait ? 1 : 2, rargv);
	}
	if (parse_int(what, 0, WPOOL_MAX_WORKERS - 1, &id) < 0)
		return usage_error("restart", "invalid worker id '%s': "
		    "expected a number from 0 to 1023 or 'all'", what);
	req = simple_req("restart");
	json_object_object_add(req, "id", json_object_new_int64(id));
	if ((r = call(x, req)) == NULL)
		return 1;
	serial = jint(r, "serial", 0);
	json_object_put(r);
	printf("restarting worker %lld\n", id);
	if (!wait)
		return 0;
	fflush(stdout);
	return wait_restart(x, id, serial);
}

static int
cmd_signal(struct cli_ctx *x, int argc, char **argv)
{
	json_object *req, *r;
	long long id = -1;
	int	 sig;

	if (argc < 2 || argc > 3)
		return usage_error("signal", "expected SIG [ID]%s", "");
	if (parse_signal(argv[1], &sig) < 0)
		return usage_error("signal", "invalid signal '%s': expected a "
		    "name such as HUP, USR1, TERM or a number", argv[1]);
	if (argc == 3 && parse_int(argv[2], 0, WPOOL_MAX_WORKERS - 1, &id) < 0)
		return usage_error("signal", "invalid worker id '%s': "
		    "expected a number from 0 to 1023", argv[2]);
	req = simple_req("signal");
	json_object_object_add(req, "signal",
	    json_object_new_string(signal_name(sig)));
	if (id >= 0)
		json_object_object_add(req, "id", json_object_new_int64(id));
	if ((r = call(x, req)) == NULL)
		return 1;
	printf("sent SIG%s to %lld worker%s\n", signal_name(sig),
	    jint(r, "workers", 0), jint(r, "workers", 0) == 1 ? "" : "s");
	json_object_put(r);
	return 0;
}

/*
 * What status says of upgrade serial: 0 done, 1 failed (said why), -1
 * not yet (the old image has not exec'd, or the new one not answered).
 */
static int
upgrade_outcome(json_object *st, long long serial, long long pid,
    long long workers)
{
	json_object *u, *v;

	if (!json_object_object_get_ex(st, "upgrade", &u) ||
	    jint(u, "attempts", 0) < serial)
		return -1;
	if (json_object_object_get_ex(u, "last_ok", &v) &&
	    json_object_get_boolean(v)) {
		printf("upgraded: master pid %lld (%s), %lld worker%s kept "
		    "(%.3fs)\n", jint(st, "pid", 0), jint(st, "pid", 0) ==
		    pid ? "unchanged" : "CHANGED", workers, workers == 1 ? "" :
		    "s", jdbl(u, "seconds"));
		return 0;
	}
	cerr("upgrade failed: %s\n", jstr(u, "error", "unknown error"));
	return 1;
}

static int
cmd_upgrade(struct cli_ctx *x, int argc, char **argv)
{
	json_object *req, *r, *v, *st;
	char	 bin[PATH_MAX];
	const char *binary = NULL, *err;
	long long serial, pid, workers;
	bool	 reload = false;
	int	 i, rc, tries;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reload") == 0)
			reload = true;
		else if (strcmp(argv[i], "--binary") == 0 && i + 1 < argc)
			binary = argv[++i];
		else if (strncmp(argv[i], "--binary=", 9) == 0)
			binary = argv[i] + 9;
		else if (strcmp(argv[i], "--binary") == 0)
			return usage_error("upgrade", "--binary: expected the "
			    "path of a wpool binary%s", "");
		else
			return usage_error("upgrade", "unknown argument '%s'",
			    argv[i]);
	}
	if (binary != NULL && *binary == '\0')
		return usage_error("upgrade", "--binary '%s': expected the "
		    "path of a wpool binary", binary);
	/* The master's working directory is not ours. */
	if (binary != NULL && realpath(binary, bin) != NULL)
		binary = bin;
	else if (binary != NULL && *binary != '/') {
		cerr("upgrade: cannot upgrade to %s: %s\n", binary,
		    strerror(errno));
		return 1;
	}
	/* A pool with workers starting or stopping is asked again. */
	for (tries = 0;; tries++) {
		req = simple_req("upgrade");
		if (binary != NULL)
			json_object_object_add(req, "binary",
			    json_object_new_string(binary));
		if (x->fd >= 0)
			close(x->fd);
		x->fd = -1;
		if (ctx_connect(x, false) < 0) {
			json_object_put(req);
			return 1;
		}
		r = request(x, req);
		json_object_put(req);
		if (r == NULL)
			return 1;
		if (json_object_object_get_ex(r, "ok", &v) &&
		    json_object_get_boolean(v))
			break;
		err = jstr(r, "error", "request failed");
		if (strncmp(err, "busy:", 5) != 0 || tries >= 100) {
			cerr("%s\n", err);
			json_object_put(r);
			return 1;
		}
		json_object_put(r);
		sleep_ms(100);
	}
	serial = jint(r, "serial", 0);
	pid = jint(r, "pid", 0);
	workers = jint(r, "workers", 0);
	json_object_put(r);
	printf("upgrading master pid %lld...\n", pid);
	fflush(stdout);
	/* The new image answers on the same socket once it has taken over. */
	for (;;) {
		if ((st = brief_status(x)) == NULL)
			return 1;
		rc = upgrade_outcome(st, serial, pid, workers);
		json_object_put(st);
		if (rc >= 0)
			break;
		sleep_ms(10);
	}
	if (rc != 0 || !reload)
		return rc;
	{
		char	*rargv[] = { "reload", NULL };

		return cmd_reload(x, 1, rargv);
	}
}

static int
cmd_stop(struct cli_ctx *x, int argc, char **argv)
{
	json_object *r;
	bool	 wait = true;
	int	 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0)
			wait = false;
		else
			return usage_error("stop", "unknown argument '%s'",
			    argv[i]);
	}
	if ((r = call(x, simple_req("stop"))) == NULL)
		return 1;
	json_object_put(r);
	if (!wait) {
		printf("stopping\n");
		return 0;
	}
	printf("stopping...\n");
	fflush(stdout);
	/* The master removes its socket as its very last act. */
	close(x->fd);
	x->fd = -1;
	while (ctx_connect(x, true) == 0) {
		close(x->fd);
		x->fd = -1;
		sleep_ms(50);
	}
	printf("stopped\n");
	return 0;
}

/* A name of a pool's socket file: NAME.sock as --name NAME makes it. */
static int
sock_entry(const struct dirent *d)
{
	size_t	 n = strlen(d->d_name);

	return n > 5 && d->d_name[0] != '.' &&
	    strcmp(d->d_name + n - 5, ".sock") == 0;
}

/*
 * Asks the pool at path for its brief status and adds it to pools, or
 * leaves it out: not a socket, not trusted (said), no pool (a stale
 * file), no answer in LIST_TIMEOUT_MS (said).
 */
static void
list_one(struct cli_ctx *x, const char *path, const char *name,
    json_object *pools)
{
	json_object *req, *st, *o, *v;
	struct stat sb;

	if (lstat(path, &sb) < 0 || !S_ISSOCK(sb.st_mode))
		return;
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	if (connect_at(x, path, true) < 0)
		return;
	strlcpy(x->path, path, sizeof(x->path));
	req = simple_req("status");
	json_object_object_add(req, "workers", json_object_new_boolean(0));
	st = request(x, req);
	json_object_put(req);
	if (st == NULL)
		return;
	if (!json_object_object_get_ex(st, "ok", &v) ||
	    !json_object_get_boolean(v)) {
		json_object_put(st);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "pid", json_object_new_int64(jint(st, "pid",
	    0)));
	json_object_object_add(o, "mode", json_object_new_string(jstr(st,
	    "mode", "?")));
	json_object_object_add(o, "ready", json_object_new_int64(jint(st,
	    "ready", 0)));
	json_object_object_add(o, "target", json_object_new_int64(jint(st,
	    "target", 0)));
	json_object_object_add(o, "socket", json_object_new_string(path));
	json_object_array_add(pools, o);
	json_object_put(st);
}

/* Every trusted pool socket in dir (or only --name's), in name order. */
static void
list_dir(struct cli_ctx *x, const char *dir, json_object *pools)
{
	struct dirent **ents;
	char	 path[PATH_MAX], name[NAME_MAX + 1];
	int	 i, n;

	if (check_dir(dir, dir) < 0)
		return;
	if ((n = scandir(dir, &ents, sock_entry, alphasort)) < 0)
		return;
	for (i = 0; i < n; i++) {
		strlcpy(name, ents[i]->d_name, sizeof(name));
		name[strlen(name) - 5] = '\0';
		if ((x->name == NULL || strcmp(name, x->name) == 0) &&
		    snprintf(path, sizeof(path), "%s/%s", dir,
		    ents[i]->d_name) < (int)sizeof(x->path))
			list_one(x, path, name, pools);
		free(ents[i]);
	}
	free(ents);
}

static void
print_list(json_object *pools)
{
	json_object *o;
	size_t	 i, n = json_object_array_length(pools);
	int	 w = 4;
	char	 rt[48];

	for (i = 0; i < n; i++) {
		int	 l = (int)strlen(jstr(json_object_array_get_idx(pools,
		    i), "name", ""));

		if (l > w)
			w = l;
	}
	printf("%-*s %-7s %-10s %-9s %s\n", w, "NAME", "PID", "MODE", "READY",
	    "SOCKET");
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(pools, i);
		snprintf(rt, sizeof(rt), "%lld/%lld", jint(o, "ready", 0),
		    jint(o, "target", 0));
		printf("%-*s %-7lld %-10s %-9s %s\n", w, jstr(o, "name", "?"),
		    jint(o, "pid", 0), jstr(o, "mode", "?"), rt,
		    jstr(o, "socket", "?"));
	}
}

/*
 * `wpool list`: the pools whose sockets are in the places find_pool
 * searches (or the one of -s), each asked for its brief status.
 */
static int
cmd_list(struct cli_ctx *x, int argc, char **argv)
{
	char	 dirs[SEARCH_DIRS][PATH_MAX], looked[SEARCH_DIRS * PATH_MAX];
	json_object *out, *pools, *searched;
	bool	 json = false;
	size_t	 i, n;

	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else
			return usage_error("list", "unknown argument '%s'",
			    argv[i]);
	}
	x->timeout_ms = LIST_TIMEOUT_MS;
	pools = json_object_new_array();
	searched = json_object_new_array();
	looked[0] = '\0';
	if (!x->default_path) {
		char	 p[sizeof(x->path)], base[sizeof(x->path)];
		char	*dot;

		strlcpy(p, x->path, sizeof(p));
		strlcpy(base, basename(p), sizeof(base));
		if ((dot = strrchr(base, '.')) != NULL && strcmp(dot,
		    ".sock") == 0)
			*dot = '\0';
		strlcpy(p, x->path, sizeof(p));
		list_one(x, p, base, pools);
		json_object_array_add(searched, json_object_new_string(p));
		strlcpy(looked, p, sizeof(looked));
	} else {
		n = search_dirs(dirs);
		for (i = 0; i < n; i++) {
			list_dir(x, dirs[i], pools);
			json_object_array_add(searched,
			    json_object_new_string(dirs[i]));
			if (i > 0)
				strlcat(looked, ", ", sizeof(looked));
			strlcat(looked, dirs[i], sizeof(looked));
		}
	}
	if (json) {
		out = json_object_new_object();
		json_object_object_add(out, "pools", pools);
		json_object_object_add(out, "searched", searched);
		printf("%s\n", json_object_to_json_string_ext(out,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(out);
		return 0;
	}
	if (json_object_array_length(pools) == 0)
		fprintf(stderr, "wpool: no wpool running%s%s in %s\n",
		    x->name != NULL ? " named " : "",
		    x->name != NULL ? x->name : "", looked);
	else
		print_list(pools);
	json_object_put(pools);
	json_object_put(searched);
	return 0;
}

int
client_main(int argc, char **argv, const char *control, const char *name)
{
	struct cli_ctx x;
	size_t	 i;
	int	 rc = EXIT_USAGE;

	memset(&x, 0, sizeof(x));
	x.fd = -1;
	x.name = name;
	x.timeout_ms = CLIENT_TIMEOUT_MS;
	signal(SIGPIPE, SIG_IGN);
	if (control != NULL) {
		if (strlcpy(x.path, control, sizeof(x.path)) >= sizeof(x.path)) {
			cerr("-s/--control: the path is too "
			    "long (at most 107 bytes)\n");
			return EXIT_USAGE;
		}
	} else {
		control_default_path(name, x.path, sizeof(x.path));
		x.default_path = getenv("WPOOL_CONTROL") == NULL ||
		    *getenv("WPOOL_CONTROL") == '\0';
	}
	for (i = 0; i < sizeof(client_cmds) / sizeof(client_cmds[0]); i++)
		if (strcmp(argv[0], client_cmds[i].name) == 0) {
			if (argc > 1 && (strcmp(argv[1], "-h") == 0 ||
			    strcmp(argv[1], "--help") == 0)) {
				printf("usage: wpool [-s PATH | --name NAME] "
				    "%s\n", client_cmds[i].usage);
				return 0;
			}
			rc = client_cmds[i].fn(&x, argc, argv);
			break;
		}
	if (x.fd >= 0)
		close(x.fd);
	free(x.buf);
	return rc;
}
