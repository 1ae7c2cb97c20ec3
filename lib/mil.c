/* mil.c: the MIL and omics baselines of mm/mil.h (ABMIL, TransMIL, SNN,
 * ABMIL+SNN concat fusion, linear probe) composed from mm/tensor.h ops and
 * the Nystrom TransLayer of mm/nn.h; the backward is the tape's.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/mil.h"
#include "mm/nn.h"
#include "mm/optim.h"
#include "mm/rng.h"
#include "mm/safetensors.h"

// ---- names -----------------------------------------------------------------

static const char *const kind_names[MM_MODEL_COUNT] = {
    "abmil", "transmil", "snn", "abmil+snn", "linear"};
static const char *const head_names[MM_HEAD_COUNT] = {"class", "surv", "cox"};

const char *mm_model_kind_name(mm_model_kind k)
{
    return (unsigned)k < MM_MODEL_COUNT ? kind_names[k] : "?";
}

int mm_model_kind_from_name(const char *name)
{
    for (int i = 0; name && i < MM_MODEL_COUNT; i++)
        if (strcmp(name, kind_names[i]) == 0) return i;
    return -1;
}

const char *mm_head_kind_name(mm_head_kind h)
{
    return (unsigned)h < MM_HEAD_COUNT ? head_names[h] : "?";
}

int mm_head_kind_from_name(const char *name)
{
    for (int i = 0; name && i < MM_HEAD_COUNT; i++)
        if (strcmp(name, head_names[i]) == 0) return i;
    return -1;
}

// ---- config ----------------------------------------------------------------

void mm_model_cfg_defaults(mm_model_cfg *c, mm_model_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->head = MM_HEAD_CLASS;
    c->n_classes = 2;
    c->in_dim = kind == MM_MODEL_SNN ? 0 : 1024;
    c->hidden = 512;
    c->attn_dim = 256;
    c->dropout = 0.25;
    c->dropinput = kind == MM_MODEL_ABMIL_SNN ? 0.10 : 0;
    c->heads = 8;
    c->landmarks = 256;
    c->pinv_iters = 6;
    c->attn_dropout = 0.1;
    c->n_omic_layers = kind == MM_MODEL_ABMIL_SNN ? 2 : 4;
    for (int i = 0; i < c->n_omic_layers; i++) c->omic_hidden[i] = 256;
    c->omic_dropout = 0.25;
    c->probe_std = 0.01;
}

typedef enum { K_INT, K_DBL, K_KIND, K_HEAD, K_LIST } key_type;
typedef struct {
    const char *key;
    key_type type;
    size_t off;
} cfg_key;

#define KEY(name, type) {#name, type, offsetof(mm_model_cfg, name)}
static const cfg_key cfg_keys[] = {
    KEY(kind, K_KIND),          KEY(head, K_HEAD),
    KEY(n_classes, K_INT),      KEY(in_dim, K_INT),
    KEY(omic_dim, K_INT),       KEY(hidden, K_INT),
    KEY(attn_dim, K_INT),       KEY(dropout, K_DBL),
    KEY(dropinput, K_DBL),      KEY(heads, K_INT),
    KEY(landmarks, K_INT),      KEY(pinv_iters, K_INT),
    KEY(attn_dropout, K_DBL),
    KEY(pad_bug, K_INT),        KEY(omic_hidden, K_LIST),
    KEY(omic_dropout, K_DBL),   KEY(probe_std, K_DBL),
};
#undef KEY
#define N_KEYS (int)(sizeof cfg_keys / sizeof cfg_keys[0])

static int parse_int(const char *s, int *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < -2147483647L || x > 2147483647L)
        return -1;
    *v = (int)x;
    return 0;
}

int mm_model_cfg_set(mm_model_cfg *c, const char *key, const char *value)
{
    for (int i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (strcmp(key, k->key)) continue;
        void *f = (char *)c + k->off;
        int v;
        switch (k->type) {
        case K_INT:
            if (parse_int(value, &v)) break;
            *(int *)f = v;
            return 0;
        case K_DBL: {
            char *end;
            double d = strtod(value, &end);
            if (end == value || *end || !isfinite(d)) break;
            *(double *)f = d;
            return 0;
        }
        case K_KIND:
            if ((v = mm_model_kind_from_name(value)) < 0) break;
            c->kind = (mm_model_kind)v;
            return 0;
        case K_HEAD:
            if ((v = mm_head_kind_from_name(value)) < 0) break;
            c->head = (mm_head_kind)v;
            return 0;
        case K_LIST: {
            int h[MM_MIL_MAX_LAYERS], n = 0;
            const char *s = value;
            char buf[32];
            while (*s && n < MM_MIL_MAX_LAYERS) {
                size_t len = strcspn(s, ",");
                if (len == 0 || len >= sizeof buf) break;
                memcpy(buf, s, len);
                buf[len] = 0;
                if (parse_int(buf, &h[n]) || h[n] < 1) break;
                n++;
                s += len;
                if (*s == ',') s++;
                else break;
            }
            if (*s || n == 0) break;
            c->n_omic_layers = n;
            memcpy(c->omic_hidden, h, (size_t)n * sizeof *h);
            return 0;
        }
        }
        mm__set_error("model config: %s: bad value '%s'", key, value);
        return -1;
    }
    mm__set_error("model config: unknown key '%s'", key);
    return -1;
}

int mm_model_cfg_format(const mm_model_cfg *c, char *buf, size_t len)
{
    size_t need = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        const void *f = (const char *)c + k->off;
        char val[160];
        switch (k->type) {
        case K_INT: snprintf(val, sizeof val, "%d", *(const int *)f); break;
        case K_DBL: {
            /* the shortest of %.15g / %.17g that reads back exactly */
            double d = *(const double *)f;
            snprintf(val, sizeof val, "%.15g", d);
            if (strtod(val, NULL) != d) snprintf(val, sizeof val, "%.17g", d);
            break;
        }
        case K_KIND: snprintf(val, sizeof val, "%s", mm_model_kind_name(c->kind)); break;
        case K_HEAD: snprintf(val, sizeof val, "%s", mm_head_kind_name(c->head)); break;
        case K_LIST: {
            size_t o = 0;
            val[0] = 0;
            for (int j = 0; j < c->n_omic_layers && j < MM_MIL_MAX_LAYERS; j++)
                o += (size_t)snprintf(val + o, sizeof val - o, "%s%d",
                                      j ? "," : "", c->omic_hidden[j]);
            break;
        }
        }
        int n = snprintf(need < len ? buf + need : NULL,
                         need < len ? len - need : 0, "%s%s=%s", i ? " " : "",
                         k->key, val);
        need += (size_t)n;
    }
    if (len && need >= len) buf[len - 1] = 0;
    return (int)need;
}

/* Reason CFG cannot build a model, or NULL. */
static const char *cfg_check(const mm_model_cfg *c, char *msg, size_t n)
{
    int k = c->kind;
    int path = k == MM_MODEL_ABMIL || k == MM_MODEL_TRANSMIL ||
               k == MM_MODEL_ABMIL_SNN;
    int omic = k == MM_MODEL_SNN || k == MM_MODEL_ABMIL_SNN;
    if ((unsigned)k >= MM_MODEL_COUNT) return "unknown model kind";
    if ((unsigned)c->head >= MM_HEAD_COUNT) return "unknown head";
    if (c->head != MM_HEAD_COX && c->n_classes < 1)
        return "n_classes must be >= 1";
    if (c->in_dim < 0 || c->omic_dim < 0) return "negative input size";
    if (path && c->in_dim < 1) return "in_dim (patch feature width) not set";
    if (omic && c->omic_dim < 1) return "omic_dim (omics length) not set";
    if (k == MM_MODEL_SNN && c->in_dim)
        return "snn reads no patch features (in_dim must be 0)";
    if ((k == MM_MODEL_ABMIL || k == MM_MODEL_TRANSMIL) && c->omic_dim)
        return "this model reads no omics (omic_dim must be 0)";
    if (k == MM_MODEL_LINEAR && c->in_dim + c->omic_dim < 1)
        return "linear needs in_dim or omic_dim";
    if (path && c->hidden < 1) return "hidden must be >= 1";
    if ((k == MM_MODEL_ABMIL || k == MM_MODEL_ABMIL_SNN) && c->attn_dim < 1)
        return "attn_dim must be >= 1";
    if (omic && (c->n_omic_layers < 1 || c->n_omic_layers > MM_MIL_MAX_LAYERS))
        return "n_omic_layers outside [1, 8]";
    for (int i = 0; omic && i < c->n_omic_layers; i++)
        if (c->omic_hidden[i] < 1) return "omic_hidden entries must be >= 1";
    double ps[] = {c->dropout, c->dropinput, c->attn_dropout, c->omic_dropout};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (!(ps[i] >= 0 && ps[i] < 1)) return "a dropout p outside [0, 1)";
    if (k == MM_MODEL_TRANSMIL) {
        if (c->heads < 1 || c->hidden % c->heads) {
            snprintf(msg, n, "hidden %d is not a multiple of heads %d",
                     c->hidden, c->heads);
            return msg;
        }
        if (c->landmarks < 1 || c->pinv_iters < 0)
            return "bad landmarks or pinv_iters";
    }
    if (k == MM_MODEL_LINEAR && !(c->probe_std > 0)) return "probe_std must be > 0";
    return NULL;
}

// ---- the model -------------------------------------------------------------

typedef enum {
    INIT_XAVIER, INIT_SNN, INIT_TORCH_W, INIT_TORCH_B, INIT_ZERO, INIT_ONE,
    INIT_NORMAL
} init_rule;

#define MAX_PARAMS 64

typedef struct {
    mm_tensor *w, *b;
} linear;

struct mm_model {
    mm_model_cfg cfg;
    mm_params *p;
    int n_out;
    /* declaration order and init rule of every parameter */
    int n_decl;
    mm_tensor *decl[MAX_PARAMS];
    init_rule rule[MAX_PARAMS];
    mm_tensor *fan[MAX_PARAMS]; /* INIT_TORCH_B: its weight */
    double std[MAX_PARAMS];     /* INIT_NORMAL */
    /* abmil path (also abmil+snn) */
    linear fc, att_a, att_b, att_c, rho;
    /* omic branch */
    linear omic[MM_MIL_MAX_LAYERS];
    /* fusion */
    linear mm1, mm2;
    /* transmil */
    mm_tensor *cls;
    mm_translayer layer[2];
    mm_tensor *ppeg_w[3], *ppeg_b[3];
    mm_tensor *norm_w, *norm_b;
    linear head;
};

static mm_tensor *decl(mm_model *m, init_rule r, mm_tensor *fan, int nd,
                       const int64_t *shape, const char *fmt, ...)
    MM_PRINTF(6, 7);
static mm_tensor *decl(mm_model *m, init_rule r, mm_tensor *fan, int nd,
                       const int64_t *shape, const char *fmt, ...)
{
    char name[MM_NN_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    MM_ASSERT(m->n_decl < MAX_PARAMS);
    mm_tensor *t = mm_params_add(m->p, name, nd, shape);
    if (!t) return NULL;
    m->decl[m->n_decl] = t;
    m->rule[m->n_decl] = r;
    m->fan[m->n_decl] = fan;
    m->std[m->n_decl] = 1;
    m->n_decl++;
    return t;
}

/* A Linear(IN -> OUT) named PREFIX.weight / PREFIX.bias: weight init WR,
 * bias zero (or torch's uniform when WR is INIT_TORCH_W). */
static int decl_linear(mm_model *m, linear *l, init_rule wr, int in, int out,
                       const char *prefix)
{
    l->w = decl(m, wr, NULL, 2, (int64_t[]){out, in}, "%s.weight", prefix);
    if (!l->w) return -1;
    l->b = decl(m, wr == INIT_TORCH_W ? INIT_TORCH_B : INIT_ZERO, l->w, 1,
                (int64_t[]){out}, "%s.bias", prefix);
    return l->b ? 0 : -1;
}

/* abmil's attention_net at Sequential offset OFF (0, or 1 behind a
 * Dropout(dropinput) in abmil+snn). */
static int decl_attention_net(mm_model *m, int off)
{
    const mm_model_cfg *c = &m->cfg;
    char pre[64];
    snprintf(pre, sizeof pre, "attention_net.%d", off);
    if (decl_linear(m, &m->fc, INIT_XAVIER, c->in_dim, c->hidden, pre)) return -1;
    snprintf(pre, sizeof pre, "attention_net.%d.attention_a.0", off + 3);
    if (decl_linear(m, &m->att_a, INIT_XAVIER, c->hidden, c->attn_dim, pre))
        return -1;
    snprintf(pre, sizeof pre, "attention_net.%d.attention_b.0", off + 3);
    if (decl_linear(m, &m->att_b, INIT_XAVIER, c->hidden, c->attn_dim, pre))
        return -1;
    snprintf(pre, sizeof pre, "attention_net.%d.attention_c", off + 3);
    return decl_linear(m, &m->att_c, INIT_XAVIER, c->attn_dim, 1, pre);
}

static int decl_omic(mm_model *m)
{
    const mm_model_cfg *c = &m->cfg;
    char pre[64];
    for (int i = 0; i < c->n_omic_layers; i++) {
        snprintf(pre, sizeof pre, "fc_omic.%d.0", i);
        if (decl_linear(m, &m->omic[i], INIT_SNN,
                        i ? c->omic_hidden[i - 1] : c->omic_dim,
                        c->omic_hidden[i], pre))
            return -1;
    }
    return 0;
}

/* TransLayer PREFIX with TransMIL's torch-default init rules recorded. */
static int decl_translayer(mm_model *m, mm_translayer *t, const char *prefix)
{
    const mm_model_cfg *c = &m->cfg;
    int before = mm_params_count(m->p);
    if (mm_translayer_init(t, m->p, prefix, c->hidden, c->heads, c->landmarks,
                           c->pinv_iters))
        return -1;
    for (int i = before; i < mm_params_count(m->p); i++) {
        mm_tensor *x = mm_params_get(m->p, i);
        const char *name = mm_params_name(m->p, i);
        size_t len = strlen(name);
        init_rule r = INIT_TORCH_W;
        mm_tensor *fan = NULL;
        if (strstr(name, ".norm.")) {
            r = len > 5 && strcmp(name + len - 5, ".bias") == 0 ? INIT_ZERO
                                                                 : INIT_ONE;
        } else if (len > 5 && strcmp(name + len - 5, ".bias") == 0) {
            r = INIT_TORCH_B;
            fan = t->attn.out_w;
        }
        MM_ASSERT(m->n_decl < MAX_PARAMS);
        m->decl[m->n_decl] = x;
        m->rule[m->n_decl] = r;
        m->fan[m->n_decl] = fan;
        m->std[m->n_decl] = 1;
        m->n_decl++;
    }
    return 0;
}

static int declare(mm_model *m)
{
    const mm_model_cfg *c = &m->cfg;
    int n = m->n_out;
    switch (c->kind) {
    case MM_MODEL_ABMIL:
        if (decl_attention_net(m, 0)) return -1;
        return decl_linear(m, &m->head, INIT_XAVIER, c->hidden, n, "classifier");
    case MM_MODEL_SNN: {
        if (decl_omic(m)) return -1;
        return decl_linear(m, &m->head, INIT_SNN,
                           c->omic_hidden[c->n_omic_layers - 1], n, "classifier");
    }
    case MM_MODEL_ABMIL_SNN: {
        if (decl_attention_net(m, c->dropinput > 0)) return -1;
        if (decl_linear(m, &m->rho, INIT_XAVIER, c->hidden, c->attn_dim, "rho.0"))
            return -1;
        if (decl_omic(m)) return -1;
        int cat = c->attn_dim + c->omic_hidden[c->n_omic_layers - 1];
        if (decl_linear(m, &m->mm1, INIT_XAVIER, cat, c->attn_dim, "mm.0") ||
            decl_linear(m, &m->mm2, INIT_XAVIER, c->attn_dim, c->attn_dim, "mm.2"))
            return -1;
        return decl_linear(m, &m->head, INIT_XAVIER, c->attn_dim, n,
                           "classifier_mm");
    }
    case MM_MODEL_LINEAR:
        m->head.w = decl(m, INIT_NORMAL, NULL, 2,
                         (int64_t[]){n, c->in_dim + c->omic_dim},
                         "classifier.weight");
        if (!m->head.w) return -1;
        m->std[m->n_decl - 1] = c->probe_std;
        m->head.b = decl(m, INIT_ZERO, NULL, 1, (int64_t[]){n}, "classifier.bias");
        return m->head.b ? 0 : -1;
    case MM_MODEL_TRANSMIL: {
        int64_t h = c->hidden;
        if (decl_linear(m, &m->fc, INIT_TORCH_W, c->in_dim, c->hidden, "_fc1.0"))
            return -1;
        if (!(m->cls = decl(m, INIT_NORMAL, NULL, 3, (int64_t[]){1, 1, h},
                            "cls_token")))
            return -1;
        static const int ks[3] = {7, 5, 3};
        static const char *const pn[3] = {"proj", "proj1", "proj2"};
        if (decl_translayer(m, &m->layer[0], "layer1")) return -1;
        for (int i = 0; i < 3; i++) {
            m->ppeg_w[i] = decl(m, INIT_TORCH_W, NULL, 4,
                                (int64_t[]){h, 1, ks[i], ks[i]},
                                "pos_layer.%s.weight", pn[i]);
            if (!m->ppeg_w[i]) return -1;
            m->ppeg_b[i] = decl(m, INIT_TORCH_B, m->ppeg_w[i], 1,
                                (int64_t[]){h}, "pos_layer.%s.bias", pn[i]);
            if (!m->ppeg_b[i]) return -1;
        }
        if (decl_translayer(m, &m->layer[1], "layer2")) return -1;
        if (!(m->norm_w = decl(m, INIT_ONE, NULL, 1, (int64_t[]){h}, "norm.weight")) ||
            !(m->norm_b = decl(m, INIT_ZERO, NULL, 1, (int64_t[]){h}, "norm.bias")))
            return -1;
        return decl_linear(m, &m->head, INIT_TORCH_W, c->hidden, n, "_fc2");
    }
    default:
        return -1;
    }
}

mm_model *mm_model_new(const mm_model_cfg *cfg, mm_params *p)
{
    char msg[128];
    const char *why = cfg_check(cfg, msg, sizeof msg);
    if (why) {
        mm__set_error("model %s: %s", mm_model_kind_name(cfg->kind), why);
        return NULL;
    }
    mm_model *m = mm_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->p = p;
    m->n_out = cfg->head == MM_HEAD_COX ? 1 : cfg->n_classes;
    if (declare(m)) {
        free(m);
        return NULL;
    }
    for (int l = 0; l < 2; l++) m->layer[l].attn.pad_bug = cfg->pad_bug;
    return m;
}

void mm_model_free(mm_model *m) { free(m); }

const mm_model_cfg *mm_model_config(const mm_model *m) { return &m->cfg; }

int mm_model_n_out(const mm_model *m) { return m->n_out; }

int mm_model_init(mm_model *m, uint64_t seed)
{
    if (m->n_decl && !mm_tensor_data(m->decl[0])) {
        mm__set_error("model init: parameters not allocated (mm_params_alloc)");
        return -1;
    }
    mm_rng g;
    mm_rng_seed(&g, seed);
    for (int i = 0; i < m->n_decl; i++) {
        mm_tensor *t = m->decl[i];
        int64_t fin, fout;
        int rc = 0;
        switch (m->rule[i]) {
        case INIT_XAVIER: rc = mm_init_xavier_normal(t, &g, 1); break;
        case INIT_SNN: rc = mm_init_snn(t, &g); break;
        case INIT_TORCH_W:
        case INIT_TORCH_B: {
            mm_tensor *w = m->rule[i] == INIT_TORCH_W ? t : m->fan[i];
            rc = mm_init_fans(w, &fin, &fout);
            double bound = rc ? 0 : 1 / sqrt((double)fin);
            if (!rc) rc = mm_init_uniform(t, &g, -bound, bound);
            break;
        }
        case INIT_ZERO: rc = mm_init_constant(t, 0); break;
        case INIT_ONE: rc = mm_init_constant(t, 1); break;
        case INIT_NORMAL: rc = mm_init_normal(t, &g, 0, m->std[i]); break;
        }
        if (rc) return -1;
    }
    return 0;
}

int mm_model_load(mm_model *m, mm_st *st)
{
    for (int i = 0; i < mm_params_count(m->p); i++) {
        mm_tensor *t = mm_params_get(m->p, i);
        int64_t shape[MM_MAX_DIMS];
        int nd = mm_tensor_ndim(t);
        for (int d = 0; d < nd; d++) shape[d] = mm_tensor_dim(t, d);
        void *dst = mm_tensor_data(t);
        if (!dst) {
            mm__set_error("model load: parameters not allocated (mm_params_alloc)");
            return -1;
        }
        if (mm_st_read(st, mm_params_name(m->p, i), mm_tensor_dtype(t), nd, shape,
                       dst))
            return -1; /* mm_st_read set mm_strerror() */
    }
    return 0;
}

// ---- forward ---------------------------------------------------------------

uint64_t mm_model_site_seed(uint64_t seed, int site)
{
    uint64_t x = seed + (uint64_t)(site + 1) * UINT64_C(0xD1B54A32D192ED03);
    return mm_splitmix64(&x);
}

double mm_surv_risk(const double *logits, int t)
{
    double s = 1, risk = 0;
    for (int i = 0; i < t; i++) {
        s *= 1 - 1 / (1 + exp(-logits[i]));
        risk -= s;
    }
    return risk;
}

static mm_tensor *lin(mm_ctx *ctx, mm_tensor *x, const linear *l)
{
    return mm_tensor_linear(ctx, x, l->w, l->b);
}

static mm_tensor *drop(mm_ctx *ctx, mm_tensor *x, double p,
                       const mm_model_input *in, int site)
{
    return mm_tensor_dropout(ctx, x, p, mm_model_site_seed(in->seed, site),
                             in->train);
}

/* Gated attention pooling: x (N, D) -> M (1, H); *ATTN (N). */
static mm_tensor *abmil_pool(mm_ctx *ctx, const mm_model *m, mm_tensor *x,
                             const mm_model_input *in, mm_tensor **attn)
{
    const mm_model_cfg *c = &m->cfg;
    mm_tensor *h = mm_tensor_relu(ctx, lin(ctx, x, &m->fc));
    h = drop(ctx, h, c->dropout, in, MM_MIL_SITE_FC);
    mm_tensor *a = mm_tensor_tanh(ctx, lin(ctx, h, &m->att_a));
    a = drop(ctx, a, c->dropout, in, MM_MIL_SITE_ATT_A);
    mm_tensor *b = mm_tensor_sigmoid(ctx, lin(ctx, h, &m->att_b));
    b = drop(ctx, b, c->dropout, in, MM_MIL_SITE_ATT_B);
    mm_tensor *s = lin(ctx, mm_tensor_mul(ctx, a, b), &m->att_c); /* (N, 1) */
    s = mm_tensor_softmax_axis(ctx, s, 0);
    if (attn && s) *attn = mm_tensor_reshape(ctx, s, 1, (int64_t[]){-1});
    return mm_tensor_matmul(ctx, s, h, 1, 0); /* (1, H) */
}

/* SNN blocks on omic (1, G) -> (1, hidden[-1]). */
static mm_tensor *snn(mm_ctx *ctx, const mm_model *m, mm_tensor *v,
                      const mm_model_input *in)
{
    const mm_model_cfg *c = &m->cfg;
    for (int i = 0; i < c->n_omic_layers; i++) {
        v = mm_tensor_elu(ctx, lin(ctx, v, &m->omic[i]), 1.0);
        v = mm_tensor_alpha_dropout(ctx, v, c->omic_dropout,
                                    mm_model_site_seed(in->seed,
                                                       MM_MIL_SITE_OMIC + i),
                                    in->train);
    }
    return v;
}

/* TransLayer with TransMIL's to_out dropout: x + drop(attn(norm(x))),
 * all rows of x (N, 0) or the first NR. The dropout of the first NR rows
 * draws the masks of the whole output's first NR rows. */
static mm_tensor *translayer(mm_ctx *ctx, const mm_model *m, int l,
                             mm_tensor *x, int64_t nr,
                             const mm_model_input *in)
{
    const mm_translayer *t = &m->layer[l];
    if (!x) return NULL;
    mm_tensor *h = mm_tensor_layernorm(ctx, x, t->norm_w, t->norm_b, t->eps);
    if (nr > 0) {
        h = mm_nystrom_forward_rows(ctx, &t->attn, h, 0, nr);
        x = mm_tensor_slice(ctx, x, 1, 0, nr);
    } else {
        h = mm_nystrom_forward(ctx, &t->attn, h);
    }
    h = drop(ctx, h, m->cfg.attn_dropout, in, MM_MIL_SITE_LAYER + l);
    return mm_tensor_add(ctx, x, h);
}

/* PPEG on x (1, 1 + H W, C): cls kept, the rest as a (1, C, H, W) image
 * through depthwise 7, 5, 3 convs plus identity. */
static mm_tensor *ppeg(mm_ctx *ctx, const mm_model *m, mm_tensor *x,
                       int64_t hh, int64_t ww)
{
    if (!x) return NULL;
    int64_t c = m->cfg.hidden;
    mm_tensor *cls = mm_tensor_slice(ctx, x, 1, 0, 1);
    mm_tensor *f = mm_tensor_slice(ctx, x, 1, 1, hh * ww);
    f = mm_tensor_reshape(ctx, mm_tensor_transpose(ctx, f, 1, 2), 4,
                          (int64_t[]){1, c, hh, ww});
    mm_tensor *y[3];
    for (int i = 0; i < 3; i++) {
        int64_t k = mm_tensor_dim(m->ppeg_w[i], 2);
        mm_tensor *w = mm_tensor_reshape(ctx, m->ppeg_w[i], 3,
                                         (int64_t[]){c, k, k});
        y[i] = mm_tensor_conv2d_dw(ctx, f, w, m->ppeg_b[i]);
    }
    /* torch's order: proj(x) + x + proj1(x) + proj2(x) */
    mm_tensor *s = mm_tensor_add(ctx, mm_tensor_add(ctx, mm_tensor_add(ctx, y[0], f),
                                                    y[1]), y[2]);
    s = mm_tensor_reshape(ctx, s, 3, (int64_t[]){1, c, hh * ww});
    s = mm_tensor_transpose(ctx, s, 1, 2);
    return mm_tensor_concat(ctx, 2, (mm_tensor *[]){cls, s}, 1);
}

static mm_tensor *transmil(mm_ctx *ctx, const mm_model *m, mm_tensor *x,
                           const mm_model_input *in)
{
    int64_t n = mm_tensor_dim(x, 0), c = m->cfg.hidden;
    mm_tensor *h = mm_tensor_relu(ctx, lin(ctx, x, &m->fc));
    h = mm_tensor_reshape(ctx, h, 3, (int64_t[]){1, n, c});
    /* square padding by repeating the first ADD tokens */
    int64_t side = (int64_t)ceil(sqrt((double)n));
    while (side * side < n) side++;
    while (side > 1 && (side - 1) * (side - 1) >= n) side--;
    int64_t add = side * side - n;
    if (add > 0)
        h = mm_tensor_concat(ctx, 2,
                             (mm_tensor *[]){h, mm_tensor_slice(ctx, h, 1, 0, add)},
                             1);
    h = mm_tensor_concat(ctx, 2, (mm_tensor *[]){m->cls, h}, 1);
    h = translayer(ctx, m, 0, h, 0, in);
    h = ppeg(ctx, m, h, side, side);
    /* only the cls row goes on: the last layer and norm compute it alone */
    h = translayer(ctx, m, 1, h, 1, in);
    h = mm_tensor_layernorm(ctx, h, m->norm_w, m->norm_b, 1e-5);
    return mm_tensor_reshape(ctx, h, 2, (int64_t[]){1, c});
}

static int check_input(const char *what, mm_tensor *t, int want, int dim,
                       mm_dtype dt, int bag)
{
    if (!want) {
        if (t) {
            mm__set_error("model: %s given to a model that reads none", what);
            return -1;
        }
        return 0;
    }
    if (!t) {
        mm__set_error("model: no %s input", what);
        return -1;
    }
    int nd = mm_tensor_ndim(t);
    int good = bag ? nd == 2 && mm_tensor_dim(t, 0) >= 1
                   : nd == 1 || (nd == 2 && mm_tensor_dim(t, 0) == 1);
    if (!good || mm_tensor_dim(t, -1) != dim) {
        mm__set_error("model: %s input must be %s%d), got %d-D with last "
                      "size %lld", what, bag ? "(N, " : "(", dim, nd,
                      (long long)mm_tensor_dim(t, -1));
        return -1;
    }
    if (mm_tensor_dtype(t) != dt) {
        mm__set_error("model: %s input is %s, the model %s", what,
                      mm_dtype_name(mm_tensor_dtype(t)), mm_dtype_name(dt));
        return -1;
    }
    return 0;
}

int mm_model_forward(mm_ctx *ctx, const mm_model *m, const mm_model_input *in,
                     mm_model_output *out)
{
    const mm_model_cfg *c = &m->cfg;
    memset(out, 0, sizeof *out);
    mm_dtype dt = mm_tensor_dtype(m->head.w);
    if (check_input("patch", in->x, c->in_dim > 0, c->in_dim, dt, 1) ||
        check_input("omics", in->omic, c->omic_dim > 0, c->omic_dim, dt, 0))
        return -1;
    mm_tensor *omic = in->omic
                          ? mm_tensor_reshape(ctx, in->omic, 2,
                                              (int64_t[]){1, c->omic_dim})
                          : NULL;
    mm_tensor *e = NULL, *x = in->x;
    switch (c->kind) {
    case MM_MODEL_ABMIL:
        e = abmil_pool(ctx, m, x, in, &out->attn);
        break;
    case MM_MODEL_SNN:
        e = snn(ctx, m, omic, in);
        break;
    case MM_MODEL_ABMIL_SNN: {
        x = drop(ctx, x, c->dropinput, in, MM_MIL_SITE_INPUT);
        mm_tensor *hp = abmil_pool(ctx, m, x, in, &out->attn);
        hp = drop(ctx, mm_tensor_relu(ctx, lin(ctx, hp, &m->rho)), c->dropout,
                  in, MM_MIL_SITE_RHO);
        mm_tensor *ho = snn(ctx, m, omic, in);
        e = mm_tensor_concat(ctx, 2, (mm_tensor *[]){hp, ho}, 1);
        e = mm_tensor_relu(ctx, lin(ctx, e, &m->mm1));
        e = mm_tensor_relu(ctx, lin(ctx, e, &m->mm2));
        break;
    }
    case MM_MODEL_LINEAR: {
        mm_tensor *parts[2];
        int np = 0;
        if (x) parts[np++] = mm_tensor_mean(ctx, x, 0, 1);
        if (omic) parts[np++] = omic;
        e = np == 1 ? parts[0] : mm_tensor_concat(ctx, np, parts, 1);
        break;
    }
    case MM_MODEL_TRANSMIL:
        e = transmil(ctx, m, x, in);
        break;
    default:
        break;
    }
    out->embed = e;
    out->out = lin(ctx, e, &m->head);
    if (!out->out) {
        const char *err = mm_ctx_error(ctx);
        mm__set_error("model %s forward: %s", mm_model_kind_name(c->kind),
                      err ? err : "failed");
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}
