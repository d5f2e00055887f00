/*
 * opt_table: prints cli.c's table of run options, one a line, for
 * tests/bats/90-docs.bats to check the man pages, the completions and
 * the README against it:
 *
 *	NAME LETTER KIND WHERE VALUES
 *
 * LETTER is "-" when there is none; KIND is flag, int, duration, size,
 * signal, enum, string, list or command; WHERE is cli, file or cli,file;
 * VALUES are an enum's names joined by ',' ("-" for the other kinds).
 */
#include <stdio.h>

#include "wpool.h"

static const char *const kinds[] = {
	[OPT_FLAG] = "flag", [OPT_INT] = "int", [OPT_DURATION] = "duration",
	[OPT_SIZE] = "size", [OPT_SIGNAL] = "signal", [OPT_ENUM] = "enum",
	[OPT_STRING] = "string", [OPT_LIST] = "list",
	[OPT_COMMAND] = "command",
};

int
main(void)
{
	const struct opt *o;
	size_t	 i;

	for (o = cli_opts; o < cli_opts + cli_nopts; o++) {
		printf("%s %c %s %s%s%s ", o->name, o->letter ? o->letter : '-',
		    kinds[o->kind], (o->flags & OPT_CLI) ? "cli" : "",
		    (o->flags & OPT_CLI) && (o->flags & OPT_FILE) ? "," : "",
		    (o->flags & OPT_FILE) ? "file" : "");
		for (i = 0; o->values != NULL && o->values[i] != NULL; i++)
			printf("%s%s", i > 0 ? "," : "", o->values[i]);
		printf("%s\n", o->values == NULL ? "-" : "");
	}
	return 0;
}
