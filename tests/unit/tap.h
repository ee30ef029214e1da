/*
 * tap.h - the few macros the C unit tests share: TAP-style output, a
 * failure count, and the exit status make check reads (via unit.bats).
 */
#ifndef SG_TAP_H
#define SG_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define OK(cond, ...) do { \
        tap_n++; \
        if (cond) { printf("ok %d - ", tap_n); } \
        else { tap_failed++; printf("not ok %d - ", tap_n); } \
        printf(__VA_ARGS__); \
        if (!(cond)) printf("  [%s:%d: %s]", __FILE__, __LINE__, #cond); \
        printf("\n"); \
    } while (0)

#define IS(a, b, ...) do { \
        long long tap_a = (long long)(a), tap_b = (long long)(b); \
        OK(tap_a == tap_b, __VA_ARGS__); \
        if (tap_a != tap_b) printf("#   got %lld, want %lld\n", tap_a, tap_b); \
    } while (0)

#define STR_IS(a, b, ...) do { \
        const char *tap_a = (a), *tap_b = (b); \
        int tap_eq = tap_a && tap_b ? strcmp(tap_a, tap_b) == 0 : tap_a == tap_b; \
        OK(tap_eq, __VA_ARGS__); \
        if (!tap_eq) printf("#   got '%s', want '%s'\n", tap_a ? tap_a : "(null)", \
                            tap_b ? tap_b : "(null)"); \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    if (tap_failed)
        printf("# %d of %d failed\n", tap_failed, tap_n);
    return tap_failed ? 1 : 0;
}

#endif
