/* teardown: the command's entry point; each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void td__usage(FILE *out)
{
	fputs("usage: teardown [options] -- COMMAND [ARGS...]   run COMMAND under a policy\n"
	      "       teardown check [--canonical] [--system] FILE...  validate policy files\n"
	      "       teardown report [--format text|json] LOG...      summarise JSON logs\n"
	      "       teardown doctor [--json] [--system] BINARY...    can BINARY be interposed?\n"
	      "       teardown --help | --version\n"
	      "Run `teardown --help` for the run options.\n",
	      out);
}

int main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub == NULL) {
		td__usage(stderr);
		return 2;
	}
	if (strcmp(sub, "check") == 0) {
		/* `teardown check --system` is the system half of doctor */
		for (int i = 2; i < argc; i++)
			if (strcmp(argv[i], "--system") == 0)
				return td_cmd_doctor(argc - 1, argv + 1);
		return td_cmd_check(argc - 1, argv + 1);
	}
	if (strcmp(sub, "report") == 0)
		return td_cmd_report(argc - 1, argv + 1);
	if (strcmp(sub, "doctor") == 0)
		return td_cmd_doctor(argc - 1, argv + 1);
	if (strcmp(sub, "version") == 0 || strcmp(sub, "--version") == 0) {
		printf("teardown %s\n", TD_VERSION);
		return 0;
	}
	return td_cmd_run(argc, argv);
}
