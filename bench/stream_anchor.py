#!/usr/bin/env python3
# stream_anchor.py: the anchor for bench/stream-bench: the same mpk streams
# written and read the way a Python user would (zstandard + msgpack + numpy,
# msgpack-numpy style tensor maps, as in STREAM.md), printing the same line:
#   mode kind level records data_MB compressed_MB seconds MB/s
# `read` takes any mpk stream, so it reads the very file the C side wrote.
# SPDX-License-Identifier: MIT
"""Usage: stream_anchor.py write FILE --mb N --kind features|tiles|omics [--level L]
       stream_anchor.py read FILE
       stream_anchor.py versions"""

import os
import sys
import time

import msgpack
import numpy as np
import zstandard as zstd

try:
    import xxhash
except ImportError:  # the trailer then goes without a digest (STREAM.md allows it)
    xxhash = None

# Same data as stream-bench.c, bit for bit: keep the two in step.
FEAT_DIM = 1024
FEAT_ROWS = 256
FEAT_POOL_CHUNKS = 32
FEAT_SEG_CHUNKS = 32
TILE_SIZE = 256
TILE_BYTES = TILE_SIZE * TILE_SIZE * 3
TILE_POOL = 64
TILE_SEG = 512
OMICS_GENES = 20000
OMICS_POOL = 256
GRID_W = 200
FRAME_BYTES = 4 << 20  # end a zstd frame every 4 MiB of input, like mm_zio

U64 = np.uint64
F32 = np.float32


def hash64(sid, i):
    """splitmix64's mixer of (sid << 48) ^ i, on a uint64 array I."""
    with np.errstate(over="ignore"):
        z = (U64(sid << 48) ^ i) * U64(0x9E3779B97F4A7C15) + U64(0x2545F4914F6CDD1D)
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        return z ^ (z >> U64(31))


def bell(h):
    a = (h >> U64(43)).astype(F32)
    b = ((h >> U64(22)) & U64(0x1FFFFF)).astype(F32)
    c = ((h >> U64(1)) & U64(0x1FFFFF)).astype(F32)
    return (a + b + c) * F32(2.0 ** -21) - F32(1.5)


def relu(x):
    return np.where(x > F32(0), x, F32(0)).astype(F32)


def gen_features():
    h = hash64(2, np.arange(FEAT_DIM, dtype=U64))
    s = F32(0.2) + (h >> U64(40)).astype(F32) * F32(2.0 ** -24)
    b = ((h >> U64(8)) & U64(0xFFFF)).astype(F32) * F32(2.0 ** -16) * F32(0.4) + F32(0.1)
    rows = FEAT_POOL_CHUNKS * FEAT_ROWS
    out = np.empty((rows, FEAT_DIM), F32)
    step = 1024
    for r0 in range(0, rows, step):
        idx = np.arange(r0 * FEAT_DIM, (r0 + step) * FEAT_DIM, dtype=U64)
        x = relu(bell(hash64(1, idx)).reshape(step, FEAT_DIM) * s + b)
        out[r0:r0 + step] = x * x
    return out


def gen_tiles():
    base = (220, 140, 200)
    w = (2, 2, 1)
    out = np.empty((TILE_POOL, TILE_SIZE, TILE_SIZE, 3), np.uint8)
    ii = np.arange(TILE_SIZE, dtype=np.int64)

    def tri(v):
        return np.abs((v & 511) - 256)

    for p in range(TILE_POOL):
        h = int(hash64(3, np.array([p], U64))[0])
        ox, oy = h & 511, (h >> 9) & 511
        fx, fy = 1 + ((h >> 18) & 3), 1 + ((h >> 20) & 3)
        s = tri(ii * fx + ox)[:, None] + tri(ii * fy + oy)[None, :]
        k = np.arange(p * TILE_BYTES, (p + 1) * TILE_BYTES, dtype=U64)
        n = (hash64(4, k) & U64(7)).astype(np.int64).reshape(TILE_SIZE, TILE_SIZE, 3)
        tissue = np.stack([base[c] - s * w[c] // 8 for c in range(3)], axis=-1) + n - 4
        back = 236 + (n & 3)
        out[p] = np.where((s >= 300)[:, :, None], back, np.clip(tissue, 0, 255))
    return out


def gen_omics():
    h = hash64(5, np.arange(OMICS_GENES, dtype=U64))
    mu = (h >> U64(40)).astype(F32) * F32(2.0 ** -24) * F32(14.0) - F32(3.0)
    sd = F32(0.3) + ((h >> U64(8)) & U64(0xFFFF)).astype(F32) * F32(2.0 ** -16)
    idx = np.arange(OMICS_POOL * OMICS_GENES, dtype=U64)
    z = bell(hash64(6, idx)).reshape(OMICS_POOL, OMICS_GENES)
    return relu(mu + z * sd * F32(2.0))


def nd(a):
    """A msgpack-numpy style tensor map (string keys, STREAM.md)."""
    return {"nd": True, "type": a.dtype.str, "kind": "", "shape": list(a.shape),
            "data": a.tobytes()}


def records(kind, nrec):
    """(segment id, meta, iterator of records) per segment."""
    if kind == "features":
        pool = gen_features()
        t = np.arange(FEAT_SEG_CHUNKS * FEAT_ROWS, dtype=np.int64)
        xy_all = np.stack([t % GRID_W * 512, t // GRID_W * 512], axis=1).astype(np.int32)
        seg_len = FEAT_SEG_CHUNKS
    elif kind == "tiles":
        pool = gen_tiles()
        seg_len = TILE_SEG
    elif kind == "omics":
        pool = gen_omics()
        seg_len = nrec
    else:
        sys.exit(f"stream_anchor.py: unknown kind '{kind}'")

    def seg_records(i0, n):
        for j in range(n):
            i = i0 + j
            if kind == "features":
                c = i % FEAT_POOL_CHUNKS
                yield {"xy": nd(xy_all[j * FEAT_ROWS:(j + 1) * FEAT_ROWS]),
                       "f": nd(pool[c * FEAT_ROWS:(c + 1) * FEAT_ROWS])}
            elif kind == "tiles":
                yield {"x": j % GRID_W * TILE_SIZE, "y": j // GRID_W * TILE_SIZE,
                       "img": nd(pool[i % TILE_POOL])}
            else:
                yield {"id": "S%05d" % i, "v": nd(pool[i % OMICS_POOL])}

    i, seg = 0, 0
    while i < nrec:
        n = min(seg_len, nrec - i)
        meta = {"n": n * FEAT_ROWS if kind == "features" else n}
        if kind == "omics":
            meta["features"] = ["G%05d" % g for g in range(OMICS_GENES)]
        yield "%s-%04d" % ("cohort" if kind == "omics" else "slide", seg), meta, seg_records(i, n)
        i += n
        seg += 1


def line(mode, kind, level, nrec, data, comp, sec):
    print("%s %s %s %d %.2f %.2f %.3f %.1f" % (mode, kind, level, nrec, data / 1e6,
                                               comp / 1e6, sec, data / 1e6 / sec))


def write(path, kind, mb, level):
    rec_bytes = {"features": FEAT_ROWS * (FEAT_DIM * 4 + 8), "tiles": TILE_BYTES,
                 "omics": OMICS_GENES * 4}.get(kind, 1)
    nrec = max(1, int(mb * 1e6 / rec_bytes + 0.999))
    if level is None:
        level = 1 if kind in ("tiles", "features", "views") else 3
    segs = list(records(kind, nrec))  # generates the data pool, untimed
    packb = msgpack.packb
    data = 0
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        w = zstd.ZstdCompressor(level=level, write_checksum=True).stream_writer(fh, closefd=False)
        frame_in = 0
        for sid, meta, recs in segs:
            hdr = {"mpk": 1, "kind": kind, "id": sid,
                   "tool": {"name": "stream_anchor.py", "version": "0.1.0",
                            "argv": ["stream_anchor.py"]},
                   "parents": [], "meta": meta}
            b = packb(hdr)
            w.write(b)
            data += len(b)
            frame_in += len(b)
            digest = xxhash.xxh64(seed=0) if xxhash else None
            count = 0
            for rec in recs:
                b = packb(rec)
                if digest:
                    digest.update(b)
                w.write(b)
                data += len(b)
                frame_in += len(b)
                count += 1
                if frame_in >= FRAME_BYTES:
                    w.flush(zstd.FLUSH_FRAME)
                    frame_in = 0
            trl = {"mpk_end": count}
            if digest:
                trl["digest"] = digest.hexdigest()
            trl["parents"] = []
            b = packb(trl)
            w.write(b)
            data += len(b)
            w.flush(zstd.FLUSH_FRAME)
            frame_in = 0
    sec = time.perf_counter() - t0
    line("write", kind, level, nrec, data, os.path.getsize(path), sec)


def read(path):
    nrec, total, kind = 0, 0.0, "?"
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        rd = zstd.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        for rec in msgpack.Unpacker(rd, raw=False, max_buffer_size=1 << 30):
            if "mpk" in rec:
                if kind == "?":
                    kind = rec.get("kind", "?")
                continue
            if "mpk_end" in rec:
                continue
            nrec += 1
            for v in rec.values():
                if isinstance(v, dict) and v.get("nd"):
                    a = np.frombuffer(v["data"], v["type"]).reshape(v["shape"]).reshape(-1)
                    if a.size:
                        total += float(a[0]) + float(a[a.size // 2]) + float(a[-1])
                elif isinstance(v, (int, float)):
                    total += v
        data = rd.tell()
    sec = time.perf_counter() - t0
    line("read", kind, "-", nrec, data, os.path.getsize(path), sec)


def versions():
    import platform
    print("python %s (%s), zstandard %s (libzstd %s, %s), msgpack %s (%s), numpy %s, xxhash %s"
          % (platform.python_version(), sys.executable, zstd.__version__,
             ".".join(map(str, zstd.ZSTD_VERSION)), getattr(zstd, "backend", "?"),
             ".".join(map(str, msgpack.version)),
             "C" if msgpack.Packer.__module__.endswith("_cmsgpack") else "pure Python",
             np.__version__, xxhash.VERSION if xxhash else "missing (no digests)"))


def main(argv):
    if len(argv) >= 2 and argv[1] == "versions":
        return versions()
    if len(argv) == 3 and argv[1] == "read":
        return read(argv[2])
    if len(argv) < 3 or argv[1] != "write":
        sys.exit(__doc__)
    mb, kind, level = 64.0, None, None
    args = argv[3:]
    while args:
        if len(args) < 2:
            sys.exit(__doc__)
        opt, val = args[0], args[1]
        if opt == "--mb":
            mb = float(val)
        elif opt == "--kind":
            kind = val
        elif opt == "--level":
            level = int(val)
        else:
            sys.exit(__doc__)
        args = args[2:]
    if not kind or mb <= 0:
        sys.exit(__doc__)
    write(argv[2], kind, mb, level)


if __name__ == "__main__":
    main(sys.argv)
