/*
 * forkfail.c: an LD_PRELOAD shim that makes fork() fail with EAGAIN, as a
 * pids limit would, each time the file named by $FORKFAIL_TRIGGER exists:
 * the call that finds it removes it and fails, so a test decides exactly
 * which fork of the master fails, once.  Only a process named wpool is
 * affected: the shim passes through what runs before it (env, setpriv)
 * untouched, and takes itself out of wpool's environment at load, so the
 * workers wpool starts do not have it.
 */
#include <dlfcn.h>
#include <errno.h>	/* program_invocation_short_name too */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static char	 trigger[4096];
static pid_t	(*real_fork)(void);

__attribute__((constructor))
static void
forkfail_init(void)
{
	const char *t = getenv("FORKFAIL_TRIGGER");

	if (strcmp(program_invocation_short_name, "wpool") != 0)
		return;
	if (t != NULL && strlen(t) < sizeof(trigger))
		strcpy(trigger, t);
	unsetenv("FORKFAIL_TRIGGER");
	unsetenv("LD_PRELOAD");
}

pid_t
fork(void)
{
	if (real_fork == NULL)
		real_fork = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	if (trigger[0] != '\0' && unlink(trigger) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_fork();
}
