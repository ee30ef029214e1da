/*
 * main.c - sessgate, the FastCGI session gateway: wiring only.
 *
 * Parse the options (config.c), get the listening socket (listen.c: from
 * systemd, --listen or fd 0), drop to --user (privsep.c) before anything
 * else is made, so a store the gateway creates belongs to the service user,
 * check once that the store opens so a bad --store fails at start-up with a
 * clear message rather than as a 503 on every request, tell systemd we are
 * ready (Type=notify), and hand over to the workers (prefork.c), each of
 * which runs request.c's accept loop.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gateway.h"

int main(int argc, char **argv)
{
    gw_config cfg;
    sg_store *st = NULL;
    sg_error err;
    int rc, fd;

    rc = config_parse(&cfg, argc, argv);
    if (rc >= 0) {
        config_free(&cfg);
        return rc;
    }
    fd = listen_open(&cfg);
    if (fd < 0) {
        config_free(&cfg);
        return 1;
    }
    /* Bound before the drop, like the FastCGI socket. */
    if (metrics_setup(&cfg) < 0 || metrics_listen_open(&cfg) < 0) {
        listen_close(&cfg, fd);
        config_free(&cfg);
        return 1;
    }
    if (privsep_drop(&cfg.run_as) < 0) {
        listen_close(&cfg, fd);
        config_free(&cfg);
        return 1;
    }
    /* After the drop: SIGHUP reopens the log file as the service user, so
     * it must be that user's from the start. */
    if (log_setup(&cfg) < 0) {
        listen_close(&cfg, fd);
        config_free(&cfg);
        return 1;
    }
    sg_error_clear(&err);
    if (sg_store_open(cfg.store_uri, &cfg.store_opt, &st, &err) != SG_OK) {
        fprintf(stderr, "sessgate: %s\n", err.text);
        listen_close(&cfg, fd);
        config_free(&cfg);
        return 1;
    }
    /* Each worker opens its own handle after fork: a handle (and its lock
     * file descriptor) must not be shared between processes. */
    sg_store_close(st);
    sdnotify_send("READY=1");
    rc = prefork_run(&cfg, fd);
    metrics_close(&cfg);
    listen_close(&cfg, fd);
    config_free(&cfg);
    return rc;
}
