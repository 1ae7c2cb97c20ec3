/* toolutil.c: shared CLI code (toolutil.h): messages, exit codes, strict
 * numbers, provenance argv, progress.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "toolutil.h"

const char *mm_prog = "mmpath";
int mm_verbosity = 2;
int mm_threads = 1;
int mm_threads_given;

void mm_tool_init(const char *prog) { mm_prog = prog; }

extern char *openblas_get_corename(void) __attribute__((weak));

void mm_blas_tune(char **argv)
{
    if (!openblas_get_corename || getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcmp(core, "Prescott")) return;
    __builtin_cpu_init();
    const char *fix =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
            ? "SkylakeX"
        : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "Haswell"
                                                                         : NULL;
    if (!fix) return;
    setenv("OPENBLAS_CORETYPE", fix, 1);
    execv("/proc/self/exe", argv);
    /* no /proc: go on with the slow kernels, and say so */
    unsetenv("OPENBLAS_CORETYPE");
    fprintf(stderr, "%s: warning: OpenBLAS runs its generic Prescott kernels on "
            "this CPU; OPENBLAS_CORETYPE=%s makes it several times faster\n",
            mm_prog ? mm_prog : argv[0], fix);
}

static void vmsg(const char *what, const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s: %s", mm_prog, what);
    vfprintf(stderr, fmt, ap);
}

void mm_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(MM_EXIT_FAIL);
}

void mm_die_discard(mm_stream **out, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (*out) mm_stream_discard(*out);
    *out = NULL;
    mm_die("%s", buf);
}

void mm_die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(MM_EXIT_USAGE);
}

void mm_die_errno(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", strerror(e));
    exit(MM_EXIT_FAIL);
}

void mm_warn(const char *fmt, ...)
{
    if (mm_verbosity < 1) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void mm_note(int level, const char *fmt, ...)
{
    if (mm_verbosity < level) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int mm_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    if (!s || !*s || *s == ' ') return -1;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end || errno == ERANGE || x < min || x > max) return -1;
    *out = x;
    return 0;
}

int mm_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    if (!s || !*s || *s == ' ') return -1;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(x) || x < min || x > max) return -1;
    *out = x;
    return 0;
}

long long mm_opt_int(const char *opt, const char *s, long long min, long long max)
{
    long long x;
    if (mm_parse_int(s, min, max, &x) != 0)
        mm_die_usage("%s: expected an integer in [%lld, %lld], got '%s'", opt, min, max, s);
    return x;
}

double mm_opt_double(const char *opt, const char *s, double min, double max)
{
    double x;
    if (mm_parse_double(s, min, max, &x) != 0)
        mm_die_usage("%s: expected a number in [%g, %g], got '%s'", opt, min, max, s);
    return x;
}

int mm_common_opt(int c, const char *arg)
{
    switch (c) {
    case '@':
        mm_threads = (int)mm_opt_int("--threads", arg, 1, 1024);
        mm_threads_given = 1;
        return 1;
    case 'v': if (mm_verbosity < 4) mm_verbosity++; return 1;
    case 'q': mm_verbosity = 0; return 1;
    default: return 0;
    }
}

void mm_print_version(const char *prog)
{
    /* no call into the backend: a tool that needs no GPU links none of it */
#ifdef MM_HAVE_CUDA
    const char *cuda = "built";
#else
    const char *cuda = "not built";
#endif
    printf("%s (mmpath) %s\n", prog, mm_version());
    printf("zstd %s; CUDA backend %s\n", ZSTD_versionString(), cuda);
}

void mm_refuse_tty(const char *path)
{
    if ((!path || strcmp(path, "-") == 0) && isatty(STDOUT_FILENO))
        mm_die_usage("refusing to write a binary stream to a terminal "
                     "(redirect it or use -o FILE)");
}

static const struct option *find_long(const struct option *lopts, const char *name,
                                      size_t n)
{
    for (; lopts && lopts->name; lopts++)
        if (strlen(lopts->name) == n && strncmp(lopts->name, name, n) == 0)
            return lopts;
    return NULL;
}

static int dropped(int c) { return c == '@' || c == 'v' || c == 'q' || c == 'o'; }

char **mm_argv_provenance(int argc, char **argv, const char *optstring,
                          const struct option *lopts, int *n)
{
    char **out = mm_calloc((size_t)argc + 1, sizeof(char *));
    int k = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i == 0 || a[0] != '-' || a[1] == 0) {
            out[k++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            while (i < argc) out[k++] = argv[i++];
            break;
        }
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            const struct option *o = find_long(lopts, a + 2, len);
            int takes = o && o->has_arg == required_argument && !eq;
            if (o && o->flag == NULL && dropped(o->val)) {
                if (takes) i++;
                continue;
            }
            out[k++] = argv[i];
            if (takes && i + 1 < argc) out[k++] = argv[++i];
            continue;
        }
        /* short options: -@4, -@ 4, -o out, -vq */
        const char *p = strchr(optstring, a[1]);
        if (p && p[1] == ':') {
            int drop = dropped(a[1]);
            if (!drop) out[k++] = argv[i];
            if (a[2] == 0 && i + 1 < argc && (i++, !drop)) out[k++] = argv[i];
            continue;
        }
        int vq = 1;
        for (const char *q = a + 1; *q; q++)
            if (*q != 'v' && *q != 'q') vq = 0;
        if (!vq) out[k++] = argv[i];
    }
    out[k] = NULL;
    *n = k;
    return out;
}

struct mm_out {
    FILE *fp;
    mm_io *io;
    int failed;
};

static ssize_t out_write(void *cookie, const char *buf, size_t n)
{
    mm_out *o = cookie;
    if (mm_io_write(o->io, buf, n) != 0) {
        o->failed = 1;
        return -1;
    }
    return (ssize_t)n;
}

mm_out *mm_out_open(const char *path)
{
    mm_out *o = mm_calloc(1, sizeof *o);
    if (!(o->io = mm_io_open(path, "w"))) mm_die("%s", mm_strerror());
    o->fp = fopencookie(o, "w", (cookie_io_functions_t){.write = out_write});
    MM_ASSERT(o->fp);
    return o;
}

FILE *mm_out_fp(mm_out *o) { return o->fp; }

int mm_out_close(mm_out *o, int keep)
{
    int ret = fclose(o->fp) != 0 || o->failed ? -1 : 0;
    if (ret != 0 && !mm_io_error(o->io)[0]) mm__set_error("%s: write error", mm_io_name(o->io));
    else if (ret != 0) mm__set_error("%s", mm_io_error(o->io));
    if (ret == 0 && keep) ret = mm_io_close(o->io);
    else mm_io_discard(o->io);
    free(o);
    return ret;
}

int mm_tool_exit(int ret)
{
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        if (errno == EPIPE) return ret;
        fprintf(stderr, "%s: error writing to standard output: %s\n", mm_prog,
                strerror(errno));
        return MM_EXIT_FAIL;
    }
    return ret;
}

struct mm_progress {
    const char *what;
    uint64_t total;
    double last, start;
    int on;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

mm_progress *mm_progress_new(const char *what, uint64_t total)
{
    mm_progress *p = mm_calloc(1, sizeof *p);
    p->what = what;
    p->total = total;
    p->on = mm_verbosity >= 1 && isatty(STDERR_FILENO);
    p->start = p->last = now();
    return p;
}

void mm_progress_update(mm_progress *p, uint64_t done)
{
    if (!p || !p->on) return;
    double t = now();
    if (t - p->last < 0.25) return;
    p->last = t;
    if (p->total)
        fprintf(stderr, "\r%s: %s %llu/%llu (%.0f%%)  ", mm_prog, p->what,
                (unsigned long long)done, (unsigned long long)p->total,
                100.0 * (double)done / (double)p->total);
    else
        fprintf(stderr, "\r%s: %s %llu  ", mm_prog, p->what, (unsigned long long)done);
}

void mm_progress_end(mm_progress *p)
{
    if (!p) return;
    if (p->on && p->last > p->start) fputs("\r\033[K", stderr);
    free(p);
}
