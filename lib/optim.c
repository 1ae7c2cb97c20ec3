/* optim.c: RAdam, Lookahead, gradient clipping/accumulation, lr schedules
 * and seeded initialisers (mm/optim.h holds the formulas). Uses only the
 * public API of mm/tensor.h; parameters and gradients are contiguous host
 * tensors of mm_params, so updates walk their data directly. Not an
 * optimizer framework: no parameter groups, no closures, no sparse grads.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mm/dtype.h"
#include "mm/optim.h"

#define PI 3.14159265358979323846
#define SQRT2 1.41421356237309504880

#define OMP_FOR _Pragma("omp parallel for schedule(static) if (n > 16384)")

/* Run the body with `real` as the element type of DT (F32 or F64). */
#define FOR_REAL(dt, ...)                                                     \
    do {                                                                      \
        if ((dt) == MM_F32) {                                                 \
            typedef float real;                                               \
            __VA_ARGS__                                                       \
        } else {                                                              \
            typedef double real;                                              \
            __VA_ARGS__                                                       \
        }                                                                     \
    } while (0)

static int is_real(mm_dtype dt) { return dt == MM_F32 || dt == MM_F64; }

/* 1 when P has parameters whose data exist (mm_params_alloc ran). */
static int allocated(mm_params *p)
{
    return mm_params_count(p) == 0 || mm_tensor_data(mm_params_get(p, 0));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The named state tensor "NAME" SUFFIX of parameter I: first at the index
 * mm_params_named documents (per * I + K), else by a scan of the names. */
static mm_tensor *state_of(mm_params *p, int i, const char *suffix, int k)
{
    const char *pname = mm_params_name(p, i), *nm;
    size_t len = strlen(pname);
    int nn = mm_params_n_named(p), per = nn / mm_params_count(p);
    for (int j = -1; j < nn; j++) {
        int idx = j < 0 ? per * i + k : j;
        mm_tensor *t = mm_params_named(p, idx, &nm);
        if (t && strncmp(nm, pname, len) == 0 && strcmp(nm + len, suffix) == 0)
            return t;
    }
    return NULL;
}

// ---- RAdam -----------------------------------------------------------------

mm_radam_opts mm_radam_defaults(void)
{
    return (mm_radam_opts){1e-3, 0.9, 0.999, 1e-8, 0.0, 0, 0};
}

double mm_radam_rho(double beta2, int64_t t)
{
    double rho_inf = 2 / (1 - beta2) - 1, b2t = pow(beta2, (double)t);
    return rho_inf - 2 * (double)t * b2t / (1 - b2t);
}

int mm_radam_step(mm_params *p, const mm_radam_opts *o)
{
    if (!allocated(p)) {
        mm__set_error("radam: parameters not allocated");
        return -1;
    }
    if (!(o->lr >= 0 && o->eps >= 0 && o->weight_decay >= 0 &&
          o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1)) {
        mm__set_error("radam: expected lr, eps, weight_decay >= 0 and betas "
                      "in [0, 1), got lr %g betas (%g, %g) eps %g wd %g",
                      o->lr, o->beta1, o->beta2, o->eps, o->weight_decay);
        return -1;
    }
    int64_t step = mm_params_step(p) + 1;
    mm_params_set_step(p, step);
    double t = (double)step;
    double bc1 = 1 - pow(o->beta1, t), bc2s = sqrt(1 - pow(o->beta2, t));
    double rho_inf = 2 / (1 - o->beta2) - 1, rho = mm_radam_rho(o->beta2, step);
    int rectify = rho > 5;
    double rect = rectify ? sqrt((rho - 4) * (rho - 2) * rho_inf /
                                 ((rho_inf - 4) * (rho_inf - 2) * rho))
                          : 0;
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *w = mm_params_get(p, i), *gt = mm_tensor_grad(w);
        mm_tensor *mt = state_of(p, i, ".exp_avg", 2);
        mm_tensor *vt = state_of(p, i, ".exp_avg_sq", 3);
        if (!gt || !mt || !vt) {
            mm__set_error("radam: %s lacks its gradient or Adam state",
                          mm_params_name(p, i));
            return -1;
        }
        double wd = o->weight_decay;
        if (o->no_decay_1d &&
            (mm_tensor_ndim(w) <= 1 || ends_with(mm_params_name(p, i), ".bias")))
            wd = 0;
        int64_t n = mm_tensor_numel(w);
        int decoupled = o->decoupled;
        FOR_REAL(mm_tensor_dtype(w), {
            real *wp = mm_tensor_data(w), *g = mm_tensor_data(gt);
            real *m = mm_tensor_data(mt), *v = mm_tensor_data(vt);
            real b1 = (real)o->beta1, b2 = (real)o->beta2, ep = (real)o->eps;
            real lr = (real)o->lr, wdr = (real)wd, c1 = (real)bc1;
            real c2s = (real)bc2s, r = (real)rect;
            OMP_FOR
            for (int64_t j = 0; j < n; j++) {
                real gj = g[j];
                if (wd != 0) {
                    if (decoupled) wp[j] *= 1 - lr * wdr;
                    else gj += wdr * wp[j];
                }
                m[j] = b1 * m[j] + (1 - b1) * gj;
                v[j] = b2 * v[j] + (1 - b2) * gj * gj;
                real bcm = m[j] / c1;
                if (rectify)
                    wp[j] -= bcm * lr * (c2s / (sqrt(v[j]) + ep)) * r;
                else
                    wp[j] -= bcm * lr;
            }
        });
    }
    return 0;
}

// ---- Lookahead -------------------------------------------------------------

struct mm_lookahead {
    mm_params *p;
    mm_ctx *ctx;       /* owns the slow tensors; never reset */
    int n;
    mm_tensor **slow;  /* slow[i]: parameter i's slow weights */
    char **names;      /* "NAME.slow" */
    mm_lookahead_opts o;
    int64_t count;
    int ready;
};

mm_lookahead_opts mm_lookahead_defaults(void)
{
    return (mm_lookahead_opts){6, 0.5, 0};
}

static void copy_data(mm_tensor *dst, mm_tensor *src)
{
    memcpy(mm_tensor_data(dst), mm_tensor_data(src),
           (size_t)mm_tensor_numel(src) * mm_dtype_size(mm_tensor_dtype(src)));
}

mm_lookahead *mm_lookahead_new(mm_params *p, const mm_lookahead_opts *o)
{
    if (!allocated(p)) {
        mm__set_error("lookahead: parameters not allocated");
        return NULL;
    }
    if (o->k < 1 || !(o->alpha >= 0 && o->alpha <= 1)) {
        mm__set_error("lookahead: expected k >= 1 and alpha in [0, 1], got "
                      "k %d alpha %g", o->k, o->alpha);
        return NULL;
    }
    mm_lookahead *la = mm_calloc(1, sizeof *la);
    la->p = p;
    la->o = *o;
    la->ctx = mm_ctx_new();
    la->n = mm_params_count(p);
    la->slow = mm_calloc((size_t)la->n + 1, sizeof *la->slow);
    la->names = mm_calloc((size_t)la->n + 1, sizeof *la->names);
    for (int i = 0; i < la->n; i++) {
        mm_tensor *w = mm_params_get(p, i);
        int64_t shape[MM_MAX_DIMS];
        int nd = mm_tensor_ndim(w);
        for (int d = 0; d < nd; d++) shape[d] = mm_tensor_dim(w, d);
        la->slow[i] = mm_tensor_new(la->ctx, mm_tensor_dtype(w), nd, shape);
        MM_ASSERT(la->slow[i]);
        const char *nm = mm_params_name(p, i);
        size_t len = strlen(nm);
        la->names[i] = mm_malloc(len + sizeof ".slow");
        memcpy(la->names[i], nm, len);
        memcpy(la->names[i] + len, ".slow", sizeof ".slow");
        if (o->init_at_start) copy_data(la->slow[i], w);
    }
    la->ready = o->init_at_start != 0;
    return la;
}

void mm_lookahead_free(mm_lookahead *la)
{
    if (!la) return;
    for (int i = 0; i < la->n; i++) free(la->names[i]);
    free(la->names);
    free(la->slow);
    mm_ctx_free(la->ctx);
    free(la);
}

void mm_lookahead_sync(mm_lookahead *la)
{
    for (int i = 0; i < la->n; i++) {
        mm_tensor *w = mm_params_get(la->p, i), *s = la->slow[i];
        if (!la->ready) copy_data(s, w); /* timm: slow starts as fast */
        int64_t n = mm_tensor_numel(w);
        FOR_REAL(mm_tensor_dtype(w), {
            real *f = mm_tensor_data(w), *sl = mm_tensor_data(s);
            real a = (real)la->o.alpha;
            OMP_FOR
            for (int64_t j = 0; j < n; j++) {
                sl[j] += a * (f[j] - sl[j]);
                f[j] = sl[j];
            }
        });
    }
    la->ready = 1;
}

int mm_lookahead_step(mm_lookahead *la)
{
    if (++la->count % la->o.k != 0) return 0;
    mm_lookahead_sync(la);
    return 1;
}

int64_t mm_lookahead_count(const mm_lookahead *la) { return la->count; }
void mm_lookahead_set_count(mm_lookahead *la, int64_t n) { la->count = n; }
int mm_lookahead_ready(const mm_lookahead *la) { return la->ready; }
void mm_lookahead_set_ready(mm_lookahead *la, int ready)
{
    la->ready = ready != 0;
}
int mm_lookahead_n_named(const mm_lookahead *la) { return la->n; }

mm_tensor *mm_lookahead_named(mm_lookahead *la, int i, const char **name)
{
    if (i < 0 || i >= la->n) return NULL;
    if (name) *name = la->names[i];
    return la->slow[i];
}

// ---- gradients -------------------------------------------------------------

double mm_params_grad_norm(mm_params *p)
{
    double ss = 0;
    if (!allocated(p)) return 0;
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *g = mm_tensor_grad(mm_params_get(p, i));
        if (!g) continue;
        int64_t n = mm_tensor_numel(g);
        FOR_REAL(mm_tensor_dtype(g), {
            const real *d = mm_tensor_data(g);
            for (int64_t j = 0; j < n; j++) ss += (double)d[j] * d[j];
        });
    }
    return sqrt(ss);
}

void mm_params_scale_grad(mm_params *p, double s)
{
    if (!allocated(p)) return;
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *g = mm_tensor_grad(mm_params_get(p, i));
        if (!g) continue;
        int64_t n = mm_tensor_numel(g);
        FOR_REAL(mm_tensor_dtype(g), {
            real *d = mm_tensor_data(g), c = (real)s;
            OMP_FOR
            for (int64_t j = 0; j < n; j++) d[j] *= c;
        });
    }
}

double mm_params_clip_grad_norm(mm_params *p, double max_norm)
{
    double total = mm_params_grad_norm(p);
    if (!isfinite(total)) return total;
    double c = max_norm / (total + 1e-6);
    if (c < 1) mm_params_scale_grad(p, c);
    return total;
}

// ---- schedules -------------------------------------------------------------

double mm_sched_lr(const mm_sched *s, int64_t t)
{
    if (t < 0) t = 0;
    if (t < s->warmup)
        return s->lr * (s->warmup_from +
                        (1 - s->warmup_from) * (double)t / (double)s->warmup);
    if (s->kind == MM_SCHED_CONSTANT || s->total <= s->warmup) return s->lr;
    if (t >= s->total) return s->min_lr;
    double x = (double)(t - s->warmup) / (double)(s->total - s->warmup);
    return s->min_lr + (s->lr - s->min_lr) * (1 + cos(PI * x)) / 2;
}

// ---- initialisers ----------------------------------------------------------

static int check_init(const mm_tensor *t, const char *what)
{
    mm_dtype dt = mm_tensor_dtype(t);
    if (!is_real(dt) && dt != MM_F16) {
        mm__set_error("%s: expected an F32, F64 or F16 tensor", what);
        return -1;
    }
    if (mm_tensor_device(t) != MM_CPU) {
        mm__set_error("%s: expected a tensor on the CPU", what);
        return -1;
    }
    return 0;
}

/* Standard normals in pair order: z0, then the z1 kept from that pair. */
typedef struct {
    mm_rng *g;
    double z[2];
    int have;
} normals;

static double next_normal(normals *s)
{
    if (s->have) {
        s->have = 0;
        return s->z[1];
    }
    mm_rng_normal2(s->g, s->z);
    s->have = 1;
    return s->z[0];
}

/* Fill T in logical order: KIND 0: P0 + P1 z; 1: U(P0, P1) as
 * P0 + (P1 - P0) U; 2: P0 + P1 z, redrawn until in [A, B]. */
static int fill(mm_tensor *t, mm_rng *g, int kind, double p0, double p1,
                double a, double b)
{
    int64_t n = mm_tensor_numel(t);
    double *buf = mm_malloc((size_t)n * sizeof *buf);
    normals ns = {g, {0, 0}, 0};
    for (int64_t i = 0; i < n; i++) {
        if (kind == 1) {
            buf[i] = p0 + (p1 - p0) * mm_rng_uniform(g);
        } else if (kind == 0) {
            buf[i] = p0 + p1 * next_normal(&ns);
        } else {
            double x;
            do x = p0 + p1 * next_normal(&ns); while (!(x >= a && x <= b));
            buf[i] = x;
        }
    }
    int rc = mm_tensor_set_f64(t, buf, n);
    free(buf);
    return rc;
}

int mm_init_fans(const mm_tensor *t, int64_t *fan_in, int64_t *fan_out)
{
    int nd = mm_tensor_ndim(t);
    if (nd < 2) {
        mm__set_error("init: fan in and fan out need a tensor of at least 2 "
                      "dimensions, got %d", nd);
        return -1;
    }
    int64_t rf = 1;
    for (int d = 2; d < nd; d++) rf *= mm_tensor_dim(t, d);
    if (fan_in) *fan_in = mm_tensor_dim(t, 1) * rf;
    if (fan_out) *fan_out = mm_tensor_dim(t, 0) * rf;
    return 0;
}

int mm_init_uniform(mm_tensor *t, mm_rng *g, double lo, double hi)
{
    if (check_init(t, "uniform")) return -1;
    if (!(lo <= hi)) {
        mm__set_error("uniform: expected lo <= hi, got %g, %g", lo, hi);
        return -1;
    }
    return fill(t, g, 1, lo, hi, 0, 0);
}

int mm_init_normal(mm_tensor *t, mm_rng *g, double mean, double std)
{
    if (check_init(t, "normal")) return -1;
    if (!(std >= 0) || !isfinite(mean)) {
        mm__set_error("normal: expected a finite mean and std >= 0, got "
                      "%g, %g", mean, std);
        return -1;
    }
    return fill(t, g, 0, mean, std, 0, 0);
}

static double phi(double x) { return 0.5 * erfc(-x / SQRT2); }

int mm_init_trunc_normal(mm_tensor *t, mm_rng *g, double mean,
                         double std, double a, double b)
{
    if (check_init(t, "trunc_normal")) return -1;
    if (!(std > 0) || !isfinite(mean) || !(a < b)) {
        mm__set_error("trunc_normal: expected std > 0 and a < b, got std %g "
                      "a %g b %g", std, a, b);
        return -1;
    }
    double mass = phi((b - mean) / std) - phi((a - mean) / std);
    if (!(mass >= 1e-3)) {
        mm__set_error("trunc_normal: [%g, %g] holds %.3g of N(%g, %g^2), "
                      "under 1e-3", a, b, mass, mean, std);
        return -1;
    }
    return fill(t, g, 2, mean, std, a, b);
}

static int fans_sum(mm_tensor *t, const char *what, double *sum)
{
    int64_t fi, fo;
    if (check_init(t, what) || mm_init_fans(t, &fi, &fo)) return -1;
    *sum = (double)(fi + fo);
    return 0;
}

int mm_init_xavier_uniform(mm_tensor *t, mm_rng *g, double gain)
{
    double s;
    if (fans_sum(t, "xavier_uniform", &s)) return -1;
    double a = gain * sqrt(6.0 / s);
    return fill(t, g, 1, -a, a, 0, 0);
}

int mm_init_xavier_normal(mm_tensor *t, mm_rng *g, double gain)
{
    double s;
    if (fans_sum(t, "xavier_normal", &s)) return -1;
    return fill(t, g, 0, 0, gain * sqrt(2.0 / s), 0, 0);
}

int mm_init_kaiming_normal(mm_tensor *t, mm_rng *g, mm_fan_mode mode,
                           double gain)
{
    int64_t fi, fo;
    if (check_init(t, "kaiming_normal") || mm_init_fans(t, &fi, &fo))
        return -1;
    double fan = (double)(mode == MM_FAN_OUT ? fo : fi);
    return fill(t, g, 0, 0, gain / sqrt(fan), 0, 0);
}

int mm_init_snn(mm_tensor *t, mm_rng *g)
{
    int64_t fi;
    if (check_init(t, "snn") || mm_init_fans(t, &fi, NULL)) return -1;
    return fill(t, g, 0, 0, 1 / sqrt((double)fi), 0, 0);
}

int mm_init_constant(mm_tensor *t, double v)
{
    if (check_init(t, "constant")) return -1;
    mm_tensor_fill(t, v);
    return 0;
}
