/*
 * inetd.c: inetd mode, where each accepted connection gets a process of
 * its own running the command, with the connection as its stdin and
 * stdout and ucspi-tcp's environment.  Owns those connection processes,
 * their table (p->inetd) and their count; the connections come from
 * acceptq.c, which stops accepting while the table is full (the pool's
 * target).  pool.c reaps them and asks here whose they are.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <json-c/json.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balance.h"

/* One connection process. */
struct iproc {
	TAILQ_ENTRY(iproc) entry;
	pid_t	 pid;
	char	 peer[64];
	int	 listener;
	double	 started;
};

struct inetd {
	TAILQ_HEAD(, iproc) procs;
	int	 n;
};

int
inetd_init(struct pool *p)
{
	if (p->conf->mode != MODE_INETD)
		return 0;
	p->inetd = xcalloc(1, sizeof(*p->inetd));
	TAILQ_INIT(&p->inetd->procs);
	return 0;
}

int
inetd_running(const struct pool *p)
{
	return p->inetd != NULL ? p->inetd->n : 0;
}

/* At the limit: the kernel's backlog holds the next connections. */
bool
inetd_full(const struct pool *p)
{
	return p->inetd->n >= p->target;
}

/* ucspi-tcp's variables for c, as NAME=VALUE in vars[0..8]. */
#define NVARS	9
static void
conn_vars(const struct pool *p, const struct conn *c, char *vars[NVARS])
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char	 host[64], lhost[64], *rp, *lp = NULL, *rh, *lh;

	strlcpy(host, c->peer, sizeof(host));
	if ((rp = strrchr(host, ':')) != NULL)
		*rp++ = '\0';
	lhost[0] = '\0';
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    sockaddr_format(&ss, sl, lhost, sizeof(lhost)) > 0 &&
	    (lp = strrchr(lhost, ':')) != NULL)
		*lp++ = '\0';
	/* Addresses without the brackets sockaddr_format puts on IPv6. */
#define UNBRACKET(s) ((s)[0] == '[' ? ((s)[strlen(s) - 1] = '\0', (s) + 1) : (s))
	rh = UNBRACKET(host);
	lh = UNBRACKET(lhost);
#undef UNBRACKET
	xasprintf(&vars[0], "PROTO=TCP");
	xasprintf(&vars[1], "TCPREMOTEIP=%s", rh);
	xasprintf(&vars[2], "TCPREMOTEPORT=%s", rp ? rp : "");
	xasprintf(&vars[3], "TCPLOCALIP=%s", lh);
	xasprintf(&vars[4], "TCPLOCALPORT=%s", lp ? lp : "");
	xasprintf(&vars[5], "REMOTE_ADDR=%s", rh);
	xasprintf(&vars[6], "REMOTE_PORT=%s", rp ? rp : "");
	xasprintf(&vars[7], "WPOOL_LISTENER=%s",
	    p->conf->listeners[c->listener].name);
	xasprintf(&vars[8], "WPOOL_MASTER_PID=%d", (int)p->pid);
}

/* The command runs with the connection as stdin and stdout. */
void
inetd_take(struct pool *p, struct conn *c)
{
	struct spawn_req req;
	struct iproc *ip;
	char	**env, *vars[NVARS];
	size_t	 i, n = 0;
	int	 status_fd, k;
	pid_t	 pid;

	conn_vars(p, c, vars);
	env = xcalloc(p->nenv_base + NVARS + 1, sizeof(char *));
	for (i = 0; i < p->nenv_base; i++)
		env[n++] = p->env_base[i];
	for (k = 0; k < NVARS; k++)
		env[n++] = vars[k];
	memset(&req, 0, sizeof(req));
	req.argv = p->conf->argv;
	req.envp = env;
	req.stdin_fd = c->fd;
	req.stdout_fd = c->fd;
	req.stderr_fd = -1;
	req.set_user = p->conf->set_user;
	req.uid = p->conf->uid;
	req.gid = p->conf->gid;
	req.groups = p->conf->groups;
	req.ngroups = p->conf->ngroups;
	req.chdir = p->conf->chdir;
	req.nofile = &p->nofile;
	pid = spawn_child(&req, &status_fd);
	for (k = 0; k < NVARS; k++)
		free(vars[k]);
	free(env);
	if (pid < 0) {
		errno = -pid;
		log_warn("cannot fork for a connection from %s", c->peer);
		conn_close(c);
		return;
	}
	/* Exec failures show as exit status 127/126 when it is reaped. */
	close(status_fd);
	ip = xcalloc(1, sizeof(*ip));
	ip->pid = pid;
	ip->listener = c->listener;
	ip->started = now_mono();
	strlcpy(ip->peer, c->peer, sizeof(ip->peer));
	TAILQ_INSERT_TAIL(&p->inetd->procs, ip, entry);
	p->inetd->n++;
	log_debug("connection from %s: pid %d", c->peer, (int)pid);
	conn_close(c);
}

static struct iproc *
find(const struct inetd *t, pid_t pid)
{
	struct iproc *ip;

	if (t == NULL)
		return NULL;
	TAILQ_FOREACH(ip, &t->procs, entry)
		if (ip->pid == pid)
			return ip;
	return NULL;
}

/* Whether pid is one of p's connection processes. */
bool
inetd_has_child(const struct pool *p, pid_t pid)
{
	return find(p->inetd, pid) != NULL;
}

/* Called for every reaped pid that is not a worker. */
bool
balance_reaped(struct pool *p, pid_t pid, int status)
{
	struct iproc *ip;

	if ((ip = find(p->inetd, pid)) == NULL)
		return false;
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 126)
		log_warnx("connection from %s: '%s' exited with status %d",
		    ip->peer, p->conf->argv[0], WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && !(p->state == POOL_STOPPING &&
	    (WTERMSIG(status) == p->conf->stop_signal ||
	    WTERMSIG(status) == SIGKILL))) {
		char	 after[32];

		format_duration(now_mono() - ip->started, after, sizeof(after));
		log_warnx("connection from %s: '%s' (pid %d) killed by signal "
		    "%s after %s", ip->peer, p->conf->argv[0], (int)pid,
		    signal_name(WTERMSIG(status)), after);
	}
	TAILQ_REMOVE(&p->inetd->procs, ip, entry);
	free(ip);
	p->inetd->n--;
	acceptq_room(p);
	if (p->state == POOL_STOPPING && p->inetd->n == 0)
		pool_check_done(p);
	return true;
}

/* Stopping: sig to every connection process; how many there are. */
int
inetd_stop(struct pool *p, int sig)
{
	struct iproc *ip;

	if (p->inetd == NULL)
		return 0;
	TAILQ_FOREACH(ip, &p->inetd->procs, entry)
		kill(ip->pid, sig);
	return p->inetd->n;
}

json_object *
balance_status_json(struct pool *p, double mono)
{
	json_object *a = json_object_new_array();
	struct iproc *ip;
	char	 buf[32];

	if (p->inetd == NULL)
		return a;
	TAILQ_FOREACH(ip, &p->inetd->procs, entry) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "pid", json_object_new_int(ip->pid));
		json_object_object_add(o, "peer",
		    json_object_new_string(ip->peer));
		json_object_object_add(o, "listener", json_object_new_string(
		    p->conf->listeners[ip->listener].name));
		snprintf(buf, sizeof(buf), "%.3f", mono - ip->started);
		json_object_object_add(o, "uptime_s",
		    json_object_new_double_s(mono - ip->started, buf));
		json_object_array_add(a, o);
	}
	return a;
}

/*
 * reload, restart and signal address workers, which inetd mode has not:
 * each connection runs the command afresh, so the next one already runs
 * it as it is now, and a connection process serves one client, whom a
 * restart would cut off.  All three are refused alike, saying so and
 * what to do instead: -ENOTSUP and the reason in err, or 0 in the other
 * modes.  verb: "reload", "restart" or "signal".
 */
int
inetd_refuse(const struct pool *p, const char *verb, char *err, size_t len)
{
	int	 n = inetd_running(p);

	if (p->conf->mode != MODE_INETD)
		return 0;
	snprintf(err, len, "inetd mode has no workers to %s: each connection "
	    "runs '%s' afresh, so the next one runs it as it is now; the %d "
	    "connection process%s running serve%s %s client%s to the end (to "
	    "signal or end one, kill the pid `wpool status` lists)", verb,
	    p->conf->argv[0], n, n == 1 ? "" : "es", n == 1 ? "s" : "",
	    n == 1 ? "its" : "their", n == 1 ? "" : "s");
	return -ENOTSUP;
}
