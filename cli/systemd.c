/*
 * teardown systemd: preload the library into a systemd service with a
 * drop-in, and take it out again.
 *
 *   teardown systemd enable UNIT [--root DIR] [--now] [-n] [-c FILE | run options]
 *   teardown systemd disable UNIT [--root DIR] [--now] [-n]
 *
 * enable writes /etc/systemd/system/UNIT.d/teardown.conf, which sets
 * LD_PRELOAD (the library first, then whatever the unit already
 * preloads) and TEARDOWN_CONFIG.  A -c FILE alone is named as it is;
 * policy options (with or without a file) are turned into a policy
 * written to /etc/teardown/UNIT.conf.  disable removes both.  Neither
 * reloads systemd unless --now is given: they print the command to run.
 * --root DIR writes under a staging root (tests, images).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "lib/out.h"
#include "teardown/config.h"

#define TD__MARK "# Written by `teardown systemd enable"
#define TD__DROPIN "teardown.conf"

enum { O_ROOT = 3000, O_NOW };

static const struct td_opt td__sd_own[] = {
	{"root", O_ROOT, "DIR",
	 "write under DIR instead of / (a staging root or an image);\\n"
	 "the unit's own LD_PRELOAD is then read from its files there", "@dir"},
	{"now", O_NOW, NULL,
	 "run `systemctl daemon-reload` and `systemctl restart UNIT`\\n"
	 "(or, after disable, the same) instead of printing them", NULL},
	{.help = "Run options (enable): the policy, as for `teardown run`:"},
};

static const struct td_opt *td__sd_table(void)
{
	static struct td_opt *table;
	const struct td_opt *run;
	size_t n = 0, k = sizeof(td__sd_own) / sizeof(td__sd_own[0]);

	if (table != NULL)
		return table;
	run = td_run_options();
	while (run[n].name != NULL || run[n].help != NULL)
		n++;
	table = calloc(k + n + 1, sizeof(*table));
	if (table == NULL)
		return td__sd_own;
	memcpy(table, td__sd_own, sizeof(td__sd_own));
	for (size_t i = 0; i < n; i++)
		if (run[i].name == NULL || strcmp(run[i].name, "version") != 0)
			table[k++] = run[i];
	return table;
}

struct td__sd {
	const char *action;
	char unit[256];
	const char *root; /* "" for / */
	bool now;
	struct td_run_opts run;
};

/* "nginx" -> "nginx.service"; NULL-free message on a bad name. */
static int td__unit_name(const char *in, char *out, size_t cap)
{
	const char *dot = strrchr(in, '.');

	if (*in == '\0' || strlen(in) > 200)
		return -1;
	for (const char *c = in; *c; c++)
		if (!(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.\\@-",
			     *c)))
			return -1;
	if (dot != NULL && strcmp(dot, ".service") != 0)
		return -2;
	snprintf(out, cap, "%s%s", in, dot ? "" : ".service");
	return 0;
}

/* mkdir -p for the directories of path below root (mode 0755). */
static int td__mkdirs(const char *dir)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *c = buf + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*c = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Write text to path atomically (a temporary file renamed over it), mode 0644. */
static int td__write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 16];
	size_t len = strlen(text);
	int fd, e;

	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0644) != 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
		e = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		return -e;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return -e;
	}
	return 0;
}

/* ---- the unit's own LD_PRELOAD ------------------------------------------- */

/*
 * One value of Environment= (a list of assignments, each bare or in
 * double quotes, backslash escapes): the LD_PRELOAD one into old (the
 * last wins); an empty Environment= resets.
 */
static void td__env_line(const char *v, char *old, size_t cap)
{
	char word[4096];

	v += strspn(v, " \t");
	if (*v == '\0') {
		old[0] = '\0';
		return;
	}
	while (*v) {
		size_t n = 0;
		char q = 0;

		v += strspn(v, " \t");
		while (*v && (q || (*v != ' ' && *v != '\t'))) {
			if (!q && (*v == '"' || *v == '\'')) {
				q = *v++;
				continue;
			}
			if (q && *v == q) {
				q = 0;
				v++;
				continue;
			}
			if (*v == '\\' && v[1] != '\0')
				v++;
			if (n + 1 < sizeof(word))
				word[n++] = *v;
			v++;
		}
		word[n] = '\0';
		if (n >= 11 && memcmp(word, "LD_PRELOAD=", 11) == 0)
			snprintf(old, cap, "%s", word + 11);
	}
}

/* The [Service] Environment= and EnvironmentFile= lines of one unit file or drop-in. */
static void td__scan_unit(const char *path, char *old, size_t cap, char *envfile, size_t ecap)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t lcap = 0;
	bool service = false;

	if (f == NULL)
		return;
	while (getline(&line, &lcap, f) >= 0) {
		char *l = line + strspn(line, " \t");

		l[strcspn(l, "\r\n")] = '\0';
		if (*l == '[')
			service = strncmp(l, "[Service]", 9) == 0;
		else if (service && strncmp(l, "Environment=", 12) == 0)
			td__env_line(l + 12, old, cap);
		else if (service && strncmp(l, "EnvironmentFile=", 16) == 0)
			snprintf(envfile, ecap, "%s", l + 16);
	}
	free(line);
	fclose(f);
}

static int td__cmp_base(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	return strcmp(strrchr(x, '/'), strrchr(y, '/'));
}

/*
 * From the unit's files under root: the unit file (or its template),
 * then its drop-ins in file-name order (one of a name: the first
 * directory's), ours left out.  Returns whether a unit file was found.
 */
static bool td__unit_files_env(const char *root, const char *unit, char *old, size_t cap,
			       char *envfile, size_t ecap)
{
	static const char *const dirs[] = {"/etc/systemd/system", "/run/systemd/system",
					   "/usr/local/lib/systemd/system",
					   "/usr/lib/systemd/system", "/lib/systemd/system"};
	char path[2 * PATH_MAX + 256], tmpl[256];
	const char *at = strchr(unit, '@');
	bool found = false;
	char *names[256];
	size_t nn = 0;

	/* foo@bar.service falls back to foo@.service */
	snprintf(tmpl, sizeof(tmpl), "%.*s@.service", at ? (int)(at - unit) : 0, unit);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !found; i++) {
		const char *cands[2] = {unit, at ? tmpl : NULL};

		for (int c = 0; c < 2 && !found && cands[c]; c++) {
			snprintf(path, sizeof(path), "%s%s/%s", root, dirs[i], cands[c]);
			if (access(path, R_OK) == 0) {
				td__scan_unit(path, old, cap, envfile, ecap);
				found = true;
			}
		}
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char dir[PATH_MAX];
		struct dirent *e;
		DIR *d;

		snprintf(dir, sizeof(dir), "%s%s/%s.d", root, dirs[i], unit);
		d = opendir(dir);
		while (d != NULL && (e = readdir(d)) != NULL && nn < 256) {
			size_t len = strlen(e->d_name);
			bool seen = false;

			if (len < 6 || strcmp(e->d_name + len - 5, ".conf") != 0 ||
			    strcmp(e->d_name, TD__DROPIN) == 0)
				continue;
			for (size_t k = 0; k < nn && !seen; k++)
				seen = strcmp(strrchr(names[k], '/') + 1, e->d_name) == 0;
			if (seen)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			names[nn] = strdup(path);
			if (names[nn] != NULL)
				nn++;
		}
		if (d != NULL)
			closedir(d);
	}
	qsort(names, nn, sizeof(names[0]), td__cmp_base);
	for (size_t i = 0; i < nn; i++) {
		td__scan_unit(names[i], old, cap, envfile, ecap);
		free(names[i]);
	}
	return found;
}

/* Run argv (a systemctl command), its stdout into out (NUL-ended, may be
 * NULL); the exit status, or -1 when it could not run. */
static int td__systemctl(char *const argv[], char *out, size_t cap)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	int p[2], status = 0, rc;
	size_t n = 0;
	ssize_t got;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	if (out != NULL) {
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return -1;
	}
	while (out != NULL && (got = read(p[0], out + n, cap - 1 - n)) > 0 && n + 1 < cap)
		n += (size_t)got;
	if (out != NULL)
		out[n] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * The LD_PRELOAD the unit sets now, without ours: systemd's own view when
 * it runs (systemctl show), else the unit's files under root.  1 when
 * the unit exists, 0 when it was not found, with what was read.
 */
static int td__unit_preload(const struct td__sd *s, char *old, size_t cap, char *envfile,
			    size_t ecap)
{
	char show[16384];

	old[0] = envfile[0] = '\0';
	if (s->root[0] == '\0') {
		char *argv[] = {"systemctl", "show", "-p", "LoadState,Environment,EnvironmentFiles",
				"--", (char *)s->unit, NULL};

		if (td__systemctl(argv, show, sizeof(show)) == 0) {
			char *line = show, *nl;
			bool loaded = true;

			for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
				nl = strchr(line, '\n');
				if (nl)
					*nl = '\0';
				if (strcmp(line, "LoadState=not-found") == 0)
					loaded = false;
				else if (strncmp(line, "Environment=", 12) == 0)
					td__env_line(line + 12, old, cap);
				else if (strncmp(line, "EnvironmentFiles=", 17) == 0 && line[17])
					snprintf(envfile, ecap, "%s", line + 17);
				if (nl == NULL)
					break;
			}
			return loaded;
		}
	}
	return td__unit_files_env(s->root, s->unit, old, cap, envfile, ecap);
}

/* value as one double-quoted systemd word: \ and " escaped, % doubled. */
static void td__sd_quote(FILE *out, const char *key, const char *value)
{
	fprintf(out, "Environment=\"%s=", key);
	for (const char *c = value; *c; c++) {
		if (*c == '"' || *c == '\\')
			fputc('\\', out);
		if (*c == '%')
			fputc('%', out);
		fputc(*c, out);
	}
	fputs("\"\n", out);
}

static int td__reload(const struct td__sd *s)
{
	char *reload[] = {"systemctl", "daemon-reload", NULL};
	char *restart[] = {"systemctl", "restart", "--", (char *)s->unit, NULL};
	const char *step = "daemon-reload";
	int rc;

	if (!s->now) {
		printf("Now run: systemctl daemon-reload && systemctl restart %s\n", s->unit);
		return 0;
	}
	rc = td__systemctl(reload, NULL, 0);
	if (rc == 0) {
		step = "restart";
		rc = td__systemctl(restart, NULL, 0);
	}
	if (rc != 0) {
		fprintf(stderr, "teardown systemd: systemctl %s failed (%d)\n", step, rc);
		return 1;
	}
	printf("systemctl daemon-reload && systemctl restart %s: done\n", s->unit);
	return 0;
}

/* The policy file enable writes: /etc/teardown/UNIT.conf (without the root). */
static void td__policy_path(const struct td__sd *s, char *out, size_t cap)
{
	snprintf(out, cap, "/etc/teardown/%s.conf", s->unit);
}

static int td__enable(struct td__sd *s)
{
	char lib[PATH_MAX], why[PATH_MAX + 256], old[4096], envfile[PATH_MAX];
	char dir[PATH_MAX], dropin[PATH_MAX + 32], polpath[PATH_MAX], polfile[2 * PATH_MAX];
	char *policy = NULL, *preload = NULL, *text = NULL;
	static struct td_policy logp;
	bool as_path, write_policy;
	size_t tlen = 0;
	FILE *mem;
	int rc = 1, e;

	if (td_find_library(lib, s->run.library, why, sizeof(why)) != 0) {
		fprintf(stderr, "teardown systemd: %s\n", why);
		return TD_EXIT_USAGE;
	}
	policy = td_run_policy(&s->run, &as_path, &logp);
	if (policy == NULL)
		return TD_EXIT_USAGE;
	write_policy = !as_path;
	if (as_path) {
		/* the service reads it, maybe as root: it must be root's or ours alone */
		struct td_cfg_error err;
		struct td_policy p;

		if (td_policy_load_file(&p, policy, true, &err) != 0) {
			char line[sizeof(err.file) + sizeof(err.msg) + 32];

			td_cfg_error_format(&err, line, sizeof(line));
			fprintf(stderr, "teardown systemd: %s\n", line);
			free(policy);
			return TD_EXIT_USAGE;
		}
		td_policy_free(&p);
	}
	if (td__unit_preload(s, old, sizeof(old), envfile, sizeof(envfile)) == 0) {
		fprintf(stderr, "teardown systemd: no unit %s%s%s\n", s->unit,
			s->root[0] ? " under " : "", s->root);
		goto out;
	}
	if (envfile[0] != '\0')
		fprintf(stderr, "teardown systemd: warning: %s reads EnvironmentFile=%s: an "
			"LD_PRELOAD set there replaces the drop-in's\n", s->unit, envfile);
	if (strncmp(lib, "/usr/", 5) != 0 && strncmp(lib, "/opt/", 5) != 0)
		fprintf(stderr, "teardown systemd: warning: the service will preload %s, which is "
			"not an installed library (make install, or the teardown package)\n", lib);
	preload = td_preload_join(lib, old);
	if (preload == NULL)
		goto nomem;
	td__policy_path(s, polpath, sizeof(polpath));
	/* the drop-in */
	mem = open_memstream(&text, &tlen);
	if (mem == NULL)
		goto nomem;
	fprintf(mem, "%s %s` (teardown %s).\n"
		"# `teardown systemd disable %s` removes it%s.\n[Service]\n",
		TD__MARK, s->unit, TD_VERSION, s->unit,
		write_policy ? ", and the policy it names" : "");
	td__sd_quote(mem, "LD_PRELOAD", preload);
	td__sd_quote(mem, "TEARDOWN_CONFIG", write_policy ? polpath : policy);
	if (fclose(mem) != 0 || text == NULL)
		goto nomem;
	snprintf(dir, sizeof(dir), "%s/etc/systemd/system/%s.d", s->root, s->unit);
	snprintf(dropin, sizeof(dropin), "%s/%s", dir, TD__DROPIN);
	snprintf(polfile, sizeof(polfile), "%s%s", s->root, polpath);
	if (s->run.dry_run) {
		printf("# %s\n%s", dropin, text);
		if (write_policy)
			printf("# %s\n%s %s`.\n%s", polfile, TD__MARK, s->unit, policy);
		rc = 0;
		goto out;
	}
	if (write_policy) {
		char pdir[PATH_MAX + 32], *ptext;

		snprintf(pdir, sizeof(pdir), "%s/etc/teardown", s->root);
		if (asprintf(&ptext, "%s %s`: the policy of its drop-in.\n%s", TD__MARK,
			     s->unit, policy) < 0)
			goto nomem;
		e = td__mkdirs(pdir);
		if (e == 0)
			e = td__write_file(polfile, ptext);
		free(ptext);
		if (e != 0) {
			fprintf(stderr, "teardown systemd: %s: %s\n", polfile, strerror(-e));
			goto out;
		}
		printf("wrote %s\n", polfile);
	}
	e = td__mkdirs(dir);
	if (e == 0)
		e = td__write_file(dropin, text);
	if (e != 0) {
		fprintf(stderr, "teardown systemd: %s: %s\n", dropin, strerror(-e));
		goto out;
	}
	printf("wrote %s\n", dropin);
	rc = s->root[0] ? (printf("(under %s: reload systemd where that root is used)\n",
				   s->root), 0)
			: td__reload(s);
	goto out;
nomem:
	perror("teardown systemd");
out:
	free(text);
	free(preload);
	free(policy);
	return rc;
}

/* Whether path is a file enable wrote (it starts with the mark). */
static bool td__ours(const char *path)
{
	char head[sizeof(TD__MARK)];
	FILE *f = fopen(path, "re");
	bool ours;

	if (f == NULL)
		return false;
	ours = fread(head, 1, sizeof(head) - 1, f) == sizeof(head) - 1 &&
	       memcmp(head, TD__MARK, sizeof(head) - 1) == 0;
	fclose(f);
	return ours;
}

static int td__disable(struct td__sd *s)
{
	char dir[PATH_MAX], dropin[PATH_MAX + 32], polpath[PATH_MAX], polfile[2 * PATH_MAX];
	char pdir[PATH_MAX + 32];

	snprintf(dir, sizeof(dir), "%s/etc/systemd/system/%s.d", s->root, s->unit);
	snprintf(dropin, sizeof(dropin), "%s/%s", dir, TD__DROPIN);
	td__policy_path(s, polpath, sizeof(polpath));
	snprintf(polfile, sizeof(polfile), "%s%s", s->root, polpath);
	snprintf(pdir, sizeof(pdir), "%s/etc/teardown", s->root);
	if (access(dropin, F_OK) != 0) {
		printf("%s: no teardown drop-in (%s): nothing to do\n", s->unit, dropin);
		return 0;
	}
	if (!td__ours(dropin)) {
		fprintf(stderr, "teardown systemd: %s was not written by teardown systemd enable; "
			"left alone\n", dropin);
		return 1;
	}
	if (s->run.dry_run) {
		printf("would remove %s\n", dropin);
		if (td__ours(polfile))
			printf("would remove %s\n", polfile);
		return 0;
	}
	if (unlink(dropin) != 0) {
		fprintf(stderr, "teardown systemd: %s: %s\n", dropin, strerror(errno));
		return 1;
	}
	printf("removed %s\n", dropin);
	/* the folders enable made, when nothing else is in them */
	if (rmdir(dir) == 0)
		printf("removed %s\n", dir);
	if (td__ours(polfile)) {
		if (unlink(polfile) != 0) {
			fprintf(stderr, "teardown systemd: %s: %s\n", polfile, strerror(errno));
			return 1;
		}
		printf("removed %s\n", polfile);
		if (rmdir(pdir) == 0)
			printf("removed %s\n", pdir);
	}
	return s->root[0] ? 0 : td__reload(s);
}

static int td_cmd_systemd(int argc, char **argv)
{
	struct td__sd s = {.root = ""};
	struct td_getopt g;
	char root[PATH_MAX];
	int c, rc;

	if (td_getopt_init(&g, &td_cmd_systemd_def, argc, argv, false) != 0)
		return TD_EXIT_USAGE;
	while ((c = td_getopt_next(&g)) != -1) {
		if (c == TD_OPT_DONE) {
			td_getopt_free(&g);
			td_run_opts_free(&s.run);
			return g.status;
		}
		if (c == O_ROOT) {
			s.root = optarg;
		} else if (c == O_NOW) {
			s.now = true;
		} else if ((rc = td_run_take(&s.run, c, optarg)) != 0) {
			td_getopt_free(&g);
			td_run_opts_free(&s.run);
			if (rc < 0)
				perror("teardown systemd");
			return TD_EXIT_USAGE;
		}
	}
	td_getopt_free(&g);
	rc = TD_EXIT_USAGE;
	if (argc - optind != 2) {
		td_usage_error(&td_cmd_systemd_def, "want enable or disable, and a UNIT");
		goto out;
	}
	s.action = argv[optind];
	switch (td__unit_name(argv[optind + 1], s.unit, sizeof(s.unit))) {
	case -1:
		td_usage_error(&td_cmd_systemd_def, "'%s' is not a unit name", argv[optind + 1]);
		goto out;
	case -2:
		td_usage_error(&td_cmd_systemd_def, "%s: only a service (.service) can preload "
			       "the library", argv[optind + 1]);
		goto out;
	}
	if (s.root[0] != '\0') {
		if (realpath(s.root, root) == NULL) {
			fprintf(stderr, "teardown systemd: --root %s: %s\n", s.root, strerror(errno));
			goto out;
		}
		s.root = strcmp(root, "/") == 0 ? "" : root;
		if (s.now && s.root[0] != '\0') {
			td_usage_error(&td_cmd_systemd_def, "--now cannot reload a staging root");
			goto out;
		}
	}
	if (strcmp(s.action, "enable") == 0) {
		rc = td__enable(&s);
	} else if (strcmp(s.action, "disable") == 0) {
		if (s.run.have_rule || s.run.have_log || s.run.config || s.run.quiet) {
			td_usage_error(&td_cmd_systemd_def, "disable takes no policy options");
			goto out;
		}
		rc = td__disable(&s);
	} else {
		td_usage_error(&td_cmd_systemd_def, "'%s': want enable or disable", s.action);
	}
out:
	td_run_opts_free(&s.run);
	return rc;
}

const struct td_cmd td_cmd_systemd_def = {
	.name = "systemd",
	.synopsis = "enable UNIT [--root DIR] [--now] [-n] [-c FILE] [run options]\n"
		    "disable UNIT [--root DIR] [--now] [-n]",
	.summary = "preload the library into a systemd service (a drop-in)",
	.about = "enable writes /etc/systemd/system/UNIT.d/teardown.conf: Environment=\n"
		 "LD_PRELOAD (the library, then what the unit already preloads, read with\n"
		 "systemctl show or, under --root, from its unit files) and\n"
		 "TEARDOWN_CONFIG.  With -c FILE alone the drop-in names FILE (it must be\n"
		 "owned by root or you and writable by nobody else); policy options, with\n"
		 "or without a file, are turned into /etc/teardown/UNIT.conf.  disable\n"
		 "removes what enable wrote.  Both print the systemctl command that makes\n"
		 "it take effect, or run it with --now.  -n prints the files instead of\n"
		 "writing them.  UNIT may omit .service.",
	.opts = td__sd_table,
	.after = "Exit status: 0 done; 1 failed (no such unit, a file not written);\n"
		 "125 on bad usage or an invalid policy.",
	.main = td_cmd_systemd,
	.operands = "enable disable|@unit",
};
