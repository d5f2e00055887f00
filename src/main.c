/*
 * main.c: chooses between running a pool and the control client, sets up
 * the master in order (validate, pidfile, bind, then spawn), and is the
 * only place that exits with a status.
 */
#include <sys/prctl.h>
#include <sys/stat.h>

#include <err.h>
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

static int
run_pool(int argc, char **argv, bool check)
{
	/* Static: they live until exit, and leak checkers can see them. */
	static struct conf c;
	static struct pool p;
	int	 pidfd = -1;
	char	 err[1024];
	size_t	 i;
	pid_t	 other;
	int	 r, status;

	conf_defaults(&c);
	r = cli_parse(argc, argv, &c, err, sizeof(err));
	if (r == 1)
		return 0;
	if (r == 0 && c.config != NULL) {
		/* The file first, then the command line on top of it. */
		char	 *file = xstrdup(c.config), **fargv = NULL;
		size_t	 nfile;

		conf_free(&c);
		conf_defaults(&c);
		if (conf_read(&c, file, &fargv, err, sizeof(err)) < 0) {
			fprintf(stderr, "wpool: %s\n", err);
			free(file);
			return EXIT_USAGE;
		}
		free(file);
		nfile = c.nlisteners;
		r = cli_parse(argc, argv, &c, err, sizeof(err));
		if (r == 0 && c.nlisteners > nfile) {
			/* -b on the command line replaces the file's. */
			for (i = 0; i < nfile; i++)
				listener_free(&c.listeners[i]);
			memmove(c.listeners, c.listeners + nfile,
			    (c.nlisteners - nfile) * sizeof(*c.listeners));
			c.nlisteners -= nfile;
		}
		if (c.argv == NULL)
			c.argv = fargv;
		else if (fargv != NULL) {
			/* A command after -- replaces the file's. */
			char	**a;

			for (a = fargv; *a != NULL; a++)
				free(*a);
			free(fargv);
		}
	}
	if (r < 0) {
		fprintf(stderr, "wpool: %s\n", err);
		fprintf(stderr, "Try 'wpool --help' for more information.\n");
		return EXIT_USAGE;
	}
	if (c.argv != NULL && strcmp(c.argv[0], "check") == 0 &&
	    c.argv > argv && c.argv < argv + argc &&
	    strcmp(c.argv[-1], "--") != 0) {
		fprintf(stderr, "wpool: 'check' goes first: wpool check "
		    "[OPTIONS] [--] [COMMAND]; to run a program called check, "
		    "put it after '--'\n");
		return EXIT_USAGE;
	}
	if (c.argv != NULL && client_is_command(c.argv[0]) &&
	    c.argv > argv && c.argv < argv + argc &&
	    strcmp(c.argv[-1], "--") != 0) {
		fprintf(stderr, "wpool: '%s' is a control command and takes "
		    "only -s/--control and --name before it; to run a program "
		    "called %s, put it after '--'\n", c.argv[0], c.argv[0]);
		return EXIT_USAGE;
	}
	for (i = 0; i < c.nlisteners; i++)
		if (c.listeners[i].type == L_SYSTEMD) {
			if ((r = listener_expand_systemd(&c.listeners,
			    &c.nlisteners, i, err, sizeof(err))) < 0) {
				fprintf(stderr, "wpool: %s\n", err);
				return EXIT_USAGE;
			}
			i += (size_t)r - 1;
		}
	if (cli_validate(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "wpool: %s\n", err);
		return EXIT_USAGE;
	}
	log_init(c.name, c.log_level);
	if (!check)
		setproctitle("-wpool: master %s (%s)", c.name, c.argv[0]);
	if (check) {
		struct cpu_info ci;

		/*
		 * What a run finds out before binding, short of binding:
		 * whether the command can be run, and whether adopted fds
		 * are listening sockets.
		 */
		if (c.argv != NULL && (r = spawn_lookup(c.argv[0],
		    c.chdir)) < 0) {
			log_error("cannot run '%s': %s", c.argv[0],
			    strerror(-r));
			return r == -ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
		}
		for (i = 0; i < c.nlisteners; i++)
			if (c.listeners[i].type == L_FD &&
			    listener_open(&c.listeners[i], c.backlog, false,
			    err, sizeof(err)) < 0) {
				fprintf(stderr, "%s: %s\n", c.name, err);
				return 1;
			}
		cpu_usable(&ci, c.fallback_cpus);
		conf_print(stdout, &c, &ci);
		return 0;
	}

	if (c.mode == MODE_INETD && (r = spawn_lookup(c.argv[0],
	    c.chdir)) < 0) {
		log_error("cannot run '%s': %s", c.argv[0], strerror(-r));
		return r == -ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
	}
	if (c.pidfile != NULL && (r = pid_file_open(c.pidfile, &pidfd,
	    &other, err, sizeof(err))) < 0) {
		if (r == -EEXIST && other > 0)
			log_error("another wpool (pid %d) holds the pid "
			    "file %s", (int)other, c.pidfile);
		else if (r == -EEXIST)
			/* Locked, but its pid could not be read. */
			log_error("another process holds the pid file "
			    "%s (it is locked)", c.pidfile);
		else
			log_error("%s", err);
		/* A pid file in a place another user controls is a bad value. */
		return r == -EPERM ? EXIT_USAGE : 1;
	}

	/* Every listener is bound before anything is started. */
	for (i = 0; i < c.nlisteners; i++) {
		struct listener *l = &c.listeners[i];

		if (listener_open(l, c.backlog, c.mode == MODE_REUSEPORT, err,
		    sizeof(err)) < 0) {
			fprintf(stderr, "%s: %s\n", c.name, err);
			while (i-- > 0) {
				if (c.listeners[i].type == L_UNIX)
					unlink(c.listeners[i].path);
				listener_close(&c.listeners[i]);
			}
			if (pidfd >= 0)
				pid_file_remove(pidfd, c.pidfile);
			return 1;
		}
		log_info("listening on %s (%s, fd %zu)", l->address, l->name,
		    3 + i);
	}

	/* Orphans of workers come back to us to be reaped, as under PID 1. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	if (pidfd >= 0 && (r = pid_file_write(pidfd, getpid())) < 0)
		log_warnx("cannot write pid file %s: %s", c.pidfile,
		    strerror(-r));
	if ((r = loop_init()) < 0) {
		log_error("cannot start the event loop: %s", strerror(-r));
		return 1;
	}
	/* From here on, a stalled log reader must not stall the master. */
	log_outputs_init();
	pool_init(&p, &c);
	if (control_open(&p, c.control, err, sizeof(err)) < 0) {
		log_error("%s", err);
		status = 1;
		goto out;
	}
	if (c.metrics != NULL && metrics_open(&p, c.metrics, err,
	    sizeof(err)) < 0) {
		log_error("--metrics: %s", err);
		status = 1;
		goto out;
	}
	if (notify_open(&p, err, sizeof(err), NULL, 0) < 0)
		log_warnx("%s; workers get no NOTIFY_SOCKET", err);
	if (c.ready == READY_NOTIFY && p.notify_path == NULL) {
		log_error("--ready notify needs the notify socket");
		status = 1;
		goto out;
	}
	if ((r = balance_init(&p, err, sizeof(err))) < 0) {
		log_error("%s", err);
		status = 1;
		goto out;
	}
	if ((r = pool_start(&p)) < 0) {
		log_error("cannot start: %s", strerror(-r));
		status = 1;
		goto out;
	}
	status = pool_run(&p);
	output_close_all();
	log_info("stopped");
out:
	control_close();
	metrics_close();
	notify_close();
	for (i = 0; i < c.nlisteners; i++) {
		if (c.listeners[i].type == L_UNIX)
			unlink(c.listeners[i].path);
		listener_close(&c.listeners[i]);
	}
	if (pidfd >= 0)
		pid_file_remove(pidfd, c.pidfile);
	return status;
}

extern char **environ;

int
main(int argc, char **argv)
{
	const char *control = NULL, *name = NULL;
	bool	 val;
	int	 i, cmd;

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
