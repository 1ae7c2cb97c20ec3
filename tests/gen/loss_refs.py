#!/usr/bin/python3
# loss_refs.py: writes the PyTorch reference fixtures of tests/unit/t-losses.c
# into tests/fixtures/losses/ (committed; not run by make check):
#
#   losses.safetensors  every loss of mm/tensor.h with its value and the
#                       gradient with respect to its real input:
#     ce.*           F.cross_entropy (mean) on logits (6, 5), label_smoothing
#                    0 ("ce0") and 0.1 ("ce1").
#     surv.*         the discrete-time survival NLL exactly as PORPOISE's
#                    nll_loss (METHODS.md B9; written below from the formula),
#                    logits (8, 4), censored and uncensored rows, alpha 0
#                    ("surv0") and 0.4 ("surv4"), eps 1e-7; "survclamp" has
#                    logits near +-20 so both eps clamps bind (alpha 0.4).
#     cox.*          the Cox partial likelihood, Breslow ties, inclusive risk
#                    set R[i, j] = 1[t_j >= t_i], as a torch expression, on
#                    theta (10) with tied times and tied events; divisor the
#                    number of events ("coxev"), the batch ("coxall"), events
#                    + 1 ("coxev1").
#     coxs*          the strict risk set R[i, j] = 1[t_j > t_i] (POMP Eq. 15),
#                    on the same theta with times whose largest value (9)
#                    holds an event and a censored sample: that event's
#                    risk set is empty and it is skipped (no term, not
#                    counted among the events); divisor the number of kept
#                    events ("coxsev") or the batch ("coxsall").
#     Per case NAME: NAME.x (input), NAME.loss (0-D), NAME.grad (d loss / d x)
#     and the integer or real side inputs (NAME.labels I64, NAME.c, NAME.time,
#     NAME.event F64).
#   ops.safetensors     inference ops for the ResNet-50 trunk (METHODS.md B2):
#     convA          F.conv2d 7x7 s2 p3 with bias, x (2, 3, 13, 11), w (4, 3, 7, 7)
#     convB          3x3 s2 p1 no bias, x (2, 5, 8, 9), w (6, 5, 3, 3)
#     convC          1x1 s1 p0 no bias, x (1, 8, 5, 4), w (7, 8, 1, 1)
#     convD          3x5 kernel, stride (2, 1), padding (1, 2), bias,
#                    x (1, 2, 7, 6), w (3, 2, 3, 5)
#     bn             F.batch_norm (eval: running stats, eps 1e-5) after
#                    convB's conv with bias: bn.y, and the folded conv
#                    weight and bias bn.wf, bn.bf (w * s, (b - mean) s + beta,
#                    s = gamma / sqrt(var + eps))
#     pool           F.max_pool2d k3 s2 p1 on x (2, 3, 9, 8) - 3 (mostly
#                    negative, so zero padding would differ from torch's -inf)
#     avg            F.adaptive_avg_pool2d(x, 1) on x (2, 3, 5, 7)
#     Per case: NAME.x, NAME.w, NAME.b (when used), NAME.y.
# Every real input is rounded to float32 first, so the F32 runs of the C
# test see exactly the values torch saw; torch computes in float64.
#
# Made with Debian 12's /usr/bin/python3 (3.11), python3-torch 1.13.1 and
# python3-numpy 1.24, CPU. Safetensors written by hand as in torch_parity.py
# (0-D tensors, the losses, keep shape []).
# Run from anywhere:  /usr/bin/python3 tests/gen/loss_refs.py
# SPDX-License-Identifier: MIT
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "losses")
DT = {np.float64: "F64", np.float32: "F32", np.int64: "I64"}


def write_safetensors(path, tensors, meta):
    """torch_parity.py's writer, but a 0-D array stays 0-D (shape [];
    np.ascontiguousarray would make it [1])."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, a in sorted(tensors, key=lambda t: t[0]):
        a = np.array(a, order="C")
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DT[a.dtype.type], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rnd(*shape, scale=1.0):
    """Standard normal values, rounded to float32 (exact in an F32 run)."""
    return (scale * torch.randn(*shape)).float().double()


def nll_loss(hazards, S, Y, c, alpha=0.4, eps=1e-7):
    """PORPOISE utils/utils.py nll_loss (METHODS.md B9), c = 1 censored."""
    batch_size = len(Y)
    Y = Y.view(batch_size, 1)
    c = c.view(batch_size, 1).double()
    if S is None:
        S = torch.cumprod(1 - hazards, dim=1)
    S_padded = torch.cat([torch.ones_like(c), S], 1)
    uncensored_loss = -(1 - c) * (torch.log(torch.gather(S_padded, 1, Y).clamp(min=eps))
                                  + torch.log(torch.gather(hazards, 1, Y).clamp(min=eps)))
    censored_loss = -c * torch.log(torch.gather(S_padded, 1, Y + 1).clamp(min=eps))
    neg_l = censored_loss + uncensored_loss
    loss = (1 - alpha) * neg_l + alpha * uncensored_loss
    return loss.mean()


def cox_loss(theta, time, event, norm):
    """Breslow, inclusive risk set; NORM: events, all, events1 (METHODS B10)."""
    R = (time.view(1, -1) >= time.view(-1, 1)).double()  # R[i, j] = t_j >= t_i
    lik = (theta - torch.log(R @ torch.exp(theta))) * event
    n = {"events": event.sum(), "all": torch.tensor(float(len(theta))),
         "events1": event.sum() + 1}[norm]
    return -lik.sum() / n


def cox_loss_strict(theta, time, event, norm):
    """Strict risk set t_j > t_i (POMP Eq. 15); an event whose set is empty
    is skipped: no term, not counted in the divisor (mm_tensor_cox_nll_ex)."""
    R = (time.view(1, -1) > time.view(-1, 1)).double()  # R[i, j] = t_j > t_i
    empty = R.sum(1) == 0
    kept = event * (~empty).double()
    # log(0) never reaches autograd: an empty row sums 1 and is masked out
    lik = (theta - torch.log(R @ torch.exp(theta) + empty.double())) * kept
    n = {"events": kept.sum(), "all": torch.tensor(float(len(theta)))}[norm]
    return -lik.sum() / n


def grad_case(t, name, x, fn, extra):
    x = x.clone().requires_grad_(True)
    loss = fn(x)
    loss.backward()
    t += [(name + ".x", x.detach().numpy()), (name + ".loss", loss.detach().numpy()),
          (name + ".grad", x.grad.numpy())]
    t += [(name + "." + k, v) for k, v in extra.items()]
    print("%-10s loss %.17g" % (name, loss.item()))


def losses():
    t = []
    torch.manual_seed(20240404)
    x = rnd(6, 5, scale=2.0)
    y = torch.tensor([0, 4, 2, 2, 1, 3])
    for name, ls in (("ce0", 0.0), ("ce1", 0.1)):
        grad_case(t, name, x, lambda v: F.cross_entropy(v, y, label_smoothing=ls),
                  {"labels": y.numpy().astype(np.int64)})

    x = rnd(8, 4)
    y = torch.tensor([0, 1, 2, 3, 3, 0, 2, 1])
    c = torch.tensor([0., 1., 0., 1., 0., 1., 1., 0.])
    for name, alpha in (("surv0", 0.0), ("surv4", 0.4)):
        grad_case(t, name, x, lambda v: nll_loss(torch.sigmoid(v), None, y, c, alpha, 1e-7),
                  {"labels": y.numpy().astype(np.int64), "c": c.numpy()})
    # h[y] < eps (logit -20) and S_pad < eps (logits +20): both clamps bind
    xc = torch.tensor([[-20., 0.5, -1., 2.],      # y 0 uncensored: h[0] ~ 2e-9
                       [20., 19., 0.3, -0.2],     # y 2 censored: S_pad[3] ~ 1e-17
                       [21., 20., 0.1, 0.2],      # y 3 uncensored: S_pad[3] tiny
                       [0.3, -0.7, 1.1, -20.]])   # y 3 uncensored: h[3] tiny
    yc = torch.tensor([0, 2, 3, 3])
    cc = torch.tensor([0., 1., 0., 0.])
    grad_case(t, "survclamp", xc, lambda v: nll_loss(torch.sigmoid(v), None, yc, cc, 0.4, 1e-7),
              {"labels": yc.numpy().astype(np.int64), "c": cc.numpy()})

    th = rnd(10)
    tm = torch.tensor([5., 3., 3., 8., 1., 5., 5., 2., 9., 3.])
    ev = torch.tensor([1., 1., 1., 0., 1., 0., 1., 1., 0., 0.])
    for name, norm in (("coxev", "events"), ("coxall", "all"), ("coxev1", "events1")):
        grad_case(t, name, th, lambda v: cox_loss(v, tm, ev, norm),
                  {"time": tm.numpy(), "event": ev.numpy()})
    # strict: no new random draws, so every entry above keeps its bytes
    tms = torch.tensor([5., 3., 3., 9., 1., 5., 5., 2., 9., 3.])
    evs = torch.tensor([1., 1., 1., 1., 1., 0., 1., 1., 0., 0.])
    for name, norm in (("coxsev", "events"), ("coxsall", "all")):
        grad_case(t, name, th, lambda v: cox_loss_strict(v, tms, evs, norm),
                  {"time": tms.numpy(), "event": evs.numpy()})
    return t


def ops():
    t = []
    torch.manual_seed(4242)

    def conv(name, xs, ws, bias, stride, padding):
        x, w = rnd(*xs), rnd(*ws, scale=0.3)
        b = rnd(ws[0]) if bias else None
        y = F.conv2d(x, w, b, stride=stride, padding=padding)
        t.extend([(name + ".x", x.numpy()), (name + ".w", w.numpy()), (name + ".y", y.numpy())])
        if bias:
            t.append((name + ".b", b.numpy()))
        print("%-10s y %s" % (name, tuple(y.shape)))

    conv("convA", (2, 3, 13, 11), (4, 3, 7, 7), True, 2, 3)
    conv("convB", (2, 5, 8, 9), (6, 5, 3, 3), False, 2, 1)
    conv("convC", (1, 8, 5, 4), (7, 8, 1, 1), False, 1, 0)
    conv("convD", (1, 2, 7, 6), (3, 2, 3, 5), True, (2, 1), (1, 2))

    x, w, b = rnd(2, 5, 8, 9), rnd(6, 5, 3, 3, scale=0.3), rnd(6)
    mean, var = rnd(6, scale=0.5), rnd(6).abs() + 0.1
    gamma, beta, eps = rnd(6), rnd(6), 1e-5
    y = F.batch_norm(F.conv2d(x, w, b, stride=2, padding=1), mean, var, gamma, beta,
                     training=False, eps=eps)
    s = gamma / torch.sqrt(var + eps)
    t += [("bn.x", x.numpy()), ("bn.w", w.numpy()), ("bn.b", b.numpy()),
          ("bn.mean", mean.numpy()), ("bn.var", var.numpy()), ("bn.gamma", gamma.numpy()),
          ("bn.beta", beta.numpy()), ("bn.y", y.numpy()),
          ("bn.wf", (w * s.view(-1, 1, 1, 1)).numpy()), ("bn.bf", ((b - mean) * s + beta).numpy())]

    x = (rnd(2, 3, 9, 8) - 3).float().double()
    t += [("pool.x", x.numpy()), ("pool.y", F.max_pool2d(x, 3, 2, 1).numpy())]
    x = rnd(2, 3, 5, 7)
    t += [("avg.x", x.numpy()), ("avg.y", F.adaptive_avg_pool2d(x, 1).numpy())]
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tests/gen/loss_refs.py", "torch": torch.__version__,
            "numpy": np.__version__, "version": "1"}
    for fname, t in (("losses.safetensors", losses()), ("ops.safetensors", ops())):
        path = os.path.normpath(os.path.join(OUT, fname))
        write_safetensors(path, t, meta)
        print("%s: %d bytes" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
