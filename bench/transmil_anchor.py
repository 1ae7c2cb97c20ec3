"""transmil_anchor.py: the PyTorch side of bench/transmil.sh.

    python transmil_anchor.py versions
    python transmil_anchor.py train [--tokens N] [--bags B] [--warmup W] [--threads T] [--same-algebra]
    python transmil_anchor.py check FILE [--threads T]

The model is tests/gen/mil_refs.py's TransMIL (our re-implementation of
METHODS.md B4, with torch_parity.py's NystromAttention, B3: front padding,
landmark means, 6 Moore-Penrose iterations, residual conv 33, the fixed
out[:, -n:]), here in float32: D 1024 -> 512, 8 heads, 256 landmarks, 2
classes, to_out dropout 0.1 drawn by F.dropout (the C side draws its own
masks: the timing is the same, the values differ).

train: the step of transmil-bench.c: zero_grad(set_to_none=True), x (N, 1024)
random normal (drawn before the clock starts), forward in training mode,
cross-entropy on a random label, backward, torch.optim.Adam(lr=2e-4,
weight_decay=1e-5). W warm-up bags (default 2), then B timed (default 4);
key=value lines as the C side.

check: loads FILE written by `transmil-bench check` (our weights under their
state_dict names, load_state_dict(strict=True), "x", our "out" and
"embed"), runs the eval-mode forward in float32 and in float64 and prints
for each output the max |ours - torch| / max |torch| (relative to the
tensor's scale: elementwise ratios blow up at values near 0).

--same-algebra: the same model evaluated with lib/nn.c's algebra, for
comparison only (bench/transmil.sh reports it beside the reference):
attn1 (pinv(attn2) (attn3 v)) instead of (attn1 pinv(attn2)) (attn3 v);
the q and k landmarks as to_q / to_k of the means of x; to_q, to_k, to_v as
three products; the last TransLayer and the final LayerNorm on the cls row
alone (A1, the residual conv and to_out on that row; k, v, the landmarks
and the pseudo-inverse still over the whole sequence). Same outputs up to
rounding.

torch.set_num_threads(T) (default 2) is called explicitly.
SPDX-License-Identifier: MIT
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np


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
    print(f"Python {sys.version.split()[0]}, torch {torch.__version__} "
          f"(BLAS {blas.group(1) if blas else '?'}, CPU capability {cap})")


def read_safetensors(path):
    """name -> numpy array (the F32/F64/I64 tensors transmil-bench writes)."""
    dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    with open(path, "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        head = json.loads(f.read(hl))
        raw = f.read()
    out = {}
    for name, info in head.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[a:b], dtype=dt[info["dtype"]]).reshape(info["shape"])
    return out


def nystrom_rows(torch, F, mp_pinv, att, x, row=None):
    """att's forward (torch_parity.NystromAttention) with lib/nn.c's
    algebra: all rows, or only the padded sequence's row for input row ROW."""
    b, n, _ = x.shape
    h, m = att.heads, att.m
    pad = (m - n % m) % m
    if pad:
        x = F.pad(x, (0, 0, pad, 0), value=0)
    npad = x.shape[1]
    l = npad // m
    wq, wk, wv = att.to_qkv.weight.chunk(3, dim=0)

    def heads(t):
        return t.reshape(b, t.shape[1], h, -1).transpose(1, 2)

    k, v = heads(x @ wk.t()), heads(x @ wv.t())
    xl = x.reshape(b, m, l, -1).mean(dim=2)
    ql, kl = heads(xl @ wq.t()) * att.scale, heads(xl @ wk.t())
    xr = x if row is None else x[:, pad + row:pad + row + 1]
    q = heads(xr @ wq.t()) * att.scale
    a1 = (q @ kl.transpose(-1, -2)).softmax(dim=-1)
    a2 = (ql @ kl.transpose(-1, -2)).softmax(dim=-1)
    a3 = (ql @ k.transpose(-1, -2)).softmax(dim=-1)
    out = a1 @ (mp_pinv(a2, att.iters) @ (a3 @ v))
    if row is None:
        out = out + att.res_conv(v)
    else:  # the conv's row from its window of v, zero past the ends
        p = att.res_conv.kernel_size[0] // 2
        s = pad + row
        lo, hi = max(s - p, 0), min(s + p + 1, npad)
        win = F.pad(v[:, :, lo:hi], (0, 0, lo - (s - p), (s + p + 1) - hi))
        out = out + F.conv2d(win, att.res_conv.weight, groups=h)
    out = out.transpose(1, 2).reshape(b, -1, out.shape[1] * out.shape[-1])
    out = att.to_out(out)
    return out[:, -n:] if row is None else out


def model(torch, F, same=False):
    """mil_refs.TransMIL with torch's own dropout in training mode; SAME:
    with lib/nn.c's algebra (nystrom_rows)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
    import mil_refs  # sets float64 as the default dtype: undone below
    import torch_parity

    torch.set_default_dtype(torch.float32)

    class TransMIL(mil_refs.TransMIL):
        def layer(self, i, t, h, train, seed):
            return h + F.dropout(t.attn(t.norm(h)), self.attn_p, bool(train))

    class TransMILSame(mil_refs.TransMIL):
        def layer(self, i, t, h, train, seed):
            row = 0 if i == 1 else None  # the last layer: the cls row only
            a = nystrom_rows(torch, F, torch_parity.moore_penrose_iter_pinv, t.attn, t.norm(h), row)
            return (h if row is None else h[:, :1]) + F.dropout(a, self.attn_p, bool(train))

    return (TransMILSame if same else TransMIL)(1024, 512, 2, 0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train", "check", "versions"])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--tokens", type=int, default=6000)
    ap.add_argument("--bags", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--same-algebra", action="store_true")
    a = ap.parse_args()
    if a.cmd == "versions":
        versions()
        return
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    net = model(torch, F, a.same_algebra)
    if a.cmd == "check":
        t = read_safetensors(a.file)
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in t.items()
                             if k not in ("x", "out", "embed")}, strict=True)
        x = torch.from_numpy(t["x"].copy())
        rows = []
        seen = {}
        # the embed: the final LayerNorm's output, cls row
        net.norm.register_forward_hook(lambda mod, inp, o: seen.update(emb=o[:, 0]))
        for name, dtype in (("f32", torch.float32), ("f64", torch.float64)):
            net = net.to(dtype)
            with torch.no_grad():
                out, _ = net(x.to(dtype), None, 0, 0)
            rows.append((name, out.double().numpy(), seen["emb"].double().numpy()))
        for name, out, emb in rows:
            for what, ref in (("out", out), ("embed", emb)):
                ours = t[what].astype(np.float64)
                print("%s_%s_reldiff=%.3e" % (what, name, np.abs(ours - ref).max() / np.abs(ref).max()))
        (_, o32, e32), (_, o64, e64) = rows
        print("torch32_vs_64_reldiff=%.3e" % max(np.abs(o32 - o64).max() / np.abs(o64).max(),
                                                 np.abs(e32 - e64).max() / np.abs(e64).max()))
        print("out_ours=%s" % " ".join("%.6f" % v for v in t["out"].ravel()))
        print("out_torch=%s" % " ".join("%.6f" % v for v in rows[0][1].ravel()))
        return

    opt = torch.optim.Adam(net.parameters(), lr=2e-4, weight_decay=1e-5)
    g = torch.Generator().manual_seed(8)
    total = a.warmup + a.bags
    s_all, sf, sb, so, best = 0.0, 0.0, 0.0, 0.0, 1e300
    loss = None
    for s in range(total):
        x = torch.randn(a.tokens, 1024, generator=g)
        y = torch.randint(0, 2, (1,), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out, _ = net(x, None, 1, 0)
        loss = F.cross_entropy(out, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        dt = t3 - t0
        print("bag %d: %.3f s (fwd %.3f bwd %.3f adam %.3f) loss %.6f%s" % (
            s, dt, t1 - t0, t2 - t1, t3 - t2, loss.item(), " (warm-up)" if s < a.warmup else ""),
            file=sys.stderr)
        if s < a.warmup:
            continue
        print("step=%.4f" % dt)
        s_all += dt
        sf += t1 - t0
        sb += t2 - t1
        so += t3 - t2
        best = min(best, dt)
    print("threads=%d" % torch.get_num_threads())
    print("params=%d" % sum(p.numel() for p in net.parameters()))
    print("step_mean=%.4f\nstep_best=%.4f" % (s_all / a.bags, best))
    print("fwd=%.4f\nbwd=%.4f\nadam=%.4f" % (sf / a.bags, sb / a.bags, so / a.bags))
    print("loss_last=%.6f" % loss.item())


if __name__ == "__main__":
    main()
