/* Fuzzes the config file reader (inih through conf.c) and command splitting. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char	 path[] = "/tmp/wpool-fuzz-conf-XXXXXX", err[1024], **argv = NULL;
	char	*s;
	int	 fd;

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (conf_split_command(s, &argv, err, sizeof(err)) == 0) {
		char	**a;

		for (a = argv; *a; a++)
			free(*a);
		free(argv);
		argv = NULL;
	}
	free(s);
	if ((fd = mkstemp(path)) < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	conf_defaults(&c);
	if (conf_read(&c, path, &argv, err, sizeof(err)) == 0 && argv) {
		char	**a;

		for (a = argv; *a; a++)
			free(*a);
		free(argv);
	}
	conf_free(&c);
	unlink(path);
	return 0;
}
