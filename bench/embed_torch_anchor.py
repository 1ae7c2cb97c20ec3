"""embed_torch_anchor.py: the PyTorch anchor of bench/device-check.sh.

torchvision's ResNet-50 cut after layer3 (or layer4) + global average pool,
eval, channels_last, cudnn.benchmark, on the GPU; input u8 NHWC tiles from
pinned memory, normalised on the GPU as mm_resnet_preprocess. Two modes, as
embed-gpu's: fp16 (model and input in half) and tf32 (float32 with
allow_tf32). Weights are torchvision's random initialisation: the speed of
a dense network does not depend on the values. The tiles are random u8
(PyTorch here reads no mpk stream), so this is the network-alone rate, to
set beside embed-gpu's gpu_pps (and e2e_pps).
Prints KEY=VALUE lines. Written against PyTorch 2.11 / torchvision 0.26.
"""
import argparse
import time

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=256)
p.add_argument("--size", type=int, default=256)
p.add_argument("--layer", type=int, default=3)
p.add_argument("--iters", type=int, default=20)
p.add_argument("--prec", choices=["fp16", "tf32"], default="fp16")
a = p.parse_args()

torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = a.prec == "tf32"
torch.backends.cuda.matmul.allow_tf32 = a.prec == "tf32"
dev = torch.device("cuda")
r = torchvision.models.resnet50()
mods = [r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3]
if a.layer == 4:
    mods.append(r.layer4)
net = torch.nn.Sequential(*mods, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
dt = torch.float16 if a.prec == "fp16" else torch.float32
net = net.to(dev, dtype=dt, memory_format=torch.channels_last)
mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
host = torch.randint(0, 256, (a.batch, a.size, a.size, 3), dtype=torch.uint8).pin_memory()


def step():
    x = host.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    x = ((x - mean) / std).to(dt).contiguous(memory_format=torch.channels_last)
    return net(x).float()


with torch.inference_mode():
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        f = step()
    torch.cuda.synchronize()
    dt_s = time.perf_counter() - t0
print("torch=%s cudnn=%s device=%s" % (torch.__version__, torch.backends.cudnn.version(),
                                      torch.cuda.get_device_name(0)))
print("torch_prec=%s\ntorch_dim=%d\ntorch_pps=%.0f" % (a.prec, f.shape[1], a.iters * a.batch / dt_s))
