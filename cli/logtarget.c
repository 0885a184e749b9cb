/*
 * teardown: can the policy's log target be written?  Asked by `teardown
 * run` before it starts the program (so that an audit is never lost in
 * silence: the command refuses instead, with the reason) and by
 * `teardown check`.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define TD_JOURNAL_SOCKET "/run/systemd/journal/socket"

const char *td_journal_socket_path(void)
{
	const char *env = getenv("TEARDOWN_JOURNAL_SOCKET");

	return env != NULL && env[0] == '/' ? env : TD_JOURNAL_SOCKET;
}

/* Connect a datagram socket to path, as the library will; 0 or -errno. */
static int td__dgram(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, rc = 0;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The file target; create: open it as the library will (creating it). */
static int td__file(const char *path, bool create, char *why, size_t cap)
{
	char buf[PATH_MAX];
	const char *dir;
	struct stat st;
	int fd, err;

	snprintf(buf, sizeof(buf), "%s", path);
	dir = dirname(buf);
	if (!create && lstat(path, &st) != 0 && errno == ENOENT) {
		/* not there yet: the library will create it in its directory */
		if (stat(dir, &st) != 0) {
			err = errno;
			snprintf(why, cap, "cannot create the audit log %s: its directory %s: %s",
				 path, dir, strerror(err));
			return -err;
		}
		if (!S_ISDIR(st.st_mode)) {
			snprintf(why, cap, "cannot create the audit log %s: %s is not a directory",
				 path, dir);
			return -ENOTDIR;
		}
		if (access(dir, W_OK | X_OK) != 0) {
			err = errno;
			snprintf(why, cap, "cannot create the audit log %s in %s (uid %u): %s",
				 path, dir, (unsigned)getuid(), strerror(err));
			return -err;
		}
		return 0;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
				(create ? O_CREAT : 0), 0600);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT) {
			snprintf(why, cap, "cannot open the audit log %s: its directory %s does not "
				 "exist (create it, or choose another target with --log)",
				 path, dir);
		} else if (err == ELOOP) {
			snprintf(why, cap, "cannot open the audit log %s: it is a symbolic link, "
				 "which is never followed", path);
		} else {
			snprintf(why, cap, "cannot open the audit log %s (uid %u): %s", path,
				 (unsigned)geteuid(), strerror(err));
		}
		return -err;
	}
	close(fd);
	return 0;
}

int td_log_target_check(const struct td_policy *p, bool create, char *why, size_t cap)
{
	const char *jp;
	int rc;

	why[0] = '\0';
	switch (p->log_target) {
	case TD_LOG_FILE:
		return td__file(p->log_path, create, why, cap);
	case TD_LOG_SYSLOG:
		rc = td__dgram("/dev/log");
		if (rc != 0)
			snprintf(why, cap, "log target syslog: no syslog daemon listens on /dev/log "
				 "(%s); choose journal, a file or stderr", strerror(-rc));
		return rc;
	case TD_LOG_JOURNAL:
		jp = td_journal_socket_path();
		rc = td__dgram(jp);
		if (rc != 0)
			snprintf(why, cap, "log target journal: journald does not listen on %s "
				 "(%s); choose syslog, a file or stderr", jp, strerror(-rc));
		return rc;
	default:
		/* stderr: whatever it is, the library says itself when it cannot */
		return 0;
	}
}
