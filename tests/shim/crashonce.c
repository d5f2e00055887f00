/*
 * crashonce.c: an LD_PRELOAD shim that makes wpool fault (a write through
 * a null pointer: SIGSEGV, as a bug would) in its first epoll_create1()
 * if the file named by $CRASH_TRIGGER exists, removing it: the new image
 * of an upgrade that passed its probe, then crashes while it takes over,
 * before it commits.  Only a process named wpool is affected, and the
 * shim takes itself out of the environment at load, so the image wpool
 * goes back to, and the workers, do not have it.
 */
#include <sys/epoll.h>

#include <dlfcn.h>
#include <stdint.h>
#include <errno.h>	/* program_invocation_short_name too */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char	 trigger[4096];
static int	(*real_create1)(int);

__attribute__((constructor))
static void
crashonce_init(void)
{
	const char *t = getenv("CRASH_TRIGGER");

	if (strcmp(program_invocation_short_name, "wpool") != 0)
		return;
	if (t != NULL && strlen(t) < sizeof(trigger))
		strcpy(trigger, t);
	unsetenv("CRASH_TRIGGER");
	unsetenv("LD_PRELOAD");
}

/* Not UBSan's: under SANITIZE=1 the fault must be a fault, not its report. */
__attribute__((no_sanitize("undefined")))
int
epoll_create1(int flags)
{
	if (real_create1 == NULL)
		real_create1 = (int (*)(int))dlsym(RTLD_NEXT, "epoll_create1");
	if (trigger[0] != '\0' && unlink(trigger) == 0)
		*(volatile int *)(uintptr_t)0 = 1;
	return real_create1(flags);
}
