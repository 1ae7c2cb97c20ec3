#!/usr/bin/env python3
# safetensors_ref.py: writes tests/fixtures/safetensors/ref.safetensors with
# the Python safetensors package (known values in every dtype
# tests/unit/t-safetensors.c converts, BF16 and FP8 included), and checks
# tests/fixtures/safetensors/ours.safetensors, the golden our writer makes:
# the package reads it back to the same arrays and, given those arrays,
# writes the very same bytes. Not run by make check: both files are
# committed, and t-safetensors compares our writer's output with ours.
#
# Interpreter: Python 3.11.7 in a venv with safetensors 0.8.0, numpy 2.4.6:
#   python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors numpy
#   /tmp/st/bin/python tests/gen/safetensors_ref.py    (from the top of the tree)
# One metadata key in each file: the package writes metadata in a hash
# map's order, so with several keys its bytes would change from run to run.
# SPDX-License-Identifier: MIT
import os
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec, safe_open, serialize
from safetensors.numpy import load_file, save

assert safetensors.__version__ == "0.8.0", safetensors.__version__

out = "tests/fixtures/safetensors"
os.makedirs(out, exist_ok=True)


def spec(dtype, shape, arr):
    arr = np.ascontiguousarray(arr)
    keep.append(arr)
    return TensorSpec(dtype=dtype, shape=list(shape), data_ptr=arr.ctypes.data,
                      data_len=arr.nbytes)


# ---- ref.safetensors: what the package writes, for our reader
keep = []
arrays = {
    "a.f32": np.array([[1.5, -2.25, 3.0], [0.1, 1e-7, -0.0]], np.float32),
    "b.f64": np.array([np.pi, -1e300, 5e-324], np.float64),
    "c.f16": np.array([1.0, -0.5, 65504.0, 2.0 ** -24], np.float16),
    "e.i64": np.array([[-1, 2 ** 40], [0, 9]], np.int64),
    "f.i32": np.array([-7, 0, 2 ** 31 - 1], np.int32),
    "g.u8": np.array([0, 255], np.uint8),
    "h.bool": np.array([True, False, True], np.bool_),
    "i.i8": np.array([-128, 127], np.int8),
    "j.i16": np.array([-300, 300], np.int16),
    "k.u64": np.array([2 ** 64 - 1, 5], np.uint64),
    "conv.weight": (np.arange(18, dtype=np.float32) * 0.25 - 2).reshape(2, 1, 3, 3),
    "scalar": np.array(42, np.int64),
    "empty": np.zeros((0, 3), np.float32),
}
tensors = {k: spec(v.dtype.name, v.shape, v) for k, v in arrays.items()}
# no numpy dtype for these: raw bits
tensors["d.bf16"] = spec("bfloat16", [3], np.array([0x3fc0, 0xc049, 0x7f80], np.uint16))
tensors["l.f8e4m3"] = spec("float8_e4m3fn", [4], np.array([0x38, 0xb0, 0x7e, 0x01], np.uint8))
tensors["m.f8e5m2"] = spec("float8_e5m2", [3], np.array([0x3c, 0x7b, 0x01], np.uint8))
data = bytes(serialize(tensors, metadata={"source": "tests/gen/safetensors_ref.py"}))
assert len(data) < 4096, len(data)
with open(os.path.join(out, "ref.safetensors"), "wb") as f:
    f.write(data)
with safe_open(os.path.join(out, "ref.safetensors"), "numpy") as f:
    for k, v in arrays.items():  # numpy has no BF16/FP8: those are unchecked
        back = f.get_tensor(k)
        assert back.dtype == v.dtype and np.array_equal(back, v), k
print("wrote %s/ref.safetensors (%d bytes)" % (out, len(data)))

# ---- ours.safetensors: what tests/unit/t-safetensors.c golden() writes
want = {
    "w.f32": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
    "w.f64": np.array([0.1, -2.5, 1e300], np.float64),
    "w.f16": np.array([1.0, -0.5, 65504.0, 2.0 ** -14], np.float16).reshape(2, 2),
    "idx.i64": np.array([-3, 2 ** 40], np.int64),
    "mask.u8": np.array([0, 1, 2, 254, 255], np.uint8),
    "n.i32": np.array(7, np.int32),
    "empty": np.zeros((0, 4), np.float32),
}
meta = {"mmpath": "t-safetensors golden v1"}
path = os.path.join(out, "ours.safetensors")
if not os.path.exists(path):
    sys.exit("%s missing: run MM_REGEN=1 tests/unit/t-safetensors first" % path)
ours = open(path, "rb").read()
got = load_file(path)
assert sorted(got) == sorted(want), sorted(got)
for k, v in want.items():
    assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
    assert np.array_equal(got[k], v), k
assert save(want, metadata=meta) == ours, "the package writes other bytes"
print("%s: the package reads it and writes the same %d bytes" % (path, len(ours)))
