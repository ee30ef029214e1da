/*
 * idlist.c - growable lists of session ids (sg_list): what list, the
 * per-user index and the walks hand around.  An id is fixed-size
 * (SG_ID_LEN), so a list is one array of them: sorting and searching it
 * need no allocation.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ id lists */

/* New: an empty list, or NULL without memory. */
sg_list *sgi_list_new(void)
{
    return calloc(1, sizeof(sg_list));
}

/* Append an id; 0 on success, -1 without memory. */
int sgi_list_push(sg_list *l, const char *id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->ids, cap * sizeof l->ids[0]);
        if (!p)
            return -1;
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids[l->n++], id, SG_ID_LEN + 1);
    return 0;
}

size_t sg_list_count(const sg_list *l)
{
    return l ? l->n : 0;
}

/* Borrowed: the i-th id, NULL past the end. */
const char *sg_list_id(const sg_list *l, size_t i)
{
    return l && i < l->n ? l->ids[i] : NULL;
}

void sg_list_free(sg_list *l)
{
    if (!l)
        return;
    free(l->ids);
    free(l);
}

static int by_id(const void *a, const void *b)
{
    return memcmp(a, b, SG_ID_LEN);
}

/* Sort l by id and drop repeats. */
void sgi_list_sort_unique(sg_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->ids, l->n, sizeof l->ids[0], by_id);
    size_t j = 1;
    for (size_t i = 1; i < l->n; i++)
        if (memcmp(l->ids[i], l->ids[j - 1], SG_ID_LEN) != 0)
            memcpy(l->ids[j++], l->ids[i], SG_ID_LEN + 1);
    l->n = j;
}

int sgi_list_has(const sg_list *sorted, const char *id)
{
    return sorted->n && bsearch(id, sorted->ids, sorted->n,
                                sizeof sorted->ids[0], by_id) != NULL;
}
