/*
 * shim.c: the master's side of --shim (balance mode for unmodified
 * servers): where libwpool-shim.so is, whether the command can take it
 * (LD_PRELOAD reaches only a dynamically linked program that makes its
 * system calls through libc: not a static binary, not Go), and what a
 * worker's environment tells it.  The library itself is src/shim/.
 * Never logs; errors go to the caller's buffer.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#define SHIM_NAME	"libwpool-shim.so"

/*
 * Where the library is: the directory `make install` puts it in (the
 * compiled-in WPOOL_LIBDIR), else next to the running binary, as the
 * build tree has it (./libwpool-shim.so, src/shim/) or an install under
 * another prefix does (../lib/wpool/).  0 with its path in buf, or
 * -ENOENT with the places looked at in buf.
 */
int
shim_find(char *buf, size_t len)
{
	char	 exe[4096], cand[4][4200], *dir;
	size_t	 n = 0, i, off;
	ssize_t	 k;

#ifdef WPOOL_LIBDIR
	snprintf(cand[n++], sizeof(cand[0]), "%s/%s", WPOOL_LIBDIR, SHIM_NAME);
#endif
	if ((k = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[k] = '\0';
		dir = dirname(exe);
		snprintf(cand[n++], sizeof(cand[0]), "%s/%s", dir, SHIM_NAME);
		snprintf(cand[n++], sizeof(cand[0]), "%s/src/shim/%s", dir,
		    SHIM_NAME);
		snprintf(cand[n++], sizeof(cand[0]), "%s/../lib/wpool/%s", dir,
		    SHIM_NAME);
	}
	for (i = 0; i < n; i++)
		if (access(cand[i], R_OK) == 0) {
			if (realpath(cand[i], exe) == NULL)
				strlcpy(exe, cand[i], sizeof(exe));
			strlcpy(buf, exe, len);
			return 0;
		}
	for (i = 0, off = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    i > 0 ? ", " : "", cand[i]);
	if (n == 0)
		strlcpy(buf, "(no directory to look in)", len);
	return -ENOENT;
}

/* Whether the section table of an ELF64 file names a Go build section. */
static bool
elf_is_go(int fd, const Elf64_Ehdr *eh)
{
	Elf64_Shdr sh, str;
	char	 name[32];
	size_t	 i;

	if (eh->e_shentsize != sizeof(sh) || eh->e_shstrndx >= eh->e_shnum ||
	    pread(fd, &str, sizeof(str), (off_t)(eh->e_shoff +
	    (uint64_t)eh->e_shstrndx * sizeof(sh))) != sizeof(str))
		return false;
	for (i = 0; i < eh->e_shnum && i < 4096; i++) {
		if (pread(fd, &sh, sizeof(sh), (off_t)(eh->e_shoff +
		    i * sizeof(sh))) != sizeof(sh))
			return false;
		memset(name, 0, sizeof(name));
		if (pread(fd, name, sizeof(name) - 1, (off_t)(str.sh_offset +
		    sh.sh_name)) <= 0)
			continue;
		if (strcmp(name, ".go.buildinfo") == 0 ||
		    strcmp(name, ".note.go.buildid") == 0)
			return true;
	}
	return false;
}

/*
 * What the ELF file at path is to the shim: SHIM_OK (dynamic, or not an
 * ELF file: a script's interpreter is looked at by the caller), SHIM_STATIC
 * (no PT_INTERP: no dynamic loader to preload anything) or SHIM_GO.
 */
int
shim_elf_kind(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool	 interp = false;
	size_t	 i;
	int	 fd, kind = SHIM_OK;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) < 0)
		return SHIM_OK;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph))
		goto out;
	for (i = 0; i < eh.e_phnum && i < 1024; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff +
		    i * sizeof(ph))) != sizeof(ph))
			goto out;
		if (ph.p_type == PT_INTERP)
			interp = true;
	}
	if (elf_is_go(fd, &eh))
		kind = SHIM_GO;
	else if (!interp)
		kind = SHIM_STATIC;
out:
	close(fd);
	return kind;
}

/*
 * Whether the command can take the shim, as far as its own file tells
 * (a script's "#!" interpreter is what runs: that one is looked at; what
 * a shell then runs is not): 0, or -ENOEXEC with why in err.
 */
int
shim_check_command(const struct conf *c, char *err, size_t len)
{
	char	 path[4096], head[256], *s, *e;
	ssize_t	 n;
	int	 fd, kind;

	if (c->argv == NULL || spawn_path(c->argv[0], c->chdir, path,
	    sizeof(path)) < 0)
		return 0;	/* lookup_status says what is wrong */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) >= 0) {
		n = read(fd, head, sizeof(head) - 1);
		close(fd);
		if (n > 2 && head[0] == '#' && head[1] == '!') {
			head[n] = '\0';
			for (s = head + 2; *s == ' ' || *s == '\t'; s++)
				;
			e = s + strcspn(s, " \t\r\n");
			*e = '\0';
			if (*s == '/')
				strlcpy(path, s, sizeof(path));
		}
	}
	if ((kind = shim_elf_kind(path)) == SHIM_OK)
		return 0;
	snprintf(err, len, "--shim: '%s' (%s) %s; run it in -m shared or "
	    "-m reuseport, or without --shim if it speaks the balance "
	    "protocol itself", c->argv[0], path, kind == SHIM_GO ?
	    "is a Go program, whose system calls bypass libc: the shim "
	    "cannot see its accept()" : "is statically linked: LD_PRELOAD "
	    "cannot load the shim into it");
	return -ENOEXEC;
}

/*
 * $WPOOL_SHIM_LISTENER for a listening socket: "DOMAIN:PROTOCOL:HEX",
 * the address getsockname gives in hex, for the shim's getsockname and
 * getsockopt on the listener it stands in for.  0, or -errno.
 */
int
shim_listener_env(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss), il = sizeof(int);
	const unsigned char *b = (const unsigned char *)&ss;
	int	 dom = 0, proto = 0, n;
	socklen_t i;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	(void)getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &il);
	il = sizeof(int);
	(void)getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &il);
	n = snprintf(buf, len, "WPOOL_SHIM_LISTENER=%d:%d:", dom, proto);
	if (n < 0 || (size_t)n + 2 * sl + 1 > len)
		return -ENOSPC;
	for (i = 0; i < sl; i++)
		n += snprintf(buf + n, len - (size_t)n, "%02x", b[i]);
	return 0;
}
