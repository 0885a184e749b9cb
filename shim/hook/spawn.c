/*
 * teardown: posix_spawn(), posix_spawnp() and
 * posix_spawn_file_actions_adddup2() — children that may hold a socket.
 *
 * An inetd-style parent hands a connection to a spawned child (adddup2
 * onto the child's stdin, or a socket without close-on-exec) and closes
 * its own copy at once.  That close is not the last one, so it must not
 * do close-time work (a drain's shutdown would cut the child's
 * connection).  A spawned child is recorded like a forked one, so that a
 * later close looks for the socket in /proc/<child>/fd; a socket named in
 * an adddup2 action is shared from then on.
 */
#include <spawn.h>

#include "../rt/rt.h"

static int td__spawn(bool path, pid_t *pid, const char *file,
		     const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
		     char *const argv[], char *const envp[])
{
	const struct td_policy *p = td_init_active();
	__typeof__(posix_spawn) *real = path ? td_real_posix_spawnp : td_real_posix_spawn;
	uint32_t epoch;
	pid_t child = 0;
	int rc;

	if (p == NULL)
		return real(pid, file, fa, at, argv, envp);
	/* the child's lines must not come before ours */
	td_spool_flush();
	/* a socket older than this child may be held by it from now on,
	 * uncounted */
	epoch = td_holders_epoch_next();
	td_holders_uncounted_child();
	rc = real(pid ? pid : &child, file, fa, at, argv, envp);
	if (rc == 0)
		td_holders_child_record(pid ? *pid : child, epoch);
	return rc;
}

TD_EXPORT int posix_spawn(pid_t *pid, const char *path,
			  const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *at, char *const argv[],
			  char *const envp[])
{
	return td__spawn(false, pid, path, fa, at, argv, envp);
}

TD_EXPORT int posix_spawnp(pid_t *pid, const char *file,
			   const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *at, char *const argv[],
			   char *const envp[])
{
	return td__spawn(true, pid, file, fa, at, argv, envp);
}

TD_EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa,
					       int fd, int newfd)
{
	const struct td_policy *p = td_init_active();
	struct td_fdent *s;

	if (p != NULL && (s = td_fdtab_live_or_born(fd)) != NULL)
		atomic_fetch_or(&s->flags, TD_SF_STICKY_SHARED);
	return td_real_posix_spawn_file_actions_adddup2(fa, fd, newfd);
}
