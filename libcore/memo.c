/*
 * memo.c - a get that reads no store while nothing has been written
 * (SG_GET_MEMO, issue #14: the session check inside a web server).
 *
 * Why: inside nginx or lighttpd a session check runs on every request, and
 * a locked GDBM read costs two flock(2), an fstat(2) and the fetch, which
 * is most of what the check adds to a static page.  Yet most requests of a
 * session find the store exactly as the previous one left it.
 *
 * How it stays exact: a GDBM writer moves the write counter in the lock
 * page (shared memory) BEFORE it changes anything (gdbm_refresh.c).  A
 * record read under the lock is kept here with the counter read under the
 * same lock (no writer can be changing the store then).  A later get of the
 * same id that finds the counter unmoved knows the store still holds that
 * very record, and parses the kept copy: no lock, no syscall.  Liveness,
 * the touch and everything after the load run as for any get (a due touch
 * writes, which moves the counter and retires every kept record).  Any
 * write by anyone, to any session, retires the memo; so does its age: a
 * kept record is used for at most SGI_MEMO_MAX_MS, the same once-a-second
 * bound within which a reader notices a store file replaced behind its
 * back (a restored backup: no counter moves then).
 *
 * Backends without the counter (Redis) have no `stamp` and never memo.
 * The memo is per handle, so per process; it is made on the first get
 * that asks for it and freed with the handle.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SGI_MEMO_SLOTS   64          /* direct-mapped by a hash of the id */
#define SGI_MEMO_MAX_LEN 16384       /* larger records are not kept */
#define SGI_MEMO_MAX_MS  1000

typedef struct memo_slot {
    char id[SG_ID_LEN + 1];          /* "" = empty */
    uint64_t stamp;
    int64_t at_ms;                   /* monotonic, when read */
    char *text;                      /* Owned: the record as stored */
    size_t len;
} memo_slot;

struct sgi_memo {
    memo_slot slot[SGI_MEMO_SLOTS];
};

static int64_t memo_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static memo_slot *memo_slot_of(struct sgi_memo *m, const char *id)
{
    uint32_t h = 2166136261u;           /* FNV-1a */
    for (size_t i = 0; i < SG_ID_LEN && id[i]; i++)
        h = (h ^ (unsigned char)id[i]) * 16777619u;
    return &m->slot[h % SGI_MEMO_SLOTS];
}

/* The kept record of id when the store is still as it was read: a new
 * session (as sgi_load_ex makes it), or NULL (not kept, retired, or out
 * of memory: the caller reads the store). */
sg_session *sgi_memo_get(sg_store *st, const char *id)
{
    uint64_t now;
    if (!st->memo || !st->be->stamp || st->lock_mode != SGI_UNLOCKED ||
        !st->be->stamp(st, &now))
        return NULL;
    memo_slot *e = memo_slot_of(st->memo, id);
    if (!e->text || strcmp(e->id, id) != 0 || e->stamp != now ||
        memo_now_ms() - e->at_ms >= SGI_MEMO_MAX_MS)
        return NULL;
    sg_session *s = NULL;
    if (sgi_record_parse(e->text, e->len, &s, NULL) != SG_OK)
        return NULL;
    if (strcmp(s->id, id) != 0) {       /* cannot happen: it was checked */
        sg_session_free(s);
        return NULL;
    }
    s->max_data = st->opt.max_data;
    sgi_stored_as(s);
    return s;
}

/* Keep the record text of id, read under the lock held now.  Best
 * effort: nothing is kept when it cannot be (no counter, too long, no
 * memory). */
void sgi_memo_put(sg_store *st, const char *id, const char *text, size_t len)
{
    uint64_t now;
    if (st->lock_mode == SGI_UNLOCKED || !st->be->stamp ||
        len > SGI_MEMO_MAX_LEN || strlen(id) != SG_ID_LEN ||
        !st->be->stamp(st, &now))
        return;
    if (!st->memo && !(st->memo = calloc(1, sizeof *st->memo)))
        return;
    memo_slot *e = memo_slot_of(st->memo, id);
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(e->text);
    memcpy(e->id, id, SG_ID_LEN + 1);
    e->stamp = now;
    e->at_ms = memo_now_ms();
    e->text = copy;
    e->len = len;
}

void sgi_memo_free(sg_store *st)
{
    if (!st->memo)
        return;
    for (size_t i = 0; i < SGI_MEMO_SLOTS; i++)
        free(st->memo->slot[i].text);
    free(st->memo);
    st->memo = NULL;
}
