"""resnet_ref.py: reference features for tests/unit/t-resnet.c.

Rebuilds lib/resnet.c's "random:SEED" weights in numpy (the formula is in
mm/resnet.h), loads them into torchvision's resnet50, truncates it after
layer3 (and layer4) + global average pool, and computes the features of a
few real tiles read with openslide-python from CMU-1-Small-Region.svs (as
CLAM: read_region at level 0, convert("RGB"), optional Resize(224),
ToTensor, Normalize). Commits only the coordinates and the features:

  tests/fixtures/resnet/cases.txt   one line per case:
      NAME LAYER SIZE RESIZE X Y     (SIZE read at level 0, RESIZE 0 = none)
  tests/fixtures/resnet/NAME.f32     the case's feature vector, f32 LE

Run: /work/main/bench/.venv/bin/python tests/gen/resnet_ref.py SLIDE OUTDIR
Made with pip's torch 2.15.0, torchvision 0.29.2, numpy 2.4.6,
openslide-python (OpenSlide 4), Pillow; weights random:42.
"""
import os
import sys

import numpy as np
import openslide
import torch
import torchvision
from torchvision import transforms

SEED = 42
GAMMA = np.uint64(0x9E3779B97F4A7C15)


def stream(seed, start, n):
    """u_i for i in [start, start + n): the i-th splitmix64 output from
    SEED, top 24 bits / 2^24."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / 16777216.0


def convs(layer):
    """(conv prefix, bn prefix, cin, cout, k) in torchvision module order."""
    out = [("conv1", "bn1", 3, 64, 7)]
    cin = 64
    for l, nb in zip(range(1, layer + 1), (3, 4, 6, 3)):
        wid = 64 << (l - 1)
        for b in range(nb):
            bin_ = cin if b == 0 else wid * 4
            p = f"layer{l}.{b}"
            out.append((p + ".conv1", p + ".bn1", bin_, wid, 1))
            out.append((p + ".conv2", p + ".bn2", wid, wid, 3))
            out.append((p + ".conv3", p + ".bn3", wid, wid * 4, 1))
            if b == 0:
                out.append((p + ".downsample.0", p + ".downsample.1", bin_,
                            wid * 4, 1))
        cin = wid * 4
    return out


def random_state(seed, layer):
    sd, pos = {}, 0

    def take(n):
        nonlocal pos
        u = stream(seed, pos, n)
        pos += n
        return u

    for cn, bn, cin, cout, k in convs(layer):
        bound = np.sqrt(6.0 / (cin * k * k))
        sd[cn + ".weight"] = ((2 * take(cout * cin * k * k) - 1) * bound) \
            .astype(np.float32).reshape(cout, cin, k, k)
        sd[bn + ".weight"] = (0.5 + take(cout)).astype(np.float32)
        sd[bn + ".bias"] = (0.2 * (2 * take(cout) - 1)).astype(np.float32)
        sd[bn + ".running_mean"] = (0.2 * (2 * take(cout) - 1)) \
            .astype(np.float32)
        sd[bn + ".running_var"] = (0.5 + take(cout)).astype(np.float32)
    return sd


def trunk(layer):
    m = torchvision.models.resnet50()
    sd = {k: torch.from_numpy(v) for k, v in random_state(SEED, layer).items()}
    missing, _ = m.load_state_dict(sd, strict=False)
    assert all(k.startswith(("fc.", "layer4.")) or "num_batches" in k
               for k in missing), missing
    mods = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3]
    if layer == 4:
        mods.append(m.layer4)
    return torch.nn.Sequential(*mods, torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten()).eval()


# NAME LAYER SIZE RESIZE X Y
CASES = [
    ("l3a", 3, 256, 0, 0, 0),
    ("l3b", 3, 256, 0, 1000, 1200),
    ("l3c", 3, 256, 0, 1500, 2400),
    ("l3d", 3, 256, 0, 2000, 2800),   # reaches past the right/bottom edge
    ("l4a", 4, 256, 0, 600, 700),
    ("l4b", 4, 256, 0, 1300, 1900),
    ("r3a", 3, 256, 224, 800, 300),
    ("r3b", 3, 300, 224, 1100, 2100),
]


def main():
    slide, outdir = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    sl = openslide.OpenSlide(slide)
    norm = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    nets = {3: trunk(3), 4: trunk(4)}
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "cases.txt"), "w") as fh:
        for name, layer, size, resize, x, y in CASES:
            img = sl.read_region((x, y), 0, (size, size)).convert("RGB")
            if resize:
                img = transforms.Resize(resize)(img)
            with torch.no_grad():
                f = nets[layer](norm(img)[None])[0].numpy()
            f.astype("<f4").tofile(os.path.join(outdir, name + ".f32"))
            fh.write(f"{name} {layer} {size} {resize} {x} {y}\n")
            print(name, f.shape, float(np.abs(f).max()), float(f.mean()),
                  float((f > 0).mean()))


if __name__ == "__main__":
    main()
