/*
 * pidfile.c: the --pidfile.  Owns its descriptor and its lock from the
 * start to the master's exit.  libbsd's pidfile_open() follows a symlink
 * and truncates what it names; a pid file is made here without following
 * one, only in a directory that no other user can write, and only if it is
 * a plain file of ours.  Never logs: errors go to the caller's buffer.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

/* -EPERM means an unsafe place to the caller: a call's own EPERM is not. */
static int
sys_fail(int e)
{
	return e == EPERM ? -EACCES : -e;
}

/*
 * Anyone who can write the directory can put a symlink or a hard link in
 * the pid file's place, or rename it away while we hold it, as systemd
 * warns for PIDFile=.  A sticky directory (/tmp, /run/lock) is safe if
 * root or we own it: others cannot touch names that are not theirs.
 */
static int
dir_check(int dfd, const char *path, const char *dir, char *err,
    size_t len)
{
	struct stat st;

	if (fstat(dfd, &st) < 0) {
		snprintf(err, len, "cannot open pid file %s: %s", path,
		    strerror(errno));
		return sys_fail(errno);
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, len, "--pidfile %s: its directory %s belongs to "
		    "uid %u, who could replace the file; expected a directory "
		    "of root's or ours", path, dir, (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
	    (st.st_mode & S_ISVTX) == 0) {
		snprintf(err, len, "--pidfile %s: its directory %s can be "
		    "written by other users (mode %04o), who could replace the "
		    "file; expected one only its owner writes, or a sticky one",
		    path, dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* A pid file may only be a plain file of ours with one name. */
static int
file_check(const struct stat *st, const char *path, char *err, size_t len)
{
	if (S_ISLNK(st->st_mode))
		snprintf(err, len, "--pidfile %s: is a symlink; refusing to "
		    "follow it", path);
	else if (!S_ISREG(st->st_mode))
		snprintf(err, len, "--pidfile %s: is not a regular file", path);
	else if (st->st_uid != geteuid())
		snprintf(err, len, "--pidfile %s: belongs to uid %u, not to "
		    "uid %u; refusing to write it", path, (unsigned)st->st_uid,
		    (unsigned)geteuid());
	else if (st->st_nlink != 1)
		snprintf(err, len, "--pidfile %s: has %u names (a hard link); "
		    "refusing to write it", path, (unsigned)st->st_nlink);
	else
		return 0;
	return -EPERM;
}

/* The pid in a file that another process holds locked, or 0. */
static pid_t
holder(int fd)
{
	char	 buf[24];
	ssize_t	 n;
	long long v;

	if ((n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (parse_int(buf, 1, INT32_MAX, &v) < 0)
		return 0;
	return (pid_t)v;
}

/*
 * Opens and locks path into *fdp.  Returns 0; -EPERM (err set) for a
 * place or a file that is not safe, a usage error; -EEXIST (*other: its
 * pid, or 0) if another process holds it; another -errno (err set).
 * The directory is checked, not its parents: a path through a directory
 * another user controls is the caller's choice.
 */
int
pid_file_open(const char *path, int *fdp, pid_t *other, char *err,
    size_t len)
{
	struct stat st, now;
	char	*dcopy = xstrdup(path), *bcopy = xstrdup(path), *dir, *base;
	int	 dfd = -1, fd = -1, r, tries;

	*other = 0;
	dir = dirname(dcopy);
	base = basename(bcopy);
	if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = sys_fail(errno);
		snprintf(err, len, "cannot open pid file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((r = dir_check(dfd, path, dir, err, len)) < 0)
		goto out;
	/*
	 * The previous holder may remove the file between our open and our
	 * lock: the lock counts only if the name still leads to it.
	 */
	for (tries = 0; tries < 8; tries++) {
		/* First by name, for a precise message (the open may refuse
		 * what another user planted with EACCES: protected_regular). */
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (r = file_check(&st, path, err, len)) < 0)
			goto out;
		if ((fd = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC, 0644)) < 0) {
			r = errno == ELOOP ? -EPERM : sys_fail(errno);
			if (errno == ELOOP)
				snprintf(err, len, "--pidfile %s: is a symlink; "
				    "refusing to follow it", path);
			else
				snprintf(err, len, "cannot open pid file %s: %s",
				    path, strerror(errno));
			goto out;
		}
		/* What was opened is what counts. */
		if (fstat(fd, &st) < 0) {
			r = sys_fail(errno);
			snprintf(err, len, "cannot open pid file %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if ((r = file_check(&st, path, err, len)) < 0)
			goto out;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EEXIST : sys_fail(errno);
			if (r == -EEXIST)
				*other = holder(fd);
			else
				snprintf(err, len, "cannot lock pid file %s: %s",
				    path, strerror(errno));
			goto out;
		}
		if (fstatat(dfd, base, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now.st_dev == st.st_dev && now.st_ino == st.st_ino)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		snprintf(err, len, "cannot open pid file %s: it keeps being "
		    "replaced", path);
		r = -EAGAIN;
		goto out;
	}
	if (ftruncate(fd, 0) < 0) {
		r = sys_fail(errno);
		snprintf(err, len, "cannot write pid file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	*fdp = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(dcopy);
	free(bcopy);
	return r;
}

int
pid_file_write(int fd, pid_t pid)
{
	char	 buf[24];
	int	 n;

	ssize_t	 w;

	n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	if (ftruncate(fd, 0) < 0 || (w = pwrite(fd, buf, (size_t)n, 0)) < 0)
		return -errno;
	return w == n ? 0 : -EIO;
}

/* Removed while still locked, so that no second master sees it free. */
void
pid_file_remove(int fd, const char *path)
{
	unlink(path);
	close(fd);
}
