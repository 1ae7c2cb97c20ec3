"""patch_embed_anchor.py: PyTorch's speed on the patch-embed workload.

torchvision ResNet-50 truncated after layer3 (or layer4) + global average
pool, eval mode, on N real 256x256 tiles read with openslide-python from the
slide at the given level-0 coordinates (the same tiles bench/patch-embed.sh
feeds to ours), in several configurations; prints one line per
configuration: "torch MODE patches_per_s GFLOP/s". The weights are random:
speed does not depend on them.

usage: patch_embed_anchor.py SLIDE COORDS_FILE LAYER BATCH THREADS REPS MODES
  COORDS_FILE: "x y" per line (level 0, read at level 0, 256x256)
  MODES: comma list of eager, cl (channels_last), jit (channels_last +
  torch.jit.freeze + optimize_for_inference), compile (torch.compile)
"""
import os
import sys
import time

import numpy as np
import openslide
import torch
import torchvision

slide, coords_file, layer, batch, threads, reps, modes = sys.argv[1:8]
layer, batch, threads, reps = int(layer), int(batch), int(threads), int(reps)
torch.set_num_threads(threads)
torch.manual_seed(0)

coords = [tuple(map(int, l.split())) for l in open(coords_file) if l.strip()]
sl = openslide.OpenSlide(slide)
mean = np.array([0.485, 0.456, 0.406], np.float32)
std = np.array([0.229, 0.224, 0.225], np.float32)
tiles = []
for x, y in coords:
    im = np.asarray(sl.read_region((x, y), 0, (256, 256)).convert("RGB"),
                    np.float32) / 255.0
    tiles.append(((im - mean) / std).transpose(2, 0, 1))
x_all = torch.from_numpy(np.stack(tiles))
n = x_all.shape[0]

m = torchvision.models.resnet50()
trunk = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3]
if layer == 4:
    trunk.append(m.layer4)
net = torch.nn.Sequential(*trunk, torch.nn.AdaptiveAvgPool2d(1),
                          torch.nn.Flatten()).eval()
# FLOPs (2 per multiply-add) of the convolutions for one 256x256 patch
flops = 0
def hook(mod, inp, out):
    global flops
    flops += 2 * out.numel() * mod.in_channels * mod.kernel_size[0] * \
        mod.kernel_size[1] // mod.groups
hs = [c.register_forward_hook(hook) for c in net.modules()
      if isinstance(c, torch.nn.Conv2d)]
with torch.no_grad():
    net(x_all[:1])
for h in hs:
    h.remove()
print(f"# torch {torch.__version__}, {threads} threads, {n} tiles, batch "
      f"{batch}, layer{layer}, {flops / 1e9:.2f} GFLOP/patch", flush=True)


# CPUT=1: process CPU time instead of wall time (a busy machine; 1 thread)
clock = time.process_time if os.environ.get("CPUT") == "1" else time.perf_counter


def run(f, xs):
    with torch.no_grad():
        for i in range(0, n, batch):
            f(xs[i:i + batch])


for mode in modes.split(","):
    xs = x_all
    with torch.no_grad():
        if mode == "eager":
            f = net
        elif mode == "cl":
            f = net.to(memory_format=torch.channels_last)
            xs = x_all.contiguous(memory_format=torch.channels_last)
        elif mode == "jit":
            f = net.to(memory_format=torch.channels_last)
            xs = x_all.contiguous(memory_format=torch.channels_last)
            f = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(f, xs[:batch])))
        elif mode == "compile":
            f = torch.compile(net.to(memory_format=torch.channels_last))
            xs = x_all.contiguous(memory_format=torch.channels_last)
        else:
            sys.exit(f"unknown mode {mode}")
        f(xs[:batch])  # warm-up (and tracing/compilation)
        f(xs[:batch])
    best = 1e30
    for _ in range(reps):
        t = clock()
        run(f, xs)
        best = min(best, clock() - t)
    print(f"torch {mode} {n / best:.2f} {n * flops / best / 1e9:.1f}",
          flush=True)
