/*
 * readyprobe: runs wpool's readiness probe from the command line, for the
 * tests that try it on real servers.  `readyprobe PID INODE...` prints 1
 * when PID or a descendant waits for connections on one of the sockets,
 * 0 when none does, and the error when it cannot be seen.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"

int
main(int argc, char **argv)
{
	uint64_t inos[64];
	int	 i, n = 0, r;

	if (argc < 3 || argc > 66) {
		fprintf(stderr, "usage: readyprobe PID INODE...\n");
		return 64;
	}
	for (i = 2; i < argc; i++)
		inos[n++] = strtoull(argv[i], NULL, 10);
	r = readyprobe_tree((pid_t)atoi(argv[1]), inos, (size_t)n);
	if (r < 0) {
		printf("error: %s\n", strerror(-r));
		return 1;
	}
	printf("%d\n", r);
	return 0;
}
