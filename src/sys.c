/*
 * sys.c: the seam between the lifecycle (pool.c) and the kernel.  Spawning,
 * signalling and reaping workers, the clocks, /proc sampling and the
 * accept-queue length go through one table of function pointers, which a
 * unit test replaces with a fake (as dinit's bp_sys): the lifecycle then
 * runs on virtual time with no real process.  Owns nothing else.
 */
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <time.h>

#include "wpool.h"

static double
real_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
real_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
real_kill(pid_t pid, int sig)
{
	return kill(pid, sig) < 0 ? -errno : 0;
}

/* Any child that has exited, without blocking: 0 when none has. */
static pid_t
real_reap(int *status)
{
	pid_t	 pid = waitpid(-1, status, WNOHANG);

	return pid < 0 ? -errno : pid;
}

static const struct sys_ops real_ops = {
	.spawn = spawn_child,
	.kill = real_kill,
	.reap = real_reap,
	.mono = real_mono,
	.real = real_real,
	.sample = procfs_sample,
	.queue_len = listener_queue_len,
	.kill_group = tree_signal_group,
	.signal_children = tree_signal_children,
	.ready_probe = readyprobe_tree,
	.ready_serving = readyprobe_serving,
	.signal_left = tree_signal_left,
};

static const struct sys_ops *ops = &real_ops;

/* NULL puts the kernel back. */
void
sys_set(const struct sys_ops *o)
{
	ops = o != NULL ? o : &real_ops;
}

pid_t
sys_spawn(const struct spawn_req *req, int *status_fd)
{
	return ops->spawn(req, status_fd);
}

int
sys_kill(pid_t pid, int sig)
{
	return ops->kill(pid, sig);
}

pid_t
sys_reap(int *status)
{
	return ops->reap(status);
}

int
sys_sample(pid_t pid, struct proc_sample *s)
{
	return ops->sample(pid, s);
}

int
sys_queue_len(int fd)
{
	return ops->queue_len(fd);
}

/* sig to the process group a worker leads (spawn.c makes one each). */
int
sys_kill_group(pid_t leader, int sig)
{
	return ops->kill_group != NULL ? ops->kill_group(leader, sig) :
	    ops->kill(leader, sig);
}

/* Whether pid's tree waits on one of the sockets (readyprobe.c). */
int
sys_ready_probe(pid_t pid, const uint64_t *inos, size_t n)
{
	return ops->ready_probe != NULL ? ops->ready_probe(pid, inos, n) :
	    -ENOENT;
}

/* Whether pid's tree serves a connection from the sockets (readyprobe.c). */
int
sys_ready_serving(pid_t pid, const uint64_t *inos, size_t n)
{
	return ops->ready_serving != NULL ? ops->ready_serving(pid, inos,
	    n) : 0;
}

/* sig to the master's children that skip says are not workers. */
int
sys_signal_children(int sig, bool (*skip)(pid_t, void *), void *arg)
{
	return ops->signal_children != NULL ?
	    ops->signal_children(sig, skip, arg) : 0;
}

/* sig to what a reaped worker left of its tree (tree.c): how many. */
int
sys_signal_left(pid_t leader, int sig)
{
	return ops->signal_left != NULL ? ops->signal_left(leader, sig) : 0;
}

double
now_mono(void)
{
	return ops->mono();
}

double
now_real(void)
{
	return ops->real();
}
