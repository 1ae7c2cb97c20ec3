/* util.c: allocation that cannot fail quietly, the handle-less error
 * message, and the version string. Deliberately tiny.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/defs.h"

static _Thread_local char last_error[1024];

const char *mm_strerror(void) { return last_error; }

void mm__set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *mm_version(void) { return PACKAGE_VERSION; }

void mm__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "mmpath: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

static void oom(size_t n)
{
    fprintf(stderr, "mmpath: out of memory (asked for %zu bytes)\n", n);
    abort();
}

void *mm_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *mm_malloc_aligned(size_t align, size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : 1)) oom(n);
    return p;
}

void *mm_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *mm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *mm_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(mm_malloc(n), s, n);
}
