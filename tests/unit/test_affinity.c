/*
 * test_affinity.c: --cpu-affinity's choice of a slot's CPU (cpu_nth): the
 * (slot mod n)-th of the n CPUs in the mask, counted upwards, so that
 * holes in a cpuset are skipped and slots wrap past the last CPU.
 */
#include <errno.h>
#include <stdio.h>

#include "wpool.h"
#include "tap.h"

static void
set_of(cpu_set_t *s, const int *cpus, int n)
{
	int	 i;

	CPU_ZERO(s);
	for (i = 0; i < n; i++)
		CPU_SET(cpus[i], s);
}

int
main(void)
{
	static const int two[] = { 0, 1 }, holes[] = { 2, 5, 9 };
	static const int one[] = { 1 }, high[] = { CPU_SETSIZE - 1 };
	cpu_set_t s;
	int	 i;

	set_of(&s, two, 2);
	is_int(cpu_nth(&s, 0), 0, "{0,1}: slot 0 -> CPU 0");
	is_int(cpu_nth(&s, 1), 1, "{0,1}: slot 1 -> CPU 1");
	is_int(cpu_nth(&s, 2), 0, "{0,1}: slot 2 wraps to CPU 0");
	is_int(cpu_nth(&s, 1023), 1, "{0,1}: slot 1023 -> CPU 1");

	set_of(&s, holes, 3);
	for (i = 0; i < 7; i++)
		is_int(cpu_nth(&s, i), holes[i % 3], "{2,5,9}: slot %d -> CPU %d",
		    i, holes[i % 3]);

	set_of(&s, one, 1);
	for (i = 0; i < 3; i++)
		is_int(cpu_nth(&s, i), 1, "{1}: slot %d -> CPU 1", i);

	set_of(&s, high, 1);
	is_int(cpu_nth(&s, 5), CPU_SETSIZE - 1, "the mask's last CPU is found");

	CPU_ZERO(&s);
	is_int(cpu_nth(&s, 0), -ENOENT, "an empty mask: -ENOENT");
	set_of(&s, two, 2);
	is_int(cpu_nth(&s, -1), -ENOENT, "a negative slot: -ENOENT");

	/* This process's own mask: slot 0 is a CPU it may run on. */
	i = cpu_for_slot(0);
	ok(i >= 0 && i < CPU_SETSIZE, "cpu_for_slot(0) = %d", i);
	return done_testing();
}
