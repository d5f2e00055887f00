/*
 * ksteer.c: reuseport steering in the kernel, by an eBPF SK_REUSEPORT
 * program: each new TCP connection goes to the slot with the fewest
 * connections placed on it so far (plus the weight the master gives it:
 * none for a ready slot with a short accept queue, much for a stuck, a
 * starting or a closing one), and that slot's count goes up, in the
 * kernel, as the connection is placed.  A burst of connections onto idle
 * workers is spread evenly before the master could look; the master only
 * sets the weights, in memory it shares with the program (a mapped BPF
 * array), so a change of weight costs no system call.  Loaded as
 * select-or-migrate (Linux >= 5.14), the same program also picks where a
 * closing slot's queued and half-open connections go, so none is reset,
 * whatever net.ipv4.tcp_migrate_req says.
 *
 * Needs CAP_BPF (or CAP_SYS_ADMIN): without it ksteer_new fails and the
 * caller steers with the classic BPF program of listen.c.  Owns the
 * score map and its mapping, and each TCP listener's socket array and
 * program.  Never logs: errors go to the caller's buffer.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool.h"

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

#define KS_MAX		WPOOL_MAX_WORKERS
/* Placements above this are taken off every slot (the differences stay). */
#define KS_REBASE	(1u << 27)

/*
 * The map's one value, shared with the program: a slot is chosen by the
 * least placed + base, among those below KSTEER_OUT; id[i] = i, read by
 * the program so that the chosen index is not a constant to the
 * verifier (which then checks the scan in one pass, not once per index).
 */
struct ksteer_mem {
	uint32_t placed[KS_MAX];	/* the program's: connections placed */
	uint32_t base[KS_MAX];		/* the master's: KSTEER_* weight */
	uint32_t id[KS_MAX];
};

struct ksteer_listener {
	int	 socks;		/* REUSEPORT_SOCKARRAY by slot id, or -1 */
	int	 prog;		/* the program attached to the group, or -1 */
	int	 nslots;	/* the slot ids it scans: 0 .. nslots - 1 */
};

struct ksteer {
	int	 map;		/* the array map holding one ksteer_mem */
	struct ksteer_mem *mem;
	size_t	 nl;
	struct ksteer_listener *l;
	bool	 migrate;	/* loaded as select-or-migrate */
	bool	 adopted;	/* from the image before an upgrade */
};

static int
sys_bpf(int cmd, union bpf_attr *a)
{
	return (int)syscall(__NR_bpf, cmd, a, sizeof(*a));
}

static struct bpf_insn
insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	struct bpf_insn i;

	memset(&i, 0, sizeof(i));
	i.code = code;
	i.dst_reg = dst & 0xf;
	i.src_reg = src & 0xf;
	i.off = off;
	i.imm = imm;
	return i;
}

#define MOV_K(d, k)	insn(BPF_ALU64 | BPF_MOV | BPF_K, (d), 0, 0, (k))
#define MOV_X(d, s)	insn(BPF_ALU64 | BPF_MOV | BPF_X, (d), (s), 0, 0)
#define ADD_K(d, k)	insn(BPF_ALU64 | BPF_ADD | BPF_K, (d), 0, 0, (k))
#define ADD_X(d, s)	insn(BPF_ALU64 | BPF_ADD | BPF_X, (d), (s), 0, 0)
#define LSH_K(d, k)	insn(BPF_ALU64 | BPF_LSH | BPF_K, (d), 0, 0, (k))
#define LDX_W(d, s, o)	insn(BPF_LDX | BPF_W | BPF_MEM, (d), (s), (o), 0)
#define STX_W(d, s, o)	insn(BPF_STX | BPF_W | BPF_MEM, (d), (s), (o), 0)
#define ST_W(d, o, k)	insn(BPF_ST | BPF_W | BPF_MEM, (d), 0, (o), (k))
#define XADD_W(d, s)	insn(BPF_STX | BPF_W | BPF_ATOMIC, (d), (s), 0, BPF_ADD)
#define JMP_K(op, d, k, o) insn(BPF_JMP | (op) | BPF_K, (d), 0, (o), (k))
#define JMP_X(op, d, s, o) insn(BPF_JMP | (op) | BPF_X, (d), (s), (o), 0)
#define CALL(f)		insn(BPF_JMP | BPF_CALL, 0, 0, 0, (f))
#define EXIT()		insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* r = the map whose fd is fd (two instructions). */
static int
ld_map(struct bpf_insn *p, uint8_t r, int fd)
{
	p[0] = insn(BPF_LD | BPF_DW | BPF_IMM, r, BPF_PSEUDO_MAP_FD, 0, fd);
	p[1] = insn(0, 0, 0, 0, 0);
	return 2;
}

#define OFF(field, i) \
	((int16_t)(offsetof(struct ksteer_mem, field) + 4 * (size_t)(i)))

/*
 * The program for slot ids 0 .. n - 1 (unrolled):
 *	r7 = &mem; best = KSTEER_OUT; bi = KS_MAX
 *	for each i: if placed[i] + base[i] < best: best = it, bi = id[i]
 *	if bi < KS_MAX and select(socks[bi]) succeeds: placed[bi] += 1
 *	return SK_PASS	(nothing selected: the kernel's hash picks)
 * Returns the instructions written (p has room for 32 + 6 n).
 */
static int
build(struct bpf_insn *p, int map, int socks, int n)
{
	int	 k = 0, i, j1, j2, j3, pass;

	p[k++] = MOV_X(6, 1);			/* r6 = ctx */
	p[k++] = ST_W(10, -4, 0);		/* key 0 */
	p[k++] = MOV_X(2, 10);
	p[k++] = ADD_K(2, -4);
	k += ld_map(p + k, 1, map);
	p[k++] = CALL(BPF_FUNC_map_lookup_elem);
	j1 = k;
	p[k++] = JMP_K(BPF_JEQ, 0, 0, 0);	/* no value: pass */
	p[k++] = MOV_X(7, 0);
	p[k++] = MOV_K(8, KS_MAX);
	p[k++] = MOV_K(9, (int32_t)KSTEER_OUT);
	for (i = 0; i < n; i++) {
		p[k++] = LDX_W(1, 7, OFF(placed, i));
		p[k++] = LDX_W(2, 7, OFF(base, i));
		p[k++] = ADD_X(1, 2);
		p[k++] = JMP_X(BPF_JGE, 1, 9, 2);
		p[k++] = MOV_X(9, 1);
		p[k++] = LDX_W(8, 7, OFF(id, i));
	}
	j2 = k;
	p[k++] = JMP_K(BPF_JGE, 8, KS_MAX, 0);	/* none below OUT: pass */
	p[k++] = STX_W(10, 8, -8);		/* key bi */
	p[k++] = MOV_X(1, 6);
	k += ld_map(p + k, 2, socks);
	p[k++] = MOV_X(3, 10);
	p[k++] = ADD_K(3, -8);
	p[k++] = MOV_K(4, 0);
	p[k++] = CALL(BPF_FUNC_sk_select_reuseport);
	j3 = k;
	p[k++] = JMP_K(BPF_JNE, 0, 0, 0);	/* not selected: pass */
	p[k++] = LSH_K(8, 2);
	p[k++] = ADD_X(7, 8);			/* &placed[bi] */
	p[k++] = MOV_K(1, 1);
	p[k++] = XADD_W(7, 1);
	pass = k;
	p[k++] = MOV_K(0, SK_PASS);
	p[k++] = EXIT();
	p[j1].off = (int16_t)(pass - j1 - 1);
	p[j2].off = (int16_t)(pass - j2 - 1);
	p[j3].off = (int16_t)(pass - j3 - 1);
	return k;
}

/* A placement for nl listeners, nothing open yet. */
static struct ksteer *
ks_alloc(size_t nl)
{
	struct ksteer *k;
	size_t	 i;

	k = xcalloc(1, sizeof(*k));
	k->map = -1;
	k->migrate = true;
	k->nl = nl;
	k->l = xcalloc(nl > 0 ? nl : 1, sizeof(*k->l));
	for (i = 0; i < nl; i++) {
		k->l[i].socks = -1;
		k->l[i].prog = -1;
	}
	return k;
}

/* The map's value, mapped into the master: 0, or -1 with why. */
static int
ks_map(struct ksteer *k, char *err, size_t len)
{
	k->mem = mmap(NULL, sizeof(struct ksteer_mem), PROT_READ | PROT_WRITE,
	    MAP_SHARED, k->map, 0);
	if (k->mem != MAP_FAILED)
		return 0;
	k->mem = NULL;
	snprintf(err, len, "cannot map the BPF map: %s", strerror(errno));
	return -1;
}

int
ksteer_new(size_t nl, struct ksteer **out, char *err, size_t len)
{
	union bpf_attr a;
	struct ksteer *k = ks_alloc(nl);
	size_t	 i;

	*out = NULL;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = sizeof(struct ksteer_mem);
	a.max_entries = 1;
	a.map_flags = BPF_F_MMAPABLE;
	if ((k->map = sys_bpf(BPF_MAP_CREATE, &a)) < 0) {
		snprintf(err, len, "cannot create a BPF map: %s",
		    strerror(errno));
		goto fail;
	}
	if (ks_map(k, err, len) < 0)
		goto fail;
	for (i = 0; i < KS_MAX; i++) {
		k->mem->id[i] = (uint32_t)i;
		k->mem->base[i] = KSTEER_OUT;
	}
	*out = k;
	return 0;
fail:
	ksteer_free(k);
	return -1;
}

void
ksteer_free(struct ksteer *k)
{
	size_t	 i;

	if (k == NULL)
		return;
	for (i = 0; i < k->nl; i++) {
		if (k->l[i].socks >= 0)
			close(k->l[i].socks);
		if (k->l[i].prog >= 0)
			close(k->l[i].prog);
	}
	if (k->mem != NULL)
		munmap(k->mem, sizeof(struct ksteer_mem));
	if (k->map >= 0)
		close(k->map);
	free(k->l);
	free(k);
}

/* Slot id's socket of listener li (a TCP one) into that listener's array. */
int
ksteer_join(struct ksteer *k, size_t li, int id, int fd, char *err,
    size_t len)
{
	union bpf_attr a;
	uint32_t key = (uint32_t)id;
	uint64_t val = (uint64_t)fd;

	if (li >= k->nl || id < 0 || id >= KS_MAX) {
		snprintf(err, len, "slot %d of listener %zu out of range", id,
		    li);
		return -1;
	}
	if (k->l[li].socks < 0) {
		memset(&a, 0, sizeof(a));
		a.map_type = BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
		a.key_size = 4;
		a.value_size = 8;
		a.max_entries = KS_MAX;
		if ((k->l[li].socks = sys_bpf(BPF_MAP_CREATE, &a)) < 0) {
			snprintf(err, len, "cannot create a reuseport socket "
			    "array: %s", strerror(errno));
			return -1;
		}
	}
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)k->l[li].socks;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)&val;
	a.flags = BPF_ANY;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0) {
		/* A socket in one array is refused there again: EBUSY. */
		if (errno == EBUSY && k->adopted)
			return 0;
		snprintf(err, len, "cannot put worker %d's socket in the "
		    "reuseport socket array: %s", id, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Attaches to fd's reuseport group the program scanning slot ids
 * 0 .. nslots - 1, unless the one attached already does.
 */
int
ksteer_attach(struct ksteer *k, size_t li, int fd, int nslots, char *err,
    size_t len)
{
	static const char license[] = "Dual MIT/GPL";
	struct ksteer_listener *l;
	struct bpf_insn *p;
	union bpf_attr a;
	int	 n, prog;

	if (li >= k->nl || k->l[li].socks < 0 || nslots <= 0 ||
	    nslots > KS_MAX) {
		snprintf(err, len, "no socket array for listener %zu", li);
		return -1;
	}
	l = &k->l[li];
	if (l->prog >= 0 && l->nslots == nslots)
		return 0;
	p = xcalloc(32 + 6 * (size_t)nslots, sizeof(*p));
	n = build(p, k->map, l->socks, nslots);
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
		if (k->migrate)
			a.expected_attach_type =
			    BPF_SK_REUSEPORT_SELECT_OR_MIGRATE;
		a.insns = (uint64_t)(uintptr_t)p;
		a.insn_cnt = (uint32_t)n;
		a.license = (uint64_t)(uintptr_t)license;
		if ((prog = sys_bpf(BPF_PROG_LOAD, &a)) >= 0)
			break;
		if (errno != EINVAL || !k->migrate) {
			snprintf(err, len, "cannot load the reuseport BPF "
			    "program: %s", strerror(errno));
			free(p);
			return -1;
		}
		k->migrate = false;	/* Linux < 5.14: select only */
	}
	free(p);
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog,
	    sizeof(prog)) < 0) {
		snprintf(err, len, "cannot attach the reuseport BPF program: "
		    "%s", strerror(errno));
		close(prog);
		return -1;
	}
	if (l->prog >= 0)
		close(l->prog);
	l->prog = prog;
	l->nslots = nslots;
	return 0;
}

/* Whether the programs also place a closing slot's connections. */
bool
ksteer_migrates(const struct ksteer *k)
{
	return k != NULL && k->migrate;
}

/*
 * Gives the slots ids[0 .. n - 1] their weights (KSTEER_* or 0).  A slot
 * coming back to 0 (ready again, or new) is raised to the fewest placed
 * on a slot that stayed at 0, so that it gets its share from now on, not
 * all new connections until it has caught up; the counts are lowered
 * together before they grow large.  The program's increments are atomic,
 * and so are these changes.
 */
void
ksteer_weigh(struct ksteer *k, const int *ids, const uint32_t *base, int n)
{
	uint32_t *placed = k->mem->placed, *old = k->mem->base;
	uint32_t min = UINT32_MAX, v, nv;
	int	 i, id;

	for (i = 0; i < n; i++) {
		id = ids[i];
		if (base[i] == 0 && old[id] == 0 &&
		    (v = __atomic_load_n(&placed[id], __ATOMIC_RELAXED)) < min)
			min = v;
	}
	for (i = 0; i < n; i++) {
		id = ids[i];
		if (base[i] == 0 && old[id] != 0 && min != UINT32_MAX) {
			v = __atomic_load_n(&placed[id], __ATOMIC_RELAXED);
			while (v < min && !__atomic_compare_exchange_n(
			    &placed[id], &v, min, false, __ATOMIC_RELAXED,
			    __ATOMIC_RELAXED))
				;
		}
		__atomic_store_n(&old[id], base[i], __ATOMIC_RELAXED);
	}
	if (min == UINT32_MAX || min < KS_REBASE)
		return;
	for (i = 0; i < n; i++) {
		id = ids[i];
		v = __atomic_load_n(&placed[id], __ATOMIC_RELAXED);
		do
			nv = v > min ? v - min : 0;
		while (!__atomic_compare_exchange_n(&placed[id], &v, nv, false,
		    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	}
}

/* Connections the program placed on slot id (for the log and tests). */
uint32_t
ksteer_placed(const struct ksteer *k, int id)
{
	if (k == NULL || id < 0 || id >= KS_MAX)
		return 0;
	return __atomic_load_n(&k->mem->placed[id], __ATOMIC_RELAXED);
}

/* A slot leaves the group: it gets nothing until it is weighed again. */
void
ksteer_leave(struct ksteer *k, int id)
{
	if (k != NULL && id >= 0 && id < KS_MAX)
		__atomic_store_n(&k->mem->base[id], KSTEER_OUT,
		    __ATOMIC_RELAXED);
}

/* The fds an in-place upgrade hands to the next image. */
void
ksteer_fds(const struct ksteer *k, struct ksteer_fds *f)
{
	size_t	 i;

	memset(f, 0, sizeof(*f));
	f->map = k->map;
	f->migrate = k->migrate;
	f->nl = k->nl < WPOOL_MAX_LISTENERS ? k->nl : WPOOL_MAX_LISTENERS;
	for (i = 0; i < f->nl; i++) {
		f->socks[i] = k->l[i].socks;
		f->prog[i] = k->l[i].prog;
		f->nslots[i] = k->l[i].nslots;
	}
}

/*
 * The placement the image before an upgrade had, with its counts and
 * weights: its program stays attached (the kernel holds it and its maps),
 * and its socket arrays, which alone may hold the sockets, are taken
 * over.  Takes the fds whatever happens (closed on failure).
 */
int
ksteer_adopt(const struct ksteer_fds *f, size_t nl, struct ksteer **out,
    char *err, size_t len)
{
	struct ksteer *k = ks_alloc(nl);
	size_t	 i;

	*out = NULL;
	k->map = f->map;
	k->migrate = f->migrate;
	k->adopted = true;
	for (i = 0; i < f->nl; i++) {
		if (i < nl) {
			k->l[i].socks = f->socks[i];
			k->l[i].prog = f->prog[i];
			k->l[i].nslots = f->nslots[i];
			continue;
		}
		if (f->socks[i] >= 0)
			close(f->socks[i]);
		if (f->prog[i] >= 0)
			close(f->prog[i]);
	}
	if (f->nl != nl) {
		snprintf(err, len, "the upgrade handed over %zu socket arrays "
		    "for %zu listeners", f->nl, nl);
		goto fail;
	}
	if (ks_map(k, err, len) < 0)
		goto fail;
	*out = k;
	return 0;
fail:
	ksteer_free(k);
	return -1;
}
