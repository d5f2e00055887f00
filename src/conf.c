/*
 * conf.c: the INI config file (-c FILE, through inih) into struct conf,
 * and `wpool check`'s output in the same format.  [pool]'s keys are the
 * run options of cli.c's table, set through opt_apply, so the file and the
 * command line accept exactly the same values.  Owns only the parse
 * context.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

struct conf_ctx {
	struct conf *c;
	const char *file;
	char	 err[512];
	char	*spec;		/* the listener being read */
	char	*lname;		/* its name = */
	char	*sname;		/* [listen.NAME]: the section's name */
	bool	 in_listen;
	const struct opt *loud;	/* quiet or verbose, once one is true */
	char	 section[128];
	char	**argv;		/* command = ..., split */
	FILE	*f;
	int	 lineno;	/* lines read so far */
	int	 errline;	/* where the reader found an error */
	int	 name_line;	/* where the listener being read got its name */
};

static bool
section_known(const char *name, size_t len)
{
	return (len == 4 && strncmp(name, "pool", 4) == 0) ||
	    (len == 3 && strncmp(name, "env", 3) == 0) ||
	    (len == 6 && strncmp(name, "listen", 6) == 0) ||
	    (len > 7 && strncmp(name, "listen.", 7) == 0);
}

/*
 * fgets for inih that also checks each [section] header as it passes:
 * inih itself only reports sections through their keys, which would put
 * an error on the wrong line, or miss an empty unknown section.
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_ctx *x = stream;
	const char *p, *end;

	if (fgets(str, num, x->f) == NULL)
		return NULL;
	x->lineno++;
	p = str + strspn(str, " \t");
	if (*p == '[' && x->err[0] == '\0') {
		p++;
		end = strchr(p, ']');
		if (end != NULL) {
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			if (!section_known(p, (size_t)(end - p))) {
				snprintf(x->err, sizeof(x->err), "unknown "
				    "section [%.*s]: expected [pool], [listen], "
				    "[listen.NAME] or [env]", (int)(end - p), p);
				x->errline = x->lineno;
				return NULL;
			}
		}
	}
	return str;
}

/*
 * Splits a command line like a shell would for words and quotes: 'single
 * quotes' literal, "double quotes" with \" \\ \$ \`, backslash escapes
 * outside.  No expansions.  Returns the NULL-terminated word list.
 */
int
conf_split_command(const char *s, char ***out, char *err, size_t len)
{
	char	**v = NULL, *w;
	size_t	 n = 0, wl;
	bool	 inword;

	w = xcalloc(strlen(s) + 1, 1);
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (*s == '\0')
			break;
		wl = 0;
		inword = true;
		while (inword && *s != '\0') {
			if (*s == '\'') {
				const char *e = strchr(s + 1, '\'');

				if (e == NULL)
					goto unterminated;
				memcpy(w + wl, s + 1, (size_t)(e - s - 1));
				wl += (size_t)(e - s - 1);
				s = e + 1;
			} else if (*s == '"') {
				s++;
				while (*s != '"') {
					if (*s == '\0')
						goto unterminated;
					if (*s == '\\' && s[1] != '\0' &&
					    strchr("\"\\$`", s[1]) != NULL)
						s++;
					w[wl++] = *s++;
				}
				s++;
			} else if (*s == '\\' && s[1] != '\0') {
				w[wl++] = s[1];
				s += 2;
			} else if (*s == ' ' || *s == '\t' || *s == '\n') {
				inword = false;
			} else
				w[wl++] = *s++;
		}
		w[wl] = '\0';
		v = xreallocarray(v, n + 2, sizeof(char *));
		v[n++] = xstrdup(w);
		v[n] = NULL;
	}
	free(w);
	if (n == 0) {
		snprintf(err, len, "the command is empty");
		return -EINVAL;
	}
	*out = v;
	return 0;
unterminated:
	free(w);
	while (n > 0)
		free(v[--n]);
	free(v);
	snprintf(err, len, "unterminated quote in the command");
	return -EINVAL;
}

/* The listener just added must not take an earlier one's name. */
static int
check_name_unique(struct conf_ctx *x)
{
	const struct listener *l = &x->c->listeners[x->c->nlisteners - 1];
	size_t	 i;

	if (l->name == NULL)
		return 0;
	for (i = 0; i + 1 < x->c->nlisteners; i++)
		if (x->c->listeners[i].name != NULL &&
		    strcmp(x->c->listeners[i].name, l->name) == 0) {
			snprintf(x->err, sizeof(x->err), "name: '%s' is "
			    "already the name of the listener '%s'", l->name,
			    x->c->listeners[i].spec);
			if (x->name_line > 0)
				x->errline = x->name_line;
			return -EINVAL;
		}
	return 0;
}

/* Ends the [listen] section being read: its spec becomes a listener. */
static int
flush_listener(struct conf_ctx *x)
{
	char	 err[512];
	int	 r = 0;

	if (x->spec == NULL)
		return 0;
	if (x->lname != NULL || x->sname != NULL) {
		char	*tmp;

		xasprintf(&tmp, "%s,name=%s", x->spec, x->lname ? x->lname :
		    x->sname);
		free(x->spec);
		x->spec = tmp;
	}
	if (cli_apply(x->c, "bind", x->spec, "bind", err, sizeof(err)) < 0) {
		snprintf(x->err, sizeof(x->err), "%s", err);
		r = -EINVAL;
	} else
		r = check_name_unique(x);
	free(x->spec);
	x->spec = NULL;
	free(x->lname);
	x->lname = NULL;
	return r;
}

/* Checks the listener read so far, so an error names the line it is on. */
static int
check_spec(struct conf_ctx *x, const char *key)
{
	struct listener l;
	char	 err[256];

	if (listener_parse(x->spec, &l, err, sizeof(err)) < 0) {
		snprintf(x->err, sizeof(x->err), "%s: %s", key, err);
		return 0;
	}
	listener_free(&l);
	return 1;
}

static const char *const listen_flags[] = { "v6only", "freebind",
    "defer_accept", "nodelay" };
static const char *const listen_values[] = { "backlog", "mode", "owner",
    "rcvbuf", "sndbuf" };

static int
handle_listen(struct conf_ctx *x, const char *key, const char *val)
{
	size_t	 i;
	bool	 b;
	char	*tmp;

	if (strcmp(key, "bind") == 0) {
		/* Another bind in the same section starts another listener. */
		if (flush_listener(x) < 0)
			return 0;
		if (val == NULL || *val == '\0') {
			snprintf(x->err, sizeof(x->err), "bind: a listener "
			    "spec is required");
			return 0;
		}
		x->spec = xstrdup(val);
		x->name_line = x->lineno;
		return check_spec(x, key);
	}
	if (x->spec == NULL) {
		snprintf(x->err, sizeof(x->err), "%s: put 'bind = SPEC' first "
		    "in [%s]", key, x->section);
		return 0;
	}
	if (strcmp(key, "name") == 0) {
		char	*saved = x->spec;
		int	 ok;

		free(x->lname);
		x->lname = xstrdup(val ? val : "");
		x->name_line = x->lineno;
		xasprintf(&x->spec, "%s,name=%s", saved, x->lname);
		ok = check_spec(x, key);
		free(x->spec);
		x->spec = saved;
		return ok;
	}
	for (i = 0; i < sizeof(listen_flags) / sizeof(listen_flags[0]); i++)
		if (strcmp(key, listen_flags[i]) == 0) {
			if (parse_bool(val, &b) < 0) {
				snprintf(x->err, sizeof(x->err), "%s: invalid "
				    "value '%s': expected true or false", key,
				    val);
				return 0;
			}
			if (b) {
				xasprintf(&tmp, "%s,%s", x->spec, key);
				free(x->spec);
				x->spec = tmp;
			}
			return check_spec(x, key);
		}
	for (i = 0; i < sizeof(listen_values) / sizeof(listen_values[0]); i++)
		if (strcmp(key, listen_values[i]) == 0) {
			xasprintf(&tmp, "%s,%s=%s", x->spec, key,
			    val ? val : "");
			free(x->spec);
			x->spec = tmp;
			return check_spec(x, key);
		}
	snprintf(x->err, sizeof(x->err), "unknown key '%s' in [%s]: expected "
	    "bind, name, backlog, mode, owner, v6only, freebind, defer_accept, "
	    "nodelay, rcvbuf or sndbuf", key, x->section);
	return 0;
}

/* "unknown key 'K' in [pool]: expected name, workers, ... or command" */
static void
unknown_pool_key(struct conf_ctx *x, const char *key)
{
	size_t	 i, n = 0, last = 0;

	for (i = 0; i < cli_nopts; i++)
		if (cli_opts[i].flags & OPT_FILE) {
			last = i;
			n++;
		}
	snprintf(x->err, sizeof(x->err), "unknown key '%s' in [pool]: "
	    "expected ", key);
	for (i = 0; i < cli_nopts; i++) {
		if (!(cli_opts[i].flags & OPT_FILE))
			continue;
		strlcat(x->err, cli_opts[i].name, sizeof(x->err));
		if (i != last && --n > 1)
			strlcat(x->err, ", ", sizeof(x->err));
		else if (i != last)
			strlcat(x->err, " or ", sizeof(x->err));
	}
}

static int
handle_command(struct conf_ctx *x, const char *val)
{
	char	 err[512];

	if (x->argv != NULL) {
		snprintf(x->err, sizeof(x->err), "command: given twice");
		return 0;
	}
	if (conf_split_command(val ? val : "", &x->argv, err,
	    sizeof(err)) < 0) {
		snprintf(x->err, sizeof(x->err), "command: %s", err);
		return 0;
	}
	return 1;
}

/* A [pool] key: a run option of cli.c's table that the file may set. */
static int
handle_pool(struct conf_ctx *x, const char *key, const char *val)
{
	const struct opt *o = opt_find(key);
	char	 err[512], peers[160];
	bool	 b;

	if (o == NULL || !(o->flags & OPT_FILE)) {
		if (o != NULL && o->file_hint != NULL)
			snprintf(x->err, sizeof(x->err), "%s: not a [pool] key "
			    "(use %s)", key, o->file_hint);
		else
			unknown_pool_key(x, key);
		return 0;
	}
	if (o->kind == OPT_COMMAND)
		return handle_command(x, val);
	if (val == NULL && o->kind != OPT_FLAG) {
		snprintf(x->err, sizeof(x->err), "%s: a value is required (%s = "
		    "VALUE)", key, key);
		return 0;
	}
	if ((o->flags & OPT_ONE_OF) && parse_bool(val, &b) == 0 && b) {
		if (x->loud != NULL && x->loud != o &&
		    x->loud->off == o->off) {
			opt_peers(o, true, peers, sizeof(peers));
			snprintf(x->err, sizeof(x->err), "%s: %s are both true: "
			    "give one or the other", key, peers);
			return 0;
		}
		x->loud = o;
	}
	if (opt_apply(x->c, o, val, key, err, sizeof(err)) < 0) {
		snprintf(x->err, sizeof(x->err), "%s", err);
		return 0;
	}
	return 1;
}

static int
handler(void *user, const char *section, const char *key, const char *val)
{
	struct conf_ctx *x = user;
	char	 err[512];

	if (x->err[0] != '\0')
		return 0;
	if (strcmp(section, x->section) != 0) {
		if (flush_listener(x) < 0)
			return 0;
		free(x->sname);
		x->sname = NULL;
		strlcpy(x->section, section, sizeof(x->section));
		if (strncmp(section, "listen.", 7) == 0 &&
		    section[7] != '\0') {
			x->sname = xstrdup(section + 7);
		}
	}
	if (section[0] == '\0') {
		snprintf(x->err, sizeof(x->err), "%s: keys go inside a section "
		    "such as [pool]", key);
		return 0;
	}
	if (strcmp(section, "listen") == 0 ||
	    strncmp(section, "listen.", 7) == 0)
		return handle_listen(x, key, val);
	if (strcmp(section, "env") == 0) {
		char	*kv;
		int	 r;

		xasprintf(&kv, "%s=%s", key, val ? val : "");
		r = cli_apply(x->c, "env", kv, key, err, sizeof(err));
		free(kv);
		if (r < 0) {
			snprintf(x->err, sizeof(x->err), "[env] %s: not a "
			    "valid variable name", key);
			return 0;
		}
		return 1;
	}
	if (strcmp(section, "pool") != 0) {
		snprintf(x->err, sizeof(x->err), "unknown section [%s]: "
		    "expected [pool], [listen], [listen.NAME] or [env]",
		    section);
		return 0;
	}
	return handle_pool(x, key, val);
}

#define CONF_MAX_SIZE	(4 << 20)

/*
 * Reads FILE whole into *bufp.  A symlinked config is normal, so the path
 * is followed, but the type is that of the file opened, and O_NONBLOCK
 * keeps the open of a FIFO from waiting for a writer.  A read error midway
 * is an error, not the end of the file, and a NUL byte is not text.
 */
static int
conf_load(const char *file, char **bufp, size_t *np, char *err, size_t len)
{
	struct stat st;
	char	*buf = NULL, *nul;
	size_t	 n = 0, cap = 0;
	ssize_t	 got;
	int	 fd, r = 0;

	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, len, "-c/--config: cannot read '%s': %s", file,
		    strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, len, "-c/--config: '%s' is not a regular file",
		    file);
		r = -EINVAL;
		goto out;
	}
	/* Grown as it fills, up to one byte more than a file may hold. */
	while (n <= CONF_MAX_SIZE) {
		if (n == cap) {
			cap = cap == 0 ? 16384 : 2 * cap;
			if (cap > CONF_MAX_SIZE + 1)
				cap = CONF_MAX_SIZE + 1;
			buf = xreallocarray(buf, cap, 1);
		}
		if ((got = read(fd, buf + n, cap - n)) < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			snprintf(err, len, "-c/--config: cannot read '%s': %s",
			    file, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > CONF_MAX_SIZE) {
		snprintf(err, len, "-c/--config: '%s' is larger than %d MiB",
		    file, CONF_MAX_SIZE >> 20);
		r = -EFBIG;
	} else if ((nul = memchr(buf, '\0', n)) != NULL) {
		int	 line = 1;
		char	*p;

		for (p = buf; p < nul; p++)
			line += *p == '\n';
		snprintf(err, len, "-c/--config: '%s' has a NUL byte on line "
		    "%d: expected a text file", file, line);
		r = -EINVAL;
	}
out:
	close(fd);
	if (r < 0)
		free(buf);
	else {
		*bufp = buf;
		*np = n;
	}
	return r;
}

/*
 * Reads FILE into c (which holds the defaults).  On error, err reads
 * "FILE:LINE: message".  *argv gets the file's command, if any.
 */
int
conf_read(struct conf *c, const char *file, char ***argv, char *err,
    size_t len)
{
	struct conf_ctx x;
	FILE	*f;
	char	*buf = NULL;
	size_t	 n = 0;
	int	 line, r;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.file = file;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 64 * 1024;
	ini_stop_on_first_error = true;
	ini_allow_no_value = true;
	/* An indented line is a key like any other, not a continuation. */
	ini_allow_multiline = false;
	if ((r = conf_load(file, &buf, &n, err, len)) < 0)
		return r;
	if ((f = fmemopen(buf, n, "r")) == NULL) {
		r = -errno;
		snprintf(err, len, "-c/--config: cannot read '%s': %s", file,
		    strerror(errno));
		free(buf);
		return r;
	}
	x.f = f;
	line = ini_parse_stream(conf_reader, &x, handler, &x);
	fclose(f);
	free(buf);
	if (x.errline > 0)
		line = x.errline;
	if (line == 0 && x.err[0] == '\0') {
		flush_listener(&x);
		if (x.errline > 0)
			line = x.errline;
	}
	free(x.lname);
	free(x.sname);
	free(x.spec);
	if (line != 0 || x.err[0] != '\0') {
		if (line > 0)
			snprintf(err, len, "%s:%d: %s", file, line, x.err[0] ?
			    x.err : "syntax error");
		else
			snprintf(err, len, "%s: %s", file, x.err[0] ? x.err :
			    "cannot parse");
		if (x.argv != NULL) {
			char	**a;

			for (a = x.argv; *a; a++)
				free(*a);
			free(x.argv);
		}
		return -EINVAL;
	}
	*argv = x.argv;
	return 0;
}

/* Quotes a word so that conf_split_command reads it back the same. */
static void
print_word(FILE *f, const char *w)
{
	const char *p;

	if (*w != '\0' && strpbrk(w, " \t\n'\"\\$`;#") == NULL) {
		fputs(w, f);
		return;
	}
	/*
	 * Single quotes, but ' and ; outside them: inih would end the value
	 * at a blank followed by ';' even inside quotes.
	 */
	fputc('\'', f);
	for (p = w; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", f);
		else if (*p == ';')
			fputs("'\\;'", f);
		else
			fputc(*p, f);
	}
	fputc('\'', f);
}

/*
 * A value inih reads back the same: no blank at either end (inih strips
 * them), no blank followed by ';' (a comment).  Otherwise a warning.
 */
static void
value_check(const char *key, int keylen, const char *v)
{
	size_t	 n = strlen(v);
	const char *p;
	bool	 bad = n > 0 && (isspace((unsigned char)v[0]) ||
		    isspace((unsigned char)v[n - 1]));

	for (p = v; !bad && *p; p++)
		if (*p == ';' && p > v && isspace((unsigned char)p[-1]))
			bad = true;
	if (bad)
		log_warnx("check: %.*s = '%s' cannot be written in "
		    "wpool.conf so that it reads back the same (a blank at "
		    "either end, or a blank before ';')", keylen, key, v);
}

/* `wpool check`: the effective configuration, in the file's own format. */
void
conf_print(FILE *f, const struct conf *c, const struct cpu_info *ci)
{
	const struct opt *o;
	char	**a, v[1024];
	size_t	 i;

	fprintf(f, "[pool]\n");
	for (o = cli_opts; o < cli_opts + cli_nopts; o++) {
		if (o->kind == OPT_COMMAND && (o->flags & OPT_FILE)) {
			fprintf(f, "%s =", o->name);
			for (a = c->argv; a != NULL && *a != NULL; a++) {
				fputc(' ', f);
				print_word(f, *a);
			}
			fputc('\n', f);
			continue;
		}
		if (opt_format(o, c, v, sizeof(v)) < 0)
			continue;
		if (o->kind == OPT_STRING)
			value_check(o->name, -1, v);
		fprintf(f, "%s = %s", o->name, v);
		/* The word for 0 ("auto") stands for the CPUs found. */
		if (o->word != NULL && strcmp(v, o->word) == 0) {
			char	 why[512];

			if (ci->mem_n > 0)
				cpu_auto_text(ci, why, sizeof(why));
			else
				strlcpy(why, ci->source, sizeof(why));
			fprintf(f, "  ; = %d: %s", cpu_auto_workers(ci), why);
		}
		fputc('\n', f);
	}
	for (i = 0; i < c->nlisteners; i++) {
		const struct listener *l = &c->listeners[i];

		fprintf(f, "\n[listen]\nbind = %s%s\nname = %s\n",
		    l->type == L_UNIX ? "unix:" : "", l->spec, l->name);
		if (l->backlog > 0)
			fprintf(f, "backlog = %d\n", l->backlog);
		if (l->mode >= 0)
			fprintf(f, "mode = %04o\n", l->mode);
		if (l->owner != NULL)
			fprintf(f, "owner = %s\n", l->owner);
		if (l->v6only)
			fprintf(f, "v6only = true\n");
		if (l->freebind)
			fprintf(f, "freebind = true\n");
		if (l->defer_accept)
			fprintf(f, "defer_accept = true\n");
		if (l->nodelay)
			fprintf(f, "nodelay = true\n");
		if (l->rcvbuf > 0)
			fprintf(f, "rcvbuf = %d\n", l->rcvbuf);
		if (l->sndbuf > 0)
			fprintf(f, "sndbuf = %d\n", l->sndbuf);
	}
	if (c->nenv > 0) {
		fprintf(f, "\n[env]\n");
		for (i = 0; i < c->nenv; i++) {
			size_t	 k = strcspn(c->env[i], "="), j;

			/* Only the value that wins: the last of a name. */
			for (j = i + 1; j < c->nenv; j++)
				if (strncmp(c->env[j], c->env[i], k + 1) == 0)
					break;
			if (j < c->nenv)
				continue;
			value_check(c->env[i], (int)k, c->env[i] + k + 1);
			fprintf(f, "%.*s = %s\n", (int)k, c->env[i],
			    c->env[i] + k + 1);
		}
	}
}
