#!/usr/bin/python3
# mil_refs.py: writes the PyTorch reference fixtures of tests/unit/t-mil.c,
# one safetensors file per baseline model of lib/mm/mil.h under
# tests/fixtures/mil/. Not run by make check: its output is committed.
#
# Made with Debian 12's /usr/bin/python3 (3.11), python3-torch 1.13.1
# (torch.__version__ "1.13.0a0") and python3-numpy 1.24, CPU, float64
# throughout; safetensors written by tests/gen/torch_parity.py's
# write_safetensors (no Python safetensors package in Debian), whose
# NystromAttention (METHODS.md B3, the fixed out[:, -n:]) is reused here.
#
# The models are our own PyTorch re-implementations written from
# METHODS.md (B4 TransMIL, B5 gated ABMIL, B6 SNN, section 6 PORPOISE MMF
# with fusion 'concat', a linear probe), with the reference code's module
# names so that the state_dict keys are the ones lib/mil.c declares. Their
# forward takes (train, seed): in training mode every dropout mask is
# rebuilt from lib/tensor.c's counter RNG (mm_rand_u01: output i of
# splitmix64 from the site seed) with lib/mil.c's site seeds
# (mm_model_site_seed), so the C model's training-mode forward and gradients
# are checked too, not only eval mode.
#
# Small sizes keep each file to a few KB: D 32 patch features, hidden 16,
# attention 8, bags of 10 and 3 patches (TransMIL: 10 tokens pad to a 4x4
# square plus cls = 17 tokens, front-padded to 24 for 8 landmarks; 3 tokens
# pad to 2x2 + cls = 5, front-padded to 8), omics of 24 values.
# Each file holds: the weights (F16 values, exact in F32 and F64) under the
# state_dict names; inputs "x.B" (bag B's patches, F32-exact values),
# "omic.B", labels "y" (I64) and for survival "c" (censorship, PORPOISE's
# 1 = censored) / for Cox "time" and "event"; then per mode M in
# {eval, train}: "M.out.B" (the head's (1, n_out) output), "M.attn.B"
# (ABMIL attention), "M.loss" (F64) and "M.grad.NAME" for every parameter
# (F32, to keep TransMIL's file near 50 KB: they check to ~6e-8 relative).
# Metadata gives the config keys of mm_model_cfg_set, the seed of bag B
# ("seed" + B) and the loss.
# Run from anywhere:  /usr/bin/python3 tests/gen/mil_refs.py
# SPDX-License-Identifier: MIT
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_parity import NystromAttention, write_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "mil")

# ---- lib/tensor.c's dropout RNG and lib/mil.c's site seeds ------------------

M64 = (1 << 64) - 1


def splitmix64(x):
    """One step from state X: the output (lib/rng.c mm_splitmix64)."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def u01(seed, n):
    return np.array([(splitmix64((seed + i * 0x9E3779B97F4A7C15) & M64) >> 11) * 2.0 ** -53
                     for i in range(n)])


def site_seed(seed, site):
    return splitmix64((seed + (site + 1) * 0xD1B54A32D192ED03) & M64)


SITE_INPUT, SITE_FC, SITE_ATT_A, SITE_ATT_B, SITE_RHO, SITE_OMIC, SITE_LAYER = 0, 1, 2, 3, 4, 8, 16
ALPHA = 1.7580993408473766  # SELU scale * alpha


def keep_mask(x, p, seed, site):
    u = u01(site_seed(seed, site), x.numel())
    return torch.tensor(u >= p).reshape(x.shape)


def dropout(x, p, train, seed, site):
    if not train or p == 0:
        return x
    return x * keep_mask(x, p, seed, site) / (1 - p)


def alpha_dropout(x, p, train, seed, site):
    """torch's AlphaDropout with our mask: x' = m x + (1 - m) (-A); a x' + b."""
    if not train or p == 0:
        return x
    m = keep_mask(x, p, seed, site).double()
    a = 1 / math.sqrt((ALPHA * ALPHA * p + 1) * (1 - p))
    return a * (m * x + (1 - m) * -ALPHA) + a * ALPHA * p


# ---- models ----------------------------------------------------------------


class GatedAttention(nn.Module):
    """B5: a = tanh(Linear), b = sigmoid(Linear), A = Linear(a * b)."""

    def __init__(self, L, D):
        super().__init__()
        self.attention_a = nn.Sequential(nn.Linear(L, D), nn.Tanh())
        self.attention_b = nn.Sequential(nn.Linear(L, D), nn.Sigmoid())
        self.attention_c = nn.Linear(D, 1)


def attention_net(D, H, A, dropinput):
    mods = [nn.Dropout(dropinput)] if dropinput > 0 else []
    return nn.Sequential(*mods, nn.Linear(D, H), nn.ReLU(), nn.Dropout(0.25),
                         GatedAttention(H, A))


def gated_pool(net, x, p, train, seed):
    """x (N, D) -> pooled (1, H), attention (N)."""
    fc, gate = net[-4], net[-1]
    h = dropout(F.relu(fc(x)), p, train, seed, SITE_FC)
    a = dropout(torch.tanh(gate.attention_a[0](h)), p, train, seed, SITE_ATT_A)
    b = dropout(torch.sigmoid(gate.attention_b[0](h)), p, train, seed, SITE_ATT_B)
    s = torch.softmax(gate.attention_c(a * b), dim=0)  # (N, 1): softmax over N
    return s.t() @ h, s.reshape(-1)


class ABMIL(nn.Module):
    def __init__(self, D, H, A, C, p):
        super().__init__()
        self.p = p
        self.attention_net = attention_net(D, H, A, 0)
        self.classifier = nn.Linear(H, C)

    def forward(self, x, omic, train, seed):
        m, att = gated_pool(self.attention_net, x, self.p, train, seed)
        return self.classifier(m), att


def snn_blocks(G, hidden):
    dims = [G] + hidden
    return nn.Sequential(*[nn.Sequential(nn.Linear(dims[i], dims[i + 1]), nn.ELU(),
                                         nn.AlphaDropout(0.25))
                           for i in range(len(hidden))])


def snn_forward(blocks, v, p, train, seed):
    for i, blk in enumerate(blocks):
        v = alpha_dropout(F.elu(blk[0](v)), p, train, seed, SITE_OMIC + i)
    return v


class SNN(nn.Module):
    def __init__(self, G, hidden, C, p):
        super().__init__()
        self.p = p
        self.fc_omic = snn_blocks(G, hidden)
        self.classifier = nn.Linear(hidden[-1], C)

    def forward(self, x, omic, train, seed):
        return self.classifier(snn_forward(self.fc_omic, omic[None], self.p, train, seed)), None


class ABMILSNN(nn.Module):
    """PORPOISE MMF, fusion 'concat' (METHODS.md section 6)."""

    def __init__(self, D, H, A, G, hidden, C, p, dropinput):
        super().__init__()
        self.p, self.dropinput = p, dropinput
        self.attention_net = attention_net(D, H, A, dropinput)
        self.rho = nn.Sequential(nn.Linear(H, A), nn.ReLU(), nn.Dropout(p))
        self.fc_omic = snn_blocks(G, hidden)
        self.mm = nn.Sequential(nn.Linear(A + hidden[-1], A), nn.ReLU(), nn.Linear(A, A), nn.ReLU())
        self.classifier_mm = nn.Linear(A, C)

    def forward(self, x, omic, train, seed):
        x = dropout(x, self.dropinput, train, seed, SITE_INPUT)
        hp, att = gated_pool(self.attention_net, x, self.p, train, seed)
        hp = dropout(F.relu(self.rho[0](hp)), self.p, train, seed, SITE_RHO)
        ho = snn_forward(self.fc_omic, omic[None], 0.25, train, seed)
        h = torch.cat([hp, ho], dim=1)
        h = F.relu(self.mm[2](F.relu(self.mm[0](h))))
        return self.classifier_mm(h), att


class Linear(nn.Module):
    def __init__(self, D, G, C):
        super().__init__()
        self.classifier = nn.Linear(D + G, C)

    def forward(self, x, omic, train, seed):
        return self.classifier(torch.cat([x.mean(dim=0, keepdim=True), omic[None]], dim=1)), None


class TransLayer(nn.Module):
    def __init__(self, dim, heads, landmarks):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, heads, dim // heads, landmarks, 6)


class PPEG(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, H, W):
        B, _, C = x.shape
        cls, feat = x[:, :1], x[:, 1:]
        f = feat.transpose(1, 2).reshape(B, C, H, W)  # token t = row * W + col
        y = self.proj(f) + f + self.proj1(f) + self.proj2(f)
        return torch.cat([cls, y.flatten(2).transpose(1, 2)], dim=1)


class TransMIL(nn.Module):
    """B4: fc1 -> square pad (repeat the first tokens) -> cls -> TransLayer
    -> PPEG -> TransLayer -> LayerNorm -> cls -> fc2."""

    def __init__(self, D, dim, C, attn_p):
        super().__init__()
        self.attn_p = attn_p
        self._fc1 = nn.Sequential(nn.Linear(D, dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layer1 = TransLayer(dim, 8, dim // 2)
        self.pos_layer = PPEG(dim)
        self.layer2 = TransLayer(dim, 8, dim // 2)
        self.norm = nn.LayerNorm(dim)
        self._fc2 = nn.Linear(dim, C)

    def layer(self, i, t, h, train, seed):
        return h + dropout(t.attn(t.norm(h)), self.attn_p, train, seed, SITE_LAYER + i)

    def forward(self, x, omic, train, seed):
        h = self._fc1(x)[None]
        n = h.shape[1]
        side = int(math.ceil(math.sqrt(n)))
        add = side * side - n
        h = torch.cat([h, h[:, :add]], dim=1)
        h = torch.cat([self.cls_token, h], dim=1)
        h = self.layer(0, self.layer1, h, train, seed)
        h = self.pos_layer(h, side, side)
        h = self.layer(1, self.layer2, h, train, seed)
        return self._fc2(self.norm(h)[:, 0]), None


# ---- losses (as lib/tensor.c: METHODS.md B9, B10) ---------------------------


def surv_nll(logits, y, c, eps=1e-7):
    h = torch.sigmoid(logits)
    S = torch.cumprod(1 - h, dim=1)
    S_pad = torch.cat([torch.ones_like(c)[:, None], S], dim=1)
    unc = -(1 - c) * (torch.log(torch.gather(S_pad, 1, y[:, None]).clamp(min=eps)).squeeze(1) +
                      torch.log(torch.gather(h, 1, y[:, None]).clamp(min=eps)).squeeze(1))
    cen = -c * torch.log(torch.gather(S_pad, 1, y[:, None] + 1).clamp(min=eps)).squeeze(1)
    return (unc + cen).mean()


def cox_nll_mean_all(theta, time, event):
    """PORPOISE CoxSurvLoss: -mean_i event_i (theta_i - log sum_{t_j >= t_i} e^theta_j)."""
    theta = theta.reshape(-1)
    R = (time[None, :] >= time[:, None]).double()
    return -((theta - torch.log((R * torch.exp(theta)[None, :]).sum(dim=1))) * event).mean()


# ---- cases -----------------------------------------------------------------


def prepare(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # LayerNorm: move off (1, 0)
                p.add_(0.1 * torch.randn_like(p))
            if name.endswith("bias") and p.abs().max() == 0:  # zero-init biases
                p.add_(0.05 * torch.randn_like(p))
            p.copy_(p.half().double())


def f32(t):
    return t.float().double()


def run_case(fname, model, cfg, xs, omics, loss_kind, targets, seeds):
    prepare(model)
    params = list(model.named_parameters())
    t = [(n, p.detach().numpy().astype(np.float16)) for n, p in params]
    nb = max(len(xs), len(omics))
    for b in range(nb):
        if xs:
            t.append(("x.%d" % b, xs[b].numpy().astype(np.float32)))
        if omics:
            t.append(("omic.%d" % b, omics[b].numpy().astype(np.float32)))
    for k, v in targets.items():
        t.append((k, v.numpy()))
    for mode, train in (("eval", 0), ("train", 1)):
        model.zero_grad()
        outs = []
        for b in range(nb):
            o, att = model(xs[b] if xs else None, omics[b] if omics else None, train, seeds[b])
            outs.append(o)
            t.append(("%s.out.%d" % (mode, b), o.detach().numpy()))
            if att is not None:
                t.append(("%s.attn.%d" % (mode, b), att.detach().numpy()))
        logits = torch.cat(outs, dim=0)
        if loss_kind == "ce":
            loss = F.cross_entropy(logits, targets["y"])
        elif loss_kind == "surv":
            loss = surv_nll(logits, targets["y"], targets["c"])
        else:
            loss = cox_nll_mean_all(logits, targets["time"], targets["event"])
        loss.backward()
        t.append(("%s.loss" % mode, loss.detach().numpy()))
        t += [("%s.grad.%s" % (mode, n), p.grad.numpy().astype(np.float32)) for n, p in params]
    meta = dict(cfg, loss=loss_kind, bags=str(nb), generator="tests/gen/mil_refs.py",
                torch=torch.__version__, numpy=np.__version__, version="1")
    for b in range(nb):
        meta["seed%d" % b] = str(seeds[b])
    path = os.path.normpath(os.path.join(OUT, fname))
    write_safetensors(path, t, meta)
    print("%s: %d bytes, %d parameters" % (path, os.path.getsize(path),
                                           sum(p.numel() for _, p in params)))


def main():
    os.makedirs(OUT, exist_ok=True)
    D, H, A, G = 32, 16, 8, 24
    seeds = [0x1234, 0xFEDCBA9876543210]

    torch.manual_seed(11)
    xs = [f32(torch.randn(10, D)), f32(torch.randn(3, D))]
    run_case("abmil.safetensors", ABMIL(D, H, A, 3, 0.25),
             {"kind": "abmil", "head": "class", "n_classes": "3", "in_dim": str(D),
              "hidden": str(H), "attn_dim": str(A)},
             xs, [], "ce", {"y": torch.tensor([2, 0])}, seeds)

    torch.manual_seed(12)
    xs = [f32(torch.randn(10, D)), f32(torch.randn(3, D))]
    run_case("transmil.safetensors", TransMIL(D, H, 2, 0.1),
             {"kind": "transmil", "head": "class", "n_classes": "2", "in_dim": str(D),
              "hidden": str(H), "heads": "8", "landmarks": str(H // 2)},
             xs, [], "ce", {"y": torch.tensor([1, 0])}, seeds)

    torch.manual_seed(13)
    om = [f32(torch.randn(G)) for _ in range(5)]
    run_case("snn.safetensors", SNN(G, [16, 16, 16, 16], 1, 0.25),
             {"kind": "snn", "head": "cox", "omic_dim": str(G), "in_dim": "0",
              "omic_hidden": "16,16,16,16"},
             [], om, "cox",
             {"time": torch.tensor([5.0, 3.0, 8.0, 3.0, 1.0]),
              "event": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])},
             [seeds[0] + i for i in range(5)])

    torch.manual_seed(14)
    xs = [f32(torch.randn(10, D)), f32(torch.randn(3, D))]
    om = [f32(torch.randn(G)) for _ in range(2)]
    run_case("abmil_snn.safetensors", ABMILSNN(D, H, A, G, [8, 8], 4, 0.25, 0.10),
             {"kind": "abmil+snn", "head": "surv", "n_classes": "4", "in_dim": str(D),
              "omic_dim": str(G), "hidden": str(H), "attn_dim": str(A),
              "omic_hidden": "8,8", "dropinput": "0.1"},
             xs, om, "surv", {"y": torch.tensor([2, 1]), "c": torch.tensor([0.0, 1.0])}, seeds)

    torch.manual_seed(15)
    xs = [f32(torch.randn(10, D)), f32(torch.randn(3, D))]
    om = [f32(torch.randn(G)) for _ in range(2)]
    run_case("linear.safetensors", Linear(D, G, 3),
             {"kind": "linear", "head": "class", "n_classes": "3", "in_dim": str(D),
              "omic_dim": str(G)},
             xs, om, "ce", {"y": torch.tensor([1, 2])}, seeds)


if __name__ == "__main__":
    main()
