/*
 * options.c - the store options: one table of names, ranges, defaults and
 * help that the gateway, sessgatectl and the bindings all read.
 *
 * Before this table each face parsed the options itself, with limits of
 * its own (the gateway took a lock timeout up to 10 minutes, sessgatectl up
 * to an hour; an idle timeout up to 10 years in one and 100 in the other)
 * and the defaults typed again in help texts and a docstring.  Now a face
 * walks sg_option_at() for the rows it offers (faces), prints help and
 * defaults from the row and sets values with sg_options_set(), and
 * sg_store_open() checks every value against the same rows, so a binding
 * cannot pass what a command line would refuse.
 *
 * The ranges are the widest any face accepted before (no setting that
 * worked stops working), bounded so that every time sum the library does
 * (now + idle, now + max age, in seconds or in Redis's milliseconds) stays
 * far inside int64_t.  The rotation grace keeps the gateway's 300 s: it
 * is how long a stolen old id keeps working, so it stays short.
 *
 * The grace is the one number whose 0 is a setting of its own (no grace)
 * while its default is not 0 (SG_DEFAULT_ROTATE_GRACE, 10 s as
 * lua-resty-session's stale_ttl: the requests a page has in flight when
 * its id is renewed, queued behind a loaded server, keep the session).
 * Every face passes 0 for "the default", as for the other options, so a
 * face that says nothing gets the table's default; an explicit 0 goes
 * through sg_options_set(), which stores SG_ROTATE_GRACE_NONE.
 */
#include "internal.h"

#include <string.h>

#define YEARS_100 (100LL * 366 * 86400)

#define DEFAULT_TOUCH (SG_DEFAULT_IDLE_TIMEOUT / 10 < SG_MAX_TOUCH_INTERVAL \
                       ? SG_DEFAULT_IDLE_TIMEOUT / 10 : SG_MAX_TOUCH_INTERVAL)

#define ALL (SG_FACE_GATEWAY | SG_FACE_CLI | SG_FACE_BINDINGS)

/* In the order sessgatectl --help lists them. */
static const sg_option_info option_table[] = {
    { "lock_timeout_ms", "lock-timeout", "MS", 1, 3600 * 1000,
      SG_DEFAULT_LOCK_TIMEOUT, NULL,
      "give up waiting for the store lock after MS milliseconds", ALL },
    { "idle_timeout", "idle-timeout", "S", 1, YEARS_100,
      SG_DEFAULT_IDLE_TIMEOUT, NULL,
      "idle timeout of new sessions in seconds", ALL },
    { "max_age", "max-age", "S", 1, YEARS_100, SG_DEFAULT_MAX_AGE, NULL,
      "absolute lifetime of new sessions in seconds", ALL },
    { "touch_interval", "touch-interval", "S", 1, YEARS_100, DEFAULT_TOUCH,
      "idle/10, at most 60",
      "extend the idle window only when older than S seconds", ALL },
    { "max_per_user", "max-per-user", "N", 0, 1000000, 0, "0: no cap",
      "keep at most N live sessions per user, evicting the oldest", ALL },
    { "max_data", "max-data", "BYTES", 2, SG_MAX_DATA_LIMIT, SG_MAX_DATA, NULL,
      "cap on a session's data JSON", SG_FACE_CLI | SG_FACE_BINDINGS },
    { "rotate_grace", "rotate-grace", "S", 0, 300, SG_DEFAULT_ROTATE_GRACE,
      NULL, "after a rotation or renewal the old id keeps working S seconds "
      "(0: dies at once; never after a login, logout or user change)", ALL },
    { "sync", "sync", NULL, 0, 1, 0, NULL,
      "fsync the store after every write", ALL },
    { "group", "group", NULL, 0, 1, 0, NULL,
      "create the store files with mode 0660 instead of 0600", ALL },
    { "readonly", "readonly", NULL, 0, 1, 0, NULL,
      "never write: no touch, no create", SG_FACE_BINDINGS },
};
#define NOPTIONS (sizeof option_table / sizeof option_table[0])

/* Fill *opt with the defaults. */
void sg_options_init(sg_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->idle_timeout = SG_DEFAULT_IDLE_TIMEOUT;
    opt->max_age = SG_DEFAULT_MAX_AGE;
    opt->touch_interval = DEFAULT_TOUCH;
    opt->lock_timeout_ms = SG_DEFAULT_LOCK_TIMEOUT;
    opt->max_data = SG_MAX_DATA;
    opt->rotate_grace = SG_DEFAULT_ROTATE_GRACE;
}

/* Borrowed: the i-th row, NULL past the last. */
const sg_option_info *sg_option_at(size_t i)
{
    return i < NOPTIONS ? &option_table[i] : NULL;
}

/* Borrowed: the row named key (field name or flag), NULL if none. */
const sg_option_info *sg_option_find(const char *key)
{
    size_t i;

    if (!key)
        return NULL;
    for (i = 0; i < NOPTIONS; i++)
        if (strcmp(option_table[i].name, key) == 0 ||
            strcmp(option_table[i].flag, key) == 0)
            return &option_table[i];
    return NULL;
}

/* The field of *opt a row names, as a value (read) or a store (write). */
static int64_t get_field(const sg_options *o, const sg_option_info *r)
{
    switch (r - option_table) {
    case 0: return o->lock_timeout_ms;
    case 1: return o->idle_timeout;
    case 2: return o->max_age;
    case 3: return o->touch_interval;
    case 4: return o->max_per_user;
    case 5: return (int64_t)o->max_data;
    case 6: return o->rotate_grace == SG_ROTATE_GRACE_NONE ? 0 : o->rotate_grace;
    case 7: return o->sync != 0;
    case 8: return o->group != 0;
    default: return o->readonly != 0;
    }
}

static void set_field(sg_options *o, const sg_option_info *r, int64_t v)
{
    switch (r - option_table) {
    case 0: o->lock_timeout_ms = (int)v; break;
    case 1: o->idle_timeout = v; break;
    case 2: o->max_age = v; break;
    case 3: o->touch_interval = v; break;
    case 4: o->max_per_user = (int)v; break;
    case 5: o->max_data = (size_t)v; break;
    case 6: o->rotate_grace = v ? v : SG_ROTATE_GRACE_NONE; break;
    case 7: o->sync = (int)v; break;
    case 8: o->group = (int)v; break;
    default: o->readonly = (int)v; break;
    }
}

static sg_status out_of_range(const sg_option_info *r, int64_t v, sg_error *err)
{
    return sgi_err(err, SG_EINVAL, 0, "store option %s: %lld is not from "
                   "%lld to %lld", r->name, (long long)v, (long long)r->min,
                   (long long)r->max);
}

/* Set one option after its range check. */
sg_status sg_options_set(sg_options *opt, const char *key, int64_t value,
                         sg_error *err)
{
    const sg_option_info *r = sg_option_find(key);

    if (!r)
        return sgi_err(err, SG_EINVAL, 0, "store option %s: no such option",
                       key ? key : "(null)");
    if (value < r->min || value > r->max)
        return out_of_range(r, value, err);
    set_field(opt, r, value);
    return SG_OK;
}

/* Check every number of *in against the table (0: the default). */
sg_status sgi_options_check(const sg_options *in, sg_error *err)
{
    size_t i;

    for (i = 0; i < NOPTIONS; i++) {
        const sg_option_info *r = &option_table[i];
        int64_t v;

        if (!r->arg)
            continue;           /* flags: any nonzero is on */
        v = get_field(in, r);
        if (v != 0 && (v < r->min || v > r->max))
            return out_of_range(r, v, err);
    }
    return SG_OK;
}
