/*
 * swap_racer: the attacker of tests/bats/62-hostile-files.bats.  Run as
 * another uid, it watches PATH in a tight loop and, whenever PATH is a
 * socket, replaces it at once with a symlink to TARGET (rename(2) over it,
 * atomic), hoping to land between a server's bind() and its chmod(PATH) or
 * chown(PATH).  It stops when STOP exists or after SECONDS, and prints how
 * many swaps it made.
 *
 * Usage: swap_racer PATH TARGET STOP SECONDS
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	char	 tmp[4096];
	struct stat st;
	unsigned long i, swaps = 0;
	double	 end;

	if (argc != 5) {
		fprintf(stderr, "usage: swap_racer PATH TARGET STOP SECONDS\n");
		return 64;
	}
	snprintf(tmp, sizeof(tmp), "%s.racer", argv[1]);
	end = now() + atof(argv[4]);
	printf("ready\n");
	fflush(stdout);
	/* The symlink is made ahead: the window is one lstat and a rename. */
	unlink(tmp);
	if (symlink(argv[2], tmp) < 0) {
		perror(tmp);
		return 1;
	}
	for (i = 1;; i++) {
		if (i % 4096 == 0 && (access(argv[3], F_OK) == 0 ||
		    now() > end))
			break;
		if (lstat(argv[1], &st) < 0 || !S_ISSOCK(st.st_mode))
			continue;
		if (rename(tmp, argv[1]) == 0) {
			swaps++;
			symlink(argv[2], tmp);
		}
	}
	unlink(tmp);
	printf("%lu swaps\n", swaps);
	return 0;
}
