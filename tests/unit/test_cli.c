/*
 * test_cli.c: parse.c's value parsers (durations, sizes, signals, worker
 * counts, integers, users, booleans, names) and the command line into struct conf: cli_parse, then
 * cli_validate.  Each parser returns 0 or -errno and writes its output
 * only on success, so every refusal also checks the output is untouched.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"
#include "tap.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define SENTINEL_D	-12345.0
#define SENTINEL_U	12345u

static void
duration_ok(const char *s, double want)
{
	double	 v = SENTINEL_D;
	int	 r = parse_duration(s, &v);

	is_int(r, 0, "parse_duration(\"%s\") succeeds", s);
	is_dbl(v, want, "parse_duration(\"%s\") = %g", s, want);
}

static void
duration_bad(const char *s)
{
	double	 v = SENTINEL_D;
	int	 r = parse_duration(s, &v);

	ok(r < 0, "parse_duration(\"%s\") refused (%d)", s, r);
	is_dbl(v, SENTINEL_D, "parse_duration(\"%s\") leaves the output", s);
}

static void
test_parse_duration(void)
{
	double	 v = SENTINEL_D;

	duration_ok("0", 0);
	duration_ok("0.5", 0.5);
	duration_ok(".25", 0.25);
	duration_ok("500ms", 0.5);
	duration_ok("2s", 2);
	duration_ok("1.5m", 90);
	duration_ok("2min", 120);
	duration_ok("1h", 3600);
	duration_ok("1us", 0.000001);
	duration_ok("10", 10);

	duration_bad("-1");
	duration_bad("abc");
	duration_bad("");
	duration_bad("1x");
	duration_bad("nan");
	duration_bad("NaN");
	duration_bad("inf");
	duration_bad("infinity");
	duration_bad("1e400");
	duration_bad(" 1");
	duration_bad("1 s");
	duration_bad("1s ");
	duration_bad("s");
	duration_bad("1e9");		/* 31 years: a typo, not a delay */
	duration_bad("1e9h");
	ok(parse_duration(NULL, &v) < 0, "parse_duration(NULL) refused");
}

static void
size_ok(const char *s, uint64_t want)
{
	uint64_t v = SENTINEL_U;
	int	 r = parse_size(s, &v);

	is_int(r, 0, "parse_size(\"%s\") succeeds", s);
	ok(v == want, "parse_size(\"%s\") = %llu", s, (unsigned long long)want);
	if (v != want)
		printf("#   got %llu\n", (unsigned long long)v);
}

static void
size_bad(const char *s)
{
	uint64_t v = SENTINEL_U;
	int	 r = parse_size(s, &v);

	ok(r < 0, "parse_size(\"%s\") refused (%d)", s, r);
	ok(v == SENTINEL_U, "parse_size(\"%s\") leaves the output", s);
}

static void
test_parse_size(void)
{
	size_ok("0", 0);
	size_ok("1024", 1024);
	size_ok("100B", 100);
	size_ok("512K", 512ULL << 10);
	size_ok("512M", 512ULL << 20);
	size_ok("1.5G", 3ULL << 29);
	size_ok("2GiB", 2ULL << 30);
	size_ok("1T", 1ULL << 40);
	size_ok("1kb", 1024);
	size_ok("1Kb", 1024);
	size_ok("1k", 1024);
	size_ok("1KiB", 1024);
	size_ok("1kib", 1024);
	size_ok("3mb", 3ULL << 20);
	size_ok("2g", 2ULL << 30);

	size_bad("12Q");
	size_bad("-1");
	size_bad("");
	size_bad("K");
	size_bad("1 K");
	size_bad(" 1K");
	size_bad("nan");
	size_bad("inf");
	size_bad("1e400");
	size_bad("18446744073709551616");	/* 2^64 */
	size_bad("16777216T");			/* 2^64 too */
	size_bad(NULL);
}

static void
signal_ok(const char *s, int want)
{
	int	 v = -1;
	int	 r = parse_signal(s, &v);

	is_int(r, 0, "parse_signal(\"%s\") succeeds", s);
	is_int(v, want, "parse_signal(\"%s\") = %d", s, want);
}

static void
signal_bad(const char *s)
{
	int	 v = -1;
	int	 r = parse_signal(s, &v);

	is_int(r, -EINVAL, "parse_signal(\"%s\") refused", s);
	is_int(v, -1, "parse_signal(\"%s\") leaves the output", s);
}

static void
test_parse_signal(void)
{
	char	 buf[32];
	int	 sig, v, bad_trips = 0;

	signal_ok("TERM", SIGTERM);
	signal_ok("SIGTERM", SIGTERM);
	signal_ok("term", SIGTERM);
	signal_ok("sigterm", SIGTERM);
	signal_ok("15", SIGTERM);
	signal_ok("9", SIGKILL);
	signal_ok("KILL", SIGKILL);
	signal_ok("HUP", SIGHUP);
	signal_ok("QUIT", SIGQUIT);
	signal_ok("USR1", SIGUSR1);
	signal_ok("SIGUSR2", SIGUSR2);
	signal_ok("WINCH", SIGWINCH);
	signal_ok("TTIN", SIGTTIN);
	signal_ok("IOT", SIGABRT);
	signal_ok("RTMIN+2", SIGRTMIN + 2);
	signal_ok("SIGRTMIN+0", SIGRTMIN);
	signal_ok("rtmin+1", SIGRTMIN + 1);
	snprintf(buf, sizeof(buf), "RTMIN+%d", SIGRTMAX - SIGRTMIN);
	signal_ok(buf, SIGRTMAX);
	snprintf(buf, sizeof(buf), "%d", SIGRTMAX);
	signal_ok(buf, SIGRTMAX);

	signal_bad("FOO");
	signal_bad("0");
	signal_bad("65");
	signal_bad("");
	signal_bad("SIG");
	signal_bad("-15");
	signal_bad("15x");
	signal_bad(" 15");
	signal_bad("TERM ");
	signal_bad("SIGSIGTERM");
	signal_bad("RTMIN+");
	signal_bad("RTMIN+-1");
	snprintf(buf, sizeof(buf), "RTMIN+%d", SIGRTMAX - SIGRTMIN + 1);
	signal_bad(buf);
	snprintf(buf, sizeof(buf), "%d", SIGRTMAX + 1);
	signal_bad(buf);
	signal_bad(NULL);

	is_str(signal_name(SIGTERM), "TERM", "signal_name(SIGTERM)");
	is_str(signal_name(SIGKILL), "KILL", "signal_name(SIGKILL)");
	is_str(signal_name(SIGABRT), "ABRT", "signal_name(SIGABRT), not IOT");
	is_str(signal_name(SIGWINCH), "WINCH", "signal_name(SIGWINCH)");
	is_str(signal_name(SIGRTMIN + 2), "RTMIN+2",
	    "signal_name(SIGRTMIN+2)");
	is_str(signal_name(SIGRTMIN), "RTMIN+0", "signal_name(SIGRTMIN)");
	/* Every signal's name reads back as the same signal. */
	for (sig = 1; sig <= SIGRTMAX; sig++) {
		const char *name = signal_name(sig);

		v = -1;
		if (name == NULL || name[0] == '\0' ||
		    strncmp(name, "SIG", 3) == 0 ||
		    parse_signal(name, &v) != 0 || v != sig) {
			printf("# signal %d: name \"%s\" reads back as %d\n",
			    sig, name ? name : "(null)", v);
			bad_trips++;
		}
	}
	is_int(bad_trips, 0, "signal_name round-trips through parse_signal "
	    "for 1..SIGRTMAX");
}

static void
workers_ok(const char *s, int want)
{
	int	 v = -1;
	int	 r = parse_workers(s, &v);

	is_int(r, 0, "parse_workers(\"%s\") succeeds", s);
	is_int(v, want, "parse_workers(\"%s\") = %d", s, want);
}

static void
workers_bad(const char *s)
{
	int	 v = -1;
	int	 r = parse_workers(s, &v);

	ok(r < 0, "parse_workers(\"%s\") refused (%d)", s, r);
	is_int(v, -1, "parse_workers(\"%s\") leaves the output", s);
}

static void
test_parse_workers(void)
{
	workers_ok("auto", 0);
	workers_ok("1", 1);
	workers_ok("4", 4);
	workers_ok("1024", 1024);

	workers_bad("0");
	workers_bad("1025");
	workers_bad("abc");
	workers_bad(" 3");
	workers_bad("3 ");
	workers_bad("+3");
	workers_bad("-3");
	workers_bad("");
	workers_bad("AUTO");
	workers_bad("0x10");
	workers_bad("2.5");
	workers_bad("99999999999999999999999");
	workers_bad(NULL);
}

static void
test_parse_int(void)
{
	long long v;

	v = 7;
	is_int(parse_int("5", 1, 10, &v), 0, "parse_int(5, 1..10)");
	is_int(v, 5, "parse_int(5) = 5");
	is_int(parse_int("1", 1, 10, &v), 0, "parse_int at the minimum");
	is_int(v, 1, "parse_int(1) = 1");
	is_int(parse_int("10", 1, 10, &v), 0, "parse_int at the maximum");
	is_int(v, 10, "parse_int(10) = 10");
	is_int(parse_int("-3", -5, 5, &v), 0, "parse_int negative in range");
	is_int(v, -3, "parse_int(-3) = -3");
	is_int(parse_int("9223372036854775807", 0, LLONG_MAX, &v), 0,
	    "parse_int LLONG_MAX");
	is_int(v, LLONG_MAX, "parse_int(LLONG_MAX)");
	is_int(parse_int("0065535", 0, 65535, &v), 0, "leading zeros are "
	    "decimal, not octal");
	is_int(v, 65535, "parse_int(0065535) = 65535");

	v = 7;
	is_int(parse_int("0", 1, 10, &v), -ERANGE, "below the minimum: "
	    "-ERANGE");
	is_int(parse_int("11", 1, 10, &v), -ERANGE, "above the maximum: "
	    "-ERANGE");
	is_int(parse_int("99999999999999999999", 0, LLONG_MAX, &v), -ERANGE,
	    "overflow: -ERANGE");
	is_int(parse_int("abc", 1, 10, &v), -EINVAL, "not a number: -EINVAL");
	is_int(parse_int("", 1, 10, &v), -EINVAL, "empty: -EINVAL");
	is_int(parse_int(NULL, 1, 10, &v), -EINVAL, "NULL: -EINVAL");
	is_int(parse_int(" 3", 1, 10, &v), -EINVAL, "leading space: -EINVAL");
	is_int(parse_int("3 ", 1, 10, &v), -EINVAL, "trailing space: -EINVAL");
	is_int(parse_int("+3", 1, 10, &v), -EINVAL, "plus sign: -EINVAL");
	is_int(parse_int("3x", 1, 10, &v), -EINVAL, "trailing junk: -EINVAL");
	is_int(parse_int("1.0", 1, 10, &v), -EINVAL, "fraction: -EINVAL");
	is_int(v, 7, "parse_int leaves the output on every refusal");

	/* The error code must not depend on an errno left by someone else. */
	errno = ERANGE;
	is_int(parse_int("abc", 1, 10, &v), -EINVAL, "not a number with a "
	    "stale errno ERANGE: still -EINVAL");
	errno = 0;
	is_int(parse_int("11", 1, 10, &v), -ERANGE, "out of range with errno "
	    "0 beforehand: -ERANGE");
}

/* parse_user and parse_bool: the output only on success, too. */
static void
test_parse_user_bool(void)
{
	uid_t	 uid = 4242;
	gid_t	 gid = 4343;
	bool	 found = true, b;

	is_int(parse_user("0:0", &uid, &gid, &found), 0, "parse_user(0:0)");
	ok(uid == 0 && gid == 0 && found, "0:0 is uid 0, gid 0");
	uid = 4242;
	gid = 4343;
	is_int(parse_user("0:no-such-group-wpool-unit", &uid, &gid, &found),
	    -ESRCH, "parse_user with an unknown group: -ESRCH");
	ok(uid == 4242 && gid == 4343 && !found, "and uid and gid are left "
	    "as they were (%u, %u)", (unsigned)uid, (unsigned)gid);
	is_int(parse_user("no-such-user-wpool-unit", &uid, &gid, &found),
	    -ENOENT, "parse_user with an unknown user: -ENOENT");
	ok(uid == 4242 && gid == 4343, "and uid and gid are left");

	b = false;
	is_int(parse_bool(NULL, &b), 0, "parse_bool(NULL): a bare key");
	ok(b, "a bare key is true");
	is_int(parse_bool("off", &b), 0, "parse_bool(off)");
	ok(!b, "off is false");
	b = true;
	is_int(parse_bool("maybe", &b), -EINVAL, "parse_bool(maybe) refused");
	ok(b, "and leaves the output");
	is_int(parse_name("inetd", mode_names), MODE_INETD, "mode inetd");
	is_str(balancer_names[parse_name("ip-hash", balancer_names)],
	    "ip-hash", "balancer ip-hash");
	is_int(parse_name("SHARED", mode_names), -EINVAL, "names are exact");
}

/* ---- cli_parse and cli_validate ---- */

static char errbuf[512];

static int
run_cli(struct conf *c, char **argv)
{
	int	 argc = 0;

	while (argv[argc] != NULL)
		argc++;
	conf_defaults(c);
	errbuf[0] = '\0';
	return cli_parse(argc, argv, c, errbuf, sizeof(errbuf));
}

static void
test_defaults(void)
{
	struct conf c;
	char	*argv[] = { "wpool", "./srv", NULL };

	is_int(run_cli(&c, argv), 0, "defaults: wpool ./srv parses");
	is_int(c.workers, 0, "default workers: auto (0)");
	is_int(c.fallback_cpus, 4, "default fallback-cpus 4");
	is_int(c.mode, MODE_SHARED, "default mode shared");
	is_str(balancer_names[c.balancer], "least-conn",
	    "default balancer least-conn");
	is_int(c.backlog, 1024, "default backlog 1024");
	is_int(c.max_queue, 1000, "default max-queue 1000");
	is_dbl(c.restart_delay, 0, "default restart-delay 0");
	is_dbl(c.max_restart_delay, 30, "default max-restart-delay 30");
	is_dbl(c.min_uptime, 5, "default min-uptime 5");
	is_int(c.no_restart, 0, "default restarts");
	is_int(c.stop_signal, SIGTERM, "default stop-signal TERM");
	is_dbl(c.stop_timeout, 10, "default stop-timeout 10");
	is_int(c.ready, READY_LISTEN, "default ready listen");
	is_dbl(c.ready_timeout, 60, "default ready-timeout 60");
	is_int(c.reload_batch, 1, "default reload-batch 1");
	is_int(c.nlisteners, 0, "default: no listener");
	is_int(c.nenv, 0, "default: no extra env");
	ok(c.watchdog == 0 && c.max_requests == 0 && c.max_memory == 0,
	    "default: watchdog, max-requests, max-memory off");
	is_int(c.log_level, LOG_INFO, "default log level info");
	ok(c.argv == &argv[1], "argv points at the command");
	is_int(cli_validate(&c, errbuf, sizeof(errbuf)), 0,
	    "defaults validate");
	is_str(c.name, "wpool", "default name wpool");
	conf_free(&c);
}

static void
test_full_command_line(void)
{
	struct conf c;
	char	*argv[] = { "wpool",
		"-n", "3",
		"-b", "127.0.0.1:8080",
		"--bind", "unix:/tmp/wpool-unit-x.sock,mode=0660,name=api",
		"-b", "udp://127.0.0.1:5353",
		"-m", "reuseport",
		"--balancer", "round-robin",
		"--backlog", "128",
		"--max-queue", "50",
		"--restart-delay", "500ms",
		"--max-restart-delay", "1m",
		"--min-uptime=2s",
		"--no-restart",
		"--stop-signal", "SIGQUIT",
		"--stop-timeout", "2.5",
		"--ready", "notify",
		"--ready-timeout", "30",
		"--reload-batch", "2",
		"--fallback-cpus", "6",
		"-s", "/tmp/wpool-unit.ctl",
		"--name", "web-1",
		"-C", "/",
		"-e", "APP_ENV=production",
		"--env", "EMPTY=",
		"-e", "EQ=a=b",
		"--watchdog", "15",
		"--max-memory", "512M",
		"--pidfile", "/tmp/wpool-unit.pid",
		"--log-prefix",
		"--metrics", "127.0.0.1:9100",
		"-v",
		"--", "./srv", "--port", "1", "-n", "9", NULL };
	int	 r, dd;

	for (dd = 0; strcmp(argv[dd], "--") != 0; dd++)
		;
	r = run_cli(&c, argv);
	is_int(r, 0, "a full command line parses");
	if (r != 0)
		printf("#   err: %s\n", errbuf);
	is_int(c.workers, 3, "workers 3");
	is_int(c.nlisteners, 3, "three listeners");
	if (c.nlisteners == 3) {
		is_int(c.listeners[0].type, L_TCP, "l0 is tcp");
		is_str(c.listeners[0].host, "127.0.0.1", "l0 host");
		is_str(c.listeners[0].port, "8080", "l0 port");
		is_str(c.listeners[0].spec, "127.0.0.1:8080", "l0 spec");
		is_int(c.listeners[1].type, L_UNIX, "l1 is unix");
		is_str(c.listeners[1].path, "/tmp/wpool-unit-x.sock",
		    "l1 path");
		is_int(c.listeners[1].mode, 0660, "l1 mode 0660");
		is_str(c.listeners[1].name, "api", "l1 name api");
		is_int(c.listeners[2].type, L_UDP, "l2 is udp");
	}
	is_int(c.mode, MODE_REUSEPORT, "mode reuseport");
	is_str(balancer_names[c.balancer], "round-robin",
	    "balancer round-robin");
	is_int(c.backlog, 128, "backlog 128");
	is_int(c.max_queue, 50, "max-queue 50");
	is_dbl(c.restart_delay, 0.5, "restart-delay 500ms");
	is_dbl(c.max_restart_delay, 60, "max-restart-delay 1m");
	is_dbl(c.min_uptime, 2, "min-uptime=2s (--opt=value form)");
	is_int(c.no_restart, 1, "no-restart");
	is_int(c.stop_signal, SIGQUIT, "stop-signal SIGQUIT");
	is_dbl(c.stop_timeout, 2.5, "stop-timeout 2.5");
	is_int(c.ready, READY_NOTIFY, "ready notify");
	is_dbl(c.ready_timeout, 30, "ready-timeout 30");
	is_int(c.reload_batch, 2, "reload-batch 2");
	is_int(c.fallback_cpus, 6, "fallback-cpus 6");
	is_str(c.control, "/tmp/wpool-unit.ctl", "control path");
	is_str(c.name, "web-1", "name");
	is_str(c.chdir, "/", "chdir");
	is_int(c.nenv, 3, "three env entries");
	if (c.nenv == 3) {
		is_str(c.env[0], "APP_ENV=production", "env 0");
		is_str(c.env[1], "EMPTY=", "env 1: an empty value");
		is_str(c.env[2], "EQ=a=b", "env 2: '=' in the value");
	}
	is_dbl(c.watchdog, 15, "watchdog 15");
	ok(c.max_memory == 512ULL << 20, "max-memory 512M");
	is_str(c.pidfile, "/tmp/wpool-unit.pid", "pidfile");
	is_int(c.log_prefix, 1, "log-prefix");
	is_str(c.metrics, "127.0.0.1:9100", "metrics");
	is_int(c.log_level, LOG_DEBUG, "-v: debug");
	ok(c.argv == &argv[dd + 1], "argv points just after --");
	if (c.argv != NULL) {
		is_str(c.argv[0], "./srv", "command argv[0]");
		is_str(c.argv[2], "1", "command argv[2]");
		is_str(c.argv[3], "-n", "options after -- belong to the command");
		ok(c.argv[5] == NULL, "command argv is NULL-terminated");
	}
	/* reuseport refuses the unix listener. */
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "validate: unix listener refused in reuseport mode");
	ok(strstr(errbuf, "reuseport") != NULL &&
	    strstr(errbuf, "/tmp/wpool-unit-x.sock") != NULL,
	    "the error names the mode and the listener: %s", errbuf);
	conf_free(&c);
}

static void
test_validate_ok(void)
{
	struct conf c;
	char	*argv[] = { "wpool", "-q", "-b", "127.0.0.1:0",
		"-b", "unix:/tmp/wpool-unit-y.sock,name=api", "-b", ":0",
		"--restart-delay", "40", "--max-requests", "10",
		"--max-requests-jitter", "5", "-m", "balance", "cmd", "arg", NULL };
	char	*argv2[] = { "wpool", "-b", "127.0.0.1:0", "-b", ":0",
		"--restart-delay", "40", "cmd", NULL };
	int	 r;

	/* balance mode: parse it, even if this version refuses it. */
	r = run_cli(&c, argv);
	is_int(r, 0, "balance-mode options parse");
	is_int(c.log_level, LOG_WARN, "-q: warnings only");
	is_int(c.mode, MODE_BALANCE, "mode balance");
	ok(c.max_requests == 10 && c.max_requests_jitter == 5,
	    "max-requests 10, jitter 5");
	ok(c.argv == &argv[16], "a command without --");
	conf_free(&c);

	r = run_cli(&c, argv2);
	is_int(r, 0, "shared mode with three kinds of listener parses");
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, 0, "and validates");
	if (r != 0)
		printf("#   err: %s\n", errbuf);
	if (c.nlisteners == 2) {
		is_str(c.listeners[0].name, "l0", "unnamed listener 0 is l0");
		is_str(c.listeners[1].name, "l1", "unnamed listener 1 is l1");
	}
	ok(c.max_restart_delay >= c.restart_delay,
	    "max-restart-delay raised to restart-delay (40)");
	conf_free(&c);
}

static void
test_run_subcommand(void)
{
	struct conf c;
	char	*a1[] = { "wpool", "run", "-n", "2", "--", "cmd", NULL };
	char	*a2[] = { "wpool", "--name", "x", "run", "-n", "2", "cmd", "-n",
		"5", NULL };
	char	*a3[] = { "wpool", "--", "run", "-n", "2", NULL };
	char	*a4[] = { "wpool", "-n", "2", "--", "status", NULL };
	char	*a5[] = { "wpool", "run", NULL };
	int	 r;

	r = run_cli(&c, a1);
	is_int(r, 0, "wpool run -n 2 -- cmd parses");
	is_int(c.workers, 2, "run: workers 2");
	ok(c.argv == &a1[5], "run: argv is cmd");
	is_int(cli_validate(&c, errbuf, sizeof(errbuf)), 0, "run: validates");
	conf_free(&c);

	r = run_cli(&c, a2);
	is_int(r, 0, "wpool --name x run -n 2 cmd -n 5 parses");
	is_str(c.name, "x", "options before run count");
	is_int(c.workers, 2, "options after the command are the command's");
	ok(c.argv == &a2[6], "argv is cmd -n 5");
	conf_free(&c);

	r = run_cli(&c, a3);
	is_int(r, 0, "wpool -- run -n 2 parses");
	ok(c.argv == &a3[2], "after --, 'run' is the command");
	is_int(c.workers, 0, "and -n 2 is its argument");
	conf_free(&c);

	r = run_cli(&c, a4);
	is_int(r, 0, "wpool -n 2 -- status parses");
	ok(c.argv == &a4[4], "after --, 'status' is the command");
	conf_free(&c);

	r = run_cli(&c, a5);
	is_int(r, 0, "wpool run (no command) parses");
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "but does not validate");
	ok(strstr(errbuf, "no command given") != NULL, "'no command given': "
	    "%s", errbuf);
	conf_free(&c);
}

static void
test_bad_values(void)
{
	static const struct {
		const char *opt, *name, *val;
	} cases[] = {
		{ "-n", "--workers", "0" },
		{ "-n", "--workers", "1025" },
		{ "-n", "--workers", "abc" },
		{ "--workers", "--workers", " 3" },
		{ "--workers", "--workers", "+3" },
		{ "--workers", "--workers", "" },
		{ "-b", "--bind", "8080" },
		{ "-b", "--bind", "127.0.0.1:99999" },
		{ "--bind", "--bind", "unix:" },
		{ "-m", "--mode", "prefork" },
		{ "--mode", "--mode", "SHARED" },
		{ "--balancer", "--balancer", "random" },
		{ "--backlog", "--backlog", "0" },
		{ "--backlog", "--backlog", "many" },
		{ "--max-queue", "--max-queue", "-1" },
		{ "--restart-delay", "--restart-delay", "-1" },
		{ "--restart-delay", "--restart-delay", "1x" },
		{ "--max-restart-delay", "--max-restart-delay", "nan" },
		{ "--min-uptime", "--min-uptime", "inf" },
		{ "--stop-signal", "--stop-signal", "FOO" },
		{ "--stop-signal", "--stop-signal", "0" },
		{ "--stop-timeout", "--stop-timeout", "1e400" },
		{ "--ready", "--ready", "maybe" },
		{ "--ready-timeout", "--ready-timeout", "0" },
		{ "--reload-batch", "--reload-batch", "0" },
		{ "--fallback-cpus", "--fallback-cpus", "0" },
		{ "--fallback-cpus", "--fallback-cpus", "2000" },
		{ "-s", "--control", "" },
		{ "--name", "--name", ".hidden" },
		{ "--name", "--name", "a b" },
		{ "--name", "--name", "a/b" },
		{ "-u", "--user", "no-such-user-wpool-unit" },
		{ "-u", "--user", "root:no-such-group-wpool-unit" },
		{ "-C", "--chdir", "" },
		{ "-e", "--env", "NOEQUALS" },
		{ "-e", "--env", "=value" },
		{ "--env", "--env", "1ABC=x" },
		{ "--env", "--env", "A-B=x" },
		{ "--watchdog", "--watchdog", "0" },
		{ "--max-requests", "--max-requests", "0" },
		{ "--max-requests-jitter", "--max-requests-jitter", "-1" },
		{ "--max-memory", "--max-memory", "12Q" },
		{ "--max-memory", "--max-memory", "0" },
		{ "--pidfile", "--pidfile", "" },
		{ "--metrics", "--metrics", "9100" },
		{ "--metrics", "--metrics", "unix:/tmp/m.sock" },
	};
	struct conf c;
	size_t	 i;
	int	 r;

	for (i = 0; i < NELEM(cases); i++) {
		char	*argv[] = { "wpool", (char *)cases[i].opt,
			(char *)cases[i].val, "--", "cmd", NULL };
		char	 quoted[64];

		r = run_cli(&c, argv);
		is_int(r, -EINVAL, "%s '%s' refused", cases[i].opt,
		    cases[i].val);
		snprintf(quoted, sizeof(quoted), "'%s'", cases[i].val);
		ok(strstr(errbuf, cases[i].name) != NULL &&
		    strstr(errbuf, quoted) != NULL,
		    "%s '%s': the error names the option and the value: %s",
		    cases[i].opt, cases[i].val, errbuf);
		conf_free(&c);
	}

	/* The exact shape, for one with a short form and one without. */
	{
		char	*argv[] = { "wpool", "-n", "abc", "cmd", NULL };

		run_cli(&c, argv);
		is_str(errbuf, "-n/--workers: invalid value 'abc': expected a "
		    "number from 1 to 1024 or 'auto'", "-n abc: exact message");
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "--workers=abc", "cmd", NULL };

		run_cli(&c, argv);
		ok(strncmp(errbuf, "-n/--workers: invalid value 'abc'", 33) == 0,
		    "--workers=abc names it -n/--workers: %s", errbuf);
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "--stop-timeout", "-2", "cmd",
			NULL };

		r = run_cli(&c, argv);
		is_int(r, -EINVAL, "--stop-timeout -2 refused");
		ok(strncmp(errbuf, "--stop-timeout: invalid value '-2': "
		    "expected ", 35) == 0, "--stop-timeout: exact prefix: %s",
		    errbuf);
		conf_free(&c);
	}

	/* Unknown options and missing values. */
	{
		char	*argv[] = { "wpool", "--foo", "cmd", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "--foo refused");
		is_str(errbuf, "unknown option '--foo'", "--foo: message");
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "--foo=1", "cmd", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "--foo=1 refused");
		ok(strstr(errbuf, "--foo") != NULL, "--foo=1: names it: %s",
		    errbuf);
		conf_free(&c);
	}
	/* What getopt_long refused, said precisely (issue 12). */
	{
		static const struct {
			const char *arg, *msg;
		} lcases[] = {
			{ "--help=foo", "--help takes no value (got "
			    "'--help=foo'): give --help alone" },
			{ "--no-restart=yes", "--no-restart takes no value (got "
			    "'--no-restart=yes'): give --no-restart alone" },
			{ "--no-rest=1", "--no-restart takes no value (got "
			    "'--no-rest=1')" },
			{ "--ver", "ambiguous option '--ver': could be "
			    "--verbose, --version" },
			{ "--max-req=3", "ambiguous option '--max-req': could be "
			    "--max-requests, --max-requests-jitter" },
			{ "--bogus=1", "unknown option '--bogus'" },
		};
		size_t	 k;

		for (k = 0; k < sizeof(lcases) / sizeof(lcases[0]); k++) {
			char	*argv[] = { "wpool", (char *)lcases[k].arg, "cmd",
			    NULL };

			is_int(run_cli(&c, argv), -EINVAL, "%s refused",
			    lcases[k].arg);
			is_str(errbuf, lcases[k].msg, "%s: message",
			    lcases[k].arg);
			conf_free(&c);
		}
	}
	{
		char	*argv[] = { "wpool", "--max", "3", "cmd", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "--max refused");
		ok(strncmp(errbuf, "ambiguous option '--max': could be ", 35) ==
		    0 && strstr(errbuf, "--max-memory") != NULL &&
		    strstr(errbuf, "--max-queue") != NULL, "--max: lists them: "
		    "%s", errbuf);
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "-Z", "cmd", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "-Z refused");
		is_str(errbuf, "unknown option '-Z'", "-Z: message");
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "-n", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "-n without a value refused");
		ok(strstr(errbuf, "-n") != NULL && strstr(errbuf, "value") !=
		    NULL, "-n: 'a value is required': %s", errbuf);
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "--stop-timeout", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "--stop-timeout without a "
		    "value refused");
		ok(strstr(errbuf, "--stop-timeout") != NULL, "names it: %s",
		    errbuf);
		conf_free(&c);
	}
	{
		char	*argv[] = { "wpool", "--no-restart=yes", "cmd", NULL };

		is_int(run_cli(&c, argv), -EINVAL, "--no-restart=yes refused "
		    "(a flag takes no value)");
		conf_free(&c);
	}
}

static void
test_validate_refusals(void)
{
	struct conf c;
	char	*a1[] = { "wpool", "--max-requests-jitter", "5", "cmd", NULL };
	char	*a2[] = { "wpool", "-b", "127.0.0.1:0,name=x",
		"-b", "127.0.0.1:0,name=x", "cmd", NULL };
	char	*a3[] = { "wpool", "-C", "/nonexistent/wpool-unit", "cmd",
		NULL };
	char	*a4[] = { "wpool", "-b", "127.0.0.1:0", "-b",
		"127.0.0.1:0,name=l0", "cmd", NULL };
	char	*a5[] = { "wpool", "-m", "reuseport", "cmd", NULL };
	int	 r;

	r = run_cli(&c, a5);
	is_int(r, 0, "-m reuseport without -b parses");
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "-m reuseport without a listener is refused");
	ok(strstr(errbuf, "reuseport") != NULL, "and says why: %s", errbuf);
	conf_free(&c);

	r = run_cli(&c, a1);
	is_int(r, 0, "--max-requests-jitter alone parses");
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "--max-requests-jitter without --max-requests is "
	    "refused");
	ok(strstr(errbuf, "--max-requests-jitter") != NULL &&
	    strstr(errbuf, "--max-requests") != NULL, "and says why: %s",
	    errbuf);
	conf_free(&c);

	r = run_cli(&c, a2);
	is_int(r, 0, "two listeners named x parse");
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "duplicate listener names refused");
	ok(strstr(errbuf, "'x'") != NULL, "naming the name: %s", errbuf);
	conf_free(&c);

	r = run_cli(&c, a4);
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "an explicit name equal to a default name refused");
	conf_free(&c);

	r = run_cli(&c, a3);
	is_int(r, 0, "-C with a missing directory parses");
	r = cli_validate(&c, errbuf, sizeof(errbuf));
	is_int(r, -EINVAL, "-C with a missing directory refused");
	ok(strstr(errbuf, "--chdir") != NULL &&
	    strstr(errbuf, "/nonexistent/wpool-unit") != NULL,
	    "names the option and the directory: %s", errbuf);
	conf_free(&c);
}

/*
 * cli.c's table: names and letters unique, every entry complete for its
 * kind, every default accepted, and every value `wpool check` prints read
 * back as the same value.
 */
static void
test_table(void)
{
	struct conf c, back;
	const struct opt *o, *p;
	char	 v[1024], err[512];
	int	 bad = 0, r;

	for (o = cli_opts; o < cli_opts + cli_nopts; o++) {
		for (p = cli_opts; p < o; p++)
			if (strcmp(p->name, o->name) == 0 || (o->letter != 0 &&
			    p->letter == o->letter)) {
				ok(0, "%s and %s: one name or letter", p->name,
				    o->name);
				bad++;
			}
		if ((o->flags & OPT_CLI) && (o->help == NULL ||
		    o->section == SEC_NONE)) {
			ok(0, "--%s has no help text or section", o->name);
			bad++;
		}
		if ((o->kind == OPT_ENUM) != (o->values != NULL) ||
		    (o->modes != 0) != (o->mode_why != NULL) ||
		    ((o->flags & OPT_ONE_OF) && o->kind != OPT_FLAG) ||
		    (o->kind == OPT_INT && o->min > o->max) ||
		    (o->kind == OPT_DURATION && (o->ex[0] == NULL ||
		    o->ex[1] == NULL)) || ((o->kind == OPT_LIST ||
		    o->kind == OPT_COMMAND) && (o->flags & OPT_CLI) &&
		    o->set == NULL)) {
			ok(0, "%s: incomplete for its kind", o->name);
			bad++;
		}
		if (o->dflt != NULL) {
			memset(&c, 0, sizeof(c));
			r = opt_apply(&c, o, o->dflt, o->name, err, sizeof(err));
			if (r != 0) {
				ok(0, "%s: its default '%s' is refused: %s",
				    o->name, o->dflt, err);
				bad++;
			}
			conf_free(&c);
		}
	}
	is_int(bad, 0, "the table's %zu entries are complete and distinct",
	    cli_nopts);

	/* What check prints, the file reads back to the same field. */
	{
		char	*argv[] = { "wpool", "-m", "balance", "-n", "3",
			"--max-requests", "7", "--max-requests-jitter", "2",
			"--watchdog", "1.25", "--max-memory", "1G",
			"--stop-signal", "RTMIN+1", "--restart-delay", "1234567.5",
			"--ready", "notify", "-q", "--no-restart", "--name", "x",
			"--", "cmd", NULL };

		r = run_cli(&c, argv);
		is_int(r, 0, "a command line that sets most kinds parses");
		bad = 0;
		for (o = cli_opts; o < cli_opts + cli_nopts; o++) {
			if (o->kind == OPT_STRING || o->kind == OPT_COMMAND ||
			    opt_format(o, &c, v, sizeof(v)) < 0)
				continue;
			conf_defaults(&back);
			back.mode = c.mode;
			if (opt_apply(&back, o, v, o->name, err,
			    sizeof(err)) != 0 || memcmp((char *)&c + o->off,
			    (char *)&back + o->off, o->size) != 0) {
				ok(0, "%s = %s does not read back: %s", o->name,
				    v, err);
				bad++;
			}
			conf_free(&back);
		}
		is_int(bad, 0, "every value check prints reads back the same");
		ok(opt_format(opt_find("watchdog"), &c, v, sizeof(v)) == 0 &&
		    strcmp(v, "1.25") == 0, "watchdog = 1.25: %s", v);
		ok(opt_format(opt_find("restart-delay"), &c, v, sizeof(v)) ==
		    0 && strcmp(v, "1234567.5") == 0, "a large duration stays "
		    "plain: %s", v);
		ok(opt_format(opt_find("quiet"), &c, v, sizeof(v)) == 0 &&
		    opt_format(opt_find("verbose"), &c, v, sizeof(v)) < 0,
		    "-q: quiet = true, and no verbose line");
		conf_free(&c);
	}
	/* Off and out-of-mode values are left out. */
	{
		conf_defaults(&c);
		ok(opt_format(opt_find("watchdog"), &c, v, sizeof(v)) < 0 &&
		    opt_format(opt_find("max-memory"), &c, v, sizeof(v)) < 0,
		    "watchdog and max-memory off: left out");
		ok(opt_format(opt_find("balancer"), &c, v, sizeof(v)) < 0,
		    "balancer left out outside balance mode");
		ok(opt_format(opt_find("workers"), &c, v, sizeof(v)) == 0 &&
		    strcmp(v, "auto") == 0, "workers 0 prints as auto");
		ok(opt_format(opt_find("bind"), &c, v, sizeof(v)) < 0 &&
		    opt_format(opt_find("config"), &c, v, sizeof(v)) < 0,
		    "bind and config are no [pool] keys");
		ok(c.given == 0, "defaults are not options given");
		conf_free(&c);
	}
}

/* Which options were given, and the errors built from the table. */
static void
test_given_and_mode_errors(void)
{
	struct conf c;
	char	*a1[] = { "wpool", "--balancer", "ip-hash", "-b", "127.0.0.1:0",
		"cmd", NULL };
	char	*a2[] = { "wpool", "--max-requests", "3", "-b", "127.0.0.1:0",
		"cmd", NULL };
	char	*a3[] = { "wpool", "-v", "-q", "cmd", NULL };
	char	*a4[] = { "wpool", "-q", "--quiet", "cmd", NULL };

	is_int(run_cli(&c, a1), 0, "--balancer in shared mode parses");
	ok((c.given & (UINT64_C(1) << (opt_find("balancer") - cli_opts))) &&
	    !(c.given & (UINT64_C(1) << (opt_find("max-queue") - cli_opts))),
	    "given: balancer, not max-queue");
	is_int(cli_validate(&c, errbuf, sizeof(errbuf)), -EINVAL,
	    "and is refused by validate");
	is_str(errbuf, "--balancer and --max-queue: only in balance mode "
	    "(-m balance), where wpool hands out the connections",
	    "the message names both options of that reason");
	conf_free(&c);

	run_cli(&c, a2);
	is_int(cli_validate(&c, errbuf, sizeof(errbuf)), -EINVAL,
	    "--max-requests in shared mode refused");
	is_str(errbuf, "--max-requests: only in balance mode (-m balance), "
	    "where wpool sees each connection", "with its own reason");
	conf_free(&c);

	is_int(run_cli(&c, a3), -EINVAL, "-v -q refused");
	is_str(errbuf, "-q/--quiet and -v/--verbose: give one or the other",
	    "the same message whichever comes first");
	conf_free(&c);
	is_int(run_cli(&c, a4), 0, "-q --quiet is one choice, twice");
	is_int(c.log_level, LOG_WARN, "quiet");
	conf_free(&c);
}

/* cli_parse can be called repeatedly (getopt state is reset inside). */
static void
test_repeat(void)
{
	struct conf c;
	char	*a1[] = { "wpool", "-n", "2", "-n", "5", "cmd", NULL };
	int	 i, bad = 0;

	for (i = 0; i < 3; i++) {
		if (run_cli(&c, a1) != 0 || c.workers != 5 || c.argv != &a1[5])
			bad++;
		conf_free(&c);
	}
	is_int(bad, 0, "cli_parse gives the same result three times; the last "
	    "-n wins");
}

int
main(void)
{
	test_parse_duration();
	test_parse_size();
	test_parse_signal();
	test_parse_workers();
	test_parse_int();
	test_parse_user_bool();
	test_defaults();
	test_full_command_line();
	test_validate_ok();
	test_run_subcommand();
	test_bad_values();
	test_validate_refusals();
	test_repeat();
	test_table();
	test_given_and_mode_errors();
	return done_testing();
}
