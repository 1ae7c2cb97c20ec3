#!/usr/bin/env python3
# optim_refs.py: prints the reference tables of tests/unit/t-optim.c (the
# block between "BEGIN optim_refs.py" and "END optim_refs.py" there): RAdam
# and Lookahead trajectories on a tiny parameter set, and lr values of the
# recursive (chainable) form of torch's SequentialLR(LinearLR,
# CosineAnnealingLR). Not run by make check: its output is committed.
#
# No PyTorch: only PyPI was reachable and the torch wheel (with its CUDA
# dependencies) was too large to fetch for this, and numpy was not
# installed. So this is an independent re-implementation in plain Python
# floats (IEEE double) that follows the statements of torch 2.x's
# torch/optim/radam.py (_single_tensor_radam: exp_avg.lerp_, addcmul_,
# rho_t, _compute_rect, _compute_adaptive_lr), timm's
# timm/optim/lookahead.py (lazy slow_buffer, update_slow) and
# torch/optim/lr_scheduler.py (LinearLR/CosineAnnealingLR get_lr, the
# recursive form, and SequentialLR's step(0) at the milestone), written
# from those sources rather than from lib/optim.c.
#   python3 tests/gen/optim_refs.py > /tmp/refs.c
# SPDX-License-Identifier: MIT
import math

W0 = [0.5, -0.25, 1.0, -1.5, 0.75, 0.125]  # "w" (2, 3)
B0 = [0.1, -0.2, 0.3]                      # "w.bias" (3)
STEPS = 10


def grad(vals, s, off):
    # the gradient both sides use at step s (1-based), element j
    return [2 * (v - 0.3) + 0.5 * math.cos(s + off + j) for j, v in enumerate(vals)]


def radam(lr, b1, b2, eps, wd, decoupled, no_decay_1d, la_k=0, la_alpha=0.5,
          la_at_start=False):
    params = {"w": list(W0), "w.bias": list(B0)}
    offs = {"w": 0, "w.bias": 10}
    st = {n: ([0.0] * len(v), [0.0] * len(v)) for n, v in params.items()}
    slow = {n: list(v) for n, v in params.items()} if la_at_start else {}
    traj = []
    for step in range(1, STEPS + 1):
        for n, p in params.items():
            g = grad(p, step, offs[n])
            m, v = st[n]
            w = 0.0 if (no_decay_1d and n.endswith(".bias")) else wd
            if w != 0:
                if decoupled:
                    for j in range(len(p)):
                        p[j] *= 1 - lr * w
                else:
                    g = [g[j] + w * p[j] for j in range(len(p))]
            for j in range(len(p)):
                m[j] = m[j] + (g[j] - m[j]) * (1 - b1)  # lerp_
                v[j] = v[j] * b2 + (1 - b2) * g[j] * g[j]
            bc1 = 1 - b1 ** step
            bc2 = 1 - b2 ** step
            rho_inf = 2 / (1 - b2) - 1
            rho_t = rho_inf - 2 * step * (b2 ** step) / bc2
            for j in range(len(p)):
                bcm = m[j] / bc1
                if rho_t > 5.0:
                    rect = ((rho_t - 4) * (rho_t - 2) * rho_inf /
                            ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                    ada = (bc2 ** 0.5) / (math.sqrt(v[j]) + eps)
                    p[j] -= bcm * lr * ada * rect
                else:
                    p[j] -= bcm * lr
        if la_k and step % la_k == 0:
            for n, p in params.items():
                if n not in slow:
                    slow[n] = list(p)
                s = slow[n]
                for j in range(len(p)):
                    s[j] = s[j] + la_alpha * (p[j] - s[j])
                    p[j] = s[j]
        traj.append(params["w"] + params["w.bias"])
    return traj


def table(name, traj):
    print("static const double %s[%d][9] = {" % (name, len(traj)))
    for row in traj:
        print("    {" + ", ".join("%.17g" % x for x in row) + "},")
    print("};")


def sequential_lr(base, start, warm, tmax, eta_min, n):
    # torch: LinearLR(start_factor=start, total_iters=warm) then
    # CosineAnnealingLR(T_max=tmax, eta_min) via SequentialLR([..], [warm])
    lrs = []
    lr = base * start  # LinearLR at last_epoch 0
    lrs.append(lr)
    cos_epoch = None
    for e in range(1, n):
        if e < warm:
            # LinearLR chainable get_lr at last_epoch e (e <= total_iters)
            lr = lr * (1 + (1 - start) / (warm * start + (e - 1) * (1 - start)))
        elif e == warm:
            cos_epoch = 0  # SequentialLR: scheduler.step(0) -> closed form
            lr = eta_min + (base - eta_min) * (1 + math.cos(0)) / 2
        else:
            cos_epoch += 1
            k = cos_epoch
            if (k - 1 - tmax) % (2 * tmax) == 0:
                lr = lr + (base - eta_min) * (1 - math.cos(math.pi / tmax)) / 2
            else:
                lr = ((1 + math.cos(math.pi * k / tmax)) /
                      (1 + math.cos(math.pi * (k - 1) / tmax)) *
                      (lr - eta_min) + eta_min)
        lrs.append(lr)
    return lrs


print("/* BEGIN optim_refs.py (tests/gen/optim_refs.py; do not edit) */")
table("ref_radam_l2", radam(1e-2, 0.9, 0.999, 1e-8, 0.1, False, False))
table("ref_radam_transmil", radam(2e-2, 0.9, 0.999, 1e-8, 0.5, True, True))
table("ref_la_timm", radam(1e-2, 0.9, 0.999, 1e-8, 0.0, False, False, 3, 0.5))
table("ref_la_start", radam(1e-2, 0.9, 0.999, 1e-8, 0.0, False, False, 3, 0.5,
                            True))
lrs = sequential_lr(1e-4, 1e-5, 5, 20, 1e-8, 26)
print("static const double ref_tangle_lr[%d] = {" % len(lrs))
for x in lrs:
    print("    %.17g," % x)
print("};")
print("/* END optim_refs.py */")
