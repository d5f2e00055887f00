/* Fuzzes sd_notify datagrams and balance-protocol messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "wpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
on_pair(const char *key, const char *val, void *arg)
{
	size_t	*n = arg;

	*n += strlen(key) + strlen(val);
}

/*
 * A differential check of balance_parse_message's fast path: whatever it
 * accepts as {"type":"closed","id":N} must be exactly that JSON, with that
 * id, to json-c too.
 */
static void
check_closed(const uint8_t *data, size_t size, long long id)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	json_object *o, *t, *v;

	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	if (o == NULL || json_tokener_get_parse_end(tok) != size ||
	    !json_object_object_get_ex(o, "type", &t) ||
	    strcmp(json_object_get_string(t), "closed") != 0 ||
	    !json_object_object_get_ex(o, "id", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != id)
		abort();
	json_object_put(o);
	json_tokener_free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 n = 0;
	long long id;

	notify_parse((const char *)data, size, on_pair, &n);
	if (balance_parse_message((const char *)data, size, &id) == 0)
		check_closed(data, size, id);
	return 0;
}
