#!/usr/bin/python3
# torch_parity.py: writes the PyTorch reference fixtures of tests/unit/t-nn.c
# (llm.c's test_gpt2 habit: logits, loss, every gradient and the losses of
# ten optimizer steps), one safetensors file per case under
# tests/fixtures/nn/. Not run by make check: its output is committed.
#
# Made with Debian 12's /usr/bin/python3 (3.11), python3-torch 1.13.1
# (torch.__version__ "1.13.0a0") and python3-numpy 1.24, CPU, float64
# throughout. The Python safetensors package is not in Debian, so the file
# is written by hand below (8-byte little-endian header length, JSON header,
# raw little-endian data).
#
# Cases:
#   transformer2  2 pre-LN blocks (timm Block: qkv bias, GELU erf, LN eps
#                 1e-6), D 32, 4 heads, MLP ratio 4, seq 7, batch 2, then
#                 mean over tokens -> Linear(32 -> 3) -> cross-entropy.
#   nystrom       TransMIL TransLayer x + NystromAttention(LN(x)) written by
#                 hand from METHODS.md B3 (lucidrains nystrom-attention
#                 0.0.14, the fixed out[:, -n:]): D 32, 4 heads of 8, 16
#                 landmarks, pinv 6, residual conv 33, n 40 (front pad 8),
#                 batch 2, then the same mean -> Linear -> cross-entropy.
# Each file holds the initial weights under torch's state_dict names, "x"
# (input), "labels" (I64), "logits", "loss", "grad.NAME" for every
# parameter, "adamw_losses" (the loss before each of 10 AdamW steps, lr
# 1e-3, wd 1e-2, torch defaults otherwise) and, for nystrom, "out" (the
# TransLayer output). Weights are drawn with torch.manual_seed and rounded
# to float16 so the F16 storage is exact (the model runs on those values in
# float64). transformer2's gradients are stored F32 to keep the file under
# 200 KB (25.5k parameters: F64 gradients alone would be 204 KB), so they
# check to ~6e-8 (their rounding); nystrom's (4.4k) are F64; everything
# else is F64. Run from anywhere:  /usr/bin/python3 tests/gen/torch_parity.py
# SPDX-License-Identifier: MIT
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "nn")

DT = {np.float64: "F64", np.float32: "F32", np.float16: "F16", np.int64: "I64"}


def write_safetensors(path, tensors, meta):
    """tensors: list of (name, numpy array); sorted by name, packed."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, a in sorted(tensors, key=lambda t: t[0]):
        a = np.ascontiguousarray(a)
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


# ---- modules (torch names as timm / lucidrains / TransMIL) -----------------

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # erf form


class Block(nn.Module):
    def __init__(self, dim, heads, ratio, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, dim * ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim, heads, ratio, depth, classes, eps):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, ratio, eps) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x.mean(dim=1))


def moore_penrose_iter_pinv(x, iters=6):
    abs_x = torch.abs(x)
    col = abs_x.sum(dim=-1)
    row = abs_x.sum(dim=-2)
    z = x.transpose(-1, -2) / (torch.max(col) * torch.max(row))
    I = torch.eye(x.shape[-1], dtype=x.dtype).unsqueeze(0)
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * I - (xz @ (15 * I - (xz @ (7 * I - xz)))))
    return z


class NystromAttention(nn.Module):
    """METHODS.md B3 (nystrom-attention 0.0.14), mask unused, dropout 0."""

    def __init__(self, dim, heads, dim_head, landmarks, iters, kernel=33):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.m, self.iters, self.scale = heads, landmarks, iters, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))
        self.res_conv = nn.Conv2d(heads, heads, (kernel, 1), padding=(kernel // 2, 0),
                                  groups=heads, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        h, m = self.heads, self.m
        if n % m > 0:
            x = F.pad(x, (0, 0, m - n % m, 0), value=0)  # front (left) pad
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, t.shape[1], h, -1).transpose(1, 2) for t in (q, k, v))
        q = q * self.scale
        l = math.ceil(n / m)
        dh = q.shape[-1]
        ql = q.reshape(b, h, m, l, dh).sum(dim=3) / l  # '... (n l) d -> ... n d'
        kl = k.reshape(b, h, m, l, dh).sum(dim=3) / l
        a1 = (q @ kl.transpose(-1, -2)).softmax(dim=-1)
        a2 = (ql @ kl.transpose(-1, -2)).softmax(dim=-1)
        a3 = (ql @ k.transpose(-1, -2)).softmax(dim=-1)
        out = (a1 @ moore_penrose_iter_pinv(a2, self.iters)) @ (a3 @ v)
        out = out + self.res_conv(v)
        out = out.transpose(1, 2).reshape(b, -1, h * dh)
        return self.to_out(out)[:, -n:]


class TransLayer(nn.Module):
    def __init__(self, dim, heads, landmarks):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, heads, dim // heads, landmarks, 6)

    def forward(self, x):
        return x + self.attn(self.norm(x))


class NystromModel(nn.Module):
    def __init__(self, dim, heads, landmarks, classes):
        super().__init__()
        self.layer = TransLayer(dim, heads, landmarks)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        self.out = self.layer(x)
        return self.head(self.out.mean(dim=1))


# ---- cases -------------------------------------------------------------------

def prepare(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm" in "." + name:  # LayerNorm: move off (1, 0)
                p.add_(0.1 * torch.randn_like(p))
            p.copy_(p.half().double())  # exact in the F16 file


def run_case(fname, model, x, labels, meta, grad_dtype, extra=None):
    prepare(model)
    t = [(n, p.detach().numpy().astype(np.float16)) for n, p in model.named_parameters()]
    t += [("x", x.numpy()), ("labels", labels.numpy().astype(np.int64))]
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    t += [("logits", logits.detach().numpy()), ("loss", loss.detach().numpy())]
    t += [("grad." + n, p.grad.numpy().astype(grad_dtype)) for n, p in model.named_parameters()]
    if extra:
        t += extra(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    t.append(("adamw_losses", np.array(losses)))
    meta = dict(meta, generator="tests/gen/torch_parity.py", torch=torch.__version__,
                numpy=np.__version__, version="1")
    path = os.path.normpath(os.path.join(OUT, fname))
    write_safetensors(path, t, meta)
    print("%s: %d bytes, loss %.17g, losses %s" % (path, os.path.getsize(path), losses[0],
                                                  " ".join("%.6f" % v for v in losses)))


def main():
    os.makedirs(OUT, exist_ok=True)

    torch.manual_seed(1234)
    model = Transformer(32, 4, 4, 2, 3, 1e-6)
    x = torch.randn(2, 7, 32)
    labels = torch.tensor([2, 0])
    run_case("transformer2.safetensors", model, x, labels,
             {"case": "transformer2", "dim": "32", "heads": "4", "mlp_ratio": "4",
              "depth": "2", "seq": "7", "batch": "2", "classes": "3", "ln_eps": "1e-6"},
             np.float32)

    torch.manual_seed(5678)
    model = NystromModel(32, 4, 16, 3)
    x = torch.randn(2, 40, 32)
    labels = torch.tensor([1, 2])
    run_case("nystrom.safetensors", model, x, labels,
             {"case": "nystrom", "dim": "32", "heads": "4", "dim_head": "8",
              "landmarks": "16", "pinv_iterations": "6", "res_kernel": "33",
              "seq": "40", "batch": "2", "classes": "3", "ln_eps": "1e-5"},
             np.float64, extra=lambda m: [("out", m.out.detach().numpy())])


if __name__ == "__main__":
    main()
