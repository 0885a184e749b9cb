/*
 * host_appsyms: a program that exports libconfig's names, as lighttpd
 * does (its own config_init/config_read, built with -rdynamic: see the
 * Makefile).  The library's privately loaded libconfig must never bind to
 * them: under any policy this prints exactly "config_init(main) = 7".
 */
#include <stdio.h>

int config_init(const char *who);
int config_read(const char *who);

int config_init(const char *who)
{
	printf("config_init(%s)", who);
	return 7;
}

int config_read(const char *who)
{
	printf("config_read(%s)\n", who);
	return -1;
}

int main(void)
{
	int rc = config_init("main");

	printf(" = %d\n", rc);
	return rc == 7 ? 0 : 1;
}
