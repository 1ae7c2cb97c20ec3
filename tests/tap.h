/* tap.h: a minimal TAP producer for the C unit tests (automake's TAP
 * driver reads it). Header-only; each test program includes it once.
 * SPDX-License-Identifier: MIT */
#ifndef MM_TAP_H
#define MM_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_fail;

__attribute__((unused)) static void plan_skip_all(const char *why) { printf("1..0 # SKIP %s\n", why); }

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_n++;
    if (!cond) tap_fail++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    return cond;
}

#define is_int(got, want, ...) \
    (ok((long long)(got) == (long long)(want), __VA_ARGS__) ? 1 : \
     (diag("got %lld, want %lld", (long long)(got), (long long)(want)), 0))
#define is_str(got, want, ...) \
    (ok(strcmp(tap_s(got), (want)) == 0, __VA_ARGS__) ? 1 : \
     (diag("got '%s', want '%s'", tap_s(got), (want)), 0))
/* |got - want| <= tol */
#define is_close(got, want, tol, ...) \
    (ok(fabs((double)(got) - (double)(want)) <= (tol), __VA_ARGS__) ? 1 : \
     (diag("got %.17g, want %.17g (tol %g)", (double)(got), (double)(want), (double)(tol)), 0))
/* the message contains NEEDLE */
__attribute__((unused)) static const char *tap_s(const char *s)
{
    return s ? s : "(null)";
}
__attribute__((unused)) static int tap_has(const char *got, const char *needle)
{
    return got != NULL && strstr(got, needle) != NULL;
}
#define like(got, needle, ...) \
    (ok(tap_has((got), (needle)), __VA_ARGS__) ? 1 : \
     (diag("'%s' lacks '%s'", tap_s(got), (needle)), 0))

/* Print the plan at the end ("1..N" last is valid TAP). */
static int done_testing(void)
{
    printf("1..%d\n", tap_n);
    if (tap_fail) diag("%d of %d failed", tap_fail, tap_n);
    return tap_fail ? 1 : 0;
}

#endif
