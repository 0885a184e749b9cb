/*
 * teardown: setuid(), seteuid(), setreuid(), setresuid() — a process that
 * gives up root (a server's workers: nginx's, apache2's children) may no
 * longer make its spool's file in a log directory only root may write,
 * and would write each line on its own for good: td_spool_before_uid()
 * (shim/rt/spool.c) makes it first, while the process still may.  After
 * a call that changed the ids, the next line reads the uid it names again
 * (td_logw_ids_changed()).  Every call goes on to libc unchanged, errno
 * and return value its own.
 */
#include <unistd.h>

#include "../rt/rt.h"

/* rc: the call's own (errno untouched) */
static int td__changed(int rc)
{
	if (rc == 0)
		td_logw_ids_changed();
	return rc;
}

TD_EXPORT int setuid(uid_t uid)
{
	td_spool_before_uid(uid);
	return td__changed(td_real_setuid(uid));
}

TD_EXPORT int seteuid(uid_t euid)
{
	td_spool_before_uid(euid);
	return td__changed(td_real_seteuid(euid));
}

TD_EXPORT int setreuid(uid_t ruid, uid_t euid)
{
	if (euid != (uid_t)-1)
		td_spool_before_uid(euid);
	return td__changed(td_real_setreuid(ruid, euid));
}

TD_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
	if (euid != (uid_t)-1)
		td_spool_before_uid(euid);
	return td__changed(td_real_setresuid(ruid, euid, suid));
}
