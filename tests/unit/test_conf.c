/*
 * test_conf.c: the INI config file (-c) into struct conf: [pool] keys by
 * their long option names, [listen] and [listen.NAME] sections, [env],
 * the command split like a shell would, and errors that read
 * "FILE:LINE: ..." and name the key.  Files live under a mkdtemp dir.
 */
#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"
#include "tap.h"

static char base[] = "/tmp/wpool-unit-conf.XXXXXX";
static char path[PATH_MAX];
static char errbuf[1024];
static int file_no;

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
free_argv(char **argv)
{
	char	**a;

	if (argv == NULL)
		return;
	for (a = argv; *a != NULL; a++)
		free(*a);
	free(argv);
}

static size_t
argv_len(char **argv)
{
	size_t	 n = 0;

	while (argv != NULL && argv[n] != NULL)
		n++;
	return n;
}

/* Writes a new config file and reads it into c (on the defaults). */
static int
read_conf(struct conf *c, char ***argv, const char *text)
{
	FILE	*f;

	snprintf(path, sizeof(path), "%s/wpool-%d.ini", base, ++file_no);
	if ((f = fopen(path, "w")) != NULL) {
		fputs(text, f);
		fclose(f);
	}
	conf_defaults(c);
	*argv = NULL;
	errbuf[0] = '\0';
	return conf_read(c, path, argv, errbuf, sizeof(errbuf));
}

/* ---- conf_split_command ---- */

static void
test_split(void)
{
	char	**v = NULL;
	int	 r;

	r = conf_split_command("./srv --msg \"hello world\" 'a b' c\\ d", &v,
	    errbuf, sizeof(errbuf));
	is_int(r, 0, "split: quotes and a backslash");
	is_int(argv_len(v), 5, "5 words");
	if (argv_len(v) == 5) {
		is_str(v[0], "./srv", "word 0");
		is_str(v[1], "--msg", "word 1");
		is_str(v[2], "hello world", "word 2: double quotes");
		is_str(v[3], "a b", "word 3: single quotes");
		is_str(v[4], "c d", "word 4: backslash-space");
		ok(v[5] == NULL, "NULL-terminated");
	}
	free_argv(v);

	v = NULL;
	r = conf_split_command("  a\t b  ", &v, errbuf, sizeof(errbuf));
	is_int(r, 0, "split: blanks around");
	ok(argv_len(v) == 2 && strcmp(v[0], "a") == 0 &&
	    strcmp(v[1], "b") == 0, "two words a, b");
	free_argv(v);

	v = NULL;
	r = conf_split_command("x\"y z\"'w' \"q\\\"uote\\\\\" '$HOME' "
	    "\"\\$PATH\" \"a\\nb\"", &v, errbuf, sizeof(errbuf));
	is_int(r, 0, "split: adjacent quotes and escapes");
	is_int(argv_len(v), 5, "5 words");
	if (argv_len(v) == 5) {
		is_str(v[0], "xy zw", "quotes join one word");
		is_str(v[1], "q\"uote\\", "\\\" and \\\\ inside double quotes");
		is_str(v[2], "$HOME", "no expansion in single quotes");
		is_str(v[3], "$PATH", "\\$ inside double quotes");
		is_str(v[4], "a\\nb", "other backslashes kept inside double "
		    "quotes");
	}
	free_argv(v);

	v = NULL;
	r = conf_split_command("prog '' \"\"", &v, errbuf, sizeof(errbuf));
	is_int(r, 0, "split: empty quoted words");
	is_int(argv_len(v), 3, "empty quotes are words, like a shell's");
	if (argv_len(v) == 3)
		ok(v[1][0] == '\0' && v[2][0] == '\0', "and they are empty");
	free_argv(v);

	v = NULL;
	r = conf_split_command("prog 'it''s'", &v, errbuf, sizeof(errbuf));
	ok(r == 0 && argv_len(v) == 2 && strcmp(v[1], "its") == 0,
	    "'it''s' is its");
	free_argv(v);

	v = (char **)&errbuf;	/* must stay untouched on refusal */
	r = conf_split_command("", &v, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "split: empty command refused");
	ok(v == (char **)&errbuf, "the output is left");
	ok(strstr(errbuf, "empty") != NULL, "'the command is empty': %s",
	    errbuf);
	r = conf_split_command("   \t ", &v, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "split: only blanks refused");
	r = conf_split_command("echo \"abc", &v, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "split: unterminated double quote refused");
	ok(strstr(errbuf, "unterminated") != NULL, "says unterminated: %s",
	    errbuf);
	r = conf_split_command("echo 'abc", &v, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "split: unterminated single quote refused");
	ok(v == (char **)&errbuf, "the output is left");
}

/* ---- conf_read ---- */

static void
test_full_file(void)
{
	struct conf c;
	char	**argv;
	int	 r;

	r = read_conf(&c, &argv,
	    "; a comment\n"
	    "# another\n"
	    "[pool]\n"
	    "name = web\n"
	    "workers = 3\n"
	    "mode = shared\n"
	    "restart-delay = 0.5\n"
	    "max-restart-delay = 1m\n"
	    "stop-timeout = 20\n"
	    "stop-signal = QUIT\n"
	    "ready = notify\n"
	    "reload-batch = 2\n"
	    "no-restart = true\n"
	    "log-prefix = yes\n"
	    "max-memory = 1G\n"
	    "verbose = on\n"
	    "command = ./srv --msg \"hello world\" 'a b' c\\ d\n"
	    "\n"
	    "[listen]\n"
	    "bind = 127.0.0.1:8080\n"
	    "name = http\n"
	    "nodelay = true\n"
	    "backlog = 64\n"
	    "\n"
	    "[listen.api]\n"
	    "bind = unix:/tmp/wpool-unit-api.sock\n"
	    "mode = 0660\n"
	    "\n"
	    "[env]\n"
	    "APP_ENV = production\n"
	    "EMPTY =\n"
	    "WITH_SPACES = a b c\n");
	is_int(r, 0, "a full config file reads");
	if (r != 0)
		printf("#   err: %s\n", errbuf);
	is_str(c.name, "web", "name");
	is_int(c.workers, 3, "workers");
	is_int(c.mode, MODE_SHARED, "mode");
	is_dbl(c.restart_delay, 0.5, "restart-delay");
	is_dbl(c.max_restart_delay, 60, "max-restart-delay 1m");
	is_dbl(c.stop_timeout, 20, "stop-timeout");
	is_int(c.stop_signal, SIGQUIT, "stop-signal");
	is_int(c.ready, READY_NOTIFY, "ready");
	is_int(c.reload_batch, 2, "reload-batch");
	is_int(c.no_restart, 1, "no-restart = true");
	is_int(c.log_prefix, 1, "log-prefix = yes");
	ok(c.max_memory == 1ULL << 30, "max-memory 1G");
	is_int(c.log_level, LOG_DEBUG, "verbose = on");
	is_int(argv_len(argv), 5, "command: 5 words");
	if (argv_len(argv) == 5) {
		is_str(argv[0], "./srv", "command word 0");
		is_str(argv[2], "hello world", "command word 2");
		is_str(argv[4], "c d", "command word 4");
	}
	is_int(c.nlisteners, 2, "two listeners");
	if (c.nlisteners == 2) {
		is_str(c.listeners[0].spec, "127.0.0.1:8080", "[listen] bind");
		is_str(c.listeners[0].name, "http", "[listen] name = http");
		ok(c.listeners[0].nodelay, "[listen] nodelay = true");
		is_int(c.listeners[0].backlog, 64, "[listen] backlog = 64");
		is_int(c.listeners[1].type, L_UNIX, "[listen.api] unix");
		is_str(c.listeners[1].path, "/tmp/wpool-unit-api.sock",
		    "[listen.api] path");
		is_str(c.listeners[1].name, "api",
		    "[listen.api]: name from the section");
		is_int(c.listeners[1].mode, 0660, "[listen.api] mode = 0660");
	}
	is_int(c.nenv, 3, "three [env] entries");
	if (c.nenv == 3) {
		is_str(c.env[0], "APP_ENV=production", "env 0");
		is_str(c.env[1], "EMPTY=", "env 1: empty value");
		is_str(c.env[2], "WITH_SPACES=a b c", "env 2: inner spaces");
	}
	free_argv(argv);
	conf_free(&c);
}

static void
test_listen_sections(void)
{
	struct conf c;
	char	**argv;
	int	 r;

	r = read_conf(&c, &argv,
	    "[listen]\n"
	    "bind = 127.0.0.1:8080\n"
	    "bind = 127.0.0.1:8081\n");
	is_int(r, 0, "two binds in one [listen] section");
	is_int(c.nlisteners, 2, "make two listeners");
	if (c.nlisteners == 2) {
		is_str(c.listeners[0].port, "8080", "first port");
		is_str(c.listeners[1].port, "8081", "second port");
	}
	ok(argv == NULL, "no command in the file: argv NULL");
	conf_free(&c);

	r = read_conf(&c, &argv,
	    "[listen]\n"
	    "bind = 127.0.0.1:8080\n"
	    "name = a\n"
	    "nodelay = true\n"
	    "bind = 127.0.0.1:8081\n"
	    "name = b\n");
	is_int(r, 0, "two binds, each with a name");
	if (c.nlisteners == 2) {
		is_str(c.listeners[0].name, "a", "first: name a");
		ok(c.listeners[0].nodelay, "first: nodelay");
		is_str(c.listeners[1].name, "b", "second: name b");
		ok(!c.listeners[1].nodelay, "second: options do not carry over");
	} else
		ok(0, "two listeners: %zu", c.nlisteners);
	conf_free(&c);

	/* One section per listener, as DESIGN section 6 shows. */
	r = read_conf(&c, &argv,
	    "[listen]\n"
	    "bind = 127.0.0.1:8080\n"
	    "name = http\n"
	    "\n"
	    "[listen]\n"
	    "bind = 127.0.0.1:8443\n");
	is_int(r, 0, "two [listen] sections");
	is_int(c.nlisteners, 2, "make two listeners");
	if (c.nlisteners == 2) {
		is_str(c.listeners[0].name, "http", "first: name http");
		ok(c.listeners[1].name == NULL, "second [listen] without name= "
		    "does not inherit 'http' (got '%s')",
		    c.listeners[1].name ? c.listeners[1].name : "(null)");
		r = cli_validate(&c, errbuf, sizeof(errbuf));
		ok(r != 0 || c.argv == NULL, "(validate needs a command)");
	}
	conf_free(&c);

	r = read_conf(&c, &argv,
	    "[listen.web]\n"
	    "bind = :8080\n"
	    "[listen.admin]\n"
	    "bind = unix:/tmp/wpool-unit-admin.sock\n"
	    "[listen.metrics]\n"
	    "bind = 127.0.0.1:9100\n"
	    "name = prom\n");
	is_int(r, 0, "three [listen.NAME] sections");
	is_int(c.nlisteners, 3, "make three listeners");
	if (c.nlisteners == 3) {
		is_str(c.listeners[0].name, "web", "[listen.web]");
		is_str(c.listeners[1].name, "admin", "[listen.admin]");
		is_str(c.listeners[2].name, "prom", "name = overrides the "
		    "section's");
	}
	conf_free(&c);

	r = read_conf(&c, &argv,
	    "[listen]\n"
	    "bind = 127.0.0.1:8080\n"
	    "v6only = false\n"
	    "freebind\n"
	    "rcvbuf = 256K\n");
	is_int(r, 0, "flags: false, and a bare key");
	if (c.nlisteners == 1) {
		ok(!c.listeners[0].v6only, "v6only = false");
		ok(c.listeners[0].freebind, "bare freebind is true");
		is_int(c.listeners[0].rcvbuf, 256 * 1024, "rcvbuf = 256K");
	}
	conf_free(&c);
}

/* An error: -EINVAL (or the given code), "FILE:LINE: " and a needle. */
static void
conf_bad(const char *what, const char *text, int line, const char *needle)
{
	struct conf c;
	char	**argv;
	char	 prefix[PATH_MAX + 32];
	int	 r;

	r = read_conf(&c, &argv, text);
	is_int(r, -EINVAL, "%s: refused", what);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	ok(strncmp(errbuf, prefix, strlen(prefix)) == 0,
	    "%s: error starts with FILE:%d: (%s)", what, line, errbuf);
	ok(strstr(errbuf, needle) != NULL, "%s: error names '%s'", what,
	    needle);
	ok(argv == NULL, "%s: no command handed out", what);
	free_argv(argv);
	conf_free(&c);
}

static void
test_errors(void)
{
	struct conf c;
	char	**argv;
	int	 r;

	conf_bad("unknown section",
	    "[pool]\nworkers = 2\n[bogus]\nx = 1\n", 3, "bogus");
	conf_bad("unknown key",
	    "[pool]\nworkers = 2\nworkerz = 2\n", 3, "workerz");
	conf_bad("bad value",
	    "[pool]\nname = web\nworkers = 0\n", 3, "workers");
	conf_bad("bad value names the value",
	    "[pool]\nstop-timeout = soon\n", 2, "'soon'");
	conf_bad("bad signal",
	    "[pool]\nstop-signal = FOO\n", 2, "stop-signal");
	conf_bad("bad bool",
	    "[pool]\nno-restart = maybe\n", 2, "no-restart");
	conf_bad("key without value",
	    "[pool]\nworkers\n", 2, "workers");
	conf_bad("key outside any section",
	    "workers = 2\n", 1, "workers");
	conf_bad("bind in [pool]",
	    "[pool]\nbind = :80\n", 2, "bind");
	/* Built from cli.c's table: every [pool] key, in the table's order. */
	conf_bad("unknown key lists the table's [pool] keys",
	    "[pool]\nworkerz = 2\n", 2, "unknown key 'workerz' in [pool]: "
	    "expected name, workers, fallback-cpus, memory-per-worker, mode, "
	    "balancer, backlog, max-queue, restart-delay, max-restart-delay, "
	    "min-uptime, no-restart, stop-signal, stop-timeout, "
	    "shutdown-delay, min-ready, ready, ready-timeout, reload-batch, "
	    "watchdog, max-requests, max-requests-jitter, max-memory, "
	    "max-crashes, user, chdir, log-prefix, cpu-affinity, shim, control, "
	    "pidfile, metrics, quiet, verbose or command");
	conf_bad("a command-line-only option is an unknown key",
	    "[pool]\nhelp = 1\n", 2, "unknown key 'help' in [pool]");
	conf_bad("config in [pool] points to the command line",
	    "[pool]\nconfig = x.ini\n", 2, "config: not a [pool] key (use "
	    "the command line)");
	conf_bad("env in [pool] points to [env]",
	    "[pool]\nenv = A=1\n", 2, "env: not a [pool] key (use [env])");
	conf_bad("quiet and verbose both true",
	    "[pool]\nverbose = yes\nquiet = false\nquiet\n", 4, "quiet: "
	    "'quiet' and 'verbose' are both true: give one or the other");
	conf_bad("a bare key that needs a value",
	    "[pool]\nstop-signal\n", 2, "stop-signal: a value is required "
	    "(stop-signal = VALUE)");
	conf_bad("a mode-only key is still a key, refused by validate later",
	    "[pool]\nbalancer = random\n", 2, "balancer: invalid value "
	    "'random': expected least-conn, round-robin or ip-hash");
	conf_bad("command twice",
	    "[pool]\ncommand = a\ncommand = b\n", 3, "command");
	conf_bad("unterminated quote in the command",
	    "[pool]\ncommand = echo \"hi\n", 2, "command");
	conf_bad("empty command",
	    "[pool]\ncommand =\n", 2, "command");
	conf_bad("bad [env] name",
	    "[env]\nGOOD = 1\n1BAD = x\n", 3, "1BAD");
	conf_bad("[listen] key before bind",
	    "[listen]\nname = x\nbind = :80\n", 2, "bind");
	conf_bad("unknown [listen] key",
	    "[listen]\nbind = :80\nbogus = 1\n", 3, "bogus");
	conf_bad("bad [listen] flag value",
	    "[listen]\nbind = :80\nnodelay = perhaps\n", 3, "nodelay");
	conf_bad("syntax error",
	    "[pool]\nworkers = 2\n[broken\n", 3, "");
	conf_bad("error after good lines keeps its own line",
	    "[pool]\n\n\n; c\nworkers = 2\n\nmode = fast\n", 7, "mode");

	/* A bad listener is reported at its own bind line. */
	conf_bad("bad bind at the end of the file",
	    "[pool]\nworkers = 2\n[listen]\nbind = 8080\n", 4, "8080");
	conf_bad("bad bind followed by another section",
	    "[listen]\nbind = 127.0.0.1:99999\n\n[pool]\nworkers = 2\n", 2,
	    "99999");
	conf_bad("bad listener option",
	    "[listen]\nbind = unix:/tmp/s\nmode = 999\n", 3, "999");

	/* A file that cannot be read names itself. */
	conf_defaults(&c);
	argv = NULL;
	snprintf(path, sizeof(path), "%s/no-such-file.ini", base);
	r = conf_read(&c, path, &argv, errbuf, sizeof(errbuf));
	is_int(r, -ENOENT, "missing file: -ENOENT");
	ok(strstr(errbuf, path) != NULL, "the error names the file: %s",
	    errbuf);
	ok(strstr(errbuf, "No such file") != NULL, "and says why");
	conf_free(&c);

	conf_defaults(&c);
	r = conf_read(&c, base, &argv, errbuf, sizeof(errbuf));
	ok(r < 0, "a directory is refused (%d): %s", r, errbuf);
	conf_free(&c);
}

static void
test_empty_and_comments(void)
{
	struct conf c;
	char	**argv;
	int	 r;

	r = read_conf(&c, &argv, "");
	is_int(r, 0, "an empty file reads");
	ok(argv == NULL && c.nlisteners == 0 && c.workers == 0,
	    "and changes nothing");
	conf_free(&c);

	r = read_conf(&c, &argv, "; only\n# comments\n\n[pool]\n");
	is_int(r, 0, "comments and an empty [pool] read");
	conf_free(&c);

	r = read_conf(&c, &argv, "[pool]\nworkers = 4 ; four\n");
	is_int(r, 0, "an inline ; comment");
	is_int(c.workers, 4, "is not part of the value");
	conf_free(&c);
}

int
main(void)
{
	test_split();
	if (mkdtemp(base) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return done_testing();
	}
	test_full_file();
	test_listen_sections();
	test_errors();
	test_empty_and_comments();
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
