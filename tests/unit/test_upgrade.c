/*
 * test_upgrade.c: the new image's side of an in-place upgrade on a fake
 * kernel (as test_lifecycle.c's): a pool adopts the slots and counters an
 * old image handed over (pool_adopt, pool_adopt_slot, pool_adopt_done),
 * starts nothing that was there, and supervises what it adopted as its
 * own: a worker that dies is restarted and counted on from the handed-over
 * count, a slot backing off restarts when its remaining delay ends, a
 * wanted slot that was not handed over starts, and every transition is in
 * the lifecycle table.
 */
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "wpool.h"
#include "tap.h"
#include "fakesys.h"

static struct conf C;
static struct pool P;

/*
 * What an old image of 3 slots hands over, as upgrade.c's JSON: slot 0
 * serving (2 restarts, generation 3), slot 1 backing off (1.5 s left of
 * 2 s), slot 2 not at all (scaled up into, never started, say).
 */
static const char state_fmt[] =
"{\"format\":%d,\"pid\":%d,\"mode\":\"shared\",\"target\":3,"
"\"generation\":3,\"restarts\":7,\"started_mono\":%f,\"started_real\":%f,"
"\"upgrades\":1,\"attempt\":2,\"asked_mono\":%f,"
"\"reload\":{\"generation\":3,\"failed\":false,\"total\":3,\"done\":3,"
"\"error\":\"\",\"started_mono\":1.0,\"finished_mono\":2.0,"
"\"failures\":[{\"generation\":2,\"error\":\"worker 1 exited\"}]},"
"\"listeners\":[],\"group\":[],"
"\"slots\":[{\"id\":0,\"restarts\":2,\"exits\":[0,0,0,2,0,0,0],"
"\"requests_done\":0,\"young_deaths\":0,\"backoff\":0,\"respawn_in\":-1,"
"\"has_exit\":true,\"last_code\":-1,\"last_signal\":9,"
"\"worker\":{\"pid\":%d,\"generation\":3,\"started_mono\":%f,"
"\"started_real\":%f,\"ready_mono\":%f,\"main_pid\":0,"
"\"status_text\":\"serving\"}},"
"{\"id\":1,\"restarts\":5,\"exits\":[0,1,0,0,0,0,0],\"requests_done\":0,"
"\"young_deaths\":3,\"backoff\":2,\"respawn_in\":1.5,\"has_exit\":true,"
"\"last_code\":1,\"last_signal\":0}],"
"\"control\":{\"fd\":%d,\"path\":\"/nonexistent/ctl.sock\"},"
"\"argv\":[\"wpool\"],\"output\":[]}";

/* A file holding the state, at WPOOL_UPGRADE_FD, as the old image passes. */
static void
state_env(int format, pid_t worker, bool probe)
{
	char	 path[] = "/tmp/test_upgrade.XXXXXX", *s, num[16];
	int	 fd = mkstemp(path);

	unlink(path);
	xasprintf(&s, state_fmt, format, (int)getpid(), F.now - 100,
	    1.7e9 + F.now - 100, F.now, (int)worker, F.now - 50,
	    1.7e9 + F.now - 50, F.now - 49, STDERR_FILENO);
	ok(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "state written");
	free(s);
	snprintf(num, sizeof(num), "%d", fd);
	setenv("WPOOL_UPGRADE_FD", num, 1);
	if (probe)
		setenv("WPOOL_UPGRADE_PROBE", "1", 1);
}

static void
test_adopt(void)
{
	struct pool *p = &P;
	struct worker *w;
	pid_t	 adopted = FAKE_PID0 + 200, next;

	memset(&F, 0, sizeof(F));
	F.obey_term = true;
	F.now = 1000;
	F.next_pid = FAKE_PID0;
	conf_defaults(&C);
	C.workers = 1;			/* the new image's -n: the state wins */
	C.ready = READY_EXEC;
	C.argv = fake_argv;

	/* The probe: a state of a newer format is refused, one it reads not. */
	state_env(2, adopted, true);
	is_int(upgrade_start(&C), 1, "the probe refuses format 2");
	ok(getenv("WPOOL_UPGRADE_FD") == NULL, "and takes the variables out "
	    "of the environment (workers never see them)");
	state_env(1, adopted, true);
	is_int(upgrade_start(&C), 0, "the probe takes format 1");
	ok(!upgrade_adopting(), "a probe adopts nothing");

	proc(adopted)->alive = true;
	state_env(1, adopted, false);
	is_int(upgrade_start(&C), -1, "the new image takes the state");
	ok(upgrade_adopting(), "and adopts");
	pool_init(p, &C);
	pool_start(p);
	settle();
	ok(!upgrade_adopting(), "once the pool started, it has committed");

	is_int(p->target, 3, "the target is the old image's, not -n");
	is_int(p->generation, 3, "the generation is handed over");
	is_int((int)p->restarts, 7, "the pool's restarts are handed over");
	is_dbl(p->started_mono, F.now - 100, "the pool's start time too");
	is_int(p->reload.generation, 3, "and the last reload");
	ok(!p->reload.active && p->reload.done == 3, "which is done");
	is_int(p->nreload_failures, 1, "and the recent failed reloads");
	w = p->slots[0].cur;
	ok(w != NULL && w->pid == adopted && w->state == W_READY &&
	    w->generation == 3, "slot 0's worker is adopted ready, as it was");
	is_str(w != NULL ? w->status_text : "", "serving",
	    "with its sd_notify status");
	is_dbl(w != NULL ? w->started_mono : 0, F.now - 50,
	    "and its start time");
	is_int(p->slots[0].state, SL_SERVING, "slot 0 serves");
	is_int(p->slots[1].state, SL_BACKOFF, "slot 1 backs off");
	is_int(F.spawns, 1, "only slot 2, which had nothing, is started");
	is_int(p->slots[2].state, SL_SERVING, "slot 2 serves");
	is_int(p->nworkers, 2, "two workers now");

	advance(1.4);
	is_int(F.spawns, 1, "slot 1 not restarted before its 1.5 s are up");
	advance(0.2);
	is_int(F.spawns, 2, "slot 1 restarted when they are");
	is_int((int)p->slots[1].restarts, 5, "its restart was counted when it died");

	fake_exit(adopted, SIGKILL);
	settle();
	next = p->slots[0].cur != NULL ? p->slots[0].cur->pid : -1;
	ok(next > 0 && next != adopted, "the adopted worker, killed, is "
	    "replaced");
	is_int((int)p->slots[0].restarts, 3, "slot 0 counted on from 2");
	is_int((int)p->slots[0].exits[EXIT_C_KILLED], 3,
	    "its killed exits counted on from 2");

	pool_stop(p, true);
	settle();
	is_int((int)p->bad_transitions, 0, "every transition is in the table");
	ok(p->state == POOL_DONE && p->nworkers == 0, "the pool ends clean");
	pool_free(p);
	upgrade_free();
}

int
main(void)
{
	log_init("test", getenv("DEBUG") ? LOG_DEBUG : LOG_ERROR);
	sys_set(&fake_ops);
	if (loop_init() < 0)
		return 1;
	test_adopt();
	return done_testing();
}
