/* Fuzzes sd_notify datagrams and balance-protocol messages. */
#include <stdint.h>
#include <string.h>

#include "wpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
on_pair(const char *key, const char *val, void *arg)
{
	size_t	*n = arg;

	*n += strlen(key) + strlen(val);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 n = 0;
	long long id;

	notify_parse((const char *)data, size, on_pair, &n);
	balance_parse_message((const char *)data, size, &id);
	return 0;
}
