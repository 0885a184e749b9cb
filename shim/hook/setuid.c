/*
 * teardown: setuid(), seteuid(), setreuid(), setresuid() — what a process
 * about to give up root (a server's workers: nginx's, apache2's children)
 * may do only as root, done first: its log's path checked, and a rotated
 * log opened anew (td_logw_before_uid()), and its spool's file made in a
 * log directory only root may write (td_spool_before_uid(),
 * shim/rt/spool.c), where it would otherwise write each line on its own
 * for good.  After a call that changed the ids, the next line reads the
 * uid it names again (td_logw_ids_changed()).  Every call goes on to libc
 * unchanged, errno and return value its own.
 */
#include <unistd.h>

#include "../rt/rt.h"

/* Before a call that sets the effective uid to euid (-1: leaves it). */
static void td__before(uid_t euid)
{
	const struct td_policy *p = td_init_active();
	int saved;

	if (euid == (uid_t)-1 || euid == 0 || p == NULL || p->log_target != TD_LOG_FILE ||
	    !td_init_in_own_process() || geteuid() != 0)
		return;
	saved = errno;
	td_logw_before_uid(p);
	td_spool_before_uid(p);
	td_errno_set(saved);
}

/* rc: the call's own (errno untouched) */
static int td__changed(int rc)
{
	if (rc == 0)
		td_logw_ids_changed();
	return rc;
}

TD_EXPORT int setuid(uid_t uid)
{
	td__before(uid);
	return td__changed(td_real_setuid(uid));
}

TD_EXPORT int seteuid(uid_t euid)
{
	td__before(euid);
	return td__changed(td_real_seteuid(euid));
}

TD_EXPORT int setreuid(uid_t ruid, uid_t euid)
{
	td__before(euid);
	return td__changed(td_real_setreuid(ruid, euid));
}

TD_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
	td__before(euid);
	return td__changed(td_real_setresuid(ruid, euid, suid));
}
