/*
 * host_early: the program side of the "calls before the library's
 * constructor" test.  It does nothing itself; the test links it against
 * libhost_early.so (a DT_NEEDED dependency whose constructor makes the
 * calls) and checks that main() still runs afterwards.  Built alone (as
 * `make testprogs` does), it simply prints its line.
 */
#include <stdio.h>

int main(void)
{
	printf("{\"main\": true}\n");
	return 0;
}
