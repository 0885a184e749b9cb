/*
 * exports_config: a program that exports (built with -rdynamic) functions
 * named like libconfig's, as lighttpd does (config_init, config_read...).
 * That crashed lighttpd while the library read its policy through a
 * dlopen()ed libconfig, whose internal calls bound to the program's
 * functions.  Since the library parses its policy itself and calls no
 * config_* function, the names are harmless: `teardown doctor` must flag
 * them only if the library's own references include them.
 *
 * It makes one TCP connection over loopback to itself and closes both
 * ends, then prints one JSON line: how often any of its config_*
 * functions was called, {"config_calls": N}.  It never calls them itself.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostutil.h"

static _Atomic long g_calls;

/* libconfig's config_t is opaque here: the stubs never touch it. */
void config_init(void *config);
void config_destroy(void *config);
int config_read(void *config, FILE *stream);
int config_read_string(void *config, const char *str);
int config_read_file(void *config, const char *filename);
void *config_lookup(const void *config, const char *path);

void config_init(void *config)
{
	(void)config;
	atomic_fetch_add(&g_calls, 1);
}

void config_destroy(void *config)
{
	(void)config;
	atomic_fetch_add(&g_calls, 1);
}

int config_read(void *config, FILE *stream)
{
	(void)config;
	(void)stream;
	atomic_fetch_add(&g_calls, 1);
	return 0;
}

int config_read_string(void *config, const char *str)
{
	(void)config;
	(void)str;
	atomic_fetch_add(&g_calls, 1);
	return 0;
}

int config_read_file(void *config, const char *filename)
{
	(void)config;
	(void)filename;
	atomic_fetch_add(&g_calls, 1);
	return 0;
}

void *config_lookup(const void *config, const char *path)
{
	(void)config;
	(void)path;
	atomic_fetch_add(&g_calls, 1);
	return NULL;
}

int main(void)
{
	int port = 0, l = host_listen(&port);
	struct sockaddr_in to = host_loopback(port);

	if (l < 0)
		host_die("listen");
	if (host_cycle(l, &to) != 0)
		host_die("connect/accept");
	close(l);
	printf("{\"config_calls\": %ld}\n", atomic_load(&g_calls));
	return 0;
}
