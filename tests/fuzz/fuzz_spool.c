/* teardown: libFuzzer target for td_fuzz_spool() (tests/fuzz/harness.h). */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = td_fuzz_spool(data, size);

	if (why != NULL) {
		fprintf(stderr, "fuzz_spool: %s\n", why);
		abort();
	}
	return 0;
}
