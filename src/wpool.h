/*
 * wpool.h: the structures and prototypes shared by wpool's files, grouped
 * under the file that owns them.  A file may read another file's structure
 * through these declarations but changes it only through its functions.
 */
#ifndef WPOOL_H
#define WPOOL_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define WPOOL_VERSION		"0.1.0"
#define WPOOL_MAX_WORKERS	1024
#define WPOOL_MAX_LISTENERS	64
#define WPOOL_CTL_MAX_REQUEST	(64 * 1024)

/* Exit statuses, following sysexits(3) and the shell. */
#define EXIT_USAGE	64
#define EXIT_NOEXEC	126
#define EXIT_NOTFOUND	127

/* log.c */
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void	log_init(const char *, int);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
int	log_write_line(int, const char *, size_t);
void	log_outputs_init(void);
struct logstate *log_state(void);

/* listen.c: listener specs; parsing and socket code never log. */
enum listener_type { L_TCP, L_UDP, L_UNIX, L_FD, L_SYSTEMD };

struct listener {
	enum listener_type type;
	char	*spec;		/* the user's spelling, options removed */
	char	*name;		/* LISTEN_FDNAMES entry */
	char	*host;		/* tcp/udp: NULL for all addresses */
	char	*port;
	char	*path;		/* unix */
	int	 adopt_fd;	/* fd:N */
	int	 backlog;	/* 0: the pool's --backlog */
	int	 mode;		/* unix: chmod, -1 unset */
	char	*owner;		/* unix: USER[:GROUP] */
	bool	 v6only, freebind, defer_accept, nodelay;
	int	 rcvbuf, sndbuf;	/* 0: unset */
	/* set by listener_open */
	int	 fd;
	char	 address[128];	/* what it is bound to, for logs and status */
};

int	listener_parse(const char *, struct listener *, char *, size_t);
int	listener_open(struct listener *, int, bool, char *, size_t);
int	listener_open_socket(const struct listener *, int, bool, int *,
	    char *, size_t);
void	listener_close(struct listener *);
void	listener_free(struct listener *);
int	sockaddr_format(const void *, socklen_t, char *, size_t);
int	listener_starter_port(const struct listener *, char *, size_t);
int	listener_steer(int, const int *, int, bool);
int	listener_queue_len(int);
int	listener_dgram_waiting(int);
int	listener_expand_systemd(struct listener **, size_t *, size_t, char *,
	    size_t);

/* ksteer.c: reuseport steering by an eBPF program (needs CAP_BPF). */
#define KSTEER_OUT	0x7fffffffu	/* never chosen */
#define KSTEER_WAIT	(1u << 30)	/* only if no slot is ready */
#define KSTEER_STUCK	(1u << 29)	/* only if every ready one is stuck */
struct ksteer;
int	ksteer_new(size_t, struct ksteer **, char *, size_t);
void	ksteer_free(struct ksteer *);
int	ksteer_join(struct ksteer *, size_t, int, int, char *, size_t);
int	ksteer_attach(struct ksteer *, size_t, int, int, char *, size_t);
bool	ksteer_migrates(const struct ksteer *);
void	ksteer_weigh(struct ksteer *, const int *, const uint32_t *, int);
uint32_t ksteer_placed(const struct ksteer *, int);
void	ksteer_leave(struct ksteer *, int);
/* What an in-place upgrade hands over (upgrade.c), by fd. */
struct ksteer_fds {
	int	 map;
	bool	 migrate;
	size_t	 nl;
	int	 socks[WPOOL_MAX_LISTENERS];
	int	 prog[WPOOL_MAX_LISTENERS];
	int	 nslots[WPOOL_MAX_LISTENERS];
};
void	ksteer_fds(const struct ksteer *, struct ksteer_fds *);
int	ksteer_adopt(const struct ksteer_fds *, size_t, struct ksteer **,
	    char *, size_t);

/* parse.c: the value parsers, and the names of the enums below. */
int	parse_duration(const char *, double *);
int	parse_size(const char *, uint64_t *);
int	parse_signal(const char *, int *);
const char *signal_name(int);
int	parse_workers(const char *, int *);
int	parse_int(const char *, long long, long long, long long *);
int	parse_user(const char *, uid_t *, gid_t *, bool *);
int	parse_bool(const char *, bool *);
int	parse_name(const char *, const char *const *);
extern const char *const mode_names[];
extern const char *const ready_names[];

/* cli.c: the run options' table; argv to struct conf. */
enum pool_mode { MODE_SHARED, MODE_REUSEPORT, MODE_BALANCE, MODE_INETD };
enum ready_mode { READY_EXEC, READY_NOTIFY, READY_LISTEN };

struct conf {
	int	 workers;	/* 0: auto */
	int	 fallback_cpus;
	struct listener *listeners;
	size_t	 nlisteners;
	enum pool_mode mode;
	int	 balancer;	/* index in balancer_names (balance.c) */
	int	 backlog;
	int	 max_queue;
	double	 restart_delay;
	double	 max_restart_delay;
	double	 min_uptime;
	bool	 no_restart;
	int	 stop_signal;
	double	 stop_timeout;
	double	 shutdown_delay;	/* 0: the stop signal at once */
	int	 min_ready;	/* 0: every wanted worker */
	enum ready_mode ready;
	double	 ready_timeout;
	int	 reload_batch;
	char	*control;
	char	*name;
	char	*config;
	char	*user;		/* as given */
	uid_t	 uid;
	gid_t	 gid;
	bool	 set_user;
	gid_t	*groups;
	int	 ngroups;
	char	*chdir;
	char	**env;		/* NAME=VALUE */
	size_t	 nenv;
	double	 watchdog;	/* 0: off */
	long	 max_requests;
	long	 max_requests_jitter;
	uint64_t max_memory;	/* 0: off */
	uint64_t worker_memory;	/* -n auto's budget a worker; 0: none */
	char	*max_crashes;	/* as given: N[/WINDOW]; NULL: off */
	int	 crash_limit;	/* its N; 0: off */
	double	 crash_window;	/* its WINDOW */
	char	*pidfile;
	bool	 log_prefix;
	bool	 cpu_affinity;	/* worker i pinned to the i-th usable CPU */
	bool	 shim;		/* balance: LD_PRELOAD libwpool-shim.so */
	char	*metrics;
	int	 log_level;
	char	**argv;		/* the command */
	uint64_t given;		/* bit i: cli_opts[i] was set */
};

/* One run option: see cli_opts[] in cli.c. */
enum opt_kind { OPT_FLAG, OPT_INT, OPT_DURATION, OPT_SIZE, OPT_SIGNAL,
    OPT_ENUM, OPT_STRING, OPT_LIST, OPT_COMMAND };
enum opt_section { SEC_NONE, SEC_POOL, SEC_SUPERVISION, SEC_WORKERS,
    SEC_MASTER };

#define OPT_CLI		0x01	/* a command-line option */
#define OPT_FILE	0x02	/* a [pool] key */
#define OPT_OFF0	0x04	/* 0 means off: `wpool check` leaves it out */
#define OPT_ABOVE0	0x08	/* a duration or size of 0 is refused */
#define OPT_ONE_OF	0x10	/* flags on one field: one or the other */
#define MODE_BIT(m)	(1u << (m))

struct cpu_info;
struct pool;
struct opt {
	const char *name;	/* --NAME, and the [pool] key */
	char	 letter;	/* -L, or 0 */
	enum opt_kind kind;
	unsigned flags;		/* OPT_* */
	unsigned modes;		/* MODE_BIT()s it works in; 0: every mode */
	const char *mode_why;	/* why only there, for the error */
	size_t	 off, size;	/* its field of struct conf */
	long long min, max;	/* int: the range; a flag on an int: its value */
	const char *const *values;	/* enum: the names, NULL-terminated */
	const char *word;	/* int: a word that stands for 0 ("auto") */
	const char *ex[2];	/* duration: examples for the error */
	const char *accepted;	/* string: the error's "expected ..." */
	bool	(*valid)(const char *);	/* string: NULL takes any */
	int	(*set)(struct conf *, const struct opt *, const char *,
		    const char *, char *, size_t);	/* NULL: by kind */
	const char *dflt;	/* set by conf_defaults, shown by --help */
	enum opt_section section;	/* of --help */
	const char *arg;	/* --help's placeholder; %s: the values */
	const char *help;	/* --help's text; %s: the values */
	const char *file_hint;	/* not a [pool] key: where it goes instead */
};

extern const struct opt cli_opts[];
extern const size_t cli_nopts;

void	conf_defaults(struct conf *);
void	conf_free(struct conf *);
int	cli_parse(int, char **, struct conf *, char *, size_t);
int	cli_apply(struct conf *, const char *, const char *, const char *,
	    char *, size_t);
const struct opt *opt_find(const char *);
int	opt_apply(struct conf *, const struct opt *, const char *,
	    const char *, char *, size_t);
int	opt_format(const struct opt *, const struct conf *, char *, size_t);
void	opt_cli_name(const struct opt *, char *, size_t);
void	opt_peers(const struct opt *, bool, char *, size_t);
int	cli_validate(struct conf *, char *, size_t);
void	cli_usage(int);

/* pidfile.c: the --pidfile, made safely and locked. */
int	pid_file_open(const char *, int *, pid_t *, char *, size_t);
int	pid_file_write(int, pid_t);
void	pid_file_remove(int, const char *);

/* conf.c: the INI config file. */
int	conf_read(struct conf *, const char *, char ***, char *, size_t);
int	conf_split_command(const char *, char ***, char *, size_t);
void	conf_print(FILE *, const struct conf *, const struct cpu_info *);

/*
 * reconf.c: the configuration from the start's argv and the file, at
 * start and at each reload, and what a reload may change.
 */
enum { CONF_HELP = 1, CONF_E_USAGE = 2, CONF_E_FILE = 3 };
void	reconf_init(int, char **);
int	conf_build(struct conf *, int, char **, char *, size_t);
void	conf_release(struct conf *);
int	reconf_prepare(struct pool *, struct conf *, bool, char **, char *,
	    size_t);
void	reconf_commit(struct pool *, struct conf *);
void	reconf_abandon(struct pool *, struct conf *);

/* cpu.c: how many CPUs the pool may use. */
struct cpu_info {
	int	 n;
	char	 source[160];
	/* --memory-per-worker: the workers memory allows; 0: no bound. */
	int	 mem_n;
	uint64_t mem_limit;		/* the limit found */
	char	 mem_source[160];
};

int	cpu_parse_cgroup2_max(const char *, double *);
int	cpu_parse_cgroup1_quota(const char *, const char *, double *);
int	cpu_parse_self_cgroup(const char *, char *, size_t, char *, size_t);
int	cpu_parse_cpulist(const char *);
int	cpu_usable(struct cpu_info *, int);
int	cpu_nth(const cpu_set_t *, int);
int	cpu_for_slot(int);
int	cpu_parse_memory_limit(const char *, uint64_t *);
int	cpu_parse_meminfo(const char *, uint64_t *);
int	cpu_memory_bound(struct cpu_info *, uint64_t);
int	cpu_auto_workers(const struct cpu_info *);
void	cpu_auto_text(const struct cpu_info *, char *, size_t);

/* loop.c: epoll, signalfd and timers; knows nothing about wpool. */
typedef void (*io_cb)(int, uint32_t, void *);
typedef void (*timer_cb)(void *);

struct timer {
	TAILQ_ENTRY(timer) entry;
	double	 deadline;	/* monotonic seconds */
	bool	 armed;
	timer_cb cb;
	void	*arg;
};

int	loop_init(void);
int	loop_add(int, uint32_t, io_cb, void *);
int	loop_mod(int, uint32_t);
void	loop_del(int);
int	loop_signals(const int *, size_t, void (*)(int, pid_t, void *),
	    void *);
void	loop_run(void);
void	loop_break(void);
void	timer_init(struct timer *, timer_cb, void *);
void	timer_set(struct timer *, double);
void	timer_cancel(struct timer *);
void	loop_fire_timers(void);
double	loop_next_deadline(void);
void	loop_deliver_signal(int, pid_t);
struct loop *loop_state(void);

/* spawn.c: everything between fork and exec. */
struct spawn_req {
	char	*const *argv;
	char	**envp;
	char	*pid_slots[2];	/* "NAME=" + room: the child's pid goes there */
	const int *fds;			/* placed at 3, 4, ... */
	int	 nfds;
	int	 stdin_fd;		/* -1: /dev/null */
	int	 stdout_fd;		/* -1: inherit */
	int	 stderr_fd;
	bool	 set_user;
	uid_t	 uid;
	gid_t	 gid;
	const gid_t *groups;
	int	 ngroups;
	const char *chdir;
	const struct rlimit *nofile;	/* restored in the child, or NULL */
	bool	 pin_cpu;		/* --cpu-affinity: pin to cpu */
	int	 cpu;
};

/* Why a child could not exec, read from its status pipe. */
struct spawn_error {
	int	 stage;		/* SPAWN_STAGE_* */
	int	 err;		/* errno */
};
enum { SPAWN_STAGE_FDS = 1, SPAWN_STAGE_USER, SPAWN_STAGE_CHDIR,
    SPAWN_STAGE_EXEC, SPAWN_STAGE_CPU };

pid_t	spawn_child(const struct spawn_req *, int *);
int	spawn_read_status(int, struct spawn_error *);
const char *spawn_stage_name(int);
int	spawn_exit_status(const struct spawn_error *);
int	spawn_lookup(const char *, const char *);
int	spawn_check(const char *, const char *, bool *, char *, size_t);
int	spawn_path(const char *, const char *, char *, size_t);

/* shim.c: --shim, the master's side of libwpool-shim.so. */
enum { SHIM_OK, SHIM_STATIC, SHIM_GO };
int	shim_find(char *, size_t);
int	shim_elf_kind(const char *);
int	shim_check_command(const struct conf *, char *, size_t);
int	shim_listener_env(int, char *, size_t);

/* sys.c: the seam to the kernel that unit tests replace with a fake. */
struct proc_sample;
struct sys_ops {
	pid_t	(*spawn)(const struct spawn_req *, int *);
	int	(*kill)(pid_t, int);		/* 0 or -errno */
	pid_t	(*reap)(int *);			/* WNOHANG: 0 when none */
	double	(*mono)(void);
	double	(*real)(void);
	int	(*sample)(pid_t, struct proc_sample *);
	int	(*queue_len)(int);
	/* Optional: a fake without them signals the leader alone, and
	 * has no children outside its workers. */
	int	(*kill_group)(pid_t, int);	/* tree_signal_group */
	int	(*signal_children)(int, bool (*)(pid_t, void *), void *);
	/* Optional: a fake without it cannot see readiness (-ENOENT). */
	int	(*ready_probe)(pid_t, const uint64_t *, size_t);
	int	(*ready_serving)(pid_t, const uint64_t *, size_t);
	/* Optional: a fake without it has nothing left by a worker. */
	int	(*signal_left)(pid_t, int);	/* tree_signal_left */
};

void	sys_set(const struct sys_ops *);
pid_t	sys_spawn(const struct spawn_req *, int *);
int	sys_kill(pid_t, int);
pid_t	sys_reap(int *);
int	sys_sample(pid_t, struct proc_sample *);
int	sys_queue_len(int);
int	sys_kill_group(pid_t, int);
int	sys_ready_probe(pid_t, const uint64_t *, size_t);
int	sys_ready_serving(pid_t, const uint64_t *, size_t);
int	sys_signal_children(int, bool (*)(pid_t, void *), void *);
int	sys_signal_left(pid_t, int);
double	now_mono(void);
double	now_real(void);

/* procfs.c: /proc readers; parsers take buffers. */
struct proc_sample {
	uint64_t rss_pages;
	uint64_t rss_bytes;		/* the process's own */
	double	 cpu_seconds;
	pid_t	 ppid;
	/*
	 * Its whole tree (it and its descendants): the sum of their PSS
	 * (smaps_rollup) if every one could be read, else of their RSS,
	 * which counts a page shared between them once per process.
	 */
	uint64_t mem_bytes;
	int	 mem_procs;
	bool	 mem_pss;
	double	 mem_cost;		/* CPU seconds its reading took */
};

int	procfs_parse_stat(const char *, long, struct proc_sample *);
int	procfs_parse_statm(const char *, long, uint64_t *);
int	procfs_parse_rollup(const char *, uint64_t *);
int	procfs_sample(pid_t, struct proc_sample *);
pid_t	procfs_ppid(pid_t);
int	procfs_ident(pid_t, pid_t *, unsigned long long *);

/* readyprobe.c: is a worker's tree waiting for connections on a listener? */
int	readyprobe_parse_syscall(const char *, long *, unsigned long[6]);
int	readyprobe_socket_inode(const char *, uint64_t *);
int	readyprobe_parse_epoll(const char *, const uint64_t *, size_t);
int	readyprobe_parse_tcp(const char *, unsigned *, unsigned *, uint64_t *);
enum { READY_NOT_YET = 0, READY_WAITING = 1 };
int	readyprobe_tree(pid_t, const uint64_t *, size_t);
int	readyprobe_serving(pid_t, const uint64_t *, size_t);

/* output.c: worker output through pipes, one whole line at a time. */
struct outbuf;
int	output_open(int *, int *, int *, int *);
struct outbuf *output_attach(int, int, const char *, pid_t);
void	output_writer_gone(pid_t);
void	output_detach(struct outbuf *);
void	output_resume(void);
size_t	output_flush_all(void);
void	output_close_all(void);
void	output_on_idle(void (*)(void *), void *);
void	output_export(int (*)(int, int, pid_t, const char *, void *), void *);
struct output *output_state(void);

/*
 * pool.c: the worker table and its state machine; the only writer.  What
 * differs between modes it asks of pool_mode.c (pool_mode.h, private).
 */
/*
 * A worker's state as pool.c's machine keeps it (and status, --json and
 * /metrics show it); "busy" is a ready worker with open connections.
 */
enum worker_state { W_STARTING, W_READY, W_STOPPING, W_FAILED };

struct worker {
	TAILQ_ENTRY(worker) entry;
	struct pool *pool;		/* its own: for its timers and fds */
	int	 id;
	pid_t	 pid;
	unsigned generation;
	enum worker_state state;
	double	 started_mono;
	double	 started_real;
	double	 ready_mono;
	int	 exec_fd;		/* status pipe until exec */
	bool	 stop_sent;		/* wpool asked it to stop */
	bool	 stop_waiting;		/* balance: signal once it is idle */
	bool	 exec_failed;
	struct spawn_error exec_error;
	bool	 ready_failed;		/* killed for --ready-timeout */
	bool	 watchdog_fired;
	bool	 notified_ready;	/* READY=1 came before exec's EOF */
	bool	 recycle_pending;	/* recycle once the slot is free */
	struct timer ready_timer;
	struct timer kill_timer;
	struct timer watchdog_timer;
	struct timer probe_timer;	/* --ready listen: looks again */
	double	 probe_every;		/* its current interval */
	double	 exec_mono;		/* when exec was seen */
	double	 probe_held_mono;	/* its tree last seen with a listener */
	uint64_t chan_ino;		/* balance: the worker's channel end */
	char	 status_text[256];	/* sd_notify STATUS= */
	pid_t	 main_pid;		/* sd_notify MAINPID= */
	struct proc_sample sample;
	double	 sample_mono;
	double	 cpu_percent;
	struct chan *chan;		/* balance: channel.c writes it */
};
TAILQ_HEAD(worker_list, worker);

/* A replacement under way in a slot: why, and the roles of its workers. */
enum replace_kind { REPLACE_NONE, REPLACE_RESTART, REPLACE_RELOAD,
    REPLACE_RECYCLE };

struct replacement {
	enum replace_kind kind;
	struct worker *old;	/* replaced, being stopped */
	bool	 reload_next;	/* the reload's turn came while busy */
	unsigned gen;		/* the successor's generation */
	int	 forks_failed;	/* its forks that failed, for give-up */
	bool	 new_is_cur;	/* none served: the successor is cur */
	bool	 ending;	/* ended: what follows runs deferred */
	bool	 end_failed;
	char	 why[200];	/* why it failed */
};

/*
 * A slot's state and the events that move it, as pool.c's machine keeps
 * them (its diagram and table open pool.c).  The state is that of the
 * slot's roles: the serving worker (cur), its successor (next) and the
 * predecessor being stopped (repl.old).
 */
/* Why a slot's workers ended, counted for /metrics (metrics.c names them). */
enum exit_cause { EXIT_C_STOPPED, EXIT_C_EXITED, EXIT_C_FAILED,
    EXIT_C_KILLED, EXIT_C_EXEC, EXIT_C_READY_TIMEOUT, EXIT_C_WATCHDOG,
    SLOT_NEXIT_CAUSES };

enum slot_state { SL_EMPTY, SL_BACKOFF, SL_STARTING, SL_SERVING,
    SL_STOPPING, SL_REPLACING, SL_REPLACE_WAIT, SL_RETIRING, SL_NSTATES };
enum slot_event { EV_START, EV_TIMER, EV_READY, EV_READY_TIMEOUT,
    EV_WATCHDOG, EV_NOTIFY_STOPPING, EV_EXIT, EV_REPLACE, EV_REMOVE,
    EV_DRAIN, EV_STOP, EV_ENDED, EV_NEVENTS };

struct slot {
	struct pool *pool;		/* its own: for its timers */
	int	 id;
	bool	 inited;
	enum slot_state state;
	bool	 wanted;		/* id < target */
	struct worker *cur;		/* serving (or starting) */
	struct worker *next;		/* successor during a replace */
	struct replacement repl;
	unsigned restarts;
	unsigned long exits[SLOT_NEXIT_CAUSES];	/* metrics.c's causes */
	unsigned long requests_done;	/* balance: of its workers gone */
	unsigned young_deaths;		/* in a row, each under 0.1 s */
	double	 backoff;
	double	 respawn_at;		/* 0: not waiting */
	double	 mem_backoff;		/* --max-memory: recycled young */
	double	 mem_hold_until;	/* not recycled for memory before */
	struct timer respawn_timer;
	bool	 has_exit;
	int	 last_code;		/* exit code, or -1 */
	int	 last_signal;		/* or 0 */
	int	*fds;			/* reuseport: the slot's sockets */
	int	*queue;			/* their accept queues, at sampling */
	bool	 draining;		/* scaled down, waiting for its queue */
	double	 drain_started;
	int	 drain_spawns;		/* workers started only to drain */
	struct timer drain_timer;
};

enum pool_state { POOL_RUNNING, POOL_STOPPING, POOL_DONE };

#define RELOAD_FAILURES	8

struct reload_state {
	bool	 active;
	bool	 failed;
	unsigned generation;
	int	 total;
	int	 done;
	int	 next_slot;		/* next slot id to replace */
	int	 in_flight;
	char	 error[256];
	double	 started_mono;
	double	 finished_mono;
	bool	 again;			/* another reload was asked for */
};

/*
 * The last RESTART_RECORDS restarts of one worker (`wpool restart ID`),
 * for the clients that follow theirs through status, as reload's.
 */
#define RESTART_RECORDS	16

enum restart_outcome { RESTART_RUNNING, RESTART_DONE, RESTART_FAILED };

struct restart_record {
	unsigned serial;		/* 1, 2, ...: the request's */
	int	 id;			/* the slot */
	enum restart_outcome state;
	pid_t	 pid;			/* the successor's, once known */
	bool	 old_serves;		/* failed: the old worker serves on */
	double	 started_mono;
	double	 finished_mono;
	char	 error[200];
};

struct pool {
	struct conf *conf;
	struct cpu_info cpus;
	pid_t	 pid;
	int	 target;
	unsigned generation;
	enum pool_state state;
	struct slot *slots;		/* WPOOL_MAX_WORKERS, set up on use */
	struct worker_list workers;
	int	 nworkers;
	double	 started_mono;
	double	 started_real;
	unsigned long restarts;
	bool	 ever_started;
	bool	 fatal;			/* the command can never run */
	char	 stop_why[64];
	int	 exit_status;
	bool	 exit_status_set;
	/* --max-crashes: when the last crashes came, oldest first (a ring). */
	struct {
		double	*at;		/* crash_limit of them */
		int	 head, n;
		bool	 gave_up;	/* the pool stops for it */
	} crashes;
	struct reload_state reload;
	/* The last RELOAD_FAILURES failed reloads, oldest first. */
	struct reload_failure {
		unsigned generation;
		char	 error[256];
	} reload_failures[RELOAD_FAILURES];
	int	 nreload_failures;
	/* Restarts of one worker, oldest first; restart_serial the last's. */
	struct restart_record restart_log[RESTART_RECORDS];
	int	 nrestart_log;
	unsigned restart_serial;
	struct timer stop_timer;
	/*
	 * --shutdown-delay (drain.c): asked to stop, the pool is not ready
	 * but serves on until delay_timer; then pool_stop.  stop_mono: when
	 * the stop signal went out; stop_now: KILL went, nothing drains.
	 */
	bool	 stop_delayed;
	struct timer delay_timer;
	double	 stop_mono;
	bool	 stop_now;
	struct timer sample_timer;
	struct timer output_timer;	/* done: bounds the wait for output */
	bool	 output_waited;
	struct {
		struct timer timer;	/* polls until none is left */
		bool	 asked;		/* they got the stop signal */
		bool	 kill;		/* --stop-timeout passed: KILL them */
	} leftovers;			/* children that are not workers */
	char	**env_base;
	size_t	 nenv_base;
	char	*control_path;
	char	*einhorn_path;		/* -u workers' EINHORN_SOCK_PATH */
	char	*notify_path;
	struct control *ctl;		/* control.c's server */
	struct metrics *metrics;	/* metrics.c's server, if --metrics */
	struct notify *notify;		/* notify.c's socket, if it opened */
	struct sdnotify *sdnotify;	/* sdnotify.c's: wpool's own manager */
	/* The master-accept modes' own, each its file's only (balance.h). */
	struct acceptq *acceptq;	/* acceptq.c: listeners, queue */
	struct channels *channels;	/* channel.c: the watch over them */
	struct balance *balance;	/* balance.c: the balancers' state */
	struct inetd *inetd;		/* inetd.c: connection processes */
	struct steer *steer;		/* pool_mode.c: reuseport by load */
	/* The modules' state, all of the master's reachable from here. */
	struct loop *loop;		/* loop.c's: fds, timers, signals */
	struct logstate *log;		/* log.c's: name, level, sinks */
	struct output *out;		/* output.c's: the workers' pipes */
	struct tree *tree;		/* tree.c's: what dead workers left */
	int	 lqueue[WPOOL_MAX_LISTENERS];	/* shared: accept queues */
	int	 group[2 * WPOOL_MAX_WORKERS];	/* reuseport group order */
	int	 ngroup;
	struct rlimit nofile;
	/* Replacements that ended, in order: their follow-up runs deferred. */
	struct timer defer_timer;
	int	 deferred[WPOOL_MAX_WORKERS];
	int	 ndeferred;
	/*
	 * Events raised while a transition runs: queued, run after it
	 * (pool.c's slot_event); the worker by pid, since it may go.
	 */
	bool	 in_event;
	enum slot_event ev_doing;	/* the one running, for its log */
	struct slot_qev {
		int	 slot;
		enum slot_event ev;
		pid_t	 pid;		/* 0: no worker */
		int	 status;
	} *evq;
	size_t	 nevq, evq_cap;
	/* Transitions taken, by state and event; those the table refuses. */
	unsigned long transitions[SL_NSTATES][EV_NEVENTS];
	unsigned long bad_transitions;
};

int	pool_init(struct pool *, struct conf *);
void	pool_free(struct pool *);
int	pool_start(struct pool *);
int	pool_run(struct pool *);
void	pool_stop(struct pool *, bool);
void	pool_stop_request(struct pool *);
bool	pool_ready(const struct pool *, char *, size_t);
int	pool_reload(struct pool *, unsigned *, char *, size_t);
int	pool_reload_dry(struct pool *, char **, char *, size_t);
int	pool_scale(struct pool *, int, char *, size_t);
int	pool_restart(struct pool *, int, char *, size_t);
int	pool_signal(struct pool *, int, int, char *, size_t);
struct worker *pool_find_pid(struct pool *, pid_t);
void	pool_worker_ready(struct pool *, struct worker *);
void	pool_worker_idle(struct pool *, struct worker *);
void	pool_worker_notify(struct pool *, struct worker *, const char *,
	    const char *);
void	pool_sample(struct pool *);
int	pool_count(const struct pool *, enum worker_state);
/* A slot as an in-place upgrade hands it over (upgrade.c). */
struct slot_adopt {
	int	 id;
	unsigned restarts;
	unsigned long exits[SLOT_NEXIT_CAUSES];
	unsigned long requests_done;
	unsigned young_deaths;
	double	 backoff;
	double	 respawn_in;		/* < 0: not waiting */
	bool	 has_exit;
	int	 last_code, last_signal;
	const int *fds;			/* reuseport: its sockets, or NULL */
	pid_t	 pid;			/* its ready worker, or 0 */
	unsigned generation;
	double	 started_mono, started_real, ready_mono;
	pid_t	 main_pid;
	const char *status_text;
};
/* The pool's own, as an in-place upgrade hands it over. */
struct pool_adopt {
	int	 target;
	unsigned generation;
	unsigned long restarts;
	double	 started_mono, started_real;
	struct reload_state reload;	/* the last one; not active */
	struct reload_failure failures[RELOAD_FAILURES];
	int	 nfailures;
};
void	pool_adopt(struct pool *, const struct pool_adopt *);
int	pool_adopt_slot(struct pool *, const struct slot_adopt *);
void	pool_adopt_done(struct pool *);
void	pool_recycle(struct pool *, struct worker *, const char *);
void	pool_check_done(struct pool *);
const char *worker_state_name(enum worker_state);
const char *worker_shown_state(const struct worker *);
/* A worker's role in its slot. */
enum worker_role { ROLE_NONE, ROLE_CUR, ROLE_NEXT, ROLE_OLD };
enum worker_role worker_role(const struct pool *, const struct worker *);
const char *slot_state_name(enum slot_state);
const char *slot_event_name(enum slot_event);
unsigned slot_transitions(enum slot_state, enum slot_event);

/*
 * tree.c: the workers' process groups, the master's adopted children, and
 * what a worker that died while the pool runs left behind.
 */
int	tree_signal_group(pid_t, int);
int	tree_children(pid_t *, int);
int	tree_signal_children(int, bool (*)(pid_t, void *), void *);
int	tree_signal_left(pid_t, int);
struct tree *tree_state(void);
void	tree_worker_gone(struct pool *, int, pid_t);
void	tree_close(void);

/*
 * The master-accept modes (balance, inetd): acceptq.c, channel.c,
 * balance.c and inetd.c, which share balance.h among themselves.
 */
struct json_object;

/* acceptq.c */
int	balance_init(struct pool *, char *, size_t);
void	balance_kick(struct pool *);
int	balance_stop(struct pool *, int);
int	balance_queued(const struct pool *);
unsigned long balance_accepted(const struct pool *);

/*
 * channel.c.  The watch over a worker's channel: one that leaves
 * connections unread with no progress (nothing read, nothing reported
 * closed) for BALANCE_STALL_GRACE has them taken back (WATCH_PULL) and
 * gets one at a time until it reads or reports one closed; after
 * BALANCE_STUCK_SECONDS it is replaced (WATCH_RECYCLE).
 */
#define BALANCE_STALL_GRACE	1.0
#define BALANCE_STUCK_SECONDS	5.0
#define WATCH_PULL	0x1
#define WATCH_STALLED	0x2		/* the first pull of a stall */
#define WATCH_RECYCLE	0x4
#define WATCH_RESUMED	0x8		/* a stalled one read again */

struct chan_watch {
	uint64_t seen_consumed;		/* bytes it had read at the last look */
	unsigned long seen_closes;
	double	 progress_at;		/* it last read or closed one */
	bool	 stalled;		/* what waited was taken back */
	bool	 recycled;
};

void	balance_watch_start(struct chan_watch *, uint64_t, unsigned long,
	    double);
int	balance_watch(struct chan_watch *, uint64_t, long, unsigned long,
	    double);
bool	balance_watch_closed(struct chan_watch *, double);
int	balance_worker_channel(struct pool *, struct worker *, int *);
void	balance_worker_gone(struct pool *, struct worker *);
long	balance_active(const struct worker *);
long	balance_requests(const struct worker *);
bool	balance_has_channel(const struct worker *);
int	balance_parse_message(const char *, size_t, long long *);

/* `wpool upgrade` in balance mode: the channels and the queue, as JSON. */
struct json_object *chan_export(struct pool *, struct worker *);
int	chan_adopt(struct pool *, struct worker *, struct json_object *);
struct json_object *acceptq_export(struct pool *);
void	acceptq_adopt(struct pool *, struct json_object *);
int	balance_flush(struct pool *);

/* balance.c */
void	balance_pool_resized(struct pool *);
void	balance_free(struct pool *);
extern const char *const balancer_names[];	/* its balancers' table */
int	balance_ring_lookup(const struct pool *, uint32_t,
	    bool (*)(int, void *), void *);

/* inetd.c */
bool	balance_reaped(struct pool *, pid_t, int);
bool	inetd_has_child(const struct pool *, pid_t);
int	inetd_running(const struct pool *);
int	inetd_refuse(const struct pool *, const char *, char *, size_t);
struct json_object *balance_status_json(struct pool *, double);

/* notify.c: the sd_notify datagram socket. */
int	notify_open(struct pool *, char *, size_t);
void	notify_close(struct pool *);
int	notify_fd(const struct pool *);
int	notify_parse(const char *, size_t, void (*)(const char *,
	    const char *, void *), void *);

/* sdnotify.c: wpool as a client of its own NOTIFY_SOCKET and fd store. */
struct sdnotify *sdnotify_state(void);
int	sdnotify_init(const struct conf *, char *, size_t);
void	sdnotify_start(struct pool *);
void	sdnotify_update(struct pool *);
void	sdnotify_stopping(struct pool *);
void	sdnotify_upgrading(struct pool *, bool);
int	sdnotify_adopt(const struct listener *, int, int, bool, int *);
int	sdnotify_listener_open(struct listener *, int, bool, char *, size_t);
void	sdnotify_store(const struct listener *, int, int);
void	sdnotify_forget_fd(struct pool *, int);
bool	sdnotify_stored(int);
void	sdnotify_close(void);

/*
 * upgrade.c: `wpool upgrade`, the master re-executing itself in place
 * with its state handed over (and the new image adopting it).
 */
int	upgrade_init(int, char **);
int	upgrade_start(const struct conf *);
bool	upgrade_adopting(void);
void	upgrade_abandon(const char *);
int	upgrade_take_listener(struct listener *, size_t);
int	upgrade_take_control(char *, size_t);
int	upgrade_take_notify(char *, size_t);
int	upgrade_take_fd(const char *);
int	upgrade_take_ksteer(struct ksteer_fds *);
int	upgrade_adopt(struct pool *);
int	upgrade_request(struct pool *, const char *, unsigned *, char *,
	    size_t);
bool	upgrade_pending(void);
void	upgrade_run(struct pool *);
void	upgrade_status(struct json_object *);
void	upgrade_free(void);

/* control.c: the control socket server. */
int	control_open(struct pool *, const char *, char *, size_t);
int	control_fd(const struct pool *);
void	control_close(struct pool *);
char	*control_dispatch(struct pool *, const char *, size_t, uid_t, pid_t);

/* metrics.c: --metrics, Prometheus text and JSON over HTTP. */
int	metrics_open(struct pool *, const char *, char *, size_t);
void	metrics_close(struct pool *);
int	metrics_fd(const struct pool *);
char	*metrics_text(struct pool *, size_t *);
void	metrics_count_exit(struct slot *, const struct worker *, int);

/* status.c: the pool as a json-c object (pure). */
struct json_object *status_json(struct pool *, double, bool);
size_t	text_clean(const char *, size_t, char *, size_t);

/* client.c: the control subcommands. */
int	client_main(int, char **, const char *, const char *);
bool	client_is_command(const char *);
int	control_default_path(const char *, char *, size_t);

/* fdrecv.c: receiving from peers that may pass descriptors. */
#define FDRECV_MAX_FDS	253	/* the kernel's SCM_MAX_FD */
struct ucred;
int	fdrecv_refuse(int);
int	fdrecv_allow(int);
void	fdrecv_dispose(int);
void	fdrecv_holder_mode(void);
pid_t	fdrecv_fork_child(int *, int);
ssize_t	fdrecv_msg(int, void *, size_t, int, struct ucred *, bool *, int *);

/* util */
int	set_cloexec(int, bool);
int	set_nonblock(int, bool);
int	read_small_file(const char *, char *, size_t);
char	*xstrdup(const char *);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
int	xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	format_duration(double, char *, size_t);
int	format_bytes(uint64_t, char *, size_t);

#endif
