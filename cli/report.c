/*
 * teardown report: summarize JSON audit logs, per program.
 *
 * Only argument parsing and file reading live here; the counting and the
 * rendering are in cli/lib/report.c, where the unit tests reach them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "lib/report.h"
#include "teardown/spool.h"

static const struct td_opt td__report_opts[] = {
	{"format", 'f', "FORMAT",
	 "text (default), json, or prometheus (counters in the\n"
	 "text exposition format, for node_exporter's textfile\n"
	 "collector)", "text json prometheus"},
	{0},
};

static const struct td_opt *td__report_table(void)
{
	return td__report_opts;
}

/* `gzip -dc -- path` with its output on a pipe; NULL with errno. */
static FILE *td__gunzip(const char *path, pid_t *pid)
{
	extern char **environ;
	char *argv[] = {"gzip", "-dc", "--", (char *)path, NULL};
	posix_spawn_file_actions_t fa;
	int p[2], rc;
	FILE *f;

	if (pipe2(p, O_CLOEXEC) != 0)
		return NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	rc = posix_spawnp(pid, "gzip", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		errno = rc;
		return NULL;
	}
	f = fdopen(p[0], "r");
	if (f == NULL) {
		int e = errno;

		close(p[0]);
		waitpid(*pid, NULL, 0);
		*pid = -1;
		errno = e;
	}
	return f;
}

/* One dead process's spool: its lines that are not in the log yet. */
static int td__report_spool(struct td_report *r, const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), err = 0;
	struct td_spool_writer w;
	struct td_spool_merge m;
	struct td_spool_file f;
	struct stat st;
	char *buf = NULL;
	bool begun = false;
	void *map;

	if (fd < 0)
		return 0;
	/* a live owner holds the lock, and writes its lines out itself */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)TD_SPOOL_HDR ||
	    flock(fd, LOCK_SH | LOCK_NB) != 0) {
		close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return 0;
	if (td_spool_file_of(map, (size_t)st.st_size, &f) != 0)
		goto out;
	buf = malloc(TD_SW_LEN_MASK + 1);
	if (buf == NULL) {
		err = -ENOMEM;
		goto out;
	}
	td_spool_writer_of(&f.lane[0], &w);
	/* the lanes in key order, as the library's recovery writes them */
	td_spool_merge_begin(&m, &f, UINT64_MAX, true);
	for (;;) {
		struct td_spool_rec rec;
		const char *line;
		unsigned lane;
		size_t len;

		if (!td_spool_merge_next(&m, &lane, &rec))
			break;
		len = td_spool_rec_line(&rec, &w, buf, TD_SW_LEN_MASK + 1, &line);
		if (len == 0)
			continue;
		if (line != buf)
			memcpy(buf, line, len);
		/* an input only with a line not in the log yet (a process that
		 * gave up root leaves its spool written out: shim/rt/spool.c) */
		if (!begun && td_report_begin_spool(r, path) != 0) {
			err = -ENOMEM;
			break;
		}
		begun = true;
		if (td_report_line(r, buf, len) == -ENOMEM) {
			err = -ENOMEM;
			break;
		}
	}
out:
	free(buf);
	munmap(map, (size_t)st.st_size);
	return err;
}

/*
 * Spools next to the log file path (".NAME.spool.*", see shim/rt/spool.c)
 * that their processes left behind: read after the log itself, so that a
 * spool appended to the log meanwhile is counted once at most.
 */
static int td__report_spools(struct td_report *r, const char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	char *dir = strndup(path, slash ? (size_t)(slash - path) + 1 : 0);
	char *prefix = NULL, *full = NULL;
	struct dirent *e;
	int err = 0;
	DIR *d;

	if (dir == NULL || asprintf(&prefix, ".%s%s", base, TD_SPOOL_INFIX) < 0) {
		free(dir);
		return -ENOMEM;
	}
	d = opendir(*dir ? dir : ".");
	while (d != NULL && err == 0 && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (asprintf(&full, "%s%s", dir, e->d_name) < 0) {
			err = -ENOMEM;
			break;
		}
		err = td__report_spool(r, full);
		free(full);
	}
	if (d != NULL)
		closedir(d);
	free(prefix);
	free(dir);
	return err;
}

/*
 * Stream one input through the report, a line at a time: logs can be far
 * larger than memory.  Returns 0, or a negative errno for a file that
 * could not be read (the lines read before a failure still count) or
 * -ENOMEM, which ends the whole command.
 */
static int td__report_file(struct td_report *r, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct stat st;
	pid_t gz = -1;
	int err = 0, c;

	if (f == NULL)
		return -errno;
	memset(&st, 0, sizeof(st));
	/* fopen() accepts a directory; reading it fails later, less clearly */
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		goto out;
	}
	/* a gzip-compressed part (logrotate's compress): read through gzip */
	c = getc(f);
	if (c == 0x1f && f == stdin) {
		fprintf(stderr, "teardown report: standard input is gzip-compressed: "
			"use zcat FILE | teardown report -, or name the file\n");
		err = -EINVAL;
		goto out;
	}
	if (c == 0x1f && getc(f) == 0x8b) {
		FILE *z = td__gunzip(path, &gz);

		if (z == NULL) {
			err = -errno;
			goto out;
		}
		fclose(f);
		f = z;
	} else if (f == stdin) {
		if (c != EOF)
			ungetc(c, f);
	} else {
		rewind(f);
	}
	err = td_report_begin(r, path);
	if (err < 0)
		goto out;
	errno = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		if (td_report_line(r, line, (size_t)n) == -ENOMEM) {
			err = -ENOMEM;
			goto out;
		}
		errno = 0;
	}
	if (ferror(f))
		err = errno ? -errno : -EIO;
	if (err == 0 && f != stdin && gz < 0 && S_ISREG(st.st_mode))
		err = td__report_spools(r, path);
out:
	free(line);
	if (f == stdin)
		clearerr(stdin);
	else
		fclose(f);
	if (gz > 0) {
		int status = 0;

		while (waitpid(gz, &status, 0) < 0 && errno == EINTR)
			;
		if (err == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			fprintf(stderr, "teardown report: %s: gzip -dc failed (%s %d); the lines "
				"before the failure are counted\n", path,
				WIFEXITED(status) ? "exit status" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			err = 1; /* said: counted as read */
		}
	}
	return err;
}

static int td_cmd_report(int argc, char **argv)
{
	int format = TD_REPORT_TEXT, nread = 0, nfiles = 0, i, err, c;
	struct td_getopt g;
	struct td_report *r;

	if (td_getopt_init(&g, &td_cmd_report_def, argc, argv, false) != 0)
		return TD_EXIT_USAGE;
	while ((c = td_getopt_next(&g)) != -1) {
		if (c == TD_OPT_DONE) {
			td_getopt_free(&g);
			return g.status;
		}
		if (strcmp(optarg, "text") == 0) {
			format = TD_REPORT_TEXT;
		} else if (strcmp(optarg, "json") == 0) {
			format = TD_REPORT_JSON;
		} else if (strcmp(optarg, "prometheus") == 0) {
			format = TD_REPORT_PROMETHEUS;
		} else {
			td_getopt_free(&g);
			return td_usage_error(&td_cmd_report_def,
					      "--format is text, json or prometheus, not '%s'", optarg);
		}
	}
	td_getopt_free(&g);
	i = optind;
	if (i >= argc)
		return td_usage_error(&td_cmd_report_def, "no log given");
	r = td_report_new();
	if (r == NULL) {
		fputs("teardown report: out of memory\n", stderr);
		return 1;
	}
	for (; i < argc; i++) {
		nfiles++;
		err = td__report_file(r, argv[i]);
		if (err == -ENOMEM) {
			fputs("teardown report: out of memory\n", stderr);
			td_report_free(r);
			return 1;
		}
		if (err < 0) {
			if (err != -EINVAL)
				fprintf(stderr, "teardown report: %s: %s\n",
					argv[i], strerror(-err));
			continue;
		}
		nread++;
	}
	if (nread == 0) {
		fprintf(stderr, "teardown report: none of the %d input%s could be read\n",
			nfiles, nfiles == 1 ? "" : "s");
		td_report_free(r);
		return 1;
	}
	err = td_report_render(r, stdout, format);
	td_report_free(r);
	if (err < 0) {
		fprintf(stderr, "teardown report: writing the report: %s\n",
			strerror(-err));
		return 1;
	}
	return 0;
}

const struct td_cmd td_cmd_report_def = {
	.name = "report",
	.synopsis = "[--format text|json|prometheus] LOG...",
	.summary = "summarise audit logs per program",
	.about = "Summarize JSON audit logs (log.format = \"json\") per program.  LOG may\n"
		 "be - for standard input; give rotated parts as separate files\n"
		 "(gzip-compressed ones are read through gzip -dc).  Also read: syslog\n"
		 "files (lines \"... teardown[PID]: {...}\") and the output of journalctl\n"
		 "-o json.  Text-format and malformed lines are counted, never fatal.\n"
		 "Lines a process that died left in its spool next to a log file (not in\n"
		 "the log yet) are counted too, read-only.",
	.opts = td__report_table,
	.after = "Exit status: 0; 1 when no log could be read; 125 on bad usage.",
	.main = td_cmd_report,
	.operands = "@file",
};
