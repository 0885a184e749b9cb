/* teardown: the command's entry point; each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const struct td_cmd *const td_cmds[] = {
	&td_cmd_run_def, &td_cmd_check_def, &td_cmd_report_def, &td_cmd_doctor_def,
	&td_cmd_systemd_def, &td_cmd_help_def, NULL,
};

int main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	const struct td_cmd *c;

	if (sub == NULL) {
		fputs("usage: teardown [run] [options] [--] COMMAND [ARGS...]\n"
		      "       teardown check|report|doctor|systemd|help [options] [ARGS...]\n"
		      "Try 'teardown --help'.\n",
		      stderr);
		return TD_EXIT_USAGE;
	}
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		td_main_usage(stdout);
		return 0;
	}
	if (strcmp(sub, "--version") == 0 || strcmp(sub, "version") == 0) {
		printf("teardown %s\n", TD_VERSION);
		return 0;
	}
	c = td_cmd_find(sub);
	if (c != NULL)
		return c->main(argc - 1, argv + 1);
	/* the default: teardown [options] [--] COMMAND [ARGS...] */
	return td_cmd_run(argc, argv);
}
