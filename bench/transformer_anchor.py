"""transformer_anchor.py: the PyTorch side of bench/transformer.sh.

    python transformer_anchor.py versions
    python transformer_anchor.py step [--tokens N] [--dim D] [--heads H]
        [--layers L] [--steps S] [--warmup W] [--threads T] [--sdpa]

step: the model of transformer-bench.c in torch, float32 on the CPU:
L timm-style pre-LN blocks (x = x + attn(norm1(x)); x = x + mlp(norm2(x)),
LayerNorm eps 1e-5, qkv Linear(D, 3D) with bias, proj, MLP D -> 4D -> D
with the erf GELU), x (1, N, D) random normal, loss = mean(y ** 2),
backward, torch.optim.AdamW(lr=1e-3, weight_decay=1e-2). Attention is the
explicit softmax(q k^T / sqrt(Dh)) v that mm_mha computes (timm's
fused_attn=False path); --sdpa uses F.scaled_dot_product_attention instead
(timm's default on torch >= 2), printed as an extra line, not the ratio.
Each step: zero_grad(set_to_none=True), forward, backward, step. W warm-up
steps (default 1), then S timed (default 3); key=value lines as the C side.
torch.set_num_threads(T) (default 2) is called explicitly.
SPDX-License-Identifier: MIT
"""
import argparse
import sys
import time


def versions():
    import re
    import torch
    cfg = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", cfg)
    try:
        import torch.backends.cpu
        cap = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):  # torch < 2.0
        cap = "?"
    build = "CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} wheel, run on the CPU"
    print(f"Python {sys.version.split()[0]}, torch {torch.__version__} ({build}; "
          f"BLAS {blas.group(1) if blas else '?'}, oneDNN {torch.backends.mkldnn.is_available()}, "
          f"CPU capability {cap})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["step", "versions"])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sdpa", action="store_true")
    a = ap.parse_args()
    if a.cmd == "versions":
        versions()
        return
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(42)

    class Attention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim, bias=True)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, c = x.shape
            h = self.heads
            qkv = self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            if a.sdpa:
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                att = (q * (c // h) ** -0.5) @ k.transpose(-2, -1)
                y = att.softmax(dim=-1) @ v
            return self.proj(y.transpose(1, 2).reshape(b, n, c))

    class Block(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-5)
            self.attn = Attention(dim, heads)
            self.norm2 = nn.LayerNorm(dim, eps=1e-5)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(),
                                     nn.Linear(4 * dim, dim))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    model = nn.Sequential(*[Block(a.dim, a.heads) for _ in range(a.layers)])
    for name, p in model.named_parameters():
        if p.ndim == 2:
            nn.init.normal_(p, 0, 0.02)
        elif "norm" in name and name.endswith("weight"):
            nn.init.ones_(p)
        else:
            nn.init.zeros_(p)
    x = torch.randn(1, a.tokens, a.dim)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

    times, split, losses = [], [], []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(x).square().mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        losses.append(loss.item())
        print(f"step {s}: {t3 - t0:.3f} s (fwd {t1 - t0:.3f} bwd {t2 - t1:.3f} "
              f"adamw {t3 - t2:.3f}) loss {losses[-1]:.6f}"
              f"{' (warm-up)' if s < a.warmup else ''}", file=sys.stderr)
        if s >= a.warmup:
            times.append(t3 - t0)
            split.append((t1 - t0, t2 - t1, t3 - t2))
    i = min(range(len(times)), key=times.__getitem__)
    n, d = a.tokens, a.dim
    gf = 3 * (24.0 * n * d * d + 4.0 * n * n * d) * a.layers * 1e-9
    print(f"threads={torch.get_num_threads()}")
    print(f"params={sum(p.numel() for p in model.parameters())}")
    print(f"loss_first={losses[0]:.6f}\nloss_last={losses[-1]:.6f}")
    print(f"step_best={times[i]:.4f}")
    print(f"step_median={sorted(times)[len(times) // 2]:.4f}")
    print(f"fwd={split[i][0]:.4f}\nbwd={split[i][1]:.4f}\nadamw={split[i][2]:.4f}")
    print(f"matmul_gflop={gf:.2f}\ngflops={gf / times[i]:.1f}")


if __name__ == "__main__":
    main()
