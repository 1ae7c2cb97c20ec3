/* mm/mil.h: the baseline models mm-train drives (METHODS.md B3-B6, B9, B10,
 * section 6), behind one interface: a config, a model that declares its
 * parameters in an mm_params under the reference code's state_dict names,
 * a seeded initialiser as the reference code does it, and a forward for one
 * bag (one patient) that returns the head's output, the representation
 * under the head and, where the model has one, its attention over patches.
 *
 *   mm_model_cfg cfg;
 *   mm_model_cfg_defaults(&cfg, MM_MODEL_ABMIL);
 *   cfg.head = MM_HEAD_CLASS; cfg.n_classes = 3;       // in_dim 1024 default
 *   mm_params *p = mm_params_new(MM_F32);
 *   mm_model *m = mm_model_new(&cfg, p);               // declares, no data
 *   if (!m || mm_params_alloc(p) || mm_model_init(m, seed)) fail(mm_strerror());
 *   mm_model_input in = {.x = feats, .train = 1, .seed = step_seed};
 *   mm_model_output out;
 *   if (mm_model_forward(ctx, m, &in, &out)) fail(mm_strerror());
 *   loss = mm_tensor_cross_entropy(ctx, out.out, labels, 0.1);
 *
 * A checkpoint is the safetensors of mm_params_named(p): the parameter
 * names are the reference module's, so the weights load into our PyTorch
 * re-implementations (tests/gen/mil_refs.py) and, for the names below, into
 * the reference code:
 *   abmil     PORPOISE PorpoiseAMIL / CLAM Attn_Net_Gated:
 *             attention_net.0.{weight,bias}            Linear(D -> H)
 *             attention_net.3.attention_a.0.*          Linear(H -> A), tanh
 *             attention_net.3.attention_b.0.*          Linear(H -> A), sigmoid
 *             attention_net.3.attention_c.*            Linear(A -> 1)
 *             classifier.*                             Linear(H -> C)
 *             (CLAM_SB calls the head "classifiers".)
 *   transmil  TransMIL: _fc1.0.*, cls_token (1, 1, H), layer1.* and layer2.*
 *             (mm_translayer: norm.*, attn.to_qkv.weight, attn.to_out.0.*,
 *             attn.res_conv.weight), pos_layer.proj{,1,2}.{weight,bias}
 *             (depthwise 7, 5, 3: (H, 1, k, k)), norm.*, _fc2.*
 *   snn       PORPOISE SNN: fc_omic.I.0.* (I = 0..), classifier.*
 *   abmil+snn PORPOISE PorpoiseMMF with fusion='concat': attention_net as
 *             abmil but shifted by one (attention_net.1.*, attention_net.4.*)
 *             when DROPINPUT > 0, since the reference puts Dropout(dropinput)
 *             first in that Sequential; rho.0.*; fc_omic.I.0.*; mm.0.* and
 *             mm.2.*; classifier_mm.*
 *   linear    classifier.*
 *
 * The fusion variant (METHODS.md section 6, PORPOISE MMF with fusion
 * 'concat', chosen over its gated bilinear default for the baseline the
 * issue names): x -> Dropout(dropinput) -> the abmil pooling -> rho =
 * Dropout(ReLU(Linear(H -> A))); omics -> SNN blocks; concat [path, omic]
 * -> ReLU(Linear(A + last omic width -> A)) -> ReLU(Linear(A -> A)) ->
 * classifier_mm. The linear probe reads the mean of the patch features
 * and/or the omics vector, concatenated in that order.
 * Not here: PorpoiseMMF's bilinear and low-rank fusions, CLAM's instance
 * clustering branch, MIRROR's hybrid TransMIL (slices the duplicated pad
 * tokens), TANGLE's ABMIL variant (B5), raw (pre-softmax) attention.
 *
 * Dropout. Training mode (TRAIN 1) draws every dropout mask from the counter
 * RNG of mm_tensor_dropout with a seed per site, mm_model_site_seed(SEED,
 * SITE), so a forward is a pure function of the weights, the inputs and
 * SEED: give each step and bag its own SEED. The sites (MM_MIL_SITE_*) are
 * fixed numbers, so tests/gen/mil_refs.py rebuilds the same masks in numpy.
 * Eval mode (TRAIN 0) has no dropout.
 * SPDX-License-Identifier: MIT */
#ifndef MM_MIL_H
#define MM_MIL_H

#include <stddef.h>
#include <stdint.h>

#include "mm/defs.h"
#include "mm/safetensors.h"
#include "mm/tensor.h"

typedef enum {
    MM_MODEL_ABMIL,     /* gated-attention MIL on patch features (B5) */
    MM_MODEL_TRANSMIL,  /* TransMIL (B4, Nystrom attention B3) */
    MM_MODEL_SNN,       /* self-normalising MLP on an omics vector (B6) */
    MM_MODEL_ABMIL_SNN, /* late fusion by concatenation (PorpoiseMMF concat) */
    MM_MODEL_LINEAR,    /* one Linear on a frozen embedding */
    MM_MODEL_COUNT
} mm_model_kind;

typedef enum {
    MM_HEAD_CLASS, /* N_CLASSES logits: cross-entropy */
    MM_HEAD_SURV,  /* N_CLASSES (4) hazard logits: mm_tensor_surv_nll (B9) */
    MM_HEAD_COX,   /* one risk, higher = worse: mm_tensor_cox_nll (B10) */
    MM_HEAD_COUNT
} mm_head_kind;

/* "abmil", "transmil", "snn", "abmil+snn", "linear"; heads "class",
 * "surv", "cox". _from_name returns -1 for an unknown name. */
const char *mm_model_kind_name(mm_model_kind k);
int mm_model_kind_from_name(const char *name);
const char *mm_head_kind_name(mm_head_kind h);
int mm_head_kind_from_name(const char *name);

#define MM_MIL_MAX_LAYERS 8

typedef struct {
    mm_model_kind kind;
    mm_head_kind head;
    int n_classes;  /* classes (CLASS) or time bins (SURV); COX uses 1 */
    int in_dim;     /* D, patch feature width (1024: CLAM ResNet-50); 0 when
                     * the model reads no patches (snn; linear on omics) */
    int omic_dim;   /* G, omics vector length; 0 when it reads no omics */
    /* abmil, abmil+snn, transmil */
    int hidden;     /* H: first Linear's width (size[1], 512) */
    int attn_dim;   /* A: gated attention width, also rho's and mm's width
                     * in abmil+snn (size[2]: 256 "small", 384 "big") */
    double dropout; /* after fc ReLU, on tanh and sigmoid branches, after
                     * rho (0.25); 0 turns them off (CLAM dropout=False) */
    double dropinput; /* abmil+snn: dropout on the patch features (0.10) */
    /* transmil */
    int heads;      /* 8; head width H / heads */
    int landmarks;  /* H / 2 */
    int pinv_iters; /* 6 (the residual conv kernel is TransMIL's 33) */
    double attn_dropout; /* Nystrom to_out dropout (0.1) */
    int pad_bug;    /* 1: nystrom-attention <= 0.0.9's out[:, :n] (B3) */
    /* snn, abmil+snn omic branch */
    int n_omic_layers;
    int omic_hidden[MM_MIL_MAX_LAYERS];
    double omic_dropout; /* AlphaDropout p of every block (0.25: the first
                          * block takes SNN_Block's default, the same) */
    /* linear */
    double probe_std; /* head init N(0, probe_std) (MIRROR: 0.01) */
} mm_model_cfg;

/* Fill CFG with the reference defaults of KIND (head CLASS, 2 classes, in_dim
 * 1024 for the patch models, omic_dim 0: the caller sets the data sizes):
 *   abmil     H 512, A 256, dropout 0.25 (PorpoiseAMIL / CLAM_SB small)
 *   transmil  H 512, 8 heads, 256 landmarks, pinv 6, attention
 *             dropout 0.1 (TransMIL.py)
 *   snn       omic_hidden 256 x 4, AlphaDropout 0.25 in every block
 *             (PORPOISE model_genomic.py SNN, model_size_omic 'small';
 *             METHODS.md B6 and section 6)
 *   abmil+snn H 512, A 256, dropout 0.25, dropinput 0.10, omic_hidden
 *             256 x 2 (PorpoiseMMF: size_dict_omic 'small' [256, 256])
 *   linear    probe_std 0.01, in_dim 1024 (mean of the patch features) */
void mm_model_cfg_defaults(mm_model_cfg *cfg, mm_model_kind kind);

/* Set one field by its key (the field names above; omic_hidden takes a
 * comma list "256,256", which also sets n_omic_layers; kind and head take
 * the names above): the config-file and --set path of mm-train.
 * @return 0, or -1 (unknown key, bad value) with mm_strerror(). */
int mm_model_cfg_set(mm_model_cfg *cfg, const char *key, const char *value);
/* Every field as "key=value" joined by single spaces (full precision, the
 * keys of mm_model_cfg_set, kind first) into BUF of LEN bytes: for output
 * headers and checkpoint metadata.
 * @return the length it needs (snprintf's contract). */
int mm_model_cfg_format(const mm_model_cfg *cfg, char *buf, size_t len);

typedef struct mm_model mm_model;

/* Check CFG and declare the model's parameters in P (not yet allocated;
 * P's dtype is the model's). The model keeps pointers into P: P must
 * outlive it. Then mm_params_alloc(P) and mm_model_init() or a load.
 * @return the model, or NULL (bad sizes, P allocated, names taken) with
 * the reason in mm_strerror(). */
mm_model *mm_model_new(const mm_model_cfg *cfg, mm_params *p);
void mm_model_free(mm_model *m); /* NULL is a no-op */
const mm_model_cfg *mm_model_config(const mm_model *m);
/* Outputs per bag: n_classes, or 1 for COX. */
int mm_model_n_out(const mm_model *m);

/* Initialise every parameter from one mm_rng seeded with SEED, in
 * declaration order, as the reference code does:
 *   abmil       xavier_normal weights, zero biases (CLAM initialize_weights)
 *   snn         N(0, 1/sqrt(fan_in)) weights, zero biases (init_max_weights)
 *   abmil+snn   path branch, mm and classifier_mm as abmil; fc_omic as snn
 *   transmil    torch's defaults (TransMIL calls no initialiser): Linear and
 *               Conv2d weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 *               (kaiming_uniform a=sqrt 5), LayerNorm 1 and 0, cls_token
 *               N(0, 1)
 *   linear      N(0, probe_std) weight, zero bias (MIRROR's probe)
 * @return 0, or -1 (P not allocated) with mm_strerror(). */
int mm_model_init(mm_model *m, uint64_t seed) MM_RESULT_USED;

/* Load every parameter from ST by its name (the state_dict keys above),
 * checking shapes, converting dtypes (mm_st_read); tensors of ST that are
 * not parameters (optimizer state, other heads) are ignored.
 * @return 0, or -1 (P not allocated, a parameter missing or misshapen)
 * with the reason in mm_strerror(). */
int mm_model_load(mm_model *m, mm_st *st) MM_RESULT_USED;

/* One bag. X: the patient's patch features (N, in_dim), N >= 1, every
 * slide's rows stacked; OMIC: (omic_dim) or (1, omic_dim). Each must be
 * given exactly when the model reads it (in_dim / omic_dim > 0); the dtype
 * is the parameters'. Inputs need no gradient. */
typedef struct {
    mm_tensor *x;
    mm_tensor *omic;
    int train;     /* 1: dropout on (training); 0: eval */
    uint64_t seed; /* dropout seed of this step and bag (TRAIN 1) */
} mm_model_input;

typedef struct {
    /* (1, n_out): class logits, hazard logits (h = sigmoid) or the Cox risk.
     * Rows of several bags concatenate (mm_tensor_concat, dim 0) into the
     * (B, C) / (B, T) / (B, 1) a loss takes. */
    mm_tensor *out;
    mm_tensor *embed; /* (1, E): the vector the head reads */
    mm_tensor *attn;  /* (N): softmax attention over the patches (abmil,
                       * abmil+snn); NULL for the others */
} mm_model_output;

/* Forward in CTX (recorded when grad mode is on: mm_tensor_backward on a
 * loss of OUT->out fills the parameters' gradients).
 * @return 0, or -1 with the reason in mm_strerror() (a missing or
 * misshapen input; a failed op, whose message is also on CTX). */
int mm_model_forward(mm_ctx *ctx, const mm_model *m, const mm_model_input *in,
                     mm_model_output *out) MM_RESULT_USED;

/* Dropout sites: the mask of site S in a forward with seed SEED is
 * mm_tensor_dropout(.., mm_model_site_seed(SEED, S), ..) over the tensor's
 * row-major elements. */
enum {
    MM_MIL_SITE_INPUT = 0,   /* abmil+snn: the patch features */
    MM_MIL_SITE_FC = 1,      /* after attention_net.0 ReLU (N, H) */
    MM_MIL_SITE_ATT_A = 2,   /* tanh branch (N, A) */
    MM_MIL_SITE_ATT_B = 3,   /* sigmoid branch (N, A) */
    MM_MIL_SITE_RHO = 4,     /* abmil+snn rho (1, A) */
    MM_MIL_SITE_OMIC = 8,    /* + I: AlphaDropout of fc_omic.I (1, hidden) */
    MM_MIL_SITE_LAYER = 16   /* + L (0, 1): TransMIL layer{L+1}'s attention
                              * output (1, 1 + side^2, H) after Nystrom's
                              * slice: the same mask law as torch's Dropout
                              * inside to_out, whose pad rows are dropped */
};
/* x = SEED + (SITE + 1) * 0xD1B54A32D192ED03 (mod 2^64); one splitmix64
 * step of x. */
uint64_t mm_model_site_seed(uint64_t seed, int site);

/* Risk from 4-bin (T-bin) hazard logits for a C-index, PORPOISE's and
 * MIRROR's: -sum_t S_t, S = cumprod(1 - sigmoid(logit)). Higher = worse. */
double mm_surv_risk(const double *logits, int t);

#endif
