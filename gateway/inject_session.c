/*
 * inject_session.c - the session as the gateway injects it: SESSION_ID,
 * _USER, _DATA, _NEW, _DATA_TRUNCATED, _CSRF and _FLASH, under the names of
 * each target (the authorizer's Variable-*, the responder's X-Session-*, a
 * CGI program's environment).  inject_session() is the one place that
 * decides what is injected (it was written once per mode before); the modes
 * only say where a name and value go.  The values come from inject.c; the
 * flash messages leave the store here.  No libfcgi.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* The names each target injects under (empty values are never injected:
 * empty means absent). */
const inject_names inject_authorizer = {
    "Variable-SESSION_ID", "Variable-SESSION_USER", "Variable-SESSION_DATA",
    "Variable-SESSION_NEW", "Variable-SESSION_DATA_TRUNCATED",
    "Variable-SESSION_CSRF", "Variable-SESSION_FLASH",
};
const inject_names inject_responder = {
    "X-Session-Id", "X-Session-User", "X-Session-Data", "X-Session-New",
    "X-Session-Data-Truncated", "X-Session-Csrf", "X-Session-Flash",
};
const inject_names inject_cgi = {
    "SESSION_ID", "SESSION_USER", "SESSION_DATA", "SESSION_NEW",
    "SESSION_DATA_TRUNCATED", "SESSION_CSRF", "SESSION_FLASH",
};

/* Inject rq->session through put; see gateway.h. */
void inject_session(gw_request *rq, const inject_names *nm, inject_put_fn put, void *ctx)
{
    const char *user = sg_session_user(rq->session), *data = NULL;
    char *data_json, *data_owned = NULL, *user_enc = NULL;
    int truncated = 0;

    put(ctx, nm->id, sg_session_id(rq->session));
    if (user && *user) {
        user_enc = inject_user(user);       /* owned here, freed below */
        if (user_enc)
            put(ctx, nm->user, user_enc);
    }
    /* The data as libcore hands it out, injected as it is when it can be
     * (inject_data_view): one serialisation per request, no parse. */
    data_json = sg_session_data_json(rq->session);     /* owned here */
    if (inject_data_view(&rq->cfg->inject, data_json, &data, &data_owned, &truncated) < 0) {
        /* Why: the request still goes through; the backend is told the
         * data is missing rather than getting a 500. */
        char h[LOG_HASH_LEN + 1];

        log_event(LOG_WARN, "inject_failed", "session data could not be injected",
                  "sid", log_idhash(sg_session_id(rq->session), h), (const char *)NULL);
        truncated = 1;
    } else if (truncated)
        log_inject_truncated(rq, data_json);
    if (data && *data)
        put(ctx, nm->data, data);
    if (rq->created)
        put(ctx, nm->is_new, "1");
    if (truncated)
        put(ctx, nm->truncated, "1");
    if (*sg_session_csrf_token(rq->session))
        put(ctx, nm->csrf, sg_session_csrf_token(rq->session));
    /* Flash messages leave the store with this answer, once (see
     * sg_session_flash_pop): a parallel request gets none of them. */
    if (sg_session_has_flash(rq->session) && rq->store) {
        char *flash = NULL;
        sg_error ferr;

        sg_error_clear(&ferr);
        if (sg_session_flash_pop(rq->store, rq->session, &flash, &ferr) != SG_OK)
            log_msg("flash messages not delivered: %s", ferr.text);
        else if (strcmp(flash, "[]") != 0)
            put(ctx, nm->flash, flash);
        free(flash);
    }
    free(data_owned);
    free(data_json);
    free(user_enc);
}
