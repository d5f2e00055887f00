/*
 * Fuzzes control requests through control_dispatch, with the pool in its
 * stopping state so that no request can start or signal a process.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct pool pool;
static struct conf conf;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *argv[] = { "true", NULL };
	char	*resp;

	if (pool.conf == NULL) {
		log_init("fuzz", LOG_ERROR);
		conf_defaults(&conf);
		conf.argv = argv;
		free(conf.name);	/* conf_defaults' own */
		conf.name = xstrdup("fuzz");
		conf.workers = 2;
		loop_init();
		pool_init(&pool, &conf);
		pool.state = POOL_STOPPING;
	}
	resp = control_dispatch(&pool, (const char *)data, size, getuid(),
	    getpid());
	free(resp);
	resp = control_dispatch(&pool, (const char *)data, size, 65534, 1);
	free(resp);
	return 0;
}
