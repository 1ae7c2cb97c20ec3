/* toolutil.h: what every mmpath program shares: messages and exit codes,
 * strict number parsing, the common options, provenance argv, progress.
 * Tools only; libmmpath never prints or exits.
 * SPDX-License-Identifier: MIT */
#ifndef MM_TOOLUTIL_H
#define MM_TOOLUTIL_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "mm/defs.h"
#include "mm/io.h"
#include "mm/stream.h"

/* Exit codes: 0 ok, 1 failure or bad input, 2 bad usage. */
enum { MM_EXIT_OK = 0, MM_EXIT_FAIL = 1, MM_EXIT_USAGE = 2 };

/* Long options every tool takes (-o is per tool). */
#define MM_COMMON_LONGOPTS \
    {"threads", required_argument, NULL, '@'}, \
    {"verbose", no_argument, NULL, 'v'}, \
    {"quiet", no_argument, NULL, 'q'}, \
    {"help", no_argument, NULL, 'h'}, \
    {"version", no_argument, NULL, 'V'}

extern const char *mm_prog;   /* "mpk", or "mpk pack" inside a subcommand */
extern int mm_verbosity;      /* 0 quiet ... 2 default ... 4 debug */
extern int mm_threads;        /* -@ */
extern int mm_threads_given;  /* -@ was on the command line */

/* Run with OpenBLAS's kernels for this CPU. Debian 12's OpenBLAS 0.3.21
 * does not know recent Xeons (Sapphire and Emerald Rapids) and falls back to
 * its SSE3 "Prescott" kernels, 3-5x slower for sgemm. When it reports
 * Prescott on a CPU with AVX-512 (or AVX2 + FMA) and OPENBLAS_CORETYPE is
 * not set, set it to SkylakeX (or Haswell) and re-execute the program with
 * ARGV: OpenBLAS reads the variable once, when it is loaded. A user's
 * OPENBLAS_CORETYPE is always kept. Call first thing in main. */
void mm_blas_tune(char **argv);
void mm_tool_init(const char *prog);

/* "PROG: message" on stderr, then exit 1 (mm_die), 2 (mm_die_usage). */
MM_NORETURN void mm_die(const char *fmt, ...) MM_PRINTF(1, 2);
/* mm_die, after throwing away the stream being written at *OUT (NULL is
 * fine) and setting *OUT to NULL, so that no half-written output is left. */
MM_NORETURN void mm_die_discard(mm_stream **out, const char *fmt, ...) MM_PRINTF(2, 3);
MM_NORETURN void mm_die_usage(const char *fmt, ...) MM_PRINTF(1, 2);
/* mm_die with ": strerror(errno)" appended. */
MM_NORETURN void mm_die_errno(const char *fmt, ...) MM_PRINTF(1, 2);
/* "PROG: warning: message" unless -q. */
void mm_warn(const char *fmt, ...) MM_PRINTF(1, 2);
/* "PROG: message" when verbosity >= LEVEL. */
void mm_note(int level, const char *fmt, ...) MM_PRINTF(2, 3);

/* Whole-string numbers in [MIN, MAX]. @return 0, or -1. */
int mm_parse_int(const char *s, long long min, long long max, long long *out);
int mm_parse_double(const char *s, double min, double max, double *out);
/* The same for an option's argument; on failure exit 2 with
 * "PROG: OPT: expected an integer in [MIN, MAX], got 'S'". */
long long mm_opt_int(const char *opt, const char *s, long long min, long long max);
double mm_opt_double(const char *opt, const char *s, double min, double max);

/* Handle one of the common options (-@ -v -q); @return 1 if it was one. */
int mm_common_opt(int c, const char *arg);

void mm_print_version(const char *prog);

/* Exit 2 when PATH ("-" or NULL = stdout) is a terminal: a binary stream
 * is never written to one. */
void mm_refuse_tty(const char *path);

/* The options that change the output, for a header's "tool.argv": ARGV
 * without the common options (-@ -v -q) and -o/--output and their values.
 * OPTSTRING and LOPTS are those given to getopt_long. Returns a NULL-ended
 * array (free it with free()); *N gets its length. */
char **mm_argv_provenance(int argc, char **argv, const char *optstring,
                          const struct option *lopts, int *n);

/* A text output FILE * that writes PATH through mm_io (a temporary name,
 * renamed into place by mm_out_close with KEEP = 1; removed with KEEP = 0).
 * Exits 1 with a one-line error when PATH cannot be created. */
typedef struct mm_out mm_out;
mm_out *mm_out_open(const char *path);
FILE *mm_out_fp(mm_out *o);
/* @return 0, or -1 with the reason in mm_strerror() (the output is then
 * removed). Frees O. */
int mm_out_close(mm_out *o, int keep);

/* Check and close stdout; @return RET, or 1 when stdout failed. */
int mm_tool_exit(int ret);

/* Progress on stderr, only when stderr is a terminal and not -q; at most
 * a few updates a second. TOTAL 0 = unknown. */
typedef struct mm_progress mm_progress;
mm_progress *mm_progress_new(const char *what, uint64_t total);
void mm_progress_update(mm_progress *p, uint64_t done);
void mm_progress_end(mm_progress *p);

#endif
