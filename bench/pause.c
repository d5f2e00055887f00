/*
 * pause: the smallest possible worker for bench/04-spawn-1024.sh: it does
 * nothing until a signal ends it.  Built static when the libc allows, so
 * that the figure measures wpool's fork/exec/bookkeeping, not ld.so.
 */
#include <unistd.h>

int
main(void)
{
	for (;;)
		pause();
}
