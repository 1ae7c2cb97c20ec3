/* mm/optim.h: what a trainer needs around mm_params besides Adam: RAdam,
 * the Lookahead wrapper, gradient-norm clipping and accumulation, learning-
 * rate schedules, and seeded weight initialisers. Built on the public API
 * of mm/tensor.h only; CPU tensors (host data) only. Not a trainer: nothing
 * here runs a loop, reads a config or saves a file.
 *
 * Determinism: every update is elementwise (threads split independent
 * elements); every sum (the gradient norm) runs in one thread in parameter
 * order; the initialisers draw from one seeded generator in the tensor's
 * logical (row-major) order. Same seed, same libm -> same bits.
 * SPDX-License-Identifier: MIT */
#ifndef MM_OPTIM_H
#define MM_OPTIM_H

#include <stdint.h>

#include "mm/defs.h"
#include "mm/rng.h"
#include "mm/tensor.h"

// ---- RAdam -----------------------------------------------------------------

/* torch.optim.RAdam (single-tensor path), with t = the step after
 * increment, g the gradient, m/v the tensors "NAME.exp_avg" and
 * "NAME.exp_avg_sq" of mm_params and t its mm_params_step:
 *   decay      decoupled: w *= 1 - lr wd; else (L2) g += wd w
 *   moments    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   rho_inf = 2 / (1 - b2) - 1
 *   rho_t   = rho_inf - 2 t b2^t / (1 - b2^t)
 *   rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf /
 *                        ((rho_inf - 4)(rho_inf - 2) rho_t))
 *               w -= lr r (m / (1 - b1^t)) sqrt(1 - b2^t) / (sqrt(v) + eps)
 *   otherwise:  w -= lr m / (1 - b1^t)          (un-rectified: momentum SGD)
 * With b2 = 0.999, steps 1..5 take the un-rectified branch, 6.. the other.
 *
 * TransMIL (Camelyon/TransMIL.yaml, opt lookahead_radam, lr 2e-4, wd 1e-5)
 * runs LiyuanLucasLiu's RAdam through timm's create_optimizer: the same
 * update except (a) decay is decoupled (w -= wd lr w) and (b) the switch
 * is rho_t >= 5 (no step has rho_t == 5 exactly, so (b) never matters),
 * and timm's add_weight_decay exempts 1-D parameters and names ending in
 * ".bias" from decay. Set decoupled = 1 and no_decay_1d = 1 for that. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int decoupled;   /* 1: w *= 1 - lr wd (torch decoupled_weight_decay) */
    int no_decay_1d; /* 1: no decay for 1-D tensors and "*.bias" (timm) */
} mm_radam_opts;
/* torch defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0, L2. */
mm_radam_opts mm_radam_defaults(void);
/* rho_t above for beta2 and step T >= 1. */
double mm_radam_rho(double beta2, int64_t t);
/* One step over every parameter of P (its step count goes up by one).
 * @return 0, or -1 (P not allocated, bad options) with mm_strerror(). */
int mm_radam_step(mm_params *p, const mm_radam_opts *o);

// ---- Lookahead -------------------------------------------------------------

/* Lookahead (Zhang et al. 2019) around any step of P's optimizer, as timm's
 * timm/optim/lookahead.py which TransMIL uses (defaults alpha 0.5, k 6):
 * after each base step the counter n goes up; when n % k == 0, for every
 * parameter  slow += alpha (fast - slow);  fast = slow.
 * Slow weights start as: INIT_AT_START 0 (timm): a copy of the fast weights
 * taken at the first sync, so that sync leaves fast unchanged; 1 (the
 * paper, lonePatient/lookahead_pytorch): a copy taken in mm_lookahead_new.
 *
 * The slow weights live in the handle's own tensors (one per parameter, in
 * parameter order, same shape and dtype), not in mm_params: its block is
 * fixed at mm_params_alloc and every tensor there is stepped by the
 * optimizer. A checkpoint saves them through mm_lookahead_named ("NAME.slow")
 * with the counter and the ready flag, and restores them by writing the
 * tensors' data and calling the two setters. */
typedef struct mm_lookahead mm_lookahead;
typedef struct {
    int k;            /* sync every K base steps, K >= 1 */
    double alpha;     /* slow step size in [0, 1] */
    int init_at_start;
} mm_lookahead_opts;
mm_lookahead_opts mm_lookahead_defaults(void); /* k 6, alpha 0.5, timm */
/* P must be allocated and outlive the handle.
 * @return the handle, or NULL (bad options, P not allocated) with
 * mm_strerror(). */
mm_lookahead *mm_lookahead_new(mm_params *p, const mm_lookahead_opts *o);
void mm_lookahead_free(mm_lookahead *la); /* NULL is a no-op */
/* Call once after every base optimizer step.
 * @return 1 when this call synced, else 0. */
int mm_lookahead_step(mm_lookahead *la);
/* Sync now, whatever the counter (timm's sync_lookahead, before eval). */
void mm_lookahead_sync(mm_lookahead *la);
/* Base steps counted (timm's lookahead_step) and whether the slow weights
 * hold values yet (always 1 with init_at_start); settable for resuming. */
int64_t mm_lookahead_count(const mm_lookahead *la);
void mm_lookahead_set_count(mm_lookahead *la, int64_t n);
int mm_lookahead_ready(const mm_lookahead *la);
void mm_lookahead_set_ready(mm_lookahead *la, int ready);
/* The slow weights: I in [0, count of P), named "NAME.slow". */
int mm_lookahead_n_named(const mm_lookahead *la);
mm_tensor *mm_lookahead_named(mm_lookahead *la, int i, const char **name);

// ---- gradients -------------------------------------------------------------

/* Total L2 norm over every gradient of P: sqrt(sum of g^2), summed in
 * double in parameter order. */
double mm_params_grad_norm(mm_params *p);
/* torch.nn.utils.clip_grad_norm_(norm_type=2): total as above; c =
 * MAX_NORM / (total + 1e-6); when c < 1 every gradient is multiplied by c
 * (so a total at most MAX_NORM - 1e-6 is left alone). A non-finite total
 * leaves the gradients unchanged (torch would write NaN/0 into them); the
 * caller should skip the step.
 * @return the total norm before clipping. */
double mm_params_clip_grad_norm(mm_params *p, double max_norm);
/* Multiply every gradient by S.
 * Accumulation: mm_tensor_backward adds into the gradients, so K micro-
 * batches accumulate by not calling mm_params_zero_grad between them; to
 * step on their mean (Lightning's accumulate_grad_batches, which divides
 * each loss by K) call mm_params_scale_grad(p, 1.0 / K) before clipping
 * and the step, or scale each loss by 1/K. */
void mm_params_scale_grad(mm_params *p, double s);

// ---- learning-rate schedules -----------------------------------------------

/* lr at step T (0-based: the lr of the (T+1)-th optimizer step, so pass
 * mm_params_step() before stepping), a pure function. With base B, floor F,
 * warm-up W steps from factor f0, N steps in all:
 *   T < W:           B (f0 + (1 - f0) T / W)          (torch LinearLR; f0 0:
 *                                                     MAE/timm warm-up)
 *   CONSTANT, T >= W: B
 *   COSINE, W <= T < N: F + (B - F) (1 + cos(pi (T - W) / (N - W))) / 2
 *                    (torch CosineAnnealingLR's closed form, T_max = N - W,
 *                    eta_min = F; TANGLE's SequentialLR(LinearLR(1e-5, W),
 *                    CosineAnnealingLR(N - W, 1e-8)); MAE's half-cycle)
 *   COSINE, T >= N:  F (torch's cosine would rise again past T_max)
 * T < 0 counts as 0; COSINE with N <= W stays at B after the warm-up. */
typedef enum { MM_SCHED_CONSTANT, MM_SCHED_COSINE } mm_sched_kind;
typedef struct {
    mm_sched_kind kind;
    double lr;          /* B: base (peak) lr */
    int64_t warmup;     /* W: warm-up steps, 0 for none */
    double warmup_from; /* f0: factor at T = 0 of the warm-up */
    int64_t total;      /* N: steps in all, warm-up included (COSINE) */
    double min_lr;      /* F: the floor (COSINE) */
} mm_sched;
double mm_sched_lr(const mm_sched *s, int64_t t);

// ---- initialisers ----------------------------------------------------------

/* The generator is mm_rng (mm/rng.h): xoshiro256** seeded by splitmix64.
 *   U      = (next >> 11) * 2^-53, in [0, 1)
 *   normal = Box-Muller on pairs: u1 = 1 - U, u2 = U (drawn in that order),
 *            r = sqrt(-2 ln u1); z0 = r cos(2 pi u2), z1 = r sin(2 pi u2) */

/* Every initialiser below writes T (F32, F64 or F16, any strides) in its
 * logical order: uniform takes one U per element; the normal ones take
 * z0, z1 of successive pairs (an odd last element drops its z1), so
 * numel n costs 2 ceil(n/2) U draws; trunc_normal draws until accepted.
 * They match torch.nn.init's distributions, not torch's random streams.
 * @return 0, or -1 with mm_strerror() (bad dtype or arguments, no fans). */

/* torch's _calculate_fan_in_and_fan_out for T of ndim >= 2, [out, in, k..]:
 * receptive = product of dims 2..; fan_in = in * receptive, fan_out =
 * out * receptive (Linear (out, in); Conv2d (out, in/groups, kh, kw)).
 * @return 0, or -1 when ndim < 2. */
int mm_init_fans(const mm_tensor *t, int64_t *fan_in, int64_t *fan_out);
int mm_init_uniform(mm_tensor *t, mm_rng *g, double lo, double hi);
int mm_init_normal(mm_tensor *t, mm_rng *g, double mean, double std);
/* N(MEAN, STD) restricted to [A, B] (absolute bounds, as torch's and
 * timm's trunc_normal_(t, mean=0, std=1, a=-2, b=2)): standard normals z
 * from the pair stream, x = mean + std z kept when A <= x <= B. timm's
 * usage trunc_normal_(w, std=.02) means A = -2, B = 2: truncation at 100
 * std, which in effect never rejects (timm's trunc_normal_tf_ instead cuts
 * at A, B standard deviations; pass A = -2 std, B = 2 std for that).
 * Fails when [A, B] holds under 1e-3 of the mass (rejection would crawl). */
int mm_init_trunc_normal(mm_tensor *t, mm_rng *g, double mean,
                         double std, double a, double b);
/* xavier_uniform: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out));
 * xavier_normal: N(0, gain sqrt(2 / (fan_in + fan_out))). Gain 1 is
 * torch's default (MIRROR's init_weights, CLAM's initialize_weights). */
int mm_init_xavier_uniform(mm_tensor *t, mm_rng *g, double gain);
int mm_init_xavier_normal(mm_tensor *t, mm_rng *g, double gain);
/* kaiming_normal: N(0, gain / sqrt(fan)), fan = fan_in or fan_out (MODE).
 * torchvision's ResNet: MM_FAN_OUT with gain sqrt(2) (ReLU). */
typedef enum { MM_FAN_IN, MM_FAN_OUT } mm_fan_mode;
int mm_init_kaiming_normal(mm_tensor *t, mm_rng *g, mm_fan_mode mode,
                           double gain);
/* SNN's init_max_weights (PORPOISE, Pathomic Fusion): N(0, 1/sqrt(fan_in))
 * for a weight; its bias is zeroed with mm_init_constant(b, 0). */
int mm_init_snn(mm_tensor *t, mm_rng *g);
/* Every element V (zeros: 0, ones: 1). No draws. */
int mm_init_constant(mm_tensor *t, double v);

#endif
