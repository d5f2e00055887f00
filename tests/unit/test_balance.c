/*
 * test_balance.c: the balance-mode channel messages a worker sends, as
 * balance_parse_message reads them: the common {"type":"closed","id":N}
 * on its fast path, everything else through json-c, with the same answers.
 */
#include <errno.h>
#include <string.h>

#include "wpool.h"
#include "tap.h"

static void
check(const char *msg, int want, long long want_id)
{
	long long id = -12345;
	int	 r = balance_parse_message(msg, strlen(msg), &id);

	is_int(r, want, "%s -> %d", msg, want);
	if (want == 0)
		is_int(id, want_id, "%s -> id %lld", msg, want_id);
}

int
main(void)
{
	/* The fast path: the exact form every worker library sends. */
	check("{\"type\":\"closed\",\"id\":0}", 0, 0);
	check("{\"type\":\"closed\",\"id\":7}", 0, 7);
	check("{\"type\":\"closed\",\"id\":123456789012345678}", 0,
	    123456789012345678LL);
	/* Other spellings of the same message: json-c, same answer. */
	check("{ \"type\": \"closed\", \"id\": 42 }", 0, 42);
	check("{\"id\":42,\"type\":\"closed\"}", 0, 42);
	check("{\"type\":\"closed\",\"id\":9223372036854775807}", 0,
	    9223372036854775807LL);
	check("{\"type\":\"closed\",\"id\":42,\"extra\":true}", 0, 42);
	/* json-c reads leading zeros; the fast path leaves them to it. */
	check("{\"type\":\"closed\",\"id\":007}", 0, 7);
	/* ready */
	check("{\"type\":\"ready\"}", 1, 0);
	/* Not a closed message, though it starts like one. */
	check("{\"type\":\"closed\",\"id\":}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":12x}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":1.5}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":\"3\"}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":3}}", -EINVAL, 0);
	check("{\"type\":\"closed\",\"id\":3", -EINVAL, 0);
	check("{\"type\":\"closed\"}", -EINVAL, 0);
	check("{\"type\":\"opened\",\"id\":3}", -EINVAL, 0);
	check("[\"closed\",3]", -EINVAL, 0);
	check("", -EINVAL, 0);
	check("garbage", -EINVAL, 0);
	return done_testing();
}
