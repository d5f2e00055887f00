/*
 * pinfail.c: an LD_PRELOAD shim that makes sched_setaffinity() fail with
 * EINVAL, as the kernel does for a CPU gone from the cpuset, each time
 * the file named by $PINFAIL_TRIGGER exists: the call that finds it
 * removes it and fails, so a test decides which worker's pin fails, once.
 * The call comes from wpool's child between fork and exec, which still
 * runs wpool's image.  Only a process named wpool is affected, and the
 * shim takes itself out of wpool's environment at load, so the workers
 * do not have it.
 */
#include <sched.h>

#include <dlfcn.h>
#include <errno.h>	/* program_invocation_short_name too */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char	 trigger[4096];
static int	(*real_setaffinity)(pid_t, size_t, const cpu_set_t *);

__attribute__((constructor))
static void
pinfail_init(void)
{
	const char *t = getenv("PINFAIL_TRIGGER");

	if (strcmp(program_invocation_short_name, "wpool") != 0)
		return;
	if (t != NULL && strlen(t) < sizeof(trigger))
		strcpy(trigger, t);
	unsetenv("PINFAIL_TRIGGER");
	unsetenv("LD_PRELOAD");
}

int
sched_setaffinity(pid_t pid, size_t size, const cpu_set_t *set)
{
	if (real_setaffinity == NULL)
		real_setaffinity = (int (*)(pid_t, size_t, const cpu_set_t *))
		    dlsym(RTLD_NEXT, "sched_setaffinity");
	if (trigger[0] != '\0' && unlink(trigger) == 0) {
		errno = EINVAL;
		return -1;
	}
	return real_setaffinity(pid, size, set);
}
