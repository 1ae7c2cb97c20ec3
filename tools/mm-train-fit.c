/* mm-train-fit.c: mm-train's trainer: options and config files, the
 * training loop (optimizers, schedule, accumulation, Cox groups, early
 * stopping), checkpoints with everything an exact resume needs, and
 * prediction and metrics. The models are mm/mil.h.
 *
 * Determinism: every random choice (the epoch's order, each bag's dropout
 * seed) is drawn from one mm_rng seeded with "seed" and saved in the
 * checkpoint, so a resumed run takes the same steps as an uninterrupted
 * one and ends with the same bits (for a fixed BLAS thread count).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <xxhash.h>

#include "mm/metrics.h"
#include "mm/optim.h"
#include "mm/rng.h"
#include "mm/safetensors.h"
#include "mm/survival.h"
#include "mm-train.h"
#include "toolutil.h"

// ---- options

void mt_opts_defaults(mt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->task = MT_SUBTYPE;
    o->loss = MT_NLL;
    snprintf(o->optimizer, sizeof o->optimizer, "adam");
    o->lr = 2e-4;
    o->weight_decay = 1e-5;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->la_k = 6;
    o->la_alpha = 0.5;
    snprintf(o->schedule, sizeof o->schedule, "constant");
    o->warmup_epochs = 0;
    o->warmup_from = 0;
    o->min_lr = 0;
    o->epochs = 20;
    o->batch = 1;
    o->accum = 1;
    o->clip = 0;
    o->label_smoothing = 0;
    o->alpha_surv = 0;
    o->bins = 4;
    snprintf(o->bins_from, sizeof o->bins_from, "train");
    snprintf(o->cox_norm, sizeof o->cox_norm, "events");
    snprintf(o->cox_risk, sizeof o->cox_risk, "inclusive");
    snprintf(o->monitor, sizeof o->monitor, "loss");
    o->patience = 0;
    snprintf(o->select, sizeof o->select, "last");
    snprintf(o->standardize, sizeof o->standardize, "none");
    o->seed = 1;
}

const char *mt_task_name(const mt_opts *o)
{
    return o->task == MT_SUBTYPE ? "subtype" : "survival";
}

static int choose(const char *v, const char *const *ok, char *dst, size_t n)
{
    for (int i = 0; ok[i]; i++)
        if (!strcmp(v, ok[i])) {
            snprintf(dst, n, "%s", v);
            return 0;
        }
    return -1;
}

int mt_set(mt_opts *o, mm_model_cfg *mc, const char *key, const char *v, char *err,
           size_t errn)
{
    static const char *const opt_ok[] = {"adam", "adamw", "radam", NULL};
    static const char *const sched_ok[] = {"cosine", "constant", NULL};
    static const char *const from_ok[] = {"train", "all", NULL};
    static const char *const norm_ok[] = {"events", "all", "events+1", NULL};
    static const char *const risk_ok[] = {"inclusive", "strict", NULL};
    static const char *const mon_ok[] = {"loss", "accuracy", "balanced_accuracy", "f1",
                                         "auroc", "cindex", NULL};
    static const char *const sel_ok[] = {"last", "best", NULL};
    static const char *const std_ok[] = {"none", "train", NULL};
    double d;
    long long i;
    int r = 0;
#define DBL(K, F, LO, HI) if (!strcmp(key, K)) { r = mm_parse_double(v, LO, HI, &d); if (!r) o->F = d; goto done; }
#define INT(K, F, LO, HI) if (!strcmp(key, K)) { r = mm_parse_int(v, LO, HI, &i); if (!r) o->F = (int)i; goto done; }
#define STR(K, F, OK) if (!strcmp(key, K)) { r = choose(v, OK, o->F, sizeof o->F); goto done; }
    if (!strcmp(key, "task")) {
        if (!strcmp(v, "subtype")) o->task = MT_SUBTYPE;
        else if (!strcmp(v, "survival")) o->task = MT_SURVIVAL;
        else r = -1;
        goto done;
    }
    if (!strcmp(key, "loss")) {
        if (!strcmp(v, "nll")) o->loss = MT_NLL;
        else if (!strcmp(v, "cox")) o->loss = MT_COX;
        else r = -1;
        goto done;
    }
    STR("optimizer", optimizer, opt_ok)
    DBL("lr", lr, 0, 10)
    DBL("weight_decay", weight_decay, 0, 10)
    DBL("beta1", beta1, 0, 0.999999)
    DBL("beta2", beta2, 0, 0.999999)
    DBL("eps", eps, 1e-30, 1)
    INT("lookahead_k", la_k, 1, 1000000)
    DBL("lookahead_alpha", la_alpha, 0, 1)
    STR("schedule", schedule, sched_ok)
    INT("warmup_epochs", warmup_epochs, 0, 1000000)
    DBL("warmup_from", warmup_from, 0, 1)
    DBL("min_lr", min_lr, 0, 10)
    INT("epochs", epochs, 1, 1000000)
    INT("batch", batch, 1, 1000000)
    INT("accum", accum, 1, 1000000)
    DBL("clip", clip, 0, 1e30)
    DBL("label_smoothing", label_smoothing, 0, 0.999)
    DBL("alpha_surv", alpha_surv, 0, 1)
    INT("bins", bins, 2, 100)
    STR("bins_from", bins_from, from_ok)
    STR("cox_norm", cox_norm, norm_ok)
    STR("cox_risk", cox_risk, risk_ok)
    STR("monitor", monitor, mon_ok)
    INT("patience", patience, 0, 1000000)
    STR("select", select, sel_ok)
    STR("standardize", standardize, std_ok)
    if (!strcmp(key, "seed")) {
        r = mm_parse_int(v, 0, INT64_MAX, &i);
        if (!r) o->seed = i;
        goto done;
    }
    if (mc) {
        if (mm_model_cfg_set(mc, key, v) == 0) return 0;
        snprintf(err, errn, "%s", mm_strerror());
        return -1;
    }
    snprintf(err, errn, "unknown key '%s'", key);
    return -1;
done:
    if (r) snprintf(err, errn, "%s: bad value '%s'", key, v);
    return r ? -1 : 0;
#undef DBL
#undef INT
#undef STR
}

void mt_read_conf(const char *path, mt_opts *o, mm_model_cfg *mc)
{
    FILE *fp = fopen(path, "r");
    if (!fp) mm_die_errno("%s", path);
    char *line = NULL, err[512];
    size_t cap = 0;
    int ln = 0;
    while (getline(&line, &cap, fp) >= 0) {
        ln++;
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        size_t l = strlen(p);
        while (l && (p[l - 1] == '\n' || p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
            p[--l] = 0;
        if (!*p) continue;
        char *eq = strchr(p, '=');
        if (!eq) mm_die("%s:%d: expected key = value", path, ln);
        char *k = p, *v = eq + 1, *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        while (*v == ' ' || *v == '\t') v++;
        if (mt_set(o, mc, k, v, err, sizeof err) != 0) mm_die("%s:%d: %s", path, ln, err);
    }
    free(line);
    fclose(fp);
}

void mt_opts_format(const mt_opts *o, char *buf, size_t n)
{
    snprintf(buf, n,
             "task=%s loss=%s optimizer=%s lr=%.17g weight_decay=%.17g beta1=%.17g "
             "beta2=%.17g eps=%.17g lookahead_k=%d lookahead_alpha=%.17g schedule=%s "
             "warmup_epochs=%d warmup_from=%.17g min_lr=%.17g epochs=%d batch=%d accum=%d "
             "clip=%.17g label_smoothing=%.17g alpha_surv=%.17g bins=%d bins_from=%s "
             "cox_norm=%s cox_risk=%s monitor=%s patience=%d select=%s standardize=%s seed=%lld",
             mt_task_name(o), o->loss == MT_COX ? "cox" : "nll", o->optimizer, o->lr,
             o->weight_decay, o->beta1, o->beta2, o->eps, o->la_k, o->la_alpha, o->schedule,
             o->warmup_epochs, o->warmup_from, o->min_lr, o->epochs, o->batch, o->accum, o->clip,
             o->label_smoothing, o->alpha_surv, o->bins, o->bins_from, o->cox_norm, o->cox_risk,
             o->monitor, o->patience, o->select, o->standardize, o->seed);
}

/* Apply "k=v k=v ..." (a recorded config) to O and/or MC. */
static void apply_line(const char *line, mt_opts *o, mm_model_cfg *mc, const char *path)
{
    char *s = mm_strdup(line), *save = NULL, err[512];
    for (char *t = strtok_r(s, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) mm_die("%s: bad recorded config '%s'", path, t);
        *eq = 0;
        int r;
        if (o) r = mt_set(o, NULL, t, eq + 1, err, sizeof err);
        else {
            r = mm_model_cfg_set(mc, t, eq + 1);
            if (r) snprintf(err, sizeof err, "%s", mm_strerror());
        }
        if (r) mm_die("%s: recorded config: %s", path, err);
    }
    free(s);
}

// ---- survival bins (METHODS.md B9: pd.qcut of event times, then pd.cut)

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* EDGES[0..bins] from the patients IDX (event times for the quantiles,
 * all times for the ends). @return 0, or -1 when there is no event. */
static int make_bins(const mt_cohort *c, const int *idx, int n, int bins, double *edges)
{
    double *ev = mm_malloc((size_t)(n + 1) * sizeof(double));
    double lo = INFINITY, hi = -INFINITY;
    int ne = 0;
    for (int k = 0; k < n; k++) {
        const mt_patient *p = &c->p[idx[k]];
        if (isnan(p->time) || p->event < 0) continue;
        if (p->event == 1) ev[ne++] = p->time;
        if (p->time < lo) lo = p->time;
        if (p->time > hi) hi = p->time;
    }
    if (ne == 0) { free(ev); return -1; }
    qsort(ev, (size_t)ne, sizeof(double), cmp_d);
    for (int b = 0; b <= bins; b++) {
        double h = (double)(ne - 1) * b / bins;
        int l = (int)floor(h);
        edges[b] = l + 1 < ne ? ev[l] + (h - l) * (ev[l + 1] - ev[l]) : ev[ne - 1];
    }
    edges[0] = lo - 1e-6;
    edges[bins] = hi + 1e-6;
    free(ev);
    return 0;
}

static int bin_of(double t, const double *edges, int bins)
{
    int b = 0;
    while (b + 1 < bins && t >= edges[b + 1]) b++;
    return b;
}

// ---- checkpoint context

static int n_out_of(const mt_opts *o, int nclass)
{
    if (o->task == MT_SUBTYPE) return nclass;
    return o->loss == MT_COX ? 1 : o->bins;
}

/* the model's inputs for patient P */
static int make_input(mm_ctx *ctx, const mt_ckpt *k, const mt_cohort *c, const mt_patient *p,
                      mm_model_input *in)
{
    memset(in, 0, sizeof *in);
    if (k->mc.in_dim > 0) {
        in->x = mm_tensor_new2(ctx, MM_F32, p->n, c->dim);
        if (!in->x) return -1;
        float *d = mm_tensor_data(in->x);
        memcpy(d, p->x, (size_t)p->n * (size_t)c->dim * sizeof(float));
        if (k->x_mean)
            for (int64_t t = 0; t < p->n; t++)
                for (int j = 0; j < c->dim; j++)
                    d[t * c->dim + j] = (float)((d[t * c->dim + j] - k->x_mean[j]) / k->x_sd[j]);
    }
    if (k->mc.omic_dim > 0) {
        in->omic = mm_tensor_new2(ctx, MM_F32, 1, c->omic_dim);
        if (!in->omic) return -1;
        float *d = mm_tensor_data(in->omic);
        for (int j = 0; j < c->omic_dim; j++)
            d[j] = k->omic_mean ? (float)((p->omic[j] - k->omic_mean[j]) / k->omic_sd[j]) : p->omic[j];
    }
    return 0;
}

void mt_predict(const mt_ckpt *k, const mt_cohort *c, const int *idx, int n, double *out)
{
    mm_ctx *ctx = mm_ctx_new();
    mm_ctx_no_grad(ctx, 1);
    int no = mm_model_n_out(k->m);
    for (int i = 0; i < n; i++) {
        mm_ctx_reset(ctx);
        mm_model_input in;
        mm_model_output mo;
        if (make_input(ctx, k, c, &c->p[idx[i]], &in) != 0 ||
            mm_model_forward(ctx, k->m, &in, &mo) != 0)
            mm_die("patient %s: %s", c->p[idx[i]].id, mm_strerror());
        for (int j = 0; j < no; j++) out[(size_t)i * no + j] = mm_tensor_get1(mo.out, j);
    }
    mm_ctx_free(ctx);
}

/* softmax of row L[0..C) into P */
static void softmax(const double *l, int c, double *p)
{
    double mx = l[0], s = 0;
    for (int j = 1; j < c; j++) if (l[j] > mx) mx = l[j];
    for (int j = 0; j < c; j++) s += (p[j] = exp(l[j] - mx));
    for (int j = 0; j < c; j++) p[j] /= s;
}

/* Cox negative partial log-likelihood (Breslow) of N risks, as
 * mm_tensor_cox_nll_ex: NAN when no event counts. */
static double cox_nll(const double *risk, const double *t, const int *e, int n,
                      const mt_opts *o)
{
    int strict = !strcmp(o->cox_risk, "strict");
    double sum = 0;
    int ne = 0;
    for (int i = 0; i < n; i++) {
        if (e[i] != 1) continue;
        double mx = -INFINITY, s = 0;
        int any = 0;
        for (int j = 0; j < n; j++)
            if (strict ? t[j] > t[i] : t[j] >= t[i]) { any = 1; if (risk[j] > mx) mx = risk[j]; }
        if (!any) continue;
        for (int j = 0; j < n; j++)
            if (strict ? t[j] > t[i] : t[j] >= t[i]) s += exp(risk[j] - mx);
        sum += risk[i] - (mx + log(s));
        ne++;
    }
    if (ne == 0) return NAN;
    double div = !strcmp(o->cox_norm, "all") ? n : !strcmp(o->cox_norm, "events+1") ? ne + 1 : ne;
    return -sum / div;
}

typedef struct {
    const mt_opts *o;
    int nclass;
    const double *edges;
} evalspec;

static void metrics_of(const evalspec *es, const mt_cohort *c, const int *idx, int n,
                       const double *out, mt_metrics *m)
{
    const mt_opts *o = es->o;
    m->loss = m->accuracy = m->balanced_accuracy = m->f1 = m->auroc = m->cindex = NAN;
    m->n = n;
    if (n == 0) return;
    int no = n_out_of(o, es->nclass);
    if (o->task == MT_SUBTYPE) {
        int C = es->nclass, *y = mm_malloc((size_t)n * sizeof(int)), *pr = mm_malloc((size_t)n * sizeof(int));
        double *prob = mm_malloc((size_t)n * (size_t)C * sizeof(double)), loss = 0;
        for (int i = 0; i < n; i++) {
            double *pp = prob + (size_t)i * C;
            softmax(out + (size_t)i * no, C, pp);
            y[i] = c->p[idx[i]].y;
            pr[i] = 0;
            double sl = 0;
            for (int j = 0; j < C; j++) {
                if (pp[j] > pp[pr[i]]) pr[i] = j;
                sl += log(fmax(pp[j], 1e-300));
            }
            loss += -(1 - o->label_smoothing) * log(fmax(pp[y[i]], 1e-300)) - o->label_smoothing / C * sl;
        }
        m->loss = loss / n;
        m->accuracy = mm_accuracy(y, pr, n);
        m->balanced_accuracy = mm_balanced_accuracy(y, pr, n, C);
        m->f1 = mm_f1_macro(y, pr, n, C);
        m->auroc = mm_auroc(y, prob, n, C);
        free(y); free(pr); free(prob);
        return;
    }
    double *t = mm_malloc((size_t)n * sizeof(double)), *risk = mm_malloc((size_t)n * sizeof(double));
    int *e = mm_malloc((size_t)n * sizeof(int));
    double loss = 0;
    for (int i = 0; i < n; i++) {
        const mt_patient *p = &c->p[idx[i]];
        const double *l = out + (size_t)i * no;
        t[i] = p->time;
        e[i] = p->event;
        if (o->loss == MT_COX) {
            risk[i] = l[0];
            continue;
        }
        risk[i] = mm_surv_risk(l, o->bins);
        int y = bin_of(p->time, es->edges, o->bins);
        double cens = 1 - p->event, s = 1, spy = 1, hy = 0, spy1 = 1, eps = 1e-7;
        for (int b = 0; b < o->bins; b++) {
            double h = 1 / (1 + exp(-l[b]));
            if (b == y) { spy = s; hy = h; }
            s *= 1 - h;
            if (b == y) spy1 = s;
        }
        double unc = -(1 - cens) * (log(fmax(spy, eps)) + log(fmax(hy, eps)));
        double cen = -cens * log(fmax(spy1, eps));
        loss += (1 - o->alpha_surv) * (unc + cen) + o->alpha_surv * unc;
    }
    m->loss = o->loss == MT_COX ? cox_nll(risk, t, e, n, o) : loss / n;
    mm_cindex ci;
    if (mm_cindex_harrell(t, e, risk, (size_t)n, &ci) == 0) m->cindex = ci.c;
    free(t); free(risk); free(e);
}

void mt_metrics_of(const mt_ckpt *k, const mt_cohort *c, const int *idx, int n,
                   const double *out, mt_metrics *m)
{
    evalspec es = {&k->o, k->nclass, k->edges};
    metrics_of(&es, c, idx, n, out, m);
}

// ---- checkpoints

/* every tensor of the checkpoint but the gradients */
static int is_grad(const char *name)
{
    size_t l = strlen(name);
    return l > 5 && !strcmp(name + l - 5, ".grad");
}

typedef struct {
    int epoch;          /* epochs done */
    double best;        /* monitored value of the best epoch (NAN: none) */
    int best_epoch, bad, stopped;
    mm_rng rng;
} runstate;

static void set_meta_int(mm_st_writer *w, const char *k, long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    mm_st_set_metadata(w, k, b);
}

static void ckpt_save(const char *path, mt_ckpt *k, mm_lookahead *la, const runstate *rs)
{
    mm_st_writer *w = mm_st_create(path);
    if (!w) mm_die("%s", mm_strerror());
    for (int i = 0; i < mm_params_n_named(k->p); i++) {
        const char *name;
        mm_tensor *t = mm_params_named(k->p, i, &name);
        if (is_grad(name)) continue;
        int64_t shape[MM_MAX_DIMS];
        for (int d = 0; d < mm_tensor_ndim(t); d++) shape[d] = mm_tensor_dim(t, d);
        mm_st_add(w, name, MM_F32, mm_tensor_ndim(t), shape, mm_tensor_data(t));
    }
    if (la)
        for (int i = 0; i < mm_lookahead_n_named(la); i++) {
            const char *name;
            mm_tensor *t = mm_lookahead_named(la, i, &name);
            int64_t shape[MM_MAX_DIMS];
            for (int d = 0; d < mm_tensor_ndim(t); d++) shape[d] = mm_tensor_dim(t, d);
            mm_st_add(w, name, MM_F32, mm_tensor_ndim(t), shape, mm_tensor_data(t));
        }
    int64_t rng[4], four = 4, g = k->mc.omic_dim, nb = k->o.bins + 1;
    memcpy(rng, rs->rng.s, sizeof rng);
    mm_st_add(w, "mmtrain.rng", MM_I64, 1, &four, rng);
    if (k->omic_mean) {
        mm_st_add(w, "mmtrain.omic_mean", MM_F64, 1, &g, k->omic_mean);
        mm_st_add(w, "mmtrain.omic_sd", MM_F64, 1, &g, k->omic_sd);
    }
    if (k->x_mean) {
        int64_t D = k->mc.in_dim;
        mm_st_add(w, "mmtrain.x_mean", MM_F64, 1, &D, k->x_mean);
        mm_st_add(w, "mmtrain.x_sd", MM_F64, 1, &D, k->x_sd);
    }
    if (k->edges) mm_st_add(w, "mmtrain.bin_edges", MM_F64, 1, &nb, k->edges);
    char buf[4096];
    mm_st_set_metadata(w, "format", "pt");
    mm_model_cfg_format(&k->mc, buf, sizeof buf);
    mm_st_set_metadata(w, "mmtrain.model", buf);
    mt_opts_format(&k->o, buf, sizeof buf);
    mm_st_set_metadata(w, "mmtrain.opts", buf);
    size_t cl = 1;
    for (int i = 0; i < k->nclass; i++) cl += strlen(k->classes[i]) + 1;
    char *cls = mm_calloc(cl, 1);
    for (int i = 0; i < k->nclass; i++) {
        if (i) strcat(cls, "\t");
        strcat(cls, k->classes[i]);
    }
    mm_st_set_metadata(w, "mmtrain.classes", cls);
    free(cls);
    set_meta_int(w, "mmtrain.epoch", rs->epoch);
    set_meta_int(w, "mmtrain.step", mm_params_step(k->p));
    snprintf(buf, sizeof buf, "%.17g", rs->best);
    mm_st_set_metadata(w, "mmtrain.best", buf);
    set_meta_int(w, "mmtrain.best_epoch", rs->best_epoch);
    set_meta_int(w, "mmtrain.bad_epochs", rs->bad);
    set_meta_int(w, "mmtrain.stopped", rs->stopped);
    if (la) {
        set_meta_int(w, "mmtrain.lookahead_count", mm_lookahead_count(la));
        set_meta_int(w, "mmtrain.lookahead_ready", mm_lookahead_ready(la));
    }
    if (mm_st_write_close(w) != 0) mm_die("%s", mm_strerror());
}

static long long meta_int(mm_st *st, const char *path, const char *key)
{
    const char *v = mm_st_metadata(st, key);
    long long x;
    if (!v || mm_parse_int(v, INT64_MIN, INT64_MAX, &x) != 0)
        mm_die("%s: not an mm-train checkpoint (metadata %s)", path, key);
    return x;
}

/* Per column of D-wide rows, over the NB blocks ROWS[i] of NROWS[i] rows:
 * the mean and the population sd (1 where it is 0), into new arrays. */
static void column_stats(const float *const *rows, const int64_t *nrows, int nb, int d,
                         double **mean, double **sd)
{
    double *mu = mm_calloc((size_t)d, sizeof *mu), *ss = mm_calloc((size_t)d, sizeof *ss);
    int64_t nt = 0;
    for (int i = 0; i < nb; i++) {
        for (int64_t t = 0; t < nrows[i]; t++)
            for (int j = 0; j < d; j++) mu[j] += rows[i][t * d + j];
        nt += nrows[i];
    }
    for (int j = 0; j < d; j++) mu[j] = nt ? mu[j] / nt : 0;
    for (int i = 0; i < nb; i++)
        for (int64_t t = 0; t < nrows[i]; t++)
            for (int j = 0; j < d; j++) {
                double v = rows[i][t * d + j] - mu[j];
                ss[j] += v * v;
            }
    for (int j = 0; j < d; j++) {
        double v = nt ? sqrt(ss[j] / nt) : 0;
        ss[j] = v > 0 ? v : 1;
    }
    *mean = mu;
    *sd = ss;
}

/* PREFIX.mean and PREFIX.sd (N f64 each) into *MEAN and *SD, when the
 * checkpoint has them (standardize = train); left NULL otherwise. */
static void read_standardization(mm_st *st, const char *prefix, int64_t n, double **mean,
                                 double **sd)
{
    char mk[64], sk[64];
    snprintf(mk, sizeof mk, "%s_mean", prefix);
    snprintf(sk, sizeof sk, "%s_sd", prefix);
    if (mm_st_find(st, mk) < 0) return;
    *mean = mm_malloc((size_t)n * sizeof(double));
    *sd = mm_malloc((size_t)n * sizeof(double));
    if (mm_st_read(st, mk, MM_F64, 1, &n, *mean) != 0 ||
        mm_st_read(st, sk, MM_F64, 1, &n, *sd) != 0)
        mm_die("%s", mm_st_error(st));
}

static void read_tensor(mm_st *st, const char *path, const char *name, mm_tensor *t)
{
    int64_t shape[MM_MAX_DIMS];
    for (int d = 0; d < mm_tensor_ndim(t); d++) shape[d] = mm_tensor_dim(t, d);
    if (mm_st_read(st, name, MM_F32, mm_tensor_ndim(t), shape, mm_tensor_data(t)) != 0)
        mm_die("%s", mm_st_error(st));
    (void)path;
}

/* Open PATH and build K's model from its recorded config; load the
 * weights (ALL: also the optimizer moments and step). */
static mm_st *ckpt_open(const char *path, mt_ckpt *k, int all)
{
    memset(k, 0, sizeof *k);
    mm_st *st = mm_st_open(path);
    if (!st) mm_die("%s", mm_strerror());
    const char *model = mm_st_metadata(st, "mmtrain.model"), *opts = mm_st_metadata(st, "mmtrain.opts");
    if (!model || !opts) mm_die("%s: not an mm-train checkpoint (no mmtrain.model metadata)", path);
    mt_opts_defaults(&k->o);
    apply_line(opts, &k->o, NULL, path);
    const char *kn = strstr(model, "kind=");
    char kind[32] = "";
    if (kn) sscanf(kn + 5, "%31[^ ]", kind);
    int kid = mm_model_kind_from_name(kind);
    if (kid < 0) mm_die("%s: unknown model kind '%s'", path, kind);
    mm_model_cfg_defaults(&k->mc, (mm_model_kind)kid);
    apply_line(model, NULL, &k->mc, path);
    const char *cls = mm_st_metadata(st, "mmtrain.classes");
    if (cls && *cls) {
        char *s = mm_strdup(cls), *save = NULL;
        for (char *t = strtok_r(s, "\t", &save); t; t = strtok_r(NULL, "\t", &save)) {
            k->classes = mm_realloc(k->classes, (size_t)(k->nclass + 1) * sizeof(char *));
            k->classes[k->nclass++] = mm_strdup(t);
        }
        free(s);
    }
    k->p = mm_params_new(MM_F32);
    k->m = mm_model_new(&k->mc, k->p);
    if (!k->m || mm_params_alloc(k->p) != 0) mm_die("%s: %s", path, mm_strerror());
    for (int i = 0; i < mm_params_n_named(k->p); i++) {
        const char *name;
        mm_tensor *t = mm_params_named(k->p, i, &name);
        if (is_grad(name)) continue;
        if (!all && (strstr(name, ".exp_avg"))) continue;
        read_tensor(st, path, name, t);
    }
    if (all) mm_params_set_step(k->p, meta_int(st, path, "mmtrain.step"));
    read_standardization(st, "mmtrain.omic", k->mc.omic_dim, &k->omic_mean, &k->omic_sd);
    read_standardization(st, "mmtrain.x", k->mc.in_dim, &k->x_mean, &k->x_sd);
    if (mm_st_find(st, "mmtrain.bin_edges") >= 0) {
        int64_t nb = k->o.bins + 1;
        k->edges = mm_malloc((size_t)nb * sizeof(double));
        if (mm_st_read(st, "mmtrain.bin_edges", MM_F64, 1, &nb, k->edges) != 0)
            mm_die("%s", mm_st_error(st));
    }
    char cfg[8192], mb[4096];
    mt_opts_format(&k->o, cfg, sizeof cfg);
    mm_model_cfg_format(&k->mc, mb, sizeof mb);
    size_t l = strlen(cfg) + strlen(mb) + 2;
    k->config = mm_malloc(l);
    snprintf(k->config, l, "%s %s", mb, cfg);
    /* digest of the file */
    FILE *fp = fopen(path, "rb");
    if (!fp) mm_die_errno("%s", path);
    XXH64_state_t *xs = XXH64_createState();
    XXH64_reset(xs, 0);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) XXH64_update(xs, buf, n);
    fclose(fp);
    snprintf(k->digest, sizeof k->digest, "xxh64:%016llx", (unsigned long long)XXH64_digest(xs));
    XXH64_freeState(xs);
    return st;
}

void mt_ckpt_load(const char *path, mt_ckpt *k)
{
    mm_st_close(ckpt_open(path, k, 0));
}

void mt_ckpt_free(mt_ckpt *k)
{
    mm_model_free(k->m);
    mm_params_free(k->p);
    for (int i = 0; i < k->nclass; i++) free(k->classes[i]);
    free(k->classes);
    free(k->omic_mean);
    free(k->x_mean);
    free(k->x_sd);
    free(k->omic_sd);
    free(k->edges);
    free(k->config);
    memset(k, 0, sizeof *k);
}

void mt_ckpt_check(mt_ckpt *k, mt_cohort *c)
{
    if (k->mc.in_dim > 0 && k->mc.in_dim != c->dim)
        mm_die("the checkpoint's model reads %d patch features, the slides have %d%s", k->mc.in_dim,
               c->dim, c->dim ? "" : " (no --slides?)");
    if (k->mc.omic_dim > 0 && k->mc.omic_dim != c->omic_dim)
        mm_die("the checkpoint's model reads %d omics values, the omics stream has %d%s",
               k->mc.omic_dim, c->omic_dim, c->omic_dim ? "" : " (no --omics?)");
    if (k->o.task == MT_SUBTYPE)
        for (int i = 0; i < c->np; i++) {
            mt_patient *p = &c->p[i];
            p->y = -1;
            if (!p->label) continue;
            for (int j = 0; j < k->nclass; j++)
                if (!strcmp(k->classes[j], p->label)) p->y = j;
            if (p->y < 0) mm_die("patient %s: label '%s' is not a class of the checkpoint", p->id, p->label);
        }
}

// ---- the log

static const char *metric_names(const mt_opts *o)
{
    return o->task == MT_SUBTYPE ? "accuracy\tbalanced_accuracy\tf1\tauroc" : "cindex";
}

static void put_metrics(FILE *fp, const mt_opts *o, const mt_metrics *m)
{
    if (o->task == MT_SUBTYPE)
        fprintf(fp, "\t%.17g\t%.17g\t%.17g\t%.17g", m->accuracy, m->balanced_accuracy, m->f1, m->auroc);
    else fprintf(fp, "\t%.17g", m->cindex);
}

/* keep the log's header and the rows of epochs <= EPOCH (a resume) */
static void log_truncate(const char *path, int epoch)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    mm_out *o = mm_out_open(path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) >= 0) {
        long e = strtol(line, NULL, 10);
        if (line[0] == '#' || !strncmp(line, "epoch", 5) || e <= epoch) fputs(line, mm_out_fp(o));
    }
    free(line);
    fclose(fp);
    if (mm_out_close(o, 1) != 0) mm_die("%s", mm_strerror());
}

static double monitored(const mt_opts *o, const mt_metrics *m)
{
    const char *k = o->monitor;
    if (!strcmp(k, "loss")) return -m->loss; /* higher is better below */
    if (!strcmp(k, "accuracy")) return m->accuracy;
    if (!strcmp(k, "balanced_accuracy")) return m->balanced_accuracy;
    if (!strcmp(k, "f1")) return m->f1;
    if (!strcmp(k, "auroc")) return m->auroc;
    return m->cindex;
}

// ---- the fit

int mt_progress_on;

static void mkdir_p(const char *d)
{
    if (mkdir(d, 0777) != 0 && errno != EEXIST) mm_die_errno("%s", d);
}

void mt_fit(const mt_cohort *c, const mt_opts *o_in, const mm_model_cfg *mc_in,
            const int *role, const mt_fit_args *a)
{
    char path[4096], lpath[4096], bpath[4096], tag[32] = "";
    if (a->fold >= 0) snprintf(tag, sizeof tag, "fold %d: ", a->fold);
    mkdir_p(a->outdir);
    snprintf(path, sizeof path, "%s/last.safetensors", a->outdir);
    snprintf(bpath, sizeof bpath, "%s/best.safetensors", a->outdir);
    snprintf(lpath, sizeof lpath, "%s/log.tsv", a->outdir);

    mt_ckpt k;
    runstate rs = {0, NAN, 0, 0, 0, {{0}}};
    mm_st *st = NULL;
    if (a->resume) {
        struct stat sb;
        if (stat(path, &sb) != 0) mm_die("%s: nothing to resume (no last checkpoint)", path);
        st = ckpt_open(path, &k, 1);
        rs.epoch = (int)meta_int(st, path, "mmtrain.epoch");
        const char *b = mm_st_metadata(st, "mmtrain.best");
        rs.best = b ? strtod(b, NULL) : NAN;
        rs.best_epoch = (int)meta_int(st, path, "mmtrain.best_epoch");
        rs.bad = (int)meta_int(st, path, "mmtrain.bad_epochs");
        rs.stopped = (int)meta_int(st, path, "mmtrain.stopped");
        int64_t four = 4, rng[4];
        if (mm_st_read(st, "mmtrain.rng", MM_I64, 1, &four, rng) != 0) mm_die("%s", mm_st_error(st));
        memcpy(rs.rng.s, rng, sizeof rng);
        if (k.nclass != c->nclass && k.o.task == MT_SUBTYPE)
            mm_die("%s: %d classes in the checkpoint, %d in the data", path, k.nclass, c->nclass);
        mm_note(2, "%sresuming %s after epoch %d", tag, path, rs.epoch);
    } else {
        memset(&k, 0, sizeof k);
        k.o = *o_in;
        k.mc = *mc_in;
        k.nclass = c->nclass;
        k.classes = mm_malloc((size_t)(c->nclass + 1) * sizeof(char *));
        for (int i = 0; i < c->nclass; i++) k.classes[i] = mm_strdup(c->classes[i]);
        k.p = mm_params_new(MM_F32);
        k.m = mm_model_new(&k.mc, k.p);
        if (!k.m || mm_params_alloc(k.p) != 0) mm_die("model: %s", mm_strerror());
        if (mm_model_init(k.m, (uint64_t)k.o.seed) != 0) mm_die("model: %s", mm_strerror());
        if (a->init) {
            mt_ckpt init;
            mt_ckpt_load(a->init, &init);
            int ni = mm_params_count(init.p);
            if (ni != mm_params_count(k.p)) mm_die("%s: its model is not this one (--set kind=...?)", a->init);
            for (int i = 0; i < ni; i++) {
                mm_tensor *s = mm_params_get(init.p, i), *d = mm_params_get(k.p, i);
                if (strcmp(mm_params_name(init.p, i), mm_params_name(k.p, i)) ||
                    mm_tensor_numel(s) != mm_tensor_numel(d))
                    mm_die("%s: parameter %s does not fit this model", a->init, mm_params_name(init.p, i));
                memcpy(mm_tensor_data(d), mm_tensor_data(s), (size_t)mm_tensor_numel(s) * sizeof(float));
            }
            mt_ckpt_free(&init);
        }
        mm_rng_seed(&rs.rng, (uint64_t)k.o.seed ^ 0x6d6d2d747261696eULL);
    }
    const mt_opts *o = &k.o;

    /* the patients */
    int *tr = mm_malloc((size_t)(c->np + 1) * sizeof(int)), *va = mm_malloc((size_t)(c->np + 1) * sizeof(int));
    int ntr = 0, nva = 0, skipped = 0;
    for (int i = 0; i < c->np; i++) {
        const mt_patient *p = &c->p[i];
        if (role[i] != MT_TRAIN && role[i] != MT_VAL) continue;
        int usable = o->task == MT_SUBTYPE ? p->y >= 0 : !isnan(p->time) && p->event >= 0;
        if (!usable) { skipped++; continue; }
        if (role[i] == MT_TRAIN) tr[ntr++] = i;
        else va[nva++] = i;
    }
    if (skipped) mm_warn("%s%d patients without a %s left out", tag, skipped,
                         o->task == MT_SUBTYPE ? "label (--label-col?)" : "time and event");
    if (ntr < 2) mm_die("%s%d training patients: too few", tag, ntr);
    if (o->task == MT_SUBTYPE && c->nclass < 2)
        mm_die("%sone class only (%s): nothing to learn (--label-col?)", tag, c->nclass ? c->classes[0] : "none");

    /* bins and standardisation, from the training patients */
    if (!a->resume) {
        if (o->task == MT_SURVIVAL && o->loss == MT_NLL) {
            k.edges = mm_malloc((size_t)(o->bins + 1) * sizeof(double));
            int *all = mm_malloc((size_t)c->np * sizeof(int));
            for (int i = 0; i < c->np; i++) all[i] = i;
            int from_all = !strcmp(o->bins_from, "all");
            if (make_bins(c, from_all ? all : tr, from_all ? c->np : ntr, o->bins, k.edges) != 0)
                mm_die("%sno event among the training patients: no survival bins", tag);
            free(all);
        }
        /* omics, and patch features per dimension over every tile of the
         * training patients (random-weight or unnormalised extractors give
         * features in the thousands, which the MIL models do not train on) */
        if (!strcmp(o->standardize, "train")) {
            const float **rows = mm_malloc((size_t)ntr * sizeof *rows);
            int64_t *nrows = mm_malloc((size_t)ntr * sizeof *nrows);
            if (k.mc.omic_dim > 0) {
                for (int i = 0; i < ntr; i++) {
                    rows[i] = c->p[tr[i]].omic;
                    nrows[i] = 1;
                }
                column_stats(rows, nrows, ntr, k.mc.omic_dim, &k.omic_mean, &k.omic_sd);
            }
            if (k.mc.in_dim > 0) {
                for (int i = 0; i < ntr; i++) {
                    rows[i] = c->p[tr[i]].x;
                    nrows[i] = c->p[tr[i]].n;
                }
                column_stats(rows, nrows, ntr, c->dim, &k.x_mean, &k.x_sd);
            }
            free(rows);
            free(nrows);
        }
    }
    int *ybin = mm_malloc((size_t)c->np * sizeof(int));
    for (int i = 0; i < c->np; i++)
        ybin[i] = k.edges && !isnan(c->p[i].time) ? bin_of(c->p[i].time, k.edges, o->bins) : c->p[i].y;

    /* optimizer */
    int radam = !strcmp(o->optimizer, "radam"), adamw = !strcmp(o->optimizer, "adamw");
    mm_lookahead *la = NULL;
    if (radam) {
        mm_lookahead_opts lo = mm_lookahead_defaults();
        lo.k = o->la_k;
        lo.alpha = o->la_alpha;
        la = mm_lookahead_new(k.p, &lo);
        if (!la) mm_die("%s", mm_strerror());
        if (st) {
            for (int i = 0; i < mm_lookahead_n_named(la); i++) {
                const char *name;
                mm_tensor *t = mm_lookahead_named(la, i, &name);
                if (mm_st_find(st, name) >= 0) read_tensor(st, path, name, t);
            }
            mm_lookahead_set_count(la, meta_int(st, path, "mmtrain.lookahead_count"));
            mm_lookahead_set_ready(la, (int)meta_int(st, path, "mmtrain.lookahead_ready"));
        }
    }
    if (st) mm_st_close(st);
    int cox = o->task == MT_SURVIVAL && o->loss == MT_COX;
    int G = o->batch * o->accum;
    int nsteps = cox ? (ntr / G > 0 ? ntr / G : 1) : (ntr + G - 1) / G;
    if (cox && ntr < 2) mm_die("%sCox needs 2 or more training patients", tag);
    mm_sched sch = {!strcmp(o->schedule, "cosine") ? MM_SCHED_COSINE : MM_SCHED_CONSTANT, o->lr,
                    (int64_t)o->warmup_epochs * nsteps, o->warmup_from,
                    (int64_t)o->epochs * nsteps, o->min_lr};
    mm_cox_norm cn = !strcmp(o->cox_norm, "all") ? MM_COX_MEAN_ALL :
                     !strcmp(o->cox_norm, "events+1") ? MM_COX_EVENTS_PLUS1 : MM_COX_MEAN_EVENTS;
    mm_cox_risk cr = !strcmp(o->cox_risk, "strict") ? MM_COX_STRICT : MM_COX_INCLUSIVE;

    /* the log */
    char cfgline[8192], mline[4096];
    mt_opts_format(o, cfgline, sizeof cfgline);
    mm_model_cfg_format(&k.mc, mline, sizeof mline);
    if (a->resume) log_truncate(lpath, rs.epoch);
    else {
        mm_out *lo = mm_out_open(lpath);
        FILE *fp = mm_out_fp(lo);
        fprintf(fp, "# mm-train %s\n# model: %s\n# train: %s\n# patients: %d train, %d val\n",
                PACKAGE_VERSION, mline, cfgline, ntr, nva);
        const char *mn = metric_names(o);
        char tmn[128] = "", vmn[128] = "";
        for (const char *s = mn; *s; s++) {
            size_t l = strlen(tmn), v = strlen(vmn);
            if (s == mn || s[-1] == '\t') { strcat(tmn, "train_"); strcat(vmn, "val_"); l += 6; v += 4; }
            tmn[l] = *s; tmn[l + 1] = 0;
            vmn[v] = *s; vmn[v + 1] = 0;
        }
        fprintf(fp, "epoch\ttrain_loss\tval_loss\t%s\t%s\tlr\tseconds\n", tmn, vmn);
        if (mm_out_close(lo, 1) != 0) mm_die("%s", mm_strerror());
    }

    int no = n_out_of(o, c->nclass);
    double *tout = mm_malloc((size_t)ntr * (size_t)no * sizeof(double));
    double *vout = mm_malloc((size_t)(nva + 1) * (size_t)no * sizeof(double));
    int *order = mm_malloc((size_t)ntr * sizeof(int));
    mm_ctx *ctx = mm_ctx_new();
    evalspec es = {o, c->nclass, k.edges};
    mm_progress *pg = mm_progress_new(a->fold >= 0 ? "fold" : "training",
                                      (uint64_t)(o->epochs - rs.epoch) * (uint64_t)nsteps);
    uint64_t done_steps = 0;
    double *gt = mm_malloc((size_t)(ntr + 1) * sizeof(double)), *ge = mm_malloc((size_t)(ntr + 1) * sizeof(double));
    while (!rs.stopped && rs.epoch < o->epochs) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int epoch = rs.epoch + 1;
        for (int i = 0; i < ntr; i++) order[i] = tr[i];
        for (int i = ntr - 1; i > 0; i--) {
            int j = (int)mm_rng_below(&rs.rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double lsum = 0, lr = o->lr;
        int nloss = 0;
        for (int s = 0; s < nsteps; s++) {
            int g0 = cox ? (int)((int64_t)ntr * s / nsteps) : s * G;
            int g1 = cox ? (int)((int64_t)ntr * (s + 1) / nsteps) : (g0 + G < ntr ? g0 + G : ntr);
            int gn = g1 - g0;
            mm_params_zero_grad(k.p);
            lr = mm_sched_lr(&sch, mm_params_step(k.p));
            if (cox) {
                int nev = 0;
                for (int i = g0; i < g1; i++) nev += c->p[order[i]].event == 1;
                if (gn < 2)
                    mm_die("%sepoch %d step %d: a Cox group of one patient: the partial likelihood "
                           "is undefined (raise batch x accum, now %d, or use loss = nll)", tag, epoch,
                           s + 1, G);
                if (nev == 0)
                    mm_die("%sepoch %d step %d: a Cox group of %d patients with no event: the partial "
                           "likelihood is undefined (raise batch x accum, now %d, or use loss = nll)",
                           tag, epoch, s + 1, gn, G);
                mm_ctx_reset(ctx);
                mm_tensor **outs = mm_malloc((size_t)gn * sizeof(mm_tensor *));
                for (int i = 0; i < gn; i++) {
                    mm_model_input in;
                    mm_model_output mo;
                    const mt_patient *p = &c->p[order[g0 + i]];
                    if (make_input(ctx, &k, c, p, &in) != 0) mm_die("%s", mm_ctx_error(ctx));
                    in.train = 1;
                    in.seed = mm_rng_next(&rs.rng);
                    if (mm_model_forward(ctx, k.m, &in, &mo) != 0)
                        mm_die("%spatient %s: %s", tag, p->id, mm_strerror());
                    outs[i] = mo.out;
                    gt[i] = p->time;
                    ge[i] = p->event;
                }
                mm_tensor *theta = mm_tensor_concat(ctx, gn, outs, 0);
                mm_tensor *tt = mm_tensor_new1(ctx, MM_F64, gn), *te = mm_tensor_new1(ctx, MM_F64, gn);
                if (tt && te) {
                    mm_tensor_set_f64(tt, gt, gn);
                    mm_tensor_set_f64(te, ge, gn);
                }
                mm_tensor *loss = mm_tensor_cox_nll_ex(ctx, theta, tt, te, cn, cr);
                if (!loss || mm_tensor_backward(ctx, loss) != 0) mm_die("%s%s", tag, mm_ctx_error(ctx));
                lsum += mm_tensor_get1(loss, 0) * gn;
                nloss += gn;
                for (int i = 0; i < gn; i++) {
                    /* train outputs in the epoch's order, mapped back below */
                    tout[(size_t)(g0 + i) * no] = mm_tensor_get1(theta, i);
                }
                free(outs);
            } else {
                for (int i = 0; i < gn; i++) {
                    const mt_patient *p = &c->p[order[g0 + i]];
                    mm_ctx_reset(ctx);
                    mm_model_input in;
                    mm_model_output mo;
                    if (make_input(ctx, &k, c, p, &in) != 0) mm_die("%s", mm_ctx_error(ctx));
                    in.train = 1;
                    in.seed = mm_rng_next(&rs.rng);
                    if (mm_model_forward(ctx, k.m, &in, &mo) != 0)
                        mm_die("%spatient %s: %s", tag, p->id, mm_strerror());
                    mm_tensor *loss;
                    if (o->task == MT_SUBTYPE) {
                        mm_tensor *lab = mm_tensor_new1(ctx, MM_I64, 1);
                        if (lab) ((int64_t *)mm_tensor_data(lab))[0] = p->y;
                        loss = mm_tensor_cross_entropy(ctx, mo.out, lab, o->label_smoothing);
                    } else {
                        mm_tensor *lab = mm_tensor_new1(ctx, MM_I64, 1), *cc = mm_tensor_new1(ctx, MM_F32, 1);
                        if (lab && cc) {
                            ((int64_t *)mm_tensor_data(lab))[0] = ybin[order[g0 + i]];
                            ((float *)mm_tensor_data(cc))[0] = (float)(1 - p->event);
                        }
                        loss = mm_tensor_surv_nll(ctx, mo.out, lab, cc, o->alpha_surv, 1e-7);
                    }
                    mm_tensor *sc = mm_tensor_scale(ctx, loss, 1.0 / gn);
                    if (!sc || mm_tensor_backward(ctx, sc) != 0) mm_die("%s%s", tag, mm_ctx_error(ctx));
                    lsum += mm_tensor_get1(loss, 0);
                    nloss++;
                    for (int j = 0; j < no; j++) tout[(size_t)(g0 + i) * no + j] = mm_tensor_get1(mo.out, j);
                }
            }
            if (o->clip > 0) {
                double gnorm = mm_params_clip_grad_norm(k.p, o->clip);
                if (!isfinite(gnorm)) mm_die("%sepoch %d: the gradient is not finite (lower lr?)", tag, epoch);
            }
            int r;
            if (radam) {
                mm_radam_opts ro = mm_radam_defaults();
                ro.lr = lr; ro.beta1 = o->beta1; ro.beta2 = o->beta2; ro.eps = o->eps;
                ro.weight_decay = o->weight_decay;
                ro.decoupled = 1;
                ro.no_decay_1d = 1;
                r = mm_radam_step(k.p, &ro);
                if (r == 0) mm_lookahead_step(la);
            } else {
                mm_adam_opts ao = {lr, o->beta1, o->beta2, o->eps, o->weight_decay};
                r = adamw ? mm_adamw_step(k.p, &ao) : mm_adam_step(k.p, &ao);
            }
            if (r != 0) mm_die("%s", mm_strerror());
            mm_progress_update(pg, ++done_steps);
        }
        /* metrics */
        mt_metrics mtr, mva;
        metrics_of(&es, c, order, ntr, tout, &mtr);
        mtr.loss = lsum / (nloss ? nloss : 1);
        if (nva) {
            mt_predict(&k, c, va, nva, vout);
            metrics_of(&es, c, va, nva, vout, &mva);
        } else {
            memset(&mva, 0, sizeof mva);
            mva.loss = mva.accuracy = mva.balanced_accuracy = mva.f1 = mva.auroc = mva.cindex = NAN;
        }
        rs.epoch = epoch;
        if (nva) {
            double v = monitored(o, &mva);
            if (!isnan(v) && (isnan(rs.best) || v > rs.best)) {
                rs.best = v;
                rs.best_epoch = epoch;
                rs.bad = 0;
                ckpt_save(bpath, &k, la, &rs);
            } else {
                rs.bad++;
                if (o->patience > 0 && rs.bad >= o->patience) rs.stopped = 1;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        FILE *lf = fopen(lpath, "a");
        if (!lf) mm_die_errno("%s", lpath);
        fprintf(lf, "%d\t%.17g\t%.17g", epoch, mtr.loss, mva.loss);
        put_metrics(lf, o, &mtr);
        put_metrics(lf, o, &mva);
        fprintf(lf, "\t%.17g\t%.6f\n", lr, secs);
        if (fclose(lf) != 0) mm_die_errno("%s", lpath);
        ckpt_save(path, &k, la, &rs);
        mm_note(3, "%sepoch %d: train loss %.6g, val loss %.6g (%.2f s)", tag, epoch, mtr.loss, mva.loss, secs);
        if (rs.stopped) mm_note(2, "%sstopped early after epoch %d (best epoch %d)", tag, epoch, rs.best_epoch);
        if (a->stop_after > 0 && epoch >= a->stop_after) break;
    }
    mm_progress_end(pg);
    free(gt); free(ge);
    mm_ctx_free(ctx);
    mm_lookahead_free(la);
    free(order); free(tout); free(vout); free(tr); free(va); free(ybin);
    mt_ckpt_free(&k);
}
