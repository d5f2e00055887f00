/*
 * main.c: chooses between running a pool and the control client; a run is
 * three steps: load the configuration (command line over file, validated),
 * open the master's resources (pid file, listeners, loop, services), run
 * the pool.  The only place that exits with a status.
 */
#include <sys/prctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* Options the control client takes before its subcommand. */
static bool
client_global(const char *a, bool *takes_value)
{
	*takes_value = strcmp(a, "-s") == 0 || strcmp(a, "--control") == 0 ||
	    strcmp(a, "--name") == 0;
	return *takes_value || strncmp(a, "--control=", 10) == 0 ||
	    strncmp(a, "--name=", 7) == 0 || (strncmp(a, "-s", 2) == 0 &&
	    a[2] != '\0') || strcmp(a, "-q") == 0 || strcmp(a, "-v") == 0;
}

/* Index of the subcommand if argv asks for the control client, else 0. */
static int
find_client_command(int argc, char **argv)
{
	bool	 val;
	int	 i;

	for (i = 1; i < argc; i++) {
		if (client_global(argv[i], &val)) {
			i += val;
			continue;
		}
		return client_is_command(argv[i]) ? i : 0;
	}
	return 0;
}

/* A step's "carry on"; otherwise a step returns the exit status. */
#define GO_ON	(-1)

/* The master's whole state, from start-up to exit. */
struct master {
	struct conf conf;
	struct pool pool;
	int	 pidfd;		/* the pid file, locked; -1 without */
	size_t	 nopen;		/* listeners opened, in order */
};

/*
 * Every error wpool prints starts "NAME: error: ", as the log's do (NAME
 * is "wpool" until the configuration names the pool); a usage error
 * (exit 64) then points to --help, one of the config file or of what the
 * environment passed (plain_error) does not.
 */
static int
plain_error(const char *err)
{
	fprintf(stderr, "wpool: error: %s\n", err);
	return EXIT_USAGE;
}

static int
usage_error(const char *err)
{
	fprintf(stderr, "wpool: error: %s\n", err);
	fprintf(stderr, "Try 'wpool --help' for more information.\n");
	return EXIT_USAGE;
}

/* Step 1: the command line and the config file into c, validated. */
static int
load_conf(struct conf *c, int argc, char **argv)
{
	char	 err[1024];

	/* A reload builds its configuration from the same argv. */
	reconf_init(argc, argv);
	switch (conf_build(c, argc, argv, err, sizeof(err))) {
	case 0:
		break;
	case CONF_HELP:
		return 0;
	case CONF_E_FILE:
		/* "FILE:LINE: message", LISTEN_FDS: not the usage. */
		return plain_error(err);
	default:
		return usage_error(err);
	}
	log_init(c->name, c->log_level);
	return GO_ON;
}

/*
 * Whether the command can be run, as far as can be known before starting
 * it; interp_only: only a script's missing interpreter, which the exec
 * would report as the script missing (the rest the first worker finds).
 */
static int
lookup_status(const struct conf *c, bool interp_only)
{
	char	 err[1024];
	bool	 interp;
	int	 r;

	if ((r = spawn_check(c->argv[0], c->chdir, &interp, err,
	    sizeof(err))) == 0 || (interp_only && !interp))
		return GO_ON;
	log_error("%s", err);
	return r == -ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
}

/*
 * --shim: the library must be there, and the command able to take it
 * (not static, not Go).  A missing library is an installation's fault
 * (exit 1); a command that cannot be shimmed, a bad combination (64).
 */
static int
shim_status(const struct conf *c)
{
	char	 err[8192];

	if (!c->shim)
		return GO_ON;
	if (shim_find(err, sizeof(err)) < 0) {
		log_error("--shim: cannot find libwpool-shim.so (looked at "
		    "%s): build it with make, or install it with make install",
		    err);
		return 1;
	}
	if (shim_check_command(c, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return EXIT_USAGE;
	}
	return GO_ON;
}

/*
 * `wpool check`: what a run finds out before binding, short of binding
 * (whether the command can be run, whether adopted fds are listening
 * sockets), then the effective configuration.
 */
static int
check_conf(struct conf *c)
{
	struct cpu_info ci;
	char	 err[1024];
	size_t	 i;
	int	 r;

	if (c->argv != NULL && (r = lookup_status(c, false)) != GO_ON)
		return r;
	if ((r = shim_status(c)) != GO_ON)
		return r;
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].type == L_FD &&
		    listener_open(&c->listeners[i], c->backlog, false, err,
		    sizeof(err)) < 0) {
			log_error("%s", err);
			return 1;
		}
	cpu_usable(&ci, c->fallback_cpus);
	if (c->worker_memory > 0)
		cpu_memory_bound(&ci, c->worker_memory);
	conf_print(stdout, c, &ci);
	return 0;
}

static int
open_pidfile(struct master *m)
{
	const char *path = m->conf.pidfile;
	char	 err[1024];
	pid_t	 other;
	int	 r;

	if (path == NULL || (r = pid_file_open(path, &m->pidfd, &other, err,
	    sizeof(err))) == 0)
		return GO_ON;
	if (r == -EEXIST && other > 0)
		log_error("another wpool (pid %d) holds the pid file %s",
		    (int)other, path);
	else if (r == -EEXIST)
		/* Locked, but its pid could not be read. */
		log_error("another process holds the pid file %s (it is "
		    "locked)", path);
	else
		log_error("%s", err);
	/* A pid file in a place another user controls is a bad value. */
	return r == -EPERM ? EXIT_USAGE : 1;
}

/* Every listener is bound before anything is started. */
static int
open_listeners(struct master *m)
{
	struct conf *c = &m->conf;
	char	 err[1024];

	if (sdnotify_init(c, err, sizeof(err)) < 0)
		log_warnx("%s", err);
	for (m->nopen = 0; m->nopen < c->nlisteners; m->nopen++) {
		struct listener *l = &c->listeners[m->nopen];

		if (upgrade_take_listener(l, m->nopen) == 0) {
			log_info("kept %s (%s) across the upgrade", l->address,
			    l->name);
			continue;
		}
		if (sdnotify_listener_open(l, c->backlog, c->mode == MODE_REUSEPORT,
		    err, sizeof(err)) < 0) {
			log_error("%s", err);
			return 1;
		}
		log_info("listening on %s (%s, fd %zu)", l->address, l->name,
		    3 + m->nopen);
	}
	return GO_ON;
}

/* The control socket, /metrics, the notify socket, the balancer. */
static int
open_services(struct master *m)
{
	struct pool *p = &m->pool;
	char	 err[1024];

	if (control_open(p, m->conf.control, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (m->conf.metrics != NULL && metrics_open(p, m->conf.metrics, err,
	    sizeof(err)) < 0) {
		log_error("--metrics: %s", err);
		return 1;
	}
	if (notify_open(p, err, sizeof(err)) < 0)
		log_warnx("%s; workers get no NOTIFY_SOCKET", err);
	if (m->conf.ready == READY_NOTIFY && p->notify_path == NULL) {
		log_error("--ready notify needs the notify socket");
		return 1;
	}
	if (balance_init(p, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	return GO_ON;
}

/*
 * Step 2: the master's resources, in order: the pid file, every
 * listener, the event loop, then the sockets of the pool's services.
 */
static int
open_master(struct master *m)
{
	struct conf *c = &m->conf;
	int	 r;

	if ((r = lookup_status(c, c->mode != MODE_INETD)) != GO_ON ||
	    (r = shim_status(c)) != GO_ON)
		return r;
	if ((r = open_pidfile(m)) != GO_ON || (r = open_listeners(m)) != GO_ON)
		return r;
	/* Orphans of workers come back to us to be reaped, as under PID 1. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	if (m->pidfd >= 0 && (r = pid_file_write(m->pidfd, getpid())) < 0)
		log_warnx("cannot write pid file %s: %s", m->conf.pidfile,
		    strerror(-r));
	if ((r = loop_init()) < 0) {
		log_error("cannot start the event loop: %s", strerror(-r));
		return 1;
	}
	/* From here on, a stalled log reader must not stall the master. */
	log_outputs_init();
	pool_init(&m->pool, c);
	m->pool.loop = loop_state();
	m->pool.log = log_state();
	m->pool.out = output_state();
	m->pool.tree = tree_state();
	m->pool.sdnotify = sdnotify_state();
	return open_services(m);
}

/* Step 3: start the workers and supervise them until the pool stops. */
static int
run(struct master *m)
{
	int	 r, status;

	if ((r = pool_start(&m->pool)) < 0) {
		log_error("cannot start: %s", strerror(-r));
		return 1;
	}
	sdnotify_start(&m->pool);
	status = pool_run(&m->pool);
	tree_close();
	output_close_all();
	log_info("stopped");
	return status;
}

/* Undoes open_master, as far as it got. */
static void
close_master(struct master *m)
{
	struct listener *l;
	size_t	 i;

	control_close(&m->pool);
	metrics_close(&m->pool);
	notify_close(&m->pool);
	/* A reload may have changed them: the open ones are those with fds. */
	for (i = 0; i < m->conf.nlisteners; i++) {
		l = &m->conf.listeners[i];
		if (l->fd < 0)
			continue;
		if (l->type == L_UNIX && !sdnotify_stored(l->fd))
			unlink(l->path);
		listener_close(l);
	}
	sdnotify_close();
	if (m->pidfd >= 0)
		pid_file_remove(m->pidfd, m->conf.pidfile);
}

static int
run_pool(int argc, char **argv, bool check)
{
	/*
	 * Static: it lives until exit, and leak checkers can see it.  Zero-
	 * initialised (.bss), so that its 20 KiB cost RSS only where written.
	 */
	static struct master m;
	int	 status;

	m.pidfd = -1;
	if ((status = load_conf(&m.conf, argc, argv)) != GO_ON)
		return status;
	if (check)
		return check_conf(&m.conf);
	/* An upgrade's probe, or its new image (upgrade.c). */
	if ((status = upgrade_start(&m.conf)) >= 0)
		return status;
	setproctitle("-wpool: master %s (%s)", m.conf.name, m.conf.argv[0]);
	if ((status = open_master(&m)) == GO_ON)
		status = run(&m);
	else
		/* The new image of an upgrade: back to the old, if it can. */
		upgrade_abandon("the new image could not open its resources "
		    "(see the log)");
	close_master(&m);
	upgrade_free();
	return status;
}

int
main(int argc, char **argv)
{
	const char *control = NULL, *name = NULL;
	bool	 val;
	int	 i, cmd;

	/* Before setproctitle may reuse argv's memory: for an upgrade. */
	argc = upgrade_init(argc, argv);
	setproctitle_init(argc, argv, environ);
	if ((cmd = find_client_command(argc, argv)) > 0) {
		for (i = 1; i < cmd; i++) {
			if (!client_global(argv[i], &val))
				continue;
			if (strcmp(argv[i], "-q") == 0 ||
			    strcmp(argv[i], "-v") == 0)
				continue;
			if (strncmp(argv[i], "--name", 6) == 0)
				name = val ? argv[++i] : argv[i] + 7;
			else if (strncmp(argv[i], "--control", 9) == 0)
				control = val ? argv[++i] : argv[i] + 10;
			else
				control = val ? argv[++i] : argv[i] + 2;
		}
		exit(client_main(argc - cmd, argv + cmd, control, name));
	}
	/* `wpool check ...`: validate as a run would, start nothing. */
	if (argc > 1 && strcmp(argv[1], "check") == 0)
		exit(run_pool(argc - 1, argv + 1, true));
	exit(run_pool(argc, argv, false));
}
