/*
 * teardown: unit tests for the fd table's born entries (shim/rt/fdtab.c):
 * a TCP socket from socket() gets a born entry (a bit of its tag, its
 * family and fork epoch in the entry's linger word: no memory beside the
 * entry), and the bare entry it stands for is published at its first
 * use, with the family and fork epoch of its socket() call; the born
 * state never outlives its socket (forget, claim and every publish clear
 * it), a vfork()ed child leaves its parent's alone, and of threads racing
 * to publish one born entry exactly one does, while the others do not
 * wait for it.  And the share slots' holder records: a forked child's
 * copies are counted in its record, and the process that reaps it takes
 * back what it still held when it died, reporting each socket it held
 * last, once; the sweep of children reaped behind the library's back asks
 * kill(pid, 0) only of records that still hold copies.
 *
 * fdtab.c is linked in alone: the two thread-local variables it reads
 * (errno's address, the vfork flag) and the raw system call it makes
 * (td_real_sys(): the holder records' kill(pid, 0)) are defined here.  Criterion runs
 * each test in a process of its own, so each starts with an empty table.
 */
#include <pthread.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../../shim/rt/fdtab.h"
#include "../../shim/rt/init.h"
#include "../../shim/rt/real.h"

__thread int *td_errno_p __attribute__((tls_model("initial-exec")));
#if defined(__x86_64__)
__thread volatile int td_in_vfork __attribute__((tls_model("initial-exec")));
#else
static __thread volatile int td_in_vfork;
bool td_init_in_own_process(void)
{
	return !td_in_vfork;
}
#endif

/* kill() calls, counted: the holder records' sweep asks one only of a
 * record that still holds copies */
static unsigned td_t_kills;
long td_real_sys(long n, long a, long b, long c, long d, long e, long f)
{
	if (n == SYS_kill)
		td_t_kills++;
	return syscall(n, a, b, c, d, e, f);
}

/*
 * sched_yield() counted per thread (this definition comes before libc's
 * for fdtab.c, linked into this program): a first use that loses the
 * race for a born entry must not wait for the winner, by spinning or by
 * yielding, and the tests below check that it yields nothing.
 */
static __thread unsigned td_t_yields;
int sched_yield(void)
{
	td_t_yields++;
	return (int)syscall(SYS_sched_yield);
}

/* A birth as socket() makes one, both paths (td_decide_born() without
 * its question whether the library acts, which fdtab.c does not ask). */
static int td_t_bear(int fd, uint8_t family, uint32_t epoch)
{
	if (td_fdtab_bear_fast(fd, family, epoch))
		return fd;
	return td_fdtab_bear_slow(fd, family, epoch);
}

/* A copy of fd's live entry; fails the test when there is none. */
static struct td_sock td_t_read(int fd)
{
	struct td_sock s;

	cr_assert(td_fdtab_read(fd, &s, NULL), "fd %d has no live entry", fd);
	return s;
}

/* What socket() would have published: no rule, family, epoch, BARE. */
static void td_t_assert_bare(const struct td_sock *s, uint8_t family, uint32_t epoch)
{
	cr_assert(eq(i32, s->d.rule, -1));
	cr_assert(eq(i32, s->d.bind_rule, -1));
	cr_assert(eq(u8, s->d.decided, 0));
	cr_assert(eq(u8, s->d.role, 0));
	cr_assert(eq(u8, s->d.family, family));
	cr_assert(eq(u32, s->d.epoch, epoch));
	cr_assert(eq(u64, s->d.conn, 0));
	cr_assert(eq(i64, s->d.t_open_mono_us, 0));
	cr_assert(eq(u32, atomic_load(&s->flags), TD_SF_BARE));
	cr_assert(eq(u32, atomic_load(&s->share), 0));
	cr_assert(eq(u64, atomic_load(&s->linger), 0));
	cr_assert(eq(u64, atomic_load(&s->written), 0));
	cr_assert(eq(u64, atomic_load(&s->read_in), 0));
	cr_assert(eq(i32, s->local.family, 0));
	cr_assert(eq(i32, s->remote.family, 0));
}

/* The page of fd mapped, and the watermarks past fd, as after earlier
 * sockets: the birth then takes its two-store path. */
static void td_t_warm(int fd)
{
	struct td_fdent *e = td_fdtab_publish_bare(fd + 1, AF_INET, 1, TD_SF_BARE);

	cr_assert(not(eq(ptr, e, NULL)));
	td_fdtab_forget(fd + 1);
}

Test(fdtab, born_entry_then_published_entry_then_claim)
{
	struct td_fdent *e, *again;
	struct td_sock s, gone;
	uint32_t tag, before;

	td_t_warm(5);
	e = td_fdtab_peek(5);
	before = atomic_load(&e->tag);
	cr_assert(eq(int, td_t_bear(5, AF_INET6, 7), 5));
	/* born, not live: the tag's born bit, the generation unchanged, and
	 * the word in the entry itself */
	tag = atomic_load(&e->tag);
	cr_assert(td_tag_born(tag));
	cr_assert(not(td_tag_live(tag)));
	cr_assert(eq(u32, tag, before | TD_TAG_BORN));
	cr_assert(eq(u32, atomic_load(&e->linger), td_born_word(AF_INET6, 7)));
	cr_assert(eq(ptr, td_fdtab_live(5), NULL));
	cr_assert(not(td_fdtab_read(5, &s, NULL)));
	cr_assert(eq(u32, td_fdtab_born(5), td_born_word(AF_INET6, 7)));
	cr_assert(eq(u8, td_born_family(td_fdtab_born(5)), AF_INET6));
	cr_assert(eq(u32, td_born_epoch(td_fdtab_born(5)), 7));

	/* first use: the bare entry (the next generation), born no more */
	cr_assert(eq(ptr, td_fdtab_live_or_born(5), e));
	cr_assert(eq(ptr, td_fdtab_live(5), e));
	cr_assert(eq(u32, td_fdtab_born(5), 0));
	cr_assert(eq(u32, atomic_load(&e->tag), td_tag_next(before)));
	s = td_t_read(5);
	td_t_assert_bare(&s, AF_INET6, 7);
	tag = atomic_load(&e->tag);
	/* a second use finds the same entry, not a new generation */
	again = td_fdtab_live_or_born(5);
	cr_assert(eq(ptr, again, e));
	cr_assert(eq(u32, atomic_load(&e->tag), tag));

	/* the close: claimed, then nothing */
	cr_assert(td_fdtab_claim(5, &gone));
	td_t_assert_bare(&gone, AF_INET6, 7);
	cr_assert(eq(ptr, td_fdtab_live(5), NULL));
	cr_assert(eq(ptr, td_fdtab_live_or_born(5), NULL));
}

Test(fdtab, birth_word_and_publish_bare_give_the_same_entry)
{
	struct td_sock a, b;

	td_t_warm(20);
	(void)td_t_bear(20, AF_INET, 3);
	cr_assert(not(eq(ptr, td_fdtab_live_or_born(20), NULL)));
	a = td_t_read(20);
	cr_assert(not(eq(ptr, td_fdtab_publish_bare(21, AF_INET, 3, TD_SF_BARE), NULL)));
	b = td_t_read(21);
	cr_assert(eq(int, memcmp(&a.d, &b.d, sizeof(a.d)), 0));
	cr_assert(eq(u32, atomic_load(&a.flags), atomic_load(&b.flags)));
}

Test(fdtab, forget_clears_the_born_entry)
{
	td_t_warm(9);
	(void)td_t_bear(9, AF_INET, 2);
	cr_assert(not(eq(u32, td_fdtab_born(9), 0)));
	td_fdtab_forget(9);
	cr_assert(eq(u32, td_fdtab_born(9), 0));
	cr_assert(eq(ptr, td_fdtab_live_or_born(9), NULL));
}

Test(fdtab, claim_of_a_born_entry_clears_it)
{
	struct td_sock gone;

	td_t_warm(11);
	(void)td_t_bear(11, AF_INET, 2);
	cr_assert(not(td_fdtab_claim(11, &gone)));
	cr_assert(eq(u32, td_fdtab_born(11), 0));
	td_fdtab_unborn(11); /* (nothing left: a no-op) */
	cr_assert(eq(ptr, td_fdtab_live_or_born(11), NULL));
}

Test(fdtab, unborn_clears_only_the_born_bit)
{
	struct td_fdent *e;
	uint32_t before;

	td_t_warm(12);
	e = td_fdtab_peek(12);
	before = atomic_load(&e->tag);
	(void)td_t_bear(12, AF_INET6, 4);
	td_fdtab_unborn(12);
	cr_assert(eq(u32, td_fdtab_born(12), 0));
	cr_assert(eq(u32, atomic_load(&e->tag), before));
	cr_assert(eq(ptr, td_fdtab_live_or_born(12), NULL));
	/* a live entry stays live */
	cr_assert(not(eq(ptr, td_fdtab_publish_bare(12, AF_INET, 4, TD_SF_BARE), NULL)));
	before = atomic_load(&e->tag);
	td_fdtab_unborn(12);
	cr_assert(eq(u32, atomic_load(&e->tag), before));
	cr_assert(eq(ptr, td_fdtab_live(12), e));
}

Test(fdtab, generations_count_above_the_born_bit)
{
	struct td_fdent *e;
	struct td_sock gone;
	uint32_t t0, t;

	td_t_warm(14);
	e = td_fdtab_peek(14);
	t0 = atomic_load(&e->tag);
	cr_assert(not(td_tag_live(t0)));
	cr_assert(not(td_tag_born(t0)));
	for (uint32_t k = 1; k <= 5; k++) {
		(void)td_t_bear(14, AF_INET, k);
		cr_assert(not(eq(ptr, td_fdtab_live_or_born(14), NULL)));
		t = atomic_load(&e->tag);
		/* live, not born, one generation further each time */
		cr_assert(eq(u32, t & (TD_TAG_LIVE | TD_TAG_BORN), TD_TAG_LIVE));
		cr_assert(eq(u32, t >> TD_TAG_GEN_SHIFT, (t0 >> TD_TAG_GEN_SHIFT) + k));
		cr_assert(td_fdtab_claim(14, &gone));
		cr_assert(eq(u32, atomic_load(&gone.tag), t));
		cr_assert(eq(u32, atomic_load(&e->tag), t & ~TD_TAG_LIVE));
	}
	/* the count wraps past its top without touching the two low bits */
	cr_assert(eq(u32, td_tag_next(UINT32_MAX & ~TD_TAG_LIVE), TD_TAG_LIVE));
	cr_assert(eq(u32, td_tag_next(0xfffffff8u | TD_TAG_BORN), 0xfffffffdu));
}

Test(fdtab, a_publish_on_the_number_clears_the_born_entry)
{
	struct td_sock init, s;

	td_t_warm(30);
	/* an accept() onto the number: its entry, born no more */
	(void)td_t_bear(30, AF_INET, 2);
	memset(&init, 0, sizeof(init));
	init.d.rule = 0;
	init.d.bind_rule = -1;
	init.d.decided = 1;
	init.d.family = AF_INET;
	init.d.epoch = 5;
	atomic_store(&init.flags, TD_SF_CONNECTED);
	cr_assert(not(eq(ptr, td_fdtab_publish(30, &init), NULL)));
	cr_assert(eq(u32, td_fdtab_born(30), 0));
	s = td_t_read(30);
	cr_assert(eq(u32, s.d.epoch, 5));
	cr_assert(eq(u32, atomic_load(&s.flags), TD_SF_CONNECTED));

	/* a UDP socket (or one of the library's own fds): a bare publish */
	(void)td_t_bear(31, AF_INET, 2);
	cr_assert(not(eq(ptr, td_fdtab_publish_bare(31, AF_INET, 6, TD_SF_BARE | TD_SF_NOT_TCP),
			 NULL)));
	cr_assert(eq(u32, td_fdtab_born(31), 0));
	s = td_t_read(31);
	cr_assert(eq(u32, s.d.epoch, 6));
	cr_assert(eq(u32, atomic_load(&s.flags), TD_SF_BARE | TD_SF_NOT_TCP));
}

Test(fdtab, a_vforked_child_leaves_its_parents_born_entry)
{
	struct td_sock init;

	td_t_warm(40);
	(void)td_t_bear(40, AF_INET, 2);
	td_in_vfork = 1;
	/* the child's own socket on the number the parent's born entry is on */
	cr_assert(eq(int, td_t_bear(40, AF_INET6, 3), 40));
	cr_assert(eq(u32, td_fdtab_born(40), td_born_word(AF_INET, 2)));
	cr_assert(eq(ptr, td_fdtab_live(40), NULL));
	/* and an accept() of its there */
	memset(&init, 0, sizeof(init));
	init.d.rule = -1;
	init.d.bind_rule = -1;
	cr_assert(eq(ptr, td_fdtab_publish(40, &init), NULL));
	cr_assert(eq(u32, td_fdtab_born(40), td_born_word(AF_INET, 2)));
	/* and a publish of a bare entry (a UDP socket's, an adopted one's) */
	cr_assert(eq(ptr, td_fdtab_publish_bare(40, AF_INET6, 3, TD_SF_BARE | TD_SF_NOT_TCP), NULL));
	cr_assert(eq(u32, td_fdtab_born(40), td_born_word(AF_INET, 2)));
	td_in_vfork = 0;
	/* back in the parent: its socket's entry, as made */
	cr_assert(not(eq(ptr, td_fdtab_live_or_born(40), NULL)));
	cr_assert(eq(u32, td_t_read(40).d.epoch, 2));
}

Test(fdtab, a_stale_entry_live_or_born_gives_way_to_a_new_socket)
{
	struct td_sock s;

	td_t_warm(50);
	/* an entry whose fd was closed behind the library's back */
	cr_assert(not(eq(ptr, td_fdtab_publish_bare(50, AF_INET6, 1, TD_SF_BARE), NULL)));
	(void)td_t_bear(50, AF_INET, 8);
	s = td_t_read(50);
	td_t_assert_bare(&s, AF_INET, 8);
	cr_assert(eq(u32, td_fdtab_born(50), 0));
	/* a stale born entry: replaced */
	td_fdtab_forget(50);
	(void)td_t_bear(50, AF_INET6, 8);
	(void)td_t_bear(50, AF_INET, 9);
	cr_assert(not(eq(ptr, td_fdtab_live_or_born(50), NULL)));
	s = td_t_read(50);
	td_t_assert_bare(&s, AF_INET, 9);
	cr_assert(eq(u32, td_fdtab_born(50), 0));
}

/*
 * The fast births' gate follows the program's watermark up to the static
 * page's end, and shut (the fork epoch near the birth word's top, which
 * td_holders_epoch_next() sees first) it sends every birth to the slow
 * path, which publishes an epoch past the word's bits exact; a raise
 * after it does not open it again.
 */
Test(fdtab, the_gate_follows_the_watermark_and_a_shut_one_stays_shut)
{
	uint32_t big = TD_BORN_EPOCH_MAX + 5u;
	struct td_sock s;

	cr_assert(eq(int, atomic_load(&td_fdtab_born_below), 0));
	td_t_warm(60);
	cr_assert(eq(int, atomic_load(&td_fdtab_born_below), 62));
	cr_assert(td_fdtab_bear_fast(60, AF_INET, 3));
	cr_assert(not(td_fdtab_bear_fast(62, AF_INET, 3)), "fd 62 is past the gate");
	cr_assert(not(td_fdtab_bear_fast(-1, AF_INET, 3)), "a failed socket() is past any gate");
	cr_assert(eq(int, td_t_bear(3000, AF_INET, 3), 3000));
	cr_assert(eq(int, atomic_load(&td_fdtab_born_below), TD_FDTAB_PAGE));
	td_fdtab_born_off();
	cr_assert(eq(int, atomic_load(&td_fdtab_born_below), 0));
	cr_assert(not(td_fdtab_bear_fast(20, AF_INET, 3)));
	(void)td_t_bear(61, AF_INET6, big);
	cr_assert(eq(u32, td_fdtab_born(61), 0));
	s = td_t_read(61);
	td_t_assert_bare(&s, AF_INET6, big);
	(void)td_t_bear(63, AF_INET, TD_BORN_EPOCH_MAX);
	cr_assert(eq(int, atomic_load(&td_fdtab_born_below), 0), "a raise opened a shut gate");
	cr_assert(not(eq(ptr, td_fdtab_live_or_born(63), NULL)));
	cr_assert(eq(u32, td_t_read(63).d.epoch, TD_BORN_EPOCH_MAX));
}

/* (not a constant: the compiler would see an index past the table on a
 * path the watermark check never takes) */
static volatile int td_t_huge = TD_FDTAB_MAX;

Test(fdtab, a_birth_maps_the_page_and_raises_the_watermarks)
{
	cr_assert(eq(int, td_fdtab_prog_high(), -1));
	cr_assert(eq(ptr, td_fdtab_peek(2500), NULL));
	cr_assert(eq(int, td_t_bear(2500, AF_INET, 1), 2500));
	cr_assert(not(eq(ptr, td_fdtab_peek(2500), NULL)));
	cr_assert(eq(int, td_fdtab_prog_high(), 2500));
	cr_assert(eq(int, td_fdtab_high(), 2500));
	cr_assert(eq(u32, td_fdtab_born(2500), td_born_word(AF_INET, 1)));
	/* out of range (the watermark stops it: never above the table):
	 * nothing, and no failure */
	cr_assert(eq(int, td_t_bear(td_t_huge, AF_INET, 1), TD_FDTAB_MAX));
	cr_assert(eq(u32, td_fdtab_born(td_t_huge), 0));
	cr_assert(eq(int, td_fdtab_prog_high(), 2500));
}

Test(fdtab, counters_left_by_the_last_socket_start_at_zero)
{
	struct td_fdext *x;

	td_t_warm(70);
	x = td_fdtab_ext(70);
	cr_assert(not(eq(ptr, x, NULL)));
	atomic_store(&x->written, 1234);
	atomic_store(&x->read_in, 99);
	(void)td_t_bear(70, AF_INET, 2);
	cr_assert(not(eq(ptr, td_fdtab_live_or_born(70), NULL)));
	td_t_assert_bare((struct td_sock[]){td_t_read(70)}, AF_INET, 2);
}

Test(fdtab, errno_is_kept)
{
	errno = 4242;
	(void)td_t_bear(3000, AF_INET, 1); /* maps a page */
	(void)td_fdtab_live_or_born(3000);
	td_fdtab_forget(3000);
	cr_assert(eq(int, errno, 4242));
}

/*
 * A bad birth word (a program's stale setsockopt(SO_LINGER) wrote over it:
 * it used the number while another thread closed it and a socket() got
 * it) is never published: the first use gets nothing and adopts the
 * socket, as it would one the library never saw made.
 */
Test(fdtab, a_birth_word_written_over_is_not_published)
{
	struct td_fdent *e;

	td_t_warm(90);
	e = td_fdtab_peek(90);
	(void)td_t_bear(90, AF_INET, 3);
	td_fdent_linger_set(e, 1, 0);
	cr_assert(eq(ptr, td_fdtab_live_or_born(90), NULL));
	cr_assert(eq(u32, td_fdtab_born(90), 0));
	cr_assert(eq(ptr, td_fdtab_live(90), NULL));
	/* the adoption that follows publishes its entry */
	cr_assert(not(eq(ptr, td_fdtab_publish_bare(90, AF_INET, 3, TD_SF_BARE | TD_SF_ADOPTED), NULL)));
}

/*
 * A first use that finds the born entry being published by another (the
 * winner took the born bit, and has not gone live yet) does not wait for
 * it: here the winner is the very thread, as when a signal handler
 * interrupts it there, and a wait could never end.  It gets nothing at
 * once (its caller adopts the socket), leaves the winner's state alone
 * and yields nothing; the winner then finishes as if alone.
 */
Test(fdtab, a_first_use_does_not_wait_for_an_interrupted_winner, .timeout = 10)
{
	struct td_fdent *e;
	uint32_t born, taken;

	td_t_warm(85);
	e = td_fdtab_peek(85);
	(void)td_t_bear(85, AF_INET6, 4);
	born = atomic_load(&e->tag);
	cr_assert(td_tag_born(born));
	/* the winner's first step (td_fdtab_born_publish()): the bit is its */
	taken = born & ~TD_TAG_BORN;
	cr_assert(atomic_compare_exchange_strong(&e->tag, &born, taken));

	td_t_yields = 0;
	for (int k = 0; k < 1000; k++) {
		/* a use that comes now, and one that read the tag born just
		 * before the winner took the bit, and so loses the swap */
		cr_assert(eq(ptr, td_fdtab_live_or_born(85), NULL));
		cr_assert(eq(ptr, td_fdtab_born_publish(e, 85, taken | TD_TAG_BORN), NULL));
	}
	cr_assert(eq(u32, td_t_yields, 0));
	cr_assert(eq(u32, atomic_load(&e->tag), taken));

	/* the winner goes on: its bare entry, one generation on */
	cr_assert(eq(ptr, td_fdtab_publish_bare(85, AF_INET6, 4, TD_SF_BARE), e));
	cr_assert(eq(u32, atomic_load(&e->tag), td_tag_next(taken)));
	td_t_assert_bare((struct td_sock[]){td_t_read(85)}, AF_INET6, 4);
	/* a use now finds it */
	cr_assert(eq(ptr, td_fdtab_live_or_born(85), e));
}

/* Threads racing to publish one born entry. */
#define TD_T_THREADS 8
struct td_t_race {
	pthread_barrier_t *go;
	int fd;
	struct td_fdent *got;
	unsigned yields;
};

static void *td_t_racer(void *arg)
{
	struct td_t_race *r = arg;

	pthread_barrier_wait(r->go);
	td_t_yields = 0;
	r->got = td_fdtab_live_or_born(r->fd);
	r->yields = td_t_yields;
	return NULL;
}

/*
 * Exactly one publishes (one generation on, with the epoch of the
 * birth); every other gets the entry, when it is live by then, or
 * nothing, and none waits (no yield).
 */
Test(fdtab, racing_first_uses_publish_one_entry_and_wait_for_none, .timeout = 60)
{
	pthread_barrier_t go;
	pthread_t t[TD_T_THREADS];
	struct td_t_race r[TD_T_THREADS];

	td_t_warm(80);
	for (int round = 0; round < 200; round++) {
		struct td_fdent *e = td_fdtab_peek(80);
		uint32_t tag_before = atomic_load(&e->tag);
		int got = 0;

		(void)td_t_bear(80, AF_INET6, (uint32_t)round + 1);
		pthread_barrier_init(&go, NULL, TD_T_THREADS);
		for (int i = 0; i < TD_T_THREADS; i++) {
			r[i] = (struct td_t_race){.go = &go, .fd = 80};
			cr_assert(eq(int, pthread_create(&t[i], NULL, td_t_racer, &r[i]), 0));
		}
		for (int i = 0; i < TD_T_THREADS; i++) {
			pthread_join(t[i], NULL);
			cr_assert(r[i].got == NULL || r[i].got == e, "racer %d got %p", i,
				  (void *)r[i].got);
			cr_assert(eq(u32, r[i].yields, 0));
			got += r[i].got != NULL;
		}
		pthread_barrier_destroy(&go);
		/* (the winner always gets it) */
		cr_assert(ge(int, got, 1));
		/* one publish: the slot's next generation, not two */
		cr_assert(eq(u32, atomic_load(&e->tag), td_tag_next(tag_before)));
		cr_assert(eq(u32, td_t_read(80).d.epoch, (uint32_t)round + 1));
		td_fdtab_forget(80);
	}
}

/* ---- share slots and holder records ----------------------------------- */

/*
 * A connected socket's entry on fd, 10.0.0.1:80 <- 10.0.0.2:port, the
 * rule 0 decided: what a fork() counts.
 */
static struct td_fdent *td_t_conn(int fd, uint16_t port)
{
	struct td_sock init;
	struct td_fdent *e;

	memset(&init, 0, sizeof(init));
	init.d.rule = 0;
	init.d.bind_rule = -1;
	init.d.decided = 1;
	init.d.role = TD_SOCK_SERVER;
	init.d.family = AF_INET;
	init.d.conn = 9;
	atomic_store(&init.flags, TD_SF_CONNECTED);
	init.local.family = init.remote.family = AF_INET;
	init.local.port = 80;
	init.remote.port = port;
	memcpy(init.local.addr, "\x0a\x00\x00\x01", 4);
	memcpy(init.remote.addr, "\x0a\x00\x00\x02", 4);
	e = td_fdtab_publish(fd, &init);
	cr_assert(not(eq(ptr, e, NULL)));
	return e;
}

/* What a reaper's callback saw. */
struct td_t_ended {
	int calls;
	bool exact;
	pid_t pid;
	struct td_share_end end;
};

static void td_t_on_end(const struct td_share_end *end, bool exact, pid_t pid, void *arg)
{
	struct td_t_ended *x = arg;

	x->calls++;
	x->exact = exact;
	x->pid = pid;
	x->end = *end;
}

/*
 * fork() as the library does it: the prepare handler counts the child's
 * copy of fd's socket in the child's record, the fork hook names the
 * child.  The child runs child(share) and ends by _exit(0), or is killed
 * before it can (killed).  Returns its pid, reaped (waitpid), and the
 * share.
 */
static pid_t td_t_fork(struct td_fdent *e, int fd, void (*child)(uint32_t), uint32_t *share)
{
	pid_t pid;
	int st;

	td_fdtab_hrec_prepare();
	cr_assert(td_fdtab_share_fork(e, fd));
	*share = atomic_load(&e->share);
	cr_assert(not(eq(u32, *share, 0)));
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		td_fdtab_hrec_child(getppid());
		if (child != NULL)
			child(*share);
		_exit(0);
	}
	td_fdtab_hrec_forked(pid);
	cr_assert(td_fdtab_hrec_any());
	cr_assert(eq(int, waitpid(pid, &st, 0), pid));
	return pid;
}

static void td_t_killed(uint32_t share)
{
	(void)share;
	raise(SIGKILL);
}

static void td_t_lets_go(uint32_t share)
{
	/* its close: the count and its own word */
	(void)td_fdtab_share_drop(share);
}

static void td_t_dups_then_killed(uint32_t share)
{
	/* dup2() onto 0 and 1, then the original closed: two copies held */
	struct td_fdent *e = td_fdtab_live(50);

	(void)td_fdtab_share_join(e, 50);
	(void)td_fdtab_share_join(e, 50);
	(void)td_fdtab_share_drop(share);
	raise(SIGKILL);
}

Test(shares, a_killed_childs_copy_comes_back_and_its_end_is_reported_once)
{
	struct td_fdent *e = td_t_conn(50, 4242);
	struct td_t_ended x = {0};
	uint32_t share;
	pid_t pid = td_t_fork(e, 50, td_t_killed, &share);

	/* the parent closes its copy first: the dead child's count remains */
	cr_assert(td_fdtab_share_leave(share));
	cr_assert(td_fdtab_share_exact(share));
	td_fdtab_hrec_reaped(pid, td_t_on_end, &x);
	cr_assert(eq(int, x.calls, 1));
	cr_assert(x.exact);
	cr_assert(eq(i32, x.pid, pid));
	cr_assert(eq(u16, x.end.remote.port, 4242));
	cr_assert(eq(u16, x.end.local.port, 80));
	cr_assert(eq(u64, x.end.d.conn, 9));
	cr_assert(eq(u8, x.end.d.role, TD_SOCK_SERVER));
	/* the count is gone, and the record: reaped again, nothing */
	cr_assert(not(td_fdtab_share_exact(share)));
	td_fdtab_hrec_reaped(pid, td_t_on_end, &x);
	cr_assert(eq(int, x.calls, 1));
}

Test(shares, a_child_that_let_go_leaves_nothing_to_report)
{
	struct td_fdent *e = td_t_conn(50, 4243);
	struct td_t_ended x = {0};
	uint32_t share;
	pid_t pid = td_t_fork(e, 50, td_t_lets_go, &share);

	/* the child let go: the parent's close is the last */
	cr_assert(not(td_fdtab_share_leave(share)));
	td_fdtab_hrec_reaped(pid, td_t_on_end, &x);
	cr_assert(eq(int, x.calls, 0));
}

Test(shares, a_killed_child_with_the_parent_still_holding_ends_nothing)
{
	struct td_fdent *e = td_t_conn(50, 4244);
	struct td_t_ended x = {0};
	uint32_t share;
	pid_t pid = td_t_fork(e, 50, td_t_killed, &share);

	/* reaped first: its copy comes back, the parent's is still open */
	td_fdtab_hrec_reaped(pid, td_t_on_end, &x);
	cr_assert(eq(int, x.calls, 0));
	cr_assert(td_fdtab_share_exact(share));
	/* and the parent's close is then the last */
	cr_assert(not(td_fdtab_share_leave(share)));
}

Test(shares, a_childs_own_dups_are_its_copies_too)
{
	struct td_fdent *e = td_t_conn(50, 4245);
	struct td_t_ended x = {0};
	uint32_t share;
	pid_t pid = td_t_fork(e, 50, td_t_dups_then_killed, &share);

	/* the child held two copies (its dups) when it was killed */
	cr_assert(td_fdtab_share_leave(share));
	td_fdtab_hrec_reaped(pid, td_t_on_end, &x);
	cr_assert(eq(int, x.calls, 1));
	cr_assert(not(td_fdtab_share_exact(share)));
}

Test(shares, the_sweep_asks_only_of_records_that_still_hold_copies)
{
	struct td_fdent *e = td_t_conn(50, 4246);
	struct td_fdent *f = td_t_conn(51, 4247);
	struct td_t_ended x = {0};
	uint32_t s1, s2;
	pid_t gone, done;

	/* one child killed holding its copy, one that let go of it; both
	 * reaped behind the records' back (SIGCHLD ignored) */
	gone = td_t_fork(e, 50, td_t_killed, &s1);
	done = td_t_fork(f, 51, td_t_lets_go, &s2);
	cr_assert(td_fdtab_share_leave(s1));
	cr_assert(not(td_fdtab_share_leave(s2)));
	td_t_kills = 0;
	td_fdtab_hrec_sweep(td_t_on_end, &x);
	/* one kill(pid, 0): the record that still held a copy */
	cr_assert(eq(u32, td_t_kills, 1));
	cr_assert(eq(int, x.calls, 1));
	cr_assert(eq(i32, x.pid, gone));
	cr_assert(eq(u16, x.end.remote.port, 4246));
	/* both records freed: nothing more to find */
	td_fdtab_hrec_reaped(done, td_t_on_end, &x);
	td_fdtab_hrec_reaped(gone, td_t_on_end, &x);
	td_fdtab_hrec_sweep(td_t_on_end, &x);
	cr_assert(eq(int, x.calls, 1));
}

Test(shares, a_failed_fork_takes_the_childs_copies_back)
{
	struct td_fdent *e = td_t_conn(50, 4248);
	uint32_t share;

	td_fdtab_hrec_prepare();
	cr_assert(td_fdtab_share_fork(e, 50));
	share = atomic_load(&e->share);
	/* the fork hook: the fork failed */
	cr_assert(td_fdtab_share_unfork(share));
	td_fdtab_hrec_forked(-1);
	/* only this fd holds it again */
	cr_assert(not(td_fdtab_share_leave(share)));
}

/*
 * The family's root (the first process, whose copies no record tells
 * apart) forks a child with a record and is killed holding its copy;
 * the child, letting go of its own copy, finds only the root's left and
 * the root gone (kill(pid, 0)): its close was the last.  With the root
 * still alive the same question says no.  The root here is a process of
 * the test's own, which the test kills and reaps; the child answers
 * through a pipe: 'a' with the root alive and the answer no, 'g' with the
 * root gone and the answer yes.
 */
Test(shares, a_childs_close_is_the_last_once_the_killed_root_is_gone, .timeout = 20)
{
	int answer[2], go[2], st;
	char got[2] = {0, 0};
	bool killed;
	pid_t root;

	cr_assert(eq(int, pipe(answer), 0));
	cr_assert(eq(int, pipe(go), 0));
	fflush(NULL);
	root = fork();
	cr_assert(root >= 0);
	if (root == 0) {
		struct td_fdent *e = td_t_conn(50, 4250);
		uint32_t share;
		pid_t child;

		td_fdtab_hrec_prepare();
		if (!td_fdtab_share_fork(e, 50))
			_exit(2);
		share = atomic_load(&e->share);
		child = fork();
		if (child == 0) {
			bool says;
			char c;

			td_fdtab_hrec_child(getppid());
			/* two copies of ours (a dup), the root's one: ours go */
			(void)td_fdtab_share_join(e, 50);
			(void)td_fdtab_share_drop(share);
			says = td_fdtab_share_root_gone(share);
			if (write(answer[1], says ? "x" : "a", 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(3);
			/* the root is gone now: the last copy of ours goes */
			if (!td_fdtab_share_leave(share))
				_exit(4);
			says = td_fdtab_share_root_gone(share);
			if (write(answer[1], says ? "g" : "x", 1) != 1)
				_exit(3);
			_exit(0);
		}
		td_fdtab_hrec_forked(child);
		for (;;)
			pause(); /* holding its copy */
	}
	cr_assert(eq(int, read(answer[0], &got[0], 1), 1));
	cr_assert(eq(int, kill(root, SIGKILL), 0));
	cr_assert(eq(int, waitpid(root, &st, 0), root));
	killed = WIFSIGNALED(st);
	cr_assert(killed);
	/* the root is reaped: gone; the child goes on */
	cr_assert(eq(int, write(go[1], "y", 1), 1));
	cr_assert(eq(int, read(answer[0], &got[1], 1), 1));
	cr_assert(eq(chr, got[0], 'a'), "with the root alive: %c", got[0]);
	cr_assert(eq(chr, got[1], 'g'), "with the root gone: %c", got[1]);
}
