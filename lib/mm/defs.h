/* mm/defs.h: attributes, assertions and the error conventions every module
 * shares. Nothing here allocates or does I/O.
 * SPDX-License-Identifier: MIT */
#ifndef MM_DEFS_H
#define MM_DEFS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define MM_RESULT_USED __attribute__((warn_unused_result))
#define MM_PRINTF(i, j) __attribute__((format(printf, i, j)))
#define MM_NORETURN __attribute__((noreturn))
#else
#define MM_RESULT_USED
#define MM_PRINTF(i, j)
#define MM_NORETURN
#endif

/* Programmer errors only: abort with file:line (GGML_ASSERT). Bad input is
 * never an assertion; it is an error returned to the caller. */
#define MM_ASSERT(x) \
    do { if (!(x)) mm__assert_fail(#x, __FILE__, __LINE__); } while (0)
MM_NORETURN void mm__assert_fail(const char *expr, const char *file, int line);

/* Out of memory is fatal in libmmpath: every allocation goes through these,
 * which abort with a message instead of returning NULL (llm.c mallocCheck). */
void *mm_malloc(size_t n);
void *mm_calloc(size_t n, size_t size);
void *mm_realloc(void *p, size_t n);
/* ALIGN a power of two, a multiple of sizeof(void *); free() frees it. */
void *mm_malloc_aligned(size_t align, size_t n);
char *mm_strdup(const char *s);

/* Return codes. Record reads follow htslib: >= 0 a record, -1 the end,
 * < -1 an error whose message is kept on the handle. */
enum {
    MM_OK = 0,
    MM_EOF = -1,
    MM_ERR = -2,      /* generic failure (I/O, usage of the API) */
    MM_ETRUNC = -3,   /* input ends early: "truncated stream" */
    MM_ECORRUPT = -4, /* bytes fail a check: "corrupt stream: ..." */
    MM_EFORMAT = -5,  /* not our format, or a version we do not know */
};

/* The message of the last failed call that had no handle to keep it on
 * (mm_stream_open returning NULL, mm_table_read, ...). Thread-local. */
const char *mm_strerror(void);
void mm__set_error(const char *fmt, ...) MM_PRINTF(1, 2);

/* "0.1.0": the package version libmmpath was built as. */
const char *mm_version(void);

/* Largest msgpack map a stream may hold (STREAM.md): writers split long
 * tensors into chunk records below it, readers refuse anything above it. */
#define MM_REC_MAX ((size_t)64 << 20)

#endif
