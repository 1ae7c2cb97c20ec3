#!/usr/bin/env python3
"""convert-resnet50.py: torchvision's ResNet-50 weights as safetensors for
patch-embed(1) (torchvision's key layout, f32).

  convert-resnet50.py OUT.safetensors              # download via torchvision
  convert-resnet50.py --pth FILE.pth OUT.safetensors

Without --pth it fetches ResNet50_Weights.IMAGENET1K_V1 through torchvision's
weights API (needs internet once; cached in ~/.cache/torch). With --pth it
converts a state dict saved by torch.save (CLAM's resnet50-19c8e357.pth,
MIRROR's resnet50-11ad3fa6.pth, a fine-tuned model; a "state_dict" or
"model" entry is unwrapped and a "module." prefix dropped).

Writes the safetensors format directly (8-byte header length, JSON header,
data), so the safetensors package is not needed; floats as F32, integers
(num_batches_tracked) as I64. Needs torch (and torchvision without --pth).
"""
import argparse
import json
import struct
import sys

import torch


def state_dict(args):
    if args.pth:
        sd = torch.load(args.pth, map_location="cpu", weights_only=True)
        for k in ("state_dict", "model"):
            if isinstance(sd, dict) and k in sd and isinstance(sd[k], dict):
                sd = sd[k]
        return {k[7:] if k.startswith("module.") else k: v
                for k, v in sd.items()}, args.pth
    import torchvision
    w = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    return w.get_state_dict(progress=True), w.url


def write(path, sd, source):
    header, blobs, off = {}, [], 0
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        if t.is_floating_point():
            t, dt = t.to(torch.float32), "F32"
        else:
            t, dt = t.to(torch.int64), "I64"
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dt, "shape": list(t.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt", "source": str(source)}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for b in blobs:
            fh.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pth", help="a torchvision resnet50 state dict (.pth)")
    ap.add_argument("out", help="the .safetensors file to write")
    args = ap.parse_args()
    sd, source = state_dict(args)
    missing = [k for k in ("conv1.weight", "bn1.running_var",
                           "layer3.5.conv3.weight") if k not in sd]
    if missing:
        sys.exit(f"convert-resnet50.py: not a torchvision resnet50 state "
                 f"dict (no {missing[0]})")
    write(args.out, sd, source)
    print(f"{args.out}: {len(sd)} tensors from {source}", file=sys.stderr)


if __name__ == "__main__":
    main()
