/*
 * teardown test program: what a set-user-ID program sees of the library.
 *
 *   secure_probe PORT
 *
 * Sets SO_LINGER {1,7} on a TCP socket, connects it to 127.0.0.1:PORT,
 * reads SO_LINGER back and closes.  A policy applied at connect() shows
 * in the value read back: "abort" makes it {1,0}, "graceful" turns it
 * off, no policy leaves {1,7}.  Prints one JSON line: ruid, euid,
 * secure (AT_SECURE), preloaded (libteardown.so is mapped), whether
 * TEARDOWN_CONFIG / TEARDOWN_POLICY reached the environment, the connect
 * error and the SO_LINGER read back.  Exit status 0, 1 if connect failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <link.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <unistd.h>

static int td_probe_phdr(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (info->dlpi_name != NULL && strstr(info->dlpi_name, "libteardown.so") != NULL)
		*(int *)data = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct linger set = {.l_onoff = 1, .l_linger = 7}, got = {-1, -1};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(got);
	int preloaded = 0, fd, err = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: secure_probe PORT\n");
		return 2;
	}
	dl_iterate_phdr(td_probe_phdr, &preloaded);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &set, sizeof(set)) != 0) {
		perror("secure_probe: socket");
		return 2;
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		err = errno;
	if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &got, &len) != 0)
		got.l_onoff = got.l_linger = -1;
	printf("{\"ruid\":%u,\"euid\":%u,\"secure\":%lu,\"preloaded\":%s,"
	       "\"env_config\":%s,\"env_policy\":%s,\"connect_error\":%d,"
	       "\"linger_onoff\":%d,\"linger_secs\":%d}\n",
	       (unsigned)getuid(), (unsigned)geteuid(), getauxval(AT_SECURE),
	       preloaded ? "true" : "false",
	       getenv("TEARDOWN_CONFIG") ? "true" : "false",
	       getenv("TEARDOWN_POLICY") ? "true" : "false", err, got.l_onoff,
	       got.l_linger);
	fflush(stdout);
	close(fd);
	return err ? 1 : 0;
}
