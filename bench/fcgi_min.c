/*
 * fcgi_min.c - the smallest useful FastCGI responder: the benchmark ceiling.
 *
 *   fcgi_min unix:PATH|HOST:PORT [WORKERS]
 *
 * It answers every request with "Status: 200" and nothing else (what an
 * auth answer without a session looks like), doing no work at all.  bench/gateway.bash puts it behind the same nginx
 * auth_request as sessgate, so the difference between the two is what
 * sessgate itself costs (cookie parsing, store lookup, answer), not nginx or
 * FastCGI framing.  WORKERS (default 1, at most 64) processes share the
 * listening socket, like `sessgate --workers`.  SIGTERM to the parent stops
 * the workers too.  It never reads the request body (nginx sends none to an
 * auth_request).
 */
#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 64

static pid_t workers[MAX_WORKERS];
static int nworkers;
static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* One worker: accept and answer until killed. */
static void serve(int fd)
{
	FCGX_Request rq;

	if (FCGX_InitRequest(&rq, fd, 0) != 0)
		_exit(1);
	while (FCGX_Accept_r(&rq) >= 0) {
		FCGX_PutS("Status: 200\r\n\r\n", rq.out);
		FCGX_Finish_r(&rq);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *addr;
	char *end;
	long n = 1;
	int fd, i;
	struct sigaction sa;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: fcgi_min unix:PATH|HOST:PORT [WORKERS]\n");
		return 2;
	}
	if (argc == 3) {
		errno = 0;
		n = strtol(argv[2], &end, 10);
		if (errno || *end || end == argv[2] || n < 1 || n > MAX_WORKERS) {
			fprintf(stderr, "fcgi_min: WORKERS must be 1..%d\n", MAX_WORKERS);
			return 2;
		}
	}
	/* libfcgi takes a socket path or ":PORT"/"HOST:PORT" as is. */
	addr = argv[1];
	if (strncmp(addr, "unix:", 5) == 0)
		addr += 5;
	if (FCGX_Init() != 0) {
		fprintf(stderr, "fcgi_min: FCGX_Init failed\n");
		return 1;
	}
	fd = FCGX_OpenSocket(addr, 128);
	if (fd < 0) {
		fprintf(stderr, "fcgi_min: cannot listen on %s\n", argv[1]);
		return 1;
	}

	/* A web server that hangs up early must not kill a worker. */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fcgi_min: fork");
			break;
		}
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			serve(fd);
		}
		workers[nworkers++] = pid;
	}
	/* The parent only waits; a signal ends the wait and stops the workers. */
	while (!stopping && nworkers > 0) {
		if (wait(NULL) < 0 && errno == ECHILD)
			break;
	}
	for (i = 0; i < nworkers; i++)
		kill(workers[i], SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}
