/* Fuzzes the /proc and cgroup file parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proc_sample s;
	char	*buf, v2[256], v1[256];
	const char *half;
	uint64_t rss;
	double	 q;

	buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	procfs_parse_stat(buf, 100, &s);
	procfs_parse_statm(buf, 4096, &rss);
	cpu_parse_cgroup2_max(buf, &q);
	half = buf + strlen(buf) / 2;
	cpu_parse_cgroup1_quota(buf, half, &q);
	cpu_parse_self_cgroup(buf, v2, sizeof(v2), v1, sizeof(v1));
	cpu_parse_cpulist(buf);
	free(buf);
	return 0;
}
