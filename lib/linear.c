/* linear.c: L2-regularised linear SVM (squared hinge) and logistic
 * regression with the problem definitions liblinear has as scikit-learn
 * calls it (regularised intercept, one-vs-rest), solved to the optimum, and
 * RFE / RFECV with scikit-learn's elimination and CV rules. Not a port of
 * liblinear: dense double data only; no class or sample weights, no L1, no
 * regression, no Crammer-Singer. The lib/mm/linear.h comment is the contract.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mm/linear.h"

/* What is solved, per weight vector (labels s_i = +1/-1; the intercept is
 * feature m with value intercept_scaling = 1, regularised like the rest):
 *   P(w) = 0.5 |w|^2 + C sum_i l(s_i f_i),  f_i = w . (x_i, 1)
 *   svm:    l(t) = max(0, 1 - t)^2          (liblinear solvers 1 and 2)
 *   logreg: l(t) = log(1 + exp(-t))         (liblinear solvers 0 and 7)
 * P is strongly convex, so the optimum is unique and any solver run to
 * convergence gives liblinear's answer up to liblinear's own tolerance
 * (scikit-learn's tol = 1e-4 on a projected-gradient gap). We do not
 * reproduce liblinear's iterates (its random coordinate order comes from
 * its own rand() seeded by random_state); we converge much further.
 * At the optimum w = sum_i beta_i (x_i, 1) with beta_i = -C s_i l'(s_i f_i)
 * (for the SVM beta_i = s_i alpha_i, alpha the liblinear dual variables).
 * Three solvers, all exact at convergence, warm-started between RFE rounds
 * (beta or w of the previous round, restricted to the kept features):
 *   - n <= GRAM_MAX_N and n <= m (more features than samples, as in
 *     expression data): Newton's method on beta with the Gram matrix
 *     K = Z Z' + 1 (the generalised Hessian for the squared hinge: the
 *     finite Newton method of Keerthi & DeCoste 2005), a Cholesky factor
 *     of I + C S K S per step, Armijo backtracking; in RFE, K is downdated
 *     as features go (or rebuilt from the kept ones when that is less
 *     work) and kept once m < n, so a round costs O(n^2) per dropped
 *     feature;
 *   - the SVM with n <= m beyond that: liblinear's dual coordinate descent
 *     with shrinking and a random order per pass, stopping when the
 *     projected gradient gap max PG - min PG <= tol (liblinear's rule);
 *   - otherwise (n > m, both losses): primal Newton with preconditioned
 *     conjugate gradients (TRON's model without its trust region), one
 *     pass over the data per Hessian product; scikit-learn's dual="auto"
 *     also goes primal when n > m, where dual CD crawls.
 * Newton stops when |grad P(w)| <= tol |grad P(0)|. The default tol is
 * 1e-8, not liblinear's 0.1 or scikit-learn's 1e-4: selections then do
 * not hinge on where a loose solver happened to stop (scikit-learn's own
 * RFE on the 12625 ALL probes changes with random_state at tol 1e-4). */

/* Gram mode when n is at most this (and at most the feature count). */
#define GRAM_MAX_N 512

/* Tests set this to force a solver: 1 Gram Newton, 2 the w-space ones. */
static int lin_force_mode;

typedef struct {
    int est;
    double C, tol;
    int max_iter;
} lcfg;

static void set_cfg(lcfg *c, const mm_linear_opts *o)
{
    c->est = o->estimator;
    c->C = o->C;
    c->tol = o->tol;
    c->max_iter = o->max_iter;
}

static int nthreads(int want)
{
#ifdef _OPENMP
    return want > 0 ? want : omp_get_max_threads();
#else
    (void)want;
    return 1;
#endif
}

// ---------------------------------------------------------------- kernels

/* "omp simd" lets the compiler reorder these sums; clang at -O1 (the ASan
 * build) does not vectorise and would warn about each loop. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* The Gram kernel is compute-bound: on x86-64 with GCC and glibc's ifunc
 * it is also built for x86-64-v3 (AVX2, FMA), picked at load time. FMA
 * rounds differently, so the last bits of K differ between machines. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LIN_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LIN_CLONES
#endif

static inline double dotp(const double *a, const double *b, size_t m)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < m; j++)
        s += a[j] * b[j];
    return s;
}

static inline void axpy(double a, const double *x, double *y, size_t m)
{
#pragma omp simd
    for (size_t j = 0; j < m; j++)
        y[j] += a * x[j];
}

/* The loss l(t), t = s f, and its first two derivatives. */
static inline double loss(int est, double t)
{
    if (est == MM_EST_SVM)
        return t < 1 ? (1 - t) * (1 - t) : 0;
    return t > 0 ? log1p(exp(-t)) : -t + log1p(exp(t));
}

static inline double dloss(int est, double t)
{
    if (est == MM_EST_SVM)
        return t < 1 ? -2 * (1 - t) : 0;
    return -1 / (1 + exp(t));
}

static inline double d2loss(int est, double t)
{
    if (est == MM_EST_SVM)
        return t < 1 ? 2 : 0;
    double e = exp(-fabs(t));
    return e / ((1 + e) * (1 + e));
}

/* splitmix64: the coordinate order of dual CD (deterministic per problem). */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* S[a][b] = z_(i+a) . z_(j+b) over LEN values, for a 4 x 4 block of rows:
 * 8 loads feed 16 multiply-adds, where one dot product at a time does 2
 * loads per multiply-add. */
LIN_CLONES static void dot4x4(const double *z, size_t ld, size_t i, size_t j, size_t len,
                             double S[4][4])
{
    const double *a0 = z + i * ld, *a1 = a0 + ld, *a2 = a1 + ld, *a3 = a2 + ld;
    const double *b0 = z + j * ld, *b1 = b0 + ld, *b2 = b1 + ld, *b3 = b2 + ld;
    double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, \
                               s30, s31, s32, s33)
    for (size_t k = 0; k < len; k++) {
        double x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
        double y0 = b0[k], y1 = b1[k], y2 = b2[k], y3 = b3[k];
        s00 += x0 * y0, s01 += x0 * y1, s02 += x0 * y2, s03 += x0 * y3;
        s10 += x1 * y0, s11 += x1 * y1, s12 += x1 * y2, s13 += x1 * y3;
        s20 += x2 * y0, s21 += x2 * y1, s22 += x2 * y2, s23 += x2 * y3;
        s30 += x3 * y0, s31 += x3 * y1, s32 += x3 * y2, s33 += x3 * y3;
    }
    S[0][0] = s00, S[0][1] = s01, S[0][2] = s02, S[0][3] = s03;
    S[1][0] = s10, S[1][1] = s11, S[1][2] = s12, S[1][3] = s13;
    S[2][0] = s20, S[2][1] = s21, S[2][2] = s22, S[2][3] = s23;
    S[3][0] = s30, S[3][1] = s31, S[3][2] = s32, S[3][3] = s33;
}

/* K (n x n, full) += sign * Z Z' over the LEN columns of Z (n rows, row
 * stride LD): 4 x 4 blocks of the lower triangle, over column blocks that
 * stay in cache, then mirrored. */
static void gram_accum(const double *z, size_t n, size_t ld, size_t len, double sign,
                       double *K, int th)
{
    const size_t blk = 512;
    const size_t nb = (n + 3) / 4;
    for (size_t j0 = 0; j0 < len; j0 += blk) {
        size_t bl = len - j0 < blk ? len - j0 : blk;
#pragma omp parallel for num_threads(th) schedule(dynamic, 1) if (th > 1 && n * n * bl > 400000)
        for (size_t I = 0; I < nb; I++) {
            size_t i = 4 * I;
            for (size_t j = 0; j <= i; j += 4) {
                if (i + 4 <= n) {
                    double S[4][4];
                    dot4x4(z + j0, ld, i, j, bl, S);
                    for (size_t a = 0; a < 4; a++)
                        for (size_t b = 0; b < 4 && j + b <= i + a; b++)
                            K[(i + a) * n + j + b] += sign * S[a][b];
                } else {
                    for (size_t a = i; a < n; a++)
                        for (size_t b = j; b < j + 4 && b <= a; b++)
                            K[a * n + b] += sign * dotp(z + a * ld + j0, z + b * ld + j0, bl);
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            K[j * n + i] = K[i * n + j];
}

/* In-place lower Cholesky of the N x N row-major A. @return 0, -1 if not
 * numerically positive definite. */
static int chol(double *A, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        double *aj = A + j * n;
        double d = aj[j] - dotp(aj, aj, j);
        if (!(d > 0))
            return -1;
        d = sqrt(d);
        aj[j] = d;
        for (size_t i = j + 1; i < n; i++) {
            double *ai = A + i * n;
            ai[j] = (ai[j] - dotp(ai, aj, j)) / d;
        }
    }
    return 0;
}

/* Solve L L' u = v (u may be v). */
static void chol_solve(const double *L, size_t n, double *u)
{
    for (size_t i = 0; i < n; i++)
        u[i] = (u[i] - dotp(L + i * n, u, i)) / L[i * n + i];
    for (size_t i = n; i-- > 0;) {
        double s = u[i];
        for (size_t k = i + 1; k < n; k++)
            s -= L[k * n + i] * u[k];
        u[i] = s / L[i * n + i];
    }
}

static void symv(const double *K, size_t n, const double *v, double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = dotp(K + i * n, v, n);
}

// ---------------------------------------------------------------- solvers

/* Gram mode: minimise P over beta (w = Z~' beta) by Newton's method.
 * K: n x n (incl. the intercept's 1); BETA in/out; F gets K beta.
 * @return 1 when converged, 0 when out of iterations or stuck at rounding
 * level before the tolerance. */
static int solve_gram(const double *K, size_t n, const signed char *s, const lcfg *c,
                      double *beta, double *f, int *iters)
{
    double *a = mm_malloc(8 * n * sizeof *a);
    double *r = a + n, *Kr = r + n, *S = Kr + n, *u = S + n, *d = u + n;
    double *Kd = d + n, *ft = Kd + n;
    size_t *idx = mm_malloc(n * sizeof *idx);
    double *B = NULL;
    size_t bcap = 0;
    const double C = c->C;
    int conv = 0, it;

    /* |grad P(0)|^2 = C^2 a0' K a0, a0_i = s_i l'(0) */
    for (size_t i = 0; i < n; i++)
        a[i] = s[i] * dloss(c->est, 0);
    symv(K, n, a, Kr);
    double g0 = C * C * dotp(a, Kr, n);
    symv(K, n, beta, f);
    for (it = 0; it < c->max_iter; it++) {
        for (size_t i = 0; i < n; i++) {
            a[i] = s[i] * dloss(c->est, s[i] * f[i]);
            r[i] = beta[i] + C * a[i];
        }
        symv(K, n, r, Kr);
        double gn = dotp(r, Kr, n); /* |grad_w P|^2 */
        if (!(gn > c->tol * c->tol * g0)) {
            conv = 1;
            break;
        }
        /* Newton step: (I + C D K) delta = -r, by B = I + C S K S */
        size_t na = 0;
        for (size_t i = 0; i < n; i++) {
            double dd = d2loss(c->est, s[i] * f[i]);
            S[i] = sqrt(dd);
            if (dd > 0)
                idx[na++] = i;
        }
        if (na * na > bcap) {
            free(B);
            bcap = na * na;
            B = mm_malloc(bcap * sizeof *B);
        }
        for (size_t p = 0; p < na; p++) {
            size_t ip = idx[p];
            for (size_t q = 0; q <= p; q++)
                B[p * na + q] = C * S[ip] * S[idx[q]] * K[ip * n + idx[q]] + (p == q);
            u[p] = S[ip] * Kr[ip];
        }
        if (chol(B, na) != 0)
            break;
        chol_solve(B, na, u);
        for (size_t i = 0; i < n; i++)
            d[i] = -r[i];
        for (size_t p = 0; p < na; p++)
            d[idx[p]] += C * S[idx[p]] * u[p];
        symv(K, n, d, Kd);
        double slope = dotp(Kd, r, n);
        if (!(slope < 0))
            break;
        double p0 = 0.5 * dotp(beta, f, n);
        for (size_t i = 0; i < n; i++)
            p0 += C * loss(c->est, s[i] * f[i]);
        double t = 1;
        int accepted = 0;
        for (int ls = 0; ls < 60; ls++, t *= 0.5) {
            double pt = 0, bt = 0;
            for (size_t i = 0; i < n; i++) {
                ft[i] = f[i] + t * Kd[i];
                bt += (beta[i] + t * d[i]) * ft[i];
                pt += loss(c->est, s[i] * ft[i]);
            }
            pt = 0.5 * bt + C * pt;
            if (pt <= p0 + 1e-4 * t * slope ||
                (t == 1 && pt <= p0 + 8 * DBL_EPSILON * fabs(p0))) {
                accepted = 1;
                break;
            }
        }
        if (!accepted)
            break;
        axpy(t, d, beta, n);
        symv(K, n, beta, f);
    }
    *iters = it;
    free(B);
    free(idx);
    free(a);
    return conv;
}

/* w-mode SVM: liblinear's dual coordinate descent for the squared hinge
 * (solve_l2r_l1l2_svc with D_ii = 1/(2C), no upper bound), with shrinking.
 * Z: n x m; SQ_i = |z_i|^2 + 1; ALPHA in/out (>= 0); W gets m + 1 values. */
static int solve_dual_cd(const double *z, size_t n, size_t m, const double *sq,
                         const signed char *s, const lcfg *c, double *alpha, double *w,
                         uint64_t seed, int *iters)
{
    const double diag = 0.5 / c->C;
    size_t *index = mm_malloc(n * sizeof *index);
    double *QD = mm_malloc(n * sizeof *QD);
    size_t active = n;
    double pgmax_old = INFINITY; /* no upper bound: no PGmin_old */
    int conv = 0, it = 0;

    memset(w, 0, (m + 1) * sizeof *w);
    for (size_t i = 0; i < n; i++) {
        index[i] = i;
        QD[i] = sq[i] + diag;
        if (alpha[i] != 0) {
            axpy(s[i] * alpha[i], z + i * m, w, m);
            w[m] += s[i] * alpha[i];
        }
    }
    while (it < c->max_iter) {
        double pgmax = -INFINITY, pgmin = INFINITY;
        for (size_t k = 0; k + 1 < active; k++) {
            size_t j = k + rng_next(&seed) % (active - k);
            size_t tmp = index[k];
            index[k] = index[j];
            index[j] = tmp;
        }
        for (size_t k = 0; k < active; k++) {
            size_t i = index[k];
            const double *zi = z + i * m;
            double G = s[i] * (dotp(zi, w, m) + w[m]) - 1 + diag * alpha[i];
            double PG = 0;
            if (alpha[i] == 0) {
                if (G > pgmax_old) {
                    active--;
                    index[k] = index[active];
                    index[active] = i;
                    k--;
                    continue;
                }
                if (G < 0)
                    PG = G;
            } else {
                PG = G;
            }
            if (PG > pgmax)
                pgmax = PG;
            if (PG < pgmin)
                pgmin = PG;
            if (fabs(PG) > 1e-12) {
                double old = alpha[i];
                alpha[i] = fmax(old - G / QD[i], 0);
                double dd = (alpha[i] - old) * s[i];
                axpy(dd, zi, w, m);
                w[m] += dd;
            }
        }
        it++;
        if (active == 0)
            pgmax = pgmin = 0;
        if (pgmax - pgmin <= c->tol) {
            if (active == n) {
                conv = 1;
                break;
            }
            active = n;
            pgmax_old = INFINITY;
            continue;
        }
        pgmax_old = pgmax <= 0 ? INFINITY : pgmax;
    }
    /* w again from alpha, without the drift of many small updates */
    memset(w, 0, (m + 1) * sizeof *w);
    for (size_t i = 0; i < n; i++)
        if (alpha[i] != 0) {
            axpy(s[i] * alpha[i], z + i * m, w, m);
            w[m] += s[i] * alpha[i];
        }
    *iters = it;
    free(QD);
    free(index);
    return conv;
}

/* f = Z~ v (n values): Z v + v[m] */
static void zmul(const double *z, size_t n, size_t m, const double *v, double *f, int th)
{
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1 && n * m > 200000)
    for (size_t i = 0; i < n; i++)
        f[i] = dotp(z + i * m, v, m) + v[m];
}

/* out = Z~' u (m + 1 values), by column blocks per thread */
static void ztmul(const double *z, size_t n, size_t m, const double *u, double *out, int th)
{
    size_t nb = th > 1 && n * m > 200000 ? (size_t)th : 1;
#pragma omp parallel for num_threads(th) schedule(static) if (nb > 1)
    for (size_t b = 0; b < nb; b++) {
        size_t j0 = m * b / nb, j1 = m * (b + 1) / nb;
        memset(out + j0, 0, (j1 - j0) * sizeof *out);
        for (size_t i = 0; i < n; i++)
            if (u[i] != 0)
                axpy(u[i], z + i * m + j0, out + j0, j1 - j0);
    }
    double sb = 0;
    for (size_t i = 0; i < n; i++)
        sb += u[i];
    out[m] = sb;
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The passes over Z of the primal solver are memory-bound when Z is large
 * (20,000 x 1,000 doubles is 160 MB), so each does all it can with a row
 * while the row is in cache. Threads take rows (static schedule) and sum
 * into their own accumulators, added up in thread order. */
static int pass_threads(size_t n, size_t m, int th)
{
    return th > 1 && n * m > 200000 ? (th < 256 ? th : 256) : 1;
}

/* One pass at W: F = Z~ w, the losses (returned, times C), G = w + C Z~' a
 * and M = diag(I + C Z~' D Z~) (the preconditioner), with
 * a_i = s_i l'(s_i f_i), D_i = l''(s_i f_i) kept in DD (times C). ACC
 * holds 2 (m + 1) doubles per thread. */
static double primal_pass(const double *z, size_t n, size_t m, const signed char *s,
                          const lcfg *c, const double *w, double *f, double *DD, double *g,
                          double *M, double *acc, int th)
{
    const size_t mm = m + 1;
    const double C = c->C;
    int nt = pass_threads(n, m, th);
    double lsum[256] = {0}; /* per thread, added in order: deterministic */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = thread_id();
        double *ga = acc + (size_t)tid * 2 * mm, *ma = ga + mm, ls = 0;
        memset(ga, 0, 2 * mm * sizeof *ga);
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            const double *zi = z + i * m;
            double fi = dotp(zi, w, m) + w[m], t = s[i] * fi;
            double ai = C * s[i] * dloss(c->est, t), di = C * d2loss(c->est, t);
            f[i] = fi;
            DD[i] = di;
            ls += loss(c->est, t);
            if (ai != 0)
                axpy(ai, zi, ga, m);
            ga[m] += ai;
            if (di != 0) {
#pragma omp simd
                for (size_t j = 0; j < m; j++)
                    ma[j] += di * zi[j] * zi[j];
                ma[m] += di;
            }
        }
        lsum[tid] = ls;
    }
    double total = 0;
    for (size_t j = 0; j < mm; j++) {
        g[j] = w[j];
        M[j] = 1;
    }
    for (int t = 0; t < nt; t++) {
        const double *ga = acc + (size_t)t * 2 * mm, *ma = ga + mm;
        for (size_t j = 0; j < mm; j++) {
            g[j] += ga[j];
            M[j] += ma[j];
        }
        total += lsum[t];
    }
    return C * total;
}

/* HP = p + Z~' (DD o Z~ p), one pass (rows with DD_i = 0 skipped). */
static void hess_vec(const double *z, size_t n, size_t m, const double *DD, const double *p,
                     double *hp, double *acc, int th)
{
    const size_t mm = m + 1;
    int nt = pass_threads(n, m, th);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        double *ha = acc + (size_t)thread_id() * mm;
        memset(ha, 0, mm * sizeof *ha);
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            if (DD[i] == 0)
                continue;
            const double *zi = z + i * m;
            double v = DD[i] * (dotp(zi, p, m) + p[m]);
            axpy(v, zi, ha, m);
            ha[m] += v;
        }
    }
    memcpy(hp, p, mm * sizeof *hp);
    for (int t = 0; t < nt; t++)
        axpy(1, acc + (size_t)t * mm, hp, mm);
}

/* w-mode primal Newton-CG (TRON's model and preconditioner, Armijo
 * backtracking instead of a trust region). W in/out (m + 1). */
static int solve_primal(const double *z, size_t n, size_t m, const signed char *s,
                        const lcfg *c, double *w, int th, int *iters)
{
    const size_t mm = m + 1;
    int nt = pass_threads(n, m, th);
    double *f = mm_malloc((3 * n + 6 * mm + 2 * (size_t)nt * mm) * sizeof *f);
    double *DD = f + n, *zd = DD + n;
    double *g = zd + n, *M = g + mm, *d = M + mm, *r = d + mm, *p = r + mm, *Hp = p + mm;
    double *acc = Hp + mm;
    int conv = 0, it;

    /* |grad P(0)|: at w = 0 every f_i is 0 */
    double *w0 = mm_calloc(mm, sizeof *w0);
    primal_pass(z, n, m, s, c, w0, f, DD, g, M, acc, th);
    free(w0);
    double g0 = sqrt(dotp(g, g, mm));
    for (it = 0; it < c->max_iter; it++) {
        double ploss = primal_pass(z, n, m, s, c, w, f, DD, g, M, acc, th);
        double gn = sqrt(dotp(g, g, mm));
        if (!(gn > c->tol * g0)) {
            conv = 1;
            break;
        }
        /* PCG on H d = -g, to |res| <= eta |g| (eta -> 0: superlinear) */
        double eta = fmin(0.5, sqrt(gn / g0)) * gn;
        memset(d, 0, mm * sizeof *d);
        double rz = 0;
        for (size_t j = 0; j < mm; j++) {
            r[j] = -g[j];
            p[j] = r[j] / M[j];
            rz += r[j] * p[j];
        }
        for (size_t cg = 0; cg < 4 * mm + 10; cg++) {
            hess_vec(z, n, m, DD, p, Hp, acc, th);
            double pHp = dotp(p, Hp, mm);
            if (!(pHp > 0))
                break;
            double al = rz / pHp;
            axpy(al, p, d, mm);
            axpy(-al, Hp, r, mm);
            if (sqrt(dotp(r, r, mm)) <= eta)
                break;
            double rz2 = 0;
            for (size_t j = 0; j < mm; j++)
                rz2 += r[j] * r[j] / M[j];
            double bt = rz2 / rz;
            rz = rz2;
            for (size_t j = 0; j < mm; j++)
                p[j] = r[j] / M[j] + bt * p[j];
        }
        double slope = dotp(g, d, mm);
        if (!(slope < 0))
            break;
        zmul(z, n, m, d, zd, nt);
        double ww = dotp(w, w, mm), wd = dotp(w, d, mm), dd = dotp(d, d, mm);
        double p0 = 0.5 * ww + ploss;
        double t = 1;
        int accepted = 0;
        for (int ls = 0; ls < 60; ls++, t *= 0.5) {
            double pt = 0;
            for (size_t i = 0; i < n; i++)
                pt += loss(c->est, s[i] * (f[i] + t * zd[i]));
            pt = 0.5 * (ww + 2 * t * wd + t * t * dd) + c->C * pt;
            if (pt <= p0 + 1e-4 * t * slope ||
                (t == 1 && pt <= p0 + 8 * DBL_EPSILON * fabs(p0))) {
                accepted = 1;
                break;
            }
        }
        if (!accepted)
            break;
        axpy(t, d, w, mm);
    }
    *iters = it;
    free(f);
    return conv;
}

// ---------------------------------------------------------------- fit state

/* One fit's data and the state kept between RFE rounds. */
typedef struct {
    size_t n, m;    /* samples, kept features */
    const int *y;   /* n labels in [0, nc) */
    int nc, nw;     /* classes; weight vectors (1 when nc = 2) */
    double *z;      /* n x m: the kept columns, sample-major */
    double *K;      /* n x n: z z' + 1 (Gram mode), or NULL */
    double *sq;     /* n: |z_i|^2 + 1 (dual CD), or NULL */
    double *beta;   /* nw x n: w = z~' beta (the warm start) */
    double *w;      /* nw x (m + 1): coefficients, intercept last */
    int warm;       /* beta holds a previous solution */
    int th;
    int iters, converged;
} lwork;

static void lwork_free(lwork *W)
{
    free(W->z);
    free(W->K);
    free(W->sq);
    free(W->beta);
    free(W->w);
    memset(W, 0, sizeof *W);
}

/* Z from rows ROWS (NULL = 0..n-1) and columns COLS (NULL = 0..m-1) of X. */
static void lwork_init(lwork *W, const double *x, size_t nf, const size_t *rows, size_t n,
                       const size_t *cols, size_t m, const int *y, int nc, int th)
{
    memset(W, 0, sizeof *W);
    W->n = n;
    W->m = m;
    W->y = y;
    W->nc = nc;
    W->nw = nc == 2 ? 1 : nc;
    W->th = th;
    W->z = mm_malloc(n * m * sizeof *W->z);
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + (rows ? rows[i] : i) * nf;
        double *zi = W->z + i * m;
        if (cols)
            for (size_t j = 0; j < m; j++)
                zi[j] = xi[cols[j]];
        else
            memcpy(zi, xi, m * sizeof *zi);
    }
    W->beta = mm_calloc((size_t)W->nw * n, sizeof *W->beta);
    W->w = mm_calloc((size_t)W->nw * (m + 1), sizeof *W->w);
}

static int use_gram(const lwork *W)
{
    if (lin_force_mode)
        return lin_force_mode == 1;
    return W->n <= GRAM_MAX_N && (W->n <= W->m || W->K != NULL);
}

static void signs(const lwork *W, int k, signed char *s)
{
    int pos = W->nw == 1 ? 1 : k;
    for (size_t i = 0; i < W->n; i++)
        s[i] = W->y[i] == pos ? 1 : -1;
}

/* beta from w by the optimality condition beta_i = -C s_i l'(s_i f_i) */
static void beta_from_w(const lwork *W, const lcfg *c, const signed char *s,
                        const double *w, double *beta)
{
    for (size_t i = 0; i < W->n; i++) {
        double f = dotp(W->z + i * W->m, w, W->m) + w[W->m];
        beta[i] = -c->C * s[i] * dloss(c->est, s[i] * f);
    }
}

/* Fit all weight vectors, warm from W->beta / W->w when W->warm. */
static void lwork_fit(lwork *W, const lcfg *c)
{
    const size_t n = W->n, m = W->m;
    int gram = use_gram(W);
    if (gram && !W->K) {
        W->K = mm_malloc(n * n * sizeof *W->K);
        for (size_t i = 0; i < n * n; i++)
            W->K[i] = 1;
        gram_accum(W->z, n, m, m, 1, W->K, W->th);
    } else if (!gram && W->K) {
        free(W->K);
        W->K = NULL;
    }
    int dualcd = !gram && c->est == MM_EST_SVM && n <= m;
    if (dualcd) {
        if (!W->sq)
            W->sq = mm_malloc(n * sizeof *W->sq);
        for (size_t i = 0; i < n; i++)
            W->sq[i] = dotp(W->z + i * m, W->z + i * m, m) + 1;
    }
    int maxit = 0, conv = 1;
    int th = W->th, inner = W->nw > 1 ? 1 : th;
#pragma omp parallel for num_threads(th) schedule(dynamic, 1) if (W->nw > 1 && th > 1) \
    reduction(max : maxit) reduction(&& : conv)
    for (int k = 0; k < W->nw; k++) {
        signed char *s = mm_malloc(n);
        double *beta = W->beta + (size_t)k * n, *w = W->w + (size_t)k * (m + 1);
        int it = 0, ok;
        signs(W, k, s);
        if (gram) {
            double *f = mm_malloc(n * sizeof *f);
            ok = solve_gram(W->K, n, s, c, beta, f, &it);
            free(f);
            ztmul(W->z, n, m, beta, w, inner);
        } else if (dualcd) {
            for (size_t i = 0; i < n; i++)
                beta[i] = fmax(s[i] * beta[i], 0); /* alpha */
            ok = solve_dual_cd(W->z, n, m, W->sq, s, c, beta, w,
                               0x5eed0000ULL + (uint64_t)k, &it);
            for (size_t i = 0; i < n; i++)
                beta[i] *= s[i];
        } else {
            ok = solve_primal(W->z, n, m, s, c, w, inner, &it);
            beta_from_w(W, c, s, w, beta);
        }
        free(s);
        if (it > maxit)
            maxit = it;
        conv = conv && ok;
    }
    W->warm = 1;
    W->iters = maxit;
    W->converged = conv;
}

/* Keep the columns of W whose KEEP flag is set (m -> the count kept):
 * z and w compacted in place, K downdated by the dropped columns or
 * recomputed from the kept ones, whichever is less work. */
static void lwork_keep(lwork *W, const unsigned char *keep)
{
    const size_t n = W->n, m = W->m;
    size_t mk = 0;
    for (size_t j = 0; j < m; j++)
        mk += keep[j] != 0;
    size_t md = m - mk;
    int rebuild = 0;
    if (W->K) {
        if (md < mk) {
            double *zd = mm_malloc(n * md * sizeof *zd);
            size_t *drop = mm_malloc(md * sizeof *drop);
            for (size_t j = 0, o = 0; j < m; j++)
                if (!keep[j])
                    drop[o++] = j;
            for (size_t i = 0; i < n; i++) {
                const double *zi = W->z + i * m;
                double *o = zd + i * md;
                for (size_t t = 0; t < md; t++)
                    o[t] = zi[drop[t]];
            }
            free(drop);
            gram_accum(zd, n, md, md, -1, W->K, W->th);
            free(zd);
        } else {
            rebuild = 1; /* from the kept columns, below */
        }
    }
    size_t *kept = mm_malloc((mk ? mk : 1) * sizeof *kept);
    for (size_t j = 0, o = 0; j < m; j++)
        if (keep[j])
            kept[o++] = j;
    for (size_t i = 0; i < n; i++) { /* forward in place: dst <= src */
        const double *src = W->z + i * m;
        double *dst = W->z + i * mk;
        for (size_t o = 0; o < mk; o++)
            dst[o] = src[kept[o]];
    }
    free(kept);
    for (int k = 0; k < W->nw; k++) {
        const double *src = W->w + (size_t)k * (m + 1);
        double *dst = W->w + (size_t)k * (mk + 1);
        size_t o = 0;
        for (size_t j = 0; j < m; j++)
            if (keep[j])
                dst[o++] = src[j];
        dst[o] = src[m];
    }
    W->m = mk;
    if (rebuild) {
        for (size_t i = 0; i < n * n; i++)
            W->K[i] = 1;
        gram_accum(W->z, n, mk, mk, 1, W->K, W->th);
    }
}

/* Decision values of one sample row XI (through COLS) for weight vector W. */
static double decision(const double *w, size_t m, const double *xi, const size_t *cols)
{
    double s = w[m];
    if (cols)
        for (size_t j = 0; j < m; j++)
            s += w[j] * xi[cols[j]];
    else
        s += dotp(w, xi, m);
    return s;
}

/* Class (0..nc-1) of XI: decision > 0 for binary, else the first argmax. */
static int classify(const double *W, int nw, size_t m, const double *xi, const size_t *cols)
{
    if (nw == 1)
        return decision(W, m, xi, cols) > 0;
    int best = 0;
    double bv = -INFINITY;
    for (int k = 0; k < nw; k++) {
        double v = decision(W + (size_t)k * (m + 1), m, xi, cols);
        if (v > bv || (k == 0)) {
            bv = v;
            best = k;
        }
    }
    return best;
}

// ---------------------------------------------------------------- checks

static int check_opts(const mm_linear_opts *o)
{
    if (!o) {
        mm__set_error("linear: no options");
        return -1;
    }
    if (o->estimator != MM_EST_SVM && o->estimator != MM_EST_LOGREG) {
        mm__set_error("linear: unknown estimator %d", o->estimator);
        return -1;
    }
    if (!(o->C > 0) || !isfinite(o->C)) {
        mm__set_error("linear: C must be a positive number, got %g", o->C);
        return -1;
    }
    if (!(o->tol > 0) || !isfinite(o->tol)) {
        mm__set_error("linear: tol must be a positive number, got %g", o->tol);
        return -1;
    }
    if (o->max_iter < 1) {
        mm__set_error("linear: max_iter must be at least 1, got %d", o->max_iter);
        return -1;
    }
    return 0;
}

/* Shapes, labels (every class present) and finite values in the used columns. */
static int check_data(const double *x, size_t n, size_t nf, const int *y, int nclass,
                      const size_t *cols, size_t nf_used)
{
    if (!x || !y || n == 0 || nf == 0) {
        mm__set_error("linear: no data (%zu samples, %zu features)", n, nf);
        return -1;
    }
    if (nclass < 2) {
        mm__set_error("linear: needs at least 2 classes, got %d", nclass);
        return -1;
    }
    if (nf_used == 0) {
        mm__set_error("linear: no features to use");
        return -1;
    }
    if (cols)
        for (size_t j = 0; j < nf_used; j++)
            if (cols[j] >= nf) {
                mm__set_error("linear: column %zu out of range (%zu features)", cols[j], nf);
                return -1;
            }
    size_t *cnt = mm_calloc((size_t)nclass, sizeof *cnt);
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= nclass) {
            mm__set_error("linear: sample %zu: label %d not in [0, %d)", i, y[i], nclass);
            free(cnt);
            return -1;
        }
        cnt[y[i]]++;
    }
    for (int k = 0; k < nclass; k++)
        if (cnt[k] == 0) {
            mm__set_error("linear: class %d has no samples", k);
            free(cnt);
            return -1;
        }
    free(cnt);
    for (size_t i = 0; i < n; i++) {
        const double *xi = x + i * nf;
        for (size_t j = 0; j < nf_used; j++)
            if (!isfinite(xi[cols ? cols[j] : j])) {
                mm__set_error("linear: sample %zu, feature %zu: not a finite number", i,
                              cols ? cols[j] : j);
                return -1;
            }
    }
    return 0;
}

// ---------------------------------------------------------------- public: fit

void mm_linear_opts_init(mm_linear_opts *o)
{
    o->estimator = MM_EST_SVM;
    o->C = 1;
    o->tol = 1e-8;
    o->max_iter = 100000;
    o->threads = 0;
}

int mm_linear_fit(const double *x, size_t n, size_t nf, const int *y, int nclass,
                  const size_t *cols, size_t nf_used, const mm_linear_opts *o,
                  const mm_linear_model *warm, mm_linear_model *out)
{
    if (!out) {
        mm__set_error("linear: no output model");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!cols)
        nf_used = nf;
    if (check_opts(o) != 0 || check_data(x, n, nf, y, nclass, cols, nf_used) != 0)
        return -1;
    int nw = nclass == 2 ? 1 : nclass;
    if (warm && (warm->nw != nw || warm->nf != nf_used || !warm->w || !warm->b)) {
        mm__set_error("linear: the warm start has %d x %zu weights, not %d x %zu",
                      warm->nw, warm->nf, nw, nf_used);
        return -1;
    }
    lcfg c;
    set_cfg(&c, o);
    lwork W;
    lwork_init(&W, x, nf, NULL, n, cols, nf_used, y, nclass, nthreads(o->threads));
    if (warm) {
        signed char *s = mm_malloc(n);
        for (int k = 0; k < nw; k++) {
            double *w = W.w + (size_t)k * (nf_used + 1);
            memcpy(w, warm->w + (size_t)k * nf_used, nf_used * sizeof *w);
            w[nf_used] = warm->b[k];
            signs(&W, k, s);
            beta_from_w(&W, &c, s, w, W.beta + (size_t)k * n);
        }
        free(s);
        W.warm = 1;
    }
    lwork_fit(&W, &c);
    out->nclass = nclass;
    out->nw = nw;
    out->nf = nf_used;
    out->w = mm_malloc((size_t)nw * nf_used * sizeof *out->w);
    out->b = mm_malloc((size_t)nw * sizeof *out->b);
    for (int k = 0; k < nw; k++) {
        memcpy(out->w + (size_t)k * nf_used, W.w + (size_t)k * (nf_used + 1),
               nf_used * sizeof *out->w);
        out->b[k] = W.w[(size_t)k * (nf_used + 1) + nf_used]; /* intercept_scaling 1 */
    }
    out->iters = W.iters;
    out->converged = W.converged;
    lwork_free(&W);
    return 0;
}

void mm_linear_free(mm_linear_model *m)
{
    if (!m)
        return;
    free(m->w);
    free(m->b);
    memset(m, 0, sizeof *m);
}

void mm_linear_predict(const mm_linear_model *m, const double *x, size_t n, size_t nf,
                       const size_t *cols, int *pred)
{
    double *wb = mm_malloc((size_t)m->nw * (m->nf + 1) * sizeof *wb);
    for (int k = 0; k < m->nw; k++) {
        memcpy(wb + (size_t)k * (m->nf + 1), m->w + (size_t)k * m->nf, m->nf * sizeof *wb);
        wb[(size_t)k * (m->nf + 1) + m->nf] = m->b[k];
    }
    for (size_t i = 0; i < n; i++)
        pred[i] = classify(wb, m->nw, m->nf, x + i * nf, cols);
    free(wb);
}

// ---------------------------------------------------------------- RFE

/* scikit-learn's step: a count when >= 1 (int(step)), else a fraction of
 * the features entering RFE: int(max(1, step * nf)). 0 when invalid. */
static size_t rfe_step(double step, size_t nf)
{
    if (!(step > 0) || !isfinite(step))
        return 0;
    if (step >= 1)
        return (size_t)step;
    double s = step * (double)nf;
    return s < 1 ? 1 : (size_t)s;
}

/* The feature counts RFE fits at, from NF down to NSEL (both included
 * when NF > NSEL), into COUNTS (may be NULL). @return how many. */
static size_t rfe_counts(size_t nf, size_t nsel, size_t step, size_t *counts)
{
    size_t k = 0, m = nf;
    for (;;) {
        if (counts)
            counts[k] = m;
        k++;
        if (m <= nsel)
            break;
        m -= step < m - nsel ? step : m - nsel;
    }
    return k;
}

typedef struct {
    double imp;
    size_t j;
} rank_item;

/* importance, then position: numpy's stable argsort order */
static inline int rank_less(const rank_item *p, const rank_item *q)
{
    return p->imp < q->imp || (p->imp == q->imp && p->j < q->j);
}

/* Move the K smallest of IT[0..N) (in rank_less order, a total order as
 * positions differ) to IT[0..K), in any order: quickselect, O(N) on
 * average. Which features go is all RFE needs; they share a ranking. */
static void select_smallest(rank_item *it, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th smallest is in [lo, hi) */
    while (hi - lo > 1 && k > lo && k < hi) {
        rank_item a = it[lo], b = it[lo + (hi - lo) / 2], c = it[hi - 1], piv;
        if (rank_less(&a, &b))
            piv = rank_less(&b, &c) ? b : rank_less(&a, &c) ? c : a;
        else
            piv = rank_less(&a, &c) ? a : rank_less(&b, &c) ? c : b;
        /* three-way split: < piv | == piv (one item) | > piv */
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (rank_less(&it[i], &piv)) {
                rank_item t = it[lt];
                it[lt++] = it[i];
                it[i++] = t;
            } else if (rank_less(&piv, &it[i])) {
                rank_item t = it[--gt];
                it[gt] = it[i];
                it[i] = t;
            } else {
                i++;
            }
        }
        if (k <= lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return;
    }
}

/* RFE on rows ROWS (NULL = all N) of X with labels Y (N values, in
 * [0, NC), every class present). RANKING (nf values, or NULL) as
 * scikit-learn's ranking_. With test rows TROWS / TY (labels in [0, NC),
 * -1 for a class the training part lacks), SCORE[count] gets the accuracy
 * at each count fitted, the last (NSEL) included. */
static void rfe_core(const double *x, size_t nf, const size_t *rows, size_t n, const int *y,
                     int nc, size_t nsel, size_t step, const lcfg *c, int th,
                     size_t *ranking, const size_t *trows, size_t nt, const int *ty,
                     double *score)
{
    lwork W;
    lwork_init(&W, x, nf, rows, n, NULL, nf, y, nc, th);
    size_t *cols = mm_malloc(nf * sizeof *cols);   /* kept, ascending */
    size_t *round = mm_calloc(nf, sizeof *round);  /* round dropped, 0 = kept */
    rank_item *it = mm_malloc(nf * sizeof *it);
    unsigned char *keep = mm_malloc(nf);
    size_t ncount = rfe_counts(nf, nsel, step, NULL);
    size_t *counts = mm_malloc(ncount * sizeof *counts);
    rfe_counts(nf, nsel, step, counts);
    for (size_t j = 0; j < nf; j++)
        cols[j] = j;
    size_t nround = 0;
    for (size_t ci = 0;; ci++) {
        size_t m = W.m;
        MM_ASSERT(m == counts[ci]);
        if (ci + 1 == ncount && !score)
            break;
        lwork_fit(&W, c);
        if (score) {
            size_t right = 0;
            for (size_t t = 0; t < nt; t++)
                right += classify(W.w, W.nw, m, x + trows[t] * nf, cols) == ty[t];
            score[m] = (double)right / (double)nt;
        }
        if (ci + 1 == ncount)
            break;
        for (size_t j = 0; j < m; j++) {
            double s = 0;
            for (int k = 0; k < W.nw; k++) {
                double v = W.w[(size_t)k * (m + 1) + j];
                s += v * v;
            }
            it[j].imp = s;
            it[j].j = j;
        }
        size_t thr = m - counts[ci + 1];
        select_smallest(it, m, thr); /* ties: the lower position first */
        memset(keep, 1, m);
        nround++;
        for (size_t t = 0; t < thr; t++) {
            keep[it[t].j] = 0;
            round[cols[it[t].j]] = nround;
        }
        size_t o = 0;
        for (size_t j = 0; j < m; j++)
            if (keep[j])
                cols[o++] = cols[j];
        lwork_keep(&W, keep);
    }
    if (ranking)
        for (size_t j = 0; j < nf; j++)
            ranking[j] = round[j] ? nround - round[j] + 2 : 1;
    free(counts);
    free(keep);
    free(it);
    free(round);
    free(cols);
    lwork_free(&W);
}

static int check_rfe(const mm_rfe_opts *r, size_t nf, size_t *step)
{
    if (!r) {
        mm__set_error("rfe: no options");
        return -1;
    }
    *step = rfe_step(r->step, nf);
    if (*step == 0) {
        mm__set_error("rfe: step must be a positive number, got %g", r->step);
        return -1;
    }
    return 0;
}

int mm_rfe(const double *x, size_t n, size_t nf, const int *y, int nclass,
           const mm_rfe_opts *r, const mm_linear_opts *o, size_t *ranking)
{
    size_t step;
    if (check_opts(o) != 0 || check_data(x, n, nf, y, nclass, NULL, nf) != 0 ||
        check_rfe(r, nf, &step) != 0)
        return -1;
    if (r->n_select == 0) {
        mm__set_error("rfe: the number of features to select must be at least 1");
        return -1;
    }
    if (!ranking) {
        mm__set_error("rfe: no ranking array");
        return -1;
    }
    lcfg c;
    set_cfg(&c, o);
    rfe_core(x, nf, NULL, n, y, nclass, r->n_select, step, &c, nthreads(o->threads), ranking,
             NULL, 0, NULL, NULL);
    return 0;
}

// ---------------------------------------------------------------- RFECV

/* scikit-learn's StratifiedKFold(k) without shuffling (_make_test_folds):
 * classes numbered by first appearance; the per-fold allocation of each
 * class is the round-robin deal of the class-sorted labels; each class's
 * samples, in order, fill fold 0's share, then fold 1's, ... FOLD gets
 * each sample's test fold. @return 0, -1 when K > N or no class has K
 * members (scikit-learn's errors). */
static int strat_kfold(const int *y, size_t n, int nclass, int k, int *fold)
{
    if (k < 2 || (size_t)k > n) {
        mm__set_error("rfecv: cannot make %d folds of %zu samples", k, n);
        return -1;
    }
    int *enc = mm_malloc((size_t)nclass * sizeof *enc);
    size_t *cnt = mm_calloc((size_t)nclass, sizeof *cnt);
    int ne = 0;
    for (int c = 0; c < nclass; c++)
        enc[c] = -1;
    for (size_t i = 0; i < n; i++) {
        if (enc[y[i]] < 0)
            enc[y[i]] = ne++;
        cnt[enc[y[i]]]++;
    }
    int big = 0;
    for (int e = 0; e < ne; e++)
        big |= cnt[e] >= (size_t)k;
    if (!big) {
        mm__set_error("rfecv: %d folds but every class has fewer samples", k);
        free(cnt);
        free(enc);
        return -1;
    }
    /* alloc[f * ne + e]: positions p = f, f + k, ... of the sorted labels
     * that fall in class e's block [start, start + cnt) */
    size_t *alloc = mm_calloc((size_t)k * (size_t)ne, sizeof *alloc);
    size_t start = 0;
    for (int e = 0; e < ne; e++) {
        for (int f = 0; f < k; f++) {
            size_t first = start + ((size_t)f + (size_t)k - start % (size_t)k) % (size_t)k;
            size_t end = start + cnt[e];
            alloc[(size_t)f * ne + e] = first < end ? (end - first - 1) / (size_t)k + 1 : 0;
        }
        start += cnt[e];
    }
    int *cur = mm_calloc((size_t)ne, sizeof *cur);     /* fold being filled */
    size_t *used = mm_calloc((size_t)ne, sizeof *used); /* of that fold */
    for (size_t i = 0; i < n; i++) {
        int e = enc[y[i]];
        while (used[e] >= alloc[(size_t)cur[e] * ne + e]) {
            cur[e]++;
            used[e] = 0;
        }
        fold[i] = cur[e];
        used[e]++;
    }
    free(used);
    free(cur);
    free(alloc);
    free(cnt);
    free(enc);
    return 0;
}

size_t mm_rfecv(const double *x, size_t n, size_t nf, const int *y, int nclass,
                const mm_rfe_opts *r, const mm_linear_opts *o, size_t *ranking,
                double *scores)
{
    size_t step;
    if (check_opts(o) != 0 || check_data(x, n, nf, y, nclass, NULL, nf) != 0 ||
        check_rfe(r, nf, &step) != 0)
        return 0;
    if (!ranking) {
        mm__set_error("rfecv: no ranking array");
        return 0;
    }
    const int k = r->cv;
    size_t minf = r->min_features ? r->min_features : 1;
    if (minf > nf)
        minf = nf;
    int *fold = mm_malloc(n * sizeof *fold);
    if (strat_kfold(y, n, nclass, k, fold) != 0) {
        free(fold);
        return 0;
    }
    /* each fold's training part must hold two classes (scikit-learn
     * refuses one); its labels are renumbered over the classes it has */
    for (int f = 0; f < k; f++) {
        int c0 = -1, two = 0;
        for (size_t i = 0; i < n && !two; i++)
            if (fold[i] != f) {
                if (c0 < 0)
                    c0 = y[i];
                else if (y[i] != c0)
                    two = 1;
            }
        if (!two) {
            mm__set_error("rfecv: the training part of fold %d has fewer than 2 classes", f);
            free(fold);
            return 0;
        }
    }
    lcfg c;
    set_cfg(&c, o);
    int th = nthreads(o->threads);
    double *fs = mm_malloc((size_t)k * (nf + 1) * sizeof *fs);
    for (size_t i = 0; i < (size_t)k * (nf + 1); i++)
        fs[i] = NAN;
#pragma omp parallel for num_threads(th < k ? th : k) schedule(dynamic, 1) if (th > 1)
    for (int f = 0; f < k; f++) {
        size_t ntr = 0, nte = 0;
        for (size_t i = 0; i < n; i++)
            ntr += fold[i] != f;
        nte = n - ntr;
        size_t *tr = mm_malloc(ntr * sizeof *tr), *te = mm_malloc(nte * sizeof *te);
        int *ytr = mm_malloc(ntr * sizeof *ytr), *yte = mm_malloc(nte * sizeof *yte);
        int *map = mm_malloc((size_t)nclass * sizeof *map);
        for (int cl = 0; cl < nclass; cl++)
            map[cl] = -1;
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++)
            if (fold[i] != f) {
                tr[a++] = i;
                map[y[i]] = 0;
            } else {
                te[b++] = i;
            }
        int nc = 0;
        for (int cl = 0; cl < nclass; cl++)
            if (map[cl] == 0)
                map[cl] = nc++;
        for (size_t i = 0; i < ntr; i++)
            ytr[i] = map[y[tr[i]]];
        for (size_t i = 0; i < nte; i++)
            yte[i] = map[y[te[i]]];
        int inner = th > k ? th / k : 1;
        rfe_core(x, nf, tr, ntr, ytr, nc, minf, step, &c, inner, NULL, te, nte, yte,
                 fs + (size_t)f * (nf + 1));
        free(map);
        free(yte);
        free(ytr);
        free(te);
        free(tr);
    }
    /* scikit-learn sums the fold scores and takes the first maximum with
     * the counts in increasing order: ties go to fewer features */
    size_t best = 0;
    double bestsum = -INFINITY;
    for (size_t m = 1; m <= nf; m++) {
        if (isnan(fs[m]))
            continue;
        double sum = 0;
        for (int f = 0; f < k; f++)
            sum += fs[(size_t)f * (nf + 1) + m];
        if (sum > bestsum) {
            bestsum = sum;
            best = m;
        }
    }
    if (scores)
        for (size_t m = 0; m <= nf; m++) {
            double sum = 0;
            for (int f = 0; f < k; f++)
                sum += fs[(size_t)f * (nf + 1) + m];
            scores[m] = m == 0 ? NAN : sum / k; /* NAN where not fitted */
        }
    free(fs);
    free(fold);
    rfe_core(x, nf, NULL, n, y, nclass, best, step, &c, th, ranking, NULL, 0, NULL, NULL);
    return best;
}
