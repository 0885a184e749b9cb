/*
 * teardown: connection numbers across a whole run.
 *
 * A fault's fate is drawn from (seed, connection number), and a fault
 * aimed by position ("the 3rd connection") counts the connections a rule
 * matched.  Counted per process, every short process of a test suite
 * would be number 1: a fixed seed would then fault all of them or none.
 * The `teardown` command names each run in TEARDOWN_RUN and, where the
 * run has a fault, makes one small file under that name (a private
 * directory of the user's: cli/run.c); every process of
 * the run (children, grandchildren, exec'd programs) maps it and draws its
 * numbers from it.  Without it (the library preloaded by hand, or a
 * secure-execution process, which ignores the environment) the numbers are
 * the process's own.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/run.h"

static struct td_run_shm *td__run;

void td_runwide_attach(const char *path)
{
	struct stat st;
	void *m;
	int fd;

	if (path == NULL || *path != '/')
		return;
	fd = td_real_sys_open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0);
	if (fd < 0)
		return;
	/* the user's own small regular file, nothing else */
	if (td_real_sys_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_size != (off_t)sizeof(struct td_run_shm)) {
		td_real_close(fd);
		return;
	}
	m = mmap(NULL, sizeof(struct td_run_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	td_real_close(fd);
	if (m == MAP_FAILED)
		return;
	if (((struct td_run_shm *)m)->magic != TD_RUN_MAGIC) {
		munmap(m, sizeof(struct td_run_shm));
		return;
	}
	td__run = m;
}

uint64_t td_runwide_conn(void)
{
	return td__run ? atomic_fetch_add(&td__run->conns, 1) + 1 : 0;
}

uint64_t td_runwide_position(const struct td_policy *p, int rule)
{
	if (td__run != NULL && rule >= 0 && rule < TD_RUN_RULES)
		return atomic_fetch_add(&td__run->matched[rule], 1) + 1;
	if (p->matched != NULL && rule >= 0 && (uint32_t)rule < p->n_rules)
		return __atomic_add_fetch(&p->matched[rule], 1, __ATOMIC_RELAXED);
	return 0;
}
