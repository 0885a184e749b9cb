/*
 * The spool's wake-up protocol (shim/rt/spool.c: td_spool_line and
 * td_spool_tick; shim/core/spool.c: td_spool_reserve, td_spool_commit),
 * checked by spin: once every writer is done and the flusher sleeps with
 * no timer set, every line is written out.  No line waits for the
 * process's exit, or for a line that may never come.
 *
 * A writer reserves its slot (a seq_cst compare-and-swap of the head),
 * copies its line and commits it (a release store of the slot's tag), and
 * wakes the flusher when it finds the flag `armed` clear.  The commit is a
 * release store and the look at `armed` a load: the load may be done
 * before the commit is seen by the flusher, so each writer takes either
 * order.  The flusher, at its timer, clears `armed`, then writes out the
 * committed lines from the tail (stopping at the first slot reserved but
 * not yet committed), and sets `armed` again when it stopped short of the
 * head.  Spin runs every interleaving.
 *
 *   spin -a spool_wake.pml && gcc -O2 -o pan pan.c && ./pan
 *   -DNO_REARM: without the flusher's re-arming; spin finds a line left
 *   behind (the test checks that it does: the model can fail).
 *   -DNO_REARM -DSEQ_CST_COMMIT: the protocol before, a seq_cst commit
 *   (x86: an xchg, which waits for the line's copy to reach the cache)
 *   always seen before the look at `armed`: no re-arming needed.
 */
#define WRITERS 3

byte head = 0;          /* slots reserved */
byte tail = 0;          /* slots written out */
bool committed[WRITERS];
bool armed = 0;         /* a flush is scheduled, or about to be */
byte wakes = 0;         /* eventfd count */
bool due = 0;           /* the flusher's timer is set */
byte done = 0;          /* writers finished */

inline look_at_armed() {
	/* !atomic_load(&armed) && !atomic_exchange(&armed, 1): wake */
	atomic { if :: armed == 0 -> armed = 1; wakes++ :: else -> skip fi }
}

proctype writer()
{
	byte seq;

	atomic { seq = head; head++ }   /* td_spool_reserve */
	if
	:: committed[seq] = 1; look_at_armed()
#ifndef SEQ_CST_COMMIT
	:: look_at_armed(); committed[seq] = 1
#endif
	fi;
	done++
}

active proctype flusher()
{
	byte h;
end_sleep:
	do
	:: wakes > 0 ->
		/* woken: td_spool_tick with no timer yet sets one */
		wakes--;
		if :: armed && !due -> due = 1 :: else -> skip fi
	:: due ->
		/* the timer: clear the flags, then read the head and write */
		due = 0;
		armed = 0;
		h = head;
		do
		:: tail < h && committed[tail] -> tail++
		:: else -> break
		od;
#ifndef NO_REARM
		if :: tail != head -> armed = 1 :: else -> skip fi;
#endif
		if :: armed && !due -> due = 1 :: else -> skip fi
	od
}

init
{
	byte i = 0;

	atomic {
		do
		:: i < WRITERS -> run writer(); i++
		:: else -> break
		od
	}
}

/* Nothing can move any more: every writer done, the flusher asleep. */
active proctype check()
{
	timeout -> assert(done == WRITERS && tail == head)
}
