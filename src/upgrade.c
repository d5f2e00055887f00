/*
 * upgrade.c: `wpool upgrade` (and SIGUSR2): the master execs a new image
 * of itself with the same pid and hands it its state, so that the workers
 * (still its children across execve) and every socket live on.
 *
 * The old image, asked: refuses what it cannot hand over (a pool that is
 * not running, inetd mode, a worker starting or stopping, a replacement
 * under way, a balance worker without its channel), serializes the state
 * as JSON
 * (UPGRADE_FORMAT) and PROBES the new binary first: it runs `NEWBIN
 * --upgrade-probe ARGS...` (a wpool from before upgrades refuses the
 * option rather than start a pool), the state in a memfd named by
 * WPOOL_UPGRADE_FD; the probe parses the configuration as a start would
 * and checks that it can adopt the state, then exits 0.  The master waits
 * for it (PROBE_TIMEOUT_MS at most; the workers serve on meanwhile).
 * Only then is the client answered and, once the answer is written, the
 * listeners, slot sockets, control, notify and metrics sockets and output
 * pipes lose FD_CLOEXEC and the master execs the new binary with the same
 * argv.  The signal mask (signalfd's) survives execve: a signal that
 * comes meanwhile waits for the new image's loop.
 *
 * Balance mode: the state is built again just before the exec (the one
 * probed is from before the client's answer), with the accept queue's
 * connections (acceptq_export: their fds, ids, the next id) and each
 * worker's channel (chan_export: both ends, the records of what is in
 * flight, its hello, its counters); their fds survive the exec too, and
 * the new image adopts them (acceptq_adopt, chan_adopt).  Between the two
 * images nothing is read: what a worker reports, and what the listeners
 * accept, waits in the kernel for the new image's loop.
 *
 * The new image builds its configuration from argv and the file as at
 * start, then, instead of binding and spawning, adopts the state (the
 * open_* steps and pool_start ask upgrade_take_* for each resource).  If
 * it cannot (a state it does not read, a socket that is not one, a step
 * that fails before it commits), it execs the image it came from again
 * through the fd of /proc/self/exe the old image passed it
 * (WPOOL_UPGRADE_BACK_FD: HAProxy's wait mode is the idea), with the same
 * state and the reason in WPOOL_UPGRADE_FAILED, which that image reports
 * in status for the waiting client.  A binary that passes the probe and
 * then crashes after the exec, before it commits, goes back the same way:
 * a handler for the fatal signals (guard_arm) execs the old image.
 *
 * Owns: a copy of the start's argv and the path started from; the state
 * read at start (until adopted); the record of upgrades that status shows.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <json-c/json.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "pool_mode.h"

static json_object *ksteer_json(const struct ksteer *);

#define UPGRADE_FORMAT		1
#define ENV_FD			"WPOOL_UPGRADE_FD"
#define ENV_PROBE		"WPOOL_UPGRADE_PROBE"
#define ENV_BACK		"WPOOL_UPGRADE_BACK_FD"
#define ENV_FAILED		"WPOOL_UPGRADE_FAILED"
#define PROBE_OPT		"--upgrade-probe"
/*
 * What a probe that can adopt the state prints last: exiting 0 is not
 * enough (/bin/true does), the new binary must be a wpool that read it.
 */
#define PROBE_TOKEN		"wpool-upgrade-probe: can adopt format"
/*
 * And, on a line of its own after it, that it takes reuseport's eBPF
 * placement (ksteer.c) by fd: an image that does not would leave those
 * fds open for its workers to inherit, so they are handed only to one
 * that says so (an older image's own program then replaces the kernel's).
 */
#define PROBE_KSTEER		"wpool-upgrade-probe: takes reuseport-ebpf"
/* The probe must answer within this long, or the upgrade is refused. */
#define PROBE_TIMEOUT_MS	5000
/* What of the probe's stderr is kept for the client. */
#define PROBE_OUT_MAX		1024
/*
 * The modes handed over: inetd's connection processes are the master's
 * children with connections only the master knows of: refused.
 */
#define UPGRADABLE(m)	((m) == MODE_SHARED || (m) == MODE_REUSEPORT || \
			    (m) == MODE_BALANCE)


static struct {
	int	 argc;
	char	**argv;			/* a copy, for execve */
	char	 exe[PATH_MAX];		/* the binary wpool was started from */
	/*
	 * `-b systemd`'s LISTEN_FDS and LISTEN_FDNAMES, as they came (the
	 * expansion unsets them): the next image parses `-b systemd` again,
	 * with LISTEN_PID its own, and finds the same fds at 3...
	 */
	char	*listen_fds, *listen_names;
	char	 listen_pid[32];		/* "LISTEN_PID=N", the probe's */
	/* Read at start: the state handed over, until adopted. */
	json_object *state;
	bool	 probe;			/* WPOOL_UPGRADE_PROBE: check, exit */
	bool	 probe_opt;		/* argv had --upgrade-probe */
	int	 back_fd;		/* the image to go back to; -1 */
	bool	 committed;		/* adopted: no going back */
	char	 failed[256];		/* went back: why the new one did */
	/* Asked for: the exec waits until the client has its answer. */
	bool	 pending;
	char	 binary[PATH_MAX];
	char	*pending_state;
	bool	 ksteer_ok;		/* the probe said PROBE_KSTEER */
	/* What status shows. */
	unsigned upgrades;		/* done into this pid */
	unsigned attempts;		/* tried; the last one's serial */
	bool	 last_ok;
	char	 last_error[512];
	double	 last_mono;
	double	 asked_mono;		/* when the last one was asked */
	double	 last_seconds;
} up = { .back_fd = -1 };

/*
 * The probe runs `NEWBIN --upgrade-probe ARGS...`: a wpool from before
 * upgrades refuses the unknown option (exit 64) instead of starting a
 * pool.  Takes the option out of argv; returns the new argc.
 */
int
upgrade_init(int argc, char **argv)
{
	const char *v;
	long long pid;
	ssize_t	 n;
	int	 i;

	if (argc > 1 && strcmp(argv[1], PROBE_OPT) == 0) {
		up.probe_opt = true;
		memmove(argv + 1, argv + 2, (size_t)(argc - 1) *
		    sizeof(*argv));
		argc--;
	}
	up.argc = argc;
	up.argv = xcalloc((size_t)argc + 1, sizeof(char *));
	for (i = 0; i < argc; i++)
		up.argv[i] = xstrdup(argv[i]);
	/*
	 * Read now: once a package manager replaced the file, /proc/self/exe
	 * says "PATH (deleted)", and the new binary is the one at PATH.
	 */
	n = readlink("/proc/self/exe", up.exe, sizeof(up.exe) - 1);
	up.exe[n > 0 ? n : 0] = '\0';
	if ((v = getenv("LISTEN_PID")) != NULL && parse_int(v, 1, INT_MAX,
	    &pid) == 0 && pid == getpid() && getenv("LISTEN_FDS") != NULL) {
		xasprintf(&up.listen_fds, "LISTEN_FDS=%s", getenv("LISTEN_FDS"));
		if ((v = getenv("LISTEN_FDNAMES")) != NULL)
			xasprintf(&up.listen_names, "LISTEN_FDNAMES=%s", v);
	}
	return argc;
}

/*
 * The environment of the next image (or the probe): this one's without
 * WPOOL_UPGRADE_* and LISTEN_*, then extra (NULL-terminated), then
 * `-b systemd`'s LISTEN_* with LISTEN_PID=pid (0: the caller fills
 * up.listen_pid in, the probe in its child).  Free the array only.
 */
static char **
env_next(char *const *extra, pid_t pid)
{
	char	**envp, **e;
	size_t	 n = 4, i = 0;

	for (e = environ; *e != NULL; e++)
		n++;
	for (e = (char **)extra; *e != NULL; e++)
		n++;
	envp = xcalloc(n, sizeof(*envp));
	for (e = environ; *e != NULL; e++)
		if (strncmp(*e, "WPOOL_UPGRADE_", 14) != 0 &&
		    (up.listen_fds == NULL || strncmp(*e, "LISTEN_", 7) != 0))
			envp[i++] = *e;
	for (e = (char **)extra; *e != NULL; e++)
		envp[i++] = *e;
	if (up.listen_fds != NULL) {
		snprintf(up.listen_pid, sizeof(up.listen_pid), "LISTEN_PID=%d",
		    (int)pid);
		envp[i++] = up.listen_pid;
		envp[i++] = up.listen_fds;
		if (up.listen_names != NULL)
			envp[i++] = up.listen_names;
	}
	return envp;
}

/* --- the state -------------------------------------------------------- */

static json_object *
jint(long long v)
{
	return json_object_new_int64(v);
}

static json_object *
jdbl(double v)
{
	return json_object_new_double(v);
}

static long long
get_i(json_object *o, const char *k, long long dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static double
get_d(json_object *o, const char *k, double dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    (!json_object_is_type(v, json_type_double) &&
	    !json_object_is_type(v, json_type_int)))
		return dflt;
	return json_object_get_double(v);
}

static const char *
get_s(json_object *o, const char *k, const char *dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return dflt;
	return json_object_get_string(v);
}

static json_object *
get_a(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

static json_object *
fds_json(const int *fds, size_t n)
{
	json_object *a = json_object_new_array();
	size_t	 i;

	for (i = 0; i < n; i++)
		json_object_array_add(a, jint(fds[i]));
	return a;
}

static json_object *
slot_json(const struct pool *p, const struct slot *s)
{
	json_object *o = json_object_new_object(), *ex, *ch;
	const struct worker *w = s->cur;
	int	 i;

	json_object_object_add(o, "id", jint(s->id));
	json_object_object_add(o, "restarts", jint(s->restarts));
	ex = json_object_new_array();
	for (i = 0; i < SLOT_NEXIT_CAUSES; i++)
		json_object_array_add(ex, jint((long long)s->exits[i]));
	json_object_object_add(o, "exits", ex);
	json_object_object_add(o, "requests_done",
	    jint((long long)s->requests_done));
	json_object_object_add(o, "young_deaths", jint(s->young_deaths));
	json_object_object_add(o, "backoff", jdbl(s->backoff));
	json_object_object_add(o, "respawn_in", jdbl(s->respawn_at > 0 ?
	    s->respawn_at - now_mono() : -1));
	json_object_object_add(o, "has_exit", json_object_new_boolean(
	    s->has_exit));
	json_object_object_add(o, "last_code", jint(s->last_code));
	json_object_object_add(o, "last_signal", jint(s->last_signal));
	if (s->fds != NULL)
		json_object_object_add(o, "fds", fds_json(s->fds,
		    p->conf->nlisteners));
	if (w != NULL) {
		json_object *wo = json_object_new_object();

		json_object_object_add(wo, "pid", jint(w->pid));
		json_object_object_add(wo, "generation", jint(w->generation));
		json_object_object_add(wo, "started_mono",
		    jdbl(w->started_mono));
		json_object_object_add(wo, "started_real",
		    jdbl(w->started_real));
		json_object_object_add(wo, "ready_mono", jdbl(w->ready_mono));
		json_object_object_add(wo, "main_pid", jint(w->main_pid));
		json_object_object_add(wo, "status_text",
		    json_object_new_string(w->status_text));
		if (p->conf->mode == MODE_BALANCE && (ch = chan_export(
		    (struct pool *)p, (struct worker *)w)) != NULL)
			json_object_object_add(wo, "chan", ch);
		json_object_object_add(o, "worker", wo);
	}
	return o;
}

static int
output_json_cb(int fd, int dest, pid_t pid, const char *prefix, void *arg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "fd", jint(fd));
	json_object_object_add(o, "dest", jint(dest));
	json_object_object_add(o, "pid", jint(pid));
	json_object_object_add(o, "prefix", json_object_new_string(prefix));
	json_object_array_add(arg, o);
	return 0;
}

/* Everything the next image needs, as JSON; the caller frees it. */
static char *
state_build(struct pool *p)
{
	const struct conf *c = p->conf;
	json_object *o = json_object_new_object(), *a, *l;
	char	*s;
	size_t	 i;
	int	 id;

	/*
	 * balance: nothing staged (a dispatch flushes what it staged before
	 * it returns: this is a no-op but for the record); what cannot be
	 * sent stays queued, and the queue is handed over.
	 */
	if (c->mode == MODE_BALANCE)
		balance_flush(p);
	json_object_object_add(o, "format", jint(UPGRADE_FORMAT));
	json_object_object_add(o, "version",
	    json_object_new_string(WPOOL_VERSION));
	json_object_object_add(o, "pid", jint(getpid()));
	json_object_object_add(o, "mode",
	    json_object_new_string(mode_names[c->mode]));
	json_object_object_add(o, "target", jint(p->target));
	json_object_object_add(o, "generation", jint(p->generation));
	json_object_object_add(o, "restarts", jint((long long)p->restarts));
	json_object_object_add(o, "started_mono", jdbl(p->started_mono));
	json_object_object_add(o, "started_real", jdbl(p->started_real));
	/* The last reload (none runs: pool_still) and the failed ones. */
	l = json_object_new_object();
	json_object_object_add(l, "generation", jint(p->reload.generation));
	json_object_object_add(l, "failed",
	    json_object_new_boolean(p->reload.failed));
	json_object_object_add(l, "total", jint(p->reload.total));
	json_object_object_add(l, "done", jint(p->reload.done));
	json_object_object_add(l, "error",
	    json_object_new_string(p->reload.error));
	json_object_object_add(l, "started_mono",
	    jdbl(p->reload.started_mono));
	json_object_object_add(l, "finished_mono",
	    jdbl(p->reload.finished_mono));
	a = json_object_new_array();
	for (id = 0; id < p->nreload_failures; id++) {
		json_object *f = json_object_new_object();

		json_object_object_add(f, "generation",
		    jint(p->reload_failures[id].generation));
		json_object_object_add(f, "error", json_object_new_string(
		    p->reload_failures[id].error));
		json_object_array_add(a, f);
	}
	json_object_object_add(l, "failures", a);
	json_object_object_add(o, "reload", l);
	json_object_object_add(o, "upgrades", jint(up.upgrades));
	json_object_object_add(o, "attempt", jint(up.attempts + 1));
	json_object_object_add(o, "asked_mono", jdbl(now_mono()));
	a = json_object_new_array();
	for (i = 0; i < c->nlisteners; i++) {
		l = json_object_new_object();
		json_object_object_add(l, "spec",
		    json_object_new_string(c->listeners[i].spec));
		json_object_object_add(l, "fd", jint(c->listeners[i].fd));
		json_object_object_add(l, "address",
		    json_object_new_string(c->listeners[i].address));
		if (c->listeners[i].port != NULL)
			json_object_object_add(l, "port",
			    json_object_new_string(c->listeners[i].port));
		json_object_array_add(a, l);
	}
	json_object_object_add(o, "listeners", a);
	json_object_object_add(o, "group", fds_json(p->group,
	    (size_t)p->ngroup));
	a = json_object_new_array();
	for (id = 0; id < WPOOL_MAX_WORKERS; id++)
		if (p->slots[id].inited)
			json_object_array_add(a, slot_json(p, &p->slots[id]));
	json_object_object_add(o, "slots", a);
	if (c->mode == MODE_BALANCE && (l = acceptq_export(p)) != NULL)
		json_object_object_add(o, "balance", l);
	l = json_object_new_object();
	json_object_object_add(l, "fd", jint(control_fd(p)));
	json_object_object_add(l, "path",
	    json_object_new_string(p->control_path));
	json_object_object_add(o, "control", l);
	if (p->notify != NULL) {
		l = json_object_new_object();
		json_object_object_add(l, "fd", jint(notify_fd(p)));
		json_object_object_add(l, "path",
		    json_object_new_string(p->notify_path));
		json_object_object_add(o, "notify", l);
	}
	if (metrics_fd(p) >= 0) {
		l = json_object_new_object();
		json_object_object_add(l, "fd", jint(metrics_fd(p)));
		json_object_object_add(o, "metrics", l);
	}
	if (pool_ksteer(p) != NULL && up.ksteer_ok)
		json_object_object_add(o, "ksteer", ksteer_json(pool_ksteer(p)));
	/* The image to go back to runs with its own argv. */
	a = json_object_new_array();
	for (id = 0; id < up.argc; id++)
		json_object_array_add(a, json_object_new_string(up.argv[id]));
	json_object_object_add(o, "argv", a);
	a = json_object_new_array();
	output_export(output_json_cb, a);
	json_object_object_add(o, "output", a);
	s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/*
 * reuseport's eBPF placement (ksteer.c): its map, and each listener's
 * socket array and program, which the kernel would not let a new image
 * make again while the old program holds the sockets.
 */
static json_object *
ksteer_json(const struct ksteer *k)
{
	struct ksteer_fds f;
	json_object *o, *a, *l;
	size_t	 i;

	ksteer_fds(k, &f);
	o = json_object_new_object();
	json_object_object_add(o, "fd", jint(f.map));
	json_object_object_add(o, "migrate", json_object_new_boolean(f.migrate));
	a = json_object_new_array();
	for (i = 0; i < f.nl; i++) {
		l = json_object_new_object();
		json_object_object_add(l, "socks", jint(f.socks[i]));
		json_object_object_add(l, "prog", jint(f.prog[i]));
		json_object_object_add(l, "nslots", jint(f.nslots[i]));
		json_object_array_add(a, l);
	}
	json_object_object_add(o, "listeners", a);
	return o;
}

/*
 * Every fd the state names, for FD_CLOEXEC's sake: how many; the first
 * max of them into fds.
 */
static size_t
state_fd_list(json_object *st, int *fds, size_t max)
{
	json_object *a, *e, *f;
	size_t	 i, j, n = 0;
	static const char *const one[] = { "control", "notify", "metrics",
	    "ksteer" };

#define PUT(fd)	do {						\
	int	 fd_ = (fd);							\
									\
	if (fd_ >= 0 && n++ < max)					\
		fds[n - 1] = fd_;					\
} while (0)
	if ((a = get_a(st, "listeners")) != NULL)
		for (i = 0; i < json_object_array_length(a); i++)
			PUT((int)get_i(json_object_array_get_idx(a, i), "fd",
			    -1));
	if ((a = get_a(st, "slots")) != NULL)
		for (i = 0; i < json_object_array_length(a); i++) {
			e = json_object_array_get_idx(a, i);
			if (json_object_object_get_ex(e, "worker", &f) &&
			    json_object_object_get_ex(f, "chan", &f)) {
				PUT((int)get_i(f, "fd", -1));
				PUT((int)get_i(f, "peer", -1));
			}
			if ((f = get_a(e, "fds")) == NULL)
				continue;
			for (j = 0; j < json_object_array_length(f); j++)
				PUT(json_object_get_int(
				    json_object_array_get_idx(f, j)));
		}
	if (json_object_object_get_ex(st, "balance", &e) &&
	    (a = get_a(e, "queue")) != NULL)
		for (i = 0; i < json_object_array_length(a); i++)
			PUT((int)get_i(json_object_array_get_idx(a, i), "fd",
			    -1));
	for (i = 0; i < sizeof(one) / sizeof(one[0]); i++)
		if (json_object_object_get_ex(st, one[i], &e))
			PUT((int)get_i(e, "fd", -1));
	if (json_object_object_get_ex(st, "ksteer", &e) &&
	    (a = get_a(e, "listeners")) != NULL)
		for (i = 0; i < json_object_array_length(a); i++) {
			f = json_object_array_get_idx(a, i);
			PUT((int)get_i(f, "socks", -1));
			PUT((int)get_i(f, "prog", -1));
		}
	if ((a = get_a(st, "output")) != NULL)
		for (i = 0; i < json_object_array_length(a); i++)
			PUT((int)get_i(json_object_array_get_idx(a, i), "fd",
			    -1));
#undef PUT
	return n;
}

/* The fds the state names: a new array (*n of them; NULL if none). */
static int *
state_fd_array(json_object *st, size_t *n)
{
	int	*fds;

	if ((*n = state_fd_list(st, NULL, 0)) == 0)
		return NULL;
	fds = xcalloc(*n, sizeof(*fds));
	state_fd_list(st, fds, *n);
	return fds;
}

static void
state_fds(json_object *st, bool cloexec)
{
	size_t	 i, n;
	int	*fds = state_fd_array(st, &n);

	for (i = 0; i < n; i++)
		set_cloexec(fds[i], cloexec);
	free(fds);
}

/* A memfd holding s, at offset 0; -errno. */
static int
state_memfd(const char *s)
{
	size_t	 n = strlen(s), off = 0;
	ssize_t	 w;
	int	 fd;

	if ((fd = memfd_create("wpool-upgrade", MFD_CLOEXEC)) < 0)
		return -errno;
	while (off < n) {
		if ((w = write(fd, s + off, n - off)) < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -EIO;
		}
		off += (size_t)w;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/*
 * Whether this image can adopt state st under configuration c; the
 * probe's whole check, and the new image's before it touches anything
 * (then fds too: each must be open).
 */
static int
state_check(json_object *st, const struct conf *c, bool fds, char *err,
    size_t len)
{
	json_object *a, *l;
	long long fmt = get_i(st, "format", -1);
	const char *mode;
	size_t	 i;
	struct stat sb;

	if (fmt != UPGRADE_FORMAT) {
		snprintf(err, len, "state format %lld: this wpool (%s) reads "
		    "format %d", fmt, WPOOL_VERSION, UPGRADE_FORMAT);
		return -EPROTO;
	}
	mode = get_s(st, "mode", "?");
	if (strcmp(mode, mode_names[c->mode]) != 0) {
		snprintf(err, len, "the mode changed (%s to %s): a change of "
		    "mode needs a restart", mode, mode_names[c->mode]);
		return -EINVAL;
	}
	/* An older wpool says this of balance too: its probe refuses. */
	if (!UPGRADABLE(c->mode)) {
		snprintf(err, len, "--mode %s: not upgraded in place (its "
		    "connections pass through the master)", mode);
		return -EINVAL;
	}
	/* balance: the queue and the channels (a wpool that had none). */
	if (c->mode == MODE_BALANCE &&
	    !json_object_object_get_ex(st, "balance", &l)) {
		snprintf(err, len, "--mode balance: the state has no channels "
		    "(from a wpool that cannot hand them over)");
		return -EPROTO;
	}
	a = get_a(st, "listeners");
	if (a == NULL || json_object_array_length(a) != c->nlisteners) {
		snprintf(err, len, "the listeners changed (%zu to %zu): run "
		    "`wpool reload` first, or restart",
		    a != NULL ? json_object_array_length(a) : 0,
		    c->nlisteners);
		return -EINVAL;
	}
	for (i = 0; i < c->nlisteners; i++) {
		l = json_object_array_get_idx(a, i);
		if (strcmp(get_s(l, "spec", ""), c->listeners[i].spec) != 0) {
			snprintf(err, len, "listener %zu changed (%s to %s): "
			    "run `wpool reload` first, or restart", i,
			    get_s(l, "spec", "?"), c->listeners[i].spec);
			return -EINVAL;
		}
		if (fds && get_i(l, "fd", -1) >= 0 &&
		    fstat((int)get_i(l, "fd", -1), &sb) < 0) {
			snprintf(err, len, "listener %s: fd %lld was not handed "
			    "over", c->listeners[i].spec, get_i(l, "fd", -1));
			return -EBADF;
		}
	}
	if (!json_object_object_get_ex(st, "control", &l) ||
	    (fds && fstat((int)get_i(l, "fd", -1), &sb) < 0)) {
		snprintf(err, len, "the control socket was not handed over");
		return -EBADF;
	}
	if ((a = get_a(st, "slots")) == NULL) {
		snprintf(err, len, "the state has no workers' table");
		return -EPROTO;
	}
	/* balance: each worker's channel, both ends. */
	for (i = 0; fds && c->mode == MODE_BALANCE &&
	    i < json_object_array_length(a); i++) {
		json_object *w;

		if (!json_object_object_get_ex(json_object_array_get_idx(a, i),
		    "worker", &w))
			continue;
		if (!json_object_object_get_ex(w, "chan", &l) ||
		    fstat((int)get_i(l, "fd", -1), &sb) < 0 ||
		    fstat((int)get_i(l, "peer", -1), &sb) < 0) {
			snprintf(err, len, "worker pid %lld: its channel was "
			    "not handed over", get_i(w, "pid", 0));
			return -EBADF;
		}
	}
	return 0;
}

/* --- the new image ------------------------------------------------------ */

/* Reads fd (a memfd of the state) whole; NULL if it is not JSON. */
static json_object *
state_read(int fd, char *err, size_t len)
{
	json_object *o;
	struct stat sb;
	char	*buf;
	ssize_t	 n;
	size_t	 off = 0;

	if (fstat(fd, &sb) < 0 || sb.st_size <= 0 || sb.st_size > (64 << 20)) {
		snprintf(err, len, "%s=%d: not a state", ENV_FD, fd);
		return NULL;
	}
	buf = xcalloc((size_t)sb.st_size + 1, 1);
	while (off < (size_t)sb.st_size) {
		n = pread(fd, buf + off, (size_t)sb.st_size - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	o = json_tokener_parse(buf);
	free(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(err, len, "the state handed over is not JSON");
		return NULL;
	}
	return o;
}

static int
env_fd(const char *name)
{
	const char *v = getenv(name);
	long long n;

	if (v == NULL || parse_int(v, 0, INT_MAX, &n) < 0)
		return -1;
	return (int)n;
}

/*
 * The new image crashing while it takes over (a fault, an abort) would
 * take the pid, and the pool, with it: until it commits, a handler for
 * the fatal signals execs the old image instead, with the state as it
 * came.  Everything the handler needs is made beforehand (it may only
 * make async-signal-safe calls): the fds to keep open across the exec,
 * the old image's argv, and an environment whose WPOOL_UPGRADE_FAILED
 * names the signal.
 */
static const int guard_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
    SIGSYS };
#define GUARD_NSIGS	(sizeof(guard_sigs) / sizeof(guard_sigs[0]))

static struct {
	bool	 armed;
	int	 state_fd;		/* the state as it came */
	int	*fds;			/* to keep across the exec */
	size_t	 nfds;
	char	**argv;			/* the old image's */
	char	**envp;			/* [failed_at] is one of failed[] */
	size_t	 failed_at;
	char	*failed[GUARD_NSIGS];
	char	*env_fd;
	stack_t	 stack;
} guard = { .state_fd = -1 };

static void
guard_handler(int sig)
{
	sigset_t set;
	size_t	 i;

	for (i = 0; i < GUARD_NSIGS; i++)
		if (guard_sigs[i] == sig)
			guard.envp[guard.failed_at] = guard.failed[i];
	for (i = 0; i < guard.nfds; i++)
		fcntl(guard.fds[i], F_SETFD, 0);
	fcntl(guard.state_fd, F_SETFD, 0);
	/* The old image gets the mask the master had, not this handler's. */
	sigemptyset(&set);
	for (i = 0; i < GUARD_NSIGS; i++)
		sigaddset(&set, guard_sigs[i]);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	fexecve(up.back_fd, guard.argv, guard.envp);
	/* Returns: the signal's default action (SA_RESETHAND) follows. */
}

/* Before the new image touches anything: state fd sfd, as it came. */
static void
guard_arm(int sfd)
{
	struct sigaction sa;
	json_object *a;
	char	*extra[3];
	size_t	 i, n;

	if (up.back_fd < 0 || (a = get_a(up.state, "argv")) == NULL ||
	    (n = json_object_array_length(a)) == 0)
		return;
	guard.state_fd = sfd;
	guard.fds = state_fd_array(up.state, &guard.nfds);
	guard.argv = xcalloc(n + 1, sizeof(*guard.argv));
	for (i = 0; i < n; i++)
		guard.argv[i] = (char *)json_object_get_string(
		    json_object_array_get_idx(a, i));
	for (i = 0; i < GUARD_NSIGS; i++)
		xasprintf(&guard.failed[i], ENV_FAILED "=killed by SIG%s "
		    "after the exec, before it took over", signal_name(
		    guard_sigs[i]));
	xasprintf(&guard.env_fd, ENV_FD "=%d", sfd);
	extra[0] = guard.env_fd;
	extra[1] = guard.failed[0];
	extra[2] = NULL;
	guard.envp = env_next(extra, getpid());
	for (guard.failed_at = 0; guard.envp[guard.failed_at] !=
	    guard.failed[0]; guard.failed_at++)
		;
	/* A stack of its own: a fault may be a stack overflow. */
	guard.stack.ss_size = 64 * 1024;
	guard.stack.ss_sp = xcalloc(1, guard.stack.ss_size);
	sigaltstack(&guard.stack, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = guard_handler;
	sa.sa_flags = SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < GUARD_NSIGS; i++)
		sigaction(guard_sigs[i], &sa, NULL);
	guard.armed = true;
}

/* Committed, or going back by fall_back: the handler is not needed. */
static void
guard_disarm(void)
{
	stack_t	 off = { .ss_flags = SS_DISABLE };
	size_t	 i;

	if (!guard.armed)
		return;
	for (i = 0; i < GUARD_NSIGS; i++) {
		signal(guard_sigs[i], SIG_DFL);
		free(guard.failed[i]);
		guard.failed[i] = NULL;
	}
	sigaltstack(&off, NULL);
	free(guard.stack.ss_sp);
	free(guard.fds);
	free(guard.argv);
	free(guard.envp);
	free(guard.env_fd);
	close(guard.state_fd);
	memset(&guard, 0, sizeof(guard));
	guard.state_fd = -1;
}

/*
 * The new image cannot take over: back to the image it came from, with
 * the state (raw: the fd it came in, if it could not be read), that
 * image's own argv, and why.  Returns only if it cannot.
 */
static void
fall_back(const char *why, int raw)
{
	char	*env[3], **envp, **argv = up.argv;
	json_object *a;
	size_t	 n = 0, i = 0;
	int	 fd = raw;

	guard_disarm();
	log_error("upgrade: %s", why);
	if (up.back_fd < 0 || (up.state == NULL && raw < 0)) {
		log_error("upgrade: no image to go back to");
		return;
	}
	if (up.state != NULL) {
		fd = state_memfd(json_object_to_json_string_ext(up.state,
		    JSON_C_TO_STRING_PLAIN));
		if (fd < 0)
			return;
		state_fds(up.state, false);
		if ((a = get_a(up.state, "argv")) != NULL &&
		    json_object_array_length(a) > 0) {
			n = json_object_array_length(a);
			argv = xcalloc(n + 1, sizeof(*argv));
			for (i = 0; i < n; i++)
				argv[i] = (char *)json_object_get_string(
				    json_object_array_get_idx(a, i));
		}
	}
	set_cloexec(fd, false);
	xasprintf(&env[0], ENV_FD "=%d", fd);
	xasprintf(&env[1], ENV_FAILED "=%s", why);
	env[2] = NULL;
	envp = env_next(env, getpid());
	log_warnx("upgrade: going back to the image that was running");
	fexecve(up.back_fd, argv, envp);
	log_error("upgrade: cannot go back: %s", strerror(errno));
	if (up.state != NULL) {
		state_fds(up.state, true);
		close(fd);
	}
	if (argv != up.argv)
		free(argv);
	free(envp);
	free(env[0]);
	free(env[1]);
}

/*
 * At start, once the configuration is built: a probe checks the state and
 * exits (returns its status); an image started by an upgrade reads and
 * checks the state, going back to the old image if it cannot take it.
 * Returns -1 to carry on.
 */
int
upgrade_start(const struct conf *c)
{
	char	 err[512] = "";
	const char *f;
	int	 fd = env_fd(ENV_FD);

	if (fd < 0)
		return -1;
	up.probe = up.probe_opt || getenv(ENV_PROBE) != NULL;
	up.back_fd = env_fd(ENV_BACK);
	if (up.back_fd >= 0)
		set_cloexec(up.back_fd, true);
	if ((f = getenv(ENV_FAILED)) != NULL)
		strlcpy(up.failed, f, sizeof(up.failed));
	unsetenv(ENV_FD);
	unsetenv(ENV_PROBE);
	unsetenv(ENV_BACK);
	unsetenv(ENV_FAILED);
	set_cloexec(fd, true);
	up.state = state_read(fd, err, sizeof(err));
	if (up.state != NULL && state_check(up.state, c, !up.probe, err,
	    sizeof(err)) == 0) {
		if (up.probe || get_i(up.state, "pid", 0) == getpid()) {
			if (!up.probe) {
				guard_arm(fd);
				if (!guard.armed)
					close(fd);
				return -1;
			}
			close(fd);
			json_object_put(up.state);
			up.state = NULL;
			printf("%s %d\n%s\n", PROBE_TOKEN, UPGRADE_FORMAT,
			    PROBE_KSTEER);
			fflush(stdout);
			return 0;
		}
		snprintf(err, sizeof(err), "the state is pid %lld's, not "
		    "this process's", get_i(up.state, "pid", 0));
	}
	if (up.probe) {
		fprintf(stderr, "%s\n", err);
		json_object_put(up.state);
		up.state = NULL;
		close(fd);
		return 1;
	}
	if (up.failed[0] != '\0') {
		/* The old image cannot read its own state: nothing to do. */
		log_error("upgrade: %s", err);
		return 1;
	}
	fall_back(err, fd);
	return 1;
}

/* An image started by an upgrade, adopting (before it commits). */
bool
upgrade_adopting(void)
{
	return up.state != NULL && !up.committed;
}

/* A step of the new image's start failed: back to the old image. */
void
upgrade_abandon(const char *why)
{
	if (upgrade_adopting())
		fall_back(why, -1);
}

/*
 * Listener i's handed-over socket: 0 (l->fd, l->address set; fd -1 for
 * reuseport's, which the slots hold), or -ENOENT: bind it.
 */
int
upgrade_take_listener(struct listener *l, size_t i)
{
	json_object *a, *e;
	const char *port;

	if (!upgrade_adopting() || (a = get_a(up.state, "listeners")) == NULL ||
	    i >= json_object_array_length(a))
		return -ENOENT;
	e = json_object_array_get_idx(a, i);
	l->fd = (int)get_i(e, "fd", -1);
	if (l->fd >= 0)
		set_cloexec(l->fd, true);
	strlcpy(l->address, get_s(e, "address", l->spec), sizeof(l->address));
	/* reuseport's new slots must join the port bound at start. */
	if ((port = get_s(e, "port", NULL)) != NULL && l->port != NULL &&
	    strcmp(l->port, port) != 0) {
		free(l->port);
		l->port = xstrdup(port);
	}
	return 0;
}

/* The control socket handed over: its fd (path copied), or -ENOENT. */
int
upgrade_take_control(char *path, size_t len)
{
	json_object *e;
	int	 fd;

	if (!upgrade_adopting() ||
	    !json_object_object_get_ex(up.state, "control", &e))
		return -ENOENT;
	fd = (int)get_i(e, "fd", -1);
	strlcpy(path, get_s(e, "path", ""), len);
	set_cloexec(fd, true);
	return fd;
}

/* The notify socket handed over: its fd and "@name", or -ENOENT. */
int
upgrade_take_notify(char *name, size_t len)
{
	json_object *e;
	int	 fd;

	if (!upgrade_adopting() ||
	    !json_object_object_get_ex(up.state, "notify", &e))
		return -ENOENT;
	fd = (int)get_i(e, "fd", -1);
	strlcpy(name, get_s(e, "path", ""), len);
	set_cloexec(fd, true);
	return fd;
}

/* A socket handed over by the name of its owner ("metrics"), or -ENOENT. */
int
upgrade_take_fd(const char *what)
{
	json_object *e;
	int	 fd;

	if (!upgrade_adopting() ||
	    !json_object_object_get_ex(up.state, what, &e) ||
	    (fd = (int)get_i(e, "fd", -1)) < 0)
		return -ENOENT;
	set_cloexec(fd, true);
	return fd;
}

static bool ksteer_taken;

/* reuseport's eBPF placement handed over (once): 0, or -ENOENT. */
int
upgrade_take_ksteer(struct ksteer_fds *f)
{
	json_object *e, *a, *l;
	size_t	 i;

	if (!upgrade_adopting() || ksteer_taken ||
	    !json_object_object_get_ex(up.state, "ksteer", &e) ||
	    (f->map = (int)get_i(e, "fd", -1)) < 0)
		return -ENOENT;
	ksteer_taken = true;
	set_cloexec(f->map, true);
	f->migrate = json_object_object_get_ex(e, "migrate", &l) &&
	    json_object_get_boolean(l);
	f->nl = 0;
	a = get_a(e, "listeners");
	for (i = 0; a != NULL && i < json_object_array_length(a) &&
	    i < WPOOL_MAX_LISTENERS; i++) {
		l = json_object_array_get_idx(a, i);
		f->socks[i] = (int)get_i(l, "socks", -1);
		f->prog[i] = (int)get_i(l, "prog", -1);
		f->nslots[i] = (int)get_i(l, "nslots", 0);
		if (f->socks[i] >= 0)
			set_cloexec(f->socks[i], true);
		if (f->prog[i] >= 0)
			set_cloexec(f->prog[i], true);
		f->nl++;
	}
	return 0;
}

/* Handed over but not taken (no TCP slot adopted it): closed. */
static void
ksteer_untaken(void)
{
	struct ksteer_fds f;
	size_t	 i;

	if (upgrade_take_ksteer(&f) < 0)
		return;
	close(f.map);
	for (i = 0; i < f.nl; i++) {
		if (f.socks[i] >= 0)
			close(f.socks[i]);
		if (f.prog[i] >= 0)
			close(f.prog[i]);
	}
}

static int
adopt_slot(struct pool *p, json_object *e)
{
	struct slot_adopt a;
	json_object *ex, *w, *f;
	int	 fds[WPOOL_MAX_LISTENERS];
	size_t	 i;

	memset(&a, 0, sizeof(a));
	a.id = (int)get_i(e, "id", -1);
	a.restarts = (unsigned)get_i(e, "restarts", 0);
	if ((ex = get_a(e, "exits")) != NULL)
		for (i = 0; i < SLOT_NEXIT_CAUSES &&
		    i < json_object_array_length(ex); i++)
			a.exits[i] = (unsigned long)json_object_get_int64(
			    json_object_array_get_idx(ex, i));
	a.requests_done = (unsigned long)get_i(e, "requests_done", 0);
	a.young_deaths = (unsigned)get_i(e, "young_deaths", 0);
	a.backoff = get_d(e, "backoff", 0);
	a.respawn_in = get_d(e, "respawn_in", -1);
	a.has_exit = get_i(e, "has_exit", 0) != 0;
	if (json_object_object_get_ex(e, "has_exit", &ex))
		a.has_exit = json_object_get_boolean(ex);
	a.last_code = (int)get_i(e, "last_code", -1);
	a.last_signal = (int)get_i(e, "last_signal", 0);
	if ((f = get_a(e, "fds")) != NULL &&
	    json_object_array_length(f) == p->conf->nlisteners) {
		for (i = 0; i < p->conf->nlisteners; i++) {
			fds[i] = json_object_get_int(
			    json_object_array_get_idx(f, i));
			set_cloexec(fds[i], true);
		}
		a.fds = fds;
	}
	if (json_object_object_get_ex(e, "worker", &w)) {
		a.pid = (pid_t)get_i(w, "pid", 0);
		a.generation = (unsigned)get_i(w, "generation", 0);
		a.started_mono = get_d(w, "started_mono", now_mono());
		a.started_real = get_d(w, "started_real", now_real());
		a.ready_mono = get_d(w, "ready_mono", now_mono());
		a.main_pid = (pid_t)get_i(w, "main_pid", 0);
		a.status_text = get_s(w, "status_text", "");
	}
	if (pool_adopt_slot(p, &a) < 0 || a.pid <= 0 ||
	    p->conf->mode != MODE_BALANCE)
		return 0;
	if (!json_object_object_get_ex(w, "chan", &ex) ||
	    chan_adopt(p, p->slots[a.id].cur, ex) < 0) {
		fall_back("worker's channel could not be adopted", -1);
		return -EIO;
	}
	return 0;
}

static int
adopt_output(struct pool *p, json_object *a)
{
	json_object *e;
	char	 prefix[96];
	size_t	 i, n;
	int	 fd;

	(void)p;
	for (i = 0; a != NULL && i < json_object_array_length(a); i++) {
		e = json_object_array_get_idx(a, i);
		fd = (int)get_i(e, "fd", -1);
		/* output_attach adds the brackets again. */
		strlcpy(prefix, get_s(e, "prefix", "? "), sizeof(prefix));
		n = strlen(prefix);
		if (n >= 3 && prefix[0] == '[' && prefix[n - 2] == ']') {
			prefix[n - 2] = '\0';
			memmove(prefix, prefix + 1, n - 2);
		}
		set_cloexec(fd, true);
		output_attach(fd, (int)get_i(e, "dest", STDERR_FILENO), prefix,
		    (pid_t)get_i(e, "pid", 0));
	}
	return 0;
}

/*
 * pool_start's step in an image started by an upgrade: the workers, their
 * slots and the counters, instead of starting any.  Returns 1 if it
 * adopted, 0 for a start as usual.
 */
int
upgrade_adopt(struct pool *p)
{
	struct pool_adopt pa;
	json_object *a, *g;
	size_t	 i, j;
	int	 id, kept = 0;

	if (!upgrade_adopting())
		return 0;
	memset(&pa, 0, sizeof(pa));
	pa.target = (int)get_i(up.state, "target", p->target);
	pa.generation = (unsigned)get_i(up.state, "generation", 0);
	pa.restarts = (unsigned long)get_i(up.state, "restarts", 0);
	pa.started_mono = get_d(up.state, "started_mono", p->started_mono);
	pa.started_real = get_d(up.state, "started_real", p->started_real);
	if (json_object_object_get_ex(up.state, "reload", &g) &&
	    json_object_is_type(g, json_type_object)) {
		json_object *f, *v;

		pa.reload.generation = (unsigned)get_i(g, "generation", 0);
		pa.reload.failed = json_object_object_get_ex(g, "failed", &v) &&
		    json_object_get_boolean(v);
		pa.reload.total = (int)get_i(g, "total", 0);
		pa.reload.done = (int)get_i(g, "done", 0);
		strlcpy(pa.reload.error, get_s(g, "error", ""),
		    sizeof(pa.reload.error));
		pa.reload.started_mono = get_d(g, "started_mono", 0);
		pa.reload.finished_mono = get_d(g, "finished_mono", 0);
		f = get_a(g, "failures");
		for (i = 0; f != NULL && i < json_object_array_length(f) &&
		    i < RELOAD_FAILURES; i++) {
			v = json_object_array_get_idx(f, i);
			pa.failures[i].generation = (unsigned)get_i(v,
			    "generation", 0);
			strlcpy(pa.failures[i].error, get_s(v, "error", ""),
			    sizeof(pa.failures[i].error));
			pa.nfailures++;
		}
	}
	pool_adopt(p, &pa);
	up.upgrades = (unsigned)get_i(up.state, "upgrades", 0);
	up.attempts = (unsigned)get_i(up.state, "attempt", 1);
	up.asked_mono = get_d(up.state, "asked_mono", now_mono());
	a = get_a(up.state, "slots");
	/* reuseport's group: in the kernel's order, so that steering holds. */
	g = get_a(up.state, "group");
	for (i = 0; g != NULL && i < json_object_array_length(g); i++) {
		id = json_object_get_int(json_object_array_get_idx(g, i));
		for (j = 0; j < json_object_array_length(a); j++)
			if (get_i(json_object_array_get_idx(a, j), "id", -1) ==
			    id)
				adopt_slot(p, json_object_array_get_idx(a, j));
	}
	for (j = 0; j < json_object_array_length(a); j++) {
		json_object *e = json_object_array_get_idx(a, j);

		if (get_a(e, "fds") == NULL)
			adopt_slot(p, e);
	}
	if (json_object_object_get_ex(up.state, "balance", &g))
		acceptq_adopt(p, g);
	adopt_output(p, get_a(up.state, "output"));
	ksteer_untaken();
	kept = p->nworkers;
	pool_adopt_done(p);
	up.committed = true;
	guard_disarm();
	if (up.back_fd >= 0)
		close(up.back_fd);
	up.back_fd = -1;
	up.last_mono = now_mono();
	up.last_seconds = up.last_mono - up.asked_mono;
	if (up.failed[0] != '\0') {
		up.last_ok = false;
		snprintf(up.last_error, sizeof(up.last_error), "the new image "
		    "could not take over: %s; the old one resumed", up.failed);
		log_warnx("upgrade: %s", up.last_error);
	} else {
		up.upgrades++;
		up.last_ok = true;
		up.last_error[0] = '\0';
		log_info("upgraded in place: master pid %d, %d worker%s kept "
		    "(%.3fs)", (int)getpid(), kept, kept == 1 ? "" : "s",
		    up.last_seconds);
	}
	json_object_put(up.state);
	up.state = NULL;
	/* balance: what was queued, and what came meanwhile. */
	balance_kick(p);
	return 1;
}

/* --- the old image ---------------------------------------------------- */

/*
 * The master runs --binary (the probe, then the exec) with its own
 * privileges, root's often: no other user may be able to change what runs.
 * The file and every directory above it must be root's or ours; the file
 * written by its owner only, a directory too unless it is sticky (/tmp:
 * others cannot touch names that are not theirs).  0, or -EPERM with why.
 */
static int
binary_trusted(const char *bin, char *err, size_t len)
{
	char	 real[PATH_MAX], *slash;
	struct stat sb;
	bool	 file = true;

	if (realpath(bin, real) == NULL) {
		snprintf(err, len, "cannot upgrade to %s: %s", bin,
		    strerror(errno));
		return -errno;
	}
	for (;;) {
		if (stat(real[0] != '\0' ? real : "/", &sb) < 0) {
			snprintf(err, len, "cannot upgrade to %s: %s: %s", bin,
			    real[0] != '\0' ? real : "/", strerror(errno));
			return -EPERM;
		}
		if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
			snprintf(err, len, "--binary %s: %s belongs to uid %u, "
			    "who could change what the master runs; expected "
			    "root's or uid %u's", bin, real[0] != '\0' ? real :
			    "/", (unsigned)sb.st_uid, (unsigned)geteuid());
			return -EPERM;
		}
		if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
		    (file || (sb.st_mode & S_ISVTX) == 0)) {
			snprintf(err, len, "--binary %s: %s can be written by "
			    "other users (mode %04o), who could change what the "
			    "master runs", bin, real[0] != '\0' ? real : "/",
			    (unsigned)(sb.st_mode & 07777));
			return -EPERM;
		}
		if (real[0] == '\0')
			return 0;
		file = false;
		slash = strrchr(real, '/');
		*slash = '\0';		/* "/usr/bin" -> "/usr" -> "" (/) */
	}
}


/* 0 if every slot is still (serving, empty, backing off); else why not. */
static int
pool_still(struct pool *p, char *err, size_t len)
{
	struct worker *w;
	int	 id;

	if (p->state != POOL_RUNNING || p->stop_delayed) {
		snprintf(err, len, "the pool is stopping");
		return -ESHUTDOWN;
	}
	if (p->reload.active) {
		snprintf(err, len, "busy: a reload to generation %u runs; "
		    "upgrade once it is done", p->reload.generation);
		return -EBUSY;
	}
	for (id = 0; id < WPOOL_MAX_WORKERS; id++) {
		const struct slot *s = &p->slots[id];

		if (!s->inited)
			continue;
		if (s->next != NULL || s->repl.old != NULL ||
		    s->repl.kind != REPLACE_NONE || s->draining) {
			snprintf(err, len, "busy: worker %d is being replaced",
			    id);
			return -EBUSY;
		}
	}
	TAILQ_FOREACH(w, &p->workers, entry) {
		if (p->conf->mode == MODE_BALANCE && !balance_has_channel(w)) {
			snprintf(err, len, "busy: worker %d (pid %d) lost its "
			    "channel", w->id, (int)w->pid);
			return -EBUSY;
		}
		if (w->state == W_READY && p->slots[w->id].cur == w)
			continue;
		snprintf(err, len, "busy: worker %d (pid %d) is %s", w->id,
		    (int)w->pid, worker_state_name(w->state));
		return -EBUSY;
	}
	return 0;
}

/* What a probe's wait status says, for the client. */
static void
probe_why(int status, const char *out, char *err, size_t len,
    const char *bin)
{
	char	 tail[PROBE_OUT_MAX];
	size_t	 n;

	/* Its first line: what a wpool says of a state it refuses. */
	strlcpy(tail, out, sizeof(tail));
	tail[strcspn(tail, "\n")] = '\0';
	n = strlen(tail);
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	if (WIFSIGNALED(status))
		snprintf(err, len, "the new binary %s crashed in its probe "
		    "(SIG%s)%s%s", bin, signal_name(WTERMSIG(status)),
		    n > 0 ? ": " : "", tail);
	else
		snprintf(err, len, "the new binary %s refused the state (exit "
		    "%d)%s%s", bin, WEXITSTATUS(status), n > 0 ? ": " : "",
		    tail);
}

/*
 * Runs bin as a probe of state s: 0 if it exits 0 within
 * PROBE_TIMEOUT_MS; else -errno and why.  The master waits for it (it
 * is short); the workers serve on meanwhile.
 */
static int
probe(const char *bin, const char *s, char *err, size_t len)
{
	char	 out[PROBE_OUT_MAX] = "", *extra[3], **envp, **argv;
	size_t	 nout = 0;
	int	 a;
	struct pollfd pfd;
	double	 deadline;
	int	 sfd, pipefd[2], status = 0, r;
	ssize_t	 k;
	pid_t	 pid;

	if ((sfd = state_memfd(s)) < 0) {
		snprintf(err, len, "cannot hold the state: %s", strerror(-sfd));
		return sfd;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = -errno;
		close(sfd);
		snprintf(err, len, "cannot probe: %s", strerror(-r));
		return r;
	}
	xasprintf(&extra[0], ENV_FD "=%d", sfd);
	extra[1] = ENV_PROBE "=1";
	extra[2] = NULL;
	envp = env_next(extra, 0);
	argv = xcalloc((size_t)up.argc + 2, sizeof(*argv));
	argv[0] = up.argv[0];
	argv[1] = PROBE_OPT;
	for (a = 1; a < up.argc; a++)
		argv[a + 1] = up.argv[a];
	if ((pid = fork()) == 0) {
		sigset_t all;

		/* Its signals as a new process's; its output to the pipe. */
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		/* A group of its own: a timeout ends what it started too. */
		setpgid(0, 0);
		dup2(pipefd[1], STDERR_FILENO);
		dup2(pipefd[1], STDOUT_FILENO);
		set_cloexec(sfd, false);
		/* -b systemd: the sockets are meant for the probe too. */
		snprintf(up.listen_pid, sizeof(up.listen_pid), "LISTEN_PID=%d",
		    (int)getpid());
		execve(bin, argv, envp);
		dprintf(pipefd[1], "cannot run it: %s\n", strerror(errno));
		_exit(EXIT_NOEXEC);
	}
	r = pid < 0 ? -errno : 0;
	close(pipefd[1]);
	close(sfd);
	free(extra[0]);
	free(envp);
	free(argv);
	if (pid < 0) {
		close(pipefd[0]);
		snprintf(err, len, "cannot fork the probe: %s", strerror(-r));
		return r;
	}
	deadline = now_mono() + PROBE_TIMEOUT_MS / 1000.0;
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	for (;;) {
		int	 left = (int)((deadline - now_mono()) * 1000);

		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pipefd[0]);
			snprintf(err, len, "the new binary %s did not answer its "
			    "probe within %ds", bin, PROBE_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			break;
		if (pfd.revents == 0)
			continue;
		k = read(pipefd[0], out + nout, sizeof(out) - 1 - nout);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		nout += (size_t)k;
		if (nout >= sizeof(out) - 1)
			nout = 0;	/* keep the end of it */
		out[nout] = '\0';
	}
	close(pipefd[0]);
	/* EOF: it is exiting (or closed its output and hangs). */
	while ((r = (int)waitpid(pid, &status, WNOHANG)) == 0 &&
	    now_mono() < deadline)
		poll(NULL, 0, 5);
	if (r == 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		snprintf(err, len, "the new binary %s did not answer its probe "
		    "within %ds", bin, PROBE_TIMEOUT_MS / 1000);
		return -ETIMEDOUT;
	}
	/* What it left running in its group ends with it. */
	kill(-pid, SIGKILL);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		char	 want[64];

		snprintf(want, sizeof(want), "%s %d\n", PROBE_TOKEN,
		    UPGRADE_FORMAT);
		if (strstr(out, want) != NULL) {
			up.ksteer_ok = strstr(out, PROBE_KSTEER "\n") != NULL;
			return 0;
		}
		snprintf(err, len, "the new binary %s exited 0 from its probe "
		    "without saying it can adopt the state: not a wpool that "
		    "upgrades in place", bin);
		return -EINVAL;
	}
	probe_why(status, out, err, len, bin);
	return -EINVAL;
}

/*
 * `wpool upgrade` or SIGUSR2: checks and probes bin (NULL: the binary
 * wpool was started from); 0 and the serial the client follows in status,
 * the exec then waiting for upgrade_run; -errno and why otherwise, with
 * the pool untouched.
 */
int
upgrade_request(struct pool *p, const char *bin, unsigned *serial,
    char *err, size_t len)
{
	struct stat sb;
	int	 r;

	if (bin == NULL || *bin == '\0')
		bin = up.exe;
	if (up.pending) {
		snprintf(err, len, "busy: an upgrade is under way");
		return -EBUSY;
	}
	if (*bin != '/') {
		snprintf(err, len, "--binary %s: expected an absolute path",
		    bin);
		return -EINVAL;
	}
	if (!UPGRADABLE(p->conf->mode)) {
		snprintf(err, len, "--mode %s: not upgraded in place (its "
		    "connections pass through the master); restart it",
		    mode_names[p->conf->mode]);
		return -EOPNOTSUPP;
	}
	if (stat(bin, &sb) < 0) {
		r = -errno;
		snprintf(err, len, "cannot upgrade to %s: %s", bin,
		    strerror(errno));
		return r;
	}
	if (!S_ISREG(sb.st_mode) || access(bin, X_OK) < 0) {
		snprintf(err, len, "cannot upgrade to %s: %s", bin,
		    S_ISREG(sb.st_mode) ? strerror(errno) :
		    "not a regular file");
		return -EACCES;
	}
	/* The binary wpool was started from is trusted as it was then. */
	if (bin != up.exe && (r = binary_trusted(bin, err, len)) < 0)
		return r;
	if ((r = pool_still(p, err, len)) < 0)
		return r;
	free(up.pending_state);
	up.ksteer_ok = false;
	up.pending_state = state_build(p);
	if ((r = probe(bin, up.pending_state, err, len)) < 0) {
		free(up.pending_state);
		up.pending_state = NULL;
		log_warnx("upgrade refused: %s", err);
		return r;
	}
	strlcpy(up.binary, bin, sizeof(up.binary));
	up.pending = true;
	if (serial != NULL)
		*serial = up.attempts + 1;
	return 0;
}

/* Whether an upgrade waits for upgrade_run. */
bool
upgrade_pending(void)
{
	return up.pending;
}

/*
 * The exec itself, once the client has its answer.  Returns only if
 * execve failed: the pool carries on as it was.
 */
void
upgrade_run(struct pool *p)
{
	json_object *st;
	char	*env[3], **envp;
	int	 sfd, back;

	if (!up.pending)
		return;
	up.pending = false;
	/*
	 * The state as of now: the probe checked one from before the
	 * client's answer, and in balance mode connections came and went.
	 */
	if (pool_still(p, up.last_error, sizeof(up.last_error)) < 0) {
		up.attempts++;
		goto failed;
	}
	free(up.pending_state);
	up.pending_state = state_build(p);
	up.attempts++;
	up.asked_mono = now_mono();
	st = json_tokener_parse(up.pending_state);
	if (st == NULL || (sfd = state_memfd(up.pending_state)) < 0) {
		json_object_put(st);
		snprintf(up.last_error, sizeof(up.last_error), "cannot hold "
		    "the state");
		goto failed;
	}
	/* Kept open across exec, to come back to; O_RDONLY: fexecve. */
	back = open("/proc/self/exe", O_RDONLY);
	output_flush_all();
	log_info("upgrading: exec %s (pid %d, %d worker%s)", up.binary,
	    (int)getpid(), p->nworkers, p->nworkers == 1 ? "" : "s");
	sdnotify_upgrading(p, false);
	xasprintf(&env[0], ENV_FD "=%d", sfd);
	xasprintf(&env[1], ENV_BACK "=%d", back);
	env[2] = NULL;
	if (back < 0) {
		free(env[1]);
		env[1] = NULL;
	}
	envp = env_next(env, getpid());
	state_fds(st, false);
	set_cloexec(sfd, false);
	execve(up.binary, up.argv, envp);
	snprintf(up.last_error, sizeof(up.last_error), "cannot exec %s: %s",
	    up.binary, strerror(errno));
	sdnotify_upgrading(p, true);
	state_fds(st, true);
	json_object_put(st);
	close(sfd);
	if (back >= 0)
		close(back);
	free(env[0]);
	free(env[1]);
	free(envp);
failed:
	log_warnx("upgrade: %s; carrying on", up.last_error);
	up.last_ok = false;
	up.last_mono = now_mono();
	up.last_seconds = up.last_mono - up.asked_mono;
	free(up.pending_state);
	up.pending_state = NULL;
}

/* status's "upgrade": what the client waits for. */
void
upgrade_status(json_object *o)
{
	json_object *u = json_object_new_object();

	json_object_object_add(u, "upgrades", jint(up.upgrades));
	json_object_object_add(u, "attempts", jint(up.attempts));
	if (up.attempts > 0) {
		json_object_object_add(u, "last_ok",
		    json_object_new_boolean(up.last_ok));
		json_object_object_add(u, "seconds", jdbl(up.last_seconds));
		if (up.last_error[0] != '\0')
			json_object_object_add(u, "error",
			    json_object_new_string(up.last_error));
	}
	json_object_object_add(o, "upgrade", u);
}

/* What upgrade_init copied, at exit (leak checkers). */
void
upgrade_free(void)
{
	int	 i;

	guard_disarm();
	for (i = 0; i < up.argc; i++)
		free(up.argv[i]);
	free(up.argv);
	up.argv = NULL;
	up.argc = 0;
	free(up.pending_state);
	up.pending_state = NULL;
	json_object_put(up.state);
	up.state = NULL;
}
