/* Fuzzes listener specs (-b) and the value parsers of the options. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct listener l;
	char	*s, err[512];
	double	 d;
	uint64_t u;
	int	 i;
	long long n;

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (listener_parse(s, &l, err, sizeof(err)) == 0)
		listener_free(&l);
	parse_duration(s, &d);
	parse_size(s, &u);
	parse_signal(s, &i);
	parse_workers(s, &i);
	parse_int(s, -5, 5, &n);
	free(s);
	return 0;
}
