/*
 * test_record.c - the stored record format (libcore/record.c): format 2
 * (fixed header, data kept as text) dumps and parses back field for field,
 * its header sits at the offsets a Redis script reads, damaged variants are
 * refused, a get reads no JSON, and records of format 1 (the JSON object
 * of before) are read, rewritten as format 2 by the next write, and
 * converted by check --repair without any change to the session.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

#define ID1 "0b5c2a47-8e0d-4c1b-9a2e-3f4d5e6a7b8c"
#define ID2 "1c6d3b58-9f1e-4d2c-8b3f-405e6f7a8b9d"
#define TOKEN "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static char path[512];

/* New: the raw value of key (NULL when absent). */
static char *raw(sg_store *st, const char *key, size_t *len)
{
    char *v = NULL;
    if (sgi_lock(st, SGI_SHARED, NULL) != SG_OK)
        return NULL;
    if (st->be->fetch(st, key, &v, len, NULL) != SG_OK)
        v = NULL;
    sgi_unlock(st);
    return v;
}

static int put_raw(sg_store *st, const char *key, const char *val)
{
    if (sgi_lock(st, SGI_EXCLUSIVE, NULL) != SG_OK)
        return -1;
    sg_status rc = st->be->put(st, key, val, strlen(val), 0, NULL);
    sgi_unlock(st);
    return rc == SG_OK ? 0 : -1;
}

static void roundtrip(void)
{
    sg_session *s = sgi_session_new();
    sg_error err = { 0 };
    s->max_data = SG_MAX_DATA;
    memcpy(s->id, ID1, sizeof ID1);
    s->user = strdup("\xc3\xbcser \xe2\x82\xac");     /* UTF-8 kept as is */
    s->created = -5;
    s->accessed = 1764000300;
    s->expires = INT64_MAX;
    s->idle = 1800;
    s->version = 7;
    s->rotated = 1764000100;
    memcpy(s->csrf, TOKEN, sizeof TOKEN);
    sg_status rc = sg_session_set_data(s, "{\"cart\":[1,2],\"n\":\"\\u00e9\"}", &err);
    OK(rc == SG_OK, "data set");
    rc = sg_session_flash_add(s, "{\"msg\":\"hi\"}", &err);
    OK(rc == SG_OK, "flash added");
    size_t len;
    char *rec = sgi_record_dump(s, &len);
    OK(rec && memcmp(rec, "SGR2 ", 5) == 0, "a dump is format 2");
    OK(rec && memcmp(rec + 5, "00000000000000000007 ", 21) == 0,
       "the version is the 20 characters at offset 5 (what a Redis script reads)");
    OK(rec && memcmp(rec + 26, "-0000000000000000005", 20) == 0,
       "a negative number keeps its sign in the width");
    OK(rec && memcmp(rec + 131, ID1, 36) == 0, "the id at offset 131");
    sg_session *b = NULL;
    rc = rec ? sgi_record_parse(rec, len, &b, &err) : SG_ENOMEM;
    OK(rc == SG_OK, "the dump parses back: %s", err.text);
    if (b) {
        IS(b->format, SGI_FORMAT_CURRENT, "read as format 2");
        OK(b->data == NULL, "its data is not parsed by the read");
        STR_IS(b->user, s->user, "user");
        IS(b->created, -5, "created");
        IS(b->accessed, 1764000300, "accessed");
        OK(b->expires == INT64_MAX, "expires");
        IS(b->idle, 1800, "idle");
        IS(b->version, 7, "version");
        IS(b->rotated, 1764000100, "rotated");
        STR_IS(b->csrf, TOKEN, "csrf");
        OK(sg_session_has_flash(b), "flash");
        char *d = sg_session_data_json(b);
        STR_IS(d, "{\"cart\":[1,2],\"n\":\"\\u00E9\"}", "data handed out as stored");
        free(d);
        char *rec2 = sgi_record_dump(b, NULL);
        STR_IS(rec2, rec, "a read record dumps to the same bytes");
        free(rec2);
        b->max_data = SG_MAX_DATA;      /* (sgi_load sets the store's) */
        rc = sg_session_merge_data(b, "{\"n\":null}", &err);
        OK(rc == SG_OK, "merge: %s", err.text);
        d = sg_session_data_json(b);
        STR_IS(d, "{\"cart\":[1,2]}", "merge parses the text on demand");
        free(d);
        sg_session_free(b);
    }
    /* Damaged variants: every one refused as SG_EINVAL. */
    static const struct { size_t at; char c; const char *what; } bad[] = {
        { 3, '3', "an unknown format number" },
        { 10, 'x', "a non-digit in a number" },
        { 4, '_', "a missing separator" },
        { 131, 'Z', "a bad id" },
        { 170, 'g', "a bad csrf token" },
        { 250, '9', "a data length that does not add up" },
    };
    for (size_t i = 0; rec && i < sizeof bad / sizeof *bad; i++) {
        char *t = strdup(rec);
        t[bad[i].at] = bad[i].c;
        sg_session *x = NULL;
        rc = sgi_record_parse(t, len, &x, NULL);
        OK(rc == SG_EINVAL && !x, "refused: %s", bad[i].what);
        sg_session_free(x);
        free(t);
    }
    if (rec) {
        /* A control byte in the data could break a header downstream. */
        char *t = strdup(rec);
        t[len - 2] = '\n';
        sg_session *x = NULL;
        rc = sgi_record_parse(t, len, &x, NULL);
        OK(rc == SG_EINVAL && !x, "refused: a control byte in the data");
        sg_session_free(x);
        free(t);
        sg_session *y = NULL;
        rc = sgi_record_parse(rec, len - 1, &y, NULL);
        OK(rc == SG_EINVAL && !y, "refused: a record cut short");
        sg_session_free(y);
    }
    free(rec);
    sg_session_free(s);
}

static void old_format(void)
{
    sg_error err = { 0 };
    sg_store *st = NULL;
    sg_status rc = sg_store_open(path, NULL, &st, &err);
    OK(rc == SG_OK, "store opens");
    if (!st)
        return;
    char rec1[512], rec2[512];
    long long now = (long long)sgi_now(st);
    snprintf(rec1, sizeof rec1, "{\"id\":\"" ID1 "\",\"user\":\"alice\",\"created\":%lld,"
             "\"accessed\":%lld,\"expires\":%lld,\"idle\":1800,\"version\":3,"
             "\"data\":{\"k\":\"v\"},\"csrf\":\"" TOKEN "\"}", now, now, now + 3600);
    snprintf(rec2, sizeof rec2, "{\"id\":\"" ID2 "\",\"user\":null,\"created\":%lld,"
             "\"accessed\":%lld,\"expires\":%lld,\"idle\":1800,\"version\":5,"
             "\"data\":{\"x\":[1,{\"y\":2}]}}", now, now, now + 3600);
    OK(put_raw(st, ID1, rec1) == 0 && put_raw(st, ID2, rec2) == 0,
       "two records stored in format 1");
    /* the index entry of alice's session, as the old store had it */
    rc = sgi_lock(st, SGI_EXCLUSIVE, &err);
    if (rc == SG_OK) {
        rc = sgi_index_add(st, "alice", ID1, &err);
        sgi_unlock(st);
    }

    sg_session *s = NULL;
    rc = sg_session_get(st, ID1, SG_GET_NOTOUCH, &s, &err);
    OK(rc == SG_OK, "a format-1 record is read: %s", err.text);
    if (s) {
        char *d = sg_session_data_json(s);
        STR_IS(d, "{\"k\":\"v\"}", "its data");
        free(d);
        STR_IS(sg_session_user(s), "alice", "its user");
        IS(sg_session_version(s), 3, "its version");
    }
    size_t len;
    char *r = raw(st, ID1, &len);
    OK(r && r[0] == '{', "a read leaves it as it is");
    free(r);
    rc = s ? sg_session_set_data(s, "{\"k\":\"w\"}", &err) : SG_EINVAL;
    if (rc == SG_OK)
        rc = sg_session_save(st, s, &err);
    OK(rc == SG_OK, "it is saved: %s", err.text);
    r = raw(st, ID1, &len);
    OK(r && memcmp(r, "SGR2 ", 5) == 0, "the write rewrote it in format 2");
    free(r);
    sg_session_free(s);

    sg_check_report rep;
    memset(&rep, 0, sizeof rep);
    sg_error_clear(&err);
    rc = sg_store_check(st, 0, &rep, &err);
    OK(rc == SG_OK, "check passes: %s", err.text);
    IS(rep.old_format, 1, "check counts the one record still in format 1");
    r = raw(st, ID2, &len);
    OK(r && r[0] == '{', "check without repair changes nothing");
    free(r);
    memset(&rep, 0, sizeof rep);
    rc = sg_store_check(st, 1, &rep, &err);
    OK(rc == SG_OK, "check --repair passes: %s", err.text);
    IS(rep.old_format, 1, "and converts it");
    r = raw(st, ID2, &len);
    OK(r && memcmp(r, "SGR2 ", 5) == 0, "it is in format 2 now");
    free(r);
    s = NULL;
    rc = sg_session_get(st, ID2, SG_GET_NOTOUCH, &s, &err);
    OK(rc == SG_OK, "the converted session reads");
    if (s) {
        IS(sg_session_version(s), 5, "with its version unchanged");
        char *d = sg_session_data_json(s);
        STR_IS(d, "{\"x\":[1,{\"y\":2}]}", "and its data");
        free(d);
        OK(sg_session_user(s) == NULL, "still anonymous");
        sg_session_free(s);
    }
    memset(&rep, 0, sizeof rep);
    rc = sg_store_check(st, 0, &rep, &err);
    IS(rep.old_format, 0, "no record is left in format 1");
    sg_list *l = NULL;
    rc = sg_store_list(st, "alice", &l, &err);
    IS(sg_list_count(l), 1, "the index still finds alice's session");
    sg_list_free(l);
    sg_store_close(st);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    snprintf(path, sizeof path, "%s/record.db", argv[1]);
    roundtrip();
    old_format();
    return tap_done();
}
