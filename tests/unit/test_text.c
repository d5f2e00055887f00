/*
 * test_text.c: text_clean() (status.c), which makes a worker's STATUS=
 * text or a client's command name fit for JSON and a terminal: valid
 * UTF-8 kept, controls made spaces, anything else U+FFFD, never a
 * character cut in two.
 */
#include <string.h>

#include "wpool.h"
#include "tap.h"

#define FFFD	"\xef\xbf\xbd"

static void
check(const char *in, size_t max, size_t outlen, const char *want,
    const char *what)
{
	char	 out[256];
	size_t	 n;

	memset(out, 'x', sizeof(out));
	n = text_clean(in, max, out, outlen);
	is_str(out, want, "%s", what);
	is_int(n, (long long)strlen(want), "%s: the length", what);
}

int
main(void)
{
	check("plain text", 64, 64, "plain text", "ASCII is kept");
	check("a\tb\nc\x1b[2Jd\x7f", 64, 64, "a b c [2Jd ",
	    "C0 controls and DEL become spaces");
	check("a\xc2\x9b" "31m\xc2\x80", 64, 64, "a 31m ",
	    "C1 controls (U+0080..U+009F) become spaces");
	check("\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 64, 64,
	    "\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
	    "valid 2-, 3- and 4-byte characters are kept");
	check("a\x9b" "b\xff\xfe", 64, 64, "a" FFFD "b" FFFD FFFD,
	    "stray bytes become U+FFFD");
	check("\xc0\xaf\xe0\x80\xaf", 64, 64, FFFD FFFD FFFD FFFD FFFD,
	    "overlong forms are not UTF-8");
	check("\xed\xa0\x80", 64, 64, FFFD FFFD FFFD,
	    "a surrogate is not UTF-8");
	check("\xf4\x90\x80\x80", 64, 64, FFFD FFFD FFFD FFFD,
	    "past U+10FFFF is not UTF-8");
	check("ab\xe2\x82", 64, 64, "ab" FFFD FFFD,
	    "a sequence cut by the end of the input");
	check("\xc3\xa9\xc3\xa9\xc3\xa9", 4, 64, "\xc3\xa9\xc3\xa9",
	    "max counts input bytes, and cuts before a character");
	check("\xc3\xa9\xc3\xa9\xc3\xa9", 64, 4, "\xc3\xa9",
	    "the output holds whole characters and the NUL");
	check("\xff", 64, 3, "", "no room for U+FFFD: nothing, not a part");
	check("", 64, 1, "", "empty");
	return done_testing();
}
